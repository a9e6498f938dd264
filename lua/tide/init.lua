--- tide: a streaming engine for Lua.
--
-- The entry module. Stores and topics live in `tide.store`; this module
-- gathers the public calls of ../API.md that exist so far.
--
--    local tide = require "tide"
--    local db = tide.open("data")
--    db:create_topic("events", { schema = "ts timestamp, device string, signal int?" })
--    db:topic("events"):append{ { ts = 1700000000000, device = "a", signal = 3 } }
--
-- @module tide

local core = require "tide.core"
local store = require "tide.store"

local M = {}

--- The version of tide, e.g. `"0.1.0"`.
M.version = core.version

--- Open or create the store in directory `dir`.
-- @function open
-- @see tide.store.open
M.open = store.open

--- Open the default store: `$TIDE_DATA`, else `./tide-data`.
-- @tab[opt] opts as for `open`
-- @return a store
function M.default_store(opts)
  local dir = os.getenv("TIDE_DATA")
  if not dir or dir == "" then dir = "./tide-data" end
  return store.open(dir, opts)
end

return M
