--- Error messages for people: the user's position, not tide's.
--
-- A Lua error raised inside tide carries the position of the `error` call
-- (`.../lua/tide/query.lua:406: ...`) when its level points inside tide, and
-- its traceback is mostly tide's frames. Neither helps a user. The handlers
-- that show errors to people (`tide run`, the REPL, a failed query's message)
-- pass them through this module, which
--
-- * replaces a position inside tide with the first frame outside tide (the
--   user's file:line) while the stack is still there (`message`), or drops
--   it when it is not;
-- * keeps only the user's frames of a traceback (`traceback`,
--   `user_frames`);
-- * names a failed query by its name, or a short id, with its sources and
--   sink, says each prefix of the failure once and adds the hint that
--   applies (`query_failed`).
--
-- With `TIDE_DEBUG=1` in the environment, messages and tracebacks are left
-- whole (tide's frames included), for debugging tide itself.
--
-- A "tide frame" is a Lua chunk loaded from the directory this module lives
-- in (`.../tide/*.lua`, `.../tide/connectors/*.lua`), the `bin/tide`
-- script, or a C function; every
-- other Lua chunk is the user's. Nothing here holds state but a cache of the
-- files found in that directory.
--
-- @module tide.errors

local M = {}

local format, concat = string.format, table.concat

-- The directory of tide's Lua modules, with a trailing "/": where this file
-- was loaded from.
local TIDE_DIR = (debug.getinfo(1, "S").source:match("^@(.*[/\\])errors%.lua$")) or ""

--- Is TIDE_DEBUG set (to anything but "" or "0")?
-- @treturn bool
function M.debug()
  local v = os.getenv("TIDE_DEBUG")
  return v ~= nil and v ~= "" and v ~= "0"
end

local known = {}

-- Does `path` (a chunk name as Lua prints it: whole, or cut to its tail
-- "...k/lua/tide/query.lua") name one of tide's own modules? The tail
-- `tide/<name>.lua` or `tide/connectors/<name>.lua` must name a file of
-- TIDE_DIR.
local function tide_file(path)
  if path:match("bin[/\\]tide$") then return true end -- the CLI's script
  local rel = path:match("tide[/\\](connectors[/\\][%w_]+%.lua)$") or path:match("tide[/\\]([%w_]+%.lua)$")
  if not rel then return false end
  local hit = known[rel]
  if hit == nil then
    local f = io.open(TIDE_DIR .. rel, "r")
    hit = f ~= nil
    if f then f:close() end
    known[rel] = hit
  end
  return hit
end

--- Is a chunk name (`short_src`, or a `source` starting with "@") one of
-- tide's own?
-- @string src
-- @treturn bool
function M.is_tide_source(src)
  if src:sub(1, 1) == "@" then src = src:sub(2) end
  return tide_file(src)
end

--- The position (`"file.lua:12"`) of the first Lua frame outside tide on
-- the current stack, from `level` (default 2: the caller) up; nil when
-- there is none.
-- @int[opt=2] level
-- @treturn string|nil
function M.user_position(level)
  level = (level or 2) + 1
  while true do
    local info = debug.getinfo(level, "Sl")
    if not info then return nil end
    if info.what ~= "C" and info.currentline and info.currentline > 0 and not tide_file(info.short_src) then
      return format("%s:%d", info.short_src, info.currentline)
    end
    level = level + 1
  end
end

-- The Lua position prefix of a message ("file.lua:12: "), its file, and
-- the rest of the message.
local function split_position(msg)
  local file, line, rest = msg:match("^([^\n]-):(%d+): (.*)$")
  if file and not file:find(": ", 1, true) then return file, line, rest end
  return nil, nil, msg
end

--- A message for people: a position inside tide at its start is replaced
-- by the user's position on the current stack (from `level`, default 2),
-- or dropped when the user has no frame there; a message without a
-- position that tide raised gets the user's. Other messages pass
-- unchanged; so does everything with TIDE_DEBUG.
-- @param msg the error value (non-strings go through tostring)
-- @int[opt=2] level where to start looking for the user's frame
-- @treturn string
function M.message(msg, level)
  msg = tostring(msg)
  if M.debug() then return msg end
  level = (level or 2) + 1
  local file, _, rest = split_position(msg)
  if file and tide_file(file) then
    local pos = M.user_position(level)
    return pos and (pos .. ": " .. rest) or rest
  end
  if not file then
    -- raised by tide's `error(msg, 0)`: the user's position (only then:
    -- not what a C function raised, such as a signal's interrupt)
    local raiser = debug.getinfo(level, "f")
    local info = raiser and raiser.func == error and debug.getinfo(level + 1, "S")
    if info and tide_file(info.short_src) then
      level = level + 1
      local pos = M.user_position(level)
      if pos then return pos .. ": " .. msg end
    end
  end
  return msg
end

--- The lines of a traceback text that are the user's: "stack traceback:"
-- and the frames of user chunks, with the C functions they called
-- (`error`); tide's frames, the C functions tide called and the
-- "(...tail calls...)" markers go. With TIDE_DEBUG the text
-- is returned whole.
-- @string text a traceback as debug.traceback makes it (message first)
-- @treturn string the message, then "stack traceback:" and the user's
-- frames, or the message alone when no frame of the user's is left
function M.user_frames(text)
  text = tostring(text)
  if M.debug() then return text end
  local head, tb = text:match("^(.-)\nstack traceback:\n(.*)$")
  if not head then return text end
  local lines, user = {}, {}
  for l in (tb .. "\n"):gmatch("(.-)\n") do
    local where = l:match("^%s*(.-):%d+: in ") or l:match("^%s*(.-): in ")
    lines[#lines + 1] = l
    user[#lines] = where ~= nil and where ~= "[C]" and not tide_file(where)
  end
  local keep = {}
  for k, l in ipairs(lines) do
    -- a C function the user called (`error`) stays, as lua shows it
    local c_of_user = l:match("^%s*%[C%]: in ") and user[k + 1]
    if (user[k] or c_of_user) and keep[#keep] ~= l then keep[#keep + 1] = l end
  end
  if #keep == 0 then return head end
  return head .. "\nstack traceback:\n" .. concat(keep, "\n")
end

--- An xpcall handler for errors shown to people: `message` then the
-- traceback of the user's frames only (`user_frames`).
-- @param msg the error value
-- @int[opt=2] level the level of the traceback's first frame
-- @treturn string
function M.traceback(msg, level)
  level = (level or 2) + 1
  if type(msg) ~= "string" then
    local mt = getmetatable(msg)
    if not (mt and mt.__tostring) then return format("(error object is a %s value)", type(msg)) end
  end
  return M.user_frames(debug.traceback(M.message(msg, level), level))
end

--- The hint for a record a source or a read could not decode.
M.BAD_RECORDS_HINT = 'bad_records = "drop" skips bad records'

-- The message after its consecutive repeated prefixes are said once:
-- "a: b: b: c" and "a: x b: b: c" become "a: b: c" and "a: x b: c" (a
-- source's description that both the source and the engine put before its
-- error).
local function once(msg)
  local first, rest = msg:match("^([^\n]*)(.*)$")
  local parts = {}
  for part in (first .. ": "):gmatch("(.-): ") do
    local prev = parts[#parts]
    if prev ~= part and (prev == nil or prev:sub(-#part - 1) ~= " " .. part) then parts[#parts + 1] = part end
  end
  return concat(parts, ": ") .. rest
end

--- The message of a failed streaming query:
-- `query NAME (SOURCES -> SINK) failed: batch N: ...`, NAME being the
-- query's name or the first 8 characters of its id. Repeated prefixes are
-- said once, and a source's bad record gets the bad_records hint.
-- @string name the query's name, or nil
-- @string id the query's id
-- @tab sources the sources' descriptions
-- @string sink the sink's description
-- @string failure what failed (the first line) and its traceback
-- @treturn string
function M.query_failed(name, id, sources, sink, failure)
  local label = name or (id and id:sub(1, 8)) or "?"
  -- the frames below the batch's xpcall are the loop's, not the failure's
  failure = tostring(failure)
  local cut = failure:find("\n%s*%[C%]: in function 'xpcall'")
  if cut then failure = failure:sub(1, cut - 1) end
  local first, rest = once(failure):match("^([^\n]*)(.*)$")
  if first:match("^batch %d+: source FileSource%[[^%]]*%]: .-:%d+: ") then
    first = first .. " (" .. M.BAD_RECORDS_HINT .. ")"
  end
  return format("query %s (%s -> %s) failed: %s", label, concat(sources, ", "), sink or "?",
    M.user_frames(first .. rest))
end

return M
