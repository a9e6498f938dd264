--- The foreach_batch and foreach sinks: the query's output handed to Lua
-- functions (API.md section 4).
--
--    f:write_stream("foreach_batch", { fn = function(batch_id, rows) ... end })
--    f:write_stream(function(batch_id, rows) ... end)        -- the same
--    f:write_stream("foreach", { fn = function(row) ... end })
--    f:write("foreach", { fn = function(row) ... end })      -- a static frame
--    f:write_stream("foreach_batch", { as = "frame", fn = function(batch_id, frame) ... end })
--
-- With `as = "frame"` the batch is handed over as a static frame over its
-- columnar batches, as Spark's foreachBatch hands a DataFrame: no Lua table
-- is made per row unless the function asks for rows (frame:collect(),
-- frame:batches(), or any operator on the frame first). The frame is valid
-- during the call only: its batches are closed when the batch commits, and
-- a frame kept and run later raises "attempt to use a closed tide.Batch".
--
-- The rows are the callee's to keep. Exactly-once needs the function to be
-- idempotent per batch id: after a crash the last batch may be handed over
-- again with the same id. A function that raises fails the batch: nothing of
-- it is committed, and the next start runs it again.

local connector = require "tide.connector"

local M = { sources = {}, sinks = {} }

local rows_of = connector.rows_of

local batch_frame = connector.batch_frame

M.sinks.foreach_batch = {
  options = { fn = "function", as = { type = "string", values = { "rows", "frame" }, default = "rows" } },
  new = function(o)
    if not o.fn then error("the foreach_batch sink needs option 'fn' (a function(batch_id, rows))", 0) end
    local fn = o.fn
    local add_batch = function(_, id, batches) fn(id, rows_of(batches)) end
    if o.as == "frame" then add_batch = function(_, id, batches, _, schema) fn(id, batch_frame(batches, schema)) end end
    return { description = "ForeachBatchSink", add_batch = add_batch }
  end,
}

M.sinks.foreach = {
  options = { fn = "function" },
  new = function(o)
    if not o.fn then error("the foreach sink needs option 'fn' (a function(row))", 0) end
    local fn = o.fn
    return {
      description = "ForeachSink",
      add_batch = function(_, _, batches)
        for _, b in ipairs(batches) do
          for _, r in ipairs(b:rows()) do fn(r) end
        end
      end,
    }
  end,
}

--- f:write("foreach", { fn = function(row) end }): fn on every row of a
-- static frame, in order. An error of fn stops the write and is raised.
-- @return the number of rows
function M.sinks.foreach.write(f, opts, level)
  level = (level or 1) + 1
  local o = connector.write_options("foreach", opts, M.sinks.foreach.options, level)
  if not o.fn then error("write(foreach): option 'fn' is required (a function(row))", level) end
  local n = 0
  for _, b in ipairs((connector.frame_batches(f))) do
    for _, r in ipairs(b:rows()) do
      o.fn(r)
      n = n + 1
    end
  end
  return n
end

return M
