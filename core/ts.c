/*
 * ts.c: timestamps as text (ts.h): ISO-8601 parse and format, over a
 * proleptic Gregorian calendar in UTC.
 */
#include <stdio.h>

#include "ts.h"

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Days since 1970-01-01 of a proleptic Gregorian date. Years are split into
 * 400-year eras of 146097 days; within an era, a year starting in March puts
 * the leap day last, so day-of-year is a linear formula of the month. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

/* The inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int digits(const char *p, const char *e, int n, int *out) {
  int v = 0;
  if (e - p < n) return -1;
  for (int i = 0; i < n; i++) {
    if (!is_digit(p[i])) return -1;
    v = v * 10 + (p[i] - '0');
  }
  *out = v;
  return 0;
}

static int days_in_month(int64_t y, int m) {
  static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
  return dim[m - 1];
}

int tide_ts_parse(const char *s, size_t len, int64_t *ms) {
  const char *p = s, *e = s + len;
  int64_t y = 0;
  int mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
  if (p < e && (*p == '+' || *p == '-')) { /* an expanded year: a sign and 4 to 9 digits */
    int neg = *p++ == '-', nd = 0;
    for (; p < e && is_digit(*p) && nd < 10; p++, nd++) y = y * 10 + (*p - '0');
    if (nd < 4 || nd > 9) return TIDE_EPARSE;
    if (neg) y = -y;
  } else {
    int y4;
    if (digits(p, e, 4, &y4)) return TIDE_EPARSE;
    y = y4;
    p += 4;
  }
  if (e - p < 6 || p[0] != '-' || digits(p + 1, e, 2, &mo) || p[3] != '-' || digits(p + 4, e, 2, &d))
    return TIDE_EPARSE;
  p += 6;
  if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return TIDE_EPARSE;
  if (p < e) {
    if (*p != 'T' && *p != 't' && *p != ' ') return TIDE_EPARSE;
    p++;
    if (digits(p, e, 2, &h) || p + 2 >= e || p[2] != ':' || digits(p + 3, e, 2, &mi)) return TIDE_EPARSE;
    p += 5;
    if (p < e && *p == ':') {
      if (digits(p + 1, e, 2, &sec)) return TIDE_EPARSE;
      p += 3;
      if (p < e && (*p == '.' || *p == ',')) {
        p++;
        if (p >= e || !is_digit(*p)) return TIDE_EPARSE;
        int nd = 0;
        for (; p < e && is_digit(*p); p++)
          if (nd < 3) frac = frac * 10 + (*p - '0'), nd++;
        for (; nd < 3; nd++) frac *= 10; /* ".25" is 250 ms */
      }
    }
    if (h > 23 || mi > 59 || sec > 59) return TIDE_EPARSE;
    if (p < e && (*p == 'Z' || *p == 'z')) {
      p++;
    } else if (p < e && (*p == '+' || *p == '-')) {
      int sign = *p == '-' ? -1 : 1, oh, om = 0;
      p++;
      if (digits(p, e, 2, &oh)) return TIDE_EPARSE;
      p += 2;
      if (p < e && *p == ':') {
        if (digits(p + 1, e, 2, &om)) return TIDE_EPARSE;
        p += 3;
      } else if (p < e && is_digit(*p)) {
        if (digits(p, e, 2, &om)) return TIDE_EPARSE;
        p += 2;
      }
      if (oh > 23 || om > 59) return TIDE_EPARSE;
      off = sign * (oh * 60 + om);
    }
    if (p != e) return TIDE_EPARSE;
  }
  /* in 128 bits: the days of an int64 time's year times 86400000 may pass
   * int64 before the time of day brings the sum back (INT64_MIN's year) */
  __int128 v = ((((__int128)days_from_civil(y, (unsigned)mo, (unsigned)d) * 24 + h) * 60 + mi - off) * 60 + sec) *
                   1000 + frac;
  if (v < INT64_MIN || v > INT64_MAX) return TIDE_EPARSE;
  *ms = (int64_t)v;
  return 0;
}

int tide_ts_format(int64_t ms, char *out) {
  int64_t days = ms / 86400000, rem = ms % 86400000, y;
  unsigned m, d;
  if (rem < 0) rem += 86400000, days--;
  civil_from_days(days, &y, &m, &d);
  int h = (int)(rem / 3600000), mi = (int)(rem / 60000 % 60), s = (int)(rem / 1000 % 60),
      f = (int)(rem % 1000);
  char year[16]; /* four digits, or a sign and at least six outside 0000..9999 (ISO-8601's expanded form) */
  snprintf(year, sizeof year, y >= 0 && y <= 9999 ? "%04lld" : "%+07lld", (long long)y);
  if (f) return snprintf(out, 40, "%s-%02u-%02uT%02d:%02d:%02d.%03dZ", year, m, d, h, mi, s, f);
  return snprintf(out, 40, "%s-%02u-%02uT%02d:%02d:%02dZ", year, m, d, h, mi, s);
}
