/*
 * test_ckpt.c: the checkpoint store in C (core/ckpt.c): open and reopen,
 * offset and commit entries, the commit transaction's atomicity (a failing
 * commit leaves nothing), state iteration in key order across chunks,
 * the overlapped commit (its gate, cancel, failures), purge, map growth
 * under a large state, the exclusive lock within one
 * process and from a forked one, read-only opens, damaged files, a commit
 * that waits for a topic append on another thread (the deferred sink) and
 * is cancelled when that append fails. Ends by
 * proving that no file descriptor is left open.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "batch.h"
#include "ckpt.h"
#include "schema.h"
#include "store.h"
#include "t.h"

static char root[256];

/* A fresh path under root (not created). */
static const char *fresh(const char *name) {
  static char p[512];
  snprintf(p, sizeof p, "%s/%s", root, name);
  return p;
}

static tide_ckpt_t *open_ok(const char *dir, int flags) {
  tide_ckpt_t *c = NULL;
  tide_err_t err = {0, ""};
  int rc = tide_ckpt_open(dir, flags, &c, &err);
  if (rc) fprintf(stderr, "open %s: %s\n", dir, err.msg);
  T_EQ_INT(rc, 0);
  return c;
}

/* Run fn in a forked child; true when it reported success through a pipe
 * (its exit status is not used: valgrind's leak check of the child's copy
 * of the parent's memory may change it). */
static int in_child(int (*fn)(const char *), const char *dir) {
  int fds[2];
  if (pipe(fds) < 0) return 0;
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    char r = fn(dir) ? 'y' : 'n';
    if (write(fds[1], &r, 1) != 1) _exit(2);
    _exit(0);
  }
  close(fds[1]);
  char r = 0;
  if (read(fds[0], &r, 1) != 1) r = 0;
  close(fds[0]);
  int status;
  waitpid(pid, &status, 0);
  return r == 'y';
}

static int buf_is(const tide_buf_t *b, const char *s) { return b->len == strlen(s) && !memcmp(b->data, s, b->len); }

/* ---------------------------------------------------------------- tests */

static void test_open_entries_reopen(void) {
  const char *dir = fresh("a/b/c"); /* missing parents are created */
  char d[512];
  snprintf(d, sizeof d, "%s", dir);
  tide_ckpt_t *c = open_ok(d, 0);
  tide_err_t err = {0, ""};
  tide_buf_t b = TIDE_BUF_INIT;
  int64_t lo, lc;
  T_EQ_INT(tide_ckpt_latest(c, &lo, &lc, &err), 0);
  T_EQ_INT(lo, -1);
  T_EQ_INT(lc, -1);
  T_EQ_INT(tide_ckpt_meta_get(c, "query_id", 8, &b, &err), MDB_NOTFOUND);
  T_EQ_INT(tide_ckpt_meta_set(c, "query_id", 8, "q-1", 3, &err), 0);
  T_EQ_INT(tide_ckpt_meta_set(c, "format", 6, "9", 1, &err), TIDE_EINVAL);
  T_EQ_INT(tide_ckpt_meta_get(c, "format", 6, &b, &err), 0);
  T_CHECK(buf_is(&b, "1"));
  T_EQ_INT(tide_ckpt_write_offsets(c, 0, "{\"o\":0}", 7, &err), 0);
  T_EQ_INT(tide_ckpt_write_offsets(c, 0, "{\"o\":0}", 7, &err), 0); /* same text: no-op */
  T_EQ_INT(tide_ckpt_write_offsets(c, 0, "{\"o\":1}", 7, &err), TIDE_EEXIST);
  T_CHECK(strstr(err.msg, "offset log 0 exists with other offsets") != NULL);
  T_EQ_INT(tide_ckpt_latest(c, &lo, &lc, &err), 0);
  T_EQ_INT(lo, 0);
  T_EQ_INT(lc, -1);
  T_EQ_INT(tide_ckpt_commit(c, 0, "{\"c\":0}", 7, NULL, 0, &err), 0);
  T_EQ_INT(tide_ckpt_commit(c, 0, "{\"c\":0}", 7, NULL, 0, &err), TIDE_EEXIST);
  T_CHECK(strstr(err.msg, "commit log 0 exists") != NULL);
  /* ids beyond 255 keep numeric order (big-endian keys) */
  T_EQ_INT(tide_ckpt_write_offsets(c, 256, "x", 1, &err), 0);
  T_EQ_INT(tide_ckpt_write_offsets(c, 3, "y", 1, &err), 0);
  T_EQ_INT(tide_ckpt_latest(c, &lo, &lc, &err), 0);
  T_EQ_INT(lo, 256);
  T_EQ_INT(lc, 0);
  tide_ckpt_close(c);

  c = open_ok(d, TIDE_CKPT_NOSYNC);
  T_EQ_INT(tide_ckpt_meta_get(c, "query_id", 8, &b, &err), 0);
  T_CHECK(buf_is(&b, "q-1"));
  T_EQ_INT(tide_ckpt_offsets_get(c, 0, &b, &err), 0);
  T_CHECK(buf_is(&b, "{\"o\":0}"));
  T_EQ_INT(tide_ckpt_commit_get(c, 0, &b, &err), 0);
  T_CHECK(buf_is(&b, "{\"c\":0}"));
  T_EQ_INT(tide_ckpt_commit_get(c, 1, &b, &err), MDB_NOTFOUND);
  T_EQ_INT(b.len, 0);
  tide_ckpt_stats_t st;
  tide_buf_t states = TIDE_BUF_INIT;
  T_EQ_INT(tide_ckpt_stats(c, &st, &states, &err), 0);
  T_EQ_INT(st.offsets, 3);
  T_EQ_INT(st.commits, 1);
  T_EQ_INT(st.first_id, 0);
  T_EQ_INT(st.last_offset_id, 256);
  T_EQ_INT(st.last_commit_id, 0);
  T_EQ_INT(st.nstates, 0);
  T_CHECK(st.file_bytes > 0 && st.map_bytes >= st.file_bytes);
  tide_ckpt_close(c);
  tide_buf_free(&b);
  tide_buf_free(&states);
}

/* Scan the whole state in chunks of `chunk` entries; returns the count and
 * checks strict key order. */
static size_t scan_all(tide_ckpt_t *c, const char *name, size_t chunk, tide_buf_t *last) {
  tide_buf_t out = TIDE_BUF_INIT;
  tide_err_t err = {0, ""};
  size_t total = 0;
  int done = 0, have = 0;
  last->len = 0;
  while (!done) {
    size_t n;
    T_EQ_INT(tide_ckpt_state_scan(c, name, strlen(name), have ? last->data : NULL, last->len, chunk, 1u << 20, &out, &n,
                                  &done, &err),
             0);
    const char *p = out.data;
    for (size_t i = 0; i < n; i++) {
      size_t sz[2];
      memcpy(sz, p, sizeof sz);
      p += sizeof sz;
      if (have) {
        size_t m = sz[0] < last->len ? sz[0] : last->len;
        int cmp = memcmp(last->data, p, m);
        T_CHECK(cmp < 0 || (cmp == 0 && last->len < sz[0]));
      }
      last->len = 0;
      tide_buf_append(last, p, sz[0]);
      have = 1;
      p += sz[0] + sz[1];
      total++;
    }
    if (n == 0) break;
  }
  tide_buf_free(&out);
  return total;
}

static void test_commit_states(void) {
  tide_ckpt_t *c = open_ok(fresh("states"), 0);
  tide_err_t err = {0, ""};
  char keys[300][16], vals[300][16];
  tide_ckpt_op_t ops[300];
  for (int i = 0; i < 300; i++) {
    /* inserted out of order: the scan must return key order */
    int k = (i * 7919) % 300;
    snprintf(keys[i], sizeof keys[i], "k%05d", k);
    snprintf(vals[i], sizeof vals[i], "v%d", k);
    ops[i] = (tide_ckpt_op_t){keys[i], strlen(keys[i]), vals[i], strlen(vals[i])};
  }
  tide_ckpt_change_t ch[2] = {{"counts", 6, ops, 300}, {"other", 5, ops, 2}};
  T_EQ_INT(tide_ckpt_write_offsets(c, 0, "o0", 2, &err), 0);
  T_EQ_INT(tide_ckpt_commit(c, 0, "c0", 2, ch, 2, &err), 0);
  tide_buf_t last = TIDE_BUF_INIT;
  T_EQ_INT(scan_all(c, "counts", 7, &last), 300);
  T_CHECK(buf_is(&last, "k00299"));
  T_EQ_INT(scan_all(c, "counts", 1000, &last), 300);
  T_EQ_INT(scan_all(c, "other", 1, &last), 2);
  T_EQ_INT(scan_all(c, "nope", 10, &last), 0);

  /* deletes (also of absent keys) and puts of batch 1 */
  tide_ckpt_op_t ops1[3] = {{"k00000", 6, NULL, 0}, {"absent", 6, NULL, 0}, {"k00001", 6, "new", 3}};
  tide_ckpt_change_t ch1 = {"counts", 6, ops1, 3};
  T_EQ_INT(tide_ckpt_commit(c, 1, "c1", 2, &ch1, 1, &err), 0);
  T_EQ_INT(scan_all(c, "counts", 50, &last), 299);

  /* A failing commit writes nothing: state 'other' is changed first, then
   * a key too long for LMDB fails the change of 'bad'. */
  char big[600];
  memset(big, 'x', sizeof big);
  tide_ckpt_op_t okop = {"zzz", 3, "1", 1}, badop = {big, sizeof big, "1", 1};
  tide_ckpt_change_t ch2[2] = {{"other", 5, &okop, 1}, {"bad", 3, &badop, 1}};
  T_EQ_INT(tide_ckpt_commit(c, 2, "c2", 2, ch2, 2, &err), TIDE_EINVAL);
  T_CHECK(strstr(err.msg, "state 'bad': key must be 1..511 bytes, got 600") != NULL);
  /* the same with an error found inside the transaction: the commit entry
   * of batch 1 exists, so the states changed before are rolled back */
  tide_ckpt_change_t ch3 = {"other", 5, &okop, 1};
  T_EQ_INT(tide_ckpt_commit(c, 1, "c1", 2, &ch3, 1, &err), TIDE_EEXIST);
  T_EQ_INT(scan_all(c, "other", 10, &last), 2);
  T_CHECK(!buf_is(&last, "zzz"));
  tide_ckpt_stats_t st;
  tide_buf_t states = TIDE_BUF_INIT;
  T_EQ_INT(tide_ckpt_stats(c, &st, &states, &err), 0);
  T_EQ_INT(st.nstates, 2); /* 'bad' was never created */
  const tide_ckpt_state_stat_t *ss = (const tide_ckpt_state_stat_t *)states.data;
  T_EQ_STR(ss[0].name, "counts");
  T_EQ_INT(ss[0].entries, 299);
  T_CHECK(ss[0].bytes >= 4096);
  T_EQ_STR(ss[1].name, "other");
  T_EQ_INT(ss[1].entries, 2);
  T_EQ_INT(st.last_commit_id, 1);
  /* an empty state name is refused before anything is written */
  tide_ckpt_change_t ch4 = {"", 0, &okop, 1};
  T_EQ_INT(tide_ckpt_commit(c, 2, "c2", 2, &ch4, 1, &err), TIDE_EINVAL);
  tide_ckpt_close(c);
  tide_buf_free(&last);
  tide_buf_free(&states);
}

/* Another process, while an overlapped commit of batch 0 is in flight:
 * it sees offset entry 0 and neither commit entry 0 nor its state. */
static int child_sees_no_commit(const char *d) {
  tide_ckpt_t *x = NULL;
  tide_err_t e = {0, ""};
  tide_buf_t b = TIDE_BUF_INIT;
  int ok = tide_ckpt_open(d, TIDE_CKPT_READ_ONLY, &x, &e) == 0;
  ok = ok && tide_ckpt_offsets_get(x, 0, &b, &e) == 0 && buf_is(&b, "o0");
  ok = ok && tide_ckpt_commit_get(x, 0, &b, &e) == MDB_NOTFOUND;
  ok = ok && scan_all(x, "s", 10, &b) == 0;
  if (x) tide_ckpt_close(x);
  tide_buf_free(&b);
  return ok;
}

/* The overlapped commit (tide_ckpt_commit_start/finish/cancel): nothing of
 * it is visible or durable before the gate opens; meanwhile other calls
 * are refused, not blocked; finish writes the states and the entry
 * together (with the next offset entry when opened with one; a read
 * after the gate waits for it); cancel, a failure and a close in flight
 * write nothing; a
 * state larger than the map grows it from the commit's thread. */
static void test_commit_overlapped(void) {
  char d[512];
  snprintf(d, sizeof d, "%s", fresh("overlap"));
  tide_ckpt_t *c = open_ok(d, 0);
  tide_err_t err = {0, ""};
  tide_buf_t b = TIDE_BUF_INIT;
  tide_ckpt_op_t ops[2] = {{"a", 1, "1", 1}, {"b", 1, "2", 1}};
  tide_ckpt_change_t ch = {"s", 1, ops, 2};
  tide_ckpt_async_t *a = NULL;
  T_EQ_INT(tide_ckpt_write_offsets(c, 0, "o0", 2, &err), 0);
  T_EQ_INT(tide_ckpt_commit_start(c, 0, &ch, 1, &a, &err), 0);
  int64_t lo, lc;
  T_EQ_INT(tide_ckpt_latest(c, &lo, &lc, &err), -EBUSY);
  T_EQ_INT(tide_ckpt_commit(c, 0, "c0", 2, &ch, 1, &err), -EBUSY);
  T_CHECK(strstr(err.msg, "a commit is in flight") != NULL);
  T_CHECK(in_child(child_sees_no_commit, d));
  T_EQ_INT(tide_ckpt_commit_finish(a, "c0", 2, &err), 0);
  T_EQ_INT(tide_ckpt_latest(c, &lo, &lc, &err), 0);
  T_EQ_INT(lc, 0);
  T_EQ_INT(tide_ckpt_commit_get(c, 0, &b, &err), 0);
  T_CHECK(buf_is(&b, "c0"));
  T_EQ_INT(scan_all(c, "s", 10, &b), 2);

  /* cancelled: nothing of batch 1 */
  tide_ckpt_op_t ops1[2] = {{"a", 1, NULL, 0}, {"c", 1, "3", 1}};
  tide_ckpt_change_t ch1 = {"s", 1, ops1, 2};
  T_EQ_INT(tide_ckpt_write_offsets(c, 1, "o1", 2, &err), 0);
  T_EQ_INT(tide_ckpt_commit_start(c, 1, &ch1, 1, &a, &err), 0);
  tide_ckpt_commit_cancel(a);
  T_EQ_INT(tide_ckpt_latest(c, &lo, &lc, &err), 0);
  T_EQ_INT(lc, 0);
  T_EQ_INT(scan_all(c, "s", 10, &b), 2);
  T_CHECK(buf_is(&b, "b"));

  /* an existing commit entry: the error at finish, nothing written */
  T_EQ_INT(tide_ckpt_commit_start(c, 0, &ch1, 1, &a, &err), 0);
  T_EQ_INT(tide_ckpt_commit_finish(a, "c0", 2, &err), TIDE_EEXIST);
  T_CHECK(strstr(err.msg, "commit log 0 exists") != NULL);
  T_EQ_INT(scan_all(c, "s", 10, &b), 2);
  /* input checked before the thread starts */
  tide_ckpt_change_t bad = {"", 0, ops1, 2};
  T_EQ_INT(tide_ckpt_commit_start(c, 1, &bad, 1, &a, &err), TIDE_EINVAL);

  /* batch 1 for real, with a state far larger than the map (32 MiB) */
  enum { BIG = 60000, VLEN = 1000 };
  tide_ckpt_op_t *big = calloc(BIG, sizeof *big);
  unsigned char *keys = malloc(BIG * 8);
  char *val = malloc(VLEN);
  T_CHECK(big && keys && val);
  if (!big || !keys || !val) {
    free(big);
    free(keys);
    free(val);
    tide_ckpt_close(c);
    tide_buf_free(&b);
    return;
  }
  memset(val, 'v', VLEN);
  for (uint64_t i = 0; i < BIG; i++) {
    tide_ckpt_key_u64(keys + 8 * i, i);
    big[i] = (tide_ckpt_op_t){keys + 8 * i, 8, val, VLEN};
  }
  tide_ckpt_change_t chb[2] = {{"s", 1, ops1, 2}, {"big", 3, big, BIG}};
  T_EQ_INT(tide_ckpt_commit_start(c, 1, chb, 2, &a, &err), 0);
  T_EQ_INT(tide_ckpt_commit_finish(a, "c1", 2, &err), 0);
  T_EQ_INT(scan_all(c, "big", 4096, &b), BIG);
  T_EQ_INT(scan_all(c, "s", 10, &b), 2);
  T_CHECK(buf_is(&b, "c"));

  /* open with the next batch's offsets: a read meanwhile waits for the
   * commit, then sees commit 2 and offset entry 3 together */
  T_EQ_INT(tide_ckpt_write_offsets(c, 2, "o2", 2, &err), 0);
  T_EQ_INT(tide_ckpt_commit_start(c, 2, &ch, 1, &a, &err), 0);
  T_EQ_INT(tide_ckpt_commit_open(a, "c2", 2, "o3", 2, &err), 0);
  T_EQ_INT(tide_ckpt_latest(c, &lo, &lc, &err), 0); /* waited for the commit */
  T_EQ_INT(lo, 3);
  T_EQ_INT(lc, 2);
  T_EQ_INT(tide_ckpt_commit(c, 3, "c3", 2, NULL, 0, &err), -EBUSY); /* until commit_wait */
  T_EQ_INT(tide_ckpt_commit_wait(a, &err), 0);
  T_EQ_INT(tide_ckpt_offsets_get(c, 3, &b, &err), 0);
  T_CHECK(buf_is(&b, "o3"));
  /* an offset entry n + 1 already there: the commit fails whole */
  T_EQ_INT(tide_ckpt_write_offsets(c, 4, "o4", 2, &err), 0);
  T_EQ_INT(tide_ckpt_commit_start(c, 3, &ch1, 1, &a, &err), 0);
  T_EQ_INT(tide_ckpt_commit_open(a, "c3", 2, "o4", 2, &err), 0);
  T_EQ_INT(tide_ckpt_commit_wait(a, &err), TIDE_EEXIST);
  T_CHECK(strstr(err.msg, "commit 3: offset log 4: exists already") != NULL);
  T_EQ_INT(tide_ckpt_latest(c, &lo, &lc, &err), 0);
  T_EQ_INT(lc, 2);

  /* closed in flight: cancelled, nothing of batch 5 after a reopen */
  T_EQ_INT(tide_ckpt_write_offsets(c, 5, "o5", 2, &err), 0);
  T_EQ_INT(tide_ckpt_commit_start(c, 5, &ch, 1, &a, &err), 0);
  tide_ckpt_close(c);
  c = open_ok(d, 0);
  T_EQ_INT(tide_ckpt_latest(c, &lo, &lc, &err), 0);
  T_EQ_INT(lo, 5);
  T_EQ_INT(lc, 2);
  tide_ckpt_close(c);
  free(big);
  free(keys);
  free(val);
  tide_buf_free(&b);
}

static void test_purge(void) {
  tide_ckpt_t *c = open_ok(fresh("purge"), TIDE_CKPT_NOSYNC);
  tide_err_t err = {0, ""};
  for (uint64_t n = 0; n < 120; n++) {
    T_EQ_INT(tide_ckpt_write_offsets(c, n, "o", 1, &err), 0);
    if (n < 119) T_EQ_INT(tide_ckpt_commit(c, n, "c", 1, NULL, 0, &err), 0);
  }
  uint64_t removed = 0;
  T_EQ_INT(tide_ckpt_purge(c, 20, &removed, &err), 0);
  T_EQ_INT(removed, 40);
  T_EQ_INT(tide_ckpt_purge(c, 20, &removed, &err), 0);
  T_EQ_INT(removed, 0);
  tide_ckpt_stats_t st;
  tide_buf_t states = TIDE_BUF_INIT, b = TIDE_BUF_INIT;
  T_EQ_INT(tide_ckpt_stats(c, &st, &states, &err), 0);
  T_EQ_INT(st.offsets, 100);
  T_EQ_INT(st.commits, 99);
  T_EQ_INT(st.first_id, 20);
  T_EQ_INT(st.last_offset_id, 119);
  T_EQ_INT(st.last_commit_id, 118);
  T_EQ_INT(tide_ckpt_offsets_get(c, 19, &b, &err), MDB_NOTFOUND);
  T_EQ_INT(tide_ckpt_offsets_get(c, 20, &b, &err), 0);
  T_EQ_INT(tide_ckpt_purge(c, 1000, &removed, &err), 0);
  T_EQ_INT(removed, 199);
  int64_t lo, lc;
  T_EQ_INT(tide_ckpt_latest(c, &lo, &lc, &err), 0);
  T_EQ_INT(lo, -1);
  T_EQ_INT(lc, -1);
  tide_ckpt_close(c);
  tide_buf_free(&states);
  tide_buf_free(&b);
}

/* A state far larger than the initial 32 MiB map, in one commit and in
 * many: the map grows and nothing fails. */
static void test_map_growth(void) {
  char d[512];
  snprintf(d, sizeof d, "%s", fresh("big"));
  tide_ckpt_t *c = open_ok(d, TIDE_CKPT_NOSYNC);
  tide_err_t err = {0, ""};
  enum { N = 20000, VAL = 4000 };
  char *val = malloc(VAL);
  memset(val, 'v', VAL);
  char(*keys)[16] = malloc(N * sizeof *keys);
  tide_ckpt_op_t *ops = malloc(N * sizeof *ops);
  for (int i = 0; i < N; i++) {
    snprintf(keys[i], 16, "key%08d", i);
    ops[i] = (tide_ckpt_op_t){keys[i], 11, val, VAL};
  }
  tide_ckpt_change_t ch = {"big", 3, ops, N}; /* ~80 MB in one transaction */
  int rc = tide_ckpt_commit(c, 0, "c0", 2, &ch, 1, &err);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  T_EQ_INT(rc, 0);
  for (uint64_t n = 1; n <= 4; n++) { /* and in steps */
    for (int i = 0; i < N; i++) keys[i][3] = (char)('a' + n);
    T_EQ_INT(tide_ckpt_commit(c, n, "c", 1, &ch, 1, &err), 0);
  }
  tide_ckpt_stats_t st;
  tide_buf_t states = TIDE_BUF_INIT, last = TIDE_BUF_INIT;
  T_EQ_INT(tide_ckpt_stats(c, &st, &states, &err), 0);
  T_CHECK(st.map_bytes > (400u << 20));
  T_EQ_INT(((tide_ckpt_state_stat_t *)states.data)[0].entries, 5 * N);
  tide_ckpt_close(c);
  /* reopened: the grown map is adopted, everything is there */
  c = open_ok(d, TIDE_CKPT_NOSYNC);
  T_EQ_INT(scan_all(c, "big", 4096, &last), 5 * N);
  T_EQ_INT(tide_ckpt_commit(c, 5, "c", 1, &ch, 1, &err), 0);
  tide_ckpt_close(c);
  free(val);
  free(keys);
  free(ops);
  tide_buf_free(&states);
  tide_buf_free(&last);
}

/* In a child while the parent holds dir: the writable open is refused; a
 * read-only open works beside the running query and sees its data. */
static int child_while_held(const char *d) {
  tide_ckpt_t *x = NULL;
  tide_err_t e = {0, ""};
  int rc = tide_ckpt_open(d, 0, &x, &e);
  int ok = rc == -EBUSY && strstr(e.msg, "in use by another query") != NULL;
  rc = tide_ckpt_open(d, TIDE_CKPT_READ_ONLY, &x, &e);
  tide_buf_t b = TIDE_BUF_INIT;
  ok = ok && rc == 0 && tide_ckpt_offsets_get(x, 0, &b, &e) == 0 && buf_is(&b, "o0");
  ok = ok && tide_ckpt_write_offsets(x, 1, "o1", 2, &e) == TIDE_EINVAL;
  if (x) tide_ckpt_close(x);
  tide_buf_free(&b);
  if (!ok) fprintf(stderr, "child: %s\n", e.msg);
  return ok;
}

static int child_after_release(const char *d) {
  tide_ckpt_t *x = NULL;
  tide_err_t e = {0, ""};
  int rc = tide_ckpt_open(d, 0, &x, &e);
  if (!rc) rc = tide_ckpt_write_offsets(x, 1, "o1", 2, &e);
  tide_ckpt_close(x);
  if (rc) fprintf(stderr, "child: %s\n", e.msg);
  return rc == 0;
}

static void test_lock(void) {
  char d[512];
  snprintf(d, sizeof d, "%s", fresh("locked"));
  tide_ckpt_t *c = open_ok(d, 0), *c2 = NULL;
  tide_err_t err = {0, ""};
  /* the same process */
  T_EQ_INT(tide_ckpt_open(d, 0, &c2, &err), -EBUSY);
  T_CHECK(c2 == NULL);
  char want[600];
  snprintf(want, sizeof want, "checkpoint %s: in use by another query", d);
  T_EQ_STR(err.msg, want);
  /* read-only in the process that holds it: refused (LMDB must not have
   * one environment open twice in a process) */
  T_EQ_INT(tide_ckpt_open(d, TIDE_CKPT_READ_ONLY, &c2, &err), -EBUSY);
  T_CHECK(strstr(err.msg, "open by a query of this process") != NULL);
  T_EQ_INT(tide_ckpt_write_offsets(c, 0, "o0", 2, &err), 0);
  /* a forked process: refused while held; read-only works beside it */
  T_CHECK(in_child(child_while_held, d));
  tide_ckpt_close(c);
  /* released: another process opens it now */
  T_CHECK(in_child(child_after_release, d));
  /* and so does this one, also read-only */
  c = open_ok(d, TIDE_CKPT_READ_ONLY);
  tide_buf_t b = TIDE_BUF_INIT;
  T_EQ_INT(tide_ckpt_offsets_get(c, 1, &b, &err), 0);
  T_CHECK(buf_is(&b, "o1"));
  T_EQ_INT(tide_ckpt_commit(c, 0, "c", 1, NULL, 0, &err), TIDE_EINVAL);
  T_CHECK(strstr(err.msg, "opened read-only") != NULL);
  tide_ckpt_close(c);
  c = open_ok(d, 0);
  tide_ckpt_close(c);
  tide_buf_free(&b);
}

static void test_bad_dirs(void) {
  tide_ckpt_t *c = NULL;
  tide_err_t err = {0, ""};
  char want[700], d[512];
  /* a file where the directory should be */
  snprintf(d, sizeof d, "%s", fresh("file"));
  FILE *f = fopen(d, "w");
  fputs("x", f);
  fclose(f);
  T_EQ_INT(tide_ckpt_open(d, 0, &c, &err), -ENOTDIR);
  snprintf(want, sizeof want, "checkpoint %s: not a directory", d);
  T_EQ_STR(err.msg, want);
  /* ... or in its path */
  char sub[600];
  snprintf(sub, sizeof sub, "%s/sub", d);
  T_EQ_INT(tide_ckpt_open(sub, 0, &c, &err), -ENOTDIR);
  snprintf(want, sizeof want, "checkpoint %s: cannot create the directory: Not a directory", sub);
  T_EQ_STR(err.msg, want);
  /* read-only: nothing there */
  snprintf(d, sizeof d, "%s", fresh("missing"));
  T_EQ_INT(tide_ckpt_open(d, TIDE_CKPT_READ_ONLY, &c, &err), -ENOENT);
  snprintf(want, sizeof want, "checkpoint %s: No such file or directory", d);
  T_EQ_STR(err.msg, want);
  T_EQ_INT(mkdir(d, 0777), 0);
  T_EQ_INT(tide_ckpt_open(d, TIDE_CKPT_READ_ONLY, &c, &err), -ENOENT);
  snprintf(want, sizeof want, "checkpoint %s: no checkpoint here (no data.mdb)", d);
  T_EQ_STR(err.msg, want);
  /* a data.mdb that is not LMDB's */
  char data[600];
  snprintf(data, sizeof data, "%s/data.mdb", d);
  f = fopen(data, "w");
  for (int i = 0; i < 3000; i++) fputs("garbage ", f);
  fclose(f);
  T_EQ_INT(tide_ckpt_open(d, 0, &c, &err), MDB_INVALID);
  snprintf(want, sizeof want, "checkpoint %s: cannot open data.mdb: MDB_INVALID: File is not an LMDB file", d);
  T_EQ_STR(err.msg, want);
  T_EQ_INT(tide_ckpt_open(d, TIDE_CKPT_READ_ONLY, &c, &err), MDB_INVALID);
  T_CHECK(c == NULL);
  /* a truncated one */
  snprintf(d, sizeof d, "%s", fresh("trunc"));
  c = open_ok(d, 0);
  char val[3000];
  memset(val, 'x', sizeof val);
  char keys[200][16];
  tide_ckpt_op_t ops[200];
  for (int i = 0; i < 200; i++) {
    snprintf(keys[i], sizeof keys[i], "k%03d", i);
    ops[i] = (tide_ckpt_op_t){keys[i], 4, val, sizeof val};
  }
  tide_ckpt_change_t ch = {"s", 1, ops, 200};
  T_EQ_INT(tide_ckpt_commit(c, 0, "c", 1, &ch, 1, &err), 0);
  tide_ckpt_close(c);
  snprintf(data, sizeof data, "%s/data.mdb", d);
  T_EQ_INT(truncate(data, 16384), 0);
  T_EQ_INT(tide_ckpt_open(d, 0, &c, &err), TIDE_ECORRUPT);
  T_CHECK(strstr(err.msg, "data.mdb is truncated (16384 bytes") != NULL);
  /* directories no one may write, even root: sysfs */
  c = NULL;
  T_CHECK(tide_ckpt_open("/sys/tide_test_ckpt/q", 0, &c, &err) < 0);
  const char *pre = "checkpoint /sys/tide_test_ckpt/q: cannot create the directory: ";
  T_CHECK(!strncmp(err.msg, pre, strlen(pre)));
  T_CHECK(tide_ckpt_open("/sys/kernel", 0, &c, &err) < 0);
  pre = "checkpoint /sys/kernel: cannot open query.lock: ";
  T_CHECK(!strncmp(err.msg, pre, strlen(pre)));
  T_CHECK(c == NULL);
}


/* ------------------------------------------------------- state index --- */

typedef struct seen {
  uint64_t ids[64];
  char vals[64][16];
  int n;
} seen_t;

static int note_val(void *arg, uint64_t id, const void *val, size_t len, tide_err_t *err) {
  (void)err;
  seen_t *s = arg;
  if (s->n < 64) {
    s->ids[s->n] = id;
    snprintf(s->vals[s->n], sizeof s->vals[0], "%.*s", (int)len, (const char *)val);
  }
  s->n++;
  return 0;
}

static int stop_at_first(void *arg, uint64_t id, const void *val, size_t len, tide_err_t *err) {
  (void)arg, (void)id, (void)val, (void)len;
  return tide_err_set(err, TIDE_ECORRUPT, "stopped");
}

/* Records by id and index runs of (hash, id) -> "": lookups through the
 * runs by hash prefix (a hash may name several ids; an entry whose id has
 * no record is skipped), the tail of a state, merging runs in key order
 * (dropping entries of deleted ids with gc) with the sources dropped. */
static void test_state_index(void) {
  tide_ckpt_t *c = open_ok(fresh("index"), 0);
  tide_err_t err = {0, ""};
  unsigned char rk[40][8], ik[40][16];
  char rv[40][16];
  tide_ckpt_op_t rec[40], run1[20], run2[20];
  for (int i = 0; i < 40; i++) {
    uint64_t id = (uint64_t)i + 1, hash = (uint64_t)(i % 13) * 1000; /* hashes shared by up to 4 ids */
    tide_ckpt_key_u64(rk[i], id);
    snprintf(rv[i], sizeof rv[i], "r%d", i + 1);
    rec[i] = (tide_ckpt_op_t){rk[i], 8, rv[i], strlen(rv[i])};
    tide_ckpt_key_u64(ik[i], hash);
    tide_ckpt_key_u64(ik[i] + 8, id);
  }
  /* each run in key order: ids 1..20 and 21..40 sorted by (hash, id) */
  int n1 = 0, n2 = 0;
  for (int h = 0; h < 13; h++)
    for (int i = 0; i < 40; i++)
      if (i % 13 == h) {
        if (i < 20) run1[n1++] = (tide_ckpt_op_t){ik[i], 16, "", 0};
        else run2[n2++] = (tide_ckpt_op_t){ik[i], 16, "", 0};
      }
  tide_ckpt_change_t ch[3] = {{"r", 1, rec, 39}, {"r.keys.1-21", 11, run1, 20}, {"r.keys.21-41", 12, run2, 20}};
  T_EQ_INT(tide_ckpt_commit(c, 0, "c0", 2, ch, 3, &err), 0); /* id 40 has no record */
  uint64_t entries, last;
  T_EQ_INT(tide_ckpt_state_tail(c, "r", 1, &entries, &last, &err), 0);
  T_EQ_INT(entries, 39);
  T_EQ_INT(last, 39);
  T_EQ_INT(tide_ckpt_state_tail(c, "none", 4, &entries, &last, &err), 0);
  T_EQ_INT(entries, 0);
  /* hash 0: ids 1, 14 in run 1; 27, 40 in run 2 (40: no record) */
  uint64_t want[2] = {0, 12000};
  seen_t s;
  memset(&s, 0, sizeof s);
  T_EQ_INT(tide_ckpt_state_lookup(c, "r", 1, "r.keys.1-21", 11, want, 2, note_val, &s, &err), 0);
  T_EQ_INT(s.n, 3); /* 1, 14; 13 */
  T_EQ_INT(s.ids[0], 1);
  T_EQ_INT(s.ids[1], 14);
  T_EQ_INT(s.ids[2], 13);
  T_EQ_STR(s.vals[1], "r14");
  memset(&s, 0, sizeof s);
  T_EQ_INT(tide_ckpt_state_lookup(c, "r", 1, "r.keys.21-41", 12, want, 1, note_val, &s, &err), 0);
  T_EQ_INT(s.n, 1);
  T_EQ_INT(s.ids[0], 27);
  T_EQ_INT(tide_ckpt_state_lookup(c, "r", 1, "r.keys.21-41", 12, want, 1, stop_at_first, NULL, &err), TIDE_ECORRUPT);
  T_EQ_STR(err.msg, "stopped");
  T_EQ_INT(tide_ckpt_state_lookup(c, "r", 1, "absent", 6, want, 2, note_val, &s, &err), 0);
  /* merge both runs: 40 entries, in key order; with gc, 39 */
  const char *srcs[2] = {"r.keys.1-21", "r.keys.21-41"};
  size_t lens[2] = {11, 12};
  uint64_t count = 0;
  T_EQ_INT(tide_ckpt_index_merge(c, "r", 1, srcs, lens, 2, "r.keys.1-41", 11, 1, &count, &err), 0);
  T_EQ_INT(count, 39);
  T_EQ_INT(tide_ckpt_state_tail(c, "r.keys.21-41", 12, &entries, &last, &err), 0);
  T_EQ_INT(entries, 0); /* dropped */
  tide_buf_t lastk = TIDE_BUF_INIT;
  T_EQ_INT(scan_all(c, "r.keys.1-41", 5, &lastk), 39);
  T_CHECK(lastk.len == 16 && !memcmp(lastk.data, ik[38], 16)); /* hash 12000, id 39: the largest */
  memset(&s, 0, sizeof s);
  T_EQ_INT(tide_ckpt_state_lookup(c, "r", 1, "r.keys.1-41", 11, want, 1, note_val, &s, &err), 0);
  T_EQ_INT(s.n, 3); /* 1, 14, 27 */
  /* a merge with nothing left drops its output too */
  tide_ckpt_op_t dels[39];
  for (int i = 0; i < 39; i++) dels[i] = (tide_ckpt_op_t){rk[i], 8, NULL, 0};
  tide_ckpt_change_t ch2[1] = {{"r", 1, dels, 39}};
  T_EQ_INT(tide_ckpt_commit(c, 1, "c1", 2, ch2, 1, &err), 0);
  const char *one[1] = {"r.keys.1-41"};
  size_t onel[1] = {11};
  T_EQ_INT(tide_ckpt_index_merge(c, "r", 1, one, onel, 1, "r.keys.1-42", 11, 1, &count, &err), 0);
  T_EQ_INT(count, 0);
  T_EQ_INT(tide_ckpt_state_tail(c, "r.keys.1-42", 11, &entries, &last, &err), 0);
  T_EQ_INT(entries, 0);
  tide_buf_free(&lastk);
  tide_ckpt_close(c);
}


/* n rows of "x int": x = first, first + 1, ... */
static tide_batch_t *int_rows(tide_schema_t *s, uint32_t n, int64_t first) {
  tide_batch_t *b = tide_batch_new(s, n);
  for (uint32_t i = 0; i < n; i++) {
    T_EQ_INT(tide_batch_row_begin(b), 0);
    tide_batch_set_i64(b, 0, first + i);
    tide_batch_row_commit(b);
  }
  return b;
}

static uint64_t topic_end(tide_topic_t *t) {
  uint64_t earliest, end;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_topic_offsets(t, &earliest, &end, &err), 0);
  return end;
}

/* The deferred sink (store.h tide_append_start, ckpt.h
 * tide_ckpt_commit_after): batch n's append runs on a thread of its own
 * and its commit is taken only once the append is durable; an append that
 * fails cancels the commit (nothing of batch n, nor the next offsets);
 * holds are released on every path (cancel before the gate, a store
 * closed with an append in flight). */
static void test_commit_after_append(void) {
  char d[512], sd[512], seg[1024];
  snprintf(d, sizeof d, "%s", fresh("after"));
  snprintf(sd, sizeof sd, "%s", fresh("after-store"));
  tide_err_t err = {0, ""};
  tide_store_t *st = NULL;
  tide_store_opts_t so = {1, 0, NULL};
  T_EQ_INT(tide_store_open(sd, &so, &st, &err), 0);
  tide_schema_t *s = NULL;
  T_EQ_INT(tide_schema_parse_ddl("x int", 5, &s, &err), 0);
  tide_topic_opts_t to = {0};
  to.partitions = 1;
  to.schema = s;
  to.retention_ms = to.retention_bytes = to.segment_ms = -1;
  T_EQ_INT(tide_store_create_topic(st, "out", &to, &err), 0);
  tide_topic_t *t = NULL;
  T_EQ_INT(tide_store_topic(st, "out", &t, &err), 0);
  const tide_topic_info_t *info;
  T_EQ_INT(tide_topic_info(t, &info, &err), 0);
  snprintf(seg, sizeof seg, "%s/topics/%u/p0/%020d.seg", sd, info->id, 0);
  tide_ckpt_t *c = open_ok(d, 0);
  tide_ckpt_op_t ops[1] = {{"k", 1, "1", 1}};
  tide_ckpt_change_t ch = {"s", 1, ops, 1};
  tide_ckpt_async_t *a = NULL;
  tide_range_t rg[1];
  uint32_t nr = 9;
  int skipped = -1;
  int64_t lo, lc;

  /* batch 0: the commit waits for the append, then both are there */
  T_EQ_INT(tide_ckpt_write_offsets(c, 0, "o0", 2, &err), 0);
  T_EQ_INT(tide_ckpt_commit_start(c, 0, &ch, 1, &a, &err), 0);
  tide_batch_t *b = int_rows(s, 1000, 0);
  T_EQ_INT(tide_append_start(t, &b, 1, -1, "w", 1, 0, &err), 0); /* b is the job's now */
  T_EQ_INT(tide_append_pending(st), 1);
  b = int_rows(s, 1, 0);
  T_EQ_INT(tide_append_start(t, &b, 1, -1, "w", 1, 1, &err), -EBUSY); /* one at a time; b freed */
  T_CHECK(strstr(err.msg, "an append is in flight") != NULL);
  tide_ckpt_commit_after(a, tide_append_release, tide_append_hold(st));
  T_EQ_INT(tide_ckpt_commit_open(a, "c0", 2, "o1", 2, &err), 0);
  T_EQ_INT(topic_end(t), 1000); /* a call on the store waits for the append */
  T_EQ_INT(tide_ckpt_commit_wait(a, &err), 0);
  T_EQ_INT(tide_append_finish(st, rg, &nr, &skipped, &err), 0);
  T_EQ_INT(nr, 1);
  T_EQ_INT(skipped, 0);
  T_EQ_INT(rg[0].first, 0);
  T_EQ_INT(rg[0].end, 1000);
  T_EQ_INT(tide_append_pending(st), 0);
  T_EQ_INT(tide_append_finish(st, rg, &nr, &skipped, &err), TIDE_EINVAL);
  T_EQ_INT(tide_ckpt_latest(c, &lo, &lc, &err), 0);
  T_EQ_INT(lo, 1);
  T_EQ_INT(lc, 0);

  /* batch 0 again (a replay): skipped, nothing written */
  b = int_rows(s, 5, 0);
  T_EQ_INT(tide_append_start(t, &b, 1, -1, "w", 1, 0, &err), 0);
  T_EQ_INT(tide_append_finish(st, rg, &nr, &skipped, &err), 0);
  T_EQ_INT(skipped, 1);
  T_EQ_INT(nr, 0);
  T_EQ_INT(topic_end(t), 1000);

  /* batch 1: its segment is gone, the append fails: commit 1 is cancelled,
   * and neither it nor offset entry 2 is written */
  T_EQ_INT(unlink(seg), 0);
  T_EQ_INT(tide_ckpt_commit_start(c, 1, &ch, 1, &a, &err), 0);
  b = int_rows(s, 10, 1000);
  T_EQ_INT(tide_append_start(t, &b, 1, -1, "w", 1, 1, &err), 0);
  tide_ckpt_commit_after(a, tide_append_release, tide_append_hold(st));
  T_EQ_INT(tide_ckpt_commit_open(a, "c1", 2, "o2", 2, &err), 0);
  T_EQ_INT(tide_ckpt_commit_wait(a, &err), -ECANCELED);
  T_CHECK(strstr(err.msg, "commit 1: cancelled: the batch's output failed") != NULL);
  T_EQ_INT(tide_append_finish(st, rg, &nr, &skipped, &err), TIDE_ECORRUPT);
  T_CHECK(strstr(err.msg, "topic 'out' partition 0: cannot open segment") != NULL);
  T_EQ_INT(nr, 0);
  T_EQ_INT(tide_ckpt_latest(c, &lo, &lc, &err), 0);
  T_EQ_INT(lo, 1);
  T_EQ_INT(lc, 0);
  tide_buf_t tb = TIDE_BUF_INIT;
  T_EQ_INT(tide_ckpt_offsets_get(c, 2, &tb, &err), MDB_NOTFOUND);
  tide_buf_free(&tb);

  /* cancelled before the gate opened: the hold is released all the same */
  T_EQ_INT(tide_ckpt_commit_start(c, 1, &ch, 1, &a, &err), 0);
  b = int_rows(s, 3, 0);
  T_EQ_INT(tide_append_start(t, &b, 1, -1, "w", 1, 1, &err), 0);
  tide_ckpt_commit_after(a, tide_append_release, tide_append_hold(st));
  tide_ckpt_commit_cancel(a);
  T_EQ_INT(tide_append_finish(st, rg, &nr, &skipped, &err), TIDE_ECORRUPT);

  /* a store closed with an append in flight joins it (valgrind: no leak) */
  b = int_rows(s, 3, 0);
  T_EQ_INT(tide_append_start(t, &b, 1, -1, NULL, 0, 0, &err), 0);
  tide_store_close(st);
  tide_schema_unref(s);
  tide_ckpt_close(c);
}

int main(void) {
  snprintf(root, sizeof root, "/tmp/test_ckpt.XXXXXX");
  if (!mkdtemp(root)) return 2;
  int fds = t_count_fds();
  T_RUN(test_open_entries_reopen);
  T_RUN(test_commit_states);
  T_RUN(test_commit_overlapped);
  T_RUN(test_purge);
  T_RUN(test_map_growth);
  T_RUN(test_lock);
  T_RUN(test_bad_dirs);
  T_RUN(test_state_index);
  T_RUN(test_commit_after_append);
  T_EQ_INT(t_count_fds(), fds);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd)) fprintf(stderr, "cannot remove %s\n", root);
  T_DONE();
}
