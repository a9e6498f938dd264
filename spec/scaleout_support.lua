-- What the scale-out specs share (spec/scaleout_*_spec.lua): processes of
-- one application started with `tide run --application-id`, their tasks,
-- and Kafka topics written and read with kcat (a standard client) on the
-- test broker (spec/kafka_broker.lua).
local support = require "support"

local M = {}

local sh_quote, read_file, write_file = support.sh_quote, support.read_file, support.write_file

--- Produce `lines` ("key\tvalue" each) to partition p of topic with kcat.
function M.produce_lines(b, topic, p, lines)
  local f = support.tmpname()
  write_file(f, table.concat(lines, "\n") .. "\n")
  local code, _, err = support.run_cmd(string.format("kcat -P -b %s -t %s -p %d -K '\t' -l %s",
    sh_quote(b.bootstrap), sh_quote(topic), p, sh_quote(f)))
  os.remove(f)
  assert(code == 0, "kcat -P failed: " .. err)
end

--- The messages of a topic as a read_committed consumer sees them: each
-- line "key value", in no particular order.
function M.committed_lines(b, topic)
  local code, out, err = support.run_cmd(string.format(
    "kcat -b %s -C -t %s -e -q -X isolation.level=read_committed -f '%%k %%s\\n'", sh_quote(b.bootstrap),
    sh_quote(topic)))
  assert(code == 0, "kcat -C failed: " .. err)
  return support.lines_of(out)
end

--- A process `tide run --application-id app --state-dir dir script args`
-- in the background: { pid, err = its stderr file, log = its progress log }.
function M.start(dir, name, app, state_dir, script, args)
  local p = { err = dir .. "/" .. name .. ".err", log = dir .. "/" .. name .. ".progress" }
  local cmd = support.tide_command(string.format("run --application-id %s --state-dir %s --log-progress %s %s %s",
    app, sh_quote(state_dir), sh_quote(p.log), sh_quote(script), args))
  p.ph = io.popen(string.format("sh -c %s", sh_quote(cmd .. " >/dev/null 2>" .. sh_quote(p.err) ..
    " & echo $!; wait $!; echo rc=$?")))
  p.pid = tonumber(p.ph:read("l"))
  assert(p.pid, "process started")
  return p
end

--- Wait for a started process to end; its exit status.
function M.wait(p)
  local rest = p.ph:read("a")
  p.ph:close()
  return tonumber(rest:match("rc=(%d+)"))
end

--- The task ids the process's last progress report names.
function M.tasks_of(p)
  local last
  for line in (read_file(p.log) or ""):gmatch("[^\n]+") do last = line end
  if not last then return {} end
  local out = {}
  for id in (last:match('"tasks":%[(.-)%]') or ""):gmatch('"id":"([%d_]+)"') do out[#out + 1] = id end
  return out
end

--- Poll f() every 100 ms until it is true; raise naming what after secs
-- (with tell()'s text, the processes' stderr say).
function M.wait_for(what, f, secs, tell)
  for _ = 1, (secs or 60) * 10 do
    if f() then return end
    support.sleep_ms(100)
  end
  error("timed out waiting for " .. what .. (tell and ("\n" .. tell()) or ""))
end

--- A function giving the stderr of every process of ps (name -> process).
function M.errors(ps)
  return function()
    local out = {}
    for name, p in pairs(ps) do out[#out + 1] = name .. ": " .. (read_file(p.err) or "") end
    return table.concat(out, "\n")
  end
end

return M
