-- quickstart: JSON events -> filter -> 10-second windowed count and average
-- by device; then the same events in a durable topic, read back by time.
--
-- Run it with `make demo`, or `bin/tide run examples/quickstart/pipeline.lua [STORE_DIR]`.
-- Part 1 is a frame over the bundled JSON file. Part 2 creates a store (a
-- temporary one unless STORE_DIR is given), a topic with a schema, appends
-- the events atomically, and reads the topic back: all of it, then one
-- 10-second slice of event time, which skips every segment outside the
-- slice without opening it.
local tide = require "tide"

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

-- 1. A frame: the plan is checked when it is built, and runs in C over
-- columnar batches when it is shown.
local events_file = tide.read("file", { path = here .. "/events.jsonl", format = "json",
  schema = "ts timestamp, device string, signal int" })
local per_window = events_file
  :where("signal >= 5")
  :group_by(tide.window("ts", "10 seconds"), "device")
  :agg { "count(*) AS n", "avg(signal) AS avg_signal" }
  :select("window_start", "device", "n", "round(avg_signal, 2) AS avg_signal")
print(per_window:explain())
per_window:order_by("window_start", "device"):show(50)
local dir = arg and arg[1]
local temp = not dir
if temp then
  dir = os.tmpname()
  os.remove(dir)
end

local db = tide.open(dir)
if db:has_topic("events") then db:delete_topic("events") end
local events = db:create_topic("events", {
  schema = "ts timestamp, device string, signal int",
  segment_bytes = "1KB",   -- tiny segments, so that time pruning has something to prune
})

-- append in chunks of five lines, as a producer would: each chunk is one
-- atomic append, and the segments roll as they fill
local chunk, total = {}, 0
local function flush()
  if #chunk == 0 then return end
  local r = events:append_json(table.concat(chunk, "\n"))
  total = total + r.appended
  chunk = {}
end
for line in io.lines(here .. "/events.jsonl") do
  chunk[#chunk + 1] = line
  if #chunk == 5 then flush() end
end
flush()
print(string.format("appended %d events", total))

-- count and average signal per device, over the whole topic
local n, sum = {}, {}
for rec in events:read() do
  n[rec.device] = (n[rec.device] or 0) + 1
  sum[rec.device] = (sum[rec.device] or 0) + rec.signal
end
local devices = {}
for d in pairs(n) do devices[#devices + 1] = d end
table.sort(devices)
print("device   count  avg_signal")
for _, d in ipairs(devices) do print(string.format("%-8s %5d  %10.2f", d, n[d], sum[d] / n[d])) end

-- one 10-second slice of event time
local from, to = "2026-11-21T12:00:10Z", "2026-11-21T12:00:20Z"
local k = 0
for _ in events:read{ from_time = from, to_time = to } do k = k + 1 end
local st = events:stats()
print(string.format("events in [%s, %s): %d", from, to, k))
print(string.format("topic: %d records in %d segments, %d bytes", st.records, st.segments, st.bytes))
for _, s in ipairs(events:segments()) do
  local overlaps = s.max_ts >= tide.parse_time(from) and s.min_ts < tide.parse_time(to)
  print(string.format("  segment %3d..%-3d %-6s %s .. %s  %s", s.base_offset, s.end_offset - 1, s.state,
    tide.format_time(s.min_ts), tide.format_time(s.max_ts), overlaps and "read" or "skipped"))
end

db:close()
if temp then os.execute("rm -rf '" .. dir .. "'") end
