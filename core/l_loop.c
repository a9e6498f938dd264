/*
 * l_loop.c: the Lua binding of the event loop (loop.h).
 *
 *   local loop = core.loop()                       -- tide.Loop
 *   local t = loop:timer(ms, repeat_ms, fn)        -- tide.Timer: fn()
 *   local w = loop:watch(path, fn)                 -- tide.Watch: fn(filename, "change"|"rename")
 *   local s = loop:signal("SIGTERM", fn)           -- tide.Signal: fn("SIGTERM")
 *   local srv = loop:listen(host, port, on_lines [, {max_line =, on_error =}])
 *                                                  -- tide.Server: on_lines(n), n new lines kept
 *   srv:port(); srv:stats()                        -- the bound port; counters
 *   srv:batch(from, to [, bad]); srv:forget(upto)  -- kept lines as a tide.Batch; dropped
 *   local inp = loop:input(fd, fn [, {raw = true}]) -- tide.Input: fn(bytes), then fn(nil[, err])
 *   inp:kind(); inp:set_raw(b); inp:pause(); inp:resume(); inp:winsize()
 *   local p = loop:poll(fd, fn)                    -- tide.Poll: fn() when fd is readable
 *   p:stop(); p:again()
 *   loop:catch_interrupt("eval"|"prompt"|"off")    -- SIGINT interrupts Lua code (a REPL)
 *   loop:run("default"|"once"|"nowait")           -- true when handles remain active
 *   loop:stop(); loop:alive(); loop:now(); loop:close()
 *   core.raise_signal("SIGHUP")                    -- raise() in this process (tests)
 *   core.guess_handle(fd)                          -- "tty", "pipe", "tcp", "udp", "file" or "unknown"
 *
 * Memory and lifetimes.
 *
 *   tide.Loop userdata   { l_loop_t }: owns the tide_loop_t (C memory, which
 *                        outlives the handles' close callbacks: loop.c frees
 *                        it only after draining them).
 *   tide.Timer/Watch/Signal/Server userdata  { l_handle_t }: points to the C handle,
 *                        which loop.c owns; user value 1 is the tide.Loop, so
 *                        a loop lives as long as any of its handle objects.
 *
 * While a handle is open the registry holds its Lua callback (fn_ref) and its
 * userdata (self_ref), so a timer whose object the program dropped still
 * fires. Closing the handle (handle:close(), loop:close(), __gc or __close)
 * runs on_release, which clears the userdata's pointer and drops both refs;
 * from then on the userdata may be collected at any time, while the C handle
 * still waits for its close callback: the C side never looks at the
 * userdata again.
 *
 * Callbacks never longjmp through uv_run. Each runs as
 * lua_pcall(dispatch, ...) with a traceback message handler, on the stack of
 * the thread inside loop:run (callbacks fire only there). On error the error
 * value stays on that stack, the loop stops, later callbacks of the run are
 * skipped, and loop:run raises the error once uv_run has returned.
 */
#include <errno.h>
#include <signal.h>
#include <unistd.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "decode.h"
#include "err.h"
#include "l_loop.h"
#include "l_tide.h"
#include "loop.h"

#define LOOP_MT "tide.Loop"
#define TIMER_MT "tide.Timer"
#define WATCH_MT "tide.Watch"
#define SIGNAL_MT "tide.Signal"
#define SERVER_MT "tide.Server"
#define INPUT_MT "tide.Input"
#define POLL_MT "tide.Poll"

typedef struct l_loop {
  tide_loop_t *loop; /* NULL once freed */
  lua_State *L;      /* the thread inside loop:run; NULL when not running */
  lua_State *cur;    /* the thread of the call that may release handles */
  int err_pending;   /* a callback failed: its error is on top of L's stack */
  int stack_fail;    /* a callback was skipped: no room on L's stack */
} l_loop_t;

typedef struct l_handle {
  tide_handle_t *h; /* NULL when closed */
  l_loop_t *ll;     /* the loop's userdata (kept alive by user value 1) */
  int fn_ref;       /* the Lua callback, LUA_NOREF when closed */
  int self_ref;     /* this userdata, LUA_NOREF when closed */
  int oneshot;      /* a timer that does not repeat: closed when it fires */
  int err_ref;      /* a server's on_error, LUA_NOREF when none or closed */
  size_t max_line;  /* a server's line limit, for its error messages */
  tide_lines_t kept; /* a server's lines, until srv:forget (freed on release) */
  int lost;          /* a server could not keep lines (out of memory) */
} l_handle_t;

/* One event on its way to Lua, passed to dispatch as a light userdata. */
typedef struct l_event {
  l_handle_t *u;
  const char *filename;
  int events, status, signum;
  const tide_line_t *lines; /* a server's lines (n > 0), or its error: */
  size_t nlines;
  const char *peer; /* with status: the failure */
  const char *buf;  /* an input reader's bytes (len > 0), or its end */
  size_t len;
} l_event_t;

static const char *const signal_names[] = {"SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH",
                                           NULL};
static const int signal_numbers[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

static const char *signal_name(int signum) {
  for (int i = 0; signal_names[i]; i++)
    if (signal_numbers[i] == signum) return signal_names[i];
  return "?";
}

/* ---- callbacks ---------------------------------------------------------------- */

/* Message handler: a string error (or one with __tostring) gets a traceback;
 * other error values pass through unchanged. */
static int l_msgh(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      msg = lua_tostring(L, -1);
    else
      return 1; /* the original value is still at index 1 */
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

/* Runs under lua_pcall: push the callback and its arguments and call it. */
static int l_dispatch(lua_State *L) {
  const l_event_t *ev = lua_touserdata(L, 1);
  l_handle_t *u = ev->u;
  lua_rawgeti(L, LUA_REGISTRYINDEX, u->fn_ref);
  tide_handle_type_t type = tide_handle_type(u->h);
  if (u->oneshot) { /* done: close it now, while u is surely alive; fn is on the stack */
    u->ll->cur = L;
    tide_handle_close(u->h);
  }
  int nargs = 0;
  switch (type) {
  case TIDE_HANDLE_WATCH:
    if (ev->status < 0) {
      lua_pushnil(L);
      lua_pushnil(L);
      lua_pushfstring(L, "%s: %s", tide_errname(ev->status), tide_strerror(ev->status));
      nargs = 3;
    } else {
      if (ev->filename)
        lua_pushstring(L, ev->filename);
      else
        lua_pushnil(L);
      lua_pushstring(L, (ev->events & TIDE_WATCH_RENAME) ? "rename" : "change");
      nargs = 2;
    }
    break;
  case TIDE_HANDLE_SIGNAL:
    lua_pushstring(L, signal_name(ev->signum));
    nargs = 1;
    if (ev->events) { /* a SIGINT that interrupted a chunk (catch_interrupt) */
      lua_pushboolean(L, 1);
      nargs = 2;
    }
    break;
  case TIDE_HANDLE_TIMER:
    break;
  case TIDE_HANDLE_POLL:
    if (ev->status < 0) {
      lua_pushfstring(L, "%s: %s", tide_errname(ev->status), tide_strerror(ev->status));
      nargs = 1;
    }
    break;
  case TIDE_HANDLE_INPUT:
    if (ev->len) {
      lua_pushlstring(L, ev->buf, ev->len);
      nargs = 1;
    } else if (ev->status < 0) {
      lua_pushnil(L);
      lua_pushfstring(L, "%s: %s", tide_errname(ev->status), tide_strerror(ev->status));
      nargs = 2;
    } else {
      lua_pushnil(L);
      nargs = 1;
    }
    break;
  case TIDE_HANDLE_SERVER:
    if (ev->nlines) { /* kept already: say how many */
      lua_pushinteger(L, (lua_Integer)ev->nlines);
      nargs = 1;
      break;
    }
    lua_pop(L, 1); /* not on_lines but on_error */
    if (u->err_ref == LUA_NOREF) return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->err_ref);
    if (ev->status == TIDE_ETOOBIG)
      lua_pushfstring(L, "%s: line longer than %I bytes (skipped)", ev->peer, (lua_Integer)u->max_line);
    else
      lua_pushfstring(L, "%s: %s: %s", *ev->peer ? ev->peer : "accept", tide_errname(ev->status),
                      tide_strerror(ev->status));
    lua_pushstring(L, tide_errname(ev->status));
    nargs = 2;
    break;
  }
  lua_call(L, nargs, 0);
  return 0;
}

/* Deliver an event to Lua. Returns 1 when delivered, 0 when skipped: after
 * a callback error, the rest of the stopped loop's iteration is skipped.
 * Nothing here can raise: pushing light C functions and light userdata does
 * not allocate, and lua_checkstack and lua_pcall report failures by their
 * results. */
static int l_fire(l_event_t *ev) {
  l_loop_t *ll = ev->u->ll;
  lua_State *L = ll->L;
  if (L == NULL || ll->err_pending || ll->stack_fail) return 0;
  if (!lua_checkstack(L, LUA_MINSTACK)) {
    ll->stack_fail = 1;
    tide_loop_stop(ll->loop);
    return 0;
  }
  int top = lua_gettop(L);
  lua_pushcfunction(L, l_msgh);
  lua_pushcfunction(L, l_dispatch);
  lua_pushlightuserdata(L, ev);
  if (lua_pcall(L, 1, 0, top + 1) != LUA_OK) {
    lua_remove(L, top + 1); /* the handler; the error stays at top + 1 */
    ll->err_pending = 1;
    tide_loop_stop(ll->loop);
    return 1;
  }
  lua_settop(L, top);
  return 1;
}

/* A skipped one-shot timer is re-armed (1 ms: a 0 would make libuv run it
 * again in the same timers phase), so that the next run still fires it;
 * skipped watch and signal events are dropped. */
static void on_timer(tide_handle_t *h, void *data) {
  l_event_t ev = {data, NULL, 0, 0, 0, NULL, 0, NULL, NULL, 0};
  if (!l_fire(&ev) && ev.u->oneshot) tide_timer_set(h, 1, 0);
}

static void on_watch(tide_handle_t *h, void *data, const char *filename, int events, int status) {
  l_event_t ev = {data, filename, events, status, 0, NULL, 0, NULL, NULL, 0};
  (void)h;
  l_fire(&ev);
}

static int interrupt_seen(int signum);

static void on_signal(tide_handle_t *h, void *data, int signum) {
  l_event_t ev = {data, NULL, 0, 0, signum, NULL, 0, NULL, NULL, 0};
  (void)h;
  ev.events = interrupt_seen(signum);
  l_fire(&ev);
}

/* A skipped readable event comes again: the bytes are still there. */
static void on_poll(tide_handle_t *h, void *data, int status) {
  l_event_t ev = {data, NULL, 0, status, 0, NULL, 0, NULL, NULL, 0};
  (void)h;
  l_fire(&ev);
}

/* The lines go to the server's kept lines in C, never one Lua string
 * each; Lua is told how many came (also after a callback error: the lines
 * are kept all the same). Out of memory, the server marks itself: lines
 * were lost, and srv:batch says so from then on. */
static void on_server_lines(tide_handle_t *h, void *data, const tide_line_t *lines, size_t n) {
  l_handle_t *u = data;
  (void)h;
  for (size_t i = 0; i < n && !u->lost; i++)
    if (tide_lines_add(&u->kept, lines[i].ptr, lines[i].len)) u->lost = 1;
  l_event_t ev = {data, NULL, 0, 0, 0, lines, n, NULL, NULL, 0};
  l_fire(&ev);
}

static void on_server_error(tide_handle_t *h, void *data, int code, const char *peer) {
  l_event_t ev = {data, NULL, 0, code, 0, NULL, 0, peer, NULL, 0};
  (void)h;
  l_fire(&ev);
}

/* Bytes skipped after a callback error are lost, as are a server's lines;
 * the end is skipped too, but the reader then stays at its end. */
static void on_input(tide_handle_t *h, void *data, const char *buf, size_t len, int status) {
  l_event_t ev = {data, NULL, 0, status, 0, NULL, 0, NULL, buf, len};
  (void)h;
  l_fire(&ev);
}

static void handle_unref(lua_State *L, l_handle_t *u) {
  luaL_unref(L, LUA_REGISTRYINDEX, u->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, u->self_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, u->err_ref);
  u->fn_ref = u->self_ref = u->err_ref = LUA_NOREF;
}

/* The handle is closing (whoever closed it): detach the userdata. */
static void on_release(tide_handle_t *h, void *data) {
  l_handle_t *u = data;
  (void)h;
  u->h = NULL;
  tide_lines_free(&u->kept);
  handle_unref(u->ll->cur, u);
}

/* ---- interrupts (a REPL's Ctrl-C) ------------------------------------------------
 *
 * lua.c interrupts a running chunk on SIGINT by setting a debug hook from
 * the signal handler (lua_sethook may be called there); the hook raises
 * "interrupted!" at the next Lua instruction. A REPL on the loop needs the
 * same, with one difference: the loop's callbacks (a query's batch) must
 * not be cut by a Ctrl-C that was meant for the user's chunk, or the query
 * would fail. So the hook raises only in Lua code that runs outside the
 * loop's callbacks; a SIGINT that arrives while the loop runs is raised by
 * loop:run once its callbacks returned ("eval" mode). While the REPL waits
 * for input ("prompt" mode) the signal only goes on to libuv's handler, so
 * that the REPL's tide.Signal callback clears the line. In either mode, a
 * second SIGINT that arrives before libuv delivered the first (the loop is
 * stuck in a callback that does not return) raises in that callback: its
 * query fails, the session lives.
 *
 * Signal handlers are process-wide and the hook needs the state it
 * interrupts, so this is global state, like escalate_signals' (which must
 * not be on at the same time): the mode, the main thread, the loop, and
 * the counts the handler writes. */
enum { INT_OFF = 0, INT_PROMPT = 1, INT_EVAL = 2 };
static volatile sig_atomic_t int_mode, int_pending, int_force, int_unseen, int_eval_unseen;
static lua_State *int_L;          /* the main thread: where the hook is set */
static tide_loop_t *int_loop;     /* the loop whose callbacks are not cut */
static struct sigaction int_prev; /* libuv's handler, called after ours */

static void int_raise(lua_State *L) {
  lua_sethook(L, NULL, 0, 0);
  int_pending = int_force = 0;
  lua_pushliteral(L, "interrupted!");
  lua_error(L);
}

static void int_hook(lua_State *L, lua_Debug *ar) {
  (void)ar;
  lua_sethook(L, NULL, 0, 0);
  int in_callback = int_loop != NULL && tide_loop_running(int_loop);
  if (int_force && in_callback) int_raise(L);
  if (int_mode == INT_EVAL && int_pending && !in_callback) int_raise(L);
}

static void int_handler(int sig, siginfo_t *info, void *uctx) {
  if (int_unseen > 0) int_force = 1;
  int_unseen++;
  if (int_mode == INT_EVAL) {
    int_pending = 1;
    int_eval_unseen++;
  }
  if ((int_mode == INT_EVAL || int_force) && int_L)
    lua_sethook(int_L, int_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
  if (int_prev.sa_flags & SA_SIGINFO) {
    if (int_prev.sa_sigaction) int_prev.sa_sigaction(sig, info, uctx);
  } else if (int_prev.sa_handler != SIG_DFL && int_prev.sa_handler != SIG_IGN && int_prev.sa_handler) {
    int_prev.sa_handler(sig);
  }
}

/* libuv delivers a signal to a tide.Signal callback: the loop is not
 * stuck. In eval mode, loop:run returns at the end of this iteration to
 * raise the interrupt (a "default" run would go on waiting). Returns 1 for
 * a SIGINT that arrived in eval mode (libuv delivers signals in order):
 * the callback gets fn("SIGINT", true) and knows that it was the chunk's,
 * not the prompt's. */
static int interrupt_seen(int signum) {
  if (signum != SIGINT) return 0;
  if (int_unseen > 0) int_unseen--;
  if (int_mode == INT_EVAL && int_pending && int_loop) tide_loop_stop(int_loop);
  if (int_eval_unseen > 0) {
    int_eval_unseen--;
    return 1;
  }
  return 0;
}

/* ---- tide.Loop ------------------------------------------------------------------ */

static l_loop_t *check_open_loop(lua_State *L, int idx) {
  l_loop_t *ll = luaL_checkudata(L, idx, LOOP_MT);
  if (ll->loop == NULL || tide_loop_closed(ll->loop)) luaL_error(L, "attempt to use a closed " LOOP_MT);
  return ll;
}

tide_loop_t *tide_l_check_loop(lua_State *L, int idx) { return check_open_loop(L, idx)->loop; }

/* core.loop() -> tide.Loop, or nil, msg, name. */
static int l_loop_new(lua_State *L) {
  l_loop_t *ll = lua_newuserdatauv(L, sizeof *ll, 0);
  memset(ll, 0, sizeof *ll);
  luaL_setmetatable(L, LOOP_MT);
  int rc = tide_loop_open(&ll->loop);
  if (rc) return tide_l_fail(L, rc, tide_errname(rc), NULL);
  return 1;
}

/* loop:close(): close every handle, wait for their close callbacks and
 * close the libuv loop. Idempotent; also __gc and __close. From a callback,
 * the close completes when loop:run returns. */
static int l_loop_close(lua_State *L) {
  l_loop_t *ll = luaL_checkudata(L, 1, LOOP_MT);
  if (ll->loop == NULL) return 0;
  ll->cur = L;
  if (ll->L) {
    tide_loop_close(ll->loop); /* deferred: tide_loop_run finishes it */
    return 0;
  }
  if (tide_loop_free(ll->loop) == 0) ll->loop = NULL;
  return 0;
}

/* loop:run([mode]) -> true when handles remain active. Raises the first
 * callback error (with its traceback). */
static int l_loop_run(lua_State *L) {
  static const char *const modes[] = {"default", "once", "nowait", NULL};
  static const tide_run_mode_t mode_values[] = {TIDE_RUN_DEFAULT, TIDE_RUN_ONCE, TIDE_RUN_NOWAIT};
  l_loop_t *ll = check_open_loop(L, 1);
  int mode = luaL_checkoption(L, 2, "default", modes);
  if (ll->L) return luaL_error(L, "loop:run: the loop is already running");
  lua_settop(L, 2);
  ll->L = L;
  ll->err_pending = ll->stack_fail = 0;
  int rc = tide_loop_run(ll->loop, mode_values[mode]);
  ll->L = NULL;
  if (tide_loop_closed(ll->loop)) { /* closed from a callback */
    ll->cur = L;
    if (tide_loop_free(ll->loop) == 0) ll->loop = NULL;
  }
  if (ll->err_pending) {
    ll->err_pending = 0;
    return lua_error(L); /* the callback's error, on top */
  }
  if (ll->stack_fail) return luaL_error(L, "loop:run: a callback was skipped: Lua stack overflow");
  if (int_mode == INT_EVAL && int_pending && int_loop == ll->loop) int_raise(L);
  lua_pushboolean(L, rc > 0);
  return 1;
}

static int l_loop_stop(lua_State *L) {
  l_loop_t *ll = luaL_checkudata(L, 1, LOOP_MT);
  if (ll->loop) tide_loop_stop(ll->loop);
  return 0;
}

static int l_loop_alive(lua_State *L) {
  l_loop_t *ll = luaL_checkudata(L, 1, LOOP_MT);
  lua_pushboolean(L, ll->loop != NULL && tide_loop_alive(ll->loop));
  return 1;
}

static int l_loop_now(lua_State *L) {
  l_loop_t *ll = check_open_loop(L, 1);
  lua_pushinteger(L, (lua_Integer)tide_loop_now(ll->loop));
  return 1;
}

static int l_loop_tostring(lua_State *L) {
  l_loop_t *ll = luaL_checkudata(L, 1, LOOP_MT);
  if (ll->loop == NULL || tide_loop_closed(ll->loop))
    lua_pushliteral(L, LOOP_MT " (closed)");
  else
    lua_pushfstring(L, LOOP_MT " (%p)", (void *)ll->loop);
  return 1;
}

/* A new handle userdata, closed, with its refs taken; pushed on the stack. */
static l_handle_t *handle_new(lua_State *L, l_loop_t *ll, const char *mt, int fn_idx) {
  l_handle_t *u = lua_newuserdatauv(L, sizeof *u, 1);
  u->h = NULL;
  u->ll = ll;
  u->fn_ref = u->self_ref = u->err_ref = LUA_NOREF;
  u->oneshot = 0;
  u->max_line = 0;
  u->kept = (tide_lines_t)TIDE_LINES_INIT;
  u->lost = 0;
  luaL_setmetatable(L, mt);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, fn_idx);
  u->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  u->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return u;
}

/* After a failed start: drop the refs, return the failure tuple. */
static int handle_failed(lua_State *L, l_handle_t *u, int rc) {
  handle_unref(L, u);
  return tide_l_fail(L, rc, tide_errname(rc), NULL);
}

/* loop:timer(ms, [repeat_ms,] fn) -> tide.Timer. fn() runs after ms, then
 * every repeat_ms when repeat_ms > 0. A timer that does not repeat closes
 * itself when it fires (just before fn runs). */
static int l_loop_timer(lua_State *L) {
  l_loop_t *ll = check_open_loop(L, 1);
  lua_Integer ms = luaL_checkinteger(L, 2);
  luaL_argcheck(L, ms >= 0, 2, "must be >= 0");
  lua_Integer rep = 0;
  int fn_idx = 4;
  if (lua_type(L, 3) == LUA_TFUNCTION && lua_isnoneornil(L, 4)) {
    fn_idx = 3;
  } else {
    rep = luaL_optinteger(L, 3, 0);
    luaL_argcheck(L, rep >= 0, 3, "must be >= 0");
  }
  luaL_checktype(L, fn_idx, LUA_TFUNCTION);
  l_handle_t *u = handle_new(L, ll, TIMER_MT, fn_idx);
  u->oneshot = rep == 0;
  int rc = tide_timer_start(ll->loop, (uint64_t)ms, (uint64_t)rep, on_timer, on_release, u, &u->h);
  if (rc) return handle_failed(L, u, rc);
  return 1;
}

/* loop:watch(path, fn) -> tide.Watch, or nil, msg, name (no such path...).
 * fn(filename, events) with events "change" or "rename"; on a watch error
 * fn(nil, nil, "ENAME: msg"). */
static int l_loop_watch(lua_State *L) {
  l_loop_t *ll = check_open_loop(L, 1);
  const char *path = tide_l_check_cname(L, 2, "watch: path", TIDE_L_PATH);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  l_handle_t *u = handle_new(L, ll, WATCH_MT, 3);
  int rc = tide_watch_start(ll->loop, path, on_watch, on_release, u, &u->h);
  if (rc) return handle_failed(L, u, rc);
  return 1;
}

/* loop:signal(name, fn) -> tide.Signal. fn(name) each time it arrives. */
static int l_loop_signal(lua_State *L) {
  l_loop_t *ll = check_open_loop(L, 1);
  int sig = luaL_checkoption(L, 2, NULL, signal_names);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  l_handle_t *u = handle_new(L, ll, SIGNAL_MT, 3);
  int rc = tide_signal_start(ll->loop, signal_numbers[sig], on_signal, on_release, u, &u->h);
  if (rc) return handle_failed(L, u, rc);
  return 1;
}

#define DEFAULT_MAX_LINE ((lua_Integer)1 << 20)

/* loop:listen(host, port, on_lines [, opts]) -> tide.Server, or nil, msg,
 * name ("EADDRINUSE: Address already in use", "ENOTFOUND: not found" for a
 * host that does not resolve, ...). Binds host only (a numeric address or a
 * name, resolved once). The server keeps the lines every connection sends
 * (LF cut, one CR before it stripped; a last line without LF when the peer
 * closes), numbered from 0 in arrival order, until srv:forget; on_lines(n)
 * is told, per read of one connection, how many it completed. opts: max_line
 * (bytes, default 1 MiB: longer lines are skipped and reported), on_error
 * (fn(msg, name): a too long line, "ETOOBIG"; a failed read, after which
 * the connection is closed; a failed accept). Without on_error, failures
 * are only counted (srv:stats().errors). */
static int l_loop_listen(lua_State *L) {
  l_loop_t *ll = check_open_loop(L, 1);
  const char *host = tide_l_check_cname(L, 2, "listen: host", TIDE_L_PATH);
  lua_Integer port = luaL_checkinteger(L, 3);
  luaL_argcheck(L, port >= 0 && port <= 65535, 3, "must be 0..65535");
  luaL_checktype(L, 4, LUA_TFUNCTION);
  lua_Integer max_line = DEFAULT_MAX_LINE;
  int err_idx = 0;
  if (!lua_isnoneornil(L, 5)) {
    luaL_checktype(L, 5, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 5)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      if (strcmp(k, "max_line") != 0 && strcmp(k, "on_error") != 0)
        return luaL_error(L, "listen: unknown option '%s' (allowed: max_line, on_error)", k);
      lua_pop(L, 1);
    }
    lua_getfield(L, 5, "max_line");
    if (!lua_isnil(L, -1)) {
      int isint;
      max_line = lua_tointegerx(L, -1, &isint);
      if (!isint || max_line < 1) return luaL_error(L, "listen: option 'max_line' must be an integer >= 1");
    }
    lua_getfield(L, 5, "on_error");
    if (!lua_isnil(L, -1)) {
      if (!lua_isfunction(L, -1)) return luaL_error(L, "listen: option 'on_error' must be a function");
      err_idx = lua_gettop(L);
    }
  }
  l_handle_t *u = handle_new(L, ll, SERVER_MT, 4);
  u->max_line = (size_t)max_line;
  if (err_idx) {
    lua_pushvalue(L, err_idx);
    u->err_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  int rc = tide_server_start(ll->loop, host, (int)port, (size_t)max_line, on_server_lines, on_server_error,
                             on_release, u, &u->h);
  if (rc) return handle_failed(L, u, rc);
  return 1;
}

/* loop:input(fd, fn [, opts]) -> tide.Input, or nil, msg, name (EINVAL:
 * fd is nothing readable). Reads fd (0: stdin) on the loop: fn(bytes) per
 * chunk as it comes (chunks may cut UTF-8 or escape sequences), then once
 * fn(nil) at end of input or fn(nil, "ENAME: msg") when a read failed.
 * opts: raw (boolean, default false): a terminal goes to raw mode until
 * the reader closes (or set_raw(false)); see loop.h for what that means. */
static int l_loop_input(lua_State *L) {
  l_loop_t *ll = check_open_loop(L, 1);
  lua_Integer fd = luaL_checkinteger(L, 2);
  luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, 2, "must be a file descriptor (>= 0)");
  luaL_checktype(L, 3, LUA_TFUNCTION);
  int raw = 0;
  if (!lua_isnoneornil(L, 4)) {
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "?";
      if (strcmp(k, "raw") != 0) return luaL_error(L, "input: unknown option '%s' (allowed: raw)", k);
      lua_pop(L, 1);
    }
    lua_getfield(L, 4, "raw");
    if (!lua_isnil(L, -1) && !lua_isboolean(L, -1)) return luaL_error(L, "input: option 'raw' must be a boolean");
    raw = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  l_handle_t *u = handle_new(L, ll, INPUT_MT, 3);
  int rc = tide_input_start(ll->loop, (int)fd, raw, on_input, on_release, u, &u->h);
  if (rc) return handle_failed(L, u, rc);
  return 1;
}

/* loop:poll(fd, fn) -> tide.Poll, or nil, msg, name. fn() each loop
 * iteration in which fd is readable, until p:stop() (p:again() starts it
 * again); fn("ENAME: msg") when polling failed (then it is stopped). fd is
 * put in non-blocking mode (see tide_poll_start): not stdin itself. */
static int l_loop_poll(lua_State *L) {
  l_loop_t *ll = check_open_loop(L, 1);
  lua_Integer fd = luaL_checkinteger(L, 2);
  luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, 2, "must be a file descriptor (>= 0)");
  luaL_checktype(L, 3, LUA_TFUNCTION);
  l_handle_t *u = handle_new(L, ll, POLL_MT, 3);
  int rc = tide_poll_start(ll->loop, (int)fd, on_poll, on_release, u, &u->h);
  if (rc) return handle_failed(L, u, rc);
  return 1;
}

/* loop:catch_interrupt(mode) -> the number of SIGINTs that arrived and
 * that the tide.Signal callbacks did not get yet (a REPL that shows a new
 * prompt knows that they are not for it). mode: "eval", "prompt" or "off"
 * (see the interrupts section above). A SIGINT that arrived in eval mode
 * reaches the tide.Signal callbacks as fn("SIGINT", true). The first mode other than "off" installs the
 * handler over libuv's, so a loop:signal("SIGINT", fn) must be open then
 * (and closed only after "off": libuv would put SIG_DFL back over ours). */
static int l_loop_catch_interrupt(lua_State *L) {
  static const char *const modes[] = {"off", "prompt", "eval", NULL};
  l_loop_t *ll = check_open_loop(L, 1);
  int mode = luaL_checkoption(L, 2, NULL, modes);
  if (mode != INT_OFF && int_mode == INT_OFF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    int_L = lua_tothread(L, -1);
    lua_pop(L, 1);
    int_loop = ll->loop;
    int_pending = int_force = int_unseen = int_eval_unseen = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = int_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, &int_prev) != 0) return luaL_error(L, "catch_interrupt: sigaction failed");
  } else if (mode == INT_OFF && int_mode != INT_OFF) {
    sigaction(SIGINT, &int_prev, NULL);
    if (int_L) lua_sethook(int_L, NULL, 0, 0);
    int_L = NULL;
    int_loop = NULL;
  }
  if (mode == INT_EVAL && int_mode != INT_EVAL) int_pending = 0; /* a new chunk: nothing to raise yet */
  int_mode = mode;
  lua_pushinteger(L, int_unseen);
  return 1;
}

/* core.raise_signal(name): raise() the signal in this process. */
static int l_raise_signal(lua_State *L) {
  int sig = luaL_checkoption(L, 1, NULL, signal_names);
  if (raise(signal_numbers[sig]) != 0) return luaL_error(L, "raise_signal: raise failed");
  return 0;
}

/* core.escalate_signals(on [, code]): make a second SIGINT or SIGTERM
 * end the process at once with _exit(code) (default 130).
 *
 * libuv's signal handler only queues a signal; the Lua callback that stops
 * the queries runs when the loop runs again, which is after the batch in
 * flight. A user who presses Ctrl-C again during a long batch wants out
 * now: this handler, installed over libuv's, passes the first signal on to
 * it and exits on the second. Nothing committed is lost (LMDB commits are
 * atomic; the batch in flight runs again on restart). Signal handlers are
 * process-wide, so this is the one piece of global state here: the saved
 * actions and an atomic count. `on = false` puts libuv's handlers back and
 * resets the count (call it before closing libuv's signal handles). */
static struct sigaction esc_prev[2];
static volatile sig_atomic_t esc_count, esc_code = 130, esc_on;
static const int esc_signals[2] = {SIGINT, SIGTERM};

static void esc_handler(int sig, siginfo_t *info, void *uctx) {
  if (++esc_count >= 2) {
    static const char msg[] = "tide: interrupted again: exiting now (the batch in flight runs again on restart)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit((int)esc_code);
  }
  const struct sigaction *p = &esc_prev[sig == SIGINT ? 0 : 1];
  if (p->sa_flags & SA_SIGINFO) {
    if (p->sa_sigaction) p->sa_sigaction(sig, info, uctx);
  } else if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN && p->sa_handler) {
    p->sa_handler(sig);
  }
}

static int l_escalate_signals(lua_State *L) {
  int on = lua_toboolean(L, 1);
  lua_Integer code = luaL_optinteger(L, 2, 130);
  luaL_argcheck(L, code >= 0 && code <= 255, 2, "exit status must be 0..255");
  if (on && !esc_on) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = esc_handler;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigfillset(&sa.sa_mask);
    esc_code = (sig_atomic_t)code;
    esc_count = 0;
    for (int i = 0; i < 2; i++)
      if (sigaction(esc_signals[i], &sa, &esc_prev[i]) != 0) return luaL_error(L, "escalate_signals: sigaction failed");
    esc_on = 1;
  } else if (!on && esc_on) {
    for (int i = 0; i < 2; i++) sigaction(esc_signals[i], &esc_prev[i], NULL);
    esc_on = 0;
    esc_count = 0;
  }
  return 0;
}

/* core.guess_handle(fd): what fd is (uv_guess_handle): "tty", "pipe" (a
 * pipe or a Unix socket), "tcp", "udp", "file" (a regular file or a
 * character device) or "unknown" (also a closed fd). The REPL edits lines
 * only when both stdin and stdout are terminals. */
static int l_guess_handle(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= 0x7fffffff, 1, "must be a file descriptor (>= 0)");
  switch (uv_guess_handle((int)fd)) {
  case UV_TTY: lua_pushliteral(L, "tty"); break;
  case UV_NAMED_PIPE: lua_pushliteral(L, "pipe"); break;
  case UV_TCP: lua_pushliteral(L, "tcp"); break;
  case UV_UDP: lua_pushliteral(L, "udp"); break;
  case UV_FILE: lua_pushliteral(L, "file"); break;
  default: lua_pushliteral(L, "unknown"); break;
  }
  return 1;
}

/* ---- tide.Timer, tide.Watch, tide.Signal ------------------------------------------ */

static const char *const handle_mts[] = {TIMER_MT, WATCH_MT, SIGNAL_MT, SERVER_MT, INPUT_MT, POLL_MT};

static l_handle_t *check_handle(lua_State *L, int idx, const char **mt) {
  for (int i = 0; i < 6; i++) {
    l_handle_t *u = luaL_testudata(L, idx, handle_mts[i]);
    if (u) {
      if (mt) *mt = handle_mts[i];
      return u;
    }
  }
  luaL_typeerror(L, idx, "tide.Timer, tide.Watch, tide.Signal, tide.Server, tide.Input or tide.Poll");
  return NULL;
}

static l_handle_t *check_open_handle(lua_State *L, int idx) {
  const char *mt;
  l_handle_t *u = check_handle(L, idx, &mt);
  if (u->h == NULL) luaL_error(L, "attempt to use a closed %s", mt);
  return u;
}

/* handle:close(): idempotent; also __gc and __close. */
static int l_handle_close(lua_State *L) {
  l_handle_t *u = check_handle(L, 1, NULL);
  if (u->h) {
    u->ll->cur = L;
    tide_handle_close(u->h); /* on_release clears u->h and the refs */
  } else if (u->fn_ref != LUA_NOREF || u->self_ref != LUA_NOREF) {
    handle_unref(L, u); /* a half-made handle */
  }
  return 0;
}

static int l_handle_is_active(lua_State *L) {
  l_handle_t *u = check_handle(L, 1, NULL);
  lua_pushboolean(L, u->h != NULL && tide_handle_active(u->h));
  return 1;
}

static int l_handle_is_closed(lua_State *L) {
  lua_pushboolean(L, check_handle(L, 1, NULL)->h == NULL);
  return 1;
}

static int l_handle_tostring(lua_State *L) {
  const char *mt;
  l_handle_t *u = check_handle(L, 1, &mt);
  if (u->h)
    lua_pushfstring(L, "%s (%p)", mt, (void *)u->h);
  else
    lua_pushfstring(L, "%s (closed)", mt);
  return 1;
}

/* timer:stop(): stop without closing (a no-op on a closed timer, such as
 * a one-shot timer that fired); timer:again() restarts a repeating one. */
static int l_timer_stop(lua_State *L) {
  l_handle_t *u = check_handle(L, 1, NULL);
  if (u->h) tide_timer_stop(u->h);
  return 0;
}

static int l_timer_again(lua_State *L) {
  l_handle_t *u = check_open_handle(L, 1);
  int rc = tide_timer_again(u->h);
  if (rc) return tide_l_fail(L, rc, tide_errname(rc), NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* srv:port() -> the bound port (the one the system picked for port 0). */
static int l_server_port(lua_State *L) {
  l_handle_t *u = luaL_checkudata(L, 1, SERVER_MT);
  if (u->h == NULL) return luaL_error(L, "attempt to use a closed " SERVER_MT);
  lua_pushinteger(L, tide_server_port(u->h));
  return 1;
}

/* srv:stats() -> { accepted, open, bytes, lines, errors } since it started. */
static int l_server_stats(lua_State *L) {
  l_handle_t *u = luaL_checkudata(L, 1, SERVER_MT);
  if (u->h == NULL) return luaL_error(L, "attempt to use a closed " SERVER_MT);
  tide_server_stats_t st;
  tide_server_stats(u->h, &st);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)st.accepted);
  lua_setfield(L, -2, "accepted");
  lua_pushinteger(L, (lua_Integer)st.open);
  lua_setfield(L, -2, "open");
  lua_pushinteger(L, (lua_Integer)st.bytes);
  lua_setfield(L, -2, "bytes");
  lua_pushinteger(L, (lua_Integer)st.lines);
  lua_setfield(L, -2, "lines");
  lua_pushinteger(L, (lua_Integer)st.errors);
  lua_setfield(L, -2, "errors");
  return 1;
}

static l_handle_t *check_open_server(lua_State *L) {
  l_handle_t *u = luaL_checkudata(L, 1, SERVER_MT);
  if (u->h == NULL) luaL_error(L, "attempt to use a closed " SERVER_MT);
  return u;
}

/* srv:batch(from, to [, bad]) -> batch, lines, dropped, {dropped line numbers}
 *                              | nil, "line N: reason", ENAME
 * The kept lines [from, to) as a tide.Batch of "value string" (decode.h's
 * text format; line N of messages is line N - 1 of the server). bad is
 * "fail" (default: an invalid UTF-8 line fails) or "drop" (it is skipped
 * and counted). A batch holds at most TIDE_BATCH_MAX_ROWS rows: `lines`
 * says how many of the range it covers; ask again for the rest. Lines
 * already forgotten, or not received yet, are a programming error. */
static int l_server_batch(lua_State *L) {
  static const char *const bad_modes[] = {"fail", "drop", NULL};
  l_handle_t *u = check_open_server(L);
  lua_Integer from = luaL_checkinteger(L, 2), to = luaL_checkinteger(L, 3);
  tide_decode_opts_t o = {TIDE_FMT_TEXT, (tide_bad_policy_t)luaL_checkoption(L, 4, "fail", bad_modes), 0, 0, 0};
  const char *text;
  size_t len;
  if (from < 0 || to < 0 || tide_lines_text(&u->kept, (uint64_t)from, (uint64_t)to, &text, &len))
    return luaL_error(L, "srv:batch: lines [%I, %I) are not kept (kept: [%I, %I))", from, to,
                      (lua_Integer)u->kept.base, (lua_Integer)u->kept.count);
  if (u->lost) return tide_l_fail(L, -ENOMEM, tide_errname(-ENOMEM), "lines were lost (out of memory)");
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  int rc = tide_schema_parse_ddl("value string", 12, &s, &err);
  if (rc) return tide_l_fail(L, rc, tide_errname(rc), NULL);
  tide_batch_t *b = tide_batch_new(s, 0);
  tide_schema_unref(s); /* the batch holds it */
  if (!b) return tide_l_fail(L, -ENOMEM, tide_errname(-ENOMEM), NULL);
  tide_l_push_batch(L, b); /* owned by Lua from here: a raise frees it */
  tide_decoder_t *d = NULL;
  if ((rc = tide_decoder_open(b->schema, &o, &d, &err))) return tide_l_fail(L, rc, tide_errname(rc), NULL);
  tide_decode_result_t r;
  rc = tide_decode(d, b, text, len, 1, from + 1, &r, &err);
  int64_t lines[TIDE_DECODE_KEEP];
  uint32_t nl = r.ndropped_lines;
  memcpy(lines, r.dropped_lines, sizeof lines);
  tide_decoder_close(d); /* before anything can raise */
  if (rc) return tide_l_fail(L, rc, NULL, err.msg);
  lua_pushinteger(L, r.lines);
  lua_pushinteger(L, (lua_Integer)r.dropped);
  lua_createtable(L, (int)nl, 0);
  for (uint32_t i = 0; i < nl; i++) {
    lua_pushinteger(L, lines[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 4;
}

/* srv:forget(upto): the kept lines before upto are no longer needed. */
static int l_server_forget(lua_State *L) {
  l_handle_t *u = check_open_server(L);
  lua_Integer upto = luaL_checkinteger(L, 2);
  if (upto > 0) tide_lines_forget(&u->kept, (uint64_t)upto);
  return 0;
}

/* ---- tide.Input ------------------------------------------------------------------------ */

static l_handle_t *check_open_input(lua_State *L) {
  l_handle_t *u = luaL_checkudata(L, 1, INPUT_MT);
  if (u->h == NULL) luaL_error(L, "attempt to use a closed " INPUT_MT);
  return u;
}

/* inp:kind() -> "tty", "pipe", "tcp" or "file". */
static int l_input_kind(lua_State *L) {
  static const char *const kinds[] = {"?", "tty", "pipe", "tcp", "file"};
  l_handle_t *u = check_open_input(L);
  lua_pushstring(L, kinds[tide_input_kind(u->h)]);
  return 1;
}

/* inp:set_raw(bool) -> true, or nil, msg, name (EINVAL: not a terminal). */
static int l_input_set_raw(lua_State *L) {
  l_handle_t *u = check_open_input(L);
  luaL_checktype(L, 2, LUA_TBOOLEAN);
  int rc = tide_input_set_raw(u->h, lua_toboolean(L, 2));
  if (rc) return tide_l_fail(L, rc, tide_errname(rc), NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* inp:pause() / inp:resume(): stop and restart delivering bytes (they wait
 * in the kernel meanwhile). No-ops after the end. */
static int l_input_pause(lua_State *L) {
  l_handle_t *u = check_open_input(L);
  int rc = tide_input_pause(u->h);
  if (rc) return tide_l_fail(L, rc, tide_errname(rc), NULL);
  lua_pushboolean(L, 1);
  return 1;
}

static int l_input_resume(lua_State *L) {
  l_handle_t *u = check_open_input(L);
  int rc = tide_input_resume(u->h);
  if (rc) return tide_l_fail(L, rc, tide_errname(rc), NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* inp:winsize() -> cols, rows; or nil, msg, name (EINVAL: not a terminal). */
static int l_input_winsize(lua_State *L) {
  l_handle_t *u = check_open_input(L);
  int cols = 0, rows = 0;
  int rc = tide_input_winsize(u->h, &cols, &rows);
  if (rc) return tide_l_fail(L, rc, tide_errname(rc), NULL);
  lua_pushinteger(L, cols);
  lua_pushinteger(L, rows);
  return 2;
}

/* ---- tide.Poll ------------------------------------------------------------------------- */

/* p:stop() / p:again(): stop and restart watching. stop is a no-op on a
 * closed poll; again raises there. */
static int l_poll_stop(lua_State *L) {
  l_handle_t *u = luaL_checkudata(L, 1, POLL_MT);
  if (u->h) tide_poll_stop(u->h);
  return 0;
}

static int l_poll_again(lua_State *L) {
  l_handle_t *u = luaL_checkudata(L, 1, POLL_MT);
  if (u->h == NULL) return luaL_error(L, "attempt to use a closed " POLL_MT);
  int rc = tide_poll_again(u->h);
  if (rc) return tide_l_fail(L, rc, tide_errname(rc), NULL);
  lua_pushboolean(L, 1);
  return 1;
}

/* ---- registration ------------------------------------------------------------------ */

static const luaL_Reg loop_methods[] = {
    {"timer", l_loop_timer}, {"watch", l_loop_watch}, {"signal", l_loop_signal}, {"listen", l_loop_listen},
    {"run", l_loop_run},     {"stop", l_loop_stop},   {"alive", l_loop_alive},   {"now", l_loop_now},
    {"close", l_loop_close}, {"input", l_loop_input}, {"poll", l_loop_poll},
    {"catch_interrupt", l_loop_catch_interrupt}, {NULL, NULL}};

static const luaL_Reg timer_methods[] = {{"stop", l_timer_stop},         {"again", l_timer_again},
                                        {"close", l_handle_close},       {"is_active", l_handle_is_active},
                                        {"is_closed", l_handle_is_closed}, {NULL, NULL}};

static const luaL_Reg other_methods[] = {{"close", l_handle_close},
                                        {"is_active", l_handle_is_active},
                                        {"is_closed", l_handle_is_closed},
                                        {NULL, NULL}};

static const luaL_Reg server_methods[] = {{"port", l_server_port},
                                         {"stats", l_server_stats},
                                         {"batch", l_server_batch},
                                         {"forget", l_server_forget},
                                         {"close", l_handle_close},
                                         {"is_active", l_handle_is_active},
                                         {"is_closed", l_handle_is_closed},
                                         {NULL, NULL}};

static const luaL_Reg poll_methods[] = {{"stop", l_poll_stop},         {"again", l_poll_again},
                                       {"close", l_handle_close},       {"is_active", l_handle_is_active},
                                       {"is_closed", l_handle_is_closed}, {NULL, NULL}};

static const luaL_Reg input_methods[] = {{"kind", l_input_kind},
                                        {"set_raw", l_input_set_raw},
                                        {"pause", l_input_pause},
                                        {"resume", l_input_resume},
                                        {"winsize", l_input_winsize},
                                        {"close", l_handle_close},
                                        {"is_active", l_handle_is_active},
                                        {"is_closed", l_handle_is_closed},
                                        {NULL, NULL}};

/* Create metatable `name` with __index = methods, __gc/__close = close. */
static void new_metatable(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction close,
                          lua_CFunction tostring) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

int tide_l_loop_open(lua_State *L) {
  luaL_checktype(L, -1, LUA_TTABLE);
  new_metatable(L, LOOP_MT, loop_methods, l_loop_close, l_loop_tostring);
  new_metatable(L, TIMER_MT, timer_methods, l_handle_close, l_handle_tostring);
  new_metatable(L, WATCH_MT, other_methods, l_handle_close, l_handle_tostring);
  new_metatable(L, SIGNAL_MT, other_methods, l_handle_close, l_handle_tostring);
  new_metatable(L, SERVER_MT, server_methods, l_handle_close, l_handle_tostring);
  new_metatable(L, INPUT_MT, input_methods, l_handle_close, l_handle_tostring);
  new_metatable(L, POLL_MT, poll_methods, l_handle_close, l_handle_tostring);
  lua_pushcfunction(L, l_loop_new);
  lua_setfield(L, -2, "loop");
  lua_pushcfunction(L, l_escalate_signals);
  lua_setfield(L, -2, "escalate_signals");
  lua_pushcfunction(L, l_raise_signal);
  lua_setfield(L, -2, "raise_signal");
  lua_pushcfunction(L, l_guess_handle);
  lua_setfield(L, -2, "guess_handle");
  return 0;
}
