/*
 * vec.h: standalone column vectors, the output of vectorised operators.
 *
 * The row builder of batch.h fills a batch row by row; operators that work a
 * column at a time (expression evaluation, gathers after a filter or a
 * join, window assignment) build each output column on its own with the
 * functions here, then hand the finished columns to a batch with
 * tide_batch_adopt. A column built here owns its buffers (valid, values,
 * data); its layout and invariants are those of tide_col_t in batch.h.
 *
 *     tide_col_t c;
 *     tide_col_init(&c, TIDE_T_INT, n);            // n rows, all 0, no NULLs
 *     ((int64_t *)c.values)[i] = 42;
 *     tide_col_set_null(&c, j, n);                 // row j is NULL
 *     ...
 *     tide_batch_t *b = tide_batch_adopt(schema, n, cols);   // takes the buffers
 *
 * String and json columns are filled in row order with tide_col_put_str
 * (each row exactly once, rows 0..n-1 in order); tide_col_put_str with
 * len 0 writes an empty value (use tide_col_set_null afterwards for NULL).
 */
#ifndef TIDE_VEC_H
#define TIDE_VEC_H

#include <stdint.h>

#include "batch.h"
#include "err.h"

/* Allocate the vectors of an n-row column of type t, zeroed, without NULLs.
 * String/json columns get n+1 offsets (all 0) and no data yet.
 * 0 or -ENOMEM (c is then empty and tide_col_free is still safe). */
int tide_col_init(tide_col_t *c, tide_type_t t, uint32_t n);
/* Free what c owns and zero it. */
void tide_col_free(tide_col_t *c);
/* Mark row i NULL (allocating the bitmap, all valid, on the first NULL;
 * n is the column's row count). Zeroes the fixed-width value; for a string
 * row that was the last one put, cuts its bytes back (a NULL string row has
 * an empty range). 0 or -ENOMEM. */
int tide_col_set_null(tide_col_t *c, uint32_t i, uint32_t n);
/* Write row i of a string/json column: rows must be written in order. */
int tide_col_put_str(tide_col_t *c, uint32_t i, const char *p, size_t len);

/* A batch over schema s (a reference is taken) that owns the buffers of
 * cols[0..nfields) from now on (the array itself is copied). On failure
 * (NULL) the buffers are freed too, so the caller never frees them twice. */
tide_batch_t *tide_batch_adopt(tide_schema_t *s, uint32_t nrows, tide_col_t *cols);

/* out = rows[0..n) of in, in that order; a row index of TIDE_ROW_NULL gives
 * a NULL (used by outer joins). */
#define TIDE_ROW_NULL UINT32_MAX
int tide_col_gather(const tide_col_t *in, const uint32_t *rows, uint32_t n, tide_col_t *out);
/* A copy of the first n rows of in. */
int tide_col_copy(const tide_col_t *in, uint32_t n, tide_col_t *out);
/* A copy of rows [lo, lo + n) of in (in must have them): whole ranges
 * copied, not row by row. */
int tide_col_slice(const tide_col_t *in, uint32_t lo, uint32_t n, tide_col_t *out);
/* A new batch of the given rows of in (every column gathered). TIDE_EINVAL
 * for a row past in->nrows (other than TIDE_ROW_NULL). */
int tide_batch_gather(const tide_batch_t *in, const uint32_t *rows, uint32_t n, tide_batch_t **out);
/* One batch holding the rows of batches[0..n) in order (same schema shape:
 * TIDE_EINVAL when a batch's column count or types differ from s). */
int tide_batch_concat(tide_batch_t *const *batches, uint32_t n, tide_schema_t *s, tide_batch_t **out);
/* The same, each batch's values and string bytes copied by a task of pool
 * (pool.h; NULL: on the caller); NULL markers are set on the caller. */
struct tide_pool;
int tide_batch_concat_on(struct tide_pool *pool, tide_batch_t *const *batches, uint32_t n, tide_schema_t *s,
                         tide_batch_t **out);
/* Rows [lo, hi) of b as a new batch. TIDE_EINVAL unless lo <= hi <= nrows. */
int tide_batch_slice(const tide_batch_t *b, uint32_t lo, uint32_t hi, tide_batch_t **out);

/* Over the non-NULL values of the first n rows of an int or timestamp
 * column: their count, min, max and sum (a double, which cannot
 * overflow); *lo and *hi are untouched when the count is 0. What a
 * watermark needs of a batch (its largest event time) and what a query's
 * progress reports (min, max, avg). */
void tide_col_time_stats(const tide_col_t *c, uint32_t n, uint32_t *count, int64_t *lo, int64_t *hi, double *sum);

#endif
