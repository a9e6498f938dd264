-- bench/memlimit.lua: bounded state memory (issue 18, state_memory_limit).
--
--    make bench-memlimit [BENCH_MEMLIMIT_ARGS="--keys 50000000 --unlimited 20000000"]
--
-- A streaming aggregation without a watermark over `keys` distinct keys:
-- the rate source's rows (value 0, 1, 2 ... : every row a new key), put
-- once into a topic of a store in build/bench-data (not timed), read back
-- `batch` records per micro-batch:
--
--    db:read_stream("keys", { max_records_per_trigger = batch })
--      :group_by("value"):agg{ "count(*) AS n" }:where("n > 1")
--      :write_stream(fn, { mode = "update", trigger = "available_now",
--                          checkpoint = ..., state_memory_limit = LIMIT })
--
-- (`where("n > 1")` keeps nothing, so the sink's cost is not measured; the
-- state is: every group is committed to the checkpoint.) It runs with
-- the limit (`--limit` MB, default 256) over `keys` keys and without one
-- ("1TB") over `unlimited` keys, each in a child process of its own,
-- so that its peak RSS is its own: VmHWM of /proc/self/status at the end
-- (anonymous and file-backed pages: LMDB's map counts once touched) and
-- the largest RssAnon seen after any batch (what the engine allocated).
-- Throughput is rows per second of wall time from start to the end of
-- the last batch; its ratio is to the shared baseline's --parse-only rate
-- measured in the same run (1 million events). Each child checks that
-- the query saw every key once (num_rows_total = keys). Exit status 1 when
-- a check fails, 2 on a setup error.

package.path = "./?.lua;./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./lua/?.so;" .. package.cpath

local format = string.format

-- ------------------------------------------------------------------ child
if arg[1] == "--child" then
  local tide = require "tide"
  local core = require "tide.core"
  local store, ck, limit, batch, keys = arg[2], arg[3], arg[4], tonumber(arg[5]), tonumber(arg[6])
  local function status()
    local f = assert(io.open("/proc/self/status"))
    local s = f:read("a")
    f:close()
    return tonumber(s:match("VmHWM:%s*(%d+)")), tonumber(s:match("RssAnon:%s*(%d+)"))
  end
  local db = tide.open(store)
  local anon_max, last, batches = 0, nil, 0
  local t0 = core.clock_ms()
  local q = db:read_stream("keys", { max_records_per_trigger = batch })
    :group_by("value"):agg { "count(*) AS n" }:where("n > 1")
    :write_stream(function() end, { mode = "update", trigger = "available_now", checkpoint = ck,
      state_memory_limit = limit })
  tide.on_progress(function(_, p)
    local _, anon = status()
    if anon > anon_max then anon_max = anon end
    last, batches = p, batches + 1
  end)
  q:await()
  local secs = (core.clock_ms() - t0) / 1000
  local hwm = status()
  local op = last.state_operators[1]
  print(format("secs=%.3f batches=%d groups=%d in_memory=%d memory_bytes=%d hwm_kb=%d anon_max_kb=%d evicted=%d",
    secs, batches, op.num_rows_total, op.num_rows_in_memory or -1, op.memory_bytes, hwm, anon_max,
    op.num_rows_evicted_to_checkpoint or 0))
  if op.num_rows_total ~= keys then
    io.stderr:write(format("memlimit child: %d groups, expected %d\n", op.num_rows_total, keys))
    os.exit(1)
  end
  os.exit(0)
end

-- ----------------------------------------------------------------- parent
local C = require "bench.common"
local B = C.new("bench-memlimit")
local usage = [[
usage: lua5.4 bench/memlimit.lua [--keys N] [--unlimited M] [--batch B] [--limit MB]
  --keys N            distinct keys of the run with the limit (default 50000000)
  --unlimited M       distinct keys of the run without a limit (default 20000000:
                      50 million groups in memory need more than the ~6 GB a shared
                      machine can give; see bench/RESULTS.md)
  --batch B           records per micro-batch (default 1000000)
  --limit MB          state_memory_limit of the limited run, in MB (default 256)
(from the repository's root)]]
local opts = B.args(arg, { keys = 50000000, unlimited = 20000000, batch = 1000000, limit = 256 }, usage)
B.check_root("bench-memlimit")
local tide = require "tide"
local core = require "tide.core"

local BASE_EVENTS = 1000000
local events, ebytes = B.events(BASE_EVENTS)

-- The input: a topic of max(keys) rate rows, made once.
local NMAX = math.max(opts.keys, opts.unlimited)
local STORE = format("%s/memlimit-store-%d", B.DATA, NMAX)
local function make_store()
  if B.exists(STORE .. "/.complete") then return end
  B.sh("rm -rf " .. B.quote(STORE))
  io.write(format("writing %d rows into %s (not timed) ...\n", NMAX, STORE))
  io.flush()
  local db = tide.open(STORE, { sync = false })
  local t = db:create_topic("keys", { schema = "timestamp timestamp, value int" })
  local schema = assert(core.schema("timestamp timestamp, value int"))
  local step = 1000000
  for i = 0, NMAX - 1, step do
    local b = assert(core.rate_batch(schema, 1700000000000, 1000000, i, math.min(NMAX, i + step)))
    t:append_batches({ b })
    b:close()
  end
  db:close()
  B.sh("touch " .. B.quote(STORE .. "/.complete"))
end
make_store()

local function child(limit, keys)
  local ck = format("%s/memlimit-ck-%d", B.DATA, keys)
  B.sh("rm -rf " .. B.quote(ck))
  -- a store of exactly `keys` rows is what the query reads: the child
  -- stops its topic at keys by reading a store made for that count
  local store = STORE
  if keys ~= NMAX then
    store = format("%s/memlimit-store-%d", B.DATA, keys)
    if not B.exists(store .. "/.complete") then
      local saved = NMAX
      NMAX, STORE = keys, store
      make_store()
      NMAX, STORE = saved, format("%s/memlimit-store-%d", B.DATA, saved)
    end
  end
  local out = B.capture(format("lua5.4 bench/memlimit.lua --child %s %s %s %d %d", B.quote(store), B.quote(ck),
    B.quote(limit), opts.batch, keys))
  local du = B.capture("du -sk " .. B.quote(ck)):match("^(%d+)")
  B.sh("rm -rf " .. B.quote(ck))
  local r = {}
  for k, v in out:gmatch("([%w_]+)=([%d.%-]+)") do r[k] = tonumber(v) end
  r.ck_mb = tonumber(du) / 1024
  r.rps = keys / r.secs
  return r
end

local base = B.baseline(events, BASE_EVENTS, true, ebytes)
io.write(format("baseline --parse-only: %.2f M events/s\n", base.eps / 1e6))
io.flush()
local limited = child(opts.limit .. "MB", opts.keys)
local unlimited = child("1TB", opts.unlimited)
local base2 = B.baseline(events, BASE_EVENTS, true, ebytes)
local peps = (base.eps + base2.eps) / 2

print()
print(format("baseline --parse-only (1 M events, mean of before and after): %.2f M events/s", peps / 1e6))
print("| run | keys | M rows/s | ratio to parse-only | peak RSS (VmHWM) | max RssAnon | state in memory at the end " ..
  "| checkpoint | wall |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
local runs = { { "limit " .. opts.limit .. " MB", opts.keys, limited }, { "no limit", opts.unlimited, unlimited } }
for _, x in ipairs(runs) do
  local r = x[3]
  print(format("| %s | %d | %.3f | %.2fx | %.0f MB | %.0f MB | %.1f MB, %d groups | %.0f MB | %.1f s |", x[1], x[2],
    r.rps / 1e6, r.rps / peps, r.hwm_kb / 1024, r.anon_max_kb / 1024, r.memory_bytes / 1048576, r.in_memory,
    r.ck_mb, r.secs))
end
