/*
 * json.h: JSON text: the scanner, validation and compaction, string quoting
 * and unquoting, number formatting, and UTF-8 checks. Nothing here knows
 * batches or schemas: the JSON-lines batch codec (jsonl.h), the schema's
 * defaults (schema.c), CSV cells (csv.c) and the Lua bindings build on it.
 *
 * The scanners follow RFC 8259 exactly (no comments, no trailing commas,
 * strings of valid UTF-8, no lone surrogates). They are iterative; nesting
 * is bounded by TIDE_JSON_MAX_DEPTH. Error messages read
 * "invalid JSON at column N: <what>", N a 1-based byte column from the start
 * of the text being scanned.
 */
#ifndef TIDE_JSON_H
#define TIDE_JSON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "buf.h"
#include "err.h"

/* Deepest nesting of arrays and objects the scanners accept (they are
 * iterative; the limit bounds their fixed stack). */
#define TIDE_JSON_MAX_DEPTH 512

/* ------------------------------------------------------------- whole texts --- */

/* Scan one JSON value at the start of p[0..len) (leading whitespace skipped),
 * appending its compact form to out (out may be NULL to only validate).
 * *used is set to the offset just after the value; the rest of p is not
 * looked at. TIDE_EPARSE with "invalid JSON at column N: ..." (N relative to
 * p, 1-based), or -ENOMEM. */
int tide_json_scan(const char *p, size_t len, size_t *used, tide_buf_t *out, tide_err_t *err);

/* Validate one JSON value in p[0..len) (surrounding whitespace allowed) and
 * append its compact form to out. TIDE_EPARSE with the column on failure
 * (out is as before). */
int tide_json_compact(const char *p, size_t len, tide_buf_t *out, tide_err_t *err);

/* Append s as a JSON string literal (quotes and escapes) to out. Bytes >=
 * 0x80 are copied as they are (the core's strings are UTF-8); control
 * characters are escaped. 0 or -ENOMEM. */
int tide_json_quote(tide_buf_t *out, const char *s, size_t len);

/* Decode the JSON string literal p[0..len) (quotes included) and append its
 * UTF-8 bytes to out. TIDE_EPARSE when p is not exactly one valid string. */
int tide_json_unquote(const char *p, size_t len, tide_buf_t *out, tide_err_t *err);

/* Write finite v in the shortest %g form that reads back as the same
 * double ("0.1", "3", "1e+21", "5e-324"), NUL-terminated; returns the
 * length. */
int tide_double_shortest(double v, char out[40]);

/* Append v in the shortest form that reads back as the same double ("0.1",
 * "1e+21"); integral values keep a ".0" ("3.0"); NaN and infinities are
 * written as null. 0 or -ENOMEM. */
int tide_json_number(tide_buf_t *out, double v);

/* Offset of the first byte of p[0..n) that does not start a well-formed
 * UTF-8 sequence (overlong forms, surrogates and code points above U+10FFFF
 * are refused), or n when all of it is valid. */
size_t tide_utf8_check(const char *p, size_t n);

/* --------------------------------------------------------------- scanning --- */

/* The pieces the codecs scan with, value by value, without a tree. A cursor
 * is what they report with: the start of the text (error columns count from
 * it), its end, where a failure is described, and a scratch buffer for
 * unescaped strings (NULL when strings are only validated). Every function
 * below reads no byte at or past x->end. */
typedef struct tide_json_cur {
  const char *start, *end;
  tide_err_t *err;
  tide_buf_t *tmp;
} tide_json_cur_t;

/* Describe a syntax error at p: TIDE_EPARSE, "invalid JSON at column N: what". */
int tide_json_syntax(const tide_json_cur_t *x, const char *p, const char *what);

/* Scan the string literal whose opening quote is at p. On success *endp is
 * just past the closing quote. When sp is not NULL the decoded contents are
 * returned in *sp and *np: a pointer into the text when the literal has no
 * escapes, else into x->tmp (overwritten). With sp NULL the literal is only
 * validated. Returns 0, TIDE_EPARSE or -ENOMEM. */
int tide_json_str(const tide_json_cur_t *x, const char *p, const char **endp, const char **sp, size_t *np);

/* Scan one JSON value of any kind at p (leading whitespace allowed), setting
 * *endp past it and appending its compact form to out when out is not NULL.
 * 0, TIDE_EPARSE or -ENOMEM. */
int tide_json_value(const tide_json_cur_t *x, const char *p, const char **endp, tide_buf_t *out);

/* The double of the number p[0..n), already scanned by tide_json_num:
 * correctly rounded (exact fast path, else strtod). */
double tide_json_num_value(const char *p, size_t n);

/* Bytes of an offending value quoted in messages, and the copy: p[0..n)
 * into out (room for TIDE_JSON_SHOW_MAX + 4 bytes), cut at
 * TIDE_JSON_SHOW_MAX bytes on a UTF-8 boundary with "..." appended. */
#define TIDE_JSON_SHOW_MAX 40
void tide_json_show(char *out, const char *p, size_t n);

/* Inline, for the per-value loops of the decoders. */

/* The first byte at or after p that is not JSON whitespace (or e). */
static inline const char *tide_json_ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) p++;
  return p;
}

/* An ASCII digit? */
static inline int tide_json_digit(char c) { return c >= '0' && c <= '9'; }

/* First byte at or after p that ends a plain string run: '"', '\\', a
 * control character or a non-ASCII byte (or e). 16 bytes per step with SSE2:
 * as signed bytes, both c < 0x20 and c >= 0x80 are "less than 0x20". */
static inline const char *tide_json_plain(const char *p, const char *e) {
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

/* Scan a number by the JSON grammar at p; *endp is set past it and *isint
 * to 1 when it has neither a fraction nor an exponent. 0 or TIDE_EPARSE. */
static inline int tide_json_num(const tide_json_cur_t *x, const char *p, const char **endp, int *isint) {
  const char *e = x->end, *q = p;
  *isint = 1;
  if (q < e && *q == '-') q++;
  if (q >= e || !tide_json_digit(*q)) return tide_json_syntax(x, q, "invalid number");
  if (*q == '0') q++;
  else
    while (q < e && tide_json_digit(*q)) q++;
  if (q < e && *q == '.') {
    *isint = 0;
    q++;
    if (q >= e || !tide_json_digit(*q)) return tide_json_syntax(x, q, "invalid number (digit expected after '.')");
    while (q < e && tide_json_digit(*q)) q++;
  }
  if (q < e && (*q == 'e' || *q == 'E')) {
    *isint = 0;
    q++;
    if (q < e && (*q == '+' || *q == '-')) q++;
    if (q >= e || !tide_json_digit(*q)) return tide_json_syntax(x, q, "invalid number (digit expected in exponent)");
    while (q < e && tide_json_digit(*q)) q++;
  }
  *endp = q;
  return 0;
}

/* Fast integer read at p (JSON grammar). Returns 1 and *v for an integer
 * within int64, 2 when it is an integer out of range, 0 when the number has a
 * fraction or exponent (the caller rescans); *endp past the digits.
 * -1 when p does not start a number. */
static inline int tide_json_int(const char *p, const char *e, const char **endp, int64_t *v) {
  const char *q = p;
  int neg = 0;
  if (q < e && *q == '-') neg = 1, q++;
  if (q >= e || !tide_json_digit(*q)) return -1;
  const char *d0 = q;
  uint64_t m = 0;
  if (*q == '0') {
    q++;
    if (q < e && tide_json_digit(*q)) { /* "01": the number is "0", the '1' is a syntax error later */
      *endp = q;
      *v = 0;
      return 1;
    }
  } else {
    while (q < e && tide_json_digit(*q) && q - d0 < 19) m = m * 10 + (uint64_t)(*q++ - '0');
  }
  int big = q < e && tide_json_digit(*q); /* a 20th digit */
  while (q < e && tide_json_digit(*q)) q++;
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

#endif
