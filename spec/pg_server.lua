-- A throwaway PostgreSQL server for the postgres connector's specs and
-- benchmark: Debian's postgresql-15 binaries, a temporary directory, a unix
-- socket only (no TCP), fsync off. initdb refuses root, so as root the
-- server runs as `nobody` (setpriv); the superuser role is `tide`, trusted
-- on the socket.
--
--    local pg = require("pg_server").start()   -- (spec/ is on the specs' path)
--    ... pg.conninfo ...          -- "host=/tmp/.../sock dbname=postgres user=tide"
--    pg:restart()                 -- stop and start (connections are cut)
--    pg:stop()                    -- stop the server and remove the directory
local M = {}

M.BIN = os.getenv("TIDE_PG_BIN") or "/usr/lib/postgresql/15/bin"

-- The server's commands run without the sanitizer runtime that `make asan`
-- preloads into the specs (postgres hangs under it).
local function sh(cmd)
  local p = io.popen("env -u LD_PRELOAD " .. cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  if not ok then error("pg_server: " .. cmd .. ": " .. out, 2) end
  return out
end

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local Server = {}
Server.__index = Server

function Server:ctl(action)
  sh(string.format("%s%s/pg_ctl -D %s -o %s -l %s -w -t 30 %s", self.as, M.BIN, q(self.data),
    q("-k " .. self.sock .. " -c listen_addresses= -c fsync=off -c full_page_writes=off"), q(self.dir .. "/log"),
    action))
end

function Server:restart() self:ctl("restart") end

function Server:stop()
  if self.stopped then return end
  self.stopped = true
  pcall(self.ctl, self, "stop -m immediate")
  os.execute("rm -rf " .. q(self.dir))
end

--- Start a server in a new temporary directory.
function M.start()
  local dir = sh("mktemp -d /tmp/tide-pg.XXXXXX"):gsub("%s+$", "")
  local s = setmetatable({ dir = dir, data = dir .. "/data", sock = dir .. "/sock", as = "" }, Server)
  local root = sh("id -u"):match("^0") ~= nil
  sh(string.format("chmod 755 %s && mkdir -m 700 %s && mkdir -m 755 %s", q(dir), q(s.data), q(s.sock)))
  if root then
    sh(string.format("chown nobody:nogroup %s %s", q(s.data), q(s.sock)))
    sh(string.format("touch %s && chown nobody:nogroup %s", q(dir .. "/log"), q(dir .. "/log")))
    s.as = "setpriv --reuid=nobody --regid=nogroup --clear-groups "
  end
  local ok, err = pcall(sh, string.format("%s%s/initdb -D %s -U tide -A trust -E UTF8 --no-sync", s.as, M.BIN,
    q(s.data)))
  if ok then ok, err = pcall(s.ctl, s, "start") end
  if not ok then
    os.execute("rm -rf " .. q(dir))
    error(err, 2)
  end
  s.conninfo = string.format("host=%s dbname=postgres user=tide", s.sock)
  return s
end

return M
