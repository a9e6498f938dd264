/*
 * json.h: JSON lines <-> columnar batches, and timestamps as text.
 *
 * The decoder is a hand-written single-pass scanner for the flat objects of
 * JSON lines: it writes each value straight into the batch's column vectors
 * (no tree, no allocation per row), which is what makes ingest run near the
 * speed of a bare parser. Values of json columns (objects, arrays, anything)
 * are validated and stored as compact JSON text. cJSON is used only where a
 * tree is wanted (tests, the reference encoder of Lua values is in l_batch.c).
 *
 * Decoding rules (the schema decides):
 *   int        JSON integer within int64; an integral number such as 3.0 is
 *              accepted; 3.5, strings and booleans are refused
 *   double     any JSON number
 *   bool       true / false
 *   string     a JSON string (escapes decoded to UTF-8)
 *   timestamp  an integer (ms since the epoch) or an ISO-8601 string
 *              (see tide_ts_parse)
 *   json       any JSON value, stored compact
 *   null: NULL when the field is nullable, else an error
 *   a missing key: the field's DEFAULT when it has one, else NULL when the
 *              field is nullable, else an error
 *   unknown keys: an error, unless TIDE_JSON_IGNORE_UNKNOWN
 *   duplicate keys: an error
 * Schemaless mode (TIDE_JSON_WHOLE, for a schema of one json column): the
 * whole line, validated and compacted, is the row's single value.
 */
#ifndef TIDE_JSON_H
#define TIDE_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "buf.h"
#include "err.h"

enum {
  TIDE_JSON_IGNORE_UNKNOWN = 1, /* decoder: skip keys not in the schema */
  TIDE_JSON_WHOLE = 2,          /* decoder: the line is the one json column */
  TIDE_JSON_ISO8601 = 4         /* encoder: timestamps as ISO-8601 strings, not ms */
};

typedef struct tide_json_dec tide_json_dec_t;

/* A decoder for schema s (it takes a reference). NULL on out of memory. */
tide_json_dec_t *tide_json_dec_new(tide_schema_t *s, int flags);
void tide_json_dec_free(tide_json_dec_t *d); /* NULL is allowed */

/* Decode one JSON line (without its newline; surrounding whitespace is
 * allowed) and append it as one row of b, an owned batch of the decoder's
 * schema. On failure no row is added and err says what is wrong, naming the
 * field, the expected type and the offending value (truncated), e.g.
 *   field 'signal': expected int, got "abc"
 *   invalid JSON at column 17: expected ',' or '}'
 * Returns 0, TIDE_EPARSE (not JSON), TIDE_ESCHEMA (JSON that breaks the
 * schema), -ENOMEM or TIDE_ETOOBIG (batch full). */
int tide_json_dec_line(tide_json_dec_t *d, tide_batch_t *b, const char *line, size_t len,
                       tide_err_t *err);

/* Append row `row` of b as one compact JSON object (no newline) to out.
 * NULL fields are written as null. json columns are written as their text. */
int tide_json_enc_row(const tide_batch_t *b, uint32_t row, tide_buf_t *out, int flags);

/* Validate one JSON value in p[0..len) (surrounding whitespace allowed) and
 * append its compact form to out. TIDE_EPARSE with the column on failure. */
int tide_json_compact(const char *p, size_t len, tide_buf_t *out, tide_err_t *err);

/* Append s as a JSON string literal (quotes and escapes) to out. */
int tide_json_quote(tide_buf_t *out, const char *s, size_t len);

/* Timestamps.
 * tide_ts_parse accepts ISO-8601 / RFC 3339 and the space-separated form:
 *   2026-11-21T12:00:05Z   2026-11-21 12:00:05.250   2026-11-21T12:00:05+01:00
 *   2026-11-21 (midnight UTC)
 * Without a zone the time is UTC. Fractions beyond ms are truncated.
 * Returns 0 or TIDE_EPARSE. */
int tide_ts_parse(const char *s, size_t len, int64_t *ms);
/* Format ms as "2026-11-21T12:00:05.250Z" (the .mmm part only when non-zero).
 * out must hold 40 bytes; returns the length written (NUL-terminated). */
int tide_ts_format(int64_t ms, char *out);

/* ------------------------------------------------------------------------
 * Additions used by schema.c and the Lua bindings.
 */

/* Deepest nesting of arrays and objects the scanners accept (they are
 * iterative; the limit bounds their fixed stack). */
#define TIDE_JSON_MAX_DEPTH 512

/* Append v in the shortest form that reads back as the same double ("0.1",
 * "1e+21"); integral values keep a ".0" ("3.0"); NaN and infinities are
 * written as null. 0 or -ENOMEM. */
int tide_json_number(tide_buf_t *out, double v);

/* Scan one JSON value at the start of p[0..len) (leading whitespace skipped),
 * appending its compact form to out (out may be NULL to only validate).
 * *used is set to the offset just after the value; the rest of p is not
 * looked at. TIDE_EPARSE with "invalid JSON at column N: ..." (N relative to
 * p, 1-based), or -ENOMEM. */
int tide_json_scan(const char *p, size_t len, size_t *used, tide_buf_t *out, tide_err_t *err);

/* Decode the JSON string literal p[0..len) (quotes included) and append its
 * UTF-8 bytes to out. TIDE_EPARSE when p is not exactly one valid string. */
int tide_json_unquote(const char *p, size_t len, tide_buf_t *out, tide_err_t *err);

/* Set column col of the open row of owned batch b from the JSON value text
 * p[0..len), converting by the column's type as the decoder does (the
 * schema's defaults go through here). Errors as tide_json_dec_line, with
 * messages naming the field. */
int tide_json_set_value(tide_batch_t *b, uint32_t col, const char *p, size_t len, tide_err_t *err);

/* Offset of the first byte of p[0..n) that does not start a well-formed
 * UTF-8 sequence (overlong forms, surrogates and code points above U+10FFFF
 * are refused), or n when all of it is valid. */
size_t tide_utf8_check(const char *p, size_t n);

#endif
