/*
 * l_repart.c: the repartition codec (core/repart.h) for lua/tide/topology.lua.
 *
 *   core.repart_murmur2(bytes)               -> Kafka's murmur2, 0 .. 2^32-1
 *   core.repart_partition(bytes, n)          -> the default partitioner's partition
 *   core.repart_schema_id(schema)            -> the schema id rows carry
 *   core.repart_encode(batch, key_batch|nil, partitions)
 *                                            -> messages batch | nil, msg, ENAME
 *   core.repart_markers(partitions, upstream, ms)
 *                                            -> messages batch | nil, msg, ENAME
 *   core.repart_decode(schema, msgs, topic)  -> batch, markers | nil, msg, ENAME
 *       msgs: an array of { partition =, offset =, value = } (kafka_group:poll's
 *       messages), or a batch with the columns value (string), partition
 *       (int) and offset (int; without it, row numbers): the Kafka source's
 *       message columns, or a messages batch;
 *       markers: { { partition =, offset =, upstream =, ms = }, ... } in order;
 *       a failure names "repartition topic T partition P offset O".
 * A messages batch is `partition int, key string?, value string?, headers
 * json?`: key and value are the ASCII texts of core/repart.h.
 */
#include <inttypes.h>
#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#include "l_tide.h"
#include "repart.h"

static int l_murmur2(lua_State *L) {
  size_t n;
  const char *p = luaL_checklstring(L, 1, &n);
  lua_pushinteger(L, (lua_Integer)tide_repart_murmur2(p, n));
  return 1;
}

static int32_t check_partitions(lua_State *L, int idx) {
  lua_Integer n = luaL_checkinteger(L, idx);
  luaL_argcheck(L, n >= 1 && n <= INT32_MAX, idx, "partitions must be >= 1");
  return (int32_t)n;
}

static int l_partition(lua_State *L) {
  size_t n;
  const char *p = luaL_checklstring(L, 1, &n);
  lua_pushinteger(L, tide_repart_partition(p, n, check_partitions(L, 2)));
  return 1;
}

static int l_schema_id(lua_State *L) {
  uint32_t id;
  if (tide_repart_schema_id(tide_l_check_schema(L, 1), &id)) return luaL_error(L, "not enough memory");
  lua_pushinteger(L, (lua_Integer)id);
  return 1;
}

static int l_encode(lua_State *L) {
  const tide_batch_t *b = tide_l_check_batch(L, 1);
  const tide_batch_t *kb = lua_isnoneornil(L, 2) ? NULL : tide_l_check_batch(L, 2);
  int32_t parts = check_partitions(L, 3);
  tide_batch_t *out;
  tide_err_t err = {0, ""};
  int rc = tide_repart_encode(b, kb, parts, &out, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_l_push_batch(L, out);
  return 1;
}

/* repart_encode_blocks(batch, keys|nil, partitions, max_bytes) -> messages */
static int l_encode_blocks(lua_State *L) {
  const tide_batch_t *b = tide_l_check_batch(L, 1);
  const tide_batch_t *kb = lua_isnoneornil(L, 2) ? NULL : tide_l_check_batch(L, 2);
  int32_t parts = check_partitions(L, 3);
  lua_Integer max = luaL_checkinteger(L, 4);
  luaL_argcheck(L, max >= 1, 4, "max_bytes must be >= 1");
  tide_batch_t *out;
  tide_err_t err = {0, ""};
  int rc = tide_repart_encode_blocks(b, kb, parts, (size_t)max, &out, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_l_push_batch(L, out);
  return 1;
}

static int l_markers(lua_State *L) {
  int32_t parts = check_partitions(L, 1);
  lua_Integer up = luaL_checkinteger(L, 2), ms = luaL_checkinteger(L, 3);
  luaL_argcheck(L, up >= 0 && up <= INT32_MAX, 2, "upstream partition must be >= 0");
  tide_batch_t *out;
  tide_err_t err = {0, ""};
  int rc = tide_repart_markers(parts, (int32_t)up, (int64_t)ms, &out, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_l_push_batch(L, out);
  return 1;
}

/* Append one marker { partition, offset, upstream, ms } to the table at
 * the top of the stack. */
static void push_marker(lua_State *L, lua_Integer partition, lua_Integer offset, int32_t up, int64_t ms) {
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, partition);
  lua_setfield(L, -2, "partition");
  lua_pushinteger(L, offset);
  lua_setfield(L, -2, "offset");
  lua_pushinteger(L, up);
  lua_setfield(L, -2, "upstream");
  lua_pushinteger(L, ms);
  lua_setfield(L, -2, "ms");
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* The column of b named name with type t, or -1. */
static int column(const tide_batch_t *b, const char *name, tide_type_t t) {
  int c = tide_schema_find(b->schema, name, strlen(name));
  return c >= 0 && b->schema->fields[c].type == t ? c : -1;
}

static int l_decode(lua_State *L) {
  tide_schema_t *s = tide_l_check_schema(L, 1);
  const tide_batch_t *mb = luaL_testudata(L, 2, TIDE_L_BATCH_MT) ? tide_l_check_batch(L, 2) : NULL;
  if (!mb) luaL_checktype(L, 2, LUA_TTABLE);
  const char *topic = luaL_checkstring(L, 3);
  int vcol = -1, pcol = -1, ocol = -1;
  if (mb) {
    vcol = column(mb, "value", TIDE_T_STRING);
    pcol = column(mb, "partition", TIDE_T_INT);
    ocol = column(mb, "offset", TIDE_T_INT);
    if (vcol < 0 || pcol < 0)
      return luaL_argerror(L, 2, "expected a batch of messages (string value and int partition columns)");
  }
  uint32_t sid;
  if (tide_repart_schema_id(s, &sid)) return luaL_error(L, "not enough memory");
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  lua_Integer n = mb ? (lua_Integer)mb->nrows : (lua_Integer)lua_rawlen(L, 2);
  x->batch[0] = tide_batch_new(s, n > 0 && n < (1 << 20) ? (uint32_t)n : 1024);
  if (!x->batch[0]) return luaL_error(L, "not enough memory");
  lua_newtable(L); /* markers */
  int markers = lua_gettop(L);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_Integer partition, offset;
    const char *p = NULL;
    size_t len = 0;
    if (mb) {
      uint32_t r = (uint32_t)(i - 1);
      partition = tide_col_i64(&mb->cols[pcol], r);
      offset = ocol >= 0 ? tide_col_i64(&mb->cols[ocol], r) : i - 1;
      if (!tide_col_is_null(&mb->cols[vcol], r)) p = tide_col_str(&mb->cols[vcol], r, &len);
    } else {
      lua_rawgeti(L, 2, i);
      if (!lua_istable(L, -1))
        return luaL_error(L, "repart_decode: message %d is a %s, not a table", (int)i, luaL_typename(L, -1));
      lua_getfield(L, -1, "partition");
      lua_getfield(L, -2, "offset");
      lua_getfield(L, -3, "value");
      partition = lua_tointeger(L, -3);
      offset = lua_tointeger(L, -2);
      if (lua_type(L, -1) == LUA_TSTRING) p = lua_tolstring(L, -1, &len);
    }
    int32_t up;
    int64_t ms;
    tide_err_t err = {0, ""};
    int rc = tide_repart_decode(x->batch[0], sid, p, len, &x->buf, &up, &ms, &err);
    if (!mb) lua_pop(L, 4); /* p stays valid: the message table in msgs holds the string */
    if (rc < 0) {
      lua_pushfstring(L, "repartition topic %s partition %I offset %I: %s", topic, partition, offset, err.msg);
      const char *msg = lua_tostring(L, -1);
      tide_l_scratch_free(x);
      return tide_l_fail(L, rc, NULL, msg);
    }
    if (rc == 1) {
      lua_pushvalue(L, markers);
      push_marker(L, partition, offset, up, ms);
      lua_pop(L, 1);
    }
  }
  tide_batch_t *out = x->batch[0];
  x->batch[0] = NULL;
  tide_l_scratch_free(x);
  tide_l_push_batch(L, out);
  lua_pushvalue(L, markers);
  return 2;
}

int tide_l_repart_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"repart_murmur2", l_murmur2}, {"repart_partition", l_partition},
                                 {"repart_schema_id", l_schema_id}, {"repart_encode", l_encode},
                                 {"repart_encode_blocks", l_encode_blocks},
                                 {"repart_markers", l_markers},   {"repart_decode", l_decode},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  return 0;
}
