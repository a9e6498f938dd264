-- The Kafka test broker (tools/kafka-broker/, issue 14): each semantic it
-- adds to librdkafka's mock cluster, proved with real clients over
-- loopback (tide-kafka-txclient, a librdkafka transactional producer, and
-- Debian's kcat as the consumer), and each command of its control channel.
local kafka_broker = require "kafka_broker"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function values(rows)
  local t = {}
  for i, r in ipairs(rows) do t[i] = r.value end
  return t
end

-- Whether process `pid` still runs (not gone, not a zombie).
local function running(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return false end
  local state = (f:read("a") or ""):match("^%d+ %b() (%a)")
  f:close()
  return state ~= nil and state ~= "Z"
end

-- Wait (up to 20 s) for `pred()`; its last value.
local function eventually(pred)
  for _ = 1, 200 do
    local v = pred()
    if v then return v end
    os.execute("sleep 0.1")
  end
  return pred()
end

describe("kafka test broker: process and control channel", function()
  it("prints its bootstrap first, answers each command on one line, refuses bad ones with a reason", function()
    local b <close> = kafka_broker.start(3)
    assert.matches("^127%.0%.0%.1:%d+,127%.0%.0%.1:%d+,127%.0%.0%.1:%d+$", b.bootstrap)
    assert.equal(b.bootstrap, b:command("bootstrap"))
    assert.equal("", b:create_topic("t", 2))
    assert.error_matches(function() b:create_topic("t", 2) end, "create_topic t 2: create_topic: .*already exists")
    assert.error_matches(function() b:create_topic("bad/name", 1) end, "bad topic name")
    assert.error_matches(function() b:rtt(4, 10) end, "broker id must be 1 to 3, not '4'")
    assert.error_matches(function() b:push_errors("NoSuchApi", 1, "NOT_LEADER_FOR_PARTITION") end, "unknown API")
    assert.error_matches(function() b:push_errors("Produce", 1, "NO_SUCH_ERROR") end, "unknown error")
    assert.error_matches(function() b:command("frobnicate") end, "unknown command 'frobnicate'")
    assert.error_matches(function() b:offsets("nope", 0) end, "offsets nope 0: offsets: .*Unknown topic")
    assert.same({ 0, 0, 0 }, { b:offsets("t", 1) })
    assert.matches("create_topic", b:command("help"))
  end)

  it("exits cleanly at the end of its input", function()
    local ok, how, code = os.execute(string.format("timeout 20 %s 1 </dev/null >/dev/null", q(kafka_broker.BIN)))
    assert.same({ true, "exit", 0 }, { ok, how, code })
  end)

  it("exits when the process that started it dies, even with its input still open", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. q(dir) .. " && mkfifo " .. q(dir .. "/in")))
    -- The parent: a shell that starts the broker and waits; the FIFO stays
    -- open for writing here, so the broker never sees the end of its input.
    local parent = io.popen(string.format("exec sh -c %s", q(string.format(
      "echo $$; %s 1 <%s >/dev/null 2>&1 & echo $!; wait", kafka_broker.BIN, dir .. "/in"))))
    local keep = assert(io.open(dir .. "/in", "w"))
    local sh_pid, broker_pid = tonumber(parent:read("l")), tonumber(parent:read("l"))
    assert.truthy(eventually(function() return running(broker_pid) end))
    os.execute("kill -9 " .. sh_pid)
    parent:close()
    assert.is_false(eventually(function() return not running(broker_pid) end) and running(broker_pid))
    keep:close()
    os.execute("rm -rf " .. q(dir))
  end)

  it("interoperates with kcat: produced and consumed through a standard client", function()
    local b <close> = kafka_broker.start()
    b:create_topic("plain", 1)
    local ok = os.execute(string.format("printf 'a\\nb\\nc\\n' | env -u LD_PRELOAD kcat -P -b %s -t plain -p 0",
      q(b.bootstrap)))
    assert.truthy(ok)
    assert.same({ "a", "b", "c" }, values(b:read("plain", { isolation = "read_uncommitted" })))
    assert.same({ 0, 3, 3 }, { b:offsets("plain", 0) })
  end)
end)

describe("kafka test broker: transactions", function()
  local b
  before_each(function() b = kafka_broker.start() end)
  after_each(function() b:stop() end)

  it("hides an aborted transaction's rows from read_committed readers, not from read_uncommitted ones", function()
    b:create_topic("t", 2)
    local p <close> = b:client("tx-abort")
    p:init()
    p:begin(); p:produce("t", 0, "k", "kept-1"); p:produce("t", 1, "k", "kept-2"); p:commit()
    p:begin(); p:produce("t", 0, "k", "dropped-1"); p:produce("t", 1, "k", "dropped-2"); p:abort()
    p:begin(); p:produce("t", 0, "k", "kept-3"); p:commit()
    assert.same({ "kept-1", "kept-3", "kept-2" }, values(b:read("t")))
    assert.same({ "kept-1", "dropped-1", "kept-3", "kept-2", "dropped-2" },
      values(b:read("t", { isolation = "read_uncommitted" })))
    -- Each transaction ended with a control batch (one offset) in each of its partitions.
    assert.same({ 0, 6, 6 }, { b:offsets("t", 0) })
    assert.same({ 0, 4, 4 }, { b:offsets("t", 1) })
    -- A reader that starts inside the aborted range still skips it.
    assert.same({ "kept-3" }, values(b:read("t", { partition = 0, from = 2 })))
  end)

  it("holds read_committed readers at the last stable offset while a transaction is open", function()
    b:create_topic("t", 1)
    local p <close> = b:client("tx-open")
    local other <close> = b:client()
    p:init()
    p:begin(); p:produce("t", 0, "k", "first"); p:commit()
    p:begin(); p:produce("t", 0, "k", "pending")
    -- A non-transactional write after the open transaction is held back too.
    other:produce("t", 0, "k", "plain")
    assert.same({ 0, 4, 2 }, { b:offsets("t", 0) })
    assert.same({ "first" }, values(b:read("t")))
    assert.same({ "first", "pending", "plain" }, values(b:read("t", { isolation = "read_uncommitted" })))
    p:commit()
    assert.same({ 0, 5, 5 }, { b:offsets("t", 0) })
    assert.same({ "first", "pending", "plain" }, values(b:read("t")))
  end)

  it("fences a zombie: a new producer with the same transactional.id aborts its transaction", function()
    b:create_topic("t", 1)
    local zombie <close> = b:client("tx-fence")
    zombie:init()
    zombie:begin(); zombie:produce("t", 0, "k", "zombie-open")
    local p <close> = b:client("tx-fence")
    p:init()
    -- The zombie's open transaction was aborted: no longer holding readers back, and hidden.
    local _, stop, stable = b:offsets("t", 0)
    assert.equal(stop, stable)
    assert.same({}, values(b:read("t")))
    -- Everything the zombie does now is refused as fenced.
    local ok, err = zombie:try("commit")
    assert.is_nil(ok)
    assert.matches("_FENCED", err)
    -- The new producer works.
    p:begin(); p:produce("t", 0, "k", "new"); p:commit()
    assert.same({ "new" }, values(b:read("t")))
  end)

  it("answers a waiting reader as soon as a transaction commits, not at the end of its fetch wait", function()
    b:create_topic("t", 1)
    local p <close> = b:client("tx-wake")
    p:init()
    p:begin(); p:produce("t", 0, "k", "first"); p:commit()
    -- A read_committed reader that waits up to 50 s for data in each fetch.
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir " .. q(dir))
    local out = dir .. "/out"
    local reader = io.popen(string.format("env -u LD_PRELOAD kcat -C -q -u -b %s -t t -o beginning -f '%%s\\n' " ..
      "-X fetch.wait.max.ms=50000 >%s 2>%s & echo $!", q(b.bootstrap), q(out), q(dir .. "/err")))
    local reader_pid = tonumber(reader:read("l"))
    reader:close()
    finally(function()
      os.execute("kill " .. reader_pid)
      os.execute("rm -rf " .. q(dir))
    end)
    local function seen()
      local f = io.open(out)
      local text = f and f:read("a") or ""
      if f then f:close() end
      return text
    end
    assert.equal("first\n", eventually(function() return seen() == "first\n" and seen() end))
    -- Caught up, its next fetch waits at the end of the log. A transaction
    -- writes there and commits: the reader has its rows within the 20 s of
    -- eventually(), not after 50 s (the stock mock answered a waiting fetch
    -- only at the end of its wait).
    os.execute("sleep 1")
    p:begin(); p:produce("t", 0, "k", "second"); p:commit()
    assert.equal("first\nsecond\n", eventually(function() return seen() == "first\nsecond\n" and seen() end))
  end)

  it("commits TxnOffsetCommit offsets only with their transaction", function()
    b:create_topic("in", 1)
    b:create_topic("out", 1)
    local p <close> = b:client("tx-offsets")
    p:init()
    p:begin(); p:produce("out", 0, "k", "a"); p:send_offsets("g1", "in", 0, 10, "batch-1")
    -- Not visible while the transaction is open.
    assert.same({ -1001 }, { p:committed("g1", "in", 0) })
    p:abort()
    assert.same({ -1001 }, { p:committed("g1", "in", 0) })
    p:begin(); p:produce("out", 0, "k", "b"); p:send_offsets("g1", "in", 0, 20, "batch-2"); p:commit()
    assert.same({ 20, "batch-2" }, { p:committed("g1", "in", 0) })
    assert.same({ "b" }, values(b:read("out")))
  end)

  it("aborts a transaction open longer than transaction.timeout.ms and fences its producer", function()
    b:create_topic("t", 1)
    local p <close> = b:client("tx-timeout", { ["transaction.timeout.ms"] = 5000 })
    p:init()
    p:begin(); p:produce("t", 0, "k", "stale")
    -- The broker ends it (after about 5 s): the stable offset moves past the marker.
    assert.truthy(eventually(function()
      local _, stop, stable = b:offsets("t", 0)
      return stop == 2 and stable == 2
    end))
    assert.same({}, values(b:read("t")))
    local ok, err = p:try("commit")
    assert.is_nil(ok)
    assert.matches("_FENCED", err)
  end)
end)

describe("kafka test broker: admin requests, the log and faults", function()
  local b
  before_each(function() b = kafka_broker.start(3) end)
  after_each(function() b:stop() end)

  it("answers CreateTopics and CreatePartitions from a client (the controller is a broker)", function()
    local c <close> = b:client()
    c:create_topic("made", 2)
    assert.error_matches(function() c:create_topic("made", 2) end, "TOPIC_ALREADY_EXISTS")
    assert.same({ 1, 0 }, { c:produce("made", 1, "k", "v") })
    c:create_partitions("made", 4)
    -- (a client that knows the topic sees new partitions at its next metadata refresh)
    local c2 <close> = b:client()
    assert.same({ 3, 0 }, { c2:produce("made", 3, "k", "v3") })
    assert.error_matches(function() c:create_partitions("made", 2) end, "INVALID_PARTITIONS")
  end)

  it("adds partitions on command, keeping the old ones' records", function()
    b:create_topic("grow", 1)
    local c <close> = b:client()
    c:produce("grow", 0, "k", "old")
    local ok, err = c:try("produce grow 2 k early")
    assert.is_nil(ok)
    assert.matches("UNKNOWN_PARTITION", err)
    b:add_partitions("grow", 3)
    assert.error_matches(function() b:add_partitions("grow", 2) end, "add_partitions grow 2")
    local c2 <close> = b:client()
    c2:produce("grow", 2, "k", "new")
    assert.same({ "old", "new" }, values(b:read("grow")))
  end)

  it("moves the log start offset on command and by DeleteRecords; readers start there", function()
    b:create_topic("ret", 1)
    local c <close> = b:client()
    c:produce_n("ret", 0, 10, "row")
    b:log_start("ret", 0, 4)
    assert.same({ 4, 10, 10 }, { b:offsets("ret", 0) })
    local rows = b:read("ret")
    assert.equal("row-4", rows[1].value)
    assert.equal(6, #rows)
    assert.equal(7, c:delete_records("ret", 0, 7))
    assert.same({ 7, 10, 10 }, { b:offsets("ret", 0) })
    assert.same({ "row-7", "row-8", "row-9" }, values(b:read("ret")))
    assert.error_matches(function() b:log_start("ret", 0, 11) end, "out of range")
    -- A reader at a deleted offset is told so (no silent skip unless it asks for a reset).
    local p = io.popen(string.format("env -u LD_PRELOAD timeout 60 kcat -C -b %s -t ret -p 0 -o 2 -e " ..
      "-X auto.offset.reset=error 2>&1", q(b.bootstrap)))
    local out = p:read("a")
    assert.is_nil(p:close())
    assert.matches("Offset out of range", out)
    -- -1: everything is gone.
    b:log_start("ret", 0, -1)
    assert.same({ 10, 10, 10 }, { b:offsets("ret", 0) })
    assert.same({}, b:read("ret"))
  end)

  it("answers ListOffsets by timestamp (kcat -Q)", function()
    b:create_topic("ts", 1)
    local c <close> = b:client()
    c:produce_at("ts", 0, 1000, "k", "a")
    c:produce_at("ts", 0, 2000, "k", "b")
    c:produce_at("ts", 0, 3000, "k", "c")
    local function offset_for(ts)
      local p = io.popen(string.format("env -u LD_PRELOAD timeout 30 kcat -Q -b %s -t ts:0:%d 2>&1", q(b.bootstrap),
        ts))
      local out = p:read("a")
      p:close()
      return tonumber(out:match("offset (%-?%d+)")), out
    end
    assert.equal(0, offset_for(500))
    assert.equal(1, offset_for(1500))
    assert.equal(2, offset_for(3000))
    assert.equal(3, offset_for(9000)) -- past the last: the end
  end)

  it("rebalances a group as soon as every member has rejoined (no session.timeout.ms wait)", function()
    b:create_topic("grp", 2)
    local c <close> = b:client()
    c:produce("grp", 0, "k", "p0")
    c:produce("grp", 1, "k", "p1")
    local dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir " .. q(dir))
    local kcat = string.format("env -u LD_PRELOAD kcat -b %s -G g -q -u -f '%%s\\n' -X session.timeout.ms=290000 " ..
      "-X max.poll.interval.ms=300000 -X auto.offset.reset=earliest", q(b.bootstrap))
    -- A first member, running until killed, takes both partitions and reads them.
    local first = io.popen(string.format("%s grp >%s 2>&1 & echo $!", kcat, q(dir .. "/first")))
    local first_pid = tonumber(first:read("l"))
    first:close()
    assert.truthy(eventually(function()
      local f = io.open(dir .. "/first")
      local n = f and select(2, f:read("a"):gsub("\n", "")) or 0
      if f then f:close() end
      return n == 2
    end))
    -- A second member joins: the group rebalances (the first member rejoins),
    -- and the second gets its partition at the committed offset, at the end,
    -- so it exits (-e). With the stock mock the election waited
    -- session.timeout.ms - 1 s (289 s) and the 60 s bound below would fail.
    local ok, how, code = os.execute(string.format("timeout 60 %s -e grp >%s 2>&1", kcat, q(dir .. "/second")))
    os.execute("kill " .. first_pid)
    local second = io.open(dir .. "/second"):read("a")
    os.execute("rm -rf " .. q(dir))
    assert.same({ true, "exit", 0 }, { ok, how, code }, second)
  end)

  it("waits group_initial_delay for more members before the first generation of an empty group", function()
    b:create_topic("in", 2)
    local conf = "session.timeout.ms=6000 heartbeat.interval.ms=500"
    -- Two members that join an empty group together, the first one's join
    -- sent (and left waiting) before the second one's: how many
    -- assignments did the first one get when the second one has its own?
    local function join_together(group)
      local first <close> = b:client()
      local second <close> = b:client()
      first.stdin:write("join " .. group .. " in " .. conf .. "\n")
      first.stdin:flush()
      os.execute("sleep 1.5")
      local _, theirs = second:join(group, "in", { ["session.timeout.ms"] = 6000, ["heartbeat.interval.ms"] = 500 })
      assert.matches("^ok ", first.stdout:read("l"))
      local n = first:assignment()
      local _, mine = first:assignment()
      table.sort(mine)
      return n, mine, theirs
    end
    -- Default (0): the first member is elected alone at once; the second one's
    -- join is a second rebalance, which the first one takes part in.
    local n = join_together("g-prompt")
    assert.is_true(n >= 2)
    -- With a delay (Kafka's default is 3 s; 6 s here, for a margin): both
    -- are in the first generation, one partition each.
    b:group_initial_delay(6000)
    local n2, mine, theirs = join_together("g-delayed")
    assert.equal(1, n2)
    assert.equal(1, #mine)
    assert.same({ 1 - mine[1] }, theirs)
    assert.error_matches(function() b:group_initial_delay(-1) end, "ms must be 0 to 3600000")
  end)

  it("takes a broker down and up: its partitions cannot be written meanwhile", function()
    b:create_topic("f", 1)
    b:leader("f", 0, 2)
    local c <close> = b:client(nil, { ["message.timeout.ms"] = 1500 })
    c:produce("f", 0, "k", "before")
    b:broker_down(2)
    local ok, err = c:try("produce f 0 k during")
    assert.is_nil(ok)
    assert.matches("_MSG_TIMED_OUT", err)
    b:broker_up(2)
    -- (a fresh client: the first one backs off reconnecting for up to 10 s)
    local c2 <close> = b:client()
    c2:produce("f", 0, "k", "after")
    assert.same({ "before", "after" }, values(b:read("f")))
  end)

  it("pushes request errors that the clients see, then serves normally", function()
    b:create_topic("e", 1)
    local c <close> = b:client()
    b:push_errors("Produce", 1, "MSG_SIZE_TOO_LARGE")
    local ok, err = c:try("produce e 0 k refused")
    assert.is_nil(ok)
    assert.matches("MSG_SIZE_TOO_LARGE", err)
    c:produce("e", 0, "k", "accepted")
    -- A retriable error is retried by the client: the write succeeds.
    b:push_errors(0, 2, "NOT_ENOUGH_REPLICAS")
    c:produce("e", 0, "k", "retried")
    assert.same({ "accepted", "retried" }, values(b:read("e")))
  end)

  it("delays a broker's answers (rtt) past a client's request timeout, then not", function()
    b:create_topic("r", 1)
    b:leader("r", 0, 1)
    local c <close> = b:client(nil, { ["request.timeout.ms"] = 500, ["message.timeout.ms"] = 1500,
      ["retries"] = 0 })
    c:produce("r", 0, "k", "fast")
    b:rtt(1, 3000)
    local ok, err = c:try("produce r 0 k slow")
    assert.is_nil(ok)
    assert.matches("TIMED_OUT", err)
    b:rtt(1, 0)
    local p2 <close> = b:client()
    p2:produce("r", 0, "k", "again")
    assert.equal("again", b:read("r")[#b:read("r")].value)
  end)
end)

-- exactly_once_v2 (KIP-447): a transactional producer commits its input
-- offsets with its consumer's group metadata (member id, generation,
-- group.instance.id), and the group coordinator refuses them from a member
-- that is no longer the current owner, so a zombie cannot commit.
describe("kafka test broker: consumer group fencing of TxnOffsetCommit", function()
  local b
  before_each(function() b = kafka_broker.start() end)
  after_each(function() b:stop() end)

  -- Short sessions: a paused member is out of the group within seconds.
  local member_conf = { ["session.timeout.ms"] = 4000, ["heartbeat.interval.ms"] = 500 }

  -- Topics "in" (of `partitions`) and "out" (1), and two initialised
  -- transactional producers, stopped at the end of the test.
  local function producers(partitions, id1, id2)
    b:create_topic("in", partitions)
    b:create_topic("out", 1)
    local p1, p2 = b:client(id1), b:client(id2)
    finally(function() p1:stop(); p2:stop() end)
    p1:init(); p2:init()
    return p1, p2
  end

  it("refuses offsets of a member of an old generation; the current members commit; the zombie's rows stay hidden",
    function()
      local zombie, current = producers(2, "app-zombie", "app-current")
      local _, parts = zombie:join("app", "in", member_conf)
      assert.same({ 0, 1 }, parts)
      zombie:begin(); zombie:produce("out", 0, "k", "zombie-row")
      zombie:send_offsets("app", "in", 0, 5) -- its generation is current: accepted
      -- A second member joins: a rebalance, a new generation; the zombie's
      -- consumer rejoins too, but its producer keeps the metadata of the old one.
      local _, mine = current:join("app", "in", member_conf)
      assert.equal(1, #mine)
      local ok, err = zombie:try("send_offsets app in 0 6")
      assert.is_nil(ok)
      -- librdkafka 2.0.2: the error is the broker's, and the transaction can only be aborted.
      assert.matches("^ILLEGAL_GENERATION abortable: .*in%[0%]", err)
      ok, err = zombie:try("commit")
      assert.is_nil(ok)
      assert.matches("^ILLEGAL_GENERATION abortable:", err)
      -- The zombie's open transaction holds read_committed readers back ...
      current:begin(); current:produce("out", 0, "k", "current-row")
      current:send_offsets("app", "in", mine[1], 7)
      current:commit()
      assert.same({ 0, 3, 0 }, { b:offsets("out", 0) })
      assert.same({}, values(b:read("out")))
      -- ... until it aborts: its row is never visible, nor are its offsets (even the accepted ones).
      zombie:abort()
      assert.same({ "current-row" }, values(b:read("out")))
      assert.same({ 7 }, { current:committed("app", "in", mine[1]) })
      assert.same({ -1001 }, { current:committed("app", "in", 1 - mine[1]) })
      -- With the metadata of the current generation the same member commits again:
      -- the check is the generation, not who joined first.
      assert.truthy(eventually(function() return zombie:assignment() >= 2 end))
      zombie:group_metadata()
      zombie:begin(); zombie:produce("out", 0, "k", "again"); zombie:send_offsets("app", "in", 1 - mine[1], 9)
      zombie:commit()
      assert.same({ 9 }, { current:committed("app", "in", 1 - mine[1]) })
      assert.same({ "current-row", "again" }, values(b:read("out")))
    end)

  it("refuses offsets of a member whose session timed out (a paused process) as UNKNOWN_MEMBER_ID", function()
    local zombie, current = producers(2, "app-paused", "app-alive")
    zombie:join("app", "in", member_conf)
    zombie:begin(); zombie:produce("out", 0, "k", "zombie-row")
    -- The process stops (GC pause, SIGSTOP): no heartbeats. The other member
    -- gets every partition once the paused one's session has timed out.
    os.execute("kill -STOP " .. zombie.pid)
    local ok_join, member, parts = pcall(current.join, current, "app", "in", member_conf)
    os.execute("kill -CONT " .. zombie.pid)
    assert(ok_join, member)
    assert.same({ 0, 1 }, parts)
    local ok, err = zombie:try("send_offsets app in 0 6")
    assert.is_nil(ok)
    assert.matches("^UNKNOWN_MEMBER_ID abortable: ", err)
    ok, err = zombie:try("commit")
    assert.is_nil(ok)
    assert.matches("^UNKNOWN_MEMBER_ID abortable: ", err)
    zombie:abort()
    -- Resumed, the zombie's consumer learns that it left the group (its old
    -- member id is refused) and joins again as a new member: one more
    -- rebalance, after which the current member commits with the metadata of
    -- the new generation.
    assert.truthy(eventually(function() return zombie:assignment() >= 2 and current:assignment() >= 2 end))
    local _, mine = current:assignment()
    assert.equal(1, #mine)
    current:group_metadata()
    current:begin(); current:produce("out", 0, "k", "current-row"); current:send_offsets("app", "in", mine[1], 7)
    current:commit()
    assert.same({ "current-row" }, values(b:read("out")))
    assert.same({ 7 }, { current:committed("app", "in", mine[1]) })
  end)

  it("refuses offsets of a static member (group.instance.id) replaced by a new instance as FENCED_INSTANCE_ID",
    function()
      local old, new = producers(1, "app-old", "app-new")
      local conf = { ["group.instance.id"] = "instance-1" }
      for k, v in pairs(member_conf) do conf[k] = v end
      local old_member = old:join("app", "in", conf)
      old:begin(); old:produce("out", 0, "k", "old-row")
      local new_member, parts = new:join("app", "in", conf)
      assert.are_not.equal(old_member, new_member)
      assert.same({ 0 }, parts)
      local ok, err = old:try("send_offsets app in 0 6")
      assert.is_nil(ok)
      assert.matches("^FENCED_INSTANCE_ID abortable: ", err)
      old:abort()
      new:begin(); new:produce("out", 0, "k", "new-row"); new:send_offsets("app", "in", 0, 7); new:commit()
      assert.same({ "new-row" }, values(b:read("out")))
      assert.same({ 7 }, { new:committed("app", "in", 0) })
    end)

  it("checks a plain OffsetCommit as Kafka: members commit; a client outside the group only while it is empty",
    function()
      b:create_topic("in", 1)
      local member <close> = b:client()
      local outsider <close> = b:client()
      outsider:commit_offset("g", "in", 0, 4) -- no such group yet: accepted
      assert.same({ 4 }, { outsider:committed("g", "in", 0) })
      member:join("g", "in", member_conf)
      local ok, err = outsider:try("commit_offset g in 0 3")
      assert.is_nil(ok)
      assert.matches("UNKNOWN_MEMBER_ID", err)
      member:group_commit("in", 0, 5)
      assert.same({ 5 }, { outsider:committed("g", "in", 0) })
      -- The member leaves: the group has no members, and the outsider's
      -- commit is accepted again (the stock mock refused it for good).
      member:leave()
      outsider:commit_offset("g", "in", 0, 6)
      assert.same({ 6 }, { outsider:committed("g", "in", 0) })
    end)

  it("does not check a producer that sends no group metadata (generation -1, no member id), as Kafka", function()
    local member, plain = producers(1, "app-member", "app-plain")
    member:join("app", "in", member_conf)
    plain:begin(); plain:produce("out", 0, "k", "row"); plain:send_offsets("app", "in", 0, 3); plain:commit()
    assert.same({ 3 }, { plain:committed("app", "in", 0) })
  end)
end)
