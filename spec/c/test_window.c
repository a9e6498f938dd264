/*
 * test_window.c: window assignment. The rule messages of tide_window_check,
 * Spark's examples (DataFrameTimeWindowingSuite "sliding window grouping"
 * and "negative timestamps"), NULL times, the argument errors, and random
 * windows and times (negative ones, start offsets, size % slide != 0)
 * against a brute-force enumeration of every aligned window containing t.
 */
#include <string.h>
#include <stdint.h>

#include "t.h"
#include "vec.h"
#include "window.h"

static void test_check_messages(void) {
  tide_err_t err = {0, ""};
  tide_window_t w = {0, 0, 0};
  T_EQ_INT(tide_window_check(&w, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "window size must be > 0");
  w = (tide_window_t){-5, 1, 0};
  T_EQ_INT(tide_window_check(&w, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "window size must be > 0");
  w = (tide_window_t){10, 0, 0};
  T_EQ_INT(tide_window_check(&w, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "window slide must be > 0 and <= the size");
  w = (tide_window_t){10, -3, 0};
  T_EQ_INT(tide_window_check(&w, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "window slide must be > 0 and <= the size");
  w = (tide_window_t){10, 11, 0};
  T_EQ_INT(tide_window_check(&w, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "window slide must be > 0 and <= the size");
  w = (tide_window_t){10, 3, 3};
  T_EQ_INT(tide_window_check(&w, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "window start must be smaller than the slide in absolute value");
  w = (tide_window_t){10, 3, -3};
  T_EQ_INT(tide_window_check(&w, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "window start must be smaller than the slide in absolute value");
  w = (tide_window_t){10, 3, 2};
  T_EQ_INT(tide_window_check(&w, &err), 0);
  w = (tide_window_t){10, 3, -2};
  T_EQ_INT(tide_window_check(&w, NULL), 0);
  w = (tide_window_t){10, 10, 0};
  T_EQ_INT(tide_window_check(&w, NULL), 0);
  w = (tide_window_t){1, 1, 0};
  T_EQ_INT(tide_window_check(&w, NULL), 0);
}

/* A timestamp column of the n values v; NULL where nul[i]. */
static tide_col_t ts_col(const int64_t *v, const int *nul, uint32_t n) {
  tide_col_t c;
  tide_col_init(&c, TIDE_T_TIMESTAMP, n);
  for (uint32_t i = 0; i < n; i++) {
    ((int64_t *)c.values)[i] = v[i];
    if (nul && nul[i]) tide_col_set_null(&c, i, n);
  }
  return c;
}

/* DTW "sliding window grouping": window(time, 10 s, 3 s); 19:39:34 lies in
 * [19:39:27, 37), [19:39:30, 40), [19:39:33, 43) but not in
 * [19:39:24, 19:39:34): end is exclusive. */
static void test_spark_sliding_example(void) {
  const int64_t S = 1000, t34 = 1459107574 * S; /* 2016-03-27 19:39:34 UTC */
  int64_t v[] = {t34, 1459107596 * S, 1459107567 * S, 1459107565 * S};
  int nul[] = {0, 0, 0, 0};
  tide_col_t c = ts_col(v, nul, 4);
  tide_window_t w = {10 * S, 3 * S, 0};
  uint32_t *rows, count;
  int64_t *starts;
  T_EQ_INT(tide_window_assign(&w, &c, 4, &rows, &starts, &count, NULL), 0);
  T_EQ_INT(count, 13); /* 10 % 3 != 0: four candidates, one dropped but for 19:39:27 */
  T_EQ_INT(rows[0], 0);
  T_EQ_INT(starts[0], t34 - 7 * S); /* 19:39:27 */
  T_EQ_INT(starts[1], t34 - 4 * S); /* 19:39:30 */
  T_EQ_INT(starts[2], t34 - 1 * S); /* 19:39:33 */
  T_EQ_INT(rows[2], 0);
  T_EQ_INT(rows[3], 1);
  for (uint32_t k = 0; k < count; k++) /* 19:39:34 is never in [19:39:24, 19:39:34) */
    if (rows[k] == 0) T_CHECK(starts[k] != t34 - 10 * S);
  /* 19:39:27 (a multiple of 3 s) starts a window: [27, 37) is its last */
  T_EQ_INT(rows[6], 2);
  T_EQ_INT(rows[9], 2);
  T_EQ_INT(rows[10], 3);
  T_EQ_INT(starts[6], 1459107558 * S);
  T_EQ_INT(starts[9], 1459107567 * S);
  free(rows);
  free(starts);
  tide_col_free(&c);
}

/* DTW "negative timestamps": 10 s tumbling windows starting at 5 s. */
static void test_spark_negative_example(void) {
  int64_t v[] = {2000, 12000, -1, -10000, -10001};
  tide_col_t c = ts_col(v, NULL, 5);
  tide_window_t w = {10000, 10000, 5000};
  uint32_t *rows, count;
  int64_t *starts;
  T_EQ_INT(tide_window_assign(&w, &c, 5, &rows, &starts, &count, NULL), 0);
  T_EQ_INT(count, 5);
  T_EQ_INT(starts[0], -5000); /* 1969-12-31 23:59:55 */
  T_EQ_INT(starts[1], 5000);
  T_EQ_INT(starts[2], -5000);
  T_EQ_INT(starts[3], -15000);
  T_EQ_INT(starts[4], -15000);
  free(rows);
  free(starts);
  w.start = -3000; /* negative start */
  T_EQ_INT(tide_window_assign(&w, &c, 5, &rows, &starts, &count, NULL), 0);
  T_EQ_INT(starts[0], -3000);
  T_EQ_INT(starts[1], 7000);
  T_EQ_INT(starts[2], -3000);
  T_EQ_INT(starts[3], -13000);
  T_EQ_INT(starts[4], -13000);
  free(rows);
  free(starts);
  tide_col_free(&c);
}

/* NULL times give no window; the errors; no rows. */
static void test_nulls_and_errors(void) {
  int64_t v[] = {5, 0, 15, 0, 25};
  int nul[] = {0, 1, 0, 1, 0};
  tide_col_t c = ts_col(v, nul, 5);
  tide_window_t w = {10, 5, 0};
  uint32_t *rows, count;
  int64_t *starts;
  T_EQ_INT(tide_window_assign(&w, &c, 5, &rows, &starts, &count, NULL), 0);
  T_EQ_INT(count, 6);
  uint32_t want_rows[] = {0, 0, 2, 2, 4, 4};
  int64_t want_starts[] = {0, 5, 10, 15, 20, 25};
  for (uint32_t k = 0; k < 6 && k < count; k++) {
    T_EQ_INT(rows[k], want_rows[k]);
    T_EQ_INT(starts[k], want_starts[k]);
  }
  free(rows);
  free(starts);
  T_EQ_INT(tide_window_assign(&w, &c, 0, &rows, &starts, &count, NULL), 0); /* no rows */
  T_EQ_INT(count, 0);
  free(rows);
  free(starts);
  tide_window_t bad = {10, 20, 0};
  T_EQ_INT(tide_window_assign(&bad, &c, 5, &rows, &starts, &count, NULL), TIDE_EINVAL);
  T_CHECK(rows == NULL && starts == NULL && count == 0);
  tide_col_t d;
  tide_col_init(&d, TIDE_T_DOUBLE, 3);
  T_EQ_INT(tide_window_assign(&w, &d, 3, &rows, &starts, &count, NULL), TIDE_EINVAL);
  tide_col_free(&d);
  tide_col_t i;
  tide_col_init(&i, TIDE_T_INT, 1); /* int columns are ms too */
  ((int64_t *)i.values)[0] = 7;
  T_EQ_INT(tide_window_assign(&w, &i, 1, &rows, &starts, &count, NULL), 0);
  T_EQ_INT(count, 2);
  T_EQ_INT(starts[0], 0);
  T_EQ_INT(starts[1], 5);
  free(rows);
  free(starts);
  tide_col_free(&i);
  tide_col_free(&c);
  /* times outside the valid range are refused (no wrap, no undefined
   * behaviour); its bounds get whole windows, end after start */
  int64_t ext[] = {TIDE_TS_MIN, TIDE_TS_MAX, INT64_MIN, INT64_MAX, TIDE_TS_MAX + 1};
  tide_col_t e = ts_col(ext, NULL, 5);
  tide_window_t we = {TIDE_DURATION_MAX, TIDE_DURATION_MAX / 3, -2};
  T_EQ_INT(tide_window_assign(&we, &e, 2, &rows, &starts, &count, NULL), 0);
  T_EQ_INT(count, 6);
  for (uint32_t k = 0; k < count; k++)
    T_CHECK(starts[k] <= ext[rows[k]] && ext[rows[k]] < starts[k] + we.size && starts[k] < starts[k] + we.size);
  free(rows);
  free(starts);
  tide_err_t err = {0, ""};
  for (uint32_t k = 2; k < 5; k++) {
    ((int64_t *)e.values)[0] = ext[k];
    T_EQ_INT(tide_window_assign(&we, &e, 1, &rows, &starts, &count, &err), TIDE_EINVAL);
    T_CHECK(strstr(err.msg, "outside the valid timestamp range") != NULL);
    T_CHECK(rows == NULL && starts == NULL && count == 0);
  }
  tide_col_free(&e);
  /* at most TIDE_WINDOW_MAX_PER_ROW windows a row; sizes at most the span */
  tide_window_t many = {86400000, 1, 0}, ok = {10000, 1, 0}, huge = {TIDE_DURATION_MAX + 1, 1000, 0};
  T_EQ_INT(tide_window_check(&many, &err), TIDE_EINVAL);
  T_CHECK(strstr(err.msg, "at most 10000") != NULL);
  T_EQ_INT(tide_window_check(&ok, NULL), 0);
  T_EQ_INT(tide_window_check(&huge, &err), TIDE_EINVAL);
}

static uint64_t rng_state = 7;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

static int64_t floordiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

/* Random windows and times against a brute-force enumeration: every start
 * start + m*slide (any integer m) with start <= t < start + size, ascending. */
static void test_random_vs_brute_force(void) {
  int bad = 0;
  for (int round = 0; round < 300; round++) {
    int64_t slide = 1 + (int64_t)(rnd() % 50), size = slide * (1 + (int64_t)(rnd() % 4));
    if (rnd() % 2) size += (int64_t)(rnd() % (uint64_t)slide); /* often not a multiple */
    int64_t start = (int64_t)(rnd() % (uint64_t)(2 * slide - 1)) - (slide - 1);
    if (round == 0) { /* and the boundaries of the rules */
      size = 7;
      slide = 7;
      start = -6;
    }
    tide_window_t w = {size, slide, start};
    T_EQ_INT(tide_window_check(&w, NULL), 0);
    uint32_t n = 200;
    int64_t v[200];
    int nul[200];
    for (uint32_t i = 0; i < n; i++) {
      v[i] = (int64_t)(rnd() % 2001) - 1000;
      if (rnd() % 3 == 0) v[i] *= 1000003;
      nul[i] = rnd() % 10 == 0;
    }
    tide_col_t c = ts_col(v, nul, n);
    uint32_t *rows, count;
    int64_t *starts;
    T_EQ_INT(tide_window_assign(&w, &c, n, &rows, &starts, &count, NULL), 0);
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
      if (nul[i]) continue;
      int64_t t = v[i];
      for (int64_t m = floordiv(t - size - start, slide); m <= floordiv(t - start, slide); m++) {
        int64_t s = start + m * slide;
        if (!(s <= t && t < s + size)) continue;
        if (k >= count || rows[k] != i || starts[k] != s) bad++;
        k++;
      }
    }
    if (k != count) bad++;
    free(rows);
    free(starts);
    tide_col_free(&c);
  }
  T_EQ_INT(bad, 0);
}

int main(void) {
  T_RUN(test_check_messages);
  T_RUN(test_spark_sliding_example);
  T_RUN(test_spark_negative_example);
  T_RUN(test_nulls_and_errors);
  T_RUN(test_random_vs_brute_force);
  T_DONE();
}
