/*
 * l_kafka.c: the Kafka source's client (core/kafka.h), as tide.KafkaReader.
 *
 *   core.kafka_reader(opts) -> reader | nil, msg, ENAME
 *     opts: bootstrap (string), kafka ({ [key] = "value" } librdkafka
 *     settings, applied after the reader's defaults), schema (tide.Schema:
 *     decode the value; nil: the message columns), format ("json"|"csv"),
 *     sep, ignore_unknown, bad ("fail"|"drop"|"dead_letter"), metadata
 *     (bool: add the kafka_ columns), skip_lost (bool), timeout (ms)
 *   reader:schema()                 the rows' tide.Schema
 *   reader:metadata([topic])        { {name=, partitions=, error=}, ... }
 *   reader:offsets(list, query)     list: { {topic, partition}, ... }; query
 *                                   "earliest", "latest" or a timestamp in
 *                                   ms: an array of offsets (-1: no message
 *                                   at or after the timestamp)
 *   reader:read(ranges)             ranges: { {topic, partition, start, stop}, ... }
 *                                   -> batches, { dropped = n, bad = { {topic=,
 *                                   partition=, offset=, reason=, text= (exact bytes)}... },
 *                                   lost = { {topic, partition, from, to}... },
 *                                   rows = { per range: messages read } }
 *   reader:prefetch(ranges)         start fetching ranges a read will ask for
 *   reader:read_ahead(ranges, threads)  read them now on a thread of its own: the
 *                                   next read of exactly these ranges returns it
 *   reader:read_ahead_stats()       used, dropped: reads ahead taken and dropped
 *   reader:commit(list)             list: { {topic, partition, offset}, ... }:
 *                                   commit to the consumer group (async)
 *   reader:committed(list)          list: { {topic, partition}, ... }: the
 *                                   group's committed offsets (-1: none)
 *   reader:close()
 *   core.kafka_match(pattern, names), core.kafka_check_bootstrap(s),
 *   core.kafka_raw_ddl, core.kafka_meta_ddl (the message columns)
 * Failures of the cluster return nil, msg, ENAME; misuse raises.
 */
#include <errno.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"
#include "kafka.h"
#include "l_tide.h"

#define READER_MT "tide.KafkaReader"
#define HOLD_MT "tide.KafkaHold"

typedef struct {
  tide_kafka_reader_t *r;
} l_reader_t;

/* What a call made in C and has not yet handed to Lua; freed by __gc when
 * a Lua call raises in between. */
typedef struct {
  tide_batch_t **batches;
  size_t nbatches, taken;
  tide_kafka_bad_t *bad;
  size_t nbad;
  tide_kafka_range_t *ranges;
  rd_kafka_topic_partition_list_t *list;
  tide_kafka_meta_t meta;
  const char **keys, **values;
} hold_t;

static int hold_gc(lua_State *L) {
  hold_t *h = luaL_checkudata(L, 1, HOLD_MT);
  for (size_t i = h->taken; i < h->nbatches; i++) tide_batch_free(h->batches[i]);
  free(h->batches);
  tide_kafka_bad_free(h->bad, h->nbad);
  free(h->ranges);
  if (h->list) rd_kafka_topic_partition_list_destroy(h->list);
  tide_kafka_meta_free(&h->meta);
  free(h->keys);
  free(h->values);
  memset(h, 0, sizeof *h);
  return 0;
}

static hold_t *push_hold(lua_State *L) {
  hold_t *h = lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  luaL_setmetatable(L, HOLD_MT);
  return h;
}

static tide_kafka_reader_t *check_reader(lua_State *L) {
  l_reader_t *u = luaL_checkudata(L, 1, READER_MT);
  if (!u->r) luaL_error(L, "the Kafka reader is closed");
  return u->r;
}

static const char *opt_string(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  const char *s = lua_isnil(L, -1) ? NULL : tide_l_check_cname(L, -1, k, 0);
  lua_pop(L, 1); /* the string stays in the options table */
  return s;
}

static int opt_bool(lua_State *L, int t, const char *k) {
  lua_getfield(L, t, k);
  int b = lua_toboolean(L, -1);
  lua_pop(L, 1);
  return b;
}

/* core.kafka_reader(opts) */
static int l_kafka_reader(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  const char *bootstrap = opt_string(L, 1, "bootstrap");
  if (!bootstrap) return luaL_error(L, "kafka_reader: option 'bootstrap' is required");
  tide_kafka_reader_opts_t o = {NULL, TIDE_FMT_JSON, TIDE_BAD_FAIL, ',', 0, 0, 0, 30000};
  lua_getfield(L, 1, "schema");
  if (!lua_isnil(L, -1)) o.schema = tide_l_check_schema(L, -1);
  lua_pop(L, 1); /* the schema stays referenced by the options table */
  const char *fmt = opt_string(L, 1, "format");
  if (fmt && strcmp(fmt, "csv") == 0) o.format = TIDE_FMT_CSV;
  else if (fmt && strcmp(fmt, "json") != 0) return luaL_error(L, "kafka_reader: format must be json or csv");
  const char *bad = opt_string(L, 1, "bad");
  if (bad && strcmp(bad, "drop") == 0) o.bad = TIDE_BAD_DROP;
  else if (bad && strcmp(bad, "dead_letter") == 0) o.bad = TIDE_BAD_DEAD_LETTER;
  else if (bad && strcmp(bad, "fail") != 0) return luaL_error(L, "kafka_reader: bad must be fail, drop or dead_letter");
  const char *sep = opt_string(L, 1, "sep");
  if (sep) o.sep = sep[0];
  if (opt_bool(L, 1, "ignore_unknown")) o.json_flags = TIDE_JSON_IGNORE_UNKNOWN;
  o.metadata = opt_bool(L, 1, "metadata");
  o.skip_lost = opt_bool(L, 1, "skip_lost");
  lua_getfield(L, 1, "timeout");
  if (!lua_isnil(L, -1)) o.timeout_ms = (int)luaL_checkinteger(L, -1);
  lua_pop(L, 1);

  hold_t *h = push_hold(L);
  lua_getfield(L, 1, "kafka");
  int kt = lua_gettop(L);
  size_t n = 0;
  if (lua_istable(L, kt)) {
    for (lua_pushnil(L); lua_next(L, kt); lua_pop(L, 1)) n++;
    h->keys = calloc(n ? n : 1, sizeof *h->keys);
    h->values = calloc(n ? n : 1, sizeof *h->values);
    if (!h->keys || !h->values) return luaL_error(L, "kafka_reader: out of memory");
    size_t i = 0;
    for (lua_pushnil(L); lua_next(L, kt); lua_pop(L, 1)) {
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        return luaL_error(L, "kafka_reader: kafka settings must be strings");
      h->keys[i] = lua_tostring(L, -2);
      h->values[i] = lua_tostring(L, -1);
      i++;
    }
  }
  l_reader_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->r = NULL;
  luaL_setmetatable(L, READER_MT);
  /* from here to the reader's open nothing raises */
  tide_err_t err = {0, ""};
  tide_kafka_log_t *log = malloc(sizeof *log);
  if (!log) return tide_l_fail(L, -ENOMEM, "kafka", NULL);
  tide_kafka_log_init(log);
  rd_kafka_conf_t *conf, *conf2 = NULL;
  int rc = tide_kafka_conf(bootstrap, h->keys, h->values, n, log, &conf, &err);
  if (!rc && !(conf2 = rd_kafka_conf_dup(conf))) {
    rd_kafka_conf_destroy(conf);
    rc = -ENOMEM;
  }
  rd_kafka_t *rk = NULL, *ask = NULL;
  if (!rc && (rc = tide_kafka_new(RD_KAFKA_CONSUMER, conf, &rk, &err))) rd_kafka_conf_destroy(conf2);
  if (!rc && (rc = tide_kafka_new(RD_KAFKA_CONSUMER, conf2, &ask, &err))) rd_kafka_destroy(rk);
  if (rc) {
    tide_kafka_log_free(log);
    free(log);
    return tide_l_fail(L, rc, NULL, err.msg);
  }
  rc = tide_kafka_reader_open(rk, ask, log, &o, &u->r, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  return 1;
}

static int l_reader_schema(lua_State *L) {
  tide_l_push_schema(L, tide_kafka_reader_schema(check_reader(L)));
  return 1;
}

static int l_reader_metadata(lua_State *L) {
  tide_kafka_reader_t *r = check_reader(L);
  const char *topic = tide_l_opt_cname(L, 2, "topic", 0);
  hold_t *h = push_hold(L);
  tide_err_t err = {0, ""};
  int rc = tide_kafka_metadata(tide_kafka_reader_client(r), topic, 10000, &h->meta, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_createtable(L, (int)h->meta.n, 0);
  for (size_t i = 0; i < h->meta.n; i++) {
    const tide_kafka_topic_info_t *t = &h->meta.topics[i];
    lua_createtable(L, 0, 3);
    lua_pushstring(L, t->name);
    lua_setfield(L, -2, "name");
    lua_pushinteger(L, t->partitions);
    lua_setfield(L, -2, "partitions");
    if (t->err) {
      char e[256];
      lua_pushstring(L, tide_kafka_errtext(t->err, e, sizeof e));
      lua_setfield(L, -2, "error");
      lua_pushstring(L, rd_kafka_err2name(t->err));
      lua_setfield(L, -2, "code");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* A partition list from the array at idx of {topic, partition[, offset]}
 * (offset: the third field, or `dflt`), held by h. */
static rd_kafka_topic_partition_list_t *check_list(lua_State *L, int idx, hold_t *h, int64_t dflt) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer n = luaL_len(L, idx);
  h->list = rd_kafka_topic_partition_list_new((int)(n > 0 ? n : 1));
  if (!h->list) luaL_error(L, "out of memory");
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, idx, i);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_geti(L, -1, 1);
    const char *topic = tide_l_check_cname(L, -1, "topic", 0);
    lua_geti(L, -2, 2);
    lua_Integer p = luaL_checkinteger(L, -1);
    lua_geti(L, -3, 3);
    int64_t off = lua_isnil(L, -1) ? dflt : (int64_t)luaL_checkinteger(L, -1);
    rd_kafka_topic_partition_list_add(h->list, topic, (int32_t)p)->offset = off;
    lua_pop(L, 4);
  }
  return h->list;
}

static int l_reader_offsets(lua_State *L) {
  tide_kafka_reader_t *r = check_reader(L);
  int64_t q;
  if (lua_type(L, 3) == LUA_TSTRING) {
    const char *s = lua_tostring(L, 3);
    if (strcmp(s, "earliest") == 0) q = RD_KAFKA_OFFSET_BEGINNING;
    else if (strcmp(s, "latest") == 0) q = RD_KAFKA_OFFSET_END;
    else return luaL_error(L, "offsets: query must be 'earliest', 'latest' or a timestamp in ms");
  } else {
    q = luaL_checkinteger(L, 3);
    if (q < 0) return luaL_error(L, "offsets: a timestamp must be >= 0");
  }
  hold_t *h = push_hold(L);
  rd_kafka_topic_partition_list_t *l = check_list(L, 2, h, q);
  for (int i = 0; i < l->cnt; i++) l->elems[i].offset = q;
  tide_err_t err = {0, ""};
  int rc = tide_kafka_list_offsets(tide_kafka_reader_client(r), l, 10000, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  for (int i = 0; i < l->cnt; i++) {
    if (l->elems[i].err) {
      char e[256];
      lua_pushnil(L);
      lua_pushfstring(L, "topic '%s' partition %d: offsets: %s", l->elems[i].topic, (int)l->elems[i].partition,
                      tide_kafka_errtext(l->elems[i].err, e, sizeof e));
      lua_pushstring(L, rd_kafka_err2name(l->elems[i].err));
      return 3;
    }
  }
  lua_createtable(L, l->cnt, 0);
  for (int i = 0; i < l->cnt; i++) {
    lua_pushinteger(L, l->elems[i].offset < 0 ? -1 : l->elems[i].offset);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* The ranges at idx ({ {topic, partition, start, stop}, ... }) into
 * h->ranges; their count. */
static lua_Integer check_ranges(lua_State *L, int idx, hold_t *h) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_Integer n = luaL_len(L, idx);
  h->ranges = calloc(n > 0 ? (size_t)n : 1, sizeof *h->ranges);
  if (!h->ranges) luaL_error(L, "read: out of memory");
  for (lua_Integer i = 1; i <= n; i++) {
    tide_kafka_range_t *g = &h->ranges[i - 1];
    lua_geti(L, idx, i);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_geti(L, -1, 1);
    g->topic = tide_l_check_cname(L, -1, "topic", 0); /* held by the ranges table */
    lua_geti(L, -2, 2);
    g->partition = (int32_t)luaL_checkinteger(L, -1);
    lua_geti(L, -3, 3);
    g->start = luaL_checkinteger(L, -1);
    lua_geti(L, -4, 4);
    g->stop = luaL_checkinteger(L, -1);
    lua_pop(L, 5);
  }
  return n;
}

static int l_reader_prefetch(lua_State *L) {
  tide_kafka_reader_t *r = check_reader(L);
  hold_t *h = push_hold(L);
  lua_Integer n = check_ranges(L, 2, h);
  tide_err_t err = {0, ""};
  int rc = tide_kafka_prefetch(r, h->ranges, (size_t)n, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

/* reader:read_ahead(ranges, threads): the next read of exactly these
 * ranges is read now, on a thread of its own (tide_kafka_read_ahead). */
static int l_reader_read_ahead(lua_State *L) {
  tide_kafka_reader_t *r = check_reader(L);
  hold_t *h = push_hold(L);
  lua_Integer n = check_ranges(L, 2, h);
  lua_Integer threads = luaL_checkinteger(L, 3);
  tide_err_t err = {0, ""};
  int rc = tide_kafka_read_ahead(r, h->ranges, (size_t)n, threads > 256 ? 256 : (int)threads, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg[0] ? err.msg : NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* reader:read_ahead_stats() -> used, dropped */
static int l_reader_read_ahead_stats(lua_State *L) {
  uint64_t used, dropped;
  tide_kafka_read_ahead_stats(check_reader(L), &used, &dropped);
  lua_pushinteger(L, (lua_Integer)used);
  lua_pushinteger(L, (lua_Integer)dropped);
  return 2;
}

static int l_reader_read(lua_State *L) {
  tide_kafka_reader_t *r = check_reader(L);
  hold_t *h = push_hold(L);
  lua_Integer n = check_ranges(L, 2, h);
  tide_err_t err = {0, ""};
  uint64_t dropped = 0;
  tide_kafka_reader_set_pool(r, tide_l_pool(L));
  int rc = tide_kafka_read(r, h->ranges, (size_t)n, &h->batches, &h->nbatches, &dropped, &h->bad, &h->nbad, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_createtable(L, (int)h->nbatches, 0);
  for (size_t i = 0; i < h->nbatches; i++) {
    tide_l_push_batch(L, h->batches[i]); /* owns it once it returns */
    h->taken = i + 1;
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)dropped);
  lua_setfield(L, -2, "dropped");
  lua_createtable(L, (int)h->nbad, 0);
  for (size_t i = 0; i < h->nbad; i++) {
    const tide_kafka_bad_t *x = &h->bad[i];
    lua_createtable(L, 0, 5);
    lua_pushstring(L, x->topic);
    lua_setfield(L, -2, "topic");
    lua_pushinteger(L, x->partition);
    lua_setfield(L, -2, "partition");
    lua_pushinteger(L, x->offset);
    lua_setfield(L, -2, "offset");
    lua_pushstring(L, x->reason);
    lua_setfield(L, -2, "reason");
    lua_pushlstring(L, x->text, x->len);
    lua_setfield(L, -2, "text");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_setfield(L, -2, "bad");
  lua_newtable(L);
  lua_Integer k = 0;
  for (lua_Integer i = 0; i < n; i++) {
    const tide_kafka_range_t *g = &h->ranges[i];
    if (g->lost_to <= g->lost_from) continue;
    lua_createtable(L, 4, 0);
    lua_pushstring(L, g->topic);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, g->partition);
    lua_rawseti(L, -2, 2);
    lua_pushinteger(L, g->lost_from);
    lua_rawseti(L, -2, 3);
    lua_pushinteger(L, g->lost_to);
    lua_rawseti(L, -2, 4);
    lua_rawseti(L, -2, ++k);
  }
  lua_setfield(L, -2, "lost");
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)h->ranges[i].rows);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "rows");
  return 2;
}

static int l_reader_commit(lua_State *L) {
  tide_kafka_reader_t *r = check_reader(L);
  hold_t *h = push_hold(L);
  rd_kafka_topic_partition_list_t *l = check_list(L, 2, h, RD_KAFKA_OFFSET_INVALID);
  rd_kafka_resp_err_t e = rd_kafka_commit(tide_kafka_reader_client(r), l, 1);
  if (e) {
    char t[256];
    return tide_l_fail(L, -EIO, "commit", tide_kafka_errtext(e, t, sizeof t));
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* reader:committed(list) -> the group's committed offsets (-1: none) */
static int l_reader_committed(lua_State *L) {
  tide_kafka_reader_t *r = check_reader(L);
  hold_t *h = push_hold(L);
  rd_kafka_topic_partition_list_t *l = check_list(L, 2, h, RD_KAFKA_OFFSET_INVALID);
  rd_kafka_resp_err_t e = rd_kafka_committed(tide_kafka_reader_client(r), l, 10000);
  if (e) {
    char t[256];
    return tide_l_fail(L, -EIO, "committed", tide_kafka_errtext(e, t, sizeof t));
  }
  lua_createtable(L, l->cnt, 0);
  for (int i = 0; i < l->cnt; i++) {
    lua_pushinteger(L, l->elems[i].offset < 0 ? -1 : l->elems[i].offset);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int l_reader_close(lua_State *L) {
  l_reader_t *u = luaL_checkudata(L, 1, READER_MT);
  tide_kafka_reader_close(u->r);
  u->r = NULL;
  return 0;
}

/* core.kafka_check_bootstrap(s) -> true | nil, msg */
static int l_kafka_check_bootstrap(lua_State *L) {
  const char *s = tide_l_check_cname(L, 1, "bootstrap", 0);
  tide_err_t err = {0, ""};
  int rc = tide_kafka_check_bootstrap(s, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

/* core.kafka_match(pattern, names) -> the names the POSIX extended regular
 * expression matches whole (as Spark's subscribePattern, a Java regex, is
 * matched), in their order | nil, msg for a bad pattern */
static int l_kafka_match(lua_State *L) {
  const char *pat = tide_l_check_cname(L, 1, "pattern", 0);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_pushfstring(L, "^(%s)$", pat);
  regex_t *re = lua_newuserdatauv(L, sizeof *re, 0); /* freed below: nothing raises in between but pushes */
  int rc = regcomp(re, lua_tostring(L, -2), REG_EXTENDED | REG_NOSUB);
  if (rc) {
    char why[200];
    regerror(rc, re, why, sizeof why);
    lua_pushnil(L);
    lua_pushfstring(L, "bad pattern '%s': %s", pat, why);
    return 2;
  }
  lua_Integer n = luaL_len(L, 2), k = 0;
  /* collect the matches first, so that the regex is freed before any push can raise */
  char *hit = calloc(n > 0 ? (size_t)n : 1, 1);
  if (!hit) {
    regfree(re);
    return luaL_error(L, "kafka_match: out of memory");
  }
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, 2, i);
    const char *name = lua_tostring(L, -1);
    hit[i - 1] = name && regexec(re, name, 0, NULL, 0) == 0;
    lua_pop(L, 1);
  }
  regfree(re);
  lua_createtable(L, 0, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    if (!hit[i - 1]) continue;
    lua_geti(L, 2, i);
    lua_rawseti(L, -2, ++k);
  }
  free(hit);
  return 1;
}

int tide_l_kafka_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"schema", l_reader_schema},   {"metadata", l_reader_metadata},
                                     {"offsets", l_reader_offsets}, {"read", l_reader_read},
                                     {"prefetch", l_reader_prefetch},
                                     {"read_ahead", l_reader_read_ahead},
                                     {"read_ahead_stats", l_reader_read_ahead_stats},
                                     {"commit", l_reader_commit},   {"committed", l_reader_committed},
                                     {"close", l_reader_close},
                                     {NULL, NULL}};
  tide_l_class(L, READER_MT, methods, l_reader_close, 1);
  tide_l_class(L, HOLD_MT, NULL, hold_gc, 0);
  static const luaL_Reg fns[] = {
      {"kafka_reader", l_kafka_reader}, {"kafka_check_bootstrap", l_kafka_check_bootstrap},
      {"kafka_match", l_kafka_match}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  lua_pushliteral(L, TIDE_KAFKA_RAW_DDL);
  lua_setfield(L, -2, "kafka_raw_ddl");
  lua_pushliteral(L, TIDE_KAFKA_META_DDL);
  lua_setfield(L, -2, "kafka_meta_ddl");
  return 0;
}
