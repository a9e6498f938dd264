/*
 * test_sort.c: the multi-key stable sort. NaN, -0.0 and infinities, NULLs
 * first or last in either direction, strings bytewise (UTF-8), stability on
 * ties, the errors, and random batches with many ties sorted by random keys
 * against qsort with the row index as the last key.
 */
#include <math.h>
#include <stdint.h>

#include "sort.h"
#include "t.h"
#include "vec.h"

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s: %s\n", ddl, err.msg);
  return s;
}

static void test_doubles_nan_nulls(void) {
  tide_schema_t *s = schema("d double?");
  tide_batch_t *b = tide_batch_new(s, 0);
  /* rows:        0    1     2    3         4     5    6          7 */
  double v[] = {1.0, NAN, -0.0, INFINITY, 0.0, -1.0, -INFINITY, 0.0};
  int nul[] = {0, 0, 0, 0, 0, 1, 0, 0};
  for (int i = 0; i < 8; i++) {
    tide_batch_row_begin(b);
    if (!nul[i]) tide_batch_set_f64(b, 0, v[i]);
    tide_batch_row_commit(b);
  }
  uint32_t perm[8];
  tide_err_t err;
  tide_sort_key_t k = {0, 0, 1}; /* asc, NULLs first: Spark's default */
  T_EQ_INT(tide_sort(b, &k, 1, perm, &err), 0);
  uint32_t asc[] = {5, 6, 2, 4, 7, 0, 3, 1}; /* -0.0 == 0.0: input order */
  for (int i = 0; i < 8; i++) T_EQ_INT(perm[i], asc[i]);
  k = (tide_sort_key_t){0, 1, 0}; /* desc, NULLs last: Spark's default */
  T_EQ_INT(tide_sort(b, &k, 1, perm, &err), 0);
  uint32_t desc[] = {1, 3, 0, 2, 4, 7, 6, 5};
  for (int i = 0; i < 8; i++) T_EQ_INT(perm[i], desc[i]);
  k = (tide_sort_key_t){0, 1, 1}; /* desc, NULLs first */
  T_EQ_INT(tide_sort(b, &k, 1, perm, &err), 0);
  T_EQ_INT(perm[0], 5);
  T_EQ_INT(perm[1], 1);
  k = (tide_sort_key_t){0, 0, 0}; /* asc, NULLs last */
  T_EQ_INT(tide_sort(b, &k, 1, perm, &err), 0);
  T_EQ_INT(perm[0], 6);
  T_EQ_INT(perm[6], 1);
  T_EQ_INT(perm[7], 5);
  tide_batch_free(b);
  tide_schema_unref(s);
}

static void test_strings_bools_multi_key(void) {
  tide_schema_t *s = schema("s string?, f bool?, n int");
  tide_batch_t *b = tide_batch_new(s, 0);
  const char *ss[] = {"b", "\xc3\xa9", "a", "", NULL, "ab", "b", "z", "a"};
  int fs[] = {1, 0, 1, -1, 0, 1, 0, 1, 0};
  for (int i = 0; i < 9; i++) {
    tide_batch_row_begin(b);
    if (ss[i]) tide_batch_set_str(b, 0, ss[i], strlen(ss[i]));
    if (fs[i] >= 0) tide_batch_set_bool(b, 1, fs[i]);
    tide_batch_set_i64(b, 2, i);
    tide_batch_row_commit(b);
  }
  uint32_t perm[9];
  tide_err_t err;
  tide_sort_key_t k1 = {0, 0, 0};
  T_EQ_INT(tide_sort(b, &k1, 1, perm, &err), 0);
  uint32_t want1[] = {3, 2, 8, 5, 0, 6, 7, 1, 4}; /* "" a a ab b b z é NULL */
  for (int i = 0; i < 9; i++) T_EQ_INT(perm[i], want1[i]);
  tide_sort_key_t k2[] = {{1, 1, 1}, {0, 0, 1}}; /* f desc NULLs first, then s */
  T_EQ_INT(tide_sort(b, k2, 2, perm, &err), 0);
  uint32_t want2[] = {3, 2, 5, 0, 7, 4, 8, 6, 1}; /* NULL; true: a ab b z; false: NULL a b é */
  for (int i = 0; i < 9; i++) T_EQ_INT(perm[i], want2[i]);
  /* no keys: the identity; a bad column: the error */
  T_EQ_INT(tide_sort(b, k2, 0, perm, &err), 0);
  for (uint32_t i = 0; i < 9; i++) T_EQ_INT(perm[i], i);
  tide_sort_key_t bad = {3, 0, 0};
  T_EQ_INT(tide_sort(b, &bad, 1, perm, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "sort key 0: column 3 out of range (3 columns)");
  tide_batch_free(b);
  /* no rows, one row */
  b = tide_batch_new(s, 0);
  T_EQ_INT(tide_sort(b, &k1, 1, perm, &err), 0);
  tide_batch_row_begin(b);
  tide_batch_row_commit(b);
  T_EQ_INT(tide_sort(b, &k1, 1, perm, &err), 0);
  T_EQ_INT(perm[0], 0);
  tide_batch_free(b);
  tide_schema_unref(s);
}

/* ------------------------------------------------------- reference --- */

static const tide_batch_t *ref_b;
static const tide_sort_key_t *ref_k;
static uint32_t ref_nk;

static int ref_cmp_key(const tide_sort_key_t *k, uint32_t a, uint32_t b) {
  const tide_col_t *c = &ref_b->cols[k->col];
  int na = tide_col_is_null(c, a), nb = tide_col_is_null(c, b);
  if (na && nb) return 0;
  if (na) return k->nulls_first ? -1 : 1;
  if (nb) return k->nulls_first ? 1 : -1;
  int r = 0;
  if (c->type == TIDE_T_DOUBLE) {
    double x = tide_col_f64(c, a), y = tide_col_f64(c, b);
    if (isnan(x) || isnan(y)) r = isnan(x) - isnan(y);
    else r = x < y ? -1 : x > y ? 1 : 0;
  } else if (c->type == TIDE_T_STRING) {
    size_t la, lb;
    const unsigned char *pa = (const unsigned char *)tide_col_str(c, a, &la);
    const unsigned char *pb = (const unsigned char *)tide_col_str(c, b, &lb);
    size_t i = 0;
    while (i < la && i < lb && pa[i] == pb[i]) i++;
    r = i < la && i < lb ? (pa[i] < pb[i] ? -1 : 1) : (la > lb) - (la < lb);
  } else if (c->type == TIDE_T_BOOL) {
    r = tide_col_bool(c, a) - tide_col_bool(c, b);
  } else {
    r = (tide_col_i64(c, a) > tide_col_i64(c, b)) - (tide_col_i64(c, a) < tide_col_i64(c, b));
  }
  return k->desc ? -r : r;
}

static int ref_cmp(const void *pa, const void *pb) {
  uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
  for (uint32_t i = 0; i < ref_nk; i++) {
    int r = ref_cmp_key(&ref_k[i], a, b);
    if (r) return r;
  }
  return (a > b) - (a < b); /* the input order decides ties: stable */
}

static uint64_t rng_state = 1234;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static void test_random_vs_reference(void) {
  tide_schema_t *s = schema("i int?, d double?, s string?, f bool?, t timestamp?");
  int bad = 0;
  for (int round = 0; round < 40; round++) {
    uint32_t n = round == 0 ? 100000 : (uint32_t)(rnd() % 3000);
    tide_batch_t *b = tide_batch_new(s, n);
    int with_nulls = round % 4 != 1;
    for (uint32_t r = 0; r < n; r++) {
      tide_batch_row_begin(b);
      if (!with_nulls || rnd() % 8) tide_batch_set_i64(b, 0, (int64_t)(rnd() % 20) - 10);
      if (!with_nulls || rnd() % 8) {
        uint64_t x = rnd() % 12;
        tide_batch_set_f64(b, 1, x == 0 ? NAN : x == 1 ? -0.0 : x == 2 ? 0.0 : x == 3 ? -INFINITY : (double)x / 4);
      }
      if (!with_nulls || rnd() % 8) {
        char txt[8];
        int len = (int)(rnd() % 4);
        for (int i = 0; i < len; i++) txt[i] = "ab\xc3z"[rnd() % 4];
        tide_batch_set_str(b, 2, txt, (size_t)len);
      }
      if (!with_nulls || rnd() % 8) tide_batch_set_bool(b, 3, (int)(rnd() % 2));
      if (!with_nulls || rnd() % 8) tide_batch_set_i64(b, 4, (int64_t)(rnd() % 2000) - 1000 + (rnd() % 2 ? INT64_MIN / 2 : 0));
      tide_batch_row_commit(b);
    }
    tide_sort_key_t keys[4];
    uint32_t nk = 1 + (uint32_t)(rnd() % 4);
    for (uint32_t i = 0; i < nk; i++)
      keys[i] = (tide_sort_key_t){(uint32_t)(rnd() % 5), (int)(rnd() % 2), (int)(rnd() % 2)};
    if (round >= 1 && round <= 20) { /* every column alone, every direction and NULL place */
      nk = 1;
      keys[0] = (tide_sort_key_t){(uint32_t)(round % 5), (round / 5) % 2, (round / 10) % 2};
    }
    uint32_t *perm = malloc((n ? n : 1) * sizeof *perm), *want = malloc((n ? n : 1) * sizeof *want);
    tide_err_t err;
    T_EQ_INT(tide_sort(b, keys, nk, perm, &err), 0);
    for (uint32_t i = 0; i < n; i++) want[i] = i;
    ref_b = b;
    ref_k = keys;
    ref_nk = nk;
    qsort(want, n, sizeof *want, ref_cmp);
    for (uint32_t i = 0; i < n; i++)
      if (perm[i] != want[i]) bad++;
    /* and sorted input sorts to itself */
    if (n) {
      tide_batch_t *sorted;
      T_EQ_INT(tide_batch_gather(b, want, n, &sorted), 0);
      T_EQ_INT(tide_sort(sorted, keys, nk, perm, &err), 0);
      for (uint32_t i = 0; i < n; i++)
        if (perm[i] != i) bad++;
      tide_batch_free(sorted);
    }
    free(perm);
    free(want);
    tide_batch_free(b);
  }
  T_EQ_INT(bad, 0);
  tide_schema_unref(s);
}

int main(void) {
  T_RUN(test_doubles_nan_nulls);
  T_RUN(test_strings_bools_multi_key);
  T_RUN(test_random_vs_reference);
  T_DONE();
}
