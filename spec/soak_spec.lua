-- The bounded-state soak of issue 6 on a small input, so that CI runs its
-- checks on every change: 300,000 events with 2 s of disorder through a
-- 10-second tumbling window count by 1000 devices, 5-second watermark,
-- append mode, batches of about 10,000 events, a real checkpoint. State
-- rows under the bound of the open windows, no late rows, RSS flat after
-- warm-up, checkpoint size bounded, output equal to an independent count.
-- bench/soak_lib.lua holds the query and the checks (bench/soak.lua runs
-- them on 10 million events); no timing is asserted.

local support = require "support"
package.path = support.ROOT .. "/?.lua;" .. package.path
local S = require "bench.soak_lib"

local N, PER_BATCH = 300000, 10000

describe("soak: event-time state stays bounded", function()
  local dir, events, r, want, lines, groups

  setup(function()
    dir = support.tmpname()
    assert(os.execute("mkdir -p " .. dir))
    events = dir .. "/events.jsonl"
    S.generate(events, N)
    local bytes = support.file_size(events)
    -- The query runs in a child process, whose RSS is the query's alone
    -- (not busted's, with whatever the specs before left in it). Under
    -- `make asan` the child gets the sanitizer's quarantine turned off:
    -- it holds up to 256 MB of freed memory by default, which would make
    -- any RSS grow until it is full.
    local result = dir .. "/result.lua"
    local script = dir .. "/child.lua"
    support.write_file(script, support.CHILD_PRELUDE .. string.format([[
package.path = %q .. ";" .. package.path
local S = require "bench.soak_lib"
local r = S.run { events = %q, dir = %q, batch_bytes = %d }
local f = assert(io.open(%q, "wb"))
f:write(S.dump(r))
f:close()
]], support.ROOT .. "/?.lua", events, dir, math.floor(bytes / N * PER_BATCH), result))
    local asan = os.getenv("ASAN_OPTIONS")
    local env = asan and string.format("ASAN_OPTIONS='%s:quarantine_size_mb=0' ", asan) or ""
    local ok = os.execute(env .. "lua5.4 '" .. script .. "' 2> '" .. dir .. "/child.err'")
    assert(ok, "the soak query failed: " .. support.read_file(dir .. "/child.err"))
    r = S.load(support.read_file(result))
    -- the independent count after the run, as bench/soak.lua does
    want, groups, lines = S.expected(events)
  end)

  teardown(function()
    if dir then os.execute("rm -rf '" .. dir .. "'") end
  end)

  local checks
  local function check(name)
    checks = checks or S.check(r, want, { devices = 1000, lines = lines, rss_margin = 0.10,
      rss_slack = 4 * 2 ^ 20, ckpt_factor = 1.5 })
    for _, c in ipairs(checks) do
      if c.name == name then return c end
    end
    error("no check named " .. name)
  end

  it("reads every event, in batches of the size asked for", function()
    assert.are.equal(N, lines)
    assert.are.equal(N, r.input)
    -- 30 batches of ~10,000 events, the remainder, maybe a no-data batch
    assert.is_true(r.batches >= 30 and r.batches <= 32, "batches: " .. r.batches)
    for _, s in ipairs(r.samples) do
      assert.is_true(s.input <= PER_BATCH * 1.01, "batch " .. s.batch_id .. " read " .. s.input .. " rows")
    end
    assert.is_true(check("all batches reported").ok, check("all batches reported").text)
  end)

  it("keeps state rows under the bound of the open windows", function()
    local c = check("state rows bounded")
    assert.is_true(c.ok, c.text)
    -- 1000 devices x ceil((~10,000 + 2000 + 5000 + 10000) / 10000) = 3000,
    -- while 30,000+ groups go through the state
    assert.is_true(groups > 30000, "groups: " .. groups)
    local most = 0
    for _, s in ipairs(r.samples) do most = math.max(most, s.state_rows) end
    assert.is_true(most <= 3000, "state rows: " .. most)
  end)

  it("drops no row: the disorder is below the watermark delay", function()
    local c = check("no late rows")
    assert.is_true(c.ok, c.text)
  end)

  it("keeps the RSS flat after warm-up", function()
    local c = check("RSS flat")
    assert.is_true(c.ok, c.text)
  end)

  it("keeps the checkpoint's size bounded", function()
    local c = check("checkpoint bounded")
    assert.is_true(c.ok, c.text)
  end)

  it("emits every passed window once, with the independent count", function()
    local c = check("output equals the independent count")
    assert.is_true(c.ok, c.text)
    local f = check("final state = open windows")
    assert.is_true(f.ok, f.text)
    -- all but the last window's groups were emitted
    local emitted = 0
    for _ in io.lines(r.out) do emitted = emitted + 1 end
    assert.is_true(emitted >= groups - 1000 and emitted < groups, emitted .. " of " .. groups)
  end)
end)

describe("soak: the checks themselves", function()
  -- The checks must fail on what they guard against; fed made-up samples
  -- and outputs, not the engine's.
  local dir
  before_each(function()
    dir = support.tmpname()
    assert(os.execute("mkdir -p " .. dir))
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  local function fake(samples, out_lines, watermark)
    local out = dir .. "/out.txt"
    support.write_file(out, table.concat(out_lines, "\n") .. (#out_lines > 0 and "\n" or ""))
    local input = 0
    for _, s in ipairs(samples) do input = input + s.input end
    local reports = {}
    for i = 1, #samples do reports[i] = {} end
    return { samples = samples, reports = reports, batches = #samples, input = input, out = out,
      watermark = watermark }
  end
  local function samples(n, f)
    local list = {}
    for i = 1, n do
      list[i] = { batch_id = i - 1, input = 1000, state_rows = 15, dropped = 0, rss = 10 * 2 ^ 20,
        ckpt_bytes = 2 ^ 20 }
      if f then f(list[i], i) end
    end
    return list
  end
  local LIM = { devices = 10, lines = 8000, rss_margin = 0.1, rss_slack = 2 ^ 20, ckpt_factor = 1.5 }
  local function by_name(res, name)
    for _, c in ipairs(res) do
      if c.name == name then return c end
    end
  end
  -- two windows: [0, 10000) passed by the watermark, [10000, 20000) open
  local want = { [0] = { a = 3, b = 1 }, [10000] = { a = 2 } }
  local good_out = { "0 a 3", "0 b 1" }

  it("pass on a bounded run with the right output", function()
    local res = S.check(fake(samples(8, function(s, i) s.state_rows = i == 8 and 1 or 15 end), good_out, 10000),
      want, LIM)
    for _, c in ipairs(res) do assert.is_true(c.ok, c.name .. ": " .. c.text) end
  end)

  it("fail when state rows grow with the events", function()
    local res = S.check(fake(samples(8, function(s, i) s.state_rows = 1000 * i end), good_out, 10000), want, LIM)
    assert.is_false(by_name(res, "state rows bounded").ok)
  end)

  it("fail when RSS or the checkpoint keeps growing", function()
    local res = S.check(fake(samples(8, function(s, i)
      s.rss = i * 10 * 2 ^ 20
      s.ckpt_bytes = i * 2 ^ 20
    end), good_out, 10000), want, LIM)
    assert.is_false(by_name(res, "RSS flat").ok)
    assert.is_false(by_name(res, "checkpoint bounded").ok)
  end)

  it("fail on late rows", function()
    local res = S.check(fake(samples(8, function(s, i) s.dropped = i == 3 and 1 or 0 end), good_out, 10000), want,
      LIM)
    assert.is_false(by_name(res, "no late rows").ok)
  end)

  it("fail on a wrong, missing, repeated or premature group", function()
    for _, out in ipairs {
      { "0 a 4", "0 b 1" },           -- wrong count
      { "0 a 3" },                    -- missing
      { "0 a 3", "0 b 1", "0 b 1" },  -- twice
      { "0 a 3", "0 b 1", "10000 a 2" }, -- a window the watermark has not passed
      { "0 a 3", "0 b 1", "garbage" },
    } do
      local res = S.check(fake(samples(8, function(s, i) s.state_rows = i == 8 and 1 or 15 end), out, 10000), want,
        LIM)
      assert.is_false(by_name(res, "output equals the independent count").ok, table.concat(out, "|"))
    end
  end)

  it("fail when too few batches ran to compare early and late", function()
    local res = S.check(fake(samples(7), good_out, 10000), want, LIM)
    assert.is_false(by_name(res, "enough batches").ok)
  end)

  it("generate events in gen_events' form, deterministic, within the disorder", function()
    local a, b = dir .. "/a.jsonl", dir .. "/b.jsonl"
    S.generate(a, 5000)
    S.generate(b, 5000)
    assert.are.equal(support.read_file(a), support.read_file(b))
    local i = 0
    for line in io.lines(a) do
      local ts, dev, sig, kind = line:match('^{"ts":(%d+),"device":"dev%-(%d+)","signal":(%d+),"kind":"(%a+)"}$')
      assert.is_truthy(ts, line)
      ts, dev, sig = tonumber(ts), tonumber(dev), tonumber(sig)
      local nominal = 1700000000000 + i
      assert.is_true(ts <= nominal and ts >= nominal - 2000, line)
      assert.is_true(dev >= 0 and dev < 1000 and sig >= 0 and sig <= 100, line)
      assert.is_truthy(({ view = true, click = true, purchase = true })[kind], line)
      i = i + 1
    end
    assert.are.equal(5000, i)
  end)
end)
