--- The foreach_batch and foreach sinks: the query's output handed to Lua
-- functions (API.md section 4).
--
--    f:write_stream("foreach_batch", { fn = function(batch_id, rows) ... end })
--    f:write_stream(function(batch_id, rows) ... end)        -- the same
--    f:write_stream("foreach", { fn = function(row) ... end })
--    f:write("foreach", { fn = function(row) ... end })      -- a static frame
--
-- The rows are the callee's to keep. Exactly-once needs the function to be
-- idempotent per batch id: after a crash the last batch may be handed over
-- again with the same id. A function that raises fails the batch: nothing of
-- it is committed, and the next start runs it again.

local connector = require "tide.connector"

local M = { sources = {}, sinks = {} }

local rows_of = connector.rows_of

M.sinks.foreach_batch = {
  options = { fn = "function" },
  new = function(o)
    if not o.fn then error("the foreach_batch sink needs option 'fn' (a function(batch_id, rows))", 0) end
    local fn = o.fn
    return {
      description = "ForeachBatchSink",
      add_batch = function(_, id, batches) fn(id, rows_of(batches)) end,
    }
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
