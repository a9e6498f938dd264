-- sessions: clickstream sessionization. A user's clicks belong to one
-- session while they come less than 5 minutes apart; a longer pause starts a
-- new session. For each session: its user, start and end, number of clicks,
-- and the first and last page seen.
--
--    bin/tide run examples/sessions/pipeline.lua
--
-- tide.session_window("ts", "5 minutes") opens [t, t + 5 min) at each click
-- and merges the windows of a user that overlap, so a session's end is its
-- last click + 5 minutes. Append mode outputs a session once, final, when
-- the watermark (the latest click seen - 10 minutes) passes its end: the
-- sessions still open at the end of the data are held in the query's state,
-- waiting for more clicks, and the script says how many there are.
local tide = require "tide"

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."

local clicks = tide.read_stream("file", { path = here .. "/clicks.jsonl", format = "json",
                                          schema = "user_id string, ts timestamp, page string" })

local sessions = clicks
  :with_watermark("ts", "10 minutes")
  :group_by("user_id", tide.session_window("ts", "5 minutes"))
  :agg { "count(*) AS clicks", "first(page) AS first_page", "last(page) AS last_page" }
  :select("user_id", "window_start AS session_start", "window_end AS session_end",
          "clicks", "first_page", "last_page")

local q = sessions:write_stream("memory", { name = "sessions", mode = "append", trigger = "available_now" })
q:await()

-- the memory table holds every session emitted; the order of a batch's
-- rows is not defined, so sort them
tide.table("sessions"):order_by("user_id", "session_start"):show(100)

local emitted = #tide.table("sessions"):collect()
local open = q:last_progress().state_operators[1].num_rows_total
print(string.format("%d sessions closed; %d still open", emitted, open)
  .. " (they close when later clicks move the watermark past their end)")
