/*
 * l_http.c: the Lua binding of the read-only HTTP server (http.h).
 *
 *   local srv = core.http_listen(loop, host, port, handler [, opts])
 *                 -- tide.HttpServer, or nil, msg, name (EADDRINUSE ...)
 *   handler(method, url) -> status, content_type, body
 *   srv:port(); srv:stats(); srv:close(); srv:is_closed()
 *
 * opts: max_request (bytes of a request head, default 16384), timeout_ms
 * (to receive a request and to send its answer, default 10000),
 * max_connections (default 64).
 *
 * The handler runs on the loop, inside loop:run, for every request that
 * parsed (http.h answers the bad ones itself). It runs on a Lua thread of
 * the server's own (user value 1), under lua_pcall with a traceback: an
 * error in it becomes a 500 with a short page, its message and traceback
 * go to stderr (never to the client), it is counted in stats().errors, and
 * it never stops the loop or the queries on it. It must not yield.
 *
 * Memory. The userdata { l_http_t } points to the C server; user value 2
 * is the tide.Loop (so the loop outlives it). While open, the registry
 * holds the handler and the userdata itself (a server whose object the
 * program dropped still serves); close (srv:close(), __gc, __close) stops
 * the server, drops both refs, and the C memory goes with libuv's close
 * callbacks.
 */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "err.h"
#include "http.h"
#include "l_loop.h"
#include "l_tide.h"

#define HTTP_MT "tide.HttpServer"

typedef struct l_http {
  tide_http_server_t *s; /* NULL when closed */
  lua_State *T;          /* the handler's thread (user value 1) */
  int fn_ref, self_ref;
  uint64_t errors;       /* handler errors (500s) */
  char type[128];        /* the content type of the answer being made */
} l_http_t;

static int l_msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

/* Runs under lua_pcall on the handler's thread: call handler(method, url). */
static int l_call(lua_State *T) {
  const tide_http_request_t *req = lua_touserdata(T, 1);
  lua_pushvalue(T, 2); /* the handler */
  lua_pushstring(T, req->method);
  lua_pushlstring(T, req->url, req->url_len);
  lua_call(T, 2, 3);
  return 3;
}

/* A 500: the failure, with its traceback, goes to stderr, naming the
 * request; the client gets a short page without it (a traceback shows the
 * server's code and paths to whoever asks). */
static void answer_error(l_http_t *u, const tide_http_request_t *req, tide_http_response_t *res, const char *msg) {
  u->errors++;
  fprintf(stderr, "tide: http: %s %.*s failed: %s\n", req->method, (int)(req->url_len > 200 ? 200 : req->url_len),
          req->url, msg);
  fflush(stderr);
  res->status = 500;
  res->type = NULL;
  res->body.len = 0;
  if (tide_buf_puts(&res->body, "internal error (the server's log says what failed)\n")) res->body.len = 0;
}

static void on_request(void *data, const tide_http_request_t *req, tide_http_response_t *res) {
  l_http_t *u = data;
  lua_State *T = u->T;
  lua_settop(T, 0);
  if (!lua_checkstack(T, 8)) {
    answer_error(u, req, res, "no room on the Lua stack");
    return;
  }
  lua_pushcfunction(T, l_msgh);
  lua_pushcfunction(T, l_call);
  lua_pushlightuserdata(T, (void *)req);
  lua_rawgeti(T, LUA_REGISTRYINDEX, u->fn_ref);
  if (lua_pcall(T, 2, 3, 1) != LUA_OK) {
    const char *msg = lua_tostring(T, -1);
    answer_error(u, req, res, msg ? msg : "?");
    lua_settop(T, 0);
    return;
  }
  int isint;
  lua_Integer status = lua_tointegerx(T, 2, &isint);
  size_t blen = 0;
  const char *body = lua_type(T, 4) == LUA_TSTRING ? lua_tolstring(T, 4, &blen) : NULL;
  const char *type = lua_type(T, 3) == LUA_TSTRING ? lua_tostring(T, 3) : NULL;
  if (!isint || status < 100 || status > 599 || body == NULL || type == NULL || strlen(type) >= sizeof u->type) {
    answer_error(u, req, res, "the handler must return status (100..599), content type (< 128 bytes), body (string)");
  } else {
    memcpy(u->type, type, strlen(type) + 1);
    res->status = (int)status;
    res->type = u->type;
    if (tide_buf_append(&res->body, body, blen)) answer_error(u, req, res, "out of memory");
  }
  lua_settop(T, 0);
}

static l_http_t *check_http(lua_State *L, int idx) { return luaL_checkudata(L, idx, HTTP_MT); }

static l_http_t *check_open_http(lua_State *L, int idx) {
  l_http_t *u = check_http(L, idx);
  if (u->s == NULL) luaL_error(L, "attempt to use a closed " HTTP_MT);
  return u;
}

static void unref(lua_State *L, l_http_t *u) {
  luaL_unref(L, LUA_REGISTRYINDEX, u->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, u->self_ref);
  u->fn_ref = u->self_ref = LUA_NOREF;
}

/* srv:close(): stop listening, close the connections. Idempotent; also
 * __gc and __close. */
static int l_http_close(lua_State *L) {
  l_http_t *u = check_http(L, 1);
  if (u->s == NULL) return 0;
  tide_http_close(u->s);
  u->s = NULL;
  unref(L, u);
  return 0;
}

static lua_Integer opt_int(lua_State *L, int idx, const char *key, lua_Integer lo, lua_Integer hi) {
  lua_getfield(L, idx, key);
  lua_Integer v = 0;
  if (!lua_isnil(L, -1)) {
    int isint;
    v = lua_tointegerx(L, -1, &isint);
    if (!isint || v < lo || v > hi)
      luaL_error(L, "http_listen: option '%s' must be an integer in %I..%I", key, lo, hi);
  }
  lua_pop(L, 1);
  return v;
}

/* core.http_listen(loop, host, port, handler [, opts]) -> tide.HttpServer,
 * or nil, msg, name. */
static int l_http_listen(lua_State *L) {
  tide_loop_t *loop = tide_l_check_loop(L, 1);
  const char *host = luaL_checkstring(L, 2);
  lua_Integer port = luaL_checkinteger(L, 3);
  luaL_argcheck(L, port >= 0 && port <= 65535, 3, "must be 0..65535");
  luaL_checktype(L, 4, LUA_TFUNCTION);
  tide_http_limits_t lim = {0, 0, 0};
  if (!lua_isnoneornil(L, 5)) {
    luaL_checktype(L, 5, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 5)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      if (strcmp(k, "max_request") && strcmp(k, "timeout_ms") && strcmp(k, "max_connections"))
        return luaL_error(L, "http_listen: unknown option '%s' (allowed: max_request, timeout_ms, max_connections)",
                          k);
      lua_pop(L, 1);
    }
    lim.max_request = (size_t)opt_int(L, 5, "max_request", 256, (lua_Integer)1 << 30);
    lim.timeout_ms = (uint64_t)opt_int(L, 5, "timeout_ms", 1, (lua_Integer)1 << 31);
    lim.max_connections = (uint32_t)opt_int(L, 5, "max_connections", 1, 1 << 20);
  }
  l_http_t *u = lua_newuserdatauv(L, sizeof *u, 2);
  memset(u, 0, sizeof *u);
  u->fn_ref = u->self_ref = LUA_NOREF;
  luaL_setmetatable(L, HTTP_MT);
  u->T = lua_newthread(L);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 2);
  int rc = tide_http_start(tide_loop_uv(loop), host, (int)port, &lim, on_request, u, &u->s);
  if (rc) {
    u->s = NULL;
    return tide_l_fail(L, rc, tide_errname(rc), NULL);
  }
  lua_pushvalue(L, 4);
  u->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  u->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}

static int l_http_port(lua_State *L) {
  lua_pushinteger(L, tide_http_port(check_open_http(L, 1)->s));
  return 1;
}

/* srv:stats() -> { accepted, open, requests, rejected, timeouts, dropped, errors } */
static int l_http_stats(lua_State *L) {
  l_http_t *u = check_open_http(L, 1);
  tide_http_stats_t st;
  tide_http_stats(u->s, &st);
  const char *const names[] = {"accepted", "open", "requests", "rejected", "timeouts", "dropped", "errors"};
  const uint64_t values[] = {st.accepted, st.open, st.requests, st.rejected, st.timeouts, st.dropped, u->errors};
  lua_createtable(L, 0, 7);
  for (int i = 0; i < 7; i++) {
    lua_pushinteger(L, (lua_Integer)values[i]);
    lua_setfield(L, -2, names[i]);
  }
  return 1;
}

static int l_http_is_closed(lua_State *L) {
  lua_pushboolean(L, check_http(L, 1)->s == NULL);
  return 1;
}

static int l_http_tostring(lua_State *L) {
  l_http_t *u = check_http(L, 1);
  if (u->s) lua_pushfstring(L, HTTP_MT " (port %d)", tide_http_port(u->s));
  else lua_pushliteral(L, HTTP_MT " (closed)");
  return 1;
}

static const luaL_Reg http_methods[] = {{"port", l_http_port},
                                       {"stats", l_http_stats},
                                       {"close", l_http_close},
                                       {"is_closed", l_http_is_closed},
                                       {NULL, NULL}};

int tide_l_http_open(lua_State *L) {
  tide_l_class(L, HTTP_MT, http_methods, l_http_close, 1);
  tide_l_class_tostring(L, HTTP_MT, l_http_tostring);
  lua_pushcfunction(L, l_http_listen);
  lua_setfield(L, -2, "http_listen");
  return 0;
}
