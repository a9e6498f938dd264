/*
 * test_fileread.c: file ranges read and decoded (fileread.h). A read run
 * on a thread of its own, and one run on the caller over pools of 1 to 3
 * threads, give what one tide_decode call over the same bytes gives (rows,
 * dropped records, dead records and their lines, each range's end line),
 * over random ranges of a file with bad records, CRLF lines and chunks cut
 * inside records; a CSV header is skipped and counted; a missing file, a
 * short one and a bad record under "fail" stop the read at the range that
 * failed. tide_file_cut agrees with a byte-by-byte search at random
 * positions and budgets. While a read runs on its thread, the caller
 * makes and frees batches of the same schema (its reference count is
 * shared). A read started on a shared pool (tide_fread_start_on) gives
 * the same while the caller runs tasks on that pool, also when the caller
 * closed the pool right after the start. Runs under TSan and helgrind (make tsan /
 * helgrind); every read and batch is freed at the end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "csv.h"
#include "fileread.h"
#include "pool.h"
#include "t.h"

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s\n", err.msg);
  return s;
}

static uint32_t rnd_state = 12345;
static uint32_t rnd(void) { return (rnd_state = rnd_state * 1103515245u + 12345u) >> 8; }

/* A file of n JSON lines, every 97th bad, some CRLF; its bytes in *text. */
static char *make_file(const char *path, size_t n, size_t *len) {
  tide_buf_t b = TIDE_BUF_INIT;
  char line[200];
  for (size_t i = 0; i < n; i++) {
    int k;
    if (i % 97 == 13) k = snprintf(line, sizeof line, "{\"ts\": %zu, \"device\": oops}\n", i);
    else
      k = snprintf(line, sizeof line, "{\"ts\": %zu, \"device\": \"d%zu\", \"signal\": %zu}%s\n",
                   1700000000000 + i, i % 37, i % 41, i % 5 == 0 ? "\r" : "");
    tide_buf_append(&b, line, (size_t)k);
  }
  FILE *f = fopen(path, "wb");
  fwrite(b.data, 1, b.len, f);
  fclose(f);
  *len = b.len;
  return b.data;
}

/* The rows of batches as CSV text. */
static void rows_text(tide_batch_t *const *bs, size_t n, tide_buf_t *out) {
  for (size_t i = 0; i < n; i++) tide_csv_enc_rows(bs[i], 0, bs[i]->nrows, ',', out);
}

/* What one tide_decode over text[0..len) from line `line` gives. */
typedef struct expect {
  tide_buf_t rows;
  uint64_t dropped;
  size_t ndead;
  int64_t dead_line0, end_line;
} expect_t;

static void reference(tide_schema_t *s, const tide_decode_opts_t *o, const char *text, size_t len, int64_t line,
                      expect_t *e) {
  memset(e, 0, sizeof *e);
  tide_decoder_t *d = NULL;
  tide_err_t err = {0, ""};
  tide_decoder_open(s, o, &d, &err);
  size_t pos = 0;
  e->end_line = line;
  e->dead_line0 = -1;
  while (pos < len) {
    tide_batch_t *b = tide_batch_new(s, 1024);
    tide_decode_result_t r;
    T_EQ_INT(tide_decode(d, b, text + pos, len - pos, 1, e->end_line, &r, &err), 0);
    rows_text(&b, 1, &e->rows);
    e->dropped += r.dropped;
    if (r.ndead && e->dead_line0 < 0) e->dead_line0 = r.dead[0].line;
    e->ndead += r.ndead;
    e->end_line += r.lines;
    pos += r.used;
    tide_batch_free(b);
    if (!r.used) break;
  }
  tide_decoder_close(d);
}

static void check_read(tide_fread_t *r, const expect_t *e) {
  T_EQ_INT(r->kind, TIDE_FREAD_OK);
  size_t n;
  tide_batch_t **bs = tide_fread_take(r, &n);
  tide_buf_t got = TIDE_BUF_INIT;
  rows_text(bs, n, &got);
  T_EQ_INT(got.len, e->rows.len);
  T_CHECK(got.len == e->rows.len && memcmp(got.data, e->rows.data, got.len) == 0);
  for (size_t i = 0; i < n; i++) tide_batch_free(bs[i]);
  free(bs);
  tide_buf_free(&got);
  T_EQ_INT(r->dropped, e->dropped);
  T_EQ_INT(r->ndead, e->ndead);
  if (e->ndead) T_EQ_INT(r->dead[0].rec.line, e->dead_line0);
  T_EQ_INT(r->ranges[r->nranges - 1].end_line, e->end_line);
}

typedef struct count {
  int hits[64];
} count_t;

static void count_task(void *arg, size_t i) {
  count_t *c = arg;
  c->hits[i]++;
}

static void test_threaded_and_inline_agree(void) {
  char path[] = "/tmp/tide-fread-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  size_t len;
  char *text = make_file(path, 120000, &len); /* about 8 MB: chunks are cut inside records */
  tide_schema_t *s = schema("ts timestamp, device string, signal int");
  tide_pool_t *pools[3];
  for (int i = 0; i < 3; i++) T_EQ_INT(tide_pool_open(i + 1, &pools[i]), 0);
  for (int round = 0; round < 12; round++) {
    tide_decode_opts_t o = {TIDE_FMT_JSON, round % 2 ? TIDE_BAD_DEAD_LETTER : TIDE_BAD_DROP, ',', 0, 0};
    /* a range from a line start to a line end, of random size */
    size_t from = round == 0 ? 0 : rnd() % (len / 2), to = round == 0 ? len : from + 1 + rnd() % (len - from - 1);
    while (from > 0 && text[from - 1] != '\n') from--;
    while (to < len && text[to - 1] != '\n') to++;
    /* two ranges: [from, mid) and [mid, to), the second starting its lines after the first */
    size_t mid = from + (to - from) / 3;
    while (mid < to && text[mid - 1] != '\n') mid++;
    int64_t line = 1;
    for (size_t i = 0; i < from; i++) line += text[i] == '\n';
    expect_t e;
    reference(s, &o, text + from, to - from, line, &e);
    expect_t e1;
    reference(s, &o, text + from, mid - from, line, &e1);
    for (int way = 0; way < 5; way++) {
      tide_fread_t *r = tide_fread_new(s, &o);
      T_EQ_INT(tide_fread_add(r, path, (int64_t)from, (int64_t)mid, line, 0), 0);
      T_EQ_INT(tide_fread_add(r, path, (int64_t)mid, (int64_t)to, e1.end_line, 0), 0);
      if (way == 4) {
        /* on a pool shared with this thread, which runs on it meanwhile
         * (as the loop thread's operators do); every other round the pool
         * is one of its own that this thread closes at once: the read's
         * reference keeps it until the read's thread ends */
        tide_pool_t *own = NULL;
        if (round % 2) T_EQ_INT(tide_pool_open(2, &own), 0);
        T_EQ_INT(tide_fread_start_on(r, own ? own : pools[round % 3]), 0);
        tide_pool_close(own);
        for (int i = 0; i < 200; i++) {
          static count_t c;
          memset(&c, 0, sizeof c);
          tide_pool_run(pools[round % 3], 64, count_task, &c);
          int bad = 0;
          for (size_t k = 0; k < 64; k++) bad += c.hits[k] != 1;
          T_EQ_INT(bad, 0);
        }
      }
      if (way == 3) {
        T_EQ_INT(tide_fread_start(r, 1 + round % 3), 0);
        /* meanwhile this thread makes and frees batches of the same schema,
         * as the loop thread does while a read runs ahead */
        for (int i = 0; i < 2000; i++) tide_batch_free(tide_batch_new(s, 16));
      }
      tide_fread_wait(r, way >= 3 ? NULL : pools[way]);
      tide_fread_wait(r, NULL); /* a second wait returns at once */
      T_EQ_INT(r->ranges[0].end_line, e1.end_line);
      check_read(r, &e);
      tide_fread_free(r);
    }
    tide_buf_free(&e.rows);
    tide_buf_free(&e1.rows);
  }
  /* a read started and freed without a wait is joined by the free */
  tide_decode_opts_t o = {TIDE_FMT_JSON, TIDE_BAD_DROP, ',', 0, 0};
  tide_fread_t *r = tide_fread_new(s, &o);
  T_EQ_INT(tide_fread_add(r, path, 0, (int64_t)len, 1, 0), 0);
  T_EQ_INT(tide_fread_start(r, 2), 0);
  tide_fread_free(r);
  for (int i = 0; i < 3; i++) tide_pool_close(pools[i]);
  tide_schema_unref(s);
  free(text);
  unlink(path);
}

static void test_header_and_failures(void) {
  char path[] = "/tmp/tide-fread-XXXXXX";
  int fd = mkstemp(path);
  const char csv[] = "a,b\n1,x\n2,y\n";
  T_EQ_INT(write(fd, csv, sizeof csv - 1), (long)(sizeof csv - 1));
  close(fd);
  tide_schema_t *s = schema("a int, b string");
  tide_decode_opts_t o = {TIDE_FMT_CSV, TIDE_BAD_FAIL, ',', 0, 0};
  tide_fread_t *r = tide_fread_new(s, &o);
  T_EQ_INT(tide_fread_add(r, path, 0, (int64_t)sizeof csv - 1, 1, 1), 0);
  T_EQ_INT(tide_fread_start(r, 2), 0);
  tide_fread_wait(r, NULL);
  T_EQ_INT(r->kind, TIDE_FREAD_OK);
  T_EQ_INT(r->nbatches, 1);
  T_EQ_INT(r->batches[0]->nrows, 2);
  T_EQ_INT(r->ranges[0].end_line, 4);
  tide_fread_free(r);

  /* a missing file: the second range fails, named */
  r = tide_fread_new(s, &o);
  T_EQ_INT(tide_fread_add(r, path, 4, 8, 2, 0), 0);
  T_EQ_INT(tide_fread_add(r, "/nonexistent/tide-fread", 0, 4, 1, 0), 0);
  tide_fread_wait(r, NULL);
  T_EQ_INT(r->kind, TIDE_FREAD_OPEN);
  T_EQ_INT(r->failed, 1);
  T_EQ_INT(r->rc, -ENOENT);
  T_EQ_STR(r->err.msg, strerror(ENOENT));
  tide_fread_free(r);

  /* a file shorter than its range */
  r = tide_fread_new(s, &o);
  T_EQ_INT(tide_fread_add(r, path, 4, 100, 2, 0), 0);
  T_EQ_INT(tide_fread_start(r, 2), 0);
  tide_fread_wait(r, NULL);
  T_EQ_INT(r->kind, TIDE_FREAD_SHORT);
  T_EQ_INT(r->left, (long)(sizeof csv - 1 - 4));
  tide_fread_free(r);

  /* a bad record under "fail": its line */
  tide_schema_t *s2 = schema("a int, b int");
  r = tide_fread_new(s2, &o);
  T_EQ_INT(tide_fread_add(r, path, 4, (int64_t)sizeof csv - 1, 2, 0), 0);
  tide_fread_wait(r, NULL);
  T_EQ_INT(r->kind, TIDE_FREAD_DECODE);
  T_CHECK(strncmp(r->err.msg, "line 2: ", 8) == 0);
  tide_fread_free(r);
  tide_schema_unref(s2);
  tide_schema_unref(s);
  unlink(path);
}

/* The cut by a byte-by-byte search (the Lua source's rule). */
static int64_t slow_cut(const char *t, int64_t p, int64_t budget, int must, int64_t to) {
  for (int64_t i = p + budget; i > p; i--)
    if (i <= to && t[i - 1] == '\n') return i;
  if (!must) return -1;
  for (int64_t i = p + budget; i < to; i++)
    if (t[i] == '\n') return i + 1;
  return to;
}

static void test_cut(void) {
  char path[] = "/tmp/tide-fread-XXXXXX";
  int fd = mkstemp(path);
  close(fd);
  tide_buf_t b = TIDE_BUF_INIT;
  for (int i = 0; i < 3000; i++) { /* lines of 0 to 199 bytes, and one of 200 KB */
    size_t n = i == 1500 ? 200000 : rnd() % 200;
    for (size_t j = 0; j < n; j++) tide_buf_putc(&b, 'x');
    tide_buf_putc(&b, '\n');
  }
  FILE *f = fopen(path, "wb");
  fwrite(b.data, 1, b.len, f);
  fclose(f);
  int64_t len = (int64_t)b.len;
  int bad = 0;
  for (int i = 0; i < 2000; i++) {
    int64_t p = (int64_t)(rnd() % (uint32_t)len), to = p + (int64_t)(rnd() % (uint32_t)(len - p + 1));
    int64_t budget = i % 3 ? (int64_t)(rnd() % 300) : (int64_t)(rnd() % 300000);
    if (p + budget >= to) budget = to - p; /* the source asks for a cut only inside an entry */
    int must = i % 2;
    int64_t cut;
    tide_err_t err = {0, ""};
    T_EQ_INT(tide_file_cut(path, p, budget, must, to, &cut, &err), 0);
    bad += cut != slow_cut(b.data, p, budget, must, to);
  }
  T_EQ_INT(bad, 0);
  int64_t cut;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_file_cut("/nonexistent/tide-cut", 0, 10, 1, 20, &cut, &err), -ENOENT);
  T_EQ_STR(err.msg, strerror(ENOENT));
  tide_buf_free(&b);
  unlink(path);
}

int main(void) {
  T_RUN(test_threaded_and_inline_agree);
  T_RUN(test_header_and_failures);
  T_RUN(test_cut);
  T_DONE();
}
