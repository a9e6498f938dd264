/*
 * join.c: hash join against a static right batch (rules in join.h).
 *
 * The build indexes the right batch's rows by key:
 *
 *   tab[tcap]   open addressing, linear probing, one entry per distinct
 *               right key: {hash, head row, used}; tcap is a power of two
 *               >= 2 * (right rows), so the load stays <= 1/2 and the table
 *               never grows.
 *   next[m]     a chain through the right rows of one key: next[r] is the
 *               following row with r's key, or NONE. Rows are inserted in
 *               descending order and pushed at the head, so every chain is
 *               in ascending row order, which is the order probes emit.
 *
 * Rows with a NULL in any key column are never inserted (NULL never
 * matches). Keys are hashed a column at a time into a per-row vector with
 * hash.h; int and double columns both hash the value as a normalised double,
 * so that an int key can probe a double key (compared as numbers, as Spark
 * does after coercing both sides to double). Equality then looks at the
 * values themselves: int with int exactly, NaN equals NaN, -0.0 equals 0.0.
 */
#include "join.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "vec.h" /* TIDE_ROW_NULL */

#define NONE UINT32_MAX

typedef struct jent {
  uint64_t h;
  uint32_t head;
  uint32_t used;
} jent_t;

struct tide_join {
  const tide_batch_t *right;
  uint32_t nkeys;
  uint32_t *kcols;
  uint32_t *next;
  jent_t *tab;
  size_t tcap;
};

/* Type classes: variable-width, and numbers compared by value. */
static int is_var(tide_type_t t) { return t == TIDE_T_STRING || t == TIDE_T_JSON; }
static int is_num(tide_type_t t) { return t == TIDE_T_INT || t == TIDE_T_DOUBLE; }

/* h[0..n) = the key hash of each row of b (key columns kc[0..nk)); nul[i]
 * = 1 when a key of row i is NULL (join.h; also sjoin.c's). */
void tide__join_hash_rows(const tide_batch_t *b, const uint32_t *kc, uint32_t nk, uint64_t *h, uint8_t *nul) {
  uint32_t n = b->nrows;
  for (uint32_t i = 0; i < n; i++) {
    h[i] = TIDE__HSEED;
    nul[i] = 0;
  }
  for (uint32_t k = 0; k < nk; k++) {
    const tide_col_t *c = &b->cols[kc[k]];
    tide__hash_col(c, n, h, 1);
    if (c->valid && c->null_count)
      for (uint32_t i = 0; i < n; i++) nul[i] |= (uint8_t)tide_col_is_null(c, i);
  }
}

/* 1 when value i of a equals value j of b (neither NULL; types equal or
 * both numeric). */
static inline int val_eq(const tide_col_t *a, uint32_t i, const tide_col_t *b, uint32_t j) {
  if (is_var(a->type)) {
    size_t na, nb;
    const char *pa = tide_col_str(a, i, &na), *pb = tide_col_str(b, j, &nb);
    return na == nb && (!na || !memcmp(pa, pb, na));
  }
  switch (a->type) {
  case TIDE_T_BOOL: return tide_col_bool(a, i) == tide_col_bool(b, j);
  case TIDE_T_TIMESTAMP: return tide_col_i64(a, i) == tide_col_i64(b, j);
  default: break;
  }
  if (a->type == TIDE_T_INT && b->type == TIDE_T_INT) return tide_col_i64(a, i) == tide_col_i64(b, j);
  double x = a->type == TIDE_T_INT ? (double)tide_col_i64(a, i) : tide_col_f64(a, i);
  double y = b->type == TIDE_T_INT ? (double)tide_col_i64(b, j) : tide_col_f64(b, j);
  return x == y || (x != x && y != y);
}

/* 1 when row i of a (keys ka) and row j of b (keys kb) have equal keys. */
int tide__join_keys_eq(const tide_batch_t *a, const uint32_t *ka, uint32_t i, const tide_batch_t *b,
                          const uint32_t *kb, uint32_t j, uint32_t nk) {
  for (uint32_t k = 0; k < nk; k++)
    if (!val_eq(&a->cols[ka[k]], i, &b->cols[kb[k]], j)) return 0;
  return 1;
}

/* Index the rows of right by the key columns key_cols[0..nkeys) (join.h).
 * Errors: TIDE_EINVAL (a key column out of range), -ENOMEM. */
int tide_join_build(const tide_batch_t *right, const uint32_t *key_cols, uint32_t nkeys, tide_join_t **out,
                    tide_err_t *err) {
  *out = NULL;
  for (uint32_t k = 0; k < nkeys; k++)
    if (key_cols[k] >= right->schema->nfields)
      return tide_err_set(err, TIDE_EINVAL, "join key %u: right column %u out of range (%u columns)", k, key_cols[k],
                          right->schema->nfields);
  uint32_t m = right->nrows;
  tide_join_t *j = calloc(1, sizeof *j);
  uint64_t *h = malloc((m ? m : 1) * sizeof *h);
  uint8_t *nul = malloc(m ? m : 1);
  if (j) {
    j->right = right;
    j->nkeys = nkeys;
    j->kcols = malloc((nkeys ? nkeys : 1) * sizeof *j->kcols);
    j->next = malloc((m ? m : 1) * sizeof *j->next);
    j->tcap = 16;
    while (j->tcap < (size_t)m * 2) j->tcap *= 2;
    j->tab = calloc(j->tcap, sizeof *j->tab);
  }
  if (!j || !h || !nul || !j->kcols || !j->next || !j->tab) {
    free(h);
    free(nul);
    tide_join_free(j);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  if (nkeys) memcpy(j->kcols, key_cols, nkeys * sizeof *key_cols);
  tide__join_hash_rows(right, key_cols, nkeys, h, nul);
  size_t mask = j->tcap - 1;
  for (uint32_t r = m; r-- > 0;) {
    j->next[r] = NONE;
    if (nul[r]) continue;
    size_t pos = h[r] & mask;
    jent_t *e;
    for (; (e = &j->tab[pos])->used; pos = (pos + 1) & mask)
      if (e->h == h[r] && tide__join_keys_eq(right, key_cols, e->head, right, key_cols, r, nkeys)) break;
    if (e->used) {
      j->next[r] = e->head;
    } else {
      e->h = h[r];
      e->used = 1;
    }
    e->head = r;
  }
  free(h);
  free(nul);
  *out = j;
  return 0;
}

/* Free the index (not the right batch, which the caller owns); NULL is a
 * no-op. */
void tide_join_free(tide_join_t *j) {
  if (!j) return;
  free(j->kcols);
  free(j->next);
  free(j->tab);
  free(j);
}

/* Append the pair (l, r) to the growing output arrays. 0, -ENOMEM or
 * TIDE_ETOOBIG (2^32 - 1 pairs). */
static int emit(uint32_t **lr, uint32_t **rr, size_t *n, size_t *cap, uint32_t l, uint32_t r) {
  if (*n == *cap) {
    if (*cap >= UINT32_MAX - 1) return TIDE_ETOOBIG;
    size_t c = *cap * 2 > UINT32_MAX - 1 ? UINT32_MAX - 1 : *cap * 2;
    uint32_t *a = realloc(*lr, c * sizeof *a);
    if (!a) return -ENOMEM;
    *lr = a;
    uint32_t *b = realloc(*rr, c * sizeof *b);
    if (!b) return -ENOMEM;
    *rr = b;
    *cap = c;
  }
  (*lr)[*n] = l;
  (*rr)[*n] = r;
  (*n)++;
  return 0;
}

/* Match the rows of left against the build (join.h). Errors: TIDE_EINVAL
 * (wrong key count, a column out of range, key types that differ),
 * TIDE_ETOOBIG, -ENOMEM; on failure *lrows and *rrows are NULL. */
int tide_join_probe(const tide_join_t *j, const tide_batch_t *left, const uint32_t *key_cols, int left_outer,
                    uint32_t **lrows, uint32_t **rrows, uint32_t *count, tide_err_t *err) {
  *lrows = *rrows = NULL;
  *count = 0;
  const tide_batch_t *right = j->right;
  for (uint32_t k = 0; k < j->nkeys; k++) {
    if (key_cols[k] >= left->schema->nfields)
      return tide_err_set(err, TIDE_EINVAL, "join key %u: left column %u out of range (%u columns)", k, key_cols[k],
                          left->schema->nfields);
    tide_type_t lt = left->cols[key_cols[k]].type, rt = right->cols[j->kcols[k]].type;
    if (lt != rt && !(is_num(lt) && is_num(rt)))
      return tide_err_set(err, TIDE_EINVAL, "join key %u: left is %s, right is %s", k, tide_type_name(lt),
                          tide_type_name(rt));
  }
  uint32_t n = left->nrows;
  size_t cnt = 0, cap = (size_t)n + 16;
  uint64_t *h = malloc((n ? n : 1) * sizeof *h);
  uint8_t *nul = malloc(n ? n : 1);
  uint32_t *lr = malloc(cap * sizeof *lr), *rr = malloc(cap * sizeof *rr);
  int rc = 0;
  if (!h || !nul || !lr || !rr) {
    rc = -ENOMEM;
    goto done;
  }
  tide__join_hash_rows(left, key_cols, j->nkeys, h, nul);
  size_t mask = j->tcap - 1;
  for (uint32_t i = 0; i < n && !rc; i++) {
    uint32_t head = NONE;
    if (!nul[i]) {
      for (size_t pos = h[i] & mask; j->tab[pos].used; pos = (pos + 1) & mask) {
        const jent_t *e = &j->tab[pos];
        if (e->h == h[i] && tide__join_keys_eq(left, key_cols, i, right, j->kcols, e->head, j->nkeys)) {
          head = e->head;
          break;
        }
      }
    }
    if (head == NONE) {
      if (left_outer) rc = emit(&lr, &rr, &cnt, &cap, i, TIDE_ROW_NULL);
      continue;
    }
    for (uint32_t r = head; r != NONE && !rc; r = j->next[r]) rc = emit(&lr, &rr, &cnt, &cap, i, r);
  }
done:
  free(h);
  free(nul);
  if (rc) {
    free(lr);
    free(rr);
    return tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "too many join pairs" : "out of memory");
  }
  *lrows = lr;
  *rrows = rr;
  *count = (uint32_t)cnt;
  return 0;
}
