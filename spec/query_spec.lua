-- The micro-batch engine (lua/tide/query.lua) over the in-process
-- connectors: memory streams, memory/foreach sinks, Lua sources and sinks.
-- Real checkpoints (LMDB) in temporary directories.

local tide = require "tide"
local support = require "spec.support"
local util = require "tide.util"

local function ckdir() return support.tmpname() .. "-ck" end

local function rm(dir) os.execute("rm -rf '" .. dir .. "'") end

-- The rows of a memory table, sorted by a canonical text of each row.
local function sorted(rows)
  table.sort(rows, function(a, b) return util.json_encode(a) < util.json_encode(b) end)
  return rows
end

local function stop_all()
  for _, q in ipairs(tide.queries()) do q:stop() end
end

describe("tide streaming queries", function()
  after_each(stop_all)

  describe("over a memory stream", function()
    it("run the stateless plan once per add and land every row in the memory sink", function()
      local ms = tide.memory_stream("ts timestamp, word string, n int")
      local q = ms:frame():where("n > 1"):select("word", "n * 10 AS n10")
        :write_stream("memory", { name = "stateless" })
      ms:add { { ts = 1, word = "a", n = 1 }, { ts = 2, word = "b", n = 2 } }
      q:process_all_available()
      ms:add { { ts = 3, word = "c", n = 3 } }
      q:process_all_available()
      assert.same({ { word = "b", n10 = 20 }, { word = "c", n10 = 30 } }, tide.table("stateless"):collect())
      local ps = q:recent_progress()
      assert.equal(2, #ps)
      assert.same({ 0, 1 }, { ps[1].batch_id, ps[2].batch_id })
      assert.same({ 2, 1 }, { ps[1].num_input_rows, ps[2].num_input_rows })
      q:stop()
      assert.is_false(q:is_active())
    end)

    it("union a static frame into every batch, and the static frame stays whole for the next", function()
      local ms = tide.memory_stream("v int")
      local q = ms:frame():union(tide.from_rows({ { v = 100 } }, "v int"))
        :write_stream("memory", { name = "with_static" })
      ms:add { { v = 1 } }
      q:process_all_available()
      ms:add { { v = 2 } }
      q:process_all_available()
      assert.is_nil(q:exception())
      assert.same({ { v = 100 }, { v = 100 }, { v = 1 }, { v = 2 } },
        sorted(tide.table("with_static"):collect()))
      q:stop()
    end)

    it("report every progress field of the contract", function()
      local ms = tide.memory_stream("v int")
      local q = ms:frame():write_stream("memory", { name = "progress" })
      ms:add { { v = 1 }, { v = 2 } }
      q:process_all_available()
      local p = q:last_progress()
      assert.equal(0, p.batch_id)
      assert.equal("integer", math.type(p.timestamp))
      assert.is_true(math.abs(p.timestamp - os.time() * 1000) < 60000)
      assert.equal(2, p.num_input_rows)
      assert.is_number(p.input_rows_per_second)
      assert.is_number(p.processed_rows_per_second)
      for _, k in ipairs { "get_offset", "get_batch", "execution", "add_batch", "commit", "total" } do
        assert.is_number(p.duration_ms[k], k)
        assert.is_true(p.duration_ms[k] >= 0)
      end
      assert.is_table(p.event_time)
      assert.same({}, p.state_operators)
      assert.equal(1, #p.sources)
      assert.same({ nil, 1, 2 }, { p.sources[1].start_offset, p.sources[1].end_offset, p.sources[1].num_input_rows })
      assert.truthy(p.sources[1].description:match("^MemoryStream%[%d+%]$"))
      assert.equal("MemorySink[progress]", p.sink.description)
      assert.same({ message = "Waiting for data to arrive", is_data_available = false, is_trigger_active = false },
        q:status())
    end)

    it("hand foreach_batch each batch id with its rows, and foreach each row", function()
      local ms = tide.memory_stream("v int")
      local seen, each = {}, {}
      local q1 = ms:frame():write_stream(function(id, rows) seen[#seen + 1] = { id, #rows } end)
      local q2 = ms:frame():write_stream("foreach", { fn = function(r) each[#each + 1] = r.v end })
      ms:add { { v = 1 }, { v = 2 } }
      q1:process_all_available()
      q2:process_all_available()
      ms:add { { v = 3 } }
      ms:add { { v = 4 } } -- adds since the last batch form one batch
      q1:process_all_available()
      q2:process_all_available()
      assert.same({ { 0, 2 }, { 1, 2 } }, seen)
      assert.same({ 1, 2, 3, 4 }, each)
      assert.equal(2, #tide.queries())
    end)
  end)

  describe("with a streaming aggregation", function()
    local function words()
      local ms = tide.memory_stream("word string, n int")
      return ms, ms:frame():group_by("word"):agg { "count(*) AS c", "sum(n) AS s" }
    end

    it("output only the changed groups in update mode", function()
      local ms, f = words()
      local got = {}
      local q = f:write_stream(function(id, rows) got[id] = sorted(rows) end, { mode = "update" })
      ms:add { { word = "a", n = 1 }, { word = "b", n = 2 } }
      q:process_all_available()
      ms:add { { word = "a", n = 10 } }
      q:process_all_available()
      assert.same({ [0] = sorted { { word = "a", c = 1, s = 1 }, { word = "b", c = 1, s = 2 } },
        [1] = { { word = "a", c = 2, s = 11 } } }, got)
      local op = q:last_progress().state_operators[1]
      assert.same({ "aggregate", 2, 1, 0 }, { op.name, op.num_rows_total, op.num_rows_updated,
        op.num_rows_dropped_by_watermark })
      assert.is_true(op.memory_bytes > 0)
    end)

    it("output the whole table in complete mode", function()
      local ms, f = words()
      local q = f:write_stream("memory", { name = "complete", mode = "complete" })
      ms:add { { word = "a", n = 1 }, { word = "b", n = 2 } }
      ms:add { { word = "a", n = 10 } }
      q:process_all_available()
      assert.same(sorted { { word = "a", c = 2, s = 11 }, { word = "b", c = 1, s = 2 } },
        sorted(tide.table("complete"):collect()))
    end)

    it("keep its groups across a restart on the same checkpoint", function()
      local dir = ckdir()
      local ms, f = words()
      local q = f:write_stream("memory", { name = "restart", mode = "complete", checkpoint = dir })
      ms:add { { word = "a", n = 1 }, { word = "b", n = 2 } }
      q:process_all_available()
      q:stop()
      ms:add { { word = "a", n = 5 }, { word = "c", n = 7 } }
      q = f:write_stream("memory", { name = "restart", mode = "complete", checkpoint = dir })
      q:process_all_available()
      assert.equal(1, q:last_progress().batch_id)
      assert.equal(2, q:last_progress().num_input_rows)
      assert.same(sorted { { word = "a", c = 2, s = 6 }, { word = "b", c = 1, s = 2 }, { word = "c", c = 1, s = 7 } },
        sorted(tide.table("restart"):collect()))
      q:stop()
      rm(dir)
    end)

    it("refuse append mode without a watermark, complete mode without an aggregation", function()
      local ms, f = words()
      assert.has_error(function() f:write_stream("memory", { name = "x" }) end,
        "write_stream(memory): append output mode not supported for a streaming aggregation without a watermark " ..
        "on its event-time column: f:with_watermark(col, delay) before group_by, and group by " ..
        "tide.window(col, ...) or col itself (or use mode = \"update\" or \"complete\")")
      assert.has_error(function() ms:frame():write_stream("memory", { name = "x", mode = "complete" }) end,
        "write_stream(memory): complete mode needs a streaming aggregation (it outputs the whole result table " ..
        "every batch)")
    end)
  end)

  describe("on restart", function()
    it("re-run a failed batch with the same offsets, and go on from there", function()
      local dir = ckdir()
      local ms = tide.memory_stream("v int")
      local calls, fail = {}, true
      local sink = function(id, rows)
        calls[#calls + 1] = { id, #rows }
        if fail and id == 1 then error("sink down") end
      end
      local q = ms:frame():write_stream(sink, { checkpoint = dir })
      ms:add { { v = 1 } }
      q:process_all_available()
      ms:add { { v = 2 }, { v = 3 } }
      local ok, err = pcall(q.process_all_available, q)
      assert.is_false(ok)
      assert.truthy(err:find("batch 1: sink ForeachBatchSink: ", 1, true), err)
      assert.truthy(err:find("sink down", 1, true))
      assert.truthy(err:find("stack traceback", 1, true))
      assert.is_false(q:is_active())
      assert.truthy(q:exception():find("sink down", 1, true))
      -- a third add while the query is down: batch 1 is re-run alone, with
      -- its logged offsets, then batch 2 takes the new rows
      ms:add { { v = 4 } }
      fail = false
      q = ms:frame():write_stream(sink, { checkpoint = dir })
      q:process_all_available()
      assert.same({ { 0, 1 }, { 1, 2 }, { 1, 2 }, { 2, 1 } }, calls)
      q:stop()
      rm(dir)
    end)

    it("stop a query whose UDF raises, naming the batch, the row and the traceback", function()
      local ms = tide.memory_stream("v int")
      local q = ms:frame():filter(function(r)
        if r.v == 2 then error("two") end
        return true
      end):write_stream("memory", { name = "udf" })
      ms:add { { v = 1 }, { v = 2 } }
      local ok, err = pcall(q.process_all_available, q)
      assert.is_false(ok)
      assert.truthy(err:find('batch 0: filter: row 2 {"v":2}: ', 1, true), err)
      assert.truthy(err:find("two", 1, true))
      assert.truthy(q:status().message:find("^Terminated with exception"))
      assert.has_error(function() q:await() end)
    end)

    it("refuse a checkpoint written by another plan", function()
      local dir = ckdir()
      local ms = tide.memory_stream("v int")
      local q = ms:frame():group_by("v"):count():write_stream("memory", { name = "plan1", checkpoint = dir,
        mode = "update" })
      q:stop()
      local ok, err = pcall(function()
        return ms:frame():group_by("v"):agg{ "sum(v)" }:write_stream("memory", { name = "plan1", checkpoint = dir,
          mode = "update" })
      end)
      assert.is_false(ok)
      assert.truthy(err:find("was written by a different query (its sources or stateful operators differ: was " ..
        "[source memory; aggregate Aggregate [v] [count(*) AS count] => v int | count_star()], now [source memory; " ..
        "aggregate Aggregate [v] [sum(v)] => v int | sum(int)]", 1, true), err)
      -- a stateless change keeps the checkpoint (as in Spark)
      q = ms:frame():where("v > 0"):group_by("v"):count():write_stream("memory", { name = "plan1",
        checkpoint = dir, mode = "update" })
      q:stop()
      rm(dir)
    end)
  end)

  describe("triggers", function()
    it("once: one batch of everything available, then stop", function()
      local ms = tide.memory_stream("v int")
      ms:add { { v = 1 } }
      ms:add { { v = 2 } }
      local batches = {}
      local q = ms:frame():write_stream(function(_, rows) batches[#batches + 1] = #rows end, { trigger = "once" })
      assert.is_true(q:await())
      assert.same({ 2 }, batches)
      assert.is_false(q:is_active())
      assert.is_nil(q:exception())
    end)

    it("available_now: process what is there, then stop", function()
      local ms = tide.memory_stream("v int")
      ms:add { { v = 1 } }
      local n = 0
      local q = ms:frame():write_stream(function(_, rows) n = n + #rows end, { trigger = "available_now" })
      assert.is_true(q:await("10 seconds"))
      assert.equal(1, n)
    end)

    it("an interval: await returns false at its timeout while the query waits", function()
      local ms = tide.memory_stream("v int")
      local q = ms:frame():write_stream(function() end, { trigger = "20 ms" })
      assert.is_false(q:await("30 ms"))
      assert.is_true(q:is_active())
      q:stop()
      assert.is_true(q:await())
    end)

    it("refuse a bad trigger, naming the allowed values", function()
      local ms = tide.memory_stream("v int")
      assert.has_error(function() ms:frame():write_stream(function() end, { trigger = "soon" }) end,
        "write_stream(foreach_batch): option 'trigger' must be a duration (\"1 second\", ms), 0, \"once\" or " ..
        "\"available_now\", got 'soon'")
    end)
  end)

  describe("stopping", function()
    it("a stop from inside the sink finishes and commits the batch first", function()
      local dir = ckdir()
      local ms = tide.memory_stream("v int")
      local q
      local ids = {}
      q = ms:frame():write_stream(function(id)
        ids[#ids + 1] = id
        q:stop()
      end, { checkpoint = dir })
      ms:add { { v = 1 } }
      q:await()
      assert.same({ 0 }, ids)
      ms:add { { v = 2 } }
      q = ms:frame():write_stream(function(id) ids[#ids + 1] = id end, { checkpoint = dir })
      q:process_all_available()
      assert.same({ 0, 1 }, ids) -- batch 0 was committed: not run again
      q:stop()
      rm(dir)
    end)

    it("SIGTERM stops every query after its batch", function()
      local core = require "tide.core"
      local ms = tide.memory_stream("v int")
      local a = ms:frame():write_stream(function() end, { trigger = "10 ms" })
      local b = ms:frame():write_stream(function() end, { trigger = "10 ms" })
      require("tide.runtime").loop():timer(5, 0, function() core.raise_signal("SIGTERM") end)
      assert.is_true(tide.run())
      assert.is_false(a:is_active())
      assert.is_false(b:is_active())
      assert.equal("Stopped", a:status().message)
      assert.same({}, tide.queries())
    end)
  end)

  describe("Lua sources and sinks", function()
    it("run a source of Lua rows into a sink idempotent by batch id", function()
      local data = { { k = "a" }, { k = "b" }, { k = "c" } }
      local src = tide.source {
        schema = "k string", avail = 2,
        latest_offset = function(self) return self.avail end,
        get_batch = function(_, start, stop) return table.move(data, (start or 0) + 1, stop, 1, {}) end,
      }
      local out = {}
      local sink = tide.sink { add_batch = function(_, id, rows, mode)
        out[id] = { mode = mode, rows = rows }
      end }
      local q = tide.read_stream(src):write_stream(sink)
      q:process_all_available()
      src.def.avail = 3
      q:process_all_available()
      assert.same({ [0] = { mode = "append", rows = { { k = "a" }, { k = "b" } } },
        [1] = { mode = "append", rows = { { k = "c" } } } }, out)
    end)

    it("fail the query when a Lua source's row does not fit its schema", function()
      local src = tide.source { schema = "k int",
        latest_offset = function() return 1 end, get_batch = function() return { { k = "x" } } end }
      local q = tide.read_stream(src):write_stream(function() end)
      local ok, err = pcall(q.process_all_available, q)
      assert.is_false(ok)
      assert.truthy(err:find("batch 0: source LuaSource: get_batch returned a row that does not fit", 1, true), err)
    end)

    it("refuse bad definitions at once", function()
      assert.has_error(function() tide.source { schema = "k int", get_batch = function() end } end,
        "tide.source: field 'latest_offset' is required (a function)")
      assert.has_error(function() tide.sink {} end,
        "tide.sink: field 'add_batch' is required (a function(self, batch_id, rows, mode))")
    end)
  end)

  describe("definition errors", function()
    it("name the unknown option and the allowed ones", function()
      local ms = tide.memory_stream("v int")
      assert.has_error(function() ms:frame():write_stream("memory", { name = "x", colour = 1 }) end,
        "write_stream(memory): unknown option 'colour' (allowed: checkpoint, clock, late_rows, mode, " ..
        "multiple_watermark_policy, name, no_data_batches, state_memory_limit, sync, trigger)")
    end)

    it("refuse a static frame, an unknown sink, a memory sink without a name", function()
      assert.has_error(function() tide.from_rows({ { v = 1 } }):write_stream("memory", { name = "x" }) end,
        "write_stream(memory): a static frame is not a stream (use collect, show or batches; streams come " ..
        "from read_stream)")
      local ms = tide.memory_stream("v int")
      assert.has_error(function() ms:frame():write_stream("nowhere") end,
        "unknown sink 'nowhere' (sinks: console, file, foreach, foreach_batch, memory, postgres, topic)")
      assert.has_error(function() ms:frame():write_stream("memory") end,
        "write_stream(memory): the memory sink needs option 'name' (the table's name for tide.table(name))")
    end)

    it("refuse an output mode the sink does not take", function()
      local dir, out = ckdir(), support.tmpname()
      local ms = tide.memory_stream("w string")
      local ok, err = pcall(function()
        return ms:frame():group_by("w"):count()
          :write_stream("file", { path = out, checkpoint = dir, mode = "update" })
      end)
      assert.is_false(ok)
      local want = "write_stream(file): FileSink[" .. out .. "] takes output mode append, not update"
      assert.truthy(err:find(want, 1, true), err)
      assert.same({}, tide.queries())
      rm(dir)
      rm(out)
    end)

    it("refuse a second active query of the same name", function()
      local ms = tide.memory_stream("v int")
      ms:frame():write_stream("memory", { name = "twice" })
      assert.has_error(function() ms:frame():write_stream("memory", { name = "twice" }) end,
        "write_stream(memory): a query named 'twice' is already active")
    end)

    it("refuse a checkpoint that cannot be created", function()
      local ms = tide.memory_stream("v int")
      local ok, err = pcall(ms.frame(ms).write_stream, ms:frame(), "memory",
        { name = "ro", checkpoint = "/proc/no/such/ckpt" })
      assert.is_false(ok)
      assert.truthy(err:find("write_stream(memory): ", 1, true), err)
      assert.truthy(err:find("/proc/no/such/ckpt", 1, true), err)
    end)
  end)
end)
