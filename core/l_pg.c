/*
 * l_pg.c: PostgreSQL connections for the postgres connector (core/pg.h).
 *
 *   core.pg_connect(conninfo [, attempts, delay_ms])
 *                                      -> tide.PG | nil, msg, ENAME
 *   pg:exec(sql [, {params...}])        -> rows, names | nil, msg, ENAME
 *        rows: an array of arrays of the values' text (nil for NULL);
 *        params: strings, numbers or booleans (sent as text), `n` = count
 *        when some are nil
 *   pg:copy(copy_sql, {batches...} [, {forms...}])
 *                                       -> rows sent | nil, msg, ENAME
 *        without forms, COPY's text format; with them, its binary format,
 *        one form per column: "int8", "float8", "bool", "timestamp",
 *        "text" or "jsonb" (core/pg.h, tide_pg_bin_t)
 *   pg:query_batch(sql)                 -> tide.Batch | nil, msg, ENAME
 *   pg:reset(attempts, delay_ms)        -> tries made | nil, msg, ENAME
 *   pg:close()                          (also __gc and __close)
 *
 * ENAME tells a lost connection (ECONNRESET, ECONNREFUSED) from a statement
 * the server refused (EINVAL, with the server's message and SQLSTATE).
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "l_tide.h"
#include "pg.h"

#define PG_MT "tide.PG"
#define PG_RES_MT "tide.PGResult"

typedef struct {
  tide_pg_t *c;
} l_pg_t;

static tide_pg_t *check_pg(lua_State *L) {
  l_pg_t *u = luaL_checkudata(L, 1, PG_MT);
  if (!u->c) luaL_error(L, "postgres connection is closed");
  return u->c;
}

static int l_connect(lua_State *L) {
  const char *info = luaL_checkstring(L, 1);
  int attempts = (int)luaL_optinteger(L, 2, 1), delay = (int)luaL_optinteger(L, 3, 0);
  luaL_argcheck(L, attempts >= 1, 2, "expected at least 1 attempt");
  luaL_argcheck(L, delay >= 0, 3, "expected a delay >= 0 ms");
  l_pg_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->c = NULL;
  luaL_setmetatable(L, PG_MT);
  tide_err_t err = {0};
  int rc = tide_pg_connect(info, attempts, delay, &u->c, &err);
  if (rc) return tide_l_fail(L, rc, "postgres", err.msg);
  return 1;
}

static int l_close(lua_State *L) {
  l_pg_t *u = luaL_checkudata(L, 1, PG_MT);
  tide_pg_close(u->c);
  u->c = NULL;
  return 0;
}

/* A result waiting to be pushed: held by a userdata so that a Lua error
 * while pushing (out of memory) still clears it. */
static int res_gc(lua_State *L) {
  tide_pg_res_t **r = luaL_checkudata(L, 1, PG_RES_MT);
  tide_pg_res_free(*r);
  *r = NULL;
  return 0;
}

static int l_exec(lua_State *L) {
  tide_pg_t *c = check_pg(L);
  const char *sql = luaL_checkstring(L, 2);
  int n = 0;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "n");
    n = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : (int)luaL_len(L, 3);
    lua_pop(L, 1);
    if (n < 0 || n > 256) return luaL_error(L, "exec: expected at most 256 parameters, got %d", n);
  }
  const char *params[256];
  luaL_checkstack(L, n + 4, "exec: too many parameters"); /* each one stays on the stack until the call returns */
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, 3, i + 1);
    if (lua_isnil(L, -1)) params[i] = NULL;
    else if (lua_isboolean(L, -1)) params[i] = lua_toboolean(L, -1) ? "t" : "f";
    else if (lua_type(L, -1) == LUA_TNUMBER || lua_type(L, -1) == LUA_TSTRING) params[i] = lua_tostring(L, -1);
    else return luaL_error(L, "exec: parameter %d: expected a string, number, boolean or nil, got %s", i + 1,
                           luaL_typename(L, -1));
    /* the string stays referenced by the stack until the call returns */
  }
  tide_pg_res_t **box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = NULL;
  luaL_setmetatable(L, PG_RES_MT);
  tide_err_t err = {0};
  int rc = tide_pg_exec(c, sql, n, params, box, &err);
  if (rc) return tide_l_fail(L, rc, "postgres", err.msg);
  tide_pg_res_t *r = *box;
  int nr = tide_pg_res_nrows(r), nc = tide_pg_res_ncols(r);
  lua_createtable(L, nr, 0);
  for (int i = 0; i < nr; i++) {
    lua_createtable(L, nc, 0);
    for (int f = 0; f < nc; f++) {
      size_t len;
      const char *v = tide_pg_res_value(r, i, f, &len);
      if (!v) continue;
      lua_pushlstring(L, v, len);
      lua_rawseti(L, -2, f + 1);
    }
    lua_rawseti(L, -2, i + 1);
  }
  lua_createtable(L, nc, 0);
  for (int f = 0; f < nc; f++) {
    lua_pushstring(L, tide_pg_res_name(r, f));
    lua_rawseti(L, -2, f + 1);
  }
  tide_pg_res_free(r);
  *box = NULL;
  return 2;
}

static int l_copy(lua_State *L) {
  static const char *const forms[] = {"int8", "float8", "bool", "timestamp", "text", "jsonb", NULL};
  tide_pg_t *c = check_pg(L);
  const char *sql = luaL_checkstring(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 3), nf = 0;
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    nf = luaL_len(L, 4);
    luaL_argcheck(L, nf > 0 && nf <= 65535, 4, "expected one binary form per column");
  }
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  const tide_batch_t **bs = NULL;
  tide_pg_bin_t *bin = NULL;
  if (n > 0) {
    bs = malloc((size_t)n * sizeof *bs);
    if (!bs) return luaL_error(L, "copy: out of memory");
    x->p[0] = bs;
  }
  if (nf > 0) {
    bin = malloc((size_t)nf * sizeof *bin);
    if (!bin) return luaL_error(L, "copy: out of memory");
    x->p[1] = bin;
    for (lua_Integer f = 0; f < nf; f++) {
      lua_rawgeti(L, 4, f + 1);
      const char *name = lua_tostring(L, -1);
      int k = -1;
      for (int j = 0; name && forms[j]; j++)
        if (!strcmp(name, forms[j])) k = j;
      if (k < 0)
        return luaL_error(L, "copy: binary form %d: expected int8, float8, bool, timestamp, text or jsonb, got %s",
                          (int)f + 1, name ? name : luaL_typename(L, -1));
      bin[f] = (tide_pg_bin_t)(TIDE_PG_INT8 + k);
      lua_pop(L, 1);
    }
  }
  for (lua_Integer i = 0; i < n; i++) {
    lua_rawgeti(L, 3, i + 1);
    bs[i] = tide_l_check_batch(L, -1); /* the array keeps it alive */
    lua_pop(L, 1);
    if (bin && bs[i]->schema->nfields != (uint32_t)nf)
      return luaL_error(L, "copy: batch %d has %d columns, but %d binary forms are given", (int)i + 1,
                        (int)bs[i]->schema->nfields, (int)nf);
  }
  tide_err_t err = {0};
  uint64_t rows = 0;
  int rc = tide_pg_copy(c, sql, bin, bs, (size_t)n, &rows, &err);
  tide_l_scratch_free(x);
  if (rc) return tide_l_fail(L, rc, "postgres", err.msg);
  lua_pushinteger(L, (lua_Integer)rows);
  return 1;
}

static int l_query_batch(lua_State *L) {
  tide_pg_t *c = check_pg(L);
  const char *sql = luaL_checkstring(L, 2);
  tide_err_t err = {0};
  tide_batch_t *b;
  int rc = tide_pg_query_batch(c, sql, &b, &err);
  if (rc) return tide_l_fail(L, rc, "postgres", err.msg);
  tide_l_push_batch(L, b);
  return 1;
}

static int l_reset(lua_State *L) {
  tide_pg_t *c = check_pg(L);
  int attempts = (int)luaL_checkinteger(L, 2), delay = (int)luaL_checkinteger(L, 3);
  luaL_argcheck(L, attempts >= 1, 2, "expected at least 1 attempt");
  luaL_argcheck(L, delay >= 0, 3, "expected a delay >= 0 ms");
  tide_err_t err = {0};
  int used = 0;
  int rc = tide_pg_reset(c, attempts, delay, &used, &err);
  if (rc) return tide_l_fail(L, rc, "postgres", err.msg);
  lua_pushinteger(L, used);
  return 1;
}

int tide_l_pg_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"exec", l_exec},   {"copy", l_copy},   {"query_batch", l_query_batch},
                                     {"reset", l_reset}, {"close", l_close}, {NULL, NULL}};
  tide_l_class(L, PG_MT, methods, l_close, 1);
  tide_l_class(L, PG_RES_MT, NULL, res_gc, 0);
  lua_pushcfunction(L, l_connect);
  lua_setfield(L, -2, "pg_connect");
  return 0;
}
