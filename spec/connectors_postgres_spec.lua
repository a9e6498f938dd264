-- The postgres connector (connectors/postgres.lua, core/pg.c) against a
-- real, throwaway PostgreSQL 15 server started here (spec/pg_server.lua:
-- initdb and pg_ctl in a temporary directory, unix socket only) and
-- stopped at the end: the sink's three modes with create_table and the
-- column check, exactly-once under 30 SIGKILLs, a server restarted
-- mid-run, the server's refusals, tide.read("postgres") in a stream-static
-- join, f:write.
local tide = require "tide"
local core = require "tide.core"
local support = require "support"
local pg_server = require "pg_server"
local postgres = require "tide.connectors.postgres"

local tmpname, write_file, sleep_ms = support.tmpname, support.write_file, support.sleep_ms

local server, pg

local function sql(text, params)
  local rows, msg = pg:exec(text, params)
  assert(rows, msg)
  return rows
end

-- The table's rows as sorted "a|b|c" lines (NULL as \N).
local function lines(text)
  local out = {}
  local rows, names = pg:exec(text)
  assert(rows, names)
  for _, r in ipairs(rows) do
    local n = #names
    local parts = {}
    for i = 1, n do parts[i] = r[i] or "\\N" end
    out[#out + 1] = table.concat(parts, "|")
  end
  table.sort(out)
  return out
end

local function start_query(f, opts)
  opts.conninfo = server.conninfo
  return f:write_stream("postgres", opts)
end

lazy_setup(function()
  server = pg_server.start()
  pg = assert(core.pg_connect(server.conninfo))
end)

lazy_teardown(function()
  if pg then pg:close() end
  if server then server:stop() end
end)

describe("the postgres sink", function()
  it("appends with COPY into a table it creates, types mapped (timestamp -> timestamptz, json -> jsonb)", function()
    local ms = tide.memory_stream("id int, name string?, at timestamp, doc json, x double, ok bool")
    local q = start_query(ms:frame(), { table = "public.events", create_table = true, mode = "append" })
    ms:add { { id = 1, name = "tab\there", at = 1700000000123, doc = { k = "a\\b" }, x = 0.5, ok = true },
      { id = 2, at = 0, doc = { 1, 2 }, x = -1.25, ok = false } }
    q:process_all_available()
    ms:add { { id = 3, name = "line\nbreak", at = 86400000, doc = "s", x = 1e300, ok = true } }
    q:process_all_available()
    q:stop()
    assert.same({
      "1|tab\there|2023-11-14 22:13:20.123+00|{\"k\": \"a\\\\b\"}|0.5|t",
      "2|\\N|1970-01-01 00:00:00+00|[1, 2]|-1.25|f",
      "3|line\nbreak|1970-01-02 00:00:00+00|\"s\"|1e+300|t",
    }, lines("SELECT * FROM public.events"))
    assert.same({ { "id", "bigint", "t" }, { "name", "text", "f" }, { "at", "timestamp with time zone", "t" },
      { "doc", "jsonb", "t" }, { "x", "double precision", "t" }, { "ok", "boolean", "t" } },
      sql("SELECT attname, format_type(atttypid, atttypmod), CASE WHEN attnotnull THEN 't' ELSE 'f' END " ..
        "FROM pg_attribute WHERE attrelid = 'public.events'::regclass AND attnum > 0 ORDER BY attnum"))
    -- one progress row for the query and table, at the last batch
    assert.same({ { "public.events", "1" } },
      sql("SELECT sink, batch_id FROM tide_progress WHERE sink = 'public.events'"))
  end)

  it("skips a batch id it has committed, and any below it, in append mode (exactly-once on re-runs)", function()
    local schema = assert(core.schema("id int"))
    local sink = postgres.sinks.postgres.new({ conninfo = server.conninfo, table = "public.once", create_table = true,
      progress_table = "tide_progress", retries = 0, retry_delay = 0 },
      { query_id = "spec-once", mode = "append", schema = schema })
    local function batch(ids)
      local rows = {}
      for i, id in ipairs(ids) do rows[i] = { id = id } end
      return { assert(core.rows_batch(schema, rows)) }
    end
    sink:add_batch(0, batch { 1, 2 }, "append", schema)
    sink:add_batch(1, batch { 3 }, "append", schema)
    sink:add_batch(1, batch { 3 }, "append", schema) -- batch 1 again (a restart after PostgreSQL's commit)
    sink:add_batch(0, batch { 1, 2 }, "append", schema) -- an older one
    sink.stop()
    assert.same({ "1", "2", "3" }, lines("SELECT id FROM public.once ORDER BY id"))
  end)

  it("keeps the progress row of a table named with quotes and backslashes (literals escaped)", function()
    local schema = assert(core.schema("id int"))
    local name = [[it's a\table]]
    local sink = postgres.sinks.postgres.new({ conninfo = server.conninfo, table = name, create_table = true,
      progress_table = "tide_progress", retries = 0, retry_delay = 0 },
      { query_id = [[q'\id]], mode = "append", schema = schema })
    local b = { assert(core.rows_batch(schema, { { id = 7 } })) }
    sink:add_batch(4, b, "append", schema)
    sink:add_batch(4, b, "append", schema) -- skipped: its progress row is found
    sink.stop()
    assert.same({ "7" }, lines([[SELECT id FROM "it's a\table"]]))
    assert.same({ { [[q'\id]], "4" } }, sql("SELECT query_id, batch_id FROM tide_progress WHERE sink = $1", { name }))
  end)

  it("upserts in update mode on the aggregation's keys, the primary key of the table it creates", function()
    local ms = tide.memory_stream("ts timestamp, word string")
    local f = ms:frame():group_by(tide.window("ts", "10 seconds"), "word"):agg { "count(*) AS n" }
    local q = start_query(f, { table = "counts", create_table = true, mode = "update" })
    ms:add { { ts = 1000, word = "a" }, { ts = 2000, word = "b" }, { ts = 12000, word = "a" } }
    q:process_all_available()
    ms:add { { ts = 3000, word = "a" }, { ts = 4000, word = "a" } }
    q:process_all_available()
    q:stop()
    assert.same({ "1970-01-01 00:00:00+00|1970-01-01 00:00:10+00|a|3",
      "1970-01-01 00:00:00+00|1970-01-01 00:00:10+00|b|1",
      "1970-01-01 00:00:10+00|1970-01-01 00:00:20+00|a|1" },
      lines("SELECT * FROM counts"))
    assert.same({ { "window_start" }, { "word" } }, sql("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON " ..
      "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) " ..
      "WHERE i.indrelid = 'counts'::regclass AND i.indisprimary " ..
      "ORDER BY a.attnum"))
  end)

  it("replaces the table's rows in complete mode, in one transaction", function()
    sql("CREATE TABLE totals (word text PRIMARY KEY, n bigint NOT NULL)")
    sql("INSERT INTO totals VALUES ('stale', 99)")
    local ms = tide.memory_stream("word string")
    local q = start_query(ms:frame():group_by("word"):agg { "count(*) AS n" }, { table = "totals", mode = "complete" })
    ms:add { { word = "a" }, { word = "b" } }
    q:process_all_available()
    assert.same({ "a|1", "b|1" }, lines("SELECT * FROM totals"))
    ms:add { { word = "a" } }
    q:process_all_available()
    q:stop()
    assert.same({ "a|2", "b|1" }, lines("SELECT * FROM totals"))
  end)

  it("checks an existing table's columns at start and names the mismatch", function()
    sql("CREATE TABLE typed (word text, n text)")
    local ms = tide.memory_stream("word string")
    local ok, err = pcall(start_query, ms:frame():group_by("word"):agg { "count(*) AS n" },
      { table = "typed", mode = "update" })
    assert.is_false(ok)
    assert.matches("table typed: column 'n' is text, but the query's n is int %(for int: bigint, integer, numeric, " ..
      "smallint%)", err)
    ok, err = pcall(start_query, ms:frame(), { table = "nosuch", mode = "append" })
    assert.is_false(ok)
    assert.matches("table nosuch does not exist %(create it, or give create_table = true%)", err)
  end)

  it("fails the batch with the server's message and the batch id on a constraint violation", function()
    sql("CREATE TABLE small (v bigint CHECK (v < 10))")
    local ms = tide.memory_stream("v int")
    local q = start_query(ms:frame(), { table = "small", mode = "append" })
    ms:add { { v = 1 } }
    q:process_all_available()
    ms:add { { v = 2 }, { v = 50 } }
    local ok, err = pcall(q.process_all_available, q)
    assert.is_false(ok)
    assert.matches("batch 1: sink PostgresSink%[small%]: postgres table small: postgres: new row for relation " ..
      "\"small\" violates check constraint \"small_v_check\" %(SQLSTATE 23514%)", tostring(err))
    pcall(q.stop, q)
    -- nothing of the failed batch is in the table
    assert.same({ "1" }, lines("SELECT * FROM small"))
  end)

  it("reconnects to a server restarted mid-run and loses nothing", function()
    local ms = tide.memory_stream("v int")
    local q = start_query(ms:frame(), { table = "restarted", create_table = true, mode = "append",
      retry_delay = "100 ms" })
    ms:add { { v = 1 } }
    q:process_all_available()
    server:restart()
    assert(pg:reset(20, 100))
    ms:add { { v = 2 } }
    q:process_all_available()
    q:stop()
    assert.same({ "1", "2" }, lines("SELECT * FROM restarted"))
  end)

  it("gives up on a lost server after its retries, failing the query", function()
    local ms = tide.memory_stream("v int")
    local q = start_query(ms:frame(), { table = "gone", create_table = true, mode = "append",
      retries = 2, retry_delay = "50 ms" })
    ms:add { { v = 1 } }
    q:process_all_available()
    server:ctl("stop -m fast")
    ms:add { { v = 2 } }
    local ok, err = pcall(q.process_all_available, q)
    server:ctl("start")
    pg:reset(20, 100)
    assert.is_false(ok)
    assert.matches("batch 1: sink PostgresSink%[gone%]: postgres table gone: connection lost", tostring(err))
    pcall(q.stop, q)
    assert.same({ "1" }, lines("SELECT * FROM gone"))
  end)
end)

-- The server's log (log_statement = 'all' for the role while fn runs):
-- what a spec sent, as the server saw it.
local function logged(fn)
  local log = server.dir .. "/log"
  local before = support.file_size(log) or 0
  sql("ALTER ROLE tide SET log_statement = 'all'")
  local ok, err = pcall(fn)
  sql("ALTER ROLE tide RESET log_statement")
  assert(ok, err)
  local fh = assert(io.open(log, "rb"))
  fh:seek("set", before)
  local text = fh:read("a")
  fh:close()
  return text
end

-- A double exactly: %q gives its hex digits (and 0/0, 1e9999, -0x0p+0).
local function exact(v) return type(v) == "number" and string.format("%q", v) or v end

describe("the postgres sink's COPY", function()
  it("sends every column type in COPY's binary format and reads back each value exactly, NULLs included", function()
    sql("CREATE TABLE rt (n bigint, i bigint, d double precision, b boolean, s text, v varchar(20), c char(3), " ..
      "t timestamptz, tl timestamp, j jsonb, jt json)")
    local ddl = "n int, i int?, d double?, b bool?, s string?, v string?, c string?, t timestamp?, tl timestamp?, " ..
      "j json?, jt json?"
    local rows = {
      { n = 1, i = math.maxinteger, d = 0.1, b = true, s = "tab\there\nnew\\line\r", v = "ünïcödé €", c = "abc",
        t = 1700000000123, tl = -1, j = { k = "a\\b\"q", n = { 1, 2.5, false } }, jt = { x = 1 } },
      { n = 2 },
      { n = 3, i = math.mininteger, d = -0.0, b = false, s = "", v = "", c = "xyz", t = 253402300799999,
        tl = -62135596800000, j = "s", jt = {} },
      { n = 4, i = 0, d = 5e-324, t = 0, tl = 946684800000, j = 1.5 },
      { n = 5, i = -1, d = 1 / 3, t = 946684799999, j = { "x\ty" } },
      { n = 6, d = 1.7976931348623157e308 },
      { n = 7, d = 0 / 0 },
      { n = 8, d = math.huge },
      { n = 9, d = -math.huge },
    }
    local ms = tide.memory_stream(ddl)
    local log = logged(function()
      local q = start_query(ms:frame(), { table = "rt", mode = "append" })
      ms:add(rows)
      q:process_all_available()
      q:stop()
    end)
    assert.matches('COPY "rt" %("n", "i", "d", "b", "s", "v", "c", "t", "tl", "j", "jt"%) FROM STDIN %(FORMAT binary%)',
      log)
    local got = tide.read("postgres", { conninfo = server.conninfo, query = "SELECT * FROM rt ORDER BY n" }):collect()
    assert.equal(#rows, #got)
    for k, want in ipairs(rows) do
      for _, name in ipairs { "n", "i", "d", "b", "s", "v", "c", "t", "tl", "j", "jt" } do
        assert.same(exact(want[name]), exact(got[k][name]), string.format("row %d, column %s", k, name))
      end
    end
    -- NULLs are SQL NULLs, not empty values
    assert.same({ { "10" } }, sql("SELECT count(*) FROM rt, LATERAL (VALUES (i), (d), (b::int), (length(s)), " ..
      "(length(v)), (length(c)), (extract(epoch FROM t)), (extract(epoch FROM tl)), (length(j::text)), " ..
      "(length(jt::text))) AS x(a) WHERE n = 2 AND a IS NULL"))
  end)

  it("takes COPY's text format for an integer or numeric column, doubles in their shortest digits", function()
    sql("CREATE TABLE narrow (n integer, x numeric, d double precision, t timestamptz, s text)")
    local ms = tide.memory_stream("n int, x double, d double, t timestamp, s string?")
    local log = logged(function()
      local q = start_query(ms:frame(), { table = "narrow", mode = "append" })
      ms:add { { n = 1, x = 0.1, d = 0.1, t = 1700000000123, s = "a\tb\\c" },
        { n = 2, x = 1 / 3, d = -0.0, t = -1 },
        { n = 3, x = 1e21, d = 5e-324, t = 0, s = "\\N" },
        { n = 4, x = 3.0, d = 2.5, t = 1700000000500 } }
      q:process_all_available()
      q:stop()
    end)
    assert.matches('COPY "narrow" %("n", "x", "d", "t", "s"%) FROM STDIN\n', log)
    -- numeric keeps the digits it is given: the shortest that read back as the double
    assert.same({ "1|0.1|0.1|2023-11-14 22:13:20.123+00|a\tb\\c",
      "2|0.3333333333333333|-0|1969-12-31 23:59:59.999+00|\\N",
      "3|1000000000000000000000|5e-324|1970-01-01 00:00:00+00|\\N",
      "4|3|2.5|2023-11-14 22:13:20.5+00|\\N" },
      lines("SELECT n, x, d, t, coalesce(s, '\\N') FROM narrow"))
  end)

  it("refuses a binary form that does not fit a column's type, before sending anything", function()
    local b = assert(core.rows_batch(assert(core.schema("s string")), { { s = "x" } }))
    local ok, msg, ename = pg:copy("COPY nosuch FROM STDIN (FORMAT binary)", { b }, { "int8" })
    assert.same({ nil, "postgres: column 's' (string) has no binary form int8", "EINVAL" }, { ok, msg, ename })
    local okc, err = pcall(pg.copy, pg, "COPY nosuch FROM STDIN (FORMAT binary)", { b }, { "int4" })
    assert.is_false(okc)
    assert.matches("copy: binary form 1: expected int8, float8, bool, timestamp, text or jsonb, got int4", err)
    okc, err = pcall(pg.copy, pg, "COPY nosuch FROM STDIN (FORMAT binary)", { b }, { "text", "text" })
    assert.is_false(okc)
    assert.matches("copy: batch 1 has 1 columns, but 2 binary forms are given", err)
    b:close()
  end)

  it("checks update mode's keys against the output before it creates the table", function()
    local schema = assert(core.schema("k string, v int"))
    local function new(keys)
      return pcall(postgres.sinks.postgres.new, { conninfo = server.conninfo, table = "keyed", create_table = true,
        progress_table = "tide_progress", retries = 0, retry_delay = 0 },
        { query_id = "spec-keys", mode = "update", schema = schema, keys = keys })
    end
    local ok, err = new { "k", "nosuch" }
    assert.is_false(ok)
    assert.equal("option 'keys': 'nosuch' is not a column of the output", err)
    ok, err = new(nil)
    assert.is_false(ok)
    assert.matches("^update mode upserts on the output's key columns", err)
    assert.same({ {} }, sql("SELECT to_regclass('keyed')::text"))
  end)

  it("spends one budget of `retries` reconnect attempts per batch, not `retries` per loss", function()
    sql("CREATE DATABASE retrydb")
    local conninfo = "host=" .. server.sock .. " dbname=retrydb user=tide"
    local schema = assert(core.schema("v int"))
    local sink = postgres.sinks.postgres.new({ conninfo = conninfo, table = "r", create_table = true,
      progress_table = "tide_progress", retries = 3, retry_delay = 0 },
      { query_id = "spec-retry", mode = "append", schema = schema })
    local function batch(v) return { assert(core.rows_batch(schema, { { v = v } })) } end
    sink:add_batch(0, batch(1), "append", schema)
    -- the connection is cut, and every new one refused (each refusal is a
    -- FATAL line in the server's log: one per attempt)
    local refused = 'database "retrydb" is not currently accepting connections'
    local function refusals()
      local n = 0
      for _ in support.read_file(server.dir .. "/log"):gmatch(refused) do n = n + 1 end
      return n
    end
    local before = refusals()
    sql("ALTER DATABASE retrydb ALLOW_CONNECTIONS false")
    sql("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE datname = 'retrydb'")
    local ok, err = pcall(sink.add_batch, sink, 1, batch(2), "append", schema)
    sql("ALTER DATABASE retrydb ALLOW_CONNECTIONS true")
    sink.stop()
    assert.is_false(ok)
    assert.matches("^postgres table r: connection lost %(.*%), then postgres: cannot reconnect after 3 " ..
      "attempts 0 ms apart: .*" .. refused, err)
    assert.equal(3, refusals() - before)
    sql("DROP DATABASE retrydb")
  end)
end)

describe("core.pg_connect's exec", function()
  it("takes up to 256 parameters (more than the Lua stack's 20 free slots)", function()
    local cols, params = {}, {}
    for i = 1, 256 do cols[i], params[i] = "$" .. i .. "::int", i end
    local rows = sql("SELECT " .. table.concat(cols, ", "), params)
    assert.equal("1", rows[1][1])
    assert.equal("256", rows[1][256])
    params[257] = 257
    local ok, err = pcall(pg.exec, pg, "SELECT 1", params)
    assert.is_false(ok)
    assert.matches("exec: expected at most 256 parameters, got 257", err)
  end)
end)

describe("tide.read(\"postgres\")", function()
  it("types a query's result from its column types", function()
    local f = tide.read("postgres", { conninfo = server.conninfo, query =
      "SELECT 1::int2 AS a, 2::int8 AS b, 1.5::numeric AS c, 2.5::float4 AS d, true AS e, " ..
      "'2026-11-21 12:00:05.25+00'::timestamptz AS f, '2026-11-21'::date AS g, '{\"k\":1}'::jsonb AS h, " ..
      "'x'::varchar AS i, NULL::text AS j, '10.0.0.1'::inet AS k" })
    assert.equal("a int?, b int?, c double?, d double?, e bool?, f timestamp?, g timestamp?, h json?, i string?, " ..
      "j string?, k string?", core.schema(f:schema()):ddl())
    local r = f:collect()[1]
    assert.same({ a = 1, b = 2, c = 1.5, d = 2.5, e = true, f = core.ts_parse("2026-11-21T12:00:05.250Z"),
      g = core.ts_parse("2026-11-21"), h = { k = 1 }, i = "x", k = "10.0.0.1" }, r)
  end)

  it("joins a stream with a table re-read each batch, and with refresh at most once per period", function()
    sql("CREATE TABLE names (id bigint PRIMARY KEY, name text)")
    sql("INSERT INTO names VALUES (1, 'one'), (2, 'two')")
    local names = tide.read("postgres", { conninfo = server.conninfo, query = "SELECT id, name FROM names" })
    local cached = tide.read("postgres", { conninfo = server.conninfo, query = "SELECT id, name AS cname FROM names",
      refresh = "1 hour" })
    local ms = tide.memory_stream("id int")
    local got = {}
    local q = ms:frame():join(names, "id"):join(cached, "id"):write_stream(function(id, rows)
      for _, r in ipairs(rows) do got[#got + 1] = string.format("%d %d %s %s", id, r.id, r.name, r.cname) end
    end)
    ms:add { { id = 1 }, { id = 2 } }
    q:process_all_available()
    sql("UPDATE names SET name = 'uno' WHERE id = 1")
    ms:add { { id = 1 } }
    q:process_all_available()
    q:stop()
    table.sort(got)
    assert.same({ "0 1 one one", "0 2 two two", "1 1 uno one" }, got)
  end)

  it("says what is wrong with a bad query", function()
    local ok, err = pcall(tide.read, "postgres", { conninfo = server.conninfo, query = "SELECT nosuch FROM nowhere" })
    assert.is_false(ok)
    assert.matches("tide.read%(postgres%): postgres: relation \"nowhere\" does not exist %(SQLSTATE 42P01%)", err)
    ok, err = pcall(tide.read, "postgres", { query = "SELECT 1" })
    assert.is_false(ok)
    assert.matches("tide.read%(postgres%): option 'conninfo' is required", err)
  end)
end)

describe("f:write(\"postgres\")", function()
  it("writes a static frame in append, update and complete mode", function()
    local opts = { conninfo = server.conninfo, table = "static", create_table = true, keys = { "k" } }
    local two = tide.from_rows({ { k = "a", v = 1 }, { k = "b", v = 2 } }, "k string, v int")
    assert.equal(2, two:write("postgres", opts))
    assert.same({ "a|1", "b|2" }, lines("SELECT * FROM static"))
    opts.mode = "update"
    tide.from_rows({ { k = "a", v = 10 }, { k = "c", v = 3 } }, "k string, v int"):write("postgres", opts)
    assert.same({ "a|10", "b|2", "c|3" }, lines("SELECT * FROM static"))
    opts.mode = "complete"
    tide.from_rows({ { k = "z", v = 0 } }, "k string, v int"):write("postgres", opts)
    assert.same({ "z|0" }, lines("SELECT * FROM static"))
    local ok, err = pcall(function() return tide.from_rows({ { k = "z", v = 0 } }):write("foreach_batch") end)
    assert.is_false(ok)
    assert.matches("write: the foreach_batch sink takes streams only %(write_stream%); static frames go to: " ..
      "console, file, foreach, memory, postgres, topic", err)
  end)
end)

-- Exactly-once: a windowed update-mode aggregation into PostgreSQL, killed
-- with SIGKILL 30 times at random moments and restarted on its checkpoint;
-- the table then equals that of an uninterrupted run of the same query.
local KILLS = 30
-- Each file is one batch; the killed run spends SPIN_MS of CPU on each, so
-- that its whole work (FILES * SPIN_MS) outlasts 30 runs killed after at
-- most 200 ms each, on any machine: it cannot finish before the last kill.
local FILES, PER_FILE, SPIN_MS = 400, 25, 16

local CHILD = support.CHILD_PRELUDE .. [[
local src, ck, sock, tbl, done, spin_ms = arg[1], arg[2], arg[3], arg[4], arg[5], tonumber(arg[6])
local conninfo = "host=" .. sock .. " dbname=postgres user=tide"
local function spin(r)
  if spin_ms > 0 and r.id % 25 == 0 then
    local t = os.clock() + spin_ms / 1000
    while os.clock() < t do end
  end
  return true
end
local q = tide.read_stream("file", { path = src .. "/*.jsonl", format = "json", schema = "id int, v int",
    max_files_per_trigger = 1 })
  :with_column("ts", "CAST(id * 100 AS timestamp)"):with_column("k", "v % 3"):filter(spin)
  :group_by(tide.window("ts", "5 seconds"), "k"):agg { "count(*) AS n", "sum(v) AS s" }
  :write_stream("postgres", { conninfo = conninfo, table = tbl, create_table = true, mode = "update",
    checkpoint = ck, trigger = "available_now" })
q:await()
local fh = assert(io.open(done, "w"))
fh:write("done\n")
fh:close()
]]

local spawn = support.spawn_lua

describe("a windowed update-mode query into PostgreSQL", function()
  it("killed with SIGKILL 30 times leaves the table an uninterrupted run leaves", function()
    local dir = tmpname()
    support.id_files(dir .. "/in", FILES, PER_FILE)
    local script, errf, done = dir .. "/child.lua", dir .. "/err", dir .. "/done"
    write_file(script, CHILD)
    local conninfo = server.sock
    -- the uninterrupted run
    local t0 = core.clock_ms()
    local p = spawn(script, { dir .. "/in", dir .. "/ck0", conninfo, "whole", done, 0 }, errf)
    p:read("a")
    p:close()
    assert.equal("", support.read_file(errf))
    local t1 = core.clock_ms()
    -- each killed run gets at most about 1.5x its share of the whole run's
    -- time before the kill, so the kills fit however fast the machine is
    local hi = math.max(80, math.min(200, math.floor(1.5 * (t1 - t0) / KILLS)))
    -- the killed one
    local kills, runs, mid, ahead = 0, 0, 0, 0
    while true do
      os.remove(done)
      local pk, pid = spawn(script, { dir .. "/in", dir .. "/ck1", conninfo, "killed", done, SPIN_MS }, errf)
      runs = runs + 1
      if kills >= KILLS then
        pk:read("a")
        pk:close()
        break
      end
      sleep_ms(math.random(60, hi))
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      pk:read("a")
      pk:close()
      local err = support.read_file(errf)
      assert(err == "", "the child failed on its own: " .. err)
      assert(not support.exists(done), string.format("the child finished after %d kills: the workload is too small",
        kills))
      kills = kills + 1
      -- where the kill landed: between the offset log and the checkpoint's
      -- commit (mid), and of those after PostgreSQL's commit (ahead: the
      -- re-run batch is the one the progress row skips)
      local c = core.checkpoint(dir .. "/ck1", { read_only = true })
      if c then
        local off, com = c:latest()
        c:close()
        if off ~= nil and off ~= com then
          mid = mid + 1
          local r = sql("SELECT batch_id FROM tide_progress WHERE sink = 'killed'")[1]
          if r and tonumber(r[1]) == off then ahead = ahead + 1 end
        end
      end
    end
    assert.equal("", support.read_file(errf))
    assert.is_true(support.exists(done), "the last run finished")
    assert.is_true(mid > 0, "no kill landed between the offset log and the commit")
    -- the windows computed here
    local count, sum = {}, {}
    for i = 1, FILES * PER_FILE do
      local v = (i * 7919) % 1000
      local key = string.format("%d|%d", (i * 100) // 5000 * 5000, v % 3)
      count[key], sum[key] = (count[key] or 0) + 1, (sum[key] or 0) + v
    end
    local want = {}
    for key, n in pairs(count) do want[#want + 1] = string.format("%s|%d|%d", key, n, sum[key]) end
    table.sort(want)
    assert.same(want, lines("SELECT (extract(epoch FROM window_start) * 1000)::bigint, k, n, s FROM whole"))
    local whole = lines("SELECT * FROM whole")
    assert.same(whole, lines("SELECT * FROM killed"))
    -- the progress row is at the last batch of both
    local prog = sql("SELECT sink, batch_id FROM tide_progress WHERE sink IN ('whole', 'killed') ORDER BY sink")
    assert.same({ { "killed", tostring(FILES - 1) }, { "whole", tostring(FILES - 1) } }, prog)
    io.stderr:write(string.format("\n[connectors_postgres_spec] uninterrupted run %d s; " ..
      "%d kills (%d between offset log and " ..
      "commit, %d of them after PostgreSQL's commit), %d runs, %d s; %d rows\n",
      (t1 - t0) // 1000, kills, mid, ahead, runs, (core.clock_ms() - t1) // 1000, #whole))
    os.execute("rm -rf '" .. dir .. "'")
  end)
end)
