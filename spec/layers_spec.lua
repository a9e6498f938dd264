-- The Lua modules' layers (docs/ARCHITECTURE.md): each module requires
-- the others at the top of its file, only modules of lower layers, so the
-- graph has no cycle; connectors reach the engine through tide.connector.

-- Lower layers first; a module may require modules of lower layers only.
local LAYERS = {
  { "tide.util", "tide.process", "tide.errors" },
  { "tide.schema", "tide.session", "tide.stateful", "tide.stream_join" },
  { "tide.frame", "tide.plan" },
  { "tide.exec", "tide.store" },
  { "tide.connector" },
  { "tide.connectors.console", "tide.connectors.file", "tide.connectors.foreach", "tide.connectors.memory",
    "tide.connectors.postgres", "tide.connectors.rate", "tide.connectors.socket", "tide.connectors.topic",
    "tide.connectors.kafka.source", "tide.connectors.kafka.sink" },
  -- a connector made of parts (connectors/<name>/init.lua gathers them)
  { "tide.connectors.kafka" },
  { "tide.runtime" },
  -- scale-out: the plan cut into sub-topologies, and the runtime of their tasks
  { "tide.topology" },
  { "tide.scaleout" },
  { "tide.query" },
  { "tide.ui" },
  { "tide" },
  { "tide.repl", "tide.cli" },
}
-- The CLI loads tide when a command needs it, through its load_tide, so
-- that `tide --help` works and a broken install is one line on stderr
-- (`tide: <what>: cannot load the tide module: ...`), not a traceback;
-- nothing requires it but bin/tide.
local LAZY_OK = { ["tide.cli"] = true }
local EXTERNAL = { ["tide.core"] = true, cjson = true }

local function path_of(mod)
  if mod == "tide" then return "lua/tide/init.lua" end
  local c = mod:match("^tide%.connectors%.(.+)$")
  if c then
    local file = "connectors/" .. c:gsub("%.", "/")
    local f = io.open(file .. ".lua")
    if f then
      f:close()
      return file .. ".lua"
    end
    return file .. "/init.lua"
  end
  return "lua/" .. mod:gsub("%.", "/") .. ".lua"
end

-- The modules a file requires: at its top (an unindented
-- `local x = require "m"`), and anywhere else.
local function requires(path)
  local top, inner = {}, {}
  for line in io.lines(path) do
    local code = line:gsub("%-%-.*$", "")
    for m in code:gmatch("require%s*%(?%s*[\"']([%w%._]+)[\"']") do
      if code:match("^local [%w_]+ = require") then top[#top + 1] = m else inner[#inner + 1] = m end
    end
  end
  return top, inner
end

describe("the Lua modules", function()
  local rank = {}
  for i, layer in ipairs(LAYERS) do
    for _, m in ipairs(layer) do rank[m] = i end
  end

  it("are all in a layer", function()
    local p = assert(io.popen("ls lua/tide/*.lua connectors/*.lua connectors/*/*.lua"))
    local missing = {}
    for path in p:lines() do
      local name = path:match("^lua/tide/(.+)%.lua$")
      local mod = name and (name == "init" and "tide" or "tide." .. name) or
        ("tide.connectors." .. path:match("^connectors/(.+)%.lua$"):gsub("/init$", ""):gsub("/", "."))
      if not rank[mod] then missing[#missing + 1] = mod end
    end
    p:close()
    assert.same({}, missing)
  end)

  it("require each other at the top of the file, lower layers only", function()
    local bad = {}
    for mod, r in pairs(rank) do
      local top, inner = requires(path_of(mod))
      for _, m in ipairs(top) do
        if not EXTERNAL[m] and not (rank[m] and rank[m] < r) then
          bad[#bad + 1] = string.format("%s requires %s", mod, m)
        end
      end
      if not LAZY_OK[mod] then
        for _, m in ipairs(inner) do bad[#bad + 1] = string.format("%s requires %s inside a function", mod, m) end
      end
    end
    table.sort(bad)
    assert.same({}, bad)
  end)

  it("load one by one in a fresh interpreter, each on its own", function()
    local failed = {}
    for mod in pairs(rank) do
      local cmd = string.format("lua5.4 -e 'package.path = %q; package.cpath = %q; require %q' 2>&1",
        "lua/?.lua;lua/?/init.lua;" .. package.path, package.cpath, mod)
      local p = assert(io.popen(cmd))
      local out = p:read("a")
      local ok = p:close()
      if not ok then failed[#failed + 1] = mod .. ": " .. out end
    end
    assert.same({}, failed)
  end)
end)
