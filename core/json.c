/*
 * json.c: the JSON scanner (json.h): validation and compaction, strings,
 * numbers, UTF-8.
 *
 * Every scanner here is iterative; nesting is bounded by TIDE_JSON_MAX_DEPTH.
 * Error positions are 1-based byte columns from the start of the text.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* ---------------------------------------------------------------- errors */

int tide_json_syntax(const tide_json_cur_t *x, const char *p, const char *what) {
  return tide_err_set(x->err, TIDE_EPARSE, "invalid JSON at column %zu: %s",
                      (size_t)(p - x->start) + 1, what);
}

/* Copy p[0..n) into out (size >= TIDE_JSON_SHOW_MAX + 4) for a message, cut at
 * TIDE_JSON_SHOW_MAX bytes on a UTF-8 boundary with "..." appended. */
void tide_json_show(char *out, const char *p, size_t n) {
  if (n <= TIDE_JSON_SHOW_MAX) {
    memcpy(out, p, n);
    out[n] = 0;
    return;
  }
  size_t k = TIDE_JSON_SHOW_MAX;
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
int tide_json_str(const tide_json_cur_t *x, const char *p, const char **endp, const char **sp, size_t *np) {
  const char *e = x->end, *q = p + 1, *run = q;
  int esc = 0, rc;
  tide_buf_t *t = x->tmp;
  for (;;) {
    q = tide_json_plain(q, e);
    if (q >= e) return tide_json_syntax(x, p, "unterminated string");
    unsigned char c = (unsigned char)*q;
    if (c == '"') break;
    if (c >= 0x80) {
      int n = utf8_len((const unsigned char *)q, (const unsigned char *)e);
      if (!n) return tide_json_syntax(x, q, "invalid UTF-8 in string");
      q += n;
      continue;
    }
    if (c < 0x20) return tide_json_syntax(x, q, "control character in string (must be escaped)");
    /* a backslash */
    if (sp && !esc) t->len = 0;
    esc = 1;
    if (sp && (rc = tide_buf_append(t, run, (size_t)(q - run)))) return rc;
    if (q + 1 >= e) return tide_json_syntax(x, p, "unterminated string");
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
      if (e - q < 6 || hex4(q + 2, &cp)) return tide_json_syntax(x, q, "invalid \\u escape");
      const char *at = q;
      q += 6;
      if (cp >= 0xDC00 && cp <= 0xDFFF) return tide_json_syntax(x, at, "invalid \\u escape (lone surrogate)");
      if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (e - q < 6 || q[0] != '\\' || q[1] != 'u' || hex4(q + 2, &lo) || lo < 0xDC00 || lo > 0xDFFF)
          return tide_json_syntax(x, at, "invalid \\u escape (lone surrogate)");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        q += 6;
      }
      if (sp && (rc = put_utf8(t, cp))) return rc;
      run = q;
      continue;
    }
    default: return tide_json_syntax(x, q, "invalid escape in string");
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

static const double pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Convert the already validated number p[0..n) to a double. Decimal
 * mantissas up to 2^53 with a power of ten up to 22 are exact by one IEEE
 * multiply or divide (Clinger's fast path); the rest goes to strtod. */
double tide_json_num_value(const char *p, size_t n) {
  const char *q = p, *e = p + n;
  int neg = 0, digits = 0, exp10 = 0;
  uint64_t m = 0;
  if (*q == '-') neg = 1, q++;
  for (; q < e && tide_json_digit(*q); q++)
    if (digits < 19) m = m * 10 + (uint64_t)(*q - '0'), digits += (m != 0);
    else exp10++;
  if (q < e && *q == '.')
    for (q++; q < e && tide_json_digit(*q); q++)
      if (digits < 19) m = m * 10 + (uint64_t)(*q - '0'), digits += (m != 0), exp10--;
  if (q < e && (*q == 'e' || *q == 'E')) {
    int eneg = 0, ev = 0;
    q++;
    if (*q == '+' || *q == '-') eneg = (*q == '-'), q++;
    for (; q < e && tide_json_digit(*q); q++)
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

/* The decimal m * 10^-k (m < 10^15, k < 20) as %g writes it, into out. */
static int fixed_decimal(int neg, uint64_t m, int k, char out[40]) {
  char d[20];
  int nd = 0, n = 0;
  do d[nd++] = (char)('0' + m % 10), m /= 10; while (m);
  if (neg) out[n++] = '-';
  if (nd <= k) { /* 0.00ddd */
    out[n++] = '0';
    out[n++] = '.';
    for (int i = nd; i < k; i++) out[n++] = '0';
  }
  for (int i = nd - 1; i >= 0; i--) {
    out[n++] = d[i];
    if (i == k && k > 0 && nd > k) out[n++] = '.';
  }
  out[n] = 0;
  return n;
}

/* What the printf path below writes for 1e-4 <= a < 1e15 (no ≤15-digit
 * decimal found by the fast path), in integers: a = m / 2^s exactly, so
 * a * 10^k = m * 10^k / 2^s, and m * 10^k fits in 128 bits (m < 2^53,
 * k <= 20). For n = 15, 16, 17 digits: D = that quotient rounded half to
 * even (as glibc's printf rounds), and D / 10^k reads back as a (strtod:
 * the nearest double) when |D * 2^s - m * 10^k| < 10^k / 2, half the gap to
 * a's neighbours; the first n that reads back (17 always does), its
 * trailing zeros dropped as %g drops them. A tie with a neighbour, the
 * uneven gap below a power of two, a decade misjudged: 0, and the printf
 * path decides. The averages a sink writes (sum / count) mostly need 16 or
 * 17 digits: three snprintf and two strtod calls each before. */
static int exact_digits(int neg, double a, char out[40]) {
  typedef unsigned __int128 u128;
  int ex;
  double f = frexp(a, &ex); /* a = f * 2^ex, 0.5 <= f < 1 */
  uint64_t m = (uint64_t)ldexp(f, 53);
  int s = 53 - ex; /* 3 <= s <= 66 here */
  if (m == (uint64_t)1 << 52) return 0;
  int x = 0; /* the decade: 10^x <= a < 10^(x+1), checked on the digits below */
  for (double t = a; t >= 10; t /= 10) x++;
  for (double t = a; t < 1; t *= 10) x--;
  for (int n = 15; n <= 17; n++) {
    int k = n - 1 - x;
    if (k < 0 || k > 20) return 0;
    u128 p10 = 1;
    for (int i = 0; i < k; i++) p10 *= 10;
    u128 p = (u128)m * p10;
    u128 d = p >> s, rem = p - (d << s), half = (u128)1 << (s - 1);
    if (rem > half || (rem == half && (d & 1))) d++;
    u128 lo = 1;
    for (int i = 1; i < n; i++) lo *= 10;
    if (d < lo || d >= lo * 10) return 0; /* not n digits: the decade was off, or a carry */
    u128 ds = d << s, diff = ds > p ? ds - p : p - ds;
    if (2 * diff == p10) return 0;
    if (2 * diff > p10) continue; /* does not read back: one digit more */
    uint64_t dd = (uint64_t)d;
    while (k > 0 && dd % 10 == 0) dd /= 10, k--;
    return fixed_decimal(neg, dd, k, out);
  }
  return 0;
}

/* The shortest digits: a value whose shortest form has k <= 15 digits is
 * printed exactly so by %.15g (rounding to 15 digits lands on it, and %g
 * drops the trailing zeros); else the nearest 16-digit decimal reads back
 * when any 16-digit one does; else 17 digits always do. See json.h. */
int tide_double_shortest(double v, char out[40]) {
  /* The common case without printf: v is within %g's fixed notation
   * (1e-4 <= |v| < 1e15) and some decimal of at most 15 significant digits
   * reads back as v, i.e. m / 10^k == v (both exact doubles, so the
   * division rounds as strtod does). The smallest such k gives the digits
   * "%.15g" writes (v is within half an ulp of them, far less than half a
   * unit of their 15th digit), which is what the general path returns
   * first. A sink writes every double of every row this way. */
  static const double p10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14,
                               1e15, 1e16, 1e17, 1e18, 1e19};
  double a = fabs(v);
  if (a >= 1e-4 && a < 1e15) {
    for (int k = 0; k < 20; k++) {
      double m = nearbyint(a * p10[k]);
      if (m >= 1e15) break;
      if (m / p10[k] == a) return fixed_decimal(v < 0, (uint64_t)m, k, out);
    }
  }
  if (a >= 1e-4 && a < 1e15) {
    int n = exact_digits(v < 0, a, out);
    if (n > 0) return n;
  }
  int n = snprintf(out, 40, "%.15g", v);
  if (strtod(out, NULL) != v) {
    n = snprintf(out, 40, "%.16g", v);
    if (strtod(out, NULL) != v) n = snprintf(out, 40, "%.17g", v);
  }
  return n;
}

/* Append v in the shortest round-tripping form; see json.h. */
int tide_json_number(tide_buf_t *out, double v) {
  char buf[40];
  if (!isfinite(v)) return tide_buf_append(out, "null", 4);
  int n = tide_double_shortest(v, buf);
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
int tide_json_value(const tide_json_cur_t *x, const char *p, const char **endp, tide_buf_t *out) {
  char stack[TIDE_JSON_MAX_DEPTH];
  int depth = 0, rc, isint;
  const char *e = x->end, *q;
value:
  p = tide_json_ws(p, e);
  if (p >= e) return tide_json_syntax(x, p, "expected a value");
  switch (*p) {
  case '{':
  case '[':
    if (depth == TIDE_JSON_MAX_DEPTH) return tide_json_syntax(x, p, "nesting deeper than 512 levels");
    stack[depth++] = *p;
    PUT(*p);
    p = tide_json_ws(p + 1, e);
    if (p < e && *p == (stack[depth - 1] == '{' ? '}' : ']')) {
      PUT(*p);
      p++;
      depth--;
      goto after;
    }
    if (stack[depth - 1] == '{') goto key;
    goto value;
  case '"':
    if ((rc = tide_json_str(x, p, &q, NULL, NULL))) return rc;
    PUTN(p, q - p);
    p = q;
    goto after;
  case 't':
    if (e - p < 4 || memcmp(p, "true", 4)) return tide_json_syntax(x, p, "invalid literal");
    PUTN(p, 4);
    p += 4;
    goto after;
  case 'f':
    if (e - p < 5 || memcmp(p, "false", 5)) return tide_json_syntax(x, p, "invalid literal");
    PUTN(p, 5);
    p += 5;
    goto after;
  case 'n':
    if (e - p < 4 || memcmp(p, "null", 4)) return tide_json_syntax(x, p, "invalid literal");
    PUTN(p, 4);
    p += 4;
    goto after;
  default:
    if (*p != '-' && !tide_json_digit(*p)) return tide_json_syntax(x, p, "unexpected character");
    if ((rc = tide_json_num(x, p, &q, &isint))) return rc;
    PUTN(p, q - p);
    p = q;
    goto after;
  }
key:
  if (p >= e || *p != '"') return tide_json_syntax(x, p, "expected a string key");
  if ((rc = tide_json_str(x, p, &q, NULL, NULL))) return rc;
  PUTN(p, q - p);
  p = tide_json_ws(q, e);
  if (p >= e || *p != ':') return tide_json_syntax(x, p, "expected ':'");
  PUT(':');
  p++;
  goto value;
after:
  if (depth == 0) {
    *endp = p;
    return 0;
  }
  p = tide_json_ws(p, e);
  {
    char close = stack[depth - 1] == '{' ? '}' : ']';
    if (p < e && *p == ',') {
      PUT(',');
      p = tide_json_ws(p + 1, e);
      if (close == '}') goto key;
      goto value;
    }
    if (p < e && *p == close) {
      PUT(close);
      p++;
      depth--;
      goto after;
    }
    return tide_json_syntax(x, p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

#undef PUT
#undef PUTN

int tide_json_scan(const char *p, size_t len, size_t *used, tide_buf_t *out, tide_err_t *err) {
  tide_json_cur_t x = {p, p + len, err, NULL};
  const char *q;
  int rc = tide_json_value(&x, p, &q, out);
  if (!rc && used) *used = (size_t)(q - p);
  return rc;
}

int tide_json_compact(const char *p, size_t len, tide_buf_t *out, tide_err_t *err) {
  tide_json_cur_t x = {p, p + len, err, NULL};
  const char *q;
  size_t mark = out->len;
  int rc = tide_json_value(&x, p, &q, out);
  if (!rc) {
    q = tide_json_ws(q, x.end);
    if (q != x.end) rc = tide_json_syntax(&x, q, "unexpected text after the value");
  }
  if (rc) out->len = mark;
  return rc;
}

int tide_json_unquote(const char *p, size_t len, tide_buf_t *out, tide_err_t *err) {
  tide_buf_t tmp = TIDE_BUF_INIT;
  tide_json_cur_t x = {p, p + len, err, &tmp};
  const char *q, *s;
  size_t n;
  int rc;
  if (!len || *p != '"') rc = tide_json_syntax(&x, p, "expected a string");
  else if (!(rc = tide_json_str(&x, p, &q, &s, &n)))
    rc = q != x.end ? tide_json_syntax(&x, q, "unexpected text after the string") : tide_buf_append(out, s, n);
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
