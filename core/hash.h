/*
 * hash.h: the 64-bit hashing shared by the hash operators (agg.c, join.c).
 * Internal to the core: nothing here is part of the Lua-facing contract.
 *
 * The mixing step is wyhash's: a 64x64->128 multiply whose halves are
 * xor-ed together. A key of several columns is hashed a column at a time
 * into a per-row vector: h = tide__hash_u64(h, bits) or
 * tide__hash_bytes(h, p, len) per column, starting from TIDE__HSEED, and a
 * NULL value folds in tide__hash_null(h). Equal values of one type always
 * hash the same; callers normalise doubles first (tide__norm_f64) so that
 * every NaN is one value and -0.0 equals 0.0, as Spark's grouping, distinct
 * and join keys do (NormalizeFloatingNumbers).
 *
 * Reads never go past p + len (short inputs are read in overlapping 4-byte
 * pieces), so hashing the last string of a column is ASan clean.
 */
#ifndef TIDE_HASH_H
#define TIDE_HASH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "batch.h"

#define TIDE__HSEED 0x2d358dccaa6c78a5ull
#define TIDE__H1 0xa0761d6478bd642full
#define TIDE__H2 0xe7037ed1a0b428dbull
#define TIDE__H3 0x8ebc6af09c88c6e3ull
#define TIDE__H4 0x589965cc75374cc3ull

/* The 128-bit product of a and b, folded to 64 bits. */
static inline uint64_t tide__mix(uint64_t a, uint64_t b) {
  __uint128_t r = (__uint128_t)a * b;
  return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* Fold the 64-bit value v into the running hash h. */
static inline uint64_t tide__hash_u64(uint64_t h, uint64_t v) { return tide__mix(v ^ TIDE__H1, h ^ TIDE__H2); }

/* Fold a NULL into h (distinct from every value with high probability). */
static inline uint64_t tide__hash_null(uint64_t h) { return tide__mix(h ^ TIDE__H3, TIDE__H4); }

static inline uint64_t tide__r8(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static inline uint64_t tide__r4(const uint8_t *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Fold the bytes p[0..len) into h. */
static inline uint64_t tide__hash_bytes(uint64_t h, const void *key, size_t len) {
  const uint8_t *p = key;
  uint64_t a, b, seed = h ^ TIDE__H4;
  if (len <= 16) {
    if (len >= 4) {
      size_t q = (len >> 3) << 2;
      a = (tide__r4(p) << 32) | tide__r4(p + q);
      b = (tide__r4(p + len - 4) << 32) | tide__r4(p + len - 4 - q);
    } else if (len > 0) {
      a = ((uint64_t)p[0] << 16) | ((uint64_t)p[len >> 1] << 8) | p[len - 1];
      b = 0;
    } else {
      a = b = 0;
    }
  } else {
    size_t i = len;
    while (i > 16) {
      seed = tide__mix(tide__r8(p) ^ TIDE__H1, tide__r8(p + 8) ^ seed);
      p += 16;
      i -= 16;
    }
    a = tide__r8(p + i - 16);
    b = tide__r8(p + i - 8);
  }
  return tide__mix(TIDE__H1 ^ len, tide__mix(a ^ TIDE__H2, b ^ seed));
}

/* The bits of d with every NaN made one NaN and -0.0 made 0.0. */
static inline uint64_t tide__norm_f64(double d) {
  uint64_t u;
  if (d != d) return 0x7ff8000000000000ull;
  if (d == 0) return 0;
  memcpy(&u, &d, 8);
  return u;
}

static inline double tide__f64_of(uint64_t u) {
  double d;
  memcpy(&d, &u, 8);
  return d;
}

/* Spark's double order (SQLOrderingUtil.compareDoubles): NaN equals NaN and
 * is greater than every other value; -0.0 equals 0.0. Returns -1, 0, 1. */
static inline int tide__cmp_f64(double x, double y) {
  if (x < y) return -1;
  if (x > y) return 1;
  if (x == y) return 0;
  int nx = isnan(x), ny = isnan(y);
  return nx == ny ? 0 : nx ? 1 : -1;
}

/* Bytewise order of two byte strings (shorter first on a common prefix). */
static inline int tide__cmp_bytes(const char *a, size_t na, const char *b, size_t nb) {
  size_t n = na < nb ? na : nb;
  int c = n ? memcmp(a, b, n) : 0;
  if (c) return c < 0 ? -1 : 1;
  return na < nb ? -1 : na > nb ? 1 : 0;
}

/* Fold column c (rows [0, n)) into the row hashes h[0..n), a column at a
 * time. With ints_as_doubles, integers hash as the doubles they equal, so
 * that an int key and a double key of the same value meet (joins). NULL
 * rows hash their zero value; callers mark them as they need. */
static inline void tide__hash_col(const tide_col_t *c, uint32_t n, uint64_t *h, int ints_as_doubles) {
  switch (c->type) {
  case TIDE_T_STRING:
  case TIDE_T_JSON: {
    for (uint32_t i = 0; i < n; i++) {
      size_t len;
      const char *p = tide_col_str(c, i, &len); /* data may be NULL when every string is empty */
      h[i] = tide__hash_bytes(h[i], p, len);
    }
    break;
  }
  case TIDE_T_DOUBLE: {
    const double *v = c->values;
    for (uint32_t i = 0; i < n; i++) h[i] = tide__hash_u64(h[i], tide__norm_f64(v[i]));
    break;
  }
  case TIDE_T_BOOL: {
    const uint8_t *v = c->values;
    for (uint32_t i = 0; i < n; i++) h[i] = tide__hash_u64(h[i], v[i]);
    break;
  }
  case TIDE_T_INT:
    if (ints_as_doubles) {
      const int64_t *v = c->values;
      for (uint32_t i = 0; i < n; i++) h[i] = tide__hash_u64(h[i], tide__norm_f64((double)v[i]));
      break;
    }
    __attribute__((fallthrough));
  default: {
    const uint64_t *v = c->values;
    for (uint32_t i = 0; i < n; i++) h[i] = tide__hash_u64(h[i], v[i]);
    break;
  }
  }
}

#endif
