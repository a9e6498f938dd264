/*
 * fuzz_block.c: the segment block reader (core/seg.c), as a reader meets
 * a segment's bytes: the header check, then block by block peek, check
 * and decode into FUZZ_DDL batches, every value of which is read. The
 * first input byte's low bit says whether to set each block's checksum
 * right first (else nearly every mutation would stop at the checksum and
 * the structure behind it would never be reached); the rest is the
 * segment.
 */
#include "buf.h"
#include "crc32c.h"
#include "fuzz.h"
#include "seg.h"

static uint32_t le32(const char *p) {
  const unsigned char *u = (const unsigned char *)p;
  return (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
}

static void put_le32(char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (char)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > 65536) return 0;
  int fix = data[0] & 1;
  size_t len = size - 1;
  char *buf = malloc(len ? len : 1); /* the map owns it */
  FUZZ_CHECK(buf, "out of memory");
  memcpy(buf, data + 1, len);
  tide_map_t *m;
  FUZZ_CHECK(tide_map_buffer(buf, len, &m) == 0, "out of memory");
  (void)tide_seg_header_check(buf, len, 1, 0, 0);
  size_t pos = len >= TIDE_SEG_HEADER && !memcmp(buf, TIDE_SEG_MAGIC, 7) ? TIDE_SEG_HEADER : 0;
  tide_buf_t json = {0};
  while (pos < len) {
    tide_block_hdr_t h;
    tide_err_t err = {0, ""};
    const char *p = buf + pos;
    size_t avail = len - pos;
    if (tide_block_peek(p, avail, &h, &err)) break;
    FUZZ_CHECK(h.len >= TIDE_BLOCK_HEADER && h.len <= avail, "peek: length %u of %zu", h.len, avail);
    if (fix && h.len >= 12) put_le32(buf + pos + 8, tide_crc32c(0, p + 12, h.len - 12));
    if (tide_block_check(p, avail, &h, &err) == 0) {
      FUZZ_CHECK(le32(p + 4) == h.len, "check: length");
      tide_batch_t *b = NULL;
      if (tide_block_decode(p, &h, fuzz_schema(), m, &b, &err) == 0) {
        FUZZ_CHECK(b->nrows == h.count, "decode: %u rows of %u", b->nrows, h.count);
        for (uint32_t r = 0; r < b->nrows; r++) {
          json.len = 0;
          FUZZ_CHECK(tide_json_enc_row(b, r, &json, 0) == 0, "encode row %u", r);
        }
        tide_batch_free(b);
      } else {
        FUZZ_CHECK(b == NULL && err.msg[0], "a failed decode says why");
      }
    }
    pos += h.len;
  }
  tide_buf_free(&json);
  tide_map_unref(m);
  return 0;
}
