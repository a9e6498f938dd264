/* sock_sender: the sending side of bench/stream.lua's latency benchmark.
 *
 *   sock_sender PORT RATE SECONDS [HOST]
 *
 * Connects to HOST:PORT (default 127.0.0.1; retries for up to 5 s while the
 * port refuses, so the receiver may still be starting) and sends
 * RATE * SECONDS lines at a steady RATE lines per second:
 *
 *   <seq> <send time>\n        seq from 0; send time = CLOCK_MONOTONIC in µs
 *
 * Pacing: every millisecond (an absolute-time sleep on CLOCK_MONOTONIC, so
 * the ticks do not drift) the lines due since the start are formatted with
 * the current time and written in one write(2). A tick that comes late (the
 * sender was descheduled) sends the lines it owes at once, stamped with the
 * late time: the latency measured is the receiver's alone, and the lateness
 * is reported separately. When the receiver falls behind, the socket's
 * buffer fills and write blocks; the lines wait with their stamps already
 * taken, so that wait counts as latency, as it should.
 *
 * CLOCK_MONOTONIC is the same clock in every process of the machine; the
 * receiver reads it with tide.core.clock_ms().
 *
 * On success prints one line `sent=N seconds=S late_max_us=L` to stdout and
 * exits 0; on an error prints `sock_sender: what: why` to stderr and exits 1
 * (2 on bad usage). */

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TICK_NS 1000000L /* one burst per millisecond */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int die(const char *what, const char *why) {
  fprintf(stderr, "sock_sender: %s: %s\n", what, why);
  return 1;
}

/* A positive integer argument, or 0 when it is not one. */
static long arg_long(const char *s, long max) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 1 || v > max) return 0;
  return v;
}

/* Connect to host:port, retrying while refused (up to 5 s). Returns the fd
 * or -1 with errno set. */
static int connect_retry(const char *host, const char *port) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  int rc = getaddrinfo(host, port, &hints, &res);
  if (rc) {
    errno = EHOSTUNREACH;
    return -1;
  }
  uint64_t deadline = now_ns() + 5000000000u;
  int fd = -1;
  for (;;) {
    fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    if (fd < 0) break;
    if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) break;
    int err = errno;
    close(fd);
    fd = -1;
    errno = err;
    if (err != ECONNREFUSED || now_ns() > deadline) break;
    struct timespec pause = {0, 20000000L};
    nanosleep(&pause, NULL);
  }
  freeaddrinfo(res);
  return fd;
}

/* Write all of buf; returns 0 or -1 with errno set. */
static int write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    buf += n;
    len -= (size_t)n;
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 4 || argc > 5) {
    fprintf(stderr, "usage: sock_sender PORT RATE SECONDS [HOST]\n");
    return 2;
  }
  long port = arg_long(argv[1], 65535), rate = arg_long(argv[2], 10000000), secs = arg_long(argv[3], 3600);
  if (!port || !rate || !secs) {
    fprintf(stderr, "sock_sender: PORT (1..65535), RATE (lines/s) and SECONDS must be positive integers\n");
    return 2;
  }
  const char *host = argc == 5 ? argv[4] : "127.0.0.1";
  int fd = connect_retry(host, argv[1]);
  if (fd < 0) return die("connect", strerror(errno));
  int one = 1;
  /* small bursts must leave at once, not wait for Nagle's coalescing */
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

  uint64_t total = (uint64_t)rate * (uint64_t)secs, sent = 0, late_max = 0;
  /* a burst holds the lines of one tick, or of a late tick's backlog: at
   * most 42 bytes a line (two 20-digit numbers) */
  size_t cap = 4096;
  char *buf = malloc(cap);
  if (!buf) return die("malloc", strerror(errno));
  uint64_t start = now_ns();
  struct timespec next;
  clock_gettime(CLOCK_MONOTONIC, &next);
  int rc = 0;
  while (sent < total) {
    next.tv_nsec += TICK_NS;
    if (next.tv_nsec >= 1000000000L) {
      next.tv_nsec -= 1000000000L;
      next.tv_sec++;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
    }
    uint64_t t = now_ns();
    uint64_t planned = (uint64_t)next.tv_sec * 1000000000u + (uint64_t)next.tv_nsec;
    if (t > planned && t - planned > late_max) late_max = t - planned;
    uint64_t due = (t - start) / 1000 * (uint64_t)rate / 1000000u;
    if (due > total) due = total;
    if (due <= sent) continue;
    size_t need = (size_t)(due - sent) * 42;
    if (need > cap) {
      char *nb = realloc(buf, need);
      if (!nb) {
        rc = die("realloc", strerror(errno));
        break;
      }
      buf = nb;
      cap = need;
    }
    unsigned long long us = (unsigned long long)(t / 1000);
    size_t len = 0;
    for (; sent < due; sent++) len += (size_t)sprintf(buf + len, "%llu %llu\n", (unsigned long long)sent, us);
    if (write_all(fd, buf, len) < 0) {
      rc = die("write", strerror(errno));
      break;
    }
  }
  free(buf);
  if (close(fd) < 0 && rc == 0) rc = die("close", strerror(errno));
  if (rc) return rc;
  printf("sent=%llu seconds=%.3f late_max_us=%llu\n", (unsigned long long)sent, (double)(now_ns() - start) / 1e9,
         (unsigned long long)(late_max / 1000));
  return 0;
}
