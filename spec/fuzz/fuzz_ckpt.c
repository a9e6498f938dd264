/*
 * fuzz_ckpt.c: checkpoint log entries and state changes (core/ckpt.c)
 * through a real checkpoint (LMDB, without fsync, in a temporary
 * directory made once per process and removed at exit). The input is
 * read as: a log entry's text (1 length byte, then the bytes), then state
 * changes, each a state name, a key and a value (1 length byte each; a
 * value length of 255 means a delete). Entry n (one per input) is written
 * to the offset log, then committed with the changes in one transaction,
 * or refused as a whole; both logs must give back the exact text, and
 * every state a committed change touched must scan back in key order with
 * the last value put under each key.
 */
#include <unistd.h>

#include "buf.h"
#include <lmdb.h>

#include "ckpt.h"
#include "fuzz.h"

static tide_ckpt_t *ck;
static char dir[] = "/tmp/tide-fuzz-ckpt-XXXXXX";
static uint64_t next_n;

static void cleanup(void) {
  tide_ckpt_close(ck);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) { /* best effort */ }
}

/* Take a length-prefixed field from *p; 0 at the end of the input. */
static int field(const uint8_t **p, const uint8_t *end, const uint8_t **f, size_t *n, int *del) {
  if (*p >= end) return 0;
  size_t len = **p;
  (*p)++;
  if (del) *del = len == 255;
  if (len == 255) len = 0;
  if (len > (size_t)(end - *p)) len = (size_t)(end - *p);
  *f = *p;
  *n = len;
  *p += len;
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192) return 0;
  tide_err_t err = {0, ""};
  if (!ck) {
    FUZZ_CHECK(mkdtemp(dir), "mkdtemp");
    FUZZ_CHECK(tide_ckpt_open(dir, TIDE_CKPT_NOSYNC, &ck, &err) == 0, "%s", err.msg);
    atexit(cleanup);
  }
  const uint8_t *p = data, *end = data + size, *text = (const uint8_t *)"";
  size_t tlen = 0;
  field(&p, end, &text, &tlen, NULL);
  tide_ckpt_op_t ops[16];
  tide_ckpt_change_t ch[16];
  size_t nch = 0;
  while (nch < 16) {
    const uint8_t *name, *key, *val;
    size_t nl, kl, vl;
    int del;
    if (!field(&p, end, &name, &nl, NULL) || !field(&p, end, &key, &kl, NULL) || !field(&p, end, &val, &vl, &del))
      break;
    ops[nch] = (tide_ckpt_op_t){key, kl, del ? NULL : (const void *)val, vl};
    ch[nch] = (tide_ckpt_change_t){(const char *)name, nl, &ops[nch], 1};
    nch++;
  }
  uint64_t n = next_n++;
  tide_buf_t got = {0};
  if (tide_ckpt_write_offsets(ck, n, text, tlen, &err) == 0) {
    FUZZ_CHECK(tide_ckpt_offsets_get(ck, n, &got, &err) == 0, "offsets_get: %s", err.msg);
    FUZZ_CHECK(got.len == tlen && (!tlen || !memcmp(got.data, text, tlen)), "offset entry changed");
  }
  if (tide_ckpt_commit(ck, n, text, tlen, ch, nch, &err) == 0) {
    FUZZ_CHECK(tide_ckpt_commit_get(ck, n, &got, &err) == 0, "commit_get: %s", err.msg);
    FUZZ_CHECK(got.len == tlen && (!tlen || !memcmp(got.data, text, tlen)), "commit entry changed");
    for (size_t i = 0; i < nch; i++) {
      /* the last change of this input to the same state and key decides */
      const tide_ckpt_op_t *last = &ops[i];
      for (size_t j = i + 1; j < nch; j++)
        if (ch[j].state_len == ch[i].state_len && !memcmp(ch[j].state, ch[i].state, ch[i].state_len) &&
            ops[j].klen == ops[i].klen && !memcmp(ops[j].key, ops[i].key, ops[i].klen))
          last = &ops[j];
      tide_buf_t recs = {0};
      size_t nrec = 0;
      int done = 0, found = 0;
      FUZZ_CHECK(tide_ckpt_state_scan(ck, ch[i].state, ch[i].state_len, NULL, 0, SIZE_MAX, SIZE_MAX, &recs, &nrec,
                                      &done, &err) == 0,
                 "scan: %s", err.msg);
      FUZZ_CHECK(done, "a whole scan is done");
      const char *r = recs.data, *prev = NULL;
      size_t prevl = 0;
      for (size_t k = 0; k < nrec; k++) {
        size_t kl, vl;
        memcpy(&kl, r, sizeof kl);
        memcpy(&vl, r + sizeof kl, sizeof vl);
        const char *kp = r + 2 * sizeof(size_t), *vp = kp + kl;
        if (prev) {
          size_t m = prevl < kl ? prevl : kl;
          int c = memcmp(prev, kp, m);
          FUZZ_CHECK(c < 0 || (c == 0 && prevl < kl), "keys out of order");
        }
        if (kl == last->klen && !memcmp(kp, last->key, kl)) {
          found = 1;
          FUZZ_CHECK(last->val && vl == last->vlen && (!vl || !memcmp(vp, last->val, vl)), "value changed");
        }
        prev = kp;
        prevl = kl;
        r = vp + vl;
      }
      FUZZ_CHECK(found == (last->val != NULL), "key %s", found ? "deleted but found" : "put but missing");
      tide_buf_free(&recs);
    }
  } else {
    FUZZ_CHECK(err.msg[0], "a refused commit says why");
    FUZZ_CHECK(tide_ckpt_commit_get(ck, n, &got, NULL) == MDB_NOTFOUND, "a refused commit wrote its entry");
  }
  tide_buf_free(&got);
  return 0;
}
