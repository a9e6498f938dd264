/*
 * csv.h: CSV records (RFC 4180) <-> batch rows.
 *
 * Fields are separated by `sep` (default ','); a field may be quoted with
 * '"', inside which the separator and newlines are literal and '""' is a
 * quote. Records end at a newline outside quotes (CRLF accepted); cutting
 * text into records is decode.h's (tide_frame_csv). Fields
 * map to the schema's columns by position; a record with another number of
 * fields is refused. Values convert by the column's type:
 *   int        decimal integer within int64
 *   double     a decimal or scientific number, inf/nan words refused
 *   bool       true / false (any case)
 *   timestamp  integer ms or ISO-8601 (tide_ts_parse)
 *   string     the text (quotes removed)
 *   json       a JSON value (validated, stored compact)
 * An empty unquoted field is NULL (Spark's default nullValue ""); a quoted
 * empty field "" is an empty string. NULL in a non-nullable column takes
 * the field's default, else the record is refused.
 */
#ifndef TIDE_CSV_H
#define TIDE_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "buf.h"
#include "err.h"

/* Decode one framed record rec[0..len) (without its LF; see decode.h for
 * framing) into a new row of owned batch b. Returns 0 (a row was added),
 * TIDE_EPARSE or TIDE_ESCHEMA with the reason in err (no row added), or
 * -ENOMEM / TIDE_ETOOBIG. scratch is reused for unquoting. */
int tide_csv_dec_fields(tide_batch_t *b, const char *rec, size_t len, char sep, tide_buf_t *scratch, tide_err_t *err);

/* Encoding, the inverse: what tide_csv_dec_fields reads back to the same
 * values. A field is written
 *   NULL       as nothing (an empty field); so are NaN and infinite doubles,
 *              which CSV cannot hold (as the JSON encoder writes null)
 *   int        decimal;  timestamp: integer ms;  bool: true / false
 *   double     the shortest text that reads back the same (tide_json_number)
 *   string     its text;  json: its compact JSON text
 * and quoted ('"', quotes doubled) when it is empty (so that it is not
 * NULL), or holds the separator, a quote, CR or LF, or begins or ends with
 * white space. Records end with LF. */

/* Append a header record: the schema's field names, quoted as strings. */
int tide_csv_enc_header(const tide_schema_t *s, char sep, tide_buf_t *out);

/* Append rows [lo, hi) of b, one record each. 0 or -ENOMEM. */
int tide_csv_enc_rows(const tide_batch_t *b, uint32_t lo, uint32_t hi, char sep, tide_buf_t *out);

#endif
