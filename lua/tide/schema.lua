--- Schemas: the JSON form that `tide schema get` prints and `tide schema put`
-- reads, and schema inference from sample JSON lines and CSV files.
--
-- The JSON form of a schema:
--
--    {"version":2,"compatibility":"backward","fields":[
--      {"name":"ts","type":"timestamp","nullable":false},
--      {"name":"signal","type":"int","nullable":true,"default":0}]}
--
-- `version` and `compatibility` are printed for information; `from_json`
-- reads `fields` and ignores them.
--
-- @module tide.schema

local core = require "tide.core"
local cjson = require "cjson"
local util = require "tide.util"

local M = {}

local format, concat = string.format, table.concat

-- JSON text of a default value: exact numbers (lua-cjson stops at 14
-- significant digits, which would make a get/put round trip register a new
-- version for a default like 0.30000000000000004).
local encode_value = util.json_encode

--- Encode a schema (array form, as `db:schema()` returns in `fields`) as
-- the JSON form.
-- @tab fields the array form: `{ {"ts","timestamp"}, {"signal","int?", default=0} }`
-- @tab[opt] extra `version` and `compatibility` to print
-- @treturn string one line of JSON
function M.to_json(fields, extra)
  local out = {}
  for i, f in ipairs(fields) do
    local name, ty = f[1] or f.name, f[2] or f.type
    local nullable = ty:sub(-1) == "?"
    local e = { format("\"name\":%s", cjson.encode(name)),
      format("\"type\":%s", cjson.encode(nullable and ty:sub(1, -2) or ty)),
      format("\"nullable\":%s", tostring(nullable)) }
    if f.default ~= nil then
      local ok, text = pcall(encode_value, f.default)
      if not ok then
        error(format("field '%s': default cannot be written as JSON: %s", name, util.strip_position(text)), 2)
      end
      e[#e + 1] = "\"default\":" .. text
    end
    out[i] = "{" .. concat(e, ",") .. "}"
  end
  local head = {}
  if extra and extra.version then head[#head + 1] = format("\"version\":%d", extra.version) end
  if extra and extra.compatibility then
    head[#head + 1] = format("\"compatibility\":%s", cjson.encode(extra.compatibility))
  end
  head[#head + 1] = "\"fields\":[" .. concat(out, ",") .. "]"
  return "{" .. concat(head, ",") .. "}"
end

local field_keys = { name = true, type = true, nullable = true, default = true }

-- cjson reads every number as a float: give integral ones back as integers,
-- inside objects and arrays too (a json default {"a":[1]} must come back as
-- written, or registering it again would not be idempotent).
local function integral(v)
  if math.type(v) == "float" then
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then return math.tointeger(v) end
  elseif type(v) == "table" then
    local t = setmetatable({}, getmetatable(v))
    for k, x in pairs(v) do t[k] = integral(x) end
    return t
  end
  return v
end

--- Decode the JSON form into the array form.
-- @string text JSON
-- @return the array form, or nil and a message naming what is wrong
function M.from_json(text)
  local ok, doc = pcall(cjson.decode, text)
  if not ok then return nil, "not JSON: " .. tostring(doc):gsub("^.-: ", "") end
  if type(doc) ~= "table" or type(doc.fields) ~= "table" then
    return nil, "expected an object with a \"fields\" array"
  end
  for k in pairs(doc) do
    if k ~= "fields" and k ~= "version" and k ~= "compatibility" then
      return nil, format("unknown key \"%s\" (allowed: fields, version, compatibility)", tostring(k))
    end
  end
  local fields = {}
  for i, f in ipairs(doc.fields) do
    if type(f) ~= "table" then return nil, format("field %d: expected an object", i) end
    for k in pairs(f) do
      if not field_keys[k] then
        return nil, format("field %d: unknown key \"%s\" (allowed: name, type, nullable, default)", i, tostring(k))
      end
    end
    if type(f.name) ~= "string" then return nil, format("field %d: \"name\" must be a string", i) end
    if type(f.type) ~= "string" then return nil, format("field '%s': \"type\" must be a string", f.name) end
    if f.nullable ~= nil and type(f.nullable) ~= "boolean" then
      return nil, format("field '%s': \"nullable\" must be true or false", f.name)
    end
    local e = { f.name, f.type .. (f.nullable and "?" or "") }
    if f.default ~= nil and f.default ~= cjson.null then e.default = integral(f.default) end
    fields[i] = e
  end
  if #fields == 0 then return nil, "\"fields\" is empty" end
  return fields
end

-- ------------------------------------------------------------------------
-- Inference
-- ------------------------------------------------------------------------

local SAMPLE = 1000
-- epoch milliseconds between 2000-01-01 and 2100-01-01 are "plausible"
local MS_LO, MS_HI = 946684800000, 4102444800000

local function time_named(name)
  local n = name:lower()
  return n == "ts" or n == "time" or n == "timestamp" or n:match("_at$") ~= nil or n:match("_time$") ~= nil
    or n:match("_ts$") ~= nil
end

-- The kind of one JSON value: "null", "bool", "int", "double", "string", "json".
local function kind(v)
  local t = type(v)
  if v == nil then return "null" end
  if t == "boolean" then return "bool" end
  if t == "number" then return math.type(v) == "integer" and "int" or "double" end
  if t == "string" then return "string" end
  return "json"
end

-- The type that holds values of both kinds (Spark's JSON inference: int and
-- double widen to double; anything else mixed becomes string, or json when
-- an object or array is involved).
local function merge(a, b)
  if a == nil or a == b then return b end
  if (a == "int" and b == "double") or (a == "double" and b == "int") then return "double" end
  if a == "json" or b == "json" then return "json" end
  return "string"
end

-- The top-level keys of a JSON object, in the order they appear (Lua tables
-- forget it). The text is already known to be valid JSON.
local function top_keys(line)
  local keys, depth, i, n = {}, 0, 1, #line
  while i <= n do
    local c = line:sub(i, i)
    if c == '"' then
      local j = i + 1
      while true do
        local q = line:find('["\\]', j)
        if not q then return keys end
        if line:sub(q, q) == "\\" then j = q + 2 else j = q break end
      end
      if depth == 1 and line:match("^%s*:", j + 1) then
        local raw = line:sub(i + 1, j - 1)
        local ok, k = pcall(cjson.decode, '"' .. raw .. '"')
        keys[#keys + 1] = ok and k or raw
      end
      i = j + 1
    else
      if c == "{" or c == "[" then depth = depth + 1 elseif c == "}" or c == "]" then depth = depth - 1 end
      i = i + 1
    end
  end
  return keys
end

-- Decode the sample's lines (each wrapped as {"value": <line>} so that one
-- json column takes any value); linenos[i] is line i's number in the file.
local WRAP = '{"value":'
local function decode_sample(lines, linenos, origin)
  local wrapped = {}
  for i, l in ipairs(lines) do wrapped[i] = WRAP .. l .. '}' end
  local b, msg = core.json_batch("value json?", concat(wrapped, "\n"), {})
  if not b then
    -- the decoder counts the wrapped lines and their columns: give the file's
    local n = tonumber(msg:match("^line (%d+)"))
    local why = msg:gsub("^line %d+: ", ""):gsub("field 'value': ", "")
      :gsub("^(invalid JSON at column )(%d+)", function(head, col)
        return head .. math.max(1, tonumber(col) - #WRAP)
      end)
    error(format("infer_schema: %s%s: %s", origin, n and (" line " .. (linenos[n] or n)) or "", why), 3)
  end
  local order = {}
  for i, l in ipairs(lines) do order[i] = top_keys(l) end
  return b:column("value"), #lines, order
end

-- The DDL of the inferred fields: `order` in order, `info[name]` holding
-- what the sample showed (`kind`, `null`, `seen`, `ms`, `iso`), `n` rows.
local function inferred_ddl(order, info, n)
  local out = {}
  for _, o in ipairs(order) do
    local f = info[o.name]
    local ty = f.kind or "string"
    if ty == "int" and f.ms and time_named(o.name) then ty = "timestamp"
    elseif f.kind == "string" and f.iso then ty = "timestamp" end
    local nullable = f.null or f.seen < n
    local name = o.name:match("^[%a_][%w_]*$") and o.name or ("`" .. o.name .. "`")
    out[#out + 1] = name .. " " .. ty .. (nullable and "?" or "")
  end
  return concat(out, ", ")
end

-- Record one value of kind `kd` (value v) in a field's info.
local function observe(f, kd, v)
  f.seen = f.seen + 1
  if kd == "null" then
    f.null = true
    return
  end
  f.kind = merge(f.kind, kd)
  if kd ~= "int" or v < MS_LO or v > MS_HI then f.ms = false end
  if kd ~= "string" or not v:match("^%d%d%d%d%-%d%d%-%d%d") or not core.ts_parse(v) then f.iso = false end
end

-- The fields of the first CSV record of `text` (RFC 4180 quotes; a quoted
-- field may hold the separator), and the number of lines it spans.
local function csv_header(text, sep)
  local fields, i, n, lines = {}, 1, #text, 1
  while true do
    local field
    if text:sub(i, i) == '"' then
      local parts, j = {}, i + 1
      while true do
        local q = text:find('"', j, true)
        if not q then return nil, "an unterminated quoted field" end
        parts[#parts + 1] = text:sub(j, q - 1)
        if text:sub(q + 1, q + 1) == '"' then
          parts[#parts + 1] = '"'
          j = q + 2
        else
          i = q + 1
          break
        end
      end
      field = concat(parts)
      lines = lines + select(2, field:gsub("\n", ""))
    else
      local e = i
      while e <= n and text:sub(e, e) ~= sep and text:sub(e, e) ~= "\n" do e = e + 1 end
      field = text:sub(i, e - 1):gsub("\r$", "")
      i = e
    end
    fields[#fields + 1] = field
    local c = text:sub(i, i)
    if c == sep then
      i = i + 1
    else
      return fields, lines
    end
  end
end

-- The kind of one CSV cell (a string, or nil for an empty unquoted field).
local function csv_kind(v)
  if v == nil then return "null" end
  local lower = v:lower()
  if lower == "true" or lower == "false" then return "bool" end
  if v:match("^[+-]?%d+$") and math.tointeger(tonumber(v)) then return "int", math.tointeger(tonumber(v)) end
  if (v:match("^[+-]?%d+%.?%d*[eE][+-]?%d+$") or v:match("^[+-]?%d*%.%d+[eE][+-]?%d+$") or v:match("^[+-]?%d*%.?%d+$")
    or v:match("^[+-]?%d+%.$")) and tonumber(v) then
    return "double"
  end
  return "string"
end

-- Infer the DDL of a CSV file from its first SAMPLE records: names from
-- the header (o.header) or _c0, _c1, ... as Spark names them.
local function infer_csv(path, o)
  local sep = o.sep or ","
  if #sep ~= 1 then error("infer_schema: option 'sep' must be one character", 3) end
  local f, err = io.open(path, "r")
  if not f then error("infer_schema: " .. tostring(err), 3) end
  local lines = {}
  for line in f:lines("L") do
    lines[#lines + 1] = line
    if #lines > SAMPLE then break end
  end
  f:close()
  local text = concat(lines)
  if not text:find("%S") then error("infer_schema: no rows to infer from", 3) end
  local first, spanned = csv_header(text, sep)
  if not first then error(format("infer_schema: %s line 1: %s", path, spanned), 3) end
  local names, start_line = {}, 1
  if o.header then
    local seen = {}
    for k, name in ipairs(first) do
      if name == "" then name = "_c" .. (k - 1) end
      if seen[name] then error(format("infer_schema: %s line 1: the header names '%s' twice", path, name), 3) end
      seen[name], names[k] = true, name
    end
    -- the records after the header
    local skip = 0
    for _ = 1, spanned do skip = text:find("\n", skip + 1, true) or #text end
    text, start_line = text:sub(skip + 1), spanned + 1
  else
    for k = 1, #first do names[k] = "_c" .. (k - 1) end
  end
  local fields = {}
  for k, name in ipairs(names) do fields[k] = { name, "string?" } end
  local schema, why = core.schema(fields)
  if not schema then error("infer_schema: " .. tostring(why), 3) end
  local b, used = core.decode("csv", schema, text, true, { line = start_line, sep = sep, multi_line = o.multi_line })
  if not b then error(format("infer_schema: %s %s", path, used), 3) end
  local n = b:nrows()
  if n == 0 then
    b:close()
    error(format("infer_schema: %s holds no records%s", path, o.header and " after its header" or ""), 3)
  end
  local order, info = {}, {}
  for k, name in ipairs(names) do
    order[k] = { name = name }
    local fi = { seen = 0, ms = true, iso = true }
    info[name] = fi
    local col = b:column(name)
    for i = 1, n do
      local v = col[i]
      local kd, int = csv_kind(v)
      observe(fi, kd, kd == "int" and int or v)
    end
  end
  b:close()
  return inferred_ddl(order, info, n)
end

--- Infer a schema from a sample: JSON lines as Spark's JSON schema
-- inference does, or a CSV file as Spark's CSV `inferSchema` does.
--
-- JSON: fields in order of first appearance; int and double widen to
-- double; other mixes give string (json when objects or arrays are
-- involved); a field missing from a row or null in one is nullable.
-- CSV: the columns in order, named by the header (`header = true`) or
-- `_c0`, `_c1`, ...; a column is bool, int, double (int and double widen),
-- timestamp or string by the values it holds; an empty unquoted field is
-- NULL and makes its column nullable.
-- Both: integers that are all plausible epoch milliseconds (years
-- 2000..2100) in a field named like a time (`ts`, `time`, `timestamp`,
-- `*_at`, `*_time`, `*_ts`), and strings that all parse as ISO-8601 dates,
-- are timestamps.
-- @param source a file (its first 1000 lines or records), or an array of
-- rows (JSON objects as Lua tables)
-- @tab[opt] opts `format` (`json` or `csv`; default: `csv` for a file
-- named `*.csv`, else `json`), `header`, `sep` and `multi_line` (csv, as
-- `tide.read`)
-- @treturn string DDL
function M.infer(source, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("infer_schema: bad argument #2: expected an options table, got " .. type(opts), 2)
  end
  local o = opts or {}
  for k in pairs(o) do
    if k ~= "format" and k ~= "header" and k ~= "sep" and k ~= "multi_line" then
      error(format("infer_schema: unknown option '%s' (allowed: format, header, multi_line, sep)", tostring(k)), 2)
    end
  end
  local fmt = o.format
  if fmt == nil then fmt = type(source) == "string" and source:lower():match("%.csv$") and "csv" or "json" end
  if fmt ~= "json" and fmt ~= "csv" then
    error(format("infer_schema: option 'format' must be json or csv, got '%s'", tostring(fmt)), 2)
  end
  if fmt == "csv" then
    if type(source) ~= "string" then
      error("infer_schema: bad argument #1: CSV is inferred from a file name, got " .. type(source), 2)
    end
    return infer_csv(source, o)
  end
  local rows, n, keys
  local where = function(i) return "row " .. i end
  if type(source) == "string" then
    local f, err = io.open(source, "r")
    if not f then error("infer_schema: " .. tostring(err), 2) end
    local lines, linenos, k = {}, {}, 0
    for line in f:lines() do
      k = k + 1
      if line:match("%S") then lines[#lines + 1], linenos[#lines + 1] = line, k end
      if #lines >= SAMPLE then break end
    end
    f:close()
    rows, n, keys = decode_sample(lines, linenos, source)
    where = function(i) return format("%s line %d", source, linenos[i]) end
  elseif type(source) == "table" then
    rows, n = source, #source
  else
    error("infer_schema: bad argument #1: expected a file name or an array of rows, got " .. type(source), 2)
  end
  if n == 0 then error("infer_schema: no rows to infer from", 2) end
  local order, info = {}, {}
  for i = 1, n do
    local row = rows[i]
    if type(row) ~= "table" or row[1] ~= nil then
      error(format("infer_schema: %s is not a JSON object", where(i)), 2)
    end
    local pos, present = {}, {}
    for k, v in pairs(row) do present[#present + 1] = { k, v } end
    if keys then
      for j, k in ipairs(keys[i]) do
        pos[k] = pos[k] or j
        -- a key whose value is null is in the text but not in the row
        if row[k] == nil and pos[k] == j then present[#present + 1] = { k } end
      end
    end
    for _, kv in ipairs(present) do
      local k, v = kv[1], kv[2]
      if type(k) ~= "string" then error(format("infer_schema: %s has a non-string key", where(i)), 2) end
      local f = info[k]
      if not f then
        f = { seen = 0, ms = true, iso = true }
        info[k] = f
        order[#order + 1] = { name = k, first = i, pos = pos[k] or math.huge }
      end
      observe(f, kind(v), v)
    end
  end
  -- fields in order of first appearance; within a row, in the JSON text's
  -- order (for Lua rows, which have none, by name)
  table.sort(order, function(a, b)
    if a.first ~= b.first then return a.first < b.first end
    if a.pos ~= b.pos then return a.pos < b.pos end
    return a.name < b.name
  end)
  return inferred_ddl(order, info, n)
end

return M
