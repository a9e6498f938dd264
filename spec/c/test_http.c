/*
 * test_http.c: the read-only HTTP server (core/http.c) against real TCP
 * clients on loopback, all on one libuv loop. Each test ends with the
 * server closed and uv_loop_close succeeding: nothing is left open.
 */
#include <string.h>

#include "http.h"
#include "t.h"

/* ---- allocation failure on demand ----------------------------------------------
 * This program's calloc stands in for the C library's (or the sanitizer's,
 * under make asan) for every caller in the process, http.c's included: while
 * calloc_fail is set, calls fail with ENOMEM. */
static int calloc_fail;
static uint64_t calloc_failed;
#if defined(__SANITIZE_ADDRESS__)
void *__interceptor_calloc(size_t n, size_t size);
#define NEXT_CALLOC __interceptor_calloc
#else
void *__libc_calloc(size_t n, size_t size);
#define NEXT_CALLOC __libc_calloc
#endif
void *calloc(size_t n, size_t size) {
  if (calloc_fail) {
    calloc_failed++;
    errno = ENOMEM;
    return NULL;
  }
  return NEXT_CALLOC(n, size);
}

/* ---- a client: connect, send bytes, read the answer until EOF -------------- */

typedef struct client {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  char *req;
  size_t len;
  int keep_open; /* send, then neither read nor close (until the server does) */
  tide_buf_t resp;
  int done;
  int *pending;            /* clients not done yet */
  tide_http_server_t *srv; /* closed when the last client is done */
} client_t;

static void on_client_closed(uv_handle_t *h) {
  client_t *c = h->data;
  c->done = 1;
  if (--*c->pending == 0 && c->srv) tide_http_close(c->srv);
}

static void on_client_alloc(uv_handle_t *h, size_t n, uv_buf_t *buf) {
  client_t *c = h->data;
  tide_buf_reserve(&c->resp, n);
  *buf = uv_buf_init(c->resp.data + c->resp.len, (unsigned)(c->resp.cap - c->resp.len));
}

static void on_client_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  client_t *c = s->data;
  (void)buf;
  if (n > 0) c->resp.len += (size_t)n;
  if (n < 0) uv_close((uv_handle_t *)&c->tcp, on_client_closed);
}

static void on_client_written(uv_write_t *w, int status) {
  (void)w;
  (void)status; /* a reset by the server shows in the read */
}

static void on_client_connected(uv_connect_t *req, int status) {
  client_t *c = req->data;
  T_EQ_INT(status, 0);
  if (status) {
    uv_close((uv_handle_t *)&c->tcp, on_client_closed);
    return;
  }
  uv_buf_t b = uv_buf_init(c->req, (unsigned)c->len);
  if (c->len) uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_client_written);
  uv_read_start((uv_stream_t *)&c->tcp, on_client_alloc, on_client_read);
}

static void client_start(uv_loop_t *loop, client_t *c, int port, const char *req, size_t len) {
  struct sockaddr_in a;
  uv_ip4_addr("127.0.0.1", port, &a);
  c->req = (char *)req;
  c->len = len;
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c->creq.data = c;
  uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&a, on_client_connected);
}

/* The answer's status line, NUL-terminated in place of its CR. */
static const char *status_line(client_t *c) {
  tide_buf_cstr(&c->resp);
  char *cr = c->resp.data ? strstr(c->resp.data, "\r\n") : NULL;
  if (cr) *cr = 0;
  return c->resp.data ? c->resp.data : "";
}

/* ---- the handler ---------------------------------------------------------------- */

typedef struct seen {
  int calls;
  char method[8], url[64];
  tide_http_server_t *close_me; /* the handler closes this server */
} seen_t;

static void handler(void *data, const tide_http_request_t *req, tide_http_response_t *res) {
  seen_t *s = data;
  s->calls++;
  snprintf(s->method, sizeof s->method, "%s", req->method);
  snprintf(s->url, sizeof s->url, "%s", req->url);
  res->type = "text/x-test";
  tide_buf_puts(&res->body, "hello ");
  tide_buf_puts(&res->body, req->url);
  if (s->close_me) tide_http_close(s->close_me);
}

static void finish(uv_loop_t *loop) {
  uv_run(loop, UV_RUN_DEFAULT);
  T_EQ_INT(uv_loop_close(loop), 0); /* every handle closed, every memory block freed by its callback */
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_get(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  seen_t seen = {0};
  tide_http_server_t *s = NULL;
  T_EQ_INT(tide_http_start(&loop, "127.0.0.1", 0, NULL, handler, &seen, &s), 0);
  int pending = 2;
  client_t a = {.pending = &pending, .srv = s}, h = {.pending = &pending, .srv = s};
  const char *get = "GET /metrics?x=1 HTTP/1.1\r\nHost: t\r\n\r\n";
  const char *head = "HEAD / HTTP/1.0\r\n\r\n";
  client_start(&loop, &a, tide_http_port(s), get, strlen(get));
  client_start(&loop, &h, tide_http_port(s), head, strlen(head));
  finish(&loop);
  tide_buf_cstr(&a.resp);
  T_CHECK(strstr(a.resp.data, "Content-Type: text/x-test\r\n") != NULL);
  T_CHECK(strstr(a.resp.data, "Content-Length: 18\r\n") != NULL);
  T_CHECK(strstr(a.resp.data, "\r\n\r\nhello /metrics?x=1") != NULL);
  T_EQ_STR(status_line(&a), "HTTP/1.1 200 OK");
  tide_buf_cstr(&h.resp);
  T_CHECK(strstr(h.resp.data, "\r\n\r\n") == h.resp.data + h.resp.len - 4); /* HEAD: no body */
  T_EQ_STR(status_line(&h), "HTTP/1.1 200 OK");
  T_EQ_INT(seen.calls, 2);
  T_EQ_STR(seen.method, "HEAD");
  tide_buf_free(&a.resp);
  tide_buf_free(&h.resp);
}

/* Every bad request gets its 4xx and never reaches the handler. */
static void test_refused(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  seen_t seen = {0};
  tide_http_server_t *s = NULL;
  tide_http_limits_t lim = {.max_request = 4096, .timeout_ms = 100, .max_connections = 8};
  T_EQ_INT(tide_http_start(&loop, "127.0.0.1", 0, &lim, handler, &seen, &s), 0);

  static char big[(1 << 20) + 64];
  size_t bl = (size_t)snprintf(big, 64, "GET / HTTP/1.1\r\nX-Big: ");
  memset(big + bl, 'a', 1 << 20);
  bl += 1 << 20;
  memcpy(big + bl, "\r\n\r\n", 4);
  bl += 4;
  static char url[4000];
  size_t ul = (size_t)snprintf(url, sizeof url, "GET /");
  memset(url + ul, 'u', 3000);
  ul += 3000;
  ul += (size_t)snprintf(url + ul, sizeof url - ul, " HTTP/1.1\r\n\r\n");

  struct {
    const char *req;
    size_t len;
    const char *want;
  } cases[] = {
      {"\x00\xff garbage\r\n\r\n", 14, "HTTP/1.1 400 Bad Request"},
      {big, bl, "HTTP/1.1 431 Request Header Fields Too Large"},
      {"GET / HTTP/1.1\r\nHo", 18, "HTTP/1.1 408 Request Timeout"},
      {"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 40, "HTTP/1.1 405 Method Not Allowed"},
      {"GET / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 39, "HTTP/1.1 400 Bad Request"},
      {url, ul, "HTTP/1.1 414 URI Too Long"},
      {"", 0, "HTTP/1.1 408 Request Timeout"}, /* connects, sends nothing */
  };
  enum { N = sizeof cases / sizeof cases[0] };
  client_t c[N];
  int pending = N;
  memset(c, 0, sizeof c);
  for (int i = 0; i < N; i++) {
    c[i].pending = &pending;
    c[i].srv = s;
    client_start(&loop, &c[i], tide_http_port(s), cases[i].req, cases[i].len);
  }
  finish(&loop);
  for (int i = 0; i < N; i++) {
    T_EQ_STR(status_line(&c[i]), cases[i].want);
    tide_buf_free(&c[i].resp);
  }
  T_EQ_INT(seen.calls, 0);
}

/* Beyond max_connections: 503, while the connection before it waits. */
static void test_max_connections(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  seen_t seen = {0};
  tide_http_server_t *s = NULL;
  tide_http_limits_t lim = {.timeout_ms = 200, .max_connections = 1};
  T_EQ_INT(tide_http_start(&loop, "127.0.0.1", 0, &lim, handler, &seen, &s), 0);
  int pending = 2;
  client_t a = {.pending = &pending, .srv = s}, b = {.pending = &pending, .srv = s};
  client_start(&loop, &a, tide_http_port(s), "GET /a HTTP/1.1\r\n", 17); /* incomplete: waits */
  tide_http_stats_t st = {0};
  while (st.accepted == 0) { /* a is accepted first */
    uv_run(&loop, UV_RUN_ONCE);
    tide_http_stats(s, &st);
  }
  client_start(&loop, &b, tide_http_port(s), "GET /b HTTP/1.1\r\n\r\n", 19);
  finish(&loop);
  T_EQ_STR(status_line(&a), "HTTP/1.1 408 Request Timeout");
  T_EQ_STR(status_line(&b), "HTTP/1.1 503 Service Unavailable");
  tide_buf_free(&a.resp);
  tide_buf_free(&b.resp);
}

/* A handler that closes the server: its answer is dropped, nothing leaks. */
static void test_close_in_handler(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  seen_t seen = {0};
  tide_http_server_t *s = NULL;
  T_EQ_INT(tide_http_start(&loop, "127.0.0.1", 0, NULL, handler, &seen, &s), 0);
  seen.close_me = s;
  int pending = 1;
  client_t a = {.pending = &pending}; /* the handler closes the server */
  client_start(&loop, &a, tide_http_port(s), "GET / HTTP/1.1\r\n\r\n", 18);
  finish(&loop);
  T_EQ_INT(seen.calls, 1);
  T_EQ_INT(a.resp.len, 0);
  tide_buf_free(&a.resp);
}

static void test_errors(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  seen_t seen = {0};
  tide_http_server_t *s = NULL, *s2 = NULL;
  T_EQ_INT(tide_http_start(&loop, "127.0.0.1", 0, NULL, handler, &seen, &s), 0);
  T_EQ_INT(tide_http_start(&loop, "127.0.0.1", tide_http_port(s), NULL, handler, &seen, &s2), UV_EADDRINUSE);
  T_CHECK(s2 == NULL);
  tide_http_stats_t st;
  tide_http_stats(s, &st);
  T_EQ_INT(st.accepted, 0);
  tide_http_close(s);
  finish(&loop);
  T_EQ_STR(tide_http_reason(404), "Not Found");
}

static int guard_fired;

static void on_guard(uv_timer_t *t) {
  guard_fired = 1;
  tide_http_close(t->data);
}

/* No memory for a connection: it is closed unanswered, counted, and the
 * server goes on accepting and answering (it used to leave the connection in
 * the backlog, and libuv then stops watching the listener for good). A
 * guard closes the server after 10 s: a deaf server fails the test, never
 * hangs it. */
static void test_no_memory_at_accept(void) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  seen_t seen = {0};
  tide_http_server_t *s = NULL;
  T_EQ_INT(tide_http_start(&loop, "127.0.0.1", 0, NULL, handler, &seen, &s), 0);
  uv_timer_t guard;
  uv_timer_init(&loop, &guard);
  guard.data = s;
  uv_timer_start(&guard, on_guard, 10000, 0);
  uv_unref((uv_handle_t *)&guard);
  int pending = 2; /* the first client's, then the second's */
  client_t a = {.pending = &pending}, b = {.pending = &pending, .srv = s};
  const char *get = "GET /x HTTP/1.1\r\n\r\n";
  client_start(&loop, &a, tide_http_port(s), get, strlen(get));
  calloc_fail = 1;
  while (calloc_failed == 0 && !guard_fired) uv_run(&loop, UV_RUN_ONCE); /* the server's accept: no memory */
  calloc_fail = 0;
  tide_http_stats_t st = {0};
  if (!guard_fired) tide_http_stats(s, &st);
  T_EQ_INT(st.dropped, 1);
  T_EQ_INT(st.accepted, 0);
  while (!a.done && !guard_fired) uv_run(&loop, UV_RUN_ONCE); /* closed on the client, unanswered */
  T_EQ_INT(a.resp.len, 0);
  /* the server still listens, and answers the next one */
  if (!guard_fired) client_start(&loop, &b, tide_http_port(s), get, strlen(get));
  else pending--;
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&guard, NULL);
  finish(&loop);
  T_CHECK(!guard_fired);
  T_EQ_STR(status_line(&b), "HTTP/1.1 200 OK");
  T_EQ_INT(seen.calls, 1);
  tide_buf_free(&a.resp);
  tide_buf_free(&b.resp);
}

int main(void) {
  T_RUN(test_get);
  T_RUN(test_refused);
  T_RUN(test_max_connections);
  T_RUN(test_close_in_handler);
  T_RUN(test_errors);
  T_RUN(test_no_memory_at_accept);
  T_DONE();
}
