/*
 * schema.c: schemas, their DDL text form and their binary catalog form.
 *
 * A schema owns its fields array and, per field, the name and the default's
 * JSON text. Defaults are normalised when a field is added, so that two
 * schemas that mean the same thing compare equal and encode the same:
 *   int, timestamp   an integer ("3.0" -> "3", "'2024-01-01'" -> ms)
 *   double, json     the compact JSON text
 *   string           a compact JSON string literal
 *   bool             true / false
 *   any nullable     null
 *
 * DDL grammar (keywords and type names are case-insensitive; positions in
 * error messages are 1-based byte offsets into the DDL text):
 *
 *   schema  := field ( ',' field )*
 *   field   := name type [ '?' ] ( 'NOT' 'NULL' | 'DEFAULT' literal )*
 *   literal := number | true | false | null | 'sql string' | "json string"
 *            | JSON object | JSON array
 *
 * Binary form (little-endian), format version 1:
 *
 *   +----+---------+------------------------------------------------+
 *   | u8 | u32     | field * nfields                                |
 *   | v=1| nfields |                                                |
 *   +----+---------+------------------------------------------------+
 *   field: u8 type | u8 flags (1 nullable, 2 has default) | u16 name_len
 *          | name bytes | [ u32 default_len | default JSON bytes ]
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "ts.h"
#include "schema.h"

#define SCHEMA_FORMAT 1
#define F_NULLABLE 1
#define F_DEFAULT 2

/* ---------------------------------------------------------------- types */

const char *tide_type_name(tide_type_t t) {
  switch (t) {
  case TIDE_T_BOOL: return "bool";
  case TIDE_T_INT: return "int";
  case TIDE_T_DOUBLE: return "double";
  case TIDE_T_STRING: return "string";
  case TIDE_T_TIMESTAMP: return "timestamp";
  case TIDE_T_JSON: return "json";
  }
  return "?";
}

static const struct { const char *name; tide_type_t t; } type_names[] = {
    {"bool", TIDE_T_BOOL},       {"boolean", TIDE_T_BOOL},  {"int", TIDE_T_INT},
    {"bigint", TIDE_T_INT},      {"long", TIDE_T_INT},      {"integer", TIDE_T_INT},
    {"double", TIDE_T_DOUBLE},   {"float", TIDE_T_DOUBLE},  {"real", TIDE_T_DOUBLE},
    {"string", TIDE_T_STRING},   {"text", TIDE_T_STRING},   {"varchar", TIDE_T_STRING},
    {"timestamp", TIDE_T_TIMESTAMP}, {"json", TIDE_T_JSON},
};

int tide_type_parse(const char *s, size_t len, tide_type_t *out) {
  for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
    if (strlen(type_names[i].name) == len && !strncasecmp(type_names[i].name, s, len)) {
      *out = type_names[i].t;
      return 0;
    }
  return TIDE_EINVAL;
}

/* ---------------------------------------------------------------- lifecycle */

tide_schema_t *tide_schema_new(void) {
  tide_schema_t *s = calloc(1, sizeof *s);
  if (s) s->refs = 1;
  return s;
}

tide_schema_t *tide_schema_ref(tide_schema_t *s) {
  /* atomic: a file source's read-ahead thread (fileread.h) makes and frees
   * batches of the schema while the loop thread does */
  if (s) __atomic_fetch_add(&s->refs, 1, __ATOMIC_RELAXED);
  return s;
}

void tide_schema_unref(tide_schema_t *s) {
  if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL)) return;
  for (uint32_t i = 0; i < s->nfields; i++) {
    free(s->fields[i].name);
    free(s->fields[i].default_json);
  }
  free(s->fields);
  free(s);
}

int tide_schema_find(const tide_schema_t *s, const char *name, size_t len) {
  for (uint32_t i = 0; i < s->nfields; i++)
    if (s->fields[i].name_len == len && !memcmp(s->fields[i].name, name, len)) return (int)i;
  return -1;
}

/* ---------------------------------------------------------------- add */

/* A name is 1..TIDE_NAME_MAX bytes of UTF-8 without control characters or
 * backticks: identifiers, but also the names Spark gives expressions
 * ("avg(signal)"), which DDL and expressions quote with backticks. */
static int valid_name(const char *p, size_t n) {
  if (n < 1 || n > TIDE_NAME_MAX || tide_utf8_check(p, n) != n) return 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c < 0x20 || c == 0x7f || c == '`') return 0;
  }
  return 1;
}

/* A plain identifier, written in DDL without quotes. */
static int plain_name(const char *p, size_t n) {
  if (!(isalpha((unsigned char)p[0]) || p[0] == '_')) return 0;
  for (size_t i = 1; i < n; i++)
    if (!(isalnum((unsigned char)p[i]) || p[i] == '_')) return 0;
  return 1;
}

/* Quote p[0..n) for a message: printable ASCII kept, cut at 40 bytes. */
static void shown(char *out, size_t cap, const char *p, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n && k + 4 < cap; i++) {
    if (i == 40) {
      memcpy(out + k, "...", 3);
      k += 3;
      break;
    }
    out[k++] = (p[i] >= 0x20 && p[i] < 0x7f) ? p[i] : '?';
  }
  out[k] = 0;
}

/* Normalise default JSON text j for a field of type t into out (NUL-ended).
 * TIDE_EINVAL with a message naming the field when it does not fit. */
static int norm_default(const char *fname, tide_type_t t, int nullable, const char *j,
                        tide_buf_t *out, tide_err_t *err) {
  tide_buf_t c = TIDE_BUF_INIT;
  tide_err_t e2 = {0, ""};
  char show[64], num[32];
  int rc = tide_json_compact(j, strlen(j), &c, &e2);
  if (rc == -ENOMEM) return rc;
  if (rc) {
    rc = tide_err_set(err, TIDE_EINVAL, "field '%s': DEFAULT is not valid JSON (%s)", fname, e2.msg);
    goto done;
  }
  if ((rc = tide_buf_cstr(&c))) goto done;
  shown(show, sizeof show, c.data, c.len);
  const char *v = c.data;
  if (!strcmp(v, "null")) {
    if (!nullable)
      rc = tide_err_set(err, TIDE_EINVAL, "field '%s': DEFAULT null on a field that is not nullable", fname);
    else
      rc = tide_buf_puts(out, "null");
    goto done;
  }
  int ok = 0;
  switch (t) {
  case TIDE_T_BOOL: ok = !strcmp(v, "true") || !strcmp(v, "false"); break;
  case TIDE_T_DOUBLE: { /* canonical: the shortest text that reads back the same ("2.0" -> "2") */
    if (v[0] != '-' && !isdigit((unsigned char)v[0])) break;
    double d = strtod(v, NULL);
    if (!isfinite(d)) break;
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(num, sizeof num, "%.*g", prec, d);
      if (strtod(num, NULL) == d) break;
    }
    ok = 2;
    break;
  }
  case TIDE_T_STRING:
  case TIDE_T_JSON:
    ok = t == TIDE_T_JSON || v[0] == '"';
    if (ok && v[0] == '"') { /* canonical escapes: decode, then quote again */
      tide_buf_t u = TIDE_BUF_INIT;
      if (!(rc = tide_json_unquote(v, c.len, &u, NULL))) rc = tide_json_quote(out, u.data ? u.data : "", u.len);
      tide_buf_free(&u);
      goto done;
    }
    break;
  case TIDE_T_INT:
  case TIDE_T_TIMESTAMP: {
    int64_t ms;
    if (v[0] == '-' || isdigit((unsigned char)v[0])) {
      if (strpbrk(v, ".eE")) {
        double d = strtod(v, NULL);
        if (d != floor(d) || !(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) break;
        ms = (int64_t)d;
      } else {
        errno = 0;
        long long ll = strtoll(v, NULL, 10);
        if (errno) break;
        ms = ll;
      }
    } else if (t == TIDE_T_TIMESTAMP && v[0] == '"') {
      tide_buf_t u = TIDE_BUF_INIT;
      int bad = tide_json_unquote(v, c.len, &u, NULL) || tide_ts_parse(u.data ? u.data : "", u.len, &ms);
      tide_buf_free(&u);
      if (bad) break;
    } else {
      break;
    }
    snprintf(num, sizeof num, "%lld", (long long)ms);
    ok = 2;
    break;
  }
  }
  if (!ok)
    rc = tide_err_set(err, TIDE_EINVAL, "field '%s': DEFAULT must be of type %s, got %s", fname,
                      tide_type_name(t), show);
  else
    rc = tide_buf_puts(out, ok == 2 ? num : v);
done:
  tide_buf_free(&c);
  return rc;
}

int tide_schema_add(tide_schema_t *s, const char *name, size_t name_len, tide_type_t type,
                    int nullable, const char *default_json, tide_err_t *err) {
  char show[64];
  if (!valid_name(name, name_len)) {
    shown(show, sizeof show, name, name_len);
    return tide_err_set(err, TIDE_EINVAL,
                        "invalid field name '%s' (names are 1 to %d bytes of UTF-8, without control characters "
                        "or backticks)",
                        show, TIDE_NAME_MAX);
  }
  if (tide_schema_find(s, name, name_len) >= 0)
    return tide_err_set(err, TIDE_EINVAL, "duplicate field '%.*s'", (int)name_len, name);
  if (type < TIDE_T_BOOL || type > TIDE_T_JSON)
    return tide_err_set(err, TIDE_EINVAL, "field '%.*s': unknown type %d", (int)name_len, name, (int)type);
  if (s->nfields >= TIDE_FIELDS_MAX)
    return tide_err_set(err, TIDE_EINVAL, "too many fields (at most %d)", TIDE_FIELDS_MAX);
  if (s->nfields == s->cap) {
    uint32_t cap = s->cap ? s->cap * 2 : 8;
    tide_field_t *f = realloc(s->fields, cap * sizeof *f);
    if (!f) return tide_err_set(err, -ENOMEM, "out of memory");
    s->fields = f;
    s->cap = cap;
  }
  tide_field_t *f = &s->fields[s->nfields];
  memset(f, 0, sizeof *f);
  f->name = malloc(name_len + 1);
  if (!f->name) return tide_err_set(err, -ENOMEM, "out of memory");
  memcpy(f->name, name, name_len);
  f->name[name_len] = 0;
  f->name_len = (uint32_t)name_len;
  f->type = type;
  f->nullable = nullable != 0;
  if (default_json) {
    tide_buf_t d = TIDE_BUF_INIT;
    int rc = norm_default(f->name, type, nullable, default_json, &d, err);
    if (!rc) rc = tide_buf_cstr(&d);
    if (rc) {
      if (rc == -ENOMEM) tide_err_set(err, rc, "out of memory");
      tide_buf_free(&d);
      free(f->name);
      return rc;
    }
    f->default_json = d.data;
  }
  s->nfields++;
  return 0;
}

/* ---------------------------------------------------------------- DDL */

typedef struct ddl {
  const char *s, *p, *e;
  tide_err_t *err;
} ddl_t;

static int perr(ddl_t *d, const char *at, const char *fmt, const char *arg) {
  char msg[sizeof d->err->msg + 64];
  snprintf(msg, sizeof msg, fmt, arg);
  return tide_err_set(d->err, TIDE_EPARSE, "at position %zu: %s", (size_t)(at - d->s) + 1, msg);
}

static void ws(ddl_t *d) {
  while (d->p < d->e && isspace((unsigned char)*d->p)) d->p++;
}

static size_t word(ddl_t *d) {
  const char *q = d->p;
  while (q < d->e && (isalnum((unsigned char)*q) || *q == '_')) q++;
  return (size_t)(q - d->p);
}

static int is_kw(ddl_t *d, const char *kw) {
  size_t n = strlen(kw);
  return word(d) == n && !strncasecmp(d->p, kw, n);
}

/* Read a DEFAULT literal at d->p and append it as JSON text to j. */
static int ddl_literal(ddl_t *d, tide_buf_t *j) {
  const char *at = d->p;
  char show[64];
  int rc;
  if (d->p >= d->e) return perr(d, at, "%s", "expected a literal after DEFAULT");
  if (*d->p == '\'') { /* SQL string: '' is a quote */
    tide_buf_t raw = TIDE_BUF_INIT;
    const char *q = d->p + 1;
    for (;;) {
      if (q >= d->e) {
        tide_buf_free(&raw);
        return perr(d, at, "%s", "unterminated string literal");
      }
      if (*q == '\'') {
        if (q + 1 < d->e && q[1] == '\'') {
          q += 2;
          if ((rc = tide_buf_putc(&raw, '\''))) break;
          continue;
        }
        q++;
        rc = 0;
        break;
      }
      if ((rc = tide_buf_putc(&raw, *q++))) break;
    }
    if (!rc) rc = tide_json_quote(j, raw.data ? raw.data : "", raw.len);
    tide_buf_free(&raw);
    d->p = q;
    return rc;
  }
  size_t n = word(d);
  if (n && (is_kw(d, "true") || is_kw(d, "false") || is_kw(d, "null"))) {
    for (size_t i = 0; i < n; i++)
      if ((rc = tide_buf_putc(j, (char)tolower((unsigned char)d->p[i])))) return rc;
    d->p += n;
    return 0;
  }
  if (*d->p == '"' || *d->p == '-' || *d->p == '{' || *d->p == '[' || isdigit((unsigned char)*d->p)) {
    size_t used;
    tide_err_t e2 = {0, ""};
    rc = tide_json_scan(d->p, (size_t)(d->e - d->p), &used, j, &e2);
    if (rc == TIDE_EPARSE) { /* point at the bad byte inside the literal */
      const char *m = strstr(e2.msg, ": ");
      size_t col = 1;
      if (sscanf(e2.msg, "invalid JSON at column %zu", &col) != 1 || col < 1) col = 1;
      return perr(d, at + col - 1, "invalid DEFAULT literal (%s)", m ? m + 2 : e2.msg);
    }
    if (rc) return rc;
    d->p += used;
    return 0;
  }
  shown(show, sizeof show, d->p, n ? n : 1);
  return perr(d, at, "invalid DEFAULT literal '%s'", show);
}

static int ddl_field(ddl_t *d, tide_schema_t *s) {
  char show[64], msg[200];
  tide_type_t t;
  int nullable = 0, notnull = 0, rc;
  tide_buf_t def = TIDE_BUF_INIT;
  const char *defat = NULL;
  ws(d);
  const char *name = d->p;
  size_t nn;
  if (d->p < d->e && *d->p == '`') { /* a quoted name: `avg(signal)` */
    const char *q = memchr(d->p + 1, '`', (size_t)(d->e - d->p - 1));
    if (!q) return perr(d, d->p, "%s", "unterminated `quoted` field name");
    name = d->p + 1;
    nn = (size_t)(q - name);
    if (!nn) return perr(d, d->p, "%s", "empty `quoted` field name");
    d->p = q + 1 - nn; /* so that d->p += nn below lands after the quote */
  } else {
    nn = word(d);
  }
  if (!nn) {
    if (d->p >= d->e) return perr(d, d->p, "%s", "expected a field name");
    shown(show, sizeof show, d->p, 1);
    return perr(d, d->p, "expected a field name, got '%s'", show);
  }
  d->p += nn;
  ws(d);
  const char *ta = d->p;
  size_t tn = word(d);
  if (!tn) {
    snprintf(msg, sizeof msg, "expected a type after '%.*s'", (int)(nn > 40 ? 40 : nn), name);
    return perr(d, ta, "%s", msg);
  }
  if (tide_type_parse(ta, tn, &t)) {
    shown(show, sizeof show, ta, tn);
    return perr(d, ta, "unknown type '%s' (allowed: bool, int, double, string, timestamp, json)", show);
  }
  d->p += tn;
  ws(d);
  if (d->p < d->e && *d->p == '?') {
    nullable = 1;
    d->p++;
  }
  for (;;) {
    ws(d);
    const char *at = d->p;
    if (d->p >= d->e || *d->p == ',') break;
    if (is_kw(d, "not")) {
      d->p += 3;
      ws(d);
      if (!is_kw(d, "null")) {
        rc = perr(d, d->p, "%s", "expected NULL after NOT");
        goto fail;
      }
      d->p += 4;
      if (nullable) {
        rc = perr(d, at, "%s", "NOT NULL on a nullable field (remove the '?')");
        goto fail;
      }
      notnull = 1;
    } else if (is_kw(d, "default")) {
      d->p += 7;
      ws(d);
      if (def.len) {
        rc = perr(d, at, "%s", "DEFAULT given twice");
        goto fail;
      }
      defat = d->p;
      if ((rc = ddl_literal(d, &def))) goto fail;
      if ((rc = tide_buf_cstr(&def))) goto fail;
    } else {
      size_t n = word(d);
      shown(show, sizeof show, d->p, n ? n : 1);
      rc = perr(d, at, "unexpected '%s' (expected ',', NOT NULL or DEFAULT)", show);
      goto fail;
    }
  }
  (void)notnull;
  rc = tide_schema_add(s, name, nn, t, nullable, def.len ? def.data : NULL, d->err);
  if (rc == TIDE_EINVAL && def.len && d->err && strstr(d->err->msg, "DEFAULT")) {
    /* a default that does not fit the type is a parse error of the text */
    tide_err_prefix(d->err, "at position %zu: ", (size_t)(defat - d->s) + 1);
    rc = d->err->code = TIDE_EPARSE;
  }
fail:
  tide_buf_free(&def);
  return rc;
}

int tide_schema_parse_ddl(const char *text, size_t len, tide_schema_t **out, tide_err_t *err) {
  ddl_t d = {text, text, text + len, err};
  tide_schema_t *s = tide_schema_new();
  int rc;
  *out = NULL;
  if (!s) return tide_err_set(err, -ENOMEM, "out of memory");
  ws(&d);
  if (d.p >= d.e) {
    rc = perr(&d, d.p, "%s", "empty schema (expected a field name)");
    goto fail;
  }
  for (;;) {
    if ((rc = ddl_field(&d, s))) goto fail;
    ws(&d);
    if (d.p >= d.e) break;
    d.p++; /* ',' (ddl_field stops only there or at the end) */
  }
  *out = s;
  return 0;
fail:
  tide_schema_unref(s);
  return rc;
}

int tide_schema_to_ddl(const tide_schema_t *s, tide_buf_t *out) {
  int rc = 0;
  for (uint32_t i = 0; !rc && i < s->nfields; i++) {
    const tide_field_t *f = &s->fields[i];
    if (i) rc = tide_buf_puts(out, ", ");
    int quote = !plain_name(f->name, f->name_len);
    if (!rc && quote) rc = tide_buf_putc(out, '`');
    if (!rc) rc = tide_buf_append(out, f->name, f->name_len);
    if (!rc && quote) rc = tide_buf_putc(out, '`');
    if (!rc) rc = tide_buf_putc(out, ' ');
    if (!rc) rc = tide_buf_puts(out, tide_type_name(f->type));
    if (!rc && f->nullable) rc = tide_buf_putc(out, '?');
    if (rc || !f->default_json) continue;
    rc = tide_buf_puts(out, " DEFAULT ");
    if (rc) break;
    if (f->default_json[0] == '"') {
      tide_buf_t u = TIDE_BUF_INIT;
      rc = tide_json_unquote(f->default_json, strlen(f->default_json), &u, NULL);
      if (!rc) rc = tide_buf_putc(out, '\'');
      for (size_t k = 0; !rc && k < u.len; k++)
        rc = u.data[k] == '\'' ? tide_buf_append(out, "''", 2) : tide_buf_putc(out, u.data[k]);
      if (!rc) rc = tide_buf_putc(out, '\'');
      tide_buf_free(&u);
    } else {
      rc = tide_buf_puts(out, f->default_json);
    }
  }
  return rc;
}

/* ---------------------------------------------------------------- binary */

static int put_u16(tide_buf_t *b, uint16_t v) {
  uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
  return tide_buf_append(b, x, 2);
}

static int put_u32(tide_buf_t *b, uint32_t v) {
  uint8_t x[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  return tide_buf_append(b, x, 4);
}

static uint32_t get_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int tide_schema_encode(const tide_schema_t *s, tide_buf_t *out) {
  size_t mark = out->len;
  int rc = tide_buf_putc(out, SCHEMA_FORMAT);
  if (!rc) rc = put_u32(out, s->nfields);
  for (uint32_t i = 0; !rc && i < s->nfields; i++) {
    const tide_field_t *f = &s->fields[i];
    uint8_t hdr[2] = {(uint8_t)f->type,
                      (uint8_t)((f->nullable ? F_NULLABLE : 0) | (f->default_json ? F_DEFAULT : 0))};
    rc = tide_buf_append(out, hdr, 2);
    if (!rc) rc = put_u16(out, (uint16_t)f->name_len);
    if (!rc) rc = tide_buf_append(out, f->name, f->name_len);
    if (!rc && f->default_json) {
      size_t n = strlen(f->default_json);
      rc = put_u32(out, (uint32_t)n);
      if (!rc) rc = tide_buf_append(out, f->default_json, n);
    }
  }
  if (rc) out->len = mark;
  return rc;
}

int tide_schema_decode(const void *data, size_t len, tide_schema_t **out, tide_err_t *err) {
  const uint8_t *p = data, *e = p + len;
  tide_schema_t *s = NULL;
  char *def = NULL;
  int rc;
  *out = NULL;
  if (len < 1) return tide_err_set(err, TIDE_ECORRUPT, "schema record: empty");
  if (p[0] != SCHEMA_FORMAT)
    return tide_err_set(err, TIDE_EFORMAT, "schema record: unknown format version %u", p[0]);
  if (len < 5) return tide_err_set(err, TIDE_ECORRUPT, "schema record: truncated header");
  uint32_t n = get_u32(p + 1);
  p += 5;
  if (n > TIDE_FIELDS_MAX || n > (size_t)(e - p) / 4)
    return tide_err_set(err, TIDE_ECORRUPT, "schema record: bad field count %u", n);
  if (!(s = tide_schema_new())) return tide_err_set(err, -ENOMEM, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    if (e - p < 4) goto trunc;
    uint8_t type = p[0], flags = p[1];
    size_t nl = (size_t)p[2] | (size_t)p[3] << 8;
    p += 4;
    if (type < TIDE_T_BOOL || type > TIDE_T_JSON || (flags & ~(F_NULLABLE | F_DEFAULT))) {
      rc = tide_err_set(err, TIDE_ECORRUPT, "schema record: field %u: bad type or flags", i + 1);
      goto fail;
    }
    if ((size_t)(e - p) < nl) goto trunc;
    const char *name = (const char *)p;
    p += nl;
    if (flags & F_DEFAULT) {
      if (e - p < 4) goto trunc;
      size_t dl = get_u32(p);
      p += 4;
      if ((size_t)(e - p) < dl) goto trunc;
      if (!(def = malloc(dl + 1))) {
        rc = tide_err_set(err, -ENOMEM, "out of memory");
        goto fail;
      }
      memcpy(def, p, dl);
      def[dl] = 0;
      p += dl;
      if (strlen(def) != dl) {
        rc = tide_err_set(err, TIDE_ECORRUPT, "schema record: field %u: NUL in default", i + 1);
        goto fail;
      }
    }
    rc = tide_schema_add(s, name, nl, (tide_type_t)type, flags & F_NULLABLE, def, err);
    free(def);
    def = NULL;
    if (rc == -ENOMEM) goto fail;
    if (rc) {
      tide_err_prefix(err, "schema record: ");
      if (err) err->code = TIDE_ECORRUPT;
      rc = TIDE_ECORRUPT;
      goto fail;
    }
  }
  if (p != e) {
    rc = tide_err_set(err, TIDE_ECORRUPT, "schema record: %zu trailing bytes", (size_t)(e - p));
    goto fail;
  }
  *out = s;
  return 0;
trunc:
  rc = tide_err_set(err, TIDE_ECORRUPT, "schema record: truncated");
fail:
  free(def);
  tide_schema_unref(s);
  return rc;
}

int tide_schema_equal(const tide_schema_t *a, const tide_schema_t *b) {
  if (a->nfields != b->nfields) return 0;
  for (uint32_t i = 0; i < a->nfields; i++) {
    const tide_field_t *x = &a->fields[i], *y = &b->fields[i];
    if (x->name_len != y->name_len || memcmp(x->name, y->name, x->name_len) || x->type != y->type ||
        x->nullable != y->nullable)
      return 0;
    if (!x->default_json != !y->default_json) return 0;
    if (x->default_json && strcmp(x->default_json, y->default_json)) return 0;
  }
  return 1;
}
