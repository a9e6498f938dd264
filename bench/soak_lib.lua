-- bench/soak_lib.lua: the bounded-state soak of issue 6, shared by
-- bench/soak.lua (10 million events, `make bench-soak`) and
-- spec/soak_spec.lua (the same checks on a small input, in CI).
--
-- The query, as a user writes it:
--
--    tide.read_stream("file", { path = EVENTS, format = "json", schema = SCHEMA,
--                               max_bytes_per_trigger = B })
--      :with_watermark("ts", "5 seconds")
--      :group_by(tide.window("ts", "10 seconds"), "device"):count()
--      :write_stream(foreach_batch, { mode = "append", checkpoint = DIR, trigger = 0 })
--    q:process_all_available(); q:stop()
--
-- The sink writes each output row to a text file (`window_start device
-- count`), so the output does not accumulate in the process. Each time it
-- is called (once per batch, in batch order), it takes a sample: the
-- previous batch's progress report (committed: its state rows, rows
-- dropped by the watermark), the process's resident set (/proc/self/statm)
-- and the checkpoint directory's size (every file under it, core.stat).
--
-- Checks (M.check), each returning what it measured and a verdict:
--
-- * state rows: after batch k the state holds the groups of windows the
--   watermark has not passed. Batch k evicts every window with end <= W_k,
--   where W_k >= M_{k-1} - delay (M_k: the largest event time seen after
--   batch k); the windows left start in (W_k - size, M_k]. Events step
--   `step` ms with up to `disorder` ms of disorder, so M_k - M_{k-1} <=
--   rows_k * step + disorder, and that interval holds at most
--   ceil((rows * step + disorder + delay + size) / size) window starts.
--   Bound: devices * that, with rows = the largest batch's input rows
--   (from the progress reports). With 100,000-event batches: 1000 *
--   ceil((100000 + 2000 + 5000 + 10000) / 10000) = 12,000 rows, whatever
--   the number of events seen.
-- * no late rows: the disorder (2 s) is below the watermark delay (5 s),
--   so no row is ever late; every report must say 0 rows dropped.
-- * RSS flat after warm-up: the largest RSS over the second half of the
--   samples must stay within `rss_margin` (a fraction) plus `rss_slack`
--   bytes of the largest RSS at the end of the first quarter (samples
--   n/8+1 .. n/4: the first batches' warm-up left out). The RSS compared is
--   taken after a full Lua collection (the sink forces one per batch):
--   Lua's incremental collector lets garbage grow to twice the live heap
--   between cycles, so the RSS of the moment swings with the collector's
--   rhythm (measured on 10 million events without forced collections:
--   20 to 50 MB, in steps that follow the cycles, no trend) and a leak is
--   what survives a full collection. The RSS before the collection is
--   kept too (rss_raw).
-- * checkpoint bounded: the largest size over the second half of the
--   samples within `ckpt_factor` times the largest at the end of the
--   first quarter
--   (an unbounded checkpoint grows with the events: the second half has
--   seen at least twice as many as the first quarter).
-- * output: every (window, device) group whose window the final watermark
--   has passed is emitted exactly once with the count an independent
--   computation finds (M.expected: a plain Lua pass over the JSON file);
--   no other group is emitted; the groups not yet emitted are exactly
--   those of the windows still open, and the final state holds that many
--   rows.

local M = {}

local format = string.format

M.SCHEMA = "ts timestamp, device string, signal int, kind string"
M.SIZE_MS, M.DELAY_MS, M.DISORDER_MS, M.STEP_MS = 10000, 5000, 2000, 1

-- Write n events in the form of ../shared/bench's gen_events (ts steps
-- `step` ms per event minus a disorder in [0, disorder] ms; `devices`
-- devices; signal 0..100), deterministic for the same arguments. Used by
-- the spec, which must not depend on the shared tools being built.
function M.generate(path, n, o)
  o = o or {}
  local devices, disorder, step = o.devices or 1000, o.disorder or M.DISORDER_MS, o.step or M.STEP_MS
  local start = o.start or 1700000000000
  local kinds = { "view", "view", "view", "click", "click", "purchase" }
  local f = assert(io.open(path, "wb"))
  local x = o.seed or 88172645463325252 -- xorshift64
  local function rnd()
    x = x ~ (x << 13)
    x = x ~ (x >> 7)
    x = x ~ (x << 17)
    return x
  end
  local buf, nb = {}, 0
  for i = 0, n - 1 do
    local ts = start + i * step - (disorder > 0 and (rnd() % (disorder + 1)) or 0)
    local r = rnd()
    nb = nb + 1
    buf[nb] = format('{"ts":%d,"device":"dev-%d","signal":%d,"kind":"%s"}\n', ts, r % devices, (r >> 20) % 101,
      kinds[(r >> 40) % 6 + 1])
    if nb == 4096 then
      f:write(table.concat(buf, "", 1, nb))
      nb = 0
    end
  end
  f:write(table.concat(buf, "", 1, nb))
  f:close()
end

-- The independent computation: count per (window_start, device) over the
-- JSON lines of `path`, with plain Lua patterns (no tide code).
-- Returns { [window_start] = { [device] = count } }, the number of groups,
-- the number of lines and the largest ts.
function M.expected(path, size)
  size = size or M.SIZE_MS
  local map, groups, lines, max_ts = {}, 0, 0, nil
  local match = string.match
  for line in io.lines(path) do
    local ts = tonumber(match(line, '"ts":(%-?%d+)'))
    local dev = match(line, '"device":"([^"]*)"')
    if not ts or not dev then error(format("%s: line %d is not an event: %s", path, lines + 1, line), 0) end
    lines = lines + 1
    local ws = ts // size * size
    local w = map[ws]
    if not w then
      w = {}
      map[ws] = w
    end
    local c = w[dev]
    if not c then groups = groups + 1 end
    w[dev] = (c or 0) + 1
    if not max_ts or ts > max_ts then max_ts = ts end
  end
  return map, groups, lines, max_ts
end

-- The process's resident set in bytes.
local PAGE
function M.rss()
  if not PAGE then
    local p = io.popen("getconf PAGESIZE")
    PAGE = p and tonumber(p:read("a")) or 4096
    if p then p:close() end
  end
  local f = assert(io.open("/proc/self/statm", "r"))
  local line = f:read("l")
  f:close()
  return tonumber(line:match("^%d+%s+(%d+)")) * PAGE
end

-- The bytes of every regular file under dir (recursively).
function M.dir_bytes(dir)
  local core = require "tide.core"
  local total = 0
  local names = core.listdir(dir)
  if not names then return 0 end
  for _, name in ipairs(names) do
    local p = dir .. "/" .. name
    local st = core.stat(p)
    if st and st.mode == "directory" then
      total = total + M.dir_bytes(p)
    elseif st and st.mode == "file" then
      total = total + st.size
    end
  end
  return total
end

-- Run the soak query over `o.events` (a JSON-lines file) in the work
-- directory `o.dir` (created; its ckpt/ and out.txt are the query's), with
-- `o.batch_bytes` per trigger. `o.on_sample(sample)` is called for each
-- sample when given. Returns { samples =, watermark =, reports =, out =
-- path of the output text, secs = wall seconds, input = rows read }.
function M.run(o)
  local tide = require "tide"
  local core = require "tide.core"
  local clock = core.clock_ms
  local ckpt, out = o.dir .. "/ckpt", o.dir .. "/out.txt"
  local fh = assert(io.open(out, "wb"))
  local samples, reports, seen = {}, {}, {}
  local q
  local function take(p)
    if p and not seen[p.batch_id] then
      seen[p.batch_id] = true
      reports[#reports + 1] = p
      return p
    end
  end
  local function sample(p)
    local op = p.state_operators[1]
    -- RSS as it is, then after a full Lua collection: between cycles the
    -- incremental collector lets garbage grow to its pause (200% of the
    -- live heap), so the first swings with the collector's rhythm; what
    -- survives a full collection is what the process keeps
    local raw = M.rss()
    collectgarbage()
    local s = { batch_id = p.batch_id, input = p.num_input_rows, state_rows = op.num_rows_total,
      dropped = op.num_rows_dropped_by_watermark, state_bytes = op.memory_bytes, watermark = p.event_time.watermark,
      rss_raw = raw, rss = M.rss(), lua_bytes = math.floor(collectgarbage("count") * 1024),
      ckpt_bytes = M.dir_bytes(ckpt) }
    samples[#samples + 1] = s
    if o.on_sample then o.on_sample(s) end
  end
  local function sink(_, rows)
    local p = take(q:last_progress())
    if p then sample(p) end
    for i = 1, #rows do
      local r = rows[i]
      if r.window_end - r.window_start ~= M.SIZE_MS then
        error(format("window [%d, %d) is not %d ms long", r.window_start, r.window_end, M.SIZE_MS), 0)
      end
      fh:write(r.window_start, " ", r.device, " ", r.count, "\n")
    end
  end
  local t0 = clock()
  q = tide.read_stream("file", { path = o.events, format = "json", schema = M.SCHEMA, final_line_wait = 0,
    max_bytes_per_trigger = o.batch_bytes })
    :with_watermark("ts", format("%d ms", M.DELAY_MS))
    :group_by(tide.window("ts", format("%d ms", M.SIZE_MS)), "device")
    :count()
    :write_stream(sink, { mode = "append", checkpoint = ckpt, trigger = 0 })
  local ok, err = pcall(q.process_all_available, q)
  q:stop()
  fh:close()
  if not ok then error(err, 0) end
  local secs = (clock() - t0) / 1000
  -- the reports of the batches after the sink's last call (the last batch
  -- with output, then the no-data batches): sampled after the stop
  local rest = {}
  for _, p in ipairs(q:recent_progress()) do rest[#rest + 1] = take(p) end
  for _, p in ipairs(rest) do sample(p) end
  local input = 0
  for _, p in ipairs(reports) do input = input + p.num_input_rows end
  return { samples = samples, reports = reports, watermark = q:watermark(), out = out, secs = secs, input = input,
    batches = q:last_progress().batch_id + 1 }
end

-- M.run's result as a Lua chunk (for a child process to hand it back):
-- the samples and the scalar fields; the reports as their count.
function M.dump(r)
  local parts = { "return { samples = {\n" }
  for _, x in ipairs(r.samples) do
    local f = {}
    for k, v in pairs(x) do f[#f + 1] = format("%s = %s", k, math.type(v) == "integer" and format("%d", v) or
      format("%q", v)) end
    table.sort(f)
    parts[#parts + 1] = "{ " .. table.concat(f, ", ") .. " },\n"
  end
  parts[#parts + 1] = format("}, nreports = %d, batches = %d, input = %d, out = %q, secs = %q, watermark = %s }\n",
    #r.reports, r.batches, r.input, r.out, r.secs, r.watermark and format("%d", r.watermark) or "nil")
  return table.concat(parts)
end

function M.load(text)
  local r = assert(load(text, "=soak result", "t", {}))()
  r.reports = {}
  for i = 1, r.nreports do r.reports[i] = true end
  return r
end

local function max_of(samples, field, from, to)
  local m
  for i = from, to do
    local v = samples[i][field]
    if m == nil or v > m then m = v end
  end
  return m
end

-- The checks of the header. `r` is M.run's result, `want` M.expected's map,
-- `o` = { devices, rss_margin, rss_slack, ckpt_factor }. Returns a list of
-- { name, ok, text }.
function M.check(r, want, o)
  local res = {}
  local function add(name, ok, text) res[#res + 1] = { name = name, ok = ok, text = text } end
  local s = r.samples
  local devices = o.devices or 1000

  add("all batches reported", #r.reports == r.batches and #s == r.batches,
    format("%d batches, %d reports, %d samples", r.batches, #r.reports, #s))
  add("input rows", r.input == o.lines, format("%d rows read, the file has %d lines", r.input, o.lines))

  -- state rows under the bound of the open windows
  local max_rows, max_state, max_at = 0, 0, nil
  for _, x in ipairs(s) do
    if x.input > max_rows then max_rows = x.input end
    if x.state_rows > max_state then max_state, max_at = x.state_rows, x.batch_id end
  end
  local windows = -((-(max_rows * M.STEP_MS + M.DISORDER_MS + M.DELAY_MS + M.SIZE_MS)) // M.SIZE_MS) -- ceil
  local bound = devices * windows
  add("state rows bounded", max_state <= bound,
    format("max %d state rows (batch %s) <= %d = %d devices x %d windows (largest batch %d rows: ceil((%d x %d + " ..
      "%d + %d + %d) / %d))", max_state, tostring(max_at), bound, devices, windows, max_rows, max_rows, M.STEP_MS,
      M.DISORDER_MS, M.DELAY_MS, M.SIZE_MS, M.SIZE_MS))

  local dropped = 0
  for _, x in ipairs(s) do dropped = dropped + x.dropped end
  add("no late rows", dropped == 0, format("%d rows dropped by the watermark (disorder %d ms < delay %d ms)", dropped,
    M.DISORDER_MS, M.DELAY_MS))

  -- RSS and checkpoint size: first quarter vs second half
  local n = #s
  if n >= 8 then
    -- early: the end of the first quarter (its second half: samples
    -- n/8+1 .. n/4, past the first batches' warm-up); late: the second half
    local e1, e2, h2 = n // 8 + 1, n // 4, n // 2 + 1
    local early, late = max_of(s, "rss", e1, e2), max_of(s, "rss", h2, n)
    local limit = early * (1 + o.rss_margin) + o.rss_slack
    add("RSS flat", late <= limit, format("max RSS over the second half (batches %d..%d) %.1f MB <= %.1f MB (max " ..
      "at the end of the first quarter, batches %d..%d, %.1f MB + %.0f%% + %.1f MB)", s[h2].batch_id, s[n].batch_id,
      late / 2 ^ 20, limit / 2 ^ 20, s[e1].batch_id, s[e2].batch_id, early / 2 ^ 20, o.rss_margin * 100,
      o.rss_slack / 2 ^ 20))
    local ce, cl = max_of(s, "ckpt_bytes", e1, e2), max_of(s, "ckpt_bytes", h2, n)
    add("checkpoint bounded", cl <= ce * o.ckpt_factor, format("max checkpoint size over the second half %.2f MB <= " ..
      "%.1f x %.2f MB (max at the end of the first quarter)", cl / 2 ^ 20, o.ckpt_factor, ce / 2 ^ 20))
  else
    add("enough batches", false, format("%d samples: at least 8 are needed to compare early and late", n))
  end

  -- output against the independent computation
  local wm = r.watermark or 0
  local got, dup, extra, wrong, bad_line = 0, nil, 0, nil, nil
  local emitted = {}
  for line in io.lines(r.out) do
    local ws, dev, c = line:match("^(%-?%d+) (%S+) (%d+)$")
    ws, c = tonumber(ws), tonumber(c)
    if not ws then
      bad_line = bad_line or line
    else
      local e = emitted[ws]
      if not e then
        e = {}
        emitted[ws] = e
      end
      if e[dev] then dup = dup or format("window %d device %s emitted twice", ws, dev) end
      e[dev] = c
      got = got + 1
      local w = want[ws] and want[ws][dev]
      if ws + M.SIZE_MS > wm then extra = extra + 1 end
      if w ~= c and not wrong then
        wrong = format("window %d device %s: count %d, expected %s", ws, dev, c, tostring(w))
      end
    end
  end
  local expected_out, missing, open = 0, nil, 0
  for ws, devs in pairs(want) do
    for dev, c in pairs(devs) do
      if ws + M.SIZE_MS <= wm then
        expected_out = expected_out + 1
        if not (emitted[ws] and emitted[ws][dev]) then
          missing = missing or format("window %d device %s (count %d) not emitted", ws, dev, c)
        end
      else
        open = open + 1
      end
    end
  end
  local ok = not bad_line and not dup and not wrong and not missing and extra == 0 and got == expected_out
  add("output equals the independent count", ok,
    format("%d groups emitted, %d expected (windows ending <= the final watermark %d)%s%s%s%s%s", got, expected_out, wm,
      bad_line and "; bad line: " .. bad_line or "", dup and "; " .. dup or "", wrong and "; " .. wrong or "",
      missing and "; " .. missing or "",
      extra > 0 and format("; %d groups of windows still open emitted", extra) or ""))
  local final = s[n] and s[n].state_rows
  add("final state = open windows", final == open,
    format("%s state rows after the last batch, %d groups in windows the watermark has not passed", tostring(final),
      open))
  return res
end

return M
