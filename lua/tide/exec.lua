--- The execution layer: a frame's plan compiled into operator instances.
--
-- A frame is an immutable description (tide.frame: logical plan nodes).
-- `compile(frame)` runs the planning passes (tide.plan) and makes one
-- operator instance per plan node; an operator is an object whose
-- `run(input, ctx)` returns an iterator of its output batches:
--
--   * `input` is its child's iterator (unary operators), an array of
--     functions that open each child's iterator (union, join: they open
--     them when they need them), or, for a streaming source, the array of
--     batches the engine fetched for it in this micro-batch;
--   * `ctx` is nil for a static run (a stateful operator then aggregates
--     its whole input from an empty state) and, while a streaming query
--     runs a micro-batch, the operator's context: `mode` (output mode),
--     `watermark` (this batch's, for eviction and output), `late_watermark`
--     (the previous batch's, for late rows), `timestamp` (the batch's
--     processing time, ms: a re-run batch has its logged one), `state`
--     (the state handle this plan instance keeps for the operator),
--     `metrics` ({ updated,
--     dropped_by_watermark, dropped_duplicates }), `late` (a function
--     taking a batch of late input rows, or nil), and for a watermark node
--     `stats` ({ count, sum, min, max } of the event times it passes on).
--
-- Nothing is written into the frame's nodes: everything a run changes is
-- in the operators' contexts and the states the caller holds. So one frame
-- can back several queries, and one query can run N instances of its plan
-- side by side, each with its own states (one per partition).
--
-- Batches and owners: an operator whose `owns` is true makes a fresh batch
-- for every batch it yields, which nobody else holds: its consumer closes
-- it once used (`Op:release`), so memory is reused at once instead of
-- waiting for the garbage collector (which does not see the C memory behind
-- a batch). Operators that pass their input's batches through own what
-- their input owns; sources that hand out batches they keep own none.
--
-- A stateful operator (aggregate, dedup, session) also has `new_state()`:
-- a fresh state handle in the form the streaming engine keeps
-- (tide.query, "Stateful operators"): st.restore(key, blob),
-- st.take_changes(), st.clear_changes(), st.rows(), st.bytes().
--
-- A plan node whose op this module does not know brings its own operator
-- factory as `node.physical(node)` (session windows: tide.session).
--
-- @module tide.exec

local core = require "tide.core"
local util = require "tide.util"
local plan = require "tide.plan"
local frame = require "tide.frame"

local M = {}

local format = string.format
local type, error, ipairs, pairs, setmetatable = type, error, ipairs, pairs, setmetatable

-- ------------------------------------------------------------------------
-- Helpers
-- ------------------------------------------------------------------------

-- Raise the failure of an operator while running (data errors: a UDF that
-- raised, a row that breaks a declared schema), naming the operator.
local function run_fail(what, msg)
  error(what .. ": " .. tostring(msg), 0)
end

-- An iterator over the batches of an array.
local function each(list)
  local i = 0
  return function()
    i = i + 1
    return list[i]
  end
end

local once = util.once

-- Fold one batch's event-time figures (core.time_stats) into `stats`.
local function add_time_stats(stats, n, lo, hi, sum)
  if n > 0 then
    stats.count, stats.sum = stats.count + n, stats.sum + sum
    if not stats.min or lo < stats.min then stats.min = lo end
    if not stats.max or hi > stats.max then stats.max = hi end
  end
end

-- Push batch b into keyed state st (core.agg:push with the operator's
-- push parameters q: keys, args, window, filter, dedup); raises naming
-- q.what. first: the rows before b in this run; late: the late bound or
-- nil; time_col: the column whose event times to report, or nil.
local function push(q, st, b, first, late, time_col)
  local ok, info = st.agg:push(b, q.keys, q.args, q.window, q.filter, first, late, q.dedup, time_col)
  if not ok then run_fail(q.what, info) end
  return info
end

-- The late bound of a micro-batch for the event-time column col (its
-- index in the input), or nil when no row can be late.
local function late_bound(ctx, col)
  return col and ctx.late_watermark and { col = col, bound = ctx.late_watermark } or nil
end

-- Hand the late rows a stateful operator dropped (a batch, or nil) to the
-- micro-batch's late-row sink, or close them when there is none.
local function hand_late(ctx, lost)
  if not lost then return end
  if ctx.late then ctx.late(lost) else lost:close() end
end

local Op = {}
Op.__index = Op

--- Close batch b got from child k (default 1) when that child owns it.
function Op:release(b, k)
  local c = self.children[k or 1]
  if c and c.owns then b:close() end
end

-- ------------------------------------------------------------------------
-- State adapter
-- ------------------------------------------------------------------------

-- The state of a keyed streaming operator (an aggregation, a dedup) over
-- one core.agg, in the form the engine takes: records keyed by state id (8
-- bytes, big-endian), the changes since the last commit, evictions.
-- `finish` turns raw result rows into the operator's output (adds
-- window_end).
local function keyed_state(key_schema, specs, finish)
  local a, msg = core.agg(key_schema, specs)
  if not a then run_fail("agg", msg) end
  local st = { agg = a }
  local function done(rows) return finish and finish(rows) or rows end
  function st.restore(key, blob)
    if #key ~= 8 then error(format("bad state key of %d bytes (expected 8)", #key), 0) end
    local ok, err = a:restore((string.unpack(">I8", key)), blob)
    if not ok then error(err, 0) end
  end
  function st.result()
    local out, err = a:result()
    if not out then run_fail("agg", err) end
    return done(out)
  end
  -- The rows of the groups changed since the last commit, and their number.
  function st.changes()
    local rows, n = a:changed_rows()
    if not rows then run_fail("agg", n) end
    return done(rows), n
  end
  -- Remove the groups whose column `col` is <= bound: their rows, or with
  -- want_rows false just their number.
  function st.evict(col, bound, want_rows)
    local rows, n = a:evict(col, bound, want_rows)
    if not rows then run_fail("agg", n) end
    if want_rows == false then return rows end
    return done(rows), n
  end
  -- A change set (core/l_ckpt.h) made in C: deletes of the evicted sids,
  -- then the changed groups' records keyed by sid (8 bytes big-endian,
  -- which is what restore receives).
  function st.take_changes()
    local cs, err = a:take_changes()
    if not cs then run_fail("agg", err) end
    return cs
  end
  -- Bounded memory (state_memory_limit): the groups spill to the
  -- checkpoint's state `name` and come back from it, through its index
  -- (FORMAT.md, "State index"). Call before the restore: st.full() then
  -- says when to stop restoring, st.restored() ends it.
  local attached, loaded, evicted_now = false, 0, 0
  function st.attach(ck, name, limit)
    a:attach(ck, name, limit)
    attached = true
  end
  function st.full() return a:full() end
  function st.restored() a:restored() end
  -- The index changes of the commit take_changes is for: a state name
  -- and its change set, or nil.
  function st.take_index()
    if not attached then return nil end
    return a:take_index()
  end
  function st.clear_changes() evicted_now = a:clear_changes() end
  st.rows = function() return (a:groups()) end
  st.bytes = function() return a:bytes() end
  -- Figures of the last batch: groups in memory, groups spilled at its
  -- commit, groups loaded back while it ran.
  function st.memory()
    local _, mem = a:groups()
    local _, _, l = a:spill_counts()
    local out = { groups_in_memory = mem, groups_evicted = evicted_now, groups_loaded = l - loaded }
    loaded = l
    return out
  end
  return st
end


-- ------------------------------------------------------------------------
-- Operators, by plan node op
-- ------------------------------------------------------------------------

local OPS = {}

-- A source: a static one runs its node's batch generator; a streaming one
-- yields the batches the engine fetched for it (the engine closes them).
function OPS.source(node)
  if node.stream then
    return { owns = false, stream = true, run = function(_, input) return each(input or {}) end }
  end
  return { owns = node.owns or false, run = function() return node.batches() end }
end

-- Every batch through the node's kernel, node.map(batch, rows before it):
-- project, where, filter, window assignment and the Lua UDFs.
local function map_op(node)
  local kernel = node.map
  return {
    owns = true,
    run = function(self, input)
      local rows = 0 -- rows of the input before this batch, for messages
      return function()
        local b = input()
        if b == nil then return nil end
        local out = kernel(b, rows)
        rows = rows + b:nrows()
        self:release(b)
        return out
      end
    end,
  }
end

-- A watermark passes its input on and, in a micro-batch, counts the event
-- times it passes (before any stateful operator drops late rows, which
-- still move the watermark).
function OPS.watermark(node)
  local col = node.watermark_col
  return {
    run = function(_, input, ctx)
      local stats = ctx and ctx.stats
      if not stats then return input end
      return function()
        local b = input()
        if b ~= nil then add_time_stats(stats, core.time_stats(b, col)) end
        return b
      end
    end,
  }
end

-- 1 when child op (an aggregation's input) is a file source whose reading
-- a static aggregation with push parameters q can take over in one stage
-- (agg:scan_files): a `where` fused in, not a Lua filter.
local function scan_source(child, q)
  return child and child.node.scan ~= nil and (q.filter == nil or type(q.filter) == "userdata")
end

-- A hash aggregation (frame.lua's Grouped:agg describes it; fuse is the
-- planner's filter fusion, or nil).
function OPS.aggregate(node, fuse)
  local specs, key_schema, et_key = node.specs, node.key_schema, node.et_key
  local q = { keys = node.keys, args = node.args, window = node.window, filter = fuse and fuse.filter,
    what = fuse and fuse.filter_kind or "agg" }
  local mark_col = fuse and fuse.mark and fuse.mark.watermark_col
  local finish
  if node.finish_exprs then -- raw result -> the node's schema (adds window_end)
    local exprs, schema = node.finish_exprs, node.schema
    finish = function(b)
      local out, msg = core.project(b, exprs, schema)
      if not out then run_fail("agg", msg) end
      b:close()
      return out
    end
  end
  -- A global aggregation (no key) always has its one row, as Spark's: over
  -- no rows it is count 0 and NULL for the other aggregates (their
  -- columns are nullable); in update mode it is output every batch, since
  -- Spark's aggregation hands its one row to the state store every batch.
  local function one_row(out)
    if not node.global or out:nrows() > 0 then return out end
    out:close()
    local row = {}
    for _, sp in ipairs(specs) do
      if sp.kind == "count" or sp.kind == "count_star" or sp.kind == "count_distinct" then row[sp.name] = 0 end
    end
    local b, msg = core.rows_batch(node.schema, { row })
    if not b then run_fail("agg", msg) end
    return b
  end
  local op = { owns = true }
  function op.new_state() return keyed_state(key_schema, specs, finish) end
  -- One micro-batch (SEMANTICS.md s.3, s.4): late (row, window) pairs are
  -- dropped; then complete mode outputs the whole table, update mode the
  -- groups this batch changed (then forgets those the watermark passed),
  -- append mode the groups the watermark passed, once, final.
  local function run_batch(self, input, ctx)
    local st, m, first = ctx.state, ctx.metrics, 0
    local late = et_key and ctx.mode ~= "complete" and late_bound(ctx, node.et_col) or nil
    local stats = mark_col and ctx.time_stats
    for b in input do
      local info = push(q, st, b, first, late, stats and mark_col)
      first = first + b:nrows()
      self:release(b)
      if stats then add_time_stats(stats, info.time_count, info.time_min, info.time_max, info.time_sum) end
      if type(info) == "table" then
        m.dropped_by_watermark = m.dropped_by_watermark + (info.late_groups or 0)
        hand_late(ctx, info.lost)
      end
    end
    local changed, nchanged = st.changes()
    m.updated = m.updated + nchanged
    local evict = ctx.mode ~= "complete" and et_key and ctx.watermark
    if ctx.mode == "complete" or (node.global and ctx.mode == "update") then
      changed:close()
      return one_row(st.result())
    elseif ctx.mode == "update" then
      if evict then st.evict(et_key.name, ctx.watermark - et_key.shift, false) end
      return changed
    end
    changed:close()
    if not evict then return nil end
    return (st.evict(et_key.name, ctx.watermark - et_key.shift))
  end
  function op.run(self, input, ctx)
    if ctx then return once(run_batch(self, input, ctx)) end
    local done = false
    return function() -- static: the groups of the whole input
      if done then return nil end
      done = true
      local st, first = op.new_state(), 0
      -- only the final rows are wanted: the fold of each parallel push runs
      -- on every worker, one part of the keys each (agg.h, tide_agg_set_static)
      -- With workers, a file source read by nothing else is read, decoded,
      -- filtered and aggregated in one stage, each worker taking whole
      -- ranges (core/scan.h); false: it did nothing, the input runs as below
      -- (which also reports a bad line: the first one, as one thread does)
      if st.agg:set_static() and scan_source(self.children[1], q) then
        local sc = self.children[1].node.scan
        local ok, err = st.agg:scan_files(sc.files(), sc.format, sc.schema, sc.opts, q.keys, q.args, q.window,
          q.filter)
        if ok == nil then run_fail(q.what, err) end
        if ok then return one_row(st.result()) end
      end
      for b in input do
        push(q, st, b, first)
        first = first + b:nrows()
        self:release(b)
      end
      return one_row(st.result())
    end
  end
  return op
end

-- drop_duplicates and drop_duplicates_within_watermark (SEMANTICS.md
-- s.6): the first row of each key passes whole, later rows of the key are
-- dropped; the aggregation reports the rows that created a group.
function OPS.dedup(node)
  local specs, key_schema = node.specs, node.key_schema
  local et, delay, within, et_is_key = node.event_time, node.event_delay, node.within, node.et_is_key
  local q = { keys = node.keys, args = node.args, dedup = true, what = node.what }
  local op = { owns = true }
  function op.new_state() return keyed_state(key_schema, specs) end
  local function run_batch(self, input, ctx)
    local st, m, first = ctx.state, ctx.metrics, 0
    local late = et and late_bound(ctx, node.et_col)
    local outs = {}
    for b in input do
      local info = push(q, st, b, first, late)
      first = first + b:nrows()
      self:release(b)
      local new = info.new
      m.dropped_by_watermark = m.dropped_by_watermark + (info.late_pairs or 0)
      m.dropped_duplicates = m.dropped_duplicates + info.pushed - new:nrows()
      m.updated = m.updated + new:nrows()
      if new:nrows() > 0 then outs[#outs + 1] = new else new:close() end
      hand_late(ctx, info.lost)
    end
    local w = ctx.watermark
    if w and within and et then
      st.evict("__tide_expires_at", w - delay, false)
    elseif w and et_is_key then
      st.evict(et, w, false)
    end
    return outs
  end
  function op.run(self, input, ctx)
    if ctx then return each(run_batch(self, input, ctx)) end
    local st, first = op.new_state(), 0
    return function()
      while true do
        local b = input()
        if b == nil then return nil end
        local info = push(q, st, b, first)
        first = first + b:nrows()
        self:release(b)
        if info.new:nrows() > 0 then return info.new end
        info.new:close()
      end
    end
  end
  return op
end

-- A join with a static right side, built into a hash table on each run.
function OPS.join(node)
  return {
    owns = true, nary = true,
    run = function(self, input)
      local all = {}
      for b in input[2]() do all[#all + 1] = b end
      local rb = core.concat(all, node.right.schema)
      local j, msg = core.join(rb, node.rk)
      if not j then run_fail("join", msg) end
      local next_batch = input[1]()
      return function()
        local b = next_batch()
        if b == nil then return nil end
        local out, err = j:probe(b, node.lk, node.outer, node.schema, node.rcols)
        if not out then run_fail("join", err) end
        self:release(b)
        return out
      end
    end,
  }
end

-- The batches of each input in turn (both have the same names and types).
function OPS.union()
  return {
    nary = true, -- owns what it hands on when every input owns its batches (compile)
    run = function(_, input)
      return util.chain(function(k) return input[k] and input[k]() end)
    end,
  }
end

-- A sort of the whole input: the sort keys that are not columns are
-- computed into a wider batch, sorted, and projected back.
function OPS.sort(node)
  return {
    owns = true,
    run = function(self, input)
      local done = false
      return function()
        if done then return nil end
        done = true
        local parts = {}
        for b in input do
          parts[#parts + 1] = core.project(b, node.sort_exprs, node.wide)
          self:release(b)
        end
        local all = core.concat(parts, node.wide)
        for _, p in ipairs(parts) do p:close() end
        local sorted = core.sort(all, node.sort_keys)
        all:close()
        local out = core.project(sorted, node.back, node.schema)
        sorted:close()
        return out
      end
    end,
  }
end

-- The first node.n rows.
function OPS.limit(node)
  return {
    owns = false,
    run = function(_, input)
      local left = node.n
      return function()
        if left <= 0 then return nil end
        while true do
          local b = input()
          if b == nil then return nil end
          local rows = b:nrows()
          if rows > 0 then
            if rows > left then b = core.slice(b, 0, left) end
            left = left - b:nrows()
            return b
          end
        end
      end
    end,
  }
end

-- ------------------------------------------------------------------------
-- Plans
-- ------------------------------------------------------------------------

local Plan = {}
Plan.__index = Plan

--- Compile a frame (or a logical plan node) into a plan: operator
-- instances, never shared with another plan.
-- @param f a frame, or its root plan node
-- @tab[opt] opts for tide.plan.optimize (`fuse_filters = false` runs every
-- node as itself)
-- @return a plan with `root` (the root operator), `schema`, and, in the
-- order the streaming engine numbers them (tide.plan.walk: sources
-- first), `sources`, `stateful` and `marks`: arrays of { node =, op = }
-- (a watermark folded into an aggregation has no op of its own)
-- The global watermark after a batch (SEMANTICS.md s.2, Spark's
-- WatermarkTracker): each with_watermark node's value is the largest event
-- time it has seen minus its delay (0 while it has seen none since the
-- query started); the global one is their min (or max, by policy) and
-- never moves backward. marks[i].node is a plan's i-th with_watermark node,
-- held[i].value its value so far (updated here), stats[i] its batch's event
-- times; returns the new watermark (current when there are no marks). One
-- rule for a query and for a scale-out task.
function M.advance_watermark(marks, held, stats, policy, current)
  local values = {}
  for i, m in ipairs(marks) do
    local st, h = stats[i], held[i]
    if st and st.count > 0 then
      -- saturating: a max near the int64 limits (an int column, a computed
      -- time) must not wrap around into the far future (issue 18)
      local w = util.ts_minus(st.max, m.node.event_delay)
      if h.value == nil or w > h.value then h.value = w end
    elseif h.value == nil then
      h.value = 0
    end
    values[i] = h.value
  end
  if #values == 0 then return current end
  local w = (policy == "max" and math.max or math.min)(table.unpack(values))
  if current == nil or w > current then return w end
  return current
end

function M.compile(f, opts)
  local root = frame.plan_of(f)
  local decisions = plan.optimize(root, opts)
  local p = setmetatable({ schema = root.schema, sources = {}, stateful = {}, marks = {} }, Plan)
  local ops = {} -- node -> its operator (a node reached twice is one operator)
  local function build(n)
    if ops[n] then return ops[n] end
    local fuse = decisions.fused[n]
    local make = OPS[n.op] or (n.map and map_op) or n.physical
    if not make then error(format("exec: no operator for plan node '%s'", tostring(n.op)), 2) end
    local op = setmetatable(make(n, fuse), Op)
    op.node, op.children = n, {}
    local kids = fuse and { fuse.feed } or n.inputs or { n.input, n.right }
    for i, c in pairs(kids) do op.children[i] = build(c) end
    if op.owns == nil then
      local owns = op.children[1] ~= nil
      for _, c in pairs(op.children) do owns = owns and c.owns end
      op.owns = owns
    end
    ops[n] = op
    return op
  end
  p.root = build(root)
  local fused_marks = {}
  for n, d in pairs(decisions.fused) do
    if d.mark then fused_marks[d.mark] = ops[n] end
  end
  plan.walk(root, function(n)
    if n.stream then
      p.sources[#p.sources + 1] = { node = n, op = ops[n] }
      ops[n].source = #p.sources
    end
    if n.op == "watermark" and not n.static then
      p.marks[#p.marks + 1] = { node = n, op = ops[n], into = fused_marks[n] }
    end
    if n.stateful and not n.static then p.stateful[#p.stateful + 1] = { node = n, op = ops[n] } end
  end)
  return p
end

-- Open op's iterator: its children first (lazily for n-ary operators).
local function open(op, run)
  local ctx = run and not op.node.static and run.ctx[op] or nil
  local input
  if op.source then
    input = run and run.inputs[op.source] or {}
  elseif op.nary then
    input = {}
    for i, c in ipairs(op.children) do input[i] = function() return open(c, run) end end
  elseif op.children[1] then
    input = open(op.children[1], run)
  end
  return op:run(input, ctx)
end

--- Iterate the batches of a static run (stateful operators start from an
-- empty state; streaming sources give nothing).
function Plan:open()
  return open(self.root, nil)
end

--- A fresh state handle for stateful operator k (its place in `stateful`).
function Plan:new_state(k)
  return self.stateful[k].op.new_state()
end

--- Run one micro-batch through the plan.
-- @tab inputs the batches of each streaming source (`inputs[i]` for
-- `sources[i]`; the caller keeps and closes them)
-- @tab b the batch: `mode`, `watermark`, `late_watermark`, `timestamp`
-- (the batch's processing time, ms), `late`
-- (function(batch) or nil) and `states` (`states[k]` for `stateful[k]`,
-- from new_state; this plan instance's)
-- @return the output batches (the caller's to close), and `{ metrics =
-- { [k] = { updated, dropped_by_watermark, dropped_duplicates } }, stats =
-- { [i] = { count, sum, min, max } for marks[i] } }`
-- @raise what an operator raised; the outputs made so far are closed
function Plan:execute(inputs, b)
  local ctx, metrics, stats = {}, {}, {}
  for k, s in ipairs(self.stateful) do
    metrics[k] = { updated = 0, dropped_by_watermark = 0, dropped_duplicates = 0 }
    ctx[s.op] = { mode = b.mode, watermark = b.watermark, late_watermark = b.late_watermark, late = b.late,
      state = b.states[k], metrics = metrics[k], timestamp = b.timestamp }
  end
  for i, m in ipairs(self.marks) do
    stats[i] = { count = 0, sum = 0 }
    if m.op then ctx[m.op] = { stats = stats[i] } end
    if m.into and ctx[m.into] then ctx[m.into].time_stats = stats[i] end
  end
  local outputs = {}
  local ok, err = pcall(function()
    for out in open(self.root, { inputs = inputs, ctx = ctx }) do outputs[#outputs + 1] = out end
  end)
  if not ok then
    if self.root.owns then
      for _, out in ipairs(outputs) do out:close() end
    end
    error(err, 0)
  end
  return outputs, { metrics = metrics, stats = stats, owned = self.root.owns }
end

-- Static frames run through here (frame.lua cannot require this module).
frame.set_engine("open", function(node) return M.compile(node):open() end)

M.Plan, M.Op = Plan, Op
return M
