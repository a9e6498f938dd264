-- The rockspec lists every module and every C file of the tree, so that
-- `luarocks make` installs what the checkout runs.

local function load_rockspec()
  local env = {}
  local chunk = assert(loadfile("tide-scm-1.rockspec", "t", env))
  chunk()
  return env
end

local function glob(pattern)
  local out = {}
  local p = assert(io.popen("ls " .. pattern .. " 2>/dev/null"))
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

describe("tide-scm-1.rockspec", function()
  local spec = load_rockspec()
  local modules = spec.build.modules

  it("installs every Lua module of lua/tide as tide.<name>", function()
    for _, path in ipairs(glob("lua/tide/*.lua")) do
      local name = path:match("lua/tide/(.-)%.lua$")
      local mod = name == "init" and "tide" or "tide." .. name
      assert.equal(path, modules[mod], mod .. " missing from the rockspec")
    end
  end)

  it("installs every connector as tide.connectors.<name>", function()
    local paths = glob("connectors/*.lua")
    -- a connector made of parts: connectors/<name>/init.lua is tide.connectors.<name>
    for _, path in ipairs(glob("connectors/*/*.lua")) do paths[#paths + 1] = path end
    assert.is_true(#paths > 8)
    for _, path in ipairs(paths) do
      local mod = "tide.connectors." .. path:match("connectors/(.-)%.lua$"):gsub("/init$", ""):gsub("/", ".")
      assert.equal(path, modules[mod], mod .. " missing from the rockspec")
    end
  end)

  it("builds tide.core from every C file of core/, and only from those", function()
    local listed = {}
    for _, f in ipairs(modules["tide.core"].sources) do listed[f] = true end
    local files = glob("core/*.c")
    assert.is_true(#files > 10)
    for _, f in ipairs(files) do
      assert.is_true(listed[f] ~= nil, f .. " missing from the rockspec")
      listed[f] = nil
    end
    assert.same({}, listed)
  end)

  it("depends on Lua alone, so that `luarocks make` downloads nothing", function()
    -- Debian's lua-cjson is not a rock: naming it would send LuaRocks to the
    -- network (TOOLCHAIN.md)
    assert.same({ "lua >= 5.4, < 5.5" }, spec.dependencies)
    assert.equal("command", spec.test.type)
  end)

  it("links tide.core with the libraries the Makefile links, each found as an external dependency", function()
    local makefile = assert(io.open("Makefile")):read("a")
    local ldlibs = assert(makefile:match("\nLDLIBS%s*=%s*([^\n]*)"), "no LDLIBS in the Makefile")
    for more in makefile:gmatch("\nLDLIBS%s*%+=%s*([^\n]*)") do ldlibs = ldlibs .. " " .. more end
    local from_make = {}
    for lib in ldlibs:gmatch("%-l(%S+)") do
      -- libpthread is part of glibc's libc since 2.34: the Makefile names it
      -- for older systems, the rock does not need it
      if lib ~= "pthread" then from_make[#from_make + 1] = lib end
    end
    local core = modules["tide.core"]
    assert.same(from_make, core.libraries)
    local external = {}
    for name, dep in pairs(spec.external_dependencies) do
      external[dep.library] = name
      assert.is_truthy(dep.header, name .. " has no header to look for")
    end
    for _, lib in ipairs(core.libraries) do
      if lib ~= "m" then
        local name = external[lib]
        assert.is_truthy(name, lib .. " is not an external dependency")
        local incdirs, libdirs = table.concat(core.incdirs, " "), table.concat(core.libdirs, " ")
        assert.matches("$(" .. name .. "_INCDIR)", incdirs, 1, true)
        assert.matches("$(" .. name .. "_LIBDIR)", libdirs, 1, true)
      end
    end
  end)

  it("installs bin/tide as the tide command", function()
    assert.same({ tide = "bin/tide" }, spec.build.install.bin)
  end)

  it("describes the project and names no placeholder homepage", function()
    local d = spec.description
    assert.is_nil((d.homepage or ""):find("invalid", 1, true), d.homepage)
    assert.truthy(#d.summary > 20 and #d.summary <= 100, d.summary)
    assert.truthy(d.detailed and d.detailed:find("streaming engine", 1, true))
    assert.equal("MIT", d.license)
  end)

  it("names no module file that does not exist", function()
    for mod, path in pairs(modules) do
      if type(path) == "string" then
        local f = io.open(path)
        assert.is_truthy(f, mod .. ": " .. path .. " does not exist")
        f:close()
      end
    end
  end)
end)
