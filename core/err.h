/*
 * err.h: tide's error codes and the error detail carried out of the core.
 *
 * Every core function that can fail returns an int: 0 for success, -errno for
 * a failure of the operating system, an LMDB code (MDB_* in -30800..-30780),
 * or a TIDE_E* code from the reserved band below. tide_strerror() covers all
 * three; tide_errname() gives the short symbolic name ("ENOENT",
 * "MDB_MAP_FULL", "ECORRUPT") that the Lua layer returns as the third value of
 * a failure tuple.
 *
 * Functions that can say more than the code (which row, which field, which
 * segment) also take a tide_err_t *, which they fill on failure. Passing NULL
 * is allowed; the detail is then dropped.
 */
#ifndef TIDE_ERR_H
#define TIDE_ERR_H

#include <stddef.h>

/* The reserved band: far below errno values and LMDB's -30800 band. */
#define TIDE_EBASE (-41000)
enum {
  TIDE_ECORRUPT = TIDE_EBASE - 1, /* checksum or structure mismatch in stored data */
  TIDE_EFORMAT = TIDE_EBASE - 2,  /* unknown on-disk format version */
  TIDE_ESCHEMA = TIDE_EBASE - 3,  /* a value or row does not fit the schema */
  TIDE_EPARSE = TIDE_EBASE - 4,   /* malformed input text (JSON, DDL, timestamp) */
  TIDE_EEXIST = TIDE_EBASE - 5,   /* the named thing already exists */
  TIDE_ENOTFOUND = TIDE_EBASE - 6,/* the named thing does not exist */
  TIDE_EINVAL = TIDE_EBASE - 7,   /* an argument the caller should have checked */
  TIDE_ECLOSED = TIDE_EBASE - 8,  /* use of a closed object */
  TIDE_ETOOBIG = TIDE_EBASE - 9,  /* a size limit of the format was exceeded */
  TIDE_EPOISONED = TIDE_EBASE - 10,/* an earlier write failed; the object refuses more */
  TIDE_ELAST = TIDE_EBASE - 11
};

/* Failure detail. code mirrors the return value; msg is a complete sentence
 * fragment such as "row 3: field 'signal': expected int, got \"abc\"". */
typedef struct tide_err {
  int code;
  char msg[512];
} tide_err_t;

/* Human text for any code this library returns. Never NULL. */
const char *tide_strerror(int rc);
/* Symbolic name for any code this library returns ("ENOENT", "ECORRUPT"). */
const char *tide_errname(int rc);

/* An LMDB return code as one of ours. LMDB returns system errors as
 * positive errno values: they become -errno. LMDB also reports a short
 * write as EIO, and a short write is what a file system that fills up
 * during the write gives: EIO becomes -ENOSPC when the file system holding
 * `dir` has less than TIDE_LOW_SPACE bytes left for this process, so the
 * message says what happened ("No space left on device", as the store's
 * own writes say). dir may be NULL (no such check). */
#define TIDE_LOW_SPACE (1 << 20)
int tide_err_lmdb(int rc, const char *dir);

/* Fill err (if not NULL) with code and a printf-formatted message; returns
 * code, so that `return tide_err_set(err, TIDE_EPARSE, "...")` reads well. */
int tide_err_set(tide_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix err->msg with more context ("topic 'x' partition 0: " + old msg). */
int tide_err_prefix(tide_err_t *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
