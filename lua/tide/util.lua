--- Shared helpers: durations, sizes, option tables, time formatting.
--
-- Everything here is pure Lua and has no state. The checking functions raise
-- errors that blame the user's call site: `duration`, `size` and
-- `check_options` are meant to be called by a public API function on the
-- user's arguments, so their default error level (3) points at whoever
-- called that API function.
--
--    local util = require "tide.util"
--    util.duration("10 minutes")    --> 600000
--    util.size("64MB")              --> 67108864
--    util.iso8601(1795262405250)    --> "2026-11-21T12:00:05.250Z"
--
-- @module tide.util

local cjson = require "cjson"

local M = {}

local type, tostring, error, pairs, ipairs = type, tostring, error, pairs, ipairs
local math_type, tointeger, floor = math.type, math.tointeger, math.floor
local format, concat, sort = string.format, table.concat, table.sort

-- The largest float that converts to an integer without overflow.
local MAX_EXACT = 2 ^ 63

--- Describe a value for an error message: strings and numbers quoted as
-- they were given, other values by their type.
local function show(v)
  local t = type(v)
  if t == "string" or t == "number" then return "'" .. tostring(v) .. "'" end
  if t == "nil" then return "nil" end
  return "of type " .. t
end

local function prefix(what)
  if what == nil or what == "" then return "" end
  return tostring(what) .. ": "
end

-- Round a non-negative float to the nearest integer; nil when it does not
-- fit a Lua integer.
local function round(x)
  if x ~= x or x < 0 or x >= MAX_EXACT then return nil end
  return tointeger(floor(x + 0.5))
end

-- A number that is a non-negative integer, or a float with an integral
-- value, as an integer; nil otherwise.
local function natural(v)
  if math_type(v) == "integer" then return v >= 0 and v or nil end
  if math_type(v) == "float" and v >= 0 and v < MAX_EXACT and v == floor(v) then
    return tointeger(v)
  end
  return nil
end

-- ------------------------------------------------------------------------
-- Durations
-- ------------------------------------------------------------------------

local MS = { ms = 1, s = 1000, m = 60000, h = 3600000, d = 86400000, w = 604800000 }
local DURATION_UNITS = {
  ms = MS.ms, msec = MS.ms, msecs = MS.ms, millisecond = MS.ms, milliseconds = MS.ms,
  s = MS.s, sec = MS.s, secs = MS.s, second = MS.s, seconds = MS.s,
  m = MS.m, min = MS.m, mins = MS.m, minute = MS.m, minutes = MS.m,
  h = MS.h, hr = MS.h, hrs = MS.h, hour = MS.h, hours = MS.h,
  d = MS.d, day = MS.d, days = MS.d,
  w = MS.w, week = MS.w, weeks = MS.w,
}

local DURATION_HINT = "(use milliseconds or '<n> <unit>' with unit ms, s, min, h, d)"

--- The valid timestamp range (ms since the epoch, as core/schema.h's
-- TIDE_TS_MIN and TIDE_TS_MAX): 0000-01-01T00:00:00Z through
-- 9999-12-31T23:59:59.999Z, the instants four-digit ISO-8601 years name.
-- Input timestamps outside it are refused at ingest; watermarks stay in it.
M.TS_MIN, M.TS_MAX = -62167219200000, 253402300799999
--- The largest duration (ms): the span of the valid timestamp range (about
-- 10000 years). With both bounds, `t - delay` and `start + size` never
-- leave the integers.
M.DURATION_MAX = M.TS_MAX - M.TS_MIN

--- Clamp an integer into the valid timestamp range.
function M.clamp_ts(t)
  if t < M.TS_MIN then return M.TS_MIN end
  if t > M.TS_MAX then return M.TS_MAX end
  return t
end

--- `t - d` for any integer t and a duration d (0 <= d <= DURATION_MAX),
-- clamped into the valid timestamp range: no wrap-around whatever t is.
function M.ts_minus(t, d)
  return M.clamp_ts(M.clamp_ts(t) - d)
end

--- Convert a duration to integer milliseconds.
--
-- Accepted: a number of milliseconds (an integer >= 0, or a float with an
-- integral value); a string of digits (milliseconds); or a string
-- `"<n> <unit>"` / `"<n><unit>"` where n is an integer or a decimal and the
-- unit, in any case, is one of ms, s, sec, secs, second, seconds, m, min,
-- mins, minute, minutes, h, hr, hour, hours, d, day, days, w, week, weeks.
-- A decimal is rounded to the nearest millisecond (`"1.5s"` is 1500).
-- @param v the duration
-- @string[opt] what the prefix of the error message (the API function or option)
-- @int[opt=3] level the error level (3: the caller of the function calling `duration`)
-- @treturn int milliseconds
-- At most `DURATION_MAX` (about 10000 years): a longer one is refused, never
-- wrapped around.
-- @raise `what: invalid duration 'v' (use milliseconds or '<n> <unit>' with unit ms, s, min, h, d)`,
-- `what: duration 'v' is too long (at most 315569519999999 ms, about 10000 years)`
function M.duration(v, what, level)
  local ms
  if type(v) == "number" then
    ms = natural(v)
  elseif type(v) == "string" then
    local n, unit = v:match("^%s*(%d*%.?%d+)%s*(%a*)%s*$")
    if n then
      local factor = unit == "" and 1 or DURATION_UNITS[unit:lower()]
      -- in floats: an integer product could wrap around (issue 18)
      if factor then ms = tonumber(n) * 1.0 * factor end
    end
  end
  if ms == nil then
    error(prefix(what) .. "invalid duration " .. show(v) .. " " .. DURATION_HINT, level or 3)
  end
  if ms > M.DURATION_MAX then
    error(format("%sduration %s is too long (at most %d ms, about 10000 years)", prefix(what), show(v),
      M.DURATION_MAX), level or 3)
  end
  return math_type(ms) == "integer" and ms or round(ms)
end

--- Format milliseconds as the shortest exact duration text: `"7d"`,
-- `"90 min"`, `"1500 ms"`, `"0 ms"`. The result is accepted by `duration`.
-- @int ms milliseconds (>= 0)
-- @treturn string
function M.format_duration(ms)
  if ms == 0 then return "0 ms" end
  for _, u in ipairs { { MS.w, "w" }, { MS.d, "d" }, { MS.h, "h" }, { MS.m, " min" }, { MS.s, "s" } } do
    if ms % u[1] == 0 then return format("%d%s", ms // u[1], u[2]) end
  end
  return format("%d ms", ms)
end

-- ------------------------------------------------------------------------
-- Sizes
-- ------------------------------------------------------------------------

local K = 1024
local SIZE_UNITS = {
  [""] = 1, b = 1,
  k = K, kb = K, kib = K,
  m = K ^ 2, mb = K ^ 2, mib = K ^ 2,
  g = K ^ 3, gb = K ^ 3, gib = K ^ 3,
  t = K ^ 4, tb = K ^ 4, tib = K ^ 4,
}

local SIZE_HINT = "(use bytes or '<n><unit>' with unit B, KB, MB, GB, TB)"

--- Convert a size to integer bytes.
--
-- Accepted: a number of bytes (an integer >= 0, or a float with an integral
-- value), or a string `"<n><unit>"` / `"<n> <unit>"` with n an integer or a
-- decimal and the unit, in any case, one of B, K, KB, KiB, M, MB, MiB, G, GB,
-- GiB, T, TB, TiB. As in Spark and Kafka, KB, MB, GB and TB are powers of
-- 1024, the same as KiB, MiB, GiB, TiB: `"64MB"` is 67108864 bytes. A decimal
-- is rounded to the nearest byte.
-- @param v the size
-- @string[opt] what the prefix of the error message
-- @int[opt=3] level the error level
-- @treturn int bytes
-- @raise `what: invalid size 'v' (use bytes or '<n><unit>' with unit B, KB, MB, GB, TB)`
function M.size(v, what, level)
  local bytes
  if type(v) == "number" then
    bytes = natural(v)
  elseif type(v) == "string" then
    local n, unit = v:match("^%s*(%d*%.?%d+)%s*(%a*)%s*$")
    local factor = n and SIZE_UNITS[unit:lower()]
    -- in floats: an integer product could wrap around (issue 18)
    if factor then bytes = round(tonumber(n) * 1.0 * factor) end
  end
  if bytes == nil then
    error(prefix(what) .. "invalid size " .. show(v) .. " " .. SIZE_HINT, level or 3)
  end
  return bytes
end

--- Format bytes for people: `"64 MiB"` when exact, else `"1.5 KiB"` style
-- with one decimal, `"512 B"` below 1 KiB.
-- @int bytes
-- @treturn string
function M.format_size(bytes)
  local units = { "KiB", "MiB", "GiB", "TiB" }
  if bytes < K then return format("%d B", bytes) end
  local v, i = bytes / K, 1
  while v >= K and i < #units do v, i = v / K, i + 1 end
  if v == floor(v) then return format("%d %s", floor(v), units[i]) end
  return format("%.1f %s", v, units[i])
end

-- ------------------------------------------------------------------------
-- Option tables
-- ------------------------------------------------------------------------

local ARTICLE = {
  boolean = "a boolean", string = "a string", integer = "an integer", number = "a number",
  table = "a table", ["function"] = "a function", duration = "a duration", size = "a size",
}

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = tostring(k) end
  sort(keys)
  return keys
end

--- Check an option table against a spec and return a converted copy.
--
-- `spec` maps each allowed option name to a type name ("boolean", "string",
-- "integer", "number", "duration", "size", "table", "function", "any") or to
-- a table `{type = ..., values = {...}, min = n, max = n, default = v}`:
-- `values` lists the allowed strings, `min`/`max` bound numbers (after
-- conversion, so in ms or bytes for durations and sizes), `default` fills an
-- absent option. Durations become integer milliseconds and sizes integer
-- bytes; an integral float given for an "integer" becomes an integer.
-- @tab[opt] opts the user's options (nil is an empty table)
-- @tab spec the allowed options
-- @string what the prefix of error messages (usually the API function)
-- @int[opt=3] level the error level
-- @treturn tab a new table holding the checked, converted options
-- @raise `what: options must be a table, got string`,
-- `what: unknown option 'foo' (allowed: a, b, c)`,
-- `what: option 'sync' must be a boolean, got string`,
-- `what: option 'mode' must be one of append, update, complete, got 'x'`,
-- `what: option 'n' must be >= 1, got 0`, or a duration or size error
function M.check_options(opts, spec, what, level)
  level = level or 3
  local pre = prefix(what)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then
    error(pre .. "options must be a table, got " .. type(opts), level)
  end
  for k in pairs(opts) do
    if spec[k] == nil then
      error(format("%sunknown option '%s' (allowed: %s)", pre, tostring(k),
        concat(sorted_keys(spec), ", ")), level)
    end
  end
  local out = {}
  for name, s in pairs(spec) do
    if type(s) == "string" then s = { type = s } end
    local v = opts[name]
    if v == nil then v = s.default end
    if v ~= nil then
      local t, opt = s.type or "any", format("option '%s'", name)
      if t == "duration" then
        v = M.duration(v, pre .. opt, level + 1)
      elseif t == "size" then
        v = M.size(v, pre .. opt, level + 1)
      elseif t == "integer" then
        local i = type(v) == "number" and tointeger(v)
        if not i then
          local got = type(v) == "number" and "number " .. tostring(v) or type(v)
          error(format("%s%s must be an integer, got %s", pre, opt, got), level)
        end
        v = i
      elseif t ~= "any" and type(v) ~= t then
        error(format("%s%s must be %s, got %s", pre, opt, ARTICLE[t] or t, type(v)), level)
      end
      if s.values then
        local ok = false
        for _, allowed in ipairs(s.values) do
          if v == allowed then ok = true break end
        end
        if not ok then
          error(format("%s%s must be one of %s, got %s", pre, opt, concat(s.values, ", "), show(v)), level)
        end
      end
      if s.min and v < s.min then
        error(format("%s%s must be >= %s, got %s", pre, opt, tostring(s.min), tostring(v)), level)
      end
      if s.max and v > s.max then
        error(format("%s%s must be <= %s, got %s", pre, opt, tostring(s.max), tostring(v)), level)
      end
      out[name] = v
    end
  end
  return out
end

-- ------------------------------------------------------------------------
-- Time
-- ------------------------------------------------------------------------

-- Days since 1970-01-01 to a proleptic Gregorian (year, month, day), for any
-- integer day count (Howard Hinnant's civil_from_days algorithm).
local function civil_from_days(z)
  z = z + 719468
  local era = z // 146097                                  -- floor division: right for z < 0
  local doe = z - era * 146097                             -- [0, 146096]
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)    -- [0, 365]
  local mp = (5 * doy + 2) // 153                          -- [0, 11], March first
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

--- Format milliseconds since the Unix epoch as ISO-8601 UTC:
-- `"2026-11-21T12:00:05Z"`, or `"2026-11-21T12:00:05.250Z"` when the
-- millisecond part is not zero. Negative values are before 1970. Years
-- outside 0..9999 get a sign and six digits (`"+010000-01-01T00:00:00Z"`).
-- @int ms milliseconds since the epoch (an integral float is accepted)
-- @treturn string
function M.iso8601(ms)
  local i = tointeger(ms)
  if not i then
    error("bad argument #1 to 'iso8601' (integer expected, got " ..
      (type(ms) == "number" and "non-integral number" or type(ms)) .. ")", 2)
  end
  local secs, frac = i // 1000, i % 1000
  local days, sod = secs // 86400, secs % 86400
  local y, mo, d = civil_from_days(days)
  local year = (y >= 0 and y <= 9999) and format("%04d", y) or format("%+07d", y)
  local s = format("%s-%02d-%02dT%02d:%02d:%02d", year, mo, d, sod // 3600, sod % 3600 // 60, sod % 60)
  if frac ~= 0 then s = s .. format(".%03d", frac) end
  return s .. "Z"
end

-- ------------------------------------------------------------------------
-- Iterators
-- ------------------------------------------------------------------------

--- An iterator of one value (none when v is nil).
function M.once(v)
  local done = false
  return function()
    if done then return nil end
    done = true
    return v
  end
end

--- The values of iterators one after the other: open(1), open(2), ...
-- until open(k) returns nil (each is opened when the one before ends).
function M.chain(open)
  local k, cur = 0, nil
  return function()
    while true do
      if cur then
        local v = cur()
        if v ~= nil then return v end
        cur = nil
      end
      k = k + 1
      cur = open(k)
      if cur == nil then return nil end
    end
  end
end

-- ------------------------------------------------------------------------
-- Error messages
-- ------------------------------------------------------------------------

--- Cut [from, stop) (arrays of per-partition offsets) to at most `limit` records in all, shared fairly: every
-- partition with records gets an equal share, a partition that needs less
-- leaves the rest to the others; records that do not divide evenly go
-- one each to partitions taken in a rotating order (from the sum of the
-- start offsets), so that no partition waits for ever behind another.
-- Used by the sources' max_*_per_trigger (topic, kafka); returns the new
-- stop array (stop itself when everything fits).
function M.fair_limit(from, stop, limit)
  local n, total, avail, alloc, active = #from, 0, {}, {}, {}
  for i = 1, n do
    avail[i], alloc[i] = stop[i] - from[i], 0
    total = total + avail[i]
    if avail[i] > 0 then active[#active + 1] = i end
  end
  if total <= limit then return stop end
  local left = limit
  while left > 0 and #active > 0 do
    local share = left // #active
    if share == 0 then
      local rot = 0
      for i = 1, n do rot = rot + from[i] end
      for k = 0, left - 1 do
        local i = active[(rot + k) % #active + 1]
        alloc[i] = alloc[i] + 1
      end
      left = 0
    else
      local still = {}
      for _, i in ipairs(active) do
        local give = math.min(share, avail[i] - alloc[i])
        alloc[i] = alloc[i] + give
        left = left - give
        if alloc[i] < avail[i] then still[#still + 1] = i end
      end
      active = still
    end
  end
  local out = {}
  for i = 1, n do out[i] = from[i] + alloc[i] end
  return out
end

--- Remove the Lua position prefixes (`"file.lua:12: "`, `'[string "x"]:1: '`,
-- `"[C]: "`) from an error message and keep its first line only, for
-- messages shown to people. Non-string errors are converted with tostring.
-- @param msg an error value
-- @treturn string
function M.strip_position(msg)
  msg = tostring(msg)
  msg = msg:match("^[^\n]*")
  while true do
    local rest = msg:match('^%[string ".-"%]:%d+: (.*)$')
      or msg:match("^%[C%]:%-?%d*:? (.*)$")
      or msg:match("^[^%s:]+:%d+: (.*)$")
    if not rest then return msg end
    msg = rest
  end
end

-- ------------------------------------------------------------------------
-- Text tables
-- ------------------------------------------------------------------------

local function text_width(s) return utf8.len(s) or #s end

--- Lay out cells as an aligned text table, one string per line. The one
-- layout behind `show()` (Spark's bordered table) and the CLI's listings
-- (plain columns, numbers right-aligned, as `kubectl get` prints them);
-- the callers only turn their values into cell text.
-- @tab header the header's cells (strings)
-- @tab body an array of rows, each an array of cell strings
-- @tab[opt] opts `border` (draw `+---+` rules and `|` bars; else columns
-- are joined by two spaces and the last one is not padded), `min_width`
-- (default 0), `right` (`function(col, row)`: whether that cell is right
-- aligned; `row` is 0 for the header; default left)
-- @return an array of lines
function M.text_table(header, body, opts)
  opts = opts or {}
  local border, right = opts.border, opts.right or function() return false end
  local ncol, width = #header, {}
  for c = 1, ncol do width[c] = math.max(opts.min_width or 0, text_width(header[c])) end
  for _, cells in ipairs(body) do
    for c = 1, ncol do
      local w = text_width(cells[c])
      if w > width[c] then width[c] = w end
    end
  end
  local function line(cells, r)
    local out = {}
    for c = 1, ncol do
      local s = cells[c]
      local pad = string.rep(" ", width[c] - text_width(s))
      if right(c, r) then out[c] = pad .. s
      elseif border or c < ncol then out[c] = s .. pad
      else out[c] = s end
    end
    return border and ("|" .. concat(out, "|") .. "|") or concat(out, "  ")
  end
  local rule
  if border then
    local dashes = {}
    for c = 1, ncol do dashes[c] = string.rep("-", width[c]) end
    rule = "+" .. concat(dashes, "+") .. "+"
  end
  local lines = { rule, line(header, 0), rule }
  if not border then lines = { line(header, 0) } end
  for r, cells in ipairs(body) do lines[#lines + 1] = line(cells, r) end
  if border then lines[#lines + 1] = rule end
  return lines
end

-- ------------------------------------------------------------------------
-- JSON for logs (offset and commit entries)
-- ------------------------------------------------------------------------
--
-- One codec per job on the Lua side: lua-cjson decodes every Lua-side
-- document (json_decode below) and encodes text that is only shown. This
-- canonical encoder stays for what the engine writes, reads back and
-- compares, where lua-cjson's output would be wrong: lua-cjson 2.1 prints
-- numbers with 14 significant digits (an offset, a byte position or a
-- timestamp in microseconds past 10^14 would change on the way through the
-- log) and writes object keys in hash order (the engine decides "is there
-- new data" by comparing offsets as text, which needs equal values to give
-- equal text). Its users: the offset and commit logs (tide.query), the
-- file source's range log and the file sink's manifest, and schema defaults
-- (tide.schema).

local ESC = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t", ["\b"] = "\\b",
  ["\f"] = "\\f" }

--- A JSON string literal for s.
function M.json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return ESC[c] or format("\\u%04x", c:byte()) end) .. '"'
end

-- A float's shortest text that reads back exactly; integral floats keep
-- ".0" so that a float stays a float (lua-cjson stops at 14 digits).
local function float_text(v)
  if v ~= v or v == math.huge or v == -math.huge then error("json: not a finite number", 0) end
  for digits = 15, 17 do
    local t = format("%." .. digits .. "g", v)
    if tonumber(t) == v then return t:find("[%.eEn]") and t or t .. ".0" end
  end
end

local function encode(v, out, depth)
  local t = type(v)
  if depth > 64 then error("json: nested too deeply", 0) end
  if v == nil then
    out[#out + 1] = "null"
  elseif t == "boolean" then
    out[#out + 1] = v and "true" or "false"
  elseif t == "number" then
    out[#out + 1] = math_type(v) == "integer" and format("%d", v) or float_text(v)
  elseif t == "string" then
    out[#out + 1] = M.json_string(v)
  elseif t == "table" then
    local n, count = #v, 0
    for _ in pairs(v) do count = count + 1 end
    -- the project's rule for Lua -> JSON (core/l_batch.c): a metatable's
    -- __jsontype "array" or "object" decides, else keys exactly 1..n
    local mt = getmetatable(v)
    local forced = type(mt) == "table" and mt.__jsontype or nil
    if (forced == "array" and count == n) or (forced ~= "object" and n > 0 and count == n) then
      out[#out + 1] = "["
      for i = 1, n do
        if i > 1 then out[#out + 1] = "," end
        encode(v[i], out, depth + 1)
      end
      out[#out + 1] = "]"
    else
      local keys, key_of = {}, {}
      for k in pairs(v) do
        if type(k) ~= "string" and type(k) ~= "number" then
          error("json: object keys must be strings or numbers, got " .. type(k), 0)
        end
        local ks = tostring(k)
        keys[#keys + 1], key_of[ks] = ks, k
      end
      sort(keys)
      out[#out + 1] = "{"
      for i, ks in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = M.json_string(ks)
        out[#out + 1] = ":"
        encode(v[key_of[ks]], out, depth + 1)
      end
      out[#out + 1] = "}"
    end
  else
    error("json: cannot encode a " .. t, 0)
  end
end

--- Canonical JSON text of a Lua value: object keys sorted, integers as
-- integers, floats exact (integral ones with ".0"), a table whose keys are
-- exactly 1..n (n > 0, or a __jsontype "array" metafield) an array; so equal values give equal text (the
-- engine compares offsets by their text; schemas store defaults with it).
-- @raise `json: ...` for functions, userdata, NaN and infinities
function M.json_encode(v)
  local out = {}
  encode(v, out, 0)
  return concat(out)
end

-- lua-cjson decodes every number as a float and null as a sentinel.
local function normalize(v, null)
  if type(v) == "number" then
    return (v == floor(v) and v > -MAX_EXACT and v < MAX_EXACT) and tointeger(v) or v
  elseif v == null then
    return nil
  elseif type(v) == "table" then
    local out = {}
    for k, x in pairs(v) do out[k] = normalize(x, null) end
    return out
  end
  return v
end

--- Decode JSON text: integral numbers become integers, null becomes nil.
-- @return value, or nil and a message
function M.json_decode(text)
  local ok, v = pcall(cjson.decode, text)
  if not ok then return nil, tostring(v) end
  return normalize(v, cjson.null)
end

return M
