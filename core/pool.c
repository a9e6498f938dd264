/*
 * pool.c: the worker pool (rules in pool.h).
 *
 * One mutex guards the run: fn, arg, the task count n, the next index to
 * hand out and the count of tasks not yet finished. Workers sleep on
 * `work` until next < n (or stop), take an index, run it unlocked, and
 * the one that finishes the last task wakes the caller on `done`. The
 * caller takes indexes in the same loop as the workers, then waits for the
 * tasks still running elsewhere; the mutex hand-over makes every write of
 * a task visible to the caller when tide_pool_run returns.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "err.h"

struct tide_pool {
  pthread_mutex_t mu;
  pthread_cond_t work, done;
  tide_pool_fn fn;
  void *arg;
  size_t n, next, left; /* tasks of the run, the next to hand out, not yet finished */
  int stop;
  int nthreads, nworkers; /* nworkers: started (nthreads - 1 once open) */
  pid_t pid;              /* the process the workers live in */
  pthread_t *threads;
};

/* Take and run tasks while the run has some left; called and returns with
 * p->mu held. */
static void take_tasks(tide_pool_t *p) {
  while (p->next < p->n) {
    size_t i = p->next++;
    tide_pool_fn fn = p->fn;
    void *arg = p->arg;
    pthread_mutex_unlock(&p->mu);
    fn(arg, i);
    pthread_mutex_lock(&p->mu);
    if (--p->left == 0) pthread_cond_signal(&p->done);
  }
}

static void *worker(void *arg) {
  tide_pool_t *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    if (p->next < p->n) take_tasks(p);
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
  p->nworkers = 0;
}

int tide_pool_open(int n, tide_pool_t **out) {
  *out = NULL;
  if (n < 1 || n > TIDE_POOL_MAX) return TIDE_EINVAL;
  tide_pool_t *p = calloc(1, sizeof *p);
  if (!p) return -ENOMEM;
  p->nthreads = n;
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

void tide_pool_close(tide_pool_t *p) {
  if (!p) return;
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
  pthread_mutex_lock(&p->mu);
  p->fn = fn;
  p->arg = arg;
  p->n = n;
  p->next = 0;
  p->left = n;
  pthread_cond_broadcast(&p->work);
  take_tasks(p);
  while (p->left > 0) pthread_cond_wait(&p->done, &p->mu);
  p->n = p->next = 0;
  p->fn = NULL;
  p->arg = NULL;
  pthread_mutex_unlock(&p->mu);
}

int tide_pool_cpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : n > TIDE_POOL_MAX ? TIDE_POOL_MAX : (int)n;
}
