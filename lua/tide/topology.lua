--- Scale-out topologies: a query's plan cut into sub-topologies at the
-- stateful operators that need their input repartitioned, and the codec of
-- the repartition topics between them (issue 15; docs/guide.md,
-- "Scale-out"; docs/FORMAT.md, "Repartition topics").
--
-- Under an `application_id`, every input partition is a task with its own
-- state, so a stateful operator (aggregation, deduplication, session
-- windows, `process`, each side of a stream-stream join) sees only the
-- rows of its task's partitions. That is right when every group lies
-- within one partition: when the operator's grouping keys include every
-- column its input is partitioned by (the Kafka source's `key` column, or
-- `kafka_key` with include_metadata, passed through unchanged; the Kafka
-- producer put equal keys into one partition). Otherwise the operator is
-- preceded by a repartition topic `<application_id>-<op>-repartition`: the
-- sub-topology below it ends by writing each row, keyed by the grouping
-- key (window columns excluded), to partition murmur2(key) mod partitions,
-- and the sub-topology above it starts with a source reading that topic,
-- so every group's rows meet in one task. This is Kafka Streams' model
-- (its key-changing operations mark a repartition).
--
-- Operators are named by kind and by their place among the plan's
-- stateful operators (`agg1`, `dedup2`, `join1-left`), in the order
-- tide.plan.walk visits them, as query.lua numbers their checkpoint
-- databases: a restarted application with the same query finds the same
-- topics.
--
-- Watermarks cross a repartition as markers: each upstream task writes
-- its watermark to every partition of the topic (a marker message) in
-- each cycle in which it moved; a reader's watermark is the minimum over
-- all upstream tasks (0 until each has sent one), so a downstream task
-- never passes a row an upstream task may still send on time.
--
-- @module tide.topology

local core = require "tide.core"
local plan = require "tide.plan"

local M = {}

local format, concat = string.format, table.concat
local type, error, ipairs, pairs, setmetatable, tostring = type, error, ipairs, pairs, setmetatable, tostring
local math_type, max, min = math.type, math.max, math.min

-- The names of the stateful operators, as query.lua's checkpoint databases.
local KIND = { aggregate = "agg", dedup = "dedup", session = "session", join = "join", process = "process" }

--- The name of stateful node n, the k-th of its plan (`agg1`, `dedup2`,
-- `session3`, `process4`, `join5`): its checkpoint database and task
-- state, and the middle of its internal topics' names.
function M.state_name(n, k) return KIND[n.stateful] .. k end

-- Operators whose output has their input's columns, in place (rows kept or
-- dropped, never changed).
local SAME_COLUMNS = { where = true, filter = true, watermark = true, dedup = true }

local function fail(msg) error("topology: " .. msg, 0) end

-- "a, b" -> { "a", "b" }, as the Kafka source reads its option 'subscribe'
local split_list = require("tide.connectors.kafka.source").split_list

--- The topics a streaming source node reads: a Kafka source's
-- `subscribe` list, or a repartition source's topic.
function M.topics_of(n)
  if n.stream.kind == "repartition" then return { n.stream.topic } end
  return split_list(n.stream.opts.subscribe)
end

local function children(n)
  if n.inputs then return n.inputs end
  return { n.input, n.right }
end

-- ------------------------------------------------------------------------
-- Partitioning
-- ------------------------------------------------------------------------

-- How the rows of node n's output are spread over tasks: an array of its
-- column indices (rows equal in those columns are in one task; {}: every
-- row is in one task), or nil when nothing is known.
local function partitioning(n, memo)
  if memo[n] ~= nil then return memo[n] or nil end
  local p
  if n.stream then
    if n.partitioned_by then
      p = n.partitioned_by
    elseif n.stream.kind == "kafka" then
      local o = n.stream.opts or {}
      local want = not o.format and "key" or (o.include_metadata and "kafka_key")
      for i, f in ipairs(n.fields or n.schema:fields()) do
        if f[1] == want then p = { i } end
      end
    end
  elseif SAME_COLUMNS[n.op] or n.op == "join" then -- a static join keeps the left side's columns first
    p = partitioning(n.input, memo)
  elseif n.op == "window" then -- window_start, window_end, then the input's columns
    local q = partitioning(n.input, memo)
    if q then
      p = {}
      for i, c in ipairs(q) do p[i] = c + 2 end
    end
  elseif n.op == "project" and n.exprs then
    local q = partitioning(n.input, memo)
    if q then
      p = {}
      for i, c in ipairs(q) do
        for j, e in ipairs(n.exprs) do
          if e:column() == c then p[i] = j break end
        end
        if not p[i] then p = nil break end
      end
    end
  elseif n.op == "union" then
    local a, b = partitioning(n.inputs[1], memo), partitioning(n.inputs[2], memo)
    if a and b and concat(a, ",") == concat(b, ",") then p = a end
  end
  memo[n] = p or false
  return p
end

-- The grouping keys of stateful node n on side x (1, or 2: a join's right
-- side) as expressions over that side's input: an array of tide.Expr
-- (window columns left out; {} for a global aggregation).
local function grouping_keys(n, x)
  if n.stateful == "join" then
    local side = x == 1 and n.input or n.right
    local fields, out = side.fields or side.schema:fields(), {}
    for i, c in ipairs(n.join_keys[x]) do
      local e, msg = core.expr("`" .. fields[c][1] .. "`", side.schema)
      if not e then fail(msg) end
      out[i] = e
    end
    return out
  end
  local out = {}
  if n.stateful == "aggregate" and n.global then return out end
  for _, k in ipairs(n.keys or {}) do
    if type(k) ~= "string" then out[#out + 1] = k end -- "window_start" is the window
  end
  return out
end

-- Whether the columns of p (a partitioning) are all among the keys.
local function covers(keys, p)
  if not p then return false end
  local cols = {}
  for _, e in ipairs(keys) do
    local c = e:column()
    if c then cols[c] = true end
  end
  for _, c in ipairs(p) do
    if not cols[c] then return false end
  end
  return true
end

-- ------------------------------------------------------------------------
-- Splitting
-- ------------------------------------------------------------------------

-- Kafka's legal topic characters (and its 249-byte limit on a name).
local function check_app(app)
  if type(app) ~= "string" or app == "" then
    error("topology.split: bad argument #2: expected an application id (a non-empty string), got " ..
      (type(app) == "string" and "\"\"" or type(app)), 3)
  end
  if app:find("[^%w%._%-]") then
    error(format("topology.split: application id '%s' may hold only ASCII letters, digits, '.', '_' and '-' " ..
      "(it names Kafka topics and the consumer group)", app), 3)
  end
  if #app > 200 then
    error(format("topology.split: application id of %d bytes is too long (at most 200: it prefixes topic names, " ..
      "which Kafka limits to 249 bytes)", #app), 3)
  end
end

-- The key columns of a repartition: their names (for explain and status),
-- the expressions that compute them from a row, and their schema.
local function key_spec(keys)
  local names, fields = {}, {}
  for i, e in ipairs(keys) do
    names[i] = e:name()
    fields[i] = { "k" .. i, e:type() .. "?" }
  end
  local schema
  if #keys > 0 then
    local s, msg = core.schema(fields)
    if not s then fail(msg) end
    schema = s
  end
  return names, schema
end

-- Refuse what cannot run split into tasks, naming why.
local function check_node(n, what)
  if n.static then return end
  if n.op == "sort" or n.op == "limit" then
    fail(format("%s on a stream cannot run under an application_id: each task holds only the groups of its own " ..
      "partitions, so the order and the limit would be per task, not of the whole result; sort or limit where " ..
      "you read the output (a foreach_batch sink, or a query over the output topic)",
      n.op == "sort" and "order_by" or "limit"))
  end
  if n.stream then
    local s = n.stream
    if s.kind == "repartition" then return end
    if s.kind ~= "kafka" then
      fail(format("%s reads a %s source: under an application_id every source must be Kafka (its partitions are " ..
        "the tasks)", what, s.kind or "Lua"))
    end
    if not (s.opts and s.opts.subscribe) then
      fail(format("%s: a Kafka source under an application_id needs option 'subscribe' (the topics must be known " ..
        "to name the tasks; not 'assign' or 'subscribe_pattern')", what))
    end
  end
end

--- Split a streaming plan into sub-topologies.
-- @param root the query's plan root (a frame or its root node)
-- @string application_id names the internal topics
-- @treturn table `{ subs = { sub, ... }, changelogs = { [k] = topic } }`:
-- k is the stateful operator's place among the whole plan's (plan.walk
-- order, static ones left out). Each sub, upstream ones first: `id` (0,
-- 1, ...), `root` (its plan root: for exec.compile), `sources` (the topic
-- names it reads), `inputs` ({ kind = "kafka" | "repartition", topic =,
-- node = } per streaming source, in exec.compile's order; a Kafka source
-- reading two topics appears once per topic), `output` ({ kind = "sink" }
-- or { kind = "repartition", topic =, key = { names }, key_exprs =,
-- key_schema = }), `stateful` ({ [j] = k }: the sub's j-th stateful
-- operator is the plan's k-th) and `watermark` ("marks": from its
-- with_watermark nodes; "repartition": from its readers).
-- @raise "topology: ..." for a plan that cannot run split into tasks
function M.split(root, application_id)
  check_app(application_id)
  if type(root) == "table" and root._node then root = root._node end
  if type(root) ~= "table" or not root.op then
    error("topology.split: bad argument #1: expected a frame or a plan node, got " .. type(root), 2)
  end
  if root.static then error("topology.split: a static frame is not a stream", 2) end

  -- the stateful operators, numbered as query.lua does
  local number, count = {}, 0
  plan.walk(root, function(n)
    check_node(n, n.label or n.op)
    if n.stateful and not n.static then
      count = count + 1
      number[n] = count
    end
  end)

  local subs, changelogs, orig = {}, {}, {}
  for n, k in pairs(number) do changelogs[k] = format("%s-%s-changelog", application_id, M.state_name(n, k)) end
  local memo, parts = {}, {}

  -- A source node reading topic, in place of child (same columns and
  -- event time); its rows are partitioned by the key columns.
  local function repartition_source(child, topic, keys)
    local by = {}
    for i, e in ipairs(keys) do
      local c = e:column()
      if not c then by = nil break end
      by[i] = c
    end
    return {
      op = "source", schema = child.schema, fields = child.fields or child.schema:fields(), static = false,
      owns = false, label = "RepartitionSource " .. topic,
      -- upstream_partitions: set by partition_counts
      stream = { kind = "repartition", topic = topic, repartition = { topic = topic } },
      partitioned_by = by, event_time = child.event_time, event_delay = child.event_delay,
    }
  end

  local function rewrite(n)
    if memo[n] then return memo[n] end
    if n.static then
      memo[n] = n
      return n
    end
    local kids = children(n)
    local new, changed = {}, false
    for i, c in pairs(kids) do
      new[i] = rewrite(c)
      if new[i] ~= c then changed = true end
    end
    if n.stateful then
      local k = number[n]
      local sides = n.stateful == "join" and 2 or 1
      local keys = {}
      for x = 1, sides do keys[x] = grouping_keys(n, x) end
      if sides == 2 then
        for i = 1, #keys[1] do
          local a, b = keys[1][i]:type(), keys[2][i]:type()
          if a ~= b then
            fail(format("%s: the join keys %s (%s) and %s (%s) have different types, so equal keys would be " ..
              "written differently and could land in different partitions; cast one side to the other's type " ..
              "first", n.label, keys[1][i]:name(), a, keys[2][i]:name(), b))
          end
        end
      end
      for x = 1, sides do
        if not covers(keys[x], partitioning(new[x], parts)) then
          local op = M.state_name(n, k) .. (sides == 2 and (x == 1 and "-left" or "-right") or "")
          local topic = format("%s-%s-repartition", application_id, op)
          local names, schema = key_spec(keys[x])
          subs[#subs + 1] = {
            root = new[x],
            output = { kind = "repartition", topic = topic, key = names, key_exprs = keys[x], key_schema = schema },
          }
          new[x] = repartition_source(new[x], topic, keys[x])
          changed = true
        end
      end
    end
    local out = n
    if changed then
      out = {}
      for key, v in pairs(n) do out[key] = v end
      if n.inputs then
        out.inputs = new
      else
        out.input, out.right = new[1], new[2]
      end
      orig[out] = orig[n] or n
    end
    memo[n] = out
    return out
  end

  local top = rewrite(root) -- (before #subs: rewrite adds the upstream subs)
  subs[#subs + 1] = { root = top, output = { kind = "sink" } }

  local owner = {} -- topic -> the sub that reads it
  for id, sub in ipairs(subs) do
    sub.id = id - 1
    sub.sources, sub.inputs, sub.stateful, sub.watermark = {}, {}, {}, "marks"
    plan.walk(sub.root, function(n)
      if n.stream then
        local topics = M.topics_of(n)
        sub.inputs[#sub.inputs + 1] = { kind = n.stream.kind, topics = topics, topic = topics[1], node = n }
        for _, t in ipairs(topics) do
          if owner[t] and owner[t] ~= sub then
            fail(format("topic '%s' is read by two sub-topologies (%d and %d): a task owns partition p of every " ..
              "topic of its sub-topology, so one topic cannot feed two; read it once and branch after the read, " ..
              "or write one branch to a topic of its own", t, owner[t].id, sub.id))
          end
          owner[t] = sub
          sub.sources[#sub.sources + 1] = t
          if n.stream.kind == "repartition" then sub.watermark = "repartition" end
        end
      end
      if n.stateful and not n.static then sub.stateful[#sub.stateful + 1] = number[orig[n] or n] end
    end)
  end
  for _, sub in ipairs(subs) do
    if sub.output.kind == "repartition" then sub.output.reader = owner[sub.output.topic].id end
  end
  return { subs = subs, changelogs = changelogs }
end

--- The partition counts of the internal topics and the task counts of the
-- sub-topologies, from the input topics' partition counts. A
-- sub-topology's sources are co-partitioned: its Kafka topics must agree,
-- and the repartition topics it reads get their count (or, when it reads
-- only repartition topics, the largest task count of their writers, as
-- Kafka Streams does).
-- @tab topo the result of split
-- @tab counts `{ [input topic] = partitions }`
-- @treturn table `{ topics = { [repartition topic] = n }, tasks = { [sub id] = n },
-- upstreams = { [repartition topic] = the task count of its writer } }`
-- @raise when co-partitioned input topics have different counts, naming them
function M.partition_counts(topo, counts)
  local writer = {}
  for _, sub in ipairs(topo.subs) do
    if sub.output.kind == "repartition" then writer[sub.output.topic] = sub end
  end
  local tasks, topics, upstreams = {}, {}, {}
  for _, sub in ipairs(topo.subs) do
    local n, first
    for _, inp in ipairs(sub.inputs) do
      for _, t in ipairs(inp.kind == "kafka" and inp.topics or {}) do
        local c = counts[t]
        if math_type(c) ~= "integer" or c < 1 then
          error(format("topology.partition_counts: no partition count for input topic '%s'", t), 2)
        end
        if n and c ~= n then
          fail(format("the topics of one sub-topology must have the same number of partitions (a task reads " ..
            "partition p of each): '%s' has %d, '%s' has %d", first, n, t, c))
        end
        n, first = c, t
      end
    end
    if not n then
      for _, inp in ipairs(sub.inputs) do n = max(n or 0, tasks[writer[inp.topic].id]) end
    end
    tasks[sub.id] = n
    sub.tasks = n
    for _, inp in ipairs(sub.inputs) do
      if inp.kind == "repartition" then
        topics[inp.topic] = n
        upstreams[inp.topic] = tasks[writer[inp.topic].id]
        inp.node.stream.repartition.upstream_partitions = upstreams[inp.topic]
        writer[inp.topic].output.partitions = n
      end
    end
  end
  return { topics = topics, tasks = tasks, upstreams = upstreams }
end

-- ------------------------------------------------------------------------
-- Writer and reader
-- ------------------------------------------------------------------------

local Writer = {}
Writer.__index = Writer

-- The column map of a messages batch for a tide.KafkaSink's produce.
local function messages_map(topic)
  return { topic = topic, partition_col = 1, key_col = 2, value_col = 3, headers_col = 4 }
end

--- The writer of a sub-topology's repartition output, one per process.
-- @tab sub a sub-topology of split (or its `output`) whose output is a
-- repartition, after partition_counts (which sets the topic's partition
-- count)
-- @param[opt] producer the process's tide.KafkaSink (for write and
-- marker), or the topic's partition count (encode and markers only)
function M.writer(sub, producer)
  local output = type(sub) == "table" and (sub.output or sub) or nil
  if type(output) ~= "table" or output.kind ~= "repartition" then
    error("topology.writer: bad argument #1: expected a sub-topology whose output is a repartition", 2)
  end
  local partitions = output.partitions
  if math_type(producer) == "integer" then partitions, producer = producer, nil end
  if math_type(partitions) ~= "integer" or partitions < 1 then
    error(format("topology.writer: the partition count of %s is not known: call topology.partition_counts(topo, " ..
      "counts) first", output.topic), 2)
  end
  return setmetatable({
    topic = output.topic, partitions = partitions, key_exprs = output.key_exprs, key_schema = output.key_schema,
    producer = producer, map = messages_map(output.topic),
  }, Writer)
end

--- The messages of a batch's rows: a messages batch (partition, key,
-- value, headers) partitioned by murmur2 of the key. The caller closes it.
function Writer:encode(b)
  local kb
  if #self.key_exprs > 0 then
    local msg
    kb, msg = core.project(b, self.key_exprs, self.key_schema)
    if not kb then error(format("repartition topic %s: the key: %s", self.topic, msg), 0) end
  end
  local out, msg = core.repart_encode(b, kb, self.partitions)
  if kb then kb:close() end
  if not out then error(format("repartition topic %s: %s", self.topic, msg), 0) end
  return out
end

--- The markers saying upstream task `upstream` (its partition) has
-- watermark `ms`: a messages batch of one marker per partition of the topic.
function Writer:markers(upstream, ms)
  local out, msg = core.repart_markers(self.partitions, upstream, ms)
  if not out then error(format("repartition topic %s: %s", self.topic, msg), 0) end
  return out
end

-- Produce a messages batch through the producer (in its open
-- transaction), then close it; raise naming the task.
local function produce(self, mb, p)
  if not self.producer then
    mb:close()
    error("topology writer: no producer (made with a partition count: use encode and markers)", 3)
  end
  local n, msg = self.producer:produce(mb, self.map)
  mb:close()
  if not n then error(format("repartition topic %s: task partition %d: %s", self.topic, p, msg), 0) end
  return n
end

--- Queue the rows of a task's output batches (left open: the caller's).
-- @tab batches tide.Batch array
-- @int p the task's partition (for messages)
-- @treturn int the messages queued
function Writer:write(batches, p)
  local n = 0
  for _, b in ipairs(batches) do
    if b:nrows() > 0 then n = n + produce(self, self:encode(b), p) end
  end
  return n
end

--- Queue the watermark marker of task partition p to every partition
-- of the topic (call it in each cycle in which the task's watermark moved).
function Writer:marker(p, ms)
  return produce(self, self:markers(p, ms), p)
end

local Reader = {}
Reader.__index = Reader

--- The reader of one repartition source of a downstream task.
-- @param sub a sub-topology (after partition_counts), or a repartition
-- source node
-- @int k the source's index in `exec.compile(sub.root).sources` (with a
-- node: the number of upstream tasks)
function M.reader(sub, k)
  local node, upstreams
  if type(sub) == "table" and sub.inputs then
    local inp = sub.inputs[k]
    node = inp and inp.node
    if not (node and node.stream.repartition) then
      error(format("topology.reader: source %s of sub-topology %s does not read a repartition topic",
        tostring(k), tostring(sub.id)), 2)
    end
    upstreams = node.stream.repartition.upstream_partitions
    if not upstreams then
      error(format("topology.reader: the upstream task count of %s is not known: call topology.partition_counts" ..
        "(topo, counts) first", node.stream.topic), 2)
    end
  else
    node, upstreams = sub, k
    if type(node) ~= "table" or not (node.stream and node.stream.repartition) then
      error("topology.reader: bad argument #1: expected a sub-topology or a repartition source node", 2)
    end
    if math_type(upstreams) ~= "integer" or upstreams < 1 then
      error("topology.reader: bad argument #2: expected the upstream task count (an integer >= 1), got " ..
        tostring(upstreams), 2)
    end
  end
  return setmetatable({ topic = node.stream.topic, schema = node.schema, upstreams = upstreams, _marks = {} }, Reader)
end

--- Decode the messages polled for the task's partition of the topic, in
-- offset order: an array of { partition =, offset =, value = } (other
-- fields are ignored), or a messages batch. Markers move the upstream
-- watermarks; rows come out in one batch of the upstream output's schema.
-- @treturn table an array of batches (the caller closes them; empty when
-- only markers came)
-- @raise "repartition topic T partition P offset O: why" for a message
-- that does not decode
function Reader:decode(msgs)
  local b, marks = core.repart_decode(self.schema, msgs, self.topic)
  if not b then error(marks, 0) end
  for _, m in ipairs(marks) do
    local old = self._marks[m.upstream]
    -- a watermark never goes back (a restarted upstream task may repeat an older one)
    if not old or m.ms > old then self._marks[m.upstream] = m.ms end
    if m.upstream >= self.upstreams then self.upstreams = m.upstream + 1 end
  end
  if b:nrows() == 0 then
    b:close()
    return {}
  end
  return { b }
end

--- The watermark of the topic's rows: the minimum over the upstream
-- tasks' latest markers, 0 until every one has sent one.
function Reader:watermark()
  local w
  for p = 0, self.upstreams - 1 do
    local m = self._marks[p]
    if m == nil then return 0 end
    w = w and min(w, m) or m
  end
  return w
end

--- The latest marker of each upstream task: `{ [upstream partition] = ms }`
-- (a copy).
function Reader:marks()
  local out = {}
  for p, ms in pairs(self._marks) do out[p] = ms end
  return out
end

--- Take markers back (the greater of each and what the reader has).
-- @tab marks `{ [upstream partition] = ms }`, as marks() returns
function Reader:restore(marks)
  if type(marks) ~= "table" then
    error("restore: bad argument #1: expected the table marks() returned, got " .. type(marks), 2)
  end
  for p, ms in pairs(marks) do
    if math_type(p) ~= "integer" or p < 0 or math_type(ms) ~= "integer" then
      error("restore: bad argument #1: expected { [upstream partition] = ms } with integers", 2)
    end
    local old = self._marks[p]
    if not old or ms > old then self._marks[p] = ms end
    if p >= self.upstreams then self.upstreams = p + 1 end
  end
end

--- The markers as a string, to keep with the task's offsets:
-- "partition:ms,partition:ms" in partition order ("" when none).
function Reader:save()
  local ps = {}
  for p in pairs(self._marks) do ps[#ps + 1] = p end
  table.sort(ps)
  for i, p in ipairs(ps) do ps[i] = format("%d:%d", p, self._marks[p]) end
  return concat(ps, ",")
end

--- Take back what save() returned (a task restored on another process).
-- @raise for a string save() did not make, quoting it
function Reader:load(s)
  if type(s) ~= "string" then
    error("load: bad argument #1: expected the string save() returned, got " .. type(s), 2)
  end
  local marks = {}
  for part in s:gmatch("[^,]+") do
    local p, ms = part:match("^(%d+):(%-?%d+)$")
    if not p then error(format("load: bad saved watermarks of %s: %q", self.topic, s), 2) end
    marks[math.tointeger(tonumber(p))] = math.tointeger(tonumber(ms))
  end
  self:restore(marks)
end

return M
