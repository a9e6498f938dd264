/*
 * test_json.c: the JSON scanner (json.h), the JSON lines codec (jsonl.h)
 * and timestamps (ts.h): the decoder (every type, escapes, UTF-8, NULLs,
 * missing / unknown / duplicate keys, exact error texts, WHOLE mode), the
 * encoder and its round trip, compact/quote/number, timestamps, and seeded
 * random garbage that must never crash nor leave a row behind.
 */
#include <math.h>
#include <stdint.h>

#include "json.h"
#include "jsonl.h"
#include "ts.h"
#include "t.h"

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s\n", err.msg);
  return s;
}

/* Decode `line` under ddl/flags; returns the code, and in out either the
 * re-encoded row or the error message. */
static int dec(const char *ddl, int flags, const char *line, char *out, size_t cap) {
  tide_schema_t *s = schema(ddl);
  tide_json_dec_t *d = tide_json_dec_new(s, flags);
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_err_t err = {0, ""};
  int rc = tide_json_dec_line(d, b, line, strlen(line), &err);
  if (rc) {
    snprintf(out, cap, "%s", err.msg);
    T_EQ_INT(b->nrows, 0);
    T_EQ_INT(err.code, rc);
  } else {
    tide_buf_t o = TIDE_BUF_INIT;
    T_EQ_INT(b->nrows, 1);
    T_EQ_INT(tide_json_enc_row(b, 0, &o, 0), 0);
    snprintf(out, cap, "%.*s", (int)o.len, o.data);
    tide_buf_free(&o);
  }
  tide_batch_free(b);
  tide_json_dec_free(d);
  tide_schema_unref(s);
  return rc;
}

static char out[1024];
#define OK(ddl, line, want)                      \
  do {                                           \
    T_EQ_INT(dec(ddl, 0, line, out, sizeof out), 0); \
    T_EQ_STR(out, want);                         \
  } while (0)
#define BAD(ddl, line, code, want)                    \
  do {                                                \
    T_EQ_INT(dec(ddl, 0, line, out, sizeof out), code); \
    T_EQ_STR(out, want);                              \
  } while (0)

static const char *S = "ts timestamp, device string, signal int, kind string";

static void test_basic(void) {
  OK(S, "{\"ts\":1700000000000,\"device\":\"dev-25\",\"signal\":94,\"kind\":\"view\"}",
     "{\"ts\":1700000000000,\"device\":\"dev-25\",\"signal\":94,\"kind\":\"view\"}");
  OK(S, "  { \"kind\" : \"x\" , \"signal\" : -5 , \"device\" : \"\" , \"ts\" : 0 }\r\n",
     "{\"ts\":0,\"device\":\"\",\"signal\":-5,\"kind\":\"x\"}");
  OK("a int, b int, c int", "{\"a\":9223372036854775807,\"b\":-9223372036854775808,\"c\":3.0}",
     "{\"a\":9223372036854775807,\"b\":-9223372036854775808,\"c\":3}");
  OK("a int", "{\"a\":1e3}", "{\"a\":1000}");
  OK("a int", "{\"a\":-0}", "{\"a\":0}");
  OK("d double, e double, f double, g double", "{\"d\":0.1,\"e\":-2.5e-3,\"f\":1e300,\"g\":7}",
     "{\"d\":0.1,\"e\":-0.0025,\"f\":1e+300,\"g\":7.0}");
  OK("d double", "{\"d\":123456789012345678901234567890}", "{\"d\":1.2345678901234568e+29}");
  OK("d double", "{\"d\":0.30000000000000004}", "{\"d\":0.30000000000000004}");
  OK("b bool, c bool", "{\"b\":true,\"c\":false}", "{\"b\":true,\"c\":false}");
  OK("j json", "{\"j\": { \"a\" : [ 1 , 2.5 , \"x\" , null , true , { } , [ ] ] } }",
     "{\"j\":{\"a\":[1,2.5,\"x\",null,true,{},[]]}}");
  OK("j json", "{\"j\":\"s\"}", "{\"j\":\"s\"}");
  OK("j json", "{\"j\":-1.5E+2}", "{\"j\":-1.5E+2}");
  OK("a int?", "{}", "{\"a\":null}");
  OK("a int?, b string?, c json?", "{\"a\":null,\"b\":null,\"c\":null}", "{\"a\":null,\"b\":null,\"c\":null}");
  /* missing keys take the default */
  OK("a int DEFAULT 5, b string? DEFAULT 'x', c json DEFAULT {\"k\":1}, d timestamp DEFAULT '1970-01-02'",
     "{}", "{\"a\":5,\"b\":\"x\",\"c\":{\"k\":1},\"d\":86400000}");
  /* an explicit null is NULL, not the default */
  OK("b string? DEFAULT 'x'", "{\"b\":null}", "{\"b\":null}");
}

static void test_strings(void) {
  OK("s string", "{\"s\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"}", "{\"s\":\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\"}");
  OK("s string", "{\"s\":\"\\u00e9\\u20AC\\ud83d\\ude00\"}", "{\"s\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}");
  OK("s string", "{\"s\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 raw\"}", "{\"s\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 raw\"}");
  OK("s string", "{\"s\":\"\\u0000\\u001f\"}", "{\"s\":\"\\u0000\\u001f\"}");
  OK("s string", "{\"s\":\"a long string that is longer than sixteen bytes with \\n an escape\"}",
     "{\"s\":\"a long string that is longer than sixteen bytes with \\n an escape\"}");
  /* escaped keys */
  OK("ts int", "{\"t\\u0073\":1}", "{\"ts\":1}");
  BAD("s string", "{\"s\":\"\\ud83d\"}", TIDE_EPARSE, "invalid JSON at column 7: invalid \\u escape (lone surrogate)");
  BAD("s string", "{\"s\":\"\\ude00x\"}", TIDE_EPARSE, "invalid JSON at column 7: invalid \\u escape (lone surrogate)");
  BAD("s string", "{\"s\":\"\\ud83d\\u0041\"}", TIDE_EPARSE, "invalid JSON at column 7: invalid \\u escape (lone surrogate)");
  BAD("s string", "{\"s\":\"\\u12G4\"}", TIDE_EPARSE, "invalid JSON at column 7: invalid \\u escape");
  BAD("s string", "{\"s\":\"\\x\"}", TIDE_EPARSE, "invalid JSON at column 7: invalid escape in string");
  BAD("s string", "{\"s\":\"a\tb\"}", TIDE_EPARSE, "invalid JSON at column 8: control character in string (must be escaped)");
  BAD("s string", "{\"s\":\"a\xff\"}", TIDE_EPARSE, "invalid JSON at column 8: invalid UTF-8 in string");
  BAD("s string", "{\"s\":\"\xc0\xaf\"}", TIDE_EPARSE, "invalid JSON at column 7: invalid UTF-8 in string");
  BAD("s string", "{\"s\":\"\xed\xa0\x80\"}", TIDE_EPARSE, "invalid JSON at column 7: invalid UTF-8 in string");
  BAD("s string", "{\"s\":\"\xf4\x90\x80\x80\"}", TIDE_EPARSE, "invalid JSON at column 7: invalid UTF-8 in string");
  BAD("s string", "{\"s\":\"\xe2\x82\"}", TIDE_EPARSE, "invalid JSON at column 7: invalid UTF-8 in string");
  BAD("s string", "{\"s\":\"abc", TIDE_EPARSE, "invalid JSON at column 6: unterminated string");
  BAD("j json", "{\"j\":[\"\xff\"]}", TIDE_EPARSE, "invalid JSON at column 8: invalid UTF-8 in string");
}

static void test_timestamps_in_json(void) {
  OK("t timestamp", "{\"t\":\"2026-11-21T12:00:05Z\"}", "{\"t\":1795262405000}");
  OK("t timestamp", "{\"t\":\"2026-11-21 12:00:05.250\"}", "{\"t\":1795262405250}");
  OK("t timestamp", "{\"t\":\"2026-11-21T12:00:05+01:00\"}", "{\"t\":1795258805000}");
  OK("t timestamp", "{\"t\":-1}", "{\"t\":-1}");
  OK("t timestamp", "{\"t\":1.7e12}", "{\"t\":1700000000000}");
  BAD("t timestamp", "{\"t\":\"2026-13-01\"}", TIDE_ESCHEMA, "field 't': expected timestamp, got \"2026-13-01\"");
  BAD("t timestamp", "{\"t\":true}", TIDE_ESCHEMA, "field 't': expected timestamp, got true");
  /* ISO8601 output */
  tide_schema_t *s = schema("t timestamp");
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_buf_t o = TIDE_BUF_INIT;
  tide_batch_row_begin(b);
  tide_batch_set_i64(b, 0, 1795262405250);
  tide_batch_row_commit(b);
  tide_json_enc_row(b, 0, &o, TIDE_JSON_ISO8601);
  tide_buf_cstr(&o);
  T_EQ_STR(o.data, "{\"t\":\"2026-11-21T12:00:05.250Z\"}");
  tide_buf_free(&o);
  tide_batch_free(b);
  tide_schema_unref(s);
}

static void test_schema_errors(void) {
  BAD(S, "{\"ts\":1,\"device\":\"d\",\"signal\":\"abc\",\"kind\":\"k\"}", TIDE_ESCHEMA,
      "field 'signal': expected int, got \"abc\"");
  BAD("a int", "{\"a\":3.5}", TIDE_ESCHEMA, "field 'a': expected int, got 3.5");
  BAD("a int", "{\"a\":9223372036854775808}", TIDE_ESCHEMA,
      "field 'a': expected int, got 9223372036854775808 (out of range)");
  BAD("a int", "{\"a\":-9223372036854775809}", TIDE_ESCHEMA,
      "field 'a': expected int, got -9223372036854775809 (out of range)");
  BAD("a int", "{\"a\":123456789012345678901234}", TIDE_ESCHEMA,
      "field 'a': expected int, got 123456789012345678901234 (out of range)");
  BAD("a int", "{\"a\":1e19}", TIDE_ESCHEMA, "field 'a': expected int, got 1e19 (out of range)");
  BAD("a int", "{\"a\":true}", TIDE_ESCHEMA, "field 'a': expected int, got true");
  BAD("a int", "{\"a\":[1,2]}", TIDE_ESCHEMA, "field 'a': expected int, got [1,2]");
  BAD("a int", "{\"a\":{\"b\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]}}", TIDE_ESCHEMA,
      "field 'a': expected int, got {\"b\": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11...");
  BAD("a int", "{\"a\":null}", TIDE_ESCHEMA, "field 'a': expected int, got null (not nullable)");
  BAD("a double", "{\"a\":\"1.5\"}", TIDE_ESCHEMA, "field 'a': expected double, got \"1.5\"");
  BAD("a bool", "{\"a\":1}", TIDE_ESCHEMA, "field 'a': expected bool, got 1");
  BAD("a string", "{\"a\":1}", TIDE_ESCHEMA, "field 'a': expected string, got 1");
  BAD("a json", "{\"a\":null}", TIDE_ESCHEMA, "field 'a': expected json, got null (not nullable)");
  BAD(S, "{\"ts\":1,\"device\":\"d\",\"signal\":1,\"kind\":\"k\",\"foo\":2}", TIDE_ESCHEMA,
      "unknown field 'foo' (fields: ts, device, signal, kind)");
  BAD(S, "{\"ts\":1,\"device\":\"d\",\"ts\":2,\"signal\":1,\"kind\":\"k\"}", TIDE_ESCHEMA, "duplicate field 'ts'");
  BAD(S, "{\"ts\":1,\"signal\":1,\"kind\":\"k\"}", TIDE_ESCHEMA, "missing field 'device' (not nullable)");
  /* a syntax error inside the offending value wins */
  BAD("a int", "{\"a\":[1,}", TIDE_EPARSE, "invalid JSON at column 9: unexpected character");
  /* IGNORE_UNKNOWN skips whole values, nested too */
  T_EQ_INT(dec("a int", TIDE_JSON_IGNORE_UNKNOWN, "{\"x\":{\"y\":[1,{\"z\":null}]},\"a\":1,\"w\":\"s\"}", out, sizeof out), 0);
  T_EQ_STR(out, "{\"a\":1}");
  T_EQ_INT(dec("a int", TIDE_JSON_IGNORE_UNKNOWN, "{\"x\":[1,,],\"a\":1}", out, sizeof out), TIDE_EPARSE);
  T_EQ_STR(out, "invalid JSON at column 9: unexpected character");
}

static void test_syntax_errors(void) {
  BAD(S, "", TIDE_EPARSE, "invalid JSON at column 1: expected '{'");
  BAD(S, "   ", TIDE_EPARSE, "invalid JSON at column 4: expected '{'");
  BAD(S, "[1]", TIDE_EPARSE, "invalid JSON at column 1: expected '{'");
  BAD(S, "{", TIDE_EPARSE, "invalid JSON at column 2: expected a string key");
  BAD(S, "{\"ts\" 1}", TIDE_EPARSE, "invalid JSON at column 7: expected ':'");
  BAD(S, "{\"ts\":1 \"device\":\"x\"}", TIDE_EPARSE, "invalid JSON at column 9: expected ',' or '}'");
  BAD(S, "{\"ts\":1,}", TIDE_EPARSE, "invalid JSON at column 9: expected a string key");
  BAD(S, "{\"ts\":}", TIDE_EPARSE, "invalid JSON at column 7: unexpected character");
  BAD(S, "{\"ts\":", TIDE_EPARSE, "invalid JSON at column 7: expected a value");
  BAD(S, "{\"ts\":01}", TIDE_EPARSE, "invalid JSON at column 8: expected ',' or '}'");
  BAD("a double", "{\"a\":1.}", TIDE_EPARSE, "invalid JSON at column 8: invalid number (digit expected after '.')");
  BAD("a double", "{\"a\":1e}", TIDE_EPARSE, "invalid JSON at column 8: invalid number (digit expected in exponent)");
  BAD("a double", "{\"a\":-}", TIDE_EPARSE, "invalid JSON at column 7: invalid number");
  BAD("a bool", "{\"a\":tru}", TIDE_EPARSE, "invalid JSON at column 6: invalid literal");
  BAD("a int?", "{\"a\":nul}", TIDE_EPARSE, "invalid JSON at column 6: invalid literal");
  BAD(S, "{\"ts\":1} x", TIDE_EPARSE, "invalid JSON at column 10: unexpected text after the object");
  BAD("j json", "{\"j\":{\"a\" 1}}", TIDE_EPARSE, "invalid JSON at column 11: expected ':'");
  BAD("j json", "{\"j\":[1 2]}", TIDE_EPARSE, "invalid JSON at column 9: expected ',' or ']'");
  BAD("j json", "{\"j\":{\"a\":1 \"b\"}}", TIDE_EPARSE, "invalid JSON at column 13: expected ',' or '}'");
  BAD("j json", "{\"j\":{1:2}}", TIDE_EPARSE, "invalid JSON at column 7: expected a string key");
}

static void test_depth(void) {
  static char line[8000];
  /* 512 levels are fine, 513 are refused, 1500 do not blow the stack */
  for (int depth = 512; depth <= 513; depth++) {
    int n = snprintf(line, sizeof line, "{\"j\":");
    for (int i = 0; i < depth; i++) line[n++] = '[';
    for (int i = 0; i < depth; i++) line[n++] = ']';
    line[n++] = '}';
    line[n] = 0;
    int rc = dec("j json", 0, line, out, sizeof out);
    T_EQ_INT(rc, depth == 512 ? 0 : TIDE_EPARSE);
  }
  T_EQ_STR(out, "invalid JSON at column 518: nesting deeper than 512 levels");
  int n = snprintf(line, sizeof line, "{\"j\":");
  for (int i = 0; i < 1500; i++) line[n++] = '{', line[n++] = '"', line[n++] = 'a', line[n++] = '"', line[n++] = ':';
  line[n] = 0;
  T_EQ_INT(dec("j json", 0, line, out, sizeof out), TIDE_EPARSE);
}

static void test_whole(void) {
  T_EQ_INT(dec("doc json", TIDE_JSON_WHOLE, " {\"a\" : [1, {\"b\":null}], \"c\":\"\\u00e9\"} ", out, sizeof out), 0);
  T_EQ_STR(out, "{\"doc\":{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\"}}");
  T_EQ_INT(dec("doc json", TIDE_JSON_WHOLE, "[1,2]", out, sizeof out), 0);
  T_EQ_STR(out, "{\"doc\":[1,2]}");
  T_EQ_INT(dec("doc json?", TIDE_JSON_WHOLE, "null", out, sizeof out), 0);
  T_EQ_STR(out, "{\"doc\":null}");
  T_EQ_INT(dec("doc json", TIDE_JSON_WHOLE, "{\"a\":1} 2", out, sizeof out), TIDE_EPARSE);
  T_EQ_STR(out, "invalid JSON at column 9: unexpected text after the value");
  T_EQ_INT(dec("doc json", TIDE_JSON_WHOLE, "{\"a\":", out, sizeof out), TIDE_EPARSE);
  T_EQ_STR(out, "invalid JSON at column 6: expected a value");
  T_EQ_INT(dec("a int, b json", TIDE_JSON_WHOLE, "{}", out, sizeof out), TIDE_EINVAL);
  T_EQ_STR(out, "whole-line mode needs a schema of one json column");
}

/* Many lines through one decoder: key order changes, prediction must follow. */
static void test_prediction_and_round_trip(void) {
  tide_schema_t *s = schema("ts timestamp, device string?, signal int?, v double?, ok bool?, meta json?");
  tide_json_dec_t *d = tide_json_dec_new(s, 0);
  tide_batch_t *b = tide_batch_new(s, 4), *b2 = tide_batch_new(s, 0);
  tide_buf_t text = TIDE_BUF_INIT, text2 = TIDE_BUF_INIT;
  tide_err_t err = {0, ""};
  char line[256];
  int bad = 0;
  for (int i = 0; i < 3000; i++) {
    int n;
    switch (i % 4) {
    case 0: n = snprintf(line, sizeof line, "{\"ts\":%d,\"device\":\"d%d\",\"signal\":%d,\"v\":%d.25}", i, i, i * 3, i); break;
    case 1: n = snprintf(line, sizeof line, "{\"signal\":%d,\"ts\":%d,\"ok\":%s}", -i, i, i % 3 ? "true" : "false"); break;
    case 2: n = snprintf(line, sizeof line, "{\"meta\":{\"i\":%d,\"s\":\"x\\ny\"},\"ts\":%d,\"device\":null}", i, i); break;
    default: n = snprintf(line, sizeof line, "{\"ts\":%d,\"v\":%.17g,\"device\":\"\\u00e9%d\"}", i, 1.0 / (i + 1), i); break;
    }
    if (tide_json_dec_line(d, b, line, (size_t)n, &err)) bad++;
  }
  T_EQ_INT(bad, 0);
  T_EQ_INT(b->nrows, 3000);
  T_EQ_INT(b->cols[1].null_count, 1500);
  T_EQ_INT(tide_col_i64(&b->cols[2], 1), -1);
  T_CHECK(tide_col_bool(&b->cols[4], 1) == 1 && tide_col_bool(&b->cols[4], 9) == 0);
  T_CHECK(tide_col_is_null(&b->cols[4], 0) && !tide_col_is_null(&b->cols[4], 5));
  T_CHECK(tide_col_f64(&b->cols[3], 3) == 1.0 / 4);
  /* encode everything, decode it again, encode again: identical text */
  for (uint32_t r = 0; r < b->nrows; r++) {
    T_EQ_INT(tide_json_enc_row(b, r, &text, 0), 0);
    tide_buf_putc(&text, '\n');
  }
  const char *p = text.data, *e = text.data + text.len;
  while (p < e) {
    const char *nl = memchr(p, '\n', (size_t)(e - p));
    if (tide_json_dec_line(d, b2, p, (size_t)(nl - p), &err)) bad++;
    p = nl + 1;
  }
  T_EQ_INT(bad, 0);
  for (uint32_t r = 0; r < b2->nrows; r++) {
    tide_json_enc_row(b2, r, &text2, 0);
    tide_buf_putc(&text2, '\n');
  }
  T_EQ_INT(text.len, text2.len);
  T_CHECK(text.len == text2.len && !memcmp(text.data, text2.data, text.len));
  tide_buf_free(&text);
  tide_buf_free(&text2);
  tide_batch_free(b);
  tide_batch_free(b2);
  tide_json_dec_free(d);
  tide_schema_unref(s);
}

static void test_number_quote_compact(void) {
  tide_buf_t o = TIDE_BUF_INIT;
  double vals[] = {0.0, -0.0, 3.0, 0.1, 1.0 / 3, 1e21, 1e-7, 123456789.125, 5e-324, 1.7976931348623157e308, -2.5};
  const char *want[] = {"0.0", "-0.0", "3.0", "0.1", "0.3333333333333333", "1e+21", "1e-07",
                        "123456789.125", "4.94065645841247e-324", "1.7976931348623157e+308", "-2.5"};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    o.len = 0;
    tide_json_number(&o, vals[i]);
    tide_buf_cstr(&o);
    T_EQ_STR(o.data, want[i]);
    T_CHECK(strtod(o.data, NULL) == vals[i]);
  }
  o.len = 0;
  tide_json_number(&o, NAN);
  tide_json_number(&o, INFINITY);
  tide_buf_cstr(&o);
  T_EQ_STR(o.data, "nullnull");
  /* random doubles round-trip */
  uint64_t x = 88172645463325252ull;
  int bad = 0;
  for (int i = 0; i < 20000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double v;
    memcpy(&v, &x, 8);
    if (!isfinite(v)) continue;
    o.len = 0;
    tide_json_number(&o, v);
    tide_buf_cstr(&o);
    if (strtod(o.data, NULL) != v) bad++;
  }
  T_EQ_INT(bad, 0);
  /* the same text as the printf reference (%.15g, else %.16g, else %.17g,
   * the first that reads back): averages (repeating decimals), random bit
   * patterns, dyadic values, neighbours of powers of ten */
  bad = 0;
  for (int i = 0; i < 200000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    double v;
    switch (i % 4) {
    case 0: memcpy(&v, &x, 8); break;
    case 1: v = (double)(x % 100000000) / (double)(1 + (x >> 40) % 1000) * ((x >> 63) ? -1 : 1); break;
    case 2: v = ldexp((double)(x >> 11), -(int)(x % 120)); break;
    default: {
      double p = pow(10, (int)(x % 20) - 5);
      uint64_t u;
      memcpy(&u, &p, 8);
      u += (uint64_t)((int64_t)((x >> 32) % 7) - 3);
      memcpy(&v, &u, 8);
    }
    }
    if (!isfinite(v)) continue;
    char got[40], ref[40];
    int n = tide_double_shortest(v, got), w = snprintf(ref, sizeof ref, "%.15g", v);
    if (strtod(ref, NULL) != v) {
      w = snprintf(ref, sizeof ref, "%.16g", v);
      if (strtod(ref, NULL) != v) w = snprintf(ref, sizeof ref, "%.17g", v);
    }
    if (n != w || strcmp(got, ref)) bad++;
  }
  T_EQ_INT(bad, 0);
  o.len = 0;
  tide_json_quote(&o, "a\"\\\n\x01\xc3\xa9", 7);
  tide_buf_cstr(&o);
  T_EQ_STR(o.data, "\"a\\\"\\\\\\n\\u0001\xc3\xa9\"");
  o.len = 0;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_json_compact(" { \"a\" : [ 1 , true ] } ", 24, &o, &err), 0);
  tide_buf_cstr(&o);
  T_EQ_STR(o.data, "{\"a\":[1,true]}");
  o.len = 0;
  T_EQ_INT(tide_json_compact("{\"a\":1} x", 9, &o, &err), TIDE_EPARSE);
  T_EQ_STR(err.msg, "invalid JSON at column 9: unexpected text after the value");
  T_EQ_INT(o.len, 0);
  T_EQ_INT(tide_json_unquote("\"a\\u00e9\"", 9, &o, &err), 0);
  tide_buf_cstr(&o);
  T_EQ_STR(o.data, "a\xc3\xa9");
  T_EQ_INT(tide_json_unquote("\"a\" ", 4, &o, &err), TIDE_EPARSE);
  T_EQ_INT(tide_utf8_check("ab\xc3\xa9", 4), 4);
  T_EQ_INT(tide_utf8_check("ab\xc3", 3), 2);
  tide_buf_free(&o);
}

static int64_t ts(const char *s, int *rc) {
  int64_t ms = -777;
  *rc = tide_ts_parse(s, strlen(s), &ms);
  return ms;
}

/* The scanner's pieces, as the codecs use them: strings in place or
 * unescaped into the cursor's buffer, integers and their bounds, numbers,
 * any value compacted, and error columns counted from the cursor's start. */
static void test_scanner_pieces(void) {
  tide_err_t err = {0, ""};
  tide_buf_t tmp = TIDE_BUF_INIT, val = TIDE_BUF_INIT;
  const char *text = "  \"plain\" \"a\\u00e9\\n\" [1, {\"k\" : null}] -12 9223372036854775808 1.5e3 \"bad";
  tide_json_cur_t x = {text, text + strlen(text), &err, &tmp};
  const char *p = tide_json_ws(text, x.end), *q, *sp;
  size_t n;
  T_EQ_INT(p - text, 2);
  T_EQ_INT(tide_json_str(&x, p, &q, &sp, &n), 0);
  T_CHECK(n == 5 && !memcmp(sp, "plain", 5) && sp == p + 1); /* no escapes: in place */
  p = tide_json_ws(q, x.end);
  T_EQ_INT(tide_json_str(&x, p, &q, &sp, &n), 0);
  T_CHECK(n == 4 && !memcmp(sp, "a\xc3\xa9\n", 4) && sp == tmp.data); /* unescaped into tmp */
  p = tide_json_ws(q, x.end);
  T_EQ_INT(tide_json_value(&x, p, &q, &val), 0);
  T_CHECK(val.len == 14 && !memcmp(val.data, "[1,{\"k\":null}]", 14));
  int64_t v;
  p = tide_json_ws(q, x.end);
  T_EQ_INT(tide_json_int(p, x.end, &q, &v), 1);
  T_EQ_INT(v, -12);
  p = tide_json_ws(q, x.end);
  T_EQ_INT(tide_json_int(p, x.end, &q, &v), 2); /* beyond int64 */
  int isint;
  T_EQ_INT(tide_json_num(&x, p, &q, &isint), 0);
  T_EQ_INT(isint, 1);
  p = tide_json_ws(q, x.end);
  T_EQ_INT(tide_json_int(p, x.end, &q, &v), 0); /* a fraction or exponent: rescan */
  T_EQ_INT(tide_json_num(&x, p, &q, &isint), 0);
  T_EQ_INT(isint, 0);
  T_CHECK(tide_json_num_value(p, (size_t)(q - p)) == 1500.0);
  p = tide_json_ws(q, x.end);
  T_EQ_INT(tide_json_str(&x, p, &q, NULL, NULL), TIDE_EPARSE);
  T_EQ_STR(err.msg, "invalid JSON at column 71: unterminated string");
  T_EQ_INT(tide_json_int("x", x.end, &q, &v), -1);
  char shown[TIDE_JSON_SHOW_MAX + 4];
  tide_json_show(shown, "0123456789012345678901234567890123456789\xc3\xa9tail", 46);
  T_EQ_STR(shown, "0123456789012345678901234567890123456789...");
  tide_buf_free(&tmp);
  tide_buf_free(&val);
}

static void test_ts(void) {
  int rc;
  char buf[40];
  T_EQ_INT(ts("1970-01-01", &rc), 0);
  T_EQ_INT(rc, 0);
  T_EQ_INT(ts("2026-11-21T12:00:05Z", &rc), 1795262405000LL);
  T_EQ_INT(ts("2026-11-21t12:00:05z", &rc), 1795262405000LL);
  T_EQ_INT(ts("2026-11-21 12:00:05.250", &rc), 1795262405250LL);
  T_EQ_INT(ts("2026-11-21T12:00:05.25", &rc), 1795262405250LL);
  T_EQ_INT(ts("2026-11-21T12:00:05.123456789Z", &rc), 1795262405123LL);
  T_EQ_INT(ts("2026-11-21T12:00:05,5Z", &rc), 1795262405500LL);
  T_EQ_INT(ts("2026-11-21T12:00:05+01:00", &rc), 1795258805000LL);
  T_EQ_INT(ts("2026-11-21T12:00:05-0130", &rc), 1795267805000LL);
  T_EQ_INT(ts("2026-11-21T12:00:05+01", &rc), 1795258805000LL);
  T_EQ_INT(ts("2026-11-21T12:00", &rc), 1795262400000LL);
  T_EQ_INT(rc, 0);
  T_EQ_INT(ts("2024-02-29", &rc), 1709164800000LL);
  T_EQ_INT(ts("2000-02-29", &rc), 951782400000LL);
  T_EQ_INT(ts("1969-12-31T23:59:59.999Z", &rc), -1);
  T_EQ_INT(ts("1900-01-01", &rc), -2208988800000LL);
  T_EQ_INT(ts("0001-01-01", &rc), -62135596800000LL);
  T_EQ_INT(rc, 0);
  const char *badv[] = {"", "2026", "2026-1-01", "2026-13-01", "2026-00-10", "2026-01-32", "2026-02-29",
                        "1900-02-29", "2026-02-30", "2026-04-31", "2026-01-01T25:00:00", "2026-01-01T24:00",
                        "2026-01-01T12:60", "2026-01-01T12:00:60", "2026-01-01T12", "2026-01-01X12:00",
                        "2026-01-01T12:00:00.", "2026-01-01T12:00:00+25:00", "2026-01-01T12:00:00+01:60",
                        "2026-01-01T12:00:00Zx", "2026-01-01 ", " 2026-01-01", "abcd-ef-gh", "2026-01-01T1:00"};
  int nbad = 0;
  for (size_t i = 0; i < sizeof badv / sizeof badv[0]; i++) {
    ts(badv[i], &rc);
    if (rc != TIDE_EPARSE) {
      nbad++;
      fprintf(stderr, "accepted: '%s'\n", badv[i]);
    }
  }
  T_EQ_INT(nbad, 0);
  T_EQ_INT(tide_ts_format(0, buf), 20);
  T_EQ_STR(buf, "1970-01-01T00:00:00Z");
  tide_ts_format(1795262405250LL, buf);
  T_EQ_STR(buf, "2026-11-21T12:00:05.250Z");
  tide_ts_format(-1, buf);
  T_EQ_STR(buf, "1969-12-31T23:59:59.999Z");
  tide_ts_format(951782400000LL, buf);
  T_EQ_STR(buf, "2000-02-29T00:00:00Z");
  tide_ts_format(-62135596800000LL, buf);
  T_EQ_STR(buf, "0001-01-01T00:00:00Z");
  T_CHECK(tide_ts_format(INT64_MIN, buf) < 40);
  T_CHECK(tide_ts_format(INT64_MAX, buf) < 40);
  /* format -> parse round trip over a wide range */
  uint64_t x = 0x9E3779B97F4A7C15ull;
  int bad = 0;
  for (int i = 0; i < 20000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int64_t ms = (int64_t)(x % 253402300800000ull) - 62135596800000LL; /* years 1..9999 */
    int n = tide_ts_format(ms, buf);
    int64_t back;
    if (tide_ts_parse(buf, (size_t)n, &back) || back != ms) bad++;
  }
  T_EQ_INT(bad, 0);
}

/* Random garbage, and random mutations of good lines: never a crash, always
 * 0 or an error code, and no row left behind on error. */
static void test_fuzz(void) {
  tide_schema_t *s = schema("ts timestamp, device string?, signal int?, v double?, ok bool?, meta json?");
  tide_json_dec_t *d = tide_json_dec_new(s, 0), *di = tide_json_dec_new(s, TIDE_JSON_IGNORE_UNKNOWN);
  tide_batch_t *b = tide_batch_new(s, 0);
  const char *seeds[] = {
      "{\"ts\":1700000000000,\"device\":\"dev-25\",\"signal\":94,\"v\":1.5,\"ok\":true,\"meta\":{\"a\":[1,\"\\u00e9\",null]}}",
      "{\"ts\":\"2024-02-29T10:00:00.5+02:00\",\"device\":\"\\ud83d\\ude00\",\"meta\":[[[]],{}]}",
      "{\"signal\":-12,\"ts\":3.0e3,\"x\":{\"deep\":[1,2,3]}}"};
  uint32_t x = 12345;
  char line[512];
  int bad = 0, ok = 0;
  for (int iter = 0; iter < 30000; iter++) {
    size_t n;
    x = x * 1664525u + 1013904223u;
    if (iter % 3 == 0) {
      n = x % 120;
      for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        /* bias towards JSON punctuation */
        static const char alpha[] = "{}[]\":,0123456789-+.eEtrufalsn\\u \xc3\xa9\xff";
        line[i] = (x >> 28) < 12 ? alpha[(x >> 8) % (sizeof alpha - 1)] : (char)(x >> 16);
      }
    } else {
      const char *sd = seeds[x % 3];
      n = strlen(sd);
      memcpy(line, sd, n);
      int muts = 1 + (int)((x >> 8) % 4);
      for (int k = 0; k < muts && n; k++) {
        x = x * 1664525u + 1013904223u;
        size_t at = n ? x % n : 0;
        switch ((x >> 24) % 3) {
        case 0: line[at] = (char)(x >> 12); break;
        case 1: memmove(line + at, line + at + 1, n - at - 1), n--; break;
        default: n = at; break;
        }
      }
    }
    uint32_t before = b->nrows;
    size_t dl_before = b->cols[1].data_len, ml_before = b->cols[5].data_len;
    tide_err_t err = {0, ""};
    int rc = tide_json_dec_line(iter & 1 ? d : di, b, line, n, &err);
    if (rc == 0) {
      ok++;
      if (b->nrows != before + 1) bad++;
      /* the json column always holds valid JSON */
      size_t jl;
      const char *jp = tide_col_str(&b->cols[5], b->nrows - 1, &jl);
      tide_buf_t chk = TIDE_BUF_INIT;
      if (!tide_col_is_null(&b->cols[5], b->nrows - 1) && tide_json_compact(jp, jl, &chk, NULL)) bad++;
      tide_buf_free(&chk);
      const char *sp = tide_col_str(&b->cols[1], b->nrows - 1, &jl);
      if (tide_utf8_check(sp, jl) != jl) bad++;
    } else {
      if (rc != TIDE_EPARSE && rc != TIDE_ESCHEMA) bad++;
      if (b->nrows != before || b->cols[1].data_len != dl_before || b->cols[5].data_len != ml_before) bad++;
      if (err.code != rc || !err.msg[0]) bad++;
    }
    if (b->nrows > 5000) tide_batch_clear(b);
  }
  T_EQ_INT(bad, 0);
  T_CHECK(ok > 100);
  tide_batch_free(b);
  tide_json_dec_free(d);
  tide_json_dec_free(di);
  tide_schema_unref(s);
}

int main(void) {
  T_RUN(test_basic);
  T_RUN(test_strings);
  T_RUN(test_timestamps_in_json);
  T_RUN(test_schema_errors);
  T_RUN(test_syntax_errors);
  T_RUN(test_depth);
  T_RUN(test_whole);
  T_RUN(test_prediction_and_round_trip);
  T_RUN(test_number_quote_compact);
  T_RUN(test_scanner_pieces);
  T_RUN(test_ts);
  T_RUN(test_fuzz);
  T_DONE();
}
