/*
 * csv.c: CSV records <-> batch rows (rules in csv.h).
 *
 * Decoding: a framed record's fields are cut and converted one by one into
 * the open row. Quoted fields are unquoted into a scratch buffer; unquoted
 * ones are used in place. Encoding writes each row's fields in turn,
 * straight from the column vectors, quoting only what must be quoted.
 */
#include "csv.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "jsonl.h"
#include "ts.h"

static int set_value(tide_batch_t *b, uint32_t c, const char *v, size_t n, int quoted, tide_err_t *err) {
  const tide_field_t *f = &b->schema->fields[c];
  if (n == 0 && !quoted) {
    if (f->default_json) return tide_json_set_value(b, c, f->default_json, strlen(f->default_json), err);
    if (!f->nullable) return tide_err_set(err, TIDE_ESCHEMA, "field '%s': empty value (not nullable)", f->name);
    tide_batch_set_null(b, c);
    return 0;
  }
  char tmp[64];
  switch (f->type) {
  case TIDE_T_STRING:
    if (tide_utf8_check(v, n) != n) return tide_err_set(err, TIDE_ESCHEMA, "field '%s': invalid UTF-8", f->name);
    return tide_batch_set_str(b, c, v, n);
  case TIDE_T_JSON: {
    tide_buf_t out = TIDE_BUF_INIT;
    size_t used;
    int rc = tide_json_scan(v, n, &used, &out, err);
    if (!rc) {
      while (used < n && (v[used] == ' ' || v[used] == '\t')) used++;
      if (used != n) rc = tide_err_set(err, TIDE_ESCHEMA, "field '%s': extra text after the JSON value", f->name);
    } else {
      tide_err_prefix(err, "field '%s': ", f->name);
    }
    if (!rc) rc = tide_batch_set_str(b, c, out.data ? out.data : "", out.len);
    tide_buf_free(&out);
    return rc;
  }
  case TIDE_T_BOOL:
    if (n == 4 && !strncasecmp(v, "true", 4)) tide_batch_set_bool(b, c, 1);
    else if (n == 5 && !strncasecmp(v, "false", 5)) tide_batch_set_bool(b, c, 0);
    else goto bad;
    return 0;
  case TIDE_T_TIMESTAMP: {
    int64_t ms;
    if (tide_ts_parse(v, n, &ms) == 0) {
      if (!tide_ts_valid(ms)) goto out_of_range;
      tide_batch_set_i64(b, c, ms);
      return 0;
    }
    __attribute__((fallthrough)); /* else integer ms */
  }
  case TIDE_T_INT: {
    if (n >= sizeof tmp) goto bad;
    memcpy(tmp, v, n);
    tmp[n] = 0;
    char *end;
    errno = 0;
    long long x = strtoll(tmp, &end, 10);
    if (end == tmp || *end || errno) goto bad;
    if (f->type == TIDE_T_TIMESTAMP && !tide_ts_valid(x)) goto out_of_range;
    tide_batch_set_i64(b, c, x);
    return 0;
  }
  case TIDE_T_DOUBLE: {
    if (n >= sizeof tmp) goto bad;
    memcpy(tmp, v, n);
    tmp[n] = 0;
    char *end;
    double x = strtod(tmp, &end);
    if (end == tmp || *end || isnan(x) || isinf(x)) goto bad;
    tide_batch_set_f64(b, c, x);
    return 0;
  }
  }
bad:
  return tide_err_set(err, TIDE_ESCHEMA, "field '%s': expected %s, got \"%.*s%s\"", f->name, tide_type_name(f->type),
                      (int)(n > 40 ? 40 : n), v, n > 40 ? "..." : "");
out_of_range:
  return tide_err_set(err, TIDE_ESCHEMA, "field '%s': expected %s, got \"%.*s%s\"%s", f->name,
                      tide_type_name(f->type), (int)(n > 40 ? 40 : n), v, n > 40 ? "..." : "", TIDE_TS_RANGE_WHY);
}

int tide_csv_dec_fields(tide_batch_t *b, const char *p, size_t rlen, char sep, tide_buf_t *scratch, tide_err_t *err) {
  uint32_t nf = b->schema->nfields;
  int rc = tide_batch_row_begin(b);
  if (rc) return rc;
  size_t i = 0;
  uint32_t c = 0;
  for (;;) {
    const char *v;
    size_t n;
    int quoted = 0;
    if (i < rlen && p[i] == '"') {
      quoted = 1;
      scratch->len = 0;
      i++;
      for (;;) {
        if (i >= rlen) {
          rc = tide_err_set(err, TIDE_EPARSE, "field %u: unterminated quoted field", c + 1);
          goto fail;
        }
        if (p[i] == '"') {
          if (i + 1 < rlen && p[i + 1] == '"') {
            if ((rc = tide_buf_putc(scratch, '"'))) goto fail;
            i += 2;
            continue;
          }
          i++;
          break;
        }
        if ((rc = tide_buf_putc(scratch, p[i]))) goto fail;
        i++;
      }
      if (i < rlen && p[i] != sep) {
        rc = tide_err_set(err, TIDE_EPARSE, "field %u: text after the closing quote", c + 1);
        goto fail;
      }
      v = scratch->data ? scratch->data : "";
      n = scratch->len;
    } else {
      size_t j = i;
      while (j < rlen && p[j] != sep) j++;
      v = p + i;
      n = j - i;
      i = j;
    }
    if (c >= nf) {
      rc = tide_err_set(err, TIDE_ESCHEMA, "more than %u fields", nf);
      goto fail;
    }
    if ((rc = set_value(b, c, v, n, quoted, err))) goto fail;
    c++;
    if (i >= rlen) break;
    i++; /* the separator */
    if (i == rlen) { /* a trailing separator: one more empty field */
      if (c >= nf) {
        rc = tide_err_set(err, TIDE_ESCHEMA, "more than %u fields", nf);
        goto fail;
      }
      if ((rc = set_value(b, c, "", 0, 0, err))) goto fail;
      c++;
      break;
    }
  }
  if (c != nf) {
    rc = tide_err_set(err, TIDE_ESCHEMA, "%u field%s, the schema has %u", c, c == 1 ? "" : "s", nf);
    goto fail;
  }
  tide_batch_row_commit(b);
  return 0;
fail:
  tide_batch_row_abort(b);
  return rc;
}

/* ------------------------------------------------------------- encoding --- */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* Append v[0..n) as one field, quoted when csv.h says it must be. */
static int put_field(tide_buf_t *out, const char *v, size_t n, char sep) {
  int quote = n == 0 || is_space(v[0]) || is_space(v[n - 1]);
  for (size_t i = 0; !quote && i < n; i++) quote = v[i] == sep || v[i] == '"' || v[i] == '\n' || v[i] == '\r';
  if (!quote) return tide_buf_append(out, v, n);
  int rc = tide_buf_reserve(out, n + 2);
  if (rc) return rc;
  out->data[out->len++] = '"';
  for (const char *q = v, *end = v + n; q < end;) {
    const char *dq = memchr(q, '"', (size_t)(end - q));
    size_t k = dq ? (size_t)(dq + 1 - q) : (size_t)(end - q);
    if ((rc = tide_buf_append(out, q, k))) return rc;
    if (dq && (rc = tide_buf_putc(out, '"'))) return rc; /* "" */
    q += k;
  }
  return tide_buf_putc(out, '"');
}

int tide_csv_enc_header(const tide_schema_t *s, char sep, tide_buf_t *out) {
  int rc = 0;
  for (uint32_t c = 0; !rc && c < s->nfields; c++) {
    if (c) rc = tide_buf_putc(out, sep);
    if (!rc) rc = put_field(out, s->fields[c].name, strlen(s->fields[c].name), sep);
  }
  return rc ? rc : tide_buf_putc(out, '\n');
}

int tide_csv_enc_rows(const tide_batch_t *b, uint32_t lo, uint32_t hi, char sep, tide_buf_t *out) {
  uint32_t nf = b->schema->nfields;
  char num[40];
  int rc = 0;
  for (uint32_t i = lo; i < hi && !rc; i++) {
    for (uint32_t c = 0; c < nf && !rc; c++) {
      if (c && (rc = tide_buf_putc(out, sep))) break;
      const tide_col_t *col = &b->cols[c];
      if (tide_col_is_null(col, i)) continue;
      switch (col->type) {
      case TIDE_T_INT:
      case TIDE_T_TIMESTAMP:
        rc = tide_buf_append(out, num, (size_t)snprintf(num, sizeof num, "%lld", (long long)tide_col_i64(col, i)));
        break;
      case TIDE_T_BOOL:
        rc = tide_buf_puts(out, tide_col_bool(col, i) ? "true" : "false");
        break;
      case TIDE_T_DOUBLE: {
        double v = tide_col_f64(col, i);
        if (!isnan(v) && !isinf(v)) rc = tide_json_number(out, v);
        break;
      }
      case TIDE_T_STRING:
      case TIDE_T_JSON: {
        size_t n;
        const char *v = tide_col_str(col, i, &n);
        rc = put_field(out, v, n, sep);
        break;
      }
      }
    }
    if (!rc) rc = tide_buf_putc(out, '\n');
  }
  return rc;
}
