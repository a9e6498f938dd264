/*
 * l_schema.c: the tide.Schema userdata (one reference to a tide_schema_t).
 *
 *   core.schema(ddl|array) -> Schema | nil, msg, ENAME
 *   schema:fields()        -> the array form (l_tide.h)
 *   schema:ddl()           -> the canonical DDL text
 *   schema:len()           -> the number of fields
 */
#include <stdlib.h>
#include <string.h>

#include "l_tide.h"

typedef struct {
  tide_schema_t *s;
} l_schema_t;

tide_schema_t *tide_l_check_schema(lua_State *L, int idx) {
  l_schema_t *u = luaL_checkudata(L, idx, TIDE_L_SCHEMA_MT);
  return u->s;
}

static int schema_gc(lua_State *L) {
  l_schema_t *u = luaL_checkudata(L, 1, TIDE_L_SCHEMA_MT);
  tide_schema_unref(u->s);
  u->s = NULL;
  return 0;
}

static int l_schema(lua_State *L) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  l_schema_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->s = NULL;
  luaL_setmetatable(L, TIDE_L_SCHEMA_MT);
  int rc = tide_l_schema_from_lua(L, 1, &s, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  u->s = s;
  return 1;
}

static int schema_fields(lua_State *L) {
  tide_l_push_schema(L, tide_l_check_schema(L, 1));
  return 1;
}

static int schema_ddl(lua_State *L) {
  tide_l_push_ddl(L, tide_l_check_schema(L, 1));
  return 1;
}

static int schema_len(lua_State *L) {
  lua_pushinteger(L, tide_l_check_schema(L, 1)->nfields);
  return 1;
}

int tide_l_schema_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"fields", schema_fields}, {"ddl", schema_ddl}, {"len", schema_len}, {NULL, NULL}};
  tide_l_class(L, TIDE_L_SCHEMA_MT, methods, schema_gc, 0);
  lua_pushcfunction(L, l_schema);
  lua_setfield(L, -2, "schema");
  return 0;
}
