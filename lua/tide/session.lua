--- Session windows: `group_by(key..., tide.session_window(col, gap)):agg{...}`.
--
-- A row at time t opens the session [t, t + gap). Within one key, sessions
-- sorted by start merge while the next one starts at or before the end of
-- the current one (touching sessions merge), so one row may join two
-- sessions into one, as Spark's MergingSessionsIterator does
-- (SEMANTICS.md s.7). Rows with a NULL time belong to no session.
--
-- The state is one record per open session, never per row: its key
-- values, start, end and the state of every aggregate. Aggregate states
-- live here (not in the C hash aggregation) because sessions merge: two
-- sessions' states fold into one, which plain grouping never needs.
--
-- Invariants of a state:
--   * by_key[k] holds the sessions of key string k sorted by start, and no
--     two of them overlap or touch (they would have merged);
--   * by_id[id] is every stored session; ids are unique over the state's
--     life in this process and, after a restart, above every restored id;
--   * changed[id] / deleted[id]: the sessions written / removed since the
--     last clear_changes (a removed session is only in deleted; one that
--     never reached the checkpoint is in neither).
--
-- first/last follow event time, not arrival order: first is the value of
-- the row with the smallest time (ties: the one seen first), last of the
-- largest (ties: the one seen last). Spark sorts a key's rows by session
-- start before aggregating them, so its first/last are event-time ordered
-- too; and this makes the result the same however the rows are split into
-- batches, since merges of stored sessions compare times, not positions.
--
-- @module tide.session

local core = require "tide.core"
local util = require "tide.util"

local M = {}

local format, concat, pack, unpack = string.format, table.concat, string.pack, string.unpack
local type, error, ipairs, pairs, setmetatable, getmetatable = type, error, ipairs, pairs, setmetatable, getmetatable
local sort = table.sort

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
-- Values: normalisation, order, encoding
-- ------------------------------------------------------------------------

local NAN = 0 / 0

-- Spark groups, counts distinct values and compares with one NaN and no
-- -0.0 (NormalizeFloatingNumbers); so do the C aggregation's hashes.
local function norm(v, ty)
  if ty == "double" and v ~= nil then
    if v ~= v then return NAN end
    if v == 0 then return 0.0 end
  end
  return v
end

-- a < b for two non-NULL values of type ty: numbers with NaN above all,
-- false < true, strings bytewise, json by its canonical text.
local function less(a, b, ty)
  if ty == "double" then
    if a ~= a then return false end
    if b ~= b then return true end
    return a < b
  elseif ty == "bool" then
    return not a and b
  elseif ty == "json" then
    return util.json_encode(a) < util.json_encode(b)
  end
  return a < b
end

-- Value tags of the record format (docs/FORMAT.md, "Session window state").
local T_NULL, T_FALSE, T_TRUE, T_INT, T_DOUBLE, T_STRING, T_JSON = 0, 1, 2, 3, 4, 5, 6

-- Append the tagged encoding of v (type ty, normalised) to out. The same
-- bytes name a key (equal keys, equal bytes) and go into state records.
local function enc(out, v, ty)
  if v == nil then out[#out + 1] = "\0"
  elseif ty == "bool" then out[#out + 1] = v and "\2" or "\1"
  elseif ty == "int" or ty == "timestamp" then out[#out + 1] = pack("<Bi8", T_INT, v)
  elseif ty == "double" then out[#out + 1] = pack("<Bd", T_DOUBLE, v)
  elseif ty == "string" then out[#out + 1] = pack("<Bs4", T_STRING, v)
  else out[#out + 1] = pack("<Bs4", T_JSON, util.json_encode(v)) end
end

local function enc1(v, ty)
  local out = {}
  enc(out, v, ty)
  return concat(out)
end

local TAGS_OF = { bool = { [T_FALSE] = true, [T_TRUE] = true }, int = { [T_INT] = true },
  timestamp = { [T_INT] = true }, double = { [T_DOUBLE] = true }, string = { [T_STRING] = true },
  json = { [T_JSON] = true } }

-- A record reader: every read checks the bytes left and raises
-- "<what>: <why>" (the caller adds which record).
local function reader(blob)
  local r = { pos = 1 }
  function r.take(fmt, what)
    local ok, a, b = pcall(unpack, fmt, blob, r.pos)
    if not ok then error({ msg = "truncated at " .. what }) end
    if b then r.pos = b return a end
    r.pos = a
    return nil
  end
  function r.value(ty, what)
    local tag = r.take("<B", what)
    if tag == T_NULL then return nil end
    if not TAGS_OF[ty][tag] then error({ msg = format("%s: tag %d is not a %s value", what, tag, ty) }) end
    if tag == T_FALSE or tag == T_TRUE then return tag == T_TRUE end
    if tag == T_INT then return r.take("<i8", what) end
    if tag == T_DOUBLE then
      local d = r.take("<d", what)
      if (d ~= d and pack("<d", d) ~= pack("<d", NAN)) or (d == 0 and 1 / d < 0) then
        error({ msg = what .. ": an unnormalised double" })
      end
      return d
    end
    local s = r.take("<s4", what)
    if tag == T_STRING then return s end
    local v, msg = util.json_decode(s)
    if v == nil and msg then error({ msg = what .. ": bad json: " .. msg }) end
    return v
  end
  return r
end

-- CRC-32 (IEEE 802.3, reflected), the checksum that closes a record.
local CRC = {}
for i = 0, 255 do
  local c = i
  for _ = 1, 8 do c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
  CRC[i] = c
end
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = CRC[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
  return c ~ 0xFFFFFFFF
end

-- ------------------------------------------------------------------------
-- Aggregate states
-- ------------------------------------------------------------------------

-- One state per aggregate of a session, by kind (value types follow the
-- argument type `ty`):
--   count_star, count   integer
--   sum                 NONE (no non-NULL value yet) or the sum (int sums
--                       wrap, as Lua integers and Spark's long sums do)
--   avg                 { s = float sum, n = count }
--   min, max            NONE or the value
--   first, last         false (no row yet) or { t = time, v = value or nil }
--   count_distinct      { n = count, set = { [encoded value] = true } }
-- "No value yet" for sum, min and max (false is a bool value).
local NONE = setmetatable({}, { __name = "tide.session.NONE" })

local function new_aggs(specs)
  local a = {}
  for i, s in ipairs(specs) do
    local k = s.kind
    if k == "count_star" or k == "count" then a[i] = 0
    elseif k == "avg" then a[i] = { s = 0.0, n = 0 }
    elseif k == "count_distinct" then a[i] = { n = 0, set = {} }
    elseif k == "first" or k == "last" then a[i] = false
    else a[i] = NONE end
  end
  return a
end

-- Fold one row (time t, argument values args[i]) into the states a.
local function update(a, specs, t, args)
  for i, s in ipairs(specs) do
    local k, v = s.kind, args[i]
    if k == "count_star" then a[i] = a[i] + 1
    elseif v == nil and k ~= "first" and k ~= "last" then
      a[i] = a[i] -- NULL: ignored (but by first and last)
    elseif k == "count" then a[i] = a[i] + 1
    elseif k == "sum" then a[i] = a[i] ~= NONE and a[i] + v or v
    elseif k == "avg" then a[i].s, a[i].n = a[i].s + (v + 0.0), a[i].n + 1
    elseif k == "min" then if a[i] == NONE or less(v, a[i], s.arg_type) then a[i] = v end
    elseif k == "max" then if a[i] == NONE or less(a[i], v, s.arg_type) then a[i] = v end
    elseif k == "first" then if not a[i] or t < a[i].t then a[i] = { t = t, v = v } end
    elseif k == "last" then if not a[i] or t >= a[i].t then a[i] = { t = t, v = v } end
    elseif k == "count_distinct" then
      local e = enc1(v, s.arg_type)
      if not a[i].set[e] then a[i].set[e], a[i].n = true, a[i].n + 1 end
    end
  end
end

-- Fold the states src into dst (src's session ends after dst's starts).
local function merge(dst, src, specs)
  for i, s in ipairs(specs) do
    local k, d, x = s.kind, dst[i], src[i]
    if k == "count_star" or k == "count" then dst[i] = d + x
    elseif k == "sum" then if x ~= NONE then dst[i] = d ~= NONE and d + x or x end
    elseif k == "avg" then d.s, d.n = d.s + x.s, d.n + x.n
    elseif k == "min" then if x ~= NONE and (d == NONE or less(x, d, s.arg_type)) then dst[i] = x end
    elseif k == "max" then if x ~= NONE and (d == NONE or less(d, x, s.arg_type)) then dst[i] = x end
    elseif k == "first" then if x and (not d or x.t < d.t) then dst[i] = x end
    elseif k == "last" then if x and (not d or x.t > d.t) then dst[i] = x end
    elseif k == "count_distinct" then
      for e in pairs(x.set) do
        if not d.set[e] then d.set[e], d.n = true, d.n + 1 end
      end
    end
  end
end

-- The result of aggregate i.
local function result(a, i, kind)
  local st = a[i]
  if kind == "count_star" or kind == "count" then return st end
  if kind == "avg" then return st.n > 0 and st.s / st.n or nil end
  if kind == "count_distinct" then return st.n end
  if kind == "first" or kind == "last" then
    if st then return st.v end
    return nil
  end
  if st == NONE then return nil end
  return st
end

-- ------------------------------------------------------------------------
-- State records
-- ------------------------------------------------------------------------

local VERSION = 1
local KIND_CODE = { count_star = 1, count = 2, sum = 3, min = 4, max = 5, avg = 6, first = 7, last = 8,
  count_distinct = 9 }
local RESULT_TYPE = { count_star = "int", count = "int", count_distinct = "int", avg = "double" }

-- The record of session se: see docs/FORMAT.md, "Session window state".
local function encode(se, key_types, specs)
  local out = { pack("<Bi8i8I4", VERSION, se.s, se.e, #key_types) }
  for i, ty in ipairs(key_types) do enc(out, se.vals[i], ty) end
  out[#out + 1] = pack("<I4", #specs)
  for i, s in ipairs(specs) do
    local k, st = s.kind, se.aggs[i]
    out[#out + 1] = pack("<B", KIND_CODE[k])
    if k == "count_star" or k == "count" then out[#out + 1] = pack("<i8", st)
    elseif k == "avg" then out[#out + 1] = pack("<di8", st.s, st.n)
    elseif k == "first" or k == "last" then
      if st then
        out[#out + 1] = pack("<Bi8", 1, st.t)
        enc(out, st.v, s.arg_type)
      else
        out[#out + 1] = "\0"
      end
    elseif k == "count_distinct" then
      local list = {}
      for e in pairs(st.set) do list[#list + 1] = e end
      sort(list) -- the same state, the same bytes
      out[#out + 1] = pack("<I4", #list)
      for _, e in ipairs(list) do out[#out + 1] = e end
    else -- sum, min, max: the value or NULL
      if st == NONE then out[#out + 1] = "\0" else enc(out, st, RESULT_TYPE[k] or s.arg_type) end
    end
  end
  local body = concat(out)
  return body .. pack("<I4", crc32(body))
end

-- The session of a record (raises { msg = why } on any bad byte).
local function decode(blob, key_types, specs)
  if #blob < 5 then error({ msg = "truncated (" .. #blob .. " bytes)" }) end
  local body, sum = blob:sub(1, -5), unpack("<I4", blob, #blob - 3)
  local version = body:byte(1)
  if version ~= VERSION then
    error({ msg = format("format version %d, this build reads %d", version, VERSION) })
  end
  if crc32(body) ~= sum then error({ msg = "checksum mismatch" }) end
  local r = reader(body)
  r.pos = 2
  local s, e, nk = r.take("<i8", "start"), r.take("<i8", "end"), r.take("<I4", "the key count")
  if e <= s then error({ msg = format("end %d not after start %d", e, s) }) end
  if nk ~= #key_types then
    error({ msg = format("%d key values, the plan has %d keys", nk, #key_types) })
  end
  local vals = {}
  for i, ty in ipairs(key_types) do vals[i] = r.value(ty, "key " .. i) end
  local na = r.take("<I4", "the aggregate count")
  if na ~= #specs then error({ msg = format("%d aggregates, the plan has %d", na, #specs) }) end
  local aggs = {}
  for i, sp in ipairs(specs) do
    local k, what = sp.kind, "aggregate " .. i
    local code = r.take("<B", what)
    if code ~= KIND_CODE[k] then error({ msg = format("%s: kind code %d, the plan's %s is %d", what, code, k,
      KIND_CODE[k]) }) end
    if k == "count_star" or k == "count" then
      aggs[i] = r.take("<i8", what)
      if aggs[i] < 0 then error({ msg = what .. ": a negative count" }) end
    elseif k == "avg" then
      local sm, n = r.take("<d", what), r.take("<i8", what)
      if n < 0 then error({ msg = what .. ": a negative count" }) end
      aggs[i] = { s = sm, n = n }
    elseif k == "first" or k == "last" then
      local has = r.take("<B", what)
      if has > 1 then error({ msg = what .. ": bad flag " .. has }) end
      if has == 1 then
        local t = r.take("<i8", what)
        aggs[i] = { t = t, v = r.value(sp.arg_type, what) }
      else
        aggs[i] = false
      end
    elseif k == "count_distinct" then
      local n = r.take("<I4", what)
      local set = {}
      for _ = 1, n do
        local v = r.value(sp.arg_type, what)
        if v == nil then error({ msg = what .. ": a NULL distinct value" }) end
        local ev = enc1(v, sp.arg_type)
        if set[ev] then error({ msg = what .. ": a duplicate distinct value" }) end
        set[ev] = true
      end
      aggs[i] = { n = n, set = set }
    else
      local v = r.value(RESULT_TYPE[k] or sp.arg_type, what)
      if v == nil then aggs[i] = NONE else aggs[i] = v end
    end
  end
  if r.pos ~= #body + 1 then error({ msg = format("%d trailing bytes", #body + 1 - r.pos) }) end
  return { s = s, e = e, vals = vals, aggs = aggs }
end

local function key_of(id) return pack(">I8", id) end

-- ------------------------------------------------------------------------
-- The state
-- ------------------------------------------------------------------------

-- The position in list (sorted by start) where a session starting at s goes.
local function insert_sorted(list, se)
  local i = #list
  while i >= 1 and list[i].s > se.s do i = i - 1 end
  table.insert(list, i + 1, se)
  return i + 1
end

-- A fresh state for the node's plan (p: key types, specs, gap).
local function new_state(p)
  -- stored[id]: the session has a record in the checkpoint (restored, or
  -- handed out by take_changes), so removing it needs a delete
  local st = { by_key = {}, by_id = {}, n = 0, next_id = 1, changed = {}, deleted = {}, stored = {} }


  local function drop(se)
    st.by_id[se.id], st.n = nil, st.n - 1
    st.changed[se.id] = nil
    if st.stored[se.id] then st.deleted[se.id] = true end
  end

  -- Remove the sessions `gone` (a set of sessions) from their key's lists.
  function st.remove(gone)
    local keys = {}
    for se in pairs(gone) do
      drop(se)
      keys[se.key] = true
    end
    for k in pairs(keys) do
      local list, kept = st.by_key[k], {}
      for _, se in ipairs(list) do
        if not gone[se] then kept[#kept + 1] = se end
      end
      st.by_key[k] = #kept > 0 and kept or nil
    end
  end

  -- Add the rows of one key (rows = array of { t =, args = }, input
  -- order) to its sessions: merge the stored sessions and the rows'
  -- [t, t + gap) intervals in start order; each merged run keeps its first
  -- stored session (the others fold into it and are removed) or opens a
  -- new one.
  function st.add_rows(key, vals, rows)
    local gap = p.gap
    local items = {}
    for _, se in ipairs(st.by_key[key] or {}) do items[#items + 1] = { s = se.s, e = se.e, se = se } end
    for i, r in ipairs(rows) do items[#items + 1] = { s = r.t, e = r.t + gap, row = r, i = i } end
    -- start order; stored sessions before rows at the same start (so a
    -- run's survivor is its earliest stored session), rows in input order
    sort(items, function(x, y)
      if x.s ~= y.s then return x.s < y.s end
      if (x.se ~= nil) ~= (y.se ~= nil) then return x.se ~= nil end
      if x.se then return x.se.id < y.se.id end
      return x.i < y.i
    end)
    local list, gone = {}, {}
    local run
    local function flush()
      if not run then return end
      local se = run.keep
      if not se then
        se = { id = st.next_id, key = key, vals = vals, aggs = new_aggs(p.specs) }
        st.next_id = st.next_id + 1
        st.by_id[se.id], st.n = se, st.n + 1
      end
      se.s, se.e = run.s, run.e
      for _, other in ipairs(run.fold) do
        merge(se.aggs, other.aggs, p.specs)
        gone[other] = true
      end
      sort(run.rows, function(x, y) return x.i < y.i end) -- input order, for ties of first/last
      for _, it in ipairs(run.rows) do update(se.aggs, p.specs, it.row.t, it.row.args) end
      if #run.rows > 0 or #run.fold > 0 then st.changed[se.id] = se end
      list[#list + 1] = se
    end
    for _, it in ipairs(items) do
      if run and it.s <= run.e then
        if it.e > run.e then run.e = it.e end
      else
        flush()
        run = { s = it.s, e = it.e, rows = {}, fold = {} }
      end
      if it.se then
        if run.keep then run.fold[#run.fold + 1] = it.se else run.keep = it.se end
      else
        run.rows[#run.rows + 1] = it
      end
    end
    flush()
    for se in pairs(gone) do drop(se) end
    st.by_key[key] = list
  end

  -- The sessions (those pred accepts) in output order: by id, that is by
  -- creation (sorting plain integers keeps the comparison in C).
  function st.sessions(pred)
    local ids = {}
    for id, se in pairs(st.by_id) do
      if not pred or pred(se) then ids[#ids + 1] = id end
    end
    sort(ids)
    for i, id in ipairs(ids) do ids[i] = st.by_id[id] end
    return ids
  end

  function st.restore(key, blob)
    if type(key) ~= "string" or #key ~= 8 then
      error(format("session state: bad record key (%s): expected 8 bytes", type(key) == "string" and
        (#key .. " bytes") or type(key)), 2)
    end
    local id = unpack(">I8", key)
    if id < 1 then error("session state: bad record key: session id " .. id, 2) end
    if type(blob) ~= "string" then error("session state: record " .. id .. ": expected a string", 2) end
    if st.by_id[id] then error(format("session state: record %d: a duplicate session id", id), 2) end
    local ok, se = pcall(decode, blob, p.key_types, p.specs)
    if not ok then
      error(format("session state: record %d: %s", id, type(se) == "table" and se.msg or tostring(se)), 2)
    end
    local kv = {}
    for i, ty in ipairs(p.key_types) do enc(kv, se.vals[i], ty) end
    se.id, se.key = id, concat(kv)
    local list = st.by_key[se.key] or {}
    local at = insert_sorted(list, se)
    local prev, nxt = list[at - 1], list[at + 1]
    if (prev and prev.e >= se.s) or (nxt and se.e >= nxt.s) then
      table.remove(list, at)
      error(format("session state: record %d: [%d, %d) overlaps or touches another session of its key", id, se.s,
        se.e), 2)
    end
    st.by_key[se.key] = list
    st.by_id[id], st.n, st.stored[id] = se, st.n + 1, true
    if id >= st.next_id then st.next_id = id + 1 end
  end

  function st.take_changes()
    local puts, dels = {}, {}
    local ids = {}
    for id in pairs(st.changed) do ids[#ids + 1] = id end
    sort(ids)
    for i, id in ipairs(ids) do
      puts[i] = { key_of(id), encode(st.changed[id], p.key_types, p.specs) }
      st.stored[id] = true
    end
    ids = {}
    for id in pairs(st.deleted) do ids[#ids + 1] = id end
    sort(ids)
    for i, id in ipairs(ids) do
      dels[i] = key_of(id)
      st.stored[id] = nil
    end
    return puts, dels
  end

  function st.clear_changes() st.changed, st.deleted = {}, {} end
  function st.rows() return st.n end

  -- Approximately: a table per session and per aggregate state, the key
  -- bytes, and an entry per distinct value.
  function st.bytes()
    local b = 0
    for _, se in pairs(st.by_id) do
      b = b + 160 + #se.key + 48 * #se.aggs
      for i, s in ipairs(p.specs) do
        if s.kind == "count_distinct" then
          for e in pairs(se.aggs[i].set) do b = b + 40 + #e end
        end
      end
    end
    return b
  end
  return st
end

-- ------------------------------------------------------------------------
-- The plan node
-- ------------------------------------------------------------------------

local function base_type(ty) return (ty:gsub("%?$", "")) end

--- The plan node of a session window aggregation (see the module header
-- and the engine interface in lua/tide/query.lua).
-- @tab spec `{ input, keys, key_fields, col, col_name, gap, specs, args,
-- schema, window_index, label }`, from frame.lua's Grouped:agg
function M.node(spec)
  local input = spec.input
  local nk = #spec.keys
  local key_types = {}
  for i, f in ipairs(spec.key_fields) do key_types[i] = base_type(f[2]) end
  local specs = {}
  for i, s in ipairs(spec.specs) do
    specs[i] = { kind = s.kind, arg_type = s.arg_type and base_type(s.arg_type), name = s.name }
  end
  local p = { key_types = key_types, specs = specs, gap = spec.gap }

  -- One projection gives every value the rows need: k1..kn (the keys),
  -- t (the event time), a1..am (the aggregates' arguments).
  local exprs, pfields = {}, {}
  for i, e in ipairs(spec.keys) do
    exprs[#exprs + 1], pfields[#pfields + 1] = e, { "k" .. i, e:type() .. "?" }
  end
  local tcol, msg = core.expr("`" .. spec.col_name .. "`", input.schema)
  if not tcol then error("session_window: " .. msg, 3) end
  exprs[#exprs + 1], pfields[#pfields + 1] = tcol, { "t", "timestamp?" }
  local arg_at = {}
  for i, a in ipairs(spec.args) do
    if a then
      exprs[#exprs + 1], pfields[#pfields + 1] = a, { "a" .. i, a:type() .. "?" }
      arg_at[i] = "a" .. i
    end
  end
  local pschema = assert(core.schema(pfields))
  local input_schema = input.schema

  -- output position -> what goes there
  local out_fields = spec.schema:fields()
  local wi = spec.window_index

  local node = {
    op = "session_aggregate", input = input, schema = spec.schema, fields = out_fields, static = input.static,
    owns = true, label = spec.label, stateful = "session",
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

  -- Feed batch b into st. late_bound: rows with t + gap <= it are late
  -- (returned as an array of row numbers), or nil.
  local function push(st, b, late_bound)
    local pb, err = core.project(b, exprs, pschema)
    if not pb then error("session_window: " .. tostring(err), 0) end
    local kc = {}
    for i = 1, nk do kc[i] = pb:column("k" .. i) end
    local tc = pb:column("t")
    local ac = {}
    for i in ipairs(specs) do ac[i] = arg_at[i] and pb:column(arg_at[i]) or false end
    pb:close()
    local groups, order, late = {}, {}, nil
    local gap = spec.gap
    for r = 1, tc.n do
      local t = tc[r]
      if t == nil then -- luacheck: ignore 542 (a NULL time: no session)
      elseif late_bound and t + gap <= late_bound then
        late = late or {}
        late[#late + 1] = r
      else
        local vals, kv = {}, {}
        for i = 1, nk do
          local v = norm(kc[i][r], key_types[i])
          vals[i] = v
          enc(kv, v, key_types[i])
        end
        local key = concat(kv)
        local g = groups[key]
        if not g then
          g = { vals = vals, rows = {} }
          groups[key] = g
          order[#order + 1] = key
        end
        local args = {}
        for i, c in ipairs(ac) do
          if c then args[i] = norm(c[r], specs[i].arg_type) end
        end
        g.rows[#g.rows + 1] = { t = t, args = args }
      end
    end
    for _, key in ipairs(order) do st.add_rows(key, groups[key].vals, groups[key].rows) end
    return late
  end

  -- The output rows of sessions, as a batch of the node's schema.
  local function output(sessions)
    local rows = {}
    for n, se in ipairs(sessions) do
      local row, k = {}, 0
      for j, f in ipairs(out_fields) do
        if j == wi then row[f[1]] = se.s
        elseif j == wi + 1 then row[f[1]] = se.e
        elseif k < nk then
          k = k + 1
          row[f[1]] = se.vals[k]
        else
          local i = j - nk - 2
          row[f[1]] = result(se.aggs, i, specs[i].kind)
        end
      end
      rows[n] = row
    end
    local b, err = core.rows_batch(spec.schema, rows)
    if not b then error("session_window: " .. tostring(err), 0) end
    return b
  end

  local one = util.once

  -- The operator (tide.exec's interface): run(input, ctx) with ctx nil for
  -- a static run, else the micro-batch's context (state, mode, watermark,
  -- late_watermark, metrics, late).
  function node.physical()
    local op = { owns = true, new_state = node.new_state }
    function op.run(self, batches, run)
      if not run then
        local st = new_state(p)
        for b in batches do
          push(st, b)
          self:release(b)
        end
        return one(output(st.sessions()))
      end
      local st, append = run.state, run.mode == "append"
      if run.mode ~= "append" and run.mode ~= "complete" then
        error("session_window: output mode " .. tostring(run.mode) .. " (append and complete only)", 0)
      end
      local late_bound = append and run.late_watermark or nil
      local before = {}
      for id in pairs(st.changed) do before[id] = true end
      for b in batches do
        local late = push(st, b, late_bound)
        if late then
          run.metrics.dropped_by_watermark = run.metrics.dropped_by_watermark + #late
          if run.late then
            local rows = {}
            for i, r in ipairs(late) do rows[i] = b:row(r) end
            local lb, err = core.rows_batch(input_schema, rows)
            if not lb then error("session_window: " .. tostring(err), 0) end
            run.late(lb)
          end
        end
        self:release(b)
      end
      local written = 0
      for id in pairs(st.changed) do
        if not before[id] then written = written + 1 end
      end
      run.metrics.updated = run.metrics.updated + written
      if not append then return one(output(st.sessions())) end
      local wm = run.watermark
      if wm == nil then return one(output({})) end
      local due = st.sessions(function(se) return se.e <= wm end)
      local out = output(due)
      local gone = {}
      for _, se in ipairs(due) do gone[se] = true end
      st.remove(gone)
      return one(out)
    end
    return op
  end
  return node
end

M._encode, M._decode, M._crc32 = encode, decode, crc32 -- for the specs

return M
