-- Fault injection (issue 18): the Nth write, fsync, rename or mmap under a
-- directory fails (spec/fault/shim.c, preloaded into a child process as
-- build/libtidefault.so). For each operation below a first run counts the
-- calls it makes, then one run per call N makes that call fail with EIO,
-- and for the append and the two sinks one run per write N makes the disk
-- fill up there (a short write, then ENOSPC for every later write, no free
-- blocks). Each failure must stop the
-- operation with a clear error (the cause spelled out, never "unknown
-- error"); afterwards the store and the checkpoint must open, hold only
-- whole commits, and the query, run again without faults, must deliver
-- every row exactly once.
--
-- Operations: creating a store and a topic; an append to a topic (a
-- produce); a query that reads one
-- batch from a topic and writes it through the topic sink (checkpoint
-- open, offset log, the sink's append, the commit); the same batch through
-- the file sink; windowed counts in append mode (state in the commits).

local tide = require "tide"
local core = require "tide.core"
local support = require "support"

local tmpname, read_file, run_cmd = support.tmpname, support.read_file, support.run_cmd

local SHIM = support.ROOT .. "/build/libtidefault.so"
local ROWS = 30 -- in the source topic; the query keeps those with v % 3 ~= 0
local KEPT = {}
for i = 1, ROWS do
  if i % 3 ~= 0 then KEPT[#KEPT + 1] = i end
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Child scripts: an append of 100 rows; the query, to a topic or to files.
local APPEND = support.CHILD_PRELUDE .. [[
local db = tide.open(arg[1] .. "/db")
local rows = {}
for i = 1, 100 do rows[i] = { id = 1000 + i, v = i } end
db:topic("in"):append(rows)
db:close()
print("done")
]]

local CREATE = support.CHILD_PRELUDE .. [[
local db = tide.open(arg[1] .. "/db")
if not db:topics()[1] then db:create_topic("ev", { schema = "x int" }) end
db:topic("ev"):append { { x = 1 } }
db:close()
print("done")
]]

local QUERY = support.CHILD_PRELUDE .. [[
local root, sink = arg[1], arg[2]
local db = tide.open(root .. "/db")
local f = db:read_stream("in", { max_records_per_trigger = 1000 }):where("v % 3 != 0"):select("id", "v * 2 AS v2")
local q
if sink == "topic" then
  q = f:write_stream("topic", { store = db, topic = "out", checkpoint = root .. "/ck", trigger = "available_now" })
else
  q = f:write_stream("file", { path = root .. "/files", format = "json", checkpoint = root .. "/ck",
    trigger = "available_now" })
end
q:await()
db:close()
print("done")
]]

-- Windowed counts with a watermark in append mode: the commits carry the
-- aggregation's state, and the windows come out in a later batch than
-- their rows.
local WINDOWS = support.CHILD_PRELUDE .. [[
local root = arg[1]
local db = tide.open(root .. "/db")
local q = db:read_stream("in", { max_records_per_trigger = 1000 })
  :with_column("ts", "CAST(id * 1000 AS timestamp)"):with_watermark("ts", "0 seconds")
  :group_by(tide.window("ts", "10 seconds")):agg { "count(*) AS n" }
  :select("CAST(window_start AS int) AS id", "n AS v2")
  :write_stream("topic", { store = db, topic = "out", checkpoint = root .. "/ck", trigger = "available_now",
    mode = "append" })
q:await()
db:close()
print("done")
]]

-- Run script (a file) in a child on dir; with fault = { at =, full = }
-- under the shim, logging the counted calls to log. Returns ok, output.
local function run(script, dir, args, fault, log)
  local env = ""
  if fault then
    env = string.format("LD_PRELOAD=%s TIDE_FAULT_DIR=%s TIDE_FAULT_AT=%d TIDE_FAULT_FULL=%s TIDE_FAULT_LOG=%s ",
      q(((os.getenv("LD_PRELOAD") or "") .. " " .. SHIM):gsub("^ ", "")), q(dir), fault.at, fault.full and "1" or "0",
      q(log))
  end
  local code, out, err = run_cmd(string.format("%slua5.4 %s %s %s", env, q(script), q(dir), args or ""))
  return code == 0 and out == "done\n", out .. err
end

-- The calls the shim counted in log: their ops ("pwrite", "fsync" ...).
local function logged_ops(log)
  local ops = {}
  for op in read_file(log):gmatch("%d+ (%w+) [^\n]*") do ops[#ops + 1] = op end
  return ops
end

local WRITES = { write = true, pwrite = true, writev = true, fwrite = true }

-- The failed call, as the log names it, for messages.
local function failed_call(log) return read_file(log):match("([^\n]*) FAILED") or "(none)" end

-- The ids a topic holds, in offset order, and whether offsets are dense.
local function topic_ids(dir, name)
  local db = tide.open(dir .. "/db")
  local ids, dense, nxt = {}, true, nil
  for rec in db:topic(name):read {} do
    if nxt and rec.offset ~= nxt then dense = false end
    nxt = rec.offset + 1
    ids[#ids + 1] = rec.id
  end
  db:close()
  return ids, dense
end

-- The ids in the file sink's part files, sorted.
local function file_ids(dir)
  local ids = {}
  local names = core.listdir(dir .. "/files") or {}
  for _, name in ipairs(names) do
    if name:match("^part%-.*%.json$") then
      for line in read_file(dir .. "/files/" .. name):gmatch("[^\n]+") do
        ids[#ids + 1] = assert(tonumber(line:match('"id":(%d+)')), "a whole line: " .. line)
      end
    end
  end
  table.sort(ids)
  return ids
end

-- The error a failed run must show: the cause spelled out.
local function assert_clear(out, full, what)
  assert.is_nil(out:find("unknown error", 1, true), what .. ": " .. out)
  if full then
    assert.truthy(out:find("No space left on device", 1, true), what .. ": " .. out)
  else
    assert.truthy(out:find("Input/output error", 1, true), what .. ": " .. out)
  end
end

describe("under injected I/O faults", function()
  local root, base, scripts

  -- A store with topics "in" (ROWS rows) and "out", in base/db.
  setup(function()
    root = tmpname()
    base = root .. "/base"
    assert(os.execute("mkdir -p " .. q(base)))
    local f = io.open(SHIM, "rb")
    assert(f, "the fault shim is not built (make): " .. SHIM)
    f:close()
    local db = tide.open(base .. "/db")
    local rows = {}
    for i = 1, ROWS do rows[i] = { id = i, v = i } end
    db:create_topic("in", { schema = "id int, v int" }):append(rows)
    db:create_topic("out", { schema = "id int, v2 int" })
    db:close()
    scripts = { append = root .. "/append.lua", query = root .. "/query.lua", create = root .. "/create.lua",
      windows = root .. "/windows.lua" }
    support.write_file(scripts.windows, WINDOWS)
    support.write_file(scripts.append, APPEND)
    support.write_file(scripts.create, CREATE)
    support.write_file(scripts.query, QUERY)
  end)

  teardown(function() os.execute("rm -rf " .. q(root)) end)

  -- A fresh copy of base for one run (an empty directory when empty).
  local function copy(name, empty)
    local dir = root .. "/" .. name
    os.execute("rm -rf " .. q(dir))
    if empty then assert(os.execute("mkdir " .. q(dir)))
    else assert(os.execute(string.format("cp -a %s %s", q(base), q(dir)))) end
    return dir
  end

  -- Walk N over every counted call of the script (args are its arguments
  -- after the directory; it starts from a copy of base, or from an empty
  -- directory when empty): check(dir, ok, out, full, what, call) judges
  -- the run whose call N failed (call: the shim's line for it). Then over
  -- the writes again with the disk filling up there, unless no_full (to
  -- keep the spec short where the first walk covers the same code).
  local function walk(script, args, check, empty, no_full)
    local dir, log = copy("count", empty), root .. "/count.log"
    os.remove(log)
    local ok, out = run(script, dir, args, { at = 0 }, log)
    assert.is_true(ok, out)
    local ops = logged_ops(log)
    local calls = #ops
    assert.is_true(calls >= 5, "calls counted: " .. calls)
    local failed = 0 -- runs that reported the fault (a walk where none did tested nothing)
    for _, full in ipairs(no_full and { false } or { false, true }) do
      -- a disk that fills up: from each write on (the other calls failing
      -- with ENOSPC instead of EIO change only the error's name)
      for n = 1, calls do
        if full and not WRITES[ops[n]] then goto next end
        dir = copy("run", empty)
        local flog = root .. "/run.log"
        os.remove(flog)
        local rok, rout = run(script, dir, args, { at = n, full = full }, flog)
        local call = failed_call(flog)
        local what = string.format("call %d of %d (%s)%s", n, calls, call, full and ", disk full" or "")
        check(dir, rok, rout, full, what, call)
        if not rok then failed = failed + 1 end
        ::next::
      end
    end
    assert.is_true(failed > 0, "no injected failure was reported")
    return calls
  end

  it("creating a store and a topic fails cleanly at every call and can be done again", function()
    walk(scripts.create, "", function(dir, ok, out, full, what)
      if not ok then assert_clear(out, full, what) end
      -- a failed creation leaves nothing LMDB refuses: the next run works
      local rok, rout = run(scripts.create, dir)
      assert.is_true(rok, what .. ": again: " .. rout)
      local db = tide.open(dir .. "/db")
      local n = db:topic("ev"):stats().records
      db:close()
      assert.is_true(n == 1 or n == 2, what .. ": " .. n .. " records")
      if ok then assert.equal(2, n, what) end
    end, true, true)
  end)

  it("an append fails cleanly at every call and the store keeps whole appends", function()
    walk(scripts.append, "", function(dir, ok, out, full, what)
      if not ok then assert_clear(out, full, what) end
      local ids, dense = topic_ids(dir, "in")
      assert.is_true(dense, what)
      -- all of the append or none of it
      assert.is_true(#ids == ROWS or #ids == ROWS + 100, what .. ": " .. #ids .. " rows")
      if ok then assert.equal(ROWS + 100, #ids, what) end
      -- the store takes the next append
      local db = tide.open(dir .. "/db")
      local first = db:topic("in"):append { { id = 0, v = 0 } }
      assert.equal(#ids, first, what)
      db:close()
    end)
  end)

  it("a topic-sink batch and its commit fail cleanly at every call and resume exactly once", function()
    walk(scripts.query, "topic", function(dir, ok, out, full, what, call)
      if not ok then assert_clear(out, full, what) end
      -- a failed write of the checkpoint names the checkpoint
      if not ok and call:find(dir .. "/ck/", 1, true) then
        assert.truthy(out:find("checkpoint " .. dir .. "/ck: ", 1, true), what .. ": " .. out)
      end
      local ids = topic_ids(dir, "out")
      assert.is_true(#ids == 0 or #ids == #KEPT, what .. ": " .. #ids .. " rows")
      -- the checkpoint opens and the query resumes
      local rok, rout = run(scripts.query, dir, "topic")
      assert.is_true(rok, what .. ": resume: " .. rout)
      ids = topic_ids(dir, "out")
      table.sort(ids)
      assert.same(KEPT, ids, what)
      local ck = assert(core.checkpoint(dir .. "/ck", { read_only = true }))
      ck:close()
    end)
  end)

  it("a stateful query's commits fail cleanly at every call and resume exactly once", function()
    walk(scripts.windows, "", function(dir, ok, out, full, what)
      if not ok then assert_clear(out, full, what) end
      local rok, rout = run(scripts.windows, dir)
      assert.is_true(rok, what .. ": resume: " .. rout)
      local db = tide.open(dir .. "/db")
      local got = {}
      for rec in db:topic("out"):read {} do got[#got + 1] = { rec.id, rec.v2 } end
      db:close()
      -- ids 1..30 at id seconds: [0 s, 10 s) holds 9, the next two 10 each;
      -- [30 s, 40 s) is still open
      assert.same({ { 0, 9 }, { 10000, 10 }, { 20000, 10 } }, got, what)
    end, false, true)
  end)

  it("a file-sink batch and its commit fail cleanly at every call and resume exactly once", function()
    walk(scripts.query, "file", function(dir, ok, out, full, what)
      if not ok then assert_clear(out, full, what) end
      local rok, rout = run(scripts.query, dir, "file")
      assert.is_true(rok, what .. ": resume: " .. rout)
      assert.same(KEPT, file_ids(dir), what)
    end)
  end)
end)
