/*
 * l_sjoin.c: the tide.StreamJoin userdata (stream-stream joins,
 * core/sjoin.h).
 *
 *   core.stream_join{ left = side, right = side, how = "inner" | "left" |
 *     "right" | "full" | "left_semi", pair = Schema, cond = Expr | nil }
 *       -> StreamJoin | nil, msg, ENAME
 *     side = { schema = Schema, keys = {1-based columns}, late = column |
 *     nil, evict = column | nil, pre = Expr | nil }
 *   j:run(left_batch | nil, right_batch | nil, late | nil, evict_left |
 *     nil, evict_right | nil) -> Batch (pair schema), { late_left =,
 *     late_right =, updated =, evicted = } | nil, msg, ENAME
 *   j:take_changes() -> change set (l_ckpt.h): deletes, then puts; the key
 *     of a state row is its side (one byte, 0 left, 1 right) and its id (u64
 *     big-endian), 9 bytes
 *   j:clear_changes()            the changes are committed
 *   j:restore(key, record) -> true | nil, msg, ENAME
 *   j:rows(), j:bytes()
 *
 * The expressions are kept alive in the userdata's user values (the C join
 * borrows them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "l_ckpt.h"
#include "l_tide.h"
#include "sjoin.h"

#define SJOIN_MT "tide.StreamJoin"
#define MAX_KEYS 64

typedef struct {
  tide_sjoin_t *j;
} l_sjoin_t;

static tide_sjoin_t *check_sjoin(lua_State *L, int idx) {
  l_sjoin_t *u = luaL_checkudata(L, idx, SJOIN_MT);
  if (!u->j) luaL_error(L, "attempt to use a freed tide.StreamJoin");
  return u->j;
}

static int sjoin_gc(lua_State *L) {
  l_sjoin_t *u = luaL_checkudata(L, 1, SJOIN_MT);
  tide_sjoin_free(u->j);
  u->j = NULL;
  return 0;
}

/* An optional 1-based column field of the table at idx -> 0-based or -1. */
static int opt_col(lua_State *L, int idx, const char *field, uint32_t nf) {
  int t = lua_getfield(L, idx, field);
  lua_Integer c = t == LUA_TNIL ? 0 : luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  if (c < 0 || (uint64_t)c > nf) luaL_error(L, "stream_join: %s column %d out of range", field, (int)c);
  return (int)c - 1;
}

/* Read side table at idx into d (keys into kbuf); the pre Expr goes to user
 * value uv of the userdata at ud. Returns the key count. */
static uint32_t read_side(lua_State *L, int idx, int ud, int uv, tide_sjoin_side_t *d, uint32_t *kbuf) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "schema");
  d->schema = tide_l_check_schema(L, -1);
  lua_pop(L, 1); /* the table keeps it alive; the join takes a reference */
  lua_getfield(L, idx, "keys");
  luaL_checktype(L, -1, LUA_TTABLE);
  uint32_t n = (uint32_t)lua_rawlen(L, -1);
  if (n > MAX_KEYS) luaL_error(L, "stream_join: at most %d keys", MAX_KEYS);
  for (uint32_t i = 0; i < n; i++) {
    lua_rawgeti(L, -1, i + 1);
    lua_Integer c = luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    if (c < 1 || (uint64_t)c > d->schema->nfields) luaL_error(L, "stream_join: key column %d out of range", (int)c);
    kbuf[i] = (uint32_t)c - 1;
  }
  lua_pop(L, 1);
  d->keys = kbuf;
  d->late_col = opt_col(L, idx, "late", d->schema->nfields);
  d->evict_col = opt_col(L, idx, "evict", d->schema->nfields);
  d->pre = NULL;
  if (lua_getfield(L, idx, "pre") != LUA_TNIL) {
    d->pre = tide_l_check_expr(L, -1);
    lua_setiuservalue(L, ud, uv);
  } else {
    lua_pop(L, 1);
  }
  return n;
}

/* core.stream_join{...} */
static int l_stream_join(lua_State *L) {
  static const char *const hows[] = {"inner", "left", "right", "full", "left_semi", NULL};
  luaL_checktype(L, 1, LUA_TTABLE);
  l_sjoin_t *u = lua_newuserdatauv(L, sizeof *u, 3);
  u->j = NULL;
  luaL_setmetatable(L, SJOIN_MT);
  int ud = lua_gettop(L);
  tide_sjoin_side_t sides[2];
  uint32_t lk[MAX_KEYS], rk[MAX_KEYS];
  lua_getfield(L, 1, "left");
  uint32_t nl = read_side(L, lua_gettop(L), ud, 1, &sides[0], lk);
  lua_getfield(L, 1, "right");
  uint32_t nr = read_side(L, lua_gettop(L), ud, 2, &sides[1], rk);
  lua_pop(L, 2);
  if (nl != nr) return luaL_error(L, "stream_join: %u left keys, %u right keys", nl, nr);
  lua_getfield(L, 1, "how");
  int how = luaL_checkoption(L, -1, NULL, hows);
  lua_pop(L, 1);
  lua_getfield(L, 1, "pair");
  tide_schema_t *pair = tide_l_check_schema(L, -1);
  lua_pop(L, 1);
  const tide_expr_t *cond = NULL;
  if (lua_getfield(L, 1, "cond") != LUA_TNIL) {
    cond = tide_l_check_expr(L, -1);
    lua_setiuservalue(L, ud, 3);
  } else {
    lua_pop(L, 1);
  }
  tide_err_t err = {0, ""};
  int rc = tide_sjoin_new(&sides[0], &sides[1], nl, (tide_sjoin_how_t)how, pair, cond, &u->j, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_settop(L, ud);
  return 1;
}

/* j:run(left, right, late, evict_left, evict_right) */
static int sjoin_run(lua_State *L) {
  tide_sjoin_t *j = check_sjoin(L, 1);
  const tide_batch_t *in[2] = {NULL, NULL};
  if (!lua_isnil(L, 2)) in[0] = tide_l_check_batch(L, 2);
  if (!lua_isnil(L, 3)) in[1] = tide_l_check_batch(L, 3);
  tide_sjoin_bounds_t b;
  memset(&b, 0, sizeof b);
  if (!lua_isnoneornil(L, 4)) b.has_late = 1, b.late = luaL_checkinteger(L, 4);
  for (int s = 0; s < 2; s++)
    if (!lua_isnoneornil(L, 5 + s)) b.has_evict[s] = 1, b.evict[s] = luaL_checkinteger(L, 5 + s);
  tide_batch_t *out = NULL;
  tide_sjoin_stats_t st;
  tide_err_t err = {0, ""};
  lua_createtable(L, 0, 4); /* before the run: nothing can raise after it but the push */
  int rc = tide_sjoin_run(j, in, &b, &out, &st, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushinteger(L, st.late[0]);
  lua_setfield(L, -2, "late_left");
  lua_pushinteger(L, st.late[1]);
  lua_setfield(L, -2, "late_right");
  lua_pushinteger(L, st.updated);
  lua_setfield(L, -2, "updated");
  lua_pushinteger(L, st.evicted);
  lua_setfield(L, -2, "evicted");
  tide_l_push_batch(L, out);
  lua_insert(L, -2);
  return 2;
}

static void state_key(unsigned char key[9], int side, uint64_t id) {
  key[0] = (unsigned char)side;
  for (int i = 0; i < 8; i++) key[1 + i] = (unsigned char)(id >> (56 - 8 * i));
}

/* j:take_changes() -> change set */
static int sjoin_take_changes(lua_State *L) {
  tide_sjoin_t *j = check_sjoin(L, 1);
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  tide_sjoin_ref_t *dels = NULL, *puts = NULL;
  size_t nd = 0, np = 0;
  if (tide_sjoin_changes(j, &dels, &nd, &puts, &np)) return luaL_error(L, "out of memory");
  x->p[0] = dels;
  x->p[1] = puts;
  tide_l_changes_t *c = tide_l_push_changes(L);
  unsigned char key[9];
  for (size_t i = 0; i < nd; i++) {
    state_key(key, dels[i].side, dels[i].id);
    if (tide_l_changes_del(c, key, 9)) return luaL_error(L, "out of memory");
  }
  for (size_t i = 0; i < np; i++) {
    size_t mark;
    state_key(key, puts[i].side, puts[i].id);
    if (tide_l_changes_put_begin(c, key, 9, &mark)) return luaL_error(L, "out of memory");
    if (tide_sjoin_encode(j, puts[i].side, puts[i].row, &c->buf)) {
      c->buf.len = mark;
      return luaL_error(L, "out of memory");
    }
    tide_l_changes_put_end(c, mark);
  }
  tide_l_scratch_free(x);
  return 1;
}

static int sjoin_clear_changes(lua_State *L) {
  tide_sjoin_clear_changes(check_sjoin(L, 1));
  return 0;
}

/* j:restore(key, record) -> true | nil, msg, ENAME */
static int sjoin_restore(lua_State *L) {
  tide_sjoin_t *j = check_sjoin(L, 1);
  size_t klen, len;
  const unsigned char *k = (const unsigned char *)luaL_checklstring(L, 2, &klen);
  const char *p = luaL_checklstring(L, 3, &len);
  if (klen != 9 || k[0] > 1)
    return tide_l_fail(L, TIDE_ECORRUPT, NULL, "join state: a key that is not a side and a state id (9 bytes)");
  uint64_t id = 0;
  for (int i = 1; i < 9; i++) id = (id << 8) | k[i];
  tide_err_t err = {0, ""};
  int rc = tide_sjoin_restore(j, k[0], id, p, len, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int sjoin_rows(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)tide_sjoin_rows(check_sjoin(L, 1)));
  return 1;
}

static int sjoin_bytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)tide_sjoin_bytes(check_sjoin(L, 1)));
  return 1;
}

int tide_l_sjoin_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"run", sjoin_run},         {"take_changes", sjoin_take_changes},
                                     {"clear_changes", sjoin_clear_changes},
                                     {"restore", sjoin_restore}, {"rows", sjoin_rows},
                                     {"bytes", sjoin_bytes},     {NULL, NULL}};
  tide_l_class(L, SJOIN_MT, methods, sjoin_gc, 0);
  lua_pushcfunction(L, l_stream_join);
  lua_setfield(L, -2, "stream_join");
  return 0;
}
