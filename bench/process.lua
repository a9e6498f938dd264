-- bench/process.lua: the Lua stateful operator (`group_by(keys):process`)
-- over 5M rows with 100k keys (issue 19's figure), against the shared
-- baseline's parse-only rate measured in the same rounds.
--
--    make bench-process [BENCH_PROCESS_ARGS="--rows 5000000 --rounds 3 --batch 500000"]
--
-- Timed: the streaming query over the standard events file of
-- ../shared/bench (JSON, the same bytes the baseline parses)
--
--    read_stream("file", json, max_bytes_per_trigger = about `batch` rows)
--      :group_by("CAST(ts AS int) % 100000 AS k")
--      :process(fn, { schema = "k int, n int, s int" })
--      -> a Lua sink (foreach-batch function), update mode, trigger 0,
--         a real checkpoint (the state in LMDB, committed per batch)
--
-- where fn keeps { n = rows so far, s = sum of signal so far } per key in
-- its state and returns one row per key per batch. The events' ts are
-- consecutive milliseconds (less a disorder of up to 2 s), so the key takes
-- exactly 100000 values over 5M rows (with fewer than 2M rows, some may be
-- missing).
-- The sink checks every row as it comes: a key's count never goes down
-- and its sum stays within 0..100 per row; after the query, the last
-- counts must sum to `rows` and the keys be 100000 (checked).
-- From start to the end of q:process_all_available(), input rows per
-- second (and the progress reports' phases summed: get_batch + execution
-- + add_batch, and commit). Figures are medians over the rounds; ratio =
-- input rows/s / the baseline's parse-only events/s over the same file. Exit status 1 when a
-- check fails, 2 on a setup error.

package.path = "./?.lua;./lua/?.lua;./lua/?/init.lua;" .. package.path
package.cpath = "./lua/?.so;" .. package.cpath

local C = require "bench.common"
local B = C.new("bench-process")
local format = string.format

local usage = [[
usage: lua5.4 bench/process.lua [--rows N] [--rounds R] [--batch B]
  --rows N     events (default 5000000)
  --rounds R   rounds; figures are medians (default 3)
  --batch B    about B rows per batch (default 500000)
(from the repository's root)]]
local opts = B.args(arg, { rows = 5000000, rounds = 3, batch = 500000 }, usage)
B.check_root("bench-process")
local N, ROUNDS, BATCH = opts.rows, opts.rounds, opts.batch
local EVENTS, BYTES = B.events(N)
local KEYS = 100000

local tide = require "tide"
local core = require "tide.core"
local clock = core.clock_ms

local SCHEMA = "ts timestamp, device string, signal int, kind string"
local BATCH_BYTES = math.max(1, BATCH * BYTES // N)

local root = "build/bench-data/process-" .. N
B.sh("rm -rf " .. B.quote(root) .. " && mkdir -p " .. B.quote(root))

local function fn(k, rows, state)
  local st = state:get() or { n = 0, s = 0 }
  local n, s = st.n, st.s
  for i = 1, #rows do
    n, s = n + 1, s + rows[i].signal
  end
  st.n, st.s = n, s
  state:set(st)
  return { { k = k, n = n, s = s } }
end

-- One timed run: ms, batches, output rows, and the check's failure or nil.
local function run(round)
  local last_n, last_s = {}, {}
  local out_rows, bad = 0, nil
  local function sink(_, rows)
    out_rows = out_rows + #rows
    for i = 1, #rows do
      local r = rows[i]
      local k, n, s = r.k, r.n, r.s
      local old_n = last_n[k] or 0
      if not bad and (n <= old_n or s < (last_s[k] or 0) or s > (last_s[k] or 0) + 100 * (n - old_n)) then
        bad = format("key %s: count %s -> %s, sum %s -> %s", k, old_n, n, last_s[k], s)
      end
      last_n[k], last_s[k] = n, s
    end
  end
  local ck = format("%s/ck-%d", root, round)
  collectgarbage()
  collectgarbage()
  local t0 = clock()
  local q = tide.read_stream("file", { path = EVENTS, format = "json", schema = SCHEMA, final_line_wait = 0,
      max_bytes_per_trigger = BATCH_BYTES })
    :group_by("CAST(ts AS int) % " .. KEYS .. " AS k")
    :process(fn, { schema = "k int, n int, s int" })
    :write_stream(sink, { mode = "update", checkpoint = ck, trigger = 0 })
  q:process_all_available()
  local ms = clock() - t0
  local batches, input, exec_ms, commit_ms = 0, 0, 0, 0
  for _, p in ipairs(q:recent_progress()) do
    if p.num_input_rows > 0 then batches, input = batches + 1, input + p.num_input_rows end
    exec_ms = exec_ms + p.duration_ms.get_batch + p.duration_ms.execution + p.duration_ms.add_batch
    commit_ms = commit_ms + p.duration_ms.commit
  end
  q:stop()
  B.sh("rm -rf " .. B.quote(ck))
  local keys, total = 0, 0
  for _, n in pairs(last_n) do keys, total = keys + 1, total + n end
  if not bad and total ~= N then bad = format("final counts sum to %d, expected %d", total, N) end
  -- with fewer than 20 rows per key value some values may be missing (the disorder)
  if not bad and (keys > KEYS or N >= 20 * KEYS and keys ~= KEYS) then
    bad = format("%d keys, expected %s%d", keys, N >= 20 * KEYS and "" or "at most ", KEYS)
  end
  if not bad and input ~= N and batches < 100 then -- (a query keeps its last 100 reports)
    bad = format("progress counts %d input rows, expected %d", input, N)
  end
  return ms, batches, out_rows, keys, exec_ms, commit_ms, bad
end

local failures, results, base = {}, {}, {}
for round = 1, ROUNDS do
  base[#base + 1] = { eps = B.baseline(EVENTS, N, true).eps }
  local ms, batches, out_rows, keys, exec_ms, commit_ms, bad = run(round)
  if bad then failures[#failures + 1] = format("round %d: %s", round, bad) end
  results[#results + 1] = { ms = ms, eps = N / (ms / 1000), batches = batches, out = out_rows, keys = keys,
    exec = exec_ms, commit = commit_ms }
  io.write(format("round %d/%d: %.0f ms (batch, execution and sink %.0f, commit %.0f), %d batches, %d output "
    .. "rows, baseline parse-only %.2f M/s%s\n", round, ROUNDS, ms, exec_ms, commit_ms, batches, out_rows,
    base[#base].eps / 1e6, bad and (" FAILED: " .. bad) or ""))
  io.flush()
end
B.sh("rm -rf " .. B.quote(root))

local base_eps = C.median(base, "eps")
local ms, lo, hi = C.median(results, "ms")
local eps = C.median(results, "eps")
print(format("\nLua stateful processing, %d rows, %d keys, about %d rows per batch, %d rounds (medians, min..max)\n",
  N, C.median(results, "keys"), BATCH, ROUNDS))
print("| input rows | keys | batches | output rows | time ms | input rows/s | baseline parse-only events/s | ratio |")
print("|---|---|---|---|---|---|---|---|")
print(format("| %d | %d | %d | %d | %.0f (%.0f..%.0f) | %.2f M | %.2f M | %.3fx |", N, C.median(results, "keys"),
  C.median(results, "batches"), C.median(results, "out"), ms, lo, hi, eps / 1e6, base_eps / 1e6, eps / base_eps))
print(format("\nper round (medians): reading, process and the sink %.0f ms, commit (state into the checkpoint) %.0f ms",
  C.median(results, "exec"), C.median(results, "commit")))
for _, f in ipairs(failures) do io.stderr:write("bench-process: ", f, "\n") end
os.exit(#failures == 0 and 0 or 1)
