/*
 * test_vec.c: standalone columns and the batches that adopt them: init,
 * set_null (counted once, value zeroed, a string value cut back), put_str
 * with growth, adopt, gather (reordering, repeats, TIDE_ROW_NULL, empty
 * strings without data), copy of a prefix, batch gather, slice and concat
 * with their argument checks. Frees everything it makes.
 */
#include <stdint.h>

#include "t.h"
#include "vec.h"

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s: %s\n", ddl, err.msg);
  return s;
}

static int str_is(const tide_col_t *c, uint32_t r, const char *want) {
  size_t n;
  const char *p = tide_col_str(c, r, &n);
  return n == strlen(want) && (!n || !memcmp(p, want, n));
}

/* The invariants of batch.h for a string column of n rows. */
static int offsets_ok(const tide_col_t *c, uint32_t n) {
  const uint32_t *o = c->values;
  if (o[0] != 0 || o[n] != c->data_len) return 0;
  for (uint32_t i = 0; i < n; i++) {
    if (o[i + 1] < o[i]) return 0;
    if (tide_col_is_null(c, i) && o[i + 1] != o[i]) return 0;
  }
  return 1;
}

static uint32_t count_nulls(const tide_col_t *c, uint32_t n) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++) k += (uint32_t)tide_col_is_null(c, i);
  return k;
}

static void test_init_set_null_put_str(void) {
  tide_col_t c;
  T_EQ_INT(tide_col_init(&c, TIDE_T_INT, 10), 0);
  T_CHECK(c.valid == NULL);
  T_EQ_INT(c.null_count, 0);
  for (uint32_t i = 0; i < 10; i++) T_EQ_INT(tide_col_i64(&c, i), 0);
  ((int64_t *)c.values)[3] = 42;
  T_EQ_INT(tide_col_set_null(&c, 3, 10), 0);
  T_EQ_INT(tide_col_set_null(&c, 3, 10), 0); /* twice: counted once */
  T_EQ_INT(tide_col_set_null(&c, 9, 10), 0);
  T_EQ_INT(c.null_count, 2);
  T_EQ_INT(count_nulls(&c, 10), 2);
  T_EQ_INT(tide_col_i64(&c, 3), 0); /* a NULL's value is zero */
  T_CHECK(tide_col_is_null(&c, 9) && !tide_col_is_null(&c, 8));
  tide_col_free(&c);
  T_CHECK(c.values == NULL && c.valid == NULL);
  tide_col_free(&c); /* safe twice */

  T_EQ_INT(tide_col_init(&c, TIDE_T_BOOL, 0), 0);
  tide_col_free(&c);

  /* strings: 5000 rows, growing data, empty values and NULLs */
  const uint32_t n = 5000;
  T_EQ_INT(tide_col_init(&c, TIDE_T_STRING, n), 0);
  int bad = 0;
  for (uint32_t i = 0; i < n; i++) {
    char txt[32];
    int len = i % 5 == 0 ? 0 : snprintf(txt, sizeof txt, "value-%u", i);
    if (tide_col_put_str(&c, i, txt, (size_t)len)) bad++;
    if (i % 7 == 0 && tide_col_set_null(&c, i, n)) bad++; /* after a value: cut back */
  }
  T_EQ_INT(bad, 0);
  T_CHECK(offsets_ok(&c, n));
  T_EQ_INT(c.null_count, (n + 6) / 7);
  T_CHECK(str_is(&c, 1, "value-1"));
  T_CHECK(str_is(&c, 5, ""));
  T_CHECK(str_is(&c, 7, "") && tide_col_is_null(&c, 7));
  T_CHECK(str_is(&c, n - 1, "value-4999"));
  tide_col_free(&c);
}

/* A string and int column pair as a 2-column batch of n rows. */
static tide_batch_t *make_batch(tide_schema_t *s, uint32_t n, int all_empty) {
  tide_col_t cols[2];
  tide_col_init(&cols[0], TIDE_T_STRING, n);
  tide_col_init(&cols[1], TIDE_T_INT, n);
  for (uint32_t i = 0; i < n; i++) {
    char txt[32];
    int len = all_empty ? 0 : snprintf(txt, sizeof txt, "s%u", i);
    tide_col_put_str(&cols[0], i, txt, (size_t)len);
    if (i % 3 == 1) tide_col_set_null(&cols[0], i, n);
    ((int64_t *)cols[1].values)[i] = (int64_t)i * 10;
    if (i % 4 == 2) tide_col_set_null(&cols[1], i, n);
  }
  return tide_batch_adopt(s, n, cols);
}

static void test_adopt_and_gather(void) {
  tide_schema_t *s = schema("s string?, v int?");
  tide_batch_t *b = make_batch(s, 10, 0);
  if (!b) {
    T_CHECK(!"tide_batch_adopt failed");
    return;
  }
  T_EQ_INT(b->nrows, 10);
  T_EQ_INT(b->owned, 0);
  T_EQ_INT(s->refs, 2);
  T_CHECK(str_is(&b->cols[0], 3, "s3"));
  T_CHECK(tide_col_is_null(&b->cols[0], 4));
  T_EQ_INT(tide_col_i64(&b->cols[1], 9), 90);
  T_EQ_INT(b->cols[1].null_count, 2);
  /* reorder, repeat, NULL rows */
  uint32_t rows[] = {9, 0, 0, TIDE_ROW_NULL, 4, 2, 3};
  tide_col_t g;
  T_EQ_INT(tide_col_gather(&b->cols[0], rows, 7, &g), 0);
  T_CHECK(str_is(&g, 0, "s9"));
  T_CHECK(str_is(&g, 1, "s0") && str_is(&g, 2, "s0"));
  T_CHECK(tide_col_is_null(&g, 3) && tide_col_is_null(&g, 4));
  T_CHECK(str_is(&g, 6, "s3"));
  T_EQ_INT(g.null_count, 2);
  T_CHECK(offsets_ok(&g, 7));
  tide_col_free(&g);
  T_EQ_INT(tide_col_gather(&b->cols[1], rows, 7, &g), 0);
  T_EQ_INT(tide_col_i64(&g, 0), 90);
  T_CHECK(tide_col_is_null(&g, 3) && tide_col_is_null(&g, 5));
  T_EQ_INT(tide_col_i64(&g, 3), 0);
  T_EQ_INT(g.null_count, 2);
  tide_col_free(&g);
  T_EQ_INT(tide_col_gather(&b->cols[1], rows, 0, &g), 0); /* no rows */
  tide_col_free(&g);
  /* a column of empty strings has no data at all: gathering it is fine */
  tide_batch_t *e = make_batch(s, 6, 1);
  T_CHECK(e->cols[0].data == NULL);
  T_EQ_INT(tide_col_gather(&e->cols[0], rows + 1, 6, &g), 0);
  T_CHECK(str_is(&g, 0, "") && !tide_col_is_null(&g, 0));
  T_CHECK(tide_col_is_null(&g, 2));
  T_CHECK(offsets_ok(&g, 6));
  tide_col_free(&g);
  /* bools */
  tide_col_t f;
  tide_col_init(&f, TIDE_T_BOOL, 4);
  ((uint8_t *)f.values)[1] = 1;
  tide_col_set_null(&f, 2, 4);
  uint32_t fr[] = {1, 2, 0, 1, TIDE_ROW_NULL};
  T_EQ_INT(tide_col_gather(&f, fr, 5, &g), 0);
  T_EQ_INT(tide_col_bool(&g, 0), 1);
  T_CHECK(tide_col_is_null(&g, 1) && tide_col_is_null(&g, 4));
  T_EQ_INT(tide_col_bool(&g, 2), 0);
  T_EQ_INT(g.null_count, 2);
  tide_col_free(&g);
  tide_col_free(&f);
  /* batch gather, with a bad row */
  tide_batch_t *bg;
  T_EQ_INT(tide_batch_gather(b, rows, 7, &bg), 0);
  T_EQ_INT(bg->nrows, 7);
  T_CHECK(str_is(&bg->cols[0], 0, "s9"));
  T_CHECK(tide_col_is_null(&bg->cols[1], 3));
  tide_batch_free(bg);
  uint32_t badrows[] = {0, 10};
  bg = (tide_batch_t *)1;
  T_EQ_INT(tide_batch_gather(b, badrows, 2, &bg), TIDE_EINVAL);
  T_CHECK(bg == NULL);
  tide_batch_free(e);
  tide_batch_free(b);
  T_EQ_INT(s->refs, 1);
  tide_schema_unref(s);
}

static void test_copy_prefix(void) {
  tide_schema_t *s = schema("s string?, v int?");
  tide_batch_t *b = make_batch(s, 10, 0);
  tide_col_t c;
  T_EQ_INT(tide_col_copy(&b->cols[1], 2, &c), 0); /* NULLs only at 2 and 6: none copied */
  T_EQ_INT(c.null_count, 0);
  T_EQ_INT(count_nulls(&c, 2), 0);
  T_EQ_INT(tide_col_i64(&c, 1), 10);
  tide_col_free(&c);
  T_EQ_INT(tide_col_copy(&b->cols[1], 5, &c), 0);
  T_EQ_INT(c.null_count, 1); /* row 2; row 6 lies past the copy */
  T_EQ_INT(count_nulls(&c, 5), 1);
  tide_col_free(&c);
  T_EQ_INT(tide_col_copy(&b->cols[0], 8, &c), 0);
  T_EQ_INT(c.null_count, count_nulls(&c, 8));
  T_EQ_INT(c.null_count, 3); /* rows 1, 4, 7 */
  T_CHECK(str_is(&c, 5, "s5"));
  T_CHECK(offsets_ok(&c, 8));
  tide_col_free(&c);
  T_EQ_INT(tide_col_copy(&b->cols[0], 0, &c), 0);
  tide_col_free(&c);
  tide_batch_free(b);
  tide_schema_unref(s);
}

static void test_slice_and_concat(void) {
  tide_schema_t *s = schema("s string?, v int?");
  tide_batch_t *b = make_batch(s, 100, 0), *parts[5];
  T_EQ_INT(tide_batch_slice(b, 0, 0, &parts[0]), 0);
  T_EQ_INT(tide_batch_slice(b, 0, 33, &parts[1]), 0);
  T_EQ_INT(tide_batch_slice(b, 33, 34, &parts[2]), 0);
  T_EQ_INT(tide_batch_slice(b, 34, 100, &parts[3]), 0);
  T_EQ_INT(tide_batch_slice(b, 100, 100, &parts[4]), 0);
  T_EQ_INT(parts[1]->nrows, 33);
  T_CHECK(str_is(&parts[3]->cols[0], 1, "s35"));
  T_CHECK(tide_col_is_null(&parts[3]->cols[0], 0));
  T_EQ_INT(tide_col_i64(&parts[3]->cols[1], 65), 990);
  tide_batch_t *x = (tide_batch_t *)1;
  T_EQ_INT(tide_batch_slice(b, 50, 101, &x), TIDE_EINVAL);
  T_CHECK(x == NULL);
  T_EQ_INT(tide_batch_slice(b, 60, 50, &x), TIDE_EINVAL);
  tide_batch_t *all;
  T_EQ_INT(tide_batch_concat(parts, 5, s, &all), 0);
  T_EQ_INT(all->nrows, 100);
  int bad = 0;
  for (uint32_t i = 0; i < 100; i++) {
    for (int c = 0; c < 2; c++)
      if (tide_col_is_null(&all->cols[c], i) != tide_col_is_null(&b->cols[c], i)) bad++;
    if (tide_col_i64(&all->cols[1], i) != tide_col_i64(&b->cols[1], i)) bad++;
    size_t la, lb;
    const char *pa = tide_col_str(&all->cols[0], i, &la), *pb = tide_col_str(&b->cols[0], i, &lb);
    if (la != lb || (la && memcmp(pa, pb, la))) bad++;
  }
  T_EQ_INT(bad, 0);
  T_EQ_INT(all->cols[0].null_count, b->cols[0].null_count);
  T_EQ_INT(all->cols[1].null_count, b->cols[1].null_count);
  T_CHECK(offsets_ok(&all->cols[0], 100));
  tide_batch_free(all);
  T_EQ_INT(tide_batch_concat(parts, 0, s, &all), 0); /* nothing: an empty batch */
  T_EQ_INT(all->nrows, 0);
  tide_batch_free(all);
  /* batches of another shape are refused */
  tide_schema_t *o = schema("s string?, v double?");
  tide_batch_t *ob = tide_batch_new(o, 0);
  tide_batch_t *mixed[] = {parts[1], ob};
  T_EQ_INT(tide_batch_concat(mixed, 2, s, &all), TIDE_EINVAL);
  T_CHECK(all == NULL);
  /* an owned batch (row builder) concatenates as well */
  tide_batch_t *owned = tide_batch_new(s, 0);
  tide_batch_row_begin(owned);
  tide_batch_set_str(owned, 0, "own", 3);
  tide_batch_row_commit(owned);
  tide_batch_t *two[] = {owned, parts[2]};
  T_EQ_INT(tide_batch_concat(two, 2, s, &all), 0);
  T_CHECK(str_is(&all->cols[0], 0, "own") && tide_col_is_null(&all->cols[1], 0));
  T_CHECK(str_is(&all->cols[0], 1, "s33"));
  T_EQ_INT(all->cols[1].null_count, 1);
  tide_batch_free(all);
  tide_batch_free(owned);
  tide_batch_free(ob);
  tide_schema_unref(o);
  for (int i = 0; i < 5; i++) tide_batch_free(parts[i]);
  tide_batch_free(b);
  tide_schema_unref(s);
}

/* tide_col_slice copies ranges (bitmaps by bytes when lo is a multiple of
 * 8, else bit by bit): every (lo, n) of a 40-row batch equals gathering
 * the same rows one by one. */
static void test_slice_every_range(void) {
  tide_schema_t *s = schema("s string?, v int?");
  tide_batch_t *b = make_batch(s, 40, 0);
  uint32_t rows[40];
  int bad = 0;
  for (uint32_t lo = 0; lo <= 40; lo++)
    for (uint32_t n = 0; lo + n <= 40; n++) {
      for (uint32_t i = 0; i < n; i++) rows[i] = lo + i;
      for (int c = 0; c < 2; c++) {
        tide_col_t sl, ga;
        T_EQ_INT(tide_col_slice(&b->cols[c], lo, n, &sl), 0);
        T_EQ_INT(tide_col_gather(&b->cols[c], rows, n, &ga), 0);
        if (sl.null_count != ga.null_count || sl.null_count != count_nulls(&sl, n)) bad++;
        for (uint32_t i = 0; i < n; i++) {
          if (tide_col_is_null(&sl, i) != tide_col_is_null(&ga, i)) bad++;
          if (c == 1 && tide_col_i64(&sl, i) != tide_col_i64(&ga, i)) bad++;
          if (c == 0) {
            size_t la, lg;
            const char *pa = tide_col_str(&sl, i, &la), *pg = tide_col_str(&ga, i, &lg);
            if (la != lg || (la && memcmp(pa, pg, la))) bad++;
          }
        }
        if (c == 0 && !offsets_ok(&sl, n)) bad++;
        tide_col_free(&sl);
        tide_col_free(&ga);
      }
    }
  T_EQ_INT(bad, 0);
  tide_batch_free(b);
  tide_schema_unref(s);
}

int main(void) {
  T_RUN(test_init_set_null_put_str);
  T_RUN(test_adopt_and_gather);
  T_RUN(test_copy_prefix);
  T_RUN(test_slice_every_range);
  T_RUN(test_slice_and_concat);
  T_DONE();
}
