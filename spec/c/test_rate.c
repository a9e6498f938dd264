/*
 * test_rate.c: the rate source's rows (rate.h): values and timestamps of a
 * range, the same rows for the same range, and the refused arguments.
 */
#include <stdint.h>

#include "rate.h"
#include "t.h"

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s\n", err.msg);
  return s;
}

static void test_rows(void) {
  tide_schema_t *s = schema("timestamp timestamp, value int");
  tide_batch_t *b = NULL;
  /* 3 rows a second from start 1000: row k at 1000 + k * 1000 / 3 */
  T_EQ_INT(tide_rate_batch(s, 1000, 3, 4, 9, &b), 0);
  T_EQ_INT(b->nrows, 5);
  int64_t want_ts[] = {2333, 2666, 3000, 3333, 3666};
  for (uint32_t i = 0; i < 5; i++) {
    T_EQ_INT(tide_col_i64(&b->cols[0], i), want_ts[i]);
    T_EQ_INT(tide_col_i64(&b->cols[1], i), 4 + i);
    T_CHECK(!tide_col_is_null(&b->cols[0], i) && !tide_col_is_null(&b->cols[1], i));
  }
  tide_batch_free(b);
  /* an empty range is an empty batch */
  T_EQ_INT(tide_rate_batch(s, 0, 1, 7, 7, &b), 0);
  T_EQ_INT(b->nrows, 0);
  tide_batch_free(b);
  /* the ends of the valid timestamp range are rows */
  T_EQ_INT(tide_rate_batch(s, TIDE_TS_MAX - 1000, 1, 0, 2, &b), 0);
  T_EQ_INT(tide_col_i64(&b->cols[0], 1), TIDE_TS_MAX);
  tide_batch_free(b);
  T_EQ_INT(tide_rate_batch(s, TIDE_TS_MIN, 1000, 0, 1, &b), 0);
  T_EQ_INT(tide_col_i64(&b->cols[0], 0), TIDE_TS_MIN);
  tide_batch_free(b);
  /* refused: another schema, bad ranges, too many rows, timestamps outside the valid range */
  tide_schema_t *other = schema("value int, timestamp timestamp");
  T_EQ_INT(tide_rate_batch(other, 0, 1, 0, 1, &b), TIDE_EINVAL);
  T_CHECK(b == NULL);
  T_EQ_INT(tide_rate_batch(s, 0, 0, 0, 1, &b), TIDE_EINVAL);
  T_EQ_INT(tide_rate_batch(s, 0, 1, 5, 4, &b), TIDE_EINVAL);
  T_EQ_INT(tide_rate_batch(s, 0, 1, -1, 4, &b), TIDE_EINVAL);
  T_EQ_INT(tide_rate_batch(s, 0, 1, 0, (int64_t)TIDE_BATCH_MAX_ROWS + 1, &b), TIDE_ETOOBIG);
  T_EQ_INT(tide_rate_batch(s, INT64_MAX - 10, 1, 0, 2, &b), TIDE_ESCHEMA);
  T_EQ_INT(tide_rate_batch(s, 0, 1, INT64_MAX / 100, INT64_MAX / 100 + 1, &b), TIDE_ESCHEMA);
  T_EQ_INT(tide_rate_batch(s, TIDE_TS_MAX - 1000, 1, 0, 3, &b), TIDE_ESCHEMA); /* row 2: TIDE_TS_MAX + 1 */
  T_EQ_INT(tide_rate_batch(s, TIDE_TS_MIN - 1, 1, 0, 1, &b), TIDE_ESCHEMA);
  T_CHECK(b == NULL);
  tide_schema_unref(other);
  tide_schema_unref(s);
}

int main(void) {
  T_RUN(test_rows);
  T_DONE();
}
