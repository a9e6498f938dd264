/*
 * shim.c: fault injection for the specs (issue 18), an LD_PRELOAD library
 * (build/libtidefault.so, built by `make`). It makes the Nth write, fsync,
 * rename or mmap of the files under one directory fail, so a spec can walk
 * N over every such call of an operation and check what each failure
 * leaves behind (spec/fault_spec.lua).
 *
 * Why a preloaded shim and not failpoints in the core: most of the calls
 * that matter are LMDB's own (the catalog's and the checkpoint's commits:
 * its page writes, the meta page, fdatasync, the map) and the C library's
 * (the file sink writes through Lua's io library); failpoints in tide's code
 * cannot reach them, a shim reaches them all. It costs the engine nothing:
 * there is no test code in the production path.
 *
 * Calls intercepted ("the calls" below): write, pwrite, writev, fwrite,
 * fflush, fclose (the stdio writes of Lua's io library), ftruncate, fsync,
 * fdatasync, rename, mmap of a file. A call counts when its file
 * lies under TIDE_FAULT_DIR (found through /proc/self/fd for descriptors);
 * the others pass untouched.
 *
 * Environment:
 *   TIDE_FAULT_DIR    absolute directory; without it the shim does nothing
 *   TIDE_FAULT_AT     N: the Nth counted call fails (1-based); 0 or unset:
 *                     count only
 *   TIDE_FAULT_ERRNO  EIO (default) or ENOSPC
 *   TIDE_FAULT_FULL   1: from the Nth call on the disk is full, as a real
 *                     one is: the Nth call, when a write, writes half its
 *                     bytes (a short write, as a disk filling up gives);
 *                     it and every later call but mmap fails with ENOSPC;
 *                     statvfs of a path under the directory reports no
 *                     free blocks
 *   TIDE_FAULT_LOG    a file: one line per counted call, "N op path", and
 *                     "N op path FAILED" for the one made to fail
 * A failed fclose or fflush closes or flushes for real first, then reports
 * the failure (the caller must treat the file as not written).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static const char *dir;     /* TIDE_FAULT_DIR, or NULL: inactive */
static size_t dir_len;
static long fault_at;       /* TIDE_FAULT_AT */
static int fault_errno = EIO;
static int full_mode;       /* TIDE_FAULT_FULL */
static int log_fd = -1;
static long calls;          /* counted calls so far */
static int disk_full;       /* full mode, after the fault */

static ssize_t (*real_write)(int, const void *, size_t);

__attribute__((constructor)) static void shim_init(void) {
  real_write = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
  dir = getenv("TIDE_FAULT_DIR");
  if (!dir || dir[0] != '/') {
    dir = NULL;
    return;
  }
  dir_len = strlen(dir);
  while (dir_len > 1 && dir[dir_len - 1] == '/') dir_len--;
  const char *at = getenv("TIDE_FAULT_AT");
  fault_at = at ? strtol(at, NULL, 10) : 0;
  const char *e = getenv("TIDE_FAULT_ERRNO");
  if (e && !strcmp(e, "ENOSPC")) fault_errno = ENOSPC;
  const char *f = getenv("TIDE_FAULT_FULL");
  full_mode = f && !strcmp(f, "1");
  const char *lg = getenv("TIDE_FAULT_LOG");
  if (lg) log_fd = open(lg, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

static int under_dir(const char *p) {
  return p && !strncmp(p, dir, dir_len) && (p[dir_len] == '/' || p[dir_len] == 0);
}

/* Is the path (or, when path is NULL, the descriptor's file) under dir? */
static int counted(int fd, const char *path, char *shown, size_t cap) {
  if (!dir) return 0;
  if (path) {
    char abs[4096];
    if (path[0] != '/') {
      if (!getcwd(abs, sizeof abs)) return 0;
      size_t n = strlen(abs);
      snprintf(abs + n, sizeof abs - n, "/%s", path);
      path = abs;
    }
    snprintf(shown, cap, "%s", path);
    return under_dir(shown);
  }
  if (fd < 0) return 0;
  char link[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, shown, cap - 1);
  if (n < 0) return 0;
  shown[n] = 0;
  return under_dir(shown);
}

/* Count a call; 1 when it must fail (errno set), 2 when it must be short
 * (full mode, the first write), 0 when it runs. */
static int decide(const char *op, int fd, const char *path) {
  char shown[4096];
  if (!counted(fd, path, shown, sizeof shown)) return 0;
  long n = __atomic_add_fetch(&calls, 1, __ATOMIC_SEQ_CST);
  int verdict = 0, is_mmap = !strcmp(op, "mmap");
  if (fault_at > 0 && n == fault_at) {
    verdict = 1;
    if (full_mode) {
      disk_full = 1;
      if (!strcmp(op, "write") || !strcmp(op, "pwrite") || !strcmp(op, "writev")) verdict = 2;
    }
  } else if (disk_full) {
    verdict = 1;
  }
  if (disk_full && is_mmap) verdict = 0; /* a full disk does not fail a map */
  if (log_fd >= 0) {
    char line[4200];
    int len = snprintf(line, sizeof line, "%ld %s %s%s\n", n, op, shown, verdict ? " FAILED" : "");
    if (len > (int)sizeof line - 1) len = (int)sizeof line - 1;
    if (real_write(log_fd, line, (size_t)len) < 0) { /* the log is best effort */ }
  }
  if (verdict == 1) errno = disk_full ? ENOSPC : fault_errno;
  return verdict;
}

/* The C library's function `name`, found once. */
#define REAL(name)                   \
  static __typeof__(&name) real_##name; \
  if (!real_##name) real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t n) {
  int v = decide("write", fd, NULL);
  if (v == 1) return -1;
  if (v == 2 && n > 1) n /= 2;
  return real_write(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
  REAL(pwrite);
  int v = decide("pwrite", fd, NULL);
  if (v == 1) return -1;
  if (v == 2 && n > 1) n /= 2;
  return real_pwrite(fd, buf, n, off);
}
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) __attribute__((alias("pwrite")));

ssize_t writev(int fd, const struct iovec *iov, int cnt) {
  REAL(writev);
  int v = decide("writev", fd, NULL);
  if (v == 1) return -1;
  if (v == 2 && cnt > 0) {
    return real_write(fd, iov[0].iov_base, iov[0].iov_len > 1 ? iov[0].iov_len / 2 : iov[0].iov_len);
  }
  return real_writev(fd, iov, cnt);
}

size_t fwrite(const void *p, size_t size, size_t n, FILE *f) {
  REAL(fwrite);
  if (decide("fwrite", fileno(f), NULL)) return 0;
  return real_fwrite(p, size, n, f);
}

int fflush(FILE *f) {
  REAL(fflush);
  int rc = real_fflush(f);
  if (f && decide("fflush", fileno(f), NULL)) return EOF;
  return rc;
}

int fclose(FILE *f) {
  REAL(fclose);
  int v = f ? decide("fclose", fileno(f), NULL) : 0;
  int e = errno, rc = real_fclose(f);
  if (v) {
    errno = e;
    return EOF;
  }
  return rc;
}

int ftruncate(int fd, off_t len) {
  REAL(ftruncate);
  if (decide("ftruncate", fd, NULL)) return -1;
  return real_ftruncate(fd, len);
}
int ftruncate64(int fd, off_t len) __attribute__((alias("ftruncate")));

int fsync(int fd) {
  REAL(fsync);
  if (decide("fsync", fd, NULL)) return -1;
  return real_fsync(fd);
}

int fdatasync(int fd) {
  REAL(fdatasync);
  if (decide("fdatasync", fd, NULL)) return -1;
  return real_fdatasync(fd);
}

int rename(const char *from, const char *to) {
  REAL(rename);
  if (decide("rename", -1, from)) return -1;
  return real_rename(from, to);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
  REAL(mmap);
  if (!(flags & MAP_ANONYMOUS) && fd >= 0 && decide("mmap", fd, NULL)) return MAP_FAILED;
  return real_mmap(addr, len, prot, flags, fd, off);
}
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off) __attribute__((alias("mmap")));

/* Full mode: a full disk has no free blocks. */
static void full_vfs(struct statvfs *st) { st->f_bfree = st->f_bavail = 0; }

int statvfs(const char *path, struct statvfs *st) {
  REAL(statvfs);
  int rc = real_statvfs(path, st);
  char shown[4096];
  if (!rc && disk_full && counted(-1, path, shown, sizeof shown)) full_vfs(st);
  return rc;
}

int fstatvfs(int fd, struct statvfs *st) {
  REAL(fstatvfs);
  int rc = real_fstatvfs(fd, st);
  char shown[4096];
  if (!rc && disk_full && counted(fd, NULL, shown, sizeof shown)) full_vfs(st);
  return rc;
}
