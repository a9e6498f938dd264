/*
 * fuzz_csv.c: the CSV record decoder (core/csv.c). The input is decoded
 * record by record into FUZZ_DDL rows, with ',' and with ';' (its first
 * byte picks the separator), skipping bad records as the bad_records
 * policies do: every call must consume input or end it, and a bad record
 * adds no row.
 */
#include "buf.h"
#include "csv.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 16384) return 0;
  char sep = (data[0] & 1) ? ';' : ',';
  const char *p = (const char *)data + 1;
  size_t left = size - 1;
  tide_batch_t *b = tide_batch_new(fuzz_schema(), 8);
  tide_buf_t scratch = {0};
  FUZZ_CHECK(b, "out of memory");
  for (int final = 0; final <= 1; final++) {
    const char *q = p;
    size_t n = left;
    while (n > 0) {
      size_t used = 0, lines = 0;
      uint32_t before = b->nrows;
      tide_err_t err = {0, ""};
      int rc = tide_csv_dec_record(b, q, n, final, sep, &used, &lines, &scratch, &err);
      if (rc == TIDE_CSV_MORE) {
        FUZZ_CHECK(!final, "final input asks for more");
        break;
      }
      FUZZ_CHECK(rc != -ENOMEM, "out of memory");
      FUZZ_CHECK(used > 0 && used <= n, "used %zu of %zu (rc %d)", used, n, rc);
      if (rc == TIDE_CSV_ROW) FUZZ_CHECK(b->nrows == before + 1, "a row is one row");
      else FUZZ_CHECK(b->nrows == before, "no row for rc %d", rc);
      if (rc < 0) FUZZ_CHECK(err.msg[0], "a bad record says why");
      q += used;
      n -= used;
    }
    tide_batch_clear(b);
  }
  tide_buf_free(&scratch);
  tide_batch_free(b);
  return 0;
}
