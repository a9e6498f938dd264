/*
 * fuzz_state.c: aggregation state records (core/agg.c, docs/FORMAT.md
 * "Aggregation state records"), as a restart reads them back from the
 * checkpoint. The input is one record for an aggregation with a key of
 * every type and every aggregate kind; its first byte's low bit says
 * whether to set the record's trailing checksum right first (else nearly
 * every mutation would stop at the checksum). A record restore accepts
 * must give a group whose result can be computed and whose record, encoded
 * again, restores to the same record.
 */
#include "agg.h"
#include "buf.h"
#include "crc32c.h"
#include "fuzz.h"

#define KEYS "k string?, i int?, t timestamp?, d double?, o bool?, j json?"

static const tide_agg_spec_t specs[] = {
    {TIDE_AGG_COUNT_STAR, TIDE_T_INT, "n"},         {TIDE_AGG_COUNT, TIDE_T_STRING, "c"},
    {TIDE_AGG_SUM, TIDE_T_INT, "si"},               {TIDE_AGG_SUM, TIDE_T_DOUBLE, "sd"},
    {TIDE_AGG_MIN, TIDE_T_STRING, "mins"},          {TIDE_AGG_MAX, TIDE_T_DOUBLE, "maxd"},
    {TIDE_AGG_AVG, TIDE_T_INT, "a"},                {TIDE_AGG_FIRST, TIDE_T_STRING, "f"},
    {TIDE_AGG_LAST, TIDE_T_TIMESTAMP, "l"},         {TIDE_AGG_COUNT_DISTINCT, TIDE_T_STRING, "cd"},
    {TIDE_AGG_COUNT_DISTINCT, TIDE_T_INT, "cdi"},   {TIDE_AGG_MIN, TIDE_T_BOOL, "minb"},
};

static tide_agg_t *new_agg(void) {
  static tide_schema_t *ks;
  tide_err_t err = {0, ""};
  if (!ks) FUZZ_CHECK(tide_schema_parse_ddl(KEYS, strlen(KEYS), &ks, &err) == 0, "%s", err.msg);
  tide_agg_t *a = NULL;
  FUZZ_CHECK(tide_agg_new(ks, specs, sizeof specs / sizeof *specs, &a, &err) == 0, "%s", err.msg);
  return a;
}

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
  tide_agg_t *a = new_agg();
  tide_err_t err = {0, ""};
  if (tide_agg_restore(a, 1, rec, n, &err) == 0) {
    tide_batch_t *out = NULL;
    FUZZ_CHECK(tide_agg_result(a, &out, &err) == 0, "result: %s", err.msg);
    FUZZ_CHECK(out->nrows == 1, "one group, %u rows", out->nrows);
    tide_buf_t json = {0}, enc = {0}, enc2 = {0};
    FUZZ_CHECK(tide_json_enc_row(out, 0, &json, 0) == 0, "encode the result");
    FUZZ_CHECK(tide_agg_encode(a, 0, &enc, &err) == 0, "encode: %s", err.msg);
    tide_agg_t *b = new_agg();
    FUZZ_CHECK(tide_agg_restore(b, 1, enc.data, enc.len, &err) == 0, "an encoded record does not restore: %s",
               err.msg);
    FUZZ_CHECK(tide_agg_encode(b, 0, &enc2, &err) == 0, "encode again: %s", err.msg);
    FUZZ_CHECK(enc.len == enc2.len && !memcmp(enc.data, enc2.data, enc.len), "the record changed on its way back");
    tide_agg_free(b);
    tide_batch_free(out);
    tide_buf_free(&json);
    tide_buf_free(&enc);
    tide_buf_free(&enc2);
  } else {
    FUZZ_CHECK(err.msg[0], "a refused record says why");
  }
  tide_agg_free(a);
  free(rec);
  return 0;
}
