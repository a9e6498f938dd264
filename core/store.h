/*
 * store.h: the durable topic store.
 *
 * A store is a directory:
 *
 *   <dir>/catalog/           LMDB environment: the catalog (the source of truth)
 *   <dir>/topics/<id>/p<k>/  partition k's hot segments: <base offset:20>.seg
 *   <cold>/<store id>/<id>/p<k>/  offloaded segments: <base offset:20>.seg.zst
 *                            (<cold> is the cold_dir option, default <dir>/cold)
 *
 * A topic has N partitions; a partition is an ordered list of segments; a
 * segment is an append-only file of checksummed blocks (seg.h), each block
 * one columnar batch. The catalog records, per segment, its offset range,
 * event-time range, committed byte size and state (open, sealed,
 * offloaded). A record exists once the catalog's committed segment covers
 * it: bytes past the committed size are a torn tail, which the next writer
 * truncates before writing.
 *
 * Concurrency. Every write (append, create, delete, retention, offload)
 * runs inside one LMDB write transaction, which LMDB serialises across
 * threads and processes; readers use read transactions and never block.
 * Several processes may open the same store; one process must open a
 * directory only once (LMDB's rule).
 *
 * Ownership. tide_store_open returns a store owned by the caller and closed by
 * tide_store_close. Topic handles (tide_topic_t) are owned by the store: they
 * stay valid until the store is closed or the topic is deleted through it.
 * Readers (tide_reader_t) and append sessions (tide_append_t) are owned by the
 * caller and must be closed before the store.
 */
#ifndef TIDE_STORE_H
#define TIDE_STORE_H

#include <stdint.h>

#include "batch.h"
#include "err.h"
#include "registry.h"
#include "schema.h"

typedef struct tide_store tide_store_t;
typedef struct tide_topic tide_topic_t;
typedef struct tide_reader tide_reader_t;
typedef struct tide_append tide_append_t;

#define TIDE_TOPIC_NAME_MAX 200
#define TIDE_PARTITIONS_MAX 1024
#define TIDE_TS_NONE INT64_MIN /* "no event time" */
#define TIDE_WRITER_ID_MAX 255 /* bytes of an idempotent writer's id (catalog.h: TIDE_WRITER_MAX) */

typedef struct tide_store_opts {
  int sync;             /* 1: segments and catalog are durable when a write returns */
  uint64_t map_size;    /* initial LMDB map size in bytes; 0 picks 64 MiB; it grows */
  const char *cold_dir; /* the cold tier; NULL: <dir>/cold */
} tide_store_opts_t;

typedef struct tide_topic_opts {
  uint32_t partitions;     /* 1..TIDE_PARTITIONS_MAX */
  tide_schema_t *schema;   /* borrowed; NULL: schemaless, one `value json` column */
  int64_t retention_ms;    /* drop sealed segments last written longer ago; -1: never */
  int64_t retention_bytes; /* keep the partition's total below this; -1: no limit */
  int64_t segment_bytes;   /* roll the open segment at this size; 0 picks 64 MiB */
  int64_t segment_ms;      /* roll the open segment at this age; -1: never */
  const char *time_column; /* event-time column; NULL: the first timestamp column */
  int ignore_unknown;      /* appends drop unknown JSON keys instead of refusing */
  tide_compat_t compat;
} tide_topic_opts_t;

/* What a topic handle knows of itself (a snapshot; refreshed by the store). */
typedef struct tide_topic_info {
  const char *name;
  uint32_t id;
  uint32_t partitions;
  int64_t retention_ms, retention_bytes, segment_bytes, segment_ms;
  int time_col;            /* index in schema, or -1: event time is append time */
  int schemaless;
  int ignore_unknown;
  tide_compat_t compat;
  uint32_t schema_version; /* latest registered */
  tide_schema_t *schema;   /* latest; borrowed, valid while the handle is */
  int64_t created_ms;
} tide_topic_info_t;

enum { TIDE_SEG_OPEN = 0, TIDE_SEG_SEALED = 1, TIDE_SEG_OFFLOADED = 2 };

typedef struct tide_seg_info {
  uint32_t partition;
  uint64_t base_offset, end_offset; /* [base, end) */
  int64_t min_ts, max_ts;           /* TIDE_TS_NONE when the segment has no time */
  uint64_t bytes;                   /* committed size of the hot file */
  uint64_t stored_bytes;            /* size where it lives now (compressed when offloaded) */
  int state;
  int64_t created_ms, last_write_ms;
} tide_seg_info_t;

typedef struct tide_range {
  uint32_t partition;
  uint64_t first, end; /* offsets [first, end) written by one append */
} tide_range_t;

/* ---- store ---- */

/* Open or create the store in dir (created if missing, with parents).
 * Cleans what a crash left behind (orphan files of uncommitted writes).
 * Errors: -errno (dir unusable), LMDB codes, TIDE_EFORMAT (a newer format). */
int tide_store_open(const char *dir, const tide_store_opts_t *o, tide_store_t **out, tide_err_t *err);
void tide_store_close(tide_store_t *s); /* closes every topic handle; NULL allowed */
const char *tide_store_dir(const tide_store_t *s);
/* The store's identity: 32 hex digits, fixed when the store was created. */
const char *tide_store_id(const tide_store_t *s);

/* Create a topic. Errors: TIDE_EEXIST, TIDE_EINVAL (name or options; err says
 * which), -errno, LMDB codes. */
int tide_store_create_topic(tide_store_t *s, const char *name, const tide_topic_opts_t *o,
                            tide_err_t *err);
/* Delete a topic and its files (hot and cold). Its handle becomes invalid.
 * TIDE_ENOTFOUND when there is no such topic. */
int tide_store_delete_topic(tide_store_t *s, const char *name, tide_err_t *err);
/* The handle of a topic (owned by the store). TIDE_ENOTFOUND. */
int tide_store_topic(tide_store_t *s, const char *name, tide_topic_t **out, tide_err_t *err);
/* Topic names in order; *names is one malloc'd block (array + strings), free() it. */
int tide_store_list(tide_store_t *s, char ***names, size_t *n, tide_err_t *err);
/* 0 when name is a valid topic name, else TIDE_EINVAL with the reason. */
int tide_topic_name_check(const char *name, tide_err_t *err);

/* ---- schema registry (rules in registry.h) ---- */

/* Register `schema` as the topic's next version, after checking it against
 * earlier versions under the topic's compatibility mode (set first to
 * `compat` unless it is -1). A schema identical to an existing version is
 * not registered again: *version is that version and *created 0.
 * Errors: TIDE_ENOTFOUND, TIDE_ESCHEMA (incompatible: err says which field
 * and which rule), TIDE_EINVAL (reserved names, the time column removed),
 * LMDB codes. Nothing is written on a refusal. */
int tide_store_register_schema(tide_store_t *s, const char *topic, tide_schema_t *schema, int compat,
                               uint32_t *version, int *created, tide_err_t *err);
/* Would `schema` be accepted now? 0, or TIDE_ESCHEMA/TIDE_EINVAL with the reason. */
int tide_store_check_schema(tide_store_t *s, const char *topic, tide_schema_t *schema, tide_err_t *err);
int tide_store_set_compat(tide_store_t *s, const char *topic, tide_compat_t mode, tide_err_t *err);
/* Version `version` of the topic's schema (0: the latest), with a new
 * reference for the caller. TIDE_ENOTFOUND for a version that does not exist. */
int tide_topic_schema(tide_topic_t *t, uint32_t version, tide_schema_t **out, tide_err_t *err);

/* ---- topics ---- */

/* Refresh and return the topic's metadata. The pointer stays valid until the
 * next call on this handle. */
int tide_topic_info(tide_topic_t *t, const tide_topic_info_t **out, tide_err_t *err);
/* Per-partition [earliest, end) offsets; arrays of info->partitions entries. */
int tide_topic_offsets(tide_topic_t *t, uint64_t *earliest, uint64_t *end, tide_err_t *err);
/* All segments, by partition then offset; *segs is malloc'd, free() it. */
int tide_topic_segments(tide_topic_t *t, tide_seg_info_t **segs, size_t *n, tide_err_t *err);
/* Drop sealed segments past retention (age: last write older than now_ms -
 * retention_ms; bytes: oldest first while the partition is over
 * retention_bytes). *dropped = segments dropped. */
int tide_topic_enforce_retention(tide_topic_t *t, int64_t now_ms, uint32_t *dropped, tide_err_t *err);
/* Move sealed segments whose end_offset <= before_offset to the cold tier. */
int tide_topic_offload(tide_topic_t *t, uint64_t before_offset, uint32_t *moved, tide_err_t *err);

/* ---- appends ----
 * An append session is atomic: every row given to it becomes visible at
 * tide_append_commit, or none does (tide_append_abort, an error, a crash).
 * It holds the store's write transaction from begin to commit/abort, so keep
 * it short and never leave it open across a call that can longjmp. */
int tide_append_begin(tide_topic_t *t, tide_append_t **out, tide_err_t *err);
/* Add rows [lo, hi) of b (the topic's latest schema). key_col >= 0 hashes
 * that column to a partition per row; -1 sends all rows of the session to
 * one partition, chosen round-robin per session. */
int tide_append_rows(tide_append_t *a, const tide_batch_t *b, uint32_t lo, uint32_t hi, int key_col,
                     tide_err_t *err);
/* Add every row of b, a batch of any schema, converted to the topic's latest
 * schema by field name (the sink path, where rows come from a query):
 *   - a column of b that the topic lacks is refused (TIDE_ESCHEMA naming it
 *     and the topic's fields), unless the topic ignores unknown fields;
 *   - a topic field b lacks takes its default, else NULL when nullable,
 *     else TIDE_ESCHEMA naming the field;
 *   - types must be equal, or int into double (widened);
 *   - a NULL in a NOT NULL field takes the field's default, else the call
 *     fails with TIDE_ESCHEMA naming the row (1-based) and the field.
 * A schemaless topic (one `value json` column) takes each row of b as one
 * JSON object, unless b itself is a lone `value json` column (stored as is).
 * key_col is a column of the topic's schema, or -1 (as tide_append_rows).
 * On failure nothing of b is added. */
int tide_append_batch(tide_append_t *a, const tide_batch_t *b, int key_col, tide_err_t *err);
/* Could rows of `schema` be appended with tide_append_batch (the checks on
 * names and types; NULL values are only seen per row)? 0 or TIDE_ESCHEMA
 * with the reason. */
int tide_topic_accepts(tide_topic_t *t, const tide_schema_t *schema, tide_err_t *err);

/* Make the session idempotent: it is writer `writer` (1..TIDE_WRITER_ID_MAX
 * bytes, any bytes) appending its sequence number `seq`. When the catalog
 * already records `seq` or a later one for this writer on this topic, the
 * append was done before (a replay after a crash): *skipped = 1, and the
 * session writes nothing (rows added are ignored, commit writes nothing
 * and reports no range). Otherwise *skipped = 0 and the commit records
 * (writer, seq) in the same LMDB transaction as the data, even when no row
 * was added. Call at most once per session, before adding rows.
 * Errors: TIDE_EINVAL (bad writer id, a second call), LMDB codes. */
int tide_append_writer(tide_append_t *a, const char *writer, size_t len, uint64_t seq, int *skipped,
                       tide_err_t *err);
/* The last sequence committed by `writer` to topic t: 0 and *found = 1 with
 * *seq, or *found = 0 when that writer never committed. */
int tide_topic_writer_seq(tide_topic_t *t, const char *writer, size_t len, uint64_t *seq, int *found,
                          tide_err_t *err);

/* Make it durable and visible. ranges (may be NULL) receives one entry per
 * partition written, *nranges their count (ranges needs room for
 * info->partitions entries). The session is freed whatever the result. */
int tide_append_commit(tide_append_t *a, tide_range_t *ranges, uint32_t *nranges, tide_err_t *err);
/* Undo everything the session wrote and free it. NULL allowed. */
void tide_append_abort(tide_append_t *a);

/* ---- an append on a thread of its own ----
 * The topic sink of a query with workers > 1 (lua/tide/query.lua, the
 * deferred sink) writes batch N this way while the loop thread goes on
 * with batch N + 1. tide_append_start starts one session on a thread of
 * its own: it begins it, makes it idempotent as `writer` with `seq`
 * (writer NULL: no writer), adds every batch of batches[0..n) as
 * tide_append_batch does (key_col as there), and commits it (durable when
 * the store syncs). The store owns the job until tide_append_finish joins
 * it; it takes the n batches (they are freed with the job, also when
 * start fails), so they cannot change or go away before the append is
 * done. One job per store at a time (-EBUSY). While it is in flight any
 * other call on the store, from the calling thread, first waits for it to
 * end (so it sees what the job wrote, and no memory of the store is used
 * by two threads at once); tide_store_close joins it and drops its result.
 * Errors of start: -EBUSY, TIDE_EINVAL (writer id), TIDE_ENOTFOUND (topic
 * deleted), -ENOMEM, a thread that cannot start.
 * tide_append_finish waits for the job, frees it and returns its result:
 * 0 with the ranges written (as tide_append_commit; ranges needs room for
 * the topic's partitions) and *skipped (1: the writer had recorded seq,
 * nothing was written), or the session's error (err as the session set it:
 * it names the topic, and the partition and segment file where one
 * failed); nothing of the batches is visible then. TIDE_EINVAL when no job
 * is in flight. */
int tide_append_start(tide_topic_t *t, tide_batch_t **batches, size_t n, int key_col, const char *writer,
                      size_t wlen, uint64_t seq, tide_err_t *err);
int tide_append_finish(tide_store_t *s, tide_range_t *ranges, uint32_t *nranges, int *skipped, tide_err_t *err);
/* A hold on the store's append in flight, for a waiter on another thread
 * (the checkpoint commit of the same batch: ckpt.h tide_ckpt_commit_after
 * with tide_append_release): NULL when there is none. While held, the job
 * is not freed: tide_append_finish and tide_store_close wait for every
 * hold to be released. tide_append_release, on any thread, releases one;
 * with wait it first waits until the append has ended and returns its
 * result (0: committed, durable when the store syncs; or its error code),
 * without wait it returns 0. */
void *tide_append_hold(tide_store_t *s);
int tide_append_release(void *job, int wait);
/* 1 while a job started by tide_append_start was not finished. */
int tide_append_pending(const tide_store_t *s);
/* The store a topic handle belongs to. */
tide_store_t *tide_topic_store(const tide_topic_t *t);

/* ---- reads ---- */

typedef struct tide_read_opts {
  int64_t partition;        /* -1: every partition, in order */
  uint64_t from, to;        /* offsets [from, to); to = UINT64_MAX: the end at open */
  int64_t from_time, to_time; /* event time [from_time, to_time); INT64_MIN/INT64_MAX: no bound */
  uint32_t schema_version;  /* rows come in this version's schema; 0: the latest */
} tide_read_opts_t;

void tide_read_opts_init(tide_read_opts_t *o);

/* A reader over a snapshot taken at open: it sees the records committed then. */
int tide_reader_open(tide_topic_t *t, const tide_read_opts_t *o, tide_reader_t **out, tide_err_t *err);
/* The next batch: 1 and *b (owned by the caller; a zero-copy view kept valid
 * by its own reference to the segment mapping when the block is wanted whole
 * and was written in the reader's schema version, else a copy), with its
 * partition and its rows' offsets (valid until the next call); rows outside
 * the requested offset and time ranges are already removed, and rows written
 * under another schema version are projected into the reader's. 0 at the end. <0 on error (TIDE_ECORRUPT names the
 * topic, partition, segment and offset). */
int tide_reader_next(tide_reader_t *r, tide_batch_t **b, uint32_t *partition, const uint64_t **offsets,
                     tide_err_t *err);
void tide_reader_close(tide_reader_t *r); /* NULL allowed */

#endif
