/*
 * test_schema.c: DDL parsing (types, aliases, nullability, defaults), every
 * parse error with its exact message, to_ddl / encode / decode round trips,
 * and decoding of truncated and random bytes. Frees everything it makes.
 */
#include <errno.h>
#include <stdint.h>

#include "schema.h"
#include "t.h"

static tide_schema_t *parse(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  int rc = tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err);
  if (rc) fprintf(stderr, "parse(%s): %s\n", ddl, err.msg);
  return s;
}

/* The error message of parsing ddl, and its code in *rc. */
static const char *perr(const char *ddl, int *rc) {
  static tide_err_t err;
  tide_schema_t *s = NULL;
  memset(&err, 0, sizeof err);
  *rc = tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err);
  if (!*rc) {
    tide_schema_unref(s);
    return "(no error)";
  }
  T_CHECK(s == NULL);
  T_EQ_INT(err.code, *rc);
  return err.msg;
}

static char *ddl_of(const tide_schema_t *s) {
  static char out[4096];
  tide_buf_t b = TIDE_BUF_INIT;
  T_EQ_INT(tide_schema_to_ddl(s, &b), 0);
  snprintf(out, sizeof out, "%.*s", (int)b.len, b.data ? b.data : "");
  tide_buf_free(&b);
  return out;
}

static void test_types(void) {
  tide_type_t t;
  T_EQ_STR(tide_type_name(TIDE_T_BOOL), "bool");
  T_EQ_STR(tide_type_name(TIDE_T_JSON), "json");
  T_EQ_STR(tide_type_name((tide_type_t)99), "?");
  T_EQ_INT(tide_type_parse("BIGINT", 6, &t), 0);
  T_EQ_INT(t, TIDE_T_INT);
  T_EQ_INT(tide_type_parse("Real", 4, &t), 0);
  T_EQ_INT(t, TIDE_T_DOUBLE);
  T_EQ_INT(tide_type_parse("varchar", 7, &t), 0);
  T_EQ_INT(t, TIDE_T_STRING);
  T_EQ_INT(tide_type_parse("boolean", 7, &t), 0);
  T_EQ_INT(t, TIDE_T_BOOL);
  T_EQ_INT(tide_type_parse("int?", 4, &t), TIDE_EINVAL);
  T_EQ_INT(tide_type_parse("", 0, &t), TIDE_EINVAL);
}

static void test_parse_basic(void) {
  tide_schema_t *s = parse("ts timestamp, device string, signal int? DEFAULT 0, kind string");
  T_CHECK(s != NULL);
  if (!s) return;
  T_EQ_INT(s->nfields, 4);
  T_EQ_STR(s->fields[0].name, "ts");
  T_EQ_INT(s->fields[0].type, TIDE_T_TIMESTAMP);
  T_EQ_INT(s->fields[0].nullable, 0);
  T_EQ_INT(s->fields[2].nullable, 1);
  T_EQ_STR(s->fields[2].default_json, "0");
  T_CHECK(s->fields[3].default_json == NULL);
  T_EQ_INT(tide_schema_find(s, "signal", 6), 2);
  T_EQ_INT(tide_schema_find(s, "sig", 3), -1);
  T_EQ_STR(ddl_of(s), "ts timestamp, device string, signal int? DEFAULT 0, kind string");
  tide_schema_unref(s);
}

static void test_parse_aliases_and_defaults(void) {
  tide_schema_t *s = parse(
      "  A BIGINT NOT NULL,b Long?,c INTEGER DEFAULT 3.0, d float DEFAULT -1.5e3 , e real?,"
      "f TEXT DEFAULT 'it''s', g varchar DEFAULT \"q\\\"\\u00e9\", h Boolean DEFAULT TRUE,"
      "i timestamp DEFAULT '2024-01-01T00:00:01Z', j timestamp DEFAULT 1700000000000,"
      "k json DEFAULT {\"x\": [1, null]}, l json? DEFAULT null, m json DEFAULT 'str', n_1 bool? DEFAULT false ");
  T_CHECK(s != NULL);
  if (!s) return;
  T_EQ_INT(s->nfields, 14);
  T_EQ_STR(s->fields[0].name, "A");
  T_EQ_STR(s->fields[2].default_json, "3");
  T_EQ_STR(s->fields[3].default_json, "-1500");
  T_EQ_STR(s->fields[5].default_json, "\"it's\"");
  T_EQ_STR(s->fields[6].default_json, "\"q\\\"\xc3\xa9\"");
  T_EQ_STR(s->fields[7].default_json, "true");
  T_EQ_STR(s->fields[8].default_json, "1704067201000");
  T_EQ_STR(s->fields[9].default_json, "1700000000000");
  T_EQ_STR(s->fields[10].default_json, "{\"x\":[1,null]}");
  T_EQ_STR(s->fields[11].default_json, "null");
  T_EQ_STR(s->fields[12].default_json, "\"str\"");
  const char *want =
      "A int, b int?, c int DEFAULT 3, d double DEFAULT -1500, e double?, f string DEFAULT 'it''s', "
      "g string DEFAULT 'q\"\xc3\xa9', h bool DEFAULT true, i timestamp DEFAULT 1704067201000, "
      "j timestamp DEFAULT 1700000000000, k json DEFAULT {\"x\":[1,null]}, l json? DEFAULT null, "
      "m json DEFAULT 'str', n_1 bool? DEFAULT false";
  char *ddl = ddl_of(s);
  T_EQ_STR(ddl, want);
  /* the canonical text parses back to an equal schema */
  tide_schema_t *s2 = parse(ddl);
  T_CHECK(s2 && tide_schema_equal(s, s2));
  if (s2) T_EQ_STR(ddl_of(s2), want);
  tide_schema_unref(s2);
  tide_schema_unref(s);
}

static void test_parse_errors(void) {
  int rc;
  T_EQ_STR(perr("ts timestamp, x strng", &rc),
           "at position 17: unknown type 'strng' (allowed: bool, int, double, string, timestamp, json)");
  T_EQ_INT(rc, TIDE_EPARSE);
  T_EQ_STR(perr("x int, y string, x bool", &rc), "duplicate field 'x'");
  T_EQ_INT(rc, TIDE_EINVAL);
  T_EQ_STR(perr("", &rc), "at position 1: empty schema (expected a field name)");
  T_EQ_INT(rc, TIDE_EPARSE);
  T_EQ_STR(perr("   ", &rc), "at position 4: empty schema (expected a field name)");
  T_EQ_STR(perr("a int,", &rc), "at position 7: expected a field name");
  T_EQ_STR(perr("a int,, b int", &rc), "at position 7: expected a field name, got ','");
  T_EQ_STR(perr("a", &rc), "at position 2: expected a type after 'a'");
  T_EQ_STR(perr("a int b int", &rc), "at position 7: unexpected 'b' (expected ',', NOT NULL or DEFAULT)");
  T_EQ_STR(perr("a int NOT", &rc), "at position 10: expected NULL after NOT");
  T_EQ_STR(perr("a int? NOT NULL", &rc), "at position 8: NOT NULL on a nullable field (remove the '?')");
  T_EQ_STR(perr("a int DEFAULT", &rc), "at position 14: expected a literal after DEFAULT");
  T_EQ_STR(perr("a int DEFAULT 1 DEFAULT 2", &rc), "at position 17: DEFAULT given twice");
  T_EQ_STR(perr("a string DEFAULT 'abc", &rc), "at position 18: unterminated string literal");
  T_EQ_STR(perr("a int DEFAULT abc", &rc), "at position 15: invalid DEFAULT literal 'abc'");
  T_EQ_STR(perr("a int DEFAULT 01", &rc), "at position 16: unexpected '1' (expected ',', NOT NULL or DEFAULT)");
  T_EQ_STR(perr("a json DEFAULT {\"x\":}", &rc),
           "at position 21: invalid DEFAULT literal (unexpected character)");
  T_EQ_STR(perr("a json DEFAULT [1,", &rc), "at position 19: invalid DEFAULT literal (expected a value)");
  T_EQ_STR(perr("a int DEFAULT 'abc'", &rc),
           "at position 15: field 'a': DEFAULT must be of type int, got \"abc\"");
  T_EQ_INT(rc, TIDE_EPARSE);
  T_EQ_STR(perr("a int DEFAULT 1.5", &rc), "at position 15: field 'a': DEFAULT must be of type int, got 1.5");
  T_EQ_STR(perr("a int DEFAULT 9223372036854775808", &rc),
           "at position 15: field 'a': DEFAULT must be of type int, got 9223372036854775808");
  T_EQ_STR(perr("a bool DEFAULT 1", &rc), "at position 16: field 'a': DEFAULT must be of type bool, got 1");
  T_EQ_STR(perr("a string DEFAULT 1", &rc),
           "at position 18: field 'a': DEFAULT must be of type string, got 1");
  T_EQ_STR(perr("a double DEFAULT 'x'", &rc),
           "at position 18: field 'a': DEFAULT must be of type double, got \"x\"");
  T_EQ_STR(perr("a timestamp DEFAULT '2024-13-01'", &rc),
           "at position 21: field 'a': DEFAULT must be of type timestamp, got \"2024-13-01\"");
  T_EQ_STR(perr("a int DEFAULT null", &rc),
           "at position 15: field 'a': DEFAULT null on a field that is not nullable");
  T_EQ_STR(perr("`a\tb` int", &rc),
           "invalid field name 'a?b' (names are 1 to 128 bytes of UTF-8, without control characters or backticks)");
  T_EQ_INT(rc, TIDE_EINVAL);
  T_EQ_STR(perr("`avg(x) int", &rc), "at position 1: unterminated `quoted` field name");
  T_EQ_STR(perr("`` int", &rc), "at position 1: empty `quoted` field name");
  T_EQ_STR(perr("a-b int", &rc), "at position 2: expected a type after 'a'");
  T_EQ_STR(perr("é int", &rc), "at position 1: expected a field name, got '?'");
  char longname[200];
  memset(longname, 'x', 129);
  strcpy(longname + 129, " int");
  T_EQ_INT(strncmp(perr(longname, &rc), "invalid field name 'xxxxxxxx", 28), 0);
  T_EQ_INT(rc, TIDE_EINVAL);
}

/* Names that are not identifiers (Spark's "avg(signal)") are quoted in DDL. */
static void test_quoted_names(void) {
  tide_schema_t *s;
  tide_err_t err = {0, ""};
  const char *ddl = "`avg(signal)` double?, `count(*)` int, ok bool, `1a` string";
  T_EQ_INT(tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err), 0);
  T_EQ_STR(s->fields[0].name, "avg(signal)");
  T_EQ_STR(s->fields[1].name, "count(*)");
  T_EQ_STR(s->fields[3].name, "1a");
  tide_buf_t out = TIDE_BUF_INIT;
  T_EQ_INT(tide_schema_to_ddl(s, &out), 0);
  T_EQ_INT(tide_buf_cstr(&out), 0);
  T_EQ_STR(out.data, ddl);
  tide_buf_free(&out);
  T_EQ_INT(tide_schema_add(s, "a`b", 3, TIDE_T_INT, 0, NULL, &err), TIDE_EINVAL);
  tide_schema_unref(s);
}

static void test_add(void) {
  tide_schema_t *s = tide_schema_new();
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_schema_add(s, "a", 1, TIDE_T_INT, 0, NULL, &err), 0);
  T_EQ_INT(tide_schema_add(s, "a", 1, TIDE_T_INT, 0, NULL, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "duplicate field 'a'");
  T_EQ_INT(tide_schema_add(s, "b", 1, (tide_type_t)0, 0, NULL, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "field 'b': unknown type 0");
  T_EQ_INT(tide_schema_add(s, "b", 1, TIDE_T_INT, 0, "{", &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "field 'b': DEFAULT is not valid JSON (invalid JSON at column 2: expected a string key)");
  T_EQ_INT(tide_schema_add(s, "b", 1, TIDE_T_INT, 0, " 42 ", NULL), 0);
  T_EQ_STR(s->fields[1].default_json, "42");
  T_EQ_INT(tide_schema_add(s, "", 0, TIDE_T_INT, 0, NULL, &err), TIDE_EINVAL);
  T_EQ_INT(s->nfields, 2);
  /* references */
  T_CHECK(tide_schema_ref(s) == s);
  T_EQ_INT(s->refs, 2);
  tide_schema_unref(s);
  tide_schema_unref(s);
  tide_schema_unref(NULL);
  /* many fields: the array grows; the limit is enforced */
  s = tide_schema_new();
  char name[16];
  int rc = 0;
  for (int i = 0; i < TIDE_FIELDS_MAX && !rc; i++) {
    int n = snprintf(name, sizeof name, "f%d", i);
    rc = tide_schema_add(s, name, (size_t)n, TIDE_T_INT, 1, NULL, &err);
  }
  T_EQ_INT(rc, 0);
  T_EQ_INT(tide_schema_add(s, "z", 1, TIDE_T_INT, 0, NULL, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "too many fields (at most 4096)");
  T_EQ_INT(tide_schema_find(s, "f4095", 5), 4095);
  tide_schema_unref(s);
}

static void test_encode_decode(void) {
  tide_schema_t *s = parse("ts timestamp, device string DEFAULT 'x', signal int? DEFAULT 0, meta json?, ok bool, d double?");
  tide_buf_t b = TIDE_BUF_INIT;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_schema_encode(s, &b), 0);
  T_EQ_INT((unsigned char)b.data[0], 1);
  tide_schema_t *s2 = NULL;
  T_EQ_INT(tide_schema_decode(b.data, b.len, &s2, &err), 0);
  T_CHECK(s2 && tide_schema_equal(s, s2));
  tide_schema_unref(s2);
  /* every truncation is refused */
  int bad = 0;
  for (size_t n = 0; n < b.len; n++) {
    s2 = NULL;
    int rc = tide_schema_decode(b.data, n, &s2, &err);
    if (rc != TIDE_ECORRUPT || s2) bad++;
  }
  T_EQ_INT(bad, 0);
  /* trailing bytes, unknown version */
  tide_buf_putc(&b, 0);
  T_EQ_INT(tide_schema_decode(b.data, b.len, &s2, &err), TIDE_ECORRUPT);
  T_EQ_STR(err.msg, "schema record: 1 trailing bytes");
  b.data[0] = 2;
  T_EQ_INT(tide_schema_decode(b.data, b.len, &s2, &err), TIDE_EFORMAT);
  T_EQ_STR(err.msg, "schema record: unknown format version 2");
  /* a bad name inside a record */
  b.len = 0;
  tide_schema_encode(s, &b);
  b.data[5 + 4] = '\x01'; /* first name byte: "ts" -> "\x01s", a control character */
  T_EQ_INT(tide_schema_decode(b.data, b.len, &s2, &err), TIDE_ECORRUPT);
  T_EQ_INT(strncmp(err.msg, "schema record: invalid field name '?s'", 38), 0);
  tide_buf_free(&b);
  /* an empty schema round-trips */
  tide_schema_t *e = tide_schema_new();
  tide_schema_encode(e, &b);
  T_EQ_INT(b.len, 5);
  T_EQ_INT(tide_schema_decode(b.data, b.len, &s2, &err), 0);
  T_CHECK(s2 && s2->nfields == 0 && tide_schema_equal(e, s2));
  tide_schema_unref(s2);
  tide_schema_unref(e);
  tide_buf_free(&b);
  tide_schema_unref(s);
}

static void test_decode_garbage(void) {
  uint32_t x = 2463534242u;
  unsigned char buf[256];
  int crashes_would_show = 0, ok = 0;
  tide_schema_t *ref = parse("a int, b string? DEFAULT 'x', c json");
  tide_buf_t good = TIDE_BUF_INIT;
  tide_schema_encode(ref, &good);
  for (int iter = 0; iter < 20000; iter++) {
    size_t n = (x = x * 1664525u + 1013904223u) % sizeof buf;
    for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)((x = x * 1664525u + 1013904223u) >> 24);
    if (iter % 2) { /* mutate a valid record instead: more interesting paths */
      n = good.len;
      memcpy(buf, good.data, n);
      buf[0] = 1;
      for (int k = 0; k < 3; k++) {
        x = x * 1664525u + 1013904223u;
        buf[1 + x % (n - 1)] ^= (unsigned char)(x >> 24);
      }
    } else if (n) {
      buf[0] = 1;
    }
    tide_schema_t *s = NULL;
    tide_err_t err = {0, ""};
    int rc = tide_schema_decode(buf, n, &s, &err);
    if (rc == 0) {
      ok++;
      T_CHECK(s != NULL);
      tide_schema_unref(s);
    } else {
      if (s) crashes_would_show++;
      if (rc != TIDE_ECORRUPT && rc != TIDE_EFORMAT) crashes_would_show++;
    }
  }
  T_EQ_INT(crashes_would_show, 0);
  tide_buf_free(&good);
  tide_schema_unref(ref);
}

static void test_equal(void) {
  tide_schema_t *a = parse("a int, b string?"), *b = parse("a bigint, b text?"), *c = parse("a int, b string"),
                *d = parse("a int, b string? DEFAULT 'x'");
  T_CHECK(tide_schema_equal(a, b));
  T_CHECK(!tide_schema_equal(a, c));
  T_CHECK(!tide_schema_equal(a, d));
  tide_schema_unref(a);
  tide_schema_unref(b);
  tide_schema_unref(c);
  tide_schema_unref(d);
}

static void test_err(void) {
  tide_err_t err = {0, ""};
  T_EQ_STR(tide_errname(TIDE_ECORRUPT), "ECORRUPT");
  T_EQ_STR(tide_errname(TIDE_EPOISONED), "EPOISONED");
  T_EQ_STR(tide_errname(-ENOENT), "ENOENT");
  T_EQ_STR(tide_errname(-EDQUOT), "EDQUOT");
  T_EQ_STR(tide_errname(-4000), "E4000");
  T_EQ_STR(tide_errname(-30792), "MDB_MAP_FULL");
  T_EQ_STR(tide_errname(-30798), "MDB_NOTFOUND");
  T_EQ_STR(tide_errname(0), "OK");
  T_EQ_STR(tide_strerror(-ENOENT), strerror(ENOENT));
  T_EQ_STR(tide_strerror(TIDE_ESCHEMA), "value does not fit the schema");
  T_CHECK(tide_strerror(-30792)[0] != 0);
  T_CHECK(tide_strerror(TIDE_ELAST) != NULL);
  T_EQ_INT(tide_err_set(&err, TIDE_EPARSE, "x %d", 1), TIDE_EPARSE);
  T_EQ_INT(tide_err_prefix(&err, "topic '%s': ", "t"), TIDE_EPARSE);
  T_EQ_STR(err.msg, "topic 't': x 1");
  T_EQ_INT(tide_err_set(NULL, TIDE_EINVAL, "dropped"), TIDE_EINVAL);
}

int main(void) {
  T_RUN(test_err);
  T_RUN(test_types);
  T_RUN(test_parse_basic);
  T_RUN(test_parse_aliases_and_defaults);
  T_RUN(test_parse_errors);
  T_RUN(test_add);
  T_RUN(test_quoted_names);
  T_RUN(test_encode_decode);
  T_RUN(test_decode_garbage);
  T_RUN(test_equal);
  T_DONE();
}
