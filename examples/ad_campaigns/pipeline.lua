-- ad_campaigns: the pipeline of the Yahoo Streaming Benchmark. Ad events
-- (JSON) -> keep the views -> join each with its campaign (a static table:
-- ad_id -> campaign_id) -> count the views per campaign in 10-second windows
-- -> a topic. Then the topic is read back and the counts printed.
--
--    bin/tide run examples/ad_campaigns/pipeline.lua [DIR]
--
-- DIR (a temporary directory unless given) holds the store (DIR/store) and
-- the query's checkpoint (DIR/checkpoint). Run it twice on the same DIR: the
-- second run resumes from the checkpoint, finds no new events and appends
-- nothing, as the topic sink is exactly-once.
--
-- As in the benchmark, the query runs in update mode: each batch appends to
-- the topic the windows it changed, with their new counts, so the topic is a
-- changelog and the last record of a (campaign, window) holds its count.
-- The two files of events/ arrive one per batch.
local tide = require "tide"

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

local dir = arg and arg[1]
local temp = not dir
if temp then
  dir = os.tmpname()
  os.remove(dir)
end
assert(os.execute("mkdir -p '" .. dir .. "'"))

-- the campaign table: a static frame, read once
local campaigns = tide.read("file", { path = here .. "/campaigns.csv", format = "csv", header = true,
                                      schema = "ad_id string, campaign_id string" })

local events = tide.read_stream("file", {
  path = here .. "/events/*.jsonl", format = "json", max_files_per_trigger = 1,
  schema = "user_id string, page_id string, ad_id string, ad_type string, event_type string, "
        .. "event_time timestamp, ip_address string",
})

local views_per_campaign = events
  :where("event_type = 'view'")
  :select("ad_id", "event_time")
  :join(campaigns, "ad_id")                        -- stream-static join, per batch
  -- bounds the state: a window is dropped once the latest event is a
  -- minute past its end (the bundled events span 40 seconds: none is late)
  :with_watermark("event_time", "1 minute")
  :group_by(tide.window("event_time", "10 seconds"), "campaign_id")
  :agg { "count(*) AS views" }

local db = tide.open(dir .. "/store")
if not db:has_topic("campaign_counts") then
  db:create_topic("campaign_counts", { schema = views_per_campaign:schema() })
end

local q = views_per_campaign:write_stream("topic", {
  store = db, topic = "campaign_counts", mode = "update",
  checkpoint = dir .. "/checkpoint", trigger = "available_now",
})
q:await()

local rows = 0
for _, p in ipairs(q:recent_progress()) do rows = rows + p.num_input_rows end
print(string.format("this run read %d events; the topic holds %d records", rows,
  db:topic("campaign_counts"):stats().records))

-- read the topic back: the last record of each (campaign, window) wins
db:read("campaign_counts")
  :group_by("campaign_id", "window_start", "window_end")
  :agg { "last(views) AS views" }
  :order_by("campaign_id", "window_start")
  :show(100)

db:close()
if temp then os.execute("rm -rf '" .. dir .. "'") end
