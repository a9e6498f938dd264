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
    for _, path in ipairs(glob("connectors/*.lua")) do
      local mod = "tide.connectors." .. path:match("connectors/(.-)%.lua$")
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
