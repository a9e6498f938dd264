-- The examples (examples/NAME/pipeline.lua), each run through the real
-- `bin/tide run` on its bundled data, from the checkout's root and from
-- elsewhere. Their output is checked against figures the spec computes
-- itself from the bundled files (counts, sums, windows, sessions), except
-- late_data's, whose expected batches are derived by hand in its test.
local support = require "support"
local cjson = require "cjson"
local tide = require "tide"

local ROOT = support.ROOT
local format = string.format

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- `bin/tide run examples/NAME/pipeline.lua ARGS` from `cwd` (default: the
-- root), the script named relative to cwd as a user would; returns the exit
-- status, stdout and stderr.
local function run_example(name, args, cwd)
  cwd = cwd or ROOT
  local script = ROOT .. "/examples/" .. name .. "/pipeline.lua"
  if cwd == ROOT then script = "examples/" .. name .. "/pipeline.lua" end
  return support.run_cmd(format("cd %s && %s/bin/tide run %s %s", q(cwd), ROOT, q(script), args or ""))
end

local lines_of = support.lines_of

-- The rows of the LAST table printed in `text` (console sink or show()),
-- each an array of its trimmed cells.
local function last_table(text)
  local rows, current, header = nil, nil, false
  for _, line in ipairs(lines_of(text)) do
    if line:match("^%+[-+]+%+$") then
      if not current then current, header = {}, true
      elseif header then header = false
      else rows, current = current, nil end
    elseif current and line:sub(1, 1) == "|" then
      if not header then
        local cells = {}
        for cell in line:sub(2):gmatch("([^|]*)|") do cells[#cells + 1] = cell:match("^%s*(.-)%s*$") end
        current[#current + 1] = cells
      end
    end
  end
  return rows or {}
end

local function json_lines(path)
  local t = {}
  for line in io.lines(path) do t[#t + 1] = cjson.decode(line) end
  return t
end

-- (cjson decodes every number as a float)
local function iso(ms) return tide.format_time(math.tointeger(ms)) end

local function sorted_keys(t)
  local k = {}
  for key in pairs(t) do k[#k + 1] = key end
  table.sort(k)
  return k
end

-- round half up to 2 decimals, as the engine's round()
local function round2(x) return math.floor(x * 100 + 0.5) / 100 end

describe("examples", function()
  local dir
  before_each(function() dir = support.tmpname() end)
  after_each(function() os.execute("rm -rf " .. q(dir)) end)

  it("each example has a README and bundled input", function()
    for _, name in ipairs { "quickstart", "wordcount", "late_data", "sessions", "click_sessions", "ad_campaigns",
                            "etl", "postgres", "joins" } do
      assert.truthy(support.exists(ROOT .. "/examples/" .. name .. "/pipeline.lua"), name)
      local readme = support.read_file(ROOT .. "/examples/" .. name .. "/README.md")
      assert.truthy(readme:find("bin/tide run examples/" .. name .. "/pipeline.lua", 1, true), name)
    end
  end)

  describe("quickstart", function()
    -- the readings of events/*.jsonl with signal >= 5, per 10-second window and device
    local function expected_windows()
      local groups = {}
      for i = 1, 3 do
        for _, r in ipairs(json_lines(format("%s/examples/quickstart/events/part-%d.jsonl", ROOT, i))) do
          if r.signal >= 5 then
            local ws = r.ts // 10000 * 10000
            local key = iso(ws) .. "|" .. r.device
            local g = groups[key] or { ws = ws, device = r.device, n = 0, sum = 0 }
            g.n, g.sum = g.n + 1, g.sum + r.signal
            groups[key] = g
          end
        end
      end
      local rows = {}
      for _, key in ipairs(sorted_keys(groups)) do
        local g = groups[key]
        rows[#rows + 1] = { iso(g.ws), iso(g.ws + 10000), g.device, tostring(g.n), round2(g.sum / g.n) }
      end
      return rows
    end

    it("prints the windowed counts and averages after each of its three batches, and ends", function()
      local code, out, err = run_example("quickstart", q(dir))
      assert.are.equal(0, code, err)
      assert.are.equal("", err)
      for b = 0, 2 do assert.truthy(out:find("Batch: " .. b .. "\n", 1, true), out) end
      assert.falsy(out:find("Batch: 3", 1, true))
      assert.truthy(out:find("streaming query: 3 batches, the last one read 20 rows\n", 1, true), out)
      -- the last batch's table is the whole result, sorted by window and device
      local got, want = last_table(out), expected_windows()
      assert.are.equal(#want, #got)
      for i, w in ipairs(want) do
        assert.are.same({ w[1], w[2], w[3], w[4] }, { got[i][1], got[i][2], got[i][3], got[i][4] })
        assert.are.equal(w[5], tonumber(got[i][5]), w[1] .. " " .. w[3])
      end
    end)

    it("appends the events to a topic and reads back a slice of event time", function()
      local n, strong = 0, 0
      local from, to = tide.parse_time("2026-11-21T12:00:10Z"), tide.parse_time("2026-11-21T12:00:20Z")
      for i = 1, 3 do
        for _, r in ipairs(json_lines(format("%s/examples/quickstart/events/part-%d.jsonl", ROOT, i))) do
          if r.ts >= from and r.ts < to then
            n = n + 1
            if r.signal >= 5 then strong = strong + 1 end
          end
        end
      end
      local code, out, err = run_example("quickstart", q(dir))
      assert.are.equal(0, code, err)
      assert.truthy(out:find("topic 'events': appended 60 events\n", 1, true), out)
      assert.truthy(out:find(format("events in [2026-11-21T12:00:10Z, 2026-11-21T12:00:20Z): %d, of which %d "
        .. "with signal >= 5\n", n, strong), 1, true), out)
      -- the store given as argument holds the topic
      local db = tide.open(dir)
      assert.are.equal(60, db:topic("events"):stats().records)
      db:close()
    end)

    it("is what `make demo` runs", function()
      local mk = support.read_file(ROOT .. "/Makefile")
      assert.truthy(mk:find("\ndemo:[^\n]*\n\t[^\n]*bin/tide run examples/quickstart/pipeline.lua"), "demo target")
    end)
  end)

  describe("wordcount", function()
    -- Start the pipeline in the background on `port`, stopping after
    -- `lines` lines; returns the paths of its stdout, exit status and pid.
    local function start(port, lines)
      local out, rc, pid = dir .. "/out", dir .. "/rc", dir .. "/pid"
      os.execute(format("mkdir -p %s && (cd %s && { %s/bin/tide run examples/wordcount/pipeline.lua %d %d "
        .. ">%s 2>&1 </dev/null & echo $! >%s; wait $!; echo $? >%s; }) >/dev/null 2>&1 &",
        q(dir), q(ROOT), ROOT, port, lines, q(out), q(pid), q(rc)))
      return out, rc, pid
    end

    local function wait_for(pred)
      for _ = 1, 1000 do
        if pred() then return true end
        support.sleep_ms(20)
      end
      return false
    end

    it("counts the words of lines sent over TCP and stops after the number of lines it was given", function()
      local text = support.read_file(ROOT .. "/examples/wordcount/words.txt")
      local nlines = select(2, text:gsub("\n", ""))
      local counts = {}
      for w in text:lower():gmatch("[%w']+") do counts[w] = (counts[w] or 0) + 1 end

      -- a port that is free now; another one if the pipeline finds it taken
      local out, rc, pid, port
      for attempt = 1, 5 do
        port = 20000 + (os.time() * 7 + attempt * 7919 + math.random(0, 9999)) % 40000
        out, rc, pid = start(port, nlines)
        assert.is_true(wait_for(function()
          local o = support.read_file(out)
          return o:find("listening on", 1, true) or support.exists(rc)
        end), "the pipeline did not start")
        if not support.read_file(out):find("address already in use", 1, true) then break end
        wait_for(function() return support.exists(rc) end)
        os.remove(rc)
      end
      -- send the text as `nc` would, over a real TCP connection (bash's
      -- /dev/tcp: no nc on this machine)
      local sent = os.execute(format("exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d && cat %s >&3'", port,
        q(ROOT .. "/examples/wordcount/words.txt")))
      if not sent or not wait_for(function() return support.exists(rc) end) then
        local p = support.read_file(pid):match("%d+")
        if p then os.execute("kill " .. p) end
        error("wordcount did not stop after " .. nlines .. " lines:\n" .. support.read_file(out))
      end
      local o = support.read_file(out)
      assert.are.equal("0", support.read_file(rc):match("%d+"), o)
      assert.truthy(o:find(format("listening on 127.0.0.1:%d", port), 1, true), o)
      assert.truthy(o:find(format("wordcount: stopped after %d lines\n", nlines), 1, true), o)
      -- the last table is the complete count, most frequent first, then by word
      local want = {}
      for w, n in pairs(counts) do want[#want + 1] = { w, tostring(n) } end
      table.sort(want, function(a, b)
        if a[2] ~= b[2] then return tonumber(a[2]) > tonumber(b[2]) end
        return a[1] < b[1]
      end)
      assert.are.same(want, last_table(o))
    end)

    it("says how to use it when its arguments are not numbers", function()
      local code, _, err = run_example("wordcount", "nine")
      assert.are.equal(2, code)
      assert.are.equal("usage: tide run examples/wordcount/pipeline.lua [PORT [LINES]]\n", err)
    end)
  end)

  describe("late_data", function()
    -- Windows of 10 s, watermark = latest reading - 5 s; each batch runs
    -- with the watermark of the batch before. After arrival 1 (max 07 s) the
    -- watermark is 02 s; after 2 (max 14 s): 09 s, so the reading at 09 s
    -- of arrival 3 still counts in [00, 10); after 3 (max 21 s): 16 s,
    -- [00, 10) is final and append emits it in the no-data batch, and the
    -- 05 s reading of arrival 4 is dropped; after 4 (max 33 s): 28 s,
    -- [10, 20) is final, the 18 s reading of arrival 5 is dropped; after 5
    -- (max 45 s): 40 s, [20, 30) and [30, 40) are final.
    local EXPECTED = [[
arrival 1: readings at 12:00:01 12:00:03 12:00:07
  append batch 0: -
  append batch 1 (no data): -
  update batch 0: [12:00:00, 12:00:10) n=3 avg=21.50
  update batch 1 (no data): -
  watermark now 12:00:02
arrival 2: readings at 12:00:12 12:00:08 12:00:14
  append batch 2: -
  append batch 3 (no data): -
  update batch 2: [12:00:00, 12:00:10) n=4 avg=21.38
                  [12:00:10, 12:00:20) n=2 avg=22.75
  update batch 3 (no data): -
  watermark now 12:00:09
arrival 3: readings at 12:00:21 12:00:09 12:00:16
  append batch 4: -
  append batch 5 (no data): [12:00:00, 12:00:10) n=5 avg=21.50
  update batch 4: [12:00:00, 12:00:10) n=5 avg=21.50
                  [12:00:10, 12:00:20) n=3 avg=22.33
                  [12:00:20, 12:00:30) n=1 avg=22.00
  update batch 5 (no data): -
  watermark now 12:00:16
arrival 4: readings at 12:00:05 12:00:27 12:00:33
  append batch 6: -
  append batch 7 (no data): [12:00:10, 12:00:20) n=3 avg=22.33
  append dropped 1 late reading(s)
  update batch 6: [12:00:20, 12:00:30) n=2 avg=22.25
                  [12:00:30, 12:00:40) n=1 avg=23.50
  update batch 7 (no data): -
  update dropped 1 late reading(s)
  watermark now 12:00:28
arrival 5: readings at 12:00:18 12:00:45
  append batch 8: -
  append batch 9 (no data): [12:00:20, 12:00:30) n=2 avg=22.25
                            [12:00:30, 12:00:40) n=1 avg=23.50
  append dropped 1 late reading(s)
  update batch 8: [12:00:40, 12:00:50) n=1 avg=24.00
  update batch 9 (no data): -
  update dropped 1 late reading(s)
  watermark now 12:00:40
late readings dropped: append 2, update 2
the last window stays open in append mode until later readings move the watermark past its end
]]

    it("shows append mode emitting each window once, after the watermark, and update mode every change", function()
      local code, out, err = run_example("late_data")
      assert.are.equal(0, code, err)
      assert.are.equal("", err)
      assert.are.equal(EXPECTED, out)
    end)

    it("emits in append mode, over the run, the windows update mode last gave, for the closed windows", function()
      -- a cross-check of the two columns: the final value of each window in
      -- update mode equals what append mode emitted for it, when it did
      local _, out = run_example("late_data")
      local final_update, appended = {}, {}
      local mode
      for _, line in ipairs(lines_of(out)) do
        mode = line:match("^  (%a+)%s+batch %d+") or (line:match("^%s+%[") and mode) or nil
        local win, vals = line:match("(%[[^)]*%)) (n=%S+ avg=%S+)$")
        if win then
          if mode == "update" then final_update[win] = vals else appended[win] = vals end
        end
      end
      assert.are.equal(4, #sorted_keys(appended))
      for win, vals in pairs(appended) do assert.are.equal(final_update[win], vals, win) end
      assert.are.equal(5, #sorted_keys(final_update))
    end)
  end)

  describe("postgres", function()
    it("counts views and distinct users per section and minute into PostgreSQL and reads them back", function()
      local section = { ["/"] = "home", ["/pricing"] = "home", ["/docs"] = "docs", ["/docs/guide"] = "docs",
        ["/blog"] = "blog", ["/blog/pg"] = "blog" }
      local views, users = {}, {}
      for _, r in ipairs(json_lines(ROOT .. "/examples/postgres/views.jsonl")) do
        local ts = tide.parse_time(r.ts)
        local key = os.date("!%H:%M", ts // 60000 * 60) .. " " .. section[r.page]
        views[key] = (views[key] or 0) + 1
        users[key] = users[key] or {}
        users[key][r.user] = true
      end
      local want = {}
      for _, key in ipairs(sorted_keys(views)) do
        local minute, sec = key:match("^(%S+) (%S+)$")
        want[#want + 1] = { minute, sec, tostring(views[key]), tostring(#sorted_keys(users[key])) }
      end
      local code, out, err = run_example("postgres")
      assert.are.equal(0, code, err)
      assert.are.same(want, last_table(out))
    end)
  end)

  -- The sessions of a clicks file (examples/sessions and click_sessions):
  -- per user in time order, a click more than GAP after the last one starts
  -- a new session (windows [t, t + gap) that touch merge). Returns them,
  -- each { user, start, last_ts, n, first, last, final = the user's last },
  -- users in order, and the final watermark (latest click - DELAY).
  local GAP, DELAY = 5 * 60000, 10 * 60000
  local function sessions_of(path)
    local by_user, max_ts = {}, 0
    for _, r in ipairs(json_lines(path)) do
      local ts = tide.parse_time(r.ts)
      by_user[r.user_id] = by_user[r.user_id] or {}
      table.insert(by_user[r.user_id], { ts = ts, page = r.page })
      if ts > max_ts then max_ts = ts end
    end
    local out = {}
    for _, user in ipairs(sorted_keys(by_user)) do
      local clicks = by_user[user]
      table.sort(clicks, function(a, b) return a.ts < b.ts end)
      local s
      for _, c in ipairs(clicks) do
        if s and c.ts > s.last_ts + GAP then s = nil end
        if not s then
          s = { user = user, start = c.ts, n = 0, first = c.page }
          out[#out + 1] = s
        end
        s.n, s.last_ts, s.last = s.n + 1, c.ts, c.page
      end
      s.final = true
    end
    return out, max_ts - DELAY
  end

  -- Run a sessions example: its last table must be the sessions `closes`
  -- accepts, and it must count the others as open.
  local function check_sessions(name, closes)
    local sessions, watermark = sessions_of(ROOT .. "/examples/" .. name .. "/clicks.jsonl")
    local closed, open = {}, 0
    for _, s in ipairs(sessions) do
      if closes(s, watermark) then
        closed[#closed + 1] = { s.user, iso(s.start), iso(s.last_ts + GAP), tostring(s.n), s.first, s.last }
      else
        open = open + 1
      end
    end
    assert.is_true(open > 0 and #closed > 10)
    local code, out, err = run_example(name)
    assert.are.equal(0, code, err)
    assert.are.same(closed, last_table(out))
    assert.truthy(out:find(format("%d sessions closed; %d still open", #closed, open), 1, true), out)
  end

  describe("sessions", function()
    it("outputs each closed session with its start, end, clicks and first and last page", function()
      -- a session closes when the watermark reaches its end
      check_sessions("sessions", function(s, watermark) return s.last_ts + GAP <= watermark end)
    end)
  end)

  describe("click_sessions", function()
    it("closes each session when the next click comes after the gap or the watermark passes its end", function()
      -- one batch of every click, then a no-data batch with the final
      -- watermark: a session is closed by a later click more than GAP after
      -- its last, or by its timer (last + GAP < watermark)
      check_sessions("click_sessions", function(s, watermark)
        return not s.final or s.last_ts + GAP < watermark
      end)
    end)
  end)

  describe("joins", function()
    it("joins each impression with its clicks of the hour after it, and emits the unclicked ones once the " ..
      "watermark passes their hour", function()
      local HOUR = 3600000
      local imps = json_lines(ROOT .. "/examples/joins/impressions.jsonl")
      local clicks = json_lines(ROOT .. "/examples/joins/clicks.jsonl")
      local max_imp, max_click = 0, 0
      for _, i in ipairs(imps) do
        i.ts = tide.parse_time(i.imp_ts)
        max_imp = math.max(max_imp, i.ts)
      end
      for _, c in ipairs(clicks) do
        c.ts = tide.parse_time(c.click_ts)
        max_click = math.max(max_click, c.ts)
      end
      -- the watermark at the end: the smaller of the two streams' (delays 10 and 20 minutes);
      -- an impression goes when imp_ts <= watermark - 1 hour - 1 ms (click_ts <= imp_ts + 1 hour)
      local wm = math.min(max_imp - 10 * 60000, max_click - 20 * 60000)
      local rows, pairs_, unclicked, waiting = {}, 0, 0, 0
      for _, i in ipairs(imps) do
        local matched = false
        for _, c in ipairs(clicks) do
          if c.click_ad == i.imp_ad and c.ts >= i.ts and c.ts <= i.ts + HOUR then
            matched = true
            pairs_ = pairs_ + 1
            rows[#rows + 1] = { i.imp_id, i.imp_ad, i.campaign, iso(i.ts), c.click_id, iso(c.ts), c.user }
          end
        end
        if i.ts <= wm - HOUR - 1 then
          if not matched then
            unclicked = unclicked + 1
            rows[#rows + 1] = { i.imp_id, i.imp_ad, i.campaign, iso(i.ts), "null", "null", "null" }
          end
        else
          waiting = waiting + 1
        end
      end
      -- a click goes when click_ts <= watermark - 1 ms (click_ts >= imp_ts, and impressions
      -- after the watermark are all that can still come)
      for _, c in ipairs(clicks) do
        if c.ts > wm - 1 then waiting = waiting + 1 end
      end
      table.sort(rows, function(a, b)
        if a[1] ~= b[1] then return a[1] < b[1] end
        return a[5] == "null" or (b[5] ~= "null" and a[5] < b[5])
      end)
      assert.is_true(unclicked > 0 and pairs_ > 10)
      local code, out, err = run_example("joins")
      assert.are.equal(0, code, err)
      assert.are.same(rows, last_table(out))
      assert.truthy(out:find(format("%d impression-click pairs; %d impressions without a click; %d rows still " ..
        "in the join's state", pairs_, unclicked, waiting), 1, true), out)
    end)
  end)

  describe("ad_campaigns", function()
    -- views per (campaign, 10-second window), and the number of records
    -- update mode appends: the keys each file (one batch each) changes
    local function expected()
      local campaign_of = {}
      for line in io.lines(ROOT .. "/examples/ad_campaigns/campaigns.csv") do
        local ad, camp = line:match("^([^,]+),([^,]+)$")
        if ad ~= "ad_id" then campaign_of[ad] = camp end
      end
      local views, records, events = {}, 0, 0
      for i = 1, 2 do
        local changed = {}
        for _, e in ipairs(json_lines(format("%s/examples/ad_campaigns/events/part-%d.jsonl", ROOT, i))) do
          events = events + 1
          if e.event_type == "view" then
            local ws = e.event_time // 10000 * 10000
            local key = campaign_of[e.ad_id] .. "|" .. iso(ws) .. "|" .. iso(ws + 10000)
            views[key] = (views[key] or 0) + 1
            changed[key] = true
          end
        end
        records = records + #sorted_keys(changed)
      end
      local rows = {}
      for _, key in ipairs(sorted_keys(views)) do
        local c, ws, we = key:match("^([^|]+)|([^|]+)|([^|]+)$")
        rows[#rows + 1] = { c, ws, we, tostring(views[key]) }
      end
      return rows, records, events
    end

    it("counts views per campaign and 10-second window into a topic, and reads them back", function()
      local rows, records, events = expected()
      local code, out, err = run_example("ad_campaigns", q(dir))
      assert.are.equal(0, code, err)
      local summary = format("this run read %d events; the topic holds %d records\n", events, records)
      assert.truthy(out:find(summary, 1, true), out)
      assert.are.same(rows, last_table(out))
      -- the topic is in DIR/store
      local db = tide.open(dir .. "/store")
      assert.are.equal(records, db:topic("campaign_counts"):stats().records)
      db:close()
    end)

    it("appends nothing when run again on the same directory", function()
      local rows, records = expected()
      assert.are.equal(0, (run_example("ad_campaigns", q(dir))))
      local code, out, err = run_example("ad_campaigns", q(dir))
      assert.are.equal(0, code, err)
      assert.truthy(out:find(format("this run read 0 events; the topic holds %d records\n", records), 1, true), out)
      assert.are.same(rows, last_table(out))
    end)
  end)

  describe("etl", function()
    local FIELDS = { order_id = "string", customer = "string", amount = "number", ts = "string", status = "string" }

    -- the good lines (all five fields of the right types, no others, a
    -- time that parses) and the bad ones, as "file:line"
    local function expected()
      local good, amount, bad = 0, 0, {}
      for i = 1, 3 do
        local file = format("orders-%d.jsonl", i)
        local n = 0
        for line in io.lines(ROOT .. "/examples/etl/in/" .. file) do
          n = n + 1
          local ok, r = pcall(cjson.decode, line)
          local fine = ok and type(r) == "table"
          if fine then
            for k, ty in pairs(FIELDS) do fine = fine and type(r[k]) == ty end
            for k in pairs(r) do fine = fine and FIELDS[k] ~= nil end
            fine = fine and pcall(tide.parse_time, r.ts)
          end
          if fine then
            good, amount = good + 1, amount + r.amount
          else
            bad[#bad + 1] = file .. ":" .. n
          end
        end
      end
      return good, amount, bad
    end

    it("sends good rows through the topic to files and bad lines to the dead-letter topic", function()
      local good, amount, bad = expected()
      assert.are.equal(6, #bad)
      local code, out, err = run_example("etl", q(dir))
      assert.are.equal(0, code, err)
      assert.truthy(out:find(format("topic orders: %d rows\n", good), 1, true), out)
      assert.truthy(out:find(format("topic orders_dead_letter: %d lines\n", #bad), 1, true), out)
      local listed = {}
      for where in out:gmatch("\n  (orders%-%d%.jsonl:%d+): ") do listed[#listed + 1] = where end
      assert.are.same(bad, listed)
      assert.truthy(out:find(format("files in out/: %d rows, amount %.2f\n", good, amount), 1, true), out)
      -- the output files themselves: every good order once, status upper-cased
      local seen, rows = {}, 0
      local p = assert(io.popen("ls " .. q(dir .. "/out") .. "/part-*"))
      for path in p:lines() do
        for _, r in ipairs(json_lines(path)) do
          assert.is_nil(seen[r.order_id], r.order_id)
          seen[r.order_id] = true
          assert.are.equal(r.status:upper(), r.status)
          rows = rows + 1
        end
      end
      p:close()
      assert.are.equal(good, rows)
    end)

    it("repeats no row when run again on the same directory", function()
      local good, amount = expected()
      assert.are.equal(0, (run_example("etl", q(dir))))
      local code, out, err = run_example("etl", q(dir))
      assert.are.equal(0, code, err)
      assert.truthy(out:find(format("topic orders: %d rows\n", good), 1, true), out)
      assert.truthy(out:find("topic orders_dead_letter: 6 lines\n", 1, true), out)
      assert.truthy(out:find(format("files in out/: %d rows, amount %.2f\n", good, amount), 1, true), out)
    end)
  end)

  it("every example prints the same from another directory, and from its own with a relative path", function()
    for _, name in ipairs { "quickstart", "late_data", "sessions", "ad_campaigns", "etl" } do
      local code, out, err = run_example(name)
      assert.are.equal(0, code, name .. ": " .. err)
      os.execute("mkdir -p " .. q(dir))
      local code2, out2, err2 = run_example(name, nil, dir)
      assert.are.equal(0, code2, name .. ": " .. err2)
      assert.are.equal(out, out2, name)
      local own = ROOT .. "/examples/" .. name
      local _, _, code3 = os.execute(format("cd %s && %s/bin/tide run pipeline.lua >%s/out3 2>&1", q(own), ROOT,
        q(dir)))
      assert.are.equal(0, code3, name)
      assert.are.equal(out, support.read_file(dir .. "/out3"), name)
    end
  end)
end)
