-- The user's install: `make install TREE=...` (LuaRocks, offline, through
-- tide-scm-1.rockspec) into a temporary tree; then, with only that tree on
-- the paths and from a directory outside the checkout, `require "tide"` from
-- plain lua5.4 and the installed `tide` running scripts; `make uninstall`;
-- and `make doc`, the LDoc reference. The checkout must come out as it went
-- in: LuaRocks' builtin build writes objects next to the sources it builds.
local support = require "support"

local ROOT = support.ROOT

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- Children get a clean environment: no Lua paths (the checkout's or a
-- user's), no ASan preload (`make asan` runs the specs with one; the rock is
-- not instrumented), no flags of the make that runs the specs.
local CLEAN_ENV = "env -u LD_PRELOAD -u TIDE_CPATH -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4"
  .. " -u MAKEFLAGS -u MFLAGS -u MAKELEVEL"

-- Run `cmd` with sh in `dir`; its exit code and its stdout and stderr.
local function run(dir, cmd)
  local p = assert(io.popen(string.format("cd %s && %s sh -c %s 2>&1", q(dir), CLEAN_ENV, q(cmd))))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

local function mktemp_d()
  local p = assert(io.popen("mktemp -d /tmp/tide-install-spec-XXXXXX"))
  local dir = p:read("l")
  p:close()
  return dir
end

-- The files LuaRocks' build could leave in the checkout (objects, modules,
-- rocks, its output directory tide/), outside make's own build directories
-- and the lua/tide/core.so that `make` builds.
local function build_leftovers()
  local p = assert(io.popen(string.format(
    "cd %s && find . \\( -path ./build -o -path ./build-asan -o -path ./.git \\) -prune -o -type f"
      .. " \\( -name '*.o' -o -name '*.so' -o -name '*.rock' -o -path './tide/*' \\) -print | sort", q(ROOT))))
  local out = {}
  for line in p:lines() do
    if line ~= "./lua/tide/core.so" then out[#out + 1] = line end
  end
  p:close()
  return out
end

local function load_rockspec()
  local env = {}
  assert(loadfile(ROOT .. "/tide-scm-1.rockspec", "t", env))()
  return env
end

-- `eval` of LuaRocks' paths for `tree`: the tree's directories, then the
-- system's (Debian's cjson), and nothing of the checkout.
local function tree_env(tree)
  return string.format('eval "$(luarocks --lua-version=5.4 --tree=%s path)" && ', q(tree))
end

describe("make install / make uninstall (LuaRocks)", function()
  local tree, work, before, install_code, install_out

  setup(function()
    tree, work = mktemp_d(), mktemp_d()
    before = build_leftovers()
    install_code, install_out = run(ROOT, "make install TREE=" .. q(tree))
  end)

  teardown(function()
    os.execute("rm -rf " .. q(tree) .. " " .. q(work))
  end)

  it("installs into the tree, offline, and leaves nothing in the checkout", function()
    assert.equal(0, install_code, install_out)
    assert.matches("tide scm%-1 is now installed in " .. tree:gsub("%p", "%%%0"), install_out)
    assert.same(before, build_leftovers())
  end)

  it("puts every module of the rockspec, the C core and the tide command into the tree", function()
    local lua_dir, lib_dir = tree .. "/share/lua/5.4/", tree .. "/lib/lua/5.4/"
    for mod, src in pairs(load_rockspec().build.modules) do
      local rel = mod:gsub("%.", "/")
      if type(src) == "string" then
        -- LuaRocks keeps a module's init.lua as such (tide/init.lua, tide/connectors/kafka/init.lua)
        local path = lua_dir .. (mod == "tide" and "tide/init" or src:match("/init%.lua$") and rel .. "/init" or rel)
          .. ".lua"
        assert.equal(support.read_file(ROOT .. "/" .. src), support.read_file(path), mod .. " at " .. path)
      else
        assert.is_true(support.exists(lib_dir .. rel .. ".so"), mod .. " not built into " .. lib_dir)
      end
    end
    assert.is_true(support.exists(tree .. "/bin/tide"))
    -- only what the rockspec names: no copy of the checkout's core.so among
    -- the Lua files, no README of the connectors directory
    assert.is_false(support.exists(lua_dir .. "tide/core.so"))
    assert.is_false(support.exists(lua_dir .. "tide/connectors/README.md"))
  end)

  it("lets plain lua5.4 require every module from the tree alone", function()
    local names = {}
    for mod in pairs(load_rockspec().build.modules) do names[#names + 1] = mod end
    table.sort(names)
    local script = work .. "/where.lua"
    support.write_file(script, [[
for _, mod in ipairs(arg) do
  require(mod)
  print(mod, package.searchpath(mod, package.path) or package.searchpath(mod, package.cpath))
end
print("version", require("tide").version)
]])
    local code, out = run(work, tree_env(tree) .. "lua5.4 where.lua " .. table.concat(names, " "))
    assert.equal(0, code, out)
    for _, mod in ipairs(names) do
      local path = out:match("\n?" .. mod:gsub("%p", "%%%0") .. "\t([^\n]*)")
      assert.is_truthy(path, mod .. " not loaded: " .. out)
      assert.equal(tree .. "/", path:sub(1, #tree + 1), mod .. " loaded from " .. path)
    end
    assert.matches("version\t%d+%.%d+", out)
  end)

  it("runs a script with the installed tide: arg, a streaming query to the end, its result", function()
    support.write_file(work .. "/words.lua", [[
local tide = require "tide"
print("args: " .. table.concat(arg, ","), arg[0])
local ms = tide.memory_stream("word string")
ms:add { { word = "b" }, { word = "a" }, { word = "b" } }
local q = ms:frame():group_by("word"):count()
  :write_stream("memory", { name = "counts", mode = "complete", trigger = "available_now" })
q:await()
for _, r in ipairs(tide.table("counts"):order_by("word"):collect()) do
  print(r.word .. "=" .. r.count)
end
]])
    local code, out = run(work, tree_env(tree) .. q(tree .. "/bin/tide") .. " run words.lua x y")
    assert.equal(0, code, out)
    assert.matches("args: x,y\twords.lua\n", out, 1, true)
    assert.matches("a=1\nb=2\n", out, 1, true)
  end)

  it("runs a copy of the quickstart example outside the checkout", function()
    assert.is_true(os.execute("cp -R " .. q(ROOT .. "/examples/quickstart") .. " " .. q(work .. "/")))
    local code, out = run(work, tree_env(tree) .. "tide run quickstart/pipeline.lua")
    assert.equal(0, code, out)
    assert.matches("window_start", out, 1, true)
    assert.matches("device", out, 1, true)
  end)

  it("starts the REPL when the installed tide has no command (stdin piped)", function()
    local code, out = run(work,
      tree_env(tree) .. "printf 'x = 40 + 2\\nx\\n' | TIDE_HISTORY=history tide --data repl-data")
    assert.equal(0, code, out)
    assert.equal("42\n", out)
  end)

  it("removes the rock from the tree with make uninstall", function()
    local code, out = run(ROOT, "make uninstall TREE=" .. q(tree))
    assert.equal(0, code, out)
    assert.is_false(support.exists(tree .. "/bin/tide"))
    assert.is_false(support.exists(tree .. "/share/lua/5.4/tide/init.lua"))
    assert.is_false(support.exists(tree .. "/lib/lua/5.4/tide/core.so"))
    code, out = run(work, tree_env(tree) .. "lua5.4 -e 'require \"tide\"'")
    assert.is_not.equal(0, code)
    assert.matches("module 'tide' not found", out, 1, true)
  end)
end)

describe("make doc", function()
  local dir, code, out

  setup(function()
    dir = mktemp_d()
    code, out = run(ROOT, "make doc DOC_DIR=" .. q(dir .. "/api"))
  end)

  teardown(function() os.execute("rm -rf " .. q(dir)) end)

  it("writes an index of the modules that lists their functions", function()
    assert.equal(0, code, out)
    local index = support.read_file(dir .. "/api/index.html")
    for _, mod in ipairs { "tide", "tide.frame", "tide.query", "tide.store", "tide.schema", "tide.session",
      "tide.util", "tide.runtime" } do
      assert.matches('href="modules/' .. mod .. '.html"', index, 1, true)
    end
    assert.matches('href="modules/tide.frame.html#Frame:with_watermark"', index, 1, true)
    assert.matches('href="modules/tide.frame.html#Frame:write_stream"', index, 1, true)
    assert.matches('href="modules/tide.html#read_stream"', index, 1, true)
  end)

  it("writes a page per module with each function's entry", function()
    local page = support.read_file(dir .. "/api/modules/tide.frame.html")
    assert.matches('<a name = "Frame:with_watermark"></a>', page, 1, true)
    assert.matches('<a name = "Frame:write_stream"></a>', page, 1, true)
    assert.is_true(support.exists(dir .. "/api/modules/tide.store.html"))
  end)

  it("documents every module whose header names it", function()
    local config = support.read_file(ROOT .. "/docs/config.ld")
    local p = assert(io.popen("cd " .. q(ROOT) .. " && grep -l '^-- @module' lua/tide/*.lua connectors/*.lua"))
    for path in p:lines() do
      assert.matches('"../' .. path .. '"', config, 1, true)
    end
    p:close()
  end)
end)
