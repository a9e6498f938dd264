-- late_data: IoT temperature readings arriving out of order, and what a
-- watermark does with them. The same windowed query (10-second windows,
-- count and average temperature, watermark 5 seconds behind the latest
-- reading) runs twice side by side: in append mode and in update mode.
--
--    bin/tide run examples/late_data/pipeline.lua
--
-- The five files of arrivals/ are dropped one at a time into an input
-- directory, as a gateway would deliver them; after each, both queries
-- process what is there (including the no-data batches a moved watermark
-- calls for) and the script prints what each query emitted, batch by batch.
-- Append mode emits a window once, final, in the batch after the watermark
-- passes its end; update mode emits a window every time it changes. A
-- reading whose window the watermark has already passed is dropped by both:
-- the progress reports count it (num_rows_dropped_by_watermark).
local tide = require "tide"

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

local function hms(ms) return tide.format_time(ms):match("T(%d%d:%d%d:%d%d)") end

local function read_all(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- the input directory the "gateway" drops files into
local indir = os.tmpname()
os.remove(indir)
assert(os.execute("mkdir -p '" .. indir .. "'"))

-- One query per mode over the same directory. Each sink keeps what its
-- batches emit, so that the script can print both side by side.
local emitted = { append = {}, update = {} }
local function windowed(mode)
  return tide.read_stream("file", { path = indir, format = "json",
                                    schema = "sensor string, ts timestamp, temp double" })
    :with_watermark("ts", "5 seconds")
    :group_by(tide.window("ts", "10 seconds"))
    :agg { "count(*) AS n", "avg(temp) AS avg_temp" }
    :write_stream(function(batch_id, rows)
      -- the order of rows in a batch is not defined: sort by window
      table.sort(rows, function(a, b) return a.window_start < b.window_start end)
      emitted[mode][#emitted[mode] + 1] = { batch_id = batch_id, rows = rows }
    end, { mode = mode, name = "late_data_" .. mode })
end
local queries = { append = windowed("append"), update = windowed("update") }

-- a batch's output: one window a line, under each other after `prefix`
local function describe(prefix, rows)
  if #rows == 0 then return prefix .. "-" end
  local lines = {}
  for i, r in ipairs(rows) do
    lines[i] = string.format("%s[%s, %s) n=%d avg=%.2f", i == 1 and prefix or string.rep(" ", #prefix),
      hms(r.window_start), hms(r.window_end), r.n, r.avg_temp)
  end
  return table.concat(lines, "\n")
end

local seen_batches = { append = -1, update = -1 }
local late_total = { append = 0, update = 0 }

for i = 1, 5 do
  local text = read_all(string.format("%s/arrivals/%d.jsonl", here, i))
  -- write under a hidden name, then rename: the source never sees half a file
  local tmp = string.format("%s/.%d.jsonl", indir, i)
  local f = assert(io.open(tmp, "wb"))
  f:write(text)
  f:close()
  assert(os.rename(tmp, string.format("%s/%d.jsonl", indir, i)))

  local times = {}
  for ts in text:gmatch('"ts":"[^"]*T(%d%d:%d%d:%d%d)') do times[#times + 1] = ts end
  print(string.format("arrival %d: readings at %s", i, table.concat(times, " ")))

  -- Both queries share the event loop: while one processes, the other runs
  -- too. So both are driven first, and their batches reported after.
  local first = { append = #emitted.append + 1, update = #emitted.update + 1 }
  queries.append:process_all_available()
  queries.update:process_all_available()
  for _, mode in ipairs { "append", "update" } do
    local q = queries[mode]
    local progress = {}   -- batch id -> progress report, for this step's batches
    local late = 0
    for _, p in ipairs(q:recent_progress()) do
      if p.batch_id > seen_batches[mode] then
        progress[p.batch_id] = p
        late = late + p.state_operators[1].num_rows_dropped_by_watermark
      end
    end
    seen_batches[mode] = q:last_progress().batch_id
    late_total[mode] = late_total[mode] + late
    for k = first[mode], #emitted[mode] do
      local b = emitted[mode][k]
      print(describe(string.format("  %-6s batch %d%s: ", mode, b.batch_id,
        progress[b.batch_id].num_input_rows == 0 and " (no data)" or ""), b.rows))
    end
    if late > 0 then print(string.format("  %-6s dropped %d late reading(s)", mode, late)) end
  end
  print(string.format("  watermark now %s", hms(queries.append:watermark())))
end

for _, mode in ipairs { "append", "update" } do queries[mode]:stop() end
print(string.format("late readings dropped: append %d, update %d", late_total.append, late_total.update))
print("the last window stays open in append mode until later readings move the watermark past its end")
os.execute("rm -rf '" .. indir .. "'")
