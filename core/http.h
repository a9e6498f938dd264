/*
 * http.h: a small read-only HTTP/1.1 server on a libuv loop (the process's
 * one loop: no thread of its own), for tide's metrics endpoint, JSON API
 * and dashboard. Requests are parsed by Debian's http-parser (nodejs's
 * http_parser 2.9, a callback parser with no allocation of its own).
 *
 * What it serves. Every request that parses completely is handed to the
 * owner's handler, which fills a response (status, content type, body)
 * before it returns; the server writes it with `Connection: close` and
 * closes the connection once written (one request per connection: the
 * clients are a browser polling once a second and a Prometheus scraper,
 * for which keep-alive saves nothing worth its state). HEAD gets the
 * headers only.
 *
 * What it refuses, without calling the handler:
 *   400  bytes that are not an HTTP request (http_parser's error, or a body)
 *   405  a method other than GET and HEAD (it serves reads only)
 *   408  a request not complete within timeout_ms of the connection's accept
 *   414  a URL longer than 2 KiB
 *   431  a request head longer than max_request bytes
 *   503  a connection beyond max_connections (closed after the answer)
 * A connection whose answer is not written within timeout_ms of being
 * queued (a client that does not read) is closed. So one slow or hostile
 * client holds at most max_request bytes and one timer, for timeout_ms.
 *
 * Ownership. tide_http_start allocates the server; tide_http_close stops it
 * and closes every connection. The memory lives until libuv's close
 * callbacks ran (a later iteration of the loop); the caller must not touch
 * the server after tide_http_close, and the handler is never called again
 * once it returned. The server's handles must be closed before the loop
 * is (tide_loop_close refuses a loop with foreign handles open).
 *
 * Errors: functions returning int return 0, a negative libuv code (-errno
 * on Unix), TIDE_ENOTFOUND (a host that does not resolve) or -ENOMEM.
 */
#ifndef TIDE_HTTP_H
#define TIDE_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"

typedef struct tide_http_server tide_http_server_t;

/* A parsed request, valid during the handler call only. url is the request
 * target as sent (path and query, not decoded), NUL-terminated. */
typedef struct tide_http_request {
  const char *method; /* "GET" or "HEAD" */
  const char *url;
  size_t url_len;
} tide_http_request_t;

/* The handler's answer. status starts at 200 and type at NULL (sent as
 * text/plain); the handler appends the body to `body` (owned by the
 * server, freed once written). type must stay valid until the handler
 * returns (the server copies it). */
typedef struct tide_http_response {
  int status;
  const char *type;
  tide_buf_t body;
} tide_http_response_t;

typedef void (*tide_http_handler)(void *data, const tide_http_request_t *req, tide_http_response_t *res);

typedef struct tide_http_limits {
  size_t max_request;      /* bytes of a request head (431 beyond); 0: 16 KiB */
  uint64_t timeout_ms;     /* to receive a request, and to send its answer; 0: 10 s */
  uint32_t max_connections; /* open at once (503 beyond); 0: 64 */
} tide_http_limits_t;

/* A server's counters since it started. */
typedef struct tide_http_stats {
  uint64_t accepted; /* connections accepted */
  uint64_t open;     /* connections open now */
  uint64_t requests; /* requests handed to the handler */
  uint64_t rejected; /* requests answered 4xx/503 by the server itself */
  uint64_t timeouts; /* connections closed by timeout_ms */
  uint64_t dropped;  /* connections closed unanswered: no memory for them at the accept */
} tide_http_stats_t;

/* Listen on host:port (port 0: the system picks one, see tide_http_port).
 * host is a numeric IPv4/IPv6 address or a name resolved once, here (may
 * block); only that address is bound. limits may be NULL (the defaults).
 * Returns 0 and sets *out, TIDE_ENOTFOUND, a libuv code (UV_EADDRINUSE,
 * UV_EACCES ...) or -ENOMEM; on error nothing is left open. */
int tide_http_start(uv_loop_t *loop, const char *host, int port, const tide_http_limits_t *limits,
                    tide_http_handler handler, void *data, tide_http_server_t **out);

/* The bound port. */
int tide_http_port(const tide_http_server_t *s);

/* The server's counters. */
void tide_http_stats(const tide_http_server_t *s, tide_http_stats_t *out);

/* Stop listening and close every connection (answers not yet written are
 * dropped). The memory is freed by the close callbacks. */
void tide_http_close(tide_http_server_t *s);

/* The reason phrase of a status code ("Not Found"), "Unknown" for others. */
const char *tide_http_reason(int status);

#endif
