/*
 * test_sjoin.c: the stream-stream join (core/sjoin.h). Random micro-batches
 * of both sides against a nested-loop reference for every join type (each
 * pair once, each unmatched outer row once when the state is dropped, each
 * semi row once); late rows; the side-only condition; a condition over the
 * pair; eviction bounds; a checkpoint round trip in the middle of a run
 * giving the output of an uninterrupted one; damaged records refused.
 * Frees everything it makes.
 */
#include <stdint.h>

#include "expr.h"
#include "sjoin.h"
#include "t.h"
#include "vec.h"

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s: %s\n", ddl, err.msg);
  return s;
}

static tide_expr_t *expr(const char *text, tide_schema_t *s) {
  tide_expr_t *e = NULL;
  tide_err_t err = {0, ""};
  if (tide_expr_compile(text, strlen(text), s, 0, &e, &err)) fprintf(stderr, "%s: %s\n", text, err.msg);
  return e;
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(uint32_t n) {
  rnd_state = rnd_state * 1103515245u + 12345u;
  return (rnd_state >> 8) % n;
}

/* A batch of n rows (k int?, t timestamp, v int): k in [0, 5) or NULL, t
 * from t0 upwards, v an id unique over the test. */
static int next_id = 1;
static tide_batch_t *rows(tide_schema_t *s, uint32_t n, int64_t t0) {
  tide_batch_t *b = tide_batch_new(s, n);
  for (uint32_t i = 0; i < n; i++) {
    tide_batch_row_begin(b);
    uint32_t k = rnd(6);
    if (k < 5) tide_batch_set_i64(b, 0, k);
    tide_batch_set_i64(b, 1, t0 + rnd(1000));
    tide_batch_set_i64(b, 2, next_id++);
    tide_batch_row_commit(b);
  }
  return b;
}

/* Every row either side ever got, for the reference. */
typedef struct rec {
  int null_k;
  int64_t k, t, v;
} rec_t;

static void add_recs(rec_t *all, uint32_t *n, const tide_batch_t *b) {
  for (uint32_t i = 0; i < b->nrows; i++) {
    rec_t *r = &all[(*n)++];
    r->null_k = tide_col_is_null(&b->cols[0], i);
    r->k = tide_col_i64(&b->cols[0], i);
    r->t = tide_col_i64(&b->cols[1], i);
    r->v = tide_col_i64(&b->cols[2], i);
  }
}

/* Output pairs as (left v, right v), 0 for a NULL side. */
static void add_out(int64_t (*out)[2], uint32_t *n, const tide_batch_t *b) {
  for (uint32_t i = 0; i < b->nrows; i++) {
    out[*n][0] = tide_col_is_null(&b->cols[2], i) ? 0 : tide_col_i64(&b->cols[2], i);
    out[*n][1] = tide_col_is_null(&b->cols[5], i) ? 0 : tide_col_i64(&b->cols[5], i);
    (*n)++;
  }
}

static int has_pair(int64_t (*out)[2], uint32_t n, int64_t l, int64_t r) {
  int c = 0;
  for (uint32_t i = 0; i < n; i++) c += out[i][0] == l && out[i][1] == r;
  return c;
}

#define MAXR 4000

/* Random batches through a join of type how with the condition `l.t <= r.t`
 * (no eviction until the end, where everything goes): the output is the
 * reference's, each pair once. With restart, the state is checkpointed
 * and restored into a new join half way. */
static void run_random(tide_sjoin_how_t how, int restart) {
  tide_schema_t *ls = schema("k int?, t timestamp, v int"), *rs = schema("k2 int?, t2 timestamp, v2 int");
  tide_schema_t *ps = schema("k int?, t timestamp, v int, k2 int?, t2 timestamp, v2 int");
  tide_expr_t *cond = expr("k = k2 AND t <= t2", ps);
  uint32_t lk = 0, rk = 0;
  tide_sjoin_side_t L = {ls, &lk, -1, 1, NULL}, R = {rs, &rk, -1, 1, NULL};
  tide_sjoin_t *j = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_sjoin_new(&L, &R, 1, how, ps, cond, &j, &err), 0);
  static rec_t la[MAXR], ra[MAXR];
  static int64_t out[MAXR * 40][2];
  uint32_t nl = 0, nr = 0, no = 0;
  tide_sjoin_bounds_t bd;
  memset(&bd, 0, sizeof bd);
  for (int step = 0; step < 12; step++) {
    tide_batch_t *lb = rnd(4) ? rows(ls, rnd(60), step * 100) : NULL;
    tide_batch_t *rb = rnd(4) ? rows(rs, rnd(60), step * 100) : NULL;
    if (lb) add_recs(la, &nl, lb);
    if (rb) add_recs(ra, &nr, rb);
    const tide_batch_t *in[2] = {lb, rb};
    tide_batch_t *o = NULL;
    tide_sjoin_stats_t st;
    if (step == 11) bd.has_evict[0] = bd.has_evict[1] = 1, bd.evict[0] = bd.evict[1] = INT64_MAX;
    T_EQ_INT(tide_sjoin_run(j, in, &bd, &o, &st, &err), 0);
    if (o) add_out(out, &no, o);
    tide_batch_free(o);
    tide_batch_free(lb);
    tide_batch_free(rb);
    tide_sjoin_ref_t *dels, *puts;
    size_t nd, np;
    T_EQ_INT(tide_sjoin_changes(j, &dels, &nd, &puts, &np), 0);
    if (restart && step == 5) {
      /* No change was cleared so far: the puts are every kept row. A new
       * join restored from their records goes on in place of this one. */
      T_EQ_INT(nd, 0);
      tide_sjoin_t *j2 = NULL;
      T_EQ_INT(tide_sjoin_new(&L, &R, 1, how, ps, cond, &j2, &err), 0);
      tide_sjoin_clear_changes(j);
      tide_sjoin_ref_t *d2, *p2;
      size_t nd2, np2;
      T_EQ_INT(tide_sjoin_changes(j, &d2, &nd2, &p2, &np2), 0);
      T_EQ_INT(np2, 0); /* cleared: nothing due */
      free(d2);
      free(p2);
      for (size_t i = 0; i < np; i++) {
        tide_buf_t b = TIDE_BUF_INIT;
        T_EQ_INT(tide_sjoin_encode(j, puts[i].side, puts[i].row, &b), 0);
        T_EQ_INT(tide_sjoin_restore(j2, puts[i].side, puts[i].id, b.data, b.len, &err), 0);
        tide_buf_free(&b);
      }
      T_EQ_INT(tide_sjoin_rows(j2), tide_sjoin_rows(j));
      tide_sjoin_free(j);
      j = j2;
    }
    free(dels);
    free(puts);
  }
  /* the reference */
  uint32_t want = 0;
  for (uint32_t a = 0; a < nl; a++) {
    int matched = 0;
    for (uint32_t b = 0; b < nr; b++) {
      if (la[a].null_k || ra[b].null_k || la[a].k != ra[b].k || la[a].t > ra[b].t) continue;
      matched = 1;
      if (how != TIDE_SJOIN_LEFT_SEMI) {
        T_EQ_INT(has_pair(out, no, la[a].v, ra[b].v), 1);
        want++;
      }
    }
    if (how == TIDE_SJOIN_LEFT_SEMI && matched) {
      T_EQ_INT(has_pair(out, no, la[a].v, 0), 1);
      want++;
    }
    if (!matched && (how == TIDE_SJOIN_LEFT || how == TIDE_SJOIN_FULL)) {
      T_EQ_INT(has_pair(out, no, la[a].v, 0), 1);
      want++;
    }
  }
  if (how == TIDE_SJOIN_RIGHT || how == TIDE_SJOIN_FULL)
    for (uint32_t b = 0; b < nr; b++) {
      int matched = 0;
      for (uint32_t a = 0; a < nl && !matched; a++)
        matched = !la[a].null_k && !ra[b].null_k && la[a].k == ra[b].k && la[a].t <= ra[b].t;
      if (!matched) {
        T_EQ_INT(has_pair(out, no, 0, ra[b].v), 1);
        want++;
      }
    }
  T_EQ_INT(no, want);
  T_EQ_INT(tide_sjoin_rows(j), 0);
  tide_sjoin_free(j);
  tide_expr_free(cond);
  tide_schema_unref(ls);
  tide_schema_unref(rs);
  tide_schema_unref(ps);
}

/* A sliding range join over many batches: each step drops the state rows
 * no later row can match, so the tables are compacted again and again;
 * the output is still every matching pair once. */
static void test_compaction(void) {
  tide_schema_t *ls = schema("k int?, t timestamp, v int"), *rs = schema("k2 int?, t2 timestamp, v2 int");
  tide_schema_t *ps = schema("k int?, t timestamp, v int, k2 int?, t2 timestamp, v2 int");
  tide_expr_t *cond =
      expr("k = k2 AND t2 BETWEEN t - interval 300 milliseconds AND t + interval 300 milliseconds", ps);
  uint32_t lk = 0, rk = 0;
  tide_sjoin_side_t L = {ls, &lk, -1, 1, NULL}, R = {rs, &rk, -1, 1, NULL};
  tide_sjoin_t *j = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_sjoin_new(&L, &R, 1, TIDE_SJOIN_LEFT, ps, cond, &j, &err), 0);
  static rec_t la[MAXR * 4], ra[MAXR * 4];
  static int64_t out[MAXR * 200][2];
  uint32_t nl = 0, nr = 0, no = 0;
  for (int step = 0; step < 40; step++) {
    tide_batch_t *lb = rows(ls, 50, step * 100), *rb = rows(rs, 50, step * 100);
    add_recs(la, &nl, lb);
    add_recs(ra, &nr, rb);
    const tide_batch_t *in[2] = {lb, rb};
    /* later rows have t >= (step + 1) * 100: a row 300 ms before that can match none */
    int64_t bound = step == 39 ? INT64_MAX : (step + 1) * 100 - 301;
    tide_sjoin_bounds_t bd = {0, 0, {1, 1}, {bound, bound}};
    tide_batch_t *o = NULL;
    tide_sjoin_stats_t st;
    T_EQ_INT(tide_sjoin_run(j, in, &bd, &o, &st, &err), 0);
    if (o) add_out(out, &no, o);
    tide_batch_free(o);
    tide_batch_free(lb);
    tide_batch_free(rb);
  }
  uint32_t want = 0;
  for (uint32_t a = 0; a < nl; a++) {
    int matched = 0;
    for (uint32_t b = 0; b < nr; b++) {
      int64_t d = ra[b].t - la[a].t;
      if (la[a].null_k || ra[b].null_k || la[a].k != ra[b].k || d < -300 || d > 300) continue;
      matched = 1;
      want++;
    }
    want += !matched;
  }
  T_EQ_INT(no, want);
  /* spot checks: pairs of the reference are in the output */
  for (uint32_t a = 0; a < nl; a += 97)
    for (uint32_t b = 0; b < nr; b++) {
      int64_t d = ra[b].t - la[a].t;
      if (!la[a].null_k && !ra[b].null_k && la[a].k == ra[b].k && d >= -300 && d <= 300)
        T_EQ_INT(has_pair(out, no, la[a].v, ra[b].v), 1);
    }
  T_EQ_INT(tide_sjoin_rows(j), 0);
  tide_sjoin_free(j);
  tide_expr_free(cond);
  tide_schema_unref(ls);
  tide_schema_unref(rs);
  tide_schema_unref(ps);
}

/* Every join type, straight and with a restore half way. */
static void test_types(void) {
  for (int how = TIDE_SJOIN_INNER; how <= TIDE_SJOIN_LEFT_SEMI; how++) {
    run_random((tide_sjoin_how_t)how, 0);
    run_random((tide_sjoin_how_t)how, 1);
  }
}

/* Late rows, the side-only condition, eviction and Spark's update count. */
static void test_late_pre_evict(void) {
  tide_schema_t *ls = schema("k int, t timestamp, v int"), *rs = schema("k2 int, t2 timestamp, v2 int");
  tide_schema_t *ps = schema("k int?, t timestamp?, v int?, k2 int?, t2 timestamp?, v2 int?");
  tide_expr_t *pre = expr("v > 1", ls);
  uint32_t lk = 0, rk = 0;
  tide_sjoin_side_t L = {ls, &lk, 1, 1, pre}, R = {rs, &rk, 1, 1, NULL};
  tide_sjoin_t *j = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_sjoin_new(&L, &R, 1, TIDE_SJOIN_FULL, ps, NULL, &j, &err), 0);
  tide_batch_t *lb = tide_batch_new(ls, 4), *rb = tide_batch_new(rs, 4);
  int64_t lrows[][3] = {{1, 5, 1}, {1, 50, 2}, {2, 60, 3}}, rrows[][3] = {{1, 55, 10}, {3, 70, 11}};
  for (int i = 0; i < 3; i++) {
    tide_batch_row_begin(lb);
    for (int c = 0; c < 3; c++) tide_batch_set_i64(lb, (uint32_t)c, lrows[i][c]);
    tide_batch_row_commit(lb);
  }
  for (int i = 0; i < 2; i++) {
    tide_batch_row_begin(rb);
    for (int c = 0; c < 3; c++) tide_batch_set_i64(rb, (uint32_t)c, rrows[i][c]);
    tide_batch_row_commit(rb);
  }
  const tide_batch_t *in[2] = {lb, rb};
  tide_sjoin_bounds_t bd = {1, 10, {1, 1}, {55, 55}};
  tide_batch_t *o = NULL;
  tide_sjoin_stats_t st;
  T_EQ_INT(tide_sjoin_run(j, in, &bd, &o, &st, &err), 0);
  /* left (1, 5) is late; (1, 50) and (1, 55) match; left (2, 60) and right (3, 70) stay;
   * the evicted (1, 50) and (1, 55) matched: no outer row */
  T_EQ_INT(st.late[0], 1);
  T_EQ_INT(st.late[1], 0);
  T_EQ_INT(o->nrows, 1);
  T_EQ_INT(tide_col_i64(&o->cols[2], 0), 2);
  T_EQ_INT(tide_col_i64(&o->cols[5], 0), 10);
  T_EQ_INT(st.evicted, 2);
  T_EQ_INT(st.updated, 3); /* Spark leaves out the right row evicted at once after a match */
  T_EQ_INT(tide_sjoin_rows(j), 2);
  tide_batch_free(o);
  /* the side-only condition: v <= 1 is emitted at once (full outer), never kept */
  tide_batch_clear(lb);
  tide_batch_row_begin(lb);
  tide_batch_set_i64(lb, 0, 3), tide_batch_set_i64(lb, 1, 80), tide_batch_set_i64(lb, 2, 1);
  tide_batch_row_commit(lb);
  const tide_batch_t *in2[2] = {lb, NULL};
  tide_sjoin_bounds_t none;
  memset(&none, 0, sizeof none);
  T_EQ_INT(tide_sjoin_run(j, in2, &none, &o, &st, &err), 0);
  T_EQ_INT(o->nrows, 1);
  T_CHECK(tide_col_is_null(&o->cols[5], 0));
  T_EQ_INT(tide_sjoin_rows(j), 2);
  tide_batch_free(o);
  /* drop everything: the unmatched (2, 60) and (3, 70) come out */
  tide_sjoin_bounds_t all = {0, 0, {1, 1}, {INT64_MAX, INT64_MAX}};
  const tide_batch_t *none_in[2] = {NULL, NULL};
  T_EQ_INT(tide_sjoin_run(j, none_in, &all, &o, &st, &err), 0);
  T_EQ_INT(o->nrows, 2);
  T_EQ_INT(tide_sjoin_rows(j), 0);
  tide_batch_free(o);
  /* a batch of another shape */
  const tide_batch_t *bad[2] = {rb, lb};
  tide_batch_t *rb2 = tide_batch_new(ls, 1);
  bad[1] = rb2;
  bad[0] = NULL;
  tide_schema_t *other = schema("x string");
  tide_batch_t *ob = tide_batch_new(other, 1);
  bad[0] = ob;
  T_EQ_INT(tide_sjoin_run(j, bad, &none, &o, &st, &err), TIDE_EINVAL);
  T_CHECK(o == NULL);
  tide_batch_free(ob);
  tide_batch_free(rb2);
  tide_schema_unref(other);
  tide_batch_free(lb);
  tide_batch_free(rb);
  tide_sjoin_free(j);
  tide_expr_free(pre);
  tide_schema_unref(ls);
  tide_schema_unref(rs);
  tide_schema_unref(ps);
}

/* Damaged records are refused, naming what is wrong. */
static void test_records(void) {
  tide_schema_t *ls = schema("k int, s string"), *rs = schema("k2 int, s2 string");
  tide_schema_t *ps = schema("k int, s string, k2 int, s2 string");
  uint32_t lk = 0, rk = 0;
  tide_sjoin_side_t L = {ls, &lk, -1, -1, NULL}, R = {rs, &rk, -1, -1, NULL};
  tide_sjoin_t *j = NULL, *j2 = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_sjoin_new(&L, &R, 1, TIDE_SJOIN_LEFT, ps, NULL, &j, &err), 0);
  T_EQ_INT(tide_sjoin_new(&L, &R, 1, TIDE_SJOIN_LEFT, ps, NULL, &j2, &err), 0);
  tide_batch_t *lb = tide_batch_new(ls, 1);
  tide_batch_row_begin(lb);
  tide_batch_set_i64(lb, 0, 7);
  tide_batch_set_str(lb, 1, "seven", 5);
  tide_batch_row_commit(lb);
  const tide_batch_t *in[2] = {lb, NULL};
  tide_sjoin_bounds_t none;
  memset(&none, 0, sizeof none);
  tide_batch_t *o = NULL;
  tide_sjoin_stats_t st;
  T_EQ_INT(tide_sjoin_run(j, in, &none, &o, &st, &err), 0);
  tide_batch_free(o);
  tide_sjoin_ref_t *dels, *puts;
  size_t nd, np;
  T_EQ_INT(tide_sjoin_changes(j, &dels, &nd, &puts, &np), 0);
  T_EQ_INT(np, 1);
  tide_buf_t b = TIDE_BUF_INIT;
  T_EQ_INT(tide_sjoin_encode(j, 0, puts[0].row, &b), 0);
  T_EQ_INT(tide_sjoin_restore(j2, 0, 1, b.data, b.len, &err), 0);
  T_EQ_INT(tide_sjoin_restore(j2, 0, 1, b.data, b.len, &err), TIDE_ECORRUPT); /* twice */
  T_EQ_INT(tide_sjoin_restore(j2, 1, 2, b.data, b.len, &err), TIDE_ESCHEMA);  /* the other side */
  T_EQ_INT(tide_sjoin_restore(j2, 0, 3, b.data, b.len - 1, &err), TIDE_ECORRUPT); /* cut */
  b.data[b.len - 6] ^= 1;
  T_EQ_INT(tide_sjoin_restore(j2, 0, 4, b.data, b.len, &err), TIDE_ECORRUPT); /* checksum */
  T_CHECK(strstr(err.msg, "checksum") != NULL);
  b.data[0] = 9;
  T_EQ_INT(tide_sjoin_restore(j2, 0, 5, b.data, b.len, &err), TIDE_EFORMAT);
  T_EQ_INT(tide_sjoin_rows(j2), 1);
  tide_buf_free(&b);
  free(dels);
  free(puts);
  tide_batch_free(lb);
  tide_sjoin_free(j);
  tide_sjoin_free(j2);
  tide_schema_unref(ls);
  tide_schema_unref(rs);
  tide_schema_unref(ps);
}

/* Bad plans are refused. */
static void test_new_errors(void) {
  tide_schema_t *ls = schema("k int"), *rs = schema("k2 string"), *ps = schema("k int, k2 string");
  uint32_t lk = 0, rk = 0;
  tide_sjoin_side_t L = {ls, &lk, -1, -1, NULL}, R = {rs, &rk, -1, -1, NULL};
  tide_sjoin_t *j = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_sjoin_new(&L, &R, 1, TIDE_SJOIN_INNER, ps, NULL, &j, &err), TIDE_EINVAL);
  T_CHECK(strstr(err.msg, "left is int, right is string") != NULL);
  tide_sjoin_side_t L2 = {ls, &lk, 0, -1, NULL};
  T_EQ_INT(tide_sjoin_new(&L2, &R, 0, TIDE_SJOIN_INNER, ps, NULL, &j, &err), TIDE_EINVAL);
  T_CHECK(j == NULL);
  tide_schema_unref(ls);
  tide_schema_unref(rs);
  tide_schema_unref(ps);
}

int main(void) {
  T_RUN(test_types);
  T_RUN(test_compaction);
  T_RUN(test_late_pre_evict);
  T_RUN(test_records);
  T_RUN(test_new_errors);
  T_DONE();
}
