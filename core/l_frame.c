/*
 * l_frame.c: the Lua binding of the operators that frames are built from
 * (tide.Schema, tide.Expr, tide.Agg, tide.Join, and batch-to-batch
 * functions). lua/tide/frame.lua plans with them; every operator takes
 * whole batches and returns new ones, so the per-row work stays in C.
 *
 *   core.schema(ddl|array)               -> Schema | nil, msg
 *   core.expr(text, schema, allow_agg)   -> Expr | nil, msg, ENAME
 *   core.project(batch, {Expr..}, schema)-> Batch | nil, msg
 *   core.where(batch, Expr)              -> Batch | nil, msg
 *   core.window_expand(batch, col, size, slide, start, schema) -> Batch
 *   core.agg(key_schema, {spec..})       -> Agg | nil, msg
 *   core.join(batch, {cols})             -> Join | nil, msg
 *   core.sort(batch, {{col=, desc=, nulls_first=}..}) -> Batch
 *   core.concat({Batch..}, schema)       -> Batch
 *   core.slice(batch, offset, count)     -> Batch
 *   agg:push(batch, keys, args [, window [, filter [, first [, late [, want_new [, time_col]]]]]])
 *                          -> true, info | nil, msg, ENAME
 *   agg:result(), agg:groups(), agg:bytes()
 *   agg:changes()          -> Batch, {sid..}, {record..} | nil, msg, ENAME
 *   agg:changed_rows()     -> Batch, n | nil, msg, ENAME
 *   agg:take_changes()     -> change set (l_ckpt.h) | nil, msg, ENAME
 *   agg:clear_changes()
 *   agg:restore(sid, record) -> true | nil, msg, ENAME
 *   agg:evict(col, bound [, want_rows]) -> Batch, {sid..} (want_rows false: n) | nil, msg, ENAME
 *   agg:lookup(keys)       -> {sid | false ..}
 *   agg:merge(dst_sid, src_sid) -> true | nil, msg, ENAME
 *   agg:remove({sid..})    -> Batch, {sid..} | nil, msg, ENAME
 *     Streaming state (agg.h): every group has a state id (sid, an integer
 *     >= 1 that no other group of this aggregation's life gets). changes()
 *     gives the groups that push() created or updated since the last
 *     clear_changes(), in first-seen order: their result rows, their sids
 *     and their state records (strings of bytes, docs/FORMAT.md), without
 *     clearing; changed_rows() just their rows; take_changes() what a
 *     commit writes: a delete per sid evict/remove took out since the last
 *     clear_changes(), then a put (sid -> record) per changed group.
 *     restore(sid, record) adds the group a record describes (not
 *     as a change); a record that is damaged, of another format version or
 *     of another plan gives nil, msg, "ECORRUPT" | "EFORMAT" | "ESCHEMA".
 *     evict(col, bound) removes the groups whose column `col` (a 1-based
 *     index or a name over the result schema; a key or an aggregate of int
 *     or timestamp result) is not NULL and <= bound, returning their final
 *     rows and sids; the same key seen later starts a fresh group.
 *     lookup/merge/remove work on given groups (session windows): the
 *     sids of keys, folding one group into another, removing by sid.
 *   core.udf_filter(batch, fn [, first]) -> Batch | nil, msg
 *   core.udf_map(batch, fn, schema, flat [, what [, first]]) -> Batch | nil, msg
 *   core.rows_batch(schema, rows)        -> Batch | nil, msg
 *   core.decode(format, schema, text, final, opts) -> Batch, used, lines, bad, {lines} [, {dead}]
 *   core.csv_encode({Batch..} [, {header =, sep =}]) -> string
 *   core.rate_batch(schema, start, rows_per_second, lo, hi) -> Batch | nil, msg
 *   core.glob(pattern)                   -> {paths} | nil, msg
 *
 * Column indexes are 1-based on the Lua side. Failures of the data (a UDF
 * that raises, a row that breaks a declared schema) return nil and a
 * message naming the row; misuse raises.
 *
 * C memory held across calls that can raise (scratch vectors, partial
 * results) lives in userdata with __gc, so a Lua error frees it.
 */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <lauxlib.h>
#include <lua.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "ckpt.h"
#include "csv.h"
#include "decode.h"
#include "rate.h"
#include "expr.h"
#include "join.h"
#include "json.h"
#include "l_ckpt.h"
#include "l_tide.h"
#include "sort.h"
#include "vec.h"
#include "window.h"

#define SCHEMA_MT "tide.Schema"
#define EXPR_MT "tide.Expr"
#define AGG_MT "tide.Agg"
#define JOIN_MT "tide.Join"
#define SCRATCH_MT "tide.FrameScratch"
#define DECODER_MT "tide.Decoder"

/* ------------------------------------------------------------- scratch --- */

/* GC-owned scratch: arrays and columns an operator builds before it can
 * hand them over. Freed by __gc if anything raises in between. */
typedef struct scratch {
  void *p[8];
  tide_col_t *cols;
  uint32_t ncols;
  tide_buf_t buf;
} scratch_t;

/* Free what the scratch holds; it stays usable and empty. Successful calls
 * free their scratch at once: the collector, which does not see this C
 * memory, may run much later, and the heap would keep growing. */
static void scratch_free(scratch_t *s);

static int scratch_gc(lua_State *L) {
  scratch_free(lua_touserdata(L, 1));
  return 0;
}

static void scratch_free(scratch_t *s) {
  for (int i = 0; i < 8; i++) {
    free(s->p[i]);
    s->p[i] = NULL;
  }
  for (uint32_t i = 0; s->cols && i < s->ncols; i++) tide_col_free(&s->cols[i]);
  free(s->cols);
  s->cols = NULL;
  s->ncols = 0;
  tide_buf_free(&s->buf);
}

static scratch_t *push_scratch(lua_State *L) {
  scratch_t *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, SCRATCH_MT);
  return s;
}

/* Columns for an output batch, zeroed, owned by the scratch until adopted. */
static tide_col_t *scratch_cols(lua_State *L, scratch_t *s, uint32_t n) {
  s->cols = calloc(n ? n : 1, sizeof *s->cols);
  if (!s->cols) luaL_error(L, "out of memory");
  s->ncols = n;
  return s->cols;
}

/* Hand the scratch's columns to a new batch of schema sc and push it. */
static void push_adopted(lua_State *L, scratch_t *s, tide_schema_t *sc, uint32_t nrows) {
  tide_col_t *cols = s->cols;
  s->cols = NULL;
  s->ncols = 0;
  tide_batch_t *b = tide_batch_adopt(sc, nrows, cols); /* frees the buffers on failure */
  free(cols);
  if (!b) luaL_error(L, "out of memory");
  tide_l_push_batch(L, b);
}

static int fail(lua_State *L, int rc, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg && *msg ? msg : tide_strerror(rc));
  lua_pushstring(L, tide_errname(rc));
  return 3;
}

/* -------------------------------------------------------------- schema --- */

typedef struct {
  tide_schema_t *s;
} l_schema_t;

static tide_schema_t *check_schema(lua_State *L, int idx) {
  l_schema_t *u = luaL_checkudata(L, idx, SCHEMA_MT);
  return u->s;
}

static int schema_gc(lua_State *L) {
  l_schema_t *u = luaL_checkudata(L, 1, SCHEMA_MT);
  tide_schema_unref(u->s);
  u->s = NULL;
  return 0;
}

static int l_schema(lua_State *L) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  l_schema_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->s = NULL;
  luaL_setmetatable(L, SCHEMA_MT);
  int rc = tide_l_schema_from_lua(L, 1, &s, &err);
  if (rc) return fail(L, rc, err.msg);
  u->s = s;
  return 1;
}

static int schema_fields(lua_State *L) {
  tide_l_push_schema(L, check_schema(L, 1));
  return 1;
}

static int schema_ddl(lua_State *L) {
  tide_schema_t *s = check_schema(L, 1);
  scratch_t *x = push_scratch(L);
  if (tide_schema_to_ddl(s, &x->buf)) return luaL_error(L, "out of memory");
  lua_pushlstring(L, x->buf.data ? x->buf.data : "", x->buf.len);
  return 1;
}

static int schema_len(lua_State *L) {
  lua_pushinteger(L, check_schema(L, 1)->nfields);
  return 1;
}

/* ---------------------------------------------------------------- expr --- */

typedef struct {
  tide_expr_t *e;
  int owned; /* 0: a child of the Expr in the user value */
} l_expr_t;

static tide_expr_t *check_expr(lua_State *L, int idx) {
  l_expr_t *u = luaL_checkudata(L, idx, EXPR_MT);
  if (!u->e) luaL_error(L, "attempt to use a freed tide.Expr");
  return u->e;
}

static int expr_gc(lua_State *L) {
  l_expr_t *u = luaL_checkudata(L, 1, EXPR_MT);
  if (u->owned) tide_expr_free(u->e);
  u->e = NULL;
  return 0;
}

/* core.expr(text, schema, allow_agg) */
static int l_expr(lua_State *L) {
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  tide_schema_t *s = check_schema(L, 2);
  int flags = lua_toboolean(L, 3) ? TIDE_EXPR_AGG : 0;
  l_expr_t *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->e = NULL;
  u->owned = 1;
  luaL_setmetatable(L, EXPR_MT);
  tide_err_t err = {0, ""};
  int rc = tide_expr_compile(text, len, s, flags, &u->e, &err);
  if (rc) return fail(L, rc, err.msg);
  return 1;
}

static int expr_type(lua_State *L) {
  lua_pushstring(L, tide_type_name(tide_expr_type(check_expr(L, 1))));
  return 1;
}

static int expr_nullable(lua_State *L) {
  lua_pushboolean(L, tide_expr_nullable(check_expr(L, 1)));
  return 1;
}

static int expr_name(lua_State *L) {
  lua_pushstring(L, tide_expr_name(check_expr(L, 1)));
  return 1;
}

static int expr_text(lua_State *L) {
  lua_pushstring(L, tide_expr_text(check_expr(L, 1)));
  return 1;
}

static int expr_column(lua_State *L) {
  int c = tide_expr_column(check_expr(L, 1));
  if (c < 0) lua_pushnil(L);
  else lua_pushinteger(L, c + 1);
  return 1;
}

static const char *const agg_names[] = {NULL, "count_star", "count", "sum", "min", "max", "avg", "first", "last",
                                        "count_distinct"};

static int expr_agg(lua_State *L) {
  tide_agg_kind_t k = tide_expr_agg(check_expr(L, 1));
  if (k == TIDE_AGG_NONE || (unsigned)k >= sizeof agg_names / sizeof agg_names[0]) lua_pushnil(L);
  else lua_pushstring(L, agg_names[k]);
  return 1;
}

/* expr:arg() -> the argument of an aggregate, a child Expr kept valid by a
 * reference to its parent; nil for count(*) and non-aggregates. */
static int expr_arg(lua_State *L) {
  const tide_expr_t *a = tide_expr_agg_arg(check_expr(L, 1));
  if (!a) {
    lua_pushnil(L);
    return 1;
  }
  l_expr_t *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->e = (tide_expr_t *)a;
  u->owned = 0;
  luaL_setmetatable(L, EXPR_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* --------------------------------------------------------- project/where --- */

/* core.project(batch, {Expr...}, schema) -> Batch: one column per
 * expression, of the schema's types. */
static int l_project(lua_State *L) {
  tide_batch_t *in = tide_l_check_batch(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  tide_schema_t *s = check_schema(L, 3);
  uint32_t n = (uint32_t)lua_rawlen(L, 2);
  if (n != s->nfields) return luaL_error(L, "project: %u expressions for a schema of %u fields", n, s->nfields);
  scratch_t *x = push_scratch(L);
  tide_col_t *cols = scratch_cols(L, x, n);
  tide_err_t err = {0, ""};
  for (uint32_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, i + 1);
    tide_expr_t *e = check_expr(L, -1);
    lua_pop(L, 1);
    if (tide_expr_type(e) != s->fields[i].type)
      return luaL_error(L, "project: expression %u is %s, its field %s", i + 1, tide_type_name(tide_expr_type(e)),
                        tide_type_name(s->fields[i].type));
    int c = tide_expr_column(e), rc;
    if (c >= 0 && (uint32_t)c < in->schema->nfields) rc = tide_col_copy(&in->cols[c], in->nrows, &cols[i]);
    else rc = tide_expr_eval(e, in, &cols[i], &err);
    if (rc) return fail(L, rc, err.msg);
  }
  push_adopted(L, x, s, in->nrows);
  return 1;
}

/* core.where(batch, Expr) -> Batch of the rows where it is TRUE. */
static int l_where(lua_State *L) {
  tide_batch_t *in = tide_l_check_batch(L, 1);
  tide_expr_t *e = check_expr(L, 2);
  scratch_t *x = push_scratch(L);
  uint32_t *rows = x->p[0] = malloc((in->nrows ? in->nrows : 1) * sizeof *rows), n = 0;
  if (!rows) return luaL_error(L, "out of memory");
  tide_err_t err = {0, ""};
  int rc = tide_expr_select(e, in, rows, &n, &err);
  if (rc) return fail(L, rc, err.msg);
  tide_batch_t *out;
  if ((rc = tide_batch_gather(in, rows, n, &out))) return fail(L, rc, NULL);
  scratch_free(x);
  tide_l_push_batch(L, out);
  return 1;
}

/* ------------------------------------------------------------- windows --- */

/* core.window_expand(batch, ts_col, size, slide, start, schema) -> Batch
 * of window_start, window_end, then every input column, one row per (row,
 * window). */
static int l_window_expand(lua_State *L) {
  tide_batch_t *in = tide_l_check_batch(L, 1);
  lua_Integer col = luaL_checkinteger(L, 2);
  tide_window_t w = {luaL_checkinteger(L, 3), luaL_checkinteger(L, 4), luaL_checkinteger(L, 5)};
  tide_schema_t *s = check_schema(L, 6);
  luaL_argcheck(L, col >= 1 && (uint64_t)col <= in->schema->nfields, 2, "no such column");
  luaL_argcheck(L, s->nfields == in->schema->nfields + 2, 6, "schema must be window_start, window_end + input");
  tide_err_t err = {0, ""};
  int rc = tide_window_check(&w, &err);
  if (rc) return luaL_error(L, "%s", err.msg);
  scratch_t *x = push_scratch(L);
  uint32_t *rows = NULL, count = 0;
  int64_t *starts = NULL;
  rc = tide_window_assign(&w, &in->cols[col - 1], in->nrows, &rows, &starts, &count);
  x->p[0] = rows;
  x->p[1] = starts;
  if (rc) return fail(L, rc, NULL);
  tide_col_t *cols = scratch_cols(L, x, s->nfields);
  if ((rc = tide_col_init(&cols[0], TIDE_T_TIMESTAMP, count)) || (rc = tide_col_init(&cols[1], TIDE_T_TIMESTAMP, count)))
    return fail(L, rc, NULL);
  int64_t *ws = cols[0].values, *we = cols[1].values;
  for (uint32_t k = 0; k < count; k++) {
    ws[k] = starts[k];
    we[k] = starts[k] + w.size;
  }
  for (uint32_t c = 0; c < in->schema->nfields; c++)
    if ((rc = tide_col_gather(&in->cols[c], rows, count, &cols[c + 2]))) return fail(L, rc, NULL);
  push_adopted(L, x, s, count);
  scratch_free(x);
  return 1;
}

/* A UDF run over one batch (the loop is in the UDF section below). */
typedef struct udf_run {
  const tide_batch_t *in;
  uint32_t row;          /* the row being processed */
  lua_Integer first;     /* rows of the input before this batch (messages count from the input's start) */
  int flat, map;         /* udf_map: flat_map or map; else a filter */
  uint32_t *rows, n;     /* filter: the rows kept */
  tide_batch_t *out;     /* map: the output */
  tide_buf_t *jb;        /* map: scratch for json values */
  tide_err_t err;        /* map: why a returned row does not fit */
} udf_run_t;

static int udf_run(lua_State *L, udf_run_t *r, int fn, const char *what, scratch_t *x);

/* ----------------------------------------------------------------- agg --- */

typedef struct {
  tide_agg_t *a;
  /* the sids evict/remove took out since the last clear_changes: the
   * deletes of take_changes */
  uint64_t *gone;
  size_t ngone, capgone;
} l_agg_t;

static tide_agg_t *check_agg(lua_State *L, int idx) {
  l_agg_t *u = luaL_checkudata(L, idx, AGG_MT);
  if (!u->a) luaL_error(L, "attempt to use a freed tide.Agg");
  return u->a;
}

static int agg_gc(lua_State *L) {
  l_agg_t *u = luaL_checkudata(L, 1, AGG_MT);
  tide_agg_free(u->a);
  u->a = NULL;
  free(u->gone);
  u->gone = NULL;
  u->ngone = u->capgone = 0;
  return 0;
}

/* Remember removed sids for take_changes; 0 or -ENOMEM (nothing kept). */
static int note_gone(l_agg_t *u, const uint64_t *sids, uint32_t n) {
  if (u->capgone - u->ngone < n) {
    size_t cap = u->capgone ? u->capgone : 256;
    while (cap - u->ngone < n) cap *= 2;
    uint64_t *p = realloc(u->gone, cap * sizeof *p);
    if (!p) return -ENOMEM;
    u->gone = p;
    u->capgone = cap;
  }
  if (n) memcpy(u->gone + u->ngone, sids, (size_t)n * sizeof *sids);
  u->ngone += n;
  return 0;
}

static const char *const type_names[] = {"bool", "int", "double", "string", "timestamp", "json", NULL};

/* core.agg(key_schema, { {kind=, arg_type=, name=}, ... }) -> Agg | nil, msg */
static int l_agg(lua_State *L) {
  tide_schema_t *keys = check_schema(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  uint32_t n = (uint32_t)lua_rawlen(L, 2);
  scratch_t *x = push_scratch(L);
  tide_agg_spec_t *specs = x->p[0] = calloc(n ? n : 1, sizeof *specs);
  if (!specs) return luaL_error(L, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, i + 1);
    lua_getfield(L, -1, "kind");
    int k = luaL_checkoption(L, -1, NULL, agg_names + 1);
    specs[i].kind = (tide_agg_kind_t)(k + 1);
    lua_getfield(L, -2, "arg_type");
    if (specs[i].kind != TIDE_AGG_COUNT_STAR)
      specs[i].arg_type = (tide_type_t)(luaL_checkoption(L, -1, NULL, type_names) + 1);
    lua_getfield(L, -3, "name");
    specs[i].name = luaL_checkstring(L, -1); /* kept alive by the specs table */
    lua_pop(L, 4);
  }
  l_agg_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, AGG_MT);
  tide_err_t err = {0, ""};
  int rc = tide_agg_new(keys, specs, n, &u->a, &err);
  if (rc) return fail(L, rc, err.msg);
  return 1;
}

/* agg:push(batch, keys, args [, window [, filter [, first [, late [, want_new [, time_col]]]]]]): the whole grouping
 * step of one input batch in C, with no intermediate batch:
 *   keys    array, one per key column of the aggregation: an Expr over the
 *           batch, or the string "window_start" / "window_end"
 *   args    array, one per aggregate: an Expr, or false for count(*)
 *   window  {col = (1-based timestamp column), size =, slide =, start =}
 *   filter  an Expr, or a Lua function(row): only the rows where it is
 *           TRUE (truthy) count: a `where` or `filter` fused into the
 *           aggregation; first = input rows before this batch, for messages
 *   late    {col = (1-based timestamp/int column), bound = ms}: the
 *           (row, window) pairs at or below the bound are left out
 *           (SEMANTICS.md s.3): by the window's end when the window is over
 *           col, else by the row's value there (NULL is never late)
 *   want_new  true: report the rows that created a group
 *   time_col  a 1-based timestamp/int column: also report the count, min,
 *           max and sum of its non-NULL values over the rows the filter
 *           kept (late ones included): a watermark between the filter and
 *           the aggregation, fused into it, needs them
 * Returns true and info = {pushed = pairs aggregated, late_pairs =,
 * late_groups = distinct keys (window included) among the late pairs,
 * lost = nil or a Batch of the input rows whose every pair was late,
 * new = (want_new) a Batch of the input rows that created a group,
 * time_count, time_min, time_max, time_sum (with time_col)}; the
 * batches have the input's schema and keep its row order.
 * Keys and arguments that are bare columns are read in place; others are
 * evaluated into temporary columns. A filter gathers only the columns the
 * aggregation reads. With a window, each row is repeated once per window it
 * belongs to (a tumbling window needs no repeat). */
/* Raise on argument arg unless col (1-based) is a timestamp or int column
 * of s; `what` names it in the message. */
static void check_time_col(lua_State *L, int arg, const tide_schema_t *s, lua_Integer col, const char *what) {
  if (col < 1 || col > (lua_Integer)s->nfields)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s %I does not exist (the batch has %d columns)", what, col,
                                          (int)s->nfields));
  tide_type_t t = s->fields[col - 1].type;
  if (t != TIDE_T_TIMESTAMP && t != TIDE_T_INT)
    luaL_argerror(L, arg, lua_pushfstring(L, "%s %I ('%s') is %s, expected timestamp or int", what, col,
                                          s->fields[col - 1].name, tide_type_name(t)));
}

static int agg_push(lua_State *L) {
  tide_agg_t *a = check_agg(L, 1);
  tide_batch_t *in = tide_l_check_batch(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  tide_schema_t *out = tide_agg_schema(a);
  uint32_t nk = (uint32_t)lua_rawlen(L, 3), na = (uint32_t)lua_rawlen(L, 4), nf = in->schema->nfields;
  if (nk + na != out->nfields) return luaL_error(L, "agg:push: %u keys and %u aggregates for %u columns", nk, na, out->nfields);
  tide_window_t w = {0, 0, 0};
  lua_Integer wcol = 0;
  if (!lua_isnoneornil(L, 5)) {
    luaL_checktype(L, 5, LUA_TTABLE);
    lua_getfield(L, 5, "col");
    wcol = luaL_checkinteger(L, -1);
    lua_getfield(L, 5, "size");
    w.size = luaL_checkinteger(L, -1);
    lua_getfield(L, 5, "slide");
    w.slide = luaL_checkinteger(L, -1);
    lua_getfield(L, 5, "start");
    w.start = luaL_checkinteger(L, -1);
    lua_pop(L, 4);
    if (wcol < 1 || (uint64_t)wcol > nf) return luaL_error(L, "agg:push: bad window column");
  }
  int ftype = lua_type(L, 6);
  tide_expr_t *filter = ftype == LUA_TNIL || ftype == LUA_TNONE || ftype == LUA_TFUNCTION ? NULL : check_expr(L, 6);
  int filter_fn = ftype == LUA_TFUNCTION;
  lua_Integer first = luaL_optinteger(L, 7, 0);
  lua_Integer lcol = 0, lbound = 0;
  if (!lua_isnoneornil(L, 8)) {
    luaL_checktype(L, 8, LUA_TTABLE);
    lua_getfield(L, 8, "col");
    lua_getfield(L, 8, "bound");
    if (!lua_isinteger(L, -2)) return luaL_argerror(L, 8, "late.col must be an integer (a 1-based column)");
    if (!lua_isinteger(L, -1)) return luaL_argerror(L, 8, "late.bound must be an integer (milliseconds)");
    lcol = lua_tointeger(L, -2);
    lbound = lua_tointeger(L, -1);
    lua_pop(L, 2);
    check_time_col(L, 8, in->schema, lcol, "late.col");
  }
  int want_new = lua_toboolean(L, 9);
  lua_Integer scol = luaL_optinteger(L, 10, 0);
  if (scol) check_time_col(L, 10, in->schema, scol, "column");
  /* x owns the arrays (p[0] rows, p[1] starts, p[2] key columns, p[3]
   * argument pointers, p[4] selected rows, p[5] the filtered view's
   * columns, p[6] per-pair late flags, p[7] per-pair created flags, then
   * per-input-row marks); t owns every temporary column: evaluated keys and arguments,
   * the two window columns, then the filtered columns. The GC frees both
   * if anything raises; success frees them at once. */
  scratch_t *x = push_scratch(L);
  scratch_t *t = push_scratch(L);
  t->cols = calloc(nk + na + 2 + nf, sizeof *t->cols);
  tide_col_t *keycols = x->p[2] = calloc(nk ? nk : 1, sizeof *keycols);
  const tide_col_t **argp = calloc(na ? na : 1, sizeof *argp);
  x->p[3] = (void *)argp;
  if (!t->cols || !keycols || !argp) return luaL_error(L, "out of memory");
  t->ncols = nk + na + 2 + nf;
  tide_col_t *wcols = &t->cols[nk + na], *fcols = &t->cols[nk + na + 2];
  tide_err_t err = {0, ""};
  int rc = 0;
  const tide_batch_t *src = in;
  tide_batch_t view = {0}; /* the filtered rows: a view, owning nothing */
  const uint32_t *viewrow = NULL; /* the input row of each view row, when filtered */
  if (filter || filter_fn) {
    uint32_t *sel = x->p[4] = malloc((in->nrows ? in->nrows : 1) * sizeof *sel), ns = 0;
    tide_col_t *vcols = x->p[5] = calloc(nf ? nf : 1, sizeof *vcols);
    if (!sel || !vcols) return luaL_error(L, "out of memory");
    if (filter) {
      if ((rc = tide_expr_select(filter, in, sel, &ns, &err))) return fail(L, rc, err.msg);
    } else { /* a Lua filter: the rows for which fn(row) is truthy */
      udf_run_t r;
      memset(&r, 0, sizeof r);
      r.in = in;
      r.first = first;
      r.rows = sel;
      if (!udf_run(L, &r, 6, "filter", x)) return 2;
      ns = r.n;
    }
    if (ns < in->nrows) {
      /* which columns will be read: bare-column keys and arguments and the
       * window's column; any other expression may read anything */
      uint8_t *need = calloc(nf ? nf : 1, 1);
      int all = 0;
      if (!need) return luaL_error(L, "out of memory");
      if (wcol) need[wcol - 1] = 1;
      if (lcol) need[lcol - 1] = 1;
      if (scol) need[scol - 1] = 1;
      for (uint32_t i = 0; i < nk + na; i++) {
        lua_rawgeti(L, i < nk ? 3 : 4, i < nk ? i + 1 : i - nk + 1);
        if (lua_type(L, -1) == LUA_TUSERDATA) {
          int c = tide_expr_column(check_expr(L, -1));
          if (c >= 0) need[c] = 1;
          else all = 1;
        }
        lua_pop(L, 1);
      }
      for (uint32_t c = 0; c < nf && !rc; c++)
        if (all || need[c]) {
          rc = tide_col_gather(&in->cols[c], sel, ns, &fcols[c]);
          vcols[c] = fcols[c];
        }
      free(need);
      if (rc) return fail(L, rc, NULL);
      view.schema = in->schema;
      view.nrows = view.cap = ns;
      view.cols = vcols;
      src = &view;
      viewrow = sel;
    }
  }
  /* the event-time statistics of the rows the filter kept (a watermark
   * between the filter and the aggregation sees just those) */
  uint32_t ts_n = 0;
  int64_t ts_lo = 0, ts_hi = 0;
  double ts_sum = 0;
  if (scol) tide_col_time_stats(&src->cols[scol - 1], src->nrows, &ts_n, &ts_lo, &ts_hi, &ts_sum);
  uint32_t count = src->nrows;
  const uint32_t *pairrow = NULL; /* the view row of each pair, with a window */
  if (wcol) {
    uint32_t *rows = NULL;
    int64_t *starts = NULL;
    if ((rc = tide_window_check(&w, &err))) return luaL_error(L, "%s", err.msg);
    rc = tide_window_assign(&w, &src->cols[wcol - 1], src->nrows, &rows, &starts, &count);
    x->p[0] = rows;
    x->p[1] = starts;
    if (rc) return fail(L, rc, NULL);
    pairrow = rows;
    int identity = count == src->nrows;
    for (uint32_t i = 0; identity && i < count; i++) identity = rows[i] == i;
    if (!identity) { /* sliding windows, or NULL times: repeat or drop rows */
      tide_batch_t *gathered;
      if (src != in) { /* the view: gather the columns it holds */
        tide_col_t *gcols = calloc(nf ? nf : 1, sizeof *gcols);
        if (!gcols) return luaL_error(L, "out of memory");
        for (uint32_t c = 0; c < nf && !rc; c++) /* a column the view left out is never read: zeros */
          rc = src->cols[c].values ? tide_col_gather(&src->cols[c], rows, count, &gcols[c])
                                   : tide_col_init(&gcols[c], in->schema->fields[c].type, count);
        if (rc) {
          for (uint32_t c = 0; c < nf; c++) tide_col_free(&gcols[c]);
          free(gcols);
          return fail(L, rc, NULL);
        }
        gathered = tide_batch_adopt(in->schema, count, gcols);
        free(gcols);
        if (!gathered) return luaL_error(L, "out of memory");
      } else if ((rc = tide_batch_gather(in, rows, count, &gathered))) {
        return fail(L, rc, NULL);
      }
      tide_l_push_batch(L, gathered); /* kept until this call returns */
      src = gathered;
    }
    if ((rc = tide_col_init(&wcols[0], TIDE_T_TIMESTAMP, count)) || (rc = tide_col_init(&wcols[1], TIDE_T_TIMESTAMP, count)))
      return fail(L, rc, NULL);
    int64_t *ws = wcols[0].values, *we = wcols[1].values;
    for (uint32_t k = 0; k < count; k++) {
      ws[k] = starts[k];
      we[k] = starts[k] + w.size;
    }
  }
  for (uint32_t i = 0; i < nk && !rc; i++) {
    lua_rawgeti(L, 3, i + 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      const char *k = lua_tostring(L, -1);
      if (!wcol) return luaL_error(L, "agg:push: a window key without a window");
      keycols[i] = strcmp(k, "window_start") ? wcols[1] : wcols[0];
    } else {
      tide_expr_t *e = check_expr(L, -1);
      int c = tide_expr_column(e);
      if (c >= 0) keycols[i] = src->cols[c];
      else if (!(rc = tide_expr_eval(e, src, &t->cols[i], &err))) keycols[i] = t->cols[i];
    }
    lua_pop(L, 1);
  }
  for (uint32_t i = 0; i < na && !rc; i++) {
    lua_rawgeti(L, 4, i + 1);
    if (lua_toboolean(L, -1)) {
      tide_expr_t *e = check_expr(L, -1);
      int c = tide_expr_column(e);
      if (c >= 0) argp[i] = &src->cols[c];
      else if (!(rc = tide_expr_eval(e, src, &t->cols[nk + i], &err))) argp[i] = &t->cols[nk + i];
    }
    lua_pop(L, 1);
  }
  if (rc) return fail(L, rc, err.msg);
  /* a view over the key columns: nothing owned, nothing freed */
  tide_schema_t *ks = tide_schema_new();
  if (!ks) return luaL_error(L, "out of memory");
  for (uint32_t i = 0; i < nk && !rc; i++)
    rc = tide_schema_add(ks, out->fields[i].name, out->fields[i].name_len, out->fields[i].type, 1, NULL, &err);
  tide_batch_t keys = {0};
  keys.schema = ks;
  keys.nrows = keys.cap = count;
  keys.cols = keycols;
  tide_agg_feed_t feed;
  memset(&feed, 0, sizeof feed);
  uint8_t *late = NULL, *made = NULL;
  if (!rc && lcol) { /* a window on the late column: its end decides; else the row's time */
    late = x->p[6] = malloc(count ? count : 1);
    if (!late) rc = -ENOMEM;
    else if (wcol == lcol) tide_agg_mark_late(NULL, wcols[1].values, count, lbound, late);
    else tide_agg_mark_late(&src->cols[lcol - 1], NULL, count, lbound, late);
    feed.late = late;
  }
  if (!rc && want_new && !(made = feed.created = x->p[7] = malloc(count ? count : 1))) rc = -ENOMEM;
  if (!rc) rc = tide_agg_update_ex(a, &keys, argp, &feed, &err);
  tide_schema_unref(ks);
  if (rc) return fail(L, rc, err.msg);
  /* back from pairs to input rows: per input row, bit 1 = a pair was
   * aggregated, 2 = a pair was late, 4 = a pair created a group */
  uint8_t *mark = NULL;
  if (late || made) {
    uint32_t nin = in->nrows;
    mark = calloc(nin ? nin : 1, 1);
    if (!mark) return luaL_error(L, "out of memory");
    free(x->p[1]); /* the window starts are read no more: the slot holds the marks */
    x->p[1] = mark;
    for (uint32_t k = 0; k < count; k++) {
      uint32_t r = pairrow ? pairrow[k] : k;
      if (viewrow) r = viewrow[r];
      mark[r] |= late && late[k] ? 2 : 1;
      if (made && made[k]) mark[r] |= 4;
    }
  }
  lua_pushboolean(L, 1);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, feed.pushed);
  lua_setfield(L, -2, "pushed");
  lua_pushinteger(L, feed.late_rows);
  lua_setfield(L, -2, "late_pairs");
  lua_pushinteger(L, feed.late_groups);
  lua_setfield(L, -2, "late_groups");
  if (scol) {
    lua_pushinteger(L, ts_n);
    lua_setfield(L, -2, "time_count");
    if (ts_n) {
      lua_pushinteger(L, (lua_Integer)ts_lo);
      lua_setfield(L, -2, "time_min");
      lua_pushinteger(L, (lua_Integer)ts_hi);
      lua_setfield(L, -2, "time_max");
    }
    lua_pushnumber(L, ts_sum);
    lua_setfield(L, -2, "time_sum");
  }
  for (int pass = 0; pass < 2 && mark; pass++) { /* 0: lost rows, 1: rows that created a group */
    if (pass == 0 && !feed.late_rows) continue;
    if (pass == 1 && !made) continue;
    uint32_t nin = in->nrows, m = 0;
    free(x->p[6 + pass]); /* the pair flags are folded into mark */
    uint32_t *pick = x->p[6 + pass] = malloc((nin ? nin : 1) * sizeof *pick);
    if (!pick) return luaL_error(L, "out of memory");
    for (uint32_t r = 0; r < nin; r++)
      if (pass ? mark[r] & 4 : (mark[r] & 3) == 2) pick[m++] = r;
    if (pass == 0 && !m) continue;
    tide_batch_t *b;
    if ((rc = tide_batch_gather(in, pick, m, &b))) return luaL_error(L, "agg:push: %s", tide_strerror(rc));
    tide_l_push_batch(L, b);
    lua_setfield(L, -2, pass ? "new" : "lost");
  }
  scratch_free(x);
  scratch_free(t);
  return 2;
}

static int agg_result(lua_State *L) {
  tide_agg_t *a = check_agg(L, 1);
  tide_batch_t *b;
  tide_err_t err = {0, ""};
  int rc = tide_agg_result(a, &b, &err);
  if (rc) return fail(L, rc, err.msg);
  tide_l_push_batch(L, b);
  return 1;
}

static int agg_groups(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)tide_agg_groups(check_agg(L, 1)));
  return 1;
}

static int agg_bytes(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)tide_agg_bytes(check_agg(L, 1)));
  return 1;
}

/* agg:changes() -> Batch, {sid..}, {record..}: the dirty groups' rows,
 * state ids and state records, in the same (first-seen) order. */
/* Push the dirty groups' rows; *gids and *n get the dirty set (valid
 * until the aggregation changes). Returns 0, or fail()'s count of pushed
 * failure values. */
static int push_dirty_rows(lua_State *L, tide_agg_t *a, const uint32_t **gids, uint32_t *n) {
  *n = tide_agg_dirty(a, gids);
  tide_err_t err = {0, ""};
  tide_batch_t *b;
  int rc = tide_agg_result_of(a, *gids, *n, &b, &err);
  if (rc) return fail(L, rc, err.msg);
  tide_l_push_batch(L, b);
  return 0;
}

static int agg_changes(lua_State *L) {
  tide_agg_t *a = check_agg(L, 1);
  const uint32_t *gids;
  uint32_t n;
  int nfail = push_dirty_rows(L, a, &gids, &n);
  if (nfail) return nfail;
  tide_err_t err = {0, ""};
  int rc;
  /* nothing below changes the aggregation, so gids stays valid */
  lua_createtable(L, (int)n, 0);
  for (uint32_t i = 0; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)tide_agg_sid(a, gids[i]));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  scratch_t *x = push_scratch(L); /* the record buffer, freed if a push raises */
  lua_createtable(L, (int)n, 0);
  for (uint32_t i = 0; i < n; i++) {
    x->buf.len = 0;
    if ((rc = tide_agg_encode(a, gids[i], &x->buf, &err))) return fail(L, rc, err.msg);
    lua_pushlstring(L, x->buf.data, x->buf.len);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  scratch_free(x);
  lua_remove(L, -2);
  return 3;
}

/* agg:changed_rows() -> Batch, n: the dirty groups' rows (as changes()
 * gives them) and their number, without sids or records: what a batch's
 * output needs (take_changes makes the records at commit time). */
static int agg_changed_rows(lua_State *L) {
  const uint32_t *gids;
  uint32_t n;
  int nfail = push_dirty_rows(L, check_agg(L, 1), &gids, &n);
  if (nfail) return nfail;
  lua_pushinteger(L, (lua_Integer)n);
  return 2;
}

static int cmp_u64(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return (a > b) - (a < b);
}

/* agg:take_changes() -> change set (core/l_ckpt.h): what a commit writes
 * for this aggregation since the last clear_changes: a delete per sid
 * evict/remove took out (ascending), then a put per dirty group, keyed by
 * its sid (8 bytes big-endian), its value the group's state record. Puts
 * come in gid order, which is sid order, so the checkpoint appends the new
 * groups. Clears nothing. */
static int agg_take_changes(lua_State *L) {
  l_agg_t *u = luaL_checkudata(L, 1, AGG_MT);
  tide_agg_t *a = check_agg(L, 1);
  const uint32_t *gids;
  uint32_t n = tide_agg_dirty(a, &gids);
  tide_l_changes_t *c = tide_l_push_changes(L);
  tide_err_t err = {0, ""};
  unsigned char key[8];
  int sorted = 1; /* evictions hand sids back in gid order: usually sorted already */
  for (size_t i = 1; i < u->ngone && sorted; i++) sorted = u->gone[i - 1] <= u->gone[i];
  if (!sorted) qsort(u->gone, u->ngone, sizeof *u->gone, cmp_u64);
  for (size_t i = 0; i < u->ngone; i++) {
    tide_ckpt_key_u64(key, u->gone[i]);
    if (tide_l_changes_del(c, key, 8)) return luaL_error(L, "out of memory");
  }
  if (tide_buf_reserve(&c->buf, (size_t)n * 64)) return luaL_error(L, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    size_t mark;
    tide_ckpt_key_u64(key, tide_agg_sid(a, gids[i]));
    if (tide_l_changes_put_begin(c, key, 8, &mark)) return luaL_error(L, "out of memory");
    int rc = tide_agg_encode(a, gids[i], &c->buf, &err);
    if (rc) {
      c->buf.len = mark;
      return fail(L, rc, err.msg);
    }
    tide_l_changes_put_end(c, mark);
  }
  return 1;
}

static int agg_clear_changes(lua_State *L) {
  l_agg_t *u = luaL_checkudata(L, 1, AGG_MT);
  tide_agg_clear_dirty(check_agg(L, 1));
  u->ngone = 0;
  return 0;
}

/* agg:restore(sid, record) -> true | nil, msg, ENAME */
static int agg_restore(lua_State *L) {
  tide_agg_t *a = check_agg(L, 1);
  lua_Integer sid = luaL_checkinteger(L, 2);
  size_t len;
  const char *p = luaL_checklstring(L, 3, &len);
  luaL_argcheck(L, sid >= 1, 2, "a state id is an integer >= 1");
  tide_err_t err = {0, ""};
  int rc = tide_agg_restore(a, (uint64_t)sid, p, len, &err);
  if (rc) return fail(L, rc, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

/* Push what evict/remove hand back: the rows batch and an array of the
 * sids (freed here: x owns them while the pushes may raise), or with
 * want_rows 0 their number; the sids are noted for take_changes. */
static int push_removed(lua_State *L, l_agg_t *u, scratch_t *x, tide_batch_t *b, uint64_t *sids, uint32_t n,
                        int want_rows) {
  x->p[0] = sids;
  if (b) tide_l_push_batch(L, b);
  if (note_gone(u, sids, n)) return luaL_error(L, "out of memory");
  if (!want_rows) {
    lua_pushinteger(L, (lua_Integer)n);
    scratch_free(x);
    return 1;
  }
  lua_createtable(L, (int)n, 0);
  for (uint32_t i = 0; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)sids[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  scratch_free(x);
  return 2;
}

/* agg:evict(col, bound [, want_rows]) -> Batch, {sid..}: the groups whose
 * value in column col (a 1-based index or a name, over the result schema:
 * a key, or an aggregate whose result is int or timestamp) is not NULL and
 * <= bound, removed. want_rows false: just the number removed (no rows
 * are built). */
static int agg_evict(lua_State *L) {
  l_agg_t *u = luaL_checkudata(L, 1, AGG_MT);
  tide_agg_t *a = check_agg(L, 1);
  const tide_schema_t *s = tide_agg_schema(a);
  uint32_t nf = s->nfields, col = nf;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer c = luaL_checkinteger(L, 2);
    if (c < 1 || c > (lua_Integer)nf)
      return luaL_argerror(L, 2, lua_pushfstring(L, "column %I does not exist (%d columns)", c, (int)nf));
    col = (uint32_t)c - 1;
  } else {
    size_t klen;
    const char *key = luaL_checklstring(L, 2, &klen);
    for (uint32_t k = 0; k < nf && col == nf; k++)
      if (s->fields[k].name_len == klen && !memcmp(s->fields[k].name, key, klen)) col = k;
    if (col == nf) {
      luaL_Buffer lb;
      luaL_buffinit(L, &lb);
      for (uint32_t k = 0; k < nf; k++) {
        if (k) luaL_addstring(&lb, ", ");
        luaL_addlstring(&lb, s->fields[k].name, s->fields[k].name_len);
      }
      luaL_pushresult(&lb);
      return luaL_argerror(L, 2, lua_pushfstring(L, "no column '%s' (columns: %s)", key, lua_tostring(L, -1)));
    }
  }
  lua_Integer bound = luaL_checkinteger(L, 3);
  tide_type_t t = s->fields[col].type;
  if (t != TIDE_T_INT && t != TIDE_T_TIMESTAMP)
    return luaL_argerror(L, 2, lua_pushfstring(L, "column '%s' is %s, expected int or timestamp",
                                              s->fields[col].name, tide_type_name(t)));
  int want_rows = lua_isnoneornil(L, 4) || lua_toboolean(L, 4);
  scratch_t *x = push_scratch(L); /* owns the sids until they are pushed */
  tide_batch_t *b = NULL;
  uint64_t *sids;
  uint32_t n;
  tide_err_t err = {0, ""};
  int rc = tide_agg_evict(a, col, (int64_t)bound, want_rows ? &b : NULL, &sids, &n, &err);
  if (rc) return fail(L, rc, err.msg);
  return push_removed(L, u, x, b, sids, n, want_rows);
}

/* The gid of the state id at stack index idx; raises naming `what` when
 * it is not an integer or no group has it. */
static uint32_t check_sid(lua_State *L, tide_agg_t *a, int idx, const char *fn, const char *what) {
  if (!lua_isinteger(L, idx))
    luaL_error(L, "agg:%s: %s must be a state id (an integer), got %s", fn, what, luaL_typename(L, idx));
  lua_Integer sid = lua_tointeger(L, idx);
  uint32_t gid;
  if (sid < 1 || !tide_agg_gid_of(a, (uint64_t)sid, &gid))
    luaL_error(L, "agg:%s: %s: no group has state id %I", fn, what, sid);
  return gid;
}

/* agg:lookup(keys) -> {sid | false ..}: per row of keys (a batch of the
 * key schema's types, in order), the state id of that key's group. */
static int agg_lookup(lua_State *L) {
  tide_agg_t *a = check_agg(L, 1);
  tide_batch_t *keys = tide_l_check_batch(L, 2);
  scratch_t *x = push_scratch(L);
  uint32_t n = keys->nrows, *gids = x->p[0] = malloc((n ? n : 1) * sizeof *gids);
  if (!gids) return luaL_error(L, "out of memory");
  tide_err_t err = {0, ""};
  int rc = tide_agg_lookup(a, keys, gids, &err);
  if (rc == TIDE_EINVAL) return luaL_argerror(L, 2, err.msg);
  if (rc) return fail(L, rc, err.msg);
  lua_createtable(L, (int)n, 0);
  for (uint32_t i = 0; i < n; i++) {
    if (gids[i] == UINT32_MAX) lua_pushboolean(L, 0);
    else lua_pushinteger(L, (lua_Integer)tide_agg_sid(a, gids[i]));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  scratch_free(x);
  return 1;
}

/* agg:merge(dst_sid, src_sid) -> true: fold src's states into dst's (dst
 * becomes a change; src stays as it is). */
static int agg_merge(lua_State *L) {
  tide_agg_t *a = check_agg(L, 1);
  uint32_t dst = check_sid(L, a, 2, "merge", "dst"), src = check_sid(L, a, 3, "merge", "src");
  if (dst == src) return luaL_error(L, "agg:merge: dst and src are the same group (state id %I)", lua_tointeger(L, 2));
  tide_err_t err = {0, ""};
  int rc = tide_agg_merge(a, dst, src, &err);
  if (rc) return fail(L, rc, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

/* agg:remove({sid..}) -> Batch, {sid..}: remove the groups, handing back
 * their result rows and state ids in gid (first-seen) order. */
static int agg_remove(lua_State *L) {
  l_agg_t *u = luaL_checkudata(L, 1, AGG_MT);
  tide_agg_t *a = check_agg(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  uint32_t n = (uint32_t)lua_rawlen(L, 2);
  scratch_t *x = push_scratch(L);
  uint32_t *gids = x->p[1] = malloc((n ? n : 1) * sizeof *gids);
  if (!gids) return luaL_error(L, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    char what[32];
    snprintf(what, sizeof what, "sids[%u]", i + 1);
    gids[i] = check_sid(L, a, -1, "remove", what);
    lua_pop(L, 1);
  }
  tide_batch_t *b;
  uint64_t *sids;
  uint32_t m;
  tide_err_t err = {0, ""};
  int rc = tide_agg_remove(a, gids, n, &b, &sids, &m, &err);
  if (rc) return fail(L, rc, err.msg);
  return push_removed(L, u, x, b, sids, m, 1);
}

/* ---------------------------------------------------------------- join --- */

typedef struct {
  tide_join_t *j;
  uint32_t nkeys;
} l_join_t;

static int join_gc(lua_State *L) {
  l_join_t *u = luaL_checkudata(L, 1, JOIN_MT);
  tide_join_free(u->j);
  u->j = NULL;
  return 0;
}

/* Read a Lua array of 1-based column indexes into cols (0-based). */
static uint32_t read_cols(lua_State *L, int idx, uint32_t *cols, uint32_t max, const tide_batch_t *b) {
  uint32_t n = (uint32_t)lua_rawlen(L, idx);
  if (n > max) luaL_error(L, "too many key columns");
  for (uint32_t i = 0; i < n; i++) {
    lua_rawgeti(L, idx, i + 1);
    lua_Integer c = luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    if (c < 1 || (uint64_t)c > b->schema->nfields) luaL_error(L, "key column %d out of range", (int)c);
    cols[i] = (uint32_t)c - 1;
  }
  return n;
}

#define MAX_KEYS 64

/* core.join(right_batch, {key cols}) -> Join; keeps the batch alive. */
static int l_join(lua_State *L) {
  tide_batch_t *right = tide_l_check_batch(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  uint32_t cols[MAX_KEYS], n = read_cols(L, 2, cols, MAX_KEYS, right);
  l_join_t *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->j = NULL;
  u->nkeys = n;
  luaL_setmetatable(L, JOIN_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  tide_err_t err = {0, ""};
  int rc = tide_join_build(right, cols, n, &u->j, &err);
  if (rc) return fail(L, rc, err.msg);
  return 1;
}

/* join:probe(left, {key cols}, left_outer, schema, {right cols}) -> Batch
 * of every left column, then the listed right columns. */
static int join_probe(lua_State *L) {
  l_join_t *u = luaL_checkudata(L, 1, JOIN_MT);
  if (!u->j) return luaL_error(L, "attempt to use a freed tide.Join");
  tide_batch_t *left = tide_l_check_batch(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  int outer = lua_toboolean(L, 4);
  tide_schema_t *s = check_schema(L, 5);
  luaL_checktype(L, 6, LUA_TTABLE);
  lua_getiuservalue(L, 1, 1);
  tide_batch_t *right = tide_l_check_batch(L, -1);
  lua_pop(L, 1);
  uint32_t lk[MAX_KEYS], nl = read_cols(L, 3, lk, MAX_KEYS, left);
  uint32_t rc_cols[TIDE_FIELDS_MAX], nr = read_cols(L, 6, rc_cols, TIDE_FIELDS_MAX, right);
  if (nl != u->nkeys) return luaL_error(L, "join: %u key columns on the left, %u on the right", nl, u->nkeys);
  if (s->nfields != left->schema->nfields + nr) return luaL_error(L, "join: schema does not match the columns");
  scratch_t *x = push_scratch(L);
  uint32_t *lrows = NULL, *rrows = NULL, count = 0;
  tide_err_t err = {0, ""};
  int rc = tide_join_probe(u->j, left, lk, outer, &lrows, &rrows, &count, &err);
  x->p[0] = lrows;
  x->p[1] = rrows;
  if (rc) return fail(L, rc, err.msg);
  tide_col_t *cols = scratch_cols(L, x, s->nfields);
  for (uint32_t c = 0; c < left->schema->nfields; c++)
    if ((rc = tide_col_gather(&left->cols[c], lrows, count, &cols[c]))) return fail(L, rc, NULL);
  for (uint32_t c = 0; c < nr; c++)
    if ((rc = tide_col_gather(&right->cols[rc_cols[c]], rrows, count, &cols[left->schema->nfields + c])))
      return fail(L, rc, NULL);
  push_adopted(L, x, s, count);
  scratch_free(x);
  return 1;
}

/* ----------------------------------------------------------- sort, etc. --- */

/* core.sort(batch, { {col=, desc=, nulls_first=}, ... }) -> Batch */
static int l_sort(lua_State *L) {
  tide_batch_t *in = tide_l_check_batch(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  uint32_t n = (uint32_t)lua_rawlen(L, 2);
  scratch_t *x = push_scratch(L);
  tide_sort_key_t *keys = x->p[0] = calloc(n ? n : 1, sizeof *keys);
  uint32_t *perm = x->p[1] = malloc((in->nrows ? in->nrows : 1) * sizeof *perm);
  if (!keys || !perm) return luaL_error(L, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, i + 1);
    lua_getfield(L, -1, "col");
    lua_Integer c = luaL_checkinteger(L, -1);
    if (c < 1 || (uint64_t)c > in->schema->nfields) return luaL_error(L, "sort: column %d out of range", (int)c);
    keys[i].col = (uint32_t)c - 1;
    lua_getfield(L, -2, "desc");
    keys[i].desc = lua_toboolean(L, -1);
    lua_getfield(L, -3, "nulls_first");
    keys[i].nulls_first = lua_toboolean(L, -1);
    lua_pop(L, 4);
  }
  tide_err_t err = {0, ""};
  int rc = tide_sort(in, keys, n, perm, &err);
  if (rc) return fail(L, rc, err.msg);
  tide_batch_t *out;
  if ((rc = tide_batch_gather(in, perm, in->nrows, &out))) return fail(L, rc, NULL);
  scratch_free(x);
  tide_l_push_batch(L, out);
  return 1;
}

/* core.concat({Batch...}, schema) -> Batch */
static int l_concat(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  tide_schema_t *s = check_schema(L, 2);
  uint32_t n = (uint32_t)lua_rawlen(L, 1);
  scratch_t *x = push_scratch(L);
  tide_batch_t **bs = x->p[0] = calloc(n ? n : 1, sizeof *bs);
  if (!bs) return luaL_error(L, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    bs[i] = tide_l_check_batch(L, -1); /* kept alive by the table */
    lua_pop(L, 1);
    if (bs[i]->schema->nfields != s->nfields) return luaL_error(L, "concat: batch %u has another shape", i + 1);
    for (uint32_t c = 0; c < s->nfields; c++)
      if (bs[i]->cols[c].type != s->fields[c].type) return luaL_error(L, "concat: batch %u has another shape", i + 1);
  }
  tide_batch_t *out;
  int rc = tide_batch_concat(bs, n, s, &out);
  if (rc) return fail(L, rc, NULL);
  scratch_free(x);
  tide_l_push_batch(L, out);
  return 1;
}

/* core.slice(batch, offset, count) -> Batch (0-based offset) */
static int l_slice(lua_State *L) {
  tide_batch_t *in = tide_l_check_batch(L, 1);
  lua_Integer off = luaL_checkinteger(L, 2), cnt = luaL_checkinteger(L, 3);
  if (off < 0) off = 0;
  if (off > in->nrows) off = in->nrows;
  if (cnt < 0 || cnt > in->nrows - off) cnt = in->nrows - off;
  tide_batch_t *out;
  int rc = tide_batch_slice(in, (uint32_t)off, (uint32_t)(off + cnt), &out);
  if (rc) return fail(L, rc, NULL);
  tide_l_push_batch(L, out);
  return 1;
}

/* ----------------------------------------------------------------- UDFs --- */

/* UDFs run a whole batch inside ONE protected call: the loop below calls
 * the function with lua_call (no setjmp per row) and keeps the current row
 * in a udf_run_t, so that an error can still name the row. An error of the
 * user's function reaches the message handler as a string and gets a
 * traceback; a row the function returned that breaks the schema is raised
 * as the run itself (a light userdata), which the handler lets through. */



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

/* Run the loop over r->in under the handler; 1 when done, else push nil and
 * the message ("row N {json}: ...") and return 0. */
static int udf_run(lua_State *L, udf_run_t *r, int fn, const char *what, scratch_t *x) {
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

/* core.udf_filter(batch, fn [, first]) -> Batch of the rows for which
 * fn(row) is truthy | nil, "row N {...}: error with traceback"; first is
 * the number of input rows before this batch, so that N counts from the
 * input's start. */
static int l_udf_filter(lua_State *L) {
  lua_settop(L, 3); /* the scratch below must not take the optional slot */
  tide_batch_t *in = tide_l_check_batch(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  scratch_t *x = push_scratch(L);
  udf_run_t r;
  memset(&r, 0, sizeof r);
  r.in = in;
  r.first = luaL_optinteger(L, 3, 0);
  r.rows = x->p[0] = malloc((in->nrows ? in->nrows : 1) * sizeof *r.rows);
  if (!r.rows) return luaL_error(L, "out of memory");
  if (!udf_run(L, &r, 2, "filter", x)) return 2;
  tide_batch_t *out;
  int rc = tide_batch_gather(in, r.rows, r.n, &out);
  if (rc) return fail(L, rc, NULL);
  scratch_free(x);
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
  tide_schema_t *s = check_schema(L, 3);
  scratch_t *x = push_scratch(L);
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
  r.jb = &push_scratch(L)->buf;
  if (!udf_run(L, &r, 2, what, x)) return 2;
  lua_pushvalue(L, out_idx);
  return 1;
}

/* ------------------------------------------------------------- sources --- */

/* core.rows_batch(schema, rows [, ignore_unknown]) -> Batch | nil, msg */
static int l_rows_batch(lua_State *L) {
  tide_schema_t *s = check_schema(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  int flags = lua_toboolean(L, 3) ? TIDE_JSON_IGNORE_UNKNOWN : 0;
  tide_batch_t *b = tide_batch_new(s, (uint32_t)lua_rawlen(L, 2) + 1);
  if (!b) return luaL_error(L, "out of memory");
  tide_l_push_batch(L, b);
  tide_err_t err = {0, ""};
  int rc = tide_l_rows_to_batch(L, 2, b, flags, &err);
  if (rc) return fail(L, rc, err.msg);
  return 1;
}

static const char *const formats[] = {"json", "csv", "text", NULL};
static const char *const bad_modes[] = {"fail", "drop", "dead_letter", NULL};

/* GC-owned decoder, closed by __gc if anything raises while it is open. */
static int decoder_gc(lua_State *L) {
  tide_decoder_t **d = lua_touserdata(L, 1);
  tide_decoder_close(*d);
  *d = NULL;
  return 0;
}

/* core.decode(format, schema, text, final, opts) ->
 *   batch, used, lines, dropped, {dropped lines} [, {dead records}] | nil, "line N: reason", ENAME
 * Decodes the complete records of text (a chunk of a file; a record cut
 * at the end is left for the next chunk unless final) into a batch
 * (decode.h). opts: line (the number of text's first line, default 1),
 * bad ("fail", "drop" or "dead_letter"), sep (CSV separator),
 * ignore_unknown (JSON). Returns the batch, the bytes consumed, the lines
 * consumed, the number of bad records dropped, the line numbers of the
 * first ones, and with "dead_letter" the bad records set aside, as
 * {line =, reason =, text =} tables. */
static int l_decode(lua_State *L) {
  tide_decode_opts_t o = {0, 0, ',', 0};
  o.format = (tide_format_t)luaL_checkoption(L, 1, NULL, formats);
  tide_schema_t *s = check_schema(L, 2);
  size_t len;
  const char *text = luaL_checklstring(L, 3, &len);
  int final = lua_toboolean(L, 4);
  luaL_checktype(L, 5, LUA_TTABLE);
  lua_getfield(L, 5, "line");
  lua_Integer line = luaL_optinteger(L, -1, 1);
  lua_getfield(L, 5, "bad");
  o.bad = (tide_bad_policy_t)luaL_checkoption(L, -1, "fail", bad_modes);
  lua_getfield(L, 5, "sep");
  o.sep = luaL_optstring(L, -1, ",")[0];
  lua_getfield(L, 5, "ignore_unknown");
  o.json_flags = lua_toboolean(L, -1) ? TIDE_JSON_IGNORE_UNKNOWN : 0;
  lua_pop(L, 4);
  tide_decoder_t **d = lua_newuserdatauv(L, sizeof *d, 0);
  *d = NULL;
  luaL_setmetatable(L, DECODER_MT);
  tide_err_t err = {0, ""};
  int rc = tide_decoder_open(s, &o, d, &err);
  if (rc == TIDE_EINVAL) return luaL_error(L, "decode: %s", err.msg);
  if (rc) return luaL_error(L, "out of memory");
  tide_batch_t *b = tide_batch_new(s, 4096);
  if (!b) return luaL_error(L, "out of memory");
  tide_l_push_batch(L, b);
  tide_decode_result_t r;
  rc = tide_decode(*d, b, text, len, final, line, &r, &err);
  if (rc) {
    tide_decoder_close(*d);
    *d = NULL;
    return fail(L, rc, err.msg);
  }
  lua_pushinteger(L, (lua_Integer)r.used);
  lua_pushinteger(L, r.lines);
  lua_pushinteger(L, (lua_Integer)r.dropped);
  lua_createtable(L, (int)r.ndropped_lines, 0);
  for (uint32_t i = 0; i < r.ndropped_lines; i++) {
    lua_pushinteger(L, r.dropped_lines[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  if (o.bad != TIDE_BAD_DEAD_LETTER) {
    tide_decoder_close(*d);
    *d = NULL;
    return 5;
  }
  lua_createtable(L, (int)r.ndead, 0);
  for (size_t i = 0; i < r.ndead; i++) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, r.dead[i].line);
    lua_setfield(L, -2, "line");
    lua_pushstring(L, r.dead[i].reason);
    lua_setfield(L, -2, "reason");
    lua_pushlstring(L, r.dead[i].text, r.dead[i].len);
    lua_setfield(L, -2, "text");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  tide_decoder_close(*d);
  *d = NULL;
  return 6;
}

/* core.csv_encode({Batch..} [, opts]) -> string
 * The batches' rows as CSV records (csv.h's encoding), after a header
 * record of the field names (of the first batch's schema) when
 * opts.header is true. opts.sep: the separator (one character, default
 * ","). The batches must have as many columns as the first. */
static int l_csv_encode(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int header = 0;
  const char *sep = ",";
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "header");
    header = lua_toboolean(L, -1);
    lua_getfield(L, 2, "sep");
    sep = luaL_optstring(L, -1, ",");
    lua_pop(L, 2);
  }
  if (strlen(sep) != 1 || *sep == '"' || *sep == '\n' || *sep == '\r')
    return luaL_error(L, "csv_encode: the separator must be one character other than a quote, CR or LF");
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  const tide_schema_t *s = NULL;
  for (lua_Integer i = 1; i <= n; i++) { /* check them all before building anything */
    lua_rawgeti(L, 1, i);
    tide_batch_t *b = tide_l_check_batch(L, -1);
    if (!s) s = b->schema;
    if (b->schema->nfields != s->nfields)
      return luaL_error(L, "csv_encode: batch %I has %d columns, batch 1 has %d", i, (int)b->schema->nfields,
                        (int)s->nfields);
    lua_pop(L, 1);
  }
  scratch_t *x = push_scratch(L);
  int rc = header && s ? tide_csv_enc_header(s, *sep, &x->buf) : 0;
  for (lua_Integer i = 1; !rc && i <= n; i++) {
    lua_rawgeti(L, 1, i);
    tide_batch_t *b = tide_l_check_batch(L, -1);
    rc = tide_csv_enc_rows(b, 0, b->nrows, *sep, &x->buf);
    lua_pop(L, 1);
  }
  if (rc) return luaL_error(L, "out of memory");
  lua_pushlstring(L, x->buf.data ? x->buf.data : "", x->buf.len);
  scratch_free(x);
  return 1;
}

/* core.rate_batch(schema, start, rows_per_second, lo, hi) -> Batch | nil, msg, ENAME
 * Rows [lo, hi) of the rate source (rate.h), made in C a column at a time. */
static int l_rate_batch(lua_State *L) {
  tide_schema_t *s = check_schema(L, 1);
  lua_Integer start = luaL_checkinteger(L, 2), rps = luaL_checkinteger(L, 3);
  lua_Integer lo = luaL_checkinteger(L, 4), hi = luaL_checkinteger(L, 5);
  tide_batch_t *b = NULL;
  int rc = tide_rate_batch(s, start, rps, lo, hi, &b);
  if (rc == TIDE_EINVAL)
    return luaL_error(L, "rate_batch: needs a schema (timestamp, int), rows_per_second >= 1 and 0 <= lo <= hi");
  if (rc) return fail(L, rc, NULL);
  tide_l_push_batch(L, b);
  return 1;
}

/* core.glob(pattern) -> sorted array of the paths matching (files and
 * directories; empty when none) | nil, msg. */
static int l_glob(lua_State *L) {
  const char *pat = luaL_checkstring(L, 1);
  glob_t g;
  memset(&g, 0, sizeof g);
  int rc = glob(pat, GLOB_MARK, NULL, &g);
  if (rc && rc != GLOB_NOMATCH) {
    globfree(&g);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot list '%s'%s", pat, rc == GLOB_NOSPACE ? ": out of memory" : ": read error");
    return 2;
  }
  /* copy out before anything can raise, then free */
  size_t bytes = 0;
  for (size_t i = 0; i < g.gl_pathc; i++) bytes += strlen(g.gl_pathv[i]) + 1;
  char *copy = lua_newuserdatauv(L, bytes + 1, 0), *q = copy;
  size_t n = g.gl_pathc;
  for (size_t i = 0; i < n; i++) q = stpcpy(q, g.gl_pathv[i]) + 1;
  globfree(&g);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0, off = 0; i < n; i++) {
    lua_pushstring(L, copy + off);
    off += strlen(copy + off) + 1;
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* ---------------------------------------------------------- registration --- */

static const luaL_Reg schema_methods[] = {{"fields", schema_fields}, {"ddl", schema_ddl}, {"len", schema_len}, {NULL, NULL}};
static const luaL_Reg expr_methods[] = {{"type", expr_type},     {"nullable", expr_nullable}, {"name", expr_name},
                                        {"text", expr_text},     {"column", expr_column},     {"agg", expr_agg},
                                        {"arg", expr_arg},       {NULL, NULL}};
static const luaL_Reg agg_methods[] = {{"push", agg_push},
                                       {"result", agg_result},
                                       {"groups", agg_groups},
                                       {"bytes", agg_bytes},
                                       {"changes", agg_changes},
                                       {"changed_rows", agg_changed_rows},
                                       {"take_changes", agg_take_changes},
                                       {"clear_changes", agg_clear_changes},
                                       {"restore", agg_restore},
                                       {"evict", agg_evict},
                                       {"lookup", agg_lookup},
                                       {"merge", agg_merge},
                                       {"remove", agg_remove},
                                       {NULL, NULL}};
static const luaL_Reg join_methods[] = {{"probe", join_probe}, {NULL, NULL}};

int tide_l_frame_open(lua_State *L) {
  tide_l_class(L, SCRATCH_MT, NULL, scratch_gc, 0);
  tide_l_class(L, DECODER_MT, NULL, decoder_gc, 0);
  tide_l_class(L, SCHEMA_MT, schema_methods, schema_gc, 0);
  tide_l_class(L, EXPR_MT, expr_methods, expr_gc, 0);
  tide_l_class(L, AGG_MT, agg_methods, agg_gc, 0);
  tide_l_class(L, JOIN_MT, join_methods, join_gc, 0);
  static const luaL_Reg fns[] = {{"schema", l_schema},
                                 {"expr", l_expr},
                                 {"project", l_project},
                                 {"where", l_where},
                                 {"window_expand", l_window_expand},
                                 {"agg", l_agg},
                                 {"join", l_join},
                                 {"sort", l_sort},
                                 {"concat", l_concat},
                                 {"slice", l_slice},
                                 {"udf_filter", l_udf_filter},
                                 {"udf_map", l_udf_map},
                                 {"rows_batch", l_rows_batch},
                                 {"decode", l_decode},
                                 {"csv_encode", l_csv_encode},
                                 {"rate_batch", l_rate_batch},
                                 {"glob", l_glob},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  return 0;
}
