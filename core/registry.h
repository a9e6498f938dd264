/*
 * registry.h: the schema registry's rules: compatibility between schema
 * versions, and projection of rows written under one version into another.
 *
 * Compatibility follows Pulsar's and Confluent's meaning. "R can read W"
 * (data written with W is readable by a reader holding R) holds when, for
 * every field of R:
 *   - W has it with the same type, or W has int and R has double (widening);
 *     and if W's field is nullable, R's is nullable or has a default;
 *   - or W lacks it, and R's field is nullable or has a default.
 * Fields of W that R lacks are dropped on read.
 *
 *   backward             the new version can read data of the previous one
 *   forward              the previous version can read data of the new one
 *   full                 both
 *   *_transitive         the same against every earlier version
 *   none                 anything goes
 *
 * The store keeps a topic's mode as its number (tide_compat_t).
 */
#ifndef TIDE_REGISTRY_H
#define TIDE_REGISTRY_H

#include <stdint.h>

#include "batch.h"
#include "err.h"
#include "schema.h"

/* The compatibility modes (the values are on disk: the store's catalog). */
typedef enum tide_compat {
  TIDE_COMPAT_NONE = 0,
  TIDE_COMPAT_BACKWARD = 1,
  TIDE_COMPAT_FORWARD = 2,
  TIDE_COMPAT_FULL = 3,
  TIDE_COMPAT_BACKWARD_TRANSITIVE = 4,
  TIDE_COMPAT_FORWARD_TRANSITIVE = 5,
  TIDE_COMPAT_FULL_TRANSITIVE = 6
} tide_compat_t;

/* "backward", ...; never NULL. */
const char *tide_compat_name(tide_compat_t m);
/* Parse a mode name. 0 or TIDE_EINVAL. */
int tide_compat_parse(const char *s, tide_compat_t *out);

/* 0 when data written with `writer` can be read with `reader`, else
 * TIDE_ESCHEMA with the first reason in err, worded from the older to the
 * newer version (`reader_is_old` says which is which):
 *   field 'signal': type changed from int to string
 *   field 'site' was added without a default and is not nullable
 *   field 'site' was removed but has no default and is not nullable
 *   field 'signal' became NOT NULL        field 'signal' became nullable */
int tide_schema_readable(const tide_schema_t *reader, const tide_schema_t *writer, int reader_is_old,
                         tide_err_t *err);

/* May `next` follow versions[0..n) (oldest first) under mode? 0, or
 * TIDE_ESCHEMA with e.g. "field 'signal': type changed from int to string,
 * not allowed under backward" (and " (against version 2)" when a
 * transitive mode fails on a version other than the latest). */
int tide_compat_check(tide_compat_t mode, tide_schema_t *const *versions, uint32_t n, const tide_schema_t *next,
                      tide_err_t *err);

/* A projection turns rows of schema `from` into rows of schema `to`:
 * fields matched by name, int widened to double, missing fields filled with
 * their default or NULL. Fails (TIDE_ESCHEMA) when `to` cannot read `from`;
 * `to_is_old` (the reader is the older version) words that reason. */
typedef struct tide_projection tide_projection_t;

int tide_projection_new(tide_schema_t *from, tide_schema_t *to, int to_is_old, tide_projection_t **out,
                        tide_err_t *err);
/* Append rows [lo, hi) of src (schema `from`) to dst (owned, schema `to`). */
int tide_projection_apply(const tide_projection_t *p, const tide_batch_t *src, uint32_t lo, uint32_t hi,
                          tide_batch_t *dst);
void tide_projection_free(tide_projection_t *p); /* NULL allowed */

#endif
