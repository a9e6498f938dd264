-- joins: join impressions with clicks (ad-tech style, as Spark's guide
-- does it). An impression of an ad and a click on that ad belong together
-- when the click comes within an hour after the impression; impressions
-- that get no click in that hour come out with NULL click columns.
--
--    bin/tide run examples/joins/pipeline.lua
--
-- Both streams carry a watermark (impressions may come 10 minutes late,
-- clicks 20). The condition's range lets the join drop state: a click can
-- only match impressions of the hour before it, so once the watermark has
-- passed an impression's time + 1 hour no click can come for it; if it had
-- none, the left outer join emits it then, with NULLs. Impressions of the
-- last hour of the data are still waiting in the join's state at the end.
local tide = require "tide"

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

local impressions = tide.read_stream("file", { path = here .. "/impressions.jsonl", format = "json",
  schema = "imp_id string, imp_ad string, imp_ts timestamp, campaign string" })
local clicks = tide.read_stream("file", { path = here .. "/clicks.jsonl", format = "json",
  schema = "click_id string, click_ad string, click_ts timestamp, user string" })

local joined = impressions:with_watermark("imp_ts", "10 minutes")
  :join(clicks:with_watermark("click_ts", "20 minutes"),
        "click_ad = imp_ad AND click_ts BETWEEN imp_ts AND imp_ts + interval 1 hour", "left")
  :select("imp_id", "imp_ad", "campaign", "imp_ts", "click_id", "click_ts", "user")

local q = joined:write_stream("memory", { name = "joined", mode = "append", trigger = "available_now" })
q:await()

-- the order of a batch's rows is not defined: sort them
tide.table("joined"):order_by("imp_id", "click_id"):show(100)

local rows = tide.table("joined"):collect()
local clicked, unclicked = 0, 0
for _, r in ipairs(rows) do
  if r.click_id then clicked = clicked + 1 else unclicked = unclicked + 1 end
end
local state = q:last_progress().state_operators[1].num_rows_total
print(string.format("%d impression-click pairs; %d impressions without a click; %d rows still in the join's state",
  clicked, unclicked, state))
