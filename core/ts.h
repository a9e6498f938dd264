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
 *   2026-11-21 (midnight UTC)   +010000-01-01T00:00:00Z (an expanded year:
 *   a sign and 4 to 9 digits)
 * Without a zone the time is UTC. Fractions beyond ms are truncated.
 * Returns 0, or TIDE_EPARSE (also for a time past int64). Whether the time
 * is in the valid timestamp range (schema.h) is the caller's check. */
int tide_ts_parse(const char *s, size_t len, int64_t *ms);

/* Format ms as "2026-11-21T12:00:05.250Z" (the .mmm part only when non-zero);
 * a year outside 0000..9999 in the expanded form, a sign and at least six
 * digits ("+010000-01-01T00:00:00Z"), so that every int64 formats to text
 * tide_ts_parse reads back to the same value.
 * out must hold 40 bytes; returns the length written (NUL-terminated). */
int tide_ts_format(int64_t ms, char *out);

#endif
