/*
 * test_pool.c: the worker pool (pool.h) and decoding on it (decode.h,
 * tide_decode_par): every task runs exactly once and its writes are seen
 * by the caller; one thread runs tasks in order on the caller; and a
 * text decoded in 1 to 8 parts on pools of 1 to 4 threads gives what one
 * tide_decode call over the whole text gives (rows, used, lines, dropped,
 * dead records, the error and its line), for json and text, with bad
 * records under each policy, CRLF, a cut last line and a csv text (one
 * part). Two threads running on one pool at once each get every task of
 * their own run exactly once; a reference taken with tide_pool_ref keeps
 * the pool after its opener closed it, and tide_pool_shared counts it. Run under ASan and TSan (make tsan-pool); every pool and batch
 * is closed at the end.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "decode.h"
#include "json.h"
#include "jsonl.h"
#include "pool.h"
#include "t.h"

/* ---- the pool ------------------------------------------------------------ */

typedef struct slots {
  int hits[1000];
  size_t order[1000];
  size_t n;
} slots_t;

static void hit(void *arg, size_t i) {
  slots_t *s = arg;
  s->hits[i]++;
}

static void record(void *arg, size_t i) {
  slots_t *s = arg;
  s->order[s->n++] = i; /* one thread only: the caller */
}

static void test_pool_runs_each_task_once(void) {
  for (int n = 1; n <= 4; n++) {
    tide_pool_t *p = NULL;
    T_EQ_INT(tide_pool_open(n, &p), 0);
    T_EQ_INT(tide_pool_threads(p), n);
    for (int round = 0; round < 50; round++) {
      static slots_t s;
      memset(&s, 0, sizeof s);
      size_t tasks = (size_t)(round * 7 % 1000) + 1;
      tide_pool_run(p, tasks, hit, &s);
      int bad = 0;
      for (size_t i = 0; i < 1000; i++) bad += s.hits[i] != (i < tasks);
      T_EQ_INT(bad, 0);
    }
    tide_pool_close(p);
  }
}

/* A second caller: rounds of runs on the same pool as the main thread.
 * With last set it drops its reference after the main thread dropped the
 * opener's (so it stops the workers and frees the pool); else before. */
typedef struct caller {
  tide_pool_t *p;
  pthread_barrier_t *bar;
  int last, bad;
} caller_t;

static void *other_caller(void *arg) {
  caller_t *c = arg;
  for (int round = 0; round < 200; round++) {
    static slots_t s; /* this thread's only */
    memset(&s, 0, sizeof s);
    size_t tasks = (size_t)(round * 13 % 300) + 2;
    tide_pool_run(c->p, tasks, hit, &s);
    for (size_t i = 0; i < 1000; i++) c->bad += s.hits[i] != (i < tasks);
  }
  if (c->last) pthread_barrier_wait(c->bar);
  tide_pool_close(c->p); /* the reference taken for this thread */
  if (!c->last) pthread_barrier_wait(c->bar);
  return NULL;
}

static void test_pool_two_callers(void) {
  for (int last = 0; last <= 1; last++) {
    tide_pool_t *p = NULL;
    T_EQ_INT(tide_pool_open(2 + last, &p), 0);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    caller_t c = {p, &bar, last, 0};
    T_EQ_INT(tide_pool_shared(p), 0);
    tide_pool_ref(p);
    T_EQ_INT(tide_pool_shared(p), 1);
    pthread_t t;
    T_EQ_INT(pthread_create(&t, NULL, other_caller, &c), 0);
    int bad = 0;
    for (int round = 0; round < 200; round++) {
      static slots_t s;
      memset(&s, 0, sizeof s);
      size_t tasks = (size_t)(round * 7 % 300) + 2;
      tide_pool_run(p, tasks, hit, &s);
      for (size_t i = 0; i < 1000; i++) bad += s.hits[i] != (i < tasks);
    }
    if (last) { /* the opener's reference goes first: the other's keeps the pool */
      tide_pool_close(p);
      pthread_barrier_wait(&bar);
    } else {
      pthread_barrier_wait(&bar);
      T_EQ_INT(tide_pool_shared(p), 0); /* the other caller's reference is gone */
      tide_pool_close(p);
    }
    pthread_join(t, NULL);
    pthread_barrier_destroy(&bar);
    T_EQ_INT(bad, 0);
    T_EQ_INT(c.bad, 0);
  }
}

static void test_pool_one_thread_in_order(void) {
  tide_pool_t *p = NULL;
  T_EQ_INT(tide_pool_open(1, &p), 0);
  static slots_t s;
  memset(&s, 0, sizeof s);
  tide_pool_run(p, 10, record, &s);
  T_EQ_INT(s.n, 10);
  for (size_t i = 0; i < 10; i++) T_EQ_INT(s.order[i], i);
  tide_pool_close(p);
  memset(&s, 0, sizeof s); /* a NULL pool runs on the caller too */
  tide_pool_run(NULL, 3, record, &s);
  T_EQ_INT(s.n, 3);
  T_EQ_INT(s.order[2], 2);
}

static void test_pool_bad_size(void) {
  tide_pool_t *p = (tide_pool_t *)&p;
  T_EQ_INT(tide_pool_open(0, &p), TIDE_EINVAL);
  T_CHECK(p == NULL);
  T_EQ_INT(tide_pool_open(TIDE_POOL_MAX + 1, &p), TIDE_EINVAL);
  tide_pool_close(NULL);
  T_CHECK(tide_pool_cpus() >= 1);
}

/* After fork the child has no workers: its runs happen on its one thread. */
static void test_pool_after_fork(void) {
  tide_pool_t *p = NULL;
  T_EQ_INT(tide_pool_open(3, &p), 0);
  pid_t pid = fork();
  if (pid == 0) {
    static slots_t s;
    tide_pool_run(p, 10, record, &s); /* record is single-threaded: it would race if workers ran */
    _exit(s.n == 10 && s.order[9] == 9 ? 0 : 1);
  }
  int status = 0;
  T_EQ_INT(waitpid(pid, &status, 0), pid);
  T_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  tide_pool_close(p);
}

/* ---- decoding on the pool ------------------------------------------------ */

static tide_schema_t *schema(const char *ddl) {
  tide_schema_t *s = NULL;
  tide_err_t err = {0, ""};
  if (tide_schema_parse_ddl(ddl, strlen(ddl), &s, &err)) fprintf(stderr, "%s\n", err.msg);
  return s;
}

/* The rows of b as JSON lines (malloc'd; the caller frees). */
static char *rows_text(const tide_batch_t *b) {
  tide_buf_t o = TIDE_BUF_INIT;
  for (uint32_t i = 0; b && i < b->nrows; i++) {
    tide_json_enc_row(b, i, &o, 0);
    tide_buf_putc(&o, '\n');
  }
  tide_buf_putc(&o, 0);
  return (char *)o.data;
}

/* What tide_decode gives over the whole text, in one call. */
typedef struct want {
  int rc;
  char err[sizeof ((tide_err_t *)0)->msg];
  char *rows;
  tide_decode_result_t r;
  tide_bad_record_t dead[64];
  char dead_text[64][64];
} want_t;

static void reference(tide_schema_t *s, const tide_decode_opts_t *o, const char *text, size_t len, int final,
                      want_t *w) {
  tide_decoder_t *d = NULL;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_decoder_open(s, o, &d, &err), 0);
  tide_batch_t *b = tide_batch_new(s, 0);
  w->rc = tide_decode(d, b, text, len, final, 3, &w->r, &err);
  snprintf(w->err, sizeof w->err, "%s", w->rc ? err.msg : "");
  w->rows = rows_text(b);
  for (size_t i = 0; i < w->r.ndead && i < 64; i++) {
    w->dead[i] = w->r.dead[i];
    snprintf(w->dead_text[i], 64, "%s|%s", w->r.dead[i].reason, w->r.dead[i].text);
  }
  tide_batch_free(b);
  tide_decoder_close(d);
}

/* Decode text in 1..8 parts on pools of 1..4 threads and compare. */
static void same_as_one_call_opts(tide_schema_t *s, tide_format_t fmt, tide_bad_policy_t bad, int json_flags,
                                  int multi_line, const char *text, size_t len, int final) {
  tide_decode_opts_t o = {fmt, bad, ',', json_flags, multi_line};
  want_t w;
  memset(&w, 0, sizeof w);
  reference(s, &o, text, len, final, &w);
  for (int threads = 1; threads <= 4; threads++) {
    tide_pool_t *p = NULL;
    T_EQ_INT(tide_pool_open(threads, &p), 0);
    for (size_t parts = 1; parts <= 8; parts++) {
      tide_batch_t *b = NULL;
      tide_decode_result_t r;
      tide_err_t err = {0, ""};
      int rc = tide_decode_par(p, parts, s, &o, text, len, final, 3, &b, &r, &err);
      T_EQ_INT(rc, w.rc);
      if (rc) {
        T_EQ_STR(err.msg, w.err);
        T_CHECK(b == NULL);
        continue;
      }
      char *got = rows_text(b);
      T_EQ_STR(got, w.rows);
      free(got);
      T_EQ_INT(r.used, w.r.used);
      T_EQ_INT(r.lines, w.r.lines);
      T_EQ_INT(r.dropped, w.r.dropped);
      T_EQ_INT(r.ndropped_lines, w.r.ndropped_lines);
      for (uint32_t i = 0; i < r.ndropped_lines; i++) T_EQ_INT(r.dropped_lines[i], w.r.dropped_lines[i]);
      T_EQ_INT(r.ndead, w.r.ndead);
      for (size_t i = 0; i < r.ndead && i < 64; i++) {
        char one[64];
        snprintf(one, sizeof one, "%s|%s", r.dead[i].reason, r.dead[i].text);
        T_EQ_INT(r.dead[i].line, w.dead[i].line);
        T_EQ_STR(one, w.dead_text[i]);
      }
      free((void *)r.dead);
      tide_batch_free(b);
    }
    tide_pool_close(p);
  }
  free(w.rows);
}

static void same_as_one_call(tide_schema_t *s, tide_format_t fmt, tide_bad_policy_t bad, const char *text,
                             size_t len, int final) {
  same_as_one_call_opts(s, fmt, bad, 0, 0, text, len, final);
}

/* About 700 KB of JSON lines (enough for 8 parts of TIDE_DECODE_PAR_MIN),
 * a bad record every `bad_every` lines (0: none), CRLF endings when crlf. */
static char *events(size_t lines, size_t bad_every, int crlf, size_t *len) {
  tide_buf_t o = TIDE_BUF_INIT;
  char line[128];
  for (size_t i = 0; i < lines; i++) {
    int n;
    if (bad_every && i % bad_every == bad_every - 1)
      n = snprintf(line, sizeof line, "{\"ts\": %zu, \"device\": \"d%zu\", \"signal\": \"x\"}%s", i, i % 97,
                   crlf ? "\r\n" : "\n");
    else if (i % 50 == 7)
      n = snprintf(line, sizeof line, "%s", crlf ? "\r\n" : "\n"); /* a blank line */
    else
      n = snprintf(line, sizeof line, "{\"ts\": %zu, \"device\": \"d%zu\", \"signal\": %zu}%s", i * 1000, i % 97,
                   i % 31, crlf ? "\r\n" : "\n");
    tide_buf_append(&o, line, (size_t)n);
  }
  *len = o.len;
  tide_buf_putc(&o, 0);
  return (char *)o.data;
}

static void test_decode_par_json(void) {
  tide_schema_t *s = schema("ts timestamp, device string, signal int");
  size_t len;
  char *t = events(14000, 0, 0, &len);
  same_as_one_call(s, TIDE_FMT_JSON, TIDE_BAD_FAIL, t, len, 1);
  same_as_one_call(s, TIDE_FMT_JSON, TIDE_BAD_FAIL, t, len - 5, 0); /* a cut last line, not final */
  same_as_one_call(s, TIDE_FMT_JSON, TIDE_BAD_FAIL, t, len - 5, 1); /* the same, final: a bad last record */
  same_as_one_call(s, TIDE_FMT_JSON, TIDE_BAD_FAIL, t, 0, 1);        /* nothing */
  free(t);
  t = events(14000, 3001, 1, &len); /* CRLF, bad records in several parts */
  same_as_one_call(s, TIDE_FMT_JSON, TIDE_BAD_FAIL, t, len, 1);
  same_as_one_call(s, TIDE_FMT_JSON, TIDE_BAD_DROP, t, len, 1);
  same_as_one_call(s, TIDE_FMT_JSON, TIDE_BAD_DEAD_LETTER, t, len, 1);
  free(t);
  t = events(14000, 41, 0, &len); /* more bad records than TIDE_DECODE_KEEP */
  same_as_one_call(s, TIDE_FMT_JSON, TIDE_BAD_DROP, t, len, 1);
  free(t);
  tide_schema_unref(s);
}

/* NULLs at row numbers that are not multiples of 8 in every part: the
 * joined batch's validity bitmaps are set bit by bit across the parts'
 * boundaries. */
static void test_decode_par_nulls(void) {
  tide_schema_t *s = schema("ts timestamp, device string?, signal int?");
  tide_buf_t o = TIDE_BUF_INIT;
  for (int i = 0; i < 20000; i++) {
    char line[128];
    int n = i % 5 == 3 ? snprintf(line, sizeof line, "{\"ts\": %d, \"pad\": \"%040d\"}\n", i, i)
                       : snprintf(line, sizeof line, "{\"ts\": %d, \"device\": \"d%d\", \"signal\": %d}\n", i,
                                  i % 13, i);
    tide_buf_append(&o, line, (size_t)n);
  }
  same_as_one_call_opts(s, TIDE_FMT_JSON, TIDE_BAD_FAIL, TIDE_JSON_IGNORE_UNKNOWN, 0, (const char *)o.data, o.len, 1);
  tide_buf_free(&o);
  tide_schema_unref(s);
}

static void test_decode_par_text_and_csv(void) {
  tide_schema_t *s = schema("line string");
  size_t len;
  char *t = events(14000, 0, 1, &len); /* the text format keeps blank lines as rows */
  same_as_one_call(s, TIDE_FMT_TEXT, TIDE_BAD_FAIL, t, len, 1);
  t[len / 2] = (char)0xff; /* invalid UTF-8 in the middle */
  same_as_one_call(s, TIDE_FMT_TEXT, TIDE_BAD_DEAD_LETTER, t, len, 1);
  same_as_one_call(s, TIDE_FMT_TEXT, TIDE_BAD_FAIL, t, len, 1);
  free(t);
  tide_schema_unref(s);
  /* csv, a record a line: in parts, the quoted LFs making bad records;
   * multi_line csv (quoted LFs are data): in one part */
  s = schema("a string, b int");
  tide_buf_t o = TIDE_BUF_INIT;
  for (int i = 0; i < 20000; i++) {
    char line[64];
    int n = snprintf(line, sizeof line, i % 9 == 0 ? "\"x\n%d\",%d\n" : "y%d,%d\n", i, i);
    tide_buf_append(&o, line, (size_t)n);
  }
  same_as_one_call(s, TIDE_FMT_CSV, TIDE_BAD_DROP, (const char *)o.data, o.len, 1);
  same_as_one_call_opts(s, TIDE_FMT_CSV, TIDE_BAD_FAIL, 0, 1, (const char *)o.data, o.len, 1);
  tide_buf_free(&o);
  tide_schema_unref(s);
}

/* The text format with a schema other than one string column: TIDE_EINVAL
 * from the decoders, nothing left open. */
static void test_decode_par_bad_schema(void) {
  tide_schema_t *s = schema("a int");
  tide_decode_opts_t o = {TIDE_FMT_TEXT, TIDE_BAD_FAIL, ',', 0, 0};
  tide_pool_t *p = NULL;
  T_EQ_INT(tide_pool_open(2, &p), 0);
  tide_batch_t *b = NULL;
  tide_decode_result_t r;
  tide_err_t err = {0, ""};
  T_EQ_INT(tide_decode_par(p, 4, s, &o, "1\n", 2, 1, 1, &b, &r, &err), TIDE_EINVAL);
  T_EQ_STR(err.msg, "the text format needs a schema of one string column");
  T_CHECK(b == NULL);
  tide_pool_close(p);
  tide_schema_unref(s);
}

int main(void) {
  T_RUN(test_pool_runs_each_task_once);
  T_RUN(test_pool_two_callers);
  T_RUN(test_pool_one_thread_in_order);
  T_RUN(test_pool_bad_size);
  T_RUN(test_pool_after_fork);
  T_RUN(test_decode_par_json);
  T_RUN(test_decode_par_nulls);
  T_RUN(test_decode_par_text_and_csv);
  T_RUN(test_decode_par_bad_schema);
  T_DONE();
}
