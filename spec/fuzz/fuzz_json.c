/*
 * fuzz_json.c: the JSON-lines decoder (core/jsonl.c). Each line of the input
 * is decoded into FUZZ_DDL rows (strict and ignoring unknown fields) and
 * as a whole-line json column; every accepted row is encoded back and
 * must decode again to the same JSON. The JSON value scanner must give a
 * compact form that scans to itself.
 */
#include "buf.h"
#include "fuzz.h"

static void line(tide_json_dec_t *d, tide_batch_t *b, tide_batch_t *b2, const char *p, size_t n) {
  tide_err_t err = {0, ""};
  uint32_t before = b->nrows;
  int rc = tide_json_dec_line(d, b, p, n, &err);
  if (rc) {
    FUZZ_CHECK(b->nrows == before && err.msg[0], "a bad line adds no row and says why");
    return;
  }
  tide_buf_t out = {0}, again = {0};
  FUZZ_CHECK(tide_json_enc_row(b, b->nrows - 1, &out, 0) == 0, "encode");
  tide_json_dec_t *d2 = tide_json_dec_new(b->schema, 0);
  FUZZ_CHECK(d2, "out of memory");
  FUZZ_CHECK(tide_json_dec_line(d2, b2, out.data, out.len, &err) == 0, "'%.*s' does not decode: %s", (int)out.len,
             out.data, err.msg);
  FUZZ_CHECK(tide_json_enc_row(b2, b2->nrows - 1, &again, 0) == 0, "encode again");
  FUZZ_CHECK(out.len == again.len && !memcmp(out.data, again.data, out.len), "'%.*s' came back as '%.*s'",
             (int)out.len, out.data, (int)again.len, again.data);
  tide_json_dec_free(d2);
  tide_buf_free(&out);
  tide_buf_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 16384) return 0;
  const char *p = (const char *)data, *end = p + size;
  tide_schema_t *s = fuzz_schema(), *whole = NULL;
  tide_err_t err = {0, ""};
  FUZZ_CHECK(tide_schema_parse_ddl("value json", 10, &whole, &err) == 0, "%s", err.msg);
  tide_json_dec_t *ds[3] = {tide_json_dec_new(s, 0), tide_json_dec_new(s, TIDE_JSON_IGNORE_UNKNOWN),
                            tide_json_dec_new(whole, TIDE_JSON_WHOLE)};
  tide_batch_t *bs[3] = {tide_batch_new(s, 8), tide_batch_new(s, 8), tide_batch_new(whole, 8)};
  tide_batch_t *b2s[3] = {tide_batch_new(s, 8), tide_batch_new(s, 8), tide_batch_new(whole, 8)};
  for (int i = 0; i < 3; i++) FUZZ_CHECK(ds[i] && bs[i] && b2s[i], "out of memory");
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
    for (int i = 0; i < 3; i++) line(ds[i], bs[i], b2s[i], p, n);
    p += n + (nl ? 1 : 0);
  }
  for (int i = 0; i < 3; i++) {
    tide_json_dec_free(ds[i]);
    tide_batch_free(bs[i]);
    tide_batch_free(b2s[i]);
  }
  tide_schema_unref(whole);
  /* the value scanner: its compact form is a fixed point */
  size_t used = 0;
  tide_buf_t c1 = {0}, c2 = {0};
  if (tide_json_scan((const char *)data, size, &used, &c1, &err) == 0) {
    FUZZ_CHECK(used <= size, "scan used more than it had");
    size_t used2 = 0;
    FUZZ_CHECK(tide_json_scan(c1.data, c1.len, &used2, &c2, &err) == 0, "compact form does not scan: %s", err.msg);
    FUZZ_CHECK(used2 == c1.len && c1.len == c2.len && !memcmp(c1.data, c2.data, c1.len), "compact is not stable");
  }
  tide_buf_free(&c1);
  tide_buf_free(&c2);
  return 0;
}
