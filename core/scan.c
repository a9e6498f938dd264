/*
 * scan.c: a static aggregation over whole files in one stage (rules in
 * scan.h).
 */
#include "scan.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "pool.h"

typedef struct scan {
  tide_agg_t *a;
  tide_schema_t *schema;
  const tide_decode_opts_t *o;
  const tide_agg_input_t *tmpl;
  int64_t R;
  size_t nfiles;
  int *fd;
  int64_t *size;
  uint64_t *first;  /* the first range of each file (global numbering); first[nfiles] = all */
  pthread_mutex_t mu; /* guards next and failed (a lock per range: few, and helgrind sees it) */
  uint64_t next;    /* the next range to hand out */
  int failed;       /* a range failed: the scan is given up */
} scan_t;

/* pread all of n bytes at off into p: 0, or -1 (an error or a short file). */
static int read_all(int fd, char *p, size_t n, int64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = pread(fd, p + got, n - got, (off_t)(off + (int64_t)got));
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    got += (size_t)k;
  }
  return 0;
}

/* The first line start at or after x in a file of size bytes: 0 for 0,
 * size for x >= size, else just after the first LF at or after x - 1
 * (size when none). -1 on a read error. */
static int64_t line_start(int fd, int64_t x, int64_t size) {
  if (x <= 0) return 0;
  if (x >= size) return size;
  char blk[4096];
  for (int64_t at = x - 1; at < size; at += (int64_t)sizeof blk) {
    size_t n = size - at < (int64_t)sizeof blk ? (size_t)(size - at) : sizeof blk;
    if (read_all(fd, blk, n, at)) return -1;
    const char *nl = memchr(blk, '\n', n);
    if (nl) return at + (nl - blk) + 1;
  }
  return size;
}

/* Read, decode and push range k (file f's range j) with worker table w,
 * text its buffer. 0 or -1 (the range failed). */
static int scan_range(scan_t *sc, uint32_t w, uint64_t k, size_t f, int64_t j, tide_buf_t *text) {
  int fd = sc->fd[f];
  int64_t size = sc->size[f], from = line_start(fd, j * sc->R, size), to = line_start(fd, (j + 1) * sc->R, size);
  if (from < 0 || to < 0) return -1;
  if (to <= from) return 0; /* inside a line longer than a range */
  size_t len = (size_t)(to - from);
  text->len = 0;
  if (tide_buf_reserve(text, len) || read_all(fd, text->data, len, from)) return -1;
  int final = to == size, rc = 0;
  size_t pos = 0;
  tide_err_t err = {0, ""};
  while (pos < len && !rc) {
    tide_batch_t *b = NULL;
    tide_decode_result_t res;
    if (tide_decode_par(NULL, 1, sc->schema, sc->o, text->data + pos, len - pos, final, 1, &b, &res, &err)) return -1;
    free((void *)res.dead);
    if (b->nrows) {
      tide_agg_input_t in = *sc->tmpl;
      in.batch = b;
      rc = tide_agg_scan_push(sc->a, w, k, &in, &err) ? -1 : 0;
    }
    tide_batch_free(b);
    if (res.used == 0) break;
    pos += res.used;
  }
  return rc || pos < len ? -1 : 0; /* bytes left: a record the decoder did not finish */
}

/* A worker: ranges from the shared counter until none is left (or one failed). */
static void scan_worker(void *arg, size_t w) {
  scan_t *sc = arg;
  tide_buf_t text = TIDE_BUF_INIT;
  size_t f = 0;
  for (;;) {
    pthread_mutex_lock(&sc->mu);
    uint64_t k = sc->failed ? sc->first[sc->nfiles] : sc->next++;
    pthread_mutex_unlock(&sc->mu);
    if (k >= sc->first[sc->nfiles]) break;
    while (k >= sc->first[f + 1]) f++; /* a worker's ranges ascend */
    if (scan_range(sc, (uint32_t)w, k, f, (int64_t)(k - sc->first[f]), &text)) {
      pthread_mutex_lock(&sc->mu);
      sc->failed = 1;
      pthread_mutex_unlock(&sc->mu);
      break;
    }
  }
  tide_buf_free(&text);
}

int tide_scan_files(tide_agg_t *a, const char *const *paths, size_t n, tide_schema_t *s,
                    const tide_decode_opts_t *o, const tide_agg_input_t *tmpl, int64_t range_bytes,
                    struct tide_pool *pool, tide_err_t *err) {
  if (o->bad == TIDE_BAD_DEAD_LETTER || (o->format == TIDE_FMT_CSV && o->multi_line)) return 1;
  if (tmpl->select || tmpl->want_created || tmpl->late_col >= 0) return 1;
  scan_t sc;
  memset(&sc, 0, sizeof sc);
  pthread_mutex_init(&sc.mu, NULL);
  sc.a = a;
  sc.schema = s;
  sc.o = o;
  sc.tmpl = tmpl;
  sc.R = range_bytes > 0 ? range_bytes : TIDE_SCAN_RANGE;
  sc.nfiles = n;
  sc.fd = malloc((n ? n : 1) * sizeof *sc.fd);
  sc.size = malloc((n ? n : 1) * sizeof *sc.size);
  sc.first = malloc((n + 1) * sizeof *sc.first);
  int rc = sc.fd && sc.size && sc.first ? 0 : 1;
  size_t opened = 0;
  for (; !rc && opened < n; opened++) {
    struct stat st;
    sc.first[opened] = opened ? sc.first[opened - 1] + (uint64_t)((sc.size[opened - 1] + sc.R - 1) / sc.R) : 0;
    if ((sc.fd[opened] = open(paths[opened], O_RDONLY | O_CLOEXEC)) < 0) {
      rc = 1;
      break;
    }
    if (fstat(sc.fd[opened], &st) || !S_ISREG(st.st_mode)) {
      close(sc.fd[opened]);
      rc = 1;
      break;
    }
    sc.size[opened] = (int64_t)st.st_size;
  }
  if (!rc) {
    sc.first[n] = n ? sc.first[n - 1] + (uint64_t)((sc.size[n - 1] + sc.R - 1) / sc.R) : 0;
    int begun = tide_agg_scan_begin(a, (uint32_t)(pool ? tide_pool_threads(pool) : 1), err);
    if (begun < 0) rc = begun;
    else if (!begun) rc = 1;
  }
  if (!rc) {
    tide_pool_run(pool, (size_t)(pool ? tide_pool_threads(pool) : 1), scan_worker, &sc);
    if (sc.failed) {
      tide_agg_scan_abort(a);
      rc = 1;
    } else {
      rc = tide_agg_scan_end(a, sc.first[n], pool, err);
    }
  }
  for (size_t i = 0; i < opened; i++) close(sc.fd[i]);
  free(sc.fd);
  free(sc.size);
  free(sc.first);
  pthread_mutex_destroy(&sc.mu);
  return rc;
}
