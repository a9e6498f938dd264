-- The crash test of the topic store (core/store.c): a child process appends
-- forever and is killed with SIGKILL at random moments; after each kill the
-- store must open, hold every append whole or not at all, hold exactly a
-- prefix of the appends the child started, leave no orphan file or torn
-- tail behind, and take new appends.
--
-- The child records nothing in the store beyond its rows: on start it reads
-- the tail of each partition to find the highest append number n present
-- and goes on from n + 1. Append n writes k(n) rows (n, i, k) for i = 1..k,
-- plain or keyed over 3 partitions, through append or append_json. Before
-- an append the child writes "s <n>" to a log file and after it "d <n>"
-- (unbuffered), so the parent can tell a kill that landed between the two
-- and check that every append the child saw succeed is in the store.
--
-- The random seed is printed; set TIDE_CRASH_SEED to replay one run.

local tide = require "tide"
local support = require "support"
local CHILD_PRELUDE = support.CHILD_PRELUDE
local tmpname = support.tmpname
local write_file = support.write_file
local read_file = support.read_file
local sleep_ms = support.sleep_ms

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

-- { name = size } of the files in dir.
local function sizes(dir)
  local out = {}
  local p = io.popen("find '" .. dir .. "' -maxdepth 1 -type f -printf '%s %f\\n' 2>/dev/null")
  for line in p:lines() do
    local sz, name = line:match("^(%d+) (.+)$")
    if sz then out[name] = tonumber(sz) end
  end
  p:close()
  return out
end

-- Rows per append: 1..3000, a mix of small and large.
local function k_of(n)
  if n % 5 == 0 then return n % 7 + 1 end
  return (n * 7919) % 3000 + 1
end

local K_OF_SRC = [[
local function k_of(n)
  if n % 5 == 0 then return n % 7 + 1 end
  return (n * 7919) % 3000 + 1
end
]]

local NPART = 3

-- Which appends of the "mix" child are keyed.
local function mix_keyed(n) return n % 4 == 1 or n % 4 == 3 end

-- The appender. arg: dir, log file, mode ("mix" or "huge").
local CHILD = CHILD_PRELUDE .. K_OF_SRC .. [[
local dir, logname, mode = arg[1], arg[2], arg[3]
local db = tide.open(dir)
local t = db:topic("crash")
local maxn = 0
for _, o in ipairs(t:offsets()) do
  local from = math.max(o.earliest, o.latest - 3100)
  for r in t:read { partition = o.partition, from = from } do
    if r.n > maxn then maxn = r.n end
  end
end
local log = assert(io.open(logname, "a"))
log:setvbuf("no")
local pad = string.rep("p", 12)
local huge_rows = {}
if mode == "huge" then
  for i = 1, 140000 do huge_rows[i] = { n = 0, i = i, k = 140000, key = "k" .. (i % 5), pad = pad } end
end
local n = maxn
while true do
  n = n + 1
  local k = mode == "huge" and 140000 or k_of(n)
  local how = mode == "huge" and 0 or n % 4   -- 0 plain, 1 keyed, 2 json, 3 json keyed
  local opts = (how == 1 or how == 3) and { key = "key" } or nil
  log:write("s ", n, "\n")
  if mode == "huge" then
    for i = 1, k do huge_rows[i].n = n end
    t:append(huge_rows)
  elseif how < 2 then
    local rows = {}
    for i = 1, k do rows[i] = { n = n, i = i, k = k, key = "k" .. (i % 5), pad = pad } end
    t:append(rows, opts)
  else
    local lines = {}
    for i = 1, k do
      lines[i] = string.format('{"n":%d,"i":%d,"k":%d,"key":"k%d","pad":"%s"}', n, i, k, i % 5, pad)
    end
    t:append_json(table.concat(lines, "\n") .. "\n", opts)
  end
  log:write("d ", n, "\n")
end
]]

---------------------------------------------------------------------------
-- The checker
---------------------------------------------------------------------------

-- State carried between kills: what has been verified so far.
local function new_state()
  return {
    pos = {},          -- partition -> next offset to check
    last_n = {},       -- partition -> highest child n seen in it
    maxn = 0,          -- every child append 1..maxn verified whole
    keypart = {},      -- key -> partition (keyed appends)
    markers = 0,       -- parent records appended so far
    marker_seen = {},  -- marker number -> true
  }
end

-- A cheap check for the per-row loop (luassert is too slow for millions of
-- rows): raise with the formatted message when cond is false.
local function need(cond, fmt, ...)
  if not cond then error(string.format(fmt, ...), 2) end
end

-- Verify the rows appended since the last check (every partition from where
-- the previous check stopped). Returns the new maxn.
local function check_new_rows(t, st, expect_k, keyed)
  local tally = {}     -- n -> { count=, seen_i = {} }
  for p = 0, NPART - 1 do
    local pos = st.pos[p] or 0
    local run_n, run_i = nil, 0
    local seen_here = {}
    local last_n = st.last_n[p] or 0
    for r in t:read { partition = p, from = pos } do
      local n, i = r.n, r.i
      need(r.offset == pos, "partition %d: offset %d where %d was due", p, r.offset, pos)
      pos = pos + 1
      if n < 0 then
        -- a record of the parent
        need(r.key == "parent", "parent record %d has key %s", -n, r.key)
        need(not st.marker_seen[-n], "parent record %d twice", -n)
        st.marker_seen[-n] = true
        run_n = nil
      else
        need(n > st.maxn, "append %d is present again (a duplicate; %d were checked before)", n, st.maxn)
        need(r.k == expect_k(n), "append %d: k is %d, wants %d", n, r.k, expect_k(n))
        need(i >= 1 and i <= r.k, "append %d: row index %d outside 1..%d", n, i, r.k)
        if n ~= run_n then
          need(not seen_here[n], "partition %d: append %d is split in two runs", p, n)
          need(n > last_n, "partition %d: append %d after append %d", p, n, last_n)
          seen_here[n] = true
          run_n, run_i, last_n = n, 0, n
        end
        need(i > run_i, "append %d: row %d after row %d", n, i, run_i)
        run_i = i
        local tl = tally[n]
        if not tl then
          tl = { count = 0, seen_i = {} }
          tally[n] = tl
        end
        need(not tl.seen_i[i], "append %d: row %d twice", n, i)
        tl.seen_i[i] = true
        tl.count = tl.count + 1
        if keyed(n) then
          local kp = st.keypart[r.key]
          if kp == nil then st.keypart[r.key] = p end
          need(kp == nil or kp == p, "key %s in partitions %s and %d", r.key, tostring(kp), p)
        end
      end
    end
    st.pos[p] = pos
    st.last_n[p] = last_n
  end
  -- the new appends are exactly maxn+1 .. m, each whole
  local m = st.maxn
  while tally[m + 1] do m = m + 1 end
  for n, tl in pairs(tally) do
    assert.is_true(n <= m, "append " .. n .. " present but " .. (st.maxn + 1) .. ".." .. n .. " is not a prefix")
    assert.equal(expect_k(n), tl.count, "append " .. n .. " is whole")
  end
  st.maxn = m
  return m
end

-- The last "s n" and "d n" of the child's log (0 when none).
local function log_tail(path)
  local s, d = 0, 0
  for kind, n in read_file(path):gmatch("([sd]) (%d+)\n") do
    if kind == "s" then s = tonumber(n) else d = tonumber(n) end
  end
  return s, d
end

-- Files of every partition directory, before the store is opened.
local function snapshot_files(dir, id)
  local out = {}
  for p = 0, NPART - 1 do out[p] = sizes(string.format("%s/topics/%d/p%d", dir, id, p)) end
  return out
end

-- After an open: every .seg file is named by segments(), with its size.
-- Returns how many files the open removed or cut (compared to before).
local function check_files(dir, t, before)
  local id = t:info().id
  local named = {}
  for p = 0, NPART - 1 do named[p] = {} end
  for _, s in ipairs(t:segments()) do
    named[s.partition][string.format("%020d.seg", s.base_offset)] = s.bytes
  end
  local cleaned, torn = 0, 0
  for p = 0, NPART - 1 do
    local now = sizes(string.format("%s/topics/%d/p%d", dir, id, p))
    for name, size in pairs(now) do
      assert.is_not_nil(named[p][name], "orphan file p" .. p .. "/" .. name)
      assert.equal(named[p][name], size, "p" .. p .. "/" .. name .. " is its committed size")
    end
    for name in pairs(named[p]) do assert.is_not_nil(now[name], "segment p" .. p .. "/" .. name .. " exists") end
    for name, size in pairs(before[p]) do
      if not named[p][name] then cleaned = cleaned + 1
      elseif size > named[p][name] then torn = torn + 1 end
    end
  end
  return cleaned, torn
end

-- Start the child; returns a handle whose close() waits for it, and its pid.
local function spawn(script, dir, log, mode, errf)
  return support.spawn_lua(script, { dir, log, mode }, errf)
end

---------------------------------------------------------------------------
-- Specs
---------------------------------------------------------------------------

describe("a store whose writer is killed", function()
  local dir, script, log, errf, seed

  before_each(function()
    dir, script, log, errf = tmpname(), tmpname() .. ".lua", tmpname(), tmpname()
    write_file(script, CHILD)
    seed = tonumber(os.getenv("TIDE_CRASH_SEED")) or (os.time() * 1000 + math.floor(os.clock() * 1000))
    math.randomseed(seed)
  end)

  after_each(function()
    os.execute(string.format("rm -rf '%s' '%s' '%s' '%s'", dir, script, log, errf))
  end)

  -- One round: run the child for delay_ms, kill it, reopen and check.
  local function round(st, id, mode, delay_ms, expect_k, keyed, stats)
    local p, pid = spawn(script, dir, log, mode, errf)
    sleep_ms(delay_ms)
    os.execute("kill -9 " .. pid .. " 2>/dev/null")
    p:read("a")
    p:close() -- waits for sh, which waits for the child
    assert.equal("", read_file(errf), "the child failed on its own (seed " .. seed .. ")")
    local t0 = os.clock()
    local before = snapshot_files(dir, id)
    local db = tide.open(dir)
    local t = db:topic("crash")
    local cleaned, torn = check_files(dir, t, before)
    local prev = st.maxn
    local m = check_new_rows(t, st, expect_k, keyed)
    local started, done = log_tail(log)
    assert.is_true(done <= m, "append " .. done .. " returned in the child but is not in the store")
    assert.is_true(m <= math.max(started, prev), "the store holds appends the child never started")
    if started > m then stats.mid = stats.mid + 1 end
    if cleaned > 0 or torn > 0 then stats.cleaned = stats.cleaned + 1 end
    stats.orphans, stats.torn = stats.orphans + cleaned, stats.torn + torn
    -- the parent appends and reads back
    st.markers = st.markers + 1
    local first, _, ranges = t:append { { n = -st.markers, i = 0, k = 0, key = "parent", pad = "m" } }
    local part = ranges[1].partition
    local got = {}
    for r in t:read { partition = part, from = first } do got[#got + 1] = r end
    assert.equal(1, #got)
    assert.equal(-st.markers, got[1].n)
    db:close()
    if os.getenv("CRASH_DEBUG") then io.stderr:write(string.format("round m=%d check %.3fs\n", m, os.clock() - t0)) end
    return m
  end

  local function setup_topic()
    local db = tide.open(dir)
    local t = db:create_topic("crash", { schema = "n int, i int, k int, key string, pad string",
      partitions = NPART, segment_bytes = "64KB" })
    local id = t:info().id
    db:close()
    return id
  end

  it("keeps every append whole or absent, in order, through 30 random SIGKILLs", function()
    local id = setup_topic()
    local st = new_state()
    local stats = { mid = 0, cleaned = 0, orphans = 0, torn = 0 }
    local kills = 30
    for _ = 1, kills do round(st, id, "mix", math.random(0, 300), k_of, mix_keyed, stats) end
    -- a last full pass: every marker is there, and a reread from 0 agrees
    local db = tide.open(dir)
    local t = db:topic("crash")
    local final = new_state()
    assert.equal(st.maxn, check_new_rows(t, final, k_of, mix_keyed))
    for m = 1, st.markers do assert.is_true(final.marker_seen[m] or false, "parent record " .. m) end
    local segs = t:segments()
    db:close()
    assert.is_true(st.maxn > 0, "the child appended something")
    io.stderr:write(string.format(
      "\n[crash_spec] seed %d: %d kills, %d appends survived, %d kills landed mid-append " ..
      "(announced, not committed), %d kills left files to clean (%d orphan files, %d torn tails), %d segments\n",
      seed, kills, st.maxn, stats.mid, stats.cleaned, stats.orphans, stats.torn, #segs))
  end)

  it("keeps an append that spans several blocks and segments whole or absent", function()
    local id = setup_topic()
    local st = new_state()
    local stats = { mid = 0, cleaned = 0, orphans = 0, torn = 0 }
    local function k_huge() return 140000 end
    for _ = 1, 8 do round(st, id, "huge", math.random(100, 900), k_huge, function() return false end, stats) end
    local db = tide.open(dir)
    local segs = db:topic("crash"):segments()
    db:close()
    io.stderr:write(string.format(
      "\n[crash_spec] seed %d: 8 kills of 140000-row appends, %d survived, %d mid-append, " ..
      "%d orphan files and %d torn tails cleaned, %d segments\n",
      seed, st.maxn, stats.mid, stats.orphans, stats.torn, #segs))
  end)
end)
