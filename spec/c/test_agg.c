/*
 * test_agg.c: hash aggregation. Every aggregate with NULLs (all-NULL groups,
 * NULL keys as a group of their own), key types (inline and arena strings,
 * NaN and -0.0, bool, json, no keys at all), wrapping sums, min/max of
 * strings, first/last order, count_distinct exactness, table growth,
 * memory that grows with groups only, the errors, and 100k random rows
 * checked against a naive reference and fed whole or in random slices.
 * Frees everything it makes.
 */
#include <math.h>
#include <stdint.h>

#include "agg.h"
#include "t.h"
#include "vec.h"

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
  T_DONE();
}
