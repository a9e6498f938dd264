/*
 * The line protocol of tide-kafka-broker and tide-kafka-txclient: one
 * command a line on stdin, split on blanks, one answer a line on stdout
 * (`ok ...` or `error ...`), flushed at once. Both programs end at `quit`,
 * at the end of their input and when their parent dies.
 */
#ifndef TIDE_KAFKA_LINES_H
#define TIDE_KAFKA_LINES_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#define LINES_MAX_ARGS 16

/* One answer line. A reader that has gone away ends the program. */
static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        putchar('\n');
        if (fflush(stdout) != 0)
                exit(0);
}

/* Gone with the process that started us, even if it is killed; a write to
 * a closed stdout is an error, not a signal. Returns -1 when the parent is
 * already gone. */
static int lines_init(void) {
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        signal(SIGPIPE, SIG_IGN);
        return getppid() == 1 ? -1 : 0;
}

/* Serve commands until `quit` or the end of input; `pid` is answered here.
 * `too_many` is the prefix of the answer to a line of too many words. */
static void lines_serve(void (*command)(int argc, char **argv), const char *too_many) {
        char *line = NULL;
        size_t cap = 0;

        for (;;) {
                char *args[LINES_MAX_ARGS], *p, *save = NULL;
                int nargs = 0;
                if (getline(&line, &cap, stdin) < 0)
                        break; /* end of input: whoever drove us is gone */
                for (p = strtok_r(line, " \t\r\n", &save); p && nargs < LINES_MAX_ARGS;
                     p = strtok_r(NULL, " \t\r\n", &save))
                        args[nargs++] = p;
                if (nargs == 0)
                        continue;
                if (p)
                        reply("%s too many words (at most %d)", too_many, LINES_MAX_ARGS);
                else if (!strcmp(args[0], "quit")) {
                        reply("ok bye");
                        break;
                } else if (!strcmp(args[0], "pid") && nargs == 1)
                        reply("ok %ld", (long)getpid());
                else
                        command(nargs, args);
        }
        free(line);
}

#endif
