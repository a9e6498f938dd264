-- postgres: page views into a live PostgreSQL table. A reference table of
-- pages (page -> section) is written with f:write; the stream of views is
-- joined with it as read back by tide.read("postgres") (a stream-static
-- join), counted per section and minute, and upserted into
-- section_views (update mode, exactly-once); the table is read back at
-- the end.
--
--    bin/tide run examples/postgres/pipeline.lua
--
-- With TIDE_PG_CONNINFO set (a libpq connection string) it uses that
-- server and its tables pages and section_views (created when missing,
-- their rows replaced); else it starts a throwaway PostgreSQL 15 server in a
-- temporary directory (Debian's postgresql-15, unix socket only) and stops
-- it at the end.
local tide = require "tide"

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

local conninfo, server = os.getenv("TIDE_PG_CONNINFO"), nil
if not conninfo or conninfo == "" then
  server = dofile(here .. "/../../spec/pg_server.lua").start()
  conninfo = server.conninfo
end

local ok, err = pcall(function()
  -- the reference table, from a static frame (replaced on each run)
  tide.from_rows({
    { page = "/", section = "home" }, { page = "/pricing", section = "home" },
    { page = "/docs", section = "docs" }, { page = "/docs/guide", section = "docs" },
    { page = "/blog", section = "blog" }, { page = "/blog/pg", section = "blog" },
  }, "page string, section string"):write("postgres", { conninfo = conninfo, table = "pages",
    create_table = true, mode = "complete" })

  local pages = tide.read("postgres", { conninfo = conninfo, query = "SELECT page, section FROM pages" })
  local views = tide.read_stream("file", { path = here .. "/views.jsonl", format = "json",
                                           schema = "ts timestamp, user string, page string" })
  local q = views:join(pages, "page")
    :group_by(tide.window("ts", "1 minute"), "section")
    :agg { "count(*) AS views", "count_distinct(user) AS users" }
    :write_stream("postgres", { conninfo = conninfo, table = "section_views", create_table = true,
                                mode = "update", trigger = "available_now" })
  q:await()

  tide.read("postgres", { conninfo = conninfo, query =
    "SELECT to_char(window_start, 'HH24:MI') AS minute, section, views, users FROM section_views " ..
    "ORDER BY window_start, section" }):show(100)
end)
if server then server:stop() end
if not ok then error(err, 0) end
