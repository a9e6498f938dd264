-- click_sessions: sessionise clicks with a Lua state machine. The same
-- clicks as examples/sessions, but the sessions are made by a function of
-- each user's clicks and state (f:group_by("user_id"):process(fn, opts)),
-- as one writes them with Spark's flatMapGroupsWithState or Flink's
-- KeyedProcessFunction, instead of tide.session_window:
--
--    bin/tide run examples/click_sessions/pipeline.lua
--
-- Per user the state is the open session (start, last click, clicks, first
-- and last page). A click more than 5 minutes after the last one closes the
-- session and opens a new one; an event-time timer at the last click + 5
-- minutes closes it when the watermark (the latest click seen - 10 minutes)
-- passes that time and no click can join it any more. Each session is
-- output once, when it closes (append mode); the sessions still open when
-- the data ends stay in the query's state, and the script says how many.
local tide = require "tide"

local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local GAP = 5 * 60 * 1000

local clicks = tide.read_stream("file", { path = here .. "/clicks.jsonl", format = "json",
                                          schema = "user_id string, ts timestamp, page string" })

-- One call per user with new clicks, or whose timer fired (no clicks then).
local function sessionise(user, rows, state)
  local out, s = {}, state:get()
  local function close()
    out[#out + 1] = { user_id = user, session_start = s.start, session_end = s.last + GAP, clicks = s.n,
                      first_page = s.first_page, last_page = s.last_page }
    s = nil
  end
  if state:has_timed_out() then -- the watermark passed the session's end
    close()
    state:remove()
    return out
  end
  table.sort(rows, function(a, b) return a.ts < b.ts end)
  for _, c in ipairs(rows) do
    if s and c.ts > s.last + GAP then close() end -- a pause longer than the gap
    if not s then s = { start = c.ts, n = 0, first_page = c.page } end
    s.n, s.last, s.last_page = s.n + 1, math.max(s.last or c.ts, c.ts), c.page
  end
  if s.last + GAP < (state:watermark() or 0) then -- already over: no timer can be set in the past
    close()
    state:remove()
  else
    state:set(s)
    state:set_timer(s.last + GAP)
  end
  return out
end

local sessions = clicks
  :with_watermark("ts", "10 minutes")
  :group_by("user_id")
  :process(sessionise, { timeout = "event_time",
    schema = "user_id string, session_start timestamp, session_end timestamp, clicks int, " ..
             "first_page string, last_page string" })

local q = sessions:write_stream("memory", { name = "click_sessions", mode = "append", trigger = "available_now" })
q:await()

tide.table("click_sessions"):order_by("user_id", "session_start"):show(100)

local emitted = tide.table("click_sessions"):count()
local open = q:last_progress().state_operators[1].num_rows_total
print(string.format("%d sessions closed; %d still open", emitted, open)
  .. " (their timers fire when later clicks move the watermark past their end)")
