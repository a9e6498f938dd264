--- Scale-out on Kafka (issue 15): one streaming query run by many
-- processes, as Kafka Streams runs an application.
--
--    q = s:write_stream("kafka", { application_id = "orders-app", state_dir = "/var/tide",
--                                  bootstrap = ..., topic = "totals" })
--
-- Every process started with the same application_id joins the Kafka
-- consumer group named after it (core.kafka_group: cooperative-sticky,
-- events polled between cycles). Each partition p of the input topics is a
-- task "0_p" with its own plan instance (tide.exec), its own state, its own
-- event time and watermark; the group decides which process runs which
-- task, and moves tasks when a process joins, leaves or stops answering.
--
-- A cycle (one per trigger): poll the group's events (tasks opened, closed);
-- take each task's messages after its committed offset (decoded into
-- batches in C by the Kafka source's reader); run each task's plan; then in
-- ONE Kafka transaction of the process's one transactional producer
-- (exactly_once_v2): every task's output rows, every task's state changes
-- to the changelog topics `<application_id>-<state>-changelog` (partition
-- p, key = the state key, value = the state record or a tombstone), and
-- every task's next input offsets with the group's metadata
-- (send_offsets_to_transaction: the coordinator refuses them from a member
-- of an older generation). After the commit, each task's state and
-- offsets go to its local LMDB cache `state_dir/<application_id>/<task>/`.
--
-- A task opened on this process restores from that cache when the offsets
-- it recorded are the group's committed ones, else from its changelog
-- partitions (read_committed, start to end, last value per key). Its
-- watermark travels with its state (a record of the first changelog), so
-- a moved task drops as late exactly the rows it would have dropped where
-- it was.
--
-- Revoked tasks have nothing uncommitted (a cycle commits before the next
-- poll of events), so they are closed and given back; lost ones (this
-- process's session timed out) likewise, without committing anything.
-- A transaction refused because this process was fenced (a stale group
-- generation, an unknown member, a newer producer) stops the query with
-- "application <id>: this process was fenced (...): another process owns
-- its tasks now"; another failed transaction is aborted, and every task
-- starts again from what is committed.
--
-- A stateful operator whose groups are not within one input partition
-- (its grouping keys are not the Kafka message key) gets a sub-topology of
-- its own (tide.topology.split): the tasks "0_p" before it write their
-- output rows, in the same transaction, to the internal topic
-- `<application_id>-<op>-repartition` in the partition of each row's
-- grouping key (packed as row blocks, docs/FORMAT.md), with watermark
-- markers; its tasks "1_p" read partition p of that topic after their
-- committed offset, as a task reads its input.
--
-- What runs under application_id (anything else is refused at
-- write_stream, with the reason): Kafka sources that name their topics
-- with `subscribe` (task p of a sub-topology reads partition p of each of its
-- topics, so they must be co-partitioned; the group assigns partition p of
-- the first), the Kafka sink with exactly_once, and every stateful
-- operator (aggregations, dedup, session windows, process, stream-stream
-- joins) grouped by the Kafka message key, or repartitioned by its keys
-- first (tide.topology), so that the rows of one group are all in one
-- task. A process() task whose processing-time timeout is due runs a
-- cycle without input; event-time timers, session ends and outer joins'
-- unmatched rows follow the task's watermark.
--
-- @module tide.scaleout

local core = require "tide.core"
local util = require "tide.util"
local exec = require "tide.exec"
local topology = require "tide.topology"
local runtime = require "tide.runtime"
local kafka_sink = require("tide.connectors.kafka.sink").sinks.kafka

local M = {}

local format, sort = string.format, table.sort
local json, unjson = util.json_encode, util.json_decode
local clock = core.clock_ms

local POLL_MS = 100       -- idle: how often the group and the input are looked at
local KEEP_PROGRESS = 100 -- reports kept for recent_progress
local META_KEY = "tide:task" -- the task's watermark record in its first changelog (state keys are 8 bytes)
local RESET_LIMIT = 5     -- failed transactions in a row before the query stops
local CACHE_KEEP = 10       -- entries kept in a task's local cache (its last is read at open)
local CACHE_PURGE_EVERY = 10 -- cycles between purges of a task's cache
-- A repartition message packs the rows of one cycle for one partition up to
-- this many bytes (binary, before base64; under librdkafka's 1 MB
-- message.max.bytes): the producer, the broker and the consumer then pay
-- their per-message costs per block, not per row (docs/FORMAT.md).
local BLOCK_BYTES = 256 * 1024
-- A task reads at most this many offsets of an input partition per cycle
-- when the source sets no max_offsets_per_trigger: a backlog then goes
-- through in cycles of bounded memory, whose output the downstream tasks
-- (here or in another process) take while the next cycle reads, and a
-- rebalance that aborts a cycle throws away a bounded amount of work.
local CYCLE_OFFSETS = 250000

-- ------------------------------------------------------------------------
-- Options
-- ------------------------------------------------------------------------

--- Set by `tide run --application-id ID [--state-dir DIR]`: the
-- application of every query the script starts without one.
M.defaults = nil

-- Query options that make no sense under application_id, and why.
local REFUSED_QUERY = {
  checkpoint = "the state lives in state_dir and in Kafka's changelog topics, the progress in the group's " ..
    "committed offsets",
  late_rows = "late rows go to a local store topic, which another process would not see",
  clock = "the batch time of a task is the process's clock",
  state_memory_limit = "a task's state is held in memory whole",
}

local REFUSED_SINK = {
  topic_column = "every row goes to option 'topic'",
  progress_topic = "the progress is the group's committed offsets",
}

-- Refuse what the runtime does not do, with the reason and what is allowed.
local function refuse(what, app, msg)
  error(format("%s: application_id '%s': %s", what, app, msg), 0)
end

local function check_app_id(what, id)
  if type(id) ~= "string" or id == "" or not id:match("^[%w._-]+$") or #id > 200 then
    error(format("%s: option 'application_id' must be a non-empty name of letters, digits, '.', '_' and '-' " ..
      "(it names the consumer group and the internal topics), got %s", what,
      type(id) == "string" and "'" .. id .. "'" or tostring(id)), 0)
  end
end

-- ------------------------------------------------------------------------
-- Tasks
-- ------------------------------------------------------------------------

local function mkdir_p(dir)
  local path = dir:sub(1, 1) == "/" and "" or "."
  for part in dir:gmatch("[^/]+") do
    path = path .. "/" .. part
    if not core.stat(path) then
      local ok, msg = core.mkdir(path)
      if not ok and not core.stat(path) then
        error(format("state_dir: cannot create '%s': %s", path, tostring(msg)), 0)
      end
    end
  end
end

local App = {}
App.__index = App

-- Open the local cache of task t (an LMDB checkpoint of its own).
function App:_open_cache(t)
  mkdir_p(t.dir)
  local ck, msg = core.checkpoint(t.dir, { sync = self._opts.sync })
  if not ck then error(format("task %s: local state %s: %s", t.id, t.dir, msg), 0) end
  t.ck = ck
end

-- A fresh plan instance and empty states for task t.
local function fresh(t)
  local sub = t.sub
  t.plan = exec.compile(sub.sub.root)
  t.states = {}
  for j in ipairs(sub.stateful) do t.states[j] = t.plan:new_state(j) end
  t.marks = {}
  t.wm, t.late_wm = nil, nil
  -- a source reading a repartition topic gives the task the watermark of
  -- its upstream tasks' markers (tide.topology's reader)
  t.readers = {}
  for k, e in ipairs(sub.inputs) do
    if e.kind == "repartition" then t.readers[k] = topology.reader(sub.sub, k) end
  end
  if #t.plan.marks > 0 or next(t.readers) then t.wm, t.late_wm = 0, 0 end
end

-- Apply a task record (the cache's commit entry or the changelog's meta
-- record): its watermarks and its readers' upstream markers.
local function apply_meta(t, m)
  if type(m) ~= "table" then return end
  if t.wm ~= nil then
    t.wm = math.tointeger(m.wm) or t.wm
    t.late_wm = math.tointeger(m.late) or t.late_wm
    for i, v in pairs(m.marks or {}) do t.marks[tonumber(i)] = { value = math.tointeger(v) } end
  end
  local saved = type(m.readers) == "table" and m.readers or { ["1"] = m.reader } -- (one reader: "reader")
  for k, r in pairs(t.readers) do
    local s = saved[tostring(k)]
    if type(s) == "string" then r:load(s) end
  end
end

local function task_meta(t)
  local marks, readers = {}, nil
  for i, m in pairs(t.marks) do marks[tostring(i)] = m.value end
  for k, r in pairs(t.readers) do
    readers = readers or {}
    readers[tostring(k)] = r:save()
  end
  return { wm = t.wm, late = t.late_wm, marks = marks, readers = readers }
end

-- The task's next offsets, in the order of t.parts.
local function next_offsets(t)
  local out = {}
  for i, x in ipairs(t.parts) do out[i] = x.next end
  return out
end

-- Whether offsets recorded in a cache entry (an array; a number from a
-- cache of one topic) are the task's.
local function same_offsets(t, rec)
  if math.type(rec) == "integer" then rec = { rec } end
  if type(rec) ~= "table" or #rec ~= #t.parts then return false end
  for i, x in ipairs(t.parts) do
    if rec[i] ~= x.next then return false end
  end
  return true
end

-- Open task (sub, p) (sub: one of self._subs): partition p of every topic
-- of the sub-topology (the group assigned this process partition p of its
-- first topic), their committed offsets, then its state from the local
-- cache when that is current, else from the changelogs.
function App:_open_task(sub, p)
  local id = format("%d_%d", sub.sub.id, p)
  local t = { id = id, sub = sub, partition = p, dir = self._app_dir .. "/" .. id, n = 0, lag = 0, parts = {} }
  local list = {}
  for k, e in ipairs(sub.inputs) do
    for _, topic in ipairs(e.topics) do
      t.parts[#t.parts + 1] = { topic = topic, k = k }
      list[#list + 1] = { topic, p }
    end
  end
  fresh(t)
  local committed
  for attempt = 1, 3 do
    local got, msg = self._member:committed(list, 10000)
    if got then committed = got break end
    if attempt == 3 then error(format("task %s: reading its committed offsets: %s", t.id, msg), 0) end
  end
  for i, x in ipairs(t.parts) do
    local at = committed[i]
    if at < 0 then
      -- a new application starts its input as the source says, its
      -- repartition topics at their start
      local e = sub.inputs[x.k]
      local where = e.kind == "kafka" and e.starting == "latest" and "latest" or "earliest"
      local got = e.source._reader:offsets({ { x.topic, p } }, where)
      if not got then error(format("task %s: reading the start offset of %s/%d", t.id, x.topic, p), 0) end
      at = got[1]
      t.fresh = true
    end
    x.next = at
  end
  self:_open_cache(t)
  local _, last = t.ck:latest()
  local entry = last and unjson(t.ck:commit_entry(last) or "null")
  if type(entry) == "table" and same_offsets(t, entry.next) and not t.fresh then
    -- the cache is current: its state is the committed one
    for j, s in ipairs(sub.stateful) do
      local st = t.states[j]
      for key, blob in t.ck:state(s.name) do st.restore(key, blob) end
      st.clear_changes()
    end
    apply_meta(t, entry)
    t.n = last
    t.restored = "local"
  else
    t.ck:close()
    self._hooks.remove_tree(t.dir)
    self:_open_cache(t)
    local changes = {}
    for j, s in ipairs(sub.stateful) do
      local recs, msg = core.kafka_read_log(self._bootstrap, s.changelog, p, self._kafka, self._timeout)
      if not recs then error(format("task %s: restoring from changelog '%s': %s", t.id, s.changelog, msg), 0) end
      local last_of = {}
      for _, r in ipairs(recs) do last_of[r[1]] = r[2] or false end
      local cs = core.state_changes()
      local st = t.states[j]
      for key, blob in pairs(last_of) do
        if key == META_KEY then
          if j == 1 and blob then apply_meta(t, unjson(blob)) end
        elseif blob then
          local ok, err = pcall(st.restore, key, blob)
          if not ok then
            error(format("task %s: changelog '%s': %s", t.id, s.changelog, util.strip_position(err)), 0)
          end
          cs:put(key, blob)
        end
      end
      st.clear_changes()
      changes[s.name] = cs
    end
    local meta = task_meta(t)
    meta.next = next_offsets(t)
    t.ck:write_offsets(1, json(meta))
    t.ck:commit(1, json(meta), changes)
    for _, cs in pairs(changes) do cs:free() end
    t.n = 1
    t.restored = "changelog"
  end
  self._tasks[id] = t
end

function App:_close_task(id)
  local t = self._tasks[id]
  if not t then return end
  if t.ck then t.ck:close() end
  t.ck = nil
  self._tasks[id] = nil
end

-- Close every task and open them again from what is committed (after a
-- transaction that failed: the tasks' memory ran ahead of it).
function App:_reset_tasks()
  local open = {}
  for id, t in pairs(self._tasks) do open[#open + 1] = { id, t.sub, t.partition } end
  for _, x in ipairs(open) do self:_close_task(x[1]) end
  for _, x in ipairs(open) do self:_open_task(x[2], x[3]) end
end

-- ------------------------------------------------------------------------
-- The group's events
-- ------------------------------------------------------------------------

function App:_events()
  for _ = 1, 100 do
    local kind, items, ename = self._member:poll(0, 1)
    if kind == nil then
      if items then error(format("application %s: consumer group: %s (%s)", self._app, items, tostring(ename)), 0) end
      return
    end
    if kind == "assign" then
      for _, tp in ipairs(items) do self:_open_task(self._by_topic[tp[1]], tp[2]) end
    elseif kind == "revoke" or kind == "lost" then
      -- a cycle commits (or aborts) all it did before the next poll: a
      -- revoked or lost task holds nothing uncommitted
      for _, tp in ipairs(items) do self:_close_task(format("%d_%d", self._by_topic[tp[1]].sub.id, tp[2])) end
      local ok, msg = self._member:release()
      if not ok then error(format("application %s: consumer group: %s", self._app, msg), 0) end
      if kind == "lost" then self._lost = (self._lost or 0) + #items end
    end
  end
end

-- ------------------------------------------------------------------------
-- A cycle
-- ------------------------------------------------------------------------

-- The transactional failures that mean another process owns the tasks.
local function is_fenced(msg, ename)
  if ename == "EPOISONED" then return true end
  msg = tostring(msg)
  return msg:find("fenced", 1, true) ~= nil or msg:find("FENCED", 1, true) ~= nil
end

-- A transaction refused because the group moved to a new generation while
-- the cycle ran.
local function is_migrated(msg)
  msg = tostring(msg)
  return msg:find("generation id is not valid", 1, true) ~= nil or msg:find("ILLEGAL_GENERATION", 1, true) ~= nil or
    msg:find("REBALANCE_IN_PROGRESS", 1, true) ~= nil or msg:find("rebalance in progress", 1, true) ~= nil
end

function App:_fenced(msg)
  error(format("application %s: this process was fenced (%s): another process owns its tasks now", self._app,
    util.strip_position(tostring(msg))), 0)
end

-- The task's watermark after its batch (query.lua's rule, per task).
function App:_advance(t, stats)
  if t.wm == nil then return end
  for i in ipairs(t.plan.marks) do t.marks[i] = t.marks[i] or {} end
  if not next(t.readers) then
    t.wm = exec.advance_watermark(t.plan.marks, t.marks, stats, self._opts.multiple_watermark_policy, t.wm)
    return
  end
  -- after a repartition: each repartition topic's watermark is the least
  -- of its upstream tasks' markers; over several (a join's two sides) and
  -- the task's own with_watermark nodes (a Kafka topic read too), the
  -- query's multiple_watermark_policy, as tide.query does over its marks
  local policy = self._opts.multiple_watermark_policy
  local w = #t.plan.marks > 0 and exec.advance_watermark(t.plan.marks, t.marks, stats, policy, nil) or nil
  for _, r in pairs(t.readers) do
    local x = r:watermark()
    if w == nil or (policy == "max" and x > w) or (policy ~= "max" and x < w) then w = x end
  end
  if w > t.wm then t.wm = w end
end

-- A processing-time timeout of task t has passed (process() with
-- timeout = "processing": node.due_at): the task runs a cycle without
-- input, as tide.query runs a no-data batch for it.
local function timed_out(t)
  local now = core.time_now()
  for j, s in ipairs(t.sub.stateful) do
    local at = s.node.due_at and s.node.due_at(t.states[j])
    if at and at < now then return true end
  end
  return false
end

-- The changes of state st since its last clear_changes as a change set
-- (core.state_changes): aggregations, dedup and session windows make
-- theirs in C; process() gives puts {{key, blob}...} and dels {key...}.
local function change_set(st)
  local puts, dels = st.take_changes()
  if dels == nil then return puts end
  local cs = core.state_changes()
  for _, key in ipairs(dels) do cs:del(key) end
  for _, kv in ipairs(puts) do cs:put(kv[1], kv[2]) end
  return cs
end

local function close_all(list)
  for _, b in ipairs(list or {}) do b:close() end
end

-- Queue a task's output rows to its sub-topology's repartition topic as row
-- blocks (writer: tide.topology's, for its topic, key and partition count).
local function write_blocks(writer, ks, batches, p)
  for _, b in ipairs(batches) do
    if b:nrows() > 0 then
      local kb, msg
      if #writer.key_exprs > 0 then
        kb, msg = core.project(b, writer.key_exprs, writer.key_schema)
        if not kb then error(format("repartition topic %s: the key: %s", writer.topic, msg), 0) end
      end
      local mb
      mb, msg = core.repart_encode_blocks(b, kb, writer.partitions, BLOCK_BYTES)
      if kb then kb:close() end
      if not mb then error(format("repartition topic %s: %s", writer.topic, msg), 0) end
      local n
      n, msg = ks:produce(mb, writer.map)
      mb:close()
      if not n then error(format("repartition topic %s: task partition %d: %s", writer.topic, p, msg), 0) end
    end
  end
end

-- One cycle; true when a transaction ran.
function App:_cycle()
  local t0 = clock()
  self:_events()
  -- the group's metadata as this cycle starts: a process that hangs past
  -- its session timeout in the middle of the cycle then commits with its
  -- old membership, which the coordinator refuses (fencing)
  local md, mid = self._member:metadata(), self._member:member_id()
  local ids = {}
  for id in pairs(self._tasks) do ids[#ids + 1] = id end
  sort(ids)
  if #ids == 0 then
    self._status.message = "Waiting for tasks (the group has given this process none)"
    self._query._idle = self._query._idle + 1
    return false
  end
  -- each sub-topology's partitions' ends, through its sources' readers
  local by_sub = {}
  for _, id in ipairs(ids) do
    local t = self._tasks[id]
    local g = by_sub[t.sub]
    if not g then
      g = {}
      by_sub[t.sub] = g
    end
    g[#g + 1] = t
  end
  local work = {}
  for _, sub in ipairs(self._subs) do
    local tasks = by_sub[sub]
    if tasks then
      for k, e in ipairs(sub.inputs) do
        local list, parts = {}, {}
        for _, t in ipairs(tasks) do
          for _, x in ipairs(t.parts) do
            if x.k == k then
              list[#list + 1] = { x.topic, t.partition }
              parts[#parts + 1] = x
            end
          end
        end
        local reader = e.source._reader
        local ends, msg = reader:offsets(list, "latest")
        if not ends then error(format("%s: offsets: %s", e.source.description, tostring(msg)), 0) end
        local ranges = {}
        for i, x in ipairs(parts) do
          local stop = math.max(x.next, ends[i])
          if e.limit then stop = math.min(stop, x.next + e.limit) end
          x.stop, x.lag = stop, math.max(0, ends[i] - stop)
          if stop > x.next then ranges[#ranges + 1] = { x.topic, list[i][2], x.next, stop } end
        end
        -- every task's partitions fetch from now on, while the tasks
        -- before them run (a task's read would otherwise start its
        -- fetching cold)
        if #ranges > 0 then
          local okp, pmsg = reader:prefetch(ranges)
          if not okp then error(format("%s: prefetch: %s", e.source.description, tostring(pmsg)), 0) end
        end
      end
      for _, t in ipairs(tasks) do
        local data, lag = false, 0
        for _, x in ipairs(t.parts) do
          data = data or x.stop > x.next
          lag = lag + x.lag
        end
        t.lag = lag
        if data or t.no_data_due or timed_out(t) then work[#work + 1] = { t = t } end
      end
    end
  end
  if #work == 0 then
    self._status.message = "Waiting for data to arrive"
    self._status.is_data_available = false
    self._query._idle = self._query._idle + 1
    return false
  end
  self._status.message = "Processing new data"
  self._status.is_data_available = true
  local t1 = clock()
  local rows_in, rows_out, outputs_all = 0, 0, {}
  local ts = core.time_now()
  local ok, err = pcall(function()
    for _, w in ipairs(work) do
      local t = w.t
      local inputs, p = {}, tostring(t.partition)
      w.inputs, w.raw = {}, {} -- every batch read or decoded, closed after the cycle
      for k, e in ipairs(t.sub.inputs) do
        local start, stop, any = {}, {}, false
        for _, x in ipairs(t.parts) do
          if x.k == k and x.stop > x.next then
            start[x.topic], stop[x.topic], any = { [p] = x.next }, { [p] = x.stop }, true
          end
        end
        local list = {}
        if any then
          local okg, got = pcall(e.source.get_batch, e.source, start, stop, t.n + 1)
          if not okg then error(format("task %s: %s", t.id, util.strip_position(got)), 0) end
          list = got or {}
          local r = t.readers[k]
          if r then
            -- repartition messages: the upstream rows, and the markers that
            -- move this task's watermark
            for _, mb in ipairs(list) do w.raw[#w.raw + 1] = mb end
            local rows = {}
            for _, mb in ipairs(list) do
              local okd, got2 = pcall(r.decode, r, mb)
              if not okd then error(format("task %s: %s", t.id, util.strip_position(got2)), 0) end
              for _, x in ipairs(got2) do rows[#rows + 1] = x end
            end
            list = rows
          end
        end
        inputs[k] = list
        for _, b in ipairs(list) do w.inputs[#w.inputs + 1] = b end
      end
      for _, b in ipairs(w.inputs) do rows_in = rows_in + b:nrows() end
      local batch_wm = t.wm
      local oke, outs, info = pcall(t.plan.execute, t.plan, inputs, {
        mode = self._mode, watermark = batch_wm, late_watermark = batch_wm and t.late_wm, timestamp = ts,
        states = t.states })
      if not oke then error(format("task %s: %s", t.id, tostring(outs)), 0) end
      w.outputs, w.owned, w.info, w.batch_wm = outs, info.owned, info, batch_wm
      outputs_all[#outputs_all + 1] = w
      for _, b in ipairs(outs) do rows_out = rows_out + b:nrows() end
    end
  end)
  local function release()
    for _, w in ipairs(outputs_all) do
      if w.owned then close_all(w.outputs) end
    end
    for _, w in ipairs(work) do
      close_all(w.inputs)
      close_all(w.raw)
    end
  end
  if not ok then
    release()
    error(err, 0)
  end
  local t2 = clock()
  -- the transaction: output, changelogs, offsets with the group's metadata
  local ks = self._producer
  local changes = {}
  ok, err = pcall(function()
    local okb, bmsg = ks:begin()
    if not okb then
      if is_fenced(bmsg) then self:_fenced(bmsg) end
      error("beginning a transaction: " .. tostring(bmsg), 0)
    end
    local offsets = {}
    for _, w in ipairs(work) do
      local t = w.t
      local sub = t.sub
      if sub.writer then
        write_blocks(sub.writer, ks, w.outputs, t.partition)
      else
        kafka_sink.produce_all(ks, w.outputs, self._map, self._key)
      end
      self:_advance(t, w.info.stats)
      if sub.writer and t.wm ~= nil and t.wm > (t.sent_wm or 0) then
        -- the downstream tasks learn this task's watermark
        sub.writer:marker(t.partition, t.wm)
        w.sent_wm = t.wm
      end
      w.changes = {}
      for j, s in ipairs(sub.stateful) do
        local cs = change_set(t.states[j])
        w.changes[s.name] = cs
        changes[#changes + 1] = cs
        local okp, pmsg = ks:produce_changes(s.changelog, t.partition, cs)
        if not okp then error(pmsg, 0) end
      end
      local moved = t.wm ~= nil and (t.wm ~= w.batch_wm or t.late_wm ~= w.batch_wm or next(t.readers))
      if moved and #sub.stateful > 0 then
        local meta = task_meta(t)
        meta.late = w.batch_wm
        local okp, pmsg = ks:produce_raw(sub.stateful[1].changelog, t.partition, META_KEY, json(meta))
        if not okp then error(pmsg, 0) end
      end
      for _, x in ipairs(t.parts) do offsets[#offsets + 1] = { x.topic, t.partition, x.stop } end
    end
    -- a rebalance during the cycle that kept this member (same member id, a
    -- newer generation: a process joined or left) leaves it the owner of
    -- its tasks until it gives them back at its next poll of the group's
    -- events: it commits with the generation of now, not aborting the
    -- cycle's work; a changed member id (its session timed out) keeps the
    -- cycle's metadata, which the coordinator refuses
    if mid ~= "" and self._member:member_id() == mid then md = self._member:metadata() end
    local okc, cmsg, ename = ks:commit_offsets(offsets, md)
    if not okc then
      if is_fenced(cmsg, ename) then self:_fenced(cmsg) end
      error(cmsg, 0)
    end
  end)
  release()
  if not ok then
    ks:abort()
    for _, cs in ipairs(changes) do cs:free() end
    if tostring(err):find("this process was fenced", 1, true) then error(err, 0) end
    -- a commit that raced a rebalance (this member's generation moved
    -- before it heard so) is Kafka Streams' TaskMigrated: the tasks start
    -- again from what is committed once the group's events are handled,
    -- a poll later; it is no failure of the transaction
    local migrated = is_migrated(err)
    if not migrated then self._failures = (self._failures or 0) + 1 end
    if self._failures and self._failures >= RESET_LIMIT then
      error(format("application %s: %d transactions in a row failed, the last: %s", self._app, self._failures,
        tostring(err)), 0)
    end
    io.stderr:write(format("tide: warning: application %s: transaction aborted (%s); the tasks start again from " ..
      "what is committed\n", self._app, util.strip_position(tostring(err))))
    self:_reset_tasks()
    return not migrated
  end
  self._failures = 0
  local t3 = clock()
  -- committed in Kafka: now the local caches (a crash before this leaves a
  -- cache behind the group's offsets, which the next open notices)
  local totals = {}
  for _, w in ipairs(work) do
    local t = w.t
    t.n = t.n + 1
    for _, x in ipairs(t.parts) do x.next = x.stop end
    if w.sent_wm then t.sent_wm = w.sent_wm end
    if t.wm ~= nil then
      t.late_wm = w.batch_wm
      t.no_data_due = false
      if self._opts.no_data_batches and t.wm > w.batch_wm then
        for _, s in ipairs(t.sub.stateful) do
          if s.node.due(self._mode) then t.no_data_due = true end
        end
      end
    end
    local meta = task_meta(t)
    meta.next = next_offsets(t)
    t.ck:write_offsets(t.n, json(meta))
    t.ck:commit(t.n, json(meta), w.changes)
    -- only the last entry is ever read (App:_open_task): keep a few, so a
    -- long-running task's cache does not grow by two entries a cycle
    if t.n % CACHE_PURGE_EVERY == 0 then t.ck:purge(t.n - CACHE_KEEP + 1) end
    for _, cs in pairs(w.changes) do cs:free() end
    for j in ipairs(t.sub.stateful) do t.states[j].clear_changes() end
  end
  for _, t in pairs(self._tasks) do
    for j, s in ipairs(t.sub.stateful) do totals[s.k] = (totals[s.k] or 0) + t.states[j].rows() end
  end
  self._cycles = self._cycles + 1
  self:_report({ t0 = t0, t1 = t1, t2 = t2, t3 = t3, t4 = clock(), rows_in = rows_in, rows_out = rows_out,
    timestamp = ts, totals = totals, work = work })
  return true
end

-- ------------------------------------------------------------------------
-- Progress
-- ------------------------------------------------------------------------

--- The tasks this process runs now: { id = "0_3", partitions = { {topic,
-- p}, ... } (partition p of each topic the task reads), offsets = { next
-- offset, ... } (the same order), offset = the first one's, lag = offsets
-- behind the ends (as the last cycle saw them), state_rows = rows of
-- state, restored_from = "local" | "changelog", watermark = ms or nil },
-- sorted by id.
function App:_task_list()
  local out = {}
  for _, t in pairs(self._tasks) do
    local rows = 0
    for j in ipairs(t.sub.stateful) do rows = rows + t.states[j].rows() end
    local parts = {}
    for i, x in ipairs(t.parts) do parts[i] = { x.topic, t.partition } end
    out[#out + 1] = { id = t.id, sub = t.sub.sub.id, partitions = parts, offsets = next_offsets(t),
      offset = t.parts[1].next, lag = t.lag, state_rows = rows, restored_from = t.restored, watermark = t.wm }
  end
  sort(out, function(a, b)
    if a.sub ~= b.sub then return a.sub < b.sub end
    return a.partitions[1][2] < b.partitions[1][2]
  end)
  return out
end

-- The process's watermark for the status line: the least of its tasks'.
function App:_min_watermark()
  local w
  for _, t in pairs(self._tasks) do
    if t.wm ~= nil and (w == nil or t.wm < w) then w = t.wm end
  end
  return w
end

function App:_report(c)
  local since = self._last_trigger and (c.t0 - self._last_trigger) or (c.t4 - c.t0)
  self._last_trigger = c.t0
  local function ms(x) return math.floor(x * 1000 + 0.5) / 1000 end
  local lag = {}
  for _, t in pairs(self._tasks) do
    for _, x in ipairs(t.parts) do
      lag[x.topic] = lag[x.topic] or {}
      lag[x.topic][tostring(t.partition)] = x.lag or 0
    end
  end
  local ops = {}
  for _, sub in ipairs(self._subs) do
    for j, s in ipairs(sub.stateful) do
      local bytes, updated, dropped, dups = 0, 0, 0, 0
      for _, t in pairs(self._tasks) do
        if t.sub == sub then bytes = bytes + t.states[j].bytes() end
      end
      for _, w in ipairs(c.work) do
        if w.t.sub == sub then
          local m = w.info.metrics[j]
          updated, dropped, dups = updated + m.updated, dropped + m.dropped_by_watermark, dups + m.dropped_duplicates
        end
      end
      ops[s.k] = { name = s.node.stateful, num_rows_total = c.totals[s.k] or 0, num_rows_updated = updated,
        num_rows_dropped_by_watermark = dropped, num_dropped_duplicates = dups, memory_bytes = bytes,
        changelog = s.changelog }
    end
  end
  local total_ms = c.t4 - c.t0
  local wm = self:_min_watermark()
  local p = {
    id = self._app, name = self._name, batch_id = self._cycles, timestamp = c.timestamp,
    num_input_rows = c.rows_in, num_output_rows = c.rows_out,
    input_rows_per_second = since > 0 and c.rows_in / since * 1000 or 0,
    processed_rows_per_second = total_ms > 0 and c.rows_in / total_ms * 1000 or 0,
    duration_ms = { get_batch = ms(c.t1 - c.t0), execution = ms(c.t2 - c.t1), add_batch = ms(c.t3 - c.t2),
      commit = ms(c.t4 - c.t3), total = ms(total_ms) },
    event_time = wm and { watermark = wm } or {},
    state_operators = ops,
    sources = { { description = self._subs[1].inputs[1].source.description, num_input_rows = c.rows_in,
      lag = lag } },
    sink = { description = self._sink_description },
    application = { id = self._app, member_id = self._member:member_id(), tasks = self:_task_list() },
  }
  local q = self._query
  local list = q._progress
  list[#list + 1] = p
  if #list > KEEP_PROGRESS then table.remove(list, 1) end
  for _, fn in ipairs(self._hooks.listeners) do
    local lok, lerr = pcall(fn, q, p)
    if not lok then io.stderr:write(format("tide: progress listener: %s\n", tostring(lerr))) end
  end
end

function App:close()
  for id in pairs(self._tasks) do self:_close_task(id) end
  local first
  if self._member then
    -- leave the group now, so that the tasks move at once
    local ok, msg = self._member:close()
    if not ok then first = msg end
    self._member = nil
  end
  if self._producer then
    self._producer:close()
    self._producer = nil
  end
  for _, src in ipairs(self._readers or {}) do
    if src.stop then pcall(src.stop, src) end
  end
  self._readers = {}
  return first
end

-- ------------------------------------------------------------------------
-- The query object: tide.query's, with the cycle as its step
-- ------------------------------------------------------------------------

local ScaleQuery -- made at the first start, from tide.query's Query

local function query_class(Query)
  if ScaleQuery then return ScaleQuery end
  ScaleQuery = setmetatable({}, { __index = Query })
  ScaleQuery.__index = ScaleQuery
  ScaleQuery.__tostring = Query.__tostring
  ScaleQuery._is_query = true
  function ScaleQuery:_step() return self._app:_cycle() end
  -- a fenced process stops with the one line that says so (where in
  -- tide's code the cycle noticed it says nothing more)
  function ScaleQuery:_fail(err)
    local s = tostring(err)
    if s:find("this process was fenced", 1, true) then err = s:match("^[^\n]*") end
    return Query._fail(self, err)
  end
  ScaleQuery._exhausted = function() return false end
  function ScaleQuery:_idle_wait()
    self:_schedule(POLL_MS)
    self._waiting = true
  end
  function ScaleQuery:_close_all()
    if self._timer then self._timer:close() self._timer = nil end
    return self._app:close()
  end
  ScaleQuery._source_lags = function() return {} end
  function ScaleQuery:watermark() return self._app:_min_watermark() end
  --- The tasks this process runs (App:_task_list).
  function ScaleQuery:tasks() return self._app:_task_list() end
  --- The application's id (the consumer group).
  function ScaleQuery:application_id() return self._app._app end
  return ScaleQuery
end

--- Start a query under application_id (tide.query.start hands it over).
-- @param H tide.query's internals: Query, active, listeners, analyze,
-- split_options, parse_trigger, random_id, remove_tree, install_signals
function M.start(f, sink, opts, what, level, H)
  level = level + 1
  opts = opts == nil and {} or opts
  if type(opts) ~= "table" then error(what .. ": options must be a table, got " .. type(opts), level) end
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  local defaults = M.defaults or {}
  local app = o.application_id
  if app == nil then app = defaults.application_id end
  local state_dir = o.state_dir
  if state_dir == nil then state_dir = defaults.state_dir or "./tide-state" end
  o.application_id, o.state_dir = nil, nil
  local ok, err = pcall(function()
    check_app_id(what, app)
    if type(state_dir) ~= "string" or state_dir == "" then
      error(format("%s: option 'state_dir' must be a directory name, got %s", what, tostring(state_dir)), 0)
    end
    if sink ~= "kafka" then
      refuse(what, app, format("the sink must be \"kafka\" (with exactly_once, the default): the output, the " ..
        "changelogs and the input offsets commit in one Kafka transaction; got %s",
        type(sink) == "string" and "\"" .. sink .. "\"" or type(sink)))
    end
    for k, why in pairs(REFUSED_QUERY) do
      if o[k] ~= nil then refuse(what, app, format("option '%s' is not allowed: %s", k, why)) end
    end
    for k, why in pairs(REFUSED_SINK) do
      if o[k] ~= nil then refuse(what, app, format("option '%s' is not allowed: %s", k, why)) end
    end
    if o.exactly_once == false then
      refuse(what, app, "option 'exactly_once' must stay true: the tasks' output, state and offsets commit together")
    end
  end)
  if not ok then error(util.strip_position(err), level) end
  local descriptor = runtime.connector("sink", "kafka", level)
  local qo, so = H.split_options(o, descriptor.options, what, level)
  local trigger = H.parse_trigger(qo.trigger, what, level)
  if trigger.kind ~= "interval" then
    error(format("%s: application_id '%s': trigger '%s' is not allowed: the processes of an application run " ..
      "until stopped (a duration or 0)", what, app, trigger.kind), level)
  end
  local root = f._node
  local sources, stateful = H.analyze(root, qo.mode, what, level)
  ok, err = pcall(function()
    for _, src in ipairs(sources) do
      local s = src.stream
      if not s or s.kind ~= "kafka" then
        refuse(what, app, format("every source must be read_stream(\"kafka\"), not %s", src.label))
      end
      local so_ = s.opts
      if not so_.subscribe then
        refuse(what, app, "a Kafka source must name its topics with option 'subscribe' (not assign or " ..
          "subscribe_pattern): task p reads partition p of each")
      end
      if so_.starting_offsets ~= nil and so_.starting_offsets ~= "earliest" and so_.starting_offsets ~= "latest" then
        refuse(what, app, "option 'starting_offsets' must be \"earliest\" or \"latest\" (where a new application " ..
          "starts; then the group's committed offsets say)")
      end
      for _, k in ipairs { "starting_timestamp", "group_id" } do
        if so_[k] ~= nil then
          refuse(what, app, format("the Kafka source's option '%s' is not allowed: the group '%s' keeps the offsets",
            k, app))
        end
      end
      if so_.bad_records == "dead_letter" then
        refuse(what, app, "bad_records = \"dead_letter\" writes to a local store topic, which another process " ..
          "would not see: use \"fail\" or \"drop\"")
      end
      if so_.bootstrap ~= so.bootstrap then
        refuse(what, app, format("the sources and the sink must be on one Kafka cluster (one transaction commits " ..
          "them all): source bootstrap '%s', sink bootstrap '%s'", tostring(so_.bootstrap), tostring(so.bootstrap)))
      end
    end
  end)
  if not ok then error(util.strip_position(err), level) end
  -- the sub-topologies: cut at the stateful operators whose groups are
  -- not within one input partition (tide.topology)
  local okt, topo = pcall(topology.split, root, app)
  if not okt then
    error(format("%s: application_id '%s': %s", what, app, (util.strip_position(topo):gsub("^topology: ", ""))),
      level)
  end
  if qo.name then
    for _, q in ipairs(H.active) do
      if q._name == qo.name then error(format("%s: a query named '%s' is already active", what, qo.name), level) end
    end
  end

  local Q = query_class(H.Query)
  local q = setmetatable({
    _root = root, _mode = qo.mode, _trigger = trigger, _sink_name = "kafka", _opts = qo, _id = app,
    _name = qo.name or app, _sources = {}, _progress = {}, _idle = 0, _force = 0, _active = false,
    _clock = core.time_now,
    _status = { message = "Initializing", is_data_available = false, is_trigger_active = false },
  }, Q)
  local a = setmetatable({
    _app = app, _root = root, _mode = qo.mode, _opts = qo, _name = qo.name or app, _query = q, _hooks = H,
    _tasks = {}, _cycles = 0, _subs = {}, _by_topic = {}, _status = q._status,
    _app_dir = state_dir .. "/" .. app, _bootstrap = so.bootstrap, _timeout = so.timeout,
  }, App)
  q._app = a

  ok, err = pcall(function()
    local first = sources[1].stream
    local fo = first.opts
    a._kafka = {}
    for k, v in pairs(fo.kafka or {}) do a._kafka[k] = tostring(v) end
    a._readers = {}
    -- each Kafka source's reader (decodes in C), for the tasks' ranges,
    -- and the partition counts of its topics
    local inst, counts_in = {}, {}
    for i, src in ipairs(sources) do
      local source = src.stream.descriptor.new(src.stream.opts, { loop = runtime.loop(), query_id = app, index = i })
      a._readers[#a._readers + 1] = source
      inst[src] = source
      q._sources[i] = { description = source.description, node = src }
      for _, topic in ipairs(topology.topics_of(src)) do
        local md, merr = source._reader:metadata(topic)
        if not md then error(format("%s: metadata: %s", source.description, tostring(merr)), 0) end
        local info
        for _, t in ipairs(md) do if t.name == topic then info = t end end
        if not info or info.error or (info.partitions or 0) < 1 then
          error(format("%s: topic '%s' does not exist%s", source.description, topic,
            info and info.error and " (" .. tostring(info.error) .. ")" or ""), 0)
        end
        counts_in[topic] = info.partitions
      end
    end
    local okp, counts = pcall(topology.partition_counts, topo, counts_in)
    if not okp then
      error(format("application_id '%s': %s", app, (util.strip_position(counts):gsub("^topology: ", ""))), 0)
    end
    -- the internal topics: changelogs (compacted) and repartition topics
    -- with the task count of the sub-topology that owns them
    local create = {}
    for _, sub in ipairs(topo.subs) do
      -- the sub's first topic is what the group assigns: its partition p
      -- is task p, which reads partition p of every topic of the sub
      local entry = { sub = sub, lead = sub.sources[1], inputs = {}, stateful = {} }
      for j, k in ipairs(sub.stateful) do
        local node = stateful[k]
        entry.stateful[j] = { k = k, node = node, name = topology.state_name(node, k),
          changelog = topo.changelogs[k] }
        create[#create + 1] = { topo.changelogs[k], counts.tasks[sub.id], true }
      end
      for k, inp in ipairs(sub.inputs) do
        local e = { kind = inp.kind, topics = inp.topics, source = inst[inp.node] }
        if inp.kind == "kafka" then
          assert(e.source, "a Kafka source of the sub-topology is one of the query's")
          e.starting = inp.node.stream.opts.starting_offsets or "latest"
          e.limit = inp.node.stream.opts.max_offsets_per_trigger or CYCLE_OFFSETS
        else
          -- a repartition topic: its messages as message columns (no value
          -- format), decoded by the task's topology.reader
          local ro = { bootstrap = so.bootstrap, subscribe = inp.topic, kafka = fo.kafka,
            poll_timeout = fo.poll_timeout }
          e.source = first.descriptor.new(ro, { loop = runtime.loop(), query_id = app, index = #a._readers + 1 })
          a._readers[#a._readers + 1] = e.source
          e.limit = fo.max_offsets_per_trigger
        end
        entry.inputs[k] = e
      end
      a._subs[#a._subs + 1] = entry
      a._by_topic[entry.lead] = entry
    end
    for t, n in pairs(counts.topics) do create[#create + 1] = { t, n, false } end
    if #create > 0 then
      local okc, terr = core.kafka_create_topics(a._bootstrap, create, a._kafka, a._timeout)
      if not okc then error(format("application %s: internal topics: %s", app, terr), 0) end
    end
    -- the output: the Kafka sink's message map, on the process's producer
    local kv = kafka_sink.check_opts(so, what)
    a._map, a._key = kafka_sink.plan(so, root.schema)
    a._sink_description = kafka_sink.label(so)
    q._sink = { description = a._sink_description }
    mkdir_p(a._app_dir)
    -- one transactional producer per process: <application_id>-<process id>
    local pid = H.random_id()
    local ks, kmsg = core.kafka_sink(so.bootstrap, { exactly_once = true, txn_id = app .. "-" .. pid, group = app,
      timeout = so.timeout, kafka = kv })
    if not ks then error(kmsg, 0) end
    a._producer = ks
    local oki, imsg = ks:init()
    if not oki then error(format("application %s: %s", app, imsg), 0) end
    -- every topic the producer writes to: its first message then goes out
    -- without waiting for the client's topic scan (up to a second, held by
    -- the commit of the cycle that writes it first)
    local written = {}
    if type(so.topic) == "string" then written[1] = so.topic end
    for _, sub in ipairs(a._subs) do
      if sub.sub.output.kind == "repartition" then
        sub.writer = topology.writer(sub.sub, ks)
        written[#written + 1] = sub.writer.topic
      end
      for _, s in ipairs(sub.stateful) do written[#written + 1] = s.changelog end
    end
    ks:prepare(written)
    local settings = { ["client.id"] = "tide-" .. app }
    for k, v in pairs(a._kafka) do settings[k] = v end
    local topics = {}
    for i, sub in ipairs(a._subs) do topics[i] = sub.lead end
    local m, gmsg = core.kafka_group(so.bootstrap, app, topics, settings)
    if not m then error(format("application %s: consumer group: %s", app, gmsg), 0) end
    m:pause_fetching()
    a._member = m
  end)
  if not ok then
    a:close()
    error(format("%s: %s", what, util.strip_position(err)), level)
  end
  H.active[#H.active + 1] = q
  q._active = true
  H.install_signals()
  q._status.message = "Waiting for tasks"
  q:_schedule(0)
  return q
end

return M
