/*
 * sjoin.h: the stream-stream join (Spark's symmetric hash join,
 * StreamingSymmetricHashJoinExec), one micro-batch at a time.
 *
 * Each side keeps the rows it has seen in its state, indexed by the
 * equi-join keys. A micro-batch (tide_sjoin_run) takes each side's new
 * rows, in this order:
 *
 *   1. left: drop late rows (event time <= the late bound), apply the
 *      left-only conditions (a row failing them can never match: an outer
 *      side emits it at once, padded with NULLs, and does not keep it);
 *      match the rest against the right state as of the last batch; keep
 *      them (a left semi join keeps only those that did not match);
 *   2. right: the same against the left state, which now holds this
 *      batch's left rows too, so every pair is found exactly once;
 *   3. evict, per side, the state rows whose eviction column is <= that
 *      side's bound (the state watermark the planner derived): an outer
 *      side emits those that never matched, padded with NULLs.
 *
 * A candidate pair (equal keys; NULL keys never match) is a match when the
 * full condition (an expression over the pair schema: every left column,
 * then every right column) is TRUE; without a condition equal keys are a
 * match. Output rows are pairs of the pair schema, a missing side NULL.
 * How: inner, left outer, right outer, full outer, left semi (a left row
 * is emitted once, at its first match; the right side is NULL).
 *
 * State and checkpoints: every kept row has a state id (per side, from 1)
 * and a record (docs/FORMAT.md, "Stream-stream join state records"); the
 * changes since the last tide_sjoin_clear_changes are the rows kept or
 * whose matched flag changed (puts), and the rows removed that had
 * reached the checkpoint (deletes). Restoring puts the records back.
 *
 * Ownership: the join takes a reference to each schema; the expressions
 * are borrowed and must outlive it. Not thread-safe.
 */
#ifndef TIDE_SJOIN_H
#define TIDE_SJOIN_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "buf.h"
#include "err.h"
#include "expr.h"
#include "schema.h"

typedef struct tide_sjoin tide_sjoin_t;

typedef enum { TIDE_SJOIN_INNER, TIDE_SJOIN_LEFT, TIDE_SJOIN_RIGHT, TIDE_SJOIN_FULL, TIDE_SJOIN_LEFT_SEMI } tide_sjoin_how_t;

enum { TIDE_SJOIN_L = 0, TIDE_SJOIN_R = 1 };

/* One side's plan. */
typedef struct tide_sjoin_side {
  tide_schema_t *schema;  /* its rows */
  const uint32_t *keys;   /* key columns (nkeys, same count and comparable types on both sides) */
  int late_col;           /* timestamp column checked against the late bound, or -1 */
  int evict_col;          /* timestamp column checked against the eviction bound, or -1 */
  const tide_expr_t *pre; /* the conditions on this side alone (bool, on schema), or NULL */
} tide_sjoin_side_t;

/* A new join. pair: the pair schema (left fields then right fields, of the
 * same types); cond: bool over pair, or NULL. Errors: TIDE_EINVAL (naming
 * what does not fit), -ENOMEM. */
int tide_sjoin_new(const tide_sjoin_side_t *left, const tide_sjoin_side_t *right, uint32_t nkeys,
                   tide_sjoin_how_t how, tide_schema_t *pair, const tide_expr_t *cond, tide_sjoin_t **out,
                   tide_err_t *err);
void tide_sjoin_free(tide_sjoin_t *j); /* NULL allowed */

/* The bounds of one micro-batch: a side's rows with late_col <= late are
 * late (has_late), its state rows with evict_col <= evict[side] go
 * (has_evict[side]). */
typedef struct tide_sjoin_bounds {
  int has_late;
  int64_t late;
  int has_evict[2];
  int64_t evict[2];
} tide_sjoin_bounds_t;

/* What a micro-batch did. */
typedef struct tide_sjoin_stats {
  uint32_t late[2];  /* late rows dropped per side */
  uint32_t updated;  /* rows added to the state (as Spark counts them) */
  uint32_t evicted;  /* state rows removed */
} tide_sjoin_stats_t;

/* Run a micro-batch: in[side] is that side's new rows (its schema's
 * shape) or NULL; *out is a new batch of the pair schema (the caller's).
 * On failure nothing of this batch stays in the state only if the caller
 * drops the join (the engine fails the query and restores from the
 * checkpoint). Errors: TIDE_EINVAL (a batch of another shape), errors of
 * the condition's evaluation, TIDE_ETOOBIG, -ENOMEM. */
int tide_sjoin_run(tide_sjoin_t *j, const tide_batch_t *in[2], const tide_sjoin_bounds_t *b, tide_batch_t **out,
                   tide_sjoin_stats_t *st, tide_err_t *err);

/* Rows kept (both sides), and approximate bytes held. */
uint64_t tide_sjoin_rows(const tide_sjoin_t *j);
size_t tide_sjoin_bytes(const tide_sjoin_t *j);

/* A state row named by side and id; row is its place in the side's state. */
typedef struct tide_sjoin_ref {
  uint8_t side;
  uint64_t id;
  uint32_t row;
} tide_sjoin_ref_t;

/* The changes since the last clear: *dels (side, id) and *puts (side, id,
 * row), malloc'd (the caller frees them). The puts' records come from
 * tide_sjoin_encode until the next run. 0 or -ENOMEM. */
int tide_sjoin_changes(const tide_sjoin_t *j, tide_sjoin_ref_t **dels, size_t *ndels, tide_sjoin_ref_t **puts,
                       size_t *nputs);
/* Append the record of state row `row` of side to b. 0 or -ENOMEM. */
int tide_sjoin_encode(const tide_sjoin_t *j, int side, uint32_t row, tide_buf_t *b);
/* The changes were committed. */
void tide_sjoin_clear_changes(tide_sjoin_t *j);
/* Put a committed record back (before any run). Errors: ECORRUPT (a
 * damaged record, an id restored twice), EFORMAT (an unknown version),
 * ESCHEMA (a record of another shape), -ENOMEM. */
int tide_sjoin_restore(tide_sjoin_t *j, int side, uint64_t id, const void *rec, size_t len, tide_err_t *err);

#endif
