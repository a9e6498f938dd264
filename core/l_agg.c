/*
 * l_agg.c: the tide.Agg userdata (a grouping aggregation, core/agg.h).
 *
 *   core.agg(key_schema, {spec..})       -> Agg | nil, msg, ENAME
 *   agg:push(batch, keys, args [, window [, filter [, first [, late [, want_new [, time_col]]]]]])
 *                          -> true, info | nil, msg, ENAME
 *   agg:result(), agg:groups(), agg:bytes()
 *   agg:set_static()       -> true | false (a static query's aggregation:
 *                             its fold runs on every worker, agg.h)
 *   agg:scan_files(paths, format, schema, opts, keys, args [, window [, filter]])
 *                          -> true | false | nil, msg, ENAME (one stage:
 *                             core/scan.h)
 *   agg:changes()          -> Batch, {sid..}, {record..} | nil, msg, ENAME
 *   agg:changed_rows()     -> Batch, n | nil, msg, ENAME
 *   agg:take_changes()     -> change set (l_ckpt.h) | nil, msg, ENAME
 *   agg:clear_changes()
 *   agg:restore(sid, record) -> true | nil, msg, ENAME
 *   agg:evict(col, bound [, want_rows]) -> Batch, {sid..} (want_rows false: n) | nil, msg, ENAME
 *   agg:lookup(keys)       -> {sid | false ..}
 *   agg:merge(dst_sid, src_sid) -> true | nil, msg, ENAME
 *   agg:remove({sid..})    -> Batch, {sid..} | nil, msg, ENAME
 *   agg:attach(ck, name, limit), agg:full(), agg:restored(),
 *   agg:take_index() -> name, change set | nil, agg:spill_counts()
 *     Bounded memory (state_memory_limit; core/agg.h "spilling"): past
 *     `limit` bytes, clear_changes() (after a commit) drops the least
 *     recently touched groups, which stay in the checkpoint's state `name`
 *     and are found again through its index (runs `<name>.keys.<lo>-<hi>`,
 *     docs/FORMAT.md "State index"); push() loads them back, result() and evict() see
 *     them. groups() then gives the groups in memory and in the
 *     checkpoint, and those in memory.
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
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agg.h"
#include "pool.h"
#include "scan.h"
#include "ckpt.h"
#include "l_ckpt.h"
#include "l_tide.h"
#include "vec.h"
#include "window.h"

#define AGG_MT "tide.Agg"

/* Bounded memory (agg:attach): the aggregation spills to its state in
 * the query's checkpoint, `name` (records by sid), found again by key
 * through its index: runs, each a state `<name>.keys.<lo>-<hi>` holding
 * the key hash and sid (16 bytes big-endian, value empty) of groups with
 * sids in [lo, hi) (docs/FORMAT.md "State index"). A commit adds a run
 * of the groups it created, written in key order (appends: pages fill,
 * nothing is rewritten, where inserting into one big index ordered by
 * hash would rewrite most of its pages at every commit); every RUNS_FAN
 * runs of one size class merge into one, as an LSM tree's tiers do, so
 * an entry is rewritten O(log groups) times and there are O(log groups)
 * runs. A Bloom filter over every run's hashes (in memory, about 10 bits
 * a group, counted in the limit) answers most lookups of keys seen for
 * the first time without reading the checkpoint. */
#define RUNS_MAX 48  /* never reached: merges keep about RUNS_FAN per size class */
#define RUNS_FAN 4   /* runs of one size class merged together */
#define RUNS_BASE 4096 /* entries of the smallest size class */
#define BLOOM_K 7    /* bits per hash, in one 512-bit block (9 bits of the hash each) */

typedef struct run {
  uint64_t lo, hi;  /* its groups' sids: [lo, hi) */
  uint64_t n;       /* entries */
} run_t;

typedef struct {
  struct tide_ckpt **ck;  /* into the tide.Checkpoint (user value 1); NULL: not attached */
  char name[TIDE_CKPT_NAME_MAX + 1];
  size_t name_len;
  size_t limit;           /* bytes */
  run_t runs[RUNS_MAX];   /* by lo */
  size_t nruns;
  uint64_t *bloom;        /* nbits bits over the hashes of every run */
  uint64_t nbits;         /* a power of two */
  uint64_t bloom_cap;     /* entries it was sized for: rebuilt larger past them */
  size_t bloom_bytes;
  int indexing;           /* take_index wrote every group: indexed once committed */
  run_t pend;             /* the run take_index wrote, added at clear_changes */
  uint64_t *pend_h;       /* its hashes, for its filter */
  uint64_t dead;          /* index entries of deleted groups (merges drop them) */
  uint64_t pend_dead;
  uint64_t records, last; /* at attach: stored groups, the largest sid */
  tide_agg_store_t store;
  tide_buf_t scan;        /* the store's scan chunks */
} l_spill_t;

typedef struct {
  tide_agg_t *a;
  l_spill_t *sp; /* NULL unless attached */
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
  if (u->sp) {
    tide_buf_free(&u->sp->scan);
    free(u->sp->bloom);
    free(u->sp->pend_h);
  }
  free(u->sp);
  u->sp = NULL;
  return 0;
}

static const char *const type_names[] = {"bool", "int", "double", "string", "timestamp", "json", NULL};

/* The specs of the array at idx (l_tide.h). */
tide_agg_spec_t *tide_l_check_agg_specs(lua_State *L, int idx, tide_l_scratch_t *x, uint32_t *n) {
  luaL_checktype(L, idx, LUA_TTABLE);
  *n = (uint32_t)lua_rawlen(L, idx);
  tide_agg_spec_t *specs = x->p[0] = calloc(*n ? *n : 1, sizeof *specs);
  if (!specs) luaL_error(L, "out of memory");
  for (uint32_t i = 0; i < *n; i++) {
    lua_rawgeti(L, idx, i + 1);
    lua_getfield(L, -1, "kind");
    int k = luaL_checkoption(L, -1, NULL, tide_l_agg_names + 1);
    specs[i].kind = (tide_agg_kind_t)(k + 1);
    lua_getfield(L, -2, "arg_type");
    if (specs[i].kind != TIDE_AGG_COUNT_STAR)
      specs[i].arg_type = (tide_type_t)(luaL_checkoption(L, -1, NULL, type_names) + 1);
    lua_getfield(L, -3, "name");
    specs[i].name = luaL_checkstring(L, -1); /* kept alive by the specs table */
    lua_pop(L, 4);
  }
  return specs;
}

/* core.agg(key_schema, { {kind=, arg_type=, name=}, ... }) -> Agg | nil, msg */
static int l_agg(lua_State *L) {
  tide_schema_t *keys = tide_l_check_schema(L, 1);
  uint32_t n;
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  tide_agg_spec_t *specs = tide_l_check_agg_specs(L, 2, x, &n);
  l_agg_t *u = lua_newuserdatauv(L, sizeof *u, 1); /* user value: the checkpoint of attach */
  memset(u, 0, sizeof *u);
  luaL_setmetatable(L, AGG_MT);
  tide_err_t err = {0, ""};
  int rc = tide_agg_new(keys, specs, n, &u->a, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_agg_log_gone(u->a, 1); /* the deletes of take_changes */
  return 1;
}

/* agg:push(batch, keys, args [, window [, filter [, first [, late [, want_new [, time_col]]]]]]):
 * the whole grouping step of one input batch (tide_agg_push, agg.h); this
 * converts the Lua arguments into a tide_agg_input_t and the output back:
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
 * batches have the input's schema and keep its row order. A Lua filter
 * runs here (tide_l_udf_select) and hands its rows over as the selection.
 * The worker pool (core.workers) takes ranges of a big batch when the
 * aggregates allow (agg.c, "Parallel push"): the same result as one thread.
 * The environment variable TIDE_PAR_MIN_ROWS (a test knob) sets the fewest
 * rows of a range (default 4096), so that specs can split small batches. */

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

/* The keys (table at ik), aggregate arguments (ia) and window (iw, or nil)
 * of a push over batches of schema bs into in (zeroed first; w holds the
 * window), the arrays owned by x (p[0], p[1]). Raises on a bad argument. */
static void check_push_input(lua_State *L, const tide_agg_t *a, const tide_schema_t *bs, int ik, int ia, int iw,
                             tide_l_scratch_t *x, tide_agg_input_t *in, tide_window_t *w) {
  luaL_checktype(L, ik, LUA_TTABLE);
  luaL_checktype(L, ia, LUA_TTABLE);
  const tide_schema_t *out = tide_agg_schema(a);
  uint32_t nk = (uint32_t)lua_rawlen(L, ik), na = (uint32_t)lua_rawlen(L, ia), nf = bs->nfields;
  if (nk + na != out->nfields) luaL_error(L, "agg:push: %u keys and %u aggregates for %u columns", nk, na, out->nfields);
  tide_agg_key_src_t *keys = x->p[0] = calloc(nk ? nk : 1, sizeof *keys);
  const tide_expr_t **args = x->p[1] = calloc(na ? na : 1, sizeof *args);
  if (!keys || !args) luaL_error(L, "out of memory");
  memset(in, 0, sizeof *in);
  in->keys = keys;
  in->args = args;
  in->window_col = in->late_col = in->time_col = -1;
  *w = (tide_window_t){0, 0, 0};
  if (!lua_isnil(L, iw)) {
    luaL_checktype(L, iw, LUA_TTABLE);
    lua_getfield(L, iw, "col");
    lua_Integer wcol = luaL_checkinteger(L, -1);
    lua_getfield(L, iw, "size");
    w->size = luaL_checkinteger(L, -1);
    lua_getfield(L, iw, "slide");
    w->slide = luaL_checkinteger(L, -1);
    lua_getfield(L, iw, "start");
    w->start = luaL_checkinteger(L, -1);
    lua_pop(L, 4);
    if (wcol < 1 || (uint64_t)wcol > nf) luaL_error(L, "agg:push: bad window column");
    tide_err_t werr = {0, ""};
    if (tide_window_check(w, &werr)) luaL_error(L, "%s", werr.msg);
    in->window = w;
    in->window_col = (int)wcol - 1;
  }
  for (uint32_t i = 0; i < nk; i++) {
    lua_rawgeti(L, ik, i + 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      if (!in->window) luaL_error(L, "agg:push: a window key without a window");
      const char *wk = lua_tostring(L, -1);
      if (!strcmp(wk, "window_start")) keys[i].kind = TIDE_AGG_KEY_WINDOW_START;
      else if (!strcmp(wk, "window_end")) keys[i].kind = TIDE_AGG_KEY_WINDOW_END;
      else luaL_error(L, "agg:push: key %d: expected 'window_start', 'window_end' or an expression, got '%s'",
                      (int)i + 1, wk);
    } else {
      keys[i].expr = tide_l_check_expr(L, -1); /* kept alive by the keys table */
    }
    lua_pop(L, 1);
  }
  for (uint32_t i = 0; i < na; i++) {
    lua_rawgeti(L, ia, i + 1);
    if (lua_toboolean(L, -1)) args[i] = tide_l_check_expr(L, -1);
    lua_pop(L, 1);
  }
}

static int agg_push(lua_State *L) {
  tide_agg_t *a = check_agg(L, 1);
  tide_batch_t *batch = tide_l_check_batch(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 10); /* the scratch below must not take an optional slot */
  const tide_schema_t *bs = batch->schema;
  /* x owns the arrays: p[0] keys, p[1] args, p[2] the rows a Lua filter
   * kept; batch[0..1] the lost and created rows until they are pushed */
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  tide_agg_input_t in;
  tide_window_t w;
  check_push_input(L, a, bs, 3, 4, 5, x, &in, &w);
  in.batch = batch;
  if (!lua_isnil(L, 8)) {
    luaL_checktype(L, 8, LUA_TTABLE);
    lua_getfield(L, 8, "col");
    lua_getfield(L, 8, "bound");
    if (!lua_isinteger(L, -2)) return luaL_argerror(L, 8, "late.col must be an integer (a 1-based column)");
    if (!lua_isinteger(L, -1)) return luaL_argerror(L, 8, "late.bound must be an integer (milliseconds)");
    lua_Integer lcol = lua_tointeger(L, -2);
    in.late_bound = lua_tointeger(L, -1);
    lua_pop(L, 2);
    check_time_col(L, 8, bs, lcol, "late.col");
    in.late_col = (int)lcol - 1;
  }
  in.want_created = lua_toboolean(L, 9);
  lua_Integer scol = luaL_optinteger(L, 10, 0);
  if (scol) {
    check_time_col(L, 10, bs, scol, "column");
    in.time_col = (int)scol - 1;
  }
  if (lua_type(L, 6) == LUA_TFUNCTION) { /* a Lua filter: the rows for which fn(row) is truthy */
    if (!tide_l_udf_select(L, batch, 6, luaL_optinteger(L, 7, 0), x, 2, &in.nselect)) return 2;
    in.select = x->p[2];
  } else if (!lua_isnil(L, 6)) {
    in.filter = tide_l_check_expr(L, 6);
  }
  in.pool = tide_l_pool(L); /* ranges of rows on the workers (agg.c, "Parallel push") */
  /* ...unless another thread shares the pool now (the file source's read
   * ahead, decoding the next batch on it): then the push runs alone and
   * spends no CPU on partials and their fold while that thread and the
   * workers keep the other cores busy; the result is the same (agg.c).
   * With the test knob below set, specs split even so. */
  const char *pm = getenv("TIDE_PAR_MIN_ROWS"); /* for tests: split even small batches */
  if (!(pm && *pm) && tide_pool_shared(in.pool) > 0) in.pool = NULL;
  if (pm && *pm) in.par_min_rows = (uint32_t)strtoul(pm, NULL, 10);
  tide_agg_output_t res;
  tide_err_t err = {0, ""};
  int rc = tide_agg_push(a, &in, &res, &err);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  x->batch[0] = res.lost;
  x->batch[1] = res.created;
  lua_pushboolean(L, 1);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, res.pushed);
  lua_setfield(L, -2, "pushed");
  lua_pushinteger(L, res.late_pairs);
  lua_setfield(L, -2, "late_pairs");
  lua_pushinteger(L, res.late_groups);
  lua_setfield(L, -2, "late_groups");
  if (in.time_col >= 0) {
    lua_pushinteger(L, res.time_count);
    lua_setfield(L, -2, "time_count");
    if (res.time_count) {
      lua_pushinteger(L, (lua_Integer)res.time_min);
      lua_setfield(L, -2, "time_min");
      lua_pushinteger(L, (lua_Integer)res.time_max);
      lua_setfield(L, -2, "time_max");
    }
    lua_pushnumber(L, res.time_sum);
    lua_setfield(L, -2, "time_sum");
  }
  static const char *const names[2] = {"lost", "new"};
  for (int i = 0; i < 2; i++) {
    if (!x->batch[i]) continue;
    tide_l_push_batch(L, x->batch[i]); /* owned by Lua from here */
    x->batch[i] = NULL;
    lua_setfield(L, -2, names[i]);
  }
  tide_l_scratch_free(x);
  return 2;
}

/* After a call that may have walked the groups only in the checkpoint
 * (result, evict): drop the mapping of the pages it read. */
static void release_walk(lua_State *L) {
  l_agg_t *u = luaL_checkudata(L, 1, AGG_MT);
  if (u->sp && *u->sp->ck && tide_agg_spilled(u->a)) tide_ckpt_release_pages(*u->sp->ck);
}

static int agg_result(lua_State *L) {
  tide_agg_t *a = check_agg(L, 1);
  tide_batch_t *b;
  tide_err_t err = {0, ""};
  int rc = tide_agg_result_all(a, &b, &err);
  release_walk(L);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  tide_l_push_batch(L, b);
  return 1;
}

/* agg:set_static() -> true | false: make a new aggregation a static one
 * (tide_agg_set_static, agg.h: the fold of each push runs on every thread
 * of the worker pool, one part of the keys each), parted over as many
 * parts as the pool has threads; false when it stays one table (one
 * worker, groups already, attached, or an aggregate whose fold is not
 * bit-exact). For a query over static input that only takes result(). */
static int agg_set_static(lua_State *L) {
  tide_agg_t *a = check_agg(L, 1);
  tide_err_t err = {0, ""};
  int rc = tide_agg_set_static(a, (uint32_t)tide_pool_threads(tide_l_pool(L)), &err);
  if (rc < 0) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, rc == 1);
  return 1;
}

/* agg:scan_files({path..}, format, schema, opts, keys, args [, window [, filter]])
 *   -> true | false | nil, msg, ENAME
 * A static aggregation (after set_static) of the files in one stage
 * (core/scan.h): every worker reads, decodes (format and opts as
 * core.file_read's) and pushes whole ranges of them (keys, args, window
 * and filter as push's). true: done, result() has the rows; false:
 * nothing was done (the query or the input is not one the scan takes, or
 * a range failed): push the input the ordinary way, which reports the
 * first error in file order. TIDE_SCAN_RANGE_BYTES (tests) sets the range
 * size. */
static int agg_scan_files(lua_State *L) {
  tide_agg_t *a = check_agg(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  tide_schema_t *s = tide_l_check_schema(L, 4);
  tide_decode_opts_t o;
  tide_l_check_decode(L, 3, 5, &o);
  lua_settop(L, 9);
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  tide_agg_input_t in;
  tide_window_t w;
  check_push_input(L, a, s, 6, 7, 8, x, &in, &w);
  if (!lua_isnil(L, 9)) in.filter = tide_l_check_expr(L, 9);
  size_t n = lua_rawlen(L, 2);
  const char **paths = x->p[2] = calloc(n ? n : 1, sizeof *paths);
  if (!paths) return luaL_error(L, "out of memory");
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, 2, (lua_Integer)i + 1);
    paths[i] = tide_l_check_cname(L, -1, "scan_files: path", TIDE_L_PATH); /* kept alive by the table */
    lua_pop(L, 1);
  }
  const char *rb = getenv("TIDE_SCAN_RANGE_BYTES");
  int64_t range = rb && *rb ? strtoll(rb, NULL, 10) : 0;
  tide_err_t err = {0, ""};
  int rc = tide_scan_files(a, paths, n, s, &o, &in, range, tide_l_pool(L), &err);
  tide_l_scratch_free(x);
  if (rc < 0 || rc == TIDE_ETOOBIG) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, rc == 0);
  return 1;
}

/* agg:groups() -> the groups in memory and those only in the store,
 * the groups in memory */
static int agg_groups(lua_State *L) {
  tide_agg_t *a = check_agg(L, 1);
  lua_pushinteger(L, (lua_Integer)(tide_agg_groups(a) + tide_agg_spilled(a)));
  lua_pushinteger(L, (lua_Integer)tide_agg_groups(a));
  return 2;
}

/* The bytes held: the aggregation's and, attached, the index's filters. */
static size_t held(const l_agg_t *u) { return tide_agg_bytes(u->a) + (u->sp ? u->sp->bloom_bytes : 0); }

static int agg_bytes(lua_State *L) {
  l_agg_t *u = luaL_checkudata(L, 1, AGG_MT);
  check_agg(L, 1);
  lua_pushinteger(L, (lua_Integer)held(u));
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
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
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
  tide_l_scratch_t *x = tide_l_push_scratch(L); /* the record buffer, freed if a push raises */
  lua_createtable(L, (int)n, 0);
  for (uint32_t i = 0; i < n; i++) {
    x->buf.len = 0;
    if ((rc = tide_agg_encode(a, gids[i], &x->buf, &err))) return tide_l_fail(L, rc, NULL, err.msg);
    lua_pushlstring(L, x->buf.data, x->buf.len);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  tide_l_scratch_free(x);
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
  tide_agg_t *a = check_agg(L, 1);
  const uint32_t *gids;
  uint32_t n = tide_agg_dirty(a, &gids);
  tide_l_scratch_t *x = tide_l_push_scratch(L); /* the sorted sids */
  tide_l_changes_t *c = tide_l_push_changes(L);
  tide_err_t err = {0, ""};
  unsigned char key[8];
  const uint64_t *gone, *hashes;
  size_t ngone = tide_agg_gone(a, &gone, &hashes);
  uint64_t *sorted = x->p[0] = malloc((ngone ? ngone : 1) * sizeof *sorted);
  if (!sorted) return luaL_error(L, "out of memory");
  if (ngone) memcpy(sorted, gone, ngone * sizeof *sorted);
  qsort(sorted, ngone, sizeof *sorted, cmp_u64); /* evictions hand sids back in gid order: sorted already, mostly */
  for (size_t i = 0; i < ngone; i++) {
    tide_ckpt_key_u64(key, sorted[i]);
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
      return tide_l_fail(L, rc, NULL, err.msg);
    }
    tide_l_changes_put_end(c, mark);
  }
  tide_l_scratch_free(x);
  lua_remove(L, -2);
  return 1;
}

/* ------------------------------------------------------ bounded memory --- */

/* The attached checkpoint's handle, or an error when it is closed. */
static struct tide_ckpt *spill_ck(l_spill_t *sp, tide_err_t *err) {
  if (!*sp->ck) tide_err_set(err, TIDE_EINVAL, "state %s: the checkpoint is closed", sp->name);
  return *sp->ck;
}

/* The state name of run r: "<name>.keys.<lo>-<hi>"; its length. */
#define INDEX_INFIX ".keys."
static size_t run_name(const l_spill_t *sp, const run_t *r, char out[TIDE_CKPT_NAME_MAX + 1]) {
  int n = snprintf(out, TIDE_CKPT_NAME_MAX + 1, "%s" INDEX_INFIX "%llu-%llu", sp->name, (unsigned long long)r->lo,
                   (unsigned long long)r->hi);
  return n < 0 ? 0 : (size_t)n > TIDE_CKPT_NAME_MAX ? TIDE_CKPT_NAME_MAX : (size_t)n;
}

/* ---- The Bloom filter, blocked: a hash picks one 512-bit block (a cache
 * line) and sets or tests BLOOM_K bits in it, so a test costs one cache
 * miss. */
static inline const uint64_t *bloom_block(const l_spill_t *sp, uint64_t h) {
  return sp->bloom + 8 * (uint64_t)(((unsigned __int128)h * (sp->nbits / 512)) >> 64);
}

static void bloom_add(l_spill_t *sp, uint64_t h) {
  uint64_t *b = (uint64_t *)bloom_block(sp, h), x = h >> 32 | h << 32;
  for (int i = 0; i < BLOOM_K; i++, x >>= 9) b[(x >> 6) & 7] |= 1ull << (x & 63);
}

static int bloom_has(const l_spill_t *sp, uint64_t h) {
  const uint64_t *b = bloom_block(sp, h);
  uint64_t x = h >> 32 | h << 32;
  for (int i = 0; i < BLOOM_K; i++, x >>= 9)
    if (!(b[(x >> 6) & 7] & (1ull << (x & 63)))) return 0;
  return 1;
}

/* Add the hashes of run r's entries in the checkpoint to the filter. */
static int bloom_load(l_spill_t *sp, struct tide_ckpt *c, const run_t *r, tide_err_t *err) {
  char rn[TIDE_CKPT_NAME_MAX + 1];
  size_t rl = run_name(sp, r, rn), n;
  unsigned char after[16];
  int started = 0, done = 0;
  while (!done) {
    int rc = tide_ckpt_state_scan(c, rn, rl, started ? after : NULL, 16, 65536, (size_t)8 << 20, &sp->scan, &n,
                                  &done, err);
    if (rc) return rc;
    const char *p = sp->scan.data;
    for (size_t i = 0; i < n; i++) {
      size_t sz[2];
      memcpy(sz, p, sizeof sz);
      const unsigned char *k = (const unsigned char *)p + sizeof sz;
      if (sz[0] == 16) {
        uint64_t h = 0;
        for (int b = 0; b < 8; b++) h = h << 8 | k[b];
        bloom_add(sp, h);
        memcpy(after, k, 16);
        started = 1;
      }
      p += sizeof sz + sz[0] + sz[1];
    }
    tide_ckpt_release_pages(c); /* read once */
    if (!n) break;
  }
  return 0;
}

/* A new filter of 16 bits per entry of every run, filled from the runs
 * in the checkpoint: at attach, and when the runs outgrow it (past 12
 * bits an entry: still under 1% false positives, each of which seeks
 * every run; so a group's hash is read back about once per 1.33 times
 * more groups). 0 or an error. */
static int bloom_rebuild(l_spill_t *sp, struct tide_ckpt *c, tide_err_t *err) {
  uint64_t total = 0;
  for (size_t i = 0; i < sp->nruns; i++) total += sp->runs[i].n;
  uint64_t bits = ((total < 4096 ? 4096 : total) * 16 + 511) / 512 * 512;
  uint64_t *f = calloc(bits / 64, sizeof *f);
  if (!f) return tide_err_set(err, -ENOMEM, "out of memory");
  free(sp->bloom);
  sp->bloom = f;
  sp->nbits = bits;
  sp->bloom_cap = bits / 12;
  sp->bloom_bytes = bits / 8;
  for (size_t i = 0; i < sp->nruns; i++) {
    int rc = bloom_load(sp, c, &sp->runs[i], err);
    if (rc) return rc;
  }
  return 0;
}

/* The store's lookup (agg.h): the hashes the filter may hold, looked up
 * in each run of the index (one read transaction per run). */
static int store_lookup(void *ctx, const uint64_t *h, uint32_t n, tide_agg_rec_fn fn, void *arg, tide_err_t *err) {
  l_spill_t *sp = ctx;
  struct tide_ckpt *c = spill_ck(sp, err);
  if (!c) return TIDE_EINVAL;
  if (!sp->bloom) return 0; /* no run yet */
  uint64_t *maybe = malloc((n ? n : 1) * sizeof *maybe);
  if (!maybe) return tide_err_set(err, -ENOMEM, "out of memory");
  uint32_t m = 0;
  for (uint32_t i = 0; i < n; i++)
    if (bloom_has(sp, h[i])) maybe[m++] = h[i];
  int rc = 0;
  for (size_t r = 0; r < sp->nruns && m && !rc; r++) {
    char rn[TIDE_CKPT_NAME_MAX + 1];
    size_t rl = run_name(sp, &sp->runs[r], rn);
    rc = tide_ckpt_state_lookup(c, sp->name, sp->name_len, rn, rl, maybe, m, fn, arg, err);
  }
  free(maybe);
  if (m) tide_ckpt_release_pages(c);
  return rc;
}

/* The store's scan (agg.h): a chunk copied out of a read transaction,
 * then handed to fn record by record. */
static int store_scan(void *ctx, uint64_t after, uint32_t max, tide_agg_rec_fn fn, void *arg, uint64_t *last,
                      int *done, tide_err_t *err) {
  l_spill_t *sp = ctx;
  struct tide_ckpt *c = spill_ck(sp, err);
  if (!c) return TIDE_EINVAL;
  unsigned char k[8];
  tide_ckpt_key_u64(k, after);
  size_t n;
  int rc = tide_ckpt_state_scan(c, sp->name, sp->name_len, after ? k : NULL, 8, max, (size_t)64 << 20, &sp->scan, &n,
                                done, err);
  const char *p = sp->scan.data;
  for (size_t i = 0; i < n && !rc; i++) {
    size_t sz[2];
    memcpy(sz, p, sizeof sz);
    const unsigned char *key = (const unsigned char *)p + sizeof sz;
    p += sizeof sz + sz[0] + sz[1];
    if (sz[0] != 8) continue; /* not a state id: not a record */
    uint64_t sid = 0;
    for (int b = 0; b < 8; b++) sid = sid << 8 | key[b];
    *last = sid;
    rc = fn(arg, sid, key + 8, sz[1], err);
  }
  if (sp->scan.cap > ((size_t)4 << 20)) tide_buf_free(&sp->scan); /* a big chunk is not kept */
  tide_ckpt_release_pages(c); /* a walk reads every stored group once */
  return rc;
}

static int cmp_run(const void *x, const void *y) {
  const run_t *a = x, *b = y;
  return (a->lo > b->lo) - (a->lo < b->lo);
}

/* agg:attach(ck, name, limit): bound this aggregation's memory to limit
 * bytes (state_memory_limit), spilling to its state `name` in the
 * checkpoint ck, with the index runs beside it (their filters are loaded
 * here). Call before restoring: agg:full() then says when to stop,
 * agg:restored() after. */
static int agg_attach(lua_State *L) {
  l_agg_t *u = luaL_checkudata(L, 1, AGG_MT);
  check_agg(L, 1);
  struct tide_ckpt **ck = tide_l_check_ckpt(L, 2);
  size_t nl;
  const char *name = luaL_checklstring(L, 3, &nl);
  lua_Integer limit = luaL_checkinteger(L, 4);
  luaL_argcheck(L, nl > 0 && nl <= TIDE_CKPT_NAME_MAX - 48 && !memchr(name, 0, nl), 3,
                "a state name is 1..152 bytes without NUL");
  luaL_argcheck(L, limit > 0, 4, "a memory limit is > 0 bytes");
  if (u->sp) return luaL_error(L, "agg:attach: attached already");
  l_spill_t *sp = calloc(1, sizeof *sp);
  if (!sp) return luaL_error(L, "out of memory");
  u->sp = sp;
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, 1, 1);
  sp->ck = ck;
  memcpy(sp->name, name, nl);
  sp->name_len = nl;
  sp->limit = (size_t)limit;
  sp->store.ctx = sp;
  sp->store.lookup = store_lookup;
  sp->store.scan = store_scan;
  tide_err_t err = {0, ""};
  int rc = tide_ckpt_state_tail(*ck, name, nl, &sp->records, &sp->last, &err);
  /* the runs: every state "<name>.keys.<lo>-<hi>" */
  tide_ckpt_stats_t st;
  tide_buf_t states = TIDE_BUF_INIT;
  if (!rc) rc = tide_ckpt_stats(*ck, &st, &states, &err);
  for (size_t i = 0; !rc && i < st.nstates; i++) {
    tide_ckpt_state_stat_t s;
    memcpy(&s, states.data + i * sizeof s, sizeof s);
    size_t pl = nl + sizeof INDEX_INFIX - 1;
    unsigned long long lo, hi;
    char tail;
    if (strncmp(s.name, name, nl) || strncmp(s.name + nl, INDEX_INFIX, sizeof INDEX_INFIX - 1) ||
        sscanf(s.name + pl, "%llu-%llu%c", &lo, &hi, &tail) != 2)
      continue;
    if (sp->nruns == RUNS_MAX) {
      rc = tide_err_set(&err, TIDE_ECORRUPT, "checkpoint state %s: more than %d index runs", name, RUNS_MAX);
      break;
    }
    run_t *r = &sp->runs[sp->nruns++];
    r->lo = lo;
    r->hi = hi;
    r->n = s.entries;
  }
  tide_buf_free(&states);
  if (!rc) qsort(sp->runs, sp->nruns, sizeof *sp->runs, cmp_run);
  /* a run whose range holds another's is what a merge left part way (its
   * sources are whole): dropped */
  for (size_t i = 0; !rc && i < sp->nruns; i++) {
    int partial = 0;
    for (size_t j = 0; j < sp->nruns; j++)
      if (j != i && sp->runs[i].lo <= sp->runs[j].lo && sp->runs[j].hi <= sp->runs[i].hi &&
          (sp->runs[i].lo != sp->runs[j].lo || sp->runs[i].hi != sp->runs[j].hi))
        partial = 1;
    if (!partial) continue;
    char rn[TIDE_CKPT_NAME_MAX + 1];
    size_t rl = run_name(sp, &sp->runs[i], rn);
    rc = tide_ckpt_state_drop(*ck, rn, rl, &err);
    memmove(&sp->runs[i], &sp->runs[i + 1], (sp->nruns - i - 1) * sizeof *sp->runs);
    sp->nruns--;
    i = (size_t)-1;
  }
  if (!rc && sp->nruns) rc = bloom_rebuild(sp, *ck, &err);
  tide_ckpt_release_pages(*ck);
  if (rc) return luaL_error(L, "%s", err.msg);
  return 0;
}

static l_spill_t *check_attached(lua_State *L, const char *fn) {
  l_agg_t *u = luaL_checkudata(L, 1, AGG_MT);
  check_agg(L, 1);
  if (!u->sp) luaL_error(L, "agg:%s: not attached (agg:attach)", fn);
  return u->sp;
}

/* agg:full() -> true when restoring must stop: the index holds every
 * stored group and the groups in memory have passed the limit. */
static int agg_full(lua_State *L) {
  l_spill_t *sp = check_attached(L, "full");
  lua_pushboolean(L, sp->nruns > 0 && held(luaL_checkudata(L, 1, AGG_MT)) > sp->limit);
  return 1;
}

/* agg:restored(): the restore is over; the stored groups it left out are
 * served from the checkpoint from now on. */
static int agg_restored(lua_State *L) {
  l_spill_t *sp = check_attached(L, "restored");
  tide_agg_t *a = check_agg(L, 1);
  uint64_t mem = tide_agg_groups(a);
  tide_agg_set_store(a, &sp->store, sp->records > mem ? sp->records - mem : 0, sp->last + 1);
  return 0;
}

static int cmp_pair(const void *x, const void *y) {
  const uint64_t *a = x, *b = y;
  return a[0] != b[0] ? (a[0] > b[0]) - (a[0] < b[0]) : (a[1] > b[1]) - (a[1] < b[1]);
}

/* agg:take_index() -> run name, change set | nil: what the commit that
 * take_changes is for writes to the index: nothing until the groups
 * first pass the limit; then, in that commit, a run of every group; from
 * then on a run of the groups the batch created. Entries in key order:
 * a new database filled by appends. (Index entries of deleted groups are
 * left to the merges, which drop them.) */
static int agg_take_index(lua_State *L) {
  l_agg_t *u = luaL_checkudata(L, 1, AGG_MT);
  l_spill_t *sp = check_attached(L, "take_index");
  tide_agg_t *a = check_agg(L, 1);
  free(sp->pend_h);
  sp->pend_h = NULL;
  memset(&sp->pend, 0, sizeof sp->pend);
  const uint64_t *gone, *hashes;
  sp->pend_dead = tide_agg_gone(a, &gone, &hashes);
  if (!sp->nruns) sp->indexing = held(u) > sp->limit;
  if (!sp->nruns && !sp->indexing) {
    lua_pushnil(L);
    return 1;
  }
  const uint32_t *gids;
  uint32_t nd = tide_agg_dirty(a, &gids), ng = (uint32_t)tide_agg_groups(a);
  uint64_t from = sp->nruns ? tide_agg_new_sids_from(a) : 1, to = tide_agg_next_sid(a);
  uint32_t most = sp->nruns ? nd : ng;
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  uint64_t *pairs = x->p[0] = malloc(((size_t)most + 1) * 2 * sizeof *pairs);
  if (!pairs) return luaL_error(L, "out of memory");
  size_t m = 0;
  for (uint32_t i = 0; i < most; i++) {
    uint32_t g = sp->nruns ? gids[i] : i;
    uint64_t sid = tide_agg_sid(a, g);
    if (sid < from) continue; /* an older group: in an earlier run */
    pairs[2 * m] = tide_agg_hash(a, g);
    pairs[2 * m++ + 1] = sid;
  }
  if (!m) {
    lua_pushnil(L);
    return 1;
  }
  qsort(pairs, m, 2 * sizeof *pairs, cmp_pair);
  uint64_t *hs = malloc(m * sizeof *hs);
  if (!hs) return luaL_error(L, "out of memory");
  for (size_t i = 0; i < m; i++) hs[i] = pairs[2 * i];
  sp->pend_h = hs;
  sp->pend.lo = from;
  sp->pend.hi = to;
  sp->pend.n = m;
  char rn[TIDE_CKPT_NAME_MAX + 1];
  size_t rl = run_name(sp, &sp->pend, rn);
  lua_pushlstring(L, rn, rl);
  tide_l_changes_t *c = tide_l_push_changes(L);
  if (tide_buf_reserve(&c->buf, m * 32)) return luaL_error(L, "out of memory");
  for (size_t i = 0; i < m; i++) {
    unsigned char key[16];
    size_t mark;
    tide_ckpt_key_u64(key, pairs[2 * i]);
    tide_ckpt_key_u64(key + 8, pairs[2 * i + 1]);
    if (tide_l_changes_put_begin(c, key, 16, &mark)) return luaL_error(L, "out of memory");
    tide_l_changes_put_end(c, mark);
  }
  tide_l_scratch_free(x);
  lua_remove(L, -3);
  return 2;
}

/* Merge runs [i, j) of the index into one (ckpt.h's index merge; with
 * gc, entries of deleted groups are dropped). 0 or an error (err set). */
static int merge_runs(l_spill_t *sp, struct tide_ckpt *c, size_t i, size_t j, int gc, tide_err_t *err) {
  char names[RUNS_MAX][TIDE_CKPT_NAME_MAX + 1];
  const char *srcs[RUNS_MAX];
  size_t lens[RUNS_MAX] = {0};
  for (size_t k = i; k < j; k++) {
    lens[k - i] = run_name(sp, &sp->runs[k], names[k - i]);
    srcs[k - i] = names[k - i];
  }
  run_t r = {sp->runs[i].lo, sp->runs[j - 1].hi, 0};
  char dn[TIDE_CKPT_NAME_MAX + 1];
  size_t dl = run_name(sp, &r, dn);
  for (size_t k = 0; k < j - i; k++) /* a run merged alone (to drop dead entries) needs another name */
    if (lens[k] == dl && !memcmp(names[k], dn, dl)) {
      r.hi++;
      dl = run_name(sp, &r, dn);
      k = (size_t)-1;
    }
  int rc = tide_ckpt_index_merge(c, sp->name, sp->name_len, srcs, lens, j - i, dn, dl, gc, &r.n, err);
  if (rc) return rc;
  memmove(&sp->runs[i + 1], &sp->runs[j], (sp->nruns - j) * sizeof *sp->runs);
  sp->nruns -= j - i - 1;
  sp->runs[i] = r;
  if (!r.n) { /* nothing left: the merge dropped it */
    memmove(&sp->runs[i], &sp->runs[i + 1], (sp->nruns - i - 1) * sizeof *sp->runs);
    sp->nruns--;
  }
  return 0;
}

/* The size class of a run: 0 up to RUNS_BASE entries, then one more per
 * RUNS_FAN times as many. */
static int run_class(const run_t *r) {
  int c = 0;
  for (uint64_t n = RUNS_BASE; r->n > n && c < 40; n *= RUNS_FAN) c++;
  return c;
}

/* After a commit: the run it wrote joins the index (and the filter);
 * the newest RUNS_FAN runs merge while they are of one size class, and
 * every run merges (dropping dead entries) when most entries are dead. */
static int index_commit(l_spill_t *sp, tide_err_t *err) {
  struct tide_ckpt *c = spill_ck(sp, err);
  if (!c) return TIDE_EINVAL;
  int rc = 0;
  if (sp->pend_h) {
    if (sp->nruns == RUNS_MAX) return tide_err_set(err, TIDE_ETOOBIG, "state %s: too many index runs", sp->name);
    sp->runs[sp->nruns++] = sp->pend;
    uint64_t total = 0;
    for (size_t i = 0; i < sp->nruns; i++) total += sp->runs[i].n;
    if (!sp->bloom || total > sp->bloom_cap) {
      rc = bloom_rebuild(sp, c, err);
    } else {
      for (uint64_t i = 0; i < sp->pend.n; i++) bloom_add(sp, sp->pend_h[i]);
    }
    free(sp->pend_h);
    sp->pend_h = NULL;
    if (rc) return rc;
  }
  if (sp->nruns) sp->dead += sp->pend_dead;
  sp->pend_dead = 0;
  uint64_t total = 0;
  for (size_t i = 0; i < sp->nruns; i++) total += sp->runs[i].n;
  if (sp->nruns && sp->dead * 2 > total) {
    sp->dead = 0;
    if ((rc = merge_runs(sp, c, 0, sp->nruns, 1, err))) return rc;
    return bloom_rebuild(sp, c, err); /* without the dead hashes */
  }
  while (sp->nruns >= RUNS_FAN && (run_class(&sp->runs[sp->nruns - RUNS_FAN]) == run_class(&sp->runs[sp->nruns - 1]) ||
                                   sp->nruns > RUNS_MAX - 4))
    if ((rc = merge_runs(sp, c, sp->nruns - RUNS_FAN, sp->nruns, 0, err))) return rc;
  return 0;
}

/* agg:clear_changes(): after a commit. Attached, it then adds the run
 * the commit wrote to the index (merging runs), and spills the least
 * recently touched groups while memory passes the limit, down to 3/4 of
 * it (so that the next batches do not spill again at once). Returns the
 * number of groups spilled. */
static int agg_clear_changes(lua_State *L) {
  l_agg_t *u = luaL_checkudata(L, 1, AGG_MT);
  tide_agg_t *a = check_agg(L, 1);
  tide_agg_clear_dirty(a);
  uint32_t n = 0;
  l_spill_t *sp = u->sp;
  if (!sp) {
    lua_pushinteger(L, 0);
    return 1;
  }
  tide_err_t err = {0, ""};
  int rc = index_commit(sp, &err);
  sp->indexing = 0;
  if (!rc && sp->nruns && held(u) > sp->limit) {
    size_t target = sp->limit / 4 * 3;
    rc = tide_agg_spill(a, target > sp->bloom_bytes ? target - sp->bloom_bytes : 0, &n, &err);
  }
  /* what this batch read of the checkpoint (lookups, merges, walks) is in
   * the page cache: the process need not keep it mapped */
  if (*sp->ck) tide_ckpt_release_pages(*sp->ck);
  if (rc) return luaL_error(L, "state %s: %s", sp->name, err.msg);
  lua_pushinteger(L, n);
  return 1;
}

/* agg:spill_counts() -> groups only in the store, groups spilled and
 * groups loaded back since the aggregation was made */
static int agg_spill_counts(lua_State *L) {
  tide_agg_t *a = check_agg(L, 1);
  uint64_t s, l;
  tide_agg_spill_counts(a, &s, &l);
  lua_pushinteger(L, (lua_Integer)tide_agg_spilled(a));
  lua_pushinteger(L, (lua_Integer)s);
  lua_pushinteger(L, (lua_Integer)l);
  return 3;
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
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

/* Push what evict/remove hand back: the rows batch and an array of the
 * sids (freed here: x owns them while the pushes may raise), or with
 * want_rows 0 their number; the sids are noted for take_changes. */
static int push_removed(lua_State *L, tide_l_scratch_t *x, tide_batch_t *b, uint64_t *sids, uint32_t n,
                        int want_rows) {
  x->p[0] = sids;
  if (b) tide_l_push_batch(L, b);
  if (!want_rows) {
    lua_pushinteger(L, (lua_Integer)n);
    tide_l_scratch_free(x);
    return 1;
  }
  lua_createtable(L, (int)n, 0);
  for (uint32_t i = 0; i < n; i++) {
    lua_pushinteger(L, (lua_Integer)sids[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  tide_l_scratch_free(x);
  return 2;
}

/* agg:evict(col, bound [, want_rows]) -> Batch, {sid..}: the groups whose
 * value in column col (a 1-based index or a name, over the result schema:
 * a key, or an aggregate whose result is int or timestamp) is not NULL and
 * <= bound, removed. want_rows false: just the number removed (no rows
 * are built). */
static int agg_evict(lua_State *L) {
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
  tide_l_scratch_t *x = tide_l_push_scratch(L); /* owns the sids until they are pushed */
  tide_batch_t *b = NULL;
  uint64_t *sids;
  uint32_t n;
  tide_err_t err = {0, ""};
  int rc = tide_agg_evict(a, col, (int64_t)bound, want_rows ? &b : NULL, &sids, &n, &err);
  release_walk(L);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  return push_removed(L, x, b, sids, n, want_rows);
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
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  uint32_t n = keys->nrows, *gids = x->p[0] = malloc((n ? n : 1) * sizeof *gids);
  if (!gids) return luaL_error(L, "out of memory");
  tide_err_t err = {0, ""};
  int rc = tide_agg_lookup(a, keys, gids, &err);
  if (rc == TIDE_EINVAL) return luaL_argerror(L, 2, err.msg);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_createtable(L, (int)n, 0);
  for (uint32_t i = 0; i < n; i++) {
    if (gids[i] == UINT32_MAX) lua_pushboolean(L, 0);
    else lua_pushinteger(L, (lua_Integer)tide_agg_sid(a, gids[i]));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  tide_l_scratch_free(x);
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
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushboolean(L, 1);
  return 1;
}

/* agg:remove({sid..}) -> Batch, {sid..}: remove the groups, handing back
 * their result rows and state ids in gid (first-seen) order. */
static int agg_remove(lua_State *L) {
  tide_agg_t *a = check_agg(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  uint32_t n = (uint32_t)lua_rawlen(L, 2);
  tide_l_scratch_t *x = tide_l_push_scratch(L);
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
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  return push_removed(L, x, b, sids, m, 1);
}

int tide_l_agg_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"push", agg_push},
                                     {"set_static", agg_set_static},
                                     {"scan_files", agg_scan_files},
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
                                     {"attach", agg_attach},
                                     {"full", agg_full},
                                     {"restored", agg_restored},
                                     {"take_index", agg_take_index},
                                     {"spill_counts", agg_spill_counts},
                                     {NULL, NULL}};
  tide_l_class(L, AGG_MT, methods, agg_gc, 0);
  lua_pushcfunction(L, l_agg);
  lua_setfield(L, -2, "agg");
  return 0;
}
