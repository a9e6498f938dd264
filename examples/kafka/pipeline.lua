-- kafka: orders from a Kafka topic, totalled per customer and minute of
-- event time, into another Kafka topic, exactly-once; then the totals are
-- read back from Kafka and shown.
--
--    bin/tide run examples/kafka/pipeline.lua [CHECKPOINT_DIR]
--
-- With TIDE_KAFKA_BOOTSTRAP set (host:port[,host:port]) it uses that
-- cluster and its topics `orders` and `order_totals` (they must exist, or
-- the cluster must create topics on first use); else it starts the
-- project's test broker (tools/kafka-broker, `make kafka-broker`), a
-- Kafka-compatible broker in memory on 127.0.0.1, creates the topics there
-- and stops it at the end. See README.md.
local tide = require "tide"

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

local bootstrap, broker = os.getenv("TIDE_KAFKA_BOOTSTRAP"), nil
if not bootstrap or bootstrap == "" then
  broker = dofile(here .. "/../../spec/kafka_broker.lua").start(1)
  bootstrap = broker.bootstrap
  broker:create_topic("orders", 3)
  broker:create_topic("order_totals", 3)
end

local ck = arg and arg[1]
local temp = not ck
if temp then
  ck = os.tmpname() -- a fresh checkpoint, removed at the end
  os.remove(ck)
end

local ok, err = pcall(function()
  -- 1. The input: the bundled orders, written to the topic `orders` from a
  --    static frame, keyed by customer (the idempotent producer).
  tide.read("file", { path = here .. "/orders.jsonl", format = "json",
                      schema = "ts timestamp, customer string, amount double" })
    :write("kafka", { bootstrap = bootstrap, topic = "orders", key = "customer" })

  -- 2. The streaming query: Kafka -> event-time windows -> Kafka. Each
  --    micro-batch is one Kafka transaction; a restart on the same
  --    checkpoint neither loses nor repeats a total.
  local q = tide.read_stream("kafka", { bootstrap = bootstrap, subscribe = "orders", starting_offsets = "earliest",
                                        format = "json", schema = "ts timestamp, customer string, amount double",
                                        max_offsets_per_trigger = 16 })
    :with_watermark("ts", "30 seconds")
    :group_by(tide.window("ts", "1 minute"), "customer")
    :agg { "count(*) AS orders", "sum(amount) AS amount" }
    :write_stream("kafka", { bootstrap = bootstrap, topic = "order_totals", key = "customer",
                             checkpoint = ck, mode = "append", trigger = "available_now" })
  q:await()
  local p = q:last_progress()
  print(string.format("kafka -> kafka: %d batches, each one transaction", p.batch_id + 1))

  -- 3. The totals, read back as a read_committed consumer sees them.
  tide.read_stream("kafka", { bootstrap = bootstrap, subscribe = "order_totals", starting_offsets = "earliest",
                              format = "json", schema = "window_start timestamp, window_end timestamp, " ..
                                "customer string, orders int, amount double" })
    :write_stream("memory", { name = "order_totals", trigger = "available_now" })
    :await()
  tide.table("order_totals")
    :select("window_start", "customer", "orders", "round(amount, 2) AS amount")
    :order_by("window_start", "customer")
    :show(100)
end)
if temp then os.execute("rm -rf '" .. ck .. "'") end
if broker then broker:stop() end
if not ok then error(err, 0) end
