/*
 * l_tide.h: the Lua side of batches and schemas, shared by the bindings.
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

#include "batch.h"
#include "err.h"
#include "schema.h"

#define TIDE_L_BATCH_MT "tide.Batch"

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

/* Push a tide.Batch userdata that takes ownership of b (freed by __gc or
 * __close). */
void tide_l_push_batch(lua_State *L, tide_batch_t *b);

/* The batch of the tide.Batch at idx; raises when it is not one or is
 * closed. The batch stays owned by the userdata. */
tide_batch_t *tide_l_check_batch(lua_State *L, int idx);

/* Register the metatable `name` with methods as __index (may be NULL) and
 * gc as __gc (may be NULL), and also as __close when `close` is set. */
void tide_l_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc, int close);

/* Register the tide.Batch metatable and add schema_parse, ts_parse,
 * ts_format, json_batch and batch_json to the table on top of the stack.
 * Returns 0 (lua_CFunction-compatible, nothing pushed). */
int tide_l_batch_open(lua_State *L);

#endif
