/*
 * pg.h: the PostgreSQL connector's C side, over libpq: a connection, plain
 * statements with text parameters, COPY ... FROM STDIN fed from batches
 * (the rows are encoded in C, no per-row Lua), and a query's result as a
 * batch typed from its column types.
 *
 * Errors. A statement the server refuses returns TIDE_EINVAL with the
 * server's message (and its SQLSTATE) in err; a connection that is lost or
 * cannot be made returns -ECONNRESET / -ECONNREFUSED with libpq's message,
 * so that callers can tell a retryable failure from a refused batch.
 *
 * Types, both ways (docs/guide.md, "PostgreSQL"):
 *   tide        COPY text written            read from PostgreSQL types
 *   int         decimal                      int2, int4, int8, oid
 *   double      shortest round-trip digits,  float4, float8, numeric
 *               NaN, [-]Infinity
 *   bool        t / f                        bool
 *   string      the bytes, COPY-escaped      text, varchar, bpchar, name, and any other type (its text)
 *   timestamp   2026-11-21 12:00:05.25+00    timestamptz, timestamp (as UTC), date (midnight UTC)
 *   json        the JSON text, COPY-escaped  json, jsonb
 * and COPY's binary format for the target types of tide_pg_bin_t.
 * The session runs with TimeZone UTC and DateStyle ISO (set on connect).
 */
#ifndef TIDE_PG_H
#define TIDE_PG_H

#include <stddef.h>

#include "batch.h"
#include "buf.h"
#include "err.h"

typedef struct tide_pg tide_pg_t;
typedef struct tide_pg_res tide_pg_res_t;

/* Connect with a libpq conninfo string: up to `attempts` tries, `delay_ms`
 * apart, while the server cannot be reached. *out owns the connection. */
int tide_pg_connect(const char *conninfo, int attempts, int delay_ms, tide_pg_t **out, tide_err_t *err);
void tide_pg_close(tide_pg_t *c); /* NULL is allowed */

/* Reconnect a lost connection: up to `attempts` tries, `delay_ms` apart
 * (the first at once). *used (when not NULL) gets the number of tries
 * made, so that a caller can keep one budget across several losses. */
int tide_pg_reset(tide_pg_t *c, int attempts, int delay_ms, int *used, tide_err_t *err);

/* Run one statement with n text parameters (NULL entries are SQL NULL).
 * On success *out (when not NULL) holds the result rows, else the result is
 * dropped. */
int tide_pg_exec(tide_pg_t *c, const char *sql, int n, const char *const *params, tide_pg_res_t **out,
                 tide_err_t *err);
int tide_pg_res_nrows(const tide_pg_res_t *r);
int tide_pg_res_ncols(const tide_pg_res_t *r);
const char *tide_pg_res_name(const tide_pg_res_t *r, int col);
/* The text of a value, or NULL for SQL NULL; *len gets its length. */
const char *tide_pg_res_value(const tide_pg_res_t *r, int row, int col, size_t *len);
void tide_pg_res_free(tide_pg_res_t *r); /* NULL is allowed */

/* COPY's binary format, column by column: the form a column's values take,
 * which the PostgreSQL column they land in must read as its own. Binary
 * COPY saves the server all parsing (timestamps, numbers and escapes as
 * text are most of its work in a text COPY), so the sink uses it whenever
 * every column has one of these forms:
 *   TIDE_PG_INT8       int       -> bigint
 *   TIDE_PG_FLOAT8     double    -> double precision (the IEEE bits: exact)
 *   TIDE_PG_BOOL       bool      -> boolean
 *   TIDE_PG_TIMESTAMP  timestamp -> timestamptz, timestamp (us since 2000 UTC)
 *   TIDE_PG_TEXT       string    -> text, varchar, char; json -> json
 *   TIDE_PG_JSONB      json      -> jsonb
 * (an integer, smallint, real or numeric column takes the text format). */
typedef enum {
  TIDE_PG_INT8 = 1,
  TIDE_PG_FLOAT8,
  TIDE_PG_BOOL,
  TIDE_PG_TIMESTAMP,
  TIDE_PG_TEXT,
  TIDE_PG_JSONB
} tide_pg_bin_t;

/* "int8", "float8", "bool", "timestamp", "text", "jsonb" ("?" otherwise). */
const char *tide_pg_bin_name(tide_pg_bin_t how);

/* Run `copy_sql` (a COPY ... FROM STDIN) and send the rows of the n
 * batches, each column in schema order: in the text format when bin is
 * NULL, else in the binary format (the statement must say FORMAT binary),
 * column f as bin[f] (one entry per field; a form that does not fit the
 * column's type is TIDE_EINVAL before anything is sent). *rows gets the
 * number of rows. The text format writes doubles in their shortest
 * round-tripping digits, timestamps as "2026-11-21 12:00:05.25+00". */
int tide_pg_copy(tide_pg_t *c, const char *copy_sql, const tide_pg_bin_t *bin, const tide_batch_t *const *batches,
                 size_t n, uint64_t *rows, tide_err_t *err);

/* Run a query and return its rows as one new owned batch, with a schema of
 * its columns (all nullable) typed as in the table above. */
int tide_pg_query_batch(tide_pg_t *c, const char *sql, tide_batch_t **out, tide_err_t *err);

#endif
