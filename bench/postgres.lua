-- bench/postgres.lua: the postgres sink against `psql \copy` of the same
-- rows into the same server in the same run (issue 17's target: append at
-- >= 0.8x psql's rows/s), and the upsert rate of update mode.
--
--    make bench-postgres [BENCH_POSTGRES_ARGS="--events 1000000 --rounds 5"]
--
-- A throwaway PostgreSQL 15 server (spec/pg_server.lua: unix socket,
-- fsync off) takes the rows. The standard events (../shared/bench's
-- gen_events) are decoded once into batches, not timed. Each round:
--
--   tide append   the sink's add_batch(id, batches, "append") into an empty
--                 table: COPY in its binary format encoded in C from the
--                 batches (every column has a binary form), plus the
--                 progress row, one transaction (what a micro-batch costs)
--   COPY binary   the same COPY alone (core's pg:copy, autocommit, no
--                 progress row): what the transaction and progress row add
--   COPY text     the same rows in COPY's text format (what the sink sends
--                 when a column has no binary form, e.g. integer): what
--                 the server's parsing of text costs
--   psql \copy    `psql -c "\copy events FROM file"` into the emptied table,
--                 the file being the rows tide wrote (`\copy events TO`,
--                 once, not timed), so both send the same rows
--   upsert new    update mode (INSERT ... ON CONFLICT DO UPDATE through a
--                 temporary table) of a windowed aggregation's output
--                 (device, 1-second windows) into an empty table
--   upsert again  the same rows again: every one hits its key
--
-- Times are wall-clock around each step (the monotonic clock); the
-- figures are medians over the rounds; ratio = tide append rows/s over
-- psql's, of the medians and the median of each round's own ratio. Each
-- round checks the table's row count. Exit 1 when a check fails, 2 on a
-- setup error.

package.path = "./?.lua;./lua/?.lua;./lua/?/init.lua;./spec/?.lua;" .. package.path
package.cpath = "./lua/?.so;" .. package.cpath

local C = require "bench.common"
local B = C.new("bench-postgres")
local format = string.format

local usage = [[
usage: lua5.4 bench/postgres.lua [--events N] [--rounds R]
  --events N   events of the standard workload (default 1000000)
  --rounds R   rounds; figures are medians (default 5)
(from the repository's root)]]
local opts = B.args(arg, { events = 1000000, rounds = 5 }, usage)
B.check_root("bench-postgres")
local N, ROUNDS = opts.events, opts.rounds
local EVENTS = B.events(N)

local tide = require "tide"
local core = require "tide.core"
local postgres = require "tide.connectors.postgres"
local pg_server = require "pg_server"
local clock = core.clock_ms

local SCHEMA = "ts timestamp, device string, signal int, kind string"

io.write(format("decoding %d events into batches (not timed) ...\n", N))
io.flush()
local schema = assert(core.schema(SCHEMA))
local batches = {}
for b in tide.read("file", { path = EVENTS, schema = SCHEMA }):batches() do batches[#batches + 1] = b end
local agg_schema, aggs = nil, {}
for b in tide.read("file", { path = EVENTS, schema = SCHEMA })
    :group_by("device", tide.window("ts", "1 second")):agg { "count(*) AS n", "avg(signal) AS a" }:batches() do
  aggs[#aggs + 1] = b
  agg_schema = agg_schema or assert(core.schema(b:schema()))
end
local AGG_ROWS = 0
for _, b in ipairs(aggs) do AGG_ROWS = AGG_ROWS + b:nrows() end

local server = pg_server.start()
local ok, err = pcall(function()
  local pg = assert(core.pg_connect(server.conninfo))
  local function sql(text) return assert(pg:exec(text)) end
  local function count(t) return tonumber(sql("SELECT count(*) FROM " .. t)[1][1]) end
  sql("CREATE TABLE events (ts timestamptz NOT NULL, device text NOT NULL, signal bigint NOT NULL, kind text NOT NULL)")
  local base = { conninfo = server.conninfo, progress_table = "tide_progress", retries = 0, retry_delay = 0 }
  local function sink(tbl, mode, s, keys)
    local o = { table = tbl, create_table = true }
    for k, v in pairs(base) do o[k] = v end
    return postgres.sinks.postgres.new(o, { query_id = "bench-" .. tbl, mode = mode, schema = s, keys = keys })
  end
  local file = server.dir .. "/events.copy"
  local psql = format("psql -q -X -d %s -c %s", B.quote(server.conninfo),
    B.quote(format("\\copy events FROM '%s'", file)))
  local res = { tide = {}, bin = {}, text = {}, psql = {}, new = {}, again = {} }
  local failures = {}
  local function check(what, got, want)
    if got ~= want then failures[#failures + 1] = format("%s: %d rows in the table, expected %d", what, got, want) end
  end
  local cols = "(ts, device, signal, kind)"
  local function raw(what, copy_sql, forms)
    sql("TRUNCATE events")
    local t0 = clock()
    assert(pg:copy(copy_sql, batches, forms))
    local ms = clock() - t0
    check(what, count("events"), N)
    return { ms = ms }
  end
  local append = sink("events", "append", schema)
  local upsert = sink("windows", "update", agg_schema, { "device", "window_start" })
  local base_rate = {} -- the shared baseline's parse-only rate, once per round (the run's reference)
  for round = 1, ROUNDS do
    base_rate[round] = { eps = B.baseline(EVENTS, N, true).eps }
    sql("TRUNCATE events")
    local t0 = clock()
    append:add_batch(round, batches, "append", schema)
    res.tide[round] = { ms = clock() - t0 }
    check("tide append", count("events"), N)
    res.bin[round] = raw("COPY binary", "COPY events " .. cols .. " FROM STDIN (FORMAT binary)",
      { "timestamp", "text", "int8", "text" })
    res.text[round] = raw("COPY text", "COPY events " .. cols .. " FROM STDIN")
    if round == 1 then
      B.sh(format("psql -q -X -d %s -c %s", B.quote(server.conninfo), B.quote(format("\\copy events TO '%s'", file))))
    end
    sql("TRUNCATE events")
    t0 = clock()
    B.sh(psql)
    res.psql[round] = { ms = clock() - t0 }
    check("psql \\copy", count("events"), N)
    sql("TRUNCATE windows")
    t0 = clock()
    upsert:add_batch(2 * round - 1, aggs, "update", agg_schema)
    res.new[round] = { ms = clock() - t0 }
    t0 = clock()
    upsert:add_batch(2 * round, aggs, "update", agg_schema)
    res.again[round] = { ms = clock() - t0 }
    check("upsert", count("windows"), AGG_ROWS)
    io.write(format("round %d/%d done\n", round, ROUNDS))
    io.flush()
  end
  append.stop()
  upsert.stop()
  pg:close()
  print(format("\npostgres sink vs psql \\copy, %d events (%d aggregated rows), %d rounds (medians, min..max)\n", N,
    AGG_ROWS, ROUNDS))
  local base_eps = C.median(base_rate, "eps")
  print(format("| %-14s | %-24s | %12s | %11s |", "step", "ms", "rows/s", "x baseline"))
  print("|" .. string.rep("-", 16) .. "|" .. string.rep("-", 26) .. "|" .. string.rep("-", 14) .. "|" ..
    string.rep("-", 13) .. "|")
  local rate = {}
  for _, step in ipairs { { "tide append", "tide", N }, { "COPY binary", "bin", N }, { "COPY text", "text", N },
    { "psql \\copy", "psql", N }, { "upsert new", "new", AGG_ROWS },
    { "upsert again", "again", AGG_ROWS } } do
    local m, lo, hi = C.median(res[step[2]], "ms")
    rate[step[2]] = step[3] / (m / 1000)
    print(format("| %-14s | %7.0f (%6.0f..%6.0f) | %12.0f | %10.2fx |", step[1], m, lo, hi, rate[step[2]],
      rate[step[2]] / base_eps))
  end
  print(format("\n(x baseline: rows/s over the shared baseline's parse-only rate in the same rounds, %.2f M events/s)",
    base_eps / 1e6))
  -- each round's own ratio too: tide and psql ran seconds apart, under
  -- the same load, so their median is steadier on a shared machine
  local paired = {}
  for round = 1, ROUNDS do
    paired[round] = { tide = res.psql[round].ms / res.tide[round].ms, text = res.psql[round].ms / res.text[round].ms }
  end
  local ratio = rate.tide / rate.psql
  local pr, plo, phi = C.median(paired, "tide")
  print(format("\nCOPY text / psql \\copy: %.2fx (the text format the sink falls back to; rounds' median %.2fx)",
    rate.text / rate.psql, (C.median(paired, "text"))))
  print(format("\nappend ratio tide / psql \\copy: %.2fx, rounds' median %.2fx (%.2f..%.2f) (target >= 0.8x: %s)",
    ratio, pr, plo, phi, C.verdict(ratio >= 0.8 and pr >= 0.8)))
  for _, f in ipairs(failures) do io.stderr:write("bench-postgres: ", f, "\n") end
  return #failures
end)
server:stop()
for _, b in ipairs(batches) do b:close() end
for _, b in ipairs(aggs) do b:close() end
if not ok then B.die(tostring(err)) end
os.exit(err == 0 and 0 or 1)
