/*
 * fuzz_session.c: session window state records (core/session.c, over the
 * aggregation records of core/agg.c), as a restart reads a key's sessions
 * back from the checkpoint. The input's first byte's low bit says whether
 * to set each record's trailing checksum right; then come records, each
 * after a 2-byte little-endian length, restored under state ids 1, 2, ...
 * Whatever restore accepts must then take a push (sessions merging with
 * the restored ones), give its results and changes, whose records restore
 * into a fresh state, and evict at a watermark.
 */
#include "buf.h"
#include "crc32c.h"
#include "fuzz.h"

static const char *const more[] = {
    "{\"k\":\"a\",\"t\":5,\"v\":1}", "{\"k\":\"a\",\"t\":12,\"v\":-3}", "{\"k\":null,\"t\":40,\"v\":2}",
    "{\"k\":\"b\",\"t\":null,\"v\":5}", "{\"k\":\"a\",\"t\":1000,\"v\":null}"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 16384) return 0;
  int fix = data[0] & 1;
  const uint8_t *p = data + 1, *end = data + size;
  tide_session_t *s = fuzz_session();
  tide_err_t err = {0, ""};
  uint64_t sid = 1;
  while (end - p >= 2) {
    size_t n = (size_t)p[0] | (size_t)p[1] << 8;
    p += 2;
    if (n > (size_t)(end - p)) n = (size_t)(end - p);
    uint8_t *rec = malloc(n ? n : 1);
    FUZZ_CHECK(rec, "out of memory");
    memcpy(rec, p, n);
    p += n;
    if (fix && n >= 4) {
      uint32_t crc = tide_crc32c(0, rec, n - 4);
      for (int i = 0; i < 4; i++) rec[n - 4 + i] = (uint8_t)(crc >> (8 * i));
    }
    if (tide_session_restore(s, sid++, rec, n, &err)) FUZZ_CHECK(err.msg[0], "a refused record says why");
    free(rec);
  }
  tide_batch_t *out = NULL;
  FUZZ_CHECK(tide_session_result(s, &out, &err) == 0, "result: %s", err.msg);
  tide_batch_free(out);
  tide_batch_t *b = fuzz_session_rows(more, sizeof more / sizeof *more);
  tide_session_feed_t f = {0};
  if (fuzz_session_push(s, b, &f, &err) == 0) {
    uint32_t n = 0;
    FUZZ_CHECK(tide_session_changes(s, &n, &err) == 0, "changes: %s", err.msg);
    tide_session_t *fresh = fuzz_session();
    tide_buf_t rec = {0};
    for (uint32_t i = 0; i < n; i++) {
      uint64_t id;
      rec.len = 0;
      FUZZ_CHECK(tide_session_change(s, i, &id, &rec, &err) == 0, "change %u: %s", i, err.msg);
      FUZZ_CHECK(tide_session_restore(fresh, id, rec.data, rec.len, &err) == 0, "a changed session's record "
                 "does not restore: %s", err.msg);
    }
    tide_buf_free(&rec);
    tide_session_free(fresh);
    tide_session_clear_changes(s);
    FUZZ_CHECK(tide_session_evict(s, 100, &out, &err) == 0, "evict: %s", err.msg);
    tide_batch_free(out);
  } else {
    FUZZ_CHECK(err.msg[0], "a failed push says why");
  }
  tide_batch_free(b);
  tide_session_free(s);
  return 0;
}
