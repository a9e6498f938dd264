/*
 * seg.h: segment files and the block codec.
 *
 * A segment file is a fixed header followed by blocks, appended only:
 *
 *   +------------------+---------+---------+-----+---------+
 *   | header (64 B)    | block 0 | block 1 | ... | block n |   <- committed size (catalog)
 *   +------------------+---------+---------+-----+---------+
 *
 *   header:  0  8  magic "TIDESEG\0"
 *            8  4  format version (TIDE_SEG_VERSION)
 *           12  4  crc32c of bytes 16..63
 *           16  4  topic id
 *           20  4  partition
 *           24  8  base offset
 *           32 32  zero
 *
 * A block is one columnar batch, laid out so that a reader maps it and points
 * its column vectors straight into the mapping (every section starts on an
 * 8-byte boundary; all integers little-endian):
 *
 *    0  4  magic "TBLK"
 *    4  4  block length L in bytes (header included; a multiple of 8)
 *    8  4  crc32c of bytes 12..L
 *   12  2  block format version (TIDE_BLOCK_VERSION)
 *   14  2  flags (0)
 *   16  8  base offset (of row 0)
 *   24  4  record count n
 *   28  4  schema version the rows were written with
 *   32  8  min event time (INT64_MIN when none)
 *   40  8  max event time (INT64_MIN when none)
 *   48  4  column count c
 *   52  4  zero
 *   56     column directory, c entries of 32 bytes:
 *            0 1 type (tide_type_t)   1 1 flags (bit 0: has validity bitmap)
 *            2 2 zero                 4 4 null count
 *            8 4 validity offset     12 4 values offset
 *           16 4 data offset         20 4 data length
 *           24 8 zero
 *          (offsets are from the block's start)
 *   then the sections: validity bitmap ceil(n/8) bytes (LSB first, 1 = not
 *   NULL); values n*8 (int, timestamp, double) or n (bool) or (n+1)*4
 *   (string and json offsets, starting at 0); data bytes.
 *
 * The catalog, not the file, says how many bytes are committed: a block past
 * that size belongs to an append that never committed.
 */
#ifndef TIDE_SEG_H
#define TIDE_SEG_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "buf.h"
#include "err.h"

#define TIDE_SEG_MAGIC "TIDESEG"
#define TIDE_SEG_VERSION 1u
#define TIDE_SEG_HEADER 64u
#define TIDE_BLOCK_MAGIC 0x4B4C4254u /* "TBLK" little-endian */
#define TIDE_BLOCK_VERSION 1u
#define TIDE_BLOCK_HEADER 56u
#define TIDE_BLOCK_COLDIR 32u
#define TIDE_BLOCK_MAX_ROWS 65536u   /* appends are cut into blocks of at most this */

typedef struct tide_block_hdr {
  uint32_t len;
  uint64_t base_offset;
  uint32_t count;
  uint32_t schema_version;
  int64_t min_ts, max_ts;
  uint32_t ncols;
} tide_block_hdr_t;

/* A refcounted read-only view of bytes: an mmapped segment or a buffer
 * decompressed from the cold tier. Batches decoded from it hold a reference. */
typedef struct tide_map {
  uint32_t refs;
  int mmapped;
  char *addr;
  size_t len;
} tide_map_t;

/* Map the first len bytes of the file at path (len 0 gives an empty map).
 * -errno on failure. */
int tide_map_file(const char *path, size_t len, tide_map_t **out);
/* The same for the file open as fd (the caller keeps and closes fd; the
 * map does not need it afterwards). */
int tide_map_fd(int fd, size_t len, tide_map_t **out);
/* Wrap a malloc'd buffer; the map frees it. */
int tide_map_buffer(char *buf, size_t len, tide_map_t **out);
tide_map_t *tide_map_ref(tide_map_t *m);
void tide_map_unref(tide_map_t *m);

/* Fill the 64-byte segment header. */
void tide_seg_header(char out[TIDE_SEG_HEADER], uint32_t topic_id, uint32_t partition, uint64_t base);
/* Check a segment header. 0, TIDE_ECORRUPT or TIDE_EFORMAT. */
int tide_seg_header_check(const char *p, size_t len, uint32_t topic_id, uint32_t partition, uint64_t base);

/* Append to out the block holding rows [lo, hi) of b. min/max are the event
 * times to record (computed by the caller). */
int tide_block_encode(const tide_batch_t *b, uint32_t lo, uint32_t hi, uint64_t base_offset,
                      uint32_t schema_version, int64_t min_ts, int64_t max_ts, tide_buf_t *out);
/* Check the block at p (avail bytes readable): magic, length, crc, version,
 * directory bounds. Fills h. 0 or TIDE_ECORRUPT/TIDE_EFORMAT with the reason
 * in err. Does not look at the schema. */
int tide_block_check(const char *p, size_t avail, tide_block_hdr_t *h, tide_err_t *err);
/* Read the fixed header of the block at p without the checksum or the
 * directory: enough to step over a block a reader does not want (rows
 * before its start offset or outside its time range) without reading
 * its bytes. Fills h's len, base_offset, count, schema_version, min_ts,
 * max_ts. 0 or TIDE_ECORRUPT (truncated, bad magic, bad length). */
int tide_block_peek(const char *p, size_t avail, tide_block_hdr_t *h, tide_err_t *err);
/* Decode a checked block into a borrowed batch over schema s (its column
 * types must match the block's; TIDE_ECORRUPT if not). The batch holds a
 * reference to m. */
int tide_block_decode(const char *p, const tide_block_hdr_t *h, tide_schema_t *s, tide_map_t *m,
                      tide_batch_t **out, tide_err_t *err);

#endif
