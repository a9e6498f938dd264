/*
 * test_crc32c.c: CRC-32C check values, chaining, and agreement of the
 * hardware and table paths over every length and alignment, and over
 * random buffers and lengths up to 256 KiB chained in random pieces.
 */
#include <stdint.h>
#include <stdlib.h>

#include "crc32c.h"
#include "t.h"

static void test_check_value(void) {
  T_EQ_INT(tide_crc32c(0, "123456789", 9), 0xE3069283u);
  T_EQ_INT(tide_crc32c_sw(0, "123456789", 9), 0xE3069283u);
  T_EQ_INT(tide_crc32c(0, "", 0), 0);
  /* RFC 3720 B.4: 32 bytes of zeros, of 0xFF */
  unsigned char z[32] = {0}, f[32];
  memset(f, 0xFF, sizeof f);
  T_EQ_INT(tide_crc32c(0, z, 32), 0x8A9136AAu);
  T_EQ_INT(tide_crc32c(0, f, 32), 0x62A8AB43u);
  T_EQ_INT(tide_crc32c_sw(0, z, 32), 0x8A9136AAu);
}

static void test_chaining_and_paths(void) {
  unsigned char buf[1024 + 16];
  uint32_t x = 12345;
  for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)((x = x * 1103515245u + 12345u) >> 16);
  int bad_chain = 0, bad_sw = 0;
  for (size_t off = 0; off < 8; off++)
    for (size_t n = 0; n <= 1024; n += (n < 80 ? 1 : 37)) {
      uint32_t whole = tide_crc32c(0, buf + off, n);
      if (whole != tide_crc32c_sw(0, buf + off, n)) bad_sw++;
      for (size_t cut = 0; cut <= n; cut += 1 + n / 7)
        if (tide_crc32c(tide_crc32c(0, buf + off, cut), buf + off + cut, n - cut) != whole) bad_chain++;
    }
  T_EQ_INT(bad_chain, 0);
  T_EQ_INT(bad_sw, 0);
}

/* Random buffers of random lengths (up to 256 KiB) at random alignments,
 * in random pieces: the hardware path (when the CPU has SSE4.2) and the
 * table give the same CRC. */
static void test_random_buffers(void) {
  enum { MAX = 256 * 1024 };
  unsigned char *buf = malloc(MAX + 8);
  uint32_t x = 99991;
  int bad = 0;
  for (int round = 0; round < 300; round++) {
    size_t off = (x = x * 1103515245u + 12345u) >> 16 & 7;
    size_t n = round < 100 ? ((x = x * 1103515245u + 12345u) >> 8) % 4096
                           : ((x = x * 1103515245u + 12345u) >> 4) % MAX;
    for (size_t i = 0; i < n; i++) buf[off + i] = (unsigned char)((x = x * 1103515245u + 12345u) >> 16);
    uint32_t sw = tide_crc32c_sw(0, buf + off, n), hw = 0;
    size_t at = 0;
    while (at < n) { /* the hardware path, chained over random pieces */
      size_t k = ((x = x * 1103515245u + 12345u) >> 8) % (n - at + 1);
      if (k == 0) k = 1;
      hw = tide_crc32c(hw, buf + off + at, k);
      at += k;
    }
    bad += hw != sw || tide_crc32c(0, buf + off, n) != sw;
  }
  free(buf);
  T_EQ_INT(bad, 0);
}

int main(void) {
  T_RUN(test_check_value);
  T_RUN(test_chaining_and_paths);
  T_RUN(test_random_buffers);
  T_DONE();
}
