/*
 * window.c: event-time window assignment (rules in window.h).
 *
 * Each non-NULL time t has k = ceil(size / slide) candidate windows,
 * start_i = lastStart - i * slide for i = 0 .. k-1. Spark's Expand emits them
 * by i (descending start); window.h wants ascending start, so i runs from
 * k-1 down to 0. When size % slide != 0 the candidates not containing t are
 * dropped, as Spark's filter `t >= start && t < end` does.
 *
 * Times are in the valid timestamp range and sizes at most
 * TIDE_DURATION_MAX (schema.h), so every start and end computed here lies
 * within +-2^50: no sum or product leaves int64 (Spark's Java longs would
 * wrap; a time outside the range is refused instead). `%` truncates toward
 * zero in both languages.
 */
#include "window.h"

#include <errno.h>
#include <stdlib.h>

/* Check w against window.h's rules. 0 or TIDE_EINVAL with the rule in err. */
int tide_window_check(const tide_window_t *w, tide_err_t *err) {
  if (w->size <= 0) return tide_err_set(err, TIDE_EINVAL, "window size must be > 0");
  if (w->size > TIDE_DURATION_MAX)
    return tide_err_set(err, TIDE_EINVAL, "window size must be at most %lld ms", (long long)TIDE_DURATION_MAX);
  if (w->slide <= 0 || w->slide > w->size)
    return tide_err_set(err, TIDE_EINVAL, "window slide must be > 0 and <= the size");
  if (w->start <= -w->slide || w->start >= w->slide)
    return tide_err_set(err, TIDE_EINVAL, "window start must be smaller than the slide in absolute value");
  if (w->size / w->slide + (w->size % w->slide != 0) > TIDE_WINDOW_MAX_PER_ROW)
    return tide_err_set(err, TIDE_EINVAL, "window size / slide must be at most %d (each row falls into that many windows)",
                        TIDE_WINDOW_MAX_PER_ROW);
  return 0;
}

/* Assign windows to the n times of ts (window.h, which lists the errors). */
int tide_window_assign(const tide_window_t *w, const tide_col_t *ts, uint32_t n, uint32_t **rows, int64_t **starts,
                       uint32_t *count, tide_err_t *err) {
  *rows = NULL;
  *starts = NULL;
  *count = 0;
  int rc = tide_window_check(w, err);
  if (rc) return rc;
  if (ts->type != TIDE_T_TIMESTAMP && ts->type != TIDE_T_INT)
    return tide_err_set(err, TIDE_EINVAL, "window column must be a timestamp or int");
  int64_t size = w->size, slide = w->slide, start = w->start;
  uint64_t k = (uint64_t)(size / slide) + (size % slide != 0);
  int filter = size % slide != 0;
  uint64_t valid = n;
  if (ts->valid) /* count here: null_count may cover rows past n */
    for (uint32_t i = 0; i < n; i++) valid -= (uint64_t)tide_col_is_null(ts, i);
  for (uint32_t i = 0; i < n; i++)
    if (!tide_col_is_null(ts, i) && !tide_ts_valid(((const int64_t *)ts->values)[i]))
      return tide_err_set(err, TIDE_EINVAL, "row %u: time %lld%s", i + 1,
                          (long long)((const int64_t *)ts->values)[i], TIDE_TS_RANGE_WHY);
  if (valid && k > (uint64_t)(UINT32_MAX - 1) / valid)
    return tide_err_set(err, TIDE_ETOOBIG, "%llu rows in %llu windows each make more than 2^32 - 1 (row, window) pairs",
                        (unsigned long long)valid, (unsigned long long)k);
  size_t cap = (size_t)(valid * k);
  uint32_t *r = malloc((cap ? cap : 1) * sizeof *r);
  int64_t *s = malloc((cap ? cap : 1) * sizeof *s);
  if (!r || !s) {
    free(r);
    free(s);
    return tide_err_set(err, -ENOMEM, "%s", tide_strerror(-ENOMEM));
  }
  const int64_t *v = ts->values;
  size_t m = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (tide_col_is_null(ts, i)) continue;
    int64_t t = v[i];
    int64_t rem = (t - start) % slide;
    int64_t last = t - (rem < 0 ? rem + slide : rem);
    for (uint64_t j = k; j-- > 0;) {
      int64_t ws = last - (int64_t)j * slide;
      if (filter && !(t >= ws && t < ws + size)) continue;
      r[m] = i;
      s[m] = ws;
      m++;
    }
  }
  if (m < cap) { /* the filter dropped some: give the memory back */
    uint32_t *r2 = realloc(r, (m ? m : 1) * sizeof *r);
    int64_t *s2 = realloc(s, (m ? m : 1) * sizeof *s);
    if (r2) r = r2;
    if (s2) s = s2;
  }
  *rows = r;
  *starts = s;
  *count = (uint32_t)m;
  return 0;
}
