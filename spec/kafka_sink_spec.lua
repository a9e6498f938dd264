-- The Kafka sink (write_stream("kafka")), against the project's test broker
-- (spec/kafka_broker.lua, tools/kafka-broker/): the messages it makes
-- (value as JSON or a column, key as a column or an expression, headers,
-- a topic column, partition and timestamp columns), read back with kcat as
-- a read_committed consumer (interoperation with a standard tool); a batch
-- run again is skipped (exactly-once) or written again (exactly_once =
-- false); an open transaction of a crashed run is aborted by the next run;
-- a message over message.max.bytes, a broker down and back up, a broker
-- down for longer than the timeout, and injected produce errors.

local tide = require "tide"
local core = require "tide.core"
local support = require "support"
local kafka_broker = require "kafka_broker"
local ksink = require("tide.connectors.kafka.sink").sinks.kafka

local tmpname, sh_quote = support.tmpname, support.sh_quote

local function rm(...)
  for _, p in ipairs { ... } do os.execute("rm -rf " .. sh_quote(p)) end
end

-- The messages of a topic as a read_committed consumer sees them, one line
-- each in kcat's format fmt, sorted.
local function consume(b, topic, fmt)
  local code, out, err = support.run_cmd(string.format(
    "kcat -b %s -C -t %s -e -q -X isolation.level=read_committed -f %s", sh_quote(b.bootstrap), sh_quote(topic),
    sh_quote(fmt or "%k|%s\\n")))
  assert(code == 0, "kcat failed: " .. err)
  local lines = support.lines_of(out)
  table.sort(lines)
  return lines
end

local function sorted(t)
  table.sort(t)
  return t
end

-- Run a stream of `rows` (schema ddl) into the kafka sink with opts; returns
-- the query, finished or failed (pcall'd: ok, err).
local function run(ddl, batches, opts)
  local ms = tide.memory_stream(ddl)
  for _, rows in ipairs(batches) do ms:add(rows) end
  local q = ms:frame():write_stream("kafka", opts)
  local ok, err = pcall(q.process_all_available, q)
  if q:is_active() then q:stop() end
  return ok, err, q
end

describe("the kafka sink", function()
  local b
  setup(function()
    b = kafka_broker.start(1)
  end)
  teardown(function() b:stop() end)

  it("writes each row as a JSON value, keyed by a column, exactly once per batch; kcat reads it", function()
    b:create_topic("plain", 3)
    local ck = tmpname()
    local ok, err = run("id int, word string, ts timestamp, d double?", {
      { { id = 1, word = "a", ts = 1000, d = 1.5 }, { id = 2, word = "b\"q", ts = 2000 } },
      { { id = 3, word = "ü", ts = 3000, d = 0.1 } },
    }, { bootstrap = b.bootstrap, topic = "plain", key = "word", checkpoint = ck })
    assert(ok, err)
    assert.same(sorted {
      'a|{"id":1,"word":"a","ts":1000,"d":1.5}',
      'b"q|{"id":2,"word":"b\\"q","ts":2000,"d":null}',
      'ü|{"id":3,"word":"ü","ts":3000,"d":0.1}',
    }, consume(b, "plain"))
    -- the progress record: the sink's group has batch 1 (offset 2) on partition 0
    local code, out = support.run_cmd(string.format("kcat -b %s -L -t plain", sh_quote(b.bootstrap)))
    assert.equal(0, code)
    assert.matches("3 partitions", out)
    rm(ck)
  end)

  it("takes the key from an expression, the value from a column, headers from a json column", function()
    b:create_topic("cols", 2)
    local ck = tmpname()
    local ok, err = run("id int, body string?, h json?", {
      { { id = 7, body = "seven", h = { trace = "x1", n = 2 } },
        { id = 8, body = nil, h = { { key = "dup", value = "1" }, { key = "dup", value = "2" } } },
        { id = 9, body = "nine" } },
    }, { bootstrap = b.bootstrap, topic = "cols", key = "CAST(id * 10 AS string)", value = "body", headers = "h",
         checkpoint = ck })
    assert(ok, err)
    -- kcat: %h is the headers as name=value,...; a tombstone's value prints empty
    assert.same(sorted { "70|seven|n=2,trace=x1", "80||dup=1,dup=2", "90|nine|" },
      (function()
        local t = {}
        for _, l in ipairs(consume(b, "cols", "%k|%s|%h\\n")) do
          local k, v, h = l:match("^(.-)|(.-)|(.*)$")
          local hs = {}
          for part in h:gmatch("[^,]+") do hs[#hs + 1] = part end
          table.sort(hs)
          t[#t + 1] = k .. "|" .. v .. "|" .. table.concat(hs, ",")
        end
        return sorted(t)
      end)())
    rm(ck)
  end)

  it("sends each row to the topic its column names, into the partition and with the timestamp of columns", function()
    b:create_topic("even", 2)
    b:create_topic("odd", 2)
    local ck = tmpname()
    local rows = {}
    for i = 1, 10 do
      rows[i] = { id = i, t = i % 2 == 0 and "even" or "odd", p = i % 2, ts = 1700000000000 + i }
    end
    local ok, err = run("id int, t string, p int, ts timestamp", { rows },
      { bootstrap = b.bootstrap, topic_column = "t", progress_topic = "even", key = "id", partition = "p",
        timestamp = "ts", checkpoint = ck })
    assert(ok, err)
    local even, odd = {}, {}
    for i = 1, 10 do
      local line = string.format("%d|%d|%d", i, i % 2, 1700000000000 + i)
      if i % 2 == 0 then even[#even + 1] = line else odd[#odd + 1] = line end
    end
    assert.same(sorted(even), consume(b, "even", "%k|%p|%T\\n"))
    assert.same(sorted(odd), consume(b, "odd", "%k|%p|%T\\n"))
    rm(ck)
  end)

  it("refuses options that cannot work, naming what is allowed", function()
    local ms = tide.memory_stream("id int, t string")
    local f = ms:frame()
    local dirs = {}
    local function tmpck()
      dirs[#dirs + 1] = tmpname()
      return dirs[#dirs]
    end
    local function err_of(opts)
      local ok, e = pcall(f.write_stream, f, "kafka", opts)
      assert.is_false(ok)
      return e
    end
    assert.matches("option 'bootstrap' is required", err_of { topic = "x" })
    assert.matches("give one of option 'topic'", err_of { bootstrap = b.bootstrap })
    assert.matches("'progress_topic' is required", err_of { bootstrap = b.bootstrap, topic_column = "t",
      checkpoint = tmpck() })
    assert.matches("'transactional.id' is set by the query id", err_of { bootstrap = b.bootstrap, topic = "x",
      kafka = { ["transactional.id"] = "mine" }, checkpoint = tmpck() })
    assert.matches("option 'headers': column 't' is string; it must be json",
      err_of { bootstrap = b.bootstrap, topic = "x", headers = "t", checkpoint = tmpck() })
    assert.matches("option 'key': 'nope %+ 1' is neither a column", err_of { bootstrap = b.bootstrap, topic = "x",
      key = "nope + 1", checkpoint = tmpck() })
    assert.matches("kafka option 'linger.ms': ", err_of { bootstrap = b.bootstrap, topic = "x",
      kafka = { ["linger.ms"] = "soon" }, checkpoint = tmpck() })
    assert.matches("needs a checkpoint directory", err_of { bootstrap = b.bootstrap, topic = "x" })
    -- the first batch finds no progress topic
    ms:add { { id = 1, t = "a" } }
    local q = f:write_stream("kafka", { bootstrap = b.bootstrap, topic = "nosuch", checkpoint = tmpck() })
    local ok, e = pcall(q.process_all_available, q)
    assert.is_false(ok)
    assert.matches("the progress topic 'nosuch' %(partition 0%) does not exist: create it, or name an existing " ..
      "topic with option 'progress_topic'", e)
    rm(table.unpack(dirs))
  end)

  -- The sink's protocol driven directly: batch ids as the engine gives them
  -- after a crash.
  describe("given a batch again", function()
    local schema = core.schema("id int")
    local function batch(ids)
      local rows = {}
      for i, id in ipairs(ids) do rows[i] = { id = id } end
      return tide.from_rows(rows, "id int"):batches()()
    end
    local function sink(topic, qid, eos)
      return ksink.new({ bootstrap = b.bootstrap, topic = topic, key = "id", exactly_once = eos, timeout = 10000 },
        { query_id = qid, schema = schema, mode = "append" })
    end

    it("skips it when it committed before, also in a new sink of the same query (a restart)", function()
      b:create_topic("again", 2)
      local s = sink("again", "q-again", true)
      assert.equal(2, s:add_batch(0, { batch { 1, 2 } }, "append", schema))
      assert.same({ 0, "skipped" }, { s:add_batch(0, { batch { 1, 2 } }, "append", schema) })
      s:stop()
      local s2 = sink("again", "q-again", true) -- the restarted query: same id
      assert.same({ 0, "skipped" }, { s2:add_batch(0, { batch { 1, 2 } }, "append", schema) })
      assert.equal(1, s2:add_batch(1, { batch { 3 } }, "append", schema))
      s2:stop()
      local s3 = sink("again", "q-other", true) -- another query: its own progress
      assert.equal(1, s3:add_batch(0, { batch { 4 } }, "append", schema))
      s3:stop()
      local ids = {}
      for _, l in ipairs(consume(b, "again", "%k\\n")) do ids[#ids + 1] = tonumber(l) end
      table.sort(ids)
      assert.same({ 1, 2, 3, 4 }, ids)
    end)

    it("aborts the open transaction of a run that died inside it, and fences that run's producer", function()
      b:create_topic("open", 2)
      -- the dead run: a batch's messages produced, its transaction never ended
      local dead = assert(core.kafka_sink(b.bootstrap, { exactly_once = true, txn_id = "tide-q-open",
        group = "tide-q-open", timeout = 10000 }))
      assert.equal(-1, dead:recover("open", 0))
      assert(dead:begin())
      assert.equal(2, dead:produce(batch { 1, 2 }, { topic = "open", key_col = 1 }))
      -- the restarted run writes the batch again
      local s = sink("open", "q-open", true)
      assert.equal(2, s:add_batch(0, { batch { 1, 2 } }, "append", schema))
      s:stop()
      -- the dead run's producer is fenced: its commit fails
      local ok, msg = dead:commit("open", 0, 0)
      assert.is_nil(ok)
      -- (fenced: by the epoch of its produce requests, or at the commit)
      assert.truthy(msg:find("INVALID_PRODUCER_EPOCH", 1, true) or msg:lower():find("fenced", 1, true), msg)
      dead:close()
      assert.same({ "1", "2" }, consume(b, "open", "%k\\n"))
    end)

    it("writes it again with exactly_once = false (the idempotent producer: at-least-once)", function()
      b:create_topic("twice", 1)
      local s = sink("twice", "q-twice", false)
      assert.equal(2, s:add_batch(0, { batch { 1, 2 } }, "append", schema))
      assert.equal(2, s:add_batch(0, { batch { 1, 2 } }, "append", schema))
      s:stop()
      assert.same({ "1", "1", "2", "2" }, consume(b, "twice", "%k\\n"))
    end)
  end)

  it("learns the topics it will write to ahead (prepare): no error for a topic the broker lacks", function()
    b:create_topic("ahead", 2)
    local p = assert(core.kafka_sink(b.bootstrap, { exactly_once = false, timeout = 10000 }))
    finally(function() p:close() end)
    p:prepare({ "ahead", "ahead-missing" })
    assert.has_error(function() p:prepare("ahead") end)
    assert(p:produce_raw("ahead", 1, "k", "v"))
    assert(p:commit())
    assert.same({ "k" }, consume(b, "ahead", "%k\n"))
  end)

  it("fails a message over message.max.bytes, naming the row and the sizes, and commits nothing", function()
    b:create_topic("big", 1)
    local ck = tmpname()
    local ok, err, q = run("id int, s string", {
      { { id = 1, s = "small" }, { id = 2, s = string.rep("x", 3000) } },
    }, { bootstrap = b.bootstrap, topic = "big", checkpoint = ck, kafka = { ["message.max.bytes"] = 2000 } })
    assert.is_false(ok)
    assert.matches("topic 'big': row 2: a message of 30%d%d bytes %(key 0, value 30%d%d%) is over " ..
      "message.max.bytes %(2000%)", err)
    assert.is_false(q:is_active())
    assert.same({}, consume(b, "big"))
    local c = core.checkpoint(ck, { read_only = true })
    local off, com = c:latest()
    c:close()
    assert.equal(0, off)
    assert.is_nil(com)
    rm(ck)
  end)

  it("retries injected retriable produce errors; fails on a refused produce naming topic, partition and error",
    function()
      b:create_topic("flaky", 1)
      local ck = tmpname()
      b:push_errors("Produce", 3, "NOT_LEADER_FOR_PARTITION")
      local ok, err = run("id int", { { { id = 1 }, { id = 2 } } },
        { bootstrap = b.bootstrap, topic = "flaky", key = "id", checkpoint = ck })
      assert(ok, err)
      assert.same({ "1", "2" }, consume(b, "flaky", "%k\\n"))
      rm(ck)

      b:create_topic("refused", 2)
      ck = tmpname()
      b:push_errors("Produce", 10, "TOPIC_AUTHORIZATION_FAILED")
      local q
      ok, err, q = run("id int", { { { id = 1 } } },
        { bootstrap = b.bootstrap, topic = "refused", key = "id", checkpoint = ck, timeout = "5 seconds" })
      b:clear_errors("Produce")
      assert.is_false(ok)
      assert.matches("topic 'refused' partition %d: Broker: Topic authorization failed", err)
      assert.is_false(q:is_active())
      assert.same({}, consume(b, "refused"))
      -- run again: the same batch, now delivered once
      ok, err = run("id int", { { { id = 1 } } },
        { bootstrap = b.bootstrap, topic = "refused", key = "id", checkpoint = ck })
      assert(ok, err)
      assert.same({ "1" }, consume(b, "refused", "%k\\n"))
      rm(ck)
    end)

  it("waits out a broker that goes down during a batch and comes back within the timeout", function()
    b:create_topic("bounce", 3)
    local input, ck, script, errf = tmpname(), tmpname(), tmpname() .. ".lua", tmpname()
    local n = support.id_files(input, 20, 50)
    support.write_file(script, support.CHILD_PRELUDE .. [[
local q = tide.read_stream("file", { path = arg[1] .. "/*.jsonl", format = "json", schema = "id int, v int",
  max_files_per_trigger = 2 })
  :write_stream("kafka", { bootstrap = arg[2], topic = "bounce", key = "id", checkpoint = arg[3],
    timeout = "30 seconds", trigger = "available_now" })
q:await()
]])
    local p = support.spawn_lua(script, { input, sh_quote(b.bootstrap), ck }, errf)
    b:broker_down(1)
    support.sleep_ms(1500)
    b:broker_up(1)
    p:read("a")
    p:close()
    assert.equal("", support.read_file(errf))
    local ids = {}
    for _, l in ipairs(consume(b, "bounce", "%k\n")) do ids[#ids + 1] = tonumber(l) end
    table.sort(ids)
    assert.equal(n, #ids)
    for i = 1, n do assert.equal(i, ids[i]) end
    rm(input, ck, script, errf)
  end)

  it("fails a batch whose partition leader stays down past the timeout, naming topic, partition and error; " ..
    "the checkpoint does not advance, and the batch is written once when the broker is back", function()
    local b3 = kafka_broker.start(3)
    local ck = tmpname()
    -- a known query id, so that its coordinators can stay on broker 1
    local c = core.checkpoint(ck)
    c:set_meta("query_id", "q-down")
    c:close()
    b3:coordinator("transaction", "tide-q-down", 1)
    b3:coordinator("group", "tide-q-down", 1)
    b3:create_topic("gone", 2)
    b3:leader("gone", 0, 2)
    b3:leader("gone", 1, 2)
    b3:broker_down(2)
    local ms = tide.memory_stream("id int")
    ms:add { { id = 1 }, { id = 2 }, { id = 3 } }
    local q = ms:frame():write_stream("kafka", { bootstrap = b3.bootstrap, topic = "gone", key = "id",
      checkpoint = ck, timeout = "2 seconds" })
    local ok, err = pcall(q.process_all_available, q)
    assert.is_false(ok)
    assert.matches("batch 0: sink KafkaSink%[gone@.-%]: topic 'gone' partition %d: 3 messages of the batch not " ..
      "delivered within 2000 ms %(last client message: ", err) -- (what it saw last: a refused connection, ...)
    assert.is_false(q:is_active())
    c = core.checkpoint(ck, { read_only = true })
    local off, com = c:latest()
    c:close()
    assert.equal(0, off)
    assert.is_nil(com)
    b3:broker_up(2)
    q = ms:frame():write_stream("kafka", { bootstrap = b3.bootstrap, topic = "gone", key = "id", checkpoint = ck })
    q:process_all_available()
    q:stop()
    assert.same({ "1", "2", "3" }, consume(b3, "gone", "%k\n"))
    b3:stop()
    rm(ck)
  end)
end)
