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
 *
 * Streaming state. A streaming group_by():agg() keeps one aggregation
 * across micro-batches and needs four more things from it:
 *   state ids   every group gets a 64-bit state id (sid) when it is
 *               created: 1, 2, 3 ... from a counter in the aggregation.
 *               Restored groups keep theirs and the counter continues past
 *               the largest restored one, so a sid never names two groups
 *               of one aggregation's life (an evicted key that comes back
 *               gets a new sid). The engine keys its state records by sid.
 *   changes     the groups created or updated by tide_agg_update since the
 *               last tide_agg_clear_dirty are "dirty", each once, listed in
 *               gid order (= first-seen order, the order of the result).
 *               Restored groups are not dirty.
 *   records     tide_agg_encode / tide_agg_restore: one group's key and
 *               every aggregate state as portable bytes (docs/FORMAT.md,
 *               "Aggregation state records"), checked on the way back in.
 *   eviction    tide_agg_evict removes the groups whose int/timestamp key
 *               is at or below a bound (event-time windows under a
 *               watermark) and hands back their final rows and sids.
 */
#ifndef TIDE_AGG_H
#define TIDE_AGG_H

#include <stdint.h>

#include "batch.h"
#include "buf.h"
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

/* ------------------------------------------------------ streaming state --- */

/* Number of key columns (the first fields of tide_agg_schema). */
uint32_t tide_agg_nkeys(const tide_agg_t *a);

/* The state id of group gid (< tide_agg_groups). Never 0. */
uint64_t tide_agg_sid(const tide_agg_t *a, uint32_t gid);

/* The dirty groups: *gids points at their gids, ascending; returns how
 * many. The array is borrowed: valid until the next call that changes the
 * aggregation (update, clear, restore, evict, free). */
uint32_t tide_agg_dirty(const tide_agg_t *a, const uint32_t **gids);
/* Forget the dirty set (O(dirty groups)). */
void tide_agg_clear_dirty(tide_agg_t *a);

/* The result rows of just the groups gids[0..n), in that order (same
 * schema as tide_agg_result; a gid may repeat). *out is new and owned by
 * the caller. Errors: TIDE_EINVAL (a gid out of range), -ENOMEM,
 * TIDE_ETOOBIG, TIDE_EPOISONED. */
int tide_agg_result_of(const tide_agg_t *a, const uint32_t *gids, uint32_t n, tide_batch_t **out, tide_err_t *err);

/* Append the state record of group gid to out (the buffer is not reset,
 * so many records may share it): a format version byte, the key and
 * aggregate types, the key values and every aggregate's state
 * (count_distinct: its values; string min/max/first/last: the bytes),
 * little-endian, no pointers, then a CRC-32C of all of it. The sid is not
 * in the record (the caller stores it as the record's key). On failure out
 * is as it was. Errors: TIDE_EINVAL (gid out of range), -ENOMEM,
 * TIDE_EPOISONED. */
int tide_agg_encode(const tide_agg_t *a, uint32_t gid, tide_buf_t *out, tide_err_t *err);

/* Insert the group described by the record p[0..n) under state id sid, as
 * the newest group (gid = tide_agg_groups() before the call), not dirty.
 * Every byte is checked before anything is kept: on any error the
 * aggregation is exactly as before. Errors, with err->msg naming what is
 * wrong:
 *   TIDE_EFORMAT    a format version this build does not read
 *   TIDE_ECORRUPT   truncated, trailing bytes, checksum mismatch, a value
 *                   that cannot occur (flags, bool, unnormalised double,
 *                   duplicate count_distinct value), a key that already
 *                   has a group, sid 0 or UINT64_MAX
 *   TIDE_ESCHEMA    a record of another plan: key or aggregate count,
 *                   types or kinds differ from this aggregation's
 *   -ENOMEM, TIDE_ETOOBIG (too many groups), TIDE_EPOISONED
 * The sid is not checked for uniqueness (records keyed by sid in one LMDB
 * database are unique by construction). */
int tide_agg_restore(tide_agg_t *a, uint64_t sid, const void *p, size_t n, tide_err_t *err);

/* Remove every group whose key column key_col (an int or timestamp key)
 * is not NULL and <= bound. *rows gets their result rows (in gid order,
 * an empty batch when none), *sids their state ids (same order; malloc'd,
 * the caller frees it; NULL when none) and *n their number. The remaining
 * groups keep their order (their gids are renumbered 0..; the dirty set
 * follows them; evicted groups leave it). Their string and distinct-set
 * memory is freed; the key arena is compacted once half of it is dead;
 * the hash table and group arrays are rebuilt (and shrunk), so the same
 * key arriving later makes a fresh group with a new sid. Errors (nothing
 * removed): TIDE_EINVAL (key_col out of range or not int/timestamp),
 * -ENOMEM, TIDE_ETOOBIG, TIDE_EPOISONED. */
int tide_agg_evict(tide_agg_t *a, uint32_t key_col, int64_t bound, tide_batch_t **rows, uint64_t **sids,
                   uint32_t *n, tide_err_t *err);

#endif
