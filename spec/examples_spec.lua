-- Each example runs on its bundled data through the real `bin/tide run`,
-- and its output is checked.
local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

describe("examples", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("quickstart appends the bundled events, aggregates them by device and prunes segments by time", function()
    local out, code = run("lua5.4 bin/tide run examples/quickstart/pipeline.lua " .. dir)
    assert.are.equal(0, code, out)
    assert.truthy(out:find("appended 60 events", 1, true), out)
    -- the per-device counts add up to the 60 events of the bundled file
    local total = 0
    for n in out:gmatch("dev%-%d%s+(%d+)") do total = total + tonumber(n) end
    assert.are.equal(60, total)
    assert.truthy(out:find("events in [2026-11-21T12:00:10Z, 2026-11-21T12:00:20Z): 19", 1, true), out)
    -- at least one segment lies outside the time slice and is skipped
    assert.truthy(out:find("skipped", 1, true), out)
    assert.truthy(out:find("read", 1, true), out)
  end)

  it("quickstart's windowed counts and averages equal those computed from the input file", function()
    local groups = {}
    for line in io.lines("examples/quickstart/events.jsonl") do
      local ts = tonumber(line:match('"ts":(%-?%d+)'))
      local dev = line:match('"device":"([^"]+)"')
      local sig = tonumber(line:match('"signal":(%-?%d+)'))
      if sig >= 5 then
        local key = (ts // 10000 * 10000) .. "|" .. dev
        local g = groups[key] or { n = 0, sum = 0 }
        g.n, g.sum = g.n + 1, g.sum + sig
        groups[key] = g
      end
    end
    local out, code = run("lua5.4 bin/tide run examples/quickstart/pipeline.lua " .. dir)
    assert.are.equal(0, code, out)
    local seen = 0
    for ws, dev, n, avg in out:gmatch("|%s*(%d%d%d%d%-[%d%-T:]+Z)|%s*(dev%-%d)|%s*(%d+)|%s*([%d.]+)|") do
      local ms = require("tide").parse_time(ws)
      local g = assert(groups[ms .. "|" .. dev], "unexpected group " .. ws .. " " .. dev)
      assert.are.equal(g.n, tonumber(n))
      assert.is_true(math.abs(g.sum / g.n - tonumber(avg)) < 0.006, ws .. " " .. dev)
      seen = seen + 1
    end
    local expected = 0
    for _ in pairs(groups) do expected = expected + 1 end
    assert.are.equal(expected, seen)
  end)

  it("quickstart's counts equal an independent count of the input file", function()
    local expect = {}
    for line in io.lines("examples/quickstart/events.jsonl") do
      local dev = line:match('"device":"([^"]+)"')
      expect[dev] = (expect[dev] or 0) + 1
    end
    local out = run("lua5.4 bin/tide run examples/quickstart/pipeline.lua " .. dir)
    for dev, n in pairs(expect) do
      assert.truthy(out:find(string.format("%-8s %5d", dev, n), 1, true), dev .. " in\n" .. out)
    end
  end)
end)
