--- What connectors may use of tide: their one door into the engine.
--
-- A connector (connectors/*.lua) is a descriptor the engine drives
-- (connectors/README.md). It requires `tide.core`, `tide.util` and this
-- module, never tide.query, tide.frame or tide.runtime (which sit above or
-- beside it) and never a private field of another module's objects: what
-- it needs of them is here.
--
-- @module tide.connector

local core = require "tide.core"
local util = require "tide.util"
local frame = require "tide.frame"
local store = require "tide.store"
local process = require "tide.process"

local M = {}

local format = string.format

--- The process's event loop (tide.process).
-- @function loop
M.loop = process.loop

--- Write text to stdout around the terminal's owner (tide.process).
-- @function write
M.write = process.write

--- A streaming frame over connector `kind` (descriptor `d`) with the
-- user's options: checked against the descriptor's option spec, with the
-- descriptor's schema and label.
-- @int level the error level of the caller's caller, as for error
function M.stream_frame(kind, d, opts, level)
  level = (level or 1) + 1
  local what = format("read_stream(%s)", kind)
  local ok, o = pcall(util.check_options, opts, d.options, what, 1)
  if not ok then error(util.strip_position(o), level) end
  local oks, schema = pcall(d.schema, o)
  if not oks then
    local msg = util.strip_position(schema)
    -- a connector may name itself already: say it once
    if msg:sub(1, #what + 2) ~= what .. ": " then msg = what .. ": " .. msg end
    error(msg, level)
  end
  local s, msg = schema, nil
  if type(schema) ~= "userdata" then s, msg = core.schema(schema) end
  if not s then error(what .. ": bad schema: " .. msg, level) end
  local label = d.label and d.label(o) or format("StreamingSource %s", kind)
  return frame.stream_source(label, s, { kind = kind, descriptor = d, opts = o })
end

--- The save modes of a static write into a place that may already hold
-- data (`f:write("file" | "memory", { mode = })`), Spark's SaveMode:
-- `error` (the default: refuse), `append`, `overwrite`, `ignore` (write
-- nothing).
M.SAVE_MODES = { type = "string", values = { "error", "append", "overwrite", "ignore" }, default = "error" }

--- Check the options of a static write, `f:write(kind, opts)` (a sink
-- descriptor's `write`): as util.check_options, raising "write(kind): ..."
-- at `level` (the caller's caller, as for error).
-- @return the checked options
function M.write_options(kind, opts, spec, level)
  local ok, o = pcall(util.check_options, opts, spec, format("write(%s)", kind), 1)
  if not ok then error(util.strip_position(o), (level or 1) + 1) end
  return o
end

--- The batches of a static frame and their number of rows. They are the
-- frame's run's: use them, do not keep them (copy what you keep).
-- @treturn {tide.Batch,...}
-- @treturn int
function M.frame_batches(f)
  local list, rows = {}, 0
  for b in f:batches() do
    list[#list + 1] = b
    rows = rows + b:nrows()
  end
  return list, rows
end

--- Every row of the batches, in order, as Lua tables.
function M.rows_of(batches)
  if #batches == 1 then return batches[1]:rows() end
  local rows = {}
  for _, b in ipairs(batches) do
    for _, r in ipairs(b:rows()) do rows[#rows + 1] = r end
  end
  return rows
end

--- A static frame over a micro-batch's output batches (of `schema`), which
-- stay the engine's (the frame never closes them): what a sink asking for
-- frames gets (foreach_batch's `as = "frame"`, tide.sink's `as`).
function M.batch_frame(batches, schema)
  return frame.from_batches("batch", schema, function()
    local i = 0
    return function()
      i = i + 1
      return batches[i]
    end
  end)
end

--- A static frame over Lua rows (tide.from_rows).
-- @function from_rows
M.from_rows = frame.from_rows

--- A static frame over batches made by a function (tide.frame.from_batches).
-- @function from_batches
M.from_batches = frame.from_batches

--- The rows as show() prints them (tide.frame.format_table).
-- @function format_table
M.format_table = frame.format_table

--- The files a path names (a glob, or a directory's files), sorted;
-- hidden files and files starting with '_' are skipped.
-- @function list_files
M.list_files = frame.list_files

--- Decode an open file chunk by chunk (tide.frame.decode_chunks).
-- @function decode_chunks
M.decode_chunks = frame.decode_chunks

--- The default store (tide.store.default_store).
-- @function default_store
M.default_store = store.default_store

--- Check a decoding source's bad-record options (file, kafka): `bad_records`
-- with `dead_letter_topic` and `store`, which go only with "dead_letter".
-- `fail(msg)` raises the source's error; returns the policy ("fail" default).
function M.check_bad_records(o, fail)
  local bad = o.bad_records or "fail"
  if bad == "dead_letter" and not o.dead_letter_topic then
    fail("bad_records = 'dead_letter' needs option 'dead_letter_topic'")
  end
  if o.dead_letter_topic and bad ~= "dead_letter" then
    fail("option 'dead_letter_topic' goes with bad_records = 'dead_letter'")
  end
  if o.store ~= nil and bad ~= "dead_letter" then fail("option 'store' is for the dead-letter topic") end
  return bad
end

--- The store of a connector's option `store`: a tide store, or the
-- default store when nil; raises (level 0) naming the option otherwise.
function M.store_option(v)
  if v == nil then return store.default_store() end
  if not store.is_store(v) then
    error("option 'store' must be a tide store (tide.open(dir)), got " .. type(v), 0)
  end
  if not store.is_open(v) then error(format("option 'store': store '%s' is closed", store.directory(v)), 0) end
  return v
end

--- Watch the store's catalog (each append commits there, from this
-- process or any other) and call fn after each change, on `loop`.
--
-- The event of LMDB's last write (the meta page) can come a moment before
-- readers see the new transaction (LMDB publishes it in its lock file
-- right after that write, which makes no event), so each change also gets
-- a second call `settle_ms` later (default 10); changes that come
-- meanwhile are covered by one more.
-- @return a watch with close(), or nil and a message
function M.watch_catalog(loop, db, fn, settle_ms)
  settle_ms = settle_ms or 10
  local dir = db:path() .. "/catalog"
  local timer, dirty
  local function settle()
    timer:close()
    timer = nil
    if dirty then
      dirty = false
      timer = loop:timer(settle_ms, 0, settle)
    end
    fn()
  end
  local w, msg = loop:watch(dir, function()
    if timer then dirty = true else timer = loop:timer(settle_ms, 0, settle) end
    fn()
  end)
  if not w then return nil, format("cannot watch '%s': %s", dir, tostring(msg)) end
  return {
    close = function()
      w:close()
      if timer then
        timer:close()
        timer = nil
      end
    end,
  }
end

return M
