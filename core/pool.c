/*
 * pool.c: the worker pool (rules in pool.h).
 *
 * One mutex guards the runs under way: a list, oldest first, of run
 * records that live on their callers' stacks (fn, arg, the task count n,
 * the next index to hand out and the count of tasks not yet finished).
 * Workers sleep on `work` until some run has an index left (or stop),
 * take the oldest run's next index, run it unlocked, and the one that
 * finishes a run's last task wakes the callers on `done` (broadcast: more
 * than one thread may be waiting for a run of its own). A caller takes
 * indexes of its own run only, in the same loop as the workers, then waits
 * for its tasks still running elsewhere and unlinks its run; the mutex
 * hand-over makes every write of a task visible to its caller when
 * tide_pool_run returns. Two threads that run at once so share the workers
 * (the read ahead's decoding and the loop thread's operators: one pool of
 * `workers` threads for the process, not one per thread).
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "err.h"

typedef struct run {
  tide_pool_fn fn;
  void *arg;
  size_t n, next, left; /* tasks of the run, the next to hand out, not yet finished */
  struct run *older, *newer;
} run_t;

struct tide_pool {
  pthread_mutex_t mu;
  pthread_cond_t work, done;
  run_t *oldest, *newest; /* the runs under way */
  int stop;
  int refs;               /* tide_pool_ref's, plus the opener's */
  int nthreads, nworkers; /* nworkers: started (nthreads - 1 once open) */
  pid_t pid;              /* the process the workers live in */
  pthread_t *threads;
};

/* Run task i of run r (taken with p->mu held, which is held again on
 * return) and wake the callers when it was the run's last. */
static void run_task(tide_pool_t *p, run_t *r, size_t i) {
  pthread_mutex_unlock(&p->mu);
  r->fn(r->arg, i);
  pthread_mutex_lock(&p->mu);
  if (--r->left == 0) pthread_cond_broadcast(&p->done);
}

/* The oldest run with an index left to hand out, or NULL. */
static run_t *ready(tide_pool_t *p) {
  for (run_t *r = p->oldest; r; r = r->newer)
    if (r->next < r->n) return r;
  return NULL;
}

static void *worker(void *arg) {
  tide_pool_t *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    run_t *r = ready(p);
    if (r) run_task(p, r, r->next++);
    else pthread_cond_wait(&p->work, &p->mu);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void stop_workers(tide_pool_t *p) {
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_broadcast(&p->work);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->nworkers; i++) pthread_join(p->threads[i], NULL);
  /* the mutex once more before it is destroyed: the workers' last unlock
   * is then ordered before the destroy for helgrind too, also on a thread
   * that did not open the pool (the last reference dropped elsewhere) */
  pthread_mutex_lock(&p->mu);
  p->nworkers = 0;
  pthread_mutex_unlock(&p->mu);
}

int tide_pool_open(int n, tide_pool_t **out) {
  *out = NULL;
  if (n < 1 || n > TIDE_POOL_MAX) return TIDE_EINVAL;
  tide_pool_t *p = calloc(1, sizeof *p);
  if (!p) return -ENOMEM;
  p->nthreads = n;
  p->refs = 1;
  p->pid = getpid();
  if (n > 1 && !(p->threads = calloc((size_t)n - 1, sizeof *p->threads))) {
    free(p);
    return -ENOMEM;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->work, NULL);
  pthread_cond_init(&p->done, NULL);
  for (int i = 0; i < n - 1; i++) {
    int rc = pthread_create(&p->threads[i], NULL, worker, p);
    if (rc) {
      tide_pool_close(p);
      return -rc;
    }
    p->nworkers++;
  }
  *out = p;
  return 0;
}

void tide_pool_ref(tide_pool_t *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  p->refs++;
  pthread_mutex_unlock(&p->mu);
}

void tide_pool_close(tide_pool_t *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  int last = --p->refs == 0;
  pthread_mutex_unlock(&p->mu);
  if (!last) return;
  if (p->pid == getpid()) stop_workers(p); /* after fork the workers are not ours to join */
  pthread_cond_destroy(&p->done);
  pthread_cond_destroy(&p->work);
  pthread_mutex_destroy(&p->mu);
  free(p->threads);
  free(p);
}

int tide_pool_threads(const tide_pool_t *p) { return p ? p->nthreads : 1; }

void tide_pool_run(tide_pool_t *p, size_t n, tide_pool_fn fn, void *arg) {
  if (!p || p->nworkers == 0 || n < 2 || p->pid != getpid()) {
    for (size_t i = 0; i < n; i++) fn(arg, i);
    return;
  }
  run_t r = {fn, arg, n, 0, n, NULL, NULL};
  pthread_mutex_lock(&p->mu);
  /* r is linked only until it is unlinked below, before this returns */
  r.older = p->newest;
  if (p->newest) p->newest->newer = &r;
  else p->oldest = &r; // cppcheck-suppress autoVariables
  p->newest = &r;      // cppcheck-suppress autoVariables
  pthread_cond_broadcast(&p->work);
  while (r.next < r.n) run_task(p, &r, r.next++);
  while (r.left > 0) pthread_cond_wait(&p->done, &p->mu);
  if (r.older) r.older->newer = r.newer;
  else p->oldest = r.newer;
  if (r.newer) r.newer->older = r.older;
  else p->newest = r.older;
  pthread_mutex_unlock(&p->mu);
}

int tide_pool_shared(tide_pool_t *p) {
  if (!p || p->nworkers == 0) return 0;
  pthread_mutex_lock(&p->mu);
  int n = p->refs - 1;
  pthread_mutex_unlock(&p->mu);
  return n;
}

int tide_pool_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > TIDE_POOL_MAX ? TIDE_POOL_MAX : (int)n;
}
