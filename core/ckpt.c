/*
 * ckpt.c: the checkpoint store of a streaming query (layout and invariants
 * in ckpt.h, on-disk records in docs/FORMAT.md, "Query checkpoints").
 *
 * Every function runs in its own transaction and ends it before returning.
 * Read transactions end with mdb_txn_commit rather than abort, because a
 * database handle opened in a read transaction stays in the environment
 * only when that transaction commits; a read-only checkpoint opens its
 * databases by name in each transaction (a writer in another process may
 * create them later).
 */
#include "ckpt.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"

#define MAP_INITIAL (32u << 20)
#define MAXDBS (TIDE_CKPT_STATES_MAX + 4)
#define STATE_PREFIX "state:"
#define STATE_PREFIX_LEN 6
#define LOCK_FILE "query.lock"

enum { DB_META, DB_OFFSETS, DB_COMMITS, DB_FIXED };
static const char *const fixed_names[DB_FIXED] = {"meta", "offsets", "commits"};

struct tide_ckpt {
  MDB_env *env;
  MDB_dbi dbi[DB_FIXED]; /* valid when the checkpoint is writable */
  int flags;
  int lock_fd;           /* -1 when read-only */
  int locked;            /* the flock on lock_fd is ours */
  char *dir;
  tide_ckpt_async_t *async; /* the overlapped commit in flight, or NULL */
};

/* ------------------------------------------------------------ helpers --- */

void tide_ckpt_key_u64(unsigned char p[8], uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * (7 - i)));
}
static uint64_t get_be64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

/* Set err to "checkpoint <dir>: <what>: <reason of rc>" and return rc. */
static int fail(const tide_ckpt_t *c, const char *dir, int rc, const char *what, tide_err_t *err) {
  rc = tide_err_lmdb(rc, c ? c->dir : dir);
  return tide_err_set(err, rc, "checkpoint %s: %s: %s", c ? c->dir : dir, what, tide_strerror(rc));
}

/* fail() for state `name`: "<verb> state 'name'". */
static int state_fail(const tide_ckpt_t *c, int rc, const char *verb, const char *name, size_t len,
                      tide_err_t *err) {
  char what[256];
  snprintf(what, sizeof what, "%s state '%.*s'", verb, (int)len, name);
  return fail(c, NULL, rc, what, err);
}

/* mkdir -p: create dir and its missing parents. Returns 0, 1 when dir
 * exists and is not a directory, or -errno. */
static int mkdirs(const char *dir) {
  struct stat st;
  if (stat(dir, &st) == 0) return S_ISDIR(st.st_mode) ? 0 : 1;
  if (errno != ENOENT) return -errno;
  size_t n = strlen(dir);
  char *p = malloc(n + 1);
  if (!p) return -ENOMEM;
  memcpy(p, dir, n + 1);
  int rc = 0;
  for (size_t i = 1; i <= n && !rc; i++) {
    if (p[i] != '/' && p[i] != 0) continue;
    char save = p[i];
    p[i] = 0;
    if (mkdir(p, 0777) < 0 && errno != EEXIST) rc = -errno;
    else if (stat(p, &st) < 0) rc = -errno;
    else if (!S_ISDIR(st.st_mode)) rc = -ENOTDIR;
    p[i] = save;
    while (i < n && p[i + 1] == '/') i++;
  }
  free(p);
  return rc;
}

/* dir + "/" + name in a malloc'd string, or NULL. */
static char *path_join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  p[a] = '/';
  memcpy(p + a + 1, name, b + 1);
  return p;
}

/* The pid written in the lock file, or 0. */
static long lock_pid(const char *dir) {
  char *path = path_join(dir, LOCK_FILE);
  if (!path) return 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  free(path);
  if (fd < 0) return 0;
  char buf[32];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  return strtol(buf, NULL, 10);
}

/* Begin a transaction. A map grown by another process (MDB_MAP_RESIZED)
 * is adopted and the begin tried once more. While an overlapped commit is
 * in flight its thread holds the write transaction (and may grow the map,
 * which LMDB allows only with no other transaction open in the process):
 * any other transaction is refused with -EBUSY rather than blocking on the
 * writer lock that the in-flight commit only releases when told to. */
static int begin_raw(tide_ckpt_t *c, int write, MDB_txn **txn);
static int async_settled(tide_ckpt_async_t *a);
static int begin(tide_ckpt_t *c, int write, MDB_txn **txn) {
  if (c->async && !async_settled(c->async)) return -EBUSY;
  return begin_raw(c, write, txn);
}
static int begin_raw(tide_ckpt_t *c, int write, MDB_txn **txn) {
  unsigned fl = write ? 0 : MDB_RDONLY;
  int rc = mdb_txn_begin(c->env, NULL, fl, txn);
  if (rc == MDB_MAP_RESIZED) {
    mdb_env_set_mapsize(c->env, 0);
    rc = mdb_txn_begin(c->env, NULL, fl, txn);
  }
  return rc;
}

/* End a read transaction, keeping the handles it opened. */
static void end_read(MDB_txn *txn) {
  if (mdb_txn_commit(txn)) { /* a read-only commit cannot fail; nothing to undo */
  }
}

/* The handle of a fixed database: cached for a writable checkpoint, opened
 * by name otherwise (MDB_NOTFOUND when a writer never created it). */
static int fixed_dbi(tide_ckpt_t *c, MDB_txn *txn, int which, MDB_dbi *dbi) {
  if (!(c->flags & TIDE_CKPT_READ_ONLY)) {
    *dbi = c->dbi[which];
    return 0;
  }
  return mdb_dbi_open(txn, fixed_names[which], 0, dbi);
}

/* Open state `name`'s database (created when `create`). */
static int state_dbi(MDB_txn *txn, const char *name, size_t len, int create, MDB_dbi *dbi) {
  char full[STATE_PREFIX_LEN + TIDE_CKPT_NAME_MAX + 1];
  if (len == 0 || len > TIDE_CKPT_NAME_MAX || memchr(name, 0, len)) return TIDE_EINVAL;
  memcpy(full, STATE_PREFIX, STATE_PREFIX_LEN);
  memcpy(full + STATE_PREFIX_LEN, name, len);
  full[STATE_PREFIX_LEN + len] = 0;
  return mdb_dbi_open(txn, full, create ? MDB_CREATE : 0, dbi);
}

/* Make the map large enough for a write of about `need` bytes: at least
 * twice what is in use, and room for the write twice over (a put can copy
 * whole pages). No transaction of this process may be open. */
static int grow_for_raw(tide_ckpt_t *c, uint64_t need) {
  MDB_envinfo info;
  MDB_stat st;
  int rc = mdb_env_info(c->env, &info);
  if (!rc) rc = mdb_env_stat(c->env, &st);
  if (rc) return rc;
  uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
  uint64_t want = used * 2;
  if (used + need * 2 + (1u << 20) > want) want = used + need * 2 + (1u << 20);
  if (want <= info.me_mapsize) return 0;
  uint64_t size = info.me_mapsize;
  while (size < want) size *= 2;
  return mdb_env_set_mapsize(c->env, size);
}

/* Double the map after MDB_MAP_FULL. */
static int grow_double_raw(tide_ckpt_t *c) {
  MDB_envinfo info;
  int rc = mdb_env_info(c->env, &info);
  return rc ? rc : mdb_env_set_mapsize(c->env, info.me_mapsize * 2);
}

/* The same outside an overlapped commit's thread: LMDB resizes a map only
 * with no transaction open in the process, so they wait for the commit in
 * flight (refused while its gate is closed), as begin does. */
static int grow_for(tide_ckpt_t *c, uint64_t need) {
  if (c->async && !async_settled(c->async)) return -EBUSY;
  return grow_for_raw(c, need);
}
static int grow_double(tide_ckpt_t *c) {
  if (c->async && !async_settled(c->async)) return -EBUSY;
  return grow_double_raw(c);
}

static int check_writable(tide_ckpt_t *c, const char *what, tide_err_t *err) {
  if (c->flags & TIDE_CKPT_READ_ONLY)
    return tide_err_set(err, TIDE_EINVAL, "checkpoint %s: %s: opened read-only", c->dir, what);
  return 0;
}

/* ---------------------------------------------------------- open/close --- */

/* Read-only: refuse when this very process holds the lock (a second LMDB
 * environment on the same files in one process breaks LMDB's locks). The
 * holder's pid is in the lock file; close() empties it. */
static int open_probe(const char *dir, tide_err_t *err) {
  struct stat st;
  if (stat(dir, &st) < 0) {
    int rc = -errno;
    return tide_err_set(err, rc, "checkpoint %s: %s", dir, tide_strerror(rc));
  }
  if (!S_ISDIR(st.st_mode)) return tide_err_set(err, -ENOTDIR, "checkpoint %s: not a directory", dir);
  char *data = path_join(dir, "data.mdb");
  if (!data) return -ENOMEM;
  int rc = stat(data, &st) < 0 ? -errno : 0;
  free(data);
  if (rc == -ENOENT) return tide_err_set(err, -ENOENT, "checkpoint %s: no checkpoint here (no data.mdb)", dir);
  if (rc) return tide_err_set(err, rc, "checkpoint %s: data.mdb: %s", dir, tide_strerror(rc));
  if (lock_pid(dir) == (long)getpid())
    return tide_err_set(err, -EBUSY, "checkpoint %s: open by a query of this process", dir);
  return 0;
}

/* Writable: create the directory, then take the lock before LMDB sees the
 * files, and record our pid in the lock file. */
static int open_lock(tide_ckpt_t *c, const char *dir, tide_err_t *err) {
  int rc = mkdirs(dir);
  if (rc == 1) return tide_err_set(err, -ENOTDIR, "checkpoint %s: not a directory", dir);
  if (rc) return fail(NULL, dir, rc, "cannot create the directory", err);
  char *path = path_join(dir, LOCK_FILE);
  if (!path) return -ENOMEM;
  c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  free(path);
  if (c->lock_fd < 0) return fail(NULL, dir, -errno, "cannot open " LOCK_FILE, err);
  if (flock(c->lock_fd, LOCK_EX | LOCK_NB) < 0) {
    rc = -errno;
    if (rc == -EWOULDBLOCK) return tide_err_set(err, -EBUSY, "checkpoint %s: in use by another query", dir);
    return fail(NULL, dir, rc, "cannot lock " LOCK_FILE, err);
  }
  c->locked = 1;
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  ssize_t w = -1;
  if (ftruncate(c->lock_fd, 0) < 0 || (w = pwrite(c->lock_fd, pid, (size_t)n, 0)) != n)
    return fail(NULL, dir, w >= 0 ? -ENOSPC : -errno, "cannot write " LOCK_FILE, err); /* short: the disk is full */
  return 0;
}

/* Refuse a data.mdb shorter than the pages its meta page names: LMDB would
 * map past the end of the file and the process would die of SIGBUS on the
 * first read there. */
static int check_size(tide_ckpt_t *c, tide_err_t *err) {
  MDB_envinfo info;
  MDB_stat st;
  int rc = mdb_env_info(c->env, &info);
  if (!rc) rc = mdb_env_stat(c->env, &st);
  if (rc) return fail(c, NULL, rc, "cannot read the environment", err);
  char *data = path_join(c->dir, "data.mdb");
  if (!data) return -ENOMEM;
  struct stat fs;
  rc = stat(data, &fs) < 0 ? -errno : 0;
  free(data);
  if (rc) return fail(c, NULL, rc, "data.mdb", err);
  uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
  if ((uint64_t)fs.st_size < need)
    return tide_err_set(err, TIDE_ECORRUPT, "checkpoint %s: data.mdb is truncated (%lld bytes, its pages need %llu)",
                        c->dir, (long long)fs.st_size, (unsigned long long)need);
  /* Adopt a map larger on disk than the default (grown earlier). */
  if (info.me_mapsize > MAP_INITIAL && (rc = mdb_env_set_mapsize(c->env, info.me_mapsize)))
    return fail(c, NULL, rc, "cannot set the map size", err);
  return 0;
}

/* Check meta "format"; a writable checkpoint creates its databases and
 * writes the format when new. */
static int open_dbs(tide_ckpt_t *c, tide_err_t *err) {
  int ro = c->flags & TIDE_CKPT_READ_ONLY;
  MDB_txn *txn;
  int rc = begin(c, !ro, &txn);
  if (rc) return fail(c, NULL, rc, "cannot begin a transaction", err);
  for (int i = 0; i < DB_FIXED; i++) {
    MDB_dbi dbi;
    rc = mdb_dbi_open(txn, fixed_names[i], ro ? 0 : MDB_CREATE, &dbi);
    if (rc == MDB_NOTFOUND && ro) {
      rc = 0;
      continue;
    }
    if (rc) {
      mdb_txn_abort(txn);
      return fail(c, NULL, rc, "cannot open its databases", err);
    }
    c->dbi[i] = dbi;
  }
  char want[16];
  int wn = snprintf(want, sizeof want, "%u", TIDE_CKPT_VERSION);
  MDB_val k = {6, "format"}, v;
  MDB_dbi meta;
  rc = fixed_dbi(c, txn, DB_META, &meta);
  if (!rc) rc = mdb_get(txn, meta, &k, &v);
  if (rc == MDB_NOTFOUND && !ro) {
    v.mv_size = (size_t)wn;
    v.mv_data = want;
    rc = mdb_put(txn, meta, &k, &v, 0);
  } else if (rc == 0 && (v.mv_size != (size_t)wn || memcmp(v.mv_data, want, (size_t)wn))) {
    char have[16];
    size_t hn = v.mv_size < sizeof have - 1 ? v.mv_size : sizeof have - 1;
    memcpy(have, v.mv_data, hn);
    have[hn] = 0;
    mdb_txn_abort(txn);
    return tide_err_set(err, TIDE_EFORMAT, "checkpoint %s: format %s, this build reads %s", c->dir, have, want);
  } else if (rc == MDB_NOTFOUND) {
    rc = 0; /* read-only and never written: an empty checkpoint */
  }
  if (rc) {
    mdb_txn_abort(txn);
    return fail(c, NULL, rc, "cannot read its format", err);
  }
  if (ro) {
    end_read(txn);
    return 0;
  }
  rc = mdb_txn_commit(txn);
  return rc ? fail(c, NULL, rc, "cannot create its databases", err) : 0;
}

/* A new checkpoint's data.mdb is made whole in NEW_DIR (its databases and
 * format committed and synced) and only then renamed into place, with the
 * directory synced. A write that fails while LMDB lays out a new file (its
 * two meta pages) would otherwise leave a data.mdb that LMDB refuses for
 * ever ("File is not an LMDB file"); this way a failed creation leaves no
 * data.mdb, and the next open starts again. Nothing to do when data.mdb
 * exists. Runs under the checkpoint's lock. */
#define NEW_DIR ".new"
static int create_data(tide_ckpt_t *c, tide_err_t *err) {
  char *data = path_join(c->dir, "data.mdb"), *tmp = path_join(c->dir, NEW_DIR);
  char *tdata = tmp ? path_join(tmp, "data.mdb") : NULL, *tlock = tmp ? path_join(tmp, "lock.mdb") : NULL;
  struct stat st;
  MDB_env *env = NULL;
  int rc = 0, fd;
  if (!data || !tmp || !tdata || !tlock) {
    rc = -ENOMEM;
    goto done;
  }
  if (stat(data, &st) == 0) goto done;
  if (errno != ENOENT) {
    rc = fail(c, NULL, -errno, "data.mdb", err);
    goto done;
  }
  /* what an earlier failed creation left */
  unlink(tdata);
  unlink(tlock);
  if (mkdir(tmp, 0777) < 0 && errno != EEXIST) {
    rc = fail(c, NULL, -errno, "cannot create " NEW_DIR, err);
    goto done;
  }
  if ((rc = mdb_env_create(&env))) {
    rc = fail(c, NULL, rc, "cannot create an LMDB environment", err);
    goto done;
  }
  mdb_env_set_maxdbs(env, MAXDBS);
  mdb_env_set_mapsize(env, MAP_INITIAL);
  if ((rc = mdb_env_open(env, tmp, MDB_NOTLS, 0666))) {
    rc = fail(c, NULL, rc, "cannot create data.mdb", err);
    goto done;
  }
  c->env = env; /* open_dbs works on c->env; its handles are made again by the real open */
  rc = open_dbs(c, err);
  c->env = NULL;
  if (rc) goto done;
  mdb_env_close(env);
  env = NULL;
  if (rename(tdata, data) < 0) {
    rc = fail(c, NULL, -errno, "cannot rename " NEW_DIR "/data.mdb", err);
    goto done;
  }
  if ((fd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 || fsync(fd) < 0) {
    rc = fail(c, NULL, -errno, "cannot sync the directory", err);
    if (fd >= 0) close(fd);
    goto done;
  }
  close(fd);
  unlink(tlock);
  rmdir(tmp);
done:
  if (env) mdb_env_close(env);
  free(data);
  free(tmp);
  free(tdata);
  free(tlock);
  return rc;
}

int tide_ckpt_open(const char *dir, int flags, tide_ckpt_t **out, tide_err_t *err) {
  int ro = flags & TIDE_CKPT_READ_ONLY;
  tide_ckpt_t *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->lock_fd = -1;
  c->flags = flags;
  int rc;
  if (!(c->dir = strdup(dir))) {
    rc = -ENOMEM;
    goto fail;
  }
  if ((rc = ro ? open_probe(dir, err) : open_lock(c, dir, err))) goto fail;
  if (!ro && (rc = create_data(c, err))) goto fail;
  if ((rc = mdb_env_create(&c->env))) {
    fail(c, NULL, rc, "cannot create an LMDB environment", err);
    goto fail;
  }
  mdb_env_set_maxdbs(c->env, MAXDBS);
  mdb_env_set_maxreaders(c->env, 126);
  mdb_env_set_mapsize(c->env, MAP_INITIAL);
  /* MDB_NOTLS: transactions are not tied to threads (the engine's callers
   * may come from any thread of the loop). */
  unsigned fl = MDB_NOTLS | (ro ? MDB_RDONLY : 0) | ((flags & TIDE_CKPT_NOSYNC) ? MDB_NOSYNC : 0);
  if ((rc = mdb_env_open(c->env, dir, fl, 0666))) {
    fail(c, NULL, rc, "cannot open data.mdb", err);
    goto fail;
  }
  if ((rc = check_size(c, err)) || (rc = open_dbs(c, err))) goto fail;
  *out = c;
  return 0;
fail:
  tide_ckpt_close(c);
  return rc;
}

void tide_ckpt_close(tide_ckpt_t *c) {
  if (!c) return;
  if (c->async) tide_ckpt_commit_cancel(c->async);
  if (c->env) mdb_env_close(c->env);
  if (c->lock_fd >= 0 && c->locked) {
    /* Empty the pid before the lock goes, so that a read-only open in this
     * process later does not take the checkpoint for still in use. */
    if (ftruncate(c->lock_fd, 0) < 0) { /* only a stale pid stays; harmless across processes */
    }
  }
  if (c->lock_fd >= 0) close(c->lock_fd); /* releases the flock, if ours */
  free(c->dir);
  free(c);
}

const char *tide_ckpt_dir(const tide_ckpt_t *c) { return c->dir; }
int tide_ckpt_read_only(const tide_ckpt_t *c) { return (c->flags & TIDE_CKPT_READ_ONLY) != 0; }

/* -------------------------------------------------------- log entries ---
 *
 * An offset- or commit-log entry is stored as (docs/FORMAT.md):
 *
 *   +------+-----------------+------------------+
 *   | 0x01 | CRC-32C of text | text (JSON)      |
 *   | u8   | u32 LE          | the rest         |
 *   +------+-----------------+------------------+
 *
 * An entry whose first byte is '{' was written before entries had a
 * checksum: its value is the text alone, accepted as it is (a new entry is
 * never written that way, and purges drop old ones as batches run). Any
 * other value is damaged, and refused naming the checkpoint, the log and
 * the batch. */
#define LOG_V1 0x01
#define LOG_HDR 5

static const char *const log_names[DB_FIXED] = {"meta", "offset log", "commit log"};

/* The stored value of an entry with this text, in *out (reset first). */
static int log_frame(tide_buf_t *out, const void *text, size_t len) {
  uint32_t crc = tide_crc32c(0, text, len);
  unsigned char hdr[LOG_HDR] = {LOG_V1, (unsigned char)crc, (unsigned char)(crc >> 8), (unsigned char)(crc >> 16),
                                (unsigned char)(crc >> 24)};
  out->len = 0;
  int rc = tide_buf_append(out, hdr, LOG_HDR);
  return rc ? rc : tide_buf_append(out, text, len);
}

/* The text of a stored entry of log `which`, batch n: *text and *len point
 * into v. 0, or TIDE_ECORRUPT with err set. */
static int log_text(const tide_ckpt_t *c, int which, uint64_t n, const unsigned char *v, size_t vlen,
                    const unsigned char **text, size_t *len, tide_err_t *err) {
  const char *why = NULL;
  if (vlen == 0 || v[0] == '{') { /* written before checksums */
    *text = v;
    *len = vlen;
    return 0;
  }
  if (vlen < LOG_HDR || v[0] != LOG_V1) {
    why = "unknown entry format";
  } else {
    uint32_t crc = (uint32_t)v[1] | (uint32_t)v[2] << 8 | (uint32_t)v[3] << 16 | (uint32_t)v[4] << 24;
    if (tide_crc32c(0, v + LOG_HDR, vlen - LOG_HDR) != crc) why = "checksum mismatch";
  }
  if (why)
    return tide_err_set(err, TIDE_ECORRUPT, "checkpoint %s: %s, batch %llu: damaged entry (%s)", c->dir,
                        log_names[which], (unsigned long long)n, why);
  *text = v + LOG_HDR;
  *len = vlen - LOG_HDR;
  return 0;
}

/* -------------------------------------------------------------- reads --- */

/* Copy the value at key in fixed database `which` into out. */
static int get_fixed(tide_ckpt_t *c, int which, const void *key, size_t klen, tide_buf_t *out, const char *what,
                     tide_err_t *err) {
  MDB_txn *txn;
  MDB_dbi dbi;
  out->len = 0;
  int rc = begin(c, 0, &txn);
  if (rc) return fail(c, NULL, rc, what, err);
  rc = fixed_dbi(c, txn, which, &dbi);
  MDB_val k = {klen, (void *)key}, v;
  if (!rc) rc = mdb_get(txn, dbi, &k, &v);
  if (!rc) rc = tide_buf_append(out, v.mv_data, v.mv_size);
  end_read(txn);
  if (rc && rc != MDB_NOTFOUND) return fail(c, NULL, rc, what, err);
  return rc;
}

int tide_ckpt_meta_get(tide_ckpt_t *c, const char *key, size_t klen, tide_buf_t *out, tide_err_t *err) {
  if (klen == 0 || klen > TIDE_CKPT_KEY_MAX) return tide_err_set(err, TIDE_EINVAL, "checkpoint %s: bad meta key", c->dir);
  return get_fixed(c, DB_META, key, klen, out, "reading meta", err);
}

/* Entry n of log `which` into out, its text only (checked). */
static int get_entry(tide_ckpt_t *c, int which, uint64_t n, tide_buf_t *out, const char *what, tide_err_t *err) {
  unsigned char k[8];
  const unsigned char *text;
  size_t len;
  tide_ckpt_key_u64(k, n);
  int rc = get_fixed(c, which, k, 8, out, what, err);
  if (rc) return rc;
  if ((rc = log_text(c, which, n, (const unsigned char *)out->data, out->len, &text, &len, err))) return rc;
  if (len) memmove(out->data, text, len);
  out->len = len;
  return 0;
}

int tide_ckpt_offsets_get(tide_ckpt_t *c, uint64_t n, tide_buf_t *out, tide_err_t *err) {
  return get_entry(c, DB_OFFSETS, n, out, "reading the offset log", err);
}

int tide_ckpt_commit_get(tide_ckpt_t *c, uint64_t n, tide_buf_t *out, tide_err_t *err) {
  return get_entry(c, DB_COMMITS, n, out, "reading the commit log", err);
}

/* The first or last id of a log (-1 when empty), in txn. */
static int log_end(tide_ckpt_t *c, MDB_txn *txn, int which, MDB_cursor_op op, int64_t *id) {
  MDB_dbi dbi;
  MDB_cursor *cur;
  MDB_val k, v;
  *id = -1;
  int rc = fixed_dbi(c, txn, which, &dbi);
  if (rc) return rc == MDB_NOTFOUND ? 0 : rc;
  if ((rc = mdb_cursor_open(txn, dbi, &cur))) return rc;
  rc = mdb_cursor_get(cur, &k, &v, op);
  mdb_cursor_close(cur);
  if (rc == MDB_NOTFOUND) return 0;
  if (rc) return rc;
  if (k.mv_size != 8) return TIDE_ECORRUPT;
  *id = (int64_t)get_be64(k.mv_data);
  return 0;
}

int tide_ckpt_latest(tide_ckpt_t *c, int64_t *last_offset, int64_t *last_commit, tide_err_t *err) {
  MDB_txn *txn;
  int rc = begin(c, 0, &txn);
  if (rc) return fail(c, NULL, rc, "reading the logs", err);
  rc = log_end(c, txn, DB_OFFSETS, MDB_LAST, last_offset);
  if (!rc) rc = log_end(c, txn, DB_COMMITS, MDB_LAST, last_commit);
  end_read(txn);
  return rc ? fail(c, NULL, rc, "reading the logs", err) : 0;
}

/* ------------------------------------------------------------- writes --- */

int tide_ckpt_meta_set(tide_ckpt_t *c, const char *key, size_t klen, const void *val, size_t vlen,
                       tide_err_t *err) {
  int rc = check_writable(c, "set_meta", err);
  if (rc) return rc;
  if (klen == 0 || klen > TIDE_CKPT_KEY_MAX)
    return tide_err_set(err, TIDE_EINVAL, "checkpoint %s: meta key must be 1..%d bytes", c->dir, TIDE_CKPT_KEY_MAX);
  if (klen == 6 && !memcmp(key, "format", 6))
    return tide_err_set(err, TIDE_EINVAL, "checkpoint %s: meta key 'format' is reserved", c->dir);
  MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
  for (int tries = 0;; tries++) {
    MDB_txn *txn;
    if ((rc = grow_for(c, klen + vlen))) break;
    if ((rc = begin(c, 1, &txn))) break;
    rc = mdb_put(txn, c->dbi[DB_META], &k, &v, 0);
    rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
    if (rc != MDB_MAP_FULL || tries == 30 || (rc = grow_double(c))) break;
  }
  return rc ? fail(c, NULL, rc, "writing meta", err) : 0;
}

int tide_ckpt_write_offsets(tide_ckpt_t *c, uint64_t n, const void *text, size_t len, tide_err_t *err) {
  int rc = check_writable(c, "write_offsets", err);
  if (rc) return rc;
  unsigned char key[8];
  tide_ckpt_key_u64(key, n);
  MDB_val k = {8, key}, v;
  tide_buf_t framed = {0};
  if ((rc = log_frame(&framed, text, len))) return tide_err_set(err, rc, "checkpoint %s: %s", c->dir, tide_strerror(rc));
  for (int tries = 0;; tries++) {
    MDB_txn *txn;
    if ((rc = grow_for(c, framed.len))) break;
    if ((rc = begin(c, 1, &txn))) break;
    rc = mdb_get(txn, c->dbi[DB_OFFSETS], &k, &v);
    if (rc == 0) { /* the same text again (a re-run batch) is no error */
      const unsigned char *old;
      size_t olen;
      rc = log_text(c, DB_OFFSETS, n, v.mv_data, v.mv_size, &old, &olen, err);
      int same = !rc && olen == len && (len == 0 || !memcmp(old, text, len));
      mdb_txn_abort(txn);
      tide_buf_free(&framed);
      if (rc || same) return rc;
      return tide_err_set(err, TIDE_EEXIST, "checkpoint %s: offset log %llu exists with other offsets", c->dir,
                          (unsigned long long)n);
    }
    if (rc == MDB_NOTFOUND) {
      v.mv_size = framed.len;
      v.mv_data = framed.data;
      rc = mdb_put(txn, c->dbi[DB_OFFSETS], &k, &v, 0);
    }
    rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
    if (rc != MDB_MAP_FULL || tries == 30 || (rc = grow_double(c))) break;
  }
  tide_buf_free(&framed);
  if (rc) {
    char what[64];
    snprintf(what, sizeof what, "writing offset log %llu", (unsigned long long)n);
    return fail(c, NULL, rc, what, err);
  }
  return 0;
}

/* LMDB's default key order: bytewise, then shorter first. */
static int key_cmp(const void *a, size_t alen, const void *b, size_t blen) {
  int d = memcmp(a, b, alen < blen ? alen : blen);
  return d ? d : (alen > blen) - (alen < blen);
}

/* Apply one state's ops through one cursor. A put whose key sorts after
 * every key of the database is an append (MDB_APPEND: no search, and
 * pages fill up instead of splitting in half): the engine's state ids
 * grow, so a batch's new groups all take that path. A delete positions
 * the cursor (MDB_SET) and deletes there; an absent key is no error. */
static int apply_ops(MDB_txn *txn, MDB_dbi dbi, const tide_ckpt_op_t *ops, size_t nops) {
  MDB_cursor *cur;
  MDB_val k, v;
  int rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc) return rc;
  unsigned char last[TIDE_CKPT_KEY_MAX];
  size_t last_len = 0;
  int known = 0; /* last/last_len hold the database's largest key (0 bytes: empty) */
  for (size_t j = 0; j < nops && !rc; j++) {
    const tide_ckpt_op_t *op = &ops[j];
    k.mv_size = op->klen;
    k.mv_data = (void *)op->key;
    if (!op->val) {
      rc = mdb_cursor_get(cur, &k, &v, MDB_SET);
      if (!rc) {
        rc = mdb_cursor_del(cur, 0);
        known = 0; /* it may have been the largest */
      } else if (rc == MDB_NOTFOUND) {
        rc = 0;
      }
      continue;
    }
    if (!known) {
      MDB_val lk;
      rc = mdb_cursor_get(cur, &lk, &v, MDB_LAST);
      if (rc == MDB_NOTFOUND) {
        rc = 0;
        last_len = 0;
      } else if (rc) {
        break;
      } else {
        last_len = lk.mv_size;
        memcpy(last, lk.mv_data, lk.mv_size);
      }
      known = 1;
    }
    v.mv_size = op->vlen;
    v.mv_data = (void *)op->val;
    int append = last_len == 0 || key_cmp(op->key, op->klen, last, last_len) > 0;
    rc = mdb_cursor_put(cur, &k, &v, append ? MDB_APPEND : 0);
    if (!rc && append) {
      memcpy(last, op->key, op->klen);
      last_len = op->klen;
    }
  }
  mdb_cursor_close(cur);
  return rc;
}

/* Batch n's state changes in a new write transaction (*txn, left open),
 * after checking that commit entry n does not exist. On failure the
 * transaction is aborted and *where names the state that failed (NULL:
 * the commit log). begin_raw: also on an overlapped commit's thread. */
static int states_txn(tide_ckpt_t *c, uint64_t n, const tide_ckpt_change_t *ch, size_t nch, MDB_txn **txn,
                      const tide_ckpt_change_t **where) {
  unsigned char key[8];
  tide_ckpt_key_u64(key, n);
  MDB_val k = {8, key}, v;
  *where = NULL;
  int rc = begin_raw(c, 1, txn);
  if (rc) return rc;
  rc = mdb_get(*txn, c->dbi[DB_COMMITS], &k, &v);
  if (rc == 0) rc = TIDE_EEXIST;
  else if (rc == MDB_NOTFOUND) rc = 0;
  for (size_t i = 0; i < nch && !rc; i++) {
    MDB_dbi dbi;
    *where = &ch[i];
    if ((rc = state_dbi(*txn, ch[i].state, ch[i].state_len, 1, &dbi))) break;
    rc = apply_ops(*txn, dbi, ch[i].ops, ch[i].nops);
  }
  /* On failure the abort also closes the state handles this transaction
   * opened; on success the commit makes them the environment's. */
  if (rc) mdb_txn_abort(*txn);
  else *where = NULL;
  return rc;
}

/* Put commit entry n (framed text) and commit txn: durable when it
 * returns (unless NOSYNC). */
static int entry_commit(tide_ckpt_t *c, MDB_txn *txn, uint64_t n, const void *framed, size_t len) {
  unsigned char key[8];
  tide_ckpt_key_u64(key, n);
  MDB_val k = {8, key}, v = {len, (void *)framed};
  int rc = mdb_put(txn, c->dbi[DB_COMMITS], &k, &v, 0);
  return rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
}

/* One attempt at a commit: the whole write transaction. */
static int commit_once(tide_ckpt_t *c, uint64_t n, const void *text, size_t len, const tide_ckpt_change_t *ch,
                       size_t nch, const tide_ckpt_change_t **where) {
  MDB_txn *txn;
  int rc = states_txn(c, n, ch, nch, &txn, where);
  return rc ? rc : entry_commit(c, txn, n, text, len);
}

/* Check every input of a commit before any transaction, so that a bad one
 * writes nothing and says which it is; *need gets the bytes the states'
 * changes take, about (what the map must have room for). */
static int check_changes(tide_ckpt_t *c, uint64_t n, const tide_ckpt_change_t *changes, size_t nchanges,
                         uint64_t *need, tide_err_t *err) {
  int rc = check_writable(c, "commit", err);
  if (rc) return rc;
  if (c->async)
    return tide_err_set(err, -EBUSY, "checkpoint %s: commit %llu: a commit is in flight", c->dir,
                        (unsigned long long)n);
  *need = 64;
  for (size_t i = 0; i < nchanges; i++) {
    const tide_ckpt_change_t *ch = &changes[i];
    if (ch->state_len == 0 || ch->state_len > TIDE_CKPT_NAME_MAX || memchr(ch->state, 0, ch->state_len))
      return tide_err_set(err, TIDE_EINVAL, "checkpoint %s: commit %llu: state name must be 1..%d bytes without NUL",
                          c->dir, (unsigned long long)n, TIDE_CKPT_NAME_MAX);
    for (size_t j = 0; j < ch->nops; j++) {
      const tide_ckpt_op_t *op = &ch->ops[j];
      if (op->klen == 0 || op->klen > TIDE_CKPT_KEY_MAX)
        return tide_err_set(err, TIDE_EINVAL, "checkpoint %s: commit %llu: state '%.*s': key must be 1..%d bytes, got %zu",
                            c->dir, (unsigned long long)n, (int)ch->state_len, ch->state, TIDE_CKPT_KEY_MAX, op->klen);
      *need += op->klen + op->vlen + 64;
    }
  }
  return 0;
}

/* The message of a failed commit n (rc: an LMDB or tide code; where: the
 * state that failed, NULL for the commit log). Returns the tide code. */
static int commit_error(tide_ckpt_t *c, uint64_t n, int rc, const tide_ckpt_change_t *where, tide_err_t *err) {
  rc = tide_err_lmdb(rc, c->dir);
  if (rc == TIDE_EEXIST)
    return tide_err_set(err, rc, "checkpoint %s: commit log %llu exists", c->dir, (unsigned long long)n);
  if (rc == MDB_DBS_FULL)
    return tide_err_set(err, rc, "checkpoint %s: commit %llu: more than %d state stores", c->dir,
                        (unsigned long long)n, TIDE_CKPT_STATES_MAX);
  if (rc && where)
    return tide_err_set(err, rc, "checkpoint %s: commit %llu: state '%.*s': %s", c->dir, (unsigned long long)n,
                        (int)where->state_len, where->state, tide_strerror(rc));
  if (rc)
    return tide_err_set(err, rc, "checkpoint %s: commit %llu: %s", c->dir, (unsigned long long)n, tide_strerror(rc));
  return 0;
}

int tide_ckpt_commit(tide_ckpt_t *c, uint64_t n, const void *text, size_t len, const tide_ckpt_change_t *changes,
                     size_t nchanges, tide_err_t *err) {
  uint64_t need;
  int rc = check_changes(c, n, changes, nchanges, &need, err);
  if (rc) return rc;
  need += len;
  const tide_ckpt_change_t *where = NULL;
  tide_buf_t framed = {0};
  if ((rc = log_frame(&framed, text, len))) return tide_err_set(err, rc, "checkpoint %s: %s", c->dir, tide_strerror(rc));
  for (int tries = 0;; tries++) {
    if ((rc = grow_for(c, need + LOG_HDR))) break;
    rc = commit_once(c, n, framed.data, framed.len, changes, nchanges, &where);
    if (rc != MDB_MAP_FULL || tries == 30 || (rc = grow_double(c))) break;
  }
  tide_buf_free(&framed);
  return commit_error(c, n, rc, where, err);
}

/* ----------------------------------------------- overlapped commit --- */

/* The commit of batch n split at its gate (ckpt.h): a thread of its own
 * writes the states' changes into the write transaction, then waits; the
 * caller opens the gate with the commit entry's text (put, then the
 * transaction committed: durable) or cancels (aborted: nothing written).
 * Only the thread touches the environment in between: begin refuses other
 * transactions while the gate is closed, and once it is open waits until
 * the thread is done (its transaction committed or aborted). The caller's
 * change arrays must stay valid until wait/finish/cancel returns. */
struct tide_ckpt_async {
  tide_ckpt_t *c;
  uint64_t n, need;
  const tide_ckpt_change_t *changes;
  size_t nchanges;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int gate;             /* 0 closed, 1 open (framed holds the entry), -1 cancelled */
  tide_buf_t framed;    /* the commit entry, framed; written before the gate opens */
  int has_next;         /* also offset entry n + 1 (next_framed) in the transaction */
  tide_buf_t next_framed;
  int rc;               /* the thread's result, read after the join */
  const tide_ckpt_change_t *where;
  int next_failed;      /* rc is the put of offset entry n + 1's */
  int done;             /* the thread has ended its transaction (under mu) */
  int (*after)(void *, int); /* tide_ckpt_commit_after, or NULL; called once by the thread */
  void *after_arg;
};

/* 1 when a's thread is done with the environment, waiting for it when its
 * gate is open (so its commit is durable before another transaction
 * begins); 0 while the gate is closed (the caller would wait for itself). */
static int async_settled(tide_ckpt_async_t *a) {
  pthread_mutex_lock(&a->mu);
  if (a->gate != 0)
    while (!a->done) pthread_cond_wait(&a->cv, &a->mu);
  int done = a->done;
  pthread_mutex_unlock(&a->mu);
  return done;
}

/* Wait until the gate opens or the commit is cancelled; returns the gate. */
static int async_gate(tide_ckpt_async_t *a) {
  pthread_mutex_lock(&a->mu);
  while (a->gate == 0) pthread_cond_wait(&a->cv, &a->mu);
  int g = a->gate;
  pthread_mutex_unlock(&a->mu);
  return g;
}

static void *async_main(void *arg) {
  tide_ckpt_async_t *a = arg;
  tide_ckpt_t *c = a->c;
  int rc;
  for (int tries = 0;; tries++) {
    MDB_txn *txn = NULL;
    a->next_failed = 0;
    if ((rc = grow_for_raw(c, a->need + LOG_HDR)) == 0) rc = states_txn(c, a->n, a->changes, a->nchanges, &txn, &a->where);
    if (rc == MDB_MAP_FULL && tries < 30 && (rc = grow_double_raw(c)) == 0) continue;
    /* the gate: nothing of batch n is durable before the caller says so */
    if (async_gate(a) < 0) {
      if (!rc) mdb_txn_abort(txn);
      rc = -ECANCELED;
      break;
    }
    if (rc) break;
    if (a->after) { /* the condition: the batch's output is durable (once: not again on a retry) */
      int (*after)(void *, int) = a->after;
      a->after = NULL;
      if (after(a->after_arg, 1)) {
        mdb_txn_abort(txn);
        rc = -ECANCELED;
        break;
      }
    }
    if (a->has_next) { /* offset entry n + 1, in the same transaction (never there before: see ckpt.h) */
      unsigned char key[8];
      tide_ckpt_key_u64(key, a->n + 1);
      MDB_val k = {8, key}, v = {a->next_framed.len, a->next_framed.data};
      if ((rc = mdb_put(txn, c->dbi[DB_OFFSETS], &k, &v, MDB_NOOVERWRITE))) {
        mdb_txn_abort(txn);
        a->next_failed = 1;
        if (rc == MDB_KEYEXIST) rc = TIDE_EEXIST;
        if (rc == MDB_MAP_FULL && tries < 30 && (rc = grow_double_raw(c)) == 0) continue;
        break;
      }
    }
    rc = entry_commit(c, txn, a->n, a->framed.data, a->framed.len);
    if (rc != MDB_MAP_FULL || tries == 30 || (rc = grow_double_raw(c))) break;
  }
  if (a->after) a->after(a->after_arg, 0); /* not reached: released */
  a->after = NULL;
  a->rc = rc;
  pthread_mutex_lock(&a->mu);
  a->done = 1;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu);
  return NULL;
}

int tide_ckpt_commit_start(tide_ckpt_t *c, uint64_t n, const tide_ckpt_change_t *changes, size_t nchanges,
                           tide_ckpt_async_t **out, tide_err_t *err) {
  uint64_t need;
  int rc = check_changes(c, n, changes, nchanges, &need, err);
  if (rc) return rc;
  tide_ckpt_async_t *a = calloc(1, sizeof *a);
  if (!a) return tide_err_set(err, -ENOMEM, "checkpoint %s: commit %llu: out of memory", c->dir, (unsigned long long)n);
  a->c = c;
  a->n = n;
  a->need = need + 4096; /* the commit entry's text is not known yet: a small JSON object */
  a->changes = changes;
  a->nchanges = nchanges;
  pthread_mutex_init(&a->mu, NULL);
  pthread_cond_init(&a->cv, NULL);
  c->async = a; /* before the thread starts: from now on only it begins transactions */
  if ((rc = pthread_create(&a->thread, NULL, async_main, a))) {
    c->async = NULL;
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    free(a);
    return tide_err_set(err, -rc, "checkpoint %s: commit %llu: cannot start a thread: %s", c->dir,
                        (unsigned long long)n, tide_strerror(-rc));
  }
  *out = a;
  return 0;
}

/* Open or cancel the gate (1 or -1). */
static void async_gate_set(tide_ckpt_async_t *a, int gate) {
  pthread_mutex_lock(&a->mu);
  a->gate = gate;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu);
}

/* Join the thread, free a; returns the thread's result (*where, *next_failed
 * say what failed). */
static int async_join(tide_ckpt_async_t *a, const tide_ckpt_change_t **where, int *next_failed) {
  pthread_join(a->thread, NULL);
  a->c->async = NULL;
  int rc = a->rc;
  *where = a->where;
  *next_failed = a->next_failed;
  tide_buf_free(&a->framed);
  tide_buf_free(&a->next_framed);
  pthread_cond_destroy(&a->cv);
  pthread_mutex_destroy(&a->mu);
  free(a);
  return rc;
}

int tide_ckpt_commit_open(tide_ckpt_async_t *a, const void *text, size_t len, const void *next, size_t next_len,
                          tide_err_t *err) {
  int rc = log_frame(&a->framed, text, len);
  if (!rc && next) rc = log_frame(&a->next_framed, next, next_len);
  if (rc) {
    tide_ckpt_t *c = a->c;
    const tide_ckpt_change_t *where;
    int nf;
    async_gate_set(a, -1);
    async_join(a, &where, &nf);
    return tide_err_set(err, rc, "checkpoint %s: %s", c->dir, tide_strerror(rc));
  }
  a->has_next = next != NULL;
  async_gate_set(a, 1);
  return 0;
}

void tide_ckpt_commit_after(tide_ckpt_async_t *a, int (*after)(void *arg, int wait), void *arg) {
  pthread_mutex_lock(&a->mu); /* the thread reads it once the gate opens: under mu, before */
  a->after = after;
  a->after_arg = arg;
  pthread_mutex_unlock(&a->mu);
}

int tide_ckpt_commit_wait(tide_ckpt_async_t *a, tide_err_t *err) {
  tide_ckpt_t *c = a->c;
  uint64_t n = a->n;
  const tide_ckpt_change_t *where;
  int next_failed;
  int rc = async_join(a, &where, &next_failed);
  if (rc == -ECANCELED) /* only the condition's failure (tide_ckpt_commit_after): a cancel never waits here */
    return tide_err_set(err, rc, "checkpoint %s: commit %llu: cancelled: the batch's output failed", c->dir,
                        (unsigned long long)n);
  if (rc && next_failed) {
    rc = tide_err_lmdb(rc, c->dir);
    return tide_err_set(err, rc, "checkpoint %s: commit %llu: offset log %llu: %s", c->dir, (unsigned long long)n,
                        (unsigned long long)n + 1, rc == TIDE_EEXIST ? "exists already" : tide_strerror(rc));
  }
  return commit_error(c, n, rc, where, err);
}

int tide_ckpt_commit_finish(tide_ckpt_async_t *a, const void *text, size_t len, tide_err_t *err) {
  int rc = tide_ckpt_commit_open(a, text, len, NULL, 0, err);
  return rc ? rc : tide_ckpt_commit_wait(a, err);
}

void tide_ckpt_commit_cancel(tide_ckpt_async_t *a) {
  const tide_ckpt_change_t *where;
  int nf;
  if (!a) return;
  async_gate_set(a, -1); /* no effect once the gate is open: then the commit completes */
  async_join(a, &where, &nf);
}

/* Delete the keys < before of one log; adds to *removed. */
static int purge_log(MDB_txn *txn, MDB_dbi dbi, uint64_t before, uint64_t *removed) {
  MDB_cursor *cur;
  MDB_val k, v;
  int rc = mdb_cursor_open(txn, dbi, &cur);
  if (rc) return rc;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) {
    if (k.mv_size != 8) {
      rc = TIDE_ECORRUPT;
      break;
    }
    if (get_be64(k.mv_data) >= before) break;
    if ((rc = mdb_cursor_del(cur, 0))) break;
    (*removed)++;
  }
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

int tide_ckpt_purge(tide_ckpt_t *c, uint64_t before, uint64_t *removed, tide_err_t *err) {
  int rc = check_writable(c, "purge", err);
  if (rc) return rc;
  uint64_t count = 0;
  for (int tries = 0;; tries++) {
    MDB_txn *txn;
    count = 0;
    /* Deleting frees pages but may copy a few first. */
    if ((rc = grow_for(c, 1u << 16))) break;
    if ((rc = begin(c, 1, &txn))) break;
    rc = purge_log(txn, c->dbi[DB_OFFSETS], before, &count);
    if (!rc) rc = purge_log(txn, c->dbi[DB_COMMITS], before, &count);
    rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
    if (rc != MDB_MAP_FULL || tries == 30 || (rc = grow_double(c))) break;
  }
  if (rc) return fail(c, NULL, rc, "purging the logs", err);
  if (removed) *removed = count;
  return 0;
}

/* --------------------------------------------------------- state scan --- */

/* Begin a read of state `name`: 0 with *txn open on it, MDB_NOTFOUND (no
 * transaction left open) when the state does not exist, or an error with
 * err set. */
static int read_state(tide_ckpt_t *c, const char *name, size_t name_len, MDB_txn **txn, MDB_dbi *dbi,
                      tide_err_t *err) {
  int rc = begin(c, 0, txn);
  if (rc) return fail(c, NULL, rc, "reading a state", err);
  rc = state_dbi(*txn, name, name_len, 0, dbi);
  if (rc == MDB_NOTFOUND) {
    end_read(*txn);
    return rc;
  }
  if (rc) {
    mdb_txn_abort(*txn);
    return state_fail(c, rc, "reading", name, name_len, err);
  }
  return 0;
}

int tide_ckpt_state_scan(tide_ckpt_t *c, const char *name, size_t name_len, const void *after, size_t after_len,
                         size_t max_entries, size_t max_bytes, tide_buf_t *out, size_t *n, int *done,
                         tide_err_t *err) {
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_cursor *cur = NULL;
  MDB_val k, v;
  size_t count = 0;
  out->len = 0;
  *n = 0;
  *done = 1;
  if (name_len == 0 || name_len > TIDE_CKPT_NAME_MAX || memchr(name, 0, name_len)) return 0; /* no such state */
  int rc = read_state(c, name, name_len, &txn, &dbi, err);
  if (rc) return rc == MDB_NOTFOUND ? 0 : rc;
  rc = mdb_cursor_open(txn, dbi, &cur);
  if (!rc) {
    if (after) {
      k.mv_size = after_len;
      k.mv_data = (void *)after;
      rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
      /* SET_RANGE lands on the first key >= after: skip after itself. */
      if (!rc && k.mv_size == after_len && !memcmp(k.mv_data, after, after_len))
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    } else {
      rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (; !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      if (count == max_entries || (count > 0 && out->len >= max_bytes)) {
        *done = 0;
        break;
      }
      size_t sz[2] = {k.mv_size, v.mv_size};
      if ((rc = tide_buf_reserve(out, sizeof sz + k.mv_size + v.mv_size))) break;
      tide_buf_append(out, sz, sizeof sz);
      tide_buf_append(out, k.mv_data, k.mv_size);
      tide_buf_append(out, v.mv_data, v.mv_size);
      count++;
    }
    if (rc == MDB_NOTFOUND) rc = 0;
  }
  if (cur) mdb_cursor_close(cur);
  end_read(txn);
  if (rc) return state_fail(c, rc, "reading", name, name_len, err);
  *n = count;
  return 0;
}

/* -------------------------------------------------------- state index --- */

int tide_ckpt_state_lookup(tide_ckpt_t *c, const char *name, size_t name_len, const char *index, size_t index_len,
                           const uint64_t *prefixes, size_t n, tide_ckpt_val_fn fn, void *arg, tide_err_t *err) {
  MDB_txn *txn;
  MDB_dbi vdbi, idbi;
  MDB_cursor *cur = NULL;
  if (!n) return 0;
  int rc = begin(c, 0, &txn);
  if (rc) return fail(c, NULL, rc, "reading a state", err);
  rc = state_dbi(txn, index, index_len, 0, &idbi);
  if (!rc) rc = state_dbi(txn, name, name_len, 0, &vdbi);
  if (rc == MDB_NOTFOUND) { /* nothing stored yet */
    end_read(txn);
    return 0;
  }
  if (!rc) rc = mdb_cursor_open(txn, idbi, &cur);
  int frc = 0; /* fn's failure: err is set already */
  for (size_t i = 0; i < n && !rc && !frc; i++) {
    unsigned char start[16];
    tide_ckpt_key_u64(start, prefixes[i]);
    memset(start + 8, 0, 8);
    MDB_val k = {16, start}, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); !rc && !frc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      if (k.mv_size != 16 || memcmp(k.mv_data, start, 8)) break;
      unsigned char vk[8];
      memcpy(vk, (const unsigned char *)k.mv_data + 8, 8);
      MDB_val key = {8, vk}, val;
      int g = mdb_get(txn, vdbi, &key, &val);
      if (g == MDB_NOTFOUND) continue;
      if (g) {
        rc = g;
        break;
      }
      frc = fn(arg, get_be64(vk), val.mv_data, val.mv_size, err);
    }
    if (rc == MDB_NOTFOUND) rc = 0;
  }
  if (cur) mdb_cursor_close(cur);
  end_read(txn);
  if (frc) return frc;
  if (rc) return state_fail(c, rc, "reading", index, index_len, err);
  return 0;
}

/* One transaction of tide_ckpt_index_merge: up to `chunk` more entries
 * after dst's last key (from the start when dst is empty), in key order,
 * appended to dst; *done when the sources have no more, and then (in this
 * same transaction) the sources are dropped, and dst too when empty.
 * *count gets dst's entries. */
static int merge_step(tide_ckpt_t *c, const char *rec, size_t rec_len, const char *const *srcs,
                      const size_t *src_lens, size_t nsrc, const char *dst, size_t dst_len, int gc, size_t chunk,
                      uint64_t *count, int *done) {
  MDB_txn *txn;
  MDB_dbi rdbi, ddbi, sdbi[64];
  MDB_cursor *cur[64], *dcur = NULL;
  MDB_val key[64], v, last = {0, NULL};
  int live[64], has[64];
  unsigned char lastk[16];
  size_t moved = 0;
  *done = 0;
  if (nsrc > 64) return TIDE_EINVAL;
  for (size_t i = 0; i < nsrc; i++) {
    cur[i] = NULL;
    live[i] = has[i] = 0;
  }
  int rc = begin(c, 1, &txn);
  if (rc) return rc;
  rc = state_dbi(txn, rec, rec_len, 1, &rdbi);
  if (!rc) rc = state_dbi(txn, dst, dst_len, 1, &ddbi);
  if (!rc) rc = mdb_cursor_open(txn, ddbi, &dcur);
  if (!rc) { /* where the last step stopped */
    MDB_val lk;
    int o = mdb_cursor_get(dcur, &lk, &v, MDB_LAST);
    if (!o && lk.mv_size == 16) {
      memcpy(lastk, lk.mv_data, 16);
      last.mv_size = 16;
      last.mv_data = lastk;
    } else if (o && o != MDB_NOTFOUND) {
      rc = o;
    }
  }
  for (size_t i = 0; i < nsrc && !rc; i++) {
    int o = state_dbi(txn, srcs[i], src_lens[i], 0, &sdbi[i]);
    if (o == MDB_NOTFOUND) continue; /* never written: empty */
    if ((rc = o)) break;
    has[i] = 1;
    if ((rc = mdb_cursor_open(txn, sdbi[i], &cur[i]))) break;
    if (last.mv_size) {
      key[i] = last;
      o = mdb_cursor_get(cur[i], &key[i], &v, MDB_SET_RANGE);
      if (!o && key_cmp(key[i].mv_data, key[i].mv_size, lastk, 16) == 0)
        o = mdb_cursor_get(cur[i], &key[i], &v, MDB_NEXT);
    } else {
      o = mdb_cursor_get(cur[i], &key[i], &v, MDB_FIRST);
    }
    if (o && o != MDB_NOTFOUND) rc = o;
    live[i] = !o;
  }
  while (!rc && moved < chunk) { /* the k-way merge: k is small (the runs of one index) */
    size_t best = nsrc;
    for (size_t i = 0; i < nsrc; i++)
      if (live[i] && (best == nsrc || key_cmp(key[i].mv_data, key[i].mv_size, key[best].mv_data,
                                              key[best].mv_size) < 0))
        best = i;
    if (best == nsrc) {
      *done = 1;
      break;
    }
    MDB_val k = key[best];
    if (k.mv_size == 16) {
      MDB_val id = {8, (unsigned char *)k.mv_data + 8}, val;
      int g = gc ? mdb_get(txn, rdbi, &id, &val) : 0;
      if (!g) {
        MDB_val empty = {0, NULL};
        if ((rc = mdb_cursor_put(dcur, &k, &empty, MDB_APPEND))) break;
        moved++;
      } else if (g != MDB_NOTFOUND) {
        rc = g;
        break;
      }
    }
    int o = mdb_cursor_get(cur[best], &key[best], &v, MDB_NEXT);
    if (o && o != MDB_NOTFOUND) rc = o;
    live[best] = !o;
  }
  if (!rc && !*done) { /* a full chunk: is anything left? */
    int any = 0;
    for (size_t i = 0; i < nsrc; i++) any |= live[i];
    *done = !any;
  }
  for (size_t i = 0; i < nsrc; i++)
    if (cur[i]) mdb_cursor_close(cur[i]);
  MDB_stat ms;
  if (!rc) rc = mdb_stat(txn, ddbi, &ms);
  if (dcur) mdb_cursor_close(dcur);
  if (!rc) *count = ms.ms_entries;
  for (size_t i = 0; i < nsrc && !rc && *done; i++)
    if (has[i]) rc = mdb_drop(txn, sdbi[i], 1);
  if (!rc && *done && !*count) rc = mdb_drop(txn, ddbi, 1);
  return rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
}

/* Entries a merge moves per write transaction: what LMDB holds in memory
 * until a commit stays small (about 26 bytes an entry). */
#define MERGE_CHUNK (1u << 20)

int tide_ckpt_index_merge(tide_ckpt_t *c, const char *rec, size_t rec_len, const char *const *srcs,
                          const size_t *src_lens, size_t nsrc, const char *dst, size_t dst_len, int gc,
                          uint64_t *count, tide_err_t *err) {
  int rc = check_writable(c, "index merge", err), done = 0;
  while (!rc && !done) {
    for (int tries = 0;; tries++) {
      if ((rc = grow_for(c, (uint64_t)MERGE_CHUNK * 64))) break;
      rc = merge_step(c, rec, rec_len, srcs, src_lens, nsrc, dst, dst_len, gc, MERGE_CHUNK, count, &done);
      if (rc != MDB_MAP_FULL || tries == 30 || (rc = grow_double(c))) break;
    }
    tide_ckpt_release_pages(c); /* what the step read: the sources are read once */
  }
  if (rc) return state_fail(c, rc, "merging the index runs of", rec, rec_len, err);
  return 0;
}

int tide_ckpt_state_drop(tide_ckpt_t *c, const char *name, size_t name_len, tide_err_t *err) {
  int rc = check_writable(c, "drop", err);
  if (rc) return rc;
  MDB_txn *txn;
  MDB_dbi dbi;
  for (int tries = 0;; tries++) {
    if ((rc = grow_for(c, 1u << 16))) break;
    if ((rc = begin(c, 1, &txn))) break;
    rc = state_dbi(txn, name, name_len, 0, &dbi);
    if (rc == MDB_NOTFOUND) {
      mdb_txn_abort(txn);
      return 0;
    }
    if (!rc) rc = mdb_drop(txn, dbi, 1);
    rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
    if (rc != MDB_MAP_FULL || tries == 30 || (rc = grow_double(c))) break;
  }
  return rc ? state_fail(c, rc, "dropping", name, name_len, err) : 0;
}

/* LMDB does not say where it mapped data.mdb (mdb_env_info's address is
 * that of MDB_FIXEDMAP only): the process's maps do, by the file's
 * canonical path. */
void tide_ckpt_release_pages(tide_ckpt_t *c) {
  /* advice only: skipped (not waited for) while an overlapped commit is
   * in flight, whose thread reads the map; the next call drops them */
  if (c->async) return;
  char *data = path_join(c->dir, "data.mdb"), *real = data ? realpath(data, NULL) : NULL;
  FILE *f = real ? fopen("/proc/self/maps", "re") : NULL;
  char line[4352];
  size_t rl = real ? strlen(real) : 0;
  while (f && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    int at = 0;
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &at) != 2 || !at) continue;
    const char *p = line + at;
    if (strncmp(p, real, rl) || (p[rl] != '\n' && p[rl] != 0)) continue;
    /* a read-only shared map of the file: the pages stay in the page cache
     * and fault back in from it when read again */
    if (madvise((void *)lo, hi - lo, MADV_DONTNEED)) { /* advice only: nothing to undo */
    }
  }
  if (f) fclose(f);
  free(real);
  free(data);
}

int tide_ckpt_state_tail(tide_ckpt_t *c, const char *name, size_t name_len, uint64_t *entries, uint64_t *last,
                         tide_err_t *err) {
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_cursor *cur = NULL;
  MDB_stat ms;
  *entries = *last = 0;
  int rc = read_state(c, name, name_len, &txn, &dbi, err);
  if (rc) return rc == MDB_NOTFOUND ? 0 : rc;
  rc = mdb_stat(txn, dbi, &ms);
  if (!rc) rc = mdb_cursor_open(txn, dbi, &cur);
  if (!rc) {
    MDB_val k, v;
    *entries = ms.ms_entries;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (!rc && k.mv_size == 8) *last = get_be64(k.mv_data);
    if (rc == MDB_NOTFOUND) rc = 0;
  }
  if (cur) mdb_cursor_close(cur);
  end_read(txn);
  if (rc) return state_fail(c, rc, "reading", name, name_len, err);
  return 0;
}

/* -------------------------------------------------------------- stats --- */

static uint64_t db_bytes(const MDB_stat *s) {
  return ((uint64_t)s->ms_branch_pages + s->ms_leaf_pages + s->ms_overflow_pages) * s->ms_psize;
}

/* The states: every key "state:<name>" of the main database. */
static int stats_states(MDB_txn *txn, tide_ckpt_stats_t *st, tide_buf_t *states) {
  MDB_dbi main_dbi;
  MDB_cursor *cur;
  MDB_val k, v;
  int rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
  if (rc) return rc;
  if ((rc = mdb_cursor_open(txn, main_dbi, &cur))) return rc;
  k.mv_size = STATE_PREFIX_LEN;
  k.mv_data = STATE_PREFIX;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (k.mv_size < STATE_PREFIX_LEN || memcmp(k.mv_data, STATE_PREFIX, STATE_PREFIX_LEN)) break;
    size_t len = k.mv_size - STATE_PREFIX_LEN;
    if (len == 0 || len > TIDE_CKPT_NAME_MAX) continue;
    tide_ckpt_state_stat_t s;
    memset(&s, 0, sizeof s);
    memcpy(s.name, (const char *)k.mv_data + STATE_PREFIX_LEN, len);
    MDB_dbi dbi;
    MDB_stat ms;
    if ((rc = state_dbi(txn, s.name, len, 0, &dbi)) || (rc = mdb_stat(txn, dbi, &ms))) break;
    s.entries = ms.ms_entries;
    s.bytes = db_bytes(&ms);
    if ((rc = tide_buf_append(states, &s, sizeof s))) break;
    st->nstates++;
  }
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

int tide_ckpt_stats(tide_ckpt_t *c, tide_ckpt_stats_t *st, tide_buf_t *states, tide_err_t *err) {
  memset(st, 0, sizeof *st);
  states->len = 0;
  MDB_envinfo info;
  int rc = mdb_env_info(c->env, &info);
  if (rc) return fail(c, NULL, rc, "reading the environment", err);
  st->map_bytes = info.me_mapsize;
  char *data = path_join(c->dir, "data.mdb");
  if (!data) return -ENOMEM;
  struct stat fs;
  if (stat(data, &fs) == 0) st->file_bytes = (uint64_t)fs.st_size;
  free(data);
  MDB_txn *txn;
  if ((rc = begin(c, 0, &txn))) return fail(c, NULL, rc, "reading stats", err);
  uint64_t *counts[2] = {&st->offsets, &st->commits};
  int64_t first[2] = {-1, -1};
  for (int i = 0; i < 2 && !rc; i++) {
    int which = i ? DB_COMMITS : DB_OFFSETS;
    MDB_dbi dbi;
    MDB_stat ms;
    rc = fixed_dbi(c, txn, which, &dbi);
    if (rc == MDB_NOTFOUND) {
      rc = 0;
      continue;
    }
    if (!rc) rc = mdb_stat(txn, dbi, &ms);
    if (!rc) *counts[i] = ms.ms_entries;
    if (!rc) rc = log_end(c, txn, which, MDB_FIRST, &first[i]);
  }
  if (!rc) rc = log_end(c, txn, DB_OFFSETS, MDB_LAST, &st->last_offset_id);
  if (!rc) rc = log_end(c, txn, DB_COMMITS, MDB_LAST, &st->last_commit_id);
  if (!rc) rc = stats_states(txn, st, states);
  end_read(txn);
  if (rc) return fail(c, NULL, rc, "reading stats", err);
  st->first_id = first[0] < 0 ? first[1] : first[1] < 0 ? first[0] : (first[0] < first[1] ? first[0] : first[1]);
  return 0;
}
