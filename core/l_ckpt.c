/*
 * l_ckpt.c: the Lua binding of the checkpoint store (core/ckpt.h), the
 * tide.Checkpoint type that the stream engine (lua/tide/query.lua) and
 * `tide checkpoint show` use.
 *
 *   core.checkpoint(dir [, {sync = true, read_only = false}]) -> ck | nil, msg, ENAME
 *   ck:get_meta(key) -> text | nil          ck:set_meta(key, text) -> true
 *   ck:latest() -> last offset id | nil, last commit id | nil
 *   ck:offsets(n), ck:commit_entry(n) -> text | nil
 *   ck:write_offsets(n, text) -> true       ck:commit(n, text [, changes]) -> true
 *   ck:commit_start(n [, changes]) -> true  ck:commit_finish(text) -> true
 *   ck:commit_open(text [, next]) -> true   ck:commit_wait() -> true
 *   ck:commit_cancel()   (the same commit overlapped: see l_commit_start)
 *   ck:purge(before) -> number of entries removed
 *   ck:state(name) -> iterator of key, value in key order
 *   ck:stats() -> table                     ck:path(), ck:is_read_only(), ck:is_open()
 *   ck:close() (also __gc, __close)
 *   core.state_changes() -> cs (a change set, l_ckpt.h): cs:put(key, value),
 *   cs:del(key), cs:count() -> puts, deletes, cs:ops() -> { {"put", key,
 *   value} | {"del", key} ... } in order, cs:free() (empties it now)
 *
 * Errors: opening returns nil, message, ENAME when the environment fails
 * (STYLE.md's third tier: the engine adds the query's context). Everything
 * else raises with a message starting "checkpoint <dir>: ": bad arguments,
 * writes to a read-only checkpoint, use of a closed one, and also failed
 * writes ("offset log N exists with other offsets", "commit log N exists",
 * a full disk) and failed reads. Writes raise rather than return a
 * failure tuple because an unchecked failed commit would silently break
 * exactly-once; a failed write has written nothing.
 *
 * No Lua error can cross an open transaction: every argument is converted
 * and checked before the C call, the C call begins and ends its
 * transactions, and results are pushed afterwards from buffers owned by
 * userdata (so that a raise while pushing leaks nothing).
 */
#include <lauxlib.h>
#include <lmdb.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "l_ckpt.h"
#include "l_tide.h"
#include "store.h"

#define CKPT_MT "tide.Checkpoint"
#define ITER_MT "tide.CheckpointIter"
#define CHANGES_MT "tide.StateChanges"

enum { OP_PUT = 1, OP_DEL = 2 };
#define REC_HEAD 9 /* op, klen, vlen */

/* Entries and bytes copied per state_scan call of an iterator. */
#define ITER_CHUNK_ENTRIES 512
#define ITER_CHUNK_BYTES (1u << 20)

typedef struct {
  tide_ckpt_t *c;
  tide_buf_t scratch; /* results of reads, pushed from here */
  tide_ckpt_async_t *async; /* an overlapped commit in flight (ck:commit_start), or NULL */
  tide_ckpt_change_t *ops;  /* its changes (malloc'd) */
  int ref;                  /* its change table in the registry, or LUA_NOREF */
  int open;                 /* its gate is open (ck:commit_open) */
  int after_ref;            /* the store whose append it waits for (commit_open's 4th argument), or LUA_NOREF */
} l_ckpt_t;

typedef struct {
  char name[TIDE_CKPT_NAME_MAX + 1];
  size_t name_len;
  tide_buf_t chunk;  /* records of the current chunk (ckpt.h) */
  size_t pos, n;     /* next record, records in chunk */
  const char *next;  /* the next record's bytes in chunk */
  tide_buf_t last;   /* the last key of the chunk: the next scan starts after it */
  int started, done;
} l_iter_t;

/* ---------------------------------------------------------------- helpers */

/* A write's result: true, or a raise with the message (nothing was
 * written; no transaction is open any more). */
static int write_result(lua_State *L, int rc, const tide_err_t *err) {
  if (rc) return luaL_error(L, "%s", err->msg[0] ? err->msg : tide_strerror(rc));
  lua_pushboolean(L, 1);
  return 1;
}

static l_ckpt_t *check_ckpt(lua_State *L, int idx) { return luaL_checkudata(L, idx, CKPT_MT); }

static l_ckpt_t *check_open_ckpt(lua_State *L, int idx) {
  l_ckpt_t *k = check_ckpt(L, idx);
  if (!k->c) luaL_error(L, "attempt to use a closed tide.Checkpoint");
  return k;
}

struct tide_ckpt **tide_l_check_ckpt(lua_State *L, int idx) { return &check_open_ckpt(L, idx)->c; }

/* A batch id argument: an integer >= 0. */
static uint64_t check_id(lua_State *L, int idx) {
  lua_Integer n = luaL_checkinteger(L, idx);
  luaL_argcheck(L, n >= 0, idx, "batch id must be >= 0");
  return (uint64_t)n;
}

/* ----------------------------------------------------------- open/close */

static void async_cancel(lua_State *L, l_ckpt_t *k);

/* Idempotent close: __gc, __close and ck:close(); an overlapped commit
 * still in flight is cancelled (nothing of it is written). */
static int ckpt_close(lua_State *L) {
  l_ckpt_t *k = check_ckpt(L, 1);
  async_cancel(L, k);
  tide_ckpt_close(k->c);
  k->c = NULL;
  tide_buf_free(&k->scratch);
  return 0;
}

/* core.checkpoint(dir [, opts]) -> ck | nil, msg, ENAME */
static int l_checkpoint(lua_State *L) {
  const char *dir = tide_l_check_cname(L, 1, "checkpoint path", TIDE_L_PATH);
  int flags = 0;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
      int is_sync = key && !strcmp(key, "sync"), is_ro = key && !strcmp(key, "read_only");
      if (!is_sync && !is_ro) {
        lua_pushvalue(L, -2);
        return luaL_error(L, "checkpoint: unknown option '%s' (allowed: read_only, sync)", luaL_tolstring(L, -1, NULL));
      }
      if (!lua_isboolean(L, -1))
        return luaL_error(L, "checkpoint: option '%s' must be a boolean, got %s", key, luaL_typename(L, -1));
      if (is_sync && !lua_toboolean(L, -1)) flags |= TIDE_CKPT_NOSYNC;
      if (is_ro && lua_toboolean(L, -1)) flags |= TIDE_CKPT_READ_ONLY;
      lua_pop(L, 1);
    }
  }
  l_ckpt_t *k = lua_newuserdatauv(L, sizeof *k, 0);
  memset(k, 0, sizeof *k); /* created closed, then opened (STYLE.md) */
  k->ref = k->after_ref = LUA_NOREF;
  luaL_setmetatable(L, CKPT_MT);
  tide_err_t err = {0, ""};
  int rc = tide_ckpt_open(dir, flags, &k->c, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  return 1;
}

static int l_path(lua_State *L) {
  lua_pushstring(L, tide_ckpt_dir(check_open_ckpt(L, 1)->c));
  return 1;
}

static int l_is_read_only(lua_State *L) {
  lua_pushboolean(L, tide_ckpt_read_only(check_open_ckpt(L, 1)->c));
  return 1;
}

static int l_is_open(lua_State *L) {
  lua_pushboolean(L, check_ckpt(L, 1)->c != NULL);
  return 1;
}

static int l_tostring(lua_State *L) {
  l_ckpt_t *k = check_ckpt(L, 1);
  if (k->c) lua_pushfstring(L, "tide.Checkpoint (%s)", tide_ckpt_dir(k->c));
  else lua_pushliteral(L, "tide.Checkpoint (closed)");
  return 1;
}

/* ---------------------------------------------------------------- reads */

/* Push the scratch buffer's text after a read: the text, nil when absent,
 * a raise when the read failed. */
static int read_result(lua_State *L, l_ckpt_t *k, int rc, const tide_err_t *err) {
  if (rc == MDB_NOTFOUND) {
    lua_pushnil(L);
    return 1;
  }
  if (rc) return luaL_error(L, "%s", err->msg[0] ? err->msg : tide_strerror(rc));
  lua_pushlstring(L, k->scratch.data ? k->scratch.data : "", k->scratch.len);
  return 1;
}

static int l_get_meta(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, 1);
  size_t klen;
  const char *key = luaL_checklstring(L, 2, &klen);
  luaL_argcheck(L, klen > 0 && klen <= TIDE_CKPT_KEY_MAX, 2, "meta key must be 1..511 bytes");
  tide_err_t err = {0, ""};
  return read_result(L, k, tide_ckpt_meta_get(k->c, key, klen, &k->scratch, &err), &err);
}

static int l_offsets(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, 1);
  uint64_t n = check_id(L, 2);
  tide_err_t err = {0, ""};
  return read_result(L, k, tide_ckpt_offsets_get(k->c, n, &k->scratch, &err), &err);
}

static int l_commit_entry(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, 1);
  uint64_t n = check_id(L, 2);
  tide_err_t err = {0, ""};
  return read_result(L, k, tide_ckpt_commit_get(k->c, n, &k->scratch, &err), &err);
}

static void push_id(lua_State *L, int64_t id) {
  if (id < 0) lua_pushnil(L);
  else lua_pushinteger(L, (lua_Integer)id);
}

static int l_latest(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, 1);
  int64_t lo, lc;
  tide_err_t err = {0, ""};
  if (tide_ckpt_latest(k->c, &lo, &lc, &err)) return luaL_error(L, "%s", err.msg);
  push_id(L, lo);
  push_id(L, lc);
  return 2;
}

static void set_int(lua_State *L, const char *key, int64_t v) {
  if (v < 0) return; /* -1: none, the field stays nil */
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, key);
}

/* ck:stats() -> { offsets, commits, first_id, last_offset_id,
 * last_commit_id, states = { [name] = { entries, bytes } }, map_bytes,
 * file_bytes } */
static int l_stats(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, 1);
  tide_ckpt_stats_t st;
  tide_err_t err = {0, ""};
  if (tide_ckpt_stats(k->c, &st, &k->scratch, &err)) return luaL_error(L, "%s", err.msg);
  lua_createtable(L, 0, 8);
  set_int(L, "offsets", (int64_t)st.offsets);
  set_int(L, "commits", (int64_t)st.commits);
  set_int(L, "first_id", st.first_id);
  set_int(L, "last_offset_id", st.last_offset_id);
  set_int(L, "last_commit_id", st.last_commit_id);
  set_int(L, "map_bytes", (int64_t)st.map_bytes);
  set_int(L, "file_bytes", (int64_t)st.file_bytes);
  lua_createtable(L, 0, (int)st.nstates);
  for (size_t i = 0; i < st.nstates; i++) {
    tide_ckpt_state_stat_t s;
    memcpy(&s, k->scratch.data + i * sizeof s, sizeof s);
    lua_createtable(L, 0, 2);
    set_int(L, "entries", (int64_t)s.entries);
    set_int(L, "bytes", (int64_t)s.bytes);
    lua_setfield(L, -2, s.name);
  }
  lua_setfield(L, -2, "states");
  return 1;
}

/* --------------------------------------------------------------- writes */

static int l_set_meta(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, 1);
  size_t klen, vlen;
  const char *key = luaL_checklstring(L, 2, &klen);
  if (lua_type(L, 3) != LUA_TSTRING)
    return luaL_argerror(L, 3, lua_pushfstring(L, "a value is a string, got %s", luaL_typename(L, 3)));
  const char *val = lua_tolstring(L, 3, &vlen);
  luaL_argcheck(L, klen > 0 && klen <= TIDE_CKPT_KEY_MAX, 2, "meta key must be 1..511 bytes");
  tide_err_t err = {0, ""};
  return write_result(L, tide_ckpt_meta_set(k->c, key, klen, val, vlen, &err), &err);
}

static int l_write_offsets(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, 1);
  uint64_t n = check_id(L, 2);
  size_t len;
  const char *text = luaL_checklstring(L, 3, &len);
  tide_err_t err = {0, ""};
  return write_result(L, tide_ckpt_write_offsets(k->c, n, text, len, &err), &err);
}

static int l_purge(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, 1);
  uint64_t before = check_id(L, 2);
  uint64_t removed = 0;
  tide_err_t err = {0, ""};
  int rc = tide_ckpt_purge(k->c, before, &removed, &err);
  if (rc) return write_result(L, rc, &err);
  lua_pushinteger(L, (lua_Integer)removed);
  return 1;
}

/* ----------------------------------------------------------- change sets */

static int changes_gc(lua_State *L) {
  tide_l_changes_t *c = luaL_checkudata(L, 1, CHANGES_MT);
  tide_buf_free(&c->buf);
  c->nputs = c->ndels = 0;
  return 0;
}

tide_l_changes_t *tide_l_push_changes(lua_State *L) {
  tide_l_changes_t *c = lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  luaL_setmetatable(L, CHANGES_MT);
  return c;
}

static int put_head(tide_l_changes_t *c, int op, const void *key, size_t klen) {
  int rc = tide_buf_reserve(&c->buf, REC_HEAD + klen);
  if (rc) return rc;
  char *p = c->buf.data + c->buf.len;
  uint32_t k = (uint32_t)klen, v = 0;
  p[0] = (char)op;
  memcpy(p + 1, &k, 4);
  memcpy(p + 5, &v, 4);
  if (klen) memcpy(p + REC_HEAD, key, klen);
  c->buf.len += REC_HEAD + klen;
  return 0;
}

int tide_l_changes_del(tide_l_changes_t *c, const void *key, size_t klen) {
  int rc = put_head(c, OP_DEL, key, klen);
  if (!rc) c->ndels++;
  return rc;
}

int tide_l_changes_put_begin(tide_l_changes_t *c, const void *key, size_t klen, size_t *mark) {
  *mark = c->buf.len;
  return put_head(c, OP_PUT, key, klen);
}

void tide_l_changes_put_end(tide_l_changes_t *c, size_t mark) {
  char *p = c->buf.data + mark;
  uint32_t klen;
  memcpy(&klen, p + 1, 4);
  uint32_t vlen = (uint32_t)(c->buf.len - mark - REC_HEAD - klen);
  memcpy(p + 5, &vlen, 4);
  c->nputs++;
}

/* The record at p: its op, key and value (value NULL for a delete); returns the next record. */
static const char *next_op(const char *p, tide_ckpt_op_t *op) {
  uint32_t klen, vlen;
  memcpy(&klen, p + 1, 4);
  memcpy(&vlen, p + 5, 4);
  op->key = p + REC_HEAD;
  op->klen = klen;
  op->val = p[0] == OP_PUT ? p + REC_HEAD + klen : NULL;
  op->vlen = p[0] == OP_PUT ? vlen : 0;
  return p + REC_HEAD + klen + (p[0] == OP_PUT ? vlen : 0);
}

const char *tide_l_changes_next(const char *p, tide_ckpt_op_t *op) { return next_op(p, op); }

tide_l_changes_t *tide_l_check_changes(lua_State *L, int idx) { return luaL_checkudata(L, idx, CHANGES_MT); }

/* A key argument: a string, or an integer >= 0 stored as 8 bytes big-endian in room. */
static const char *check_key(lua_State *L, int idx, size_t *len, unsigned char room[8]) {
  if (lua_type(L, idx) == LUA_TNUMBER && lua_isinteger(L, idx) && lua_tointeger(L, idx) >= 0) {
    tide_ckpt_key_u64(room, (uint64_t)lua_tointeger(L, idx));
    *len = 8;
    return (const char *)room;
  }
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_argerror(L, idx, lua_pushfstring(L, "a key is a string or an integer >= 0, got %s", luaL_typename(L, idx)));
  const char *k = lua_tolstring(L, idx, len);
  luaL_argcheck(L, *len >= 1 && *len <= TIDE_CKPT_KEY_MAX, idx, "a key is 1..511 bytes");
  return k;
}

static int cs_new(lua_State *L) {
  tide_l_push_changes(L);
  return 1;
}

static int cs_put(lua_State *L) {
  tide_l_changes_t *c = luaL_checkudata(L, 1, CHANGES_MT);
  unsigned char room[8];
  size_t klen, vlen;
  const char *key = check_key(L, 2, &klen, room);
  if (lua_type(L, 3) != LUA_TSTRING)
    return luaL_argerror(L, 3, lua_pushfstring(L, "a value is a string, got %s", luaL_typename(L, 3)));
  const char *val = lua_tolstring(L, 3, &vlen);
  size_t mark;
  if (vlen > UINT32_MAX) return luaL_argerror(L, 3, "a value is at most 4 GiB");
  if (tide_l_changes_put_begin(c, key, klen, &mark) || tide_buf_append(&c->buf, val, vlen)) {
    c->buf.len = mark;
    return luaL_error(L, "out of memory");
  }
  tide_l_changes_put_end(c, mark);
  return 0;
}

static int cs_del(lua_State *L) {
  tide_l_changes_t *c = luaL_checkudata(L, 1, CHANGES_MT);
  unsigned char room[8];
  size_t klen;
  const char *key = check_key(L, 2, &klen, room);
  if (tide_l_changes_del(c, key, klen)) return luaL_error(L, "out of memory");
  return 0;
}

/* cs:free(): drop the buffer now (a commit is done with it); the set is
 * empty after. The collector does not see this memory, so waiting for
 * __gc could keep a batch's changes alive for many batches. */
static int cs_free(lua_State *L) { return changes_gc(L); }

static int cs_count(lua_State *L) {
  tide_l_changes_t *c = luaL_checkudata(L, 1, CHANGES_MT);
  lua_pushinteger(L, (lua_Integer)c->nputs);
  lua_pushinteger(L, (lua_Integer)c->ndels);
  return 2;
}

static int cs_ops(lua_State *L) {
  tide_l_changes_t *c = luaL_checkudata(L, 1, CHANGES_MT);
  size_t n = c->nputs + c->ndels;
  lua_createtable(L, (int)n, 0);
  const char *p = c->buf.data;
  for (size_t i = 0; i < n; i++) {
    tide_ckpt_op_t op;
    p = next_op(p, &op);
    lua_createtable(L, 3, 0);
    lua_pushstring(L, op.val ? "put" : "del");
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, op.key, op.klen);
    lua_rawseti(L, -2, 2);
    if (op.val) {
      lua_pushlstring(L, op.val, op.vlen);
      lua_rawseti(L, -2, 3);
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* ---------------------------------------------------------------- commit */

/* Push t[field] of the table on top without metamethods (no Lua code
 * runs, and what is read is what the table holds); returns its type. */
static int raw_field(lua_State *L, const char *field) {
  lua_pushstring(L, field);
  return lua_rawget(L, -2);
}

/* The array at t[field] of the table on top (absent: 0 entries); raises when it is not one. */
static lua_Unsigned field_len(lua_State *L, const char *state, const char *field) {
  int ty = raw_field(L, field);
  lua_Unsigned n = 0;
  if (ty == LUA_TTABLE) n = lua_rawlen(L, -1);
  else if (ty != LUA_TNIL)
    luaL_error(L, "commit: changes['%s'].%s must be an array, got %s", state, field, luaL_typename(L, -1));
  lua_pop(L, 1);
  return n;
}

/* The string at index i of the table on top (a string, never converted:
 * its bytes stay referenced by the table during the commit). A key may
 * also be an integer >= 0, stored as 8 bytes big-endian in `room` (the
 * engine keys its operators' state by 64-bit state ids: packing them here
 * saves a Lua string per changed group and batch). */
static const char *raw_string(lua_State *L, lua_Integer i, size_t *len, const char *state, const char *what,
                              lua_Integer at, unsigned char *room) {
  int ty = lua_rawgeti(L, -1, i);
  if (ty == LUA_TNUMBER && room && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0) {
    tide_ckpt_key_u64(room, (uint64_t)lua_tointeger(L, -1));
    *len = 8;
    lua_pop(L, 1);
    return (const char *)room;
  }
  if (ty != LUA_TSTRING)
    luaL_error(L, "commit: changes['%s'].%s[%d]: %s must be a string%s, got %s", state, what, (int)at,
               room ? "key" : "value", room ? " or an integer >= 0" : "", luaL_typename(L, -1));
  const char *s = lua_tolstring(L, -1, len);
  lua_pop(L, 1);
  return s;
}

/* ck:commit(n, text [, changes]) -> true
 * changes = { [state name] = { put = { {key, value}, ... }, del = { key, ... } } | change set }
 * (a key is a string, or an integer >= 0 stored as 8 bytes big-endian; a
 * change set's ops apply in their order, its memory stays the userdata's)
 * Pass 1 checks the shape and counts; pass 2 fills one block of
 * tide_ckpt_change_t and tide_ckpt_op_t (in a scratch, so a raise frees it)
 * whose pointers are into the Lua strings the changes table holds. Per
 * state, the puts apply first, then the deletes. */
/* The changes table at index idx (nil: none) as an array of tide_ckpt_change_t (and
 * their ops) in x->p[0]; *nch gets its length. Keys and values point into
 * the table's strings and change sets: valid while the table is alive and
 * unchanged. Raises on a bad table. */
static tide_ckpt_change_t *changes_arg(lua_State *L, int idx, tide_l_scratch_t *x, size_t *nchanges) {
  size_t nch = 0, nops = 0;
  if (!lua_isnoneornil(L, idx)) {
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
      if (lua_type(L, -2) != LUA_TSTRING) {
        luaL_error(L, "commit: changes: state names must be strings, got %s", luaL_typename(L, -2));
        return NULL;
      }
      const char *state = lua_tostring(L, -2);
      tide_l_changes_t *cs = luaL_testudata(L, -1, CHANGES_MT);
      if (cs) {
        nops += cs->nputs + cs->ndels;
        nch++;
        lua_pop(L, 1);
        continue;
      }
      if (!lua_istable(L, -1)) {
        luaL_error(L, "commit: changes['%s'] must be a table {put = ..., del = ...} or a change set, got %s", state,
                   luaL_typename(L, -1));
        return NULL;
      }
      lua_pushnil(L);
      while (lua_next(L, -2)) {
        const char *f = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (!f || (strcmp(f, "put") && strcmp(f, "del"))) {
          lua_pushvalue(L, -2);
          luaL_error(L, "commit: changes['%s']: unknown field '%s' (allowed: del, put)", state,
                     luaL_tolstring(L, -1, NULL));
          return NULL;
        }
        lua_pop(L, 1);
      }
      nops += field_len(L, state, "put") + field_len(L, state, "del");
      nch++;
      lua_pop(L, 1);
    }
  }
  tide_ckpt_change_t *ch = x->p[0] = malloc(nch * sizeof *ch + nops * (sizeof(tide_ckpt_op_t) + 8) + 1);
  if (!ch) {
    luaL_error(L, "out of memory");
    return NULL;
  }
  tide_ckpt_op_t *ops = (tide_ckpt_op_t *)(ch + nch);
  unsigned char *keys = (unsigned char *)(ops + nops); /* 8 bytes per op for integer keys */
  size_t ci = 0, oi = 0;
  if (nch) {
    lua_pushnil(L);
    while (ci < nch && lua_next(L, idx)) {
      const char *state = lua_tolstring(L, -2, &ch[ci].state_len);
      ch[ci].state = state;
      ch[ci].ops = ops + oi;
      size_t first = oi;
      tide_l_changes_t *cs = luaL_testudata(L, -1, CHANGES_MT);
      if (cs) {
        const char *p = cs->buf.data;
        for (size_t i = 0; i < cs->nputs + cs->ndels && oi < nops; i++) p = next_op(p, &ops[oi++]);
        lua_pop(L, 1);
        ch[ci].nops = oi - first;
        ci++;
        continue;
      }
      if (raw_field(L, "put") == LUA_TTABLE) {
        lua_Unsigned m = lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= (lua_Integer)m && oi < nops; i++) {
          if (lua_rawgeti(L, -1, i) != LUA_TTABLE) {
            luaL_error(L, "commit: changes['%s'].put[%d] must be a {key, value} pair, got %s", state, (int)i,
                       luaL_typename(L, -1));
            return NULL;
          }
          tide_ckpt_op_t *op = &ops[oi];
          op->key = raw_string(L, 1, &op->klen, state, "put", i, keys + 8 * oi);
          op->val = raw_string(L, 2, &op->vlen, state, "put", i, NULL);
          oi++;
          lua_pop(L, 1);
        }
      }
      lua_pop(L, 1);
      if (raw_field(L, "del") == LUA_TTABLE) {
        lua_Unsigned m = lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= (lua_Integer)m && oi < nops; i++) {
          tide_ckpt_op_t *op = &ops[oi];
          op->key = raw_string(L, i, &op->klen, state, "del", i, keys + 8 * oi);
          op->val = NULL;
          op->vlen = 0;
          oi++;
        }
      }
      lua_pop(L, 2); /* del, the change table */
      ch[ci].nops = oi - first;
      ci++;
    }
  }
  *nchanges = ci;
  return ch;
}

static int l_commit(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, 1);
  uint64_t n = check_id(L, 2);
  size_t len, nch;
  const char *text = luaL_checklstring(L, 3, &len);
  lua_settop(L, 4); /* the changes (or nil) at 4, below the scratch */
  /* in a scratch (freed right after the commit), not in a userdata: the
   * collector would keep a large commit's ops (40 bytes each) for many
   * batches, as it sees only its own heap grow */
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  tide_ckpt_change_t *ch = changes_arg(L, 4, x, &nch);
  /* From here to the result no Lua function runs. */
  tide_err_t err = {0, ""};
  int rc = tide_ckpt_commit(k->c, n, text, len, ch, nch, &err);
  tide_l_scratch_free(x);
  return write_result(L, rc, &err);
}

/* The overlapped commit (ckpt.h tide_ckpt_commit_start): ck:commit_start(n,
 * [changes]) begins it on a thread; ck:commit_finish(text) opens its gate
 * and returns when it is durable (raising what failed, as ck:commit does);
 * ck:commit_cancel() aborts it, writing nothing. The change table (and its
 * change sets: they must not be changed or freed) is held in the
 * registry, the ops array by the checkpoint, until finish or cancel;
 * closing the checkpoint cancels one in flight. */
static void async_release(lua_State *L, l_ckpt_t *k) {
  free(k->ops);
  k->ops = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, k->ref);
  k->ref = LUA_NOREF;
  luaL_unref(L, LUA_REGISTRYINDEX, k->after_ref);
  k->after_ref = LUA_NOREF;
}

static int l_commit_start(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, 1);
  uint64_t n = check_id(L, 2);
  if (k->async) return luaL_error(L, "checkpoint %s: commit_start: a commit is in flight", tide_ckpt_dir(k->c));
  lua_settop(L, 3); /* the changes (or nil) at 3, below the scratch */
  size_t nch;
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  tide_ckpt_change_t *ch = changes_arg(L, 3, x, &nch);
  lua_pushvalue(L, 3);
  k->ref = luaL_ref(L, LUA_REGISTRYINDEX); /* may raise: before the thread starts */
  k->ops = ch;
  x->p[0] = NULL; /* the checkpoint owns it now */
  tide_err_t err = {0, ""};
  int rc = tide_ckpt_commit_start(k->c, n, ch, nch, &k->async, &err);
  if (rc) {
    k->async = NULL;
    async_release(L, k);
  }
  return write_result(L, rc, &err);
}

static int l_commit_finish(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, 1);
  size_t len;
  const char *text = luaL_checklstring(L, 2, &len);
  if (!k->async || k->open)
    return luaL_error(L, "checkpoint %s: commit_finish: no commit in flight at its gate", tide_ckpt_dir(k->c));
  tide_err_t err = {0, ""};
  int rc = tide_ckpt_commit_finish(k->async, text, len, &err);
  k->async = NULL;
  async_release(L, k);
  return write_result(L, rc, &err);
}

/* Cancel the overlapped commit in flight, if any. */
static void async_cancel(lua_State *L, l_ckpt_t *k) {
  if (!k->async) return;
  tide_ckpt_commit_cancel(k->async); /* open already: waits for it */
  k->async = NULL;
  k->open = 0;
  async_release(L, k);
}

/* ck:commit_open(text [, next_offsets [, store]]) -> true: the gate
 * opened, the commit under way (with offset entry n + 1 when next_offsets
 * is given); with `store` (a core tide.Store with an append in flight:
 * topic:append_start), the commit is taken only once that append is done
 * and durable, and cancelled when it failed (ckpt.h
 * tide_ckpt_commit_after; the store is held until commit_wait);
 * ck:commit_wait() -> true when it is durable (raising what failed). */
static int l_commit_open(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, 1);
  size_t len, nlen = 0;
  const char *text = luaL_checklstring(L, 2, &len);
  const char *next = luaL_optlstring(L, 3, NULL, &nlen);
  tide_store_t *st = lua_isnoneornil(L, 4) ? NULL : tide_l_check_store(L, 4);
  if (!k->async) return luaL_error(L, "checkpoint %s: commit_open: no commit in flight", tide_ckpt_dir(k->c));
  if (k->open) return luaL_error(L, "checkpoint %s: commit_open: the commit is open already", tide_ckpt_dir(k->c));
  if (st && !tide_append_pending(st))
    return luaL_error(L, "checkpoint %s: commit_open: the store has no append in flight", tide_ckpt_dir(k->c));
  if (st) {
    lua_pushvalue(L, 4);
    k->after_ref = luaL_ref(L, LUA_REGISTRYINDEX); /* may raise: before the hold */
    tide_ckpt_commit_after(k->async, tide_append_release, tide_append_hold(st));
  }
  tide_err_t err = {0, ""};
  int rc = tide_ckpt_commit_open(k->async, text, len, next, nlen, &err);
  if (rc) {
    k->async = NULL; /* cancelled and freed */
    async_release(L, k);
  } else {
    k->open = 1;
  }
  return write_result(L, rc, &err);
}

static int l_commit_wait(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, 1);
  if (!k->async || !k->open)
    return luaL_error(L, "checkpoint %s: commit_wait: no open commit in flight", tide_ckpt_dir(k->c));
  tide_err_t err = {0, ""};
  int rc = tide_ckpt_commit_wait(k->async, &err);
  k->async = NULL;
  k->open = 0;
  async_release(L, k);
  return write_result(L, rc, &err);
}

static int l_commit_cancel(lua_State *L) {
  async_cancel(L, check_open_ckpt(L, 1));
  return 0;
}

/* ------------------------------------------------------------- iterator */

static int iter_gc(lua_State *L) {
  l_iter_t *it = luaL_checkudata(L, 1, ITER_MT);
  tide_buf_free(&it->chunk);
  tide_buf_free(&it->last);
  return 0;
}

/* Load the next chunk after it->last; remember its last key. */
static int iter_load(lua_State *L, l_ckpt_t *k, l_iter_t *it) {
  tide_err_t err = {0, ""};
  size_t n;
  int done;
  int rc = tide_ckpt_state_scan(k->c, it->name, it->name_len, it->started ? it->last.data : NULL, it->last.len,
                                ITER_CHUNK_ENTRIES, ITER_CHUNK_BYTES, &it->chunk, &n, &done, &err);
  if (rc) return luaL_error(L, "%s", err.msg);
  it->started = 1;
  it->done = done;
  it->n = n;
  it->pos = 0;
  it->next = it->chunk.data;
  /* the last record's key */
  const char *p = it->chunk.data;
  for (size_t i = 0; i < n; i++) {
    size_t sz[2];
    memcpy(sz, p, sizeof sz);
    if (i + 1 == n) {
      it->last.len = 0;
      if (tide_buf_append(&it->last, p + sizeof sz, sz[0])) return luaL_error(L, "out of memory");
    }
    p += sizeof sz + sz[0] + sz[1];
  }
  return 0;
}

/* The iterator function: upvalue 1 the tide.Checkpoint, 2 the state. */
static int iter_next(lua_State *L) {
  l_ckpt_t *k = check_open_ckpt(L, lua_upvalueindex(1));
  l_iter_t *it = luaL_checkudata(L, lua_upvalueindex(2), ITER_MT);
  if (it->pos == it->n) {
    if (it->started && it->done) return 0;
    iter_load(L, k, it);
    if (it->n == 0) {
      it->done = 1;
      return 0;
    }
  }
  size_t sz[2];
  memcpy(sz, it->next, sizeof sz);
  const char *key = it->next + sizeof sz;
  it->next = key + sz[0] + sz[1];
  it->pos++;
  lua_pushlstring(L, key, sz[0]);
  lua_pushlstring(L, key + sz[0], sz[1]);
  return 2;
}

/* ck:state(name) -> iterator over key, value in key order. Reads in chunks
 * of ITER_CHUNK_ENTRIES, each in its own read transaction: a write between
 * two chunks is seen from the next chunk on. */
static int l_state(lua_State *L) {
  check_open_ckpt(L, 1);
  size_t len;
  const char *name = luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, len > 0 && len <= TIDE_CKPT_NAME_MAX && !memchr(name, 0, len), 2,
                "state name must be 1..200 bytes without NUL");
  lua_pushvalue(L, 1);
  l_iter_t *it = lua_newuserdatauv(L, sizeof *it, 0);
  memset(it, 0, sizeof *it);
  luaL_setmetatable(L, ITER_MT);
  memcpy(it->name, name, len);
  it->name_len = len;
  lua_pushcclosure(L, iter_next, 2);
  return 1;
}

/* ----------------------------------------------------------------- open */

static const luaL_Reg ckpt_methods[] = {
    {"get_meta", l_get_meta},
    {"set_meta", l_set_meta},
    {"latest", l_latest},
    {"offsets", l_offsets},
    {"commit_entry", l_commit_entry},
    {"write_offsets", l_write_offsets},
    {"commit", l_commit},
    {"commit_start", l_commit_start},
    {"commit_finish", l_commit_finish},
    {"commit_open", l_commit_open},
    {"commit_wait", l_commit_wait},
    {"commit_cancel", l_commit_cancel},
    {"state", l_state},
    {"purge", l_purge},
    {"stats", l_stats},
    {"path", l_path},
    {"is_read_only", l_is_read_only},
    {"is_open", l_is_open},
    {"close", ckpt_close},
    {NULL, NULL},
};

int tide_l_ckpt_open(lua_State *L) {
  tide_l_class(L, CKPT_MT, ckpt_methods, ckpt_close, 1);
  tide_l_class_tostring(L, CKPT_MT, l_tostring);
  tide_l_class(L, ITER_MT, NULL, iter_gc, 0);
  static const luaL_Reg cs_methods[] = {
      {"put", cs_put}, {"del", cs_del}, {"count", cs_count}, {"ops", cs_ops}, {"free", cs_free}, {NULL, NULL}};
  tide_l_class(L, CHANGES_MT, cs_methods, changes_gc, 0);
  lua_pushcfunction(L, l_checkpoint);
  lua_setfield(L, -2, "checkpoint");
  lua_pushcfunction(L, cs_new);
  lua_setfield(L, -2, "state_changes");
  return 0;
}
