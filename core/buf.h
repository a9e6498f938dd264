/*
 * buf.h: a growable byte buffer, the one the core uses wherever it builds
 * bytes (encoded blocks, JSON text, DDL text).
 *
 * Invariant: len <= cap; data is NULL only when cap == 0. The buffer owns
 * data; tide_buf_free releases it and leaves an empty buffer that may be
 * reused. Growth doubles, so appends are amortised O(1).
 */
#ifndef TIDE_BUF_H
#define TIDE_BUF_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct tide_buf {
  char *data;
  size_t len, cap;
} tide_buf_t;

#define TIDE_BUF_INIT {NULL, 0, 0}

/* Make room for n more bytes. Returns 0 or -ENOMEM (the buffer is unchanged). */
static inline int tide_buf_reserve(tide_buf_t *b, size_t n) {
  if (b->cap - b->len >= n) return 0;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < n) {
    if (cap > SIZE_MAX / 2) return -ENOMEM;
    cap *= 2;
  }
  char *p = realloc(b->data, cap);
  if (!p) return -ENOMEM;
  b->data = p;
  b->cap = cap;
  return 0;
}

static inline int tide_buf_append(tide_buf_t *b, const void *p, size_t n) {
  int rc = tide_buf_reserve(b, n);
  if (rc) return rc;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static inline int tide_buf_putc(tide_buf_t *b, char c) {
  if (b->len == b->cap) {
    int rc = tide_buf_reserve(b, 1);
    if (rc) return rc;
  }
  b->data[b->len++] = c;
  return 0;
}

static inline int tide_buf_puts(tide_buf_t *b, const char *s) { return tide_buf_append(b, s, strlen(s)); }

/* NUL-terminate without counting the NUL in len. */
static inline int tide_buf_cstr(tide_buf_t *b) {
  int rc = tide_buf_reserve(b, 1);
  if (rc) return rc;
  b->data[b->len] = 0;
  return 0;
}

static inline void tide_buf_free(tide_buf_t *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

#endif
