/*
 * fileread.c: file ranges read and decoded, here or on a thread of their
 * own (rules in fileread.h).
 *
 * Each range is read with pread into one buffer, `text`, that holds what
 * the last decode left (a record cut by the chunk's end) followed by the
 * next chunk; what the decoder consumed is slid out before the next read.
 * So each byte is read once into memory the decoder reads in place (the
 * Lua reader copied each chunk twice: f:read, then carry .. chunk).
 */
#include "fileread.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool.h"
#include "schema.h"

tide_fread_t *tide_fread_new(tide_schema_t *s, const tide_decode_opts_t *o) {
  tide_fread_t *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->schema = tide_schema_ref(s);
  r->opts = *o;
  return r;
}

int tide_fread_add(tide_fread_t *r, const char *path, int64_t from, int64_t to, int64_t line, int header) {
  if (r->nranges == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 4;
    tide_fread_range_t *q = realloc(r->ranges, cap * sizeof *q);
    if (!q) return -ENOMEM;
    r->ranges = q;
    r->cap = cap;
  }
  char *p = strdup(path);
  if (!p) return -ENOMEM;
  tide_fread_range_t *g = &r->ranges[r->nranges++];
  g->path = p; /* the read's now */
  g->from = from;
  g->to = to;
  g->line = g->end_line = line;
  g->header = header;
  return 0;
}

/* Keep batch b in the result (an empty one is freed). 0 or -ENOMEM (b freed). */
static int keep_batch(tide_fread_t *r, tide_batch_t *b) {
  if (b->nrows == 0) {
    tide_batch_free(b);
    return 0;
  }
  if (r->nbatches == r->bcap) {
    size_t cap = r->bcap ? r->bcap * 2 : 8;
    tide_batch_t **q = realloc(r->batches, cap * sizeof *q);
    if (!q) {
      tide_batch_free(b);
      return -ENOMEM;
    }
    r->batches = q;
    r->bcap = cap;
  }
  r->batches[r->nbatches++] = b;
  return 0;
}

/* Keep the dead records of one decode call (range k). 0 or -ENOMEM. */
static int keep_dead(tide_fread_t *r, size_t k, const tide_decode_result_t *res) {
  for (size_t i = 0; i < res->ndead; i++) {
    if (r->ndead == r->dcap) {
      size_t cap = r->dcap ? r->dcap * 2 : 8;
      tide_fread_dead_t *q = realloc(r->dead, cap * sizeof *q);
      if (!q) return -ENOMEM;
      r->dead = q;
      r->dcap = cap;
    }
    const tide_bad_record_t *d = &res->dead[i];
    char *reason = strdup(d->reason), *text = malloc(d->len + 1);
    if (!reason || !text) {
      free(reason);
      free(text);
      return -ENOMEM;
    }
    memcpy(text, d->text, d->len + 1);
    r->dead[r->ndead++] = (tide_fread_dead_t){k, {d->line, reason, text, d->len}};
  }
  return 0;
}

static int fail(tide_fread_t *r, int kind, int rc, size_t k) {
  r->kind = kind;
  r->rc = rc;
  r->failed = k;
  return -1;
}

/* Decode the complete records of text[0..len) (all of it when final) of
 * range k into batches; *used: the bytes consumed. 0, or -1 with the error
 * in r. */
static int decode_text(tide_fread_t *r, size_t k, struct tide_pool *pool, const char *text, size_t len, int final,
                       size_t *used) {
  tide_fread_range_t *g = &r->ranges[k];
  size_t pos = 0;
  while (pos < len) {
    tide_batch_t *b = NULL;
    tide_decode_result_t res;
    int rc = tide_decode_par(pool, pool ? (size_t)tide_pool_threads(pool) * 2 : 1, r->schema, &r->opts, text + pos, len - pos,
                             final, g->end_line, &b, &res, &r->err);
    if (rc) return fail(r, TIDE_FREAD_DECODE, rc, k);
    r->dropped += res.dropped;
    for (uint32_t j = 0; j < res.ndropped_lines && r->ndropped_lines < TIDE_DECODE_KEEP; j++)
      r->dropped_lines[r->ndropped_lines++] = res.dropped_lines[j];
    rc = keep_dead(r, k, &res);
    free((void *)res.dead);
    if (!rc) rc = keep_batch(r, b);
    if (rc) return fail(r, TIDE_FREAD_DECODE, rc, k);
    g->end_line += res.lines;
    pos += res.used;
    if (res.used == 0) break;
  }
  *used = pos;
  return 0;
}

/* Read and decode range k. 0, or -1 with the error in r. */
static int read_range(tide_fread_t *r, size_t k, struct tide_pool *pool) {
  tide_fread_range_t *g = &r->ranges[k];
  int fd = open(g->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    tide_err_set(&r->err, -e, "%s", strerror(e));
    return fail(r, TIDE_FREAD_OPEN, -e, k);
  }
  tide_buf_t text = TIDE_BUF_INIT;
  int64_t at = g->from, left = g->to - g->from;
  int header = g->header, rc = 0;
  while (!rc) {
    int eof = left == 0;
    if (!eof) {
      size_t want = left < TIDE_FREAD_CHUNK ? (size_t)left : TIDE_FREAD_CHUNK;
      if (tide_buf_reserve(&text, want)) {
        rc = fail(r, TIDE_FREAD_DECODE, -ENOMEM, k);
        break;
      }
      size_t got = 0;
      while (got < want) {
        ssize_t n = pread(fd, text.data + text.len + got, want - got, (off_t)(at + (int64_t)got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          int e = errno;
          tide_err_set(&r->err, -e, "%s", strerror(e));
          rc = fail(r, TIDE_FREAD_IO, -e, k);
          break;
        }
        if (n == 0) break;
        got += (size_t)n;
      }
      if (rc) break;
      if (got < want) {
        r->left = at + (int64_t)got - g->from;
        rc = fail(r, TIDE_FREAD_SHORT, 0, k);
        break;
      }
      text.len += got;
      at += (int64_t)got;
      left -= (int64_t)got;
      eof = left == 0;
    }
    size_t skip = 0;
    if (header) {
      const char *nl = text.len ? memchr(text.data, '\n', text.len) : NULL;
      if (nl || eof) {
        skip = nl ? (size_t)(nl - text.data) + 1 : text.len;
        header = 0;
        g->end_line++;
      }
    }
    if (!header && text.len > skip) {
      size_t used;
      if (decode_text(r, k, pool, text.data + skip, text.len - skip, eof, &used)) {
        rc = -1;
        break;
      }
      skip += used;
    }
    if (skip) {
      memmove(text.data, text.data + skip, text.len - skip);
      text.len -= skip;
    }
    if (eof) {
      if (text.len > 0) {
        r->line = g->end_line;
        r->left = (int64_t)text.len;
        rc = fail(r, TIDE_FREAD_UNFINISHED, 0, k);
      }
      break;
    }
  }
  tide_buf_free(&text);
  close(fd);
  return rc;
}

static void run(tide_fread_t *r, struct tide_pool *pool) {
  for (size_t k = 0; k < r->nranges; k++)
    if (read_range(r, k, pool)) return;
}

static void *thread_main(void *arg) {
  tide_fread_t *r = arg;
  tide_pool_t *pool = r->pool;
  if (pool) { /* the caller's pool, shared: its reference is this thread's */
    run(r, pool);
    r->pool = NULL;
    tide_pool_close(pool);
    return NULL;
  }
  /* the loop thread's pool is its own: a read of its own pool (when it
   * cannot start one, this thread decodes alone) */
  if (r->threads > 1 && tide_pool_open(r->threads, &pool)) pool = NULL;
  run(r, pool);
  tide_pool_close(pool);
  return NULL;
}

int tide_fread_start(tide_fread_t *r, int threads) {
  if (r->state != 0) return 0;
  r->threads = threads < 1 ? 1 : threads > TIDE_POOL_MAX ? TIDE_POOL_MAX : threads;
  int rc = pthread_create(&r->thread, NULL, thread_main, r);
  if (rc) return -rc;
  r->state = 1;
  return 0;
}

int tide_fread_start_on(tide_fread_t *r, struct tide_pool *pool) {
  if (r->state != 0) return 0;
  r->threads = tide_pool_threads(pool);
  tide_pool_ref(pool);
  r->pool = pool;
  int rc = pthread_create(&r->thread, NULL, thread_main, r);
  if (rc) {
    r->pool = NULL;
    tide_pool_close(pool);
    return -rc;
  }
  r->state = 1;
  return 0;
}

void tide_fread_wait(tide_fread_t *r, struct tide_pool *pool) {
  if (r->state == 1) pthread_join(r->thread, NULL);
  else if (r->state == 0) run(r, pool);
  r->state = 2;
}

tide_batch_t **tide_fread_take(tide_fread_t *r, size_t *n) {
  tide_batch_t **out = r->batches;
  *n = r->nbatches;
  if (!out) out = malloc(sizeof *out);
  if (!out) return NULL;
  r->batches = NULL;
  r->nbatches = r->bcap = 0;
  return out;
}

void tide_fread_free(tide_fread_t *r) {
  if (!r) return;
  if (r->state == 1) pthread_join(r->thread, NULL);
  for (size_t i = 0; i < r->nbatches; i++) tide_batch_free(r->batches[i]);
  free(r->batches);
  for (size_t i = 0; i < r->ndead; i++) {
    free(r->dead[i].rec.reason);
    free(r->dead[i].rec.text);
  }
  free(r->dead);
  for (size_t i = 0; i < r->nranges; i++) free(r->ranges[i].path);
  free(r->ranges);
  tide_schema_unref(r->schema);
  free(r);
}

/* ---- the file source's cut ------------------------------------------------ */

#define CUT_BLOCK (64u << 10)

/* pread all of n bytes at off, or fewer at the end of the file; the count
 * read, or -errno. */
static ssize_t read_at(int fd, char *p, size_t n, int64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = pread(fd, p + got, n - got, (off_t)(off + (int64_t)got));
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -errno;
    if (k == 0) break;
    got += (size_t)k;
  }
  return (ssize_t)got;
}

int tide_file_cut(const char *path, int64_t p, int64_t budget, int must, int64_t to, int64_t *cut, tide_err_t *err) {
  *cut = -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    return tide_err_set(err, -e, "%s", strerror(e));
  }
  char *blk = malloc(CUT_BLOCK);
  if (!blk) {
    close(fd);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  int rc = 0;
  int64_t end = p + budget < to ? p + budget : to; /* the window is [p, end) */
  /* backwards: the last LF of the window (only whole bytes the file has) */
  int64_t hi = end;
  while (hi > p && *cut < 0) {
    int64_t lo = hi - p > CUT_BLOCK ? hi - CUT_BLOCK : p;
    ssize_t n = read_at(fd, blk, (size_t)(hi - lo), lo);
    if (n < 0) {
      rc = tide_err_set(err, (int)n, "%s", strerror((int)-n));
      break;
    }
    for (ssize_t i = n; i > 0; i--)
      if (blk[i - 1] == '\n') {
        *cut = lo + i;
        break;
      }
    hi = lo;
  }
  /* forwards, with must: the first LF after the window, else `to` */
  if (!rc && *cut < 0 && must) {
    int64_t at = end;
    while (at < to) {
      size_t want = to - at > CUT_BLOCK ? CUT_BLOCK : (size_t)(to - at);
      ssize_t n = read_at(fd, blk, want, at);
      if (n < 0) {
        rc = tide_err_set(err, (int)n, "%s", strerror((int)-n));
        break;
      }
      if (n == 0) break;
      const char *nl = memchr(blk, '\n', (size_t)n);
      if (nl) {
        *cut = at + (nl - blk) + 1;
        break;
      }
      at += n;
    }
    if (!rc && *cut < 0) *cut = to;
  }
  free(blk);
  close(fd);
  return rc;
}
