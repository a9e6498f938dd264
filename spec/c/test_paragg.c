/*
 * test_paragg.c: the parallel push (agg.c, "Parallel push"). The same
 * batches go through tide_agg_push with no pool and with pools of 2 and 3
 * threads (ranges of a multiple of 64 rows, and ranges of any size down
 * to one row, whose NULL bitmaps start inside a byte), and everything the
 * aggregations hold or hand back must be equal: the push outputs (pairs,
 * late pairs, late groups, event-time figures, lost rows), the groups in
 * order with their state ids and state records byte for byte, the dirty
 * set and the memory figure. Covered: a filter, a Lua-style selection,
 * tumbling and sliding windows, NULL times, keys and arguments, late
 * pairs in several ranges, every aggregate that folds, the ones that stay
 * on one thread (sum of double, string min), avg of int past 2^52 (back to
 * one thread for good) and a failing expression (the error of one
 * thread); and core.project / core.where over ranges. Static
 * aggregations (tide_agg_set_static, agg.c "Static aggregation": the fold
 * runs on every thread, one part of the keys each) give one thread's
 * result after every push, and once folded back into one table (any
 * other update) one thread's groups, sids, records, dirty set and memory.
 * The one-stage scan of a file (core/scan.h: workers read, decode and
 * aggregate whole ranges) gives one thread's result for ranges of any
 * size, and stays usable afterwards; a bad line or avg past 2^52 makes it
 * give up with nothing aggregated. Run under ASan, TSan (make tsan) and helgrind (make helgrind);
 * every pool, aggregation and batch is closed at the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "agg.h"
#include "decode.h"
#include "scan.h"
#include "buf.h"
#include "expr.h"
#include "pool.h"
#include "schema.h"
#include "t.h"
#include "vec.h"

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s: %s\n", ddl, err.msg);
  return s;
}

static tide_expr_t *compile(const char *text, tide_schema_t *s) {
  tide_expr_t *e = NULL;
  tide_err_t err = {0, ""};
  if (tide_expr_compile(text, strlen(text), s, 0, &e, &err)) fprintf(stderr, "%s: %s\n", text, err.msg);
  return e;
}

/* n rows of (t timestamp?, k string?, v int?, d double) from row `first`
 * on: times up to 9 s out of order, every 97th NULL; 300 keys (some
 * longer than a key record holds inline), every 53rd NULL; every 31st v
 * NULL; `big` adds 2^50 to every v. */
static tide_batch_t *rows(tide_schema_t *in, uint32_t first, uint32_t n, int big) {
  tide_batch_t *b = tide_batch_new(in, n);
  char key[64];
  for (uint32_t j = 0; b && j < n; j++) {
    uint32_t i = first + j;
    if (tide_batch_row_begin(b)) break;
    if (i % 97 == 5) tide_batch_set_null(b, 0);
    else tide_batch_set_i64(b, 0, 1700000000000 + (int64_t)i * 11 - (int64_t)(i * 7919 % 9000));
    if (i % 53 == 7) {
      tide_batch_set_null(b, 1);
    } else {
      int len = snprintf(key, sizeof key, i % 5 ? "k%u" : "a-rather-long-key-%u", i * 31 % 300);
      tide_batch_set_str(b, 1, key, (size_t)len);
    }
    if (i % 31 == 3) tide_batch_set_null(b, 2);
    else tide_batch_set_i64(b, 2, (int64_t)(i * 13 % 41) - 10 + (big ? (int64_t)1 << 50 : 0));
    tide_batch_set_f64(b, 3, (double)(i % 17) * 0.1);
    tide_batch_row_commit(b);
  }
  return b;
}

/* 1 when columns x and y hold the same n rows. */
static int col_eq(const tide_col_t *x, const tide_col_t *y, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    int nx = tide_col_is_null(x, i);
    if (nx != tide_col_is_null(y, i)) return 0;
    if (nx) continue;
    if (x->type == TIDE_T_STRING || x->type == TIDE_T_JSON) {
      size_t lx, ly;
      const char *px = tide_col_str(x, i, &lx), *py = tide_col_str(y, i, &ly);
      if (lx != ly || memcmp(px, py, lx)) return 0;
    } else if (x->type == TIDE_T_BOOL) {
      if (tide_col_bool(x, i) != tide_col_bool(y, i)) return 0;
    } else if (tide_col_i64(x, i) != tide_col_i64(y, i)) { /* doubles: the same bits */
      return 0;
    }
  }
  return 1;
}

static int batch_eq(const tide_batch_t *x, const tide_batch_t *y) {
  if (!x || !y) return x == y;
  if (x->nrows != y->nrows || x->schema->nfields != y->schema->nfields) return 0;
  for (uint32_t c = 0; c < x->schema->nfields; c++)
    if (!col_eq(&x->cols[c], &y->cols[c], x->nrows)) return 0;
  return 1;
}

/* 1 when two aggregations hold the same groups in the same order, with
 * the same sids, state records, dirty set and memory figure. */
static int agg_eq(const tide_agg_t *x, const tide_agg_t *y) {
  if (tide_agg_groups(x) != tide_agg_groups(y) || tide_agg_bytes(x) != tide_agg_bytes(y) ||
      tide_agg_next_sid(x) != tide_agg_next_sid(y))
    return 0;
  tide_buf_t bx = TIDE_BUF_INIT, by = TIDE_BUF_INIT;
  tide_err_t err = {0, ""};
  int eq = 1;
  for (uint32_t g = 0; eq && g < tide_agg_groups(x); g++) {
    bx.len = by.len = 0;
    eq = tide_agg_sid(x, g) == tide_agg_sid(y, g) && !tide_agg_encode(x, g, &bx, &err) &&
         !tide_agg_encode(y, g, &by, &err) && bx.len == by.len && !memcmp(bx.data, by.data, bx.len);
  }
  tide_buf_free(&bx);
  tide_buf_free(&by);
  const uint32_t *dx, *dy;
  uint32_t nx = tide_agg_dirty(x, &dx), ny = tide_agg_dirty(y, &dy);
  return eq && nx == ny && (!nx || !memcmp(dx, dy, nx * sizeof *dx));
}

static int out_eq(const tide_agg_output_t *x, const tide_agg_output_t *y) {
  return x->pushed == y->pushed && x->late_pairs == y->late_pairs && x->late_groups == y->late_groups &&
         x->time_count == y->time_count && x->time_min == y->time_min && x->time_max == y->time_max &&
         batch_eq(x->lost, y->lost);
}

/* One scenario: the specs (nspecs), a window (slide = size: tumbling),
 * the filter text or a selection of every third row, batches of `rows`
 * rows. Pushes `nb` batches into an aggregation without a pool and into
 * one per pool (with min rows per task), comparing after each. */
typedef struct scenario {
  const tide_agg_spec_t *specs;
  uint32_t nspecs;
  int64_t slide;
  const char *filter;
  int select;
  uint32_t rows, nb;
  uint32_t min_rows;
  int big;
  int par; /* every push runs on the pool */
  int stat; /* the pool's aggregations are static ones: no late column, no clearing */
} scenario_t;

static void run_scenario(const scenario_t *sc, tide_pool_t *const *pools, uint32_t np) {
  tide_schema_t *in = schema("t timestamp?, k string?, v int?, d double");
  tide_schema_t *ks = schema("window_start timestamp, k string?");
  tide_err_t err = {0, ""};
  tide_agg_t *a[4] = {0};
  for (uint32_t i = 0; i <= np; i++) T_EQ_INT(tide_agg_new(ks, sc->specs, sc->nspecs, &a[i], &err), 0);
  for (uint32_t i = 1; sc->stat && i <= np; i++) /* parted unless an aggregate does not fold */
    T_EQ_INT(tide_agg_set_static(a[i], (uint32_t)tide_pool_threads(pools[i - 1]), &err), sc->nspecs != 3);
  tide_expr_t *kexpr = compile("k", in), *filter = sc->filter ? compile(sc->filter, in) : NULL;
  tide_expr_t *arg[8] = {0};
  for (uint32_t s = 0; s < sc->nspecs; s++)
    if (sc->specs[s].kind != TIDE_AGG_COUNT_STAR)
      arg[s] = compile(sc->specs[s].arg_type == TIDE_T_DOUBLE ? "d" : sc->specs[s].arg_type == TIDE_T_STRING ? "k"
                       : s % 2 ? "v" : "v * 3", in);
  tide_agg_key_src_t keys[] = {{TIDE_AGG_KEY_WINDOW_START, NULL}, {TIDE_AGG_KEY_EXPR, kexpr}};
  tide_window_t w = {10000, sc->slide, 0};
  uint32_t *sel = malloc(sc->rows * sizeof *sel);
  tide_batch_t *empty = rows(in, 0, 0, 0); /* an empty batch first: nothing changes, nothing is folded back */
  for (uint32_t i = 0; i <= np; i++) {
    tide_agg_input_t pin;
    memset(&pin, 0, sizeof pin);
    pin.batch = empty;
    pin.keys = keys;
    pin.args = (const tide_expr_t *const *)arg;
    pin.window = &w;
    pin.window_col = 0;
    pin.late_col = pin.time_col = -1;
    pin.pool = i ? pools[i - 1] : NULL;
    tide_agg_output_t out;
    T_EQ_INT(tide_agg_push(a[i], &pin, &out, &err), 0);
    T_EQ_INT(out.pushed, 0);
    T_EQ_INT(tide_agg_groups(a[i]), 0);
  }
  tide_batch_free(empty);
  for (uint32_t bi = 0; bi < sc->nb; bi++) {
    tide_batch_t *b = rows(in, bi * sc->rows, sc->rows, sc->big);
    uint32_t ns = 0;
    for (uint32_t r = 0; r < sc->rows; r++)
      if (r % 3) sel[ns++] = r;
    tide_agg_output_t out[4];
    for (uint32_t i = 0; i <= np; i++) {
      tide_agg_input_t pin;
      memset(&pin, 0, sizeof pin);
      pin.batch = b;
      pin.keys = keys;
      pin.args = (const tide_expr_t *const *)arg;
      pin.window = &w;
      pin.window_col = 0;
      pin.filter = filter;
      if (sc->select) {
        pin.select = sel;
        pin.nselect = ns;
      }
      pin.late_col = bi && !sc->stat ? 0 : -1; /* from the second batch on: the windows that end by its middle are late */
      pin.late_bound = 1700000000000 + (int64_t)(bi * sc->rows + sc->rows / 2) * 11;
      pin.time_col = sc->stat ? -1 : 0;
      pin.pool = i ? pools[i - 1] : NULL;
      pin.par_min_rows = sc->min_rows;
      T_EQ_INT(tide_agg_push(a[i], &pin, &out[i], &err), 0);
    }
    for (uint32_t i = 1; i <= np; i++) {
      T_CHECK(out_eq(&out[0], &out[i]));
      if (!sc->stat) {
        T_CHECK(agg_eq(a[0], a[i]));
        continue;
      }
      tide_batch_t *r0 = NULL, *r1 = NULL; /* parted: the same rows in the same order, after every push */
      T_EQ_INT(tide_agg_result(a[0], &r0, &err), 0);
      T_EQ_INT(tide_agg_result(a[i], &r1, &err), 0);
      T_CHECK(batch_eq(r0, r1));
      T_EQ_INT(tide_agg_groups(a[i]), tide_agg_groups(a[0]));
      tide_batch_free(r0);
      tide_batch_free(r1);
    }
    if (bi && !sc->stat) T_CHECK(out[0].late_pairs > 0);
    for (uint32_t i = 0; i <= np; i++) {
      tide_batch_free(out[i].lost);
      tide_batch_free(out[i].created);
      if (bi % 2 && !sc->stat) tide_agg_clear_dirty(a[i]); /* dirty sets that span batches too */
    }
    tide_batch_free(b);
  }
  tide_batch_t *r0 = NULL, *r1 = NULL;
  T_EQ_INT(tide_agg_result(a[0], &r0, &err), 0);
  T_CHECK(tide_agg_groups(a[0]) > sc->rows * sc->nb / 40);
  T_EQ_INT(tide_agg_par_pushes(a[0]), 0);
  for (uint32_t i = 1; i <= np; i++) T_EQ_INT(tide_agg_par_pushes(a[i]), sc->par ? sc->nb : 0);
  for (uint32_t i = 1; i <= np; i++) {
    T_EQ_INT(tide_agg_result(a[i], &r1, &err), 0);
    T_CHECK(batch_eq(r0, r1));
    tide_batch_free(r1);
  }
  tide_batch_free(r0);
  if (sc->stat) { /* a lookup folds the parts back into one table: one thread's, every byte */
    tide_batch_t *kb = tide_batch_new(ks, 1);
    uint32_t gid;
    T_EQ_INT(tide_batch_row_begin(kb), 0);
    tide_batch_set_i64(kb, 0, 0);
    tide_batch_set_null(kb, 1);
    tide_batch_row_commit(kb);
    for (uint32_t i = 0; i <= np; i++) T_EQ_INT(tide_agg_lookup(a[i], kb, &gid, &err), 0);
    for (uint32_t i = 1; i <= np; i++) T_CHECK(agg_eq(a[0], a[i]));
    tide_batch_free(kb);
  }
  free(sel);
  for (uint32_t s = 0; s < sc->nspecs; s++) tide_expr_free(arg[s]);
  tide_expr_free(kexpr);
  tide_expr_free(filter);
  for (uint32_t i = 0; i <= np; i++) tide_agg_free(a[i]);
  tide_schema_unref(in);
  tide_schema_unref(ks);
}

static const tide_agg_spec_t FOLDS[] = {
    {TIDE_AGG_COUNT_STAR, 0, "n"},         {TIDE_AGG_COUNT, TIDE_T_INT, "c"}, {TIDE_AGG_SUM, TIDE_T_INT, "s"},
    {TIDE_AGG_AVG, TIDE_T_INT, "a"},        {TIDE_AGG_MIN, TIDE_T_INT, "lo"},  {TIDE_AGG_MAX, TIDE_T_INT, "hi"},
    {TIDE_AGG_FIRST, TIDE_T_INT, "first"}, {TIDE_AGG_LAST, TIDE_T_INT, "last"}};
static const tide_agg_spec_t ONE_THREAD[] = {
    {TIDE_AGG_COUNT_STAR, 0, "n"}, {TIDE_AGG_SUM, TIDE_T_DOUBLE, "s"}, {TIDE_AGG_MIN, TIDE_T_STRING, "lo"}};

static tide_pool_t *pools[2];

static void test_big_batches(void) {
  scenario_t sc = {FOLDS, 8, 10000, "v IS NULL OR v % 5 != 0", 0, 20000, 4, 0, 0, 1, 0};
  run_scenario(&sc, pools, 2);
}

static void test_sliding_and_selection(void) {
  scenario_t sc = {FOLDS, 8, 5000, NULL, 1, 20000, 3, 0, 0, 1, 0};
  run_scenario(&sc, pools, 2);
}

static void test_tiny_ranges(void) {
  /* ranges of 1 to 7 rows and bitmaps that start inside a byte */
  scenario_t sc = {FOLDS, 8, 10000, "v IS NULL OR v > -5", 0, 1000, 3, 1, 0, 1, 0};
  run_scenario(&sc, pools, 2);
  scenario_t sc2 = {FOLDS, 8, 10000, NULL, 0, 37, 3, 3, 0, 1, 0};
  run_scenario(&sc2, pools, 2);
}

static void test_one_thread_aggregates(void) {
  scenario_t sc = {ONE_THREAD, 3, 10000, NULL, 0, 20000, 2, 0, 0, 0, 0};
  run_scenario(&sc, pools, 2);
  /* avg of values near 2^50: past 2^52 after a few rows, then one thread */
  scenario_t sc2 = {FOLDS, 8, 10000, NULL, 0, 20000, 2, 0, 1, 0, 0};
  run_scenario(&sc2, pools, 2);
}

/* Static aggregations: each scenario above with the pool's aggregations
 * parted (sliding windows, a selection, ranges down to one row), the
 * aggregates that do not fold (they stay one table), and avg past 2^52
 * (folded back into one table, then one thread). */
static void test_static(void) {
  scenario_t sc = {FOLDS, 8, 10000, "v IS NULL OR v % 5 != 0", 0, 20000, 4, 0, 0, 1, 1};
  run_scenario(&sc, pools, 2);
  scenario_t sc2 = {FOLDS, 8, 5000, NULL, 1, 20000, 3, 0, 0, 1, 1};
  run_scenario(&sc2, pools, 2);
  scenario_t sc3 = {FOLDS, 8, 10000, "v IS NULL OR v > -5", 0, 1000, 3, 1, 0, 1, 1};
  run_scenario(&sc3, pools, 2);
  scenario_t sc4 = {FOLDS, 8, 10000, NULL, 0, 37, 3, 3, 0, 1, 1};
  run_scenario(&sc4, pools, 2);
  scenario_t sc5 = {FOLDS, 8, 10000, NULL, 0, 5000, 3, 0, 0, 1, 1}; /* one range per push: the fold still parted */
  run_scenario(&sc5, pools, 2);
  scenario_t sc6 = {ONE_THREAD, 3, 10000, NULL, 0, 20000, 2, 0, 0, 0, 1};
  run_scenario(&sc6, pools, 2);
  scenario_t sc7 = {FOLDS, 8, 10000, NULL, 0, 20000, 2, 0, 1, 0, 1};
  run_scenario(&sc7, pools, 2);
}

/* A time cast that fails in the last range only: the same error as one
 * thread, and nothing aggregated. */
static void test_error_is_one_threads(void) {
  tide_schema_t *in = schema("t timestamp?, k string?, v int?, d double");
  tide_schema_t *ks = schema("k string?");
  tide_batch_t *b = rows(in, 0, 20000, 0);
  ((int64_t *)b->cols[2].values)[19990] = INT64_MAX / 2; /* row 19990's v: not a valid time */
  tide_expr_t *kexpr = compile("k", in), *arg = compile("CAST(v AS timestamp)", in);
  tide_agg_key_src_t keys[] = {{TIDE_AGG_KEY_EXPR, kexpr}};
  const tide_expr_t *args[] = {arg};
  tide_agg_spec_t sp[] = {{TIDE_AGG_MAX, TIDE_T_TIMESTAMP, "m"}};
  char msg[3][sizeof ((tide_err_t *)0)->msg];
  for (int i = 0; i < 3; i++) { /* one thread, the pool, the pool with a static aggregation */
    tide_agg_t *a = NULL;
    tide_err_t err = {0, ""};
    T_EQ_INT(tide_agg_new(ks, sp, 1, &a, &err), 0);
    if (i == 2) T_EQ_INT(tide_agg_set_static(a, 3, &err), 1);
    tide_agg_input_t pin;
    memset(&pin, 0, sizeof pin);
    pin.batch = b;
    pin.keys = keys;
    pin.args = args;
    pin.window_col = pin.late_col = pin.time_col = -1;
    pin.pool = i ? pools[1] : NULL;
    tide_agg_output_t out;
    T_EQ_INT(tide_agg_push(a, &pin, &out, &err), TIDE_ESCHEMA);
    T_EQ_INT(tide_agg_groups(a), 0);
    memcpy(msg[i], err.msg, sizeof msg[i]);
    tide_agg_free(a);
  }
  T_EQ_STR(msg[0], msg[1]);
  T_EQ_STR(msg[0], msg[2]);
  tide_expr_free(kexpr);
  tide_expr_free(arg);
  tide_batch_free(b);
  tide_schema_unref(in);
  tide_schema_unref(ks);
}

/* core.project and core.where over ranges (expr.h, "on workers"): the
 * same batch as one thread, and a failing range gives one thread's error. */
static void test_project_where(void) {
  tide_schema_t *in = schema("t timestamp?, k string?, v int?, d double");
  tide_schema_t *os = schema("k string?, x int?, y double, u string?, t timestamp?");
  tide_batch_t *b = rows(in, 0, 40000, 0);
  const char *texts[] = {"k", "v * 2 + 1", "d / 3", "upper(k)", "t"};
  tide_expr_t *ex[5];
  for (int i = 0; i < 5; i++) ex[i] = compile(texts[i], in);
  tide_expr_t *cond = compile("v IS NULL OR v % 3 = 1", in), *bad = compile("CAST(v AS timestamp) IS NULL", in);
  tide_err_t err = {0, ""};
  tide_batch_t *one = NULL, *many = NULL;
  for (int p = 0; p < 2; p++) {
    T_EQ_INT(tide_expr_project_on(NULL, (const tide_expr_t *const *)ex, os, b, &one, &err), 0);
    T_EQ_INT(tide_expr_project_on(pools[p], (const tide_expr_t *const *)ex, os, b, &many, &err), 0);
    T_CHECK(one && one->nrows == 40000 && batch_eq(one, many));
    tide_batch_free(one);
    tide_batch_free(many);
    T_EQ_INT(tide_expr_where_on(NULL, cond, b, &one, &err), 0);
    T_EQ_INT(tide_expr_where_on(pools[p], cond, b, &many, &err), 0);
    T_CHECK(one && one->nrows > 10000 && one->nrows < 30000 && batch_eq(one, many));
    tide_batch_free(one);
    tide_batch_free(many);
  }
  ((int64_t *)b->cols[2].values)[39990] = INT64_MAX / 2; /* not a valid time: in the last range */
  tide_err_t e1 = {0, ""}, e2 = {0, ""};
  T_EQ_INT(tide_expr_where_on(NULL, bad, b, &one, &e1), TIDE_ESCHEMA);
  T_EQ_INT(tide_expr_where_on(pools[1], bad, b, &many, &e2), TIDE_ESCHEMA);
  T_EQ_STR(e1.msg, e2.msg);
  T_CHECK(!one && !many);
  for (int i = 0; i < 5; i++) tide_expr_free(ex[i]);
  tide_expr_free(cond);
  tide_expr_free(bad);
  tide_batch_free(b);
  tide_schema_unref(in);
  tide_schema_unref(os);
}


/* n JSON lines of (t, k, v) from line `first` on, as rows() makes them
 * (NULLs as JSON null), v plus `add`; line `bad` (when not 0) is bad JSON.
 * Appended to out. */
static void json_lines(tide_buf_t *out, uint32_t first, uint32_t n, int64_t add, uint32_t bad) {
  char line[160];
  for (uint32_t i = first; i < first + n; i++) {
    int len;
    if (bad && i == bad) {
      len = snprintf(line, sizeof line, "{\"t\": oops}\n");
    } else {
      char t[32], k[64], v[32];
      if (i % 97 == 5) snprintf(t, sizeof t, "null");
      else snprintf(t, sizeof t, "%lld", (long long)(1700000000000 + (int64_t)i * 11 - (int64_t)(i * 7919 % 9000)));
      if (i % 53 == 7) snprintf(k, sizeof k, "null");
      else snprintf(k, sizeof k, i % 5 ? "\"k%u\"" : "\"a-rather-long-key-%u\"", i * 31 % 300);
      if (i % 31 == 3) snprintf(v, sizeof v, "null");
      else snprintf(v, sizeof v, "%lld", (long long)((int64_t)(i * 13 % 41) - 10 + add));
      len = snprintf(line, sizeof line, "{\"t\": %s, \"k\": %s, \"v\": %s}\n", t, k, v);
    }
    tide_buf_append(out, line, (size_t)len);
  }
}

static const tide_agg_spec_t COMMUTES[] = {
    {TIDE_AGG_COUNT_STAR, 0, "n"}, {TIDE_AGG_COUNT, TIDE_T_INT, "c"}, {TIDE_AGG_SUM, TIDE_T_INT, "s"},
    {TIDE_AGG_AVG, TIDE_T_INT, "a"}, {TIDE_AGG_MIN, TIDE_T_INT, "lo"}, {TIDE_AGG_MAX, TIDE_T_TIMESTAMP, "hi"}};

typedef struct scan_case {
  tide_schema_t *in, *ks;
  tide_expr_t *filter, *k, *v, *t;
  tide_agg_key_src_t keys[2];
  const tide_expr_t *args[6];
  tide_window_t w;
  tide_agg_input_t tmpl;
  tide_decode_opts_t o;
} scan_case_t;

static void scan_case_open(scan_case_t *c) {
  memset(c, 0, sizeof *c);
  c->in = schema("t timestamp?, k string?, v int?");
  c->ks = schema("window_start timestamp, k string?");
  c->filter = compile("v IS NULL OR v % 5 != 0", c->in);
  c->k = compile("k", c->in);
  c->v = compile("v", c->in);
  c->t = compile("t", c->in);
  c->keys[0] = (tide_agg_key_src_t){TIDE_AGG_KEY_WINDOW_START, NULL};
  c->keys[1] = (tide_agg_key_src_t){TIDE_AGG_KEY_EXPR, c->k};
  c->args[1] = c->args[2] = c->args[3] = c->args[4] = c->v;
  c->args[5] = c->t;
  c->w = (tide_window_t){10000, 10000, 0};
  c->tmpl.keys = c->keys;
  c->tmpl.args = c->args;
  c->tmpl.window = &c->w;
  c->tmpl.window_col = 0;
  c->tmpl.filter = c->filter;
  c->tmpl.late_col = c->tmpl.time_col = -1;
  c->o = (tide_decode_opts_t){TIDE_FMT_JSON, TIDE_BAD_FAIL, ',', 0, 0};
}

static void scan_case_close(scan_case_t *c) {
  tide_expr_free(c->filter);
  tide_expr_free(c->k);
  tide_expr_free(c->v);
  tide_expr_free(c->t);
  tide_schema_unref(c->in);
  tide_schema_unref(c->ks);
}

/* Push text (whole lines) into a on this thread. */
static void push_text(scan_case_t *c, tide_agg_t *a, const tide_buf_t *text, tide_pool_t *pool) {
  tide_batch_t *b = NULL;
  tide_decode_result_t res;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_decode_par(NULL, 1, c->in, &c->o, text->data, text->len, 1, 1, &b, &res, &err), 0);
  free((void *)res.dead);
  tide_agg_input_t in = c->tmpl;
  in.batch = b;
  in.pool = pool;
  tide_agg_output_t out;
  T_EQ_INT(tide_agg_push(a, &in, &out, &err), 0);
  tide_batch_free(out.lost);
  tide_batch_free(out.created);
  tide_batch_free(b);
}

static tide_agg_t *new_agg(scan_case_t *c) {
  tide_agg_t *a = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_agg_new(c->ks, COMMUTES, 6, &a, &err), 0);
  return a;
}

static char *write_tmp(const tide_buf_t *text) {
  char *path = strdup("/tmp/tide-test-scan-XXXXXX");
  int fd = mkstemp(path);
  T_CHECK(fd >= 0);
  T_CHECK(write(fd, text->data, text->len) == (ssize_t)text->len);
  close(fd);
  return path;
}

static void test_scan(void) {
  scan_case_t c;
  scan_case_open(&c);
  tide_buf_t text = TIDE_BUF_INIT, more = TIDE_BUF_INIT, bad = TIDE_BUF_INIT, big = TIDE_BUF_INIT;
  json_lines(&text, 0, 20000, 0, 0);
  json_lines(&more, 20000, 3000, 0, 0);
  json_lines(&bad, 0, 20000, 0, 12345);
  json_lines(&big, 0, 2000, (int64_t)1 << 50, 0);
  char *path = write_tmp(&text), *bad_path = write_tmp(&bad), *big_path = write_tmp(&big);
  /* two files: the same file twice, read in order */
  const char *paths[] = {path, path}, *bads[] = {bad_path}, *bigs[] = {big_path};
  tide_err_t err = {0, ""};
  tide_agg_t *ref = new_agg(&c);
  push_text(&c, ref, &text, NULL);
  push_text(&c, ref, &text, NULL);
  tide_batch_t *want = NULL, *got = NULL;
  T_EQ_INT(tide_agg_result(ref, &want, &err), 0);
  T_CHECK(want && want->nrows > 1000);
  tide_pool_t *ps[] = {NULL, pools[0], pools[1]};
  const int64_t ranges[] = {1, 333, 4096, 1 << 20};
  for (uint32_t p = 0; p < 3; p++) {
    for (uint32_t r = 0; r < 4; r++) {
      tide_agg_t *a = new_agg(&c);
      T_EQ_INT(tide_agg_set_static(a, 3, &err), 1);
      T_EQ_INT(tide_scan_files(a, paths, 2, c.in, &c.o, &c.tmpl, ranges[r], ps[p], &err), 0);
      T_EQ_INT(tide_agg_groups(a), want->nrows);
      T_EQ_INT(tide_agg_result(a, &got, &err), 0);
      T_CHECK(batch_eq(want, got));
      tide_batch_free(got);
      got = NULL;
      if (r == 1) { /* usable afterwards: one more push gives one thread's rows */
        tide_agg_t *ref2 = new_agg(&c);
        tide_batch_t *want2 = NULL;
        push_text(&c, ref2, &text, NULL);
        push_text(&c, ref2, &text, NULL);
        push_text(&c, ref2, &more, NULL);
        push_text(&c, a, &more, ps[p]);
        T_EQ_INT(tide_agg_result(ref2, &want2, &err), 0);
        T_EQ_INT(tide_agg_result(a, &got, &err), 0);
        T_CHECK(batch_eq(want2, got));
        tide_batch_free(want2);
        tide_batch_free(got);
        got = NULL;
        tide_agg_free(ref2);
      }
      tide_agg_free(a);
    }
    /* a bad line in a middle range, avg past 2^52: nothing done, nothing aggregated */
    tide_agg_t *a = new_agg(&c);
    T_EQ_INT(tide_agg_set_static(a, 2, &err), 1);
    T_EQ_INT(tide_scan_files(a, bads, 1, c.in, &c.o, &c.tmpl, 4096, ps[p], &err), 1);
    T_EQ_INT(tide_agg_groups(a), 0);
    T_EQ_INT(tide_scan_files(a, bigs, 1, c.in, &c.o, &c.tmpl, 4096, ps[p], &err), 1);
    T_EQ_INT(tide_agg_groups(a), 0);
    tide_agg_free(a);
  }
  /* not a static aggregation, or an aggregate whose fold needs the order: not taken */
  tide_agg_t *plain = new_agg(&c);
  T_EQ_INT(tide_scan_files(plain, paths, 1, c.in, &c.o, &c.tmpl, 4096, pools[0], &err), 1);
  tide_agg_free(plain);
  tide_batch_free(want);
  tide_agg_free(ref);
  unlink(path);
  unlink(bad_path);
  unlink(big_path);
  free(path);
  free(bad_path);
  free(big_path);
  tide_buf_free(&text);
  tide_buf_free(&more);
  tide_buf_free(&bad);
  tide_buf_free(&big);
  scan_case_close(&c);
}

int main(void) {
  T_EQ_INT(tide_pool_open(2, &pools[0]), 0);
  T_EQ_INT(tide_pool_open(3, &pools[1]), 0);
  T_RUN(test_big_batches);
  T_RUN(test_sliding_and_selection);
  T_RUN(test_tiny_ranges);
  T_RUN(test_one_thread_aggregates);
  T_RUN(test_static);
  T_RUN(test_error_is_one_threads);
  T_RUN(test_project_where);
  T_RUN(test_scan);
  tide_pool_close(pools[0]);
  tide_pool_close(pools[1]);
  T_DONE();
}
