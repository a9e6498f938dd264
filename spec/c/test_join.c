/*
 * test_join.c: hash join. Multi-key joins with duplicate keys on both
 * sides, every key type (NaN matches NaN, -0.0 matches 0.0, int probes
 * double), NULL keys that never match, inner and left outer, empty sides,
 * the errors, the gather of an outer join, and random batches against a
 * nested-loop reference. Frees everything it makes.
 */
#include <math.h>
#include <stdint.h>

#include "join.h"
#include "t.h"
#include "vec.h"

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s: %s\n", ddl, err.msg);
  return s;
}

/* The nested-loop reference's value equality (neither NULL). */
static int ref_eq(const tide_col_t *a, uint32_t i, const tide_col_t *b, uint32_t j) {
  if (a->type == TIDE_T_STRING || a->type == TIDE_T_JSON) {
    size_t na, nb;
    const char *pa = tide_col_str(a, i, &na), *pb = tide_col_str(b, j, &nb);
    return na == nb && memcmp(pa, pb, na) == 0;
  }
  if (a->type == TIDE_T_BOOL) return tide_col_bool(a, i) == tide_col_bool(b, j);
  if (a->type == TIDE_T_DOUBLE || b->type == TIDE_T_DOUBLE) {
    double x = a->type == TIDE_T_DOUBLE ? tide_col_f64(a, i) : (double)tide_col_i64(a, i);
    double y = b->type == TIDE_T_DOUBLE ? tide_col_f64(b, j) : (double)tide_col_i64(b, j);
    return x == y || (isnan(x) && isnan(y));
  }
  return tide_col_i64(a, i) == tide_col_i64(b, j);
}

/* Join with the hash join and with nested loops; 1 when the pair lists are
 * the same, in the same order. */
static int join_matches_reference(const tide_batch_t *l, const uint32_t *lk, const tide_batch_t *r, const uint32_t *rk,
                                  uint32_t nk, int outer, uint32_t *out_count) {
  tide_join_t *j = NULL;
  tide_err_t err = {0, ""};
  uint32_t *lr = NULL, *rr = NULL, count = 0;
  if (tide_join_build(r, rk, nk, &j, &err) || tide_join_probe(j, l, lk, outer, &lr, &rr, &count, &err)) {
    fprintf(stderr, "join: %s\n", err.msg);
    tide_join_free(j);
    return 0;
  }
  int ok = 1;
  uint32_t k = 0;
  for (uint32_t i = 0; i < l->nrows; i++) {
    int matched = 0;
    for (uint32_t x = 0; x < r->nrows; x++) {
      int eq = 1;
      for (uint32_t c = 0; c < nk && eq; c++) {
        const tide_col_t *a = &l->cols[lk[c]], *b = &r->cols[rk[c]];
        eq = !tide_col_is_null(a, i) && !tide_col_is_null(b, x) && ref_eq(a, i, b, x);
      }
      if (!eq) continue;
      matched = 1;
      if (k >= count || lr[k] != i || rr[k] != x) ok = 0;
      k++;
    }
    if (!matched && outer) {
      if (k >= count || lr[k] != i || rr[k] != TIDE_ROW_NULL) ok = 0;
      k++;
    }
  }
  if (k != count) ok = 0;
  if (out_count) *out_count = count;
  free(lr);
  free(rr);
  tide_join_free(j);
  return ok;
}

/* Two keys (int, string), duplicates on both sides, NULLs on both sides. */
static void test_multi_key_duplicates_nulls(void) {
  tide_schema_t *s = schema("a int?, b string?, v int");
  tide_batch_t *l = tide_batch_new(s, 0), *r = tide_batch_new(s, 0);
  struct {
    int an;
    int64_t a;
    const char *b;
  } lrows[] = {{0, 1, "x"}, {0, 2, "y"}, {1, 0, "x"}, {0, 1, NULL}, {0, 1, "x"}, {0, 3, "z"}, {0, 2, "y"}},
    rrows[] = {{0, 2, "y"}, {0, 1, "x"}, {1, 0, "x"}, {0, 1, "x"}, {0, 1, NULL}, {0, 2, "y"}, {0, 2, "y"}};
  for (int i = 0; i < 7; i++) {
    tide_batch_row_begin(l);
    if (!lrows[i].an) tide_batch_set_i64(l, 0, lrows[i].a);
    if (lrows[i].b) tide_batch_set_str(l, 1, lrows[i].b, strlen(lrows[i].b));
    tide_batch_set_i64(l, 2, i);
    tide_batch_row_commit(l);
    tide_batch_row_begin(r);
    if (!rrows[i].an) tide_batch_set_i64(r, 0, rrows[i].a);
    if (rrows[i].b) tide_batch_set_str(r, 1, rrows[i].b, strlen(rrows[i].b));
    tide_batch_set_i64(r, 2, 100 + i);
    tide_batch_row_commit(r);
  }
  uint32_t keys[] = {0, 1};
  tide_join_t *j;
  tide_err_t err;
  T_EQ_INT(tide_join_build(r, keys, 2, &j, &err), 0);
  uint32_t *lr, *rr, count;
  T_EQ_INT(tide_join_probe(j, l, keys, 0, &lr, &rr, &count, &err), 0);
  /* (1,x): right rows 1, 3; (2,y): right rows 0, 5, 6 */
  uint32_t want_l[] = {0, 0, 1, 1, 1, 4, 4, 6, 6, 6}, want_r[] = {1, 3, 0, 5, 6, 1, 3, 0, 5, 6};
  T_EQ_INT(count, 10);
  for (uint32_t k = 0; k < 10 && k < count; k++) {
    T_EQ_INT(lr[k], want_l[k]);
    T_EQ_INT(rr[k], want_r[k]);
  }
  free(lr);
  free(rr);
  T_EQ_INT(tide_join_probe(j, l, keys, 1, &lr, &rr, &count, &err), 0);
  T_EQ_INT(count, 13); /* plus rows 2 (NULL a), 3 (NULL b), 5 (no match) */
  T_EQ_INT(lr[5], 2);
  T_EQ_INT(rr[5], TIDE_ROW_NULL);
  T_EQ_INT(lr[6], 3);
  T_EQ_INT(rr[6], TIDE_ROW_NULL);
  T_EQ_INT(lr[9], 5);
  T_EQ_INT(rr[9], TIDE_ROW_NULL);
  /* the gather gives NULL right columns for the outer rows */
  tide_batch_t *g;
  T_EQ_INT(tide_batch_gather(r, rr, count, &g), 0);
  T_EQ_INT(g->nrows, 13);
  T_CHECK(tide_col_is_null(&g->cols[2], 5));
  T_CHECK(tide_col_is_null(&g->cols[1], 6));
  T_EQ_INT(tide_col_i64(&g->cols[2], 0), 101);
  T_EQ_INT(g->cols[2].null_count, 3);
  tide_batch_free(g);
  free(lr);
  free(rr);
  tide_join_free(j);
  T_CHECK(join_matches_reference(l, keys, r, keys, 2, 0, NULL));
  T_CHECK(join_matches_reference(l, keys, r, keys, 2, 1, NULL));
  uint32_t one[] = {1}; /* on b alone */
  T_CHECK(join_matches_reference(l, one, r, one, 1, 1, NULL));
  tide_batch_free(l);
  tide_batch_free(r);
  tide_schema_unref(s);
}

/* Keys of every type. */
static void test_key_types(void) {
  tide_schema_t *s = schema("f bool?, t timestamp?, d double?, i int?, j json?, s string?");
  tide_batch_t *l = tide_batch_new(s, 0), *r = tide_batch_new(s, 0);
  double ds[] = {0.0, -0.0, NAN, 1.5, 3.0, NAN, -1, 9007199254740993.0};
  int64_t is[] = {0, 0, 3, 1, 3, 7, -1, 9007199254740993};
  const char *js[] = {"1", "\"a\"", "[1,2]", "{}", "null", "1", "2", "\"a\""};
  const char *ss[] = {"", "a", "", "long string key value", "long string key valuf", "b", "a", ""};
  for (int side = 0; side < 2; side++) {
    tide_batch_t *b = side ? r : l;
    for (int i = 0; i < 8; i++) {
      int k = side ? 7 - i : i;
      tide_batch_row_begin(b);
      if (k != 6) tide_batch_set_bool(b, 0, k % 2);
      if (k != 2) tide_batch_set_i64(b, 1, (k % 3) * -1000);
      tide_batch_set_f64(b, 2, ds[k]);
      if (k != 5 || side) tide_batch_set_i64(b, 3, is[k]);
      tide_batch_set_str(b, 4, js[k], strlen(js[k]));
      if (k != 4) tide_batch_set_str(b, 5, ss[k], strlen(ss[k]));
      tide_batch_row_commit(b);
    }
  }
  uint32_t count;
  for (uint32_t c = 0; c < 6; c++) {
    uint32_t key[] = {c};
    T_CHECK(join_matches_reference(l, key, r, key, 1, 0, &count));
    T_CHECK(join_matches_reference(l, key, r, key, 1, 1, NULL));
    if (c == 2) T_EQ_INT(count, 12); /* 0/-0 x4, NaN x4, 1.5, 3, -1, 2^53+1 */
  }
  uint32_t k2[] = {0, 5}, k3[] = {1, 2, 4};
  T_CHECK(join_matches_reference(l, k2, r, k2, 2, 1, NULL));
  T_CHECK(join_matches_reference(l, k3, r, k3, 3, 1, NULL));
  /* an int key probes a double key, as numbers */
  uint32_t li[] = {3}, rd[] = {2};
  T_CHECK(join_matches_reference(l, li, r, rd, 1, 1, &count));
  T_EQ_INT(count, 10); /* 0 x4, 3 x2, -1, 2^53 (+1 rounds), two outer rows */
  T_CHECK(join_matches_reference(l, rd, r, li, 1, 0, NULL));
  tide_batch_free(l);
  tide_batch_free(r);
  tide_schema_unref(s);
}

static void test_empty_sides_and_errors(void) {
  tide_schema_t *s = schema("k string?, v int");
  tide_batch_t *full = tide_batch_new(s, 0), *empty = tide_batch_new(s, 0);
  for (int i = 0; i < 5; i++) {
    tide_batch_row_begin(full);
    tide_batch_set_str(full, 0, "k", 1);
    tide_batch_set_i64(full, 1, i);
    tide_batch_row_commit(full);
  }
  uint32_t key[] = {0}, count;
  T_CHECK(join_matches_reference(full, key, empty, key, 1, 0, &count));
  T_EQ_INT(count, 0);
  T_CHECK(join_matches_reference(full, key, empty, key, 1, 1, &count));
  T_EQ_INT(count, 5);
  T_CHECK(join_matches_reference(empty, key, full, key, 1, 1, &count));
  T_EQ_INT(count, 0);
  T_CHECK(join_matches_reference(full, key, full, key, 1, 0, &count));
  T_EQ_INT(count, 25);
  tide_join_t *j = (tide_join_t *)1;
  tide_err_t err;
  uint32_t bad[] = {2};
  T_EQ_INT(tide_join_build(full, bad, 1, &j, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "join key 0: right column 2 out of range (2 columns)");
  T_CHECK(j == NULL);
  T_EQ_INT(tide_join_build(full, key, 1, &j, &err), 0);
  uint32_t *lr = (uint32_t *)1, *rr = (uint32_t *)1, other[] = {1};
  T_EQ_INT(tide_join_probe(j, full, other, 0, &lr, &rr, &count, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "join key 0: left is int, right is string");
  T_CHECK(lr == NULL && rr == NULL && count == 0);
  T_EQ_INT(tide_join_probe(j, full, bad, 0, &lr, &rr, &count, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "join key 0: left column 2 out of range (2 columns)");
  tide_join_free(j);
  tide_join_free(NULL);
  tide_batch_free(full);
  tide_batch_free(empty);
  tide_schema_unref(s);
}

static uint64_t rng_state = 99;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Random batches with small key domains: many duplicates and NULLs. */
static void test_random_vs_nested_loops(void) {
  tide_schema_t *s = schema("a int?, b string?, c bool?");
  for (int round = 0; round < 4; round++) {
    uint32_t nl = round < 2 ? 2000 : 300, nr = round < 2 ? 1500 : 4000;
    tide_batch_t *l = tide_batch_new(s, 0), *r = tide_batch_new(s, 0);
    for (int side = 0; side < 2; side++) {
      tide_batch_t *b = side ? r : l;
      for (uint32_t i = 0; i < (side ? nr : nl); i++) {
        char txt[32];
        int len = snprintf(txt, sizeof txt, rnd() % 2 ? "key-%d" : "a-longer-key-%d", (int)(rnd() % 5));
        tide_batch_row_begin(b);
        if (rnd() % 10) tide_batch_set_i64(b, 0, (int64_t)(rnd() % (round % 2 ? 400 : 30)));
        if (rnd() % 10) tide_batch_set_str(b, 1, txt, (size_t)len);
        if (rnd() % 10) tide_batch_set_bool(b, 2, (int)(rnd() % 2));
        tide_batch_row_commit(b);
      }
    }
    uint32_t k1[] = {0}, k3[] = {0, 1, 2}, count;
    T_CHECK(join_matches_reference(l, k1, r, k1, 1, 0, &count));
    T_CHECK(count > 0);
    T_CHECK(join_matches_reference(l, k1, r, k1, 1, 1, NULL));
    T_CHECK(join_matches_reference(l, k3, r, k3, 3, 0, NULL));
    T_CHECK(join_matches_reference(l, k3, r, k3, 3, 1, NULL));
    tide_batch_free(l);
    tide_batch_free(r);
  }
  tide_schema_unref(s);
}

int main(void) {
  T_RUN(test_multi_key_duplicates_nulls);
  T_RUN(test_key_types);
  T_RUN(test_empty_sides_and_errors);
  T_RUN(test_random_vs_nested_loops);
  T_DONE();
}
