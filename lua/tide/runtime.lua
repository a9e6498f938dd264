--- The process's one event loop and the registry of connectors.
--
-- Every streaming query, source (socket, file watching, timers) and the REPL
-- run on one libuv loop, so that several queries advance side by side and a
-- REPL user can type while they run. Queries advance only while the loop
-- runs (inside `process_all_available`, `await`, `tide.run`, or the REPL).
--
-- Connectors live in connectors/ (installed as `tide.connectors.<name>`);
-- `connector(name)` loads one by name and says which exist when it does not.
--
-- @module tide.runtime

local core = require "tide.core"

local M = {}

local loop

--- The process's event loop (a tide.Loop), created on first use.
function M.loop()
  if loop == nil then loop = core.loop() end
  return loop
end

-- The terminal. The console sink's tables, `tide run`'s status lines and
-- the REPL's input line all go to stdout. Whoever keeps something drawn at
-- the bottom of the terminal (the status lines, the line being typed)
-- registers itself as the owner, { clear = function() end, redraw =
-- function() end }; everything else writes through M.write, which clears
-- the owner's lines, writes, and redraws them, so nothing garbles.
local owner

--- Set (or, with nil, remove) the terminal's owner; returns the previous one.
function M.set_terminal_owner(o)
  local prev = owner
  owner = o
  return prev
end

--- Write text to stdout around the terminal's owner.
function M.write(text)
  local out = io.stdout
  if owner then owner.clear() end
  out:write(text)
  if owner then owner.redraw() end
  if out.flush then out:flush() end
end

-- The built-in connectors, by the names users give them.
M.SOURCES = { "file", "memory", "rate", "socket", "topic" }
M.SINKS = { "console", "file", "foreach", "foreach_batch", "memory", "topic" }

local MODULE = { foreach_batch = "foreach" }

--- The descriptor of connector `name` for `kind` ("source" or "sink"), or
-- raise naming the known ones.
function M.connector(kind, name, level)
  local list = kind == "source" and M.SOURCES or M.SINKS
  local known = false
  for _, n in ipairs(list) do if n == name then known = true end end
  if not known then
    error(string.format("unknown %s '%s' (%ss: %s)", kind, tostring(name), kind, table.concat(list, ", ")),
      (level or 1) + 1)
  end
  local mod = require("tide.connectors." .. (MODULE[name] or name))
  local d = mod[kind == "source" and "sources" or "sinks"]
  return assert(d and d[name], "connector " .. name .. " has no " .. kind)
end

return M
