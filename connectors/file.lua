--- The file source and the file sink of streaming queries (API.md sections
-- 3 and 4; the protocol is connectors/README.md).
--
--    local s = tide.read_stream("file", { path = "in/*.jsonl", format = "json", schema = "ts timestamp, n int" })
--    s:write_stream("file", { path = "out", format = "json", checkpoint = "ckpt/q1" })
--
-- The source.
--
-- It follows Spark's FileStreamSource, with byte ranges in place of whole
-- files so that files may grow. Every listing of `path` (a glob or a
-- directory; names starting with '.' or '_' are skipped) compares each
-- file's size with what is already known and turns new bytes into ranges
-- `{path, from, to}` that end at a line end. The ranges are appended to the
-- source's range log, `<checkpoint>/sources/<index>/log`, and fsynced
-- (file and directory) BEFORE latest_offset returns an offset that reaches
-- them. Invariant: the log only grows, and an entry never changes once
-- written; so entry k names the same bytes for ever, whatever files appear
-- later (with older modification times or not), and a replay reads the
-- same rows.
--
-- Order: the new ranges of one listing are appended sorted by their file's
-- modification time, then by name; what is already logged keeps its place.
--
-- An offset is `{entry = k, pos = p, file = path}`: everything up to byte p
-- of log entry k (and all entries before it). `file` is there for people
-- reading progress reports and is checked against the log on replay.
--
-- Growing files: a range ends at the last newline of the file, so a line
-- being written is not read half. A last line WITHOUT a newline is read
-- once the file has not been modified for `final_line_wait` (default 2
-- seconds; 0 reads it at once). Bytes appended to a file later form new
-- ranges (a file is never read twice); a file that shrinks is not re-read.
--
-- Limits: `max_files_per_trigger` bounds the log entries (files, or the
-- appended parts of growing files) of one batch, `max_bytes_per_trigger` its
-- bytes, cut at a line end (a single line longer than the limit is read
-- whole), counted from `start`, the end of the last batch, which the engine
-- passes to latest_offset.
--
-- Reading: get_batch hands the batch's ranges to core.file_read
-- (core/fileread.c: pread in 4 MiB chunks, decoded in C), and a cut for
-- max_bytes_per_trigger is found by core.file_cut reading backwards from
-- the budget's end. With workers > 1 the next batch is read ahead: once a
-- batch is read, the source plans the next one from its end over the
-- entries logged so far (_plan, what latest_offset returns when nothing
-- new is logged meanwhile) and starts its read on a thread that decodes
-- on the query's worker pool (core.file_read's "pool": one pool for the
-- process, shared with the operators, which push alone meanwhile); get_batch
-- takes it when the engine asks for exactly those offsets, and drops it
-- otherwise. It has no effect but memory: the engine still logs each
-- batch's offsets before running it, and a restart reads afresh.
--
-- The sink.
--
-- Batch N is written to `path/.part-<N>-0000.<ext>.tmp`, fsynced, and
-- renamed to `path/part-<N>-0000.<ext>` (8 digits for N), then recorded in
-- the manifest `path/_tide/<N>.json` (written to a temporary and renamed
-- too), and the directories are fsynced before add_batch returns. A re-run
-- batch renames its new file over the old one, so a batch's rows are in
-- the directory once or not at all, never twice, never half (readers skip
-- names starting with '.' and '_'). The rows of a batch that a crash left
-- uncommitted stay visible until the query restarts and runs it again
-- (with the same input, so the same rows).
--
-- The manifest binds the directory to one query: every entry holds the
-- query id, and a sink whose query id differs from the directory's is
-- refused when it opens (and a batch whose manifest entry is another
-- query's is never overwritten), since a second query, or the same one on
-- a fresh checkpoint, numbers its batches from 0 again and would replace
-- the first one's files.
--
-- Compaction, as Spark's CompactibleFileStreamLog: once COMPACT_INTERVAL
-- per-batch entries of committed batches (ids below the one being
-- written: a batch only runs once the one before it committed) pile up,
-- they and the last compact file are merged into `path/_tide/<N>.compact`
-- (N the highest id it covers; temporary, fsync, rename), and only then
-- are the files it covers removed. A reader takes the newest compact file
-- and lets the per-batch files override it, so every crash point reads
-- the same manifest.
--
-- Durability needs fsync, which plain Lua lacks: tide.core's fsync, stat,
-- mkdir and listdir (core/l_fs.c) do it.
--
-- @module tide.connectors.file

local core = require "tide.core"
local util = require "tide.util"
local connector = require "tide.connector"
local cjson = require "cjson"

local M = { sources = {}, sinks = {} }

local format, concat, sort = string.format, table.concat, table.sort
local type, error, ipairs, pairs, tostring, tointeger = type, error, ipairs, pairs, tostring, math.tointeger
local min = math.min

local CHUNK = 4 * 1024 * 1024

-- ------------------------------------------------------------------------
-- Files
-- ------------------------------------------------------------------------

-- The few calls of LuaFileSystem this module needs, over tide.core.
local lfs = {}
function lfs.attributes(path, field)
  local st = core.stat(path)
  if not st then return nil end
  local a = { mode = st.mode, size = st.size, modification = st.mtime }
  if field then return a[field] end
  return a
end
function lfs.mkdir(path) return core.mkdir(path) end
function lfs.dir(path)
  local names = core.listdir(path) or {}
  local i = 0
  return function()
    i = i + 1
    return names[i]
  end
end

-- fsync each path (files or directories). Raises `what: ...` on failure.
local function fsync(what, ...)
  local ok, msg = core.fsync(...)
  if not ok then error(format("%s: fsync failed: %s", what, msg), 0) end
end

-- mkdir -p; raises `what: cannot create directory 'd': reason`.
local function mkdirs(what, dir)
  local acc = dir:sub(1, 1) == "/" and "/" or ""
  for part in dir:gmatch("[^/]+") do
    acc = acc .. part
    local mode = lfs.attributes(acc, "mode")
    if mode == nil then
      local ok, err = lfs.mkdir(acc)
      if not ok and lfs.attributes(acc, "mode") ~= "directory" then
        -- core.mkdir's message names the path: said once
        local why = tostring(err)
        if why:sub(1, #acc + 2) == acc .. ": " then why = why:sub(#acc + 3) end
        error(format("%s: cannot create directory '%s': %s", what, acc, why), 0)
      end
    elseif mode ~= "directory" then
      error(format("%s: cannot create directory '%s': a %s is in the way", what, acc, mode), 0)
    end
    acc = acc .. "/"
  end
end

-- Write text to path (truncating); raises `what: ...` naming the file.
-- Write text (a string, or an array of strings written one after the
-- other, so that a big batch is never joined into one string) to path.
-- Returns the bytes written.
local function write_whole(what, path, text)
  local f, err = io.open(path, "wb")
  if not f then error(format("%s: cannot write '%s': %s", what, path, err), 0) end
  local parts = type(text) == "table" and text or { text }
  local ok, werr, n = true, nil, 0
  for _, part in ipairs(parts) do
    ok, werr = f:write(part)
    if not ok then break end
    n = n + #part
  end
  local cok, cerr = f:close()
  if not ok or not cok then error(format("%s: cannot write '%s': %s", what, path, werr or cerr), 0) end
  return n
end

-- The whole text of a file, or nil when it cannot be opened.
local function read_text(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function dirname(p)
  local d = p:match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

-- ------------------------------------------------------------------------
-- JSON text (the range log, the manifest)
-- ------------------------------------------------------------------------

local json_string, json_value = util.json_string, util.json_encode

-- cjson decodes numbers as floats: integral ones back to integers.
local function int(v) return type(v) == "number" and tointeger(v) or nil end

-- ------------------------------------------------------------------------
-- Option checks shared by schema() and new()
-- ------------------------------------------------------------------------

local SOURCE_OPTIONS = {
  path = "string",
  format = { type = "string", values = { "json", "csv", "text" } },
  schema = "any",
  header = "boolean",
  sep = "string",
  multi_line = "boolean",
  unknown_fields = { type = "string", values = { "reject", "ignore" } },
  max_files_per_trigger = { type = "integer", min = 1 },
  max_bytes_per_trigger = { type = "size", min = 1 },
  final_line_wait = "duration",
  bad_records = { type = "string", values = { "fail", "drop", "dead_letter" } },
  dead_letter_topic = "string",
  store = "any",
}

local WHAT = "read_stream(file)"

-- Check the options that depend on each other; returns the format and the
-- schema value (DDL, array form or tide.Schema).
local function check_source(o)
  local function fail(msg) error(WHAT .. ": " .. msg, 0) end
  if not o.path then fail("option 'path' is required (a glob such as 'in/*.jsonl', or a directory)") end
  local fmt = o.format or "json"
  local schema
  if fmt == "text" then
    if o.schema ~= nil then fail("the text format has a fixed schema (value string)") end
    schema = "value string"
  else
    if o.schema == nil then fail(format("option 'schema' is required for %s", fmt)) end
    local t = type(o.schema)
    if t ~= "string" and t ~= "table" and not (t == "userdata" and o.schema.ddl) then
      fail("option 'schema' must be a DDL string, an array of fields or a tide.Schema, got " .. t)
    end
    schema = o.schema
  end
  if o.sep and #o.sep ~= 1 then fail("option 'sep' must be one character") end
  if (o.header ~= nil or o.sep) and fmt ~= "csv" then fail("options 'header' and 'sep' are for csv") end
  if o.multi_line ~= nil and fmt ~= "csv" then fail("option 'multi_line' is for csv") end
  if o.unknown_fields and fmt ~= "json" then fail("option 'unknown_fields' is for json") end
  connector.check_bad_records(o, fail)
  return fmt, schema
end

local function schema_object(schema)
  if type(schema) == "userdata" then return schema end
  local s, msg = core.schema(schema)
  if not s then error(WHAT .. ": bad schema: " .. tostring(msg), 0) end
  return s
end

-- ------------------------------------------------------------------------
-- The file source
-- ------------------------------------------------------------------------

-- A dead letter keeps its record byte for byte, whatever the bytes are:
-- `text` is readable (the record when it is UTF-8; else each invalid byte
-- as U+FFFD) and `raw_base64` holds the exact bytes (core/decode.h).
local DEAD_LETTER_SCHEMA = "reason string, file string, line int, text string, raw_base64 string"
local DEAD_LETTER_COLUMNS = { "reason", "file", "line", "text", "raw_base64" }

local Source = {}
Source.__index = Source

-- The directory a watch should look at: the path itself when it is a
-- directory, else the glob's directory when only its last component has
-- wildcards; nil when a wildcard is in a directory part.
local function watch_dir(path)
  if lfs.attributes(path, "mode") == "directory" then return path end
  local d = dirname(path)
  if d:find("[%*%?%[]") then return nil end
  return d
end

-- Load the range log: the entries and each file's logged end. A last line cut by a crash (no newline, or not JSON) was
-- never acknowledged: it is dropped and the log rewritten without it.
function Source:_load()
  local text = read_text(self._log)
  if not text then return end
  local good, pos = 0, 1
  while true do
    local nl = text:find("\n", pos, true)
    if not nl then break end
    local ok, e = pcall(cjson.decode, text:sub(pos, nl - 1))
    if not ok or type(e) ~= "table" then break end
    local ent = { path = e.path, from = int(e.from), to = int(e.to), mtime = int(e.mtime) or 0 }
    if type(ent.path) ~= "string" or not (ent.from and ent.to) then break end
    self._entries[#self._entries + 1] = ent
    self._known[ent.path] = ent.to
    good, pos = nl, nl + 1
  end
  if good < #text then
    -- a torn tail: rewrite the log without it, atomically
    local tmp = self._dir .. "/.log.tmp"
    write_whole(self.description, tmp, text:sub(1, good))
    fsync(self.description, tmp)
    local ok, err = os.rename(tmp, self._log)
    if not ok then error(format("%s: cannot rewrite '%s': %s", self.description, self._log, err), 0) end
    fsync(self.description, self._dir)
  end
end

-- Append lines to the log and make them durable (file, and the directory
-- when the log was just created).
function Source:_append_log(lines)
  local created = lfs.attributes(self._log, "mode") == nil
  local f, err = io.open(self._log, "ab")
  if not f then error(format("%s: cannot write the file log '%s': %s", self.description, self._log, err), 0) end
  local ok, werr = f:write(concat(lines))
  local cok, cerr = f:close()
  if not ok or not cok then
    error(format("%s: cannot write the file log '%s': %s", self.description, self._log, werr or cerr), 0)
  end
  if created then fsync(self.description, self._log, self._dir) else fsync(self.description, self._log) end
end

-- The end of the complete lines of a file of `size` bytes, not before
-- `from`: just after its last newline; the whole file when its last line
-- has no newline but the file has been quiet for final_line_wait.
function Source:_line_end(path, from, size, mtime, now)
  local f = io.open(path, "rb")
  if not f then return from end -- vanished since the listing: next time
  local pos, found = size, nil
  while pos > from and not found do
    local start = math.max(from, pos - 65536)
    f:seek("set", start)
    local chunk = f:read(pos - start) or ""
    local i = #chunk
    while i > 0 do
      if chunk:byte(i) == 10 then found = start + i break end
      i = i - 1
    end
    pos = start
  end
  f:close()
  local stop = found or from
  if stop < size and (self._wait_s == 0 or now - mtime > self._wait_s) then stop = size end
  return stop
end

-- List the files, log their new bytes durably, update the known ends.
function Source:_discover()
  local files = connector.list_files(self._path)
  if not files then return end -- a glob error (unreadable directory): no new files this time
  local now = os.time()
  local fresh = {}
  for _, p in ipairs(files) do
    local a = lfs.attributes(p)
    if a and a.mode == "file" then
      local known = self._known[p] or 0
      if a.size > known then
        local stop = self:_line_end(p, known, a.size, a.modification, now)
        if stop > known then
          fresh[#fresh + 1] = { path = p, from = known, to = stop, mtime = a.modification }
        end
      end
    end
  end
  if #fresh == 0 then return end
  sort(fresh, function(a, b)
    if a.mtime ~= b.mtime then return a.mtime < b.mtime end
    if a.path ~= b.path then return a.path < b.path end
    return a.from < b.from
  end)
  local lines = {}
  for i, e in ipairs(fresh) do
    lines[i] = json_value { from = e.from, mtime = e.mtime, path = e.path, to = e.to } .. "\n"
  end
  self:_append_log(lines)
  for _, e in ipairs(fresh) do
    self._entries[#self._entries + 1] = e
    self._known[e.path] = e.to
  end
end

-- Check an offset against the log; returns entry number and position.
function Source:_position(off, what)
  if type(off) ~= "table" or not int(off.entry) or not int(off.pos) then
    error(format("%s: bad %s offset %s (expected {entry=, pos=, file=})", self.description, what,
      type(off) == "table" and json_value(off) or tostring(off)), 0)
  end
  local k, p = int(off.entry), int(off.pos)
  local e = self._entries[k]
  if not e or (off.file ~= nil and off.file ~= e.path) or p < e.from or p > e.to then
    error(format("%s: %s offset %s does not match the file log in '%s' (entry %d is %s): " ..
      "was this checkpoint written by another source?", self.description, what, json_value(off), self._log, k,
      e and format("%s bytes %d..%d", e.path, e.from, e.to) or "absent"), 0)
  end
  return k, p
end

local function offset(k, p, e) return { entry = k, pos = p, file = e.path } end

-- The position of the first unread byte after `base` (nil: the start):
-- entry k, byte p; k is #entries + 1 at the end.
function Source:_next(base)
  local k, p
  if base == nil then
    k = 1
    p = self._entries[1] and self._entries[1].from
  else
    k, p = self:_position(base, "start")
  end
  while self._entries[k] and p >= self._entries[k].to do
    k = k + 1
    p = self._entries[k] and self._entries[k].from
  end
  return k, p
end

-- A line end in entry e between p (exclusive) and p + budget (inclusive);
-- with `must`, the first line end after p when none is that close
-- (core/fileread.c reads backwards from p + budget: the line end is
-- usually near, so a trigger's budget is not read to find it).
function Source:_cut(e, p, budget, must)
  local cut, err = core.file_cut(e.path, p, budget, must, e.to)
  if cut == nil then self:_vanished(e, err) end
  return cut or nil
end

-- io.open's message starts with the path, which the message names already.
function Source:_vanished(e, err)
  local why = tostring(err)
  if why:sub(1, #e.path + 2) == e.path .. ": " then why = why:sub(#e.path + 3) end
  error(format("%s: file '%s' vanished before it was read (bytes %d..%d of it are in the file log): %s",
    self.description, e.path, e.from, e.to, why), 0)
end

-- The end of the next batch after `start` (nil: the first) over the
-- entries logged so far, as the limits allow; nil when there is nothing.
function Source:_plan(start)
  local entries = self._entries
  if #entries == 0 then return nil end
  local max_files, max_bytes = self._max_files, self._max_bytes
  if not max_files and not max_bytes then
    local k = #entries
    return offset(k, entries[k].to, entries[k])
  end
  if start == nil then start = self._base end
  local k, p = self:_next(start)
  if not entries[k] then return start end
  local files, bytes, last = 0, 0, nil
  while entries[k] do
    local e = entries[k]
    if max_files and files >= max_files then break end
    local rest = e.to - p
    if max_bytes and bytes + rest > max_bytes then
      local cut = self:_cut(e, p, max_bytes - bytes, last == nil)
      if cut then last = offset(k, cut, e) end
      break
    end
    last = offset(k, e.to, e)
    files, bytes = files + 1, bytes + rest
    k = k + 1
    p = entries[k] and entries[k].from
  end
  return last
end

--- The offset up to which data is available: the whole log without limits,
-- else as much after `start` (the end of the last batch, which the engine
-- passes; nil for the first) as the limits allow. Between two batches it
-- returns the same offset unless new data arrived.
function Source:latest_offset(start)
  self:_discover()
  return self:_plan(start)
end

--- The bytes not yet read after offset `off` (nil: none read yet), and
-- the files holding them: those logged past it, and those the files have
-- beyond what the log knows (read from a listing; nothing is logged).
function Source:lag(off)
  local bytes, files = 0, {}
  local k, p = self:_next(off)
  while self._entries[k] do
    local e = self._entries[k]
    if e.to > p then
      bytes = bytes + (e.to - p)
      files[e.path] = true
    end
    k = k + 1
    p = self._entries[k] and self._entries[k].from
  end
  for _, path in ipairs(connector.list_files(self._path) or {}) do
    local a = lfs.attributes(path)
    local known = self._known[path] or 0
    if a and a.mode == "file" and a.size > known then
      bytes = bytes + (a.size - known)
      files[path] = true
    end
  end
  local n = 0
  for _ in pairs(files) do n = n + 1 end
  return { bytes = bytes, files = n }
end

-- The line number of byte `pos` of `path`: from the last read's end when it
-- stopped there, else by counting newlines.
function Source:_line_at(path, pos)
  local c = self._lines[path]
  if c and c.pos == pos then return c.line end
  local f = io.open(path, "rb")
  if not f then return nil end
  local line, at = 1, 0
  if c and c.pos < pos then
    line, at = c.line, c.pos
    f:seek("set", at)
  end
  while at < pos do
    local chunk = f:read(min(CHUNK, pos - at))
    if not chunk then break end
    local i = 1
    while true do
      i = chunk:find("\n", i, true)
      if not i then break end
      line, i = line + 1, i + 1
    end
    at = at + #chunk
  end
  f:close()
  return line
end

local function same(a, b)
  return a ~= nil and b ~= nil and a.entry == b.entry and a.pos == b.pos
end

-- A read (core.file_read) of the bytes after `start` up to `stop`, on a
-- thread of its own when `ahead` (the next batch's, read while this one
-- runs), else when its result is asked for, here and on the worker pool.
-- Line numbers come from the last read's end (self._lines) when it stopped
-- where this one starts.
function Source:_reader(start, stop, ahead)
  local k, p = self:_next(start)
  local sk, sp = self:_position(stop, "end")
  local ranges = {}
  while k < sk or (k == sk and p < sp) do
    local e = self._entries[k]
    local to = k == sk and sp or e.to
    if to > p then
      ranges[#ranges + 1] = { path = e.path, from = p, to = to, line = self:_line_at(e.path, p) or 1,
        header = self._header and p == 0, entry = e }
    end
    k = k + 1
    p = self._entries[k] and self._entries[k].from
  end
  local dopts = { sep = self._sep, multi_line = self._multi_line, ignore_unknown = self._ignore_unknown,
    bad = self._bad }
  return { start = start, stop = stop, ranges = ranges,
    read = core.file_read(self._format, self._schema, ranges, dopts, ahead and "pool") }
end

-- Drop the read ahead, if any (its thread is joined).
function Source:_drop_ahead()
  if self._ahead then
    self._ahead.read:close()
    self._ahead = nil
  end
end

-- The result of reader r: its batches, the records dropped and the dead
-- records (as the dead-letter topic's rows); raises what failed, naming
-- the file and line.
function Source:_result(r)
  local batches, dropped, dead, ends, n, line = r.read:result()
  r.read:close()
  if not batches then
    local kind, g, msg = dropped, r.ranges[dead], ends
    if kind == "open" then self:_vanished(g.entry, msg) end
    if kind == "short" then
      error(format("%s: file '%s' is shorter than the %d bytes logged for it (it was truncated or replaced)",
        self.description, g.path, g.entry.to), 0)
    end
    if kind == "unfinished" then
      error(format("%s: %s:%d: a record the decoder did not finish (%d bytes left)", self.description, g.path,
        line, n), 0)
    end
    if kind == "decode" then
      local at, reason = msg:match("^line (%d+): (.*)$")
      error(format("%s: %s:%s", self.description, g.path, at and (at .. ": " .. reason) or (" " .. msg)), 0)
    end
    error(format("%s: cannot read '%s': %s", self.description, g.path, msg), 0)
  end
  for i, g in ipairs(r.ranges) do self._lines[g.path] = { pos = g.to, line = ends[i] } end
  local rows = {}
  for i, x in ipairs(dead) do
    local readable, raw = core.dead_letter_text(x.text)
    rows[i] = { reason = x.reason, file = (core.dead_letter_text(r.ranges[x.range].path)), line = x.line,
      text = readable, raw_base64 = raw }
  end
  return batches, dropped, rows
end

--- The rows after `start` up to `stop`, as batches, and the counters of
-- bad records (`dropped`, `dead_letter`). The read ahead is used when it
-- covers exactly these bytes (else dropped); then the next batch's bytes,
-- as latest_offset would plan them from `stop` over the entries logged
-- now, are read ahead on a thread while the engine executes, delivers
-- and commits this batch. Reading has no effect but on memory, so a read
-- ahead that the next plan does not match (new files, a restart) is just
-- dropped; the offset log is still written before any batch runs.
function Source:get_batch(start, stop, batch_id)
  local r = self._ahead
  self._ahead = nil
  if not (r and same(r.start, start == nil and self._base or start) and same(r.stop, stop)) then
    if r then r.read:close() end
    r = self:_reader(start, stop, false)
  end
  local batches, dropped, dead = self:_result(r)
  self._base = stop
  if core.workers() > 1 then
    local ok, nxt = pcall(self._plan, self, stop)
    if ok and nxt ~= nil and not same(nxt, stop) then
      ok, nxt = pcall(self._reader, self, stop, nxt, true)
      if ok then self._ahead = nxt end
    end
  end
  local counts = {}
  if dropped > 0 then counts.dropped = dropped end
  if #dead > 0 then
    local topic = self:_dead_letter_topic()
    -- idempotent per batch: a re-run batch (same offsets, same bad records)
    -- is skipped by the store
    local aok, aerr = pcall(topic.append, topic, dead,
      batch_id ~= nil and { writer = self._writer, seq = batch_id } or nil)
    if not aok then
      for _, b in ipairs(batches) do b:close() end
      error(format("%s: cannot write %d bad records to dead-letter topic '%s': %s", self.description, #dead,
        self._dl_name, util.strip_position(aerr)), 0)
    end
    counts.dead_letter = #dead
  end
  return batches, counts
end
function Source:_dead_letter_topic()
  if self._dl then return self._dl end
  local store = self._store or connector.default_store()
  self._store = store
  local name = self._dl_name
  local t
  if store:has_topic(name) then
    t = store:topic(name)
    local have, fields = {}, t:info().schema
    for _, f in ipairs(fields) do have[f[1]] = true end
    for _, c in ipairs(DEAD_LETTER_COLUMNS) do
      if not have[c] and not (c == "raw_base64" and have.text) then
        error(format("%s: dead-letter topic '%s' has no column '%s' (its schema must include %s)", self.description,
          name, c, DEAD_LETTER_SCHEMA), 0)
      end
    end
    if not have.raw_base64 then
      -- a topic made before dead letters kept their bytes: its next schema
      -- version adds the column (nullable, so its older records read as null)
      fields[#fields + 1] = { "raw_base64", "string?" }
      local ok, err = pcall(store.register_schema, store, name, fields)
      if not ok then
        error(format("%s: dead-letter topic '%s' needs column 'raw_base64 string': %s", self.description, name,
          util.strip_position(err)), 0)
      end
    end
  else
    t = store:create_topic(name, { schema = DEAD_LETTER_SCHEMA })
  end
  self._dl = t
  return t
end

function Source:commit(stop)
  if stop ~= nil then self._base = stop end
end

--- Call fn whenever the watched directory changes (new or growing files).
-- When the directory cannot be watched (absent, or a glob with wildcards in
-- a directory part) a 100 ms timer stands in.
function Source:watch(fn)
  local dir = watch_dir(self._path)
  local h
  if dir then h = self._loop:watch(dir, function() fn() end) end
  if not h then h = self._loop:timer(100, 100, function() fn() end) end
  self._handles[#self._handles + 1] = h
end

function Source:stop()
  self:_drop_ahead()
  for _, h in ipairs(self._handles) do h:close() end
  self._handles = {}
end

M.sources.file = {
  options = SOURCE_OPTIONS,
  schema = function(o)
    local _, schema = check_source(o)
    return schema
  end,
  label = function(o) return format("FileSource[%s]", o.path) end,
  new = function(o, ctx)
    local fmt, schema = check_source(o)
    local description = format("FileSource[%s]", o.path)
    if not ctx or not ctx.checkpoint then error(description .. ": needs the query's checkpoint directory", 0) end
    local dir = format("%s/sources/%s", ctx.checkpoint, tostring(ctx.index or 1))
    mkdirs(description, dir)
    local self = setmetatable({
      description = description, replayable = true,
      _path = o.path, _format = fmt, _schema = schema_object(schema),
      _header = o.header, _sep = o.sep, _multi_line = o.multi_line, _ignore_unknown = o.unknown_fields == "ignore",
      _bad = o.bad_records or "fail", _dl_name = o.dead_letter_topic, _store = o.store,
      _writer = format("%s/dead_letter/%s", tostring(ctx.query_id), tostring(ctx.index or 1)),
      _max_files = o.max_files_per_trigger, _max_bytes = o.max_bytes_per_trigger,
      _wait_s = (o.final_line_wait or 2000) / 1000,
      _dir = dir, _log = dir .. "/log", _entries = {}, _known = {}, _lines = {},
      _loop = ctx.loop, _handles = {},
    }, Source)
    self:_load()
    if self._bad == "dead_letter" then self:_dead_letter_topic() end
    self.pure_fetch = self._bad ~= "dead_letter" -- get_batch appends dead letters (connectors/README.md)
    return self
  end,
}

-- ------------------------------------------------------------------------
-- The file sink
-- ------------------------------------------------------------------------

local Sink = {}
Sink.__index = Sink

--- Per-batch manifest entries of committed batches kept before they are
-- compacted into one file (see the file header).
M.COMPACT_INTERVAL = 100

local COMPACT_VERSION = 1

-- The manifest files of directory meta: the newest compact file (name and
-- id, or nil), every compact file's name, and the per-batch files as
-- { [id] = name }.
local function manifest_files(meta)
  local newest, newest_id, compacts, deltas = nil, nil, {}, {}
  for name in lfs.dir(meta) do
    local c = name:match("^(%d+)%.compact$")
    local d = name:match("^(%d+)%.json$")
    if c then
      compacts[#compacts + 1] = name
      c = tointeger(tonumber(c))
      if not newest_id or c > newest_id then newest, newest_id = name, c end
    elseif d then
      deltas[tointeger(tonumber(d))] = name
    end
  end
  return newest, newest_id, compacts, deltas
end

-- Remove directory meta's compact files (names in compacts) other than
-- keep, the newest, which holds all their entries.
local function remove_older_compacts(meta, compacts, keep)
  for _, c in ipairs(compacts) do
    if c ~= keep then os.remove(meta .. "/" .. c) end
  end
end

-- The JSON object that text holds, or nil.
local function json_object(text)
  local ok, m = pcall(cjson.decode, text)
  if ok and type(m) == "table" then return m end
  return nil
end

-- Every manifest entry of directory meta, as { [id] = decoded object }, and
-- the query id of the newest compact file's header (nil without one).
local function manifest_entries(meta)
  local out, qid = {}, nil
  if lfs.attributes(meta, "mode") ~= "directory" then return out end
  local newest, _, _, deltas = manifest_files(meta)
  if newest then
    local text = read_text(meta .. "/" .. newest) or ""
    for line in text:gmatch("[^\n]+") do
      local m = json_object(line)
      if m and m.compact ~= nil then
        qid = m.query_id
      elseif m and int(m.batch_id) then
        out[int(m.batch_id)] = m
      end
    end
  end
  for id, name in pairs(deltas) do
    local m = json_object(read_text(meta .. "/" .. name) or "")
    if m then out[id] = m end
  end
  return out, qid
end

-- The manifest line of batch entry m (keys sorted, as the deltas are written).
local function entry_line(id, m)
  local files = {}
  for i, f in ipairs(m.files or {}) do files[i] = json_string(f) end
  local q = m.query_id ~= nil and format(',"query_id":%s', json_string(tostring(m.query_id))) or ""
  return format('{"batch_id":%d,"bytes":%d,"files":[%s]%s,"rows":%d}\n', id, int(m.bytes) or 0, concat(files, ","),
    q, int(m.rows) or 0)
end

-- Merge the newest compact file and the per-batch entries below `below`
-- into one compact file; then remove what it covers.
function Sink:_compact(below)
  local what, meta = self.description, self._meta
  local _, _, compacts, deltas = manifest_files(meta)
  local entries = manifest_entries(meta)
  local top
  for id in pairs(deltas) do
    if id < below and (not top or id > top) then top = id end
  end
  if not top then return end
  local ids = {}
  for id in pairs(entries) do
    if id <= top then ids[#ids + 1] = id end
  end
  sort(ids)
  local text = { format('{"compact":%d,"query_id":%s,"version":%d}\n', top, json_string(self._query_id or ""),
    COMPACT_VERSION) }
  for _, id in ipairs(ids) do text[#text + 1] = entry_line(id, entries[id]) end
  local name = format("%08d.compact", top)
  local final, tmp = meta .. "/" .. name, meta .. "/." .. name .. ".tmp"
  write_whole(what, tmp, text)
  fsync(what, tmp)
  local ok, err = os.rename(tmp, final)
  if not ok then error(format("%s: cannot rename '%s' to '%s': %s", what, tmp, final, err), 0) end
  fsync(what, meta)
  -- the compact file is durable: what it covers can go
  local left = 0
  for id, dname in pairs(deltas) do
    if id <= top then os.remove(meta .. "/" .. dname) else left = left + 1 end
  end
  remove_older_compacts(meta, compacts, name)
  fsync(what, meta)
  self._pending = left
end

--- Write batch `batch_id` (see the file header): idempotent per batch id.
function Sink:add_batch(batch_id, batches, mode)
  local what = self.description
  if mode ~= nil and mode ~= "append" then
    error(format("%s: output mode '%s' is not supported (file sinks take append only, as Spark's)", what,
      tostring(mode)), 0)
  end
  local id = int(batch_id)
  if not id or id < 0 then error(format("%s: bad batch id %s", what, tostring(batch_id)), 0) end
  local name = format("part-%08d-0000.%s", id, self._format)
  local final, tmp = self._path .. "/" .. name, self._path .. "/." .. name .. ".tmp"
  local mname = format("%08d.json", id)
  local mfinal, mtmp = self._meta .. "/" .. mname, self._meta .. "/." .. mname .. ".tmp"
  -- another query's batch of this id is never replaced (two queries that
  -- opened the directory at once)
  local old = json_object(read_text(mfinal) or "")
  if old and old.query_id ~= nil and self._query_id and old.query_id ~= self._query_id then
    error(self:_taken(old.query_id), 0)
  end
  local rows = 0
  for _, b in ipairs(batches) do rows = rows + b:nrows() end
  if rows == 0 then
    -- nothing to write; a file of this id from an earlier run (whose input
    -- differed) must not stay
    local had = os.remove(final)
    if os.remove(mfinal) or had then fsync(what, self._path, self._meta) end
    return
  end
  local text
  if self._format == "json" then
    text = {}
    for i, b in ipairs(batches) do text[i] = core.batch_json(b) end
  else
    -- encoded in C straight from the columns (core/csv.c), with a header
    text = core.csv_encode(batches, { header = true })
  end
  local bytes = write_whole(what, tmp, text)
  write_whole(what, mtmp, entry_line(id, { bytes = bytes, files = { name }, query_id = self._query_id, rows = rows }))
  fsync(what, tmp, mtmp)
  local ok, err = os.rename(tmp, final)
  if not ok then error(format("%s: cannot rename '%s' to '%s': %s", what, tmp, final, err), 0) end
  ok, err = os.rename(mtmp, mfinal)
  if not ok then error(format("%s: cannot rename '%s' to '%s': %s", what, mtmp, mfinal, err), 0) end
  fsync(what, self._path, self._meta)
  if not old then self._pending = self._pending + 1 end
  if self._pending > M.COMPACT_INTERVAL then self:_compact(id) end
end

-- The message refusing a directory that holds query qid's output.
function Sink:_taken(qid)
  return format("%s: '%s' holds the output of another query (id %s, in its manifest %s/_tide): a second query, " ..
    "or this one on a new checkpoint, would overwrite its files; write to another directory", self.description,
    self._path, tostring(qid), self._path)
end

--- The batches recorded in the manifest: `{ [batch_id] = {files=, rows=, bytes=} }`.
function Sink:manifest()
  return M.manifest(self._path)
end

--- The manifest of a file sink's directory (see Sink:manifest).
function M.manifest(path)
  local out = {}
  for id, m in pairs(manifest_entries(path .. "/_tide")) do
    out[id] = { files = m.files, rows = int(m.rows), bytes = int(m.bytes) }
  end
  return out
end

M.sinks.file = {
  options = {
    path = "string",
    format = { type = "string", values = { "json", "csv" } },
  },
  label = function(o) return format("FileSink[%s]", tostring(o.path)) end,
  new = function(o, ctx)
    if not o.path then error("write_stream(file): option 'path' is required (the output directory)", 0) end
    -- "" would make the metadata directory "/_tide", at the file-system root
    if o.path == "" then error("write_stream(file): option 'path' is empty (the output directory)", 0) end
    if o.path:find("\0", 1, true) then
      error(format("write_stream(file): option 'path' %q holds a NUL byte", o.path), 0)
    end
    local description = format("FileSink[%s]", o.path)
    local path = o.path:gsub("(.)/+$", "%1")
    local meta = path .. "/_tide"
    mkdirs(description, meta)
    -- temporaries of a run that crashed: never visible to readers, and a
    -- re-run batch writes its own
    for _, d in ipairs { path, meta } do
      for name in lfs.dir(d) do
        if name:match("^%.part%-.*%.tmp$") or name:match("^%.%d+%.json%.tmp$") or name:match("^%.%d+%.compact%.tmp$")
        then
          os.remove(d .. "/" .. name)
        end
      end
    end
    -- compact files older than the newest, which a crash during compaction
    -- left (never read: the newest covers them); several crashes in a row
    -- would otherwise pile them up until the next compaction. The
    -- directory is fsynced first, so the newest one's rename is durable
    -- before what it replaces goes.
    local newest, _, compacts = manifest_files(meta)
    if #compacts > 1 then
      fsync(description, meta)
      remove_older_compacts(meta, compacts, newest)
      fsync(description, meta)
    end
    local self = setmetatable({
      description = description, needs_checkpoint = true, output_modes = { "append" },
      _path = path, _meta = meta, _format = o.format or "json",
      _query_id = ctx and ctx.query_id ~= nil and tostring(ctx.query_id) or nil, _pending = 0,
    }, Sink)
    -- the directory is one query's: refuse another's (see the file header)
    local entries, qid = manifest_entries(self._meta)
    local _, _, _, deltas = manifest_files(self._meta)
    for _ in pairs(deltas) do self._pending = self._pending + 1 end
    if self._query_id then
      if qid ~= nil and qid ~= "" and qid ~= self._query_id then error(self:_taken(qid), 0) end
      for _, m in pairs(entries) do
        if m.query_id ~= nil and m.query_id ~= self._query_id then error(self:_taken(m.query_id), 0) end
      end
    end
    return self
  end,
}

--- f:write("file", { path =, format =, mode = }): a static frame's rows
-- into ONE new file of the directory `path` (made when missing), as
-- Spark's df.write does: `part-<time>-<random>.json|csv`, written under a
-- hidden name and renamed into place, so readers see all of it or none.
-- `mode` is a save mode (connector.SAVE_MODES) for a directory that already
-- holds files: refuse (`error`, the default), add a file (`append`),
-- replace its part files (`overwrite`: the new file is complete before the
-- old part files, and a streaming file sink's manifest, compacted or not,
-- are removed, which frees the directory for any query), or
-- write nothing (`ignore`). No rows: no file.
-- @return the number of rows written
function M.sinks.file.write(f, opts, level)
  level = (level or 1) + 1
  local spec = { mode = connector.SAVE_MODES }
  for k, v in pairs(M.sinks.file.options) do spec[k] = v end
  local o = connector.write_options("file", opts, spec, level)
  if not o.path or o.path == "" then error("write(file): option 'path' is required (the output directory)", level) end
  if o.path:find("\0", 1, true) then error(format("write(file): option 'path' %q holds a NUL byte", o.path), level) end
  local what, fmt = "write(file)", o.format or "json"
  local path = o.path:gsub("(.)/+$", "%1")
  local mode = lfs.attributes(path, "mode")
  if mode and mode ~= "directory" then
    error(format("write(file): '%s' is a %s, not a directory", path, mode), level)
  end
  local old = {}
  if mode then
    for name in lfs.dir(path) do
      if not name:match("^[._]") then old[#old + 1] = name end
    end
    sort(old)
  end
  if #old > 0 and o.mode == "error" then
    error(format("write(file): '%s' already holds files (%s); mode = \"append\" adds one, \"overwrite\" " ..
      "replaces them, \"ignore\" writes nothing", path, concat(old, ", ", 1, min(#old, 3)) ..
      (#old > 3 and ", ..." or "")), level)
  end
  if #old > 0 and o.mode == "ignore" then return 0 end
  local batches, rows = connector.frame_batches(f)
  mkdirs(what, path)
  local final, tmp
  if rows > 0 then
    local u = io.open("/dev/urandom", "rb")
    local rnd = u and u:read(6) or tostring(os.clock())
    if u then u:close() end
    local name = format("part-%s-%s.%s", os.date("!%Y%m%dT%H%M%S"),
      rnd:gsub(".", function(c) return format("%02x", c:byte()) end):sub(1, 12), fmt)
    final, tmp = path .. "/" .. name, path .. "/." .. name .. ".tmp"
    local text
    if fmt == "json" then
      text = {}
      for i, b in ipairs(batches) do text[i] = core.batch_json(b) end
    else
      text = core.csv_encode(batches, { header = true })
    end
    write_whole(what, tmp, text)
    fsync(what, tmp)
  end
  if o.mode == "overwrite" then
    for _, name in ipairs(old) do
      if name:match("^part%-") then os.remove(path .. "/" .. name) end
    end
    if lfs.attributes(path .. "/_tide", "mode") == "directory" then
      for name in lfs.dir(path .. "/_tide") do
        if name:match("^%d+%.json$") or name:match("^%d+%.compact$") then os.remove(path .. "/_tide/" .. name) end
      end
    end
  end
  if tmp then
    local ok, err = os.rename(tmp, final)
    if not ok then error(format("%s: cannot rename '%s' to '%s': %s", what, tmp, final, err), 0) end
  end
  fsync(what, path)
  return rows
end

return M
