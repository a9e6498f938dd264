/*
 * fuzz.h: what the libFuzzer harnesses of spec/fuzz/ share (`make fuzz`,
 * spec/fuzz/README.md): the schema the decoders and the expression parser
 * work against, a small batch of edge values, and a check that stops the
 * run when a property the core promises does not hold.
 */
#ifndef TIDE_FUZZ_H
#define TIDE_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "batch.h"
#include "err.h"
#include "json.h"
#include "jsonl.h"
#include "schema.h"
#include "session.h"

/* Every column type, nullable and not. */
#define FUZZ_DDL "ts timestamp, id int, v double?, s string?, b bool?, j json?, n int?"

/* A broken promise is a crash, so that libFuzzer keeps the input. */
#define FUZZ_CHECK(cond, ...)                                  \
  do {                                                         \
    if (!(cond)) {                                             \
      fprintf(stderr, "fuzz check failed: %s: ", #cond);       \
      fprintf(stderr, __VA_ARGS__);                            \
      fputc('\n', stderr);                                     \
      abort();                                                 \
    }                                                          \
  } while (0)

/* The schema of FUZZ_DDL, made once (the process keeps it). */
static inline tide_schema_t *fuzz_schema(void) {
  static tide_schema_t *s;
  if (!s) {
    tide_err_t err = {0, ""};
    FUZZ_CHECK(tide_schema_parse_ddl(FUZZ_DDL, strlen(FUZZ_DDL), &s, &err) == 0, "%s", err.msg);
  }
  return s;
}

/* A batch of fuzz_schema() with edge values: the extremes of int64 and of
 * the valid timestamps (years 0000 to 9999), NaN,
 * -0.0, empty and non-ASCII strings, NULLs, nested json. Made once. */
static inline const tide_batch_t *fuzz_batch(void) {
  static tide_batch_t *b;
  if (b) return b;
  static const char *const lines[] = {
      "{\"ts\":0,\"id\":0,\"v\":0.0,\"s\":\"\",\"b\":false,\"j\":{},\"n\":0}",
      "{\"ts\":-62167219200000,\"id\":-9223372036854775808,\"v\":-1e308,\"s\":\"\\u00e9t\\u00e9\","
      "\"b\":true,\"j\":[1,[2,{\"a\":null}]],\"n\":null}",
      "{\"ts\":253402300799999,\"id\":9223372036854775807,\"v\":1e308,\"s\":\"a,b\\\"c\\n\",\"j\":\"x\","
      "\"n\":-1}",
      "{\"ts\":1700000000000,\"id\":-1,\"v\":-0.0,\"s\":null,\"b\":null,\"j\":null,\"n\":3}",
      "{\"ts\":86400000,\"id\":7,\"s\":\"2024-01-01T00:00:00Z\",\"j\":123456789012345678901234567890}",
  };
  tide_json_dec_t *d = tide_json_dec_new(fuzz_schema(), 0);
  b = tide_batch_new(fuzz_schema(), 8);
  FUZZ_CHECK(d && b, "out of memory");
  for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
    tide_err_t err = {0, ""};
    FUZZ_CHECK(tide_json_dec_line(d, b, lines[i], strlen(lines[i]), &err) == 0, "line %zu: %s", i, err.msg);
  }
  tide_json_dec_free(d);
  return b;
}

/* The aggregation whose state records fuzz_state.c reads and seeds.c
 * writes: a key of every type, every aggregate kind. */
#define FUZZ_STATE_KEYS "k string?, i int?, t timestamp?, d double?, o bool?, j json?"

static inline tide_agg_t *fuzz_state_agg(void) {
  static const tide_agg_spec_t specs[] = {
      {TIDE_AGG_COUNT_STAR, TIDE_T_INT, "n"},       {TIDE_AGG_COUNT, TIDE_T_STRING, "c"},
      {TIDE_AGG_SUM, TIDE_T_INT, "si"},             {TIDE_AGG_SUM, TIDE_T_DOUBLE, "sd"},
      {TIDE_AGG_MIN, TIDE_T_STRING, "mins"},        {TIDE_AGG_MAX, TIDE_T_DOUBLE, "maxd"},
      {TIDE_AGG_AVG, TIDE_T_INT, "a"},              {TIDE_AGG_FIRST, TIDE_T_STRING, "f"},
      {TIDE_AGG_LAST, TIDE_T_TIMESTAMP, "l"},       {TIDE_AGG_COUNT_DISTINCT, TIDE_T_STRING, "cd"},
      {TIDE_AGG_COUNT_DISTINCT, TIDE_T_INT, "cdi"}, {TIDE_AGG_MIN, TIDE_T_BOOL, "minb"},
  };
  static tide_schema_t *ks;
  tide_err_t err = {0, ""};
  if (!ks) FUZZ_CHECK(tide_schema_parse_ddl(FUZZ_STATE_KEYS, strlen(FUZZ_STATE_KEYS), &ks, &err) == 0, "%s", err.msg);
  tide_agg_t *a = NULL;
  FUZZ_CHECK(tide_agg_new(ks, specs, sizeof specs / sizeof *specs, &a, &err) == 0, "%s", err.msg);
  return a;
}

/* The session windows whose state records fuzz_session.c reads and
 * seeds.c writes: keyed by (k string?), gap 10 ms, count(*), sum, first,
 * last, min and count_distinct of an int. Its input batches are
 * (k string?, t timestamp?, v int?). */
#define FUZZ_SESSION_IN "k string?, t timestamp?, v int?"

static inline tide_session_t *fuzz_session(void) {
  static const tide_agg_spec_t specs[] = {
      {TIDE_AGG_COUNT_STAR, TIDE_T_INT, "n"}, {TIDE_AGG_SUM, TIDE_T_INT, "s"}, {TIDE_AGG_FIRST, TIDE_T_INT, "f"},
      {TIDE_AGG_LAST, TIDE_T_INT, "l"},       {TIDE_AGG_MIN, TIDE_T_INT, "mn"}, {TIDE_AGG_COUNT_DISTINCT, TIDE_T_INT, "cd"}};
  static const char *const out_ddl = "k string?, window_start timestamp, window_end timestamp, n int, s int?, "
                                     "f int?, l int?, mn int?, cd int";
  static tide_schema_t *ks, *out;
  tide_err_t err = {0, ""};
  if (!ks) FUZZ_CHECK(tide_schema_parse_ddl("k string?", 9, &ks, &err) == 0, "%s", err.msg);
  if (!out) FUZZ_CHECK(tide_schema_parse_ddl(out_ddl, strlen(out_ddl), &out, &err) == 0, "%s", err.msg);
  tide_session_t *s = NULL;
  FUZZ_CHECK(tide_session_new(ks, specs, 6, 10, out, 1, &s, &err) == 0, "%s", err.msg);
  return s;
}

/* Rows of FUZZ_SESSION_IN from JSON lines (the process keeps the schema). */
static inline tide_batch_t *fuzz_session_rows(const char *const *lines, size_t n) {
  static tide_schema_t *in;
  tide_err_t err = {0, ""};
  if (!in) FUZZ_CHECK(tide_schema_parse_ddl(FUZZ_SESSION_IN, strlen(FUZZ_SESSION_IN), &in, &err) == 0, "%s", err.msg);
  tide_json_dec_t *d = tide_json_dec_new(in, 0);
  tide_batch_t *b = tide_batch_new(in, (uint32_t)n);
  FUZZ_CHECK(d && b, "out of memory");
  for (size_t i = 0; i < n; i++)
    FUZZ_CHECK(tide_json_dec_line(d, b, lines[i], strlen(lines[i]), &err) == 0, "%s", err.msg);
  tide_json_dec_free(d);
  return b;
}

/* Push a batch of FUZZ_SESSION_IN into s: v is every aggregate's argument. */
static inline int fuzz_session_push(tide_session_t *s, const tide_batch_t *b, tide_session_feed_t *f,
                                    tide_err_t *err) {
  static tide_schema_t *ks;
  if (!ks) FUZZ_CHECK(tide_schema_parse_ddl("k string?", 9, &ks, err) == 0, "%s", err->msg);
  tide_batch_t *keys = tide_batch_borrowed(ks, b->nrows, b->cols, NULL, NULL);
  FUZZ_CHECK(keys, "out of memory");
  const tide_col_t *v = &b->cols[2], *args[] = {NULL, v, v, v, v, v};
  int rc = tide_session_push(s, keys, &b->cols[1], args, f, err);
  tide_batch_free(keys);
  return rc;
}

#endif
