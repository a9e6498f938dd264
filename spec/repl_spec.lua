-- Specs for the REPL (lua/tide/repl.lua), driven in a real terminal: tmux
-- runs `tide` (the REPL) in a pane of 120x40 (support.term); keys go in with
-- send-keys and the screen comes back with capture-pane. Every wait is for
-- a condition on the screen, with a deadline.
local support = require "spec.support"

local sh_quote = support.sh_quote

local run = support.sh

-- A terminal with the REPL in it, in a fresh directory, with its own
-- history file and no ~/.inputrc (readline's defaults).
local function start(opts)
  opts = opts or {}
  local dir = opts.dir or support.tmpname()
  os.execute("mkdir -p " .. sh_quote(dir))
  local history = opts.history or (dir .. "/history")
  -- After the REPL: the terminal's mode (stty says "-icanon -echo" for a
  -- raw terminal).
  local t = support.term(string.format("TIDE_HISTORY=%s INPUTRC=/dev/null %s", sh_quote(history),
    support.tide_command(opts.data and ("--data " .. sh_quote(opts.data)) or "")), {
    dir = dir,
    after = "stty -a | tr ' ' '\\n' | grep -x -e '-\\?icanon' -e '-\\?echo' | tr '\\n' ' '; echo",
  })
  t.dir, t.history = dir, history
  t:wait("Ctrl-D leaves")
  return t
end

local function close(t)
  t:kill()
  os.execute("rm -rf " .. sh_quote(t.dir))
end

describe("the REPL", function()
  local t

  after_each(function()
    if t then close(t) end
    t = nil
  end)

  it("runs the issue's scenario: a memory stream, a query in the background, its live table", function()
    t = start()
    t:line('ms = tide.memory_stream("word string")')
    t:line('q = ms:frame():group_by("word"):count():write_stream("memory", {name = "counts", mode = "complete"})')
    t:line('ms:add{{word="a"},{word="b"},{word="a"}}')
    -- The query runs while the prompt waits: its status line shows batch 0.
    t:line("q", "query counts  (id ")
    local deadline = os.time() + 10
    while not t:screen():find("active  batch 0", 1, true) and os.time() < deadline do
      support.sleep_ms(50)
      t:line("q")
    end
    t:wait("active  batch 0")
    local screen = t:line('tide.table("counts"):show()', "|   b|    1|")
    assert.truthy(screen:find("|word|count|\n+----+-----+\n|   a|    2|\n|   b|    1|", 1, true))
    t:line("tide.queries()", "{ tide query counts [active] }")
    t:line(".queries", "query counts  (id ")
    t:line("q:stop()")
    t:line("q:is_active()", "\nfalse\n")
    t:line(".queries", "no queries running")
    -- Ctrl-D: the process ends, and the terminal is back in its mode.
    t:type(nil, "C-d")
    t:wait("EXITED 0\n")
    -- stty's verdict follows (it says "-icanon -echo" for a raw terminal).
    t:wait("EXITED 0\nicanon echo\n")
  end)

  it("stops the queries that still run when it leaves with Ctrl-D", function()
    t = start()
    t:line('ms = tide.memory_stream("n int")')
    t:line('q = ms:frame():write_stream("memory", {name = "left_running"})')
    t:line("q", "active")
    t:type(nil, "C-d")
    local _, screen = t:wait("EXITED 0")
    assert.truthy(screen:find("stopped query left_running\n", 1, true), screen)
  end)

  it("leaves on SIGTERM with the queries stopped and the terminal restored", function()
    t = start()
    t:line('ms = tide.memory_stream("n int")')
    t:line('q = ms:frame():write_stream("memory", {name = "on_term"})')
    local screen = t:line('"pid " .. io.open("/proc/self/stat"):read("l"):match("^%d+")', "\npid ")
    local pid = screen:match("\npid (%d+)")
    t:type("half a line")
    t:wait("> half a line")
    run("kill -TERM " .. pid)
    screen = select(2, t:wait("EXITED 0\n"))
    assert.truthy(screen:find("> half a line\ntide: SIGTERM: stopping the queries\n", 1, true), screen)
    t:wait("EXITED 0\nicanon echo\n")
  end)

  it("keeps history in a file and recalls it with Up", function()
    t = start()
    t:line("x = 40 + 2")
    t:line("x", "\n42\n")
    t:type(nil, "C-d")
    t:wait("EXITED 0")
    local function entries(path)
      return (support.read_file(path):gsub("#%d+\n", "|"))
    end
    assert.equal("|x = 40 + 2\n|x\n", entries(t.history))
    local dir, history = t.dir, t.history
    t:kill()
    t = start({ dir = dir, history = history })
    t:line("y = x") -- x is gone with the first process: y is nil
    t:type(nil, "Up", "Up", "Up")
    t:wait("> x = 40 + 2")
    t:type(nil, "Enter")
    t:line("y = x * 10")
    t:line("y", "\n420\n")
    -- Ctrl-R searches the history backwards.
    t:type(nil, "C-r")
    t:type("* 1")
    t:wait("(reverse-i-search)`* 1': y = x * 10")
    t:type(nil, "Enter")
    t:line("y", "\n420\n")
    assert.equal("|x = 40 + 2\n|x\n|y = x\n|x = 40 + 2\n|y = x * 10\n|y\n|y = x * 10\n|y\n",
      entries(history))
  end)

  it("recalls a chunk of several lines whole, from the session and from the file", function()
    t = start()
    t:line("function f(x)", "\n>>")
    t:line("  return x * 3")
    t:line("end")
    t:line("f = nil")
    t:type(nil, "Up", "Up")
    t:wait("> function f(x)\n  return x * 3\nend")
    t:type(nil, "Enter")
    t:line("f(5)", "\n15\n")
    t:type(nil, "C-d")
    t:wait("EXITED 0")
    -- One entry of three lines in the file (after its #time line).
    assert.truthy(support.read_file(t.history):find("#%d+\nfunction f%(x%)\n  return x %* 3\nend\n#%d+\nf = nil\n"))
    local dir, history = t.dir, t.history
    t:kill()
    t = start({ dir = dir, history = history })
    t:type(nil, "Up", "Up") -- f(5), then the function (recalled and run again)
    t:wait("> function f(x)\n  return x * 3\nend")
    t:type(nil, "Enter")
    t:line("f(2)", "\n6\n")
  end)

  it("wraps a long line, so that the screen keeps all of it", function()
    t = start()
    local terms = {}
    for i = 1, 60 do terms[i] = tostring(i) end
    local long = "return " .. table.concat(terms, " + ") -- 179 characters: two rows of 120
    t:line(long, "\n1830\n")
    -- The pane's rows joined where they wrapped: the whole line, once.
    local joined = run(string.format("tmux -L %s capture-pane -p -J -S -200", t.sock))
    assert.truthy(joined:find("> " .. long .. "\n1830\n", 1, true), joined)
  end)

  it("edits the line: move and insert, Home/End, kill to the end, words, UTF-8", function()
    t = start()
    -- Move left and insert.
    t:type("return 1234", "Left", "Left")
    t:type("9", "Enter")
    t:wait("\n12934\n")
    -- Ctrl-A to the start, Ctrl-E to the end, Ctrl-B/Ctrl-F by one.
    t:type("2 + 3", "C-a")
    t:type("1 + ", "C-e")
    t:type(" + 4", "C-b", "C-b", "C-f") -- the cursor before the 4: 1 + 2 + 3 + 44
    t:type("4", "Enter")
    t:wait("\n50\n")
    -- Ctrl-K kills to the end, Ctrl-W the word before the cursor.
    t:type("10 * 10 junk", "C-w", "C-a", "Right", "Right", "C-k")
    t:type(" + 5", "Enter")
    t:wait("\n15\n")
    -- Ctrl-U kills to the start; Backspace and Delete.
    t:type("nothing here", "C-u")
    t:type("77x", "BSpace", "Home", "Delete", "Enter")
    t:wait("\n7\n")
    -- UTF-8: one Left and one Backspace remove one character, not a byte.
    t:type('s = "héé"', "Left", "BSpace", "Enter")
    t:line("#s", "\n3\n")
  end)

  it("continues an unfinished chunk on the next line", function()
    t = start()
    t:line("function twice(x)", "twice(x)\n>>")
    t:line("  return x * 2")
    t:line("end")
    t:line("twice(21)", "\n42\n")
    t:line("t = {")
    t:line("  a = 1,")
    t:line("}")
    t:line("t", "{ a = 1 }")
  end)

  it("prints an error with its traceback and goes on", function()
    t = start()
    t:line("function boom() error('it broke') end")
    t:line("boom()", "stdin:1: it broke")
    local _, screen = t:wait("stdin:1: in function <stdin:1>\n")
    assert.truthy(screen:find("stdin:1: it broke\nstack traceback:\n        [C]: in function 'error'\n" ..
      "        stdin:1: in function <stdin:1>\n>", 1, true), screen)
    assert.falsy(screen:find("repl.lua", 1, true))
    t:line("x = 1 +", "1 +\n>>")
    t:line(")", "unexpected symbol near ')'")
    t:line("1 + 1", "\n2\n")
  end)

  it("reports the error of a callback that fails on the loop and goes on", function()
    t = start()
    t:line('require("tide.runtime").loop():timer(1, 0, function() error("the timer broke") end)')
    t:wait("the timer broke")
    t:line("1 + 1", "\n2\n")
  end)

  it("prints values: tables readably, several values with tabs, a schema as DDL", function()
    t = start()
    t:line("{3, 2, b = {c = true}, a = 'x'}", '{ 3, 2, a = "x", b = { c = true } }')
    t:line("c = {} c.self = c")
    t:line("c", "{ self = <cycle> }")
    t:line("1, 'two', nil", "\n1       two     nil\n") -- tabs, as the terminal shows them
    t:line('tide.memory_stream("ts timestamp, n int?"):schema()', "\nts timestamp, n int?\n")
    t:line('tide.from_rows({{k = "v"}})', "|  k|")
  end)

  it("answers .help, .topics, .schema and unknown commands", function()
    local data = support.tmpname()
    t = start({ data = data })
    t:line(".help", "Ctrl-D on an empty line leaves.")
    local screen = t:screen()
    for _, c in ipairs({ ".help", ".topics", ".schema TOPIC", ".queries", ".exit", "tide.memory_stream",
      "frame:write_stream" }) do
      assert.truthy(screen:find("  " .. c, 1, true), c)
    end
    t:line(".topics", "no topics in " .. data)
    t:line('db:create_topic("events", {schema = "ts timestamp, device string"})')
    t:line('db:topic("events"):append{{ts = 1, device = "a"}}')
    t:line(".topics", "events                   1 partition  1 records")
    t:line(".schema events", "events (version 1, compatibility backward): ts timestamp, device string")
    t:line(".schema nope", "error: no topic 'nope'")
    t:line(".schema", "usage: .schema TOPIC")
    t:line(".frob", "unknown command '.frob' (commands: .help, .topics, .schema TOPIC, .queries, .ui [ADDR], .exit)")
    t:line(".exit")
    t:wait("EXITED 0")
    os.execute("rm -rf " .. sh_quote(data))
  end)

  it("keeps a half-typed line intact while a console query prints", function()
    t = start()
    t:line('r = tide.read_stream("rate", {rows_per_second = 5}):write_stream("console", {trigger = "200 ms"})')
    t:type("half typed", "Left", "Left", "Left", "Left", "Left")
    t:type("X")
    t:wait("Batch: 2")
    -- The line is redrawn below the query's output, cursor and all.
    local screen = t:screen()
    local last = screen:gsub("\n+$", ""):match("[^\n]*$")
    assert.equal("> half Xtyped", last)
    t:type(nil, "C-u", "C-k")
    t:line("r:stop()")
    t:line("r:is_active()", "\nfalse\n")
  end)

  it("clears the line on Ctrl-C and says how to leave at an empty prompt", function()
    t = start()
    t:type("this is dropped", "C-c")
    t:wait("> this is dropped^C\n>")
    t:type(nil, "C-c")
    t:wait("(to leave, press Ctrl-D on an empty line or type exit)")
    t:line("1 + 2", "\n3\n")
    assert.equal(0, t:count("dropped\n3"))
  end)

  it("interrupts a running chunk on Ctrl-C while a query runs, keeping the query and the session", function()
    t = start()
    t:line("kept = 41")
    t:line('q = tide.read_stream("rate", {rows_per_second = 10}):write_stream("memory", ' ..
      '{name = "ticks", trigger = "100 ms"})')
    -- The query runs while the prompt waits: its status line shows a batch.
    t:wait(function(s)
      if s:find("active  batch %d") then return true end
      t:line("q")
      return false
    end, 20, "a batch")
    t:line("while true do end", "> while true do end\n")
    -- Ctrl-C until the chunk is interrupted (a Ctrl-C sent before the
    -- loop began is taken as one for the prompt's empty line: none is lost).
    t:wait(function(s)
      if s:find("\ninterrupted!\n> ", 1, true) then return true end
      t:type(nil, "C-c")
      return false
    end, 20, "interrupted!")
    t:line("kept + 1", "\n42\n")
    local before = t:line("q:last_progress().batch_id", "\n")
    -- A second loop, a second Ctrl-C: the REPL is still there.
    t:line("n = 0 while true do n = n + 1 end", "> n = 0 while true do n = n + 1 end\n")
    t:wait(function(s)
      local _, k = s:gsub("\ninterrupted!\n", "")
      if k >= 2 then return true end
      t:type(nil, "C-c")
      return false
    end, 20, "a second interrupted!")
    t:line("n > 0", "\ntrue\n")
    -- The query ran on meanwhile: later batches, still active.
    t:line("q:is_active()", "\ntrue\n")
    local first = tonumber(before:match("batch_id\n(%d+)\n"))
    t:wait(function(s)
      t:line("q:last_progress().batch_id")
      local last
      for n in s:gmatch("batch_id\n(%d+)\n") do last = tonumber(n) end
      return last and first and last > first
    end, 20, "a later batch")
  end)

  it("returns the prompt on Ctrl-C during q:await(), the query still running", function()
    t = start()
    t:line('q = tide.read_stream("rate", {rows_per_second = 10}):write_stream("memory", ' ..
      '{name = "waited", trigger = "100 ms"})')
    t:line("q", "active")
    t:line("q:await()", "> q:await()\n")
    t:wait(function(s)
      if s:find("q:await()\n^C\ninterrupted!\n> ", 1, true) or s:find("q:await()\n\ninterrupted!\n> ", 1, true)
        or s:find("q:await()\ninterrupted!\n> ", 1, true) then
        return true
      end
      t:type(nil, "C-c")
      return false
    end, 20, "the interrupted wait")
    t:line("q:is_active()", "\ntrue\n")
    t:line("#tide.queries()", "\n1\n")
    t:line("q:stop()")
    t:line("q", "  stopped  ")
  end)

  it("survives a query's callback that never returns: a second Ctrl-C fails that query", function()
    t = start()
    local marker = t.dir .. "/stuck"
    t:line(string.format('q = tide.read_stream("rate", {rows_per_second = 10}):write_stream(function(id) ' ..
      'if id == 1 then io.open(%q, "w"):close() while true do end end end, {trigger = "100 ms"})', marker), "\n>")
    t:wait(function() return support.exists(marker) end, 20, "the stuck batch")
    -- Ctrl-C until the prompt answers again.
    t:wait(function(s)
      if s:find("(to leave", 1, true) then return true end
      t:type(nil, "C-c")
      return false
    end, 20, "the prompt back")
    t:line("q:is_active()", "\nfalse\n")
    t:line("q:exception()", "interrupted!")
  end)

  it("completes globals, fields and methods with Tab", function()
    t = start()
    t:type("tide.memory_s", "Tab")
    t:wait("> tide.memory_stream(")
    t:type('"n int")', "Enter")
    t:wait("tide memory stream")
    t:type("x = tide.re", "Tab")
    t:wait("> x = tide.read")
    -- Tab again lists the candidates.
    t:type(nil, "Tab")
    t:wait("> x = tide.read\ntide.read         tide.read_stream\n> x = tide.read")
    t:type(nil, "C-u")
    t:type("db:create_t", "Tab")
    t:wait("> db:create_topic(")
    t:type('"t1")', "Enter")
    t:line("db:topics()", '{ "t1" }')
    -- Names that begin with "_" only when asked for.
    t:line("obj = {_hidden = 1, shown = 2}")
    t:type("obj.", "Tab")
    t:wait("> obj.shown")
    t:type(nil, "C-u")
    t:type("obj._", "Tab")
    t:wait("> obj._hidden")
    t:type(nil, "C-u")
    t:type("pri", "Tab")
    t:wait("> print(")
    t:type("1)", "Enter")
    t:wait("print(1)\n1\n")
    -- Tab after nothing but blanks indents.
    t:type("if true then", "Enter")
    t:type(nil, "Tab")
    t:type("x = 5", "Enter")
    t:wait(">>   x = 5")
    t:line("end")
    t:line("x", "\n5\n")
  end)

  it("answers help, exit and quit as bare words and as functions", function()
    t = start()
    t:line("help", "Ctrl-D on an empty line leaves.")
    t:line("help = 3")
    t:line("help", "\n3\n") -- a name the user gave a value is theirs
    t:line("quit")
    t:wait("EXITED 0")
    t:kill()
    t = start()
    t:line("exit()")
    t:wait("EXITED 0")
    t:kill()
    t = start()
    t:line('ms = tide.memory_stream("n int")')
    t:line('q = ms:frame():write_stream("memory", {name = "left"})')
    t:line("exit")
    local _, screen = t:wait("EXITED 0")
    assert.truthy(screen:find("stopped query left\n", 1, true), screen)
  end)

  it("reads a script from a pipe without prompts, its errors on stderr, failing with status 1", function()
    local cmd = support.tide_command()
    local out = run("printf 'x = 6 * 7\\nx\\nfunction f()\\nreturn 1 end\\nf()\\n' | " .. cmd .. "; echo status $?")
    assert.equal("42\n1\nstatus 0\n", out)
    local err = support.tmpname()
    out = run("printf 'error(\"bad\")\\n1\\n' | " .. cmd .. " 2>" .. err .. "; echo status $?")
    assert.equal("1\nstatus 1\n", out)
    assert.matches("^stdin:1: bad\nstack traceback:\n", support.read_file(err))
    os.remove(err)
  end)
end)

describe("repl.query_line", function()
  local tide = require "tide"
  local repl = require "tide.repl"

  it("says a query with trigger once finished, and one stopped by q:stop() stopped", function()
    local ms = tide.memory_stream("n int")
    ms:add { { n = 1 } }
    local once = ms:frame():write_stream(function() end, { trigger = "once", name = "one_shot" })
    assert.is_true(once:await())
    assert.matches("^query one_shot  %(id [^)]+%)  finished  batch 0  ", repl.query_line(once))
    local q = ms:frame():write_stream(function() end, { name = "stopped_one" })
    q:stop()
    assert.matches("^query stopped_one  %(id [^)]+%)  stopped  no batch yet$", repl.query_line(q))
  end)
end)
