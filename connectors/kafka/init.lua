--- The Kafka connectors (issue 14), over librdkafka (core/kafka.c):
-- `read_stream("kafka", ...)` is connectors/kafka/source.lua, and
-- `write_stream("kafka", ...)` connectors/kafka/sink.lua. Each part is its
-- own module (tide.connectors.kafka.source, ...); this one gathers their
-- descriptors under the name `kafka`, as tide.runtime expects of a
-- connector module.
--
-- @module tide.connectors.kafka

local source = require "tide.connectors.kafka.source"
local sink = require "tide.connectors.kafka.sink"

return { sources = source.sources, sinks = sink.sinks }
