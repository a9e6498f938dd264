/*
 * test_batch.c: the row builder (NULLs, lazy validity, abort), growth of
 * vectors and string data, truncate, append_row, borrowed batches and the
 * limits. Frees everything it makes.
 */
#include <stdint.h>

#include "batch.h"
#include "t.h"

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s\n", err.msg);
  return s;
}

static int str_eq(const tide_col_t *c, uint32_t r, const char *want) {
  size_t n;
  const char *p = tide_col_str(c, r, &n);
  return n == strlen(want) && !memcmp(p, want, n);
}

static void test_rows_and_nulls(void) {
  tide_schema_t *s = schema("a int?, b string?, c double, d bool?, e timestamp, f json?");
  tide_batch_t *b = tide_batch_new(s, 2);
  tide_schema_unref(s); /* the batch holds its own reference */
  T_EQ_INT(b->schema->refs, 1);
  for (int i = 0; i < 100; i++) {
    T_EQ_INT(tide_batch_row_begin(b), 0);
    if (i % 3) tide_batch_set_i64(b, 0, i);
    char txt[32];
    int n = snprintf(txt, sizeof txt, "row-%d", i);
    if (i % 5) T_EQ_INT(tide_batch_set_str(b, 1, txt, (size_t)n), 0);
    tide_batch_set_f64(b, 2, i * 0.5);
    tide_batch_set_bool(b, 3, i & 1);
    tide_batch_set_i64(b, 4, 1000 + i);
    if (i == 7) T_EQ_INT(tide_batch_set_str(b, 5, "[1]", 3), 0);
    tide_batch_row_commit(b);
    if (i == 0) { /* a and b are NULL in row 0; c never */
      T_CHECK(b->cols[0].valid != NULL);
      T_CHECK(b->cols[1].valid != NULL);
      T_CHECK(b->cols[2].valid == NULL);
    }
  }
  T_EQ_INT(b->nrows, 100);
  T_CHECK(b->cap >= 100);
  T_EQ_INT(b->cols[0].null_count, 34);
  T_EQ_INT(b->cols[1].null_count, 20);
  T_EQ_INT(b->cols[2].null_count, 0);
  T_CHECK(b->cols[2].valid == NULL);
  T_CHECK(b->cols[3].valid == NULL);
  T_EQ_INT(b->cols[5].null_count, 99);
  int bad = 0;
  for (uint32_t i = 0; i < 100; i++) {
    char txt[32];
    snprintf(txt, sizeof txt, "row-%u", i);
    if (tide_col_is_null(&b->cols[0], i) != (i % 3 == 0)) bad++;
    if (i % 3 == 0 && tide_col_i64(&b->cols[0], i) != 0) bad++; /* NULL values are zero */
    if (i % 3 && tide_col_i64(&b->cols[0], i) != i) bad++;
    if (tide_col_is_null(&b->cols[1], i) != (i % 5 == 0)) bad++;
    if (i % 5 && !str_eq(&b->cols[1], i, txt)) bad++;
    if (i % 5 == 0 && !str_eq(&b->cols[1], i, "")) bad++;
    if (tide_col_f64(&b->cols[2], i) != i * 0.5) bad++;
    if (tide_col_bool(&b->cols[3], i) != (int)(i & 1)) bad++;
    if (tide_col_i64(&b->cols[4], i) != 1000 + i) bad++;
    if (tide_col_is_null(&b->cols[5], i) != (i != 7)) bad++;
  }
  T_EQ_INT(bad, 0);
  T_CHECK(str_eq(&b->cols[5], 7, "[1]"));
  /* offsets invariant */
  const uint32_t *off = b->cols[1].values;
  T_EQ_INT(off[0], 0);
  T_EQ_INT(off[100], b->cols[1].data_len);
  T_CHECK(tide_batch_bytes(b) > 0);
  /* clear keeps capacity and resets NULL state */
  uint32_t cap = b->cap;
  tide_batch_clear(b);
  T_EQ_INT(b->nrows, 0);
  T_EQ_INT(b->cap, cap);
  T_CHECK(b->cols[0].valid == NULL);
  T_EQ_INT(b->cols[0].null_count, 0);
  T_EQ_INT(b->cols[1].data_len, 0);
  tide_batch_free(b);
  tide_batch_free(NULL);
}

static void test_abort(void) {
  tide_schema_t *s = schema("a int?, b string?");
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_schema_unref(s);
  tide_batch_row_begin(b);
  tide_batch_set_i64(b, 0, 1);
  tide_batch_set_str(b, 1, "keep", 4);
  tide_batch_row_commit(b);
  tide_batch_row_begin(b);
  tide_batch_set_i64(b, 0, 2);
  tide_batch_set_str(b, 1, "gone-gone", 9);
  tide_batch_row_abort(b);
  T_EQ_INT(b->nrows, 1);
  T_EQ_INT(b->cols[1].data_len, 4);
  T_CHECK(b->cols[0].valid == NULL);
  /* set, then set again / set NULL within the same row */
  tide_batch_row_begin(b);
  tide_batch_set_str(b, 1, "first", 5);
  tide_batch_set_str(b, 1, "x", 1);
  tide_batch_row_commit(b);
  T_CHECK(str_eq(&b->cols[1], 1, "x"));
  T_EQ_INT(b->cols[1].data_len, 5);
  T_CHECK(tide_col_is_null(&b->cols[0], 1));
  tide_batch_row_begin(b);
  tide_batch_set_str(b, 1, "zzz", 3);
  tide_batch_set_null(b, 1);
  tide_batch_set_i64(b, 0, 3);
  tide_batch_row_commit(b);
  T_CHECK(tide_col_is_null(&b->cols[1], 2));
  T_EQ_INT(b->cols[1].data_len, 5);
  T_EQ_INT(b->cols[1].null_count, 1);
  T_EQ_INT(b->cols[0].null_count, 1);
  /* truncate back to one row: counts and data follow */
  tide_batch_truncate(b, 1);
  T_EQ_INT(b->nrows, 1);
  T_EQ_INT(b->cols[0].null_count, 0);
  T_EQ_INT(b->cols[1].null_count, 0);
  T_CHECK(b->cols[0].valid == NULL);
  T_EQ_INT(b->cols[1].data_len, 4);
  /* a NULL after the truncate rebuilds validity for the kept rows */
  tide_batch_row_begin(b);
  tide_batch_row_commit(b);
  T_CHECK(!tide_col_is_null(&b->cols[0], 0));
  T_CHECK(tide_col_is_null(&b->cols[0], 1));
  tide_batch_free(b);
}

static void test_growth(void) {
  tide_schema_t *s = schema("s string, n int");
  tide_batch_t *b = tide_batch_new(s, 1);
  tide_schema_unref(s);
  char big[3000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + i % 26);
  size_t total = 0;
  for (uint32_t i = 0; i < 5000; i++) {
    size_t n = (i * 37) % sizeof big;
    T_EQ_INT(tide_batch_row_begin(b), 0);
    T_EQ_INT(tide_batch_set_str(b, 0, big, n), 0);
    tide_batch_set_i64(b, 1, i);
    tide_batch_row_commit(b);
    total += n;
  }
  T_EQ_INT(b->cols[0].data_len, total);
  int bad = 0;
  for (uint32_t i = 0; i < 5000; i++) {
    size_t n;
    const char *p = tide_col_str(&b->cols[0], i, &n);
    if (n != (i * 37) % sizeof big || memcmp(p, big, n) || tide_col_i64(&b->cols[1], i) != i) bad++;
  }
  T_EQ_INT(bad, 0);
  /* reserve and the row limit */
  T_EQ_INT(tide_batch_reserve(b, 100), 0);
  T_CHECK(b->cap >= 5100);
  T_EQ_INT(tide_batch_reserve(b, TIDE_BATCH_MAX_ROWS), TIDE_ETOOBIG);
  tide_batch_free(b);
}

static int released;
static void release(void *p) { (*(int *)p)++; }

static void test_append_and_borrowed(void) {
  tide_schema_t *s = schema("a int?, b string?, c bool, d double?");
  tide_batch_t *src = tide_batch_new(s, 0), *dst = tide_batch_new(s, 0);
  for (int i = 0; i < 10; i++) {
    tide_batch_row_begin(src);
    if (i % 2) tide_batch_set_i64(src, 0, i);
    if (i % 3) tide_batch_set_str(src, 1, "abc", (size_t)(i % 4));
    tide_batch_set_bool(src, 2, i % 2);
    tide_batch_set_f64(src, 3, i);
    tide_batch_row_commit(src);
  }
  for (uint32_t i = 0; i < 10; i++) T_EQ_INT(tide_batch_append_row(dst, src, 9 - i), 0);
  T_EQ_INT(tide_batch_append_row(dst, src, 10), TIDE_EINVAL);
  int bad = 0;
  for (uint32_t i = 0; i < 10; i++) {
    uint32_t j = 9 - i;
    size_t n1, n2;
    if (tide_col_is_null(&dst->cols[0], i) != tide_col_is_null(&src->cols[0], j)) bad++;
    if (tide_col_i64(&dst->cols[0], i) != tide_col_i64(&src->cols[0], j)) bad++;
    const char *p1 = tide_col_str(&dst->cols[1], i, &n1), *p2 = tide_col_str(&src->cols[1], j, &n2);
    if (n1 != n2 || memcmp(p1, p2, n1)) bad++;
    if (tide_col_is_null(&dst->cols[1], i) != tide_col_is_null(&src->cols[1], j)) bad++;
    if (tide_col_bool(&dst->cols[2], i) != tide_col_bool(&src->cols[2], j)) bad++;
  }
  T_EQ_INT(bad, 0);
  T_EQ_INT(dst->cols[0].null_count, src->cols[0].null_count);
  /* a borrowed view of src's vectors; release runs on free */
  tide_batch_t *v = tide_batch_borrowed(s, src->nrows, src->cols, &released, release);
  T_EQ_INT(v->owned, 0);
  T_EQ_INT(v->nrows, 10);
  T_EQ_INT(tide_batch_row_begin(v), TIDE_EINVAL);
  T_EQ_INT(tide_batch_append_row(dst, v, 3), 0);
  T_EQ_INT(tide_col_i64(&dst->cols[0], 10), 3);
  tide_batch_free(v);
  T_EQ_INT(released, 1);
  tide_batch_free(src);
  tide_batch_free(dst);
  T_EQ_INT(s->refs, 1);
  tide_schema_unref(s);
}


static void test_empty_schema(void) {
  tide_schema_t *s = tide_schema_new();
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_schema_unref(s);
  T_EQ_INT(tide_batch_row_begin(b), 0);
  tide_batch_row_commit(b);
  T_EQ_INT(b->nrows, 1);
  tide_batch_free(b);
}

int main(void) {
  T_RUN(test_rows_and_nulls);
  T_RUN(test_abort);
  T_RUN(test_growth);
  T_RUN(test_append_and_borrowed);
  T_RUN(test_empty_schema);
  T_DONE();
}
