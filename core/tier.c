/*
 * tier.c: compress sealed segments into the cold tier and read them back.
 */
#include "tier.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

/* Read exactly n bytes at offset 0 of fd into p. */
static int read_all(int fd, char *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = pread(fd, p + got, n - got, (off_t)got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) return TIDE_ECORRUPT;
    got += (size_t)r;
  }
  return 0;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int sync_parent(const char *path) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", path);
  int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) < 0 ? -errno : 0;
  close(fd);
  return rc;
}

int tide_tier_put(const char *src, uint64_t len, const char *dst, int sync, uint64_t *stored, tide_err_t *err) {
  char tmp[4096];
  char *in = NULL, *out = NULL;
  int fd = -1, rc;
  ZSTD_CCtx *cctx = NULL;
  snprintf(tmp, sizeof tmp, "%s.tmp", dst);
  if ((fd = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
    rc = -errno;
    tide_err_set(err, rc, "cannot open %s: %s", src, tide_strerror(rc));
    goto done;
  }
  size_t bound = ZSTD_compressBound(len);
  if (!(in = malloc(len ? len : 1)) || !(out = malloc(bound)) || !(cctx = ZSTD_createCCtx())) {
    rc = tide_err_set(err, -ENOMEM, "out of memory compressing %s", src);
    goto done;
  }
  if ((rc = read_all(fd, in, len))) {
    tide_err_set(err, rc, "cannot read %s: %s", src, tide_strerror(rc));
    goto done;
  }
  close(fd);
  fd = -1;
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, TIDE_TIER_LEVEL);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1);
  size_t z = ZSTD_compress2(cctx, out, bound, in, len);
  if (ZSTD_isError(z)) {
    rc = tide_err_set(err, TIDE_EINVAL, "zstd: %s", ZSTD_getErrorName(z));
    goto done;
  }
  if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666)) < 0) {
    rc = -errno;
    tide_err_set(err, rc, "cannot create %s: %s", tmp, tide_strerror(rc));
    goto done;
  }
  if ((rc = write_all(fd, out, z)) || (sync && fdatasync(fd) < 0 && (rc = -errno))) {
    tide_err_set(err, rc, "cannot write %s: %s", tmp, tide_strerror(rc));
    goto done;
  }
  close(fd);
  fd = -1;
  if (rename(tmp, dst) < 0) {
    rc = -errno;
    tide_err_set(err, rc, "cannot rename %s: %s", tmp, tide_strerror(rc));
    goto done;
  }
  if (sync && (rc = sync_parent(dst))) {
    tide_err_set(err, rc, "cannot sync the directory of %s: %s", dst, tide_strerror(rc));
    goto done;
  }
  *stored = z;
  rc = 0;
done:
  if (fd >= 0) close(fd);
  if (rc) unlink(tmp);
  ZSTD_freeCCtx(cctx);
  free(in);
  free(out);
  return rc;
}

int tide_tier_get(const char *dst, uint64_t len, tide_map_t **out, tide_err_t *err) {
  int fd = open(dst, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int rc = -errno;
    return tide_err_set(err, rc, "cannot open %s: %s", dst, tide_strerror(rc));
  }
  int rc = tide_tier_get_fd(fd, dst, len, out, err);
  close(fd);
  return rc;
}

int tide_tier_get_fd(int fd, const char *dst, uint64_t len, tide_map_t **out, tide_err_t *err) {
  int rc;
  char *z = NULL, *raw = NULL;
  struct stat st;
  if (fstat(fd, &st) < 0) {
    rc = -errno;
    tide_err_set(err, rc, "cannot stat %s: %s", dst, tide_strerror(rc));
    goto done;
  }
  size_t zlen = (size_t)st.st_size;
  if (!(z = malloc(zlen ? zlen : 1)) || !(raw = malloc(len ? len : 1))) {
    rc = tide_err_set(err, -ENOMEM, "out of memory reading %s", dst);
    goto done;
  }
  if ((rc = read_all(fd, z, zlen))) {
    tide_err_set(err, rc, "cannot read %s: %s", dst, tide_strerror(rc));
    goto done;
  }
  unsigned long long content = ZSTD_getFrameContentSize(z, zlen);
  if (content != len) {
    rc = tide_err_set(err, TIDE_ECORRUPT, "%s: not a cold segment of %llu bytes", dst, (unsigned long long)len);
    goto done;
  }
  size_t got = ZSTD_decompress(raw, len, z, zlen);
  if (ZSTD_isError(got) || got != len) {
    rc = tide_err_set(err, TIDE_ECORRUPT, "%s: %s", dst,
                      ZSTD_isError(got) ? ZSTD_getErrorName(got) : "short frame");
    goto done;
  }
  if ((rc = tide_map_buffer(raw, len, out))) goto done;
  raw = NULL;
done:
  free(z);
  free(raw);
  return rc;
}
