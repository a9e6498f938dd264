/*
 * l_udf.c: Lua functions over batches, and Lua rows into batches.
 *
 *   core.udf_filter(batch, fn [, first])                     -> Batch | nil, msg
 *   core.udf_map(batch, fn, schema, flat [, what [, first]]) -> Batch | nil, msg
 *   core.rows_batch(schema, rows [, ignore_unknown])         -> Batch | nil, msg, ENAME
 *
 * Failures of the data (a UDF that raises, a row that breaks a declared
 * schema) return nil and a message naming the row; misuse raises.
 */
#include <stdlib.h>
#include <string.h>

#include "jsonl.h"
#include "l_tide.h"
#include "vec.h"

/* UDFs run a whole batch inside ONE protected call: the loop below calls
 * the function with lua_call (no setjmp per row) and keeps the current row
 * in a udf_run_t, so that an error can still name the row. An error
 * of the user's function reaches the message handler as a string and gets a
 * traceback; a row the function returned that breaks the schema is raised
 * as the run itself (a light userdata), which the handler lets through. */

/* A UDF run over one batch (the loop is below). */
typedef struct udf_run {
  const tide_batch_t *in;
  uint32_t row;      /* the row being processed */
  lua_Integer first; /* rows of the input before this batch (messages count from the input's start) */
  int flat, map;     /* udf_map: flat_map or map; else a filter */
  uint32_t *rows, n; /* filter: the rows kept (room for in->nrows) */
  tide_batch_t *out; /* map: the output */
  tide_buf_t *jb;    /* map: scratch for json values */
  tide_err_t err;    /* map: why a returned row does not fit */
} udf_run_t;

static int traceback(lua_State *L) {
  if (lua_type(L, 1) == LUA_TLIGHTUSERDATA) return 1; /* our own: no traceback */
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Row `i` of b as JSON text, for messages (cut at 300 bytes). */
static void row_text(const tide_batch_t *b, uint32_t i, tide_buf_t *out) {
  out->len = 0;
  if (tide_json_enc_row(b, i, out, TIDE_JSON_ISO8601) || tide_buf_cstr(out)) {
    out->len = 0;
    tide_buf_puts(out, "?");
    tide_buf_cstr(out);
  }
  if (out->len > 300) {
    memcpy(out->data + 296, "...}", 5);
    out->len = 300;
  }
}

/* emit(row) for flat_map: appends to the table in upvalue 1. */
static int udf_emit(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_pushvalue(L, 1);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
  return 0;
}

/* Append the row at idx to the map's output, or raise the run. */
static void udf_put(lua_State *L, udf_run_t *r, int idx) {
  if (tide_l_row_to_batch(L, idx, r->out, 0, r->jb, &r->err)) {
    lua_pushlightuserdata(L, r);
    lua_error(L);
  }
}

/* A direct-mapped cache of the Lua strings of a batch's string columns:
 * string values repeat (devices, kinds), and pushing a cached Lua string
 * costs a hash and a compare instead of Lua's interning of the bytes. The
 * strings themselves live in a Lua table (stack index `tbl`), slot i+1. */
#define STRCACHE 1024
typedef struct strcache {
  const char *p[STRCACHE];
  uint32_t len[STRCACHE];
} strcache_t;

static void push_cached_str(lua_State *L, strcache_t *sc, int tbl, const char *p, size_t n) {
  if (n > 40) { /* long strings are not interned by Lua anyway */
    lua_pushlstring(L, p, n);
    return;
  }
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 16777619u;
  h &= STRCACHE - 1;
  if (sc->p[h] && sc->len[h] == n && !memcmp(sc->p[h], p, n)) {
    lua_rawgeti(L, tbl, (lua_Integer)h + 1);
    return;
  }
  lua_pushlstring(L, p, n);
  lua_pushvalue(L, -1);
  lua_rawseti(L, tbl, (lua_Integer)h + 1);
  sc->p[h] = p;
  sc->len[h] = (uint32_t)n;
}

/* __newindex of a filter's row: the row is a read-only view. */
static int udf_readonly(lua_State *L) {
  return luaL_error(L, "filter: the row is read-only (field '%s'); use map or with_column to change rows",
                    luaL_tolstring(L, 2, NULL));
}

/* The protected loop: udf_loop(run, fn [, pending, emit]). */
static int udf_loop(lua_State *L) {
  udf_run_t *r = lua_touserdata(L, 1);
  const tide_batch_t *in = r->in;
  uint32_t nf = in->schema->nfields;
  luaL_checkstack(L, (int)nf + 8, NULL);
  int keys = lua_gettop(L) + 1;
  for (uint32_t c = 0; c < nf; c++) lua_pushlstring(L, in->schema->fields[c].name, in->schema->fields[c].name_len);
  strcache_t *sc = lua_newuserdatauv(L, sizeof *sc, 0);
  memset(sc, 0, sizeof *sc);
  lua_createtable(L, STRCACHE, 0);
  int tbl = lua_gettop(L);
  /* A filter sees one row table per batch, refilled for every row: a
   * fresh table per row costs half of the filter's time (bench/RESULTS.md).
   * Its metatable makes adding a key an error, so that nothing a filter
   * writes can leak into the next row; the guide says to copy a row that
   * must outlive the call. map and flat_map get a fresh table per row, as
   * they may return or emit it. */
  int view = 0;
  if (!r->map) {
    lua_createtable(L, 0, (int)nf);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, udf_readonly);
    lua_setfield(L, -2, "__newindex");
    lua_setmetatable(L, -2);
    view = lua_gettop(L);
  }
  for (uint32_t i = 0; i < in->nrows; i++) {
    r->row = i;
    lua_pushvalue(L, 2);
    if (view)
      lua_pushvalue(L, view);
    else
      lua_createtable(L, 0, (int)nf);
    for (uint32_t c = 0; c < nf; c++) {
      const tide_col_t *col = &in->cols[c];
      if (tide_col_is_null(col, i)) {
        if (view) {
          lua_pushvalue(L, keys + (int)c);
          lua_pushnil(L);
          lua_rawset(L, -3);
        }
        continue;
      }
      lua_pushvalue(L, keys + (int)c);
      if (col->type == TIDE_T_STRING) {
        size_t n;
        const char *p = tide_col_str(col, i, &n);
        push_cached_str(L, sc, tbl, p, n);
      } else {
        tide_l_push_value(L, col, i);
      }
      lua_rawset(L, -3);
    }
    if (!r->map) {
      lua_call(L, 1, 1);
      if (lua_toboolean(L, -1)) r->rows[r->n++] = i;
      lua_pop(L, 1);
    } else if (!r->flat) {
      lua_call(L, 1, 1);
      if (!lua_isnil(L, -1)) udf_put(L, r, -1);
      lua_pop(L, 1);
    } else {
      lua_pushvalue(L, 4);
      lua_call(L, 2, 0);
      lua_Integer k = (lua_Integer)lua_rawlen(L, 3);
      for (lua_Integer j = 1; j <= k; j++) {
        lua_rawgeti(L, 3, j);
        udf_put(L, r, -1);
        lua_pop(L, 1);
        lua_pushnil(L);
        lua_rawseti(L, 3, j);
      }
    }
  }
  return 0;
}

/* Run the loop over r->in under the handler (fn: the function's stack
 * index); 1 when done, else push nil and the message ("row N {json}: ...")
 * and return 0. x->buf is used for the message. */
static int udf_run(lua_State *L, udf_run_t *r, int fn, const char *what, tide_l_scratch_t *x) {
  int top = lua_gettop(L);
  lua_pushcfunction(L, traceback);
  lua_pushcfunction(L, udf_loop);
  lua_pushlightuserdata(L, r);
  lua_pushvalue(L, fn);
  int nargs = 2;
  if (r->flat) {
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_pushcclosure(L, udf_emit, 1);
    nargs = 4;
  }
  int status = lua_pcall(L, nargs, 0, top + 1);
  if (status == LUA_OK) {
    lua_settop(L, top);
    return 1;
  }
  row_text(r->in, r->row, &x->buf);
  const char *row = x->buf.data ? x->buf.data : "";
  if (lua_type(L, -1) == LUA_TLIGHTUSERDATA)
    lua_pushfstring(L, "row %I %s: %s returned a row that does not fit its schema: %s", r->first + r->row + 1, row,
                    what, r->err.msg);
  else
    lua_pushfstring(L, "row %I %s: %s", r->first + r->row + 1, row, lua_tostring(L, -1));
  lua_replace(L, top + 1);
  lua_settop(L, top + 1);
  lua_pushnil(L);
  lua_insert(L, -2);
  return 0;
}

int tide_l_udf_select(lua_State *L, const tide_batch_t *in, int fn, lua_Integer first, tide_l_scratch_t *x, int slot,
                      uint32_t *n) {
  udf_run_t r;
  memset(&r, 0, sizeof r);
  r.in = in;
  r.first = first;
  r.rows = x->p[slot] = malloc((in->nrows ? in->nrows : 1) * sizeof *r.rows);
  if (!r.rows) return luaL_error(L, "out of memory");
  if (!udf_run(L, &r, fn, "filter", x)) return 0;
  *n = r.n;
  return 1;
}

/* core.udf_filter(batch, fn [, first]) -> Batch of the rows for which
 * fn(row) is truthy | nil, "row N {...}: error with traceback"; first is
 * the number of input rows before this batch, so that N counts from the
 * input's start. */
static int l_udf_filter(lua_State *L) {
  lua_settop(L, 3); /* the scratch below must not take the optional slot */
  tide_batch_t *in = tide_l_check_batch(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  uint32_t n;
  if (!tide_l_udf_select(L, in, 2, luaL_optinteger(L, 3, 0), x, 0, &n)) return 2;
  tide_batch_t *out;
  int rc = tide_batch_gather(in, x->p[0], n, &out);
  if (rc) return tide_l_fail(L, rc, NULL, NULL);
  tide_l_scratch_free(x);
  tide_l_push_batch(L, out);
  return 1;
}

/* core.udf_map(batch, fn, schema, flat [, what [, first]]) -> Batch | nil, msg
 * map: fn(row) returns a row (or nil to drop it). flat: fn(row, emit) calls
 * emit(row) any number of times (returned values are ignored). Every row
 * produced must fit the schema; a row that does not fails the call with the
 * input row and the field. */
static int l_udf_map(lua_State *L) {
  lua_settop(L, 6); /* the scratch below must not take the optional slots */
  tide_batch_t *in = tide_l_check_batch(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  tide_schema_t *s = tide_l_check_schema(L, 3);
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  tide_batch_t *out = tide_batch_new(s, in->nrows ? in->nrows : 1);
  if (!out) return luaL_error(L, "out of memory");
  tide_l_push_batch(L, out); /* owned by Lua from here */
  int out_idx = lua_gettop(L);
  udf_run_t r;
  memset(&r, 0, sizeof r);
  r.in = in;
  r.map = 1;
  r.flat = lua_toboolean(L, 4);
  r.out = out;
  const char *what = luaL_optstring(L, 5, r.flat ? "flat_map" : "map");
  r.first = luaL_optinteger(L, 6, 0);
  r.jb = &tide_l_push_scratch(L)->buf;
  if (!udf_run(L, &r, 2, what, x)) return 2;
  lua_pushvalue(L, out_idx);
  return 1;
}

/* ------------------------------------------------------------- sources --- */

/* core.rows_batch(schema, rows [, ignore_unknown]) -> Batch | nil, msg */
static int l_rows_batch(lua_State *L) {
  tide_schema_t *s = tide_l_check_schema(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int flags = lua_toboolean(L, 3) ? TIDE_JSON_IGNORE_UNKNOWN : 0;
  tide_batch_t *b = tide_batch_new(s, (uint32_t)lua_rawlen(L, 2) + 1);
  if (!b) return luaL_error(L, "out of memory");
  tide_l_push_batch(L, b);
  tide_err_t err = {0, ""};
  int rc = tide_l_rows_to_batch(L, 2, b, flags, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  return 1;
}

int tide_l_udf_open(lua_State *L) {
  static const luaL_Reg fns[] = {
      {"udf_filter", l_udf_filter}, {"udf_map", l_udf_map}, {"rows_batch", l_rows_batch}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  return 0;
}
