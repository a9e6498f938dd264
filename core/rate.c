/*
 * rate.c: the rate source's rows (rules in rate.h), written straight into
 * two column vectors: no row builder, no per-row call.
 */
#include "rate.h"

#include <errno.h>

#include "err.h"
#include "vec.h"

int tide_rate_batch(tide_schema_t *s, int64_t start, int64_t rps, int64_t lo, int64_t hi, tide_batch_t **out) {
  *out = NULL;
  if (s->nfields != 2 || s->fields[0].type != TIDE_T_TIMESTAMP || s->fields[1].type != TIDE_T_INT) return TIDE_EINVAL;
  if (rps < 1 || lo < 0 || hi < lo) return TIDE_EINVAL;
  if (hi - lo > (int64_t)TIDE_BATCH_MAX_ROWS) return TIDE_ETOOBIG;
  /* every timestamp must be a valid one (schema.h), as those that enter
   * any other way: start, and the largest, start + (hi - 1) * 1000 / rps */
  if (!tide_ts_valid(start) || hi > INT64_MAX / 1000) return TIDE_ESCHEMA;
  int64_t last = hi > 0 ? (hi - 1) * 1000 / rps : 0;
  if (last > TIDE_TS_MAX - start) return TIDE_ESCHEMA;
  uint32_t n = (uint32_t)(hi - lo);
  tide_col_t cols[2];
  int rc = tide_col_init(&cols[0], TIDE_T_TIMESTAMP, n);
  if (!rc && (rc = tide_col_init(&cols[1], TIDE_T_INT, n))) tide_col_free(&cols[0]);
  if (rc) return rc;
  int64_t *ts = cols[0].values, *v = cols[1].values;
  for (uint32_t i = 0; i < n; i++) {
    int64_t k = lo + (int64_t)i;
    ts[i] = start + k * 1000 / rps;
    v[i] = k;
  }
  *out = tide_batch_adopt(s, n, cols); /* frees the columns on failure */
  return *out ? 0 : -ENOMEM;
}
