/*
 * fuzz_ddl.c: DDL schemas (core/schema.c). What parses must print back to
 * DDL that parses to an equal schema, and survive the binary encoding the
 * registry stores (encode, decode, equal); decoding the input itself as a
 * stored schema must fail cleanly or give a schema that encodes again.
 */
#include "buf.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192) return 0;
  tide_schema_t *s = NULL, *t = NULL, *u = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl((const char *)data, size, &s, &err) == 0) {
    tide_buf_t ddl = {0}, bin = {0};
    FUZZ_CHECK(tide_schema_to_ddl(s, &ddl) == 0, "to_ddl");
    FUZZ_CHECK(tide_schema_parse_ddl(ddl.data, ddl.len, &t, &err) == 0, "'%.*s': %s", (int)ddl.len, ddl.data,
               err.msg);
    FUZZ_CHECK(tide_schema_equal(s, t), "'%.*s' parses to another schema", (int)ddl.len, ddl.data);
    FUZZ_CHECK(tide_schema_encode(s, &bin) == 0, "encode");
    FUZZ_CHECK(tide_schema_decode(bin.data, bin.len, &u, &err) == 0, "decode: %s", err.msg);
    FUZZ_CHECK(tide_schema_equal(s, u), "encode/decode changed the schema");
    tide_buf_free(&ddl);
    tide_buf_free(&bin);
    tide_schema_unref(s);
    tide_schema_unref(t);
    tide_schema_unref(u);
  } else {
    FUZZ_CHECK(s == NULL && err.msg[0], "a failed parse returns a message and nothing else");
  }
  /* the same bytes as a stored (binary) schema */
  s = NULL;
  if (tide_schema_decode(data, size, &s, &err) == 0) {
    tide_buf_t bin = {0};
    FUZZ_CHECK(tide_schema_encode(s, &bin) == 0, "encode a decoded schema");
    tide_buf_free(&bin);
    tide_schema_unref(s);
  }
  return 0;
}
