--- The process's one event loop and its terminal.
--
-- Every streaming query, source (socket, file watching, timers) and the REPL
-- run on one libuv loop, so that several queries advance side by side and a
-- REPL user can type while they run. Queries advance only while the loop
-- runs (inside `process_all_available`, `await`, `tide.run`, or the REPL).
-- tide.runtime gives these to the layers above the connectors; the
-- connectors reach them through tide.connector.
--
-- @module tide.process

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

return M
