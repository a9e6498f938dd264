/*
 * batch.c: owned and borrowed record batches, and the row builder.
 *
 * An owned batch is allocated inside a larger private struct (batch_owned
 * below, whose first member is the public tide_batch_t), which carries the
 * row builder's state:
 *
 *   set[col]   1 when the open row has set column col (cleared by row_begin)
 *   bits[col]  a validity bitmap of cap bits, always allocated, but only
 *              maintained once the column has held a NULL; from then on
 *              cols[col].valid == bits[col]. Before that cols[col].valid is
 *              NULL, which tells readers "no NULLs" at no cost.
 *
 * A row is written in place at index nrows: fixed-width values straight into
 * values[nrows], string bytes at data + offsets[nrows] (with offsets[nrows+1]
 * and data_len following). Nothing is final until row_commit, which turns
 * the unset columns into NULLs (zero value, empty string range, bit clear,
 * null_count + 1), sets the validity bits and bumps nrows. row_abort only has
 * to cut each string column's data_len back to offsets[nrows]: everything
 * else it wrote lies beyond nrows and is overwritten by the next row.
 *
 * Vectors grow together, by doubling, in tide_batch_reserve; row_commit
 * never allocates, so it cannot fail.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"

typedef struct batch_owned {
  tide_batch_t b;
  uint8_t *set;   /* nfields */
  uint8_t **bits; /* nfields bitmaps of (cap + 7) / 8 bytes */
  int in_row;
} batch_owned_t;

#define OWNED(b) ((batch_owned_t *)(b))
#define DEFAULT_CAP 1024u

static size_t width(tide_type_t t) {
  switch (t) {
  case TIDE_T_BOOL: return 1;
  case TIDE_T_INT:
  case TIDE_T_TIMESTAMP:
  case TIDE_T_DOUBLE: return 8;
  case TIDE_T_STRING:
  case TIDE_T_JSON: return 4;
  }
  return 8;
}

static int is_var(tide_type_t t) { return t == TIDE_T_STRING || t == TIDE_T_JSON; }

/* Grow every vector of owned batch b to hold cap rows. On failure the vectors
 * already grown stay larger than b->cap, which is harmless. */
static int grow(batch_owned_t *o, uint32_t cap) {
  tide_batch_t *b = &o->b;
  for (uint32_t i = 0; i < b->schema->nfields; i++) {
    tide_col_t *c = &b->cols[i];
    size_t n = (size_t)cap * width(c->type) + (is_var(c->type) ? 4 : 0);
    void *v = realloc(c->values, n);
    if (!v) return -ENOMEM;
    if (!c->values) memset(v, 0, n); /* offsets[0] == 0 */
    c->values = v;
    uint8_t *bm = realloc(o->bits[i], ((size_t)cap + 7) / 8);
    if (!bm) return -ENOMEM;
    if (c->valid) c->valid = bm;
    o->bits[i] = bm;
  }
  b->cap = cap;
  return 0;
}

tide_batch_t *tide_batch_new(tide_schema_t *s, uint32_t cap_hint) {
  uint32_t n = s->nfields;
  batch_owned_t *o = calloc(1, sizeof *o);
  if (!o) return NULL;
  o->b.schema = tide_schema_ref(s);
  o->b.owned = 1;
  o->b.cols = calloc(n ? n : 1, sizeof *o->b.cols);
  o->set = calloc(n ? n : 1, 1);
  o->bits = calloc(n ? n : 1, sizeof *o->bits);
  if (!o->b.cols || !o->set || !o->bits) goto fail;
  for (uint32_t i = 0; i < n; i++) o->b.cols[i].type = s->fields[i].type;
  if (cap_hint == 0) cap_hint = DEFAULT_CAP;
  if (cap_hint > TIDE_BATCH_MAX_ROWS) cap_hint = TIDE_BATCH_MAX_ROWS;
  if (grow(o, cap_hint)) goto fail;
  return &o->b;
fail:
  o->b.cap = 0;
  tide_batch_free(&o->b);
  return NULL;
}

tide_batch_t *tide_batch_borrowed(tide_schema_t *s, uint32_t nrows, const tide_col_t *cols,
                                  void *backing, void (*release)(void *)) {
  tide_batch_t *b = calloc(1, sizeof *b);
  if (!b) return NULL;
  uint32_t n = s->nfields;
  b->cols = malloc((n ? n : 1) * sizeof *b->cols);
  if (!b->cols) {
    free(b);
    return NULL;
  }
  if (n) memcpy(b->cols, cols, n * sizeof *b->cols);
  b->schema = tide_schema_ref(s);
  b->nrows = b->cap = nrows;
  b->backing = backing;
  b->release = release;
  return b;
}

void tide_batch_free(tide_batch_t *b) {
  if (!b) return;
  if (b->owned) {
    batch_owned_t *o = OWNED(b);
    for (uint32_t i = 0; b->cols && i < b->schema->nfields; i++) {
      free(b->cols[i].values);
      free(b->cols[i].data);
      if (o->bits) free(o->bits[i]);
    }
    free(o->set);
    free(o->bits);
  } else if (b->release) {
    b->release(b->backing);
  }
  free(b->cols);
  tide_schema_unref(b->schema);
  free(b);
}

void tide_batch_clear(tide_batch_t *b) {
  if (!b->owned) return;
  b->nrows = 0;
  OWNED(b)->in_row = 0;
  for (uint32_t i = 0; i < b->schema->nfields; i++) {
    tide_col_t *c = &b->cols[i];
    c->valid = NULL;
    c->null_count = 0;
    c->data_len = 0;
  }
}

int tide_batch_reserve(tide_batch_t *b, uint32_t rows) {
  if (!b->owned) return TIDE_EINVAL;
  if (rows > TIDE_BATCH_MAX_ROWS - b->nrows) return TIDE_ETOOBIG;
  uint32_t need = b->nrows + rows, cap = b->cap ? b->cap : DEFAULT_CAP;
  if (need <= b->cap) return 0;
  while (cap < need) cap = cap > TIDE_BATCH_MAX_ROWS / 2 ? TIDE_BATCH_MAX_ROWS : cap * 2;
  return grow(OWNED(b), cap);
}

size_t tide_batch_bytes(const tide_batch_t *b) {
  size_t n = 0;
  for (uint32_t i = 0; i < b->schema->nfields; i++) {
    const tide_col_t *c = &b->cols[i];
    n += (size_t)b->cap * width(c->type) + (c->valid ? ((size_t)b->cap + 7) / 8 : 0);
    n += b->owned ? c->data_cap : c->data_len;
  }
  return n;
}

/* ---------------------------------------------------------------- rows */

int tide_batch_row_begin(tide_batch_t *b) {
  batch_owned_t *o = OWNED(b);
  if (!b->owned) return TIDE_EINVAL;
  if (b->nrows == b->cap) {
    int rc = tide_batch_reserve(b, 1);
    if (rc) return rc;
  }
  memset(o->set, 0, b->schema->nfields);
  o->in_row = 1;
  return 0;
}

void tide_batch_set_null(tide_batch_t *b, uint32_t col) {
  tide_col_t *c = &b->cols[col];
  OWNED(b)->set[col] = 0;
  if (is_var(c->type)) c->data_len = ((uint32_t *)c->values)[b->nrows];
}

void tide_batch_set_i64(tide_batch_t *b, uint32_t col, int64_t v) {
  ((int64_t *)b->cols[col].values)[b->nrows] = v;
  OWNED(b)->set[col] = 1;
}

void tide_batch_set_f64(tide_batch_t *b, uint32_t col, double v) {
  ((double *)b->cols[col].values)[b->nrows] = v;
  OWNED(b)->set[col] = 1;
}

void tide_batch_set_bool(tide_batch_t *b, uint32_t col, int v) {
  ((uint8_t *)b->cols[col].values)[b->nrows] = v != 0;
  OWNED(b)->set[col] = 1;
}

/* Write the bytes of a string or json value at the end of the column's data
 * (replacing a value set earlier in the same row). 0, -ENOMEM or
 * TIDE_ETOOBIG; on failure the column is left unset. */
int tide_batch_set_str(tide_batch_t *b, uint32_t col, const char *p, size_t len) {
  tide_col_t *c = &b->cols[col];
  uint32_t *off = c->values;
  size_t start = off[b->nrows];
  OWNED(b)->set[col] = 0;
  c->data_len = start;
  if (len > TIDE_BATCH_MAX_DATA - start) return TIDE_ETOOBIG;
  if (start + len > c->data_cap) {
    size_t cap = c->data_cap ? c->data_cap : 256;
    while (cap < start + len) cap *= 2;
    if (cap > TIDE_BATCH_MAX_DATA) cap = TIDE_BATCH_MAX_DATA;
    char *d = realloc(c->data, cap);
    if (!d) return -ENOMEM;
    c->data = d;
    c->data_cap = cap;
  }
  if (len) memcpy(c->data + start, p, len);
  c->data_len = start + len;
  off[b->nrows + 1] = (uint32_t)c->data_len;
  OWNED(b)->set[col] = 1;
  return 0;
}

void tide_batch_row_commit(tide_batch_t *b) {
  batch_owned_t *o = OWNED(b);
  uint32_t r = b->nrows;
  for (uint32_t i = 0; i < b->schema->nfields; i++) {
    tide_col_t *c = &b->cols[i];
    if (o->set[i]) {
      if (c->valid) c->valid[r >> 3] |= (uint8_t)(1u << (r & 7));
      continue;
    }
    switch (c->type) {
    case TIDE_T_BOOL: ((uint8_t *)c->values)[r] = 0; break;
    case TIDE_T_STRING:
    case TIDE_T_JSON: {
      uint32_t *off = c->values;
      off[r + 1] = off[r];
      c->data_len = off[r];
      break;
    }
    default: ((int64_t *)c->values)[r] = 0; break;
    }
    if (!c->valid) { /* first NULL: every earlier row was valid */
      c->valid = o->bits[i];
      memset(c->valid, 0xFF, ((size_t)r + 8) / 8);
    }
    c->valid[r >> 3] &= (uint8_t) ~(1u << (r & 7));
    c->null_count++;
  }
  b->nrows = r + 1;
  o->in_row = 0;
}

void tide_batch_row_abort(tide_batch_t *b) {
  batch_owned_t *o = OWNED(b);
  for (uint32_t i = 0; i < b->schema->nfields; i++) {
    tide_col_t *c = &b->cols[i];
    if (is_var(c->type)) c->data_len = ((uint32_t *)c->values)[b->nrows];
  }
  o->in_row = 0;
}

void tide_batch_truncate(tide_batch_t *b, uint32_t nrows) {
  if (!b->owned || nrows >= b->nrows) return;
  for (uint32_t i = 0; i < b->schema->nfields; i++) {
    tide_col_t *c = &b->cols[i];
    if (is_var(c->type)) c->data_len = ((uint32_t *)c->values)[nrows];
    if (!c->valid) continue;
    for (uint32_t r = nrows; r < b->nrows; r++)
      if (!(c->valid[r >> 3] & (1u << (r & 7)))) c->null_count--;
    if (!c->null_count) c->valid = NULL; /* rebuilt on the next NULL */
  }
  b->nrows = nrows;
  OWNED(b)->in_row = 0;
}

int tide_batch_append_row(tide_batch_t *dst, const tide_batch_t *src, uint32_t row) {
  uint32_t n = dst->schema->nfields;
  if (src->schema->nfields != n || row >= src->nrows) return TIDE_EINVAL;
  int rc = tide_batch_row_begin(dst);
  if (rc) return rc;
  for (uint32_t i = 0; i < n; i++) {
    const tide_col_t *c = &src->cols[i];
    if (c->type != dst->cols[i].type) {
      tide_batch_row_abort(dst);
      return TIDE_EINVAL;
    }
    if (tide_col_is_null(c, row)) continue;
    switch (c->type) {
    case TIDE_T_BOOL: tide_batch_set_bool(dst, i, tide_col_bool(c, row)); break;
    case TIDE_T_DOUBLE: tide_batch_set_f64(dst, i, tide_col_f64(c, row)); break;
    case TIDE_T_STRING:
    case TIDE_T_JSON: {
      size_t len;
      const char *p = tide_col_str(c, row, &len);
      if ((rc = tide_batch_set_str(dst, i, p, len))) {
        tide_batch_row_abort(dst);
        return rc;
      }
      break;
    }
    default: tide_batch_set_i64(dst, i, tide_col_i64(c, row)); break;
    }
  }
  tide_batch_row_commit(dst);
  return 0;
}
