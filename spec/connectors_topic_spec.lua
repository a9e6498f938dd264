-- Specs for connectors/topic.lua: the topic source (offsets, per-trigger
-- limits, starting offsets, replay, retention gaps, deleted topics, watching
-- for appends of this process and of others) and the topic sink (one atomic
-- append per batch, a re-run batch skipped, schema checks), and a child
-- appending as an idempotent writer killed with SIGKILL again and again.
--
-- The connector objects are driven here as the engine drives them
-- (connectors/README.md): options checked with util.check_options, then
-- schema(opts), new(opts, ctx), latest_offset, get_batch, add_batch.

local tide = require "tide"
local core = require "tide.core"
local util = require "tide.util"
local support = require "support"
local topic = require "tide.connectors.topic"

local tmpname, write_file = support.tmpname, support.write_file
local json = util.json_encode

local SRC, SINK = topic.sources.topic, topic.sinks.topic

-- Options as the engine checks them.
local function src_opts(o) return util.check_options(o, SRC.options, "read_stream(topic)") end
local function sink_opts(o) return util.check_options(o, SINK.options, "write_stream(topic)") end

-- The message of the error f raises.
local function err_of(f, ...)
  local ok, msg = pcall(f, ...)
  assert(not ok, "expected an error")
  return util.strip_position(tostring(msg))
end

-- Rows of the batches get_batch returned (then closed, as the engine does).
local function rows_of(batches)
  local out = {}
  for _, b in ipairs(batches) do
    for _, r in ipairs(b:rows()) do out[#out + 1] = r end
    b:close()
  end
  return out
end

local function ids(rows)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r.id end
  table.sort(out)
  return out
end

local function range(a, b)
  local out = {}
  for i = a, b do out[#out + 1] = i end
  return out
end

-- A batch of `schema` (DDL) holding rows.
local function batch(schema, rows)
  local b = assert(core.rows_batch(assert(core.schema(schema)), rows))
  return b
end

-- Run a child Lua script in the background (prelude + body); returns the
-- path of the file holding its pid.
local function spawn(body, ...)
  local script = tmpname() .. ".lua"
  write_file(script, support.CHILD_PRELUDE .. body)
  local args = {}
  for i, a in ipairs { ... } do args[i] = "'" .. tostring(a) .. "'" end
  local pidfile, logfile = tmpname(), tmpname()
  os.execute(string.format("lua5.4 %s %s >%s 2>&1 & echo $! > %s", script, table.concat(args, " "), logfile, pidfile))
  return pidfile, script, logfile
end

describe("topic connector", function()
  local dir, db, loop

  before_each(function()
    dir = tmpname()
    db = tide.open(dir)
  end)

  after_each(function()
    if loop then loop:close() end
    loop = nil
    if db then db:close() end
    db = nil
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local function source(o, ctx)
    local opts = src_opts(o)
    SRC.schema(opts)
    return SRC.new(opts, ctx or { loop = loop, query_id = "q-1", index = 1 })
  end

  describe("source", function()
    it("defines its schema as the topic's latest, and refuses what is wrong", function()
      db:create_topic("ev", { schema = "id int, v string?" })
      assert.same({ { "id", "int" }, { "v", "string?" } }, SRC.schema(src_opts { store = db, topic = "ev" }))
      assert.equal("TopicSource[ev]", SRC.label(src_opts { store = db, topic = "ev" }))
      assert.equal("option 'topic' is required (the topic's name)", err_of(SRC.schema, src_opts { store = db }))
      assert.equal(string.format("no topic 'nope' in store '%s' (topics: ev)", dir),
        err_of(SRC.schema, src_opts { store = db, topic = "nope" }))
      assert.equal("option 'store' must be a tide store (tide.open(dir)), got string",
        err_of(SRC.schema, src_opts { store = dir, topic = "ev" }))
      assert.equal("option 'starting_offset' must be \"earliest\", \"latest\" or a table { [partition] = offset }, " ..
        "got 'first'", err_of(SRC.schema, src_opts { store = db, topic = "ev", starting_offset = "first" }))
      assert.equal("option 'starting_offset': partition 3 does not exist (partitions: 0..0)",
        err_of(SRC.schema, src_opts { store = db, topic = "ev", starting_offset = { [3] = 0 } }))
      assert.equal("option 'starting_offset': the offset of partition 0 must be an integer >= 0, got -1",
        err_of(SRC.schema, src_opts { store = db, topic = "ev", starting_offset = { [0] = -1 } }))
      assert.equal("read_stream(topic): unknown option 'from' (allowed: max_records_per_trigger, starting_offset, " ..
        "store, topic)", err_of(src_opts, { topic = "ev", from = 1 }))
      assert.equal("read_stream(topic): option 'max_records_per_trigger' must be >= 1, got 0",
        err_of(src_opts, { topic = "ev", max_records_per_trigger = 0 }))
    end)

    it("reads a schemaless topic as db:read does: one value json column", function()
      local t = db:create_topic("free")
      t:append { { value = { a = 1 } } }
      assert.same({ { "value", "json" } }, SRC.schema(src_opts { store = db, topic = "free" }))
      local src = source { store = db, topic = "free" }
      local rows = rows_of(src:get_batch(nil, src:latest_offset(nil)))
      assert.same({ { value = { a = 1 } } }, rows)
    end)

    it("offers nothing before the first record, then every partition's next offset", function()
      local t = db:create_topic("ev", { partitions = 3, schema = "id int" })
      local src = source { store = db, topic = "ev" }
      assert.equal("TopicSource[ev]", src.description)
      assert.is_true(src.replayable)
      assert.is_nil(src:latest_offset(nil))
      for i = 1, 5 do t:append({ { id = i } }) end -- round-robin: 2, 2, 1
      local stop = src:latest_offset(nil)
      assert.equal("[2,2,1]", json(stop))
      assert.same(range(1, 5), ids(rows_of(src:get_batch(nil, stop))))
      assert.equal("[2,2,1]", json(src:latest_offset(stop)))
      t:append({ { id = 6 }, { id = 7 } })
      local stop2 = src:latest_offset(stop)
      assert.same({ 6, 7 }, ids(rows_of(src:get_batch(stop, stop2))))
    end)

    it("returns the same rows for the same offsets, also from a new instance after a reopen", function()
      local t = db:create_topic("ev", { partitions = 2, schema = "id int, v string" })
      for i = 1, 20 do t:append({ { id = i, v = "r" .. i } }, { key = "v" }) end
      local src = source { store = db, topic = "ev" }
      local start = { 1, 2 }
      local stop = src:latest_offset(start)
      local first = rows_of(src:get_batch(start, stop))
      assert.same(first, rows_of(src:get_batch(start, stop)))
      db:close()
      db = tide.open(dir)
      local again = source { store = db, topic = "ev" }
      assert.same(first, rows_of(again:get_batch(util.json_decode(json(start)), util.json_decode(json(stop)))))
      assert.equal(20 - 3, #first)
    end)

    it("starts at the latest offsets with an empty first batch", function()
      local t = db:create_topic("ev", { partitions = 2, schema = "id int" })
      t:append({ { id = 1 }, { id = 2 } })
      local src = source { store = db, topic = "ev", starting_offset = "latest" }
      local stop = src:latest_offset(nil)
      assert.equal("[2,0]", json(stop))
      assert.same({}, rows_of(src:get_batch(nil, stop)))
      t:append({ { id = 3 } })
      local stop2 = src:latest_offset(stop)
      assert.same({ 3 }, ids(rows_of(src:get_batch(stop, stop2))))
    end)

    it("starts at given offsets per partition, the others at the earliest", function()
      local t = db:create_topic("ev", { partitions = 2, schema = "id int, k string" })
      t:append({ { id = 1, k = "a" }, { id = 2, k = "a" }, { id = 3, k = "a" } })
      t:append({ { id = 4, k = "b" }, { id = 5, k = "b" } })
      local src = source { store = db, topic = "ev", starting_offset = { [0] = 2 } }
      local stop = src:latest_offset(nil)
      assert.equal("[3,2]", json(stop))
      assert.same({ 3, 4, 5 }, ids(rows_of(src:get_batch(nil, stop))))
      -- past the end: nothing until records reach it
      src = source { store = db, topic = "ev", starting_offset = { [0] = 5, [1] = 2 } }
      assert.is_nil(src:latest_offset(nil))
      -- unkeyed appends take partitions in turn: this third one goes to 0, offsets 3..6
      t:append({ { id = 6, k = "a" }, { id = 7, k = "a" }, { id = 8, k = "a" }, { id = 9, k = "a" } })
      stop = src:latest_offset(nil)
      assert.equal("[7,2]", json(stop))
      assert.same({ 8, 9 }, ids(rows_of(src:get_batch(nil, stop))))
    end)

    it("splits max_records_per_trigger fairly across partitions and loses nothing", function()
      local t = db:create_topic("ev", { partitions = 3, schema = "id int, p int" })
      local n = 0
      local function put(p, count)
        local rows = {}
        for _ = 1, count do
          n = n + 1
          rows[#rows + 1] = { id = n, p = p }
        end
        -- a key that lands in partition p: found once, by trying
        t:append(rows, { key = "p" })
      end
      for p = 0, 2 do put(p, p == 1 and 1 or 10) end
      local per = {}
      for _, o in ipairs(t:offsets()) do per[#per + 1] = o.latest end
      table.sort(per)
      assert.same({ 1, 10, 10 }, per)
      local src = source { store = db, topic = "ev", max_records_per_trigger = 7 }
      local stop = src:latest_offset(nil)
      local got = 0
      for i = 1, 3 do got = got + stop[i] end
      assert.equal(7, got)
      -- the one-record partition is drained, the others get 3 each
      local counts = {}
      for i = 1, 3 do counts[i] = stop[i] end
      table.sort(counts)
      assert.same({ 1, 3, 3 }, counts)
      local seen = rows_of(src:get_batch(nil, stop))
      local start = stop
      local batches = 1
      while true do
        stop = src:latest_offset(start)
        if json(stop) == json(start) then break end
        local rows = rows_of(src:get_batch(start, stop))
        assert.is_true(#rows >= 1 and #rows <= 7)
        for _, r in ipairs(rows) do seen[#seen + 1] = r end
        start = stop
        batches = batches + 1
      end
      assert.same(range(1, 21), ids(seen))
      assert.equal(3, batches)
      -- a limit below the partition count still moves every partition in turn
      src = source { store = db, topic = "ev", max_records_per_trigger = 1 }
      local moved, s = {}, { 0, 0, 0 }
      for _ = 1, 6 do
        local e = src:latest_offset(s)
        for i = 1, 3 do if e[i] > s[i] then moved[i] = true end end
        s = e
      end
      assert.same({ true, true, true }, moved)
    end)

    it("rows written under a later schema version come in the version the stream was defined with", function()
      local t = db:create_topic("ev", { schema = "id int" })
      t:append({ { id = 1 } })
      local src = source { store = db, topic = "ev" }
      db:register_schema("ev", "id int, note string?")
      t:append({ { id = 2, note = "new" } })
      assert.same({ { id = 1 }, { id = 2 } }, rows_of(src:get_batch(nil, src:latest_offset(nil))))
    end)

    it("fails with the topic, the partition and the first offset held when retention deleted the start", function()
      local t = db:create_topic("ev", { schema = "id int, pad string", segment_bytes = 1024, retention_bytes = 1 })
      local pad = string.rep("x", 600)
      for i = 1, 6 do t:append({ { id = i, pad = pad } }) end
      local src = source { store = db, topic = "ev" }
      local stop = src:latest_offset({ 0 })
      assert.equal("[6]", json(stop))
      assert.is_true(t:enforce_retention() > 0)
      local first = t:offsets()[1].earliest
      assert.is_true(first > 0)
      assert.equal(string.format("topic 'ev' partition 0: offset 0 is no longer held (deleted by retention); " ..
        "the first offset still available is %d", first), err_of(src.get_batch, src, { 0 }, stop))
      -- starting from the earliest, the first batch begins where the data does
      local rows = rows_of(src:get_batch(nil, stop))
      assert.same(range(first + 1, 6), ids(rows))
    end)

    it("says so when the topic was deleted while the query ran", function()
      db:create_topic("ev", { schema = "id int" })
      local src = source { store = db, topic = "ev" }
      db:delete_topic("ev")
      local msg = string.format("topic 'ev' was deleted from store '%s' while the query ran", dir)
      assert.equal(msg, err_of(src.latest_offset, src, { 0 }))
      db:create_topic("ev", { schema = "id int" }) -- a new topic of the same name is not the old one
      assert.equal(msg, err_of(src.get_batch, src, { 0 }, { 1 }))
    end)

    it("refuses offsets that do not fit the topic", function()
      db:create_topic("ev", { partitions = 2, schema = "id int" })
      local src = source { store = db, topic = "ev" }
      assert.equal("start offset [1] does not fit topic 'ev' (2 partitions): expected an array of 2 offsets",
        err_of(src.get_batch, src, { 1 }, { 1, 1 }))
      assert.equal("end offset {\"a\":1} does not fit topic 'ev' (2 partitions): expected an array of 2 offsets",
        err_of(src.get_batch, src, nil, { a = 1 }))
    end)

    it("wakes the query on an append of this process", function()
      loop = core.loop()
      local t = db:create_topic("ev", { schema = "id int" })
      local src = source({ store = db, topic = "ev" }, { loop = loop, query_id = "q", index = 1 })
      local woken, timed_out = 0, false
      src:watch(function()
        woken = woken + 1
        loop:stop()
      end)
      local guard = loop:timer(30000, 0, function()
        timed_out = true
        loop:stop()
      end)
      loop:timer(0, 0, function() t:append({ { id = 1 } }) end)
      loop:run()
      guard:close()
      assert.is_false(timed_out)
      assert.is_true(woken >= 1)
      assert.equal("[1]", json(src:latest_offset(nil)))
      src:stop()
    end)

    it("wakes the query on an append of another process", function()
      loop = core.loop()
      db:create_topic("ev", { schema = "id int" })
      local src = source({ store = db, topic = "ev" }, { loop = loop, query_id = "q", index = 1 })
      local timed_out = false
      src:watch(function()
        local stop = src:latest_offset(nil)
        if stop and stop[1] >= 3 then loop:stop() end
      end)
      local guard = loop:timer(30000, 0, function()
        timed_out = true
        loop:stop()
      end)
      local pidfile, script, log = spawn([[
local db = tide.open(arg[1])
db:topic("ev"):append({ { id = 1 }, { id = 2 }, { id = 3 } })
db:close()
print("appended")
]], dir)
      loop:run()
      guard:close()
      local out = support.read_file(log)
      os.remove(script)
      os.remove(pidfile)
      os.remove(log)
      assert.is_false(timed_out, "the child said: " .. out)
      assert.same({ 1, 2, 3 }, ids(rows_of(src:get_batch(nil, src:latest_offset(nil)))))
      src:stop()
    end)
  end)

  describe("sink", function()
    local function sink(o, qid)
      return SINK.new(sink_opts(o), { query_id = qid or "q-1", query_name = "q" })
    end

    it("describes itself and needs a checkpoint", function()
      db:create_topic("out", { schema = "id int" })
      local s = sink { store = db, topic = "out" }
      assert.equal(string.format("TopicSink[%s:out]", dir), s.description)
      assert.is_true(s.needs_checkpoint)
    end)

    it("refuses a missing topic, a missing option and an unknown key column", function()
      db:create_topic("out", { schema = "id int" })
      assert.equal("option 'topic' is required (the topic's name)", err_of(sink, { store = db }))
      assert.equal(string.format("no topic 'x' in store '%s' (topics: out)", dir),
        err_of(sink, { store = db, topic = "x" }))
      assert.equal("option 'key': column 'k' is not a field of topic 'out' (fields: id)",
        err_of(sink, { store = db, topic = "out", key = "k" }))
      assert.equal("write_stream(topic): unknown option 'path' (allowed: key, store, topic)",
        err_of(sink_opts, { topic = "out", path = "x" }))
    end)

    it("appends each batch once: a batch run again is skipped, also by a new instance after a reopen", function()
      local t = db:create_topic("out", { schema = "id int, v string?" })
      local schema = assert(core.schema("v string, id int"))
      local s = sink { store = db, topic = "out" }
      assert.equal(2, s:add_batch(0, { batch("v string, id int", { { v = "a", id = 1 }, { v = "b", id = 2 } }) },
        "append", schema))
      assert.same({ 0, "skipped" }, { s:add_batch(0, { batch("v string, id int", { { v = "a", id = 1 } }) },
        "append", schema) })
      assert.equal(1, s:add_batch(1, { batch("v string, id int", { { v = "c", id = 3 } }),
        batch("v string, id int", {}) }, "append", schema))
      assert.equal(1, t:writer_seq("q-1/sink"))
      db:close()
      db = tide.open(dir)
      local s2 = sink { store = db, topic = "out" }
      assert.same({ 0, "skipped" }, { s2:add_batch(1, { batch("v string, id int", { { v = "c", id = 3 } }) },
        "append", schema) })
      assert.equal(1, s2:add_batch(2, { batch("v string, id int", { { v = "d", id = 4 } }) }, "append", schema))
      local got = {}
      for r in db:topic("out"):read() do got[#got + 1] = r.id .. r.v end
      assert.same({ "1a", "2b", "3c", "4d" }, got)
      -- another query is another writer: its batch 0 is its own
      local other = sink({ store = db, topic = "out" }, "q-2")
      assert.equal(1, other:add_batch(0, { batch("v string, id int", { { v = "e", id = 5 } }) }, "append", schema))
      assert.equal(5, db:topic("out"):stats().records)
    end)

    it("fails a batch whose rows do not fit the topic, naming the field, and writes nothing of it", function()
      local t = db:create_topic("out", { schema = "id int, v string" })
      local s = sink { store = db, topic = "out" }
      local extra = assert(core.schema("id int, v string, w int"))
      assert.equal("the query's rows do not fit topic 'out': column 'w' is not a field of topic 'out' (fields: id, v)",
        err_of(s.add_batch, s, 0, { batch("id int, v string, w int", { { id = 1, v = "a", w = 2 } }) }, "append",
          extra))
      local wrong = assert(core.schema("id string, v string"))
      assert.equal("the query's rows do not fit topic 'out': field 'id': the rows have string, topic 'out' wants int",
        err_of(s.add_batch, s, 0, { batch("id string, v string", { { id = "1", v = "a" } }) }, "append", wrong))
      local nullable = assert(core.schema("id int?, v string"))
      assert.equal("append_batches to 'out': row 2: field 'id' is NULL, topic 'out' declares it NOT NULL",
        err_of(s.add_batch, s, 0, { batch("id int?, v string", { { id = 1, v = "a" }, { v = "b" } }) }, "append",
          nullable))
      assert.equal(0, t:stats().records)
      assert.is_nil(t:writer_seq("q-1/sink"))
      -- the same batch id, fixed, goes in
      assert.equal(1, s:add_batch(0, { batch("id int?, v string", { { id = 1, v = "a" } }) }, "append", nullable))
    end)

    it("partitions by the key column", function()
      local t = db:create_topic("out", { partitions = 4, schema = "k string, n int" })
      local s = sink { store = db, topic = "out", key = "k" }
      local rows = {}
      for i = 1, 40 do rows[i] = { k = "key" .. (i % 5), n = i } end
      s:add_batch(0, { batch("k string, n int", rows) }, "append", assert(core.schema("k string, n int")))
      local where = {}
      for r in t:read() do
        if where[r.k] then assert.equal(where[r.k], r.partition) end
        where[r.k] = r.partition
      end
      assert.equal(40, t:stats().records)
    end)

    it("stores rows of any schema as JSON objects in a schemaless topic", function()
      local t = db:create_topic("free")
      local s = sink { store = db, topic = "free" }
      s:add_batch(0, { batch("a int, b string", { { a = 1, b = "x" } }) }, "append",
        assert(core.schema("a int, b string")))
      assert.same({ { a = 1, b = "x" } }, (function()
        local out = {}
        for r in t:read() do out[#out + 1] = r.value end
        return out
      end)())
    end)
  end)

  describe("in a query", function()
    it("copies a topic to a topic, and continues after a restart on the same checkpoint", function()
      local src = db:create_topic("in", { partitions = 2, schema = "id int, v string" })
      db:create_topic("out", { schema = "id int, v string, note string?" })
      for i = 1, 6 do src:append({ { id = i, v = "r" .. i } }) end
      local ck = dir .. "-ck"
      local function run()
        local q = db:read_stream("in", { max_records_per_trigger = 4 }):where("id % 2 = 0")
          :write_stream("topic", { store = db, topic = "out", checkpoint = ck })
        q:process_all_available()
        return q
      end
      local q = run()
      assert.equal("TopicSource[in]", q:last_progress().sources[1].description)
      assert.equal(string.format("TopicSink[%s:out]", dir), q:last_progress().sink.description)
      q:stop()
      for i = 7, 10 do src:append({ { id = i, v = "r" .. i } }) end
      q = run()
      q:stop()
      os.execute("rm -rf '" .. ck .. "'")
      local got = {}
      for r in db:topic("out"):read() do got[#got + 1] = r.id end
      table.sort(got)
      assert.same({ 2, 4, 6, 8, 10 }, got)
    end)
  end)

  describe("an idempotent writer killed with SIGKILL", function()
    it("leaves the topic and its writer record in agreement after every kill", function()
      local ROWS = 50
      db:create_topic("out", { partitions = 2, schema = "seq int, i int" })
      local t
      db:close()
      db = nil
      -- The child appends sequences from the recorded one + 1, but first
      -- replays a few it already wrote (as an engine re-runs a batch), so
      -- that skips happen too. It runs until killed.
      local body = [[
local db = tide.open(arg[1], { sync = false })
local t = db:topic("out")
local last = t:writer_seq("w") or -1
local seq = math.max(0, last - 2)
while true do
  local rows = {}
  for i = 1, ]] .. ROWS .. [[ do rows[i] = { seq = seq, i = i } end
  local first, why = t:append(rows, { writer = "w", seq = seq })
  if first == nil and why ~= "skipped" then error("append returned nothing") end
  seq = seq + 1
end
]]
      local seed = os.time()
      math.randomseed(seed)
      local kills, last = 0, -1
      for round = 1, 12 do
        local pidfile, script, log = spawn(body, dir)
        support.sleep_ms(math.random(30, 250))
        local pid = support.read_file(pidfile):match("%d+")
        os.execute("kill -9 " .. pid .. " 2>/dev/null; while kill -0 " .. pid .. " 2>/dev/null; do sleep 0.01; done")
        os.remove(pidfile)
        os.remove(script)
        os.remove(log)
        kills = kills + 1
        db = tide.open(dir)
        t = db:topic("out")
        local w = t:writer_seq("w")
        local count, per = 0, {}
        for r in t:read() do
          count = count + 1
          per[r.seq] = (per[r.seq] or 0) + 1
        end
        local top = w or -1
        assert.equal((top + 1) * ROWS, count, "round " .. round .. " (seed " .. seed .. ")")
        for s = 0, top do assert.equal(ROWS, per[s], "seq " .. s .. " (seed " .. seed .. ")") end
        assert.is_true(top >= last)
        last = top
        db:close()
        db = nil
      end
      db = tide.open(dir)
      assert.equal(12, kills)
      assert.is_true(last >= 0)
    end)
  end)
end)
