--- Frames: plans over data, built operator by operator.
--
-- A frame is a plan, not data: each operator returns a new frame whose node
-- points at its input's. Building a frame analyses it at once (as Spark's
-- analyzer does): every expression is compiled against its input's schema,
-- so an unknown column, a type error or a bad argument raises when the
-- operator is called, naming the problem. Running a frame (`collect`,
-- `show`, or a streaming query) pulls columnar batches from its sources and
-- passes them through the operators, which are C functions over whole
-- batches (lua/tide/core: project, where, window_expand, agg, join, sort).
-- Only Lua UDFs (`filter(fn)`, `map`, `flat_map`, `with_column(name, fn)`)
-- see rows.
--
-- A frame's nodes are its logical plan: a description that nothing
-- changes once built, so one frame can back any number of runs at once.
-- Every node has: `op`, `input` (or `inputs`, or a join's `right`),
-- `schema` (a tide.Schema), `fields` (its array form), `static` (true when
-- every source is static), `label` (one line for `explain`), and what its
-- operator needs: `map(batch, rows_before)` for the operators that turn
-- each batch into one (project, where, filter, window, the UDFs),
-- `batches()` for static sources, `stream` for streaming ones, and the
-- analysed parameters of the others (aggregate, dedup, join, sort,
-- limit). tide.plan decides how to run a plan and tide.exec compiles it
-- into operators; running methods here (`collect`, `show`, `batches`,
-- `write_stream`) go through them.
--
-- @module tide.frame

local core = require "tide.core"
local cjson = require "cjson"
local util = require "tide.util"
local schema_mod = require "tide.schema"
local session_mod = require "tide.session"
local stateful_mod = require "tide.stateful"
local stream_join = require "tide.stream_join"

local M = {}

local format, concat = string.format, table.concat
local type, error, setmetatable, getmetatable, ipairs, pairs = type, error, setmetatable, getmetatable, ipairs, pairs

local Frame = {}
Frame.__index = Frame
local Grouped = {}
Grouped.__index = Grouped
local Window = {}
Window.__index = Window

-- ------------------------------------------------------------------------
-- Helpers
-- ------------------------------------------------------------------------

local function field_names(fields)
  local out = {}
  for i, f in ipairs(fields) do out[i] = f[1] end
  return concat(out, ", ")
end

local function ddl_of(fields)
  local out = {}
  for i, f in ipairs(fields) do out[i] = f[1] .. " " .. f[2] end
  return concat(out, ", ")
end

-- A tide.Schema from fields (array form); duplicate names raise for `what`.
local function make_schema(fields, what, level)
  local seen = {}
  for _, f in ipairs(fields) do
    if seen[f[1]] then
      error(format("%s: duplicate column '%s' in the result (use AS to rename one)", what, f[1]), level + 1)
    end
    seen[f[1]] = true
  end
  local s, msg = core.schema(fields)
  if not s then error(what .. ": " .. msg, level + 1) end
  return s
end

-- A field name for an expression's output: its alias or Spark's name for
-- it, made valid where it is not (field names hold no backticks or control
-- characters and are at most 128 bytes): backticks dropped, control
-- characters blanked, long names cut (with "...").
local function safe_name(name)
  name = name:gsub("`", ""):gsub("%c", " ")
  if #name > 128 then
    local cut = 125
    local function continuation(i) local b = name:byte(i) or 0 return b >= 0x80 and b < 0xC0 end
    while cut > 1 and continuation(cut + 1) do cut = cut - 1 end
    name = name:sub(1, cut) .. "..."
  end
  if name == "" then name = "_" end
  return name
end

local function field_of_expr(e, name)
  return { name or safe_name(e:name()), e:type() .. (e:nullable() and "?" or "") }
end

-- Compile `text` against node's schema; errors raise at the caller of the
-- operator (level counts from the operator's own function).
local function compile(node, text, what, level, agg)
  if type(text) ~= "string" then
    error(format("%s: expected an expression string, got %s", what, type(text)), level + 1)
  end
  local e, msg = core.expr(text, node.schema, agg)
  if not e then error(what .. ": " .. msg, level + 1) end
  return e
end

local function check_frame(self, what, level)
  if getmetatable(self) ~= Frame then
    error(format("%s: bad self: expected a frame (use f:%s(...), not f.%s(...))", what, what, what), (level or 2) + 1)
  end
  return self._node
end

-- The type (without "?") and index of column `name` in fields, or nil.
local function field_type(fields, name)
  for i, f in ipairs(fields) do
    if f[1] == name then return (f[2]:gsub("%?$", "")), i end
  end
end

-- Event time. `node.event_time` names the column of a node's output that
-- carries a watermark (set by with_watermark, with `node.event_delay`);
-- an operator that keeps that column (same name, still a timestamp) keeps
-- the mark, as Spark's attribute metadata does. Projections decide for
-- themselves (a column may be renamed or replaced); stateful operators set
-- their own.
local function inherit_event_time(node)
  if node.event_time ~= nil or node.stateful or node.op == "project" then return end
  local from = node.input or (node.inputs and node.inputs[1])
  local et = from and from.event_time
  if et and field_type(node.fields, et) == "timestamp" then
    node.event_time, node.event_delay = et, from.event_delay
  end
end

local function new_frame(node)
  node.fields = node.fields or node.schema:fields()
  inherit_event_time(node)
  return setmetatable({ _node = node }, Frame)
end

--- The root node of a frame's logical plan (for tide.plan and tide.exec);
-- a node is returned as it is.
function M.plan_of(f)
  if getmetatable(f) == Frame then return f._node end
  if type(f) == "table" and f.op and f.schema then return f end
  error("expected a frame or a plan node, got " .. type(f), 3)
end

-- The execution layer and the streaming engine sit above this module
-- (frame -> plan -> exec -> ... -> query), so this module cannot require
-- them; they hand in their entry points when they load (require "tide"
-- loads them all): `open(node)` -> an iterator of a static plan's batches
-- (tide.exec), `start(frame, sink, opts, level)` -> a query (tide.query).
local engine = {}

--- Set an entry point of the layers that run frames (`open`, `start`).
function M.set_engine(name, fn) engine[name] = fn end

local function run(node)
  if not engine.open then error("tide.exec is not loaded (require \"tide\")", 3) end
  return engine.open(node)
end

-- A node whose every batch goes through kernel(batch, rows before it) -> batch.
local function map_node(input, op, schema, label, kernel, extra)
  local node = { op = op, input = input, schema = schema, static = input.static, label = label, map = kernel }
  for k, v in pairs(extra or {}) do node[k] = v end
  return node
end

-- Raise the failure of an operator while running (data errors: a UDF that
-- raised, a row that breaks a declared schema), naming the operator.
local function run_fail(what, msg)
  error(what .. ": " .. tostring(msg), 0)
end

-- ------------------------------------------------------------------------
-- Windows
-- ------------------------------------------------------------------------

--- The most windows one row may fall into: a window's size / slide is at
-- most this (core/window.h's TIDE_WINDOW_MAX_PER_ROW).
M.WINDOWS_PER_ROW_MAX = 10000

--- A tumbling or sliding event-time window, for `group_by` and `select`.
-- A row at time t belongs to every window with start <= t < end; windows
-- align to the epoch plus `start`. Adds the columns `window_start` and
-- `window_end` (timestamps). A row falls into ceil(size / slide) windows,
-- at most `WINDOWS_PER_ROW_MAX`; a row whose time lies outside the valid
-- timestamp range (`tide.util.TS_MIN` .. `TS_MAX`) fails its batch.
-- @string col a timestamp column
-- @param size a duration (`"10 seconds"`, or ms)
-- @param[opt] slide a duration (default: `size`, a tumbling window)
-- @param[opt] start a duration offset (default 0)
-- @raise `window: ... puts each row into N windows, at most 10000 are allowed: use a larger slide`
function M.window(col, size, slide, start)
  if type(col) ~= "string" then error("window: bad argument #1: expected a column name, got " .. type(col), 2) end
  local w = setmetatable({
    col = col,
    size = util.duration(size, "window size", 3),
    slide = slide ~= nil and util.duration(slide, "window slide", 3) or nil,
    start = 0,
  }, Window)
  if start ~= nil then -- may be negative (Spark allows it)
    local neg = false
    if type(start) == "string" and start:match("^%s*%-") then
      neg, start = true, start:gsub("^%s*%-", "", 1)
    elseif type(start) == "number" and start < 0 then
      neg, start = true, -start
    end
    w.start = util.duration(start, "window start", 3) * (neg and -1 or 1)
  end
  w.slide = w.slide or w.size
  if w.size <= 0 then error("window: window size must be > 0", 2) end
  if w.slide <= 0 or w.slide > w.size then error("window: window slide must be > 0 and <= the size", 2) end
  if math.abs(w.start) >= w.slide then
    error("window: window start must be smaller than the slide in absolute value", 2)
  end
  -- each row is copied into ceil(size / slide) windows (core/window.h)
  local per_row = (w.size + w.slide - 1) // w.slide
  if per_row > M.WINDOWS_PER_ROW_MAX then
    error(format("window: %s puts each row into %d windows, at most %d are allowed: use a larger slide",
      tostring(w), per_row, M.WINDOWS_PER_ROW_MAX), 2)
  end
  return w
end

function Window:__tostring()
  if self.slide == self.size then
    return format("window(%s, %s%s)", self.col, util.format_duration(self.size),
      self.start ~= 0 and (", start " .. util.format_duration(self.start)) or "")
  end
  return format("window(%s, %s, slide %s%s)", self.col, util.format_duration(self.size),
    util.format_duration(self.slide), self.start ~= 0 and (", start " .. util.format_duration(self.start)) or "")
end

M.is_window = function(v) return getmetatable(v) == Window end

-- A tide.session_window (lua/tide/session.lua).
local function is_session(v) return session_mod.is(v) end

-- The node that assigns windows to the rows of `input`: window_start,
-- window_end, then every input column, one row per (row, window).
local function window_node(input, w, what, level)
  local col
  for i, f in ipairs(input.fields) do
    if f[1] == w.col then col = i end
  end
  if not col then
    error(format("%s: unknown column '%s' in %s (columns: %s)", what, w.col, tostring(w), field_names(input.fields)),
      level + 1)
  end
  local ty = input.fields[col][2]:gsub("%?$", "")
  if ty ~= "timestamp" then
    error(format("%s: %s needs a timestamp column, '%s' is %s", what, tostring(w), w.col, ty), level + 1)
  end
  for _, f in ipairs(input.fields) do
    if f[1] == "window_start" or f[1] == "window_end" then
      error(format("%s: the input already has a column '%s'; windows add window_start and window_end", what, f[1]),
        level + 1)
    end
  end
  local fields = { { "window_start", "timestamp" }, { "window_end", "timestamp" } }
  for _, f in ipairs(input.fields) do fields[#fields + 1] = f end
  local schema = make_schema(fields, what, level + 1)
  local size, slide, start = w.size, w.slide, w.start
  local label = "Window " .. tostring(w)
  local node = map_node(input, "window", schema, label, function(b)
    local out, msg = core.window_expand(b, col, size, slide, start, schema)
    if not out then run_fail(label, msg) end -- never nil as the end of the stream
    return out
  end)
  node.fields = fields
  inherit_event_time(node)
  return node
end

-- ------------------------------------------------------------------------
-- Sources
-- ------------------------------------------------------------------------

-- schema: a tide.Schema, or a DDL string or array form; batches: a
-- function returning an iterator of the source's batches (nil for a
-- stream); owns: the source makes fresh batches that its consumer may close
local function source_node(label, schema, batches, owns)
  if type(schema) ~= "userdata" then
    local s, msg = core.schema(schema)
    if not s then error("source: bad schema: " .. msg, 3) end
    schema = s
  end
  return { op = "source", schema = schema, static = true, label = label, batches = batches, owns = owns or false }
end

--- A static frame over Lua rows.
-- @tab rows an array of tables keyed by column name
-- @param[opt] schema DDL or array form; inferred from the rows when omitted
-- @tab[opt] opts `batch_rows`: cut the rows into batches of this many (the
-- result of any query is the same whatever the cut; tests use it to show so)
-- @treturn frame
function M.from_rows(rows, schema, opts)
  if type(rows) ~= "table" then
    error("from_rows: bad argument #1: expected an array of rows, got " .. type(rows), 2)
  end
  local o = util.check_options(opts, { batch_rows = { type = "integer", min = 1 } }, "from_rows")
  if schema == nil then schema = schema_mod.infer(rows) end
  local s, msg = core.schema(schema)
  if not s then error("from_rows: bad schema: " .. msg, 2) end
  local per = o.batch_rows or math.max(#rows, 1)
  local batches = {}
  for first = 1, math.max(#rows, 1), per do
    local part = table.move(rows, first, math.min(first + per - 1, #rows), 1, {})
    local b, err = core.rows_batch(s, part)
    if not b then
      local n, rest = err:match("^row (%d+): (.*)$")
      error("from_rows: " .. (n and format("row %d: %s", first + tonumber(n) - 1, rest) or err), 2)
    end
    batches[#batches + 1] = b
  end
  return new_frame(source_node(format("Rows (%d)", #rows), s, function()
    local i = 0
    return function()
      i = i + 1
      return batches[i]
    end
  end))
end

--- A streaming source: a node whose batches are those the streaming engine
-- fetches for the micro-batch being run (tide.exec hands them to its
-- operator). `stream` describes the source for the engine: { kind =, opts
-- =, descriptor = } or { lua = source table }.
function M.stream_source(label, schema, stream)
  local node = source_node(label, schema, nil, false)
  node.static, node.stream = false, stream
  return new_frame(node)
end

--- A static frame over batches produced by `batches()` (an iterator
-- factory), for sources built elsewhere (topics, tables). With `fresh`,
-- every batch is made anew for its consumer (which closes it when done);
-- without, the batches are the caller's and are left alone.
function M.from_batches(label, schema, batches, fresh)
  return new_frame(source_node(label, schema, batches, fresh))
end

local CHUNK = 4 * 1024 * 1024

local read_spec = {
  path = "string",
  format = { type = "string", values = { "json", "csv", "text" } },
  schema = "any",
  header = "boolean",
  sep = "string",
  multi_line = "boolean",
  bad_records = { type = "string", values = { "fail", "drop" } },
  unknown_fields = { type = "string", values = { "reject", "ignore" } },
}

-- The files a path names: a glob, or a directory's files; hidden files and
-- files starting with '_' are skipped, as Spark does.
local function list_files(path)
  local out = {}
  local matches, msg = core.glob(path)
  if not matches then return nil, msg end
  for _, p in ipairs(matches) do
    if p:sub(-1) == "/" then
      for _, q in ipairs(core.glob(p .. "*") or {}) do
        local base = q:match("([^/]*)$")
        if q:sub(-1) ~= "/" and not base:match("^[._]") then out[#out + 1] = q end
      end
    else
      local base = p:match("([^/]*)$")
      if not base:match("^[._]") then out[#out + 1] = p end
    end
  end
  table.sort(out)
  return out
end

M.list_files = list_files

--- Decode an open file from its current position, chunk by chunk (at most
-- `CHUNK` bytes read at a time), for the file readers (tide.read and the
-- file source). Each call of the returned iterator reads and decodes until
-- the decoder gives a value, and returns it; nil at the end.
-- @tparam file f an open file
-- @tab o `decode(text, final)`: text is the bytes not consumed yet (the
-- rest of the last chunk, then the new one), final true when they reach
-- the end; returns the bytes it consumed (whole records only, unless
-- final) and a value or nil; `limit`: read that many bytes (nil: to the
-- end of the file); `header`: drop the first line first, then call
-- `on_header()`; `short(got)`: called (to raise) when the file ends
-- before `limit`; `unfinished(n)`: called (to raise) when the decoder left
-- n bytes at the end
function M.decode_chunks(f, o)
  local carry, left, eof, header = "", o.limit, false, o.header
  return function()
    while true do
      if eof and carry == "" then return nil end
      if not eof then
        local want = left and math.min(CHUNK, left) or CHUNK
        local chunk = f:read(want)
        if left then
          if not chunk or #chunk < want then o.short(o.limit - left + (chunk and #chunk or 0)) end
          left = left - want
          eof = left == 0
        else
          eof = chunk == nil
        end
        if chunk then carry = carry .. chunk end
      end
      if header then
        local nl = carry:find("\n", 1, true)
        if nl or eof then
          carry = nl and carry:sub(nl + 1) or ""
          header = false
          if o.on_header then o.on_header() end
        end
      end
      if not header and carry ~= "" then
        local used, value = o.decode(carry, eof)
        carry = carry:sub(used + 1)
        if eof and carry ~= "" then o.unfinished(#carry) end
        if value ~= nil then return value end
      end
    end
  end
end

-- Iterate the batches of one file. Errors name the file. The file is read
-- in ranges of about CHUNK bytes cut after a line end, each read and
-- decoded in C (core.file_read); with workers > 1 the next range is read
-- on a thread of its own while the batches of this one are consumed
-- (pipelined: the consumer's operators run on this thread meanwhile).
-- The rows, their order and the errors are the same either way.
local function file_batches(file, fmt, schema, o)
  local f, err = io.open(file, "rb")
  if not f then run_fail("read", err) end
  local size = f:seek("end")
  f:close()
  local dopts = { bad = o.bad_records or "fail", sep = o.sep, multi_line = o.multi_line,
    ignore_unknown = o.unknown_fields == "ignore" }
  local ahead = core.workers() > 1
  local pos, line, queue, qi = 0, 1, {}, 1
  local function fail(msg) run_fail(format("read %s", file), msg) end
  -- the read of the range at pos, started on a thread when ahead
  local function start()
    if pos >= size and not (pos == 0 and size == 0) then return nil end
    local cut, cerr = core.file_cut(file, pos, CHUNK, true, size)
    if cut == nil then fail(cerr) end
    local r = { to = cut, read = core.file_read(fmt, schema,
      { { path = file, from = pos, to = cut, line = line, header = o.header and pos == 0 } }, dopts, ahead) }
    pos = cut
    if cut == size then pos = size + 1 end -- the last range (an empty file has one, empty)
    return r
  end
  -- its batches (raises what failed, naming the file and line)
  local function take(r)
    local batches, kind, _, ends, n, at = r.read:result()
    r.read:close()
    if not batches then
      local msg = ends
      if kind == "unfinished" then
        fail(format("line %d: a record the decoder did not finish (%d bytes left)", at, n))
      end
      if kind == "short" then fail("the file became shorter while it was read") end
      fail(msg)
    end
    line = ends[1]
    return batches
  end
  local pending = start()
  return function()
    while true do
      local b = queue[qi]
      if b then
        queue[qi], qi = nil, qi + 1
        return b
      end
      if not pending then return nil end
      queue, qi = take(pending), 1
      pending = start()
    end
  end
end

--- A static frame over files.
-- @string kind `"file"`
-- @tab opts `path` (a file, a glob such as `"in/*.jsonl"`, or a directory),
-- `format` (`json`, the default, `csv` or `text`), `schema` (DDL or array;
-- json and csv; when absent, `tide.infer_schema` infers it from the first
-- file; text rows are `value string`), `header` (csv:
-- the first line of each file is a header, default false), `sep` (csv,
-- default ","), `multi_line` (csv: quoted fields may span lines; default
-- false, a record is one line), `bad_records` (`fail`, the default: the read fails naming
-- file and line; `drop`: bad lines are skipped), `unknown_fields` (json:
-- `reject` or `ignore` keys not in the schema)
-- @treturn frame
function M.read(kind, opts)
  if kind ~= "file" then
    error(format("tide.read: unknown source %s (static sources: file, postgres; topics: db:read)",
      type(kind) == "string" and ("'" .. kind .. "'") or type(kind)), 2)
  end
  local o = util.check_options(opts, read_spec, "tide.read")
  if not o.path then error("tide.read: option 'path' is required", 2) end
  local fmt = o.format or "json"
  local schema
  if fmt == "text" then
    if o.schema ~= nil then error("tide.read: the text format has a fixed schema (value string)", 2) end
    schema = "value string"
  else
    schema = o.schema -- nil: inferred from the first file below (Spark's inferSchema)
  end
  if o.sep and #o.sep ~= 1 then error("tide.read: option 'sep' must be one character", 2) end
  if (o.header ~= nil or o.sep) and fmt ~= "csv" then error("tide.read: options 'header' and 'sep' are for csv", 2) end
  if o.multi_line ~= nil and fmt ~= "csv" then error("tide.read: option 'multi_line' is for csv", 2) end
  local files, ferr = list_files(o.path)
  if not files then error("tide.read: " .. ferr, 2) end
  if #files == 0 then error(format("tide.read: no files match '%s'", o.path), 2) end
  if schema == nil then
    local ok, ddl = pcall(schema_mod.infer, files[1],
      { format = fmt, header = o.header, sep = o.sep, multi_line = o.multi_line })
    if not ok then
      error(format("tide.read: cannot infer a schema (give option 'schema'): %s",
        util.strip_position(ddl):gsub("^infer_schema: ", "")), 2)
    end
    schema = ddl
  end
  local s, msg = core.schema(schema)
  if not s then error("tide.read: bad schema: " .. msg, 2) end
  local node = source_node(format("Read %s (%s, %d file%s)", o.path, fmt, #files, #files == 1 and "" or "s"), s,
    function()
      -- the files are listed again when the frame runs: new ones are read
      local now = list_files(o.path) or files
      return util.chain(function(i) return now[i] and file_batches(now[i], fmt, s, o) end)
    end, true)
  if not o.header and not o.multi_line then
    -- what a static aggregation of this source alone needs to read it in
    -- one stage (tide.exec, core/scan.h): the same files, format and options
    node.scan = { format = fmt, schema = s, files = function() return list_files(o.path) or files end,
      opts = { bad = o.bad_records or "fail", sep = o.sep, ignore_unknown = o.unknown_fields == "ignore" } }
  end
  return new_frame(node)
end

-- ------------------------------------------------------------------------
-- Operators
-- ------------------------------------------------------------------------

-- Project `exprs` (compiled tide.Expr) with output `names`.
local function project_node(input, exprs, names, label, what, level)
  local fields = {}
  for i, e in ipairs(exprs) do fields[i] = field_of_expr(e, names and names[i]) end
  local schema = make_schema(fields, what, level + 1)
  local node = map_node(input, "project", schema, label, function(b)
    local out, msg = core.project(b, exprs, schema)
    if not out then run_fail(what, msg) end
    return out
  end, { exprs = exprs }) -- exprs: which columns pass through (tide.scaleout)
  -- the event-time column survives a bare reference to it, renamed or not
  local et = input.event_time and select(2, field_type(input.fields, input.event_time))
  for i, e in ipairs(exprs) do
    if et and e:column() == et and fields[i][2]:gsub("%?$", "") == "timestamp" and not node.event_time then
      node.event_time, node.event_delay = fields[i][1], input.event_delay
    end
  end
  return node
end

--- Select columns or expressions (`"signal * 2 AS s2"`); a `tide.window`
-- among them assigns windows (one output row per row and window, with
-- `window_start` and `window_end`).
function Frame:select(...)
  local node = check_frame(self, "select")
  local args = table.pack(...)
  if args.n == 0 then error("select: expected at least one column or expression", 2) end
  local input, window = node, nil
  for i = 1, args.n do
    if M.is_window(args[i]) then
      if window then error("select: only one window per select", 2) end
      window = args[i]
    end
  end
  if window then input = window_node(node, window, "select", 2) end
  local exprs, texts = {}, {}
  for i = 1, args.n do
    local a = args[i]
    if M.is_window(a) then
      exprs[#exprs + 1] = compile(input, "window_start", "select", 2)
      exprs[#exprs + 1] = compile(input, "window_end", "select", 2)
      texts[#texts + 1] = tostring(a)
    else
      exprs[#exprs + 1] = compile(input, a, "select", 2)
      texts[#texts + 1] = exprs[#exprs]:text() ~= exprs[#exprs]:name() and
        (exprs[#exprs]:text() .. " AS " .. exprs[#exprs]:name()) or exprs[#exprs]:name()
    end
  end
  local pn = project_node(input, exprs, nil, "Project [" .. concat(texts, ", ") .. "]", "select", 2)
  -- A window over the event-time column carries the watermark when the
  -- column itself is not selected: its rows are late once window_end is
  -- (Spark's window column keeps the event-time metadata).
  if window and not pn.event_time and input.event_time == window.col then
    pn.event_time, pn.event_delay = "window_end", input.event_delay
  end
  return new_frame(pn)
end

--- Keep the rows where the expression is true (NULL counts as false).
function Frame:where(expr)
  local node = check_frame(self, "where")
  local e = compile(node, expr, "where", 2)
  if e:type() ~= "bool" then
    error(format("where: the condition must be a bool expression, %s is %s", e:text(), e:type()), 2)
  end
  return new_frame(map_node(node, "where", node.schema, "Filter " .. e:text(), function(b)
    local out, msg = core.where(b, e)
    if not out then run_fail("where", msg) end
    return out
  end, { expr = e }))
end

--- `where` with an expression, or keep the rows for which a Lua function
-- `fn(row)` returns a truthy value.
function Frame:filter(cond)
  local node = check_frame(self, "filter")
  if type(cond) == "function" then
    return new_frame(map_node(node, "filter", node.schema, "Filter <Lua function>", function(b, rows)
      local out, msg = core.udf_filter(b, cond, rows)
      if not out then run_fail("filter", msg) end
      return out
    end, { fn = cond }))
  end
  if type(cond) ~= "string" then
    error("filter: expected an expression string or a function(row), got " .. type(cond), 2)
  end
  return Frame.where(self, cond)
end

--- Declare `col` (a timestamp column) the event time and the watermark as
-- the largest event time seen minus `delay`: stateful operators downstream
-- (windowed aggregations, drop_duplicates, session windows) then drop rows
-- that come too late and finalise and forget what the watermark has passed
-- (SEMANTICS.md). The engine computes the watermark after each micro-batch
-- and the next batch runs with it. A no-op on static frames, as in Spark.
-- The watermark is an integer within the valid timestamp range
-- (`tide.util.TS_MIN` .. `TS_MAX`): largest - delay saturates at its ends.
-- @string col a timestamp column
-- @param delay a duration (`"10 seconds"`, or ms) >= 0
function Frame:with_watermark(col, delay)
  local node = check_frame(self, "with_watermark")
  if type(col) ~= "string" then
    error("with_watermark: bad argument #1: expected a column name, got " .. type(col), 2)
  end
  local ty, c = field_type(node.fields, col)
  if not ty then
    error(format("with_watermark: unknown column '%s' (columns: %s)", col, field_names(node.fields)), 2)
  end
  if ty ~= "timestamp" then
    error(format("with_watermark: the event-time column must be a timestamp, '%s' is %s", col, ty), 2)
  end
  if delay == nil then
    error("with_watermark: bad argument #2: expected a delay (a duration such as \"10 seconds\")", 2)
  end
  if (type(delay) == "number" and delay < 0) or (type(delay) == "string" and delay:match("^%s*%-")) then
    error(format("with_watermark: the delay should not be negative, got %s", tostring(delay)), 2)
  end
  local ms = util.duration(delay, "with_watermark: delay", 3)
  -- in a micro-batch its operator counts the event times it passes on
  -- (tide.exec); the engine makes the watermark of them
  return new_frame({
    op = "watermark", input = node, schema = node.schema, static = node.static,
    label = format("EventTimeWatermark %s, %s", col, util.format_duration(ms)),
    event_time = col, event_delay = ms, watermark_col = c,
  })
end

local function udf_node(node, fn, fields, flat, what, label, level)
  local schema = make_schema(fields, what, level + 1)
  return map_node(node, what, schema, label, function(b, rows)
    local out, msg = core.udf_map(b, fn, schema, flat, what, rows)
    if not out then run_fail(what, msg) end
    return out
  end)
end

local function schema_arg(schema, what, level)
  if schema == nil then error(what .. ": a schema for the function's rows is required", level + 1) end
  local s, msg = core.schema(schema)
  if not s then error(what .. ": bad schema: " .. msg, level + 1) end
  return s:fields()
end

--- A Lua function of each row: `fn(row)` returns a row of `schema` (or nil
-- to drop it). Rows that break the schema fail the run, naming the row.
function Frame:map(fn, schema)
  local node = check_frame(self, "map")
  if type(fn) ~= "function" then error("map: bad argument #1: expected a function(row), got " .. type(fn), 2) end
  local fields = schema_arg(schema, "map", 2)
  return new_frame(udf_node(node, fn, fields, false, "map", "Map <Lua function> => " .. ddl_of(fields), 2))
end

--- A Lua function of each row that calls `emit(row)` any number of times:
-- `fn(row, emit)`.
function Frame:flat_map(fn, schema)
  local node = check_frame(self, "flat_map")
  if type(fn) ~= "function" then
    error("flat_map: bad argument #1: expected a function(row, emit), got " .. type(fn), 2)
  end
  local fields = schema_arg(schema, "flat_map", 2)
  return new_frame(udf_node(node, fn, fields, true, "flat_map", "FlatMap <Lua function> => " .. ddl_of(fields), 2))
end

--- Add a column, or replace the column of that name in place: `expr` is an
-- expression string, or a Lua function `fn(row)` returning the value, with
-- the column's type as third argument (`f:with_column("d", fn, "double?")`).
function Frame:with_column(name, expr, ty)
  local node = check_frame(self, "with_column")
  if type(name) ~= "string" then
    error("with_column: bad argument #1: expected a column name, got " .. type(name), 2)
  end
  if type(expr) == "function" then
    if type(ty) ~= "string" then
      error(format("with_column: a Lua function needs the column's type as third argument, e.g. " ..
        "f:with_column('%s', fn, 'double?')", name), 2)
    end
    local fields, found = {}, false
    for i, f in ipairs(node.fields) do
      if f[1] == name then
        fields[i] = { name, ty }
        found = true
      else
        fields[i] = f
      end
    end
    if not found then fields[#fields + 1] = { name, ty } end
    local fn = expr
    local wrapped = function(row)
      row[name] = fn(row)
      return row
    end
    return new_frame(udf_node(node, wrapped, fields, false, "with_column",
      format("WithColumn %s = <Lua function> (%s)", name, ty), 2))
  end
  local exprs, names, found = {}, {}, false
  local e = compile(node, expr, "with_column", 2)
  for i, f in ipairs(node.fields) do
    if f[1] == name then
      exprs[i], found = e, true
    else
      exprs[i] = compile(node, "`" .. f[1] .. "`", "with_column", 2)
    end
    names[i] = f[1]
  end
  if not found then
    exprs[#exprs + 1] = e
    names[#names + 1] = name
  end
  return new_frame(project_node(node, exprs, names, format("WithColumn %s = %s", name, e:text()), "with_column", 2))
end

--- Remove columns.
function Frame:drop(...)
  local node = check_frame(self, "drop")
  local cols = table.pack(...)
  local gone = {}
  for i = 1, cols.n do
    local c = cols[i]
    local ok = false
    for _, f in ipairs(node.fields) do ok = ok or f[1] == c end
    if not ok then
      error(format("drop: unknown column %s (columns: %s)", type(c) == "string" and ("'" .. c .. "'") or type(c),
        field_names(node.fields)), 2)
    end
    gone[c] = true
  end
  local exprs, names = {}, {}
  for _, f in ipairs(node.fields) do
    if not gone[f[1]] then
      exprs[#exprs + 1] = compile(node, "`" .. f[1] .. "`", "drop", 2)
      names[#names + 1] = f[1]
    end
  end
  if #exprs == 0 then error("drop: cannot drop every column", 2) end
  local list = {}
  for i = 1, cols.n do list[i] = cols[i] end
  return new_frame(project_node(node, exprs, names, "Drop [" .. concat(list, ", ") .. "]", "drop", 2))
end

--- Rename columns: `f:rename{ old = "new", ... }` (Spark's
-- withColumnsRenamed). The other columns keep their names and places; the
-- event-time column keeps its watermark under its new name.
-- @tab names old name = new name
-- @raise for an unknown column (naming the columns) or a new name that
-- another column keeps
function Frame:rename(names)
  local node = check_frame(self, "rename")
  if type(names) ~= "table" then
    error("rename: bad argument #1: expected a table of old = \"new\" names, got " .. type(names), 2)
  end
  local old = {}
  for k, v in pairs(names) do
    if type(k) ~= "string" or type(v) ~= "string" then
      error(format("rename: expected old = \"new\" with column names as strings, got [%s] = %s",
        type(k) == "string" and format("%q", k) or tostring(k), type(v) == "string" and format("%q", v) or type(v)), 2)
    end
    if not field_type(node.fields, k) then
      error(format("rename: unknown column '%s' (columns: %s)", k, field_names(node.fields)), 2)
    end
    old[#old + 1] = k
  end
  table.sort(old)
  local exprs, out, taken, texts = {}, {}, {}, {}
  for i, f in ipairs(node.fields) do
    exprs[i] = compile(node, "`" .. f[1] .. "`", "rename", 2)
    out[i] = names[f[1]] or f[1]
    if taken[out[i]] then
      error(format("rename: two columns would be named '%s' (%s and %s); rename or drop one of them", out[i],
        taken[out[i]], f[1]), 2)
    end
    taken[out[i]] = f[1]
  end
  for i, k in ipairs(old) do texts[i] = k .. " AS " .. names[k] end
  return new_frame(project_node(node, exprs, out, "Rename [" .. concat(texts, ", ") .. "]", "rename", 2))
end

--- Group rows by keys: column names, expressions, or a `tide.window`.
-- With no key, every row is in one group (a global aggregation: Spark's
-- `groupBy().agg(...)`, Flink's non-keyed aggregation): the result is one
-- row, also over no rows at all (count 0, the other aggregates NULL).
-- @return a grouped frame: call `agg{...}` or `count()` on it
function Frame:group_by(...)
  local node = check_frame(self, "group_by")
  local keys = table.pack(...)
  if keys.n == 0 then
    return setmetatable({ _input = node, _keys = {}, _key_fields = {}, _texts = {}, _global = true }, Grouped)
  end
  local window, session
  for i = 1, keys.n do
    if M.is_window(keys[i]) or is_session(keys[i]) then
      if window or session then error("group_by: only one window key (tide.window or tide.session_window)", 2) end
      if M.is_window(keys[i]) then window = keys[i] else session = keys[i] end
    elseif type(keys[i]) ~= "string" then
      error(format("group_by: key %d must be a column, an expression, a tide.window or a tide.session_window, got %s",
        i, type(keys[i])), 2)
    end
  end
  local sspec
  if session then
    local ty, c = field_type(node.fields, session.col)
    if not ty then
      error(format("group_by: unknown column '%s' in %s (columns: %s)", session.col, tostring(session),
        field_names(node.fields)), 2)
    end
    if ty ~= "timestamp" then
      error(format("group_by: %s needs a timestamp column, '%s' is %s", tostring(session), session.col, ty), 2)
    end
    for _, f in ipairs(node.fields) do
      if f[1] == "window_start" or f[1] == "window_end" then
        error(format("group_by: the input already has a column '%s'; windows add window_start and window_end", f[1]), 2)
      end
    end
    sspec = { col = c, col_name = session.col, gap = session.gap }
  end
  local wspec
  if window then
    -- the same checks as a window assignment (and the same messages)
    window_node(node, window, "group_by", 2)
    for i, f in ipairs(node.fields) do
      if f[1] == window.col then wspec = { col = i, size = window.size, slide = window.slide, start = window.start } end
    end
  end
  local specs, fields, texts = {}, {}, {}
  for i = 1, keys.n do
    if M.is_window(keys[i]) or keys[i] == session then
      specs[#specs + 1], fields[#fields + 1] = "window_start", { "window_start", "timestamp" }
      specs[#specs + 1], fields[#fields + 1] = "window_end", { "window_end", "timestamp" }
      texts[#texts + 1] = tostring(keys[i])
    else
      local e = compile(node, keys[i], "group_by", 2)
      if e:type() == "json" then error(format("group_by: cannot group by the json value %s", e:text()), 2) end
      specs[#specs + 1], fields[#fields + 1] = e, field_of_expr(e)
      texts[#texts + 1] = e:name()
    end
  end
  return setmetatable({ _input = node, _keys = specs, _key_fields = fields, _texts = texts, _window = wspec,
    _session = sspec }, Grouped)
end

local agg_kinds = "count, sum, min, max, avg, first, last, count_distinct"

-- The constant key column of a global aggregation's groups (never output).
local GLOBAL_KEY = "__tide_global"

--- Aggregate each group. `spec` is an array of aggregate expressions
-- (`"count(*) AS n"`, in order), or a table of name = expression (`{ n =
-- "count(*)", avg_s = "avg(signal)" }`, in name order), or both.
-- @treturn frame of the key columns, then one column per aggregate
function Grouped:agg(spec)
  if getmetatable(self) ~= Grouped then
    error("agg: bad self: expected a grouped frame (f:group_by(...):agg{...})", 2)
  end
  if type(spec) ~= "table" then error("agg: expected a table of aggregate expressions, got " .. type(spec), 2) end
  local input = self._input
  local items = {}
  for i, text in ipairs(spec) do items[#items + 1] = { text = text, pos = i } end
  local named = {}
  for k in pairs(spec) do
    if type(k) == "string" then named[#named + 1] = k
    elseif math.type(k) ~= "integer" or k < 1 or k > #spec then
      error("agg: keys must be names (n = \"count(*)\") or positions in an array", 2)
    end
  end
  table.sort(named)
  for _, k in ipairs(named) do items[#items + 1] = { text = spec[k], name = k } end
  if #items == 0 then error("agg: expected at least one aggregate (" .. agg_kinds .. ")", 2) end
  local specs, args, texts = {}, {}, {}
  local out_fields = {}
  for i, f in ipairs(self._key_fields) do out_fields[i] = f end
  for _, it in ipairs(items) do
    local e = compile(input, it.text, "agg", 2, true)
    local kind = e:agg()
    if not kind then
      error(format("agg: %s is not an aggregate (use %s)", e:text(), agg_kinds), 2)
    end
    local name = it.name or safe_name(e:name())
    local arg = e:arg()
    specs[#specs + 1] = { kind = kind, arg_type = arg and arg:type() or nil, name = name }
    args[#args + 1] = arg or false
    local counts = kind == "count" or kind == "count_star" or kind == "count_distinct"
    out_fields[#out_fields + 1] = { name, e:type() .. (counts and "" or "?") }
    texts[#texts + 1] = e:text() .. (name ~= e:text() and (" AS " .. name) or "")
  end
  if self._session then -- tide.session (lua/tide/session.lua) runs session windows
    local skeys, skey_fields, window_index = {}, {}, nil
    for i, k in ipairs(self._keys) do
      if k == "window_start" then window_index = window_index or i
      elseif k ~= "window_end" then
        skeys[#skeys + 1], skey_fields[#skey_fields + 1] = k, self._key_fields[i]
      end
    end
    local ss = self._session
    return new_frame(session_mod.node {
      input = input, keys = skeys, key_fields = skey_fields, col = ss.col, col_name = ss.col_name, gap = ss.gap,
      specs = specs, args = args, schema = make_schema(out_fields, "agg", 2), window_index = window_index,
      label = format("SessionWindowAggregate [%s] [%s]", concat(self._texts, ", "), concat(texts, ", ")),
    })
  end
  -- window_end is window_start + size: it is left out of the group key
  -- (one column less to hash and compare per row) and computed once on the
  -- result
  local agg_keys, agg_key_fields, raw_fields = {}, {}, {}
  if self._global then
    -- no key: every row goes into one group under a constant key, which
    -- the result leaves out
    agg_keys[1], agg_key_fields[1] = compile(input, "0", "agg", 2), { GLOBAL_KEY, "int" }
  end
  for i, k in ipairs(self._keys) do
    if k ~= "window_end" then
      agg_keys[#agg_keys + 1] = k
      agg_key_fields[#agg_key_fields + 1] = self._key_fields[i]
    end
  end
  for _, f in ipairs(agg_key_fields) do raw_fields[#raw_fields + 1] = f end
  for i = #self._key_fields + 1, #out_fields do raw_fields[#raw_fields + 1] = out_fields[i] end
  local key_schema = make_schema(agg_key_fields, "agg", 2)
  local out_schema = make_schema(out_fields, "agg", 2)
  local raw_schema = make_schema(raw_fields, "agg", 2)
  local finish_exprs -- raw result -> out_schema, when window_end is to be added or the global key dropped
  if self._global or #agg_keys < #self._keys then
    finish_exprs = {}
    for i, f in ipairs(out_fields) do
      finish_exprs[i] = compile({ schema = raw_schema }, f[1] == "window_end" and
        format("CAST(CAST(window_start AS int) + %d AS timestamp)", self._window.size) or ("`" .. f[1] .. "`"),
        "agg", 2)
    end
  end
  do -- check the aggregates against their argument types now, not when running
    local probe, msg = core.agg(key_schema, specs)
    if not probe then error("agg: " .. msg, 2) end
  end
  local window = self._window
  -- (A where or Lua filter right below runs inside the aggregation: the
  -- planner's filter fusion, tide.plan.)
  -- The event-time key, when there is one: a window over the watermarked
  -- column (its groups end at window_start + size) or that column itself.
  -- It decides which groups are final and which rows are late.
  local et = input.event_time
  local et_key
  if et and window and input.fields[window.col][1] == et then
    et_key = { name = "window_start", shift = window.size }
  elseif et then
    local c = select(2, field_type(input.fields, et))
    for i, k in ipairs(agg_keys) do
      if type(k) ~= "string" and k:column() == c then et_key = { name = agg_key_fields[i][1], shift = 0 } end
    end
  end
  -- the event-time column of the input (a fused filter's input has the
  -- same columns), for late rows
  local et_col = et and select(2, field_type(input.fields, et))
  local node = {
    op = "aggregate", input = input, schema = out_schema, static = input.static,
    label = format("Aggregate [%s] [%s]", concat(self._texts, ", "), concat(texts, ", ")),
    key_schema = key_schema, specs = specs, stateful = "aggregate",
    keys = agg_keys, args = args, window = window, finish_exprs = finish_exprs, et_key = et_key, et_col = et_col,
    global = self._global or nil,
  }
  do -- what a checkpoint's state records depend on (query.lua's fingerprint)
    local kinds = {}
    for i, sp in ipairs(specs) do kinds[i] = sp.kind .. "(" .. (sp.arg_type or "") .. ")" end
    node.state_layout = key_schema:ddl() .. " | " .. concat(kinds, ", ")
  end
  function node.due(mode) return mode ~= "complete" end
  function node.check(mode, has_watermark)
    if mode == "append" and self._global then
      return "append output mode not supported for a streaming global aggregation (no grouping key) " ..
        "(as in Spark): its one group never ends, so no row of it would ever be final; group by " ..
        "tide.window(col, ...) after f:with_watermark(col, delay), or use mode = \"update\" or \"complete\""
    end
    if mode == "append" and not (has_watermark and et_key) then
      return "append output mode not supported for a streaming aggregation without a watermark on its " ..
        "event-time column: f:with_watermark(col, delay) before group_by, and group by tide.window(col, ...) " ..
        "or col itself " ..
        "(or use mode = \"update\" or \"complete\")"
    end
  end
  return new_frame(node)
end

--- The number of rows of each group, in a column `count`.
function Grouped:count()
  if getmetatable(self) ~= Grouped then error("count: bad self: expected a grouped frame", 2) end
  return Grouped.agg(self, { "count(*) AS count" })
end

local process_spec = {
  schema = "any",
  timeout = { type = "string", values = { "none", "processing", "event_time" }, default = "none" },
  ttl = "duration",
}

--- Arbitrary stateful processing in Lua (Spark's flatMapGroupsWithState,
-- Flink's KeyedProcessFunction): per micro-batch, `fn(key, rows, state)` for
-- each key with new rows, and, after its timeout, once more with no rows;
-- it returns an array of rows of `opts.schema` (or nil). `key` is the key's
-- value (a table of column = value for several keys). See tide.stateful for
-- the state handle. Streams: append and update modes; static frames: each
-- key once, from no state.
-- @func fn function(key, rows, state) -> rows or nil
-- @tab opts `schema` (the output rows', required), `timeout` ("none", the
-- default, "processing" or "event_time"), `ttl` (a duration: a value not
-- set for that long is gone)
-- @treturn frame
function Grouped:process(fn, opts)
  if getmetatable(self) ~= Grouped then
    error("process: bad self: expected a grouped frame (f:group_by(...):process(fn, opts))", 2)
  end
  if type(fn) ~= "function" then
    error("process: bad argument #1: expected a function(key, rows, state), got " .. type(fn), 2)
  end
  local ok, o = pcall(util.check_options, opts, process_spec, "process", 1)
  if not ok then error(util.strip_position(o), 2) end
  if self._global then error("process: needs at least one key: f:group_by(col, ...):process(fn, opts)", 2) end
  if self._window or self._session then
    error("process: group by columns or expressions, not a window (keep event time in the state instead)", 2)
  end
  if o.schema == nil then error("process: option 'schema' is required (the schema of the rows fn returns)", 2) end
  local s, msg = core.schema(o.schema)
  if not s then error("process: bad schema: " .. msg, 2) end
  if o.ttl ~= nil and o.ttl <= 0 then error("process: option 'ttl' must be > 0", 2) end
  local label = format("Process [%s] <Lua function> => %s (timeout %s%s)", concat(self._texts, ", "),
    ddl_of(s:fields()), o.timeout, o.ttl and (", ttl " .. util.format_duration(o.ttl)) or "")
  return new_frame(stateful_mod.node {
    input = self._input, keys = self._keys, key_fields = self._key_fields, fn = fn, schema = s,
    timeout = o.timeout, ttl = o.ttl, label = label,
  })
end

--- A global aggregation: `f:agg{...}` is `f:group_by():agg{...}`, one
-- row over all the rows (count 0 and NULL for the other aggregates when
-- there are none). On a stream: complete and update modes (the row every
-- batch); append mode needs a window key, `group_by(tide.window(...))`.
-- @tab spec as for `Grouped:agg`
-- @treturn frame one column per aggregate
function Frame:agg(spec)
  check_frame(self, "agg")
  return Grouped.agg(Frame.group_by(self), spec)
end

-- drop_duplicates and drop_duplicates_within_watermark (SEMANTICS.md s.6):
-- the first row of each key (input order) passes whole, later rows of the
-- key are dropped. The keys are an aggregation's groups with no aggregate
-- (or, within the watermark, first(event time) as "expires_at" - delay);
-- the aggregation reports the rows that created a group.
local function dedup_node(node, cols, within, what, level)
  if cols.n == 0 then
    cols = {}
    for i, f in ipairs(node.fields) do cols[i] = f[1] end
    cols.n = #cols
  end
  local keys, key_fields, seen = {}, {}, {}
  for i = 1, cols.n do
    local c = cols[i]
    if type(c) ~= "string" then
      error(format("%s: bad argument #%d: expected a column name, got %s", what, i, type(c)), level + 1)
    end
    local ty = field_type(node.fields, c)
    if not ty then
      error(format("%s: unknown column '%s' (columns: %s)", what, c, field_names(node.fields)), level + 1)
    end
    if ty == "json" then error(format("%s: cannot compare the json column '%s'", what, c), level + 1) end
    if not seen[c] then
      seen[c] = true
      keys[#keys + 1] = compile(node, "`" .. c .. "`", what, level + 1)
      key_fields[#key_fields + 1] = field_of_expr(keys[#keys], c)
    end
  end
  local key_schema = make_schema(key_fields, what, level + 1)
  local et, delay = node.event_time, node.event_delay
  local et_col = et and select(2, field_type(node.fields, et))
  local specs, args = {}, {}
  if within and et then
    specs[1] = { kind = "first", arg_type = "timestamp", name = "__tide_expires_at" }
    args[1] = compile(node, "`" .. et .. "`", what, level + 1)
  end
  local et_is_key = et and seen[et]
  local names = {}
  for i, f in ipairs(key_fields) do names[i] = f[1] end
  local dn = {
    op = "dedup", input = node, schema = node.schema, static = node.static, stateful = "dedup",
    label = format("%s [%s]", within and "DeduplicateWithinWatermark" or "Deduplicate", concat(names, ", ")),
    event_time = et, event_delay = delay,
    state_layout = key_schema:ddl() .. (within and et and " | first(timestamp)" or ""),
    keys = keys, args = args, specs = specs, key_schema = key_schema, what = what, within = within,
    et_col = et_col, et_is_key = et_is_key,
  }
  function dn.due() return true end
  function dn.check(_, has_watermark)
    if within and not (has_watermark and et) then
      return what .. " needs a watermark: call with_watermark(col, delay) before it"
    end
  end
  return new_frame(dn)
end

--- Streaming (and static) deduplication: keep the first row of each
-- combination of `cols` (all columns when none are given); later rows
-- with the same values, in this batch or any later one, are dropped. With
-- a watermark and the event-time column among `cols`, a key is forgotten
-- once the watermark passes its time; otherwise keys are kept forever.
function Frame:drop_duplicates(...)
  local node = check_frame(self, "drop_duplicates")
  return dedup_node(node, table.pack(...), false, "drop_duplicates", 2)
end

--- Deduplication within the watermark: a key is a duplicate until the
-- watermark passes the event time of its first row plus the watermark's
-- delay; after that the same key is new again. Streams only, after
-- with_watermark (as in Spark).
function Frame:drop_duplicates_within_watermark(...)
  local node = check_frame(self, "drop_duplicates_within_watermark")
  if node.static then
    error("drop_duplicates_within_watermark: not supported on static frames (as in Spark); use drop_duplicates", 2)
  end
  return dedup_node(node, table.pack(...), true, "drop_duplicates_within_watermark", 2)
end

--- The distinct rows: `drop_duplicates()` over every column, as Spark's
-- `distinct()` is. On a stream it is a streaming deduplication: with a
-- watermark its keys (the event-time column among them) are forgotten
-- once the watermark passes their time; without one, kept forever.
function Frame:distinct()
  local node = check_frame(self, "distinct")
  return dedup_node(node, { n = 0 }, false, "distinct", 2)
end

--- Join with a static frame on columns of the same name (and comparable
-- types) on both sides; two streams join as tide.stream_join describes
-- (`on` also a condition, `how` also right, full and left_semi). `how` is `"inner"` (default) or `"left"` (left
-- outer: left rows without a match get NULLs on the right). The result has
-- the left columns, then the right ones but the keys.
function Frame:join(other, on, how)
  local node = check_frame(self, "join")
  if getmetatable(other) ~= Frame then error("join: bad argument #1: expected a frame, got " .. type(other), 2) end
  local right = other._node
  if not right.static and not node.static then -- both streams: tide.stream_join
    return new_frame(stream_join.node(node, right, on, how, 2))
  end
  if not right.static then
    error("join: a stream joins a static frame as its left side: put the stream on the left " ..
      "(stream:join(static, on, how))", 2)
  end
  if type(on) == "string" and on:find("[%s=<>]") then
    error("join: a condition for on is for joins of two streams; with a static side, join on columns named alike", 2)
  end
  if type(on) == "string" then on = { on } end
  if type(on) ~= "table" or #on == 0 then
    error("join: bad argument #2: expected a column name or an array of column names", 2)
  end
  how = how or "inner"
  if how ~= "inner" and how ~= "left" and how ~= "left_outer" then
    error(format("join: bad argument #3: how must be inner or left, got %s",
      type(how) == "string" and ("'" .. how .. "'") or type(how)), 2)
  end
  local outer = how ~= "inner"
  local function index(fields, name)
    for i, f in ipairs(fields) do
      if f[1] == name then return i, f[2]:gsub("%?$", "") end
    end
  end
  local lk, rk, is_key = {}, {}, {}
  for i, name in ipairs(on) do
    local li, lt = index(node.fields, name)
    local ri, rt = index(right.fields, name)
    if not li then
      error(format("join: unknown column '%s' on the left (columns: %s)", name, field_names(node.fields)), 2)
    end
    if not ri then
      error(format("join: unknown column '%s' on the right (columns: %s)", name, field_names(right.fields)), 2)
    end
    if lt ~= rt then error(format("join: column '%s' is %s on the left and %s on the right", name, lt, rt), 2) end
    if lt == "json" or lt == "double" then error(format("join: cannot join on the %s column '%s'", lt, name), 2) end
    lk[i], rk[i], is_key[name] = li, ri, true
  end
  local fields, rcols = {}, {}
  for i, f in ipairs(node.fields) do fields[i] = f end
  local left_names = {}
  for _, f in ipairs(node.fields) do left_names[f[1]] = true end
  for i, f in ipairs(right.fields) do
    if not is_key[f[1]] then
      if left_names[f[1]] then
        error(format("join: column '%s' is on both sides; rename one first (select ... AS ...)", f[1]), 2)
      end
      local ty = f[2]
      if outer and ty:sub(-1) ~= "?" then ty = ty .. "?" end
      fields[#fields + 1] = { f[1], ty }
      rcols[#rcols + 1] = i
    end
  end
  local schema = make_schema(fields, "join", 2)
  local jn = {
    op = "join", input = node, right = right, schema = schema, static = node.static,
    label = format("Join %s on [%s]", outer and "left" or "inner", concat(on, ", ")),
    lk = lk, rk = rk, outer = outer, rcols = rcols,
  }
  return new_frame(jn)
end

--- The rows of both frames (same column names and types, in order).
function Frame:union(other)
  local node = check_frame(self, "union")
  if getmetatable(other) ~= Frame then error("union: bad argument #1: expected a frame, got " .. type(other), 2) end
  local o = other._node
  local ok = #node.fields == #o.fields
  for i = 1, #node.fields do
    ok = ok and o.fields[i] and node.fields[i][1] == o.fields[i][1] and
      node.fields[i][2]:gsub("%?$", "") == o.fields[i][2]:gsub("%?$", "")
  end
  if not ok then
    error(format("union: the frames have different columns: (%s) and (%s)", ddl_of(node.fields), ddl_of(o.fields)), 2)
  end
  local fields = {}
  for i, f in ipairs(node.fields) do
    local nullable = f[2]:sub(-1) == "?" or o.fields[i][2]:sub(-1) == "?"
    fields[i] = { f[1], f[2]:gsub("%?$", "") .. (nullable and "?" or "") }
  end
  local schema = make_schema(fields, "union", 2)
  local un = { op = "union", inputs = { node, o }, schema = schema, static = node.static and o.static, label = "Union" }
  return new_frame(un)
end

local function streaming_refused(node, what, level)
  if not node.static then
    error(format("%s: only for static frames (a stream runs with write_stream)", what), level + 1)
  end
end

-- order_by and limit: static frames, or a streaming frame above its
-- aggregation (complete mode only: the analyzer checks the mode).
local function static_only(node, what, level)
  if node.static then return end
  local n = node
  while n and not n.stateful do n = n.input end
  if not (n and n.stateful ~= "dedup") then
    error(format("%s: on a streaming frame, only after an aggregation, in complete mode (as in Spark)", what),
      level + 1)
  end
end

--- Sort the rows (static frames). Keys are expressions with an optional
-- `ASC`/`DESC` and `NULLS FIRST`/`NULLS LAST` (default: ascending, NULLs
-- first; descending, NULLs last).
function Frame:order_by(...)
  local node = check_frame(self, "order_by")
  static_only(node, "order_by", 2)
  local keys = table.pack(...)
  if keys.n == 0 then error("order_by: expected at least one key", 2) end
  local exprs, sk, texts = {}, {}, {}
  for i, f in ipairs(node.fields) do exprs[i] = compile(node, "`" .. f[1] .. "`", "order_by", 2) end
  local nf = #node.fields
  for i = 1, keys.n do
    local k = keys[i]
    if type(k) ~= "string" then error(format("order_by: key %d must be an expression string", i), 2) end
    local text, desc, nulls = k, false, nil
    local function strip(pat)
      local a = text:match("^(.-)%s+" .. pat .. "%s*$")
      if a then text = a return true end
    end
    if strip("[Nn][Uu][Ll][Ll][Ss]%s+[Ff][Ii][Rr][Ss][Tt]") then nulls = true
    elseif strip("[Nn][Uu][Ll][Ll][Ss]%s+[Ll][Aa][Ss][Tt]") then nulls = false end
    if strip("[Dd][Ee][Ss][Cc]") then desc = true else strip("[Aa][Ss][Cc]") end
    if nulls == nil then nulls = not desc end
    local e = compile(node, text, "order_by", 2)
    if e:type() == "json" then error(format("order_by: cannot order by the json value %s", e:text()), 2) end
    local col = e:column()
    if not col then
      exprs[#exprs + 1] = e
      col = #exprs
    end
    sk[i] = { col = col, desc = desc, nulls_first = nulls }
    texts[i] = e:text() .. (desc and " DESC" or " ASC") .. (nulls and " NULLS FIRST" or " NULLS LAST")
  end
  local wide_fields = {}
  for i, e in ipairs(exprs) do wide_fields[i] = field_of_expr(e, i <= nf and node.fields[i][1] or ("_sort" .. i)) end
  local wide = make_schema(wide_fields, "order_by", 2)
  local back = {}
  for i = 1, nf do back[i] = compile({ schema = wide }, "`" .. node.fields[i][1] .. "`", "order_by", 2) end
  local sn = { op = "sort", input = node, schema = node.schema, static = node.static,
    label = "Sort [" .. concat(texts, ", ") .. "]", sort_exprs = exprs, wide = wide, sort_keys = sk, back = back }
  return new_frame(sn)
end

--- The first n rows (static frames).
function Frame:limit(n)
  local node = check_frame(self, "limit")
  static_only(node, "limit", 2)
  if math.type(n) ~= "integer" or n < 0 then
    error("limit: bad argument #1: expected an integer >= 0, got " .. tostring(n), 2)
  end
  local ln = { op = "limit", input = node, schema = node.schema, static = node.static, label = "Limit " .. n, n = n }
  return new_frame(ln)
end

-- ------------------------------------------------------------------------
-- Results
-- ------------------------------------------------------------------------

--- The frame's schema, in array form.
function Frame:schema()
  return check_frame(self, "schema").fields
end

--- The plan as an indented tree, each node with its output schema.
-- @treturn string
function Frame:explain()
  local node = check_frame(self, "explain")
  local lines = {}
  local function walk(n, depth)
    lines[#lines + 1] = string.rep("  ", depth) .. (depth > 0 and "+- " or "") .. n.label .. "  => " ..
      ddl_of(n.fields or n.schema:fields())
    if n.inputs then
      for _, c in ipairs(n.inputs) do walk(c, depth + 1) end
    else
      if n.input then walk(n.input, depth + 1) end
      if n.right then walk(n.right, depth + 1) end
    end
  end
  walk(node, 0)
  return concat(lines, "\n")
end

--- Iterate the batches of a static frame (tide.Batch objects).
function Frame:batches()
  local node = check_frame(self, "batches")
  streaming_refused(node, "batches", 2)
  return run(node)
end

--- Run a static frame and return its rows, an array of tables.
function Frame:collect()
  local node = check_frame(self, "collect")
  streaming_refused(node, "collect", 2)
  local out = {}
  for b in run(node) do
    for _, r in ipairs(b:rows()) do out[#out + 1] = r end
  end
  return out
end

-- Refuse a result method on a streaming frame, saying what to use.
local function rows_refused(node, what, instead, level)
  if not node.static then
    error(format("%s: a streaming frame has no %s to return (it does not end): %s", what,
      what == "count" and "count" or "rows", instead), level + 1)
  end
end

local STREAM_ROWS = "write it to a sink with write_stream (the memory sink's rows are then a static frame, " ..
  "tide.table(name); the console sink prints each batch)"

--- The number of rows of a static frame (Spark's `count()`). A stream
-- has none: its running count is the aggregation `f:group_by():count()`,
-- written with write_stream in complete or update mode.
-- @treturn int
function Frame:count()
  local node = check_frame(self, "count")
  rows_refused(node, "count", "for a running count, write f:group_by():count() (or f:agg{ n = \"count(*)\" }) " ..
    "with write_stream in complete or update mode", 2)
  return Frame.agg(self, { "count(*) AS count" }):collect()[1].count
end

--- The first n rows of a static frame, an array (Spark's `head(n)`); with
-- no n, the first row, or nil when there is none (Spark's `head()`).
-- @int[opt] n >= 0
function Frame:head(n)
  local node = check_frame(self, "head")
  rows_refused(node, "head", STREAM_ROWS, 2)
  if n == nil then return Frame.limit(self, 1):collect()[1] end
  if math.type(n) ~= "integer" or n < 0 then
    error("head: bad argument #1: expected an integer >= 0, got " .. (math.type(n) and tostring(n) or type(n)), 2)
  end
  return Frame.limit(self, n):collect()
end

--- The column names, in order.
-- @treturn {string,...}
function Frame:columns()
  local node = check_frame(self, "columns")
  local out = {}
  for i, f in ipairs(node.fields) do out[i] = f[1] end
  return out
end

--- Print the schema as Spark's printSchema does, a tree:
--
--    root
--     |-- ts: timestamp (nullable = false)
--     |-- signal: int (nullable = true)
--
-- with tide's type names (API.md s.1).
function Frame:print_schema()
  local node = check_frame(self, "print_schema")
  local lines = { "root" }
  for _, f in ipairs(node.fields) do
    local ty = f[2]:gsub("%?$", "")
    lines[#lines + 1] = format(" |-- %s: %s (nullable = %s)", f[1], ty, tostring(f[2]:sub(-1) == "?"))
  end
  io.write(concat(lines, "\n"), "\n")
end

-- A double as Java's Double.toString writes it (Spark's cast to string):
-- the shortest digits that read back the same, "2.0" for integral values,
-- "1.0E7" style outside [1e-3, 1e7).
local function java_double(x)
  if x ~= x then return "NaN" end
  if x == math.huge then return "Infinity" elseif x == -math.huge then return "-Infinity" end
  local ax = math.abs(x)
  if x == 0 or (ax >= 1e-3 and ax < 1e7) then
    local s
    for p = 15, 17 do
      s = format("%." .. p .. "g", x)
      if tonumber(s) == x then break end
    end
    if not s:find(".", 1, true) then s = s .. ".0" end
    return s
  end
  local s
  for p = 14, 16 do
    s = format("%." .. p .. "e", x)
    if tonumber(s) == x then break end
  end
  local mant, exp = s:match("^(-?[%d.]+)e([-+]%d+)$")
  mant = mant:gsub("0+$", ""):gsub("%.$", ".0")
  return mant .. "E" .. tostring(math.tointeger(tonumber(exp)))
end

-- A value of type ty as describe's string cell.
local function describe_cell(v, ty)
  if v == nil then return nil end
  if ty == "double" then return java_double(v) end
  if ty == "timestamp" then return core.ts_format(v) end
  return tostring(v)
end

local DESCRIBE_TYPES = { int = true, double = true, string = true, bool = true, timestamp = true }

--- Summary statistics of a static frame's columns, as Spark's
-- `describe(cols...)`: a static frame with a `summary` column (count,
-- mean, stddev, min, max) and one string column per described column.
-- count counts the non-NULL values; mean and stddev (the sample standard
-- deviation, NULL for fewer than two values) are for numbers only; min
-- and max for every described type. With no columns named: every number
-- and string column (Spark's default).
-- @param ... column names
-- @treturn frame `summary string, <col> string?, ...`
function Frame:describe(...)
  local node = check_frame(self, "describe")
  rows_refused(node, "describe", STREAM_ROWS, 2)
  local cols = table.pack(...)
  local chosen = {}
  if cols.n == 0 then
    for _, f in ipairs(node.fields) do
      local ty = f[2]:gsub("%?$", "")
      if ty == "int" or ty == "double" or ty == "string" then chosen[#chosen + 1] = { f[1], ty } end
    end
  else
    for i = 1, cols.n do
      local c = cols[i]
      if type(c) ~= "string" then
        error(format("describe: bad argument #%d: expected a column name, got %s", i, type(c)), 2)
      end
      local ty = field_type(node.fields, c)
      if not ty then error(format("describe: unknown column '%s' (columns: %s)", c, field_names(node.fields)), 2) end
      if not DESCRIBE_TYPES[ty] then
        error(format("describe: cannot describe the %s column '%s' (types: int, double, string, bool, timestamp)",
          ty, c), 2)
      end
      chosen[#chosen + 1] = { c, ty }
    end
  end
  local out_fields = { { "summary", "string" } }
  for _, c in ipairs(chosen) do
    if c[1] == "summary" then
      error("describe: the result's first column is 'summary'; rename the column 'summary' first " ..
        "(f:rename{ summary = \"...\" })", 2)
    end
    out_fields[#out_fields + 1] = { c[1], "string?" }
  end
  -- pass 1: count, mean, min, max; pass 2: the squared deviations from the mean
  local spec = { "count(*) AS __n" }
  for i, c in ipairs(chosen) do
    local q = "`" .. c[1] .. "`"
    spec[#spec + 1] = format("count(%s) AS c%d", q, i)
    spec[#spec + 1] = format("min(%s) AS lo%d", q, i)
    spec[#spec + 1] = format("max(%s) AS hi%d", q, i)
    if c[2] == "int" or c[2] == "double" then spec[#spec + 1] = format("avg(%s) AS m%d", q, i) end
  end
  local first = Frame.agg(self, spec):collect()[1]
  local spec2 = {}
  for i, c in ipairs(chosen) do
    local m = first["m" .. i]
    if m and first["c" .. i] >= 2 and m == m and math.abs(m) ~= math.huge then
      spec2[#spec2 + 1] = format("sum((CAST(`%s` AS double) - %.17g) * (CAST(`%s` AS double) - %.17g)) AS v%d",
        c[1], m, c[1], m, i)
    end
  end
  local second = #spec2 > 0 and Frame.agg(self, spec2):collect()[1] or {}
  local rows = { { summary = "count" }, { summary = "mean" }, { summary = "stddev" }, { summary = "min" },
    { summary = "max" } }
  for i, c in ipairs(chosen) do
    local name, n = c[1], first["c" .. i]
    rows[1][name] = tostring(n)
    rows[2][name] = first["m" .. i] and java_double(first["m" .. i]) or nil
    local v = second["v" .. i]
    rows[3][name] = v and java_double(math.sqrt(v / (n - 1))) or nil
    rows[4][name] = describe_cell(first["lo" .. i], c[2])
    rows[5][name] = describe_cell(first["hi" .. i], c[2])
  end
  return M.from_rows(rows, out_fields)
end

-- Text of one cell, as show() prints it.
local function cell(v, ty)
  if v == nil then return "null" end
  if ty == "timestamp" then return core.ts_format(v) end
  if ty == "json" then
    local ok, s = pcall(cjson.encode, v)
    return ok and s or tostring(v)
  end
  if ty == "double" and math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 1e15 then
    return format("%.1f", v)
  end
  return tostring(v)
end

--- Format rows as an aligned text table, as Spark's show does: columns at
-- least 3 wide; with `truncate` (default true) cells are right aligned and
-- cut to 17 characters and "..." when longer than 20 (timestamps, in full
-- ISO-8601, never are); without, they are left aligned and whole.
-- @tab fields array form
-- @tab rows
-- @int[opt] total how many there were in all (for the "only showing" line)
-- @bool[opt=true] truncate cut long cells
function M.format_table(fields, rows, total, truncate)
  if truncate == nil then truncate = true end
  local header, body, types = {}, {}, {}
  for i, f in ipairs(fields) do
    header[i] = f[1]
    types[i] = f[2]:gsub("%?$", "")
  end
  for r, row in ipairs(rows) do
    body[r] = {}
    for i, f in ipairs(fields) do
      local s = cell(row[f[1]], types[i])
      -- a timestamp is never cut: 2026-11-21T12:00:05.250Z is 24 characters
      if truncate and types[i] ~= "timestamp" and (utf8.len(s) or #s) > 20 then
        s = s:sub(1, utf8.offset(s, 18) and utf8.offset(s, 18) - 1 or 17) .. "..."
      end
      body[r][i] = s
    end
  end
  -- right-aligned when truncating, else left (as Spark)
  local out = util.text_table(header, body, { border = true, min_width = 3, right = function() return truncate end })
  if total and total > #rows then
    out[#out + 1] = format("only showing top %d row%s", #rows, #rows == 1 and "" or "s")
  end
  return concat(out, "\n") .. "\n"
end

--- Print the first n rows (default 20) of a static frame as a table.
-- @int[opt=20] n
-- @bool[opt=true] truncate cut cells longer than 20 characters
function Frame:show(n, truncate)
  local node = check_frame(self, "show")
  streaming_refused(node, "show", 2)
  n = n or 20
  if math.type(n) ~= "integer" or n < 0 then error("show: bad argument #1: expected an integer >= 0", 2) end
  local rows, more = {}, false
  for b in run(node) do
    for _, r in ipairs(b:rows()) do
      if #rows < n then rows[#rows + 1] = r else more = true end
    end
    if more then break end
  end
  io.write(M.format_table(node.fields, rows, more and (n + 1) or #rows, truncate))
end

--- Write this static frame's rows to a sink that takes static frames:
-- `file` (one new file in a directory), `topic` (one atomic append),
-- `memory` (a table for tide.table), `console` (printed as show does),
-- `foreach` (a function per row), `postgres` (one transaction); see each
-- connector's `write`.
-- @string sink the sink's name
-- @tab opts the sink's options
-- @return the number of rows written
function Frame:write(sink, opts)
  local node = check_frame(self, "write")
  streaming_refused(node, "write", 2)
  if not engine.write then error("write: tide is not loaded (require \"tide\")", 2) end
  local n = engine.write(self, sink, opts, 2)
  return n
end

--- Start a streaming query writing this frame to `sink` (a sink name, a
-- Lua sink from tide.sink, or a function(batch_id, rows)); see tide.query.
-- @return a started query
function Frame:write_stream(sink, opts)
  check_frame(self, "write_stream")
  if not engine.start then error("write_stream: tide.query is not loaded (require \"tide\")", 2) end
  return engine.start(self, sink, opts, 2)
end

function Frame:__tostring()
  local node = self._node
  return format("tide frame [%s]%s", ddl_of(node.fields), node.static and "" or " (streaming)")
end

M.Frame, M.Grouped, M.Window = Frame, Grouped, Window

return M
