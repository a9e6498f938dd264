-- Shared helpers of the specs: the checkout's paths, a prelude for child
-- `lua5.4` processes, temporary names, small file utilities, and where a
-- topic's segment files live (docs/FORMAT.md).
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

return M
