-- Exactly-once, shown: a query runs in a child process and is killed with
-- SIGKILL at random moments, at least 30 times per pipeline; each time it is
-- restarted on the same checkpoint. At the end its output must equal the
-- output of an uninterrupted run of the same query: not one row lost, not
-- one repeated. Pipelines: file source -> where + select + a Lua filter ->
-- file sink; topic -> topic; file source -> a Lua sink that is idempotent
-- by batch id; file source -> watermark -> windowed aggregation in append
-- mode (state, eviction, no-data batches) -> the same Lua sink; file
-- source -> a Lua state machine per key (process) -> the same Lua sink; file
-- source -> a left outer stream-stream join of it with itself -> the same
-- Lua sink; file source -> an aggregation whose commit is overlapped with
-- the sink (workers = 2: the transaction waits at its gate while the sink
-- runs) -> the same Lua sink; file source -> the same aggregation ->
-- a topic sink whose append runs on a thread of its own while the next
-- batch runs, and whose commit waits for that append (workers = 2: the
-- deferred sink).
--
-- The Lua filter spins ~2 ms on some rows so that a batch takes a while and
-- many kills land between the offset-log write and the commit; after each
-- kill the checkpoint is opened read-only to count those (the spec requires
-- some). The seed is printed; TIDE_CRASH_SEED replays a run.

local tide = require "tide"
local core = require "tide.core"
local support = require "support"

local tmpname, write_file = support.tmpname, support.write_file

local KILLS = 30
local FILES, PER_FILE = 800, 25

local CHILD = support.CHILD_PRELUDE .. [[
local pipeline, src, out, ck, done = arg[1], arg[2], arg[3], arg[4], arg[5]
local function spin(r)
  if r.id % 20 == 0 then
    local t = os.clock() + 0.002
    while os.clock() < t do end
  end
  return true
end
local q
-- idempotent by batch id: batch N's rows go to one file, written to a
-- temporary name and renamed over whatever a crashed run left
local function batch_file(id, lines)
  local tmp = string.format("%s/.batch-%08d.tmp", out, id)
  local fh = assert(io.open(tmp, "w"))
  for _, l in ipairs(lines) do fh:write(l, "\n") end
  fh:close()
  assert(os.rename(tmp, string.format("%s/batch-%08d.txt", out, id)))
end
if pipeline == "window" then
  -- event time with up to 1 s of disorder, a 2 s watermark, 5 s windows
  -- in append mode: state, eviction and the watermark survive the kills
  q = tide.read_stream("file", { path = src .. "/*.jsonl", format = "json", schema = "id int, v int",
    max_files_per_trigger = 1 })
    :with_column("ts", "CAST(id * 100 - v AS timestamp)")
    :with_watermark("ts", "2 seconds"):filter(spin)
    :group_by(tide.window("ts", "5 seconds")):agg{ "count(*) AS n", "sum(v) AS s" }
    :write_stream(tide.sink { add_batch = function(_, id, rows)
      local lines = {}
      for i, r in ipairs(rows) do lines[i] = string.format("%d %d %d", r.window_start, r.n, r.s) end
      batch_file(id, lines)
    end }, { checkpoint = ck, trigger = "available_now", mode = "append" })
elseif pipeline == "process" then
  -- a Lua state machine per key (process): each key's running count and
  -- sum in its state, one row per key and batch in update mode; the state
  -- survives the kills
  q = tide.read_stream("file", { path = src .. "/*.jsonl", format = "json", schema = "id int, v int",
    max_files_per_trigger = 1 })
    :filter(spin)
    :group_by("id % 7 AS k"):process(function(k, rows, state)
      local s = state:get() or { n = 0, sum = 0 }
      for _, r in ipairs(rows) do s.n, s.sum = s.n + 1, s.sum + r.v end
      state:set(s)
      return { { k = k, n = s.n, sum = s.sum, last = rows[#rows].id } }
    end, { schema = "k int, n int, sum int, last int" })
    :write_stream(tide.sink { add_batch = function(_, id, rows)
      local lines = {}
      for i, r in ipairs(rows) do lines[i] = string.format("%d %d %d %d", r.k, r.n, r.sum, r.last) end
      batch_file(id, lines)
    end }, { checkpoint = ck, trigger = "available_now", mode = "update" })
elseif pipeline == "join" then
  -- a left outer stream-stream join of the source with itself: both
  -- sides' state, matched flags and eviction survive the kills
  local f = tide.read_stream("file", { path = src .. "/*.jsonl", format = "json", schema = "id int, v int",
    max_files_per_trigger = 1 }):filter(spin)
  local left = f:select("id AS lid", "id % 50 AS lk", "CAST(id * 100 - v AS timestamp) AS lts")
    :with_watermark("lts", "2 seconds")
  local right = f:where("v % 3 = 0"):select("id AS rid", "(id + 7) % 50 AS rk", "CAST(id * 100 AS timestamp) AS rts")
    :with_watermark("rts", "2 seconds")
  q = left:join(right, "lk = rk AND rts BETWEEN lts AND lts + interval 3 seconds", "left")
    :write_stream(tide.sink { add_batch = function(_, id, rows)
      local lines = {}
      for i, r in ipairs(rows) do lines[i] = string.format("%d %s", r.lid, r.rid or "-") end
      batch_file(id, lines)
    end }, { checkpoint = ck, trigger = "available_now" })
elseif pipeline == "agg" then
  -- a C aggregation, its state written by the overlapped commit (workers =
  -- 2: batch N's transaction is filled on a thread and waits at its gate
  -- while the sink runs), into the idempotent Lua sink, which logs its
  -- entry and exit (unbuffered) and takes ~3 ms: many kills land while
  -- that transaction is open
  tide.config { workers = 2 }
  local log = assert(io.open(out .. "/sink.log", "a"))
  log:setvbuf("no")
  q = tide.read_stream("file", { path = src .. "/*.jsonl", format = "json", schema = "id int, v int",
    max_files_per_trigger = 1 })
    :filter(spin)
    :group_by("id % 7 AS k"):agg{ "count(*) AS n", "sum(v) AS s" }
    :write_stream(tide.sink { add_batch = function(_, id, rows)
      log:write("s ", id, "\n")
      local t = os.clock() + 0.003
      while os.clock() < t do end
      local lines = {}
      for i, r in ipairs(rows) do lines[i] = string.format("%d %d %d", r.k, r.n, r.s) end
      batch_file(id, lines)
      log:write("d ", id, "\n")
    end }, { checkpoint = ck, trigger = "available_now", mode = "update" })
elseif pipeline == "aggtopic" then
  -- the same aggregation into a topic sink (workers = 2): batch N's append
  -- runs on a thread of its own while N + 1 is read and run, and commit N
  -- is taken on the commit's thread once that append is durable
  tide.config { workers = 2 }
  local db = tide.open(out)
  if not db:has_topic("out") then db:create_topic("out", { schema = "k int, n int, s int" }) end
  q = tide.read_stream("file", { path = src .. "/*.jsonl", format = "json", schema = "id int, v int",
    max_files_per_trigger = 1 })
    :filter(spin)
    :group_by("id % 7 AS k"):agg{ "count(*) AS n", "sum(v) AS s" }
    :write_stream("topic", { store = db, topic = "out", checkpoint = ck, trigger = "available_now", mode = "update" })
elseif pipeline == "file" or pipeline == "lua" then
  local f = tide.read_stream("file", { path = src .. "/*.jsonl", format = "json", schema = "id int, v int",
    max_files_per_trigger = 1 })
    :where("v % 3 != 0"):select("id", "v * 2 AS v2"):filter(spin)
  if pipeline == "file" then
    q = f:write_stream("file", { path = out, format = "json", checkpoint = ck, trigger = "available_now" })
  else
    q = f:write_stream(tide.sink { add_batch = function(_, id, rows)
      local lines = {}
      for i, r in ipairs(rows) do lines[i] = string.format("%d %d", r.id, r.v2) end
      batch_file(id, lines)
    end }, { checkpoint = ck, trigger = "available_now" })
  end
else
  local db = tide.open(src)
  q = db:read_stream("in", { max_records_per_trigger = 4 })
    :where("v % 3 != 0"):select("id", "v * 2 AS v2"):filter(spin)
    :write_stream("topic", { store = db, topic = "out", checkpoint = ck, trigger = "available_now" })
end
q:await()
local fh = assert(io.open(done, "w"))
fh:write("done\n")
fh:close()
]]

local function rm(...)
  for _, p in ipairs { ... } do os.execute("rm -rf '" .. p .. "'") end
end

-- Input files: FILES files of PER_FILE rows (id, v).
local function make_files(dir) return support.id_files(dir, FILES, PER_FILE) end

local expected, expected_windows = support.id_selected, support.id_windows

-- The rows of the process pipeline (with_last) and of the agg pipeline:
-- one file per batch; per batch, each key (id % 7) with its running count
-- and sum (and, for process, its last id).
local function expected_per_key(with_last)
  local out, n, sum, id = {}, {}, {}, 0
  for _ = 1, FILES do
    local last = {}
    for _ = 1, PER_FILE do
      id = id + 1
      local v, k = support.id_value(id), id % 7
      n[k], sum[k], last[k] = (n[k] or 0) + 1, (sum[k] or 0) + v, id
    end
    for k, l in pairs(last) do
      out[#out + 1] = with_last and string.format("%d %d %d %d", k, n[k], sum[k], l)
        or string.format("%d %d %d", k, n[k], sum[k])
    end
  end
  table.sort(out)
  return out
end

-- The rows an uninterrupted join emits: every matching pair, and the left
-- rows without one that the final watermark drops (lts <= W - 3 s - 1 ms,
-- from rts <= lts + 3 s; W: the smaller side's largest time - 2 s). The
-- left rows with a time at or before 0 are late (the first batch runs with
-- watermark 0); no other row is: the disorder (under 1 s) is within the
-- delay.
local function expected_join(n)
  local lefts, rights, max_l, max_r = {}, {}, 0, 0
  for id = 1, n do
    local v = support.id_value(id)
    if id * 100 - v > 0 then lefts[#lefts + 1] = { id = id, k = id % 50, ts = id * 100 - v } end
    max_l = math.max(max_l, id * 100 - v)
    if v % 3 == 0 then
      rights[#rights + 1] = { id = id, k = (id + 7) % 50, ts = id * 100 }
      max_r = math.max(max_r, id * 100)
    end
  end
  local by_key = {}
  for _, r in ipairs(rights) do
    by_key[r.k] = by_key[r.k] or {}
    table.insert(by_key[r.k], r)
  end
  local w = math.min(max_l, max_r) - 2000
  local out = {}
  for _, l in ipairs(lefts) do
    local matched = false
    for _, r in ipairs(by_key[l.k] or {}) do
      if r.ts >= l.ts and r.ts <= l.ts + 3000 then
        matched = true
        out[#out + 1] = l.id .. " " .. r.id
      end
    end
    if not matched and l.ts <= w - 3001 then out[#out + 1] = l.id .. " -" end
  end
  table.sort(out)
  return out
end


-- true when the checkpoint's last offset entry has no commit entry.
local function mid_batch(ck)
  local c = core.checkpoint(ck, { read_only = true })
  if not c then return false end
  local off, com = c:latest()
  c:close()
  return off ~= nil and off ~= com
end

local run_once = support.run_child

-- Run the child until it finishes, killing it KILLS times first (each run
-- 60 ms .. 1.5x its share of an uninterrupted run's whole_ms, within 80 ..
-- 260), counting the kills that land between the offset log and the
-- commit log.
local function run_killed(script, args, ck, done, errf, whole_ms, after_kill)
  local mid = 0
  local stats = support.run_killed { script = script, args = args, done = done, errf = errf, kills = KILLS,
    whole_ms = whole_ms, lo = 60, hi = { 80, 260 }, after_kill = function()
      if mid_batch(ck) then mid = mid + 1 end
      if after_kill then after_kill() end
    end }
  stats.mid = mid
  return stats
end

-- "id v2" lines of a file sink's output, sorted.
local function file_sink_rows(dir)
  local out = {}
  for _, r in ipairs(tide.read("file", { path = dir, format = "json", schema = "id int, v2 int" }):collect()) do
    out[#out + 1] = r.id .. " " .. r.v2
  end
  table.sort(out)
  return out
end

local function lua_sink_rows(dir)
  local out = {}
  local p = io.popen("cat '" .. dir .. "'/batch-*.txt 2>/dev/null")
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  table.sort(out)
  return out
end

local function topic_rows(store)
  local db = tide.open(store)
  local out = {}
  for r in db:topic("out"):read() do out[#out + 1] = r.id .. " " .. r.v2 end
  db:close()
  table.sort(out)
  return out
end

-- The records of a store's topic "out" as lines of fields `cols`, sorted.
local function topic_rows_of(store, fmt, cols)
  local db = tide.open(store)
  local out = {}
  for r in db:topic("out"):read() do
    local v = {}
    for i, c in ipairs(cols) do v[i] = r[c] end
    out[#out + 1] = string.format(fmt, table.unpack(v))
  end
  db:close()
  table.sort(out)
  return out
end

local function report(what, seed, stats, n)
  io.stderr:write(string.format("\n[exactly_once_spec] %s, seed %d: %d kills (%d between offset log and commit), " ..
    "%d runs, %d rows out\n", what, seed, stats.kills, stats.mid, stats.runs, n))
end

describe("a streaming query killed with SIGKILL and restarted on its checkpoint", function()
  local seed, script, errf, done, input
  local N

  setup(function()
    seed = tonumber(os.getenv("TIDE_CRASH_SEED")) or (os.time() * 1000 + math.floor(os.clock() * 1000))
    math.randomseed(seed)
    script, errf, done, input = tmpname() .. ".lua", tmpname(), tmpname(), tmpname()
    write_file(script, CHILD)
    N = make_files(input)
  end)

  teardown(function() rm(script, errf, done, input) end)

  it("file -> file: the output of an uninterrupted run, no row lost or repeated", function()
    local out, ck, out2, ck2 = tmpname(), tmpname(), tmpname(), tmpname()
    local whole = run_once(script, { "file", input, out2, ck2, done }, errf)
    local stats = run_killed(script, { "file", input, out, ck, done }, ck, done, errf, whole)
    local got, ref = file_sink_rows(out), file_sink_rows(out2)
    assert.equal(#expected(N), #got)
    assert.same(ref, got)
    assert.same(expected(N), got)
    assert.is_true(stats.mid > 0, "no kill landed between the offset log and the commit")
    report("file -> file", seed, stats, #got)
    rm(out, ck, out2, ck2)
  end)

  -- A pipeline into the idempotent Lua sink, killed and run whole: the
  -- same lines, and those of `want`.
  local function lua_sink_case(pipeline, want, label)
    local out, ck, out2, ck2 = tmpname(), tmpname(), tmpname(), tmpname()
    os.execute(string.format("mkdir -p '%s' '%s'", out, out2))
    local whole = run_once(script, { pipeline, input, out2, ck2, done }, errf)
    local stats = run_killed(script, { pipeline, input, out, ck, done }, ck, done, errf, whole)
    local got = lua_sink_rows(out)
    assert.same(lua_sink_rows(out2), got)
    assert.same(want, got)
    assert.is_true(stats.mid > 0, "no kill landed between the offset log and the commit")
    report(label, seed, stats, #got)
    rm(out, ck, out2, ck2)
  end

  it("file -> an idempotent Lua sink: the same", function()
    lua_sink_case("lua", expected(N), "file -> Lua sink")
  end)

  it("file -> event-time windows in append mode -> a Lua sink: the same windows, each once", function()
    lua_sink_case("window", expected_windows(N), "file -> windows (append)")
  end)

  it("file -> a Lua state machine per key (process) -> a Lua sink: the same rows, each once", function()
    lua_sink_case("process", expected_per_key(true), "file -> process (update)")
  end)

  it("file -> a left outer stream-stream join -> a Lua sink: the same pairs and outer rows, each once", function()
    lua_sink_case("join", expected_join(N), "file -> stream-stream join (left outer)")
  end)

  it("file -> aggregation (commit overlapped with the sink) -> a Lua sink: the same rows, each once", function()
    local out, ck, out2, ck2 = tmpname(), tmpname(), tmpname(), tmpname()
    os.execute(string.format("mkdir -p '%s' '%s'", out, out2))
    local whole = run_once(script, { "agg", input, out2, ck2, done }, errf)
    -- a kill after the sink's "s N" and before its "d N" landed while batch
    -- N's state changes sat in the open transaction at the gate
    -- batch N's state changes sat in the open transaction at the gate; one
    -- after "d N" while commit N is not in the checkpoint landed while it
    -- was committing (pipelined: while N+1 was already read and run)
    local in_sink, committing = 0, 0
    local stats = run_killed(script, { "agg", input, out, ck, done }, ck, done, errf, whole, function()
      local fh = io.open(out .. "/sink.log")
      local last
      if fh then
        for line in fh:lines() do last = line end
        fh:close()
      end
      if last and last:match("^s ") then in_sink = in_sink + 1 end
      local n = last and tonumber(last:match("^d (%d+)$"))
      local c = n and core.checkpoint(ck, { read_only = true })
      if c then
        local _, com = c:latest()
        c:close()
        if com == nil or com < n then committing = committing + 1 end
      end
    end)
    local got = lua_sink_rows(out)
    assert.same(lua_sink_rows(out2), got)
    assert.same(expected_per_key(false), got)
    assert.is_true(stats.mid > 0, "no kill landed between the offset log and the commit")
    assert.is_true(in_sink > 0, "no kill landed while the sink ran (the commit at its gate)")
    report(string.format("file -> aggregation, overlapped commit (%d kills in the sink, %d while it committed)",
      in_sink, committing), seed, stats, #got)
    rm(out, ck, out2, ck2)
  end)

  -- Kills after which the output topic holds batch N (the sink's writer
  -- recorded it) while the checkpoint has no commit N landed between the
  -- deferred append and its commit (while N + 1 ran); kills after which a
  -- segment file is longer than the catalog says landed inside an append
  -- (its bytes written, its catalog transaction not committed).
  it("file -> aggregation -> a topic sink written off the loop thread: the same rows, each once", function()
    local out, ck, out2, ck2 = tmpname(), tmpname(), tmpname(), tmpname()
    local whole = run_once(script, { "aggtopic", input, out2, ck2, done }, errf)
    local ahead, torn = 0, 0
    local function seg_bytes()
      local p = io.popen("cat '" .. out .. "'/topics/*/p*/*.seg 2>/dev/null | wc -c")
      local total = tonumber(p:read("a")) or 0
      p:close()
      return total
    end
    local stats = run_killed(script, { "aggtopic", input, out, ck, done }, ck, done, errf, whole, function()
      local on_disk = seg_bytes()
      local c = core.checkpoint(ck, { read_only = true })
      if not c then return end
      local _, com = c:latest()
      local qid = c:get_meta("query_id")
      c:close()
      local db = tide.open(out)
      if db:has_topic("out") then
        local t = db:topic("out")
        local seq = qid and t:writer_seq(qid .. "/sink")
        if seq and (com == nil or com < seq) then ahead = ahead + 1 end
        if on_disk > t:stats().bytes then torn = torn + 1 end
      end
      db:close()
    end)
    local got = topic_rows_of(out, "%d %d %d", { "k", "n", "s" })
    assert.same(topic_rows_of(out2, "%d %d %d", { "k", "n", "s" }), got)
    assert.same(expected_per_key(false), got)
    assert.is_true(stats.mid > 0, "no kill landed between the offset log and the commit")
    assert.is_true(ahead + torn > 0, "no kill landed in or after a deferred append before its commit")
    report(string.format("file -> aggregation -> topic, deferred append (%d kills with the append durable " ..
      "before its commit, %d inside an append)", ahead, torn), seed, stats, #got)
    rm(out, ck, out2, ck2)
  end)

  it("topic -> topic: the same", function()
    local store, ck, store2, ck2 = tmpname(), tmpname(), tmpname(), tmpname()
    for _, dir in ipairs { store, store2 } do
      local db = tide.open(dir)
      local t = db:create_topic("in", { schema = "id int, v int", partitions = 3 })
      db:create_topic("out", { schema = "id int, v2 int" })
      local rows = {}
      for id = 1, N do rows[#rows + 1] = { id = id, v = (id * 7919) % 1000 } end
      -- many appends, so that partitions fill unevenly over time
      for first = 1, N, 500 do
        t:append(table.move(rows, first, math.min(first + 499, N), 1, {}), { key = "id" })
      end
      db:close()
    end
    local whole = run_once(script, { "topic", store2, "-", ck2, done }, errf)
    local stats = run_killed(script, { "topic", store, "-", ck, done }, ck, done, errf, whole)
    local got = topic_rows(store)
    assert.same(topic_rows(store2), got)
    assert.same(expected(N), got)
    assert.is_true(stats.mid > 0, "no kill landed between the offset log and the commit")
    report("topic -> topic", seed, stats, #got)
    rm(store, ck, store2, ck2)
  end)
end)
