--- The process's one event loop and the registry of connectors.
--
-- The loop and the terminal are tide.process's (given here as well for
-- the REPL and the CLI). Connectors live in connectors/ (installed as
-- `tide.connectors.<name>`); `connector(kind, name)` gives one by name and
-- says which exist when it does not. This module sits above the
-- connectors: it loads them all, and none of them loads it.
--
-- @module tide.runtime

local process = require "tide.process"
local console = require "tide.connectors.console"
local file = require "tide.connectors.file"
local foreach = require "tide.connectors.foreach"
local kafka = require "tide.connectors.kafka"
local memory = require "tide.connectors.memory"
local postgres = require "tide.connectors.postgres"
local rate = require "tide.connectors.rate"
local socket = require "tide.connectors.socket"
local topic = require "tide.connectors.topic"

local M = {}

--- The process's event loop (a tide.Loop), created on first use.
-- @function loop
M.loop = process.loop

--- Set (or, with nil, remove) the terminal's owner; returns the previous one.
-- @function set_terminal_owner
M.set_terminal_owner = process.set_terminal_owner

--- Write text to stdout around the terminal's owner.
-- @function write
M.write = process.write

-- The built-in connectors, by the names users give them.
M.SOURCES = { "file", "kafka", "memory", "rate", "socket", "topic" }
M.SINKS = { "console", "file", "foreach", "foreach_batch", "memory", "postgres", "topic" }

local MODULE = { console = console, file = file, foreach = foreach, foreach_batch = foreach, kafka = kafka,
  memory = memory,
  postgres = postgres, rate = rate, socket = socket, topic = topic }

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
  local d = MODULE[name][kind == "source" and "sources" or "sinks"]
  return assert(d and d[name], "connector " .. name .. " has no " .. kind)
end

return M
