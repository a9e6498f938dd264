-- Specs for the REPL (lua/tide/repl.lua), driven in a real terminal: tmux
-- runs `tide` (the REPL) in a pane of 120x40; keys go in with send-keys and
-- the screen comes back with capture-pane. Every wait is for a condition
-- on the screen, with a deadline.
local support = require "spec.support"

local ROOT = support.ROOT

-- How to start the REPL: bin/tide without a command.
local function repl_command(data)
  local env = string.format("LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' LUA_CPATH='%s;;'", ROOT, ROOT,
    support.CPATH)
  return string.format("%s lua5.4 %s/bin/tide%s", env, ROOT, data and (" --data " .. data) or "")
end

local function sh_quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function run(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end

-- A terminal with the REPL in it.
local Term = {}
Term.__index = Term

local counter = 0

local function start(opts)
  opts = opts or {}
  counter = counter + 1
  local self = setmetatable({ sock = string.format("tide-repl-spec-%d-%d", math.random(1e9), counter) }, Term)
  self.dir = opts.dir or support.tmpname()
  os.execute("mkdir -p " .. sh_quote(self.dir))
  self.history = opts.history or (self.dir .. "/history")
  -- After the REPL: its status and the terminal's mode, then wait to be seen.
  local script = string.format("cd %s && TIDE_HISTORY=%s %s; echo EXITED $?; stty -a | tr ' ' '\\n' | " ..
    "grep -x -e '-\\?icanon' -e '-\\?echo' | tr '\\n' ' '; echo; sleep 600", sh_quote(self.dir),
    sh_quote(self.history), repl_command(opts.data))
  run(string.format("tmux -L %s new-session -d -x 120 -y 40 %s", self.sock, sh_quote(script)))
  self:wait("Ctrl-D to leave")
  return self
end

function Term:screen()
  return run(string.format("tmux -L %s capture-pane -p -S -200", self.sock))
end

-- Wait until the screen holds text (plain), or fail showing the screen.
function Term:wait(text, timeout)
  local deadline = os.time() + (timeout or 10)
  local screen
  repeat
    screen = self:screen()
    if screen:find(text, 1, true) then return screen end
    support.sleep_ms(50)
  until os.time() > deadline
  error(string.format("timed out waiting for %q on the screen:\n%s", text, screen), 2)
end

-- The number of times text is on the screen.
function Term:count(text)
  local n, i, s = 0, 1, self:screen()
  while true do
    local a, b = s:find(text, i, true)
    if not a then return n end
    n, i = n + 1, b + 1
  end
end

-- Type text literally (no key names), then the named keys.
function Term:type(text, ...)
  if text and text ~= "" then
    run(string.format("tmux -L %s send-keys -l %s", self.sock, sh_quote(text)))
  end
  for _, k in ipairs({ ... }) do run(string.format("tmux -L %s send-keys %s", self.sock, k)) end
end

-- A line and Enter; then wait for what it should print.
function Term:line(text, expect)
  self:type(text, "Enter")
  if expect then return self:wait(expect) end
end

function Term:close()
  run(string.format("tmux -L %s kill-server", self.sock))
  os.execute("rm -rf " .. sh_quote(self.dir))
end

describe("the REPL", function()
  local t

  after_each(function()
    if t then t:close() end
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
    local screen = t:wait("EXITED 0")
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
    screen = t:wait("EXITED 0\n")
    -- (The queries' own SIGTERM handler may have stopped them first.)
    assert.truthy(screen:find("> half a line\ntide: SIGTERM: stopping the queries\n", 1, true), screen)
    t:wait("EXITED 0\nicanon echo\n")
  end)

  it("keeps history in a file and recalls it with Up", function()
    t = start()
    t:line("x = 40 + 2")
    t:line("x", "\n42\n")
    t:type(nil, "C-d")
    t:wait("EXITED 0")
    assert.equal("x = 40 + 2\nx\n", support.read_file(t.history))
    local dir, history = t.dir, t.history
    run(string.format("tmux -L %s kill-server", t.sock))
    t = start({ dir = dir, history = history })
    t:line("y = x") -- x is gone with the first process: y is nil
    t:type(nil, "Up", "Up", "Up")
    t:wait("> x = 40 + 2")
    t:type(nil, "Enter")
    t:line("y = x * 10")
    t:line("y", "\n420\n")
    assert.equal("x = 40 + 2\nx\ny = x\nx = 40 + 2\ny = x * 10\ny\n", support.read_file(history))
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
    local screen = t:wait("stdin:1: in function <stdin:1>\n")
    assert.truthy(screen:find("stdin:1: it broke\nstack traceback:\n        [C]: in function 'error'\n" ..
      "        stdin:1: in function <stdin:1>\n>", 1, true), screen)
    assert.falsy(screen:find("repl.lua", 1, true))
    t:line("x = 1 +", "1 +\n>>")
    t:line(")", "unexpected symbol near ')'")
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
    t:line(".frob", "unknown command '.frob' (commands: .help, .topics, .schema TOPIC, .queries, .exit)")
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
    t:wait("> this is dropped^C")
    t:type(nil, "C-c")
    t:wait("(to leave, press Ctrl-D on an empty line or type .exit)")
    t:line("1 + 2", "\n3\n")
    assert.equal(0, t:count("dropped\n3"))
  end)

  it("reads a script from a pipe without prompts, failing with status 1 on an error", function()
    local cmd = repl_command()
    local out = run("printf 'x = 6 * 7\\nx\\nfunction f()\\nreturn 1 end\\nf()\\n' | " .. cmd .. "; echo status $?")
    assert.equal("42\n1\nstatus 0\n", out)
    out = run("printf 'error(\"bad\")\\n1\\n' | " .. cmd .. "; echo status $?")
    assert.matches("^stdin:1: bad\nstack traceback:\n.*\n1\nstatus 1\n$", out)
  end)
end)
