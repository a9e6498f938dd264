-- tide.ui (lua/tide/ui.lua, core/http.c): the metrics endpoint, the JSON
-- API and the dashboard, asked by real clients over loopback: Python's
-- urllib and Debian's Prometheus client parser (spec/ui_http.py), raw
-- sockets for bad requests, and headless Chromium for the dashboard.
local support = require "support"
local util = require "tide.util"

-- Neither gets the sanitizer runtime `make asan` preloads for lua5.4 (a
-- preloaded ASan makes Chromium spin); a browser that hangs is killed.
local PY = "env -u LD_PRELOAD /usr/bin/python3 " .. support.ROOT .. "/spec/ui_http.py"
local CHROMIUM = "env -u LD_PRELOAD timeout 60 chromium --headless=new --no-sandbox --disable-gpu --hide-scrollbars" ..
  " --window-size=1280,860"

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- stdout and stderr of a shell command.
local function run(cmd)
  local _, out, err = support.run_cmd(cmd)
  return { stdout = out, stderr = err }
end

local function get(url)
  return util.json_decode(run(PY .. " get " .. sh_quote(url)).stdout)
end

-- The samples of /metrics as the Prometheus parser reads them, by name and
-- then by the labels' text ("device=a,query=q").
local function metrics(url)
  local res = run(PY .. " metrics " .. sh_quote(url .. "metrics"))
  assert(res.stdout:sub(1, 1) == "[", "the Prometheus parser failed: " .. res.stdout .. res.stderr)
  local out, types = {}, {}
  for _, s in ipairs(util.json_decode(res.stdout)) do
    local name, labels, value, typ = s[1], s[2], s[3], s[4]
    local keys = {}
    for k, v in pairs(labels) do
      if k ~= "id" then keys[#keys + 1] = k .. "=" .. v end
    end
    table.sort(keys)
    out[name] = out[name] or {}
    out[name][table.concat(keys, ",")] = value
    types[name] = typ
  end
  return out, types
end

local function until_true(what, fn)
  local deadline = os.time() + 30
  while true do
    local v = fn()
    if v then return v end
    if os.time() > deadline then error("gave up waiting for " .. what) end
    support.sleep_ms(50)
  end
end

local PIPELINE = [[
local tide = require "tide"
local db = tide.default_store()
db:create_topic("events", { schema = "ts timestamp, device string, signal int?", partitions = 2 })
local rows = {}
local t0 = os.time() * 1000 - 120000
for i = 1, 50 do rows[i] = { ts = t0 + i * 2000, device = i % 3 == 0 and "a" or "b", signal = i } end
db:topic("events"):append(rows)
db:read_stream("events", { max_records_per_trigger = 4 })
  :with_watermark("ts", "10 seconds")
  :group_by(tide.window("ts", "5 seconds"), "device"):agg{ n = "count(*)" }
  :write_stream("memory", { name = "counts", mode = "update", trigger = "20 ms", checkpoint = arg[1] })
]]

describe("tide run --ui", function()
  local dir, script, log, err, ck, pid, url

  setup(function()
    dir = support.tmpname()
    os.execute("mkdir -p " .. dir)
    script, log, err, ck = dir .. "/pipeline.lua", dir .. "/progress.jsonl", dir .. "/stderr", dir .. "/ck"
    support.write_file(script, PIPELINE)
    local p = io.popen(string.format("cd %s && %s/bin/tide --data %s/data run --quiet --ui 127.0.0.1:0 " ..
      "--log-progress %s %s %s >/dev/null 2>%s & echo $!", dir, support.ROOT, dir, log, script, ck, err))
    pid = p:read("l")
    p:close()
    url = until_true("the ui's URL on stderr", function()
      return support.read_file(err):match("tide: ui at (http://%S+)")
    end)
  end)

  teardown(function()
    if pid then os.execute("kill " .. pid .. " 2>/dev/null; sleep 0.2") end
    os.execute("rm -rf " .. dir)
  end)

  -- The progress reports logged so far.
  local function reports()
    local out = {}
    for line in support.read_file(log):gmatch("[^\n]+") do out[#out + 1] = util.json_decode(line) end
    return out
  end

  it("serves /metrics in the Prometheus format, with the numbers of the query's progress reports", function()
    local m, types, ps
    -- all 50 rows processed, and no batch between the scrape and the log's read
    until_true("a scrape that matches the progress log", function()
      m, types = metrics(url)
      ps = reports()
      local rows = 0
      for _, p in ipairs(ps) do rows = rows + p.num_input_rows end
      local batches = m.tide_query_batches_total and m.tide_query_batches_total["query=counts"]
      return rows == 50 and batches == #ps
    end)
    local last = ps[#ps]
    assert.equal(50, m.tide_query_input_rows_total["query=counts"])
    assert.equal("counter", types.tide_query_input_rows_total)
    assert.equal(last.batch_id, m.tide_query_last_batch_id["query=counts"])
    assert.equal(1, m.tide_query_active["query=counts"])
    assert.equal(last.event_time.watermark / 1000, m.tide_query_watermark_seconds["query=counts"])
    local op = last.state_operators[1]
    assert.equal(op.num_rows_total, m.tide_query_state_rows["operator=1:aggregate,query=counts"])
    assert.equal(op.memory_bytes, m.tide_query_state_bytes["operator=1:aggregate,query=counts"])
    -- the histogram: every batch in the +Inf bucket and in _count, the sum of durations
    assert.equal("histogram", types.tide_query_batch_duration_seconds_count)
    assert.equal(#ps, m.tide_query_batch_duration_seconds_bucket["le=+Inf,query=counts"])
    assert.equal(#ps, m.tide_query_batch_duration_seconds_count["query=counts"])
    local sum = 0
    for _, p in ipairs(ps) do sum = sum + p.duration_ms.total / 1000 end
    assert.near(sum, m.tide_query_batch_duration_seconds_sum["query=counts"], 1e-6)
    -- lag per partition of the topic source: all processed
    assert.equal(0, m.tide_source_lag_records["partition=0,query=counts,source=1:TopicSource[events]"])
    assert.equal(0, m.tide_source_lag_records["partition=1,query=counts,source=1:TopicSource[events]"])
    -- the store's topic
    local ends = m.tide_topic_end_offset
    assert.equal(50, ends["partition=0,topic=events"] + ends["partition=1,topic=events"])
    assert.is_true(m.tide_topic_bytes["topic=events"] > 0)
    assert.is_true(m.tide_topic_segments["topic=events"] >= 1)
    assert.equal(0, m.tide_query_bad_records_total["action=dropped,query=counts"])
  end)

  it("serves the queries and the topics as JSON", function()
    local r = get(url .. "api/queries")
    assert.equal(200, r.status)
    assert.equal("application/json; charset=utf-8", r.type)
    local body = util.json_decode(r.body)
    assert.equal(1, #body.queries)
    local q = body.queries[1]
    assert.equal("counts", q.name)
    assert.is_true(q.active)
    assert.is_true(#q.recent_progress > 0)
    assert.equal(q.recent_progress[#q.recent_progress].batch_id, q.batches - 1)

    for _, key in ipairs { q.id, "counts" } do
      local one = get(url .. "api/queries/" .. key)
      assert.equal(200, one.status)
      assert.equal(q.id, util.json_decode(one.body).id)
    end
    local missing = get(url .. "api/queries/nope")
    assert.equal(404, missing.status)
    assert.same({ error = "no query 'nope'" }, util.json_decode(missing.body))

    local t = util.json_decode(get(url .. "api/topics").body).topics
    assert.equal(1, #t)
    assert.equal("events", t[1].name)
    assert.equal(50, t[1].records)
    assert.same({ 1 }, t[1].schema_versions)
    assert.equal(2, #t[1].partitions)
    assert.equal("ts timestamp, device string, signal int?", t[1].ddl)
  end)

  it("draws the dashboard in headless Chromium: the query, charts with a point per batch, the topics", function()
    local profile = dir .. "/chromium"
    local batches = util.json_decode(get(url .. "api/queries").body).queries[1].batches
    local res = run(string.format("%s --user-data-dir=%s --virtual-time-budget=3000 --dump-dom %s",
      CHROMIUM, profile, url))
    local dom = res.stdout
    assert.matches('<span id="state" class="state live">live</span>', dom, 1, true)
    assert.matches("<td>counts</td>", dom, 1, true)
    assert.matches('<tr data-topic="events"><td>events</td><td>p0: 0..', dom, 1, true)
    local series = {}
    for name, n in dom:gmatch('data%-series="([^"]+)" data%-points="(%d+)"') do series[name] = tonumber(n) end
    assert.equal(math.min(batches, 120), series["input rows/s"])
    assert.equal(math.min(batches, 120), series["processed rows/s"])
    assert.equal(math.min(batches, 120), series["total"])
    assert.is_true(series["rows"] > 0)
    assert.is_true(series["delay"] > 0)

    os.execute("mkdir -p " .. support.ROOT .. "/build")
    local png = support.ROOT .. "/build/ui-dashboard.png"
    os.remove(png)
    run(string.format("%s --user-data-dir=%s --virtual-time-budget=3000 --screenshot=%s %s",
      CHROMIUM, profile, png, url))
    assert.equal("\137PNG\r\n\26\n", support.read_file(png):sub(1, 8))
  end)
end)

describe("tide.ui", function()
  local tide = require "tide"
  local process = require "tide.process"
  local dir, db, ui, ms, q, url

  before_each(function()
    dir = support.tmpname()
    db = tide.open(dir)
    ui = tide.ui{ listen = "127.0.0.1:0", store = db, timeout = "300 ms" }
    url = ui:url()
    ms = tide.memory_stream("k string, v int")
    q = ms:frame():group_by("k"):agg{ n = "count(*)" }:write_stream("memory", { name = "ui_counts", mode = "complete" })
  end)

  after_each(function()
    q:stop()
    ui:close()
    db:close()
    os.execute("rm -rf " .. dir)
  end)

  -- Start `args` of ui_http.py in the background; the returned function
  -- runs the loop (so the server answers) until the client is done and
  -- returns what it printed.
  local function client(args)
    local out = support.tmpname()
    os.execute(string.format("(%s %s > %s.part 2>&1; mv %s.part %s) &", PY, args, out, out, out))
    return function()
      local loop = process.loop()
      local tick = loop:timer(10, 10, function() end)
      local deadline = os.time() + 30
      while not support.exists(out) and os.time() <= deadline do loop:run("once") end
      tick:close()
      local text = support.read_file(out)
      os.remove(out)
      return text
    end
  end

  it("answers bad requests itself (400, 431, 408, 405) while its query goes on", function()
    ms:add{ { k = "a", v = 1 }, { k = "b", v = 2 } }
    q:process_all_available()
    local port = ui:port()
    local garbage = client("raw 127.0.0.1 " .. port .. " garbage")
    local big = client("raw 127.0.0.1 " .. port .. " bigheader")
    local slow = client("raw 127.0.0.1 " .. port .. " slow")
    local post = client("raw 127.0.0.1 " .. port .. " post")
    assert.equal("HTTP/1.1 400 Bad Request\n", garbage())
    assert.equal("HTTP/1.1 431 Request Header Fields Too Large\n", big())
    ms:add{ { k = "a", v = 3 } }
    q:process_all_available()
    assert.equal("HTTP/1.1 408 Request Timeout\n", slow())
    assert.equal("HTTP/1.1 405 Method Not Allowed\n", post())
    -- the query ran on, and the server still answers
    assert.equal(1, q:last_progress().num_input_rows)
    local good = client("get " .. url .. "api/queries/ui_counts")
    local r = util.json_decode(good())
    assert.equal(200, r.status)
    assert.equal(2, util.json_decode(r.body).batches)
    local st = ui:stats()
    assert.equal(4, st.rejected)
    assert.equal(1, st.timeouts)
    assert.equal(0, st.errors)
    assert.equal(0, st.open)
  end)

  it("exports the lag of memory and file sources, now while they run, as the parser reads it", function()
    local qs = {}
    finally(function() for _, x in ipairs(qs) do x:stop() end end)
    local function m_of()
      local text = client("metrics " .. url .. "metrics")()
      assert(text:sub(1, 1) == "[", "the Prometheus parser failed: " .. text)
      local out = {}
      for _, smp in ipairs(util.json_decode(text)) do
        local labels = smp[2]
        if labels.source then out[smp[1] .. " " .. labels.query .. " " .. labels.source] = smp[3] end
      end
      return out
    end
    -- every query runs its first batch, then waits an hour for the next
    -- trigger: the loop the scrapes run does not process what comes after
    local function start(f, name)
      local x = f:write_stream(function() end, { name = name, checkpoint = dir .. "/ck-" .. name, trigger = "1 hour" })
      qs[#qs + 1] = x
      local loop = process.loop()
      while not x:last_progress() do loop:run("once") end
      return x
    end
    -- memory: 2 rows processed, then 3 added and not yet processed
    local mem = tide.memory_stream("k string")
    mem:add{ { k = "a" }, { k = "b" } }
    local mq = start(mem:frame(), "ui_mem")
    mem:add{ { k = "c" }, { k = "d" }, { k = "e" } }
    -- a Lua source that says its lag
    local lua_src = tide.source { schema = "n int", description = "Counter", n = 2,
      latest_offset = function(self) return self.n end,
      get_batch = function(_, from, stop)
        local rows = {}
        for i = (from or 0) + 1, stop do rows[#rows + 1] = { n = i } end
        return rows
      end,
      lag = function(self, off) return { records = self.n - (off or 0) } end }
    start(tide.read_stream(lua_src), "ui_lua")
    lua_src.def.n = 7
    -- file: one file read, then another written and one grown
    local src = dir .. "/in"
    os.execute("mkdir -p " .. src)
    support.write_file(src .. "/a.jsonl", '{"n":1}\n')
    local fq = start(tide.read_stream("file", { path = src .. "/*.jsonl", schema = "n int" }), "ui_files")
    support.write_file(src .. "/b.jsonl", '{"n":2}\n{"n":3}\n')
    local f = io.open(src .. "/a.jsonl", "ab")
    f:write('{"n":4}\n')
    f:close()
    local m = m_of()
    assert.equal(3, m["tide_source_lag_records ui_mem 1:MemoryStream[" .. mem._id .. "]"])
    assert.equal(8 + 16, m["tide_source_lag_bytes ui_files 1:FileSource[" .. src .. "/*.jsonl]"])
    assert.equal(2, m["tide_source_lag_files ui_files 1:FileSource[" .. src .. "/*.jsonl]"])
    assert.equal(5, m["tide_source_lag_records ui_lua 1:Counter"])
    -- processed, the lag is 0, and each progress report carries it
    mq:process_all_available()
    fq:process_all_available()
    m = m_of()
    assert.equal(0, m["tide_source_lag_records ui_mem 1:MemoryStream[" .. mem._id .. "]"])
    assert.equal(0, m["tide_source_lag_bytes ui_files 1:FileSource[" .. src .. "/*.jsonl]"])
    assert.equal(0, m["tide_source_lag_files ui_files 1:FileSource[" .. src .. "/*.jsonl]"])
    assert.same({ records = 0 }, mq:last_progress().sources[1].lag)
    assert.same({ bytes = 0, files = 0 }, fq:last_progress().sources[1].lag)
    -- a stopped query's lag is that of its last report
    fq:stop()
    support.write_file(src .. "/c.jsonl", '{"n":5}\n')
    assert.equal(0, m_of()["tide_source_lag_bytes ui_files 1:FileSource[" .. src .. "/*.jsonl]"])
  end)

  it("answers 404 with a JSON error for what it does not serve", function()
    local r = util.json_decode(client("get " .. url .. "nothing/here")())
    assert.equal(404, r.status)
    assert.same({ error = "no page '/nothing/here' (try /, /metrics, /api/queries, /api/topics)" },
      util.json_decode(r.body))
  end)

  it("serves the dashboard's files from the rock, nothing from elsewhere", function()
    local page = util.json_decode(client("get " .. url)())
    assert.equal(200, page.status)
    assert.equal("text/html; charset=utf-8", page.type)
    for src in page.body:gmatch('src="([^"]+)"') do assert.equal("/", src:sub(1, 1)) end
    for href in page.body:gmatch('href="([^"]+)"') do assert.equal("/", href:sub(1, 1)) end
    local js = util.json_decode(client("get " .. url .. "app.js")())
    assert.equal(200, js.status)
    assert.equal("text/javascript; charset=utf-8", js.type)
    local css = util.json_decode(client("get " .. url .. "style.css")())
    assert.equal("text/css; charset=utf-8", css.type)
    -- no address outside the page's own server (the SVG namespace is a name, not a fetch)
    for _, text in ipairs { page.body, js.body, css.body } do
      for u in text:gmatch("https?://[^'\"%s)]+") do assert.equal("http://www.w3.org/2000/svg", u) end
    end
  end)

  it("shows in the browser when the process is gone, keeping the last data it received", function()
    ms:add{ { k = "a", v = 1 } }
    q:process_all_available()
    local profile, out = support.tmpname(), support.tmpname()
    os.execute(string.format("(%s --user-data-dir=%s --virtual-time-budget=5000 --dump-dom %s > %s.part 2>/dev/null;" ..
      " mv %s.part %s) &", CHROMIUM, profile, url, out, out, out))
    local loop = process.loop()
    local tick = loop:timer(10, 10, function() end)
    local deadline = os.time() + 60
    -- the page, its two files and the first poll (/api/queries, /api/topics; or a favicon in between)
    while ui:stats().requests < 5 and os.time() <= deadline do loop:run("once") end
    ui:close()
    while not support.exists(out) and os.time() <= deadline do loop:run("once") end
    tick:close()
    local dom = support.read_file(out)
    os.remove(out)
    os.execute("rm -rf " .. profile)
    assert.matches('<span id="state" class="state gone">process gone</span>', dom, 1, true)
    assert.matches('<div id="gone" class="banner">The tide process is not answering', dom, 1, true)
    assert.matches("<td>ui_counts</td>", dom, 1, true)
  end)

  it("answers 500 with a short page when the handler fails, logs what failed on stderr, and serves on", function()
    -- a child process, so that its stderr can be read
    local script, errf, portf = support.tmpname() .. ".lua", support.tmpname(), support.tmpname()
    finally(function() os.execute(string.format("rm -f '%s' '%s' '%s'", script, errf, portf)) end)
    support.write_file(script, support.CHILD_PRELUDE .. [=[
local core = require "tide.core"
local loop = require("tide.process").loop()
local srv = assert(core.http_listen(loop, "127.0.0.1", 0, function(_, path)
  if path == "/boom" then error("boom") end
  if path == "/bad" then return 200 end
  return 200, "text/plain", "fine"
end))
local f = io.open(arg[1] .. ".part", "w")
f:write(srv:port())
f:close()
os.rename(arg[1] .. ".part", arg[1])
while srv:stats().requests < 3 do loop:run("once") end
local st = srv:stats()
io.stderr:write(string.format("errors %d requests %d\n", st.errors, st.requests))
srv:close()
loop:run("nowait")
]=])
    local p = io.popen(string.format("lua5.4 %s %s 2>%s & echo $!", script, portf, errf))
    local pid = p:read("l")
    p:close()
    finally(function() os.execute("kill " .. pid .. " 2>/dev/null") end)
    local port = until_true("the child's port",
      function() return support.exists(portf) and support.read_file(portf) end)
    local base = "http://127.0.0.1:" .. port
    local boom = get(base .. "/boom")
    local bad = get(base .. "/bad")
    local fine = get(base .. "/")
    local log = until_true("the child's end", function()
      local t = support.read_file(errf)
      return t:find("errors %d+ requests %d+\n") and t
    end)
    local page = "internal error (the server's log says what failed)\n"
    assert.same({ 500, page }, { boom.status, boom.body })
    assert.same({ 500, page }, { bad.status, bad.body })
    assert.same({ 200, "text/plain", "fine" }, { fine.status, fine.type, fine.body })
    assert.matches("tide: http: GET /boom failed: [^\n]*: boom\nstack traceback:\n", log)
    assert.matches("tide: http: GET /bad failed: the handler must return status (100..599), content type " ..
      "(< 128 bytes), body (string)\n", log, 1, true)
    assert.matches("errors 2 requests 3\n", log, 1, true)
  end)

  it("closes a closed server's methods", function()
    local core = require "tide.core"
    local srv = assert(core.http_listen(process.loop(), "127.0.0.1", 0, function() return 200, "text/plain", "" end))
    srv:close()
    assert.is_true(srv:is_closed())
    assert.has_error(function() srv:port() end, "attempt to use a closed tide.HttpServer")
  end)

  it("refuses bad options and a port in use, naming them", function()
    assert.has_error(function() tide.ui{ listen = "nope" } end,
      "tide.ui: option 'listen': expected [HOST:]PORT with PORT 0..65535, got 'nope'")
    assert.has_error(function() tide.ui{ colour = "blue" } end,
      "tide.ui: unknown option 'colour' (allowed: listen, max_connections, max_request, store, timeout)")
    assert.has_error(function() tide.ui{ store = "data" } end,
      "tide.ui: option 'store' must be a store (tide.open(dir))")
    local ok, err = pcall(tide.ui, { listen = "127.0.0.1:" .. ui:port() })
    assert.is_false(ok)
    assert.matches("^tide.ui: cannot listen on 127.0.0.1:" .. ui:port() .. ": EADDRINUSE: ", err)
  end)

  it("makes tide.on_progress public: fn(query, progress) after every batch, until removed", function()
    local seen = {}
    local remove = tide.on_progress(function(qq, p) seen[#seen + 1] = { qq:name(), p.batch_id } end)
    ms:add{ { k = "a", v = 1 } }
    q:process_all_available()
    remove()
    ms:add{ { k = "a", v = 2 } }
    q:process_all_available()
    assert.same({ { "ui_counts", 0 } }, seen)
    assert.has_error(function() tide.on_progress(1) end, "on_progress: expected a function(query, progress)")
  end)
end)

describe("tide run --ui and .ui", function()
  local dir
  before_each(function()
    dir = support.tmpname()
    os.execute("mkdir -p " .. dir)
  end)
  after_each(function() os.execute("rm -rf " .. dir) end)

  -- bin/tide in dir with args, stdin from the text `stdin` (or nothing).
  local function tide_cmd(args, stdin)
    support.write_file(dir .. "/stdin", stdin or "")
    return run(string.format("(cd %s && %s/bin/tide --data %s/data %s < %s/stdin)", dir, support.ROOT, dir, args, dir))
  end

  it("refuses a bad address as bad usage, and a port in use as a failure", function()
    support.write_file(dir .. "/s.lua", "print('ran')\n")
    local r = tide_cmd("run --ui nope s.lua")
    assert.equal("tide: run: option '--ui': expected [HOST:]PORT with PORT 0..65535, got 'nope' " ..
      "(see 'tide run --help')\n", r.stderr)
    assert.equal("", r.stdout)
    local tide = require "tide"
    local ui = tide.ui{ listen = "127.0.0.1:0" }
    r = tide_cmd("run --ui " .. ui:port() .. " s.lua")
    ui:close()
    assert.matches("^tide: run: cannot listen on 127.0.0.1:%d+: EADDRINUSE: [^\n]+\n$", r.stderr)
    assert.equal("", r.stdout)
  end)

  it("starts the ui from the REPL with .ui, once, and prints its URL", function()
    local r = tide_cmd("", ".ui 127.0.0.1:0\n.ui\n")
    local a, b = r.stdout:match("^ui at (http://127.0.0.1:%d+/)\nui at (http://127.0.0.1:%d+/)\n$")
    assert.is_truthy(a, r.stdout .. r.stderr)
    assert.equal(a, b)
  end)
end)

