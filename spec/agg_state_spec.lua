-- Specs for the streaming state of an aggregation (tide.Agg in
-- core/l_agg.c over core/agg.c): the changed groups of each push with
-- their state ids and records, restoring an aggregation from its records,
-- eviction by an event-time key, and the errors of each.

local core = require "tide.core"

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

local IN = assert(core.schema("w timestamp?, dev string?, v int?, s string?"))
local KEYS = assert(core.schema("w timestamp?, dev string?"))
local SPECS = {
  { kind = "count_star", name = "n" },
  { kind = "sum", arg_type = "int", name = "total" },
  { kind = "max", arg_type = "string", name = "top" },
  { kind = "first", arg_type = "string", name = "first_s" },
  { kind = "count_distinct", arg_type = "string", name = "kinds" },
  { kind = "avg", arg_type = "int", name = "mean" },
}
local KEY_EXPRS = { assert(core.expr("w", IN)), assert(core.expr("dev", IN)) }
local V, S = assert(core.expr("v", IN)), assert(core.expr("s", IN))
local ARGS = { false, V, S, S, S, V }

local function new_agg() return assert(core.agg(KEYS, SPECS)) end

local function push(a, rows)
  assert(a:push(assert(core.rows_batch(IN, rows)), KEY_EXPRS, ARGS))
end

-- Rows as "w/dev=n,total,top,first_s,kinds,mean" strings, in batch order.
local function show(batch)
  local out = {}
  for i, r in ipairs(batch:rows()) do
    out[i] = string.format("%s/%s=%s,%s,%s,%s,%s,%s", r.w, r.dev, r.n, r.total, r.top, r.first_s, r.kinds, r.mean)
  end
  return out
end

-- Random rows (seeded): windows 0..9 (and NULL), devices with long names.
local function random_rows(n, seed, wlo, whi)
  local rng = seed
  local function rnd(m)
    rng = (rng * 1103515245 + 12345) % 2147483648
    return rng % m
  end
  local rows = {}
  for i = 1, n do
    local r = {}
    if rnd(10) > 0 then r.w = (wlo + rnd(whi - wlo + 1)) * 1000 end
    if rnd(10) > 0 then r.dev = (rnd(2) == 0 and "device-with-a-long-name-" or "d") .. rnd(7) end
    if rnd(5) > 0 then r.v = rnd(100) - 20 end
    if rnd(5) > 0 then r.s = string.rep(string.char(97 + rnd(4)), 1 + rnd(20)) end
    rows[i] = r
  end
  return rows
end

---------------------------------------------------------------------------
-- changes
---------------------------------------------------------------------------

describe("agg:changes", function()
  it("gives the rows, state ids and records of the groups a push created or updated, in first-seen order", function()
    local a = new_agg()
    push(a, { { w = 0, dev = "a", v = 1, s = "x" }, { w = 0, dev = "b", v = 2, s = "y" }, { w = 0, dev = "a", v = 3 } })
    local rows, sids, recs = a:changes()
    assert.same({ "0/a=2,4,x,x,1,2.0", "0/b=1,2,y,y,1,2.0" }, show(rows))
    assert.same({ 1, 2 }, sids)
    assert.equal(2, #recs)
    assert.equal("string", type(recs[1]))
    assert.equal(1, recs[1]:byte(1)) -- the format version
  end)

  it("keeps the changes until clear_changes, then lists only what later pushes touch", function()
    local a = new_agg()
    push(a, { { w = 0, dev = "a", v = 1 }, { w = 0, dev = "b", v = 2 }, { w = 0, dev = "c", v = 2 } })
    assert.equal(3, #select(2, a:changes()))
    assert.equal(3, #select(2, a:changes()))
    a:clear_changes()
    local rows, sids, recs = a:changes()
    assert.equal(0, rows:nrows())
    assert.same({}, sids)
    assert.same({}, recs)
    push(a, { { w = 0, dev = "c", v = 10 }, { w = 1, dev = "a", v = 5 }, { w = 0, dev = "a", v = 1 } })
    rows, sids = a:changes()
    -- gid order: a (1), c (3), then the new group (w=1, a) with sid 4
    assert.same({ "0/a=2,2,nil,nil,0,1.0", "0/c=2,12,nil,nil,0,6.0", "1/a=1,5,nil,nil,0,5.0" }, show(rows))
    assert.same({ 1, 3, 4 }, sids)
    assert.same(show(a:result()), { "0/a=2,2,nil,nil,0,1.0", "0/b=1,2,nil,nil,0,2.0", "0/c=2,12,nil,nil,0,6.0",
      "1/a=1,5,nil,nil,0,5.0" })
  end)
end)

---------------------------------------------------------------------------
-- changed_rows, take_changes (what the engine commits per batch)
---------------------------------------------------------------------------

describe("agg:take_changes", function()
  local function be(n) return string.pack(">I8", n) end

  it("gives the changed rows alone, and a change set: deletes of the evicted, then puts keyed by sid", function()
    local a = new_agg()
    push(a, { { w = 0, dev = "a", v = 1 }, { w = 1000, dev = "b", v = 2 }, { w = 2000, dev = "c", v = 3 } })
    a:clear_changes()
    assert.same({ 0, 0 }, { a:take_changes():count() })
    push(a, { { w = 2000, dev = "c", v = 1 }, { w = 3000, dev = "d", v = 4 }, { w = 0, dev = "a", v = 5 } })
    local rows, n = a:changed_rows()
    assert.equal(3, n)
    assert.same({ "0/a=2,6,nil,nil,0,3.0", "2000/c=2,4,nil,nil,0,2.0", "3000/d=1,4,nil,nil,0,4.0" }, show(rows))
    -- evicting (without rows: just the count) takes a changed group (a, sid 1) and an unchanged one (b, sid 2)
    assert.equal(2, a:evict("w", 1000, false))
    local _, sids, recs = a:changes()
    assert.same({ 3, 4 }, sids)
    local cs = a:take_changes()
    assert.same({ 2, 2 }, { cs:count() })
    assert.same({ { "del", be(1) }, { "del", be(2) }, { "put", be(3), recs[1] }, { "put", be(4), recs[2] } }, cs:ops())
    -- removed groups count too; clear_changes forgets all of it
    a:remove({ 4 })
    assert.same({ { "del", be(1) }, { "del", be(2) }, { "del", be(4) }, { "put", be(3), recs[1] } },
      a:take_changes():ops())
    a:clear_changes()
    assert.same({}, a:take_changes():ops())
  end)

  it("commits what restore reads back into an aggregation equal to the original", function()
    local a, dir = new_agg(), os.tmpname()
    os.remove(dir)
    local ck = assert(core.checkpoint(dir))
    for round = 1, 6 do
      push(a, random_rows(800, round, round * 2, round * 2 + 5))
      a:evict("w", (round * 2 + 1) * 1000, false)
      assert.is_true(ck:commit(round, "c" .. round, { agg = a:take_changes() }))
      a:clear_changes()
    end
    local back = new_agg()
    local n = 0
    for key, rec in ck:state("agg") do
      n = n + 1
      assert.is_true(back:restore(string.unpack(">I8", key), rec))
    end
    ck:close()
    os.execute("rm -rf '" .. dir .. "'")
    assert.equal(a:groups(), n)
    assert.same(show(a:result()), show(back:result()))
  end)
end)

---------------------------------------------------------------------------
-- restore
---------------------------------------------------------------------------

describe("agg:restore", function()
  it("rebuilds an aggregation from its records that, fed the rest, equals one that saw every row", function()
    local all, first = new_agg(), new_agg()
    local part1, part2 = random_rows(2000, 7, 0, 9), random_rows(2000, 8, 5, 14)
    push(all, part1)
    push(first, part1)
    -- a checkpoint: the latest record of each sid, as the engine keeps them
    local store = {}
    local _, sids, recs = first:changes()
    for i, sid in ipairs(sids) do store[sid] = recs[i] end
    local back = new_agg()
    local order = {}
    for sid in pairs(store) do order[#order + 1] = sid end
    table.sort(order)
    for _, sid in ipairs(order) do assert.is_true(back:restore(sid, store[sid])) end
    assert.same(show(first:result()), show(back:result()))
    local _, restored_changes = back:changes()
    assert.same({}, restored_changes) -- restored groups are not changes
    push(all, part2)
    push(back, part2)
    assert.same(show(all:result()), show(back:result()))
    -- new groups continue the state ids past the restored ones
    local _, sids2 = back:changes()
    local max = 0
    for _, sid in ipairs(order) do max = math.max(max, sid) end
    local fresh = 0
    for _, sid in ipairs(sids2) do
      if not store[sid] then
        fresh = fresh + 1
        assert.is_true(sid > max)
      end
    end
    assert.is_true(fresh > 0)
  end)

  it("refuses damaged records, other versions and other plans with nil, a message and its code", function()
    local a = new_agg()
    push(a, { { w = 0, dev = "a", v = 1, s = "x" } })
    local _, sids, recs = a:changes()
    local rec = recs[1]
    local b = new_agg()
    assert.same({ nil, "aggregation state record 9: truncated", "ECORRUPT" }, { b:restore(9, rec:sub(1, 6)) })
    assert.same({ nil, "aggregation state record 9: checksum mismatch", "ECORRUPT" },
      { b:restore(9, rec:sub(1, -2) .. string.char((rec:byte(-1) + 1) % 256)) })
    assert.same({ nil, "aggregation state record 9: format version 2, this build reads 1", "EFORMAT" },
      { b:restore(9, "\2" .. rec:sub(2)) })
    assert.same({ nil, "aggregation state record 9: empty", "ECORRUPT" }, { b:restore(9, "") })
    local other = assert(core.agg(KEYS, { { kind = "count_star", name = "n" } }))
    assert.same({ nil, "aggregation state record 9: written for 2 keys and 6 aggregates, this aggregation has 2 and 1",
      "ESCHEMA" }, { other:restore(9, rec) })
    assert.is_true(b:restore(sids[1], rec))
    assert.same({ nil, "aggregation state record 2: its key already has a group (state id 1)", "ECORRUPT" },
      { b:restore(2, rec) })
    assert.equal(1, b:groups())
  end)

  it("never crashes on records cut at any length or with any byte changed", function()
    local a = new_agg()
    push(a, random_rows(50, 3, 0, 2))
    local _, _, recs = a:changes()
    local b = new_agg()
    local refused = 0
    for _, rec in ipairs({ recs[1], recs[2] }) do
      for n = 0, #rec - 1 do
        local ok, msg, code = b:restore(1000 + n, rec:sub(1, n))
        assert.is_nil(ok)
        assert.is_string(msg)
        assert.is_truthy(code == "ECORRUPT" or code == "EFORMAT")
        refused = refused + 1
      end
      for i = 1, #rec do
        local bad = rec:sub(1, i - 1) .. string.char(rec:byte(i) ~ 0x10) .. rec:sub(i + 1)
        assert.is_nil((b:restore(5000 + i, bad)))
      end
    end
    assert.equal(0, b:groups())
    assert.is_true(refused > 20)
  end)

  it("raises on a state id below 1 or a record that is not a string", function()
    local a = new_agg()
    assert.has_error(function() a:restore(0, "x") end, "bad argument #1 to 'restore' (a state id is an integer >= 1)")
    assert.has_error(function() a:restore(1, {}) end)
  end)
end)

---------------------------------------------------------------------------
-- evict
---------------------------------------------------------------------------

describe("agg:evict", function()
  it("removes the groups whose key is at or below the bound, NULL keys kept, returning their rows and sids", function()
    local a = new_agg()
    push(a, { { w = 0, dev = "a", v = 1 }, { w = 5000, dev = "a", v = 2 }, { dev = "a", v = 3 },
      { w = 1000, dev = "b", v = 4 }, { w = 9000, dev = "c", v = 5 } })
    a:clear_changes()
    push(a, { { w = 9000, dev = "c", v = 1 } })
    local rows, sids = a:evict("w", 1000)
    assert.same({ "0/a=1,1,nil,nil,0,1.0", "1000/b=1,4,nil,nil,0,4.0" }, show(rows))
    assert.same({ 1, 4 }, sids)
    assert.same({ "5000/a=1,2,nil,nil,0,2.0", "nil/a=1,3,nil,nil,0,3.0", "9000/c=2,6,nil,nil,0,3.0" },
      show(a:result()))
    -- the dirty group survived the renumbering
    local crows, csids = a:changes()
    assert.same({ "9000/c=2,6,nil,nil,0,3.0" }, show(crows))
    assert.same({ 5 }, csids)
    -- an evicted key that comes back is a new group with a new state id
    push(a, { { w = 0, dev = "a", v = 7 } })
    local _, sids2 = a:changes()
    assert.same({ 5, 6 }, sids2)
    local again, none = a:evict("w", -1)
    assert.equal(0, again:nrows())
    assert.same({}, none)
  end)

  it("keeps its memory flat over a sliding window of many rounds", function()
    local a = new_agg()
    local sizes = {}
    for round = 1, 40 do
      local rows = random_rows(500, round, round * 10, round * 10 + 9)
      push(a, rows)
      a:clear_changes()
      a:evict("w", (round * 10 + 4) * 1000)
      sizes[round] = a:bytes()
    end
    assert.is_true(sizes[40] <= sizes[5] * 1.5, string.format("%d then %d bytes", sizes[5], sizes[40]))
  end)

  it("raises on a column that does not exist or is not an int or timestamp", function()
    local a = new_agg()
    assert.has_error(function() a:evict("when", 0) end,
      "bad argument #1 to 'evict' (no column 'when' (columns: w, dev, n, total, top, first_s, kinds, mean))")
    assert.has_error(function() a:evict("dev", 0) end,
      "bad argument #1 to 'evict' (column 'dev' is string, expected int or timestamp)")
    assert.has_error(function() a:evict("mean", 0) end,
      "bad argument #1 to 'evict' (column 'mean' is double, expected int or timestamp)")
    assert.has_error(function() a:evict(9, 0) end, "bad argument #1 to 'evict' (column 9 does not exist (8 columns))")
    assert.has_error(function() a:evict(0, 0) end, "bad argument #1 to 'evict' (column 0 does not exist (8 columns))")
    assert.has_error(function() a:evict("w", "soon") end)
  end)
end)
