/*
 * csv.c: CSV records into batch rows (rules in csv.h).
 *
 * A record is scanned once to find its end (respecting quotes), then its
 * fields are cut and converted one by one into the open row. Quoted fields
 * are unquoted into a scratch buffer; unquoted ones are used in place.
 */
#include "csv.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "jsonl.h"
#include "ts.h"

/* Find the end of the record at p: the offset of its terminating newline
 * (outside quotes), or len when there is none. *lines counts newlines. */
static size_t record_end(const char *p, size_t len, size_t *lines, int *unterminated_quote) {
  int q = 0;
  size_t i;
  *lines = 0;
  for (i = 0; i < len; i++) {
    char c = p[i];
    if (c == '"') q = !q;
    else if (c == '\n') {
      if (!q) return i;
      ++*lines;
    }
  }
  *unterminated_quote = q;
  return len;
}

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
}

int tide_csv_dec_record(tide_batch_t *b, const char *p, size_t len, int final, char sep, size_t *used,
                        size_t *lines, tide_buf_t *scratch, tide_err_t *err) {
  int open_quote = 0;
  size_t end = record_end(p, len, lines, &open_quote);
  if (end == len && !final) {
    *used = 0;
    return TIDE_CSV_MORE;
  }
  *used = end < len ? end + 1 : len;
  size_t rlen = end;
  if (rlen && p[rlen - 1] == '\r') rlen--;
  if (open_quote) return tide_err_set(err, TIDE_EPARSE, "unterminated quoted field");
  if (rlen == 0) return TIDE_CSV_BLANK;
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
  return TIDE_CSV_ROW;
fail:
  tide_batch_row_abort(b);
  return rc;
}
