/*
 * test_csv.c: CSV fields into rows (every type, NULL and empty, quoting,
 * defaults, exact error texts) and rows into CSV (exact text, quoting rules,
 * NaN, the header), with the round trip encode -> decode giving the same
 * rows back.
 */
#include <math.h>
#include <stdint.h>

#include "csv.h"
#include "decode.h"
#include "json.h"
#include "jsonl.h"
#include "t.h"

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s\n", err.msg);
  return s;
}

static char out[1024];

/* Decode one record under ddl: the code, and in out the row as JSON or the error. */
static int dec(const char *ddl, const char *rec) {
  tide_schema_t *s = schema(ddl);
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_buf_t scratch = TIDE_BUF_INIT, o = TIDE_BUF_INIT;
  tide_err_t err = {0, ""};
  int rc = tide_csv_dec_fields(b, rec, strlen(rec), ',', &scratch, &err);
  if (rc) {
    snprintf(out, sizeof out, "%s", err.msg);
    T_EQ_INT(b->nrows, 0);
  } else {
    tide_json_enc_row(b, 0, &o, 0);
    snprintf(out, sizeof out, "%.*s", (int)o.len, o.data);
  }
  tide_buf_free(&o);
  tide_buf_free(&scratch);
  tide_batch_free(b);
  tide_schema_unref(s);
  return rc;
}

static void test_decode_fields(void) {
  const char *S = "i int?, d double?, b bool?, t timestamp?, s string?, j json?";
  T_EQ_INT(dec(S, "1,2.5,TRUE,2026-11-21T12:00:05.250Z,\"a,\"\"b\",\"{\"\"k\"\": [1, 2]}\""), 0);
  T_EQ_STR(out, "{\"i\":1,\"d\":2.5,\"b\":true,\"t\":1795262405250,\"s\":\"a,\\\"b\",\"j\":{\"k\":[1,2]}}");
  T_EQ_INT(dec(S, ",,,,\"\","), 0); /* empty unquoted is NULL, "" is an empty string */
  T_EQ_STR(out, "{\"i\":null,\"d\":null,\"b\":null,\"t\":null,\"s\":\"\",\"j\":null}");
  T_EQ_INT(dec("a int, b int DEFAULT 7", "1,"), 0);
  T_EQ_STR(out, "{\"a\":1,\"b\":7}");
  T_EQ_INT(dec("a int, b int", "1,"), TIDE_ESCHEMA);
  T_EQ_STR(out, "field 'b': empty value (not nullable)");
  T_EQ_INT(dec("a int, b int", "1,x"), TIDE_ESCHEMA);
  T_EQ_STR(out, "field 'b': expected int, got \"x\"");
  T_EQ_INT(dec("a double", "nan"), TIDE_ESCHEMA);
  T_EQ_INT(dec("a int, b int", "1,2,3"), TIDE_ESCHEMA);
  T_EQ_STR(out, "more than 2 fields");
  T_EQ_INT(dec("a int, b int", "1"), TIDE_ESCHEMA);
  T_EQ_STR(out, "1 field, the schema has 2");
  T_EQ_INT(dec("a string, b int", "\"x\"y,1"), TIDE_EPARSE);
  T_EQ_STR(out, "field 1: text after the closing quote");
  T_EQ_INT(dec("a string", "\"abc"), TIDE_EPARSE);
  T_EQ_STR(out, "field 1: unterminated quoted field");
}

/* A batch of ddl from JSON lines. */
static tide_batch_t *batch(tide_schema_t *s, const char *const *lines, int n) {
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_json_dec_t *d = tide_json_dec_new(s, 0);
  tide_err_t err = {0, ""};
  for (int i = 0; i < n; i++)
    if (tide_json_dec_line(d, b, lines[i], strlen(lines[i]), &err)) fprintf(stderr, "%s\n", err.msg);
  tide_json_dec_free(d);
  return b;
}

static void test_encode(void) {
  tide_schema_t *s = schema("ts timestamp, name string?, x double?, ok bool?, j json?, n int?");
  const char *lines[] = {
      "{\"ts\":1795262405250,\"name\":\"a,\\\"b\\\"\\nc\",\"x\":1.5,\"ok\":true,\"j\":{\"k\":[1,2]},\"n\":-3}",
      "{\"ts\":0,\"name\":\"\",\"x\":1e300,\"ok\":false,\"j\":\"s\",\"n\":9007199254740993}",
      "{\"ts\":-5,\"name\":\" lead\",\"x\":0.1}",
      "{\"ts\":1,\"name\":\"trail\\t\",\"x\":3}",
      "{\"ts\":2,\"name\":\"plain text\",\"j\":[]}",
  };
  tide_batch_t *b = batch(s, lines, 5);
  T_EQ_INT(b->nrows, 5);
  tide_buf_t o = TIDE_BUF_INIT;
  T_EQ_INT(tide_csv_enc_header(s, ',', &o), 0);
  T_EQ_INT(tide_csv_enc_rows(b, 0, b->nrows, ',', &o), 0);
  tide_buf_cstr(&o);
  T_EQ_STR(o.data, "ts,name,x,ok,j,n\n"
                   "1795262405250,\"a,\"\"b\"\"\nc\",1.5,true,\"{\"\"k\"\":[1,2]}\",-3\n"
                   "0,\"\",1e+300,false,\"\"\"s\"\"\",9007199254740993\n"
                   "-5,\" lead\",0.1,,,\n"
                   "1,\"trail\t\",3.0,,,\n"
                   "2,plain text,,,[],\n");

  /* the round trip: what was written reads back the same */
  tide_decode_opts_t opts = {TIDE_FMT_CSV, TIDE_BAD_FAIL, ',', 0, 1}; /* multi_line: a field holds an LF */
  tide_decoder_t *d = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_decoder_open(s, &opts, &d, &err), 0);
  tide_batch_t *back = tide_batch_new(s, 0);
  tide_decode_result_t r;
  size_t header = strlen("ts,name,x,ok,j,n\n");
  T_EQ_INT(tide_decode(d, back, o.data + header, o.len - header, 1, 2, &r, &err), 0);
  T_EQ_INT(back->nrows, 5);
  for (uint32_t i = 0; i < 5 && i < back->nrows; i++) {
    tide_buf_t x = TIDE_BUF_INIT, y = TIDE_BUF_INIT;
    tide_json_enc_row(b, i, &x, 0);
    tide_json_enc_row(back, i, &y, 0);
    T_CHECK(x.len == y.len && memcmp(x.data, y.data, x.len) == 0);
    tide_buf_free(&x);
    tide_buf_free(&y);
  }
  tide_decoder_close(d);
  tide_batch_free(back);

  /* a row range, another separator, NaN and infinities as NULL */
  o.len = 0;
  T_EQ_INT(tide_csv_enc_rows(b, 3, 5, ';', &o), 0);
  tide_buf_cstr(&o);
  T_EQ_STR(o.data, "1;\"trail\t\";3.0;;;\n2;plain text;;;[];\n");
  tide_batch_free(b);
  tide_schema_unref(s);

  s = schema("x double, `a;b` string");
  b = tide_batch_new(s, 0);
  double v[] = {NAN, INFINITY, -INFINITY, -0.5};
  for (int i = 0; i < 4; i++) {
    tide_batch_row_begin(b);
    tide_batch_set_f64(b, 0, v[i]);
    tide_batch_set_str(b, 1, "x;y", 3);
    tide_batch_row_commit(b);
  }
  o.len = 0;
  T_EQ_INT(tide_csv_enc_header(s, ';', &o), 0);
  T_EQ_INT(tide_csv_enc_rows(b, 0, b->nrows, ';', &o), 0);
  tide_buf_cstr(&o);
  T_EQ_STR(o.data, "x;\"a;b\"\n;\"x;y\"\n;\"x;y\"\n;\"x;y\"\n-0.5;\"x;y\"\n");
  tide_buf_free(&o);
  tide_batch_free(b);
  tide_schema_unref(s);
}

int main(void) {
  T_RUN(test_decode_fields);
  T_RUN(test_encode);
  T_DONE();
}
