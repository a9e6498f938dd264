/*
 * seeds.c: writes the binary seeds of the fuzz corpora (`make fuzz-seeds`;
 * the output is committed under spec/fuzz/corpus/): segments of real
 * blocks (fuzz_block), real aggregation state records (fuzz_state) and
 * session records (fuzz_session),
 * each with the leading byte that asks the harness to set checksums right
 * (1) or not (0). The text corpora are written by hand.
 */
#include "buf.h"
#include "fuzz.h"
#include "seg.h"

static void put(const char *dir, const char *name, uint8_t lead, const void *p, size_t n) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  FUZZ_CHECK(f, "cannot write %s", path);
  fputc(lead, f);
  fwrite(p, 1, n, f);
  fclose(f);
}

int main(int argc, char **argv) {
  FUZZ_CHECK(argc == 2, "usage: seeds <spec/fuzz/corpus>");
  char dir[400];
  const tide_batch_t *b = fuzz_batch();
  /* segments: a header and one block of every row; a header and one block
   * per row; a bare block */
  tide_buf_t seg = {0};
  char hdr[TIDE_SEG_HEADER];
  tide_seg_header(hdr, 1, 0, 0);
  FUZZ_CHECK(tide_buf_append(&seg, hdr, sizeof hdr) == 0, "oom");
  FUZZ_CHECK(tide_block_encode(b, 0, b->nrows, 0, 1, 0, 86400000, &seg) == 0, "encode");
  snprintf(dir, sizeof dir, "%s/block", argv[1]);
  put(dir, "segment-one-block", 1, seg.data, seg.len);
  put(dir, "segment-one-block-raw", 0, seg.data, seg.len);
  seg.len = 0;
  FUZZ_CHECK(tide_buf_append(&seg, hdr, sizeof hdr) == 0, "oom");
  for (uint32_t r = 0; r < b->nrows; r++)
    FUZZ_CHECK(tide_block_encode(b, r, r + 1, r, 1, INT64_MIN, INT64_MIN, &seg) == 0, "encode");
  put(dir, "segment-block-per-row", 1, seg.data, seg.len);
  seg.len = 0;
  FUZZ_CHECK(tide_block_encode(b, 1, 3, 7, 2, -5, 5, &seg) == 0, "encode");
  put(dir, "bare-block", 1, seg.data, seg.len);
  tide_buf_free(&seg);
  /* state records: the groups of fuzz_state.c's aggregation over rows
   * built from the batch's columns */
  tide_agg_t *a = fuzz_state_agg();
  tide_schema_t *ks = NULL;
  tide_err_t err = {0, ""};
  FUZZ_CHECK(tide_schema_parse_ddl(FUZZ_STATE_KEYS, strlen(FUZZ_STATE_KEYS), &ks, &err) == 0, "%s", err.msg);
  /* batch columns: ts 0, id 1, v 2, s 3, b 4, j 5, n 6 */
  const tide_col_t kcols[] = {b->cols[3], b->cols[6], b->cols[0], b->cols[2], b->cols[4], b->cols[5]};
  tide_batch_t *kb = tide_batch_borrowed(ks, b->nrows, kcols, NULL, NULL);
  const tide_col_t *args[] = {NULL,        &b->cols[3], &b->cols[1], &b->cols[2], &b->cols[3], &b->cols[2],
                              &b->cols[1], &b->cols[3], &b->cols[0], &b->cols[3], &b->cols[6], &b->cols[4]};
  FUZZ_CHECK(kb && tide_agg_update(a, kb, args, &err) == 0, "update: %s", err.msg);
  FUZZ_CHECK(tide_agg_update(a, kb, args, &err) == 0, "update: %s", err.msg);
  snprintf(dir, sizeof dir, "%s/state", argv[1]);
  tide_buf_t rec = {0};
  for (uint32_t g = 0; g < (uint32_t)tide_agg_groups(a); g++) {
    char name[32];
    rec.len = 0;
    FUZZ_CHECK(tide_agg_encode(a, g, &rec, &err) == 0, "encode: %s", err.msg);
    snprintf(name, sizeof name, "group-%u", g);
    put(dir, name, 1, rec.data, rec.len);
  }
  tide_buf_free(&rec);
  /* session records: the sessions of a few pushes, all in one input (each
   * after its 2-byte length), and each on its own */
  static const char *const rows[] = {
      "{\"k\":\"a\",\"t\":0,\"v\":1}",   "{\"k\":\"a\",\"t\":8,\"v\":2}",  "{\"k\":\"a\",\"t\":30,\"v\":3}",
      "{\"k\":null,\"t\":3,\"v\":null}", "{\"k\":\"\",\"t\":-50,\"v\":9}", "{\"k\":\"b\",\"t\":7,\"v\":7}"};
  tide_session_t *ss = fuzz_session();
  tide_batch_t *sb = fuzz_session_rows(rows, sizeof rows / sizeof *rows);
  tide_session_feed_t f = {0};
  uint32_t nch = 0;
  FUZZ_CHECK(fuzz_session_push(ss, sb, &f, &err) == 0 && tide_session_changes(ss, &nch, &err) == 0, "%s",
             err.msg);
  snprintf(dir, sizeof dir, "%s/session", argv[1]);
  tide_buf_t all = {0}, one = {0};
  for (uint32_t i = 0; i < nch; i++) {
    uint64_t id;
    char name[32];
    one.len = 0;
    FUZZ_CHECK(tide_buf_reserve(&one, 2) == 0, "oom");
    one.len = 2; /* the length, set below */
    FUZZ_CHECK(tide_session_change(ss, i, &id, &one, &err) == 0, "%s", err.msg);
    one.data[0] = (char)((one.len - 2) & 0xff);
    one.data[1] = (char)((one.len - 2) >> 8);
    FUZZ_CHECK(tide_buf_append(&all, one.data, one.len) == 0, "oom");
    snprintf(name, sizeof name, "session-%u", i);
    put(dir, name, 1, one.data, one.len);
  }
  put(dir, "sessions", 1, all.data, all.len);
  tide_buf_free(&all);
  tide_buf_free(&one);
  tide_batch_free(sb);
  tide_session_free(ss);
  tide_batch_free(kb);
  tide_agg_free(a);
  tide_schema_unref(ks);
  return 0;
}
