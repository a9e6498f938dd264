/*
 * ckpt.h: a streaming query's checkpoint store, one LMDB environment per
 * query (DESIGN.md, "State store" and "Stream execution").
 *
 * A checkpoint is a directory:
 *
 *   <dir>/query.lock          flock'ed (exclusive) by the query that runs on it;
 *                             holds that process's pid while it runs
 *   <dir>/data.mdb, lock.mdb  the LMDB environment
 *
 * Named databases (batch ids are u64 big-endian keys, so that LMDB's byte
 * order is numeric order):
 *
 *   meta            key text -> value text; "format" -> "1" (reserved),
 *                   the engine's "query_id", "name", "plan", ...
 *   offsets         batch id -> offset-log entry N (JSON text)
 *   commits         batch id -> commit-log entry N (JSON text)
 *   state:<name>    one per stateful operator: key bytes -> value bytes
 *
 * Invariants. Commit entry N and every state change of batch N are written
 * by one LMDB write transaction (tide_ckpt_commit), so after any crash
 * either all of them are there or none is. An offset entry, once written,
 * never changes (tide_ckpt_write_offsets refuses other text). Only one
 * writer exists per checkpoint: the exclusive flock on query.lock is taken
 * before the environment is opened, so a second open in any process fails
 * without touching LMDB (LMDB forbids opening one environment twice in a
 * process). Read-only opens take no lock and never block a writer.
 *
 * Transactions never outlive a call: every function begins and ends its
 * own, so the map can grow between calls (tide_ckpt_commit grows it before
 * a write and again on MDB_MAP_FULL, retrying with the same input).
 *
 * Errors: 0, -errno, an LMDB code or a TIDE_E* code (err.h); err->msg
 * starts with "checkpoint <dir>: " and says what failed and why.
 */
#ifndef TIDE_CKPT_H
#define TIDE_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/* On disk: the value of meta "format" (decimal text). */
#define TIDE_CKPT_VERSION 1u

/* Limits checked by the callers before a write (LMDB's key limit is 511). */
#define TIDE_CKPT_NAME_MAX 200 /* state name, bytes */
#define TIDE_CKPT_KEY_MAX 511  /* state key and meta key, bytes */
#define TIDE_CKPT_STATES_MAX 250 /* state databases per checkpoint */

enum {
  TIDE_CKPT_READ_ONLY = 1, /* no lock, no writes; the checkpoint must exist */
  TIDE_CKPT_NOSYNC = 2     /* MDB_NOSYNC: commits are not flushed to disk */
};

typedef struct tide_ckpt tide_ckpt_t;

/* An integer key (a state id, a log id): 8 bytes big-endian, so that keys
 * sort as the integers do. */
void tide_ckpt_key_u64(unsigned char p[8], uint64_t v);

/* One change of a state database: put key -> val, or delete key when val
 * is NULL. The memory is the caller's and must stay valid during the call. */
typedef struct tide_ckpt_op {
  const void *key;
  size_t klen;
  const void *val; /* NULL: delete */
  size_t vlen;
} tide_ckpt_op_t;

/* The changes of one state database, applied in array order. */
typedef struct tide_ckpt_change {
  const char *state; /* name, 1..TIDE_CKPT_NAME_MAX bytes, no NUL inside */
  size_t state_len;
  const tide_ckpt_op_t *ops;
  size_t nops;
} tide_ckpt_change_t;

typedef struct tide_ckpt_state_stat {
  char name[TIDE_CKPT_NAME_MAX + 1];
  uint64_t entries;
  uint64_t bytes; /* pages the database uses, times the page size */
} tide_ckpt_state_stat_t;

typedef struct tide_ckpt_stats {
  uint64_t offsets, commits;       /* entries in each log */
  int64_t first_id;                /* smallest id in either log; -1 when both are empty */
  int64_t last_offset_id, last_commit_id; /* -1 when the log is empty */
  uint64_t map_bytes, file_bytes;  /* LMDB map size; size of data.mdb */
  size_t nstates;                  /* tide_ckpt_state_stat_t records in the states buffer */
} tide_ckpt_stats_t;

/* Open the checkpoint in dir.
 *   flags 0 or TIDE_CKPT_NOSYNC: create dir (and missing parents) when
 *     needed, take the exclusive lock (a holder anywhere gives -EBUSY,
 *     "checkpoint <dir>: in use by another query"), open or create the
 *     environment.
 *   TIDE_CKPT_READ_ONLY: dir must hold a checkpoint (-ENOENT otherwise); no
 *     lock is taken, so it works while a query runs in another process;
 *     it is refused (-EBUSY) while a query of this process holds it.
 * Errors: -errno of mkdir/open/flock, LMDB codes (MDB_INVALID for a file
 * that is not LMDB's), TIDE_ECORRUPT (data.mdb shorter than its pages),
 * TIDE_EFORMAT (another format version). *out is set on success only. */
int tide_ckpt_open(const char *dir, int flags, tide_ckpt_t **out, tide_err_t *err);

/* Close the environment and release the lock. NULL is allowed. */
void tide_ckpt_close(tide_ckpt_t *c);

/* The directory as given to open; valid until close. */
const char *tide_ckpt_dir(const tide_ckpt_t *c);
int tide_ckpt_read_only(const tide_ckpt_t *c);

/* Reads. Each fills out (its previous contents dropped) with a copy of the
 * value; MDB_NOTFOUND when there is none. */
int tide_ckpt_meta_get(tide_ckpt_t *c, const char *key, size_t klen, tide_buf_t *out, tide_err_t *err);
int tide_ckpt_offsets_get(tide_ckpt_t *c, uint64_t n, tide_buf_t *out, tide_err_t *err);
int tide_ckpt_commit_get(tide_ckpt_t *c, uint64_t n, tide_buf_t *out, tide_err_t *err);

/* The last ids of the offset and commit logs, -1 when a log is empty. */
int tide_ckpt_latest(tide_ckpt_t *c, int64_t *last_offset, int64_t *last_commit, tide_err_t *err);

/* Writes: durable when they return (unless NOSYNC). On a read-only
 * checkpoint they return TIDE_EINVAL. */
int tide_ckpt_meta_set(tide_ckpt_t *c, const char *key, size_t klen, const void *val, size_t vlen,
                       tide_err_t *err);

/* Write offset-log entry n. Same text as an existing entry n: nothing is
 * written, 0. Other text: TIDE_EEXIST, "offset log N exists with other
 * offsets". */
int tide_ckpt_write_offsets(tide_ckpt_t *c, uint64_t n, const void *text, size_t len, tide_err_t *err);

/* In ONE write transaction: apply every change (puts and deletes; deleting
 * an absent key is no error), then write commit-log entry n. Commit entry n
 * existing already: TIDE_EEXIST, nothing written. On any failure nothing is
 * written. Grows the map as needed. */
int tide_ckpt_commit(tide_ckpt_t *c, uint64_t n, const void *text, size_t len, const tide_ckpt_change_t *changes,
                     size_t nchanges, tide_err_t *err);

/* The same commit, overlapped with other work of the caller (the stream
 * engine's sink, with workers > 1). tide_ckpt_commit_start checks the
 * input as tide_ckpt_commit does, then a thread of its own begins the
 * write transaction and applies every change, and waits at the gate:
 * nothing of batch n can become durable (or visible) before
 * tide_ckpt_commit_finish opens it with the commit entry's text, which is
 * then put and the transaction committed (durable when it returns, unless
 * NOSYNC). tide_ckpt_commit_cancel aborts it: nothing is written. Either
 * one joins the thread and frees the handle; exactly one of them must be
 * called (tide_ckpt_close cancels one still in flight). Until then every
 * other call on c that needs a transaction fails with -EBUSY (instead of
 * waiting for the writer lock), and `changes` with every key and value it
 * points to must stay valid and unchanged.
 * Errors: start: those of tide_ckpt_commit's checks, -EBUSY with a commit
 * in flight, -ENOMEM, a thread that cannot start; finish: those of
 * tide_ckpt_commit. */
typedef struct tide_ckpt_async tide_ckpt_async_t;
int tide_ckpt_commit_start(tide_ckpt_t *c, uint64_t n, const tide_ckpt_change_t *changes, size_t nchanges,
                           tide_ckpt_async_t **out, tide_err_t *err);
int tide_ckpt_commit_finish(tide_ckpt_async_t *a, const void *text, size_t len, tide_err_t *err);
void tide_ckpt_commit_cancel(tide_ckpt_async_t *a);

/* tide_ckpt_commit_finish in two steps, so that the caller can work while
 * the transaction commits: _open opens the gate and returns at once (on
 * failure, out of memory, the commit is cancelled and a is freed); _wait
 * joins the thread, frees a and returns the commit's result. With `next`
 * (not NULL) offset-log entry n + 1 is put in the same transaction: the
 * next batch's offsets become durable with batch n's commit, as if
 * written right after it (an offset entry n + 1 already there is
 * TIDE_EEXIST: it cannot be, since entry n + 1 is only ever written
 * after commit n). Between _open and _wait, a call on c that needs a
 * transaction first waits until the commit is done (so it reads what the
 * commit wrote); a new commit_start or commit is refused (-EBUSY) until
 * _wait. tide_ckpt_commit_cancel after _open waits for the commit
 * instead (the gate is open). */
int tide_ckpt_commit_open(tide_ckpt_async_t *a, const void *text, size_t len, const void *next, size_t next_len,
                          tide_err_t *err);
int tide_ckpt_commit_wait(tide_ckpt_async_t *a, tide_err_t *err);

/* A condition of the commit, set before _open (the stream engine's
 * deferred sink: batch n's output written on another thread, which must
 * be durable before commit n). Once the gate is open and the changes are
 * written, the commit's thread calls after(arg, 1), which may block, and
 * commits only when it returns 0; otherwise it writes nothing and _wait
 * returns -ECANCELED ("cancelled: the batch's output failed"). after is
 * called exactly once, on the commit's thread, in every case: after(arg,
 * 0) when the commit does not get that far (cancelled, failed before),
 * so that arg may be a hold the callee releases then (store.h:
 * tide_append_hold, tide_append_release). */
void tide_ckpt_commit_after(tide_ckpt_async_t *a, int (*after)(void *arg, int wait), void *arg);

/* Delete offset and commit entries with id < before, in one transaction.
 * *removed (may be NULL) gets the number of entries deleted. */
int tide_ckpt_purge(tide_ckpt_t *c, uint64_t before, uint64_t *removed, tide_err_t *err);

/* Copy up to max_entries entries (stopping early once max_bytes are
 * copied) of state `name` with key > after (or from the first key when
 * after is NULL), in key order, into out as records
 *   size_t klen | size_t vlen | key bytes | value bytes
 * (sizes in host order, unaligned). *n gets the number of records; *done is
 * set when the state has no entry past the last one copied. An unknown
 * state is empty. */
int tide_ckpt_state_scan(tide_ckpt_t *c, const char *name, size_t name_len, const void *after, size_t after_len,
                         size_t max_entries, size_t max_bytes, tide_buf_t *out, size_t *n, int *done,
                         tide_err_t *err);

/* Called with one stored value while a read transaction is open: fn must
 * not longjmp (no Lua), and the value is valid during the call only.
 * Returns 0, or an error code (err set) that stops the walk. */
typedef int (*tide_ckpt_val_fn)(void *arg, uint64_t id, const void *val, size_t len, tide_err_t *err);

/* Look values up through an index, in ONE read transaction (bounded
 * memory for aggregation state, docs/FORMAT.md "State index"): for each
 * p of prefixes[0..n) (ascending), every key of state `index` that is p
 * (8 bytes big-endian) followed by an id (8 bytes big-endian), then that
 * id's value in state `name` (its key the id, 8 bytes big-endian), handed
 * to fn. Index entries whose id has no value are skipped; absent states
 * are empty. Errors: LMDB codes with err naming the state, or fn's. */
int tide_ckpt_state_lookup(tide_ckpt_t *c, const char *name, size_t name_len, const char *index, size_t index_len,
                           const uint64_t *prefixes, size_t n, tide_ckpt_val_fn fn, void *arg, tide_err_t *err);

/* Merge the index runs srcs[0..nsrc) (at most 64 states whose keys are a
 * u64 hash and a u64 id, 16 bytes big-endian, values empty) into the new
 * state dst: every entry, in key order (with gc: only those whose id
 * still has a value in state `rec`; entries of deleted ids are dropped),
 * appended to dst, about a million per write transaction (so that what
 * LMDB keeps in memory until a commit stays small); the transaction that
 * appends the last ones also drops the sources, and dst when it is empty.
 * A dst left by a failure or a crash part way holds a prefix of the
 * merge, beside its sources: it may be merged into again (it goes on
 * from its last key), or dropped. *count gets the entries of dst. Grows
 * the map as needed. */
int tide_ckpt_index_merge(tide_ckpt_t *c, const char *rec, size_t rec_len, const char *const *srcs,
                          const size_t *src_lens, size_t nsrc, const char *dst, size_t dst_len, int gc,
                          uint64_t *count, tide_err_t *err);

/* Drop state `name` (its database and entries) in one transaction;
 * absent: nothing to do. */
int tide_ckpt_state_drop(tide_ckpt_t *c, const char *name, size_t name_len, tide_err_t *err);

/* Drop this process's mapping of the file's pages (they stay in the page
 * cache and come back on the next read): after reading much of a large
 * state at once, the process's resident size goes back down. Never
 * fails; no transaction needs to be closed. */
void tide_ckpt_release_pages(tide_ckpt_t *c);

/* The number of entries of state `name` and its largest key read as a
 * u64 (8 bytes big-endian; 0 when the state is empty, absent, or its
 * largest key is not 8 bytes). */
int tide_ckpt_state_tail(tide_ckpt_t *c, const char *name, size_t name_len, uint64_t *entries, uint64_t *last,
                         tide_err_t *err);

/* Fill st, and append st->nstates tide_ckpt_state_stat_t records (by name
 * order) to states (its previous contents dropped). */
int tide_ckpt_stats(tide_ckpt_t *c, tide_ckpt_stats_t *st, tide_buf_t *states, tide_err_t *err);

#endif
