-- Specs for the Kafka source (connectors/kafka/source.lua, core/kafka.c):
-- subscribe, subscribe_pattern and assign; starting offsets and timestamps;
-- max_offsets_per_trigger's fair split; a restart from the checkpoint;
-- partitions added mid-run; offsets deleted by retention under both
-- fail_on_data_loss values; a broker down during a batch and back up;
-- injected request errors; bad values under each bad-record policy; the
-- consumer group commit for monitoring. Input comes from kcat, the
-- standard command-line client, into the project's test broker
-- (spec/kafka_broker.lua, started and stopped here).
--
-- The source is driven as the engine drives it (connectors/README.md):
-- options checked with util.check_options, then new, latest_offset,
-- get_batch; and through whole queries (tide.read_stream) where the engine
-- matters (the offset log, restarts).

local tide = require "tide"
local util = require "tide.util"
local support = require "support"
local kafka_broker = require "kafka_broker"
local kafka = require "tide.connectors.kafka"

local SRC = kafka.sources.kafka
local sh_quote, tmpname = support.sh_quote, support.tmpname

local function opts(o) return util.check_options(o, SRC.options, "read_stream(kafka)") end

local function err_of(f, ...)
  local ok, msg = pcall(f, ...)
  assert(not ok, "expected an error")
  return util.strip_position(tostring(msg))
end

-- Produce with kcat: each line "key\tvalue" (or just a value) as one
-- message of partition p (nil: kcat's partitioner). headers: { "k=v" }.
-- null: a keyed line with an empty value ("k\t") is sent with no value
-- (a tombstone).
local function produce(b, topic, p, lines, headers, null)
  local args = { "kcat", "-P", "-b", b.bootstrap, "-t", topic, "-K", sh_quote("\t"), "-D", sh_quote("\1"),
    "-X", "message.timeout.ms=20000", "-X", "log_level=0" }
  if p then args[#args + 1] = "-p " .. p end
  for _, h in ipairs(headers or {}) do args[#args + 1] = "-H " .. sh_quote(h) end
  if null then args[#args + 1] = "-Z" end
  local f = assert(io.popen(table.concat(args, " ") .. " 2>&1", "w"))
  f:write(table.concat(lines, "\1"))
  assert(f:close(), "kcat failed")
end

-- n values {"id":i} for ids first..first+n-1, keyed "k<id>".
local function ids(first, n)
  local out = {}
  for i = first, first + n - 1 do out[#out + 1] = string.format('k%d\t{"id":%d}', i, i) end
  return out
end

local function new_source(o, index)
  return SRC.new(opts(o), { query_id = "spec", index = index or 1 })
end

-- Rows of get_batch's batches (then closed, as the engine does).
local function rows_of(batches)
  local out = {}
  for _, x in ipairs(batches) do
    for _, r in ipairs(x:rows()) do out[#out + 1] = r end
    x:close()
  end
  return out
end

-- "topic/partition/offset" of each row, sorted.
local function where(rows, prefix)
  prefix = prefix or ""
  local out = {}
  for i, r in ipairs(rows) do
    out[i] = string.format("%s/%d/%d", r[prefix .. "topic"], r[prefix .. "partition"], r[prefix .. "offset"])
  end
  table.sort(out)
  return out
end

local function sorted_ids(rows)
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

-- One batch: latest_offset after start, then get_batch.
local function step(src, start, id)
  local stop = src:latest_offset(start)
  if stop == nil then return nil, {}, {} end
  local batches, counts = src:get_batch(start, stop, id)
  return stop, rows_of(batches), counts
end

describe("the Kafka source", function()
  local b
  local n = 0
  local function topic_name()
    n = n + 1
    return "t" .. n
  end

  lazy_setup(function()
    b = kafka_broker.start { brokers = 3 }
  end)
  lazy_teardown(function()
    if b then b:stop() end
  end)

  describe("options", function()
    it("are checked when the stream is defined, naming what is wrong", function()
      local function schema_err(o) return err_of(SRC.schema, opts(o)) end
      assert.matches("option 'bootstrap' is required", schema_err { subscribe = "a" })
      assert.matches("bootstrap entry 'nohost' is not host:port", schema_err { bootstrap = "nohost", subscribe = "a" })
      assert.matches("exactly one of the options 'subscribe'", schema_err { bootstrap = "h:1" })
      assert.matches("exactly one of the options 'subscribe'.*got 2",
        schema_err { bootstrap = "h:1", subscribe = "a", assign = { a = { 0 } } })
      assert.matches("option 'subscribe_pattern': bad pattern '%(x'",
        schema_err { bootstrap = "h:1", subscribe_pattern = "(x" })
      assert.matches("option 'kafka': 'group.id' is set by option 'group_id'",
        schema_err { bootstrap = "h:1", subscribe = "a", kafka = { ["group.id"] = "g" } })
      assert.matches("option 'schema' is required for format 'json'",
        schema_err { bootstrap = "h:1", subscribe = "a", format = "json" })
      assert.matches("option 'include_metadata' needs option 'format'",
        schema_err { bootstrap = "h:1", subscribe = "a", include_metadata = true })
      assert.matches("needs option 'dead_letter_topic'",
        schema_err { bootstrap = "h:1", subscribe = "a", format = "json", schema = "id int",
          bad_records = "dead_letter" })
      assert.matches("'starting_offsets' and 'starting_timestamp' exclude each other",
        schema_err { bootstrap = "h:1", subscribe = "a", starting_offsets = "earliest", starting_timestamp = 5 })
      assert.matches("unknown option 'subscribePattern'",
        err_of(opts, { bootstrap = "h:1", subscribePattern = "a" }))
    end)

    it("passes kafka settings to librdkafka, and names a bad one", function()
      local msg = err_of(new_source, { bootstrap = b.bootstrap, subscribe = "a", kafka = { ["no.such.key"] = "1" } })
      assert.matches("kafka option 'no.such.key': No such configuration property", msg, 1, true)
      msg = err_of(new_source, { bootstrap = b.bootstrap, subscribe = "a", kafka = { ["fetch.wait.max.ms"] = "abc" } })
      assert.matches("kafka option 'fetch.wait.max.ms'", msg, 1, true)
      local src = new_source { bootstrap = b.bootstrap, subscribe = "a", kafka = { ["client.id"] = "mine" } }
      src:stop()
    end)

    it("give the message columns, or the schema and the kafka_ columns", function()
      assert.equal("key string?, value string?, topic string, partition int, offset int, timestamp timestamp?, " ..
        "timestamp_type int, headers json?", SRC.schema(opts { bootstrap = "h:1", subscribe = "a" }))
      assert.equal("id int",
        SRC.schema(opts { bootstrap = "h:1", subscribe = "a", format = "json", schema = "id int" }))
      assert.equal("id int, kafka_key string?, kafka_topic string, kafka_partition int, kafka_offset int, " ..
        "kafka_timestamp timestamp?, kafka_timestamp_type int, kafka_headers json?",
        SRC.schema(opts { bootstrap = "h:1", subscribe = "a", format = "json", schema = "id int",
          include_metadata = true }))
      assert.matches("the schema has a column 'kafka_key'", err_of(SRC.schema, opts { bootstrap = "h:1",
        subscribe = "a", format = "json", schema = "kafka_key string", include_metadata = true }))
    end)
  end)

  describe("reads", function()
    it("every partition of the subscribed topics, with Spark's columns", function()
      local t = topic_name()
      b:create_topic(t, 3)
      produce(b, t, 0, ids(1, 3), { "h1=v1", "h2=v2" })
      produce(b, t, 2, { '{"id":4}' })
      local src = new_source { bootstrap = b.bootstrap, subscribe = t .. ", nosuchtopic",
        starting_offsets = "earliest" }
      local stop, rows = step(src, nil, 0)
      assert.same({ [t] = { ["0"] = 3, ["1"] = 0, ["2"] = 1 } }, stop)
      assert.same({ t .. "/0/0", t .. "/0/1", t .. "/0/2", t .. "/2/0" }, where(rows))
      table.sort(rows, function(x, y) return x.partition * 100 + x.offset < y.partition * 100 + y.offset end)
      local r = rows[1]
      assert.equal("k1", r.key)
      assert.equal('{"id":1}', r.value)
      assert.equal(0, r.timestamp_type)
      assert.is_true(math.abs(r.timestamp - os.time() * 1000) < 600000)
      assert.same({ { key = "h1", value = "v1" }, { key = "h2", value = "v2" } }, r.headers)
      assert.is_nil(rows[4].key)
      assert.is_nil(rows[4].headers)
      -- nothing new: the same offset, and the next batch is empty
      assert.same(stop, src:latest_offset(stop))
      produce(b, t, 1, ids(5, 2))
      local stop2, rows2 = step(src, stop, 1)
      assert.same({ [t] = { ["0"] = 3, ["1"] = 2, ["2"] = 1 } }, stop2)
      assert.same({ t .. "/1/0", t .. "/1/1" }, where(rows2))
      src:stop()
    end)

    it("the topics a regular expression matches whole", function()
      local base = topic_name()
      for _, s in ipairs { "-eu", "-us", "x" } do
        b:create_topic(base .. s, 1)
        produce(b, base .. s, 0, { "v" .. s })
      end
      local src = new_source { bootstrap = b.bootstrap, subscribe_pattern = base .. "-.*",
        starting_offsets = "earliest" }
      local stop, rows = step(src, nil, 0)
      assert.same({ [base .. "-eu"] = { ["0"] = 1 }, [base .. "-us"] = { ["0"] = 1 } }, stop)
      assert.same({ base .. "-eu/0/0", base .. "-us/0/0" }, where(rows))
      src:stop()
    end)

    it("only the assigned partitions", function()
      local t = topic_name()
      b:create_topic(t, 3)
      for p = 0, 2 do produce(b, t, p, ids(p * 10, 2)) end
      local src = new_source { bootstrap = b.bootstrap, assign = { [t] = { 0, 2 } }, starting_offsets = "earliest" }
      local stop, rows = step(src, nil, 0)
      assert.same({ [t] = { ["0"] = 2, ["2"] = 2 } }, stop)
      assert.same({ t .. "/0/0", t .. "/0/1", t .. "/2/0", t .. "/2/1" }, where(rows))
      src:stop()
    end)

    it("from the latest offsets by default: the first batch is empty and pins where the stream starts", function()
      local t = topic_name()
      b:create_topic(t, 2)
      produce(b, t, 0, ids(1, 3))
      local src = new_source { bootstrap = b.bootstrap, subscribe = t }
      local stop, rows = step(src, nil, 0)
      assert.same({ [t] = { ["0"] = 3, ["1"] = 0 } }, stop)
      assert.same({}, rows)
      produce(b, t, 1, ids(4, 1))
      local _, rows2 = step(src, stop, 1)
      assert.same({ 4 }, sorted_ids(util.json_decode("[" .. rows2[1].value .. "]")))
      src:stop()
    end)

    it("from given offsets per partition (-2 earliest, -1 latest, absent: earliest)", function()
      local t = topic_name()
      b:create_topic(t, 3)
      for p = 0, 2 do produce(b, t, p, ids(p * 10, 5)) end
      local src = new_source { bootstrap = b.bootstrap, subscribe = t,
        starting_offsets = { [t] = { [0] = 3, ["1"] = -1 } } }
      local stop, rows = step(src, nil, 0)
      assert.same({ [t] = { ["0"] = 5, ["1"] = 5, ["2"] = 5 } }, stop)
      assert.same({ t .. "/0/3", t .. "/0/4", t .. "/2/0", t .. "/2/1", t .. "/2/2", t .. "/2/3", t .. "/2/4" },
        where(rows))
      src:stop()
      local bad = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = { [t] = { [7] = 0 } } }
      assert.matches("option 'starting_offsets': topic '" .. t .. "' has no partition 7 %(partitions: 0..2%)",
        err_of(bad.latest_offset, bad, nil))
      bad:stop()
    end)

    it("from the first message at or after a timestamp (ms or ISO-8601)", function()
      local t = topic_name()
      b:create_topic(t, 1)
      produce(b, t, 0, ids(1, 3))
      local src0 = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest" }
      local _, all = step(src0, nil, 0)
      src0:stop()
      local mid = all[3].timestamp + 1
      support.sleep_ms(20)
      produce(b, t, 0, ids(4, 2))
      for _, ts in ipairs { mid, util.iso8601(mid) } do
        local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_timestamp = ts }
        local _, rows = step(src, nil, 0)
        assert.same({ t .. "/0/3", t .. "/0/4" }, where(rows))
        src:stop()
      end
      -- after every message: nothing to read until a message at or after it comes
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_timestamp = mid + 60 * 1000 }
      assert.is_nil(src:latest_offset(nil))
      src:stop()
    end)

    it("max_offsets_per_trigger at most per batch, split fairly over the partitions", function()
      local t = topic_name()
      b:create_topic(t, 3)
      produce(b, t, 0, ids(1, 10))
      produce(b, t, 1, ids(11, 1))
      produce(b, t, 2, ids(12, 10))
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        max_offsets_per_trigger = 6 }
      local start, seen, sizes = nil, {}, {}
      for id = 0, 10 do
        local stop, rows = step(src, start, id)
        if stop == nil or (start and util.json_encode(stop) == util.json_encode(start)) then break end
        sizes[#sizes + 1] = #rows
        if id == 0 then
          -- 6 over three partitions: 2 each would leave 1 to partition 1; the rest goes to the others
          local per = {}
          for _, r in ipairs(rows) do per[r.partition] = (per[r.partition] or 0) + 1 end
          assert.same({ [0] = 3, [1] = 1, [2] = 2 }, { [0] = per[0], [1] = per[1], [2] = per[2] }) -- fair, rotation
        end
        for _, r in ipairs(rows) do seen[#seen + 1] = util.json_decode(r.value).id end
        start = stop
      end
      table.sort(seen)
      assert.same(range(1, 21), seen)
      assert.same({ 6, 6, 6, 3 }, sizes)
      src:stop()
    end)
  end)

  describe("reading ahead", function()
    -- With workers > 1 and max_offsets_per_trigger, get_batch starts
    -- reading the next batch (as latest_offset will plan it) on a thread
    -- of its own; the next read takes it only when it asks for exactly
    -- those offsets, and drops it otherwise.
    local core = require "tide.core"
    local before
    before_each(function()
      before = core.workers()
      core.workers(2)
    end)
    after_each(function() core.workers(before) end)

    local function ids_of(rows)
      local out = {}
      for i, r in ipairs(rows) do out[i] = r.id end
      table.sort(out)
      return out
    end

    it("reads the next batch while this one runs, and the next batch takes it", function()
      local t = topic_name()
      b:create_topic(t, 3)
      for p = 0, 2 do produce(b, t, p, ids(p * 30 + 1, 30)) end
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        format = "json", schema = "id int", max_offsets_per_trigger = 9 }
      local start, seen, batches = nil, {}, 0
      for id = 0, 20 do
        local stop, rows = step(src, start, id)
        if stop == nil or #rows == 0 then break end
        batches = batches + 1
        assert.equal(9, #rows)
        for _, r in ipairs(rows) do seen[#seen + 1] = r.id end
        start = stop
      end
      table.sort(seen)
      assert.same(range(1, 90), seen)
      assert.equal(10, batches)
      -- every batch after the first was read ahead (none after the last: nothing left)
      local used, dropped = src._reader:read_ahead_stats()
      assert.same({ 9, 0 }, { used, dropped })
      src:stop()
    end)

    it("is dropped when the next batch is another: a batch read again, partitions added", function()
      local t = topic_name()
      b:create_topic(t, 2)
      for p = 0, 1 do produce(b, t, p, ids(p * 20 + 1, 20)) end
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        format = "json", schema = "id int", max_offsets_per_trigger = 8 }
      local stop0, rows0 = step(src, nil, 0)
      local stop1, rows1 = step(src, stop0, 1)
      assert.same({ [t] = { ["0"] = 8, ["1"] = 8 } }, stop1)
      -- batch 1 again (as a re-run after a failure would read it): its own
      -- offsets, not the read ahead of batch 2
      local again = rows_of((src:get_batch(stop0, stop1, 1)))
      assert.same(ids_of(rows1), ids_of(again))
      local used, dropped = src._reader:read_ahead_stats()
      assert.same({ 1, 1 }, { used, dropped })
      -- a partition appears: batch 2's plan takes it from its earliest offset
      b:add_partitions(t, 3)
      produce(b, t, 2, ids(101, 4))
      local stop2, rows2 = step(src, stop1, 2)
      used, dropped = src._reader:read_ahead_stats()
      assert.same({ 1, 2 }, { used, dropped })
      assert.is_true(stop2[t]["2"] > 0)
      local seen = {}
      for _, rows in ipairs { rows0, rows1, rows2 } do
        for _, r in ipairs(rows) do seen[#seen + 1] = r.id end
      end
      local start = stop2
      for id = 3, 20 do
        local stop, rows = step(src, start, id)
        if #rows == 0 then break end
        for _, r in ipairs(rows) do seen[#seen + 1] = r.id end
        start = stop
      end
      table.sort(seen)
      local want = range(1, 40)
      for i = 101, 104 do want[#want + 1] = i end
      assert.same(want, seen)
      src:stop()
    end)

    it("stops with the source while it waits for offsets that do not come", function()
      local t = topic_name()
      b:create_topic(t, 1)
      produce(b, t, 0, ids(1, 8))
      -- poll_timeout: a read ahead that were not stopped would hold stop() for an hour
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        format = "json", schema = "id int", max_offsets_per_trigger = 4, poll_timeout = "1 hour" }
      local stop0 = src:latest_offset(nil)
      -- read ahead offsets 8..11, which no message has yet: the read waits
      local batches = src:get_batch(nil, stop0, 0)
      rows_of(batches)
      local reader = src._reader
      reader:read_ahead({ { t, 0, 8, 12 } }, 2)
      -- (it replaced get_batch's own read ahead of 4..7: dropped)
      assert.same({ 0, 1 }, { reader:read_ahead_stats() })
      -- a read of other offsets drops it (it is stopped, not waited for) and reads its own
      local got = reader:read({ { t, 0, 4, 8 } })
      assert.same({ 5, 6, 7, 8 }, ids_of(rows_of(got)))
      assert.same({ 0, 2 }, { reader:read_ahead_stats() })
      reader:read_ahead({ { t, 0, 8, 12 } }, 2)
      src:stop() -- stops it too
      assert.is_nil(src._reader)
    end)
  end)

  describe("isolation", function()
    -- A new topic of one partition, and a transactional producer to it
    -- with the row {"id":1} in its open transaction (stopped after the test).
    local function one_committed()
      local t = topic_name()
      b:create_topic(t, 1)
      local p = b:client("tx-" .. t)
      finally(function() p:stop() end)
      p:init()
      p:begin()
      p:produce(t, 0, "k", '{"id":1}')
      return t, p
    end

    it("is read_committed: aborted rows are never read, an open transaction holds the batch's end back", function()
      local t, p = one_committed()
      p:commit()
      p:begin()
      p:produce(t, 0, "k", '{"id":2}')
      p:abort()
      p:begin()
      p:produce(t, 0, "k", '{"id":3}')
      -- 3 is in an open transaction: the end stops before it
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        format = "json", schema = "id int" }
      local stop, rows = step(src, nil, 0)
      assert.same({ 1 }, sorted_ids(rows))
      local _, _, lso = b:offsets(t, 0)
      assert.same({ [t] = { ["0"] = lso } }, stop)
      p:commit()
      p:begin()
      p:produce(t, 0, "k", '{"id":4}')
      p:commit()
      local stop2, rows2 = step(src, stop, 1)
      assert.same({ 3, 4 }, sorted_ids(rows2))
      -- the end steps over the transaction markers
      local _, hi = b:offsets(t, 0)
      assert.same({ [t] = { ["0"] = hi } }, stop2)
      src:stop()
      -- read_uncommitted on request: the aborted row too
      local all = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        format = "json", schema = "id int", kafka = { ["isolation.level"] = "read_uncommitted" } }
      local _, rows3 = step(all, nil, 0)
      assert.same({ 1, 2, 3, 4 }, sorted_ids(rows3))
      all:stop()
    end)
    it("ends a batch at a transaction's marker without waiting for the next fetch, and reads it again whole", function()
      -- the marker is never handed out: the range ends by the client's
      -- position. Were it to wait for the partition's end instead, the
      -- broker would hold that fetch for fetch.wait.max.ms (20 s here),
      -- past the poll timeout (10 s): the batch would fail.
      local t, p = one_committed()
      p:produce(t, 0, "k", '{"id":2}')
      p:commit()
      local function reader(settings)
        local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
          format = "json", schema = "id int", poll_timeout = 10000, kafka = settings }
        finally(function() src:stop() end)
        return function(from, to, id)
          return sorted_ids(rows_of(src:get_batch({ [t] = { ["0"] = from } }, { [t] = { ["0"] = to } }, id)))
        end
      end
      local read = reader { ["fetch.wait.max.ms"] = 20000 }
      local _, hi = b:offsets(t, 0)
      assert.equal(3, hi) -- two rows and the commit marker
      assert.same({ 1, 2 }, read(0, 3, 0))
      p:begin()
      p:produce(t, 0, "k", '{"id":3}')
      p:commit()
      assert.same({ 3 }, read(3, 5, 1))
      -- read again from the start (a batch run again after a failure):
      -- the client's position from before must not end a range early.
      -- (A new reader: a reader that goes back waits for its fetch in
      -- flight, which the broker holds up to fetch.wait.max.ms.)
      local again = reader(nil)
      assert.same({ 1, 2, 3 }, again(0, 5, 0))
      assert.same({ 1, 2 }, again(0, 3, 1))
      assert.same({ 3 }, again(3, 5, 2))
      assert.same({ 1, 2, 3 }, again(0, 5, 3))
    end)
  end)

  describe("values", function()
    local function bad_input(t)
      b:create_topic(t, 1)
      produce(b, t, 0, { '{"id":1}', "{not json", '{"id":"x"}', '{\n "id": 4\n}' })
      produce(b, t, 0, { "k5\t" }, nil, true)
      produce(b, t, 0, { '{"id":6} {"id":7}', '{"id":8}' })
    end

    it("decode as json into the schema, the metadata columns on request", function()
      local t = topic_name()
      b:create_topic(t, 2)
      produce(b, t, 1, { 'a\t{"id":1,"name":"x"}', '{"id":2}' })
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest", format = "json",
        schema = "id int, name string?", include_metadata = true }
      local _, rows = step(src, nil, 0)
      assert.same({ t .. "/1/0", t .. "/1/1" }, where(rows, "kafka_"))
      table.sort(rows, function(x, y) return x.id < y.id end)
      assert.equal("x", rows[1].name)
      assert.equal("a", rows[1].kafka_key)
      assert.is_nil(rows[2].name)
      src:stop()
    end)

    it("decode as csv", function()
      local t = topic_name()
      b:create_topic(t, 1)
      produce(b, t, 0, { "1,a", "2,b" })
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest", format = "csv",
        schema = "id int, s string" }
      local _, rows = step(src, nil, 0)
      assert.same({ 1, 2 }, sorted_ids(rows))
      src:stop()
    end)

    it("that are bad fail the batch by default, naming topic, partition and offset", function()
      local t = topic_name()
      bad_input(t)
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest", format = "json",
        schema = "id int" }
      local stop = src:latest_offset(nil)
      local msg = err_of(src.get_batch, src, nil, stop, 0)
      assert.matches("topic '" .. t .. "' partition 0 offset 1: ", msg, 1, true)
      src:stop()
    end)

    it("that are bad are dropped and counted under bad_records = 'drop'", function()
      local t = topic_name()
      bad_input(t)
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest", format = "json",
        schema = "id int", bad_records = "drop" }
      local _, rows, counts = step(src, nil, 0)
      -- a value over several lines is one record
      assert.same({ 1, 4, 8 }, sorted_ids(rows))
      assert.equal(4, counts.dropped)
      src:stop()
    end)

    it("that are bad go to the dead-letter topic with the reason under bad_records = 'dead_letter'", function()
      local t = topic_name()
      bad_input(t)
      local dir = tmpname()
      local db = tide.open(dir)
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest", format = "json",
        schema = "id int", bad_records = "dead_letter", dead_letter_topic = "bad", store = db }
      local stop, rows, counts = step(src, nil, 7)
      assert.same({ 1, 4, 8 }, sorted_ids(rows))
      assert.equal(4, counts.dead_letter)
      -- the same batch again (a replay) adds nothing
      rows_of((src:get_batch(nil, stop, 7)))
      local dead = {}
      for r in db:topic("bad"):read() do dead[#dead + 1] = r end
      table.sort(dead, function(x, y) return x.kafka_offset < y.kafka_offset end)
      assert.equal(4, #dead)
      assert.same({ 1, 2, 4, 5 }, { dead[1].kafka_offset, dead[2].kafka_offset, dead[3].kafka_offset,
        dead[4].kafka_offset })
      assert.equal("{not json", dead[1].text)
      assert.equal(t, dead[1].kafka_topic)
      assert.equal(0, dead[1].kafka_partition)
      assert.matches("expected int", dead[2].reason)
      assert.equal("the message has no value (a tombstone)", dead[3].reason)
      assert.matches("unexpected text after the object", dead[4].reason)
      src:stop()
      db:close()
      os.execute("rm -rf " .. sh_quote(dir))
    end)

    it("decoded in chunks on the worker pool keep the messages' order, and the bad ones theirs", function()
      -- 100000 messages: a full pool run of two chunks, then a shorter one
      -- (core/kafka.c, CHUNK_ROWS); a bad value every 9999 offsets
      local core = require "tide.core"
      local before = core.workers()
      core.workers(2)
      local t = topic_name()
      b:create_topic(t, 1)
      local lines, bad = {}, {}
      for i = 0, 99999 do
        if i % 9999 == 5000 then
          lines[#lines + 1] = '{"id":"bad' .. i .. '"}'
          bad[#bad + 1] = i
        else
          lines[#lines + 1] = '{"id":' .. i .. '}'
        end
      end
      produce(b, t, 0, lines)
      local dir = tmpname()
      local db = tide.open(dir)
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest", format = "json",
        schema = "id int", bad_records = "dead_letter", dead_letter_topic = "bad", store = db }
      local _, rows, counts = step(src, nil, 0)
      src:stop()
      local want = {}
      for i = 0, 99999 do
        if i % 9999 ~= 5000 then want[#want + 1] = i end
      end
      local got = {}
      for i, r in ipairs(rows) do got[i] = r.id end
      assert.same(want, got) -- in offset order, none lost
      assert.equal(#bad, counts.dead_letter)
      local dead = {}
      for r in db:topic("bad"):read() do dead[#dead + 1] = r.kafka_offset end
      assert.same(bad, dead)
      db:close()
      os.execute("rm -rf " .. sh_quote(dir))
      -- under "fail", the first bad message is the one named
      local src2 = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest", format = "json",
        schema = "id int" }
      local stop = src2:latest_offset(nil)
      local msg = err_of(src2.get_batch, src2, nil, stop, 0)
      assert.matches("topic '" .. t .. "' partition 0 offset 5000: ", msg, 1, true)
      src2:stop()
      core.workers(before)
    end)

    it("that are not UTF-8 are bad records of the message columns too", function()
      local t = topic_name()
      b:create_topic(t, 1)
      produce(b, t, 0, { "ok", "\255\254" })
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest" }
      local stop = src:latest_offset(nil)
      assert.matches("topic '" .. t .. "' partition 0 offset 1: the value is not valid UTF%-8",
        err_of(src.get_batch, src, nil, stop, 0))
      src:stop()
      local drop = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        bad_records = "drop" }
      local _, rows, counts = step(drop, nil, 0)
      assert.equal(1, #rows)
      assert.equal(1, counts.dropped)
      drop:stop()
    end)

    it("that are not UTF-8 land in the dead-letter topic byte for byte (raw_base64)", function()
      local t = topic_name()
      b:create_topic(t, 1)
      produce(b, t, 0, { "ok", "\255\254x" })
      local dir = tmpname()
      local db = tide.open(dir)
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        bad_records = "dead_letter", dead_letter_topic = "bad", store = db }
      local _, rows, counts = step(src, nil, 3)
      assert.equal(1, #rows)
      assert.equal(1, counts.dead_letter)
      local dead = {}
      for r in db:topic("bad"):read() do dead[#dead + 1] = r end
      assert.equal(1, #dead)
      assert.equal(1, dead[1].kafka_offset)
      assert.equal("//54", dead[1].raw_base64)
      assert.equal("\u{FFFD}\u{FFFD}x", dead[1].text)
      src:stop()
      db:close()
      os.execute("rm -rf " .. sh_quote(dir))
    end)
  end)

  describe("in a query", function()
    -- A query over topic t into a sink that keeps each batch's rows by
    -- batch id (idempotent per batch, as sinks must be); fail_at: the sink
    -- raises at that batch id.
    local function run(t, ck, out, fail_at, extra)
      local o = { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest", format = "json",
        schema = "id int", max_offsets_per_trigger = 4 }
      for k, v in pairs(extra or {}) do o[k] = v end
      local q = tide.read_stream("kafka", o):write_stream(tide.sink { add_batch = function(_, id, rows)
        if id == fail_at then error("sink down") end
        local ids_ = {}
        for i, r in ipairs(rows) do ids_[i] = r.id end
        out[id] = ids_
      end }, { checkpoint = ck, trigger = "available_now" })
      local ok, err = pcall(q.await, q)
      return ok, err, q
    end

    local function all_ids(out)
      local seen = {}
      for _, list in pairs(out) do
        for _, id in ipairs(list) do seen[#seen + 1] = id end
      end
      table.sort(seen)
      return seen
    end

    it("restarts from its checkpoint: no row lost or repeated, a re-run batch reads the same offsets", function()
      local t = topic_name()
      b:create_topic(t, 3)
      for p = 0, 2 do produce(b, t, p, ids(p * 100 + 1, 7)) end
      local ck, out = tmpname(), {}
      local ok, err = run(t, ck, out, 2)
      assert.is_false(ok)
      assert.matches("sink down", tostring(err))
      assert.same({ 0, 1 }, (function()
        local k = {}
        for id in pairs(out) do k[#k + 1] = id end
        table.sort(k)
        return k
      end)())
      -- more input while it is down
      produce(b, t, 1, ids(1001, 3))
      local first2
      local log = ck .. "/offsets/2"
      local f = io.open(log)
      if f then
        first2 = f:read("a")
        f:close()
      end
      assert.is_true(run(t, ck, out))
      local want = {}
      for p = 0, 2 do for i = 1, 7 do want[#want + 1] = p * 100 + i end end
      for i = 1001, 1003 do want[#want + 1] = i end
      table.sort(want)
      assert.same(want, all_ids(out))
      if first2 then
        f = assert(io.open(log))
        assert.equal(first2, f:read("a"))
        f:close()
      end
      os.execute("rm -rf " .. sh_quote(ck))
    end)

    it("reports the lag behind each partition's end in its progress, and commits to group_id", function()
      local t = topic_name()
      b:create_topic(t, 2)
      produce(b, t, 0, ids(1, 6))
      produce(b, t, 1, ids(7, 2))
      local ck, out = tmpname(), {}
      local o = { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest", max_offsets_per_trigger = 4,
        group_id = "monitor-" .. t }
      local q = tide.read_stream("kafka", o):write_stream(tide.sink { add_batch = function(_, id, rows)
        out[id] = #rows
      end }, { checkpoint = ck, trigger = "available_now" })
      q:await()
      local total = 0
      for _, k in pairs(out) do total = total + k end
      assert.equal(8, total)
      local progress = q:recent_progress()
      assert.same({ [t] = { ["0"] = 4, ["1"] = 0 } }, progress[1].sources[1].lag)
      assert.same({ [t] = { ["0"] = 0, ["1"] = 0 } }, progress[#progress].sources[1].lag)
      -- the group's committed offsets (a monitoring view) reach the end
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, group_id = "monitor-" .. t }
      local committed
      for _ = 1, 50 do
        committed = src._reader:committed { { t, 0 }, { t, 1 } }
        if committed and committed[1] == 6 and committed[2] == 2 then break end
        support.sleep_ms(100)
      end
      assert.same({ 6, 2 }, committed)
      src:stop()
      os.execute("rm -rf " .. sh_quote(ck))
    end)
  end)

  describe("under tide run", function()
    local PIPELINE = [[
local tide = require "tide"
tide.read_stream("kafka", { bootstrap = arg[1], subscribe = arg[2], starting_offsets = "earliest",
  max_offsets_per_trigger = 4 })
  :write_stream("memory", { name = "lagging", trigger = "1 hour", checkpoint = arg[3] })
]]

    it("shows each partition's lag in /metrics, and the status line the total and the worst partition", function()
      local t = topic_name()
      b:create_topic(t, 2)
      produce(b, t, 0, ids(1, 9))
      produce(b, t, 1, ids(10, 1))
      local dir = tmpname()
      os.execute("mkdir -p " .. dir)
      local script, log, errf = dir .. "/p.lua", dir .. "/progress.jsonl", dir .. "/stderr"
      support.write_file(script, PIPELINE)
      local p = io.popen(string.format("cd %s && %s/bin/tide --data %s/data run --quiet --ui 127.0.0.1:0 " ..
        "--log-progress %s %s %s %s %s >/dev/null 2>%s & echo $!", dir, support.ROOT, dir, log, script,
        sh_quote(b.bootstrap), t, dir .. "/ck", errf))
      local pid = p:read("l")
      p:close()
      finally(function()
        os.execute("kill " .. pid .. " 2>/dev/null; sleep 0.2")
        os.execute("rm -rf " .. sh_quote(dir))
      end)
      local url, samples
      for _ = 1, 300 do
        url = url or support.read_file(errf):match("tide: ui at (http://%S+)")
        if url and (support.read_file(log) or "") ~= "" then
          local _, out = support.run_cmd("env -u LD_PRELOAD /usr/bin/python3 " .. support.ROOT ..
            "/spec/ui_http.py metrics " .. sh_quote(url .. "metrics"))
          samples = util.json_decode(out)
          break
        end
        support.sleep_ms(100)
      end
      assert(samples, "no progress: " .. (support.read_file(errf) or ""))
      local lag = {}
      for _, x in ipairs(samples) do
        if x[1] == "tide_source_lag_records" then lag[x[2].topic .. "/" .. x[2].partition] = x[3] end
      end
      -- 4 offsets split over two partitions: 3 from partition 0, 1 from partition 1
      assert.same({ [t .. "/0"] = 6, [t .. "/1"] = 0 }, lag)
      local first = util.json_decode(support.read_file(log):match("[^\n]+"))
      assert.same({ [t] = { ["0"] = 6, ["1"] = 0 } }, first.sources[1].lag)
      local cli = require "tide.cli"
      local line = cli.status_line("lagging", { input_rate = 0, processed_rate = 0, batch_id = 0, now = 0,
        behind = cli.offset_lag(first) })
      assert.equal("query lagging: in 0 rows/s, processed 0 rows/s, batch 0, watermark -, lag -, behind 6 offsets " ..
        "(most: " .. t .. "/0 6)", line)
    end)
  end)

  describe("failures", function()
    it("a broker down during a batch: the batch waits up to poll_timeout, fails naming the partition; " ..
      "back up, the same batch reads every row", function()
      local t = topic_name()
      b:create_topic(t, 1)
      b:leader(t, 0, 2)
      produce(b, t, 0, ids(1, 2))
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        format = "json", schema = "id int", poll_timeout = "1500ms" }
      local start = step(src, nil, 0)
      produce(b, t, 0, ids(3, 3))
      local stop = src:latest_offset(start)
      src:stop()
      -- a fresh source (as after a restart): nothing of the new rows fetched yet
      src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        format = "json", schema = "id int", poll_timeout = "1500ms" }
      b:broker_down(2)
      local ok, msg = pcall(src.get_batch, src, start, stop, 1)
      b:broker_up(2)
      assert.is_false(ok)
      msg = util.strip_position(msg)
      assert.matches("offsets not received within 1500 ms: topic '" .. t .. "' partition 0 at offset 2 of 2..4", msg,
        1, true)
      src:stop()
      -- the query restarts (a new source) and runs the same batch again
      src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        format = "json", schema = "id int" }
      local rows = rows_of((src:get_batch(start, stop, 1)))
      assert.same(range(3, 5), sorted_ids(rows))
      src:stop()
    end)

    it("injected request errors are retried: the batch reads every row once", function()
      local t = topic_name()
      b:create_topic(t, 2)
      produce(b, t, 0, ids(1, 5))
      produce(b, t, 1, ids(6, 5))
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        format = "json", schema = "id int" }
      local stop = src:latest_offset(nil)
      b:push_errors("Fetch", 3, "NOT_LEADER_FOR_PARTITION")
      local rows = rows_of((src:get_batch(nil, stop, 0)))
      assert.same(range(1, 10), sorted_ids(rows))
      b:push_errors("ListOffsets", 2, "REQUEST_TIMED_OUT")
      produce(b, t, 0, ids(11, 1))
      local stop2 = src:latest_offset(stop)
      assert.same({ [t] = { ["0"] = 6, ["1"] = 5 } }, stop2)
      src:stop()
    end)

    it("offsets deleted by retention fail the query, naming topic, partition and offsets", function()
      local t = topic_name()
      b:create_topic(t, 1)
      produce(b, t, 0, ids(1, 10))
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        format = "json", schema = "id int", max_offsets_per_trigger = 3 }
      local stop = step(src, nil, 0)
      assert.same({ [t] = { ["0"] = 3 } }, stop)
      b:log_start(t, 0, 6)
      local stop2 = src:latest_offset(stop)
      src:stop()
      -- restarted (what the first source fetched ahead it may still hold)
      src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        format = "json", schema = "id int", max_offsets_per_trigger = 3 }
      local msg = err_of(src.get_batch, src, stop, stop2, 1)
      assert.matches("topic '" .. t .. "' partition 0: offsets 3..5 are no longer held (deleted by retention); " ..
        "the first offset still available is 6", msg, 1, true)
      assert.matches("fail_on_data_loss = false", msg, 1, true)
      src:stop()
    end)

    it("offsets deleted by retention are skipped, counted and warned about under fail_on_data_loss = false", function()
      local t = topic_name()
      b:create_topic(t, 1)
      produce(b, t, 0, ids(1, 10))
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        format = "json", schema = "id int", max_offsets_per_trigger = 3, fail_on_data_loss = false }
      local stop = step(src, nil, 0)
      b:log_start(t, 0, 5)
      local stop2 = src:latest_offset(stop)
      assert.same({ [t] = { ["0"] = 6 } }, stop2)
      src:stop()
      src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "earliest",
        format = "json", schema = "id int", max_offsets_per_trigger = 3, fail_on_data_loss = false }
      local rows, counts = src:get_batch(stop, stop2, 1)
      assert.same({ 6 }, sorted_ids(rows_of(rows)))
      assert.equal(2, counts.lost_offsets)
      src:stop()
    end)

    it("a topic that disappears follows fail_on_data_loss", function()
      local t, t2 = topic_name(), topic_name()
      b:create_topic(t, 1)
      b:create_topic(t2, 1)
      produce(b, t, 0, ids(1, 2))
      produce(b, t2, 0, ids(3, 1))
      local function src_of(lenient)
        return new_source { bootstrap = b.bootstrap, subscribe = t .. "," .. t2, starting_offsets = "earliest",
          format = "json", schema = "id int", fail_on_data_loss = not lenient }
      end
      local strict, lenient = src_of(false), src_of(true)
      local stop = step(strict, nil, 0)
      local stop_l = step(lenient, nil, 0)
      assert.same({ [t] = { ["0"] = 2 }, [t2] = { ["0"] = 1 } }, stop)
      -- the broker now says the topic does not exist
      b:topic_error(t, "UNKNOWN_TOPIC_OR_PART")
      finally(function() b:topic_error(t, "NO_ERROR") end)
      assert.matches("topic '" .. t .. "' partition 0 no longer exists %(offsets from 2 on were not read%)",
        err_of(strict.latest_offset, strict, stop))
      produce(b, t2, 0, ids(4, 1))
      local stop2, rows = step(lenient, stop_l, 1)
      assert.same({ [t2] = { ["0"] = 2 } }, stop2)
      assert.same({ 4 }, sorted_ids(rows))
      strict:stop()
      lenient:stop()
    end)

    it("partitions added mid-run are read from their earliest offset", function()
      local t = topic_name()
      b:create_topic(t, 1)
      produce(b, t, 0, ids(1, 2))
      local src = new_source { bootstrap = b.bootstrap, subscribe = t, starting_offsets = "latest",
        format = "json", schema = "id int" }
      local stop = step(src, nil, 0)
      b:add_partitions(t, 3)
      produce(b, t, 2, ids(10, 2))
      produce(b, t, 0, ids(3, 1))
      local stop2, rows = step(src, stop, 1)
      assert.same({ [t] = { ["0"] = 3, ["1"] = 0, ["2"] = 2 } }, stop2)
      assert.same({ 3, 10, 11 }, sorted_ids(rows))
      src:stop()
    end)
  end)
end)
