-- etl: files -> a schema-validated topic -> files, exactly-once.
--
--    bin/tide run examples/etl/pipeline.lua [DIR]
--
-- Stage 1 (ingest) reads the order files of in/ (JSON lines, a few of them
-- broken) against a schema. Good rows go to the topic `orders`, whose schema
-- the store validates on every append; bad lines go to the dead-letter topic
-- `orders_dead_letter` with the reason, file and line, instead of stopping
-- the query. Stage 2 (export) reads the topic and writes JSON files to
-- DIR/out. Both queries keep checkpoints, and both sinks are exactly-once:
-- a query killed at any point and started again on its checkpoint neither
-- loses nor repeats a row. Run the script twice on the same DIR: the second
-- run finds nothing new, and every count stays the same.
--
-- DIR (temporary unless given) holds store/, checkpoints/ and out/.
local tide = require "tide"

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

local dir = arg and arg[1]
local temp = not dir
if temp then
  dir = os.tmpname()
  os.remove(dir)
end
assert(os.execute("mkdir -p '" .. dir .. "'"))

local ORDER = "order_id string, customer string, amount double, ts timestamp, status string"

local db = tide.open(dir .. "/store")
if not db:has_topic("orders") then db:create_topic("orders", { schema = ORDER }) end

-- Stage 1: files -> topic `orders`; bad lines -> topic `orders_dead_letter`
local ingest = tide.read_stream("file", {
  path = here .. "/in/*.jsonl", format = "json", schema = ORDER,
  bad_records = "dead_letter", dead_letter_topic = "orders_dead_letter", store = db,
}):write_stream("topic", {
  store = db, topic = "orders",
  checkpoint = dir .. "/checkpoints/ingest", trigger = "available_now",
})
ingest:await()

-- Stage 2: topic `orders` -> JSON files in DIR/out
local export = db:read_stream("orders", { starting_offset = "earliest" })
  :select("order_id", "customer", "amount", "ts", "upper(status) AS status")
  :write_stream("file", {
    path = dir .. "/out", format = "json",
    checkpoint = dir .. "/checkpoints/export", trigger = "available_now",
  })
export:await()

-- What each place holds now
local good = db:topic("orders"):stats().records
local dead = {}
if db:has_topic("orders_dead_letter") then
  for rec in db:topic("orders_dead_letter"):read() do
    dead[#dead + 1] = { file = rec.file:match("[^/]*$"), line = rec.line, reason = rec.reason }
  end
end
table.sort(dead, function(a, b)
  if a.file ~= b.file then return a.file < b.file end
  return a.line < b.line
end)
local out = tide.read("file", { path = dir .. "/out", format = "json",
  schema = "order_id string, customer string, amount double, ts timestamp, status string" })
local totals = { n = 0, amount = 0 }
for _, r in ipairs(out:collect()) do
  totals.n, totals.amount = totals.n + 1, totals.amount + r.amount
end

print(string.format("topic orders: %d rows", good))
print(string.format("topic orders_dead_letter: %d lines", #dead))
for _, d in ipairs(dead) do print(string.format("  %s:%d: %s", d.file, d.line, d.reason)) end
print(string.format("files in out/: %d rows, amount %.2f", totals.n, totals.amount))

db:close()
if temp then os.execute("rm -rf '" .. dir .. "'") end
