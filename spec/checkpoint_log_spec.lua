-- A flipped bit in a query's offset or commit log (issue 18 item 14): the
-- restarted query refuses to start, naming the checkpoint, the log and the
-- batch, instead of re-reading its input from a wrong position. The bit is
-- flipped in data.mdb itself, in every copy of the entry's text LMDB holds.
-- spec/c/test_ckpt_log.c flips every bit of an entry.

local tide = require "tide"
local core = require "tide.core"
local support = require "spec.support"

-- Flip the lowest bit of the byte at `at` within every copy of text in file.
local function flip(file, text, at)
  local f = assert(io.open(file, "r+b"))
  local data = f:read("a")
  local n, i = 0, 1
  while true do
    local s = data:find(text, i, true)
    if not s then break end
    local pos = s - 1 + at - 1
    f:seek("set", pos)
    f:write(string.char(data:byte(pos + 1) ~ 1))
    n, i = n + 1, s + 1
  end
  f:close()
  return n
end

describe("a query's logs", function()
  local ck
  before_each(function() ck = support.tmpname() .. "-ck" end)
  after_each(function()
    for _, q in ipairs(tide.queries()) do q:stop() end
    os.execute("rm -rf '" .. ck .. "'")
  end)

  local function start(ms, out)
    return ms:frame():write_stream(function(_, rows) for _, r in ipairs(rows) do out[#out + 1] = r.v end end,
      { checkpoint = ck })
  end

  for _, case in ipairs { { log = "offset log", get = "offsets" }, { log = "commit log", get = "commit_entry" } } do
    it("refuse a restart over a damaged " .. case.log .. " entry, naming the checkpoint, the log and the batch",
      function()
        local ms, out = tide.memory_stream("v int"), {}
        local q = start(ms, out)
        ms:add { { v = 1 }, { v = 2 } }
        q:process_all_available()
        q:stop()
        local c = core.checkpoint(ck, { read_only = true })
        local text = c[case.get](c, 0)
        c:close()
        local at = text:find("0", 1, true) -- a digit of the entry: still valid JSON once flipped
        assert.is_true(flip(ck .. "/data.mdb", text, at) > 0)
        assert.has_error(function() start(ms, out) end,
          string.format("write_stream(foreach_batch): checkpoint %s: %s, batch 0: damaged entry (checksum mismatch)",
            ck, case.log))
        assert.same({ 1, 2 }, out)
      end)
  end
end)
