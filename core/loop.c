/*
 * loop.c: tide's event loop over libuv (see loop.h for the contract).
 *
 * Data structure. A tide_loop_t embeds its uv_loop_t and heads an intrusive
 * doubly linked list of the tide_handle_t that are open on it:
 *
 *   tide_loop_t { uv_loop_t uv; head -> h1 <-> h2 <-> ... <- tail; nopen; nclosing }
 *   tide_handle_t { union of uv handles (first member); loop; prev/next; cb; release; data }
 *
 * A server handle (a listening uv_tcp_t) also owns a tide_srv_t and heads
 * its own list of connections:
 *
 *   tide_srv_t { read buffer; line slices; conns: c1 <-> c2 <-> ...; stats }
 *   tide_conn_t { uv_tcp_t (first member); loop; srv; prev/next; pending line }
 *
 * An input reader (stdin) owns a tide_in_t: its kind, fd, read buffer and
 * state (raw, paused, ended); its uv handle is a uv_tty_t, uv_pipe_t,
 * uv_tcp_t or, for files, a uv_idle_t from which it read()s.
 *
 * A poll is a uv_poll_t and nothing more: it says when its descriptor is
 * readable; the caller reads.
 *
 * Connections are not tide handles (not on the loop's list): the server
 * closes them when it closes. Like handles, a connection's memory is freed
 * in its close callback only, and counts in the loop's nclosing meanwhile;
 * that callback touches nothing but the loop, so connections may finish
 * closing after their server's memory is gone.
 *
 * Invariants:
 *   - a handle is on the list  <=>  it is open (tide_handle_close not yet called);
 *   - nopen == length of the list; nclosing == handles given to uv_close whose
 *     close callback has not run yet; a handle's memory is freed in its close
 *     callback and nowhere else, so libuv never sees freed memory;
 *   - the loop's memory is freed only by tide_loop_free, after a successful
 *     close drained every close callback (nclosing == 0).
 */
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "err.h"

struct tide_handle {
  union {
    uv_handle_t handle;
    uv_timer_t timer;
    uv_fs_event_t watch;
    uv_signal_t signal;
    uv_tcp_t tcp;
    uv_tty_t tty;
    uv_pipe_t pipe;
    uv_idle_t idle;
    uv_poll_t poll;
  } u;
  tide_loop_t *loop;
  tide_handle_type_t type;
  int closing;
  int soon; /* a timer of 0 ms that never repeats: a uv_idle_t (see timers) */
  tide_handle_t *prev, *next;
  union {
    tide_timer_cb timer;
    tide_watch_cb watch;
    tide_signal_cb signal;
    tide_lines_cb lines;
    tide_input_cb input;
    tide_poll_cb poll;
  } cb;
  tide_release_cb release;
  void *data;
  struct tide_srv *srv; /* servers only */
  struct tide_in *in;   /* input readers only */
};

struct tide_loop {
  uv_loop_t uv;
  tide_handle_t *head, *tail;
  int nopen;          /* handles on the list */
  int nclosing;       /* handles waiting for their close callback */
  int running;        /* inside tide_loop_run */
  int closed;         /* tide_loop_close was called: no new handles */
  int close_deferred; /* closed from a callback: tide_loop_run finishes it */
  int uv_closed;      /* uv_loop_close succeeded */
};

/* ---- loops ------------------------------------------------------------------ */

int tide_loop_open(tide_loop_t **out) {
  *out = NULL;
  tide_loop_t *loop = calloc(1, sizeof *loop);
  if (!loop) return -ENOMEM;
  int rc = uv_loop_init(&loop->uv);
  if (rc) {
    free(loop);
    return rc;
  }
  loop->uv.data = loop;
  *out = loop;
  return 0;
}

/* Run the loop without blocking until every close callback ran, then close
 * the libuv loop. Returns 0 or UV_EBUSY (foreign handles still open). */
static int loop_finish_close(tide_loop_t *loop) {
  if (loop->uv_closed) return 0;
  /* A non-blocking iteration runs the pending close callbacks (also those
   * of foreign handles their owners closed); repeat until ours all ran. */
  do {
    uv_run(&loop->uv, UV_RUN_NOWAIT);
  } while (loop->nclosing > 0);
  int rc = uv_loop_close(&loop->uv);
  if (rc == 0) loop->uv_closed = 1;
  return rc;
}

int tide_loop_close(tide_loop_t *loop) {
  if (loop->uv_closed) return 0;
  loop->closed = 1;
  while (loop->head) tide_handle_close(loop->head);
  if (loop->running) {
    loop->close_deferred = 1;
    uv_stop(&loop->uv);
    return 0;
  }
  return loop_finish_close(loop);
}

int tide_loop_free(tide_loop_t *loop) {
  if (!loop) return 0;
  if (loop->running) return UV_EBUSY;
  int rc = tide_loop_close(loop);
  /* With foreign handles still open the uv loop is in use: leak the loop
   * rather than free memory that libuv still points into. */
  if (rc == 0) free(loop);
  return rc;
}

int tide_loop_run(tide_loop_t *loop, tide_run_mode_t mode) {
  if (loop->closed) return TIDE_ECLOSED;
  if (loop->running) return UV_EBUSY;
  loop->running = 1;
  int alive = uv_run(&loop->uv, (uv_run_mode)mode);
  loop->running = 0;
  if (loop->close_deferred) {
    loop->close_deferred = 0;
    loop_finish_close(loop);
    return 0;
  }
  return alive != 0;
}

void tide_loop_stop(tide_loop_t *loop) {
  if (!loop->uv_closed) uv_stop(&loop->uv);
}

int tide_loop_alive(const tide_loop_t *loop) {
  if (loop->uv_closed) return 0;
  return uv_loop_alive(&loop->uv) != 0;
}

int tide_loop_closed(const tide_loop_t *loop) { return loop->closed; }

int tide_loop_running(const tide_loop_t *loop) { return loop->running; }

int tide_loop_handles(const tide_loop_t *loop) { return loop->nopen; }

uv_loop_t *tide_loop_uv(tide_loop_t *loop) { return loop->uv_closed ? NULL : &loop->uv; }

uint64_t tide_loop_now(const tide_loop_t *loop) { return uv_now(&loop->uv); }

/* ---- handles: the common part --------------------------------------------------- */

/* A zeroed handle of the given type, not yet on the list. NULL on ENOMEM. */
static tide_handle_t *handle_new(tide_loop_t *loop, tide_handle_type_t type, tide_release_cb release,
                                 void *data) {
  tide_handle_t *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->loop = loop;
  h->type = type;
  h->release = release;
  h->data = data;
  h->u.handle.data = h;
  return h;
}

/* Put a started handle on the loop's list (at the tail). */
static void handle_link(tide_handle_t *h) {
  tide_loop_t *loop = h->loop;
  h->prev = loop->tail;
  h->next = NULL;
  if (loop->tail)
    loop->tail->next = h;
  else
    loop->head = h;
  loop->tail = h;
  loop->nopen++;
}

static void handle_unlink(tide_handle_t *h) {
  tide_loop_t *loop = h->loop;
  if (h->prev)
    h->prev->next = h->next;
  else
    loop->head = h->next;
  if (h->next)
    h->next->prev = h->prev;
  else
    loop->tail = h->prev;
  h->prev = h->next = NULL;
  loop->nopen--;
}

/* libuv's close callback: the only place a handle's memory is freed. */
static void srv_free(struct tide_srv *srv);
static void srv_close_conns(tide_handle_t *h);

static void input_closing(tide_handle_t *h);

static void handle_on_closed(uv_handle_t *uvh) {
  tide_handle_t *h = uvh->data;
  h->loop->nclosing--;
  srv_free(h->srv);
  free(h->in);
  free(h);
}

/* Close a handle that was initialised on the uv loop but never started
 * (a failed start): no release, not on the list. */
static void handle_abandon(tide_handle_t *h) {
  h->closing = 1;
  h->release = NULL;
  h->loop->nclosing++;
  uv_close(&h->u.handle, handle_on_closed);
}

void tide_handle_close(tide_handle_t *h) {
  if (!h || h->closing) return;
  h->closing = 1;
  handle_unlink(h);
  if (h->srv) srv_close_conns(h);
  if (h->in) input_closing(h);
  h->loop->nclosing++;
  uv_close(&h->u.handle, handle_on_closed);
  tide_release_cb release = h->release;
  h->release = NULL;
  if (release) release(h, h->data);
}

tide_handle_type_t tide_handle_type(const tide_handle_t *h) { return h->type; }

int tide_handle_active(const tide_handle_t *h) { return !h->closing && uv_is_active(&h->u.handle); }

/* ---- timers ---------------------------------------------------------------------
 *
 * A timer of 0 ms that never repeats ("run soon") is a uv_idle_t, not a
 * uv_timer_t. libuv 1.44 runs a timer started with 0 ms from inside a timer
 * callback in the same timers phase, so a client that re-arms such a timer
 * from its callback (a query with a backlog, batch after batch) would keep
 * the loop there for ever: no poll, so no signal, socket, terminal input or
 * later timer would get its turn. An idle callback started from a callback
 * runs in the next loop iteration, and an active idle handle makes the poll
 * before it non-blocking: every other client gets its turn in between. */

static void timer_on_fire(uv_timer_t *t) {
  tide_handle_t *h = t->data;
  h->cb.timer(h, h->data);
}

static void soon_on_fire(uv_idle_t *i) {
  tide_handle_t *h = i->data;
  uv_idle_stop(i);
  h->cb.timer(h, h->data);
}

int tide_timer_start(tide_loop_t *loop, uint64_t timeout_ms, uint64_t repeat_ms, tide_timer_cb cb,
                     tide_release_cb release, void *data, tide_handle_t **out) {
  *out = NULL;
  if (loop->closed) return TIDE_ECLOSED;
  tide_handle_t *h = handle_new(loop, TIDE_HANDLE_TIMER, release, data);
  if (!h) return -ENOMEM;
  h->cb.timer = cb;
  h->soon = timeout_ms == 0 && repeat_ms == 0;
  int rc = h->soon ? uv_idle_init(&loop->uv, &h->u.idle) : uv_timer_init(&loop->uv, &h->u.timer);
  if (rc) {
    free(h);
    return rc;
  }
  rc = h->soon ? uv_idle_start(&h->u.idle, soon_on_fire)
               : uv_timer_start(&h->u.timer, timer_on_fire, timeout_ms, repeat_ms);
  if (rc) {
    handle_abandon(h);
    return rc;
  }
  handle_link(h);
  *out = h;
  return 0;
}

int tide_timer_stop(tide_handle_t *h) {
  if (h->type != TIDE_HANDLE_TIMER || h->closing) return UV_EINVAL;
  return h->soon ? uv_idle_stop(&h->u.idle) : uv_timer_stop(&h->u.timer);
}

int tide_timer_set(tide_handle_t *h, uint64_t timeout_ms, uint64_t repeat_ms) {
  if (h->type != TIDE_HANDLE_TIMER || h->closing) return UV_EINVAL;
  if (h->soon) return repeat_ms == 0 && timeout_ms <= 1 ? uv_idle_start(&h->u.idle, soon_on_fire) : UV_EINVAL;
  return uv_timer_start(&h->u.timer, timer_on_fire, timeout_ms, repeat_ms);
}

int tide_timer_again(tide_handle_t *h) {
  if (h->type != TIDE_HANDLE_TIMER || h->closing || h->soon) return UV_EINVAL;
  return uv_timer_again(&h->u.timer);
}

/* ---- file-system watches -------------------------------------------------------- */

static void watch_on_event(uv_fs_event_t *w, const char *filename, int events, int status) {
  tide_handle_t *h = w->data;
  h->cb.watch(h, h->data, filename, status < 0 ? 0 : events, status < 0 ? status : 0);
}

int tide_watch_start(tide_loop_t *loop, const char *path, tide_watch_cb cb, tide_release_cb release,
                     void *data, tide_handle_t **out) {
  *out = NULL;
  if (loop->closed) return TIDE_ECLOSED;
  tide_handle_t *h = handle_new(loop, TIDE_HANDLE_WATCH, release, data);
  if (!h) return -ENOMEM;
  h->cb.watch = cb;
  int rc = uv_fs_event_init(&loop->uv, &h->u.watch);
  if (rc) {
    free(h);
    return rc;
  }
  rc = uv_fs_event_start(&h->u.watch, watch_on_event, path, 0);
  if (rc) {
    handle_abandon(h);
    return rc;
  }
  handle_link(h);
  *out = h;
  return 0;
}

/* ---- signals -------------------------------------------------------------------- */

static void signal_on_signal(uv_signal_t *s, int signum) {
  tide_handle_t *h = s->data;
  h->cb.signal(h, h->data, signum);
}

int tide_signal_start(tide_loop_t *loop, int signum, tide_signal_cb cb, tide_release_cb release, void *data,
                      tide_handle_t **out) {
  *out = NULL;
  if (loop->closed) return TIDE_ECLOSED;
  tide_handle_t *h = handle_new(loop, TIDE_HANDLE_SIGNAL, release, data);
  if (!h) return -ENOMEM;
  h->cb.signal = cb;
  int rc = uv_signal_init(&loop->uv, &h->u.signal);
  if (rc) {
    free(h);
    return rc;
  }
  rc = uv_signal_start(&h->u.signal, signal_on_signal, signum);
  if (rc) {
    handle_abandon(h);
    return rc;
  }
  handle_link(h);
  *out = h;
  return 0;
}

/* ---- polls ------------------------------------------------------------------------ */

static void poll_on_event(uv_poll_t *p, int status, int events) {
  tide_handle_t *h = p->data;
  (void)events;
  if (h->closing) return;
  if (status < 0) uv_poll_stop(p);
  h->cb.poll(h, h->data, status < 0 ? status : 0);
}

int tide_poll_start(tide_loop_t *loop, int fd, tide_poll_cb cb, tide_release_cb release, void *data,
                    tide_handle_t **out) {
  *out = NULL;
  if (loop->closed) return TIDE_ECLOSED;
  tide_handle_t *h = handle_new(loop, TIDE_HANDLE_POLL, release, data);
  if (!h) return -ENOMEM;
  h->cb.poll = cb;
  int rc = uv_poll_init(&loop->uv, &h->u.poll, fd);
  if (rc) {
    free(h);
    return rc;
  }
  rc = uv_poll_start(&h->u.poll, UV_READABLE, poll_on_event);
  if (rc) {
    handle_abandon(h);
    return rc;
  }
  handle_link(h);
  *out = h;
  return 0;
}

int tide_poll_stop(tide_handle_t *h) {
  if (h->type != TIDE_HANDLE_POLL || h->closing) return UV_EINVAL;
  return uv_poll_stop(&h->u.poll);
}

int tide_poll_again(tide_handle_t *h) {
  if (h->type != TIDE_HANDLE_POLL || h->closing) return UV_EINVAL;
  return uv_poll_start(&h->u.poll, UV_READABLE, poll_on_event);
}

/* ---- TCP line servers --------------------------------------------------------------
 *
 * Reading. Every connection reads into its server's one read buffer. A read
 * is cut into lines by decode.h's line rule (tide_frame_line: LF, one CR
 * before it stripped; the socket source decodes by the same rule): the
 * first line may continue the connection's pending bytes (a line begun by
 * earlier reads), which then hold the whole line; the other complete lines
 * are slices of the read buffer; the bytes after the last LF become the new
 * pending bytes, once the lines were delivered (the first slice may point
 * into the pending buffer until then). A connection in `skipping` state
 * drops bytes up to the next LF: its line was too long. */

#define SRV_READ_SIZE 65536
#define CONN_KEEP_CAP 65536 /* a pending buffer larger than this is freed once used */

typedef struct tide_conn tide_conn_t;

typedef struct tide_srv {
  tide_server_error_cb on_error;
  size_t max_line;
  int port;
  char *rbuf; /* SRV_READ_SIZE bytes */
  tide_line_t *lines;
  size_t lines_cap;
  tide_conn_t *conns; /* open connections, newest first */
  tide_server_stats_t stats;
} tide_srv_t;

struct tide_conn {
  uv_tcp_t tcp; /* first member: the uv handle's data points back here */
  tide_loop_t *loop;
  tide_handle_t *server; /* NULL once closing */
  tide_conn_t *prev, *next;
  char *pend; /* the line begun by earlier reads */
  size_t plen, pcap;
  int skipping; /* dropping a too long line up to its LF */
  int closing;
  char peer[64];
};

static void srv_free(tide_srv_t *srv) {
  if (!srv) return;
  free(srv->rbuf);
  free(srv->lines);
  free(srv);
}

static void conn_on_closed(uv_handle_t *uvh) {
  tide_conn_t *c = uvh->data;
  c->loop->nclosing--;
  free(c->pend);
  free(c);
}

/* Close a connection: off its server's list, its pending bytes dropped. */
static void conn_close(tide_conn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  tide_srv_t *srv = c->server->srv;
  if (c->prev)
    c->prev->next = c->next;
  else
    srv->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  srv->stats.open--;
  c->server = NULL;
  c->loop->nclosing++;
  uv_close((uv_handle_t *)&c->tcp, conn_on_closed);
}

static void srv_close_conns(tide_handle_t *h) {
  while (h->srv->conns) conn_close(h->srv->conns);
}

static void srv_error(tide_handle_t *h, int code, const char *peer) {
  h->srv->stats.errors++;
  if (h->srv->on_error) h->srv->on_error(h, h->data, code, peer);
}

/* Make room for n line slices. 0 or -ENOMEM. */
static int srv_reserve_lines(tide_srv_t *srv, size_t n) {
  if (n <= srv->lines_cap) return 0;
  size_t cap = srv->lines_cap ? srv->lines_cap : 64;
  while (cap < n) cap *= 2;
  tide_line_t *p = realloc(srv->lines, cap * sizeof *p);
  if (!p) return -ENOMEM;
  srv->lines = p;
  srv->lines_cap = cap;
  return 0;
}

/* Append bytes to the pending line. 0 or -ENOMEM. */
static int conn_pend(tide_conn_t *c, const char *p, size_t n) {
  if (n == 0) return 0;
  if (c->plen + n > c->pcap) {
    size_t cap = c->pcap ? c->pcap : 256;
    while (cap < c->plen + n) cap *= 2;
    char *q = realloc(c->pend, cap);
    if (!q) return -ENOMEM;
    c->pend = q;
    c->pcap = cap;
  }
  memcpy(c->pend + c->plen, p, n);
  c->plen += n;
  return 0;
}

/* Forget the pending line, giving back a buffer that grew large. */
static void conn_pend_reset(tide_conn_t *c) {
  c->plen = 0;
  if (c->pcap > CONN_KEEP_CAP) {
    free(c->pend);
    c->pend = NULL;
    c->pcap = 0;
  }
}

static void srv_on_alloc(uv_handle_t *uvh, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  tide_conn_t *c = uvh->data;
  buf->base = c->server->srv->rbuf;
  buf->len = SRV_READ_SIZE;
}

/* Hand n lines to the callback. Returns 1 when the connection is still
 * open afterwards (the callback may close the server or the loop). */
static int conn_deliver(tide_conn_t *c, size_t n) {
  if (n == 0) return 1;
  tide_handle_t *h = c->server;
  h->srv->stats.lines += n;
  h->cb.lines(h, h->data, h->srv->lines, n);
  return !c->closing;
}

/* The bytes of one read: cut into lines (decode.h's line rule), delivered,
 * the rest kept. */
static void conn_on_data(tide_conn_t *c, const char *p, size_t n) {
  tide_handle_t *h = c->server;
  tide_srv_t *srv = h->srv;
  const char *end = p + n;
  size_t nl = 0;
  /* The pending bytes continue the first segment only; they are reset after
   * delivery, as the first slice may point into them until then. */
  size_t carried = c->plen;
  int rc = 0, used_pend = 0;
  /* At most one line per LF, plus none: count LFs to size the slice array. */
  size_t lfs = 0;
  for (const char *q = p; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++) lfs++;
  if (lfs && (rc = srv_reserve_lines(srv, lfs))) {
    srv_error(h, rc, c->peer);
    if (!c->closing) conn_close(c);
    return;
  }
  while (p < end) {
    size_t len, used;
    int lf = tide_frame_line(p, (size_t)(end - p), 0, &len, &used) == TIDE_FRAME_RECORD;
    if (!lf) used = (size_t)(end - p);
    size_t raw = lf ? used - 1 : used; /* the bytes before the LF */
    if (c->skipping) {
      if (lf) c->skipping = 0;
    } else if (carried + raw > srv->max_line) {
      /* Too long: report once, drop what is pending and skip to the LF. */
      carried = 0;
      conn_pend_reset(c);
      c->skipping = !lf;
      srv_error(h, TIDE_ETOOBIG, c->peer);
      if (c->closing) return;
    } else if (!lf) {
      break; /* the tail: kept below, after delivery */
    } else if (carried > 0) {
      /* the line begun by earlier reads, framed whole (its CR may be pending) */
      if ((rc = conn_pend(c, p, used))) break;
      tide_frame_line(c->pend, c->plen, 0, &len, &used);
      used = raw + 1;
      srv->lines[nl].ptr = c->pend;
      srv->lines[nl++].len = len;
      carried = 0;
      used_pend = 1;
    } else {
      srv->lines[nl].ptr = p;
      srv->lines[nl++].len = len;
    }
    p += used;
  }
  if (rc) { /* ENOMEM: drop the connection */
    srv_error(h, rc, c->peer);
    if (!c->closing) conn_close(c);
    return;
  }
  if (!conn_deliver(c, nl)) return;
  if (used_pend) conn_pend_reset(c);
  if (p < end && (rc = conn_pend(c, p, (size_t)(end - p)))) {
    srv_error(h, rc, c->peer);
    if (!c->closing) conn_close(c);
  }
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tide_conn_t *c = s->data;
  if (c->closing) return;
  tide_handle_t *h = c->server;
  if (nread > 0) {
    h->srv->stats.bytes += (uint64_t)nread;
    conn_on_data(c, buf->base, (size_t)nread);
  } else if (nread == UV_EOF) {
    /* The peer is done: its last line counts even without an LF. */
    if (c->plen > 0 && !c->skipping) {
      int rc = srv_reserve_lines(h->srv, 1);
      if (rc) {
        srv_error(h, rc, c->peer);
        if (!c->closing) conn_close(c);
        return;
      }
      size_t len, used;
      tide_frame_line(c->pend, c->plen, 1, &len, &used);
      h->srv->lines[0].ptr = c->pend;
      h->srv->lines[0].len = len;
      if (!conn_deliver(c, 1)) return;
    }
    conn_close(c);
  } else if (nread < 0) {
    srv_error(h, (int)nread, c->peer);
    if (!c->closing) conn_close(c);
  }
}

/* "ip:port" of an address, or "?" */
static void addr_text(const struct sockaddr_storage *ss, char *out, size_t len) {
  char ip[INET6_ADDRSTRLEN] = "?";
  int port = 0;
  if (ss->ss_family == AF_INET) {
    const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
    uv_ip4_name(a, ip, sizeof ip);
    port = ntohs(a->sin_port);
    snprintf(out, len, "%s:%d", ip, port);
  } else if (ss->ss_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
    uv_ip6_name(a, ip, sizeof ip);
    port = ntohs(a->sin6_port);
    snprintf(out, len, "[%s]:%d", ip, port);
  } else {
    snprintf(out, len, "?");
  }
}

static void srv_on_connection(uv_stream_t *s, int status) {
  tide_handle_t *h = s->data;
  if (status < 0) {
    srv_error(h, status, "");
    return;
  }
  tide_conn_t *c = calloc(1, sizeof *c);
  if (!c) {
    /* Accept into nothing is impossible: leave it in the backlog and say why. */
    srv_error(h, -ENOMEM, "");
    return;
  }
  c->loop = h->loop;
  c->tcp.data = c;
  int rc = uv_tcp_init(&h->loop->uv, &c->tcp);
  if (rc) {
    free(c);
    srv_error(h, rc, "");
    return;
  }
  /* On the list before anything can fail, so one close path serves all. */
  c->server = h;
  c->next = h->srv->conns;
  if (c->next) c->next->prev = c;
  h->srv->conns = c;
  h->srv->stats.open++;
  rc = uv_accept(s, (uv_stream_t *)&c->tcp);
  if (rc == 0) {
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0)
      addr_text(&ss, c->peer, sizeof c->peer);
    else
      snprintf(c->peer, sizeof c->peer, "?");
    rc = uv_read_start((uv_stream_t *)&c->tcp, srv_on_alloc, conn_on_read);
  }
  if (rc) {
    conn_close(c);
    srv_error(h, rc, "");
    return;
  }
  h->srv->stats.accepted++;
}

/* Resolve host:port into ss (numeric first, then getaddrinfo). */
static int srv_resolve(const char *host, int port, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  if (getaddrinfo(host, NULL, &hints, &res) != 0 || res == NULL) return TIDE_ENOTFOUND;
  memcpy(ss, res->ai_addr, res->ai_addrlen <= sizeof *ss ? res->ai_addrlen : sizeof *ss);
  freeaddrinfo(res);
  if (ss->ss_family == AF_INET)
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
  else if (ss->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
  else
    return TIDE_ENOTFOUND;
  return 0;
}

int tide_server_start(tide_loop_t *loop, const char *host, int port, size_t max_line, tide_lines_cb on_lines,
                      tide_server_error_cb on_error, tide_release_cb release, void *data, tide_handle_t **out) {
  *out = NULL;
  if (loop->closed) return TIDE_ECLOSED;
  if (port < 0 || port > 65535 || max_line == 0) return TIDE_EINVAL;
  struct sockaddr_storage ss;
  int rc = srv_resolve(host, port, &ss);
  if (rc) return rc;
  tide_handle_t *h = handle_new(loop, TIDE_HANDLE_SERVER, release, data);
  if (!h) return -ENOMEM;
  h->cb.lines = on_lines;
  tide_srv_t *srv = calloc(1, sizeof *srv);
  char *rbuf = malloc(SRV_READ_SIZE);
  if (!srv || !rbuf) {
    free(srv);
    free(rbuf);
    free(h);
    return -ENOMEM;
  }
  srv->rbuf = rbuf;
  srv->on_error = on_error;
  srv->max_line = max_line;
  h->srv = srv;
  rc = uv_tcp_init(&loop->uv, &h->u.tcp);
  if (rc) {
    srv_free(srv);
    free(h);
    return rc;
  }
  rc = uv_tcp_bind(&h->u.tcp, (const struct sockaddr *)&ss, 0);
  if (!rc) rc = uv_listen((uv_stream_t *)&h->u.tcp, 128, srv_on_connection);
  if (!rc) {
    struct sockaddr_storage bound;
    int len = sizeof bound;
    rc = uv_tcp_getsockname(&h->u.tcp, (struct sockaddr *)&bound, &len);
    if (!rc)
      srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                    : ((struct sockaddr_in *)&bound)->sin_port);
  }
  if (rc) {
    handle_abandon(h); /* frees srv in the close callback */
    return rc;
  }
  handle_link(h);
  *out = h;
  return 0;
}

int tide_server_port(const tide_handle_t *h) { return h->srv ? h->srv->port : -1; }

void tide_server_stats(const tide_handle_t *h, tide_server_stats_t *out) {
  if (h->srv)
    *out = h->srv->stats;
  else
    memset(out, 0, sizeof *out);
}


/* ---- input readers ------------------------------------------------------------------
 *
 * One read buffer per reader; each chunk is handed on before the next read,
 * so the bytes are valid only during the callback. `ended` is set before the
 * end is reported, and a reader that ended ignores pause and resume. */

#define IN_READ_SIZE 65536

typedef struct tide_in {
  tide_input_kind_t kind;
  int fd;
  int raw;    /* the terminal is in raw mode now */
  int paused; /* tide_input_pause was called (and not resume since) */
  int ended;  /* end of input or a read error was reported */
  char buf[IN_READ_SIZE];
} tide_in_t;

/* Terminal modes are process-wide (libuv keeps the one from before in a
 * static); so is this flag: the exit handler is registered once. */
static int input_atexit_registered;

static void input_atexit(void) { uv_tty_reset_mode(); }

/* Closing: the terminal gets its mode from before back. */
static void input_closing(tide_handle_t *h) {
  tide_in_t *in = h->in;
  if (in->kind == TIDE_INPUT_TTY && in->raw) {
    uv_tty_set_mode(&h->u.tty, UV_TTY_MODE_NORMAL);
    in->raw = 0;
  }
}

static void input_end(tide_handle_t *h, int status) {
  h->in->ended = 1;
  if (h->in->kind == TIDE_INPUT_FILE)
    uv_idle_stop(&h->u.idle);
  else
    uv_read_stop((uv_stream_t *)&h->u.handle);
  h->cb.input(h, h->data, NULL, 0, status);
}

static void input_on_alloc(uv_handle_t *uvh, size_t suggested, uv_buf_t *buf) {
  (void)suggested;
  tide_handle_t *h = uvh->data;
  buf->base = h->in->buf;
  buf->len = IN_READ_SIZE;
}

static void input_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  tide_handle_t *h = s->data;
  if (h->closing || h->in->ended) return;
  if (nread > 0)
    h->cb.input(h, h->data, buf->base, (size_t)nread, 0);
  else if (nread == UV_EOF)
    input_end(h, 0);
  else if (nread < 0)
    input_end(h, (int)nread);
}

/* A file: one read() per loop iteration while not paused. */
static void input_on_idle(uv_idle_t *idle) {
  tide_handle_t *h = idle->data;
  tide_in_t *in = h->in;
  if (h->closing || in->ended) return;
  ssize_t n = read(in->fd, in->buf, IN_READ_SIZE);
  if (n > 0)
    h->cb.input(h, h->data, in->buf, (size_t)n, 0);
  else if (n == 0)
    input_end(h, 0);
  else if (errno != EINTR && errno != EAGAIN)
    input_end(h, -errno);
}

static int input_read_start(tide_handle_t *h) {
  if (h->in->kind == TIDE_INPUT_FILE) return uv_idle_start(&h->u.idle, input_on_idle);
  return uv_read_start((uv_stream_t *)&h->u.handle, input_on_alloc, input_on_read);
}

int tide_input_start(tide_loop_t *loop, int fd, int raw, tide_input_cb cb, tide_release_cb release, void *data,
                     tide_handle_t **out) {
  *out = NULL;
  if (loop->closed) return TIDE_ECLOSED;
  tide_input_kind_t kind;
  switch (uv_guess_handle(fd)) {
  case UV_TTY: kind = TIDE_INPUT_TTY; break;
  case UV_NAMED_PIPE: kind = TIDE_INPUT_PIPE; break;
  case UV_TCP: kind = TIDE_INPUT_TCP; break;
  case UV_FILE: kind = TIDE_INPUT_FILE; break;
  default: return UV_EINVAL;
  }
  tide_handle_t *h = handle_new(loop, TIDE_HANDLE_INPUT, release, data);
  tide_in_t *in = malloc(sizeof *in);
  if (!h || !in) {
    free(h);
    free(in);
    return -ENOMEM;
  }
  in->kind = kind;
  in->fd = fd;
  in->raw = in->paused = in->ended = 0;
  h->in = in;
  h->cb.input = cb;
  int rc;
  switch (kind) {
  case TIDE_INPUT_TTY: rc = uv_tty_init(&loop->uv, &h->u.tty, fd, 1); break;
  case TIDE_INPUT_PIPE:
  case TIDE_INPUT_TCP: {
    /* libuv closes a stream's fd when the handle closes (unless it is 0..2):
     * it gets a duplicate, so that the caller's fd stays open. */
    int dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dfd < 0) {
      rc = -errno;
      break;
    }
    rc = kind == TIDE_INPUT_PIPE ? uv_pipe_init(&loop->uv, &h->u.pipe, 0) : uv_tcp_init(&loop->uv, &h->u.tcp);
    if (rc) {
      close(dfd);
      break;
    }
    rc = kind == TIDE_INPUT_PIPE ? uv_pipe_open(&h->u.pipe, dfd) : uv_tcp_open(&h->u.tcp, dfd);
    if (rc) {
      close(dfd);        /* not taken by the handle */
      handle_abandon(h); /* frees in and h in the close callback */
      return rc;
    }
    break;
  }
  default: rc = uv_idle_init(&loop->uv, &h->u.idle); break;
  }
  if (rc) {
    free(in);
    free(h);
    return rc;
  }
  if (kind == TIDE_INPUT_TTY && raw) {
    rc = uv_tty_set_mode(&h->u.tty, UV_TTY_MODE_RAW);
    if (rc == 0) {
      in->raw = 1;
      if (!input_atexit_registered && atexit(input_atexit) == 0) input_atexit_registered = 1;
    }
  }
  if (rc == 0) rc = input_read_start(h);
  if (rc) {
    input_closing(h); /* back to the mode from before */
    handle_abandon(h);
    return rc;
  }
  handle_link(h);
  *out = h;
  return 0;
}

tide_input_kind_t tide_input_kind(const tide_handle_t *h) { return h->in ? h->in->kind : 0; }

int tide_input_set_raw(tide_handle_t *h, int raw) {
  if (!h->in || h->in->kind != TIDE_INPUT_TTY || h->closing) return UV_EINVAL;
  raw = raw != 0;
  if (h->in->raw == raw) return 0;
  int rc = uv_tty_set_mode(&h->u.tty, raw ? UV_TTY_MODE_RAW : UV_TTY_MODE_NORMAL);
  if (rc == 0) {
    h->in->raw = raw;
    if (raw && !input_atexit_registered && atexit(input_atexit) == 0) input_atexit_registered = 1;
  }
  return rc;
}

int tide_input_pause(tide_handle_t *h) {
  if (!h->in || h->closing) return UV_EINVAL;
  if (h->in->ended || h->in->paused) return 0;
  h->in->paused = 1;
  if (h->in->kind == TIDE_INPUT_FILE) return uv_idle_stop(&h->u.idle);
  return uv_read_stop((uv_stream_t *)&h->u.handle);
}

int tide_input_resume(tide_handle_t *h) {
  if (!h->in || h->closing) return UV_EINVAL;
  if (h->in->ended || !h->in->paused) return 0;
  int rc = input_read_start(h);
  if (rc == 0) h->in->paused = 0;
  return rc;
}

int tide_input_winsize(tide_handle_t *h, int *cols, int *rows) {
  if (!h->in || h->in->kind != TIDE_INPUT_TTY || h->closing) return UV_EINVAL;
  return uv_tty_get_winsize(&h->u.tty, cols, rows);
}
