/*
 * loop.h: tide's event loop, a thin owner of one libuv loop and the handles
 * tide starts on it (timers, file-system watches, signals, TCP line
 * servers, an input reader for stdin, polls of a descriptor that someone
 * else reads: the REPL's terminal, read by readline).
 *
 * Ownership and lifetimes.
 *
 *   tide_loop_t    owned by the caller: tide_loop_open .. tide_loop_free.
 *   tide_handle_t  owned by its loop. The caller gets a pointer that stays
 *                  valid until the handle is closed, by tide_handle_close or by
 *                  tide_loop_close; after that the caller must not touch it.
 *                  The memory itself lives on until libuv's close callback,
 *                  which frees it; nothing of the caller's is touched there.
 *
 * Every open handle is on the loop's list (an intrusive doubly linked list,
 * in creation order), so that closing the loop closes them all. A handle is
 * on the list iff it is open (not closing); `closing` handles are only
 * counted until their close callback ran.
 *
 * Callbacks. Each handle has one event callback and one optional `release`
 * callback. `release(h, data)` runs exactly once, when the handle is closed
 * (whoever closes it), before tide_handle_close / tide_loop_close return; it
 * is where the owner of `data` drops it. After release no callback of the
 * handle runs again.
 *
 * Closing. tide_loop_close closes every handle and, when the loop is not
 * running, runs it until all close callbacks ran and closes the libuv loop.
 * Called from a callback (while tide_loop_run runs), it closes the handles,
 * stops the loop and leaves the rest to tide_loop_run, which finishes the
 * close before it returns. Either way the loop refuses new handles
 * (TIDE_ECLOSED) from then on.
 *
 * Errors: functions returning int return 0 or a negative libuv code (which
 * is -errno on Unix, so tide_strerror covers it), or TIDE_ECLOSED.
 */
#ifndef TIDE_LOOP_H
#define TIDE_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct tide_loop tide_loop_t;
typedef struct tide_handle tide_handle_t;

/* What a watch callback reports (a bit set). */
enum { TIDE_WATCH_RENAME = UV_RENAME, TIDE_WATCH_CHANGE = UV_CHANGE };

/* How tide_loop_run runs: until nothing is active, one iteration that may
 * block, or one iteration that does not block (uv_run_mode). */
typedef enum tide_run_mode {
  TIDE_RUN_DEFAULT = UV_RUN_DEFAULT,
  TIDE_RUN_ONCE = UV_RUN_ONCE,
  TIDE_RUN_NOWAIT = UV_RUN_NOWAIT
} tide_run_mode_t;

typedef enum tide_handle_type {
  TIDE_HANDLE_TIMER = 1,
  TIDE_HANDLE_WATCH = 2,
  TIDE_HANDLE_SIGNAL = 3,
  TIDE_HANDLE_SERVER = 4,
  TIDE_HANDLE_INPUT = 5,
  TIDE_HANDLE_POLL = 6
} tide_handle_type_t;

/* What an input reader reads from (see tide_input_start). */
typedef enum tide_input_kind {
  TIDE_INPUT_TTY = 1,  /* a terminal: uv_tty_t, raw mode available */
  TIDE_INPUT_PIPE = 2, /* a pipe or a Unix socket: uv_pipe_t */
  TIDE_INPUT_TCP = 3,  /* a TCP socket: uv_tcp_t */
  TIDE_INPUT_FILE = 4  /* a regular file or a character device: read() from an idle handle */
} tide_input_kind_t;

typedef void (*tide_timer_cb)(tide_handle_t *h, void *data);
/* filename may be NULL (libuv does not always know it); status < 0 reports
 * a watch error (a libuv code), then events is 0. */
typedef void (*tide_watch_cb)(tide_handle_t *h, void *data, const char *filename, int events, int status);
typedef void (*tide_signal_cb)(tide_handle_t *h, void *data, int signum);
typedef void (*tide_release_cb)(tide_handle_t *h, void *data);
/* fd is readable (status 0), or polling it failed (status < 0, a libuv
 * code; the poll is then stopped). */
typedef void (*tide_poll_cb)(tide_handle_t *h, void *data, int status);

/* One line received by a server: the bytes before its LF, less one CR just
 * before the LF (decode.h's line rule, tide_frame_line). Valid only during
 * the callback that receives it. */
typedef struct tide_line {
  const char *ptr;
  size_t len;
} tide_line_t;

/* A server delivers the complete lines of one read (of one connection) in
 * one call: lines[0..n-1], n >= 1, in the order they arrived. */
typedef void (*tide_lines_cb)(tide_handle_t *h, void *data, const tide_line_t *lines, size_t n);

/* A server reports a failure that it survives: code is TIDE_ETOOBIG (a
 * line longer than max_line; its bytes up to the next LF are skipped and
 * the connection goes on), or a libuv code (a connection's read failed: it
 * is closed and its partial line dropped; or an accept failed, then peer is
 * ""). peer is "ip:port" of the connection. */
typedef void (*tide_server_error_cb)(tide_handle_t *h, void *data, int code, const char *peer);

/* A server's counters since it started. */
typedef struct tide_server_stats {
  uint64_t accepted; /* connections accepted */
  uint64_t open;     /* connections open now */
  uint64_t bytes;    /* bytes read */
  uint64_t lines;    /* lines delivered */
  uint64_t errors;   /* failures reported to the error callback */
} tide_server_stats_t;

/* An input reader's bytes: len > 0 bytes at buf (valid only during the
 * call), status 0; or the end: len 0 and status 0 at end of input, or
 * status < 0 (a libuv code) when a read failed. After the end the reader
 * is stopped (still open: close it). */
typedef void (*tide_input_cb)(tide_handle_t *h, void *data, const char *buf, size_t len, int status);

/* ---- loops ---------------------------------------------------------------- */

/* Create a loop with its own uv_loop_t. Returns 0 and sets *out, or
 * -ENOMEM, or a libuv error from uv_loop_init. */
int tide_loop_open(tide_loop_t **out);

/* Close every handle, wait for their close callbacks and close the libuv
 * loop (deferred to the end of tide_loop_run when called from a callback,
 * see above). Idempotent. Returns 0, or UV_EBUSY when handles that tide did
 * not start are still open on the uv loop (then it may be called again once
 * their owner closed them). */
int tide_loop_close(tide_loop_t *loop);

/* tide_loop_close, then release the loop's memory. Must not be called from a
 * callback of this loop (returns UV_EBUSY and does nothing then). NULL is
 * allowed. Returns what tide_loop_close returned. */
int tide_loop_free(tide_loop_t *loop);

/* Run the loop. Returns 1 when handles remain active (more to do), 0 when
 * not, TIDE_ECLOSED on a closed loop, UV_EBUSY when called from one of the
 * loop's own callbacks (runs do not nest). */
int tide_loop_run(tide_loop_t *loop, tide_run_mode_t mode);

/* Make the current (or next) tide_loop_run return soon. */
void tide_loop_stop(tide_loop_t *loop);

/* 1 when handles are active or closing, 0 otherwise (0 once closed). */
int tide_loop_alive(const tide_loop_t *loop);

/* 1 between tide_loop_close (or a deferred close) and tide_loop_free. */
int tide_loop_closed(const tide_loop_t *loop);

/* 1 while tide_loop_run runs (so, inside callbacks). */
int tide_loop_running(const tide_loop_t *loop);

/* Number of open handles (not counting those closing). */
int tide_loop_handles(const tide_loop_t *loop);

/* The libuv loop, for code that adds its own handles; they must be closed
 * before tide_loop_close (see its UV_EBUSY). NULL once closed. */
uv_loop_t *tide_loop_uv(tide_loop_t *loop);

/* The current loop time in ms (uv_now). */
uint64_t tide_loop_now(const tide_loop_t *loop);

/* ---- handles ---------------------------------------------------------------- */

/* Start a timer: cb runs after timeout_ms, then every repeat_ms when
 * repeat_ms > 0. A timer of 0 ms that never repeats runs in the next loop
 * iteration, after a poll that does not block: started again from its own
 * callback, batch after batch, it still lets every other handle (signals,
 * sockets, terminal input, other timers) have its turn in between.
 * Returns 0 and sets *out, -ENOMEM, or TIDE_ECLOSED. */
int tide_timer_start(tide_loop_t *loop, uint64_t timeout_ms, uint64_t repeat_ms, tide_timer_cb cb,
                     tide_release_cb release, void *data, tide_handle_t **out);

/* Stop a timer without closing it (it can be restarted with
 * tide_timer_again when it repeats). Returns 0 or UV_EINVAL for a handle
 * that is not a timer. */
int tide_timer_stop(tide_handle_t *h);

/* (Re)start a timer that is open with a new timeout and repeat interval.
 * A timer started with 0 ms and no repeat takes only 0 or 1 ms and no
 * repeat (it runs in the next loop iteration again). Returns 0 or UV_EINVAL
 * for a handle that is not a timer (or such a timer given other values). */
int tide_timer_set(tide_handle_t *h, uint64_t timeout_ms, uint64_t repeat_ms);

/* Restart a repeating timer with its repeat interval. Returns 0, UV_EINVAL
 * for a handle that is not a timer, or libuv's error (a timer that never
 * repeats). */
int tide_timer_again(tide_handle_t *h);

/* Watch a file or directory: cb(h, data, filename, events, 0) on every
 * change in it. Returns 0 and sets *out, a libuv error (-ENOENT: no such
 * path, ...), -ENOMEM, or TIDE_ECLOSED; on error nothing is left open and
 * release is not called. */
int tide_watch_start(tide_loop_t *loop, const char *path, tide_watch_cb cb, tide_release_cb release,
                     void *data, tide_handle_t **out);

/* Watch a signal: cb(h, data, signum) each time it arrives. Returns 0 and
 * sets *out, a libuv error (UV_EINVAL for a bad signal number), -ENOMEM, or
 * TIDE_ECLOSED; on error nothing is left open and release is not called. */
int tide_signal_start(tide_loop_t *loop, int signum, tide_signal_cb cb, tide_release_cb release, void *data,
                      tide_handle_t **out);

/* Listen for TCP connections on host:port (port 0: the system picks a free
 * one, see tide_server_port) and deliver the lines every connection sends:
 * on_lines once per read with the lines completed by it; a connection's
 * last line without LF is delivered when the peer closes. A line whose
 * bytes before the LF exceed max_line (> 0) is reported to on_error
 * (which may be NULL) as TIDE_ETOOBIG and skipped. host is a numeric IPv4
 * or IPv6 address or a name resolved once, here, with getaddrinfo (which
 * may block); only that address is bound.
 *
 * Memory: one 64 KiB read buffer per server, shared by its connections
 * (libuv reads one connection at a time and each read is handed on before
 * the next), and per connection only the pending partial line (<= max_line
 * bytes; a buffer that grew past 64 KiB is given back once its line is
 * delivered).
 *
 * Closing the server (tide_handle_close or tide_loop_close) closes every
 * connection at once; their partial lines are dropped. Callbacks may close
 * the server or the loop.
 *
 * Returns 0 and sets *out, TIDE_ENOTFOUND (host does not resolve), a libuv
 * code (UV_EADDRINUSE, UV_EADDRNOTAVAIL, UV_EACCES, ...), -ENOMEM, or
 * TIDE_ECLOSED; on error nothing is left open and release is not called. */
int tide_server_start(tide_loop_t *loop, const char *host, int port, size_t max_line, tide_lines_cb on_lines,
                      tide_server_error_cb on_error, tide_release_cb release, void *data, tide_handle_t **out);

/* The port a server is bound to (the one picked when it was asked for 0),
 * or -1 for a handle that is not a server. */
int tide_server_port(const tide_handle_t *h);

/* A server's counters; zeroes for a handle that is not a server. */
void tide_server_stats(const tide_handle_t *h, tide_server_stats_t *out);

/* Read a file descriptor (the process's stdin, 0, in practice) on the loop:
 * cb gets the bytes as they come, in chunks of any size (a chunk may end
 * inside a UTF-8 sequence or a terminal escape sequence), then the end.
 *
 * What is read decides how (tide_input_kind): a terminal through uv_tty_t
 * (libuv reopens the terminal for reading, so that fd 0 and the stdout
 * that shares its file description stay blocking); a pipe or Unix socket
 * through uv_pipe_t and a TCP socket through uv_tcp_t (on a duplicate of
 * fd, which shares its O_NONBLOCK); a regular file or a character device (/dev/null) by read()s of
 * 64 KiB from an idle handle, one per loop iteration (such reads do not
 * block for long). The reader does not own fd: closing it leaves fd open.
 *
 * With raw != 0 a terminal is put in raw mode (no echo, no line buffering,
 * no signals from Ctrl-C/Ctrl-Z: they arrive as bytes; output still maps LF
 * to CR LF). The terminal's mode from before is restored when the reader
 * closes (whoever closes it), by tide_input_set_raw(h, 0), and at process
 * exit (an atexit handler registered with the first raw reader: a program
 * that calls exit() with the reader open still leaves its terminal usable).
 * raw is ignored for other kinds.
 *
 * Returns 0 and sets *out, UV_EINVAL (fd is not something readable: a
 * UDP socket, an unknown handle type, a closed fd), a libuv error, -ENOMEM,
 * or TIDE_ECLOSED; on error nothing is left open, the terminal mode is
 * unchanged and release is not called. */
int tide_input_start(tide_loop_t *loop, int fd, int raw, tide_input_cb cb, tide_release_cb release, void *data,
                     tide_handle_t **out);

/* The kind of an input reader, or 0 for a handle that is not one. */
tide_input_kind_t tide_input_kind(const tide_handle_t *h);

/* Switch a terminal reader between raw (raw != 0) and the terminal's mode
 * from before the reader started (raw == 0; the mode a program should run
 * user code in). Returns 0, UV_EINVAL for a handle that is not a terminal
 * reader, or libuv's error (the terminal's tcsetattr failed). */
int tide_input_set_raw(tide_handle_t *h, int raw);

/* Stop delivering bytes (they wait in the kernel) / start again. Neither
 * is an error after the end (then they do nothing). Returns 0, UV_EINVAL
 * for a handle that is not an input reader, or libuv's error. */
int tide_input_pause(tide_handle_t *h);
int tide_input_resume(tide_handle_t *h);

/* The terminal's size in columns and rows. Returns 0, UV_EINVAL for a
 * handle that is not a terminal reader, or libuv's error. */
int tide_input_winsize(tide_handle_t *h, int *cols, int *rows);

/* Watch a file descriptor for readability: cb runs in each loop iteration
 * in which fd has bytes to read (or its end, or an error), until stopped;
 * whoever reads them is the caller (a line editor that does its own
 * reads). libuv puts fd in non-blocking mode, which is shared by every
 * descriptor of the same open file: give it a descriptor of its own (a
 * terminal opened again by name, not a dup of stdin, whose file stdout
 * shares). The poll does not own fd. Returns 0 and sets *out, UV_EEXIST (fd
 * is already watched on this loop), a libuv error (UV_ENOTSOCK... for an
 * fd epoll refuses, such as a regular file), -ENOMEM, or TIDE_ECLOSED; on
 * error nothing is left open and release is not called. */
int tide_poll_start(tide_loop_t *loop, int fd, tide_poll_cb cb, tide_release_cb release, void *data,
                    tide_handle_t **out);

/* Stop watching without closing / watch again. Return 0, UV_EINVAL for a
 * handle that is not a poll, or libuv's error. */
int tide_poll_stop(tide_handle_t *h);
int tide_poll_again(tide_handle_t *h);

/* Close a handle: it stops, release runs, and its memory is freed in the
 * close callback during a later loop iteration (or tide_loop_close). h must
 * be a handle that is open; after the call the caller must not use it. */
void tide_handle_close(tide_handle_t *h);

/* The handle's type, and 1 when it is active (a started timer, watch,
 * signal, server, input reader or poll; a stopped timer, a paused reader, a
 * reader at its end are not active). */
tide_handle_type_t tide_handle_type(const tide_handle_t *h);
int tide_handle_active(const tide_handle_t *h);

#endif
