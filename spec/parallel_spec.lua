-- Worker threads (tide.config{ workers = N }, issue 21): what a query
-- produces must not depend on them. Each pipeline runs twice on the same
-- input, with workers = 1 and workers = 4, in fresh stores and checkpoint
-- directories, and everything it leaves is compared: the sink topic's
-- records in offset order, the checkpoint's state records byte for byte,
-- its commit entries, and its offset-log entries (less their `timestamp`,
-- the wall clock of planning). The inputs are large enough (several 4 MiB
-- chunks of JSON) that decoding splits into parts on the workers; bad
-- records sit in different parts, so their counting and dead-letter order
-- are compared too. The aggregations push ranges of each batch on the
-- workers (agg.c, "Parallel push"), so their groups, state ids, spills and
-- late rows are compared as well.

local tide = require "tide"
local core = require "tide.core"
local cjson = require "cjson"
local support = require "support"

local tmpname, write_file = support.tmpname, support.write_file

local function rm(dir) os.execute("rm -rf '" .. dir .. "'") end

-- n lines of events from line `first` on; every `bad_every`th line (when
-- given) is bad JSON or breaks the schema.
local function events(first, n, bad_every)
  local out = {}
  for i = first, first + n - 1 do
    if bad_every and i % bad_every == 0 then
      out[#out + 1] = i % 2 == 0 and '{"ts": "not a time", "device": "d", "signal": 1, "kind": "x"}'
        or '{"ts": 1700000000000, "device": '
    else
      -- up to 8 s of disorder, 400 devices, signals 0..40
      local ts = 1700000000000 + i * 7 - (i * 7919 % 8000)
      out[#out + 1] = string.format('{"ts": %d, "device": "dev-%03d", "signal": %d, "kind": "%s"}', ts,
        i * 31 % 400, i * 13 % 41, i % 3 == 0 and "temp" or "hum")
    end
  end
  return table.concat(out, "\n") .. "\n"
end

local SCHEMA = "ts timestamp, device string, signal int, kind string"

-- The files of one input directory: 3 files of 90,000 lines (about 6.7 MB
-- each), bad records every 10,007 lines.
local function make_input(dir)
  os.execute("mkdir -p '" .. dir .. "'")
  for k = 0, 2 do write_file(string.format("%s/part-%d.jsonl", dir, k), events(k * 90000, 90000, 10007)) end
end

-- Every record of a topic as JSON text, in offset order.
local function topic_lines(db, name)
  local out = {}
  for rec in db:topic(name):read { from = 0 } do
    local keys = {}
    for k in pairs(rec) do keys[#keys + 1] = k end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = string.format("%q=%s", k, tostring(rec[k])) end
    out[#out + 1] = table.concat(parts, ",")
  end
  return out
end

-- What the checkpoint holds: state records (hex, key order), commit
-- entries, offset entries without their timestamp.
local function checkpoint_contents(dir)
  local ck = assert(core.checkpoint(dir, { read_only = true }))
  local out = { state = {}, commits = {}, offsets = {} }
  for k, v in ck:state("agg1") do out.state[#out.state + 1] = (k:gsub(".", function(c)
    return string.format("%02x", c:byte()) end)) .. "=" .. (v:gsub(".", function(c)
    return string.format("%02x", c:byte()) end)) end
  local last = ck:latest()
  for n = 0, last do
    out.commits[#out.commits + 1] = ck:commit_entry(n) or "-"
    local e = ck:offsets(n)
    if e then
      e = cjson.decode(e)
      e.timestamp = nil
      out.offsets[#out.offsets + 1] = cjson.encode(e.sources) .. " wm=" .. tostring(e.watermark)
    end
  end
  ck:close()
  return out
end

describe("workers", function()
  local base, input
  local saved

  setup(function()
    saved = tide.config().workers
    base = tmpname()
    input = base .. "/in"
    make_input(input)
  end)
  teardown(function()
    tide.config { workers = saved }
    rm(base)
  end)

  -- The event-time query of bench/event_time.lua, into a topic sink, with
  -- dropped and dead-lettered bad records; batches of ~2 MB.
  local function streaming(workers, bad, limit)
    tide.config { workers = workers }
    local dir = string.format("%s/run-%s-%d-%s", base, bad, workers, tostring(limit))
    local db = tide.open(dir .. "/store")
    local opts = { path = input .. "/*.jsonl", format = "json", schema = SCHEMA, final_line_wait = 0,
      max_bytes_per_trigger = 2000000, bad_records = bad }
    if bad == "dead_letter" then
      opts.dead_letter_topic, opts.store = "bad", db
      db:create_topic("bad", { schema = "reason string, file string, line int, text string" })
    end
    -- with a memory limit: groups that come back every batch, to be spilled and loaded
    local f = tide.read_stream("file", opts)
      :where("signal >= 15")
      :with_watermark("ts", "5 seconds")
      :group_by(limit and "device" or tide.window("ts", "10 seconds"), limit and "signal" or "device")
      :agg { n = "count(*)", s = "sum(signal)", a = "avg(signal)" }
    db:create_topic("out", { schema = f:schema() })
    local q = f:write_stream("topic", { store = db, topic = "out", mode = "update", trigger = 0,
      checkpoint = dir .. "/ck", state_memory_limit = limit })
    q:process_all_available()
    local progress = q:recent_progress()
    q:stop()
    local result = { out = topic_lines(db, "out"), ck = checkpoint_contents(dir .. "/ck"), batches = #progress,
      dropped = 0, evicted = 0, loaded = 0 }
    for _, p in ipairs(progress) do
      local op = p.state_operators[1]
      result.dropped = result.dropped + op.num_rows_dropped_by_watermark
      result.evicted = result.evicted + (op.num_rows_evicted_to_checkpoint or 0)
      result.loaded = result.loaded + (op.num_rows_loaded_from_checkpoint or 0)
    end
    if bad == "dead_letter" then
      result.bad = topic_lines(db, "bad")
      for i, l in ipairs(result.bad) do result.bad[i] = l:gsub(input, "IN") end
    end
    db:close()
    return result
  end

  it("is 1 up to 256, set by tide.config, with its errors named", function()
    assert.same({ workers = 3 }, tide.config { workers = 3 })
    assert.same({ workers = 3 }, tide.config())
    assert.has_error(function() tide.config { workers = 0 } end,
      "tide.config: 'workers' must be an integer from 1 to 256, got 0")
    assert.has_error(function() tide.config { workers = 2.5 } end,
      "tide.config: 'workers' must be an integer from 1 to 256, got 2.5")
    assert.has_error(function() tide.config { threads = 2 } end,
      "tide.config: unknown setting 'threads' (allowed: workers)")
    assert.has_error(function() tide.config(4) end, "tide.config: expected a table of settings, got number")
  end)

  it("takes its default from TIDE_WORKERS, and names a bad one", function()
    local script = "package.path = 'lua/?.lua;lua/?/init.lua;' .. package.path; " ..
      "package.cpath = 'lua/?.so;' .. package.cpath; local ok, e = pcall(require('tide').config); " ..
      "io.write(ok and tostring(e.workers) or e)"
    local function run(env)
      local p = io.popen(env .. " lua5.4 -e " .. support.sh_quote(script) .. " 2>&1")
      local out = p:read("a")
      p:close()
      return out
    end
    assert.are.equal("3", run("TIDE_WORKERS=3"))
    assert.matches("TIDE_WORKERS must be an integer from 1 to 256, got 'many'$", run("TIDE_WORKERS=many"))
  end)

  it("leaves the streaming aggregation's output topic and checkpoint as one worker does (drop)", function()
    local one, four = streaming(1, "drop"), streaming(4, "drop")
    assert.is_true(#one.out > 10000)
    assert.is_true(#one.ck.state > 100)
    assert.is_true(one.batches > 10)
    assert.are.equal(one.batches, four.batches)
    assert.are.same(one.out, four.out)
    assert.are.same(one.ck, four.ck)
  end)

  -- With two workers the topic sink's append of batch N runs on a thread
  -- of its own while batch N + 1 runs, and commit N waits for it there
  -- (query.lua, the deferred sink). An append that fails there fails the
  -- query as add_batch would: commit N is not taken (nor offset entry N +
  -- 1, which goes with it), and the error names the batch, the topic and
  -- the partition. Batch 1's append fails here: once batch 0 is reported,
  -- the output topic's open segment is removed.
  it("fails a batch whose topic append fails on its thread, with no commit of it", function()
    tide.config { workers = 2 }
    local dir = base .. "/append-fails"
    local db = tide.open(dir .. "/store")
    local f = tide.read_stream("file", { path = input .. "/*.jsonl", format = "json", schema = SCHEMA,
      final_line_wait = 0, max_bytes_per_trigger = 2000000, bad_records = "drop" })
      :where("signal >= 15")
      :with_watermark("ts", "5 seconds")
      :group_by(tide.window("ts", "10 seconds"), "device")
      :agg { n = "count(*)" }
    db:create_topic("out", { schema = f:schema() })
    local seen = {}
    local remove = tide.on_progress(function(_, p)
      seen[#seen + 1] = p.batch_id
      if p.batch_id == 0 then assert(os.execute("rm " .. dir .. "/store/topics/*/p0/*.seg")) end
    end)
    local q = f:write_stream("topic", { store = db, topic = "out", mode = "update", trigger = 0,
      checkpoint = dir .. "/ck" })
    local ok, err = pcall(q.process_all_available, q)
    remove()
    assert.is_false(ok)
    assert.are.same({ 0 }, seen, tostring(err))
    assert.matches("%) failed: batch 1: sink TopicSink%[.-:out%]: append_batches to 'out': topic 'out' partition 0: " ..
      "cannot open segment .-/p0/00000000000000000000%.seg: No such file or directory$", tostring(err))
    assert.matches("^batch 1: sink TopicSink", q:exception())
    db:close()
    local ck = assert(core.checkpoint(dir .. "/ck", { read_only = true }))
    local last_offset, last_commit = ck:latest()
    assert.are.equal(0, last_commit)
    assert.are.equal(1, last_offset)
    ck:close()
  end)

  it("spills and loads back the same groups under state_memory_limit as one worker does", function()
    local one, two = streaming(1, "drop", "256KB"), streaming(2, "drop", "256KB")
    assert.is_true(one.evicted > 1000)
    assert.is_true(one.loaded > 0)
    assert.are.same({ one.evicted, one.loaded, one.dropped }, { two.evicted, two.loaded, two.dropped })
    assert.are.same(one.out, two.out)
    assert.are.same(one.ck, two.ck)
  end)

  -- The Spark ports and the event-time and bounded-memory specs pin one
  -- worker's outputs; run them again with two workers and every batch of
  -- two rows or more split between them (TIDE_PAR_MIN_ROWS, the parallel
  -- push's test knob: ranges of one row up), in a process of their own.
  -- (spec/exactly_once_spec.lua passes the same way, but its SIGKILL loop
  -- takes minutes: run it by hand with those two variables; the
  -- exactly-once topic pipeline above is compared with 1 and 4 workers.)
  it("passes the Spark ports, the event-time and the bounded-memory specs with every batch split", function()
    local files = { "spec/spark_event_time_watermark_spec.lua", "spec/spark_streaming_aggregation_spec.lua",
      "spec/spark_time_windowing_spec.lua", "spec/spark_streaming_dedup_spec.lua",
      "spec/spark_dedup_within_watermark_spec.lua", "spec/spark_session_window_spec.lua",
      "spec/spark_flat_map_groups_with_state_spec.lua", "spec/spark_streaming_join_spec.lua",
      "spec/agg_event_time_spec.lua", "spec/event_time_spec.lua", "spec/state_memory_spec.lua",
      "spec/global_agg_spec.lua" }
    local p = io.popen("TIDE_WORKERS=2 TIDE_PAR_MIN_ROWS=1 lua5.4 /usr/bin/busted -o TAP " .. table.concat(files, " ")
      .. " 2>&1; echo rc=$?")
    local out = p:read("a")
    p:close()
    assert.matches("rc=0\n$", out)
    assert.is_nil(out:match("\nnot ok"))
    assert.is_true(tonumber(out:match("\n1%.%.(%d+)")) > 100)
  end)

  it("writes the same dead letters in the same order as one worker does", function()
    local one, four = streaming(1, "dead_letter"), streaming(4, "dead_letter")
    assert.are.equal(27, #one.bad) -- events 0..269,999: every 10,007th is bad, event 0 too
    assert.are.same(one.bad, four.bad)
    assert.are.same(one.out, four.out)
    assert.are.same(one.ck, four.ck)
  end)

  it("drops a read ahead that a file arriving meanwhile makes wrong, and gives one worker's batches", function()
    -- batch 0 reads 2 MB of a.jsonl (3.6 MB); the rest of it is read
    -- ahead (with workers > 1); the sink of batch 0 then writes b.jsonl, so
    -- batch 1 is planned over both files and the read ahead is not its bytes
    local function run(workers)
      tide.config { workers = workers }
      local dir = string.format("%s/ahead-%d", base, workers)
      os.execute("mkdir -p '" .. dir .. "/in'")
      write_file(dir .. "/in/a.jsonl", events(0, 50000))
      local seen = {}
      local q = tide.read_stream("file", { path = dir .. "/in/*.jsonl", format = "json", schema = SCHEMA,
        final_line_wait = 0, max_bytes_per_trigger = 2000000 })
        :select("device", "signal")
        :write_stream(function(id, rows)
          local sum = 0
          for _, r in ipairs(rows) do sum = sum + r.signal end
          seen[#seen + 1] = string.format("%d: %d rows, %s..%s, sum %d", id, #rows, rows[1].device,
            rows[#rows].device, sum)
          if id == 0 then write_file(dir .. "/in/b.jsonl", events(50000, 20000)) end
        end, { checkpoint = dir .. "/ck", trigger = "available_now" })
      q:process_all_available()
      q:stop()
      return seen
    end
    local one = run(1)
    assert.are.equal(3, #one) -- 2 MB, then the rest of a.jsonl and the start of b.jsonl, then the rest
    assert.are.same(one, run(4))
  end)

  it("fails on the same bad record, with the same file and line, as one worker does", function()
    -- one bad record, at line 45,001 of about 60,000: in a later part
    local path = base .. "/one-bad.jsonl"
    write_file(path, events(0, 45000) .. '{"ts": oops}\n' .. events(45001, 15000))
    local function run(workers)
      tide.config { workers = workers }
      local ok, err = pcall(function()
        return tide.read("file", { path = path, format = "json", schema = SCHEMA }):count()
      end)
      assert.is_false(ok)
      return tostring(err)
    end
    local one = run(1)
    assert.matches("one%-bad%.jsonl: line 45001: invalid JSON", one)
    assert.are.equal(one, run(4))
  end)

  it("gives the static file query the same rows as one worker does", function()
    local function run(workers)
      tide.config { workers = workers }
      local rows = tide.read("file", { path = input .. "/*.jsonl", format = "json", schema = SCHEMA,
        bad_records = "drop" })
        :where("signal >= 15")
        :group_by(tide.window("ts", "10 seconds"), "device")
        :agg { n = "count(*)", s = "sum(signal)" }
        :collect()
      local out = {}
      for i, r in ipairs(rows) do out[i] = string.format("%d %s %d %d", r.window_start, r.device, r.n, r.s) end
      return out
    end
    local one = run(1)
    assert.is_true(#one > 10000)
    assert.are.same(one, run(4))
  end)

  -- A static aggregation folds on every worker, one part of the keys each
  -- (core/agg.c, "Static aggregation"); the rows and their order must be
  -- one worker's, for the aggregates that run parted and for those that
  -- keep one table (string min, sum of double).
  it("gives a static aggregation's rows in one worker's order, with every aggregate", function()
    local function run(workers, aggs)
      tide.config { workers = workers }
      local rows = tide.read("file", { path = input .. "/*.jsonl", format = "json", schema = SCHEMA,
        bad_records = "drop" })
        :where("signal >= 15")
        :group_by(tide.window("ts", "10 seconds"), "device")
        :agg(aggs)
        :collect()
      local out = {}
      for i, r in ipairs(rows) do
        local line = { r.window_start, r.device }
        for _, k in ipairs { "n", "c", "s", "a", "lo", "hi", "t0", "f", "l", "kmin", "ds" } do
          if r[k] ~= nil then line[#line + 1] = string.format("%s=%s", k, r[k]) end
        end
        out[i] = table.concat(line, " ")
      end
      return out
    end
    local parted = { "count(*) AS n", "count(kind) AS c", "sum(signal) AS s", "avg(signal) AS a",
      "min(signal) AS lo", "max(signal) AS hi", "min(ts) AS t0", "first(signal) AS f", "last(signal) AS l" }
    local one = run(1, parted)
    assert.is_true(#one > 10000)
    assert.are.same(one, run(2, parted))
    assert.are.same(one, run(3, parted))
    local single = { "count(*) AS n", "min(kind) AS kmin", "sum(CAST(signal AS double) / 3) AS ds" }
    assert.are.same(run(1, single), run(2, single))
    -- and a global aggregation, and one keyed by a string alone
    tide.config { workers = 1 }
    local g1 = tide.read("file", { path = input .. "/*.jsonl", format = "json", schema = SCHEMA,
      bad_records = "drop" }):group_by("kind"):agg { "count(*) AS n", "sum(signal) AS s" }:collect()
    tide.config { workers = 2 }
    local g2 = tide.read("file", { path = input .. "/*.jsonl", format = "json", schema = SCHEMA,
      bad_records = "drop" }):group_by("kind"):agg { "count(*) AS n", "sum(signal) AS s" }:collect()
    assert.are.same(g1, g2)
  end)

  it("decodes csv (a record a line) in parts with the same rows, quotes and NULLs included", function()
    local path = base .. "/rows.csv"
    local parts = { "id,name,v" }
    for i = 1, 60000 do
      parts[#parts + 1] = string.format(i % 7 == 0 and '%d,"x, %d",' or '%d,y%d,%d', i, i % 300, i % 11)
    end
    write_file(path, table.concat(parts, "\n") .. "\n")
    local function run(workers)
      tide.config { workers = workers }
      local out = {}
      for i, r in ipairs(tide.read("file", { path = path, format = "csv", header = true,
        schema = "id int, name string, v int?" }):collect()) do
        out[i] = string.format("%d|%s|%s", r.id, r.name, tostring(r.v))
      end
      return out
    end
    local one = run(1)
    assert.are.equal(60000, #one)
    assert.are.equal("7|x, 7|nil", one[7])
    assert.are.same(one, run(4))
  end)

  it("decodes the text format in parts with the same rows, blank lines included", function()
    local path = base .. "/lines.txt"
    local parts = {}
    for i = 1, 60000 do parts[i] = i % 17 == 0 and "" or ("line " .. i .. string.rep("x", i % 50)) end
    write_file(path, table.concat(parts, "\r\n") .. "\r\n")
    local function run(workers)
      tide.config { workers = workers }
      local out = {}
      for i, r in ipairs(tide.read("file", { path = path, format = "text" }):collect()) do out[i] = r.value end
      return out
    end
    local one = run(1)
    assert.are.equal(60000, #one)
    assert.are.equal("", one[17])
    assert.are.same(one, run(4))
  end)

  -- The static aggregation of a file alone reads in one stage (core/scan.h):
  -- each worker reads, decodes and aggregates whole ranges, cut
  -- independently after line ends. TIDE_SCAN_RANGE_BYTES makes the ranges
  -- small, so that the cases below fall on range boundaries: each runs in
  -- a child process with workers 1, 2 and 3, and its rows (in order) or
  -- its error must be one worker's.
  describe("one-stage static aggregation", function()
    local script
    local function query(path, range, workers, bad, global)
      if not script then
        script = tmpname() .. ".lua"
        write_file(script, [[
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("TIDE_CPATH") or "lua/?.so") .. ";" .. package.cpath
local tide = require "tide"
local path, workers, bad, global = arg[1], tonumber(arg[2]), arg[3], arg[4] == "1"
tide.config { workers = workers }
local f = tide.read("file", { path = path, format = "json", schema = "]] .. SCHEMA .. [[", bad_records = bad })
  :where("signal >= 15")
local ok, rows = pcall(function()
  if global then return f:group_by():agg { "count(*) AS n", "sum(signal) AS s", "avg(signal) AS a" }:collect() end
  return f:group_by(tide.window("ts", "10 seconds"), "device")
    :agg { "count(*) AS n", "sum(signal) AS s", "avg(signal) AS a", "min(ts) AS lo", "max(signal) AS hi" }:collect()
end)
if not ok then print("ERROR " .. tostring(rows)) os.exit(0) end
for _, r in ipairs(rows) do
  print(string.format("%s %s %s %s %s %s", tostring(r.window_start), tostring(r.device), r.n, tostring(r.s),
    tostring(r.a), tostring(r.lo)))
end
]])
      end
      local p = io.popen(string.format("TIDE_SCAN_RANGE_BYTES=%d lua5.4 '%s' '%s' %d %s %s 2>&1", range, script,
        path, workers, bad or "fail", global and "1" or "0"))
      local out = p:read("a")
      p:close()
      return out
    end
    local function same_for_workers(path, range, bad, global)
      local one = query(path, range, 1, bad, global)
      assert.are.equal(one, query(path, range, 2, bad, global))
      assert.are.equal(one, query(path, range, 3, bad, global))
      return one
    end

    it("gives one worker's rows in one worker's order, ranges of any size", function()
      local path = base .. "/scan-ok.jsonl"
      write_file(path, events(0, 3000))
      local want = same_for_workers(path, 1 << 20) -- the file is smaller than one range
      local _, rows = want:gsub("\n", "")
      assert.is_true(rows > 1000)
      for _, range in ipairs { 1, 100, 4096, 10000 } do assert.are.equal(want, same_for_workers(path, range)) end
      -- and ranges past a line longer than one range
      assert.are.equal(query(path, 4096, 1), same_for_workers(path, 17))
    end)

    it("cuts ranges exactly on line ends", function()
      -- lines of exactly 96 bytes: every range of 96 * k bytes starts on a line start
      local lines = {}
      for i = 0, 1999 do
        local l = string.format('{"ts": %d, "device": "dev-%03d", "signal": %d, "kind": "', 1700000000000 + i * 37,
          i * 31 % 50, i * 13 % 41)
        lines[#lines + 1] = l .. string.rep("x", 95 - #l - 2) .. '"}'
      end
      local path = base .. "/scan-exact.jsonl"
      write_file(path, table.concat(lines, "\n") .. "\n")
      assert.are.equal(96 * 2000, #table.concat(lines, "\n") + 1)
      local want = same_for_workers(path, 96 * 7)
      assert.are.equal(want, same_for_workers(path, 96))
      assert.are.equal(want, same_for_workers(path, 95))
      assert.are.equal(want, same_for_workers(path, 97))
      assert.are.equal(want, same_for_workers(path, 1 << 20))
    end)

    it("reports the first bad line in file order, with its line number, or drops the bad lines", function()
      local path = base .. "/scan-bad.jsonl"
      -- bad lines at 1,500 (in a middle range) and 2,600
      write_file(path, events(0, 1499) .. '{"ts": oops}\n' .. events(1500, 1099) .. '{"ts": 1}\n' .. events(2600, 400))
      local err = same_for_workers(path, 4096)
      assert.matches("^ERROR .*scan%-bad%.jsonl: line 1500: invalid JSON", err)
      assert.are.equal(err, same_for_workers(path, 1 << 20))
      local dropped = same_for_workers(path, 4096, "drop")
      assert.is_nil(dropped:match("ERROR"))
      assert.are.equal(dropped, same_for_workers(path, 1 << 20, "drop"))
    end)

    it("reads an empty file and a file without a final line end", function()
      local empty = base .. "/scan-empty.jsonl"
      write_file(empty, "")
      assert.are.equal("", same_for_workers(empty, 4096))
      assert.are.equal("nil nil 0 nil nil nil\n", same_for_workers(empty, 4096, nil, true))
      local path = base .. "/scan-nolf.jsonl"
      local text = events(0, 2000)
      write_file(path, text:sub(1, -2))
      local want = same_for_workers(path, 4096)
      assert.are.equal(want, same_for_workers(path, 1 << 20))
      write_file(path, text)
      assert.are.equal(want, same_for_workers(path, 4096)) -- the same rows as with the final LF
      -- a last record left unfinished fails as with one worker
      write_file(path, text .. '{"ts": 17000')
      assert.matches("^ERROR .*line 2001", same_for_workers(path, 4096))
    end)
  end)
end)
