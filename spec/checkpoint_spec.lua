-- Specs of the query checkpoint store (core/ckpt.c through tide.Checkpoint,
-- core/l_ckpt.c): logs, meta, state databases written with commit N in one
-- transaction, iteration, purge, the exclusive lock (in this process and
-- from another), read-only opens, damaged directories, and a writer killed
-- with SIGKILL again and again in the middle of its commits.
--
-- The random seed of the crash spec is printed; set TIDE_CRASH_SEED to
-- replay one run.

local core = require "tide.core"
local support = require "support"
local tmpname, write_file, read_file, sleep_ms = support.tmpname, support.write_file, support.read_file,
  support.sleep_ms

-- Child scripts load only the C module (not the engine's Lua modules).
local PRELUDE = string.format("package.cpath = %q .. ';' .. package.cpath\nlocal core = require 'tide.core'\n",
  support.CPATH)

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- All key, value pairs of a state, in iteration order.
local function entries(ck, name)
  local out = {}
  for k, v in ck:state(name) do out[#out + 1] = { k, v } end
  return out
end

describe("a query checkpoint", function()
  local root, dir

  before_each(function()
    root = tmpname()
    dir = root .. "/ckpt/q1"
  end)

  after_each(function()
    collectgarbage() -- closes checkpoints a failed spec left open
    os.execute("rm -rf " .. q(root))
  end)

  it("is created with its missing parents and starts empty", function()
    local ck = assert(core.checkpoint(dir))
    assert.equal(dir, ck:path())
    assert.is_false(ck:is_read_only())
    local lo, lc = ck:latest()
    assert.is_nil(lo)
    assert.is_nil(lc)
    assert.is_nil(ck:offsets(0))
    assert.is_nil(ck:commit_entry(0))
    assert.is_nil(ck:get_meta("query_id"))
    assert.equal("1", ck:get_meta("format"))
    local st = ck:stats()
    assert.same({}, st.states)
    assert.equal(0, st.offsets)
    assert.equal(0, st.commits)
    assert.is_nil(st.first_id)
    assert.is_nil(st.last_offset_id)
    assert.is_nil(st.last_commit_id)
    assert.is_true(st.map_bytes >= st.file_bytes and st.file_bytes > 0)
    assert.equal("tide.Checkpoint (" .. dir .. ")", tostring(ck))
    ck:close()
    assert.is_false(ck:is_open())
    assert.equal("tide.Checkpoint (closed)", tostring(ck))
    ck:close() -- idempotent
    assert.has_error(function() ck:latest() end, "attempt to use a closed tide.Checkpoint")
  end)

  it("keeps meta, offset and commit entries across a reopen", function()
    local ck = assert(core.checkpoint(dir, { sync = false }))
    assert.is_true(ck:set_meta("query_id", "6f1c"))
    assert.is_true(ck:set_meta("plan", "project(a) <- memory"))
    local o0 = '{"v":1,"batch_id":0,"timestamp":1000,"watermark":null,"sources":[{"description":"M","end":3}]}'
    assert.is_true(ck:write_offsets(0, o0))
    assert.is_true(ck:commit(0, '{"v":1,"batch_id":0,"next_watermark":null}'))
    assert.is_true(ck:write_offsets(1, "o1"))
    ck:close()
    ck = assert(core.checkpoint(dir))
    assert.equal("6f1c", ck:get_meta("query_id"))
    assert.equal("project(a) <- memory", ck:get_meta("plan"))
    assert.equal(o0, ck:offsets(0))
    assert.equal('{"v":1,"batch_id":0,"next_watermark":null}', ck:commit_entry(0))
    local lo, lc = ck:latest()
    assert.equal(1, lo)
    assert.equal(0, lc)
    ck:close()
  end)

  it("treats an offset entry written again with the same text as done, and raises on other text", function()
    local ck = assert(core.checkpoint(dir))
    assert.is_true(ck:write_offsets(7, "a"))
    assert.is_true(ck:write_offsets(7, "a"))
    assert.has_error(function() ck:write_offsets(7, "b") end,
      "checkpoint " .. dir .. ": offset log 7 exists with other offsets")
    assert.equal("a", ck:offsets(7))
    ck:close()
  end)

  it("writes state changes with commit N and iterates states in key order", function()
    local ck = assert(core.checkpoint(dir))
    assert.is_true(ck:write_offsets(0, "o0"))
    assert.is_true(ck:commit(0, "c0", {
      counts = { put = { { "b", "2" }, { "a", "1" }, { "c\0x", "bin\0ary" } } },
      seen = { put = { { "k", "" } }, del = { "never-there" } },
    }))
    assert.same({ { "a", "1" }, { "b", "2" }, { "c\0x", "bin\0ary" } }, entries(ck, "counts"))
    assert.same({ { "k", "" } }, entries(ck, "seen"))
    assert.same({}, entries(ck, "unknown"))
    -- batch 1: puts first, then deletes
    assert.is_true(ck:write_offsets(1, "o1"))
    assert.is_true(ck:commit(1, "c1", { counts = { put = { { "a", "10" }, { "d", "4" } }, del = { "b", "d" } } }))
    assert.same({ { "a", "10" }, { "c\0x", "bin\0ary" } }, entries(ck, "counts"))
    local st = ck:stats()
    assert.equal(2, st.states.counts.entries)
    assert.equal(1, st.states.seen.entries)
    assert.is_true(st.states.counts.bytes >= 4096)
    assert.equal(1, st.last_commit_id)
    -- integer keys are 8 bytes big-endian, the same as string.pack(">I8", k)
    assert.is_true(ck:write_offsets(2, "o2"))
    assert.is_true(ck:commit(2, "c2", { ids = { put = { { 258, "x" }, { 1, "y" }, { string.pack(">I8", 7), "z" } },
      del = { 7 } } }))
    assert.same({ { string.pack(">I8", 1), "y" }, { string.pack(">I8", 258), "x" } }, entries(ck, "ids"))
    ck:close()
  end)

  it("writes change sets: their ops in order, appends past the last key and replaces below it", function()
    local ck = assert(core.checkpoint(dir))
    local function be(n) return string.pack(">I8", n) end
    local cs = core.state_changes()
    for id = 1, 2000 do cs:put(id, "v" .. id) end -- an empty state: every put appends
    cs:del(5)
    cs:put(5, "again") -- deleted, then put back: ops apply in order
    cs:put("zz", "s") -- keys of other lengths sort bytewise
    cs:put("a", "first")
    cs:del(999999) -- absent: no error
    assert.same({ 2003, 2 }, { cs:count() })
    local ops = cs:ops()
    assert.same({ "put", be(1), "v1" }, ops[1])
    assert.same({ "del", be(5) }, ops[2001])
    assert.same({ "put", "a", "first" }, ops[2004])
    assert.same({ "del", be(999999) }, ops[2005])
    assert.is_true(ck:commit(0, "c0", { s = cs, t = { put = { { "x", "1" } } } }))
    local got = entries(ck, "s")
    assert.equal(2002, #got)
    assert.same({ be(1), "v1" }, got[1])
    assert.same({ be(5), "again" }, got[5])
    assert.same({ be(2000), "v2000" }, got[2000])
    assert.same({ { "a", "first" }, { "zz", "s" } }, { got[2001], got[2002] })
    assert.same({ { "x", "1" } }, entries(ck, "t"))
    -- the next batch: deletes at the front, replacements in the middle,
    -- new keys past the end, a put below the last key after the last key
    -- was deleted
    cs = core.state_changes()
    for id = 1, 1000 do cs:del(id) end
    cs:del("zz")
    for id = 1500, 1510 do cs:put(id, "new" .. id) end
    for id = 2001, 2100 do cs:put(id, "v" .. id) end
    cs:put("b", "between") -- below "zz"'s old place, above every 8-byte key starting with 0
    assert.is_true(ck:commit(1, "c1", { s = cs }))
    got = entries(ck, "s")
    assert.equal(1102, #got)
    assert.same({ be(1001), "v1001" }, got[1])
    assert.same({ be(1500), "new1500" }, got[500])
    assert.same({ be(2100), "v2100" }, got[1100])
    assert.same({ { "a", "first" }, { "b", "between" } }, { got[1101], got[1102] })
    -- a change set that fails commits nothing, and can be committed after
    cs = core.state_changes()
    cs:put(1, "late")
    assert.has_error(function() ck:commit(1, "again", { s = cs }) end, "checkpoint " .. dir .. ": commit log 1 exists")
    assert.same({ be(1001), "v1001" }, entries(ck, "s")[1])
    assert.is_true(ck:commit(2, "c2", { s = cs }))
    assert.same({ be(1), "late" }, entries(ck, "s")[1])
    ck:close()
  end)

  it("writes nothing of a commit that fails", function()
    local ck = assert(core.checkpoint(dir))
    assert.is_true(ck:commit(0, "c0", { s = { put = { { "a", "1" } } } }))
    -- commit entry 0 exists: the whole transaction, state changes included, is undone
    assert.has_error(function()
      ck:commit(0, "again", { s = { put = { { "a", "2" }, { "z", "9" } } }, t = { put = { { "x", "1" } } } })
    end, "checkpoint " .. dir .. ": commit log 0 exists")
    assert.same({ { "a", "1" } }, entries(ck, "s"))
    assert.is_nil(ck:stats().states.t)
    assert.equal("c0", ck:commit_entry(0))
    -- a key LMDB cannot hold: refused before any transaction
    assert.has_error(function()
      ck:commit(1, "c1", { s = { put = { { "b", "1" } } }, u = { put = { { string.rep("k", 600), "v" } } } })
    end, "checkpoint " .. dir .. ": commit 1: state 'u': key must be 1..511 bytes, got 600")
    assert.has_error(function() ck:commit(1, "c1", { s = { del = { "" } } }) end,
      "checkpoint " .. dir .. ": commit 1: state 's': key must be 1..511 bytes, got 0")
    assert.is_nil(ck:commit_entry(1))
    assert.same({ { "a", "1" } }, entries(ck, "s"))
    ck:close()
  end)

  it("raises on bad arguments, naming them", function()
    local ck = assert(core.checkpoint(dir))
    local function err(fn, want) assert.has_error(fn, want) end
    err(function() core.checkpoint(dir .. "x", { sink = true }) end,
      "checkpoint: unknown option 'sink' (allowed: read_only, sync)")
    err(function() core.checkpoint(dir .. "x", { sync = "yes" }) end,
      "checkpoint: option 'sync' must be a boolean, got string")
    err(function() ck:write_offsets(-1, "x") end, "bad argument #1 to 'write_offsets' (batch id must be >= 0)")
    err(function() ck:commit(0, "c", { s = { put = { { "a", 1 } } } }) end,
      "commit: changes['s'].put[1]: value must be a string, got number")
    err(function() ck:commit(0, "c", { s = { put = { "a" } } }) end,
      "commit: changes['s'].put[1] must be a {key, value} pair, got string")
    err(function() ck:commit(0, "c", { s = { del = { -5 } } }) end,
      "commit: changes['s'].del[1]: key must be a string or an integer >= 0, got number")
    err(function() ck:commit(0, "c", { s = { del = { 1.5 } } }) end,
      "commit: changes['s'].del[1]: key must be a string or an integer >= 0, got number")
    err(function() ck:commit(0, "c", { s = { put = { { true, "v" } } } }) end,
      "commit: changes['s'].put[1]: key must be a string or an integer >= 0, got boolean")
    err(function() ck:commit(0, "c", { s = { puts = {} } }) end,
      "commit: changes['s']: unknown field 'puts' (allowed: del, put)")
    err(function() ck:commit(0, "c", { s = { put = "x" } }) end,
      "commit: changes['s'].put must be an array, got string")
    err(function() ck:commit(0, "c", { s = 1 }) end,
      "commit: changes['s'] must be a table {put = ..., del = ...} or a change set, got number")
    local cs = core.state_changes()
    err(function() cs:put(-1, "v") end, "bad argument #1 to 'put' (a key is a string or an integer >= 0, got number)")
    err(function() cs:put("", "v") end, "bad argument #1 to 'put' (a key is 1..511 bytes)")
    err(function() cs:put(string.rep("k", 512), "v") end, "bad argument #1 to 'put' (a key is 1..511 bytes)")
    err(function() cs:put("k", 5) end, "bad argument #2 to 'put' (a value is a string, got number)")
    err(function() cs:del(true) end, "bad argument #1 to 'del' (a key is a string or an integer >= 0, got boolean)")
    assert.same({ 0, 0 }, { cs:count() })
    err(function() ck:commit(0, "c", { [1] = {} }) end, "commit: changes: state names must be strings, got number")
    err(function() ck:state("") end, "bad argument #1 to 'state' (state name must be 1..200 bytes without NUL)")
    err(function() ck:set_meta("format", "2") end, "checkpoint " .. dir .. ": meta key 'format' is reserved")
    err(function() ck:get_meta("") end, "bad argument #1 to 'get_meta' (meta key must be 1..511 bytes)")
    assert.is_nil(ck:commit_entry(0)) -- nothing of the above was written
    ck:close()
  end)

  it("iterates a large state in chunks, in order, and stops when the checkpoint closes", function()
    local ck = assert(core.checkpoint(dir, { sync = false }))
    local put = {}
    for i = 1, 3000 do put[i] = { string.format("k%06d", (i * 7919) % 3000), string.rep("v", i % 50) } end
    assert.is_true(ck:commit(0, "c0", { big = { put = put } }))
    local n, prev = 0, nil
    for k, v in ck:state("big") do
      n = n + 1
      assert.is_true(prev == nil or prev < k)
      assert.equal(tonumber(k:sub(2)) % 3000, tonumber(k:sub(2)))
      assert.is_string(v)
      prev = k
    end
    assert.equal(3000, n)
    local it = ck:state("big")
    for _ = 1, 600 do assert.is_string(it()) end -- past the first chunk
    ck:close()
    assert.has_error(function() it() end, "attempt to use a closed tide.Checkpoint")
  end)

  it("purges log entries before an id", function()
    local ck = assert(core.checkpoint(dir, { sync = false }))
    for n = 0, 29 do
      assert.is_true(ck:write_offsets(n, "o" .. n))
      assert.is_true(ck:commit(n, "c" .. n))
    end
    assert.equal(20, ck:purge(10))
    assert.equal(0, ck:purge(10))
    local st = ck:stats()
    assert.equal(20, st.offsets)
    assert.equal(20, st.commits)
    assert.equal(10, st.first_id)
    assert.is_nil(ck:offsets(9))
    assert.equal("o10", ck:offsets(10))
    assert.has_error(function() ck:purge(-1) end, "bad argument #1 to 'purge' (batch id must be >= 0)")
    ck:close()
  end)

  it("is used by one query at a time in this process", function()
    local ck = assert(core.checkpoint(dir))
    local ok, msg, code = core.checkpoint(dir)
    assert.is_nil(ok)
    assert.equal("checkpoint " .. dir .. ": in use by another query", msg)
    assert.equal("EBUSY", code)
    ok, msg = core.checkpoint(dir, { read_only = true })
    assert.is_nil(ok)
    assert.equal("checkpoint " .. dir .. ": open by a query of this process", msg)
    ck:close()
    do
      local ck2 <close> = assert(core.checkpoint(dir))
      assert.is_true(ck2:write_offsets(0, "o"))
    end
    -- released by __close; and by the garbage collector
    assert(core.checkpoint(dir))
    collectgarbage()
    collectgarbage()
    local ro = assert(core.checkpoint(dir, { read_only = true }))
    assert.equal("o", ro:offsets(0))
    ro:close()
    assert(core.checkpoint(dir)):close()
  end)

  it("is refused to a second process while a query holds it, and read-only opens see its data", function()
    local script, ready = tmpname() .. ".lua", tmpname()
    write_file(script, PRELUDE .. [[
local ck = assert(core.checkpoint(arg[1]))
assert(ck:write_offsets(0, "held"))
assert(ck:set_meta("name", "holder"))
local f = assert(io.open(arg[2], "w")); f:write("ready"); f:close()
io.read("a") -- until the parent closes our stdin
ck:close()
]])
    local child = io.popen("lua5.4 " .. q(script) .. " " .. q(dir) .. " " .. q(ready), "w")
    for _ = 1, 500 do
      if read_file(ready) == "ready" then break end
      sleep_ms(10)
    end
    assert.equal("ready", read_file(ready))
    local ok, msg, code = core.checkpoint(dir)
    assert.is_nil(ok)
    assert.equal("checkpoint " .. dir .. ": in use by another query", msg)
    assert.equal("EBUSY", code)
    local ro = assert(core.checkpoint(dir, { read_only = true }))
    assert.is_true(ro:is_read_only())
    assert.equal("held", ro:offsets(0))
    assert.equal("holder", ro:get_meta("name"))
    assert.has_error(function() ro:write_offsets(1, "x") end,
      "checkpoint " .. dir .. ": write_offsets: opened read-only")
    assert.has_error(function() ro:commit(0, "x") end, "checkpoint " .. dir .. ": commit: opened read-only")
    ro:close()
    child:close() -- EOF on its stdin: it closes and exits
    local ck = assert(core.checkpoint(dir))
    assert.equal("held", ck:offsets(0))
    ck:close()
    os.remove(script)
    os.remove(ready)
  end)

  it("says what is wrong with a directory that cannot hold a checkpoint", function()
    os.execute("mkdir -p " .. q(root))
    local file = root .. "/file"
    write_file(file, "x")
    local ok, msg, code = core.checkpoint(file)
    assert.is_nil(ok)
    assert.equal("checkpoint " .. file .. ": not a directory", msg)
    assert.equal("ENOTDIR", code)
    ok, msg = core.checkpoint(file .. "/sub")
    assert.is_nil(ok)
    assert.equal("checkpoint " .. file .. "/sub: cannot create the directory: Not a directory", msg)
    -- directories no one may write, even root (sysfs)
    ok, msg = core.checkpoint("/sys/tide_spec/q1")
    assert.is_nil(ok)
    assert.matches("^checkpoint /sys/tide_spec/q1: cannot create the directory: %u", msg)
    ok, msg, code = core.checkpoint("/sys/kernel")
    assert.is_nil(ok)
    assert.matches("^checkpoint /sys/kernel: cannot open query.lock: %u", msg)
    assert.matches("^E", code)
    -- read-only: nothing to read
    ok, msg, code = core.checkpoint(root .. "/none", { read_only = true })
    assert.is_nil(ok)
    assert.equal("checkpoint " .. root .. "/none: No such file or directory", msg)
    assert.equal("ENOENT", code)
    ok, msg = core.checkpoint(root, { read_only = true })
    assert.is_nil(ok)
    assert.equal("checkpoint " .. root .. ": no checkpoint here (no data.mdb)", msg)
    -- a damaged data.mdb
    os.execute("mkdir -p " .. q(dir))
    write_file(dir .. "/data.mdb", string.rep("not lmdb ", 3000))
    ok, msg, code = core.checkpoint(dir)
    assert.is_nil(ok)
    assert.equal("checkpoint " .. dir .. ": cannot open data.mdb: MDB_INVALID: File is not an LMDB file", msg)
    assert.equal("MDB_INVALID", code)
    ok, msg = core.checkpoint(dir, { read_only = true })
    assert.is_nil(ok)
    assert.equal("checkpoint " .. dir .. ": cannot open data.mdb: MDB_INVALID: File is not an LMDB file", msg)
  end)

  it("refuses a checkpoint of another format version", function()
    local ck = assert(core.checkpoint(dir))
    ck:close()
    -- rewrite meta "format" with the LMDB tools, as a later build would
    local rc = os.execute(string.format("printf 'format\\n9\\n' | mdb_load -T -s meta %s", q(dir)))
    assert.is_true(rc)
    local ok, msg, code = core.checkpoint(dir)
    assert.is_nil(ok)
    assert.equal("checkpoint " .. dir .. ": format 9, this build reads 1", msg)
    assert.equal("EFORMAT", code)
  end)
end)

---------------------------------------------------------------------------
-- A writer killed in the middle of its commits
---------------------------------------------------------------------------

-- What batch n changes, and what the states hold after batches 0..c, known
-- to both the child and the checker:
--   counts: "total" = 0 + 1 + ... + n; "k<n>" = n's value; "k<n-3>" deleted
--   big:    60 values of 1500 bytes per batch, keys "b<n>_<i>"; those of
--           batch n-2 deleted
--   last:   "n" = n
local MODEL = [[
local function kval(n) return string.rep(string.char(97 + n % 26), 10 + n % 90) end
local function bval(n, i) return string.format("%06d:%03d:", n, i) .. string.rep("x", 1500) end
local function changes_for(n)
  local big = { put = {}, del = {} }
  for i = 1, 60 do
    big.put[i] = { string.format("b%06d_%03d", n, i), bval(n, i) }
    if n >= 2 then big.del[i] = string.format("b%06d_%03d", n - 2, i) end
  end
  local counts = { put = { { "total", tostring(n * (n + 1) // 2) }, { string.format("k%06d", n), kval(n) } } }
  if n >= 3 then counts.del = { string.format("k%06d", n - 3) } end
  return { counts = counts, big = big, last = { put = { { "n", tostring(n) } } } }
end
local function offsets_text(n) return string.format('{"v":1,"batch_id":%d,"sources":[{"end":%d}]}', n, n * 10) end
local function commit_text(n) return string.format('{"v":1,"batch_id":%d,"next_watermark":null}', n) end
]]

-- The child: continues from the checkpoint (re-running an uncommitted
-- batch with its logged offsets), logging "o n" after the offset entry,
-- "c n" after the commit returned. Purges every 10 batches.
local CHILD = PRELUDE .. MODEL .. [[
local dir, logname = arg[1], arg[2]
local ck = assert(core.checkpoint(dir))
local lo, lc = ck:latest()
local log = assert(io.open(logname, "a"))
log:setvbuf("no")
local n = (lc or -1) + 1
if lo and lo >= n then assert(ck:offsets(n) == offsets_text(n), "the logged offsets of the batch to re-run") end
while true do
  assert(ck:write_offsets(n, offsets_text(n)))
  log:write("o ", n, "\n")
  -- "big" goes as a change set (what the engine's aggregations commit):
  -- its deletes, then its puts, which append past the last key
  local ch = changes_for(n)
  local cs = core.state_changes()
  for _, key in ipairs(ch.big.del) do cs:del(key) end
  for _, kv in ipairs(ch.big.put) do cs:put(kv[1], kv[2]) end
  ch.big = cs
  assert(ck:commit(n, commit_text(n), ch))
  log:write("c ", n, "\n")
  if n % 10 == 9 and n > 20 then assert(ck:purge(n - 20)) end
  n = n + 1
end
]]

local model = assert(load(MODEL .. "return changes_for, offsets_text, commit_text"))
local changes_for, offsets_text, commit_text = model()

-- The states expected after batches 0..c (c = nil: none), as sorted lists.
local function expected(c)
  local want = { counts = {}, big = {}, last = {} }
  if c == nil then return want end
  local maps = { counts = {}, big = {}, last = {} }
  for n = math.max(0, c - 3), c do
    for name, ch in pairs(changes_for(n)) do
      for _, kv in ipairs(ch.put or {}) do maps[name][kv[1]] = kv[2] end
      for _, key in ipairs(ch.del or {}) do maps[name][key] = nil end
    end
  end
  for name, m in pairs(maps) do
    for k, v in pairs(m) do want[name][#want[name] + 1] = { k, v } end
    table.sort(want[name], function(a, b) return a[1] < b[1] end)
  end
  return want
end

-- The last "o" and "c" ids in the child's log (-1 when none).
local function log_tail(logname)
  local o, c = -1, -1
  for kind, n in read_file(logname):gmatch("([oc]) (%d+)\n") do
    if kind == "o" then o = math.max(o, tonumber(n)) else c = math.max(c, tonumber(n)) end
  end
  return o, c
end

describe("a checkpoint whose writer is killed", function()
  local root, dir, script, log, errf, seed

  before_each(function()
    root = tmpname()
    dir, script, log, errf = root .. "/ckpt", root .. "/child.lua", root .. "/log", root .. "/err"
    os.execute("mkdir -p " .. q(root))
    write_file(script, CHILD)
    seed = tonumber(os.getenv("TIDE_CRASH_SEED")) or (os.time() * 1000 + math.floor(os.clock() * 1000))
    math.randomseed(seed)
  end)

  after_each(function() os.execute("rm -rf " .. q(root)) end)

  it("holds commit N with all of its state changes or none of them, through 25 SIGKILLs", function()
    local kills, between, prev_c = 25, 0, nil
    for round = 1, kills do
      local p = io.popen(string.format("sh -c 'lua5.4 %s %s %s >/dev/null 2>%s & echo $!; wait'", q(script), q(dir),
        q(log), q(errf)))
      local pid = tonumber(p:read("l"))
      sleep_ms(math.random(30, 250))
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
      p:read("a")
      p:close()
      assert.equal("", read_file(errf), "the child failed on its own (seed " .. seed .. ")")

      local ck = assert(core.checkpoint(dir))
      local lo, lc = ck:latest()
      local logged_o, logged_c = log_tail(log)
      -- every commit that returned in the child is there; nothing past what it started
      assert.is_true((lc or -1) >= logged_c, "commit " .. logged_c .. " returned but is missing (seed " .. seed .. ")")
      assert.is_true((lc or -1) <= logged_o + 1 and (lo or -1) <= logged_o + 1)
      assert.is_true(lo == lc or lo == (lc or -1) + 1, "offset log at most one batch ahead of the commit log")
      assert.is_true(prev_c == nil or (lc or -1) >= prev_c, "the commit log never goes back")
      if lo ~= lc then between = between + 1 end
      -- the states are exactly those of batches 0..lc
      local want = expected(lc)
      for _, name in ipairs({ "counts", "big", "last" }) do
        local got = entries(ck, name)
        local what = string.format("state %s after commit %s (seed %d)", name, tostring(lc), seed)
        assert.equal(#want[name], #got, what)
        for i, kv in ipairs(want[name]) do
          if got[i][1] ~= kv[1] or got[i][2] ~= kv[2] then
            error(string.format("%s: entry %d is %q", what, i, got[i][1]))
          end
        end
      end
      if lc then assert.equal(commit_text(lc), ck:commit_entry(lc)) end
      if lo then assert.equal(offsets_text(lo), ck:offsets(lo)) end
      prev_c = lc
      ck:close()
      if os.getenv("CRASH_DEBUG") then io.stderr:write(string.format("round %d: lo %s lc %s\n", round, lo, lc)) end
    end
    assert.is_true((prev_c or -1) > kills, "the child committed batches between the kills")
    io.stderr:write(string.format("\n[checkpoint_spec] seed %d: %d kills, %d batches committed, %d kills between " ..
      "the offset entry and the commit\n", seed, kills, prev_c + 1, between))
  end)
end)
