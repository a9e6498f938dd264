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
 *   core.file_read(format, schema, ranges, opts [, thread]) -> FileRead
 *                     fr:result() -> {Batch..}, dropped, {dead}, {end lines} | nil, kind, range, msg, n, line
 *   core.file_cut(path, p, budget, must, to) -> cut | false | nil, msg, ENAME
 */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "decode.h"
#include "fileread.h"
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
/* The decoding options of table idx (bad, sep, ignore_unknown,
 * multi_line) into o. */
static void check_decode_opts(lua_State *L, int idx, tide_decode_opts_t *o) {
  luaL_checktype(L, idx, LUA_TTABLE);
  lua_getfield(L, idx, "bad");
  o->bad = (tide_bad_policy_t)luaL_checkoption(L, -1, "fail", bad_modes);
  lua_getfield(L, idx, "sep");
  o->sep = luaL_optstring(L, -1, ",")[0];
  lua_getfield(L, idx, "ignore_unknown");
  o->json_flags = lua_toboolean(L, -1) ? TIDE_JSON_IGNORE_UNKNOWN : 0;
  lua_getfield(L, idx, "multi_line");
  o->multi_line = lua_toboolean(L, -1);
  lua_pop(L, 4);
}

void tide_l_check_decode(lua_State *L, int fmt, int opts, tide_decode_opts_t *o) {
  *o = (tide_decode_opts_t){TIDE_FMT_JSON, TIDE_BAD_FAIL, ',', 0, 0};
  o->format = (tide_format_t)luaL_checkoption(L, fmt, NULL, formats);
  check_decode_opts(L, opts, o);
}

static int l_decode(lua_State *L) {
  tide_decode_opts_t o = {TIDE_FMT_JSON, TIDE_BAD_FAIL, ',', 0, 0};
  o.format = (tide_format_t)luaL_checkoption(L, 1, NULL, formats);
  tide_schema_t *s = tide_l_check_schema(L, 2);
  size_t len;
  const char *text = luaL_checklstring(L, 3, &len);
  int final = lua_toboolean(L, 4);
  check_decode_opts(L, 5, &o);
  lua_getfield(L, 5, "line");
  lua_Integer line = luaL_optinteger(L, -1, 1);
  lua_pop(L, 1);
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

/* ---------------------------------------------------------- file reads --- */

#define FREAD_MT "tide.FileRead"

typedef struct lfread {
  tide_fread_t *r;
} lfread_t;

static int fread_close(lua_State *L) {
  lfread_t *u = luaL_checkudata(L, 1, FREAD_MT);
  tide_fread_free(u->r); /* joins a thread still reading */
  u->r = NULL;
  return 0;
}

/* core.file_read(format, schema, {{path, from, to, line, header}..}, opts [, thread])
 *   -> tide.FileRead
 * A read of the ranges (fileread.h), decoded with opts as core.decode's
 * (bad, sep, ignore_unknown, multi_line). With thread true it starts on a
 * thread of its own at once, decoding over a pool of its own of as many
 * threads as the worker pool has; with thread "pool" on a thread of its
 * own that decodes over the worker pool itself, shared with the loop
 * thread's runs (no more threads compute than the pool has, plus the two
 * callers). When the thread cannot start it runs in result(); else it
 * runs in result(), on the caller and the worker pool. */
static const char *const fread_threads[] = {"pool", NULL};

static int l_file_read(lua_State *L) {
  tide_decode_opts_t o = {TIDE_FMT_JSON, TIDE_BAD_FAIL, ',', 0, 0};
  o.format = (tide_format_t)luaL_checkoption(L, 1, NULL, formats);
  tide_schema_t *s = tide_l_check_schema(L, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  check_decode_opts(L, 4, &o);
  /* 5: nil/false, true (a pool of its own) or "pool" (the worker pool) */
  int thread = lua_type(L, 5) == LUA_TSTRING ? (luaL_checkoption(L, 5, NULL, fread_threads) == 0 ? 2 : 0)
                                              : lua_toboolean(L, 5);
  lfread_t *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->r = NULL;
  luaL_setmetatable(L, FREAD_MT);
  if (!(u->r = tide_fread_new(s, &o))) return luaL_error(L, "out of memory");
  lua_Integer n = (lua_Integer)lua_rawlen(L, 3);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 3, i);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_getfield(L, -1, "path");
    const char *path = tide_l_check_cname(L, -1, "file_read: path", TIDE_L_PATH);
    lua_getfield(L, -2, "from");
    lua_getfield(L, -3, "to");
    lua_getfield(L, -4, "line");
    lua_getfield(L, -5, "header");
    lua_Integer from = luaL_checkinteger(L, -4), to = luaL_checkinteger(L, -3), line = luaL_optinteger(L, -2, 1);
    if (from < 0 || to < from) return luaL_error(L, "file_read: range %I is %I..%I", i, from, to);
    if (tide_fread_add(u->r, path, from, to, line, lua_toboolean(L, -1))) return luaL_error(L, "out of memory");
    lua_pop(L, 6);
  }
  /* on failure it runs in result() */
  if (thread == 2) tide_fread_start_on(u->r, tide_l_pool(L));
  else if (thread) tide_fread_start(u->r, tide_pool_threads(tide_l_pool(L)));
  return 1;
}

static const char *const fread_kinds[] = {"ok", "open", "short", "decode", "unfinished", "io"};

/* fr:result() -> {Batch..}, dropped, {dead}, {end lines}
 *              | nil, kind, range, message, n, line
 * Waits for the read (or runs it). On success: the batches (now the
 * caller's), the records dropped, the dead records as {range =, line =,
 * reason =, text =} and each range's line number after its end. On
 * failure: kind ("open", "short", "decode", "unfinished" or "io"), the
 * index of the range that failed, the message (strerror, or "line N:
 * reason"), n (short: the bytes of the range the file had; unfinished:
 * the bytes left) and line (unfinished: the line they start). A second
 * call raises. */
static int fread_result(lua_State *L) {
  lfread_t *u = luaL_checkudata(L, 1, FREAD_MT);
  tide_fread_t *r = u->r;
  if (!r) return luaL_error(L, "attempt to use a closed tide.FileRead");
  if (r->state == 2) return luaL_error(L, "file_read: result() was already taken");
  tide_fread_wait(r, tide_l_pool(L));
  if (r->kind == TIDE_FREAD_DECODE && r->rc == -ENOMEM) return luaL_error(L, "out of memory");
  if (r->kind == TIDE_FREAD_DECODE && r->rc == TIDE_EINVAL) return luaL_error(L, "decode: %s", r->err.msg);
  if (r->kind != TIDE_FREAD_OK) {
    lua_pushnil(L);
    lua_pushstring(L, fread_kinds[r->kind]);
    lua_pushinteger(L, (lua_Integer)r->failed + 1);
    lua_pushstring(L, r->err.msg);
    lua_pushinteger(L, r->kind == TIDE_FREAD_UNFINISHED || r->kind == TIDE_FREAD_SHORT ? r->left : 0);
    lua_pushinteger(L, r->line);
    return 6;
  }
  lua_createtable(L, (int)r->nbatches, 0);
  for (size_t i = 0; i < r->nbatches; i++) {
    tide_l_push_batch(L, r->batches[i]);
    r->batches[i] = NULL; /* the userdata owns it */
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushinteger(L, (lua_Integer)r->dropped);
  lua_createtable(L, (int)r->ndead, 0);
  for (size_t i = 0; i < r->ndead; i++) {
    const tide_fread_dead_t *d = &r->dead[i];
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)d->range + 1);
    lua_setfield(L, -2, "range");
    lua_pushinteger(L, d->rec.line);
    lua_setfield(L, -2, "line");
    lua_pushstring(L, d->rec.reason);
    lua_setfield(L, -2, "reason");
    lua_pushlstring(L, d->rec.text, d->rec.len);
    lua_setfield(L, -2, "text");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_createtable(L, (int)r->nranges, 0);
  for (size_t i = 0; i < r->nranges; i++) {
    lua_pushinteger(L, r->ranges[i].end_line);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 4;
}

/* core.file_cut(path, p, budget, must, to) -> cut | false | nil, msg, ENAME
 * The file source's cut at a line end (fileread.h's tide_file_cut): false
 * when there is none and must is not set. */
static int l_file_cut(lua_State *L) {
  const char *path = tide_l_check_cname(L, 1, "file_cut: path", TIDE_L_PATH);
  lua_Integer p = luaL_checkinteger(L, 2), budget = luaL_checkinteger(L, 3);
  int must = lua_toboolean(L, 4);
  lua_Integer to = luaL_checkinteger(L, 5);
  luaL_argcheck(L, p >= 0 && budget >= 0 && to >= p, 2, "file_cut: needs 0 <= p <= to and budget >= 0");
  int64_t cut;
  tide_err_t err = {0, ""};
  int rc = tide_file_cut(path, p, budget, must, to, &cut, &err);
  if (rc == -ENOMEM) return luaL_error(L, "out of memory");
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  if (cut < 0) lua_pushboolean(L, 0);
  else lua_pushinteger(L, cut);
  return 1;
}

int tide_l_decode_open(lua_State *L) {
  if (luaL_newmetatable(L, FREAD_MT)) {
    static const luaL_Reg methods[] = {{"result", fread_result}, {"close", fread_close}, {NULL, NULL}};
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, fread_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, fread_close);
    lua_setfield(L, -2, "__close");
  }
  lua_pop(L, 1);
  static const luaL_Reg fns[] = {{"decode", l_decode},
                                 {"csv_encode", l_csv_encode},
                                 {"rate_batch", l_rate_batch},
                                 {"glob", l_glob},
                                 {"dead_letter_text", l_dead_letter_text},
                                 {"file_read", l_file_read},
                                 {"file_cut", l_file_cut},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  return 0;
}
