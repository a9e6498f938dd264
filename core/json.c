/*
 * json.c: the JSON lines decoder and encoder, the generic JSON scanner, and
 * ISO-8601 timestamps.
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
 *
 * Every scanner here is iterative; nesting is bounded by TIDE_JSON_MAX_DEPTH.
 * Error positions are 1-based byte columns from the start of the line.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "json.h"

#define NOFIELD UINT32_MAX
#define SHOW_MAX 40 /* bytes of an offending value quoted in messages */

/* ---------------------------------------------------------------- context */

/* What the scanners need to report: the start of the text (for columns),
 * its end, where to write the error, and a scratch buffer for unescaping. */
typedef struct jctx {
  const char *line, *e;
  tide_err_t *err;
  tide_buf_t *tmp;
} jctx;

static int syntax(const jctx *x, const char *p, const char *what) {
  return tide_err_set(x->err, TIDE_EPARSE, "invalid JSON at column %zu: %s",
                      (size_t)(p - x->line) + 1, what);
}

static inline const char *skip_ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
  return p;
}

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

/* First byte at or after p that ends a plain string run: '"', '\\', a
 * control character or a non-ASCII byte (or e). 16 bytes per step with SSE2:
 * as signed bytes, both c < 0x20 and c >= 0x80 are "less than 0x20". */
static inline const char *scan_plain(const char *p, const char *e) {
#ifdef __SSE2__
  const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
                space = _mm_set1_epi8(0x20);
  while (e - p >= 16) {
    __m128i v = _mm_loadu_si128((const __m128i *)p);
    __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, bslash)),
                             _mm_cmplt_epi8(v, space));
    unsigned bits = (unsigned)_mm_movemask_epi8(m);
    if (bits) return p + __builtin_ctz(bits);
    p += 16;
  }
#endif
  while (p < e) {
    unsigned char c = (unsigned char)*p;
    if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
    p++;
  }
  return p;
}

/* Copy p[0..n) into out (size >= SHOW_MAX + 4) for a message, cut at
 * SHOW_MAX bytes on a UTF-8 boundary with "..." appended. */
static void show(char *out, const char *p, size_t n) {
  if (n <= SHOW_MAX) {
    memcpy(out, p, n);
    out[n] = 0;
    return;
  }
  size_t k = SHOW_MAX;
  while (k > 0 && ((unsigned char)p[k] & 0xC0) == 0x80) k--;
  memcpy(out, p, k);
  memcpy(out + k, "...", 4);
}

/* ---------------------------------------------------------------- UTF-8 */

/* Length of the well-formed UTF-8 sequence at p (p[0] >= 0x80), or 0. Refuses
 * overlong forms, surrogates and code points above U+10FFFF. */
static int utf8_len(const unsigned char *p, const unsigned char *e) {
  unsigned c = p[0];
  if (c < 0xC2) return 0;
  if (c < 0xE0) return (e - p >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
  if (c < 0xF0) {
    if (e - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    if (c == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
    if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
    return 3;
  }
  if (c < 0xF5) {
    if (e - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
      return 0;
    if (c == 0xF0 && p[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && p[1] >= 0x90) return 0; /* > U+10FFFF */
    return 4;
  }
  return 0;
}

size_t tide_utf8_check(const char *p, size_t n) {
  const unsigned char *q = (const unsigned char *)p, *e = q + n;
  while (q < e) {
    if (*q < 0x80) {
      q++;
      continue;
    }
    int k = utf8_len(q, e);
    if (!k) return (size_t)(q - (const unsigned char *)p);
    q += k;
  }
  return n;
}

static int put_utf8(tide_buf_t *b, uint32_t cp) {
  char u[4];
  size_t n;
  if (cp < 0x80) {
    u[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    u[0] = (char)(0xC0 | (cp >> 6));
    u[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) {
    u[0] = (char)(0xE0 | (cp >> 12));
    u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    u[0] = (char)(0xF0 | (cp >> 18));
    u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  return tide_buf_append(b, u, n);
}

static int hex4(const char *p, uint32_t *out) {
  uint32_t v = 0;
  for (int i = 0; i < 4; i++) {
    char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9') v |= (uint32_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v |= (uint32_t)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F') v |= (uint32_t)(c - 'A' + 10);
    else return -1;
  }
  *out = v;
  return 0;
}

/* ---------------------------------------------------------------- strings */

/* Scan the string literal whose opening quote is at p. On success *endp is
 * just past the closing quote. When sp is not NULL the decoded contents are
 * returned in *sp and *np: a pointer into the line when the literal has no
 * escapes, else into x->tmp (overwritten). With sp NULL the literal is only
 * validated. Returns 0, TIDE_EPARSE or -ENOMEM. */
static int str_scan(const jctx *x, const char *p, const char **endp, const char **sp, size_t *np) {
  const char *e = x->e, *q = p + 1, *run = q;
  int esc = 0, rc;
  tide_buf_t *t = x->tmp;
  for (;;) {
    q = scan_plain(q, e);
    if (q >= e) return syntax(x, p, "unterminated string");
    unsigned char c = (unsigned char)*q;
    if (c == '"') break;
    if (c >= 0x80) {
      int n = utf8_len((const unsigned char *)q, (const unsigned char *)e);
      if (!n) return syntax(x, q, "invalid UTF-8 in string");
      q += n;
      continue;
    }
    if (c < 0x20) return syntax(x, q, "control character in string (must be escaped)");
    /* a backslash */
    if (sp && !esc) t->len = 0;
    esc = 1;
    if (sp && (rc = tide_buf_append(t, run, (size_t)(q - run)))) return rc;
    if (q + 1 >= e) return syntax(x, p, "unterminated string");
    char ch = q[1], out = 0;
    switch (ch) {
    case '"': out = '"'; break;
    case '\\': out = '\\'; break;
    case '/': out = '/'; break;
    case 'b': out = '\b'; break;
    case 'f': out = '\f'; break;
    case 'n': out = '\n'; break;
    case 'r': out = '\r'; break;
    case 't': out = '\t'; break;
    case 'u': {
      uint32_t cp, lo;
      if (e - q < 6 || hex4(q + 2, &cp)) return syntax(x, q, "invalid \\u escape");
      const char *at = q;
      q += 6;
      if (cp >= 0xDC00 && cp <= 0xDFFF) return syntax(x, at, "invalid \\u escape (lone surrogate)");
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (e - q < 6 || q[0] != '\\' || q[1] != 'u' || hex4(q + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
          return syntax(x, at, "invalid \\u escape (lone surrogate)");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        q += 6;
      }
      if (sp && (rc = put_utf8(t, cp))) return rc;
      run = q;
      continue;
    }
    default: return syntax(x, q, "invalid escape in string");
    }
    if (sp && (rc = tide_buf_putc(t, out))) return rc;
    q += 2;
    run = q;
  }
  *endp = q + 1;
  if (sp) {
    if (!esc) {
      *sp = p + 1;
      *np = (size_t)(q - (p + 1));
    } else {
      if ((rc = tide_buf_append(t, run, (size_t)(q - run)))) return rc;
      *sp = t->data ? t->data : "";
      *np = t->len;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- numbers */

/* Scan a number by the JSON grammar at p; *isint is 1 when it has neither a
 * fraction nor an exponent. */
static int num_scan(const jctx *x, const char *p, const char **endp, int *isint) {
  const char *e = x->e, *q = p;
  *isint = 1;
  if (q < e && *q == '-') q++;
  if (q >= e || !is_digit(*q)) return syntax(x, q, "invalid number");
  if (*q == '0') q++;
  else
    while (q < e && is_digit(*q)) q++;
  if (q < e && *q == '.') {
    *isint = 0;
    q++;
    if (q >= e || !is_digit(*q)) return syntax(x, q, "invalid number (digit expected after '.')");
    while (q < e && is_digit(*q)) q++;
  }
  if (q < e && (*q == 'e' || *q == 'E')) {
    *isint = 0;
    q++;
    if (q < e && (*q == '+' || *q == '-')) q++;
    if (q >= e || !is_digit(*q)) return syntax(x, q, "invalid number (digit expected in exponent)");
    while (q < e && is_digit(*q)) q++;
  }
  *endp = q;
  return 0;
}

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Convert the already validated number p[0..n) to a double. Decimal
 * mantissas up to 2^53 with a power of ten up to 22 are exact by one IEEE
 * multiply or divide (Clinger's fast path); the rest goes to strtod. */
static double num_value(const char *p, size_t n) {
  const char *q = p, *e = p + n;
  int neg = 0, digits = 0, exp10 = 0;
  uint64_t m = 0;
  if (*q == '-') neg = 1, q++;
  for (; q < e && is_digit(*q); q++)
    if (digits < 19) m = m * 10 + (uint64_t)(*q - '0'), digits += (m != 0);
    else exp10++;
  if (q < e && *q == '.')
    for (q++; q < e && is_digit(*q); q++)
      if (digits < 19) m = m * 10 + (uint64_t)(*q - '0'), digits += (m != 0), exp10--;
  if (q < e && (*q == 'e' || *q == 'E')) {
    int eneg = 0, ev = 0;
    q++;
    if (*q == '+' || *q == '-') eneg = (*q == '-'), q++;
    for (; q < e && is_digit(*q); q++)
      if (ev < 100000) ev = ev * 10 + (*q - '0');
    exp10 += eneg ? -ev : ev;
  }
  if (digits < 19 && m <= (1ull << 53) && exp10 >= -22 && exp10 <= 22) {
    double d = (double)m;
    d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
    return neg ? -d : d;
  }
  char small[64], *s = small;
  if (n >= sizeof small && !(s = malloc(n + 1))) return strtod("nan", NULL);
  memcpy(s, p, n);
  s[n] = 0;
  double d = strtod(s, NULL);
  if (s != small) free(s);
  return d;
}

/* Fast integer read at p (JSON grammar). Returns 1 and *v for an integer
 * within int64, 2 when it is an integer out of range, 0 when the number has a
 * fraction or exponent (the caller rescans); *endp past the digits.
 * -1 when p does not start a number. */
static inline int int_fast(const char *p, const char *e, const char **endp, int64_t *v) {
  const char *q = p;
  int neg = 0;
  if (q < e && *q == '-') neg = 1, q++;
  if (q >= e || !is_digit(*q)) return -1;
  const char *d0 = q;
  uint64_t m = 0;
  if (*q == '0') {
    q++;
    if (q < e && is_digit(*q)) { /* "01": the number is "0", the '1' is a syntax error later */
      *endp = q;
      *v = 0;
      return 1;
    }
  } else {
    while (q < e && is_digit(*q) && q - d0 < 19) m = m * 10 + (uint64_t)(*q++ - '0');
  }
  int big = q < e && is_digit(*q); /* a 20th digit */
  while (q < e && is_digit(*q)) q++;
  *endp = q;
  if (q < e && (*q == '.' || *q == 'e' || *q == 'E')) return 0;
  if (big) return 2;
  if (neg) {
    if (m > (uint64_t)INT64_MAX + 1) return 2;
    *v = (int64_t)(0 - m);
  } else {
    if (m > (uint64_t)INT64_MAX) return 2;
    *v = (int64_t)m;
  }
  return 1;
}

/* Append v in the shortest round-tripping form; see json.h. */
int tide_json_number(tide_buf_t *out, double v) {
  char buf[40];
  if (!isfinite(v)) return tide_buf_append(out, "null", 4);
  int n = snprintf(buf, sizeof buf, "%.15g", v);
  if (strtod(buf, NULL) != v) {
    n = snprintf(buf, sizeof buf, "%.16g", v);
    if (strtod(buf, NULL) != v) n = snprintf(buf, sizeof buf, "%.17g", v);
  }
  if (!strpbrk(buf, ".eE")) {
    memcpy(buf + n, ".0", 3);
    n += 2;
  }
  return tide_buf_append(out, buf, (size_t)n);
}

/* ---------------------------------------------------------------- any value */

#define PUT(c) \
  do { if (out && (rc = tide_buf_putc(out, (c)))) return rc; } while (0)
#define PUTN(s, n) \
  do { if (out && (rc = tide_buf_append(out, (s), (size_t)(n)))) return rc; } while (0)

/* Scan one JSON value of any kind at p (leading whitespace allowed), appending
 * its compact form to out when out is not NULL. Iterative: the open
 * containers are kept in a fixed stack of TIDE_JSON_MAX_DEPTH bytes. */
static int scan_any(const jctx *x, const char *p, const char **endp, tide_buf_t *out) {
  char stack[TIDE_JSON_MAX_DEPTH];
  int depth = 0, rc, isint;
  const char *e = x->e, *q;
value:
  p = skip_ws(p, e);
  if (p >= e) return syntax(x, p, "expected a value");
  switch (*p) {
  case '{':
  case '[':
    if (depth == TIDE_JSON_MAX_DEPTH) return syntax(x, p, "nesting deeper than 512 levels");
    stack[depth++] = *p;
    PUT(*p);
    p = skip_ws(p + 1, e);
    if (p < e && *p == (stack[depth - 1] == '{' ? '}' : ']')) {
      PUT(*p);
      p++;
      depth--;
      goto after;
    }
    if (stack[depth - 1] == '{') goto key;
    goto value;
  case '"':
    if ((rc = str_scan(x, p, &q, NULL, NULL))) return rc;
    PUTN(p, q - p);
    p = q;
    goto after;
  case 't':
    if (e - p < 4 || memcmp(p, "true", 4)) return syntax(x, p, "invalid literal");
    PUTN(p, 4);
    p += 4;
    goto after;
  case 'f':
    if (e - p < 5 || memcmp(p, "false", 5)) return syntax(x, p, "invalid literal");
    PUTN(p, 5);
    p += 5;
    goto after;
  case 'n':
    if (e - p < 4 || memcmp(p, "null", 4)) return syntax(x, p, "invalid literal");
    PUTN(p, 4);
    p += 4;
    goto after;
  default:
    if (*p != '-' && !is_digit(*p)) return syntax(x, p, "unexpected character");
    if ((rc = num_scan(x, p, &q, &isint))) return rc;
    PUTN(p, q - p);
    p = q;
    goto after;
  }
key:
  if (p >= e || *p != '"') return syntax(x, p, "expected a string key");
  if ((rc = str_scan(x, p, &q, NULL, NULL))) return rc;
  PUTN(p, q - p);
  p = skip_ws(q, e);
  if (p >= e || *p != ':') return syntax(x, p, "expected ':'");
  PUT(':');
  p++;
  goto value;
after:
  if (depth == 0) {
    *endp = p;
    return 0;
  }
  p = skip_ws(p, e);
  {
    char close = stack[depth - 1] == '{' ? '}' : ']';
    if (p < e && *p == ',') {
      PUT(',');
      p = skip_ws(p + 1, e);
      if (close == '}') goto key;
      goto value;
    }
    if (p < e && *p == close) {
      PUT(close);
      p++;
      depth--;
      goto after;
    }
    return syntax(x, p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

#undef PUT
#undef PUTN

int tide_json_scan(const char *p, size_t len, size_t *used, tide_buf_t *out, tide_err_t *err) {
  jctx x = {p, p + len, err, NULL};
  const char *q;
  int rc = scan_any(&x, p, &q, out);
  if (!rc && used) *used = (size_t)(q - p);
  return rc;
}

int tide_json_compact(const char *p, size_t len, tide_buf_t *out, tide_err_t *err) {
  jctx x = {p, p + len, err, NULL};
  const char *q;
  size_t mark = out->len;
  int rc = scan_any(&x, p, &q, out);
  if (!rc) {
    q = skip_ws(q, x.e);
    if (q != x.e) rc = syntax(&x, q, "unexpected text after the value");
  }
  if (rc) out->len = mark;
  return rc;
}

int tide_json_unquote(const char *p, size_t len, tide_buf_t *out, tide_err_t *err) {
  tide_buf_t tmp = TIDE_BUF_INIT;
  jctx x = {p, p + len, err, &tmp};
  const char *q, *s;
  size_t n;
  int rc;
  if (!len || *p != '"') rc = syntax(&x, p, "expected a string");
  else if (!(rc = str_scan(&x, p, &q, &s, &n)))
    rc = q != x.e ? syntax(&x, q, "unexpected text after the string") : tide_buf_append(out, s, n);
  tide_buf_free(&tmp);
  return rc;
}

/* Append s as a JSON string literal. Bytes >= 0x80 are copied as they are
 * (the core's strings are UTF-8); control characters are escaped. */
int tide_json_quote(tide_buf_t *out, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  int rc = tide_buf_reserve(out, len + 2);
  if (rc) return rc;
  out->data[out->len++] = '"';
  size_t run = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    if ((rc = tide_buf_append(out, s + run, i - run))) return rc;
    run = i + 1;
    char e[6] = {'\\', 0, 0, 0, 0, 0};
    size_t n = 2;
    switch (c) {
    case '"': e[1] = '"'; break;
    case '\\': e[1] = '\\'; break;
    case '\n': e[1] = 'n'; break;
    case '\r': e[1] = 'r'; break;
    case '\t': e[1] = 't'; break;
    case '\b': e[1] = 'b'; break;
    case '\f': e[1] = 'f'; break;
    default:
      e[1] = 'u', e[2] = '0', e[3] = '0', e[4] = hex[c >> 4], e[5] = hex[c & 15];
      n = 6;
    }
    if ((rc = tide_buf_append(out, e, n))) return rc;
  }
  if ((rc = tide_buf_append(out, s + run, len - run))) return rc;
  return tide_buf_putc(out, '"');
}

/* ---------------------------------------------------------------- values */

/* Report that the value at p does not fit field `name` of type t. The value
 * is scanned to find its end (a syntax error there wins), then quoted. */
static int mismatch(const jctx *x, const char *name, tide_type_t t, const char *p,
                    const char *why) {
  const char *q;
  char shown[SHOW_MAX + 4];
  jctx y = *x;
  y.tmp = NULL;
  int rc = scan_any(&y, p, &q, NULL);
  if (rc) return rc;
  show(shown, p, (size_t)(q - p));
  return tide_err_set(x->err, TIDE_ESCHEMA, "field '%s': expected %s, got %s%s", name,
                      tide_type_name(t), shown, why ? why : "");
}

/* Convert the JSON value at p into column col of the open row of b, by the
 * column's type. *endp is set past the value. */
static inline __attribute__((always_inline)) int put_value(const jctx *x, tide_batch_t *b, uint32_t col, const tide_field_t *f,
                     const char *p, const char **endp, tide_buf_t *val) {
  const char *e = x->e, *q, *s;
  size_t n;
  int64_t v;
  int rc, isint;
  if (p >= e) return syntax(x, p, "expected a value");
  if (*p == 'n') {
    if (e - p < 4 || memcmp(p, "null", 4)) return syntax(x, p, "invalid literal");
    if (!f->nullable) return mismatch(x, f->name, f->type, p, " (not nullable)");
    tide_batch_set_null(b, col);
    *endp = p + 4;
    return 0;
  }
  switch (f->type) {
  case TIDE_T_INT:
  case TIDE_T_TIMESTAMP:
    switch (int_fast(p, e, &q, &v)) {
    case 1:
      if (f->type == TIDE_T_TIMESTAMP && !tide_ts_valid(v)) return mismatch(x, f->name, f->type, p, TIDE_TS_RANGE_WHY);
      tide_batch_set_i64(b, col, v);
      *endp = q;
      return 0;
    case 2: return mismatch(x, f->name, f->type, p, " (out of range)");
    case 0: {
      if ((rc = num_scan(x, p, &q, &isint))) return rc;
      double d = num_value(p, (size_t)(q - p));
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
      if ((rc = str_scan(x, p, &q, &s, &n))) return rc;
      if (tide_ts_parse(s, n, &v)) return mismatch(x, f->name, f->type, p, NULL);
      if (!tide_ts_valid(v)) return mismatch(x, f->name, f->type, p, TIDE_TS_RANGE_WHY);
      tide_batch_set_i64(b, col, v);
      *endp = q;
      return 0;
    }
    return mismatch(x, f->name, f->type, p, NULL);
  case TIDE_T_DOUBLE:
    if (*p != '-' && !is_digit(*p)) return mismatch(x, f->name, f->type, p, NULL);
    if ((rc = num_scan(x, p, &q, &isint))) return rc;
    tide_batch_set_f64(b, col, num_value(p, (size_t)(q - p)));
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
    q = scan_plain(p + 1, e);
    if (q < e && *q == '"') {
      if ((rc = tide_batch_set_str(b, col, p + 1, (size_t)(q - p - 1)))) return rc;
      *endp = q + 1;
      return 0;
    }
    if ((rc = str_scan(x, p, &q, &s, &n))) return rc;
    if ((rc = tide_batch_set_str(b, col, s, n))) return rc;
    *endp = q;
    return 0;
  case TIDE_T_JSON:
    val->len = 0;
    if ((rc = scan_any(x, p, &q, val))) return rc;
    if ((rc = tide_batch_set_str(b, col, val->data, val->len))) return rc;
    *endp = q;
    return 0;
  }
  return tide_err_set(x->err, TIDE_EINVAL, "field '%s': unknown type", f->name);
}

/* put_value over a whole text, with the caller's scratch buffers. */
static int set_value(tide_batch_t *b, uint32_t col, const char *p, size_t len, tide_err_t *err,
                     tide_buf_t *tmp, tide_buf_t *val) {
  jctx x = {p, p + len, err, tmp};
  const char *q = p;
  int rc = put_value(&x, b, col, &b->schema->fields[col], skip_ws(p, x.e), &q, val);
  if (!rc && skip_ws(q, x.e) != x.e) rc = syntax(&x, q, "unexpected text after the value");
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
  char shown[SHOW_MAX + 4], list[300];
  size_t len = 0;
  show(shown, k, n);
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
static int dec_whole(tide_json_dec_t *d, tide_batch_t *b, jctx *x, const char *p) {
  const char *q = p;
  if (d->n != 1 || d->s->fields[0].type != TIDE_T_JSON)
    return tide_err_set(x->err, TIDE_EINVAL, "whole-line mode needs a schema of one json column");
  int rc = tide_batch_row_begin(b);
  if (rc) return rc;
  rc = put_value(x, b, 0, &d->s->fields[0], p, &q, &d->val);
  if (!rc && skip_ws(q, x->e) != x->e) rc = syntax(x, skip_ws(q, x->e), "unexpected text after the value");
  if (rc) {
    tide_batch_row_abort(b);
    return rc;
  }
  tide_batch_row_commit(b);
  return 0;
}

int tide_json_dec_line(tide_json_dec_t *d, tide_batch_t *b, const char *line, size_t len,
                       tide_err_t *err) {
  jctx x = {line, line + len, err, &d->tmp};
  const char *e = x.e, *p = skip_ws(line, e), *ks, *q;
  const tide_field_t *fields = d->s->fields;
  uint32_t nseen = 0, k = 0, idx;
  size_t kn;
  int rc;

  if (d->flags & TIDE_JSON_WHOLE) return dec_whole(d, b, &x, p);
  if (p >= e || *p != '{') return syntax(&x, p, "expected '{'");
  if ((rc = tide_batch_row_begin(b))) return rc;
  if (++d->gen == 0) {
    memset(d->seen, 0, d->n * sizeof *d->seen);
    d->gen = 1;
  }
  p = skip_ws(p + 1, e);
  if (p < e && *p == '}') {
    p++;
    goto end;
  }
  for (;; k++) {
    if (p >= e || *p != '"') {
      rc = syntax(&x, p, "expected a string key");
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
    q = scan_plain(ks, e);
    if (q < e && *q == '"') {
      kn = (size_t)(q - ks);
      p = q + 1;
    } else if ((rc = str_scan(&x, p, &p, &ks, &kn))) {
      goto fail;
    }
    idx = lookup(d, ks, kn);
    if (k < d->n) d->order[k] = idx;
  have_key:
    p = skip_ws(p, e);
    if (p >= e || *p != ':') {
      rc = syntax(&x, p, "expected ':'");
      goto fail;
    }
    p = skip_ws(p + 1, e);
    if (idx == NOFIELD) {
      if (!(d->flags & TIDE_JSON_IGNORE_UNKNOWN)) {
        rc = unknown_field(d, err, ks, kn);
        goto fail;
      }
      jctx y = x;
      if ((rc = scan_any(&y, p, &p, NULL))) goto fail;
    } else {
      if (d->seen[idx] == d->gen) {
        rc = tide_err_set(err, TIDE_ESCHEMA, "duplicate field '%s'", fields[idx].name);
        goto fail;
      }
      d->seen[idx] = d->gen;
      nseen++;
      if ((rc = put_value(&x, b, idx, &fields[idx], p, &p, &d->val))) goto fail;
    }
    p = skip_ws(p, e);
    if (p < e && *p == ',') {
      p = skip_ws(p + 1, e);
      continue;
    }
    if (p < e && *p == '}') {
      p++;
      break;
    }
    rc = syntax(&x, p, "expected ',' or '}'");
    goto fail;
  }
end:
  p = skip_ws(p, e);
  if (p != e) {
    rc = syntax(&x, p, "unexpected text after the object");
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
    case TIDE_T_INT: {
      int tn = snprintf(tb, sizeof tb, "%lld", (long long)tide_col_i64(c, row));
      rc = tide_buf_append(out, tb, (size_t)tn);
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

/* ---------------------------------------------------------------- time */

/* Days since 1970-01-01 of a proleptic Gregorian date. Years are split into
 * 400-year eras of 146097 days; within an era, a year starting in March puts
 * the leap day last, so day-of-year is a linear formula of the month. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int digits(const char *p, const char *e, int n, int *out) {
  int v = 0;
  if (e - p < n) return -1;
  for (int i = 0; i < n; i++) {
    if (!is_digit(p[i])) return -1;
    v = v * 10 + (p[i] - '0');
  }
  *out = v;
  return 0;
}

static int days_in_month(int y, int m) {
  static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return dim[m - 1];
}

int tide_ts_parse(const char *s, size_t len, int64_t *ms) {
  const char *p = s, *e = s + len;
  int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
  if (len < 10 || digits(p, e, 4, &y) || p[4] != '-' || digits(p + 5, e, 2, &mo) || p[7] != '-' ||
      digits(p + 8, e, 2, &d))
    return TIDE_EPARSE;
  p += 10;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return TIDE_EPARSE;
  if (p < e) {
    if (*p != 'T' && *p != 't' && *p != ' ') return TIDE_EPARSE;
    p++;
    if (digits(p, e, 2, &h) || p + 2 >= e || p[2] != ':' || digits(p + 3, e, 2, &mi)) return TIDE_EPARSE;
    p += 5;
    if (p < e && *p == ':') {
      if (digits(p + 1, e, 2, &sec)) return TIDE_EPARSE;
      p += 3;
      if (p < e && (*p == '.' || *p == ',')) {
        p++;
        if (p >= e || !is_digit(*p)) return TIDE_EPARSE;
        int nd = 0;
        for (; p < e && is_digit(*p); p++)
          if (nd < 3) frac = frac * 10 + (*p - '0'), nd++;
        for (; nd < 3; nd++) frac *= 10; /* ".25" is 250 ms */
      }
    }
    if (h > 23 || mi > 59 || sec > 59) return TIDE_EPARSE;
    if (p < e && (*p == 'Z' || *p == 'z')) {
      p++;
    } else if (p < e && (*p == '+' || *p == '-')) {
      int sign = *p == '-' ? -1 : 1, oh, om = 0;
      p++;
      if (digits(p, e, 2, &oh)) return TIDE_EPARSE;
      p += 2;
      if (p < e && *p == ':') {
        if (digits(p + 1, e, 2, &om)) return TIDE_EPARSE;
        p += 3;
      } else if (p < e && is_digit(*p)) {
        if (digits(p, e, 2, &om)) return TIDE_EPARSE;
        p += 2;
      }
      if (oh > 23 || om > 59) return TIDE_EPARSE;
      off = sign * (oh * 60 + om);
    }
    if (p != e) return TIDE_EPARSE;
  }
  *ms = (((days_from_civil(y, (unsigned)mo, (unsigned)d) * 24 + h) * 60 + mi - off) * 60 + sec) *
            1000 + frac;
  return 0;
}

int tide_ts_format(int64_t ms, char *out) {
  int64_t days = ms / 86400000, rem = ms % 86400000, y;
  unsigned m, d;
  if (rem < 0) rem += 86400000, days--;
  civil_from_days(days, &y, &m, &d);
  int h = (int)(rem / 3600000), mi = (int)(rem / 60000 % 60), s = (int)(rem / 1000 % 60),
      f = (int)(rem % 1000);
  if (f)
    return snprintf(out, 40, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d, h, mi, s, f);
  return snprintf(out, 40, "%04lld-%02u-%02uT%02d:%02d:%02dZ", (long long)y, m, d, h, mi, s);
}
