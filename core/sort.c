/*
 * sort.c: stable multi-key ordering of a batch's rows (rules in sort.h).
 *
 * A bottom-up merge sort of a permutation: runs of RUN rows are sorted by
 * insertion, then merged in passes of doubling width between perm and a
 * scratch array. Both steps only move a row ahead of an earlier one when it
 * compares strictly smaller, and a merge takes from the left run on ties,
 * so equal rows keep their input order (stable). A merge whose runs are
 * already in order (last of left <= first of right) is a plain copy, which
 * makes sorted input cost one compare per run.
 *
 * A single key of a fixed-width type takes a faster road: an LSD radix sort
 * of order-preserving 64-bit images of the values (radix_sort), also
 * stable.
 *
 * The row compare goes key by key: NULLs first or last as the key says
 * (independent of the direction), then the values, negated for desc.
 * Doubles use Spark's order (NaN greatest, -0.0 == 0.0, hash.h).
 */
#include "sort.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define RUN 32

typedef struct skey {
  const tide_col_t *c;
  int desc, nulls_first, nulls;
} skey_t;

/* <0, 0, >0: the order of rows a and b on one key. */
static inline int cmp_key(const skey_t *k, uint32_t a, uint32_t b) {
  const tide_col_t *c = k->c;
  if (k->nulls) {
    int na = tide_col_is_null(c, a), nb = tide_col_is_null(c, b);
    if (na || nb) {
      if (na && nb) return 0;
      return (na ? -1 : 1) * (k->nulls_first ? 1 : -1);
    }
  }
  int r;
  switch (c->type) {
  case TIDE_T_BOOL: r = tide_col_bool(c, a) - tide_col_bool(c, b); break;
  case TIDE_T_DOUBLE: r = tide__cmp_f64(tide_col_f64(c, a), tide_col_f64(c, b)); break;
  case TIDE_T_STRING:
  case TIDE_T_JSON: {
    size_t na, nb;
    const char *pa = tide_col_str(c, a, &na), *pb = tide_col_str(c, b, &nb);
    r = tide__cmp_bytes(pa, na, pb, nb);
    break;
  }
  default: {
    int64_t x = tide_col_i64(c, a), y = tide_col_i64(c, b);
    r = (x > y) - (x < y);
    break;
  }
  }
  return k->desc ? -r : r;
}

/* <0, 0, >0: the order of rows a and b on every key. */
static inline int cmp_rows(const skey_t *k, uint32_t nk, uint32_t a, uint32_t b) {
  for (uint32_t i = 0; i < nk; i++) {
    int r = cmp_key(&k[i], a, b);
    if (r) return r;
  }
  return 0;
}

/* Merge the sorted runs src[lo..mid) and src[mid..hi) into dst[lo..hi). */
static void merge(const skey_t *k, uint32_t nk, const uint32_t *src, uint32_t *dst, uint32_t lo, uint32_t mid,
                  uint32_t hi) {
  if (mid >= hi || cmp_rows(k, nk, src[mid - 1], src[mid]) <= 0) {
    memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof *dst);
    return;
  }
  uint32_t i = lo, j = mid, o = lo;
  while (i < mid && j < hi) dst[o++] = cmp_rows(k, nk, src[j], src[i]) < 0 ? src[j++] : src[i++];
  while (i < mid) dst[o++] = src[i++];
  while (j < hi) dst[o++] = src[j++];
}

/* The order-preserving unsigned image of row i of fixed-width column c:
 * ints flip the sign bit; doubles map -0.0 to 0.0, every NaN to one value
 * above +inf, and negative values to their complement, as IEEE-754 order
 * sorting does; desc inverts it. */
static inline uint64_t radix_key(const tide_col_t *c, uint32_t i, int desc) {
  uint64_t k;
  switch (c->type) {
  case TIDE_T_BOOL: k = ((const uint8_t *)c->values)[i]; break;
  case TIDE_T_DOUBLE: {
    k = tide__norm_f64(((const double *)c->values)[i]);
    k = k >> 63 ? ~k : k | (1ull << 63);
    break;
  }
  default: k = ((const uint64_t *)c->values)[i] ^ (1ull << 63); break;
  }
  return desc ? ~k : k;
}

/* One fixed-width key: put the NULL rows first or last (stable), then sort
 * the others by an LSD radix sort of their 64-bit images, a byte per pass,
 * skipping the passes where every row has the same byte. Stable as every
 * counting pass is. 0 or -ENOMEM. */
static int radix_sort(const tide_sort_key_t *key, const tide_col_t *c, uint32_t n, uint32_t *perm) {
  uint64_t *k = malloc((size_t)n * sizeof *k), *k2 = malloc((size_t)n * sizeof *k2);
  uint32_t *p2 = malloc((size_t)n * sizeof *p2);
  if (!k || !k2 || !p2) {
    free(k);
    free(k2);
    free(p2);
    return -ENOMEM;
  }
  uint32_t nn = 0, m = 0, lo; /* NULL rows, and the range [lo, lo + m) of the others */
  for (uint32_t i = 0; i < n; i++) nn += (uint32_t)tide_col_is_null(c, i);
  lo = key->nulls_first ? nn : 0;
  uint32_t at_null = key->nulls_first ? 0 : n - nn;
  for (uint32_t i = 0; i < n; i++) {
    if (tide_col_is_null(c, i)) {
      perm[at_null++] = i;
    } else {
      perm[lo + m] = i;
      k[m++] = radix_key(c, i, key->desc);
    }
  }
  uint32_t *src = perm + lo, *dst = p2;
  uint64_t *ks = k, *kd = k2;
  static const size_t B = 256;
  for (int shift = 0; shift < 64; shift += 8) {
    size_t cnt[256] = {0};
    for (uint32_t i = 0; i < m; i++) cnt[(ks[i] >> shift) & 0xff]++;
    if (m == 0 || cnt[(ks[0] >> shift) & 0xff] == m) continue; /* one byte value: nothing moves */
    size_t sum = 0;
    for (size_t b = 0; b < B; b++) {
      size_t t = cnt[b];
      cnt[b] = sum;
      sum += t;
    }
    for (uint32_t i = 0; i < m; i++) {
      size_t at = cnt[(ks[i] >> shift) & 0xff]++;
      dst[at] = src[i];
      kd[at] = ks[i];
    }
    uint32_t *t = src;
    src = dst;
    dst = t;
    uint64_t *tk = ks;
    ks = kd;
    kd = tk;
  }
  if (src != perm + lo) memcpy(perm + lo, src, (size_t)m * sizeof *perm);
  free(k);
  free(k2);
  free(p2);
  return 0;
}

/* Sort the rows of b (sort.h). Errors: TIDE_EINVAL (a key column out of
 * range), -ENOMEM. */
int tide_sort(const tide_batch_t *b, const tide_sort_key_t *keys, uint32_t nkeys, uint32_t *perm, tide_err_t *err) {
  uint32_t n = b->nrows;
  for (uint32_t i = 0; i < nkeys; i++)
    if (keys[i].col >= b->schema->nfields)
      return tide_err_set(err, TIDE_EINVAL, "sort key %u: column %u out of range (%u columns)", i, keys[i].col,
                          b->schema->nfields);
  for (uint32_t i = 0; i < n; i++) perm[i] = i;
  if (n < 2 || !nkeys) return 0;
  tide_type_t t1 = b->cols[keys[0].col].type;
  if (nkeys == 1 && n > RUN && t1 != TIDE_T_STRING && t1 != TIDE_T_JSON)
    return radix_sort(&keys[0], &b->cols[keys[0].col], n, perm) ? tide_err_set(err, -ENOMEM, "out of memory") : 0;
  skey_t *k = malloc(nkeys * sizeof *k);
  uint32_t *tmp = n > RUN ? malloc((size_t)n * sizeof *tmp) : NULL;
  if (!k || (n > RUN && !tmp)) {
    free(k);
    free(tmp);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  for (uint32_t i = 0; i < nkeys; i++) {
    k[i].c = &b->cols[keys[i].col];
    k[i].desc = keys[i].desc != 0;
    k[i].nulls_first = keys[i].nulls_first != 0;
    k[i].nulls = k[i].c->valid != NULL;
  }
  for (uint32_t lo = 0; lo < n; lo += RUN) { /* insertion sort of each run */
    uint32_t hi = n - lo < RUN ? n : lo + RUN;
    for (uint32_t i = lo + 1; i < hi; i++) {
      uint32_t x = perm[i], j = i;
      while (j > lo && cmp_rows(k, nkeys, perm[j - 1], x) > 0) {
        perm[j] = perm[j - 1];
        j--;
      }
      perm[j] = x;
    }
  }
  uint32_t *src = perm, *dst = tmp;
  for (uint32_t w = RUN; w < n; w *= 2) {
    for (uint32_t lo = 0; lo < n; lo += 2 * w) {
      uint32_t mid = n - lo < w ? n : lo + w;
      uint32_t hi = n - mid < w ? n : mid + w;
      merge(k, nkeys, src, dst, lo, mid, hi);
    }
    uint32_t *t = src;
    src = dst;
    dst = t;
    if (w > UINT32_MAX / 2) break;
  }
  if (src != perm) memcpy(perm, src, (size_t)n * sizeof *perm);
  free(k);
  free(tmp);
  return 0;
}
