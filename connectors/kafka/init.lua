--- The Kafka connectors (issue 14), over librdkafka (core/kafka.c):
-- `read_stream("kafka", ...)` is connectors/kafka/source.lua, and
-- `write_stream("kafka", ...)` connectors/kafka/sink.lua. Each part is its
-- own module (tide.connectors.kafka.source, ...); this one gathers their
-- descriptors under the name `kafka`, as tide.runtime expects of a
-- connector module.
--
-- @module tide.connectors.kafka

local source = require "tide.connectors.kafka.source"
-- The sink (connectors/kafka/sink.lua) is added here by its own change,
-- with `local sink = require "tide.connectors.kafka.sink"` and
-- `sinks = sink.sinks` below.

return { sources = source.sources, sinks = {} }
