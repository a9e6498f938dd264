-- bench/soak.lua: the bounded-state soak of issue 6. `make bench-soak`
-- runs it from the repository's root; see bench/RESULTS.md, section
-- "Event time (issue 6)", and bench/soak_lib.lua for the query, the
-- samples and the checks (spec/soak_spec.lua runs the same checks on a
-- small input in CI).
--
--    lua5.4 bench/soak.lua [--events N] [--batch B] [--every K]
--
-- N events (default 10 million) of ../shared/bench's gen_events, whose
-- default disorder is 2 s (`gen_events N` = `gen_events N --disorder
-- 2000`), 1000 devices, ts stepping 1 ms per event, so 10 million events
-- span 10,000 s of event time: 1000 ten-second windows. The query counts
-- per (10-second tumbling window, device) with a 5-second watermark in
-- append mode, in batches of about B events (default 100,000: the file
-- source's max_bytes_per_trigger = B times the mean line length), with a
-- real checkpoint. Every K-th sample is printed (default 10). The
-- independent count is computed after the run (so that its table is not
-- in the process while RSS is sampled). Exit status 1 when a check fails,
-- 2 on a setup error.

package.path = "lua/?.lua;lua/?/init.lua;./?.lua;" .. package.path
package.cpath = "lua/?.so;" .. package.cpath

local format = string.format

local common = require "bench.common"
local S = require "bench.soak_lib"
local B = common.new("bench-soak")

local opts = B.args({ ... }, { events = 10000000, batch = 100000, every = 10 },
  "usage: lua5.4 bench/soak.lua [--events N] [--batch B] [--every K]  (from the repository's root)")
local N, BATCH = opts.events, opts.batch

B.check_root("bench-soak")
local EVENTS, JSON_BYTES = B.events(N)
local BATCH_BYTES = math.max(1, math.floor(JSON_BYTES / N * BATCH + 0.5))

local tide = require "tide"
local core = require "tide.core"

local TMP = "build/bench-soak-tmp"
B.sh("rm -rf " .. TMP .. " && mkdir -p " .. TMP)

-- The acceptance margins (soak_lib.lua's header says what they compare).
local LIMITS = { devices = 1000, rss_margin = 0.10, rss_slack = 4 * 2 ^ 20, ckpt_factor = 1.5 }

print(format("tide %s soak: %d events (%.1f MB of JSON, disorder %d ms), window %d s, watermark delay %d s, " ..
  "append mode, batches of %d events (%d bytes per trigger)", tide.version, N, JSON_BYTES / 1e6, S.DISORDER_MS,
  S.SIZE_MS // 1000, S.DELAY_MS // 1000, BATCH, BATCH_BYTES))
print(format("%8s %9s %11s %9s %10s %14s %12s %12s %15s", "batch", "input", "state rows", "dropped", "RSS MB",
  "RSS before GC", "Lua heap MB", "ckpt MB", "watermark"))
local k = 0
local function show(s)
  print(format("%8d %9d %11d %9d %10.1f %14.1f %12.2f %12.2f %15s", s.batch_id, s.input, s.state_rows, s.dropped,
    s.rss / 2 ^ 20, s.rss_raw / 2 ^ 20, s.lua_bytes / 2 ^ 20, s.ckpt_bytes / 2 ^ 20, tostring(s.watermark)))
  io.flush()
end
local last
local r = S.run { events = EVENTS, dir = TMP, batch_bytes = BATCH_BYTES, on_sample = function(s)
  k = k + 1
  last = s
  if k == 1 or k % opts.every == 0 then show(s) end
end }
if last and k % opts.every ~= 0 then show(last) end
print(format("ran %d batches in %.1f s (%.2f M events/s, not a target here)", r.batches, r.secs, N / r.secs / 1e6))

local t0 = core.clock_ms()
local want, groups, lines = S.expected(EVENTS)
print(format("independent count (plain Lua over the file): %d groups in %d lines, %.1f s", groups, lines,
  (core.clock_ms() - t0) / 1000))

LIMITS.lines = lines
local failed = 0
print()
print("checks:")
for _, c in ipairs(S.check(r, want, LIMITS)) do
  print(format("  %-6s %-38s %s", c.ok and "ok" or "FAILED", c.name, c.text))
  if not c.ok then failed = failed + 1 end
end
-- early/late figures for the record
local s = r.samples
local n = #s
local function avg(field, from, to)
  local t = 0
  for i = from, to do t = t + s[i][field] end
  return t / (to - from + 1)
end
local raw_max, raw_at = 0, nil
for _, x in ipairs(s) do
  if x.rss_raw > raw_max then raw_max, raw_at = x.rss_raw, x.batch_id end
end
if raw_at then
  print(format("  RSS before the forced collection (not checked): max %.1f MB, at batch %d", raw_max / 2 ^ 20, raw_at))
end
if n >= 4 then
  print(format("  mean state memory (memory_bytes): first quarter %.2f MB, second half %.2f MB",
    avg("state_bytes", 1, n // 4) / 2 ^ 20, avg("state_bytes", n // 2 + 1, n) / 2 ^ 20))
end
B.sh("rm -rf " .. TMP)
if failed > 0 then
  io.stderr:write(format("bench-soak: %d check(s) FAILED\n", failed))
  os.exit(1)
end
