--- The console sink: each batch printed as an aligned table under its batch
-- id, as Spark's console sink (API.md section 4).
--
--    q = f:write_stream("console", { num_rows = 20, truncate = true })
--
-- prints, per batch:
--
--    -------------------------------------------
--    Batch: 3
--    -------------------------------------------
--    +-----+---+
--    | word|  n|
--    +-----+---+
--    |    a|  2|
--    +-----+---+
--    (an empty line)
--
-- The table is tide.connector.format_table's, the one `show` prints: the first
-- `num_rows` rows of the batch, with "only showing top N rows" when there
-- were more; `truncate` cuts cells longer than 20 characters. The text goes
-- to io.stdout, or to `out`: a function(text) or anything with a
-- write(self, text) method (an open file). A re-run batch is printed again:
-- a console needs no exactly-once, so no checkpoint either.

local core = require "tide.core"
local connector = require "tide.connector"

local M = { sinks = {} }

local format = string.format

local RULE = string.rep("-", 43)

-- The array form of a schema given as a tide.Schema, a DDL or an array.
local function fields_of(schema, batches)
  if type(schema) == "userdata" and schema.fields then return schema:fields() end
  if schema ~= nil then
    local s, msg = core.schema(schema)
    if not s then error("console sink: bad schema: " .. tostring(msg), 0) end
    return s:fields()
  end
  if batches[1] then return batches[1]:schema() end
  return {}
end

-- The function that prints for option `out`: stdout (around `tide run`'s
-- status lines and the REPL's input line), a function(text), or a file.
local function writer(out)
  if out == nil then
    return connector.write
  elseif type(out) == "function" then
    return out
  elseif (type(out) == "userdata" or type(out) == "table") and out.write then
    return function(text) out:write(text) end
  end
  error(format("option 'out' must be a function(text) or a file, got %s", type(out)), 0)
end

-- The first n rows of batches as the table show() prints.
local function table_text(fields, batches, n, truncate)
  local rows, total = {}, 0
  for _, b in ipairs(batches) do
    local m = b:nrows()
    for i = 1, math.min(m, n - #rows) do rows[#rows + 1] = b:row(i) end
    total = total + m
  end
  return connector.format_table(fields, rows, total, truncate), total
end

M.sinks.console = {
  options = {
    num_rows = { type = "integer", min = 0, default = 20 },
    truncate = { type = "boolean", default = true },
    out = "any",
  },

  new = function(o)
    local write = writer(o.out)
    local n, truncate = o.num_rows, o.truncate

    return {
      description = "ConsoleSink",
      needs_checkpoint = false,

      add_batch = function(_, batch_id, batches, _, schema)
        local text = table_text(fields_of(schema, batches), batches, n, truncate)
        write(format("%s\nBatch: %d\n%s\n%s\n", RULE, batch_id, RULE, text))
      end,
    }
  end,
}

--- f:write("console", opts): print a static frame as show() does (Spark's
-- df.write.format("console")): its first `num_rows` rows, to `out`.
-- @return the number of rows the frame has
function M.sinks.console.write(f, opts, level)
  level = (level or 1) + 1
  local o = connector.write_options("console", opts, M.sinks.console.options, level)
  local ok, write = pcall(writer, o.out)
  if not ok then error("write(console): " .. write, level) end
  local text, total = table_text(f:schema(), (connector.frame_batches(f)), o.num_rows, o.truncate)
  write(text)
  return total
end

return M
