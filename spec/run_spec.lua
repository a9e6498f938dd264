-- `tide run SCRIPT`, run as users run it (bin/tide in a child process, stdout
-- a pipe): `arg`, exit statuses, tracebacks naming the script, the error of
-- a failed query, --log-progress, and no status lines off a terminal.
-- Ctrl-C (SIGINT) or SIGTERM stops the queries after the batch in flight;
-- the script's code after tide.run() is not needed for that: the CLI drives
-- the loop. spec/run_tty_spec.lua runs it in a real terminal (tmux).

local support = require "support"
local util = require "tide.util"

local function wait_for(path, pred)
  for _ = 1, 500 do
    if pred(support.read_file(path)) then return true end
    support.sleep_ms(20)
  end
  return false
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- bin/tide with `args` (a shell-quoted string); stdout and stderr apart.
local function tide_run(args, env)
  return support.run_cmd(string.format("%s %s/bin/tide %s", env or "", support.ROOT, args))
end

local lines_of = support.lines_of

describe("tide run", function()
  local script, log, ck
  before_each(function()
    script, log, ck = support.tmpname() .. ".lua", support.tmpname(), support.tmpname()
  end)
  after_each(function() os.execute(string.format("rm -rf '%s' '%s' '%s'", script, log, ck)) end)

  for _, sig in ipairs { "INT", "TERM" } do
    it("stops the script's queries on SIG" .. sig .. ", committed, and exits 0", function()
      support.write_file(script, string.format([[
local tide = require "tide"
local log = assert(io.open(%q, "a"))
log:setvbuf("no")
tide.read_stream("rate", { rows_per_second = 1000 })
  :write_stream(function(id, rows) log:write(id, " ", #rows, "\n") end, { trigger = "20 ms", checkpoint = %q })
]], log, ck))
      local cmd = string.format("sh -c '%s/bin/tide run %s >/dev/null 2>&1 & echo $!; wait $!; echo rc=$?'",
        support.ROOT, script)
      local p = io.popen(cmd)
      local pid = tonumber(p:read("l"))
      assert.is_true(wait_for(log, function(t) return select(2, t:gsub("\n", "")) >= 3 end), "batches ran")
      os.execute("kill -" .. sig .. " " .. pid)
      local rest = p:read("a")
      p:close()
      assert.equal("rc=0", rest:match("rc=%d+"))
      -- every batch the sink saw is committed: a restart goes on after it
      local lines = lines_of(support.read_file(log))
      local last = tonumber(lines[#lines]:match("^(%d+)"))
      local c = require("tide.core").checkpoint(ck, { read_only = true })
      local off, com = c:latest()
      c:close()
      assert.equal(last, com)
      assert.equal(com, off)
    end)
  end

  it("sets arg as lua does: the script at 0, its arguments from 1, the rest below 0", function()
    support.write_file(script, [[
local parts = {}
for k = -3, #arg do parts[#parts + 1] = k .. "=" .. tostring(arg[k]) end
print(table.concat(parts, " "))
print(select("#", ...), ...)
]])
    local code, out, err = tide_run(string.format("run --quiet %s one 'two words' --three", q(script)))
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal(string.format("-3=%s/bin/tide -2=run -1=--quiet 0=%s 1=one 2=two words 3=--three\n" ..
      "3\tone\ttwo words\t--three\n", support.ROOT, script), out)
  end)

  it("exits 0 once every query has ended", function()
    support.write_file(script, [[
local tide = require "tide"
local ms = tide.memory_stream("v int")
ms:add { { v = 1 }, { v = 2 } }
ms:frame():write_stream(function(id, rows) print("batch", id, #rows) end, { trigger = "once" })
print("script done")
]])
    local code, out, err = tide_run("run " .. q(script))
    assert.equal("", err)
    assert.equal(0, code)
    -- the query runs after the script's last line, driven by the CLI
    assert.equal("script done\nbatch\t0\t2\n", out)
  end)

  it("prints a script error's traceback from the script's own file and line, and exits 1", function()
    support.write_file(script, "local t = {}\nlocal function f()\n  return t.x.y\nend\nf()\n")
    local code, out, err = tide_run("run " .. q(script))
    assert.equal(1, code)
    assert.equal("", out)
    local l = lines_of(err)
    assert.equal(string.format("tide: run: %s:3: attempt to index a nil value (field 'x')", script), l[1])
    assert.equal("stack traceback:", l[2])
    -- the script's frames first, none of the CLI's
    assert.equal(string.format("\t%s:3: in local 'f'", script), l[3])
    assert.equal(string.format("\t%s:5: in main chunk", script), l[4])
    assert.is_nil(err:find("cli.lua", 1, true), err)
  end)

  it("exits 1 with 'tide: query NAME failed' and the batch's traceback when a batch fails", function()
    support.write_file(script, [[
local tide = require "tide"
local ms = tide.memory_stream("v int")
ms:add { { v = 1 } }
ms:frame():write_stream(function() error("sink is down") end, { trigger = "once", name = "loader" })
]])
    local code, out, err = tide_run("run " .. q(script))
    assert.equal(1, code)
    assert.equal("", out)
    local l = lines_of(err)
    assert.equal(string.format("tide: query loader (MemoryStream[1] -> ForeachBatchSink) failed: batch 0: " ..
      "sink ForeachBatchSink: %s:4: sink is down", script), l[1])
    assert.equal("stack traceback:", l[2])
    assert.truthy(err:find(string.format("\n\t%s:4: in ", script), 1, true), err)
    assert.is_nil(err:find("cli.lua", 1, true), err)
  end)

  it("shows the script's line, not tide's, for an error raised inside tide, and tide's frames only with TIDE_DEBUG",
    function()
    support.write_file(script, [[
local tide = require "tide"
local ms = tide.memory_stream("k string")
local counts = ms:frame():group_by("k"):agg { "count(*) AS n" }
counts:group_by("n"):count():write_stream("memory", { mode = "complete" })
]])
    local code, out, err = tide_run("run " .. q(script))
    assert.equal(1, code)
    assert.equal("", out)
    assert.equal(string.format("tide: run: %s:4: write_stream(memory): multiple streaming aggregations in one query " ..
      "are not supported (as in Spark): Aggregate [n] [count(*) AS count] comes after " ..
      "Aggregate [k] [count(*) AS n]; " ..
      "to aggregate the result again, do it per batch in a foreach_batch sink, or write the first aggregation to a " ..
      "topic and aggregate that topic in a second query\nstack traceback:\n\t%s:4: in main chunk\n",
      script, script), err)
    code, out, err = tide_run("run " .. q(script), "TIDE_DEBUG=1")
    assert.equal("", out)
    assert.equal(1, code)
    assert.truthy(err:find("lua/tide/query.lua:", 1, true), err)
  end)

  it("shows a UDF's error with the script's frames only", function()
    support.write_file(script, [[
local tide = require "tide"
local function check(r)
  if r.v > 1 then error("bad value " .. r.v) end
  return true
end
local ms = tide.memory_stream("v int")
ms:add { { v = 1 }, { v = 2 } }
ms:frame():filter(check):write_stream(function() end, { trigger = "once" })
]])
    local code, out, err = tide_run("run " .. q(script))
    assert.equal(1, code)
    assert.equal("", out)
    local l = lines_of(err)
    assert.matches("^tide: query %x%x%x%x%x%x%x%x %(MemoryStream%[1%] %-> ForeachBatchSink%) failed: batch 0: " ..
      "filter: row 2 " ..
      '{"v":2}: ', l[1])
    assert.equal(string.format("%s:3: bad value 2", script), l[1]:match("{\"v\":2}: (.*)$"))
    assert.equal("stack traceback:", l[2])
    assert.equal("\t[C]: in function 'error'", l[3])
    assert.equal(string.format("\t%s:3: in function <%s:2>", script, script), l[4])
    assert.equal(4, #l)
    assert.is_nil(err:find("tide/", 1, true), err)
  end)

  it("names a failed query by a short id, its source and sink, says each prefix once and hints at bad_records",
    function()
    local dir = support.tmpname()
    os.execute("mkdir -p " .. q(dir))
    support.write_file(dir .. "/a.jsonl", '{"v":1}\n{"v":"x"}\n')
    support.write_file(script, string.format([[
local tide = require "tide"
tide.read_stream("file", { path = %q, format = "json", schema = "v int" })
  :write_stream("console", { trigger = "available_now" })
]], dir .. "/*.jsonl"))
    local code, out, err = tide_run("run " .. q(script))
    os.execute("rm -rf " .. q(dir))
    assert.equal(1, code)
    assert.equal("", out)
    local src = string.format("FileSource[%s/*.jsonl]", dir)
    local want = string.format("query %%x+ %%(%s %%-> ConsoleSink%%) failed: batch 0: source %s: %s/a.jsonl:2: " ..
      "field 'v': expected int, got \"x\" %%(bad_records = \"drop\" skips bad records%%)\n$",
      src:gsub("%p", "%%%0"), src:gsub("%p", "%%%0"), dir:gsub("%p", "%%%0"))
    assert.matches("^tide: " .. want, err)
  end)

  it("prints timestamps whole, with their milliseconds, in show() and the console sink", function()
    support.write_file(script, [[
local tide = require "tide"
local rows = { { ts = 1795262399250, n = 1 }, { ts = 1795262400000, n = 2 } }
tide.from_rows(rows, "ts timestamp, n int"):show()
local ms = tide.memory_stream("ts timestamp, n int")
ms:add(rows)
ms:frame():write_stream("console", { trigger = "once" })
]])
    local code, out, err = tide_run("run " .. q(script))
    assert.equal("", err)
    assert.equal(0, code)
    local show = table.concat({
      "+------------------------+---+",
      "|                      ts|  n|",
      "+------------------------+---+",
      "|2026-11-21T11:59:59.250Z|  1|",
      "|    2026-11-21T12:00:00Z|  2|",
      "+------------------------+---+",
    }, "\n") .. "\n"
    assert.equal(show .. string.rep("-", 43) .. "\nBatch: 0\n" .. string.rep("-", 43) .. "\n" .. show .. "\n", out)
  end)

  it("refuses bad usage with one line and exit 2", function()
    local code, out, err = tide_run("run --bogus " .. q(script))
    assert.equal(2, code)
    assert.equal("", out)
    assert.equal("tide: run: unknown option '--bogus' (see 'tide run --help')\n", err)
    code, out, err = tide_run("run --log-progress")
    assert.equal(2, code)
    assert.equal("", out)
    assert.equal("tide: run: option '--log-progress' needs a value (see 'tide run --help')\n", err)
    code, out, err = tide_run("run --quiet")
    assert.equal(2, code)
    assert.equal("", out)
    assert.equal("tide: run: missing SCRIPT (see 'tide run --help')\n", err)
  end)

  it("exits 1 when the progress log cannot be opened", function()
    support.write_file(script, "print('never')\n")
    local code, out, err = tide_run(string.format("run --log-progress /nonexistent/dir/p.log %s", q(script)))
    assert.equal(1, code)
    assert.equal("", out)
    assert.equal("tide: run: cannot open the progress log: /nonexistent/dir/p.log: No such file or directory\n", err)
  end)

  describe("--log-progress FILE", function()
    local body = [[
local tide = require "tide"
local ms = tide.memory_stream("v int")
local q = ms:frame():write_stream(function() end, { name = "counted", checkpoint = %q })
for n = 1, 3 do
  local rows = {}
  for v = 1, n * 10 do rows[v] = { v = v } end
  ms:add(rows)
  q:process_all_available()
end
q:stop()
]]

    it("appends every progress report as one JSON line", function()
      support.write_file(script, string.format(body, ck))
      local code, out, err = tide_run(string.format("run --log-progress %s %s", q(log), q(script)))
      assert.equal("", err)
      assert.equal("", out)
      assert.equal(0, code)
      local l = lines_of(support.read_file(log))
      assert.equal(3, #l)
      for k, line in ipairs(l) do
        local p = assert(util.json_decode(line))
        assert.equal(k - 1, p.batch_id)
        assert.equal("counted", p.name)
        assert.equal(k * 10, p.num_input_rows)
        assert.equal("number", type(p.input_rows_per_second))
        assert.equal("number", type(p.processed_rows_per_second))
        assert.equal("number", type(p.duration_ms.total))
        assert.equal(1, #p.sources)
        assert.equal(k * 10, p.sources[1].num_input_rows)
      end
      -- a second run appends: the checkpoint goes on from batch 3
      support.write_file(script, string.format(body, ck))
      code = tide_run(string.format("run --log-progress %s %s", q(log), q(script)))
      assert.equal(0, code)
      l = lines_of(support.read_file(log))
      assert.equal(6, #l)
      assert.equal(5, util.json_decode(l[6]).batch_id)
    end)
  end)

  describe("off a terminal", function()
    it("draws no status lines, whatever TERM says", function()
      support.write_file(script, [[
local tide = require "tide"
local ms = tide.memory_stream("v int")
local q = ms:frame():write_stream("console", { name = "ticks" })
for v = 1, 2 do
  ms:add { { v = v } }
  q:process_all_available()
end
q:stop()
]])
      local code, out, err = tide_run("run " .. q(script), "TERM=xterm-256color")
      assert.equal("", err)
      assert.equal(0, code)
      assert.truthy(out:find("Batch: 0", 1, true), out)
      assert.truthy(out:find("Batch: 1", 1, true), out)
      assert.is_nil(out:find("\27", 1, true), "no escape codes")
      assert.is_nil(out:find("query ticks:", 1, true), "no status line")
    end)
  end)
end)
