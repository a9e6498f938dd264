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
--    b:log_start("orders", 0, 100)                 -- retention: offsets < 100 of partition 0 are gone
--    local start, stop, stable = b:offsets("orders", 0)  -- log start, log end, last stable offset
--    b:topic_error("orders", "TOPIC_AUTHORIZATION_FAILED")
--    b:leader("orders", 0, 2); b:coordinator("group", "my-group", 2)
--    b:command("ping")                             -- any command line; the text after "ok"
--    b:stop()                                      -- quit; safe to call twice
--
-- A command the broker refuses raises `kafka_broker: <command>: <why>`. The
-- broker also exits when its stdin closes and when this process dies, so a
-- spec that errors never leaves it running; stop() (or the object being
-- collected) ends it at once.
local M = {}

local ROOT = (function()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  if src:sub(1, 1) ~= "/" then src = (os.getenv("PWD") or ".") .. "/" .. src end
  return (src:gsub("/spec/[^/]*$", ""))
end)()

-- Always build/ (not the ASan build): it is a test tool, like build/libtidefault.so.
M.BIN = os.getenv("TIDE_KAFKA_BROKER") or (ROOT .. "/build/tide-kafka-broker")

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  if not ok then error("kafka_broker: " .. cmd .. ": " .. out, 3) end
  return (out:gsub("%s+$", ""))
end

local Broker = {}
Broker.__index = Broker

-- Whether the broker still runs (an exited child stays a zombie until
-- reaped, and a write to its pipe would kill this process with SIGPIPE).
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
function Broker:command(line)
  if self.stopped then error("kafka_broker: " .. line .. ": the broker is stopped", 2) end
  if self.pid and not alive(self) then
    error("kafka_broker: " .. line .. ": the broker is gone (" .. read_log(self) .. ")", 2)
  end
  self.stdin:write(line, "\n")
  self.stdin:flush()
  local answer = self.stdout:read("l")
  if not answer then
    error("kafka_broker: " .. line .. ": the broker exited (" .. read_log(self) .. ")", 2)
  end
  local rest = answer:match("^ok ?(.*)$")
  if rest then return rest end
  error("kafka_broker: " .. line .. ": " .. (answer:match("^error (.*)$") or answer), 2)
end

local function cmd(name, n)
  return function(self, ...)
    local args = table.pack(...)
    if args.n < n then error(string.format("kafka_broker: %s needs %d arguments, got %d", name, n, args.n), 2) end
    local parts = { name }
    for i = 1, args.n do parts[#parts + 1] = tostring(args[i]) end
    local ok, res = pcall(self.command, self, table.concat(parts, " "))
    if not ok then error(res, 2) end
    return res
  end
end

Broker.create_topic = cmd("create_topic", 2)
Broker.add_partitions = cmd("add_partitions", 2)
Broker.broker_down = cmd("broker_down", 1)
Broker.broker_up = cmd("broker_up", 1)
Broker.push_errors = cmd("push_errors", 3)
Broker.broker_errors = cmd("broker_errors", 3)
Broker.clear_errors = cmd("clear_errors", 1)
Broker.rtt = cmd("rtt", 2)
Broker.log_start = cmd("log_start", 3)
Broker.topic_error = cmd("topic_error", 2)
Broker.leader = cmd("leader", 3)
Broker.coordinator = cmd("coordinator", 3)

local offsets = cmd("offsets", 2)
--- The partition's log start offset, log end offset and last stable offset.
function Broker:offsets(topic, partition)
  local ok, res = pcall(offsets, self, topic, partition)
  if not ok then error(res, 2) end
  local a, b, c = res:match("^(%-?%d+) (%-?%d+) (%-?%d+)$")
  return tonumber(a), tonumber(b), tonumber(c)
end

--- Stop the broker and remove its directory; safe to call twice.
function Broker:stop()
  if self.stopped then return end
  self.stopped = true
  if alive(self) then
    pcall(function()
      self.stdin:write("quit\n")
      self.stdin:flush()
      self.stdout:read("l")
    end)
  end
  pcall(self.stdin.close, self.stdin) -- waits for the broker to exit
  pcall(self.stdout.close, self.stdout)
  os.execute("rm -rf " .. q(self.dir))
end

Broker.__gc = Broker.stop
Broker.__close = Broker.stop

--- Start a broker: `start(n)` or `start { brokers = n }` (1 to 16).
function M.start(opts)
  if type(opts) == "number" then opts = { brokers = opts } end
  opts = opts or {}
  local n = opts.brokers or 1
  if math.type(n) ~= "integer" or n < 1 or n > 16 then
    error("kafka_broker.start: brokers must be an integer 1 to 16, got " .. tostring(n), 2)
  end
  local f = io.open(M.BIN, "rb")
  if not f then error("kafka_broker.start: " .. M.BIN .. " is missing (run `make kafka-broker`)", 2) end
  f:close()
  local dir = sh("mktemp -d /tmp/tide-kafka.XXXXXX")
  sh("mkfifo " .. q(dir .. "/out"))
  -- exec: the broker is this process's child, so it dies with it (PR_SET_PDEATHSIG).
  -- Never under the sanitizer runtime `make asan` preloads into the specs.
  local stdin = io.popen(string.format("exec env -u LD_PRELOAD %s %d >%s 2>%s", q(M.BIN), n,
    q(dir .. "/out"), q(dir .. "/log")), "w")
  local stdout = io.open(dir .. "/out", "r")
  local b = setmetatable({ dir = dir, stdin = stdin, stdout = stdout, brokers = n }, Broker)
  b.bootstrap = stdout:read("l")
  if not b.bootstrap or not b.bootstrap:match("^127%.0%.0%.1:%d+") then
    local log = read_log(b)
    b.stopped = true
    pcall(stdin.close, stdin)
    stdout:close()
    os.execute("rm -rf " .. q(dir))
    error("kafka_broker.start: " .. M.BIN .. " did not start: " .. (b.bootstrap or log), 2)
  end
  b.pid = tonumber(b:command("pid"))
  return b
end

return M
