--- The memory source and sink: streams and tables that live in the
-- process, for tests and the REPL (API.md sections 3 and 4).
--
--    local ms = tide.memory_stream("ts timestamp, word string")
--    ms:add{ { ts = 1000, word = "a" } }      -- one add, one batch
--    local q = ms:frame():write_stream("memory", { name = "words", mode = "append" })
--    q:process_all_available()
--    tide.table("words"):show()
--
-- A memory stream is replayable for as long as the process lives: its
-- offsets are the number of add calls. The adds made since the last batch
-- form the next batch; one add is never split. The memory sink keeps each batch's
-- output under its batch id (a re-run batch replaces it), so the table
-- never holds a row twice; in complete mode the table is the last batch.
-- It keeps batches, never Lua rows: copies of the tide.Batch objects it is
-- handed (the engine closes those), which it owns and closes when they are
-- replaced. tide.table(name) is a view, as Spark's memory table: each run
-- of the frame reads copies of the batches the table holds then.

local core = require "tide.core"
local connector = require "tide.connector"

local M = { sources = {}, sinks = {} }

local format = string.format

local Stream = {}
Stream.__index = Stream

local streams = 0

--- A memory stream of the given schema.
function M.stream(schema, level)
  local s, msg = core.schema(schema)
  if not s then error("memory_stream: bad schema: " .. tostring(msg), (level or 1) + 1) end
  streams = streams + 1
  return setmetatable({ _schema = s, _batches = {}, _watchers = {}, _id = streams }, Stream)
end

--- Add rows (an array of tables): they form one micro-batch.
-- @return the stream's offset after the add
function Stream:add(rows)
  if getmetatable(self) ~= Stream then error("add: bad self: expected a memory stream (use ms:add(rows))", 2) end
  if type(rows) ~= "table" then error("add: bad argument #1: expected an array of rows, got " .. type(rows), 2) end
  local b, msg = core.rows_batch(self._schema, rows)
  if not b then error("add: " .. msg, 2) end
  local list = self._batches
  list[#list + 1] = b
  for fn in pairs(self._watchers) do fn() end
  return #list
end

--- The stream as a streaming frame.
function Stream:frame()
  if getmetatable(self) ~= Stream then error("frame: bad self: expected a memory stream (use ms:frame())", 2) end
  return connector.stream_frame("memory", M.sources.memory, { stream = self }, 2)
end

function Stream:schema() return self._schema:fields() end

function Stream:__tostring() return format("tide memory stream %d (%d batches)", self._id, #self._batches) end

M.Stream = Stream

M.sources.memory = {
  options = { stream = "any" },
  schema = function(o)
    if getmetatable(o.stream) ~= Stream then
      error("option 'stream' must be a memory stream (tide.memory_stream(schema))", 0)
    end
    return o.stream._schema
  end,
  label = function(o) return format("MemoryStream[%d]", o.stream._id) end,
  new = function(o)
    local st = o.stream
    local src = { description = format("MemoryStream[%d]", st._id), replayable = true }
    -- Every add not yet processed goes into the next batch (as Spark's
    -- MemoryStream); an add is never split.
    function src.latest_offset()
      local n = #st._batches
      if n == 0 then return nil end
      return n
    end
    function src.get_batch(_, start, stop)
      local out = {}
      for i = (start or 0) + 1, stop do
        local b = st._batches[i]
        if b == nil then error(format("offset %d is past the stream's end (%d)", i, #st._batches), 0) end
        out[#out + 1] = core.slice(b, 0, b:nrows()) -- a copy: the engine closes what it gets
      end
      return out
    end
    --- The rows added after `off` (an add's count), not yet processed.
    function src.lag(_, off)
      local n = 0
      for i = (off or 0) + 1, #st._batches do n = n + st._batches[i]:nrows() end
      return { records = n }
    end
    local watcher
    function src.watch(_, fn)
      watcher = fn
      st._watchers[fn] = true
    end
    function src.stop()
      if watcher then st._watchers[watcher] = nil end
    end
    return src
  end,
}

-- ------------------------------------------------------------------------
-- The sink and tide.table
-- ------------------------------------------------------------------------

local tables = {}

M.sinks.memory = {
  options = {},
  new = function(_, ctx)
    local name = ctx.query_name
    if not name then error("the memory sink needs option 'name' (the table's name for tide.table(name))", 0) end
    local t = tables[name]
    if not t then
      t = { batches = {} }
      tables[name] = t
    end
    local sink = { description = format("MemorySink[%s]", name) }
    function sink.add_batch(_, id, batches, mode, schema)
      local kept = {}
      for i, b in ipairs(batches) do kept[i] = core.slice(b, 0, b:nrows()) end
      local replaced = mode == "complete" and t.batches or { t.batches[id] }
      t.schema = schema
      if mode == "complete" then
        t.batches, t.complete = { [id] = kept }, true
      else
        t.batches[id] = kept
      end
      for _, list in pairs(replaced) do
        for _, b in ipairs(list) do b:close() end
      end
    end
    return sink
  end,
}

--- f:write("memory", { name =, mode = }): a static frame's rows into the
-- memory table `name` (then tide.table(name)). `mode` is a save mode
-- (connector.SAVE_MODES): a table that exists is refused (`error`, the
-- default), added to (`append`: same column names and types), replaced
-- (`overwrite`) or left alone (`ignore`).
-- @return the number of rows written
function M.sinks.memory.write(f, opts, level)
  level = (level or 1) + 1
  local o = connector.write_options("memory", opts, { name = "string", mode = connector.SAVE_MODES }, level)
  local name = o.name
  if not name then error("write(memory): option 'name' is required (the table's name for tide.table(name))", level) end
  local fields = table.move(f:schema(), 1, #f:schema(), 1, {}) -- the frame's own array is not ours to change
  local t = tables[name]
  if t and t.schema then
    if o.mode == "error" then
      error(format("write(memory): table '%s' exists already; mode = \"append\" adds to it, \"overwrite\" " ..
        "replaces it, \"ignore\" leaves it", name), level)
    elseif o.mode == "ignore" then
      return 0
    elseif o.mode == "append" then
      local have, ok = t.schema:fields(), #t.schema:fields() == #fields
      for i, fd in ipairs(fields) do
        local h = have[i]
        ok = ok and h and h[1] == fd[1] and h[2]:gsub("%?$", "") == fd[2]:gsub("%?$", "")
      end
      if not ok then
        error(format("write(memory): table '%s' has the columns (%s), the frame (%s)", name, t.schema:ddl(),
          (core.schema(fields)):ddl()), level)
      end
      for i, fd in ipairs(fields) do -- a column is nullable when the table's or the new rows' is
        if have[i][2]:sub(-1) == "?" then fields[i] = have[i] else fields[i] = fd end
      end
    end
  end
  local kept, rows = {}, 0
  for i, b in ipairs((connector.frame_batches(f))) do
    kept[i] = core.slice(b, 0, b:nrows()) -- the table's own copy
    rows = rows + b:nrows()
  end
  if not t then
    t = { batches = {} }
    tables[name] = t
  end
  if o.mode == "append" and t.schema then
    local id = -1
    for k in pairs(t.batches) do id = math.max(id, k) end
    t.batches[id + 1] = kept
  else
    for _, list in pairs(t.batches) do
      for _, b in ipairs(list) do b:close() end
    end
    t.batches, t.complete = { [0] = kept }, nil
  end
  t.schema = core.schema(fields)
  return rows
end

-- The batches of table t in batch id order.
local function table_batches(t)
  local ids = {}
  for id in pairs(t.batches) do ids[#ids + 1] = id end
  table.sort(ids)
  local list = {}
  for _, id in ipairs(ids) do
    for _, b in ipairs(t.batches[id]) do list[#list + 1] = b end
  end
  return list
end

--- The rows a memory sink holds, as a static frame: a view that reads what
-- the table holds whenever the frame runs.
function M.table(name, level)
  if type(name) ~= "string" then
    error("table: bad argument #1: expected a name, got " .. type(name), (level or 1) + 1)
  end
  local t = tables[name]
  if not t or not t.schema then
    local names = {}
    for n in pairs(tables) do names[#names + 1] = n end
    table.sort(names)
    error(format("table: no memory table '%s' (tables: %s)", name, #names > 0 and table.concat(names, ", ") or "none"),
      (level or 1) + 1)
  end
  -- every run gets fresh copies, which its consumer closes; the table's own
  -- batches stay the table's (a later batch may replace them)
  return connector.from_batches(format("MemoryTable[%s]", name), t.schema, function()
    local list, i = table_batches(t), 0
    return function()
      i = i + 1
      local b = list[i]
      return b and core.slice(b, 0, b:nrows())
    end
  end, true)
end

--- Forget a memory table (tests), closing its batches.
function M.drop_table(name)
  local t = tables[name]
  if not t then return end
  tables[name] = nil
  for _, list in pairs(t.batches) do
    for _, b in ipairs(list) do b:close() end
  end
  t.batches = {}
end

return M
