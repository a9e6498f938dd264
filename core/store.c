/*
 * store.c: topics over segment files, with the LMDB catalog as the source of
 * truth (see store.h for the directory layout and the rules).
 *
 * The write path, for every kind of write:
 *
 *   begin LMDB write txn          (serialises writers across processes)
 *   read the catalog state        (fresh: another process may have written)
 *   repair torn tails             (truncate files past their committed size)
 *   write files                   (blocks, new segments, cold copies)
 *   fdatasync files (+ directory) (when the store syncs)
 *   put catalog records, commit   (the moment the write becomes real)
 *   remove files no longer named  (dropped or offloaded segments)
 *
 * A failure before the commit undoes the file writes (truncate, unlink) and
 * aborts the transaction; a crash before the commit leaves bytes and files
 * the catalog does not name, which the next writer or the next open removes.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "jsonl.h"
#include "registry.h"
#include "seg.h"
#include "tier.h"
#include "vec.h"

#define PATH_LEN 4096
#define FLUSH_BYTES (8u << 20)          /* write encoded blocks in chunks of this */
#define DEFAULT_SEGMENT_BYTES (64 << 20)
#define MIN_SEGMENT_BYTES 1024

_Static_assert(TIDE_WRITER_ID_MAX == TIDE_WRITER_MAX, "one limit for writer ids");

/* A block a read ended inside of (its rows past the read's `to` are the
 * next read's first), checked (CRC and layout) by that read: where it is,
 * its length, its stored CRC and column count. Later reads of the topic
 * (the next one starts in it) do not check it again while the block at
 * that place has that length and stored CRC: a streaming source whose
 * batches cut blocks checks each block once, as one long read does (which
 * also trusts the page cache for bytes it checked once). One slot per
 * partition modulo SEEN_BLOCKS; readers run on the loop thread only. */
typedef struct tide_seen_block {
  int used;
  uint32_t part, ncols, len, crc;
  uint64_t seg_base;
  size_t pos;
} tide_seen_block_t;

#define SEEN_BLOCKS 4 /* slots, by partition modulo */

struct tide_topic {
  tide_store_t *s;
  tide_topic_t *next;
  char *name;
  int dead;                 /* deleted through this store */
  tide_topic_rec_t rec;
  tide_schema_t **schemas;  /* [version - 1], loaded on demand */
  uint32_t nschemas;
  tide_topic_info_t info;
  tide_seen_block_t seen[SEEN_BLOCKS];
};

typedef struct tide_append_job tide_append_job_t;

struct tide_store {
  char *dir;
  char *cold;
  int sync;
  tide_catalog_t *cat;
  tide_topic_t *topics;
  tide_append_job_t *job; /* the append on a thread of its own (tide_append_start), or NULL */
};

static void store_settle(tide_store_t *s);

/* Begin a catalog transaction on the calling (loop) thread, after the
 * append in flight on its own thread has ended. */
static int store_begin(tide_store_t *s, int write, MDB_txn **txn) {
  store_settle(s);
  return tide_catalog_begin(s->cat, write, txn);
}

/* ------------------------------------------------------------- helpers --- */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void seg_path(char *out, const tide_store_t *s, uint32_t id, uint32_t part, uint64_t base) {
  snprintf(out, PATH_LEN, "%s/topics/%" PRIu32 "/p%" PRIu32 "/%020" PRIu64 ".seg", s->dir, id, part, base);
}

static void cold_path(char *out, const tide_store_t *s, uint32_t id, uint32_t part, uint64_t base) {
  snprintf(out, PATH_LEN, "%s/%" PRIu32 "/p%" PRIu32 "/%020" PRIu64 ".seg.zst", s->cold, id, part, base);
}

/* mkdir -p. */
static int mkdirs(const char *path) {
  char tmp[PATH_LEN];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, 0777) < 0 && errno != EEXIST) return -errno;
    *p = '/';
  }
  if (mkdir(tmp, 0777) < 0 && errno != EEXIST) return -errno;
  return 0;
}

/* rm -rf, for a topic's own directories only. Symbolic links are never
 * followed, at the top as below: a link is removed, not what it points at
 * (a topic directory replaced by a link must not empty the link's target).
 * Each level is opened relative to its parent's descriptor with O_NOFOLLOW,
 * so a directory swapped for a link during the walk is not followed either.
 * Errors other than ENOENT are returned but the walk goes on. */
static int rmtree_at(int dirfd, const char *name) {
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return 0;
    /* not a directory (ENOTDIR), or a link (ELOOP): remove the entry itself */
    if (errno == ENOTDIR || errno == ELOOP) return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;
    return -errno;
  }
  DIR *d = fdopendir(fd);
  if (!d) {
    int rc = -errno;
    close(fd);
    return rc;
  }
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    int r = e->d_type == DT_DIR || e->d_type == DT_UNKNOWN
                ? rmtree_at(fd, e->d_name)
                : (unlinkat(fd, e->d_name, 0) < 0 && errno != ENOENT ? -errno : 0);
    if (r && !rc) rc = r;
  }
  closedir(d); /* closes fd */
  if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && !rc) rc = -errno;
  return rc;
}

static int rmtree(const char *path) { return rmtree_at(AT_FDCWD, path); }

static int sync_dir(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) < 0 ? -errno : 0;
  close(fd);
  return rc;
}

static int pwrite_all(int fd, const char *p, size_t n, uint64_t off) {
  while (n) {
    ssize_t w = pwrite(fd, p, n, (off_t)off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
    off += (uint64_t)w;
  }
  return 0;
}

/* Fill err with an LMDB or system failure of `what` unless already set;
 * returns the code as ours (LMDB's positive errno values negated). */
static int fail(tide_err_t *err, int rc, const char *what) {
  rc = tide_err_lmdb(rc, NULL);
  if (err && err->code == rc && err->msg[0]) return rc;
  return tide_err_set(err, rc, "%s: %s", what, tide_strerror(rc));
}

/* A failed commit of the catalog (rc from mdb_txn_commit): a full disk
 * shows as LMDB's EIO of a short write, and is said as ENOSPC. */
static int commit_fail(const tide_store_t *s, tide_err_t *err, int rc) {
  char what[PATH_LEN + 32];
  snprintf(what, sizeof what, "catalog commit (%s)", s->dir);
  return fail(err, tide_err_lmdb(rc, s->dir), what);
}

int tide_topic_name_check(const char *name, tide_err_t *err) {
  size_t n = strlen(name);
  if (n == 0) return tide_err_set(err, TIDE_EINVAL, "topic name is empty");
  if (n > TIDE_TOPIC_NAME_MAX)
    return tide_err_set(err, TIDE_EINVAL, "topic name is %zu bytes long (at most %d)", n, TIDE_TOPIC_NAME_MAX);
  if (!strcmp(name, ".") || !strcmp(name, ".."))
    return tide_err_set(err, TIDE_EINVAL, "topic name '%s' is not allowed", name);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c < 0x20 || c == 0x7f)
      return tide_err_set(err, TIDE_EINVAL, "topic name has a control character at byte %zu", i + 1);
    if (c == '/' || c == '\\')
      return tide_err_set(err, TIDE_EINVAL, "topic name '%s' has a '%c' (names cannot hold path separators)",
                          name, c);
  }
  if (strstr(name, ".."))
    return tide_err_set(err, TIDE_EINVAL, "topic name '%s' holds '..'", name);
  return 0;
}

/* ---------------------------------------------------------- topic data --- */

/* Load (and cache) the schema of `version`. The result is borrowed. */
static int topic_schema(tide_topic_t *t, MDB_txn *txn, uint32_t version, tide_schema_t **out, tide_err_t *err) {
  if (version == 0) return tide_err_set(err, TIDE_ECORRUPT, "topic '%s': schema version 0", t->name);
  if (version > t->nschemas) {
    tide_schema_t **p = realloc(t->schemas, version * sizeof *p);
    if (!p) return -ENOMEM;
    memset(p + t->nschemas, 0, (version - t->nschemas) * sizeof *p);
    t->schemas = p;
    t->nschemas = version;
  }
  if (!t->schemas[version - 1]) {
    int rc = tide_catalog_schema_get(txn, t->s->cat, t->rec.id, version, &t->schemas[version - 1], err);
    if (rc == MDB_NOTFOUND)
      return tide_err_set(err, TIDE_ECORRUPT, "topic '%s': schema version %u is missing", t->name, version);
    if (rc) return fail(err, rc, "catalog");
  }
  *out = t->schemas[version - 1];
  return 0;
}

static void topic_fill_info(tide_topic_t *t) {
  tide_topic_info_t *i = &t->info;
  i->name = t->name;
  i->id = t->rec.id;
  i->partitions = t->rec.partitions;
  i->retention_ms = t->rec.retention_ms;
  i->retention_bytes = t->rec.retention_bytes;
  i->segment_bytes = t->rec.segment_bytes;
  i->segment_ms = t->rec.segment_ms;
  i->time_col = t->rec.time_col;
  i->schemaless = !!(t->rec.flags & TIDE_TOPIC_SCHEMALESS);
  i->ignore_unknown = !!(t->rec.flags & TIDE_TOPIC_IGNORE_UNKNOWN);
  i->compat = (tide_compat_t)t->rec.compat;
  i->schema_version = t->rec.schema_version;
  i->schema = t->rec.schema_version <= t->nschemas ? t->schemas[t->rec.schema_version - 1] : NULL;
  i->created_ms = t->rec.created_ms;
}

/* Re-read the topic's record in txn. TIDE_ENOTFOUND when the topic is gone
 * (or was deleted and created again: a new id is a new topic). */
static int topic_refresh(tide_topic_t *t, MDB_txn *txn, tide_err_t *err) {
  if (t->dead) return tide_err_set(err, TIDE_ENOTFOUND, "topic '%s' was deleted", t->name);
  tide_topic_rec_t r;
  int rc = tide_catalog_topic_get(txn, t->s->cat, t->name, &r);
  if (rc == MDB_NOTFOUND || (!rc && r.id != t->rec.id)) {
    t->dead = 1;
    return tide_err_set(err, TIDE_ENOTFOUND, "topic '%s' was deleted", t->name);
  }
  if (rc) return fail(err, rc, "catalog");
  t->rec = r;
  tide_schema_t *s;
  if ((rc = topic_schema(t, txn, r.schema_version, &s, err))) return rc;
  topic_fill_info(t);
  return 0;
}

static int topic_begin(tide_topic_t *t, int write, MDB_txn **txn, tide_err_t *err);

/* ---------------------------------------------------------- store open --- */

/* Parse "<20 digits>.seg" / ".seg.zst". Returns 1 and *base when it matches. */
static int parse_seg_name(const char *name, const char *ext, uint64_t *base) {
  size_t n = strlen(name), el = strlen(ext);
  if (n != 20 + el || strcmp(name + 20, ext)) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 20; i++) {
    if (name[i] < '0' || name[i] > '9') return 0;
    v = v * 10 + (uint64_t)(name[i] - '0');
  }
  *base = v;
  return 1;
}

static int parse_uint(const char *s, uint32_t *out) {
  if (!*s) return 0;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > UINT32_MAX / 10) return 0;
    v = v * 10 + (uint64_t)(*s - '0');
  }
  if (v > UINT32_MAX) return 0;
  *out = (uint32_t)v;
  return 1;
}

/* Remove, from one partition directory, the files the catalog does not
 * name: segments of appends that never committed, hot copies of segments
 * already offloaded or dropped, cold copies not (or no longer) offloaded,
 * and half-written cold files. Truncate the open segment's torn tail. */
static void clean_partition(tide_store_t *s, MDB_txn *txn, uint32_t id, uint32_t part, const char *dir, int cold) {
  tide_seg_rec_t *segs = NULL;
  size_t n = 0;
  if (tide_catalog_segs(txn, s->cat, id, part, &segs, &n)) return;
  DIR *d = opendir(dir);
  if (d) {
    struct dirent *e;
    char path[PATH_LEN];
    while ((e = readdir(d))) {
      uint64_t base;
      if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path) continue;
      size_t len = strlen(e->d_name);
      if (len > 4 && !strcmp(e->d_name + len - 4, ".tmp")) {
        unlink(path);
        continue;
      }
      if (!parse_seg_name(e->d_name, cold ? ".seg.zst" : ".seg", &base)) continue;
      const tide_seg_rec_t *r = NULL;
      for (size_t i = 0; i < n; i++)
        if (segs[i].base == base) r = &segs[i];
      int keep = r && (cold ? r->state == TIDE_SEG_OFFLOADED : r->state != TIDE_SEG_OFFLOADED);
      if (!keep) {
        unlink(path);
      } else if (!cold && r->state == TIDE_SEG_OPEN) {
        struct stat st;
        if (stat(path, &st) == 0 && (uint64_t)st.st_size > r->bytes && truncate(path, (off_t)r->bytes) == 0) {
          /* torn tail of an append that never committed: gone */
        }
      }
    }
    closedir(d);
  }
  free(segs);
}

/* Walk <root>/<id>/p<k> and clean each; remove topic directories whose id
 * the catalog does not know (a delete that crashed half way). */
static void clean_tree(tide_store_t *s, MDB_txn *txn, const char *root, int cold) {
  DIR *d = opendir(root);
  if (!d) return;
  struct dirent *e;
  char path[PATH_LEN], pdir[PATH_LEN];
  while ((e = readdir(d))) {
    uint32_t id, part;
    if (!parse_uint(e->d_name, &id)) continue;
    if (snprintf(path, sizeof path, "%s/%s", root, e->d_name) >= (int)sizeof path) continue;
    if (tide_catalog_topic_id_exists(txn, s->cat, id) != 1) {
      rmtree(path);
      continue;
    }
    DIR *pd = opendir(path);
    if (!pd) continue;
    struct dirent *pe;
    while ((pe = readdir(pd))) {
      if (pe->d_name[0] != 'p' || !parse_uint(pe->d_name + 1, &part)) continue;
      if (snprintf(pdir, sizeof pdir, "%s/%s", path, pe->d_name) >= (int)sizeof pdir) continue;
      clean_partition(s, txn, id, part, pdir, cold);
    }
    closedir(pd);
  }
  closedir(d);
}

int tide_store_open(const char *dir, const tide_store_opts_t *o, tide_store_t **out, tide_err_t *err) {
  tide_store_opts_t defaults = {1, 0, NULL};
  if (!o) o = &defaults;
  tide_store_t *s = calloc(1, sizeof *s);
  char path[PATH_LEN];
  int rc;
  if (!s) return -ENOMEM;
  s->sync = o->sync;
  if (!(s->dir = strdup(dir))) goto oom;
  snprintf(path, sizeof path, "%s/topics", dir);
  if ((rc = mkdirs(path))) {
    tide_err_set(err, rc, "cannot create store directory %s: %s", dir, tide_strerror(rc));
    goto failed;
  }
  snprintf(path, sizeof path, "%s/catalog", dir);
  if ((rc = tide_catalog_open(path, o->sync, o->map_size, &s->cat, err))) goto failed;
  /* The cold tier of this store is <cold dir>/<store id>: two stores may
   * share a cold directory without ever touching each other's files. */
  int n = o->cold_dir ? asprintf(&s->cold, "%s/%s", o->cold_dir, s->cat->store_id)
                      : asprintf(&s->cold, "%s/cold/%s", dir, s->cat->store_id);
  if (n < 0) {
    s->cold = NULL;
    goto oom;
  }
  if ((rc = mkdirs(s->cold))) {
    tide_err_set(err, rc, "cannot create the cold tier %s: %s", s->cold, tide_strerror(rc));
    goto failed;
  }
  MDB_txn *txn;
  if ((rc = store_begin(s, 1, &txn))) {
    fail(err, rc, "catalog");
    goto failed;
  }
  snprintf(path, sizeof path, "%s/topics", dir);
  clean_tree(s, txn, path, 0);
  clean_tree(s, txn, s->cold, 1);
  mdb_txn_abort(txn); /* the clean-up changed files only */
  *out = s;
  return 0;
oom:
  rc = tide_err_set(err, -ENOMEM, "out of memory");
failed:
  tide_store_close(s);
  return rc;
}

static void topic_free(tide_topic_t *t) {
  for (uint32_t i = 0; i < t->nschemas; i++) tide_schema_unref(t->schemas[i]);
  free(t->schemas);
  free(t->name);
  free(t);
}

void tide_store_close(tide_store_t *s) {
  if (!s) return;
  if (s->job) tide_append_finish(s, NULL, NULL, NULL, NULL); /* joined; its result dropped */
  while (s->topics) {
    tide_topic_t *t = s->topics;
    s->topics = t->next;
    topic_free(t);
  }
  tide_catalog_close(s->cat);
  free(s->dir);
  free(s->cold);
  free(s);
}

const char *tide_store_dir(const tide_store_t *s) { return s->dir; }
const char *tide_store_id(const tide_store_t *s) { return s->cat->store_id; }

/* ---------------------------------------------------------- topic admin --- */

/* What every topic schema must satisfy, whatever its version. */
static int topic_schema_check(const tide_schema_t *schema, tide_err_t *err) {
  if (schema->nfields == 0) return tide_err_set(err, TIDE_EINVAL, "a topic schema needs at least one field");
  for (uint32_t i = 0; i < schema->nfields; i++) {
    const char *f = schema->fields[i].name;
    if (!strcmp(f, "offset") || !strcmp(f, "partition"))
      return tide_err_set(err, TIDE_EINVAL,
                          "field name '%s' is reserved in topic schemas (records read from a topic carry it)", f);
  }
  return 0;
}

int tide_store_create_topic(tide_store_t *s, const char *name, const tide_topic_opts_t *o, tide_err_t *err) {
  int rc = tide_topic_name_check(name, err);
  if (rc) return rc;
  if (o->partitions < 1 || o->partitions > TIDE_PARTITIONS_MAX)
    return tide_err_set(err, TIDE_EINVAL, "partitions must be 1..%d, got %u", TIDE_PARTITIONS_MAX, o->partitions);
  if (o->segment_bytes != 0 && o->segment_bytes < MIN_SEGMENT_BYTES)
    return tide_err_set(err, TIDE_EINVAL, "segment_bytes must be at least %d", MIN_SEGMENT_BYTES);
  if (o->compat > TIDE_COMPAT_FULL_TRANSITIVE) return tide_err_set(err, TIDE_EINVAL, "bad compatibility mode");
  tide_schema_t *schema = o->schema;
  if (schema) {
    if ((rc = topic_schema_check(schema, err))) return rc;
    schema = tide_schema_ref(schema);
  } else {
    if (!(schema = tide_schema_new())) return -ENOMEM;
    if ((rc = tide_schema_add(schema, "value", 5, TIDE_T_JSON, 0, NULL, err))) {
      tide_schema_unref(schema);
      return rc;
    }
  }
  int32_t time_col = -1;
  if (o->time_column && *o->time_column) {
    time_col = tide_schema_find(schema, o->time_column, strlen(o->time_column));
    if (time_col < 0 || schema->fields[time_col].type != TIDE_T_TIMESTAMP) {
      tide_schema_unref(schema);
      return tide_err_set(err, TIDE_EINVAL, "time_column '%s' is not a timestamp field of the schema",
                          o->time_column);
    }
  } else if (!o->time_column) {
    for (uint32_t i = 0; i < schema->nfields && time_col < 0; i++)
      if (schema->fields[i].type == TIDE_T_TIMESTAMP) time_col = (int32_t)i;
  }
  tide_topic_rec_t r = {0};
  r.partitions = o->partitions;
  r.retention_ms = o->retention_ms;
  r.retention_bytes = o->retention_bytes;
  r.segment_bytes = o->segment_bytes ? o->segment_bytes : DEFAULT_SEGMENT_BYTES;
  r.segment_ms = o->segment_ms;
  r.time_col = time_col;
  r.flags = (o->schema ? 0 : TIDE_TOPIC_SCHEMALESS) | (o->ignore_unknown ? TIDE_TOPIC_IGNORE_UNKNOWN : 0);
  r.schema_version = 1;
  r.compat = o->compat;
  r.created_ms = now_ms();
  MDB_txn *txn;
  if ((rc = store_begin(s, 1, &txn))) {
    tide_schema_unref(schema);
    return fail(err, rc, "catalog");
  }
  tide_topic_rec_t existing;
  rc = tide_catalog_topic_get(txn, s->cat, name, &existing);
  if (rc == 0) {
    rc = tide_err_set(err, TIDE_EEXIST, "topic '%s' already exists", name);
    goto abort;
  }
  if (rc != MDB_NOTFOUND || (rc = tide_catalog_next_topic_id(txn, s->cat, &r.id)) ||
      (rc = tide_catalog_topic_put(txn, s->cat, name, &r)) ||
      (rc = tide_catalog_schema_put(txn, s->cat, r.id, 1, schema))) {
    fail(err, rc, "catalog");
    goto abort;
  }
  char path[PATH_LEN];
  for (uint32_t p = 0; p < r.partitions; p++) {
    snprintf(path, sizeof path, "%s/topics/%u/p%u", s->dir, r.id, p);
    if ((rc = mkdirs(path))) {
      tide_err_set(err, rc, "cannot create %s: %s", path, tide_strerror(rc));
      goto abort;
    }
  }
  if ((rc = mdb_txn_commit(txn))) {
    txn = NULL;
    rc = commit_fail(s, err, rc);
    goto abort;
  }
  tide_schema_unref(schema);
  return 0;
abort:
  if (txn) mdb_txn_abort(txn);
  if (r.id) {
    snprintf(path, sizeof path, "%s/topics/%u", s->dir, r.id);
    rmtree(path);
  }
  tide_schema_unref(schema);
  return rc;
}

int tide_store_topic(tide_store_t *s, const char *name, tide_topic_t **out, tide_err_t *err) {
  MDB_txn *txn;
  tide_topic_rec_t r;
  int rc = store_begin(s, 0, &txn);
  if (rc) return fail(err, rc, "catalog");
  rc = tide_catalog_topic_get(txn, s->cat, name, &r);
  if (rc) {
    mdb_txn_abort(txn);
    if (rc == MDB_NOTFOUND) return tide_err_set(err, TIDE_ENOTFOUND, "no topic '%s'", name);
    return fail(err, rc, "catalog");
  }
  tide_topic_t *t;
  for (t = s->topics; t; t = t->next)
    if (!t->dead && t->rec.id == r.id) break;
  if (!t) {
    if (!(t = calloc(1, sizeof *t)) || !(t->name = strdup(name))) {
      free(t);
      mdb_txn_abort(txn);
      return tide_err_set(err, -ENOMEM, "out of memory");
    }
    t->s = s;
    t->rec = r;
    t->next = s->topics;
    s->topics = t;
  }
  rc = topic_refresh(t, txn, err);
  mdb_txn_abort(txn);
  if (rc) return rc;
  *out = t;
  return 0;
}

int tide_store_delete_topic(tide_store_t *s, const char *name, tide_err_t *err) {
  MDB_txn *txn;
  tide_topic_rec_t r;
  int rc = store_begin(s, 1, &txn);
  if (rc) return fail(err, rc, "catalog");
  rc = tide_catalog_topic_get(txn, s->cat, name, &r);
  if (rc == MDB_NOTFOUND) {
    mdb_txn_abort(txn);
    return tide_err_set(err, TIDE_ENOTFOUND, "no topic '%s'", name);
  }
  if (rc || (rc = tide_catalog_topic_del(txn, s->cat, name, r.id)) || (rc = tide_catalog_purge(txn, s->cat, r.id))) {
    mdb_txn_abort(txn);
    return fail(err, rc, "catalog");
  }
  if ((rc = mdb_txn_commit(txn))) return commit_fail(s, err, rc);
  for (tide_topic_t *t = s->topics; t; t = t->next)
    if (t->rec.id == r.id) t->dead = 1;
  /* The topic is gone once committed; its files are removed now, or by the
   * next open if this process dies first. */
  char path[PATH_LEN];
  snprintf(path, sizeof path, "%s/topics/%u", s->dir, r.id);
  rmtree(path);
  snprintf(path, sizeof path, "%s/%u", s->cold, r.id);
  rmtree(path);
  return 0;
}

int tide_store_list(tide_store_t *s, char ***names, size_t *n, tide_err_t *err) {
  MDB_txn *txn;
  int rc = store_begin(s, 0, &txn);
  if (rc) return fail(err, rc, "catalog");
  rc = tide_catalog_topic_names(txn, s->cat, names, n);
  mdb_txn_abort(txn);
  return rc ? fail(err, rc, "catalog") : 0;
}

/* ------------------------------------------------------- schema registry --- */

static int topic_rec(tide_store_t *s, MDB_txn *txn, const char *name, tide_topic_rec_t *r, tide_err_t *err) {
  int rc = tide_catalog_topic_get(txn, s->cat, name, r);
  if (rc == MDB_NOTFOUND) return tide_err_set(err, TIDE_ENOTFOUND, "no topic '%s'", name);
  return rc ? fail(err, rc, "catalog") : 0;
}

/* May `schema` follow the versions of topic r? 0 with *existing set to the
 * version it is identical to (0 when it is new) and *time_col to the time
 * column's index in it; or the refusal. */
static int registry_decide(tide_store_t *s, MDB_txn *txn, const char *name, const tide_topic_rec_t *r,
                           tide_schema_t *schema, uint32_t *existing, int32_t *time_col, tide_err_t *err) {
  int rc = topic_schema_check(schema, err);
  if (rc) return rc;
  uint32_t n = r->schema_version;
  tide_schema_t **v = calloc(n, sizeof *v);
  if (!v) return tide_err_set(err, -ENOMEM, "out of memory");
  for (uint32_t k = 0; k < n && !rc; k++) {
    rc = tide_catalog_schema_get(txn, s->cat, r->id, k + 1, &v[k], err);
    if (rc == MDB_NOTFOUND) rc = tide_err_set(err, TIDE_ECORRUPT, "topic '%s': schema version %u is missing", name, k + 1);
    else if (rc && rc > TIDE_EBASE) fail(err, rc, "catalog");
  }
  *existing = 0;
  for (uint32_t k = 0; k < n && !rc; k++)
    if (tide_schema_equal(v[k], schema)) *existing = k + 1;
  *time_col = r->time_col;
  if (!rc && !*existing && r->time_col >= 0) {
    const tide_field_t *tf = &v[n - 1]->fields[r->time_col];
    int j = tide_schema_find(schema, tf->name, tf->name_len);
    if (j < 0 || schema->fields[j].type != TIDE_T_TIMESTAMP)
      rc = tide_err_set(err, TIDE_EINVAL, "field '%s' is the topic's time column: it cannot be %s", tf->name,
                        j < 0 ? "removed" : "changed from timestamp");
    *time_col = j;
  }
  if (!rc && !*existing) rc = tide_compat_check((tide_compat_t)r->compat, v, n, schema, err);
  for (uint32_t k = 0; k < n; k++) tide_schema_unref(v[k]);
  free(v);
  return rc;
}

int tide_store_register_schema(tide_store_t *s, const char *name, tide_schema_t *schema, int compat,
                               uint32_t *version, int *created, tide_err_t *err) {
  if (compat > TIDE_COMPAT_FULL_TRANSITIVE) return tide_err_set(err, TIDE_EINVAL, "bad compatibility mode");
  MDB_txn *txn;
  tide_topic_rec_t r;
  uint32_t existing;
  int32_t time_col;
  int rc = store_begin(s, 1, &txn);
  if (rc) return fail(err, rc, "catalog");
  if ((rc = topic_rec(s, txn, name, &r, err))) goto abort;
  int mode_changed = compat >= 0 && (uint32_t)compat != r.compat;
  if (compat >= 0) r.compat = (uint32_t)compat;
  if ((rc = registry_decide(s, txn, name, &r, schema, &existing, &time_col, err))) goto abort;
  if (existing) {
    *version = existing;
    *created = 0;
    if (!mode_changed) {
      mdb_txn_abort(txn);
      return 0;
    }
  } else {
    r.schema_version++;
    r.time_col = time_col;
    r.flags &= ~(uint32_t)TIDE_TOPIC_SCHEMALESS;
    if ((rc = tide_catalog_schema_put(txn, s->cat, r.id, r.schema_version, schema))) {
      fail(err, rc, "catalog");
      goto abort;
    }
    *version = r.schema_version;
    *created = 1;
  }
  if ((rc = tide_catalog_topic_put(txn, s->cat, name, &r))) {
    fail(err, rc, "catalog");
    goto abort;
  }
  if ((rc = mdb_txn_commit(txn))) return commit_fail(s, err, rc);
  return 0;
abort:
  mdb_txn_abort(txn);
  return rc;
}

int tide_store_check_schema(tide_store_t *s, const char *name, tide_schema_t *schema, tide_err_t *err) {
  MDB_txn *txn;
  tide_topic_rec_t r;
  uint32_t existing;
  int32_t time_col;
  int rc = store_begin(s, 0, &txn);
  if (rc) return fail(err, rc, "catalog");
  if (!(rc = topic_rec(s, txn, name, &r, err))) rc = registry_decide(s, txn, name, &r, schema, &existing, &time_col, err);
  mdb_txn_abort(txn);
  return rc;
}

int tide_store_set_compat(tide_store_t *s, const char *name, tide_compat_t mode, tide_err_t *err) {
  if (mode > TIDE_COMPAT_FULL_TRANSITIVE) return tide_err_set(err, TIDE_EINVAL, "bad compatibility mode");
  MDB_txn *txn;
  tide_topic_rec_t r;
  int rc = store_begin(s, 1, &txn);
  if (rc) return fail(err, rc, "catalog");
  if ((rc = topic_rec(s, txn, name, &r, err))) {
    mdb_txn_abort(txn);
    return rc;
  }
  r.compat = mode;
  if ((rc = tide_catalog_topic_put(txn, s->cat, name, &r))) {
    mdb_txn_abort(txn);
    return fail(err, rc, "catalog");
  }
  return (rc = mdb_txn_commit(txn)) ? commit_fail(s, err, rc) : 0;
}

int tide_topic_schema(tide_topic_t *t, uint32_t version, tide_schema_t **out, tide_err_t *err) {
  MDB_txn *txn;
  int rc = topic_begin(t, 0, &txn, err);
  if (rc) return rc;
  if (version == 0) version = t->rec.schema_version;
  if (version > t->rec.schema_version) {
    rc = tide_err_set(err, TIDE_ENOTFOUND, "topic '%s' has no schema version %u (versions: 1..%u)", t->name, version,
                      t->rec.schema_version);
  } else {
    tide_schema_t *sc;
    if (!(rc = topic_schema(t, txn, version, &sc, err))) *out = tide_schema_ref(sc);
  }
  mdb_txn_abort(txn);
  return rc;
}

int tide_topic_info(tide_topic_t *t, const tide_topic_info_t **out, tide_err_t *err) {
  MDB_txn *txn;
  int rc = store_begin(t->s, 0, &txn);
  if (rc) return fail(err, rc, "catalog");
  rc = topic_refresh(t, txn, err);
  mdb_txn_abort(txn);
  if (!rc) *out = &t->info;
  return rc;
}

/* A transaction (write = 1: the store's write transaction) with the topic's
 * record refreshed in it: the start of every topic call. */
static int topic_begin_raw(tide_topic_t *t, int write, MDB_txn **txn, tide_err_t *err) {
  int rc = tide_catalog_begin(t->s->cat, write, txn);
  if (rc) return fail(err, rc, "catalog");
  if ((rc = topic_refresh(t, *txn, err))) mdb_txn_abort(*txn);
  return rc;
}

/* The same on the calling (loop) thread: after the append in flight on its
 * own thread, if any, has ended (store_settle). */
static int topic_begin(tide_topic_t *t, int write, MDB_txn **txn, tide_err_t *err) {
  store_settle(t->s);
  return topic_begin_raw(t, write, txn, err);
}

int tide_topic_offsets(tide_topic_t *t, uint64_t *earliest, uint64_t *end, tide_err_t *err) {
  MDB_txn *txn;
  int rc = topic_begin(t, 0, &txn, err);
  if (rc) return rc;
  for (uint32_t p = 0; p < t->rec.partitions && !rc; p++) {
    tide_seg_rec_t *segs;
    size_t n;
    if ((rc = tide_catalog_segs(txn, t->s->cat, t->rec.id, p, &segs, &n))) break;
    earliest[p] = n ? segs[0].base : 0;
    end[p] = n ? segs[n - 1].end : 0;
    free(segs);
  }
  mdb_txn_abort(txn);
  return rc ? fail(err, rc, "catalog") : 0;
}

int tide_topic_segments(tide_topic_t *t, tide_seg_info_t **out, size_t *nout, tide_err_t *err) {
  MDB_txn *txn;
  int rc = topic_begin(t, 0, &txn, err);
  if (rc) return rc;
  tide_seg_info_t *all = NULL;
  size_t total = 0;
  for (uint32_t p = 0; p < t->rec.partitions; p++) {
    tide_seg_rec_t *segs;
    size_t n;
    if ((rc = tide_catalog_segs(txn, t->s->cat, t->rec.id, p, &segs, &n))) break;
    tide_seg_info_t *q = n ? realloc(all, (total + n) * sizeof *all) : all;
    if (n && !q) {
      free(segs);
      rc = -ENOMEM;
      break;
    }
    all = q;
    for (size_t i = 0; i < n; i++) {
      tide_seg_info_t *x = &all[total++];
      x->partition = p;
      x->base_offset = segs[i].base;
      x->end_offset = segs[i].end;
      x->min_ts = segs[i].min_ts;
      x->max_ts = segs[i].max_ts;
      x->bytes = segs[i].bytes;
      x->stored_bytes = segs[i].state == TIDE_SEG_OFFLOADED ? segs[i].stored_bytes : segs[i].bytes;
      x->state = (int)segs[i].state;
      x->created_ms = segs[i].created_ms;
      x->last_write_ms = segs[i].last_write_ms;
    }
    free(segs);
  }
  mdb_txn_abort(txn);
  if (rc) {
    free(all);
    return fail(err, rc, "catalog");
  }
  *out = all;
  *nout = total;
  return 0;
}

/* ------------------------------------------------------------- appends --- */

typedef struct part_w {
  int touched;
  int fd;
  int has_orig;           /* the open segment existed before the session */
  uint64_t orig_base;     /* its base offset */
  uint64_t orig_bytes;    /* its committed size, to cut back to on undo */
  tide_seg_rec_t cur;     /* the active segment as written so far */
  uint64_t first;         /* end offset when the session began */
  uint64_t *created;      /* bases of segment files this session created */
  size_t ncreated, capcreated;
  tide_buf_t buf;         /* encoded blocks not yet written */
  tide_batch_t *scratch;  /* rows of a keyed append bound for this partition */
} part_w;

struct tide_append {
  tide_topic_t *t;
  MDB_txn *txn;
  tide_schema_t *schema;
  part_w *pw;
  int64_t rr_part;        /* -1 until an unkeyed add picks it */
  int64_t now;
  tide_buf_t enc;
  /* idempotent writer (tide_append_writer) */
  int has_writer, skipped;
  size_t wlen;
  uint64_t seq;
  char writer[TIDE_WRITER_ID_MAX];
  /* tide_append_batch: rows of another schema converted into the topic's */
  tide_schema_t *conv_from;   /* the schema `proj` was made for (a reference) */
  tide_projection_t *proj;
  tide_batch_t *conv;         /* scratch, topic schema */
};

static int part_flush(tide_append_t *a, part_w *w, tide_err_t *err) {
  if (!w->buf.len) return 0;
  uint64_t off = w->cur.bytes - w->buf.len;
  int rc = pwrite_all(w->fd, w->buf.data, w->buf.len, off);
  if (rc) {
    char path[PATH_LEN];
    seg_path(path, a->t->s, a->t->rec.id, (uint32_t)(w - a->pw), w->cur.base);
    return tide_err_set(err, rc, "cannot write %s: %s", path, tide_strerror(rc));
  }
  w->buf.len = 0;
  return 0;
}

/* Start a new open segment at `base` in partition p. */
static int part_new_segment(tide_append_t *a, part_w *w, uint32_t p, uint64_t base, tide_err_t *err) {
  char path[PATH_LEN], hdr[TIDE_SEG_HEADER];
  seg_path(path, a->t->s, a->t->rec.id, p, base);
  if (w->ncreated == w->capcreated) {
    size_t cap = w->capcreated ? w->capcreated * 2 : 4;
    uint64_t *q = realloc(w->created, cap * sizeof *q);
    if (!q) return tide_err_set(err, -ENOMEM, "out of memory");
    w->created = q;
    w->capcreated = cap;
  }
  char dir[PATH_LEN];
  snprintf(dir, sizeof dir, "%s/topics/%u/p%u", a->t->s->dir, a->t->rec.id, p);
  int rc = mkdirs(dir);
  int fd = rc ? -1 : open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    rc = rc ? rc : -errno;
    return tide_err_set(err, rc, "cannot create %s: %s", path, tide_strerror(rc));
  }
  w->created[w->ncreated++] = base;
  tide_seg_header(hdr, a->t->rec.id, p, base);
  if ((rc = pwrite_all(fd, hdr, sizeof hdr, 0))) {
    close(fd);
    return tide_err_set(err, rc, "cannot write %s: %s", path, tide_strerror(rc));
  }
  if (w->fd >= 0) close(w->fd);
  w->fd = fd;
  memset(&w->cur, 0, sizeof w->cur);
  w->cur.base = w->cur.end = base;
  w->cur.min_ts = w->cur.max_ts = TIDE_TS_NONE;
  w->cur.bytes = TIDE_SEG_HEADER;
  w->cur.state = TIDE_SEG_OPEN;
  w->cur.created_ms = w->cur.last_write_ms = a->now;
  return 0;
}

/* First use of partition p in the session: find its open segment, cut a
 * torn tail, or start the partition's first segment. */
static int part_touch(tide_append_t *a, uint32_t p, tide_err_t *err) {
  part_w *w = &a->pw[p];
  if (w->touched) return 0;
  w->touched = 1;
  tide_seg_rec_t last;
  int rc = tide_catalog_seg_last(a->txn, a->t->s->cat, a->t->rec.id, p, &last);
  if (rc == MDB_NOTFOUND) return part_new_segment(a, w, p, 0, err);
  if (rc) return fail(err, rc, "catalog");
  w->first = last.end;
  if (last.state != TIDE_SEG_OPEN) return part_new_segment(a, w, p, last.end, err);
  char path[PATH_LEN];
  seg_path(path, a->t->s, a->t->rec.id, p, last.base);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    rc = -errno;
    return tide_err_set(err, rc == -ENOENT ? TIDE_ECORRUPT : rc, "topic '%s' partition %u: cannot open segment %s: %s",
                        a->t->name, p, path, tide_strerror(rc));
  }
  struct stat st;
  if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < last.bytes) {
    close(fd);
    return tide_err_set(err, TIDE_ECORRUPT,
                        "topic '%s' partition %u: segment %s is shorter than its committed %" PRIu64 " bytes",
                        a->t->name, p, path, last.bytes);
  }
  if ((uint64_t)st.st_size > last.bytes && ftruncate(fd, (off_t)last.bytes) < 0) {
    rc = -errno;
    close(fd);
    return tide_err_set(err, rc, "cannot truncate the torn tail of %s: %s", path, tide_strerror(rc));
  }
  w->fd = fd;
  w->has_orig = 1;
  w->orig_base = last.base;
  w->orig_bytes = last.bytes;
  w->cur = last;
  return 0;
}

/* Seal the open segment (its record goes into the transaction) and start
 * the next one at its end. */
static int part_roll(tide_append_t *a, uint32_t p, tide_err_t *err) {
  part_w *w = &a->pw[p];
  int rc = part_flush(a, w, err);
  if (rc) return rc;
  w->cur.state = TIDE_SEG_SEALED;
  if ((rc = tide_catalog_seg_put(a->txn, a->t->s->cat, a->t->rec.id, p, &w->cur))) return fail(err, rc, "catalog");
  if (a->t->s->sync && fdatasync(w->fd) < 0) {
    rc = -errno;
    return tide_err_set(err, rc, "cannot sync segment: %s", tide_strerror(rc));
  }
  return part_new_segment(a, w, p, w->cur.end, err);
}

/* Event-time range of rows [lo, hi) of b: the topic's time column, or the
 * append time when it has none. NULL times do not count. */
static void time_range(const tide_append_t *a, const tide_batch_t *b, uint32_t lo, uint32_t hi, int64_t *mn,
                       int64_t *mx) {
  int tc = a->t->rec.time_col;
  if (tc < 0) {
    *mn = *mx = a->now;
    return;
  }
  const tide_col_t *c = &b->cols[tc];
  const int64_t *v = c->values;
  int64_t lo_v = INT64_MAX, hi_v = INT64_MIN;
  int any = 0;
  for (uint32_t i = lo; i < hi; i++) {
    if (tide_col_is_null(c, i)) continue;
    any = 1;
    if (v[i] < lo_v) lo_v = v[i];
    if (v[i] > hi_v) hi_v = v[i];
  }
  *mn = any ? lo_v : TIDE_TS_NONE;
  *mx = any ? hi_v : TIDE_TS_NONE;
}

/* Append rows [lo, hi) of b to partition p, in blocks of at most
 * TIDE_BLOCK_MAX_ROWS, rolling segments as they fill or age. */
static int part_add(tide_append_t *a, uint32_t p, const tide_batch_t *b, uint32_t lo, uint32_t hi, tide_err_t *err) {
  int rc = part_touch(a, p, err);
  if (rc) return rc;
  part_w *w = &a->pw[p];
  const tide_topic_rec_t *r = &a->t->rec;
  while (lo < hi) {
    uint32_t n = hi - lo < TIDE_BLOCK_MAX_ROWS ? hi - lo : TIDE_BLOCK_MAX_ROWS;
    int full = (int64_t)w->cur.bytes >= r->segment_bytes;
    int old = r->segment_ms >= 0 && a->now - w->cur.created_ms >= r->segment_ms;
    if (w->cur.end > w->cur.base && (full || old) && (rc = part_roll(a, p, err))) return rc;
    int64_t mn, mx;
    time_range(a, b, lo, lo + n, &mn, &mx);
    size_t before = w->buf.len;
    rc = tide_block_encode(b, lo, lo + n, w->cur.end, r->schema_version, mn, mx, &w->buf);
    if (rc) return tide_err_set(err, rc, "cannot encode a block: %s", tide_strerror(rc));
    w->cur.bytes += w->buf.len - before;
    w->cur.end += n;
    if (mn != TIDE_TS_NONE) {
      if (w->cur.min_ts == TIDE_TS_NONE || mn < w->cur.min_ts) w->cur.min_ts = mn;
      if (w->cur.max_ts == TIDE_TS_NONE || mx > w->cur.max_ts) w->cur.max_ts = mx;
    }
    w->cur.last_write_ms = a->now;
    if (w->buf.len >= FLUSH_BYTES && (rc = part_flush(a, w, err))) return rc;
    lo += n;
  }
  return 0;
}

/* tide_append_begin; `settle`: first wait for the append in flight on its
 * own thread (0 on that thread itself). */
static int append_begin(tide_topic_t *t, int settle, tide_append_t **out, tide_err_t *err) {
  tide_append_t *a = calloc(1, sizeof *a);
  if (!a) return tide_err_set(err, -ENOMEM, "out of memory");
  a->t = t;
  a->rr_part = -1;
  a->now = now_ms();
  int rc = settle ? topic_begin(t, 1, &a->txn, err) : topic_begin_raw(t, 1, &a->txn, err);
  if (rc) {
    free(a);
    return rc;
  }
  a->schema = t->info.schema;
  if (!(a->pw = calloc(t->rec.partitions, sizeof *a->pw))) {
    rc = tide_err_set(err, -ENOMEM, "out of memory");
    goto failed;
  }
  for (uint32_t p = 0; p < t->rec.partitions; p++) a->pw[p].fd = -1;
  *out = a;
  return 0;
failed:
  mdb_txn_abort(a->txn);
  free(a);
  return rc;
}

int tide_append_begin(tide_topic_t *t, tide_append_t **out, tide_err_t *err) { return append_begin(t, 1, out, err); }

/* Hash of a key value (FNV-1a over its bytes). */
static uint64_t key_hash(const tide_col_t *c, uint32_t i) {
  const unsigned char *p;
  size_t n;
  uint64_t tmp;
  if (c->type == TIDE_T_STRING || c->type == TIDE_T_JSON) {
    p = (const unsigned char *)tide_col_str(c, i, &n);
  } else if (c->type == TIDE_T_BOOL) {
    tmp = (uint64_t)tide_col_bool(c, i);
    p = (const unsigned char *)&tmp;
    n = 8;
  } else {
    memcpy(&tmp, (const char *)c->values + (size_t)i * 8, 8);
    p = (const unsigned char *)&tmp;
    n = 8;
  }
  uint64_t h = 1469598103934665603ULL;
  for (size_t k = 0; k < n; k++) h = (h ^ p[k]) * 1099511628211ULL;
  return h ^ (h >> 32);
}

static uint32_t rr_partition(tide_append_t *a) {
  if (a->rr_part < 0) {
    a->rr_part = (int64_t)(a->t->rec.rr % a->t->rec.partitions);
    a->t->rec.rr++;
  }
  return (uint32_t)a->rr_part;
}

int tide_append_rows(tide_append_t *a, const tide_batch_t *b, uint32_t lo, uint32_t hi, int key_col,
                     tide_err_t *err) {
  if (a->skipped) return 0; /* a replay: the rows are already in the topic */
  if (b->schema->nfields != a->schema->nfields)
    return tide_err_set(err, TIDE_EINVAL, "batch has %u columns, topic '%s' %u", b->schema->nfields, a->t->name,
                        a->schema->nfields);
  for (uint32_t c = 0; c < b->schema->nfields; c++)
    if (b->cols[c].type != a->schema->fields[c].type)
      return tide_err_set(err, TIDE_EINVAL, "column %u is %s, topic '%s' wants %s", c + 1,
                          tide_type_name(b->cols[c].type), a->t->name, tide_type_name(a->schema->fields[c].type));
  if (lo >= hi) return 0;
  uint32_t nparts = a->t->rec.partitions;
  if (key_col < 0 || nparts == 1) return part_add(a, key_col < 0 ? rr_partition(a) : 0, b, lo, hi, err);
  if ((uint32_t)key_col >= b->schema->nfields) return tide_err_set(err, TIDE_EINVAL, "bad key column");
  /* Split rows by key into per-partition scratch batches, then append each. */
  const tide_col_t *kc = &b->cols[key_col];
  int rc = 0;
  for (uint32_t i = lo; i < hi && !rc; i++) {
    uint32_t p = tide_col_is_null(kc, i) ? rr_partition(a) : (uint32_t)(key_hash(kc, i) % nparts);
    part_w *w = &a->pw[p];
    if (!w->scratch && !(w->scratch = tide_batch_new(b->schema, 1024))) rc = -ENOMEM;
    if (!rc) rc = tide_batch_append_row(w->scratch, b, i);
  }
  for (uint32_t p = 0; p < nparts && !rc; p++) {
    part_w *w = &a->pw[p];
    if (w->scratch && w->scratch->nrows) rc = part_add(a, p, w->scratch, 0, w->scratch->nrows, err);
    if (w->scratch) tide_batch_clear(w->scratch);
  }
  if (rc && (!err || err->code != rc)) tide_err_set(err, rc, "append: %s", tide_strerror(rc));
  return rc;
}

int tide_append_writer(tide_append_t *a, const char *writer, size_t len, uint64_t seq, int *skipped,
                       tide_err_t *err) {
  if (len == 0 || len > TIDE_WRITER_ID_MAX)
    return tide_err_set(err, TIDE_EINVAL, "writer id must be 1..%d bytes, got %zu", TIDE_WRITER_ID_MAX, len);
  if (a->has_writer) return tide_err_set(err, TIDE_EINVAL, "the append session already has a writer id");
  tide_writer_rec_t r;
  int rc = tide_catalog_writer_get(a->txn, a->t->s->cat, a->t->rec.id, writer, len, &r);
  if (rc == TIDE_ECORRUPT)
    return tide_err_set(err, rc, "topic '%s': the record of writer '%.*s' is corrupt", a->t->name, (int)len, writer);
  if (rc && rc != MDB_NOTFOUND) return fail(err, rc, "catalog");
  a->has_writer = 1;
  a->wlen = len;
  memcpy(a->writer, writer, len);
  a->seq = seq;
  a->skipped = rc == 0 && r.seq >= seq;
  *skipped = a->skipped;
  return 0;
}

int tide_topic_writer_seq(tide_topic_t *t, const char *writer, size_t len, uint64_t *seq, int *found,
                          tide_err_t *err) {
  if (len == 0 || len > TIDE_WRITER_ID_MAX)
    return tide_err_set(err, TIDE_EINVAL, "writer id must be 1..%d bytes, got %zu", TIDE_WRITER_ID_MAX, len);
  MDB_txn *txn;
  int rc = topic_begin(t, 0, &txn, err);
  if (rc) return rc;
  tide_writer_rec_t r;
  rc = tide_catalog_writer_get(txn, t->s->cat, t->rec.id, writer, len, &r);
  mdb_txn_abort(txn);
  *found = rc == 0;
  if (rc == 0) *seq = r.seq;
  if (rc == MDB_NOTFOUND) return 0;
  if (rc == TIDE_ECORRUPT)
    return tide_err_set(err, rc, "topic '%s': the record of writer '%.*s' is corrupt", t->name, (int)len, writer);
  return rc ? fail(err, rc, "catalog") : 0;
}

/* ------------------------------------------------- appends from batches --- */

/* The topic's fields as "a, b, c", for messages. */
static void field_list(const tide_schema_t *s, char *out, size_t cap) {
  size_t n = 0;
  out[0] = 0;
  for (uint32_t i = 0; i < s->nfields && n + 1 < cap; i++) {
    int w = snprintf(out + n, cap - n, "%s%s", i ? ", " : "", s->fields[i].name);
    if (w < 0) break;
    n += (size_t)w;
  }
}

static int schemaless_value(const tide_schema_t *s) {
  return s->nfields == 1 && s->fields[0].type == TIDE_T_JSON && !strcmp(s->fields[0].name, "value");
}

/* Do rows of `from` go into topic t as JSON objects (schemaless topic)? */
static int as_json_rows(const tide_topic_t *t, const tide_schema_t *from) {
  return (t->rec.flags & TIDE_TOPIC_SCHEMALESS) && !schemaless_value(from);
}

/* The name and type checks of tide_append_batch, against `to`, the topic's
 * latest schema. */
static int conform_check(const tide_topic_t *t, const tide_schema_t *from, const tide_schema_t *to, tide_err_t *err) {
  if (as_json_rows(t, from)) return 0;
  char fields[512];
  if (!(t->rec.flags & TIDE_TOPIC_IGNORE_UNKNOWN))
    for (uint32_t i = 0; i < from->nfields; i++)
      if (tide_schema_find(to, from->fields[i].name, from->fields[i].name_len) < 0) {
        field_list(to, fields, sizeof fields);
        return tide_err_set(err, TIDE_ESCHEMA, "column '%s' is not a field of topic '%s' (fields: %s)",
                            from->fields[i].name, t->name, fields);
      }
  for (uint32_t i = 0; i < to->nfields; i++) {
    const tide_field_t *f = &to->fields[i];
    int j = tide_schema_find(from, f->name, f->name_len);
    if (j < 0) {
      if (f->nullable || f->default_json) continue;
      field_list(from, fields, sizeof fields);
      return tide_err_set(err, TIDE_ESCHEMA,
                          "field '%s' of topic '%s' is NOT NULL without a default and the rows lack it (columns: %s)",
                          f->name, t->name, fields);
    }
    tide_type_t ft = from->fields[j].type;
    if (ft != f->type && !(ft == TIDE_T_INT && f->type == TIDE_T_DOUBLE))
      return tide_err_set(err, TIDE_ESCHEMA, "field '%s': the rows have %s, topic '%s' wants %s", f->name,
                          tide_type_name(ft), t->name, tide_type_name(f->type));
  }
  return 0;
}

int tide_topic_accepts(tide_topic_t *t, const tide_schema_t *schema, tide_err_t *err) {
  MDB_txn *txn;
  int rc = topic_begin(t, 0, &txn, err);
  if (rc) return rc;
  mdb_txn_abort(txn);
  return conform_check(t, schema, t->info.schema, err);
}

/* A NULL bound for a NOT NULL field without a default: the first such row. */
static int null_check(const tide_topic_t *t, const tide_batch_t *b, const tide_schema_t *to, tide_err_t *err) {
  for (uint32_t i = 0; i < to->nfields; i++) {
    const tide_field_t *f = &to->fields[i];
    if (f->nullable || f->default_json) continue;
    int j = tide_schema_find(b->schema, f->name, f->name_len);
    if (j < 0 || b->cols[j].null_count == 0) continue;
    for (uint32_t r = 0; r < b->nrows; r++)
      if (tide_col_is_null(&b->cols[j], r))
        return tide_err_set(err, TIDE_ESCHEMA, "row %u: field '%s' is NULL, topic '%s' declares it NOT NULL", r + 1,
                            f->name, t->name);
  }
  return 0;
}

/* Does b go in as it is: same names, types and order, and no NULL where a
 * NOT NULL field would take its default instead? */
static int same_shape(const tide_batch_t *b, const tide_schema_t *to) {
  const tide_schema_t *from = b->schema;
  if (from->nfields != to->nfields) return 0;
  for (uint32_t i = 0; i < to->nfields; i++) {
    const tide_field_t *f = &from->fields[i], *g = &to->fields[i];
    if (f->type != g->type || f->name_len != g->name_len || memcmp(f->name, g->name, f->name_len)) return 0;
    if (!g->nullable && b->cols[i].null_count) return 0;
  }
  return 1;
}

/* Make (or reuse) the projection from b's schema into the topic's. The
 * registry's projection refuses a nullable field read as NOT NULL; here a
 * NULL is judged per value (null_check, defaults), so the projection is
 * made from a copy of `from` whose fields take the target's nullability. */
static int conform_projection(tide_append_t *a, tide_schema_t *from, tide_err_t *err) {
  if (a->proj && a->conv_from == from) return 0;
  tide_projection_free(a->proj);
  a->proj = NULL;
  tide_schema_unref(a->conv_from);
  a->conv_from = NULL;
  tide_schema_t *relaxed = tide_schema_new();
  int rc = relaxed ? 0 : -ENOMEM;
  for (uint32_t i = 0; i < from->nfields && !rc; i++) {
    const tide_field_t *f = &from->fields[i];
    int j = tide_schema_find(a->schema, f->name, f->name_len);
    if (j < 0) continue; /* dropped (the topic ignores unknown fields) */
    int nullable = f->nullable && a->schema->fields[j].nullable;
    rc = tide_schema_add(relaxed, f->name, f->name_len, f->type, nullable, NULL, err);
  }
  if (!rc) rc = tide_projection_new(relaxed, a->schema, 0, &a->proj, err);
  tide_schema_unref(relaxed);
  if (rc) return err && err->msg[0] ? rc : tide_err_set(err, rc, "append: %s", tide_strerror(rc));
  a->conv_from = tide_schema_ref(from);
  return 0;
}

int tide_append_batch(tide_append_t *a, const tide_batch_t *b, int key_col, tide_err_t *err) {
  if (a->skipped || b->nrows == 0) return 0;
  const tide_schema_t *to = a->schema;
  int rc;
  if (!a->conv && !(a->conv = tide_batch_new(a->schema, b->nrows))) return tide_err_set(err, -ENOMEM, "out of memory");
  tide_batch_clear(a->conv);
  if (as_json_rows(a->t, b->schema)) {
    tide_buf_t js = TIDE_BUF_INIT;
    rc = 0;
    for (uint32_t r = 0; r < b->nrows && !rc; r++) {
      js.len = 0;
      if ((rc = tide_json_enc_row(b, r, &js, 0)) || (rc = tide_batch_row_begin(a->conv))) break;
      if ((rc = tide_batch_set_str(a->conv, 0, js.data, js.len))) tide_batch_row_abort(a->conv);
      else tide_batch_row_commit(a->conv);
    }
    tide_buf_free(&js);
    if (rc) return tide_err_set(err, rc, "append to topic '%s': %s", a->t->name, tide_strerror(rc));
    return tide_append_rows(a, a->conv, 0, a->conv->nrows, key_col, err);
  }
  if ((rc = conform_check(a->t, b->schema, to, err)) || (rc = null_check(a->t, b, to, err))) return rc;
  if (same_shape(b, to)) return tide_append_rows(a, b, 0, b->nrows, key_col, err);
  if ((rc = conform_projection(a, b->schema, err))) return rc;
  if ((rc = tide_projection_apply(a->proj, b, 0, b->nrows, a->conv)))
    return tide_err_set(err, rc, "append to topic '%s': %s", a->t->name, tide_strerror(rc));
  return tide_append_rows(a, a->conv, 0, a->conv->nrows, key_col, err);
}

static void append_free(tide_append_t *a) {
  for (uint32_t p = 0; a->pw && p < a->t->rec.partitions; p++) {
    part_w *w = &a->pw[p];
    if (w->fd >= 0) close(w->fd);
    free(w->created);
    tide_buf_free(&w->buf);
    tide_batch_free(w->scratch);
  }
  free(a->pw);
  tide_buf_free(&a->enc);
  tide_projection_free(a->proj);
  tide_schema_unref(a->conv_from);
  tide_batch_free(a->conv);
  free(a);
}

/* Undo the files a session wrote: cut the segment it appended to back to its
 * committed size and remove the segment files it created. */
static void append_undo_files(tide_append_t *a) {
  char path[PATH_LEN];
  for (uint32_t p = 0; p < a->t->rec.partitions; p++) {
    part_w *w = &a->pw[p];
    if (!w->touched) continue;
    if (w->has_orig) {
      seg_path(path, a->t->s, a->t->rec.id, p, w->orig_base);
      if (truncate(path, (off_t)w->orig_bytes) < 0) {
        /* left for the next writer, which cuts any tail past the catalog */
      }
    }
    for (size_t i = 0; i < w->ncreated; i++) {
      seg_path(path, a->t->s, a->t->rec.id, p, w->created[i]);
      unlink(path);
    }
  }
}

void tide_append_abort(tide_append_t *a) {
  if (!a) return;
  append_undo_files(a);
  mdb_txn_abort(a->txn);
  append_free(a);
}

/* tide_append_commit: flush and sync every partition written, put the open
 * segments' records (and the round-robin counter), commit. On any failure
 * the files are undone and nothing becomes visible. */
int tide_append_commit(tide_append_t *a, tide_range_t *ranges, uint32_t *nranges, tide_err_t *err) {
  if (a->skipped) {
    /* a replay: nothing was written, nothing is recorded */
    mdb_txn_abort(a->txn);
    a->txn = NULL;
    if (nranges) *nranges = 0;
    append_free(a);
    return 0;
  }
  int rc = 0;
  uint32_t nparts = a->t->rec.partitions, nr = 0;
  char dir[PATH_LEN];
  for (uint32_t p = 0; p < nparts && !rc; p++) {
    part_w *w = &a->pw[p];
    if (!w->touched) continue;
    if ((rc = part_flush(a, w, err))) break;
    if (a->t->s->sync && fdatasync(w->fd) < 0) {
      rc = -errno;
      tide_err_set(err, rc, "cannot sync segment of topic '%s' partition %u: %s", a->t->name, p, tide_strerror(rc));
      break;
    }
    if (w->ncreated && a->t->s->sync) {
      snprintf(dir, sizeof dir, "%s/topics/%u/p%u", a->t->s->dir, a->t->rec.id, p);
      if ((rc = sync_dir(dir))) {
        tide_err_set(err, rc, "cannot sync %s: %s", dir, tide_strerror(rc));
        break;
      }
    }
    if ((rc = tide_catalog_seg_put(a->txn, a->t->s->cat, a->t->rec.id, p, &w->cur))) {
      fail(err, rc, "catalog");
      break;
    }
    if (ranges && w->cur.end > w->first) {
      ranges[nr].partition = p;
      ranges[nr].first = w->first;
      ranges[nr].end = w->cur.end;
      nr++;
    }
  }
  if (!rc && a->rr_part >= 0 && (rc = tide_catalog_topic_put(a->txn, a->t->s->cat, a->t->name, &a->t->rec)))
    fail(err, rc, "catalog");
  if (!rc && a->has_writer) {
    /* the writer's sequence commits with the data, in this transaction */
    tide_writer_rec_t wr = {a->seq, a->now};
    if ((rc = tide_catalog_writer_put(a->txn, a->t->s->cat, a->t->rec.id, a->writer, a->wlen, &wr)))
      fail(err, rc, "catalog");
  }
  if (!rc && (rc = mdb_txn_commit(a->txn))) rc = commit_fail(a->t->s, err, rc);
  else if (rc) mdb_txn_abort(a->txn);
  a->txn = NULL; /* committed or aborted either way */
  if (rc) {
    if (a->rr_part >= 0) a->t->rec.rr--;
    append_undo_files(a);
  }
  if (nranges) *nranges = rc ? 0 : nr;
  append_free(a);
  return rc;
}


/* ------------------------------------------------ appends on a thread --- */

/* One append session run on a thread of its own (tide_append_start): the
 * session is begun, filled and committed there (LMDB ties a write
 * transaction to the thread that began it). The store owns the job from
 * start to tide_append_finish (or tide_store_close); the batches are the
 * job's. While it is in flight every other call on the store waits for
 * it to end first (store_settle), so nothing of the store's memory (the
 * topic's record and schemas, the catalog's map size) is touched by two
 * threads at once. */
struct tide_append_job {
  tide_topic_t *t;
  tide_batch_t **batches; /* owned */
  size_t nbatches;
  int key_col;
  char writer[TIDE_WRITER_ID_MAX];
  size_t wlen;
  uint64_t seq;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;               /* the session is committed or undone (under mu) */
  int holds;              /* tide_append_hold not yet released (under mu) */
  /* the result, read after done */
  int rc, skipped;
  tide_err_t err;
  tide_range_t *ranges;   /* t's partitions entries */
  uint32_t nranges;
};

static void *job_main(void *arg) {
  tide_append_job_t *j = arg;
  tide_append_t *a = NULL;
  int rc = append_begin(j->t, 0, &a, &j->err);
  if (!rc && j->wlen) rc = tide_append_writer(a, j->writer, j->wlen, j->seq, &j->skipped, &j->err);
  for (size_t i = 0; i < j->nbatches && !rc && !j->skipped; i++) rc = tide_append_batch(a, j->batches[i], j->key_col, &j->err);
  if (a && rc) tide_append_abort(a);
  else if (a) rc = tide_append_commit(a, j->ranges, &j->nranges, &j->err);
  j->rc = rc;
  pthread_mutex_lock(&j->mu);
  j->done = 1;
  pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&j->mu);
  return NULL;
}

static void job_free(tide_append_job_t *j) {
  for (size_t i = 0; i < j->nbatches; i++) tide_batch_free(j->batches[i]);
  free(j->batches);
  free(j->ranges);
  pthread_cond_destroy(&j->cv);
  pthread_mutex_destroy(&j->mu);
  free(j);
}

/* Wait until the store's append in flight (if any) has ended. Called on
 * the loop thread only (never by the job's own thread, which begins its
 * transaction with the _raw functions). */
static void store_settle(tide_store_t *s) {
  tide_append_job_t *j = s->job;
  if (!j) return;
  pthread_mutex_lock(&j->mu);
  while (!j->done) pthread_cond_wait(&j->cv, &j->mu);
  pthread_mutex_unlock(&j->mu);
}

int tide_append_start(tide_topic_t *t, tide_batch_t **batches, size_t n, int key_col, const char *writer,
                      size_t wlen, uint64_t seq, tide_err_t *err) {
  tide_store_t *s = t->s;
  int rc = 0;
  tide_append_job_t *j = NULL;
  if (s->job) rc = tide_err_set(err, -EBUSY, "topic '%s': an append is in flight on this store", t->name);
  else if (wlen > TIDE_WRITER_ID_MAX || (wlen == 0 && writer))
    rc = tide_err_set(err, TIDE_EINVAL, "writer id must be 1..%d bytes, got %zu", TIDE_WRITER_ID_MAX, wlen);
  else if (t->dead) rc = tide_err_set(err, TIDE_ENOTFOUND, "topic '%s' was deleted", t->name);
  else if (!(j = calloc(1, sizeof *j)) || !(j->ranges = calloc(t->rec.partitions ? t->rec.partitions : 1,
                                                                 sizeof *j->ranges)))
    rc = tide_err_set(err, -ENOMEM, "out of memory");
  if (!rc && n && !(j->batches = malloc(n * sizeof *j->batches))) rc = tide_err_set(err, -ENOMEM, "out of memory");
  if (rc) {
    for (size_t i = 0; i < n; i++) tide_batch_free(batches[i]);
    if (j) free(j->ranges);
    free(j);
    return rc;
  }
  j->t = t;
  if (n) memcpy(j->batches, batches, n * sizeof *batches);
  j->nbatches = n;
  j->key_col = key_col;
  if (writer) memcpy(j->writer, writer, wlen);
  j->wlen = writer ? wlen : 0;
  j->seq = seq;
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, NULL);
  s->job = j; /* before the thread starts: from now on the loop thread's calls settle first */
  if ((rc = pthread_create(&j->thread, NULL, job_main, j))) {
    s->job = NULL;
    job_free(j);
    return tide_err_set(err, -rc, "topic '%s': cannot start a thread: %s", t->name, tide_strerror(-rc));
  }
  return 0;
}

void *tide_append_hold(tide_store_t *s) {
  tide_append_job_t *j = s->job;
  if (!j) return NULL;
  pthread_mutex_lock(&j->mu);
  j->holds++;
  pthread_mutex_unlock(&j->mu);
  return j;
}

int tide_append_release(void *job, int wait) {
  tide_append_job_t *j = job;
  pthread_mutex_lock(&j->mu);
  if (wait)
    while (!j->done) pthread_cond_wait(&j->cv, &j->mu);
  int rc = wait ? j->rc : 0;
  j->holds--;
  pthread_cond_broadcast(&j->cv);
  pthread_mutex_unlock(&j->mu);
  return rc;
}

int tide_append_finish(tide_store_t *s, tide_range_t *ranges, uint32_t *nranges, int *skipped, tide_err_t *err) {
  tide_append_job_t *j = s->job;
  if (!j) return tide_err_set(err, TIDE_EINVAL, "store %s: no append in flight", s->dir);
  pthread_mutex_lock(&j->mu); /* a holder on another thread may still read it */
  while (j->holds) pthread_cond_wait(&j->cv, &j->mu);
  pthread_mutex_unlock(&j->mu);
  pthread_join(j->thread, NULL);
  s->job = NULL;
  int rc = j->rc;
  if (rc && err) *err = j->err;
  if (!rc && ranges) memcpy(ranges, j->ranges, j->nranges * sizeof *ranges);
  if (nranges) *nranges = rc ? 0 : j->nranges;
  if (skipped) *skipped = j->skipped;
  job_free(j);
  return rc;
}

int tide_append_pending(const tide_store_t *s) { return s->job != NULL; }

tide_store_t *tide_topic_store(const tide_topic_t *t) { return t->s; }

/* --------------------------------------------------------------- reads --- */

typedef struct part_snap {
  tide_seg_rec_t *segs;
  int *fds;   /* per segment: its file, open since the snapshot, or -1 */
  size_t n;
} part_snap_t;

/* How many segment files one reader holds open from its snapshot on
 * (reader_hold); a read of more segments holds the first ones. Bounded so
 * that readers do not use up the process's descriptors. */
#define READER_HOLD_MAX 64

struct tide_reader {
  tide_topic_t *t;
  tide_read_opts_t o;
  uint32_t part, part_end;  /* partitions [part, part_end) left to read */
  part_snap_t *snap;        /* per partition, taken at open */
  size_t si;                /* next segment of the current partition */
  const tide_seg_rec_t *seg;/* the segment being read */
  int *seg_fd;              /* its entry in the snapshot's fds */
  tide_map_t *map;
  size_t pos;               /* next block in map */
  uint64_t expect;          /* offset the next block must start at */
  uint64_t *offs;
  size_t offs_cap;
  tide_schema_t **schemas;  /* by version - 1, references held */
  uint32_t nschemas;
  uint32_t version;         /* the reader's schema version */
  tide_projection_t **proj; /* by writer version - 1, made on first use */
  int *time_cols;           /* the time column's index in each version, or -1 */
};

void tide_read_opts_init(tide_read_opts_t *o) {
  o->partition = -1;
  o->from = 0;
  o->to = UINT64_MAX;
  o->from_time = INT64_MIN;
  o->to_time = INT64_MAX;
  o->schema_version = 0;
}

static int time_filtered(const tide_read_opts_t *o) { return o->from_time != INT64_MIN || o->to_time != INT64_MAX; }

/* Does [mn, mx] (an event-time range, TIDE_TS_NONE when empty) meet the
 * requested [from_time, to_time)? */
static int time_overlaps(const tide_read_opts_t *o, int64_t mn, int64_t mx) {
  if (!time_filtered(o)) return 1;
  if (mn == TIDE_TS_NONE) return 0;
  return mx >= o->from_time && mn < o->to_time;
}

/* Can segment g hold rows the read wants? Pruned by offsets and by event
 * time without opening its file. */
static int seg_wanted(const tide_reader_t *r, const tide_seg_rec_t *g) {
  if (g->end <= r->o.from || g->base >= r->o.to || g->end == g->base) return 0;
  return time_overlaps(&r->o, g->min_ts, g->max_ts);
}

/* Open the files of the snapshot's wanted segments (up to READER_HOLD_MAX,
 * oldest partition and segment first) and keep them open until each is
 * read or the reader closes: retention may then delete a segment, and
 * offload move it, while the read runs, and the read still sees every
 * record committed when it started (an open file outlives its name). A
 * file already gone (retention or offload between the snapshot and here)
 * is left to reader_map, which looks again; so are the segments past
 * READER_HOLD_MAX, or past the process's descriptor limit. */
static int reader_hold(tide_reader_t *r, tide_err_t *err) {
  char path[PATH_LEN];
  size_t held = 0;
  int full = 0; /* the descriptor limit was met: every partition still gets its fds, all -1 */
  for (uint32_t p = r->part; p < r->part_end; p++) {
    part_snap_t *ps = &r->snap[p];
    if (!(ps->fds = malloc((ps->n ? ps->n : 1) * sizeof *ps->fds)))
      return tide_err_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < ps->n; i++) ps->fds[i] = -1;
    for (size_t i = 0; i < ps->n && held < READER_HOLD_MAX && !full; i++) {
      const tide_seg_rec_t *g = &ps->segs[i];
      if (!seg_wanted(r, g) || g->bytes == 0) continue;
      if (g->state == TIDE_SEG_OFFLOADED) cold_path(path, r->t->s, r->t->rec.id, p, g->base);
      else seg_path(path, r->t->s, r->t->rec.id, p, g->base);
      if ((ps->fds[i] = open(path, O_RDONLY | O_CLOEXEC)) >= 0) held++;
      else if (errno == EMFILE || errno == ENFILE) full = 1; /* hold no more; the rest is read by name */
      else if (errno != ENOENT)
        return tide_err_set(err, -errno, "cannot open %s: %s", path, tide_strerror(-errno));
    }
  }
  return 0;
}

int tide_reader_open(tide_topic_t *t, const tide_read_opts_t *o, tide_reader_t **out, tide_err_t *err) {
  MDB_txn *txn;
  int rc = topic_begin(t, 0, &txn, err);
  if (rc) return rc;
  tide_reader_t *r = calloc(1, sizeof *r);
  if (!r) {
    mdb_txn_abort(txn);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  r->t = t;
  r->o = *o;
  if (o->partition >= 0 && (uint64_t)o->partition >= t->rec.partitions) {
    rc = tide_err_set(err, TIDE_EINVAL, "topic '%s' has no partition %" PRId64 " (partitions: 0..%u)", t->name,
                      o->partition, t->rec.partitions - 1);
    goto failed;
  }
  r->part = o->partition >= 0 ? (uint32_t)o->partition : 0;
  r->part_end = o->partition >= 0 ? (uint32_t)o->partition + 1 : t->rec.partitions;
  if (!(r->snap = calloc(t->rec.partitions, sizeof *r->snap)) ||
      !(r->schemas = calloc(t->rec.schema_version, sizeof *r->schemas))) {
    rc = tide_err_set(err, -ENOMEM, "out of memory");
    goto failed;
  }
  r->nschemas = t->rec.schema_version;
  r->version = o->schema_version ? o->schema_version : r->nschemas;
  if (r->version > r->nschemas) {
    rc = tide_err_set(err, TIDE_ENOTFOUND, "topic '%s' has no schema version %u (versions: 1..%u)", t->name,
                      r->version, r->nschemas);
    goto failed;
  }
  if (!(r->proj = calloc(r->nschemas, sizeof *r->proj)) || !(r->time_cols = calloc(r->nschemas, sizeof(int)))) {
    rc = tide_err_set(err, -ENOMEM, "out of memory");
    goto failed;
  }
  for (uint32_t v = 1; v <= r->nschemas; v++) {
    tide_schema_t *s;
    if ((rc = topic_schema(t, txn, v, &s, err))) goto failed;
    r->schemas[v - 1] = tide_schema_ref(s);
  }
  /* the time column, by name, in every version (the registry keeps it) */
  for (uint32_t v = 0; v < r->nschemas; v++) {
    r->time_cols[v] = -1;
    if (t->rec.time_col >= 0) {
      const tide_field_t *tf = &r->schemas[r->nschemas - 1]->fields[t->rec.time_col];
      r->time_cols[v] = tide_schema_find(r->schemas[v], tf->name, tf->name_len);
    }
  }
  for (uint32_t p = r->part; p < r->part_end; p++)
    if ((rc = tide_catalog_segs(txn, t->s->cat, t->rec.id, p, &r->snap[p].segs, &r->snap[p].n))) {
      fail(err, rc, "catalog");
      goto failed;
    }
  mdb_txn_abort(txn);
  if ((rc = reader_hold(r, err))) goto failed_closed;
  *out = r;
  return 0;
failed:
  mdb_txn_abort(txn);
failed_closed:
  tide_reader_close(r);
  return rc;
}

void tide_reader_close(tide_reader_t *r) {
  if (!r) return;
  tide_map_unref(r->map);
  if (r->snap)
    for (uint32_t p = 0; p < r->t->rec.partitions; p++) {
      for (size_t i = 0; r->snap[p].fds && i < r->snap[p].n; i++)
        if (r->snap[p].fds[i] >= 0) close(r->snap[p].fds[i]);
      free(r->snap[p].fds);
      free(r->snap[p].segs);
    }
  free(r->snap);
  for (uint32_t v = 0; r->schemas && v < r->nschemas; v++) tide_schema_unref(r->schemas[v]);
  for (uint32_t v = 0; r->proj && v < r->nschemas; v++) tide_projection_free(r->proj[v]);
  free(r->schemas);
  free(r->proj);
  free(r->time_cols);
  free(r->offs);
  free(r);
}

/* Where partition p of the snapshot is, for messages. */
static int corrupt(tide_reader_t *r, tide_err_t *err, int rc, const char *why) {
  char msg[sizeof(tide_err_t)];
  snprintf(msg, sizeof msg, "%s", why);
  return tide_err_set(err, rc, "topic '%s' partition %u segment %020" PRIu64 ".seg%s offset %" PRIu64 ": %s",
                      r->t->name, r->part, r->seg->base, r->seg->state == TIDE_SEG_OFFLOADED ? ".zst (cold)" : "",
                      r->expect, msg);
}

/* Is the segment r->seg still in the catalog, and in which state? 1 and
 * *state when it is, 0 when retention dropped it after the snapshot, with
 * *first the partition's first offset still held. */
static int reader_seg_state(tide_reader_t *r, uint32_t *state, uint64_t *first, tide_err_t *err) {
  MDB_txn *txn;
  tide_seg_rec_t *segs = NULL;
  size_t n = 0;
  int rc = store_begin(r->t->s, 0, &txn), found = 0;
  if (rc) return fail(err, rc, "catalog");
  rc = tide_catalog_segs(txn, r->t->s->cat, r->t->rec.id, r->part, &segs, &n);
  mdb_txn_abort(txn);
  if (rc) return fail(err, rc, "catalog");
  for (size_t i = 0; i < n; i++)
    if (segs[i].base == r->seg->base) {
      found = 1;
      *state = segs[i].state;
    }
  *first = n ? segs[0].base : r->seg->end;
  free(segs);
  return found;
}

/* Map the segment r->seg: from the file held open since the snapshot
 * (reader_hold), else its hot file or its cold copy by name. A segment
 * that offload moved to the cold tier after the snapshot was taken is read
 * from there. One that retention dropped after the snapshot, and that the
 * reader did not hold, fails the read (TIDE_ENOTFOUND, "offset N is no
 * longer held", as the streaming topic source says): the read promised
 * what was committed when it started, and skipping the records would hide
 * a gap. A file that is gone while the catalog still names it is
 * corruption, never silently skipped. */
static int reader_mapped(tide_reader_t *r, int rc, int cold, tide_err_t *err);

static int reader_map(tide_reader_t *r, tide_err_t *err) {
  char path[PATH_LEN];
  const tide_seg_rec_t *g = r->seg;
  r->expect = g->base; /* for messages from here on */
  int rc, cold = g->state == TIDE_SEG_OFFLOADED;
  if (*r->seg_fd >= 0) { /* held since the snapshot: retention or offload cannot take it */
    if (cold) {
      cold_path(path, r->t->s, r->t->rec.id, r->part, g->base);
      rc = tide_tier_get_fd(*r->seg_fd, path, g->bytes, &r->map, err);
    } else {
      rc = tide_map_fd(*r->seg_fd, g->bytes, &r->map);
    }
    close(*r->seg_fd);
    *r->seg_fd = -1;
    return reader_mapped(r, rc, cold, err);
  }
  for (int attempt = 0; attempt < 2; attempt++) {
    if (cold) {
      cold_path(path, r->t->s, r->t->rec.id, r->part, g->base);
      rc = tide_tier_get(path, g->bytes, &r->map, err);
    } else {
      seg_path(path, r->t->s, r->t->rec.id, r->part, g->base);
      rc = tide_map_file(path, g->bytes, &r->map);
    }
    if (rc != -ENOENT) break;
    uint32_t state = TIDE_SEG_OPEN;
    uint64_t first = 0;
    int in = reader_seg_state(r, &state, &first, err);
    if (in < 0) return in;
    if (!in) {
      uint64_t off = g->base > r->o.from ? g->base : r->o.from;
      return tide_err_set(err, TIDE_ENOTFOUND,
                          "topic '%s' partition %u: offset %" PRIu64 " is no longer held (deleted by retention "
                          "while the read ran); the first offset still available is %" PRIu64,
                          r->t->name, r->part, off, first);
    }
    if (attempt == 0 && !cold && state == TIDE_SEG_OFFLOADED) {
      cold = 1; /* offloaded since the snapshot */
      continue;
    }
    return corrupt(r, err, TIDE_ECORRUPT, cold ? "the cold copy of the segment is missing" : "segment file is missing");
  }
  return reader_mapped(r, rc, cold, err);
}

/* After reader_map mapped r->seg (rc): the errors, else the header check. */
static int reader_mapped(tide_reader_t *r, int rc, int cold, tide_err_t *err) {
  const tide_seg_rec_t *g = r->seg;
  if (rc == TIDE_ECORRUPT && !cold) return corrupt(r, err, rc, "segment file is shorter than its committed size");
  if (rc && cold) return corrupt(r, err, rc == -ENOMEM ? rc : TIDE_ECORRUPT, err ? err->msg : "cannot read the cold copy");
  if (rc) return corrupt(r, err, rc, tide_strerror(rc));
  rc = tide_seg_header_check(r->map->addr, r->map->len, r->t->rec.id, r->part, g->base);
  if (rc) return corrupt(r, err, rc, rc == TIDE_EFORMAT ? "unknown segment format version" : "bad segment header");
  r->pos = TIDE_SEG_HEADER;
  return 0;
}

/* Advance to the next segment that can hold wanted rows, across partitions.
 * Returns 1 when positioned, 0 at the end, <0 on error. */
static int reader_next_segment(tide_reader_t *r, tide_err_t *err) {
  for (;;) {
    tide_map_unref(r->map);
    r->map = NULL;
    if (r->part >= r->part_end) return 0;
    part_snap_t *ps = &r->snap[r->part];
    if (r->si >= ps->n) {
      r->part++;
      r->si = 0;
      continue;
    }
    r->seg_fd = &ps->fds[r->si];
    r->seg = &ps->segs[r->si++];
    if (!seg_wanted(r, r->seg)) continue;
    int rc = reader_map(r, err);
    return rc ? rc : 1;
  }
}

int tide_reader_next(tide_reader_t *r, tide_batch_t **out, uint32_t *partition, const uint64_t **offsets,
                     tide_err_t *err) {
  int rc;
  for (;;) {
    if (!r->map || r->pos >= r->map->len) {
      if (r->map && r->expect != r->seg->end)
        return corrupt(r, err, TIDE_ECORRUPT, "segment ends before its committed end offset");
      if ((rc = reader_next_segment(r, err)) <= 0) return rc;
      continue;
    }
    tide_block_hdr_t h;
    const char *p = r->map->addr + r->pos;
    /* Blocks the read does not want are stepped over on their header
     * alone: a read from an offset deep in a segment (a streaming source's
     * next batch) must not checksum everything before it. */
    if ((rc = tide_block_peek(p, r->map->len - r->pos, &h, err))) return corrupt(r, err, rc, err ? err->msg : "bad block");
    if (h.base_offset != r->expect) { /* name the root cause: a damaged block fails its checksum */
      if ((rc = tide_block_check(p, r->map->len - r->pos, &h, err))) return corrupt(r, err, rc, err ? err->msg : "bad block");
      return corrupt(r, err, TIDE_ECORRUPT, "block is out of sequence");
    }
    uint64_t lo = h.base_offset, hi = h.base_offset + h.count;
    uint64_t want_lo = lo > r->o.from ? lo : r->o.from, want_hi = hi < r->o.to ? hi : r->o.to;
    if (want_lo >= want_hi || !time_overlaps(&r->o, h.min_ts, h.max_ts)) {
      r->pos += h.len;
      r->expect += h.count;
      continue;
    }
    tide_seen_block_t *sb = &r->t->seen[r->part % SEEN_BLOCKS];
    uint32_t crc; /* the stored CRC, compared as it is (its byte order does not matter) */
    memcpy(&crc, p + 8, 4);
    if (sb->used && sb->part == r->part && sb->seg_base == r->seg->base && sb->pos == r->pos && sb->len == h.len &&
        sb->crc == crc) {
      h.ncols = sb->ncols; /* checked by the read that cut it (see tide_seen_block_t) */
    } else {
      if ((rc = tide_block_check(p, r->map->len - r->pos, &h, err))) return corrupt(r, err, rc, err ? err->msg : "bad block");
      if (want_hi < hi) /* the next read starts in this block */
        *sb = (tide_seen_block_t){1, r->part, h.ncols, h.len, crc, r->seg->base, r->pos};
    }
    r->pos += h.len;
    r->expect += h.count;
    if (h.schema_version == 0 || h.schema_version > r->nschemas)
      return corrupt(r, err, TIDE_ECORRUPT, "block names an unknown schema version");
    tide_batch_t *b;
    if ((rc = tide_block_decode(p, &h, r->schemas[h.schema_version - 1], r->map, &b, err)))
      return corrupt(r, err, rc, err ? err->msg : "cannot decode block");
    if (r->offs_cap < h.count) {
      free(r->offs);
      r->offs_cap = h.count < 1024 ? 1024 : h.count;
      if (!(r->offs = malloc(r->offs_cap * sizeof *r->offs))) {
        r->offs_cap = 0;
        tide_batch_free(b);
        return tide_err_set(err, -ENOMEM, "out of memory");
      }
    }
    uint32_t v = h.schema_version;
    int tc = r->time_cols[v - 1];
    int whole_time = !time_filtered(&r->o) || tc < 0 ||
                     (h.min_ts != TIDE_TS_NONE && h.min_ts >= r->o.from_time && h.max_ts < r->o.to_time &&
                      b->cols[tc].null_count == 0);
    if (want_lo == lo && want_hi == hi && whole_time && v == r->version) {
      for (uint32_t i = 0; i < h.count; i++) r->offs[i] = lo + i;
      *out = b;
    } else {
      /* part of the block, or another schema version: copy the wanted rows
       * out, projecting them into the reader's schema */
      if (v != r->version && !r->proj[v - 1] &&
          (rc = tide_projection_new(r->schemas[v - 1], r->schemas[r->version - 1], r->version < v, &r->proj[v - 1],
                                    err))) {
        char why[sizeof(tide_err_t)];
        snprintf(why, sizeof why, "%s", err ? err->msg : "");
        tide_batch_free(b);
        return tide_err_set(err, rc, "rows of schema version %u cannot be read as version %u: %s", v, r->version, why);
      }
      tide_batch_t *c = NULL;
      uint32_t n = 0, *keep = malloc((size_t)(want_hi - want_lo + 1) * sizeof *keep);
      if (v != r->version && keep) c = tide_batch_new(r->schemas[r->version - 1], (uint32_t)(want_hi - want_lo));
      rc = keep && (c || v == r->version) ? 0 : -ENOMEM;
      for (uint64_t off = want_lo; off < want_hi && !rc; off++) {
        uint32_t i = (uint32_t)(off - lo);
        if (!whole_time) {
          const tide_col_t *col = &b->cols[tc];
          if (tide_col_is_null(col, i)) continue;
          int64_t ts = tide_col_i64(col, i);
          if (ts < r->o.from_time || ts >= r->o.to_time) continue;
        }
        if (v != r->version) rc = tide_projection_apply(r->proj[v - 1], b, i, i + 1, c);
        if (!rc) {
          keep[n] = i;
          r->offs[n++] = off;
        }
      }
      /* the same schema version: the kept rows, column by column (a range
       * when no time filter left rows out) */
      if (!rc && v == r->version && n)
        rc = n == keep[n - 1] - keep[0] + 1 ? tide_batch_slice(b, keep[0], keep[0] + n, &c)
                                             : tide_batch_gather(b, keep, n, &c);
      free(keep);
      tide_batch_free(b);
      if (rc) {
        tide_batch_free(c);
        return tide_err_set(err, rc, "reading topic '%s': %s", r->t->name, tide_strerror(rc));
      }
      if (n == 0) {
        tide_batch_free(c);
        continue;
      }
      *out = c;
    }
    *partition = r->part;
    *offsets = r->offs;
    return 1;
  }
}

/* ---------------------------------------------------- retention/offload --- */

int tide_topic_enforce_retention(tide_topic_t *t, int64_t now, uint32_t *dropped, tide_err_t *err) {
  MDB_txn *txn;
  int rc = topic_begin(t, 1, &txn, err);
  if (rc) return rc;
  /* Decide per partition, oldest first; never the open segment. */
  typedef struct {
    uint32_t part;
    uint64_t base;
    int cold;
  } victim_t;
  victim_t *v = NULL;
  size_t nv = 0, cap = 0;
  for (uint32_t p = 0; p < t->rec.partitions && !rc; p++) {
    tide_seg_rec_t *segs;
    size_t n;
    if ((rc = tide_catalog_segs(txn, t->s->cat, t->rec.id, p, &segs, &n))) break;
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) total += segs[i].bytes;
    for (size_t i = 0; i < n && !rc; i++) {
      const tide_seg_rec_t *g = &segs[i];
      if (g->state == TIDE_SEG_OPEN) break;
      int by_age = t->rec.retention_ms >= 0 && g->last_write_ms < now - t->rec.retention_ms;
      int by_size = t->rec.retention_bytes >= 0 && total > (uint64_t)t->rec.retention_bytes;
      if (!by_age && !by_size) break;
      if ((rc = tide_catalog_seg_del(txn, t->s->cat, t->rec.id, p, g->base))) break;
      if (nv == cap) {
        cap = cap ? cap * 2 : 16;
        victim_t *q = realloc(v, cap * sizeof *v);
        if (!q) {
          rc = -ENOMEM;
          break;
        }
        v = q;
      }
      v[nv].part = p;
      v[nv].base = g->base;
      v[nv].cold = g->state == TIDE_SEG_OFFLOADED;
      nv++;
      total -= g->bytes;
    }
    free(segs);
  }
  if (!rc) rc = mdb_txn_commit(txn);
  else mdb_txn_abort(txn);
  if (rc) {
    free(v);
    return fail(err, rc, "retention");
  }
  char path[PATH_LEN];
  for (size_t i = 0; i < nv; i++) {
    if (v[i].cold) cold_path(path, t->s, t->rec.id, v[i].part, v[i].base);
    else seg_path(path, t->s, t->rec.id, v[i].part, v[i].base);
    unlink(path);
  }
  free(v);
  *dropped = (uint32_t)nv;
  return 0;
}

int tide_topic_offload(tide_topic_t *t, uint64_t before, uint32_t *moved, tide_err_t *err) {
  MDB_txn *txn;
  int rc = topic_begin(t, 1, &txn, err);
  if (rc) return rc;
  char hot[PATH_LEN], cold[PATH_LEN], dir[PATH_LEN];
  uint64_t (*done)[2] = NULL; /* (partition, base) of moved segments */
  size_t nd = 0, cap = 0;
  for (uint32_t p = 0; p < t->rec.partitions && !rc; p++) {
    tide_seg_rec_t *segs;
    size_t n;
    if ((rc = tide_catalog_segs(txn, t->s->cat, t->rec.id, p, &segs, &n))) {
      fail(err, rc, "catalog");
      break;
    }
    for (size_t i = 0; i < n && !rc; i++) {
      tide_seg_rec_t g = segs[i];
      if (g.state != TIDE_SEG_SEALED || g.end > before) continue;
      seg_path(hot, t->s, t->rec.id, p, g.base);
      cold_path(cold, t->s, t->rec.id, p, g.base);
      snprintf(dir, sizeof dir, "%s/%u/p%u", t->s->cold, t->rec.id, p);
      if ((rc = mkdirs(dir))) {
        tide_err_set(err, rc, "cannot create %s: %s", dir, tide_strerror(rc));
        break;
      }
      /* The cold copy is whole (written and renamed) before the catalog
       * names it; the hot file goes only after the commit. */
      if ((rc = tide_tier_put(hot, g.bytes, cold, t->s->sync, &g.stored_bytes, err))) break;
      g.state = TIDE_SEG_OFFLOADED;
      if ((rc = tide_catalog_seg_put(txn, t->s->cat, t->rec.id, p, &g))) {
        fail(err, rc, "catalog");
        break;
      }
      if (nd == cap) {
        cap = cap ? cap * 2 : 16;
        void *q = realloc(done, cap * sizeof *done);
        if (!q) {
          rc = tide_err_set(err, -ENOMEM, "out of memory");
          break;
        }
        done = q;
      }
      done[nd][0] = p;
      done[nd][1] = g.base;
      nd++;
    }
    free(segs);
  }
  if (!rc && (rc = mdb_txn_commit(txn))) rc = commit_fail(t->s, err, rc);
  else if (rc) mdb_txn_abort(txn);
  for (size_t i = 0; i < nd; i++) {
    /* committed: drop the hot copies; failed: drop the cold copies */
    if (rc) cold_path(hot, t->s, t->rec.id, (uint32_t)done[i][0], done[i][1]);
    else seg_path(hot, t->s, t->rec.id, (uint32_t)done[i][0], done[i][1]);
    unlink(hot);
  }
  free(done);
  if (!rc) *moved = (uint32_t)nd;
  return rc;
}
