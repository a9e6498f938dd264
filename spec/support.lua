-- Shared helpers of the specs: the checkout's paths, a prelude for child
-- `lua5.4` processes, temporary names, small file utilities, where a
-- topic's segment files live (docs/FORMAT.md), and a real terminal (tmux)
-- for the specs of the REPL and of `tide run`.
local M = {}

-- The checkout's root, from this file's path (busted runs from the root).
M.ROOT = (function()
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  if src:sub(1, 1) ~= "/" then src = (os.getenv("PWD") or ".") .. "/" .. src end
  return (src:gsub("/spec/[^/]*$", ""))
end)()

-- The C module's path for children: TIDE_CPATH (the ASan build) or lua/?.so.
M.CPATH = (function()
  local cp = os.getenv("TIDE_CPATH") or "lua/?.so"
  if cp:sub(1, 1) ~= "/" then cp = M.ROOT .. "/" .. cp end
  return cp
end)()

-- The first lines of a child script: paths to this checkout, and `tide`.
M.CHILD_PRELUDE = string.format([[
package.path = %q .. ";" .. package.path
package.cpath = %q .. ";" .. package.cpath
local tide = require "tide"
]], M.ROOT .. "/lua/?.lua;" .. M.ROOT .. "/lua/?/init.lua", M.CPATH)

-- A fresh path that does not exist yet.
function M.tmpname()
  local p = os.tmpname()
  os.remove(p)
  return p
end

function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

-- The file's bytes, or "" when it does not exist.
function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

-- The file's size, or nil when it does not exist.
function M.file_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end

function M.exists(path) return M.file_size(path) ~= nil end

function M.sleep_ms(ms) os.execute(string.format("sleep %.3f", ms / 1000)) end

function M.seg_name(base) return string.format("%020d.seg", base) end

-- The hot file of the segment at `base` of topic t's partition `part`.
function M.hot_path(dir, t, part, base)
  return string.format("%s/topics/%d/p%d/%s", dir, t:info().id, part, M.seg_name(base))
end

-- Its cold copy, under the store's id.
function M.cold_path(dir, t, part, base)
  return string.format("%s/cold/%s/%d/p%d/%s.zst", dir, t._store:id(), t:info().id, part, M.seg_name(base))
end

--- Run a shell command (stdin from /dev/null); its exit code, stdout and
-- stderr apart.
function M.run_cmd(cmd)
  local out, err = M.tmpname(), M.tmpname()
  local _, _, code = os.execute(string.format("%s >%s 2>%s </dev/null", cmd, out, err))
  local o, e = M.read_file(out), M.read_file(err)
  os.remove(out)
  os.remove(err)
  return code, o, e
end

--- The non-empty lines of a text.
function M.lines_of(text)
  local t = {}
  for line in text:gmatch("[^\n]+") do t[#t + 1] = line end
  return t
end

-- ------------------------------------------------------------------------
-- A real terminal
-- ------------------------------------------------------------------------

--- Quote a string for sh.
function M.sh_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- A shell command's output, stdout and stderr together.
function M.sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end

--- The shell command that runs this checkout's bin/tide with `args` (the
-- C module of TIDE_CPATH: the ASan build under `make asan`).
function M.tide_command(args)
  return string.format("TIDE_CPATH=%s lua5.4 %s/bin/tide %s", M.sh_quote(M.CPATH), M.ROOT, args or "")
end

local sh = M.sh

local Term = {}
Term.__index = Term
local terms = 0

-- Start `lua5.4 script args...` in the background (stdout dropped, stderr
-- to errf) for a kill test: returns the pipe (read it whole to wait for
-- the child) and the child's pid (to kill it).
function M.spawn_lua(script, args, errf)
  local cmd = string.format("sh -c 'lua5.4 %s %s >/dev/null 2>%s & echo $!; wait'", script, table.concat(args, " "),
    errf)
  local p = io.popen(cmd)
  local pid = tonumber(p:read("l"))
  assert(pid, "child started")
  return p, pid
end

-- Run `lua5.4 script args...` until it finishes, killing it with SIGKILL
-- `kills` times first, each after a random lo_ms..hi_ms; the child writes
-- the file `done` when it finished its work (a kill after that is an
-- error: the workload was too small for the kills). Raises when the child
-- wrote anything to stderr. Returns the number of runs.
function M.run_with_kills(script, args, done, errf, kills, lo_ms, hi_ms)
  local runs = 0
  for k = 0, kills do
    os.remove(done)
    local p, pid = M.spawn_lua(script, args, errf)
    runs = runs + 1
    if k < kills then
      M.sleep_ms(math.random(lo_ms, hi_ms))
      os.execute("kill -9 " .. pid .. " 2>/dev/null")
    end
    p:read("a")
    p:close()
    local err = M.read_file(errf)
    assert(err == "", "the child failed: " .. err)
    if k < kills and M.exists(done) then
      error(string.format("the child finished after %d kills: the workload is too small for %d", k, kills))
    end
  end
  assert(M.exists(done), "the last run finished")
  return runs
end

-- The kill tests' input: `files` JSON-lines files in dir, `per_file` rows
-- each, `{"id": i, "v": (i * 7919) % 1000}` with ids 1, 2, ... in order.
-- Returns the number of rows.
function M.id_files(dir, files, per_file)
  os.execute("mkdir -p '" .. dir .. "'")
  local id = 0
  for f = 1, files do
    local lines = {}
    for _ = 1, per_file do
      id = id + 1
      lines[#lines + 1] = string.format('{"id":%d,"v":%d}', id, (id * 7919) % 1000)
    end
    M.write_file(string.format("%s/in-%04d.jsonl", dir, f), table.concat(lines, "\n") .. "\n")
  end
  return id
end

--- Run a shell command in a terminal of its own: tmux (its own server, -L)
-- runs it in a pane of 120x40 in directory opts.dir (default: the
-- checkout). When it ends the shell prints "EXITED <status>", then runs
-- opts.after (shell text) and stays, so that the last screen can be read.
-- t:screen() includes 200 lines of scrollback unless opts.scrollback is
-- false (the visible pane only).
-- The shell ignores Ctrl-C (a trap, not SIG_IGN, which the command would
-- inherit): a SIGINT to the foreground group must not end the shell,
-- whatever the command makes of it.
function M.term(command, opts)
  opts = opts or {}
  terms = terms + 1
  local self = setmetatable({ sock = string.format("tide-spec-%d-%d", math.random(1e9), terms),
    scrollback = opts.scrollback ~= false }, Term)
  local script = string.format("trap : INT; cd %s && %s; echo EXITED $?; %s sleep 600", M.sh_quote(opts.dir or M.ROOT),
    command, opts.after and (opts.after .. ";") or "")
  local out = sh(string.format("tmux -L %s new-session -d -x 120 -y 40 %s", self.sock, M.sh_quote(script)))
  assert(out == "", out)
  return self
end

--- The screen, with up to 200 lines of scrollback above it (see M.term).
function Term:screen()
  return sh(string.format("tmux -L %s capture-pane -p%s", self.sock, self.scrollback and " -S -200" or ""))
end

--- Wait until the screen holds `cond` (plain text) or `cond(screen)` returns
-- a true value; returns that value (the text) and the screen. Fails after
-- `secs` seconds (default 10) showing the last screen. Each look is a
-- bounded poll: nothing here depends on how fast the machine is.
function Term:wait(cond, secs, what)
  local deadline, screen = os.time() + (secs or 10)
  repeat
    screen = self:screen()
    local r
    if type(cond) == "string" then
      r = screen:find(cond, 1, true) and cond
    else
      r = cond(screen)
    end
    if r then return r, screen end
    M.sleep_ms(50)
  until os.time() > deadline
  error(string.format("timed out waiting for %s on the screen:\n%s", what or string.format("%q", tostring(cond)),
    screen), 2)
end

--- The number of times text is on the screen.
function Term:count(text)
  local n, i, s = 0, 1, self:screen()
  while true do
    local a, b = s:find(text, i, true)
    if not a then return n end
    n, i = n + 1, b + 1
  end
end

--- Type text literally (no key names), then the named keys ("Enter",
-- "C-c", "Up", ...).
function Term:type(text, ...)
  if text and text ~= "" then sh(string.format("tmux -L %s send-keys -l %s", self.sock, M.sh_quote(text))) end
  for _, k in ipairs({ ... }) do sh(string.format("tmux -L %s send-keys %s", self.sock, k)) end
end

--- A line and Enter; then wait for what it should print.
function Term:line(text, expect)
  self:type(text, "Enter")
  if expect then return (select(2, self:wait(expect))) end
end

function Term:kill() sh(string.format("tmux -L %s kill-server", self.sock)) end

return M
