/*
 * test_session.c: session windows (core/session.h). Real values of every
 * aggregate over merged sessions; touching sessions merge; a row that
 * bridges two stored sessions across batches (the earliest keeps its
 * state id, the other is a delete); first/last by event time whichever
 * side holds the earliest and latest rows; NULL times and late rows;
 * eviction (keys leave and come back); the records: round trip, old
 * format refused, damage and overlaps refused; and 3000 random rows fed
 * in random slices, with a checkpoint kept from the changes and restored
 * part way, checked against a naive reference. Frees everything it makes.
 */
#include <stdint.h>

#include "session.h"
#include "t.h"
#include "vec.h"

#define S 1000

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s: %s\n", ddl, err.msg);
  return s;
}

/* A session over (k string?) with count(*), sum(v), first(v), last(v),
 * min(v), count_distinct(v); output: k, window, aggregates. */
static tide_session_t *new_session(int64_t gap) {
  tide_schema_t *ks = schema("k string?");
  tide_schema_t *out = schema("k string?, window_start timestamp, window_end timestamp, n int, s int?, f int?, "
                              "l int?, mn int?, cd int");
  tide_agg_spec_t specs[] = {{TIDE_AGG_COUNT_STAR, 0, "n"},    {TIDE_AGG_SUM, TIDE_T_INT, "s"},
                             {TIDE_AGG_FIRST, TIDE_T_INT, "f"}, {TIDE_AGG_LAST, TIDE_T_INT, "l"},
                             {TIDE_AGG_MIN, TIDE_T_INT, "mn"},  {TIDE_AGG_COUNT_DISTINCT, TIDE_T_INT, "cd"}};
  tide_session_t *s = NULL;
  tide_err_t err = {0, ""};
  int rc = tide_session_new(ks, specs, 6, gap, out, 1, &s, &err);
  if (rc) fprintf(stderr, "tide_session_new: %s\n", err.msg);
  tide_schema_unref(ks);
  tide_schema_unref(out);
  return s;
}

typedef struct row {
  const char *k; /* NULL: a NULL key */
  int64_t t;
  int tnull;
  int64_t v;
  int vnull;
} row_t;

/* Push rows[0..n) as one batch; late bound when has_late. */
static int push(tide_session_t *s, const row_t *rows, uint32_t n, int has_late, int64_t bound,
                tide_session_feed_t *f, uint8_t *late) {
  tide_schema_t *in = schema("k string?, t timestamp?, v int?");
  tide_batch_t *b = tide_batch_new(in, n);
  for (uint32_t i = 0; i < n; i++) {
    tide_batch_row_begin(b);
    if (rows[i].k) tide_batch_set_str(b, 0, rows[i].k, strlen(rows[i].k));
    else tide_batch_set_null(b, 0);
    if (rows[i].tnull) tide_batch_set_null(b, 1);
    else tide_batch_set_i64(b, 1, rows[i].t);
    if (rows[i].vnull) tide_batch_set_null(b, 2);
    else tide_batch_set_i64(b, 2, rows[i].v);
    tide_batch_row_commit(b);
  }
  tide_schema_t *ks = schema("k string?");
  tide_batch_t *kb = tide_batch_borrowed(ks, n, b->cols, NULL, NULL);
  const tide_col_t *args[6] = {NULL, &b->cols[2], &b->cols[2], &b->cols[2], &b->cols[2], &b->cols[2]};
  tide_session_feed_t local = {0};
  if (!f) f = &local;
  f->has_late = has_late;
  f->late_bound = bound;
  f->late = late;
  tide_err_t err = {0, ""};
  int rc = tide_session_push(s, kb, &b->cols[1], args, f, &err);
  if (rc) fprintf(stderr, "push: %s\n", err.msg);
  tide_batch_free(kb);
  tide_batch_free(b);
  tide_schema_unref(ks);
  tide_schema_unref(in);
  return rc;
}

/* One output row as text: "k start end n s f l mn cd" (NULL as -). */
static void row_text(const tide_batch_t *b, uint32_t r, char *out, size_t cap) {
  size_t len = 0;
  for (uint32_t c = 0; c < b->schema->nfields; c++) {
    const tide_col_t *col = &b->cols[c];
    if (tide_col_is_null(col, r)) {
      len += (size_t)snprintf(out + len, cap - len, "%s-", c ? " " : "");
    } else if (col->type == TIDE_T_STRING) {
      size_t n;
      const char *p = tide_col_str(col, r, &n);
      len += (size_t)snprintf(out + len, cap - len, "%s%.*s", c ? " " : "", (int)n, p);
    } else {
      len += (size_t)snprintf(out + len, cap - len, "%s%lld", c ? " " : "", (long long)tide_col_i64(col, r));
    }
  }
}

static int cmp_str(const void *x, const void *y) { return strcmp(*(char *const *)x, *(char *const *)y); }

/* The rows of b as sorted text lines, joined by " | ". */
static char *text_of(const tide_batch_t *b) {
  char **lines = calloc(b->nrows + 1, sizeof *lines);
  size_t total = 1;
  for (uint32_t r = 0; r < b->nrows; r++) {
    lines[r] = malloc(256);
    row_text(b, r, lines[r], 256);
    total += strlen(lines[r]) + 3;
  }
  qsort(lines, b->nrows, sizeof *lines, cmp_str);
  char *out = calloc(total, 1);
  for (uint32_t r = 0; r < b->nrows; r++) {
    if (r) strcat(out, " | ");
    strcat(out, lines[r]);
    free(lines[r]);
  }
  free(lines);
  return out;
}

/* The result of s as text. */
static char *result_text(tide_session_t *s) {
  tide_batch_t *b = NULL;
  tide_err_t err = {0, ""};
  if (tide_session_result(s, &b, &err)) {
    fprintf(stderr, "result: %s\n", err.msg);
    return strdup("(error)");
  }
  char *t = text_of(b);
  tide_batch_free(b);
  return t;
}

#define T_TEXT(s, want)            \
  do {                             \
    char *t_got = result_text(s);  \
    T_EQ_STR(t_got, want);         \
    free(t_got);                   \
  } while (0)

/* The number of changes of s (tide_session_changes). */
static uint32_t nchanged(tide_session_t *s) {
  uint32_t n = 0;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_session_changes(s, &n, &err), 0);
  return n;
}

/* --------------------------------------------------------------- tests --- */

static void test_static_values(void) {
  tide_session_t *s = new_session(10 * S);
  row_t rows[] = {
      {"a", 40 * S, 0, 1, 0}, {"a", 41 * S, 0, 2, 0}, {"b", 5 * S, 0, 7, 0},  {"a", 60 * S, 0, 3, 0},
      {"a", 38 * S, 0, 9, 0}, {"b", 0, 1, 100, 0},    {NULL, 1 * S, 0, 5, 0}, {"a", 50 * S, 0, 0, 1},
      {"b", 15 * S, 0, 7, 0}, /* touches b's [5, 15): merges */
  };
  tide_session_feed_t f = {0};
  T_EQ_INT(push(s, rows, 9, 0, 0, &f, NULL), 0);
  T_EQ_INT(f.pushed, 8);
  T_EQ_INT(f.null_times, 1);
  T_EQ_INT(f.updated, 3);
  T_EQ_INT(tide_session_count(s), 3);
  /* a: 38, 40, 41, 50 (NULL v) -> [38, 60) touches 60 -> one session
   * [38, 70): first by time is 38's 9, last is 60's 3 */
  T_TEXT(s, "- 1000 11000 1 5 5 5 5 1 | a 38000 70000 5 15 9 3 1 4 | b 5000 25000 2 14 7 7 7 1");
  tide_session_free(s);
}

static void test_merge_across_batches(void) {
  tide_session_t *s = new_session(10 * S);
  row_t b1[] = {{"s", 25 * S, 0, 1, 0}, {"s", 40 * S, 0, 2, 0}, {"s", 90 * S, 0, 3, 0}};
  T_EQ_INT(push(s, b1, 3, 0, 0, NULL, NULL), 0);
  T_EQ_INT(tide_session_count(s), 3);
  T_EQ_INT(nchanged(s), 3);
  uint64_t sids[3];
  tide_buf_t buf = TIDE_BUF_INIT;
  tide_err_t err = {0, ""};
  for (uint32_t i = 0; i < 3; i++) T_EQ_INT(tide_session_change(s, i, &sids[i], &buf, &err), 0);
  T_EQ_INT(sids[0], 1);
  T_EQ_INT(sids[1], 2);
  T_EQ_INT(sids[2], 3);
  tide_session_clear_changes(s);
  T_EQ_INT(nchanged(s), 0);
  /* 30 bridges [25, 35) and [40, 50) */
  row_t b2[] = {{"s", 30 * S, 0, 4, 0}};
  tide_session_feed_t f = {0};
  T_EQ_INT(push(s, b2, 1, 0, 0, &f, NULL), 0);
  T_EQ_INT(f.updated, 1);
  T_EQ_INT(tide_session_count(s), 2);
  T_TEXT(s, "s 25000 50000 3 7 1 2 1 3 | s 90000 100000 1 3 3 3 3 1");
  T_EQ_INT(nchanged(s), 1);
  uint64_t sid = 0;
  buf.len = 0;
  T_EQ_INT(tide_session_change(s, 0, &sid, &buf, &err), 0);
  T_EQ_INT(sid, 1); /* the earliest stored part survives */
  const uint64_t *del;
  T_EQ_INT(tide_session_deleted(s, &del), 1);
  T_EQ_INT(del[0], 2);
  tide_session_clear_changes(s);
  T_EQ_INT(tide_session_deleted(s, &del), 0);
  /* a row before the survivor's start moves the start; it keeps its sid */
  row_t b3[] = {{"s", 20 * S, 0, 5, 0}};
  T_EQ_INT(push(s, b3, 1, 0, 0, NULL, NULL), 0);
  T_TEXT(s, "s 20000 50000 4 12 5 2 1 4 | s 90000 100000 1 3 3 3 3 1");
  buf.len = 0;
  T_EQ_INT(tide_session_change(s, 0, &sid, &buf, &err), 0);
  T_EQ_INT(sid, 1);
  T_EQ_INT(tide_session_deleted(s, &del), 0);
  tide_buf_free(&buf);
  tide_session_free(s);
}

/* first/last come from the side holding the earliest/latest row. */
static void test_first_last_event_time(void) {
  tide_session_t *s = new_session(10 * S);
  row_t b1[] = {{"k", 10 * S, 0, 1, 0}, {"k", 18 * S, 0, 2, 0}};
  T_EQ_INT(push(s, b1, 2, 0, 0, NULL, NULL), 0);
  /* inside the stored span: first and last stay the stored ones */
  row_t b2[] = {{"k", 15 * S, 0, 3, 0}, {"k", 12 * S, 0, 4, 0}};
  T_EQ_INT(push(s, b2, 2, 0, 0, NULL, NULL), 0);
  T_TEXT(s, "k 10000 28000 4 10 1 2 1 4");
  /* a tie with the stored first keeps it; a tie with the stored last
   * takes the newer row */
  row_t b3[] = {{"k", 18 * S, 0, 5, 0}, {"k", 10 * S, 0, 6, 0}};
  T_EQ_INT(push(s, b3, 2, 0, 0, NULL, NULL), 0);
  T_TEXT(s, "k 10000 28000 6 21 1 5 1 6");
  /* rows on both sides: first and last from the rows */
  row_t b4[] = {{"k", 25 * S, 0, 7, 0}, {"k", 3 * S, 0, 8, 0}};
  T_EQ_INT(push(s, b4, 2, 0, 0, NULL, NULL), 0);
  T_TEXT(s, "k 3000 35000 8 36 8 7 1 8");
  /* a NULL value at the latest time is last's value */
  row_t b5[] = {{"k", 30 * S, 0, 0, 1}};
  T_EQ_INT(push(s, b5, 1, 0, 0, NULL, NULL), 0);
  T_TEXT(s, "k 3000 40000 9 36 8 - 1 8");
  /* two stored sessions and rows between: by time over all three */
  row_t b6[] = {{"k", 60 * S, 0, 9, 0}};
  T_EQ_INT(push(s, b6, 1, 0, 0, NULL, NULL), 0);
  row_t b7[] = {{"k", 52 * S, 0, 10, 0}, {"k", 38 * S, 0, 11, 0}, {"k", 45 * S, 0, 12, 0}};
  T_EQ_INT(push(s, b7, 3, 0, 0, NULL, NULL), 0);
  T_TEXT(s, "k 3000 70000 13 78 8 9 1 12");
  tide_session_free(s);
}

static void test_late_and_evict(void) {
  tide_session_t *s = new_session(10 * S);
  row_t b1[] = {{"a", 40 * S, 0, 1, 0}, {"b", 41 * S, 0, 2, 0}, {"a", 25 * S, 0, 3, 0}, {"b", 0, 0, 4, 0}};
  uint8_t late[4];
  tide_session_feed_t f = {0};
  /* late bound 10s: the row at 0 (0 + 10s <= 10s) is late */
  T_EQ_INT(push(s, b1, 4, 1, 10 * S, &f, late), 0);
  T_EQ_INT(f.late_rows, 1);
  T_EQ_INT(f.pushed, 3);
  T_CHECK(!late[0] && !late[1] && !late[2] && late[3]);
  tide_batch_t *b = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_session_evict(s, 36 * S, &b, &err), 0);
  char *t = text_of(b);
  T_EQ_STR(t, "a 25000 35000 1 3 3 3 3 1");
  free(t);
  tide_batch_free(b);
  T_EQ_INT(tide_session_count(s), 2);
  /* the evicted session never reached a checkpoint: no delete */
  const uint64_t *del;
  T_EQ_INT(tide_session_deleted(s, &del), 0);
  T_EQ_INT(nchanged(s), 2);
  tide_session_clear_changes(s);
  /* nothing due: an empty batch of the output schema */
  T_EQ_INT(tide_session_evict(s, 40 * S, &b, &err), 0);
  T_EQ_INT(b->nrows, 0);
  T_EQ_INT(b->schema->nfields, 9);
  tide_batch_free(b);
  /* both keys leave; a key that comes back starts afresh */
  T_EQ_INT(tide_session_evict(s, 51 * S, &b, &err), 0);
  t = text_of(b);
  T_EQ_STR(t, "a 40000 50000 1 1 1 1 1 1 | b 41000 51000 1 2 2 2 2 1");
  free(t);
  tide_batch_free(b);
  T_EQ_INT(tide_session_count(s), 0);
  T_EQ_INT(tide_session_deleted(s, &del), 2);
  T_EQ_INT(del[0], 2);
  T_EQ_INT(del[1], 3);
  row_t b2[] = {{"b", 100 * S, 0, 6, 0}, {"c", 100 * S, 0, 7, 0}};
  T_EQ_INT(push(s, b2, 2, 1, 51 * S, NULL, NULL), 0);
  T_TEXT(s, "b 100000 110000 1 6 6 6 6 1 | c 100000 110000 1 7 7 7 7 1");
  tide_session_free(s);
}

/* Many runs fold stored sessions at once: the folded groups leave in the
 * push itself (past the threshold) and the state stays right. */
static void test_many_merges(void) {
  enum { K = 3000 };
  tide_session_t *s = new_session(10 * S);
  static row_t rows[2 * K];
  static char keys[K][16];
  for (int k = 0; k < K; k++) {
    snprintf(keys[k], sizeof keys[k], "k%d", k);
    rows[2 * k] = (row_t){keys[k], 10 * S, 0, k, 0};
    rows[2 * k + 1] = (row_t){keys[k], 30 * S, 0, 1, 0};
  }
  T_EQ_INT(push(s, rows, 2 * K, 0, 0, NULL, NULL), 0);
  T_EQ_INT(tide_session_count(s), 2 * K);
  T_EQ_INT(nchanged(s), 2 * K);
  tide_session_clear_changes(s);
  for (int k = 0; k < K; k++) rows[k] = (row_t){keys[k], 20 * S, 0, 2, 0}; /* bridges each key's two */
  tide_session_feed_t f = {0};
  T_EQ_INT(push(s, rows, K, 0, 0, &f, NULL), 0);
  T_EQ_INT(f.updated, K);
  T_EQ_INT(tide_session_count(s), K);
  T_EQ_INT(tide_session_bytes(s) > 0, 1);
  T_EQ_INT(nchanged(s), K);
  const uint64_t *del;
  T_EQ_INT(tide_session_deleted(s, &del), K);
  T_EQ_INT(del[0], 2);
  T_EQ_INT(del[K - 1], 2 * K);
  tide_batch_t *b = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_session_result(s, &b, &err), 0);
  T_EQ_INT(b->nrows, K);
  int ok = 1;
  for (uint32_t r = 0; r < b->nrows; r++) /* k, start, end, n, s, f, l, mn, cd */
    ok &= tide_col_i64(&b->cols[1], r) == 10 * S && tide_col_i64(&b->cols[2], r) == 40 * S &&
          tide_col_i64(&b->cols[3], r) == 3 && tide_col_i64(&b->cols[6], r) == 1;
  T_CHECK(ok);
  tide_batch_free(b);
  tide_session_free(s);
}

static void test_errors(void) {
  tide_schema_t *ks = schema("k string?");
  tide_schema_t *out = schema("k string?, window_start timestamp, window_end timestamp, n int");
  tide_agg_spec_t specs[] = {{TIDE_AGG_COUNT_STAR, 0, "n"}};
  tide_session_t *s = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_session_new(ks, specs, 1, 0, out, 1, &s, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "session window: gap must be > 0, got 0");
  T_EQ_INT(tide_session_new(ks, specs, 1, 10, out, 2, &s, &err), TIDE_EINVAL);
  T_EQ_INT(tide_session_new(ks, specs, 1, 10, out, 0, &s, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "session output schema: field 'k' is string, expected timestamp");
  T_CHECK(s == NULL);
  T_EQ_INT(tide_session_new(ks, specs, 1, 10, out, 1, &s, &err), 0);
  /* a time column of another type changes nothing */
  tide_schema_t *in = schema("k string?, t int");
  tide_batch_t *b = tide_batch_new(in, 1);
  tide_batch_row_begin(b);
  tide_batch_set_str(b, 0, "x", 1);
  tide_batch_set_i64(b, 1, 5);
  tide_batch_row_commit(b);
  tide_batch_t *kb = tide_batch_borrowed(ks, 1, b->cols, NULL, NULL);
  tide_session_feed_t f = {0};
  T_EQ_INT(tide_session_push(s, kb, &b->cols[1], NULL, &f, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "session window: the time column must be a timestamp, got int");
  T_EQ_INT(tide_session_count(s), 0);
  tide_batch_free(kb);
  tide_batch_free(b);
  tide_schema_unref(in);
  tide_session_free(s);
  tide_schema_unref(ks);
  tide_schema_unref(out);
}

/* ------------------------------------------------------------- records --- */

/* A checkpoint: sid -> record, kept from the changes. */
typedef struct ck {
  uint64_t sid[4096];
  tide_buf_t rec[4096];
  uint32_t n;
} ck_t;

static void ck_commit(ck_t *c, tide_session_t *s) {
  const uint64_t *del;
  size_t nd = tide_session_deleted(s, &del);
  for (size_t i = 0; i < nd; i++) {
    uint32_t j = 0;
    while (j < c->n && c->sid[j] != del[i]) j++;
    T_CHECK(j < c->n); /* a delete names a stored record */
    if (j == c->n) continue;
    tide_buf_free(&c->rec[j]);
    c->sid[j] = c->sid[c->n - 1];
    c->rec[j] = c->rec[c->n - 1];
    c->n--;
  }
  uint32_t nc = nchanged(s);
  for (uint32_t i = 0; i < nc; i++) {
    tide_buf_t b = TIDE_BUF_INIT;
    uint64_t sid = 0;
    tide_err_t err = {0, ""};
    T_EQ_INT(tide_session_change(s, i, &sid, &b, &err), 0);
    uint32_t j = 0;
    while (j < c->n && c->sid[j] != sid) j++;
    if (j == c->n) {
      c->sid[c->n] = sid;
      c->rec[c->n] = (tide_buf_t)TIDE_BUF_INIT;
      c->n++;
    }
    tide_buf_free(&c->rec[j]);
    c->rec[j] = b;
  }
  tide_session_clear_changes(s);
}

static void ck_free(ck_t *c) {
  for (uint32_t i = 0; i < c->n; i++) tide_buf_free(&c->rec[i]);
  c->n = 0;
}

static int cmp_u64v(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return (a > b) - (a < b);
}

/* A fresh session restored from c (records in sid order, as LMDB gives). */
static tide_session_t *ck_restore(const ck_t *c, int64_t gap) {
  tide_session_t *s = new_session(gap);
  uint64_t order[4096];
  memcpy(order, c->sid, c->n * sizeof *order);
  qsort(order, c->n, sizeof *order, cmp_u64v);
  for (uint32_t i = 0; i < c->n; i++) {
    uint32_t j = 0;
    while (c->sid[j] != order[i]) j++;
    tide_err_t err = {0, ""};
    int rc = tide_session_restore(s, c->sid[j], c->rec[j].data, c->rec[j].len, &err);
    if (rc) fprintf(stderr, "restore: %s\n", err.msg);
    T_EQ_INT(rc, 0);
  }
  tide_session_clear_changes(s);
  return s;
}

static void test_records(void) {
  static ck_t c;
  tide_session_t *s = new_session(10 * S);
  row_t b1[] = {{"a", 40 * S, 0, 1, 0},  {"b", 41 * S, 0, 2, 0},  {"a", 25 * S, 0, 3, 0},
                {"b", 0, 0, 4, 0},       {NULL, 7 * S, 0, 0, 1},  {"a-long-key-past-twelve", 1, 0, 5, 0}};
  T_EQ_INT(push(s, b1, 6, 0, 0, NULL, NULL), 0);
  ck_commit(&c, s);
  T_EQ_INT(c.n, 6);
  tide_session_t *r = ck_restore(&c, 10 * S);
  char *want = result_text(s), *got = result_text(r);
  T_EQ_STR(got, want);
  free(want);
  free(got);
  T_EQ_INT(nchanged(r), 0);
  /* the same next batch gives the same state */
  row_t b2[] = {{"a", 30 * S, 0, 9, 0}, {"b", 45 * S, 0, 8, 0}};
  T_EQ_INT(push(s, b2, 2, 0, 0, NULL, NULL), 0);
  T_EQ_INT(push(r, b2, 2, 0, 0, NULL, NULL), 0);
  want = result_text(s);
  got = result_text(r);
  T_EQ_STR(got, want);
  T_EQ_STR(got, "- 7000 17000 1 - - - - 0 | a 25000 50000 3 13 3 1 1 3 | a-long-key-past-twelve 1 10001 1 5 5 5 5 1 | "
                "b 0 10000 1 4 4 4 4 1 | b 41000 55000 2 10 2 8 2 2");
  free(want);
  free(got);
  const uint64_t *dr, *ds;
  T_EQ_INT(tide_session_deleted(r, &dr), 1);
  T_EQ_INT(tide_session_deleted(s, &ds), 1);
  T_EQ_INT(dr[0], ds[0]);

  /* refusals: the state stays as it was */
  tide_session_t *f = new_session(10 * S);
  tide_err_t err = {0, ""};
  tide_buf_t *rec = &c.rec[0];
  uint64_t sid = c.sid[0];
  char *bad = malloc(rec->len);
  memcpy(bad, rec->data, rec->len);
  bad[rec->len / 2] ^= 1;
  T_EQ_INT(tide_session_restore(f, sid, bad, rec->len, &err), TIDE_ECORRUPT);
  char msg[200];
  snprintf(msg, sizeof msg, "session state: record %llu: checksum mismatch", (unsigned long long)sid);
  T_EQ_STR(err.msg, msg);
  bad[0] = 9;
  T_EQ_INT(tide_session_restore(f, sid, bad, rec->len, &err), TIDE_EFORMAT);
  snprintf(msg, sizeof msg, "session state: record %llu: format version 9, this build reads 1", (unsigned long long)sid);
  T_EQ_STR(err.msg, msg);
  free(bad);
  T_EQ_INT(tide_session_restore(f, sid, rec->data, rec->len, &err), 0);
  /* the same session again under another sid: its key and session
   * number have a group already */
  T_EQ_INT(tide_session_restore(f, 99, rec->data, rec->len, &err), TIDE_ECORRUPT);
  T_EQ_STR(err.msg, "session state: record 99: another record has its key and session number (state id 1)");
  T_EQ_INT(tide_session_restore(f, sid, rec->data, rec->len, &err), TIDE_ECORRUPT);
  snprintf(msg, sizeof msg, "session state: record %llu: a duplicate session id", (unsigned long long)sid);
  T_EQ_STR(err.msg, msg);
  T_EQ_INT(tide_session_count(f), 1);
  /* a session of another state that overlaps one restored: [30, 40)
   * (session number 2 there) against a's [25, 35) */
  {
    tide_session_t *g = new_session(10 * S);
    tide_session_t *h = new_session(10 * S);
    row_t x1[] = {{"a", 25 * S, 0, 1, 0}}, x2[] = {{"a", 100 * S, 0, 1, 0}}, x3[] = {{"a", 30 * S, 0, 1, 0}};
    T_EQ_INT(push(g, x1, 1, 0, 0, NULL, NULL), 0);
    T_EQ_INT(push(h, x2, 1, 0, 0, NULL, NULL), 0);
    T_EQ_INT(push(h, x3, 1, 0, 0, NULL, NULL), 0);
    tide_buf_t rg = TIDE_BUF_INIT, rh = TIDE_BUF_INIT;
    uint64_t sg, sh;
    T_EQ_INT(tide_session_change(g, 0, &sg, &rg, &err), 0);
    T_EQ_INT(tide_session_change(h, 1, &sh, &rh, &err), 0);
    tide_session_t *k = new_session(10 * S);
    T_EQ_INT(tide_session_restore(k, 1, rg.data, rg.len, &err), 0);
    T_EQ_INT(tide_session_restore(k, 2, rh.data, rh.len, &err), TIDE_ECORRUPT);
    T_EQ_STR(err.msg, "session state: record 2: [30000, 40000) overlaps or touches another session of its key "
                      "([25000, 35000), record 1)");
    T_EQ_INT(tide_session_count(k), 1);
    /* what was refused left nothing behind: the next push sees one session */
    row_t x4[] = {{"a", 33 * S, 0, 2, 0}};
    T_EQ_INT(push(k, x4, 1, 0, 0, NULL, NULL), 0);
    T_TEXT(k, "a 25000 43000 2 3 1 2 1 2");
    tide_buf_free(&rg);
    tide_buf_free(&rh);
    tide_session_free(g);
    tide_session_free(h);
    tide_session_free(k);
  }
  /* a record of the old session format: version 1, start, end, no keys,
   * no aggregates, then a CRC-32 of it */
  uint8_t old[1 + 8 + 8 + 4 + 4 + 4] = {1};
  int64_t st = 25 * S, en = 35 * S;
  memcpy(old + 1, &st, 8);
  memcpy(old + 9, &en, 8);
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < sizeof old - 4; i++) {
    crc ^= old[i];
    for (int k = 0; k < 8; k++) crc = (crc & 1) ? (crc >> 1) ^ 0xedb88320u : crc >> 1;
  }
  crc = ~crc;
  memcpy(old + sizeof old - 4, &crc, 4);
  T_EQ_INT(tide_session_restore(f, 7, old, sizeof old, &err), TIDE_EFORMAT);
  T_EQ_STR(err.msg, "session state: record 7: written in the session record format of earlier versions (before "
                    "session windows kept aggregation records), which this version does not read; run the query on a new "
                    "checkpoint directory (or delete this one) to start its state over");
  T_EQ_INT(tide_session_count(f), 1);
  /* another plan's record */
  tide_schema_t *ks = schema("k string?");
  tide_schema_t *out = schema("k string?, window_start timestamp, window_end timestamp, n int");
  tide_agg_spec_t one[] = {{TIDE_AGG_COUNT_STAR, 0, "n"}};
  tide_session_t *o = NULL;
  T_EQ_INT(tide_session_new(ks, one, 1, 10 * S, out, 1, &o, &err), 0);
  T_EQ_INT(tide_session_restore(o, sid, rec->data, rec->len, &err), TIDE_ESCHEMA);
  snprintf(msg, sizeof msg, "session state: record %llu: 6 aggregates, the plan has 1", (unsigned long long)sid);
  T_EQ_STR(err.msg, msg);
  T_EQ_INT(tide_session_restore(o, 1000, rec->data, rec->len, &err), TIDE_ESCHEMA);
  tide_session_free(o);
  tide_schema_unref(ks);
  tide_schema_unref(out);
  tide_session_free(f);
  tide_session_free(r);
  tide_session_free(s);
  ck_free(&c);
}

/* ------------------------------------------------------------- random --- */

typedef struct rrow {
  int k;
  int64_t t, v;
  int late;
} rrow_t;

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static int cmp_rrow(const void *x, const void *y) {
  const rrow_t *a = *(rrow_t *const *)x, *b = *(rrow_t *const *)y;
  if (a->k != b->k) return a->k - b->k;
  if (a->t != b->t) return a->t < b->t ? -1 : 1;
  return a < b ? -1 : a > b; /* arrival order */
}

/* The reference: sessions of rows[0..n) (late ones left out), by sorting
 * each key's rows by (time, arrival) and sweeping. */
static char *reference(rrow_t *rows, uint32_t n, int64_t gap) {
  rrow_t **p = malloc(n * sizeof *p);
  uint32_t m = 0;
  for (uint32_t i = 0; i < n; i++)
    if (!rows[i].late) p[m++] = &rows[i];
  qsort(p, m, sizeof *p, cmp_rrow);
  char **lines = calloc(m + 1, sizeof *lines);
  uint32_t nl = 0;
  for (uint32_t i = 0, j; i < m; i = j) {
    int64_t end = p[i]->t + gap, sum = 0, mn = INT64_MAX;
    int64_t seen[4096];
    uint32_t nseen = 0;
    for (j = i; j < m && p[j]->k == p[i]->k && (j == i || p[j]->t <= end); j++) {
      if (p[j]->t + gap > end) end = p[j]->t + gap;
      sum += p[j]->v;
      if (p[j]->v < mn) mn = p[j]->v;
      uint32_t x = 0;
      while (x < nseen && seen[x] != p[j]->v) x++;
      if (x == nseen) seen[nseen++] = p[j]->v;
    }
    char key[16];
    snprintf(key, sizeof key, "k%d", p[i]->k);
    lines[nl] = malloc(256);
    snprintf(lines[nl++], 256, "%s %lld %lld %u %lld %lld %lld %lld %u", key, (long long)p[i]->t, (long long)end,
             j - i, (long long)sum, (long long)p[i]->v, (long long)p[j - 1]->v, (long long)mn, nseen);
  }
  qsort(lines, nl, sizeof *lines, cmp_str);
  size_t total = 1;
  for (uint32_t i = 0; i < nl; i++) total += strlen(lines[i]) + 3;
  char *out = calloc(total, 1);
  for (uint32_t i = 0; i < nl; i++) {
    if (i) strcat(out, " | ");
    strcat(out, lines[i]);
    free(lines[i]);
  }
  free(lines);
  free(p);
  return out;
}

/* Push rows[lo, hi) as one batch. */
static void push_rrows(tide_session_t *s, rrow_t *rows, uint32_t lo, uint32_t hi, int has_late, int64_t bound) {
  row_t *b = calloc(hi - lo + 1, sizeof *b);
  char (*keys)[16] = calloc(hi - lo + 1, sizeof *keys);
  for (uint32_t i = lo; i < hi; i++) {
    snprintf(keys[i - lo], sizeof keys[i - lo], "k%d", rows[i].k);
    b[i - lo] = (row_t){keys[i - lo], rows[i].t, 0, rows[i].v, 0};
  }
  uint8_t *late = malloc(hi - lo + 1);
  T_EQ_INT(push(s, b, hi - lo, has_late, bound, NULL, late), 0);
  for (uint32_t i = lo; i < hi; i++) rows[i].late = late[i - lo];
  free(late);
  free(keys);
  free(b);
}

static void test_random(void) {
  enum { N = 3000 };
  static rrow_t rows[N];
  for (int round = 0; round < 4; round++) {
    int64_t gap = round % 2 ? 7 : 20;
    for (uint32_t i = 0; i < N; i++)
      rows[i] = (rrow_t){(int)(rnd() % 13), (int64_t)(rnd() % 3000), (int64_t)(rnd() % 50), 0};
    /* in one batch, then in random slices with a restart from the
     * checkpoint part way; round 3: with late rows (a bound that grows) */
    tide_session_t *one = new_session(gap);
    push_rrows(one, rows, 0, N, 0, 0);
    char *want = reference(rows, N, gap), *got = result_text(one);
    T_EQ_STR(got, want);
    free(got);
    tide_session_free(one);
    static ck_t c;
    tide_session_t *s = new_session(gap);
    for (uint32_t lo = 0, hi; lo < N; lo = hi) {
      hi = lo + 1 + (uint32_t)(rnd() % 400);
      if (hi > N) hi = N;
      push_rrows(s, rows, lo, hi, round == 3, (int64_t)lo / 2);
      ck_commit(&c, s);
      if (rnd() % 4 == 0) {
        tide_session_t *r = ck_restore(&c, gap);
        char *a = result_text(s), *b = result_text(r);
        T_EQ_STR(b, a);
        free(a);
        free(b);
        tide_session_free(s);
        s = r;
      }
    }
    if (round == 3) {
      free(want);
      want = reference(rows, N, gap);
    }
    got = result_text(s);
    T_EQ_STR(got, want);
    T_EQ_INT(tide_session_count(s), c.n);
    free(got);
    free(want);
    tide_session_free(s);
    ck_free(&c);
  }
}

int main(void) {
  T_RUN(test_static_values);
  T_RUN(test_merge_across_batches);
  T_RUN(test_first_last_event_time);
  T_RUN(test_late_and_evict);
  T_RUN(test_many_merges);
  T_RUN(test_errors);
  T_RUN(test_records);
  T_RUN(test_random);
  T_DONE();
}
