rockspec_format = "3.0"
package = "tide"
version = "scm-1"
source = { url = "git+file://." }
description = {
  summary = "A streaming engine for Lua: durable topics, schemas, columnar batches, exactly-once queries",
  homepage = "https://example.invalid/tide",
  license = "MIT",
}
-- Only Lua itself: the C libraries come from Debian packages (see README),
-- and lua-cjson is a Debian module, not a rock (TOOLCHAIN.md).
dependencies = { "lua >= 5.4, < 5.5" }
external_dependencies = {
  LIBUV = { header = "uv.h", library = "uv" },
  LMDB = { header = "lmdb.h", library = "lmdb" },
  CJSON = { header = "cjson/cJSON.h", library = "cjson" },
  ZSTD = { header = "zstd.h", library = "zstd" },
}
build = {
  type = "builtin",
  modules = {
    ["tide"] = "lua/tide/init.lua",
    ["tide.store"] = "lua/tide/store.lua",
    ["tide.util"] = "lua/tide/util.lua",
    ["tide.schema"] = "lua/tide/schema.lua",
    ["tide.cli"] = "lua/tide/cli.lua",
    ["tide.core"] = {
      sources = {
        "core/batch.c", "core/catalog.c", "core/crc32c.c", "core/err.c", "core/json.c", "core/loop.c",
        "core/registry.c", "core/schema.c", "core/seg.c", "core/store.c", "core/tier.c",
        "core/l_batch.c", "core/l_core.c", "core/l_loop.c", "core/l_store.c",
      },
      defines = { "_GNU_SOURCE" },
      incdirs = { "core", "$(LIBUV_INCDIR)", "$(LMDB_INCDIR)", "$(CJSON_INCDIR)", "$(ZSTD_INCDIR)" },
      libdirs = { "$(LIBUV_LIBDIR)", "$(LMDB_LIBDIR)", "$(CJSON_LIBDIR)", "$(ZSTD_LIBDIR)" },
      libraries = { "uv", "lmdb", "cjson", "zstd", "m" },
    },
  },
  install = { bin = { tide = "bin/tide" } },
}
test = { type = "command", command = "make test" }
