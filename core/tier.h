/*
 * tier.h: the cold tier. An offloaded segment is the hot file's committed
 * bytes compressed as one zstd frame (with content size and checksum) in
 * <cold>/<topic id>/p<k>/<base offset:20>.seg.zst. Reads decompress the
 * whole segment into memory and decode blocks from there, exactly as from a
 * mapped hot file.
 */
#ifndef TIDE_TIER_H
#define TIDE_TIER_H

#include <stdint.h>

#include "err.h"
#include "seg.h"

#define TIDE_TIER_LEVEL 3 /* zstd level: fast, and ~3-5x on columnar blocks */

/* Compress the first len bytes of src into dst: written to dst + ".tmp",
 * synced when sync, then renamed, so dst is either absent or whole.
 * *stored = compressed size. -errno, TIDE_ECORRUPT (src shorter than len). */
int tide_tier_put(const char *src, uint64_t len, const char *dst, int sync, uint64_t *stored, tide_err_t *err);
/* Load and decompress dst; its content must be exactly len bytes.
 * -errno, TIDE_ECORRUPT (bad frame, checksum, size). */
int tide_tier_get(const char *dst, uint64_t len, tide_map_t **out, tide_err_t *err);
/* The same for the cold file open as fd, named dst in messages (the caller
 * keeps and closes fd). */
int tide_tier_get_fd(int fd, const char *dst, uint64_t len, tide_map_t **out, tide_err_t *err);

#endif
