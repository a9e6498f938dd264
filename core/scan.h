/*
 * scan.h: a static query's aggregation over whole files in one stage
 * (issue 21): read, decode, filter, window assignment and hash
 * aggregation of a range of the input, all on one worker, every worker
 * taking whole ranges until none is left.
 *
 * The input (files, in order) is cut into ranges of about `range_bytes`
 * bytes, independently of each other (as Hadoop's input splits): range j
 * of a file runs from the first line start at or after j * R to the first
 * line start at or after (j + 1) * R, so no worker waits for another's
 * scan for line ends (a range inside a line longer than R is empty). Each
 * worker takes the next range from a shared counter, reads it with pread,
 * decodes it on its own thread (tide_decode_par with one part) and pushes
 * its rows into a worker table of its own (tide_agg_scan_push); the end
 * folds the worker tables into the static aggregation's parts on every
 * thread (tide_agg_scan_end, agg.c "One-stage scan"). The result rows and
 * their order are one thread's.
 *
 * What it takes: a static aggregation (tide_agg_set_static) with nothing
 * pushed yet, files of one-line records (json, text, csv without
 * multi_line and without a header), bad records failing or dropped (not
 * dead letters). Anything it does not take, and any failure of a range
 * (an open, read or decode error, a short file, a record left unfinished,
 * an error of the push), returns 1 with the aggregation as before: the
 * caller then reads the input the ordinary way, which reports the first
 * error in file order with its line number exactly as one thread does (an
 * error is thus found twice; the scan drops everything it did).
 */
#ifndef TIDE_SCAN_H
#define TIDE_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "agg.h"
#include "decode.h"
#include "err.h"

struct tide_pool;

#define TIDE_SCAN_RANGE (1u << 20) /* bytes of a range, by default */

/* Aggregate the files paths[0..n) (read in that order, decoded into batches
 * of schema s with o) into a, with the push parameters of tmpl (its
 * batch, pool, late, time and created fields are ignored), over pool (its
 * threads are the workers; NULL: one), in ranges of range_bytes (0: the
 * default). Returns 0 (a holds the result); 1 (nothing done: see above);
 * or -ENOMEM / TIDE_ETOOBIG of the final fold (a poisoned; err says). */
int tide_scan_files(tide_agg_t *a, const char *const *paths, size_t n, tide_schema_t *s,
                    const tide_decode_opts_t *o, const tide_agg_input_t *tmpl, int64_t range_bytes,
                    struct tide_pool *pool, tide_err_t *err);

#endif
