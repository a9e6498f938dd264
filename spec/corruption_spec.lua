-- Damaged stores (core/store.c, core/seg.c, core/tier.c, core/catalog.c
-- through tide.store): flipped bytes in blocks and headers, cut segment
-- files, damaged cold copies, torn tails, a full disk and a small LMDB map.
-- Reads must fail with an error that names the topic, partition, segment
-- file and offset, and must return nothing of a damaged block.

local tide = require "tide"
local support = require "support"
local CHILD_PRELUDE = support.CHILD_PRELUDE
local tmpname = support.tmpname
local write_file = support.write_file
local file_size = support.file_size
local seg_name = support.seg_name
local hot_path = support.hot_path
local cold_path = support.cold_path

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

local function read_at(path, off, n)
  local f = assert(io.open(path, "rb"))
  f:seek("set", off)
  local s = f:read(n)
  f:close()
  return s
end

local function write_at(path, off, bytes)
  local f = assert(io.open(path, "r+b"))
  f:seek("set", off)
  f:write(bytes)
  f:close()
end

-- Flip (bitwise not) the byte at off.
local function flip(path, off)
  write_at(path, off, string.char(255 - read_at(path, off, 1):byte()))
end

local function u32(path, off) return (string.unpack("<I4", read_at(path, off, 4))) end

-- The blocks of a segment file: { {pos=, len=, base=, count=}, ... }.
local function blocks(path, committed)
  local out, pos = {}, 64
  while pos < committed do
    local len = u32(path, pos + 4)
    local base, count = string.unpack("<I8I4", read_at(path, pos + 16, 12))
    out[#out + 1] = { pos = pos, len = len, base = base, count = count }
    pos = pos + len
  end
  return out
end

-- Read everything; returns the records read and the error raised (or nil).
local function read_all(t, opts)
  local got = {}
  local ok, err = pcall(function()
    for rec in t:read(opts) do got[#got + 1] = rec end
  end)
  return got, not ok and tostring(err) or nil
end

-- A Lua pattern matching the text s literally.
local function lit(s) return (s:gsub("%p", "%%%0")) end

-- The shape of a read error: "read 'T': topic 'T' partition P segment F offset O: why".
local function read_error(topic, part, file, offset, why)
  return "read '" .. topic .. "': topic '" .. topic .. "' partition " .. part .. " segment " .. lit(file) ..
      " offset " .. offset .. ": " .. (why or "")
end

---------------------------------------------------------------------------
-- Specs
---------------------------------------------------------------------------

describe("a damaged store", function()
  local dir, db, t

  before_each(function()
    dir = tmpname()
    db = tide.open(dir)
    -- two partitions; every append is one block of 10 rows; segments of about 4 blocks
    t = db:create_topic("ev", { schema = "ts timestamp, n int, s string", partitions = 2, segment_bytes = 1024 })
    for a = 0, 19 do
      local p = a % 2
      local rows = {}
      for i = 1, 10 do
        local n = p * 1000 + (a // 2) * 10 + i - 1 -- partition p, offset n % 1000
        rows[i] = { ts = 1000 + n, n = n, s = "row" .. n }
      end
      local _, _, ranges = t:append(rows)
      assert(ranges[1].partition == p)
    end
  end)

  after_each(function()
    if db then db:close() end
    db = nil
    os.execute("rm -rf '" .. dir .. "'")
  end)

  local function segs_of(part)
    local out = {}
    for _, s in ipairs(t:segments()) do
      if s.partition == part then out[#out + 1] = s end
    end
    return out
  end

  describe("a flipped byte in a block", function()
    it("raises an error naming the topic, partition, segment file and offset", function()
      local seg = segs_of(1)[2]
      assert.equal("sealed", seg.state)
      local path = hot_path(dir, t, 1, seg.base_offset)
      local bl = blocks(path, seg.bytes)
      assert.is_true(#bl >= 2)
      flip(path, bl[2].pos + bl[2].len - 12)
      local _, err = read_all(t)
      assert.is_not_nil(err)
      assert.matches(read_error("ev", 1, seg_name(seg.base_offset), bl[2].base, "block checksum mismatch$"), err)
    end)

    it("returns every record before the damaged block and none of it", function()
      local seg = segs_of(1)[2]
      local path = hot_path(dir, t, 1, seg.base_offset)
      local bl = blocks(path, seg.bytes)
      flip(path, bl[2].pos + 100)
      local got = read_all(t)
      assert.equal(100 + bl[2].base, #got) -- all of partition 0, then partition 1 up to the block
      for i, r in ipairs(got) do
        local p, o = (i - 1) < 100 and 0 or 1, (i - 1) < 100 and i - 1 or i - 101
        assert.equal(p, r.partition)
        assert.equal(o, r.offset)
        assert.equal(p * 1000 + o, r.n)
        assert.equal("row" .. r.n, r.s)
      end
    end)

    it("is reported by read_json and batches too", function()
      local seg = segs_of(0)[1]
      local path = hot_path(dir, t, 0, seg.base_offset)
      flip(path, blocks(path, seg.bytes)[1].pos + 40)
      local pat = "read_json 'ev': topic 'ev' partition 0 segment " .. seg_name(seg.base_offset) .. " offset 0: "
      assert.has_error(function() for _ in t:read_json {} do end end)
      local ok, err = pcall(function() for _ in t:read_json {} do end end)
      assert.is_false(ok)
      assert.matches(lit(pat), err)
      ok, err = pcall(function() for _ in t:batches {} do end end)
      assert.is_false(ok)
      assert.matches(lit((pat:gsub("^read_json", "batches"))), err)
    end)

    it("breaks only the reads that reach the damaged block", function()
      local seg = segs_of(0)[3]
      local path = hot_path(dir, t, 0, seg.base_offset)
      flip(path, blocks(path, seg.bytes)[1].pos + 60)
      local got, err = read_all(t, { partition = 1 })
      assert.is_nil(err)
      assert.equal(100, #got)
      got, err = read_all(t, { partition = 0, to = seg.base_offset })
      assert.is_nil(err)
      assert.equal(seg.base_offset, #got)
      got, err = read_all(t, { partition = 0, from = seg.end_offset })
      assert.is_nil(err)
      assert.equal(100 - seg.end_offset, #got)
      -- time ranges prune the damaged segment without reading it
      got, err = read_all(t, { to_time = 1000 + seg.base_offset })
      assert.is_nil(err)
      assert.equal(seg.base_offset, #got)
      got, err = read_all(t, { partition = 0, from = seg.base_offset + 3 })
      assert.same({}, got)
      assert.matches(read_error("ev", 0, seg_name(seg.base_offset), seg.base_offset, ""), err)
    end)

    it("blames the caller's line, not store.lua", function()
      local seg = segs_of(0)[1]
      local path = hot_path(dir, t, 0, seg.base_offset)
      flip(path, blocks(path, seg.bytes)[1].pos + 40)
      local _, err = read_all(t)
      assert.matches("^spec/corruption_spec%.lua:%d+: read 'ev': ", err)
    end)

    it("is found in the open segment as well", function()
      local segs = segs_of(0)
      local seg = segs[#segs]
      assert.equal("open", seg.state)
      local path = hot_path(dir, t, 0, seg.base_offset)
      local bl = blocks(path, seg.bytes)
      flip(path, bl[#bl].pos + 20)
      local got, err = read_all(t, { partition = 0 })
      assert.matches(read_error("ev", 0, seg_name(seg.base_offset), bl[#bl].base, "block checksum mismatch"), err)
      assert.equal(bl[#bl].base, #got)
    end)

    it("is reported for a damaged block length or magic", function()
      local seg = segs_of(0)[1]
      local path = hot_path(dir, t, 0, seg.base_offset)
      local bl = blocks(path, seg.bytes)
      write_at(path, bl[2].pos + 4, string.pack("<I4", 1 << 30))
      local _, err = read_all(t, { partition = 0 })
      assert.matches(read_error("ev", 0, seg_name(0), bl[2].base, "bad block length %d+ %(%d+ bytes left%)"), err)
      write_at(path, bl[2].pos + 4, string.pack("<I4", bl[2].len))
      flip(path, bl[2].pos)
      _, err = read_all(t, { partition = 0 })
      assert.matches(read_error("ev", 0, seg_name(0), bl[2].base, "bad block magic"), err)
    end)
  end)

  describe("a damaged segment header", function()
    it("raises a clear error", function()
      local seg = segs_of(0)[2]
      local path = hot_path(dir, t, 0, seg.base_offset)
      flip(path, 20) -- the partition field, under the header's checksum
      local got, err = read_all(t)
      assert.matches(read_error("ev", 0, seg_name(seg.base_offset), seg.base_offset, "bad segment header$"), err)
      assert.equal(seg.base_offset, #got)
    end)

    it("raises a clear error for a bad magic or an unknown format version", function()
      local seg = segs_of(1)[1]
      local path = hot_path(dir, t, 1, seg.base_offset)
      flip(path, 0)
      local _, err = read_all(t, { partition = 1 })
      assert.matches(read_error("ev", 1, seg_name(0), 0, "bad segment header$"), err)
      flip(path, 0)
      write_at(path, 8, string.pack("<I4", 99))
      _, err = read_all(t, { partition = 1 })
      assert.matches(read_error("ev", 1, seg_name(0), 0, "unknown segment format version$"), err)
    end)

    it("names the damaged segment's own base offset when the read starts past earlier segments", function()
      local seg = segs_of(0)[2]
      local path = hot_path(dir, t, 0, seg.base_offset)
      flip(path, 20)
      local _, err = read_all(t, { partition = 0, from = seg.base_offset })
      assert.matches(read_error("ev", 0, seg_name(seg.base_offset), seg.base_offset, "bad segment header$"), err)
    end)
  end)

  describe("a cut segment file", function()
    it("raises a clear error, without crashing, at any length", function()
      local seg = segs_of(0)[2]
      assert.equal("sealed", seg.state)
      local path = hot_path(dir, t, 0, seg.base_offset)
      for _, len in ipairs { seg.bytes - 1, seg.bytes // 2, 64, 10, 0 } do
        os.execute(string.format("truncate -s %d '%s'", len, path))
        local got, err = read_all(t, { partition = 0 })
        assert.matches(read_error("ev", 0, seg_name(seg.base_offset), seg.base_offset,
          "segment file is shorter than its committed size$"), err)
        assert.equal(seg.base_offset, #got)
      end
      -- the other segments still read
      local got, err = read_all(t, { partition = 0, from = seg.end_offset })
      assert.is_nil(err)
      assert.equal(100 - seg.end_offset, #got)
    end)

    it("raises an error when a segment file named by the catalog is missing", function()
      local seg = segs_of(0)[2]
      os.remove(hot_path(dir, t, 0, seg.base_offset))
      local got, err = read_all(t, { partition = 0 })
      assert.is_not_nil(err, "read " .. #got .. " of 100 records and no error")
      assert.matches(read_error("ev", 0, seg_name(seg.base_offset), seg.base_offset, ""), err)
    end)

    it("keeps the store usable: it closes, reopens and appends", function()
      local seg = segs_of(0)[1]
      os.execute(string.format("truncate -s 100 '%s'", hot_path(dir, t, 0, seg.base_offset)))
      db:close()
      db = tide.open(dir)
      t = db:topic("ev")
      local first = t:append { { ts = 1, n = -1, s = "after" } }
      assert.equal(100, first)
      local got, err = read_all(t, { partition = 0, from = 100 })
      assert.is_nil(err)
      assert.equal("after", got[1].s)
    end)
  end)

  describe("a damaged cold copy", function()
    local seg
    before_each(function()
      assert.is_true(t:offload {} > 0)
      seg = segs_of(0)[1]
      assert.equal("offloaded", seg.state)
    end)

    it("raises a clear error when a byte of it is flipped", function()
      local path = cold_path(dir, t, 0, seg.base_offset)
      flip(path, file_size(path) // 2)
      local got, err = read_all(t, { partition = 0 })
      local cold = seg_name(seg.base_offset) .. ".zst (cold)"
      assert.matches(read_error("ev", 0, cold, seg.base_offset, lit(path) .. ": "), err)
      assert.equal(0, #got)
    end)

    it("raises a clear error when it is cut short", function()
      local path = cold_path(dir, t, 0, seg.base_offset)
      os.execute(string.format("truncate -s %d '%s'", file_size(path) // 2, path))
      local _, err = read_all(t, { partition = 0 })
      assert.matches(read_error("ev", 0, seg_name(seg.base_offset) .. ".zst (cold)", seg.base_offset, lit(path)), err)
    end)

    it("raises a clear error when it is not zstd at all", function()
      local path = cold_path(dir, t, 0, seg.base_offset)
      write_file(path, "this is not a zstd frame")
      local _, err = read_all(t, { partition = 0 })
      assert.matches(read_error("ev", 0, seg_name(seg.base_offset) .. ".zst (cold)", seg.base_offset,
        lit(path) .. ": not a cold segment of " .. seg.bytes .. " bytes$"), err)
    end)

    it("raises an error when it is missing", function()
      os.remove(cold_path(dir, t, 0, seg.base_offset))
      local got, err = read_all(t, { partition = 0 })
      assert.is_not_nil(err, "read " .. #got .. " of 100 records and no error")
    end)
  end)

  describe("a torn tail", function()
    local seg, path, before
    before_each(function()
      local segs = segs_of(1)
      seg = segs[#segs]
      assert.equal("open", seg.state)
      path = hot_path(dir, t, 1, seg.base_offset)
      before = read_all(t)
      -- what a writer killed half way through an append leaves behind
      local f = assert(io.open(path, "ab"))
      f:write(string.rep("\0\1garbage\255", 300))
      f:close()
      assert.is_true(file_size(path) > seg.bytes)
    end)

    it("leaves reads unaffected", function()
      local got, err = read_all(t)
      assert.is_nil(err)
      assert.same(before, got)
    end)

    it("is cut by the next append, which succeeds", function()
      local bytes_before = seg.bytes
      t:append { { ts = 1, n = 0, s = "x" } } -- partition 0 (round-robin)
      local first = t:append { { ts = 5, n = 5, s = "next" } }
      assert.equal(100, first)
      local segs = segs_of(1)
      local now = segs[#segs]
      assert.equal(seg.base_offset, now.base_offset)
      assert.is_true(now.bytes > bytes_before)
      assert.equal(now.bytes, file_size(path))
      local got, err = read_all(t, { partition = 1 })
      assert.is_nil(err)
      assert.equal(101, #got)
      assert.equal("next", got[101].s)
    end)

    it("is cut when the store is opened again", function()
      db:close()
      db = tide.open(dir)
      t = db:topic("ev")
      local segs = segs_of(1)
      assert.equal(segs[#segs].bytes, file_size(path))
      assert.equal(seg.bytes, segs[#segs].bytes)
      local got, err = read_all(t)
      assert.is_nil(err)
      assert.same(before, got)
    end)
  end)

  describe("a full disk", function()
    it("makes a large append fail with EFBIG and leaves the store as it was", function()
      local segs_before, before = t:segments(), read_all(t)
      db:close()
      db = nil
      local script = tmpname() .. ".lua"
      write_file(script, CHILD_PRELUDE .. [[
local db = tide.open(arg[1])
local t = db:topic("ev")
local rows = {}
for i = 1, 50000 do rows[i] = { ts = i, n = i, s = string.rep("z", 60) } end
local ok, err = pcall(t.append, t, rows)
print(ok, err)
db:close()
]])
      -- ulimit -f counts 512-byte blocks in dash, 1024 in bash: 400 is at least 200 KB, far below the append
      local p = io.popen(string.format("sh -c \"trap '' XFSZ; ulimit -f 400; exec lua5.4 %s '%s'\" 2>&1", script, dir))
      local out = p:read("a")
      local ok = p:close()
      os.remove(script)
      assert.is_true(ok, out)
      assert.matches("^false\t[^\n]*append to 'ev': cannot write " .. lit(dir) .. "/topics/%d+/p%d/%d+%.seg: " ..
        "File too large\n$", out)
      db = tide.open(dir)
      t = db:topic("ev")
      assert.same(segs_before, t:segments())
      assert.same(before, (read_all(t)))
      for _, s in ipairs(t:segments()) do
        assert.equal(s.bytes, file_size(hot_path(dir, t, s.partition, s.base_offset)))
      end
      local first = t:append { { ts = 1, n = 1, s = "fine" } }
      assert.equal(100, first)
      assert.equal(201, #read_all(t))
    end)
  end)

  describe("a small LMDB map", function()
    it("grows as needed for 300 topics and their appends, and reopens", function()
      db:close()
      db = tide.open(dir .. "/small", { map_size = 65536 })
      for i = 1, 300 do
        local tt = db:create_topic(string.format("t%03d", i), { schema = "a int, b string", partitions = 2 })
        tt:append { { a = i, b = "x" }, { a = -i, b = "y" } }
      end
      assert.equal(300, #db:topics())
      db:close()
      db = tide.open(dir .. "/small", { map_size = 65536 })
      local topics = db:topics()
      assert.equal(300, #topics)
      local sum = 0
      for _, name in ipairs(topics) do
        for rec in db:topic(name):read {} do sum = sum + math.abs(rec.a) end
      end
      assert.equal(2 * 300 * 301 // 2, sum)
      db:topic("t001"):append { { a = 1000, b = "z" } }
      assert.equal(3, #read_all(db:topic("t001")))
    end)
  end)
end)
