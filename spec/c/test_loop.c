/*
 * test_loop.c: the event loop (core/loop.c): timers fire in order, a watch
 * sees a write, signals arrive, closing from inside a callback works, TCP
 * line servers cut lines across reads and connections, input readers read
 * a pipe, a file and a pseudo-terminal (raw mode on, then restored), and every test ends
 * by proving that nothing is left open on the uv loop.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <termios.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "loop.h"
#include "t.h"

/* Count the handles still known to a uv loop (open or closing). */
static void count_walk(uv_handle_t *h, void *arg) {
  (void)h;
  (*(int *)arg)++;
}

static int uv_handles_left(tide_loop_t *loop) {
  int n = 0;
  uv_loop_t *uv = tide_loop_uv(loop);
  if (uv) uv_walk(uv, count_walk, &n);
  return n;
}

/* ---- timers fire in order --------------------------------------------------- */

typedef struct order {
  char seen[16];
  int n, released;
} order_t;

typedef struct tick {
  order_t *o;
  char tag;
} tick_t;

static void tick_cb(tide_handle_t *h, void *data) {
  tick_t *t = data;
  t->o->seen[t->o->n++] = t->tag;
  tide_handle_close(h);
}

static void tick_release(tide_handle_t *h, void *data) {
  (void)h;
  ((tick_t *)data)->o->released++;
}

static void test_timers_fire_in_order(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  order_t o = {{0}, 0, 0};
  tick_t ticks[3] = {{&o, 'c'}, {&o, 'a'}, {&o, 'b'}};
  uint64_t ms[3] = {30, 5, 15};
  for (int i = 0; i < 3; i++) {
    tide_handle_t *h;
    T_EQ_INT(tide_timer_start(loop, ms[i], 0, tick_cb, tick_release, &ticks[i], &h), 0);
    T_CHECK(h != NULL);
    if (h == NULL) continue;
    T_EQ_INT(tide_handle_type(h), TIDE_HANDLE_TIMER);
    T_CHECK(tide_handle_active(h));
  }
  T_EQ_INT(tide_loop_handles(loop), 3);
  T_EQ_INT(tide_loop_alive(loop), 1);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0);
  T_EQ_STR(o.seen, "abc");
  T_EQ_INT(o.released, 3);
  T_EQ_INT(tide_loop_handles(loop), 0);
  T_EQ_INT(uv_handles_left(loop), 0);
  T_EQ_INT(tide_loop_close(loop), 0);
  T_EQ_INT(tide_loop_close(loop), 0); /* idempotent */
  T_EQ_INT(tide_loop_free(loop), 0);
}

/* ---- a repeating timer, stopped and restarted ---------------------------------- */

/* Stops its timer from the third firing on, so each restart fires it
 * exactly once however slowly the loop runs (under valgrind, a 1 ms
 * repeating timer could otherwise fire twice in one iteration). */
static void count_cb(tide_handle_t *h, void *data) {
  int *n = data;
  if (++*n >= 3) tide_timer_stop(h);
}

static void test_repeating_timer(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  int n = 0;
  tide_handle_t *h;
  T_EQ_INT(tide_timer_start(loop, 1, 1, count_cb, NULL, &n, &h), 0);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0); /* returns: the stopped timer is not active */
  T_EQ_INT(n, 3);
  T_CHECK(!tide_handle_active(h));
  T_EQ_INT(tide_loop_handles(loop), 1); /* stopped, still open */
  T_EQ_INT(tide_timer_again(h), 0);
  T_CHECK(tide_handle_active(h));
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0); /* fires once, stops, nothing left active */
  T_EQ_INT(n, 4);
  T_EQ_INT(tide_loop_free(loop), 0); /* closes the open timer */
}

/* ---- a watch sees a write ------------------------------------------------------- */

typedef struct watch_state {
  char dir[64];
  int events, changes, renames, errors;
  char name[64];
  tide_loop_t *loop;
} watch_state_t;

static void watch_cb(tide_handle_t *h, void *data, const char *filename, int events, int status) {
  (void)h;
  watch_state_t *w = data;
  if (status < 0) {
    w->errors++;
    return;
  }
  w->events++;
  if (events & TIDE_WATCH_CHANGE) w->changes++;
  if (events & TIDE_WATCH_RENAME) w->renames++;
  if (filename) snprintf(w->name, sizeof w->name, "%s", filename);
  tide_loop_stop(w->loop);
}

static void write_file_cb(tide_handle_t *h, void *data) {
  watch_state_t *w = data;
  char path[128];
  snprintf(path, sizeof path, "%s/data.txt", w->dir);
  FILE *f = fopen(path, "w");
  T_CHECK(f != NULL);
  if (f) {
    fputs("hello\n", f);
    fclose(f);
  }
  tide_handle_close(h);
}

static void timeout_cb(tide_handle_t *h, void *data) {
  (void)h;
  tide_loop_stop(((watch_state_t *)data)->loop);
}

static void test_watch_sees_a_write(void) {
  watch_state_t w;
  memset(&w, 0, sizeof w);
  snprintf(w.dir, sizeof w.dir, "/tmp/tide-test-loop-XXXXXX");
  T_CHECK(mkdtemp(w.dir) != NULL);
  T_EQ_INT(tide_loop_open(&w.loop), 0);
  tide_handle_t *watch, *writer, *timeout;
  T_EQ_INT(tide_watch_start(w.loop, w.dir, watch_cb, NULL, &w, &watch), 0);
  T_EQ_INT(tide_handle_type(watch), TIDE_HANDLE_WATCH);
  T_EQ_INT(tide_timer_start(w.loop, 5, 0, write_file_cb, NULL, &w, &writer), 0);
  T_EQ_INT(tide_timer_start(w.loop, 5000, 0, timeout_cb, NULL, &w, &timeout), 0);
  T_EQ_INT(tide_loop_run(w.loop, TIDE_RUN_DEFAULT), 1); /* stopped by the watch: handles remain */
  T_CHECK(w.events >= 1);
  T_CHECK(w.changes + w.renames >= 1);
  T_EQ_STR(w.name, "data.txt");
  T_EQ_INT(w.errors, 0);
  T_EQ_INT(tide_loop_handles(w.loop), 2); /* the watch and the timeout */
  T_EQ_INT(tide_loop_close(w.loop), 0);
  T_EQ_INT(tide_loop_handles(w.loop), 0);
  T_EQ_INT(tide_loop_alive(w.loop), 0);
  T_EQ_INT(tide_loop_free(w.loop), 0);

  char path[128];
  snprintf(path, sizeof path, "%s/data.txt", w.dir);
  unlink(path);
  rmdir(w.dir);
}

static void test_watch_of_a_missing_path_fails_cleanly(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  tide_handle_t *h = (tide_handle_t *)1;
  T_EQ_INT(tide_watch_start(loop, "/nonexistent/tide/dir", watch_cb, NULL, NULL, &h), -ENOENT);
  T_CHECK(h == NULL);
  T_EQ_INT(tide_loop_handles(loop), 0);
  T_EQ_INT(tide_loop_free(loop), 0); /* uv_loop_close succeeded: the failed handle was closed */
}

/* ---- signals -------------------------------------------------------------------- */

static void signal_cb(tide_handle_t *h, void *data, int signum) {
  int *got = data;
  *got = signum;
  tide_handle_close(h);
}

static void raise_cb(tide_handle_t *h, void *data) {
  (void)data;
  raise(SIGHUP);
  tide_handle_close(h);
}

static void test_signal_arrives(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  int got = 0;
  tide_handle_t *sig, *timer;
  T_EQ_INT(tide_signal_start(loop, SIGHUP, signal_cb, NULL, &got, &sig), 0);
  T_EQ_INT(tide_timer_start(loop, 1, 0, raise_cb, NULL, NULL, &timer), 0);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0);
  T_EQ_INT(got, SIGHUP);
  T_EQ_INT(tide_loop_free(loop), 0);

  T_EQ_INT(tide_loop_open(&loop), 0);
  T_EQ_INT(tide_signal_start(loop, 12345, signal_cb, NULL, &got, &sig), UV_EINVAL);
  T_EQ_INT(tide_loop_free(loop), 0);
}

/* ---- closing from inside a callback -------------------------------------------------- */

typedef struct closer {
  tide_loop_t *loop;
  int released;
} closer_t;

static void close_loop_cb(tide_handle_t *h, void *data) {
  (void)h;
  closer_t *c = data;
  T_EQ_INT(tide_loop_close(c->loop), 0);
  T_EQ_INT(tide_loop_run(c->loop, TIDE_RUN_DEFAULT), TIDE_ECLOSED);
  T_EQ_INT(tide_loop_free(c->loop), UV_EBUSY); /* not from a callback */
  tide_handle_t *t;
  T_EQ_INT(tide_timer_start(c->loop, 1, 0, close_loop_cb, NULL, c, &t), TIDE_ECLOSED);
  T_CHECK(t == NULL);
}

static void count_release(tide_handle_t *h, void *data) {
  (void)h;
  ((closer_t *)data)->released++;
}

static void test_close_from_a_callback(void) {
  closer_t c = {NULL, 0};
  T_EQ_INT(tide_loop_open(&c.loop), 0);
  tide_handle_t *h;
  T_EQ_INT(tide_timer_start(c.loop, 1, 0, close_loop_cb, count_release, &c, &h), 0);
  T_EQ_INT(tide_timer_start(c.loop, 60000, 0, close_loop_cb, count_release, &c, &h), 0);
  T_EQ_INT(tide_timer_start(c.loop, 60000, 0, close_loop_cb, count_release, &c, &h), 0);
  T_EQ_INT(tide_loop_run(c.loop, TIDE_RUN_DEFAULT), 0); /* returns at once, closed */
  T_EQ_INT(c.released, 3);
  T_CHECK(tide_loop_closed(c.loop));
  T_EQ_INT(tide_loop_alive(c.loop), 0);
  T_CHECK(tide_loop_uv(c.loop) == NULL); /* uv_loop_close succeeded */
  T_EQ_INT(tide_loop_free(c.loop), 0);
}

/* ---- close leaves nothing open ----------------------------------------------------- */

static void never_cb(tide_handle_t *h, void *data) {
  (void)h;
  (void)data;
  T_CHECK(0);
}

static void ignore_cb(tide_handle_t *h, void *data, const char *filename, int events, int status) {
  (void)h, (void)data, (void)filename, (void)events, (void)status;
}

static void test_close_leaves_nothing_open(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  closer_t c = {loop, 0};
  tide_handle_t *h;
  for (int i = 0; i < 10; i++) T_EQ_INT(tide_timer_start(loop, 100000, 0, never_cb, count_release, &c, &h), 0);
  T_EQ_INT(tide_watch_start(loop, "/tmp", ignore_cb, count_release, &c, &h), 0);
  T_EQ_INT(tide_signal_start(loop, SIGUSR1, signal_cb, count_release, &c, &h), 0);
  T_EQ_INT(uv_handles_left(loop), 12);
  tide_handle_close(h); /* one closed by hand first */
  T_EQ_INT(c.released, 1);
  T_EQ_INT(tide_loop_handles(loop), 11);
  /* A uv handle that tide did not start blocks the close until its owner closes it. */
  uv_idle_t idle;
  T_EQ_INT(uv_idle_init(tide_loop_uv(loop), &idle), 0);
  T_EQ_INT(tide_loop_close(loop), UV_EBUSY);
  T_EQ_INT(c.released, 12);
  uv_close((uv_handle_t *)&idle, NULL);
  T_EQ_INT(tide_loop_close(loop), 0);
  T_CHECK(tide_loop_uv(loop) == NULL);
  T_EQ_INT(tide_loop_free(loop), 0);
}

/* ---- TCP line servers ------------------------------------------------------------ */

/* What a server's callbacks saw: the lines joined by '|', errors. */
typedef struct lines_state {
  char text[4096];
  size_t len;
  int calls, errors, last_code, released;
  char peer[64];
  tide_handle_t *close_on_line; /* close this server when a line arrives */
} lines_state_t;

static void lines_cb(tide_handle_t *h, void *data, const tide_line_t *lines, size_t n) {
  lines_state_t *st = data;
  st->calls++;
  for (size_t i = 0; i < n; i++) {
    int w = snprintf(st->text + st->len, sizeof st->text - st->len, "%.*s|", (int)lines[i].len, lines[i].ptr);
    if (w > 0 && st->len + (size_t)w < sizeof st->text) st->len += (size_t)w;
  }
  if (st->close_on_line == h) {
    st->close_on_line = NULL;
    tide_handle_close(h);
  }
}

static void lines_err_cb(tide_handle_t *h, void *data, int code, const char *peer) {
  (void)h;
  lines_state_t *st = data;
  st->errors++;
  st->last_code = code;
  snprintf(st->peer, sizeof st->peer, "%s", peer);
}

static void lines_release(tide_handle_t *h, void *data) {
  (void)h;
  ((lines_state_t *)data)->released++;
}

/* A blocking client connected to 127.0.0.1:port (the kernel completes the
 * handshake from the listen backlog, before the loop accepts). */
static int client(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  T_CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
  return fd;
}

static void send_all(int fd, const char *s) {
  size_t n = strlen(s);
  T_EQ_INT(write(fd, s, n), (long long)n);
}

/* Run the loop without blocking until the server has read `bytes` bytes
 * and delivered `lines` lines (or 10 s pass: then the checks fail). */
static void pump(tide_loop_t *loop, tide_handle_t *srv, uint64_t bytes, uint64_t lines) {
  for (int i = 0; i < 10000; i++) {
    tide_server_stats_t st;
    tide_server_stats(srv, &st);
    if (st.bytes >= bytes && st.lines >= lines) return;
    tide_loop_run(loop, TIDE_RUN_NOWAIT);
    usleep(1000);
  }
}

static void test_server_cuts_lines(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  lines_state_t st;
  memset(&st, 0, sizeof st);
  tide_handle_t *srv;
  T_EQ_INT(tide_server_start(loop, "127.0.0.1", 0, 1 << 20, lines_cb, lines_err_cb, lines_release, &st, &srv), 0);
  T_EQ_INT(tide_handle_type(srv), TIDE_HANDLE_SERVER);
  T_CHECK(tide_handle_active(srv));
  int port = tide_server_port(srv);
  T_CHECK(port > 0);
  int a = client(port), b = client(port);
  /* A line cut across three writes, each read before the next is sent. */
  send_all(a, "hel");
  pump(loop, srv, 3, 0);
  T_EQ_INT(st.calls, 0);
  send_all(a, "lo\r");
  pump(loop, srv, 6, 0);
  send_all(a, "\nwor");
  pump(loop, srv, 10, 1);
  T_EQ_STR(st.text, "hello|");
  send_all(b, "b1\n\nb3\r\n");
  pump(loop, srv, 18, 4);
  T_EQ_STR(st.text, "hello|b1||b3|");
  /* The last line without LF counts when the peer closes. */
  close(a);
  pump(loop, srv, 18, 5);
  T_EQ_STR(st.text, "hello|b1||b3|wor|");
  tide_server_stats_t s;
  tide_server_stats(srv, &s);
  T_EQ_INT(s.accepted, 2);
  T_EQ_INT(s.open, 1);
  T_EQ_INT(s.lines, 5);
  T_EQ_INT(s.errors, 0);
  /* Closing the server closes the connection still open: the peer reads EOF. */
  tide_handle_close(srv);
  T_EQ_INT(st.released, 1);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0);
  char c;
  T_EQ_INT(read(b, &c, 1), 0);
  close(b);
  T_EQ_INT(uv_handles_left(loop), 0);
  T_EQ_INT(tide_loop_free(loop), 0);
}

static void test_server_skips_a_long_line(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  lines_state_t st;
  memset(&st, 0, sizeof st);
  tide_handle_t *srv;
  T_EQ_INT(tide_server_start(loop, "127.0.0.1", 0, 8, lines_cb, lines_err_cb, NULL, &st, &srv), 0);
  int a = client(tide_server_port(srv));
  send_all(a, "12345678\n123456789\nok\n");
  pump(loop, srv, 22, 2);
  T_EQ_STR(st.text, "12345678|ok|");
  T_EQ_INT(st.errors, 1);
  T_EQ_INT(st.last_code, TIDE_ETOOBIG);
  T_CHECK(strncmp(st.peer, "127.0.0.1:", 10) == 0);
  /* Too long before its LF arrives: reported at once, skipped to the LF. */
  send_all(a, "abcdefghij");
  pump(loop, srv, 32, 2);
  T_EQ_INT(st.errors, 2);
  send_all(a, "klm\nnext\nlast-too-long");
  close(a);
  pump(loop, srv, 55, 3);
  tide_loop_run(loop, TIDE_RUN_NOWAIT);
  T_EQ_STR(st.text, "12345678|ok|next|");
  T_EQ_INT(st.errors, 3);
  tide_server_stats_t s;
  tide_server_stats(srv, &s);
  T_EQ_INT(s.errors, 3);
  T_EQ_INT(tide_loop_free(loop), 0); /* closes the server */
}

static void test_server_closed_from_its_callback(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  lines_state_t st;
  memset(&st, 0, sizeof st);
  tide_handle_t *srv;
  T_EQ_INT(tide_server_start(loop, "127.0.0.1", 0, 1024, lines_cb, lines_err_cb, lines_release, &st, &srv), 0);
  st.close_on_line = srv;
  int a = client(tide_server_port(srv)), b = client(tide_server_port(srv));
  send_all(b, "partial");
  send_all(a, "x\ny\nrest");
  for (int i = 0; i < 10000 && st.released == 0; i++) {
    tide_loop_run(loop, TIDE_RUN_NOWAIT);
    usleep(1000);
  }
  T_EQ_INT(st.released, 1);
  T_EQ_INT(st.calls, 1);
  T_EQ_STR(st.text, "x|y|");
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0);
  T_EQ_INT(uv_handles_left(loop), 0);
  close(a);
  close(b);
  T_EQ_INT(tide_loop_free(loop), 0);
}

static void test_server_errors(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  lines_state_t st;
  memset(&st, 0, sizeof st);
  tide_handle_t *srv, *again = (tide_handle_t *)1;
  T_EQ_INT(tide_server_start(loop, "127.0.0.1", 0, 1024, lines_cb, NULL, lines_release, &st, &srv), 0);
  int port = tide_server_port(srv);
  T_EQ_INT(tide_server_start(loop, "127.0.0.1", port, 1024, lines_cb, NULL, lines_release, &st, &again),
           UV_EADDRINUSE);
  T_CHECK(again == NULL);
  T_EQ_INT(tide_server_start(loop, "no-such-host.invalid", 0, 1024, lines_cb, NULL, NULL, &st, &again),
           TIDE_ENOTFOUND);
  T_EQ_INT(tide_server_start(loop, "127.0.0.1", 70000, 1024, lines_cb, NULL, NULL, &st, &again), TIDE_EINVAL);
  T_EQ_INT(tide_server_start(loop, "127.0.0.1", 0, 0, lines_cb, NULL, NULL, &st, &again), TIDE_EINVAL);
  T_EQ_INT(st.released, 0); /* failed starts release nothing */
  T_EQ_INT(tide_loop_handles(loop), 1);
  T_EQ_INT(tide_server_port(srv), port);
  tide_handle_t *timer;
  T_EQ_INT(tide_timer_start(loop, 1000, 0, never_cb, NULL, NULL, &timer), 0);
  T_EQ_INT(tide_server_port(timer), -1);
  T_EQ_INT(tide_loop_free(loop), 0);
  T_EQ_INT(st.released, 1);
}

/* Many lines from many connections, more than one read buffer each. */
static void test_server_many_lines(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  lines_state_t st;
  memset(&st, 0, sizeof st);
  tide_handle_t *srv;
  T_EQ_INT(tide_server_start(loop, "127.0.0.1", 0, 1024, lines_cb, lines_err_cb, NULL, &st, &srv), 0);
  enum { NCONN = 8, NLINES = 20000 };
  int fds[NCONN];
  uint64_t bytes = 0;
  for (int c = 0; c < NCONN; c++) fds[c] = client(tide_server_port(srv));
  char line[32];
  for (int i = 0; i < NLINES; i++) {
    for (int c = 0; c < NCONN; c++) {
      int n = snprintf(line, sizeof line, "conn %d line %d\n", c, i);
      T_EQ_INT(write(fds[c], line, (size_t)n), n);
      bytes += (uint64_t)n;
    }
    if (i % 1000 == 999) tide_loop_run(loop, TIDE_RUN_NOWAIT); /* keep socket buffers from filling */
  }
  for (int c = 0; c < NCONN; c++) close(fds[c]);
  pump(loop, srv, bytes, (uint64_t)NCONN * NLINES);
  tide_server_stats_t s;
  tide_server_stats(srv, &s);
  T_EQ_INT(s.bytes, bytes);
  T_EQ_INT(s.lines, (uint64_t)NCONN * NLINES);
  T_EQ_INT(s.errors, 0);
  if (s.errors) fprintf(stderr, "error %d (%s) from %s\n", st.last_code, tide_strerror(st.last_code), st.peer);
  T_CHECK(st.calls < NCONN * NLINES); /* lines come in chunks */
  T_EQ_INT(tide_loop_free(loop), 0);
}

/* ---- input readers ---------------------------------------------------------------- */

typedef struct inrec {
  char got[256];
  size_t n;
  int chunks, ends, status, released;
  int close_on_data; /* close the reader from its callback */
} inrec_t;

static void in_cb(tide_handle_t *h, void *data, const char *buf, size_t len, int status) {
  inrec_t *r = data;
  if (len == 0) {
    r->ends++;
    r->status = status;
    return;
  }
  r->chunks++;
  if (r->n + len < sizeof r->got) {
    memcpy(r->got + r->n, buf, len);
    r->n += len;
    r->got[r->n] = 0;
  }
  if (r->close_on_data) tide_handle_close(h);
}

static void in_release(tide_handle_t *h, void *data) {
  (void)h;
  ((inrec_t *)data)->released++;
}

static void test_input_reads_a_pipe(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  int fds[2];
  T_EQ_INT(pipe(fds), 0);
  inrec_t r;
  memset(&r, 0, sizeof r);
  tide_handle_t *h;
  T_EQ_INT(tide_input_start(loop, fds[0], 1, in_cb, in_release, &r, &h), 0);
  T_EQ_INT(tide_handle_type(h), TIDE_HANDLE_INPUT);
  T_EQ_INT(tide_input_kind(h), TIDE_INPUT_PIPE);
  T_EQ_INT(tide_input_set_raw(h, 1), UV_EINVAL); /* not a terminal */
  int cols, rows;
  T_EQ_INT(tide_input_winsize(h, &cols, &rows), UV_EINVAL);
  T_CHECK(tide_handle_active(h));
  /* Paused, the bytes wait in the pipe; resumed, they come. */
  T_EQ_INT(tide_input_pause(h), 0);
  T_EQ_INT(tide_input_pause(h), 0); /* idempotent */
  T_CHECK(!tide_handle_active(h));
  T_EQ_INT(write(fds[1], "one\ntwo", 7), 7);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_NOWAIT), 0);
  T_EQ_INT(r.chunks, 0);
  T_EQ_INT(tide_input_resume(h), 0);
  T_EQ_INT(tide_input_resume(h), 0);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_ONCE), 1);
  T_EQ_STR(r.got, "one\ntwo");
  T_EQ_INT(r.ends, 0);
  T_EQ_INT(write(fds[1], "\nthree", 6), 6);
  close(fds[1]);
  /* The end stops the reader: the loop has nothing left to wait for. */
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0);
  T_EQ_STR(r.got, "one\ntwo\nthree");
  T_EQ_INT(r.ends, 1);
  T_EQ_INT(r.status, 0);
  T_CHECK(!tide_handle_active(h));
  T_EQ_INT(tide_input_resume(h), 0); /* a no-op after the end */
  T_EQ_INT(tide_loop_handles(loop), 1);
  tide_handle_close(h);
  T_EQ_INT(r.released, 1);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0);
  T_EQ_INT(uv_handles_left(loop), 0);
  T_EQ_INT(tide_loop_free(loop), 0);
  /* The reader does not own its fd: it is still open. */
  T_CHECK(fcntl(fds[0], F_GETFD) >= 0);
  T_EQ_INT(close(fds[0]), 0);
}

static void test_input_reads_a_file(void) {
  char path[] = "/tmp/tide-test-input-XXXXXX";
  int fd = mkstemp(path);
  T_CHECK(fd >= 0);
  if (fd < 0) return;
  /* 150000 bytes: more than one 64 KiB read. */
  char block[1000];
  memset(block, 'x', sizeof block);
  for (int i = 0; i < 150; i++) T_EQ_INT(write(fd, block, sizeof block), (long long)sizeof block);
  T_EQ_INT(lseek(fd, 0, SEEK_SET), 0);
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  inrec_t r;
  memset(&r, 0, sizeof r);
  tide_handle_t *h;
  T_EQ_INT(tide_input_start(loop, fd, 1, in_cb, in_release, &r, &h), 0);
  T_EQ_INT(tide_input_kind(h), TIDE_INPUT_FILE);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0);
  T_EQ_INT(r.chunks, 3);
  T_EQ_INT(r.ends, 1);
  T_EQ_INT(r.status, 0);
  T_EQ_INT(r.released, 0);
  T_EQ_INT(tide_loop_free(loop), 0); /* closes the reader */
  T_EQ_INT(r.released, 1);
  close(fd);
  unlink(path);
}

static void test_input_closed_from_its_callback(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  int fds[2];
  T_EQ_INT(pipe(fds), 0);
  inrec_t r;
  memset(&r, 0, sizeof r);
  r.close_on_data = 1;
  tide_handle_t *h;
  T_EQ_INT(tide_input_start(loop, fds[0], 0, in_cb, in_release, &r, &h), 0);
  T_EQ_INT(write(fds[1], "x", 1), 1);
  close(fds[1]);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0);
  T_EQ_INT(r.chunks, 1);
  T_EQ_INT(r.ends, 0); /* closed before its end was read */
  T_EQ_INT(r.released, 1);
  T_EQ_INT(uv_handles_left(loop), 0);
  T_EQ_INT(tide_loop_free(loop), 0);
  T_EQ_INT(close(fds[0]), 0);
}

static void test_input_refuses_a_bad_fd(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  int fds[2];
  T_EQ_INT(pipe(fds), 0);
  close(fds[0]);
  close(fds[1]);
  inrec_t r;
  memset(&r, 0, sizeof r);
  tide_handle_t *h = (tide_handle_t *)&r;
  T_EQ_INT(tide_input_start(loop, fds[0], 0, in_cb, in_release, &r, &h), UV_EINVAL);
  T_CHECK(h == NULL);
  T_EQ_INT(r.released, 0);
  T_EQ_INT(tide_loop_handles(loop), 0);
  T_EQ_INT(uv_handles_left(loop), 0);
  T_EQ_INT(tide_loop_free(loop), 0);
}

/* A pseudo-terminal: raw mode while the reader is open, the mode from
 * before once it closes; set_raw switches in between. */
static void test_input_terminal_raw_mode(void) {
  int master = posix_openpt(O_RDWR | O_NOCTTY);
  T_CHECK(master >= 0);
  if (master < 0) return;
  T_EQ_INT(grantpt(master), 0);
  T_EQ_INT(unlockpt(master), 0);
  int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  T_CHECK(slave >= 0);
  if (slave < 0) {
    close(master);
    return;
  }
  struct termios before, now;
  T_EQ_INT(tcgetattr(slave, &before), 0);
  T_CHECK((before.c_lflag & (ICANON | ECHO)) == (ICANON | ECHO));
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  inrec_t r;
  memset(&r, 0, sizeof r);
  tide_handle_t *h;
  T_EQ_INT(tide_input_start(loop, slave, 1, in_cb, in_release, &r, &h), 0);
  T_EQ_INT(tide_input_kind(h), TIDE_INPUT_TTY);
  T_EQ_INT(tcgetattr(slave, &now), 0);
  T_EQ_INT(now.c_lflag & (ICANON | ECHO | ISIG), 0);
  int cols = -1, rows = -1;
  T_EQ_INT(tide_input_winsize(h, &cols, &rows), 0);
  T_CHECK(cols >= 0 && rows >= 0);
  /* In raw mode a byte comes without its line being finished, Ctrl-C too. */
  T_EQ_INT(write(master, "a\003", 2), 2);
  while (r.n < 2 && tide_loop_run(loop, TIDE_RUN_ONCE) == 1) {}
  T_EQ_STR(r.got, "a\003");
  T_EQ_INT(tide_input_set_raw(h, 0), 0);
  T_EQ_INT(tcgetattr(slave, &now), 0);
  T_EQ_INT(now.c_lflag & (ICANON | ECHO), ICANON | ECHO);
  T_EQ_INT(tide_input_set_raw(h, 1), 0);
  T_EQ_INT(tcgetattr(slave, &now), 0);
  T_EQ_INT(now.c_lflag & (ICANON | ECHO), 0);
  tide_handle_close(h); /* restores the mode */
  T_EQ_INT(r.released, 1);
  T_EQ_INT(tcgetattr(slave, &now), 0);
  T_EQ_INT(now.c_lflag, before.c_lflag);
  T_EQ_INT(now.c_iflag, before.c_iflag);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0);
  T_EQ_INT(uv_handles_left(loop), 0);
  T_EQ_INT(tide_loop_free(loop), 0);
  close(slave);
  close(master);
}

/* ---- polls ------------------------------------------------------------------------ */

typedef struct pollrec {
  int calls, released, status;
  char got[8];
  int n;
  int fd;
  int close_at; /* close the poll from its callback at this call (0: never) */
} pollrec_t;

static void poll_cb(tide_handle_t *h, void *data, int status) {
  pollrec_t *r = data;
  r->calls++;
  r->status = status;
  if (status == 0 && r->n < 7 && read(r->fd, r->got + r->n, 1) == 1) r->n++;
  if (r->close_at && r->calls == r->close_at) tide_handle_close(h);
}

static void poll_release(tide_handle_t *h, void *data) {
  (void)h;
  ((pollrec_t *)data)->released++;
}

/* The caller reads: one byte per call, so a readable pipe calls back in
 * every iteration until stopped; again starts it; a bad fd fails with
 * nothing left open. */
static void test_poll_calls_back_while_readable(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  int fds[2];
  T_EQ_INT(pipe(fds), 0);
  pollrec_t r;
  memset(&r, 0, sizeof r);
  r.fd = fds[0];
  r.close_at = 3;
  tide_handle_t *h;
  T_EQ_INT(tide_poll_start(loop, fds[0], poll_cb, poll_release, &r, &h), 0);
  T_EQ_INT(tide_handle_type(h), TIDE_HANDLE_POLL);
  T_EQ_INT(tide_handle_active(h), 1);
  T_EQ_INT(write(fds[1], "abc", 3), 3);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_ONCE), 1);
  T_EQ_INT(r.calls, 1);
  T_EQ_INT(tide_poll_stop(h), 0);
  T_EQ_INT(tide_handle_active(h), 0);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_NOWAIT), 0);
  T_EQ_INT(r.calls, 1);
  T_EQ_INT(tide_poll_again(h), 0);
  while (r.released == 0 && tide_loop_run(loop, TIDE_RUN_ONCE) == 1) {}
  T_EQ_INT(r.calls, 3); /* closed from its third call */
  T_EQ_STR(r.got, "abc");
  T_EQ_INT(r.released, 1);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0);
  T_EQ_INT(uv_handles_left(loop), 0);
  /* A closed descriptor, a regular file: refused, nothing left. */
  tide_handle_t *bad = (tide_handle_t *)&r;
  T_EQ_INT(tide_poll_start(loop, 987, poll_cb, poll_release, &r, &bad), UV_EBADF);
  T_CHECK(bad == NULL);
  char path[] = "/tmp/tide-test-poll-XXXXXX";
  int ffd = mkstemp(path);
  T_CHECK(ffd >= 0);
  T_EQ_INT(tide_poll_start(loop, ffd, poll_cb, poll_release, &r, &bad), UV_EPERM);
  T_CHECK(bad == NULL);
  close(ffd);
  unlink(path);
  T_EQ_INT(r.released, 1);
  T_EQ_INT(tide_loop_handles(loop), 0);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0);
  T_EQ_INT(uv_handles_left(loop), 0);
  T_EQ_INT(tide_loop_free(loop), 0);
  close(fds[0]);
  close(fds[1]);
}

int main(void) {
  T_RUN(test_timers_fire_in_order);
  T_RUN(test_repeating_timer);
  T_RUN(test_watch_sees_a_write);
  T_RUN(test_watch_of_a_missing_path_fails_cleanly);
  T_RUN(test_signal_arrives);
  T_RUN(test_close_from_a_callback);
  T_RUN(test_close_leaves_nothing_open);
  T_RUN(test_server_cuts_lines);
  T_RUN(test_server_skips_a_long_line);
  T_RUN(test_server_closed_from_its_callback);
  T_RUN(test_server_errors);
  T_RUN(test_server_many_lines);
  T_RUN(test_input_reads_a_pipe);
  T_RUN(test_input_reads_a_file);
  T_RUN(test_input_closed_from_its_callback);
  T_RUN(test_input_refuses_a_bad_fd);
  T_RUN(test_input_terminal_raw_mode);
  T_RUN(test_poll_calls_back_while_readable);
  T_DONE();
}
