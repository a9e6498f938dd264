--- Planning: the passes between a frame's logical plan and its operators.
--
-- A frame (tide.frame) is a tree of logical plan nodes, built and checked
-- operator by operator and never changed afterwards. Before it runs, the
-- execution layer (tide.exec) asks this module how to run it: `optimize`
-- returns the decisions of the rewrite rules, keyed by the logical node they
-- concern, and leaves the nodes as they are (a frame may back several
-- queries, each with its own operators). The rules:
--
--  * filter fusion: a `where` (an expression) or a Lua `filter` right below
--    an aggregation runs inside the aggregation (the core's aggregation
--    takes one filter): the
--    aggregation reads the filter's input, selects the rows the filter keeps
--    and copies only the columns it reads. A `with_watermark` between the
--    two is folded in too: the aggregation then reports the event times of
--    the rows the filter kept, which is what the watermark node would have
--    seen. `explain` still shows every node, which is what the plan means.
--
-- There is no projection pushdown: the core's operators read the columns
-- they need from a batch in place, so a narrower projection below them
-- would only add a copy.
--
-- @module tide.plan

local M = {}

local ipairs = ipairs

--- The plan's nodes, each once, children before their parent (inputs in
-- order, then a join's right side).
-- @tparam table node the root (a logical plan node)
-- @tparam function visit called with each node
function M.walk(node, visit, seen)
  seen = seen or {}
  if seen[node] then return end
  seen[node] = true
  for _, c in ipairs(node.inputs or {}) do M.walk(c, visit, seen) end
  if node.input then M.walk(node.input, visit, seen) end
  if node.right then M.walk(node.right, visit, seen) end
  visit(node)
end

-- The filter fusion rule for one aggregate node: nil, or what the
-- aggregation runs instead of its input.
local function fuse_filter(node)
  if node.op ~= "aggregate" then return nil end
  local input = node.input
  local inner = input.op == "watermark" and input.input or input
  local filter
  if inner.op == "where" and inner.expr then filter = inner.expr end
  if inner.op == "filter" and inner.fn then filter = inner.fn end
  if not filter then return nil end
  return {
    feed = inner.input,                       -- the node the aggregation reads
    filter = filter,                          -- a tide.Expr (where) or a function(row) (filter)
    filter_kind = inner.op,                   -- "where" or "filter", for error messages
    mark = inner ~= input and input or nil,   -- the watermark node folded in, if any
  }
end

--- The rewrite decisions for the plan under `root`.
-- @tparam table root a logical plan node (a frame's)
-- @tparam[opt] table opts `fuse_filters` (default true): apply filter fusion
-- @treturn table `{ fused = { [aggregate node] = { feed =, filter =,
-- filter_kind =, mark = } } }`
function M.optimize(root, opts)
  local fused = {}
  if not (opts and opts.fuse_filters == false) then
    M.walk(root, function(n)
      fused[n] = fuse_filter(n)
    end)
  end
  return { fused = fused }
end

return M
