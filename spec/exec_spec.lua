-- The execution layer (lua/tide/exec.lua): a frame is an immutable
-- description, compiled into operator instances whose state lives in the
-- context they run with. So one frame backs several queries at once, and one
-- plan runs as N instances side by side (one per partition), each with its
-- own state. Real checkpoints (LMDB) in temporary directories.

local tide = require "tide"
local core = require "tide.core"
local exec = require "tide.exec"
local util = require "tide.util"
local support = require "spec.support"

local function rm(dir) os.execute("rm -rf '" .. dir .. "'") end

local function sorted(rows)
  table.sort(rows, function(a, b) return util.json_encode(a) < util.json_encode(b) end)
  return rows
end

-- Each plan node of a frame, and each table among its fields (but its
-- inputs, walked as nodes, and a streaming source's live connector
-- objects), with a copy of its fields, so that a spec can tell whether
-- running changed any of them.
local function snapshot(f)
  local out = {}
  local function copy(t)
    if out[t] then return end
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    out[t] = c
  end
  local function walk(n)
    if out[n] then return end
    copy(n)
    for k, v in pairs(n) do
      if type(v) == "table" and k ~= "input" and k ~= "inputs" and k ~= "right" and k ~= "stream" then copy(v) end
    end
    for _, c in ipairs(n.inputs or { n.input, n.right }) do walk(c) end
  end
  walk(f._node)
  return out
end

local function changes(snap)
  local diffs = {}
  for t, copy in pairs(snap) do
    for k, v in pairs(t) do
      if copy[k] ~= v then diffs[#diffs + 1] = tostring(k) end
    end
    for k in pairs(copy) do
      if t[k] == nil then diffs[#diffs + 1] = tostring(k) end
    end
  end
  table.sort(diffs)
  return diffs
end

describe("tide.exec", function()
  local dirs = {}
  local function ckdir()
    dirs[#dirs + 1] = support.tmpname() .. "-ck"
    return dirs[#dirs]
  end
  after_each(function()
    for _, q in ipairs(tide.queries()) do q:stop() end
    for _, d in ipairs(dirs) do rm(d) end
    dirs = {}
  end)

  describe("one frame behind two queries", function()
    it("gives each query the right counts with its own sink and checkpoint, and changes no plan node", function()
      local ms = tide.memory_stream("k string, v int")
      local before
      local seen = {} -- what changed in the plan nodes, seen while batches run
      local function look() for _, k in ipairs(changes(before)) do seen[#seen + 1] = k end end
      local f = ms:frame():filter(function(r) look() return r.v > 0 end):group_by("k")
        :agg { "count(*) AS n", "sum(v) AS s" }
      before = snapshot(f)
      local latest = {} -- the update-mode query's latest row per key
      local q1 = f:write_stream("memory", { name = "exec_two_a", mode = "complete", checkpoint = ckdir() })
      local q2 = f:write_stream(function(_, rows)
        look()
        for _, r in ipairs(rows) do latest[r.k] = { n = r.n, s = r.s } end
      end, { mode = "update", checkpoint = ckdir() })
      assert.is_true(q1:is_active() and q2:is_active())

      ms:add { { k = "a", v = 1 }, { k = "b", v = 2 }, { k = "a", v = 3 }, { k = "c", v = 0 } }
      q1:process_all_available() -- q1 runs batch 0 alone
      ms:add { { k = "b", v = 5 }, { k = "c", v = 7 } }
      q2:process_all_available() -- q2 catches up on both adds at once
      ms:add { { k = "a", v = 10 } }
      q1:process_all_available()
      q2:process_all_available()

      local want = { a = { n = 3, s = 14 }, b = { n = 2, s = 7 }, c = { n = 1, s = 7 } }
      local got = {}
      for _, r in ipairs(tide.table("exec_two_a"):collect()) do got[r.k] = { n = r.n, s = r.s } end
      assert.same(want, got)
      assert.same(want, latest)
      -- each query's state holds every group once
      assert.equal(3, q1:last_progress().state_operators[1].num_rows_total)
      assert.equal(3, q2:last_progress().state_operators[1].num_rows_total)
      -- both read all three adds, each in its own batches
      for _, q in ipairs { q1, q2 } do
        local ps = q:recent_progress()
        for i, p in ipairs(ps) do assert.equal(i - 1, p.batch_id) end
        assert.equal(3, ps[#ps].sources[1].end_offset)
      end
      assert.same({}, changes(before))
      assert.same({}, seen)
    end)

    it("runs a static frame while a query over it is active, each with its own state", function()
      local ms = tide.memory_stream("k string")
      local f = ms:frame():group_by("k"):count()
      local q = f:write_stream("memory", { name = "exec_two_b", mode = "complete", checkpoint = ckdir() })
      ms:add { { k = "x" }, { k = "x" } }
      q:process_all_available()
      -- the same aggregation over static rows, compiled and run on its own
      local plan = exec.compile(tide.from_rows({ { k = "x" }, { k = "y" } }, "k string"):group_by("k"):count())
      local rows = {}
      for b in plan:open() do
        for _, r in ipairs(b:rows()) do rows[#rows + 1] = r end
      end
      assert.same({ { k = "x", count = 1 }, { k = "y", count = 1 } }, sorted(rows))
      ms:add { { k = "x" } }
      q:process_all_available()
      assert.same({ { k = "x", count = 3 } }, tide.table("exec_two_b"):collect())
    end)
  end)

  describe("N plan instances over partitioned input", function()
    local SCHEMA = "ts timestamp, k string, v int"
    local function rows_of_batch(j)
      local rows = {}
      for i = 1, 40 do
        local n = j * 40 + i
        rows[i] = { ts = n * 700, k = "key" .. (n * 7 % 11), v = n % 5 }
      end
      return rows
    end
    local function partition_of(k) return (k:byte(-1) + #k) % 3 + 1 end

    local function collect_outputs(outputs, into)
      for _, b in ipairs(outputs) do
        for _, r in ipairs(b:rows()) do into[#into + 1] = r end
        b:close()
      end
    end

    it("hold their own state and together give the single instance's result", function()
      local ms = tide.memory_stream(SCHEMA)
      local f = ms:frame():group_by(tide.window("ts", "10 seconds"), "k"):agg { "count(*) AS n", "sum(v) AS s" }
      local schema = assert(core.schema(SCHEMA))

      local one = exec.compile(f)
      assert.equal(1, #one.sources)
      assert.equal(1, #one.stateful)
      local one_states = { one:new_state(1) }
      local parts, part_states = {}, {}
      for i = 1, 3 do
        parts[i] = exec.compile(f)
        part_states[i] = { parts[i]:new_state(1) }
      end
      assert.are_not.equal(parts[1].root, parts[2].root)

      local single_last, parts_last
      for j = 0, 3 do
        local rows = rows_of_batch(j)
        local input = assert(core.rows_batch(schema, rows))
        single_last = {}
        collect_outputs((one:execute({ { input } }, { mode = "complete", states = one_states })), single_last)
        input:close()
        local split = { {}, {}, {} }
        for _, r in ipairs(rows) do
          local p = split[partition_of(r.k)]
          p[#p + 1] = r
        end
        parts_last = {}
        for i = 1, 3 do
          local b = assert(core.rows_batch(schema, split[i]))
          collect_outputs((parts[i]:execute({ { b } }, { mode = "complete", states = part_states[i] })), parts_last)
          b:close()
        end
      end
      assert.is_true(#single_last > 20)
      assert.same(sorted(single_last), sorted(parts_last))

      -- each instance's state holds only the groups of its own keys
      local total = 0
      for i = 1, 3 do
        local st = part_states[i][1]
        assert.is_true(st.rows() > 0)
        total = total + st.rows()
        local seen = {}
        for _, r in ipairs(parts_last) do
          if partition_of(r.k) == i then seen[r.window_start .. r.k] = true end
        end
        local n = 0
        for _ in pairs(seen) do n = n + 1 end
        assert.equal(n, st.rows())
      end
      assert.equal(one_states[1].rows(), total)
    end)

    it("count their own metrics, watermarks and late rows per instance", function()
      local ms = tide.memory_stream(SCHEMA)
      local f = ms:frame():with_watermark("ts", "0 seconds"):drop_duplicates("k", "ts")
      local schema = assert(core.schema(SCHEMA))
      local a, b = exec.compile(f), exec.compile(f)
      local sa, sb = { a:new_state(1) }, { b:new_state(1) }
      local function run(p, states, rows, late_wm)
        local input = assert(core.rows_batch(schema, rows))
        local late = {}
        local out, info = p:execute({ { input } }, { mode = "append", watermark = late_wm, late_watermark = late_wm,
          states = states, late = function(x) late[#late + 1] = x:nrows() x:close() end })
        input:close()
        local got = {}
        collect_outputs(out, got)
        return got, info, late
      end
      local got, info = run(a, sa, { { ts = 1000, k = "x", v = 1 }, { ts = 1000, k = "x", v = 2 } }, 0)
      assert.equal(1, #got)
      assert.equal(1, info.metrics[1].dropped_duplicates)
      assert.same({ count = 2, sum = 2000, min = 1000, max = 1000 }, info.stats[1])
      -- b has seen nothing of a's keys
      got, info = run(b, sb, { { ts = 1000, k = "x", v = 3 } }, 0)
      assert.equal(1, #got)
      assert.equal(0, info.metrics[1].dropped_duplicates)
      -- a row older than b's late bound is late in b only
      local late
      got, info, late = run(b, sb, { { ts = 500, k = "y", v = 4 } }, 900)
      assert.same({}, got)
      assert.equal(1, info.metrics[1].dropped_by_watermark)
      assert.same({ 1 }, late)
      got = run(a, sa, { { ts = 500, k = "y", v = 4 } }, 0)
      assert.equal(1, #got)
    end)
  end)
end)
