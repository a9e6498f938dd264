/*
 * rate.h: the rows of the rate source (connectors/rate.lua), made a column
 * at a time. Row k (k >= 0) is
 *   timestamp  start + k * 1000 / rows_per_second  (ms; the division rounds down)
 *   value      k
 * so rows depend only on (start, rows_per_second, k): a replay of the same
 * offsets makes the same rows.
 */
#ifndef TIDE_RATE_H
#define TIDE_RATE_H

#include <stdint.h>

#include "batch.h"

/* Rows [lo, hi) as a new batch of schema s, which must be two columns,
 * a timestamp then an int (the rate source's "timestamp timestamp, value
 * int"). Returns 0 and sets *out (the caller frees it); TIDE_EINVAL for
 * another schema, rps < 1 or lo < 0 or hi < lo; TIDE_ETOOBIG for more than
 * TIDE_BATCH_MAX_ROWS rows; TIDE_ESCHEMA when start or a row's timestamp
 * is outside the valid timestamp range (TIDE_TS_MIN..TIDE_TS_MAX); -ENOMEM. */
int tide_rate_batch(tide_schema_t *s, int64_t start, int64_t rps, int64_t lo, int64_t hi, tide_batch_t **out);

#endif
