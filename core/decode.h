/*
 * decode.h: text records into batches: framing, decoding and the
 * bad-record policy, one path for every text source (the file source,
 * tide.read, the socket source).
 *
 * Framing cuts text into records:
 *   line  a record ends at LF; one CR just before the LF is not part of it
 *         (CRLF text). Used by the json and text formats, and by the socket
 *         server (loop.c) to cut what each connection sends.
 *   csv   a record ends at an LF outside a quoted field (RFC 4180): a quote
 *         opens a quoted field only at the start of a field; inside one, ""
 *         is a quote and LFs are data. A quote elsewhere is a character.
 * A record at the end of the text without its LF is complete only when the
 * text is final (the end of a file, a closed connection); otherwise it is
 * left for the next call.
 *
 * Formats (tide_format_t):
 *   json  one object per line (json.h); blank lines are skipped
 *   csv   one record per row (csv.h); blank lines are skipped
 *   text  the line is the value of the schema's one string column; it
 *         must be UTF-8; blank lines are rows (empty strings)
 *
 * Bad records (malformed, or breaking the schema) follow the policy:
 *   TIDE_BAD_FAIL         stop at the first: tide_decode returns its code,
 *                         err says "line N: reason"
 *   TIDE_BAD_DROP         skip it; count it and keep the line numbers of
 *                         the first TIDE_DECODE_KEEP
 *   TIDE_BAD_DEAD_LETTER  skip it and keep it whole (line, reason, text)
 *                         for the caller to write to a dead-letter topic
 * CSV records are lines by default, as Spark's multiLine = false: a quoted
 * field cannot span lines, and an unterminated quote makes its line bad.
 * With multi_line set, quoted fields hold LFs (tide_frame_csv); a record
 * whose quoted field is still open at the end of final text is then bad
 * from its first line only and decoding goes on at the next line.
 *
 * Dead letters hold any bytes: a record's text is kept byte for byte, and
 * tide_utf8_repair and tide_base64_enc make the two string columns a
 * dead-letter topic stores (readable text, and the exact bytes).
 */
#ifndef TIDE_DECODE_H
#define TIDE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "buf.h"
#include "err.h"

typedef enum tide_format { TIDE_FMT_JSON = 0, TIDE_FMT_CSV = 1, TIDE_FMT_TEXT = 2 } tide_format_t;
typedef enum tide_bad_policy { TIDE_BAD_FAIL = 0, TIDE_BAD_DROP = 1, TIDE_BAD_DEAD_LETTER = 2 } tide_bad_policy_t;

/* ---- framing ------------------------------------------------------------- */

enum { TIDE_FRAME_RECORD = 0, TIDE_FRAME_MORE = 1 };

/* The line at the start of p[0..n). Returns TIDE_FRAME_RECORD with *len the
 * line's bytes (without its LF and one CR before it) and *used the bytes it
 * takes (with the LF), or TIDE_FRAME_MORE when p has no LF and final is 0
 * (also when n is 0). */
int tide_frame_line(const char *p, size_t n, int final, size_t *len, size_t *used);

/* The CSV record at the start of p[0..n), fields separated by sep. Returns
 * TIDE_FRAME_RECORD with *len, *used as tide_frame_line, *lines the LFs
 * inside it (in quoted fields) and *open_quote set when it ends inside a
 * quoted field (only when final: the text ended first); or
 * TIDE_FRAME_MORE. */
int tide_frame_csv(const char *p, size_t n, char sep, int final, size_t *len, size_t *used, size_t *lines,
                   int *open_quote);

/* ---- decoding ------------------------------------------------------------ */

#define TIDE_DECODE_KEEP 10 /* line numbers of dropped records kept per call */

typedef struct tide_decode_opts {
  tide_format_t format;
  tide_bad_policy_t bad;
  char sep;       /* csv: the field separator (0: ',') */
  int json_flags; /* json: TIDE_JSON_IGNORE_UNKNOWN */
  int multi_line; /* csv: quoted fields may span lines (0: a record is a line) */
} tide_decode_opts_t;

/* A record set aside by TIDE_BAD_DEAD_LETTER: its first line, why (valid
 * UTF-8 always), and its text byte for byte, which need not be UTF-8
 * (without the LF that ends it; NUL-terminated). */
typedef struct tide_bad_record {
  int64_t line;
  char *reason;
  char *text;
  size_t len;
} tide_bad_record_t;

/* What one tide_decode call did. The dead records belong to the decoder and
 * stay valid until its next tide_decode or its close. */
typedef struct tide_decode_result {
  size_t used;                            /* bytes of complete records consumed */
  int64_t lines;                          /* LFs consumed */
  uint64_t dropped;                       /* records dropped (TIDE_BAD_DROP) */
  int64_t dropped_lines[TIDE_DECODE_KEEP]; /* the first ones' line numbers */
  uint32_t ndropped_lines;
  const tide_bad_record_t *dead; /* TIDE_BAD_DEAD_LETTER: the records set aside */
  size_t ndead;
} tide_decode_result_t;

typedef struct tide_decoder tide_decoder_t;

/* A decoder of text into batches of schema s (it takes a reference).
 * Returns 0 and sets *out; TIDE_EINVAL with err when the text format gets a
 * schema other than one string column; -ENOMEM. */
int tide_decoder_open(tide_schema_t *s, const tide_decode_opts_t *o, tide_decoder_t **out, tide_err_t *err);
void tide_decoder_close(tide_decoder_t *d); /* NULL is allowed */

/* Decode the records of text[0..len), whose first byte starts line `line`,
 * into b (an owned batch of the decoder's schema), following the policy.
 * Only complete records are consumed (see framing); decoding also stops
 * early when b is full (TIDE_BATCH_MAX_ROWS): r->used < len then, and the
 * caller calls again with the rest (and a fresh batch). Returns 0; under
 * TIDE_BAD_FAIL the bad record's TIDE_EPARSE or TIDE_ESCHEMA, with err
 * "line N: reason" and r covering the records before it (their rows are in
 * b); or -ENOMEM. */
int tide_decode(tide_decoder_t *d, tide_batch_t *b, const char *text, size_t len, int final, int64_t line,
                tide_decode_result_t *r, tide_err_t *err);

/* ---- decoding on a worker pool -------------------------------------------- */

#define TIDE_DECODE_PAR_MIN (64u << 10) /* the least bytes worth a part of their own */

/* Decode text[0..len) like tide_decode does into one new owned batch of s,
 * splitting the work over pool (pool.h) in up to nparts parts: the text is
 * cut after LFs into parts of about len / nparts bytes (at least
 * TIDE_DECODE_PAR_MIN each), every part's LFs are counted on the pool (the
 * line numbers of part i start after the LFs of parts before it), then each
 * part is decoded by a decoder of its own into a batch of its own on the
 * pool, and the leading parts that count are concatenated in order. The
 * result is the one a single tide_decode call over the whole text gives:
 * the same rows in the same order, used, lines, dropped, dropped_lines,
 * dead records, error and line number. A part counts while every part
 * before it consumed its whole text without failure (a part stops early
 * only on a failure, or a full batch: the caller then calls again with
 * the rest, as for tide_decode). The csv format with multi_line is
 * decoded in one part (an LF inside a quoted field cannot be told from a
 * record's end without reading from the start), as is text shorter than
 * two minimum parts;
 * with one part nothing runs on the pool. A NULL pool is allowed.
 *
 * Returns 0, *out the batch (the caller frees it) and r; r->dead, when
 * r->ndead > 0, is one malloc'd block holding the records and their
 * strings, which the caller frees with free(). On failure *out is NULL,
 * nothing is left to free, and the return and err are tide_decode's
 * (TIDE_EPARSE / TIDE_ESCHEMA under TIDE_BAD_FAIL with "line N: reason";
 * TIDE_EINVAL from tide_decoder_open; -ENOMEM). */
struct tide_pool;
int tide_decode_par(struct tide_pool *pool, size_t nparts, tide_schema_t *s, const tide_decode_opts_t *o,
                    const char *text, size_t len, int final, int64_t line, tide_batch_t **out,
                    tide_decode_result_t *r, tide_err_t *err);

/* ---- dead letters ------------------------------------------------------- */

/* Append p[0..n) to out as valid UTF-8: every byte that does not begin a
 * valid sequence (json.h's tide_utf8_check) becomes U+FFFD. Text that is
 * valid UTF-8 is appended unchanged. 0 or -ENOMEM. */
int tide_utf8_repair(const char *p, size_t n, tide_buf_t *out);

/* Append p[0..n) to out in base64 (RFC 4648 section 4, with '=' padding).
 * 0 or -ENOMEM. */
int tide_base64_enc(const char *p, size_t n, tide_buf_t *out);

/* ---- kept lines ---------------------------------------------------------- */

/* Lines kept as text until they are decoded and no longer needed (the
 * socket source keeps what it received until its query commits it). Lines
 * are numbered from 0 in the order they were added; those in [base, count)
 * are held, each followed by an LF, in text.data[head..text.len): decoding a range
 * with tide_decode frames them back into the same lines. */
typedef struct tide_lines {
  tide_buf_t text;
  size_t head;
  uint64_t base, count;
} tide_lines_t;

#define TIDE_LINES_INIT {TIDE_BUF_INIT, 0, 0, 0}

/* Add line p[0..n) (without its LF; it must hold none). 0 or -ENOMEM. */
int tide_lines_add(tide_lines_t *l, const char *p, size_t n);

/* The text of lines [from, to) (with their LFs): *p, *n, valid until the
 * next add, forget or free. 0, or TIDE_EINVAL unless base <= from <= to <=
 * count. */
int tide_lines_text(const tide_lines_t *l, uint64_t from, uint64_t to, const char **p, size_t *n);

/* Forget the lines before `upto` (no-op for those already forgotten;
 * upto is capped at count). Memory is given back as the text drains. */
void tide_lines_forget(tide_lines_t *l, uint64_t upto);

void tide_lines_free(tide_lines_t *l); /* leaves an empty log (TIDE_LINES_INIT) */

#endif
