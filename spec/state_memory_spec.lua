-- Specs for bounded state memory (write_stream's state_memory_limit): an
-- aggregation or a deduplication whose groups pass the limit spills the
-- least recently touched ones to the checkpoint and loads them back when
-- their key comes again (core/agg.c "spilling", core/l_agg.c). Each query
-- runs twice, with a 64 KB limit (thousands of groups: most live in the
-- checkpoint) and with the default (everything in memory), over the same
-- batches; every batch's output must be the same rows (row order within a
-- batch may differ once groups were spilled, so rows are compared
-- sorted). A last spec kills the query with SIGKILL again and again.

local tide = require "tide"
local core = require "tide.core"
local support = require "spec.support"

local SMALL = "64KB"

-- Deterministic pseudo-random numbers.
local function rng(seed)
  local x = seed
  return function(m)
    x = (x * 1103515245 + 12345) % 2147483648
    return x % m
  end
end

-- nb batches of per rows: keys out of nkeys (half of them long strings,
-- kept in the aggregation's arena), values, and event times that move
-- forward 1 s per batch with up to 3 s of disorder.
local function make_batches(nb, per, nkeys, seed)
  local rnd, out = rng(seed), {}
  for b = 1, nb do
    local rows = {}
    for j = 1, per do
      local k = rnd(nkeys)
      rows[j] = { k = (k % 2 == 0 and "a-long-key-name-" or "k") .. k, v = rnd(100),
        ts = b * 1000 - rnd(3000) }
    end
    out[b] = rows
  end
  return out
end

-- A row as a string of its fields in name order.
local function show(r)
  local names = {}
  for n in pairs(r) do names[#names + 1] = n end
  table.sort(names)
  local parts = {}
  for i, n in ipairs(names) do parts[i] = n .. "=" .. tostring(r[n]) end
  return table.concat(parts, ",")
end

-- Run build(frame):write_stream over the batches with opts; returns each
-- batch's output rows (sorted strings) and the progress reports.
local function run(build, batches, opts)
  local ms = tide.memory_stream("k string, v int, ts timestamp")
  local outs, reports = {}, {}
  local q = build(ms:frame()):write_stream(function(id, rows)
    local list = {}
    for i, r in ipairs(rows) do list[i] = show(r) end
    table.sort(list)
    outs[id + 1] = list
  end, opts)
  local off = tide.on_progress(function(qq, p) if qq == q then reports[#reports + 1] = p end end)
  for _, rows in ipairs(batches) do
    ms:add(rows)
    q:process_all_available()
  end
  q:stop()
  off()
  return outs, reports
end

-- Run with the small limit and with the default; both outputs must be
-- equal, and the small run must have spilled and loaded groups back
-- (and kept its groups under the limit after every commit).
local function compare(build, batches, mode)
  local want = run(build, batches, { mode = mode, trigger = 0 })
  local got, reports = run(build, batches, { mode = mode, trigger = 0, state_memory_limit = SMALL })
  assert.equal(#want, #got)
  for i = 1, #want do assert.same(want[i], got[i], "batch " .. (i - 1)) end
  local evicted, loaded = 0, 0
  for _, p in ipairs(reports) do
    local op = p.state_operators[1]
    assert.equal(64 * 1024, op.memory_limit_bytes)
    assert.is_true(op.memory_bytes <= op.memory_limit_bytes,
      string.format("batch %d: %d bytes in memory", p.batch_id, op.memory_bytes))
    assert.is_true(op.num_rows_in_memory <= op.num_rows_total)
    evicted = evicted + op.num_rows_evicted_to_checkpoint
    loaded = loaded + op.num_rows_loaded_from_checkpoint
  end
  assert.is_true(evicted > 0, "no group was evicted")
  assert.is_true(loaded > 0, "no group was loaded back")
  return want, reports
end

describe("state_memory_limit", function()
  local batches = make_batches(20, 1000, 5000, 42)

  it("gives an update-mode aggregation the same output as an unlimited run", function()
    local _, reports = compare(function(f)
      return f:group_by("k"):agg { "count(*) AS n", "sum(v) AS s", "max(ts) AS last", "count_distinct(v) AS dv" }
    end, batches, "update")
    local last = reports[#reports].state_operators[1]
    assert.is_true(last.num_rows_total > 4000) -- every key seen is counted, in memory or not
    assert.is_true(last.num_rows_in_memory < last.num_rows_total / 4)
  end)

  it("gives a complete-mode aggregation the whole table, groups in the checkpoint included", function()
    local want = compare(function(f) return f:group_by("k"):agg { "count(*) AS n", "min(v) AS lo" } end, batches,
      "complete")
    assert.is_true(#want[#want] > 4000)
  end)

  it("gives drop_duplicates the same rows: a key loaded back from the checkpoint is a duplicate", function()
    compare(function(f) return f:drop_duplicates("k") end, batches, "append")
  end)

  it("evicts windows under a watermark from the checkpoint too, in update and append mode", function()
    local build = function(f)
      return f:with_watermark("ts", "2 seconds"):group_by(tide.window("ts", "4 seconds"), "k")
        :agg { "count(*) AS n", "sum(v) AS s" }
    end
    compare(build, batches, "update")
    local want = compare(build, batches, "append")
    local n = 0
    for _, b in ipairs(want) do n = n + #b end
    assert.is_true(n > 10000) -- windows were closed and emitted, once each
  end)

  it("keeps drop_duplicates_within_watermark's expiry for groups in the checkpoint", function()
    compare(function(f) return f:with_watermark("ts", "2 seconds"):drop_duplicates_within_watermark("k") end,
      batches, "append")
  end)

  it("refuses a limit that is not a size", function()
    local ms = tide.memory_stream("k string")
    assert.has_error(function()
      ms:frame():group_by("k"):count():write_stream(function() end, { mode = "update", state_memory_limit = "lots" })
    end, "write_stream(foreach_batch): option 'state_memory_limit': invalid size 'lots' (use bytes or " ..
      "'<n><unit>' with unit B, KB, MB, GB, TB)")
    assert.has_error(function()
      ms:frame():group_by("k"):count():write_stream(function() end, { mode = "update", state_memory_limit = 0 })
    end, "write_stream(foreach_batch): option 'state_memory_limit' must be >= 1, got 0")
  end)
end)

-- A child counting keys from JSON-lines files into a file sink, with the
-- small limit, one file per batch, killed with SIGKILL again and again.
local CHILD = support.CHILD_PRELUDE .. [[
local src, out, ck, done = arg[1], arg[2], arg[3], arg[4]
local q = tide.read_stream("file", { path = src .. "/*.jsonl", format = "json", schema = "id int, v int",
    max_files_per_trigger = 1 })
  :with_column("k", "id % 3001")
  :group_by("k"):agg { "count(*) AS n", "sum(v) AS s" }
  :write_stream(tide.sink { add_batch = function(_, id, rows)
    -- idempotent by batch id: one file per batch, renamed into place
    local tmp = string.format("%s/.batch-%08d.tmp", out, id)
    local fh = assert(io.open(tmp, "w"))
    for _, r in ipairs(rows) do fh:write(string.format("%d %d %d\n", r.k, r.n, r.s)) end
    fh:close()
    assert(os.rename(tmp, string.format("%s/batch-%08d.txt", out, id)))
  end }, { checkpoint = ck, trigger = "available_now", mode = "update", state_memory_limit = "64KB",
    sync = false })
q:await()
local fh = assert(io.open(done, "w"))
fh:write("done\n")
fh:close()
]]

describe("state_memory_limit across SIGKILL", function()
  it("gives the counts of an uninterrupted run after 8 kills and restarts", function()
    local base = support.tmpname()
    local src, out, ck, done, errf = base .. "-in", base .. "-out", base .. "-ck", base .. "-done", base .. "-err"
    local script = base .. "-child.lua"
    support.write_file(script, CHILD)
    os.execute("mkdir -p '" .. src .. "' '" .. out .. "'")
    local n = support.id_files(src, 1000, 40)
    math.randomseed(os.time())
    support.run_with_kills(script, { src, out, ck, done }, done, errf, 8, 100, 300)
    -- the truth: per key, the count and sum of its rows
    local count, sum = {}, {}
    for id = 1, n do
      local k, v = id % 3001, (id * 7919) % 1000
      count[k], sum[k] = (count[k] or 0) + 1, (sum[k] or 0) + v
    end
    -- update mode: a key's last output has its final values, which are
    -- its largest (counts only grow)
    local best = {}
    local p = io.popen("cat '" .. out .. "'/batch-*.txt")
    for line in p:lines() do
      local k, c, s = line:match("^(%d+) (%d+) (%d+)$")
      k, c, s = tonumber(k), tonumber(c), tonumber(s)
      if not best[k] or c > best[k].n then best[k] = { n = c, s = s } end
    end
    p:close()
    local keys = 0
    for k, c in pairs(count) do
      keys = keys + 1
      assert.is_not_nil(best[k], "key " .. k)
      assert.equal(c, best[k].n, "count of key " .. k)
      assert.equal(sum[k], best[k].s, "sum of key " .. k)
    end
    assert.equal(3001, keys)
    -- the groups went through the checkpoint: its index holds them
    local c = assert(core.checkpoint(ck, { read_only = true }))
    local states = c:stats().states
    c:close()
    assert.equal(3001, states["agg1"].entries)
    local indexed, runs = 0, 0
    for name, st in pairs(states) do
      if name:match("^agg1%.keys%.%d+%-%d+$") then indexed, runs = indexed + st.entries, runs + 1 end
    end
    assert.equal(3001, indexed) -- every group, once
    assert.is_true(runs >= 1 and runs <= 12)
    os.execute(string.format("rm -rf '%s' '%s' '%s' '%s' '%s' '%s'", src, out, ck, done, errf, script))
  end)
end)
