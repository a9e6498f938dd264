/*
 * l_kafka_sink.c: the Kafka sink's producer for connectors/kafka/sink.lua
 * (core/kafka_sink.h).
 *
 *   core.kafka_sink(bootstrap, { exactly_once =, txn_id =, group =, timeout = ms,
 *                                kafka = { ["key"] = "value", ... } })
 *                                        -> tide.KafkaSink | nil, msg, ENAME
 *   ks:recover(topic, partition)         -> last batch id (-1: none) | nil, msg, ENAME
 *   ks:committed(topic, partition)       -> the same, read only (no fencing)
 *   ks:begin()                           -> true | nil, msg, ENAME
 *   ks:produce(batch, map)               -> rows queued | nil, msg, ENAME
 *        map: { topic = name | topic_col = i, key_batch = Batch, key_col = i,
 *               value_col = i, headers_col = i, partition_col = i, timestamp_col = i }
 *        (columns 1-based; key_batch defaults to batch)
 *   ks:commit(topic, partition, batch_id) -> true | nil, msg, ENAME
 *   ks:abort()
 *   scale-out (lua/tide/scaleout.lua):
 *   ks:init()                            -> true | nil, msg, ENAME (init_transactions)
 *   ks:produce_raw(topic, partition, key, value) -> true | nil, msg, ENAME (value nil: a tombstone)
 *   ks:commit_offsets({ {topic, partition, offset}, ... }, group_metadata)
 *                                        -> true | nil, msg, ENAME ("EPOISONED": fenced,
 *                                        "EAGAIN": the group's generation moved)
 *   ks:stats()                           -> delivered, failed
 *   ks:close()                           (also __gc and __close)
 */
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>

#include "kafka_sink.h"
#include "l_ckpt.h"
#include "l_tide.h"

#define KSINK_MT "tide.KafkaSink"

typedef struct {
  tide_ksink_t *s;
} l_ksink_t;

static tide_ksink_t *check(lua_State *L) {
  l_ksink_t *u = luaL_checkudata(L, 1, KSINK_MT);
  if (!u->s) luaL_error(L, "attempt to use a closed tide.KafkaSink");
  return u->s;
}

static int l_close(lua_State *L) {
  l_ksink_t *u = luaL_checkudata(L, 1, KSINK_MT);
  tide_ksink_free(u->s);
  u->s = NULL;
  return 0;
}

/* core.kafka_sink(bootstrap, opts) */
static int l_new(lua_State *L) {
  const char *bootstrap = tide_l_check_cname(L, 1, "bootstrap servers", 0);
  luaL_checktype(L, 2, LUA_TTABLE);
  tide_ksink_conf_t c = {0};
  lua_getfield(L, 2, "exactly_once");
  c.exactly_once = lua_toboolean(L, -1);
  lua_getfield(L, 2, "txn_id");
  c.txn_id = tide_l_opt_cname(L, -1, "transactional id", 0);
  lua_getfield(L, 2, "group");
  c.group = tide_l_opt_cname(L, -1, "progress group", 0);
  lua_getfield(L, 2, "timeout");
  c.timeout_ms = (int)luaL_optinteger(L, -1, 30000);
  lua_pop(L, 1);
  /* the settings, as string pairs held by a scratch array */
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  int sx = lua_gettop(L);
  lua_getfield(L, 2, "kafka");
  int kt = lua_gettop(L);
  size_t n = 0;
  if (!lua_isnil(L, kt)) {
    luaL_checktype(L, kt, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, kt)) {
      n++;
      lua_pop(L, 1);
    }
  }
  const char **kv = x->p[0] = calloc(2 * n + 1, sizeof *kv);
  if (!kv) return luaL_error(L, "out of memory");
  size_t i = 0;
  if (n) {
    lua_pushnil(L);
    while (lua_next(L, kt)) {
      /* the strings stay alive in the options table */
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "kafka settings must be string = string");
      kv[2 * i] = tide_l_check_cname(L, -2, "kafka setting name", 0);
      kv[2 * i + 1] = tide_l_check_cname(L, -1, "kafka setting value", 0);
      i++;
      lua_pop(L, 1);
    }
  }
  c.kv = kv;
  c.nkv = i;
  l_ksink_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->s = NULL;
  luaL_setmetatable(L, KSINK_MT);
  tide_err_t err = {0, ""};
  int rc = tide_ksink_new(bootstrap, &c, &u->s, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_l_scratch_free(x);
  lua_replace(L, sx);
  lua_settop(L, sx);
  return 1;
}

static int recover(lua_State *L, int fence) {
  tide_ksink_t *s = check(L);
  const char *topic = tide_l_check_cname(L, 2, "topic name", 0);
  lua_Integer p = luaL_checkinteger(L, 3);
  luaL_argcheck(L, p >= 0 && p <= INT32_MAX, 3, "partition out of range");
  int64_t last;
  tide_err_t err = {0, ""};
  int rc = fence ? tide_ksink_recover(s, topic, (int32_t)p, &last, &err)
                 : tide_ksink_committed(s, topic, (int32_t)p, &last, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushinteger(L, last);
  return 1;
}

static int l_recover(lua_State *L) { return recover(L, 1); }

static int l_committed(lua_State *L) { return recover(L, 0); }

static int l_begin(lua_State *L) {
  tide_ksink_t *s = check(L);
  tide_err_t err = {0, ""};
  int rc = tide_ksink_begin(s, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

/* map field `name`: a 1-based column of b (returned 0-based), or -1. */
static int col_field(lua_State *L, int idx, const char *name, const tide_batch_t *b) {
  lua_getfield(L, idx, name);
  int c = -1;
  if (!lua_isnil(L, -1)) {
    lua_Integer v = luaL_checkinteger(L, -1);
    if (v < 1 || (uint64_t)v > b->schema->nfields) luaL_error(L, "produce: %s %d: no such column", name, (int)v);
    c = (int)v - 1;
  }
  lua_pop(L, 1);
  return c;
}

static int l_produce(lua_State *L) {
  tide_ksink_t *s = check(L);
  tide_batch_t *b = tide_l_check_batch(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  tide_ksink_map_t m;
  lua_getfield(L, 3, "topic");
  m.topic = tide_l_opt_cname(L, -1, "topic name", 0); /* kept alive by the map */
  lua_pop(L, 1);
  m.topic_col = col_field(L, 3, "topic_col", b);
  if (!m.topic == (m.topic_col < 0)) return luaL_error(L, "produce: give one of topic and topic_col");
  lua_getfield(L, 3, "key_batch");
  m.kb = lua_isnil(L, -1) ? b : tide_l_check_batch(L, -1);
  lua_pop(L, 1);
  m.key_col = col_field(L, 3, "key_col", m.kb);
  if (m.kb->nrows != b->nrows)
    return luaL_error(L, "produce: the key batch has %u rows, the batch %u", m.kb->nrows, b->nrows);
  m.value_col = col_field(L, 3, "value_col", b);
  m.headers_col = col_field(L, 3, "headers_col", b);
  m.partition_col = col_field(L, 3, "partition_col", b);
  m.timestamp_col = col_field(L, 3, "timestamp_col", b);
  if (m.topic_col >= 0 && b->schema->fields[m.topic_col].type != TIDE_T_STRING)
    return luaL_error(L, "produce: the topic column must be a string");
  if (m.headers_col >= 0 && b->schema->fields[m.headers_col].type != TIDE_T_JSON)
    return luaL_error(L, "produce: the headers column must be json");
  if (m.partition_col >= 0 && b->schema->fields[m.partition_col].type != TIDE_T_INT)
    return luaL_error(L, "produce: the partition column must be an int");
  if (m.timestamp_col >= 0 && b->schema->fields[m.timestamp_col].type != TIDE_T_TIMESTAMP)
    return luaL_error(L, "produce: the timestamp column must be a timestamp");
  uint64_t n = 0;
  tide_err_t err = {0, ""};
  int rc = tide_ksink_produce(s, b, &m, &n, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

static int l_commit(lua_State *L) {
  tide_ksink_t *s = check(L);
  const char *topic = tide_l_opt_cname(L, 2, "topic name", 0);
  lua_Integer p = luaL_optinteger(L, 3, 0), id = luaL_optinteger(L, 4, 0);
  luaL_argcheck(L, p >= 0 && p <= INT32_MAX, 3, "partition out of range");
  luaL_argcheck(L, id >= 0, 4, "batch id must be >= 0");
  tide_err_t err = {0, ""};
  int rc = tide_ksink_commit(s, topic ? topic : "", (int32_t)p, id, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_init(lua_State *L) {
  tide_err_t err = {0, ""};
  int rc = tide_ksink_init(check(L), &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_produce_raw(lua_State *L) {
  tide_ksink_t *s = check(L);
  const char *topic = tide_l_check_cname(L, 2, "topic name", 0);
  lua_Integer p = luaL_checkinteger(L, 3);
  luaL_argcheck(L, p >= 0 && p <= INT32_MAX, 3, "partition out of range");
  size_t kn = 0, vn = 0;
  const char *k = luaL_optlstring(L, 4, NULL, &kn), *v = luaL_optlstring(L, 5, NULL, &vn);
  tide_err_t err = {0, ""};
  int rc = tide_ksink_produce_raw(s, topic, (int32_t)p, k, kn, v, vn, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_commit_offsets(lua_State *L) {
  tide_ksink_t *s = check(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t mdlen;
  const char *md = luaL_checklstring(L, 3, &mdlen);
  size_t n = lua_rawlen(L, 2);
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  const char **topics = x->p[0] = calloc(n + 1, sizeof *topics);
  int32_t *parts = x->p[1] = calloc(n + 1, sizeof *parts);
  int64_t *offs = x->p[2] = calloc(n + 1, sizeof *offs);
  if (!topics || !parts || !offs) return luaL_error(L, "commit_offsets: out of memory");
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_rawgeti(L, -1, 1);
    topics[i] = tide_l_check_cname(L, -1, "topic name", 0); /* kept alive by the list */
    lua_rawgeti(L, -2, 2);
    lua_rawgeti(L, -3, 3);
    lua_Integer p = luaL_checkinteger(L, -2), o = luaL_checkinteger(L, -1);
    if (p < 0 || p > INT32_MAX || o < 0) return luaL_error(L, "commit_offsets: bad partition or offset");
    parts[i] = (int32_t)p;
    offs[i] = o;
    lua_pop(L, 4);
  }
  tide_err_t err = {0, ""};
  int rc = tide_ksink_commit_offsets(s, topics, parts, offs, n, md, mdlen, &err);
  tide_l_scratch_free(x);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_abort(lua_State *L) {
  tide_ksink_abort(check(L));
  return 0;
}

static int l_stats(lua_State *L) {
  uint64_t d, f;
  tide_ksink_stats(check(L), &d, &f);
  lua_pushinteger(L, (lua_Integer)d);
  lua_pushinteger(L, (lua_Integer)f);
  return 2;
}

/* ks:produce_changes(topic, partition, cs) -> n | nil, msg, ENAME: every
 * change of the change set cs (core.state_changes, or an operator state's
 * take_changes) as one message of topic/partition, in order: key = the
 * state key, value = the record, or none for a delete (a tombstone). What
 * the scale-out runtime writes to a changelog, without a Lua value per
 * change (added by helper sofast). */
static int l_produce_changes(lua_State *L) {
  tide_ksink_t *s = check(L);
  const char *topic = tide_l_check_cname(L, 2, "topic name", 0);
  lua_Integer p = luaL_checkinteger(L, 3);
  luaL_argcheck(L, p >= 0 && p <= INT32_MAX, 3, "partition out of range");
  tide_l_changes_t *c = tide_l_check_changes(L, 4);
  size_t n = c->nputs + c->ndels;
  const char *rec = c->buf.data;
  for (size_t i = 0; i < n; i++) {
    tide_ckpt_op_t op;
    rec = tide_l_changes_next(rec, &op);
    tide_err_t err = {0, ""};
    int rc = tide_ksink_produce_raw(s, topic, (int32_t)p, op.key, op.klen, op.val, op.vlen, &err);
    if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  }
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}

/* ks:prepare({topic, ...}): the client learns these topics' partitions
 * and leaders now, not at their first message (tide_ksink_prepare; added
 * for the scale-out runtime's changelog, repartition and output topics). */
static int l_prepare(lua_State *L) {
  tide_ksink_t *s = check(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  size_t n = lua_rawlen(L, 2);
  for (size_t i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i);
    const char *topic = tide_l_check_cname(L, -1, "topic name", 0);
    tide_ksink_prepare(s, &topic, 1);
    lua_pop(L, 1);
  }
  return 0;
}

int tide_l_kafka_sink_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"recover", l_recover}, {"committed", l_committed}, {"begin", l_begin},
                                     {"produce", l_produce}, {"commit", l_commit},       {"abort", l_abort},
                                     {"stats", l_stats},     {"close", l_close},         {"init", l_init},
                                     {"produce_raw", l_produce_raw}, {"commit_offsets", l_commit_offsets},
                                     {"produce_changes", l_produce_changes}, {"prepare", l_prepare},
                                     {NULL, NULL}};
  tide_l_class(L, KSINK_MT, methods, l_close, 1);
  lua_pushcfunction(L, l_new);
  lua_setfield(L, -2, "kafka_sink");
  return 0;
}
