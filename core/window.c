/*
 * window.c: event-time window assignment (rules in window.h).
 *
 * Each non-NULL time t has k = ceil(size / slide) candidate windows,
 * start_i = lastStart - i * slide for i = 0 .. k-1. Spark's Expand emits them
 * by i (descending start); window.h wants ascending start, so i runs from
 * k-1 down to 0. When size % slide != 0 the candidates not containing t are
 * dropped, as Spark's filter `t >= start && t < end` does.
 *
 * Arithmetic is Java's: 64-bit two's complement that wraps. C's signed
 * overflow is undefined, so sums and products go through uint64_t; `%`
 * truncates toward zero in both languages.
 */
#include "window.h"

#include <errno.h>
#include <stdlib.h>

/* Java's long a - b, a + b and a * b (wrapping). */
static inline int64_t jsub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t jadd(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t jmul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }

/* Check w against window.h's rules. 0 or TIDE_EINVAL with the rule in err. */
int tide_window_check(const tide_window_t *w, tide_err_t *err) {
  if (w->size <= 0) return tide_err_set(err, TIDE_EINVAL, "window size must be > 0");
  if (w->slide <= 0 || w->slide > w->size)
    return tide_err_set(err, TIDE_EINVAL, "window slide must be > 0 and <= the size");
  if (w->start <= -w->slide || w->start >= w->slide)
    return tide_err_set(err, TIDE_EINVAL, "window start must be smaller than the slide in absolute value");
  return 0;
}

/* Assign windows to the n times of ts (window.h). ts is a timestamp (or int)
 * column. Errors: TIDE_EINVAL (w fails tide_window_check, or ts has another
 * type), TIDE_ETOOBIG (more than 2^32 - 1 pairs), -ENOMEM. On failure
 * *rows and *starts are NULL and *count is 0. */
int tide_window_assign(const tide_window_t *w, const tide_col_t *ts, uint32_t n, uint32_t **rows, int64_t **starts,
                       uint32_t *count) {
  *rows = NULL;
  *starts = NULL;
  *count = 0;
  if (tide_window_check(w, NULL) || (ts->type != TIDE_T_TIMESTAMP && ts->type != TIDE_T_INT)) return TIDE_EINVAL;
  int64_t size = w->size, slide = w->slide, start = w->start;
  uint64_t k = (uint64_t)(size / slide) + (size % slide != 0);
  int filter = size % slide != 0;
  uint64_t valid = n;
  if (ts->valid) /* count here: null_count may cover rows past n */
    for (uint32_t i = 0; i < n; i++) valid -= (uint64_t)tide_col_is_null(ts, i);
  if (valid && k > (uint64_t)(UINT32_MAX - 1) / valid) return TIDE_ETOOBIG;
  size_t cap = (size_t)(valid * k);
  uint32_t *r = malloc((cap ? cap : 1) * sizeof *r);
  int64_t *s = malloc((cap ? cap : 1) * sizeof *s);
  if (!r || !s) {
    free(r);
    free(s);
    return -ENOMEM;
  }
  const int64_t *v = ts->values;
  size_t m = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (tide_col_is_null(ts, i)) continue;
    int64_t t = v[i];
    int64_t rem = jsub(t, start) % slide;
    int64_t last = jsub(t, rem < 0 ? rem + slide : rem);
    for (uint64_t j = k; j-- > 0;) {
      int64_t ws = jsub(last, jmul((int64_t)j, slide));
      if (filter && !(t >= ws && t < jadd(ws, size))) continue;
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
