-- Session windows over static frames (lua/tide/session.lua): the merging
-- rules, NULLs, keys, every aggregate kind, the state records and the
-- argument errors. The streaming cases are in spark_session_window_spec.lua.
local tide = require "tide"
local session = require "tide.session"
local core = require "tide.core"

local sw = session.session_window

-- Rows of a collected frame as compact tuples, sorted.
local function tuples(frame, cols)
  local out = {}
  for _, r in ipairs(frame:collect()) do
    local t = {}
    for i, c in ipairs(cols) do t[i] = r[c] == nil and "NULL" or tostring(r[c]) end
    out[#out + 1] = table.concat(t, " ")
  end
  table.sort(out)
  return out
end

local S = 1000 -- ms per second

-- A record as the session format before aggregation records wrote it
-- (docs/FORMAT.md): version 1, start, end, the key "a", count(*) = 1,
-- closed by a CRC-32 (IEEE 802.3) of it all.
local function old_record()
  local body = string.pack("<Bi8i8I4", 1, 25 * S, 35 * S, 1) .. string.pack("<Bs4", 5, "a") ..
    string.pack("<I4Bi8", 1, 1, 1)
  local crc = 0xFFFFFFFF
  for i = 1, #body do
    crc = crc ~ body:byte(i)
    for _ = 1, 8 do crc = (crc & 1) ~= 0 and (0xEDB88320 ~ (crc >> 1)) or (crc >> 1) end
  end
  return body .. string.pack("<I4", crc ~ 0xFFFFFFFF)
end

describe("session_window", function()
  describe("the spec", function()
    it("prints as session_window(col, gap) and is recognised", function()
      local w = sw("ts", "10 seconds")
      assert.equal("session_window(ts, 10s)", tostring(w))
      assert.is_true(session.is(w))
      assert.is_false(session.is(tide.window("ts", "10 seconds")))
      assert.is_false(session.is({ col = "ts", gap = 10 }))
      assert.equal(1500, sw("ts", 1500).gap)
    end)

    it("is tide.session_window", function()
      local w = tide.session_window("ts", "10 seconds")
      assert.is_true(session.is(w))
      assert.equal("session_window(ts, 10s)", tostring(w))
      assert.has_error(function() tide.session_window("ts", 0) end, "session_window: gap must be > 0, got 0 ms")
    end)

    it("refuses a column that is not a name", function()
      assert.has_error(function() sw(3, "10 seconds") end,
        "session_window: bad argument #1: expected a column name, got number")
    end)

    it("refuses a gap that is not a positive duration", function()
      assert.has_error(function() sw("ts", 0) end, "session_window: gap must be > 0, got 0 ms")
      assert.has_error(function() sw("ts", "0 seconds") end, "session_window: gap must be > 0, got 0 ms")
      assert.has_error(function() sw("ts", -5) end)
      assert.has_error(function() sw("ts", "soon") end)
      assert.has_error(function() sw("ts") end)
    end)
  end)

  describe("group_by with a session window", function()
    local f
    before_each(function()
      f = tide.from_rows({
        { ts = 40 * S, id = "a", v = 1 },
        { ts = 41 * S, id = "a", v = 2 },
        { ts = 60 * S, id = "a", v = 3 },
      }, "ts timestamp?, id string?, v int?")
    end)

    it("gives each row the session [t, t + gap) and merges overlapping ones", function()
      local g = f:group_by("id", sw("ts", "10 seconds")):agg { "count(*) AS n" }
      assert.same({ "a 40000 51000 2", "a 60000 70000 1" }, tuples(g, { "id", "window_start", "window_end", "n" }))
    end)

    it("puts window_start and window_end where the session key stands", function()
      local g = f:group_by(sw("ts", "10 seconds"), "id"):agg { "count(*) AS n" }
      assert.same({ { "window_start", "timestamp" }, { "window_end", "timestamp" }, { "id", "string?" },
        { "n", "int" } }, g:schema())
      g = f:group_by("id", sw("ts", "10 seconds")):agg { "sum(v) AS s" }
      assert.same({ { "id", "string?" }, { "window_start", "timestamp" }, { "window_end", "timestamp" },
        { "s", "int?" } }, g:schema())
    end)

    it("names the session window in the plan", function()
      local g = f:group_by("id", sw("ts", "10 seconds")):agg { "count(*) AS n" }
      assert.matches("SessionWindowAggregate [id, session_window(ts, 10s)] [count(*) AS n]", g:explain(), 1, true)
    end)

    it("merges touching sessions (a row at exactly the end of another's session)", function()
      local g = tide.from_rows({ { ts = 0, id = "a" }, { ts = 10 * S, id = "a" }, { ts = 20 * S + 1, id = "a" } },
        "ts timestamp, id string"):group_by("id", sw("ts", "10 seconds")):count()
      assert.same({ "0 20000 2", "20001 30001 1" }, tuples(g, { "window_start", "window_end", "count" }))
    end)

    it("joins two sessions with a row that falls between them, whatever the row order", function()
      local rows = { { ts = 25 * S, id = "s" }, { ts = 40 * S, id = "s" }, { ts = 30 * S, id = "s" } }
      local schema = "ts timestamp, id string"
      local g = tide.from_rows(rows, schema):group_by("id", sw("ts", "10 seconds")):count()
      assert.same({ "25000 50000 3" }, tuples(g, { "window_start", "window_end", "count" }))
      local back = { rows[3], rows[2], rows[1] }
      g = tide.from_rows(back, schema):group_by("id", sw("ts", "10 seconds")):count()
      assert.same({ "25000 50000 3" }, tuples(g, { "window_start", "window_end", "count" }))
    end)

    it("merges sessions that arrive in different input batches", function()
      local schema = "ts timestamp, id string"
      local a = tide.from_rows({ { ts = 25 * S, id = "s" }, { ts = 40 * S, id = "s" } }, schema)
      local b = tide.from_rows({ { ts = 30 * S, id = "s" }, { ts = 90 * S, id = "s" } }, schema)
      local g = a:union(b):group_by("id", sw("ts", "10 seconds")):count()
      assert.same({ "25000 50000 3", "90000 100000 1" }, tuples(g, { "window_start", "window_end", "count" }))
    end)

    it("keeps the sessions of different keys apart", function()
      local g = tide.from_rows({
        { ts = 34 * S, id = "a", v = 1 }, { ts = 39 * S, id = "b", v = 1 }, { ts = 40 * S, id = "a", v = 2 },
        { ts = 45 * S, id = "b", v = 2 }, { ts = 27 * S, id = "b", v = 4 },
      }, "ts timestamp, id string, v int"):group_by(sw("ts", "10 seconds"), "id"):agg { "count(*) AS counts",
        "sum(v) AS sum" }
      -- DataFrameSessionWindowingSuite "keys overlapped with sessions"
      assert.same({ "27000 37000 b 1 4", "34000 50000 a 2 3", "39000 55000 b 2 3" },
        tuples(g, { "window_start", "window_end", "id", "counts", "sum" }))
    end)

    it("gives rows with a NULL time no session, and treats a NULL key as a key", function()
      local g = tide.from_rows({
        { ts = 5 * S, v = 1 }, { ts = 32 * S, v = 2 }, { v = 3 }, { id = "x", v = 4 }, { ts = 6 * S, id = "x", v = 5 },
      }, "ts timestamp?, id string?, v int"):group_by("id", sw("ts", "10 seconds")):agg { "sum(v) AS s" }
      assert.same({ "NULL 32000 42000 2", "NULL 5000 15000 1", "x 6000 16000 5" },
        tuples(g, { "id", "window_start", "window_end", "s" }))
    end)

    it("groups by several keys and by expressions", function()
      local g = tide.from_rows({
        { ts = 0, a = "X", b = 1 }, { ts = 1 * S, a = "x", b = 1 }, { ts = 2 * S, a = "x", b = 2 },
      }, "ts timestamp, a string, b int"):group_by("lower(a) AS la", "b", sw("ts", "5 seconds")):count()
      assert.same({ "x 1 0 6000 2", "x 2 2000 7000 1" }, tuples(g, { "la", "b", "window_start", "window_end",
        "count" }))
    end)

    it("runs a global session window (no other key) on a static frame", function()
      local g = tide.from_rows({ { ts = 34 * S }, { ts = 56 * S }, { ts = 27 * S } }, "ts timestamp")
        :group_by(sw("ts", "10 seconds")):count()
      -- DataFrameSessionWindowingSuite "session window groupBy statement"
      assert.same({ "27000 44000 2", "56000 66000 1" }, tuples(g, { "window_start", "window_end", "count" }))
    end)

    it("computes every aggregate kind over a merged session", function()
      local rows = {
        { ts = 10 * S, v = 3, d = 1.5, s = "m", b = true },
        { ts = 4 * S, v = nil, d = 2.5, s = "z", b = false },
        { ts = 1 * S, v = 5, d = nil, s = "a", b = nil },
        { ts = 7 * S, v = 3, d = -0.0, s = nil, b = true },
      }
      local g = tide.from_rows(rows, "ts timestamp, v int?, d double?, s string?, b bool?")
        :group_by(sw("ts", "5 seconds"))
        :agg { "count(*) AS n", "count(v) AS nv", "sum(v) AS sv", "sum(d) AS sd", "avg(v) AS av", "min(s) AS mins",
          "max(s) AS maxs", "min(b) AS minb", "max(d) AS maxd", "first(v) AS fv", "last(s) AS ls",
          "count_distinct(v) AS cv", "count_distinct(d) AS cd" }
      local r = g:collect()
      assert.equal(1, #r)
      r = r[1]
      assert.same({ 1000, 15000 }, { r.window_start, r.window_end })
      assert.same({ 4, 3, 11, 4.0, 11 / 3 }, { r.n, r.nv, r.sv, r.sd, r.av })
      assert.same({ "a", "z", false, 2.5 }, { r.mins, r.maxs, r.minb, r.maxd })
      -- first/last follow event time: the row at 1s, the row at 10s
      assert.equal(5, r.fv)
      assert.equal("m", r.ls)
      assert.same({ 2, 3 }, { r.cv, r.cd })
    end)

    it("gives NULL sums, averages and extremes for a session of NULL values only", function()
      local g = tide.from_rows({ { ts = 0 }, { ts = 1 } }, "ts timestamp, v int?")
        :group_by(sw("ts", 10)):agg { "sum(v) AS s", "avg(v) AS a", "min(v) AS mn", "first(v) AS f", "count(v) AS c",
          "count_distinct(v) AS cd" }
      local r = g:collect()[1]
      assert.same({ 0, 11, 0, 0 }, { r.window_start, r.window_end, r.c, r.cd })
      assert.is_nil(r.s)
      assert.is_nil(r.a)
      assert.is_nil(r.mn)
      assert.is_nil(r.f)
    end)

    it("wraps int sums as Spark's long sums do", function()
      local g = tide.from_rows({ { ts = 0, v = math.maxinteger }, { ts = 1, v = 1 } }, "ts timestamp, v int")
        :group_by(sw("ts", 10)):agg { "sum(v) AS s" }
      assert.equal(math.mininteger, g:collect()[1].s)
    end)

    it("refuses a column that does not exist or is not a timestamp", function()
      assert.has_error(function() f:group_by("id", sw("nope", 10)) end,
        "group_by: unknown column 'nope' in session_window(nope, 10 ms) (columns: ts, id, v)")
      assert.has_error(function() f:group_by("id", sw("v", 10)) end,
        "group_by: session_window(v, 10 ms) needs a timestamp column, 'v' is int")
    end)

    it("refuses two window keys", function()
      assert.has_error(function() f:group_by(sw("ts", 10), sw("ts", 20)) end,
        "group_by: only one window key (tide.window or tide.session_window)")
      assert.has_error(function() f:group_by(tide.window("ts", 10), sw("ts", 20)) end,
        "group_by: only one window key (tide.window or tide.session_window)")
    end)
  end)

  describe("the streaming contract of the node", function()
    local function node_of(frame) return frame._node end
    local function grouped(keys)
      local f = tide.from_rows({ { ts = 0, id = "a" } }, "ts timestamp, id string")
      if keys then return f:group_by("id", sw("ts", 10)):count() end
      return f:group_by(sw("ts", 10)):count()
    end

    it("is a session operator that has work due in append mode only", function()
      local n = node_of(grouped(true))
      assert.equal("session", n.stateful)
      assert.is_true(n.due("append"))
      assert.is_false(n.due("complete"))
    end)

    it("refuses update mode, a missing key and append mode without a watermark on its column", function()
      local n = node_of(grouped(true))
      assert.equal("session windows support append and complete output modes, not update (as in Spark)",
        n.check("update", true))
      assert.is_nil(n.check("complete", false))
      assert.equal("append mode on session_window(ts, 10 ms) needs a watermark on 'ts' " ..
        "(f:with_watermark(\"ts\", delay) before group_by)", n.check("append", false))
      local g = node_of(grouped(false))
      assert.equal("a session window in a streaming query needs at least one other grouping key " ..
        "(global aggregation with a session window is not supported, as in Spark)", g.check("complete", false))
      assert.equal("session windows support append and complete output modes, not update (as in Spark)",
        g.check("update", true))
    end)

    -- The changes of st as the old form: puts {{key, record}...}, dels {key...}.
    local function changes(st)
      local puts, dels = {}, {}
      for _, op in ipairs(st.take_changes():ops()) do
        if op[1] == "put" then puts[#puts + 1] = { op[2], op[3] } else dels[#dels + 1] = op[2] end
      end
      return puts, dels
    end

    -- Run node's operator (tide.exec) over its input as one micro-batch with state st.
    local function run_batch(n, st, mode, wm, late_wm)
      local late = {}
      local ctx = { state = st, mode = mode, watermark = wm, late_watermark = late_wm,
        metrics = { updated = 0, dropped_by_watermark = 0, dropped_duplicates = 0 },
        late = function(b) late[#late + 1] = b:rows() b:close() end }
      local op = require("tide.exec").compile(n).root
      local out = {}
      for b in op:run(op.children[1]:run(nil, nil), ctx) do
        for _, r in ipairs(b:rows()) do out[#out + 1] = r end
        b:close()
      end
      return out, ctx.metrics, late
    end

    local rows = {
      { ts = 40 * S, id = "a", v = 1, s = "x" }, { ts = 41 * S, id = "b", v = 2, s = "y" },
      { ts = 25 * S, id = "a", v = nil, s = nil }, { ts = 0, id = "b", v = 4, s = "x" },
    }
    local schema = "ts timestamp, id string, v int?, s string?"
    local aggs = { "count(*) AS n", "sum(v) AS sv", "avg(v) AS av", "min(s) AS mn", "max(v) AS mx", "first(s) AS f",
      "last(v) AS l", "count_distinct(s) AS cd" }

    it("restores from its records exactly the sessions it wrote", function()
      local n = node_of(tide.from_rows(rows, schema):group_by("id", sw("ts", "10 seconds")):agg(aggs))
      local st = n.new_state()
      local out, m = run_batch(n, st, "complete")
      assert.equal(4, #out) -- a [25, 35), a [40, 50), b [0, 10), b [41, 51)
      assert.equal(4, m.updated)
      assert.equal(4, st.rows())
      assert.is_true(st.bytes() > 0)
      local puts, dels = changes(st)
      assert.equal(4, #puts)
      assert.same({}, dels)
      st.clear_changes()
      assert.same({}, (changes(st)))
      local st2 = n.new_state()
      for _, p in ipairs(puts) do st2.restore(p[1], p[2]) end
      assert.equal(4, st2.rows())
      assert.same({}, (changes(st2))) -- restored sessions are not changes
      -- the same output from both states for the same next batch
      local a = run_batch(n, st, "complete")
      local b = run_batch(n, st2, "complete")
      local function key(r) return r.id .. r.window_start end
      table.sort(a, function(x, y) return key(x) < key(y) end)
      table.sort(b, function(x, y) return key(x) < key(y) end)
      assert.same(a, b)
      assert.equal(4, #b)
      -- the second batch repeats the rows: a [25, 35) holds 25s twice
      assert.same({ "a", 25 * S, 35 * S, 2, 0 }, { b[1].id, b[1].window_start, b[1].window_end, b[1].n, b[1].cd })
      assert.same({ "b", 0, 10 * S, 2, 8, 4.0, "x", 4, "x", 4, 1 }, { b[3].id, b[3].window_start, b[3].window_end,
        b[3].n, b[3].sv, b[3].av, b[3].mn, b[3].mx, b[3].f, b[3].l, b[3].cd })
    end)

    it("merges stored sessions, deletes the merged ones and gives new ids above restored ones", function()
      local n = node_of(tide.from_rows({ { ts = 30 * S, id = "a" } }, "ts timestamp, id string")
        :group_by("id", sw("ts", "10 seconds")):count())
      local st = n.new_state()
      -- two stored sessions of a: [25, 35) and [40, 50), written by another state
      local seed = node_of(tide.from_rows({ { ts = 25 * S, id = "a" }, { ts = 40 * S, id = "a" } },
        "ts timestamp, id string"):group_by("id", sw("ts", "10 seconds")):count())
      local st0 = seed.new_state()
      run_batch(seed, st0, "complete")
      local puts = changes(st0)
      assert.equal(2, #puts)
      for _, p in ipairs(puts) do st.restore(p[1], p[2]) end
      local out, m = run_batch(n, st, "complete")
      assert.same({ { id = "a", window_start = 25 * S, window_end = 50 * S, count = 3 } }, out)
      assert.equal(1, m.updated)
      local p2, dels = changes(st)
      assert.equal(1, #p2)
      assert.equal(puts[1][1], p2[1][1]) -- the earlier session survives
      assert.same({ puts[2][1] }, dels)
      assert.equal(1, st.rows())
    end)

    it("drops late rows in append mode, hands them over and emits closed sessions once", function()
      local n = node_of(tide.from_rows(rows, schema):group_by("id", sw("ts", "10 seconds")):agg(aggs))
      local st = n.new_state()
      -- late watermark 10s: the row at 0 (0 + 10s <= 10s) is late
      local out, m, late = run_batch(n, st, "append", 36 * S, 10 * S)
      assert.equal(1, m.dropped_by_watermark)
      assert.same({ { { ts = 0, id = "b", v = 4, s = "x" } } }, late)
      -- a [25, 35) closes at watermark 36s; a [40, 50) and b [41, 51) stay
      assert.equal(1, #out)
      assert.same({ "a", 25 * S, 35 * S, 1 }, { out[1].id, out[1].window_start, out[1].window_end, out[1].n })
      assert.equal(2, st.rows())
      assert.equal(3, m.updated)
      -- the emitted session never reached the checkpoint: no delete for it
      local puts, dels = changes(st)
      assert.equal(2, #puts)
      assert.same({}, dels)
      st.clear_changes()
      -- the next batch (same rows, no longer late at late watermark 0)
      -- closes a [40, 50) and b [0, 10) at watermark 51s; b [41, 51) too
      out, m = run_batch(n, st, "append", 51 * S, 0)
      assert.equal(0, m.dropped_by_watermark)
      assert.equal(4, #out)
      assert.equal(0, st.rows())
      puts, dels = changes(st)
      assert.same({}, puts)
      -- deletes for the two stored sessions only: a [40, 50) (id 2) and b [41, 51) (id 3)
      assert.same({ string.pack(">I8", 2), string.pack(">I8", 3) }, dels)
    end)

    it("neither drops nor evicts in complete mode", function()
      local n = node_of(tide.from_rows(rows, schema):group_by("id", sw("ts", "10 seconds")):agg(aggs))
      local st = n.new_state()
      local out, m = run_batch(n, st, "complete", 100 * S, 100 * S)
      assert.equal(4, #out)
      assert.equal(0, m.dropped_by_watermark)
      assert.equal(4, st.rows())
    end)

    it("refuses damaged and foreign records, naming what is wrong", function()
      local n = node_of(tide.from_rows(rows, schema):group_by("id", sw("ts", "10 seconds")):agg(aggs))
      local st = n.new_state()
      run_batch(n, st, "complete")
      local puts = changes(st)
      local k, blob = puts[1][1], puts[1][2]
      local id = string.unpack(">I8", k)
      local fresh = n.new_state()
      assert.has_error(function() fresh.restore("abc", blob) end,
        "session state: bad record key (3 bytes): expected 8 bytes")
      local flipped = blob:sub(1, 12) .. string.char(blob:byte(13) ~ 1) .. blob:sub(14)
      assert.has_error(function() fresh.restore(k, flipped) end,
        "session state: record " .. id .. ": checksum mismatch")
      assert.has_error(function() fresh.restore(k, blob:sub(1, 3)) end,
        "session state: record " .. id .. ": truncated")
      assert.has_error(function() fresh.restore(k, "\9" .. blob:sub(2)) end,
        "session state: record " .. id .. ": format version 9, this build reads 1")
      -- a record of another plan (one aggregate instead of eight)
      local other = node_of(tide.from_rows(rows, schema):group_by("id", sw("ts", "10 seconds")):count())
      assert.has_error(function() other.new_state().restore(k, blob) end,
        "session state: record " .. id .. ": 8 aggregates, the plan has 1")
      fresh.restore(k, blob)
      assert.has_error(function() fresh.restore(k, blob) end,
        "session state: record " .. id .. ": a duplicate session id")
      -- the same session under another id: its key and session number are taken
      assert.has_error(function() fresh.restore(string.pack(">I8", 99), blob) end,
        "session state: record 99: another record has its key and session number (state id " .. id .. ")")
      assert.equal(1, fresh.rows())
    end)

    it("writes the same records from a restored state as from the one it was written by", function()
      local n = node_of(tide.from_rows(rows, schema):group_by("id", sw("ts", "10 seconds")):agg(aggs))
      local st = n.new_state()
      run_batch(n, st, "complete")
      local puts = changes(st)
      st.clear_changes()
      local st2 = n.new_state()
      for _, p in ipairs(puts) do st2.restore(p[1], p[2]) end
      st2.clear_changes()
      -- the same next batch changes the same sessions into the same bytes
      run_batch(n, st, "complete")
      run_batch(n, st2, "complete")
      local a, da = changes(st)
      local b, db = changes(st2)
      assert.equal(4, #a)
      assert.same(a, b)
      assert.same(da, db)
      assert.is_truthy(core) -- the C module is loaded for the batches above
    end)

    it("refuses a checkpoint of the old session record format, saying what to do", function()
      local n = node_of(tide.from_rows(rows, schema):group_by("id", sw("ts", "10 seconds")):count())
      assert.has_error(function() n.new_state().restore(string.pack(">I8", 1), old_record()) end,
        "session state: record 1: written in the session record format of earlier versions (before session " ..
        "windows kept aggregation records), which this version does not read; run the query on a new checkpoint " ..
        "directory (or delete this one) to start its state over")
    end)
  end)
end)

describe("a checkpoint of the old session record format", function()
  local support = require "spec.support"
  local dir
  before_each(function() dir = support.tmpname() end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("is refused when the query starts, naming the checkpoint and what to do", function()
    local ms = tide.memory_stream("ts timestamp, id string")
    local function start()
      return ms:frame():group_by("id", sw("ts", "10 seconds")):count()
        :write_stream("memory", { name = "sess_old", mode = "complete", checkpoint = dir })
    end
    local q = start()
    ms:add { { ts = 25 * S, id = "a" } }
    q:process_all_available()
    q:stop()
    -- replace the state with a record of the old format, in a commit of
    -- its own
    local ck = assert(core.checkpoint(dir))
    local _, last = ck:latest()
    local cs = core.state_changes()
    for k in ck:state("session1") do cs:del(k) end
    cs:put(string.pack(">I8", 7), old_record())
    ck:commit(last + 1, ck:commit_entry(last), { session1 = cs })
    ck:close()
    local ok, err = pcall(start)
    assert.is_false(ok)
    assert.matches("checkpoint " .. dir .. ": state of SessionWindowAggregate [id, session_window(ts, 10s)] " ..
      "[count(*) AS count] (session1): session state: record 7: written in the session record format of earlier " ..
      "versions (before session windows kept aggregation records), which this version does not read; run the " ..
      "query on a new checkpoint directory (or delete this one) to start its state over", err, 1, true)
  end)
end)
