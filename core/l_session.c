/*
 * l_session.c: the tide.Session userdata (session windows, core/session.h).
 *
 *   core.session(key_schema, {spec..}, gap, out_schema, window_pos)
 *                          -> Session | nil, msg, ENAME
 *     key_schema nil: no key (a static global session window); specs as
 *     core.agg's; window_pos: the 1-based position of
 *     window_start in out_schema (window_end follows it)
 *   s:push(batch [, late_bound [, input]]) -> true, info | nil, msg, ENAME
 *     batch: the key columns, then the event time (timestamp), then one
 *     argument column per aggregate other than count(*), in order. Rows
 *     with time + gap <= late_bound are late: left out, and, with input
 *     (the batch `batch` was computed from, row for row), handed back.
 *     info = {pushed =, late =, updated = sessions this push created or
 *     changed that were not changes already, lost = Batch of input's late
 *     rows or nil}
 *   s:result()             -> Batch (every session, creation order)
 *   s:evict(watermark)     -> Batch (the sessions ending at or before it,
 *                             removed)
 *   s:rows(), s:bytes()
 *   s:take_changes()       -> change set (l_ckpt.h): a delete per removed
 *                             session that was in the checkpoint, then a
 *                             put (sid, 8 bytes big-endian -> record) per
 *                             created or changed session
 *   s:clear_changes()      the changes are committed
 *   s:restore(sid, record) -> true | nil, msg, ENAME ("ECORRUPT",
 *                             "EFORMAT": also the old session format,
 *                             "ESCHEMA")
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "l_ckpt.h"
#include "l_tide.h"
#include "session.h"
#include "vec.h"

#define SESSION_MT "tide.Session"

typedef struct {
  tide_session_t *s;
} l_session_t;

static tide_session_t *check_session(lua_State *L, int idx) {
  l_session_t *u = luaL_checkudata(L, idx, SESSION_MT);
  if (!u->s) luaL_error(L, "attempt to use a freed tide.Session");
  return u->s;
}

static int session_gc(lua_State *L) {
  l_session_t *u = luaL_checkudata(L, 1, SESSION_MT);
  tide_session_free(u->s);
  u->s = NULL;
  return 0;
}

/* core.session(key_schema, specs, gap, out_schema, window_pos) */
static int l_session(lua_State *L) {
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  /* no keys (a static global session window): an empty key schema */
  tide_schema_t *keys = lua_isnil(L, 1) ? (x->schema = tide_schema_new()) : tide_l_check_schema(L, 1);
  if (!keys) return luaL_error(L, "out of memory");
  lua_Integer gap = luaL_checkinteger(L, 3);
  tide_schema_t *out = tide_l_check_schema(L, 4);
  lua_Integer wpos = luaL_checkinteger(L, 5);
  luaL_argcheck(L, wpos >= 1 && wpos <= (lua_Integer)keys->nfields + 1, 5, "window position out of range");
  uint32_t n;
  tide_agg_spec_t *specs = tide_l_check_agg_specs(L, 2, x, &n);
  l_session_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->s = NULL;
  luaL_setmetatable(L, SESSION_MT);
  tide_err_t err = {0, ""};
  int rc = tide_session_new(keys, specs, n, gap, out, (uint32_t)wpos - 1, &u->s, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_l_scratch_free(x);
  return 1;
}

/* s:push(batch [, late_bound [, input]]) */
static int session_push(lua_State *L) {
  tide_session_t *s = check_session(L, 1);
  tide_batch_t *b = tide_l_check_batch(L, 2);
  tide_session_feed_t f = {0};
  f.has_late = !lua_isnoneornil(L, 3);
  f.late_bound = f.has_late ? (int64_t)luaL_checkinteger(L, 3) : 0;
  tide_batch_t *in = lua_isnoneornil(L, 4) ? NULL : tide_l_check_batch(L, 4);
  if (in && in->nrows != b->nrows)
    return luaL_argerror(L, 4, lua_pushfstring(L, "%d rows, the batch has %d", (int)in->nrows, (int)b->nrows));
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  if (f.has_late && !(f.late = x->p[0] = malloc(b->nrows ? b->nrows : 1))) return luaL_error(L, "out of memory");
  tide_err_t err = {0, ""};
  int rc = tide_session_push_batch(s, b, &f, &err);
  if (rc == TIDE_EINVAL) return luaL_argerror(L, 2, err.msg);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, f.pushed);
  lua_setfield(L, -2, "pushed");
  lua_pushinteger(L, f.late_rows);
  lua_setfield(L, -2, "late");
  lua_pushinteger(L, f.updated);
  lua_setfield(L, -2, "updated");
  if (in && f.late_rows) {
    uint32_t *rows = x->p[1] = malloc((size_t)f.late_rows * sizeof *rows), m = 0;
    if (!rows) return luaL_error(L, "out of memory");
    for (uint32_t i = 0; i < b->nrows; i++)
      if (f.late[i]) rows[m++] = i;
    tide_batch_t *lost = NULL;
    if ((rc = tide_batch_gather(in, rows, m, &lost))) return tide_l_fail(L, rc, NULL, "late rows");
    tide_l_push_batch(L, lost);
    lua_setfield(L, -2, "lost");
  }
  tide_l_scratch_free(x);
  return 2;
}

/* s:result() -> Batch | nil, msg, ENAME */
static int session_result(lua_State *L) {
  tide_batch_t *b = NULL;
  tide_err_t err = {0, ""};
  int rc = tide_session_result(check_session(L, 1), &b, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_l_push_batch(L, b);
  return 1;
}

/* s:evict(watermark) -> Batch | nil, msg, ENAME */
static int session_evict(lua_State *L) {
  tide_session_t *s = check_session(L, 1);
  lua_Integer wm = luaL_checkinteger(L, 2);
  tide_batch_t *b = NULL;
  tide_err_t err = {0, ""};
  int rc = tide_session_evict(s, (int64_t)wm, &b, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_l_push_batch(L, b);
  return 1;
}

static int session_rows(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)tide_session_count(check_session(L, 1)));
  return 1;
}

static int session_bytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)tide_session_bytes(check_session(L, 1)));
  return 1;
}

/* s:take_changes() -> change set: deletes (ascending sids), then puts in
 * creation order. Clears nothing. */
static int session_take_changes(lua_State *L) {
  tide_session_t *s = check_session(L, 1);
  tide_l_changes_t *c = tide_l_push_changes(L);
  unsigned char key[8];
  const uint64_t *gone;
  size_t ng = tide_session_deleted(s, &gone);
  for (size_t i = 0; i < ng; i++) {
    tide_ckpt_key_u64(key, gone[i]);
    if (tide_l_changes_del(c, key, 8)) return luaL_error(L, "out of memory");
  }
  uint32_t n;
  tide_err_t err = {0, ""};
  int frc = tide_session_changes(s, &n, &err);
  if (frc) return tide_l_fail(L, frc, NULL, err.msg);
  for (uint32_t i = 0; i < n; i++) {
    size_t mark;
    uint64_t sid = 0;
    tide_session_change(s, i, &sid, NULL, &err);
    tide_ckpt_key_u64(key, sid);
    if (tide_l_changes_put_begin(c, key, 8, &mark)) return luaL_error(L, "out of memory");
    int rc = tide_session_change(s, i, &sid, &c->buf, &err);
    if (rc) {
      c->buf.len = mark;
      return tide_l_fail(L, rc, NULL, err.msg);
    }
    tide_l_changes_put_end(c, mark);
  }
  return 1;
}

static int session_clear_changes(lua_State *L) {
  tide_session_clear_changes(check_session(L, 1));
  return 0;
}

/* s:restore(sid, record) -> true | nil, msg, ENAME */
static int session_restore(lua_State *L) {
  tide_session_t *s = check_session(L, 1);
  lua_Integer sid = luaL_checkinteger(L, 2);
  size_t len;
  const char *p = luaL_checklstring(L, 3, &len);
  luaL_argcheck(L, sid >= 1, 2, "a state id is an integer >= 1");
  tide_err_t err = {0, ""};
  int rc = tide_session_restore(s, (uint64_t)sid, p, len, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

int tide_l_session_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"push", session_push},
                                     {"result", session_result},
                                     {"evict", session_evict},
                                     {"rows", session_rows},
                                     {"bytes", session_bytes},
                                     {"take_changes", session_take_changes},
                                     {"clear_changes", session_clear_changes},
                                     {"restore", session_restore},
                                     {NULL, NULL}};
  tide_l_class(L, SESSION_MT, methods, session_gc, 0);
  lua_pushcfunction(L, l_session);
  lua_setfield(L, -2, "session");
  return 0;
}
