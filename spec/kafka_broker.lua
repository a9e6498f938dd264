-- The Kafka test broker for specs (issue 14): starts build/tide-kafka-broker
-- (tools/kafka-broker/, `make kafka-broker`), a librdkafka mock cluster on
-- 127.0.0.1 with Kafka's transaction semantics, and drives its control
-- channel (one command a line on its stdin, one answer a line on its stdout;
-- tools/kafka-broker/README.md lists them).
--
--    local kafka_broker = require "kafka_broker"   -- (spec/ is on the specs' path)
--    local b = kafka_broker.start { brokers = 3 }  -- or start(3); default 1 broker
--    finally(function() b:stop() end)              -- (or `local b <close> = ...`)
--    b.bootstrap                                   -- "127.0.0.1:port,127.0.0.1:port,..."
--    b:create_topic("orders", 4)                   -- 4 partitions (replicas: min(3, brokers))
--    b:add_partitions("orders", 6)                 -- grow to 6 partitions in all
--    b:broker_down(1); b:broker_up(1)              -- broker ids are 1 .. brokers
--    b:push_errors("Produce", 3, "NOT_LEADER_FOR_PARTITION")  -- the next 3 requests of that API fail
--    b:broker_errors(1, "Fetch", "REQUEST_TIMED_OUT", 500)    -- one error on broker 1, after 500 ms
--    b:clear_errors("Produce")
--    b:rtt(1, 200)                                 -- broker 1 answers after 200 ms
--    b:group_initial_delay(3000)                   -- the first join of an empty group waits 3 s for
--                                                  -- more members (Kafka's default; here 0 by default)
--    b:log_start("orders", 0, 100)                 -- retention: offsets < 100 of partition 0 are gone
--    local start, stop, stable = b:offsets("orders", 0)  -- log start, log end, last stable offset
--    b:topic_error("orders", "TOPIC_AUTHORIZATION_FAILED")
--    b:leader("orders", 0, 2); b:coordinator("group", "my-group", 2)
--    b:command("ping")                             -- any command line; the text after "ok"
--    b:stop()                                      -- quit; safe to call twice
--
-- Clients (tools/kafka-broker/txclient.c), for what kcat cannot do:
--
--    local p = b:client("my-txn-id", { ["transaction.timeout.ms"] = 5000 })  -- a transactional producer
--    p:init(); p:begin(); p:produce("orders", 0, "k", "v")  -- returns partition, offset
--    p:produce_at("orders", 0, 1700000000000, "k", "v")  -- with that timestamp (ms)
--    p:produce_n("orders", 0, 100, "row")          -- row-0 .. row-99
--    p:send_offsets("group", "in", 0, 42, "meta")  -- committed with the transaction
--    p:commit() / p:abort()
--    p:committed("group", "in", 0)                 -- the group's committed offset, metadata
--    p:join("group", "in", { ["session.timeout.ms"] = 6000 })  -- a consumer of p joins the group,
--      -- returns its member id and its partitions { 0, 2, ... }; send_offsets for "group" then
--      -- carries the group metadata (member id, generation) as of the join
--    p:group_metadata()                            -- take the consumer's current metadata instead
--    p:assignment()                                -- how many assignments so far, its partitions
--    p:leave()                                     -- the consumer leaves the group
--    p:group_commit("in", 0, 42)                   -- the member commits an offset (OffsetCommit)
--    p:commit_offset("group", "in", 0, 42)         -- a client outside group management commits one
--    p:create_topic("t", 3); p:create_partitions("t", 5); p:delete_records("t", 0, 10)  -- admin requests
--    p:try("commit")                               -- nil, "error text" instead of raising
--    p:stop()
--
-- Reading with kcat (Debian's, a standard client):
--
--    b:read("orders", { isolation = "read_committed", partition = 0 })
--      -- every message up to the end (the last stable offset for read_committed, the default),
--      -- as { topic =, partition =, offset =, key =, value = } in partition and offset order
--
-- A command the broker or the client refuses raises `kafka_broker: <command>: <why>`.
-- Both exit when their stdin closes and when this process dies, so a spec that
-- errors never leaves them running; stop() (or the object being collected) ends
-- them at once.
local M = {}

local ROOT = (function()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  if src:sub(1, 1) ~= "/" then src = (os.getenv("PWD") or ".") .. "/" .. src end
  return (src:gsub("/spec/[^/]*$", ""))
end)()

-- Always build/ (not the ASan build): test tools, like build/libtidefault.so.
M.BIN = os.getenv("TIDE_KAFKA_BROKER") or (ROOT .. "/build/tide-kafka-broker")
M.CLIENT = os.getenv("TIDE_KAFKA_TXCLIENT") or (ROOT .. "/build/tide-kafka-txclient")

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  if not ok then error("kafka_broker: " .. cmd .. ": " .. out, 3) end
  return (out:gsub("%s+$", ""))
end

-- A child process driven by lines: commands on its stdin (a pipe), answers
-- on its stdout (a FIFO), its stderr in a file.
local Proc = {}
Proc.__index = Proc

-- Whether it still runs (an exited child stays a zombie until reaped, and a
-- write to its pipe would kill this process with SIGPIPE).
local function alive(self)
  local f = self.pid and io.open("/proc/" .. self.pid .. "/stat", "r")
  if not f then return false end
  local stat = f:read("a") or ""
  f:close()
  local state = stat:match("^%d+ %b() (%a)")
  return state ~= nil and state ~= "Z" and state ~= "X"
end

local function read_log(self)
  local f = io.open(self.dir .. "/log", "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return (s:gsub("%s+$", ""))
end

--- Send one command line; return the text after "ok" ("" when none).
function Proc:command(line)
  local ok, res = self:try(line)
  if ok == nil then error("kafka_broker: " .. line .. ": " .. res, 2) end
  return ok
end

--- Like command, but a refusal returns nil and the reason.
function Proc:try(line)
  if self.stopped then error("kafka_broker: " .. line .. ": the " .. self.what .. " is stopped", 2) end
  if self.pid and not alive(self) then
    error("kafka_broker: " .. line .. ": the " .. self.what .. " is gone (" .. read_log(self) .. ")", 2)
  end
  self.stdin:write(line, "\n")
  self.stdin:flush()
  local answer = self.stdout:read("l")
  if not answer then
    error("kafka_broker: " .. line .. ": the " .. self.what .. " exited (" .. read_log(self) .. ")", 2)
  end
  local rest = answer:match("^ok ?(.*)$")
  if rest then return rest end
  return nil, (answer:match("^error (.*)$") or answer)
end

--- Stop it and remove its directory; safe to call twice.
function Proc:stop()
  if self.stopped then return end
  self.stopped = true
  if alive(self) then
    pcall(function()
      self.stdin:write("quit\n")
      self.stdin:flush()
      self.stdout:read("l")
    end)
  end
  pcall(self.stdin.close, self.stdin) -- waits for it to exit
  pcall(self.stdout.close, self.stdout)
  os.execute("rm -rf " .. q(self.dir))
end

Proc.__gc = Proc.stop
Proc.__close = Proc.stop

-- Start `bin args...`; its first line must match `first`. Returns the object
-- (of metatable `mt`, whose __index chain reaches Proc) and that line.
local function spawn(mt, what, bin, args, first)
  local f = io.open(bin, "rb")
  if not f then error("kafka_broker: " .. bin .. " is missing (run `make kafka-broker`)", 3) end
  f:close()
  local dir = sh("mktemp -d /tmp/tide-kafka.XXXXXX")
  sh("mkfifo " .. q(dir .. "/out"))
  local argv = {}
  for i, a in ipairs(args) do argv[i] = q(a) end
  -- exec: the program is this process's child, so it dies with it
  -- (PR_SET_PDEATHSIG). Never under the sanitizer runtime that `make asan`
  -- preloads into the specs.
  local stdin = io.popen(string.format("exec env -u LD_PRELOAD %s %s >%s 2>%s", q(bin), table.concat(argv, " "),
    q(dir .. "/out"), q(dir .. "/log")), "w")
  local stdout = io.open(dir .. "/out", "r")
  local p = setmetatable({ dir = dir, stdin = stdin, stdout = stdout, what = what }, mt)
  local line = stdout:read("l")
  if not line or not line:match(first) then
    local log = read_log(p)
    p.stopped = true
    pcall(stdin.close, stdin)
    stdout:close()
    os.execute("rm -rf " .. q(dir))
    error("kafka_broker: " .. bin .. " did not start: " .. (line or "") .. " " .. log, 3)
  end
  p.pid = tonumber(p:command("pid"))
  return p, line
end

-- Methods that send `name arg1 arg2 ...`: names maps each name to its
-- least number of arguments, or to { n, parse } where parse turns the
-- answer's text into the method's results.
local function commands(class, names)
  for name, spec in pairs(names) do
    local n, parse = spec, nil
    if type(spec) == "table" then n, parse = spec[1], spec[2] end
    class[name] = function(self, ...)
      local args = table.pack(...)
      if args.n < n then error(string.format("kafka_broker: %s needs %d arguments, got %d", name, n, args.n), 2) end
      local parts = { name }
      for i = 1, args.n do parts[#parts + 1] = tostring(args[i]) end
      local ok, res = pcall(self.command, self, table.concat(parts, " "))
      if not ok then error(res, 2) end
      if parse then return parse(res) end
      return res
    end
  end
end

-- Answers of several integers: "1 2 3" -> 1, 2, 3.
local function integers(res)
  local t = {}
  for w in res:gmatch("%-?%d+") do t[#t + 1] = math.tointeger(tonumber(w)) end
  return table.unpack(t)
end

-- A kind of Proc: its own methods, Proc's for the rest.
local function subclass()
  local class = setmetatable({}, { __index = Proc })
  class.__index, class.__gc, class.__close = class, Proc.stop, Proc.stop
  return class
end

local Broker = subclass()

commands(Broker, {
  create_topic = 2, add_partitions = 2, broker_down = 1, broker_up = 1, push_errors = 3, broker_errors = 3,
  clear_errors = 1, rtt = 2, group_initial_delay = 1, log_start = 3, topic_error = 2, leader = 3, coordinator = 3,
  offsets = { 2, integers }, -- log start offset, log end offset, last stable offset
})

local Client = subclass()

commands(Client, {
  init = 0, begin = 0, commit = 0, abort = 0, produce_n = 4, send_offsets = 4,
  create_topic = 2, create_partitions = 2,
  produce = { 4, integers },         -- (topic, partition, key, value) -> partition, offset
  produce_at = { 5, integers },      -- (topic, partition, ts, key, value) -> partition, offset
  delete_records = { 3, integers },  -- (topic, partition, offset) -> the new low watermark
  group_metadata = 0, leave = 0, commit_offset = 4, group_commit = 3,
  assignment = { 0, function(res)    -- -> assignments received, { partitions }
    local n, parts = integers(res), {}
    for w in res:gsub("^%S+", "", 1):gmatch("%d+") do parts[#parts + 1] = math.tointeger(tonumber(w)) end
    return n, parts
  end },
  -- (group, topic, partition) -> the committed offset (-1001: none), its metadata or nil
  committed = { 3, function(res)
    local o, meta = res:match("^(%-?%d+) ?(.*)$")
    return math.tointeger(tonumber(o)), meta ~= "" and meta or nil
  end },
})

--- A client of this broker: `client(transactional_id, conf)`, both optional
--- (conf: librdkafka producer settings).
function Broker:client(txid, conf)
  local args = { self.bootstrap }
  if txid then args[#args + 1] = txid end
  local keys = {}
  for k in pairs(conf or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do args[#args + 1] = k .. "=" .. tostring(conf[k]) end
  local c = spawn(Client, "client", M.CLIENT, args, "^ok ready$")
  return c
end

--- This client's consumer joins `group` subscribed to `topic` (conf: its
--- librdkafka settings); returns its member id and its partitions once it
--- has its first assignment.
function Client:join(group, topic, conf)
  local parts = { "join", group, topic }
  local keys = {}
  for k in pairs(conf or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(conf[k]) end
  local ok, res = pcall(self.command, self, table.concat(parts, " "))
  if not ok then error(res, 2) end
  local member, partitions = res:match("^(%S*)(.*)$"), {}
  for w in res:gsub("^%S*", "", 1):gmatch("%d+") do partitions[#partitions + 1] = math.tointeger(tonumber(w)) end
  return member, partitions
end

--- Every message of a topic (or of one partition) up to the end, read with
--- kcat: read_committed by default (librdkafka's default too), where the end
--- is the last stable offset. opts: isolation, partition, from (an offset,
--- default the beginning).
function Broker:read(topic, opts)
  opts = opts or {}
  local cjson = require "cjson"
  local cmd = string.format("env -u LD_PRELOAD timeout 60 kcat -C -b %s -t %s %s -o %s -e -q -J -X isolation.level=%s",
    q(self.bootstrap), q(topic), opts.partition and ("-p " .. opts.partition) or "", opts.from or "beginning",
    opts.isolation or "read_committed")
  local p = io.popen(cmd .. " 2>&1")
  local rows, bad = {}, {}
  for line in p:lines() do
    local ok, m = pcall(cjson.decode, line)
    if ok and type(m) == "table" then
      rows[#rows + 1] = { topic = m.topic, partition = math.tointeger(m.partition), offset = math.tointeger(m.offset),
        key = m.key ~= cjson.null and m.key or nil, value = m.payload ~= cjson.null and m.payload or nil }
    else
      bad[#bad + 1] = line
    end
  end
  local ok = p:close()
  if not ok then error("kafka_broker: kcat: " .. table.concat(bad, "\n"), 2) end
  table.sort(rows, function(a, b)
    if a.partition ~= b.partition then return a.partition < b.partition end
    return a.offset < b.offset
  end)
  return rows
end

--- Start a broker: `start(n)` or `start { brokers = n }` (1 to 16).
function M.start(opts)
  if type(opts) == "number" then opts = { brokers = opts } end
  opts = opts or {}
  local n = opts.brokers or 1
  if math.type(n) ~= "integer" or n < 1 or n > 16 then
    error("kafka_broker.start: brokers must be an integer 1 to 16, got " .. tostring(n), 2)
  end
  local b, first = spawn(Broker, "broker", M.BIN, { tostring(n) }, "^127%.0%.0%.1:%d+")
  b.bootstrap = first
  b.brokers = n
  return b
end

return M
