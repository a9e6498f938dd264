/*
 * t.h: the C tests' harness. Each test file is one program: it calls
 * T_RUN(fn) for each test function and ends with T_DONE(), which prints a
 * summary and returns non-zero when any check failed. A check that fails
 * prints file:line and the expression, and the test goes on.
 */
#ifndef TIDE_T_H
#define TIDE_T_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int t_fails, t_checks, t_tests;

#define T_CHECK(cond)                                                         \
  do {                                                                        \
    t_checks++;                                                               \
    if (!(cond)) {                                                            \
      t_fails++;                                                              \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                         \
  } while (0)

#define T_EQ_INT(a, b)                                                              \
  do {                                                                              \
    long long t_a = (long long)(a), t_b = (long long)(b);                           \
    t_checks++;                                                                     \
    if (t_a != t_b) {                                                               \
      t_fails++;                                                                    \
      fprintf(stderr, "%s:%d: %s == %s: %lld != %lld\n", __FILE__, __LINE__, #a, #b, \
              t_a, t_b);                                                            \
    }                                                                               \
  } while (0)

#define T_EQ_STR(a, b)                                                              \
  do {                                                                              \
    const char *t_a = (a), *t_b = (b);                                              \
    t_checks++;                                                                     \
    if (!t_a || !t_b || strcmp(t_a, t_b)) {                                         \
      t_fails++;                                                                    \
      fprintf(stderr, "%s:%d: %s == %s: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, \
              #b, t_a ? t_a : "(null)", t_b ? t_b : "(null)");                      \
    }                                                                               \
  } while (0)

#define T_RUN(fn)      \
  do {                 \
    t_tests++;         \
    fn();              \
  } while (0)

#define T_DONE()                                                                       \
  do {                                                                                 \
    printf("%s: %d tests, %d checks, %d failed\n", __FILE__, t_tests, t_checks, t_fails); \
    return t_fails ? 1 : 0;                                                            \
  } while (0)

/* How many file descriptors the process has open (not counting the one
 * this count opens): tests compare it before and after, to prove that
 * nothing is left open. */
static inline int t_count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d))) n += e->d_name[0] != '.';
  closedir(d);
  return n - 1;
}

#endif
