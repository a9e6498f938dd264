/*
 * pool.h: a fixed pool of worker threads that runs one list of tasks at a
 * time, the calling thread taking its share.
 *
 * The engine is single-threaded around its Lua state: a pool never calls
 * Lua. A caller (the loop thread) hands tide_pool_run a function and a task
 * count; the function runs once per task index, on the workers and on the
 * caller, and tide_pool_run returns when every task has returned. So the C
 * work of one micro-batch (decoding a chunk per task, ...) spreads over the
 * cores while everything around it stays on the loop thread, as before.
 *
 * Invariants. A pool of n threads has n - 1 workers (the caller is the
 * n-th); with n = 1 it has none and tide_pool_run runs every task on the
 * caller, in index order. Tasks of one run must not touch shared mutable
 * state (each writes only its own slot of the caller's arrays); what the
 * caller reads after tide_pool_run returns was written before the return
 * (the pool's mutex orders it). Runs of different threads may be under
 * way at once: the workers take the oldest run's tasks first, each caller
 * only its own. tide_pool_run is not reentrant and must not be called
 * from a task. After fork() the child has
 * no workers: a pool used in a process other than the one that opened it
 * runs every task on the caller.
 */
#ifndef TIDE_POOL_H
#define TIDE_POOL_H

#include <stddef.h>

#define TIDE_POOL_MAX 256 /* the most threads a pool may have */

typedef struct tide_pool tide_pool_t;

/* A task: called as fn(arg, i) once for each i in [0, n). */
typedef void (*tide_pool_fn)(void *arg, size_t i);

/* Open a pool of n threads (1 <= n <= TIDE_POOL_MAX; the caller counts as
 * one, so n - 1 workers start). Returns 0 and sets *out; TIDE_EINVAL for n
 * out of range; -ENOMEM; or the -errno of pthread_create (the workers
 * started so far are stopped). */
int tide_pool_open(int n, tide_pool_t **out);

/* Take one more reference to p (NULL is allowed), for a thread that runs
 * on p while its opener may close it: each reference is dropped with
 * tide_pool_close. */
void tide_pool_ref(tide_pool_t *p);

/* Drop a reference (the opener's, or one of tide_pool_ref); the last one
 * stops and joins the workers and frees the pool (NULL is allowed). The
 * last must not be dropped while a run is under way, nor by a task. */
void tide_pool_close(tide_pool_t *p);

/* The pool's thread count (the n it was opened with). */
int tide_pool_threads(const tide_pool_t *p);

/* Run fn(arg, i) for every i in [0, n) and return when all have returned.
 * Task indexes are handed out in increasing order, each to the first free
 * thread; with one thread (or after fork) they run on the caller in order.
 * A NULL pool runs them on the caller too. */
void tide_pool_run(tide_pool_t *p, size_t n, tide_pool_fn fn, void *arg);

/* The references to p taken with tide_pool_ref and not dropped yet: the
 * threads besides its opener's that may run on its workers now (the file
 * source's read ahead decoding). A caller that could split its work or do
 * it alone may do it alone meanwhile: no partial results to merge, and
 * the workers busy all the same. 0 for NULL or a pool with no workers. */
int tide_pool_shared(tide_pool_t *p);

/* The number of online CPUs (at least 1): the default size of a pool. */
int tide_pool_cpus(void);

#endif
