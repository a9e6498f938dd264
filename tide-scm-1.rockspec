rockspec_format = "3.0"
package = "tide"
version = "scm-1"
source = { url = "git+file://." }
-- tide is not published on luarocks.org yet: the rock is built from a
-- checkout (`make install`, offline), so it names no homepage it does not have.
description = {
  summary = "A streaming engine for Lua: durable topics, schemas, columnar batches, exactly-once queries",
  detailed = [[
tide is a streaming engine for people who write Lua. A C core does the heavy,
exact work: durable segment-based topics with a schema registry, columnar
batches, SQL-like expressions, hash aggregation with Spark's event-time windows,
joins, state in LMDB and the micro-batch protocol that gives exactly-once
results. Users describe sources, transformations, windows and sinks in Lua
scripts, a REPL that keeps queries running while you type, or the `tide`
command line. One process, one libuv event loop, on one machine.
]],
  license = "MIT",
  labels = { "streaming", "stream-processing", "database", "lmdb", "libuv" },
}
-- Only Lua itself: the C libraries come from Debian packages (see README),
-- and lua-cjson is a Debian module, not a rock (TOOLCHAIN.md).
dependencies = { "lua >= 5.4, < 5.5" }
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  LMDB = { header = "lmdb.h", library = "lmdb" },
  ZSTD = { header = "zstd.h", library = "zstd" },
  READLINE = { header = "readline/readline.h", library = "readline" },
  -- the postgres connector (Debian libpq-dev: the header is under postgresql/)
  LIBPQ = { header = "postgresql/libpq-fe.h", library = "pq" },
  HTTP_PARSER = { header = "http_parser.h", library = "http_parser" },
  -- the Kafka connectors (Debian librdkafka-dev)
  RDKAFKA = { header = "librdkafka/rdkafka.h", library = "rdkafka" },
}
build = {
  type = "builtin",
  modules = {
    ["tide.cli"] = "lua/tide/cli.lua",
    ["tide.connector"] = "lua/tide/connector.lua",
    ["tide.errors"] = "lua/tide/errors.lua",
    ["tide.exec"] = "lua/tide/exec.lua",
    ["tide.frame"] = "lua/tide/frame.lua",
    ["tide"] = "lua/tide/init.lua",
    ["tide.plan"] = "lua/tide/plan.lua",
    ["tide.process"] = "lua/tide/process.lua",
    ["tide.query"] = "lua/tide/query.lua",
    ["tide.scaleout"] = "lua/tide/scaleout.lua",
    ["tide.topology"] = "lua/tide/topology.lua",
    ["tide.repl"] = "lua/tide/repl.lua",
    ["tide.runtime"] = "lua/tide/runtime.lua",
    ["tide.schema"] = "lua/tide/schema.lua",
    ["tide.session"] = "lua/tide/session.lua",
    ["tide.stateful"] = "lua/tide/stateful.lua",
    ["tide.stream_join"] = "lua/tide/stream_join.lua",
    ["tide.ui"] = "lua/tide/ui.lua",
    ["tide.store"] = "lua/tide/store.lua",
    ["tide.util"] = "lua/tide/util.lua",
    ["tide.connectors.console"] = "connectors/console.lua",
    ["tide.connectors.file"] = "connectors/file.lua",
    ["tide.connectors.foreach"] = "connectors/foreach.lua",
    ["tide.connectors.kafka"] = "connectors/kafka/init.lua",
    ["tide.connectors.kafka.source"] = "connectors/kafka/source.lua",
    ["tide.connectors.kafka.sink"] = "connectors/kafka/sink.lua",
    ["tide.connectors.memory"] = "connectors/memory.lua",
    ["tide.connectors.postgres"] = "connectors/postgres.lua",
    ["tide.connectors.rate"] = "connectors/rate.lua",
    ["tide.connectors.socket"] = "connectors/socket.lua",
    ["tide.connectors.topic"] = "connectors/topic.lua",
    -- every lua/tide/*.lua, connectors/*.lua (as tide.connectors.<name>) and
    -- core/*.c belongs here: spec/rockspec_spec.lua checks it
    ["tide.core"] = {
      sources = {
        "core/agg.c", "core/batch.c", "core/catalog.c", "core/ckpt.c", "core/crc32c.c", "core/csv.c", "core/decode.c",
        "core/fileread.c",
        "core/err.c", "core/expr.c", "core/http.c", "core/join.c", "core/json.c", "core/jsonl.c", "core/kafka.c",
        "core/kafka_sink.c", "core/kgroup.c", "core/loop.c", "core/pg.c", "core/pool.c", "core/rate.c",
        "core/registry.c", "core/repart.c", "core/scan.c", "core/schema.c", "core/seg.c", "core/session.c", "core/sjoin.c", "core/sort.c",
        "core/store.c", "core/tier.c", "core/ts.c", "core/vec.c", "core/window.c", "core/l_agg.c", "core/l_batch.c",
        "core/l_ckpt.c", "core/l_core.c", "core/l_decode.c", "core/l_expr.c", "core/l_fs.c", "core/l_http.c",
        "core/l_kafka.c", "core/l_kafka_sink.c", "core/l_kgroup.c", "core/l_loop.c", "core/l_ops.c", "core/l_pg.c",
        "core/l_pool.c", "core/l_readline.c", "core/l_repart.c", "core/l_schema.c", "core/l_session.c", "core/l_sjoin.c",
        "core/l_store.c", "core/l_tide.c", "core/l_udf.c",
      },
      defines = { "_GNU_SOURCE" },
      incdirs = { "core", "$(LIBUV_INCDIR)", "$(LMDB_INCDIR)", "$(ZSTD_INCDIR)", "$(READLINE_INCDIR)",
        "$(HTTP_PARSER_INCDIR)", "$(LIBPQ_INCDIR)/postgresql", "$(RDKAFKA_INCDIR)" },
      libdirs = { "$(LIBUV_LIBDIR)", "$(LMDB_LIBDIR)", "$(ZSTD_LIBDIR)", "$(READLINE_LIBDIR)",
        "$(HTTP_PARSER_LIBDIR)", "$(LIBPQ_LIBDIR)", "$(RDKAFKA_LIBDIR)" },
      libraries = { "uv", "lmdb", "zstd", "readline", "m", "pq", "http_parser", "rdkafka" },
    },
  },
  -- the dashboard's files, next to tide/ui.lua (tide.ui serves them)
  install = { bin = { tide = "bin/tide" }, lua = { ["tide.ui.index"] = "lua/tide/ui/index.html",
    ["tide.ui.app"] = "lua/tide/ui/app.js", ["tide.ui.style"] = "lua/tide/ui/style.css" } },
}
test = { type = "command", command = "make test" }
