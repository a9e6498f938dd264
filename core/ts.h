/*
 * ts.h: timestamps as text. A timestamp is milliseconds since the Unix
 * epoch (UTC), an int64.
 */
#ifndef TIDE_TS_H
#define TIDE_TS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Parse ISO-8601 / RFC 3339 and the space-separated form:
 *   2026-11-21T12:00:05Z   2026-11-21 12:00:05.250   2026-11-21T12:00:05+01:00
 *   2026-11-21 (midnight UTC)
 * Without a zone the time is UTC. Fractions beyond ms are truncated.
 * Returns 0 or TIDE_EPARSE. */
int tide_ts_parse(const char *s, size_t len, int64_t *ms);

/* Format ms as "2026-11-21T12:00:05.250Z" (the .mmm part only when non-zero).
 * out must hold 40 bytes; returns the length written (NUL-terminated). */
int tide_ts_format(int64_t ms, char *out);

#endif
