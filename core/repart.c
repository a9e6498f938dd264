/*
 * repart.c: the repartition codec (repart.h has the formats).
 *
 * Encoding walks a batch row by row straight from its columns into one
 * buffer per message; decoding checks every length against the message
 * before it reads, so a truncated or corrupt message fails with what was
 * wrong and never reads past its end.
 */
#include "repart.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "crc32c.h"
#include "decode.h"
#include "hash.h"
#include "json.h"

/* ------------------------------------------------------------ murmur2 --- */

uint32_t tide_repart_murmur2(const void *p, size_t n) {
  const unsigned char *d = p;
  const uint32_t m = 0x5bd1e995u;
  uint32_t h = 0x9747b28cu ^ (uint32_t)n;
  size_t n4 = n / 4;
  for (size_t i = 0; i < n4; i++) {
    const unsigned char *q = d + 4 * i;
    uint32_t k = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
    k *= m;
    k ^= k >> 24;
    k *= m;
    h *= m;
    h ^= k;
  }
  const unsigned char *t = d + 4 * n4;
  switch (n & 3) {
  case 3: h ^= (uint32_t)t[2] << 16; /* fall through */
  case 2: h ^= (uint32_t)t[1] << 8;  /* fall through */
  case 1:
    h ^= t[0];
    h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return h;
}

int32_t tide_repart_partition(const void *key, size_t n, int32_t partitions) {
  return (int32_t)((tide_repart_murmur2(key, n) & 0x7fffffffu) % (uint32_t)partitions);
}

/* ------------------------------------------------------------ helpers --- */

static void put_u32(unsigned char *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_u32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* The value of each byte as a base64 digit, or -1. */
static const signed char B64[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1, -1, 63,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, -1,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

/* The value of a base64 digit, or -1. */
static int b64(unsigned char c) { return B64[c]; }

/* Decode the base64 text p[0..n) (RFC 4648, padding required, nothing
 * else) into out (emptied first): 0, -1 when it is not base64, -ENOMEM. */
static int unbase64(const char *p, size_t n, tide_buf_t *out) {
  out->len = 0;
  if (n % 4) return -1;
  int rc = tide_buf_reserve(out, n / 4 * 3);
  if (rc) return rc;
  unsigned char *o = (unsigned char *)out->data;
  const unsigned char *q = (const unsigned char *)p;
  size_t i = 0;
  for (; i + 4 < n; i += 4) { /* the groups before the last: no padding */
    int a = B64[q[i]], b = B64[q[i + 1]], c = B64[q[i + 2]], d = B64[q[i + 3]];
    if ((a | b | c | d) < 0) return -1;
    uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
    o[0] = (unsigned char)(v >> 16);
    o[1] = (unsigned char)(v >> 8);
    o[2] = (unsigned char)v;
    o += 3;
  }
  for (; i < n; i += 4) {
    int pad = (i + 4 == n) ? (q[i + 3] == '=') + (q[i + 2] == '=') : 0;
    if (pad == 1 && q[i + 2] == '=') return -1; /* "x=y=" */
    int a = b64(q[i]), b = b64(q[i + 1]), c = pad >= 2 ? 0 : b64(q[i + 2]), d = pad >= 1 ? 0 : b64(q[i + 3]);
    if (a < 0 || b < 0 || c < 0 || d < 0) return -1;
    uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
    /* the bits a padded end leaves out must be 0: one text per byte string */
    if ((pad == 2 && (v & 0xffff)) || (pad == 1 && (v & 0xff))) return -1;
    *o++ = (unsigned char)(v >> 16);
    if (pad < 2) *o++ = (unsigned char)(v >> 8);
    if (pad < 1) *o++ = (unsigned char)v;
  }
  out->len = (size_t)(o - (unsigned char *)out->data);
  return 0;
}

/* Append the header of a message (letter, version) and the base64 of
 * body to out. */
static int frame(tide_buf_t *out, char letter, const tide_buf_t *body) {
  char hdr[2] = {letter, TIDE_REPART_VERSION};
  int rc = tide_buf_append(out, hdr, 2);
  return rc ? rc : tide_base64_enc(body->data, body->len, out);
}

int tide_repart_schema_id(const tide_schema_t *s, uint32_t *id) {
  tide_buf_t ddl = TIDE_BUF_INIT;
  int rc = tide_schema_to_ddl(s, &ddl);
  if (rc == 0) *id = tide_crc32c(0, ddl.data, ddl.len);
  tide_buf_free(&ddl);
  return rc;
}

tide_schema_t *tide_repart_messages_schema(void) {
  static const char ddl[] = "partition int, key string?, value string?, headers json?";
  tide_schema_t *s = NULL;
  if (tide_schema_parse_ddl(ddl, sizeof ddl - 1, &s, NULL)) return NULL;
  return s;
}

/* Append row r of b to out: the null bitmap, then the non-NULL values.
 * norm: doubles normalised (a key's bytes must be equal when the grouping
 * says the values are). */
static int put_row(tide_buf_t *out, const tide_batch_t *b, uint32_t r, int norm) {
  uint32_t nf = b->schema->nfields, nb = (nf + 7) / 8;
  int rc = tide_buf_reserve(out, nb);
  if (rc) return rc;
  unsigned char *bits = (unsigned char *)out->data + out->len;
  memset(bits, 0, nb);
  for (uint32_t i = 0; i < nf; i++)
    if (tide_col_is_null(&b->cols[i], r)) bits[i / 8] |= (unsigned char)(1u << (i % 8));
  out->len += nb;
  for (uint32_t i = 0; i < nf; i++) {
    const tide_col_t *c = &b->cols[i];
    if (tide_col_is_null(c, r)) continue;
    unsigned char v[8];
    switch (c->type) {
    case TIDE_T_BOOL:
      rc = tide_buf_putc(out, (char)(tide_col_bool(c, r) ? 1 : 0));
      break;
    case TIDE_T_DOUBLE: {
      uint64_t u;
      double d = tide_col_f64(c, r);
      if (norm) u = tide__norm_f64(d);
      else memcpy(&u, &d, 8);
      put_u64(v, u);
      rc = tide_buf_append(out, v, 8);
      break;
    }
    case TIDE_T_STRING:
    case TIDE_T_JSON: {
      size_t len;
      const char *s = tide_col_str(c, r, &len);
      put_u32(v, (uint32_t)len);
      if ((rc = tide_buf_append(out, v, 4)) == 0) rc = tide_buf_append(out, s, len);
      break;
    }
    default:
      put_u64(v, (uint64_t)tide_col_i64(c, r));
      rc = tide_buf_append(out, v, 8);
      break;
    }
    if (rc) return rc;
  }
  return 0;
}

/* ------------------------------------------------------------- encode --- */

/* What both encoders check and make first: b's schema id into *sid and an
 * empty messages batch of capacity cap into *o. */
static int encode_begin(const tide_batch_t *b, const tide_batch_t *kb, int32_t partitions, uint32_t cap,
                        uint32_t *sid, tide_batch_t **o, tide_err_t *err) {
  if (partitions < 1) return tide_err_set(err, TIDE_EINVAL, "partitions must be >= 1, got %" PRId32, partitions);
  if (kb && kb->nrows != b->nrows)
    return tide_err_set(err, TIDE_EINVAL, "the key batch has %" PRIu32 " rows, the batch %" PRIu32, kb->nrows,
                        b->nrows);
  int rc = tide_repart_schema_id(b->schema, sid);
  if (rc) return tide_err_set(err, rc, "out of memory");
  tide_schema_t *ms = tide_repart_messages_schema();
  *o = ms ? tide_batch_new(ms, cap) : NULL;
  tide_schema_unref(ms);
  return *o ? 0 : tide_err_set(err, -ENOMEM, "out of memory");
}

/* How both encoders end: o into *out, or freed and rc with err. */
static int encode_end(tide_batch_t *o, int rc, tide_batch_t **out, tide_err_t *err) {
  if (rc) {
    tide_batch_free(o);
    return tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "the batch's messages exceed a batch's size limits"
                                                          : "out of memory");
  }
  *out = o;
  return 0;
}

int tide_repart_encode(const tide_batch_t *b, const tide_batch_t *kb, int32_t partitions, tide_batch_t **out,
                       tide_err_t *err) {
  *out = NULL;
  uint32_t sid;
  tide_batch_t *o;
  int rc = encode_begin(b, kb, partitions, b->nrows, &sid, &o, err);
  if (rc) return rc;
  /* body: the binary form; kbuf, vbuf: the texts */
  tide_buf_t body = TIDE_BUF_INIT, kbuf = TIDE_BUF_INIT, vbuf = TIDE_BUF_INIT;
  unsigned char sidb[4];
  put_u32(sidb, sid);
  for (uint32_t r = 0; r < b->nrows && rc == 0; r++) {
    kbuf.len = vbuf.len = body.len = 0;
    if ((kb && (rc = put_row(&body, kb, r, 1))) || (rc = frame(&kbuf, TIDE_REPART_KEY, &body))) break;
    body.len = 0;
    if ((rc = tide_buf_append(&body, sidb, 4)) || (rc = put_row(&body, b, r, 0)) ||
        (rc = frame(&vbuf, TIDE_REPART_ROW, &body)))
      break;
    if ((rc = tide_batch_row_begin(o))) break;
    tide_batch_set_i64(o, 0, tide_repart_partition(kbuf.data, kbuf.len, partitions));
    if ((rc = tide_batch_set_str(o, 1, kbuf.data, kbuf.len)) || (rc = tide_batch_set_str(o, 2, vbuf.data, vbuf.len))) {
      tide_batch_row_abort(o);
      break;
    }
    tide_batch_set_null(o, 3);
    tide_batch_row_commit(o);
  }
  tide_buf_free(&body);
  tide_buf_free(&kbuf);
  tide_buf_free(&vbuf);
  return encode_end(o, rc, out, err);
}

/* One message of a row block: "B1" + base64 of body (schema id, row count,
 * rows), partition p, appended to o. */
static int put_block(tide_batch_t *o, int32_t p, tide_buf_t *body, uint32_t rows, tide_buf_t *text) {
  put_u32((unsigned char *)body->data + 4, rows);
  text->len = 0;
  int rc = frame(text, TIDE_REPART_BLOCK, body);
  if (rc || (rc = tide_batch_row_begin(o))) return rc;
  tide_batch_set_i64(o, 0, p);
  tide_batch_set_null(o, 1);
  if ((rc = tide_batch_set_str(o, 2, text->data, text->len))) {
    tide_batch_row_abort(o);
    return rc;
  }
  tide_batch_set_null(o, 3);
  tide_batch_row_commit(o);
  return 0;
}

int tide_repart_encode_blocks(const tide_batch_t *b, const tide_batch_t *kb, int32_t partitions, size_t max_bytes,
                              tide_batch_t **out, tide_err_t *err) {
  *out = NULL;
  uint32_t sid;
  tide_batch_t *o;
  int rc = encode_begin(b, kb, partitions, 16, &sid, &o, err);
  if (rc) return rc;
  /* one open block per partition: its body and its row count */
  tide_buf_t *bodies = calloc((size_t)partitions, sizeof *bodies);
  uint32_t *counts = bodies ? calloc((size_t)partitions, sizeof *counts) : NULL;
  if (!counts) {
    free(bodies);
    tide_batch_free(o);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  tide_buf_t key = TIDE_BUF_INIT, kbuf = TIDE_BUF_INIT, text = TIDE_BUF_INIT;
  unsigned char head[8];
  put_u32(head, sid);
  put_u32(head + 4, 0);
  int32_t p = 0;
  if (!kb) { /* the constant key: one partition for every row */
    rc = frame(&kbuf, TIDE_REPART_KEY, &key);
    p = rc ? 0 : tide_repart_partition(kbuf.data, kbuf.len, partitions);
  }
  for (uint32_t r = 0; r < b->nrows && rc == 0; r++) {
    if (kb) {
      key.len = kbuf.len = 0;
      if ((rc = put_row(&key, kb, r, 1)) || (rc = frame(&kbuf, TIDE_REPART_KEY, &key))) break;
      p = tide_repart_partition(kbuf.data, kbuf.len, partitions);
    }
    tide_buf_t *body = &bodies[p];
    if (body->len == 0 && (rc = tide_buf_append(body, head, sizeof head))) break;
    size_t at = body->len;
    unsigned char len[4] = {0};
    if ((rc = tide_buf_append(body, len, 4)) || (rc = put_row(body, b, r, 0))) break;
    put_u32((unsigned char *)body->data + at, (uint32_t)(body->len - at - 4));
    counts[p]++;
    if (body->len >= max_bytes) {
      if ((rc = put_block(o, p, body, counts[p], &text))) break;
      body->len = 0;
      counts[p] = 0;
    }
  }
  for (int32_t q = 0; q < partitions && rc == 0; q++)
    if (counts[q]) rc = put_block(o, q, &bodies[q], counts[q], &text);
  for (int32_t q = 0; q < partitions; q++) tide_buf_free(&bodies[q]);
  free(bodies);
  free(counts);
  tide_buf_free(&key);
  tide_buf_free(&kbuf);
  tide_buf_free(&text);
  return encode_end(o, rc, out, err);
}

int tide_repart_markers(int32_t partitions, int32_t upstream, int64_t ms, tide_batch_t **out, tide_err_t *err) {
  *out = NULL;
  if (partitions < 1) return tide_err_set(err, TIDE_EINVAL, "partitions must be >= 1, got %" PRId32, partitions);
  if (upstream < 0) return tide_err_set(err, TIDE_EINVAL, "upstream partition must be >= 0, got %" PRId32, upstream);
  tide_schema_t *s = tide_repart_messages_schema();
  tide_batch_t *o = s ? tide_batch_new(s, (uint32_t)partitions) : NULL;
  tide_schema_unref(s);
  if (!o) return tide_err_set(err, -ENOMEM, "out of memory");
  unsigned char raw[12];
  put_u32(raw, (uint32_t)upstream);
  put_u64(raw + 4, (uint64_t)ms);
  tide_buf_t body = {(char *)raw, sizeof raw, sizeof raw}, v = TIDE_BUF_INIT;
  if (frame(&v, TIDE_REPART_MARK, &body)) {
    tide_batch_free(o);
    tide_buf_free(&v);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  char h[96];
  int hn = snprintf(h, sizeof h, "{\"" TIDE_REPART_MARK_HEADER "\":\"%" PRId32 ":%" PRId64 "\"}", upstream, ms);
  int rc = 0;
  for (int32_t p = 0; p < partitions && rc == 0; p++) {
    if ((rc = tide_batch_row_begin(o))) break;
    tide_batch_set_i64(o, 0, p);
    tide_batch_set_null(o, 1);
    if ((rc = tide_batch_set_str(o, 2, v.data, v.len)) || (rc = tide_batch_set_str(o, 3, h, (size_t)hn))) {
      tide_batch_row_abort(o);
      break;
    }
    tide_batch_row_commit(o);
  }
  tide_buf_free(&v);
  if (rc) {
    tide_batch_free(o);
    return tide_err_set(err, rc, "out of memory");
  }
  *out = o;
  return 0;
}

/* ------------------------------------------------------------- decode --- */

static int corrupt(tide_err_t *err, const char *fmt, const char *name) {
  return tide_err_set(err, TIDE_ECORRUPT, fmt, name);
}

/* The values of one row (after the header) into out's row in progress. */
static int get_row(tide_batch_t *out, const unsigned char *p, size_t n, tide_err_t *err) {
  const tide_schema_t *s = out->schema;
  uint32_t nf = s->nfields, nb = (nf + 7) / 8;
  if (n < nb) return tide_err_set(err, TIDE_ECORRUPT, "the row ends inside its null bitmap");
  const unsigned char *bits = p, *q = p + nb, *end = p + n;
  for (uint32_t i = nf; i < nb * 8; i++)
    if (bits[i / 8] & (1u << (i % 8))) return tide_err_set(err, TIDE_ECORRUPT, "the null bitmap has bits past the last field");
  for (uint32_t i = 0; i < nf; i++) {
    const tide_field_t *f = &s->fields[i];
    if (bits[i / 8] & (1u << (i % 8))) {
      if (!f->nullable) return corrupt(err, "NULL in the non-nullable field '%s'", f->name);
      tide_batch_set_null(out, i);
      continue;
    }
    size_t need = f->type == TIDE_T_BOOL ? 1 : f->type == TIDE_T_STRING || f->type == TIDE_T_JSON ? 4 : 8;
    if ((size_t)(end - q) < need) return corrupt(err, "the row ends inside field '%s'", f->name);
    switch (f->type) {
    case TIDE_T_BOOL:
      if (*q > 1) return corrupt(err, "field '%s' is a bool that is neither 0 nor 1", f->name);
      tide_batch_set_bool(out, i, *q);
      q += 1;
      break;
    case TIDE_T_DOUBLE: {
      uint64_t u = get_u64(q);
      double d;
      memcpy(&d, &u, 8);
      tide_batch_set_f64(out, i, d);
      q += 8;
      break;
    }
    case TIDE_T_STRING:
    case TIDE_T_JSON: {
      uint32_t len = get_u32(q);
      q += 4;
      if ((size_t)(end - q) < len) return corrupt(err, "the row ends inside field '%s'", f->name);
      const char *sp = (const char *)q;
      if (f->type == TIDE_T_STRING) {
        if (tide_utf8_check(sp, len) != len) return corrupt(err, "field '%s' is not valid UTF-8", f->name);
      } else {
        size_t used = 0;
        tide_err_t jerr = {0, ""};
        if (tide_json_scan(sp, len, &used, NULL, &jerr) || used != len)
          return corrupt(err, "field '%s' is not one JSON value", f->name);
      }
      int rc = tide_batch_set_str(out, i, sp, len);
      if (rc) return tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "the batch is full" : "out of memory");
      q += len;
      break;
    }
    default: {
      int64_t v = (int64_t)get_u64(q);
      if (f->type == TIDE_T_TIMESTAMP && !tide_ts_valid(v))
        return corrupt(err, "field '%s' is a timestamp" TIDE_TS_RANGE_WHY, f->name);
      tide_batch_set_i64(out, i, v);
      q += 8;
      break;
    }
    }
  }
  if (q != end) return tide_err_set(err, TIDE_ECORRUPT, "%zu bytes after the last field", (size_t)(end - q));
  return 0;
}

/* A row block's rows (its binary body u[0..n)) into out: all or none. */
static int get_block(tide_batch_t *out, uint32_t sid, const unsigned char *u, size_t n, tide_err_t *err) {
  if (n < 8) return tide_err_set(err, TIDE_ECORRUPT, "the row block ends inside its header (%zu bytes)", n);
  uint32_t got = get_u32(u), rows = get_u32(u + 4);
  if (got != sid)
    return tide_err_set(err, TIDE_ECORRUPT,
                        "the rows were written for another schema (id %08" PRIx32 ", this query's is %08" PRIx32
                        "): the upstream part of the query changed its output",
                        got, sid);
  uint32_t before = out->nrows;
  const unsigned char *q = u + 8, *end = u + n;
  int rc = 0;
  for (uint32_t r = 0; r < rows && rc == 0; r++) {
    if (end - q < 4) {
      rc = tide_err_set(err, TIDE_ECORRUPT, "the row block ends inside the length of row %" PRIu32, r);
      break;
    }
    uint32_t len = get_u32(q);
    q += 4;
    if ((size_t)(end - q) < len) {
      rc = tide_err_set(err, TIDE_ECORRUPT, "the row block ends inside row %" PRIu32, r);
      break;
    }
    if ((rc = tide_batch_row_begin(out))) {
      rc = tide_err_set(err, rc, "out of memory");
      break;
    }
    if ((rc = get_row(out, q, len, err))) tide_batch_row_abort(out);
    else tide_batch_row_commit(out);
    q += len;
  }
  if (rc == 0 && q != end)
    rc = tide_err_set(err, TIDE_ECORRUPT, "%zu bytes after the last row of the block", (size_t)(end - q));
  if (rc) tide_batch_truncate(out, before);
  return rc;
}

int tide_repart_decode(tide_batch_t *out, uint32_t sid, const char *p, size_t n, tide_buf_t *tmp, int32_t *upstream,
                       int64_t *ms, tide_err_t *err) {
  if (!p || n == 0) return tide_err_set(err, TIDE_ECORRUPT, "the message has no value");
  if (p[0] != TIDE_REPART_ROW && p[0] != TIDE_REPART_MARK && p[0] != TIDE_REPART_BLOCK)
    return tide_err_set(err, TIDE_ECORRUPT, "not a repartition message (first byte 0x%02x)", (unsigned char)p[0]);
  if (n < 2) return tide_err_set(err, TIDE_ECORRUPT, "the message ends after 1 byte");
  if (p[1] != TIDE_REPART_VERSION)
    return tide_err_set(err, TIDE_EFORMAT, "format version '%c' (this tide reads '%c')",
                        (unsigned char)p[1] >= 0x20 && (unsigned char)p[1] < 0x7f ? p[1] : '?', TIDE_REPART_VERSION);
  int rc = unbase64(p + 2, n - 2, tmp);
  if (rc) {
    return rc == -1 ? tide_err_set(err, TIDE_ECORRUPT, "the message is not base64 after its first 2 bytes")
                    : tide_err_set(err, rc, "out of memory");
  }
  const unsigned char *u = (const unsigned char *)tmp->data;
  size_t bn = tmp->len;
  if (p[0] == TIDE_REPART_MARK) {
    int32_t up = bn == 12 ? (int32_t)get_u32(u) : -1;
    int64_t w = bn == 12 ? (int64_t)get_u64(u + 4) : 0;
    if (bn != 12) return tide_err_set(err, TIDE_ECORRUPT, "a watermark marker of %zu bytes (expected 12)", bn);
    if (up < 0) return tide_err_set(err, TIDE_ECORRUPT, "a watermark marker of upstream partition %" PRId32, up);
    *upstream = up;
    *ms = w;
    return 1;
  }
  if (p[0] == TIDE_REPART_BLOCK) return get_block(out, sid, u, bn, err);
  if (bn < 4) return tide_err_set(err, TIDE_ECORRUPT, "the row ends inside its schema id (%zu bytes)", bn);
  uint32_t got = get_u32(u);
  if (got != sid)
    return tide_err_set(err, TIDE_ECORRUPT,
                        "the row was written for another schema (id %08" PRIx32 ", this query's is %08" PRIx32
                        "): the upstream part of the query changed its output",
                        got, sid);
  rc = tide_batch_row_begin(out);
  if (rc) return tide_err_set(err, rc, "out of memory");
  if ((rc = get_row(out, u + 4, bn - 4, err))) tide_batch_row_abort(out);
  else tide_batch_row_commit(out);
  return rc;
}
