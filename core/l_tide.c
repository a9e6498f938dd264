/*
 * l_tide.c: the helpers every binding shares (l_tide.h): the failure
 * triple, names and paths for C, the GC'd scratch, metatable registration.
 */
#include <stdlib.h>
#include <string.h>

#include "l_tide.h"
#include "vec.h"

int tide_l_fail(lua_State *L, int rc, const char *what, const char *msg) {
  if (!msg || !*msg) msg = tide_strerror(rc);
  lua_pushnil(L);
  if (what) lua_pushfstring(L, "%s: %s", what, msg);
  else lua_pushstring(L, msg);
  lua_pushstring(L, tide_errname(rc));
  return 3;
}

const char *tide_l_check_cname(lua_State *L, int idx, const char *what, int flags) {
  size_t len;
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "%s: expected a string, got %s", what, luaL_typename(L, idx));
  const char *s = lua_tolstring(L, idx, &len);
  /* raised without a position: the message names the value, and the
   * position would be the Lua layer's, not the caller's */
  if ((flags & TIDE_L_PATH) && len == 0) {
    lua_pushfstring(L, "%s is empty", what);
    lua_error(L);
  }
  const char *nul = memchr(s, 0, len);
  if (nul) {
    /* show the whole value, the NUL bytes written as \0 */
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 0; i < len && i < 200; i++) {
      if (s[i]) luaL_addchar(&b, s[i]);
      else luaL_addstring(&b, "\\0");
    }
    luaL_pushresult(&b);
    lua_pushfstring(L, "%s '%s' holds a NUL byte (at byte %d)", what, lua_tostring(L, -1), (int)(nul - s) + 1);
    lua_error(L);
  }
  return s;
}

const char *tide_l_opt_cname(lua_State *L, int idx, const char *what, int flags) {
  return lua_isnoneornil(L, idx) ? NULL : tide_l_check_cname(L, idx, what, flags);
}

static int scratch_gc(lua_State *L) {
  tide_l_scratch_free(lua_touserdata(L, 1));
  return 0;
}

void tide_l_scratch_free(tide_l_scratch_t *x) {
  for (int i = 0; i < 8; i++) {
    free(x->p[i]);
    x->p[i] = NULL;
  }
  for (uint32_t i = 0; x->cols && i < x->ncols; i++) tide_col_free(&x->cols[i]);
  free(x->cols);
  x->cols = NULL;
  x->ncols = 0;
  tide_buf_free(&x->buf);
  tide_schema_unref(x->schema);
  x->schema = NULL;
  for (int i = 0; i < 2; i++) {
    tide_batch_free(x->batch[i]);
    x->batch[i] = NULL;
  }
}

tide_l_scratch_t *tide_l_push_scratch(lua_State *L) {
  tide_l_scratch_t *x = lua_newuserdatauv(L, sizeof *x, 0);
  memset(x, 0, sizeof *x);
  luaL_setmetatable(L, TIDE_L_SCRATCH_MT);
  return x;
}

tide_col_t *tide_l_scratch_cols(lua_State *L, tide_l_scratch_t *x, uint32_t n) {
  x->cols = calloc(n ? n : 1, sizeof *x->cols);
  if (!x->cols) luaL_error(L, "out of memory");
  x->ncols = n;
  return x->cols;
}

void tide_l_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc, int close) {
  luaL_newmetatable(L, name);
  if (methods) {
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
  }
  if (gc) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
    if (close) {
      lua_pushcfunction(L, gc);
      lua_setfield(L, -2, "__close");
    }
  }
  lua_pop(L, 1);
}

/* The protected part of tide_l_push_strings: the array of v[0..n-1]. */
static int push_strings_p(lua_State *L) {
  char *const *v = lua_touserdata(L, 1);
  lua_Integer n = lua_tointeger(L, 2);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_pushstring(L, v[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

void tide_l_push_strings(lua_State *L, char *const *v, size_t n, void (*release)(void *), void *ctx) {
  /* pushing a light C function, a pointer and an integer cannot raise */
  lua_pushcfunction(L, push_strings_p);
  lua_pushlightuserdata(L, (void *)v);
  lua_pushinteger(L, (lua_Integer)n);
  int rc = lua_pcall(L, 2, 1, 0);
  release(ctx);
  if (rc != LUA_OK) lua_error(L);
}

void tide_l_class_tostring(lua_State *L, const char *name, lua_CFunction fn) {
  luaL_getmetatable(L, name);
  lua_pushcfunction(L, fn);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

int tide_l_tide_open(lua_State *L) {
  tide_l_class(L, TIDE_L_SCRATCH_MT, NULL, scratch_gc, 0);
  return 0;
}
