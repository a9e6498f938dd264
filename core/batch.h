/*
 * batch.h: the columnar record batch, the unit every operator consumes.
 *
 *   tide_batch_t
 *   +----------+-------+-----+------------------------------------------+
 *   | schema * | nrows | cap | cols[nfields]                            |
 *   +----------+-------+-----+------------------------------------------+
 *   tide_col_t (one per field, type from the schema)
 *     valid   bit i set = row i is not NULL (LSB first); NULL pointer = all valid
 *     values  int64_t[cap]   for int, timestamp
 *             double[cap]    for double
 *             uint8_t[cap]   for bool (0 or 1)
 *             uint32_t[cap+1] offsets for string and json: row i is
 *                            data[offsets[i] .. offsets[i+1])
 *     data    string bytes (string, json), data_len used of data_cap
 *
 * Invariants: for string/json columns offsets[0] == 0 and offsets are
 * non-decreasing up to offsets[nrows] == data_len; a NULL row of a string
 * column has an empty range. Values of NULL rows are zero. json columns hold
 * compact, valid JSON text of one value per row.
 *
 * Ownership. An owned batch (tide_batch_new) allocates its vectors and grows
 * them; rows are added with the row builder below, with no allocation per row
 * once capacity is reached (vectors double). A borrowed batch
 * (tide_batch_borrowed, made by the block decoder) points its vectors into
 * memory held by `backing` (an mmapped segment, a decompressed buffer);
 * `release(backing)` runs when the batch is freed. Borrowed batches are
 * read-only.
 *
 * Row builder, on an owned batch:
 *     tide_batch_row_begin(b);            // row b->nrows, every column NULL
 *     tide_batch_set_i64(b, 0, ts);       // any order, each column at most once
 *     tide_batch_set_str(b, 1, "a", 1);
 *     tide_batch_row_commit(b);           // or tide_batch_row_abort(b)
 * String and json columns must be set in row order (they are: one row at a
 * time), which keeps their data contiguous.
 */
#ifndef TIDE_BATCH_H
#define TIDE_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "schema.h"

typedef struct tide_col {
  tide_type_t type;
  uint8_t *valid;      /* NULL = no NULLs */
  void *values;
  char *data;          /* string/json bytes */
  size_t data_len, data_cap;
  uint32_t null_count;
} tide_col_t;

typedef struct tide_batch {
  tide_schema_t *schema; /* one reference held */
  uint32_t nrows, cap;
  tide_col_t *cols;      /* schema->nfields entries */
  uint8_t owned;         /* 1: vectors are malloc'd by the batch */
  void *backing;
  void (*release)(void *backing);
} tide_batch_t;

/* Largest row count of one batch, and of one string column's bytes
 * (offsets are 32-bit). Builders split input into batches below these. */
#define TIDE_BATCH_MAX_ROWS (1u << 24)
#define TIDE_BATCH_MAX_DATA (UINT32_MAX - 1u)

/* A new owned, empty batch holding a reference to s. cap_hint rows are
 * preallocated (0 picks a default). NULL on out of memory. */
tide_batch_t *tide_batch_new(tide_schema_t *s, uint32_t cap_hint);
/* A new borrowed batch: cols is copied (the array, not the vectors); the
 * batch takes a reference to s; release(backing) is called on free. */
tide_batch_t *tide_batch_borrowed(tide_schema_t *s, uint32_t nrows, const tide_col_t *cols,
                                  void *backing, void (*release)(void *));
void tide_batch_free(tide_batch_t *b); /* NULL is allowed */
/* Drop all rows of an owned batch, keeping its capacity. */
void tide_batch_clear(tide_batch_t *b);
/* Ensure room for `rows` more rows. 0, -ENOMEM or TIDE_ETOOBIG. */
int tide_batch_reserve(tide_batch_t *b, uint32_t rows);
/* Approximate bytes held by the batch's vectors. */
size_t tide_batch_bytes(const tide_batch_t *b);

/* Row builder (owned batches only). */
int tide_batch_row_begin(tide_batch_t *b);           /* 0, -ENOMEM, TIDE_ETOOBIG */
void tide_batch_set_null(tide_batch_t *b, uint32_t col);
void tide_batch_set_i64(tide_batch_t *b, uint32_t col, int64_t v);   /* int, timestamp */
void tide_batch_set_f64(tide_batch_t *b, uint32_t col, double v);
void tide_batch_set_bool(tide_batch_t *b, uint32_t col, int v);
int tide_batch_set_str(tide_batch_t *b, uint32_t col, const char *p, size_t len); /* string, json */
void tide_batch_row_commit(tide_batch_t *b);
void tide_batch_row_abort(tide_batch_t *b);

/* Drop the rows from `nrows` on of an owned batch (no-op when it has fewer):
 * null counts, string data and validity are cut back to match. Used to roll
 * back a multi-row append that failed part way. */
void tide_batch_truncate(tide_batch_t *b, uint32_t nrows);

/* Copy row `row` of src (same schema shape) onto the end of owned dst. */
int tide_batch_append_row(tide_batch_t *dst, const tide_batch_t *src, uint32_t row);

/* Readers. */
static inline int tide_col_is_null(const tide_col_t *c, uint32_t i) {
  return c->valid && !(c->valid[i >> 3] & (1u << (i & 7)));
}
static inline int64_t tide_col_i64(const tide_col_t *c, uint32_t i) { return ((const int64_t *)c->values)[i]; }
static inline double tide_col_f64(const tide_col_t *c, uint32_t i) { return ((const double *)c->values)[i]; }
static inline int tide_col_bool(const tide_col_t *c, uint32_t i) { return ((const uint8_t *)c->values)[i]; }
static inline const char *tide_col_str(const tide_col_t *c, uint32_t i, size_t *len) {
  const uint32_t *o = (const uint32_t *)c->values;
  *len = o[i + 1] - o[i];
  return c->data ? c->data + o[i] : ""; /* no bytes at all: data may be NULL (NULL + 0 is undefined) */
}

#endif
