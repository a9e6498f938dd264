--- See it run: a Prometheus endpoint, a JSON API and a live dashboard.
--
--    local ui = tide.ui{ listen = "127.0.0.1:4040" }   -- or `tide run --ui 4040`, or `.ui` in the REPL
--    print(ui:url())                                   --> http://127.0.0.1:4040/
--
-- The server (core/http.c) runs on the process's one event loop, so it
-- answers while the loop runs: while queries run under `tide.run`,
-- `await`, `process_all_available`, `tide run` or the REPL. It serves
-- reads only (GET and HEAD): nothing it answers changes a query.
--
--   GET /                     the dashboard (assets from lua/tide/ui/, installed with the rock)
--   GET /metrics              Prometheus text format 0.0.4
--   GET /api/queries          every query seen: status and recent progress
--   GET /api/queries/<id>     one query (by id or name), with all its kept progress
--   GET /api/topics           the store's topics: partitions, offsets, sizes, schema versions
--
-- What it reports comes from the queries' public methods and their
-- progress reports (tide.on_progress): this module listens from the time
-- `tide` is loaded, so counters (`*_total`) count every batch of the
-- process's queries. Topic figures are read from the UI's store when asked.
--
-- @module tide.ui

local core = require "tide.core"
local util = require "tide.util"
local process = require "tide.process"
local store = require "tide.store"
local query = require "tide.query"

local M = {}

local format, concat = string.format, table.concat
local json = util.json_encode

-- ------------------------------------------------------------------------
-- What the queries did (every query of the process, from its progress)
-- ------------------------------------------------------------------------

-- Batch duration histogram buckets, in seconds (Prometheus' defaults).
local BUCKETS = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
local KEEP_QUERIES = 100 -- terminated queries are forgotten beyond this many

local records = {} -- in the order queries were first seen
local by_query = {}

local function record_of(q)
  local r = by_query[q]
  if r then return r end
  r = { q = q, batches = 0, input_rows = 0, dropped_by_watermark = 0, bad_dropped = 0, bad_dead_letter = 0,
    duration_sum = 0, buckets = {} }
  for i = 1, #BUCKETS do r.buckets[i] = 0 end
  by_query[q] = r
  records[#records + 1] = r
  -- forget the oldest terminated queries beyond the bound
  local i = 1
  while #records > KEEP_QUERIES and i <= #records do
    if not records[i].q:is_active() then
      by_query[records[i].q] = nil
      table.remove(records, i)
    else
      i = i + 1
    end
  end
  return r
end

local function on_progress(q, p)
  local r = record_of(q)
  r.batches = r.batches + 1
  r.input_rows = r.input_rows + (p.num_input_rows or 0)
  local secs = (p.duration_ms and p.duration_ms.total or 0) / 1000
  r.duration_sum = r.duration_sum + secs
  for i, le in ipairs(BUCKETS) do
    if secs <= le then r.buckets[i] = r.buckets[i] + 1 end
  end
  for _, op in ipairs(p.state_operators or {}) do
    r.dropped_by_watermark = r.dropped_by_watermark + (op.num_rows_dropped_by_watermark or 0)
  end
  for _, s in ipairs(p.sources or {}) do
    r.bad_dropped = r.bad_dropped + (s.dropped or 0)
    r.bad_dead_letter = r.bad_dead_letter + (s.dead_letter or 0)
  end
end

query.on_progress(on_progress)

-- The records of every query seen, and of the active ones not yet seen.
local function all_records()
  for _, q in ipairs(query.queries()) do record_of(q) end
  return records
end

-- ------------------------------------------------------------------------
-- The store's topics
-- ------------------------------------------------------------------------

-- The UI's store: the one given, else the default store when its
-- directory exists (the UI never creates one).
local function ui_store(self)
  if self._store then return store.is_open(self._store) and self._store or nil end
  local dir = store.default_dir()
  local st = core.stat(dir)
  if not st or st.mode ~= "directory" then return nil end
  local ok, s = pcall(store.shared, dir)
  return ok and s or nil
end

local function topics_of(db)
  local out = {}
  if not db then return out end
  for _, name in ipairs(db:topics()) do
    local t = db:topic(name)
    local info, stats = t:info(), t:stats()
    out[#out + 1] = { name = name, partitions = stats.partitions, records = stats.records, bytes = stats.bytes,
      stored_bytes = stats.stored_bytes, segments = stats.segments, schema_version = info.schema_version,
      schema_versions = db:schema_versions(name), ddl = info.ddl, created = info.created }
  end
  return out
end

-- Per partition lag of a topic source: the topic's end offsets (in the
-- UI's store) minus the offsets processed; of a source that reports its
-- own (`lag`, topic -> partition -> offsets: Kafka), that, with the topic.
-- nil for other sources.
local function source_lag(topics, src)
  -- a Kafka source's lag is per topic and partition ({ topic = { ["0"] = n } });
  -- other sources' own counts ({ records = n, bytes = n, files = n }) are
  -- read by the caller
  if type(src.lag) == "table" and type(select(2, next(src.lag))) == "table" then
    local lag = {}
    for t, parts in pairs(src.lag) do
      for p, n in pairs(parts) do lag[#lag + 1] = { topic = t, partition = tonumber(p), lag = n } end
    end
    table.sort(lag, function(a, b)
      if a.topic ~= b.topic then return a.topic < b.topic end
      return a.partition < b.partition
    end)
    return lag
  end
  local name = type(src.description) == "string" and src.description:match("^TopicSource%[(.+)%]$")
  local t = name and topics[name]
  if not t or type(src.end_offset) ~= "table" then return nil end
  local lag = {}
  for i, o in ipairs(t.partitions) do
    local done = math.tointeger(src.end_offset[i])
    if not done then return nil end
    lag[i] = { partition = o.partition, lag = math.max(0, o.latest - done) }
  end
  return lag
end

-- The lag counts a source may report, and their metrics.
local LAG_METRICS = {
  { "records", "tide_source_lag_records", "Records a source could give and has not processed yet" },
  { "bytes", "tide_source_lag_bytes", "Bytes a source could read and has not processed yet" },
  { "files", "tide_source_lag_files", "Files holding bytes a source has not processed yet" },
}

-- ------------------------------------------------------------------------
-- /metrics: Prometheus text exposition format 0.0.4
-- ------------------------------------------------------------------------

local function esc(v)
  return (tostring(v):gsub("[\\\"\n]", { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" }))
end

local function num(v)
  if math.type(v) == "integer" then return tostring(v) end
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  local short = format("%.15g", v)
  return tonumber(short) == v and short or format("%.17g", v)
end

-- A metrics text under construction: families in order, each with its
-- HELP and TYPE once and its samples.
local function exposition()
  local fams, order = {}, {}
  local E = {}
  function E.add(name, typ, help, labels, value, suffix)
    local f = fams[name]
    if not f then
      f = { lines = { format("# HELP %s %s", name, help), format("# TYPE %s %s", name, typ) } }
      fams[name] = f
      order[#order + 1] = name
    end
    local ls = {}
    for _, kv in ipairs(labels) do ls[#ls + 1] = format('%s="%s"', kv[1], esc(kv[2])) end
    f.lines[#f.lines + 1] = format("%s%s{%s} %s", name, suffix or "", concat(ls, ","), num(value))
  end
  function E.text()
    local out = {}
    for _, name in ipairs(order) do out[#out + 1] = concat(fams[name].lines, "\n") end
    return concat(out, "\n") .. "\n"
  end
  return E
end

local function with(labels, k, v)
  local out = { table.unpack(labels) }
  out[#out + 1] = { k, v }
  return out
end

local function metrics_text(self)
  local E = exposition()
  local db = ui_store(self)
  local topics = {}
  local ok, list = pcall(topics_of, db)
  if ok then
    for _, t in ipairs(list) do topics[t.name] = t end
  end
  for _, r in ipairs(all_records()) do
    local q = r.q
    local L = { { "query", q:name() or q:id() }, { "id", q:id() } }
    local p = q:last_progress()
    E.add("tide_query_active", "gauge", "1 while the query runs, 0 once it terminated", L, q:is_active() and 1 or 0)
    E.add("tide_query_batches_total", "counter", "Micro-batches committed", L, r.batches)
    E.add("tide_query_input_rows_total", "counter", "Rows read from the sources", L, r.input_rows)
    E.add("tide_query_input_rows_per_second", "gauge", "Input rate of the last batch (rows since the trigger before)",
      L, p and p.input_rows_per_second or 0)
    E.add("tide_query_processed_rows_per_second", "gauge", "Processing rate of the last batch", L,
      p and p.processed_rows_per_second or 0)
    local hname = "tide_query_batch_duration_seconds"
    for i, le in ipairs(BUCKETS) do
      E.add(hname, "histogram", "Duration of a micro-batch, from planning to commit", with(L, "le", num(le)),
        r.buckets[i], "_bucket")
    end
    E.add(hname, "histogram", "", with(L, "le", "+Inf"), r.batches, "_bucket")
    E.add(hname, "histogram", "", L, r.duration_sum, "_sum")
    E.add(hname, "histogram", "", L, r.batches, "_count")
    E.add("tide_query_rows_dropped_by_watermark_total", "counter", "Late rows dropped by stateful operators", L,
      r.dropped_by_watermark)
    E.add("tide_query_bad_records_total", "counter", "Records the sources could not decode, by what became of them",
      with(L, "action", "dropped"), r.bad_dropped)
    E.add("tide_query_bad_records_total", "counter", "", with(L, "action", "dead_letter"), r.bad_dead_letter)
    if p then
      E.add("tide_query_last_batch_id", "gauge", "Id of the last committed batch", L, p.batch_id)
      E.add("tide_query_checkpoint_commit_seconds", "gauge", "Commit phase of the last batch (state, logs, sources)",
        L, (p.duration_ms.commit or 0) / 1000)
      if p.event_time and p.event_time.watermark then
        E.add("tide_query_watermark_seconds", "gauge", "Event-time watermark (seconds since the epoch)", L,
          p.event_time.watermark / 1000)
      end
      for k, op in ipairs(p.state_operators or {}) do
        local OL = with(L, "operator", format("%d:%s", k, op.name))
        E.add("tide_query_state_rows", "gauge", "Rows held in the state of a stateful operator", OL,
          op.num_rows_total or 0)
        E.add("tide_query_state_bytes", "gauge", "Bytes held in the state of a stateful operator", OL,
          op.memory_bytes or 0)
      end
      -- other sources say their lag themselves (connectors/README.md: lag):
      -- now while the query runs, else as of its last batch
      local live = q:is_active() and q:_source_lags() or {}
      for k, s in ipairs(p.sources or {}) do
        local SL = with(L, "source", format("%d:%s", k, s.description))
        local lag = source_lag(topics, s)
        for _, pl in ipairs(lag or {}) do
          local PL = pl.topic and with(SL, "topic", pl.topic) or SL
          E.add("tide_source_lag_records", "gauge", "Records a source could give and has not processed yet",
            with(PL, "partition", pl.partition), pl.lag)
        end
        local own = not lag and (live[k] or s.lag)
        if type(own) == "table" then
          for _, m in ipairs(LAG_METRICS) do
            local v = math.tointeger(own[m[1]])
            if v then E.add(m[2], "gauge", m[3], SL, v) end
          end
        end
      end
    end
  end
  for _, t in ipairs(list or {}) do
    local L = { { "topic", t.name } }
    for _, o in ipairs(t.partitions) do
      E.add("tide_topic_end_offset", "gauge", "Next offset to be written, per partition", with(L, "partition",
        o.partition), o.latest)
      E.add("tide_topic_start_offset", "gauge", "First offset still held, per partition", with(L, "partition",
        o.partition), o.earliest)
    end
    E.add("tide_topic_bytes", "gauge", "Uncompressed bytes of the topic's segments", L, t.bytes)
    E.add("tide_topic_stored_bytes", "gauge", "Bytes the topic's segments take where they live", L, t.stored_bytes)
    E.add("tide_topic_segments", "gauge", "Segments of the topic", L, t.segments)
  end
  local st = self._srv:stats()
  E.add("tide_ui_requests_total", "counter", "Requests answered by the UI's handler", {}, st.requests)
  E.add("tide_ui_rejected_requests_total", "counter", "Bad, oversized or slow requests the UI answered 4xx/503", {},
    st.rejected)
  return E.text()
end

-- ------------------------------------------------------------------------
-- /api: JSON
-- ------------------------------------------------------------------------

local RECENT = 120 -- progress reports per query in /api/queries (the charts' window)

local function query_json(r, recent)
  local q = r.q
  local list = q:recent_progress()
  if recent and #list > recent then list = table.move(list, #list - recent + 1, #list, 1, {}) end
  local st = q:status()
  return { id = q:id(), name = q:name(), active = q:is_active(), status = st.message,
    exception = q:exception(), watermark = q:watermark(), batches = r.batches, input_rows = r.input_rows,
    recent_progress = setmetatable(list, { __jsontype = "array" }) }
end

local function api_queries()
  local out = {}
  for _, r in ipairs(all_records()) do out[#out + 1] = query_json(r, RECENT) end
  return { now = core.time_now(), queries = setmetatable(out, { __jsontype = "array" }) }
end

-- ------------------------------------------------------------------------
-- The server
-- ------------------------------------------------------------------------

-- The dashboard's files, next to this module (lua/tide/ui/ in the checkout
-- and in an installed rock).
local ASSETS = { ["/"] = { "index.html", "text/html; charset=utf-8" },
  ["/app.js"] = { "app.js", "text/javascript; charset=utf-8" },
  ["/style.css"] = { "style.css", "text/css; charset=utf-8" } }

local function asset_dir()
  local src = debug.getinfo(1, "S").source
  return (src:sub(2):gsub("[^/]*$", "")) .. "ui/"
end

local function load_assets()
  local dir, out = asset_dir(), {}
  for path, a in pairs(ASSETS) do
    local f, msg = io.open(dir .. a[1], "rb")
    if not f then error("tide.ui: cannot read the dashboard's " .. a[1] .. ": " .. msg, 0) end
    out[path] = { body = f:read("a"), type = a[2] }
    f:close()
  end
  return out
end

local JSON = "application/json; charset=utf-8"

local function not_found(what) return 404, JSON, json({ error = what }) end

local function route(self, _method, url)
  local path = url:match("^[^?#]*")
  local a = self._assets[path]
  if a then return 200, a.type, a.body end
  if path == "/metrics" then return 200, "text/plain; version=0.0.4; charset=utf-8", metrics_text(self) end
  if path == "/api/queries" then return 200, JSON, json(api_queries()) end
  if path == "/api/topics" then
    return 200, JSON, json({ now = core.time_now(), topics = setmetatable(topics_of(ui_store(self)),
      { __jsontype = "array" }) })
  end
  local id = path:match("^/api/queries/([^/]+)$")
  if id then
    id = id:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    for _, r in ipairs(all_records()) do
      if r.q:id() == id or r.q:name() == id then return 200, JSON, json(query_json(r)) end
    end
    return not_found(format("no query '%s'", id))
  end
  return not_found(format("no page '%s' (try /, /metrics, /api/queries, /api/topics)", path))
end

local UI = {}
UI.__index = UI

--- The port the UI listens on.
function UI:port() return self._srv:port() end

--- The dashboard's URL, `http://HOST:PORT/`.
function UI:url()
  local host = self._host:find(":", 1, true) and "[" .. self._host .. "]" or self._host
  return format("http://%s:%d/", host, self._srv:port())
end

--- The server's counters: accepted, open, requests, rejected, timeouts, errors.
function UI:stats() return self._srv:stats() end

--- true once closed.
function UI:is_closed() return self._srv:is_closed() end

--- Stop serving (idempotent).
function UI:close()
  if not self._srv:is_closed() then self._srv:close() end
end

function UI:__tostring()
  return self._srv:is_closed() and "tide ui (closed)" or "tide ui " .. self:url()
end

--- Parse `[HOST:]PORT` (`4040`, `:4040`, `0.0.0.0:4040`, `[::1]:4040`);
-- returns host, port or nil, message.
function M.parse_listen(s)
  if math.type(s) == "integer" then s = tostring(s) end
  if type(s) ~= "string" then return nil, "expected [HOST:]PORT, got " .. type(s) end
  local host, port = s:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = s:match("^(.*):(%d+)$") end
  if not host then host, port = "", s:match("^(%d+)$") end
  port = tonumber(port)
  if not port or port > 65535 then return nil, format("expected [HOST:]PORT with PORT 0..65535, got '%s'", s) end
  if host == "" then host = "127.0.0.1" end
  return host, math.tointeger(port)
end

local OPTIONS = { listen = "any", store = "any", timeout = "duration", max_request = { type = "integer", min = 256 },
  max_connections = { type = "integer", min = 1 } }

--- Start the UI: `tide.ui{ listen = "127.0.0.1:4040" }`.
-- Options: `listen` (`[HOST:]PORT`, default `127.0.0.1:4040`; loopback
-- unless a host is given; port 0 picks a free one), `store` (the store
-- whose topics it shows; default: the default store, when it exists),
-- `timeout` (to receive a request and to send its answer, a duration,
-- default 10s), `max_request` (bytes of a request head, default 16384),
-- `max_connections` (default 64).
-- @return the UI (`:url()`, `:port()`, `:stats()`, `:close()`)
-- @raise on bad options, and when it cannot listen (`tide.ui: cannot listen on HOST:PORT: EADDRINUSE: ...`)
function M.start(opts)
  if opts ~= nil and type(opts) ~= "table" then error("tide.ui: expected an options table, got " .. type(opts), 2) end
  local o = util.check_options(opts, OPTIONS, "tide.ui", 3)
  local host, port = M.parse_listen(o.listen or "127.0.0.1:4040")
  if not host then error("tide.ui: option 'listen': " .. port, 2) end
  if o.store ~= nil and not store.is_store(o.store) then
    error("tide.ui: option 'store' must be a store (tide.open(dir))", 2)
  end
  local timeout = o.timeout
  local self = setmetatable({ _host = host, _store = o.store, _assets = load_assets() }, UI)
  local srv, msg = core.http_listen(process.loop(), host, port, function(method, url)
    return route(self, method, url)
  end, { timeout_ms = timeout, max_request = o.max_request, max_connections = o.max_connections })
  if not srv then error(format("tide.ui: cannot listen on %s:%d: %s", host, port, msg), 2) end
  self._srv = srv
  return self
end

return M
