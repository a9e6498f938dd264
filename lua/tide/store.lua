--- Stores and topics: durable, segment-based topics with a catalog in LMDB.
--
-- This module wraps the C objects of `tide.core` (tide.Store, tide.Topic,
-- tide.Reader): it checks options and raises errors that name the store or
-- topic and what failed. A store is a directory (see docs/FORMAT.md);
-- several processes may open it at once, but one process opens a directory
-- only once (LMDB's rule): opening it again in the same process raises.
--
--    local db = store.open("data")
--    local t = db:topic("events")
--    for rec in t:read{ from = 0 } do print(rec.offset, rec.device) end
--
-- @module tide.store

local core = require "tide.core"
local util = require "tide.util"
local frame = require "tide.frame"

local M = {}

local format, concat = string.format, table.concat
local error, type, setmetatable, getmetatable, ipairs = error, type, setmetatable, getmetatable, ipairs

--- Stores open in this process, by absolute path.
local open_dirs = setmetatable({}, { __mode = "v" })

local function abspath(dir)
  dir = dir:gsub("/+$", "")
  if dir == "" then dir = "/" end
  if dir:sub(1, 1) ~= "/" then
    local cwd = os.getenv("PWD") or "."
    dir = cwd .. "/" .. dir
  end
  -- fold "." and ".." so that two spellings of one directory compare equal
  local parts = {}
  for p in dir:gmatch("[^/]+") do
    if p == ".." then parts[#parts] = nil
    elseif p ~= "." then parts[#parts + 1] = p end
  end
  return "/" .. concat(parts, "/")
end

local Store = {}
Store.__index = Store
local Topic = {}
Topic.__index = Topic

--- Raise a runtime failure of `what` with the core's message.
local function fail(what, msg, level)
  error(what .. ": " .. tostring(msg), (level or 2) + 1)
end

local function check_store(self, level)
  if getmetatable(self) ~= Store then
    error("bad self: expected a tide store (use db:method(...), not db.method(...))", (level or 2) + 1)
  end
  if not self._c:is_open() then error("attempt to use a closed tide store", (level or 2) + 1) end
  return self._c
end

local function check_topic(self, level)
  if getmetatable(self) ~= Topic then
    error("bad self: expected a tide topic (use t:method(...), not t.method(...))", (level or 2) + 1)
  end
  if not self._store._c:is_open() then
    error(format("attempt to use topic '%s' of a closed store", self._name), (level or 2) + 1)
  end
  return self._c
end

-- ------------------------------------------------------------------------
-- Stores
-- ------------------------------------------------------------------------

local open_spec = { sync = "boolean", map_size = "size", cold_dir = "string" }

--- Open or create the store in directory `dir` (created with its parents).
-- @string dir the store's directory
-- @tab[opt] opts `sync` (default true: writes are durable when they return),
-- `map_size` (the catalog's initial LMDB map size; it grows), `cold_dir`
-- (the cold tier's directory; default `dir/cold`)
-- @return a store
-- @raise when the directory cannot be used, or is already open in this process
function M.open(dir, opts)
  if type(dir) ~= "string" or dir == "" then
    error("tide.open: bad argument #1: expected a directory name, got " .. type(dir), 2)
  end
  local o = util.check_options(opts, open_spec, "tide.open")
  local key = abspath(dir)
  if open_dirs[key] and open_dirs[key]._c:is_open() then
    error(format("tide.open: store '%s' is already open in this process (close it first, or use that handle)",
      dir), 2)
  end
  local c, msg = core.open(dir, o)
  if not c then fail(format("tide.open: store '%s'", dir), msg) end
  local self = setmetatable({ _c = c, _dir = dir, _key = key, _topics = {} }, Store)
  open_dirs[key] = self
  return self
end

--- The store open in this process at `dir`, or a new one opened there
-- (the connectors' default store: a process opens a directory only once,
-- so queries share the handle instead of opening it again).
-- @string dir the store's directory
-- @return a store
function M.shared(dir)
  if type(dir) ~= "string" or dir == "" then
    error("tide.store.shared: bad argument #1: expected a directory name, got " .. type(dir), 2)
  end
  local s = open_dirs[abspath(dir)]
  if s and s._c:is_open() then return s end
  return M.open(dir)
end

--- The default store: the one open in this process at `$TIDE_DATA`
-- (else `./tide-data`, or the directory given to set_default_dir), or,
-- with `opts`, a new handle opened there with them.
-- @tab[opt] opts as for `open`
-- @return a store
function M.default_store(opts)
  local dir = M.default_dir()
  if opts == nil then return M.shared(dir) end
  return M.open(dir, opts)
end

local default_dir

--- The directory of the default store.
function M.default_dir()
  if default_dir then return default_dir end
  local dir = os.getenv("TIDE_DATA")
  if not dir or dir == "" then dir = "./tide-data" end
  return dir
end

--- Make `dir` the default store's directory in this process (`tide run
-- --data`); nil goes back to `$TIDE_DATA`, else `./tide-data`.
function M.set_default_dir(dir) default_dir = dir end

--- Raise when `v` is not an open tide store (argument checks of the
-- layers above: tide.query, the connectors' helper).
-- @int[opt=1] level the error level, as for error
function M.check(v, level)
  return check_store(v, (level or 1) + 1)
end

--- True when `v` is a tide store (open or not).
function M.is_store(v) return getmetatable(v) == Store end

--- True when store `s` is open.
function M.is_open(s) return s._c:is_open() end

--- The directory store `s` was opened at, even once closed.
function M.directory(s) return s._dir end

--- The store's directory, as given to `open`.
function Store:path()
  check_store(self)
  return self._dir
end

--- The store's identity (32 hex digits, fixed at creation). Its cold tier
-- is `<cold_dir>/<id>`, so stores can share a cold directory.
function Store:id()
  return check_store(self):id()
end

function Store:__tostring()
  return format("tide store '%s'%s", self._dir, self._c:is_open() and "" or " (closed)")
end

local compat_modes = { "none", "backward", "forward", "full", "backward_transitive", "forward_transitive",
  "full_transitive" }

local topic_spec = {
  partitions = { type = "integer", min = 1, max = 1024 },
  schema = "any",
  retention = "duration",
  retention_bytes = "size",
  segment_bytes = "size",
  segment_ms = "duration",
  time_column = "string",
  unknown_fields = { type = "string", values = { "reject", "ignore" } },
  compatibility = { type = "string", values = compat_modes },
}

--- Create a topic.
-- @string name 1..200 bytes, no `/`, `\`, `..` or control characters
-- @tab[opt] opts `partitions` (default 1), `schema` (DDL string or array
-- form; without one the topic stores rows of one `value json` column),
-- `retention` (a duration: sealed segments last written longer ago are
-- dropped), `retention_bytes` (a size per partition), `segment_bytes`
-- (default 64MB), `segment_ms` (roll the open segment at this age),
-- `time_column` (the event-time column; default: the first timestamp
-- column), `unknown_fields` (`"reject"`, the default, or `"ignore"`),
-- `compatibility` (of the schema registry; default `"backward"`)
-- @return the topic
function Store:create_topic(name, opts)
  local c = check_store(self)
  if type(name) ~= "string" then
    error("create_topic: bad argument #1: expected a topic name, got " .. type(name), 2)
  end
  local o = util.check_options(opts, topic_spec, "create_topic")
  local ok, why = core.topic_name_check(name)
  if not ok then error("create_topic: " .. why, 2) end
  if o.schema ~= nil then
    if type(o.schema) ~= "string" and type(o.schema) ~= "table" then
      error("create_topic: option 'schema' must be a DDL string or an array of fields, got " .. type(o.schema), 2)
    end
    local okp, err = core.schema(o.schema)
    if not okp then error("create_topic: bad schema: " .. util.strip_position(err), 2) end
  end
  local r, msg = c:create_topic(name, {
    partitions = o.partitions, schema = o.schema, retention_ms = o.retention,
    retention_bytes = o.retention_bytes, segment_bytes = o.segment_bytes, segment_ms = o.segment_ms,
    time_column = o.time_column, ignore_unknown = o.unknown_fields == "ignore",
    compatibility = o.compatibility,
  })
  if not r then fail(format("create_topic '%s'", name), msg) end
  return self:topic(name)
end

--- True when the store has a topic `name`.
function Store:has_topic(name)
  local c = check_store(self)
  for _, n in ipairs(c:topics()) do
    if n == name then return true end
  end
  return false
end

--- The topic `name`.
-- @raise `no topic 'x' in store 'data' (topics: a, b)`
function Store:topic(name)
  local c = check_store(self)
  if type(name) ~= "string" then error("topic: bad argument #1: expected a topic name, got " .. type(name), 2) end
  local t = self._topics[name]
  if t then
    local ok = t._c:info()
    if ok then return t end
    self._topics[name] = nil
  end
  local tc, msg, code = c:topic(name)
  if not tc then
    if code == "ENOTFOUND" then
      local names = c:topics()
      error(format("no topic '%s' in store '%s' (topics: %s)", name, self._dir,
        #names > 0 and concat(names, ", ") or "none"), 2)
    end
    fail(format("topic '%s'", name), msg)
  end
  t = setmetatable({ _c = tc, _name = name, _store = self }, Topic)
  self._topics[name] = t
  return t
end

--- The names of the store's topics, sorted.
function Store:topics()
  local names, msg = check_store(self):topics()
  if not names then fail("topics", msg) end
  return names
end

--- Delete a topic and all its data.
function Store:delete_topic(name)
  local c = check_store(self)
  if type(name) ~= "string" then
    error("delete_topic: bad argument #1: expected a topic name, got " .. type(name), 2)
  end
  local ok, msg, code = c:delete_topic(name)
  if not ok then
    if code == "ENOTFOUND" then error(format("delete_topic: no topic '%s' in store '%s'", name, self._dir), 2) end
    fail(format("delete_topic '%s'", name), msg)
  end
  self._topics[name] = nil
end

local frame_read_spec = { from = "integer", to = "integer", partition = "integer", from_time = "any",
  to_time = "any", schema_version = { type = "integer", min = 1 } }

--- A static frame over a topic's records (in its latest schema, or
-- `schema_version`), with the ranges of `Topic:read`.
-- @string name the topic
-- @tab[opt] opts `from`, `to`, `partition`, `from_time`, `to_time`, `schema_version`
-- @return a frame
function Store:read(name, opts)
  local c = check_store(self)
  if type(name) ~= "string" then error("read: bad argument #1: expected a topic name, got " .. type(name), 2) end
  local ok = false
  for _, n in ipairs(c:topics()) do ok = ok or n == name end
  if not ok then
    local names = c:topics()
    error(format("read: no topic '%s' in store '%s' (topics: %s)", name, self._dir,
      #names > 0 and concat(names, ", ") or "none"), 2)
  end
  local t = self:topic(name)
  local o = util.check_options(opts, frame_read_spec, "read")
  -- times are checked now, when the frame is built, not when it runs
  if o.from_time ~= nil then o.from_time = M.time_arg(o.from_time, "from_time", 3) end
  if o.to_time ~= nil then o.to_time = M.time_arg(o.to_time, "to_time", 3) end
  local sc = t:schema(o.schema_version)
  return frame.from_batches(format("Topic %s", name), sc.fields, function()
    return t:batches(o)
  end, true)
end

-- (Store:read_stream, a streaming frame over a topic, is given by tide.query:
-- a stream belongs to the layers above this one.)

-- ------------------------------------------------------------------------
-- Schema registry
-- ------------------------------------------------------------------------

local function check_schema_value(schema, what)
  if type(schema) ~= "string" and type(schema) ~= "table" then
    error(format("%s: bad argument #2: expected a DDL string or an array of fields, got %s", what, type(schema)), 3)
  end
  local ok, err = core.schema(schema)
  if not ok then error(format("%s: bad schema: %s", what, util.strip_position(err)), 3) end
end

local function topic_name_arg(name, what)
  if type(name) ~= "string" then
    error(format("%s: bad argument #1: expected a topic name, got %s", what, type(name)), 3)
  end
end

local function no_topic(self, name, what, msg, code)
  if code == "ENOTFOUND" then error(format("%s: no topic '%s' in store '%s'", what, name, self._dir), 3) end
  error(format("%s '%s': %s", what, name, tostring(msg)), 3)
end

local register_spec = { compatibility = { type = "string", values = compat_modes } }

--- Register a new version of a topic's schema.
-- The schema is checked against earlier versions under the topic's
-- compatibility mode (`opts.compatibility` sets that mode first). A schema
-- identical to an existing version registers nothing and returns that version.
-- @string topic
-- @param schema DDL string or array form (fields may carry defaults:
-- `"signal int DEFAULT 0"`, `{"signal", "int", default = 0}`)
-- @tab[opt] opts `compatibility`
-- @treturn int the version
-- @raise when incompatible: `register_schema 'events': field 'signal': type
-- changed from int to string, not allowed under backward`
function Store:register_schema(topic, schema, opts)
  local c = check_store(self)
  topic_name_arg(topic, "register_schema")
  check_schema_value(schema, "register_schema")
  local o = util.check_options(opts, register_spec, "register_schema")
  local v, msg, code = c:register_schema(topic, schema, o.compatibility)
  if not v then no_topic(self, topic, "register_schema", msg, code) end
  return v
end

--- A version of a topic's schema: `{ version=, fields= (array form), ddl=,
-- compatibility= }`; the latest without `version`.
function Store:schema(topic, version)
  topic_name_arg(topic, "schema")
  if version ~= nil and math.type(version) ~= "integer" then
    error("schema: bad argument #2: expected an integer version, got " .. type(version), 2)
  end
  local t = self:topic(topic)
  local sc, msg = t._c:schema(version)
  if not sc then fail(format("schema '%s'", topic), msg) end
  sc.compatibility = t:info().compatibility
  return sc
end

--- The versions of a topic's schema, oldest first: `{1, 2, 3}`.
function Store:schema_versions(topic)
  topic_name_arg(topic, "schema_versions")
  local n = self:topic(topic):info().schema_version
  local out = {}
  for v = 1, n do out[v] = v end
  return out
end

--- Would `schema` be accepted as the topic's next version now?
-- @return true, or false and the reason
function Store:check_schema(topic, schema)
  local c = check_store(self)
  topic_name_arg(topic, "check_schema")
  check_schema_value(schema, "check_schema")
  local ok, why, code = c:check_schema(topic, schema)
  if ok == nil then no_topic(self, topic, "check_schema", why, code) end
  return ok, why
end

--- Set a topic's compatibility mode: `none`, `backward`, `forward`, `full`,
-- or their `_transitive` forms.
function Store:set_compatibility(topic, mode)
  local c = check_store(self)
  topic_name_arg(topic, "set_compatibility")
  local okm = false
  for _, m in ipairs(compat_modes) do okm = okm or m == mode end
  if not okm then
    error(format("set_compatibility: bad mode %s (allowed: %s)",
      type(mode) == "string" and ("'" .. mode .. "'") or type(mode), concat(compat_modes, ", ")), 2)
  end
  local ok, msg, code = c:set_compatibility(topic, mode)
  if not ok then no_topic(self, topic, "set_compatibility", msg, code) end
end

--- Close the store (and every reader still open on it). Idempotent.
function Store:close()
  if getmetatable(self) ~= Store then error("bad self: expected a tide store", 2) end
  self._c:close()
  if open_dirs[self._key] == self then open_dirs[self._key] = nil end
end
Store.__close = Store.close

-- ------------------------------------------------------------------------
-- Topics
-- ------------------------------------------------------------------------

function Topic:__tostring() return format("tide topic '%s'", self._name) end

--- The topic's name.
function Topic:name() return self._name end

--- The topic's metadata: `name`, `partitions`, `schema` (array form), `ddl`,
-- `schemaless`, `retention_ms`, `retention_bytes`, `segment_bytes`,
-- `segment_ms`, `time_column`, `unknown_fields`, `compatibility`,
-- `schema_version`, `created` (ms).
function Topic:info()
  local i, msg = check_topic(self):info()
  if not i then fail(format("topic '%s'", self._name), msg) end
  return i
end

--- A version of the topic's schema (the latest without `version`):
-- `{ version=, fields=, ddl= }`.
function Topic:schema(version)
  local sc, msg = check_topic(self):schema(version)
  if not sc then fail(format("schema '%s'", self._name), msg) end
  return sc
end

--- Per partition `{ partition=, earliest=, latest= }`: the first offset
-- still held and the next offset to be written.
function Topic:offsets()
  local o, msg = check_topic(self):offsets()
  if not o then fail(format("topic '%s'", self._name), msg) end
  return o
end

--- Every segment, by partition then offset: `{ partition=, base_offset=,
-- end_offset=, records=, bytes=, stored_bytes=, min_ts=, max_ts=, created=,
-- last_write=, state = "open"|"sealed"|"offloaded" }`.
function Topic:segments()
  local s, msg = check_topic(self):segments()
  if not s then fail(format("topic '%s'", self._name), msg) end
  return s
end

--- Totals: `records`, `bytes` (segments' sizes uncompressed), `stored_bytes`
-- (what they take where they live), `segments`, `earliest_offset` (lowest
-- over partitions), `latest_offset` (the next offset; highest over
-- partitions), and `partitions` (as `offsets()`).
function Topic:stats()
  local offs, segs = self:offsets(), self:segments()
  local st = { records = 0, bytes = 0, stored_bytes = 0, segments = #segs, partitions = offs }
  for _, o in ipairs(offs) do
    st.records = st.records + (o.latest - o.earliest)
    if not st.earliest_offset or o.earliest < st.earliest_offset then st.earliest_offset = o.earliest end
    if not st.latest_offset or o.latest > st.latest_offset then st.latest_offset = o.latest end
  end
  for _, s in ipairs(segs) do
    st.bytes = st.bytes + s.bytes
    st.stored_bytes = st.stored_bytes + s.stored_bytes
  end
  return st
end

local append_spec = { key = "string", writer = "string", seq = { type = "integer", min = 0 } }

-- A key column must be a field of the topic's schema: a programming error
-- otherwise, blamed on the caller of `what` (level).
local function check_key(self, key, what, level)
  if key == nil then return end
  local names = {}
  for i, f in ipairs(self:info().schema) do
    if f[1] == key then return end
    names[i] = f[1]
  end
  error(format("%s: key column '%s' is not in the schema of '%s' (fields: %s)", what, key, self._name,
    concat(names, ", ")), level + 1)
end

-- writer and seq come together; a writer id is 1..255 bytes.
local function check_writer(o, what, level)
  if (o.writer == nil) ~= (o.seq == nil) then
    error(format("%s: options 'writer' and 'seq' go together (got only '%s')", what,
      o.writer ~= nil and "writer" or "seq"), level + 1)
  end
  if o.writer ~= nil and (#o.writer == 0 or #o.writer > 255) then
    error(format("%s: option 'writer' must be 1..255 bytes, got %d", what, #o.writer), level + 1)
  end
end

-- The results of an append: first, last, ranges; nil, "skipped"; or a raise.
local function append_result(self, what, first, last, ranges)
  if first == nil and last ~= nil then
    if last == "skipped" and ranges == nil then return nil, "skipped" end
    fail(format("%s to '%s'", what, self._name), last, 3)
  end
  return first, last, ranges
end

--- Append rows atomically: all become visible together or none do.
-- With `writer` and `seq` the append is idempotent: the catalog records,
-- in the same transaction as the rows, that `writer` committed `seq`; an
-- append whose `seq` is not above the writer's recorded one writes nothing
-- and returns `nil, "skipped"` (a replay after a crash).
-- @tab rows an array of tables keyed by column name
-- @tab[opt] opts `key`: a column whose value picks the partition (hashed);
-- without it the rows go to one partition, chosen round-robin per call;
-- `writer` (a string id, 1..255 bytes) and `seq` (an integer >= 0), together
-- @return first and last offset written (of the first partition written),
-- and a table of `{ partition=, first=, last=, count= }`, one per partition;
-- or `nil, "skipped"`
-- @raise on a row that breaks the schema (naming the row and the field)
function Topic:append(rows, opts)
  local c = check_topic(self)
  if type(rows) ~= "table" then error("append: bad argument #1: expected an array of rows, got " .. type(rows), 2) end
  local o = util.check_options(opts, append_spec, "append")
  check_key(self, o.key, "append", 2)
  check_writer(o, "append", 2)
  return append_result(self, "append", c:append(rows, o.key, o.writer, o.seq))
end

--- Append columnar batches (tide.Batch, of any schema) in one atomic
-- session, as the topic sink does. Columns are matched to the topic's
-- fields by name: a field the batches lack takes its default or NULL; int
-- goes into double; a column the topic lacks, another type, or a NULL in a
-- NOT NULL field without a default fails the whole call, naming the field
-- (and the row). A schemaless topic stores each row as one JSON object.
-- @tab batches an array of tide.Batch
-- @tab[opt] opts `key`, `writer`, `seq` as for `append`
-- @return as `append`
-- The checks of append_batches and append_start (`what`), at the user's
-- level; returns the core topic and the checked options.
local function batches_args(self, batches, opts, what)
  local c = check_topic(self, 3)
  if type(batches) ~= "table" then
    error(what .. ": bad argument #1: expected an array of tide.Batch, got " .. type(batches), 3)
  end
  local o = util.check_options(opts, append_spec, what, 4)
  check_key(self, o.key, what, 3)
  check_writer(o, what, 3)
  return c, o
end

function Topic:append_batches(batches, opts)
  local c, o = batches_args(self, batches, opts, "append_batches")
  return append_result(self, "append_batches", c:append_batches(batches, o.key, o.writer, o.seq))
end

--- `append_batches` on a thread of its own: the append is begun, and this
-- returns at once; `Store:append_finish` waits for it and gives its
-- result. The batches are taken (their tide.Batch objects are closed from
-- here on), so nothing can change them before the append is done. One
-- such append per store at a time; meanwhile any other call on the store
-- waits for it first. The streaming topic sink writes this way with
-- `workers` > 1 (docs/guide.md, "Worker threads").
-- @tab batches an array of tide.Batch
-- @tab[opt] opts `key`, `writer`, `seq` as for `append`
-- @return an opaque handle: a checkpoint commit given it (the engine's
-- ck:commit_open) is taken only once this append is durable
function Topic:append_start(batches, opts)
  local c, o = batches_args(self, batches, opts, "append_start")
  local h, msg = c:append_start(batches, o.key, o.writer, o.seq)
  if not h then fail(format("append_start to '%s'", self._name), msg) end
  self._store._started = self._name
  return h
end

--- Wait for the append begun by `Topic:append_start` and return its
-- result, as `append_batches` does (raising its error, which names the
-- topic and where it failed).
function Store:append_finish()
  local c = check_store(self)
  if not c:append_pending() then error("append_finish: no append in flight (use topic:append_start first)", 2) end
  local name = self._started
  self._started = nil
  return append_result({ _name = name }, "append_batches", c:append_finish())
end

--- The last sequence `writer` committed to this topic, or nil when it never did.
function Topic:writer_seq(writer)
  local c = check_topic(self)
  if type(writer) ~= "string" or #writer == 0 or #writer > 255 then
    error("writer_seq: bad argument #1: expected a writer id (a string of 1..255 bytes), got "
      .. (type(writer) == "string" and format("%d bytes", #writer) or type(writer)), 2)
  end
  local seq, msg = c:writer_seq(writer)
  if seq == nil then fail(format("writer_seq '%s'", self._name), msg) end
  return seq or nil
end

--- Could rows of `schema` (DDL or array form) be appended with
-- `append_batches`? Checks names and types; NULLs are seen per row.
-- @return true, or false and the reason
function Topic:accepts(schema)
  local c = check_topic(self)
  if type(schema) ~= "string" and type(schema) ~= "table" then
    error("accepts: bad argument #1: expected a DDL string or an array of fields, got " .. type(schema), 2)
  end
  local ok, why = c:accepts(schema)
  if ok == nil then fail(format("accepts '%s'", self._name), why) end
  return ok, why
end

local produce_spec = { key = "string", skip_bad = "boolean" }

local function produce(self, what, path, text, opts)
  local c = check_topic(self, 3)
  local o = util.check_options(opts, produce_spec, what, 4)
  check_key(self, o.key, what, 3)
  local r, msg = c:produce(path, o.key, o.skip_bad, text)
  if not r then fail(format("%s '%s'", what, self._name), msg, 3) end
  return r
end

--- Append JSON lines from a file (or stdin when `path` is nil), atomically.
-- @tparam ?string path the file
-- @tab[opt] opts `key` (as for `append`), `skip_bad` (append the good
-- lines and report the bad ones instead of failing)
-- @return `{ lines=, appended=, skipped=, bad_lines = {first few}, first=, last=, ranges= }`
-- @raise `produce 'events': line 3: field 'signal': expected int, got "x"`;
-- then nothing of the input was appended
function Topic:produce(path, opts)
  if path ~= nil and type(path) ~= "string" then
    error("produce: bad argument #1: expected a file name or nil, got " .. type(path), 2)
  end
  return produce(self, "produce", path, nil, opts)
end

--- Append JSON lines held in a string, atomically (as `produce`).
function Topic:append_json(text, opts)
  if type(text) ~= "string" then error("append_json: bad argument #1: expected a string, got " .. type(text), 2) end
  return produce(self, "append_json", nil, text, opts)
end

local read_spec = { from = "integer", to = "integer", partition = "integer", from_time = "any",
  to_time = "any", iso8601 = "boolean", schema_version = { type = "integer", min = 1 } }

local function time_arg(v, name, level)
  if v == nil then return nil end
  if math.type(v) == "integer" then return v end
  if type(v) == "string" then
    local ms = core.ts_parse(v)
    if ms then return ms end
  end
  error(format("read: option '%s' must be a timestamp (integer ms or ISO-8601 string), got %s", name,
    type(v) == "string" and ("'" .. v .. "'") or type(v)), level or 4)
end
M.time_arg = time_arg

local function open_reader(self, opts, what)
  local c = check_topic(self, 3)
  local o = util.check_options(opts, read_spec, what, 4)
  o.from_time = time_arg(o.from_time, "from_time")
  o.to_time = time_arg(o.to_time, "to_time")
  local r, msg = c:reader(o)
  if not r then fail(format("%s '%s'", what, self._name), msg, 3) end
  return r, o
end

--- Iterate over records: each a table keyed by column name, plus `offset`
-- and `partition`. Sees what was committed when the iteration started.
-- @tab[opt] opts `from` (inclusive), `to` (exclusive) offsets, per
-- partition; `partition` (default: all, in order); `from_time` (inclusive),
-- `to_time` (exclusive): event time, integer ms or ISO-8601 (segments
-- outside the range are skipped without being read); `schema_version`: the
-- schema rows come in (default the latest; rows written under other
-- versions are projected: added fields get their default or nil, removed
-- fields are gone, int widened to double)
-- @raise on corrupted data, naming topic, partition, segment and offset
function Topic:read(opts)
  local r = open_reader(self, opts, "read")
  local name = self._name
  local function iter()
    local row, msg = r:next_row()
    if row == nil and msg then fail(format("read '%s'", name), msg, 2) end
    return row
  end
  return iter, nil, nil, r -- r is the closing value: `break` closes it
end

--- Iterate over records as JSON lines: each step yields `text` (complete
-- lines, each ending in a newline), `partition`, and the offset after the
-- last record of the chunk. `iso8601 = true` writes timestamps as text.
function Topic:read_json(opts)
  local r, o = open_reader(self, opts, "read_json")
  local name, iso = self._name, o.iso8601
  local function iter()
    local text, part, nxt = r:next_json(iso)
    if text == nil and part then fail(format("read_json '%s'", name), part, 2) end
    return text, part, nxt
  end
  return iter, nil, nil, r
end

--- Iterate over columnar batches: each step yields a batch (tide.Batch:
-- `nrows()`, `row(i)`, `rows()`, `column(name)`), its partition, and the
-- offsets of its first and last rows.
function Topic:batches(opts)
  local r = open_reader(self, opts, "batches")
  local name = self._name
  local function iter()
    local b, part, first, last = r:next_batch()
    if b == nil and part then fail(format("batches '%s'", name), part, 2) end
    return b, part, first, last
  end
  return iter, nil, nil, r
end

--- Drop sealed segments past the topic's retention (age or bytes), oldest
-- first. The open segment is never dropped.
-- @return the number of segments dropped
function Topic:enforce_retention()
  local n, msg = check_topic(self):enforce_retention()
  if not n then fail(format("enforce_retention '%s'", self._name), msg) end
  return n
end

local offload_spec = { before_offset = "integer" }

--- Move sealed segments that end at or before `before_offset` to the cold
-- tier (compressed). Reads keep working on them.
-- @return the number of segments moved
function Topic:offload(opts)
  local c = check_topic(self)
  local o = util.check_options(opts, offload_spec, "offload")
  local n, msg = c:offload(o.before_offset or math.maxinteger)
  if not n then fail(format("offload '%s'", self._name), msg) end
  return n
end

M.Store, M.Topic = Store, Topic

return M
