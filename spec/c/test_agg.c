/*
 * test_agg.c: hash aggregation, and the aggregation operator (tide_agg_push:
 * filters, windows, late pairs, time statistics). Every aggregate with
 * NULLs (all-NULL groups, NULL keys as a group of their own), key types
 * (inline and arena strings, NaN and -0.0, bool, json, no keys at all),
 * wrapping sums, min/max of strings, first/last order, count_distinct exactness, table growth,
 * memory that grows with groups only, the errors, and 100k random rows
 * checked against a naive reference and fed whole or in random slices.
 * Frees everything it makes.
 */
#include <math.h>
#include <stdint.h>

#include "agg.h"
#include "crc32c.h"
#include "t.h"
#include "vec.h"
#include "window.h"

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s: %s\n", ddl, err.msg);
  return s;
}

static int str_eq(const tide_col_t *c, uint32_t r, const char *want) {
  size_t n;
  const char *p = tide_col_str(c, r, &n);
  return !tide_col_is_null(c, r) && n == strlen(want) && (!n || !memcmp(p, want, n));
}

/* A batch of schema ks viewing the first nk columns of b (no copy). */
static tide_batch_t *key_view(tide_schema_t *ks, const tide_batch_t *b) {
  return tide_batch_borrowed(ks, b->nrows, b->cols, NULL, NULL);
}

/* 1 when a and b hold the same rows (types, NULLs, values bitwise). */
static int batch_same(const tide_batch_t *a, const tide_batch_t *b) {
  if (a->nrows != b->nrows || a->schema->nfields != b->schema->nfields) return 0;
  for (uint32_t c = 0; c < a->schema->nfields; c++) {
    const tide_col_t *x = &a->cols[c], *y = &b->cols[c];
    if (x->type != y->type) return 0;
    for (uint32_t i = 0; i < a->nrows; i++) {
      int nx = tide_col_is_null(x, i), ny = tide_col_is_null(y, i);
      if (nx != ny) return 0;
      if (nx) continue;
      if (x->type == TIDE_T_STRING || x->type == TIDE_T_JSON) {
        size_t lx, ly;
        const char *px = tide_col_str(x, i, &lx), *py = tide_col_str(y, i, &ly);
        if (lx != ly || (lx && memcmp(px, py, lx))) return 0;
      } else if (x->type == TIDE_T_BOOL) {
        if (tide_col_bool(x, i) != tide_col_bool(y, i)) return 0;
      } else if (tide_col_i64(x, i) != tide_col_i64(y, i)) {
        return 0;
      }
    }
  }
  return 1;
}

/* ------------------------------------------------------------ basics --- */

/* Rows: (k, x, s) with a NULL key group, an all-NULL x group and NULL
 * strings; every aggregate over them. */
static void test_every_aggregate(void) {
  tide_schema_t *in = schema("k string?, x int?, s string?, d double?");
  tide_schema_t *ks = schema("k string?");
  tide_batch_t *b = tide_batch_new(in, 0);
  struct {
    const char *k;
    int xnull;
    int64_t x;
    const char *s;
    double d;
  } rows[] = {
      {"a", 0, 5, "pear", 1.5},  {"b", 1, 0, NULL, NAN},     {NULL, 0, 7, "fig", 2.0}, {"a", 1, 0, NULL, -1},
      {"a", 0, -2, "apple", 3},  {"b", 1, 0, "kiwi", NAN},   {NULL, 0, 7, "fig", 0},   {"a", 0, 5, "zucchini", -2},
      {"c", 1, 0, NULL, 0.0},
  };
  uint32_t nrows = sizeof rows / sizeof rows[0];
  for (uint32_t i = 0; i < nrows; i++) {
    tide_batch_row_begin(b);
    if (rows[i].k) tide_batch_set_str(b, 0, rows[i].k, strlen(rows[i].k));
    if (!rows[i].xnull) tide_batch_set_i64(b, 1, rows[i].x);
    if (rows[i].s) tide_batch_set_str(b, 2, rows[i].s, strlen(rows[i].s));
    if (!isnan(rows[i].d) || i != 1) tide_batch_set_f64(b, 3, rows[i].d); /* row 1: NULL d; row 5: NaN */
    tide_batch_row_commit(b);
  }
  tide_agg_spec_t sp[] = {
      {TIDE_AGG_COUNT_STAR, 0, "n"},           {TIDE_AGG_COUNT, TIDE_T_INT, "nx"},
      {TIDE_AGG_SUM, TIDE_T_INT, "sx"},        {TIDE_AGG_AVG, TIDE_T_INT, "ax"},
      {TIDE_AGG_MIN, TIDE_T_INT, "minx"},      {TIDE_AGG_MAX, TIDE_T_INT, "maxx"},
      {TIDE_AGG_MIN, TIDE_T_STRING, "mins"},   {TIDE_AGG_MAX, TIDE_T_STRING, "maxs"},
      {TIDE_AGG_FIRST, TIDE_T_STRING, "fs"},   {TIDE_AGG_LAST, TIDE_T_STRING, "ls"},
      {TIDE_AGG_FIRST, TIDE_T_INT, "fx"},      {TIDE_AGG_LAST, TIDE_T_INT, "lx"},
      {TIDE_AGG_COUNT_DISTINCT, TIDE_T_INT, "dx"}, {TIDE_AGG_COUNT_DISTINCT, TIDE_T_STRING, "ds"},
      {TIDE_AGG_SUM, TIDE_T_DOUBLE, "sd"},     {TIDE_AGG_MAX, TIDE_T_DOUBLE, "maxd"},
      {TIDE_AGG_MIN, TIDE_T_DOUBLE, "mind"},
  };
  uint32_t ns = sizeof sp / sizeof sp[0];
  const tide_col_t *args[17];
  int argcol[] = {-1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 1, 1, 1, 2, 3, 3, 3};
  for (uint32_t i = 0; i < ns; i++) args[i] = argcol[i] < 0 ? NULL : &b->cols[argcol[i]];
  tide_agg_t *a = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_new(ks, sp, ns, &a, &err), 0);
  tide_batch_t *kb = key_view(ks, b);
  T_EQ_INT(tide_agg_update(a, kb, args, &err), 0);
  T_EQ_INT(tide_agg_groups(a), 4);
  tide_batch_t *r = NULL;
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  tide_schema_t *os = tide_agg_schema(a);
  T_EQ_INT(os->nfields, 1 + ns);
  T_EQ_STR(os->fields[1].name, "n");
  T_EQ_INT(os->fields[1].nullable, 0);
  T_EQ_INT(os->fields[2].nullable, 0);
  T_EQ_INT(os->fields[3].nullable, 1);
  T_EQ_INT(os->fields[4].type, TIDE_T_DOUBLE);
  T_EQ_INT(os->fields[7].type, TIDE_T_STRING);
  T_EQ_INT(os->fields[13].type, TIDE_T_INT);
  T_EQ_INT(r->nrows, 4);
  const tide_col_t *c = r->cols;
  /* first-seen order: a, b, NULL, c */
  T_CHECK(str_eq(&c[0], 0, "a"));
  T_CHECK(str_eq(&c[0], 1, "b"));
  T_CHECK(tide_col_is_null(&c[0], 2));
  T_CHECK(str_eq(&c[0], 3, "c"));
  /* group a: x = 5, NULL, -2, 5; s = pear, NULL, apple, zucchini */
  T_EQ_INT(tide_col_i64(&c[1], 0), 4);
  T_EQ_INT(tide_col_i64(&c[2], 0), 3);
  T_EQ_INT(tide_col_i64(&c[3], 0), 8);
  T_CHECK(tide_col_f64(&c[4], 0) == 8.0 / 3);
  T_EQ_INT(tide_col_i64(&c[5], 0), -2);
  T_EQ_INT(tide_col_i64(&c[6], 0), 5);
  T_CHECK(str_eq(&c[7], 0, "apple"));
  T_CHECK(str_eq(&c[8], 0, "zucchini"));
  T_CHECK(str_eq(&c[9], 0, "pear"));
  T_CHECK(str_eq(&c[10], 0, "zucchini"));
  T_EQ_INT(tide_col_i64(&c[11], 0), 5);
  T_EQ_INT(tide_col_i64(&c[12], 0), 5);
  T_EQ_INT(tide_col_i64(&c[13], 0), 2);
  T_EQ_INT(tide_col_i64(&c[14], 0), 3);
  T_CHECK(tide_col_f64(&c[15], 0) == 1.5);
  T_CHECK(tide_col_f64(&c[16], 0) == 3);
  T_CHECK(tide_col_f64(&c[17], 0) == -2);
  /* group b: x all NULL; s = NULL, kiwi; d = NULL, NaN */
  T_EQ_INT(tide_col_i64(&c[1], 1), 2);
  T_EQ_INT(tide_col_i64(&c[2], 1), 0);
  for (int f = 3; f <= 6; f++) T_CHECK(tide_col_is_null(&c[f], 1));
  T_CHECK(str_eq(&c[7], 1, "kiwi"));
  T_CHECK(str_eq(&c[8], 1, "kiwi"));
  T_CHECK(tide_col_is_null(&c[9], 1)); /* first is the NULL of the first row */
  T_CHECK(str_eq(&c[10], 1, "kiwi"));
  T_CHECK(tide_col_is_null(&c[11], 1));
  T_CHECK(tide_col_is_null(&c[12], 1));
  T_EQ_INT(tide_col_i64(&c[13], 1), 0);
  T_EQ_INT(tide_col_i64(&c[14], 1), 1);
  T_CHECK(isnan(tide_col_f64(&c[15], 1)));
  T_CHECK(isnan(tide_col_f64(&c[16], 1)));
  T_CHECK(isnan(tide_col_f64(&c[17], 1)));
  /* the NULL key group: x = 7, 7; s = fig, fig */
  T_EQ_INT(tide_col_i64(&c[1], 2), 2);
  T_EQ_INT(tide_col_i64(&c[3], 2), 14);
  T_EQ_INT(tide_col_i64(&c[13], 2), 1);
  T_EQ_INT(tide_col_i64(&c[14], 2), 1);
  T_CHECK(tide_col_f64(&c[15], 2) == 2.0);
  /* group c: one row, everything NULL but d = 0.0 */
  T_EQ_INT(tide_col_i64(&c[1], 3), 1);
  T_EQ_INT(tide_col_i64(&c[2], 3), 0);
  for (int f = 3; f <= 12; f++) T_CHECK(tide_col_is_null(&c[f], 3));
  T_EQ_INT(tide_col_i64(&c[13], 3), 0);
  T_EQ_INT(tide_col_i64(&c[14], 3), 0);
  T_CHECK(tide_col_f64(&c[15], 3) == 0.0);
  /* the counts never NULL; the result is a copy: the aggregation goes on */
  T_EQ_INT(c[1].null_count, 0);
  T_EQ_INT(c[14].null_count, 0);
  T_EQ_INT(tide_agg_update(a, kb, args, &err), 0);
  tide_batch_t *r2 = NULL;
  T_EQ_INT(tide_agg_result(a, &r2, &err), 0);
  T_EQ_INT(tide_col_i64(&r2->cols[1], 0), 8);
  T_EQ_INT(tide_col_i64(&r2->cols[3], 0), 16);
  T_CHECK(str_eq(&r2->cols[9], 0, "pear"));
  T_EQ_INT(tide_col_i64(&r2->cols[14], 0), 3);
  T_CHECK(str_eq(&r->cols[9], 0, "pear")); /* the earlier result is untouched */
  tide_batch_free(r2);
  tide_batch_free(r);
  tide_batch_free(kb);
  tide_batch_free(b);
  tide_agg_free(a);
  tide_schema_unref(in);
  tide_schema_unref(ks);
}

static void test_errors(void) {
  tide_schema_t *ks = schema("k int");
  tide_agg_t *a = (tide_agg_t *)1;
  tide_err_t err = {0, ""};
  tide_agg_spec_t bad[] = {{TIDE_AGG_SUM, TIDE_T_STRING, "s"}};
  T_EQ_INT(tide_agg_new(ks, bad, 1, &a, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "sum needs a number, got string");
  T_CHECK(a == NULL);
  bad[0] = (tide_agg_spec_t){TIDE_AGG_AVG, TIDE_T_BOOL, "s"};
  T_EQ_INT(tide_agg_new(ks, bad, 1, &a, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "avg needs a number, got bool");
  bad[0] = (tide_agg_spec_t){TIDE_AGG_COUNT, TIDE_T_INT, "k"}; /* clashes with the key */
  T_EQ_INT(tide_agg_new(ks, bad, 1, &a, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "duplicate field 'k'");
  bad[0] = (tide_agg_spec_t){(tide_agg_kind_t)99, TIDE_T_INT, "x"};
  T_EQ_INT(tide_agg_new(ks, bad, 1, &a, &err), TIDE_EINVAL);

  tide_agg_spec_t ok[] = {{TIDE_AGG_COUNT_STAR, 0, "n"}, {TIDE_AGG_SUM, TIDE_T_INT, "s"}};
  T_EQ_INT(tide_agg_new(ks, ok, 2, &a, &err), 0);
  tide_schema_t *other = schema("k string, v int, w double");
  tide_batch_t *b = tide_batch_new(other, 0);
  tide_batch_row_begin(b);
  tide_batch_set_str(b, 0, "x", 1);
  tide_batch_set_i64(b, 1, 1);
  tide_batch_row_commit(b);
  tide_schema_t *one = schema("k string");
  tide_batch_t *kb = key_view(one, b);
  const tide_col_t *args[] = {NULL, &b->cols[1]};
  T_EQ_INT(tide_agg_update(a, kb, args, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "key column 0: expected int, got string");
  tide_batch_t *kb2 = tide_batch_borrowed(ks, 1, &b->cols[1], NULL, NULL);
  const tide_col_t *args2[] = {NULL, &b->cols[2]};
  T_EQ_INT(tide_agg_update(a, kb2, args2, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "aggregate 1 (sum): the argument is double, expected int");
  const tide_col_t *args3[] = {NULL, NULL};
  T_EQ_INT(tide_agg_update(a, kb2, args3, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "aggregate 1 (sum): no argument column");
  T_EQ_INT(tide_agg_groups(a), 0); /* nothing changed */
  T_EQ_INT(tide_agg_update(a, kb2, args, &err), 0);
  T_EQ_INT(tide_agg_groups(a), 1);
  tide_batch_free(kb);
  tide_batch_free(kb2);
  tide_batch_free(b);
  tide_agg_free(a);
  tide_agg_free(NULL);
  tide_schema_unref(one);
  tide_schema_unref(other);
  tide_schema_unref(ks);
}

/* int sums wrap as Java's long does; double sums do not. */
static void test_wrapping_sum(void) {
  tide_schema_t *in = schema("k int, v int");
  tide_schema_t *ks = schema("k int");
  tide_batch_t *b = tide_batch_new(in, 0);
  int64_t vals[] = {INT64_MAX, 1, INT64_MIN, -1, INT64_MAX, INT64_MAX};
  for (int i = 0; i < 6; i++) {
    tide_batch_row_begin(b);
    tide_batch_set_i64(b, 0, i < 2 ? 0 : i < 4 ? 1 : 2);
    tide_batch_set_i64(b, 1, vals[i]);
    tide_batch_row_commit(b);
  }
  tide_agg_spec_t sp[] = {{TIDE_AGG_SUM, TIDE_T_INT, "s"}, {TIDE_AGG_AVG, TIDE_T_INT, "a"}};
  tide_agg_t *a;
  tide_err_t err;
  T_EQ_INT(tide_agg_new(ks, sp, 2, &a, &err), 0);
  tide_batch_t *kb = key_view(ks, b);
  const tide_col_t *args[] = {&b->cols[1], &b->cols[1]};
  T_EQ_INT(tide_agg_update(a, kb, args, &err), 0);
  tide_batch_t *r;
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  T_CHECK(tide_col_i64(&r->cols[1], 0) == INT64_MIN);
  T_CHECK(tide_col_i64(&r->cols[1], 1) == INT64_MAX);
  T_CHECK(tide_col_i64(&r->cols[1], 2) == -2);
  T_CHECK(tide_col_f64(&r->cols[2], 2) == (double)INT64_MAX); /* avg sums as double */
  tide_batch_free(r);
  tide_batch_free(kb);
  tide_batch_free(b);
  tide_agg_free(a);
  tide_schema_unref(in);
  tide_schema_unref(ks);
}

/* min/max of strings: bytewise, across short (inline) and long values,
 * with a longer value replaced by a shorter one and back; of doubles: NaN
 * is the greatest. */
static void test_min_max(void) {
  tide_schema_t *in = schema("k int, s string?, d double?, f bool?");
  tide_schema_t *ks = schema("k int");
  tide_batch_t *b = tide_batch_new(in, 0);
  const char *ss[] = {"mango", "a very long string value indeed", "", "b", "\xc3\xa9t\xc3\xa9", "zz", NULL, "zzz"};
  double ds[] = {1, -0.0, NAN, -5, 7, 0, 3, -5};
  for (int i = 0; i < 8; i++) {
    tide_batch_row_begin(b);
    tide_batch_set_i64(b, 0, 1);
    if (ss[i]) tide_batch_set_str(b, 1, ss[i], strlen(ss[i]));
    tide_batch_set_f64(b, 2, ds[i]);
    if (i == 3) tide_batch_set_bool(b, 3, 1);
    if (i == 5) tide_batch_set_bool(b, 3, 0);
    tide_batch_row_commit(b);
  }
  tide_agg_spec_t sp[] = {{TIDE_AGG_MIN, TIDE_T_STRING, "mins"}, {TIDE_AGG_MAX, TIDE_T_STRING, "maxs"},
                          {TIDE_AGG_MIN, TIDE_T_DOUBLE, "mind"}, {TIDE_AGG_MAX, TIDE_T_DOUBLE, "maxd"},
                          {TIDE_AGG_MIN, TIDE_T_BOOL, "minf"},   {TIDE_AGG_MAX, TIDE_T_BOOL, "maxf"}};
  tide_agg_t *a;
  tide_err_t err;
  T_EQ_INT(tide_agg_new(ks, sp, 6, &a, &err), 0);
  /* one row per batch: the string states are rewritten in place */
  for (uint32_t i = 0; i < 8; i++) {
    tide_batch_t *row;
    T_EQ_INT(tide_batch_slice(b, i, i + 1, &row), 0);
    tide_batch_t *kb = key_view(ks, row);
    const tide_col_t *args[] = {&row->cols[1], &row->cols[1], &row->cols[2], &row->cols[2], &row->cols[3],
                                &row->cols[3]};
    T_EQ_INT(tide_agg_update(a, kb, args, &err), 0);
    tide_batch_free(kb);
    tide_batch_free(row);
  }
  tide_batch_t *r;
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  T_CHECK(str_eq(&r->cols[1], 0, ""));
  T_CHECK(str_eq(&r->cols[2], 0, "\xc3\xa9t\xc3\xa9"));
  T_CHECK(tide_col_f64(&r->cols[3], 0) == -5);
  T_CHECK(isnan(tide_col_f64(&r->cols[4], 0)));
  T_EQ_INT(tide_col_bool(&r->cols[5], 0), 0);
  T_EQ_INT(tide_col_bool(&r->cols[6], 0), 1);
  tide_batch_free(r);
  tide_agg_free(a);
  /* max over strings growing, then min over strings shrinking */
  T_EQ_INT(tide_agg_new(ks, sp, 2, &a, &err), 0);
  tide_batch_t *g = tide_batch_new(in, 0);
  char buf[300];
  for (int i = 0; i < 200; i++) {
    int len = i < 100 ? i + 1 : 200 - i;
    memset(buf, i < 100 ? 'a' + i % 26 : 'z', (size_t)len);
    tide_batch_row_begin(g);
    tide_batch_set_i64(g, 0, 1);
    tide_batch_set_str(g, 1, buf, (size_t)len);
    tide_batch_row_commit(g);
  }
  tide_batch_t *kb = key_view(ks, g);
  const tide_col_t *args[] = {&g->cols[1], &g->cols[1]};
  T_EQ_INT(tide_agg_update(a, kb, args, &err), 0);
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  T_CHECK(str_eq(&r->cols[1], 0, "a"));
  memset(buf, 'z', 100);
  buf[100] = 0;
  T_CHECK(str_eq(&r->cols[2], 0, buf));
  tide_batch_free(r);
  tide_batch_free(kb);
  tide_batch_free(g);
  tide_agg_free(a);
  tide_batch_free(b);
  tide_schema_unref(in);
  tide_schema_unref(ks);
}

/* Key values of every type: NULL and 0 and "" are three groups; NaN is one
 * group and -0.0 joins 0.0 (Spark normalises them); long strings (kept in
 * the arena) and short ones (inline) that share prefixes stay apart. */
static void test_key_types(void) {
  tide_schema_t *in = schema("s string?, d double?, f bool?, t timestamp?, j json?");
  tide_batch_t *b = tide_batch_new(in, 0);
  const char *ss[] = {"", NULL, "abcdefghijkl", "abcdefghijklm", "abcdefghijklm", "abcdefghijkx", "abcdefghijklmn",
                      "", "abcdefghijklm"};
  double ds[] = {0.0, -0.0, NAN, -NAN, 1, 2, 3, 4, 5};
  uint32_t n = 9;
  for (uint32_t i = 0; i < n; i++) {
    tide_batch_row_begin(b);
    if (ss[i]) tide_batch_set_str(b, 0, ss[i], strlen(ss[i]));
    if (i != 8) tide_batch_set_f64(b, 1, ds[i]);
    if (i % 3) tide_batch_set_bool(b, 2, i % 3 == 1);
    if (i != 4) tide_batch_set_i64(b, 3, i == 0 ? 0 : -1000);
    if (i == 5) tide_batch_set_str(b, 4, "{\"a\":1}", 7);
    tide_batch_row_commit(b);
  }
  tide_err_t err;
  tide_agg_spec_t sp[] = {{TIDE_AGG_COUNT_STAR, 0, "n"}};
  struct {
    const char *ddl;
    uint32_t col;
    uint64_t groups;
  } cases[] = {
      {"s string?", 0, 6},      /* "", NULL, l12, l13, x12, l14 */
      {"d double?", 1, 7},      /* 0 (with -0.0), NaN, 1, 2, 3, 4, NULL */
      {"f bool?", 2, 3},        /* NULL, true, false */
      {"t timestamp?", 3, 3},   /* 0, -1000, NULL */
      {"j json?", 4, 2},
  };
  for (int c = 0; c < 5; c++) {
    tide_schema_t *ks = schema(cases[c].ddl);
    tide_agg_t *a;
    T_EQ_INT(tide_agg_new(ks, sp, 1, &a, &err), 0);
    tide_batch_t *kb = tide_batch_borrowed(ks, n, &b->cols[cases[c].col], NULL, NULL);
    T_EQ_INT(tide_agg_update(a, kb, NULL, &err), 0);
    T_EQ_INT(tide_agg_update(a, kb, NULL, &err), 0);
    T_EQ_INT(tide_agg_groups(a), cases[c].groups);
    tide_batch_t *r;
    T_EQ_INT(tide_agg_result(a, &r, &err), 0);
    if (c == 0) {
      T_CHECK(str_eq(&r->cols[0], 0, ""));
      T_EQ_INT(tide_col_i64(&r->cols[1], 0), 4);
      T_CHECK(tide_col_is_null(&r->cols[0], 1));
      T_CHECK(str_eq(&r->cols[0], 2, "abcdefghijkl"));
      T_CHECK(str_eq(&r->cols[0], 3, "abcdefghijklm"));
      T_EQ_INT(tide_col_i64(&r->cols[1], 3), 6);
      T_CHECK(str_eq(&r->cols[0], 4, "abcdefghijkx"));
      T_CHECK(str_eq(&r->cols[0], 5, "abcdefghijklmn"));
    }
    if (c == 1) {
      T_CHECK(tide_col_f64(&r->cols[0], 0) == 0 && !signbit(tide_col_f64(&r->cols[0], 0)));
      T_EQ_INT(tide_col_i64(&r->cols[1], 0), 4);
      T_CHECK(isnan(tide_col_f64(&r->cols[0], 1)));
      T_EQ_INT(tide_col_i64(&r->cols[1], 1), 4);
      T_CHECK(tide_col_is_null(&r->cols[0], 6));
    }
    if (c == 2) {
      T_CHECK(tide_col_is_null(&r->cols[0], 0));
      T_EQ_INT(tide_col_bool(&r->cols[0], 1), 1);
      T_EQ_INT(tide_col_bool(&r->cols[0], 2), 0);
      T_EQ_INT(tide_col_i64(&r->cols[1], 2), 6);
    }
    if (c == 3) {
      T_EQ_INT(tide_col_i64(&r->cols[0], 1), -1000);
      T_CHECK(tide_col_is_null(&r->cols[0], 2));
    }
    if (c == 4) T_CHECK(str_eq(&r->cols[0], 1, "{\"a\":1}"));
    tide_batch_free(r);
    tide_batch_free(kb);
    tide_agg_free(a);
    tide_schema_unref(ks);
  }
  tide_batch_free(b);
  tide_schema_unref(in);
}

/* No key columns: one global group (or none before any row). */
static void test_no_keys(void) {
  tide_schema_t *ks = tide_schema_new();
  tide_schema_t *in = schema("v int?");
  tide_agg_spec_t sp[] = {{TIDE_AGG_COUNT_STAR, 0, "n"}, {TIDE_AGG_SUM, TIDE_T_INT, "s"}};
  tide_agg_t *a;
  tide_err_t err;
  T_EQ_INT(tide_agg_new(ks, sp, 2, &a, &err), 0);
  tide_batch_t *r;
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  T_EQ_INT(r->nrows, 0);
  tide_batch_free(r);
  tide_batch_t *b = tide_batch_new(in, 0);
  for (int i = 0; i < 10; i++) {
    tide_batch_row_begin(b);
    if (i % 2) tide_batch_set_i64(b, 0, i);
    tide_batch_row_commit(b);
  }
  tide_batch_t *kb = tide_batch_borrowed(ks, b->nrows, NULL, NULL, NULL);
  const tide_col_t *args[] = {NULL, &b->cols[0]};
  T_EQ_INT(tide_agg_update(a, kb, args, &err), 0);
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  T_EQ_INT(r->nrows, 1);
  T_EQ_INT(tide_col_i64(&r->cols[0], 0), 10);
  T_EQ_INT(tide_col_i64(&r->cols[1], 0), 25);
  tide_batch_free(r);
  tide_batch_free(kb);
  tide_batch_free(b);
  tide_agg_free(a);
  tide_schema_unref(in);
  tide_schema_unref(ks);
}

/* count_distinct is exact: 60k distinct values in one group, each seen
 * three times, across batches; NaN counts once; -0.0 is 0.0. */
static void test_count_distinct_exact(void) {
  tide_schema_t *in = schema("k int, v int, s string, d double");
  tide_schema_t *ks = schema("k int");
  tide_agg_spec_t sp[] = {{TIDE_AGG_COUNT_DISTINCT, TIDE_T_INT, "dv"},
                          {TIDE_AGG_COUNT_DISTINCT, TIDE_T_STRING, "ds"},
                          {TIDE_AGG_COUNT_DISTINCT, TIDE_T_DOUBLE, "dd"}};
  tide_agg_t *a;
  tide_err_t err;
  T_EQ_INT(tide_agg_new(ks, sp, 3, &a, &err), 0);
  for (int rep = 0; rep < 3; rep++) {
    tide_batch_t *b = tide_batch_new(in, 0);
    for (int64_t i = 0; i < 60000; i++) {
      char txt[40];
      int len = snprintf(txt, sizeof txt, i % 2 ? "value number %lld" : "v%lld", (long long)(i * 7919 % 60000));
      tide_batch_row_begin(b);
      tide_batch_set_i64(b, 0, i % 2); /* two groups of 30000 */
      tide_batch_set_i64(b, 1, (i * 7919 % 60000) << 20);
      tide_batch_set_str(b, 2, txt, (size_t)len);
      tide_batch_set_f64(b, 3, i % 3 == 0 ? NAN : i % 3 == 1 ? -0.0 : 0.0);
      tide_batch_row_commit(b);
    }
    tide_batch_t *kb = key_view(ks, b);
    const tide_col_t *args[] = {&b->cols[1], &b->cols[2], &b->cols[3]};
    T_EQ_INT(tide_agg_update(a, kb, args, &err), 0);
    tide_batch_free(kb);
    tide_batch_free(b);
  }
  tide_batch_t *r;
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  T_EQ_INT(r->nrows, 2);
  T_EQ_INT(tide_col_i64(&r->cols[1], 0), 30000);
  T_EQ_INT(tide_col_i64(&r->cols[1], 1), 30000);
  T_EQ_INT(tide_col_i64(&r->cols[2], 0), 30000);
  T_EQ_INT(tide_col_i64(&r->cols[2], 1), 30000);
  T_EQ_INT(tide_col_i64(&r->cols[3], 0), 2);
  T_EQ_INT(tide_col_i64(&r->cols[3], 1), 2);
  tide_batch_free(r);
  tide_agg_free(a);
  tide_schema_unref(in);
  tide_schema_unref(ks);
}

/* 200k groups grow the table and the group arrays many times; feeding the
 * same keys again adds no memory (memory grows with groups, not rows). */
static void test_growth_and_memory(void) {
  tide_schema_t *in = schema("a int, b string");
  tide_agg_spec_t sp[] = {{TIDE_AGG_COUNT_STAR, 0, "n"}, {TIDE_AGG_SUM, TIDE_T_INT, "s"}};
  tide_agg_t *a;
  tide_err_t err;
  T_EQ_INT(tide_agg_new(in, sp, 2, &a, &err), 0);
  tide_batch_t *b = tide_batch_new(in, 0);
  for (int64_t i = 0; i < 200000; i++) {
    char txt[32];
    int len = snprintf(txt, sizeof txt, "%s%lld", i % 2 ? "long-device-name-" : "d", (long long)(i / 7));
    tide_batch_row_begin(b);
    tide_batch_set_i64(b, 0, i % 7);
    tide_batch_set_str(b, 1, txt, (size_t)len);
    tide_batch_row_commit(b);
  }
  const tide_col_t *args[] = {NULL, &b->cols[0]};
  T_EQ_INT(tide_agg_update(a, b, args, &err), 0);
  T_EQ_INT(tide_agg_groups(a), 200000);
  size_t bytes = tide_agg_bytes(a);
  for (int rep = 0; rep < 3; rep++) T_EQ_INT(tide_agg_update(a, b, args, &err), 0);
  T_EQ_INT(tide_agg_groups(a), 200000);
  T_EQ_INT(tide_agg_bytes(a), bytes);
  tide_batch_t *r;
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  int bad = 0;
  for (uint32_t g = 0; g < r->nrows; g++) {
    if (tide_col_i64(&r->cols[0], g) != g % 7 || tide_col_i64(&r->cols[2], g) != 4) bad++;
    if (tide_col_i64(&r->cols[3], g) != 4 * (int64_t)(g % 7)) bad++;
  }
  T_EQ_INT(bad, 0);
  tide_batch_free(r);
  tide_batch_free(b);
  tide_agg_free(a);
  tide_schema_unref(in);
}

/* -------------------------------------------------------- randomized --- */

static uint64_t rng_state = 42;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

#define K1 40 /* k1: NULL or 0..K1-1 */
#define K2 25 /* k2: NULL or one of K2 strings */
#define NS 12 /* string values of s */
#define NG ((K1 + 1) * (K2 + 1))

static const char *k2s(int i, char *buf) {
  snprintf(buf, 40, i % 3 ? "device-%d" : "a-much-longer-device-name-%d", i);
  return buf;
}

/* Per key index: what a naive pass computes. */
typedef struct ref {
  int64_t first_row, n, nx, nd, ns_nonnull;
  uint64_t sx;
  double sd, ax;
  int64_t minx, maxx;
  int has_x, has_d;
  double mind, maxd;
  int first_seen;
  int64_t fx, lx;
  int fx_null, lx_null;
  int mins, maxs, fs, ls; /* string index, -1 NULL */
  uint8_t seen_v[64];     /* distinct x (0..63) */
  uint8_t seen_s[NS];
} ref_t;

static void test_random_vs_reference_and_splits(void) {
  tide_schema_t *in = schema("k1 int?, k2 string?, x int?, d double?, s string?");
  tide_schema_t *ks = schema("k1 int?, k2 string?");
  const uint32_t N = 100000;
  tide_batch_t *b = tide_batch_new(in, N);
  static ref_t ref[NG];
  memset(ref, 0, sizeof ref);
  char sv[NS][40];
  for (int i = 0; i < NS; i++) snprintf(sv[i], 40, i % 2 ? "s%02d" : "string value number %02d", i);
  for (uint32_t r = 0; r < N; r++) {
    int k1 = (int)(rnd() % (K1 + 1)) - 1, k2 = (int)(rnd() % (K2 + 1)) - 1;
    int xnull = rnd() % 5 == 0, dnull = rnd() % 7 == 0, snull = rnd() % 4 == 0;
    int64_t x = (int64_t)(rnd() % 64) - 20;
    if (rnd() % 1000 == 0) x = INT64_MAX - (int64_t)(rnd() % 3); /* makes sums wrap */
    double d = (double)(rnd() % 2001) / 8 - 100;
    int s = (int)(rnd() % NS);
    char kb2[40];
    tide_batch_row_begin(b);
    if (k1 >= 0) tide_batch_set_i64(b, 0, k1);
    if (k2 >= 0) {
      k2s(k2, kb2);
      tide_batch_set_str(b, 1, kb2, strlen(kb2));
    }
    if (!xnull) tide_batch_set_i64(b, 2, x);
    if (!dnull) tide_batch_set_f64(b, 3, d);
    if (!snull) tide_batch_set_str(b, 4, sv[s], strlen(sv[s]));
    tide_batch_row_commit(b);
    ref_t *g = &ref[(k1 + 1) * (K2 + 1) + (k2 + 1)];
    if (!g->first_seen) {
      g->first_seen = 1;
      g->first_row = r;
      g->fx = x;
      g->fx_null = xnull;
      g->fs = snull ? -1 : s;
      g->mins = g->maxs = -1;
    }
    g->n++;
    g->lx = x;
    g->lx_null = xnull;
    g->ls = snull ? -1 : s;
    if (!xnull) {
      g->nx++;
      g->sx += (uint64_t)x;
      g->ax += (double)x;
      if (!g->has_x || x < g->minx) g->minx = x;
      if (!g->has_x || x > g->maxx) g->maxx = x;
      g->has_x = 1;
      if (x >= -20 && x < 44 && !g->seen_v[x + 20]) {
        g->seen_v[x + 20] = 1;
        g->nd++;
      }
    }
    if (!dnull) {
      g->sd += d;
      if (!g->has_d || d < g->mind) g->mind = d;
      if (!g->has_d || d > g->maxd) g->maxd = d;
      g->has_d = 1;
    }
    if (!snull) {
      if (g->mins < 0 || strcmp(sv[s], sv[g->mins]) < 0) g->mins = s;
      if (g->maxs < 0 || strcmp(sv[s], sv[g->maxs]) > 0) g->maxs = s;
      if (!g->seen_s[s]) {
        g->seen_s[s] = 1;
        g->ns_nonnull++;
      }
    }
  }
  /* count the distinct huge x values too: they are INT64_MAX - 0..2 */
  tide_agg_spec_t sp[] = {
      {TIDE_AGG_COUNT_STAR, 0, "n"},          {TIDE_AGG_COUNT, TIDE_T_INT, "nx"},
      {TIDE_AGG_SUM, TIDE_T_INT, "sx"},       {TIDE_AGG_SUM, TIDE_T_DOUBLE, "sd"},
      {TIDE_AGG_AVG, TIDE_T_INT, "ax"},       {TIDE_AGG_MIN, TIDE_T_INT, "minx"},
      {TIDE_AGG_MAX, TIDE_T_INT, "maxx"},     {TIDE_AGG_MIN, TIDE_T_DOUBLE, "mind"},
      {TIDE_AGG_MAX, TIDE_T_DOUBLE, "maxd"},  {TIDE_AGG_MIN, TIDE_T_STRING, "mins"},
      {TIDE_AGG_MAX, TIDE_T_STRING, "maxs"},  {TIDE_AGG_FIRST, TIDE_T_INT, "fx"},
      {TIDE_AGG_LAST, TIDE_T_INT, "lx"},      {TIDE_AGG_FIRST, TIDE_T_STRING, "fs"},
      {TIDE_AGG_LAST, TIDE_T_STRING, "ls"},   {TIDE_AGG_COUNT_DISTINCT, TIDE_T_INT, "dx"},
      {TIDE_AGG_COUNT_DISTINCT, TIDE_T_STRING, "dstr"},
  };
  int argcol[] = {-1, 2, 2, 3, 2, 2, 2, 3, 3, 4, 4, 2, 2, 4, 4, 2, 4};
  uint32_t ns = sizeof sp / sizeof sp[0];
  tide_err_t err;
  /* whole */
  tide_agg_t *whole;
  T_EQ_INT(tide_agg_new(ks, sp, ns, &whole, &err), 0);
  tide_batch_t *kb = key_view(ks, b);
  const tide_col_t *args[17];
  for (uint32_t i = 0; i < ns; i++) args[i] = argcol[i] < 0 ? NULL : &b->cols[argcol[i]];
  T_EQ_INT(tide_agg_update(whole, kb, args, &err), 0);
  tide_batch_free(kb);
  tide_batch_t *rw;
  T_EQ_INT(tide_agg_result(whole, &rw, &err), 0);
  /* against the reference: order by first row */
  uint32_t order[NG], ng = 0;
  for (uint32_t g = 0; g < NG; g++)
    if (ref[g].first_seen) order[ng++] = g;
  for (uint32_t i = 1; i < ng; i++) /* insertion sort by first_row */
    for (uint32_t j = i; j > 0 && ref[order[j - 1]].first_row > ref[order[j]].first_row; j--) {
      uint32_t t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  T_EQ_INT(rw->nrows, ng);
  int bad = 0;
  const tide_col_t *c = rw->cols;
  for (uint32_t i = 0; i < ng && i < rw->nrows; i++) {
    const ref_t *g = &ref[order[i]];
    int k1 = (int)(order[i] / (K2 + 1)) - 1, k2 = (int)(order[i] % (K2 + 1)) - 1;
    char kb2[40];
    if (k1 < 0 ? !tide_col_is_null(&c[0], i) : tide_col_i64(&c[0], i) != k1) bad++;
    if (k2 < 0 ? !tide_col_is_null(&c[1], i) : !str_eq(&c[1], i, k2s(k2, kb2))) bad++;
    if (tide_col_i64(&c[2], i) != g->n || tide_col_i64(&c[3], i) != g->nx) bad++;
    if (g->has_x) {
      if ((uint64_t)tide_col_i64(&c[4], i) != g->sx) bad++;
      if (tide_col_f64(&c[6], i) != g->ax / (double)g->nx) bad++;
      if (tide_col_i64(&c[7], i) != g->minx || tide_col_i64(&c[8], i) != g->maxx) bad++;
    } else if (!tide_col_is_null(&c[4], i) || !tide_col_is_null(&c[6], i) || !tide_col_is_null(&c[7], i)) {
      bad++;
    }
    if (g->has_d) {
      if (tide_col_f64(&c[5], i) != g->sd) bad++; /* exact: same order of additions */
      if (tide_col_f64(&c[9], i) != g->mind || tide_col_f64(&c[10], i) != g->maxd) bad++;
    } else if (!tide_col_is_null(&c[5], i) || !tide_col_is_null(&c[9], i)) {
      bad++;
    }
    if (g->mins < 0 ? !tide_col_is_null(&c[11], i) : !str_eq(&c[11], i, sv[g->mins])) bad++;
    if (g->maxs < 0 ? !tide_col_is_null(&c[12], i) : !str_eq(&c[12], i, sv[g->maxs])) bad++;
    if (g->fx_null ? !tide_col_is_null(&c[13], i) : tide_col_i64(&c[13], i) != g->fx) bad++;
    if (g->lx_null ? !tide_col_is_null(&c[14], i) : tide_col_i64(&c[14], i) != g->lx) bad++;
    if (g->fs < 0 ? !tide_col_is_null(&c[15], i) : !str_eq(&c[15], i, sv[g->fs])) bad++;
    if (g->ls < 0 ? !tide_col_is_null(&c[16], i) : !str_eq(&c[16], i, sv[g->ls])) bad++;
    /* distinct x: small values counted in nd; huge ones checked below */
    if (tide_col_i64(&c[17], i) < g->nd || tide_col_i64(&c[17], i) > g->nd + 3) bad++;
    if (tide_col_i64(&c[18], i) != g->ns_nonnull) bad++;
  }
  T_EQ_INT(bad, 0);
  /* in random slices, twice over with different cuts: identical outputs */
  for (int round = 0; round < 2; round++) {
    tide_agg_t *split;
    T_EQ_INT(tide_agg_new(ks, sp, ns, &split, &err), 0);
    uint32_t lo = 0, pieces = 0;
    while (lo < N) {
      uint32_t len = round == 0 ? (uint32_t)(rnd() % 3000) : (uint32_t)(rnd() % 7 ? rnd() % 50 : rnd() % 20000);
      uint32_t hi = lo + len > N ? N : lo + len;
      tide_batch_t *piece;
      T_EQ_INT(tide_batch_slice(b, lo, hi, &piece), 0);
      tide_batch_t *pk = key_view(ks, piece);
      const tide_col_t *pargs[17];
      for (uint32_t i = 0; i < ns; i++) pargs[i] = argcol[i] < 0 ? NULL : &piece->cols[argcol[i]];
      T_EQ_INT(tide_agg_update(split, pk, pargs, &err), 0);
      tide_batch_free(pk);
      tide_batch_free(piece);
      lo = hi;
      pieces++;
    }
    T_CHECK(pieces > 30);
    tide_batch_t *rs;
    T_EQ_INT(tide_agg_result(split, &rs, &err), 0);
    T_CHECK(batch_same(rw, rs));
    tide_batch_free(rs);
    tide_agg_free(split);
  }
  tide_batch_free(rw);
  tide_agg_free(whole);
  tide_batch_free(b);
  tide_schema_unref(in);
  tide_schema_unref(ks);
}

/* ------------------------------------------------- streaming state --- */

/* Every key type and every aggregate over every type it applies to. */
#define ST_IN                                                                                        \
  "ki int?, ks string?, kd double?, kb bool?, kt timestamp?, kj json?, x int?, d double?, s string?, " \
  "f bool?, t timestamp?, j json?"
enum { C_KI, C_KS, C_KD, C_KB, C_KT, C_KJ, C_X, C_D, C_S, C_F, C_T, C_J };

static tide_agg_spec_t st_specs[40];
static int st_argcol[40];
static uint32_t st_nspecs;

static void st_init_specs(void) {
  static char names[40][24];
  static const struct {
    int col;
    tide_type_t t;
    const char *n;
  } cols[] = {{C_X, TIDE_T_INT, "x"},    {C_D, TIDE_T_DOUBLE, "d"},    {C_S, TIDE_T_STRING, "s"},
              {C_F, TIDE_T_BOOL, "f"},   {C_T, TIDE_T_TIMESTAMP, "t"}, {C_J, TIDE_T_JSON, "j"}};
  uint32_t n = 0;
#define ADD(k, ty, col, nm)                                   \
  do {                                                        \
    snprintf(names[n], sizeof names[n], "%s", nm);            \
    st_specs[n] = (tide_agg_spec_t){k, ty, names[n]};         \
    st_argcol[n++] = col;                                     \
  } while (0)
  ADD(TIDE_AGG_COUNT_STAR, 0, -1, "n");
  ADD(TIDE_AGG_COUNT, TIDE_T_INT, C_X, "nx");
  ADD(TIDE_AGG_SUM, TIDE_T_INT, C_X, "sx");
  ADD(TIDE_AGG_SUM, TIDE_T_DOUBLE, C_D, "sd");
  ADD(TIDE_AGG_AVG, TIDE_T_INT, C_X, "ax");
  ADD(TIDE_AGG_AVG, TIDE_T_DOUBLE, C_D, "ad");
  static const tide_agg_kind_t kinds[] = {TIDE_AGG_MIN, TIDE_AGG_MAX, TIDE_AGG_FIRST, TIDE_AGG_LAST,
                                          TIDE_AGG_COUNT_DISTINCT};
  static const char *kn[] = {"min", "max", "first", "last", "dist"};
  for (int c = 0; c < 6; c++)
    for (int k = 0; k < 5; k++) {
      char nm[24];
      snprintf(nm, sizeof nm, "%s_%s", kn[k], cols[c].n);
      ADD(kinds[k], cols[c].t, cols[c].col, nm);
    }
#undef ADD
  st_nspecs = n;
}

/* Random rows of ST_IN: NULLs everywhere, inline and arena strings, NaN,
 * -0.0, json of several shapes, extreme ints. ts0 offsets the timestamps
 * of kt (the event-time key). */
static tide_batch_t *st_rows(tide_schema_t *in, uint32_t n, int64_t kt_lo, int64_t kt_span) {
  static const char *jsons[] = {"{\"a\":1}", "[1,2,3]", "\"text\"", "null", "{\"long\":\"a value past twelve bytes\"}"};
  static const double dbl[] = {0.0, -0.0, 1.5, -2.25, 1e300, 3.0};
  tide_batch_t *b = tide_batch_new(in, n);
  char buf[200];
  for (uint32_t r = 0; r < n; r++) {
    tide_batch_row_begin(b);
    if (rnd() % 10) tide_batch_set_i64(b, C_KI, (int64_t)(rnd() % 12) - 3);
    if (rnd() % 10) {
      uint64_t v = rnd() % 10;
      int len = snprintf(buf, sizeof buf, v % 3 == 0 ? "k%llu" : v % 3 == 1 ? "a-rather-long-key-string-%llu" : "",
                         (unsigned long long)v);
      tide_batch_set_str(b, C_KS, buf, (size_t)len);
    }
    if (rnd() % 10) tide_batch_set_f64(b, C_KD, rnd() % 5 == 0 ? NAN : dbl[rnd() % 6]);
    if (rnd() % 3) tide_batch_set_bool(b, C_KB, (int)(rnd() % 2));
    if (rnd() % 10) tide_batch_set_i64(b, C_KT, kt_lo + (int64_t)(rnd() % (uint64_t)kt_span));
    if (rnd() % 4) {
      const char *j = jsons[rnd() % 5];
      tide_batch_set_str(b, C_KJ, j, strlen(j));
    }
    if (rnd() % 5) tide_batch_set_i64(b, C_X, rnd() % 50 == 0 ? INT64_MAX - (int64_t)(rnd() % 3) : (int64_t)(rnd() % 40) - 10);
    if (rnd() % 5) tide_batch_set_f64(b, C_D, rnd() % 9 == 0 ? NAN : rnd() % 9 == 0 ? -0.0 : (double)(rnd() % 100) / 4);
    if (rnd() % 5) {
      int len = (int)(rnd() % 40);
      for (int i = 0; i < len; i++) buf[i] = (char)('a' + rnd() % 3);
      tide_batch_set_str(b, C_S, buf, (size_t)len);
    }
    if (rnd() % 5) tide_batch_set_bool(b, C_F, (int)(rnd() % 2));
    if (rnd() % 5) tide_batch_set_i64(b, C_T, (int64_t)(rnd() % 30) * 1000 - 5000);
    if (rnd() % 5) {
      const char *j = jsons[rnd() % 5];
      tide_batch_set_str(b, C_J, j, strlen(j));
    }
    tide_batch_row_commit(b);
  }
  return b;
}

/* A key set: its schema and which input columns it takes. */
typedef struct keyset {
  const char *ddl;
  int cols[6];
  uint32_t n;
} keyset_t;

static const keyset_t keysets[] = {
    {"ki int?, ks string?", {C_KI, C_KS}, 2},
    {"kd double?, kb bool?, kt timestamp?, kj json?", {C_KD, C_KB, C_KT, C_KJ}, 4},
    {"kt timestamp?, ks string?", {C_KT, C_KS}, 2},
    {"", {0}, 0},
};

/* Feed b to a with key set ks (schema kschema). */
static int st_feed(tide_agg_t *a, tide_schema_t *kschema, const keyset_t *ks, const tide_batch_t *b) {
  tide_col_t kc[6];
  for (uint32_t k = 0; k < ks->n; k++) kc[k] = b->cols[ks->cols[k]];
  tide_batch_t *kb = tide_batch_borrowed(kschema, b->nrows, kc, NULL, NULL);
  const tide_col_t *args[40];
  for (uint32_t i = 0; i < st_nspecs; i++) args[i] = st_argcol[i] < 0 ? NULL : &b->cols[st_argcol[i]];
  tide_err_t err = {0, ""};
  int rc = tide_agg_update(a, kb, args, &err);
  if (rc) fprintf(stderr, "update: %s\n", err.msg);
  tide_batch_free(kb);
  return rc;
}

static tide_agg_t *st_new(tide_schema_t *kschema) {
  tide_agg_t *a = NULL;
  tide_err_t err = {0, ""};
  if (tide_agg_new(kschema, st_specs, st_nspecs, &a, &err)) fprintf(stderr, "agg: %s\n", err.msg);
  return a;
}

/* 1 when the results of a and b are the same rows. */
static int st_same(const tide_agg_t *a, const tide_agg_t *b) {
  tide_batch_t *ra = NULL, *rb = NULL;
  tide_err_t err = {0, ""};
  int ok = !tide_agg_result(a, &ra, &err) && !tide_agg_result(b, &rb, &err) && batch_same(ra, rb);
  tide_batch_free(ra);
  tide_batch_free(rb);
  return ok;
}

/* Copy every group of src into a new aggregation through its records,
 * in gid order (reverse: in reverse order). */
static tide_agg_t *st_copy(const tide_agg_t *src, tide_schema_t *kschema, int reverse) {
  tide_agg_t *dst = st_new(kschema);
  tide_buf_t buf = TIDE_BUF_INIT;
  tide_err_t err = {0, ""};
  uint32_t n = (uint32_t)tide_agg_groups(src);
  for (uint32_t i = 0; i < n; i++) {
    uint32_t g = reverse ? n - 1 - i : i;
    buf.len = 0;
    T_EQ_INT(tide_agg_encode(src, g, &buf, &err), 0);
    int rc = tide_agg_restore(dst, tide_agg_sid(src, g), buf.data, buf.len, &err);
    if (rc) fprintf(stderr, "restore: %s\n", err.msg);
    T_EQ_INT(rc, 0);
  }
  tide_buf_free(&buf);
  return dst;
}

/* Encode -> restore for every key set: the copy has the same rows and
 * sids, no dirty groups; fed the same further rows as the original, both
 * stay equal (new groups get the same sids too); restored in reverse
 * order, each group's row is still the one of its sid. */
static void test_state_round_trip(void) {
  tide_schema_t *in = schema(ST_IN);
  for (size_t ks = 0; ks < sizeof keysets / sizeof keysets[0]; ks++) {
    const keyset_t *set = &keysets[ks];
    tide_schema_t *kschema = *set->ddl ? schema(set->ddl) : tide_schema_new();
    tide_agg_t *a = st_new(kschema);
    tide_batch_t *b1 = st_rows(in, 3000, 0, 40);
    T_EQ_INT(st_feed(a, kschema, set, b1), 0);
    tide_agg_t *c = st_copy(a, kschema, 0);
    T_EQ_INT(tide_agg_groups(c), tide_agg_groups(a));
    T_CHECK(st_same(a, c));
    const uint32_t *gids;
    T_EQ_INT(tide_agg_dirty(c, &gids), 0);
    uint64_t maxsid = 0;
    for (uint32_t g = 0; g < tide_agg_groups(a); g++) {
      T_EQ_INT(tide_agg_sid(c, g), tide_agg_sid(a, g));
      T_EQ_INT(tide_agg_sid(a, g), g + 1);
      if (tide_agg_sid(a, g) > maxsid) maxsid = tide_agg_sid(a, g);
    }
    /* more rows, some new keys: a restored aggregation fed the rest equals
     * the one that saw everything */
    tide_batch_t *b2 = st_rows(in, 3000, 20, 60);
    uint32_t n1 = (uint32_t)tide_agg_groups(a);
    T_EQ_INT(st_feed(a, kschema, set, b2), 0);
    T_EQ_INT(st_feed(c, kschema, set, b2), 0);
    T_CHECK(st_same(a, c));
    for (uint32_t g = 0; g < tide_agg_groups(a); g++) T_EQ_INT(tide_agg_sid(c, g), tide_agg_sid(a, g));
    if (set->cols[0] == C_KT || set->cols[2] == C_KT) /* kt is new past 40: new groups */
      T_CHECK(tide_agg_groups(a) > n1 && tide_agg_sid(a, (uint32_t)tide_agg_groups(a) - 1) > maxsid);
    /* reverse order: gids differ, rows per sid do not */
    tide_agg_t *r = st_copy(a, kschema, 1);
    uint32_t n = (uint32_t)tide_agg_groups(a);
    int bad = 0;
    for (uint32_t g = 0; g < n; g++) {
      uint32_t rg = n - 1 - g;
      if (tide_agg_sid(r, rg) != tide_agg_sid(a, g)) bad++;
      tide_batch_t *x, *y;
      tide_err_t err = {0, ""};
      T_EQ_INT(tide_agg_result_of(a, &g, 1, &x, &err), 0);
      T_EQ_INT(tide_agg_result_of(r, &rg, 1, &y, &err), 0);
      if (!batch_same(x, y)) bad++;
      tide_batch_free(x);
      tide_batch_free(y);
    }
    T_EQ_INT(bad, 0);
    /* a record of a record is the same group again */
    tide_agg_t *rr = st_copy(c, kschema, 0);
    T_CHECK(st_same(c, rr));
    tide_agg_free(rr);
    tide_agg_free(r);
    tide_batch_free(b1);
    tide_batch_free(b2);
    tide_agg_free(c);
    tide_agg_free(a);
    tide_schema_unref(kschema);
  }
  tide_schema_unref(in);
}

/* Long values survive exactly: a 100 kB string key, state and distinct
 * value, and a group whose every state is empty (a count_distinct of no
 * values, min/max of nothing, first/last of NULL). */
static void test_state_long_and_empty(void) {
  tide_schema_t *in = schema(ST_IN);
  tide_schema_t *kschema = schema("ki int?, ks string?");
  const keyset_t *set = &keysets[0];
  tide_batch_t *b = tide_batch_new(in, 0);
  size_t big = 100000;
  char *s = malloc(big);
  for (size_t i = 0; i < big; i++) s[i] = (char)('a' + i % 26);
  tide_batch_row_begin(b);
  tide_batch_set_str(b, C_KS, s, big);
  tide_batch_set_str(b, C_S, s, big);
  tide_batch_set_str(b, C_J, "\"x\"", 3);
  tide_batch_row_commit(b);
  tide_batch_row_begin(b); /* all NULL: the NULL key group */
  tide_batch_row_commit(b);
  tide_agg_t *a = st_new(kschema);
  T_EQ_INT(st_feed(a, kschema, set, b), 0);
  tide_agg_t *c = st_copy(a, kschema, 0);
  T_CHECK(st_same(a, c));
  tide_batch_t *r;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_result(c, &r, &err), 0);
  size_t len;
  const char *p = tide_col_str(&r->cols[1], 0, &len);
  T_CHECK(len == big && !memcmp(p, s, big));
  T_CHECK(tide_col_is_null(&r->cols[0], 1) && tide_col_is_null(&r->cols[1], 1));
  for (uint32_t f = 2 + 1; f < r->schema->nfields; f++) { /* the NULL group: counts 0, the rest NULL */
    const tide_field_t *fd = &r->schema->fields[f];
    if (fd->nullable) T_CHECK(tide_col_is_null(&r->cols[f], 1));
    else T_CHECK(f == 2 + 0 || tide_col_i64(&r->cols[f], 1) == 0);
  }
  tide_batch_free(r);
  free(s);
  tide_agg_free(c);
  tide_agg_free(a);
  tide_batch_free(b);
  tide_schema_unref(kschema);
  tide_schema_unref(in);
}

/* The dirty set against a naive one over random updates and clears: each
 * group once, ascending; both the sort and the scan path; new groups are
 * dirty; restored groups are not; result_of gives their rows. */
static void test_state_dirty(void) {
  tide_schema_t *in = schema("k int, v int");
  tide_schema_t *ks = schema("k int");
  tide_agg_spec_t sp[] = {{TIDE_AGG_COUNT_STAR, 0, "n"}, {TIDE_AGG_SUM, TIDE_T_INT, "s"}};
  tide_agg_t *a;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_new(ks, sp, 2, &a, &err), 0);
  enum { NK = 3000 };
  static int64_t gid_of[NK];
  static uint8_t ref[NK + 1]; /* by gid */
  for (int i = 0; i < NK; i++) gid_of[i] = -1;
  uint32_t ngroups = 0;
  int bad = 0;
  for (int round = 0; round < 200; round++) {
    uint32_t n = round % 10 == 0 ? 2000 : (uint32_t)(rnd() % 30);
    uint32_t span = round < 20 ? 1000 : NK;
    tide_batch_t *b = tide_batch_new(in, n);
    for (uint32_t i = 0; i < n; i++) {
      int64_t k = (int64_t)(rnd() % span);
      tide_batch_row_begin(b);
      tide_batch_set_i64(b, 0, k);
      tide_batch_set_i64(b, 1, 1);
      tide_batch_row_commit(b);
      if (gid_of[k] < 0) gid_of[k] = ngroups++;
      ref[gid_of[k]] = 1;
    }
    tide_batch_t *kb = key_view(ks, b);
    const tide_col_t *args[] = {NULL, &b->cols[1]};
    T_EQ_INT(tide_agg_update(a, kb, args, &err), 0);
    const uint32_t *gids;
    uint32_t nd = tide_agg_dirty(a, &gids), want = 0, j = 0;
    for (uint32_t g = 0; g < ngroups; g++)
      if (ref[g]) {
        want++;
        if (j >= nd || gids[j++] != g) bad++;
      }
    if (nd != want) bad++;
    if (round % 7 == 3) { /* the changed rows: each dirty group's own row */
      tide_batch_t *rows, *all;
      T_EQ_INT(tide_agg_result_of(a, gids, nd, &rows, &err), 0);
      T_EQ_INT(tide_agg_result(a, &all, &err), 0);
      T_EQ_INT(rows->nrows, nd);
      for (uint32_t i = 0; i < nd && i < rows->nrows; i++)
        if (tide_col_i64(&rows->cols[0], i) != tide_col_i64(&all->cols[0], gids[i]) ||
            tide_col_i64(&rows->cols[1], i) != tide_col_i64(&all->cols[1], gids[i]))
          bad++;
      tide_batch_free(rows);
      tide_batch_free(all);
    }
    if (round % 3 == 2) {
      tide_agg_clear_dirty(a);
      memset(ref, 0, sizeof ref);
      T_EQ_INT(tide_agg_dirty(a, &gids), 0);
    }
    tide_batch_free(kb);
    tide_batch_free(b);
  }
  T_EQ_INT(bad, 0);
  T_EQ_INT(tide_agg_groups(a), ngroups);
  /* restored groups are not dirty; updating one makes it dirty */
  tide_agg_t *c;
  T_EQ_INT(tide_agg_new(ks, sp, 2, &c, &err), 0);
  tide_buf_t buf = TIDE_BUF_INIT;
  for (uint32_t g = 0; g < 3; g++) {
    buf.len = 0;
    T_EQ_INT(tide_agg_encode(a, g, &buf, &err), 0);
    T_EQ_INT(tide_agg_restore(c, tide_agg_sid(a, g), buf.data, buf.len, &err), 0);
  }
  const uint32_t *gids;
  T_EQ_INT(tide_agg_dirty(c, &gids), 0);
  tide_batch_t *r;
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  tide_batch_t *one;
  T_EQ_INT(tide_batch_slice(r, 1, 2, &one), 0); /* group 1's key (and its count, as the value) */
  const tide_col_t *args[] = {NULL, &one->cols[1]};
  tide_batch_t *kb = key_view(ks, one);
  T_EQ_INT(tide_agg_update(c, kb, args, &err), 0);
  T_EQ_INT(tide_agg_dirty(c, &gids), 1);
  T_EQ_INT(gids[0], 1);
  T_EQ_INT(tide_agg_groups(c), 3);
  /* result_of: any order, repeats, none; a gid out of range */
  uint32_t pick[] = {2, 0, 2};
  tide_batch_t *p;
  T_EQ_INT(tide_agg_result_of(c, pick, 3, &p, &err), 0);
  T_EQ_INT(p->nrows, 3);
  T_EQ_INT(tide_col_i64(&p->cols[0], 0), tide_col_i64(&r->cols[0], 2));
  T_EQ_INT(tide_col_i64(&p->cols[0], 1), tide_col_i64(&r->cols[0], 0));
  T_EQ_INT(tide_col_i64(&p->cols[1], 2), tide_col_i64(&r->cols[1], 2));
  tide_batch_free(p);
  T_EQ_INT(tide_agg_result_of(c, NULL, 0, &p, &err), 0);
  T_EQ_INT(p->nrows, 0);
  T_EQ_INT(p->schema->nfields, 3);
  tide_batch_free(p);
  uint32_t out_of_range = 3;
  T_EQ_INT(tide_agg_result_of(c, &out_of_range, 1, &p, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "group 3 does not exist (3 groups)");
  T_CHECK(p == NULL);
  T_EQ_INT(tide_agg_encode(c, 3, &buf, &err), TIDE_EINVAL);
  tide_buf_free(&buf);
  tide_batch_free(kb);
  tide_batch_free(one);
  tide_batch_free(r);
  tide_agg_free(c);
  tide_agg_free(a);
  tide_schema_unref(ks);
  tide_schema_unref(in);
}

/* Eviction by an event-time key: the evicted rows and sids are exactly the
 * groups at or below the bound (NULL keys stay); the rest keep their order,
 * rows, sids and dirty flags; the evicting aggregation then fed later rows
 * equals a reference that saw every row, less the evicted groups; an
 * evicted key that comes back is a fresh group with a new sid. */
static void test_state_evict(void) {
  tide_schema_t *in = schema(ST_IN);
  const keyset_t *set = &keysets[2]; /* kt timestamp?, ks string? */
  tide_schema_t *kschema = schema(set->ddl);
  tide_agg_t *e = st_new(kschema), *ref = st_new(kschema);
  tide_batch_t *b1 = st_rows(in, 4000, 0, 100);
  T_EQ_INT(st_feed(e, kschema, set, b1), 0);
  T_EQ_INT(st_feed(ref, kschema, set, b1), 0);
  tide_agg_clear_dirty(e);
  tide_batch_t *b2 = st_rows(in, 200, 0, 100); /* dirties some */
  T_EQ_INT(st_feed(e, kschema, set, b2), 0);
  T_EQ_INT(st_feed(ref, kschema, set, b2), 0);
  uint32_t n0 = (uint32_t)tide_agg_groups(e);
  const uint32_t *gids;
  uint32_t nd0 = tide_agg_dirty(e, &gids);
  uint8_t *was_dirty = calloc(n0, 1);
  for (uint32_t i = 0; i < nd0; i++) was_dirty[gids[i]] = 1;
  tide_batch_t *before;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_result(e, &before, &err), 0);
  uint64_t *sid0 = malloc(n0 * sizeof *sid0);
  for (uint32_t g = 0; g < n0; g++) sid0[g] = tide_agg_sid(e, g);

  int64_t bound = 39;
  tide_batch_t *rows;
  uint64_t *sids;
  uint32_t n;
  T_EQ_INT(tide_agg_evict(e, 0, bound, &rows, &sids, &n, &err), 0);
  /* the split, against the rows before */
  uint32_t *gone = malloc(n0 * sizeof *gone), *kept = malloc(n0 * sizeof *kept), ng = 0, nk = 0;
  for (uint32_t g = 0; g < n0; g++) {
    const tide_col_t *kt = &before->cols[0];
    if (!tide_col_is_null(kt, g) && tide_col_i64(kt, g) <= bound) gone[ng++] = g;
    else kept[nk++] = g;
  }
  T_CHECK(ng > 10 && nk > 10);
  T_EQ_INT(n, ng);
  T_EQ_INT(tide_agg_groups(e), nk);
  tide_batch_t *want;
  T_EQ_INT(tide_batch_gather(before, gone, ng, &want), 0);
  T_CHECK(batch_same(rows, want));
  tide_batch_free(want);
  int bad = 0, nulls_kept = 0;
  for (uint32_t i = 0; i < n && i < ng; i++)
    if (sids[i] != sid0[gone[i]]) bad++;
  tide_batch_t *after;
  T_EQ_INT(tide_agg_result(e, &after, &err), 0);
  T_EQ_INT(tide_batch_gather(before, kept, nk, &want), 0);
  T_CHECK(batch_same(after, want));
  tide_batch_free(want);
  uint32_t nd = tide_agg_dirty(e, &gids), want_nd = 0;
  for (uint32_t g = 0; g < nk; g++) {
    if (tide_agg_sid(e, g) != sid0[kept[g]]) bad++;
    if (tide_col_is_null(&after->cols[0], g)) nulls_kept++;
    if (was_dirty[kept[g]]) {
      if (want_nd >= nd || gids[want_nd] != g) bad++;
      want_nd++;
    }
  }
  T_EQ_INT(nd, want_nd);
  T_EQ_INT(bad, 0);
  T_CHECK(nulls_kept > 0);
  /* nothing at or below the bound is left: a second eviction is empty */
  tide_batch_t *none;
  uint64_t *nsids;
  uint32_t nn;
  T_EQ_INT(tide_agg_evict(e, 0, bound, &none, &nsids, &nn, &err), 0);
  T_EQ_INT(nn, 0);
  T_EQ_INT(none->nrows, 0);
  T_CHECK(nsids == NULL);
  tide_batch_free(none);
  /* later rows all above the bound: e equals the reference less the
   * evicted groups, in the same order */
  tide_batch_t *b3 = st_rows(in, 3000, bound + 1, 100);
  T_EQ_INT(st_feed(e, kschema, set, b3), 0);
  T_EQ_INT(st_feed(ref, kschema, set, b3), 0);
  tide_batch_t *re, *rr;
  T_EQ_INT(tide_agg_result(e, &re, &err), 0);
  T_EQ_INT(tide_agg_result(ref, &rr, &err), 0);
  uint32_t *keep2 = malloc(rr->nrows * sizeof *keep2), nk2 = 0;
  for (uint32_t g = 0; g < rr->nrows; g++)
    if (tide_col_is_null(&rr->cols[0], g) || tide_col_i64(&rr->cols[0], g) > bound) keep2[nk2++] = g;
  T_EQ_INT(tide_batch_gather(rr, keep2, nk2, &want), 0);
  T_CHECK(batch_same(re, want));
  tide_batch_free(want);
  /* an evicted key comes back: a new group at the end, with a new sid */
  tide_batch_t *one;
  T_EQ_INT(tide_batch_slice(b1, 0, 0, &one), 0);
  tide_batch_free(one);
  tide_batch_t *late = tide_batch_new(in, 1);
  tide_batch_row_begin(late);
  tide_batch_set_i64(late, C_KT, tide_col_i64(&rows->cols[0], 0));
  if (!tide_col_is_null(&rows->cols[1], 0)) {
    size_t len;
    const char *p = tide_col_str(&rows->cols[1], 0, &len);
    tide_batch_set_str(late, C_KS, p, len);
  }
  tide_batch_row_commit(late);
  uint32_t ne = (uint32_t)tide_agg_groups(e);
  uint64_t maxsid = 0;
  for (uint32_t g = 0; g < ne; g++) maxsid = tide_agg_sid(e, g) > maxsid ? tide_agg_sid(e, g) : maxsid;
  T_EQ_INT(st_feed(e, kschema, set, late), 0);
  T_EQ_INT(tide_agg_groups(e), ne + 1);
  T_CHECK(tide_agg_sid(e, ne) > maxsid && tide_agg_sid(e, ne) != sids[0]);
  tide_batch_t *lr;
  T_EQ_INT(tide_agg_result_of(e, &ne, 1, &lr, &err), 0);
  T_EQ_INT(tide_col_i64(&lr->cols[2], 0), 1); /* count(*) of the fresh group */
  tide_batch_free(lr);
  /* errors: no such key column; a string key */
  uint32_t nf = tide_agg_schema(e)->nfields;
  char want_msg[80];
  snprintf(want_msg, sizeof want_msg, "evict: column %u does not exist (%u columns)", nf, nf);
  T_EQ_INT(tide_agg_evict(e, nf, 0, &none, &nsids, &nn, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, want_msg);
  T_EQ_INT(tide_agg_evict(e, 1, 0, &none, &nsids, &nn, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "evict: column 'ks' is string, expected int or timestamp");
  T_CHECK(none == NULL && nsids == NULL && nn == 0);
  /* everything goes */
  T_EQ_INT(tide_agg_evict(e, 0, INT64_MAX, &none, &nsids, &nn, &err), 0);
  T_CHECK(nn > 0);
  for (uint32_t g = 0; g < tide_agg_groups(e); g++) T_CHECK(tide_col_is_null(&re->cols[0], 0) || 1);
  T_EQ_INT(tide_agg_result(e, &lr, &err), 0);
  for (uint32_t g = 0; g < lr->nrows; g++) T_CHECK(tide_col_is_null(&lr->cols[0], g));
  tide_batch_free(lr);
  tide_batch_free(none);
  free(nsids);
  free(keep2);
  tide_batch_free(late);
  tide_batch_free(re);
  tide_batch_free(rr);
  tide_batch_free(b3);
  tide_batch_free(after);
  free(gone);
  free(kept);
  free(sids);
  tide_batch_free(rows);
  free(sid0);
  tide_batch_free(before);
  free(was_dirty);
  tide_batch_free(b1);
  tide_batch_free(b2);
  tide_agg_free(e);
  tide_agg_free(ref);
  tide_schema_unref(kschema);
  tide_schema_unref(in);
}

/* A sliding event-time workload, 60 rounds: each round brings new windows
 * (long string keys, distinct strings) and evicts the old ones. Memory
 * stays flat: string states, distinct sets, arena, table and group arrays
 * are released or reused. Evicting the same key in the same round it is
 * made, then making it again, gives it new sids each time. */
static void test_state_evict_memory(void) {
  tide_schema_t *in = schema("w timestamp, k string, v string");
  tide_schema_t *ks = schema("w timestamp, k string");
  tide_agg_spec_t sp[] = {{TIDE_AGG_COUNT_DISTINCT, TIDE_T_STRING, "dv"},
                          {TIDE_AGG_MAX, TIDE_T_STRING, "mv"},
                          {TIDE_AGG_COUNT_STAR, 0, "n"}};
  tide_agg_t *a;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_new(ks, sp, 3, &a, &err), 0);
  size_t peak3 = 0, peak = 0;
  uint64_t evicted = 0, lastsid = 0;
  int bad = 0;
  for (int round = 0; round < 60; round++) {
    tide_batch_t *b = tide_batch_new(in, 0);
    char kbuf[64], vbuf[64];
    for (int i = 0; i < 3000; i++) {
      int kl = snprintf(kbuf, sizeof kbuf, "a-long-device-identifier-%d", i % 500);
      int vl = snprintf(vbuf, sizeof vbuf, "a-long-distinct-value-%d-%d", round, i % 37);
      tide_batch_row_begin(b);
      tide_batch_set_i64(b, 0, (int64_t)round * 10 + i % 3); /* three windows per round */
      tide_batch_set_str(b, 1, kbuf, (size_t)kl);
      tide_batch_set_str(b, 2, vbuf, (size_t)vl);
      tide_batch_row_commit(b);
    }
    tide_batch_t *kb = key_view(ks, b);
    const tide_col_t *args[] = {&b->cols[2], &b->cols[2], NULL};
    T_EQ_INT(tide_agg_update(a, kb, args, &err), 0);
    tide_agg_clear_dirty(a);
    tide_batch_t *rows;
    uint64_t *sids;
    uint32_t n;
    /* keep the last round's windows only */
    T_EQ_INT(tide_agg_evict(a, 0, (int64_t)round * 10 - 1, &rows, &sids, &n, &err), 0);
    if (round > 0 && n != 1500) bad++;
    for (uint32_t i = 0; i < n; i++) {
      if (sids[i] <= lastsid) bad++;
      lastsid = sids[i];
      /* two rows per (window, key), 1500 apart: two distinct values */
      if (tide_col_i64(&rows->cols[2], i) != 2 || tide_col_i64(&rows->cols[4], i) != 2) bad++;
    }
    evicted += n;
    free(sids);
    tide_batch_free(rows);
    if (tide_agg_groups(a) != 1500) bad++;
    size_t bytes = tide_agg_bytes(a);
    if (round == 3) peak3 = bytes;
    if (bytes > peak) peak = bytes;
    tide_batch_free(kb);
    tide_batch_free(b);
  }
  T_EQ_INT(bad, 0);
  T_EQ_INT(evicted, 59 * 1500);
  T_CHECK(peak3 > 0 && peak <= peak3 * 3 / 2);
  /* make and evict the same keys over and over: new sids, no growth */
  tide_batch_t *one = tide_batch_new(in, 1);
  tide_batch_row_begin(one);
  tide_batch_set_i64(one, 0, -5);
  tide_batch_set_str(one, 1, "a key longer than twelve bytes", 30);
  tide_batch_set_str(one, 2, "a value longer than twelve bytes", 32);
  tide_batch_row_commit(one);
  tide_batch_t *kb = key_view(ks, one);
  const tide_col_t *args[] = {&one->cols[2], &one->cols[2], NULL};
  uint64_t prev = 0;
  size_t b0 = 0;
  for (int i = 0; i < 2000; i++) {
    T_EQ_INT(tide_agg_update(a, kb, args, &err), 0);
    tide_batch_t *rows;
    uint64_t *sids;
    uint32_t n;
    T_EQ_INT(tide_agg_evict(a, 0, -5, &rows, &sids, &n, &err), 0);
    if (n != 1 || sids[0] <= prev || tide_col_i64(&rows->cols[4], 0) != 1) bad++;
    if (n) prev = sids[0];
    free(sids);
    tide_batch_free(rows);
    if (i == 10) b0 = tide_agg_bytes(a);
  }
  T_EQ_INT(bad, 0);
  T_EQ_INT(tide_agg_bytes(a), b0);
  /* and all of it: the arrays and the table shrink back */
  tide_batch_t *rows;
  uint64_t *sids;
  uint32_t n;
  T_EQ_INT(tide_agg_evict(a, 0, INT64_MAX, &rows, &sids, &n, &err), 0);
  T_EQ_INT(n, 1500);
  T_EQ_INT(tide_agg_groups(a), 0);
  /* what is left: the scratch vectors of 3000 rows (36 kB) and the group
   * arrays, table and arena at their smallest (a few kB) */
  T_CHECK(tide_agg_bytes(a) < 3000 * 12 + 12 * 1024);
  free(sids);
  tide_batch_free(rows);
  tide_batch_free(kb);
  tide_batch_free(one);
  tide_agg_free(a);
  tide_schema_unref(ks);
  tide_schema_unref(in);
}

/* ------------------------------------------------- corrupt records --- */

static void put_le(tide_buf_t *b, uint64_t v, int n) {
  for (int i = 0; i < n; i++) tide_buf_putc(b, (char)(v >> (8 * i)));
}

/* Append the CRC-32C of b's bytes from start. */
static void seal(tide_buf_t *b, size_t start) {
  put_le(b, tide_crc32c(0, b->data + start, b->len - start), 4);
}

/* Restore p[0..n) into a; on success the group must be a whole one: it
 * encodes again, and that record restores into a fresh aggregation. */
static int try_restore(tide_agg_t *a, tide_schema_t *kschema, uint64_t sid, const char *p, size_t n,
                       tide_err_t *err) {
  uint64_t groups = tide_agg_groups(a);
  int rc = tide_agg_restore(a, sid, p, n, err);
  if (rc) {
    T_EQ_INT(tide_agg_groups(a), groups); /* nothing kept */
    T_CHECK(*err->msg);
    return rc;
  }
  T_EQ_INT(tide_agg_groups(a), groups + 1);
  tide_buf_t again = TIDE_BUF_INIT;
  tide_err_t e2 = {0, ""};
  T_EQ_INT(tide_agg_encode(a, (uint32_t)groups, &again, &e2), 0);
  tide_agg_t *c = st_new(kschema);
  T_EQ_INT(tide_agg_restore(c, sid, again.data, again.len, &e2), 0);
  tide_batch_t *x, *y;
  uint32_t g = (uint32_t)groups, z = 0;
  T_EQ_INT(tide_agg_result_of(a, &g, 1, &x, &e2), 0);
  T_EQ_INT(tide_agg_result_of(c, &z, 1, &y, &e2), 0);
  T_CHECK(batch_same(x, y));
  tide_batch_free(x);
  tide_batch_free(y);
  tide_agg_free(c);
  tide_buf_free(&again);
  return 0;
}

/* Records cut at every length, every byte flipped (as they are, and with
 * the checksum made right again so that the parser itself sees garbage),
 * random garbage: a clean error or a whole group, never a crash or a read
 * past the end (this test runs under ASan and valgrind). */
static void test_state_corrupt_fuzz(void) {
  tide_schema_t *in = schema(ST_IN);
  const keyset_t *set = &keysets[0];
  tide_schema_t *kschema = schema(set->ddl);
  tide_agg_t *src = st_new(kschema);
  tide_batch_t *b = st_rows(in, 400, 0, 10);
  T_EQ_INT(st_feed(src, kschema, set, b), 0);
  tide_err_t err = {0, ""};
  tide_buf_t rec = TIDE_BUF_INIT, tmp = TIDE_BUF_INIT;
  int fails_cut = 0, cuts = 0, flips = 0, flip_fails = 0, parsed_ok = 0, parsed_bad = 0;
  for (uint32_t g = 0; g < 6 && g < tide_agg_groups(src); g++) {
    rec.len = 0;
    T_EQ_INT(tide_agg_encode(src, g, &rec, &err), 0);
    tide_agg_t *a = st_new(kschema);
    /* a few unrelated groups first, so that a bad restore has something to spoil */
    for (uint32_t h = 6; h < 12; h++) {
      tmp.len = 0;
      T_EQ_INT(tide_agg_encode(src, h, &tmp, &err), 0);
      T_EQ_INT(tide_agg_restore(a, tide_agg_sid(src, h), tmp.data, tmp.len, &err), 0);
    }
    tide_batch_t *r0;
    T_EQ_INT(tide_agg_result(a, &r0, &err), 0);
    for (size_t len = 0; len < rec.len; len++) { /* cut */
      char *cut = malloc(len ? len : 1);        /* exactly len bytes: ASan sees any overread */
      memcpy(cut, rec.data, len);
      cuts++;
      if (tide_agg_restore(a, 1000, cut, len, &err)) fails_cut++;
      free(cut);
      if (len >= 9) { /* cut the body, sealed again */
        tmp.len = 0;
        tide_buf_append(&tmp, rec.data, len - 4);
        seal(&tmp, 0);
        char *p = malloc(tmp.len);
        memcpy(p, tmp.data, tmp.len);
        if (try_restore(a, kschema, 2000 + len, p, tmp.len, &err)) parsed_bad++;
        else parsed_ok++;
        free(p);
      }
    }
    for (size_t i = 0; i < rec.len; i++) { /* flip */
      for (int bit = 0; bit < 8; bit += 3) {
        char *p = malloc(rec.len);
        memcpy(p, rec.data, rec.len);
        p[i] ^= (char)(1 << bit);
        flips++;
        if (tide_agg_restore(a, 3000, p, rec.len, &err)) flip_fails++;
        if (i < rec.len - 4) { /* and sealed again */
          tmp.len = 0;
          tide_buf_append(&tmp, p, rec.len - 4);
          seal(&tmp, 0);
          memcpy(p, tmp.data, rec.len);
          int rc = try_restore(a, kschema, 4000 + i * 8 + (size_t)bit, p, rec.len, &err);
          if (rc) parsed_bad++;
          else parsed_ok++;
        }
        free(p);
      }
    }
    /* the groups that were there are untouched by all of it */
    tide_batch_t *r1, *six;
    uint32_t firsts[6] = {0, 1, 2, 3, 4, 5};
    T_EQ_INT(tide_agg_result_of(a, firsts, 6, &r1, &err), 0);
    T_EQ_INT(tide_batch_slice(r0, 0, 6, &six), 0);
    T_CHECK(batch_same(r1, six));
    tide_batch_free(r1);
    tide_batch_free(six);
    tide_batch_free(r0);
    tide_agg_free(a);
  }
  T_EQ_INT(fails_cut, cuts); /* a cut record never passes */
  T_EQ_INT(flip_fails, flips); /* nor a flipped one (CRC-32C catches every 1-bit error) */
  T_CHECK(parsed_bad > 100);
  /* random garbage, sealed or not, of random lengths */
  tide_agg_t *a = st_new(kschema);
  for (int i = 0; i < 3000; i++) {
    size_t len = (size_t)(rnd() % 200);
    tmp.len = 0;
    if (i % 2) put_le(&tmp, 1, 1); /* the right version */
    if (i % 4 == 1) put_le(&tmp, 2 | (uint64_t)(st_nspecs) << 16, 4);
    while (tmp.len < len) put_le(&tmp, rnd(), 1 + (int)(rnd() % 4));
    if (i % 3) seal(&tmp, 0);
    char *p = malloc(tmp.len ? tmp.len : 1);
    memcpy(p, tmp.data, tmp.len);
    if (!try_restore(a, kschema, 10000 + (uint64_t)i, p, tmp.len, &err)) parsed_ok++;
    free(p);
  }
  T_CHECK(tide_agg_groups(a) == 0 || parsed_ok > 0);
  tide_agg_free(a);
  tide_buf_free(&rec);
  tide_buf_free(&tmp);
  tide_batch_free(b);
  tide_agg_free(src);
  tide_schema_unref(kschema);
  tide_schema_unref(in);
}

/* Hand-made records: each wrong thing gets its own message. */
static void test_state_corrupt_messages(void) {
  tide_schema_t *ks = schema("k int?, s string?");
  tide_agg_spec_t sp[] = {{TIDE_AGG_COUNT_DISTINCT, TIDE_T_DOUBLE, "dd"}, {TIDE_AGG_FIRST, TIDE_T_BOOL, "fb"}};
  tide_agg_t *a;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_new(ks, sp, 2, &a, &err), 0);
  tide_buf_t b = TIDE_BUF_INIT;
  /* head: version 1, 2 keys, 2 aggregates, key types, (kind, type) pairs */
#define HEAD()                                                  \
  do {                                                          \
    b.len = 0;                                                  \
    put_le(&b, 1, 1);                                           \
    put_le(&b, 2, 2);                                           \
    put_le(&b, 2, 2);                                           \
    put_le(&b, TIDE_T_INT, 1);                                  \
    put_le(&b, TIDE_T_STRING, 1);                               \
    put_le(&b, TIDE_AGG_COUNT_DISTINCT, 1);                     \
    put_le(&b, TIDE_T_DOUBLE, 1);                               \
    put_le(&b, TIDE_AGG_FIRST, 1);                              \
    put_le(&b, TIDE_T_BOOL, 1);                                 \
  } while (0)
  double one = 1.0, two = 2.0, negz = -0.0;
  uint64_t u1, u2, unz;
  memcpy(&u1, &one, 8);
  memcpy(&u2, &two, 8);
  memcpy(&unz, &negz, 8);
  /* a good one: key (7, "abc"), distinct {1.0, 2.0}, first = true */
  HEAD();
  put_le(&b, 0, 1), put_le(&b, 7, 8), put_le(&b, 0, 1), put_le(&b, 3, 4), tide_buf_append(&b, "abc", 3);
  put_le(&b, 2, 4), put_le(&b, u1, 8), put_le(&b, u2, 8);
  put_le(&b, 1, 1), put_le(&b, 1, 1);
  seal(&b, 0);
  T_EQ_INT(tide_agg_restore(a, 5, b.data, b.len, &err), 0);
  tide_batch_t *r;
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  T_EQ_INT(tide_col_i64(&r->cols[0], 0), 7);
  T_CHECK(str_eq(&r->cols[1], 0, "abc"));
  T_EQ_INT(tide_col_i64(&r->cols[2], 0), 2);
  T_EQ_INT(tide_col_bool(&r->cols[3], 0), 1);
  tide_batch_free(r);
  T_EQ_INT(tide_agg_sid(a, 0), 5);
  /* the same key again */
  T_EQ_INT(tide_agg_restore(a, 6, b.data, b.len, &err), TIDE_ECORRUPT);
  T_EQ_STR(err.msg, "aggregation state record 6: its key already has a group (state id 5)");
  /* sid 0 */
  T_EQ_INT(tide_agg_restore(a, 0, b.data, b.len, &err), TIDE_ECORRUPT);
  T_EQ_STR(err.msg, "aggregation state record 0: state id out of range");
  /* checksum */
  b.data[b.len - 1] ^= 1;
  T_EQ_INT(tide_agg_restore(a, 7, b.data, b.len, &err), TIDE_ECORRUPT);
  T_EQ_STR(err.msg, "aggregation state record 7: checksum mismatch");
  /* version */
  b.data[0] = 9;
  T_EQ_INT(tide_agg_restore(a, 7, b.data, b.len, &err), TIDE_EFORMAT);
  T_EQ_STR(err.msg, "aggregation state record 7: format version 9, this build reads 1");
  T_EQ_INT(tide_agg_restore(a, 7, b.data, 0, &err), TIDE_ECORRUPT);
  T_EQ_STR(err.msg, "aggregation state record 7: empty");
  struct {
    const char *want;
    int code;
  } cases[] = {
      {"aggregation state record 8: key 'k' (int): a NULL flag that is neither 0 nor 1", TIDE_ECORRUPT},
      {"aggregation state record 8: key 's' (string): truncated", TIDE_ECORRUPT},
      {"aggregation state record 8: aggregate 0 (count_distinct): a value listed twice", TIDE_ECORRUPT},
      {"aggregation state record 8: aggregate 0 (count_distinct): an unnormalised double", TIDE_ECORRUPT},
      {"aggregation state record 8: aggregate 0 (count_distinct): truncated", TIDE_ECORRUPT},
      {"aggregation state record 8: aggregate 1 (first): impossible state flags", TIDE_ECORRUPT},
      {"aggregation state record 8: aggregate 1 (first): a bool that is neither 0 nor 1", TIDE_ECORRUPT},
      {"aggregation state record 8: 2 bytes after the last aggregate", TIDE_ECORRUPT},
  };
  for (int c = 0; c < 8; c++) {
    HEAD();
    put_le(&b, c == 0 ? 2 : 0, 1), put_le(&b, 8, 8);
    put_le(&b, 0, 1), put_le(&b, c == 1 ? 1000 : 1, 4), tide_buf_append(&b, "x", 1);
    if (c == 2) put_le(&b, 2, 4), put_le(&b, u1, 8), put_le(&b, u1, 8);
    else if (c == 3) put_le(&b, 1, 4), put_le(&b, unz, 8);
    else if (c == 4) put_le(&b, 0xfffffff, 4), put_le(&b, u1, 8);
    else put_le(&b, 0, 4);
    put_le(&b, c == 5 ? 2 : 1, 1), put_le(&b, c == 6 ? 5 : 0, 1);
    if (c == 7) put_le(&b, 0, 2);
    seal(&b, 0);
    T_EQ_INT(tide_agg_restore(a, 8, b.data, b.len, &err), cases[c].code);
    T_EQ_STR(err.msg, cases[c].want);
  }
  T_EQ_INT(tide_agg_groups(a), 1);
  /* another plan's records */
  tide_schema_t *ks2 = schema("k int?, s int?");
  tide_agg_t *o;
  T_EQ_INT(tide_agg_new(ks2, sp, 2, &o, &err), 0);
  HEAD();
  put_le(&b, 1, 1), put_le(&b, 1, 1), put_le(&b, 0, 4), put_le(&b, 0, 1);
  seal(&b, 0);
  T_EQ_INT(tide_agg_restore(o, 9, b.data, b.len, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "aggregation state record 9: key 1 is string, this aggregation's is int");
  tide_agg_free(o);
  tide_agg_spec_t sp2[] = {{TIDE_AGG_COUNT_DISTINCT, TIDE_T_DOUBLE, "dd"}, {TIDE_AGG_LAST, TIDE_T_BOOL, "fb"}};
  T_EQ_INT(tide_agg_new(ks, sp2, 2, &o, &err), 0);
  T_EQ_INT(tide_agg_restore(o, 9, b.data, b.len, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "aggregation state record 9: aggregate 1 is first of bool, this aggregation's is last of bool");
  tide_agg_free(o);
  T_EQ_INT(tide_agg_new(ks, sp2, 1, &o, &err), 0);
  T_EQ_INT(tide_agg_restore(o, 9, b.data, b.len, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "aggregation state record 9: written for 2 keys and 2 aggregates, this aggregation has 2 and 1");
  tide_agg_free(o);
  tide_schema_unref(ks2);
#undef HEAD
  tide_buf_free(&b);
  tide_agg_free(a);
  tide_schema_unref(ks);
}

/* ------------------------------------------------------ event time --- */

/* st_feed through tide_agg_update_ex with late flags and created flags. */
static int ev_feed(tide_agg_t *a, tide_schema_t *kschema, const keyset_t *ks, const tide_batch_t *b,
                   const uint8_t *late, uint8_t *created, tide_agg_feed_t *f) {
  tide_col_t kc[6];
  for (uint32_t k = 0; k < ks->n; k++) kc[k] = b->cols[ks->cols[k]];
  tide_batch_t *kb = tide_batch_borrowed(kschema, b->nrows, kc, NULL, NULL);
  const tide_col_t *args[40];
  for (uint32_t i = 0; i < st_nspecs; i++) args[i] = st_argcol[i] < 0 ? NULL : &b->cols[st_argcol[i]];
  tide_err_t err = {0, ""};
  memset(f, 0, sizeof *f);
  f->late = late;
  f->created = created;
  int rc = tide_agg_update_ex(a, kb, args, f, &err);
  if (rc) fprintf(stderr, "update_ex: %s\n", err.msg);
  tide_batch_free(kb);
  return rc;
}

/* The gids of b's keys in a (UINT32_MAX: none). */
static uint32_t *ev_lookup(tide_agg_t *a, tide_schema_t *kschema, const keyset_t *ks, const tide_batch_t *b) {
  tide_col_t kc[6];
  for (uint32_t k = 0; k < ks->n; k++) kc[k] = b->cols[ks->cols[k]];
  tide_batch_t *kb = tide_batch_borrowed(kschema, b->nrows, kc, NULL, NULL);
  uint32_t *g = malloc((b->nrows ? b->nrows : 1) * sizeof *g);
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_lookup(a, kb, g, &err), 0);
  tide_batch_free(kb);
  return g;
}

/* Random batches with rows late by their t column (NULL t: never late),
 * for every key set: the aggregation equals a reference fed only the
 * on-time rows; the counts are right (late_groups = the groups of an
 * aggregation fed only the late rows); created flags exactly the first
 * on-time row of each key the aggregation did not have; late rows make no
 * group. */
static void test_event_late_random(void) {
  tide_schema_t *in = schema(ST_IN);
  for (uint32_t s = 0; s < sizeof keysets / sizeof keysets[0]; s++) {
    const keyset_t *set = &keysets[s];
    tide_schema_t *ks = *set->ddl ? schema(set->ddl) : tide_schema_new();
    tide_agg_t *e = st_new(ks), *ref = st_new(ks);
    int bad = 0;
    for (int round = 0; round < 6; round++) {
      tide_batch_t *b = st_rows(in, 1500, 0, 40);
      int64_t bound = round == 0 ? -100000 : round == 5 ? INT64_MAX : (int64_t)round * 4000 - 6000;
      uint8_t *late = malloc(b->nrows), *created = malloc(b->nrows);
      uint32_t nl = tide_agg_mark_late(&b->cols[C_T], NULL, b->nrows, bound, late), want = 0;
      for (uint32_t i = 0; i < b->nrows; i++) {
        int l = !tide_col_is_null(&b->cols[C_T], i) && tide_col_i64(&b->cols[C_T], i) <= bound;
        if (l != late[i]) bad++;
        want += (uint32_t)l;
      }
      T_EQ_INT(nl, want);
      uint32_t *before = ev_lookup(e, ks, set, b), g0 = (uint32_t)tide_agg_groups(e);
      tide_agg_feed_t f;
      T_EQ_INT(ev_feed(e, ks, set, b, late, created, &f), 0);
      T_EQ_INT(f.late_rows, nl);
      T_EQ_INT(f.pushed, b->nrows - nl);
      /* the reference: on-time rows only; the late rows' own groups */
      uint32_t *on = malloc(b->nrows * sizeof *on), *off = malloc(b->nrows * sizeof *off), non = 0, noff = 0;
      for (uint32_t i = 0; i < b->nrows; i++) {
        if (late[i]) off[noff++] = i;
        else on[non++] = i;
      }
      tide_batch_t *bon, *boff;
      T_EQ_INT(tide_batch_gather(b, on, non, &bon), 0);
      T_EQ_INT(tide_batch_gather(b, off, noff, &boff), 0);
      T_EQ_INT(st_feed(ref, ks, set, bon), 0);
      tide_agg_t *lg = st_new(ks);
      T_EQ_INT(st_feed(lg, ks, set, boff), 0);
      T_EQ_INT(f.late_groups, tide_agg_groups(lg));
      T_CHECK(st_same(e, ref));
      /* created: the first on-time row of each new group, in order */
      uint32_t *after = ev_lookup(e, ks, set, b), next = g0, ncreated = 0;
      for (uint32_t i = 0; i < b->nrows; i++) {
        ncreated += created[i];
        if (late[i]) {
          if (created[i] || (before[i] == UINT32_MAX && after[i] != UINT32_MAX && after[i] < g0)) bad++;
          continue;
        }
        int first_new = after[i] == next;
        if (first_new) next++;
        if (created[i] != first_new || (created[i] && before[i] != UINT32_MAX)) bad++;
      }
      T_EQ_INT(ncreated, tide_agg_groups(e) - g0);
      T_EQ_INT(bad, 0);
      free(before);
      free(after);
      free(on);
      free(off);
      free(late);
      free(created);
      tide_agg_free(lg);
      tide_batch_free(bon);
      tide_batch_free(boff);
      tide_batch_free(b);
    }
    T_CHECK(tide_agg_groups(e) > 0);
    tide_agg_free(e);
    tide_agg_free(ref);
    tide_schema_unref(ks);
  }
  /* no late flags at all, and NULL created: as tide_agg_update */
  tide_schema_t *ks = schema(keysets[0].ddl);
  tide_agg_t *e = st_new(ks), *ref = st_new(ks);
  tide_batch_t *b = st_rows(in, 500, 0, 10);
  tide_agg_feed_t f;
  T_EQ_INT(ev_feed(e, ks, &keysets[0], b, NULL, NULL, &f), 0);
  T_EQ_INT(st_feed(ref, ks, &keysets[0], b), 0);
  T_EQ_INT(f.pushed, 500);
  T_EQ_INT(f.late_rows, 0);
  T_EQ_INT(f.late_groups, 0);
  T_CHECK(st_same(e, ref));
  /* every row late: nothing changes */
  uint8_t *all = malloc(500);
  memset(all, 1, 500);
  uint32_t g = (uint32_t)tide_agg_groups(e);
  tide_agg_clear_dirty(e);
  T_EQ_INT(ev_feed(e, ks, &keysets[0], b, all, NULL, &f), 0);
  const uint32_t *gids;
  T_EQ_INT(tide_agg_dirty(e, &gids), 0);
  T_EQ_INT(f.pushed, 0);
  T_EQ_INT(f.late_rows, 500);
  T_EQ_INT(f.late_groups, g);
  T_EQ_INT(tide_agg_groups(e), g);
  T_CHECK(st_same(e, ref));
  /* a shape error leaves the counts 0 */
  tide_schema_t *wrong = schema("ki string?, ks string?");
  tide_col_t kc[2] = {b->cols[C_KS], b->cols[C_KS]};
  tide_batch_t *kb = tide_batch_borrowed(wrong, b->nrows, kc, NULL, NULL);
  tide_err_t err = {0, ""};
  f.late = all;
  f.pushed = 7;
  T_EQ_INT(tide_agg_update_ex(e, kb, NULL, &f, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "key column 0: expected int, got string");
  T_EQ_INT(f.pushed, 0);
  tide_batch_free(kb);
  tide_schema_unref(wrong);
  free(all);
  tide_batch_free(b);
  tide_agg_free(e);
  tide_agg_free(ref);
  tide_schema_unref(ks);
  tide_schema_unref(in);
}

/* Windows by hand, as agg:push builds them: pairs from tide_window_assign,
 * keys (window_start, k), late by the window's end, the boundary
 * inclusive. Sliding (10, 5) and tumbling (10) over t = 1, 5, 12, NULL, 9
 * with k = a, a, b, a, b. */
static void ev_windows(int64_t size, int64_t slide, int64_t bound, uint32_t want_pairs, uint32_t want_late,
                       uint32_t want_late_groups, uint32_t want_groups, const char *want_created) {
  tide_schema_t *in = schema("t timestamp?, k string?");
  tide_schema_t *ks = schema("window_start timestamp, k string?");
  tide_batch_t *b = tide_batch_new(in, 5);
  const int64_t ts[] = {1, 5, 12, -1, 9};
  const char *k[] = {"a", "a", "b", "a", "b"};
  for (int i = 0; i < 5; i++) {
    tide_batch_row_begin(b);
    if (ts[i] >= 0) tide_batch_set_i64(b, 0, ts[i]);
    tide_batch_set_str(b, 1, k[i], 1);
    tide_batch_row_commit(b);
  }
  tide_window_t w = {size, slide, 0};
  uint32_t *rows = NULL, n = 0;
  int64_t *starts = NULL;
  T_EQ_INT(tide_window_assign(&w, &b->cols[0], 5, &rows, &starts, &n, NULL), 0);
  T_EQ_INT(n, want_pairs);
  int64_t *ends = malloc(n * sizeof *ends);
  tide_col_t kc[2];
  T_EQ_INT(tide_col_init(&kc[0], TIDE_T_TIMESTAMP, n), 0);
  T_EQ_INT(tide_col_gather(&b->cols[1], rows, n, &kc[1]), 0);
  for (uint32_t i = 0; i < n; i++) {
    ((int64_t *)kc[0].values)[i] = starts[i];
    ends[i] = starts[i] + size;
  }
  tide_batch_t *kb = tide_batch_borrowed(ks, n, kc, NULL, NULL);
  uint8_t *late = malloc(n), *created = malloc(n);
  T_EQ_INT(tide_agg_mark_late(NULL, ends, n, bound, late), want_late);
  tide_agg_spec_t sp[] = {{TIDE_AGG_COUNT_STAR, 0, "n"}};
  tide_agg_t *a = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_new(ks, sp, 1, &a, &err), 0);
  tide_agg_feed_t f = {late, created, 0, 0, 0};
  T_EQ_INT(tide_agg_update_ex(a, kb, NULL, &f, &err), 0);
  T_EQ_INT(f.pushed, n - want_late);
  T_EQ_INT(f.late_rows, want_late);
  T_EQ_INT(f.late_groups, want_late_groups);
  T_EQ_INT(tide_agg_groups(a), want_groups);
  char got[32];
  for (uint32_t i = 0; i < n; i++) got[i] = late[i] ? 'L' : created[i] ? 'C' : '.';
  got[n] = 0;
  T_EQ_STR(got, want_created);
  tide_agg_free(a);
  tide_batch_free(kb);
  tide_col_free(&kc[0]);
  tide_col_free(&kc[1]);
  free(rows);
  free(starts);
  free(ends);
  free(late);
  free(created);
  tide_batch_free(b);
  tide_schema_unref(ks);
  tide_schema_unref(in);
}

static void test_event_late_windows(void) {
  /* pairs: 1 -> -5, 0; 5 -> 0, 5; 12 -> 5, 10; NULL -> none; 9 -> 0, 5 */
  ev_windows(10, 5, 10, 8, 4, 3, 3, "LLLCCCL.");  /* end 10 <= 10: late */
  ev_windows(10, 5, 9, 8, 1, 1, 5, "LC.CCCC."); /* only [-5, 5) */
  ev_windows(10, 5, INT64_MIN, 8, 0, 0, 6, "CC.CCCC.");
  /* tumbling: 1 -> 0; 5 -> 0; 12 -> 10; 9 -> 0 */
  ev_windows(10, 10, 10, 4, 3, 2, 1, "LLCL");
  ev_windows(10, 10, 9, 4, 0, 0, 3, "C.CC");
}

/* Late by a raw event-time key: the boundary is inclusive and NULL is
 * never late; duplicates inside one batch create one group. */
static void test_event_late_raw_key(void) {
  tide_schema_t *ks = schema("t timestamp?");
  tide_batch_t *b = tide_batch_new(ks, 6);
  const int64_t ts[] = {10, 11, -1, 10, 11, 9};
  for (int i = 0; i < 6; i++) {
    tide_batch_row_begin(b);
    if (ts[i] >= 0) tide_batch_set_i64(b, 0, ts[i]);
    tide_batch_row_commit(b);
  }
  uint8_t late[6], created[6];
  T_EQ_INT(tide_agg_mark_late(&b->cols[0], NULL, 6, 10, late), 3);
  T_CHECK(late[0] && !late[1] && !late[2] && late[3] && !late[4] && late[5]);
  tide_agg_t *a = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_new(ks, NULL, 0, &a, &err), 0); /* dedup: no aggregate */
  tide_agg_feed_t f = {late, created, 0, 0, 0};
  T_EQ_INT(tide_agg_update_ex(a, b, NULL, &f, &err), 0);
  T_EQ_INT(f.pushed, 3);
  T_EQ_INT(f.late_groups, 2); /* 10 (twice) and 9 */
  T_EQ_INT(tide_agg_groups(a), 2);  /* 11 and NULL */
  T_CHECK(!created[0] && created[1] && created[2] && !created[3] && !created[4] && !created[5]);
  /* the same rows again: nothing new */
  T_EQ_INT(tide_agg_update_ex(a, b, NULL, &f, &err), 0);
  T_CHECK(!created[1] && !created[2] && !created[4]);
  T_EQ_INT(tide_agg_groups(a), 2);
  tide_agg_free(a);
  tide_batch_free(b);
  tide_schema_unref(ks);
}

/* An aggregation with no aggregate (streaming dedup) through its whole
 * life: update, result, changes, encode/restore, evict, remove, lookup,
 * merge. */
static void test_event_zero_specs(void) {
  tide_schema_t *ks = schema("k string?, t timestamp?");
  tide_batch_t *b = tide_batch_new(ks, 8);
  const char *k[] = {"a", "b", "a", "a-key-longer-than-twelve", NULL, "b", "a-key-longer-than-twelve"};
  const int64_t ts[] = {1, 2, 1, 3, 4, 2, 5};
  for (int i = 0; i < 7; i++) {
    tide_batch_row_begin(b);
    if (k[i]) tide_batch_set_str(b, 0, k[i], strlen(k[i]));
    tide_batch_set_i64(b, 1, ts[i]);
    tide_batch_row_commit(b);
  }
  tide_agg_t *a = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_new(ks, NULL, 0, &a, &err), 0);
  T_EQ_INT(tide_agg_schema(a)->nfields, 2);
  uint8_t created[7];
  tide_agg_feed_t f = {NULL, created, 0, 0, 0};
  T_EQ_INT(tide_agg_update_ex(a, b, NULL, &f, &err), 0);
  T_EQ_INT(tide_agg_groups(a), 5);
  T_CHECK(created[0] && created[1] && !created[2] && created[3] && created[4] && !created[5] && created[6]);
  tide_batch_t *r;
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  T_EQ_INT(r->nrows, 5);
  T_CHECK(str_eq(&r->cols[0], 2, "a-key-longer-than-twelve") && tide_col_is_null(&r->cols[0], 3));
  tide_batch_free(r);
  const uint32_t *gids;
  T_EQ_INT(tide_agg_dirty(a, &gids), 5);
  /* records round trip */
  tide_agg_t *c = NULL;
  T_EQ_INT(tide_agg_new(ks, NULL, 0, &c, &err), 0);
  tide_buf_t buf = TIDE_BUF_INIT;
  for (uint32_t g = 0; g < 5; g++) {
    buf.len = 0;
    T_EQ_INT(tide_agg_encode(a, g, &buf, &err), 0);
    T_EQ_INT(tide_agg_restore(c, tide_agg_sid(a, g), buf.data, buf.len, &err), 0);
  }
  T_CHECK(st_same(a, c));
  /* evict by t: 1 and 2 go */
  tide_batch_t *rows;
  uint64_t *sids;
  uint32_t n;
  T_EQ_INT(tide_agg_evict(c, 1, 2, &rows, &sids, &n, &err), 0);
  T_EQ_INT(n, 2);
  T_CHECK(sids[0] == 1 && sids[1] == 2 && str_eq(&rows->cols[0], 0, "a") && str_eq(&rows->cols[0], 1, "b"));
  tide_batch_free(rows);
  free(sids);
  /* lookup, remove, lookup again */
  uint32_t g[7];
  T_EQ_INT(tide_agg_lookup(c, b, g, &err), 0);
  T_CHECK(g[0] == UINT32_MAX && g[1] == UINT32_MAX && g[3] == 0 && g[4] == 1 && g[6] == 2);
  uint32_t gone[] = {1};
  T_EQ_INT(tide_agg_remove(c, gone, 1, &rows, &sids, &n, &err), 0);
  T_CHECK(n == 1 && sids[0] == 4 && rows->nrows == 1 && tide_col_is_null(&rows->cols[0], 0));
  tide_batch_free(rows);
  free(sids);
  T_EQ_INT(tide_agg_lookup(c, b, g, &err), 0);
  T_CHECK(g[3] == 0 && g[4] == UINT32_MAX);
  /* merge of nothing into nothing: dirty, nothing else */
  T_EQ_INT(tide_agg_merge(a, 0, 1, &err), 0);
  T_CHECK(st_same(a, a));
  tide_buf_free(&buf);
  tide_agg_free(a);
  tide_agg_free(c);
  tide_batch_free(b);
  tide_schema_unref(ks);
}

/* Evict by every aggregate column of int or timestamp result (counts,
 * sum of int, min/max/first/last of int and timestamp): exactly the groups
 * whose value there is not NULL and <= bound go, in gid order, with their
 * sids; the others stay in order. Other result types are refused. */
static void test_event_evict_by_aggregate(void) {
  tide_schema_t *in = schema(ST_IN);
  const keyset_t *set = &keysets[0];
  tide_schema_t *ks = schema(set->ddl);
  tide_batch_t *b = st_rows(in, 3000, 0, 10);
  uint32_t tried = 0;
  tide_agg_t *probe = st_new(ks);
  tide_schema_t *out = tide_agg_schema(probe);
  for (uint32_t col = tide_agg_nkeys(probe); col < out->nfields; col++) {
    tide_type_t t = out->fields[col].type;
    tide_agg_t *e = st_new(ks);
    T_EQ_INT(st_feed(e, ks, set, b), 0);
    tide_batch_t *before, *rows;
    uint64_t *sids;
    uint32_t n;
    tide_err_t err = {0, ""};
    T_EQ_INT(tide_agg_result(e, &before, &err), 0);
    if (t != TIDE_T_INT && t != TIDE_T_TIMESTAMP) {
      T_EQ_INT(tide_agg_evict(e, col, 0, &rows, &sids, &n, &err), TIDE_EINVAL);
      char want[120];
      snprintf(want, sizeof want, "evict: column '%s' is %s, expected int or timestamp", out->fields[col].name,
               tide_type_name(t));
      T_EQ_STR(err.msg, want);
      T_EQ_INT(tide_agg_groups(e), before->nrows);
      tide_batch_free(before);
      tide_agg_free(e);
      continue;
    }
    tried++;
    /* a bound in the middle of the values */
    const tide_col_t *c = &before->cols[col];
    int64_t lo = INT64_MAX, hi = INT64_MIN;
    for (uint32_t g = 0; g < before->nrows; g++)
      if (!tide_col_is_null(c, g)) {
        int64_t v = tide_col_i64(c, g);
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
    int64_t bound = lo + (int64_t)(((uint64_t)hi - (uint64_t)lo) / 2);
    uint64_t *sid0 = malloc(before->nrows * sizeof *sid0);
    uint32_t *gone = malloc(before->nrows * sizeof *gone), *kept = malloc(before->nrows * sizeof *kept), ng = 0,
             nk = 0, nulls = 0;
    for (uint32_t g = 0; g < before->nrows; g++) {
      sid0[g] = tide_agg_sid(e, g);
      nulls += (uint32_t)tide_col_is_null(c, g);
      if (!tide_col_is_null(c, g) && tide_col_i64(c, g) <= bound) gone[ng++] = g;
      else kept[nk++] = g;
    }
    T_CHECK(ng > 0);
    T_EQ_INT(tide_agg_evict(e, col, bound, &rows, &sids, &n, &err), 0);
    T_EQ_INT(n, ng);
    tide_batch_t *want, *after;
    T_EQ_INT(tide_batch_gather(before, gone, ng, &want), 0);
    T_CHECK(batch_same(rows, want));
    tide_batch_free(want);
    int bad = 0;
    for (uint32_t i = 0; i < n && i < ng; i++) bad += sids[i] != sid0[gone[i]];
    T_EQ_INT(tide_agg_result(e, &after, &err), 0);
    T_EQ_INT(tide_batch_gather(before, kept, nk, &want), 0);
    T_CHECK(batch_same(after, want));
    for (uint32_t g = 0; g < nk; g++) bad += tide_agg_sid(e, g) != sid0[kept[g]];
    T_EQ_INT(bad, 0);
    tide_batch_free(want);
    tide_batch_free(after);
    tide_batch_free(rows);
    tide_batch_free(before);
    free(sids);
    free(sid0);
    free(gone);
    free(kept);
    tide_agg_free(e);
  }
  T_EQ_INT(tried, 17); /* n, nx, sx; min/max/first/last of x and t; count_distinct of all six */
  tide_agg_free(probe);
  tide_batch_free(b);
  tide_schema_unref(ks);
  tide_schema_unref(in);
}

/* A key column of n rows all holding the string k. */
static void ev_key_col(tide_col_t *c, const char *k, uint32_t n) {
  T_EQ_INT(tide_col_init(c, TIDE_T_STRING, n), 0);
  for (uint32_t i = 0; i < n; i++) T_EQ_INT(tide_col_put_str(c, i, k, strlen(k)), 0);
}

/* Feed all of b to a under the single key k. */
static void ev_feed_as(tide_agg_t *a, tide_schema_t *ks, const tide_batch_t *b, const char *k) {
  tide_col_t kc;
  ev_key_col(&kc, k, b->nrows);
  tide_batch_t *kb = tide_batch_borrowed(ks, b->nrows, &kc, NULL, NULL);
  const tide_col_t *args[40];
  for (uint32_t i = 0; i < st_nspecs; i++) args[i] = st_argcol[i] < 0 ? NULL : &b->cols[st_argcol[i]];
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_update(a, kb, args, &err), 0);
  tide_batch_free(kb);
  tide_col_free(&kc);
}

/* 1 when aggregate columns from..nf of row i of x and row j of y agree. */
static int ev_row_same(const tide_batch_t *x, uint32_t i, const tide_batch_t *y, uint32_t j, uint32_t from) {
  uint32_t rx = i, ry = j;
  tide_batch_t *gx, *gy;
  if (tide_batch_gather(x, &rx, 1, &gx) || tide_batch_gather(y, &ry, 1, &gy)) return 0;
  int same = 1;
  for (uint32_t c = from; c < x->schema->nfields && same; c++) {
    tide_col_t cx = gx->cols[c], cy = gy->cols[c];
    tide_schema_t *one = schema("v int?"); /* batch_same looks at types and values only */
    tide_batch_t *bx = tide_batch_borrowed(one, 1, &cx, NULL, NULL), *by = tide_batch_borrowed(one, 1, &cy, NULL, NULL);
    same = batch_same(bx, by);
    if (!same) fprintf(stderr, "merge: column %s differs\n", x->schema->fields[c].name);
    tide_batch_free(bx);
    tide_batch_free(by);
    tide_schema_unref(one);
  }
  tide_batch_free(gx);
  tide_batch_free(gy);
  return same;
}

/* Merge, for every aggregate kind and type at once (st_specs): rows A
 * under key "dst" and rows B under "src", merged, equal one group fed A
 * then B; src is unchanged; dst (only) becomes dirty. Small random A and
 * B, so that states with no value, NULL firsts and lasts and overlapping
 * distinct sets all occur. */
static void test_event_merge(void) {
  tide_schema_t *in = schema(ST_IN);
  tide_schema_t *ks = schema("k string");
  int bad = 0;
  for (int round = 0; round < 300; round++) {
    tide_batch_t *ba = st_rows(in, 1 + (uint32_t)(rnd() % 4), 0, 10);
    tide_batch_t *bb = st_rows(in, 1 + (uint32_t)(rnd() % (round % 10 == 0 ? 60 : 4)), 0, 10);
    tide_agg_t *m = st_new(ks), *ref = st_new(ks);
    const char *dk = round % 2 ? "dst" : "a destination key past the inline size";
    ev_feed_as(m, ks, ba, dk);
    ev_feed_as(m, ks, bb, "src");
    ev_feed_as(ref, ks, ba, "one");
    ev_feed_as(ref, ks, bb, "one");
    tide_err_t err = {0, ""};
    tide_batch_t *before, *after, *want;
    T_EQ_INT(tide_agg_result(m, &before, &err), 0);
    tide_agg_clear_dirty(m);
    T_EQ_INT(tide_agg_merge(m, 0, 1, &err), 0);
    const uint32_t *gids;
    if (tide_agg_dirty(m, &gids) != 1 || gids[0] != 0) bad++;
    T_EQ_INT(tide_agg_result(m, &after, &err), 0);
    T_EQ_INT(tide_agg_result(ref, &want, &err), 0);
    if (!ev_row_same(after, 0, want, 0, 1)) bad++;
    if (!ev_row_same(after, 1, before, 1, 0)) bad++;
    if (!str_eq(&after->cols[0], 0, dk)) bad++;
    tide_batch_free(before);
    tide_batch_free(after);
    tide_batch_free(want);
    tide_agg_free(m);
    tide_agg_free(ref);
    tide_batch_free(ba);
    tide_batch_free(bb);
  }
  T_EQ_INT(bad, 0);
  /* dirty insertion keeps the list ascending; errors */
  tide_agg_t *m = st_new(ks);
  tide_batch_t *b = st_rows(in, 5, 0, 10);
  ev_feed_as(m, ks, b, "a");
  ev_feed_as(m, ks, b, "b");
  ev_feed_as(m, ks, b, "c");
  ev_feed_as(m, ks, b, "d");
  tide_agg_clear_dirty(m);
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_merge(m, 3, 0, &err), 0);
  T_EQ_INT(tide_agg_merge(m, 1, 0, &err), 0);
  T_EQ_INT(tide_agg_merge(m, 3, 2, &err), 0);
  const uint32_t *gids;
  T_EQ_INT(tide_agg_dirty(m, &gids), 2);
  T_CHECK(gids[0] == 1 && gids[1] == 3);
  T_EQ_INT(tide_agg_merge(m, 2, 2, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "merge: group 2 into itself");
  T_EQ_INT(tide_agg_merge(m, 4, 0, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "merge: group 4 does not exist (4 groups)");
  T_EQ_INT(tide_agg_merge(m, 0, 9, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "merge: group 9 does not exist (4 groups)");
  tide_agg_free(m);
  tide_batch_free(b);
  tide_schema_unref(ks);
  tide_schema_unref(in);
}

/* Remove given groups (unsorted, one listed twice): their rows and sids in
 * gid order, the rest kept in order; gid_of and lookup follow the
 * renumbered gids (also after restoring records out of sid order); a gid
 * out of range removes nothing. */
static void test_event_remove_lookup(void) {
  tide_schema_t *in = schema(ST_IN);
  const keyset_t *set = &keysets[0];
  tide_schema_t *ks = schema(set->ddl);
  tide_batch_t *b = st_rows(in, 3000, 0, 10);
  for (int reverse = 0; reverse < 2; reverse++) {
    tide_agg_t *src = st_new(ks);
    T_EQ_INT(st_feed(src, ks, set, b), 0);
    tide_agg_t *e = st_copy(src, ks, reverse); /* reverse: sids descend with gid */
    uint32_t n0 = (uint32_t)tide_agg_groups(e);
    tide_batch_t *before, *rows, *after, *want;
    tide_err_t err = {0, ""};
    T_EQ_INT(tide_agg_result(e, &before, &err), 0);
    uint64_t *sid0 = malloc(n0 * sizeof *sid0);
    for (uint32_t g = 0; g < n0; g++) sid0[g] = tide_agg_sid(e, g);
    int bad = 0;
    for (uint32_t g = 0; g < n0; g++) {
      uint32_t x = UINT32_MAX;
      if (!tide_agg_gid_of(e, sid0[g], &x) || x != g) bad++;
    }
    uint32_t x;
    T_CHECK(!tide_agg_gid_of(e, 0, &x) && !tide_agg_gid_of(e, n0 + 1, &x));
    /* out of range: nothing happens */
    uint32_t badg[] = {0, n0};
    uint64_t *sids;
    uint32_t n;
    T_EQ_INT(tide_agg_remove(e, badg, 2, &rows, &sids, &n, &err), TIDE_EINVAL);
    T_CHECK(rows == NULL && sids == NULL && n == 0 && tide_agg_groups(e) == n0);
    /* every third group, from the end, and group 3 twice */
    uint32_t *pick = malloc(n0 * sizeof *pick), np = 0;
    uint8_t *gone = calloc(n0, 1);
    for (uint32_t g = n0; g-- > 0;)
      if (g % 3 == 0) {
        pick[np++] = g;
        gone[g] = 1;
      }
    pick[np++] = 3;
    T_EQ_INT(tide_agg_remove(e, pick, np, &rows, &sids, &n, &err), 0);
    uint32_t *gl = malloc(n0 * sizeof *gl), *kl = malloc(n0 * sizeof *kl), ng = 0, nk = 0;
    for (uint32_t g = 0; g < n0; g++) {
      if (gone[g]) gl[ng++] = g;
      else kl[nk++] = g;
    }
    T_EQ_INT(n, ng);
    T_EQ_INT(tide_batch_gather(before, gl, ng, &want), 0);
    T_CHECK(batch_same(rows, want));
    tide_batch_free(want);
    for (uint32_t i = 0; i < n && i < ng; i++) bad += sids[i] != sid0[gl[i]];
    T_EQ_INT(tide_agg_result(e, &after, &err), 0);
    T_EQ_INT(tide_batch_gather(before, kl, nk, &want), 0);
    T_CHECK(batch_same(after, want));
    tide_batch_free(want);
    /* lookup of every input row: its group's sid is the one it had, or
     * none when that group was removed */
    uint32_t *g0 = ev_lookup(src, ks, set, b), *g1 = ev_lookup(e, ks, set, b);
    for (uint32_t i = 0; i < b->nrows; i++) {
      uint64_t s0 = tide_agg_sid(src, g0[i]);
      uint32_t was = UINT32_MAX;
      for (uint32_t g = 0; g < n0 && was == UINT32_MAX; g++)
        if (sid0[g] == s0) was = g;
      if (gone[was] ? g1[i] != UINT32_MAX : g1[i] == UINT32_MAX || tide_agg_sid(e, g1[i]) != s0) bad++;
    }
    for (uint32_t g = 0; g < nk; g++) {
      uint32_t y = UINT32_MAX;
      if (!tide_agg_gid_of(e, sid0[kl[g]], &y) || y != g) bad++;
    }
    for (uint32_t i = 0; i < ng; i++) bad += tide_agg_gid_of(e, sid0[gl[i]], &x);
    T_EQ_INT(bad, 0);
    /* nothing to remove */
    tide_batch_t *none;
    uint64_t *nsids;
    T_EQ_INT(tide_agg_remove(e, NULL, 0, &none, &nsids, &n, &err), 0);
    T_CHECK(none && none->nrows == 0 && nsids == NULL && n == 0);
    tide_batch_free(none);
    /* a key batch of another shape */
    tide_schema_t *wrong = schema("ki int?");
    tide_batch_t *kb = tide_batch_borrowed(wrong, b->nrows, b->cols, NULL, NULL);
    T_EQ_INT(tide_agg_lookup(e, kb, g1, &err), TIDE_EINVAL);
    T_EQ_STR(err.msg, "key batch has 1 columns, expected 2");
    tide_batch_free(kb);
    tide_schema_unref(wrong);
    free(g0);
    free(g1);
    free(gl);
    free(kl);
    free(pick);
    free(gone);
    free(sids);
    free(sid0);
    tide_batch_free(rows);
    tide_batch_free(after);
    tide_batch_free(before);
    tide_agg_free(e);
    tide_agg_free(src);
  }
  tide_batch_free(b);
  tide_schema_unref(ks);
  tide_schema_unref(in);
}

/* ----------------------------------------------------------- tide_agg_push --- */

/* Rows of (t timestamp?, k string?, v int?); t < 0 and k NULL are NULL. */
static tide_batch_t *tkv_rows(tide_schema_t *in, const int64_t *t, const char *const *k, const int64_t *v, uint32_t n) {
  tide_batch_t *b = tide_batch_new(in, n);
  for (uint32_t i = 0; b && i < n; i++) {
    if (tide_batch_row_begin(b)) break;
    if (t[i] < 0) tide_batch_set_null(b, 0);
    else tide_batch_set_i64(b, 0, t[i]);
    if (k[i]) tide_batch_set_str(b, 1, k[i], strlen(k[i]));
    else tide_batch_set_null(b, 1);
    tide_batch_set_i64(b, 2, v[i]);
    tide_batch_row_commit(b);
  }
  return b;
}

static tide_expr_t *compile(const char *text, tide_schema_t *s) {
  tide_expr_t *e = NULL;
  tide_err_t err = {0, ""};
  if (tide_expr_compile(text, strlen(text), s, 0, &e, &err)) fprintf(stderr, "%s: %s\n", text, err.msg);
  return e;
}

static tide_agg_input_t push_input(const tide_batch_t *b, const tide_agg_key_src_t *keys, const tide_expr_t *const *args) {
  tide_agg_input_t in;
  memset(&in, 0, sizeof in);
  in.batch = b;
  in.keys = keys;
  in.args = args;
  in.window_col = in.late_col = in.time_col = -1;
  return in;
}

/* A filter expression, a tumbling window on t (the repeated path: a NULL
 * time has no window), late pairs judged by the window's end, an
 * evaluated argument, the rows that were lost and that created a group,
 * and the time statistics of the rows the filter kept. */
static void test_push_filter_window_late(void) {
  tide_schema_t *in = schema("t timestamp?, k string?, v int?");
  tide_schema_t *ks = schema("window_start timestamp, k string?");
  int64_t t[] = {1000, 5000, 12000, -1, 15000, 3000};
  const char *k[] = {"a", "b", "a", "a", "b", "a"};
  int64_t v[] = {1, 2, 3, 4, -1, 5};
  tide_batch_t *b = tkv_rows(in, t, k, v, 6);
  tide_agg_spec_t sp[] = {{TIDE_AGG_COUNT_STAR, 0, "n"}, {TIDE_AGG_SUM, TIDE_T_INT, "s"}};
  tide_agg_t *a;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_new(ks, sp, 2, &a, &err), 0);
  tide_expr_t *kexpr = compile("k", in), *arg = compile("v * 10", in), *filter = compile("v > 0", in);
  tide_agg_key_src_t keys[] = {{TIDE_AGG_KEY_WINDOW_START, NULL}, {TIDE_AGG_KEY_EXPR, kexpr}};
  const tide_expr_t *args[] = {NULL, arg};
  tide_window_t w = {10000, 10000, 0};
  tide_agg_input_t pin = push_input(b, keys, args);
  pin.window = &w;
  pin.window_col = 0;
  pin.filter = filter;
  pin.late_col = 0;
  pin.late_bound = 10000; /* the window [0, 10000) ends at the bound: late */
  pin.want_created = 1;
  pin.time_col = 0;
  tide_agg_output_t out;
  T_EQ_INT(tide_agg_push(a, &pin, &out, &err), 0);
  /* kept: rows 0, 1, 2, 3, 5; pairs: 0, 1, 2, 5 (row 3 has no time) */
  T_EQ_INT(out.pushed, 1);
  T_EQ_INT(out.late_pairs, 3);
  T_EQ_INT(out.late_groups, 2); /* (0, a) and (0, b) */
  T_EQ_INT(out.time_count, 4);
  T_EQ_INT(out.time_min, 1000);
  T_EQ_INT(out.time_max, 12000);
  T_CHECK(out.time_sum == 21000.0);
  T_CHECK(out.lost != NULL && out.created != NULL);
  if (out.lost && out.created) {
    T_EQ_INT(out.lost->nrows, 3); /* rows 0, 1, 5: every pair late */
    T_EQ_INT(out.lost->schema->nfields, 3);
    T_EQ_INT(tide_col_i64(&out.lost->cols[0], 0), 1000);
    T_EQ_INT(tide_col_i64(&out.lost->cols[0], 1), 5000);
    T_EQ_INT(tide_col_i64(&out.lost->cols[0], 2), 3000);
    T_EQ_INT(tide_col_i64(&out.lost->cols[2], 2), 5);
    T_EQ_INT(out.created->nrows, 1); /* row 2 made (10000, a) */
    T_EQ_INT(tide_col_i64(&out.created->cols[0], 0), 12000);
    T_CHECK(str_eq(&out.created->cols[1], 0, "a"));
  }
  tide_batch_free(out.lost);
  tide_batch_free(out.created);
  tide_batch_t *r;
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  T_EQ_INT(r->nrows, 1);
  T_EQ_INT(tide_col_i64(&r->cols[0], 0), 10000);
  T_CHECK(str_eq(&r->cols[1], 0, "a"));
  T_EQ_INT(tide_col_i64(&r->cols[2], 0), 1);
  T_EQ_INT(tide_col_i64(&r->cols[3], 0), 30);
  tide_batch_free(r);
  /* no late pair: no lost batch; a filter that keeps every row */
  tide_expr_t *all = compile("v > -100", in);
  pin.filter = all;
  pin.late_bound = -1;
  pin.want_created = 0;
  T_EQ_INT(tide_agg_push(a, &pin, &out, &err), 0);
  T_EQ_INT(out.pushed, 5); /* every row with a time */
  T_EQ_INT(out.late_pairs, 0);
  T_CHECK(out.lost == NULL && out.created == NULL);
  T_EQ_INT(out.time_count, 5);
  T_EQ_INT(tide_agg_groups(a), 4); /* (10000, a), then (0, a), (0, b), (10000, b) */
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  T_EQ_INT(r->nrows, 4);
  T_EQ_INT(tide_col_i64(&r->cols[2], 0), 2); /* (10000, a): row 2 twice */
  T_EQ_INT(tide_col_i64(&r->cols[3], 0), 60);
  T_EQ_INT(tide_col_i64(&r->cols[0], 3), 10000); /* row 4, kept now */
  T_CHECK(str_eq(&r->cols[1], 3, "b"));
  T_EQ_INT(tide_col_i64(&r->cols[3], 3), -10);
  T_EQ_INT(tide_col_i64(&r->cols[2], 1), 2); /* (0, a): rows 0 and 5 */
  T_EQ_INT(tide_col_i64(&r->cols[3], 1), 60);
  tide_batch_free(r);
  tide_expr_free(all);
  tide_expr_free(kexpr);
  tide_expr_free(arg);
  tide_expr_free(filter);
  tide_batch_free(b);
  tide_agg_free(a);
  tide_schema_unref(in);
  tide_schema_unref(ks);
}

/* Sliding windows over the caller's selection (a Lua filter's rows), the
 * window's end as a key, late rows judged by another column (each row's
 * pairs all late or all not), and a row that creates two groups. */
static void test_push_select_sliding(void) {
  tide_schema_t *in = schema("t timestamp?, k string?, u int?");
  tide_schema_t *ks = schema("window_end timestamp, k string?");
  int64_t t[] = {7000, 2000, 12000, 8000};
  const char *k[] = {"a", "b", "a", "b"};
  int64_t u[] = {1, 100, 50, 5};
  tide_batch_t *b = tkv_rows(in, t, k, u, 4);
  tide_agg_spec_t sp[] = {{TIDE_AGG_COUNT_STAR, 0, "n"}, {TIDE_AGG_MAX, TIDE_T_INT, "top"}};
  tide_agg_t *a;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_new(ks, sp, 2, &a, &err), 0);
  tide_expr_t *kexpr = compile("k", in), *uexpr = compile("u", in);
  tide_agg_key_src_t keys[] = {{TIDE_AGG_KEY_WINDOW_END, NULL}, {TIDE_AGG_KEY_EXPR, kexpr}};
  const tide_expr_t *args[] = {NULL, uexpr};
  tide_window_t w = {10000, 5000, 0};
  uint32_t sel[] = {0, 2, 3};
  tide_agg_input_t pin = push_input(b, keys, args);
  pin.window = &w;
  pin.window_col = 0;
  pin.select = sel;
  pin.nselect = 3;
  pin.late_col = 2;
  pin.late_bound = 5; /* u <= 5: rows 0 and 3 */
  pin.want_created = 1;
  pin.time_col = 2;
  tide_agg_output_t out;
  T_EQ_INT(tide_agg_push(a, &pin, &out, &err), 0);
  T_EQ_INT(out.pushed, 2);      /* row 2's windows [5000, 15000) and [10000, 20000) */
  T_EQ_INT(out.late_pairs, 4);  /* two windows each of rows 0 and 3 */
  T_EQ_INT(out.late_groups, 4); /* (10000, a), (15000, a), (10000, b), (15000, b) */
  T_EQ_INT(out.time_count, 3);
  T_EQ_INT(out.time_min, 1);
  T_EQ_INT(out.time_max, 50);
  T_CHECK(out.time_sum == 56.0);
  T_CHECK(out.lost != NULL && out.created != NULL);
  if (out.lost && out.created) {
    T_EQ_INT(out.lost->nrows, 2);
    T_EQ_INT(tide_col_i64(&out.lost->cols[2], 0), 1);
    T_EQ_INT(tide_col_i64(&out.lost->cols[2], 1), 5);
    T_EQ_INT(out.created->nrows, 1); /* row 2, once for its two groups */
    T_EQ_INT(tide_col_i64(&out.created->cols[0], 0), 12000);
  }
  tide_batch_free(out.lost);
  tide_batch_free(out.created);
  tide_batch_t *r;
  T_EQ_INT(tide_agg_result(a, &r, &err), 0);
  T_EQ_INT(r->nrows, 2);
  T_EQ_INT(tide_col_i64(&r->cols[0], 0), 15000);
  T_EQ_INT(tide_col_i64(&r->cols[0], 1), 20000);
  T_CHECK(str_eq(&r->cols[1], 0, "a") && str_eq(&r->cols[1], 1, "a"));
  T_EQ_INT(tide_col_i64(&r->cols[2], 0), 1);
  T_EQ_INT(tide_col_i64(&r->cols[3], 1), 50);
  tide_batch_free(r);
  /* the same rows again: no group is new */
  T_EQ_INT(tide_agg_push(a, &pin, &out, &err), 0);
  T_CHECK(out.created != NULL && out.created->nrows == 0);
  T_EQ_INT(out.pushed, 2);
  tide_batch_free(out.lost);
  tide_batch_free(out.created);
  tide_expr_free(kexpr);
  tide_expr_free(uexpr);
  tide_batch_free(b);
  tide_agg_free(a);
  tide_schema_unref(in);
  tide_schema_unref(ks);
}

/* Inputs that do not fit: nothing is aggregated and err says why. */
static void test_push_errors(void) {
  tide_schema_t *in = schema("t timestamp?, k string?, v int?");
  tide_schema_t *ks = schema("window_start timestamp, k string?");
  int64_t t[] = {1000}, v[] = {1};
  const char *k[] = {"a"};
  tide_batch_t *b = tkv_rows(in, t, k, v, 1);
  tide_agg_spec_t sp[] = {{TIDE_AGG_COUNT_STAR, 0, "n"}};
  tide_agg_t *a;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_new(ks, sp, 1, &a, &err), 0);
  tide_expr_t *kexpr = compile("k", in), *filter = compile("v > 0", in);
  tide_agg_key_src_t keys[] = {{TIDE_AGG_KEY_WINDOW_START, NULL}, {TIDE_AGG_KEY_EXPR, kexpr}};
  const tide_expr_t *args[] = {NULL};
  tide_window_t w = {1000, 1000, 0}, bad = {1000, 2000, 0};
  uint32_t sel[] = {0}, unordered[] = {0, 0};
  tide_agg_output_t out;
  tide_agg_input_t pin = push_input(b, keys, args);
  T_EQ_INT(tide_agg_push(a, &pin, &out, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "key 0: a window key without a window");
  pin.window = &bad;
  pin.window_col = 0;
  T_EQ_INT(tide_agg_push(a, &pin, &out, &err), TIDE_EINVAL);
  pin.window = &w;
  pin.window_col = 1;
  T_EQ_INT(tide_agg_push(a, &pin, &out, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "window column 1 ('k') is string, expected timestamp or int");
  pin.window_col = 0;
  pin.late_col = 3;
  T_EQ_INT(tide_agg_push(a, &pin, &out, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "late column 3 does not exist (the batch has 3 columns)");
  pin.late_col = -1;
  pin.filter = filter;
  pin.select = sel;
  pin.nselect = 1;
  T_EQ_INT(tide_agg_push(a, &pin, &out, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "both a filter and a selection");
  pin.filter = NULL;
  pin.select = unordered;
  pin.nselect = 2;
  T_EQ_INT(tide_agg_push(a, &pin, &out, &err), TIDE_EINVAL);
  T_CHECK(out.lost == NULL && out.created == NULL);
  T_EQ_INT(tide_agg_groups(a), 0);
  /* a filter that is not bool: tide_expr_select's error */
  tide_expr_t *notbool = compile("v", in);
  pin.select = NULL;
  pin.nselect = 0;
  pin.filter = notbool;
  T_EQ_INT(tide_agg_push(a, &pin, &out, &err), TIDE_EINVAL);
  T_EQ_INT(tide_agg_groups(a), 0);
  pin.filter = NULL;
  T_EQ_INT(tide_agg_push(a, &pin, &out, &err), 0);
  T_EQ_INT(tide_agg_groups(a), 1);
  tide_expr_free(notbool);
  tide_expr_free(kexpr);
  tide_expr_free(filter);
  tide_batch_free(b);
  tide_agg_free(a);
  tide_schema_unref(in);
  tide_schema_unref(ks);
}


/* ------------------------------------------------------------ spilling --- */

/* A store in memory with what the engine keeps in the checkpoint: a
 * record per committed group, keyed by sid, and the index by key hash. */
typedef struct mstore {
  uint64_t *sid, *hash;
  tide_buf_t *rec;
  size_t n, cap;
  int lookups, scans; /* calls */
} mstore_t;

static int cmp_sid(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return (a > b) - (a < b);
}

static size_t ms_find(const mstore_t *m, uint64_t sid) {
  size_t lo = 0, hi = m->n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (m->sid[mid] < sid) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static void ms_put(mstore_t *m, uint64_t sid, uint64_t hash, const char *p, size_t len) {
  size_t i = ms_find(m, sid);
  if (i == m->n || m->sid[i] != sid) {
    if (m->n == m->cap) {
      m->cap = m->cap ? m->cap * 2 : 64;
      m->sid = realloc(m->sid, m->cap * sizeof *m->sid);
      m->hash = realloc(m->hash, m->cap * sizeof *m->hash);
      m->rec = realloc(m->rec, m->cap * sizeof *m->rec);
    }
    memmove(m->sid + i + 1, m->sid + i, (m->n - i) * sizeof *m->sid);
    memmove(m->hash + i + 1, m->hash + i, (m->n - i) * sizeof *m->hash);
    memmove(m->rec + i + 1, m->rec + i, (m->n - i) * sizeof *m->rec);
    m->n++;
    m->sid[i] = sid;
    m->rec[i] = (tide_buf_t)TIDE_BUF_INIT;
  }
  m->hash[i] = hash;
  m->rec[i].len = 0;
  tide_buf_append(&m->rec[i], p, len);
}

static void ms_del(mstore_t *m, uint64_t sid) {
  size_t i = ms_find(m, sid);
  if (i == m->n || m->sid[i] != sid) return;
  tide_buf_free(&m->rec[i]);
  memmove(m->sid + i, m->sid + i + 1, (m->n - i - 1) * sizeof *m->sid);
  memmove(m->hash + i, m->hash + i + 1, (m->n - i - 1) * sizeof *m->hash);
  memmove(m->rec + i, m->rec + i + 1, (m->n - i - 1) * sizeof *m->rec);
  m->n--;
}

static void ms_free(mstore_t *m) {
  for (size_t i = 0; i < m->n; i++) tide_buf_free(&m->rec[i]);
  free(m->sid);
  free(m->hash);
  free(m->rec);
}

static int ms_lookup(void *ctx, const uint64_t *h, uint32_t n, tide_agg_rec_fn fn, void *arg, tide_err_t *err) {
  mstore_t *m = ctx;
  m->lookups++;
  for (uint32_t j = 1; j < n; j++) T_CHECK(h[j - 1] < h[j]); /* ascending, distinct */
  for (size_t i = 0; i < m->n; i++)
    for (uint32_t j = 0; j < n; j++)
      if (m->hash[i] == h[j]) {
        int rc = fn(arg, m->sid[i], m->rec[i].data, m->rec[i].len, err);
        if (rc) return rc;
      }
  return 0;
}

static int ms_scan(void *ctx, uint64_t after, uint32_t max, tide_agg_rec_fn fn, void *arg, uint64_t *last, int *done,
                   tide_err_t *err) {
  mstore_t *m = ctx;
  m->scans++;
  size_t i = ms_find(m, after + 1);
  uint32_t k = 0;
  for (; i < m->n && k < max; i++, k++) {
    *last = m->sid[i];
    int rc = fn(arg, m->sid[i], m->rec[i].data, m->rec[i].len, err);
    if (rc) return rc;
  }
  *done = i == m->n;
  return 0;
}

/* A commit: the dirty groups' records and hashes put, the removed ones
 * deleted, then clear_dirty. */
static void ms_commit(mstore_t *m, tide_agg_t *a) {
  tide_err_t err = {0, ""};
  const uint64_t *gone, *hashes;
  size_t ng = tide_agg_gone(a, &gone, &hashes);
  for (size_t i = 0; i < ng; i++) ms_del(m, gone[i]);
  const uint32_t *gids;
  uint32_t nd = tide_agg_dirty(a, &gids);
  tide_buf_t buf = TIDE_BUF_INIT;
  for (uint32_t i = 0; i < nd; i++) {
    buf.len = 0;
    T_EQ_INT(tide_agg_encode(a, gids[i], &buf, &err), 0);
    ms_put(m, tide_agg_sid(a, gids[i]), tide_agg_hash(a, gids[i]), buf.data, buf.len);
  }
  tide_buf_free(&buf);
  tide_agg_clear_dirty(a);
}

/* Every group of a, in memory or only in the store, restored into a new
 * aggregation in sid order (the order of an aggregation that never
 * spilled). */
static tide_agg_t *ms_whole(const tide_agg_t *a, const mstore_t *m, tide_schema_t *kschema) {
  tide_agg_t *w = st_new(kschema);
  uint32_t n = (uint32_t)tide_agg_groups(a);
  uint64_t *order = malloc((n + 1) * sizeof *order);
  for (uint32_t g = 0; g < n; g++) order[g] = tide_agg_sid(a, g);
  qsort(order, n, sizeof *order, cmp_sid);
  tide_buf_t buf = TIDE_BUF_INIT;
  tide_err_t err = {0, ""};
  size_t i = 0;
  uint32_t j = 0;
  while (i < m->n || j < n) {
    uint64_t sid;
    if (j < n && (i == m->n || order[j] <= m->sid[i])) { /* in memory: the newer state */
      sid = order[j++];
      if (i < m->n && m->sid[i] == sid) i++;
      uint32_t g = 0;
      T_CHECK(tide_agg_gid_of(a, sid, &g));
      buf.len = 0;
      T_EQ_INT(tide_agg_encode(a, g, &buf, &err), 0);
      T_EQ_INT(tide_agg_restore(w, sid, buf.data, buf.len, &err), 0);
    } else {
      sid = m->sid[i];
      T_EQ_INT(tide_agg_restore(w, sid, m->rec[i].data, m->rec[i].len, &err), 0);
      i++;
    }
  }
  tide_buf_free(&buf);
  free(order);
  return w;
}

/* Batches into an aggregation that spills after every commit and into one
 * that never does: after each batch, the groups in memory and in the
 * store are exactly the other's groups (same sids, same states), memory
 * stays under the target after a spill, groups come back from the store
 * (not created again: the sid is kept), and result_all has every group. */
static void test_spill_reload(void) {
  tide_schema_t *in = schema(ST_IN);
  for (size_t ks = 0; ks < 3; ks++) {
    const keyset_t *set = &keysets[ks];
    tide_schema_t *kschema = schema(set->ddl);
    tide_agg_t *e = st_new(kschema), *ref = st_new(kschema);
    mstore_t m;
    memset(&m, 0, sizeof m);
    tide_agg_store_t store = {&m, ms_lookup, ms_scan};
    tide_agg_log_gone(e, 1);
    tide_agg_set_store(e, &store, 0, 0);
    tide_err_t err = {0, ""};
    uint32_t n;
    T_EQ_INT(tide_agg_spill(e, 0, &n, &err), 0); /* nothing yet */
    for (int b = 0; b < 8; b++) {
      tide_batch_t *rows = st_rows(in, 300, 0, 100);
      T_EQ_INT(st_feed(e, kschema, set, rows), 0);
      T_EQ_INT(st_feed(ref, kschema, set, rows), 0);
      tide_batch_free(rows);
      if (b == 0) { /* dirty groups cannot go */
        const uint32_t *dg;
        char want[64];
        snprintf(want, sizeof want, "spill: %u groups are not committed", tide_agg_dirty(e, &dg));
        T_EQ_INT(tide_agg_spill(e, 0, &n, &err), TIDE_EINVAL);
        T_EQ_STR(err.msg, want);
      }
      ms_commit(&m, e);
      tide_agg_clear_dirty(ref);
      size_t target = tide_agg_bytes(e) / 3;
      T_EQ_INT(tide_agg_spill(e, target, &n, &err), 0);
      T_CHECK(tide_agg_groups(e) == 0 || tide_agg_bytes(e) <= target);
      T_EQ_INT(tide_agg_groups(e) + tide_agg_spilled(e), tide_agg_groups(ref));
      tide_agg_t *w = ms_whole(e, &m, kschema);
      T_CHECK(st_same(w, ref));
      tide_agg_free(w);
      tide_batch_t *all, *want;
      T_EQ_INT(tide_agg_result_all(e, &all, &err), 0);
      T_EQ_INT(tide_agg_result(ref, &want, &err), 0);
      T_EQ_INT(all->nrows, want->nrows);
      tide_batch_free(all);
      tide_batch_free(want);
    }
    uint64_t sp, ld;
    tide_agg_spill_counts(e, &sp, &ld);
    if (ks < 3) T_CHECK(sp > 0 && ld > 0 && m.lookups > 0);
    tide_agg_free(e);
    tide_agg_free(ref);
    ms_free(&m);
    tide_schema_unref(kschema);
  }
  tide_schema_unref(in);
}

/* An eviction by an event-time key takes the groups only in the store
 * too (their rows and sids, logged as gone), skipping the store while no
 * stored group can be at or below the bound; what stays equals an
 * aggregation that never spilled. A stored record whose key is in
 * memory loads as nothing. */
static void test_spill_evict(void) {
  tide_schema_t *in = schema(ST_IN);
  const keyset_t *set = &keysets[2]; /* kt timestamp?, ks string? */
  tide_schema_t *kschema = schema(set->ddl);
  tide_agg_t *e = st_new(kschema), *ref = st_new(kschema);
  mstore_t m;
  memset(&m, 0, sizeof m);
  tide_agg_store_t store = {&m, ms_lookup, ms_scan};
  tide_agg_log_gone(e, 1);
  tide_agg_set_store(e, &store, 0, 0);
  tide_err_t err = {0, ""};
  uint32_t n;
  for (int b = 0; b < 6; b++) {
    tide_batch_t *rows = st_rows(in, 400, b * 20, 60);
    T_EQ_INT(st_feed(e, kschema, set, rows), 0);
    T_EQ_INT(st_feed(ref, kschema, set, rows), 0);
    tide_batch_free(rows);
    int64_t bound = b * 20 - 10;
    tide_batch_t *re, *rr;
    uint64_t *se, *sr;
    uint32_t ne, nr;
    int scans = m.scans;
    T_EQ_INT(tide_agg_evict(e, 0, bound, &re, &se, &ne, &err), 0);
    T_EQ_INT(tide_agg_evict(ref, 0, bound, &rr, &sr, &nr, &err), 0);
    if (b == 0) T_EQ_INT(m.scans, scans); /* nothing stored yet */
    T_EQ_INT(ne, nr);
    T_EQ_INT(re->nrows, rr->nrows);
    if (ne) qsort(se, ne, sizeof *se, cmp_sid);
    int bad = 0;
    for (uint32_t i = 0; i < ne && i < nr; i++) bad += se[i] != sr[i];
    T_EQ_INT(bad, 0);
    const uint64_t *gone, *hashes;
    T_EQ_INT(tide_agg_gone(e, &gone, &hashes), ne);
    free(se);
    free(sr);
    tide_batch_free(re);
    tide_batch_free(rr);
    ms_commit(&m, e);
    tide_agg_clear_dirty(ref);
    T_EQ_INT(tide_agg_spill(e, tide_agg_bytes(e) / 2, &n, &err), 0);
    tide_agg_t *w = ms_whole(e, &m, kschema);
    T_CHECK(st_same(w, ref));
    tide_agg_free(w);
  }
  T_CHECK(m.scans > 0); /* the store was walked for stored groups at or below a bound */
  /* a record of a group in memory: loading it changes nothing */
  T_CHECK(tide_agg_groups(e) > 0);
  tide_buf_t buf = TIDE_BUF_INIT;
  T_EQ_INT(tide_agg_encode(e, 0, &buf, &err), 0);
  uint64_t groups = tide_agg_groups(e), spilled = tide_agg_spilled(e);
  T_EQ_INT(tide_agg_load(e, tide_agg_sid(e, 0), buf.data, buf.len, &err), 0);
  T_EQ_INT(tide_agg_groups(e), groups);
  T_EQ_INT(tide_agg_spilled(e), spilled);
  /* a damaged one is refused, as restore refuses it */
  buf.data[buf.len - 1] ^= 1;
  T_EQ_INT(tide_agg_load(e, 999999, buf.data, buf.len, &err), TIDE_ECORRUPT);
  tide_buf_free(&buf);
  tide_agg_free(e);
  tide_agg_free(ref);
  ms_free(&m);
  tide_schema_unref(kschema);
  tide_schema_unref(in);
}

int main(void) {
  T_RUN(test_every_aggregate);
  T_RUN(test_errors);
  T_RUN(test_wrapping_sum);
  T_RUN(test_min_max);
  T_RUN(test_key_types);
  T_RUN(test_no_keys);
  T_RUN(test_count_distinct_exact);
  T_RUN(test_growth_and_memory);
  T_RUN(test_random_vs_reference_and_splits);
  st_init_specs();
  T_RUN(test_state_round_trip);
  T_RUN(test_state_long_and_empty);
  T_RUN(test_state_dirty);
  T_RUN(test_state_evict);
  T_RUN(test_state_evict_memory);
  T_RUN(test_state_corrupt_fuzz);
  T_RUN(test_state_corrupt_messages);
  T_RUN(test_event_late_random);
  T_RUN(test_event_late_windows);
  T_RUN(test_event_late_raw_key);
  T_RUN(test_event_zero_specs);
  T_RUN(test_event_evict_by_aggregate);
  T_RUN(test_event_merge);
  T_RUN(test_event_remove_lookup);
  T_RUN(test_push_filter_window_late);
  T_RUN(test_push_select_sliding);
  T_RUN(test_push_errors);
  T_RUN(test_spill_reload);
  T_RUN(test_spill_evict);
  T_DONE();
}
