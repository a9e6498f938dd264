/*
 * l_expr.c: the tide.Expr userdata (a compiled expression, core/expr.h).
 *
 *   core.expr(text, schema, allow_agg) -> Expr | nil, msg, ENAME
 *   expr:type(), expr:nullable(), expr:name(), expr:text()
 *   expr:column()  -> the 1-based input column of a bare column, else nil
 *   expr:agg()     -> the aggregate's kind ("count", "sum" ...), else nil
 *   expr:arg()     -> the aggregate's argument (an Expr), else nil
 *   expr:conjuncts() -> { {text =, cols = {1-based..}, cmps = { {op =, a =,
 *                    b =, c =}.. }}.. } (expr.h's tide_expr_conjuncts;
 *                    op is "=", "<", "<=", ">" or ">=", a and b 1-based)
 */
#include <stdlib.h>
#include <string.h>

#include "l_tide.h"

typedef struct {
  tide_expr_t *e;
  int owned; /* 0: a child of the Expr in the user value */
} l_expr_t;

tide_expr_t *tide_l_check_expr(lua_State *L, int idx) {
  l_expr_t *u = luaL_checkudata(L, idx, TIDE_L_EXPR_MT);
  if (!u->e) luaL_error(L, "attempt to use a freed tide.Expr");
  return u->e;
}

static int expr_gc(lua_State *L) {
  l_expr_t *u = luaL_checkudata(L, 1, TIDE_L_EXPR_MT);
  if (u->owned) tide_expr_free(u->e);
  u->e = NULL;
  return 0;
}

/* core.expr(text, schema, allow_agg) */
static int l_expr(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  tide_schema_t *s = tide_l_check_schema(L, 2);
  int flags = lua_toboolean(L, 3) ? TIDE_EXPR_AGG : 0;
  l_expr_t *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->e = NULL;
  u->owned = 1;
  luaL_setmetatable(L, TIDE_L_EXPR_MT);
  tide_err_t err = {0, ""};
  int rc = tide_expr_compile(text, len, s, flags, &u->e, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  return 1;
}

static int expr_type(lua_State *L) {
  lua_pushstring(L, tide_type_name(tide_expr_type(tide_l_check_expr(L, 1))));
  return 1;
}

static int expr_nullable(lua_State *L) {
  lua_pushboolean(L, tide_expr_nullable(tide_l_check_expr(L, 1)));
  return 1;
}

static int expr_name(lua_State *L) {
  lua_pushstring(L, tide_expr_name(tide_l_check_expr(L, 1)));
  return 1;
}

static int expr_text(lua_State *L) {
  lua_pushstring(L, tide_expr_text(tide_l_check_expr(L, 1)));
  return 1;
}

static int expr_column(lua_State *L) {
  int c = tide_expr_column(tide_l_check_expr(L, 1));
  if (c < 0) lua_pushnil(L);
  else lua_pushinteger(L, c + 1);
  return 1;
}

const char *const tide_l_agg_names[] = {NULL,  "count_star", "count", "sum",           "min", "max",
                                        "avg", "first",      "last",  "count_distinct", NULL};

static int expr_agg(lua_State *L) {
  tide_agg_kind_t k = tide_expr_agg(tide_l_check_expr(L, 1));
  if (k == TIDE_AGG_NONE || (unsigned)k >= sizeof tide_l_agg_names / sizeof tide_l_agg_names[0] - 1) lua_pushnil(L);
  else lua_pushstring(L, tide_l_agg_names[k]);
  return 1;
}

/* expr:arg() -> the argument of an aggregate, a child Expr kept valid by a
 * reference to its parent; nil for count(*) and non-aggregates. */
static int expr_arg(lua_State *L) {
  const tide_expr_t *a = tide_expr_agg_arg(tide_l_check_expr(L, 1));
  if (!a) {
    lua_pushnil(L);
    return 1;
  }
  l_expr_t *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->e = (tide_expr_t *)a;
  u->owned = 0;
  luaL_setmetatable(L, TIDE_L_EXPR_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* expr:conjuncts(): the C list is copied into a userdata on the stack and
 * freed before anything is pushed, so that a raise while pushing leaks
 * nothing. */
static int expr_conjuncts(lua_State *L) {
  static const char *const ops[] = {NULL, "=", "<", "<=", ">", ">="};
  tide_expr_t *e = tide_l_check_expr(L, 1);
  tide_expr_conj_t *list;
  uint32_t n;
  int rc = tide_expr_conjuncts(e, &list, &n);
  if (rc) return luaL_error(L, "conjuncts: %s", tide_strerror(rc));
  size_t bytes = n * sizeof *list;
  for (uint32_t j = 0; j < n; j++) bytes += list[j].ncols * sizeof(uint32_t) + strlen(list[j].text) + 1;
  char *mem = NULL;
  if (!lua_checkstack(L, 8) || !(mem = malloc(bytes ? bytes : 1))) {
    tide_expr_conjuncts_free(list, n);
    return luaL_error(L, "out of memory");
  }
  /* the structs, then every column list (aligned), then the texts */
  tide_expr_conj_t *copy = (tide_expr_conj_t *)mem;
  uint32_t *cols = (uint32_t *)(mem + n * sizeof *list);
  for (uint32_t j = 0; j < n; j++) {
    copy[j] = list[j];
    copy[j].cols = cols;
    memcpy(cols, list[j].cols, list[j].ncols * sizeof(uint32_t));
    cols += list[j].ncols;
  }
  char *tail = (char *)cols;
  for (uint32_t j = 0; j < n; j++) {
    size_t tl = strlen(list[j].text) + 1;
    memcpy(tail, list[j].text, tl);
    copy[j].text = tail;
    tail += tl;
  }
  tide_expr_conjuncts_free(list, n);
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  x->p[0] = mem;
  lua_createtable(L, (int)n, 0);
  for (uint32_t j = 0; j < n; j++) {
    const tide_expr_conj_t *c = &copy[j];
    lua_createtable(L, 0, 3);
    lua_pushstring(L, c->text);
    lua_setfield(L, -2, "text");
    lua_createtable(L, (int)c->ncols, 0);
    for (uint32_t k = 0; k < c->ncols; k++) {
      lua_pushinteger(L, (lua_Integer)c->cols[k] + 1);
      lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    lua_setfield(L, -2, "cols");
    lua_createtable(L, (int)c->ncmp, 0);
    for (uint32_t k = 0; k < c->ncmp; k++) {
      lua_createtable(L, 0, 4);
      lua_pushstring(L, ops[c->cmp[k].op]);
      lua_setfield(L, -2, "op");
      lua_pushinteger(L, (lua_Integer)c->cmp[k].a + 1);
      lua_setfield(L, -2, "a");
      lua_pushinteger(L, (lua_Integer)c->cmp[k].b + 1);
      lua_setfield(L, -2, "b");
      lua_pushinteger(L, (lua_Integer)c->cmp[k].c);
      lua_setfield(L, -2, "c");
      lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    lua_setfield(L, -2, "cmps");
    lua_rawseti(L, -2, (lua_Integer)j + 1);
  }
  tide_l_scratch_free(x);
  return 1;
}

int tide_l_expr_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"type", expr_type}, {"nullable", expr_nullable}, {"name", expr_name},
                                     {"text", expr_text}, {"column", expr_column},     {"agg", expr_agg},
                                     {"arg", expr_arg},   {"conjuncts", expr_conjuncts}, {NULL, NULL}};
  tide_l_class(L, TIDE_L_EXPR_MT, methods, expr_gc, 0);
  lua_pushcfunction(L, l_expr);
  lua_setfield(L, -2, "expr");
  return 0;
}
