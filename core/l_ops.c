/*
 * l_ops.c: the batch -> batch operators that frames are built from; each
 * takes whole batches and returns a new one, so the per-row work stays in
 * C. lua/tide/frame.lua plans with them.
 *
 *   core.project(batch, {Expr..}, schema) -> Batch | nil, msg, ENAME
 *   core.where(batch, Expr)               -> Batch | nil, msg, ENAME
 *   core.window_expand(batch, col, size, slide, start, schema) -> Batch
 *   core.join(batch, {cols})              -> Join | nil, msg, ENAME
 *   join:probe(left, {cols}, left_outer, schema, {right cols}) -> Batch
 *   core.sort(batch, {{col=, desc=, nulls_first=}..}) -> Batch
 *   core.concat({Batch..}, schema)        -> Batch
 *   core.slice(batch, offset, count)      -> Batch
 *
 * Column indexes are 1-based on the Lua side.
 */
#include <stdlib.h>
#include <string.h>

#include "join.h"
#include "l_tide.h"
#include "vec.h"
#include "sort.h"
#include "window.h"

#define JOIN_MT "tide.Join"

/* Hand x's columns to a new batch of schema s with nrows rows and push it.
 * Raises when out of memory (the columns are freed). */
static void push_adopted(lua_State *L, tide_l_scratch_t *x, tide_schema_t *s, uint32_t nrows) {
  tide_col_t *cols = x->cols;
  x->cols = NULL;
  x->ncols = 0;
  tide_batch_t *b = tide_batch_adopt(s, nrows, cols); /* frees the buffers on failure */
  free(cols);
  if (!b) luaL_error(L, "out of memory");
  tide_l_push_batch(L, b);
}

/* --------------------------------------------------------- project/where --- */

/* core.project(batch, {Expr...}, schema) -> Batch: one column per
 * expression, of the schema's types. */
static int l_project(lua_State *L) {
  tide_batch_t *in = tide_l_check_batch(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  tide_schema_t *s = tide_l_check_schema(L, 3);
  uint32_t n = (uint32_t)lua_rawlen(L, 2);
  if (n != s->nfields) return luaL_error(L, "project: %u expressions for a schema of %u fields", n, s->nfields);
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  const tide_expr_t **exprs = x->p[0] = calloc(n ? n : 1, sizeof *exprs);
  if (!exprs) return luaL_error(L, "out of memory");
  tide_err_t err = {0, ""};
  for (uint32_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, i + 1);
    tide_expr_t *e = tide_l_check_expr(L, -1);
    lua_pop(L, 1); /* the table keeps e alive */
    if (tide_expr_type(e) != s->fields[i].type)
      return luaL_error(L, "project: expression %u is %s, its field %s", i + 1, tide_type_name(tide_expr_type(e)),
                        tide_type_name(s->fields[i].type));
    exprs[i] = e;
  }
  tide_batch_t *out; /* ranges of a big batch on the workers (expr.h) */
  int rc = tide_expr_project_on(tide_l_pool(L), exprs, s, in, &out, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_l_scratch_free(x);
  tide_l_push_batch(L, out);
  return 1;
}

/* core.where(batch, Expr) -> Batch of the rows where it is TRUE. */
static int l_where(lua_State *L) {
  tide_batch_t *in = tide_l_check_batch(L, 1);
  tide_expr_t *e = tide_l_check_expr(L, 2);
  tide_err_t err = {0, ""};
  tide_batch_t *out; /* ranges of a big batch on the workers (expr.h) */
  int rc = tide_expr_where_on(tide_l_pool(L), e, in, &out, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
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
  tide_schema_t *s = tide_l_check_schema(L, 6);
  luaL_argcheck(L, col >= 1 && (uint64_t)col <= in->schema->nfields, 2, "no such column");
  luaL_argcheck(L, s->nfields == in->schema->nfields + 2, 6, "schema must be window_start, window_end + input");
  tide_err_t err = {0, ""};
  int rc = tide_window_check(&w, &err);
  if (rc) return luaL_error(L, "%s", err.msg);
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  uint32_t *rows = NULL, count = 0;
  int64_t *starts = NULL;
  rc = tide_window_assign(&w, &in->cols[col - 1], in->nrows, &rows, &starts, &count, &err);
  x->p[0] = rows;
  x->p[1] = starts;
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_col_t *cols = tide_l_scratch_cols(L, x, s->nfields);
  if ((rc = tide_col_init(&cols[0], TIDE_T_TIMESTAMP, count)) || (rc = tide_col_init(&cols[1], TIDE_T_TIMESTAMP, count)))
    return tide_l_fail(L, rc, NULL, NULL);
  int64_t *ws = cols[0].values, *we = cols[1].values;
  for (uint32_t k = 0; k < count; k++) {
    ws[k] = starts[k];
    we[k] = starts[k] + w.size;
  }
  for (uint32_t c = 0; c < in->schema->nfields; c++)
    if ((rc = tide_col_gather(&in->cols[c], rows, count, &cols[c + 2]))) return tide_l_fail(L, rc, NULL, NULL);
  push_adopted(L, x, s, count);
  tide_l_scratch_free(x);
  return 1;
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
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
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
  tide_schema_t *s = tide_l_check_schema(L, 5);
  luaL_checktype(L, 6, LUA_TTABLE);
  lua_getiuservalue(L, 1, 1);
  tide_batch_t *right = tide_l_check_batch(L, -1);
  lua_pop(L, 1);
  uint32_t lk[MAX_KEYS], nl = read_cols(L, 3, lk, MAX_KEYS, left);
  uint32_t rc_cols[TIDE_FIELDS_MAX], nr = read_cols(L, 6, rc_cols, TIDE_FIELDS_MAX, right);
  if (nl != u->nkeys) return luaL_error(L, "join: %u key columns on the left, %u on the right", nl, u->nkeys);
  if (s->nfields != left->schema->nfields + nr) return luaL_error(L, "join: schema does not match the columns");
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  uint32_t *lrows = NULL, *rrows = NULL, count = 0;
  tide_err_t err = {0, ""};
  int rc = tide_join_probe(u->j, left, lk, outer, &lrows, &rrows, &count, &err);
  x->p[0] = lrows;
  x->p[1] = rrows;
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_col_t *cols = tide_l_scratch_cols(L, x, s->nfields);
  for (uint32_t c = 0; c < left->schema->nfields; c++)
    if ((rc = tide_col_gather(&left->cols[c], lrows, count, &cols[c]))) return tide_l_fail(L, rc, NULL, NULL);
  for (uint32_t c = 0; c < nr; c++)
    if ((rc = tide_col_gather(&right->cols[rc_cols[c]], rrows, count, &cols[left->schema->nfields + c])))
      return tide_l_fail(L, rc, NULL, NULL);
  push_adopted(L, x, s, count);
  tide_l_scratch_free(x);
  return 1;
}

/* ----------------------------------------------------------- sort, etc. --- */

/* core.sort(batch, { {col=, desc=, nulls_first=}, ... }) -> Batch */
static int l_sort(lua_State *L) {
  tide_batch_t *in = tide_l_check_batch(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  uint32_t n = (uint32_t)lua_rawlen(L, 2);
  tide_l_scratch_t *x = tide_l_push_scratch(L);
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
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_batch_t *out;
  if ((rc = tide_batch_gather(in, perm, in->nrows, &out))) return tide_l_fail(L, rc, NULL, NULL);
  tide_l_scratch_free(x);
  tide_l_push_batch(L, out);
  return 1;
}

/* core.concat({Batch...}, schema) -> Batch */
static int l_concat(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  tide_schema_t *s = tide_l_check_schema(L, 2);
  uint32_t n = (uint32_t)lua_rawlen(L, 1);
  tide_l_scratch_t *x = tide_l_push_scratch(L);
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
  if (rc) return tide_l_fail(L, rc, NULL, NULL);
  tide_l_scratch_free(x);
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
  if (rc) return tide_l_fail(L, rc, NULL, NULL);
  tide_l_push_batch(L, out);
  return 1;
}

int tide_l_ops_open(lua_State *L) {
  static const luaL_Reg join_methods[] = {{"probe", join_probe}, {NULL, NULL}};
  static const luaL_Reg fns[] = {{"project", l_project}, {"where", l_where}, {"window_expand", l_window_expand},
                                 {"join", l_join},       {"sort", l_sort},   {"concat", l_concat},
                                 {"slice", l_slice},     {NULL, NULL}};
  tide_l_class(L, JOIN_MT, join_methods, join_gc, 0);
  luaL_setfuncs(L, fns, 0);
  return 0;
}
