/*
 * l_batch.c: Lua <-> batch conversion, the tide.Batch userdata, and the
 * schema/JSON helper functions of tide.core.
 *
 * Memory discipline. Any Lua API call may raise (out of memory), which
 * longjmps past our C frames. So C memory that lives across Lua calls is
 * always held by a scratch userdata (tide_l_scratch_t, l_tide.h, with a
 * __gc that frees it) sitting on the Lua stack; it is handed over (pointer
 * taken, scratch emptied) only once no Lua call remains. The JSON -> Lua
 * decoder builds Lua values directly (no C tree), and the Lua -> JSON
 * encoder writes into a scratch buffer.
 *
 * The tide.Batch userdata holds one tide_batch_t *, NULL once closed;
 * __gc, __close and b:close() share one idempotent close.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "jsonl.h"
#include "ts.h"
#include "l_tide.h"
#include "vec.h"

#define SHOW_MAX 40
#define DEPTH_MAX TIDE_JSON_MAX_DEPTH

/* ---------------------------------------------------------------- JSON -> Lua */

/* The value of a json column as Lua values, built as the text is read (no
 * C tree): the core's scanner (json.h) reads the strings and numbers, this
 * only makes tables of them. The text was written by the core, valid and
 * compact, so a failure means damaged data. Objects lose their null
 * members (an absent key); integer literals within int64 become integers.
 * Returns the end of the value, or NULL when the text does not parse. */
static const char *jl_value(lua_State *L, const tide_json_cur_t *x, const char *p, int depth, int *nil) {
  const char *e = x->end, *q, *s;
  size_t n;
  int64_t v;
  int isint;
  p = tide_json_ws(p, e);
  *nil = 0;
  if (p >= e) return NULL;
  switch (*p) {
  case '"':
    if (tide_json_str(x, p, &q, &s, &n)) return NULL;
    lua_pushlstring(L, s, n);
    return q;
  case 't':
    if (e - p < 4 || memcmp(p, "true", 4)) return NULL;
    lua_pushboolean(L, 1);
    return p + 4;
  case 'f':
    if (e - p < 5 || memcmp(p, "false", 5)) return NULL;
    lua_pushboolean(L, 0);
    return p + 5;
  case 'n':
    if (e - p < 4 || memcmp(p, "null", 4)) return NULL;
    lua_pushnil(L);
    *nil = 1;
    return p + 4;
  case '[':
  case '{': {
    char close = *p == '[' ? ']' : '}';
    lua_Integer i = 0;
    if (depth >= DEPTH_MAX) return NULL;
    luaL_checkstack(L, 4, "json value too deep");
    lua_newtable(L);
    p = tide_json_ws(p + 1, e);
    if (p < e && *p == close) return p + 1;
    for (;;) {
      int isnil;
      if (close == '}') { /* a key, then ':' */
        if (p >= e || *p != '"' || !(p = jl_value(L, x, p, depth + 1, &isnil))) return NULL;
        p = tide_json_ws(p, e);
        if (p >= e || *p != ':') return NULL;
        p++;
      }
      if (!(p = jl_value(L, x, p, depth + 1, &isnil))) return NULL;
      if (close == ']') lua_rawseti(L, -2, ++i);
      else if (isnil) lua_pop(L, 2); /* a null member is an absent key */
      else lua_rawset(L, -3);
      p = tide_json_ws(p, e);
      if (p < e && *p == ',') {
        p = tide_json_ws(p + 1, e);
        continue;
      }
      if (p < e && *p == close) return p + 1;
      return NULL;
    }
  }
  default:
    switch (tide_json_int(p, e, &q, &v)) {
    case 1:
      lua_pushinteger(L, (lua_Integer)v);
      return q;
    case -1: return NULL;
    default: /* a fraction, an exponent, or beyond int64 */
      if (tide_json_num(x, p, &q, &isint)) return NULL;
      lua_pushnumber(L, (lua_Number)tide_json_num_value(p, (size_t)(q - p)));
      return q;
    }
  }
}

/* Push the Lua value of JSON text p[0..n); nil and TIDE_ECORRUPT when it
 * does not parse. */
static int push_json(lua_State *L, const char *p, size_t n) {
  int top = lua_gettop(L), isnil;
  tide_err_t err;
  tide_json_cur_t x = {p, p + n, &err, NULL};
  tide_l_scratch_t *scratch = NULL;
  if (memchr(p, '\\', n)) { /* escaped strings are decoded into a buffer */
    scratch = tide_l_push_scratch(L);
    x.tmp = &scratch->buf;
  }
  const char *q = jl_value(L, &x, p, 0, &isnil);
  if (!q || tide_json_ws(q, x.end) != x.end) {
    lua_settop(L, top);
    lua_pushnil(L);
    return TIDE_ECORRUPT;
  }
  if (scratch) {
    tide_l_scratch_free(scratch);
    lua_remove(L, top + 1);
  }
  return 0;
}

/* ---------------------------------------------------------------- batch -> Lua */

int tide_l_push_value(lua_State *L, const tide_col_t *c, uint32_t row) {
  size_t n;
  const char *s;
  if (tide_col_is_null(c, row)) {
    lua_pushnil(L);
    return 0;
  }
  switch (c->type) {
  case TIDE_T_INT:
  case TIDE_T_TIMESTAMP: lua_pushinteger(L, (lua_Integer)tide_col_i64(c, row)); return 0;
  case TIDE_T_DOUBLE: lua_pushnumber(L, (lua_Number)tide_col_f64(c, row)); return 0;
  case TIDE_T_BOOL: lua_pushboolean(L, tide_col_bool(c, row)); return 0;
  case TIDE_T_STRING:
    s = tide_col_str(c, row, &n);
    lua_pushlstring(L, s, n);
    return 0;
  case TIDE_T_JSON:
    s = tide_col_str(c, row, &n);
    return push_json(L, s, n);
  }
  lua_pushnil(L);
  return TIDE_ECORRUPT;
}

void tide_l_push_row(lua_State *L, const tide_batch_t *b, uint32_t row) {
  const tide_schema_t *s = b->schema;
  luaL_checkstack(L, 4, NULL);
  lua_createtable(L, 0, (int)s->nfields);
  for (uint32_t i = 0; i < s->nfields; i++) {
    if (tide_col_is_null(&b->cols[i], row)) continue;
    tide_l_push_value(L, &b->cols[i], row);
    lua_setfield(L, -2, s->fields[i].name);
  }
}

/* ---------------------------------------------------------------- Lua -> JSON */

/* Encode the Lua value at idx (absolute) as compact JSON onto out. Returns
 * 0, -ENOMEM, or TIDE_ESCHEMA with the reason in why. */
static int enc_lua(lua_State *L, int idx, tide_buf_t *out, int depth, char *why, size_t wn) {
  char num[32];
  size_t n;
  const char *s;
  int rc;
  switch (lua_type(L, idx)) {
  case LUA_TNIL: return tide_buf_append(out, "null", 4);
  case LUA_TBOOLEAN: return tide_buf_puts(out, lua_toboolean(L, idx) ? "true" : "false");
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      int k = snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
      return tide_buf_append(out, num, (size_t)k);
    }
    return tide_json_number(out, (double)lua_tonumber(L, idx));
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &n);
    if (tide_utf8_check(s, n) != n) {
      snprintf(why, wn, "invalid UTF-8 in string at byte %zu", tide_utf8_check(s, n) + 1);
      return TIDE_ESCHEMA;
    }
    return tide_json_quote(out, s, n);
  case LUA_TTABLE: break;
  default:
    snprintf(why, wn, "cannot encode a %s as JSON", luaL_typename(L, idx));
    return TIDE_ESCHEMA;
  }
  if (depth >= DEPTH_MAX) {
    snprintf(why, wn, "table nested deeper than %d levels (a cycle?)", DEPTH_MAX);
    return TIDE_ESCHEMA;
  }
  luaL_checkstack(L, 4, "json value too deep");
  /* what is it: count keys, find the largest positive integer key */
  lua_Integer count = 0, max = 0;
  int allint = 1, forced = 0; /* 1 array, 2 object */
  if (luaL_getmetafield(L, idx, "__jsontype") != LUA_TNIL) {
    const char *jt = lua_tostring(L, -1);
    if (jt && !strcmp(jt, "array")) forced = 1;
    else if (jt && !strcmp(jt, "object")) forced = 2;
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    count++;
    if (lua_type(L, -1) == LUA_TNUMBER && lua_isinteger(L, -1)) {
      lua_Integer k = lua_tointeger(L, -1);
      if (k > max) max = k;
      if (k < 1) allint = 0;
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      allint = 0;
    } else {
      snprintf(why, wn, "cannot encode a table key of type %s as JSON", luaL_typename(L, -1));
      lua_pop(L, 1);
      return TIDE_ESCHEMA;
    }
  }
  if (count == 0) return tide_buf_puts(out, forced == 1 ? "[]" : "{}");
  if (forced != 2 && allint && max == count) {
    if ((rc = tide_buf_putc(out, '['))) return rc;
    for (lua_Integer i = 1; i <= count; i++) {
      if (i > 1 && (rc = tide_buf_putc(out, ','))) return rc;
      lua_rawgeti(L, idx, i);
      rc = enc_lua(L, lua_gettop(L), out, depth + 1, why, wn);
      lua_pop(L, 1);
      if (rc) return rc;
    }
    return tide_buf_putc(out, ']');
  }
  if ((rc = tide_buf_putc(out, '{'))) return rc;
  int first = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (!first && (rc = tide_buf_putc(out, ','))) goto fail;
    first = 0;
    if (lua_type(L, -2) == LUA_TNUMBER) {
      int k = snprintf(num, sizeof num, "\"%lld\"", (long long)lua_tointeger(L, -2));
      rc = tide_buf_append(out, num, (size_t)k);
    } else {
      s = lua_tolstring(L, -2, &n); /* a string key: no conversion happens */
      if (tide_utf8_check(s, n) != n) {
        snprintf(why, wn, "invalid UTF-8 in a table key");
        rc = TIDE_ESCHEMA;
        goto fail;
      }
      rc = tide_json_quote(out, s, n);
    }
    if (rc || (rc = tide_buf_putc(out, ':'))) goto fail;
    if ((rc = enc_lua(L, lua_gettop(L), out, depth + 1, why, wn))) goto fail;
    lua_pop(L, 1);
  }
  return tide_buf_putc(out, '}');
fail:
  lua_pop(L, 2);
  return rc;
}

/* ---------------------------------------------------------------- Lua -> batch */

/* Describe the Lua value at idx for a message: `string "abc"`, `number 3.5`,
 * `boolean true`, `table`. */
static void describe(lua_State *L, int idx, char *out, size_t n) {
  size_t len;
  const char *s;
  switch (lua_type(L, idx)) {
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &len);
    snprintf(out, n, "string \"%.*s%s\"", (int)(len > SHOW_MAX ? SHOW_MAX : len), s,
             len > SHOW_MAX ? "..." : "");
    break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) snprintf(out, n, "number %lld", (long long)lua_tointeger(L, idx));
    else snprintf(out, n, "number %.14g", (double)lua_tonumber(L, idx));
    break;
  case LUA_TBOOLEAN: snprintf(out, n, "boolean %s", lua_toboolean(L, idx) ? "true" : "false"); break;
  default: snprintf(out, n, "%s", luaL_typename(L, idx));
  }
}

static int bad_value(lua_State *L, int idx, const tide_field_t *f, const char *why, tide_err_t *err) {
  char d[SHOW_MAX + 40];
  describe(L, idx, d, sizeof d);
  return tide_err_set(err, TIDE_ESCHEMA, "field '%s': expected %s, got %s%s", f->name,
                      tide_type_name(f->type), d, why ? why : "");
}

/* Integer value of the number at idx for an int/timestamp field: integers,
 * and floats with an integral value within int64. */
static int to_i64(lua_State *L, int idx, const tide_field_t *f, int64_t *v, tide_err_t *err) {
  if (lua_isinteger(L, idx)) {
    *v = (int64_t)lua_tointeger(L, idx);
    return 0;
  }
  double d = (double)lua_tonumber(L, idx);
  if (d != floor(d)) return bad_value(L, idx, f, NULL, err);
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
    return bad_value(L, idx, f, " (out of range)", err);
  *v = (int64_t)d;
  return 0;
}

static int unknown_key(lua_State *L, const tide_schema_t *s, tide_err_t *err) {
  char list[300], d[SHOW_MAX + 40];
  size_t len = 0;
  list[0] = 0;
  for (uint32_t i = 0; i < s->nfields; i++) {
    if (len + s->fields[i].name_len + 6 >= sizeof list) {
      memcpy(list + len, ", ...", 6);
      break;
    }
    len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", s->fields[i].name);
  }
  if (lua_type(L, -1) == LUA_TSTRING) {
    size_t n;
    const char *k = lua_tolstring(L, -1, &n);
    return tide_err_set(err, TIDE_ESCHEMA, "unknown field '%.*s%s' (fields: %s)",
                        (int)(n > SHOW_MAX ? SHOW_MAX : n), k, n > SHOW_MAX ? "..." : "", list);
  }
  describe(L, -1, d, sizeof d);
  return tide_err_set(err, TIDE_ESCHEMA, "unexpected key %s (keys must be field names: %s)", d, list);
}

/* Append the row table at ridx to b. The stack is balanced on return. */
static int row_from_lua(lua_State *L, int ridx, tide_batch_t *b, int flags, tide_buf_t *jb,
                        tide_err_t *err) {
  const tide_schema_t *s = b->schema;
  lua_Integer found = 0, keys = 0;
  int64_t v;
  size_t n;
  const char *str;
  char why[160];
  int rc = tide_batch_row_begin(b);
  if (rc) return tide_err_set(err, rc, "%s", tide_strerror(rc));
  for (uint32_t i = 0; i < s->nfields; i++) {
    const tide_field_t *f = &s->fields[i];
    lua_pushlstring(L, f->name, f->name_len);
    int t = lua_rawget(L, ridx);
    if (t == LUA_TNIL) {
      lua_pop(L, 1);
      if (f->default_json) {
        if ((rc = tide_json_set_value(b, i, f->default_json, strlen(f->default_json), err))) goto fail;
      } else if (!f->nullable) {
        rc = tide_err_set(err, TIDE_ESCHEMA, "missing field '%s' (not nullable)", f->name);
        goto fail;
      }
      continue;
    }
    found++;
    int top = lua_gettop(L);
    switch (f->type) {
    case TIDE_T_INT:
    case TIDE_T_TIMESTAMP:
      if (t == LUA_TNUMBER) {
        if ((rc = to_i64(L, top, f, &v, err))) goto failpop;
      } else if (t == LUA_TSTRING && f->type == TIDE_T_TIMESTAMP) {
        str = lua_tolstring(L, top, &n);
        if (tide_ts_parse(str, n, &v)) {
          rc = bad_value(L, top, f, NULL, err);
          goto failpop;
        }
      } else {
        rc = bad_value(L, top, f, NULL, err);
        goto failpop;
      }
      if (f->type == TIDE_T_TIMESTAMP && !tide_ts_valid(v)) {
        rc = bad_value(L, top, f, TIDE_TS_RANGE_WHY, err);
        goto failpop;
      }
      tide_batch_set_i64(b, i, v);
      break;
    case TIDE_T_DOUBLE:
      if (t != LUA_TNUMBER) {
        rc = bad_value(L, top, f, NULL, err);
        goto failpop;
      }
      tide_batch_set_f64(b, i, (double)lua_tonumber(L, top));
      break;
    case TIDE_T_BOOL:
      if (t != LUA_TBOOLEAN) {
        rc = bad_value(L, top, f, NULL, err);
        goto failpop;
      }
      tide_batch_set_bool(b, i, lua_toboolean(L, top));
      break;
    case TIDE_T_STRING:
      if (t != LUA_TSTRING) {
        rc = bad_value(L, top, f, NULL, err);
        goto failpop;
      }
      str = lua_tolstring(L, top, &n);
      if (tide_utf8_check(str, n) != n) {
        rc = tide_err_set(err, TIDE_ESCHEMA, "field '%s': invalid UTF-8 in string at byte %zu",
                          f->name, tide_utf8_check(str, n) + 1);
        goto failpop;
      }
      if ((rc = tide_batch_set_str(b, i, str, n))) {
        tide_err_set(err, rc, "field '%s': %s", f->name, tide_strerror(rc));
        goto failpop;
      }
      break;
    case TIDE_T_JSON:
      jb->len = 0;
      if ((rc = enc_lua(L, top, jb, 0, why, sizeof why))) {
        if (rc == TIDE_ESCHEMA) tide_err_set(err, rc, "field '%s': %s", f->name, why);
        else tide_err_set(err, rc, "field '%s': %s", f->name, tide_strerror(rc));
        goto failpop;
      }
      if ((rc = tide_batch_set_str(b, i, jb->data, jb->len))) {
        tide_err_set(err, rc, "field '%s': %s", f->name, tide_strerror(rc));
        goto failpop;
      }
      break;
    }
    lua_pop(L, 1);
  }
  if (!(flags & TIDE_JSON_IGNORE_UNKNOWN)) {
    lua_pushnil(L);
    while (lua_next(L, ridx)) {
      lua_pop(L, 1);
      keys++;
    }
    if (keys > found) { /* find the culprit */
      lua_pushnil(L);
      while (lua_next(L, ridx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING) break;
        str = lua_tolstring(L, -1, &n);
        if (tide_schema_find(s, str, n) < 0) break;
      }
      rc = unknown_key(L, s, err);
      lua_pop(L, 1);
      goto fail;
    }
  }
  tide_batch_row_commit(b);
  return 0;
failpop:
  lua_pop(L, 1);
fail:
  tide_batch_row_abort(b);
  return rc;
}

int tide_l_rows_to_batch(lua_State *L, int idx, tide_batch_t *b, int flags, tide_err_t *err) {
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx)) return tide_err_set(err, TIDE_EINVAL, "rows: expected a table, got %s", luaL_typename(L, idx));
  int top = lua_gettop(L), rc = 0;
  uint32_t start = b->nrows;
  lua_Unsigned n = lua_rawlen(L, idx);
  if (n > TIDE_BATCH_MAX_ROWS)
    return tide_err_set(err, TIDE_ETOOBIG, "too many rows (%llu)", (unsigned long long)n);
  luaL_checkstack(L, 8, NULL);
  tide_l_scratch_t *box = tide_l_push_scratch(L);
  if ((rc = tide_batch_reserve(b, (uint32_t)n))) {
    lua_settop(L, top);
    return tide_err_set(err, rc, "%s", tide_strerror(rc));
  }
  for (lua_Unsigned r = 1; r <= n; r++) {
    int t = lua_rawgeti(L, idx, (lua_Integer)r);
    if (t != LUA_TTABLE) {
      rc = tide_err_set(err, TIDE_ESCHEMA, "row %llu: expected a table, got %s", (unsigned long long)r,
                        luaL_typename(L, -1));
      break;
    }
    if ((rc = row_from_lua(L, lua_gettop(L), b, flags, &box->buf, err))) {
      tide_err_prefix(err, "row %llu: ", (unsigned long long)r);
      break;
    }
    lua_pop(L, 1);
  }
  if (rc) tide_batch_truncate(b, start);
  lua_settop(L, top);
  return rc;
}

int tide_l_row_to_batch(lua_State *L, int idx, tide_batch_t *b, int flags, tide_buf_t *scratch, tide_err_t *err) {
  idx = lua_absindex(L, idx);
  if (!lua_istable(L, idx)) return tide_err_set(err, TIDE_ESCHEMA, "expected a table, got %s", luaL_typename(L, idx));
  int top = lua_gettop(L);
  luaL_checkstack(L, 8, NULL);
  int rc = row_from_lua(L, idx, b, flags, scratch, err);
  lua_settop(L, top);
  return rc;
}

/* ---------------------------------------------------------------- schemas */

/* One entry of the array form at eidx, added to s. */
static int schema_entry(lua_State *L, int eidx, lua_Integer i, tide_schema_t *s, tide_buf_t *jb,
                        tide_err_t *err) {
  size_t nl = 0, tl = 0;
  const char *name = NULL, *type = NULL;
  int nullable = 0, rc;
  tide_type_t t;
  char why[160];
  if (lua_rawgeti(L, eidx, 1) == LUA_TSTRING) name = lua_tolstring(L, -1, &nl);
  else if (lua_getfield(L, eidx, "name") == LUA_TSTRING) name = lua_tolstring(L, -1, &nl);
  if (lua_rawgeti(L, eidx, 2) == LUA_TSTRING) type = lua_tolstring(L, -1, &tl);
  else if (lua_getfield(L, eidx, "type") == LUA_TSTRING) type = lua_tolstring(L, -1, &tl);
  if (!name) return tide_err_set(err, TIDE_EINVAL, "field %lld: missing name (a string)", (long long)i);
  if (!type)
    return tide_err_set(err, TIDE_EINVAL, "field %lld ('%s'): missing type (a string)", (long long)i, name);
  if (tl && type[tl - 1] == '?') nullable = 1, tl--;
  if (tide_type_parse(type, tl, &t))
    return tide_err_set(err, TIDE_EINVAL,
                        "field %lld ('%s'): unknown type '%.*s' (allowed: bool, int, double, string, timestamp, json)",
                        (long long)i, name, (int)tl, type);
  int nt = lua_getfield(L, eidx, "nullable");
  if (nt == LUA_TBOOLEAN) nullable = lua_toboolean(L, -1);
  else if (nt != LUA_TNIL)
    return tide_err_set(err, TIDE_EINVAL, "field %lld ('%s'): nullable must be a boolean", (long long)i, name);
  const char *def = NULL;
  if (lua_getfield(L, eidx, "default") != LUA_TNIL) {
    jb->len = 0;
    if ((rc = enc_lua(L, lua_gettop(L), jb, 0, why, sizeof why)) ||
        (rc = tide_buf_cstr(jb)))
      return tide_err_set(err, rc == -ENOMEM ? rc : TIDE_EINVAL, "field %lld ('%s'): default: %s",
                          (long long)i, name, rc == -ENOMEM ? "out of memory" : why);
    def = jb->data;
  }
  if ((rc = tide_schema_add(s, name, nl, t, nullable, def, err))) {
    tide_err_prefix(err, "field %lld: ", (long long)i);
    return rc;
  }
  return 0;
}

int tide_l_schema_from_lua(lua_State *L, int idx, tide_schema_t **out, tide_err_t *err) {
  idx = lua_absindex(L, idx);
  *out = NULL;
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t n;
    const char *ddl = lua_tolstring(L, idx, &n);
    return tide_schema_parse_ddl(ddl, n, out, err);
  }
  if (!lua_istable(L, idx))
    return tide_err_set(err, TIDE_EINVAL, "schema: expected a DDL string or an array of fields, got %s",
                        luaL_typename(L, idx));
  int top = lua_gettop(L), rc = 0;
  luaL_checkstack(L, 10, NULL);
  tide_l_scratch_t *box = tide_l_push_scratch(L);
  if (!(box->schema = tide_schema_new())) {
    lua_settop(L, top);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  lua_Unsigned n = lua_rawlen(L, idx);
  if (n == 0) rc = tide_err_set(err, TIDE_EINVAL, "schema: no fields");
  for (lua_Unsigned i = 1; !rc && i <= n; i++) {
    int etop = lua_gettop(L);
    if (lua_rawgeti(L, idx, (lua_Integer)i) != LUA_TTABLE)
      rc = tide_err_set(err, TIDE_EINVAL, "field %llu: expected a table {name, type}, got %s",
                        (unsigned long long)i, luaL_typename(L, -1));
    else
      rc = schema_entry(L, lua_gettop(L), (lua_Integer)i, box->schema, &box->buf, err);
    lua_settop(L, etop);
  }
  if (!rc) {
    *out = box->schema;
    box->schema = NULL;
  }
  lua_settop(L, top);
  return rc;
}

void tide_l_push_schema(lua_State *L, const tide_schema_t *s) {
  luaL_checkstack(L, 5, NULL);
  lua_createtable(L, (int)s->nfields, 0);
  for (uint32_t i = 0; i < s->nfields; i++) {
    const tide_field_t *f = &s->fields[i];
    lua_createtable(L, 2, f->default_json ? 1 : 0);
    lua_pushlstring(L, f->name, f->name_len);
    lua_rawseti(L, -2, 1);
    lua_pushfstring(L, "%s%s", tide_type_name(f->type), f->nullable ? "?" : "");
    lua_rawseti(L, -2, 2);
    if (f->default_json) {
      push_json(L, f->default_json, strlen(f->default_json));
      lua_setfield(L, -2, "default");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* ---------------------------------------------------------------- tide.Batch */

typedef struct lbatch {
  tide_batch_t *b;
} lbatch_t;

void tide_l_push_batch(lua_State *L, tide_batch_t *b) {
  lbatch_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->b = NULL;
  luaL_setmetatable(L, TIDE_L_BATCH_MT);
  u->b = b;
}

tide_batch_t *tide_l_check_batch(lua_State *L, int idx) {
  lbatch_t *u = luaL_checkudata(L, idx, TIDE_L_BATCH_MT);
  if (!u->b) luaL_error(L, "attempt to use a closed tide.Batch");
  return u->b;
}

tide_batch_t *tide_l_take_batch(lua_State *L, int idx) {
  tide_batch_t *b = tide_l_check_batch(L, idx);
  ((lbatch_t *)lua_touserdata(L, idx))->b = NULL;
  return b;
}

static int batch_close(lua_State *L) {
  lbatch_t *u = luaL_checkudata(L, 1, TIDE_L_BATCH_MT);
  if (u->b) {
    tide_batch_free(u->b);
    u->b = NULL;
  }
  return 0;
}

static int batch_nrows(lua_State *L) {
  lua_pushinteger(L, tide_l_check_batch(L, 1)->nrows);
  return 1;
}

static int batch_schema(lua_State *L) {
  tide_l_push_schema(L, tide_l_check_batch(L, 1)->schema);
  return 1;
}

static int batch_row(lua_State *L) {
  tide_batch_t *b = tide_l_check_batch(L, 1);
  lua_Integer i = luaL_checkinteger(L, 2);
  luaL_argcheck(L, i >= 1 && i <= (lua_Integer)b->nrows, 2, "row index out of range");
  tide_l_push_row(L, b, (uint32_t)(i - 1));
  return 1;
}

/* The column names are pushed once and each row's fields are set with
 * lua_rawset from those copies: lua_setfield would hash and look up the
 * name again for every field of every row. */
static int batch_rows(lua_State *L) {
  tide_batch_t *b = tide_l_check_batch(L, 1);
  const tide_schema_t *s = b->schema;
  uint32_t nf = s->nfields;
  luaL_checkstack(L, (int)nf + 4, NULL);
  int names = lua_gettop(L) + 1;
  for (uint32_t i = 0; i < nf; i++) lua_pushlstring(L, s->fields[i].name, s->fields[i].name_len);
  lua_createtable(L, (int)b->nrows, 0);
  for (uint32_t r = 0; r < b->nrows; r++) {
    lua_createtable(L, 0, (int)nf);
    for (uint32_t i = 0; i < nf; i++) {
      if (tide_col_is_null(&b->cols[i], r)) continue;
      lua_pushvalue(L, names + (int)i);
      tide_l_push_value(L, &b->cols[i], r);
      lua_rawset(L, -3);
    }
    lua_rawseti(L, -2, (lua_Integer)r + 1);
  }
  return 1;
}

static int batch_column(lua_State *L) {
  tide_batch_t *b = tide_l_check_batch(L, 1);
  size_t n;
  const char *name = luaL_checklstring(L, 2, &n);
  int c = tide_schema_find(b->schema, name, n);
  if (c < 0) return luaL_argerror(L, 2, lua_pushfstring(L, "no column '%s'", name));
  lua_createtable(L, (int)b->nrows, 1);
  for (uint32_t r = 0; r < b->nrows; r++) {
    tide_l_push_value(L, &b->cols[c], r);
    lua_rawseti(L, -2, (lua_Integer)r + 1);
  }
  lua_pushinteger(L, b->nrows);
  lua_setfield(L, -2, "n");
  return 1;
}

void tide_l_push_ddl(lua_State *L, const tide_schema_t *s) {
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  if (tide_schema_to_ddl(s, &x->buf)) luaL_error(L, "out of memory");
  lua_pushlstring(L, x->buf.data ? x->buf.data : "", x->buf.len);
  tide_l_scratch_free(x);
  lua_remove(L, -2);
}

static int batch_tostring(lua_State *L) {
  lbatch_t *u = luaL_checkudata(L, 1, TIDE_L_BATCH_MT);
  if (u->b) lua_pushfstring(L, "tide.Batch (%d rows)", (int)u->b->nrows);
  else lua_pushliteral(L, "tide.Batch (closed)");
  return 1;
}

/* ---------------------------------------------------------------- module functions */

static int l_ts_parse(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  int64_t ms;
  if (tide_ts_parse(s, n, &ms)) {
    lua_pushnil(L);
    lua_pushfstring(L, "invalid timestamp '%s' (expected ISO-8601, e.g. 2026-11-21T12:00:05Z)", s);
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)ms);
  return 1;
}

static int l_ts_format(lua_State *L) {
  char buf[40];
  int n = tide_ts_format((int64_t)luaL_checkinteger(L, 1), buf);
  lua_pushlstring(L, buf, (size_t)n);
  return 1;
}

/* core.time_now() -> ms since the epoch (integer): batch timestamps. */
static int l_time_now(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushinteger(L, (lua_Integer)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
  return 1;
}

/* core.clock_ms() -> a monotonic clock in ms (float, microsecond
 * resolution): durations in progress reports. libuv's uv_now is cached per
 * loop iteration and only has ms steps, too coarse for a 0.2 ms batch. */
static int l_clock_ms(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  lua_pushnumber(L, (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6);
  return 1;
}

/* Read the optional flags table at idx: { ignore_unknown=, whole=, iso8601= }. */
static int check_flags(lua_State *L, int idx) {
  static const char *const names[] = {"ignore_unknown", "whole", "iso8601", NULL};
  static const int bits[] = {TIDE_JSON_IGNORE_UNKNOWN, TIDE_JSON_WHOLE, TIDE_JSON_ISO8601};
  int flags = 0;
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, idx, "flag names must be strings");
    const char *k = lua_tostring(L, -2);
    int i = 0;
    while (names[i] && strcmp(names[i], k)) i++;
    if (!names[i]) luaL_argerror(L, idx, lua_pushfstring(L, "unknown flag '%s'", k));
    if (lua_toboolean(L, -1)) flags |= bits[i];
    lua_pop(L, 1);
  }
  return flags;
}

/* json_batch(schema, text [, flags]) -> tide.Batch, or nil, "line N: msg",
 * "EPARSE"|"ESCHEMA"|... Blank lines are skipped (but counted). */
static int l_json_batch(lua_State *L) {
  tide_schema_t *s;
  tide_err_t err = {0, ""};
  size_t len;
  luaL_checkany(L, 1);
  const char *text = luaL_checklstring(L, 2, &len);
  int flags = check_flags(L, 3);
  if (tide_l_schema_from_lua(L, 1, &s, &err)) return luaL_error(L, "%s", err.msg);
  tide_l_scratch_t *box = tide_l_push_scratch(L);
  box->schema = s;
  lbatch_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->b = NULL;
  luaL_setmetatable(L, TIDE_L_BATCH_MT);
  if (!(u->b = tide_batch_new(s, 0))) return luaL_error(L, "out of memory");
  tide_json_dec_t *d = tide_json_dec_new(s, flags);
  if (!d) return luaL_error(L, "out of memory");
  /* no Lua call from here until d is freed */
  const char *p = text, *e = text + len;
  int line = 0, rc = 0;
  while (p < e && !rc) {
    const char *nl = memchr(p, '\n', (size_t)(e - p)), *end = nl ? nl : e, *q = p;
    line++;
    while (q < end && (*q == ' ' || *q == '\t' || *q == '\r')) q++;
    if (q < end) rc = tide_json_dec_line(d, u->b, p, (size_t)(end - p), &err);
    if (rc && rc != TIDE_EPARSE && rc != TIDE_ESCHEMA && rc != TIDE_EINVAL)
      tide_err_set(&err, rc, "%s", tide_strerror(rc));
    p = nl ? nl + 1 : e;
  }
  tide_json_dec_free(d);
  if (rc) return tide_l_fail(L, rc, lua_pushfstring(L, "line %d", line), err.msg);
  return 1;
}

/* batch_json(batch [, flags]) -> JSON lines text (one line per row, each
 * ending in a newline). */
static int l_batch_json(lua_State *L) {
  tide_batch_t *b = tide_l_check_batch(L, 1);
  int flags = check_flags(L, 2);
  tide_l_scratch_t *box = tide_l_push_scratch(L);
  for (uint32_t r = 0; r < b->nrows; r++)
    if (tide_json_enc_row(b, r, &box->buf, flags) || tide_buf_putc(&box->buf, '\n'))
      return luaL_error(L, "out of memory");
  lua_pushlstring(L, box->buf.data ? box->buf.data : "", box->buf.len);
  return 1;
}

/* time_stats(batch, col) -> count, min, max, sum over the non-NULL values
 * of the timestamp or int column col (1-based): what a watermark node (the
 * largest event time) and a query's progress (event time min/max/avg)
 * need, in one pass without building a Lua table. count 0 gives nil
 * min/max and sum 0; the sum is a double so that it cannot overflow. */
static int l_time_stats(lua_State *L) {
  tide_batch_t *b = tide_l_check_batch(L, 1);
  lua_Integer col = luaL_checkinteger(L, 2);
  uint32_t nf = b->schema->nfields;
  if (col < 1 || col > (lua_Integer)nf)
    return luaL_argerror(L, 2, lua_pushfstring(L, "column %I does not exist (the batch has %d)", col, (int)nf));
  const tide_col_t *c = &b->cols[col - 1];
  if (c->type != TIDE_T_TIMESTAMP && c->type != TIDE_T_INT)
    return luaL_argerror(L, 2, lua_pushfstring(L, "column %I ('%s') is %s, expected timestamp or int", col,
                                              b->schema->fields[col - 1].name, tide_type_name(c->type)));
  uint32_t n;
  int64_t lo = 0, hi = 0;
  double sum;
  tide_col_time_stats(c, b->nrows, &n, &lo, &hi, &sum);
  lua_pushinteger(L, n);
  if (n) {
    lua_pushinteger(L, (lua_Integer)lo);
    lua_pushinteger(L, (lua_Integer)hi);
  } else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  lua_pushnumber(L, sum);
  return 4;
}

int tide_l_batch_open(lua_State *L) {
  static const luaL_Reg methods[] = {
      {"nrows", batch_nrows}, {"schema", batch_schema}, {"row", batch_row},
      {"rows", batch_rows},   {"column", batch_column}, {"close", batch_close},
      {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__gc", batch_close}, {"__close", batch_close}, {"__len", batch_nrows},
      {"__tostring", batch_tostring}, {NULL, NULL}};
  static const luaL_Reg funcs[] = {
      {"ts_parse", l_ts_parse},   {"ts_format", l_ts_format}, {"json_batch", l_json_batch},
      {"batch_json", l_batch_json}, {"time_now", l_time_now},   {"clock_ms", l_clock_ms},
      {"time_stats", l_time_stats}, {NULL, NULL}};
  luaL_checktype(L, -1, LUA_TTABLE);
  if (luaL_newmetatable(L, TIDE_L_BATCH_MT)) {
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, funcs, 0);
  return 0;
}
