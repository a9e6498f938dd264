/*
 * l_tide.h: what the Lua bindings share.
 *
 * Layout. Only core/l_*.c include lua.h; each binding file wraps one
 * subsystem and registers its types and functions into the module table
 * `tide.core` from its open function, listed once in TIDE_L_BINDINGS below:
 *   l_tide.c    this header's helpers: the failure triple, the GC'd scratch,
 *               metatable registration
 *   l_batch.c   tide.Batch, Lua <-> batch rows, schema conversions, JSON
 *               lines, timestamps
 *   l_schema.c  tide.Schema
 *   l_expr.c    tide.Expr (core/expr)
 *   l_ops.c     batch -> batch operators: project, where, window_expand,
 *               tide.Join, sort, concat, slice
 *   l_agg.c     tide.Agg (core/agg): grouping, streaming state
 *   l_session.c tide.Session (core/session): session windows
 *   l_udf.c     Lua functions over batches: udf_filter, udf_map, rows_batch
 *   l_decode.c  decode (file chunks -> batches), glob, csv_encode, rate_batch
 *   l_pool.c    tide.Pool: the worker threads of the state (core/pool)
 *   l_store.c, l_ckpt.c, l_loop.c, l_fs.c: the store, checkpoints, the
 *               event loop, file system calls
 *   l_readline.c  tide.Readline: the REPL's line editor (GNU readline)
 *   l_http.c    tide.HttpServer (core/http): the UI's read-only HTTP server
 *   l_kafka.c   tide.KafkaReader (core/kafka): the Kafka source's client
 *   l_kafka_sink.c  tide.KafkaSink (core/kafka_sink): the Kafka sink's producer
 *   l_core.c    luaopen_tide_core: calls every open function of the list
 * To add a binding file: write its `int tide_l_NAME_open(lua_State *L)`
 * (module table on top of the stack, leaves the stack as it found it,
 * returns 0) and add X(NAME) to TIDE_L_BINDINGS.
 *
 * Conventions. Misuse (a wrong argument type, an unknown option) raises.
 * A failure of the data or the system returns the failure triple
 * nil, message, ENAME (tide_l_fail). C memory held across Lua calls that
 * can raise lives in a tide_l_scratch_t on the Lua stack, so that a Lua
 * error frees it.
 *
 * Conversions between Lua values and batch rows:
 *   int, timestamp  Lua integer (a float with an integral value is accepted
 *                   on input; a timestamp may also be an ISO-8601 string)
 *   double          Lua number
 *   bool            Lua boolean
 *   string          Lua string (valid UTF-8)
 *   json            any Lua value but functions, userdata and threads;
 *                   a table whose keys are exactly 1..n is an array, any
 *                   other table an object (string or integer keys); an empty
 *                   table is {} unless its metatable has __jsontype = "array"
 *   NULL            nil / an absent key
 *
 * None of these functions leaves C memory behind when the Lua API raises
 * (out of memory): whatever they allocate is held by a userdata with __gc
 * until it is handed over.
 */
#ifndef TIDE_L_TIDE_H
#define TIDE_L_TIDE_H

#include <lauxlib.h>
#include <lua.h>

#include "agg.h"
#include "batch.h"
#include "err.h"
#include "expr.h"
#include "schema.h"

#define TIDE_L_BATCH_MT "tide.Batch"
#define TIDE_L_SCHEMA_MT "tide.Schema"
#define TIDE_L_EXPR_MT "tide.Expr"
#define TIDE_L_SCRATCH_MT "tide.Scratch"

/* The binding files, in registration order (tide_l_tide_open registers the
 * scratch type everything else uses, so it comes first). */
#define TIDE_L_BINDINGS(X) \
  X(tide) X(batch) X(schema) X(expr) X(ops) X(agg) X(session) X(udf) X(pool) X(decode) X(store) X(loop) X(ckpt) \
  X(fs) X(readline) X(http) X(pg) X(sjoin) X(kafka) X(kafka_sink) X(kgroup) X(repart)

#define TIDE_L_DECLARE_OPEN(name) int tide_l_##name##_open(lua_State *L);
TIDE_L_BINDINGS(TIDE_L_DECLARE_OPEN)
#undef TIDE_L_DECLARE_OPEN

/* ------------------------------------------------------------ failures --- */

/* The failure triple of the bindings, as luaL_fileresult is lauxlib's:
 * push nil, the message and the name of rc (tide_errname: "ESCHEMA",
 * "ENOENT" ...) and return 3, for `return tide_l_fail(...)`. The message
 * is msg, or tide_strerror(rc) when msg is NULL or empty, prefixed with
 * "what: " when what is not NULL (a path, or the error's name). */
int tide_l_fail(lua_State *L, int rc, const char *what, const char *msg);

/* ------------------------------------------------- names and paths --- */

/* A name or a path that crosses into C, where a string ends at its first
 * NUL byte: the string at idx, or a raise (the caller's mistake, like a bad
 * argument) when it is not a string, holds a NUL byte (C would cut it there:
 * "a\0b" would name "a"), or, with TIDE_L_PATH, is empty (C would make it
 * the current directory or, joined with "/x", the file-system root). what
 * names the value in the message: "topic name", "checkpoint path"; idx may
 * be relative (an option read with lua_getfield). Every binding that hands
 * a name or a path to C takes it through here. */
#define TIDE_L_PATH 1
const char *tide_l_check_cname(lua_State *L, int idx, const char *what, int flags);

/* tide_l_check_cname for an optional value: NULL when it is nil or none. */
const char *tide_l_opt_cname(lua_State *L, int idx, const char *what, int flags);

/* ------------------------------------------------------------- scratch --- */

/* GC-owned scratch: C memory a binding builds before it can hand it over
 * (arrays, columns of an output batch, a buffer, a schema, batches). It sits on the
 * Lua stack, so its __gc frees it when anything raises in between.
 * Successful calls free it at once with tide_l_scratch_free: the collector
 * does not see this C memory and may run much later. */
typedef struct tide_l_scratch {
  void *p[8];            /* malloc'd arrays, freed */
  tide_col_t *cols;      /* ncols columns, each freed, then the array */
  uint32_t ncols;
  tide_buf_t buf;        /* freed */
  tide_schema_t *schema; /* one reference, dropped */
  tide_batch_t *batch[2]; /* freed */
} tide_l_scratch_t;

/* Push a new, empty scratch. */
tide_l_scratch_t *tide_l_push_scratch(lua_State *L);

/* Free what the scratch holds; it stays usable and empty. */
void tide_l_scratch_free(tide_l_scratch_t *x);

/* n zeroed columns owned by x (x->cols, x->ncols); raises when out of
 * memory. */
tide_col_t *tide_l_scratch_cols(lua_State *L, tide_l_scratch_t *x, uint32_t n);

/* ----------------------------------------------------- shared userdata --- */

/* The schema of the tide.Schema at idx (raises when it is not one). */
/* The format (a string at fmt: json, csv or text) and decoding options
 * (the table at opts: bad, sep, ignore_unknown, multi_line) of
 * core.file_read into *o. Raises on a bad one. */
struct tide_decode_opts;
void tide_l_check_decode(lua_State *L, int fmt, int opts, struct tide_decode_opts *o);

tide_schema_t *tide_l_check_schema(lua_State *L, int idx);

/* The state's worker pool (l_pool.c), made on first use with TIDE_WORKERS
 * or the CPU count threads; raises when its threads cannot start or
 * TIDE_WORKERS is bad. Valid until the next core.workers(n). */
struct tide_pool *tide_l_pool(lua_State *L);

/* The expression of the tide.Expr at idx (raises when it is not one or was
 * freed). */
tide_expr_t *tide_l_check_expr(lua_State *L, int idx);

/* The names of the aggregate kinds, indexed by tide_agg_kind_t (index 0,
 * TIDE_AGG_NONE, is NULL), NULL-terminated after the last. */
extern const char *const tide_l_agg_names[];

/* The aggregate specs of the Lua array at idx ({kind =, arg_type =,
 * name =} ..., as frame.lua plans them) in an array held by x->p[0];
 * *n gets their number. Raises on a bad entry. The names point into the
 * Lua strings: valid while the array at idx is (l_agg.c). */
tide_agg_spec_t *tide_l_check_agg_specs(lua_State *L, int idx, tide_l_scratch_t *x, uint32_t *n);

/* Run the Lua function at stack index fn as a filter over the rows of in,
 * in one protected call (l_udf.c): x->p[slot] gets the array of the rows
 * for which fn(row) is truthy, *n their number; first is the number of
 * input rows before this batch (messages count rows from the input's
 * start). Returns 1; or, when fn raises, pushes nil and the message
 * ("row N {json}: ..." with a traceback) and returns 0. x->buf is used for
 * the message. */
int tide_l_udf_select(lua_State *L, const tide_batch_t *in, int fn, lua_Integer first, tide_l_scratch_t *x, int slot,
                      uint32_t *n);

/* --------------------------------------------------------------- batches --- */

/* Push the value of row `row` of column c: nil for NULL. A json value is
 * decoded to Lua (objects -> tables without the null members, arrays ->
 * sequences with nil holes, integer literals -> integers). Returns 0, or
 * TIDE_ECORRUPT after pushing nil when json text does not parse. */
int tide_l_push_value(lua_State *L, const tide_col_t *c, uint32_t row);

/* Push row `row` of b as a table keyed by column name (NULLs absent). */
void tide_l_push_row(lua_State *L, const tide_batch_t *b, uint32_t row);

/* Append each row of the Lua array at idx (tables keyed by column name) to
 * owned batch b. flags: TIDE_JSON_IGNORE_UNKNOWN. A missing key takes the
 * field's default, else NULL when nullable. On a bad row nothing of this call
 * is kept and err->msg reads "row 3: field 'signal': expected int, got
 * string \"abc\"". Returns 0, TIDE_ESCHEMA, TIDE_ETOOBIG or -ENOMEM; raises
 * only when the Lua API does (out of memory). */
int tide_l_rows_to_batch(lua_State *L, int idx, tide_batch_t *b, int flags, tide_err_t *err);

/* Append the one row at idx (a table keyed by column name) to owned batch
 * b, with the rules of tide_l_rows_to_batch; on a bad row nothing is added
 * and err->msg reads "field 'signal': expected int, got ...". scratch is a
 * buffer owned by the caller (for json values), reused across calls; keep
 * it in memory the GC frees (a userdata) if a raise could skip its free. */
int tide_l_row_to_batch(lua_State *L, int idx, tide_batch_t *b, int flags, tide_buf_t *scratch, tide_err_t *err);

/* Build a schema from the DDL string or the array form at idx:
 *   { {"ts", "timestamp"}, {"signal", "int?", default = 0},
 *     {name = "kind", type = "string", nullable = true, default = "view"} }
 * *out gets one reference. Returns 0, TIDE_EPARSE or TIDE_EINVAL (err says
 * which entry is wrong), or -ENOMEM. */
int tide_l_schema_from_lua(lua_State *L, int idx, tide_schema_t **out, tide_err_t *err);

/* Push the array form of s: { {name, "type[?]", default = value}, ... }. */
void tide_l_push_schema(lua_State *L, const tide_schema_t *s);

/* Push the canonical DDL text of s (tide_schema_to_ddl). */
void tide_l_push_ddl(lua_State *L, const tide_schema_t *s);

/* Push a tide.Batch userdata that takes ownership of b (freed by __gc or
 * __close). */
void tide_l_push_batch(lua_State *L, tide_batch_t *b);

/* The batch of the tide.Batch at idx; raises when it is not one or is
 * closed. The batch stays owned by the userdata. */
tide_batch_t *tide_l_check_batch(lua_State *L, int idx);
/* The same, taken from the userdata: the caller owns the batch from now
 * on, and the tide.Batch is closed (the append on a thread, l_store.c). */
tide_batch_t *tide_l_take_batch(lua_State *L, int idx);

/* The store of the open tide.Store (core) userdata at idx; raises when it
 * is not one or is closed (l_store.c). */
struct tide_store *tide_l_check_store(lua_State *L, int idx);

/* Register the metatable `name` with methods as __index (may be NULL) and
 * gc as __gc (may be NULL), and also as __close when `close` is set. */
void tide_l_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc, int close);

/* Push an array of the n strings v[0..n-1], then release(ctx) (the
 * caller's list): the table is built under lua_pcall, so a raise (out of
 * memory) frees the list before it goes on. */
void tide_l_push_strings(lua_State *L, char *const *v, size_t n, void (*release)(void *), void *ctx);

/* Set fn as the __tostring of the metatable `name` (registered before). */
void tide_l_class_tostring(lua_State *L, const char *name, lua_CFunction fn);

#endif
