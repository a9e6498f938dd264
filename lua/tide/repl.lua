--- The REPL: `tide` with no arguments.
--
-- A read-eval-print loop on the process's one libuv loop (tide.runtime), so
-- that streaming queries started at the prompt keep running while the user
-- types. Structure:
--
--  * Input: on a terminal (stdin and stdout both terminals) GNU readline
--    edits the line (tide.core's readline binding: its callback interface,
--    fed by a tide.Poll on the terminal), with completion of names, fields
--    and methods (M.complete), history (multi-line chunks as one entry) and
--    Ctrl-R search; otherwise a tide.Input reads stdin's lines as they come,
--    no prompt drawn, errors to stderr.
--  * The loop: `main` alternates between running the libuv loop (one
--    iteration at a time, while waiting for a line) and evaluating the
--    lines the input callbacks queued. User code never runs inside a loop
--    callback, so it may itself run the loop (`q:await()`,
--    `q:process_all_available()`, `tide.run()`).
--  * While reading, the prompt and the line being typed are the terminal's
--    owner (runtime.set_terminal_owner): the console sink and `print` write
--    through runtime.write, which clears the line, writes, and draws it
--    again. While a chunk is evaluated, readline has given the terminal its
--    mode back, the terminal is not polled (type-ahead waits in the kernel)
--    and there is no owner, so user code writes as in any program.
--  * Ctrl-C (SIGINT; the REPL owns it, queries do not install their
--    handler): at the prompt it drops the line; during an evaluation it
--    interrupts the chunk ("interrupted!", as `lua` does, by a debug hook
--    set from the signal: loop:catch_interrupt), never a query's batch, so
--    the queries and the session go on. `q:await()` interrupted returns the
--    prompt; the query runs on.
--
-- Invariant: the terminal is in readline's mode only while `main` waits for
-- input; every way out of `main` (Ctrl-D, `.exit`, `exit`, end of input,
-- SIGTERM, SIGHUP, an error of the REPL itself) closes the readline object,
-- which gives the terminal its mode back.
--
-- @module tide.repl

local tide = require "tide"
local core = require "tide.core"
local runtime = require "tide.runtime"
local frame = require "tide.frame"
local query = require "tide.query"
local errors = require "tide.errors"
local ui = require "tide.ui"

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

--- How a query is: "active", "finished" (a run with trigger "once" or
-- "available_now" that processed its data), "stopped" (by q:stop(), Ctrl-C
-- outside the REPL, SIGTERM), or "failed: <error>".
function M.query_state(q)
  if q:is_active() then return "active" end
  local exc = q:exception()
  if exc then return "failed: " .. tostring(exc) end
  local msg = tostring(q:status().message)
  if msg == "Stopped" then return "stopped" end
  if msg:find("^Finished") then return "finished" end
  return "stopped: " .. msg
end

--- The status line of a query: name (or id), active or how it ended, the
-- last batch, input rate and watermark.
function M.query_line(q)
  local p = q:last_progress()
  local parts = { format("query %s", q:name() or q:id()) }
  if q:name() then parts[#parts + 1] = format("(id %s)", q:id()) end
  parts[#parts + 1] = M.query_state(q)
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

-- What `exit()` and `quit()` raise to leave the REPL from inside a chunk.
local EXIT = setmetatable({}, { __tostring = function() return "exit" end })

-- What a Ctrl-C raises in the chunk being evaluated (core/l_loop.c).
M.INTERRUPTED = "interrupted!"

-- The traceback of an error in user code, without the REPL's frames; an
-- interrupt and `exit()` pass as they are.
local function user_traceback(msg)
  if msg == EXIT or msg == M.INTERRUPTED then return msg end
  if type(msg) ~= "string" then
    local mt = getmetatable(msg)
    if mt and mt.__tostring then
      msg = tostring(msg)
    else
      return format("(error object is a %s value)", type(msg))
    end
  end
  local tb = errors.traceback(msg, 2) -- the user's position and frames, not tide's
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
  { ".ui [ADDR]", "serve the dashboard and /metrics on [HOST:]PORT (default 127.0.0.1:4040)" },
  { ".exit", "stop the queries (each committed) and leave (also exit, quit, Ctrl-D)" },
}

-- Bare words that act as commands while the user has not given the name a
-- value of their own; as functions (help(), exit(), quit()) they work too.
local WORDS = { help = ".help", exit = ".exit", quit = ".exit" }

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

Keys (GNU readline, as in bash; ~/.inputrc applies): Tab completes names,
fields and methods (tide.re<Tab>, db:cr<Tab>; again lists them); Up/Down
recall history (a chunk of several lines as one), Ctrl-R searches it;
Left/Right, Home/End, Ctrl-A/E/B/F move; Ctrl-K/U/W delete; Ctrl-L clears
the screen. Ctrl-C drops the line, or interrupts the chunk that runs
(queries go on); Ctrl-D on an empty line leaves.
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

-- The file holds one entry per line, the format readline and bash use with
-- timestamps: each entry follows a line `#<unix time>`, so an entry may
-- span lines (a function typed over several). A file without those lines
-- (tide before multi-line entries) is one entry per line.

local function history_path()
  local p = os.getenv("TIDE_HISTORY")
  if p and p ~= "" then return p end
  local home = os.getenv("HOME")
  if home and home ~= "" then return home .. "/.tide_history" end
  return nil
end

--- The entries of a history file's text, the last HISTORY_MAX of them.
function M.history_parse(text)
  local list, cur, stamped = {}, nil, false
  local function flush()
    if cur and cur ~= "" then list[#list + 1] = cur end
    cur = nil
  end
  for l in text:gmatch("([^\n]*)\n?") do
    if l:find("^#%d+$") then
      flush()
      stamped, cur = true, ""
    elseif stamped and cur then
      cur = cur == "" and l or (cur .. "\n" .. l)
    elseif l ~= "" then
      list[#list + 1] = l
    end
  end
  flush()
  if #list > M.HISTORY_MAX then list = table.move(list, #list - M.HISTORY_MAX + 1, #list, 1, {}) end
  return list
end

local function history_entry(e) return format("#%d\n%s\n", os.time(), e) end

-- The file is appended to entry by entry (nothing is lost if the process
-- is killed) and rewritten with the last HISTORY_MAX entries when it grew
-- past twice that. Returns true when the entry is new (not blank, not the
-- last one again).
local function history_add(h, entry)
  if entry:find("^%s*$") or h.list[#h.list] == entry then return false end
  h.list[#h.list + 1] = entry
  if #h.list > M.HISTORY_MAX then table.remove(h.list, 1) end
  if not h.path then return true end
  local f = io.open(h.path, "a")
  if not f then return true end
  f:write(history_entry(entry))
  f:close()
  h.appended = h.appended + 1
  if h.appended > M.HISTORY_MAX then
    f = io.open(h.path, "w")
    if f then
      for _, e in ipairs(h.list) do f:write(history_entry(e)) end
      f:close()
    end
    h.appended = 0
  end
  return true
end

-- ------------------------------------------------------------------------
-- Completion
-- ------------------------------------------------------------------------

local KEYWORDS = { "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in",
  "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while" }

-- The string keys of v that are identifiers, with those its metatable's
-- __index tables offer (methods), into set.
local function add_keys(set, v)
  for _ = 1, 8 do -- a bounded walk up __index chains
    if type(v) == "table" then
      for k in next, v do
        if type(k) == "string" and k:find("^[%a_][%w_]*$") then set[k] = rawget(v, k) end
      end
    end
    local mt = (type(v) == "table" or type(v) == "userdata" or type(v) == "string") and getmetatable(v)
    if type(mt) ~= "table" then return end
    local idx = rawget(mt, "__index")
    if type(idx) ~= "table" then return end
    v = idx
  end
end

--- The completions of `text`, the word before the cursor: a global name
-- (keywords included), or a path of names to a value followed by `.` or `:`
-- and the start of a field (a method after `:`); names that begin with `_`
-- only when `text` does too. A value on the path is
-- looked up as the chunk would (so `db` opens the default store); a lookup
-- that fails completes nothing. One candidate gets `(` after a function
-- and `.` after a table, so that Tab goes on.
-- @tab env the environment chunks run in
-- @string text
-- @treturn {string,...} sorted
function M.complete(env, text)
  local path, sep, start = text:match("^([%a_][%w_%.]*)([%.:])([%a_]?[%w_]*)$")
  local set = {}
  if path then
    if path:find("%.%.") or path:sub(-1) == "." then return {} end
    local ok, v = pcall(function()
      local x = env
      for name in path:gmatch("[^%.]+") do x = x[name] end
      return x
    end)
    if not ok or v == nil then return {} end
    add_keys(set, v)
    if sep == ":" then
      for k in pairs(set) do
        local ok2, f = pcall(function() return v[k] end)
        if not (ok2 and type(f) == "function") then set[k] = nil end
      end
    end
  else
    if not text:find("^[%a_]*[%w_]*$") then return {} end
    start = text
    add_keys(set, env)
    add_keys(set, _G)
    for _, k in ipairs(KEYWORDS) do set[k] = true end
    set.db = true
    for w in pairs(WORDS) do set[w] = true end
  end
  -- Names that begin with "_" (internals, metamethods) only when asked for.
  local private = start:sub(1, 1) == "_"
  local out = {}
  for k in pairs(set) do
    if k:sub(1, #start) == start and (private or k:sub(1, 1) ~= "_") then out[#out + 1] = k end
  end
  table.sort(out)
  local prefix = path and (path .. sep) or ""
  for i, k in ipairs(out) do out[i] = prefix .. k end
  if #out == 1 then
    local ok, v = pcall(M.lookup, env, out[1])
    if ok and type(v) == "function" then
      out[1] = out[1] .. "("
    elseif ok and type(v) == "table" and not getmetatable(v) then
      out[1] = out[1] .. "."
    end
  end
  return out
end

-- The value at a path of names ("tide.read", "db:topics") in env.
function M.lookup(env, path)
  local x = env
  for name in path:gmatch("[^%.:]+") do x = x[name] end
  return x
end

-- ------------------------------------------------------------------------
-- The REPL
-- ------------------------------------------------------------------------

-- Stop every query (each after its batch in flight, committed), saying so.
local function stop_queries(out)
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
  local rl
  if core.guess_handle(0) == "tty" and core.guess_handle(1) == "tty" then
    local err
    rl, err = core.readline_open()
    if not rl then io.stderr:write("tide: terminal: ", tostring(err), " (reading lines without editing)\n") end
  end
  local interactive = rl ~= nil
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
  env.help = function() out:write(help_text()) end
  env.exit = function() error(EXIT, 0) end
  env.quit = env.exit
  local builtin = { help = env.help, exit = env.exit, quit = env.quit }

  local history = { path = interactive and history_path() or nil, list = {}, appended = 0 }
  if history.path then
    local f = io.open(history.path, "r")
    if f then
      history.list = M.history_parse(f:read("a"))
      f:close()
    end
    for _, e in ipairs(history.list) do rl:add_history(e) end
  end

  local queue = {}          -- events from the input callbacks: { "line", text } ...
  local ended = false       -- stdin ended
  local terminate = nil     -- a signal asked to leave
  local reading = false     -- the prompt is up
  local stale = 0           -- SIGINTs from before the prompt, still on their way
  local input, poll
  local partial = ""        -- non-interactive: the line begun by earlier chunks

  local function push(ev)
    queue[#queue + 1] = ev
    if poll then poll:stop() else input:pause() end -- the rest waits in the kernel until evaluated
    reading = false
    loop:stop()
  end

  local function on_bytes(bytes, err)
    if bytes == nil then
      if partial ~= "" then queue[#queue + 1] = { "line", partial } partial = "" end
      if err then io.stderr:write("tide: stdin: ", err, "\n") end
      ended = true
      loop:stop()
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

  local function on_keys(err)
    if err then
      io.stderr:write("tide: terminal: ", err, "\n")
      ended = true
      poll:stop()
      loop:stop()
      return
    end
    local ev, text = rl:read()
    if ev then push({ ev, text }) end
  end

  local err
  if interactive then
    poll, err = loop:poll(rl:fd(), on_keys)
    if poll then poll:stop() end -- until the first prompt
  else
    input, err = loop:input(0, on_bytes)
  end
  if not (poll or input) then
    io.stderr:write("tide: stdin: ", tostring(err), "\n")
    if rl then rl:close() end
    return 1
  end

  local signals = {}
  for _, name in ipairs({ "SIGTERM", "SIGHUP" }) do
    signals[#signals + 1] = loop:signal(name, function()
      terminate = name
      loop:stop()
    end)
  end
  if interactive then
    -- Ctrl-C belongs to the REPL: it drops the line or interrupts the
    -- chunk; queries do not stop on it, and a second one does not exit.
    query.handle_signals = false
    signals[#signals + 1] = loop:signal("SIGINT", function(_, chunks)
      if stale > 0 then
        stale = stale - 1
        return
      end
      if chunks or not reading then return end -- (it interrupted a chunk)
      push({ "interrupt", rl:cancel() })
    end)
    signals[#signals + 1] = loop:signal("SIGWINCH", function() rl:resize() end)
    loop:catch_interrupt("prompt")
  end

  local buffer = nil -- the lines of an unfinished chunk

  local function prompt() return buffer and ">> " or "> " end

  local function complete(text) return M.complete(env, text) end

  local function start_reading()
    if rl then
      stale = loop:catch_interrupt("prompt")
      rl:start(prompt(), complete)
      runtime.set_terminal_owner({ clear = function() rl:clear() end, redraw = function() rl:redraw() end })
      poll:again()
    else
      input:resume()
    end
    reading = true
  end

  local function stop_reading()
    reading = false
    if rl then
      poll:stop()
      runtime.set_terminal_owner(nil)
      rl:stop()
    else
      input:pause()
    end
  end

  -- A failure: on stdout at the prompt, on stderr for a script (with
  -- stdout flushed first, so that the two keep their order).
  local function report(msg)
    failed = true
    if interactive then
      out:write(msg, "\n")
    else
      out:flush()
      io.stderr:write(msg, "\n")
    end
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
        -- db nil: the UI shows the default store when it exists (it creates none)
        ui_server = ui.start({ listen = arg ~= "" and arg or nil, store = db })
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

  -- Run the loop as the REPL does between chunks: a callback's error (a
  -- user's timer that fails) is reported, around the prompt, and the
  -- session goes on.
  local function run_loop(mode)
    local lok, lerr = pcall(loop.run, loop, mode)
    if lok then return end
    failed = true
    if interactive then
      write("error: " .. tostring(lerr) .. "\n")
    else
      out:flush()
      io.stderr:write("error: ", tostring(lerr), "\n")
    end
  end

  -- Run a compiled chunk and print its values, with Ctrl-C interrupting
  -- it. The mode goes back to "prompt" inside the protected call (at its
  -- end, or in the message handler), so that no interrupt can hit the
  -- REPL's own code.
  local function run_chunk(fn)
    if interactive then loop:catch_interrupt("eval") end
    local res = table.pack(fn())
    M.print_values(function(s) out:write(s) end, res.n, table.unpack(res, 1, res.n))
    if interactive then loop:catch_interrupt("prompt") end
  end
  local function on_error(e)
    if interactive then loop:catch_interrupt("prompt") end
    return user_traceback(e)
  end

  -- Evaluate one line (or add it to the unfinished chunk). Returns "exit"
  -- when the user asked to leave.
  local function evaluate(line)
    if buffer == nil then
      local word = line:match("^%s*(%a+)%s*$")
      if WORDS[word] and env[word] == builtin[word] then line = WORDS[word] end
    end
    if buffer == nil and line:match("^%.%a") then
      if rl and history_add(history, line) then rl:add_history(line) end
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
    if rl and history_add(history, chunk) then rl:add_history(chunk) end
    if not fn then
      report(cerr)
      return
    end
    local ok, e = xpcall(run_chunk, on_error, fn)
    out:flush()
    if ok then return end
    if e == EXIT then return "exit" end
    -- (The terminal echoed ^C where the output was: the message goes below.)
    if e == M.INTERRUPTED and interactive then out:write("\n") end
    report(tostring(e))
  end

  local function finish()
    runtime.set_terminal_owner(nil)
    stop_queries(out)
    -- A query stopped in a batch ends after it: let the loop finish those.
    local guard = 0
    while #tide.queries() > 0 and guard < 1000 do
      run_loop("once")
      guard = guard + 1
    end
    if ui_server then ui_server:close() end
    if interactive then
      loop:catch_interrupt("off")
      query.handle_signals = true
    end
    for _, h in ipairs(signals) do h:close() end
    if poll then poll:close() end
    if input then input:close() end
    if rl then rl:close() end
    if db then pcall(db.close, db) end
  end

  local ok, rerr = xpcall(function()
    if interactive then
      out:write(format("tide %s REPL (Lua 5.4). help for help, Tab completes, Ctrl-D leaves.\n",
        tostring(tide.version)))
    end
    start_reading()
    while true do
      if #queue == 0 and not ended and not terminate then run_loop("once") end
      if terminate then
        stop_reading()
        if interactive then out:write("\n") end
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
          if text == "" and buffer == nil then
            out:write("(to leave, press Ctrl-D on an empty line or type exit)\n")
          end
          buffer = nil
        else
          out:flush()
          if evaluate(text) == "exit" then return end
        end
        if #queue == 0 then
          if ended then return end
          start_reading()
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
