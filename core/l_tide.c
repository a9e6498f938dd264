/*
 * l_tide.c: the helpers every binding shares (l_tide.h): the failure
 * triple, the GC'd scratch, metatable registration.
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

int tide_l_tide_open(lua_State *L) {
  tide_l_class(L, TIDE_L_SCRATCH_MT, NULL, scratch_gc, 0);
  return 0;
}
