/*
 * l_pool.c: the worker pool of a Lua state (core/pool.h), which the
 * bindings that split their C work over threads share (core.decode).
 *
 *   core.workers()  -> n      the pool's thread count (made on first use)
 *   core.workers(n) -> n      resize it: the old workers are joined, n start
 *
 * The pool is a tide.Pool userdata kept in the registry under "tide.pool";
 * its __gc joins the workers when the state closes. Its size, until
 * core.workers(n) says otherwise, is the TIDE_WORKERS environment variable
 * (an integer from 1 to TIDE_POOL_MAX), or the number of online CPUs.
 * The loop thread's runs happen between two of its Lua calls: none is
 * under way when the pool is resized or collected. A file source's read
 * ahead may be running on the pool from its own thread then
 * (core.file_read with "pool"): it holds a reference (tide_pool_ref), so
 * the pool is freed when the last of them is dropped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "l_tide.h"
#include "pool.h"

#define POOL_MT "tide.Pool"
#define POOL_KEY "tide.pool"

typedef struct lpool {
  tide_pool_t *p;
} lpool_t;

static int pool_gc(lua_State *L) {
  lpool_t *u = luaL_checkudata(L, 1, POOL_MT);
  tide_pool_close(u->p);
  u->p = NULL;
  return 0;
}

/* Push a new tide.Pool of n threads and store it in the registry (the old
 * one, if any, is closed). Raises when the threads cannot start. */
static tide_pool_t *install(lua_State *L, int n) {
  lpool_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->p = NULL;
  luaL_setmetatable(L, POOL_MT);
  int rc = tide_pool_open(n, &u->p);
  if (rc == -ENOMEM) luaL_error(L, "out of memory");
  if (rc) luaL_error(L, "cannot start %d worker threads: %s", n - 1, tide_strerror(rc));
  if (lua_getfield(L, LUA_REGISTRYINDEX, POOL_KEY) == LUA_TUSERDATA) {
    lpool_t *old = luaL_checkudata(L, -1, POOL_MT);
    tide_pool_close(old->p);
    old->p = NULL;
  }
  lua_pop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, POOL_KEY);
  return u->p;
}

/* The default thread count: TIDE_WORKERS, or the CPUs. Raises naming the
 * variable when it is set to anything but an integer in range. */
static int default_threads(lua_State *L) {
  const char *v = getenv("TIDE_WORKERS");
  if (!v || !*v) return tide_pool_cpus();
  char *end;
  errno = 0;
  long n = strtol(v, &end, 10);
  if (errno || *end || n < 1 || n > TIDE_POOL_MAX)
    luaL_error(L, "TIDE_WORKERS must be an integer from 1 to %d, got '%s'", TIDE_POOL_MAX, v);
  return (int)n;
}

/* The registry's pool, or NULL when none was made yet. */
static tide_pool_t *current(lua_State *L) {
  tide_pool_t *p = NULL;
  if (lua_getfield(L, LUA_REGISTRYINDEX, POOL_KEY) == LUA_TUSERDATA)
    p = ((lpool_t *)luaL_checkudata(L, -1, POOL_MT))->p;
  lua_pop(L, 1);
  return p;
}

tide_pool_t *tide_l_pool(lua_State *L) {
  tide_pool_t *p = current(L);
  return p ? p : install(L, default_threads(L));
}

/* core.workers([n]) -> n: see the file header. n must be an integer from
 * 1 to TIDE_POOL_MAX. */
static int l_workers(lua_State *L) {
  if (!lua_isnoneornil(L, 1)) {
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n < 1 || n > TIDE_POOL_MAX)
      return luaL_argerror(L, 1, lua_pushfstring(L, "workers must be from 1 to %d, got %I", TIDE_POOL_MAX, n));
    tide_pool_t *p = current(L);
    if (!p || tide_pool_threads(p) != n) install(L, (int)n);
  }
  lua_pushinteger(L, tide_pool_threads(tide_l_pool(L)));
  return 1;
}

int tide_l_pool_open(lua_State *L) {
  if (luaL_newmetatable(L, POOL_MT)) {
    lua_pushcfunction(L, pool_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, pool_gc);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_workers);
  lua_setfield(L, -2, "workers");
  return 0;
}
