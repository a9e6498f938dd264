/*
 * decode.c: text records into batches (rules in decode.h).
 *
 * One pass over the text: frame a record, decode it into the open row of
 * the batch, and on a bad record apply the policy. Nothing is allocated per
 * record except what the dead-letter policy keeps; the decoder's scratch
 * buffer and JSON decoder are reused across calls.
 */
#include "decode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "csv.h"
#include "json.h"
#include "jsonl.h"
#include "pool.h"
#include "vec.h"

struct tide_decoder {
  tide_schema_t *schema; /* one reference */
  tide_decode_opts_t o;
  tide_json_dec_t *json; /* the json format's decoder */
  tide_buf_t scratch;    /* csv unquoting */
  tide_bad_record_t *dead;
  size_t ndead, capdead;
};

/* ---- framing ------------------------------------------------------------- */

int tide_frame_line(const char *p, size_t n, int final, size_t *len, size_t *used) {
  const char *lf = n ? memchr(p, '\n', n) : NULL;
  if (lf) {
    *len = (size_t)(lf - p);
    *used = *len + 1;
  } else {
    if (!final || n == 0) return TIDE_FRAME_MORE;
    *len = *used = n;
  }
  if (*len && p[*len - 1] == '\r') --*len;
  return TIDE_FRAME_RECORD;
}

int tide_frame_csv(const char *p, size_t n, char sep, int final, size_t *len, size_t *used, size_t *lines,
                   int *open_quote) {
  enum { START, PLAIN, QUOTED, QUOTE } st = START; /* QUOTE: a quote seen inside a quoted field */
  size_t nl = 0, i;
  *open_quote = 0;
  for (i = 0; i < n; i++) {
    char c = p[i];
    if (st == QUOTED) {
      if (c == '"') st = QUOTE;
      else if (c == '\n') nl++;
      continue;
    }
    if (c == '\n') break;
    if (st == QUOTE && c == '"') st = QUOTED; /* "" inside quotes */
    else if (c == sep) st = START;
    else if (st == START && c == '"') st = QUOTED;
    else st = PLAIN; /* a quote elsewhere is a character (the field decoder says so after a closing quote) */
  }
  if (i == n) {
    if (!final || n == 0) return TIDE_FRAME_MORE;
    *open_quote = st == QUOTED;
    *used = n;
  } else {
    *used = i + 1;
  }
  *len = i;
  *lines = nl;
  if (*len && p[*len - 1] == '\r') --*len;
  return TIDE_FRAME_RECORD;
}

/* ---- decoder ------------------------------------------------------------- */

static void dead_clear(tide_decoder_t *d) {
  for (size_t i = 0; i < d->ndead; i++) {
    free(d->dead[i].reason);
    free(d->dead[i].text);
  }
  d->ndead = 0;
}

/* Keep a bad record for the dead-letter policy. 0 or -ENOMEM. */
static int dead_add(tide_decoder_t *d, int64_t line, const char *reason, const char *p, size_t n) {
  if (d->ndead == d->capdead) {
    size_t cap = d->capdead ? d->capdead * 2 : 16;
    tide_bad_record_t *q = realloc(d->dead, cap * sizeof *q);
    if (!q) return -ENOMEM;
    d->dead = q;
    d->capdead = cap;
  }
  tide_bad_record_t *r = &d->dead[d->ndead];
  r->line = line;
  r->len = n;
  /* a reason may quote the record's bytes (cut at any byte): kept as UTF-8 */
  tide_buf_t why = TIDE_BUF_INIT;
  int rc = tide_utf8_repair(reason, strlen(reason), &why);
  if (!rc) rc = tide_buf_cstr(&why);
  r->reason = why.data;
  r->text = malloc(n + 1);
  if (rc || !r->text) {
    free(r->reason);
    free(r->text);
    return -ENOMEM;
  }
  memcpy(r->text, p, n);
  r->text[n] = 0;
  d->ndead++;
  return 0;
}

int tide_decoder_open(tide_schema_t *s, const tide_decode_opts_t *o, tide_decoder_t **out, tide_err_t *err) {
  *out = NULL;
  if (o->format == TIDE_FMT_TEXT && (s->nfields != 1 || s->fields[0].type != TIDE_T_STRING))
    return tide_err_set(err, TIDE_EINVAL, "the text format needs a schema of one string column");
  tide_decoder_t *d = calloc(1, sizeof *d);
  if (!d) return -ENOMEM;
  d->o = *o;
  if (!d->o.sep) d->o.sep = ',';
  if (o->format == TIDE_FMT_JSON && !(d->json = tide_json_dec_new(s, o->json_flags))) {
    free(d);
    return -ENOMEM;
  }
  tide_schema_ref(s);
  d->schema = s;
  *out = d;
  return 0;
}

void tide_decoder_close(tide_decoder_t *d) {
  if (!d) return;
  dead_clear(d);
  free(d->dead);
  tide_json_dec_free(d->json);
  tide_buf_free(&d->scratch);
  tide_schema_unref(d->schema);
  free(d);
}

/* Decode one framed record p[0..n) into a row of b (blank json and csv
 * records add none). 0, or a failure with the reason in err. */
static int decode_record(tide_decoder_t *d, tide_batch_t *b, const char *p, size_t n, tide_err_t *err) {
  int rc;
  switch (d->o.format) {
  case TIDE_FMT_TEXT: {
    size_t bad = tide_utf8_check(p, n);
    if (bad != n) return tide_err_set(err, TIDE_ESCHEMA, "invalid UTF-8 at byte %zu", bad + 1);
    if ((rc = tide_batch_row_begin(b))) return rc;
    if ((rc = tide_batch_set_str(b, 0, p, n))) {
      tide_batch_row_abort(b);
      return rc;
    }
    tide_batch_row_commit(b);
    return 0;
  }
  case TIDE_FMT_JSON: {
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
    return i < n ? tide_json_dec_line(d->json, b, p + i, n - i, err) : 0;
  }
  case TIDE_FMT_CSV:
    return n ? tide_csv_dec_fields(b, p, n, d->o.sep, &d->scratch, err) : 0;
  }
  return TIDE_EINVAL;
}

int tide_decode(tide_decoder_t *d, tide_batch_t *b, const char *text, size_t len, int final, int64_t line,
                tide_decode_result_t *r, tide_err_t *err) {
  memset(r, 0, sizeof *r);
  dead_clear(d);
  size_t pos = 0;
  int64_t lines = 0;
  int rc = 0;
  tide_err_t e = {0, ""};
  while (pos < len && b->nrows < TIDE_BATCH_MAX_ROWS - 1) {
    const char *p = text + pos;
    size_t n = len - pos, rlen, used, inner = 0;
    int open = 0;
    int f = d->o.format == TIDE_FMT_CSV && d->o.multi_line
                ? tide_frame_csv(p, n, d->o.sep, final, &rlen, &used, &inner, &open)
                : tide_frame_line(p, n, final, &rlen, &used);
    if (f == TIDE_FRAME_MORE) break;
    int64_t at = line + lines;
    e.msg[0] = 0;
    if (open) { /* a stray quote: bad from its first line only, go on after it */
      tide_frame_line(p, n, 1, &rlen, &used);
      inner = 0;
      rc = tide_err_set(&e, TIDE_EPARSE, "unterminated quoted field");
    } else {
      rc = decode_record(d, b, p, rlen, &e);
      if (rc == TIDE_ETOOBIG && b->nrows > 0) { /* the batch is full: the rest goes in the next one */
        rc = 0;
        break;
      }
      if (rc == TIDE_ETOOBIG) rc = tide_err_set(&e, TIDE_ESCHEMA, "record too large for a batch (%zu bytes)", rlen);
    }
    if (rc == TIDE_EPARSE || rc == TIDE_ESCHEMA) {
      if (d->o.bad == TIDE_BAD_FAIL) break;
      if (d->o.bad == TIDE_BAD_DROP) {
        if (r->ndropped_lines < TIDE_DECODE_KEEP) r->dropped_lines[r->ndropped_lines++] = at;
        r->dropped++;
        rc = 0;
      } else if ((rc = dead_add(d, at, e.msg, p, rlen))) {
        tide_err_set(&e, rc, "%s", tide_strerror(rc));
        break;
      }
    } else if (rc) {
      tide_err_set(&e, rc, "%s", tide_strerror(rc));
      break;
    }
    pos += used;
    lines += (int64_t)inner + (p[used - 1] == '\n');
  }
  r->used = pos;
  r->lines = lines;
  r->dead = d->dead;
  r->ndead = d->ndead;
  if (rc) return tide_err_set(err, rc, "line %lld: %s", (long long)(line + lines), e.msg);
  return 0;
}

/* ---- decoding on a worker pool -------------------------------------------- */

/* One part of tide_decode_par's text: its bytes, its first line (filled
 * once the parts before it are counted), its LFs, and what decoding it
 * did. Each task writes only its own part. */
typedef struct part {
  const char *p;
  size_t len;
  int final;
  int64_t line, nl;
  tide_decoder_t *d;
  tide_batch_t *b;
  tide_decode_result_t r;
  tide_err_t err;
  int rc;
} part_t;

static void count_task(void *arg, size_t i) {
  part_t *q = &((part_t *)arg)[i];
  const char *p = q->p, *end = q->p + q->len;
  int64_t nl = 0;
  while (p < end && (p = memchr(p, '\n', (size_t)(end - p)))) {
    nl++;
    p++;
  }
  q->nl = nl;
}

static void decode_task(void *arg, size_t i) {
  part_t *q = &((part_t *)arg)[i];
  q->rc = tide_decode(q->d, q->b, q->p, q->len, q->final, q->line, &q->r, &q->err);
}

/* Cut text into at most k parts after LFs; returns the number made. */
static size_t cut_parts(part_t *parts, size_t k, const char *text, size_t len, int final) {
  size_t at = 0, n = 0;
  for (size_t i = 0; i < k && at < len; i++) {
    size_t end = len;
    if (i + 1 < k) {
      size_t want = (size_t)((unsigned long long)len * (i + 1) / k);
      if (want < at) want = at;
      const char *lf = memchr(text + want, '\n', len - want);
      if (lf) end = (size_t)(lf - text) + 1;
    }
    parts[n].p = text + at;
    parts[n].len = end - at;
    n++;
    at = end;
  }
  if (n == 0) { /* empty text: one empty part, as tide_decode would see it */
    parts[0].p = text;
    parts[0].len = 0;
    n = 1;
  }
  for (size_t i = 0; i < n; i++) parts[i].final = i + 1 == n ? final : 0; /* the others end at an LF */
  return n;
}

/* The dead records of parts[0..n) copied into one block (records, then
 * their strings). 0 with r->dead / r->ndead set (NULL / 0 when none), or
 * -ENOMEM. */
static int keep_dead(const part_t *parts, size_t n, tide_decode_result_t *r) {
  size_t count = 0, bytes = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < parts[i].r.ndead; j++) {
      const tide_bad_record_t *d = &parts[i].r.dead[j];
      count++;
      bytes += strlen(d->reason) + 1 + d->len + 1;
    }
  r->dead = NULL;
  r->ndead = 0;
  if (!count) return 0;
  tide_bad_record_t *out = malloc(count * sizeof *out + bytes);
  if (!out) return -ENOMEM;
  char *q = (char *)(out + count);
  size_t k = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < parts[i].r.ndead; j++, k++) {
      const tide_bad_record_t *d = &parts[i].r.dead[j];
      size_t rl = strlen(d->reason) + 1;
      out[k] = *d;
      out[k].reason = memcpy(q, d->reason, rl);
      q += rl;
      out[k].text = memcpy(q, d->text, d->len + 1);
      q += d->len + 1;
    }
  r->dead = out;
  r->ndead = count;
  return 0;
}

int tide_decode_par(struct tide_pool *pool, size_t nparts, tide_schema_t *s, const tide_decode_opts_t *o,
                    const char *text, size_t len, int final, int64_t line, tide_batch_t **out,
                    tide_decode_result_t *r, tide_err_t *err) {
  *out = NULL;
  memset(r, 0, sizeof *r);
  size_t k = nparts < 1 ? 1 : nparts > TIDE_POOL_MAX ? TIDE_POOL_MAX : nparts;
  if ((o->format == TIDE_FMT_CSV && o->multi_line) || len > TIDE_BATCH_MAX_DATA / 2) k = 1; /* see decode.h */
  if (k > len / TIDE_DECODE_PAR_MIN) k = len / TIDE_DECODE_PAR_MIN ? len / TIDE_DECODE_PAR_MIN : 1;
  part_t *parts = calloc(k, sizeof *parts);
  if (!parts) return -ENOMEM;
  k = cut_parts(parts, k, text, len, final);
  int rc = 0;
  /* decoders and batches are made on this thread: schema references are
   * not atomic */
  for (size_t i = 0; i < k && !rc; i++) rc = tide_decoder_open(s, o, &parts[i].d, err);
  if (!rc && k > 1) tide_pool_run(pool, k, count_task, parts);
  for (size_t i = 0; i < k && !rc; i++) { /* a part's LFs bound its rows: room for them up front */
    uint32_t hint = k > 1 && parts[i].nl < TIDE_BATCH_MAX_ROWS ? (uint32_t)parts[i].nl + 1 : 4096;
    if (!(parts[i].b = tide_batch_new(s, hint))) rc = -ENOMEM;
  }
  if (!rc) {
    parts[0].line = line;
    for (size_t i = 1; i < k; i++) parts[i].line = parts[i - 1].line + parts[i - 1].nl;
    tide_pool_run(pool, k, decode_task, parts);
    /* merge the parts that count, in order */
    uint64_t rows = 0;
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
      part_t *q = &parts[i];
      if (i > 0 && rows + q->b->nrows > TIDE_BATCH_MAX_ROWS - 1) break; /* the rest goes in the next call */
      n++;
      rows += q->b->nrows;
      r->used += q->r.used;
      r->lines += q->r.lines;
      r->dropped += q->r.dropped;
      for (uint32_t j = 0; j < q->r.ndropped_lines && r->ndropped_lines < TIDE_DECODE_KEEP; j++)
        r->dropped_lines[r->ndropped_lines++] = q->r.dropped_lines[j];
      if (q->rc) {
        rc = q->rc;
        *err = q->err;
        break;
      }
      if (q->r.used < q->len) break;
    }
    if (!rc) rc = keep_dead(parts, n, r);
    if (!rc && n == 1) {
      *out = parts[0].b;
      parts[0].b = NULL;
    } else if (!rc) {
      tide_batch_t *bs[TIDE_POOL_MAX];
      for (size_t i = 0; i < n; i++) bs[i] = parts[i].b;
      rc = tide_batch_concat_on(pool, bs, (uint32_t)n, s, out);
      if (rc) {
        free((void *)r->dead);
        r->dead = NULL;
        r->ndead = 0;
        tide_err_set(err, rc, "%s", tide_strerror(rc));
      }
    }
  }
  for (size_t i = 0; i < k; i++) {
    tide_decoder_close(parts[i].d);
    tide_batch_free(parts[i].b);
  }
  free(parts);
  return rc;
}

/* ---- dead letters ------------------------------------------------------- */

int tide_utf8_repair(const char *p, size_t n, tide_buf_t *out) {
  static const char fffd[] = "\xEF\xBF\xBD";
  int rc = 0;
  while (!rc && n) {
    size_t ok = tide_utf8_check(p, n);
    rc = tide_buf_append(out, p, ok);
    if (rc || ok == n) break;
    rc = tide_buf_append(out, fffd, 3);
    p += ok + 1;
    n -= ok + 1;
  }
  return rc;
}

int tide_base64_enc(const char *p, size_t n, tide_buf_t *out) {
  static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  int rc = tide_buf_reserve(out, (n + 2) / 3 * 4);
  if (rc) return rc;
  const unsigned char *q = (const unsigned char *)p;
  char *o = out->data + out->len;
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)q[i] << 16 | (uint32_t)q[i + 1] << 8 | q[i + 2];
    *o++ = abc[v >> 18];
    *o++ = abc[(v >> 12) & 63];
    *o++ = abc[(v >> 6) & 63];
    *o++ = abc[v & 63];
  }
  if (i < n) {
    uint32_t v = (uint32_t)q[i] << 16 | (i + 1 < n ? (uint32_t)q[i + 1] << 8 : 0);
    *o++ = abc[v >> 18];
    *o++ = abc[(v >> 12) & 63];
    *o++ = i + 1 < n ? abc[(v >> 6) & 63] : '=';
    *o++ = '=';
  }
  out->len = (size_t)(o - out->data);
  return 0;
}

/* ---- kept lines ---------------------------------------------------------- */

#define LINES_KEEP_CAP (1u << 20) /* a drained text buffer larger than this is given back */


int tide_lines_add(tide_lines_t *l, const char *p, size_t n) {
  tide_buf_t *t = &l->text;
  if (t->cap - t->len < n + 1 && l->head > 0 && l->head >= t->len / 2) {
    /* mostly forgotten: slide down before growing */
    memmove(t->data, t->data + l->head, t->len - l->head);
    t->len -= l->head;
    l->head = 0;
  }
  int rc = tide_buf_reserve(t, n + 1);
  if (rc) return rc;
  memcpy(t->data + t->len, p, n);
  t->data[t->len + n] = '\n';
  t->len += n + 1;
  l->count++;
  return 0;
}

/* The offset in text of line k, scanning from line i at offset off
 * (i <= k <= count). */
static size_t line_at(const tide_lines_t *l, uint64_t i, size_t off, uint64_t k) {
  const tide_buf_t *t = &l->text;
  if (k == l->count) return t->len;
  for (; i < k; i++) {
    const char *lf = memchr(t->data + off, '\n', t->len - off);
    off = (size_t)(lf - t->data) + 1;
  }
  return off;
}

int tide_lines_text(const tide_lines_t *l, uint64_t from, uint64_t to, const char **p, size_t *n) {
  if (from < l->base || from > to || to > l->count) return TIDE_EINVAL;
  size_t a = line_at(l, l->base, l->head, from), b = line_at(l, from, a, to);
  *p = l->text.data ? l->text.data + a : "";
  *n = b - a;
  return 0;
}

void tide_lines_forget(tide_lines_t *l, uint64_t upto) {
  if (upto > l->count) upto = l->count;
  if (upto <= l->base) return;
  l->head = line_at(l, l->base, l->head, upto);
  l->base = upto;
  if (l->head == l->text.len) { /* drained */
    l->head = l->text.len = 0;
    if (l->text.cap > LINES_KEEP_CAP) tide_buf_free(&l->text);
  }
}

void tide_lines_free(tide_lines_t *l) {
  tide_buf_free(&l->text);
  memset(l, 0, sizeof *l);
}
