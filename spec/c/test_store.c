/*
 * test_store.c: the storage layer in C: the block codec (round trips of
 * whole and partial batches, garbage never crashes the checker), and the
 * store (atomic appends, aborts that leave no trace, snapshot reads, rolls,
 * retention, offload). Ends by proving that no file descriptor is left open.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "batch.h"
#include "jsonl.h"
#include "schema.h"
#include "seg.h"
#include "store.h"
#include "t.h"

#define TEST_DDL "ts timestamp, device string, signal int?, ok bool, x double"

static tide_schema_t *test_schema(void) {
  tide_schema_t *s;
  tide_err_t err = {0, ""};
  int rc = tide_schema_parse_ddl(TEST_DDL, strlen(TEST_DDL), &s, &err);
  T_EQ_INT(rc, 0);
  return s;
}

/* Rows with NULLs every 3rd signal, varying string lengths. */
static tide_batch_t *make_rows(tide_schema_t *s, uint32_t n, int64_t t0) {
  tide_batch_t *b = tide_batch_new(s, n);
  char dev[32];
  for (uint32_t i = 0; i < n; i++) {
    T_EQ_INT(tide_batch_row_begin(b), 0);
    tide_batch_set_i64(b, 0, t0 + i);
    int len = snprintf(dev, sizeof dev, "dev-%u%s", i % 7, i % 5 ? "" : "-long-name");
    T_EQ_INT(tide_batch_set_str(b, 1, dev, (size_t)len), 0);
    if (i % 3) tide_batch_set_i64(b, 2, (int64_t)i * 10);
    tide_batch_set_bool(b, 3, (int)(i & 1));
    tide_batch_set_f64(b, 4, i * 0.5);
    tide_batch_row_commit(b);
  }
  return b;
}

static void rows_equal(const tide_batch_t *a, uint32_t ai, const tide_batch_t *b, uint32_t bi) {
  for (uint32_t c = 0; c < a->schema->nfields; c++) {
    const tide_col_t *x = &a->cols[c], *y = &b->cols[c];
    T_EQ_INT(tide_col_is_null(x, ai), tide_col_is_null(y, bi));
    if (tide_col_is_null(x, ai)) continue;
    size_t l1, l2;
    switch (x->type) {
    case TIDE_T_STRING:
    case TIDE_T_JSON: {
      const char *p = tide_col_str(x, ai, &l1), *q = tide_col_str(y, bi, &l2);
      T_CHECK(l1 == l2 && !memcmp(p, q, l1));
      break;
    }
    case TIDE_T_BOOL: T_EQ_INT(tide_col_bool(x, ai), tide_col_bool(y, bi)); break;
    case TIDE_T_DOUBLE: T_CHECK(tide_col_f64(x, ai) == tide_col_f64(y, bi)); break;
    default: T_EQ_INT(tide_col_i64(x, ai), tide_col_i64(y, bi));
    }
  }
}

/* Encode rows [lo, hi) and decode them back, for aligned and unaligned lo. */
static void test_block_roundtrip(void) {
  tide_schema_t *s = test_schema();
  tide_batch_t *b = make_rows(s, 1000, 1700000000000);
  uint32_t cases[][2] = {{0, 1000}, {3, 997}, {8, 16}, {13, 14}, {999, 1000}};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    uint32_t lo = cases[k][0], hi = cases[k][1];
    tide_buf_t out = TIDE_BUF_INIT;
    T_EQ_INT(tide_block_encode(b, lo, hi, 500 + lo, 1, 1, 2, &out), 0);
    tide_block_hdr_t h;
    tide_err_t err = {0, ""};
    T_EQ_INT(tide_block_check(out.data, out.len, &h, &err), 0);
    T_EQ_INT(h.count, hi - lo);
    T_EQ_INT(h.base_offset, 500 + lo);
    T_EQ_INT(h.len, out.len);
    tide_map_t *m;
    T_EQ_INT(tide_map_buffer(out.data, out.len, &m), 0); /* the map owns out.data now */
    tide_batch_t *d;
    T_EQ_INT(tide_block_decode(m->addr, &h, s, m, &d, &err), 0);
    tide_map_unref(m); /* the batch keeps it alive */
    T_EQ_INT(d->nrows, hi - lo);
    for (uint32_t i = lo; i < hi; i++) rows_equal(b, i, d, i - lo);
    tide_batch_free(d);
  }
  tide_batch_free(b);
  tide_schema_unref(s);
}

/* Every single-byte corruption of a block is caught by the checker, and
 * random bytes never crash it. */
static void test_block_corruption(void) {
  tide_schema_t *s = test_schema();
  tide_batch_t *b = make_rows(s, 50, 0);
  tide_buf_t out = TIDE_BUF_INIT;
  T_EQ_INT(tide_block_encode(b, 0, 50, 0, 1, 0, 49, &out), 0);
  tide_block_hdr_t h;
  tide_err_t err = {0, ""};
  int caught = 0;
  for (size_t i = 0; i < out.len; i++) {
    out.data[i] ^= 0x5a;
    caught += tide_block_check(out.data, out.len, &h, &err) != 0;
    out.data[i] ^= 0x5a;
  }
  T_EQ_INT(caught, out.len);
  T_EQ_INT(tide_block_check(out.data, out.len - 8, &h, &err), TIDE_ECORRUPT); /* cut short */
  srand(42);
  char junk[4096];
  for (int k = 0; k < 2000; k++) {
    size_t n = (size_t)(rand() % (int)sizeof junk);
    for (size_t i = 0; i < n; i++) junk[i] = (char)rand();
    if (n >= 4) memcpy(junk, "TBLK", 4);
    (void)tide_block_check(junk, n, &h, &err);
  }
  tide_buf_free(&out);
  tide_batch_free(b);
  tide_schema_unref(s);
}

static char dir[256];

static void rm_rf(const char *p) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
  T_EQ_INT(system(cmd), 0);
}

static uint64_t read_all(tide_topic_t *t, int64_t from_time, int64_t to_time) {
  tide_read_opts_t o;
  tide_read_opts_init(&o);
  o.from_time = from_time;
  o.to_time = to_time;
  tide_reader_t *r;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_reader_open(t, &o, &r, &err), 0);
  tide_batch_t *b;
  uint32_t part;
  const uint64_t *offs;
  uint64_t n = 0, expect = 0;
  int rc;
  while ((rc = tide_reader_next(r, &b, &part, &offs, &err)) == 1) {
    for (uint32_t i = 0; i < b->nrows; i++) {
      if (from_time == INT64_MIN) T_EQ_INT(offs[i], expect);
      expect = offs[i] + 1;
    }
    n += b->nrows;
    tide_batch_free(b);
  }
  T_EQ_INT(rc, 0);
  tide_reader_close(r);
  return n;
}

static void test_store(void) {
  int fds = t_count_fds();
  snprintf(dir, sizeof dir, "/tmp/tide-ctest-%d", (int)getpid());
  rm_rf(dir);
  tide_store_t *st;
  tide_err_t err = {0, ""};
  tide_store_opts_t so = {0, 0, NULL};
  T_EQ_INT(tide_store_open(dir, &so, &st, &err), 0);
  tide_schema_t *s = test_schema();
  tide_topic_opts_t to = {0};
  to.partitions = 1;
  to.schema = s;
  to.retention_ms = -1;
  to.retention_bytes = -1;
  to.segment_bytes = 4096;
  to.segment_ms = -1;
  T_EQ_INT(tide_store_create_topic(st, "t", &to, &err), 0);
  T_EQ_INT(tide_store_create_topic(st, "t", &to, &err), TIDE_EEXIST);
  T_EQ_STR(err.msg, "topic 't' already exists");
  T_EQ_INT(tide_store_create_topic(st, "../x", &to, &err), TIDE_EINVAL);
  tide_topic_t *t;
  T_EQ_INT(tide_store_topic(st, "t", &t, &err), 0);

  /* 20 appends of 100 rows: segments roll at 4 KiB */
  tide_batch_t *b = make_rows(s, 100, 1000);
  for (int k = 0; k < 20; k++) {
    tide_append_t *a;
    tide_range_t rg[1];
    uint32_t nr;
    T_EQ_INT(tide_append_begin(t, &a, &err), 0);
    T_EQ_INT(tide_append_rows(a, b, 0, 100, -1, &err), 0);
    T_EQ_INT(tide_append_commit(a, rg, &nr, &err), 0);
    T_EQ_INT(nr, 1);
    T_EQ_INT(rg[0].first, (uint64_t)k * 100);
    T_EQ_INT(rg[0].end, (uint64_t)k * 100 + 100);
  }
  T_EQ_INT(read_all(t, INT64_MIN, INT64_MAX), 2000);
  T_EQ_INT(read_all(t, 1010, 1020), 200); /* ts 1010..1019 in each append */

  /* an aborted append leaves nothing: offsets and bytes unchanged */
  tide_seg_info_t *segs;
  size_t n1, n2;
  T_EQ_INT(tide_topic_segments(t, &segs, &n1, &err), 0);
  uint64_t last_bytes = segs[n1 - 1].bytes;
  T_CHECK(n1 > 2);
  free(segs);
  tide_append_t *a;
  T_EQ_INT(tide_append_begin(t, &a, &err), 0);
  for (int k = 0; k < 10; k++) T_EQ_INT(tide_append_rows(a, b, 0, 100, -1, &err), 0);
  tide_append_abort(a);
  T_EQ_INT(tide_topic_segments(t, &segs, &n2, &err), 0);
  T_EQ_INT(n2, n1);
  T_EQ_INT(segs[n2 - 1].bytes, last_bytes);
  T_EQ_INT(segs[n2 - 1].end_offset, 2000);
  char path[512];
  struct stat sb;
  snprintf(path, sizeof path, "%s/topics/1/p0/%020llu.seg", dir, (unsigned long long)segs[n2 - 1].base_offset);
  T_EQ_INT(stat(path, &sb), 0);
  T_EQ_INT((uint64_t)sb.st_size, last_bytes);
  free(segs);
  T_EQ_INT(read_all(t, INT64_MIN, INT64_MAX), 2000);

  /* offload the sealed segments; reads are unchanged */
  uint32_t moved = 0, dropped = 0;
  T_EQ_INT(tide_topic_offload(t, 1000, &moved, &err), 0);
  T_CHECK(moved > 0);
  T_EQ_INT(read_all(t, INT64_MIN, INT64_MAX), 2000);

  /* retention by bytes keeps the open segment */
  tide_store_close(st);
  T_EQ_INT(tide_store_open(dir, &so, &st, &err), 0);
  T_EQ_INT(tide_store_topic(st, "t", &t, &err), 0);
  T_EQ_INT(read_all(t, INT64_MIN, INT64_MAX), 2000);
  T_EQ_INT(tide_topic_enforce_retention(t, 0, &dropped, &err), 0);
  T_EQ_INT(dropped, 0); /* no retention configured */
  T_EQ_INT(tide_store_delete_topic(st, "t", &err), 0);
  T_EQ_INT(tide_store_topic(st, "t", &t, &err), TIDE_ENOTFOUND);
  snprintf(path, sizeof path, "%s/topics/1", dir);
  T_CHECK(stat(path, &sb) < 0);

  tide_batch_free(b);
  tide_schema_unref(s);
  tide_store_close(st);
  rm_rf(dir);
  T_EQ_INT(t_count_fds(), fds);
}

/* ------------------------------------------------ idempotent writers --- */

static tide_topic_t *fresh_topic(tide_store_t *st, const char *name, tide_schema_t *s, uint32_t parts) {
  tide_topic_opts_t to = {0};
  tide_err_t err = {0, ""};
  to.partitions = parts;
  to.schema = s;
  to.retention_ms = -1;
  to.retention_bytes = -1;
  to.segment_ms = -1;
  T_EQ_INT(tide_store_create_topic(st, name, &to, &err), 0);
  tide_topic_t *t = NULL;
  T_EQ_INT(tide_store_topic(st, name, &t, &err), 0);
  return t;
}

/* One append of rows [0, n) of b as writer w, sequence seq. Returns the
 * skipped flag. */
static int writer_append(tide_topic_t *t, const char *w, uint64_t seq, const tide_batch_t *b, uint32_t n) {
  tide_append_t *a;
  tide_err_t err = {0, ""};
  int skipped = -1;
  uint32_t nr = 9;
  tide_range_t rg[4];
  T_EQ_INT(tide_append_begin(t, &a, &err), 0);
  T_EQ_INT(tide_append_writer(a, w, strlen(w), seq, &skipped, &err), 0);
  T_EQ_INT(tide_append_rows(a, b, 0, n, -1, &err), 0);
  T_EQ_INT(tide_append_commit(a, rg, &nr, &err), 0);
  if (skipped) T_EQ_INT(nr, 0);
  return skipped;
}

static uint64_t writer_seq(tide_topic_t *t, const char *w, int *found) {
  uint64_t seq = 0;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_topic_writer_seq(t, w, strlen(w), &seq, found, &err), 0);
  return seq;
}

/* The writer record commits with the data, a replay is skipped, an abort
 * records nothing, the record survives a reopen and goes with its topic. */
static void test_writers(void) {
  int fds = t_count_fds();
  snprintf(dir, sizeof dir, "/tmp/tide-ctest-w-%d", (int)getpid());
  rm_rf(dir);
  tide_store_t *st;
  tide_err_t err = {0, ""};
  tide_store_opts_t so = {0, 0, NULL};
  T_EQ_INT(tide_store_open(dir, &so, &st, &err), 0);
  tide_schema_t *s = test_schema();
  tide_topic_t *t = fresh_topic(st, "w", s, 1);
  tide_batch_t *b = make_rows(s, 10, 5000);
  int found = -1;

  T_EQ_INT(writer_seq(t, "q/sink", &found), 0);
  T_EQ_INT(found, 0);
  T_EQ_INT(writer_append(t, "q/sink", 0, b, 10), 0);
  T_EQ_INT(writer_seq(t, "q/sink", &found), 0);
  T_EQ_INT(found, 1);
  T_EQ_INT(writer_append(t, "q/sink", 1, b, 10), 0);
  T_EQ_INT(read_all(t, INT64_MIN, INT64_MAX), 20);
  /* replays of 1 and of an older 0: nothing written */
  T_EQ_INT(writer_append(t, "q/sink", 1, b, 10), 1);
  T_EQ_INT(writer_append(t, "q/sink", 0, b, 10), 1);
  T_EQ_INT(read_all(t, INT64_MIN, INT64_MAX), 20);
  T_EQ_INT(writer_seq(t, "q/sink", &found), 1);
  /* another writer has its own sequence */
  T_EQ_INT(writer_append(t, "other", 1, b, 5), 0);
  T_EQ_INT(read_all(t, INT64_MIN, INT64_MAX), 25);
  /* an empty append still records its sequence */
  T_EQ_INT(writer_append(t, "q/sink", 2, b, 0), 0);
  T_EQ_INT(writer_seq(t, "q/sink", &found), 2);

  /* an aborted session records nothing */
  tide_append_t *a;
  int skipped = -1;
  T_EQ_INT(tide_append_begin(t, &a, &err), 0);
  T_EQ_INT(tide_append_writer(a, "q/sink", 3, 3, &skipped, &err), 0);
  T_EQ_INT(skipped, 0);
  T_EQ_INT(tide_append_writer(a, "q/sink", 6, 3, &skipped, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "the append session already has a writer id");
  T_EQ_INT(tide_append_rows(a, b, 0, 10, -1, &err), 0);
  tide_append_abort(a);
  T_EQ_INT(writer_seq(t, "q/sink", &found), 2);
  T_EQ_INT(read_all(t, INT64_MIN, INT64_MAX), 25);

  /* bad writer ids */
  char big[TIDE_WRITER_ID_MAX + 2];
  memset(big, 'x', sizeof big);
  T_EQ_INT(tide_append_begin(t, &a, &err), 0);
  T_EQ_INT(tide_append_writer(a, "", 0, 1, &skipped, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "writer id must be 1..255 bytes, got 0");
  T_EQ_INT(tide_append_writer(a, big, TIDE_WRITER_ID_MAX + 1, 1, &skipped, &err), TIDE_EINVAL);
  T_EQ_INT(tide_append_writer(a, big, TIDE_WRITER_ID_MAX, 1, &skipped, &err), 0);
  T_EQ_INT(tide_append_commit(a, NULL, NULL, &err), 0);
  uint64_t seq = 0;
  T_EQ_INT(tide_topic_writer_seq(t, big, TIDE_WRITER_ID_MAX, &seq, &found, &err), 0);
  T_EQ_INT(found, 1);
  T_EQ_INT(seq, 1);

  /* survives a reopen */
  tide_store_close(st);
  T_EQ_INT(tide_store_open(dir, &so, &st, &err), 0);
  T_EQ_INT(tide_store_topic(st, "w", &t, &err), 0);
  T_EQ_INT(writer_seq(t, "q/sink", &found), 2);
  T_EQ_INT(found, 1);
  T_EQ_INT(writer_append(t, "q/sink", 2, b, 10), 1);
  T_EQ_INT(writer_append(t, "q/sink", 3, b, 10), 0);
  T_EQ_INT(read_all(t, INT64_MIN, INT64_MAX), 35);

  /* a topic deleted and created again starts with no writers */
  T_EQ_INT(tide_store_delete_topic(st, "w", &err), 0);
  t = fresh_topic(st, "w", s, 1);
  T_EQ_INT(writer_seq(t, "q/sink", &found), 0);
  T_EQ_INT(found, 0);
  T_EQ_INT(writer_seq(t, "other", &found), 0);
  T_EQ_INT(found, 0);
  T_EQ_INT(writer_append(t, "q/sink", 0, b, 10), 0);
  T_EQ_INT(read_all(t, INT64_MIN, INT64_MAX), 10);

  tide_batch_free(b);
  tide_schema_unref(s);
  tide_store_close(st);
  rm_rf(dir);
  T_EQ_INT(t_count_fds(), fds);
}

static tide_schema_t *ddl(const char *text) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_schema_parse_ddl(text, strlen(text), &s, &err), 0);
  return s;
}

/* Append b with tide_append_batch; returns its result, message in err. */
static int batch_append(tide_topic_t *t, const tide_batch_t *b, tide_err_t *err) {
  tide_append_t *a;
  T_EQ_INT(tide_append_begin(t, &a, err), 0);
  int rc = tide_append_batch(a, b, -1, err);
  if (rc) tide_append_abort(a);
  else T_EQ_INT(tide_append_commit(a, NULL, NULL, err), 0);
  return rc;
}

/* Read the whole topic as JSON lines, for comparisons. */
static void topic_json(tide_topic_t *t, tide_buf_t *out) {
  tide_read_opts_t o;
  tide_read_opts_init(&o);
  tide_reader_t *r;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_reader_open(t, &o, &r, &err), 0);
  tide_batch_t *b;
  uint32_t part;
  const uint64_t *offs;
  out->len = 0;
  while (tide_reader_next(r, &b, &part, &offs, &err) == 1) {
    for (uint32_t i = 0; i < b->nrows; i++) {
      tide_json_enc_row(b, i, out, 0);
      tide_buf_putc(out, '\n');
    }
    tide_batch_free(b);
  }
  tide_reader_close(r);
  tide_buf_putc(out, 0);
}

/* Rows of another schema are matched to the topic's by name: reordered,
 * widened, defaulted; extra columns, wrong types and NULLs in NOT NULL
 * fields are refused with the field named; a schemaless topic takes rows
 * as JSON objects. */
static void test_append_batch(void) {
  int fds = t_count_fds();
  snprintf(dir, sizeof dir, "/tmp/tide-ctest-b-%d", (int)getpid());
  rm_rf(dir);
  tide_store_t *st;
  tide_err_t err = {0, ""};
  tide_store_opts_t so = {0, 0, NULL};
  T_EQ_INT(tide_store_open(dir, &so, &st, &err), 0);
  tide_schema_t *ts = ddl("id int, score double, tag string DEFAULT 'none', note string?");
  tide_topic_t *t = fresh_topic(st, "conv", ts, 1);
  tide_buf_t js = TIDE_BUF_INIT;

  /* reordered, int widened to double, tag defaulted, note NULL */
  tide_schema_t *qs = ddl("score int, id int?");
  tide_batch_t *q = tide_batch_new(qs, 4);
  for (int i = 0; i < 2; i++) {
    tide_batch_row_begin(q);
    tide_batch_set_i64(q, 0, 10 + i);
    tide_batch_set_i64(q, 1, i);
    tide_batch_row_commit(q);
  }
  T_EQ_INT(tide_topic_accepts(t, qs, &err), 0);
  T_EQ_INT(batch_append(t, q, &err), 0);
  topic_json(t, &js);
  T_EQ_STR(js.data, "{\"id\":0,\"score\":10.0,\"tag\":\"none\",\"note\":null}\n"
                    "{\"id\":1,\"score\":11.0,\"tag\":\"none\",\"note\":null}\n");
  /* a NULL id (NOT NULL, no default) fails the whole batch, naming the row */
  tide_batch_row_begin(q);
  tide_batch_set_i64(q, 0, 12);
  tide_batch_row_commit(q);
  T_EQ_INT(batch_append(t, q, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "row 3: field 'id' is NULL, topic 'conv' declares it NOT NULL");
  T_EQ_INT(read_all(t, INT64_MIN, INT64_MAX), 2);
  tide_batch_free(q);
  tide_schema_unref(qs);

  /* an extra column, a missing NOT NULL field, a wrong type */
  qs = ddl("id int, score double, extra bool");
  T_EQ_INT(tide_topic_accepts(t, qs, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "column 'extra' is not a field of topic 'conv' (fields: id, score, tag, note)");
  tide_schema_unref(qs);
  qs = ddl("score double");
  T_EQ_INT(tide_topic_accepts(t, qs, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'id' of topic 'conv' is NOT NULL without a default and the rows lack it (columns: score)");
  tide_schema_unref(qs);
  qs = ddl("id string, score double");
  T_EQ_INT(tide_topic_accepts(t, qs, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'id': the rows have string, topic 'conv' wants int");
  q = tide_batch_new(qs, 1);
  tide_batch_row_begin(q);
  T_EQ_INT(tide_batch_set_str(q, 0, "x", 1), 0);
  tide_batch_set_f64(q, 1, 1.5);
  tide_batch_row_commit(q);
  T_EQ_INT(batch_append(t, q, &err), TIDE_ESCHEMA);
  T_EQ_STR(err.msg, "field 'id': the rows have string, topic 'conv' wants int");
  tide_batch_free(q);
  tide_schema_unref(qs);

  /* the topic's own schema goes in as it is */
  q = tide_batch_new(ts, 1);
  tide_batch_row_begin(q);
  tide_batch_set_i64(q, 0, 7);
  tide_batch_set_f64(q, 1, 0.25);
  T_EQ_INT(tide_batch_set_str(q, 2, "t", 1), 0);
  tide_batch_row_commit(q);
  T_EQ_INT(batch_append(t, q, &err), 0);
  T_EQ_INT(read_all(t, INT64_MIN, INT64_MAX), 3);
  tide_batch_free(q);

  /* schemaless: rows become JSON objects; a lone `value json` goes as is */
  tide_topic_t *sl = fresh_topic(st, "free", NULL, 1);
  qs = ddl("a int, b string?");
  q = tide_batch_new(qs, 1);
  tide_batch_row_begin(q);
  tide_batch_set_i64(q, 0, 1);
  tide_batch_row_commit(q);
  T_EQ_INT(batch_append(sl, q, &err), 0);
  tide_batch_free(q);
  tide_schema_unref(qs);
  qs = ddl("value json");
  q = tide_batch_new(qs, 1);
  tide_batch_row_begin(q);
  T_EQ_INT(tide_batch_set_str(q, 0, "[1,2]", 5), 0);
  tide_batch_row_commit(q);
  T_EQ_INT(batch_append(sl, q, &err), 0);
  tide_batch_free(q);
  tide_schema_unref(qs);
  topic_json(sl, &js);
  T_EQ_STR(js.data, "{\"value\":{\"a\":1,\"b\":null}}\n{\"value\":[1,2]}\n");

  tide_buf_free(&js);
  tide_schema_unref(ts);
  tide_store_close(st);
  rm_rf(dir);
  T_EQ_INT(t_count_fds(), fds);
}

/* Rows [from, to) of partition 0 read into *rows (each compared with
 * make_rows' row at its offset); returns tide_reader_next's last code. */
static int read_range(tide_topic_t *t, const tide_batch_t *want, uint64_t from, uint64_t to, tide_err_t *err) {
  tide_read_opts_t o;
  tide_read_opts_init(&o);
  o.from = from;
  o.to = to;
  tide_reader_t *r;
  T_EQ_INT(tide_reader_open(t, &o, &r, err), 0);
  tide_batch_t *b;
  uint32_t part;
  const uint64_t *offs;
  uint64_t next = from;
  int rc;
  while ((rc = tide_reader_next(r, &b, &part, &offs, err)) == 1) {
    for (uint32_t i = 0; i < b->nrows; i++) {
      T_EQ_INT(offs[i], next++);
      rows_equal(b, i, want, (uint32_t)offs[i]);
    }
    tide_batch_free(b);
  }
  if (rc == 0) T_EQ_INT(next, to);
  tide_reader_close(r);
  return rc;
}

/* Reads that cut one block (a streaming source's batches) give the rows of
 * one read; the block is checked once, but only while its stored CRC is
 * the one checked: a block changed since is checked again. */
static void test_cut_blocks(void) {
  int fds = t_count_fds();
  snprintf(dir, sizeof dir, "/tmp/tide-ctest-cut-%d", (int)getpid());
  rm_rf(dir);
  tide_store_t *st;
  tide_err_t err = {0, ""};
  tide_store_opts_t so = {0, 0, NULL};
  T_EQ_INT(tide_store_open(dir, &so, &st, &err), 0);
  tide_schema_t *s = test_schema();
  tide_topic_t *t = fresh_topic(st, "c", s, 1);
  tide_batch_t *b = make_rows(s, 100, 1000);
  tide_append_t *a;
  tide_range_t rg[1];
  uint32_t nr;
  T_EQ_INT(tide_append_begin(t, &a, &err), 0);
  T_EQ_INT(tide_append_rows(a, b, 0, 100, -1, &err), 0);
  T_EQ_INT(tide_append_commit(a, rg, &nr, &err), 0);
  T_EQ_INT(read_range(t, b, 0, 37, &err), 0);
  T_EQ_INT(read_range(t, b, 37, 61, &err), 0);
  T_EQ_INT(read_range(t, b, 61, 100, &err), 0);
  T_EQ_INT(read_range(t, b, 0, 100, &err), 0);
  T_EQ_INT(read_range(t, b, 0, 50, &err), 0);
  /* the block's stored CRC changes on disk: the next read checks it again */
  char path[512];
  snprintf(path, sizeof path, "%s/topics/1/p0/%020llu.seg", dir, 0ULL);
  int fd = open(path, O_RDWR);
  T_CHECK(fd >= 0);
  unsigned char c;
  T_EQ_INT(pread(fd, &c, 1, TIDE_SEG_HEADER + 8), 1);
  c ^= 0x40;
  T_EQ_INT(pwrite(fd, &c, 1, TIDE_SEG_HEADER + 8), 1);
  close(fd);
  T_EQ_INT(read_range(t, b, 50, 100, &err), TIDE_ECORRUPT);
  T_CHECK(strstr(err.msg, "block checksum mismatch") != NULL);
  tide_batch_free(b);
  tide_schema_unref(s);
  tide_store_close(st);
  rm_rf(dir);
  T_EQ_INT(t_count_fds(), fds);
}

int main(void) {
  T_RUN(test_block_roundtrip);
  T_RUN(test_block_corruption);
  T_RUN(test_store);
  T_RUN(test_writers);
  T_RUN(test_append_batch);
  T_RUN(test_cut_blocks);
  T_DONE();
}
