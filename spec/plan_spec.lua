-- The planning pass (lua/tide/plan.lua): filter fusion decided apart from
-- the frame's nodes and from the operators, and the same rows with and
-- without it.

local tide = require "tide"
local plan = require "tide.plan"
local exec = require "tide.exec"
local util = require "tide.util"

local SCHEMA = "ts timestamp, k string, v int"
local ROWS = {}
for i = 1, 200 do ROWS[i] = { ts = i * 350, k = "k" .. (i % 7), v = i % 13 } end

local function rows(p)
  local out = {}
  for b in p:open() do
    for _, r in ipairs(b:rows()) do out[#out + 1] = r end
  end
  table.sort(out, function(a, b) return util.json_encode(a) < util.json_encode(b) end)
  return out
end

describe("tide.plan", function()
  local base
  before_each(function() base = tide.from_rows(ROWS, SCHEMA, { batch_rows = 17 }) end)

  describe("filter fusion", function()
    it("runs a where right below an aggregation inside it, reading the where's input", function()
      local w = base:where("v > 3")
      local f = w:group_by("k"):count()
      local d = plan.optimize(f._node).fused[f._node]
      assert.equal(base._node, d.feed)
      assert.equal(w._node.expr, d.filter)
      assert.equal("where", d.filter_kind)
      assert.is_nil(d.mark)
      local p = exec.compile(f)
      assert.equal(base._node, p.root.children[1].node)
    end)

    it("fuses a Lua filter, and a where with a watermark between it and the aggregation", function()
      local fn = function(r) return r.v > 3 end
      local fl = base:filter(fn)
      local f = fl:group_by("k"):count()
      local d = plan.optimize(f._node).fused[f._node]
      assert.equal(fn, d.filter)
      assert.equal("filter", d.filter_kind)
      local wm = base:where("v > 3"):with_watermark("ts", "1 second")
      local g = wm:group_by(tide.window("ts", "10 seconds")):count()
      d = plan.optimize(g._node).fused[g._node]
      assert.equal(base._node, d.feed)
      assert.equal(wm._node, d.mark)
    end)

    it("leaves an aggregation alone when anything else is between it and the filter", function()
      local f = base:where("v > 3"):select("k", "v"):group_by("k"):count()
      assert.is_nil(plan.optimize(f._node).fused[f._node])
      local g = base:group_by("k"):count()
      assert.is_nil(plan.optimize(g._node).fused[g._node])
      assert.is_nil(plan.optimize(f._node, { fuse_filters = false }).fused[f._node])
    end)

    it("gives the same rows as running every node as itself", function()
      local frames = {
        base:where("v > 3"):group_by("k"):agg { "count(*) AS n", "sum(v) AS s" },
        base:filter(function(r) return r.v % 2 == 0 end):group_by(tide.window("ts", "5 seconds"), "k"):count(),
        base:where("v > 3"):with_watermark("ts", "1 second"):group_by(tide.window("ts", "5 seconds")):count(),
      }
      for _, f in ipairs(frames) do
        local fused, plain = rows(exec.compile(f)), rows(exec.compile(f, { fuse_filters = false }))
        assert.is_true(#fused > 0)
        assert.same(plain, fused)
      end
    end)

    it("changes no node of the frame and keeps explain as it was", function()
      local f = base:where("v > 3"):group_by("k"):count()
      local text = f:explain()
      local copy = {}
      for k, v in pairs(f._node) do copy[k] = v end
      plan.optimize(f._node)
      exec.compile(f)
      assert.same(copy, (function() local c = {} for k, v in pairs(f._node) do c[k] = v end return c end)())
      assert.equal(text, f:explain())
      assert.truthy(text:find("Filter (v > 3)", 1, true))
    end)
  end)

  describe("walk", function()
    it("visits each node once, inputs before the node", function()
      local f = base:union(base):select("k")
      local seen = {}
      plan.walk(f._node, function(n) seen[#seen + 1] = n.op end)
      assert.same({ "source", "union", "project" }, seen)
    end)
  end)
end)
