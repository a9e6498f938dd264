-- What an earlier try left behind (issue 18 item 15): a connector's message
-- prefixed twice, and temporary checkpoints of processes that were killed.

local tide = require "tide"
local support = require "spec.support"

describe("messages", function()
  it("name the connector once when its schema cannot be made", function()
    assert.has_error(function() tide.read_stream("file", { path = "/nonexistent/*.jsonl", format = "json" }) end,
      "read_stream(file): option 'schema' is required for json")
  end)
end)

describe("temporary checkpoints", function()
  local script
  before_each(function() script = support.tmpname() .. ".lua" end)
  after_each(function() os.remove(script) end)

  local function temp_dirs()
    local set = {}
    for _, p in ipairs(require("tide.core").glob("/tmp/*-tide-checkpoint") or {}) do set[p:gsub("/$", "")] = true end
    return set
  end

  it("of a killed process are removed when the next one is made, those in use are not", function()
    local before = temp_dirs()
    -- a query with a temporary checkpoint, killed (SIGKILL) while it runs
    support.write_file(script, [[
local tide = require "tide"
tide.read_stream("rate", { rows_per_second = 1000 }):write_stream(function() print("batch") io.stdout:flush() end)
]])
    local p = io.popen(string.format("%s/bin/tide run %s & echo $!; wait", support.ROOT, script))
    local pid = tonumber(p:read("l"))
    assert.equal("batch", p:read("l"))
    local left
    for d in pairs(temp_dirs()) do if not before[d] then left = d end end
    assert.is_string(left)
    os.execute("kill -KILL " .. pid)
    p:read("a")
    p:close()
    assert.is_true(support.exists(left .. "/query.lock"))
    -- one in use by this process stays
    local ms = tide.memory_stream("v int")
    local q = ms:frame():write_stream(function() end)
    local mine
    for d in pairs(temp_dirs()) do if not before[d] and d ~= left then mine = d end end
    assert.is_string(mine)
    assert.is_false(support.exists(left .. "/query.lock"))
    local q2 = ms:frame():write_stream(function() end)
    assert.is_true(support.exists(mine .. "/query.lock"))
    q:stop()
    q2:stop()
    assert.is_false(support.exists(mine .. "/query.lock"))
  end)
end)
