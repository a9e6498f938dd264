/*
 * crc32c.h: CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected), the
 * checksum of segment blocks and catalog records.
 *
 * The pre- and post-inversion are done inside, so the function chains:
 *     tide_crc32c(tide_crc32c(0, a, na), b, nb) == tide_crc32c(0, a+b, na+nb)
 * and tide_crc32c(0, "123456789", 9) == 0xE3069283 (the standard check value).
 *
 * On x86-64 CPUs with SSE4.2 the hardware crc32 instruction is used (checked
 * once at run time); elsewhere a slice-by-8 table. Both give the same result.
 */
#ifndef TIDE_CRC32C_H
#define TIDE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc (0 to start) over p[0..n). */
uint32_t tide_crc32c(uint32_t crc, const void *p, size_t n);

/* The portable path, always the table version (for tests and benchmarks). */
uint32_t tide_crc32c_sw(uint32_t crc, const void *p, size_t n);

#endif
