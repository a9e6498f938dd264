/*
 * test_repart.c: the repartition codec (core/repart.h): murmur2 against
 * librdkafka's own murmur2 partitioner, the round trip of every type, and
 * every truncation and corruption of a message failing cleanly.
 */
#include <librdkafka/rdkafka.h>
#include <math.h>
#include <stdint.h>

#include "decode.h"
#include "repart.h"
#include "t.h"

static void test_murmur2_is_kafkas(void) {
  /* librdkafka's unit test vectors (rdmurmur2.c), which are the Java client's */
  T_EQ_INT(tide_repart_murmur2("kafka", 5), 0xd067cf64u);
  T_EQ_INT(tide_repart_murmur2("giberish123456789", 17), 0x8f552b0cu);
  T_EQ_INT(tide_repart_murmur2("1234", 4), 0x9fc97b14u);
  T_EQ_INT(tide_repart_murmur2("234", 3), 0xe7c009cau);
  T_EQ_INT(tide_repart_murmur2("34", 2), 0x873930dau);
  T_EQ_INT(tide_repart_murmur2("4", 1), 0x5a4b5ca1u);
  /* every length and byte value against librdkafka's murmur2 partitioner */
  unsigned char buf[300];
  uint32_t x = 7;
  int bad = 0;
  for (size_t n = 1; n < sizeof buf; n++) {
    for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)((x = x * 1103515245u + 12345u) >> 16);
    for (int32_t parts = 1; parts <= 64; parts = parts * 2 + 1)
      if (tide_repart_partition(buf, n, parts) != rd_kafka_msg_partitioner_murmur2(NULL, buf, n, parts, NULL, NULL))
        bad++;
  }
  T_EQ_INT(bad, 0);
}

static tide_batch_t *all_types(void) {
  tide_schema_t *s = NULL;
  const char *ddl = "i int?, t timestamp?, d double?, b bool?, s string?, j json?, n int";
  T_EQ_INT(tide_schema_parse_ddl(ddl, strlen(ddl), &s, NULL), 0);
  tide_batch_t *b = tide_batch_new(s, 4);
  tide_schema_unref(s);
  double ds[] = {0.1, -0.0, INFINITY, NAN};
  const char *js[] = {"{\"a\":[1,{\"b\":null}],\"c\":\"\\u00e9\"}", "[]", "3.5e-300", "\"x\""};
  for (int r = 0; r < 4; r++) {
    T_EQ_INT(tide_batch_row_begin(b), 0);
    if (r != 3) {
      tide_batch_set_i64(b, 0, r == 0 ? INT64_MIN : r == 1 ? INT64_MAX : -1);
      tide_batch_set_i64(b, 1, r == 0 ? TIDE_TS_MIN : r == 1 ? TIDE_TS_MAX : 1700000000123);
      tide_batch_set_f64(b, 2, ds[r]);
      tide_batch_set_bool(b, 3, r & 1);
      T_EQ_INT(tide_batch_set_str(b, 4, r == 0 ? "" : "h\xc3\xa9llo\n", r == 0 ? 0 : 7), 0);
      T_EQ_INT(tide_batch_set_str(b, 5, js[r], strlen(js[r])), 0);
    }
    tide_batch_set_i64(b, 6, r);
    tide_batch_row_commit(b);
  }
  return b;
}

static void test_round_trip(void) {
  tide_batch_t *b = all_types();
  tide_batch_t *m = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_repart_encode(b, b, 7, &m, &err), 0);
  T_EQ_INT(m->nrows, 4);
  uint32_t sid;
  T_EQ_INT(tide_repart_schema_id(b->schema, &sid), 0);
  tide_batch_t *out = tide_batch_new(b->schema, 1);
  tide_buf_t tmp = TIDE_BUF_INIT;
  for (uint32_t r = 0; r < m->nrows; r++) {
    size_t n, kn;
    const char *v = tide_col_str(&m->cols[2], r, &n), *k = tide_col_str(&m->cols[1], r, &kn);
    T_EQ_INT(tide_col_i64(&m->cols[0], r), tide_repart_partition(k, kn, 7));
    int32_t up;
    int64_t ms;
    T_EQ_INT(tide_repart_decode(out, sid, v, n, &tmp, &up, &ms, &err), 0);
  }
  T_EQ_INT(out->nrows, 4);
  for (uint32_t c = 0; c < b->schema->nfields; c++)
    for (uint32_t r = 0; r < 4; r++) {
      const tide_col_t *x = &b->cols[c], *y = &out->cols[c];
      T_EQ_INT(tide_col_is_null(x, r), tide_col_is_null(y, r));
      if (tide_col_is_null(x, r)) continue;
      if (x->type == TIDE_T_STRING || x->type == TIDE_T_JSON) {
        size_t a, bb;
        const char *p = tide_col_str(x, r, &a), *q = tide_col_str(y, r, &bb);
        T_CHECK(a == bb && memcmp(p, q, a) == 0);
      } else if (x->type == TIDE_T_DOUBLE) {
        double p = tide_col_f64(x, r), q = tide_col_f64(y, r);
        T_CHECK(memcmp(&p, &q, 8) == 0); /* bit for bit: -0.0 stays -0.0, NaN stays NaN */
      } else if (x->type == TIDE_T_BOOL) {
        T_EQ_INT(tide_col_bool(x, r), tide_col_bool(y, r));
      } else {
        T_EQ_INT(tide_col_i64(x, r), tide_col_i64(y, r));
      }
    }
  tide_buf_free(&tmp);
  tide_batch_free(out);
  tide_batch_free(m);
  tide_batch_free(b);
}

static void test_keys_normalise_doubles(void) {
  tide_schema_t *s = NULL;
  T_EQ_INT(tide_schema_parse_ddl("d double", 8, &s, NULL), 0);
  tide_batch_t *b = tide_batch_new(s, 4);
  tide_schema_unref(s);
  double v[] = {0.0, -0.0, NAN, -NAN};
  for (int r = 0; r < 4; r++) {
    tide_batch_row_begin(b);
    tide_batch_set_f64(b, 0, v[r]);
    tide_batch_row_commit(b);
  }
  tide_batch_t *m = NULL;
  T_EQ_INT(tide_repart_encode(b, b, 1000, &m, NULL), 0);
  size_t n0, n1, n2, n3;
  const char *k0 = tide_col_str(&m->cols[1], 0, &n0), *k1 = tide_col_str(&m->cols[1], 1, &n1);
  const char *k2 = tide_col_str(&m->cols[1], 2, &n2), *k3 = tide_col_str(&m->cols[1], 3, &n3);
  T_CHECK(n0 == n1 && memcmp(k0, k1, n0) == 0);
  T_CHECK(n2 == n3 && memcmp(k2, k3, n2) == 0);
  /* the constant key of no columns (a global aggregation) */
  tide_batch_t *m2 = NULL;
  T_EQ_INT(tide_repart_encode(b, NULL, 1000, &m2, NULL), 0);
  size_t c0, c3;
  const char *e0 = tide_col_str(&m2->cols[1], 0, &c0);
  tide_col_str(&m2->cols[1], 3, &c3);
  T_CHECK(c0 == 2 && c3 == 2 && memcmp(e0, "K1", 2) == 0);
  T_EQ_INT(tide_col_i64(&m2->cols[0], 0), tide_col_i64(&m2->cols[0], 3));
  tide_batch_free(m2);
  tide_batch_free(m);
  tide_batch_free(b);
}

static void test_markers(void) {
  tide_batch_t *m = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_repart_markers(3, 2, -5, &m, &err), 0);
  T_EQ_INT(m->nrows, 3);
  tide_schema_t *s = NULL;
  T_EQ_INT(tide_schema_parse_ddl("x int", 5, &s, NULL), 0);
  tide_batch_t *out = tide_batch_new(s, 1);
  tide_buf_t tmp = TIDE_BUF_INIT;
  for (uint32_t r = 0; r < 3; r++) {
    T_EQ_INT(tide_col_i64(&m->cols[0], r), r);
    T_CHECK(tide_col_is_null(&m->cols[1], r));
    size_t n, hn;
    const char *v = tide_col_str(&m->cols[2], r, &n), *h = tide_col_str(&m->cols[3], r, &hn);
    T_CHECK(hn == strlen("{\"tide-watermark\":\"2:-5\"}") && memcmp(h, "{\"tide-watermark\":\"2:-5\"}", hn) == 0);
    int32_t up = -1;
    int64_t ms = 0;
    T_EQ_INT(tide_repart_decode(out, 0, v, n, &tmp, &up, &ms, &err), 1);
    T_EQ_INT(up, 2);
    T_EQ_INT(ms, -5);
    T_EQ_INT(n, TIDE_REPART_MARK_LEN);
  }
  tide_buf_free(&tmp);
  T_EQ_INT(out->nrows, 0);
  tide_batch_t *none = NULL;
  T_CHECK(tide_repart_markers(0, 0, 0, &none, &err) == TIDE_EINVAL && none == NULL);
  tide_batch_free(out);
  tide_schema_unref(s);
  tide_batch_free(m);
}

/* "R1" + the base64 of body[0..n) */
static char *row_text(const unsigned char *body, size_t n, size_t *len) {
  tide_buf_t t = TIDE_BUF_INIT;
  tide_buf_append(&t, "R1", 2);
  tide_base64_enc((const char *)body, n, &t);
  *len = t.len;
  return t.data;
}

/* Every prefix of a message and every change of one character of it fails
 * cleanly or decodes to a row; the batch never holds a half row. */
static void test_bad_messages(void) {
  tide_batch_t *b = all_types(), *m = NULL;
  T_EQ_INT(tide_repart_encode(b, NULL, 1, &m, NULL), 0);
  uint32_t sid;
  tide_repart_schema_id(b->schema, &sid);
  tide_batch_t *out = tide_batch_new(b->schema, 1);
  tide_buf_t tmp = TIDE_BUF_INIT;
  int32_t up;
  int64_t ms;
  tide_err_t err = {0, ""};
  size_t n;
  const char *v = tide_col_str(&m->cols[2], 0, &n);
  for (size_t i = 0; i < n; i++) T_CHECK(v[i] > 0x20 && v[i] < 0x7f); /* ASCII text */
  int bad = 0;
  for (size_t cut = 0; cut < n; cut++) {
    int rc = tide_repart_decode(out, sid, v, cut, &tmp, &up, &ms, &err);
    if (rc != TIDE_ECORRUPT || out->nrows != 0) bad++;
  }
  T_EQ_INT(bad, 0);
  static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=!";
  char copy[512];
  T_CHECK(n < sizeof copy);
  int rows = 0, fails = 0, other = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < sizeof abc - 1; k++) {
      memcpy(copy, v, n);
      copy[i] = abc[k];
      uint32_t before = out->nrows;
      int rc = tide_repart_decode(out, sid, copy, n, &tmp, &up, &ms, &err);
      if (rc == 0 && out->nrows == before + 1) rows++;
      else if (rc < 0 && out->nrows == before) fails++;
      else other++;
    }
  T_EQ_INT(other, 0);
  T_CHECK(rows > 0 && fails > 0);
  /* the checks name what is wrong: bodies made by hand for "x int, s string, ok bool, t timestamp?" */
  tide_schema_t *s2 = NULL;
  const char *ddl = "x int, s string, ok bool, t timestamp?";
  T_EQ_INT(tide_schema_parse_ddl(ddl, strlen(ddl), &s2, NULL), 0);
  uint32_t sid2;
  tide_repart_schema_id(s2, &sid2);
  tide_batch_t *o2 = tide_batch_new(s2, 1);
  unsigned char body[64];
  size_t bl = 0;
  for (int i = 0; i < 4; i++) body[bl++] = (unsigned char)(sid2 >> (8 * i));
  body[bl++] = 0x08; /* t is NULL */
  for (int i = 0; i < 8; i++) body[bl++] = (unsigned char)(i == 0 ? 7 : 0);
  body[bl++] = 3, body[bl++] = 0, body[bl++] = 0, body[bl++] = 0;
  body[bl++] = 'a', body[bl++] = 'b', body[bl++] = 'c';
  body[bl++] = 1; /* ok */
  size_t tl;
  char *t = row_text(body, bl, &tl);
  T_EQ_INT(tide_repart_decode(o2, sid2, t, tl, &tmp, &up, &ms, &err), 0);
  T_EQ_INT(o2->nrows, 1);
  free(t);
  static const struct {
    size_t at, cut; /* change byte at (when < bl) to val; cut the body to cut bytes (when > 0) */
    unsigned char val;
    const char *why;
  } cases[] = {
      {99, 17, 0, "the row ends inside field 's'"},
      {99, 20, 0, "the row ends inside field 'ok'"},
      {4, 0, 0x18, "bits past the last field"},
      {4, 0, 0x01, "NULL in the non-nullable field 'x'"},
      {4, 0, 0x00, "the row ends inside field 't'"},
      {20, 0, 2, "field 'ok' is a bool that is neither 0 nor 1"},
      {18, 0, 0xff, "field 's' is not valid UTF-8"},
      {0, 0, 0, "another schema"},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    unsigned char b2[64];
    memcpy(b2, body, bl);
    size_t l2 = cases[c].cut ? cases[c].cut : bl;
    if (cases[c].at < bl) b2[cases[c].at] = cases[c].at == 0 ? (unsigned char)(b2[0] ^ 1) : cases[c].val;
    t = row_text(b2, l2, &tl);
    T_EQ_INT(tide_repart_decode(o2, sid2, t, tl, &tmp, &up, &ms, &err), TIDE_ECORRUPT);
    if (!strstr(err.msg, cases[c].why)) fprintf(stderr, "case %zu: %s\n", c, err.msg);
    T_CHECK(strstr(err.msg, cases[c].why) != NULL);
    free(t);
  }
  /* bytes after the last field; a timestamp out of range */
  body[4] = 0x00;
  for (int i = 0; i < 8; i++) body[bl + i] = 0x7f;
  t = row_text(body, bl + 8, &tl);
  T_EQ_INT(tide_repart_decode(o2, sid2, t, tl, &tmp, &up, &ms, &err), TIDE_ECORRUPT);
  T_CHECK(strstr(err.msg, "is a timestamp (outside the valid timestamp range") != NULL);
  free(t);
  memset(body + bl, 0, 8);
  body[bl + 8] = 9;
  t = row_text(body, bl + 9, &tl);
  T_EQ_INT(tide_repart_decode(o2, sid2, t, tl, &tmp, &up, &ms, &err), TIDE_ECORRUPT);
  T_CHECK(strstr(err.msg, "1 bytes after the last field") != NULL);
  free(t);
  T_EQ_INT(o2->nrows, 1);
  memcpy(copy, v, n);
  copy[1] = '9';
  T_EQ_INT(tide_repart_decode(out, sid, copy, n, &tmp, &up, &ms, &err), TIDE_EFORMAT);
  T_CHECK(strstr(err.msg, "format version '9'") != NULL);
  T_EQ_INT(tide_repart_decode(out, sid, "R1abc", 5, &tmp, &up, &ms, &err), TIDE_ECORRUPT);
  T_CHECK(strstr(err.msg, "not base64") != NULL);
  T_EQ_INT(tide_repart_decode(out, sid, "R1ab==", 6, &tmp, &up, &ms, &err), TIDE_ECORRUPT); /* padding bits */
  T_EQ_INT(tide_repart_decode(out, sid, "{\"a\":1}", 7, &tmp, &up, &ms, &err), TIDE_ECORRUPT);
  T_CHECK(strstr(err.msg, "not a repartition message") != NULL);
  T_EQ_INT(tide_repart_decode(out, sid, NULL, 0, &tmp, &up, &ms, &err), TIDE_ECORRUPT);
  T_CHECK(strstr(err.msg, "no value") != NULL);
  T_EQ_INT(tide_repart_decode(out, sid, "W1AAAA", 6, &tmp, &up, &ms, &err), TIDE_ECORRUPT);
  T_CHECK(strstr(err.msg, "a watermark marker of 3 bytes (expected 12)") != NULL);
  tide_buf_free(&tmp);
  tide_batch_free(o2);
  tide_schema_unref(s2);
  tide_batch_free(out);
  tide_batch_free(m);
  tide_batch_free(b);
}

/* Row blocks: every row in the partition the one-row messages give its key,
 * in row order, several blocks per partition when they pass max_bytes, and
 * a block that does not decode leaves none of its rows. */
static void test_blocks(void) {
  tide_schema_t *s = NULL, *ks = NULL;
  T_EQ_INT(tide_schema_parse_ddl("k int, s string", 15, &s, NULL), 0);
  T_EQ_INT(tide_schema_parse_ddl("k int", 5, &ks, NULL), 0);
  tide_batch_t *b = tide_batch_new(s, 16), *kb = tide_batch_new(ks, 16);
  for (int r = 0; r < 1000; r++) {
    char txt[32];
    int tn = snprintf(txt, sizeof txt, "row %d", r);
    T_EQ_INT(tide_batch_row_begin(b), 0);
    tide_batch_set_i64(b, 0, r % 37);
    T_EQ_INT(tide_batch_set_str(b, 1, txt, (size_t)tn), 0);
    tide_batch_row_commit(b);
    T_EQ_INT(tide_batch_row_begin(kb), 0);
    tide_batch_set_i64(kb, 0, r % 37);
    tide_batch_row_commit(kb);
  }
  tide_batch_t *rows = NULL, *m = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_repart_encode(b, kb, 3, &rows, &err), 0);
  T_EQ_INT(tide_repart_encode_blocks(b, kb, 3, 500, &m, &err), 0);
  T_CHECK(m->nrows > 3 && m->nrows < 100);
  uint32_t sid;
  tide_repart_schema_id(s, &sid);
  tide_buf_t tmp = TIDE_BUF_INIT;
  int32_t up;
  int64_t ms;
  int bad = 0, ascii = 0;
  for (int32_t p = 0; p < 3; p++) {
    tide_batch_t *out = tide_batch_new(s, 16);
    for (uint32_t i = 0; i < m->nrows; i++) {
      int64_t mp = tide_col_i64(&m->cols[0], i);
      if (!tide_col_is_null(&m->cols[1], i) || !tide_col_is_null(&m->cols[3], i)) bad++;
      if (mp != p) continue;
      size_t n;
      const char *v = tide_col_str(&m->cols[2], i, &n);
      if (n < 2 || v[0] != 'B' || v[1] != '1') bad++;
      for (size_t j = 0; j < n; j++) ascii += v[j] <= 0x20 || v[j] >= 0x7f;
      T_EQ_INT(tide_repart_decode(out, sid, v, n, &tmp, &up, &ms, &err), 0);
    }
    uint32_t o = 0;
    for (uint32_t r = 0; r < b->nrows; r++) {
      if (tide_col_i64(&rows->cols[0], r) != p) continue;
      size_t n1, n2;
      const char *a = tide_col_str(&b->cols[1], r, &n1), *c = o < out->nrows ? tide_col_str(&out->cols[1], o, &n2) : "";
      if (o >= out->nrows || tide_col_i64(&out->cols[0], o) != tide_col_i64(&b->cols[0], r) || n1 != n2 ||
          memcmp(a, c, n1) != 0)
        bad++;
      o++;
    }
    T_EQ_INT(out->nrows, o);
    tide_batch_free(out);
  }
  T_EQ_INT(bad, 0);
  T_EQ_INT(ascii, 0);
  /* every cut of a block fails and leaves nothing; so does another schema */
  tide_batch_t *out = tide_batch_new(s, 16);
  size_t n;
  const char *v = tide_col_str(&m->cols[2], 0, &n);
  for (size_t cut = 0; cut < n; cut++)
    if (tide_repart_decode(out, sid, v, cut, &tmp, &up, &ms, &err) != TIDE_ECORRUPT || out->nrows != 0) bad++;
  T_EQ_INT(bad, 0);
  T_EQ_INT(tide_repart_decode(out, sid ^ 1, v, n, &tmp, &up, &ms, &err), TIDE_ECORRUPT);
  T_CHECK(strstr(err.msg, "another schema") != NULL);
  T_EQ_INT(out->nrows, 0);
  /* no key columns: one partition, the one-row messages' */
  tide_batch_t *r0 = NULL, *m0 = NULL;
  T_EQ_INT(tide_repart_encode(b, NULL, 5, &r0, &err), 0);
  T_EQ_INT(tide_repart_encode_blocks(b, NULL, 5, 1 << 20, &m0, &err), 0);
  T_EQ_INT(m0->nrows, 1);
  T_EQ_INT(tide_col_i64(&m0->cols[0], 0), tide_col_i64(&r0->cols[0], 0));
  v = tide_col_str(&m0->cols[2], 0, &n);
  T_EQ_INT(tide_repart_decode(out, sid, v, n, &tmp, &up, &ms, &err), 0);
  T_EQ_INT(out->nrows, 1000);
  tide_batch_free(m0);
  T_EQ_INT(tide_repart_encode_blocks(b, NULL, 0, 100, &m0, &err), TIDE_EINVAL);
  T_CHECK(m0 == NULL);
  tide_buf_free(&tmp);
  tide_batch_free(out);
  tide_batch_free(r0);
  tide_batch_free(rows);
  tide_batch_free(m);
  tide_batch_free(b);
  tide_batch_free(kb);
  tide_schema_unref(s);
  tide_schema_unref(ks);
}

int main(void) {
  T_RUN(test_murmur2_is_kafkas);
  T_RUN(test_round_trip);
  T_RUN(test_keys_normalise_doubles);
  T_RUN(test_markers);
  T_RUN(test_bad_messages);
  T_RUN(test_blocks);
  T_DONE();
}
