/*
 * l_decode.c: the bindings of the sources' and sinks' text and rows:
 * file chunks into batches (decode.h: framing, formats, the bad-record
 * policy), batches into CSV (csv.h), the rate source's rows (rate.h), and
 * file name patterns. Each is a thin shell over the core function.
 *
 *   core.decode(format, schema, text, final, opts)
 *                     -> Batch, used, lines, dropped, {lines} [, {dead}] | nil, msg, ENAME
 *   core.csv_encode({Batch..} [, {header =, sep =}]) -> string
 *   core.rate_batch(schema, start, rows_per_second, lo, hi) -> Batch | nil, msg, ENAME
 *   core.glob(pattern)                   -> {paths} | nil, msg
 *   core.dead_letter_text(bytes)         -> text, base64
 */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "decode.h"
#include "json.h"
#include "jsonl.h"
#include "l_tide.h"
#include "pool.h"
#include "rate.h"

static const char *const formats[] = {"json", "csv", "text", NULL};
static const char *const bad_modes[] = {"fail", "drop", "dead_letter", NULL};

/* core.decode(format, schema, text, final, opts) ->
 *   batch, used, lines, dropped, {dropped lines} [, {dead records}]
 *   | nil, "line N: reason", ENAME
 * Decodes the complete records of text (a chunk of a file; a record cut
 * at the end is left for the next chunk unless final) into a batch, by
 * decode.h's rules. opts: line (the number of text's first line, default
 * 1), bad ("fail", "drop" or "dead_letter"), sep (CSV separator),
 * multi_line (CSV: quoted fields may span lines), ignore_unknown (JSON). Returns the batch, the bytes consumed, the lines
 * consumed, the number of bad records dropped, the line numbers of the
 * first ones, and with "dead_letter" the bad records set aside, as
 * {line =, reason =, text =} tables (text: the record's bytes, which need
 * not be UTF-8). */
static int l_decode(lua_State *L) {
  tide_decode_opts_t o = {TIDE_FMT_JSON, TIDE_BAD_FAIL, ',', 0, 0};
  o.format = (tide_format_t)luaL_checkoption(L, 1, NULL, formats);
  tide_schema_t *s = tide_l_check_schema(L, 2);
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
  lua_getfield(L, 5, "multi_line");
  o.multi_line = lua_toboolean(L, -1);
  lua_pop(L, 5);
  tide_pool_t *pool = tide_l_pool(L);
  tide_l_scratch_t *x = tide_l_push_scratch(L); /* holds the batch and the dead records until pushed */
  tide_batch_t *b = NULL;
  tide_err_t err = {0, ""};
  tide_decode_result_t r;
  int rc = tide_decode_par(pool, (size_t)tide_pool_threads(pool) * 2, s, &o, text, len, final, line, &b, &r, &err);
  if (rc == -ENOMEM) return luaL_error(L, "out of memory");
  if (rc == TIDE_EINVAL) return luaL_error(L, "decode: %s", err.msg);
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  x->batch[0] = b;
  x->p[0] = (void *)r.dead;
  const tide_bad_record_t *dead = r.dead;
  tide_l_push_batch(L, b);
  x->batch[0] = NULL; /* the userdata owns it */
  lua_pushinteger(L, (lua_Integer)r.used);
  lua_pushinteger(L, r.lines);
  lua_pushinteger(L, (lua_Integer)r.dropped);
  lua_createtable(L, (int)r.ndropped_lines, 0);
  for (uint32_t i = 0; i < r.ndropped_lines; i++) {
    lua_pushinteger(L, r.dropped_lines[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  if (o.bad != TIDE_BAD_DEAD_LETTER) return 5; /* x holds nothing */
  lua_createtable(L, (int)r.ndead, 0);
  for (size_t i = 0; i < r.ndead; i++) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, dead[i].line);
    lua_setfield(L, -2, "line");
    lua_pushstring(L, dead[i].reason);
    lua_setfield(L, -2, "reason");
    lua_pushlstring(L, dead[i].text, dead[i].len);
    lua_setfield(L, -2, "text");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  tide_l_scratch_free(x);
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
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  int rc = header && s ? tide_csv_enc_header(s, *sep, &x->buf) : 0;
  for (lua_Integer i = 1; !rc && i <= n; i++) {
    lua_rawgeti(L, 1, i);
    tide_batch_t *b = tide_l_check_batch(L, -1);
    rc = tide_csv_enc_rows(b, 0, b->nrows, *sep, &x->buf);
    lua_pop(L, 1);
  }
  if (rc) return luaL_error(L, "out of memory");
  lua_pushlstring(L, x->buf.data ? x->buf.data : "", x->buf.len);
  tide_l_scratch_free(x);
  return 1;
}

/* core.rate_batch(schema, start, rows_per_second, lo, hi) -> Batch | nil, msg, ENAME
 * Rows [lo, hi) of the rate source (rate.h), made in C a column at a time. */
static int l_rate_batch(lua_State *L) {
  tide_schema_t *s = tide_l_check_schema(L, 1);
  lua_Integer start = luaL_checkinteger(L, 2), rps = luaL_checkinteger(L, 3);
  lua_Integer lo = luaL_checkinteger(L, 4), hi = luaL_checkinteger(L, 5);
  tide_batch_t *b = NULL;
  int rc = tide_rate_batch(s, start, rps, lo, hi, &b);
  if (rc == TIDE_EINVAL)
    return luaL_error(L, "rate_batch: needs a schema (timestamp, int), rows_per_second >= 1 and 0 <= lo <= hi");
  if (rc == TIDE_ESCHEMA) {
    char msg[200];
    snprintf(msg, sizeof msg, "rows %lld..%lld from start %lld at %lld a second: timestamps outside the valid range "
             TIDE_TS_RANGE_TEXT, (long long)lo, (long long)hi - 1, (long long)start, (long long)rps);
    return tide_l_fail(L, rc, NULL, msg);
  }
  if (rc) return tide_l_fail(L, rc, NULL, NULL);
  tide_l_push_batch(L, b);
  return 1;
}

/* core.dead_letter_text(bytes) -> text, base64
 * What a dead-letter topic stores of bytes that need not be UTF-8: the text
 * with each invalid byte as U+FFFD (the bytes themselves when they are
 * UTF-8), and the exact bytes in base64 (decode.h). */
static int l_dead_letter_text(lua_State *L) {
  size_t n;
  const char *p = luaL_checklstring(L, 1, &n);
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  if (tide_utf8_repair(p, n, &x->buf)) return luaL_error(L, "out of memory");
  lua_pushlstring(L, x->buf.data ? x->buf.data : "", x->buf.len);
  x->buf.len = 0;
  if (tide_base64_enc(p, n, &x->buf)) return luaL_error(L, "out of memory");
  lua_pushlstring(L, x->buf.data ? x->buf.data : "", x->buf.len);
  tide_l_scratch_free(x);
  return 2;
}

static void glob_release(void *g) { globfree(g); }

/* core.glob(pattern) -> sorted array of the paths matching (files and
 * directories; empty when none) | nil, msg. */
static int l_glob(lua_State *L) {
  const char *pat = tide_l_check_cname(L, 1, "glob: pattern", TIDE_L_PATH);
  glob_t g;
  memset(&g, 0, sizeof g);
  int rc = glob(pat, GLOB_MARK, NULL, &g);
  if (rc && rc != GLOB_NOMATCH) {
    globfree(&g);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot list '%s'%s", pat, rc == GLOB_NOSPACE ? ": out of memory" : ": read error");
    return 2;
  }
  tide_l_push_strings(L, g.gl_pathv, g.gl_pathc, glob_release, &g);
  return 1;
}

int tide_l_decode_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"decode", l_decode},
                                 {"csv_encode", l_csv_encode},
                                 {"rate_batch", l_rate_batch},
                                 {"glob", l_glob},
                                 {"dead_letter_text", l_dead_letter_text},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  return 0;
}
