-- The docs are tested: every Lua block and shell command of README.md and
-- docs/guide.md runs as written, in order, in a fresh directory, the way a
-- new user would run them (bin/tide on PATH as `tide`, no TIDE_DATA).
--
-- A ```lua block runs as a script of its own under `tide run` (so each block
-- says `local tide = require "tide"`; files it leaves behind, such as a
-- store, are there for the blocks after it); a ```sh block runs under
-- `sh -e`. Other fences (```text, ```json, ...) are shown, not run, and every
-- fence names its language. A lua or sh block that cannot run here (it
-- builds the checkout, waits for a terminal or a server) carries the marker
--
--    <!-- not run: the reason -->
--
-- on the line before its fence, visible to whoever edits the docs. A block
-- that fails fails the spec with the doc's file and the block's line.

local support = require "support"

local DOCS = { "README.md", "docs/guide.md" }
local RUNS = { lua = true, sh = true }
local TIMEOUT_S = 120 -- per block: a query that never ends is a failing block

local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- The fenced code blocks of a markdown text: { line = (the fence's line),
-- lang = "lua"|"sh"|..., text =, skip = (the not-run reason, or nil) }, and
-- the problems found (a fence without a language, one never closed).
local function blocks_of(text)
  local lines = {}
  for l in (text:gsub("\n?$", "\n")):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  local blocks, problems = {}, {}
  local i = 1
  while i <= #lines do
    local indent, fence, lang = lines[i]:match("^( *)(```+)%s*([^%s`]*)%s*$")
    if fence then
      local b = { line = i, lang = lang }
      if lang == "" then problems[#problems + 1] = string.format("line %d: a fence without a language " ..
        "(```lua and ```sh run; ```text, ```json, ... are shown only)", i) end
      local j = i - 1
      while j >= 1 and lines[j]:match("^%s*$") do j = j - 1 end
      b.skip = j >= 1 and lines[j]:match("^%s*<!%-%- not run: (.-)%s*%-%->%s*$") or nil
      local body, closed = {}, false
      i = i + 1
      while i <= #lines do
        local l = lines[i]
        if l:match("^ *" .. fence .. "%s*$") then
          closed = true
          break
        end
        body[#body + 1] = l:sub(1, #indent):match("^ *$") and l:sub(#indent + 1) or l
        i = i + 1
      end
      if not closed then problems[#problems + 1] = string.format("line %d: a fence never closed", b.line) end
      b.text = table.concat(body, "\n") .. "\n"
      blocks[#blocks + 1] = b
    end
    i = i + 1
  end
  return blocks, problems
end

-- The environment of a new user in `dir`: bin/ on PATH, no TIDE_DATA (and
-- the sanitizer build's C module when the suite runs under `make asan`).
local function env_prefix()
  local parts = { "env", "-u", "TIDE_DATA", "-u", "TIDE_DEBUG",
    "PATH=" .. quote(support.ROOT .. "/bin") .. ":\"$PATH\"" }
  if os.getenv("TIDE_CPATH") then parts[#parts + 1] = "TIDE_CPATH=" .. quote(support.CPATH) end
  return table.concat(parts, " ")
end

describe("the docs", function()
  describe("blocks_of", function()
    it("finds fenced blocks with their line, language and not-run reason", function()
      local blocks, problems = blocks_of(table.concat({
        "# t", "```lua", "print(1)", "```", "<!-- not run: needs a terminal -->", "", "```sh", "tide", "```",
        "  ```text", "  out", "  ```", "```", "x", "```" }, "\n"))
      assert.same(
        { "line 13: a fence without a language (```lua and ```sh run; ```text, ```json, ... are shown only)" },
        problems)
      assert.same({ line = 2, lang = "lua", text = "print(1)\n" }, blocks[1])
      assert.same({ line = 7, lang = "sh", text = "tide\n", skip = "needs a terminal" }, blocks[2])
      assert.same({ line = 10, lang = "text", text = "out\n" }, blocks[3])
      assert.equal(4, #blocks)
    end)
  end)

  -- The guide says every duration is milliseconds or "<n> <unit>": each
  -- place it lists takes the string form.
  describe("durations", function()
    local tide = require "tide"
    local dir
    before_each(function()
      dir = support.tmpname()
      assert(os.execute("mkdir -p " .. quote(dir)))
    end)
    after_each(function() os.execute("rm -rf " .. quote(dir)) end)

    it("are taken with a unit by every call the guide lists", function()
      local db = tide.open(dir .. "/data")
      local t = db:create_topic("e", { schema = "ts timestamp, k string", retention = "12 h", segment_ms = "1.5 s" })
      assert.equal(12 * 3600000, t:info().retention_ms)
      assert.equal(1500, t:info().segment_ms)
      db:close()
      local ms = tide.memory_stream("ts timestamp, k string")
      local f = ms:frame():with_watermark("ts", "10 seconds")
        :group_by(tide.window("ts", "10 s", "5 s", "1 s"), "k"):count()
      local plan = f:explain()
      assert.truthy(plan:find("window(ts, 10s, slide 5s, start 1s)", 1, true), plan)
      assert.truthy(plan:find("EventTimeWatermark ts, 10s", 1, true), plan)
      local s = ms:frame():with_watermark("ts", "0 s"):group_by(tide.session_window("ts", "5 min"), "k"):count()
      assert.truthy(s:explain():find("session_window(ts, 5 min)", 1, true), s:explain())
      local q = f:write_stream("memory", { name = "durations", mode = "update", trigger = "1.5 s" })
      assert.is_false(q:await("20 ms")) -- still running: the timeout ran out
      q:stop()
      assert.is_true(q:await("1 s"))
      local src = tide.read_stream("file", { path = dir .. "/*.jsonl", format = "json", schema = "k string",
        final_line_wait = "2 s" })
      q = src:write_stream(function() end, { trigger = "available_now" })
      assert.is_true(q:await("10 s"))
      assert.has_error(function() q:await("3 parsecs") end,
        "await: timeout: invalid duration '3 parsecs' (use milliseconds or '<n> <unit>' with unit ms, s, min, h, d)")
    end)
  end)

  for _, doc in ipairs(DOCS) do
    describe(doc, function()
      local blocks, problems = blocks_of(support.read_file(support.ROOT .. "/" .. doc))

      it("names the language of every fence and closes it", function()
        assert.same({}, problems)
        assert.truthy(#blocks > 0)
      end)

      it("runs every Lua block and shell command as written, in order, in a fresh directory", function()
        local dir, scripts = support.tmpname(), support.tmpname()
        assert(os.execute("mkdir -p " .. quote(dir) .. " " .. quote(scripts)))
        local ran = 0
        local ok, err = pcall(function()
          for k, b in ipairs(blocks) do
            if RUNS[b.lang] and not b.skip then
              local script = string.format("%s/block-%d.%s", scripts, k, b.lang)
              support.write_file(script, b.text)
              local run = b.lang == "lua" and ("tide run " .. quote(script)) or ("sh -e " .. quote(script))
              local code, out, stderr = support.run_cmd(string.format("cd %s && %s timeout %d %s", quote(dir),
                env_prefix(), TIMEOUT_S, run))
              if code ~= 0 then
                error(string.format("%s:%d: this %s block failed (exit %d%s):\n%s\n--- stdout:\n%s--- stderr:\n%s",
                  doc, b.line, b.lang, code, code == 124 and ", timed out" or "", b.text, out, stderr), 0)
              end
              if os.getenv("DOCS_SPEC_VERBOSE") then
                io.stderr:write(string.format("== %s:%d (%s)\n%s%s", doc, b.line, b.lang, out, stderr))
              end
              ran = ran + 1
            end
          end
        end)
        os.execute("rm -rf " .. quote(dir) .. " " .. quote(scripts))
        assert(ok, err)
        assert.truthy(ran > 0)
      end)
    end)
  end
end)
