--- Session windows: `group_by(key..., tide.session_window(col, gap)):agg{...}`.
--
-- A row at time t opens the session [t, t + gap). Within one key,
-- sessions sorted by start merge while the next one starts at or before
-- the end of the current one (touching sessions merge), so one row may
-- join two sessions into one, as Spark's MergingSessionsIterator does
-- (SEMANTICS.md s.7). Rows with a NULL time belong to no session.
--
-- first/last follow event time, not arrival order: first is the value of
-- the row with the smallest time (ties: the one seen first), last of the
-- largest (ties: the one seen last). Spark sorts a key's rows by session
-- start before aggregating them, so its first/last are event-time ordered
-- too; and this makes the result the same however the rows are split into
-- batches.
--
-- This module plans: the spec object, the node's analysis and output
-- schema, the projection of the columns the operator reads, and the glue
-- to the execution layer (lua/tide/exec.lua: the node brings its operator
-- as node.physical, run(batches, ctx)). The computation itself is
-- core/session.c (tide.Session): sort by key and time, sweep, merge, over
-- a core/agg aggregation whose records are the session state
-- (docs/FORMAT.md, "Session window state").
--
-- @module tide.session

local core = require "tide.core"
local util = require "tide.util"

local M = {}

local format, unpack = string.format, string.unpack
local type, error, ipairs, setmetatable, getmetatable = type, error, ipairs, setmetatable, getmetatable

-- ------------------------------------------------------------------------
-- The spec
-- ------------------------------------------------------------------------

local SessionWindow = {}
SessionWindow.__index = SessionWindow

function SessionWindow:__tostring()
  return format("session_window(%s, %s)", self.col, util.format_duration(self.gap))
end

--- A session window key for `group_by`.
-- @string col a timestamp column
-- @param gap a duration > 0 (`"10 seconds"`, or ms)
-- @raise `session_window: bad argument #1: expected a column name, got ...`,
-- `session_window: invalid duration ...`, `session_window: gap must be > 0`
function M.session_window(col, gap)
  if type(col) ~= "string" then
    error("session_window: bad argument #1: expected a column name, got " .. type(col), 2)
  end
  local ms = util.duration(gap, "session_window", 3)
  if ms <= 0 then error("session_window: gap must be > 0, got " .. util.format_duration(ms), 2) end
  return setmetatable({ col = col, gap = ms }, SessionWindow)
end

--- True when v is a session window spec.
function M.is(v) return getmetatable(v) == SessionWindow end

-- ------------------------------------------------------------------------
-- The plan node
-- ------------------------------------------------------------------------

local function base_type(ty) return (ty:gsub("%?$", "")) end

-- The state of a session window node for the engine (query.lua,
-- "Stateful operators") over one tide.Session: records keyed by state id
-- (8 bytes, big-endian), the changes as a change set made in C.
local function new_state(p)
  local s, msg = core.session(p.key_schema, p.specs, p.gap, p.schema, p.window_index)
  if not s then error("session_window: " .. tostring(msg), 0) end
  local st = { session = s }
  function st.restore(key, blob)
    if type(key) ~= "string" or #key ~= 8 then
      error(format("session state: bad record key (%s): expected 8 bytes", type(key) == "string" and
        (#key .. " bytes") or type(key)), 2)
    end
    local ok, err = s:restore((unpack(">I8", key)), blob)
    if not ok then error(err, 2) end
  end
  function st.take_changes() return s:take_changes() end
  function st.clear_changes() s:clear_changes() end
  function st.rows() return s:rows() end
  function st.bytes() return s:bytes() end
  return st
end

--- The plan node of a session window aggregation (see the module header
-- and the operator interface in lua/tide/exec.lua).
-- @tab spec `{ input, keys, key_fields, col, col_name, gap, specs, args,
-- schema, window_index, label }`, from frame.lua's Grouped:agg
function M.node(spec)
  local input = spec.input
  local nk = #spec.keys
  local specs = {}
  for i, s in ipairs(spec.specs) do
    specs[i] = { kind = s.kind, arg_type = s.arg_type and base_type(s.arg_type), name = s.name }
  end

  -- One projection gives every column the operator reads: k1..kn (the
  -- keys), t (the event time), then the aggregates' arguments (count(*)
  -- has none), in the order core/session.h's push_batch takes them.
  local exprs, pfields, kfields = {}, {}, {}
  for i, e in ipairs(spec.keys) do
    exprs[#exprs + 1], pfields[#pfields + 1] = e, { "k" .. i, e:type() .. "?" }
    kfields[i] = pfields[#pfields]
  end
  local tcol, msg = core.expr("`" .. spec.col_name .. "`", input.schema)
  if not tcol then error("session_window: " .. msg, 3) end
  exprs[#exprs + 1], pfields[#pfields + 1] = tcol, { "t", "timestamp?" }
  for i, a in ipairs(spec.args) do
    if a then exprs[#exprs + 1], pfields[#pfields + 1] = a, { "a" .. i, a:type() .. "?" } end
  end
  local pschema = assert(core.schema(pfields))
  local p = { key_schema = nk > 0 and assert(core.schema(kfields)) or nil, specs = specs, gap = spec.gap,
    schema = spec.schema, window_index = spec.window_index }
  do -- the aggregates are checked now, not when running
    local probe, err = core.session(p.key_schema, specs, p.gap, p.schema, p.window_index)
    if not probe then error("session_window: " .. tostring(err), 3) end
  end

  local node = {
    op = "session_aggregate", input = input, schema = spec.schema, fields = spec.schema:fields(),
    static = input.static, owns = true, label = spec.label, stateful = "session",
    keys = spec.keys, -- the grouping keys but the window (tide.topology partitions by them)
  }
  if input.event_time == spec.col_name then
    -- the session's end carries the watermark on, as a window's does in Spark
    node.event_time, node.event_delay = "window_end", input.event_delay
  end

  function node.new_state() return new_state(p) end
  function node.due(mode) return mode == "append" end
  function node.check(mode, has_watermark)
    if mode == "update" then
      return "session windows support append and complete output modes, not update (as in Spark)"
    end
    if nk == 0 then
      return "a session window in a streaming query needs at least one other grouping key " ..
        "(global aggregation with a session window is not supported, as in Spark)"
    end
    if mode == "append" and (not has_watermark or input.event_time ~= spec.col_name) then
      return format("append mode on session_window(%s, %s) needs a watermark on '%s' " ..
        "(f:with_watermark(\"%s\", delay) before group_by)", spec.col_name, util.format_duration(spec.gap),
        spec.col_name, spec.col_name)
    end
    return nil
  end

  -- Feed batch b into session s. late_bound: rows with t + gap <= it are
  -- late; with keep_late their input rows come back as info.lost.
  local function push(s, b, late_bound, keep_late)
    local pb, err = core.project(b, exprs, pschema)
    if not pb then error("session_window: " .. tostring(err), 0) end
    local ok, info = s:push(pb, late_bound, keep_late and b or nil)
    pb:close()
    if not ok then error("session_window: " .. tostring(info), 0) end
    return info
  end

  local function ok_batch(b, err)
    if not b then error("session_window: " .. tostring(err), 0) end
    return b
  end

  local one = util.once

  -- The operator (tide.exec's interface): run(batches, ctx) with ctx nil
  -- for a static run, else the micro-batch's context (state, mode,
  -- watermark, late_watermark, metrics, late).
  function node.physical()
    local op = { owns = true, new_state = node.new_state }
    function op.run(self, batches, run)
      if not run then
        local s = new_state(p).session
        for b in batches do
          push(s, b)
          self:release(b)
        end
        return one(ok_batch(s:result()))
      end
      local s, append = run.state.session, run.mode == "append"
      if run.mode ~= "append" and run.mode ~= "complete" then
        error("session_window: output mode " .. tostring(run.mode) .. " (append and complete only)", 0)
      end
      local late_bound = append and run.late_watermark or nil
      for b in batches do
        local info = push(s, b, late_bound, run.late ~= nil)
        run.metrics.dropped_by_watermark = run.metrics.dropped_by_watermark + info.late
        run.metrics.updated = run.metrics.updated + info.updated
        if info.lost then run.late(info.lost) end
        self:release(b)
      end
      if not append then return one(ok_batch(s:result())) end
      local wm = run.watermark
      if wm == nil then return one(ok_batch(core.rows_batch(spec.schema, {}))) end
      return one(ok_batch(s:evict(wm)))
    end
    return op
  end
  return node
end

return M
