/*
 * schema.h: column types and schemas.
 *
 * A schema is an ordered list of uniquely named, typed fields. It is
 * immutable once built and shared by reference count: batches, decoders and
 * topics each hold a reference (tide_schema_ref / tide_schema_unref).
 *
 * Field names are 1..128 bytes of UTF-8 without control characters or
 * backticks, unique (case-sensitive): identifiers, and also the names Spark
 * gives expressions ("avg(signal)"), which DDL writes in backticks. A field may carry a default, kept as JSON text
 * ("0", "\"x\"", "null"); the schema registry uses it when projecting rows
 * written under an older version.
 *
 * DDL, the text form: "ts timestamp, device string, signal int? DEFAULT 0".
 * A trailing '?' makes a column nullable. Types are case-insensitive; the
 * aliases bigint/long/integer (int), float/real (double), boolean (bool),
 * text/varchar (string) are accepted and normalised.
 */
#ifndef TIDE_SCHEMA_H
#define TIDE_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

/* In-memory type tags. The on-disk codes are the same numbers, frozen:
 * never renumber (docs/FORMAT.md). */
typedef enum tide_type {
  TIDE_T_BOOL = 1,
  TIDE_T_INT = 2,       /* int64 */
  TIDE_T_DOUBLE = 3,
  TIDE_T_STRING = 4,
  TIDE_T_TIMESTAMP = 5, /* int64 ms since the Unix epoch, UTC */
  TIDE_T_JSON = 6       /* any JSON value, stored as its compact JSON text */
} tide_type_t;

/* The valid timestamp range: 0000-01-01T00:00:00.000Z through
 * 9999-12-31T23:59:59.999Z, the instants ISO-8601's four-digit years name
 * (so every valid timestamp prints and reads back). Input outside it is
 * refused at ingest (decoders, Lua rows); durations are at most the span
 * (TIDE_DURATION_MAX). Within these bounds, time arithmetic (t - delay,
 * window start + size) never leaves int64. docs/guide.md says the same. */
#define TIDE_TS_MIN INT64_C(-62167219200000)
#define TIDE_TS_MAX INT64_C(253402300799999)
#define TIDE_DURATION_MAX (TIDE_TS_MAX - TIDE_TS_MIN)
#define TIDE_TS_RANGE_TEXT "0000-01-01T00:00:00Z .. 9999-12-31T23:59:59.999Z"
#define TIDE_TS_RANGE_WHY " (outside the valid timestamp range " TIDE_TS_RANGE_TEXT ")"
static inline int tide_ts_valid(int64_t ms) { return ms >= TIDE_TS_MIN && ms <= TIDE_TS_MAX; }

#define TIDE_NAME_MAX 128
#define TIDE_FIELDS_MAX 4096

typedef struct tide_field {
  char *name;          /* NUL-terminated, owned by the schema */
  uint32_t name_len;
  tide_type_t type;
  uint8_t nullable;
  char *default_json;  /* NULL when the field has no default; else owned JSON text */
} tide_field_t;

typedef struct tide_schema {
  uint32_t refs;
  uint32_t nfields;
  uint32_t cap;
  tide_field_t *fields;
} tide_schema_t;

/* "bool", "int", ... Never NULL ("?" for an unknown tag). */
const char *tide_type_name(tide_type_t t);
/* Parse a type name (with aliases, case-insensitive, without '?').
 * Returns 0 and sets *out, or TIDE_EINVAL. */
int tide_type_parse(const char *s, size_t len, tide_type_t *out);

/* A new empty schema with one reference. NULL on out of memory. */
tide_schema_t *tide_schema_new(void);
tide_schema_t *tide_schema_ref(tide_schema_t *s);
void tide_schema_unref(tide_schema_t *s); /* NULL is allowed */

/* Append a field. name is copied; default_json may be NULL (it is copied and
 * must be valid JSON text of a value that fits the type).
 * Errors: TIDE_EINVAL (bad or duplicate name, too many fields, bad default),
 * -ENOMEM. err names the field. */
int tide_schema_add(tide_schema_t *s, const char *name, size_t name_len, tide_type_t type,
                    int nullable, const char *default_json, tide_err_t *err);

/* Index of the named field, or -1. */
int tide_schema_find(const tide_schema_t *s, const char *name, size_t len);

/* Parse DDL text into a new schema (one reference, owned by the caller).
 * Errors: TIDE_EPARSE with "at position N: ..." in err, TIDE_EINVAL for a
 * duplicate or invalid name, -ENOMEM. */
int tide_schema_parse_ddl(const char *ddl, size_t len, tide_schema_t **out, tide_err_t *err);

/* Append the DDL text of s to out (no NUL). Round-trips through
 * tide_schema_parse_ddl. */
int tide_schema_to_ddl(const tide_schema_t *s, tide_buf_t *out);

/* Binary form for the catalog (little-endian, versioned; docs/FORMAT.md). */
int tide_schema_encode(const tide_schema_t *s, tide_buf_t *out);
int tide_schema_decode(const void *p, size_t len, tide_schema_t **out, tide_err_t *err);

/* 1 when names, types, nullability and defaults are all equal, in order. */
int tide_schema_equal(const tide_schema_t *a, const tide_schema_t *b);

#endif
