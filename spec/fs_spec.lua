-- core/l_fs.c: fsync, stat, mkdir, listdir (real files in a temp dir).
local core = require "tide.core"
local support = require "support"

describe("tide.core file-system calls", function()
  local dir
  before_each(function() dir = support.tmpname() end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("mkdir, stat, listdir and fsync a directory and a file", function()
    assert.is_true(core.mkdir(dir))
    support.write_file(dir .. "/a.txt", "hello")
    local st = core.stat(dir .. "/a.txt")
    assert.same({ "file", 5 }, { st.mode, st.size })
    assert.is_true(math.abs(st.mtime - os.time()) < 60)
    assert.equal(st.mtime, st.mtime_ms // 1000)
    assert.equal("directory", core.stat(dir).mode)
    assert.same({ "a.txt" }, core.listdir(dir))
    assert.is_true(core.fsync(dir .. "/a.txt", dir))
  end)

  it("return nil, the path and the reason, and the error name", function()
    local missing = dir .. "/nope"
    assert.same({ nil, missing .. ": No such file or directory", "ENOENT" }, { core.stat(missing) })
    assert.same({ nil, missing .. ": No such file or directory", "ENOENT" }, { core.fsync(missing) })
    assert.same({ nil, missing .. ": No such file or directory", "ENOENT" }, { core.listdir(missing) })
    assert.is_true(core.mkdir(dir))
    assert.same({ nil, dir .. ": File exists", "EEXIST" }, { core.mkdir(dir) })
    assert.has_error(function() core.fsync() end, "fsync: expected at least one path")
  end)
end)
