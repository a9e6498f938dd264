/*
 * vec.c: standalone column vectors and the batches that adopt them
 * (rules in vec.h).
 */
#include "vec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pool.h"

static int is_var(tide_type_t t) { return t == TIDE_T_STRING || t == TIDE_T_JSON; }

static size_t width(tide_type_t t) { return t == TIDE_T_BOOL ? 1 : 8; }

int tide_col_init(tide_col_t *c, tide_type_t t, uint32_t n) {
  memset(c, 0, sizeof *c);
  c->type = t;
  size_t bytes = is_var(t) ? ((size_t)n + 1) * 4 : (size_t)(n ? n : 1) * width(t);
  if (!(c->values = calloc(1, bytes))) return -ENOMEM;
  return 0;
}

void tide_col_free(tide_col_t *c) {
  free(c->valid);
  free(c->values);
  free(c->data);
  memset(c, 0, sizeof *c);
}

int tide_col_set_null(tide_col_t *c, uint32_t i, uint32_t n) {
  if (!c->valid) {
    size_t nb = ((size_t)n + 7) / 8;
    if (!(c->valid = malloc(nb ? nb : 1))) return -ENOMEM;
    memset(c->valid, 0xff, nb);
  }
  if (c->valid[i >> 3] & (1u << (i & 7))) {
    c->valid[i >> 3] &= (uint8_t)~(1u << (i & 7));
    c->null_count++;
  }
  if (!is_var(c->type)) {
    memset((char *)c->values + (size_t)i * width(c->type), 0, width(c->type));
  } else { /* a NULL string row has an empty range: cut back a value just put */
    uint32_t *o = c->values;
    if (o[i + 1] > o[i] && o[i + 1] == c->data_len) {
      c->data_len = o[i];
      o[i + 1] = o[i];
    }
  }
  return 0;
}

int tide_col_put_str(tide_col_t *c, uint32_t i, const char *p, size_t len) {
  uint32_t *o = c->values;
  if (c->data_len + len > TIDE_BATCH_MAX_DATA) return TIDE_ETOOBIG;
  if (c->data_len + len > c->data_cap) {
    size_t cap = c->data_cap ? c->data_cap : 256;
    while (cap < c->data_len + len) cap *= 2;
    char *q = realloc(c->data, cap);
    if (!q) return -ENOMEM;
    c->data = q;
    c->data_cap = cap;
  }
  if (len) memcpy(c->data + c->data_len, p, len);
  c->data_len += len;
  o[i + 1] = (uint32_t)c->data_len;
  return 0;
}

/* The adopted columns live in one block with the backing's header. */
typedef struct adopted {
  uint32_t ncols;
  tide_col_t cols[];
} adopted_t;

static void adopted_release(void *p) {
  adopted_t *a = p;
  for (uint32_t i = 0; i < a->ncols; i++) tide_col_free(&a->cols[i]);
  free(a);
}

tide_batch_t *tide_batch_adopt(tide_schema_t *s, uint32_t nrows, tide_col_t *cols) {
  uint32_t n = s->nfields;
  adopted_t *a = malloc(sizeof *a + n * sizeof(tide_col_t));
  if (!a) {
    for (uint32_t i = 0; i < n; i++) tide_col_free(&cols[i]);
    return NULL;
  }
  a->ncols = n;
  memcpy(a->cols, cols, n * sizeof(tide_col_t));
  for (uint32_t i = 0; i < n; i++) a->cols[i].data_cap = a->cols[i].data_len;
  tide_batch_t *b = tide_batch_borrowed(s, nrows, a->cols, a, adopted_release);
  if (!b) adopted_release(a);
  return b;
}

int tide_col_gather(const tide_col_t *in, const uint32_t *rows, uint32_t n, tide_col_t *out) {
  int rc = tide_col_init(out, in->type, n);
  if (rc) return rc;
  if (is_var(in->type)) {
    const uint32_t *o = in->values;
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++)
      if (rows[i] != TIDE_ROW_NULL) total += o[rows[i] + 1] - o[rows[i]];
    if (total > TIDE_BATCH_MAX_DATA) {
      tide_col_free(out);
      return TIDE_ETOOBIG;
    }
    if (total && !(out->data = malloc(total))) {
      tide_col_free(out);
      return -ENOMEM;
    }
    out->data_cap = total;
    uint32_t *oo = out->values;
    size_t pos = 0;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t r = rows[i];
      if (r != TIDE_ROW_NULL) {
        uint32_t len = o[r + 1] - o[r];
        if (len) memcpy(out->data + pos, in->data + o[r], len); /* data may be NULL when len is 0 */
        pos += len;
      }
      oo[i + 1] = (uint32_t)pos;
    }
    out->data_len = pos;
  } else if (width(in->type) == 8) {
    const uint64_t *v = in->values;
    uint64_t *w = out->values;
    for (uint32_t i = 0; i < n; i++) w[i] = rows[i] != TIDE_ROW_NULL ? v[rows[i]] : 0;
  } else {
    const uint8_t *v = in->values;
    uint8_t *w = out->values;
    for (uint32_t i = 0; i < n; i++) w[i] = rows[i] != TIDE_ROW_NULL ? v[rows[i]] : 0;
  }
  int nulls = in->valid && in->null_count;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t r = rows[i];
    if ((r == TIDE_ROW_NULL || (nulls && tide_col_is_null(in, r))) && (rc = tide_col_set_null(out, i, n))) {
      tide_col_free(out);
      return rc;
    }
  }
  return 0;
}

int tide_col_slice(const tide_col_t *in, uint32_t lo, uint32_t n, tide_col_t *out) {
  int rc = tide_col_init(out, in->type, n);
  if (rc) return rc;
  if (is_var(in->type)) {
    const uint32_t *o = (const uint32_t *)in->values + lo;
    size_t len = o[n] - o[0];
    if (len && !(out->data = malloc(len))) goto oom;
    if (len) memcpy(out->data, in->data + o[0], len);
    out->data_len = out->data_cap = len;
    uint32_t *oo = out->values;
    for (uint32_t i = 0; i <= n; i++) oo[i] = o[i] - o[0];
  } else if (n) {
    memcpy(out->values, (const char *)in->values + (size_t)lo * width(in->type), (size_t)n * width(in->type));
  }
  if (in->valid && in->null_count) {
    /* in may have other rows: count the NULLs of the rows copied */
    uint32_t nulls = 0;
    for (uint32_t i = 0; i < n; i++) nulls += (uint32_t)tide_col_is_null(in, lo + i);
    if (nulls) {
      size_t nb = ((size_t)n + 7) / 8;
      if (!(out->valid = malloc(nb ? nb : 1))) goto oom;
      if (lo % 8 == 0) {
        memcpy(out->valid, in->valid + lo / 8, nb);
      } else {
        memset(out->valid, 0, nb);
        for (uint32_t i = 0; i < n; i++)
          if (!tide_col_is_null(in, lo + i)) out->valid[i >> 3] |= (uint8_t)(1u << (i & 7));
      }
      out->null_count = nulls;
    }
  }
  return 0;
oom:
  tide_col_free(out);
  return -ENOMEM;
}

int tide_col_copy(const tide_col_t *in, uint32_t n, tide_col_t *out) { return tide_col_slice(in, 0, n, out); }

int tide_batch_gather(const tide_batch_t *in, const uint32_t *rows, uint32_t n, tide_batch_t **out) {
  uint32_t nf = in->schema->nfields;
  *out = NULL;
  for (uint32_t i = 0; i < n; i++)
    if (rows[i] >= in->nrows && rows[i] != TIDE_ROW_NULL) return TIDE_EINVAL;
  tide_col_t *cols = calloc(nf ? nf : 1, sizeof *cols);
  if (!cols) return -ENOMEM;
  int rc = 0;
  for (uint32_t c = 0; c < nf && !rc; c++) rc = tide_col_gather(&in->cols[c], rows, n, &cols[c]);
  if (rc) {
    for (uint32_t c = 0; c < nf; c++) tide_col_free(&cols[c]);
    free(cols);
    return rc;
  }
  *out = tide_batch_adopt(in->schema, n, cols);
  free(cols);
  return *out ? 0 : -ENOMEM;
}

int tide_batch_slice(const tide_batch_t *b, uint32_t lo, uint32_t hi, tide_batch_t **out) {
  *out = NULL;
  if (lo > hi || hi > b->nrows) return TIDE_EINVAL;
  uint32_t nf = b->schema->nfields, n = hi - lo;
  tide_col_t *cols = calloc(nf ? nf : 1, sizeof *cols);
  if (!cols) return -ENOMEM;
  int rc = 0;
  for (uint32_t c = 0; c < nf && !rc; c++) rc = tide_col_slice(&b->cols[c], lo, n, &cols[c]);
  if (rc) {
    for (uint32_t c = 0; c < nf; c++) tide_col_free(&cols[c]);
    free(cols);
    return rc;
  }
  *out = tide_batch_adopt(b->schema, n, cols);
  free(cols);
  return *out ? 0 : -ENOMEM;
}

/* One tide_batch_concat: the inputs, the output columns, and where each
 * input's rows and string bytes start in them (row[k], bytes[k * nf + c]). */
typedef struct concat {
  tide_batch_t *const *in;
  uint32_t nf;
  tide_col_t *cols;
  uint32_t *row;
  size_t *bytes;
} concat_t;

/* Copy input k's values and string bytes into its ranges of the output
 * (the ranges of different k are disjoint: tasks may run at once). */
static void concat_copy(void *arg, size_t k) {
  const concat_t *x = arg;
  const tide_batch_t *b = x->in[k];
  uint32_t m = b->nrows, at = x->row[k];
  for (uint32_t c = 0; c < x->nf; c++) {
    const tide_col_t *ic = &b->cols[c];
    tide_col_t *oc = &x->cols[c];
    if (is_var(oc->type)) {
      const uint32_t *o = ic->values;
      uint32_t *oo = oc->values;
      size_t len = o[m] - o[0], base = x->bytes[k * x->nf + c];
      if (len) memcpy(oc->data + base, ic->data + o[0], len);
      for (uint32_t i = 1; i <= m; i++) oo[at + i] = (uint32_t)(o[i] - o[0] + base);
    } else if (m) {
      memcpy((char *)oc->values + (size_t)at * width(oc->type), ic->values, (size_t)m * width(oc->type));
    }
  }
}

int tide_batch_concat_on(tide_pool_t *pool, tide_batch_t *const *batches, uint32_t n, tide_schema_t *s,
                         tide_batch_t **out) {
  uint64_t total = 0;
  *out = NULL;
  for (uint32_t i = 0; i < n; i++) { /* every batch must have s's shape */
    const tide_schema_t *bs = batches[i]->schema;
    if (bs->nfields != s->nfields) return TIDE_EINVAL;
    for (uint32_t c = 0; c < s->nfields; c++)
      if (batches[i]->cols[c].type != s->fields[c].type) return TIDE_EINVAL;
    total += batches[i]->nrows;
  }
  if (total > TIDE_BATCH_MAX_ROWS) return TIDE_ETOOBIG;
  uint32_t nf = s->nfields, rows = (uint32_t)total;
  size_t nb = (size_t)n * nf;
  concat_t x = {batches, nf, calloc(nf ? nf : 1, sizeof *x.cols), malloc((n ? n : 1) * sizeof *x.row),
                malloc((nb ? nb : 1) * sizeof *x.bytes)};
  int rc = x.cols && x.row && x.bytes ? 0 : -ENOMEM;
  for (uint32_t k = 0, at = 0; !rc && k < n; at += batches[k]->nrows, k++) x.row[k] = at;
  for (uint32_t c = 0; c < nf && !rc; c++) {
    tide_col_t *oc = &x.cols[c];
    if ((rc = tide_col_init(oc, s->fields[c].type, rows))) break;
    if (!is_var(oc->type)) continue;
    size_t bytes = 0; /* the string bytes in one block; each input's range of it */
    for (uint32_t k = 0; k < n; k++) {
      const uint32_t *o = batches[k]->cols[c].values;
      x.bytes[(size_t)k * nf + c] = bytes;
      bytes += o[batches[k]->nrows] - o[0];
    }
    if (bytes > TIDE_BATCH_MAX_DATA) rc = TIDE_ETOOBIG;
    else if (bytes && !(oc->data = malloc(bytes))) rc = -ENOMEM;
    else oc->data_len = oc->data_cap = bytes;
  }
  if (!rc) tide_pool_run(pool, n, concat_copy, &x);
  /* NULLs on this thread: inputs' bitmaps meet inside shared bytes */
  for (uint32_t c = 0; c < nf && !rc; c++)
    for (uint32_t k = 0; k < n && !rc; k++) {
      const tide_col_t *ic = &batches[k]->cols[c];
      for (uint32_t i = 0; i < batches[k]->nrows && !rc && ic->null_count; i++)
        if (tide_col_is_null(ic, i)) rc = tide_col_set_null(&x.cols[c], x.row[k] + i, rows);
    }
  free(x.row);
  free(x.bytes);
  if (rc) {
    for (uint32_t c = 0; x.cols && c < nf; c++) tide_col_free(&x.cols[c]);
    free(x.cols);
    return rc;
  }
  *out = tide_batch_adopt(s, rows, x.cols);
  free(x.cols);
  return *out ? 0 : -ENOMEM;
}

int tide_batch_concat(tide_batch_t *const *batches, uint32_t n, tide_schema_t *s, tide_batch_t **out) {
  return tide_batch_concat_on(NULL, batches, n, s, out);
}

void tide_col_time_stats(const tide_col_t *c, uint32_t n, uint32_t *count, int64_t *lo, int64_t *hi, double *sum) {
  const int64_t *v = c->values;
  int nulls = c->valid && c->null_count;
  int64_t mn = INT64_MAX, mx = INT64_MIN;
  double total = 0;
  uint32_t k = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (nulls && tide_col_is_null(c, i)) continue;
    int64_t x = v[i];
    if (x < mn) mn = x;
    if (x > mx) mx = x;
    total += (double)x;
    k++;
  }
  *count = k;
  *sum = total;
  if (k) {
    *lo = mn;
    *hi = mx;
  }
}
