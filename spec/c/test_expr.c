/*
 * test_expr.c: expressions: every grammar form, the operators on the types
 * they allow (and a sample they refuse, with pinned messages), NULLs and
 * three-valued logic, wrapping arithmetic, division by zero, CAST, the
 * functions, LIKE, IN, CASE, names, aggregates, timestamps, select, a
 * 100k-row batch against a row-by-row reference, and a fuzz loop. Frees
 * everything it makes.
 */
#include <math.h>
#include <stdint.h>

#include "expr.h"
#include "vec.h"
#include "t.h"

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s\n", err.msg);
  return s;
}

/* The main batch: five rows with a NULL in row 2 of each nullable column. */
static tide_batch_t *main_batch(void) {
  tide_schema_t *s = schema("ts timestamp, device string?, signal int?, x double?, b bool?, j json?, k json?");
  tide_batch_t *b = tide_batch_new(s, 8);
  tide_schema_unref(s);
  static const char *dev[] = {"a", "B\xc3\xa9", NULL, "hello", ""};
  static const int sig[] = {10, 20, 0, -7, 0};
  static const double xs[] = {1.5, -2.5, 0, 0.0, 0};
  static const char *js[] = {"{\"a\":1}", "[1]", NULL, "{\"a\":1}", "\"x\""};
  for (int i = 0; i < 5; i++) {
    tide_batch_row_begin(b);
    tide_batch_set_i64(b, 0, 1700000000000LL + i * 1000);
    if (dev[i]) tide_batch_set_str(b, 1, dev[i], strlen(dev[i]));
    if (i != 2) {
      tide_batch_set_i64(b, 2, sig[i]);
      tide_batch_set_f64(b, 3, i == 4 ? NAN : xs[i]);
      tide_batch_set_bool(b, 4, i == 0 || i == 3);
    }
    if (js[i]) tide_batch_set_str(b, 5, js[i], strlen(js[i]));
    if (js[i]) tide_batch_set_str(b, 6, i == 1 ? "[2]" : js[i], i == 1 ? 3 : strlen(js[i]));
    tide_batch_row_commit(b);
  }
  return b;
}

static tide_batch_t *B;

/* Render row i of c ("NULL", ints, %.17g doubles, true/false, strings). */
static void render(const tide_col_t *c, uint32_t i, tide_buf_t *out) {
  char buf[64];
  if (tide_col_is_null(c, i)) {
    tide_buf_puts(out, "NULL");
    return;
  }
  switch (c->type) {
  case TIDE_T_INT:
  case TIDE_T_TIMESTAMP: snprintf(buf, sizeof buf, "%lld", (long long)tide_col_i64(c, i)); break;
  case TIDE_T_DOUBLE:
    if (isnan(tide_col_f64(c, i))) snprintf(buf, sizeof buf, "nan");
    else snprintf(buf, sizeof buf, "%.17g", tide_col_f64(c, i));
    break;
  case TIDE_T_BOOL: snprintf(buf, sizeof buf, "%s", tide_col_bool(c, i) ? "true" : "false"); break;
  default: {
    size_t n;
    const char *p = tide_col_str(c, i, &n);
    tide_buf_append(out, p, n);
    return;
  }
  }
  tide_buf_puts(out, buf);
}

/* Evaluate text over b and render all rows joined by '|' (or "ERR: msg"). */
static char result[4096];
static const char *evb(const char *text, tide_batch_t *b) {
  tide_err_t err = {0, ""};
  tide_expr_t *e = NULL;
  if (tide_expr_compile(text, strlen(text), b->schema, 0, &e, &err)) {
    snprintf(result, sizeof result, "ERR: %s", err.msg);
    return result;
  }
  tide_col_t c;
  if (tide_expr_eval(e, b, &c, &err)) {
    snprintf(result, sizeof result, "EVALERR: %s", err.msg);
    tide_expr_free(e);
    return result;
  }
  tide_buf_t out = TIDE_BUF_INIT;
  int bad = c.type != tide_expr_type(e);
  uint32_t nulls = 0;
  for (uint32_t i = 0; i < b->nrows; i++) {
    if (i) tide_buf_putc(&out, '|');
    render(&c, i, &out);
    if (tide_col_is_null(&c, i)) {
      nulls++;
      /* batch.h: NULL values are zero, NULL strings empty */
      if (c.type == TIDE_T_STRING || c.type == TIDE_T_JSON) {
        size_t n;
        tide_col_str(&c, i, &n);
        bad |= n != 0;
      } else if (c.type == TIDE_T_BOOL) {
        bad |= tide_col_bool(&c, i) != 0;
      } else {
        bad |= tide_col_i64(&c, i) != 0;
      }
    }
  }
  bad |= nulls != c.null_count;
  bad |= nulls && !tide_expr_nullable(e);
  if (bad) tide_buf_puts(&out, " (BAD COLUMN)");
  tide_buf_cstr(&out);
  snprintf(result, sizeof result, "%s", out.data ? out.data : "");
  tide_buf_free(&out);
  tide_col_free(&c);
  tide_expr_free(e);
  return result;
}

static const char *ev(const char *text) { return evb(text, B); }

/* The error of compiling text against B's schema (with flags), or "OK". */
static char errbuf[600];
static int errcode;
static const char *cerr_f(const char *text, int flags) {
  tide_err_t err = {0, ""};
  tide_expr_t *e = NULL;
  errcode = tide_expr_compile(text, strlen(text), B->schema, flags, &e, &err);
  if (!errcode) {
    tide_expr_free(e);
    return "OK";
  }
  T_EQ_INT(err.code, errcode);
  snprintf(errbuf, sizeof errbuf, "%s", err.msg);
  return errbuf;
}
static const char *cerr(const char *text) { return cerr_f(text, 0); }

/* Type name and nullability of a compiled expression, "int?" style. */
static char typebuf[600];
static const char *type_of(const char *text) {
  tide_err_t err = {0, ""};
  tide_expr_t *e = NULL;
  if (tide_expr_compile(text, strlen(text), B->schema, TIDE_EXPR_AGG, &e, &err)) {
    snprintf(typebuf, sizeof typebuf, "%s", err.msg);
    return typebuf;
  }
  snprintf(typebuf, sizeof typebuf, "%s%s", tide_type_name(tide_expr_type(e)), tide_expr_nullable(e) ? "?" : "");
  tide_expr_free(e);
  return typebuf;
}

static char namebuf[600], textbuf[256];
static const char *name_of(const char *text) {
  tide_err_t err = {0, ""};
  tide_expr_t *e = NULL;
  if (tide_expr_compile(text, strlen(text), B->schema, TIDE_EXPR_AGG, &e, &err)) {
    snprintf(namebuf, sizeof namebuf, "%s", err.msg);
    return namebuf;
  }
  snprintf(namebuf, sizeof namebuf, "%s", tide_expr_name(e));
  snprintf(textbuf, sizeof textbuf, "%s", tide_expr_text(e));
  tide_expr_free(e);
  return namebuf;
}

/* ---------------------------------------------------------------- tests */

static void test_literals_and_columns(void) {
  T_EQ_STR(ev("signal"), "10|20|NULL|-7|0");
  T_EQ_STR(ev("device"), "a|B\xc3\xa9|NULL|hello|");
  T_EQ_STR(ev("`signal`"), "10|20|NULL|-7|0");
  T_EQ_STR(ev("\"device\""), "a|B\xc3\xa9|NULL|hello|");
  T_EQ_STR(ev("x"), "1.5|-2.5|NULL|0|nan");
  T_EQ_STR(ev("b"), "true|false|NULL|true|false");
  T_EQ_STR(ev("j"), "{\"a\":1}|[1]|NULL|{\"a\":1}|\"x\"");
  T_EQ_STR(ev("ts"), "1700000000000|1700000001000|1700000002000|1700000003000|1700000004000");
  T_EQ_STR(ev("42"), "42|42|42|42|42");
  T_EQ_STR(ev("-42"), "-42|-42|-42|-42|-42");
  T_EQ_STR(ev("1.25"), "1.25|1.25|1.25|1.25|1.25");
  T_EQ_STR(ev(".5"), "0.5|0.5|0.5|0.5|0.5");
  T_EQ_STR(ev("1e3"), "1000|1000|1000|1000|1000");
  T_EQ_STR(type_of("1e3"), "double");
  T_EQ_STR(ev("2.5E-1"), "0.25|0.25|0.25|0.25|0.25");
  T_EQ_STR(ev("'it''s'"), "it's|it's|it's|it's|it's");
  T_EQ_STR(ev("''"), "||||");
  T_EQ_STR(ev("TRUE"), "true|true|true|true|true");
  T_EQ_STR(ev("false"), "false|false|false|false|false");
  T_EQ_STR(ev("NULL"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(type_of("NULL"), "string?");
  T_EQ_STR(ev("9223372036854775807"), "9223372036854775807|9223372036854775807|9223372036854775807|"
                                      "9223372036854775807|9223372036854775807");
  T_EQ_STR(type_of("9223372036854775808"), "double"); /* too big for an int */
  T_EQ_STR(ev("((signal))"), "10|20|NULL|-7|0");
  T_EQ_STR(ev("  signal\t\n"), "10|20|NULL|-7|0");
  T_EQ_STR(ev("+signal"), "10|20|NULL|-7|0");
  T_EQ_STR(type_of("signal"), "int?");
  T_EQ_STR(type_of("ts"), "timestamp");
  T_EQ_STR(type_of("1"), "int");
}

static void test_arithmetic(void) {
  T_EQ_STR(ev("signal + 1"), "11|21|NULL|-6|1");
  T_EQ_STR(ev("1 + signal"), "11|21|NULL|-6|1");
  T_EQ_STR(ev("signal - 1"), "9|19|NULL|-8|-1");
  T_EQ_STR(ev("1 - signal"), "-9|-19|NULL|8|1");
  T_EQ_STR(ev("signal * signal"), "100|400|NULL|49|0");
  T_EQ_STR(ev("signal * 2 + 1"), "21|41|NULL|-13|1");
  T_EQ_STR(ev("1 + 2 * 3"), "7|7|7|7|7");
  T_EQ_STR(ev("(1 + 2) * 3"), "9|9|9|9|9");
  T_EQ_STR(ev("10 - 2 - 3"), "5|5|5|5|5"); /* left associative */
  T_EQ_STR(ev("signal / 4"), "2.5|5|NULL|-1.75|0");
  T_EQ_STR(type_of("signal / 4"), "double?");
  T_EQ_STR(ev("7 / 2"), "3.5|3.5|3.5|3.5|3.5");
  T_EQ_STR(ev("signal % 3"), "1|2|NULL|-1|0");
  T_EQ_STR(ev("-7 % 3"), "-1|-1|-1|-1|-1");
  T_EQ_STR(ev("signal + x"), "11.5|17.5|NULL|-7|nan");
  T_EQ_STR(type_of("signal + x"), "double?");
  T_EQ_STR(ev("x * 2"), "3|-5|NULL|0|nan");
  T_EQ_STR(ev("x - 1"), "0.5|-3.5|NULL|-1|nan");
  T_EQ_STR(ev("5.5 % 2"), "1.5|1.5|1.5|1.5|1.5");
  T_EQ_STR(ev("x % 1"), "0.5|-0.5|NULL|0|nan");
  T_EQ_STR(ev("-signal"), "-10|-20|NULL|7|0");
  T_EQ_STR(ev("-x"), "-1.5|2.5|NULL|-0|nan");
  T_EQ_STR(ev("- (signal + 1)"), "-11|-21|NULL|6|-1");
  T_EQ_STR(ev("--signal"), "10|20|NULL|-7|0");
  T_EQ_STR(ev("signal + NULL"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(type_of("signal + NULL"), "int?");
  T_EQ_STR(type_of("x * NULL"), "double?");
  T_EQ_STR(type_of("signal + 1"), "int?");
  T_EQ_STR(type_of("ts = ts"), "bool");
  /* division by zero */
  T_EQ_STR(ev("signal / 0"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("signal % 0"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("x / 0"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("x % 0.0"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("100 / signal"), "10|5|NULL|-14.285714285714286|NULL");
  T_EQ_STR(ev("100 % signal"), "0|0|NULL|2|NULL");
  T_EQ_STR(ev("1.0 / x"), "0.66666666666666663|-0.40000000000000002|NULL|NULL|nan");
  T_EQ_STR(ev("signal / signal"), "1|1|NULL|1|NULL");
  T_EQ_STR(type_of("signal / 2"), "double?");
  T_EQ_STR(type_of("1 / 2"), "double");
  T_EQ_STR(type_of("ts / 2"), "cannot apply '/' to timestamp and int: (ts / 2)");
  /* wrapping */
  T_EQ_STR(ev("9223372036854775807 + signal"),
           "-9223372036854775799|-9223372036854775789|NULL|9223372036854775800|9223372036854775807");
  T_EQ_STR(ev("-9223372036854775807 - 1 - signal"),
           "9223372036854775798|9223372036854775788|NULL|-9223372036854775801|-9223372036854775808");
  T_EQ_STR(ev("4611686018427387904 * 2"),
           "-9223372036854775808|-9223372036854775808|-9223372036854775808|-9223372036854775808|-9223372036854775808");
  T_EQ_STR(ev("-(-9223372036854775807 - 1)"),
           "-9223372036854775808|-9223372036854775808|-9223372036854775808|-9223372036854775808|-9223372036854775808");
  T_EQ_STR(ev("(-9223372036854775807 - 1) % -1"), "0|0|0|0|0");
  T_EQ_STR(ev("(-9223372036854775807 - 1 + signal * 0) % (signal * 0 - 1)"), "0|0|NULL|0|0");
  /* refused */
  T_EQ_STR(cerr("device + 1"), "cannot apply '+' to string and int: (device + 1)");
  T_EQ_INT(errcode, TIDE_EINVAL);
  T_EQ_STR(cerr("b * 2"), "cannot apply '*' to bool and int: (b * 2)");
  T_EQ_STR(cerr("j - 1"), "cannot apply '-' to json and int: (j - 1)");
  T_EQ_STR(cerr("ts + 1000"),
           "timestamp arithmetic is not supported: (ts + 1000) (compare timestamps, or CAST(ts AS int) for ms)");
  T_EQ_STR(cerr("ts - ts"),
           "timestamp arithmetic is not supported: (ts - ts) (compare timestamps, or CAST(ts AS int) for ms)");
  T_EQ_STR(cerr("-device"), "cannot negate string: (- device)");
  T_EQ_STR(cerr("+device"), "cannot apply '+' to string: device");
}

static void test_comparisons(void) {
  T_EQ_STR(ev("signal >= 15"), "false|true|NULL|false|false");
  T_EQ_STR(ev("signal > 10"), "false|true|NULL|false|false");
  T_EQ_STR(ev("signal < 10"), "false|false|NULL|true|true");
  T_EQ_STR(ev("signal <= 10"), "true|false|NULL|true|true");
  T_EQ_STR(ev("signal = 10"), "true|false|NULL|false|false");
  T_EQ_STR(ev("signal == 10"), "true|false|NULL|false|false");
  T_EQ_STR(ev("signal != 10"), "false|true|NULL|true|true");
  T_EQ_STR(ev("signal <> 10"), "false|true|NULL|true|true");
  T_EQ_STR(ev("15 <= signal"), "false|true|NULL|false|false"); /* constant on the left */
  T_EQ_STR(ev("10 > signal"), "false|false|NULL|true|true");
  T_EQ_STR(ev("signal = signal"), "true|true|NULL|true|true");
  T_EQ_STR(ev("signal < x"), "false|false|NULL|true|true"); /* int with double; NaN above all */
  T_EQ_STR(ev("x >= 0"), "true|false|NULL|true|true");
  T_EQ_STR(ev("x = x"), "true|true|NULL|true|true"); /* NaN = NaN as in Spark */
  T_EQ_STR(ev("x > 1e308"), "false|false|NULL|false|true");
  T_EQ_STR(ev("x < 1.5"), "false|true|NULL|true|false");
  T_EQ_STR(ev("10 = 10.0"), "true|true|true|true|true");
  T_EQ_STR(ev("device = 'a'"), "true|false|NULL|false|false");
  T_EQ_STR(ev("device < 'b'"), "true|true|NULL|false|true"); /* bytewise: 'B' < 'a' < 'b' */
  T_EQ_STR(ev("'b' > device"), "true|true|NULL|false|true");
  T_EQ_STR(ev("device >= 'hello'"), "false|false|NULL|true|false");
  T_EQ_STR(ev("device != ''"), "true|true|NULL|true|false");
  T_EQ_STR(ev("device = device"), "true|true|NULL|true|true");
  T_EQ_STR(ev("b = TRUE"), "true|false|NULL|true|false");
  T_EQ_STR(ev("b < TRUE"), "false|true|NULL|false|true");
  T_EQ_STR(ev("b != b"), "false|false|NULL|false|false");
  T_EQ_STR(ev("j = k"), "true|false|NULL|true|true");
  T_EQ_STR(ev("j != k"), "false|true|NULL|false|false");
  T_EQ_STR(ev("signal = NULL"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(type_of("signal = NULL"), "bool?");
  T_EQ_STR(ev("NULL = NULL"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(type_of("signal > 1"), "bool?");
  T_EQ_STR(type_of("ts > 1"), "bool");
  /* refused */
  T_EQ_STR(cerr("device = 3"), "cannot compare string with int: (device = 3)");
  T_EQ_INT(errcode, TIDE_EINVAL);
  T_EQ_STR(cerr("3 = device"), "cannot compare int with string: (3 = device)");
  T_EQ_STR(cerr("b = 1"), "cannot compare bool with int: (b = 1)");
  T_EQ_STR(cerr("device = b"), "cannot compare string with bool: (device = b)");
  T_EQ_STR(cerr("j = device"), "cannot compare json with string: (j = device)");
  T_EQ_STR(cerr("j < k"), "json values only compare with = and !=: (j < k)");
  T_EQ_STR(cerr("ts = device"), "cannot compare timestamp with string: (ts = device)");
  T_EQ_STR(cerr("device = ts"), "cannot compare string with timestamp: (device = ts)");
  T_EQ_STR(cerr("ts = x"), "cannot compare timestamp with double: (ts = x)");
  T_EQ_STR(cerr("ts < TRUE"), "cannot compare timestamp with bool: (ts < TRUE)");
  T_EQ_STR(cerr("signal < 1 < 2"), "at position 12: unexpected '<'");
  T_EQ_INT(errcode, TIDE_EPARSE);
}

static void test_timestamps(void) {
  /* 1700000000000 is 2023-11-14T22:13:20Z */
  T_EQ_STR(ev("ts >= '2023-11-14T22:13:22Z'"), "false|false|true|true|true");
  T_EQ_STR(ev("ts > '2023-11-14 22:13:21'"), "false|false|true|true|true");
  T_EQ_STR(ev("'2023-11-14T22:13:21.000Z' = ts"), "false|true|false|false|false");
  T_EQ_STR(ev("ts < '2023-11-14T23:13:22+01:00'"), "true|true|false|false|false");
  T_EQ_STR(ev("ts > '2023-11-14'"), "true|true|true|true|true");
  T_EQ_STR(ev("ts >= 1700000003000"), "false|false|false|true|true");
  T_EQ_STR(ev("ts = signal"), "false|false|NULL|false|false");
  T_EQ_STR(ev("ts = ts"), "true|true|true|true|true");
  T_EQ_STR(ev("ts BETWEEN '2023-11-14T22:13:21Z' AND '2023-11-14T22:13:23Z'"), "false|true|true|true|false");
  T_EQ_STR(ev("ts IN ('2023-11-14T22:13:20Z', 1700000004000)"), "true|false|false|false|true");
  T_EQ_STR(ev("ts = NULL"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("ts > concat('2023-11-14', 'T22:13:22Z')"), "false|false|false|true|true"); /* folded */
  T_EQ_STR(cerr("ts > '2023-13-01'"), "invalid timestamp '2023-13-01': (ts > '2023-13-01')");
  T_EQ_INT(errcode, TIDE_EINVAL);
  T_EQ_STR(cerr("ts > 'yesterday'"), "invalid timestamp 'yesterday': (ts > 'yesterday')");
  T_EQ_STR(ev("CAST(ts AS string)"), "2023-11-14T22:13:20Z|2023-11-14T22:13:21Z|2023-11-14T22:13:22Z|"
                                     "2023-11-14T22:13:23Z|2023-11-14T22:13:24Z");
  T_EQ_STR(ev("CAST(ts AS int) - 1700000000000"), "0|1000|2000|3000|4000");
  T_EQ_STR(ev("CAST(1700000000250 AS timestamp)"),
           "1700000000250|1700000000250|1700000000250|1700000000250|1700000000250");
  T_EQ_STR(ev("CAST(CAST(1700000000250 AS timestamp) AS string)"),
           "2023-11-14T22:13:20.250Z|2023-11-14T22:13:20.250Z|2023-11-14T22:13:20.250Z|"
           "2023-11-14T22:13:20.250Z|2023-11-14T22:13:20.250Z");
  T_EQ_STR(ev("CAST('2023-11-14T22:13:20Z' AS timestamp) = ts"), "true|false|false|false|false");
  T_EQ_STR(ev("CAST(device AS timestamp)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("CAST(' 1970-01-01 00:00:01 ' AS timestamp)"), "1000|1000|1000|1000|1000");
}

static void test_logic(void) {
  /* the complete truth tables over {true, false, NULL} x {true, false, NULL} */
  tide_schema_t *s = schema("p bool?, q bool?");
  tide_batch_t *b = tide_batch_new(s, 9);
  tide_schema_unref(s);
  for (int i = 0; i < 9; i++) {
    tide_batch_row_begin(b);
    if (i / 3 < 2) tide_batch_set_bool(b, 0, i / 3 == 0);
    if (i % 3 < 2) tide_batch_set_bool(b, 1, i % 3 == 0);
    tide_batch_row_commit(b);
  }
  /* rows: TT TF TN FT FF FN NT NF NN */
  T_EQ_STR(evb("p AND q", b), "true|false|NULL|false|false|false|NULL|false|NULL");
  T_EQ_STR(evb("p OR q", b), "true|true|true|true|false|NULL|true|NULL|NULL");
  T_EQ_STR(evb("NOT p", b), "false|false|false|true|true|true|NULL|NULL|NULL");
  T_EQ_STR(evb("p IS NULL", b), "false|false|false|false|false|false|true|true|true");
  T_EQ_STR(evb("p IS NOT NULL", b), "true|true|true|true|true|true|false|false|false");
  T_EQ_STR(evb("p = q", b), "true|false|NULL|false|true|NULL|NULL|NULL|NULL");
  T_EQ_STR(evb("p AND NULL", b), "NULL|NULL|NULL|false|false|false|NULL|NULL|NULL");
  T_EQ_STR(evb("p OR NULL", b), "true|true|true|NULL|NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(evb("NULL AND FALSE", b), "false|false|false|false|false|false|false|false|false");
  T_EQ_STR(evb("NULL OR TRUE", b), "true|true|true|true|true|true|true|true|true");
  T_EQ_STR(evb("NOT NULL", b), "NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(evb("p AND TRUE", b), "true|true|true|false|false|false|NULL|NULL|NULL");
  T_EQ_STR(evb("NOT NOT p", b), "true|true|true|false|false|false|NULL|NULL|NULL");
  T_EQ_STR(evb("p OR q AND FALSE", b), "true|true|true|false|false|false|NULL|NULL|NULL"); /* AND binds tighter */
  T_EQ_STR(evb("NOT p = q", b), "false|true|NULL|true|false|NULL|NULL|NULL|NULL");         /* NOT (p = q) */
  tide_batch_free(b);
  T_EQ_STR(ev("signal > 0 AND b"), "true|false|NULL|false|false");
  T_EQ_STR(ev("signal > 0 OR b"), "true|true|NULL|true|false");
  T_EQ_STR(ev("signal IS NULL"), "false|false|true|false|false");
  T_EQ_STR(ev("device IS NOT NULL"), "true|true|false|true|true");
  T_EQ_STR(ev("j IS NULL"), "false|false|true|false|false");
  T_EQ_STR(ev("NULL IS NULL"), "true|true|true|true|true");
  T_EQ_STR(ev("(signal / 0) IS NULL"), "true|true|true|true|true");
  T_EQ_STR(type_of("signal IS NULL"), "bool");
  T_EQ_STR(type_of("b AND TRUE"), "bool?");
  T_EQ_STR(cerr("signal AND b"), "AND needs bool operands, got int: (signal AND b)");
  T_EQ_STR(cerr("NOT device"), "NOT needs bool operands, got string: (NOT device)");
  T_EQ_STR(cerr("b OR 1"), "OR needs bool operands, got int: (b OR 1)");
}

static void test_in_between(void) {
  T_EQ_STR(ev("signal IN (10, 0)"), "true|false|NULL|false|true");
  T_EQ_STR(ev("signal NOT IN (10, 0)"), "false|true|NULL|true|false");
  T_EQ_STR(ev("signal IN (10, NULL)"), "true|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("signal NOT IN (10, NULL)"), "false|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("signal IN (NULL)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("signal IN (1.5 * 2, 20.0, -7)"), "false|true|NULL|true|false");
  T_EQ_STR(ev("signal IN (signal, 1)"), "true|true|NULL|true|true");
  T_EQ_STR(ev("device IN ('a', 'hello')"), "true|false|NULL|true|false");
  T_EQ_STR(ev("b IN (TRUE)"), "true|false|NULL|true|false");
  T_EQ_STR(ev("NULL IN (1, 2)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("1 IN (1, NULL)"), "true|true|true|true|true");
  T_EQ_STR(ev("2 IN (1, NULL)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("3 IN (signal, 3)"), "true|true|true|true|true");
  T_EQ_STR(ev("x IN (1.5, 0)"), "true|false|NULL|true|false");
  T_EQ_STR(ev("signal BETWEEN 0 AND 10"), "true|false|NULL|false|true");
  T_EQ_STR(ev("signal NOT BETWEEN 0 AND 10"), "false|true|NULL|true|false");
  T_EQ_STR(ev("signal BETWEEN -10 AND 1.5"), "false|false|NULL|true|true");
  T_EQ_STR(ev("signal BETWEEN 0 + 1 AND 5 * 4"), "true|true|NULL|false|false");
  T_EQ_STR(ev("signal BETWEEN NULL AND 5"), "false|false|NULL|NULL|NULL"); /* (x >= NULL) AND (x <= 5) */
  T_EQ_STR(ev("device BETWEEN 'a' AND 'z'"), "true|false|NULL|true|false");
  T_EQ_STR(ev("signal BETWEEN 0 AND 10 AND b"), "true|false|NULL|false|false");
  T_EQ_STR(cerr("device IN ('a', 1)"), "cannot compare string with int: (device IN ('a', 1))");
  T_EQ_STR(cerr("j IN (k)"), "json values only compare with = and !=: (j IN (k))");
  T_EQ_STR(cerr("signal BETWEEN 'a' AND 2"), "cannot compare int with string: (signal BETWEEN 'a' AND 2)");
  T_EQ_STR(cerr("signal IN ()"), "at position 8: IN needs at least one value");
  T_EQ_STR(cerr("signal IN 1"), "at position 11: expected '('");
  T_EQ_STR(cerr("signal BETWEEN 1 OR 2"), "at position 18: expected AND");
}

static void test_like(void) {
  T_EQ_STR(ev("device LIKE 'a'"), "true|false|NULL|false|false");
  T_EQ_STR(ev("device LIKE 'h%'"), "false|false|NULL|true|false");
  T_EQ_STR(ev("device LIKE '%o'"), "false|false|NULL|true|false");
  T_EQ_STR(ev("device LIKE '%ll%'"), "false|false|NULL|true|false");
  T_EQ_STR(ev("device LIKE '%'"), "true|true|NULL|true|true");
  T_EQ_STR(ev("device LIKE '_'"), "true|false|NULL|false|false");
  T_EQ_STR(ev("device LIKE 'B_'"), "false|true|NULL|false|false"); /* _ is one character (é: 2 bytes) */
  T_EQ_STR(ev("device LIKE '__'"), "false|true|NULL|false|false");
  T_EQ_STR(ev("device LIKE 'h_l%o'"), "false|false|NULL|true|false");
  T_EQ_STR(ev("device LIKE '%l_o'"), "false|false|NULL|true|false");
  T_EQ_STR(ev("device LIKE ''"), "false|false|NULL|false|true");
  T_EQ_STR(ev("device NOT LIKE 'h%'"), "true|true|NULL|false|true");
  T_EQ_STR(ev("device LIKE NULL"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("device LIKE device"), "true|true|NULL|true|true"); /* a per-row pattern */
  T_EQ_STR(ev("'a_c' LIKE concat(device, '%')"), "true|false|NULL|false|true");
  T_EQ_STR(ev("'50%' LIKE '50\\%'"), "true|true|true|true|true");
  T_EQ_STR(ev("'500' LIKE '50\\%'"), "false|false|false|false|false");
  T_EQ_STR(ev("'a_b' LIKE 'a\\_b'"), "true|true|true|true|true");
  T_EQ_STR(ev("'axb' LIKE 'a\\_b'"), "false|false|false|false|false");
  T_EQ_STR(ev("'a\\b' LIKE 'a\\\\b'"), "true|true|true|true|true");
  T_EQ_STR(ev("'a\\' LIKE 'a\\'"), "true|true|true|true|true"); /* a trailing \ is literal */
  T_EQ_STR(ev("'aaa' LIKE '%a%a%a%'"), "true|true|true|true|true");
  T_EQ_STR(ev("'aa' LIKE '%a%a%a%'"), "false|false|false|false|false");
  T_EQ_STR(ev("'abcabd' LIKE '%ab_'"), "true|true|true|true|true");
  T_EQ_STR(ev("'ABC' LIKE 'abc'"), "false|false|false|false|false"); /* case-sensitive */
  T_EQ_STR(ev("'\xe6\x97\xa5\xe6\x9c\xac' LIKE '_\xe6\x9c\xac'"), "true|true|true|true|true");
  T_EQ_STR(ev("'\xe6\x97\xa5\xe6\x9c\xac' LIKE '%_%_%_%'"), "false|false|false|false|false");
  T_EQ_STR(ev("'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab' LIKE '%a%a%a%a%a%a%a%a%a%c'"),
           "false|false|false|false|false");
  T_EQ_STR(cerr("signal LIKE '1%'"), "LIKE needs strings, got int: (signal LIKE '1%')");
}

static void test_case_coalesce(void) {
  T_EQ_STR(ev("CASE WHEN signal > 15 THEN 'hi' WHEN signal > 5 THEN 'mid' ELSE 'lo' END"), "mid|hi|lo|lo|lo");
  T_EQ_STR(ev("CASE WHEN signal > 15 THEN 'hi' WHEN signal > 5 THEN 'mid' END"), "mid|hi|NULL|NULL|NULL");
  T_EQ_STR(ev("CASE WHEN b THEN signal ELSE x END"), "10|-2.5|NULL|-7|nan");
  T_EQ_STR(type_of("CASE WHEN b THEN signal ELSE x END"), "double?");
  T_EQ_STR(ev("CASE WHEN b THEN 1 ELSE NULL END"), "1|NULL|NULL|1|NULL");
  T_EQ_STR(type_of("CASE WHEN b THEN 1 ELSE NULL END"), "int?");
  T_EQ_STR(type_of("CASE WHEN b THEN 1 ELSE 2 END"), "int");
  T_EQ_STR(type_of("CASE WHEN b THEN 1 END"), "int?");
  T_EQ_STR(ev("CASE WHEN NULL THEN 1 WHEN TRUE THEN 2 END"), "2|2|2|2|2");
  T_EQ_STR(ev("CASE WHEN b THEN NULL END"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("CASE signal WHEN 10 THEN 'ten' WHEN 20 THEN 'twenty' ELSE 'other' END"),
           "ten|twenty|other|other|other");
  T_EQ_STR(ev("CASE signal WHEN 10.0 THEN 'ten' WHEN NULL THEN 'null' END"), "ten|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("CASE device WHEN 'a' THEN ts END"), "1700000000000|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("CASE j WHEN k THEN 'same' ELSE 'diff' END"), "same|diff|diff|same|same");
  T_EQ_STR(ev("case when b then device else 'x' end"), "a|x|x|hello|x");
  T_EQ_STR(ev("CASE WHEN signal > 0 THEN signal / 0 ELSE 1 END"), "NULL|NULL|1|1|1");
  T_EQ_STR(cerr("CASE WHEN b THEN 1 ELSE 'x' END"),
           "CASE branches have incompatible types: int and string: CASE WHEN b THEN 1 ELSE 'x' END");
  T_EQ_STR(cerr("CASE WHEN signal THEN 1 END"), "CASE WHEN needs a bool condition, got int: CASE WHEN signal THEN 1 END");
  T_EQ_STR(cerr("CASE signal WHEN 'a' THEN 1 END"), "cannot compare int with string: CASE signal WHEN 'a' THEN 1 END");
  T_EQ_STR(cerr("CASE END"), "at position 6: expected WHEN");
  T_EQ_STR(cerr("CASE WHEN b 1 END"), "at position 13: expected THEN");
  T_EQ_STR(cerr("CASE WHEN b THEN 1"), "at position 19: expected WHEN, ELSE or END");
  T_EQ_STR(cerr("CASE WHEN b THEN 1 ELSE 2"), "at position 26: expected END");
  T_EQ_STR(ev("coalesce(signal, 0)"), "10|20|0|-7|0");
  T_EQ_STR(type_of("coalesce(signal, 0)"), "int");
  T_EQ_STR(ev("coalesce(signal, x, -1)"), "10|20|-1|-7|0");
  T_EQ_STR(type_of("coalesce(signal, x)"), "double?");
  T_EQ_STR(ev("coalesce(NULL, device, 'none')"), "a|B\xc3\xa9|none|hello|");
  T_EQ_STR(ev("coalesce(j, k)"), "{\"a\":1}|[1]|NULL|{\"a\":1}|\"x\"");
  T_EQ_STR(ev("coalesce(NULL, NULL)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("coalesce(signal)"), "10|20|NULL|-7|0");
  T_EQ_STR(cerr("coalesce(signal, 'x')"),
           "coalesce arguments have incompatible types: int and string: coalesce(signal, 'x')");
  T_EQ_STR(cerr("coalesce(j, device)"), "coalesce arguments have incompatible types: json and string: coalesce(j, device)");
}

static void test_cast(void) {
  T_EQ_STR(ev("CAST(signal AS double)"), "10|20|NULL|-7|0");
  T_EQ_STR(type_of("CAST(signal AS double)"), "double?");
  T_EQ_STR(ev("CAST(signal AS string)"), "10|20|NULL|-7|0");
  T_EQ_STR(ev("CAST(signal AS bool)"), "true|true|NULL|true|false");
  T_EQ_STR(ev("CAST(signal AS timestamp)"), "10|20|NULL|-7|0");
  T_EQ_STR(ev("CAST(signal AS int)"), "10|20|NULL|-7|0");
  T_EQ_STR(ev("CAST(signal AS bigint)"), "10|20|NULL|-7|0");
  T_EQ_STR(ev("CAST(x AS int)"), "1|-2|NULL|0|0"); /* truncates; NaN -> 0 */
  T_EQ_STR(ev("CAST(1e300 AS int)"), "9223372036854775807|9223372036854775807|9223372036854775807|"
                                     "9223372036854775807|9223372036854775807");
  T_EQ_STR(ev("CAST(x AS string)"), "1.5|-2.5|NULL|0.0|NaN");
  T_EQ_STR(ev("CAST(x AS bool)"), "true|true|NULL|false|true");
  T_EQ_STR(ev("CAST(x * 1000 AS timestamp)"), "1500|-2500|NULL|0|NULL");
  T_EQ_STR(type_of("CAST(x AS timestamp)"), "timestamp?");
  T_EQ_STR(ev("CAST(b AS int)"), "1|0|NULL|1|0");
  T_EQ_STR(ev("CAST(b AS double)"), "1|0|NULL|1|0");
  T_EQ_STR(ev("CAST(b AS string)"), "true|false|NULL|true|false");
  T_EQ_STR(ev("CAST(j AS string)"), "{\"a\":1}|[1]|NULL|{\"a\":1}|\"x\"");
  T_EQ_STR(ev("CAST(ts AS double)"), "1700000000000|1700000001000|1700000002000|1700000003000|1700000004000");
  T_EQ_STR(ev("CAST(device AS int)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(type_of("CAST(device AS int)"), "int?");
  T_EQ_STR(type_of("CAST('1' AS int)"), "int");
  T_EQ_STR(ev("CAST(' 42 ' AS int)"), "42|42|42|42|42");
  T_EQ_STR(ev("CAST('-12.9' AS int)"), "-12|-12|-12|-12|-12");
  T_EQ_STR(ev("CAST('12a' AS int)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("CAST('9223372036854775808' AS int)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("CAST('-9223372036854775808' AS int)"),
           "-9223372036854775808|-9223372036854775808|-9223372036854775808|-9223372036854775808|-9223372036854775808");
  T_EQ_STR(ev("CAST('' AS int)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("CAST('1e3' AS double)"), "1000|1000|1000|1000|1000");
  T_EQ_STR(ev("CAST(' -2.5 ' AS double)"), "-2.5|-2.5|-2.5|-2.5|-2.5");
  T_EQ_STR(ev("CAST('0x10' AS double)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("CAST('abc' AS double)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("CAST('Yes' AS bool)"), "true|true|true|true|true");
  T_EQ_STR(ev("CAST('f' AS boolean)"), "false|false|false|false|false");
  T_EQ_STR(ev("CAST('maybe' AS bool)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("CAST(device AS string)"), "a|B\xc3\xa9|NULL|hello|");
  T_EQ_STR(ev("CAST(NULL AS int)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(type_of("CAST(NULL AS double)"), "double?");
  T_EQ_STR(ev("CAST(1.0E7 AS string)"), "1.0E7|1.0E7|1.0E7|1.0E7|1.0E7");
  T_EQ_STR(ev("CAST(0.001 AS string)"), "0.001|0.001|0.001|0.001|0.001");
  T_EQ_STR(ev("CAST(0.0001 AS string)"), "1.0E-4|1.0E-4|1.0E-4|1.0E-4|1.0E-4");
  T_EQ_STR(ev("CAST(123456.789 AS string)"), "123456.789|123456.789|123456.789|123456.789|123456.789");
  T_EQ_STR(ev("CAST(0.1 + 0.2 AS string)"),
           "0.30000000000000004|0.30000000000000004|0.30000000000000004|0.30000000000000004|0.30000000000000004");
  T_EQ_STR(ev("CAST(-1e21 AS string)"), "-1.0E21|-1.0E21|-1.0E21|-1.0E21|-1.0E21");
  T_EQ_STR(ev("CAST(1.0 / 0 AS string)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(cerr("CAST(b AS timestamp)"), "cannot cast bool to timestamp: CAST(b AS timestamp)");
  T_EQ_STR(cerr("CAST(ts AS bool)"), "cannot cast timestamp to bool: CAST(ts AS bool)");
  T_EQ_STR(cerr("CAST(j AS int)"), "cannot cast json to int: CAST(j AS int)");
  T_EQ_STR(cerr("CAST(device AS json)"), "cannot cast string to json: CAST(device AS json)");
  T_EQ_STR(cerr("CAST(signal AS number)"), "at position 16: unknown type 'number'");
  T_EQ_STR(cerr("CAST(signal int)"), "at position 13: expected AS");
  T_EQ_STR(cerr("CAST(signal AS int"), "at position 19: expected ')'");
  T_EQ_STR(cerr("CAST signal"), "at position 6: expected '('");
}

static void test_functions(void) {
  T_EQ_STR(ev("lower(device)"), "a|b\xc3\xa9|NULL|hello|");
  T_EQ_STR(ev("upper(device)"), "A|B\xc3\xa9|NULL|HELLO|");
  T_EQ_STR(ev("LOWER('MiXeD 1')"), "mixed 1|mixed 1|mixed 1|mixed 1|mixed 1");
  T_EQ_STR(ev("length(device)"), "1|2|NULL|5|0");
  T_EQ_STR(type_of("length(device)"), "int?");
  T_EQ_STR(ev("length('\xe6\x97\xa5\xe6\x9c\xac')"), "2|2|2|2|2");
  T_EQ_STR(ev("substr('hello', 2)"), "ello|ello|ello|ello|ello");
  T_EQ_STR(ev("substr('hello', 0)"), "hello|hello|hello|hello|hello");
  T_EQ_STR(ev("substr('hello', 1, 2)"), "he|he|he|he|he");
  T_EQ_STR(ev("substr('hello', 0, 2)"), "he|he|he|he|he");
  T_EQ_STR(ev("substr('hello', -3)"), "llo|llo|llo|llo|llo");
  T_EQ_STR(ev("substr('hello', -3, 2)"), "ll|ll|ll|ll|ll");
  T_EQ_STR(ev("substr('hello', -7, 4)"), "he|he|he|he|he");
  T_EQ_STR(ev("substr('hello', -10, 3)"), "||||");
  T_EQ_STR(ev("substr('hello', 10)"), "||||");
  T_EQ_STR(ev("substr('hello', 2, -1)"), "||||");
  T_EQ_STR(ev("substr('hello', 2, 0)"), "||||");
  T_EQ_STR(ev("substr('hello', 3, 100)"), "llo|llo|llo|llo|llo");
  T_EQ_STR(ev("substr('h\xc3\xa9llo', 2, 2)"), "\xc3\xa9l|\xc3\xa9l|\xc3\xa9l|\xc3\xa9l|\xc3\xa9l");
  T_EQ_STR(ev("substr(device, 2)"), "|\xc3\xa9|NULL|ello|");
  T_EQ_STR(ev("substr(device, signal)"), "||NULL|hello|");
  T_EQ_STR(ev("substr(device, 1, NULL)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("substr('hello', 2, 9223372036854775807)"), "ello|ello|ello|ello|ello");
  T_EQ_STR(ev("substr('hello', -9223372036854775807, 9223372036854775807)"), "hello|hello|hello|hello|hello");
  T_EQ_STR(ev("concat(device, '-', signal)"), "a-10|B\xc3\xa9-20|NULL|hello--7|-0");
  T_EQ_STR(ev("concat('x', x, b, ts)"), "x1.5true2023-11-14T22:13:20Z|x-2.5false2023-11-14T22:13:21Z|NULL|"
                                        "x0.0true2023-11-14T22:13:23Z|xNaNfalse2023-11-14T22:13:24Z");
  T_EQ_STR(ev("concat(2.0, 'a')"), "2.0a|2.0a|2.0a|2.0a|2.0a");
  T_EQ_STR(ev("concat('a', NULL)"), "NULL|NULL|NULL|NULL|NULL");
  T_EQ_STR(ev("concat(device)"), "a|B\xc3\xa9|NULL|hello|");
  T_EQ_STR(ev("abs(signal)"), "10|20|NULL|7|0");
  T_EQ_STR(ev("abs(x)"), "1.5|2.5|NULL|0|nan");
  T_EQ_STR(ev("abs(-9223372036854775807 - 1)"),
           "-9223372036854775808|-9223372036854775808|-9223372036854775808|-9223372036854775808|-9223372036854775808");
  T_EQ_STR(ev("round(2.5)"), "3|3|3|3|3");
  T_EQ_STR(ev("round(-2.5)"), "-3|-3|-3|-3|-3");
  T_EQ_STR(ev("round(x)"), "2|-3|NULL|0|nan");
  T_EQ_STR(type_of("round(x)"), "double?");
  T_EQ_STR(ev("round(2.675, 2)"), "2.6800000000000002|2.6800000000000002|2.6800000000000002|2.6800000000000002|"
                                  "2.6800000000000002");
  T_EQ_STR(ev("round(1.005, 2)"), "1.01|1.01|1.01|1.01|1.01");
  T_EQ_STR(ev("round(-1.005, 2)"), "-1.01|-1.01|-1.01|-1.01|-1.01");
  T_EQ_STR(ev("round(1234.5678, -2)"), "1200|1200|1200|1200|1200");
  T_EQ_STR(ev("round(0.0004, 3)"), "0|0|0|0|0");
  T_EQ_STR(ev("round(0.0005, 3)"), "0.001|0.001|0.001|0.001|0.001");
  T_EQ_STR(ev("round(9.995, 2)"), "10|10|10|10|10");
  T_EQ_STR(ev("round(1.5, 20)"), "1.5|1.5|1.5|1.5|1.5");
  T_EQ_STR(ev("round(signal)"), "10|20|NULL|-7|0");
  T_EQ_STR(type_of("round(signal)"), "int?");
  T_EQ_STR(ev("round(125, -1)"), "130|130|130|130|130");
  T_EQ_STR(ev("round(-125, -1)"), "-130|-130|-130|-130|-130");
  T_EQ_STR(ev("round(124, -1)"), "120|120|120|120|120");
  T_EQ_STR(ev("round(signal, -1)"), "10|20|NULL|-10|0");
  T_EQ_STR(ev("round(123, 2)"), "123|123|123|123|123");
  T_EQ_STR(ev("floor(x)"), "1|-3|NULL|0|0");
  T_EQ_STR(type_of("floor(x)"), "int?");
  T_EQ_STR(ev("ceil(x)"), "2|-2|NULL|0|0");
  T_EQ_STR(ev("floor(signal)"), "10|20|NULL|-7|0");
  T_EQ_STR(ev("ceil(1e300)"), "9223372036854775807|9223372036854775807|9223372036854775807|9223372036854775807|"
                              "9223372036854775807");
  T_EQ_STR(ev("Upper(Lower('AbC'))"), "ABC|ABC|ABC|ABC|ABC");
  /* refused */
  T_EQ_STR(cerr("lowr(device)"), "unknown function 'lowr' (functions: abs, ceil, coalesce, concat, floor, length, "
                                 "lower, round, substr, upper)");
  T_EQ_INT(errcode, TIDE_EINVAL);
  T_EQ_STR(cerr("substr(device)"), "function 'substr' takes 2 or 3 arguments, got 1");
  T_EQ_STR(cerr("lower(device, 1)"), "function 'lower' takes 1 argument, got 2");
  T_EQ_STR(cerr("concat()"), "function 'concat' takes at least 1 argument, got 0");
  T_EQ_STR(cerr("lower(signal)"), "function 'lower' needs a string, got int: lower(signal)");
  T_EQ_STR(cerr("length(j)"), "function 'length' needs a string, got json: length(j)");
  T_EQ_STR(cerr("substr(device, 1.5)"), "function 'substr' needs int positions, got double: substr(device, 1.5)");
  T_EQ_STR(cerr("abs(device)"), "function 'abs' needs a number, got string: abs(device)");
  T_EQ_STR(cerr("round(x, signal)"), "function 'round' needs an int constant for its scale: round(x, signal)");
  T_EQ_STR(cerr("concat(j, 'a')"), "function 'concat' cannot take json: concat(j, 'a') (CAST it to string)");
  T_EQ_STR(cerr("lower(device"), "at position 13: expected ')'");
  T_EQ_STR(cerr("lower(device,)"), "at position 14: unexpected ')'");
}

static void test_json_refusals(void) {
  T_EQ_STR(cerr("j > k"), "json values only compare with = and !=: (j > k)");
  T_EQ_STR(cerr("j LIKE 'a'"), "LIKE needs strings, got json: (j LIKE 'a')");
  T_EQ_STR(cerr("upper(j)"), "function 'upper' needs a string, got json: upper(j)");
  T_EQ_STR(cerr("j BETWEEN k AND k"), "json values only compare with = and !=: (j BETWEEN k AND k)");
  T_EQ_STR(cerr("j AND b"), "AND needs bool operands, got json: (j AND b)");
  T_EQ_STR(cerr("j = '{}'"), "cannot compare json with string: (j = '{}')");
  T_EQ_STR(cerr_f("min(j)", TIDE_EXPR_AGG), "min needs a comparable value, got json");
  T_EQ_STR(cerr_f("sum(j)", TIDE_EXPR_AGG), "sum needs a number, got json");
  T_EQ_STR(ev("j IS NOT NULL"), "true|true|false|true|true");
}

static void test_names(void) {
  T_EQ_STR(name_of("signal"), "signal");
  T_EQ_STR(textbuf, "signal");
  T_EQ_STR(name_of("signal * 2"), "(signal * 2)");
  T_EQ_STR(name_of("signal*2"), "(signal * 2)");
  T_EQ_STR(name_of("signal >= 15"), "(signal >= 15)");
  T_EQ_STR(name_of("(signal * 2) + 1"), "((signal * 2) + 1)");
  T_EQ_STR(name_of("signal * 2 + 1 AS y"), "y");
  T_EQ_STR(textbuf, "((signal * 2) + 1)");
  T_EQ_STR(name_of("signal AS s"), "s");
  T_EQ_STR(textbuf, "signal");
  T_EQ_STR(name_of("signal as `my col`"), "my col");
  T_EQ_STR(name_of("LOWER(device)"), "lower(device)");
  T_EQ_STR(name_of("cast(signal as DOUBLE)"), "CAST(signal AS double)");
  T_EQ_STR(name_of("cast(signal as float)"), "CAST(signal AS double)");
  T_EQ_STR(name_of("count(*)"), "count(*)");
  T_EQ_STR(name_of("avg(signal)"), "avg(signal)");
  T_EQ_STR(name_of("COUNT(distinct device)"), "count(DISTINCT device)");
  T_EQ_STR(name_of("count_distinct(device)"), "count_distinct(device)");
  T_EQ_STR(name_of("sum(signal * 2) AS total"), "total");
  T_EQ_STR(textbuf, "sum((signal * 2))");
  T_EQ_STR(name_of("signal == 1 and not b or device <> 'x'"), "(((signal = 1) AND (NOT b)) OR (device != 'x'))");
  T_EQ_STR(name_of("signal is not null"), "(signal IS NOT NULL)");
  T_EQ_STR(name_of("signal not in (1, 2)"), "(signal NOT IN (1, 2))");
  T_EQ_STR(name_of("signal between 1 and 2"), "(signal BETWEEN 1 AND 2)");
  T_EQ_STR(name_of("device not like 'a%'"), "(device NOT LIKE 'a%')");
  T_EQ_STR(name_of("case when b then 'it''s' else null end"), "CASE WHEN b THEN 'it''s' ELSE NULL END");
  T_EQ_STR(name_of("case signal when 1 then true end"), "CASE signal WHEN 1 THEN TRUE END");
  T_EQ_STR(name_of("signal + x"), "(signal + x)"); /* implicit casts do not show */
  T_EQ_STR(name_of("-signal"), "(- signal)");
  T_EQ_STR(name_of("-5 + 1e3"), "(-5 + 1000.0)");
  T_EQ_STR(name_of("1.5"), "1.5");
  T_EQ_STR(name_of("substr(device, 1, 2)"), "substr(device, 1, 2)");
  T_EQ_STR(name_of("ts > '2024-01-01'"), "(ts > '2024-01-01')");
  /* the canonical text compiles to the same text */
  const char *texts[] = {"signal * 2 + 1", "NOT b OR signal IN (1, NULL)", "case when b then x else -1.5 end",
                         "device not like '%a_' and length(device) between 1 and 3", "cast(ts as string)"};
  for (size_t k = 0; k < sizeof texts / sizeof texts[0]; k++) {
    char once[256];
    name_of(texts[k]);
    snprintf(once, sizeof once, "%s", textbuf);
    name_of(once);
    T_EQ_STR(textbuf, once);
  }
  /* keywords as column names need quotes, and print with them */
  tide_schema_t *s = schema("end int, count int");
  tide_err_t err = {0, ""};
  tide_expr_t *e = NULL;
  T_EQ_INT(tide_expr_compile("`end` + count", 13, s, 0, &e, &err), 0);
  if (e) T_EQ_STR(tide_expr_text(e), "(`end` + count)");
  tide_expr_free(e);
  T_EQ_INT(tide_expr_compile("end + 1", 7, s, 0, &e, &err), TIDE_EPARSE);
  T_EQ_STR(err.msg, "at position 1: unexpected 'end'");
  tide_schema_unref(s);
  /* names that are not identifiers (Spark-style output names) are quoted too */
  s = schema("`avg(signal)` double, `my col` int");
  T_CHECK(s != NULL);
  if (s) {
    T_EQ_INT(tide_expr_compile("`avg(signal)` * 2 + \"my col\"", 28, s, 0, &e, &err), 0);
    if (e) T_EQ_STR(tide_expr_text(e), "((`avg(signal)` * 2) + `my col`)");
    tide_expr_free(e);
    T_EQ_INT(tide_expr_compile("`my col`", 8, s, 0, &e, &err), 0);
    if (e) T_EQ_STR(tide_expr_name(e), "my col");
    tide_expr_free(e);
    tide_schema_unref(s);
  }
}

static void test_aggregates(void) {
  tide_err_t err = {0, ""};
  tide_expr_t *e = NULL;
  T_EQ_INT(tide_expr_compile("count(*)", 8, B->schema, TIDE_EXPR_AGG, &e, &err), 0);
  T_EQ_INT(tide_expr_agg(e), TIDE_AGG_COUNT_STAR);
  T_CHECK(tide_expr_agg_arg(e) == NULL);
  T_EQ_INT(tide_expr_type(e), TIDE_T_INT);
  T_EQ_INT(tide_expr_nullable(e), 0);
  T_EQ_INT(tide_expr_column(e), -1);
  tide_col_t c;
  T_EQ_INT(tide_expr_eval(e, B, &c, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "count(*) is an aggregate: evaluate its argument instead");
  tide_expr_free(e);

  const char *t = "sum(signal * 2) AS total";
  T_EQ_INT(tide_expr_compile(t, strlen(t), B->schema, TIDE_EXPR_AGG, &e, &err), 0);
  T_EQ_INT(tide_expr_agg(e), TIDE_AGG_SUM);
  T_EQ_STR(tide_expr_name(e), "total");
  const tide_expr_t *arg = tide_expr_agg_arg(e);
  T_CHECK(arg != NULL);
  if (arg) {
    T_EQ_STR(tide_expr_text(arg), "(signal * 2)");
    T_EQ_INT(tide_expr_agg(arg), TIDE_AGG_NONE);
    T_EQ_INT(tide_expr_eval(arg, B, &c, &err), 0);
    T_EQ_INT(tide_col_i64(&c, 1), 40);
    tide_col_free(&c);
  }
  tide_expr_free(e);

  T_EQ_INT(tide_expr_compile("max(device)", 11, B->schema, TIDE_EXPR_AGG, &e, &err), 0);
  T_EQ_INT(tide_expr_column(tide_expr_agg_arg(e)), 1);
  tide_expr_free(e);

  T_EQ_STR(type_of("count(signal)"), "int");
  T_EQ_STR(type_of("count(DISTINCT device)"), "int");
  T_EQ_STR(type_of("count_distinct(j)"), "int");
  T_EQ_STR(type_of("sum(signal)"), "int?");
  T_EQ_STR(type_of("sum(x)"), "double?");
  T_EQ_STR(type_of("avg(signal)"), "double?");
  T_EQ_STR(type_of("min(device)"), "string?");
  T_EQ_STR(type_of("max(ts)"), "timestamp?");
  T_EQ_STR(type_of("first(j)"), "json?");
  T_EQ_STR(type_of("last(b)"), "bool?");
  T_EQ_STR(type_of("(avg(x))"), "double?");
  struct { const char *kind; tide_agg_kind_t k; } kinds[] = {
      {"count(x)", TIDE_AGG_COUNT}, {"count(DISTINCT x)", TIDE_AGG_COUNT_DISTINCT},
      {"count_distinct(x)", TIDE_AGG_COUNT_DISTINCT}, {"sum(x)", TIDE_AGG_SUM}, {"min(x)", TIDE_AGG_MIN},
      {"max(x)", TIDE_AGG_MAX}, {"avg(x)", TIDE_AGG_AVG}, {"first(x)", TIDE_AGG_FIRST},
      {"last(x) as l", TIDE_AGG_LAST}, {"x", TIDE_AGG_NONE}};
  for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
    T_EQ_INT(tide_expr_compile(kinds[k].kind, strlen(kinds[k].kind), B->schema, TIDE_EXPR_AGG, &e, &err), 0);
    T_EQ_INT(tide_expr_agg(e), kinds[k].k);
    tide_expr_free(e);
  }
  T_EQ_STR(cerr("sum(signal)"), "aggregate function 'sum' is not allowed here");
  T_EQ_INT(errcode, TIDE_EINVAL);
  T_EQ_STR(cerr("count(*)"), "aggregate function 'count' is not allowed here");
  T_EQ_STR(cerr_f("sum(max(signal))", TIDE_EXPR_AGG), "aggregate function 'max' is not allowed here");
  T_EQ_STR(cerr_f("sum(signal) + 1", TIDE_EXPR_AGG), "aggregate function 'sum' is not allowed here");
  T_EQ_STR(cerr_f("1 + avg(signal)", TIDE_EXPR_AGG), "aggregate function 'avg' is not allowed here");
  T_EQ_STR(cerr_f("lower(min(device))", TIDE_EXPR_AGG), "aggregate function 'min' is not allowed here");
  T_EQ_STR(cerr_f("sum(device)", TIDE_EXPR_AGG), "sum needs a number, got string");
  T_EQ_STR(cerr_f("avg(b)", TIDE_EXPR_AGG), "avg needs a number, got bool");
  T_EQ_STR(cerr_f("sum(*)", TIDE_EXPR_AGG), "at position 5: unexpected '*'");
  T_EQ_STR(cerr_f("sum(signal, x)", TIDE_EXPR_AGG), "function 'sum' takes 1 argument, got 2");
  T_EQ_STR(cerr_f("count()", TIDE_EXPR_AGG), "function 'count' takes 1 argument, got 0");
  T_EQ_STR(cerr_f("sum(DISTINCT x)", TIDE_EXPR_AGG), "at position 5: unexpected 'DISTINCT'");
}

static void test_errors(void) {
  T_EQ_STR(cerr(""), "at position 1: unexpected end of expression");
  T_EQ_INT(errcode, TIDE_EPARSE);
  T_EQ_STR(cerr("   "), "at position 4: unexpected end of expression");
  T_EQ_STR(cerr("(1 + 2"), "at position 7: expected ')'");
  T_EQ_STR(cerr("signal >="), "at position 10: unexpected end of expression");
  T_EQ_STR(cerr("signal signal"), "at position 8: unexpected 'signal'");
  T_EQ_STR(cerr("signal # 2"), "at position 8: unexpected character '#'");
  T_EQ_STR(cerr("'h\xc3\xa9' = 'x' #"), "at position 12: unexpected character '#'"); /* characters, not bytes */
  T_EQ_STR(cerr("device = 'abc"), "at position 10: unterminated string");
  T_EQ_STR(cerr("`signal"), "at position 1: unterminated quoted name");
  T_EQ_STR(cerr("signal ! 2"), "at position 8: unexpected character '!'");
  T_EQ_STR(cerr("signal = \x01"), "at position 10: unexpected byte 0x01");
  T_EQ_STR(cerr("signal IS 1"), "at position 11: expected NULL");
  T_EQ_STR(cerr("signal AS"), "at position 10: expected a name after AS");
  T_EQ_STR(cerr("signal AS s t"), "at position 13: unexpected 't'");
  T_EQ_STR(cerr("(signal AS s)"), "at position 9: expected ')'");
  T_EQ_STR(cerr("NOT"), "at position 4: unexpected end of expression");
  T_EQ_STR(cerr("signal NOT 1"), "at position 8: unexpected 'NOT'");
  T_EQ_STR(cerr("sigal > 1"), "unknown column 'sigal' (columns: ts, device, signal, x, b, j, k)");
  T_EQ_INT(errcode, TIDE_EINVAL);
  tide_schema_t *s = schema("ts timestamp, device string, signal int");
  tide_err_t err = {0, ""};
  tide_expr_t *e = NULL;
  T_EQ_INT(tide_expr_compile("sigal", 5, s, 0, &e, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "unknown column 'sigal' (columns: ts, device, signal)");
  T_CHECK(e == NULL);
  T_EQ_INT(tide_expr_compile("Signal", 6, s, 0, &e, &err), TIDE_EINVAL); /* identifiers are case-sensitive */
  T_EQ_INT(tide_expr_compile("device = 3", 10, s, 0, &e, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "cannot compare string with int: (device = 3)");
  T_EQ_INT(tide_expr_compile("lower(device) AS d", 18, s, 0, &e, NULL), 0); /* err may be NULL */
  tide_expr_free(e);
  T_EQ_INT(tide_expr_compile("lower(", 6, s, 0, &e, NULL), TIDE_EPARSE);
  tide_schema_unref(s);
  /* nesting limits */
  char deep[4096];
  size_t n = 0;
  for (int i = 0; i < 300; i++) deep[n++] = '(';
  deep[n++] = '1';
  for (int i = 0; i < 300; i++) deep[n++] = ')';
  deep[n] = 0;
  T_EQ_STR(cerr(deep), "at position 257: expression nested too deeply");
  n = 0;
  for (int i = 0; i < 200; i++) deep[n++] = '(';
  deep[n++] = '1';
  for (int i = 0; i < 200; i++) deep[n++] = ')';
  deep[n] = 0;
  T_EQ_STR(cerr(deep), "OK");
  n = 0;
  for (int i = 0; i < 300; i++) n += (size_t)sprintf(deep + n, "- ");
  sprintf(deep + n, "signal");
  T_EQ_STR(cerr(deep), "at position 511: expression nested too deeply");
  n = 0;
  for (int i = 0; i < 300; i++) n += (size_t)sprintf(deep + n, "NOT ");
  sprintf(deep + n, "b");
  T_EQ_STR(cerr(deep), "at position 1021: expression nested too deeply");
  char *chain = malloc(8192);
  n = (size_t)sprintf(chain, "signal");
  for (int i = 0; i < 1200; i++) n += (size_t)sprintf(chain + n, "+1");
  T_EQ_STR(cerr(chain), "at position 2005: expression nested too deeply");
  n = (size_t)sprintf(chain, "signal IN (0");
  for (int i = 1; i < 1000; i++) n += (size_t)sprintf(chain + n, ",%d", i);
  sprintf(chain + n, ")");
  T_EQ_STR(cerr(chain), "OK"); /* a long IN list is wide, not deep */
  T_EQ_STR(ev(chain), "true|true|NULL|false|true");
  free(chain);
}

static void test_select(void) {
  uint32_t rows[8], n = 99;
  tide_err_t err = {0, ""};
  tide_expr_t *e = NULL;
  const char *t = "signal >= 10";
  T_EQ_INT(tide_expr_compile(t, strlen(t), B->schema, 0, &e, &err), 0);
  T_EQ_INT(tide_expr_select(e, B, rows, &n, &err), 0);
  T_EQ_INT(n, 2);
  T_EQ_INT(rows[0], 0);
  T_EQ_INT(rows[1], 1);
  tide_expr_free(e);
  t = "NOT (signal >= 10)"; /* NULL is dropped both ways */
  T_EQ_INT(tide_expr_compile(t, strlen(t), B->schema, 0, &e, &err), 0);
  T_EQ_INT(tide_expr_select(e, B, rows, &n, &err), 0);
  T_EQ_INT(n, 2);
  T_EQ_INT(rows[0], 3);
  T_EQ_INT(rows[1], 4);
  tide_expr_free(e);
  t = "TRUE";
  T_EQ_INT(tide_expr_compile(t, strlen(t), B->schema, 0, &e, &err), 0);
  T_EQ_INT(tide_expr_select(e, B, rows, &n, &err), 0);
  T_EQ_INT(n, 5);
  tide_expr_free(e);
  t = "NULL AND TRUE";
  T_EQ_INT(tide_expr_compile(t, strlen(t), B->schema, 0, &e, &err), 0);
  T_EQ_INT(tide_expr_select(e, B, rows, &n, &err), 0);
  T_EQ_INT(n, 0);
  tide_expr_free(e);
  t = "b";
  T_EQ_INT(tide_expr_compile(t, strlen(t), B->schema, 0, &e, &err), 0);
  T_EQ_INT(tide_expr_column(e), 4);
  T_EQ_INT(tide_expr_select(e, B, rows, &n, &err), 0);
  T_EQ_INT(n, 2);
  T_EQ_INT(rows[1], 3);
  tide_expr_free(e);
  t = "signal + 1";
  T_EQ_INT(tide_expr_compile(t, strlen(t), B->schema, 0, &e, &err), 0);
  T_EQ_INT(tide_expr_select(e, B, rows, &n, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "a filter needs a bool expression, got int: (signal + 1)");
  tide_expr_free(e);
  /* a batch of another shape is refused */
  tide_schema_t *s = schema("a string");
  tide_batch_t *other = tide_batch_new(s, 1);
  tide_schema_unref(s);
  t = "signal > 1";
  T_EQ_INT(tide_expr_compile(t, strlen(t), B->schema, 0, &e, &err), 0);
  T_EQ_INT(tide_expr_select(e, other, rows, &n, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "batch does not have the columns (signal > 1) was compiled against");
  tide_expr_free(e);
  /* an empty batch */
  tide_batch_t *empty = tide_batch_new(B->schema, 0);
  T_EQ_STR(evb("signal * 2 + 1", empty), "");
  T_EQ_STR(evb("concat(device, 'x')", empty), "");
  T_EQ_STR(evb("42", empty), "");
  t = "signal > 1";
  T_EQ_INT(tide_expr_compile(t, strlen(t), B->schema, 0, &e, &err), 0);
  T_EQ_INT(tide_expr_select(e, empty, rows, &n, &err), 0);
  T_EQ_INT(n, 0);
  tide_expr_free(e);
  tide_batch_free(empty);
  tide_batch_free(other);
}

/* ---------------------------------------------------------------- 100k rows vs a reference */

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

#define NBIG 100000

typedef struct ref {
  int null;
  int64_t i;
  double d;
  char s[64];
} ref_t;

static void test_big_batch(void) {
  tide_schema_t *s = schema("a int?, c int?, d double?, s string?, t timestamp");
  tide_batch_t *b = tide_batch_new(s, NBIG);
  tide_schema_unref(s);
  static const char *words[] = {"ab", "axb", "abcb", "b", "", "a\xc3\xa9xb", "hello", "aab"};
  for (int i = 0; i < NBIG; i++) {
    tide_batch_row_begin(b);
    if (rnd() % 10) tide_batch_set_i64(b, 0, (int64_t)(rnd() % 61) - 30);
    if (rnd() % 10) tide_batch_set_i64(b, 1, rnd() % 50 == 0 ? INT64_MAX - (int64_t)(rnd() % 3) : (int64_t)(rnd() % 21) - 10);
    if (rnd() % 10) tide_batch_set_f64(b, 2, ((double)(rnd() % 2001) - 1000) / 100);
    if (rnd() % 10) {
      const char *w = words[rnd() % 8];
      tide_batch_set_str(b, 3, w, strlen(w));
    }
    tide_batch_set_i64(b, 4, (int64_t)(rnd() % 100000));
    tide_batch_row_commit(b);
  }
  const tide_col_t *A = &b->cols[0], *C = &b->cols[1], *D = &b->cols[2], *S = &b->cols[3], *T = &b->cols[4];
  const char *exprs[] = {
      "a + c",                                   /* 0 wrapping */
      "a * 3 - c",                               /* 1 */
      "a % c",                                   /* 2 NULL on 0 */
      "a / c",                                   /* 3 double, NULL on 0 */
      "d * 2.5 + a",                             /* 4 */
      "a >= 15",                                 /* 5 */
      "a > c AND d < 0.5",                       /* 6 3VL */
      "a IS NULL OR c < 0",                      /* 7 3VL */
      "NOT (a = c)",                             /* 8 */
      "s LIKE 'a%b'",                            /* 9 */
      "a IN (1, 2, NULL)",                       /* 10 */
      "CASE WHEN a > 0 THEN a ELSE c END",       /* 11 */
      "coalesce(a, c, 0)",                       /* 12 */
      "length(s)",                               /* 13 */
      "a BETWEEN -10 AND 10",                    /* 14 */
      "concat(s, a)",                            /* 15 */
      "t >= 50000 AND a < 0",                    /* 16 */
      "floor(d) + abs(a)",                       /* 17 */
  };
  size_t nex = sizeof exprs / sizeof exprs[0];
  for (size_t k = 0; k < nex; k++) {
    tide_err_t err = {0, ""};
    tide_expr_t *e = NULL;
    T_EQ_INT(tide_expr_compile(exprs[k], strlen(exprs[k]), b->schema, 0, &e, &err), 0);
    if (!e) {
      fprintf(stderr, "%s: %s\n", exprs[k], err.msg);
      continue;
    }
    tide_col_t out;
    T_EQ_INT(tide_expr_eval(e, b, &out, &err), 0);
    uint32_t *rows = malloc(NBIG * sizeof *rows), nsel = 0, want_sel = 0;
    int is_bool = tide_expr_type(e) == TIDE_T_BOOL;
    if (is_bool) T_EQ_INT(tide_expr_select(e, b, rows, &nsel, &err), 0);
    int bad = 0;
    uint32_t nulls = 0;
    for (uint32_t i = 0; i < NBIG && bad < 5; i++) {
      int an = tide_col_is_null(A, i), cn = tide_col_is_null(C, i), dn = tide_col_is_null(D, i),
          sn = tide_col_is_null(S, i);
      int64_t a = tide_col_i64(A, i), c = tide_col_i64(C, i), t = tide_col_i64(T, i);
      double d = tide_col_f64(D, i);
      size_t slen;
      const char *sp = tide_col_str(S, i, &slen);
      ref_t r = {0, 0, 0, ""};
      int bn, cmpn; /* helpers for 3VL */
      switch (k) {
      case 0: r.null = an || cn; r.i = (int64_t)((uint64_t)a + (uint64_t)c); break;
      case 1: r.null = an || cn; r.i = (int64_t)((uint64_t)a * 3 - (uint64_t)c); break;
      case 2: r.null = an || cn || c == 0; r.i = r.null ? 0 : a % c; break;
      case 3: r.null = an || cn || c == 0; r.d = r.null ? 0 : (double)a / (double)c; break;
      case 4: r.null = an || dn; r.d = d * 2.5 + (double)a; break;
      case 5: r.null = an; r.i = a >= 15; break;
      case 6: { /* (a > c) AND (d < 0.5) */
        int p_null = an || cn, p = a > c, q_null = dn, q = d < 0.5;
        if ((!p_null && !p) || (!q_null && !q)) r.i = 0;
        else if (p_null || q_null) r.null = 1;
        else r.i = 1;
        break;
      }
      case 7: { /* (a IS NULL) OR (c < 0) */
        if (an || (!cn && c < 0)) r.i = 1;
        else if (cn) r.null = 1;
        else r.i = 0;
        break;
      }
      case 8: r.null = an || cn; r.i = a != c; break;
      case 9: {
        r.null = sn;
        r.i = slen >= 2 && sp[0] == 'a' && sp[slen - 1] == 'b';
        break;
      }
      case 10: /* a IN (1, 2, NULL): true if a is 1 or 2, else NULL */
        bn = an;
        r.i = !bn && (a == 1 || a == 2);
        r.null = !r.i;
        break;
      case 11:
        if (!an && a > 0) r.i = a;
        else r.null = cn, r.i = c;
        break;
      case 12: r.i = !an ? a : !cn ? c : 0; break;
      case 13: {
        r.null = sn;
        for (size_t j = 0; j < slen; j++) r.i += ((unsigned char)sp[j] & 0xC0) != 0x80;
        break;
      }
      case 14: r.null = an; r.i = a >= -10 && a <= 10; break;
      case 15:
        r.null = sn || an;
        if (!r.null) snprintf(r.s, sizeof r.s, "%.*s%lld", (int)slen, sp, (long long)a);
        break;
      case 16:
        cmpn = an;
        if (t < 50000 || (!cmpn && a >= 0)) r.i = 0;
        else if (cmpn) r.null = 1;
        else r.i = 1;
        break;
      case 17: r.null = dn || an; r.i = (int64_t)floor(d) + (a < 0 ? -a : a); break;
      }
      if (r.null) r.i = 0, r.d = 0;
      int got_null = tide_col_is_null(&out, i), ok = got_null == r.null;
      if (ok && !r.null) {
        switch (out.type) {
        case TIDE_T_DOUBLE: ok = tide_col_f64(&out, i) == r.d; break;
        case TIDE_T_BOOL: ok = tide_col_bool(&out, i) == r.i; break;
        case TIDE_T_STRING: {
          size_t on;
          const char *op = tide_col_str(&out, i, &on);
          ok = on == strlen(r.s) && !memcmp(op, r.s, on);
          break;
        }
        default: ok = tide_col_i64(&out, i) == r.i;
        }
      }
      if (ok && r.null && out.type == TIDE_T_BOOL) ok = tide_col_bool(&out, i) == 0;
      else if (ok && r.null && out.type != TIDE_T_STRING) ok = tide_col_i64(&out, i) == 0;
      nulls += (uint32_t)got_null;
      if (is_bool && !r.null && r.i) {
        if (want_sel >= nsel || rows[want_sel] != i) ok = 0;
        want_sel++;
      }
      if (!ok) {
        bad++;
        fprintf(stderr, "%s: row %u: got null=%d, want null=%d i=%lld d=%g s=%s\n", exprs[k], i, got_null,
                r.null, (long long)r.i, r.d, r.s);
      }
    }
    T_EQ_INT(bad, 0);
    if (!bad) T_EQ_INT(nulls, out.null_count);
    if (is_bool && !bad) T_EQ_INT(nsel, want_sel);
    free(rows);
    tide_col_free(&out);
    tide_expr_free(e);
  }
  tide_batch_free(b);
}

/* ---------------------------------------------------------------- fuzz */

/* A random expression from the grammar (often ill-typed, which is fine). */
static void gen(tide_buf_t *b, int depth) {
  static const char *cols[] = {"signal", "device", "ts", "x", "b", "j", "k"};
  static const char *lits[] = {"0", "1", "-3", "2.5", "1e3", "'a'", "'h%'", "''", "TRUE", "FALSE", "NULL",
                               "'2023-11-14T22:13:21Z'", "9223372036854775807"};
  static const char *ops[] = {"+", "-", "*", "/", "%", "=", "!=", "<", "<=", ">", ">=", "AND", "OR"};
  static const char *types[] = {"int", "double", "string", "bool", "timestamp", "json"};
  static const char *f1[] = {"lower", "upper", "length", "abs", "round", "floor", "ceil", "concat", "coalesce"};
  int r = (int)(rnd() % (depth > 4 ? 2 : 16));
  switch (r) {
  case 0: tide_buf_puts(b, cols[rnd() % 7]); break;
  case 1: tide_buf_puts(b, lits[rnd() % 13]); break;
  case 2:
  case 3:
  case 4:
    tide_buf_putc(b, '(');
    gen(b, depth + 1);
    tide_buf_putc(b, ' ');
    tide_buf_puts(b, ops[rnd() % 13]);
    tide_buf_putc(b, ' ');
    gen(b, depth + 1);
    tide_buf_putc(b, ')');
    break;
  case 5: tide_buf_puts(b, "NOT ("); gen(b, depth + 1); tide_buf_putc(b, ')'); break;
  case 6: tide_buf_putc(b, '('); gen(b, depth + 1); tide_buf_puts(b, rnd() % 2 ? " IS NULL)" : " IS NOT NULL)"); break;
  case 7:
    tide_buf_putc(b, '(');
    gen(b, depth + 1);
    tide_buf_puts(b, rnd() % 2 ? " IN (" : " NOT IN (");
    gen(b, depth + 1);
    tide_buf_puts(b, ", ");
    gen(b, depth + 1);
    tide_buf_puts(b, "))");
    break;
  case 8:
    tide_buf_putc(b, '(');
    gen(b, depth + 1);
    tide_buf_puts(b, " BETWEEN ");
    gen(b, depth + 1);
    tide_buf_puts(b, " AND ");
    gen(b, depth + 1);
    tide_buf_putc(b, ')');
    break;
  case 9: tide_buf_putc(b, '('); gen(b, depth + 1); tide_buf_puts(b, rnd() % 2 ? " LIKE 'a%_'" : " LIKE device)"); break;
  case 10:
    tide_buf_puts(b, "CASE WHEN ");
    gen(b, depth + 1);
    tide_buf_puts(b, " THEN ");
    gen(b, depth + 1);
    tide_buf_puts(b, " ELSE ");
    gen(b, depth + 1);
    tide_buf_puts(b, " END");
    break;
  case 11:
    tide_buf_puts(b, "CASE ");
    gen(b, depth + 1);
    tide_buf_puts(b, " WHEN ");
    gen(b, depth + 1);
    tide_buf_puts(b, " THEN ");
    gen(b, depth + 1);
    tide_buf_puts(b, " END");
    break;
  case 12:
    tide_buf_puts(b, "CAST(");
    gen(b, depth + 1);
    tide_buf_puts(b, " AS ");
    tide_buf_puts(b, types[rnd() % 6]);
    tide_buf_putc(b, ')');
    break;
  case 13:
    tide_buf_puts(b, f1[rnd() % 9]);
    tide_buf_putc(b, '(');
    gen(b, depth + 1);
    if (rnd() % 3 == 0) {
      tide_buf_puts(b, ", ");
      gen(b, depth + 1);
    }
    tide_buf_putc(b, ')');
    break;
  case 14: tide_buf_puts(b, "substr("); gen(b, depth + 1); tide_buf_puts(b, ", "); gen(b, depth + 1); tide_buf_putc(b, ')'); break;
  default: tide_buf_puts(b, "-("); gen(b, depth + 1); tide_buf_putc(b, ')');
  }
}

static void test_fuzz(void) {
  static const char *toks[] = {
      "signal", "device", "ts", "x", "b", "j", "k", "(", ")", ",", "+", "-", "*", "/", "%", "=", "==", "!=", "<>",
      "<", "<=", ">", ">=", "AND", "OR", "NOT", "IS", "NULL", "IN", "BETWEEN", "LIKE", "CASE", "WHEN", "THEN",
      "ELSE", "END", "CAST", "AS", "int", "string", "double", "bool", "timestamp", "json", "TRUE", "FALSE", "0",
      "1", "-1", "2.5", "1e3", "9223372036854775807", "'a%'", "'2024-01-01'", "'x''y'", "''", "lower", "upper",
      "length", "substr", "concat", "coalesce", "abs", "round", "floor", "ceil", "count", "sum", "avg", "min",
      "max", "first", "last", "count_distinct", "DISTINCT", "`signal`", "\"device\"", "'", "`", "\"", "!", "#",
      "é", "\xff", "\x00", "(((", ")))"};
  size_t ntok = sizeof toks / sizeof toks[0];
  char text[512];
  int ok = 0, failed = 0, bad = 0;
  uint32_t rows[8];
  rng = 12345;
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = 0, ntoks = 1 + rnd() % 24;
    if (iter % 4) { /* from the grammar, sometimes damaged */
      tide_buf_t g = TIDE_BUF_INIT;
      gen(&g, 0);
      n = g.len < sizeof text ? g.len : sizeof text;
      memcpy(text, g.data, n);
      tide_buf_free(&g);
      if (rnd() % 4 == 0 && n) text[rnd() % n] = (char)(rnd() & 0xff);
      if (rnd() % 4 == 0 && n > 2) n -= 1 + rnd() % (n / 2);
      ntoks = 0;
    }
    for (size_t t = 0; t < ntoks && n < 400; t++) {
      if (rnd() % 16 == 0) {
        text[n++] = (char)(rnd() & 0xff);
        continue;
      }
      const char *tk = toks[rnd() % ntok];
      size_t l = strlen(tk);
      if (!l) l = 1; /* the NUL token */
      memcpy(text + n, tk, l);
      n += l;
      if (rnd() % 4) text[n++] = ' ';
    }
    tide_err_t err = {0, ""};
    tide_expr_t *e = NULL;
    int flags = rnd() % 2 ? TIDE_EXPR_AGG : 0;
    int rc = tide_expr_compile(text, n, B->schema, flags, &e, &err);
    if (rc) {
      failed++;
      if (!err.msg[0] || e != NULL || err.code != rc) bad++;
      continue;
    }
    ok++;
    const tide_expr_t *ev_e = tide_expr_agg(e) ? tide_expr_agg_arg(e) : e;
    if (!tide_expr_name(e)[0] || !tide_expr_text(e)[0]) bad++;
    if (ev_e) {
      tide_col_t c;
      if (tide_expr_eval(ev_e, B, &c, &err)) bad++;
      else {
        if (c.type != tide_expr_type(ev_e)) bad++;
        tide_col_free(&c);
      }
      uint32_t nsel;
      if (tide_expr_type(ev_e) == TIDE_T_BOOL && tide_expr_select(ev_e, B, rows, &nsel, &err)) bad++;
    }
    tide_expr_free(e);
  }
  T_EQ_INT(bad, 0);
  T_CHECK(ok > 1000); /* the generator makes valid expressions often enough */
  T_CHECK(failed > 5000);
  /* pure random bytes */
  for (int iter = 0; iter < 5000; iter++) {
    size_t n = rnd() % 64;
    for (size_t j = 0; j < n; j++) text[j] = (char)(rnd() & 0xff);
    tide_err_t err = {0, ""};
    tide_expr_t *e = NULL;
    int rc = tide_expr_compile(text, n, B->schema, TIDE_EXPR_AGG, &e, &err);
    if (rc && !err.msg[0]) bad++;
    tide_expr_free(e);
  }
  T_EQ_INT(bad, 0);
}

int main(void) {
  B = main_batch();
  T_RUN(test_literals_and_columns);
  T_RUN(test_arithmetic);
  T_RUN(test_comparisons);
  T_RUN(test_timestamps);
  T_RUN(test_logic);
  T_RUN(test_in_between);
  T_RUN(test_like);
  T_RUN(test_case_coalesce);
  T_RUN(test_cast);
  T_RUN(test_functions);
  T_RUN(test_json_refusals);
  T_RUN(test_names);
  T_RUN(test_aggregates);
  T_RUN(test_errors);
  T_RUN(test_select);
  T_RUN(test_big_batch);
  T_RUN(test_fuzz);
  T_EQ_INT(B->schema->refs, 1); /* every expression let go of its reference */
  tide_batch_free(B);
  T_DONE();
}
