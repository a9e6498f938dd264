/*
 * expr.h: SQL-like expressions, compiled once against an input schema into
 * a typed tree, evaluated over a whole batch a column at a time.
 *
 * Grammar (keywords case-insensitive; identifiers case-sensitive; an
 * identifier may be quoted with backticks or double quotes):
 *
 *   expr     := or [ AS name ]                      (AS only at the top)
 *   or       := and { OR and }
 *   and      := not { AND not }
 *   not      := NOT not | pred
 *   pred     := add [ cmp add
 *                   | IS [NOT] NULL
 *                   | [NOT] IN ( expr {, expr} )
 *                   | [NOT] BETWEEN add AND add
 *                   | [NOT] LIKE add ]
 *   cmp      := = | == | != | <> | < | <= | > | >=
 *   add      := mul { (+|-) mul }
 *   mul      := unary { (*|/|%) unary }
 *   unary    := - unary | + unary | primary
 *   primary  := literal | column | ( or ) | func ( args ) | CAST ( or AS type )
 *             | CASE [operand] WHEN or THEN or { WHEN .. THEN .. } [ELSE or] END
 *   literal  := integer | decimal | 1e3 | 'text' (with '' for a quote) | TRUE | FALSE | NULL
 *             | INTERVAL n unit { n unit }            (n: a number, also quoted: '10')
 *             | INTERVAL 'n unit { n unit }'
 *   unit     := week | day | hour | minute | second | millisecond  (or plural)
 *   func     := lower upper length substr concat coalesce abs round floor ceil
 *
 * Types follow Spark's non-ANSI rules:
 *   - int (+ - * %) int -> int, 64-bit, wrapping on overflow; with a double -> double
 *   - a / b -> double always; x / 0 and x % 0 -> NULL
 *   - an interval literal is a length of time (ms; a fraction of a unit is
 *     allowed when the result is whole ms); it may only be added to or
 *     subtracted from a timestamp (-> timestamp), or to another interval;
 *     its canonical text is INTERVAL 'n' UNIT with the largest exact unit.
 *     A word "interval" not followed by a number or a quoted text is a column;
 *   - comparisons need comparable types: numbers with numbers (int and
 *     double compare as numbers), strings, bools, timestamps; a timestamp
 *     compares with a string literal (parsed as ISO-8601 at compile time)
 *     or an integer (ms). Anything else is an error at compile time.
 *   - AND / OR / NOT use three-valued logic (NULL AND false = false, NULL OR
 *     true = true); any other operator on a NULL gives NULL.
 *   - LIKE: % any run, _ one character, \ escapes; on strings.
 *   - CAST(x AS type): int/double/string/bool/timestamp among themselves as
 *     Spark does (string -> int that does not parse gives NULL; double -> int
 *     truncates; timestamp <-> int is ms; timestamp -> string is ISO-8601).
 *     A cast to timestamp, or a timestamp +/- interval, that gives a time
 *     outside the valid range (schema.h: TIDE_TS_MIN..TIDE_TS_MAX) fails the
 *     evaluation with TIDE_ESCHEMA, naming the value, as ingest refuses such
 *     times (a NaN or infinite double, like an unparseable string, gives
 *     NULL).
 *   - functions: lower(s) upper(s) length(s) (characters, UTF-8)
 *     substr(s, pos [, len]) (1-based, negative pos counts from the end)
 *     concat(a, b, ...) (NULL if any is NULL; non-strings are cast)
 *     coalesce(a, b, ...) (common type) abs(n) round(n [, d]) (HALF_UP)
 *     floor(n) ceil(n) (-> int for double input, as Spark's bigint).
 * The output name is the alias after AS; for a bare column, its name; else
 * the expression's canonical text (e.g. "(signal * 2)").
 *
 * Aggregates (only with TIDE_EXPR_AGG, only at the top, optionally with AS):
 *   count(*) count(x) sum(x) min(x) max(x) avg(x) first(x) last(x)
 *   count_distinct(x) (also count(DISTINCT x)); x is any non-aggregate expr.
 *
 * Errors are TIDE_EPARSE ("at position 7: expected ')'", 1-based character
 * position) or TIDE_EINVAL for binding: "unknown column 'sigal' (columns: ts,
 * device, signal)", "cannot compare string with int: (device = 3)" (the
 * canonical text of the offending node), "unknown function 'lowr'
 * (functions: ...)", "function 'substr' takes 2 or 3 arguments, got 1",
 * "sum needs a number, got string", "aggregate function 'sum' is not
 * allowed here".
 *
 * Details of this implementation (expr.c):
 *   - doubles compare as in Spark: NaN = NaN, and NaN sorts above all;
 *   - lower/upper change ASCII letters only;
 *   - json values allow only IS [NOT] NULL, = and != with json, CAST to
 *     string and coalesce;
 *   - a bare NULL has type string; elsewhere NULL takes its context's type;
 *   - column names that are not plain identifiers print `quoted`;
 *   - nesting is limited (256 levels of parentheses/NOT/minus, a tree 1000
 *     deep): deeper text is a TIDE_EPARSE, never a crash.
 */
#ifndef TIDE_EXPR_H
#define TIDE_EXPR_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "err.h"
#include "schema.h"

typedef struct tide_expr tide_expr_t;

enum { TIDE_EXPR_AGG = 1 /* allow an aggregate call at the top */ };

typedef enum tide_agg_kind {
  TIDE_AGG_NONE = 0,
  TIDE_AGG_COUNT_STAR,
  TIDE_AGG_COUNT,
  TIDE_AGG_SUM,
  TIDE_AGG_MIN,
  TIDE_AGG_MAX,
  TIDE_AGG_AVG,
  TIDE_AGG_FIRST,
  TIDE_AGG_LAST,
  TIDE_AGG_COUNT_DISTINCT
} tide_agg_kind_t;

/* Compile text against `in` (a reference is taken). */
int tide_expr_compile(const char *text, size_t len, tide_schema_t *in, int flags, tide_expr_t **out,
                      tide_err_t *err);
void tide_expr_free(tide_expr_t *e); /* NULL allowed */

tide_type_t tide_expr_type(const tide_expr_t *e);
int tide_expr_nullable(const tide_expr_t *e);
const char *tide_expr_name(const tide_expr_t *e);   /* alias, column name, or canonical text */
const char *tide_expr_text(const tide_expr_t *e);   /* canonical text, without the alias */
int tide_expr_column(const tide_expr_t *e);         /* input column index for a bare column, else -1 */

/* For an aggregate expression: its kind, and the argument (NULL for
 * count(*)), which is an ordinary expression owned by e. For others:
 * TIDE_AGG_NONE and NULL. The type of an aggregate expression is its
 * result type: count* -> int, sum(int) -> int, sum(double) -> double,
 * avg -> double, min/max/first/last -> the argument's type. */
tide_agg_kind_t tide_expr_agg(const tide_expr_t *e);
const tide_expr_t *tide_expr_agg_arg(const tide_expr_t *e);

/* Evaluate over every row of in (whose schema must be the one compiled
 * against, or have the same shape); out is initialised by the call and owned
 * by the caller (tide_col_free), in->nrows rows, of type tide_expr_type(e).
 * Not for aggregate expressions (evaluate their argument instead). */
int tide_expr_eval(const tide_expr_t *e, const tide_batch_t *in, tide_col_t *out, tide_err_t *err);

/* Rows of in where the bool expression e is TRUE (false and NULL are
 * dropped), in order: rows needs in->nrows entries; *n receives the count. */
int tide_expr_select(const tide_expr_t *e, const tide_batch_t *in, uint32_t *rows, uint32_t *n, tide_err_t *err);

/* ------------------------------------------------------- on workers ---
 *
 * A range of a batch for a worker: rows [lo, hi) of b as a batch (view)
 * that borrows b's vectors, with string offsets rebased to 0 and NULL
 * bitmaps copied when lo is not a multiple of 8, so that it keeps
 * batch.h's invariants. The view's schema is s (borrowed: b's own, or a
 * copy when the caller makes batches from the view on a worker, since
 * schema references are not counted atomically). Valid while b is. */
typedef struct tide_expr_range {
  tide_batch_t view;
  tide_col_t *cols;
  uint32_t *offs;
  uint8_t **bits;
  uint32_t nf;
} tide_expr_range_t;

/* 0 or -ENOMEM; close r either way (tide_expr_range_close). */
int tide_expr_range_open(tide_expr_range_t *r, const tide_batch_t *b, tide_schema_t *s, uint32_t lo, uint32_t hi);
void tide_expr_range_close(tide_expr_range_t *r);

struct tide_pool;

/* core.project and core.where over a pool (pool.h; NULL: the caller):
 * a batch of 2 x 8192 rows or more is cut into one range per thread (a
 * multiple of 64 rows), each range evaluated by a task, and the results
 * joined in order, so the output is the one-thread output. A failing
 * range makes the whole batch run again on the caller, so the error is
 * one thread's error.
 *
 * tide_expr_project_on: *out = one column per field of s, the value of
 * exprs[i] (a bare column is copied); the types must be s's (checked by
 * the caller). tide_expr_where_on: *out = the rows of in where the bool
 * expression e is TRUE. Both: a new batch owned by the caller; errors as
 * tide_expr_eval / tide_expr_select, -ENOMEM. */
int tide_expr_project_on(struct tide_pool *pool, const tide_expr_t *const *exprs, tide_schema_t *s,
                         const tide_batch_t *in, tide_batch_t **out, tide_err_t *err);
int tide_expr_where_on(struct tide_pool *pool, const tide_expr_t *e, const tide_batch_t *in, tide_batch_t **out,
                       tide_err_t *err);

/* Join planning (stream-stream joins) reads the structure of a condition:
 * its top-level conjuncts (the terms of its outermost ANDs) and, for each,
 * the comparisons between two columns that it states, each in the form
 * `column a  op  column b + c`. A side of a comparison counts when it is a
 * bare column, or a timestamp column plus or minus interval literals (c
 * is then their sum in ms); `x BETWEEN lo AND hi` states x >= lo and
 * x <= hi. Equalities are reported between any two bare columns of one
 * type (c = 0); <, <=, >, >= only between timestamps. */
enum { TIDE_CMP_EQ = 1, TIDE_CMP_LT, TIDE_CMP_LE, TIDE_CMP_GT, TIDE_CMP_GE };

typedef struct tide_expr_cmp {
  int op;        /* TIDE_CMP_* */
  uint32_t a, b; /* input columns */
  int64_t c;
} tide_expr_cmp_t;

typedef struct tide_expr_conj {
  char *text;             /* the conjunct's canonical text: an expression that compiles again */
  uint32_t *cols, ncols;  /* the input columns it reads, each once */
  tide_expr_cmp_t cmp[2]; /* the comparisons it states */
  uint32_t ncmp;
} tide_expr_conj_t;

/* The conjuncts of e in order (*out malloc'd, *n entries; free with
 * tide_expr_conjuncts_free). A bool expression without a top-level AND is
 * one conjunct. Errors: TIDE_EINVAL (e is an aggregate), -ENOMEM. */
int tide_expr_conjuncts(const tide_expr_t *e, tide_expr_conj_t **out, uint32_t *n);
void tide_expr_conjuncts_free(tide_expr_conj_t *c, uint32_t n);

#endif
