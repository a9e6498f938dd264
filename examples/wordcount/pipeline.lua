-- wordcount: the classic. Lines of text arrive over TCP; each is split into
-- words, and the running count of every word is printed after each batch
-- (complete mode: the whole table, most frequent words first).
--
--    bin/tide run examples/wordcount/pipeline.lua [PORT [LINES]]
--
-- PORT defaults to 9999. In another terminal, send lines with netcat:
--
--    nc 127.0.0.1 9999                                  (type lines, Enter sends)
--    nc 127.0.0.1 9999 < examples/wordcount/words.txt   (the bundled text)
--
-- The query runs until Ctrl-C, or, when LINES is given, stops on its own
-- once it has counted that many lines.
local tide = require "tide"

local port = tonumber(arg and arg[1] or 9999)
local max_lines = arg and arg[2] and tonumber(arg[2])
if not port or (arg[2] and not max_lines) then
  io.stderr:write("usage: tide run examples/wordcount/pipeline.lua [PORT [LINES]]\n")
  os.exit(2)
end

local lines = tide.read_stream("socket", { host = "127.0.0.1", port = port })

-- one row per word: lower case, letters, digits and apostrophes
local words = lines:flat_map(function(row, emit)
  for w in row.value:lower():gmatch("[%w']+") do emit { word = w } end
end, "word string")

local counts = words
  :group_by("word")
  :count()
  :order_by("count DESC", "word")

local q = counts:write_stream("console", { mode = "complete", trigger = "1 second", num_rows = 50 })
print(string.format("wordcount: listening on 127.0.0.1:%d (send lines with: nc 127.0.0.1 %d)", port, port))
io.stdout:flush()

if max_lines then
  -- Follow the progress reports (each batch's number of input lines) and
  -- stop once LINES lines are counted; q:stop() commits the batch in flight.
  local counted, last_batch = 0, -1
  while q:is_active() do
    q:await("100 ms")
    for _, p in ipairs(q:recent_progress()) do
      if p.batch_id > last_batch then
        last_batch = p.batch_id
        counted = counted + p.num_input_rows
      end
    end
    if counted >= max_lines and q:is_active() then q:stop() end
  end
  print(string.format("wordcount: stopped after %d lines", counted))
end
-- otherwise `tide run` drives the query until Ctrl-C
