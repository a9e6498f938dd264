/*
 * jsonl.h: JSON lines <-> columnar batches.
 *
 * The decoder is a hand-written single-pass scanner for the flat objects of
 * JSON lines (on the pieces of json.h): it writes each value straight into
 * the batch's column vectors (no tree, no allocation per row), which is what
 * makes ingest run near the speed of a bare parser. Values of json columns
 * (objects, arrays, anything) are validated and stored as compact JSON text.
 *
 * Decoding rules (the schema decides):
 *   int        JSON integer within int64; an integral number such as 3.0 is
 *              accepted; 3.5, strings and booleans are refused
 *   double     any JSON number
 *   bool       true / false
 *   string     a JSON string (escapes decoded to UTF-8)
 *   timestamp  an integer (ms since the epoch) or an ISO-8601 string
 *              (see tide_ts_parse, ts.h)
 *   json       any JSON value, stored compact
 *   null: NULL when the field is nullable, else an error
 *   a missing key: the field's DEFAULT when it has one, else NULL when the
 *              field is nullable, else an error
 *   unknown keys: an error, unless TIDE_JSON_IGNORE_UNKNOWN
 *   duplicate keys: an error
 * Schemaless mode (TIDE_JSON_WHOLE, for a schema of one json column): the
 * whole line, validated and compacted, is the row's single value.
 */
#ifndef TIDE_JSONL_H
#define TIDE_JSONL_H

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

/* Set column col of the open row of owned batch b from the JSON value text
 * p[0..len), converting by the column's type as the decoder does (the
 * schema's defaults and CSV cells go through here). Errors as
 * tide_json_dec_line, with messages naming the field. */
int tide_json_set_value(tide_batch_t *b, uint32_t col, const char *p, size_t len, tide_err_t *err);

/* Append row `row` of b as one compact JSON object (no newline) to out.
 * NULL fields are written as null. json columns are written as their text.
 * flags: TIDE_JSON_ISO8601. 0 or -ENOMEM (out is as before). */
int tide_json_enc_row(const tide_batch_t *b, uint32_t row, tide_buf_t *out, int flags);

#endif
