-- What write_stream and `tide run` refuse under application_id (scale-out,
-- issue 15, lua/tide/scaleout.lua): each refusal names the option or the
-- operator and says why and what is allowed. Nothing here connects to a
-- broker: every check comes before the application starts.

local support = require "support"
local tide = require "tide"

local BS = "127.0.0.1:1"

local function kafka(o)
  local base = { bootstrap = BS, subscribe = "in", format = "json", schema = "ts timestamp, amount int",
    include_metadata = true }
  for k, v in pairs(o or {}) do base[k] = v end
  if o and o.assign then base.subscribe = nil end
  return tide.read_stream("kafka", base)
end

local function windowed(s, key)
  return s:with_watermark("ts", "2 seconds"):group_by(tide.window("ts", "10 seconds"), key or "kafka_key")
    :agg{ "count(*) AS n" }
end

local function refused(f, sink, opts, pattern)
  local ok, err = pcall(f.write_stream, f, sink, opts)
  assert.is_false(ok)
  assert.matches(pattern, tostring(err), 1, true)
end

describe("scale-out: options refused under application_id", function()
  local sink = { bootstrap = BS, topic = "out", application_id = "app" }
  local function with(o)
    local t = {}
    for k, v in pairs(sink) do t[k] = v end
    for k, v in pairs(o) do t[k] = v end
    return t
  end

  it("refuses a bad application id", function()
    refused(windowed(kafka()), "kafka", with { application_id = "a b" },
      "option 'application_id' must be a non-empty name of letters, digits")
    refused(windowed(kafka()), "kafka", with { application_id = "" }, "option 'application_id'")
  end)

  it("refuses sinks other than Kafka's, and the Kafka sink without exactly_once", function()
    refused(windowed(kafka()), "memory", { application_id = "app", mode = "append" },
      "application_id 'app': the sink must be \"kafka\"")
    refused(windowed(kafka()), "kafka", with { exactly_once = false }, "option 'exactly_once' must stay true")
    refused(windowed(kafka()), "kafka", with { topic = nil, topic_column = "kafka_key" },
      "option 'topic_column' is not allowed")
  end)

  it("refuses the options whose state would not follow a task", function()
    refused(windowed(kafka()), "kafka", with { checkpoint = "/tmp/x" }, "option 'checkpoint' is not allowed")
    refused(windowed(kafka()), "kafka", with { late_rows = { topic = "late" } }, "option 'late_rows' is not allowed")
    refused(windowed(kafka()), "kafka", with { trigger = "once" }, "trigger 'once' is not allowed")
    refused(windowed(kafka()), "kafka", with { nonsense = 1 }, "unknown option 'nonsense'")
  end)

  it("refuses sources that are not Kafka topics named with subscribe", function()
    refused(windowed(kafka { assign = { ["in"] = { 0 } } }), "kafka", sink,
      "application_id 'app': a Kafka source must name its topics with option 'subscribe' (not assign or " ..
      "subscribe_pattern): task p reads partition p of each")
    refused(windowed(kafka { starting_offsets = { ["in"] = { [0] = 5 } } }), "kafka", sink,
      "option 'starting_offsets' must be \"earliest\" or \"latest\"")
    refused(windowed(kafka { group_id = "g" }), "kafka", sink, "option 'group_id' is not allowed")
    refused(windowed(kafka { bootstrap = "127.0.0.1:2" }), "kafka", sink,
      "the sources and the sink must be on one Kafka cluster")
    local rate = tide.read_stream("rate", { rows_per_second = 1 })
    refused(rate, "kafka", sink, "every source must be read_stream(\"kafka\"), not ")
    refused(kafka { include_metadata = false }:union(rate:select("timestamp AS ts", "CAST(value AS int) AS amount")),
      "kafka", sink, "every source must be read_stream(\"kafka\"), not ")
  end)

  it("refuses order_by and limit on a stream, saying why", function()
    local complete = with { mode = "complete" }
    refused(windowed(kafka()):order_by("n"), "kafka", complete, "application_id 'app': order_by on a stream cannot " ..
      "run under an application_id: each task holds only the groups of its own partitions")
    refused(windowed(kafka()):limit(3), "kafka", complete, "application_id 'app': limit on a stream cannot run " ..
      "under an application_id")
  end)

  it("tide run: --state-dir needs --application-id; a bad id is a usage error", function()
    local code, _, err = support.run_cmd(support.tide_command("run --state-dir /tmp/x script.lua"))
    assert.equal(2, code)
    assert.matches("option '--state-dir' needs '--application-id'", err, 1, true)
    code, _, err = support.run_cmd(support.tide_command("run --application-id 'a b' script.lua"))
    assert.equal(2, code)
    assert.matches("option '--application-id' must be a name", err, 1, true)
  end)

  it("tide run --application-id: a query the runtime cannot run stops the script with the reason", function()
    local script = support.tmpname()
    support.write_file(script, [[
local tide = require "tide"
tide.read_stream("rate", { rows_per_second = 1 }):write_stream("console")
]])
    local code, _, err = support.run_cmd(support.tide_command("run --application-id app " .. script))
    os.remove(script)
    assert.equal(1, code)
    assert.matches("application_id 'app': the sink must be \"kafka\"", err, 1, true)
  end)

  it("tide run's status line names the application and the process's tasks with their lag", function()
    local cli = require "tide.cli"
    local line = cli.status_line("orders-app", { input_rate = 10, processed_rate = 20, batch_id = 3, now = 0,
      application = "orders-app", tasks = { { id = "0_1", lag = 0 }, { id = "1_3", lag = 120 } } })
    assert.matches("^application orders%-app, tasks 0_1 %(lag 0%) 1_3 %(lag 120%); query orders%-app: ", line)
    line = cli.status_line("orders-app", { now = 0, application = "orders-app", tasks = {} })
    assert.matches("^application orders%-app, tasks none; ", line)
  end)
end)
