-- Specs for the expression language (core/expr.c, through tide.frame):
-- every form of core/expr.h evaluated with `tide.from_rows(...):select(...)`
-- and `where`: literals, arithmetic and its Spark non-ANSI typing, the
-- comparisons each type pair allows or refuses, three-valued logic, IS
-- NULL, IN, BETWEEN, LIKE, CASE, CAST, the functions, output names, and the
-- errors (syntax with positions, unknown columns and functions); then a
-- seeded fuzz test: random expression text either compiles and evaluates,
-- or raises a clean "select: " error.

local tide = require "tide"

---------------------------------------------------------------------------
-- Helpers
---------------------------------------------------------------------------

local SCHEMA = "i int, j int, d double, s string, b bool, t timestamp, " ..
  "big int, small int, ni int?, nd double?, ns string?, nb bool?, nt timestamp?, js json"
local ROW = {
  i = 7, j = -3, d = 2.5, s = "héllo", b = true, t = 1500,
  big = math.maxinteger, small = math.mininteger, js = { a = 1 },
}
local F = tide.from_rows({ ROW }, SCHEMA)

-- The value of one expression over ROW (nil for NULL).
local function v(text)
  local out = F:select(text)
  local name = out:schema()[1][1]
  return out:collect()[1][name]
end

-- The values of several expressions over ROW, in order.
local function vs(...)
  local out = F:select(...)
  local row = out:collect()[1]
  local res = {}
  for k, f in ipairs(out:schema()) do res[k] = row[f[1]] end
  return res
end

-- The type (with "?" when nullable) of an expression.
local function ty(text)
  return F:select(text):schema()[1][2]
end

-- The error message of F:select(text), without position prefix (select is
-- called from pcall, a C function, so the message has none).
local function select_error(text, frame)
  frame = frame or F
  local ok, err = pcall(frame.select, frame, text)
  assert(not ok, "expected an error for: " .. tostring(text))
  return err
end

-- The value of an expression over each row of a bool table frame.
local function bool_frame()
  local rows = {}
  local vals = { true, false, "null" }
  for _, a in ipairs(vals) do
    for _, c in ipairs(vals) do
      local r = {}
      if a ~= "null" then r.a = a end
      if c ~= "null" then r.c = c end
      rows[#rows + 1] = r
    end
  end
  return tide.from_rows(rows, "a bool?, c bool?"), rows
end

local function is_nan(x) return x ~= x end

describe("expressions", function()

  describe("literals", function()
    it("reads integers, decimals, exponents, strings, booleans and NULL", function()
      assert.same({ 42, 2.5, 1000.0, "it's", true, false }, vs("42", "2.5", "1e3", "'it''s'", "TRUE", "false"))
      assert.is_nil(v("null"))
      assert.equal("integer", math.type(v("42")))
      assert.equal("float", math.type(v("1e3")))
      assert.equal(0.0015, v("1.5e-3"))
      assert.equal(math.maxinteger, v("9223372036854775807"))
    end)

    it("types literals as Spark does: integers int, decimals and exponents double", function()
      assert.equal("int", ty("42"))
      assert.equal("double", ty("2.5"))
      assert.equal("double", ty("1e3"))
      assert.equal("string", ty("'x'"))
      assert.equal("bool", ty("true"))
    end)

    it("makes an integer literal too large for int64 a double", function()
      assert.equal("double", ty("9223372036854775808"))
      assert.equal(9223372036854775808.0, v("9223372036854775808"))
    end)

    it("keeps UTF-8 text in string literals", function()
      assert.equal("日本語 ✓", v("'日本語 ✓'"))
    end)
  end)

  describe("arithmetic", function()
    it("computes + - * on ints as ints", function()
      assert.same({ 4, 10, -21, -7 }, vs("i + j", "i - j", "i * j", "-i"))
      assert.equal("int", ty("i * j"))
    end)

    it("wraps 64-bit integer overflow (non-ANSI Spark)", function()
      assert.equal(math.mininteger, v("big + 1"))
      assert.equal(math.maxinteger, v("small - 1"))
      assert.equal(-2, v("big * 2"))
      assert.equal(math.mininteger, v("-small"))
      assert.equal(math.mininteger, v("9223372036854775807 + 1"))
    end)

    it("promotes to double when one side is a double", function()
      assert.same({ 9.5, 4.5, 17.5 }, vs("i + d", "i - d", "i * d"))
      assert.equal("double", ty("i + d"))
    end)

    it("gives a double for / even on ints", function()
      assert.equal(3.5, v("i / 2"))
      assert.equal("double", ty("i / 2"))
      assert.equal(2.0, v("4 / 2"))
      assert.equal("float", math.type(v("4 / 2")))
    end)

    it("gives an int for % of ints, with the sign of the dividend (Java)", function()
      assert.same({ 1, -1, 1 }, vs("i % 3", "-7 % 3", "7 % -3"))
      assert.equal("int", ty("i % 3"))
      assert.equal(0.5, v("d % 1"))
    end)

    it("gives NULL for division or modulo by zero, ints and doubles alike", function()
      assert.same({}, vs("i / 0", "i % 0", "d / 0", "d % 0", "1.0 / 0.0", "i / (j + 3)"))
      assert.equal("double?", ty("i / 0"))
      assert.equal("int?", ty("i % 0"))
    end)

    it("makes / and % nullable even when both sides are not", function()
      assert.equal("double?", ty("i / j"))
      assert.equal("int?", ty("i % j"))
      assert.equal("int", ty("i + j"))
    end)

    it("gives NULL when an operand is NULL", function()
      assert.same({}, vs("ni + 1", "ni - i", "ni * 2", "ni / 2", "ni % 2", "-ni", "nd + d", "null + 1"))
      assert.equal("int?", ty("ni + 1"))
    end)

    it("follows the usual precedence and associativity", function()
      assert.same({ 15, 21, 1, 2.0, -3 }, vs("1 + i * 2", "(1 + 2) * i", "10 - 6 - 3", "8 / 2 / 2", "-1 - 2"))
    end)

    it("refuses arithmetic on strings, bools and timestamps", function()
      assert.equal("select: cannot apply '+' to string and int: (s + 1)", select_error("s + 1"))
      assert.equal("select: cannot apply '*' to bool and int: (b * 2)", select_error("b * 2"))
      assert.equal("select: cannot negate string: (- s)", select_error("-s"))
      assert.equal("select: timestamp arithmetic is not supported: (t + 1) (compare timestamps, or " ..
        "CAST(ts AS int) for ms)", select_error("t + 1"))
    end)
  end)

  describe("comparisons", function()
    it("compares ints, doubles and ints with doubles as numbers", function()
      assert.same({ true, true, false, true, true, true }, vs("i = 7", "i > j", "i < j", "i = 7.0", "d < i", "j <= -3"))
      assert.same({ true, true, false }, vs("i <> 1", "i == 7", "d >= 2.6"))
    end)

    it("compares strings bytewise (code point order)", function()
      assert.same({ true, true, true, true }, vs("'ab' < 'b'", "'B' < 'a'", "'é' > 'z'", "s = 'héllo'"))
    end)

    it("compares bools with false < true", function()
      assert.same({ true, true, false }, vs("true > false", "b = true", "b < false"))
    end)

    it("compares timestamps with timestamps, integer ms and ISO-8601 string literals", function()
      assert.same({ true, true, true, true, true, true },
        vs("t = 1500", "t > '1970-01-01T00:00:01Z'", "t = '1970-01-01T00:00:01.500Z'",
          "t = '1970-01-01 00:00:01.5'", "t < '2026-11-21T12:00:05Z'", "t >= t"))
    end)

    it("gives NULL when a side is NULL, even NULL = NULL", function()
      assert.same({}, vs("ni = 1", "ni != 1", "ns < 'a'", "nt > 0", "nb = true", "null = null", "nd >= 1.0"))
    end)

    local refused = {
      { "s = i", "cannot compare string with int: (s = i)" },
      { "i = 'x'", "cannot compare int with string: (i = 'x')" },
      { "d < s", "cannot compare double with string: (d < s)" },
      { "b = 1", "cannot compare bool with int: (b = 1)" },
      { "d = b", "cannot compare double with bool: (d = b)" },
      { "s = b", "cannot compare string with bool: (s = b)" },
      { "t = d", "cannot compare timestamp with double: (t = d)" },
      { "t < 1000.5", "cannot compare timestamp with double: (t < 1000.5)" },
      { "t = b", "cannot compare timestamp with bool: (t = b)" },
      { "t = s", "cannot compare timestamp with string: (t = s)" },
    }
    for _, c in ipairs(refused) do
      it("refuses at definition time " .. c[1], function()
        assert.equal("select: " .. c[2], select_error(c[1]))
      end)
    end

    it("refuses a string literal that is not a timestamp against a timestamp", function()
      assert.equal("select: invalid timestamp 'nope': (t = 'nope')", select_error("t = 'nope'"))
    end)

    it("compares json values only with = and !=", function()
      assert.equal("select: json values only compare with = and !=: (js < js)", select_error("js < js"))
    end)

    it("refuses incompatible types in a where condition, naming the operator", function()
      local ok, err = pcall(F.where, F, "s > 1")
      assert.is_false(ok)
      assert.equal("where: cannot compare string with int: (s > 1)", err)
    end)
  end)

  describe("three-valued logic", function()
    local T, Fa = true, false
    local N = nil
    -- rows in bool_frame order: a in (T, F, N) x c in (T, F, N)
    local AND = { T, Fa, N, Fa, Fa, Fa, N, Fa, N }
    local OR = { T, T, T, T, Fa, N, T, N, N }

    it("gives SQL's truth table for AND, NULL included", function()
      local f = bool_frame()
      local got = f:select("a AND c AS r"):collect()
      for k = 1, 9 do assert.equal(AND[k], got[k].r, "row " .. k) end
    end)

    it("gives SQL's truth table for OR, NULL included", function()
      local f = bool_frame()
      local got = f:select("a OR c AS r"):collect()
      for k = 1, 9 do assert.equal(OR[k], got[k].r, "row " .. k) end
    end)

    it("gives NOT NULL = NULL", function()
      local got = tide.from_rows({ { a = true }, { a = false }, {} }, "a bool?"):select("NOT a AS r"):collect()
      assert.same({ { r = false }, { r = true }, {} }, got)
    end)

    it("keeps only TRUE rows in where (FALSE and NULL are dropped)", function()
      local f, rows = bool_frame()
      local got = f:where("a OR c"):collect()
      local want = {}
      for k, r in ipairs(rows) do if OR[k] then want[#want + 1] = r end end
      assert.same(want, got)
    end)

    it("evaluates literal NULL in logic", function()
      assert.same({ false, true }, vs("NULL AND false", "null OR true"))
      assert.same({}, vs("NULL AND true", "null OR false", "NOT null"))
    end)

    it("binds NOT tighter than AND, and AND tighter than OR", function()
      assert.same({ true, false }, vs("true OR false AND false", "NOT true AND false"))
    end)

    it("refuses non-bool operands", function()
      assert.equal("select: AND needs bool operands, got int: (i AND b)", select_error("i AND b"))
      assert.equal("select: OR needs bool operands, got string: (b OR s)", select_error("b OR s"))
      assert.equal("select: NOT needs bool operands, got int: (NOT i)", select_error("not i"))
    end)
  end)

  describe("IS [NOT] NULL", function()
    it("tests for NULL and is never NULL itself", function()
      assert.same({ false, true, true, false, true }, vs("i IS NULL", "i IS NOT NULL", "ni is null", "ns is not null",
        "null is null"))
      assert.equal("bool", ty("ni IS NULL"))
    end)
  end)

  describe("IN", function()
    it("finds a value in a list", function()
      assert.same({ true, false, true, true }, vs("i IN (1, 7)", "i IN (1, 2)", "s IN ('a', 'héllo')",
        "i NOT IN (1, 2)"))
    end)

    it("compares ints with doubles in the list as numbers", function()
      assert.same({ true }, vs("7 IN (7.0, 2)"))
    end)

    it("follows SQL with NULLs: a match is TRUE, no match with a NULL in the list is NULL", function()
      assert.same({ true }, vs("7 IN (7, null)"))
      assert.same({}, vs("2 IN (1, null)", "2 NOT IN (1, null)", "ni IN (1, 2)", "ni NOT IN (1)"))
      assert.same({ false }, vs("7 NOT IN (7, null)"))
    end)

    it("refuses list items of another type", function()
      assert.equal("select: cannot compare int with string: (i IN (1, 'x'))", select_error("i IN (1, 'x')"))
    end)
  end)

  describe("BETWEEN", function()
    it("includes both bounds", function()
      assert.same({ true, true, true, false, true }, vs("i BETWEEN 7 AND 8", "i BETWEEN 6 AND 7", "d BETWEEN 1 AND 3",
        "i BETWEEN 8 AND 9", "i NOT BETWEEN 8 AND 9"))
      assert.same({ true }, vs("'b' BETWEEN 'a' AND 'c'"))
      assert.same({ true }, vs("t BETWEEN '1970-01-01T00:00:01Z' AND '1970-01-01T00:00:02Z'"))
    end)

    it("is NULL or FALSE with a NULL bound, as x >= lo AND x <= hi", function()
      assert.same({}, vs("ni BETWEEN 1 AND 2", "i BETWEEN null AND 8", "i BETWEEN 1 AND null"))
      assert.same({ false }, vs("0 BETWEEN 1 AND null"))
    end)
  end)

  describe("LIKE", function()
    it("matches % as any run and _ as one character", function()
      assert.same({ true, true, true, false, true, false, true },
        vs("'ab' LIKE 'a%'", "'' LIKE '%'", "'abc' LIKE 'a%c%'", "'x' LIKE ''", "'abc' LIKE 'a_c'", "'ac' LIKE 'a_c'",
          "'ab' LIKE '%b%'"))
    end)

    it("is case sensitive", function()
      assert.same({ false }, vs("'ab' LIKE 'AB'"))
    end)

    it("escapes % and _ with a backslash", function()
      assert.same({ true, false, true, false, true }, vs("'a%b' LIKE 'a\\%b'", "'axb' LIKE 'a\\%b'",
        "'a_b' LIKE 'a\\_b'", "'axb' LIKE 'a\\_b'", "'a\\b' LIKE 'a\\\\b'"))
    end)

    it("counts _ in characters, not bytes", function()
      assert.same({ true, false, true, true }, vs("'日本語' LIKE '日_語'", "'日本語' LIKE '__'", "s LIKE 'h_llo'",
        "'é' LIKE '_'"))
    end)

    it("lets % match newlines", function()
      assert.is_true(v("'a\nb' LIKE 'a%b' AS r"))
    end)

    it("gives NULL with a NULL string or pattern", function()
      assert.same({}, vs("ns LIKE 'a%'", "'abc' LIKE null", "ns NOT LIKE 'a'"))
    end)

    it("refuses non-strings", function()
      assert.equal("select: LIKE needs strings, got int: (i LIKE 'x')", select_error("i LIKE 'x'"))
    end)
  end)

  describe("CASE", function()
    it("takes the first WHEN whose condition is TRUE, else ELSE", function()
      assert.equal("pos", v("CASE WHEN i > 0 THEN 'pos' WHEN i < 0 THEN 'neg' ELSE 'zero' END"))
      assert.equal("neg", v("CASE WHEN j > 0 THEN 'pos' WHEN j < 0 THEN 'neg' ELSE 'zero' END"))
    end)

    it("skips a NULL condition and gives NULL with no ELSE", function()
      assert.equal(2, v("CASE WHEN null THEN 1 ELSE 2 END"))
      assert.equal(2, v("CASE WHEN nb THEN 1 ELSE 2 END"))
      assert.is_nil(v("CASE WHEN false THEN 1 END"))
      assert.equal("int?", ty("CASE WHEN false THEN 1 END"))
    end)

    it("compares an operand with each WHEN value (simple form)", function()
      assert.same({ "seven", "other" }, vs("CASE i WHEN 1 THEN 'one' WHEN 7 THEN 'seven' END",
        "CASE j WHEN 1 THEN 'one' ELSE 'other' END"))
    end)

    it("never matches a NULL operand or a NULL WHEN value in the simple form", function()
      assert.same({ 2, 2 }, vs("CASE ni WHEN null THEN 1 ELSE 2 END", "CASE i WHEN null THEN 1 ELSE 2 END"))
    end)

    it("promotes int and double branches to double", function()
      assert.equal(1.0, v("CASE WHEN b THEN 1 ELSE 2.5 END"))
      assert.equal("double", ty("CASE WHEN b THEN 1 ELSE 2.5 END"))
    end)

    it("refuses a non-bool condition and branches of incompatible types", function()
      assert.equal("select: CASE WHEN needs a bool condition, got int: CASE WHEN i THEN 1 END",
        select_error("CASE WHEN i THEN 1 END"))
      assert.equal("select: CASE branches have incompatible types: int and string: CASE WHEN b THEN 1 ELSE 'x' END",
        select_error("CASE WHEN b THEN 1 ELSE 'x' END"))
    end)

    it("points at a missing END", function()
      assert.equal("select: at position 20: expected WHEN, ELSE or END", select_error("CASE WHEN b THEN 1 "))
    end)
  end)

  describe("CAST", function()
    local ok_cases = {
      { "CAST(i AS double)", 7.0, "double" },
      { "CAST(i AS string)", "7", "string" },
      { "CAST(i AS bool)", true, "bool" },
      { "CAST(0 AS bool)", false, "bool" },
      { "CAST(i AS timestamp)", 7, "timestamp" },
      { "CAST(d AS int)", 2, "int" },
      { "CAST(-2.9 AS int)", -2, "int" },
      { "CAST(d AS string)", "2.5", "string" },
      { "CAST(d AS bool)", true, "bool" },
      { "CAST(2.0 AS string)", "2.0", "string" },
      { "CAST(1e20 AS string)", "1.0E20", "string" },
      { "CAST(0.0001 AS string)", "1.0E-4", "string" },
      { "CAST(0.001 AS string)", "0.001", "string" },
      { "CAST(1e20 AS int)", math.maxinteger, "int" },
      { "CAST(-1e20 AS int)", math.mininteger, "int" },
      { "CAST('12' AS int)", 12, "int" },
      { "CAST(' 12 ' AS int)", 12, "int" },
      { "CAST('1.5' AS int)", 1, "int" },
      { "CAST('-12' AS int)", -12, "int" },
      { "CAST('2.5' AS double)", 2.5, "double" },
      { "CAST('true' AS bool)", true, "bool" },
      { "CAST('no' AS bool)", false, "bool" },
      { "CAST('2026-11-21T12:00:05Z' AS timestamp)", 1795262405000, "timestamp" },
      { "CAST(b AS int)", 1, "int" },
      { "CAST(false AS double)", 0.0, "double" },
      { "CAST(b AS string)", "true", "string" },
      { "CAST(t AS int)", 1500, "int" },
      { "CAST(t AS double)", 1500.0, "double" },
      { "CAST(t AS string)", "1970-01-01T00:00:01.500Z", "string" },
      { "CAST(s AS string)", "héllo", "string" },
      { "CAST(js AS string)", '{"a":1}', "string" },
    }
    for _, c in ipairs(ok_cases) do
      it("converts " .. c[1] .. " as Spark does", function()
        local got = v(c[1])
        assert.equal(c[2], got)
        assert.equal(math.type(c[2]), math.type(got))
        assert.equal(c[3], ty(c[1]))
      end)
    end

    it("types a cast of a string column as nullable (the text may not parse), of a constant by its value", function()
      local g = tide.from_rows({ { x = "12" }, { x = "zz" } }, "x string")
      assert.same({ { "a", "int?" }, { "b", "double?" }, { "c", "bool?" }, { "e", "timestamp?" } },
        g:select("CAST(x AS int) AS a", "CAST(x AS double) AS b", "CAST(x AS bool) AS c", "CAST(x AS timestamp) AS e")
          :schema())
      assert.same({ { a = 12 }, {} }, g:select("CAST(x AS int) AS a"):collect())
    end)

    it("gives NULL for strings that do not parse", function()
      assert.same({}, vs("CAST('x' AS int)", "CAST('1e2' AS int)", "CAST('9223372036854775808' AS int)",
        "CAST('' AS int)", "CAST('abc' AS double)", "CAST('maybe' AS bool)", "CAST('bad' AS timestamp)"))
    end)

    it("gives NULL for NULL", function()
      assert.same({}, vs("CAST(ni AS string)", "CAST(ns AS int)", "CAST(null AS int)", "CAST(nt AS string)"))
    end)

    local refused = {
      { "CAST(b AS timestamp)", "cannot cast bool to timestamp: CAST(b AS timestamp)" },
      { "CAST(t AS bool)", "cannot cast timestamp to bool: CAST(t AS bool)" },
      { "CAST(i AS json)", "cannot cast int to json: CAST(i AS json)" },
      { "CAST(js AS int)", "cannot cast json to int: CAST(js AS int)" },
    }
    for _, c in ipairs(refused) do
      it("refuses " .. c[1], function()
        assert.equal("select: " .. c[2], select_error(c[1]))
      end)
    end

    it("points at an unknown type", function()
      assert.equal("select: at position 11: unknown type 'foo'", select_error("CAST(i AS foo)"))
    end)
  end)

  describe("functions", function()
    it("lower and upper change ASCII letters and keep the rest", function()
      assert.same({ "abc", "ABC", "héllo", "HéLLO" }, vs("lower('ABC')", "upper('abc')", "lower(s)", "upper(s)"))
      assert.same({}, vs("lower(ns)", "upper(ns)"))
    end)

    it("length counts UTF-8 characters", function()
      assert.same({ 5, 3, 0 }, vs("length(s)", "length('日本語')", "length('')"))
      assert.is_nil(v("length(ns)"))
    end)

    it("substr is 1-based, with negative positions counting from the end (Spark)", function()
      assert.same({ "ello", "el", "llo", "ll", "he", "", "", "" },
        vs("substr('hello', 2)", "substr('hello', 2, 2)", "substr('hello', -3)", "substr('hello', -3, 2)",
          "substr('hello', 0, 2)", "substr('hello', 10)", "substr('hello', 1, -1)", "substr('hello', -10, 3)"))
    end)

    it("substr counts characters", function()
      assert.same({ "本", "éllo" }, vs("substr('日本語', 2, 1)", "substr(s, 2)"))
    end)

    it("substr gives NULL for NULL arguments", function()
      assert.same({}, vs("substr(ns, 1)", "substr(s, ni)", "substr(s, 1, ni)"))
    end)

    it("concat casts non-strings and is NULL when any argument is NULL", function()
      assert.equal("a72.5true", v("concat('a', i, d, b)"))
      assert.equal("héllo1970-01-01T00:00:01.500Z", v("concat(s, t)"))
      assert.is_nil(v("concat('a', ns)"))
      assert.is_nil(v("concat('a', 1, null)"))
    end)

    it("coalesce gives the first non-NULL in the common type", function()
      assert.same({ 0, 7, 1.0, "x" }, vs("coalesce(ni, 0)", "coalesce(ni, i, 0)", "coalesce(null, 1, 2.5)",
        "coalesce(ns, 'x')"))
      assert.is_nil(v("coalesce(ni, null)"))
      assert.equal("int", ty("coalesce(ni, 0)"))
      assert.equal("int?", ty("coalesce(ni, ni)"))
    end)

    it("abs keeps the type and wraps at the smallest int (non-ANSI)", function()
      assert.same({ 3, 2.5, math.mininteger }, vs("abs(j)", "abs(-d)", "abs(small)"))
      assert.is_nil(v("abs(ni)"))
    end)

    it("round rounds half up (away from zero), with an optional scale", function()
      assert.same({ 3.0, -3.0, 2.35, 1.01, 20, 25, 3 }, vs("round(2.5)", "round(-2.5)", "round(2.345, 2)",
        "round(1.005, 2)", "round(15, -1)", "round(25)", "round(3)"))
      assert.equal("int", ty("round(i)"))
      assert.is_nil(v("round(nd)"))
    end)

    it("floor and ceil give ints (Spark's bigint)", function()
      assert.same({ -2, 2, 3, 2, -2 }, vs("floor(-1.5)", "ceil(1.2)", "floor(3)", "floor(d)", "ceil(-2.5)"))
      assert.equal("int", ty("floor(d)"))
      assert.equal("integer", math.type(v("ceil(d)")))
      assert.same({}, vs("floor(nd)", "ceil(nd)"))
    end)

    it("are case-insensitive by name", function()
      assert.equal("abc", v("LOWER('ABC')"))
    end)

    local refused = {
      { "lowr(s)", "unknown function 'lowr' (functions: abs, ceil, coalesce, concat, floor, length, lower, round, " ..
        "substr, upper)" },
      { "abs(s)", "function 'abs' needs a number, got string: abs(s)" },
      { "lower(i)", "function 'lower' needs a string, got int: lower(i)" },
      { "substr(i, 1)", "function 'substr' needs a string, got int: substr(i, 1)" },
      { "substr(s, 1.5)", "function 'substr' needs int positions, got double: substr(s, 1.5)" },
      { "round(d, i)", "function 'round' needs an int constant for its scale: round(d, i)" },
      { "round(d, 1, 2)", "function 'round' takes 1 or 2 arguments, got 3" },
      { "lower()", "function 'lower' takes 1 argument, got 0" },
      { "coalesce()", "function 'coalesce' takes at least 1 argument, got 0" },
      { "coalesce(i, 'x')", "coalesce arguments have incompatible types: int and string: coalesce(i, 'x')" },
      { "sum(i)", "aggregate function 'sum' is not allowed here" },
      { "count(*)", "aggregate function 'count' is not allowed here" },
    }
    for _, c in ipairs(refused) do
      it("refuses " .. c[1], function()
        assert.equal("select: " .. c[2], select_error(c[1]))
      end)
    end
  end)

  describe("names", function()
    local names = {
      { "i", "i" }, { "`i`", "i" }, { '"i"', "i" }, { "i AS x", "x" }, { "i + 1 AS `my col`", "my col" },
      { "i*2+1", "((i * 2) + 1)" }, { "-i", "(- i)" }, { "+i", "i" }, { "i <> 1", "(i != 1)" },
      { "i == 1", "(i = 1)" }, { "NOT (i > 1)", "(NOT (i > 1))" }, { "i is not null", "(i IS NOT NULL)" },
      { "i not in (1,2)", "(i NOT IN (1, 2))" }, { "s not like 'h%'", "(s NOT LIKE 'h%')" },
      { "i between 0 and 2", "(i BETWEEN 0 AND 2)" }, { "LOWER(s)", "lower(s)" },
      { "case when i = 1 then 'a' end", "CASE WHEN (i = 1) THEN 'a' END" }, { "cast(i as string)",
        "CAST(i AS string)" },
      { "1e3", "1000.0" }, { "1.50", "1.5" }, { "true", "TRUE" }, { "null", "NULL" }, { "'it''s'", "'it''s'" },
    }
    for _, c in ipairs(names) do
      it("names " .. c[1] .. " as " .. c[2], function()
        assert.equal(c[2], F:select(c[1]):schema()[1][1])
      end)
    end

    it("refuses two outputs of the same name", function()
      assert.has_error(function() F:select("i", "j AS i") end,
        "select: duplicate column 'i' in the result (use AS to rename one)")
    end)

    it("names an expression over a quoted column as Spark does, without the backticks", function()
      local f = tide.from_rows({ { ["my col"] = 3 } }, { { "my col", "int" } })
      assert.same({ { ["(my col * 2)"] = 6 } }, f:select("`my col` * 2"):collect())
    end)

    it("selects an expression whose text is longer than a column name may be", function()
      local text = string.rep("i + ", 40) .. "i"
      local ok, out = pcall(F.select, F, text)
      assert.is_true(ok, tostring(out))
      assert.equal(287, select(2, next(out:collect()[1])))
    end)

    it("selects an unaliased string literal holding a control character", function()
      local ok, out = pcall(F.select, F, "'a\tb'")
      assert.is_true(ok, tostring(out))
      assert.equal("a\tb", select(2, next(out:collect()[1])))
    end)
  end)

  describe("errors", function()
    it("names the columns that exist for an unknown column", function()
      assert.equal("select: unknown column 'sigal' (columns: i, j, d, s, b, t, big, small, ni, nd, ns, nb, nt, js)",
        select_error("sigal + 1"))
    end)

    it("treats column names as case-sensitive", function()
      assert.equal("select: unknown column 'I' (columns: i, j, d, s, b, t, big, small, ni, nd, ns, nb, nt, js)",
        select_error("I"))
    end)

    local syntax = {
      { "i +", "at position 4: unexpected end of expression" },
      { "", "at position 1: unexpected end of expression" },
      { "   ", "at position 4: unexpected end of expression" },
      { "(i", "at position 3: expected ')'" },
      { "i)", "at position 2: unexpected ')'" },
      { "'abc", "at position 1: unterminated string" },
      { "i i", "at position 3: unexpected 'i'" },
      { "i AS", "at position 5: expected a name after AS" },
      { "1 AS a AS b", "at position 8: unexpected 'AS'" },
      { "i @ 2", "at position 3: unexpected character '@'" },
      { "i \1 2", "at position 3: unexpected byte 0x01" },
      { "'é' = i +", "at position 10: unexpected end of expression" },
    }
    for _, c in ipairs(syntax) do
      it(string.format("points at the position of a syntax error in %q", c[1]), function()
        assert.equal("select: " .. c[2], select_error(c[1]))
      end)
    end

    it("refuses a non-string expression", function()
      assert.equal("select: expected an expression string, got number", select_error(5))
    end)

    it("refuses a non-bool where condition", function()
      assert.has_error(function() F:where("i + 1") end,
        "where: the condition must be a bool expression, (i + 1) is int")
    end)
  end)

  describe("fuzz", function()
    local TOKENS = {
      "i", "j", "d", "s", "b", "t", "ni", "ns", "nd", "nb", "nt", "js", "big", "small", "zz",
      "1", "0", "-1", "2.5", "1e3", "9223372036854775807", "'x'", "''", "'1970-01-01T00:00:01Z'", "'%a_'",
      "TRUE", "FALSE", "NULL", "+", "-", "*", "/", "%", "=", "==", "!=", "<>", "<", "<=", ">", ">=",
      "AND", "OR", "NOT", "IS", "NULL", "IN", "BETWEEN", "LIKE", "CASE", "WHEN", "THEN", "ELSE", "END",
      "CAST", "AS", "int", "double", "string", "bool", "timestamp", "json", "(", ")", ",", "(", ")",
      "lower(", "upper(", "length(", "substr(", "concat(", "coalesce(", "abs(", "round(", "floor(", "ceil(",
      "count(", "sum(", "`", "\"", "'", "\\", "*",
    }
    -- A random expression from the grammar (types are not checked: many
    -- are refused by the binder, many compile).
    local NUMS = { "i", "j", "d", "ni", "nd", "big", "small", "0", "1", "-1", "2.5", "null" }
    local STRS = { "s", "ns", "'x'", "'%é_'", "''", "null" }
    local BOOLS = { "b", "nb", "true", "false", "null" }
    local function gen(rnd, depth)
      local function pick(list) return list[rnd(#list)] end
      if depth <= 0 then return pick(rnd(3) == 1 and STRS or rnd(2) == 1 and NUMS or BOOLS) end
      local a, c = gen(rnd, depth - 1), gen(rnd, depth - 1)
      local forms = {
        function() return a .. " " .. pick { "+", "-", "*", "/", "%" } .. " " .. c end,
        function() return a .. " " .. pick { "=", "!=", "<", "<=", ">", ">=" } .. " " .. c end,
        function() return a .. " " .. pick { "AND", "OR" } .. " " .. c end,
        function() return "NOT " .. a end,
        function() return "(" .. a .. ")" end,
        function() return a .. pick { " IS NULL", " IS NOT NULL" } end,
        function() return a .. " IN (" .. c .. ", " .. gen(rnd, 0) .. ")" end,
        function() return a .. " BETWEEN " .. c .. " AND " .. gen(rnd, 0) end,
        function() return a .. " LIKE " .. pick(STRS) end,
        function() return "CASE WHEN " .. a .. " THEN " .. c .. " ELSE " .. gen(rnd, 0) .. " END" end,
        function() return "CASE " .. a .. " WHEN " .. c .. " THEN 1 END" end,
        function() return "CAST(" .. a .. " AS " .. pick { "int", "double", "string", "bool", "timestamp" } .. ")" end,
        function() return pick { "lower", "upper", "length", "abs", "floor", "ceil", "round" } .. "(" .. a .. ")" end,
        function() return "substr(" .. a .. ", " .. c .. ")" end,
        function() return "round(" .. a .. ", " .. pick { "0", "1", "-1", "2" } .. ")" end,
        function() return pick { "concat", "coalesce" } .. "(" .. a .. ", " .. c .. ")" end,
        function() return "-" .. a end,
      }
      return forms[rnd(#forms)]()
    end
    local G = tide.from_rows({ ROW, {
      i = 0, j = 0, d = -0.5, s = "", b = false, t = -1, big = 0, small = 0, js = "x",
    } }, SCHEMA, { batch_rows = 1 })

    it("never crashes on 3000 random expressions: each compiles and runs, or raises a clean select: error",
      function()
        local rng_state = 20261121
        local function rnd(n) -- a small LCG: the same sequence on every run
          rng_state = (rng_state * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
          return (rng_state >> 33) % n + 1
        end
        local compiled, refused = 0, 0
        for _ = 1, 3000 do
          local text
          if rnd(2) == 1 then
            text = gen(rnd, rnd(3)) .. " AS v" -- aliased: long texts are not valid names
          else
          local parts = {}
          for k = 1, rnd(12) do
            local roll = rnd(10)
            if roll == 1 then
              parts[k] = string.char(rnd(256) - 1)
            elseif roll == 2 then
              local bytes = {}
              for m = 1, rnd(4) do bytes[m] = string.char(rnd(256) - 1) end
              parts[k] = "'" .. table.concat(bytes) .. "'"
            else
              parts[k] = TOKENS[rnd(#TOKENS)]
            end
          end
          text = table.concat(parts, rnd(3) == 1 and "" or " ")
          end
          local ok, out = pcall(G.select, G, text)
          if ok then
            compiled = compiled + 1
            local ran, rows = pcall(out.collect, out)
            -- the one error a compiled expression may raise: a timestamp, cast
            -- or summed, outside the valid range (the columns hold int64's ends)
            local range = not ran
              and tostring(rows):match("^select: .*: [^:]+ is outside the valid timestamp range")
            assert(ran or range, "evaluating " .. string.format("%q", text) .. " raised: " .. tostring(rows))
            if ran then assert.equal(2, #rows) end
            if ran and out:schema()[1][2]:match("^bool") then
              local wok, werr = pcall(function() return G:where(text):collect() end)
              assert(wok, "where " .. string.format("%q", text) .. " raised: " .. tostring(werr))
            end
          else
            refused = refused + 1
            assert(type(out) == "string", "a non-string error for " .. string.format("%q", text))
            assert(out:sub(1, 8) == "select: ", "an unclean error for " .. string.format("%q", text) .. ": " .. out)
            assert(not out:find("stack traceback", 1, true), out)
          end
        end
        assert.is_true(compiled > 100, "too few expressions compiled: " .. compiled)
        assert.is_true(refused > 100, "too few expressions refused: " .. refused)
      end)

    it("never crashes on random bytes", function()
      local rng_state = 7
      local function rnd(n)
        rng_state = (rng_state * 6364136223846793005 + 1442695040888963407) & 0x7fffffffffffffff
        return (rng_state >> 33) % n + 1
      end
      for _ = 1, 1000 do
        local bytes = {}
        for k = 1, rnd(30) do bytes[k] = string.char(rnd(256) - 1) end
        local text = table.concat(bytes)
        local ok, out = pcall(G.select, G, text)
        if ok then
          assert(pcall(out.collect, out))
        else
          assert(type(out) == "string" and out:sub(1, 8) == "select: ", tostring(out))
        end
      end
    end)

    it("never crashes on deep nesting", function()
      local deep = string.rep("(", 5000) .. "1" .. string.rep(")", 5000)
      local ok, out = pcall(G.select, G, deep)
      if ok then
        assert(pcall(out.collect, out))
      else
        assert(type(out) == "string" and out:sub(1, 8) == "select: ", tostring(out))
      end
      local nots = string.rep("NOT ", 5000) .. "b"
      ok, out = pcall(G.where, G, nots)
      assert(ok or (type(out) == "string" and out:sub(1, 7) == "where: "), tostring(out))
    end)
  end)

  it("treats NaN as a double like any other", function()
    assert.is_true(is_nan(v("CAST('nan' AS double)")))
  end)
end)
