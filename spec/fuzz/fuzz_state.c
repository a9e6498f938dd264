/*
 * fuzz_state.c: aggregation state records (core/agg.c, docs/FORMAT.md
 * "Aggregation state records"), as a restart reads them back from the
 * checkpoint. The input is one record for an aggregation with a key of
 * every type and every aggregate kind; its first byte's low bit says
 * whether to set the record's trailing checksum right first (else nearly
 * every mutation would stop at the checksum). A record restore accepts
 * must give a group whose result can be computed and whose record, encoded
 * again, restores to a group with the same result.
 */
#include "buf.h"
#include "crc32c.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 65536) return 0;
  size_t n = size - 1;
  uint8_t *rec = malloc(n ? n : 1);
  FUZZ_CHECK(rec, "out of memory");
  memcpy(rec, data + 1, n);
  if ((data[0] & 1) && n >= 4) {
    uint32_t crc = tide_crc32c(0, rec, n - 4);
    for (int i = 0; i < 4; i++) rec[n - 4 + i] = (uint8_t)(crc >> (8 * i));
  }
  tide_agg_t *a = fuzz_state_agg();
  tide_err_t err = {0, ""};
  if (tide_agg_restore(a, 1, rec, n, &err) == 0) {
    tide_batch_t *out = NULL;
    FUZZ_CHECK(tide_agg_result(a, &out, &err) == 0, "result: %s", err.msg);
    FUZZ_CHECK(out->nrows == 1, "one group, %u rows", out->nrows);
    tide_buf_t json = {0}, json2 = {0}, enc = {0};
    FUZZ_CHECK(tide_json_enc_row(out, 0, &json, 0) == 0, "encode the result");
    FUZZ_CHECK(tide_agg_encode(a, 0, &enc, &err) == 0, "encode: %s", err.msg);
    tide_agg_t *b = fuzz_state_agg();
    FUZZ_CHECK(tide_agg_restore(b, 1, enc.data, enc.len, &err) == 0, "an encoded record does not restore: %s",
               err.msg);
    /* the same group (not always the same bytes: count_distinct values
     * are written in hash-table order, which follows insertion order) */
    tide_batch_t *out2 = NULL;
    FUZZ_CHECK(tide_agg_result(b, &out2, &err) == 0 && tide_json_enc_row(out2, 0, &json2, 0) == 0, "result again");
    FUZZ_CHECK(json.len == json2.len && !memcmp(json.data, json2.data, json.len), "'%.*s' came back as '%.*s'",
               (int)json.len, json.data, (int)json2.len, json2.data);
    tide_agg_free(b);
    tide_batch_free(out);
    tide_batch_free(out2);
    tide_buf_free(&json);
    tide_buf_free(&json2);
    tide_buf_free(&enc);
  } else {
    FUZZ_CHECK(err.msg[0], "a refused record says why");
  }
  tide_agg_free(a);
  free(rec);
  return 0;
}
