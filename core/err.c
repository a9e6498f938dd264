/*
 * err.c: one strerror and one errname for every code the core returns.
 *
 * Codes live in three disjoint negative bands:
 *   -1 .. -4095            -errno from the operating system
 *   MDB_KEYEXIST .. MDB_LAST_ERRCODE (-30799 .. -30780)   LMDB
 *   TIDE_ELAST+1 .. TIDE_EBASE-1 (-41001 .. -41010)      tide's own
 * Anything else is reported as "unknown error <n>" / "E<n>". The functions
 * return pointers to constant strings, except for an unknown errno whose name
 * is formatted into a thread-local buffer.
 */
#include <errno.h>
#include <lmdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "err.h"

/* ---------------------------------------------------------------- tables */

static const char *const tide_names[] = {
    "ECORRUPT", "EFORMAT", "ESCHEMA", "EPARSE", "EEXIST",
    "ENOTFOUND", "EINVAL", "ECLOSED", "ETOOBIG", "EPOISONED",
};

static const char *const tide_texts[] = {
    "stored data is corrupt (checksum or structure mismatch)",
    "unknown on-disk format version",
    "value does not fit the schema",
    "malformed input text",
    "already exists",
    "not found",
    "invalid argument",
    "object is closed",
    "size limit exceeded",
    "object is poisoned by an earlier failed write",
};

static const char *const mdb_names[] = {
    "MDB_KEYEXIST", "MDB_NOTFOUND", "MDB_PAGE_NOTFOUND", "MDB_CORRUPTED",
    "MDB_PANIC", "MDB_VERSION_MISMATCH", "MDB_INVALID", "MDB_MAP_FULL",
    "MDB_DBS_FULL", "MDB_READERS_FULL", "MDB_TLS_FULL", "MDB_TXN_FULL",
    "MDB_CURSOR_FULL", "MDB_PAGE_FULL", "MDB_MAP_RESIZED", "MDB_INCOMPATIBLE",
    "MDB_BAD_RSLOT", "MDB_BAD_TXN", "MDB_BAD_VALSIZE", "MDB_BAD_DBI",
};

static const struct { int no; const char *name; } errno_names[] = {
    {EPERM, "EPERM"},     {ENOENT, "ENOENT"},       {ESRCH, "ESRCH"},
    {EINTR, "EINTR"},     {EIO, "EIO"},             {ENXIO, "ENXIO"},
    {E2BIG, "E2BIG"},     {EBADF, "EBADF"},         {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"},   {EACCES, "EACCES"},       {EFAULT, "EFAULT"},
    {EBUSY, "EBUSY"},     {EEXIST, "EEXIST"},       {EXDEV, "EXDEV"},
    {ENODEV, "ENODEV"},   {ENOTDIR, "ENOTDIR"},     {EISDIR, "EISDIR"},
    {EINVAL, "EINVAL"},   {ENFILE, "ENFILE"},       {EMFILE, "EMFILE"},
    {ETXTBSY, "ETXTBSY"}, {EFBIG, "EFBIG"},         {ENOSPC, "ENOSPC"},
    {ESPIPE, "ESPIPE"},   {EROFS, "EROFS"},         {EMLINK, "EMLINK"},
    {EPIPE, "EPIPE"},     {ERANGE, "ERANGE"},       {EDEADLK, "EDEADLK"},
    {ENAMETOOLONG, "ENAMETOOLONG"}, {ENOLCK, "ENOLCK"}, {ENOSYS, "ENOSYS"},
    {ENOTEMPTY, "ENOTEMPTY"}, {ELOOP, "ELOOP"},     {EOVERFLOW, "EOVERFLOW"},
    {ENOTSUP, "ENOTSUP"}, {EADDRINUSE, "EADDRINUSE"}, {ECONNREFUSED, "ECONNREFUSED"},
    {ECONNRESET, "ECONNRESET"}, {ETIMEDOUT, "ETIMEDOUT"}, {EDQUOT, "EDQUOT"},
    {ESTALE, "ESTALE"},   {ECANCELED, "ECANCELED"}, {EALREADY, "EALREADY"},
    {EINPROGRESS, "EINPROGRESS"}, {ENOTTY, "ENOTTY"},
};

/* ---------------------------------------------------------------- lookups */

/* Human text for rc. For -errno this is strerror's text; for LMDB codes
 * mdb_strerror's; for tide codes the table above. Never NULL. */
const char *tide_strerror(int rc) {
  if (rc == 0) return "success";
  if (rc <= TIDE_EBASE - 1 && rc > TIDE_ELAST) return tide_texts[TIDE_EBASE - 1 - rc];
  if (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE) return mdb_strerror(rc);
  if (rc < 0 && rc > -4096) return strerror(-rc);
  return "unknown error";
}

/* Symbolic name for rc ("ENOENT", "MDB_MAP_FULL", "ECORRUPT"). An errno
 * without a table entry is named "E<n>" (thread-local buffer). Never NULL. */
const char *tide_errname(int rc) {
  static __thread char other[24];
  if (rc == 0) return "OK";
  if (rc <= TIDE_EBASE - 1 && rc > TIDE_ELAST) return tide_names[TIDE_EBASE - 1 - rc];
  if (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE) return mdb_names[rc - MDB_KEYEXIST];
  if (rc < 0 && rc > -4096) {
    for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
      if (errno_names[i].no == -rc) return errno_names[i].name;
    snprintf(other, sizeof other, "E%d", -rc);
    return other;
  }
  snprintf(other, sizeof other, "E%d", rc);
  return other;
}

/* ---------------------------------------------------------------- detail */

/* Fill err with code and the formatted message. Returns code. */
int tide_err_set(tide_err_t *err, int code, const char *fmt, ...) {
  if (!err) return code;
  va_list ap;
  va_start(ap, fmt);
  err->code = code;
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  va_end(ap);
  return code;
}

/* Put the formatted text in front of err->msg (truncating at the end if the
 * whole does not fit). Returns err->code (0 when err is NULL). */
int tide_err_prefix(tide_err_t *err, const char *fmt, ...) {
  if (!err) return 0;
  char pre[sizeof err->msg], old[sizeof err->msg];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(pre, sizeof pre, fmt, ap);
  va_end(ap);
  memcpy(old, err->msg, sizeof old);
  old[sizeof old - 1] = 0;
  size_t np = strlen(pre), no = strlen(old);
  if (np > sizeof err->msg - 1) np = sizeof err->msg - 1;
  if (no > sizeof err->msg - 1 - np) no = sizeof err->msg - 1 - np;
  memcpy(err->msg, pre, np);
  memcpy(err->msg + np, old, no);
  err->msg[np + no] = 0;
  return err->code;
}

int tide_err_lmdb(int rc, const char *dir) {
  if (rc > 0) rc = -rc;
  struct statvfs st;
  if (rc == -EIO && dir && statvfs(dir, &st) == 0) {
    unsigned long long blocks = geteuid() == 0 ? st.f_bfree : st.f_bavail; /* root may use the reserve */
    if (blocks * (unsigned long long)st.f_frsize < TIDE_LOW_SPACE) rc = -ENOSPC;
  }
  return rc;
}
