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
 *               (or aggregate) is at or below a bound (event-time windows
 *               under a watermark) and hands back their final rows and
 *               sids; tide_agg_remove does the same for given groups.
 * An aggregation may have no aggregate at all (streaming deduplication:
 * the groups are the distinct keys).
 */
#ifndef TIDE_AGG_H
#define TIDE_AGG_H

#include <stdint.h>

#include "batch.h"
#include "buf.h"
#include "err.h"
#include "expr.h"
#include "schema.h"
#include "window.h"

typedef struct tide_agg tide_agg_t;
struct tide_pool;

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

/* Remove every group whose value in column col of the result schema is
 * not NULL and <= bound. col is a key column of type int or timestamp
 * (event-time windows under a watermark), or an aggregate column whose
 * result is int or timestamp: count(*), count, count_distinct, sum of int,
 * min/max/first/last of int or timestamp (state kept until a time an
 * aggregate computed, as dropDuplicatesWithinWatermark's expiry).
 * *rows gets their result rows (in gid order, an empty batch when none;
 * rows may be NULL: no rows are built, the groups just go),
 * *sids their state ids (same order; malloc'd, the caller frees it; NULL
 * when none) and *n their number. The remaining groups keep their order
 * (their gids are renumbered 0..; the dirty set follows them; evicted
 * groups leave it). Their string and distinct-set memory is freed; the key
 * arena is compacted once half of it is dead; the hash table and group
 * arrays are rebuilt (and shrunk), so the same key arriving later makes a
 * fresh group with a new sid. Errors (nothing removed): TIDE_EINVAL (col
 * out of range or of another type), -ENOMEM, TIDE_ETOOBIG, TIDE_EPOISONED. */
int tide_agg_evict(tide_agg_t *a, uint32_t col, int64_t bound, tide_batch_t **rows, uint64_t **sids, uint32_t *n,
                   tide_err_t *err);

/* ------------------------------------------------------------ spilling ---
 *
 * Bounded memory (state_memory_limit). A streaming aggregation whose
 * committed groups are all in a store (the checkpoint's state database,
 * keyed by sid, with an index by key hash) may drop clean groups from
 * memory and load them back when their key comes again:
 *   tide_agg_set_store   attaches the store (callbacks below);
 *   tide_agg_spill       drops the least recently touched groups (only
 *                        when none is dirty: right after a commit) until
 *                        tide_agg_bytes is at most a target;
 *   updates              a key not in memory is first looked up in the
 *                        store (one lookup call per update, for the
 *                        distinct hashes of the missing keys, ascending),
 *                        and a found group is loaded (tide_agg_load)
 *                        before the rows are aggregated, so it is not
 *                        "created" and keeps its sid;
 *   tide_agg_evict       also scans the store for groups only there
 *                        (skipped while a lower bound of their values in
 *                        that column is above the bound);
 *   tide_agg_result_all  the groups in memory, then those only in the
 *                        store (complete output mode).
 * "Touched" means found, created or loaded by an update; the epoch
 * advances at every tide_agg_clear_dirty (one per micro-batch). */

/* Called for one stored group: its sid and state record (the memory is
 * the store's: valid during the call only). Returns 0 or an error code
 * (err set), which stops the walk and is returned. */
typedef int (*tide_agg_rec_fn)(void *arg, uint64_t sid, const void *rec, size_t len, tide_err_t *err);

typedef struct tide_agg_store {
  void *ctx;
  /* Hand fn every stored group whose key hash is one of h[0..n)
   * (ascending, distinct); groups of other keys with the same hash may
   * come too. In one read of the store. */
  int (*lookup)(void *ctx, const uint64_t *h, uint32_t n, tide_agg_rec_fn fn, void *arg, tide_err_t *err);
  /* Hand fn up to max stored groups with sid > after, in sid order; *last
   * gets the last sid handed, *done is set when no group follows it. */
  int (*scan)(void *ctx, uint64_t after, uint32_t max, tide_agg_rec_fn fn, void *arg, uint64_t *last, int *done,
              tide_err_t *err);
} tide_agg_store_t;

/* Attach s (borrowed: it must outlive the aggregation or be detached
 * with NULL first), with `spilled` groups already only in the store (a
 * restore that stopped early) and next_sid raised to at least `next_sid`
 * (past the largest sid stored). */
void tide_agg_set_store(tide_agg_t *a, const tide_agg_store_t *s, uint64_t spilled, uint64_t next_sid);

/* Groups only in the store; groups dropped by spills and loaded back,
 * since the aggregation was made. */
uint64_t tide_agg_spilled(const tide_agg_t *a);
void tide_agg_spill_counts(const tide_agg_t *a, uint64_t *spilled_total, uint64_t *loaded_total);

/* Drop the least recently touched groups until tide_agg_bytes(a) <=
 * target (or no group is left in memory); *n gets how many. They stay in
 * the store and are not changes. Errors: TIDE_EINVAL (no store, or a
 * dirty group: spill right after a commit), -ENOMEM (nothing dropped),
 * TIDE_EPOISONED. */
int tide_agg_spill(tide_agg_t *a, size_t target, uint32_t *n, tide_err_t *err);

/* Load a stored group back: as tide_agg_restore, but a key that already
 * has a group in memory is no error (nothing changes, returns 0), and the
 * group counts as touched now and as no longer spilled. */
int tide_agg_load(tide_agg_t *a, uint64_t sid, const void *rec, size_t n, tide_err_t *err);

/* The result of every group, those in memory (first-seen order) then
 * those only in the store (sid order). Errors as tide_agg_result, and the
 * store's. */
int tide_agg_result_all(tide_agg_t *a, tide_batch_t **out, tide_err_t *err);

/* The key hash of group gid (the index key of the store). */
uint64_t tide_agg_hash(const tide_agg_t *a, uint32_t gid);

/* Keep a log of the groups evict/remove take out (their sids and key
 * hashes) until the next tide_agg_clear_dirty: what a commit deletes.
 * Off by default (session windows keep their own). */
void tide_agg_log_gone(tide_agg_t *a, int on);
/* The log: *sids and *hashes point at n entries (borrowed, valid until
 * the aggregation changes). */
size_t tide_agg_gone(const tide_agg_t *a, const uint64_t **sids, const uint64_t **hashes);

/* The groups created since the last tide_agg_clear_dirty are those
 * whose sid is at or above this. */
uint64_t tide_agg_new_sids_from(const tide_agg_t *a);
/* The sid the next new group gets. */
uint64_t tide_agg_next_sid(const tide_agg_t *a);

/* ---------------------------------------------------------- event time ---
 *
 * Late rows. Under a watermark a stateful operator ignores the rows whose
 * event time is at or below it (SEMANTICS.md s.3: inclusive; for a window
 * key the window's end counts, each (row, window) pair judged alone).
 * tide_agg_mark_late flags such rows and tide_agg_update_ex leaves the
 * flagged rows out of the aggregation, counting them the way Spark's
 * numRowsDroppedByWatermark does (one per distinct key, window included).
 * It also says which rows created a group, which is what streaming
 * deduplication emits.
 *
 * Sessions. A session window is a group per (key, session start); when a
 * new row bridges two sessions they become one. tide_agg_lookup finds the
 * groups of given keys, tide_agg_merge folds one group's states into
 * another and tide_agg_remove drops groups by gid, as evict does by bound.
 */

/* late[i] = 1 for each of the n rows whose event time is at or below
 * bound, else 0. With ends (the end of each row's window) the window end
 * decides: ends[i] <= bound. Without, column t (int or timestamp) does: a
 * value <= bound; NULL is never late. Returns the number of late rows. */
uint32_t tide_agg_mark_late(const tide_col_t *t, const int64_t *ends, uint32_t n, int64_t bound, uint8_t *late);

/* In/out of tide_agg_update_ex. */
typedef struct tide_agg_feed {
  const uint8_t *late; /* in: per row of keys, nonzero = late (not
                        * aggregated); NULL: none is */
  uint8_t *created;    /* out, when not NULL: per row of keys, 1 when the
                        * row created its group (the first row of a key
                        * not seen before), else 0 */
  uint32_t pushed;     /* out: rows aggregated */
  uint32_t late_rows;  /* out: rows flagged late */
  uint32_t late_groups; /* out: distinct key tuples among the late rows */
} tide_agg_feed_t;

/* tide_agg_update over the rows of keys that f->late does not flag, with
 * the counts and created flags of f filled in. Late rows create and change
 * no group. Errors as tide_agg_update; a shape error or -ENOMEM before any
 * row is aggregated leaves the aggregation (and f's counts: 0) as before. */
int tide_agg_update_ex(tide_agg_t *a, const tide_batch_t *keys, const tide_col_t *const *args, tide_agg_feed_t *f,
                       tide_err_t *err);

/* The gid of the group whose state id is sid: 1 and *gid set, or 0 when
 * no group has it. O(log groups) (O(groups) after restoring records out
 * of sid order). */
int tide_agg_gid_of(const tide_agg_t *a, uint64_t sid, uint32_t *gid);

/* gids[i] = the gid of the group of row i of keys (a batch of the key
 * schema: same column count and types), or UINT32_MAX when that key has no
 * group. Changes nothing but scratch. Errors: TIDE_EINVAL (keys of another
 * shape), -ENOMEM, TIDE_EPOISONED. */
int tide_agg_lookup(tide_agg_t *a, const tide_batch_t *keys, uint32_t *gids, tide_err_t *err);

/* Fold group src's aggregate states into group dst's, as if dst had seen
 * src's rows after its own: counts, sums and averages add, min/max
 * compare, count_distinct sets unite, first keeps dst's unless dst has
 * none, last takes src's unless src has none. dst becomes dirty; src is
 * unchanged. Errors: TIDE_EINVAL (a gid out of range, or dst == src;
 * nothing changed), -ENOMEM (the aggregation is poisoned, as after a
 * failed update), TIDE_EPOISONED. */
int tide_agg_merge(tide_agg_t *a, uint32_t dst, uint32_t src, tide_err_t *err);

/* Remove the groups gids[0..n) (any order; a gid listed twice counts
 * once): *rows, *sids and *nout as tide_agg_evict, which it shares the
 * upkeep with. Errors (nothing removed): TIDE_EINVAL (a gid out of range),
 * -ENOMEM, TIDE_ETOOBIG, TIDE_EPOISONED. */
int tide_agg_remove(tide_agg_t *a, const uint32_t *gids, uint32_t n, tide_batch_t **rows, uint64_t **sids,
                    uint32_t *nout, tide_err_t *err);

/* ------------------------------------------------------------ the operator ---
 *
 * tide_agg_push is the whole grouping step of a group_by():agg() over one
 * input batch, with no intermediate batch: an optional filter (a `where`
 * fused into the aggregation), window assignment (each row repeated once
 * per window it falls in; a tumbling window repeats nothing), the key and
 * argument columns (bare columns read in place, other expressions
 * evaluated), late (row, window) pairs left out under a watermark, and the
 * event-time statistics a watermark between the filter and the
 * aggregation needs. The engine's Lua side (agg:push, l_agg.c) only
 * converts its arguments into a tide_agg_input_t.
 */

/* Where a key column comes from. */
typedef enum tide_agg_key_kind {
  TIDE_AGG_KEY_EXPR = 0,     /* an expression over the batch */
  TIDE_AGG_KEY_WINDOW_START, /* the window's start (needs a window) */
  TIDE_AGG_KEY_WINDOW_END    /* the window's end */
} tide_agg_key_kind_t;

typedef struct tide_agg_key_src {
  tide_agg_key_kind_t kind;
  const tide_expr_t *expr; /* TIDE_AGG_KEY_EXPR: of the key column's type */
} tide_agg_key_src_t;

/* One push. Everything is borrowed for the call; nothing is kept. Column
 * numbers are 0-based over batch's schema; -1 means "none". */
typedef struct tide_agg_input {
  const tide_batch_t *batch;      /* the input rows */
  const tide_agg_key_src_t *keys; /* tide_agg_nkeys(a) entries, in order */
  const tide_expr_t *const *args; /* one per aggregate, in order; NULL for count(*) */
  const tide_window_t *window;     /* NULL: no window */
  int window_col;                  /* with a window: its timestamp or int column */
  /* The filter: only the rows it keeps are aggregated. At most one of
   * filter (a bool expression: the rows where it is TRUE) and select (the
   * rows kept, ascending, nselect of them, chosen by the caller, e.g. by a
   * Lua function); neither: every row. */
  const tide_expr_t *filter;
  const uint32_t *select;
  uint32_t nselect;
  /* Late pairs (agg.h "Late rows"): with late_col >= 0 (a timestamp or int
   * column), the (row, window) pairs at or below late_bound are left out:
   * judged by the window's end when late_col is the window's column, else
   * by the row's value there (NULL is never late). */
  int late_col;
  int64_t late_bound;
  int want_created; /* report the input rows that created a group */
  int time_col;     /* >= 0: report the statistics of this timestamp or int
                     * column over the rows the filter kept (late ones
                     * included) */
  /* A worker pool (pool.h) or NULL: with two or more threads and a big
   * enough batch, ranges of rows are pushed on the pool into partial
   * aggregations that fold into a in input order, with the result, state
   * ids, changes and records of one thread (agg.c, "Parallel push", says
   * which aggregates qualify; the others run on the caller). */
  struct tide_pool *pool;
  uint32_t par_min_rows; /* the fewest rows a task takes; 0: the default
                          * (4096, and ranges of a multiple of 64 rows) */
} tide_agg_input_t;

typedef struct tide_agg_output {
  uint32_t pushed;      /* (row, window) pairs aggregated */
  uint32_t late_pairs;  /* pairs left out as late */
  uint32_t late_groups; /* distinct keys (window included) among them */
  /* The input rows whose every pair was late (NULL when there are none),
   * and with want_created the input rows that created a group (possibly
   * empty): batches of the input's schema, in input order, owned by the
   * caller (tide_batch_free). */
  tide_batch_t *lost, *created;
  /* With time_col: the count, minimum, maximum and sum (a double: it
   * cannot overflow) of its non-NULL values; min and max are 0 when the
   * count is. */
  uint32_t time_count;
  int64_t time_min, time_max;
  double time_sum;
} tide_agg_output_t;

/* Push one input batch into a: *out is set (zeroed first). Errors:
 *   TIDE_EINVAL   an input that does not fit (columns out of range or of
 *                 the wrong type, a window key without a window, a bad
 *                 window, both filter and select, a selection out of
 *                 order): err says which; nothing is aggregated
 *   what tide_expr_select, tide_expr_eval and tide_agg_update_ex return
 *                 (the aggregation is then as tide_agg_update_ex leaves it)
 *   -ENOMEM       also after the rows were aggregated, when building lost
 *                 or created fails (they are then NULL)
 * Memory the call needs is freed before it returns. */
int tide_agg_push(tide_agg_t *a, const tide_agg_input_t *in, tide_agg_output_t *out, tide_err_t *err);

/* A static aggregation (a query over static input that wants only the
 * final rows, never state ids or changes): split a, before its first
 * group, into nparts part tables by key hash, so that the fold of each
 * parallel push runs on every thread of the pool, one part per task (agg.c,
 * "Static aggregation"). tide_agg_result still gives one row per group in
 * first-seen order, identical to one thread's. Returns 1 when a is now
 * parted; 0 when it stays one table (nparts < 2, a has groups, a store, or
 * an aggregate whose fold is not bit-exact: sum/avg of double,
 * count_distinct, string min/max/first/last); -ENOMEM (a unchanged).
 * While parted, push, result, result_all, groups and bytes work on the parts; any
 * other call that takes a non-const aggregation (update, update_ex,
 * restore, load, evict, lookup, merge, remove, insert, update_groups,
 * spill) first folds the parts back into one table in
 * first-seen order (as one thread built it; -ENOMEM or TIDE_ETOOBIG then
 * poison a), and so does a push that cannot run in parallel; the const
 * accessors of single groups (sid, dirty, encode, result_of, hash,
 * gid_of) see no group while a is parted. Do not attach a store
 * (tide_agg_set_store) to a parted aggregation. */
int tide_agg_set_static(tide_agg_t *a, uint32_t nparts, tide_err_t *err);

/* A one-stage scan of static input (core/scan.c; agg.c, "One-stage
 * scan"): workers each take whole ranges of the input in increasing order
 * and push them into tables of their own; the end folds those into the
 * parts of a static aggregation, on every thread, so that the result is
 * one thread's (rows and first-seen order).
 * tide_agg_scan_begin makes nworkers worker tables: 1 when it did; 0 when
 * a cannot scan this way (not parted by tide_agg_set_static, not empty,
 * or an aggregate whose fold depends on the order: first, last, and those
 * set_static refuses); -ENOMEM.
 * tide_agg_scan_push pushes in (its pool, late, time and created fields
 * ignored) as range `range` into worker table w; one thread per w at a
 * time, and each worker's ranges must ascend. Errors as tide_agg_push (the
 * caller then aborts the scan).
 * tide_agg_scan_end folds the worker tables into the parts on pool (one
 * task per part) after the last push, nranges being more than every range
 * pushed: 0; 1 when the scan cannot give one thread's bits (avg of int
 * past 2^52: a is then as before the scan, so the caller can push the
 * input instead); -ENOMEM or TIDE_ETOOBIG (a poisoned).
 * tide_agg_scan_abort drops the worker tables (a as before the scan). */
int tide_agg_scan_begin(tide_agg_t *a, uint32_t nworkers, tide_err_t *err);
int tide_agg_scan_push(tide_agg_t *a, uint32_t w, uint64_t range, const tide_agg_input_t *in, tide_err_t *err);
int tide_agg_scan_end(tide_agg_t *a, uint64_t nranges, struct tide_pool *pool, tide_err_t *err);
void tide_agg_scan_abort(tide_agg_t *a);

/* The pushes of a that ran on a pool (in->pool), since it was made. */
uint64_t tide_agg_par_pushes(const tide_agg_t *a);

/* ------------------------------------------------- session windows ---
 *
 * A session window (core/session.h) orders first/last by event time, not
 * by arrival: when two sessions fold into one, first must come from
 * whichever holds the earliest row and last from whichever holds the
 * latest, and either may be dst or src. */

enum {
  TIDE_AGG_MERGE_FIRST_SRC = 1, /* first takes src's value when src has one */
  TIDE_AGG_MERGE_LAST_DST = 2   /* last keeps dst's value when dst has one */
};

/* tide_agg_merge with first/last following flags (0: tide_agg_merge's
 * rules, as if src's rows came after dst's). Errors as tide_agg_merge. */
int tide_agg_merge_ex(tide_agg_t *a, uint32_t dst, uint32_t src, unsigned flags, tide_err_t *err);

/* The groups of the rows of keys, as tide_agg_update would find or create
 * them, but aggregating nothing: gids[i] = row i's group; new groups
 * have the state of no rows and take the gids tide_agg_groups(),
 * tide_agg_groups() + 1 ... in the order of their rows. Found and new
 * groups become dirty. Errors as tide_agg_update. */
int tide_agg_insert(tide_agg_t *a, const tide_batch_t *keys, uint32_t *gids, tide_err_t *err);

/* Aggregate n rows into the groups gids[0..n) (args as tide_agg_update,
 * n rows each), hashing no key: the rows of groups already found. With
 * only (nspecs flags, or NULL for all), just the aggregates flagged take
 * the rows (the others' args are not read). The groups become dirty.
 * Errors: TIDE_EINVAL (a gid out of range, an argument of the wrong
 * type; nothing changed), -ENOMEM (poisoned), TIDE_EPOISONED. */
int tide_agg_update_groups(tide_agg_t *a, const uint32_t *gids, uint32_t n, const tide_col_t *const *args,
                           const uint8_t *only, tide_err_t *err);

#endif
