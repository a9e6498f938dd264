-- tide.topology: where a plan is split into sub-topologies, the names of the
-- internal topics, the refusals, and the repartition codec (rows, keys,
-- watermark markers) from Lua; the partitioner against librdkafka's on the
-- test broker.
local tide = require "tide"
local core = require "tide.core"
local exec = require "tide.exec"
local topology = require "tide.topology"
local kafka_broker = require "kafka_broker"

local BOOT = "127.0.0.1:9"

local function kafka(opts)
  local o = { bootstrap = BOOT, subscribe = "orders" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return tide.read_stream("kafka", o)
end

local function orders(extra)
  local o = { format = "json", schema = "ts timestamp, user string, amount double, id int" }
  for k, v in pairs(extra or {}) do o[k] = v end
  return kafka(o)
end

-- The plain message columns (key, value, topic, partition, offset, timestamp, ...).
local function messages() return kafka() end

local function split(f, app) return topology.split(f, app or "app") end

local function err_of(fn)
  local ok, e = pcall(fn)
  assert.is_false(ok)
  return tostring(e)
end

local function outputs(t)
  local out = {}
  for i, s in ipairs(t.subs) do
    out[i] = { id = s.id, sources = table.concat(s.sources, ","), output = s.output.kind, topic = s.output.topic,
      key = s.output.key and table.concat(s.output.key, ","), watermark = s.watermark,
      stateful = table.concat(s.stateful, ",") }
  end
  return out
end

describe("topology.split", function()
  it("keeps a query in one sub-topology when nothing needs repartitioning", function()
    local t = split(messages():where("value <> ''"):select("key", "value"))
    assert.same({ { id = 0, sources = "orders", output = "sink", watermark = "marks", stateful = "" } }, outputs(t))
    assert.same({}, t.changelogs)
  end)

  it("splits an aggregation grouped by a column that is not the Kafka key before it", function()
    local f = orders():with_watermark("ts", "10 seconds"):group_by(tide.window("ts", "1 minute"), "user")
      :agg { "count(*) AS n" }
    local t = split(f, "orders-app")
    assert.same({
      { id = 0, sources = "orders", output = "repartition", topic = "orders-app-agg1-repartition", key = "user",
        watermark = "marks", stateful = "" },
      { id = 1, sources = "orders-app-agg1-repartition", output = "sink", watermark = "repartition", stateful = "1" },
    }, outputs(t))
    assert.same({ "orders-app-agg1-changelog" }, t.changelogs)
    -- the upstream part ends at the aggregation's input (the watermark); the
    -- downstream part reads the topic with the same columns and event time
    local up, down = t.subs[1], t.subs[2]
    assert.equal("watermark", up.root.op)
    assert.equal(f._node.schema:ddl(), down.root.schema:ddl())
    local src = down.inputs[1].node
    assert.equal("repartition", down.inputs[1].kind)
    assert.equal("RepartitionSource orders-app-agg1-repartition", src.label)
    assert.equal(up.root.schema:ddl(), src.schema:ddl())
    assert.equal("ts", src.event_time)
    assert.equal(10000, src.event_delay)
    assert.equal(1, up.output.reader)
    -- the frame's own nodes are untouched
    assert.equal("watermark", f._node.input.op)
  end)

  it("does not repartition what is grouped by the Kafka key passed through unchanged", function()
    -- the message columns: `key`; with a value format and include_metadata: `kafka_key`
    assert.equal(1, #split(messages():group_by("key"):agg { "count(*) AS n" }).subs)
    assert.equal(1, #split(orders { include_metadata = true }:group_by("kafka_key"):agg { "count(*) AS n" }).subs)
    -- renamed, selected, filtered, with other keys besides: still the key
    assert.equal(1, #split(messages():select("key AS k", "value"):where("value <> ''"):group_by("k")
      :agg { "count(*) AS n" }).subs)
    assert.equal(1, #split(messages():rename { key = "customer" }:group_by("customer", "partition")
      :agg { "count(*) AS n" }).subs)
    local m = messages():with_watermark("timestamp", "5 seconds")
    assert.equal(1, #split(m:group_by(tide.window("timestamp", "1 minute"), "key"):agg { "count(*) AS n" }).subs)
    assert.equal(1, #split(m:drop_duplicates("key", "timestamp")).subs)
  end)

  it("repartitions when the key is changed, computed, left out or unknown", function()
    local t = split(messages():group_by("upper(key)"):agg { "count(*) AS n" })
    assert.equal(2, #t.subs)
    assert.equal("upper(key)", t.subs[1].output.key[1])
    assert.equal(2, #split(messages():group_by("value"):agg { "count(*) AS n" }).subs)
    -- a Lua function's output says nothing of its input's partitioning
    local mapped = messages():map(function(r) return { key = r.key } end, "key string?")
    assert.equal(2, #split(mapped:group_by("key"):agg { "count(*) AS n" }).subs)
    -- a JSON value has no Kafka key column unless include_metadata adds it
    assert.equal(2, #split(orders():group_by("id"):agg { "count(*) AS n" }).subs)
  end)

  it("sends a global aggregation to one partition with the constant key", function()
    local t = split(orders():agg { "sum(amount) AS total" })
    assert.equal(2, #t.subs)
    assert.same({}, t.subs[1].output.key)
    assert.is_nil(t.subs[1].output.key_schema)
  end)

  it("numbers the stateful operators as the checkpoint does and splits before each one that needs it", function()
    local f = orders():with_watermark("ts", "1 minute"):drop_duplicates_within_watermark("id")
      :group_by(tide.window("ts", "1 minute"), "user"):agg { "count(*) AS n" }
    local t = split(f)
    assert.same({
      { id = 0, sources = "orders", output = "repartition", topic = "app-dedup1-repartition", key = "id",
        watermark = "marks", stateful = "" },
      { id = 1, sources = "app-dedup1-repartition", output = "repartition", topic = "app-agg2-repartition",
        key = "user", watermark = "repartition", stateful = "1" },
      { id = 2, sources = "app-agg2-repartition", output = "sink", watermark = "repartition", stateful = "2" },
    }, outputs(t))
    assert.same({ "app-dedup1-changelog", "app-agg2-changelog" }, t.changelogs)
    -- rows repartitioned by id stay partitioned by id: grouping by id again needs no second topic
    local g = orders():drop_duplicates("id"):group_by("id", "user"):agg { "count(*) AS n" }
    assert.same({ "app-dedup1-repartition" }, split(g).subs[2].sources)
    assert.equal(2, #split(g).subs)
  end)

  it("repartitions each side of a stream-stream join by its join keys", function()
    local a = orders():with_watermark("ts", "10 seconds")
    local b = kafka { subscribe = "clicks", format = "json", schema = "cts timestamp, cid int, page string" }
      :with_watermark("cts", "10 seconds")
    local t = split(a:join(b, "id = cid AND cts BETWEEN ts AND ts + interval 1 minute"))
    assert.same({
      { id = 0, sources = "orders", output = "repartition", topic = "app-join1-left-repartition", key = "id",
        watermark = "marks", stateful = "" },
      { id = 1, sources = "clicks", output = "repartition", topic = "app-join1-right-repartition", key = "cid",
        watermark = "marks", stateful = "" },
      { id = 2, sources = "app-join1-left-repartition,app-join1-right-repartition", output = "sink",
        watermark = "repartition", stateful = "1" },
    }, outputs(t))
    -- a side joined on its Kafka key is read as it is
    local m = kafka { subscribe = "users" }:select("key AS uid", "value AS name", "timestamp AS uts")
      :with_watermark("uts", "10 seconds")
    local c = orders():select("ts", "user", "id"):with_watermark("ts", "10 seconds")
    local t2 = split(c:join(m, "user = uid AND uts BETWEEN ts AND ts + interval 1 minute"))
    assert.same({ "app-join1-left-repartition", "users" }, t2.subs[2].sources)
    assert.equal(2, #t2.subs)
  end)

  it("repartitions session windows and process by their keys", function()
    local s = orders():with_watermark("ts", "10 seconds")
      :group_by(tide.session_window("ts", "5 minutes"), "user"):agg { "count(*) AS n" }
    local t = split(s)
    assert.equal("app-session1-repartition", t.subs[1].output.topic)
    assert.same({ "user" }, t.subs[1].output.key)
    local p = orders():group_by("user"):process(function(_, rows) return rows end,
      { schema = "ts timestamp, user string, amount double, id int" })
    local tp = split(p)
    assert.equal("app-process1-repartition", tp.subs[1].output.topic)
    assert.same({ "app-process1-changelog" }, tp.changelogs)
  end)

  it("names each stateful operator by its kind and place, as a checkpoint's state databases, and lists a " ..
    "source's topics", function()
    local a = orders():with_watermark("ts", "10 seconds"):drop_duplicates("id")
      :group_by(tide.session_window("ts", "5 minutes"), "user"):agg { "count(*) AS n" }
    local names = {}
    local k = 0
    require("tide.plan").walk(a._node, function(n)
      if n.stateful then
        k = k + 1
        names[#names + 1] = topology.state_name(n, k)
      end
    end)
    assert.same({ "dedup1", "session2" }, names)
    assert.same({ "app-dedup1-changelog", "app-session2-changelog" }, split(a).changelogs)
    assert.same({ "a", "b" }, topology.topics_of(kafka({ subscribe = " a, b" })._node))
  end)

  it("names the same topics for the same query every time, whatever stateless operators change", function()
    local function q(extra)
      local f = orders()
      if extra then f = f:where("amount > 0"):with_column("x", "amount * 2") end
      return split(f:group_by("user"):agg { "count(*) AS n" }, "stable")
    end
    assert.same(outputs(q(false)), outputs(q(true)))
    assert.same(q(false).changelogs, q(true).changelogs)
  end)

  it("refuses what cannot run split into tasks, saying why", function()
    local agg = orders():group_by("user"):agg { "count(*) AS n" }
    assert.matches("order_by on a stream cannot run under an application_id: each task holds only the groups of " ..
      "its own partitions", err_of(function() split(agg:order_by("n")) end), 1, true)
    assert.matches("limit on a stream cannot run", err_of(function() split(agg:limit(3)) end), 1, true)
    local rate = tide.read_stream("rate", { rows_per_second = 1 })
    assert.matches("reads a rate source: under an application_id every source must be Kafka",
      err_of(function() split(rate) end), 1, true)
    assert.matches("needs option 'subscribe'",
      err_of(function() split(tide.read_stream("kafka", { bootstrap = BOOT, subscribe_pattern = "o.*" })) end), 1, true)
    -- one topic on both sides of a repartitioned self-join
    local a = orders():with_watermark("ts", "10 seconds")
    local b = orders():select("ts AS ts2", "id AS id2"):with_watermark("ts2", "10 seconds")
    assert.matches("topic 'orders' is read by two sub-topologies (0 and 1)",
      err_of(function() split(a:join(b, "id = id2 AND ts2 BETWEEN ts AND ts + interval 1 minute")) end), 1, true)
    assert.matches("application id 'a b' may hold only ASCII letters, digits",
      err_of(function() topology.split(agg, "a b") end), 1, true)
    assert.matches("expected an application id", err_of(function() topology.split(agg, "") end), 1, true)
    assert.matches("a static frame is not a stream",
      err_of(function() topology.split(tide.from_rows({ { x = 1 } }), "a") end), 1, true)
  end)
end)

describe("topology.partition_counts", function()
  it("gives repartition topics their readers' counts and refuses co-partitioned inputs that differ", function()
    local f = orders():group_by("user"):agg { "count(*) AS n" }
    local c = topology.partition_counts(split(f), { orders = 6 })
    assert.same({ topics = { ["app-agg1-repartition"] = 6 }, tasks = { [0] = 6, [1] = 6 },
      upstreams = { ["app-agg1-repartition"] = 6 } }, c)
    local a = orders():with_watermark("ts", "10 seconds")
    local b = kafka { subscribe = "clicks", format = "json", schema = "cts timestamp, cid int" }
      :with_watermark("cts", "10 seconds")
    local t = split(a:join(b, "id = cid AND cts BETWEEN ts AND ts + interval 1 minute"))
    local j = topology.partition_counts(t, { orders = 4, clicks = 2 })
    assert.same({ ["app-join1-left-repartition"] = 4, ["app-join1-right-repartition"] = 4 }, j.topics)
    assert.same({ ["app-join1-left-repartition"] = 4, ["app-join1-right-repartition"] = 2 }, j.upstreams)
    local m = kafka { subscribe = "users" }:select("key AS uid", "timestamp AS uts"):with_watermark("uts", "1 second")
    local t2 = split(a:join(m, "user = uid AND uts BETWEEN ts AND ts + interval 1 minute"))
    assert.same({ ["app-join1-left-repartition"] = 3 },
      topology.partition_counts(t2, { orders = 5, users = 3 }).topics)
    local two = kafka { subscribe = "a,b", format = "json", schema = "x int" }
    assert.matches("the topics of one sub-topology must have the same number of partitions (a task reads " ..
      "partition p of each): 'a' has 2, 'b' has 3",
      err_of(function() topology.partition_counts(split(two), { a = 2, b = 3 }) end), 1, true)
  end)
end)

-- ------------------------------------------------------------------------
-- The codec
-- ------------------------------------------------------------------------

local ALL = "i int?, t timestamp?, d double?, b bool?, s string?, j json?"

local function all_rows()
  return {
    { i = math.mininteger, t = -62167219200000, d = 0.1, b = true, s = "", j = { a = { 1, { b = "x\n" } } } },
    { i = math.maxinteger, t = 253402300799999, d = -0.0, b = false, s = "h\u{e9}llo \u{1F600}", j = { 1, 2.5 } },
    { i = 0, t = 1700000000123, d = 1 / 0, s = "a\0b", j = "text" },
    { d = 0 / 0 },
    {},
  }
end

-- A repartition output and reader over a schema (no plan needed).
local function codec(schema, key_cols, partitions, upstreams)
  local s = assert(core.schema(schema))
  local exprs, fields = {}, {}
  for i, c in ipairs(key_cols) do
    exprs[i] = assert(core.expr("`" .. c .. "`", s))
    fields[i] = { "k" .. i, exprs[i]:type() .. "?" }
  end
  local out = { kind = "repartition", topic = "t-r", key = key_cols, key_exprs = exprs,
    key_schema = #fields > 0 and assert(core.schema(fields)) or nil }
  local node = { op = "source", schema = s, stream = { kind = "repartition", topic = "t-r",
    repartition = { topic = "t-r" } } }
  return topology.writer(out, partitions), topology.reader(node, upstreams or 1), s
end

-- RFC 4648 base64, for messages made by hand
local function b64(raw)
  local abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local out = {}
  for i = 1, #raw, 3 do
    local a, b, c = raw:byte(i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local q = {}
    for k = 1, 4 do q[k] = abc:sub((v >> (6 * (4 - k))) % 64 + 1, (v >> (6 * (4 - k))) % 64 + 1) end
    if not c then q[4] = "=" end
    if not b then q[3] = "=" end
    out[#out + 1] = table.concat(q)
  end
  return table.concat(out)
end

local function as_messages(mb)
  local list = {}
  for i, r in ipairs(mb:rows()) do list[i] = { partition = r.partition, offset = 100 + i, value = r.value } end
  return list
end

describe("repartition messages", function()
  it("carry every type exactly: timestamps, doubles, NULLs, nested JSON", function()
    local w, r, s = codec(ALL, { "s", "i" }, 5)
    local b = assert(core.rows_batch(s, all_rows()))
    local mb = w:encode(b)
    assert.equal(5, mb:nrows())
    local function same_rows(back)
      local want, got = b:rows(), back:rows()
      assert.equal(5, #got)
      for k = 1, 5 do
        for _, c in ipairs { "i", "t", "b", "s", "j" } do assert.same(want[k][c], got[k][c]) end
        -- bit for bit (NaN and -0.0 included); NULL stays NULL
        assert.equal(want[k].d == nil, got[k].d == nil)
        assert.equal(string.pack("<d", want[k].d or 0), string.pack("<d", got[k].d or 0))
      end
      assert.equal(string.pack("<d", -0.0), string.pack("<d", got[2].d))
      assert.equal("a\0b", got[3].s)
      assert.same(b:schema(), back:schema())
    end
    same_rows(r:decode(as_messages(mb))[1])
    -- from the messages batch directly as well
    same_rows(r:decode(mb)[1])
  end)

  it("are partitioned by Kafka's murmur2 of the key, equal keys together", function()
    local w, _, s = codec("user string, n int", { "user" }, 7)
    local rows = {}
    for i = 1, 200 do rows[i] = { user = "u" .. (i % 13), n = i } end
    local mb = w:encode(assert(core.rows_batch(s, rows)))
    local where = {}
    for i, m in ipairs(mb:rows()) do
      assert.equal(core.repart_partition(m.key, 7), m.partition)
      local u = rows[i].user
      if where[u] then assert.equal(where[u], m.partition) end
      where[u] = m.partition
    end
    -- librdkafka's murmur2 check value
    assert.equal(0xd067cf64, core.repart_murmur2("kafka"))
  end)

  it("that do not decode fail naming the topic, partition and offset", function()
    local _, r = codec(ALL, {}, 1)
    local function bad(value, why)
      local e = err_of(function() r:decode({ { partition = 3, offset = 42, value = value } }) end)
      assert.matches("^repartition topic t%-r partition 3 offset 42: ", e)
      assert.matches(why, e, 1, true)
    end
    bad(nil, "the message has no value")
    bad('{"i":1}', "not a repartition message (first byte 0x7b)")
    bad("R2AAAA", "format version '2' (this tide reads '1')")
    bad("R1AAA", "the message is not base64 after its first 2 bytes")
    bad("R1" .. b64("\0\0\0\0\0"), "another schema")
    local w2, _ = codec("x int", { "x" }, 1)
    local other = w2:encode(assert(core.rows_batch(assert(core.schema("x int")), { { x = 1 } }))):rows()[1].value
    bad(other, "another schema")
    local w3, r3, s3 = codec("x int, s string", {}, 1)
    local good = w3:encode(assert(core.rows_batch(s3, { { x = 1, s = "abc" } }))):rows()[1].value
    local function bad3(value, why)
      local e = err_of(function() r3:decode({ { partition = 0, offset = 7, value = value } }) end)
      assert.matches("repartition topic t-r partition 0 offset 7: " .. why, e, 1, true)
    end
    -- bodies made by hand (docs/FORMAT.md): schema id, null bitmap, x, then s's length and bytes
    local head = string.pack("<I4", core.repart_schema_id(s3)) .. "\0" .. string.pack("<i8", 1)
    assert.equal(good, "R1" .. b64(head .. string.pack("<I4", 3) .. "abc"))
    bad3("R1" .. b64(head .. string.pack("<I4", 3) .. "ab"), "the row ends inside field 's'")
    bad3("R1" .. b64(head .. string.pack("<I4", 3) .. "abcd"), "1 bytes after the last field")
    bad3("R1" .. b64(head .. string.pack("<I4", 3) .. "a\255c"), "field 's' is not valid UTF-8")
    bad3("W1" .. b64("\0\0\0\0\0"), "a watermark marker of 5 bytes (expected 12)")
    -- nothing was kept from the bad messages: a good one decodes alone
    assert.equal(1, r3:decode({ { partition = 0, offset = 8, value = good } })[1]:nrows())
  end)
end)

describe("watermark markers", function()
  it("go to every partition and give a reader the minimum over all upstream tasks", function()
    local w, r = codec("x int", { "x" }, 3, 2)
    local m = w:markers(1, 5000)
    assert.equal(3, m:nrows())
    for i, row in ipairs(m:rows()) do
      assert.equal(i - 1, row.partition)
      assert.is_nil(row.key)
      assert.same({ ["tide-watermark"] = "1:5000" }, row.headers)
    end
    assert.same({}, r:decode(as_messages(m))) -- markers only: no rows
    assert.equal(0, r:watermark()) -- upstream 0 has sent none yet
    r:decode(as_messages(w:markers(0, 7000)))
    assert.equal(5000, r:watermark())
    r:decode(as_messages(w:markers(1, 9000)))
    assert.equal(7000, r:watermark())
    -- a repeated older marker (a restarted upstream task) does not move it back
    r:decode(as_messages(w:markers(0, 1000)))
    assert.equal(7000, r:watermark())
    assert.same({ [0] = 7000, [1] = 9000 }, r:marks())
    local _, r2 = codec("x int", { "x" }, 3, 2)
    r2:restore(r:marks())
    assert.equal(7000, r2:watermark())
    -- as a string, for the task's offsets
    assert.equal("0:7000,1:9000", r:save())
    local _, r3 = codec("x int", { "x" }, 3, 2)
    r3:load(r:save())
    assert.equal(7000, r3:watermark())
    assert.same(r:marks(), r3:marks())
    assert.matches('load: bad saved watermarks of t-r: "0:x"', err_of(function() r3:load("0:x") end), 1, true)
  end)
end)

-- ------------------------------------------------------------------------
-- Split plans compute what the whole plan computes
-- ------------------------------------------------------------------------

-- Run plan p over one micro-batch per element of `cycles` as the engine
-- does: the watermark after each batch from its marks (max - delay), the
-- batch with this watermark for eviction and the previous one for late
-- rows. Returns the rows output.
local function task(p)
  local t = { p = p, states = {}, w = 0, late = 0 }
  for k = 1, #p.stateful do t.states[k] = p:new_state(k) end
  function t.run(inputs, watermark)
    if watermark then t.late, t.w = t.w, math.max(t.w, watermark) end
    local outs, info = p:execute(inputs, { mode = "append", watermark = t.w, late_watermark = t.late,
      states = t.states, timestamp = 0 })
    if not watermark then
      t.late = t.w
      for i, m in ipairs(p.marks) do
        local st = info.stats[i]
        if st.count > 0 then t.w = math.max(t.w, st.max - m.node.event_delay) end
      end
    end
    return outs
  end
  return t
end

local function collect(into, outs)
  for _, b in ipairs(outs) do
    for _, r in ipairs(b:rows()) do into[#into + 1] = r end
  end
end

local function sorted(rows)
  local s = { table.unpack(rows) }
  table.sort(s, function(a, b)
    if a.window_start ~= b.window_start then return a.window_start < b.window_start end
    return a.user < b.user
  end)
  return s
end

describe("a split windowed count", function()
  it("gives exactly the rows of the whole plan, with per-task watermarks", function()
    local f = orders():with_watermark("ts", "30 seconds"):group_by(tide.window("ts", "10 seconds"), "user")
      :agg { "count(*) AS n", "sum(amount) AS total" }
    local schema = assert(core.schema("ts timestamp, user string, amount double, id int"))
    local P, R = 4, 3 -- input partitions, repartition partitions
    -- rows per cycle and partition, in event-time order per partition, never
    -- later than the delay across partitions
    local cycles, seq = {}, 0
    for c = 1, 6 do
      cycles[c] = {}
      for p = 0, P - 1 do
        local rows = {}
        for _ = 1, 25 do
          seq = seq + 1
          rows[#rows + 1] = { ts = 1700000000000 + c * 15000 + (seq * 7919) % 15000, user = "u" .. (seq * 31 % 11),
            amount = seq * 0.5, id = seq }
        end
        cycles[c][p] = rows
      end
    end
    cycles[7] = {}
    for p = 0, P - 1 do cycles[7][p] = { { ts = 1700009999000, user = "flush", amount = 0, id = 0 } } end

    -- the whole plan, one task
    local whole, want = task(exec.compile(f)), {}
    for c = 1, 7 do
      local all = {}
      for p = 0, P - 1 do for _, r in ipairs(cycles[c][p]) do all[#all + 1] = r end end
      collect(want, whole.run({ { assert(core.rows_batch(schema, all)) } }))
    end
    collect(want, whole.run({ {} }))

    -- split: one upstream task per input partition, one downstream per repartition partition
    local t = split(f)
    local counts = topology.partition_counts(t, { orders = P })
    assert.equal(P, counts.upstreams["app-agg1-repartition"])
    local ups, downs, readers = {}, {}, {}
    local w = topology.writer(t.subs[1].output, R)
    assert.equal(P, t.subs[2].inputs[1].node.stream.repartition.upstream_partitions)
    for p = 0, P - 1 do ups[p] = task(exec.compile(t.subs[1].root)) end
    for q = 0, R - 1 do
      downs[q] = task(exec.compile(t.subs[2].root))
      readers[q] = topology.reader(t.subs[2].inputs[1].node, P)
    end
    local got = {}
    local function cycle(c)
      local queued = {} -- partition -> messages, in produce order
      for q = 0, R - 1 do queued[q] = {} end
      local function send(mb)
        for _, m in ipairs(mb:rows()) do
          local list = queued[m.partition]
          list[#list + 1] = { partition = m.partition, offset = #list, value = m.value }
        end
        mb:close()
      end
      for p = 0, P - 1 do
        local rows = c and cycles[c][p] or {}
        local before = ups[p].w
        local outs = ups[p].run({ #rows > 0 and { assert(core.rows_batch(schema, rows)) } or {} })
        for _, b in ipairs(outs) do send(w:encode(b)) end
        if ups[p].w ~= before then send(w:markers(p, ups[p].w)) end
      end
      for q = 0, R - 1 do
        collect(got, downs[q].run({ readers[q]:decode(queued[q]) }, readers[q]:watermark()))
      end
    end
    for c = 1, 7 do cycle(c) end
    cycle(nil)
    cycle(nil)
    assert.is_true(#want > 20)
    assert.same(sorted(want), sorted(got))
  end)
end)

-- ------------------------------------------------------------------------
-- Against a Kafka client's partitioner
-- ------------------------------------------------------------------------

describe("the repartition partitioner", function()
  it("puts every key where librdkafka's murmur2 partitioner (kcat) puts it", function()
    local b = kafka_broker.start()
    finally(function() b:stop() end)
    b:create_topic("keys", 7)
    local path = os.tmpname()
    finally(function() os.remove(path) end)
    local f = assert(io.open(path, "w"))
    local keys = {}
    for i = 1, 300 do
      keys[i] = string.format("k%d-%s", i, string.rep("x", i % 9))
      f:write(keys[i], "\t", "v", i, "\n")
    end
    f:close()
    local ok = os.execute(string.format("env -u LD_PRELOAD timeout 60 kcat -P -b %s -t keys -K '\t' " ..
      "-X partitioner=murmur2 -l %s 2>/dev/null", b.bootstrap, path))
    assert.is_true(ok)
    local got = b:read("keys")
    assert.equal(300, #got)
    local spread = {}
    for _, m in ipairs(got) do
      assert.equal(core.repart_partition(m.key, 7), m.partition)
      spread[m.partition] = true
    end
    local n = 0
    for _ in pairs(spread) do n = n + 1 end
    assert.equal(7, n)
  end)
end)

describe("a sub-topology's writer and reader on the test broker", function()
  it("write rows and markers through a producer and read them back through a consumer group", function()
    local b = kafka_broker.start()
    finally(function() b:stop() end)
    local f = orders():with_watermark("ts", "10 seconds"):group_by(tide.window("ts", "1 minute"), "user")
      :agg { "count(*) AS n" }
    local t = split(f, "wr")
    local counts = topology.partition_counts(t, { orders = 2 })
    assert.equal(2, counts.topics["wr-agg1-repartition"])
    b:create_topic("wr-agg1-repartition", 2)
    local ks = assert(core.kafka_sink(b.bootstrap, { exactly_once = false, timeout = 20000 }))
    finally(function() ks:close() end)
    local w = topology.writer(t.subs[1], ks)
    local schema = t.subs[1].root.schema
    local rows = {}
    for i = 1, 50 do
      rows[i] = { ts = 1700000000000 + i, user = "u" .. (i % 7), amount = i / 3, id = i }
    end
    local batch = assert(core.rows_batch(schema, rows))
    assert(ks:begin())
    assert.equal(50, w:write({ batch }, 1))
    assert.equal(2, w:marker(1, 1700000000040))
    assert(ks:commit())
    -- the runtime's side: a group member's messages, per partition
    local g = assert(core.kafka_group(b.bootstrap, "wr-test", { "wr-agg1-repartition" }))
    finally(function() g:close() end)
    local by, n, deadline = { [0] = {}, [1] = {} }, 0, os.time() + 30
    while n < 52 and os.time() < deadline do
      local kind, items = g:poll(200, 1000)
      if kind == "messages" then
        for _, m in ipairs(items) do
          table.insert(by[m.partition], m)
          n = n + 1
        end
      end
    end
    assert.equal(52, n)
    local back, where = {}, {}
    for p = 0, 1 do
      local r = topology.reader(t.subs[2], 1)
      assert.equal(2, r.upstreams)
      for _, out in ipairs(r:decode(by[p])) do
        for _, row in ipairs(out:rows()) do
          back[#back + 1] = row
          if where[row.user] then assert.equal(where[row.user], p) end -- a group lands in one partition
          where[row.user] = p
        end
      end
      assert.same({ [1] = 1700000000040 }, r:marks())
      assert.equal(0, r:watermark()) -- upstream task 0 has sent no marker
    end
    table.sort(back, function(x, y) return x.ts < y.ts end)
    assert.same(batch:rows(), back)
    -- the Kafka source's reader (message columns, offset ranges, in C) reads them too: the texts are UTF-8
    local kr = assert(core.kafka_reader { bootstrap = b.bootstrap, timeout = 20000, kafka = {
      ["group.id"] = "wr-read", ["enable.auto.commit"] = "false", ["enable.auto.offset.store"] = "false",
      ["enable.partition.eof"] = "true", ["auto.offset.reset"] = "error" } })
    finally(function() kr:close() end)
    local ends = assert(kr:offsets({ { "wr-agg1-repartition", 0 }, { "wr-agg1-repartition", 1 } }, "latest"))
    local again = {}
    for p = 0, 1 do
      local batches, info = assert(kr:read({ { "wr-agg1-repartition", p, 0, ends[p + 1] } }))
      assert.same({}, info.bad)
      local r = topology.reader(t.subs[2], 1)
      for _, mb in ipairs(batches) do
        for _, out in ipairs(r:decode(mb)) do
          for _, row in ipairs(out:rows()) do again[#again + 1] = row end
        end
      end
      assert.same({ [1] = 1700000000040 }, r:marks())
    end
    table.sort(again, function(x, y) return x.ts < y.ts end)
    assert.same(batch:rows(), again)
  end)
end)
