--- Arbitrary stateful processing in Lua: `f:group_by(keys):process(fn, opts)`,
-- Spark's flatMapGroupsWithState and Flink's KeyedProcessFunction.
--
-- Per micro-batch, the operator groups its input rows by key (in the order
-- keys first appear) and calls `fn(key, rows, state)` once per key that has
-- rows; then, per key whose timeout has passed and that got no rows, once
-- more with no rows and `state:has_timed_out()` true (keys in the order of
-- their encoded bytes, so a re-run batch calls them alike). `fn` returns
-- an array of output rows (of `opts.schema`), or nil.
--
-- The state handle of one call: `get()`, `set(v)` (v any Lua value made of
-- nil, booleans, numbers, strings and tables of them), `remove()`,
-- `exists()`, `set_timeout(duration)` (timeout = "processing": the key
-- times out once the batch time passes the call's batch time + duration),
-- `set_timer(t)` (timeout = "event_time": once the watermark passes t),
-- `has_timed_out()`, `watermark()`, `processing_time()`. As in Spark, a
-- call with rows starts with no timeout: one set in an earlier call is gone
-- unless the call sets it again. With `ttl`, a value that has not been set
-- for that long (processing time) is gone before the next call sees it.
--
-- The state is the engine's (tide.query "Stateful operators"): one record
-- per key, keyed by the key's encoded values, holding the encoded value,
-- the timeout and the time of the last set; changes go into the checkpoint
-- with the batch's commit, so a batch that runs again after a crash starts
-- from the state of the batch before, with its logged time and watermark:
-- the same calls, the same output. Invariant: `map` holds exactly the
-- records of the last commit plus this batch's changes, `changed` and
-- `removed` name the keys changed since the last commit.
--
-- Record layout (the value encoding below, FORMAT.md "Process state
-- records"): the key is the key values encoded one after the other; the
-- blob the encoded table `{ b = the value's encoding or nil, t = timeout ms
-- or nil, u = last set ms or nil }`.
--
-- @module tide.stateful

local core = require "tide.core"
local util = require "tide.util"

local M = {}

local format, concat, pack, unpack = string.format, table.concat, string.pack, string.unpack
local type, error, ipairs, pairs, setmetatable, tostring = type, error, ipairs, pairs, setmetatable, tostring

-- ------------------------------------------------------------------------
-- Encoding Lua values
-- ------------------------------------------------------------------------
--
--   'n'                       nil (in a key only)
--   'f' | 't'                 false | true
--   'i' int64 (LE)            integer
--   'd' double (LE)           float
--   's' u32 (LE) bytes        string
--   'T' u32 (LE) pairs...     table: n (key, value) pairs, keys sorted by
--                             their encoding (equal tables encode alike)

local MAX_DEPTH = 100

-- The encoding of a boolean, number or string; nil for anything else (the
-- fast path of encode_into, and of keys and records without tables).
local function encode_scalar(v)
  local t = type(v)
  if t == "number" then
    if math.type(v) == "integer" then return pack("<c1i8", "i", v) end
    return pack("<c1d", "d", v)
  elseif t == "string" then return pack("<c1s4", "s", v)
  elseif t == "boolean" then return v and "t" or "f"
  end
  return nil
end

local function by_first(a, b) return a[1] < b[1] end

local function encode_into(v, out, seen, depth, what)
  local t = type(v)
  if t == "boolean" then
    out[#out + 1] = v and "t" or "f"
  elseif t == "number" then
    if math.type(v) == "integer" then out[#out + 1] = pack("<c1i8", "i", v)
    else out[#out + 1] = pack("<c1d", "d", v) end
  elseif t == "string" then
    out[#out + 1] = pack("<c1s4", "s", v)
  elseif t == "table" then
    if seen[v] then error(format("%s: cannot store a table that contains itself", what), 0) end
    if depth >= MAX_DEPTH then error(format("%s: tables nested deeper than %d levels", what, MAX_DEPTH), 0) end
    seen[v] = true
    local items = {}
    for k, x in pairs(v) do
      local ke, xe = encode_scalar(k), encode_scalar(x)
      if not ke then
        local kb = {}
        encode_into(k, kb, seen, depth + 1, what)
        ke = concat(kb)
      end
      if not xe then
        local xb = {}
        encode_into(x, xb, seen, depth + 1, what)
        xe = concat(xb)
      end
      items[#items + 1] = { ke, xe }
    end
    seen[v] = nil
    table.sort(items, by_first)
    out[#out + 1] = pack("<c1I4", "T", #items)
    for _, it in ipairs(items) do
      out[#out + 1] = it[1]
      out[#out + 1] = it[2]
    end
  elseif v == nil then
    out[#out + 1] = "n"
  else
    error(format("%s: cannot store a %s (values are nil, booleans, numbers, strings and tables of them)", what, t), 0)
  end
end

--- Encode a Lua value (nil, booleans, numbers, strings, tables of them)
-- into bytes; raises `what: ...` for anything else, a cycle or a nesting
-- deeper than 100.
function M.encode(v, what)
  local out = {}
  encode_into(v, out, {}, 0, what or "encode")
  return concat(out)
end

local function decode_at(s, pos)
  local tag = s:sub(pos, pos)
  if tag == "n" then return nil, pos + 1
  elseif tag == "t" then return true, pos + 1
  elseif tag == "f" then return false, pos + 1
  elseif tag == "i" then return unpack("<i8", s, pos + 1)
  elseif tag == "d" then return unpack("<d", s, pos + 1)
  elseif tag == "s" then return unpack("<s4", s, pos + 1)
  elseif tag == "T" then
    local n
    n, pos = unpack("<I4", s, pos + 1)
    local t = {}
    for _ = 1, n do
      local k, x
      k, pos = decode_at(s, pos)
      x, pos = decode_at(s, pos)
      if k == nil then error("a table key is nil", 0) end
      t[k] = x
    end
    return t, pos
  end
  error(format("unknown tag %q at byte %d", tag, pos), 0)
end

--- Decode bytes made by encode; raises on anything else.
function M.decode(s)
  local ok, v, pos = pcall(decode_at, s, 1)
  if not ok then error("bad encoded value: " .. tostring(v), 0) end
  if pos ~= #s + 1 then error(format("bad encoded value: %d bytes after its end", #s + 1 - pos), 0) end
  return v
end

-- The encoded key of key values kv[1..n] (nil allowed).
local function encode_key(kv, n)
  if n == 1 then -- one key column (the common case): no tables
    local e = encode_scalar(kv[1])
    if e then return e end
  end
  local out = {}
  for i = 1, n do encode_into(kv[i], out, {}, 0, "process key") end
  return concat(out)
end

local function decode_key(s, n)
  local kv, pos = {}, 1
  for i = 1, n do kv[i], pos = decode_at(s, pos) end
  if pos ~= #s + 1 then error("bad state key", 0) end
  return kv
end

-- LMDB's key size limit is 511 bytes.
local MAX_KEY_BYTES = 500

-- ------------------------------------------------------------------------
-- The state the engine keeps
-- ------------------------------------------------------------------------

-- A record: { kv = key values, b = the value's encoding or nil, t =
-- timeout or nil, u = last set or nil, blob = the record's encoding }. The
-- value is kept encoded: each call decodes its own copy, so a table a
-- call changes without set() changes nothing.
-- Written out (the bytes of M.encode{ b = r.b, t = r.t, u = r.u }: the
-- fields that are not nil, in the order of their names' encodings) as
-- this runs once per updated key and batch.
local BLOB_FIELDS = { { "b", pack("<c1s4", "s", "b") }, { "t", pack("<c1s4", "s", "t") },
  { "u", pack("<c1s4", "s", "u") } }
local function blob_of(r)
  local out, n = { "" }, 0
  for _, f in ipairs(BLOB_FIELDS) do
    local v = r[f[1]]
    if v ~= nil then
      n = n + 1
      out[#out + 1] = f[2]
      out[#out + 1] = encode_scalar(v) or error("state: a record field " .. f[1] .. " is a " .. type(v), 0)
    end
  end
  out[1] = pack("<c1I4", "T", n)
  return concat(out)
end

local function new_state(nkeys)
  local st = { map = {}, changed = {}, removed = {}, n = 0, nbytes = 0 }
  local function account(key, r, sign)
    st.n = st.n + sign
    st.nbytes = st.nbytes + sign * (#key + #r.blob)
  end
  function st.put(key, r)
    local old = st.map[key]
    if old then account(key, old, -1) end
    r.blob = blob_of(r)
    st.map[key] = r
    account(key, r, 1)
    st.changed[key], st.removed[key] = true, nil
    st.next_due = nil
  end
  function st.delete(key)
    local old = st.map[key]
    if not old then return end
    account(key, old, -1)
    st.map[key] = nil
    st.changed[key], st.removed[key] = nil, true
    st.next_due = nil
  end
  function st.restore(key, blob)
    local ok, rec = pcall(M.decode, blob)
    if not ok or type(rec) ~= "table" then
      error("process state: a record that does not decode: " .. tostring(rec), 0)
    end
    local okk, kv = pcall(decode_key, key, nkeys)
    if not okk then error("process state: a record key that does not decode: " .. tostring(kv), 0) end
    if rec.b ~= nil and type(rec.b) ~= "string" then error("process state: a record without an encoded value", 0) end
    local r = { kv = kv, b = rec.b, t = rec.t, u = rec.u, blob = blob }
    if st.map[key] then account(key, st.map[key], -1) end
    st.map[key] = r
    account(key, r, 1)
    st.next_due = nil
  end
  function st.take_changes()
    local keys, puts, dels = {}, {}, {}
    for key in pairs(st.changed) do keys[#keys + 1] = key end
    for key in pairs(st.removed) do dels[#dels + 1] = key end
    table.sort(keys) -- strings with the built-in order: no Lua comparator per step
    table.sort(dels)
    for i, key in ipairs(keys) do puts[i] = { key, st.map[key].blob } end
    return puts, dels
  end
  function st.clear_changes() st.changed, st.removed = {}, {} end
  function st.rows() return st.n end
  function st.bytes() return st.nbytes end
  -- The earliest timeout of any record (processing-time timeouts), cached
  -- until the next change.
  function st.earliest_timeout()
    if st.next_due == nil then
      local m = false
      for _, r in pairs(st.map) do
        if r.t and (not m or r.t < m) then m = r.t end
      end
      st.next_due = m
    end
    return st.next_due or nil
  end
  return st
end

-- ------------------------------------------------------------------------
-- The state handle of one call
-- ------------------------------------------------------------------------

local Handle = {}
Handle.__index = Handle

local function live(h, what)
  if getmetatable(h) ~= Handle then error(format("state:%s: bad self: use state:%s(...)", what, what), 3) end
  if h._done then error(format("state:%s: this handle's call has returned (a handle is good for its call only)",
    what), 3) end
  return h
end

--- The key's value (this call's own copy), or nil.
function Handle:get()
  live(self, "get")
  if not self._set and self._v == nil and self._b ~= nil then self._v = M.decode(self._b) end
  return self._v
end

--- Whether the key has a value.
function Handle:exists()
  return live(self, "exists")._b ~= nil
end

--- Set the key's value (nil removes it): a copy of v as it is now is
-- stored; v is checked at once.
function Handle:set(v)
  live(self, "set")
  local b
  if v ~= nil then
    local ok, enc = pcall(M.encode, v, "state:set")
    if not ok then error(enc, 2) end
    b = enc
  end
  self._v, self._b, self._set = v, b, true
end

--- Remove the key's value (its timeout too).
function Handle:remove()
  live(self, "remove")
  self._v, self._b, self._set, self._t = nil, nil, true, nil
end

--- True in the call made because the key's timeout passed.
function Handle:has_timed_out()
  return live(self, "has_timed_out")._timed_out
end

--- The watermark this batch runs with (ms), or nil without one.
function Handle:watermark()
  return live(self, "watermark")._ctx.watermark
end

--- The batch's processing time (ms since the epoch; a re-run batch has its
-- first run's; a static run's start).
function Handle:processing_time()
  return live(self, "processing_time")._ctx.timestamp
end

--- Processing-time timeout: the key times out once the batch time passes
-- this batch's time + `d` (a duration > 0); needs `timeout = "processing"`.
function Handle:set_timeout(d)
  live(self, "set_timeout")
  if self._ctx.timeout ~= "processing" then
    error("state:set_timeout: needs process(fn, { timeout = \"processing\" }) (this one's timeout is " ..
      self._ctx.timeout .. ")", 2)
  end
  local ms = util.duration(d, "state:set_timeout: duration", 3)
  if ms <= 0 then error("state:set_timeout: the duration must be > 0, got " .. tostring(d), 2) end
  self._t = (self._ctx.timestamp or 0) + ms
end

--- Event-time timer: the key times out once the watermark passes `t`
-- (ms, or an ISO-8601 string); needs `timeout = "event_time"`; t may not be
-- before the current watermark.
function Handle:set_timer(t)
  live(self, "set_timer")
  if self._ctx.timeout ~= "event_time" then
    error("state:set_timer: needs process(fn, { timeout = \"event_time\" }) (this one's timeout is " ..
      self._ctx.timeout .. ")", 2)
  end
  local ms = type(t) == "string" and core.ts_parse(t) or t
  if math.type(ms) ~= "integer" then
    error("state:set_timer: expected a timestamp (integer ms or an ISO-8601 string), got " .. tostring(t), 2)
  end
  local wm = self._ctx.watermark
  if wm and ms < wm then
    error(format("state:set_timer: the time %s is before the current watermark %s", core.ts_format(ms),
      core.ts_format(wm)), 2)
  end
  self._t = ms
end

Handle.__tostring = function() return "tide process state" end

-- ------------------------------------------------------------------------
-- The plan node
-- ------------------------------------------------------------------------

local function key_text(kv, n)
  local parts = {}
  for i = 1, n do parts[i] = kv[i] == nil and "null" or tostring(kv[i]) end
  return n == 1 and parts[1] or ("(" .. concat(parts, ", ") .. ")")
end

--- The plan node of `process` (see the module header and the operator
-- interface in lua/tide/exec.lua).
-- @tab spec `{ input, keys (tide.Expr), key_fields, fn, schema (tide.Schema),
-- timeout ("none" | "processing" | "event_time"), ttl (ms or nil), label }`
function M.node(spec)
  local input, fn, schema, timeout, ttl = spec.input, spec.fn, spec.schema, spec.timeout, spec.ttl
  local nkeys = #spec.keys
  local key_schema = assert(core.schema(spec.key_fields))
  local key_names = {}
  for i, f in ipairs(spec.key_fields) do key_names[i] = f[1] end
  local et = input.event_time
  local node = {
    op = "process", input = input, schema = schema, fields = schema:fields(), static = input.static,
    owns = true, label = spec.label, stateful = "process",
    keys = spec.keys, -- tide.topology partitions by them
    state_layout = format("%s | lua value, timeout %s%s", key_schema:ddl(), timeout, ttl and ", ttl" or ""),
  }

  function node.new_state() return new_state(nkeys) end
  -- a moved watermark gives event-time timers something to do
  function node.due() return timeout == "event_time" end
  -- processing-time timeouts: the time the next one is due at
  if timeout == "processing" then
    function node.due_at(st) return st.earliest_timeout() end
  end
  function node.check(mode, has_watermark)
    if mode == "complete" then
      return "complete output mode not supported with process (as Spark's flatMapGroupsWithState): " ..
        "use append or update"
    end
    if timeout == "event_time" and not (has_watermark and et) then
      return "process with timeout = \"event_time\" needs a watermark: f:with_watermark(col, delay) before " ..
        "group_by (as in Spark)"
    end
  end

  -- The key values of each row of b (through the key expressions).
  local function keys_of(b)
    local kb, msg = core.project(b, spec.keys, key_schema)
    if not kb then error("process: " .. tostring(msg), 0) end
    local rows = kb:rows()
    kb:close()
    return rows
  end

  -- Call fn for one key, appending its rows to out; returns true when the
  -- key's record was written (an updated state row).
  local function call(st, key, kv, rows, timed_out, ctx, out)
    local r = st and st.map[key]
    local h = setmetatable({ _b = r and r.b, _t = nil, _ctx = ctx, _timed_out = timed_out }, Handle)
    local keyval = nkeys == 1 and kv[1] or nil
    if nkeys > 1 then
      keyval = {}
      for i, n in ipairs(key_names) do keyval[n] = kv[i] end
    end
    local ok, res = xpcall(fn, debug.traceback, keyval, rows, h)
    h._done = true
    if not ok then error(format("process: key %s: %s", key_text(kv, nkeys), tostring(res)), 0) end
    if res ~= nil then
      if type(res) ~= "table" then
        error(format("process: key %s: the function returned a %s, expected an array of rows or nil",
          key_text(kv, nkeys), type(res)), 0)
      end
      for i, row in ipairs(res) do
        if type(row) ~= "table" then
          error(format("process: key %s: row %d of the result is a %s, expected a table", key_text(kv, nkeys), i,
            type(row)), 0)
        end
        out[#out + 1] = row
      end
    end
    if not st then return false end
    local b, u = h._b, r and r.u
    if h._set then u = ctx.timestamp end
    if b == nil and h._t == nil then -- a removal is not an update (Spark counts it apart)
      if r then st.delete(key) end
      return false
    end
    if r and not h._set and r.t == h._t then return false end
    st.put(key, { kv = kv, b = b, t = h._t, u = u })
    return true
  end

  -- Group the rows of the batches by key: order (keys in first-seen
  -- order), by key: { kv =, rows = }. late(row) -> true drops the row.
  local function group(batches, release, late)
    local order, by, dropped, lost = {}, {}, 0, {}
    for b in batches do
      local rows, krows = b:rows(), keys_of(b)
      release(b)
      for i, row in ipairs(rows) do
        if late and late(row) then
          dropped = dropped + 1
          lost[#lost + 1] = row
        else
          local kr = krows[i]
          local kv = {}
          for j, n in ipairs(key_names) do kv[j] = kr[n] end
          local key = encode_key(kv, nkeys)
          local g = by[key]
          if not g then
            if #key > MAX_KEY_BYTES then
              error(format("process: the key %s takes %d bytes encoded; the state store takes at most %d",
                key_text(kv, nkeys), #key, MAX_KEY_BYTES), 0)
            end
            g = { kv = kv, rows = {} }
            by[key] = g
            order[#order + 1] = key
          end
          g.rows[#g.rows + 1] = row
        end
      end
    end
    return order, by, dropped, lost
  end

  local function output(rows)
    local b, msg = core.rows_batch(schema, rows)
    if not b then error("process: a result row does not fit the schema (" .. schema:ddl() .. "): " .. msg, 0) end
    return b
  end

  function node.physical()
    local op = { owns = true, new_state = node.new_state }
    function op.run(self, batches, run)
      local release = function(b) self:release(b) end
      if not run then -- static: each key once, with all its rows, from no state
        local order, by = group(batches, release)
        local out, ctx = {}, { timeout = timeout, timestamp = core.time_now() }
        for _, key in ipairs(order) do call(nil, key, by[key].kv, by[key].rows, false, ctx, out) end
        return util.once(output(out))
      end
      local st, m = run.state, run.metrics
      local ts, wm = run.timestamp, run.watermark
      local ctx = { timeout = timeout, timestamp = ts, watermark = wm }
      -- TTL: values not set for ttl are gone before any call sees them
      if ttl and ts then
        local gone = {}
        for key, r in pairs(st.map) do
          if r.u and r.u + ttl <= ts then gone[#gone + 1] = key end
        end
        table.sort(gone)
        for _, key in ipairs(gone) do st.delete(key) end
      end
      -- late rows: with event-time timeouts, rows at or before the
      -- previous batch's watermark (Spark drops them in that mode only)
      local late
      local lw = run.late_watermark
      if timeout == "event_time" and et and lw then
        late = function(row)
          local t = row[et]
          return t ~= nil and t <= lw
        end
      end
      local order, by, dropped, lost = group(batches, release, late)
      m.dropped_by_watermark = m.dropped_by_watermark + dropped
      if #lost > 0 and run.late then run.late(assert(core.rows_batch(input.schema, lost))) end
      local out, called = {}, {}
      for _, key in ipairs(order) do
        called[key] = true
        if call(st, key, by[key].kv, by[key].rows, false, ctx, out) then m.updated = m.updated + 1 end
      end
      local threshold = timeout == "processing" and ts or timeout == "event_time" and wm or nil
      if threshold then
        local due = {}
        for key, r in pairs(st.map) do
          if not called[key] and r.t and r.t < threshold then due[#due + 1] = key end
        end
        table.sort(due)
        for _, key in ipairs(due) do
          if call(st, key, st.map[key].kv, {}, true, ctx, out) then m.updated = m.updated + 1 end
        end
      end
      return util.once(output(out))
    end
    return op
  end
  return node
end

M.Handle = Handle
return M
