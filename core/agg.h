/*
 * agg.h: hash aggregation: groups keyed by any number of columns of any
 * type, with count, sum, min, max, avg, first, last and count_distinct.
 *
 * Memory grows with the number of groups (and, for count_distinct, with the
 * distinct values per group), never with the number of rows. NULL is a key
 * value of its own, as in SQL GROUP BY (all NULLs of a key column form one
 * group). Aggregates follow Spark:
 *   count(*)        rows;                       count(x): rows with x not NULL
 *   sum(x)          NULL when no non-NULL x; int sums wrap on overflow
 *   avg(x)          double; NULL when no non-NULL x
 *   min/max(x)      ignoring NULLs; NULL when none (strings bytewise)
 *   first/last(x)   the first/last row's value in input order, NULL included
 *   count_distinct  distinct non-NULL values
 * Result types: count*, count_distinct -> int; sum(int) -> int;
 * sum(double) -> double; avg -> double; min/max/first/last -> x's type.
 * Result columns are nullable except the counts.
 *
 * Feeding the same rows in one batch or in many gives the same result;
 * groups come out in the order they were first seen.
 */
#ifndef TIDE_AGG_H
#define TIDE_AGG_H

#include <stdint.h>

#include "batch.h"
#include "err.h"
#include "expr.h"
#include "schema.h"

typedef struct tide_agg tide_agg_t;

typedef struct tide_agg_spec {
  tide_agg_kind_t kind;
  tide_type_t arg_type; /* ignored for count(*) */
  const char *name;     /* the output column's name */
} tide_agg_spec_t;

/* A new aggregation grouping by the columns of `keys` (a reference is
 * taken; names and types of the key columns carry to the output). Output
 * schema: the key fields (as in `keys`), then one field per spec.
 * TIDE_EINVAL for an aggregate that does not apply to its type (sum of a
 * string: "sum needs a number, got string"). */
int tide_agg_new(tide_schema_t *keys, const tide_agg_spec_t *specs, uint32_t nspecs, tide_agg_t **out,
                 tide_err_t *err);
void tide_agg_free(tide_agg_t *a); /* NULL allowed */

/* Add n rows: keys is a batch of the key schema with n rows; args[i] is the
 * argument column of spec i (n rows; NULL for count(*)). */
int tide_agg_update(tide_agg_t *a, const tide_batch_t *keys, const tide_col_t *const *args, tide_err_t *err);

tide_schema_t *tide_agg_schema(const tide_agg_t *a); /* borrowed */
/* One row per group, in first-seen order. The aggregation stays usable. */
int tide_agg_result(const tide_agg_t *a, tide_batch_t **out, tide_err_t *err);
uint64_t tide_agg_groups(const tide_agg_t *a);
size_t tide_agg_bytes(const tide_agg_t *a); /* memory held, approximately */

#endif
