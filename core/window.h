/*
 * window.h: event-time window assignment, Spark's formula
 * (SEMANTICS.md s.1, ResolveTimeWindows.scala):
 *
 *   rem       = (t - start) % slide          (sign of t - start, as Java's %)
 *   lastStart = t - (rem < 0 ? rem + slide : rem)
 *   start_i   = lastStart - i*slide,  i = 0 .. ceil(size/slide) - 1,  end_i = start_i + size
 *
 * A row belongs to [start, end): start inclusive, end exclusive. When size
 * is not a multiple of slide, candidates that do not contain t are dropped.
 * Windows align to the epoch + start and may start before 0. A NULL time
 * gives no window. All values are milliseconds.
 */
#ifndef TIDE_WINDOW_H
#define TIDE_WINDOW_H

#include <stdint.h>

#include "batch.h"
#include "err.h"

/* The most windows one row may fall into, ceil(size / slide): a sliding
 * window of 1 d every 1 ms would make 86.4M copies of every row (docs/guide.md). */
#define TIDE_WINDOW_MAX_PER_ROW 10000

typedef struct tide_window {
  int64_t size, slide, start; /* slide == size: tumbling */
} tide_window_t;

/* 0, or TIDE_EINVAL naming the rule: 0 < size <= TIDE_DURATION_MAX;
 * 0 < slide <= size; |start| < slide; ceil(size / slide) <=
 * TIDE_WINDOW_MAX_PER_ROW. */
int tide_window_check(const tide_window_t *w, tide_err_t *err);

/* For every non-NULL value of the timestamp column ts (n rows), every
 * window containing it, in row order and, within a row, by ascending start:
 * (*rows)[k] is the source row, (*starts)[k] the window's start. Both arrays
 * are malloc'd by the call (free them); *count is their length. Errors,
 * with err set: TIDE_EINVAL (w fails tide_window_check, ts is not a
 * timestamp or int column, or a time lies outside the valid timestamp
 * range), TIDE_ETOOBIG (more than 2^32 - 1 pairs), -ENOMEM; then *rows
 * and *starts are NULL and *count is 0. */
int tide_window_assign(const tide_window_t *w, const tide_col_t *ts, uint32_t n, uint32_t **rows, int64_t **starts,
                       uint32_t *count, tide_err_t *err);

#endif
