--- The REPL: `tide` with no arguments.
--
-- A read-eval-print loop on the process's one libuv loop (tide.runtime), so
-- that streaming queries started at the prompt keep running while the user
-- types. Structure:
--
--  * Input: a tide.Input on stdin. On a terminal (stdin and stdout both
--    terminals) it is in raw mode and a line editor (below) turns keys into
--    lines; otherwise stdin's lines are read as they come, no prompt drawn.
--  * The loop: `main` alternates between running the libuv loop (one
--    iteration at a time, while waiting for a line) and evaluating the
--    lines the input callback queued. User code never runs inside a loop
--    callback, so it may itself run the loop (`q:await()`,
--    `q:process_all_available()`, `tide.run()`).
--  * While reading, the prompt and the line being typed are the terminal's
--    owner (runtime.set_terminal_owner): the console sink and `print` write
--    through runtime.write, which clears the line, writes, and draws it
--    again. While a line is evaluated, the terminal is back in its normal
--    mode, stdin is paused (type-ahead waits in the kernel) and there is no
--    owner, so user code writes as in any program.
--
-- Invariant: the terminal is in raw mode only while `main` waits for input;
-- every way out of `main` (Ctrl-D, `.exit`, end of input, SIGTERM, SIGHUP,
-- an error of the REPL itself) closes the input reader, which restores the
-- terminal's mode (and loop.c restores it at exit() too).
--
-- @module tide.repl

local core = require "tide.core"
local runtime = require "tide.runtime"

local M = {}

local format, concat = string.format, table.concat

M.HISTORY_MAX = 1000

-- ------------------------------------------------------------------------
-- Printing values
-- ------------------------------------------------------------------------

local MAX_DEPTH, MAX_ITEMS, LINE = 4, 50, 78

local function is_ident(k)
  return type(k) == "string" and k:match("^[%a_][%w_]*$") ~= nil and load("local " .. k) ~= nil
end

local TYPE_ORDER = { number = 1, string = 2, boolean = 3 }

-- Keys in a stable order: numbers, then strings, then the others by text.
local function sorted_keys(t, skip)
  local keys = {}
  for k in pairs(t) do
    if not (math.type(k) == "integer" and k >= 1 and k <= skip) then keys[#keys + 1] = k end
  end
  table.sort(keys, function(a, b)
    local ta, tb = TYPE_ORDER[type(a)] or 4, TYPE_ORDER[type(b)] or 4
    if ta ~= tb then return ta < tb end
    if ta <= 2 then return a < b end
    return tostring(a) < tostring(b)
  end)
  return keys
end

local function scalar(v)
  if type(v) == "string" then return (format("%q", v):gsub("\\\n", "\\n")) end
  return tostring(v)
end

--- A table as readable text: nested, keys sorted, at most MAX_DEPTH
-- levels and MAX_ITEMS entries a table, a table seen on the way down
-- marked `<cycle>`; one line when it fits, indented lines otherwise.
function M.dump(v)
  local function dump(x, depth, path)
    if type(x) ~= "table" then return scalar(x) end
    local mt = getmetatable(x)
    if mt and mt.__tostring then return tostring(x) end
    if path[x] then return "<cycle>" end
    if depth >= MAX_DEPTH then return "{...}" end
    path[x] = true
    local parts, n = {}, #x
    local shown = 0
    for i = 1, n do
      if shown >= MAX_ITEMS then break end
      parts[#parts + 1] = dump(x[i], depth + 1, path)
      shown = shown + 1
    end
    local keys = sorted_keys(x, n)
    for _, k in ipairs(keys) do
      if shown >= MAX_ITEMS then break end
      local key = is_ident(k) and k or "[" .. dump(k, MAX_DEPTH, path) .. "]"
      parts[#parts + 1] = key .. " = " .. dump(x[k], depth + 1, path)
      shown = shown + 1
    end
    local total = n + #keys
    if total > shown then parts[#parts + 1] = format("... (%d more)", total - shown) end
    path[x] = nil
    if #parts == 0 then return "{}" end
    local one = "{ " .. concat(parts, ", ") .. " }"
    if #one + depth * 2 <= LINE and not one:find("\n") then return one end
    local pad = string.rep("  ", depth + 1)
    return "{\n" .. pad .. concat(parts, ",\n" .. pad) .. "\n" .. string.rep("  ", depth) .. "}"
  end
  return dump(v, 0, {})
end

-- A schema in array form, as Frame:schema() and memory streams return it.
local function is_fields(v)
  if type(v) ~= "table" or getmetatable(v) or #v == 0 then return false end
  for k, f in pairs(v) do
    if math.type(k) ~= "integer" or type(f) ~= "table" or type(f[1]) ~= "string" or type(f[2]) ~= "string" then
      return false
    end
  end
  return true
end

local function fields_ddl(fields)
  local out = {}
  for i, f in ipairs(fields) do out[i] = f[1] .. " " .. f[2] end
  return concat(out, ", ")
end

--- The status line of a query: name (or id), active or how it ended, the
-- last batch, input rate and watermark.
function M.query_line(q)
  local p = q:last_progress()
  local parts = { format("query %s", q:name() or q:id()) }
  if q:name() then parts[#parts + 1] = format("(id %s)", q:id()) end
  parts[#parts + 1] = q:is_active() and "active" or ("stopped: " .. tostring(q:status().message))
  if p then
    parts[#parts + 1] = format("batch %d", p.batch_id)
    parts[#parts + 1] = format("%.1f rows/s in", p.input_rows_per_second or 0)
  else
    parts[#parts + 1] = "no batch yet"
  end
  local wm = q:watermark()
  if math.type(wm) == "integer" and wm > 0 then parts[#parts + 1] = "watermark " .. core.ts_format(wm) end
  return concat(parts, "  ")
end

-- Text of one value at the prompt; frames print themselves (show) and
-- return nil.
local function render(v)
  local frame = require "tide.frame"
  local query = require "tide.query"
  local mt = getmetatable(v)
  if mt == frame.Frame then
    local static = v._node and v._node.static
    if static then
      local ok, err = pcall(v.show, v)
      if not ok then return "error: " .. tostring(err) end
      return nil
    end
    return tostring(v)
  end
  if mt == query.Query then return M.query_line(v) end
  if type(v) == "userdata" and mt and mt.__name == "tide.Schema" then return v:ddl() end
  if type(v) == "string" then return v end
  if type(v) == "table" and not (mt and mt.__tostring) then
    if type(v.ddl) == "string" and type(v.fields) == "table" then
      return (v.version and format("version %d: ", v.version) or "") .. v.ddl
    end
    if is_fields(v) then return fields_ddl(v) end
    return M.dump(v)
  end
  return tostring(v)
end

--- Print the values of an evaluation, tab separated, through write.
function M.print_values(write, n, ...)
  if n == 0 then return end
  local out = {}
  for i = 1, n do
    local s = render((select(i, ...)))
    if s then out[#out + 1] = s end
  end
  if #out > 0 then write(concat(out, "\t") .. "\n") end
end

-- ------------------------------------------------------------------------
-- Evaluating
-- ------------------------------------------------------------------------

-- The traceback of an error in user code, without the REPL's frames.
local function user_traceback(msg)
  if type(msg) ~= "string" then
    local mt = getmetatable(msg)
    if mt and mt.__tostring then
      msg = tostring(msg)
    else
      return format("(error object is a %s value)", type(msg))
    end
  end
  local tb = debug.traceback(msg, 2)
  local lines, out = {}, {}
  for l in (tb .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = l end
  for _, l in ipairs(lines) do
    if l:find("[C]: in function 'xpcall'", 1, true) or l:find("tide/repl.lua", 1, true) then break end
    out[#out + 1] = l
  end
  -- The tail call of `return <expression>` (as in lua's REPL) says nothing.
  if out[#out] and out[#out]:find("^%s+%(%.%.%.tail calls%.%.%.%)$") then out[#out] = nil end
  if out[#out] == "stack traceback:" then out[#out] = nil end
  -- Only the message when nothing of the user's is on the stack.
  if #out >= 2 and out[#out]:find("^%s+%[C%]: in %?$") then out[#out] = nil end
  if out[#out] == "stack traceback:" then out[#out] = nil end
  return concat(out, "\n")
end

--- Compile a chunk the way lua's REPL does: first as `return <chunk>` (an
-- expression whose values print), then as statements.
-- @return function, or nil and "incomplete" (the chunk continues on the
-- next line), or nil and the syntax error
function M.compile(chunk, env)
  local fn = load("return " .. chunk, "=stdin", "t", env)
  if fn then return fn end
  local err
  fn, err = load(chunk, "=stdin", "t", env)
  if fn then return fn end
  if err:sub(-5) == "<eof>" then return nil, "incomplete" end
  return nil, err
end

-- ------------------------------------------------------------------------
-- Help
-- ------------------------------------------------------------------------

M.COMMANDS = {
  { ".help", "this help" },
  { ".topics", "the default store's topics, with their records" },
  { ".schema TOPIC", "a topic's schema (DDL), version and compatibility" },
  { ".queries", "the streaming queries that run, one status line each" },
  { ".ui [[HOST:]PORT]", "serve the dashboard and /metrics (default 127.0.0.1:4040); prints its URL" },
  { ".exit", "stop the queries (each committed) and leave (or Ctrl-D)" },
}

M.HELP = [[
The tide REPL: Lua 5.4 with `tide` loaded and `db`, the default store.
An expression prints its value (a frame as a table, a query as its status
line); a statement runs. Queries run in the background while you type.

Commands:
%s
API (see the guide and `make doc` for the rest):
  tide.memory_stream(ddl)           a stream you add rows to: ms:add{...}, ms:frame()
  tide.read_stream(kind, opts)      a streaming frame: "file", "socket", "rate", "topic"
  tide.read(kind, opts)             a static frame over files
  tide.from_rows(rows [, ddl])      a static frame over Lua rows
  tide.table(name)                  the rows of a memory sink, as a static frame
  frame:where(expr) :select(...)    filter, project (SQL expressions or Lua functions)
  frame:group_by(...):count()       aggregate; :agg{...} for sum, avg, min, max
  frame:with_watermark(col, delay)  event time; tide.window(col, size [, slide])
  frame:show([n])                   print a static frame's first rows
  frame:write_stream(sink, opts)    start a query: "console", "memory", "file", "topic"
  tide.queries()                    the active queries; q:stop(), q:await()
  q:last_progress()                 the last batch's progress report
  db:topics(), db:topic(name)       the store's topics; db:create_topic(name, opts)
  db:read(topic), db:read_stream(t) frames over a topic

Keys: Left/Right, Home/End, Ctrl-A/E/B/F move; Backspace/Delete, Ctrl-K/U/W
delete; Up/Down history; Ctrl-L clears the screen; Ctrl-C clears the line;
Ctrl-D on an empty line leaves.
]]

local function help_text()
  local lines = {}
  for _, c in ipairs(M.COMMANDS) do lines[#lines + 1] = format("  %-16s  %s", c[1], c[2]) end
  return format(M.HELP, concat(lines, "\n") .. "\n")
end

local function known_commands()
  local names = {}
  for _, c in ipairs(M.COMMANDS) do names[#names + 1] = c[1] end
  return concat(names, ", ")
end

-- ------------------------------------------------------------------------
-- History
-- ------------------------------------------------------------------------

local function history_path()
  local p = os.getenv("TIDE_HISTORY")
  if p and p ~= "" then return p end
  local home = os.getenv("HOME")
  if home and home ~= "" then return home .. "/.tide_history" end
  return nil
end

local function history_load(path)
  local list = {}
  local f = path and io.open(path, "r")
  if not f then return list end
  for l in f:lines() do
    if l ~= "" then list[#list + 1] = l end
  end
  f:close()
  if #list > M.HISTORY_MAX then list = table.move(list, #list - M.HISTORY_MAX + 1, #list, 1, {}) end
  return list
end

-- The file is appended to line by line (nothing is lost if the process is
-- killed) and rewritten with the last HISTORY_MAX lines when it grew
-- past twice that.
local function history_add(h, line)
  if line == "" or line:find("^%s+$") or h.list[#h.list] == line then return end
  h.list[#h.list + 1] = line
  if #h.list > M.HISTORY_MAX then table.remove(h.list, 1) end
  if not h.path then return end
  local f = io.open(h.path, "a")
  if not f then return end
  f:write(line, "\n")
  f:close()
  h.appended = h.appended + 1
  if h.appended > M.HISTORY_MAX then
    f = io.open(h.path, "w")
    if f then
      f:write(concat(h.list, "\n"), "\n")
      f:close()
    end
    h.appended = 0
  end
end

-- ------------------------------------------------------------------------
-- The line editor
-- ------------------------------------------------------------------------

-- An editor holds the line as an array of UTF-8 characters and the cursor
-- as the number of characters before it; it draws prompt and line on one
-- terminal row, scrolled sideways when longer than the terminal is wide.
local Editor = {}
Editor.__index = Editor

local function new_editor(out, width, history)
  return setmetatable({ out = out, width = width, history = history, chars = {}, pos = 0, prompt = "> ",
    hidx = nil, saved = nil, pending = "" }, Editor)
end

function Editor:text() return concat(self.chars) end

function Editor:set_text(s)
  self.chars = {}
  for _, c in utf8.codes(s, true) do self.chars[#self.chars + 1] = utf8.char(c) end
  self.pos = #self.chars
end

function Editor:clear_line() self.out("\r\27[K") end

function Editor:draw()
  local cols = math.max(self.width() or 80, 10)
  local plen = utf8.len(self.prompt) or #self.prompt
  local room = math.max(cols - plen - 1, 1)
  -- The visible slice keeps the cursor on screen.
  local first = 1
  if self.pos >= room then first = self.pos - room + 2 end
  local last = math.min(#self.chars, first + room - 1)
  local shown = concat(self.chars, "", first, last)
  local col = plen + (self.pos - first + 1)
  self.out("\r" .. self.prompt .. shown .. "\27[K\r" .. (col > 0 and format("\27[%dC", col) or ""))
end

function Editor:reset(prompt)
  self.chars, self.pos, self.hidx, self.saved = {}, 0, nil, nil
  self.prompt = prompt
end

function Editor:insert(s)
  for _, c in utf8.codes(s, true) do
    self.pos = self.pos + 1
    table.insert(self.chars, self.pos, utf8.char(c))
  end
end

function Editor:delete_range(from, to) -- characters from..to (1-based), cursor to from-1
  for _ = from, to do table.remove(self.chars, from) end
  self.pos = from - 1
end

function Editor:history_move(d)
  local list = self.history.list
  if #list == 0 then return end
  local i = self.hidx or (#list + 1)
  local j = i + d
  if j < 1 or j > #list + 1 then return end
  if self.hidx == nil then self.saved = self:text() end
  self.hidx = j
  if j == #list + 1 then
    self:set_text(self.saved or "")
    self.hidx = nil
  else
    self:set_text(list[j])
  end
end

local function is_space(c) return c == " " or c == "\t" end

-- Keys by their byte sequences.
local KEYS = {
  ["\1"] = "home", ["\5"] = "end", ["\2"] = "left", ["\6"] = "right", ["\8"] = "backspace",
  ["\127"] = "backspace", ["\4"] = "ctrl-d", ["\3"] = "ctrl-c", ["\11"] = "kill-end", ["\21"] = "kill-start",
  ["\23"] = "kill-word", ["\12"] = "clear-screen", ["\r"] = "enter", ["\n"] = "enter", ["\16"] = "up",
  ["\14"] = "down", ["\t"] = "tab",
  ["\27[A"] = "up", ["\27[B"] = "down", ["\27[C"] = "right", ["\27[D"] = "left", ["\27[H"] = "home",
  ["\27[F"] = "end", ["\27OH"] = "home", ["\27OF"] = "end", ["\27OA"] = "up", ["\27OB"] = "down",
  ["\27OC"] = "right", ["\27OD"] = "left", ["\27[1~"] = "home", ["\27[7~"] = "home", ["\27[4~"] = "end",
  ["\27[8~"] = "end", ["\27[3~"] = "delete",
}

-- The next key of s: its name (or "text"), its bytes, and how many bytes
-- it took; nil when s ends inside a key (wait for more bytes).
local function next_key(s)
  local b = s:byte(1)
  if b == 27 then
    if #s == 1 then return nil end
    local c = s:sub(2, 2)
    if c == "[" or c == "O" then
      local seq = s:match("^\27[%[O][%d;]*[%a~]")
      if not seq then
        if s:match("^\27[%[O][%d;]*$") then return nil end
        return "unknown", s:sub(1, 2), 2
      end
      return KEYS[seq] or "unknown", seq, #seq
    end
    return "unknown", s:sub(1, 2), 2 -- Alt-<key>: ignored
  end
  if b < 32 or b == 127 then return KEYS[s:sub(1, 1)] or "unknown", s:sub(1, 1), 1 end
  -- Text: a run of printable bytes, whole UTF-8 sequences only.
  local n = 1
  while n < #s do
    local nb = s:byte(n + 1)
    if nb < 32 or nb == 127 then break end
    n = n + 1
  end
  local text = s:sub(1, n)
  -- A UTF-8 sequence cut at the end of the chunk waits for its rest.
  local cut = #text
  local k = cut
  while k > 0 and k > cut - 3 and text:byte(k) >= 0x80 and text:byte(k) < 0xC0 do k = k - 1 end
  if k > 0 and text:byte(k) >= 0xC0 then
    local need = text:byte(k) >= 0xF0 and 4 or text:byte(k) >= 0xE0 and 3 or 2
    if cut - k + 1 < need then
      if k == 1 then return nil end
      text = text:sub(1, k - 1)
    end
  end
  return "text", text, #text
end

--- Feed bytes to the editor. Returns an event when one ends the feeding:
-- "line" (with the text), "eof" (Ctrl-D on an empty line), "interrupt"
-- (Ctrl-C: the line was dropped); nil when all bytes were used. Bytes
-- after the event stay pending for the next feed.
function Editor:feed(bytes)
  local s = self.pending .. (bytes or "")
  self.pending = ""
  local i = 1
  while i <= #s do
    local key, text, n = next_key(s:sub(i))
    if not key then
      self.pending = s:sub(i)
      break
    end
    i = i + n
    local redraw = true
    if key == "text" then
      if not utf8.len(text) then text = text:gsub("[\128-\255]", "?") end
      self:insert(text)
    elseif key == "tab" then
      self:insert("  ")
    elseif key == "enter" then
      self.pending = s:sub(i)
      return "line", self:text()
    elseif key == "ctrl-d" then
      if #self.chars == 0 then
        self.pending = s:sub(i)
        return "eof"
      end
      if self.pos < #self.chars then table.remove(self.chars, self.pos + 1) end
    elseif key == "ctrl-c" then
      self.pending = s:sub(i)
      return "interrupt", self:text()
    elseif key == "left" then
      if self.pos > 0 then self.pos = self.pos - 1 end
    elseif key == "right" then
      if self.pos < #self.chars then self.pos = self.pos + 1 end
    elseif key == "home" then
      self.pos = 0
    elseif key == "end" then
      self.pos = #self.chars
    elseif key == "backspace" then
      if self.pos > 0 then self:delete_range(self.pos, self.pos) end
    elseif key == "delete" then
      if self.pos < #self.chars then table.remove(self.chars, self.pos + 1) end
    elseif key == "kill-end" then
      for _ = self.pos + 1, #self.chars do table.remove(self.chars) end
    elseif key == "kill-start" then
      self:delete_range(1, self.pos)
    elseif key == "kill-word" then
      local j = self.pos
      while j > 0 and is_space(self.chars[j]) do j = j - 1 end
      while j > 0 and not is_space(self.chars[j]) do j = j - 1 end
      self:delete_range(j + 1, self.pos)
    elseif key == "clear-screen" then
      self.out("\27[H\27[2J")
    elseif key == "up" then
      self:history_move(-1)
    elseif key == "down" then
      self:history_move(1)
    else
      redraw = false
    end
    if redraw then self:draw() end
  end
  return nil
end

-- ------------------------------------------------------------------------
-- The REPL
-- ------------------------------------------------------------------------

-- Stop every query (each after its batch in flight, committed), saying so.
local function stop_queries(out)
  local query = require "tide.query"
  for _, q in ipairs(query.queries()) do
    local ok, err = pcall(q.stop, q)
    local name = tostring(q:name() or q:id())
    if ok then
      out:write("stopped query ", name, "\n")
    else
      io.stderr:write("tide: stopping query ", name, ": ", tostring(err), "\n")
    end
  end
  out:flush()
end

--- Run the REPL until Ctrl-D, `.exit` or the end of stdin.
-- @tab[opt] opts `data`: the store's directory (`--data DIR`); nil: the
-- default store (`$TIDE_DATA`, else ./tide-data), opened on first use of `db`
-- @treturn int exit status: 0; 1 when stdin is not a terminal and a line
-- failed (so that `tide < script` reports failures), or the store in
-- `data` does not open
function M.main(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("repl.main: bad argument #1: expected a table { data = DIR }", 2) end
  for k in pairs(opts) do
    if k ~= "data" then error(format("repl.main: unknown option '%s' (allowed: data)", tostring(k)), 2) end
  end
  local tide = require "tide"
  local db
  if opts.data ~= nil then
    local ok, s = pcall(tide.open, opts.data)
    if not ok then
      io.stderr:write(format("tide: --data %s: %s\n", tostring(opts.data), tostring(s):gsub("^[^:]*:%d+: ", "")))
      return 1
    end
    db = s
  end

  local loop = runtime.loop()
  local out = io.stdout
  local interactive = core.guess_handle(0) == "tty" and core.guess_handle(1) == "tty"
  local failed = false

  -- Writes from user code and sinks: around the line being typed.
  local function write(s) runtime.write(s) end

  local env = setmetatable({}, { __index = function(_, k)
    if k == "db" then
      if db == nil then db = tide.default_store() end
      return db
    end
    return _G[k]
  end })
  env.tide = tide
  env._G = env
  env.print = function(...)
    local n, parts = select("#", ...), {}
    for i = 1, n do parts[i] = tostring((select(i, ...))) end
    write(concat(parts, "\t") .. "\n")
  end

  local history = { path = interactive and history_path() or nil, list = {}, appended = 0 }
  if history.path then history.list = history_load(history.path) end

  local queue = {}       -- events from the input callback: { "line", text } ...
  local ended = false    -- stdin ended
  local terminate = nil  -- a signal asked to leave
  local input, editor
  local partial = ""     -- non-interactive: the line begun by earlier chunks

  local function on_bytes(bytes, err)
    if bytes == nil then
      if partial ~= "" then queue[#queue + 1] = { "line", partial } partial = "" end
      if err then io.stderr:write("tide: stdin: ", err, "\n") end
      ended = true
      loop:stop()
      return
    end
    if editor then
      local ev, text = editor:feed(bytes)
      if ev then
        queue[#queue + 1] = { ev, text }
        input:pause() -- the rest waits in the editor and the kernel until evaluated
        loop:stop()
      end
      return
    end
    local s = partial .. bytes
    local start = 1
    while true do
      local nl = s:find("\n", start, true)
      if not nl then break end
      queue[#queue + 1] = { "line", (s:sub(start, nl - 1):gsub("\r$", "")) }
      start = nl + 1
    end
    partial = s:sub(start)
    if #queue > 0 then
      input:pause()
      loop:stop()
    end
  end

  local err
  input, err = loop:input(0, on_bytes, { raw = interactive })
  if not input then
    io.stderr:write("tide: stdin: ", tostring(err), "\n")
    return 1
  end
  if interactive then
    editor = new_editor(function(s) out:write(s) out:flush() end, function()
      local cols = input:winsize()
      return cols
    end, history)
  end

  local signals = {}
  for _, name in ipairs({ "SIGTERM", "SIGHUP" }) do
    signals[#signals + 1] = loop:signal(name, function()
      terminate = name
      loop:stop()
    end)
  end

  local buffer = nil -- the lines of an unfinished chunk

  local function prompt() return buffer and ">> " or "> " end

  local function start_reading()
    if editor then
      input:set_raw(true)
      editor:reset(prompt())
      runtime.set_terminal_owner({ clear = function() editor:clear_line() end, redraw = function() editor:draw() end })
      editor:draw()
    end
    input:resume()
  end

  local function stop_reading()
    input:pause()
    if editor then
      runtime.set_terminal_owner(nil)
      input:set_raw(false)
    end
  end

  local function report(msg)
    failed = true
    out:write(msg, "\n")
    out:flush()
  end

  local ui_server -- the UI started by .ui

  local function command(line)
    local name, arg = line:match("^(%.%S+)%s*(.-)%s*$")
    if name == ".help" then
      out:write(help_text())
    elseif name == ".exit" then
      return "exit"
    elseif name == ".topics" then
      local names = env.db:topics()
      if #names == 0 then out:write("no topics in ", env.db:path(), "\n") end
      for _, t in ipairs(names) do
        local st = env.db:topic(t):stats()
        out:write(format("%-24s %d partition%s  %d records\n", t, #st.partitions, #st.partitions == 1 and "" or "s",
          st.records))
      end
    elseif name == ".schema" then
      if arg == "" then
        report("usage: .schema TOPIC")
      else
        local sc = env.db:schema(arg)
        out:write(format("%s (version %d, compatibility %s): %s\n", arg, sc.version, tostring(sc.compatibility),
          sc.ddl))
      end
    elseif name == ".ui" then
      if ui_server == nil or ui_server:is_closed() then
        ui_server = require("tide.ui").start({ listen = arg ~= "" and arg or nil, store = env.db })
      elseif arg ~= "" then
        report(format("the ui already runs at %s", ui_server:url()))
        return
      end
      out:write("ui at ", ui_server:url(), "\n")
    elseif name == ".queries" then
      local qs = tide.queries()
      if #qs == 0 then out:write("no queries running\n") end
      for _, q in ipairs(qs) do out:write(M.query_line(q), "\n") end
    else
      report(format("unknown command '%s' (commands: %s)", name, known_commands()))
    end
  end

  -- Evaluate one line (or add it to the unfinished chunk). Returns "exit"
  -- when the user asked to leave.
  local function evaluate(line)
    if buffer == nil and line:match("^%.%a") then
      local ok, res = xpcall(command, debug.traceback, line)
      if not ok then report("error: " .. tostring(res):gsub("\nstack traceback:.*", ""):gsub("^[^\n]-:%d+: ", "")) end
      out:flush()
      return res
    end
    local chunk = buffer and (buffer .. "\n" .. line) or line
    local fn, cerr = M.compile(chunk, env)
    if not fn and cerr == "incomplete" then
      buffer = chunk
      return
    end
    buffer = nil
    if not fn then
      report(cerr)
      return
    end
    local res = table.pack(xpcall(fn, user_traceback))
    if not res[1] then
      report(tostring(res[2]))
    else
      local ok, perr = pcall(M.print_values, function(s) out:write(s) end, res.n - 1, table.unpack(res, 2, res.n))
      if not ok then report("error: printing the result: " .. tostring(perr)) end
    end
    io.stdout:flush()
  end

  local function finish()
    runtime.set_terminal_owner(nil)
    stop_queries(out)
    -- A query stopped in a batch ends after it: let the loop finish those.
    local guard = 0
    while #tide.queries() > 0 and guard < 1000 do
      loop:run("once")
      guard = guard + 1
    end
    if ui_server then ui_server:close() end
    for _, h in ipairs(signals) do h:close() end
    input:close()
    if db then pcall(db.close, db) end
  end

  local ok, rerr = xpcall(function()
    if interactive then
      out:write(format("tide %s REPL (Lua 5.4). .help for help, Ctrl-D to leave.\n", tostring(tide.version)))
    end
    start_reading()
    while true do
      if #queue == 0 and not ended and not terminate then loop:run("once") end
      if terminate then
        stop_reading()
        if editor then out:write("\n") end
        io.stderr:write("tide: ", terminate, ": stopping the queries\n")
        return
      end
      if #queue > 0 then
        stop_reading()
        local ev = table.remove(queue, 1)
        local kind, text = ev[1], ev[2]
        if kind == "eof" then
          out:write("\n")
          return
        elseif kind == "interrupt" then
          out:write("^C\n")
          if text == "" and buffer == nil then
            out:write("(to leave, press Ctrl-D on an empty line or type .exit)\n")
          end
          buffer = nil
        else
          if editor then
            out:write("\n")
            history_add(history, text)
          end
          out:flush()
          if evaluate(text) == "exit" then return end
        end
        if #queue == 0 then
          if ended then return end
          start_reading()
          -- Keys typed ahead of the evaluation.
          if editor and editor.pending ~= "" then on_bytes("") end
        end
      elseif ended then
        stop_reading()
        if buffer then report("stdin: unexpected end of input in an unfinished chunk") end
        return
      end
    end
  end, debug.traceback)
  stop_reading()
  finish()
  if not ok then
    io.stderr:write("tide: repl: ", tostring(rerr), "\n")
    return 1
  end
  if failed and not interactive then return 1 end
  return 0
end

return M
