/*
 * seg.c: segment files and the block codec (layouts in seg.h and
 * docs/FORMAT.md).
 *
 * Encoding copies each column's vectors into 8-aligned sections; decoding is
 * zero-copy: the batch's vectors point into the mapping, which the batch
 * keeps alive with a reference. All multi-byte integers are little-endian;
 * the code assumes a little-endian host (checked at compile time).
 */
#include "seg.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tide's on-disk format is little-endian; this host is not"
#endif

/* ---------------------------------------------------------------- maps --- */

int tide_map_fd(int fd, size_t len, tide_map_t **out) {
  tide_map_t *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->refs = 1;
  if (len > 0) {
    struct stat st;
    if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < len) {
      /* The catalog says more bytes are committed than the file holds: the
       * file was cut behind our back. Report it as corruption. */
      free(m);
      return TIDE_ECORRUPT;
    }
    void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      free(m);
      return -e;
    }
    m->addr = p;
    m->mmapped = 1;
  }
  m->len = len;
  *out = m;
  return 0;
}

int tide_map_file(const char *path, size_t len, tide_map_t **out) {
  if (len == 0) return tide_map_fd(-1, 0, out);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = tide_map_fd(fd, len, out);
  close(fd);
  return rc;
}

int tide_map_buffer(char *buf, size_t len, tide_map_t **out) {
  tide_map_t *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->refs = 1;
  m->addr = buf;
  m->len = len;
  *out = m;
  return 0;
}

tide_map_t *tide_map_ref(tide_map_t *m) {
  m->refs++;
  return m;
}

void tide_map_unref(tide_map_t *m) {
  if (!m || --m->refs > 0) return;
  if (m->mmapped)
    munmap(m->addr, m->len);
  else
    free(m->addr);
  free(m);
}

static void map_release(void *p) { tide_map_unref(p); }

/* ----------------------------------------------------- little helpers --- */

static inline void put_u16(char *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void put_u32(char *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void put_u64(char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint16_t get_u16(const char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t get_u32(const char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t get_u64(const char *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline size_t pad8(size_t n) { return (n + 7) & ~(size_t)7; }

/* ------------------------------------------------------ segment header --- */

void tide_seg_header(char out[TIDE_SEG_HEADER], uint32_t topic_id, uint32_t partition, uint64_t base) {
  memset(out, 0, TIDE_SEG_HEADER);
  memcpy(out, TIDE_SEG_MAGIC, 8); /* 7 chars + NUL */
  put_u32(out + 8, TIDE_SEG_VERSION);
  put_u32(out + 16, topic_id);
  put_u32(out + 20, partition);
  put_u64(out + 24, base);
  put_u32(out + 12, tide_crc32c(0, out + 16, TIDE_SEG_HEADER - 16));
}

int tide_seg_header_check(const char *p, size_t len, uint32_t topic_id, uint32_t partition, uint64_t base) {
  if (len < TIDE_SEG_HEADER || memcmp(p, TIDE_SEG_MAGIC, 8)) return TIDE_ECORRUPT;
  if (get_u32(p + 8) != TIDE_SEG_VERSION) return TIDE_EFORMAT;
  if (get_u32(p + 12) != tide_crc32c(0, p + 16, TIDE_SEG_HEADER - 16)) return TIDE_ECORRUPT;
  if (get_u32(p + 16) != topic_id || get_u32(p + 20) != partition || get_u64(p + 24) != base)
    return TIDE_ECORRUPT;
  return 0;
}

/* -------------------------------------------------------- block encode --- */

static int is_fixed8(tide_type_t t) { return t == TIDE_T_INT || t == TIDE_T_TIMESTAMP || t == TIDE_T_DOUBLE; }
static int is_var(tide_type_t t) { return t == TIDE_T_STRING || t == TIDE_T_JSON; }

/* Count NULLs of column c in rows [lo, hi). */
static uint32_t nulls_in(const tide_col_t *c, uint32_t lo, uint32_t hi) {
  if (!c->valid || c->null_count == 0) return 0;
  uint32_t n = 0;
  for (uint32_t i = lo; i < hi; i++) n += tide_col_is_null(c, i);
  return n;
}

/* tide_block_encode: append the block of rows [lo, hi) of b to out.
 * The block is built in place in out (reserve once, then fill sections), so
 * encoding a full batch costs one pass of memcpy per column. Returns 0,
 * -ENOMEM or TIDE_ETOOBIG (over 4 GiB). */
int tide_block_encode(const tide_batch_t *b, uint32_t lo, uint32_t hi, uint64_t base_offset,
                      uint32_t schema_version, int64_t min_ts, int64_t max_ts, tide_buf_t *out) {
  uint32_t n = hi - lo, ncols = b->schema->nfields;
  /* Pass 1: sizes. */
  size_t size = TIDE_BLOCK_HEADER + (size_t)ncols * TIDE_BLOCK_COLDIR;
  for (uint32_t c = 0; c < ncols; c++) {
    const tide_col_t *col = &b->cols[c];
    if (nulls_in(col, lo, hi)) size += pad8((n + 7) / 8);
    if (is_fixed8(col->type)) size += (size_t)n * 8;
    else if (col->type == TIDE_T_BOOL) size += pad8(n);
    else {
      const uint32_t *o = col->values;
      size += pad8(((size_t)n + 1) * 4) + pad8(n ? o[hi] - o[lo] : 0);
    }
  }
  if (size > UINT32_MAX - 8) return TIDE_ETOOBIG;
  int rc = tide_buf_reserve(out, size);
  if (rc) return rc;
  char *blk = out->data + out->len;
  memset(blk, 0, size);
  put_u32(blk, TIDE_BLOCK_MAGIC);
  put_u32(blk + 4, (uint32_t)size);
  put_u16(blk + 12, TIDE_BLOCK_VERSION);
  put_u64(blk + 16, base_offset);
  put_u32(blk + 24, n);
  put_u32(blk + 28, schema_version);
  put_u64(blk + 32, (uint64_t)min_ts);
  put_u64(blk + 40, (uint64_t)max_ts);
  put_u32(blk + 48, ncols);
  /* Pass 2: sections. */
  size_t pos = TIDE_BLOCK_HEADER + (size_t)ncols * TIDE_BLOCK_COLDIR;
  for (uint32_t c = 0; c < ncols; c++) {
    const tide_col_t *col = &b->cols[c];
    char *dir = blk + TIDE_BLOCK_HEADER + (size_t)c * TIDE_BLOCK_COLDIR;
    uint32_t nulls = nulls_in(col, lo, hi);
    dir[0] = (char)col->type;
    put_u32(dir + 4, nulls);
    if (nulls) {
      dir[1] = 1;
      put_u32(dir + 8, (uint32_t)pos);
      uint8_t *v = (uint8_t *)blk + pos;
      if ((lo & 7) == 0) {
        memcpy(v, col->valid + lo / 8, (n + 7) / 8);
        if (n & 7) v[n / 8] &= (uint8_t)((1u << (n & 7)) - 1); /* clear bits past n */
      } else {
        for (uint32_t i = 0; i < n; i++)
          if (!tide_col_is_null(col, lo + i)) v[i >> 3] |= (uint8_t)(1u << (i & 7));
      }
      pos += pad8((n + 7) / 8);
    }
    put_u32(dir + 12, (uint32_t)pos);
    if (is_fixed8(col->type)) {
      memcpy(blk + pos, (const char *)col->values + (size_t)lo * 8, (size_t)n * 8);
      pos += (size_t)n * 8;
    } else if (col->type == TIDE_T_BOOL) {
      memcpy(blk + pos, (const uint8_t *)col->values + lo, n);
      pos += pad8(n);
    } else {
      const uint32_t *o = col->values;
      uint32_t first = o[lo], dlen = o[hi] - o[lo];
      uint32_t *dst = (uint32_t *)(void *)(blk + pos);
      if (first == 0) memcpy(dst, o + lo, ((size_t)n + 1) * 4);
      else for (uint32_t i = 0; i <= n; i++) dst[i] = o[lo + i] - first;
      pos += pad8(((size_t)n + 1) * 4);
      put_u32(dir + 16, (uint32_t)pos);
      put_u32(dir + 20, dlen);
      if (dlen) memcpy(blk + pos, col->data + first, dlen); /* data is NULL when every value is NULL or empty */
      pos += pad8(dlen);
    }
  }
  put_u32(blk + 8, tide_crc32c(0, blk + 12, size - 12));
  out->len += size;
  return 0;
}

/* -------------------------------------------------- block check/decode --- */

int tide_block_peek(const char *p, size_t avail, tide_block_hdr_t *h, tide_err_t *err) {
  if (avail < TIDE_BLOCK_HEADER)
    return tide_err_set(err, TIDE_ECORRUPT, "truncated block header (%zu bytes)", avail);
  if (get_u32(p) != TIDE_BLOCK_MAGIC) return tide_err_set(err, TIDE_ECORRUPT, "bad block magic");
  uint32_t len = get_u32(p + 4);
  if (len < TIDE_BLOCK_HEADER || len > avail || (len & 7))
    return tide_err_set(err, TIDE_ECORRUPT, "bad block length %u (%zu bytes left)", len, avail);
  h->len = len;
  h->base_offset = get_u64(p + 16);
  h->count = get_u32(p + 24);
  h->schema_version = get_u32(p + 28);
  h->min_ts = (int64_t)get_u64(p + 32);
  h->max_ts = (int64_t)get_u64(p + 40);
  h->ncols = 0;
  return 0;
}

/* tide_block_check: validate everything a decoder will trust, so that a
 * flipped bit anywhere is caught here (by the CRC) and a block that passes
 * the CRC but was written by a buggy or hostile writer still cannot make the
 * decoder read out of bounds. */
int tide_block_check(const char *p, size_t avail, tide_block_hdr_t *h, tide_err_t *err) {
  int rc = tide_block_peek(p, avail, h, err);
  if (rc) return rc;
  uint32_t len = h->len;
  if (get_u32(p + 8) != tide_crc32c(0, p + 12, len - 12))
    return tide_err_set(err, TIDE_ECORRUPT, "block checksum mismatch");
  if (get_u16(p + 12) != TIDE_BLOCK_VERSION)
    return tide_err_set(err, TIDE_EFORMAT, "block format version %u (this build reads %u)",
                        get_u16(p + 12), TIDE_BLOCK_VERSION);
  h->ncols = get_u32(p + 48);
  size_t n = h->count;
  if (h->ncols > TIDE_FIELDS_MAX || TIDE_BLOCK_HEADER + (size_t)h->ncols * TIDE_BLOCK_COLDIR > len)
    return tide_err_set(err, TIDE_ECORRUPT, "bad column count %u", h->ncols);
  for (uint32_t c = 0; c < h->ncols; c++) {
    const char *dir = p + TIDE_BLOCK_HEADER + (size_t)c * TIDE_BLOCK_COLDIR;
    tide_type_t t = (tide_type_t)(uint8_t)dir[0];
    size_t voff = get_u32(dir + 12), vlen;
    if (t < TIDE_T_BOOL || t > TIDE_T_JSON)
      return tide_err_set(err, TIDE_ECORRUPT, "column %u: bad type %d", c, (int)t);
    if (dir[1] & 1) {
      size_t boff = get_u32(dir + 8);
      if ((boff & 7) || boff + (n + 7) / 8 > len)
        return tide_err_set(err, TIDE_ECORRUPT, "column %u: bad bitmap offset", c);
    }
    vlen = is_fixed8(t) ? n * 8 : t == TIDE_T_BOOL ? n : (n + 1) * 4;
    if ((voff & 7) || voff + vlen > len)
      return tide_err_set(err, TIDE_ECORRUPT, "column %u: bad values offset", c);
    if (is_var(t)) {
      size_t doff = get_u32(dir + 16), dlen = get_u32(dir + 20);
      if (doff + dlen > len) return tide_err_set(err, TIDE_ECORRUPT, "column %u: bad data offset", c);
      const uint32_t *o = (const uint32_t *)(const void *)(p + voff);
      if (o[0] != 0 || o[n] != dlen)
        return tide_err_set(err, TIDE_ECORRUPT, "column %u: bad string offsets", c);
      for (size_t i = 0; i < n; i++)
        if (o[i + 1] < o[i]) return tide_err_set(err, TIDE_ECORRUPT, "column %u: bad string offsets", c);
    }
  }
  return 0;
}

int tide_block_decode(const char *p, const tide_block_hdr_t *h, tide_schema_t *s, tide_map_t *m,
                      tide_batch_t **out, tide_err_t *err) {
  if (h->ncols != s->nfields)
    return tide_err_set(err, TIDE_ECORRUPT, "block has %u columns, its schema %u", h->ncols, s->nfields);
  tide_col_t stackcols[16], *cols = stackcols;
  if (h->ncols > 16 && !(cols = calloc(h->ncols, sizeof *cols))) return -ENOMEM;
  memset(cols, 0, sizeof(tide_col_t) * (h->ncols < 16 ? 16 : h->ncols));
  int rc = 0;
  for (uint32_t c = 0; c < h->ncols; c++) {
    const char *dir = p + TIDE_BLOCK_HEADER + (size_t)c * TIDE_BLOCK_COLDIR;
    tide_col_t *col = &cols[c];
    col->type = (tide_type_t)(uint8_t)dir[0];
    if (col->type != s->fields[c].type) {
      rc = tide_err_set(err, TIDE_ECORRUPT, "column %u is %s in the block, %s in its schema", c,
                        tide_type_name(col->type), tide_type_name(s->fields[c].type));
      goto done;
    }
    col->null_count = get_u32(dir + 4);
    if (dir[1] & 1) col->valid = (uint8_t *)(p + get_u32(dir + 8));
    col->values = (void *)(p + get_u32(dir + 12));
    if (is_var(col->type)) {
      col->data = (char *)(p + get_u32(dir + 16));
      col->data_len = col->data_cap = get_u32(dir + 20);
    }
  }
  *out = tide_batch_borrowed(s, h->count, cols, tide_map_ref(m), map_release);
  if (!*out) {
    tide_map_unref(m);
    rc = -ENOMEM;
  }
done:
  if (cols != stackcols) free(cols);
  return rc;
}
