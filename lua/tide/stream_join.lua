--- Stream-stream joins: the plan node of `left:join(right, on, how)` when
-- both sides are streams, and its operator (Spark's
-- StreamingSymmetricHashJoinExec; the matching itself is core/sjoin.c).
--
-- Planning reads the condition as Spark's StreamingSymmetricHashJoinHelper
-- does (core/expr.h's conjuncts):
--
--  * equalities between a column of each side are the hash keys (at least
--    one is needed: "without equality predicate" is refused, as in Spark);
--  * conjuncts on one side's columns alone filter that side's rows before
--    they are kept (a row failing them can never match);
--  * the state watermark of each side. When a key pair holds a side's
--    event-time column (the column its watermark is on; a window's
--    window_end after a windowed select), both sides drop state rows whose
--    key is <= the watermark (Spark's state key watermark). Otherwise a
--    side X with a watermark on X.t drops rows with X.t <= W + c, where a
--    conjunct bounds X.t from below by the other side's event time:
--    `X.t > O.t + c` (or >=, then W + c - 1, as Spark counts); the
--    smallest such bound when there are several (state value watermark);
--  * outer rows are emitted when their side's state drops them unmatched,
--    so an outer join needs a watermark in the join keys, or watermarks on
--    both sides and a range condition bounding the outer side's time by
--    the other's (Spark asks for the latter's watermark only; without the
--    outer side's own no outer row would ever come).
--
-- W is the query's watermark in the batch (eviction); late rows (event
-- time <= the previous batch's watermark) are dropped from both sides
-- (SEMANTICS.md s.2, s.3).
--
-- @module tide.stream_join

local core = require "tide.core"
local util = require "tide.util"

local M = {}

local format, concat = string.format, table.concat

local HOWS = { inner = "inner", left = "left", left_outer = "left", leftouter = "left", right = "right",
  right_outer = "right", rightouter = "right", full = "full", full_outer = "full", outer = "full",
  fullouter = "full", left_semi = "left_semi", leftsemi = "left_semi", semi = "left_semi" }
M.HOWS = HOWS

local NAMES = { inner = "inner", left = "left outer", right = "right outer", full = "full outer",
  left_semi = "left semi" }

local function field_names(fields)
  local out = {}
  for i, f in ipairs(fields) do out[i] = f[1] end
  return concat(out, ", ")
end

local function base(ty) return (ty:gsub("%?$", "")) end
local function nullable(ty) return ty:sub(-1) == "?" and ty or ty .. "?" end

local function index_of(fields, name)
  for i, f in ipairs(fields) do
    if f[1] == name then return i end
  end
end

local function quote(name) return "`" .. name:gsub("`", "``") .. "`" end

local function schema_of(fields, level)
  local s, msg = core.schema(fields)
  if not s then error("join: " .. msg, level + 1) end
  return s
end

local function compile(text, schema, level)
  local e, msg = core.expr(text, schema)
  if not e then error("join: " .. msg, level + 1) end
  return e
end

-- The state watermark plan of side X (1 left, 2 right) from the
-- comparisons of the condition: the smallest shift s such that rows with
-- X.t <= W + s can go, or nil. cmps use pair columns (1-based); et[X] is
-- X's event-time column in the pair, or nil.
local function value_shift(cmps, et, x)
  local o = 3 - x
  if not (et[x] and et[o]) then return nil end
  local best
  local function take(strict, k)
    local s = strict and k or k - 1
    if best == nil or s < best then best = s end
  end
  for _, m in ipairs(cmps) do
    if m.a == et[x] and m.b == et[o] then -- X.t op O.t + c
      if m.op == ">" then take(true, m.c) elseif m.op == ">=" then take(false, m.c) end
    elseif m.a == et[o] and m.b == et[x] then -- O.t op X.t + c  <=>  X.t op' O.t - c
      if m.op == "<" then take(true, -m.c) elseif m.op == "<=" then take(false, -m.c) end
    end
  end
  return best
end

--- The plan node of a stream-stream join (frame.lua's Frame:join calls it
-- when both sides are streams).
-- @param left, right the sides' plan nodes
-- @param on a column name, an array of them, or an expression string
-- @string how inner, left, right, full or left_semi (and Spark's aliases)
-- @int level the error level of the caller of Frame:join
-- @return the node (frame.lua makes it a frame)
function M.node(left, right, on, how, level)
  level = level + 1
  local kind = how == nil and "inner" or type(how) == "string" and HOWS[how:lower()]
  if not kind then
    error(format("join: bad argument #3: how must be inner, left, right, full or left_semi, got %s",
      type(how) == "string" and ("'" .. how .. "'") or type(how)), level)
  end
  local lf, rf = left.fields, right.fields
  local nl = #lf
  local using = type(on) == "table" or (type(on) == "string" and index_of(lf, on) and index_of(rf, on))
  if type(on) == "string" and using then on = { on } end
  if type(on) ~= "table" and type(on) ~= "string" then
    error("join: bad argument #2: expected a column name, an array of column names or a condition", level)
  end
  local pair_fields, out_texts, lk, rk = {}, {}, {}, {}
  local lnull = kind == "right" or kind == "full"
  local rnull = kind == "left" or kind == "full" or kind == "left_semi"
  for i, f in ipairs(lf) do pair_fields[i] = { f[1], lnull and nullable(f[2]) or f[2] } end
  local cond, text
  if using then
    if #on == 0 then error("join: bad argument #2: expected at least one column", level) end
    local is_key = {}
    for i, name in ipairs(on) do
      if type(name) ~= "string" then error(format("join: key %d must be a column name", i), level) end
      local li, ri = index_of(lf, name), index_of(rf, name)
      if not li then
        error(format("join: unknown column '%s' on the left (columns: %s)", name, field_names(lf)), level)
      end
      if not ri then
        error(format("join: unknown column '%s' on the right (columns: %s)", name, field_names(rf)), level)
      end
      local lt, rt = base(lf[li][2]), base(rf[ri][2])
      if lt ~= rt then error(format("join: column '%s' is %s on the left and %s on the right", name, lt, rt), level) end
      if lt == "json" or lt == "double" then
        error(format("join: cannot join on the %s column '%s'", lt, name), level)
      end
      lk[i], rk[i], is_key[name] = li, ri, true
    end
    for i, f in ipairs(rf) do
      local name = f[1]
      if is_key[name] then
        name = "__tide_right." .. name
      elseif index_of(lf, name) then
        error(format("join: column '%s' is on both sides; rename one first (select ... AS ...)", name), level)
      end
      pair_fields[nl + i] = { name, rnull and nullable(f[2]) or f[2] }
    end
    for _, f in ipairs(lf) do
      local name = f[1]
      if is_key[name] and kind == "right" then
        out_texts[#out_texts + 1] = quote("__tide_right." .. name) .. " AS " .. quote(name)
      elseif is_key[name] and kind == "full" then
        out_texts[#out_texts + 1] = format("coalesce(%s, %s) AS %s", quote(name), quote("__tide_right." .. name),
          quote(name))
      else
        out_texts[#out_texts + 1] = quote(name)
      end
    end
    if kind ~= "left_semi" then
      for _, f in ipairs(rf) do
        if not is_key[f[1]] then out_texts[#out_texts + 1] = quote(f[1]) end
      end
    end
    text = concat(on, ", ")
  else
    text = on
    for i, f in ipairs(rf) do
      if index_of(lf, f[1]) then
        error(format("join: column '%s' is on both sides; rename one first (select ... AS ...) so that the " ..
          "condition can name it", f[1]), level)
      end
      pair_fields[nl + i] = { f[1], rnull and nullable(f[2]) or f[2] }
    end
    if kind == "left_semi" then
      for _, f in ipairs(lf) do out_texts[#out_texts + 1] = quote(f[1]) end
    end
  end
  local pair = schema_of(pair_fields, level)

  -- The condition: keys, side-only conjuncts, range comparisons.
  local pre = { {}, {} }
  local cmps = {}
  if not using then
    cond = compile(on, pair, level)
    if cond:type() ~= "bool" then
      error(format("join: the condition must be bool, got %s: %s", cond:type(), cond:text()), level)
    end
    for _, cj in ipairs(cond:conjuncts()) do
      local sides = {}
      for _, c in ipairs(cj.cols) do sides[c <= nl and 1 or 2] = true end
      if sides[1] and not sides[2] then pre[1][#pre[1] + 1] = cj.text
      elseif sides[2] and not sides[1] then pre[2][#pre[2] + 1] = cj.text end
      for _, m in ipairs(cj.cmps) do
        local a_left, b_left = m.a <= nl, m.b <= nl
        if m.op == "=" and m.c == 0 and a_left ~= b_left then
          lk[#lk + 1] = a_left and m.a or m.b
          rk[#rk + 1] = (a_left and m.b or m.a) - nl
        elseif m.op ~= "=" and a_left ~= b_left then
          cmps[#cmps + 1] = m
        end
      end
    end
    if #lk == 0 then
      error("join: a stream-stream join without an equality predicate is not supported (as in Spark): the " ..
        "condition needs a column of one side = a column of the other, got " .. cond:text(), level)
    end
  end

  -- Event time: each side's watermarked column, in the pair.
  local et = {}
  if left.event_time then et[1] = index_of(lf, left.event_time) end
  if right.event_time then et[2] = index_of(rf, right.event_time) and nl + index_of(rf, right.event_time) end
  local evict = {}
  for i = 1, #lk do
    if (et[1] and lk[i] == et[1]) or (et[2] and nl + rk[i] == et[2]) then
      evict[1] = { col = lk[i], shift = 0 }
      evict[2] = { col = rk[i], shift = 0 }
      break
    end
  end
  local key_watermark = evict[1] ~= nil
  if not key_watermark then
    for x = 1, 2 do
      local s = value_shift(cmps, et, x)
      if s then evict[x] = { col = x == 1 and et[1] or et[2] - nl, shift = s } end
    end
  end
  local has_range = false
  for _, m in ipairs(cmps) do
    local x = m.a <= nl and m.a or m.b
    local y = m.a <= nl and m.b or m.a
    if x == et[1] or y == et[2] then has_range = true end
  end

  -- Spark's UnsupportedOperationChecker.checkForStreamStreamJoinWatermark
  local need = kind == "left" and { 1 } or kind == "left_semi" and { 1 } or kind == "right" and { 2 } or
    kind == "full" and { 1, 2 } or {}
  if #need > 0 and not key_watermark then
    local ok = false
    for _, x in ipairs(need) do ok = ok or evict[x] ~= nil end
    if not ok then
      error(format("join: a stream-stream %s join is not supported without a watermark in the join keys, or a " ..
        "watermark on the nullable side and an appropriate range condition (as in Spark): call with_watermark " ..
        "on both sides and bound the %s side's event time by the other's, as in \"click_ts BETWEEN imp_ts AND " ..
        "imp_ts + interval 1 hour\"", NAMES[kind], (kind == "right") and "right" or "left"), level)
    end
  end

  local pre_e = {}
  local side_schema = { left.schema, right.schema }
  for x = 1, 2 do
    if #pre[x] > 0 then pre_e[x] = compile(concat(pre[x], " AND "), side_schema[x], level) end
  end

  -- Output: the pair itself, or a projection of it (named columns, semi).
  local out_schema, out_exprs = pair, nil
  if #out_texts > 0 then
    out_exprs = {}
    local fields = {}
    for i, t in ipairs(out_texts) do
      out_exprs[i] = compile(t, pair, level)
      local e = out_exprs[i]
      fields[i] = { e:name(), e:type() .. (e:nullable() and "?" or "") }
      -- keep the declared nullability of plain columns
      local src = index_of(pair_fields, e:name())
      if src and e:column() then fields[i][2] = pair_fields[src][2] end
    end
    out_schema = schema_of(fields, level)
  end
  local out_fields = out_schema:fields()

  local label = format("StreamingSymmetricHashJoin %s [%s]", NAMES[kind], text)
  local node = {
    op = "stream_join", input = left, right = right, schema = out_schema, fields = out_fields, static = false,
    stateful = "join", label = label, owns = true, join_has_range = has_range,
    join_keys = { lk, rk }, -- each side's equi-join key columns (tide.topology partitions each side by them)
    state_layout = format("%s | %s | %s", left.schema:ddl(), right.schema:ddl(), kind),
  }
  for _, x in ipairs { 1, 2 } do
    local side = x == 1 and left or right
    local e = side.event_time
    if e and index_of(out_fields, e) and base(out_fields[index_of(out_fields, e)][2]) == "timestamp" then
      node.event_time, node.event_delay = e, side.event_delay
      break
    end
  end

  function node.due() return evict[1] ~= nil or evict[2] ~= nil end
  function node.check(mode)
    if mode ~= "append" then
      return format("a join between two streams is supported only in append mode (as in Spark), not in %s mode",
        mode)
    end
  end

  local late_col = { et[1], et[2] and et[2] - nl }
  local sides = {}
  for x = 1, 2 do
    sides[x] = { schema = side_schema[x], keys = x == 1 and lk or rk, late = late_col[x],
      evict = evict[x] and evict[x].col, pre = pre_e[x] }
  end
  local function new_state()
    local j, msg = core.stream_join { left = sides[1], right = sides[2], how = kind, pair = pair, cond = cond }
    if not j then error("join: " .. tostring(msg), 0) end
    local st = { sjoin = j }
    function st.restore(key, blob)
      local ok, err = j:restore(key, blob)
      if not ok then error(err, 0) end
    end
    function st.take_changes() return j:take_changes() end
    function st.clear_changes() j:clear_changes() end
    function st.rows() return j:rows() end
    function st.bytes() return j:bytes() end
    return st
  end
  node.new_state = new_state
  new_state() -- the join is checked now, not when it runs

  -- One side's batches of this micro-batch as one batch (or nil).
  local function gather(self, it, k, schema)
    local list = {}
    for b in it do
      if b:nrows() > 0 or #list == 0 then list[#list + 1] = b else self:release(b, k) end
    end
    if #list == 0 then return nil end
    if #list == 1 then return list[1], list end
    local all, msg = core.concat(list, schema)
    if not all then error("join: " .. tostring(msg), 0) end
    for _, b in ipairs(list) do self:release(b, k) end
    return all, nil
  end

  function node.physical()
    local op = { owns = true, nary = true, new_state = new_state }
    function op.run(self, input, ctx)
      if not ctx then error("join: a stream-stream join runs only in a streaming query", 0) end
      local lb, lkeep = gather(self, input[1](), 1, side_schema[1])
      local rb, rkeep = gather(self, input[2](), 2, side_schema[2])
      local w = ctx.watermark
      local ev = {}
      for x = 1, 2 do
        if w and evict[x] then ev[x] = util.ts_minus(w, -evict[x].shift) end
      end
      local out, info = ctx.state.sjoin:run(lb, rb, w and ctx.late_watermark or nil, ev[1], ev[2])
      if lb then
        if lkeep then self:release(lb, 1) else lb:close() end
      end
      if rb then
        if rkeep then self:release(rb, 2) else rb:close() end
      end
      if not out then error("join: " .. tostring(info), 0) end
      local m = ctx.metrics
      m.updated = m.updated + info.updated
      m.dropped_by_watermark = m.dropped_by_watermark + info.late_left + info.late_right
      if out_exprs then
        local p, msg = core.project(out, out_exprs, out_schema)
        out:close()
        if not p then error("join: " .. tostring(msg), 0) end
        out = p
      end
      return util.once(out)
    end
    return op
  end
  return node
end

return M
