/*
 * l_decode.c: file chunks into batches, and file name patterns.
 *
 *   core.decode(format, schema, text, final, opts) -> Batch, used, lines, bad, {lines}
 *   core.glob(pattern)                   -> {paths} | nil, msg
 */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "json.h"
#include "jsonl.h"
#include "l_tide.h"

static const char *const formats[] = {"json", "csv", "text", NULL};
static const char *const bad_modes[] = {"fail", "drop", NULL};

#define BAD_KEPT 10

/* core.decode(format, schema, text, final, opts) ->
 *   batch, used, lines, bad, {bad lines} | nil, "line N: reason"
 * Decodes the complete records of text (a chunk of a file; a record cut
 * at the end is left for the next chunk unless final) into a batch.
 * opts: line (the number of text's first line, default 1), bad ("fail" or
 * "drop"), sep (CSV separator), ignore_unknown (JSON). Returns the batch,
 * the bytes consumed, the lines consumed, the number of bad records dropped
 * and the line numbers of the first ones. */
static int l_decode(lua_State *L) {
  int fmt = luaL_checkoption(L, 1, NULL, formats);
  tide_schema_t *s = tide_l_check_schema(L, 2);
  size_t len;
  const char *text = luaL_checklstring(L, 3, &len);
  int final = lua_toboolean(L, 4);
  luaL_checktype(L, 5, LUA_TTABLE);
  lua_getfield(L, 5, "line");
  lua_Integer line = luaL_optinteger(L, -1, 1);
  lua_getfield(L, 5, "bad");
  int drop = luaL_checkoption(L, -1, "fail", bad_modes) == 1;
  lua_getfield(L, 5, "sep");
  const char *sep = luaL_optstring(L, -1, ",");
  lua_getfield(L, 5, "ignore_unknown");
  int flags = lua_toboolean(L, -1) ? TIDE_JSON_IGNORE_UNKNOWN : 0;
  lua_pop(L, 4);
  if (fmt == 2 && (s->nfields != 1 || s->fields[0].type != TIDE_T_STRING))
    return luaL_error(L, "decode: the text format needs a schema of one string column");
  tide_batch_t *b = tide_batch_new(s, 4096);
  if (!b) return luaL_error(L, "out of memory");
  tide_l_push_batch(L, b);
  tide_l_scratch_t *x = tide_l_push_scratch(L);
  tide_json_dec_t *dec = NULL;
  if (fmt == 0 && !(dec = tide_json_dec_new(s, flags))) return luaL_error(L, "out of memory");
  x->p[0] = NULL;
  size_t pos = 0;
  lua_Integer bad = 0, bad_lines[BAD_KEPT], lines = 0;
  int nbad = 0, rc = 0;
  lua_Integer at = line;
  tide_err_t err = {0, ""};
  while (pos < len) {
    size_t used = 0, spanned = 0;
    const char *p = text + pos;
    if (fmt == 1) {
      rc = tide_csv_dec_record(b, p, len - pos, final, sep[0], &used, &spanned, &x->buf, &err);
      if (rc == TIDE_CSV_MORE) {
        rc = 0;
        break;
      }
      if (rc == TIDE_CSV_ROW || rc == TIDE_CSV_BLANK) rc = 0;
    } else {
      const char *nl = memchr(p, '\n', len - pos);
      if (!nl && !final) break;
      size_t n = nl ? (size_t)(nl - p) : len - pos;
      used = nl ? n + 1 : n;
      size_t m = n;
      while (m && (p[m - 1] == '\r')) m--;
      if (fmt == 2) {
        rc = tide_batch_row_begin(b);
        if (!rc && tide_utf8_check(p, m) != m) rc = tide_err_set(&err, TIDE_ESCHEMA, "invalid UTF-8");
        if (!rc) rc = tide_batch_set_str(b, 0, p, m);
        if (rc) tide_batch_row_abort(b);
        else tide_batch_row_commit(b);
      } else {
        size_t i = 0;
        while (i < m && (p[i] == ' ' || p[i] == '\t')) i++;
        if (i < m) rc = tide_json_dec_line(dec, b, p + i, m - i, &err);
      }
    }
    at = line + lines;
    lines += (lua_Integer)spanned + ((used && text[pos + used - 1] == '\n') ? 1 : 0);
    pos += used;
    if (rc == TIDE_EPARSE || rc == TIDE_ESCHEMA) {
      if (!drop) break;
      if (nbad < BAD_KEPT) bad_lines[nbad++] = at;
      bad++;
      rc = 0;
      err.msg[0] = 0;
    } else if (rc) {
      break;
    }
    if (b->nrows >= TIDE_BATCH_MAX_ROWS - 1) break;
    if (used == 0) break;
  }
  tide_json_dec_free(dec);
  if (rc) {
    char msg[sizeof err.msg + 32];
    snprintf(msg, sizeof msg, "line %lld: %s", (long long)at, err.msg[0] ? err.msg : tide_strerror(rc));
    return tide_l_fail(L, rc, NULL, msg);
  }
  lua_pop(L, 1); /* the scratch */
  lua_pushinteger(L, (lua_Integer)pos);
  lua_pushinteger(L, lines);
  lua_pushinteger(L, bad);
  lua_createtable(L, nbad, 0);
  for (int i = 0; i < nbad; i++) {
    lua_pushinteger(L, bad_lines[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 5;
}

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

int tide_l_decode_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"decode", l_decode}, {"glob", l_glob}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
  return 0;
}
