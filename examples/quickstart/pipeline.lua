-- quickstart: a streaming query over JSON files: keep the readings with a
-- signal of 5 or more, count them and average their signal per device in
-- 10-second windows, and print the live result table after every batch.
-- Then the same events go into a durable topic, read back by event time.
--
--    bin/tide run examples/quickstart/pipeline.lua [STORE_DIR]     (or: make demo)
--
-- The three files of events/ arrive one per batch (max_files_per_trigger),
-- as files dropped into a directory over time would. The query runs in
-- complete mode: each batch prints the whole table, sorted. The trigger
-- "available_now" processes what is there, then ends the query, so the
-- script finishes on its own.
local tide = require "tide"

-- the files next to this script, wherever it is run from
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

---------------------------------------------------------------------------
-- 1. A streaming query: files -> filter -> windowed count and average -> console
---------------------------------------------------------------------------

local readings = tide.read_stream("file", {
  path = here .. "/events/*.jsonl",
  format = "json",
  schema = "ts timestamp, device string, signal int",
  max_files_per_trigger = 1,
})

local per_window = readings
  :where("signal >= 5")
  :group_by(tide.window("ts", "10 seconds"), "device")
  :agg { "count(*) AS n", "avg(signal) AS avg_signal" }
  :select("window_start", "window_end", "device", "n", "round(avg_signal, 2) AS avg_signal")
  :order_by("window_start", "device")

local q = per_window:write_stream("console", { mode = "complete", trigger = "available_now", num_rows = 50 })
q:await()   -- runs the batches; returns when available_now has read everything

local p = q:last_progress()
print(string.format("streaming query: %d batches, the last one read %d rows", p.batch_id + 1, p.num_input_rows))

---------------------------------------------------------------------------
-- 2. The same events in a durable topic, read back by event time
---------------------------------------------------------------------------

local dir = arg and arg[1]
local temp = not dir
if temp then
  dir = os.tmpname()   -- a fresh temporary store, removed at the end
  os.remove(dir)
end
local db = tide.open(dir)
if db:has_topic("events") then db:delete_topic("events") end
local events = db:create_topic("events", { schema = "ts timestamp, device string, signal int" })

-- each append is atomic and validated against the topic's schema
local total = 0
for i = 1, 3 do
  local f = assert(io.open(string.format("%s/events/part-%d.jsonl", here, i)))
  total = total + events:append_json(f:read("a")).appended
  f:close()
end
print(string.format("topic 'events': appended %d events", total))

-- a time range skips the segments outside it without opening them
local from, to = "2026-11-21T12:00:10Z", "2026-11-21T12:00:20Z"
local n, strong = 0, 0
for rec in events:read{ from_time = from, to_time = to } do
  n = n + 1
  if rec.signal >= 5 then strong = strong + 1 end
end
print(string.format("events in [%s, %s): %d, of which %d with signal >= 5", from, to, n, strong))

db:close()
if temp then os.execute("rm -rf '" .. dir .. "'") end
