/*
 * l_readline.c: the REPL's line editor, GNU readline's callback interface
 * driven by the event loop.
 *
 *   local rl = core.readline_open()        -- tide.Readline, or nil, msg, name
 *   local p = loop:poll(rl:fd(), function() local ev, line = rl:read() ... end)
 *   rl:start(prompt [, complete])          -- show the prompt, edit a line
 *   rl:read()                              -- "line", text | "eof" | nil (more keys needed)
 *   rl:stop(); rl:cancel()                 -- leave the line (cancel: Ctrl-C; returns its text)
 *   rl:clear(); rl:redraw()                -- around output written while a line is edited
 *   rl:add_history(entry); rl:resize(); rl:close()
 *
 * Why readline: it is what `lua` itself uses (Debian's lua5.4 links it, so
 * it is in the process anyway), and it brings what users expect of a
 * prompt: completion, Ctrl-R search, wrapped long lines, history entries of
 * several lines, their ~/.inputrc. The callback interface leaves the
 * waiting to the loop: a tide.Poll on the terminal calls rl:read(), which
 * hands readline the keys that are there (rl_callback_read_char) and
 * returns the line once Enter ends one.
 *
 * The terminal is opened again by name for reading (rl_instream): libuv's
 * poll makes its descriptor non-blocking, and stdin's open file is shared
 * with stdout, which must stay blocking. Output goes to stdout.
 *
 * State. Readline is one per process (its state is global), so there is one
 * tide.Readline open at a time, and this file keeps the few things that
 * readline's callbacks (the line handler, the completer) need in statics:
 * the open object, the thread inside rl:read (for the completer) and the
 * line the handler got. Lua errors never cross readline: the completer
 * runs under lua_pcall, and nothing in rl:read raises while readline runs.
 *
 * Signals: readline catches none (rl_catch_signals = 0): the REPL handles
 * SIGINT (rl:cancel) and SIGWINCH (rl:resize) on the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <readline/history.h>
#include <readline/readline.h>

#include <lauxlib.h>
#include <lua.h>

#include "err.h"
#include "l_tide.h"

#define RL_MT "tide.Readline"

typedef struct l_rl {
  FILE *in;      /* the terminal, opened again for reading; NULL when closed */
  int installed; /* a prompt is up (rl_callback_handler_install) */
  int comp_ref;  /* the completer of the current line, or LUA_NOREF */
} l_rl_t;

enum { GOT_NONE = 0, GOT_LINE = 1, GOT_EOF = 2 };

static l_rl_t *rl_open_obj; /* the open tide.Readline, NULL when none */
static int rl_atexit_registered;
static lua_State *rl_L;     /* the thread inside rl:read, for the completer */
static int rl_got;          /* what the line handler got */
static char *rl_line;       /* its line (readline's malloc) */

/* Lua's part of the completions: up to 1000 strings (malloc'd), taken one
 * by one by the generator that rl_completion_matches calls. */
#define MAX_MATCHES 1000
static char *comp_list[MAX_MATCHES];
static int comp_n, comp_next;

static void comp_reset(void) {
  for (int i = comp_next; i < comp_n; i++) free(comp_list[i]);
  comp_n = comp_next = 0;
}

static char *comp_generator(const char *text, int state) {
  (void)text;
  (void)state;
  return comp_next < comp_n ? comp_list[comp_next++] : NULL;
}

/* Runs under lua_pcall: fn(text, line, start, end) -> array of strings,
 * copied to comp_list. */
static int comp_call(lua_State *L) {
  int n = lua_gettop(L);
  lua_call(L, n - 1, 1);
  if (!lua_istable(L, -1)) return 0;
  for (lua_Integer i = 1; comp_n < MAX_MATCHES; i++) {
    if (lua_rawgeti(L, -1, i) != LUA_TSTRING) break;
    char *s = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (!s) break;
    comp_list[comp_n++] = s;
  }
  return 0;
}

/* readline's attempted completion: Tab after nothing but blanks indents;
 * otherwise the REPL's completer names the candidates. Never readline's
 * file-name completion (rl_attempted_completion_over). */
static char **on_complete(const char *text, int start, int end) {
  rl_attempted_completion_over = 1;
  rl_completion_append_character = '\0';
  int blank = 1;
  for (int i = 0; i < start && rl_line_buffer[i]; i++)
    if (rl_line_buffer[i] != ' ' && rl_line_buffer[i] != '\t') blank = 0;
  if (blank && start == end) {
    rl_insert_text("  ");
    return NULL;
  }
  lua_State *L = rl_L;
  l_rl_t *r = rl_open_obj;
  if (L == NULL || r == NULL || r->comp_ref == LUA_NOREF || !lua_checkstack(L, 8)) return NULL;
  comp_reset();
  int top = lua_gettop(L);
  lua_pushcfunction(L, comp_call);
  lua_rawgeti(L, LUA_REGISTRYINDEX, r->comp_ref);
  lua_pushstring(L, text);
  lua_pushstring(L, rl_line_buffer);
  lua_pushinteger(L, start);
  lua_pushinteger(L, end);
  int rc = lua_pcall(L, 5, 0, 0); /* a failing completer completes nothing */
  lua_settop(L, top);
  if (rc != LUA_OK || comp_n == 0) {
    comp_reset();
    return NULL;
  }
  char **m = rl_completion_matches(text, comp_generator);
  comp_reset();
  return m;
}

/* readline's line handler: keep the line; no new prompt until rl:start. */
static void on_line(char *line) {
  free(rl_line);
  rl_line = line;
  rl_got = line ? GOT_LINE : GOT_EOF;
  rl_callback_handler_remove();
  if (rl_open_obj) rl_open_obj->installed = 0;
}

static l_rl_t *check_open_rl(lua_State *L) {
  l_rl_t *r = luaL_checkudata(L, 1, RL_MT);
  if (r->in == NULL) luaL_error(L, "attempt to use a closed " RL_MT);
  return r;
}

static void rl_uninstall(l_rl_t *r) {
  if (r->installed) {
    rl_callback_handler_remove();
    r->installed = 0;
  }
}

/* A process that exits with a line being edited (os.exit from a query's
 * callback) leaves its terminal in its mode from before. */
static void rl_atexit(void) {
  if (rl_open_obj && rl_open_obj->installed) {
    rl_callback_handler_remove();
    rl_open_obj->installed = 0;
  }
}

/* core.readline_open() -> tide.Readline, or nil, msg, name: ENOTTY when
 * stdin is not a terminal, EBUSY when one is open already, or why the
 * terminal did not open. */
static int l_rl_open(lua_State *L) {
  l_rl_t *r = lua_newuserdatauv(L, sizeof *r, 0);
  r->in = NULL;
  r->installed = 0;
  r->comp_ref = LUA_NOREF;
  luaL_setmetatable(L, RL_MT);
  if (rl_open_obj) return tide_l_fail(L, -EBUSY, tide_errname(-EBUSY), "a tide.Readline is open already");
  char path[256];
  int rc = ttyname_r(0, path, sizeof path);
  if (rc) return tide_l_fail(L, -rc, tide_errname(-rc), NULL);
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int e = errno;
    return tide_l_fail(L, -e, path, NULL);
  }
  r->in = fdopen(fd, "r");
  if (!r->in) {
    int e = errno;
    close(fd);
    return tide_l_fail(L, -e, tide_errname(-e), NULL);
  }
  rl_open_obj = r;
  if (!rl_atexit_registered && atexit(rl_atexit) == 0) rl_atexit_registered = 1;
  rl_readline_name = "tide";
  rl_instream = r->in;
  rl_outstream = stdout;
  rl_catch_signals = 0;
  rl_catch_sigwinch = 0;
  rl_change_environment = 0;
  rl_completer_word_break_characters = " \t\n\"'`@$><=;|&{}()[],+-*/%^~#";
  rl_completer_quote_characters = NULL;
  rl_attempted_completion_function = on_complete;
  rl_sort_completion_matches = 1;
  /* Tab completes the common part; Tab again lists the candidates (by
   * default readline wants a third). ~/.inputrc, read next, may say
   * otherwise. */
  rl_variable_bind("show-all-if-unmodified", "on");
  rl_initialize(); /* reads ~/.inputrc ($INPUTRC) the first time */
  clear_history();
  return 1;
}

/* rl:close(): leave a line being edited, give the terminal its mode back,
 * drop the history, close the descriptor. Idempotent; also __gc and
 * __close. */
static int l_rl_close(lua_State *L) {
  l_rl_t *r = luaL_checkudata(L, 1, RL_MT);
  if (r->in == NULL) return 0;
  rl_uninstall(r);
  luaL_unref(L, LUA_REGISTRYINDEX, r->comp_ref);
  r->comp_ref = LUA_NOREF;
  rl_instream = stdin;
  clear_history();
  fclose(r->in);
  r->in = NULL;
  if (rl_open_obj == r) rl_open_obj = NULL;
  free(rl_line);
  rl_line = NULL;
  rl_got = GOT_NONE;
  return 0;
}

/* rl:fd() -> the descriptor to poll for keys. */
static int l_rl_fd(lua_State *L) {
  lua_pushinteger(L, fileno(check_open_rl(L)->in));
  return 1;
}

/* rl:start(prompt [, complete]): show the prompt and edit a new line
 * (the terminal goes to readline's mode). complete(text, line, start, end)
 * returns the candidates that replace text, the word before the cursor
 * (line:sub(start + 1, end)); it may raise (then nothing completes). */
static int l_rl_start(lua_State *L) {
  l_rl_t *r = check_open_rl(L);
  const char *prompt = luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, r->comp_ref);
  r->comp_ref = LUA_NOREF;
  if (!lua_isnoneornil(L, 3)) {
    lua_pushvalue(L, 3);
    r->comp_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  rl_uninstall(r);
  free(rl_line);
  rl_line = NULL;
  rl_got = GOT_NONE;
  rl_callback_handler_install(prompt, on_line);
  r->installed = 1;
  fflush(rl_outstream);
  return 0;
}

/* rl:read() -> "line", text (Enter ended it; readline has moved to the next
 * terminal line), "eof" (Ctrl-D on an empty line), or nil: the keys there
 * were taken and the line goes on. Takes every byte that is there now, so
 * one call per readable event suffices. */
static int l_rl_read(lua_State *L) {
  l_rl_t *r = check_open_rl(L);
  if (!r->installed) return 0;
  rl_L = L;
  for (;;) {
    rl_callback_read_char();
    if (rl_got != GOT_NONE || !r->installed) break;
    int avail = 0;
    if (ioctl(fileno(r->in), FIONREAD, &avail) != 0 || avail <= 0) break;
  }
  rl_L = NULL;
  fflush(rl_outstream);
  int got = rl_got;
  rl_got = GOT_NONE;
  if (got == GOT_LINE) {
    lua_pushliteral(L, "line");
    lua_pushstring(L, rl_line);
    free(rl_line);
    rl_line = NULL;
    return 2;
  }
  if (got == GOT_EOF) {
    lua_pushliteral(L, "eof");
    return 1;
  }
  return 0;
}

/* rl:stop(): leave the line (its prompt stays on the screen as it is; the
 * cursor goes to the start of its row) and give the terminal its mode
 * back. */
static int l_rl_stop(lua_State *L) {
  rl_uninstall(check_open_rl(L));
  return 0;
}

/* rl:cancel() -> the text of the line being edited, dropped (Ctrl-C): "^C"
 * is shown at its end and the cursor goes to the next line, readline's
 * state of a half-typed key sequence or search is reset, and the line is
 * left as rl:stop does. */
static int l_rl_cancel(lua_State *L) {
  l_rl_t *r = check_open_rl(L);
  if (!r->installed) {
    lua_pushliteral(L, "");
    return 1;
  }
  rl_callback_sigcleanup();
  rl_point = rl_end;
  rl_redisplay();
  fputs("^C", rl_outstream);
  rl_crlf();
  lua_pushstring(L, rl_line_buffer);
  rl_free_line_state();
  rl_uninstall(r);
  fflush(rl_outstream);
  return 1;
}

/* rl:clear() before output, rl:redraw() after it (which must end with a
 * newline): the prompt and line are erased and drawn again below. */
static int l_rl_clear(lua_State *L) {
  if (check_open_rl(L)->installed) {
    rl_clear_visible_line();
    fflush(rl_outstream);
  }
  return 0;
}

static int l_rl_redraw(lua_State *L) {
  if (check_open_rl(L)->installed) {
    rl_forced_update_display();
    fflush(rl_outstream);
  }
  return 0;
}

/* rl:resize(): the terminal changed its size (SIGWINCH). */
static int l_rl_resize(lua_State *L) {
  check_open_rl(L);
  rl_resize_terminal();
  return 0;
}

/* rl:add_history(entry): Up and Ctrl-R find it; it may span lines. */
static int l_rl_add_history(lua_State *L) {
  check_open_rl(L);
  add_history(luaL_checkstring(L, 2));
  return 0;
}

static int l_rl_tostring(lua_State *L) {
  l_rl_t *r = luaL_checkudata(L, 1, RL_MT);
  lua_pushstring(L, r->in ? RL_MT : RL_MT " (closed)");
  return 1;
}

static const luaL_Reg rl_methods[] = {{"fd", l_rl_fd},           {"start", l_rl_start},
                                     {"read", l_rl_read},       {"stop", l_rl_stop},
                                     {"cancel", l_rl_cancel},   {"clear", l_rl_clear},
                                     {"redraw", l_rl_redraw},   {"resize", l_rl_resize},
                                     {"add_history", l_rl_add_history}, {"close", l_rl_close},
                                     {NULL, NULL}};

/* Register tide.Readline and add readline_open to the table on top. */
int tide_l_readline_open(lua_State *L) {
  tide_l_class(L, RL_MT, rl_methods, l_rl_close, 1);
  tide_l_class_tostring(L, RL_MT, l_rl_tostring);
  lua_pushcfunction(L, l_rl_open);
  lua_setfield(L, -2, "readline_open");
  return 0;
}
