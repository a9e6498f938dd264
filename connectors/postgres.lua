--- The PostgreSQL connector: an exactly-once sink for streaming queries,
-- static frames written to a table, and a query's result read as a static
-- frame (docs/guide.md, "PostgreSQL").
--
--    q = counts:write_stream("postgres", { conninfo = "host=/run/pg dbname=app", table = "public.counts",
--                                          create_table = true, mode = "update", checkpoint = "ck" })
--    users = tide.read("postgres", { conninfo = ..., query = "SELECT id, name FROM users", refresh = "1 minute" })
--    f:write("postgres", { conninfo = ..., table = "public.daily", mode = "complete" })
--
-- Libpq and the rows' encoding are C (core/pg.c): each batch goes to the
-- server with COPY, encoded from the columns, never row by row in Lua.
--
-- Exactly-once. Each micro-batch is ONE PostgreSQL transaction: its rows
-- (append: COPY into the table; update: COPY into a temporary table, then
-- INSERT ... ON CONFLICT (keys) DO UPDATE; complete: DELETE, then COPY) and
-- the progress row (query id, table, batch id) in the progress table. A
-- batch whose id is not above the progress row's is skipped: it committed
-- before a crash, and the engine runs it again because its checkpoint did
-- not advance. The engine's checkpoint advances only after add_batch, so
-- after the PostgreSQL commit.
--
-- A lost connection is re-made (option `retries`, `retry_delay` apart) and
-- the batch's transaction run again from the start; the progress row makes
-- that safe when the lost reply was the commit's. A statement the server
-- refuses (a constraint, a type) fails the batch with the server's message.

local core = require "tide.core"
local util = require "tide.util"
local connector = require "tide.connector"

local M = { sources = {}, sinks = {} }

local format, concat = string.format, table.concat

-- tide type -> the column type create_table gives
M.TYPES = { int = "bigint", double = "double precision", string = "text", bool = "boolean",
  timestamp = "timestamptz", json = "jsonb" }

-- tide type -> the column types an existing table may have for it
local ACCEPT = {
  int = { bigint = true, integer = true, smallint = true, numeric = true },
  double = { ["double precision"] = true, real = true, numeric = true },
  string = { text = true, ["character varying"] = true, character = true },
  bool = { boolean = true },
  timestamp = { ["timestamp with time zone"] = true, ["timestamp without time zone"] = true },
  json = { jsonb = true, json = true },
}

-- PostgreSQL column type -> the binary COPY form a tide value takes for it
-- (core/pg.h, tide_pg_bin_t); ACCEPT has paired it with the tide type. A
-- column type not here (integer, smallint, real, numeric) makes the batch
-- go in COPY's text format.
local BINARY = { bigint = "int8", ["double precision"] = "float8", boolean = "bool",
  ["timestamp with time zone"] = "timestamp", ["timestamp without time zone"] = "timestamp",
  text = "text", ["character varying"] = "text", character = "text", json = "text", jsonb = "jsonb" }

local function accepted(ty)
  local names = {}
  for n in pairs(ACCEPT[ty]) do names[#names + 1] = n end
  table.sort(names)
  return concat(names, ", ")
end

--- A string literal that reads the same whatever standard_conforming_strings
-- says: E'...' with backslashes and quotes doubled.
local function literal(s) return "E'" .. s:gsub("\\", "\\\\"):gsub("'", "''") .. "'" end

--- A quoted identifier: "name" (double quotes doubled).
local function ident(name) return '"' .. name:gsub('"', '""') .. '"' end

--- A table name as SQL: `schema.table` or `table`, each part quoted (so
-- case-sensitive as written).
local function table_sql(name)
  local schema, t = name:match("^([^.]+)%.([^.]+)$")
  if schema then return ident(schema) .. "." .. ident(t) end
  if name:find(".", 1, true) or name == "" then
    error(format("option 'table' must be 'name' or 'schema.name', got '%s'", name), 0)
  end
  return ident(name)
end

-- ------------------------------------------------------------------------
-- Connections
-- ------------------------------------------------------------------------

local Conn = {}
Conn.__index = Conn

-- A connection that re-makes itself when lost, within a bound.
local function connect(o, what)
  local pg, msg = core.pg_connect(o.conninfo, o.retries + 1, o.retry_delay)
  if not pg then error(format("%s: %s", what, msg), 0) end
  return setmetatable({ o = o, what = what, pg = pg }, Conn)
end

local RETRYABLE = { ECONNRESET = true, ECONNREFUSED = true }

-- Raise with the server's message; a lost connection raises a table the
-- retry loop recognises.
local function check(what, ok, msg, ename)
  if ok then return ok end
  if RETRYABLE[ename] then error({ lost = msg }, 0) end
  error(format("%s: %s", what, msg), 0)
end

function Conn:exec(sql, params) return check(self.what, self.pg:exec(sql, params)) end

function Conn:copy(sql, batches, forms) return check(self.what, self.pg:copy(sql, batches, forms)) end

function Conn:query_batch(sql) return check(self.what, self.pg:query_batch(sql)) end

--- Run fn(self) with a bounded number of reconnects: a lost connection is
-- re-made and fn runs again from its start. The reconnect attempts of one
-- call share one budget, `retries` attempts `retry_delay` apart in all
-- (not `retries` per loss), so a server that stays away fails the call
-- after about retries * retry_delay.
function Conn:run(fn)
  local left = self.o.retries
  while true do
    local ok, err = pcall(fn, self)
    if ok then return err end
    if type(err) ~= "table" or not err.lost then
      pcall(self.pg.exec, self.pg, "ROLLBACK") -- the transaction, if one is open, is dropped
      error(err, 0)
    end
    if left == 0 then
      error(format("%s: connection lost: %s (no reconnect attempts left of %d)", self.what, err.lost,
        self.o.retries), 0)
    end
    local used, msg = self.pg:reset(left, self.o.retry_delay)
    if not used then error(format("%s: connection lost (%s), then %s", self.what, err.lost, msg), 0) end
    left = left - used
  end
end

function Conn:close()
  if self.pg then self.pg:close() end
  self.pg = nil
end

-- ------------------------------------------------------------------------
-- Tables
-- ------------------------------------------------------------------------

-- The table's column types by name (format_type's names without their
-- modifiers: "character varying"), or nil when there is no such table.
local function table_columns(c, tsql)
  local r = c:exec("SELECT to_regclass($1)::oid::text", { tsql })
  if not r[1][1] then return nil end
  local rows = c:exec("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a " ..
    "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", { r[1][1] })
  local out = {}
  for _, row in ipairs(rows) do out[row[1]] = (row[2]:gsub("%(.*%)", "")) end
  return out
end

-- Create the table from the frame's schema (primary key = keys), or check
-- the existing one's columns against it. Returns the table's column types
-- by name (format_type's names, without modifiers).
local function prepare_table(c, o, tsql, schema, keys)
  local cols = table_columns(c, tsql)
  if not cols then
    if not o.create_table then
      error(format("table %s does not exist (create it, or give create_table = true)", o.table), 0)
    end
    local defs, iskey = {}, {}
    for _, k in ipairs(keys or {}) do iskey[k] = true end
    for _, f in ipairs(schema:fields()) do
      local ty, nullable = f[2]:match("^(%a+)(%??)$")
      local notnull = (nullable == "" or iskey[f[1]]) and " NOT NULL" or ""
      defs[#defs + 1] = format("%s %s%s", ident(f[1]), M.TYPES[ty], notnull)
    end
    if keys and #keys > 0 then
      local k = {}
      for i, n in ipairs(keys) do k[i] = ident(n) end
      defs[#defs + 1] = format("PRIMARY KEY (%s)", concat(k, ", "))
    end
    c:exec(format("CREATE TABLE IF NOT EXISTS %s (%s)", tsql, concat(defs, ", ")))
    -- read back, as format_type names them (and checked: IF NOT EXISTS
    -- keeps a table made meanwhile by another writer)
    cols = table_columns(c, tsql)
  end
  for _, f in ipairs(schema:fields()) do
    local ty = f[2]:match("^(%a+)")
    local have = cols[f[1]]
    if not have then
      error(format("table %s has no column '%s' (the query's %s %s)", o.table, f[1], f[1], ty), 0)
    end
    if not ACCEPT[ty][have] then
      error(format("table %s: column '%s' is %s, but the query's %s is %s (for %s: %s)", o.table, f[1],
        have, f[1], ty, ty, accepted(ty)), 0)
    end
  end
  return cols
end

-- The binary COPY forms of the schema's columns in order, or nil when one
-- of the table's columns has none (then COPY's text format).
local function binary_forms(schema, types)
  local forms = {}
  for i, f in ipairs(schema:fields()) do
    forms[i] = BINARY[types[f[1]]]
    if not forms[i] then return nil end
  end
  return forms
end

local function column_list(schema)
  local names = {}
  for i, f in ipairs(schema:fields()) do names[i] = ident(f[1]) end
  return concat(names, ", ")
end

-- ------------------------------------------------------------------------
-- The sink
-- ------------------------------------------------------------------------

local SINK_OPTIONS = {
  conninfo = "string",
  table = "string",
  create_table = "boolean",
  keys = "table",
  progress_table = { type = "string", default = "tide_progress" },
  retries = { type = "integer", min = 0, default = 10 },
  retry_delay = { type = "duration", default = 500 },
}

-- The output's key columns for update mode, checked against the schema
-- before any table is made.
local function check_keys(schema, keys)
  if not keys or #keys == 0 then
    error("update mode upserts on the output's key columns: this query has no aggregation, so give option " ..
      "'keys' (the columns of the table's primary key or a unique index)", 0)
  end
  local have = {}
  for _, f in ipairs(schema:fields()) do have[f[1]] = true end
  for _, n in ipairs(keys) do
    if not have[n] then error(format("option 'keys': '%s' is not a column of the output", n), 0) end
  end
end

-- A writer of one table: the statements of each mode, made once. The rows
-- go with COPY in its binary format when every column's PostgreSQL type
-- has a binary form (the server then parses nothing), else in text.
local function writer(c, o, schema, keys, mode)
  local tsql = table_sql(o.table)
  if mode == "update" then check_keys(schema, keys) end
  local forms = binary_forms(schema, prepare_table(c, o, tsql, schema, keys))
  local cols = column_list(schema)
  local with = forms and " (FORMAT binary)" or ""
  local w = { copy = format("COPY %s (%s) FROM STDIN%s", tsql, cols, with), forms = forms }
  if mode == "update" then
    local iskey, k, sets = {}, {}, {}
    for i, n in ipairs(keys) do
      iskey[n], k[i] = true, ident(n)
    end
    for _, f in ipairs(schema:fields()) do
      if not iskey[f[1]] then sets[#sets + 1] = format("%s = EXCLUDED.%s", ident(f[1]), ident(f[1])) end
    end
    -- the batch goes to a temporary table first (COPY), then in one
    -- INSERT ... ON CONFLICT; the temporary table (the target's column
    -- types, so the same COPY format) lives as long as the connection and
    -- is emptied by each commit
    w.stage = "tide_stage"
    w.create_stage = format("CREATE TEMP TABLE IF NOT EXISTS tide_stage (LIKE %s INCLUDING DEFAULTS) " ..
      "ON COMMIT DELETE ROWS", tsql)
    w.copy = format("COPY tide_stage (%s) FROM STDIN%s", cols, with)
    w.upsert = format("INSERT INTO %s (%s) SELECT %s FROM tide_stage ON CONFLICT (%s) DO %s", tsql, cols, cols,
      concat(k, ", "), #sets > 0 and ("UPDATE SET " .. concat(sets, ", ")) or "NOTHING")
  elseif mode == "complete" then
    w.clear = format("DELETE FROM %s", tsql)
  end
  -- the rows of a batch, in the open transaction
  function w.write(conn, batches)
    if w.clear then conn:exec(w.clear) end
    if w.stage then conn:exec(w.create_stage) end
    conn:copy(w.copy, batches, w.forms)
    if w.upsert then conn:exec(w.upsert) end
  end
  return w
end

local function nrows(batches)
  local n = 0
  for _, b in ipairs(batches) do n = n + b:nrows() end
  return n
end

M.sinks.postgres = {
  options = SINK_OPTIONS,
  new = function(o, ctx)
    if not o.conninfo then error("the postgres sink needs option 'conninfo' (a libpq connection string)", 0) end
    if not o.table then error("the postgres sink needs option 'table' (schema.table or table)", 0) end
    local what = format("postgres table %s", o.table)
    local keys = o.keys or ctx.keys
    local c = connect(o, what)
    local w, psql
    local ok, err = pcall(function()
      psql = table_sql(o.progress_table)
      c:exec(format("CREATE TABLE IF NOT EXISTS %s (query_id text NOT NULL, sink text NOT NULL, " ..
        "batch_id bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (query_id, sink))",
        psql))
      if ctx.schema then w = writer(c, o, ctx.schema, keys, ctx.mode) end
    end)
    if not ok then
      c:close()
      error(type(err) == "table" and (what .. ": connection lost: " .. err.lost) or err, 0)
    end
    -- The transaction's statements go in two round trips besides the rows
    -- (BEGIN with the progress check, the progress row with COMMIT: one
    -- simple query each, so the values are literals), not four: a one-row
    -- micro-batch took 0.5 ms instead of 1.1 (bench/RESULTS.md).
    local key = format("query_id = %s AND sink = %s", literal(ctx.query_id), literal(o.table))
    local begin_get = format("BEGIN; SELECT batch_id FROM %s WHERE %s FOR UPDATE", psql, key)
    local set_head = format("INSERT INTO %s (query_id, sink, batch_id) VALUES (%s, %s, ", psql, literal(ctx.query_id),
      literal(o.table))
    local set_tail = ") ON CONFLICT (query_id, sink) DO UPDATE SET batch_id = EXCLUDED.batch_id, " ..
      "updated_at = now(); COMMIT"
    local sink = { description = format("PostgresSink[%s]", o.table) }
    function sink.add_batch(_, id, batches, mode, schema)
      if not w then w = c:run(function() return writer(c, o, schema, keys, mode) end) end
      if mode ~= "complete" and nrows(batches) == 0 then return end
      c:run(function(conn)
        local r = conn:exec(begin_get)
        if r[1] and math.tointeger(tonumber(r[1][1])) >= id then
          conn:exec("ROLLBACK") -- committed before a crash: the engine runs it again, the table has it
          return
        end
        w.write(conn, batches)
        conn:exec(set_head .. format("%d", id) .. set_tail)
      end)
    end
    function sink.stop() c:close() end
    return sink
  end,
}

--- f:write("postgres", opts): the rows of a static frame into a table, in
-- one transaction; `mode` append (default), update (upsert on `keys`) or
-- complete (the table's rows replaced).
function M.sinks.postgres.write(f, opts, level)
  level = (level or 1) + 1
  local spec = { mode = { type = "string", values = { "append", "update", "complete" }, default = "append" } }
  for k, v in pairs(SINK_OPTIONS) do if k ~= "progress_table" then spec[k] = v end end
  local ok, o = pcall(util.check_options, opts, spec, "write(postgres)", 1)
  if not ok then error(util.strip_position(o), level) end
  for _, n in ipairs({ "conninfo", "table" }) do
    if not o[n] then error(format("write(postgres): option '%s' is required", n), level) end
  end
  local schema = core.schema(f:schema())
  local what = format("postgres table %s", o.table)
  local c = connect(o, what)
  local rows = 0
  local okw, err = pcall(function()
    local w = c:run(function() return writer(c, o, schema, o.keys, o.mode) end)
    local batches = {}
    for b in f:batches() do batches[#batches + 1] = b end
    rows = nrows(batches)
    c:run(function(conn)
      conn:exec("BEGIN")
      w.write(conn, batches)
      conn:exec("COMMIT")
    end)
  end)
  c:close()
  if not okw then error("write(postgres): " .. tostring(err), level) end
  return rows
end

-- ------------------------------------------------------------------------
-- The source: tide.read("postgres", { conninfo, query, refresh })
-- ------------------------------------------------------------------------

local READ_OPTIONS = {
  conninfo = "string",
  query = "string",
  refresh = "duration",
  retries = { type = "integer", min = 0, default = 10 },
  retry_delay = { type = "duration", default = 500 },
}

--- A static frame over a query's result, typed from its columns (int2/4/8
-- -> int, float/numeric -> double, bool, timestamp/timestamptz/date ->
-- timestamp, json/jsonb -> json, anything else its text). The query runs
-- again each time the frame runs (each micro-batch of a stream-static
-- join), or at most once per `refresh`.
function M.read(opts, level)
  level = (level or 1) + 1
  local ok, o = pcall(util.check_options, opts, READ_OPTIONS, "tide.read(postgres)", 1)
  if not ok then error(util.strip_position(o), level) end
  for _, n in ipairs({ "conninfo", "query" }) do
    if not o[n] then error(format("tide.read(postgres): option '%s' is required", n), level) end
  end
  local what = "tide.read(postgres)"
  local c
  local okc, first = pcall(function()
    c = connect(o, what)
    return c:run(function(conn) return conn:query_batch(o.query) end)
  end)
  if not okc then
    if c then c:close() end
    error(type(first) == "table" and (what .. ": connection lost: " .. first.lost) or first, level)
  end
  local schema = core.schema(first:schema())
  local ddl = schema:ddl()
  local cached, at = first, core.clock_ms()
  local function fetch()
    if cached and o.refresh and core.clock_ms() - at < o.refresh then return cached end
    if not c.pg then c = connect(o, what) end
    local b = c:run(function(conn) return conn:query_batch(o.query) end)
    local now = core.schema(b:schema()):ddl()
    if now ~= ddl then
      b:close()
      error(format("%s: the query's columns changed: were (%s), now (%s)", what, ddl, now), 0)
    end
    if cached then cached:close() end
    cached, at = b, core.clock_ms()
    return b
  end
  cached = o.refresh and first or nil
  if not o.refresh then first:close() end
  local label = format("PostgresRead [%s]", o.query:gsub("%s+", " "):sub(1, 60))
  return connector.from_batches(label, schema, function()
    local b = fetch()
    -- a copy: the consumer closes what it gets, the cache stays
    return util.once(o.refresh and core.slice(b, 0, b:nrows()) or b)
  end, true)
end

return M
