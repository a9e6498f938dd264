/*
 * loop.c: tide's event loop over libuv (see loop.h for the contract).
 *
 * Data structure. A tide_loop_t embeds its uv_loop_t and heads an intrusive
 * doubly linked list of the tide_handle_t that are open on it:
 *
 *   tide_loop_t { uv_loop_t uv; head -> h1 <-> h2 <-> ... <- tail; nopen; nclosing }
 *   tide_handle_t { union of uv handles (first member); loop; prev/next; cb; release; data }
 *
 * Invariants:
 *   - a handle is on the list  <=>  it is open (tide_handle_close not yet called);
 *   - nopen == length of the list; nclosing == handles given to uv_close whose
 *     close callback has not run yet; a handle's memory is freed in its close
 *     callback and nowhere else, so libuv never sees freed memory;
 *   - the loop's memory is freed only by tide_loop_free, after a successful
 *     close drained every close callback (nclosing == 0).
 */
#include "loop.h"

#include <errno.h>
#include <stdlib.h>

#include "err.h"

struct tide_handle {
  union {
    uv_handle_t handle;
    uv_timer_t timer;
    uv_fs_event_t watch;
    uv_signal_t signal;
  } u;
  tide_loop_t *loop;
  tide_handle_type_t type;
  int closing;
  tide_handle_t *prev, *next;
  union {
    tide_timer_cb timer;
    tide_watch_cb watch;
    tide_signal_cb signal;
  } cb;
  tide_release_cb release;
  void *data;
};

struct tide_loop {
  uv_loop_t uv;
  tide_handle_t *head, *tail;
  int nopen;          /* handles on the list */
  int nclosing;       /* handles waiting for their close callback */
  int running;        /* inside tide_loop_run */
  int closed;         /* tide_loop_close was called: no new handles */
  int close_deferred; /* closed from a callback: tide_loop_run finishes it */
  int uv_closed;      /* uv_loop_close succeeded */
};

/* ---- loops ------------------------------------------------------------------ */

int tide_loop_open(tide_loop_t **out) {
  *out = NULL;
  tide_loop_t *loop = calloc(1, sizeof *loop);
  if (!loop) return -ENOMEM;
  int rc = uv_loop_init(&loop->uv);
  if (rc) {
    free(loop);
    return rc;
  }
  loop->uv.data = loop;
  *out = loop;
  return 0;
}

/* Run the loop without blocking until every close callback ran, then close
 * the libuv loop. Returns 0 or UV_EBUSY (foreign handles still open). */
static int loop_finish_close(tide_loop_t *loop) {
  if (loop->uv_closed) return 0;
  /* A non-blocking iteration runs the pending close callbacks (also those
   * of foreign handles their owners closed); repeat until ours all ran. */
  do {
    uv_run(&loop->uv, UV_RUN_NOWAIT);
  } while (loop->nclosing > 0);
  int rc = uv_loop_close(&loop->uv);
  if (rc == 0) loop->uv_closed = 1;
  return rc;
}

int tide_loop_close(tide_loop_t *loop) {
  if (loop->uv_closed) return 0;
  loop->closed = 1;
  while (loop->head) tide_handle_close(loop->head);
  if (loop->running) {
    loop->close_deferred = 1;
    uv_stop(&loop->uv);
    return 0;
  }
  return loop_finish_close(loop);
}

int tide_loop_free(tide_loop_t *loop) {
  if (!loop) return 0;
  if (loop->running) return UV_EBUSY;
  int rc = tide_loop_close(loop);
  /* With foreign handles still open the uv loop is in use: leak the loop
   * rather than free memory that libuv still points into. */
  if (rc == 0) free(loop);
  return rc;
}

int tide_loop_run(tide_loop_t *loop, tide_run_mode_t mode) {
  if (loop->closed) return TIDE_ECLOSED;
  if (loop->running) return UV_EBUSY;
  loop->running = 1;
  int alive = uv_run(&loop->uv, (uv_run_mode)mode);
  loop->running = 0;
  if (loop->close_deferred) {
    loop->close_deferred = 0;
    loop_finish_close(loop);
    return 0;
  }
  return alive != 0;
}

void tide_loop_stop(tide_loop_t *loop) {
  if (!loop->uv_closed) uv_stop(&loop->uv);
}

int tide_loop_alive(const tide_loop_t *loop) {
  if (loop->uv_closed) return 0;
  return uv_loop_alive(&loop->uv) != 0;
}

int tide_loop_closed(const tide_loop_t *loop) { return loop->closed; }

int tide_loop_running(const tide_loop_t *loop) { return loop->running; }

int tide_loop_handles(const tide_loop_t *loop) { return loop->nopen; }

uv_loop_t *tide_loop_uv(tide_loop_t *loop) { return loop->uv_closed ? NULL : &loop->uv; }

uint64_t tide_loop_now(const tide_loop_t *loop) { return uv_now(&loop->uv); }

/* ---- handles: the common part --------------------------------------------------- */

/* A zeroed handle of the given type, not yet on the list. NULL on ENOMEM. */
static tide_handle_t *handle_new(tide_loop_t *loop, tide_handle_type_t type, tide_release_cb release,
                                 void *data) {
  tide_handle_t *h = calloc(1, sizeof *h);
  if (!h) return NULL;
  h->loop = loop;
  h->type = type;
  h->release = release;
  h->data = data;
  h->u.handle.data = h;
  return h;
}

/* Put a started handle on the loop's list (at the tail). */
static void handle_link(tide_handle_t *h) {
  tide_loop_t *loop = h->loop;
  h->prev = loop->tail;
  h->next = NULL;
  if (loop->tail)
    loop->tail->next = h;
  else
    loop->head = h;
  loop->tail = h;
  loop->nopen++;
}

static void handle_unlink(tide_handle_t *h) {
  tide_loop_t *loop = h->loop;
  if (h->prev)
    h->prev->next = h->next;
  else
    loop->head = h->next;
  if (h->next)
    h->next->prev = h->prev;
  else
    loop->tail = h->prev;
  h->prev = h->next = NULL;
  loop->nopen--;
}

/* libuv's close callback: the only place a handle's memory is freed. */
static void handle_on_closed(uv_handle_t *uvh) {
  tide_handle_t *h = uvh->data;
  h->loop->nclosing--;
  free(h);
}

/* Close a handle that was initialised on the uv loop but never started
 * (a failed start): no release, not on the list. */
static void handle_abandon(tide_handle_t *h) {
  h->closing = 1;
  h->release = NULL;
  h->loop->nclosing++;
  uv_close(&h->u.handle, handle_on_closed);
}

void tide_handle_close(tide_handle_t *h) {
  if (!h || h->closing) return;
  h->closing = 1;
  handle_unlink(h);
  h->loop->nclosing++;
  uv_close(&h->u.handle, handle_on_closed);
  tide_release_cb release = h->release;
  h->release = NULL;
  if (release) release(h, h->data);
}

tide_handle_type_t tide_handle_type(const tide_handle_t *h) { return h->type; }

int tide_handle_active(const tide_handle_t *h) { return !h->closing && uv_is_active(&h->u.handle); }

/* ---- timers --------------------------------------------------------------------- */

static void timer_on_fire(uv_timer_t *t) {
  tide_handle_t *h = t->data;
  h->cb.timer(h, h->data);
}

int tide_timer_start(tide_loop_t *loop, uint64_t timeout_ms, uint64_t repeat_ms, tide_timer_cb cb,
                     tide_release_cb release, void *data, tide_handle_t **out) {
  *out = NULL;
  if (loop->closed) return TIDE_ECLOSED;
  tide_handle_t *h = handle_new(loop, TIDE_HANDLE_TIMER, release, data);
  if (!h) return -ENOMEM;
  h->cb.timer = cb;
  int rc = uv_timer_init(&loop->uv, &h->u.timer);
  if (rc) {
    free(h);
    return rc;
  }
  rc = uv_timer_start(&h->u.timer, timer_on_fire, timeout_ms, repeat_ms);
  if (rc) {
    handle_abandon(h);
    return rc;
  }
  handle_link(h);
  *out = h;
  return 0;
}

int tide_timer_stop(tide_handle_t *h) {
  if (h->type != TIDE_HANDLE_TIMER || h->closing) return UV_EINVAL;
  return uv_timer_stop(&h->u.timer);
}

int tide_timer_set(tide_handle_t *h, uint64_t timeout_ms, uint64_t repeat_ms) {
  if (h->type != TIDE_HANDLE_TIMER || h->closing) return UV_EINVAL;
  return uv_timer_start(&h->u.timer, timer_on_fire, timeout_ms, repeat_ms);
}

int tide_timer_again(tide_handle_t *h) {
  if (h->type != TIDE_HANDLE_TIMER || h->closing) return UV_EINVAL;
  return uv_timer_again(&h->u.timer);
}

/* ---- file-system watches -------------------------------------------------------- */

static void watch_on_event(uv_fs_event_t *w, const char *filename, int events, int status) {
  tide_handle_t *h = w->data;
  h->cb.watch(h, h->data, filename, status < 0 ? 0 : events, status < 0 ? status : 0);
}

int tide_watch_start(tide_loop_t *loop, const char *path, tide_watch_cb cb, tide_release_cb release,
                     void *data, tide_handle_t **out) {
  *out = NULL;
  if (loop->closed) return TIDE_ECLOSED;
  tide_handle_t *h = handle_new(loop, TIDE_HANDLE_WATCH, release, data);
  if (!h) return -ENOMEM;
  h->cb.watch = cb;
  int rc = uv_fs_event_init(&loop->uv, &h->u.watch);
  if (rc) {
    free(h);
    return rc;
  }
  rc = uv_fs_event_start(&h->u.watch, watch_on_event, path, 0);
  if (rc) {
    handle_abandon(h);
    return rc;
  }
  handle_link(h);
  *out = h;
  return 0;
}

/* ---- signals -------------------------------------------------------------------- */

static void signal_on_signal(uv_signal_t *s, int signum) {
  tide_handle_t *h = s->data;
  h->cb.signal(h, h->data, signum);
}

int tide_signal_start(tide_loop_t *loop, int signum, tide_signal_cb cb, tide_release_cb release, void *data,
                      tide_handle_t **out) {
  *out = NULL;
  if (loop->closed) return TIDE_ECLOSED;
  tide_handle_t *h = handle_new(loop, TIDE_HANDLE_SIGNAL, release, data);
  if (!h) return -ENOMEM;
  h->cb.signal = cb;
  int rc = uv_signal_init(&loop->uv, &h->u.signal);
  if (rc) {
    free(h);
    return rc;
  }
  rc = uv_signal_start(&h->u.signal, signal_on_signal, signum);
  if (rc) {
    handle_abandon(h);
    return rc;
  }
  handle_link(h);
  *out = h;
  return 0;
}
