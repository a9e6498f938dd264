/*
 * l_kgroup.c: a member of a Kafka consumer group (core/kgroup.h), as
 * tide.KafkaGroup, the ground of scale-out (issue 15).
 *
 *   core.kafka_group(bootstrap, group, topics, [kafka]) -> member | nil, msg, ENAME
 *     topics: { "a", "b" }; kafka: { [key] = "value" } librdkafka settings
 *   member:poll(timeout_ms, max) -> kind, items
 *     kind nil: nothing came in the time
 *     "messages": { {topic=, partition=, offset=, key=, value=, timestamp=}, ... }
 *     "assign" | "revoke" | "lost": { {topic, partition}, ... } (kgroup.h)
 *   member:release()                give back the partitions of the last
 *                                   revoke or lost (after finishing them)
 *   member:assignment()             { {topic, partition}, ... }
 *   member:member_id()              "" before the member joined
 *   member:metadata()               the group metadata, serialised (for a
 *                                   transactional producer)
 *   member:commit(list)             list: { {topic, partition, offset}, ... }
 *   member:close()                  leave the group (idempotent)
 *   member:pause_fetching()         events only: assigned partitions are paused
 *   member:committed(list, [timeout_ms]) list: { {topic, partition}, ... }
 *                                   -> { offset | -1 (none), ... }
 *   core.kafka_read_log(bootstrap, topic, partition, [kafka], [timeout_ms])
 *                                   -> { {key, value | nil}, ... } (offset order)
 *   core.kafka_create_topics(bootstrap, { {name, partitions, compact}, ... },
 *                            [kafka], [timeout_ms])  -> true (existing ones are fine)
 * Failures of the cluster return nil, msg, ENAME; misuse raises.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kgroup.h"
#include "l_tide.h"

#define GROUP_MT "tide.KafkaGroup"
#define GHOLD_MT "tide.KafkaGroupHold"

typedef struct {
  tide_kgroup_t *g;
} l_group_t;

/* C memory a call holds while it builds Lua values (which may raise). */
typedef struct {
  tide_kgroup_result_t res;
  rd_kafka_topic_partition_list_t *list;
  const char **names, **keys, **values;
  void *buf;
} ghold_t;

static int ghold_gc(lua_State *L) {
  ghold_t *h = luaL_checkudata(L, 1, GHOLD_MT);
  tide_kgroup_result_free(&h->res);
  if (h->list) rd_kafka_topic_partition_list_destroy(h->list);
  free(h->names);
  free(h->keys);
  free(h->values);
  free(h->buf);
  memset(h, 0, sizeof *h);
  return 0;
}

static ghold_t *push_ghold(lua_State *L) {
  ghold_t *h = lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  luaL_setmetatable(L, GHOLD_MT);
  return h;
}

static tide_kgroup_t *check_group(lua_State *L) {
  l_group_t *u = luaL_checkudata(L, 1, GROUP_MT);
  if (!u->g) luaL_error(L, "the Kafka group member is closed");
  return u->g;
}

static void push_parts(lua_State *L, const rd_kafka_topic_partition_list_t *l) {
  lua_createtable(L, l ? l->cnt : 0, 0);
  for (int i = 0; l && i < l->cnt; i++) {
    lua_createtable(L, 2, 0);
    lua_pushstring(L, l->elems[i].topic);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, l->elems[i].partition);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, i + 1);
  }
}

/* core.kafka_group(bootstrap, group, topics, [kafka]) */
static int l_kafka_group(lua_State *L) {
  lua_settop(L, 4); /* the hold below goes to 5 whether the settings were given or not */
  const char *bootstrap = tide_l_check_cname(L, 1, "bootstrap", 0);
  const char *group = tide_l_check_cname(L, 2, "group", 0);
  luaL_checktype(L, 3, LUA_TTABLE);
  ghold_t *h = push_ghold(L);
  size_t nt = lua_rawlen(L, 3), n = 0;
  h->names = calloc(nt ? nt : 1, sizeof *h->names);
  if (!h->names) return luaL_error(L, "kafka_group: out of memory");
  for (size_t i = 0; i < nt; i++) {
    lua_rawgeti(L, 3, (lua_Integer)i + 1);
    h->names[i] = tide_l_check_cname(L, -1, "topic", 0);
    lua_pop(L, 1); /* the string stays in the topics table */
  }
  if (lua_istable(L, 4)) {
    for (lua_pushnil(L); lua_next(L, 4); lua_pop(L, 1)) n++;
    h->keys = calloc(n ? n : 1, sizeof *h->keys);
    h->values = calloc(n ? n : 1, sizeof *h->values);
    if (!h->keys || !h->values) return luaL_error(L, "kafka_group: out of memory");
    size_t i = 0;
    for (lua_pushnil(L); lua_next(L, 4); lua_pop(L, 1)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "kafka_group: kafka settings must be strings");
      h->keys[i] = lua_tostring(L, -2);
      h->values[i++] = lua_tostring(L, -1);
    }
  } else if (!lua_isnoneornil(L, 4)) {
    return luaL_error(L, "kafka_group: kafka settings must be a table");
  }
  l_group_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->g = NULL;
  luaL_setmetatable(L, GROUP_MT);
  tide_err_t err = {0, ""};
  int rc = tide_kgroup_new(bootstrap, group, h->names, nt, h->keys, h->values, n, &u->g, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  return 1;
}

static int l_group_poll(lua_State *L) {
  tide_kgroup_t *g = check_group(L);
  lua_Integer timeout = luaL_optinteger(L, 2, 100), max = luaL_optinteger(L, 3, 10000);
  if (timeout < 0 || max < 1) return luaL_error(L, "poll: timeout must be >= 0 and max >= 1");
  ghold_t *h = push_ghold(L);
  tide_err_t err = {0, ""};
  int rc = tide_kgroup_poll(g, (int)timeout, (size_t)max, &h->res, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  static const char *kinds[] = {NULL, "messages", "assign", "revoke", "lost"};
  if (h->res.kind == TIDE_KGROUP_NONE) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushstring(L, kinds[h->res.kind]);
  if (h->res.kind != TIDE_KGROUP_MESSAGES) {
    push_parts(L, h->res.list);
    tide_kgroup_result_free(&h->res);
    return 2;
  }
  lua_createtable(L, (int)h->res.n, 0);
  for (size_t i = 0; i < h->res.n; i++) {
    const tide_kgroup_msg_t *m = &h->res.msgs[i];
    lua_createtable(L, 0, 6);
    lua_pushstring(L, m->topic);
    lua_setfield(L, -2, "topic");
    lua_pushinteger(L, m->partition);
    lua_setfield(L, -2, "partition");
    lua_pushinteger(L, m->offset);
    lua_setfield(L, -2, "offset");
    if (m->timestamp >= 0) {
      lua_pushinteger(L, m->timestamp);
      lua_setfield(L, -2, "timestamp");
    }
    if (m->key) {
      lua_pushlstring(L, m->key, m->key_len);
      lua_setfield(L, -2, "key");
    }
    if (m->value) {
      lua_pushlstring(L, m->value, m->value_len);
      lua_setfield(L, -2, "value");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  /* the messages hold references on their partitions, which would keep
   * the client's destruction waiting: give them back now, not at a GC */
  tide_kgroup_result_free(&h->res);
  return 2;
}

static int l_group_release(lua_State *L) {
  tide_err_t err = {0, ""};
  int rc = tide_kgroup_release(check_group(L), &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_group_assignment(lua_State *L) {
  tide_kgroup_t *g = check_group(L);
  ghold_t *h = push_ghold(L);
  h->list = tide_kgroup_assignment(g);
  if (!h->list) return luaL_error(L, "assignment: out of memory");
  push_parts(L, h->list);
  return 1;
}

static int l_group_member_id(lua_State *L) {
  char id[256];
  tide_kgroup_member_id(check_group(L), id, sizeof id);
  lua_pushstring(L, id);
  return 1;
}

static int l_group_metadata(lua_State *L) {
  tide_kgroup_t *g = check_group(L);
  ghold_t *h = push_ghold(L);
  size_t len = 0;
  if (tide_kgroup_metadata(g, &h->buf, &len)) return luaL_error(L, "metadata: out of memory");
  lua_pushlstring(L, h->buf, len);
  return 1;
}

/* The list at idx, { {topic, partition[, offset]}, ... }, as a new
 * partition list (with offsets when with_offsets). The caller keeps it in
 * a hold before anything else can raise: a bad entry raises here, after
 * the list is freed. */
static rd_kafka_topic_partition_list_t *check_parts(lua_State *L, int idx, int with_offsets, const char *what) {
  int n = (int)lua_rawlen(L, idx);
  ghold_t *h = push_ghold(L); /* holds the list while it is built */
  h->list = rd_kafka_topic_partition_list_new(n);
  if (!h->list) luaL_error(L, "%s: out of memory", what);
  for (int i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, i);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_rawgeti(L, -1, 1);
    const char *topic = tide_l_check_cname(L, -1, "topic", 0);
    lua_rawgeti(L, -2, 2);
    lua_rawgeti(L, -3, 3);
    rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(h->list, topic,
                                                                       (int32_t)luaL_checkinteger(L, -2));
    if (with_offsets) tp->offset = luaL_checkinteger(L, -1);
    lua_pop(L, 4);
  }
  rd_kafka_topic_partition_list_t *l = h->list;
  h->list = NULL;
  lua_pop(L, 1);
  return l;
}

static int l_group_commit(lua_State *L) {
  tide_kgroup_t *g = check_group(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  ghold_t *h = push_ghold(L);
  h->list = check_parts(L, 2, 1, "commit");
  tide_err_t err = {0, ""};
  int rc = tide_kgroup_commit(g, h->list, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_group_pause(lua_State *L) {
  tide_kgroup_pause_fetching(check_group(L));
  return 0;
}

static int l_group_committed(lua_State *L) {
  tide_kgroup_t *g = check_group(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer timeout = luaL_optinteger(L, 3, 10000);
  ghold_t *h = push_ghold(L);
  h->list = check_parts(L, 2, 0, "committed");
  int n = h->list->cnt;
  tide_err_t err = {0, ""};
  int rc = tide_kgroup_committed(g, h->list, (int)timeout, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_createtable(L, n, 0);
  for (int i = 0; i < n; i++) {
    int64_t o = h->list->elems[i].offset;
    lua_pushinteger(L, o < 0 ? -1 : o);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* The optional settings table at idx into h->keys/values; returns their number. */
static size_t settings(lua_State *L, int idx, ghold_t *h) {
  size_t n = 0;
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) n++;
  h->keys = calloc(n ? n : 1, sizeof *h->keys);
  h->values = calloc(n ? n : 1, sizeof *h->values);
  if (!h->keys || !h->values) luaL_error(L, "out of memory");
  size_t i = 0;
  for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "kafka settings must be strings");
    h->keys[i] = lua_tostring(L, -2);
    h->values[i++] = lua_tostring(L, -1);
  }
  return n;
}

static int l_read_log(lua_State *L) {
  const char *bootstrap = tide_l_check_cname(L, 1, "bootstrap", 0);
  const char *topic = tide_l_check_cname(L, 2, "topic", 0);
  lua_Integer p = luaL_checkinteger(L, 3), timeout = luaL_optinteger(L, 5, 30000);
  luaL_argcheck(L, p >= 0 && p <= INT32_MAX, 3, "partition out of range");
  ghold_t *h = push_ghold(L);
  size_t nkv = settings(L, 4, h), count = 0;
  tide_buf_t out = TIDE_BUF_INIT;
  tide_err_t err = {0, ""};
  int rc = tide_kafka_read_log(bootstrap, topic, (int32_t)p, h->keys, h->values, nkv, (int)timeout, &out, &count,
                               &err);
  h->buf = out.data; /* freed by the hold, whatever happens below */
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_createtable(L, (int)count, 0);
  const char *q = out.data;
  for (size_t i = 0; i < count; i++) {
    uint32_t kn, vn;
    memcpy(&kn, q, sizeof kn);
    memcpy(&vn, q + sizeof kn, sizeof vn);
    q += sizeof kn + sizeof vn;
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, q, kn);
    lua_rawseti(L, -2, 1);
    q += kn;
    if (vn) {
      lua_pushlstring(L, q, vn - 1);
      lua_rawseti(L, -2, 2);
      q += vn - 1;
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int l_create_topics(lua_State *L) {
  const char *bootstrap = tide_l_check_cname(L, 1, "bootstrap", 0);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer timeout = luaL_optinteger(L, 4, 30000);
  ghold_t *h = push_ghold(L);
  size_t nkv = settings(L, 3, h), n = lua_rawlen(L, 2);
  h->names = calloc(n ? n : 1, sizeof *h->names);
  int *ints = h->buf = calloc(2 * (n ? n : 1), sizeof *ints);
  if (!h->names || !ints) return luaL_error(L, "create_topics: out of memory");
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_rawgeti(L, -1, 1);
    h->names[i] = tide_l_check_cname(L, -1, "topic", 0); /* kept alive by the list */
    lua_rawgeti(L, -2, 2);
    lua_Integer np = luaL_checkinteger(L, -1);
    if (np < 1 || np > 100000) return luaL_error(L, "create_topics: bad partition count %d", (int)np);
    ints[i] = (int)np;
    lua_rawgeti(L, -3, 3);
    ints[n + i] = lua_toboolean(L, -1);
    lua_pop(L, 4);
  }
  tide_err_t err = {0, ""};
  int rc = tide_kafka_create_topics(bootstrap, h->names, ints, ints + n, n, h->keys, h->values, nkv, (int)timeout,
                                    &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_group_close(lua_State *L) {
  l_group_t *u = luaL_checkudata(L, 1, GROUP_MT);
  if (!u->g) {
    lua_pushboolean(L, 1);
    return 1;
  }
  tide_err_t err = {0, ""};
  int rc = tide_kgroup_close(u->g, &err);
  tide_kgroup_free(u->g);
  u->g = NULL;
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_group_gc(lua_State *L) {
  l_group_t *u = luaL_checkudata(L, 1, GROUP_MT);
  tide_kgroup_free(u->g);
  u->g = NULL;
  return 0;
}

int tide_l_kgroup_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"poll", l_group_poll},       {"release", l_group_release},
                                     {"assignment", l_group_assignment}, {"member_id", l_group_member_id},
                                     {"metadata", l_group_metadata}, {"commit", l_group_commit},
                                     {"close", l_group_close},     {"pause_fetching", l_group_pause},
                                     {"committed", l_group_committed}, {NULL, NULL}};
  luaL_newmetatable(L, GROUP_MT);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_group_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newmetatable(L, GHOLD_MT);
  lua_pushcfunction(L, ghold_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"kafka_group", l_kafka_group}, {"kafka_read_log", l_read_log},
                                 {"kafka_create_topics", l_create_topics}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  return 0;
}
