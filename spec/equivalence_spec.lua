-- Equivalence specs for tide.frame: a generated dataset (fixed seed, with
-- NULLs and out-of-order times), a set of queries over it, each checked
-- against the same result computed here with plain Lua loops; and every
-- query run twice, over the input as one batch and as batches of 7 rows,
-- with identical results.

local tide = require "tide"

---------------------------------------------------------------------------
-- The dataset
---------------------------------------------------------------------------

local N = 5000
local SCHEMA = "ts timestamp?, device string?, signal int?, kind string, price double?"

-- A 64-bit LCG: the same sequence everywhere.
local function rng(seed)
  local state = seed
  return function(n)
    state = (state * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
    return (state >> 33) % n + 1
  end
end

local ROWS = (function()
  local rnd = rng(424242)
  local devices = { "d1", "d2", "d3", "d4", "d5", "sensor-α", "Dx" }
  local kinds = { "temp", "hum", "wind" }
  local rows = {}
  local base = 1700000000000
  for i = 1, N do
    local r = { kind = kinds[rnd(#kinds)] }
    if rnd(20) ~= 1 then
      -- mostly increasing, some late by up to 30 s
      r.ts = base + i * 97 - (rnd(10) == 1 and rnd(30000) or 0)
    end
    if rnd(12) ~= 1 then r.device = devices[rnd(#devices)] end
    if rnd(8) ~= 1 then r.signal = rnd(401) - 201 end
    if rnd(6) ~= 1 then r.price = (rnd(100000) - 1) / 128 end
    rows[i] = r
  end
  return rows
end)()

local function frame(opts) return tide.from_rows(ROWS, SCHEMA, opts) end

---------------------------------------------------------------------------
-- Comparing results
---------------------------------------------------------------------------

-- A text for ordering rows: values by key, doubles rounded so that rows
-- equal within tolerance sort together.
local function sort_key(row)
  local keys = {}
  for k in pairs(row) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for i, k in ipairs(keys) do
    local v = row[k]
    if math.type(v) == "float" then v = string.format("%.6g", v) end
    out[i] = k .. "=" .. tostring(v)
  end
  return table.concat(out, "\1")
end

local function sorted(rows)
  local copy = table.move(rows, 1, #rows, 1, {})
  table.sort(copy, function(a, b) return sort_key(a) < sort_key(b) end)
  return copy
end

local function close(a, b)
  if math.type(a) == "float" or math.type(b) == "float" then
    if type(a) ~= "number" or type(b) ~= "number" then return false end
    if a == b then return true end
    return math.abs(a - b) <= 1e-9 * math.max(math.abs(a), math.abs(b))
  end
  return a == b
end

-- Assert that rows got equal rows want, doubles within 1e-9 relative;
-- `ordered` compares in order, else as multisets.
local function same_rows(want, got, ordered)
  assert.equal(#want, #got, "row count")
  if not ordered then want, got = sorted(want), sorted(got) end
  for i = 1, #want do
    local w, g = want[i], got[i]
    for k, v in pairs(w) do
      assert(close(v, g[k]), string.format("row %d, column %s: want %s, got %s", i, k, tostring(v), tostring(g[k])))
    end
    for k, v in pairs(g) do
      assert(w[k] ~= nil, string.format("row %d, column %s: want nil, got %s", i, k, tostring(v)))
    end
  end
end

-- Group rows by key(row) (a list of values, nil allowed) in first-seen
-- order; returns the groups, each { key = {...}, rows = {...} }.
local function group(rows, key)
  local index, groups = {}, {}
  for _, r in ipairs(rows) do
    local k = key(r)
    local parts = {}
    for i = 1, k.n or #k do parts[i] = k[i] == nil and "\0nil" or (math.type(k[i]) or type(k[i])) .. tostring(k[i]) end
    local text = table.concat(parts, "\1")
    local g = index[text]
    if not g then
      g = { key = k, rows = {} }
      index[text] = g
      groups[#groups + 1] = g
    end
    g.rows[#g.rows + 1] = r
  end
  return groups
end

-- The windows of time t (Spark's formula, SEMANTICS.md s.1), as starts.
local function windows_of(t, size, slide, start)
  if t == nil then return {} end
  local last = t - (t - start) % slide -- Lua's % is floored: the same as the formula's fix-up
  local out = {}
  for i = math.ceil(size / slide) - 1, 0, -1 do
    local s = last - i * slide
    if s <= t and t < s + size then out[#out + 1] = s end
  end
  return out
end

---------------------------------------------------------------------------
-- The queries: each a frame builder and the same result in Lua
---------------------------------------------------------------------------

local KINDS = {
  { kind = "temp", unit = "C", weight = 1 }, { kind = "hum", unit = "%", weight = 2 },
  { kind = "rain", unit = "mm", weight = 3 },
}
local DEVICES = { { device = "d1", site = "north" }, { device = "d2", site = "south" }, { device = "d2",
  site = "east" },
  { device = "sensor-α", site = "lab" } }

local QUERIES = {
  {
    name = "a filter with AND and IS NOT NULL",
    run = function(f) return f:where("signal > 50 AND device IS NOT NULL") end,
    want = function()
      local out = {}
      for _, r in ipairs(ROWS) do
        if r.signal and r.signal > 50 and r.device then out[#out + 1] = r end
      end
      return out
    end,
    ordered = true,
  },
  {
    name = "a projection with arithmetic, / and % (NULLs propagate, % by the sign of the dividend)",
    run = function(f) return f:select("device", "signal * 2 + 1 AS s", "price / 2 AS half", "signal % 7 AS m",
      "signal / 0 AS z") end,
    want = function()
      local out = {}
      for i, r in ipairs(ROWS) do
        out[i] = { device = r.device, s = r.signal and r.signal * 2 + 1, half = r.price and r.price / 2,
          m = r.signal and math.fmod(r.signal, 7) }
      end
      return out
    end,
    ordered = true,
  },
  {
    name = "a group_by with several aggregates and NULL keys",
    run = function(f)
      return f:group_by("device"):agg { n = "count(*)", s = "sum(signal)", a = "avg(price)", mn = "min(signal)",
        mx = "max(price)", c = "count(signal)" }
    end,
    want = function()
      local out = {}
      for _, g in ipairs(group(ROWS, function(r) return { r.device, n = 1 } end)) do
        local o = { device = g.key[1], n = #g.rows, c = 0 }
        local psum, pn = 0, 0
        for _, r in ipairs(g.rows) do
          if r.signal then
            o.s = (o.s or 0) + r.signal
            o.mn = math.min(o.mn or r.signal, r.signal)
            o.c = o.c + 1
          end
          if r.price then
            psum, pn = psum + r.price, pn + 1
            o.mx = math.max(o.mx or r.price, r.price)
          end
        end
        if pn > 0 then o.a = psum / pn end
        out[#out + 1] = o
      end
      return out
    end,
    ordered = true, -- groups come out in first-seen order
  },
  {
    name = "a group_by on two keys with count_distinct, first and last",
    run = function(f)
      return f:group_by("device", "kind"):agg { cd = "count_distinct(signal)", f = "first(signal)", l = "last(signal)" }
    end,
    want = function()
      local out = {}
      for _, g in ipairs(group(ROWS, function(r) return { r.device, r.kind, n = 2 } end)) do
        local seen, cd = {}, 0
        for _, r in ipairs(g.rows) do
          if r.signal and not seen[r.signal] then seen[r.signal], cd = true, cd + 1 end
        end
        out[#out + 1] = { device = g.key[1], kind = g.key[2], cd = cd, f = g.rows[1].signal,
          l = g.rows[#g.rows].signal }
      end
      return out
    end,
    ordered = true,
  },
  {
    name = "a tumbling window aggregation",
    run = function(f)
      return f:group_by(tide.window("ts", "10 seconds")):agg { n = "count(*)", s = "sum(signal)", hi = "max(ts)" }
    end,
    want = function()
      local agg, order = {}, {}
      for _, r in ipairs(ROWS) do
        for _, s in ipairs(windows_of(r.ts, 10000, 10000, 0)) do
          local a = agg[s]
          if not a then
            a = { window_start = s, window_end = s + 10000, n = 0 }
            agg[s] = a
            order[#order + 1] = a
          end
          a.n = a.n + 1
          if r.signal then a.s = (a.s or 0) + r.signal end
          a.hi = math.max(a.hi or r.ts, r.ts)
        end
      end
      return order
    end,
    ordered = true,
  },
  {
    name = "a sliding window aggregation with a start offset, size not a multiple of the slide, and a key",
    run = function(f)
      return f:group_by(tide.window("ts", "10 seconds", "4 seconds", "1 second"), "kind"):agg { n = "count(*)",
        a = "avg(price)" }
    end,
    want = function()
      local agg, order = {}, {}
      for _, r in ipairs(ROWS) do
        for _, s in ipairs(windows_of(r.ts, 10000, 4000, 1000)) do
          local k = s .. "/" .. r.kind
          local a = agg[k]
          if not a then
            a = { window_start = s, window_end = s + 10000, kind = r.kind, n = 0, ps = 0, pn = 0 }
            agg[k] = a
            order[#order + 1] = a
          end
          a.n = a.n + 1
          if r.price then a.ps, a.pn = a.ps + r.price, a.pn + 1 end
        end
      end
      for _, a in ipairs(order) do
        if a.pn > 0 then a.a = a.ps / a.pn end
        a.ps, a.pn = nil, nil
      end
      return order
    end,
    ordered = true,
  },
  {
    name = "a stateless sliding window assignment in select",
    run = function(f) return f:select(tide.window("ts", "3 seconds", "1 second"), "signal") end,
    want = function()
      local out = {}
      for _, r in ipairs(ROWS) do
        for _, s in ipairs(windows_of(r.ts, 3000, 1000, 0)) do
          out[#out + 1] = { window_start = s, window_end = s + 3000, signal = r.signal }
        end
      end
      return out
    end,
    ordered = true,
  },
  {
    name = "an inner join with a static table",
    run = function(f) return f:join(tide.from_rows(KINDS, "kind string, unit string, weight int"), "kind") end,
    want = function()
      local out = {}
      for _, r in ipairs(ROWS) do
        for _, k in ipairs(KINDS) do
          if k.kind == r.kind then
            out[#out + 1] = { ts = r.ts, device = r.device, signal = r.signal, kind = r.kind, price = r.price,
              unit = k.unit, weight = k.weight }
          end
        end
      end
      return out
    end,
    ordered = true,
  },
  {
    name = "a left join on a nullable key with duplicate keys on the right",
    run = function(f) return f:select("device", "signal"):join(tide.from_rows(DEVICES, "device string, site string"),
      "device", "left") end,
    want = function()
      local out = {}
      for _, r in ipairs(ROWS) do
        local matched = false
        for _, d in ipairs(DEVICES) do
          if r.device ~= nil and d.device == r.device then
            out[#out + 1] = { device = r.device, signal = r.signal, site = d.site }
            matched = true
          end
        end
        if not matched then out[#out + 1] = { device = r.device, signal = r.signal } end
      end
      return out
    end,
    ordered = true,
  },
  {
    name = "a union of two filters",
    run = function(f) return f:where("kind = 'temp' AND price > 300"):union(f:where("signal BETWEEN -10 AND 10")) end,
    want = function()
      local out = {}
      for _, r in ipairs(ROWS) do
        if r.kind == "temp" and r.price and r.price > 300 then out[#out + 1] = r end
      end
      for _, r in ipairs(ROWS) do
        if r.signal and r.signal >= -10 and r.signal <= 10 then out[#out + 1] = r end
      end
      return out
    end,
    ordered = true,
  },
  {
    name = "order_by on two keys with DESC NULLS LAST, then limit",
    run = function(f) return f:order_by("price DESC NULLS LAST", "ts"):limit(40) end,
    want = function()
      local idx = {}
      for i = 1, #ROWS do idx[i] = i end
      table.sort(idx, function(a, b)
        local x, y = ROWS[a], ROWS[b]
        if x.price ~= y.price then
          if x.price == nil then return false end
          if y.price == nil then return true end
          return x.price > y.price
        end
        if x.ts ~= y.ts then
          if x.ts == nil then return true end -- ascending: NULLs first
          if y.ts == nil then return false end
          return x.ts < y.ts
        end
        return a < b -- stable
      end)
      local out = {}
      for i = 1, 40 do out[i] = ROWS[idx[i]] end
      return out
    end,
    ordered = true,
  },
  {
    name = "count_distinct per kind, of strings with NULLs",
    run = function(f) return f:group_by("kind"):agg { cd = "count_distinct(device)", n = "count(device)" } end,
    want = function()
      local out = {}
      for _, g in ipairs(group(ROWS, function(r) return { r.kind, n = 1 } end)) do
        local seen, cd, n = {}, 0, 0
        for _, r in ipairs(g.rows) do
          if r.device then
            n = n + 1
            if not seen[r.device] then seen[r.device], cd = true, cd + 1 end
          end
        end
        out[#out + 1] = { kind = g.key[1], cd = cd, n = n }
      end
      return out
    end,
  },
  {
    name = "with_column with CASE, then a filter with IN and LIKE",
    run = function(f)
      return f:with_column("bucket", "CASE WHEN signal IS NULL THEN 'none' WHEN signal < 0 THEN 'neg' ELSE 'pos' END")
        :where("device IN ('d1', 'd3', 'sensor-α') OR device LIKE 'D_'")
    end,
    want = function()
      local out = {}
      for _, r in ipairs(ROWS) do
        local d = r.device
        if d == "d1" or d == "d3" or d == "sensor-α" or (d and #d == 2 and d:sub(1, 1) == "D") then
          local o = {}
          for k, v in pairs(r) do o[k] = v end
          o.bucket = r.signal == nil and "none" or r.signal < 0 and "neg" or "pos"
          out[#out + 1] = o
        end
      end
      return out
    end,
    ordered = true,
  },
  {
    name = "a Lua filter",
    run = function(f) return f:filter(function(r) return r.ts ~= nil and r.ts % 3 == 0 and r.kind ~= "hum" end) end,
    want = function()
      local out = {}
      for _, r in ipairs(ROWS) do
        if r.ts ~= nil and r.ts % 3 == 0 and r.kind ~= "hum" then out[#out + 1] = r end
      end
      return out
    end,
    ordered = true,
  },
  {
    name = "a Lua map that drops rows, then a group_by",
    run = function(f)
      return f:map(function(r)
        if r.price == nil then return nil end
        return { kind = r.kind, cents = math.floor(r.price * 100 + 0.5) }
      end, "kind string, cents int"):group_by("kind"):agg { total = "sum(cents)", n = "count(*)" }
    end,
    want = function()
      local out = {}
      local kept = {}
      for _, r in ipairs(ROWS) do
        if r.price ~= nil then kept[#kept + 1] = { kind = r.kind, cents = math.floor(r.price * 100 + 0.5) } end
      end
      for _, g in ipairs(group(kept, function(r) return { r.kind, n = 1 } end)) do
        local total = 0
        for _, r in ipairs(g.rows) do total = total + r.cents end
        out[#out + 1] = { kind = g.key[1], total = total, n = #g.rows }
      end
      return out
    end,
  },
  {
    name = "a timestamp filter against ISO-8601 strings, then a projection of functions",
    run = function(f)
      return f:where("ts >= '2023-11-14T22:13:40Z' AND ts < '2023-11-14T22:15:00Z'")
        :select("upper(coalesce(device, 'none')) AS dev", "abs(signal) AS a", "round(price, 1) AS r",
          "length(kind) AS l")
    end,
    want = function()
      local lo, hi = tide.parse_time("2023-11-14T22:13:40Z"), tide.parse_time("2023-11-14T22:15:00Z")
      local out = {}
      for _, r in ipairs(ROWS) do
        if r.ts and r.ts >= lo and r.ts < hi then
          local rounded
          if r.price then
            local x = r.price * 10
            rounded = (x >= 0 and math.floor(x + 0.5) or -math.floor(-x + 0.5)) / 10
          end
          out[#out + 1] = { dev = (r.device or "none"):upper(), a = r.signal and math.abs(r.signal), r = rounded,
            l = #r.kind }
        end
      end
      return out
    end,
    ordered = true,
  },
}

describe("frames over a generated dataset", function()
  it("has a dataset with NULLs in every nullable column and times out of order", function()
    local nulls, late = { ts = 0, device = 0, signal = 0, price = 0 }, 0
    local last
    for _, r in ipairs(ROWS) do
      for k in pairs(nulls) do if r[k] == nil then nulls[k] = nulls[k] + 1 end end
      if r.ts then
        if last and r.ts < last then late = late + 1 end
        last = r.ts
      end
    end
    for k, n in pairs(nulls) do assert.is_true(n > 50, k) end
    assert.is_true(late > 50)
  end)

  for _, q in ipairs(QUERIES) do
    it("computes " .. q.name .. " as plain Lua does", function()
      local got = q.run(frame()):collect()
      assert.is_true(#got > 0)
      same_rows(q.want(), got, q.ordered)
    end)

    it("computes " .. q.name .. " identically over one batch and batches of 7 rows", function()
      local one = q.run(frame()):collect()
      local many = q.run(frame { batch_rows = 7 }):collect()
      assert.same(one, many)
    end)
  end

  it("runs at least a dozen queries", function()
    assert.is_true(#QUERIES >= 12)
  end)
end)
