/*
 * test_registry.c: the schema registry's rules (registry.h). A table of
 * (earlier versions, new version, mode, expected result, expected message)
 * covers every compatibility rule in each mode: adding a nullable, a
 * defaulted and a required field; removing a field with and without a
 * default; widening int to double and narrowing back; other type changes;
 * nullability both ways; and the transitive modes against three versions.
 * Then mode names, the readability check's wording in both directions, and
 * projections (defaults filled, NULL to default for a NOT NULL field, int
 * widened, fields dropped, sub-ranges, refusals). Frees everything it makes
 * (it runs under ASan's leak checker).
 */
#include <stdint.h>

#include "batch.h"
#include "registry.h"
#include "schema.h"
#include "t.h"

static tide_schema_t *parse(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  int rc = tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err);
  if (rc) fprintf(stderr, "parse(%s): %s\n", ddl, err.msg);
  T_EQ_INT(rc, 0);
  return s;
}

/* ------------------------------------------------------------ rule table --- */

typedef struct {
  const char *v1, *v2; /* earlier versions, oldest first; v2 may be NULL */
  const char *next;    /* the candidate */
  tide_compat_t mode;
  int rc;              /* 0 or TIDE_ESCHEMA */
  const char *msg;     /* the reason when refused */
} rule_t;

#define OK 0
#define NO TIDE_ESCHEMA
#define BW TIDE_COMPAT_BACKWARD
#define FW TIDE_COMPAT_FORWARD
#define FULL TIDE_COMPAT_FULL
#define NONE TIDE_COMPAT_NONE
#define BWT TIDE_COMPAT_BACKWARD_TRANSITIVE
#define FWT TIDE_COMPAT_FORWARD_TRANSITIVE
#define FULLT TIDE_COMPAT_FULL_TRANSITIVE

static const rule_t rules[] = {
    /* adding a field */
    {"a int", NULL, "a int, b string?", BW, OK, NULL},
    {"a int", NULL, "a int, b string DEFAULT 'x'", BW, OK, NULL},
    {"a int", NULL, "a int, b string", BW, NO,
     "field 'b' was added without a default and is not nullable, not allowed under backward"},
    {"a int", NULL, "a int, b string?", FW, OK, NULL},
    {"a int", NULL, "a int, b string", FW, OK, NULL},
    {"a int", NULL, "a int, b string?", FULL, OK, NULL},
    {"a int", NULL, "a int, b string DEFAULT 'x'", FULL, OK, NULL},
    {"a int", NULL, "a int, b string", FULL, NO,
     "field 'b' was added without a default and is not nullable, not allowed under full"},
    {"a int", NULL, "a int, b string", NONE, OK, NULL},

    /* removing a field */
    {"a int, b string", NULL, "a int", BW, OK, NULL},
    {"a int, b string DEFAULT 'x'", NULL, "a int", BW, OK, NULL},
    {"a int, b string", NULL, "a int", FW, NO,
     "field 'b' was removed but has no default and is not nullable, not allowed under forward"},
    {"a int, b string DEFAULT 'x'", NULL, "a int", FW, OK, NULL},
    {"a int, b string?", NULL, "a int", FW, OK, NULL},
    {"a int, b string DEFAULT 'x'", NULL, "a int", FULL, OK, NULL},
    {"a int, b string", NULL, "a int", FULL, NO,
     "field 'b' was removed but has no default and is not nullable, not allowed under full"},
    {"a int, b string", NULL, "a int", NONE, OK, NULL},

    /* widening and narrowing */
    {"a int", NULL, "a double", BW, OK, NULL},
    {"a int", NULL, "a double", FW, NO, "field 'a': type changed from int to double, not allowed under forward"},
    {"a int", NULL, "a double", FULL, NO, "field 'a': type changed from int to double, not allowed under full"},
    {"a double", NULL, "a int", BW, NO, "field 'a': type changed from double to int, not allowed under backward"},
    {"a double", NULL, "a int", FW, OK, NULL},
    {"a double", NULL, "a int", FULL, NO, "field 'a': type changed from double to int, not allowed under full"},
    {"a double", NULL, "a int", NONE, OK, NULL},

    /* other type changes */
    {"a int", NULL, "a string", BW, NO, "field 'a': type changed from int to string, not allowed under backward"},
    {"a int", NULL, "a string", FW, NO, "field 'a': type changed from int to string, not allowed under forward"},
    {"a int", NULL, "a string", FULL, NO, "field 'a': type changed from int to string, not allowed under full"},
    {"a int", NULL, "a timestamp", BW, NO,
     "field 'a': type changed from int to timestamp, not allowed under backward"},
    {"a string", NULL, "a json", BW, NO, "field 'a': type changed from string to json, not allowed under backward"},
    {"a bool", NULL, "a int", FW, NO, "field 'a': type changed from bool to int, not allowed under forward"},
    {"a int", NULL, "a string", NONE, OK, NULL},

    /* nullability */
    {"a int?", NULL, "a int", BW, NO, "field 'a' became NOT NULL, not allowed under backward"},
    {"a int?", NULL, "a int DEFAULT 0", BW, OK, NULL},
    {"a int?", NULL, "a int", FW, OK, NULL},
    {"a int?", NULL, "a int", FULL, NO, "field 'a' became NOT NULL, not allowed under full"},
    {"a int", NULL, "a int?", BW, OK, NULL},
    {"a int", NULL, "a int?", FW, NO, "field 'a' became nullable, not allowed under forward"},
    {"a int DEFAULT 0", NULL, "a int?", FW, OK, NULL},
    {"a int", NULL, "a int?", FULL, NO, "field 'a' became nullable, not allowed under full"},
    {"a int?", NULL, "a int DEFAULT 0", FULL, OK, NULL},
    {"a int?", NULL, "a double", BW, NO, "field 'a' became NOT NULL, not allowed under backward"},
    {"a int?", NULL, "a int", NONE, OK, NULL},

    /* identical and reordered schemas are compatible in every mode */
    {"a int, b string", NULL, "b string, a int", FULLT, OK, NULL},

    /* transitive: v1 has b string?, v2 drops it, next brings b back as int?;
     * compatible with v2 in every mode, with v1 in none but `none` */
    {"a int, b string?", "a int", "a int, b int?", BW, OK, NULL},
    {"a int, b string?", "a int", "a int, b int?", FW, OK, NULL},
    {"a int, b string?", "a int", "a int, b int?", FULL, OK, NULL},
    {"a int, b string?", "a int", "a int, b int?", NONE, OK, NULL},
    {"a int, b string?", "a int", "a int, b int?", BWT, NO,
     "field 'b': type changed from string to int, not allowed under backward_transitive (against version 1)"},
    {"a int, b string?", "a int", "a int, b int?", FWT, NO,
     "field 'b': type changed from string to int, not allowed under forward_transitive (against version 1)"},
    {"a int, b string?", "a int", "a int, b int?", FULLT, NO,
     "field 'b': type changed from string to int, not allowed under full_transitive (against version 1)"},
    /* transitive modes that fail on the latest name no version */
    {"a int", "a int, b int?", "a int, b string?", BWT, NO,
     "field 'b': type changed from int to string, not allowed under backward_transitive"},
    {"a int", "a int, b int?", "a int, b string?", FWT, NO,
     "field 'b': type changed from int to string, not allowed under forward_transitive"},
    /* transitive modes that accept */
    {"a int", "a int, b int?", "a int, b int?, c string?", BWT, OK, NULL},
    {"a int", "a int, b int?", "a int, b int?, c string?", FWT, OK, NULL},
    {"a int", "a int, b int?", "a int, b int?, c string?", FULLT, OK, NULL},
    /* backward_transitive: a required field added in v2 without default
     * is fine against v2 once it exists, but not against v1 */
    {"a int", "a int, b int DEFAULT 1", "a int, b int", BW, OK, NULL},
    {"a int", "a int, b int DEFAULT 1", "a int, b int", BWT, NO,
     "field 'b' was added without a default and is not nullable, not allowed under backward_transitive "
     "(against version 1)"},
};

static void test_rule_table(void) {
  for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
    const rule_t *r = &rules[i];
    tide_schema_t *v[2] = {parse(r->v1), r->v2 ? parse(r->v2) : NULL};
    tide_schema_t *next = parse(r->next);
    tide_err_t err = {0, ""};
    int rc = tide_compat_check(r->mode, v, r->v2 ? 2 : 1, next, &err);
    if (rc != r->rc || (r->msg && strcmp(err.msg, r->msg)))
      fprintf(stderr, "rule %zu: [%s] [%s] -> [%s] under %s: rc %d, \"%s\"\n", i, r->v1, r->v2 ? r->v2 : "",
              r->next, tide_compat_name(r->mode), rc, rc ? err.msg : "");
    T_EQ_INT(rc, r->rc);
    if (r->rc) {
      T_EQ_INT(err.code, r->rc);
      T_EQ_STR(err.msg, r->msg);
    }
    tide_schema_unref(v[0]);
    tide_schema_unref(v[1]);
    tide_schema_unref(next);
  }
}

/* The first version (no earlier one) is accepted in every mode. */
static void test_first_version(void) {
  tide_schema_t *s = parse("a int");
  for (int m = TIDE_COMPAT_NONE; m <= TIDE_COMPAT_FULL_TRANSITIVE; m++) {
    tide_err_t err = {0, ""};
    T_EQ_INT(tide_compat_check((tide_compat_t)m, NULL, 0, s, &err), 0);
  }
  tide_schema_unref(s);
}

/* ------------------------------------------------------------ mode names --- */

static void test_mode_names(void) {
  static const char *const names[] = {"none", "backward", "forward", "full", "backward_transitive",
                                      "forward_transitive", "full_transitive"};
  for (int m = 0; m <= TIDE_COMPAT_FULL_TRANSITIVE; m++) {
    tide_compat_t out = (tide_compat_t)99;
    T_EQ_STR(tide_compat_name((tide_compat_t)m), names[m]);
    T_EQ_INT(tide_compat_parse(names[m], &out), 0);
    T_EQ_INT(out, m);
  }
  tide_compat_t out = TIDE_COMPAT_FULL;
  T_EQ_INT(tide_compat_parse("Backward", &out), TIDE_EINVAL);
  T_EQ_INT(tide_compat_parse("", &out), TIDE_EINVAL);
  T_EQ_INT(out, TIDE_COMPAT_FULL);
  T_EQ_STR(tide_compat_name((tide_compat_t)7), "?");
  T_EQ_STR(tide_compat_name((tide_compat_t)-1), "?");
}

/* ----------------------------------------------------------- readability --- */

/* The reason is worded from the older version to the newer, whichever reads. */
static void test_readable_wording(void) {
  tide_schema_t *old = parse("a int, b string, c int?"), *new = parse("a string, c int, d bool");
  tide_err_t err = {0, ""};
  /* new reads old (backward): a's type is the first field to fail */
  T_EQ_INT(tide_schema_readable(new, old, 0, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'a': type changed from int to string");
  /* old reads new (forward): same field, same direction of change */
  T_EQ_INT(tide_schema_readable(old, new, 1, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'a': type changed from int to string");
  tide_schema_unref(old);
  tide_schema_unref(new);

  old = parse("b string, c int?");
  new = parse("c int, d bool");
  T_EQ_INT(tide_schema_readable(new, old, 0, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'c' became NOT NULL");
  T_EQ_INT(tide_schema_readable(old, new, 1, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'b' was removed but has no default and is not nullable");
  tide_schema_unref(old);
  tide_schema_unref(new);

  old = parse("c int");
  new = parse("c int?, d bool");
  T_EQ_INT(tide_schema_readable(new, old, 0, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'd' was added without a default and is not nullable");
  T_EQ_INT(tide_schema_readable(old, new, 1, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'c' became nullable");
  tide_schema_unref(old);
  tide_schema_unref(new);
}

/* ------------------------------------------------------------ projection --- */

static int64_t i64_at(const tide_batch_t *b, uint32_t c, uint32_t r) { return tide_col_i64(&b->cols[c], r); }
static double f64_at(const tide_batch_t *b, uint32_t c, uint32_t r) { return tide_col_f64(&b->cols[c], r); }
static int null_at(const tide_batch_t *b, uint32_t c, uint32_t r) { return tide_col_is_null(&b->cols[c], r); }
static const char *str_at(const tide_batch_t *b, uint32_t c, uint32_t r) {
  static char buf[256];
  size_t len;
  const char *p = tide_col_str(&b->cols[c], r, &len);
  snprintf(buf, sizeof buf, "%.*s", (int)len, p);
  return buf;
}

#define FROM_DDL "ts timestamp, device string, signal int?, n int"
#define TO_DDL                                                                                       \
  "ts timestamp, signal double DEFAULT -1, n double, site string DEFAULT 'hq', note string?, "        \
  "flag bool DEFAULT true, meta json DEFAULT {\"k\":[1]}, at timestamp DEFAULT '2026-11-21T12:00:05Z'"

/* Rows (ts, device, signal, n): (1000, "a", 5, 7), (2000, "b", NULL, 8), (3000, "c", 9, 10). */
static tide_batch_t *from_rows(tide_schema_t *from) {
  tide_batch_t *b = tide_batch_new(from, 4);
  T_CHECK(b != NULL);
  for (int i = 0; i < 3; i++) {
    T_EQ_INT(tide_batch_row_begin(b), 0);
    tide_batch_set_i64(b, 0, 1000 * (i + 1));
    T_EQ_INT(tide_batch_set_str(b, 1, i == 0 ? "a" : i == 1 ? "b" : "c", 1), 0);
    if (i == 1) tide_batch_set_null(b, 2);
    else tide_batch_set_i64(b, 2, i == 0 ? 5 : 9);
    tide_batch_set_i64(b, 3, 7 + i);
    tide_batch_row_commit(b);
  }
  return b;
}

static void test_projection(void) {
  tide_schema_t *from = parse(FROM_DDL), *to = parse(TO_DDL);
  tide_batch_t *src = from_rows(from);
  tide_projection_t *p = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_projection_new(from, to, 0, &p, &err), 0);
  T_CHECK(p != NULL);
  if (!p) { /* nothing more can be checked */
    tide_batch_free(src);
    tide_schema_unref(from);
    tide_schema_unref(to);
    return;
  }
  tide_batch_t *dst = tide_batch_new(to, 4);
  T_EQ_INT(tide_projection_apply(p, src, 0, 3, dst), 0);
  T_EQ_INT(dst->nrows, 3);
  T_EQ_INT(dst->schema->nfields, 8); /* device dropped */
  for (uint32_t r = 0; r < 3; r++) {
    T_EQ_INT(i64_at(dst, 0, r), 1000 * (r + 1));
    T_CHECK(!null_at(dst, 1, r));
    T_CHECK(f64_at(dst, 2, r) == (double)(7 + r)); /* n: int widened */
    T_EQ_STR(str_at(dst, 3, r), "hq");             /* site: missing, default */
    T_CHECK(null_at(dst, 4, r));                   /* note: missing, nullable */
    T_CHECK(!null_at(dst, 5, r));
    T_EQ_INT(tide_col_bool(&dst->cols[5], r), 1);  /* flag: default true */
    T_EQ_STR(str_at(dst, 6, r), "{\"k\":[1]}");    /* meta: json default */
    T_EQ_INT(i64_at(dst, 7, r), 1795262405000);    /* at: timestamp default */
  }
  T_CHECK(f64_at(dst, 1, 0) == 5.0);  /* signal widened */
  T_CHECK(f64_at(dst, 1, 1) == -1.0); /* NULL -> the default of a NOT NULL field */
  T_CHECK(f64_at(dst, 1, 2) == 9.0);
  tide_batch_free(dst);

  /* a sub-range, appended after rows already there */
  dst = tide_batch_new(to, 4);
  T_EQ_INT(tide_projection_apply(p, src, 1, 3, dst), 0);
  T_EQ_INT(tide_projection_apply(p, src, 0, 1, dst), 0);
  T_EQ_INT(dst->nrows, 3);
  T_EQ_INT(i64_at(dst, 0, 0), 2000);
  T_EQ_INT(i64_at(dst, 0, 1), 3000);
  T_EQ_INT(i64_at(dst, 0, 2), 1000);
  T_CHECK(f64_at(dst, 1, 0) == -1.0);
  T_CHECK(f64_at(dst, 1, 2) == 5.0);
  /* an empty range adds nothing */
  T_EQ_INT(tide_projection_apply(p, src, 2, 2, dst), 0);
  T_EQ_INT(dst->nrows, 3);
  tide_batch_free(dst);

  tide_projection_free(p);
  tide_batch_free(src);
  tide_schema_unref(from);
  tide_schema_unref(to);
  tide_projection_free(NULL);
}

/* A nullable field read into a nullable field keeps its NULLs; the same
 * schema projects to itself. */
static void test_projection_identity(void) {
  tide_schema_t *from = parse(FROM_DDL);
  tide_batch_t *src = from_rows(from);
  tide_projection_t *p = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_projection_new(from, from, 0, &p, &err), 0);
  tide_batch_t *dst = tide_batch_new(from, 4);
  T_EQ_INT(tide_projection_apply(p, src, 0, 3, dst), 0);
  T_EQ_INT(dst->nrows, 3);
  T_EQ_STR(str_at(dst, 1, 2), "c");
  T_EQ_INT(i64_at(dst, 2, 0), 5);
  T_CHECK(null_at(dst, 2, 1));
  T_EQ_INT(i64_at(dst, 3, 2), 9);
  tide_batch_free(dst);
  tide_projection_free(p);
  tide_batch_free(src);
  tide_schema_unref(from);
}

/* A projection the rules forbid is refused, worded by which side is older,
 * and nothing is allocated. */
static void test_projection_refused(void) {
  tide_schema_t *from = parse(FROM_DDL);
  tide_schema_t *to1 = parse("ts timestamp, site string");
  tide_schema_t *to2 = parse("ts timestamp, device int");
  tide_schema_t *to3 = parse("ts timestamp, signal int");
  tide_projection_t *p = (tide_projection_t *)&p; /* must stay untouched */
  tide_projection_t *const sentinel = p;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_projection_new(from, to1, 0, &p, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'site' was added without a default and is not nullable");
  T_EQ_INT(tide_projection_new(from, to1, 1, &p, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'site' was removed but has no default and is not nullable");
  T_EQ_INT(tide_projection_new(from, to2, 0, &p, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'device': type changed from string to int");
  T_EQ_INT(tide_projection_new(from, to3, 0, &p, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'signal' became NOT NULL");
  T_EQ_INT(tide_projection_new(from, to3, 1, &p, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'signal' became nullable");
  T_CHECK(p == sentinel);
  tide_schema_unref(from);
  tide_schema_unref(to1);
  tide_schema_unref(to2);
  tide_schema_unref(to3);
}

int main(void) {
  T_RUN(test_rule_table);
  T_RUN(test_first_version);
  T_RUN(test_mode_names);
  T_RUN(test_readable_wording);
  T_RUN(test_projection);
  T_RUN(test_projection_identity);
  T_RUN(test_projection_refused);
  T_DONE();
}
