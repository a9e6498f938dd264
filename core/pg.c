/*
 * pg.c: libpq under the PostgreSQL connector (pg.h). Every PGresult is
 * cleared on every path; the connection is the tide_pg_t's alone.
 */
#include "pg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "json.h" /* tide_double_shortest */
#include "ts.h"

struct tide_pg {
  PGconn *conn;
};

/* The result is libpq's: the type only hides it from the bindings. */
struct tide_pg_res {
  PGresult *r;
};

/* libpq's messages end with a newline and may span lines: keep one line. */
static void one_line(char *s) {
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == ' ')) s[--n] = 0;
  for (char *p = s; *p; p++)
    if (*p == '\n' || *p == '\t') *p = ' ';
}

/* The failure of a statement: the connection's loss, or the server's refusal
 * with its SQLSTATE. */
static int fail(tide_pg_t *c, PGresult *r, tide_err_t *err) {
  if (PQstatus(c->conn) != CONNECTION_OK) {
    tide_err_set(err, -ECONNRESET, "connection lost: %s", PQerrorMessage(c->conn));
    if (err) one_line(err->msg);
    if (r) PQclear(r);
    return -ECONNRESET;
  }
  const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
  const char *detail = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL) : NULL;
  /* where: "COPY small, line 2: \"50\"" names the row of a batch */
  const char *where = r ? PQresultErrorField(r, PG_DIAG_CONTEXT) : NULL;
  if (msg)
    tide_err_set(err, TIDE_EINVAL, "%s (SQLSTATE %s)%s%s%s%s", msg, state ? state : "?", detail ? ": " : "",
                 detail ? detail : "", where ? "; " : "", where ? where : "");
  else
    tide_err_set(err, TIDE_EINVAL, "%s", PQerrorMessage(c->conn));
  if (err) one_line(err->msg);
  if (r) PQclear(r);
  return TIDE_EINVAL;
}

/* The server's notices ("relation ... already exists, skipping") are not
 * failures: they are dropped rather than printed on stderr. */
static void quiet(void *arg, const char *message) {
  (void)arg;
  (void)message;
}

static int setup(tide_pg_t *c, tide_err_t *err) {
  PQsetNoticeProcessor(c->conn, quiet, NULL);
  PGresult *r = PQexec(c->conn, "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET client_encoding = 'UTF8'");
  if (PQresultStatus(r) != PGRES_COMMAND_OK) return fail(c, r, err);
  PQclear(r);
  return 0;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

int tide_pg_connect(const char *conninfo, int attempts, int delay_ms, tide_pg_t **out, tide_err_t *err) {
  *out = NULL;
  tide_pg_t *c = calloc(1, sizeof *c);
  if (!c) return -ENOMEM;
  for (int i = 0; i < attempts; i++) {
    if (i > 0) sleep_ms(delay_ms);
    if (c->conn) PQfinish(c->conn);
    c->conn = PQconnectdb(conninfo);
    if (!c->conn) {
      free(c);
      return -ENOMEM;
    }
    if (PQstatus(c->conn) == CONNECTION_OK) break;
  }
  if (PQstatus(c->conn) != CONNECTION_OK) {
    tide_err_set(err, -ECONNREFUSED, "cannot connect (%d attempt%s): %s", attempts, attempts == 1 ? "" : "s",
                 PQerrorMessage(c->conn));
    if (err) one_line(err->msg);
    tide_pg_close(c);
    return -ECONNREFUSED;
  }
  int rc = setup(c, err);
  if (rc) {
    tide_pg_close(c);
    return rc;
  }
  *out = c;
  return 0;
}

void tide_pg_close(tide_pg_t *c) {
  if (!c) return;
  PQfinish(c->conn);
  free(c);
}

int tide_pg_reset(tide_pg_t *c, int attempts, int delay_ms, int *used, tide_err_t *err) {
  for (int i = 0; i < attempts; i++) {
    if (i > 0) sleep_ms(delay_ms);
    if (used) *used = i + 1;
    PQreset(c->conn);
    if (PQstatus(c->conn) == CONNECTION_OK) return setup(c, err);
  }
  tide_err_set(err, -ECONNREFUSED, "cannot reconnect after %d attempt%s %d ms apart: %s", attempts,
               attempts == 1 ? "" : "s", delay_ms, PQerrorMessage(c->conn));
  if (err) one_line(err->msg);
  return -ECONNREFUSED;
}

int tide_pg_exec(tide_pg_t *c, const char *sql, int n, const char *const *params, tide_pg_res_t **out,
                 tide_err_t *err) {
  if (out) *out = NULL;
  PGresult *r = n ? PQexecParams(c->conn, sql, n, NULL, params, NULL, NULL, 0) : PQexec(c->conn, sql);
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return fail(c, r, err);
  if (!out) {
    PQclear(r);
    return 0;
  }
  tide_pg_res_t *res = malloc(sizeof *res);
  if (!res) {
    PQclear(r);
    return -ENOMEM;
  }
  res->r = r;
  *out = res;
  return 0;
}

int tide_pg_res_nrows(const tide_pg_res_t *r) { return PQntuples(r->r); }
int tide_pg_res_ncols(const tide_pg_res_t *r) { return PQnfields(r->r); }
const char *tide_pg_res_name(const tide_pg_res_t *r, int col) { return PQfname(r->r, col); }

const char *tide_pg_res_value(const tide_pg_res_t *r, int row, int col, size_t *len) {
  if (PQgetisnull(r->r, row, col)) return NULL;
  *len = (size_t)PQgetlength(r->r, row, col);
  return PQgetvalue(r->r, row, col);
}

void tide_pg_res_free(tide_pg_res_t *r) {
  if (!r) return;
  PQclear(r->r);
  free(r);
}

/* ------------------------------------------------------------------ COPY --- */

/* Text bytes with COPY's escapes (backslash, tab, newline, carriage return). */
static int put_escaped(tide_buf_t *o, const char *p, size_t n) {
  int rc = tide_buf_reserve(o, n + n / 8 + 8);
  if (rc) return rc;
  size_t from = 0;
  for (size_t i = 0; i < n; i++) {
    char e = p[i] == '\\' ? '\\' : p[i] == '\t' ? 't' : p[i] == '\n' ? 'n' : p[i] == '\r' ? 'r' : 0;
    if (!e) continue;
    if ((rc = tide_buf_append(o, p + from, i - from)) || (rc = tide_buf_putc(o, '\\')) || (rc = tide_buf_putc(o, e)))
      return rc;
    from = i + 1;
  }
  return tide_buf_append(o, p + from, n - from);
}

/* A timestamp as PostgreSQL prints one, "2026-11-21 12:00:05.25+00": its
 * parser reads this form with less work than ISO 8601's "T...Z" (7% of a
 * text COPY's server time on the benchmark's rows, bench/RESULTS.md). */
static int put_time(tide_buf_t *o, int64_t ms) {
  char tmp[48];
  int n = tide_ts_format(ms, tmp); /* ...T12:00:05.250Z */
  char *t = memchr(tmp, 'T', (size_t)n);
  if (t) *t = ' ';
  n--; /* the Z */
  if (memchr(tmp, '.', (size_t)n))
    while (tmp[n - 1] == '0') n--;
  memcpy(tmp + n, "+00", 3);
  return tide_buf_append(o, tmp, (size_t)n + 3);
}

static int put_value(tide_buf_t *o, const tide_col_t *c, uint32_t i) {
  char tmp[48];
  int n;
  if (tide_col_is_null(c, i)) return tide_buf_append(o, "\\N", 2);
  switch (c->type) {
  case TIDE_T_INT:
    n = snprintf(tmp, sizeof tmp, "%lld", (long long)tide_col_i64(c, i));
    return tide_buf_append(o, tmp, (size_t)n);
  case TIDE_T_DOUBLE: {
    double v = tide_col_f64(c, i);
    if (isnan(v)) return tide_buf_puts(o, "NaN");
    if (isinf(v)) return tide_buf_puts(o, v > 0 ? "Infinity" : "-Infinity");
    n = tide_double_shortest(v, tmp); /* not %.17g: 0.1, not 0.10000000000000001 (kept so by numeric) */
    return tide_buf_append(o, tmp, (size_t)n);
  }
  case TIDE_T_BOOL:
    return tide_buf_putc(o, tide_col_bool(c, i) ? 't' : 'f');
  case TIDE_T_TIMESTAMP:
    return put_time(o, tide_col_i64(c, i));
  case TIDE_T_STRING:
  case TIDE_T_JSON: {
    size_t len;
    const char *p = tide_col_str(c, i, &len);
    return put_escaped(o, p, len);
  }
  }
  return TIDE_EINVAL;
}

/* One row as a COPY text line. */
static int put_row(tide_buf_t *o, const tide_batch_t *b, uint32_t i) {
  int rc = 0;
  for (uint32_t f = 0; f < b->schema->nfields && !rc; f++) {
    if (f) rc = tide_buf_putc(o, '\t');
    if (!rc) rc = put_value(o, &b->cols[f], i);
  }
  return rc ? rc : tide_buf_putc(o, '\n');
}

/* ------------------------------------------------------------ COPY binary --- */

/* COPY's binary format (PostgreSQL's "COPY", "Binary Format"), all integers
 * big-endian:
 *
 *   header   "PGCOPY\n\377\r\n\0" | int32 flags = 0 | int32 extension = 0
 *   row      int16 field count | per field: int32 length (-1 = NULL) | bytes
 *   trailer  int16 -1
 *
 * A field's bytes are its type's "send" form: int8 and float8 are 8 bytes,
 * bool 1, timestamp(tz) an int64 of microseconds since 2000-01-01 00:00 UTC,
 * text/varchar/bpchar/json the UTF-8 bytes, jsonb a version byte 1 and the
 * text. */
static const char BIN_HEADER[19] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0";

/* Milliseconds from 1970-01-01 to PostgreSQL's epoch, 2000-01-01. */
#define PG_EPOCH_MS INT64_C(946684800000)

static void put_be16(char *p, uint16_t v) {
  p[0] = (char)(v >> 8);
  p[1] = (char)v;
}

static void put_be32(char *p, uint32_t v) {
  for (int k = 0; k < 4; k++) p[k] = (char)(v >> (24 - 8 * k));
}

static void put_be64(char *p, uint64_t v) {
  for (int k = 0; k < 8; k++) p[k] = (char)(v >> (56 - 8 * k));
}

/* A tide timestamp (ms since 1970, UTC) as PostgreSQL's (us since 2000).
 * One beyond the int64 range is sent as the largest finite value instead,
 * which the server refuses as "timestamp out of range" (INT64_MIN and
 * INT64_MAX would be read as -infinity and infinity). */
static int64_t pg_time(int64_t ms) {
  if (ms > INT64_MAX / 1000 + PG_EPOCH_MS) return INT64_MAX - 1;
  if (ms < INT64_MIN / 1000 + PG_EPOCH_MS) return INT64_MIN + 1;
  return (ms - PG_EPOCH_MS) * 1000;
}

/* The fixed part of a value: 4 bytes of length, then up to 8 of data. */
static int put_bin_value(tide_buf_t *o, const tide_col_t *c, tide_pg_bin_t how, uint32_t i) {
  int rc = tide_buf_reserve(o, 13);
  if (rc) return rc;
  char *p = o->data + o->len;
  if (tide_col_is_null(c, i)) {
    put_be32(p, UINT32_MAX); /* -1 */
    o->len += 4;
    return 0;
  }
  uint64_t bits;
  switch (how) {
  case TIDE_PG_INT8:
    put_be32(p, 8);
    put_be64(p + 4, (uint64_t)tide_col_i64(c, i));
    o->len += 12;
    return 0;
  case TIDE_PG_FLOAT8: {
    double v = tide_col_f64(c, i);
    memcpy(&bits, &v, 8);
    put_be32(p, 8);
    put_be64(p + 4, bits);
    o->len += 12;
    return 0;
  }
  case TIDE_PG_BOOL:
    put_be32(p, 1);
    p[4] = (char)(tide_col_bool(c, i) != 0);
    o->len += 5;
    return 0;
  case TIDE_PG_TIMESTAMP:
    put_be32(p, 8);
    put_be64(p + 4, (uint64_t)pg_time(tide_col_i64(c, i)));
    o->len += 12;
    return 0;
  case TIDE_PG_TEXT:
  case TIDE_PG_JSONB: {
    size_t len;
    const char *s = tide_col_str(c, i, &len);
    size_t head = how == TIDE_PG_JSONB;
    if (len + head > INT32_MAX) return TIDE_ETOOBIG;
    put_be32(p, (uint32_t)(len + head));
    if (head) p[4] = 1;
    o->len += 4 + head;
    return tide_buf_append(o, s, len);
  }
  }
  return TIDE_EINVAL;
}

static int put_bin_row(tide_buf_t *o, const tide_batch_t *b, const tide_pg_bin_t *bin, uint32_t i) {
  int rc = tide_buf_reserve(o, 2);
  if (rc) return rc;
  put_be16(o->data + o->len, (uint16_t)b->schema->nfields);
  o->len += 2;
  for (uint32_t f = 0; f < b->schema->nfields && !rc; f++) rc = put_bin_value(o, &b->cols[f], bin[f], i);
  return rc;
}

/* Whether `how` is a binary form of a column of type t. */
static int bin_fits(tide_pg_bin_t how, tide_type_t t) {
  switch (how) {
  case TIDE_PG_INT8: return t == TIDE_T_INT;
  case TIDE_PG_FLOAT8: return t == TIDE_T_DOUBLE;
  case TIDE_PG_BOOL: return t == TIDE_T_BOOL;
  case TIDE_PG_TIMESTAMP: return t == TIDE_T_TIMESTAMP;
  case TIDE_PG_TEXT: return t == TIDE_T_STRING || t == TIDE_T_JSON;
  case TIDE_PG_JSONB: return t == TIDE_T_JSON;
  }
  return 0;
}

const char *tide_pg_bin_name(tide_pg_bin_t how) {
  static const char *const names[] = {"int8", "float8", "bool", "timestamp", "text", "jsonb"};
  return how >= TIDE_PG_INT8 && how <= TIDE_PG_JSONB ? names[how - TIDE_PG_INT8] : "?";
}

/* How much COPY data is gathered before it goes to libpq. */
#define COPY_CHUNK (256 * 1024)

/* Send every row; 0, or the first failure (the COPY is then ended with an
 * error so that the server rolls it back). */
static int copy_rows(tide_pg_t *c, const tide_pg_bin_t *bin, const tide_batch_t *const *batches, size_t n,
                     uint64_t *rows, tide_err_t *err) {
  tide_buf_t buf = TIDE_BUF_INIT;
  int rc = bin ? tide_buf_append(&buf, BIN_HEADER, sizeof BIN_HEADER) : 0;
  for (size_t k = 0; k < n && !rc; k++) {
    const tide_batch_t *b = batches[k];
    /* row by row into the buffer, flushed at COPY_CHUNK, so a large batch
     * never needs its whole encoding in memory */
    for (uint32_t i = 0; i < b->nrows && !rc; i++) {
      rc = bin ? put_bin_row(&buf, b, bin, i) : put_row(&buf, b, i);
      (*rows)++;
      if (!rc && buf.len >= COPY_CHUNK) {
        if (PQputCopyData(c->conn, buf.data, (int)buf.len) != 1) rc = fail(c, NULL, err);
        buf.len = 0;
      }
    }
  }
  if (!rc && bin) rc = tide_buf_append(&buf, "\377\377", 2); /* the trailer: a field count of -1 */
  if (!rc && buf.len && PQputCopyData(c->conn, buf.data, (int)buf.len) != 1) rc = fail(c, NULL, err);
  tide_buf_free(&buf);
  return rc;
}

int tide_pg_copy(tide_pg_t *c, const char *copy_sql, const tide_pg_bin_t *bin, const tide_batch_t *const *batches,
                 size_t n, uint64_t *rows, tide_err_t *err) {
  *rows = 0;
  for (size_t k = 0; bin && k < n; k++) {
    const tide_schema_t *s = batches[k]->schema;
    for (uint32_t f = 0; f < s->nfields; f++)
      if (!bin_fits(bin[f], s->fields[f].type))
        return tide_err_set(err, TIDE_EINVAL, "column '%s' (%s) has no binary form %s", s->fields[f].name,
                            tide_type_name(s->fields[f].type), tide_pg_bin_name(bin[f]));
  }
  PGresult *r = PQexec(c->conn, copy_sql);
  if (PQresultStatus(r) != PGRES_COPY_IN) return fail(c, r, err);
  if (PQbinaryTuples(r) != (bin != NULL)) {
    PQclear(r);
    PQputCopyEnd(c->conn, "tide: the COPY's format is not the one asked for");
    while ((r = PQgetResult(c->conn)) != NULL) PQclear(r);
    return tide_err_set(err, TIDE_EINVAL, "%s: the statement's format is not %s", copy_sql,
                        bin ? "binary" : "text");
  }
  PQclear(r);
  int rc = copy_rows(c, bin, batches, n, rows, err);
  if (rc == -ECONNRESET) return rc;
  if (PQputCopyEnd(c->conn, rc ? "tide: the rows could not be encoded" : NULL) != 1) return fail(c, NULL, err);
  /* the COPY's result, then the NULL that ends the command */
  int out = 0;
  while ((r = PQgetResult(c->conn)) != NULL) {
    if (!out && PQresultStatus(r) != PGRES_COMMAND_OK) {
      out = fail(c, r, err);
      continue;
    }
    PQclear(r);
  }
  if (rc) return tide_err_set(err, rc, "cannot encode the rows: %s", tide_strerror(rc));
  return out;
}

/* -------------------------------------------------------------- queries --- */

/* Type OIDs of PostgreSQL's built-in types (pg_type.dat; stable). */
enum {
  OID_BOOL = 16, OID_NAME = 19, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_TEXT = 25, OID_OID = 26,
  OID_JSON = 114, OID_FLOAT4 = 700, OID_FLOAT8 = 701, OID_BPCHAR = 1042, OID_VARCHAR = 1043, OID_DATE = 1082,
  OID_TIMESTAMP = 1114, OID_TIMESTAMPTZ = 1184, OID_NUMERIC = 1700, OID_JSONB = 3802
};

static tide_type_t type_of(Oid t) {
  switch (t) {
  case OID_BOOL: return TIDE_T_BOOL;
  case OID_INT2: case OID_INT4: case OID_INT8: case OID_OID: return TIDE_T_INT;
  case OID_FLOAT4: case OID_FLOAT8: case OID_NUMERIC: return TIDE_T_DOUBLE;
  case OID_DATE: case OID_TIMESTAMP: case OID_TIMESTAMPTZ: return TIDE_T_TIMESTAMP;
  case OID_JSON: case OID_JSONB: return TIDE_T_JSON;
  default: return TIDE_T_STRING;
  }
}

static int set_value(tide_batch_t *b, uint32_t f, const char *s, size_t len) {
  char *end;
  switch (b->schema->fields[f].type) {
  case TIDE_T_INT: {
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end != s + len || len == 0) return TIDE_EPARSE;
    tide_batch_set_i64(b, f, v);
    return 0;
  }
  case TIDE_T_DOUBLE: {
    double v = strtod(s, &end);
    if (end != s + len || len == 0) return TIDE_EPARSE;
    tide_batch_set_f64(b, f, v);
    return 0;
  }
  case TIDE_T_BOOL:
    if (len != 1 || (*s != 't' && *s != 'f')) return TIDE_EPARSE;
    tide_batch_set_bool(b, f, *s == 't');
    return 0;
  case TIDE_T_TIMESTAMP: {
    int64_t ms;
    int rc = tide_ts_parse(s, len, &ms);
    if (rc) return rc;
    tide_batch_set_i64(b, f, ms);
    return 0;
  }
  case TIDE_T_STRING:
  case TIDE_T_JSON:
    return tide_batch_set_str(b, f, s, len);
  }
  return TIDE_EINVAL;
}

static int fill(PGresult *r, tide_batch_t *b, tide_err_t *err) {
  int nr = PQntuples(r), nf = PQnfields(r);
  int rc = tide_batch_reserve(b, (uint32_t)nr);
  if (rc) return rc;
  for (int i = 0; i < nr; i++) {
    if ((rc = tide_batch_row_begin(b))) return rc;
    for (int f = 0; f < nf; f++) {
      if (PQgetisnull(r, i, f)) continue;
      const char *v = PQgetvalue(r, i, f);
      rc = set_value(b, (uint32_t)f, v, (size_t)PQgetlength(r, i, f));
      if (rc) {
        tide_batch_row_abort(b);
        return tide_err_set(err, rc, "row %d: column '%s' (%s): cannot read '%.60s' as %s", i + 1, PQfname(r, f),
                            tide_type_name(b->schema->fields[f].type), v,
                            tide_type_name(b->schema->fields[f].type));
      }
    }
    tide_batch_row_commit(b);
  }
  return 0;
}

int tide_pg_query_batch(tide_pg_t *c, const char *sql, tide_batch_t **out, tide_err_t *err) {
  *out = NULL;
  PGresult *r = PQexec(c->conn, sql);
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
      PQclear(r);
      return tide_err_set(err, TIDE_EINVAL, "the statement returns no rows (a SELECT is expected)");
    }
    return fail(c, r, err);
  }
  tide_schema_t *s = tide_schema_new();
  int rc = s ? 0 : -ENOMEM;
  for (int f = 0; !rc && f < PQnfields(r); f++) {
    const char *name = PQfname(r, f);
    rc = tide_schema_add(s, name, strlen(name), type_of(PQftype(r, f)), 1, NULL, err);
  }
  tide_batch_t *b = rc ? NULL : tide_batch_new(s, (uint32_t)(PQntuples(r) ? PQntuples(r) : 1));
  if (!rc && !b) rc = -ENOMEM;
  if (!rc) rc = fill(r, b, err);
  tide_schema_unref(s);
  PQclear(r);
  if (rc) {
    tide_batch_free(b);
    return rc;
  }
  *out = b;
  return 0;
}
