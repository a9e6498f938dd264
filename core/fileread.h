/*
 * fileread.h: byte ranges of files read and decoded into batches, on the
 * calling thread or on a thread of their own (the file source's next
 * trigger decoded while the loop thread executes and commits this one).
 *
 * A read (tide_fread_t) is made from a list of ranges {path, from, to,
 * line, header}: bytes [from, to) of the file, whose byte `from` starts
 * line `line`; with header set the range's first line is a CSV header and
 * is skipped (it still counts as a line). Each range is read in chunks of
 * TIDE_FREAD_CHUNK bytes with pread; the complete records of each chunk
 * (and of what the last one left) are decoded by tide_decode_par (decode.h)
 * into one batch per decode call, as the Lua reader did chunk by chunk.
 * The result is what reading the ranges one after another on one thread
 * gives: the batches (empty ones dropped), the records dropped, the dead
 * records (with their range), and each range's line number after its end.
 *
 * Threads. tide_fread_start runs the read on a new thread (with a pool of
 * its own: the caller's pool stays the caller's); the caller may then do
 * anything but touch the read until tide_fread_wait has joined it.
 * A read that was not started runs in tide_fread_wait, on the caller, over
 * the pool given there (NULL: one thread). The reading thread touches only
 * the read's own memory and the schema's reference count (atomic): it
 * never calls Lua. So the result is the same whichever thread ran it.
 *
 * Errors stop the read at the range that failed; what ran before is kept
 * until close but is not a result. The kinds:
 *   TIDE_FREAD_OPEN   the file cannot be opened (err: strerror)
 *   TIDE_FREAD_SHORT  the file has fewer bytes than the range (err: how many)
 *   TIDE_FREAD_DECODE tide_decode_par failed (err "line N: reason"; rc its code)
 *   TIDE_FREAD_UNFINISHED the range ends inside a record (n bytes left; line)
 *   TIDE_FREAD_IO     a read failed (err: strerror)
 */
#ifndef TIDE_FILEREAD_H
#define TIDE_FILEREAD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "decode.h"
#include "err.h"

#define TIDE_FREAD_CHUNK (4u << 20) /* bytes read at a time from a file */

enum {
  TIDE_FREAD_OK = 0,
  TIDE_FREAD_OPEN = 1,
  TIDE_FREAD_SHORT = 2,
  TIDE_FREAD_DECODE = 3,
  TIDE_FREAD_UNFINISHED = 4,
  TIDE_FREAD_IO = 5,
};

typedef struct tide_fread_range {
  char *path; /* owned by the read (copied by tide_fread_add) */
  int64_t from, to, line;
  int header;
  int64_t end_line; /* result: the line number after the range */
} tide_fread_range_t;

/* A dead record of the result: decode.h's record and its range's index. */
typedef struct tide_fread_dead {
  size_t range;
  tide_bad_record_t rec; /* reason and text owned by the read */
} tide_fread_dead_t;

typedef struct tide_fread {
  /* the request */
  tide_schema_t *schema; /* a reference */
  tide_decode_opts_t opts;
  tide_fread_range_t *ranges;
  size_t nranges, cap;
  /* the result, valid after tide_fread_wait */
  tide_batch_t **batches;
  size_t nbatches, bcap;
  uint64_t dropped;
  int64_t dropped_lines[TIDE_DECODE_KEEP];
  uint32_t ndropped_lines;
  tide_fread_dead_t *dead;
  size_t ndead, dcap;
  int kind;      /* TIDE_FREAD_OK or the error's kind */
  int rc;        /* the error's code (-errno, TIDE_EPARSE, ...) */
  size_t failed; /* the range that failed */
  int64_t line;  /* TIDE_FREAD_UNFINISHED: the line of the record left */
  int64_t left;  /* TIDE_FREAD_UNFINISHED: its bytes; TIDE_FREAD_SHORT: the bytes read */
  tide_err_t err;
  /* the thread */
  int state;   /* 0 new, 1 started, 2 done */
  int threads; /* of the started read's pool */
  struct tide_pool *pool; /* tide_fread_start_on's (a reference) until the thread ends */
  pthread_t thread;
} tide_fread_t;

/* A new read of nothing yet, decoding into batches of s (a reference is
 * taken) with o. Returns NULL on out of memory. */
tide_fread_t *tide_fread_new(tide_schema_t *s, const tide_decode_opts_t *o);

/* Add range [from, to) of path (copied), starting at line `line`; header: its
 * first line is a CSV header. Only before start / wait. 0 or -ENOMEM. */
int tide_fread_add(tide_fread_t *r, const char *path, int64_t from, int64_t to, int64_t line, int header);

/* Run the read on a thread of its own, decoding over a pool of its own of
 * `threads` threads (that thread and threads - 1 workers; 1: alone). 0, or
 * the -errno of pthread_create (the read then runs in tide_fread_wait).
 * Once only. */
int tide_fread_start(tide_fread_t *r, int threads);

/* Run the read on a thread of its own that decodes over `pool`, shared
 * with its other callers (tide_pool_run of two threads at once: the
 * pool's workers, that thread and the other caller, so no more threads
 * compute than the pool has, plus the callers). A reference to pool is
 * held until the thread ends (so the caller may close pool meanwhile). 0,
 * or the -errno of pthread_create (the read then runs in tide_fread_wait).
 * Once only. */
int tide_fread_start_on(tide_fread_t *r, struct tide_pool *pool);

/* Wait for a started read to finish, or run one not started here, over
 * pool (NULL: on this thread alone). Afterwards r->kind says how it went.
 * Idempotent: a second call returns at once. */
void tide_fread_wait(tide_fread_t *r, struct tide_pool *pool);

/* Take the batches of the result: *out (an array of n, malloc'd) now
 * belongs to the caller, with every batch in it. 0 or -ENOMEM. */
tide_batch_t **tide_fread_take(tide_fread_t *r, size_t *n);

/* Join a started read and free everything (NULL is allowed). */
void tide_fread_free(tide_fread_t *r);

/* The end of a cut in bytes [p, to) of path, for the file source's byte
 * limit: just after the last LF in [p, p + budget) when there is one
 * (*cut set); else, with must, just after the first LF at or past p + budget,
 * or `to` when none comes before it; else *cut = -1. Reads backwards from
 * p + budget in blocks (a line end is usually near), never past `to`.
 * Returns 0, or -errno of open (err names why) or of a read. */
int tide_file_cut(const char *path, int64_t p, int64_t budget, int must, int64_t to, int64_t *cut, tide_err_t *err);

#endif
