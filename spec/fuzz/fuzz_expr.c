/*
 * fuzz_expr.c: the expression parser (core/expr.c). The input is an
 * expression's text, compiled against FUZZ_DDL, also with aggregates
 * allowed; what compiles is evaluated over the edge-value batch (and used
 * as a filter when boolean), and its canonical text (output column names,
 * plan fingerprints) must compile again, to the same text. (Not always to
 * the same type: the text of +NULL is NULL.)
 */
#include "expr.h"
#include "fuzz.h"
#include "vec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  tide_schema_t *s = fuzz_schema();
  const tide_batch_t *b = fuzz_batch();
  for (int flags = 0; flags <= TIDE_EXPR_AGG; flags += TIDE_EXPR_AGG) {
    tide_expr_t *e = NULL;
    tide_err_t err = {0, ""};
    if (tide_expr_compile((const char *)data, size, s, flags, &e, &err)) {
      FUZZ_CHECK(e == NULL && err.msg[0], "a failed compile returns a message and nothing else");
      continue;
    }
    const tide_expr_t *ev = tide_expr_agg(e) ? tide_expr_agg_arg(e) : e;
    if (ev) {
      tide_col_t out;
      tide_err_t e2 = {0, ""};
      if (tide_expr_eval(ev, b, &out, &e2) == 0) {
        FUZZ_CHECK(out.type == tide_expr_type(ev), "eval gives the compiled type");
        tide_col_free(&out);
      }
      if (tide_expr_type(ev) == TIDE_T_BOOL) {
        uint32_t rows[16], n = 0;
        if (tide_expr_select(ev, b, rows, &n, &e2) == 0) FUZZ_CHECK(n <= b->nrows, "select keeps at most every row");
      }
    }
    /* the canonical text means the same thing */
    const char *text = tide_expr_text(e);
    tide_expr_t *again = NULL;
    tide_err_t e3 = {0, ""};
    int rc = tide_expr_compile(text, strlen(text), s, flags, &again, &e3);
    /* the text adds parentheses, which count towards the nesting bound
     * (an expression near it, "- - - ... n", can print beyond it) */
    if (rc && strstr(e3.msg, "nested too deeply")) {
      tide_expr_free(e);
      continue;
    }
    FUZZ_CHECK(rc == 0, "canonical text '%s': %s", text, e3.msg);
    FUZZ_CHECK(!strcmp(tide_expr_text(again), text), "'%s' became '%s'", text, tide_expr_text(again));
    tide_expr_free(again);
    tide_expr_free(e);
  }
  return 0;
}
