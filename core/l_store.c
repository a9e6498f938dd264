/*
 * l_store.c: the Lua binding of the topic store (tide.Store, tide.Topic,
 * tide.Reader). lua/tide/store.lua wraps it with option checking and
 * messages that carry context; users never see these objects bare.
 *
 * Error tiers (STYLE.md): bad arguments and use of a closed object raise;
 * failures of the environment or of the data return nil, message, ENAME.
 *
 * Lifetimes. A Store owns its topic handles (store.h); a Topic userdata
 * keeps its Store userdata in its user value, a Reader its Topic. The Store
 * keeps a weak table of its open readers and closes them before it closes
 * itself, so no reader outlives the handles it points into.
 *
 * No Lua call happens while an LMDB transaction is open: each function
 * gathers its arguments first, runs the C work, ends the transaction, and
 * only then pushes results.
 */
#include <errno.h>
#include <inttypes.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "jsonl.h"
#include "l_tide.h"
#include "registry.h"
#include "store.h"

#define STORE_MT "tide.Store"
#define TOPIC_MT "tide.Topic"
#define READER_MT "tide.Reader"

typedef struct {
  tide_store_t *s;
} l_store_t;

typedef struct {
  tide_topic_t *t;
  l_store_t *store; /* also kept alive through the user value */
} l_topic_t;

typedef struct {
  tide_reader_t *r;
  l_store_t *store;
  tide_batch_t *b;      /* current batch (rows iteration) */
  uint64_t *offs;       /* its offsets */
  uint32_t part, row;
} l_reader_t;

/* ---------------------------------------------------------------- store --- */

static l_store_t *check_store(lua_State *L, int idx) { return luaL_checkudata(L, idx, STORE_MT); }

static l_store_t *check_open_store(lua_State *L, int idx) {
  l_store_t *s = check_store(L, idx);
  if (!s->s) luaL_error(L, "attempt to use a closed tide.Store");
  return s;
}

static void reader_close(l_reader_t *r) {
  tide_batch_free(r->b);
  r->b = NULL;
  free(r->offs);
  r->offs = NULL;
  tide_reader_close(r->r);
  r->r = NULL;
}

/* Close the store: its readers first (weak table in the user value), then
 * the handles and the environment. Idempotent; __gc and __close too. */
static int store_close(lua_State *L) {
  l_store_t *s = check_store(L, 1);
  if (!s->s) return 0;
  if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
      lua_pop(L, 1);
      l_reader_t *r = luaL_testudata(L, -1, READER_MT);
      if (r) reader_close(r);
    }
  }
  lua_pop(L, 1);
  tide_store_close(s->s);
  s->s = NULL;
  return 0;
}

tide_store_t *tide_l_check_store(lua_State *L, int idx) { return check_open_store(L, idx)->s; }

static int opt_int_field(lua_State *L, int idx, const char *k, lua_Integer dflt) {
  lua_getfield(L, idx, k);
  lua_Integer v = luaL_optinteger(L, -1, dflt);
  lua_pop(L, 1);
  return (int)v;
}

/* core.open(dir [, {sync=, map_size=, cold_dir=}]) -> store | nil, msg, ENAME */
static int l_open(lua_State *L) {
  const char *dir = tide_l_check_cname(L, 1, "store directory", TIDE_L_PATH);
  tide_store_opts_t o = {1, 0, NULL};
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "sync");
    if (!lua_isnil(L, -1)) o.sync = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "map_size");
    o.map_size = (uint64_t)luaL_optinteger(L, -1, 0);
    lua_pop(L, 1);
    lua_getfield(L, 2, "cold_dir");
    o.cold_dir = tide_l_opt_cname(L, -1, "cold_dir", TIDE_L_PATH); /* stays referenced by the table */
    lua_pop(L, 1);
  }
  l_store_t *s = lua_newuserdatauv(L, sizeof *s, 1);
  s->s = NULL; /* created closed, then opened (STYLE.md) */
  luaL_setmetatable(L, STORE_MT);
  lua_newtable(L); /* weak table of readers */
  lua_newtable(L);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setiuservalue(L, -2, 1);
  tide_err_t err = {0};
  int rc = tide_store_open(dir, &o, &s->s, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  return 1;
}

static int l_store_path(lua_State *L) {
  l_store_t *s = check_open_store(L, 1);
  lua_pushstring(L, tide_store_dir(s->s));
  return 1;
}

static int l_store_id(lua_State *L) {
  l_store_t *s = check_open_store(L, 1);
  lua_pushstring(L, tide_store_id(s->s));
  return 1;
}

static int l_store_is_open(lua_State *L) {
  lua_pushboolean(L, check_store(L, 1)->s != NULL);
  return 1;
}

static const char *const compat_names[] = {"none", "backward", "forward", "full", "backward_transitive",
                                           "forward_transitive", "full_transitive", NULL};

/* store:create_topic(name, {partitions=, schema=, retention_ms=, retention_bytes=,
 *   segment_bytes=, segment_ms=, time_column=, ignore_unknown=, compatibility=})
 * Values arrive already checked and converted by store.lua. */
static int l_create_topic(lua_State *L) {
  l_store_t *s = check_open_store(L, 1);
  const char *name = tide_l_check_cname(L, 2, "topic name", 0);
  luaL_checktype(L, 3, LUA_TTABLE);
  tide_topic_opts_t o = {0};
  tide_err_t err = {0};
  o.partitions = (uint32_t)opt_int_field(L, 3, "partitions", 1);
  lua_getfield(L, 3, "retention_ms");
  o.retention_ms = luaL_optinteger(L, -1, -1);
  lua_getfield(L, 3, "retention_bytes");
  o.retention_bytes = luaL_optinteger(L, -1, -1);
  lua_getfield(L, 3, "segment_bytes");
  o.segment_bytes = luaL_optinteger(L, -1, 0);
  lua_getfield(L, 3, "segment_ms");
  o.segment_ms = luaL_optinteger(L, -1, -1);
  lua_getfield(L, 3, "time_column");
  o.time_column = tide_l_opt_cname(L, -1, "time_column", 0);
  lua_getfield(L, 3, "ignore_unknown");
  o.ignore_unknown = lua_toboolean(L, -1);
  lua_getfield(L, 3, "compatibility");
  o.compat = (tide_compat_t)luaL_checkoption(L, -1, "backward", compat_names);
  lua_pop(L, 7);
  tide_schema_t *schema = NULL;
  lua_getfield(L, 3, "schema");
  if (!lua_isnil(L, -1)) {
    int rc = tide_l_schema_from_lua(L, lua_gettop(L), &schema, &err);
    if (rc) return luaL_error(L, "bad schema: %s", err.msg);
  }
  lua_pop(L, 1);
  o.schema = schema;
  int rc = tide_store_create_topic(s->s, name, &o, &err);
  tide_schema_unref(schema);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_delete_topic(lua_State *L) {
  l_store_t *s = check_open_store(L, 1);
  tide_err_t err = {0};
  int rc = tide_store_delete_topic(s->s, tide_l_check_cname(L, 2, "topic name", 0), &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_topics(lua_State *L) {
  l_store_t *s = check_open_store(L, 1);
  tide_err_t err = {0};
  char **names;
  size_t n;
  int rc = tide_store_list(s->s, &names, &n, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_l_push_strings(L, names, n, free, names);
  return 1;
}

static int l_topic(lua_State *L) {
  l_store_t *s = check_open_store(L, 1);
  const char *name = tide_l_check_cname(L, 2, "topic name", 0);
  tide_err_t err = {0};
  l_topic_t *t = lua_newuserdatauv(L, sizeof *t, 1);
  t->t = NULL;
  t->store = s;
  luaL_setmetatable(L, TOPIC_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  int rc = tide_store_topic(s->s, name, &t->t, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  return 1;
}

/* Parse the schema argument at idx (DDL or array form); raises on a
 * malformed one: that is the caller's programming error. The result is
 * held by a tide.Batch-free path: returned with a reference the caller must
 * drop before any further Lua call that can raise. */
static tide_schema_t *check_schema_arg(lua_State *L, int idx) {
  tide_schema_t *sc = NULL;
  tide_err_t err = {0};
  if (tide_l_schema_from_lua(L, idx, &sc, &err)) luaL_error(L, "bad schema: %s", err.msg);
  return sc;
}

/* store:register_schema(topic, schema [, compatibility]) -> version, created | nil, msg, ENAME */
static int l_register_schema(lua_State *L) {
  l_store_t *s = check_open_store(L, 1);
  const char *name = tide_l_check_cname(L, 2, "topic name", 0);
  int compat = lua_isnoneornil(L, 4) ? -1 : luaL_checkoption(L, 4, NULL, compat_names);
  tide_schema_t *sc = check_schema_arg(L, 3);
  tide_err_t err = {0};
  uint32_t version = 0;
  int created = 0;
  int rc = tide_store_register_schema(s->s, name, sc, compat, &version, &created, &err);
  tide_schema_unref(sc);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushinteger(L, version);
  lua_pushboolean(L, created);
  return 2;
}

/* store:check_schema(topic, schema) -> true | false, reason | nil, msg, ENAME */
static int l_check_schema(lua_State *L) {
  l_store_t *s = check_open_store(L, 1);
  const char *name = tide_l_check_cname(L, 2, "topic name", 0);
  tide_schema_t *sc = check_schema_arg(L, 3);
  tide_err_t err = {0};
  int rc = tide_store_check_schema(s->s, name, sc, &err);
  tide_schema_unref(sc);
  if (rc == TIDE_ESCHEMA || rc == TIDE_EINVAL) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, err.msg);
    return 2;
  }
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

/* store:set_compatibility(topic, mode) -> true | nil, msg, ENAME */
static int l_set_compat(lua_State *L) {
  l_store_t *s = check_open_store(L, 1);
  const char *name = tide_l_check_cname(L, 2, "topic name", 0);
  int mode = luaL_checkoption(L, 3, NULL, compat_names);
  tide_err_t err = {0};
  int rc = tide_store_set_compat(s->s, name, (tide_compat_t)mode, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_topic_name_check(lua_State *L) {
  tide_err_t err = {0};
  int rc = tide_topic_name_check(tide_l_check_cname(L, 1, "topic name", 0), &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---------------------------------------------------------------- topic --- */

static l_topic_t *check_topic(lua_State *L, int idx) {
  l_topic_t *t = luaL_checkudata(L, idx, TOPIC_MT);
  if (!t->store->s) luaL_error(L, "attempt to use a closed tide.Topic (its store is closed)");
  return t;
}

static void set_int(lua_State *L, const char *k, int64_t v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void set_ts(lua_State *L, const char *k, int64_t v) {
  if (v == TIDE_TS_NONE) return; /* absent: nil */
  set_int(L, k, v);
}

static int l_topic_info(lua_State *L) {
  l_topic_t *t = check_topic(L, 1);
  const tide_topic_info_t *i;
  tide_err_t err = {0};
  int rc = tide_topic_info(t->t, &i, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_createtable(L, 0, 16);
  lua_pushstring(L, i->name);
  lua_setfield(L, -2, "name");
  set_int(L, "id", i->id);
  set_int(L, "partitions", i->partitions);
  if (i->retention_ms >= 0) set_int(L, "retention_ms", i->retention_ms);
  if (i->retention_bytes >= 0) set_int(L, "retention_bytes", i->retention_bytes);
  set_int(L, "segment_bytes", i->segment_bytes);
  if (i->segment_ms >= 0) set_int(L, "segment_ms", i->segment_ms);
  if (i->time_col >= 0) {
    lua_pushstring(L, i->schema->fields[i->time_col].name);
    lua_setfield(L, -2, "time_column");
  }
  lua_pushboolean(L, i->schemaless);
  lua_setfield(L, -2, "schemaless");
  lua_pushstring(L, i->ignore_unknown ? "ignore" : "reject");
  lua_setfield(L, -2, "unknown_fields");
  lua_pushstring(L, compat_names[i->compat]);
  lua_setfield(L, -2, "compatibility");
  set_int(L, "schema_version", i->schema_version);
  set_int(L, "created", i->created_ms);
  tide_l_push_schema(L, i->schema);
  lua_setfield(L, -2, "schema");
  tide_l_push_ddl(L, i->schema);
  lua_setfield(L, -2, "ddl");
  return 1;
}

/* topic:schema([version]) -> { version=, fields= (array form), ddl= } | nil, msg, ENAME */
static int l_topic_schema(lua_State *L) {
  l_topic_t *t = check_topic(L, 1);
  lua_Integer v = luaL_optinteger(L, 2, 0);
  luaL_argcheck(L, v >= 0 && v <= UINT32_MAX, 2, "schema version must be >= 1");
  tide_err_t err = {0};
  tide_l_scratch_t *x = tide_l_push_scratch(L); /* holds the schema, dropped even if a push raises */
  int rc = tide_topic_schema(t->t, (uint32_t)v, &x->schema, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_schema_t *sc = x->schema;
  tide_l_push_ddl(L, sc);
  lua_createtable(L, 0, 3);
  lua_insert(L, -2);
  lua_setfield(L, -2, "ddl");
  if (v == 0) {
    const tide_topic_info_t *i;
    if (!tide_topic_info(t->t, &i, &err)) v = i->schema_version;
  }
  set_int(L, "version", v);
  tide_l_push_schema(L, sc);
  lua_setfield(L, -2, "fields");
  return 1;
}

static int l_topic_offsets(lua_State *L) {
  l_topic_t *t = check_topic(L, 1);
  const tide_topic_info_t *i;
  tide_err_t err = {0};
  int rc = tide_topic_info(t->t, &i, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  uint32_t n = i->partitions;
  uint64_t *e = lua_newuserdatauv(L, sizeof(uint64_t) * 2 * n, 0); /* GC-owned scratch */
  if ((rc = tide_topic_offsets(t->t, e, e + n, &err))) return tide_l_fail(L, rc, NULL, err.msg);
  lua_createtable(L, (int)n, 0);
  for (uint32_t p = 0; p < n; p++) {
    lua_createtable(L, 0, 3);
    set_int(L, "partition", p);
    set_int(L, "earliest", (int64_t)e[p]);
    set_int(L, "latest", (int64_t)e[n + p]);
    lua_rawseti(L, -2, p + 1);
  }
  return 1;
}

static const char *const state_names[] = {"open", "sealed", "offloaded"};

static int l_topic_segments(lua_State *L) {
  l_topic_t *t = check_topic(L, 1);
  tide_err_t err = {0};
  tide_seg_info_t *segs;
  size_t n;
  int rc = tide_topic_segments(t->t, &segs, &n, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  /* copy into a GC-owned buffer first, so a raise cannot leak segs */
  tide_seg_info_t *copy = lua_newuserdatauv(L, n * sizeof *segs + 1, 0);
  if (n) memcpy(copy, segs, n * sizeof *segs);
  free(segs);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    const tide_seg_info_t *g = &copy[i];
    lua_createtable(L, 0, 11);
    set_int(L, "partition", g->partition);
    set_int(L, "base_offset", (int64_t)g->base_offset);
    set_int(L, "end_offset", (int64_t)g->end_offset);
    set_int(L, "records", (int64_t)(g->end_offset - g->base_offset));
    set_int(L, "bytes", (int64_t)g->bytes);
    set_int(L, "stored_bytes", (int64_t)g->stored_bytes);
    set_ts(L, "min_ts", g->min_ts);
    set_ts(L, "max_ts", g->max_ts);
    set_int(L, "created", g->created_ms);
    set_int(L, "last_write", g->last_write_ms);
    lua_pushstring(L, state_names[g->state]);
    lua_setfield(L, -2, "state");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* topic:enforce_retention([now_ms]) -> dropped */
static int l_topic_retention(lua_State *L) {
  l_topic_t *t = check_topic(L, 1);
  int64_t now = luaL_optinteger(L, 2, wall_ms());
  uint32_t n = 0;
  tide_err_t err = {0};
  int rc = tide_topic_enforce_retention(t->t, now, &n, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushinteger(L, n);
  return 1;
}

/* topic:offload(before_offset) -> moved */
static int l_topic_offload(lua_State *L) {
  l_topic_t *t = check_topic(L, 1);
  lua_Integer before = luaL_checkinteger(L, 2);
  uint32_t n = 0;
  tide_err_t err = {0};
  int rc = tide_topic_offload(t->t, before < 0 ? 0 : (uint64_t)before, &n, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushinteger(L, n);
  return 1;
}

/* Push the ranges of a committed append: first, last (inclusive) of the
 * first range, and a table { {partition=, first=, last=}, ... }. */
static int push_ranges(lua_State *L, const tide_range_t *r, uint32_t n) {
  if (n) {
    lua_pushinteger(L, (lua_Integer)r[0].first);
    lua_pushinteger(L, (lua_Integer)r[0].end - 1);
  } else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  lua_createtable(L, (int)n, 0);
  for (uint32_t i = 0; i < n; i++) {
    lua_createtable(L, 0, 4);
    set_int(L, "partition", r[i].partition);
    set_int(L, "first", (int64_t)r[i].first);
    set_int(L, "last", (int64_t)r[i].end - 1);
    set_int(L, "count", (int64_t)(r[i].end - r[i].first));
    lua_rawseti(L, -2, i + 1);
  }
  return 3;
}

/* The key column's index, or -1. Raises for an unknown column. */
static int key_index(lua_State *L, int idx, const tide_schema_t *s) {
  if (lua_isnoneornil(L, idx)) return -1;
  size_t len;
  const char *k = tide_l_check_cname(L, idx, "key column", 0);
  len = strlen(k);
  int c = tide_schema_find(s, k, len);
  if (c < 0) {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (uint32_t i = 0; i < s->nfields; i++) {
      if (i) luaL_addstring(&b, ", ");
      luaL_addstring(&b, s->fields[i].name);
    }
    luaL_pushresult(&b);
    luaL_error(L, "key column '%s' is not in the schema (fields: %s)", k, lua_tostring(L, -1));
  }
  return c;
}

/* The optional writer id and sequence at idx, idx + 1 (both or neither;
 * store.lua checks them first, this guards the binding itself). */
typedef struct {
  const char *id;
  size_t len;
  uint64_t seq;
} writer_arg_t;

static void check_writer(lua_State *L, int idx, writer_arg_t *w) {
  w->id = NULL;
  w->len = 0;
  w->seq = 0;
  if (lua_isnoneornil(L, idx)) return;
  w->id = luaL_checklstring(L, idx, &w->len);
  luaL_argcheck(L, w->len >= 1 && w->len <= TIDE_WRITER_ID_MAX, idx, "writer id must be 1..255 bytes");
  lua_Integer seq = luaL_checkinteger(L, idx + 1);
  luaL_argcheck(L, seq >= 0, idx + 1, "sequence must be >= 0");
  w->seq = (uint64_t)seq;
}

/* Begin a session, tagged with the writer when there is one. 0 and *a;
 * or an error in err (no session left open). *skipped as tide_append_writer. */
static int session_begin(tide_topic_t *t, const writer_arg_t *w, tide_append_t **a, int *skipped, tide_err_t *err) {
  *skipped = 0;
  int rc = tide_append_begin(t, a, err);
  if (rc || !w->id) return rc;
  if ((rc = tide_append_writer(*a, w->id, w->len, w->seq, skipped, err))) {
    tide_append_abort(*a);
    *a = NULL;
  }
  return rc;
}

static int push_skipped(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "skipped");
  return 2;
}

/* topic:append(rows [, key [, writer, seq]]) -> first, last, ranges | nil, "skipped" | nil, msg, ENAME
 * The rows are converted into a batch held by a tide.Batch userdata (so a
 * raise frees it), then appended in one session with no Lua call inside. */
static int l_topic_append(lua_State *L) {
  l_topic_t *t = check_topic(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  writer_arg_t w;
  check_writer(L, 4, &w);
  const tide_topic_info_t *info;
  tide_err_t err = {0};
  int rc = tide_topic_info(t->t, &info, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  int key = key_index(L, 3, info->schema);
  tide_batch_t *b = tide_batch_new(info->schema, (uint32_t)lua_rawlen(L, 2) + 1);
  if (!b) return luaL_error(L, "out of memory");
  tide_l_push_batch(L, b); /* owned by Lua from here */
  rc = tide_l_rows_to_batch(L, 2, b, info->ignore_unknown ? TIDE_JSON_IGNORE_UNKNOWN : 0, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  uint32_t nparts = info->partitions, nr = 0;
  tide_range_t *ranges = lua_newuserdatauv(L, sizeof *ranges * nparts, 0);
  tide_append_t *a;
  int skipped;
  if ((rc = session_begin(t->t, &w, &a, &skipped, &err))) return tide_l_fail(L, rc, NULL, err.msg);
  if (skipped) {
    tide_append_abort(a);
    return push_skipped(L);
  }
  if ((rc = tide_append_rows(a, b, 0, b->nrows, key, &err))) {
    tide_append_abort(a);
    return tide_l_fail(L, rc, NULL, err.msg);
  }
  if ((rc = tide_append_commit(a, ranges, &nr, &err))) return tide_l_fail(L, rc, NULL, err.msg);
  return push_ranges(L, ranges, nr);
}

/* The arguments of append_batches and append_start (`fn`, for messages):
 * batches at 2 (raising on an entry that is not an open tide.Batch), the
 * key column at 3, the writer at 4 and 5. Returns 0 with *info, *key and
 * *n (the entries), or the topic's error (err set). */
static int batches_args(lua_State *L, l_topic_t *t, const char *fn, writer_arg_t *w, const tide_topic_info_t **info,
                        int *key, size_t *n, tide_err_t *err) {
  luaL_checktype(L, 2, LUA_TTABLE);
  check_writer(L, 4, w);
  int rc = tide_topic_info(t->t, info, err);
  if (rc) return rc;
  *key = key_index(L, 3, (*info)->schema);
  *n = lua_rawlen(L, 2);
  for (size_t i = 0; i < *n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    if (!luaL_testudata(L, -1, TIDE_L_BATCH_MT))
      return luaL_error(L, "bad argument #1 to '%s' (entry %d is a %s, not a tide.Batch)", fn, (int)i + 1,
                        luaL_typename(L, -1));
    tide_l_check_batch(L, -1);
    lua_pop(L, 1);
  }
  return 0;
}

/* The n batches of the array at index 2 (checked by batches_args), in an
 * array owned by a userdata pushed on the stack: borrowed from their
 * tide.Batch userdata, or with `take` taken from them (tide_l_take_batch). */
static tide_batch_t **batch_array(lua_State *L, size_t n, int take) {
  tide_batch_t **bs = lua_newuserdatauv(L, (n ? n : 1) * sizeof *bs, 0);
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    bs[i] = take ? tide_l_take_batch(L, -1) : tide_l_check_batch(L, -1);
    lua_pop(L, 1);
  }
  return bs;
}

/* topic:append_batches(batches [, key [, writer, seq]]) -> first, last, ranges | nil, "skipped" | nil, msg, ENAME
 * batches: an array of tide.Batch of any schema, converted to the topic's
 * by field name (tide_append_batch). Every batch is checked (raising on a
 * value that is not an open tide.Batch) before the session begins; the
 * batches stay owned by their userdata, which the array keeps alive. */
static int l_topic_append_batches(lua_State *L) {
  l_topic_t *t = check_topic(L, 1);
  writer_arg_t w;
  const tide_topic_info_t *info;
  int key;
  size_t n;
  tide_err_t err = {0};
  int rc = batches_args(L, t, "append_batches", &w, &info, &key, &n, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_batch_t **bs = batch_array(L, n, 0);
  uint32_t nparts = info->partitions, nr = 0;
  tide_range_t *ranges = lua_newuserdatauv(L, sizeof *ranges * nparts, 0);
  tide_append_t *a;
  int skipped;
  if ((rc = session_begin(t->t, &w, &a, &skipped, &err))) return tide_l_fail(L, rc, NULL, err.msg);
  if (skipped) {
    tide_append_abort(a);
    return push_skipped(L);
  }
  for (size_t i = 0; i < n && !rc; i++) rc = tide_append_batch(a, bs[i], key, &err);
  if (rc) {
    tide_append_abort(a);
    return tide_l_fail(L, rc, NULL, err.msg);
  }
  if ((rc = tide_append_commit(a, ranges, &nr, &err))) return tide_l_fail(L, rc, NULL, err.msg);
  return push_ranges(L, ranges, nr);
}

/* topic:append_start(batches [, key [, writer, seq]]) -> store | nil, msg, ENAME
 * append_batches on a thread of its own (store.h, tide_append_start): the
 * batches are checked as append_batches does, then taken from their
 * tide.Batch userdata (which are closed from here on: the append owns
 * them until store:append_finish). */
static int l_topic_append_start(lua_State *L) {
  l_topic_t *t = check_topic(L, 1);
  writer_arg_t w;
  const tide_topic_info_t *info;
  int key;
  size_t n;
  tide_err_t err = {0};
  int rc = batches_args(L, t, "append_start", &w, &info, &key, &n, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_batch_t **bs = batch_array(L, n, 1); /* no raise past the checks: every entry is an open batch */
  if ((rc = tide_append_start(t->t, bs, n, key, w.id, w.len, w.seq, &err))) return tide_l_fail(L, rc, NULL, err.msg);
  lua_getiuservalue(L, 1, 1); /* the store: what ck:commit_open(text, next, store) waits for */
  return 1;
}

/* store:append_finish() -> first, last, ranges | nil, "skipped" | nil, msg, ENAME
 * (as append_batches) for the append begun by topic:append_start. */
static int l_store_append_finish(lua_State *L) {
  l_store_t *s = check_open_store(L, 1);
  tide_err_t err = {0};
  luaL_argcheck(L, tide_append_pending(s->s), 1, "no append in flight (topic:append_start)");
  tide_range_t *ranges = lua_newuserdatauv(L, sizeof *ranges * TIDE_PARTITIONS_MAX, 0);
  uint32_t nr = 0;
  int skipped = 0;
  int rc = tide_append_finish(s->s, ranges, &nr, &skipped, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  if (skipped) return push_skipped(L);
  return push_ranges(L, ranges, nr);
}

/* store:append_pending() -> boolean */
static int l_store_append_pending(lua_State *L) {
  lua_pushboolean(L, tide_append_pending(check_open_store(L, 1)->s));
  return 1;
}

/* topic:writer_seq(writer) -> seq | false | nil, msg, ENAME */
static int l_topic_writer_seq(lua_State *L) {
  l_topic_t *t = check_topic(L, 1);
  writer_arg_t w;
  lua_settop(L, 2);
  lua_pushinteger(L, 0);
  check_writer(L, 2, &w);
  luaL_argcheck(L, w.id != NULL, 2, "writer id expected");
  tide_err_t err = {0};
  uint64_t seq = 0;
  int found = 0;
  int rc = tide_topic_writer_seq(t->t, w.id, w.len, &seq, &found, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  if (found) lua_pushinteger(L, (lua_Integer)seq);
  else lua_pushboolean(L, 0);
  return 1;
}

/* topic:accepts(schema) -> true | false, reason | nil, msg, ENAME
 * Could rows of `schema` be appended with append_batches? */
static int l_topic_accepts(lua_State *L) {
  l_topic_t *t = check_topic(L, 1);
  tide_schema_t *sc = check_schema_arg(L, 2);
  tide_err_t err = {0};
  int rc = tide_topic_accepts(t->t, sc, &err);
  tide_schema_unref(sc);
  if (rc == TIDE_ESCHEMA) {
    lua_pushboolean(L, 0);
    lua_pushstring(L, err.msg);
    return 2;
  }
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

/* ------------------------------------------------------- JSON producing --- */

#define PRODUCE_BATCH_ROWS 65536u
#define PRODUCE_READ (4u << 20)
#define BAD_LINES_KEPT 10
#define BAD_REASONS_KEPT 3 /* the reasons of the first bad lines (produce --skip-bad) */

typedef struct produce {
  tide_json_dec_t *dec;
  tide_batch_t *b;
  tide_append_t *a;
  int key;
  int skip_bad;
  uint64_t line, appended, skipped;
  uint64_t bad[BAD_LINES_KEPT];
  char why[BAD_REASONS_KEPT][sizeof ((tide_err_t *)0)->msg];
  int nbad;
  tide_buf_t carry;      /* a partial line across reads */
  tide_err_t err;
  int rc;
} produce_t;

/* Decode one line into the pending batch; append the batch when full. */
static int produce_line(produce_t *p, const char *s, size_t n) {
  p->line++;
  while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
  if (i == n) return 0; /* blank lines are not records */
  tide_err_t e = {0};
  int rc = tide_json_dec_line(p->dec, p->b, s + i, n - i, &e);
  if (rc == TIDE_EPARSE || rc == TIDE_ESCHEMA) {
    if (!p->skip_bad) return tide_err_set(&p->err, rc, "line %" PRIu64 ": %s", p->line, e.msg);
    if (p->nbad < BAD_REASONS_KEPT) snprintf(p->why[p->nbad], sizeof p->why[0], "%s", e.msg);
    if (p->nbad < BAD_LINES_KEPT) p->bad[p->nbad++] = p->line;
    p->skipped++;
    return 0;
  }
  if (rc) return tide_err_set(&p->err, rc, "line %" PRIu64 ": %s", p->line, e.msg[0] ? e.msg : tide_strerror(rc));
  if (p->b->nrows >= PRODUCE_BATCH_ROWS) {
    if ((rc = tide_append_rows(p->a, p->b, 0, p->b->nrows, p->key, &p->err))) return rc;
    p->appended += p->b->nrows;
    tide_batch_clear(p->b);
  }
  return 0;
}

/* Feed bytes; complete lines are decoded, the rest is carried. */
static int produce_feed(produce_t *p, const char *buf, size_t n) {
  size_t start = 0;
  for (;;) {
    const char *nl = memchr(buf + start, '\n', n - start);
    if (!nl) break;
    size_t end = (size_t)(nl - buf);
    int rc;
    if (p->carry.len) {
      if ((rc = tide_buf_append(&p->carry, buf + start, end - start))) return tide_err_set(&p->err, rc, "out of memory");
      rc = produce_line(p, p->carry.data, p->carry.len);
      p->carry.len = 0;
    } else {
      rc = produce_line(p, buf + start, end - start);
    }
    if (rc) return rc;
    start = end + 1;
  }
  if (start < n) {
    int rc = tide_buf_append(&p->carry, buf + start, n - start);
    if (rc) return tide_err_set(&p->err, rc, "out of memory");
  }
  return 0;
}

static int produce_finish(produce_t *p) {
  int rc = 0;
  if (p->carry.len) {
    rc = produce_line(p, p->carry.data, p->carry.len);
    p->carry.len = 0;
  }
  if (!rc && p->b->nrows) {
    rc = tide_append_rows(p->a, p->b, 0, p->b->nrows, p->key, &p->err);
    if (!rc) p->appended += p->b->nrows;
    tide_batch_clear(p->b);
  }
  return rc;
}

static void produce_free(produce_t *p) {
  tide_json_dec_free(p->dec);
  tide_batch_free(p->b);
  tide_buf_free(&p->carry);
  if (p->a) tide_append_abort(p->a);
}

/* topic:produce(path|nil, key, skip_bad [, text]) -> result table | nil, msg, ENAME
 * JSON lines from a file, stdin (path nil) or a string (text), appended
 * atomically: all the good lines or, on a bad line without skip_bad,
 * nothing. Everything between begin and commit is C; results are pushed
 * after the session ended. */
static int l_topic_produce(lua_State *L) {
  l_topic_t *t = check_topic(L, 1);
  const char *path = tide_l_opt_cname(L, 2, "produce: path", TIDE_L_PATH);
  int skip_bad = lua_toboolean(L, 4);
  size_t tlen = 0;
  const char *text = luaL_optlstring(L, 5, NULL, &tlen);
  const tide_topic_info_t *info;
  produce_t p;
  memset(&p, 0, sizeof p);
  int rc = tide_topic_info(t->t, &info, &p.err);
  if (rc) return tide_l_fail(L, rc, NULL, p.err.msg);
  p.key = key_index(L, 3, info->schema);
  p.skip_bad = skip_bad;
  int fd = -1;
  if (!text) {
    fd = path ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (fd < 0) {
      rc = -errno;
      tide_err_set(&p.err, rc, "cannot open %s: %s", path, tide_strerror(rc));
      return tide_l_fail(L, rc, NULL, p.err.msg);
    }
  }
  char *buf = text ? NULL : malloc(PRODUCE_READ);
  int flags = (info->schemaless ? TIDE_JSON_WHOLE : 0) | (info->ignore_unknown ? TIDE_JSON_IGNORE_UNKNOWN : 0);
  if ((!text && !buf) || !(p.dec = tide_json_dec_new(info->schema, flags)) ||
      !(p.b = tide_batch_new(info->schema, PRODUCE_BATCH_ROWS + 1))) {
    rc = tide_err_set(&p.err, -ENOMEM, "out of memory");
    goto done;
  }
  if ((rc = tide_append_begin(t->t, &p.a, &p.err))) goto done;
  if (text) {
    rc = produce_feed(&p, text, tlen);
  } else {
    for (;;) {
      ssize_t n = read(fd, buf, PRODUCE_READ);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        rc = -errno;
        tide_err_set(&p.err, rc, "cannot read %s: %s", path ? path : "stdin", tide_strerror(rc));
        break;
      }
      if (n == 0) break;
      if ((rc = produce_feed(&p, buf, (size_t)n))) break;
    }
  }
  if (!rc) rc = produce_finish(&p);
  tide_range_t *ranges = NULL;
  uint32_t nr = 0;
  if (!rc) {
    ranges = malloc(sizeof *ranges * info->partitions);
    if (!ranges) rc = tide_err_set(&p.err, -ENOMEM, "out of memory");
  }
  if (!rc) {
    tide_append_t *a = p.a;
    p.a = NULL;
    rc = tide_append_commit(a, ranges, &nr, &p.err);
  }
  free(buf);
  buf = NULL;
  if (fd > 0) close(fd);
  fd = -1;
  produce_free(&p);
  if (rc) {
    free(ranges);
    return tide_l_fail(L, rc, NULL, p.err.msg);
  }
  /* copy ranges into Lua-owned memory before building tables */
  tide_range_t *lr = lua_newuserdatauv(L, sizeof *lr * (nr ? nr : 1), 0);
  if (nr) memcpy(lr, ranges, sizeof *lr * nr);
  free(ranges);
  lua_createtable(L, 0, 8);
  set_int(L, "lines", (int64_t)p.line);
  set_int(L, "appended", (int64_t)p.appended);
  set_int(L, "skipped", (int64_t)p.skipped);
  lua_createtable(L, p.nbad, 0);
  for (int i = 0; i < p.nbad; i++) {
    lua_pushinteger(L, (lua_Integer)p.bad[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "bad_lines");
  int nwhy = p.nbad < BAD_REASONS_KEPT ? p.nbad : BAD_REASONS_KEPT;
  lua_createtable(L, nwhy, 0);
  for (int i = 0; i < nwhy; i++) {
    lua_pushstring(L, p.why[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "bad_reasons");
  push_ranges(L, lr, nr);
  lua_setfield(L, -4, "ranges");
  if (!lua_isnil(L, -1)) lua_setfield(L, -3, "last");
  else lua_pop(L, 1);
  if (!lua_isnil(L, -1)) lua_setfield(L, -2, "first");
  else lua_pop(L, 1);
  return 1;
done:
  free(buf);
  if (fd > 0) close(fd);
  produce_free(&p);
  return tide_l_fail(L, rc, NULL, p.err.msg);
}

/* --------------------------------------------------------------- reader --- */

static l_reader_t *check_reader(lua_State *L, int idx) {
  l_reader_t *r = luaL_checkudata(L, idx, READER_MT);
  return r;
}

static int reader_gc(lua_State *L) {
  reader_close(check_reader(L, 1));
  return 0;
}

static int64_t opt_i64(lua_State *L, int idx, const char *k, int64_t dflt) {
  lua_getfield(L, idx, k);
  int64_t v = lua_isnil(L, -1) ? dflt : (int64_t)luaL_checkinteger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* topic:reader({from=, to=, partition=, from_time=, to_time=}) -> reader */
static int l_topic_reader(lua_State *L) {
  l_topic_t *t = check_topic(L, 1);
  tide_read_opts_t o;
  tide_read_opts_init(&o);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    int64_t from = opt_i64(L, 2, "from", 0), to = opt_i64(L, 2, "to", -1);
    o.from = from < 0 ? 0 : (uint64_t)from;
    o.to = to < 0 ? UINT64_MAX : (uint64_t)to;
    o.partition = opt_i64(L, 2, "partition", -1);
    o.from_time = opt_i64(L, 2, "from_time", INT64_MIN);
    o.to_time = opt_i64(L, 2, "to_time", INT64_MAX);
    int64_t sv = opt_i64(L, 2, "schema_version", 0);
    luaL_argcheck(L, sv >= 0 && sv <= UINT32_MAX, 2, "schema_version must be >= 1");
    o.schema_version = (uint32_t)sv;
  }
  l_reader_t *r = lua_newuserdatauv(L, sizeof *r, 1);
  memset(r, 0, sizeof *r);
  r->store = t->store;
  luaL_setmetatable(L, READER_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  tide_err_t err = {0};
  int rc = tide_reader_open(t->t, &o, &r->r, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  /* register with the store so closing the store closes the reader */
  lua_getiuservalue(L, 1, 1); /* the store userdata */
  lua_getiuservalue(L, -1, 1); /* its weak table */
  lua_pushvalue(L, -3);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_pop(L, 2);
  return 1;
}

/* Load the next batch into the reader. 1 ok, 0 end, <0 error (in err). */
static int reader_advance(l_reader_t *r, tide_err_t *err) {
  tide_batch_free(r->b);
  r->b = NULL;
  tide_batch_t *b;
  const uint64_t *offs;
  uint32_t part;
  int rc = tide_reader_next(r->r, &b, &part, &offs, err);
  if (rc <= 0) return rc;
  uint64_t *copy = realloc(r->offs, (b->nrows ? b->nrows : 1) * sizeof *copy);
  if (!copy) {
    tide_batch_free(b);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  memcpy(copy, offs, b->nrows * sizeof *copy);
  r->offs = copy;
  r->b = b;
  r->part = part;
  r->row = 0;
  return 1;
}

static l_reader_t *check_open_reader(lua_State *L, int idx) {
  l_reader_t *r = check_reader(L, idx);
  if (!r->r) luaL_error(L, "attempt to use a closed tide.Reader");
  if (!r->store->s) luaL_error(L, "attempt to use a tide.Reader whose store is closed");
  return r;
}

/* reader:next_row() -> row (with offset, partition) | nil at the end | nil, msg, ENAME */
static int l_reader_next_row(lua_State *L) {
  l_reader_t *r = check_open_reader(L, 1);
  tide_err_t err = {0};
  while (!r->b || r->row >= r->b->nrows) {
    int rc = reader_advance(r, &err);
    if (rc < 0) return tide_l_fail(L, rc, NULL, err.msg);
    if (rc == 0) {
      reader_close(r);
      lua_pushnil(L);
      return 1;
    }
  }
  uint32_t i = r->row++;
  tide_l_push_row(L, r->b, i);
  lua_pushinteger(L, (lua_Integer)r->offs[i]);
  lua_setfield(L, -2, "offset");
  lua_pushinteger(L, r->part);
  lua_setfield(L, -2, "partition");
  return 1;
}

/* reader:next_batch() -> batch, partition, first_offset, last_offset | nil | nil, msg, ENAME
 * The batch is a tide.Batch owned by Lua. */
static int l_reader_next_batch(lua_State *L) {
  l_reader_t *r = check_open_reader(L, 1);
  tide_err_t err = {0};
  int rc = reader_advance(r, &err);
  if (rc < 0) return tide_l_fail(L, rc, NULL, err.msg);
  if (rc == 0) {
    reader_close(r);
    lua_pushnil(L);
    return 1;
  }
  tide_batch_t *b = r->b;
  r->b = NULL;
  tide_l_push_batch(L, b);
  lua_pushinteger(L, r->part);
  lua_pushinteger(L, (lua_Integer)r->offs[0]);
  lua_pushinteger(L, (lua_Integer)r->offs[b->nrows - 1]);
  return 4;
}

/* reader:next_json(iso8601 [, offsets]) -> text, partition, next_offset [, offsets] | nil | nil, msg, ENAME
 * The next batch as JSON lines, each ending in "\n"; with `offsets`, also
 * the array of the lines' offsets (a time range may leave gaps). */
static int l_reader_next_json(lua_State *L) {
  l_reader_t *r = check_open_reader(L, 1);
  int flags = lua_toboolean(L, 2) ? TIDE_JSON_ISO8601 : 0;
  tide_err_t err = {0};
  int rc = reader_advance(r, &err);
  if (rc < 0) return tide_l_fail(L, rc, NULL, err.msg);
  if (rc == 0) {
    reader_close(r);
    lua_pushnil(L);
    return 1;
  }
  luaL_Buffer lb;
  tide_buf_t line = TIDE_BUF_INIT;
  luaL_buffinit(L, &lb);
  for (uint32_t i = 0; i < r->b->nrows; i++) {
    line.len = 0;
    if ((rc = tide_json_enc_row(r->b, i, &line, flags)) || (rc = tide_buf_putc(&line, '\n'))) break;
    luaL_addlstring(&lb, line.data, line.len); /* may raise on OOM only */
  }
  tide_buf_free(&line);
  if (rc) return luaL_error(L, "out of memory");
  luaL_pushresult(&lb);
  lua_pushinteger(L, r->part);
  lua_pushinteger(L, (lua_Integer)r->offs[r->b->nrows - 1] + 1);
  if (!lua_toboolean(L, 3)) return 3;
  lua_createtable(L, (int)r->b->nrows, 0);
  for (uint32_t i = 0; i < r->b->nrows; i++) {
    lua_pushinteger(L, (lua_Integer)r->offs[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 4;
}

static int l_reader_close(lua_State *L) {
  reader_close(check_reader(L, 1));
  return 0;
}

/* ----------------------------------------------------------- registration --- */

static const luaL_Reg store_methods[] = {
    {"path", l_store_path},         {"id", l_store_id},         {"is_open", l_store_is_open}, {"append_finish", l_store_append_finish},
    {"append_pending", l_store_append_pending}, {"create_topic", l_create_topic},
    {"delete_topic", l_delete_topic}, {"topics", l_topics},       {"topic", l_topic},
    {"register_schema", l_register_schema}, {"check_schema", l_check_schema}, {"set_compatibility", l_set_compat},
    {"close", store_close},         {NULL, NULL}};

static const luaL_Reg topic_methods[] = {
    {"info", l_topic_info},         {"schema", l_topic_schema},     {"offsets", l_topic_offsets},   {"segments", l_topic_segments},
    {"enforce_retention", l_topic_retention}, {"offload", l_topic_offload}, {"append", l_topic_append},
    {"append_batches", l_topic_append_batches}, {"append_start", l_topic_append_start}, {"writer_seq", l_topic_writer_seq}, {"accepts", l_topic_accepts},
    {"produce", l_topic_produce},   {"reader", l_topic_reader},     {NULL, NULL}};

static const luaL_Reg reader_methods[] = {{"next_row", l_reader_next_row},
                                          {"next_batch", l_reader_next_batch},
                                          {"next_json", l_reader_next_json},
                                          {"close", l_reader_close},
                                          {NULL, NULL}};

int tide_l_store_open(lua_State *L) {
  tide_l_class(L, STORE_MT, store_methods, store_close, 1);
  tide_l_class(L, TOPIC_MT, topic_methods, NULL, 0);
  tide_l_class(L, READER_MT, reader_methods, reader_gc, 1);
  lua_pushcfunction(L, l_open);
  lua_setfield(L, -2, "open");
  lua_pushcfunction(L, l_topic_name_check);
  lua_setfield(L, -2, "topic_name_check");
  return 0;
}
