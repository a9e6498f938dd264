-- bench/common.lua: what bench/run.lua and bench/stream.lua share: their
-- argument parsing, shell helpers, the shared tools of ../shared/bench
-- (built into build/bench-tools), the generated events file, the
-- baseline's run, medians and verdicts.
--
--    local B = require("bench.common").new("bench-stream")  -- the prefix of its errors
--    local opts = B.args({ ... }, { events = 5000000, rounds = 5 }, usage)
--    local events, bytes = B.events(opts.events)
--    local base = B.baseline(events, opts.events, true)   -- { eps, secs, bps, out }

local M = {}

local format = string.format

function M.new(prefix)
  local B = {}

  function B.die(msg)
    io.stderr:write(prefix, ": ", msg, "\n")
    os.exit(2)
  end
  local die = B.die

  function B.exists(path)
    local f = io.open(path, "rb")
    if f then f:close() return true end
    return false
  end

  function B.quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

  function B.sh(cmd)
    local ok, how, code = os.execute(cmd)
    if not ok then die(format("command failed (%s %s): %s", how, tostring(code), cmd)) end
  end

  function B.capture(cmd)
    local p = assert(io.popen(cmd, "r"))
    local out = p:read("a")
    local ok, how, code = p:close()
    if not ok then die(format("command failed (%s %s): %s", how, tostring(code), cmd)) end
    return out
  end

  function B.read_file(path)
    local f = io.open(path, "rb")
    if not f then return nil end
    local s = f:read("a")
    f:close()
    return s
  end

  -- --name N / --name=N for every key of defaults (positive integers),
  -- plus the string options of `choices` ({ name = { allowed = true } }).
  function B.args(argv, defaults, usage, choices)
    choices = choices or {}
    local opts = {}
    for k, v in pairs(defaults) do opts[k] = v end
    local i = 1
    while i <= #argv do
      local a = argv[i]
      if a == "--help" or a == "-h" then
        print(usage)
        os.exit(0)
      end
      local name, val = a:match("^%-%-(%w+)=(.*)$")
      if not name then
        name = a:match("^%-%-(%w+)$")
        i = i + 1
        val = argv[i]
      end
      if not name or opts[name] == nil then die("unknown argument '" .. a .. "' (try --help)") end
      if choices[name] then
        if not choices[name][val] then
          local names = {}
          for c in pairs(choices[name]) do names[#names + 1] = c end
          table.sort(names)
          die(format("--%s takes %s, got %s", name, table.concat(names, ", "), tostring(val)))
        end
        opts[name] = val
      else
        local n = math.tointeger(tonumber(val))
        if not n or n < 1 then die(format("--%s needs a positive integer, got %s", name, tostring(val))) end
        opts[name] = n
      end
      i = i + 1
    end
    return opts
  end

  B.TOOLS, B.DATA = "build/bench-tools", "build/bench-data"

  -- Refuse to run outside the repository's root (`make` targets run there).
  function B.check_root(target)
    if not B.exists("lua/tide/query.lua") or not B.exists("Makefile") then
      die("run me from the repository's root (make " .. target .. ")")
    end
  end

  -- Build the shared tools (baseline, gen_events) and generate the n-event
  -- file when missing; return its path and size in bytes.
  function B.events(n)
    local root = B.capture("pwd"):gsub("%s+$", "")
    local shared = root:gsub("/[^/]*$", "") .. "/shared/bench"
    if not B.exists(shared .. "/Makefile") then
      die("the shared benchmark tools are missing: no " .. shared .. "/Makefile (expected ../shared/bench "
        .. "next to the checkout, with gen_events.c and baseline.c)")
    end
    -- the outer make's flags (jobserver, command-line variables) stay out of the tools' build
    B.sh(format("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -f %s OUT=%s", B.quote(shared .. "/Makefile"),
      B.TOOLS))
    for _, t in ipairs { "gen_events", "baseline" } do
      if not B.exists(B.TOOLS .. "/" .. t) then
        die("building the shared tools did not produce " .. B.TOOLS .. "/" .. t)
      end
    end
    local events = format("%s/events-%d.jsonl", B.DATA, n)
    if not B.exists(events) then
      io.write(format("generating %d events into %s ...\n", n, events))
      io.flush()
      B.sh("mkdir -p " .. B.DATA)
      local tmp = events .. ".tmp"
      B.sh(format("%s/gen_events %d > %s && mv %s %s", B.TOOLS, n, tmp, tmp, events))
    end
    local f = assert(io.open(events, "rb"))
    local bytes = f:seek("end")
    f:close()
    return events, bytes
  end

  -- One run of the baseline over the n-event file (parse_only: its
  -- --parse-only mode): { eps, secs, bps, out }, and without parse_only
  -- the workload's groups, count_total and signal_sum.
  function B.baseline(events, n, parse_only, bytes)
    local out = B.capture(format("%s/baseline %s%s", B.TOOLS, events, parse_only and " --parse-only" or ""))
    local eps = tonumber(out:match("events_per_s=([%d.]+)"))
    local secs = tonumber(out:match("seconds=([%d.]+)"))
    local lines = tonumber(out:match("lines=(%d+)"))
    if not eps or not secs then die("cannot parse the baseline's output: " .. out) end
    if lines ~= n then die(format("the baseline read %s lines, expected %d: %s", tostring(lines), n, out)) end
    local r = { eps = eps, secs = secs, bps = bytes and bytes / secs, out = out:gsub("%s+$", "") }
    if not parse_only then
      -- the workload's result, which a tide query of it must reproduce
      r.groups = tonumber(out:match("groups=(%d+)"))
      r.count_total = tonumber(out:match("count_total=(%d+)"))
      r.signal_sum = tonumber(out:match("signal_sum=(%d+)"))
      if not (r.groups and r.count_total and r.signal_sum) then die("cannot parse the baseline's output: " .. out) end
    end
    return r
  end

  -- CPU seconds process `pid` has used so far (user + system); 0 once it
  -- is gone.
  local ticks
  function B.cpu_seconds(pid)
    ticks = ticks or tonumber(B.capture("getconf CLK_TCK")) or 100
    local stat = B.read_file("/proc/" .. pid .. "/stat") or ""
    local fields = {}
    for f in (stat:match("%) (.*)$") or ""):gmatch("%S+") do fields[#fields + 1] = f end
    return ((tonumber(fields[12]) or 0) + (tonumber(fields[13]) or 0)) / ticks
  end

  -- The lines of `file` into a Kafka topic of `parts` partitions with kcat,
  -- round robin (line i into partition i mod parts, so that every partition
  -- holds the same span of event time).
  function B.kcat_round_robin(bootstrap, topic, file, parts)
    for p = 0, parts - 1 do
      B.sh(format("awk 'NR %% %d == %d' %s | env -u LD_PRELOAD kcat -P -b %s -t %s -p %d -X linger.ms=20 " ..
        "-X batch.num.messages=10000 -X queue.buffering.max.messages=1000000 -X log_level=3", parts,
        (p + 1) % parts, B.quote(file), B.quote(bootstrap), B.quote(topic), p))
    end
  end

  return B
end

-- The median of list[i][field], and the min and max.
function M.median(list, field)
  local v = {}
  for i, x in ipairs(list) do v[i] = x[field] end
  table.sort(v)
  local m = #v
  if m % 2 == 1 then return v[(m + 1) // 2], v[1], v[m] end
  return (v[m // 2] + v[m // 2 + 1]) / 2, v[1], v[m]
end

-- The output check of the standard workload's windowed aggregation in
-- update mode (bench/event_time.lua, bench/kafka.lua): it emits, per batch, the groups the batch
-- changed with their values so far; keep the last (count, sum) per
-- (device, window_start) and the totals by deltas (two integers per
-- group, not the rows). add(row) per output row, in output order.
function M.update_checker()
  local cnt, sum = {}, {}
  local groups, count_total, signal_sum, bad_avg = 0, 0, 0, nil
  local abs = math.abs
  local c = {}
  function c.add(r)
    local dev, ws, n, s = r.device, r.window_start, r.n, r.s
    local cd, sd = cnt[dev], sum[dev]
    if not cd then
      cd, sd = {}, {}
      cnt[dev], sum[dev] = cd, sd
    end
    local old = cd[ws]
    if old then
      count_total, signal_sum = count_total - old + n, signal_sum - sd[ws] + s
    else
      groups, count_total, signal_sum = groups + 1, count_total + n, signal_sum + s
    end
    cd[ws], sd[ws] = n, s
    local a = r.a
    if abs(a - s / n) > 1e-9 * abs(a) and not bad_avg then
      bad_avg = format("device %s window %d: avg %s, sum/count %s", dev, ws, a, s / n)
    end
  end
  function c.result() return groups, count_total, signal_sum, bad_avg end
  return c
end

function M.verdict(ok) return ok and "met" or "MISSED" end

return M
