/*
 * registry.c: compatibility between schema versions and projection of rows
 * across versions (rules in registry.h).
 */
#include "registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "jsonl.h"

static const char *const compat_names[] = {"none", "backward", "forward", "full", "backward_transitive",
                                           "forward_transitive", "full_transitive"};

const char *tide_compat_name(tide_compat_t m) {
  return (unsigned)m <= TIDE_COMPAT_FULL_TRANSITIVE ? compat_names[m] : "?";
}

int tide_compat_parse(const char *s, tide_compat_t *out) {
  for (int i = 0; i <= TIDE_COMPAT_FULL_TRANSITIVE; i++)
    if (!strcmp(s, compat_names[i])) {
      *out = (tide_compat_t)i;
      return 0;
    }
  return TIDE_EINVAL;
}

int tide_schema_readable(const tide_schema_t *r, const tide_schema_t *w, int reader_is_old, tide_err_t *err) {
  for (uint32_t i = 0; i < r->nfields; i++) {
    const tide_field_t *f = &r->fields[i];
    int j = tide_schema_find(w, f->name, f->name_len);
    int fillable = f->nullable || f->default_json;
    if (j < 0) {
      if (fillable) continue;
      return tide_err_set(err, TIDE_ESCHEMA,
                          reader_is_old ? "field '%s' was removed but has no default and is not nullable"
                                        : "field '%s' was added without a default and is not nullable",
                          f->name);
    }
    const tide_field_t *g = &w->fields[j];
    if (g->type != f->type && !(g->type == TIDE_T_INT && f->type == TIDE_T_DOUBLE)) {
      tide_type_t old = reader_is_old ? f->type : g->type, new = reader_is_old ? g->type : f->type;
      return tide_err_set(err, TIDE_ESCHEMA, "field '%s': type changed from %s to %s", f->name,
                          tide_type_name(old), tide_type_name(new));
    }
    if (g->nullable && !fillable)
      return tide_err_set(err, TIDE_ESCHEMA, reader_is_old ? "field '%s' became nullable" : "field '%s' became NOT NULL",
                          f->name);
  }
  return 0;
}

int tide_compat_check(tide_compat_t mode, tide_schema_t *const *versions, uint32_t n, const tide_schema_t *next,
                      tide_err_t *err) {
  if (mode == TIDE_COMPAT_NONE || n == 0) return 0;
  int transitive = mode >= TIDE_COMPAT_BACKWARD_TRANSITIVE;
  int back = mode == TIDE_COMPAT_BACKWARD || mode == TIDE_COMPAT_FULL || mode == TIDE_COMPAT_BACKWARD_TRANSITIVE ||
             mode == TIDE_COMPAT_FULL_TRANSITIVE;
  int fwd = mode == TIDE_COMPAT_FORWARD || mode == TIDE_COMPAT_FULL || mode == TIDE_COMPAT_FORWARD_TRANSITIVE ||
            mode == TIDE_COMPAT_FULL_TRANSITIVE;
  /* newest first, so the message names the closest version that breaks */
  for (uint32_t k = n; k-- > (transitive ? 0 : n - 1);) {
    tide_err_t e = {0};
    int rc = 0;
    if (back) rc = tide_schema_readable(next, versions[k], 0, &e);
    if (!rc && fwd) rc = tide_schema_readable(versions[k], next, 1, &e);
    if (rc) {
      if (k == n - 1)
        return tide_err_set(err, rc, "%s, not allowed under %s", e.msg, tide_compat_name(mode));
      return tide_err_set(err, rc, "%s, not allowed under %s (against version %u)", e.msg, tide_compat_name(mode),
                          k + 1);
    }
  }
  return 0;
}

/* ----------------------------------------------------------- projection --- */

typedef struct {
  int src;      /* column of `from`, or -1: fill */
  int widen;    /* int -> double */
  int dflt;     /* 1: fill NULLs (and missing) with the default from `defaults` */
} pmap_t;

struct tide_projection {
  tide_schema_t *from, *to;
  pmap_t *map;
  tide_batch_t *defaults; /* one row in schema `to`: each field's default, or NULL */
};

void tide_projection_free(tide_projection_t *p) {
  if (!p) return;
  tide_schema_unref(p->from);
  tide_schema_unref(p->to);
  tide_batch_free(p->defaults);
  free(p->map);
  free(p);
}

/* Decode every default of `to` into one row, reusing the JSON decoder
 * (which already turns JSON text into a typed value of a field's type) on
 * the line {"f1": <default>, ...}. Fields without a default decode as NULL,
 * through a copy of the schema where every field is nullable. The row's
 * columns have the types of `to`, so cells copy across directly. */
static int decode_defaults(const tide_schema_t *to, tide_batch_t **out, tide_err_t *err) {
  tide_schema_t *relaxed = tide_schema_new();
  tide_json_dec_t *d = NULL;
  tide_batch_t *b = NULL;
  tide_buf_t line = TIDE_BUF_INIT;
  int rc = relaxed ? tide_buf_putc(&line, '{') : -ENOMEM;
  for (uint32_t i = 0; i < to->nfields && !rc; i++) {
    const tide_field_t *f = &to->fields[i];
    rc = tide_schema_add(relaxed, f->name, f->name_len, f->type, 1, NULL, err);
    if (!rc && i) rc = tide_buf_putc(&line, ',');
    if (!rc) rc = tide_json_quote(&line, f->name, f->name_len);
    if (!rc) rc = tide_buf_putc(&line, ':');
    if (!rc) rc = tide_buf_puts(&line, f->default_json ? f->default_json : "null");
  }
  if (!rc) rc = tide_buf_putc(&line, '}');
  if (!rc && (!(d = tide_json_dec_new(relaxed, 0)) || !(b = tide_batch_new(relaxed, 1)))) rc = -ENOMEM;
  if (!rc) rc = tide_json_dec_line(d, b, line.data, line.len, err);
  tide_buf_free(&line);
  tide_json_dec_free(d);
  tide_schema_unref(relaxed);
  if (rc) {
    tide_batch_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

int tide_projection_new(tide_schema_t *from, tide_schema_t *to, int to_is_old, tide_projection_t **out,
                        tide_err_t *err) {
  int rc = tide_schema_readable(to, from, to_is_old, err);
  if (rc) return rc;
  tide_projection_t *p = calloc(1, sizeof *p);
  if (!p || !(p->map = calloc(to->nfields ? to->nfields : 1, sizeof *p->map))) {
    free(p);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  p->from = tide_schema_ref(from);
  p->to = tide_schema_ref(to);
  for (uint32_t i = 0; i < to->nfields; i++) {
    const tide_field_t *f = &to->fields[i];
    int j = tide_schema_find(from, f->name, f->name_len);
    p->map[i].src = j;
    p->map[i].widen = j >= 0 && from->fields[j].type == TIDE_T_INT && f->type == TIDE_T_DOUBLE;
    p->map[i].dflt = f->default_json != NULL;
  }
  if ((rc = decode_defaults(to, &p->defaults, err))) {
    tide_projection_free(p);
    return rc;
  }
  *out = p;
  return 0;
}

/* Set column c of dst's current row from row i of column sc. */
static int copy_cell(tide_batch_t *dst, uint32_t c, const tide_col_t *sc, uint32_t i, int widen) {
  if (tide_col_is_null(sc, i)) return 0;
  switch (sc->type) {
  case TIDE_T_BOOL: tide_batch_set_bool(dst, c, tide_col_bool(sc, i)); return 0;
  case TIDE_T_DOUBLE: tide_batch_set_f64(dst, c, tide_col_f64(sc, i)); return 0;
  case TIDE_T_STRING:
  case TIDE_T_JSON: {
    size_t len;
    const char *s = tide_col_str(sc, i, &len);
    return tide_batch_set_str(dst, c, s, len);
  }
  default:
    if (widen) tide_batch_set_f64(dst, c, (double)tide_col_i64(sc, i));
    else tide_batch_set_i64(dst, c, tide_col_i64(sc, i));
    return 0;
  }
}

int tide_projection_apply(const tide_projection_t *p, const tide_batch_t *src, uint32_t lo, uint32_t hi,
                          tide_batch_t *dst) {
  uint32_t nf = p->to->nfields;
  int rc = tide_batch_reserve(dst, hi - lo);
  for (uint32_t i = lo; i < hi && !rc; i++) {
    if ((rc = tide_batch_row_begin(dst))) break;
    for (uint32_t c = 0; c < nf && !rc; c++) {
      const pmap_t *m = &p->map[c];
      int null = m->src < 0 || tide_col_is_null(&src->cols[m->src], i);
      if (!null) rc = copy_cell(dst, c, &src->cols[m->src], i, m->widen);
      else if (m->dflt) rc = copy_cell(dst, c, &p->defaults->cols[c], 0, 0);
    }
    if (rc) tide_batch_row_abort(dst);
    else tide_batch_row_commit(dst);
  }
  return rc;
}
