/*
 * expr.c: SQL-like expressions (rules in expr.h): a recursive-descent parser
 * that builds a typed tree bound to column indexes, and a vectorised
 * evaluator that runs that tree over a whole batch, one node at a time.
 *
 * The tree. Every node_t has an op, a type and its children. Typing happens
 * as each node is built (children first), so a node exists only when it is
 * well typed; the checks insert implicit CAST nodes (int -> double for mixed
 * arithmetic, comparisons and CASE branches) so that the kernels only ever
 * see operands of one storage class:
 *
 *   int, timestamp  int64_t     bool   uint8_t (0/1)
 *   double          double      string, json  offsets + bytes
 *
 * Invariants of a built node:
 *   - type is a tide_type_t, or T_NULL (0) only for a constant NULL whose
 *     type no context has fixed yet (a bare NULL; it becomes string at the
 *     top, or adopts the type of its sibling when one is known);
 *   - is_const nodes carry their value (i, d, s/slen, or cnull) and are never
 *     evaluated again: literals are constant, and so is every node whose
 *     children are all constant (folded at build time by evaluating it over
 *     one row), every NULL-propagating node with a constant NULL child, and
 *     every node of type T_NULL;
 *   - the children stay in place after folding, for the canonical text;
 *   - an aggregate node is only ever the root (or the child of nothing).
 *
 * Evaluation. ev() returns a val_t: a constant (no column), a borrowed input
 * column, or an owned tide_col_t built by a kernel. Each node is one switch
 * and then a tight loop over the rows; constants are broadcast inside the
 * kernels (column-vs-constant loops) rather than materialised, except in the
 * cold kernels that read through the v*() accessors. The only allocations
 * are per node per batch (the result column, a selection vector for CASE),
 * never per row. Values of NULL rows are zeroed and NULL string rows are
 * empty, as batch.h requires, by col_finish().
 *
 * NULLs: AND/OR/NOT use SQL's three-valued logic; IS NULL is never NULL;
 * IN is an OR of equalities (so x IN (1, NULL) is NULL unless x = 1);
 * CASE takes the first WHEN that is TRUE; coalesce the first non-NULL; all
 * other operators give NULL when an operand is NULL. Doubles compare as in
 * Spark: NaN = NaN, and NaN is larger than any other value.
 *
 * Strings are UTF-8; length, substr, LIKE's '_' count characters; lower and
 * upper change ASCII letters only (other characters are kept as they are).
 *
 * Limits: parentheses, NOT and unary minus nest at most 256 deep and the tree
 * is at most 1000 levels deep (chains such as a + b + c + ... count), so that
 * the recursive parser, printer and evaluator never exhaust the stack.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "expr.h"
#include "pool.h"
#include "ts.h"
#include "vec.h"

#define T_NULL ((tide_type_t)0)
#define MAX_NEST 256
#define MAX_TREE 1000

enum {
  OP_LIT, OP_COL, OP_NEG, OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD,
  OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
  OP_AND, OP_OR, OP_NOT, OP_ISNULL, OP_IN, OP_BETWEEN, OP_LIKE,
  OP_CASE, OP_CAST, OP_FN, OP_AGG
};

/* How a literal was written (for the canonical text). */
enum { LK_INT, LK_DOUBLE, LK_STR, LK_BOOL, LK_NULL, LK_INTERVAL };

/* Scalar functions, in the order of the table below. */
enum { F_ABS, F_CEIL, F_COALESCE, F_CONCAT, F_FLOOR, F_LENGTH, F_LOWER, F_ROUND, F_SUBSTR, F_UPPER };

static const struct { const char *name; int min, max; } fns[] = {
    {"abs", 1, 1},   {"ceil", 1, 1},   {"coalesce", 1, -1}, {"concat", 1, -1}, {"floor", 1, 1},
    {"length", 1, 1}, {"lower", 1, 1}, {"round", 1, 2},     {"substr", 2, 3},  {"upper", 1, 1},
};
#define NFNS (sizeof fns / sizeof fns[0])

static const struct { const char *name; tide_agg_kind_t kind; } aggs[] = {
    {"count", TIDE_AGG_COUNT}, {"sum", TIDE_AGG_SUM},     {"min", TIDE_AGG_MIN},
    {"max", TIDE_AGG_MAX},     {"avg", TIDE_AGG_AVG},     {"first", TIDE_AGG_FIRST},
    {"last", TIDE_AGG_LAST},   {"count_distinct", TIDE_AGG_COUNT_DISTINCT},
};
#define NAGGS (sizeof aggs / sizeof aggs[0])

/* Interval units (Spark's day-time interval units, singular and plural),
 * largest first: the canonical text uses the largest that divides. */
static const struct { const char *name; int64_t ms; } iunits[] = {
    {"week", 604800000}, {"day", 86400000}, {"hour", 3600000}, {"minute", 60000}, {"second", 1000},
    {"millisecond", 1},
};
#define NIUNITS (sizeof iunits / sizeof iunits[0])

/* A LIKE pattern compiled once. Fast modes cover the common shapes; the
 * general one is a token string: a byte (0..255), ONE ('_') or STAR ('%'). */
enum { LM_GENERAL, LM_EXACT, LM_PREFIX, LM_SUFFIX, LM_CONTAINS, LM_ANY };
#define LT_ONE 256
#define LT_STAR 257

typedef struct like {
  int mode;
  char *lit; /* the literal of a fast mode */
  size_t litlen;
  uint16_t *tok; /* the general form */
  size_t ntok;
} like_t;

typedef struct node {
  uint8_t op, neg, fn, implicit, simple, has_else, is_const, cnull, nullable, distinct, lit;
  uint8_t ival;     /* an interval (int ms): a literal, or a sum of them; only ever added to a timestamp */
  tide_type_t type;
  int col;          /* OP_COL: input column; OP_AGG: tide_agg_kind_t */
  uint32_t pos;     /* byte offset in the text, for messages */
  uint32_t depth;   /* levels of the subtree */
  uint32_t nkids;
  struct node **kids;
  int64_t i; /* constant value: int, timestamp, bool (0/1) */
  double d;  /* constant value: double */
  char *s;   /* constant value: string or json (owned), also a string literal's text */
  size_t slen;
  like_t *like; /* OP_LIKE with a constant pattern */
} node_t;

struct tide_expr {
  node_t *root;           /* NULL for an aggregate (see arg) */
  tide_schema_t *schema;  /* one reference */
  char *text, *alias;
  tide_type_t type;
  int nullable;
  int col;                /* input column of a bare column, else -1 */
  tide_agg_kind_t agg;
  tide_expr_t *arg;       /* an aggregate's argument; NULL for count(*) */
  uint32_t *used;         /* input columns read, for the shape check */
  uint32_t nused;
};

static void like_free(like_t *l) {
  if (!l) return;
  free(l->lit);
  free(l->tok);
  free(l);
}

static void node_free(node_t *n) {
  if (!n) return;
  for (uint32_t k = 0; k < n->nkids; k++) node_free(n->kids[k]);
  free(n->kids);
  free(n->s);
  like_free(n->like);
  free(n);
}

static int is_idstart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_num(tide_type_t t) { return t == TIDE_T_INT || t == TIDE_T_DOUBLE; }
static int is_var(tide_type_t t) { return t == TIDE_T_STRING || t == TIDE_T_JSON; }
static const char *tname(tide_type_t t) { return t == T_NULL ? "null" : tide_type_name(t); }

/* ---------------------------------------------------------------- UTF-8 */

/* Bytes of the character starting with byte c (1 for a stray continuation
 * byte or an invalid lead, so that garbage still advances). */
static inline size_t u8len(unsigned char c) {
  return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

static size_t u8count(const char *p, size_t n) {
  size_t c = 0;
  for (size_t i = 0; i < n; i++) c += ((unsigned char)p[i] & 0xC0) != 0x80;
  return c;
}

/* ---------------------------------------------------------------- numbers as text */

/* The shortest "%.*e" form of v that reads back as v: its digits (no
 * trailing zeros, at least one), their count and the decimal exponent of
 * the first digit. Returns 1 when v is negative. */
static int shortest(double v, char dig[24], int *nd, int *ex) {
  char e[48];
  for (int p = 0; p < 17; p++) {
    snprintf(e, sizeof e, "%.*e", p, v);
    if (strtod(e, NULL) == v) break;
  }
  const char *q = e;
  int neg = 0;
  if (*q == '-') neg = 1, q++;
  *nd = 0;
  for (; *q && *q != 'e'; q++)
    if (*q != '.' && *nd < 23) dig[(*nd)++] = *q;
  *ex = *q ? atoi(q + 1) : 0;
  while (*nd > 1 && dig[*nd - 1] == '0') (*nd)--;
  return neg;
}

/* Format v as Spark (Java's Double.toString) prints it, with the shortest
 * digits that round-trip: 1.5, 2.0, 1.0E7, 1.0E-4, NaN, Infinity. out must
 * hold 40 bytes; returns the length. */
static int fmt_double(double v, char *out) {
  if (isnan(v)) return sprintf(out, "NaN");
  if (isinf(v)) return sprintf(out, v < 0 ? "-Infinity" : "Infinity");
  if (v == 0) return sprintf(out, signbit(v) ? "-0.0" : "0.0");
  char dig[24];
  int nd, ex;
  char *o = out;
  if (shortest(v, dig, &nd, &ex)) *o++ = '-';
  double a = fabs(v);
  if (a >= 1e-3 && a < 1e7) {
    if (ex >= 0) {
      for (int k = 0; k <= ex; k++) *o++ = k < nd ? dig[k] : '0';
      *o++ = '.';
      if (nd > ex + 1)
        for (int k = ex + 1; k < nd; k++) *o++ = dig[k];
      else
        *o++ = '0';
    } else {
      *o++ = '0';
      *o++ = '.';
      for (int k = 0; k < -ex - 1; k++) *o++ = '0';
      for (int k = 0; k < nd; k++) *o++ = dig[k];
    }
  } else {
    *o++ = dig[0];
    *o++ = '.';
    if (nd > 1)
      for (int k = 1; k < nd; k++) *o++ = dig[k];
    else
      *o++ = '0';
    o += sprintf(o, "E%d", ex);
  }
  *o = 0;
  return (int)(o - out);
}

/* Round v to d decimal places HALF_UP on its shortest decimal form, as
 * Spark's BigDecimal(v).setScale(d, HALF_UP): round(2.675, 2) is 2.68. */
static double round_half_up(double v, int64_t d) {
  if (!isfinite(v) || v == 0 || d > 400) return v;
  if (d == 0) return round(v); /* exact: x.5 is representable when it matters */
  char dig[24], m[64];
  int nd, ex;
  int neg = shortest(v, dig, &nd, &ex);
  int64_t keep = ex + 1 + d;
  if (keep >= nd) return v;
  if (keep < 0) return 0.0;
  int carry = dig[keep] >= '5';
  memcpy(m, dig, (size_t)keep);
  for (int64_t k = keep - 1; carry && k >= 0; k--) {
    if (m[k] == '9') {
      m[k] = '0';
    } else {
      m[k]++;
      carry = 0;
    }
  }
  char txt[96];
  snprintf(txt, sizeof txt, "%s%s%.*se%d", neg ? "-" : "", carry ? "1" : "", (int)keep, m,
           (int)(ex + 1 - keep));
  if (!keep && !carry) return 0.0;
  double r = strtod(txt, NULL);
  return r == 0 ? 0.0 : r;
}

/* round(v, d) for an int: unchanged for d >= 0, else HALF_UP to 10^-d
 * (wrapping, like all int arithmetic). */
static int64_t round_int(int64_t v, int64_t d) {
  if (d >= 0) return v;
  if (d < -18) return 0;
  int64_t q = 1;
  for (int64_t k = 0; k < -d; k++) q *= 10;
  int64_t rem = v % q;
  uint64_t base = (uint64_t)v - (uint64_t)rem;
  uint64_t arem = rem < 0 ? 0 - (uint64_t)rem : (uint64_t)rem;
  if (arem * 2 >= (uint64_t)q) base = rem < 0 ? base - (uint64_t)q : base + (uint64_t)q;
  return (int64_t)base;
}

/* double -> int64 as Java (and so Spark) does: truncation, NaN is 0, out of
 * range saturates. */
static int64_t d2i(double v) {
  if (v != v) return 0;
  if (v >= 9223372036854775807.0) return INT64_MAX;
  if (v <= -9223372036854775808.0) return INT64_MIN;
  return (int64_t)v;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static void trim(const char **p, size_t *n) {
  while (*n && is_space(**p)) (*p)++, (*n)--;
  while (*n && is_space((*p)[*n - 1])) (*n)--;
}

/* CAST(string AS int), Spark's non-ANSI rule: optional sign, digits, an
 * optional fraction that is dropped; surrounding spaces allowed. 0 on
 * success, -1 when it does not parse or overflows. */
static int str2i(const char *p, size_t n, int64_t *out) {
  trim(&p, &n);
  size_t k = 0;
  int neg = 0, digits = 0;
  if (k < n && (p[k] == '+' || p[k] == '-')) neg = p[k++] == '-';
  uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; k < n && p[k] >= '0' && p[k] <= '9'; k++, digits++) {
    unsigned dg = (unsigned)(p[k] - '0');
    if (v > (lim - dg) / 10) return -1;
    v = v * 10 + dg;
  }
  if (k < n && p[k] == '.')
    for (k++; k < n && p[k] >= '0' && p[k] <= '9'; k++) digits++;
  if (k != n || !digits) return -1;
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return 0;
}

/* CAST(string AS double): a decimal or exponent form, NaN, Infinity. */
static int str2d(const char *p, size_t n, double *out) {
  char buf[512];
  trim(&p, &n);
  if (!n || n >= sizeof buf || memchr(p, 'x', n) || memchr(p, 'X', n)) return -1;
  memcpy(buf, p, n);
  buf[n] = 0;
  char *end;
  *out = strtod(buf, &end);
  return end == buf + n ? 0 : -1;
}

/* CAST(string AS bool), Spark's words: t true y yes 1 / f false n no 0. */
static int str2b(const char *p, size_t n, int *out) {
  static const char *const yes[] = {"t", "true", "y", "yes", "1"}, *const no[] = {"f", "false", "n", "no", "0"};
  trim(&p, &n);
  for (int k = 0; k < 5; k++) {
    if (n == strlen(yes[k]) && !strncasecmp(p, yes[k], n)) return *out = 1, 0;
    if (n == strlen(no[k]) && !strncasecmp(p, no[k], n)) return *out = 0, 0;
  }
  return -1;
}

static int str2ts(const char *p, size_t n, int64_t *out) {
  trim(&p, &n);
  return tide_ts_parse(p, n, out) ? -1 : 0;
}

/* ---------------------------------------------------------------- LIKE */

/* Compile pattern p[0..n) into tokens (tok must hold n entries); returns the
 * count. '\' makes the next byte literal (a trailing '\' is literal). */
static size_t like_tokens(const char *p, size_t n, uint16_t *tok) {
  size_t m = 0;
  for (size_t k = 0; k < n; k++) {
    unsigned char c = (unsigned char)p[k];
    if (c == '\\' && k + 1 < n) {
      tok[m++] = (unsigned char)p[++k];
    } else if (c == '%') {
      if (!m || tok[m - 1] != LT_STAR) tok[m++] = LT_STAR;
    } else if (c == '_') {
      tok[m++] = LT_ONE;
    } else {
      tok[m++] = c;
    }
  }
  return m;
}

/* Wildcard match with a single backtrack point (the last '%'): O(n * m)
 * at worst, never exponential. '_' takes one UTF-8 character. */
static int like_general(const uint16_t *t, size_t m, const char *s, size_t n) {
  size_t si = 0, pi = 0, star = SIZE_MAX, mark = 0;
  while (si < n) {
    if (pi < m && t[pi] < 256 && (unsigned char)s[si] == t[pi]) {
      si++, pi++;
    } else if (pi < m && t[pi] == LT_ONE) {
      size_t l = u8len((unsigned char)s[si]);
      si += l < n - si ? l : n - si;
      pi++;
    } else if (pi < m && t[pi] == LT_STAR) {
      star = pi++;
      mark = si;
    } else if (star != SIZE_MAX) {
      pi = star + 1;
      size_t l = u8len((unsigned char)s[mark]);
      mark += l < n - mark ? l : n - mark;
      si = mark;
    } else {
      return 0;
    }
  }
  while (pi < m && t[pi] == LT_STAR) pi++;
  return pi == m;
}

/* Compile a constant pattern, recognising exact, prefix%, %suffix,
 * %contains% and %. NULL on out of memory. */
static like_t *like_compile(const char *p, size_t n) {
  like_t *l = calloc(1, sizeof *l);
  if (!l || !(l->tok = malloc((n ? n : 1) * sizeof(uint16_t))) || !(l->lit = malloc(n ? n : 1))) {
    like_free(l);
    return NULL;
  }
  l->ntok = like_tokens(p, n, l->tok);
  size_t m = l->ntok, lo = 0, hi = m, stars = 0;
  int ones = 0;
  for (size_t k = 0; k < m; k++) stars += l->tok[k] == LT_STAR, ones |= l->tok[k] == LT_ONE;
  int lead = m && l->tok[0] == LT_STAR, tail = m > 1 && l->tok[m - 1] == LT_STAR;
  l->mode = LM_GENERAL;
  if (ones) return l;
  if (lead) lo = 1;
  if (tail) hi = m - 1;
  if (stars != (size_t)lead + (size_t)tail) return l;
  for (size_t k = lo; k < hi; k++) l->lit[l->litlen++] = (char)l->tok[k];
  if (m == 1 && lead) l->mode = LM_ANY;
  else if (lead && tail) l->mode = LM_CONTAINS;
  else if (lead) l->mode = LM_SUFFIX;
  else if (tail) l->mode = LM_PREFIX;
  else l->mode = LM_EXACT;
  return l;
}

static int like_match(const like_t *l, const char *s, size_t n) {
  switch (l->mode) {
  case LM_ANY: return 1;
  case LM_EXACT: return n == l->litlen && (!n || !memcmp(s, l->lit, n));
  case LM_PREFIX: return n >= l->litlen && !memcmp(s, l->lit, l->litlen);
  case LM_SUFFIX: return n >= l->litlen && !memcmp(s + n - l->litlen, l->lit, l->litlen);
  case LM_CONTAINS: return !l->litlen || memmem(s, n, l->lit, l->litlen) != NULL;
  default: return like_general(l->tok, l->ntok, s, n);
  }
}

/* ---------------------------------------------------------------- values */

/* A value during evaluation: a constant (c == NULL), a borrowed column
 * (c points into the input batch) or an owned column (c == &own). A val_t
 * holding its own column is never copied, only moved with val_move. */
typedef struct val {
  const tide_col_t *c;
  tide_col_t own;
  uint8_t owned, cnull;
  tide_type_t type;
  int64_t i;
  double d;
  const char *s;
  size_t slen;
} val_t;

typedef struct ectx {
  const tide_col_t *cols; /* the input columns */
  uint32_t n;             /* rows */
  uint16_t *tok;          /* scratch for per-row LIKE patterns */
  size_t tokcap;
  char bad_ts[40];        /* a CAST to timestamp out of range (TIDE_ESCHEMA): the value */
} ectx_t;

static void val_free(val_t *v) {
  if (v->owned) tide_col_free(&v->own);
  v->owned = 0;
  v->c = NULL;
}

static void val_move(val_t *dst, val_t *src) {
  *dst = *src;
  if (src->owned) dst->c = &dst->own;
  src->owned = 0;
  src->c = NULL;
}

static inline int vnull(const val_t *v, uint32_t i) { return v->c ? tide_col_is_null(v->c, i) : v->cnull; }
static inline int64_t vi(const val_t *v, uint32_t i) { return v->c ? ((const int64_t *)v->c->values)[i] : v->i; }
static inline double vd(const val_t *v, uint32_t i) { return v->c ? ((const double *)v->c->values)[i] : v->d; }
static inline int vb(const val_t *v, uint32_t i) { return v->c ? ((const uint8_t *)v->c->values)[i] : (int)v->i; }
static inline const char *vs(const val_t *v, uint32_t i, size_t *len) {
  if (!v->c) return *len = v->slen, v->s ? v->s : "";
  return tide_col_str(v->c, i, len);
}

/* Make r an owned n-row column of type t (zeroed, no NULLs). */
static int val_out(val_t *r, tide_type_t t, uint32_t n) {
  memset(r, 0, sizeof *r);
  r->type = t;
  int rc = tide_col_init(&r->own, t == T_NULL ? TIDE_T_BOOL : t, n);
  if (rc) return rc;
  r->owned = 1;
  r->c = &r->own;
  return 0;
}

/* Reserve string bytes up front for a var column about to be filled. */
static int col_reserve(tide_col_t *c, size_t bytes) {
  if (bytes > TIDE_BATCH_MAX_DATA) bytes = TIDE_BATCH_MAX_DATA;
  if (bytes <= c->data_cap) return 0;
  char *p = realloc(c->data, bytes);
  if (!p) return -ENOMEM;
  c->data = p;
  c->data_cap = bytes;
  return 0;
}

/* After a kernel: count NULLs, zero the values of NULL rows (batch.h's
 * invariant) and drop a bitmap that has no NULL left. */
static void col_finish(tide_col_t *c, uint32_t n) {
  if (!c->valid) {
    c->null_count = 0;
    return;
  }
  uint32_t nulls = 0;
  size_t w = c->type == TIDE_T_BOOL ? 1 : 8;
  int var = is_var(c->type);
  for (uint32_t j = 0; j < (n + 7) / 8; j++) {
    uint8_t b = c->valid[j];
    if (j == n / 8) b |= (uint8_t)(0xff << (n & 7)); /* bits past the last row count as valid */
    if (b == 0xff) continue;
    for (uint32_t k = 0; k < 8 && j * 8 + k < n; k++) {
      if (b >> k & 1) continue;
      nulls++;
      if (!var) memset((char *)c->values + (size_t)(j * 8 + k) * w, 0, w);
    }
  }
  c->null_count = nulls;
  if (!nulls) {
    free(c->valid);
    c->valid = NULL;
  }
}

/* o's validity = the AND of a's and b's (either may be NULL or constant). */
static int valid_and(tide_col_t *o, const val_t *a, const val_t *b, uint32_t n) {
  const uint8_t *va = a && a->c ? a->c->valid : NULL, *vb_ = b && b->c ? b->c->valid : NULL;
  int cn = (a && !a->c && a->cnull) || (b && !b->c && b->cnull);
  size_t nb = ((size_t)n + 7) / 8;
  if (!va && !vb_ && !cn) return 0;
  if (!(o->valid = malloc(nb ? nb : 1))) return -ENOMEM;
  if (cn)
    memset(o->valid, 0, nb);
  else if (va && vb_)
    for (size_t j = 0; j < nb; j++) o->valid[j] = va[j] & vb_[j];
  else
    memcpy(o->valid, va ? va : vb_, nb);
  return 0;
}

/* A constant as an n-row column. */
static int broadcast(const val_t *v, uint32_t n, tide_col_t *o) {
  tide_type_t t = v->type == T_NULL ? TIDE_T_STRING : v->type;
  int rc = tide_col_init(o, t, n);
  if (rc) return rc;
  if (v->cnull) {
    size_t nb = ((size_t)n + 7) / 8;
    if (!(o->valid = calloc(1, nb ? nb : 1))) return tide_col_free(o), -ENOMEM;
    o->null_count = n;
    return 0;
  }
  switch (t) {
  case TIDE_T_INT:
  case TIDE_T_TIMESTAMP:
    for (uint32_t i = 0; i < n; i++) ((int64_t *)o->values)[i] = v->i;
    break;
  case TIDE_T_DOUBLE:
    for (uint32_t i = 0; i < n; i++) ((double *)o->values)[i] = v->d;
    break;
  case TIDE_T_BOOL: memset(o->values, v->i ? 1 : 0, n); break;
  default: {
    if ((uint64_t)v->slen * n > TIDE_BATCH_MAX_DATA) return tide_col_free(o), TIDE_ETOOBIG;
    if ((rc = col_reserve(o, v->slen * n))) return tide_col_free(o), rc;
    for (uint32_t i = 0; i < n; i++) tide_col_put_str(o, i, v->s, v->slen);
  }
  }
  return 0;
}

/* ---------------------------------------------------------------- kernels: arithmetic */

/* The three layouts of a binary loop: column op column, column op
 * constant, constant op column; EXPR reads va_ and vb_. */
#define BIN_LOOP(T, EXPR)                                                   \
  do {                                                                      \
    if (A && B) {                                                           \
      for (uint32_t i = 0; i < n; i++) {                                    \
        T va_ = A[i], vb_ = B[i];                                           \
        o[i] = (EXPR);                                                      \
      }                                                                     \
    } else if (A) {                                                         \
      T vb_ = bs;                                                           \
      for (uint32_t i = 0; i < n; i++) {                                    \
        T va_ = A[i];                                                       \
        o[i] = (EXPR);                                                      \
      }                                                                     \
    } else {                                                                \
      T va_ = as;                                                           \
      for (uint32_t i = 0; i < n; i++) {                                    \
        T vb_ = B[i];                                                       \
        o[i] = (EXPR);                                                      \
      }                                                                     \
    }                                                                       \
  } while (0)

#define WRAP(x) ((int64_t)(x))

/* a op b for + - * / % on two ints (wrapping) or two doubles; x / 0 and
 * x % 0 are NULL. When an operand is an owned column of the result's type
 * (an intermediate, as in (a * 2) + 1), its values buffer is reused for the
 * result, which saves an allocation (and, for big batches, the page faults). */
static int k_arith(int op, tide_type_t t, val_t *a, val_t *b, uint32_t n, val_t *r) {
  val_t tmp;
  int rc;
  memset(&tmp, 0, sizeof tmp);
  if (!a->c && !b->c) {
    if ((rc = broadcast(a, n, &tmp.own))) return rc;
    tmp.owned = 1, tmp.c = &tmp.own, tmp.type = a->type;
    a = &tmp;
  }
  /* not the divisor's: the NULL pass after the loop reads it */
  int div = op == OP_DIV || op == OP_MOD;
  val_t *steal = a->owned && a->own.type == t ? a : !div && b->owned && b->own.type == t ? b : NULL;
  memset(r, 0, sizeof *r);
  r->type = t;
  r->own.type = t;
  r->owned = 1;
  r->c = &r->own;
  if (steal) {
    r->own.values = steal->own.values; /* read through av or bv below, written through o */
    steal->own.values = NULL;
  } else if ((rc = tide_col_init(&r->own, t, n))) {
    goto out;
  }
  if ((rc = valid_and(&r->own, a, b, n))) goto out;
  if ((!a->c && a->cnull) || (!b->c && b->cnull)) goto done;
  const void *av = steal == a ? r->own.values : a->c ? a->c->values : NULL;
  const void *bv = steal == b ? r->own.values : b->c ? b->c->values : NULL;
  if (t == TIDE_T_INT || t == TIDE_T_TIMESTAMP) { /* timestamp +/- interval: ms */
    const int64_t *A = av, *B = bv;
    int64_t as = a->i, bs = b->i, *o = r->own.values;
    switch (op) {
    case OP_ADD: BIN_LOOP(int64_t, WRAP((uint64_t)va_ + (uint64_t)vb_)); break;
    case OP_SUB: BIN_LOOP(int64_t, WRAP((uint64_t)va_ - (uint64_t)vb_)); break;
    case OP_MUL: BIN_LOOP(int64_t, WRAP((uint64_t)va_ * (uint64_t)vb_)); break;
    default: BIN_LOOP(int64_t, (vb_ == 0 || vb_ == -1) ? 0 : va_ % vb_); break;
    }
    if (op == OP_MOD) {
      if (!B && bs == 0) {
        for (uint32_t i = 0; i < n; i++)
          if ((rc = tide_col_set_null(&r->own, i, n))) goto out;
      } else if (B) {
        for (uint32_t i = 0; i < n; i++)
          if (!B[i] && (rc = tide_col_set_null(&r->own, i, n))) goto out;
      }
    }
  } else {
    const double *A = av, *B = bv;
    double as = a->d, bs = b->d, *o = r->own.values;
    switch (op) {
    case OP_ADD: BIN_LOOP(double, va_ + vb_); break;
    case OP_SUB: BIN_LOOP(double, va_ - vb_); break;
    case OP_MUL: BIN_LOOP(double, va_ * vb_); break;
    case OP_DIV: BIN_LOOP(double, va_ / vb_); break;
    default: BIN_LOOP(double, vb_ == 0 ? 0 : fmod(va_, vb_)); break;
    }
    if (op == OP_DIV || op == OP_MOD) {
      if (!B && bs == 0) {
        for (uint32_t i = 0; i < n; i++)
          if ((rc = tide_col_set_null(&r->own, i, n))) goto out;
      } else if (B) {
        int any = 0;
        for (uint32_t i = 0; i < n; i++) any |= B[i] == 0;
        for (uint32_t i = 0; any && i < n; i++)
          if (B[i] == 0 && (rc = tide_col_set_null(&r->own, i, n))) goto out;
      }
    }
  }
done:
  col_finish(&r->own, n);
out:
  val_free(&tmp);
  if (rc) val_free(r);
  return rc;
}

/* -a: wrapping for ints (-INT64_MIN is INT64_MIN). */
static int k_neg(const val_t *a, uint32_t n, val_t *r) {
  int rc;
  if ((rc = val_out(r, a->type, n)) || (rc = valid_and(&r->own, a, NULL, n))) return val_free(r), rc;
  if (a->type == TIDE_T_INT) {
    int64_t *o = r->own.values;
    for (uint32_t i = 0; i < n; i++) o[i] = WRAP(0 - (uint64_t)vi(a, i));
  } else {
    double *o = r->own.values;
    for (uint32_t i = 0; i < n; i++) o[i] = -vd(a, i);
  }
  col_finish(&r->own, n);
  return 0;
}

/* ---------------------------------------------------------------- kernels: comparison */

/* Doubles compare as in Spark: NaN equals NaN and is above everything. */
#define D_EQ(x, y) (((x) == (y)) | (((x) != (x)) & ((y) != (y))))
#define D_LT(x, y) (((x) < (y)) | (((x) == (x)) & ((y) != (y))))
#define D_LE(x, y) (((x) <= (y)) | ((y) != (y)))
#define I_EQ(x, y) ((x) == (y))
#define I_LT(x, y) ((x) < (y))
#define I_LE(x, y) ((x) <= (y))

#define CMP_LOOP(T, EXPR)                                \
  do {                                                   \
    if (B) {                                             \
      for (uint32_t i = 0; i < n; i++) {                 \
        T va_ = A[i], vb_ = B[i];                        \
        o[i] = (uint8_t)(EXPR);                          \
      }                                                  \
    } else {                                             \
      T vb_ = bs;                                        \
      for (uint32_t i = 0; i < n; i++) {                 \
        T va_ = A[i];                                    \
        o[i] = (uint8_t)(EXPR);                          \
      }                                                  \
    }                                                    \
  } while (0)

#define CMP_OPS(T, EQ, LT, LE)                                  \
  do {                                                          \
    switch (op) {                                               \
    case OP_EQ: CMP_LOOP(T, EQ(va_, vb_)); break;               \
    case OP_NE: CMP_LOOP(T, !EQ(va_, vb_)); break;              \
    case OP_LT: CMP_LOOP(T, LT(va_, vb_)); break;               \
    case OP_LE: CMP_LOOP(T, LE(va_, vb_)); break;               \
    case OP_GT: CMP_LOOP(T, LT(vb_, va_)); break;               \
    default: CMP_LOOP(T, LE(vb_, va_)); break;                  \
    }                                                           \
  } while (0)

static int flip(int op) {
  switch (op) {
  case OP_LT: return OP_GT;
  case OP_LE: return OP_GE;
  case OP_GT: return OP_LT;
  case OP_GE: return OP_LE;
  default: return op;
  }
}

static int bytes_cmp(const char *p, size_t pn, const char *q, size_t qn) {
  size_t m = pn < qn ? pn : qn;
  int c = m ? memcmp(p, q, m) : 0;
  return c ? c : (pn > qn) - (pn < qn);
}

/* a op b for = != < <= > >= on operands of one storage class. */
static int k_cmp(int op, const val_t *a, const val_t *b, uint32_t n, val_t *r) {
  val_t tmp;
  int rc;
  memset(&tmp, 0, sizeof tmp);
  if (!a->c && !b->c) {
    if ((rc = broadcast(a, n, &tmp.own))) return rc;
    tmp.owned = 1, tmp.c = &tmp.own, tmp.type = a->type;
    a = &tmp;
  }
  if (!a->c) {
    const val_t *s = a;
    a = b, b = s, op = flip(op);
  }
  if ((rc = val_out(r, TIDE_T_BOOL, n)) || (rc = valid_and(&r->own, a, b, n))) goto out;
  if (!b->c && b->cnull) goto done;
  uint8_t *o = r->own.values;
  switch (a->type) {
  case TIDE_T_INT:
  case TIDE_T_TIMESTAMP: {
    const int64_t *A = a->c->values, *B = b->c ? b->c->values : NULL;
    int64_t bs = b->i;
    CMP_OPS(int64_t, I_EQ, I_LT, I_LE);
    break;
  }
  case TIDE_T_DOUBLE: {
    const double *A = a->c->values, *B = b->c ? b->c->values : NULL;
    double bs = b->d;
    CMP_OPS(double, D_EQ, D_LT, D_LE);
    break;
  }
  case TIDE_T_BOOL: {
    const uint8_t *A = a->c->values, *B = b->c ? b->c->values : NULL;
    uint8_t bs = (uint8_t)b->i;
    CMP_OPS(uint8_t, I_EQ, I_LT, I_LE);
    break;
  }
  default:
    for (uint32_t i = 0; i < n; i++) {
      size_t pn, qn;
      const char *p = vs(a, i, &pn), *q = vs(b, i, &qn);
      int c = (op == OP_EQ || op == OP_NE) ? (pn != qn || (pn && memcmp(p, q, pn))) : bytes_cmp(p, pn, q, qn);
      switch (op) {
      case OP_EQ: o[i] = c == 0; break;
      case OP_NE: o[i] = c != 0; break;
      case OP_LT: o[i] = c < 0; break;
      case OP_LE: o[i] = c <= 0; break;
      case OP_GT: o[i] = c > 0; break;
      default: o[i] = c >= 0; break;
      }
    }
  }
done:
  col_finish(&r->own, n);
out:
  val_free(&tmp);
  if (rc) val_free(r);
  return rc;
}

/* ---------------------------------------------------------------- kernels: logic */

/* a AND b, a OR b in three-valued logic. */
static int k_logic(int op, const val_t *a, const val_t *b, uint32_t n, val_t *r) {
  int rc = val_out(r, TIDE_T_BOOL, n);
  if (rc) return rc;
  uint8_t *o = r->own.values;
  if (!(a->c && a->c->valid) && !(b->c && b->c->valid) && !(!a->c && a->cnull) && !(!b->c && b->cnull)) {
    if (a->c && b->c) {
      const uint8_t *A = a->c->values, *B = b->c->values;
      if (op == OP_AND)
        for (uint32_t i = 0; i < n; i++) o[i] = A[i] & B[i];
      else
        for (uint32_t i = 0; i < n; i++) o[i] = A[i] | B[i];
    } else if (op == OP_AND) {
      for (uint32_t i = 0; i < n; i++) o[i] = (uint8_t)(vb(a, i) & vb(b, i));
    } else {
      for (uint32_t i = 0; i < n; i++) o[i] = (uint8_t)(vb(a, i) | vb(b, i));
    }
    return 0;
  }
  for (uint32_t i = 0; i < n; i++) {
    int ka = !vnull(a, i), kb = !vnull(b, i);
    int x = ka && vb(a, i), y = kb && vb(b, i), known;
    if (op == OP_AND) {
      known = (ka && kb) || (ka && !x) || (kb && !y);
      o[i] = (uint8_t)(x && y);
    } else {
      known = (ka && kb) || x || y;
      o[i] = (uint8_t)(x || y);
    }
    if (!known && (rc = tide_col_set_null(&r->own, i, n))) return val_free(r), rc;
  }
  col_finish(&r->own, n);
  return 0;
}

static int k_not(const val_t *a, uint32_t n, val_t *r) {
  int rc;
  if ((rc = val_out(r, TIDE_T_BOOL, n)) || (rc = valid_and(&r->own, a, NULL, n))) return val_free(r), rc;
  uint8_t *o = r->own.values;
  for (uint32_t i = 0; i < n; i++) o[i] = (uint8_t)!vb(a, i);
  col_finish(&r->own, n);
  return 0;
}

static int k_isnull(const val_t *a, int neg, uint32_t n, val_t *r) {
  int rc = val_out(r, TIDE_T_BOOL, n);
  if (rc) return rc;
  uint8_t *o = r->own.values;
  if (a->c && !a->c->valid)
    memset(o, neg, n);
  else
    for (uint32_t i = 0; i < n; i++) o[i] = (uint8_t)(vnull(a, i) ^ neg);
  return 0;
}

/* ---------------------------------------------------------------- kernels: strings */

/* a [NOT] LIKE p: with the node's compiled pattern when p is constant, else
 * each row's pattern compiled into the context's scratch tokens. */
static int k_like(const node_t *nd, ectx_t *x, const val_t *a, const val_t *p, uint32_t n, val_t *r) {
  int rc;
  if ((rc = val_out(r, TIDE_T_BOOL, n)) || (rc = valid_and(&r->own, a, p, n))) return val_free(r), rc;
  uint8_t *o = r->own.values;
  const uint8_t *valid = r->own.valid;
  for (uint32_t i = 0; i < n; i++) {
    if (valid && !(valid[i >> 3] >> (i & 7) & 1)) continue;
    size_t sn, pn;
    const char *s = vs(a, i, &sn);
    int m;
    if (nd->like) {
      m = like_match(nd->like, s, sn);
    } else {
      const char *pat = vs(p, i, &pn);
      if (pn > x->tokcap) {
        size_t cap = pn < 64 ? 64 : pn * 2;
        uint16_t *t = realloc(x->tok, cap * sizeof *t);
        if (!t) return val_free(r), -ENOMEM;
        x->tok = t, x->tokcap = cap;
      }
      m = like_general(x->tok, like_tokens(pat, pn, x->tok), s, sn);
    }
    o[i] = (uint8_t)(m ^ nd->neg);
  }
  col_finish(&r->own, n);
  return 0;
}

/* Append the text of row i of v (any type but json) to string column o's
 * row i, as CAST(v AS string) does. */
static int put_text(tide_col_t *o, uint32_t i, const val_t *v) {
  char buf[48];
  int len;
  switch (v->type) {
  case TIDE_T_INT: len = snprintf(buf, sizeof buf, "%" PRId64, vi(v, i)); break;
  case TIDE_T_DOUBLE: len = fmt_double(vd(v, i), buf); break;
  case TIDE_T_BOOL: len = sprintf(buf, "%s", vb(v, i) ? "true" : "false"); break;
  case TIDE_T_TIMESTAMP: len = tide_ts_format(vi(v, i), buf); break;
  default: {
    size_t sn;
    const char *s = vs(v, i, &sn);
    return tide_col_put_str(o, i, s, sn);
  }
  }
  return tide_col_put_str(o, i, buf, (size_t)len);
}

/* r[i] = src[sel[i]][i], or NULL when sel[i] >= nsrc; every src has type t. */
static int gather_sel(tide_type_t t, val_t *const *src, uint32_t nsrc, const uint32_t *sel, uint32_t n,
                      val_t *r) {
  int rc = val_out(r, t, n);
  if (rc) return rc;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t k = sel[i];
    const val_t *v = k < nsrc ? src[k] : NULL;
    if (!v || vnull(v, i)) {
      if (is_var(t)) tide_col_put_str(&r->own, i, "", 0);
      if ((rc = tide_col_set_null(&r->own, i, n))) return val_free(r), rc;
      continue;
    }
    switch (t) {
    case TIDE_T_INT:
    case TIDE_T_TIMESTAMP: ((int64_t *)r->own.values)[i] = vi(v, i); break;
    case TIDE_T_DOUBLE: ((double *)r->own.values)[i] = vd(v, i); break;
    case TIDE_T_BOOL: ((uint8_t *)r->own.values)[i] = (uint8_t)vb(v, i); break;
    default: {
      size_t sn;
      const char *s = vs(v, i, &sn);
      if ((rc = tide_col_put_str(&r->own, i, s, sn))) return val_free(r), rc;
    }
    }
  }
  col_finish(&r->own, n);
  return 0;
}

/* A number cast to timestamp must be in the valid range (schema.h), as
 * every timestamp that enters tide is: else TIDE_ESCHEMA, the value in x. */
static int ts_range(ectx_t *x, int64_t v, double dv, int from_int) {
  if (from_int ? tide_ts_valid(v) : (dv >= (double)TIDE_TS_MIN && dv <= (double)TIDE_TS_MAX)) return 0;
  if (from_int) snprintf(x->bad_ts, sizeof x->bad_ts, "%lld", (long long)v);
  else snprintf(x->bad_ts, sizeof x->bad_ts, "%.15g", dv);
  return TIDE_ESCHEMA;
}

/* Timestamp arithmetic (timestamp +/- interval) must stay in the valid
 * range: a sum past it (also one that wrapped around int64, which lands far
 * outside it) is TIDE_ESCHEMA with the value in x, as a CAST's is. */
static int ts_result(ectx_t *x, const val_t *r, uint32_t n) {
  const tide_col_t *c = r->owned ? &r->own : r->c;
  if (!c) return r->cnull ? 0 : ts_range(x, r->i, 0, 1);
  for (uint32_t i = 0; i < n; i++) {
    if (tide_col_is_null(c, i)) continue;
    int64_t v = tide_col_i64(c, i);
    int rc = ts_range(x, v, 0, 1);
    /* a timestamp (|t| < 2^48) plus an interval that wrapped lands beyond +-2^62 */
    if (rc && (v > INT64_MAX / 2 || v < INT64_MIN / 2)) snprintf(x->bad_ts, sizeof x->bad_ts, "a sum past int64");
    if (rc) return rc;
  }
  return 0;
}

/* CAST(a AS to), the matrix of expr.h; unparseable strings give NULL, a
 * number outside the timestamp range cast to timestamp is an error. */
static int k_cast(ectx_t *x, const val_t *a, tide_type_t to, uint32_t n, val_t *r) {
  tide_type_t from = a->type;
  int rc;
  if ((rc = val_out(r, to, n)) || (rc = valid_and(&r->own, a, NULL, n))) return val_free(r), rc;
  tide_col_t *o = &r->own;
  const uint8_t *valid = o->valid;
#define ISNUL(i) (valid && !(valid[(i) >> 3] >> ((i) & 7) & 1))
  if (to == TIDE_T_STRING) {
    if (a->c && is_var(from) && (rc = col_reserve(o, a->c->data_len))) return val_free(r), rc;
    for (uint32_t i = 0; i < n; i++) {
      rc = ISNUL(i) ? tide_col_put_str(o, i, "", 0) : put_text(o, i, a);
      if (rc) return val_free(r), rc;
    }
  } else if (from == TIDE_T_STRING) {
    for (uint32_t i = 0; i < n; i++) {
      if (ISNUL(i)) continue;
      size_t sn;
      const char *s = vs(a, i, &sn);
      int bad, bv;
      switch (to) {
      case TIDE_T_INT: bad = str2i(s, sn, &((int64_t *)o->values)[i]); break;
      case TIDE_T_TIMESTAMP:
        bad = str2ts(s, sn, &((int64_t *)o->values)[i]);
        if (!bad && (rc = ts_range(x, ((int64_t *)o->values)[i], 0, 1))) return val_free(r), rc;
        break;
      case TIDE_T_DOUBLE: bad = str2d(s, sn, &((double *)o->values)[i]); break;
      default:
        bad = str2b(s, sn, &bv);
        ((uint8_t *)o->values)[i] = (uint8_t)(!bad && bv);
      }
      if (bad && (rc = tide_col_set_null(o, i, n))) return val_free(r), rc;
    }
  } else if (to == TIDE_T_DOUBLE) {
    double *d = o->values;
    if (from == TIDE_T_BOOL)
      for (uint32_t i = 0; i < n; i++) d[i] = vb(a, i);
    else if (a->c) {
      const int64_t *s = a->c->values;
      for (uint32_t i = 0; i < n; i++) d[i] = (double)s[i];
    } else
      for (uint32_t i = 0; i < n; i++) d[i] = (double)vi(a, i);
  } else if (to == TIDE_T_BOOL) {
    uint8_t *b = o->values;
    for (uint32_t i = 0; i < n; i++) b[i] = (uint8_t)(from == TIDE_T_DOUBLE ? vd(a, i) != 0 : vi(a, i) != 0);
  } else { /* int or timestamp */
    int64_t *w = o->values;
    for (uint32_t i = 0; i < n; i++) {
      if (from == TIDE_T_BOOL) {
        w[i] = vb(a, i);
      } else if (from != TIDE_T_DOUBLE) {
        w[i] = vi(a, i);
        if (to == TIDE_T_TIMESTAMP && !ISNUL(i) && (rc = ts_range(x, w[i], 0, 1))) return val_free(r), rc;
      } else {
        double dv = vd(a, i);
        w[i] = d2i(dv);
        if (to == TIDE_T_TIMESTAMP && !isfinite(dv) && !ISNUL(i) && (rc = tide_col_set_null(o, i, n)))
          return val_free(r), rc;
        if (to == TIDE_T_TIMESTAMP && isfinite(dv) && !ISNUL(i) && (rc = ts_range(x, 0, dv, 0)))
          return val_free(r), rc;
      }
    }
  }
#undef ISNUL
  col_finish(o, n);
  return 0;
}

/* The scalar functions; kv are the evaluated arguments. */
static int k_fn(const node_t *nd, val_t *kv, uint32_t n, val_t *r) {
  int rc;
  const val_t *a = &kv[0];
  uint32_t na = nd->nkids;
  if (nd->fn == F_CONCAT) {
    if ((rc = val_out(r, TIDE_T_STRING, n))) return rc;
    for (uint32_t i = 0; i < n; i++) {
      int isnull = 0;
      for (uint32_t k = 0; k < na; k++) isnull |= vnull(&kv[k], i);
      if (isnull) {
        tide_col_put_str(&r->own, i, "", 0);
        if ((rc = tide_col_set_null(&r->own, i, n))) return val_free(r), rc;
        continue;
      }
      if ((rc = tide_col_put_str(&r->own, i, "", 0))) return val_free(r), rc;
      for (uint32_t k = 0; k < na; k++)
        if ((rc = put_text(&r->own, i, &kv[k]))) return val_free(r), rc;
    }
    col_finish(&r->own, n);
    return 0;
  }
  if (nd->fn == F_SUBSTR) {
    if ((rc = val_out(r, TIDE_T_STRING, n))) return rc;
    for (uint32_t i = 0; i < n; i++) {
      if (vnull(a, i) || vnull(&kv[1], i) || (na > 2 && vnull(&kv[2], i))) {
        tide_col_put_str(&r->own, i, "", 0);
        if ((rc = tide_col_set_null(&r->own, i, n))) return val_free(r), rc;
        continue;
      }
      size_t sn;
      const char *s = vs(a, i, &sn);
      int64_t pos = vi(&kv[1], i), len = na > 2 ? vi(&kv[2], i) : INT64_MAX;
      int64_t start = pos > 0 ? pos - 1 : pos < 0 ? (int64_t)u8count(s, sn) + pos : 0;
      int64_t end = start > 0 && len > INT64_MAX - start ? INT64_MAX : start + len;
      size_t b0 = 0, b1 = 0;
      if (end > start) {
        int64_t c = 0;
        while (b0 < sn && c < start) b0 += u8len((unsigned char)s[b0]), c++;
        if (b0 > sn) b0 = sn;
        b1 = b0;
        while (b1 < sn && c < end) b1 += u8len((unsigned char)s[b1]), c++;
        if (b1 > sn) b1 = sn;
      }
      if ((rc = tide_col_put_str(&r->own, i, s + b0, b1 - b0))) return val_free(r), rc;
    }
    col_finish(&r->own, n);
    return 0;
  }
  tide_type_t t = nd->type;
  if ((rc = val_out(r, t, n)) || (rc = valid_and(&r->own, a, NULL, n))) return val_free(r), rc;
  tide_col_t *o = &r->own;
  switch (nd->fn) {
  case F_LOWER:
  case F_UPPER: {
    if (a->c && (rc = col_reserve(o, a->c->data_len))) return val_free(r), rc;
    int up = nd->fn == F_UPPER;
    for (uint32_t i = 0; i < n; i++) {
      size_t sn;
      const char *s = vs(a, i, &sn);
      if (vnull(a, i)) sn = 0;
      if ((rc = tide_col_put_str(o, i, s, sn))) return val_free(r), rc;
      char *w = o->data + o->data_len - sn;
      for (size_t k = 0; k < sn; k++) {
        char c = w[k];
        if (up && c >= 'a' && c <= 'z') w[k] = (char)(c - 32);
        else if (!up && c >= 'A' && c <= 'Z') w[k] = (char)(c + 32);
      }
    }
    break;
  }
  case F_LENGTH:
    for (uint32_t i = 0; i < n; i++) {
      size_t sn;
      const char *s = vs(a, i, &sn);
      ((int64_t *)o->values)[i] = (int64_t)u8count(s, sn);
    }
    break;
  case F_ABS:
    if (t == TIDE_T_INT)
      for (uint32_t i = 0; i < n; i++) {
        int64_t v = vi(a, i);
        ((int64_t *)o->values)[i] = v < 0 ? WRAP(0 - (uint64_t)v) : v;
      }
    else
      for (uint32_t i = 0; i < n; i++) ((double *)o->values)[i] = fabs(vd(a, i));
    break;
  case F_ROUND: {
    int64_t d = na > 1 ? nd->kids[1]->i : 0;
    if (t == TIDE_T_INT)
      for (uint32_t i = 0; i < n; i++) ((int64_t *)o->values)[i] = round_int(vi(a, i), d);
    else
      for (uint32_t i = 0; i < n; i++) ((double *)o->values)[i] = round_half_up(vd(a, i), d);
    break;
  }
  default: /* floor, ceil */
    if (a->type == TIDE_T_INT)
      for (uint32_t i = 0; i < n; i++) ((int64_t *)o->values)[i] = vi(a, i);
    else if (nd->fn == F_FLOOR)
      for (uint32_t i = 0; i < n; i++) ((int64_t *)o->values)[i] = d2i(floor(vd(a, i)));
    else
      for (uint32_t i = 0; i < n; i++) ((int64_t *)o->values)[i] = d2i(ceil(vd(a, i)));
  }
  col_finish(o, n);
  return 0;
}

/* ---------------------------------------------------------------- evaluation */

static int ev(const node_t *nd, ectx_t *x, val_t *r);

/* x IN (items): an OR, in three-valued logic, of x = item. */
static int ev_in(const node_t *nd, ectx_t *x, val_t *kv, val_t *r) {
  val_t acc, eq, t;
  int rc = 0;
  memset(&acc, 0, sizeof acc);
  acc.type = TIDE_T_BOOL; /* constant FALSE */
  for (uint32_t k = 1; k < nd->nkids && !rc; k++) {
    if (!(rc = k_cmp(OP_EQ, &kv[0], &kv[k], x->n, &eq))) {
      rc = k_logic(OP_OR, &acc, &eq, x->n, &t);
      val_free(&eq);
      val_free(&acc);
      if (!rc) val_move(&acc, &t);
    }
  }
  if (!rc && nd->neg) {
    rc = k_not(&acc, x->n, r);
    val_free(&acc);
  } else if (!rc) {
    val_move(r, &acc);
  }
  val_free(&acc);
  return rc;
}

static int ev_between(const node_t *nd, ectx_t *x, val_t *kv, val_t *r) {
  val_t ge, le, both;
  int rc;
  if ((rc = k_cmp(OP_GE, &kv[0], &kv[1], x->n, &ge))) return rc;
  if ((rc = k_cmp(OP_LE, &kv[0], &kv[2], x->n, &le))) return val_free(&ge), rc;
  rc = k_logic(OP_AND, &ge, &le, x->n, nd->neg ? &both : r);
  val_free(&ge);
  val_free(&le);
  if (!rc && nd->neg) {
    rc = k_not(&both, x->n, r);
    val_free(&both);
  }
  return rc;
}

/* CASE and coalesce: a selection vector says which argument each row takes. */
static int ev_select(const node_t *nd, ectx_t *x, val_t *kv, val_t *r) {
  uint32_t n = x->n, nk = nd->nkids;
  uint32_t *sel = malloc((n ? n : 1) * sizeof *sel);
  val_t **src = malloc(nk * sizeof *src);
  uint32_t nsrc = 0;
  int rc = 0;
  if (!sel || !src) {
    rc = -ENOMEM;
    goto out;
  }
  if (nd->op == OP_FN) { /* coalesce */
    for (uint32_t k = 0; k < nk; k++) src[k] = &kv[k];
    nsrc = nk;
    for (uint32_t i = 0; i < n; i++) sel[i] = nk;
    for (uint32_t k = nk; k-- > 0;)
      for (uint32_t i = 0; i < n; i++)
        if (!vnull(&kv[k], i)) sel[i] = k;
  } else {
    uint32_t off = nd->simple, nb = (nk - off - nd->has_else) / 2;
    for (uint32_t b = 0; b < nb; b++) src[b] = &kv[off + 2 * b + 1];
    if (nd->has_else) src[nb] = &kv[nk - 1];
    nsrc = nb + nd->has_else;
    for (uint32_t i = 0; i < n; i++) sel[i] = nb;
    for (uint32_t b = nb; b-- > 0;) {
      val_t eq, *cond = &kv[off + 2 * b];
      if (nd->simple) {
        if ((rc = k_cmp(OP_EQ, &kv[0], cond, n, &eq))) goto out;
        cond = &eq;
      }
      for (uint32_t i = 0; i < n; i++)
        if (!vnull(cond, i) && vb(cond, i)) sel[i] = b;
      if (nd->simple) val_free(&eq);
    }
  }
  rc = gather_sel(nd->type, src, nsrc, sel, n, r);
out:
  free(sel);
  free(src);
  return rc;
}

/* Evaluate node nd over x->n rows into r (children first). */
static int ev(const node_t *nd, ectx_t *x, val_t *r) {
  memset(r, 0, sizeof *r);
  r->type = nd->type;
  if (nd->is_const) {
    r->cnull = nd->cnull, r->i = nd->i, r->d = nd->d, r->s = nd->s, r->slen = nd->slen;
    return 0;
  }
  if (nd->op == OP_COL) {
    r->c = &x->cols[nd->col];
    return 0;
  }
  if (nd->op == OP_AGG) return TIDE_EINVAL;
  val_t stackv[3], *kv = nd->nkids <= 3 ? stackv : calloc(nd->nkids, sizeof *kv);
  uint32_t done = 0;
  int rc = 0;
  if (!kv) return -ENOMEM;
  for (; done < nd->nkids && !rc; done++) rc = ev(nd->kids[done], x, &kv[done]);
  if (!rc) {
    switch (nd->op) {
    case OP_NEG: rc = k_neg(&kv[0], x->n, r); break;
    case OP_ADD:
    case OP_SUB:
    case OP_MUL:
    case OP_DIV:
    case OP_MOD:
      rc = k_arith(nd->op, nd->type, &kv[0], &kv[1], x->n, r); /* may take a kid's buffer */
      if (!rc && nd->type == TIDE_T_TIMESTAMP) rc = ts_result(x, r, x->n);
      break;
    case OP_EQ:
    case OP_NE:
    case OP_LT:
    case OP_LE:
    case OP_GT:
    case OP_GE: rc = k_cmp(nd->op, &kv[0], &kv[1], x->n, r); break;
    case OP_AND:
    case OP_OR: rc = k_logic(nd->op, &kv[0], &kv[1], x->n, r); break;
    case OP_NOT: rc = k_not(&kv[0], x->n, r); break;
    case OP_ISNULL: rc = k_isnull(&kv[0], nd->neg, x->n, r); break;
    case OP_IN: rc = ev_in(nd, x, kv, r); break;
    case OP_BETWEEN: rc = ev_between(nd, x, kv, r); break;
    case OP_LIKE: rc = k_like(nd, x, &kv[0], &kv[1], x->n, r); break;
    case OP_CASE: rc = ev_select(nd, x, kv, r); break;
    case OP_CAST:
      if (kv[0].type == nd->type) {
        val_move(r, &kv[0]);
        break;
      }
      rc = k_cast(x, &kv[0], nd->type, x->n, r);
      break;
    default: rc = nd->fn == F_COALESCE ? ev_select(nd, x, kv, r) : k_fn(nd, kv, x->n, r);
    }
  }
  for (uint32_t k = 0; k < done; k++) val_free(&kv[k]);
  if (kv != stackv) free(kv);
  r->type = nd->type;
  if (r->owned) r->own.type = nd->type == T_NULL ? r->own.type : nd->type;
  return rc;
}

/* ---------------------------------------------------------------- canonical text */

enum {
  K_EOF, K_NUM, K_STR, K_ID, K_QID, K_LP, K_RP, K_COMMA, K_PLUS, K_MINUS, K_STAR, K_SLASH, K_PCT,
  K_EQ, K_NE, K_LT, K_LE, K_GT, K_GE, K_BAD,
  K_AND, K_OR, K_NOT, K_IS, K_NULL, K_IN, K_BETWEEN, K_LIKE, K_CASE, K_WHEN, K_THEN, K_ELSE,
  K_END, K_CAST, K_AS, K_TRUE, K_FALSE, K_DISTINCT
};
static const char *const keywords[] = {"AND",  "OR",   "NOT",  "IS",   "NULL", "IN",   "BETWEEN",
                                       "LIKE", "CASE", "WHEN", "THEN", "ELSE", "END",  "CAST",
                                       "AS",   "TRUE", "FALSE", "DISTINCT"};
#define NKW (sizeof keywords / sizeof keywords[0])

static int keyword(const char *p, size_t n) {
  for (size_t k = 0; k < NKW; k++)
    if (strlen(keywords[k]) == n && !strncasecmp(keywords[k], p, n)) return K_AND + (int)k;
  return K_ID;
}

static const char *opname(int op) {
  static const char *const names[] = {[OP_ADD] = "+", [OP_SUB] = "-", [OP_MUL] = "*", [OP_DIV] = "/",
                                      [OP_MOD] = "%", [OP_EQ] = "=",  [OP_NE] = "!=", [OP_LT] = "<",
                                      [OP_LE] = "<=", [OP_GT] = ">",  [OP_GE] = ">=", [OP_AND] = "AND",
                                      [OP_OR] = "OR"};
  return names[op];
}

static int pr(const node_t *n, const tide_schema_t *s, tide_buf_t *b);

static int pr_list(node_t *const *k, uint32_t lo, uint32_t hi, const tide_schema_t *s, tide_buf_t *b) {
  int rc = 0;
  for (uint32_t j = lo; j < hi && !rc; j++) {
    if (j > lo) rc = tide_buf_puts(b, ", ");
    if (!rc) rc = pr(k[j], s, b);
  }
  return rc;
}

/* Append the canonical text of n to b. */
static int pr(const node_t *n, const tide_schema_t *s, tide_buf_t *b) {
  char num[48];
  int rc = 0;
  node_t *const *k = n->kids;
  switch (n->op) {
  case OP_LIT:
    switch (n->lit) {
    case LK_INT: snprintf(num, sizeof num, "%" PRId64, n->i); return tide_buf_puts(b, num);
    case LK_DOUBLE: fmt_double(n->d, num); return tide_buf_puts(b, num);
    case LK_BOOL: return tide_buf_puts(b, n->i ? "TRUE" : "FALSE");
    case LK_NULL: return tide_buf_puts(b, "NULL");
    case LK_INTERVAL: {
      size_t u = NIUNITS - 1;
      for (size_t j = 0; j < NIUNITS; j++)
        if (n->i % iunits[j].ms == 0) {
          u = j;
          break;
        }
      snprintf(num, sizeof num, "INTERVAL '%" PRId64 "' ", n->i / iunits[u].ms);
      if ((rc = tide_buf_puts(b, num))) return rc;
      for (const char *c = iunits[u].name; *c && !rc; c++) rc = tide_buf_putc(b, (char)(*c - 'a' + 'A'));
      return rc;
    }
    default:
      rc = tide_buf_putc(b, '\'');
      for (size_t j = 0; j < n->slen && !rc; j++)
        rc = n->s[j] == '\'' ? tide_buf_append(b, "''", 2) : tide_buf_putc(b, n->s[j]);
      return rc ? rc : tide_buf_putc(b, '\'');
    }
  case OP_COL: {
    /* a name that is not a plain identifier, or is a keyword, is quoted */
    const tide_field_t *f = &s->fields[n->col];
    int plain = f->name_len > 0 && is_idstart(f->name[0]) && keyword(f->name, f->name_len) == K_ID;
    for (uint32_t j = 1; plain && j < f->name_len; j++) plain = is_idstart(f->name[j]) || is_digit(f->name[j]);
    if (plain) return tide_buf_append(b, f->name, f->name_len);
    rc = tide_buf_putc(b, '`');
    for (uint32_t j = 0; j < f->name_len && !rc; j++)
      rc = f->name[j] == '`' ? tide_buf_append(b, "``", 2) : tide_buf_putc(b, f->name[j]);
    return rc ? rc : tide_buf_putc(b, '`');
  }
  case OP_NEG:
    if (!(rc = tide_buf_puts(b, "(- ")) && !(rc = pr(k[0], s, b))) rc = tide_buf_putc(b, ')');
    return rc;
  case OP_NOT:
    if (!(rc = tide_buf_puts(b, "(NOT ")) && !(rc = pr(k[0], s, b))) rc = tide_buf_putc(b, ')');
    return rc;
  case OP_ISNULL:
    if (!(rc = tide_buf_putc(b, '(')) && !(rc = pr(k[0], s, b)))
      rc = tide_buf_puts(b, n->neg ? " IS NOT NULL)" : " IS NULL)");
    return rc;
  case OP_IN:
    if ((rc = tide_buf_putc(b, '(')) || (rc = pr(k[0], s, b)) ||
        (rc = tide_buf_puts(b, n->neg ? " NOT IN (" : " IN (")) || (rc = pr_list(k, 1, n->nkids, s, b)))
      return rc;
    return tide_buf_puts(b, "))");
  case OP_BETWEEN:
    if ((rc = tide_buf_putc(b, '(')) || (rc = pr(k[0], s, b)) ||
        (rc = tide_buf_puts(b, n->neg ? " NOT BETWEEN " : " BETWEEN ")) || (rc = pr(k[1], s, b)) ||
        (rc = tide_buf_puts(b, " AND ")) || (rc = pr(k[2], s, b)))
      return rc;
    return tide_buf_putc(b, ')');
  case OP_LIKE:
    if ((rc = tide_buf_putc(b, '(')) || (rc = pr(k[0], s, b)) ||
        (rc = tide_buf_puts(b, n->neg ? " NOT LIKE " : " LIKE ")) || (rc = pr(k[1], s, b)))
      return rc;
    return tide_buf_putc(b, ')');
  case OP_CASE: {
    uint32_t off = n->simple, nb = (n->nkids - off - n->has_else) / 2;
    if ((rc = tide_buf_puts(b, "CASE"))) return rc;
    if (off && ((rc = tide_buf_putc(b, ' ')) || (rc = pr(k[0], s, b)))) return rc;
    for (uint32_t j = 0; j < nb; j++)
      if ((rc = tide_buf_puts(b, " WHEN ")) || (rc = pr(k[off + 2 * j], s, b)) ||
          (rc = tide_buf_puts(b, " THEN ")) || (rc = pr(k[off + 2 * j + 1], s, b)))
        return rc;
    if (n->has_else && ((rc = tide_buf_puts(b, " ELSE ")) || (rc = pr(k[n->nkids - 1], s, b)))) return rc;
    return tide_buf_puts(b, " END");
  }
  case OP_CAST:
    if (n->implicit) return pr(k[0], s, b);
    if ((rc = tide_buf_puts(b, "CAST(")) || (rc = pr(k[0], s, b)) || (rc = tide_buf_puts(b, " AS ")) ||
        (rc = tide_buf_puts(b, tide_type_name(n->type))))
      return rc;
    return tide_buf_putc(b, ')');
  case OP_FN:
    if ((rc = tide_buf_puts(b, fns[n->fn].name)) || (rc = tide_buf_putc(b, '(')) ||
        (rc = pr_list(k, 0, n->nkids, s, b)))
      return rc;
    return tide_buf_putc(b, ')');
  case OP_AGG:
    if ((rc = tide_buf_puts(b, aggs[n->fn].name)) || (rc = tide_buf_putc(b, '('))) return rc;
    if (n->col == TIDE_AGG_COUNT_STAR) {
      rc = tide_buf_putc(b, '*');
    } else {
      if (n->distinct) rc = tide_buf_puts(b, "DISTINCT ");
      if (!rc) rc = pr(k[0], s, b);
    }
    return rc ? rc : tide_buf_putc(b, ')');
  default:
    if ((rc = tide_buf_putc(b, '(')) || (rc = pr(k[0], s, b)) || (rc = tide_buf_putc(b, ' ')) ||
        (rc = tide_buf_puts(b, opname(n->op))) || (rc = tide_buf_putc(b, ' ')) || (rc = pr(k[1], s, b)))
      return rc;
    return tide_buf_putc(b, ')');
  }
}

/* ---------------------------------------------------------------- lexer */

typedef struct tok {
  int k;
  size_t s, e;     /* bytes [s, e) of the text */
  const char *bad; /* K_BAD: what is wrong */
} tok_t;

typedef struct parser {
  const char *s;
  size_t len;
  tide_schema_t *schema;
  int flags;
  tide_err_t *err;
  int rc;
  int nest, in_agg;
  tok_t t;        /* the current token */
  tide_buf_t tb;  /* canonical text for messages */
} parser_t;


/* The token at or after byte pos. */
static tok_t lex(const parser_t *p, size_t pos) {
  const char *s = p->s;
  size_t n = p->len;
  tok_t t = {K_EOF, 0, 0, NULL};
  while (pos < n && is_space(s[pos])) pos++;
  t.s = t.e = pos;
  if (pos >= n) return t;
  char c = s[pos];
  size_t e = pos + 1;
  if (is_digit(c) || (c == '.' && e < n && is_digit(s[e]))) {
    e = pos;
    while (e < n && is_digit(s[e])) e++;
    if (e < n && s[e] == '.')
      for (e++; e < n && is_digit(s[e]);) e++;
    if (e < n && (s[e] == 'e' || s[e] == 'E')) {
      size_t f = e + 1;
      if (f < n && (s[f] == '+' || s[f] == '-')) f++;
      if (f < n && is_digit(s[f])) {
        while (f < n && is_digit(s[f])) f++;
        e = f;
      }
    }
    t.k = K_NUM;
  } else if (c == '\'' || c == '`' || c == '"') {
    for (;;) {
      if (e >= n) {
        t.k = K_BAD;
        t.bad = c == '\'' ? "unterminated string" : "unterminated quoted name";
        break;
      }
      if (s[e] == 0) { /* C text (names, canonical text) would end there */
        t.k = K_BAD;
        t.bad = c == '\'' ? "NUL byte in a string" : "NUL byte in a quoted name";
        break;
      }
      if (s[e] == c) {
        if (e + 1 < n && s[e + 1] == c) {
          e += 2;
          continue;
        }
        e++;
        t.k = c == '\'' ? K_STR : K_QID;
        break;
      }
      e++;
    }
  } else if (is_idstart(c)) {
    while (e < n && (is_idstart(s[e]) || is_digit(s[e]))) e++;
    t.k = keyword(s + pos, e - pos);
  } else {
    char d = e < n ? s[e] : 0;
    switch (c) {
    case '(': t.k = K_LP; break;
    case ')': t.k = K_RP; break;
    case ',': t.k = K_COMMA; break;
    case '+': t.k = K_PLUS; break;
    case '-': t.k = K_MINUS; break;
    case '*': t.k = K_STAR; break;
    case '/': t.k = K_SLASH; break;
    case '%': t.k = K_PCT; break;
    case '=': t.k = K_EQ, e += d == '='; break;
    case '!':
      if (d == '=') t.k = K_NE, e++;
      else t.k = K_BAD, t.bad = "unexpected character '!'";
      break;
    case '<':
      if (d == '=') t.k = K_LE, e++;
      else if (d == '>') t.k = K_NE, e++;
      else t.k = K_LT;
      break;
    case '>':
      t.k = K_GT;
      if (d == '=') t.k = K_GE, e++;
      break;
    default: t.k = K_BAD; t.bad = "unexpected character";
    }
  }
  t.e = e;
  return t;
}

static void advance(parser_t *p) { p->t = lex(p, p->t.e); }

static size_t charpos(const parser_t *p, size_t at) { return u8count(p->s, at) + 1; }

/* Record the first error: TIDE_EPARSE at a position, or a binding error. */
static node_t *perr(parser_t *p, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static node_t *perr(parser_t *p, size_t at, const char *fmt, ...) {
  if (p->rc) return NULL;
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  p->rc = tide_err_set(p->err, TIDE_EPARSE, "at position %zu: %s", charpos(p, at), msg);
  return NULL;
}

static int einval(parser_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int einval(parser_t *p, const char *fmt, ...) {
  if (p->rc) return p->rc;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return p->rc = tide_err_set(p->err, TIDE_EINVAL, "%s", msg);
}

static int enomem(parser_t *p) {
  if (!p->rc) p->rc = tide_err_set(p->err, -ENOMEM, "out of memory");
  return p->rc;
}

/* The canonical text of n, for a message (valid until the next call). */
static const char *ntext(parser_t *p, const node_t *n) {
  p->tb.len = 0;
  if (pr(n, p->schema, &p->tb) || tide_buf_cstr(&p->tb)) return "?";
  return p->tb.data;
}

static node_t *unexpected(parser_t *p) {
  tok_t t = p->t;
  if (t.k == K_EOF) return perr(p, t.s, "unexpected end of expression");
  if (t.k == K_BAD && t.bad[0] == 'u' && !strcmp(t.bad, "unexpected character")) {
    unsigned char c = (unsigned char)p->s[t.s];
    if (c >= 0x20 && c < 0x7f) return perr(p, t.s, "unexpected character '%c'", c);
    return perr(p, t.s, "unexpected byte 0x%02x", c);
  }
  if (t.k == K_BAD) return perr(p, t.s, "%s", t.bad);
  size_t n = t.e - t.s;
  return perr(p, t.s, "unexpected '%.*s'%s", (int)(n > 40 ? 40 : n), p->s + t.s, n > 40 ? "..." : "");
}

static node_t *expected(parser_t *p, const char *what) { return perr(p, p->t.s, "expected %s", what); }

/* ---------------------------------------------------------------- typing */

static node_t *mk(parser_t *p, int op, size_t pos, uint32_t nkids) {
  node_t *n = calloc(1, sizeof *n);
  if (n && nkids && !(n->kids = calloc(nkids, sizeof *n->kids))) {
    free(n);
    n = NULL;
  }
  if (!n) {
    enomem(p);
    return NULL;
  }
  n->op = (uint8_t)op;
  n->pos = (uint32_t)pos;
  n->nkids = nkids;
  n->col = -1;
  return n;
}

/* Is op NULL whenever child k is NULL? */
static int strict_in(const node_t *n, uint32_t k) {
  switch (n->op) {
  case OP_AND:
  case OP_OR:
  case OP_ISNULL:
  case OP_CASE:
  case OP_AGG: return 0;
  case OP_IN:
  case OP_BETWEEN: return k == 0;
  case OP_FN: return n->fn != F_COALESCE;
  default: return 1;
  }
}

/* Evaluate the constant node n once and keep its value. */
static int fold(parser_t *p, node_t *n) {
  ectx_t x = {NULL, 1, NULL, 0, ""};
  val_t v;
  int rc = ev(n, &x, &v);
  free(x.tok);
  if (rc == TIDE_ESCHEMA)
    return einval(p, "%s: %s is outside the valid timestamp range " TIDE_TS_RANGE_TEXT, ntext(p, n), x.bad_ts);
  if (rc) return rc == -ENOMEM ? enomem(p) : einval(p, "cannot evaluate %s", ntext(p, n));
  const tide_col_t *c = v.c;
  n->is_const = 1;
  if (c) {
    n->cnull = (uint8_t)tide_col_is_null(c, 0);
    switch (n->type) {
    case TIDE_T_INT:
    case TIDE_T_TIMESTAMP: n->i = tide_col_i64(c, 0); break;
    case TIDE_T_DOUBLE: n->d = tide_col_f64(c, 0); break;
    case TIDE_T_BOOL: n->i = tide_col_bool(c, 0); break;
    default: {
      size_t sn;
      const char *sp = tide_col_str(c, 0, &sn);
      if (!(n->s = malloc(sn + 1))) return val_free(&v), enomem(p);
      if (sn) memcpy(n->s, sp, sn);
      n->s[sn] = 0;
      n->slen = sn;
    }
    }
  } else {
    n->cnull = v.cnull, n->i = v.i, n->d = v.d;
    if (v.s && v.s != n->s) {
      if (!(n->s = malloc(v.slen + 1))) return enomem(p);
      if (v.slen) memcpy(n->s, v.s, v.slen);
      n->s[v.slen] = 0;
      n->slen = v.slen;
    }
  }
  val_free(&v);
  return 0;
}

/* After a node is typed: its depth, nullability, folding and LIKE pattern. */
static int finish(parser_t *p, node_t *n) {
  uint32_t depth = 0, allconst = n->nkids > 0, anynull = 0, strictnull = 0;
  for (uint32_t k = 0; k < n->nkids; k++) {
    node_t *c = n->kids[k];
    if (c->depth > depth) depth = c->depth;
    allconst &= c->is_const;
    anynull |= c->nullable;
    strictnull |= c->is_const && c->cnull && strict_in(n, k);
  }
  n->depth = depth + 1;
  if (n->depth > MAX_TREE) return perr(p, n->pos, "expression nested too deeply"), p->rc;
  switch (n->op) {
  case OP_COL:
  case OP_LIT: break;
  case OP_DIV:
  case OP_MOD: {
    const node_t *d = n->kids[1];
    n->nullable = anynull || !d->is_const || (d->type == TIDE_T_INT ? d->i == 0 : d->d == 0);
    break;
  }
  case OP_ISNULL: n->nullable = 0; break;
  case OP_CASE: {
    uint32_t off = n->simple, nb = (n->nkids - off - n->has_else) / 2;
    n->nullable = !n->has_else || n->kids[n->nkids - 1]->nullable;
    for (uint32_t b = 0; b < nb; b++) n->nullable |= n->kids[off + 2 * b + 1]->nullable;
    break;
  }
  case OP_CAST:
    n->nullable = anynull || (n->kids[0]->type == TIDE_T_STRING && n->type != TIDE_T_STRING) ||
                  (n->kids[0]->type == TIDE_T_DOUBLE && n->type == TIDE_T_TIMESTAMP);
    break;
  case OP_FN:
    if (n->fn == F_COALESCE) {
      n->nullable = 1;
      for (uint32_t k = 0; k < n->nkids; k++) n->nullable &= n->kids[k]->nullable;
    } else {
      n->nullable = anynull;
    }
    break;
  case OP_AGG:
    n->nullable = n->col != TIDE_AGG_COUNT_STAR && n->col != TIDE_AGG_COUNT && n->col != TIDE_AGG_COUNT_DISTINCT;
    return 0;
  default: n->nullable = anynull;
  }
  if (n->type == T_NULL || strictnull) {
    n->is_const = n->cnull = n->nullable = 1;
    return 0;
  }
  if (allconst && !n->is_const) {
    int rc = fold(p, n);
    if (rc) return rc;
    n->nullable = n->cnull;
    return 0;
  }
  if (n->op == OP_LIKE && n->kids[1]->is_const && !(n->like = like_compile(n->kids[1]->s, n->kids[1]->slen)))
    return enomem(p);
  return 0;
}

/* Give *slot type t: a constant NULL takes it; an int gets an implicit CAST
 * to double. */
static int coerce(parser_t *p, node_t **slot, tide_type_t t) {
  node_t *k = *slot;
  if (k->type == t) return 0;
  if (k->type == T_NULL) {
    k->type = t;
    return 0;
  }
  node_t *c = mk(p, OP_CAST, k->pos, 1);
  if (!c) return p->rc;
  c->kids[0] = k;
  c->implicit = 1;
  c->type = t;
  *slot = c;
  return finish(p, c);
}

/* Make the comparands in slots comparable (numbers with numbers, a
 * timestamp with timestamps, ints and constant ISO strings); n is the
 * comparison, for messages. json only for = and !=. */
static int unify_cmp(parser_t *p, node_t *n, node_t **const *slots, uint32_t cnt, int json_ok) {
  tide_type_t first = T_NULL;
  int ts = 0, num = 0, dbl = 0;
  for (uint32_t j = 0; j < cnt; j++) {
    tide_type_t t = (*slots[j])->type;
    if (t && !first) first = t;
    ts |= t == TIDE_T_TIMESTAMP, num |= is_num(t), dbl |= t == TIDE_T_DOUBLE;
  }
  tide_type_t left = (*slots[0])->type ? (*slots[0])->type : first;
  for (uint32_t j = 0; j < cnt; j++) {
    node_t *k = *slots[j];
    tide_type_t t = k->type, want;
    if (!t) continue;
    int ok;
    if (ts) {
      if (t == TIDE_T_STRING && k->is_const && !k->cnull) {
        int64_t ms;
        if (tide_ts_parse(k->s, k->slen, &ms))
          return einval(p, "invalid timestamp '%.*s': %s", (int)(k->slen > 64 ? 64 : k->slen), k->s, ntext(p, n));
        k->type = TIDE_T_TIMESTAMP;
        k->i = ms;
        continue;
      }
      ok = t == TIDE_T_TIMESTAMP || t == TIDE_T_INT;
      want = TIDE_T_TIMESTAMP;
    } else if (num) {
      ok = is_num(t);
      want = TIDE_T_INT;
    } else {
      ok = t == first;
      want = first;
    }
    if (!ok) {
      tide_type_t l = j == 0 ? t : left, r = j == 0 ? want : t; /* the left side first */
      return einval(p, "cannot compare %s with %s: %s", tname(l), tname(r), ntext(p, n));
    }
  }
  if (first == TIDE_T_JSON && !json_ok) return einval(p, "json values only compare with = and !=: %s", ntext(p, n));
  tide_type_t to = ts ? TIDE_T_TIMESTAMP : num ? (dbl ? TIDE_T_DOUBLE : TIDE_T_INT) : first;
  if (!to) to = TIDE_T_BOOL; /* all NULL */
  for (uint32_t j = 0; j < cnt; j++) {
    tide_type_t t = (*slots[j])->type;
    if (t == T_NULL || (num && t == TIDE_T_INT && dbl)) {
      int rc = coerce(p, slots[j], t == T_NULL ? (ts ? TIDE_T_TIMESTAMP : to) : TIDE_T_DOUBLE);
      if (rc) return rc;
    }
  }
  return 0;
}

/* The common type of CASE results or coalesce arguments (int and double
 * give double; NULL takes the others' type). Returns T_NULL when all are
 * NULL, -1 on error. */
static int unify_result(parser_t *p, node_t *n, node_t **const *slots, uint32_t cnt, const char *what) {
  tide_type_t t = T_NULL;
  for (uint32_t j = 0; j < cnt; j++) {
    tide_type_t u = (*slots[j])->type;
    if (!u || u == t) continue;
    if (!t) t = u;
    else if (is_num(t) && is_num(u)) t = TIDE_T_DOUBLE;
    else return einval(p, "%s have incompatible types: %s and %s: %s", what, tname(t), tname(u), ntext(p, n)), -1;
  }
  for (uint32_t j = 0; t && j < cnt; j++)
    if (coerce(p, slots[j], t)) return -1;
  return (int)t;
}

static int cast_ok(tide_type_t from, tide_type_t to) {
  if (from == to || from == T_NULL) return 1;
  if (to == TIDE_T_JSON) return 0;
  if (from == TIDE_T_JSON) return to == TIDE_T_STRING;
  if (to == TIDE_T_TIMESTAMP) return from != TIDE_T_BOOL;
  if (from == TIDE_T_TIMESTAMP) return to != TIDE_T_BOOL;
  return 1;
}

/* A NULL constant takes type t; anything else must already have it. */
static int want(parser_t *p, node_t *k, tide_type_t t) {
  if (k->type == T_NULL) k->type = t;
  return k->type == t;
}

static int want_num(node_t *k) {
  if (k->type == T_NULL) k->type = TIDE_T_INT;
  return is_num(k->type);
}

/* Type node n from its children (inserting implicit casts), or fail with
 * the message of expr.h. */
static int check(parser_t *p, node_t *n) {
  node_t **k = n->kids;
  uint32_t nk = n->nkids;
  int ivals = 0;
  for (uint32_t j = 0; j < nk; j++) {
    if (k[j]->op == OP_AGG) return einval(p, "aggregate function '%s' is not allowed here", aggs[k[j]->fn].name);
    ivals += k[j]->ival;
  }
  if (ivals && n->op != OP_ADD && n->op != OP_SUB && n->op != OP_NEG)
    return einval(p, "an interval can only be added to or subtracted from a timestamp: %s", ntext(p, n));
  switch (n->op) {
  case OP_NEG:
    if (k[0]->ival) {
      n->type = TIDE_T_INT;
      n->ival = 1;
      return 0;
    }
    if (!want_num(k[0])) return einval(p, "cannot negate %s: %s", tname(k[0]->type), ntext(p, n));
    n->type = k[0]->type;
    return 0;
  case OP_ADD:
  case OP_SUB:
  case OP_MUL:
  case OP_DIV:
  case OP_MOD: {
    tide_type_t a = k[0]->type, b = k[1]->type;
    if (ivals) { /* interval +/- interval, timestamp +/- interval, interval + timestamp */
      tide_type_t other = k[0]->ival ? b : a;
      if (ivals == 2) {
        n->type = TIDE_T_INT;
        n->ival = 1;
        return 0;
      }
      if (other == T_NULL) k[k[0]->ival ? 1 : 0]->type = other = TIDE_T_TIMESTAMP;
      if (other == TIDE_T_TIMESTAMP && (k[1]->ival || n->op == OP_ADD)) {
        n->type = TIDE_T_TIMESTAMP;
        return 0;
      }
      return einval(p, "an interval can only be added to or subtracted from a timestamp: %s", ntext(p, n));
    }
    if ((a == TIDE_T_TIMESTAMP || b == TIDE_T_TIMESTAMP) && (n->op == OP_ADD || n->op == OP_SUB))
      return einval(p, "timestamp arithmetic is not supported: %s (compare timestamps, or CAST(ts AS int) for ms)",
                    ntext(p, n));
    if ((a && !is_num(a)) || (b && !is_num(b)))
      return einval(p, "cannot apply '%s' to %s and %s: %s", opname(n->op), tname(a), tname(b), ntext(p, n));
    tide_type_t t = n->op == OP_DIV || a == TIDE_T_DOUBLE || b == TIDE_T_DOUBLE ? TIDE_T_DOUBLE : TIDE_T_INT;
    n->type = t;
    if (coerce(p, &k[0], t) || coerce(p, &k[1], t)) return p->rc;
    return 0;
  }
  case OP_EQ:
  case OP_NE:
  case OP_LT:
  case OP_LE:
  case OP_GT:
  case OP_GE: {
    node_t **slots[2] = {&k[0], &k[1]};
    n->type = TIDE_T_BOOL;
    return unify_cmp(p, n, slots, 2, n->op == OP_EQ || n->op == OP_NE);
  }
  case OP_IN:
  case OP_BETWEEN: {
    node_t ***slots = malloc(nk * sizeof *slots);
    if (!slots) return enomem(p);
    for (uint32_t j = 0; j < nk; j++) slots[j] = &k[j];
    n->type = TIDE_T_BOOL;
    int rc = unify_cmp(p, n, slots, nk, 0);
    free(slots);
    return rc;
  }
  case OP_AND:
  case OP_OR:
  case OP_NOT:
    for (uint32_t j = 0; j < nk; j++)
      if (!want(p, k[j], TIDE_T_BOOL))
        return einval(p, "%s needs bool operands, got %s: %s",
                      n->op == OP_NOT ? "NOT" : opname(n->op), tname(k[j]->type), ntext(p, n));
    n->type = TIDE_T_BOOL;
    return 0;
  case OP_ISNULL: n->type = TIDE_T_BOOL; return 0;
  case OP_LIKE:
    for (uint32_t j = 0; j < nk; j++)
      if (!want(p, k[j], TIDE_T_STRING))
        return einval(p, "LIKE needs strings, got %s: %s", tname(k[j]->type), ntext(p, n));
    n->type = TIDE_T_BOOL;
    return 0;
  case OP_CAST:
    if (!cast_ok(k[0]->type, n->type))
      return einval(p, "cannot cast %s to %s: %s", tname(k[0]->type), tname(n->type), ntext(p, n));
    if (k[0]->type == T_NULL) k[0]->type = n->type;
    return 0;
  case OP_CASE: {
    uint32_t off = n->simple, nb = (nk - off - n->has_else) / 2, m = 0;
    node_t ***slots = malloc((nk + 1) * sizeof *slots);
    int rc = 0;
    if (!slots) return enomem(p);
    if (off) {
      slots[m++] = &k[0];
      for (uint32_t b = 0; b < nb; b++) slots[m++] = &k[off + 2 * b];
      rc = unify_cmp(p, n, slots, m, 1);
    } else {
      for (uint32_t b = 0; b < nb && !rc; b++)
        if (!want(p, k[2 * b], TIDE_T_BOOL))
          rc = einval(p, "CASE WHEN needs a bool condition, got %s: %s", tname(k[2 * b]->type), ntext(p, n));
    }
    if (!rc) {
      m = 0;
      for (uint32_t b = 0; b < nb; b++) slots[m++] = &k[off + 2 * b + 1];
      if (n->has_else) slots[m++] = &k[nk - 1];
      int t = unify_result(p, n, slots, m, "CASE branches");
      if (t < 0) rc = p->rc;
      else n->type = (tide_type_t)t;
    }
    free(slots);
    return rc;
  }
  case OP_FN: {
    const char *fname = fns[n->fn].name;
    switch (n->fn) {
    case F_LOWER:
    case F_UPPER:
    case F_LENGTH:
      if (!want(p, k[0], TIDE_T_STRING))
        return einval(p, "function '%s' needs a string, got %s: %s", fname, tname(k[0]->type), ntext(p, n));
      n->type = n->fn == F_LENGTH ? TIDE_T_INT : TIDE_T_STRING;
      return 0;
    case F_SUBSTR:
      if (!want(p, k[0], TIDE_T_STRING))
        return einval(p, "function 'substr' needs a string, got %s: %s", tname(k[0]->type), ntext(p, n));
      for (uint32_t j = 1; j < nk; j++)
        if (!want(p, k[j], TIDE_T_INT))
          return einval(p, "function 'substr' needs int positions, got %s: %s", tname(k[j]->type), ntext(p, n));
      n->type = TIDE_T_STRING;
      return 0;
    case F_CONCAT:
      for (uint32_t j = 0; j < nk; j++)
        if (k[j]->type == TIDE_T_JSON || !want(p, k[j], k[j]->type ? k[j]->type : TIDE_T_STRING))
          return einval(p, "function 'concat' cannot take %s: %s (CAST it to string)", tname(k[j]->type), ntext(p, n));
      n->type = TIDE_T_STRING;
      return 0;
    case F_COALESCE: {
      node_t ***slots = malloc(nk * sizeof *slots);
      if (!slots) return enomem(p);
      for (uint32_t j = 0; j < nk; j++) slots[j] = &k[j];
      int t = unify_result(p, n, slots, nk, "coalesce arguments");
      free(slots);
      if (t < 0) return p->rc;
      n->type = (tide_type_t)t;
      return 0;
    }
    default: /* abs round floor ceil */
      if (!want_num(k[0]))
        return einval(p, "function '%s' needs a number, got %s: %s", fname, tname(k[0]->type), ntext(p, n));
      if (nk > 1 && (!k[1]->is_const || k[1]->cnull || k[1]->type != TIDE_T_INT))
        return einval(p, "function 'round' needs an int constant for its scale: %s", ntext(p, n));
      n->type = n->fn == F_FLOOR || n->fn == F_CEIL ? TIDE_T_INT : k[0]->type;
      return 0;
    }
  }
  case OP_AGG: {
    const char *aname = aggs[n->fn].name;
    switch (n->col) {
    case TIDE_AGG_COUNT_STAR: n->type = TIDE_T_INT; return 0;
    case TIDE_AGG_COUNT:
    case TIDE_AGG_COUNT_DISTINCT:
      want(p, k[0], TIDE_T_STRING);
      n->type = TIDE_T_INT;
      return 0;
    case TIDE_AGG_SUM:
    case TIDE_AGG_AVG:
      if (!want_num(k[0])) return einval(p, "%s needs a number, got %s", aname, tname(k[0]->type));
      n->type = n->col == TIDE_AGG_AVG ? TIDE_T_DOUBLE : k[0]->type;
      return 0;
    case TIDE_AGG_MIN:
    case TIDE_AGG_MAX:
      if (k[0]->type == TIDE_T_JSON) return einval(p, "%s needs a comparable value, got json", aname);
      /* fallthrough */
    default:
      want(p, k[0], TIDE_T_STRING);
      n->type = k[0]->type;
      return 0;
    }
  }
  }
  return 0;
}

/* Type and finish n, or free it: the node, or NULL with the error set. */
static node_t *typed(parser_t *p, node_t *n) {
  if (!n) return NULL;
  if (check(p, n) || finish(p, n)) {
    node_free(n);
    return NULL;
  }
  return n;
}

static node_t *node2(parser_t *p, int op, size_t pos, node_t *a, node_t *b) {
  node_t *n = mk(p, op, pos, b ? 2 : 1);
  if (!n) {
    node_free(a);
    node_free(b);
    return NULL;
  }
  n->kids[0] = a;
  if (b) n->kids[1] = b;
  return typed(p, n);
}

/* ---------------------------------------------------------------- parser */

static node_t *p_or(parser_t *p);
static node_t *p_add(parser_t *p);
static node_t *p_unary(parser_t *p);

/* Copy a quoted token's text without its quotes, undoubling the quote. */
static char *unquote(const char *s, size_t n, size_t *len) {
  char q = s[0], *out = malloc(n + 1);
  size_t m = 0;
  if (!out) return NULL;
  for (size_t j = 1; j + 1 < n; j++) {
    out[m++] = s[j];
    if (s[j] == q) j++;
  }
  out[m] = 0;
  *len = m;
  return out;
}

static node_t *lit(parser_t *p, int kind, tide_type_t t) {
  node_t *n = mk(p, OP_LIT, p->t.s, 0);
  if (!n) return NULL;
  n->lit = (uint8_t)kind;
  n->type = t;
  n->is_const = 1;
  n->depth = 1;
  n->nullable = n->cnull = kind == LK_NULL;
  return n;
}

static node_t *p_number(parser_t *p) {
  const char *s = p->s + p->t.s;
  size_t len = p->t.e - p->t.s;
  uint64_t v = 0;
  int big = 0, isint = 1;
  for (size_t j = 0; j < len; j++) {
    if (!is_digit(s[j])) {
      isint = 0;
      break;
    }
    unsigned dg = (unsigned)(s[j] - '0');
    if (v > ((uint64_t)INT64_MAX - dg) / 10) big = 1;
    else v = v * 10 + dg;
  }
  node_t *n;
  if (isint && !big) {
    if (!(n = lit(p, LK_INT, TIDE_T_INT))) return NULL;
    n->i = (int64_t)v;
  } else {
    char *buf = malloc(len + 1);
    if (!buf || !(n = lit(p, LK_DOUBLE, TIDE_T_DOUBLE))) {
      free(buf);
      enomem(p);
      return NULL;
    }
    memcpy(buf, s, len);
    buf[len] = 0;
    n->d = strtod(buf, NULL);
    free(buf);
    /* a literal that overflows a double would print as a name (Infinity)
     * in the canonical text, which then means another thing */
    if (isinf(n->d)) {
      node_free(n);
      return perr(p, p->t.s, "number out of range: '%.*s'", (int)(len > 40 ? 40 : len), s);
    }
  }
  advance(p);
  return n;
}

static node_t *p_column(parser_t *p) {
  tok_t t = p->t;
  size_t len = t.e - t.s;
  char *name = NULL;
  const char *nm = p->s + t.s;
  if (t.k == K_QID) {
    if (!(name = unquote(nm, len, &len))) return enomem(p), NULL;
    nm = name;
  }
  int idx = tide_schema_find(p->schema, nm, len);
  if (idx < 0) {
    tide_buf_t cols = TIDE_BUF_INIT;
    for (uint32_t j = 0; j < p->schema->nfields && cols.len < 400; j++) {
      if (j) tide_buf_puts(&cols, ", ");
      tide_buf_puts(&cols, p->schema->fields[j].name);
    }
    einval(p, "unknown column '%.*s' (columns: %.*s)", (int)(len > 64 ? 64 : len), nm, (int)cols.len,
           cols.data ? cols.data : "");
    tide_buf_free(&cols);
    free(name);
    return NULL;
  }
  free(name);
  node_t *n = mk(p, OP_COL, t.s, 0);
  if (!n) return NULL;
  n->col = idx;
  n->type = p->schema->fields[idx].type;
  n->nullable = p->schema->fields[idx].nullable;
  n->depth = 1;
  advance(p);
  return n;
}

/* Append a to the growing list kids[0..*n) of capacity *cap. On failure a
 * is freed and the parser marked out of memory: returns 0, or -1. */
static int push_kid(parser_t *p, node_t ***kids, uint32_t *n, uint32_t *cap, node_t *a) {
  if (*n == *cap) {
    uint32_t c = *cap ? *cap * 2 : 4;
    node_t **k2 = realloc(*kids, c * sizeof *k2);
    if (!k2) {
      node_free(a);
      enomem(p);
      return -1;
    }
    *kids = k2;
    *cap = c;
  }
  (*kids)[(*n)++] = a;
  return 0;
}

/* Parse "( [or {, or}] )" after a function name (the '(' is current);
 * with allow_star, "(*)" gives *star = 1 and no arguments. */
static int p_args(parser_t *p, node_t ***out, uint32_t *cnt, int allow_star, int *star, int *distinct) {
  node_t **kids = NULL;
  uint32_t n = 0, cap = 0;
  advance(p); /* ( */
  if (allow_star && p->t.k == K_STAR) {
    advance(p);
    *star = 1;
  } else if (p->t.k != K_RP) {
    if (allow_star && p->t.k == K_DISTINCT) {
      advance(p);
      *distinct = 1;
    }
    for (;;) {
      node_t *a = p_or(p);
      if (!a || push_kid(p, &kids, &n, &cap, a)) goto fail;
      if (p->t.k != K_COMMA) break;
      advance(p);
    }
  }
  if (p->t.k != K_RP) {
    expected(p, "')'");
    goto fail;
  }
  advance(p);
  *out = kids;
  *cnt = n;
  return 0;
fail:
  for (uint32_t j = 0; j < n; j++) node_free(kids[j]);
  free(kids);
  return p->rc;
}

/* A node of op with the given children (taking them and the array). */
static node_t *node_n(parser_t *p, int op, size_t pos, node_t **kids, uint32_t cnt) {
  node_t *n = mk(p, op, pos, 0);
  if (!n) {
    for (uint32_t j = 0; j < cnt; j++) node_free(kids[j]);
    free(kids);
    return NULL;
  }
  n->kids = kids;
  n->nkids = cnt;
  return n;
}

static node_t *p_call(parser_t *p) {
  tok_t t = p->t;
  char name[33];
  size_t len = t.e - t.s;
  size_t m = len < 32 ? len : 32;
  for (size_t j = 0; j < m; j++) {
    char c = p->s[t.s + j];
    name[j] = c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
  }
  name[m] = 0;
  int fn = -1, ag = -1;
  for (size_t j = 0; j < NFNS && len <= 32; j++)
    if (!strcmp(fns[j].name, name)) fn = (int)j;
  for (size_t j = 0; j < NAGGS && len <= 32; j++)
    if (!strcmp(aggs[j].name, name)) ag = (int)j;
  if (fn < 0 && ag < 0) {
    einval(p, "unknown function '%.*s' (functions: abs, ceil, coalesce, concat, floor, length, lower, round, "
              "substr, upper)", (int)(len > 64 ? 64 : len), p->s + t.s);
    return NULL;
  }
  if (ag >= 0 && (!(p->flags & TIDE_EXPR_AGG) || p->in_agg)) {
    einval(p, "aggregate function '%s' is not allowed here", aggs[ag].name);
    return NULL;
  }
  advance(p); /* the name; now at '(' */
  node_t **kids = NULL;
  uint32_t cnt = 0;
  int star = 0, distinct = 0, iscount = ag >= 0 && aggs[ag].kind == TIDE_AGG_COUNT;
  if (ag >= 0) p->in_agg++;
  int rc = p_args(p, &kids, &cnt, iscount, &star, &distinct);
  if (ag >= 0) p->in_agg--;
  if (rc) return NULL;
  node_t *n = node_n(p, ag >= 0 ? OP_AGG : OP_FN, t.s, kids, cnt);
  if (!n) return NULL;
  if (ag >= 0) {
    n->fn = (uint8_t)ag;
    n->col = star ? TIDE_AGG_COUNT_STAR : distinct ? TIDE_AGG_COUNT_DISTINCT : (int)aggs[ag].kind;
    n->distinct = (uint8_t)distinct;
    if (!star && cnt != 1) {
      einval(p, "function '%s' takes 1 argument, got %u", aggs[ag].name, cnt);
      node_free(n);
      return NULL;
    }
  } else {
    n->fn = (uint8_t)fn;
    int lo = fns[fn].min, hi = fns[fn].max;
    if ((int)cnt < lo || (hi >= 0 && (int)cnt > hi)) {
      if (hi < 0) einval(p, "function '%s' takes at least %d argument%s, got %u", name, lo, lo == 1 ? "" : "s", cnt);
      else if (lo == hi) einval(p, "function '%s' takes %d argument%s, got %u", name, lo, lo == 1 ? "" : "s", cnt);
      else einval(p, "function '%s' takes %d or %d arguments, got %u", name, lo, hi, cnt);
      node_free(n);
      return NULL;
    }
  }
  return typed(p, n);
}

static node_t *p_cast(parser_t *p) {
  size_t pos = p->t.s;
  advance(p);
  if (p->t.k != K_LP) return expected(p, "'('");
  advance(p);
  node_t *k = p_or(p);
  if (!k) return NULL;
  tide_type_t to;
  if (p->t.k != K_AS) {
    node_free(k);
    return expected(p, "AS");
  }
  advance(p);
  if (p->t.k != K_ID || tide_type_parse(p->s + p->t.s, p->t.e - p->t.s, &to)) {
    node_free(k);
    if (p->t.k == K_ID)
      return perr(p, p->t.s, "unknown type '%.*s'", (int)(p->t.e - p->t.s > 40 ? 40 : p->t.e - p->t.s), p->s + p->t.s);
    return expected(p, "a type");
  }
  advance(p);
  if (p->t.k != K_RP) {
    node_free(k);
    return expected(p, "')'");
  }
  advance(p);
  node_t *n = mk(p, OP_CAST, pos, 1);
  if (!n) return node_free(k), NULL;
  n->kids[0] = k;
  n->type = to;
  return typed(p, n);
}

static node_t *p_case(parser_t *p) {
  size_t pos = p->t.s;
  node_t **kids = NULL;
  uint32_t n = 0, cap = 0;
  int simple = 0, has_else = 0;
  advance(p);
  for (int part = 0;; part++) {
    int kw = p->t.k;
    node_t *a = NULL;
    if (part == 0 && kw != K_WHEN && kw != K_THEN && kw != K_ELSE && kw != K_END) {
      simple = 1;
    } else if (kw == K_WHEN && !has_else) {
      advance(p);
    } else if (kw == K_THEN && n > (uint32_t)simple && (n - (uint32_t)simple) % 2 == 1) {
      advance(p);
    } else if (kw == K_ELSE && n > (uint32_t)simple && (n - (uint32_t)simple) % 2 == 0 && !has_else) {
      advance(p);
      has_else = 1;
    } else if (kw == K_END && n > (uint32_t)simple && (n - (uint32_t)simple - (uint32_t)has_else) % 2 == 0) {
      advance(p);
      break;
    } else {
      uint32_t body = n - (uint32_t)simple;
      expected(p, body == 0 ? "WHEN" : has_else ? "END" : body % 2 ? "THEN" : "WHEN, ELSE or END");
      goto fail;
    }
    if (!(a = p_or(p)) || push_kid(p, &kids, &n, &cap, a)) goto fail;
  }
  node_t *c = node_n(p, OP_CASE, pos, kids, n);
  if (!c) return NULL;
  c->simple = (uint8_t)simple;
  c->has_else = (uint8_t)has_else;
  return typed(p, c);
fail:
  for (uint32_t j = 0; j < n; j++) node_free(kids[j]);
  free(kids);
  return NULL;
}

/* The ms of a unit name (singular or plural, any case), or 0. */
static int64_t unit_ms(const char *u, size_t n) {
  for (size_t j = 0; j < NIUNITS; j++) {
    size_t m = strlen(iunits[j].name);
    if ((n == m || (n == m + 1 && (u[m] == 's' || u[m] == 'S'))) && !strncasecmp(u, iunits[j].name, m))
      return iunits[j].ms;
  }
  return 0;
}

/* *ms = the decimal number t[0..n) (sign, digits, optional fraction) times
 * unit ms. 0; -1 when t is not a number; 1 when the result is not a whole
 * number of ms or is out of range. */
static int ival_of(const char *t, size_t n, int64_t unit, int64_t *ms) {
  size_t j = 0;
  int neg = 0, frac = 0, digits = 0;
  __int128 v = 0, scale = 1;
  if (j < n && (t[j] == '-' || t[j] == '+')) neg = t[j++] == '-';
  for (; j < n; j++) {
    if (t[j] == '.' && !frac) {
      frac = 1;
      continue;
    }
    if (!is_digit(t[j])) return -1;
    if (++digits > 19) return 1;
    v = v * 10 + (t[j] - '0');
    if (frac) scale *= 10;
  }
  if (!digits) return -1;
  __int128 x = v * unit;
  if (x % scale) return 1;
  x /= scale;
  if (neg) x = -x;
  if (x > INT64_MAX || x < -INT64_MAX) return 1;
  *ms = (int64_t)x;
  return 0;
}

/* Add "num unit" (num: text of n bytes, negated with neg; unit: text of
 * un bytes) to *total; errors at byte `at`. */
static int ival_part(parser_t *p, const char *num, size_t n, int neg, const char *unit, size_t un, size_t at,
                     size_t num_at, int64_t *total) {
  int64_t u = unit_ms(unit, un), ms = 0;
  if (!u) {
    perr(p, at, "unknown interval unit '%.*s' (units: week, day, hour, minute, second, millisecond; months and "
                "years are not supported, their length varies)", (int)(un > 40 ? 40 : un), unit);
    return p->rc;
  }
  int rc = ival_of(num, n, u, &ms);
  if (rc) {
    perr(p, num_at, rc < 0 ? "expected a number in the interval, got '%.*s'"
                       : "interval '%.*s' is not a whole number of milliseconds in range", (int)(n > 40 ? 40 : n), num);
    return p->rc;
  }
  if (neg) ms = -ms;
  if ((ms > 0 && *total > INT64_MAX - ms) || (ms < 0 && *total < -INT64_MAX - ms)) {
    perr(p, at, "interval out of range");
    return p->rc;
  }
  *total += ms;
  return 0;
}

/* INTERVAL n unit [n unit ...], the number also quoted ('10' minute), or a
 * quoted list of parts (interval '1 hour 30 minutes'), as Spark writes
 * day-time intervals. An interval literal is its length in ms (int) and
 * may only be added to or subtracted from a timestamp. */
static node_t *p_interval(parser_t *p) {
  size_t pos = p->t.s;
  int64_t total = 0;
  int parts = 0;
  advance(p);
  while (p->t.k == K_NUM || p->t.k == K_STR || (parts == 0 && p->t.k == K_MINUS)) {
    int neg = 0;
    if (p->t.k == K_MINUS) {
      neg = 1;
      advance(p);
      if (p->t.k != K_NUM) return expected(p, "a number after '-' in the interval");
    }
    size_t at = p->t.s;
    const char *num = p->s + p->t.s;
    size_t n = p->t.e - p->t.s;
    char *str = NULL;
    if (p->t.k == K_STR) {
      if (!(str = unquote(num, n, &n))) return enomem(p), NULL;
      num = str;
      /* a quoted list of "n unit" parts, or a quoted number before a unit */
      size_t j = 0, w[2][2], nw = 0, done = 0;
      int rc = 0;
      while (!rc) {
        while (j < n && is_space(num[j])) j++;
        if (j >= n) break;
        size_t b = j;
        while (j < n && !is_space(num[j])) j++;
        w[nw][0] = b, w[nw][1] = j - b;
        if (++nw == 2) {
          rc = ival_part(p, num + w[0][0], w[0][1], 0, num + w[1][0], w[1][1], at, at, &total);
          nw = 0;
          done++;
        }
      }
      if (!rc && nw == 1 && done == 0) {
        advance(p);
        if (p->t.k != K_ID) {
          free(str);
          return expected(p, "an interval unit (week, day, hour, minute, second, millisecond)");
        }
        rc = ival_part(p, num + w[0][0], w[0][1], 0, p->s + p->t.s, p->t.e - p->t.s, p->t.s, at, &total);
      } else if (!rc && (nw == 1 || done == 0)) {
        perr(p, at, "expected 'n unit' parts in the quoted interval");
        rc = p->rc;
      }
      free(str);
      if (rc) return NULL;
    } else {
      advance(p);
      if (p->t.k != K_ID) return expected(p, "an interval unit (week, day, hour, minute, second, millisecond)");
      if (ival_part(p, num, n, neg, p->s + p->t.s, p->t.e - p->t.s, p->t.s, at, &total)) return NULL;
    }
    advance(p);
    parts++;
  }
  if (!parts) return expected(p, "a number after INTERVAL (as in interval 1 hour)");
  node_t *nd = lit(p, LK_INTERVAL, TIDE_T_INT);
  if (!nd) return NULL;
  nd->pos = (uint32_t)pos;
  nd->i = total;
  nd->ival = 1;
  return nd;
}

static node_t *p_primary(parser_t *p) {
  node_t *n;
  switch (p->t.k) {
  case K_NUM: return p_number(p);
  case K_STR: {
    size_t len;
    char *s = unquote(p->s + p->t.s, p->t.e - p->t.s, &len);
    if (!s || !(n = lit(p, LK_STR, TIDE_T_STRING))) {
      free(s);
      return enomem(p), NULL;
    }
    n->s = s;
    n->slen = len;
    advance(p);
    return n;
  }
  case K_TRUE:
  case K_FALSE:
    if ((n = lit(p, LK_BOOL, TIDE_T_BOOL))) n->i = p->t.k == K_TRUE;
    advance(p);
    return n;
  case K_NULL:
    n = lit(p, LK_NULL, T_NULL);
    advance(p);
    return n;
  case K_LP:
    advance(p);
    if (!(n = p_or(p))) return NULL;
    if (p->t.k != K_RP) {
      node_free(n);
      return expected(p, "')'");
    }
    advance(p);
    return n;
  case K_CASE: return p_case(p);
  case K_CAST: return p_cast(p);
  case K_ID: {
    int next = lex(p, p->t.e).k;
    if (next == K_LP) return p_call(p);
    if (p->t.e - p->t.s == 8 && !strncasecmp(p->s + p->t.s, "interval", 8) &&
        (next == K_NUM || next == K_STR || next == K_MINUS))
      return p_interval(p);
    return p_column(p);
  }
  case K_QID: return p_column(p);
  default: return unexpected(p);
  }
}

static node_t *p_unary(parser_t *p) {
  int k = p->t.k;
  if (k != K_MINUS && k != K_PLUS) return p_primary(p);
  size_t pos = p->t.s;
  if (++p->nest > MAX_NEST) return perr(p, pos, "expression nested too deeply");
  advance(p);
  node_t *a = p_unary(p);
  p->nest--;
  if (!a) return NULL;
  if (k == K_PLUS) {
    if (!want_num(a)) {
      einval(p, "cannot apply '+' to %s: %s", tname(a->type), ntext(p, a));
      node_free(a);
      return NULL;
    }
    return a;
  }
  if (a->op == OP_LIT && a->lit == LK_INT) { /* a negative literal */
    a->i = WRAP(0 - (uint64_t)a->i);
    return a;
  }
  if (a->op == OP_LIT && a->lit == LK_DOUBLE) {
    a->d = -a->d;
    return a;
  }
  return node2(p, OP_NEG, pos, a, NULL);
}

static node_t *p_mul(parser_t *p) {
  node_t *l = p_unary(p);
  while (l && (p->t.k == K_STAR || p->t.k == K_SLASH || p->t.k == K_PCT)) {
    int op = p->t.k == K_STAR ? OP_MUL : p->t.k == K_SLASH ? OP_DIV : OP_MOD;
    size_t pos = p->t.s;
    advance(p);
    node_t *r = p_unary(p);
    if (!r) return node_free(l), NULL;
    l = node2(p, op, pos, l, r);
  }
  return l;
}

static node_t *p_add(parser_t *p) {
  node_t *l = p_mul(p);
  while (l && (p->t.k == K_PLUS || p->t.k == K_MINUS)) {
    int op = p->t.k == K_PLUS ? OP_ADD : OP_SUB;
    size_t pos = p->t.s;
    advance(p);
    node_t *r = p_mul(p);
    if (!r) return node_free(l), NULL;
    l = node2(p, op, pos, l, r);
  }
  return l;
}

static node_t *p_pred(parser_t *p) {
  node_t *l = p_add(p);
  if (!l) return NULL;
  int k = p->t.k, neg = 0;
  size_t pos = p->t.s;
  if (k >= K_EQ && k <= K_GE) {
    static const int ops[] = {OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE};
    advance(p);
    node_t *r = p_add(p);
    if (!r) return node_free(l), NULL;
    return node2(p, ops[k - K_EQ], pos, l, r);
  }
  if (k == K_IS) {
    advance(p);
    if (p->t.k == K_NOT) neg = 1, advance(p);
    if (p->t.k != K_NULL) {
      node_free(l);
      return expected(p, "NULL");
    }
    advance(p);
    node_t *n = mk(p, OP_ISNULL, pos, 1);
    if (!n) return node_free(l), NULL;
    n->kids[0] = l;
    n->neg = (uint8_t)neg;
    return typed(p, n);
  }
  if (k == K_NOT) {
    int k2 = lex(p, p->t.e).k;
    if (k2 != K_IN && k2 != K_BETWEEN && k2 != K_LIKE) return l;
    neg = 1;
    advance(p);
    k = k2;
  }
  if (k == K_IN) {
    advance(p);
    if (p->t.k != K_LP) {
      node_free(l);
      return expected(p, "'('");
    }
    node_t **items = NULL;
    uint32_t cnt = 0;
    int star = 0, distinct = 0;
    if (p_args(p, &items, &cnt, 0, &star, &distinct)) return node_free(l), NULL;
    if (!cnt) {
      free(items);
      node_free(l);
      return perr(p, pos, "IN needs at least one value");
    }
    node_t **kids = realloc(items, (cnt + 1) * sizeof *kids);
    if (!kids) {
      node_free(l);
      return node_free(node_n(p, OP_IN, pos, items, cnt)), enomem(p), NULL;
    }
    memmove(kids + 1, kids, cnt * sizeof *kids);
    kids[0] = l;
    node_t *n = node_n(p, OP_IN, pos, kids, cnt + 1);
    if (!n) return NULL;
    n->neg = (uint8_t)neg;
    return typed(p, n);
  }
  if (k == K_BETWEEN) {
    advance(p);
    node_t *lo = p_add(p), *hi = NULL;
    if (lo && p->t.k != K_AND) expected(p, "AND");
    else if (lo) {
      advance(p);
      hi = p_add(p);
    }
    if (!hi) {
      node_free(l);
      node_free(lo);
      return NULL;
    }
    node_t *n = mk(p, OP_BETWEEN, pos, 3);
    if (!n) return node_free(l), node_free(lo), node_free(hi), NULL;
    n->kids[0] = l, n->kids[1] = lo, n->kids[2] = hi;
    n->neg = (uint8_t)neg;
    return typed(p, n);
  }
  if (k == K_LIKE) {
    advance(p);
    node_t *r = p_add(p);
    if (!r) return node_free(l), NULL;
    node_t *n = mk(p, OP_LIKE, pos, 2);
    if (!n) return node_free(l), node_free(r), NULL;
    n->kids[0] = l, n->kids[1] = r;
    n->neg = (uint8_t)neg;
    return typed(p, n);
  }
  return l;
}

static node_t *p_not(parser_t *p) {
  if (p->t.k != K_NOT) return p_pred(p);
  size_t pos = p->t.s;
  if (++p->nest > MAX_NEST) return perr(p, pos, "expression nested too deeply");
  advance(p);
  node_t *a = p_not(p);
  p->nest--;
  return a ? node2(p, OP_NOT, pos, a, NULL) : NULL;
}

static node_t *p_and(parser_t *p) {
  node_t *l = p_not(p);
  while (l && p->t.k == K_AND) {
    size_t pos = p->t.s;
    advance(p);
    node_t *r = p_not(p);
    if (!r) return node_free(l), NULL;
    l = node2(p, OP_AND, pos, l, r);
  }
  return l;
}

static node_t *p_or(parser_t *p) {
  if (++p->nest > MAX_NEST) return perr(p, p->t.s, "expression nested too deeply");
  node_t *l = p_and(p);
  while (l && p->t.k == K_OR) {
    size_t pos = p->t.s;
    advance(p);
    node_t *r = p_and(p);
    if (!r) return node_free(l), NULL;
    l = node2(p, OP_OR, pos, l, r);
  }
  p->nest--;
  return l;
}

/* ---------------------------------------------------------------- API */

static void collect_cols(const node_t *n, tide_expr_t *e) {
  if (n->op == OP_COL) {
    for (uint32_t j = 0; j < e->nused; j++)
      if (e->used[j] == (uint32_t)n->col) return;
    e->used[e->nused++] = (uint32_t)n->col;
  }
  for (uint32_t k = 0; k < n->nkids; k++) collect_cols(n->kids[k], e);
}

/* Fill e's text, type and columns from its root. */
static int expr_init(tide_expr_t *e, node_t *root, tide_schema_t *s) {
  tide_buf_t b = TIDE_BUF_INIT;
  e->root = root;
  e->schema = tide_schema_ref(s);
  e->type = root->type;
  e->nullable = root->nullable;
  e->col = -1;
  if (root->op == OP_COL) e->col = root->col;
  if (pr(root, s, &b) || tide_buf_cstr(&b)) return tide_buf_free(&b), -ENOMEM;
  e->text = b.data;
  if (!(e->used = malloc((s->nfields ? s->nfields : 1) * sizeof *e->used))) return -ENOMEM;
  collect_cols(root, e);
  return 0;
}

int tide_expr_compile(const char *text, size_t len, tide_schema_t *in, int flags, tide_expr_t **out,
                      tide_err_t *err) {
  parser_t p;
  memset(&p, 0, sizeof p);
  *out = NULL;
  p.s = text ? text : "";
  p.len = text ? len : 0;
  p.schema = in;
  p.flags = flags;
  p.err = err;
  p.t = lex(&p, 0);
  node_t *root = p_or(&p);
  char *alias = NULL;
  if (root && p.t.k == K_AS) {
    advance(&p);
    if (p.t.k == K_ID || p.t.k == K_QID) {
      size_t n = p.t.e - p.t.s;
      if (p.t.k == K_QID) alias = unquote(p.s + p.t.s, n, &n);
      else if ((alias = malloc(n + 1))) memcpy(alias, p.s + p.t.s, n), alias[n] = 0;
      if (!alias) enomem(&p);
      advance(&p);
    } else {
      expected(&p, "a name after AS");
    }
  }
  if (root && !p.rc && p.t.k != K_EOF) unexpected(&p);
  tide_expr_t *e = NULL;
  if (!p.rc && !(e = calloc(1, sizeof *e))) enomem(&p);
  if (p.rc) goto fail;
  e->alias = alias;
  alias = NULL;
  if (root->type == T_NULL) root->type = TIDE_T_STRING;
  if (root->ival) {
    einval(&p, "an interval can only be added to or subtracted from a timestamp: %s", ntext(&p, root));
    goto fail;
  }
  if (root->op == OP_AGG) {
    tide_buf_t b = TIDE_BUF_INIT;
    e->agg = (tide_agg_kind_t)root->col;
    e->type = root->type;
    e->nullable = root->nullable;
    e->schema = tide_schema_ref(in);
    e->col = -1;
    if (pr(root, in, &b) || tide_buf_cstr(&b)) {
      tide_buf_free(&b);
      enomem(&p);
      goto fail;
    }
    e->text = b.data;
    if (root->nkids) {
      node_t *arg = root->kids[0];
      root->kids[0] = NULL;
      root->nkids = 0;
      if (arg->type == T_NULL) arg->type = TIDE_T_STRING;
      if (!(e->arg = calloc(1, sizeof *e->arg)) || expr_init(e->arg, arg, in)) {
        if (!e->arg) node_free(arg);
        enomem(&p);
        node_free(root);
        root = NULL;
        goto fail;
      }
    }
    node_free(root);
    root = NULL;
  } else {
    node_t *r = root;
    root = NULL;
    if (expr_init(e, r, in)) {
      enomem(&p);
      goto fail;
    }
  }
  tide_buf_free(&p.tb);
  *out = e;
  return 0;
fail:
  node_free(root);
  free(alias);
  tide_expr_free(e);
  tide_buf_free(&p.tb);
  return p.rc;
}

void tide_expr_free(tide_expr_t *e) {
  if (!e) return;
  node_free(e->root);
  tide_expr_free(e->arg);
  tide_schema_unref(e->schema);
  free(e->text);
  free(e->alias);
  free(e->used);
  free(e);
}

tide_type_t tide_expr_type(const tide_expr_t *e) { return e->type; }
int tide_expr_nullable(const tide_expr_t *e) { return e->nullable; }
const char *tide_expr_text(const tide_expr_t *e) { return e->text; }
int tide_expr_column(const tide_expr_t *e) { return e->col; }
tide_agg_kind_t tide_expr_agg(const tide_expr_t *e) { return e->agg; }
const tide_expr_t *tide_expr_agg_arg(const tide_expr_t *e) { return e->arg; }

const char *tide_expr_name(const tide_expr_t *e) {
  if (e->alias) return e->alias;
  if (e->col >= 0) return e->schema->fields[e->col].name;
  return e->text;
}

/* Check that in has the columns e reads, with the types compiled against. */
static int check_shape(const tide_expr_t *e, const tide_batch_t *in, tide_err_t *err) {
  for (uint32_t j = 0; j < e->nused; j++) {
    uint32_t c = e->used[j];
    if (c >= in->schema->nfields || in->schema->fields[c].type != e->schema->fields[c].type)
      return tide_err_set(err, TIDE_EINVAL, "batch does not have the columns %s was compiled against", e->text);
  }
  return 0;
}

/* Evaluate e's root over in into v (a constant, borrowed or owned value). */
static int eval_val(const tide_expr_t *e, const tide_batch_t *in, val_t *v, tide_err_t *err) {
  if (e->agg)
    return tide_err_set(err, TIDE_EINVAL, "%s is an aggregate: evaluate its argument instead", e->text);
  int rc = check_shape(e, in, err);
  if (rc) return rc;
  ectx_t x = {in->cols, in->nrows, NULL, 0, ""};
  rc = ev(e->root, &x, v);
  free(x.tok);
  if (rc == TIDE_ESCHEMA) {
    val_free(v);
    return tide_err_set(err, rc, "%s: %s is outside the valid timestamp range " TIDE_TS_RANGE_TEXT, e->text, x.bad_ts);
  }
  if (rc) {
    val_free(v);
    return tide_err_set(err, rc, "%s: %s", e->text, tide_strerror(rc));
  }
  return 0;
}

int tide_expr_eval(const tide_expr_t *e, const tide_batch_t *in, tide_col_t *out, tide_err_t *err) {
  val_t v;
  memset(out, 0, sizeof *out);
  int rc = eval_val(e, in, &v, err);
  if (rc) return rc;
  if (v.owned) {
    *out = v.own;
    out->type = e->type;
    return 0;
  }
  v.type = e->type;
  rc = v.c ? tide_col_copy(v.c, in->nrows, out) : broadcast(&v, in->nrows, out);
  if (rc) return tide_err_set(err, rc, "%s: %s", e->text, tide_strerror(rc));
  out->type = e->type;
  return 0;
}

int tide_expr_select(const tide_expr_t *e, const tide_batch_t *in, uint32_t *rows, uint32_t *n, tide_err_t *err) {
  *n = 0;
  if (e->type != TIDE_T_BOOL)
    return tide_err_set(err, TIDE_EINVAL, "a filter needs a bool expression, got %s: %s", tide_type_name(e->type),
                        e->text);
  val_t v;
  int rc = eval_val(e, in, &v, err);
  if (rc) return rc;
  uint32_t k = 0, nr = in->nrows;
  if (!v.c) {
    if (!v.cnull && v.i)
      for (uint32_t i = 0; i < nr; i++) rows[k++] = i;
  } else {
    const uint8_t *b = v.c->values, *valid = v.c->valid;
    if (!valid)
      for (uint32_t i = 0; i < nr; i++) {
        rows[k] = i;
        k += b[i];
      }
    else
      for (uint32_t i = 0; i < nr; i++) {
        rows[k] = i;
        k += b[i] & (valid[i >> 3] >> (i & 7));
      }
  }
  val_free(&v);
  *n = k;
  return 0;
}

/* ------------------------------------------------------- ranges, workers */

/* NULLs among the first n bits of a validity bitmap. */
static uint32_t count_nulls(const uint8_t *valid, uint32_t n) {
  uint32_t k = 0;
  for (uint32_t i = 0; i < n / 8; i++) k += 8 - (uint32_t)__builtin_popcount(valid[i]);
  for (uint32_t i = n & ~7u; i < n; i++) k += !((valid[i >> 3] >> (i & 7)) & 1);
  return k;
}

static int var_type(tide_type_t t) { return t == TIDE_T_STRING || t == TIDE_T_JSON; }

int tide_expr_range_open(tide_expr_range_t *r, const tide_batch_t *b, tide_schema_t *s, uint32_t lo, uint32_t hi) {
  memset(r, 0, sizeof *r);
  uint32_t nf = b->schema->nfields, len = hi - lo, nvar = 0;
  r->nf = nf;
  for (uint32_t c = 0; c < nf; c++) nvar += var_type(b->cols[c].type) && b->cols[c].values;
  if (!(r->cols = calloc(nf ? nf : 1, sizeof *r->cols))) return -ENOMEM;
  if ((lo & 7) && !(r->bits = calloc(nf ? nf : 1, sizeof *r->bits))) return -ENOMEM;
  if (nvar && !(r->offs = malloc((size_t)nvar * (len + 1) * sizeof *r->offs))) return -ENOMEM;
  uint32_t *o = r->offs;
  for (uint32_t c = 0; c < nf; c++) {
    const tide_col_t *sc = &b->cols[c];
    tide_col_t *d = &r->cols[c];
    d->type = sc->type;
    if (sc->valid && !(lo & 7)) {
      d->valid = sc->valid + lo / 8;
    } else if (sc->valid) { /* a range that starts inside a byte: its bits, shifted */
      uint8_t *v = calloc(len / 8 + 1, 1);
      if (!v) return -ENOMEM;
      r->bits[c] = v;
      for (uint32_t i = 0; i < len; i++)
        v[i >> 3] |= (uint8_t)(((sc->valid[(lo + i) >> 3] >> ((lo + i) & 7)) & 1) << (i & 7));
      d->valid = v;
    }
    if (d->valid) d->null_count = sc->null_count ? count_nulls(d->valid, len) : 0;
    if (!sc->values) continue;
    if (var_type(sc->type)) {
      const uint32_t *so = (const uint32_t *)sc->values + lo;
      for (uint32_t i = 0; i <= len; i++) o[i] = so[i] - so[0];
      d->values = o;
      d->data = sc->data ? sc->data + so[0] : NULL;
      d->data_len = d->data_cap = o[len];
      o += len + 1;
    } else {
      d->values = (char *)sc->values + (size_t)lo * (sc->type == TIDE_T_BOOL ? 1 : 8);
    }
  }
  r->view.schema = s;
  r->view.nrows = r->view.cap = len;
  r->view.cols = r->cols;
  return 0;
}

void tide_expr_range_close(tide_expr_range_t *r) {
  for (uint32_t c = 0; r->bits && c < r->nf; c++) free(r->bits[c]);
  free(r->bits);
  free(r->cols);
  free(r->offs);
  memset(r, 0, sizeof *r);
}

#define EXPR_PAR_MIN_ROWS 8192 /* the fewest rows a task of project/where gets */

/* One task of tide_expr_project_on / tide_expr_where_on: rows [lo, hi). */
typedef struct etask {
  const tide_expr_t *const *exprs; /* project: ne expressions */
  uint32_t ne;
  const tide_expr_t *filter;       /* where */
  const tide_batch_t *in;
  uint32_t lo, hi;
  tide_expr_range_t r;
  tide_col_t *cols;                /* project: the range's ne columns */
  uint32_t *rows, n;               /* where: the rows kept (input rows) */
  tide_err_t err;
  int rc;
} etask_t;

/* 1 when e is a bare column of in (a projection copies it). */
static int is_bare(const tide_expr_t *e, const tide_batch_t *in) {
  int c = tide_expr_column(e);
  return c >= 0 && (uint32_t)c < in->schema->nfields;
}

/* Column i of a projection of in: a copy of a bare column, else the
 * expression's value. */
static int project_col(const tide_expr_t *e, const tide_batch_t *in, tide_col_t *out, tide_err_t *err) {
  int c = tide_expr_column(e);
  if (c >= 0 && (uint32_t)c < in->schema->nfields) {
    int rc = tide_col_copy(&in->cols[c], in->nrows, out);
    return rc ? tide_err_set(err, rc, "out of memory") : 0;
  }
  return tide_expr_eval(e, in, out, err);
}

static void etask_run(void *arg, size_t i) {
  etask_t *t = (etask_t *)arg + i;
  /* the view borrows the input's schema: nothing here takes a reference */
  if ((t->rc = tide_expr_range_open(&t->r, t->in, t->in->schema, t->lo, t->hi))) return;
  const tide_batch_t *v = &t->r.view;
  if (t->filter) {
    if (!(t->rows = malloc((v->nrows ? v->nrows : 1) * sizeof *t->rows))) {
      t->rc = -ENOMEM;
      return;
    }
    if ((t->rc = tide_expr_select(t->filter, v, t->rows, &t->n, &t->err))) return;
    for (uint32_t k = 0; k < t->n; k++) t->rows[k] += t->lo;
    return;
  }
  if (!(t->cols = calloc(t->ne ? t->ne : 1, sizeof *t->cols))) {
    t->rc = -ENOMEM;
    return;
  }
  for (uint32_t k = 0; k < t->ne && !t->rc; k++) /* bare columns are copied whole by the caller */
    if (!is_bare(t->exprs[k], v)) t->rc = tide_expr_eval(t->exprs[k], v, &t->cols[k], &t->err);
}

/* Tasks over ranges of in (nt of them, or 0: one thread does it). */
static uint32_t etasks(tide_pool_t *pool, const tide_batch_t *in) {
  uint32_t nt = (uint32_t)tide_pool_threads(pool);
  if (nt > in->nrows / EXPR_PAR_MIN_ROWS) nt = in->nrows / EXPR_PAR_MIN_ROWS;
  return nt < 2 ? 0 : nt;
}

/* Run the tasks t[0..nt) over ranges of in (multiples of 64 rows). 0, or
 * 1 when one failed (the caller then works on one thread, whose error is
 * the one to report). */
static int etasks_run(tide_pool_t *pool, etask_t *t, uint32_t nt, const tide_batch_t *in) {
  uint32_t n = in->nrows, chunk = ((n + nt - 1) / nt + 63) & ~63u;
  for (uint32_t i = 0; i < nt; i++) {
    t[i].in = in;
    t[i].lo = i * chunk < n ? i * chunk : n;
    t[i].hi = (i + 1) * chunk < n && i + 1 < nt ? (i + 1) * chunk : n;
  }
  tide_pool_run(pool, nt, etask_run, t);
  for (uint32_t i = 0; i < nt; i++)
    if (t[i].rc) return 1;
  return 0;
}

static void etasks_free(etask_t *t, uint32_t nt) {
  for (uint32_t i = 0; t && i < nt; i++) {
    tide_expr_range_close(&t[i].r);
    for (uint32_t k = 0; t[i].cols && k < t[i].ne; k++) tide_col_free(&t[i].cols[k]);
    free(t[i].cols);
    free(t[i].rows);
  }
  free(t);
}

/* out = column k of the ranges of tasks t[0..nt), in order (n rows of
 * type ty). 0 or -ENOMEM. */
static int join_cols(const etask_t *t, uint32_t nt, uint32_t k, tide_type_t ty, uint32_t n, tide_col_t *out) {
  int rc = tide_col_init(out, ty, n);
  if (rc) return rc;
  if (var_type(ty)) {
    size_t bytes = 0;
    for (uint32_t i = 0; i < nt; i++) bytes += t[i].cols[k].data_len;
    if (bytes > TIDE_BATCH_MAX_DATA) return TIDE_ETOOBIG;
    if (bytes && !(out->data = malloc(bytes))) return -ENOMEM;
    out->data_cap = bytes;
  }
  size_t w = ty == TIDE_T_BOOL ? 1 : 8;
  for (uint32_t i = 0, at = 0; i < nt; i++) {
    const tide_col_t *c = &t[i].cols[k];
    uint32_t len = t[i].hi - t[i].lo;
    if (var_type(ty)) {
      uint32_t *o = out->values, base = (uint32_t)out->data_len;
      const uint32_t *co = c->values;
      for (uint32_t r = 1; r <= len; r++) o[at + r] = base + co[r];
      if (c->data_len) memcpy(out->data + base, c->data, c->data_len);
      out->data_len += c->data_len;
    } else if (len) {
      memcpy((char *)out->values + (size_t)at * w, c->values, (size_t)len * w);
    }
    for (uint32_t r = 0; c->valid && c->null_count && r < len && !rc; r++)
      if (tide_col_is_null(c, r)) rc = tide_col_set_null(out, at + r, n);
    at += len;
  }
  return rc;
}

int tide_expr_project_on(tide_pool_t *pool, const tide_expr_t *const *exprs, tide_schema_t *s,
                         const tide_batch_t *in, tide_batch_t **out, tide_err_t *err) {
  *out = NULL;
  uint32_t ne = s->nfields, nt = etasks(pool, in);
  etask_t *t = nt ? calloc(nt, sizeof *t) : NULL;
  int rc = 0;
  if (t) {
    for (uint32_t i = 0; i < nt; i++) {
      t[i].exprs = exprs;
      t[i].ne = ne;
    }
    if (!etasks_run(pool, t, nt, in)) { /* the ranges' columns joined in order, bare columns copied */
      tide_col_t *cols = calloc(ne ? ne : 1, sizeof *cols);
      rc = cols ? 0 : -ENOMEM;
      for (uint32_t k = 0; k < ne && !rc; k++)
        rc = is_bare(exprs[k], in) ? tide_col_copy(&in->cols[tide_expr_column(exprs[k])], in->nrows, &cols[k])
                                   : join_cols(t, nt, k, s->fields[k].type, in->nrows, &cols[k]);
      etasks_free(t, nt);
      if (rc) {
        for (uint32_t k = 0; cols && k < ne; k++) tide_col_free(&cols[k]);
        free(cols);
        return tide_err_set(err, rc, "out of memory");
      }
      *out = tide_batch_adopt(s, in->nrows, cols); /* frees the columns on failure */
      free(cols);
      return *out ? 0 : tide_err_set(err, -ENOMEM, "out of memory");
    }
    etasks_free(t, nt);
  }
  /* one thread */
  tide_col_t *cols = calloc(ne ? ne : 1, sizeof *cols);
  if (!cols) return tide_err_set(err, -ENOMEM, "out of memory");
  for (uint32_t k = 0; k < ne && !rc; k++) rc = project_col(exprs[k], in, &cols[k], err);
  if (rc) {
    for (uint32_t k = 0; k < ne; k++) tide_col_free(&cols[k]);
    free(cols);
    return rc;
  }
  *out = tide_batch_adopt(s, in->nrows, cols);
  free(cols);
  return *out ? 0 : tide_err_set(err, -ENOMEM, "out of memory");
}

int tide_expr_where_on(tide_pool_t *pool, const tide_expr_t *e, const tide_batch_t *in, tide_batch_t **out,
                       tide_err_t *err) {
  *out = NULL;
  if (e->type != TIDE_T_BOOL)
    return tide_err_set(err, TIDE_EINVAL, "a filter needs a bool expression, got %s: %s", tide_type_name(e->type),
                        e->text);
  uint32_t nt = etasks(pool, in), n = 0;
  uint32_t *rows = malloc((in->nrows ? in->nrows : 1) * sizeof *rows);
  if (!rows) return tide_err_set(err, -ENOMEM, "out of memory");
  etask_t *t = nt ? calloc(nt, sizeof *t) : NULL;
  int rc = 1;
  if (t) {
    for (uint32_t i = 0; i < nt; i++) t[i].filter = e;
    if (!(rc = etasks_run(pool, t, nt, in)))
      for (uint32_t i = 0; i < nt; i++) {
        memcpy(rows + n, t[i].rows, (size_t)t[i].n * sizeof *rows);
        n += t[i].n;
      }
    etasks_free(t, nt);
  }
  if (rc) rc = tide_expr_select(e, in, rows, &n, err); /* one thread */
  if (!rc && (rc = tide_batch_gather(in, rows, n, out))) rc = tide_err_set(err, rc, "out of memory");
  free(rows);
  return rc;
}

/* ---------------------------------------------------------------- conjuncts */

/* n as `column + c` (expr.h, tide_expr_conjuncts): 1 and *col, *c, or 0. */
static int term(const node_t *n, uint32_t *col, int64_t *c) {
  if (n->op == OP_COL) {
    *col = (uint32_t)n->col;
    *c = 0;
    return 1;
  }
  if ((n->op == OP_ADD || n->op == OP_SUB) && n->type == TIDE_T_TIMESTAMP) {
    const node_t *a = n->kids[0], *b = n->kids[1];
    if (b->ival && b->is_const && !b->cnull && term(a, col, c)) {
      *c = (int64_t)(n->op == OP_ADD ? (uint64_t)*c + (uint64_t)b->i : (uint64_t)*c - (uint64_t)b->i);
      return 1;
    }
    if (a->ival && a->is_const && !a->cnull && n->op == OP_ADD && term(b, col, c)) {
      *c = (int64_t)((uint64_t)*c + (uint64_t)a->i);
      return 1;
    }
  }
  return 0;
}

/* Add `x op y` (nodes) to cj's comparisons when it has the form. */
static void add_cmp(tide_expr_conj_t *cj, int op, const node_t *x, const node_t *y) {
  uint32_t a, b;
  int64_t ca, cb;
  if (cj->ncmp >= 2 || !term(x, &a, &ca) || !term(y, &b, &cb)) return;
  if (op == TIDE_CMP_EQ) {
    if (x->op != OP_COL || y->op != OP_COL || x->type != y->type) return;
  } else if (x->type != TIDE_T_TIMESTAMP || y->type != TIDE_T_TIMESTAMP) {
    return;
  }
  tide_expr_cmp_t *m = &cj->cmp[cj->ncmp++];
  m->op = op, m->a = a, m->b = b;
  m->c = (int64_t)((uint64_t)cb - (uint64_t)ca);
}

static void conj_cols(const node_t *n, tide_expr_conj_t *cj) {
  if (n->op == OP_COL) {
    for (uint32_t j = 0; j < cj->ncols; j++)
      if (cj->cols[j] == (uint32_t)n->col) return;
    cj->cols[cj->ncols++] = (uint32_t)n->col;
  }
  for (uint32_t k = 0; k < n->nkids; k++) conj_cols(n->kids[k], cj);
}

/* Collect the AND terms under n into list (grown as needed). */
static int conj_walk(const node_t *n, const tide_schema_t *s, tide_expr_conj_t **list, uint32_t *cnt, uint32_t *cap) {
  if (n->op == OP_AND && !n->is_const) {
    int rc = conj_walk(n->kids[0], s, list, cnt, cap);
    return rc ? rc : conj_walk(n->kids[1], s, list, cnt, cap);
  }
  if (*cnt == *cap) {
    uint32_t c = *cap ? *cap * 2 : 4;
    tide_expr_conj_t *l = realloc(*list, c * sizeof *l);
    if (!l) return -ENOMEM;
    *list = l, *cap = c;
  }
  tide_expr_conj_t *cj = &(*list)[*cnt];
  memset(cj, 0, sizeof *cj);
  (*cnt)++;
  tide_buf_t b = TIDE_BUF_INIT;
  if (pr(n, s, &b) || tide_buf_cstr(&b)) return tide_buf_free(&b), -ENOMEM;
  cj->text = b.data;
  if (!(cj->cols = malloc((s->nfields ? s->nfields : 1) * sizeof *cj->cols))) return -ENOMEM;
  conj_cols(n, cj);
  static const int ops[] = {[OP_EQ] = TIDE_CMP_EQ, [OP_LT] = TIDE_CMP_LT, [OP_LE] = TIDE_CMP_LE,
                            [OP_GT] = TIDE_CMP_GT, [OP_GE] = TIDE_CMP_GE};
  if (n->is_const) return 0;
  if (n->op == OP_EQ || n->op == OP_LT || n->op == OP_LE || n->op == OP_GT || n->op == OP_GE)
    add_cmp(cj, ops[n->op], n->kids[0], n->kids[1]);
  else if (n->op == OP_BETWEEN && !n->neg) {
    add_cmp(cj, TIDE_CMP_GE, n->kids[0], n->kids[1]);
    add_cmp(cj, TIDE_CMP_LE, n->kids[0], n->kids[2]);
  }
  return 0;
}

void tide_expr_conjuncts_free(tide_expr_conj_t *c, uint32_t n) {
  if (!c) return;
  for (uint32_t j = 0; j < n; j++) {
    free(c[j].text);
    free(c[j].cols);
  }
  free(c);
}

/* The conjuncts of e (expr.h). */
int tide_expr_conjuncts(const tide_expr_t *e, tide_expr_conj_t **out, uint32_t *n) {
  *out = NULL;
  *n = 0;
  if (!e->root) return TIDE_EINVAL;
  tide_expr_conj_t *list = NULL;
  uint32_t cnt = 0, cap = 0;
  int rc = conj_walk(e->root, e->schema, &list, &cnt, &cap);
  if (rc) {
    tide_expr_conjuncts_free(list, cnt);
    return rc;
  }
  *out = list;
  *n = cnt;
  return 0;
}
