/*
 * csv.h: CSV records (RFC 4180) into batch rows.
 *
 * Fields are separated by `sep` (default ','); a field may be quoted with
 * '"', inside which the separator and newlines are literal and '""' is a
 * quote. Records end at a newline outside quotes (CRLF accepted). Fields
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

#include "batch.h"
#include "buf.h"
#include "err.h"

enum { TIDE_CSV_ROW = 0, TIDE_CSV_MORE = 1, TIDE_CSV_BLANK = 2 };

/* Decode the record at the start of p[0..len) into a new row of owned
 * batch b. *used is set to the bytes of the record (with its newline).
 * Returns TIDE_CSV_ROW (a row was added), TIDE_CSV_BLANK (an empty line,
 * nothing added), TIDE_CSV_MORE (the record is not complete in p and final
 * is 0: nothing consumed), or TIDE_EPARSE / TIDE_ESCHEMA with the reason in
 * err and *used covering the bad record (so the caller can skip it), or
 * -ENOMEM. *lines receives the newlines the record spans. scratch is reused
 * for unquoting. */
int tide_csv_dec_record(tide_batch_t *b, const char *p, size_t len, int final, char sep, size_t *used,
                        size_t *lines, tide_buf_t *scratch, tide_err_t *err);

#endif
