/*
 * sort.h: ordering rows of a batch by several keys.
 *
 * Stable: rows equal on every key keep their input order. Each key is
 * ascending or descending, with NULLs first or last (Spark's defaults are
 * NULLs first ascending, last descending; the caller decides). Numbers
 * compare by value (NaN greater than everything, as Spark), strings and
 * json bytewise (UTF-8 code point order), false < true, timestamps by ms.
 */
#ifndef TIDE_SORT_H
#define TIDE_SORT_H

#include <stdint.h>

#include "batch.h"
#include "err.h"

typedef struct tide_sort_key {
  uint32_t col;
  int desc;
  int nulls_first;
} tide_sort_key_t;

/* perm (b->nrows entries) receives the row order. 0 or -ENOMEM. */
int tide_sort(const tide_batch_t *b, const tide_sort_key_t *keys, uint32_t nkeys, uint32_t *perm, tide_err_t *err);

#endif
