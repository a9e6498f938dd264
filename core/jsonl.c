/*
 * jsonl.c: the JSON lines decoder and encoder (jsonl.h), over the scanner
 * of json.h.
 *
 * The decoder reads one line left to right exactly once. Each key is matched
 * to a field by first guessing the field that held the same key position in
 * the previous line (JSON lines almost always repeat their key order), then
 * by a small open-addressing hash of the field names. Each value is converted
 * by the field's type and written straight into the open row of the batch.
 * Strings without escapes are copied from the line; strings with escapes are
 * decoded into a scratch buffer owned by the decoder, so a line costs no
 * allocation once the buffers and the batch have grown.
 *
 * Invariants of the decoder:
 *   - seen[i] == gen  <=> field i was set by the current line (gen changes
 *     per line, so seen[] is never cleared except when gen wraps);
 *   - order[k] is the field the k-th key of the previous line named, or
 *     NOFIELD;
 *   - on any error the open row is aborted, so the batch is as before.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "jsonl.h"
#include "ts.h"

#define NOFIELD UINT32_MAX

/* ---------------------------------------------------------------- values */

/* Report that the value at p does not fit field `name` of type t. The value
 * is scanned to find its end (a syntax error there wins), then quoted. */
static int mismatch(const tide_json_cur_t *x, const char *name, tide_type_t t, const char *p,
                    const char *why) {
  const char *q;
  char shown[TIDE_JSON_SHOW_MAX + 4];
  tide_json_cur_t y = *x;
  y.tmp = NULL;
  int rc = tide_json_value(&y, p, &q, NULL);
  if (rc) return rc;
  tide_json_show(shown, p, (size_t)(q - p));
  return tide_err_set(x->err, TIDE_ESCHEMA, "field '%s': expected %s, got %s%s", name,
                      tide_type_name(t), shown, why ? why : "");
}

/* Convert the JSON value at p into column col of the open row of b, by the
 * column's type. *endp is set past the value. */
static inline __attribute__((always_inline)) int put_value(const tide_json_cur_t *x, tide_batch_t *b, uint32_t col, const tide_field_t *f,
                     const char *p, const char **endp, tide_buf_t *val) {
  const char *e = x->end, *q, *s;
  size_t n;
  int64_t v;
  int rc, isint;
  if (p >= e) return tide_json_syntax(x, p, "expected a value");
  if (*p == 'n') {
    if (e - p < 4 || memcmp(p, "null", 4)) return tide_json_syntax(x, p, "invalid literal");
    if (!f->nullable) return mismatch(x, f->name, f->type, p, " (not nullable)");
    tide_batch_set_null(b, col);
    *endp = p + 4;
    return 0;
  }
  switch (f->type) {
  case TIDE_T_INT:
  case TIDE_T_TIMESTAMP:
    switch (tide_json_int(p, e, &q, &v)) {
    case 1:
      if (f->type == TIDE_T_TIMESTAMP && !tide_ts_valid(v)) return mismatch(x, f->name, f->type, p, TIDE_TS_RANGE_WHY);
      tide_batch_set_i64(b, col, v);
      *endp = q;
      return 0;
    case 2: return mismatch(x, f->name, f->type, p, " (out of range)");
    case 0: {
      if ((rc = tide_json_num(x, p, &q, &isint))) return rc;
      double d = tide_json_num_value(p, (size_t)(q - p));
      if (d != floor(d)) return mismatch(x, f->name, f->type, p, NULL);
      if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
        return mismatch(x, f->name, f->type, p, " (out of range)");
      if (f->type == TIDE_T_TIMESTAMP && !tide_ts_valid((int64_t)d))
        return mismatch(x, f->name, f->type, p, TIDE_TS_RANGE_WHY);
      tide_batch_set_i64(b, col, (int64_t)d);
      *endp = q;
      return 0;
    }
    default: break;
    }
    if (f->type == TIDE_T_TIMESTAMP && *p == '"') {
      if ((rc = tide_json_str(x, p, &q, &s, &n))) return rc;
      if (tide_ts_parse(s, n, &v)) return mismatch(x, f->name, f->type, p, NULL);
      if (!tide_ts_valid(v)) return mismatch(x, f->name, f->type, p, TIDE_TS_RANGE_WHY);
      tide_batch_set_i64(b, col, v);
      *endp = q;
      return 0;
    }
    return mismatch(x, f->name, f->type, p, NULL);
  case TIDE_T_DOUBLE:
    if (*p != '-' && !tide_json_digit(*p)) return mismatch(x, f->name, f->type, p, NULL);
    if ((rc = tide_json_num(x, p, &q, &isint))) return rc;
    tide_batch_set_f64(b, col, tide_json_num_value(p, (size_t)(q - p)));
    *endp = q;
    return 0;
  case TIDE_T_BOOL:
    if (e - p >= 4 && !memcmp(p, "true", 4)) {
      tide_batch_set_bool(b, col, 1);
      *endp = p + 4;
      return 0;
    }
    if (e - p >= 5 && !memcmp(p, "false", 5)) {
      tide_batch_set_bool(b, col, 0);
      *endp = p + 5;
      return 0;
    }
    return mismatch(x, f->name, f->type, p, NULL);
  case TIDE_T_STRING:
    if (*p != '"') return mismatch(x, f->name, f->type, p, NULL);
    /* plain ASCII without escapes is copied from the line */
    q = tide_json_plain(p + 1, e);
    if (q < e && *q == '"') {
      if ((rc = tide_batch_set_str(b, col, p + 1, (size_t)(q - p - 1)))) return rc;
      *endp = q + 1;
      return 0;
    }
    if ((rc = tide_json_str(x, p, &q, &s, &n))) return rc;
    if ((rc = tide_batch_set_str(b, col, s, n))) return rc;
    *endp = q;
    return 0;
  case TIDE_T_JSON:
    val->len = 0;
    if ((rc = tide_json_value(x, p, &q, val))) return rc;
    if ((rc = tide_batch_set_str(b, col, val->data, val->len))) return rc;
    *endp = q;
    return 0;
  }
  return tide_err_set(x->err, TIDE_EINVAL, "field '%s': unknown type", f->name);
}

/* put_value over a whole text, with the caller's scratch buffers. */
static int set_value(tide_batch_t *b, uint32_t col, const char *p, size_t len, tide_err_t *err,
                     tide_buf_t *tmp, tide_buf_t *val) {
  tide_json_cur_t x = {p, p + len, err, tmp};
  const char *q = p;
  int rc = put_value(&x, b, col, &b->schema->fields[col], tide_json_ws(p, x.end), &q, val);
  if (!rc && tide_json_ws(q, x.end) != x.end) rc = tide_json_syntax(&x, q, "unexpected text after the value");
  return rc;
}

int tide_json_set_value(tide_batch_t *b, uint32_t col, const char *p, size_t len, tide_err_t *err) {
  tide_buf_t tmp = TIDE_BUF_INIT, val = TIDE_BUF_INIT;
  int rc = set_value(b, col, p, len, err, &tmp, &val);
  tide_buf_free(&tmp);
  tide_buf_free(&val);
  return rc;
}

/* ---------------------------------------------------------------- decoder */

struct tide_json_dec {
  tide_schema_t *s;
  int flags;
  uint32_t n;
  uint32_t gen;
  uint32_t *seen;  /* n entries */
  uint32_t *order; /* n entries: predicted field per key position */
  uint32_t *hash;  /* hmask+1 slots of field index + 1, 0 = empty */
  uint32_t hmask;
  tide_buf_t tmp, val;
};

static uint32_t name_hash(const char *p, size_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 16777619u;
  return h;
}

tide_json_dec_t *tide_json_dec_new(tide_schema_t *s, int flags) {
  tide_json_dec_t *d = calloc(1, sizeof *d);
  if (!d) return NULL;
  uint32_t n = s->nfields, slots = 8;
  while (slots < 2 * n) slots *= 2;
  d->s = tide_schema_ref(s);
  d->flags = flags;
  d->n = n;
  d->seen = calloc(n ? n : 1, sizeof *d->seen);
  d->order = malloc((n ? n : 1) * sizeof *d->order);
  d->hash = calloc(slots, sizeof *d->hash);
  d->hmask = slots - 1;
  if (!d->seen || !d->order || !d->hash) {
    tide_json_dec_free(d);
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    d->order[i] = i; /* first guess: schema order */
    uint32_t h = name_hash(s->fields[i].name, s->fields[i].name_len) & d->hmask;
    while (d->hash[h]) h = (h + 1) & d->hmask;
    d->hash[h] = i + 1;
  }
  return d;
}

void tide_json_dec_free(tide_json_dec_t *d) {
  if (!d) return;
  tide_schema_unref(d->s);
  free(d->seen);
  free(d->order);
  free(d->hash);
  tide_buf_free(&d->tmp);
  tide_buf_free(&d->val);
  free(d);
}

/* Keys are short: a byte loop beats a call to memcmp. */
static inline int same_bytes(const char *a, const char *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

static uint32_t lookup(const tide_json_dec_t *d, const char *k, size_t n) {
  uint32_t h = name_hash(k, n) & d->hmask;
  for (;;) {
    uint32_t i = d->hash[h];
    if (!i) return NOFIELD;
    const tide_field_t *f = &d->s->fields[i - 1];
    if (f->name_len == n && !memcmp(f->name, k, n)) return i - 1;
    h = (h + 1) & d->hmask;
  }
}

/* "unknown field 'k' (fields: a, b, c)", the list cut to fit. */
static int unknown_field(const tide_json_dec_t *d, tide_err_t *err, const char *k, size_t n) {
  char shown[TIDE_JSON_SHOW_MAX + 4], list[300];
  size_t len = 0;
  tide_json_show(shown, k, n);
  list[0] = 0;
  for (uint32_t i = 0; i < d->n; i++) {
    const tide_field_t *f = &d->s->fields[i];
    if (len + f->name_len + 6 >= sizeof list) {
      memcpy(list + len, ", ...", 6);
      break;
    }
    len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", f->name);
  }
  return tide_err_set(err, TIDE_ESCHEMA, "unknown field '%s' (fields: %s)", shown, list);
}

/* The WHOLE mode: the line is the value of the single json column. */
static int dec_whole(tide_json_dec_t *d, tide_batch_t *b, tide_json_cur_t *x, const char *p) {
  const char *q = p;
  if (d->n != 1 || d->s->fields[0].type != TIDE_T_JSON)
    return tide_err_set(x->err, TIDE_EINVAL, "whole-line mode needs a schema of one json column");
  int rc = tide_batch_row_begin(b);
  if (rc) return rc;
  rc = put_value(x, b, 0, &d->s->fields[0], p, &q, &d->val);
  if (!rc && tide_json_ws(q, x->end) != x->end) rc = tide_json_syntax(x, tide_json_ws(q, x->end), "unexpected text after the value");
  if (rc) {
    tide_batch_row_abort(b);
    return rc;
  }
  tide_batch_row_commit(b);
  return 0;
}

int tide_json_dec_line(tide_json_dec_t *d, tide_batch_t *b, const char *line, size_t len,
                       tide_err_t *err) {
  tide_json_cur_t x = {line, line + len, err, &d->tmp};
  const char *e = x.end, *p = tide_json_ws(line, e), *ks, *q;
  const tide_field_t *fields = d->s->fields;
  uint32_t nseen = 0, k = 0, idx;
  size_t kn;
  int rc;

  if (d->flags & TIDE_JSON_WHOLE) return dec_whole(d, b, &x, p);
  if (p >= e || *p != '{') return tide_json_syntax(&x, p, "expected '{'");
  if ((rc = tide_batch_row_begin(b))) return rc;
  if (++d->gen == 0) {
    memset(d->seen, 0, d->n * sizeof *d->seen);
    d->gen = 1;
  }
  p = tide_json_ws(p + 1, e);
  if (p < e && *p == '}') {
    p++;
    goto end;
  }
  for (;; k++) {
    if (p >= e || *p != '"') {
      rc = tide_json_syntax(&x, p, "expected a string key");
      goto fail;
    }
    /* the key: first try the field the previous line had at this position,
     * comparing in place (name, then the closing quote); else read the key
     * (plain ASCII in place, escapes decoded) and look it up */
    idx = k < d->n ? d->order[k] : NOFIELD;
    if (idx != NOFIELD) {
      const tide_field_t *f = &fields[idx];
      if ((size_t)(e - p) > f->name_len + 1 && p[1 + f->name_len] == '"' &&
          same_bytes(f->name, p + 1, f->name_len)) {
        p += f->name_len + 2;
        goto have_key;
      }
    }
    ks = p + 1;
    q = tide_json_plain(ks, e);
    if (q < e && *q == '"') {
      kn = (size_t)(q - ks);
      p = q + 1;
    } else if ((rc = tide_json_str(&x, p, &p, &ks, &kn))) {
      goto fail;
    }
    idx = lookup(d, ks, kn);
    if (k < d->n) d->order[k] = idx;
  have_key:
    p = tide_json_ws(p, e);
    if (p >= e || *p != ':') {
      rc = tide_json_syntax(&x, p, "expected ':'");
      goto fail;
    }
    p = tide_json_ws(p + 1, e);
    if (idx == NOFIELD) {
      if (!(d->flags & TIDE_JSON_IGNORE_UNKNOWN)) {
        rc = unknown_field(d, err, ks, kn);
        goto fail;
      }
      tide_json_cur_t y = x;
      if ((rc = tide_json_value(&y, p, &p, NULL))) goto fail;
    } else {
      if (d->seen[idx] == d->gen) {
        rc = tide_err_set(err, TIDE_ESCHEMA, "duplicate field '%s'", fields[idx].name);
        goto fail;
      }
      d->seen[idx] = d->gen;
      nseen++;
      if ((rc = put_value(&x, b, idx, &fields[idx], p, &p, &d->val))) goto fail;
    }
    p = tide_json_ws(p, e);
    if (p < e && *p == ',') {
      p = tide_json_ws(p + 1, e);
      continue;
    }
    if (p < e && *p == '}') {
      p++;
      break;
    }
    rc = tide_json_syntax(&x, p, "expected ',' or '}'");
    goto fail;
  }
end:
  p = tide_json_ws(p, e);
  if (p != e) {
    rc = tide_json_syntax(&x, p, "unexpected text after the object");
    goto fail;
  }
  if (nseen < d->n) {
    for (uint32_t i = 0; i < d->n; i++) {
      const tide_field_t *f = &fields[i];
      if (d->seen[i] == d->gen) continue;
      if (f->default_json) {
        if ((rc = set_value(b, i, f->default_json, strlen(f->default_json), err, &d->tmp, &d->val)))
          goto fail;
      } else if (!f->nullable) {
        rc = tide_err_set(err, TIDE_ESCHEMA, "missing field '%s' (not nullable)", f->name);
        goto fail;
      }
    }
  }
  tide_batch_row_commit(b);
  return 0;
fail:
  tide_batch_row_abort(b);
  return rc;
}

/* ---------------------------------------------------------------- encoder */

int tide_json_enc_row(const tide_batch_t *b, uint32_t row, tide_buf_t *out, int flags) {
  const tide_schema_t *s = b->schema;
  size_t mark = out->len, n;
  char tb[40];
  int rc = tide_buf_putc(out, '{');
  for (uint32_t i = 0; !rc && i < s->nfields; i++) {
    const tide_col_t *c = &b->cols[i];
    const tide_field_t *f = &s->fields[i];
    if (i && (rc = tide_buf_putc(out, ','))) break;
    if ((rc = tide_json_quote(out, f->name, f->name_len)) || (rc = tide_buf_putc(out, ':'))) break;
    if (tide_col_is_null(c, row)) {
      rc = tide_buf_append(out, "null", 4);
      continue;
    }
    switch (f->type) {
    case TIDE_T_BOOL: rc = tide_buf_puts(out, tide_col_bool(c, row) ? "true" : "false"); break;
    case TIDE_T_TIMESTAMP:
      if (flags & TIDE_JSON_ISO8601) {
        int tn = tide_ts_format(tide_col_i64(c, row), tb);
        rc = tide_json_quote(out, tb, (size_t)tn);
        break;
      }
      /* fall through */
    case TIDE_T_INT: { /* digits from the end, without snprintf (a sink encodes every row) */
      int64_t v = tide_col_i64(c, row);
      uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
      char *e = tb + sizeof tb, *q = e;
      do *--q = (char)('0' + u % 10), u /= 10; while (u);
      if (v < 0) *--q = '-';
      rc = tide_buf_append(out, q, (size_t)(e - q));
      break;
    }
    case TIDE_T_DOUBLE: rc = tide_json_number(out, tide_col_f64(c, row)); break;
    case TIDE_T_STRING: {
      const char *sp = tide_col_str(c, row, &n);
      rc = tide_json_quote(out, sp, n);
      break;
    }
    case TIDE_T_JSON: {
      const char *sp = tide_col_str(c, row, &n);
      rc = n ? tide_buf_append(out, sp, n) : tide_buf_append(out, "null", 4);
      break;
    }
    default: rc = tide_buf_append(out, "null", 4);
    }
  }
  if (!rc) rc = tide_buf_putc(out, '}');
  if (rc) out->len = mark;
  return rc;
}
