/*
 * join.h: hash join of a stream (or any batch) against a static side.
 *
 * The static (right) side is one batch; its key columns are hashed once.
 * Probing a left batch emits (left row, right row) pairs: every match, in
 * left row order and, for one left row, in right row order. With
 * left_outer, a left row without a match emits (row, TIDE_ROW_NULL) so that
 * a gather gives NULLs for the right columns. NULL keys never match (SQL).
 * Key columns are compared by value; the left and right key columns must
 * have the same types (int and double keys are compared as numbers).
 * Memory grows with the right side's rows.
 */
#ifndef TIDE_JOIN_H
#define TIDE_JOIN_H

#include <stdint.h>

#include "batch.h"
#include "err.h"

typedef struct tide_join tide_join_t;

/* right is borrowed and must outlive the join. */
int tide_join_build(const tide_batch_t *right, const uint32_t *key_cols, uint32_t nkeys, tide_join_t **out,
                    tide_err_t *err);
/* Pairs for left (key columns key_cols, same count and types as the build).
 * *lrows and *rrows are malloc'd by the call; *count their length. */
int tide_join_probe(const tide_join_t *j, const tide_batch_t *left, const uint32_t *key_cols, int left_outer,
                    uint32_t **lrows, uint32_t **rrows, uint32_t *count, tide_err_t *err);
void tide_join_free(tide_join_t *j); /* NULL allowed */

/* Internals shared with the stream-stream join (sjoin.c). h[0..b->nrows)
 * receives each row's hash of the key columns kc[0..nk) (int and double
 * keys hash as numbers); nul[i] = 1 when a key of row i is NULL. */
void tide__join_hash_rows(const tide_batch_t *b, const uint32_t *kc, uint32_t nk, uint64_t *h, uint8_t *nul);
/* 1 when the keys ka of row i of a equal the keys kb of row j of b (no
 * NULLs; types equal or both numeric). */
int tide__join_keys_eq(const tide_batch_t *a, const uint32_t *ka, uint32_t i, const tide_batch_t *b,
                       const uint32_t *kb, uint32_t j, uint32_t nk);

#endif
