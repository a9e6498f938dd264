-- bench/scaleout_job.lua: the pipeline of one process of bench/scaleout.lua
-- (the scale-out benchmark of issue 15), run by `tide run`:
--
--    tide run --application-id APP --state-dir DIR bench/scaleout_job.lua BOOTSTRAP INPUT OUTPUT PLAN
--    tide run bench/scaleout_job.lua BOOTSTRAP INPUT OUTPUT PLAN CHECKPOINT
--
-- The standard workload of ../shared/bench as a streaming query from Kafka
-- to Kafka: the events of topic INPUT (JSON), where signal >= 15, a 5-second
-- watermark on ts, count, sum and average of signal per device and 10-second
-- tumbling window of ts, each window's row appended to topic OUTPUT once the
-- watermark has passed it, exactly-once (Kafka transactions). PLAN says how
-- the device is grouped: "repartition", by the column device (under an
-- application id the aggregation then repartitions by device through a
-- Kafka topic), or "keyed", by the message key (include_metadata's
-- kafka_key), which the input holds the device in (each device's events in
-- one partition: no repartition). Under --application-id every process
-- running this joins the application and takes its share of the
-- partitions; with CHECKPOINT it is one ordinary query (the single-process
-- reference of the benchmark).
local tide = require "tide"

local bootstrap, input, output, plan, checkpoint = arg[1], arg[2], arg[3], arg[4], arg[5]
if not (bootstrap and input and output and (plan == "repartition" or plan == "keyed")) then
  error("usage: tide run [--application-id APP] bench/scaleout_job.lua BOOTSTRAP INPUT OUTPUT " ..
    "repartition|keyed [CHECKPOINT]", 0)
end

local source = { bootstrap = bootstrap, subscribe = input, starting_offsets = "earliest", format = "json",
  schema = "ts timestamp, device string, signal int, kind string", include_metadata = plan == "keyed" }
-- (the single query takes the input in batches of half a million offsets,
-- as bench/kafka.lua does; under an application id the runtime sizes its
-- commit cycles itself)
if checkpoint then source.max_offsets_per_trigger = 500000 end

tide.read_stream("kafka", source)
  :where("signal >= 15")
  :with_watermark("ts", "5 seconds")
  :group_by(tide.window("ts", "10 seconds"), plan == "keyed" and "kafka_key" or "device")
  :agg { n = "count(*)", s = "sum(signal)", a = "avg(signal)" }
  :write_stream("kafka", { bootstrap = bootstrap, topic = output, mode = "append", checkpoint = checkpoint })
