/*
 * http.c: the read-only HTTP server of http.h.
 *
 * Structures. A server owns its listening handle and a doubly linked list
 * of open connections. A connection owns two libuv handles (its TCP stream
 * and its timer), its parser, the URL seen so far and, once answered, the
 * answer's head and body until they are written. Its memory is freed when
 * both handles' close callbacks ran; the server's when its listener's ran
 * and no connection memory remains (`live` counts those), so a close
 * callback never points into freed memory, whoever closed what first.
 *
 * A connection is READING (bytes go to the parser; the timer runs from the
 * accept), then WRITING (its one answer queued; the timer restarted for the
 * write), then LINGER (the answer is written and the write side shut down;
 * what the client still sends is read and dropped until it closes, or the
 * timer, restarted once more, fires), then CLOSING (handles closing;
 * nothing happens to it any more). A connection stays in the server's list
 * until it is CLOSING. All server reads share one buffer: libuv hands each
 * read to its callback before the next allocation, and the parser copies
 * nothing out of it but the URL (bounded).
 *
 * Out of memory at an accept, the connection is accepted into the server's
 * one spare handle and closed at once: libuv stops watching a listener whose
 * pending connection was not accepted, so leaving it in the backlog would
 * leave the server deaf for good.
 */
#include <stdio.h>
#include <string.h>

#include <http_parser.h>

#include "err.h"
#include "http.h"

#define URL_MAX 2048
#define READ_BUF (16 * 1024)

enum { READING = 1, WRITING = 2, LINGER = 3, CLOSING = 4 };

typedef struct conn conn_t;

struct tide_http_server {
  uv_tcp_t listener;
  uv_loop_t *loop;
  tide_http_limits_t lim;
  tide_http_handler handler;
  void *data;
  conn_t *head;          /* connections not yet CLOSING (READING, WRITING or LINGER) */
  uint64_t live;         /* connections whose memory is not yet freed, and the spare while closing */
  uv_tcp_t spare;        /* accepts a connection there was no memory for, to close it */
  int spare_busy;        /* the spare's close callback has not run */
  int spare_wanted;      /* a connection came while the spare was busy: accept it once it is free */
  int listener_open;     /* the listener's close callback has not run */
  int closed;            /* tide_http_close was called */
  int port;
  tide_http_stats_t stats;
  char rbuf[READ_BUF];
};

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;
  http_parser parser;
  tide_http_server_t *srv;
  conn_t *prev, *next;
  int state;
  int handles;   /* handles whose close callback has not run */
  int refuse;    /* a status the server answers itself, set by a parser callback */
  int complete;  /* the request was parsed to its end */
  size_t nread;  /* bytes received */
  size_t url_len;
  char url[URL_MAX + 1];
  uv_write_t wreq;
  uv_shutdown_t sreq;
  char head[384];
  tide_buf_t body;
};

static const http_parser_settings settings;

const char *tide_http_reason(int status) {
  switch (status) {
  case 200: return "OK";
  case 400: return "Bad Request";
  case 404: return "Not Found";
  case 405: return "Method Not Allowed";
  case 408: return "Request Timeout";
  case 414: return "URI Too Long";
  case 431: return "Request Header Fields Too Large";
  case 500: return "Internal Server Error";
  case 503: return "Service Unavailable";
  default: return "Unknown";
  }
}

/* ---- closing ----------------------------------------------------------------- */

static void server_maybe_free(tide_http_server_t *s) {
  if (s->closed && !s->listener_open && s->live == 0) free(s);
}

static void on_conn_closed(uv_handle_t *h) {
  conn_t *c = h->data;
  if (--c->handles > 0) return;
  tide_http_server_t *s = c->srv;
  tide_buf_free(&c->body);
  free(c);
  s->live--;
  server_maybe_free(s);
}

static void conn_close(conn_t *c) {
  if (c->state == CLOSING) return;
  tide_http_server_t *s = c->srv;
  c->state = CLOSING;
  if (c->prev) c->prev->next = c->next;
  else s->head = c->next;
  if (c->next) c->next->prev = c->prev;
  c->prev = c->next = NULL;
  s->stats.open--;
  c->handles = 2;
  uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
  uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

/* ---- answering --------------------------------------------------------------- */

static void on_timer(uv_timer_t *t);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

/* LINGER: what the client still sends after its answer is read and
 * dropped until it closes (or the timer fires), so that a client still
 * sending (an oversized request) reads its 4xx: closing a socket with
 * unread bytes would send a reset, which can destroy the answer before the
 * client reads it. */
static void on_linger_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  if (nread < 0) conn_close(st->data);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  conn_t *c = req->data;
  if (c->state != LINGER) return;
  if (status < 0) conn_close(c);
}

static void on_written(uv_write_t *req, int status) {
  conn_t *c = req->data;
  if (c->state != WRITING) return;
  if (status < 0) {
    conn_close(c);
    return;
  }
  c->state = LINGER;
  c->sreq.data = c;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0 ||
      uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_linger_read) != 0)
    conn_close(c);
  else
    uv_timer_start(&c->timer, on_timer, c->srv->lim.timeout_ms, 0);
}

/* Queue the answer whose status and type are given and whose body is in
 * c->body; the timer now bounds the write. */
static void conn_send(conn_t *c, int status, const char *type, int head_only) {
  tide_http_server_t *s = c->srv;
  if (c->state == READING) uv_read_stop((uv_stream_t *)&c->tcp);
  c->state = WRITING;
  int n = snprintf(c->head, sizeof c->head,
                   "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n"
                   "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\r\n",
                   status, tide_http_reason(status), type ? type : "text/plain; charset=utf-8", c->body.len);
  if (n < 0 || (size_t)n >= sizeof c->head) { /* a type too long for the head: not sent */
    n = snprintf(c->head, sizeof c->head,
                 "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    c->body.len = 0;
  }
  uv_buf_t bufs[2] = {uv_buf_init(c->head, (unsigned)n), uv_buf_init(c->body.data, (unsigned)c->body.len)};
  unsigned nbufs = head_only || c->body.len == 0 ? 1 : 2;
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, nbufs, on_written) != 0) {
    conn_close(c);
    return;
  }
  uv_timer_start(&c->timer, on_timer, s->lim.timeout_ms, 0);
}

static void conn_refuse(conn_t *c, int status) {
  c->srv->stats.rejected++;
  c->body.len = 0;
  const char *r = tide_http_reason(status);
  if (tide_buf_puts(&c->body, r) || tide_buf_putc(&c->body, '\n')) c->body.len = 0;
  conn_send(c, status, NULL, 0);
}

/* The request is complete: ask the handler, send its answer. */
static void conn_answer(conn_t *c) {
  tide_http_server_t *s = c->srv;
  const char *method = http_method_str((enum http_method)c->parser.method);
  tide_http_request_t req = {method, c->url, c->url_len};
  tide_http_response_t res = {200, NULL, TIDE_BUF_INIT};
  s->stats.requests++;
  s->handler(s->data, &req, &res);
  if (c->state == CLOSING) { /* the handler closed the server */
    tide_buf_free(&res.body);
    return;
  }
  tide_buf_free(&c->body);
  c->body = res.body;
  char type[128];
  snprintf(type, sizeof type, "%s", res.type ? res.type : "text/plain; charset=utf-8");
  int status = res.status >= 100 && res.status <= 599 ? res.status : 500;
  conn_send(c, status, type, c->parser.method == HTTP_HEAD);
}

static void on_timer(uv_timer_t *t) {
  conn_t *c = t->data;
  if (c->state != LINGER) c->srv->stats.timeouts++;
  if (c->state == READING) {
    conn_refuse(c, 408);
  } else {
    conn_close(c); /* the answer was not taken, or the client did not leave, in time */
  }
}

/* ---- parsing ------------------------------------------------------------------ */

static int on_url(http_parser *p, const char *at, size_t len) {
  conn_t *c = p->data;
  if (len > URL_MAX - c->url_len) {
    c->refuse = 414;
    return 1;
  }
  memcpy(c->url + c->url_len, at, len);
  c->url_len += len;
  c->url[c->url_len] = 0;
  return 0;
}

static int on_headers_complete(http_parser *p) {
  conn_t *c = p->data;
  if (p->method != HTTP_GET && p->method != HTTP_HEAD) {
    c->refuse = 405;
    return -1; /* 1 and 2 mean "skip the body" to http_parser; others stop it */
  }
  if ((p->flags & F_CHUNKED) || (p->content_length > 0 && p->content_length != ULLONG_MAX)) {
    c->refuse = 400; /* reads carry no body */
    return -1;
  }
  return 0;
}

static int on_message_complete(http_parser *p) {
  conn_t *c = p->data;
  c->complete = 1;
  http_parser_pause(p, 1); /* bytes after the request are ignored */
  return 0;
}

static const http_parser_settings settings = {
    .on_url = on_url, .on_headers_complete = on_headers_complete, .on_message_complete = on_message_complete};

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  conn_t *c = h->data;
  (void)suggested;
  *buf = uv_buf_init(c->srv->rbuf, READ_BUF);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  conn_t *c = st->data;
  if (c->state != READING) return;
  if (nread < 0) { /* the peer left (or the read failed) before its request was complete */
    conn_close(c);
    return;
  }
  if (nread == 0) return;
  c->nread += (size_t)nread;
  http_parser_execute(&c->parser, &settings, buf->base, (size_t)nread);
  enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
  if (c->complete) conn_answer(c);
  else if (c->refuse) conn_refuse(c, c->refuse);
  else if (e == HPE_HEADER_OVERFLOW || c->nread > c->srv->lim.max_request) conn_refuse(c, 431);
  else if (e != HPE_OK) conn_refuse(c, 400);
}

/* ---- listening ---------------------------------------------------------------- */

static void on_connection(uv_stream_t *ls, int status);

static void on_spare_closed(uv_handle_t *h) {
  tide_http_server_t *s = h->data;
  s->spare_busy = 0;
  s->live--;
  if (s->spare_wanted && !s->closed) {
    s->spare_wanted = 0;
    on_connection((uv_stream_t *)&s->listener, 0); /* the connection that waited */
  }
  server_maybe_free(s);
}

/* No memory for connection state: accept the connection into the spare
 * handle and close it (the client sees the connection closed), so that
 * the listener goes on accepting (see the file header). */
static void refuse_for_memory(tide_http_server_t *s) {
  s->stats.dropped++;
  if (s->spare_busy) { /* one at a time: this one is accepted once the spare is free */
    s->spare_wanted = 1;
    return;
  }
  uv_tcp_init(s->loop, &s->spare);
  s->spare.data = s;
  s->spare_busy = 1;
  s->live++;
  uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&s->spare);
  uv_close((uv_handle_t *)&s->spare, on_spare_closed);
}

static void on_connection(uv_stream_t *ls, int status) {
  tide_http_server_t *s = ls->data;
  if (status < 0 || s->closed) return;
  conn_t *c = calloc(1, sizeof *c);
  if (c == NULL) {
    refuse_for_memory(s);
    return;
  }
  c->srv = s;
  uv_tcp_init(s->loop, &c->tcp);
  uv_timer_init(s->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->state = READING;
  s->live++;
  s->stats.open++;
  c->next = s->head;
  if (s->head) s->head->prev = c;
  s->head = c;
  if (uv_accept(ls, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  s->stats.accepted++;
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  if (s->stats.open > s->lim.max_connections) {
    conn_refuse(c, 503);
  } else if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    conn_close(c);
    return;
  }
  if (c->state == READING) uv_timer_start(&c->timer, on_timer, s->lim.timeout_ms, 0);
}

static void on_listener_closed(uv_handle_t *h) {
  tide_http_server_t *s = h->data;
  s->listener_open = 0;
  server_maybe_free(s);
}

static int resolve(uv_loop_t *loop, const char *host, int port, struct sockaddr_storage *out) {
  struct addrinfo hints;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  uv_getaddrinfo_t req;
  int rc = uv_getaddrinfo(loop, &req, NULL, host, NULL, &hints);
  if (rc != 0) return TIDE_ENOTFOUND;
  if (req.addrinfo == NULL || req.addrinfo->ai_addrlen > sizeof *out) {
    uv_freeaddrinfo(req.addrinfo);
    return TIDE_ENOTFOUND;
  }
  memcpy(out, req.addrinfo->ai_addr, req.addrinfo->ai_addrlen);
  uv_freeaddrinfo(req.addrinfo);
  if (out->ss_family == AF_INET6) ((struct sockaddr_in6 *)out)->sin6_port = htons((uint16_t)port);
  else ((struct sockaddr_in *)out)->sin_port = htons((uint16_t)port);
  return 0;
}

int tide_http_start(uv_loop_t *loop, const char *host, int port, const tide_http_limits_t *limits,
                    tide_http_handler handler, void *data, tide_http_server_t **out) {
  struct sockaddr_storage addr;
  int rc = resolve(loop, host, port, &addr);
  if (rc) return rc;
  tide_http_server_t *s = calloc(1, sizeof *s);
  if (s == NULL) return -ENOMEM;
  s->loop = loop;
  s->handler = handler;
  s->data = data;
  if (limits) s->lim = *limits;
  if (s->lim.max_request == 0) s->lim.max_request = 16 * 1024;
  if (s->lim.timeout_ms == 0) s->lim.timeout_ms = 10000;
  if (s->lim.max_connections == 0) s->lim.max_connections = 64;
  uv_tcp_init(loop, &s->listener);
  s->listener.data = s;
  s->listener_open = 1;
  rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
  if (rc == 0) {
    struct sockaddr_storage bound;
    int len = sizeof bound;
    rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&bound, &len);
    if (rc == 0)
      s->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                  : ((struct sockaddr_in *)&bound)->sin_port);
  }
  if (rc != 0) {
    s->closed = 1;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed); /* frees s */
    return rc;
  }
  *out = s;
  return 0;
}

int tide_http_port(const tide_http_server_t *s) { return s->port; }

void tide_http_stats(const tide_http_server_t *s, tide_http_stats_t *out) { *out = s->stats; }

void tide_http_close(tide_http_server_t *s) {
  if (s->closed) return;
  s->closed = 1;
  while (s->head) conn_close(s->head);
  uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}
