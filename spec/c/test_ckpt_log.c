/*
 * test_ckpt_log.c: checksums of offset- and commit-log entries (core/ckpt.c,
 * docs/FORMAT.md "Query checkpoints"). Entries are written through
 * tide_ckpt, then their stored bytes are read and changed with LMDB itself
 * (the checkpoint closed meanwhile): every single flipped bit of an entry is
 * refused naming the checkpoint, the log and the batch; an entry written
 * before checksums (the JSON text alone) reads back as it is. Ends by
 * proving that no file descriptor is left open.
 */
#include <dirent.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "crc32c.h"
#include "t.h"

static char root[256];

/* Read (new == NULL) or replace the stored value of entry n of database
 * db ("offsets" or "commits"), through LMDB directly. Returns its length. */
static size_t raw(const char *dir, const char *db, uint64_t n, unsigned char *out, size_t cap,
                  const unsigned char *new, size_t nlen) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  unsigned char key[8];
  tide_ckpt_key_u64(key, n);
  MDB_val k = {8, key}, v;
  size_t len = 0;
  T_EQ_INT(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 8);
  T_EQ_INT(mdb_env_open(env, dir, 0, 0644), 0);
  T_EQ_INT(mdb_txn_begin(env, NULL, 0, &txn), 0);
  T_EQ_INT(mdb_dbi_open(txn, db, 0, &dbi), 0);
  if (new) {
    v.mv_size = nlen;
    v.mv_data = (void *)new;
    T_EQ_INT(mdb_put(txn, dbi, &k, &v, 0), 0);
  } else if (mdb_get(txn, dbi, &k, &v) == 0) {
    len = v.mv_size;
    memcpy(out, v.mv_data, len < cap ? len : cap);
  }
  T_EQ_INT(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  return len;
}

static tide_ckpt_t *open_ok(const char *dir) {
  tide_ckpt_t *c = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_ckpt_open(dir, TIDE_CKPT_NOSYNC, &c, &err), 0);
  return c;
}

static void test_framed_and_flipped(void) {
  char dir[300];
  snprintf(dir, sizeof dir, "%s/flip", root);
  const char *off = "{\"batch_id\":3,\"sources\":[{\"end\":{\"rows\":5}}],\"watermark\":0}";
  const char *com = "{\"batch_id\":3,\"next_watermark\":0,\"v\":1}";
  tide_ckpt_t *c = open_ok(dir);
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_ckpt_write_offsets(c, 3, off, strlen(off), &err), 0);
  T_EQ_INT(tide_ckpt_commit(c, 3, com, strlen(com), NULL, 0, &err), 0);
  tide_ckpt_close(c);

  /* stored: 0x01, CRC-32C of the text (LE), the text */
  const char *texts[2] = {off, com}, *dbs[2] = {"offsets", "commits"}, *logs[2] = {"offset log", "commit log"};
  for (int which = 0; which < 2; which++) {
    unsigned char v[256], good[256];
    size_t len = raw(dir, dbs[which], 3, v, sizeof v, NULL, 0), tlen = strlen(texts[which]);
    T_EQ_INT(len, tlen + 5);
    T_EQ_INT(v[0], 1);
    uint32_t crc = tide_crc32c(0, texts[which], tlen);
    T_CHECK(v[1] == (crc & 0xff) && v[2] == ((crc >> 8) & 0xff) && v[3] == ((crc >> 16) & 0xff) && v[4] == crc >> 24);
    T_CHECK(!memcmp(v + 5, texts[which], tlen));
    memcpy(good, v, len);
    /* every bit of the entry, one at a time */
    char want[512];
    for (size_t bit = 0; bit < len * 8; bit += 7) {
      memcpy(v, good, len);
      v[bit / 8] ^= (unsigned char)(1u << (bit % 8));
      raw(dir, dbs[which], 3, NULL, 0, v, len);
      c = open_ok(dir);
      tide_buf_t out = {0};
      int rc = which ? tide_ckpt_commit_get(c, 3, &out, &err) : tide_ckpt_offsets_get(c, 3, &out, &err);
      T_EQ_INT(rc, TIDE_ECORRUPT);
      snprintf(want, sizeof want, "checkpoint %s: %s, batch 3: damaged entry (%s)", dir, logs[which],
               bit < 8 ? "unknown entry format" : "checksum mismatch");
      T_EQ_STR(err.msg, want);
      if (!which) { /* writing the same offsets again does not pass over the damage */
        T_EQ_INT(tide_ckpt_write_offsets(c, 3, off, strlen(off), &err), TIDE_ECORRUPT);
        T_EQ_STR(err.msg, want);
      }
      tide_buf_free(&out);
      tide_ckpt_close(c);
    }
    raw(dir, dbs[which], 3, NULL, 0, good, len);
  }
  c = open_ok(dir);
  tide_buf_t out = {0};
  T_EQ_INT(tide_ckpt_offsets_get(c, 3, &out, &err), 0);
  T_CHECK(out.len == strlen(off) && !memcmp(out.data, off, out.len));
  T_EQ_INT(tide_ckpt_write_offsets(c, 3, off, strlen(off), &err), 0); /* the same text: no error */
  tide_buf_free(&out);
  tide_ckpt_close(c);
}

/* An entry of a checkpoint written before checksums: the text alone. */
static void test_old_entries(void) {
  char dir[300];
  snprintf(dir, sizeof dir, "%s/old", root);
  const char *off = "{\"batch_id\":0,\"watermark\":0}";
  tide_ckpt_t *c = open_ok(dir);
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_ckpt_write_offsets(c, 0, off, strlen(off), &err), 0);
  tide_ckpt_close(c);
  raw(dir, "offsets", 0, NULL, 0, (const unsigned char *)off, strlen(off));
  c = open_ok(dir);
  tide_buf_t out = {0};
  T_EQ_INT(tide_ckpt_offsets_get(c, 0, &out, &err), 0);
  T_CHECK(out.len == strlen(off) && !memcmp(out.data, off, out.len));
  T_EQ_INT(tide_ckpt_write_offsets(c, 0, off, strlen(off), &err), 0);
  T_EQ_INT(tide_ckpt_write_offsets(c, 0, "{}", 2, &err), TIDE_EEXIST);
  /* the next entries are written with their checksum */
  T_EQ_INT(tide_ckpt_write_offsets(c, 1, off, strlen(off), &err), 0);
  tide_buf_free(&out);
  tide_ckpt_close(c);
  unsigned char v[64];
  T_EQ_INT(raw(dir, "offsets", 1, v, sizeof v, NULL, 0), strlen(off) + 5);
  T_EQ_INT(v[0], 1);
}

int main(void) {
  snprintf(root, sizeof root, "/tmp/test_ckpt_log.XXXXXX");
  if (!mkdtemp(root)) return 2;
  int fds = t_count_fds();
  T_RUN(test_framed_and_flipped);
  T_RUN(test_old_entries);
  T_EQ_INT(t_count_fds(), fds);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  if (system(cmd)) fprintf(stderr, "cannot remove %s\n", root);
  T_DONE();
}
