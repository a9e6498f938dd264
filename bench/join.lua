-- bench/join.lua: a stream-stream inner join of 2M impressions with 2M
-- clicks under a 10-minute range condition (issue 19's figure), against
-- the shared baseline's parse-only rate measured in the same rounds.
--
--    make bench-join [BENCH_JOIN_ARGS="--rows 2000000 --rounds 3"]
--
-- Setup (not timed): two topics in a fresh store, `imps` (imp_id int,
-- imp_ad int, imp_ts timestamp) with impression i at base + i ms and ad
-- i % 1000000, and `clicks` (click_id, click_ad, click_ts): one click per
-- impression on its ad, 0 to 9 minutes after it, in time order. Timed:
-- the streaming query
--
--    imps:with_watermark("imp_ts", "1 minute")
--      :join(clicks:with_watermark("click_ts", "1 minute"),
--            "click_ad = imp_ad AND click_ts BETWEEN imp_ts AND imp_ts + interval 10 minutes")
--      -> a topic sink (exactly-once, columnar), trigger 0, 100k rows per
--         source and trigger, a real checkpoint (state in LMDB)
--
-- from start to the end of q:process_all_available(), input rows (both
-- topics) per second. Impressions of one ad are 1M ms (16.7 min) apart, so
-- each click matches exactly its impression: the output topic must hold
-- exactly `rows` records (checked), and the join's state stays bounded by
-- the watermark (about 10 minutes of impressions; its largest size over the
-- batches is reported). Figures are medians over the rounds; ratio = input
-- rows/s / the baseline's parse-only events/s (over the standard events
-- file of the same number of rows). Exit status 1 when a check fails, 2
-- on a setup error.

package.path = "./?.lua;./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./lua/?.so;" .. package.cpath

local C = require "bench.common"
local B = C.new("bench-join")
local format = string.format

local usage = [[
usage: lua5.4 bench/join.lua [--rows N] [--rounds R]
  --rows N     impressions, and clicks (default 2000000 each)
  --rounds R   rounds; figures are medians (default 3)
(from the repository's root)]]
local opts = B.args(arg, { rows = 2000000, rounds = 3 }, usage)
B.check_root("bench-join")
local N, ROUNDS = opts.rows, opts.rounds
local EVENTS = B.events(N)

local tide = require "tide"
local core = require "tide.core"
local clock = core.clock_ms

local BASE = 1700000000000
local ADS = 1000000
local CHUNK = 100000

local root = "build/bench-data/join-" .. N
B.sh("rm -rf " .. B.quote(root) .. " && mkdir -p " .. B.quote(root))
local store = root .. "/store"

-- the topics, written once (not timed)
io.write(format("writing %d impressions and %d clicks into topics (not timed) ...\n", N, N))
io.flush()
local db = tide.open(store, { sync = false })
local imps = db:create_topic("imps", { schema = "imp_id int, imp_ad int, imp_ts timestamp" })
local clicks = db:create_topic("clicks", { schema = "click_id int, click_ad int, click_ts timestamp" })
local seed = 12345
local function rnd(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n
end
local delay = {}
for i = 0, N - 1 do delay[i] = rnd(9 * 60000 + 1) end
for first = 0, N - 1, CHUNK do
  local rows = {}
  for i = first, math.min(first + CHUNK, N) - 1 do
    rows[#rows + 1] = { imp_id = i, imp_ad = i % ADS, imp_ts = BASE + i }
  end
  imps:append(rows)
end
-- clicks in time order: click i at BASE + i + delay[i]
local order = {}
for i = 0, N - 1 do order[i + 1] = i end
table.sort(order, function(a, b)
  local ta, tb = a + delay[a], b + delay[b]
  if ta ~= tb then return ta < tb end
  return a < b
end)
for first = 1, N, CHUNK do
  local rows = {}
  for k = first, math.min(first + CHUNK - 1, N) do
    local i = order[k]
    rows[#rows + 1] = { click_id = i, click_ad = i % ADS, click_ts = BASE + i + delay[i] }
  end
  clicks:append(rows)
end
order, delay = nil, nil -- luacheck: ignore (frees them for the collector)
collectgarbage()

local COND = "click_ad = imp_ad AND click_ts BETWEEN imp_ts AND imp_ts + interval 10 minutes"

-- One timed run: ms, output records, the largest state row count.
local function run(round)
  local out_name = "out" .. round
  local joined = db:read_stream("imps", { max_records_per_trigger = CHUNK }):with_watermark("imp_ts", "1 minute")
    :join(db:read_stream("clicks", { max_records_per_trigger = CHUNK }):with_watermark("click_ts", "1 minute"), COND)
  db:create_topic(out_name, { schema = joined:schema() })
  local ck = format("%s/ck-%d", root, round)
  local t0 = clock()
  local q = joined:write_stream("topic", { store = db, topic = out_name, checkpoint = ck, trigger = 0, sync = false })
  q:process_all_available()
  local ms = clock() - t0
  local peak = 0
  for _, p in ipairs(q:recent_progress()) do
    local ops = p.state_operators
    if ops[1] and ops[1].num_rows_total > peak then peak = ops[1].num_rows_total end
  end
  q:stop()
  local records = db:topic(out_name):stats().records
  db:delete_topic(out_name)
  B.sh("rm -rf " .. B.quote(ck))
  return ms, records, peak
end

local failures, results, base = {}, {}, {}
for round = 1, ROUNDS do
  base[#base + 1] = { eps = B.baseline(EVENTS, N, true).eps }
  local ms, records, peak = run(round)
  if records ~= N then
    failures[#failures + 1] = format("round %d: %d joined records, expected %d", round, records, N)
  end
  results[#results + 1] = { ms = ms, eps = 2 * N / (ms / 1000), peak = peak }
  io.write(format("round %d/%d: %.0f ms, %d records, state at most %d rows\n", round, ROUNDS, ms, records, peak))
  io.flush()
end
db:close()
B.sh("rm -rf " .. B.quote(root))

local base_eps = C.median(base, "eps")
local ms, lo, hi = C.median(results, "ms")
local eps = C.median(results, "eps")
local peak = C.median(results, "peak")
print(format("\nstream-stream inner join, %d + %d rows, 10-minute range, %d rounds (medians, min..max)\n", N, N,
  ROUNDS))
print("| input rows | time ms | input rows/s | baseline parse-only events/s | ratio | state rows (peak) |")
print("|---|---|---|---|---|---|")
print(format("| %d + %d | %.0f (%.0f..%.0f) | %.2f M | %.2f M | %.2fx | %d |", N, N, ms, lo, hi, eps / 1e6,
  base_eps / 1e6, eps / base_eps, peak))
for _, f in ipairs(failures) do io.stderr:write("bench-join: ", f, "\n") end
os.exit(#failures == 0 and 0 or 1)
