/*
 * test_loop.c: the event loop (core/loop.c): timers fire in order, a watch
 * sees a write, signals arrive, closing from inside a callback works, and
 * every test ends by proving that nothing is left open on the uv loop.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "loop.h"
#include "t.h"

/* Count the handles still known to a uv loop (open or closing). */
static void count_walk(uv_handle_t *h, void *arg) {
  (void)h;
  (*(int *)arg)++;
}

static int uv_handles_left(tide_loop_t *loop) {
  int n = 0;
  uv_loop_t *uv = tide_loop_uv(loop);
  if (uv) uv_walk(uv, count_walk, &n);
  return n;
}

/* ---- timers fire in order --------------------------------------------------- */

typedef struct order {
  char seen[16];
  int n, released;
} order_t;

typedef struct tick {
  order_t *o;
  char tag;
} tick_t;

static void tick_cb(tide_handle_t *h, void *data) {
  tick_t *t = data;
  t->o->seen[t->o->n++] = t->tag;
  tide_handle_close(h);
}

static void tick_release(tide_handle_t *h, void *data) {
  (void)h;
  ((tick_t *)data)->o->released++;
}

static void test_timers_fire_in_order(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  order_t o = {{0}, 0, 0};
  tick_t ticks[3] = {{&o, 'c'}, {&o, 'a'}, {&o, 'b'}};
  uint64_t ms[3] = {30, 5, 15};
  for (int i = 0; i < 3; i++) {
    tide_handle_t *h;
    T_EQ_INT(tide_timer_start(loop, ms[i], 0, tick_cb, tick_release, &ticks[i], &h), 0);
    T_CHECK(h != NULL);
    if (h == NULL) continue;
    T_EQ_INT(tide_handle_type(h), TIDE_HANDLE_TIMER);
    T_CHECK(tide_handle_active(h));
  }
  T_EQ_INT(tide_loop_handles(loop), 3);
  T_EQ_INT(tide_loop_alive(loop), 1);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0);
  T_EQ_STR(o.seen, "abc");
  T_EQ_INT(o.released, 3);
  T_EQ_INT(tide_loop_handles(loop), 0);
  T_EQ_INT(uv_handles_left(loop), 0);
  T_EQ_INT(tide_loop_close(loop), 0);
  T_EQ_INT(tide_loop_close(loop), 0); /* idempotent */
  T_EQ_INT(tide_loop_free(loop), 0);
}

/* ---- a repeating timer, stopped and restarted ---------------------------------- */

/* Stops its timer from the third firing on, so each restart fires it
 * exactly once however slowly the loop runs (under valgrind, a 1 ms
 * repeating timer could otherwise fire twice in one iteration). */
static void count_cb(tide_handle_t *h, void *data) {
  int *n = data;
  if (++*n >= 3) tide_timer_stop(h);
}

static void test_repeating_timer(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  int n = 0;
  tide_handle_t *h;
  T_EQ_INT(tide_timer_start(loop, 1, 1, count_cb, NULL, &n, &h), 0);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0); /* returns: the stopped timer is not active */
  T_EQ_INT(n, 3);
  T_CHECK(!tide_handle_active(h));
  T_EQ_INT(tide_loop_handles(loop), 1); /* stopped, still open */
  T_EQ_INT(tide_timer_again(h), 0);
  T_CHECK(tide_handle_active(h));
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0); /* fires once, stops, nothing left active */
  T_EQ_INT(n, 4);
  T_EQ_INT(tide_loop_free(loop), 0); /* closes the open timer */
}

/* ---- a watch sees a write ------------------------------------------------------- */

typedef struct watch_state {
  char dir[64];
  int events, changes, renames, errors;
  char name[64];
  tide_loop_t *loop;
} watch_state_t;

static void watch_cb(tide_handle_t *h, void *data, const char *filename, int events, int status) {
  (void)h;
  watch_state_t *w = data;
  if (status < 0) {
    w->errors++;
    return;
  }
  w->events++;
  if (events & TIDE_WATCH_CHANGE) w->changes++;
  if (events & TIDE_WATCH_RENAME) w->renames++;
  if (filename) snprintf(w->name, sizeof w->name, "%s", filename);
  tide_loop_stop(w->loop);
}

static void write_file_cb(tide_handle_t *h, void *data) {
  watch_state_t *w = data;
  char path[128];
  snprintf(path, sizeof path, "%s/data.txt", w->dir);
  FILE *f = fopen(path, "w");
  T_CHECK(f != NULL);
  if (f) {
    fputs("hello\n", f);
    fclose(f);
  }
  tide_handle_close(h);
}

static void timeout_cb(tide_handle_t *h, void *data) {
  (void)h;
  tide_loop_stop(((watch_state_t *)data)->loop);
}

static void test_watch_sees_a_write(void) {
  watch_state_t w;
  memset(&w, 0, sizeof w);
  snprintf(w.dir, sizeof w.dir, "/tmp/tide-test-loop-XXXXXX");
  T_CHECK(mkdtemp(w.dir) != NULL);
  T_EQ_INT(tide_loop_open(&w.loop), 0);
  tide_handle_t *watch, *writer, *timeout;
  T_EQ_INT(tide_watch_start(w.loop, w.dir, watch_cb, NULL, &w, &watch), 0);
  T_EQ_INT(tide_handle_type(watch), TIDE_HANDLE_WATCH);
  T_EQ_INT(tide_timer_start(w.loop, 5, 0, write_file_cb, NULL, &w, &writer), 0);
  T_EQ_INT(tide_timer_start(w.loop, 5000, 0, timeout_cb, NULL, &w, &timeout), 0);
  T_EQ_INT(tide_loop_run(w.loop, TIDE_RUN_DEFAULT), 1); /* stopped by the watch: handles remain */
  T_CHECK(w.events >= 1);
  T_CHECK(w.changes + w.renames >= 1);
  T_EQ_STR(w.name, "data.txt");
  T_EQ_INT(w.errors, 0);
  T_EQ_INT(tide_loop_handles(w.loop), 2); /* the watch and the timeout */
  T_EQ_INT(tide_loop_close(w.loop), 0);
  T_EQ_INT(tide_loop_handles(w.loop), 0);
  T_EQ_INT(tide_loop_alive(w.loop), 0);
  T_EQ_INT(tide_loop_free(w.loop), 0);

  char path[128];
  snprintf(path, sizeof path, "%s/data.txt", w.dir);
  unlink(path);
  rmdir(w.dir);
}

static void test_watch_of_a_missing_path_fails_cleanly(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  tide_handle_t *h = (tide_handle_t *)1;
  T_EQ_INT(tide_watch_start(loop, "/nonexistent/tide/dir", watch_cb, NULL, NULL, &h), -ENOENT);
  T_CHECK(h == NULL);
  T_EQ_INT(tide_loop_handles(loop), 0);
  T_EQ_INT(tide_loop_free(loop), 0); /* uv_loop_close succeeded: the failed handle was closed */
}

/* ---- signals -------------------------------------------------------------------- */

static void signal_cb(tide_handle_t *h, void *data, int signum) {
  int *got = data;
  *got = signum;
  tide_handle_close(h);
}

static void raise_cb(tide_handle_t *h, void *data) {
  (void)data;
  raise(SIGHUP);
  tide_handle_close(h);
}

static void test_signal_arrives(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  int got = 0;
  tide_handle_t *sig, *timer;
  T_EQ_INT(tide_signal_start(loop, SIGHUP, signal_cb, NULL, &got, &sig), 0);
  T_EQ_INT(tide_timer_start(loop, 1, 0, raise_cb, NULL, NULL, &timer), 0);
  T_EQ_INT(tide_loop_run(loop, TIDE_RUN_DEFAULT), 0);
  T_EQ_INT(got, SIGHUP);
  T_EQ_INT(tide_loop_free(loop), 0);

  T_EQ_INT(tide_loop_open(&loop), 0);
  T_EQ_INT(tide_signal_start(loop, 12345, signal_cb, NULL, &got, &sig), UV_EINVAL);
  T_EQ_INT(tide_loop_free(loop), 0);
}

/* ---- closing from inside a callback -------------------------------------------------- */

typedef struct closer {
  tide_loop_t *loop;
  int released;
} closer_t;

static void close_loop_cb(tide_handle_t *h, void *data) {
  (void)h;
  closer_t *c = data;
  T_EQ_INT(tide_loop_close(c->loop), 0);
  T_EQ_INT(tide_loop_run(c->loop, TIDE_RUN_DEFAULT), TIDE_ECLOSED);
  T_EQ_INT(tide_loop_free(c->loop), UV_EBUSY); /* not from a callback */
  tide_handle_t *t;
  T_EQ_INT(tide_timer_start(c->loop, 1, 0, close_loop_cb, NULL, c, &t), TIDE_ECLOSED);
  T_CHECK(t == NULL);
}

static void count_release(tide_handle_t *h, void *data) {
  (void)h;
  ((closer_t *)data)->released++;
}

static void test_close_from_a_callback(void) {
  closer_t c = {NULL, 0};
  T_EQ_INT(tide_loop_open(&c.loop), 0);
  tide_handle_t *h;
  T_EQ_INT(tide_timer_start(c.loop, 1, 0, close_loop_cb, count_release, &c, &h), 0);
  T_EQ_INT(tide_timer_start(c.loop, 60000, 0, close_loop_cb, count_release, &c, &h), 0);
  T_EQ_INT(tide_timer_start(c.loop, 60000, 0, close_loop_cb, count_release, &c, &h), 0);
  T_EQ_INT(tide_loop_run(c.loop, TIDE_RUN_DEFAULT), 0); /* returns at once, closed */
  T_EQ_INT(c.released, 3);
  T_CHECK(tide_loop_closed(c.loop));
  T_EQ_INT(tide_loop_alive(c.loop), 0);
  T_CHECK(tide_loop_uv(c.loop) == NULL); /* uv_loop_close succeeded */
  T_EQ_INT(tide_loop_free(c.loop), 0);
}

/* ---- close leaves nothing open ----------------------------------------------------- */

static void never_cb(tide_handle_t *h, void *data) {
  (void)h;
  (void)data;
  T_CHECK(0);
}

static void ignore_cb(tide_handle_t *h, void *data, const char *filename, int events, int status) {
  (void)h, (void)data, (void)filename, (void)events, (void)status;
}

static void test_close_leaves_nothing_open(void) {
  tide_loop_t *loop;
  T_EQ_INT(tide_loop_open(&loop), 0);
  closer_t c = {loop, 0};
  tide_handle_t *h;
  for (int i = 0; i < 10; i++) T_EQ_INT(tide_timer_start(loop, 100000, 0, never_cb, count_release, &c, &h), 0);
  T_EQ_INT(tide_watch_start(loop, "/tmp", ignore_cb, count_release, &c, &h), 0);
  T_EQ_INT(tide_signal_start(loop, SIGUSR1, signal_cb, count_release, &c, &h), 0);
  T_EQ_INT(uv_handles_left(loop), 12);
  tide_handle_close(h); /* one closed by hand first */
  T_EQ_INT(c.released, 1);
  T_EQ_INT(tide_loop_handles(loop), 11);
  /* A uv handle that tide did not start blocks the close until its owner closes it. */
  uv_idle_t idle;
  T_EQ_INT(uv_idle_init(tide_loop_uv(loop), &idle), 0);
  T_EQ_INT(tide_loop_close(loop), UV_EBUSY);
  T_EQ_INT(c.released, 12);
  uv_close((uv_handle_t *)&idle, NULL);
  T_EQ_INT(tide_loop_close(loop), 0);
  T_CHECK(tide_loop_uv(loop) == NULL);
  T_EQ_INT(tide_loop_free(loop), 0);
}

int main(void) {
  T_RUN(test_timers_fire_in_order);
  T_RUN(test_repeating_timer);
  T_RUN(test_watch_sees_a_write);
  T_RUN(test_watch_of_a_missing_path_fails_cleanly);
  T_RUN(test_signal_arrives);
  T_RUN(test_close_from_a_callback);
  T_RUN(test_close_leaves_nothing_open);
  T_DONE();
}
