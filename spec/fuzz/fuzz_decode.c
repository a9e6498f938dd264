/*
 * fuzz_decode.c: text records into batches (core/decode.c, core/csv.c,
 * core/jsonl.c), the path of the file source, tide.read and the socket
 * source: framing, decoding and the bad-record policies. The first input
 * byte picks: bit 0 the CSV separator (',' or ';'), bit 1 dropping or
 * setting aside (dead letters) bad records, bit 2 JSON lines instead of
 * CSV, bit 3 CSV's multi_line; the rest is the text, fed as a stream is (not final, then final).
 * Every call must consume only whole records, all of the text once it is
 * final, and say why of every record it sets aside; under the fail policy
 * a bad record stops decoding with a reason.
 */
#include "buf.h"
#include "decode.h"
#include "fuzz.h"

static void run(const uint8_t *data, size_t size, tide_bad_policy_t bad) {
  const char *text = (const char *)data + 1;
  size_t n = size - 1, off = 0;
  tide_decode_opts_t o = {(data[0] & 4) ? TIDE_FMT_JSON : TIDE_FMT_CSV, bad, (data[0] & 1) ? ';' : ',', 0,
                          (data[0] & 8) != 0};
  tide_decoder_t *d = NULL;
  tide_err_t err = {0, ""};
  FUZZ_CHECK(tide_decoder_open(fuzz_schema(), &o, &d, &err) == 0, "%s", err.msg);
  tide_batch_t *b = tide_batch_new(fuzz_schema(), 8);
  FUZZ_CHECK(b, "out of memory");
  int64_t line = 1;
  for (int final = 0; final <= 1; final++) {
    while (off < n) {
      tide_decode_result_t r;
      memset(&r, 0, sizeof r);
      uint32_t before = b->nrows;
      int rc = tide_decode(d, b, text + off, n - off, final, line, &r, &err);
      FUZZ_CHECK(rc != -ENOMEM, "out of memory");
      FUZZ_CHECK(r.used <= n - off, "used %zu of %zu", r.used, n - off);
      FUZZ_CHECK(b->nrows >= before, "rows went away");
      for (size_t i = 0; i < r.ndead; i++)
        FUZZ_CHECK(r.dead[i].reason && r.dead[i].reason[0] && r.dead[i].line >= line, "a dead letter says why");
      if (rc) {
        FUZZ_CHECK(bad == TIDE_BAD_FAIL && err.msg[0], "rc %d under policy %d: %s", rc, (int)bad, err.msg);
        off = n; /* stopped at the bad record */
        break;
      }
      off += r.used;
      line += r.lines;
      tide_batch_clear(b);
      if (r.used == 0) break; /* wants more text (not final) */
    }
  }
  FUZZ_CHECK(off == n, "final text left over: %zu of %zu", n - off, n);
  tide_batch_free(b);
  tide_decoder_close(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 16384) return 0;
  run(data, size, (data[0] & 2) ? TIDE_BAD_DEAD_LETTER : TIDE_BAD_DROP);
  run(data, size, TIDE_BAD_FAIL);
  return 0;
}
