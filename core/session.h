/*
 * session.h: session windows (Spark's session_window, SEMANTICS.md s.7)
 * over core/agg.
 *
 * A row at event time t opens the session [t, t + gap). Within one key,
 * sessions whose intervals overlap or touch (the next starts at or before
 * the end of the current one) merge into one, so one row may join two
 * sessions. A session spans [start, last + gap), start and last being
 * its earliest and latest event times. Rows with a NULL time belong to no
 * session.
 *
 * The sessions are the groups of one aggregation (agg.h), keyed by the
 * user's keys and a session number unique over the state's life, with
 * the user's aggregates and two more: min(t) (the start) and max(t) (the
 * last time). So the state records are the aggregation's records
 * (docs/FORMAT.md, "Session window state"), sessions merge with
 * tide_agg_merge_ex and leave with tide_agg_remove. A second aggregation
 * with no aggregate numbers the keys that have sessions (kid), and an
 * array of every session sorted by (kid, start) is the index a push
 * sweeps:
 *
 *   push(batch)  valid rows (time not NULL, not late) -> kid per row
 *                -> sort by (kid, t, row) -> per key, sweep the rows'
 *                intervals and the stored sessions in start order into
 *                runs -> each run is one session: a new one, or the
 *                earliest stored session of the run (it keeps its state
 *                id), into which the others and the run's rows fold.
 *
 * first/last follow event time, not arrival: first is the value of the
 * row with the smallest time (ties: the one that arrived first), last of
 * the largest (ties: the one that arrived last). Spark sorts a key's rows
 * by session start before aggregating them, so its first/last are
 * event-time ordered too; this way the result is the same however the
 * rows are cut into batches.
 *
 * Invariants: the sessions of one key never overlap or touch; every key
 * of the key aggregation has at least one session; the index holds one
 * entry per group of the session aggregation, sorted by (kid, start)
 * (while records are being restored it is in restore order, sorted on
 * the first push or eviction).
 *
 * Streaming state. Sessions get state ids (sids) from the aggregation; a
 * merged session keeps the sid of its earliest stored part. The changes
 * since the last tide_session_clear_changes are the created or changed
 * sessions (their records) and the sids of removed sessions that had
 * reached the checkpoint (restored, or there at the last clear; a
 * session created and removed between two clears needs no delete).
 * Clearing says the changes were committed.
 */
#ifndef TIDE_SESSION_H
#define TIDE_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include "agg.h"
#include "batch.h"
#include "buf.h"
#include "err.h"
#include "schema.h"

typedef struct tide_session tide_session_t;

/* A new session window aggregation over the keys of `keys` (a reference
 * is taken; at least one column for a streaming query, none allowed for
 * a static one), with the aggregates specs[0..nspecs) (as tide_agg_new)
 * and gap > 0 ms. `out` (a reference is taken) is the output schema: the
 * key fields with window_start and window_end (timestamps) inserted at
 * position wpos (0-based, <= number of keys), then one field per spec;
 * its types must be those (TIDE_EINVAL naming the field otherwise).
 * Errors: TIDE_EINVAL (gap, wpos, an aggregate that does not apply, the
 * output schema), -ENOMEM. */
int tide_session_new(tide_schema_t *keys, const tide_agg_spec_t *specs, uint32_t nspecs, int64_t gap,
                     tide_schema_t *out, uint32_t wpos, tide_session_t **s, tide_err_t *err);
void tide_session_free(tide_session_t *s); /* NULL allowed */

/* The output schema (borrowed). */
tide_schema_t *tide_session_schema(const tide_session_t *s);

/* In/out of tide_session_push. */
typedef struct tide_session_feed {
  int has_late;       /* in: 1 when late_bound applies */
  int64_t late_bound; /* in: a row with t + gap <= late_bound is late */
  uint8_t *late;      /* out, when not NULL: per input row, 1 when late */
  uint32_t pushed;    /* out: rows aggregated */
  uint32_t late_rows; /* out: rows left out as late */
  uint32_t null_times; /* out: rows left out for a NULL time */
  uint32_t updated;   /* out: sessions this push created or changed that
                       * were not changes already */
} tide_session_feed_t;

/* Add the rows of keys (a batch of the key schema's types), with event
 * times t (timestamp column, may hold NULLs) and args[i] the argument
 * column of spec i (NULL for count(*)), all of keys->nrows rows. Errors:
 * TIDE_EINVAL (a column of the wrong type or length; nothing changed),
 * -ENOMEM or TIDE_ETOOBIG (the state is then poisoned: later calls
 * return TIDE_EPOISONED). */
int tide_session_push(tide_session_t *s, const tide_batch_t *keys, const tide_col_t *t, const tide_col_t *const *args,
                      tide_session_feed_t *f, tide_err_t *err);

/* tide_session_push over one batch laid out as: the key columns, the
 * event time, then one argument column per aggregate other than count(*),
 * in order (what the planner projects). Errors as tide_session_push;
 * TIDE_EINVAL for another column count. */
int tide_session_push_batch(tide_session_t *s, const tide_batch_t *b, tide_session_feed_t *f, tide_err_t *err);

/* Every session's output row, in creation order (a merged session takes
 * the place of its earliest stored part). *out is new, the caller's.
 * Errors: -ENOMEM, TIDE_ETOOBIG, TIDE_EPOISONED. */
int tide_session_result(tide_session_t *s, tide_batch_t **out, tide_err_t *err);

/* Remove the sessions that end at or before watermark (last + gap <=
 * watermark: append mode's final sessions) and hand back their rows in
 * creation order (an empty batch when none). Errors: -ENOMEM,
 * TIDE_ETOOBIG, TIDE_EPOISONED (nothing removed, except that an
 * out-of-memory failure part way poisons the state). */
int tide_session_evict(tide_session_t *s, int64_t watermark, tide_batch_t **out, tide_err_t *err);

uint64_t tide_session_count(const tide_session_t *s); /* sessions held */
size_t tide_session_bytes(const tide_session_t *s);   /* memory held, approximately */

/* --------------------------------------------------- streaming state --- */

/* *n = the number of sessions created or changed since the last clear.
 * Sessions that folded into others leave the aggregation here if they
 * have not yet. Errors: -ENOMEM, TIDE_ETOOBIG, TIDE_EPOISONED. */
int tide_session_changes(tide_session_t *s, uint32_t *n, tide_err_t *err);

/* The i-th (< tide_session_changes' n) of them, in creation order: *sid
 * gets its state id and its record is appended to out (the buffer is not
 * reset; out NULL: the sid only). Errors: TIDE_EINVAL (i out of range), -ENOMEM, TIDE_EPOISONED. */
int tide_session_change(const tide_session_t *s, uint32_t i, uint64_t *sid, tide_buf_t *out, tide_err_t *err);

/* The state ids of the sessions removed since the last clear that had a
 * record in the checkpoint (restored, or there at the last clear),
 * ascending; *sids is borrowed until the next call that changes s. */
size_t tide_session_deleted(tide_session_t *s, const uint64_t **sids);

/* Forget the changes: they are committed. */
void tide_session_clear_changes(tide_session_t *s);

/* Add the session described by the record p[0..n) under state id sid, not
 * as a change. Everything is checked before anything is kept; on error
 * the state is as before. Errors, with err->msg naming what is wrong:
 *   TIDE_EFORMAT   a format version this build does not read, or a record
 *                  of the session format before the aggregation records
 *                  (FORMAT.md: such checkpoints are refused)
 *   TIDE_ECORRUPT  a damaged record (as tide_agg_restore), a session
 *                  without times, a session number below 1, a session
 *                  that overlaps or touches another of its key
 *   TIDE_ESCHEMA   a record of another plan
 *   -ENOMEM, TIDE_ETOOBIG, TIDE_EPOISONED */
int tide_session_restore(tide_session_t *s, uint64_t sid, const void *p, size_t n, tide_err_t *err);

#endif
