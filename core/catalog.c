/*
 * catalog.c: the catalog's records in LMDB (layouts in catalog.h and
 * docs/FORMAT.md).
 *
 * Records are encoded field by field into fixed little-endian layouts that
 * start with a one-byte record version, so that a later format can add
 * fields and still read the old records.
 */
#include "catalog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <string.h>
#include <sys/stat.h>

#define TOPIC_REC_VERSION 1
#define TOPIC_REC_SIZE 80
#define SEG_REC_VERSION 1
#define SEG_REC_SIZE 72
#define WRITER_REC_VERSION 1
#define WRITER_REC_SIZE 24

/* ------------------------------------------------------------ helpers --- */

static void put_le(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * i));
}
static uint64_t get_le(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}
static void put_be(unsigned char *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}
static uint64_t get_be(const unsigned char *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

/* ---------------------------------------------------------- open/close --- */

static int catalog_open(const char *dir, int sync, uint64_t map_size, tide_catalog_t **out, tide_err_t *err);

/* A new catalog's data.mdb is made whole (databases, format, store id
 * committed and synced) in its own directory, NEW_PREFIX<pid>, and linked
 * into place: a write that fails while LMDB lays out a new file (its two
 * meta pages) would otherwise leave a data.mdb that LMDB refuses for ever
 * ("File is not an LMDB file"); this way a failed creation leaves no
 * data.mdb and the next open starts again. link(), not rename(): when two
 * processes create one store at once, the first link wins and the other
 * process opens the winner's catalog (rename would replace a catalog that
 * the first may already use). Nothing to do when data.mdb exists. */
#define NEW_PREFIX ".new-"
static int create_data(const char *dir, uint64_t map_size, tide_err_t *err) {
  char data[4096], tmp[4096], tdata[4096 + 16], tlock[4096 + 16];
  struct stat st;
  int rc = 0;
  if (snprintf(data, sizeof data, "%s/data.mdb", dir) >= (int)sizeof data ||
      snprintf(tmp, sizeof tmp, "%s/" NEW_PREFIX "%ld", dir, (long)getpid()) >= (int)sizeof tmp)
    return tide_err_set(err, -ENAMETOOLONG, "catalog %s: %s", dir, tide_strerror(-ENAMETOOLONG));
  snprintf(tdata, sizeof tdata, "%s/data.mdb", tmp);
  snprintf(tlock, sizeof tlock, "%s/lock.mdb", tmp);
  if (stat(data, &st) == 0) return 0;
  if (errno != ENOENT) return tide_err_set(err, -errno, "catalog %s: data.mdb: %s", dir, tide_strerror(-errno));
  unlink(tdata); /* what a failed creation of a process with our pid left */
  unlink(tlock);
  if (mkdir(tmp, 0777) < 0 && errno != EEXIST)
    return tide_err_set(err, -errno, "cannot create %s: %s", tmp, tide_strerror(-errno));
  tide_catalog_t *c;
  if (!(rc = catalog_open(tmp, 1, map_size, &c, err))) {
    tide_catalog_close(c);
    if (link(tdata, data) < 0 && errno != EEXIST) {
      rc = tide_err_set(err, -errno, "catalog %s: cannot link data.mdb: %s", dir, tide_strerror(-errno));
    } else {
      int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0 || fsync(fd) < 0)
        rc = tide_err_set(err, -errno, "catalog %s: cannot sync the directory: %s", dir, tide_strerror(-errno));
      if (fd >= 0) close(fd);
    }
  }
  unlink(tdata);
  unlink(tlock);
  rmdir(tmp);
  return rc;
}

int tide_catalog_open(const char *dir, int sync, uint64_t map_size, tide_catalog_t **out, tide_err_t *err) {
  if (mkdir(dir, 0777) < 0 && errno != EEXIST) {
    int rc = -errno;
    return tide_err_set(err, rc, "cannot create %s: %s", dir, tide_strerror(rc));
  }
  int rc = create_data(dir, map_size, err);
  return rc ? rc : catalog_open(dir, sync, map_size, out, err);
}

static int catalog_open(const char *dir, int sync, uint64_t map_size, tide_catalog_t **out, tide_err_t *err) {
  tide_catalog_t *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  c->sync = sync;
  MDB_txn *txn = NULL;
  int rc;
  if ((rc = mdb_env_create(&c->env))) goto fail_lmdb;
  mdb_env_set_maxdbs(c->env, 8);
  mdb_env_set_maxreaders(c->env, 254);
  if ((rc = mdb_env_set_mapsize(c->env, map_size ? map_size : (64u << 20)))) goto fail_lmdb;
  /* MDB_NOTLS: read transactions are not tied to threads (the Lua layer may
   * hold one across calls). NOSYNC when the store is opened with sync=false. */
  if ((rc = mdb_env_open(c->env, dir, MDB_NOTLS | (sync ? 0 : MDB_NOSYNC), 0666))) goto fail_lmdb;
  {
    /* Adopt a map that is larger on disk than asked (grown earlier). */
    MDB_envinfo info;
    mdb_env_info(c->env, &info);
    if ((rc = mdb_env_set_mapsize(c->env, info.me_mapsize))) goto fail_lmdb;
  }
  if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn))) goto fail_lmdb;
  if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &c->meta)) ||
      (rc = mdb_dbi_open(txn, "topics", MDB_CREATE, &c->topics)) ||
      (rc = mdb_dbi_open(txn, "topic_ids", MDB_CREATE, &c->topic_ids)) ||
      (rc = mdb_dbi_open(txn, "schemas", MDB_CREATE, &c->schemas)) ||
      (rc = mdb_dbi_open(txn, "segs", MDB_CREATE, &c->segs)) ||
      /* added after format 1 was fixed: an older catalog simply gets the
       * database here, empty (no writer has recorded anything yet) */
      (rc = mdb_dbi_open(txn, "writers", MDB_CREATE, &c->writers)))
    goto fail_lmdb;
  {
    MDB_val k = {6, "format"}, v;
    rc = mdb_get(txn, c->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
      unsigned char buf[4];
      put_le(buf, TIDE_CATALOG_VERSION, 4);
      v.mv_size = 4;
      v.mv_data = buf;
      if ((rc = mdb_put(txn, c->meta, &k, &v, 0))) goto fail_lmdb;
    } else if (rc) {
      goto fail_lmdb;
    } else if (v.mv_size != 4 || get_le(v.mv_data, 4) != TIDE_CATALOG_VERSION) {
      rc = tide_err_set(err, TIDE_EFORMAT, "catalog format %u, this build reads %u",
                        v.mv_size == 4 ? (unsigned)get_le(v.mv_data, 4) : 0u, TIDE_CATALOG_VERSION);
      goto fail;
    }
  }
  {
    /* The store's identity: random, made once. */
    MDB_val k = {8, "store_id"}, v;
    rc = mdb_get(txn, c->meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
      unsigned char raw[16];
      int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
      if (fd < 0 || read(fd, raw, sizeof raw) != (ssize_t)sizeof raw) {
        uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)c;
        for (int i = 0; i < 16; i++, x = x * 6364136223846793005ULL + 1442695040888963407ULL) raw[i] = (unsigned char)(x >> 56);
      }
      if (fd >= 0) close(fd);
      for (int i = 0; i < 16; i++) snprintf(c->store_id + 2 * i, 3, "%02x", raw[i]);
      v.mv_size = 32;
      v.mv_data = c->store_id;
      if ((rc = mdb_put(txn, c->meta, &k, &v, 0))) goto fail_lmdb;
    } else if (rc) {
      goto fail_lmdb;
    } else if (v.mv_size != 32) {
      rc = tide_err_set(err, TIDE_ECORRUPT, "catalog %s: bad store id", dir);
      goto fail;
    } else {
      memcpy(c->store_id, v.mv_data, 32);
    }
    c->store_id[32] = 0;
  }
  if ((rc = mdb_txn_commit(txn))) {
    txn = NULL;
    goto fail_lmdb;
  }
  *out = c;
  return 0;
fail_lmdb:
  rc = tide_err_lmdb(rc, dir);
  tide_err_set(err, rc, "catalog %s: %s", dir, tide_strerror(rc));
fail:
  if (txn) mdb_txn_abort(txn);
  if (c->env) mdb_env_close(c->env);
  free(c);
  return rc;
}

void tide_catalog_close(tide_catalog_t *c) {
  if (!c) return;
  mdb_env_close(c->env);
  free(c);
}

/* tide_catalog_begin: begin a transaction. Before a write transaction, grow
 * the map when more than half of it is in use, so that a single write (a
 * few records) never meets MDB_MAP_FULL. Growing needs no transaction open
 * in this process, which holds because each write is begun here and ended
 * before the next. */
int tide_catalog_begin(tide_catalog_t *c, int write, MDB_txn **txn) {
  if (write) {
    MDB_envinfo info;
    MDB_stat st;
    if (!mdb_env_info(c->env, &info) && !mdb_env_stat(c->env, &st)) {
      uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
      if (used * 2 > info.me_mapsize) mdb_env_set_mapsize(c->env, info.me_mapsize * 2);
    }
  }
  int rc = mdb_txn_begin(c->env, NULL, write ? 0 : MDB_RDONLY, txn);
  if (rc == MDB_MAP_RESIZED) {
    /* Another process grew the map: adopt its size and try once more. */
    mdb_env_set_mapsize(c->env, 0);
    rc = mdb_txn_begin(c->env, NULL, write ? 0 : MDB_RDONLY, txn);
  }
  return rc;
}

/* -------------------------------------------------------------- topics --- */

static void topic_enc(unsigned char *p, const tide_topic_rec_t *r) {
  memset(p, 0, TOPIC_REC_SIZE);
  p[0] = TOPIC_REC_VERSION;
  put_le(p + 4, r->id, 4);
  put_le(p + 8, r->partitions, 4);
  put_le(p + 12, (uint64_t)r->retention_ms, 8);
  put_le(p + 20, (uint64_t)r->retention_bytes, 8);
  put_le(p + 28, (uint64_t)r->segment_bytes, 8);
  put_le(p + 36, (uint64_t)r->segment_ms, 8);
  put_le(p + 44, (uint32_t)r->time_col, 4);
  put_le(p + 48, r->flags, 4);
  put_le(p + 52, r->schema_version, 4);
  put_le(p + 56, r->compat, 4);
  put_le(p + 60, (uint64_t)r->created_ms, 8);
  put_le(p + 68, r->rr, 8);
}

static int topic_dec(const MDB_val *v, tide_topic_rec_t *r) {
  const unsigned char *p = v->mv_data;
  if (v->mv_size < TOPIC_REC_SIZE || p[0] != TOPIC_REC_VERSION) return TIDE_ECORRUPT;
  r->id = (uint32_t)get_le(p + 4, 4);
  r->partitions = (uint32_t)get_le(p + 8, 4);
  r->retention_ms = (int64_t)get_le(p + 12, 8);
  r->retention_bytes = (int64_t)get_le(p + 20, 8);
  r->segment_bytes = (int64_t)get_le(p + 28, 8);
  r->segment_ms = (int64_t)get_le(p + 36, 8);
  r->time_col = (int32_t)(uint32_t)get_le(p + 44, 4);
  r->flags = (uint32_t)get_le(p + 48, 4);
  r->schema_version = (uint32_t)get_le(p + 52, 4);
  r->compat = (uint32_t)get_le(p + 56, 4);
  r->created_ms = (int64_t)get_le(p + 60, 8);
  r->rr = get_le(p + 68, 8);
  return 0;
}

int tide_catalog_topic_get(MDB_txn *txn, tide_catalog_t *c, const char *name, tide_topic_rec_t *r) {
  MDB_val k = {strlen(name), (void *)name}, v;
  int rc = mdb_get(txn, c->topics, &k, &v);
  return rc ? rc : topic_dec(&v, r);
}

int tide_catalog_topic_put(MDB_txn *txn, tide_catalog_t *c, const char *name, const tide_topic_rec_t *r) {
  unsigned char buf[TOPIC_REC_SIZE], idk[4];
  topic_enc(buf, r);
  put_be(idk, r->id, 4);
  MDB_val k = {strlen(name), (void *)name}, v = {sizeof buf, buf};
  MDB_val ik = {4, idk}, iv = {strlen(name), (void *)name};
  int rc = mdb_put(txn, c->topics, &k, &v, 0);
  return rc ? rc : mdb_put(txn, c->topic_ids, &ik, &iv, 0);
}

int tide_catalog_topic_del(MDB_txn *txn, tide_catalog_t *c, const char *name, uint32_t id) {
  unsigned char idk[4];
  put_be(idk, id, 4);
  MDB_val k = {strlen(name), (void *)name}, ik = {4, idk};
  int rc = mdb_del(txn, c->topics, &k, NULL);
  if (rc) return rc;
  rc = mdb_del(txn, c->topic_ids, &ik, NULL);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

int tide_catalog_topic_id_exists(MDB_txn *txn, tide_catalog_t *c, uint32_t id) {
  unsigned char idk[4];
  put_be(idk, id, 4);
  MDB_val k = {4, idk}, v;
  int rc = mdb_get(txn, c->topic_ids, &k, &v);
  return rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : rc;
}

int tide_catalog_next_topic_id(MDB_txn *txn, tide_catalog_t *c, uint32_t *id) {
  MDB_val k = {13, "next_topic_id"}, v;
  unsigned char buf[4];
  uint32_t next = 1;
  int rc = mdb_get(txn, c->meta, &k, &v);
  if (rc == 0 && v.mv_size == 4) next = (uint32_t)get_le(v.mv_data, 4);
  else if (rc && rc != MDB_NOTFOUND) return rc;
  *id = next;
  put_le(buf, next + 1, 4);
  v.mv_size = 4;
  v.mv_data = buf;
  return mdb_put(txn, c->meta, &k, &v, 0);
}

int tide_catalog_topic_names(MDB_txn *txn, tide_catalog_t *c, char ***names, size_t *n) {
  MDB_cursor *cur;
  MDB_val k, v;
  size_t count = 0, bytes = 0;
  int rc = mdb_cursor_open(txn, c->topics, &cur);
  if (rc) return rc;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    count++;
    bytes += k.mv_size + 1;
  }
  char **arr = malloc((count + 1) * sizeof(char *) + bytes);
  if (!arr) {
    mdb_cursor_close(cur);
    return -ENOMEM;
  }
  char *s = (char *)(arr + count + 1);
  size_t i = 0;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc && i < count;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    memcpy(s, k.mv_data, k.mv_size);
    s[k.mv_size] = 0;
    arr[i++] = s;
    s += k.mv_size + 1;
  }
  arr[i] = NULL;
  mdb_cursor_close(cur);
  *names = arr;
  *n = i;
  return 0;
}

/* ------------------------------------------------------------- schemas --- */

int tide_catalog_schema_put(MDB_txn *txn, tide_catalog_t *c, uint32_t id, uint32_t version,
                            const tide_schema_t *s) {
  unsigned char key[8];
  put_be(key, id, 4);
  put_be(key + 4, version, 4);
  tide_buf_t b = TIDE_BUF_INIT;
  int rc = tide_schema_encode(s, &b);
  if (!rc) {
    MDB_val k = {8, key}, v = {b.len, b.data};
    rc = mdb_put(txn, c->schemas, &k, &v, 0);
  }
  tide_buf_free(&b);
  return rc;
}

int tide_catalog_schema_get(MDB_txn *txn, tide_catalog_t *c, uint32_t id, uint32_t version,
                            tide_schema_t **s, tide_err_t *err) {
  unsigned char key[8];
  put_be(key, id, 4);
  put_be(key + 4, version, 4);
  MDB_val k = {8, key}, v;
  int rc = mdb_get(txn, c->schemas, &k, &v);
  return rc ? rc : tide_schema_decode(v.mv_data, v.mv_size, s, err);
}

/* ------------------------------------------------------------ segments --- */

static void seg_key(unsigned char *k, uint32_t id, uint32_t part, uint64_t base) {
  put_be(k, id, 4);
  put_be(k + 4, part, 4);
  put_be(k + 8, base, 8);
}

static void seg_enc(unsigned char *p, const tide_seg_rec_t *r) {
  memset(p, 0, SEG_REC_SIZE);
  p[0] = SEG_REC_VERSION;
  put_le(p + 4, r->state, 4);
  put_le(p + 8, r->end, 8);
  put_le(p + 16, (uint64_t)r->min_ts, 8);
  put_le(p + 24, (uint64_t)r->max_ts, 8);
  put_le(p + 32, r->bytes, 8);
  put_le(p + 40, r->stored_bytes, 8);
  put_le(p + 48, (uint64_t)r->created_ms, 8);
  put_le(p + 56, (uint64_t)r->last_write_ms, 8);
}

static int seg_dec(const MDB_val *k, const MDB_val *v, tide_seg_rec_t *r) {
  const unsigned char *p = v->mv_data;
  if (k->mv_size != 16 || v->mv_size < SEG_REC_SIZE || p[0] != SEG_REC_VERSION) return TIDE_ECORRUPT;
  r->base = get_be((const unsigned char *)k->mv_data + 8, 8);
  r->state = (uint32_t)get_le(p + 4, 4);
  r->end = get_le(p + 8, 8);
  r->min_ts = (int64_t)get_le(p + 16, 8);
  r->max_ts = (int64_t)get_le(p + 24, 8);
  r->bytes = get_le(p + 32, 8);
  r->stored_bytes = get_le(p + 40, 8);
  r->created_ms = (int64_t)get_le(p + 48, 8);
  r->last_write_ms = (int64_t)get_le(p + 56, 8);
  return 0;
}

int tide_catalog_seg_put(MDB_txn *txn, tide_catalog_t *c, uint32_t id, uint32_t part, const tide_seg_rec_t *r) {
  unsigned char key[16], val[SEG_REC_SIZE];
  seg_key(key, id, part, r->base);
  seg_enc(val, r);
  MDB_val k = {16, key}, v = {SEG_REC_SIZE, val};
  return mdb_put(txn, c->segs, &k, &v, 0);
}

int tide_catalog_seg_del(MDB_txn *txn, tide_catalog_t *c, uint32_t id, uint32_t part, uint64_t base) {
  unsigned char key[16];
  seg_key(key, id, part, base);
  MDB_val k = {16, key};
  return mdb_del(txn, c->segs, &k, NULL);
}

int tide_catalog_segs(MDB_txn *txn, tide_catalog_t *c, uint32_t id, uint32_t part, tide_seg_rec_t **segs,
                      size_t *n) {
  unsigned char key[16];
  seg_key(key, id, part, 0);
  MDB_cursor *cur;
  MDB_val k = {16, key}, v;
  size_t count = 0, cap = 0;
  tide_seg_rec_t *arr = NULL;
  int rc = mdb_cursor_open(txn, c->segs, &cur);
  if (rc) return rc;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (k.mv_size != 16 || memcmp(k.mv_data, key, 8)) break;
    if (count == cap) {
      cap = cap ? cap * 2 : 8;
      tide_seg_rec_t *p = realloc(arr, cap * sizeof *arr);
      if (!p) {
        rc = -ENOMEM;
        break;
      }
      arr = p;
    }
    if ((rc = seg_dec(&k, &v, &arr[count]))) break;
    count++;
  }
  mdb_cursor_close(cur);
  if (rc && rc != MDB_NOTFOUND) {
    free(arr);
    return rc;
  }
  *segs = arr;
  *n = count;
  return 0;
}

int tide_catalog_seg_last(MDB_txn *txn, tide_catalog_t *c, uint32_t id, uint32_t part, tide_seg_rec_t *r) {
  unsigned char key[16];
  /* Position past the partition's last key, then step back. */
  seg_key(key, id, part, UINT64_MAX);
  MDB_cursor *cur;
  MDB_val k = {16, key}, v;
  int rc = mdb_cursor_open(txn, c->segs, &cur);
  if (rc) return rc;
  rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
  if (rc == 0 && k.mv_size == 16 && !memcmp(k.mv_data, key, 16)) {
    /* a segment at UINT64_MAX cannot exist; fall through to PREV anyway */
  }
  if (rc == MDB_NOTFOUND) rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
  else if (rc == 0) rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
  if (rc == 0) {
    seg_key(key, id, part, 0);
    if (k.mv_size != 16 || memcmp(k.mv_data, key, 8)) rc = MDB_NOTFOUND;
    else rc = seg_dec(&k, &v, r);
  }
  mdb_cursor_close(cur);
  return rc;
}

/* Delete every key of db that starts with prefix[0..plen): collect the
 * keys first, then delete them, so no cursor walks pages it is changing.
 * Keys of the catalog are at most 16 bytes. */
typedef struct {
  size_t len;
  unsigned char k[16];
} key16_t;

static int del_prefix(MDB_txn *txn, MDB_dbi db, const unsigned char *prefix, size_t plen) {
  MDB_cursor *cur;
  unsigned char start[16] = {0};
  memcpy(start, prefix, plen);
  MDB_val k = {plen, start}, v;
  key16_t *keys = NULL;
  size_t n = 0, cap = 0;
  int rc = mdb_cursor_open(txn, db, &cur);
  if (rc) return rc;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); !rc; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (k.mv_size < plen || k.mv_size > 16 || memcmp(k.mv_data, prefix, plen)) break;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      key16_t *p = realloc(keys, cap * sizeof *keys);
      if (!p) {
        rc = -ENOMEM;
        break;
      }
      keys = p;
    }
    keys[n].len = k.mv_size;
    memcpy(keys[n].k, k.mv_data, k.mv_size);
    n++;
  }
  mdb_cursor_close(cur);
  if (rc == MDB_NOTFOUND) rc = 0;
  for (size_t i = 0; !rc && i < n; i++) {
    MDB_val dk = {keys[i].len, keys[i].k};
    rc = mdb_del(txn, db, &dk, NULL);
  }
  free(keys);
  return rc;
}

/* Delete every key of db starting with prefix[0..plen), whatever its
 * length: seek to the first such key, delete it through the cursor, seek
 * again. Re-seeking after each delete keeps the cursor on pages that are
 * current (one O(log n) seek per key; a topic has few writers). */
static int del_prefix_any(MDB_txn *txn, MDB_dbi db, const unsigned char *prefix, size_t plen) {
  MDB_cursor *cur;
  int rc = mdb_cursor_open(txn, db, &cur);
  if (rc) return rc;
  for (;;) {
    MDB_val k = {plen, (void *)prefix}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    if (rc || k.mv_size < plen || memcmp(k.mv_data, prefix, plen)) break;
    if ((rc = mdb_cursor_del(cur, 0))) break;
  }
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

int tide_catalog_purge(MDB_txn *txn, tide_catalog_t *c, uint32_t id) {
  unsigned char p[4];
  put_be(p, id, 4);
  int rc = del_prefix(txn, c->segs, p, 4);
  if (!rc) rc = del_prefix(txn, c->schemas, p, 4);
  return rc ? rc : del_prefix_any(txn, c->writers, p, 4);
}

/* ------------------------------------------------------------- writers --- */

static int writer_key(unsigned char *k, uint32_t id, const char *writer, size_t len) {
  if (len == 0 || len > TIDE_WRITER_MAX) return TIDE_EINVAL;
  put_be(k, id, 4);
  memcpy(k + 4, writer, len);
  return 0;
}

int tide_catalog_writer_get(MDB_txn *txn, tide_catalog_t *c, uint32_t id, const char *writer, size_t len,
                            tide_writer_rec_t *r) {
  unsigned char key[4 + TIDE_WRITER_MAX];
  int rc = writer_key(key, id, writer, len);
  if (rc) return rc;
  MDB_val k = {4 + len, key}, v;
  if ((rc = mdb_get(txn, c->writers, &k, &v))) return rc;
  const unsigned char *p = v.mv_data;
  if (v.mv_size < WRITER_REC_SIZE || p[0] != WRITER_REC_VERSION) return TIDE_ECORRUPT;
  r->seq = get_le(p + 8, 8);
  r->updated_ms = (int64_t)get_le(p + 16, 8);
  return 0;
}

int tide_catalog_writer_put(MDB_txn *txn, tide_catalog_t *c, uint32_t id, const char *writer, size_t len,
                            const tide_writer_rec_t *r) {
  unsigned char key[4 + TIDE_WRITER_MAX], val[WRITER_REC_SIZE];
  int rc = writer_key(key, id, writer, len);
  if (rc) return rc;
  memset(val, 0, sizeof val);
  val[0] = WRITER_REC_VERSION;
  put_le(val + 8, r->seq, 8);
  put_le(val + 16, (uint64_t)r->updated_ms, 8);
  MDB_val k = {4 + len, key}, v = {sizeof val, val};
  return mdb_put(txn, c->writers, &k, &v, 0);
}
