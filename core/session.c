/*
 * session.c: session windows over core/agg (rules and layout in
 * session.h).
 *
 *   a        the sessions: an aggregation keyed by (k1..kK, session)
 *            with aggregates (a1..aM, start = min(t), last = max(t)); the
 *            session number makes a key unique, so the rows of a new run
 *            can go into a group of their own and fold into a stored
 *            session afterwards
 *   k        the keys that have sessions: an aggregation keyed by
 *            (k1..kK) with no aggregate; its gid is the key's kid
 *   v[nv]    one entry per session: start, last, sid, session number,
 *            kid; sorted by (kid, start)
 *
 * A push sorts the valid rows by (kid, t, row), then walks the keys in
 * kid order, copying the entries of keys without rows and sweeping the
 * others into a new index. The rows then go into `a` in one update: in
 * their input order, or in event-time order when a first/last aggregate
 * needs it and the input order differs. Then the fix-ups: the parts of a
 * run fold into its survivor, and the folded groups leave in one remove.
 */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vec.h"

#define NONE UINT32_MAX

typedef struct sess {
  int64_t start, last; /* earliest and latest event time */
  uint64_t sid;        /* the group's state id in a (0 until the push's update) */
  int64_t num;         /* session number: the last key of a */
  uint32_t kid;        /* the key's gid in k */
  uint32_t rnext;      /* while restoring: the key's next entry, or NONE */
} sess_t;

struct tide_session {
  tide_agg_t *a, *k;
  tide_schema_t *keys, *akeys, *out;
  uint32_t nkeys, nspecs, wpos;
  int64_t gap;
  tide_agg_spec_t *specs; /* kinds and argument types (names not kept) */
  int firstlast; /* a first or last aggregate: rows go in in event-time order */
  sess_t *v;
  uint32_t nv, capv;
  int restoring;  /* v is in restore order; rhead/rnext list each key's */
  uint32_t *rhead; /* per kid while restoring */
  uint32_t caprhead;
  int64_t next_num;
  uint64_t max_sid, mark; /* sessions with sid < mark are in the checkpoint */
  uint64_t *gone;         /* their sids once removed: the deletes */
  size_t ngone, capgone;
  int poisoned;
};

/* x + y, saturated to the int64 range. */
static int64_t sat_add(int64_t x, int64_t y) {
  int64_t r;
  return __builtin_add_overflow(x, y, &r) ? (y > 0 ? INT64_MAX : INT64_MIN) : r;
}

/* The end of a session whose latest time is last. */
static inline int64_t end_of(const tide_session_t *s, int64_t last) { return sat_add(last, s->gap); }

/* ----------------------------------------------------------- create --- */

/* Check that out is keys with window_start/window_end at wpos, then one
 * field per result column of the aggregation `probe` after its keys. */
static int check_out(const tide_session_t *s, const tide_schema_t *res, tide_err_t *err) {
  const tide_schema_t *o = s->out;
  uint32_t want = s->nkeys + 2 + s->nspecs;
  if (o->nfields != want)
    return tide_err_set(err, TIDE_EINVAL, "session output schema: %u fields, expected %u (keys, window, aggregates)",
                        o->nfields, want);
  for (uint32_t j = 0; j < o->nfields; j++) {
    tide_type_t t;
    if (j == s->wpos || j == s->wpos + 1) t = TIDE_T_TIMESTAMP;
    else if (j < s->wpos) t = s->keys->fields[j].type;
    else if (j < s->nkeys + 2) t = s->keys->fields[j - 2].type;
    else t = res->fields[s->nkeys + 1 + (j - s->nkeys - 2)].type;
    if (o->fields[j].type != t)
      return tide_err_set(err, TIDE_EINVAL, "session output schema: field '%s' is %s, expected %s", o->fields[j].name,
                          tide_type_name(o->fields[j].type), tide_type_name(t));
  }
  return 0;
}

/* Create (session.h). */
int tide_session_new(tide_schema_t *keys, const tide_agg_spec_t *specs, uint32_t nspecs, int64_t gap,
                     tide_schema_t *out, uint32_t wpos, tide_session_t **sp, tide_err_t *err) {
  *sp = NULL;
  if (gap <= 0) return tide_err_set(err, TIDE_EINVAL, "session window: gap must be > 0, got %lld", (long long)gap);
  if (wpos > keys->nfields)
    return tide_err_set(err, TIDE_EINVAL, "session window: window position %u past the %u keys", wpos, keys->nfields);
  tide_session_t *s = calloc(1, sizeof *s);
  tide_agg_spec_t *as = calloc(nspecs + 2, sizeof *as);
  char (*names)[16] = calloc(nspecs + 2, sizeof *names);
  if (!s || !as || !names) {
    free(s);
    free(as);
    free(names);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  s->keys = tide_schema_ref(keys);
  s->out = tide_schema_ref(out);
  s->nkeys = keys->nfields;
  s->nspecs = nspecs;
  s->wpos = wpos;
  s->gap = gap;
  s->next_num = 1;
  s->mark = 1;
  int rc = 0;
  /* the session aggregation's columns have names of their own, which
   * cannot clash with the user's */
  tide_schema_t *kk = tide_schema_new(), *ak = tide_schema_new();
  if (!kk || !ak) rc = tide_err_set(err, -ENOMEM, "out of memory");
  for (uint32_t i = 0; !rc && i < s->nkeys; i++) {
    char name[16];
    int len = snprintf(name, sizeof name, "k%u", i + 1);
    const tide_field_t *f = &keys->fields[i];
    rc = tide_schema_add(kk, name, (size_t)len, f->type, f->nullable, NULL, err);
    if (!rc) rc = tide_schema_add(ak, name, (size_t)len, f->type, f->nullable, NULL, err);
  }
  if (!rc) rc = tide_schema_add(ak, "session", 7, TIDE_T_INT, 0, NULL, err);
  if (!(s->specs = calloc(nspecs ? nspecs : 1, sizeof *s->specs))) rc = tide_err_set(err, -ENOMEM, "out of memory");
  for (uint32_t i = 0; !rc && i < nspecs; i++) {
    as[i] = specs[i];
    s->specs[i] = specs[i];
    s->specs[i].name = NULL;
    snprintf(names[i], sizeof names[i], "a%u", i + 1);
    as[i].name = names[i];
    s->firstlast |= specs[i].kind == TIDE_AGG_FIRST || specs[i].kind == TIDE_AGG_LAST;
  }
  as[nspecs] = (tide_agg_spec_t){TIDE_AGG_MIN, TIDE_T_TIMESTAMP, "start"};
  as[nspecs + 1] = (tide_agg_spec_t){TIDE_AGG_MAX, TIDE_T_TIMESTAMP, "last"};
  if (!rc) rc = tide_agg_new(ak, as, nspecs + 2, &s->a, err);
  if (!rc) rc = tide_agg_new(kk, NULL, 0, &s->k, err);
  if (!rc) rc = check_out(s, tide_agg_schema(s->a), err);
  tide_schema_unref(kk);
  s->akeys = ak;
  free(as);
  free(names);
  if (rc) {
    tide_session_free(s);
    return rc;
  }
  *sp = s;
  return 0;
}

void tide_session_free(tide_session_t *s) {
  if (!s) return;
  tide_agg_free(s->a);
  tide_agg_free(s->k);
  tide_schema_unref(s->keys);
  tide_schema_unref(s->akeys);
  tide_schema_unref(s->out);
  free(s->specs);
  free(s->v);
  free(s->rhead);
  free(s->gone);
  free(s);
}

tide_schema_t *tide_session_schema(const tide_session_t *s) { return s->out; }

uint64_t tide_session_count(const tide_session_t *s) { return s->nv; }

size_t tide_session_bytes(const tide_session_t *s) {
  return sizeof *s + tide_agg_bytes(s->a) + tide_agg_bytes(s->k) + (size_t)s->capv * sizeof *s->v +
         (size_t)s->caprhead * sizeof *s->rhead + s->capgone * sizeof *s->gone;
}

/* ------------------------------------------------------------ index --- */

static int cmp_sess(const void *x, const void *y) {
  const sess_t *a = x, *b = y;
  if (a->kid != b->kid) return a->kid < b->kid ? -1 : 1;
  return (a->start > b->start) - (a->start < b->start);
}

/* Leave the restore phase: sort the index by (kid, start). */
static void finish_restore(tide_session_t *s) {
  if (!s->restoring) return;
  qsort(s->v, s->nv, sizeof *s->v, cmp_sess);
  free(s->rhead);
  s->rhead = NULL;
  s->caprhead = 0;
  s->restoring = 0;
}

/* Room for n entries in *v (capacity *cap). 0 or -ENOMEM. */
static int reserve_sess(sess_t **v, uint32_t *cap, size_t n) {
  if (n <= *cap) return 0;
  if (n > UINT32_MAX - 1) return TIDE_ETOOBIG;
  size_t c = *cap ? *cap : 64;
  while (c < n) c *= 2;
  if (c > UINT32_MAX - 1) c = UINT32_MAX - 1;
  sess_t *p = realloc(*v, c * sizeof *p);
  if (!p) return -ENOMEM;
  *v = p;
  *cap = (uint32_t)c;
  return 0;
}

/* Note the sids[0..n) of removed sessions that are in the checkpoint. */
static int note_gone(tide_session_t *s, uint64_t sid) {
  if (sid >= s->mark) return 0;
  if (s->ngone == s->capgone) {
    size_t cap = s->capgone ? s->capgone * 2 : 64;
    uint64_t *p = realloc(s->gone, cap * sizeof *p);
    if (!p) return -ENOMEM;
    s->gone = p;
    s->capgone = cap;
  }
  s->gone[s->ngone++] = sid;
  return 0;
}

/* The gid of session e's group. */
static uint32_t gid_of(const tide_session_t *s, uint64_t sid) {
  uint32_t g = NONE;
  tide_agg_gid_of(s->a, sid, &g);
  return g;
}

/* ------------------------------------------------------------- push --- */

typedef struct item {
  int64_t t;
  uint32_t kid, j; /* j: the row's place among the valid rows */
} item_t;

static int cmp_item(const void *x, const void *y) {
  const item_t *a = x, *b = y;
  if (a->kid != b->kid) return a->kid < b->kid ? -1 : 1;
  if (a->t != b->t) return a->t < b->t ? -1 : 1;
  return (a->j > b->j) - (a->j < b->j);
}

static int cmp_item_t(const void *x, const void *y) {
  const item_t *a = x, *b = y;
  if (a->t != b->t) return a->t < b->t ? -1 : 1;
  return (a->j > b->j) - (a->j < b->j);
}

/* Sort it[0..m) by (kid, t, j); nk kids. tmp has m entries. A counting
 * sort by kid (stable, so j ascends within a kid) when the kids are not
 * many more than the rows; then each kid's run by (t, j) unless it is in
 * time order already, as in-order streams are. */
static void sort_items(item_t *it, item_t *tmp, uint32_t m, uint32_t nk, uint32_t *count) {
  if (!count) {
    qsort(it, m, sizeof *it, cmp_item);
    return;
  }
  memset(count, 0, ((size_t)nk + 1) * sizeof *count);
  for (uint32_t i = 0; i < m; i++) count[it[i].kid + 1]++;
  for (uint32_t k = 0; k < nk; k++) count[k + 1] += count[k];
  for (uint32_t i = 0; i < m; i++) tmp[count[it[i].kid]++] = it[i];
  memcpy(it, tmp, (size_t)m * sizeof *it);
  for (uint32_t p = 0, q; p < m; p = q) {
    int sorted = 1;
    for (q = p + 1; q < m && it[q].kid == it[p].kid; q++)
      if (it[q].t < it[q - 1].t) sorted = 0;
    if (!sorted) qsort(it + p, q - p, sizeof *it, cmp_item_t);
  }
}

/* A run with stored sessions, to settle after the update. */
typedef struct fixup {
  uint32_t w;      /* its entry in the new index */
  uint32_t s0, s1; /* its stored sessions: old index [s0, s1); s0 survives */
  uint32_t p0;     /* its first row (sorted position), or NONE */
  int direct;      /* the rows went straight into s0's group */
  int64_t rmin, rmax;
} fixup_t;

/* A new session, whose sid the update gives. */
typedef struct fresh {
  uint32_t w, p0;
} fresh_t;


/* The scratch of one push, freed at its end. */
typedef struct push {
  uint32_t m;       /* valid rows */
  uint32_t *rows;   /* m: their row numbers in the input */
  item_t *it, *tmp; /* m each */
  uint32_t *kid;    /* m: per valid row its kid; then per fed row its gid in a */
  uint32_t *count;  /* kids + 1, for the counting sort (or NULL) */
  int64_t *num;     /* m: per sorted position, the session number it goes to */
  uint32_t *perm;   /* m: fed row -> input row */
  sess_t *nv;       /* the new index */
  uint32_t nnv, capnv;
  fixup_t *fx;
  uint32_t nfx;
  fresh_t *fr;
  uint32_t nfr;
  uint32_t *drop; /* gids leaving a */
  uint32_t ndrop;
  uint64_t *before; /* sids that were changes before the push */
  uint32_t nbefore;
  tide_col_t *cols; /* gathered columns */
  uint32_t ncols;
  int sorted_feed; /* rows go into a in sorted order (else in input order) */
} push_t;

static void push_free(push_t *p) {
  free(p->rows);
  free(p->it);
  free(p->tmp);
  free(p->kid);
  free(p->count);
  free(p->num);
  free(p->perm);
  free(p->nv);
  free(p->fx);
  free(p->fr);
  free(p->drop);
  free(p->before);
  for (uint32_t i = 0; p->cols && i < p->ncols; i++) tide_col_free(&p->cols[i]);
  free(p->cols);
}

/* The place among the fed rows of the row at sorted position q. */
static inline uint32_t fed_at(const push_t *p, uint32_t q) { return p->sorted_feed ? q : p->it[q].j; }

/* Sweep one key: its stored sessions s->v[l0, l1) and its rows
 * p->it[r0, r1) (by time), in start order (a stored session first on a
 * tie), into runs; append one entry per run to the new index and note
 * what the update (each row's session number) and the fix-ups must do. */
static void sweep_key(tide_session_t *s, push_t *p, uint32_t l0, uint32_t l1, uint32_t r0, uint32_t r1) {
  const sess_t *L = s->v;
  const item_t *it = p->it;
  uint32_t kid = it[r0].kid, i = l0, r = r0;
  while (i < l1 || r < r1) {
    /* one run: its stored sessions [s0, i), its rows [q0, r) */
    uint32_t s0 = i, q0 = r;
    int64_t end = INT64_MIN;
    while (i < l1 || r < r1) {
      int stored = i < l1 && (r == r1 || L[i].start <= it[r].t);
      int64_t st = stored ? L[i].start : it[r].t;
      if ((i > s0 || r > q0) && st > end) break;
      int64_t e = end_of(s, stored ? L[i].last : it[r].t);
      if (e > end) end = e;
      if (stored) i++;
      else r++;
    }
    sess_t ent;
    if (s0 == i) { /* rows only: a new session */
      ent = (sess_t){it[q0].t, it[r - 1].t, 0, s->next_num++, kid, NONE};
      for (uint32_t q = q0; q < r; q++) p->num[q] = ent.num;
      p->fr[p->nfr++] = (fresh_t){p->nnv, q0};
    } else if (q0 == r && i - s0 == 1) { /* a stored session no row touched */
      ent = L[s0];
    } else { /* stored sessions (and rows) that fold into the first one */
      ent = L[s0];
      ent.kid = kid;
      fixup_t fx = {p->nnv, s0, i, NONE, 0, 0, 0};
      if (L[i - 1].last > ent.last) ent.last = L[i - 1].last;
      if (r > q0) {
        fx.p0 = q0;
        fx.rmin = it[q0].t;
        fx.rmax = it[r - 1].t;
        /* first keeps the stored value on a tie, last takes the rows'
         * (they arrived later): the rows can go straight into the
         * survivor's group when they neither start before it nor end
         * before its latest row */
        fx.direct = fx.rmin >= L[s0].start && fx.rmax >= L[s0].last;
        int64_t num = fx.direct ? L[s0].num : s->next_num++;
        for (uint32_t q = q0; q < r; q++) p->num[q] = num;
        if (fx.rmin < ent.start) ent.start = fx.rmin;
        if (fx.rmax > ent.last) ent.last = fx.rmax;
      }
      p->fx[p->nfx++] = fx;
    }
    ent.rnext = NONE;
    p->nv[p->nnv++] = ent;
  }
}

/* Check the shape of a push's input. 0 or TIDE_EINVAL. */
static int check_push(const tide_session_t *s, const tide_batch_t *keys, const tide_col_t *t,
                      const tide_col_t *const *args, tide_err_t *err) {
  if (keys->schema->nfields != s->nkeys)
    return tide_err_set(err, TIDE_EINVAL, "session window: key batch has %u columns, expected %u",
                        keys->schema->nfields, s->nkeys);
  for (uint32_t k = 0; k < s->nkeys; k++)
    if (keys->cols[k].type != s->keys->fields[k].type)
      return tide_err_set(err, TIDE_EINVAL, "session window: key column %u: expected %s, got %s", k,
                          tide_type_name(s->keys->fields[k].type), tide_type_name(keys->cols[k].type));
  if (!t || t->type != TIDE_T_TIMESTAMP)
    return tide_err_set(err, TIDE_EINVAL, "session window: the time column must be a timestamp, got %s",
                        t ? tide_type_name(t->type) : "none");
  for (uint32_t i = 0; i < s->nspecs; i++) {
    if (s->specs[i].kind == TIDE_AGG_COUNT_STAR) continue;
    if (!args || !args[i])
      return tide_err_set(err, TIDE_EINVAL, "session window: aggregate %u: no argument column", i);
    if (args[i]->type != s->specs[i].arg_type)
      return tide_err_set(err, TIDE_EINVAL, "session window: aggregate %u: the argument is %s, expected %s", i,
                          tide_type_name(args[i]->type), tide_type_name(s->specs[i].arg_type));
  }
  return 0;
}

static int cmp_u64(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return (a > b) - (a < b);
}

/* The sids of the changes, sorted, into p->before. 0 or -ENOMEM. */
static int note_before(const tide_session_t *s, push_t *p) {
  const uint32_t *g;
  uint32_t n = tide_agg_dirty(s->a, &g);
  if (!n) return 0;
  if (!(p->before = malloc((size_t)n * sizeof *p->before))) return -ENOMEM;
  for (uint32_t i = 0; i < n; i++) p->before[i] = tide_agg_sid(s->a, g[i]);
  qsort(p->before, n, sizeof *p->before, cmp_u64);
  p->nbefore = n;
  return 0;
}

/* The changes that were not changes before the push. */
static uint32_t count_updated(const tide_session_t *s, const push_t *p) {
  const uint32_t *g;
  uint32_t n = tide_agg_dirty(s->a, &g), m = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t sid = tide_agg_sid(s->a, g[i]);
    if (!p->nbefore || !bsearch(&sid, p->before, p->nbefore, sizeof sid, cmp_u64)) m++;
  }
  return m;
}

/* Pick the valid rows (time not NULL, not late) into p->rows. */
static int pick_rows(tide_session_t *s, const tide_col_t *t, uint32_t n, push_t *p, tide_session_feed_t *f) {
  if (!(p->rows = malloc((n ? n : 1) * sizeof *p->rows))) return -ENOMEM;
  if (f->late) memset(f->late, 0, n);
  /* late: t + gap <= bound, that is t <= bound - gap (none when that is
   * below every time) */
  int64_t lb = 0;
  int late = f->has_late && !__builtin_sub_overflow(f->late_bound, s->gap, &lb);
  const int64_t *tv = t->values;
  int nulls = t->valid && t->null_count;
  uint32_t m = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (nulls && tide_col_is_null(t, i)) {
      f->null_times++;
    } else if (late && tv[i] <= lb) {
      f->late_rows++;
      if (f->late) f->late[i] = 1;
    } else {
      p->rows[m++] = i;
    }
  }
  p->m = m;
  return 0;
}

/* The gathered rows perm[0..n) of column c, kept in p->cols. 0 or an
 * error code. */
static int gather(push_t *p, const tide_col_t *c, uint32_t n, const tide_col_t **out) {
  tide_col_t *g = &p->cols[p->ncols];
  int rc = tide_col_gather(c, p->perm, n, g);
  if (rc) return rc;
  p->ncols++;
  *out = g;
  return 0;
}

/* Settle the runs with stored sessions after the update: fold each run's
 * other stored sessions and its rows' own group into its survivor, first
 * and last by event time (ties: stored before rows), and list the folded
 * groups in p->drop. */
static int fix_runs(tide_session_t *s, push_t *p, const uint32_t *gid, tide_err_t *err) {
  const sess_t *L = s->v;
  for (uint32_t x = 0; x < p->nfx; x++) {
    const fixup_t *fx = &p->fx[x];
    uint32_t g1 = gid_of(s, L[fx->s0].sid);
    int64_t dmin = L[fx->s0].start, dmax = L[fx->s0].last;
    int drows = 0; /* dst's latest row is one of this push's */
    if (fx->p0 != NONE && fx->direct) {
      dmax = fx->rmax;
      drows = 1;
    }
    for (uint32_t k = fx->s0 + 1; k < fx->s1; k++) {
      uint32_t gk = gid_of(s, L[k].sid);
      unsigned fl = 0;
      if (dmax > L[k].last || (dmax == L[k].last && drows)) {
        fl |= TIDE_AGG_MERGE_LAST_DST;
      } else {
        dmax = L[k].last;
        drows = 0;
      }
      int rc = tide_agg_merge_ex(s->a, g1, gk, fl, err);
      if (rc) return rc;
      p->drop[p->ndrop++] = gk;
      if (note_gone(s, L[k].sid)) return tide_err_set(err, -ENOMEM, "out of memory");
    }
    if (fx->p0 != NONE && !fx->direct) {
      uint32_t gt = gid[fed_at(p, fx->p0)];
      unsigned fl = (fx->rmin < dmin ? TIDE_AGG_MERGE_FIRST_SRC : 0) | (fx->rmax < dmax ? TIDE_AGG_MERGE_LAST_DST : 0);
      int rc = tide_agg_merge_ex(s->a, g1, gt, fl, err);
      if (rc) return rc;
      p->drop[p->ndrop++] = gt;
    }
  }
  return 0;
}

/* Feed the valid rows into a (each with its session number), then give
 * the new sessions their sids and settle the runs. Every failure here
 * poisons the state (a half-applied push). */
static int feed(tide_session_t *s, push_t *p, const tide_batch_t *keys, const tide_col_t *t,
                const tide_col_t *const *args, tide_err_t *err) {
  uint32_t m = p->m, n = keys->nrows, nk = s->nkeys, ns = s->nspecs;
  int64_t *nums = malloc((size_t)m * sizeof *nums);
  const tide_col_t **av = calloc(ns + 2, sizeof *av);
  tide_col_t *kc = calloc(nk + 1, sizeof *kc);
  p->cols = calloc(nk + ns + 1, sizeof *p->cols);
  p->perm = malloc((size_t)m * sizeof *p->perm);
  int rc = nums && av && kc && p->cols && p->perm ? 0 : -ENOMEM;
  if (!rc) {
    if (p->sorted_feed) {
      for (uint32_t q = 0; q < m; q++) {
        p->perm[q] = p->rows[p->it[q].j];
        nums[q] = p->num[q];
      }
    } else {
      memcpy(p->perm, p->rows, (size_t)m * sizeof *p->perm);
      for (uint32_t q = 0; q < m; q++) nums[p->it[q].j] = p->num[q];
    }
    int view = !p->sorted_feed && m == n; /* the input's columns as they are */
    const tide_col_t *tc = t;
    for (uint32_t k = 0; !rc && k < nk; k++) {
      const tide_col_t *c = &keys->cols[k];
      if (!view) rc = gather(p, c, m, &c);
      if (!rc) kc[k] = *c;
    }
    for (uint32_t i = 0; !rc && i < ns; i++) {
      av[i] = s->specs[i].kind == TIDE_AGG_COUNT_STAR ? NULL : args[i];
      if (av[i] && !view) rc = gather(p, av[i], m, &av[i]);
    }
    if (!rc && !view) rc = gather(p, t, m, &tc);
    if (!rc) {
      av[ns] = av[ns + 1] = tc;
      kc[nk] = (tide_col_t){.type = TIDE_T_INT, .values = nums};
      tide_batch_t kb = {0};
      kb.schema = s->akeys;
      kb.nrows = kb.cap = m;
      kb.cols = kc;
      /* p->kid is free again: it takes the gid of each fed row */
      rc = tide_agg_update_gids(s->a, &kb, av, p->kid, err);
    } else {
      rc = tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "gathered strings too large" : "out of memory");
    }
  } else {
    rc = tide_err_set(err, rc, "out of memory");
  }
  free(nums);
  free(av);
  free(kc);
  if (rc) return rc;
  for (uint32_t x = 0; x < p->nfr; x++) {
    uint64_t sid = tide_agg_sid(s->a, p->kid[fed_at(p, p->fr[x].p0)]);
    p->nv[p->fr[x].w].sid = sid;
    if (sid > s->max_sid) s->max_sid = sid;
  }
  if ((rc = fix_runs(s, p, p->kid, err))) return rc;
  if (p->ndrop) {
    uint64_t *sids = NULL;
    uint32_t nout = 0;
    rc = tide_agg_remove(s->a, p->drop, p->ndrop, NULL, &sids, &nout, err);
    free(sids);
  }
  return rc;
}

/* Add a batch of rows (session.h). */
int tide_session_push(tide_session_t *s, const tide_batch_t *keys, const tide_col_t *t, const tide_col_t *const *args,
                      tide_session_feed_t *f, tide_err_t *err) {
  f->pushed = f->late_rows = f->null_times = f->updated = 0;
  if (s->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier push failed");
  int rc = check_push(s, keys, t, args, err);
  if (rc) return rc;
  finish_restore(s);
  push_t p = {0};
  uint32_t n = keys->nrows;
  if (pick_rows(s, t, n, &p, f) || note_before(s, &p)) {
    push_free(&p);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  uint32_t m = p.m;
  if (!m) {
    push_free(&p);
    return 0;
  }
  /* from here on a failure leaves the state half changed */
  p.it = malloc((size_t)m * sizeof *p.it);
  p.tmp = malloc((size_t)m * sizeof *p.tmp);
  p.kid = malloc((size_t)m * sizeof *p.kid);
  p.num = malloc((size_t)m * sizeof *p.num);
  rc = p.it && p.tmp && p.kid && p.num ? 0 : tide_err_set(err, -ENOMEM, "out of memory");
  /* the keys' kids: the valid rows' keys into k */
  if (!rc) {
    tide_batch_t kb = *keys;
    tide_col_t *kc = NULL;
    if (m < n) {
      kc = calloc(s->nkeys ? s->nkeys : 1, sizeof *kc);
      rc = kc ? 0 : -ENOMEM;
      for (uint32_t k = 0; !rc && k < s->nkeys; k++) rc = tide_col_gather(&keys->cols[k], p.rows, m, &kc[k]);
      kb.cols = kc;
      kb.nrows = kb.cap = m;
      if (rc) rc = tide_err_set(err, rc, "out of memory");
    }
    kb.schema = s->keys;
    if (!rc) rc = tide_agg_update_gids(s->k, &kb, NULL, p.kid, err);
    tide_agg_clear_dirty(s->k);
    for (uint32_t k = 0; kc && k < s->nkeys; k++) tide_col_free(&kc[k]);
    free(kc);
  }
  /* sort by (kid, t, row) */
  if (!rc) {
    const int64_t *tv = t->values;
    for (uint32_t j = 0; j < m; j++) p.it[j] = (item_t){tv[p.rows[j]], p.kid[j], j};
    uint32_t nk = (uint32_t)tide_agg_groups(s->k);
    if ((size_t)nk <= 4 * (size_t)m + 1024) p.count = malloc(((size_t)nk + 1) * sizeof *p.count);
    sort_items(p.it, p.tmp, m, nk, p.count);
    /* with first/last, rows go in in event-time order unless, within
     * every key, the input order is that order already */
    for (uint32_t q = 1; s->firstlast && q < m && !p.sorted_feed; q++)
      p.sorted_feed = p.it[q].kid == p.it[q - 1].kid && p.it[q].j < p.it[q - 1].j;
  }
  /* sweep every key with rows; copy the others' entries */
  if (!rc) {
    p.fx = malloc((size_t)m * sizeof *p.fx);
    p.fr = malloc((size_t)m * sizeof *p.fr);
    p.drop = malloc(((size_t)m + s->nv) * sizeof *p.drop);
    rc = p.fx && p.fr && p.drop ? reserve_sess(&p.nv, &p.capnv, (size_t)s->nv + m) : -ENOMEM;
    if (rc) rc = tide_err_set(err, rc, "out of memory");
  }
  if (!rc) {
    uint32_t vi = 0;
    for (uint32_t q0 = 0, q1; q0 < m; q0 = q1) {
      uint32_t kid = p.it[q0].kid;
      for (q1 = q0 + 1; q1 < m && p.it[q1].kid == kid; q1++) {
      }
      uint32_t l0 = vi;
      while (l0 < s->nv && s->v[l0].kid < kid) l0++;
      if (l0 > vi) memcpy(p.nv + p.nnv, s->v + vi, (size_t)(l0 - vi) * sizeof *p.nv);
      p.nnv += l0 - vi;
      uint32_t l1 = l0;
      while (l1 < s->nv && s->v[l1].kid == kid) l1++;
      sweep_key(s, &p, l0, l1, q0, q1);
      vi = l1;
    }
    if (vi < s->nv) memcpy(p.nv + p.nnv, s->v + vi, (size_t)(s->nv - vi) * sizeof *p.nv);
    p.nnv += s->nv - vi;
    rc = feed(s, &p, keys, t, args, err);
  }
  if (rc) {
    s->poisoned = 1;
    push_free(&p);
    return rc;
  }
  sess_t *old = s->v;
  s->v = p.nv;
  s->nv = p.nnv;
  s->capv = p.capnv;
  p.nv = old;
  f->pushed = m;
  f->updated = count_updated(s, &p);
  push_free(&p);
  return 0;
}

/* Push one batch of keys, time, arguments (session.h). */
int tide_session_push_batch(tide_session_t *s, const tide_batch_t *b, tide_session_feed_t *f, tide_err_t *err) {
  uint32_t nargs = 0, nf = b->schema->nfields;
  for (uint32_t i = 0; i < s->nspecs; i++) nargs += s->specs[i].kind != TIDE_AGG_COUNT_STAR;
  if (nf != s->nkeys + 1 + nargs)
    return tide_err_set(err, TIDE_EINVAL, "session window: the batch has %u columns, expected %u (keys, time, arguments)",
                        nf, s->nkeys + 1 + nargs);
  const tide_col_t **args = calloc(s->nspecs ? s->nspecs : 1, sizeof *args);
  if (!args) return tide_err_set(err, -ENOMEM, "out of memory");
  for (uint32_t i = 0, c = s->nkeys + 1; i < s->nspecs; i++)
    if (s->specs[i].kind != TIDE_AGG_COUNT_STAR) args[i] = &b->cols[c++];
  tide_batch_t kb = *b;
  kb.schema = s->keys;
  int rc = tide_session_push(s, &kb, &b->cols[s->nkeys], args, f, err);
  free(args);
  return rc;
}

/* ----------------------------------------------------------- output --- */

static void free_batch(void *b) { tide_batch_free(b); }

/* The output rows of b (rows of a's result schema, consumed): the keys
 * with window_start and window_end at wpos, then the aggregates. The
 * columns are b's own (window_end is `last` moved by the gap, in place),
 * so the output borrows b, which goes with it. */
static int to_output(const tide_session_t *s, tide_batch_t *b, tide_batch_t **out, tide_err_t *err) {
  uint32_t nk = s->nkeys, ns = s->nspecs, nf = s->out->nfields;
  tide_col_t *cols = calloc(nf, sizeof *cols);
  if (!cols) {
    tide_batch_free(b);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  tide_col_t *last = &b->cols[nk + 2 + ns];
  int64_t *lv = last->values;
  for (uint32_t i = 0; i < b->nrows; i++) lv[i] = end_of(s, lv[i]);
  for (uint32_t j = 0; j < nf; j++) {
    if (j == s->wpos) cols[j] = b->cols[nk + 1 + ns];
    else if (j == s->wpos + 1) cols[j] = *last;
    else if (j < s->wpos) cols[j] = b->cols[j];
    else if (j < nk + 2) cols[j] = b->cols[j - 2];
    else cols[j] = b->cols[nk + 1 + (j - nk - 2)];
  }
  *out = tide_batch_borrowed(s->out, b->nrows, cols, b, free_batch);
  free(cols);
  if (!*out) {
    tide_batch_free(b);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  return 0;
}

/* Every session's row (session.h). */
int tide_session_result(tide_session_t *s, tide_batch_t **out, tide_err_t *err) {
  *out = NULL;
  if (s->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier push failed");
  tide_batch_t *b;
  int rc = tide_agg_result(s->a, &b, err);
  return rc ? rc : to_output(s, b, out, err);
}

/* Remove the sessions the watermark closed (session.h). */
int tide_session_evict(tide_session_t *s, int64_t watermark, tide_batch_t **out, tide_err_t *err) {
  *out = NULL;
  if (s->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier push failed");
  finish_restore(s);
  /* due: last + gap <= watermark, that is last <= watermark - gap */
  int64_t bound = 0;
  int any = !__builtin_sub_overflow(watermark, s->gap, &bound);
  uint32_t nd = 0;
  for (uint32_t i = 0; any && i < s->nv; i++) nd += s->v[i].last <= bound;
  tide_batch_t *b = NULL;
  if (!nd) {
    int rc = tide_agg_result_of(s->a, NULL, 0, &b, err);
    return rc ? rc : to_output(s, b, out, err);
  }
  uint32_t *gids = malloc((size_t)nd * sizeof *gids), *kgone = malloc((size_t)nd * sizeof *kgone), m = 0, nkg = 0;
  if (!gids || !kgone) {
    free(gids);
    free(kgone);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  for (uint32_t i = 0; i < s->nv; i++)
    if (s->v[i].last <= bound) gids[m++] = gid_of(s, s->v[i].sid);
  uint64_t *sids = NULL;
  uint32_t nout = 0;
  int rc = tide_agg_remove(s->a, gids, nd, &b, &sids, &nout, err);
  free(gids);
  if (rc) {
    free(kgone);
    return rc;
  }
  /* the index without them; keys left without a session leave k, and
   * the kids above them move down */
  uint32_t w = 0;
  for (uint32_t i = 0, j; i < s->nv; i = j) {
    uint32_t kid = s->v[i].kid, kept = 0;
    for (j = i; j < s->nv && s->v[j].kid == kid; j++) {
      if (s->v[j].last <= bound) {
        if (note_gone(s, s->v[j].sid)) rc = -ENOMEM;
        continue;
      }
      s->v[w] = s->v[j];
      s->v[w++].kid = kid - nkg;
      kept++;
    }
    if (!kept) kgone[nkg++] = kid;
  }
  s->nv = w;
  free(sids);
  if (!rc && nkg) {
    uint64_t *ks = NULL;
    uint32_t kn = 0;
    rc = tide_agg_remove(s->k, kgone, nkg, NULL, &ks, &kn, err);
    free(ks);
  }
  free(kgone);
  if (rc) {
    s->poisoned = 1;
    tide_batch_free(b);
    return tide_err_set(err, rc, "out of memory");
  }
  return to_output(s, b, out, err);
}

/* -------------------------------------------------- streaming state --- */

uint32_t tide_session_nchanged(const tide_session_t *s) {
  const uint32_t *g;
  return tide_agg_dirty(s->a, &g);
}

int tide_session_change(const tide_session_t *s, uint32_t i, uint64_t *sid, tide_buf_t *out, tide_err_t *err) {
  const uint32_t *g;
  uint32_t n = tide_agg_dirty(s->a, &g);
  if (i >= n) return tide_err_set(err, TIDE_EINVAL, "change %u does not exist (%u changes)", i, n);
  *sid = tide_agg_sid(s->a, g[i]);
  return out ? tide_agg_encode(s->a, g[i], out, err) : 0;
}

size_t tide_session_deleted(tide_session_t *s, const uint64_t **sids) {
  qsort(s->gone, s->ngone, sizeof *s->gone, cmp_u64);
  *sids = s->gone;
  return s->ngone;
}

void tide_session_clear_changes(tide_session_t *s) {
  tide_agg_clear_dirty(s->a);
  s->ngone = 0;
  s->mark = s->max_sid + 1;
}

/* --------------------------------------------------------- restore --- */

/* CRC-32 (IEEE 802.3, reflected), bitwise: only to recognise the records
 * of the session format before this one, which closed with it. */
static uint32_t crc32_ieee(const uint8_t *p, size_t n) {
  uint32_t c = 0xffffffffu;
  while (n--) {
    c ^= *p++;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0xedb88320u : c >> 1;
  }
  return ~c;
}

/* 1 when p[0..n) is a record of the old session format (version 1,
 * then start, end, keys, aggregates, closed by a CRC-32). */
static int old_format(const uint8_t *p, size_t n) {
  if (n < 1 + 8 + 8 + 4 + 4 + 4 || p[0] != 1) return 0;
  uint32_t sum = (uint32_t)p[n - 4] | (uint32_t)p[n - 3] << 8 | (uint32_t)p[n - 2] << 16 | (uint32_t)p[n - 1] << 24;
  return crc32_ieee(p, n - 4) == sum;
}

/* Enter the restore phase: each key's entries listed from rhead. */
static int start_restore(tide_session_t *s) {
  if (s->restoring) return 0;
  uint32_t nk = (uint32_t)tide_agg_groups(s->k);
  free(s->rhead);
  s->caprhead = nk > 64 ? nk : 64;
  if (!(s->rhead = malloc((size_t)s->caprhead * sizeof *s->rhead))) {
    s->caprhead = 0;
    return -ENOMEM;
  }
  for (uint32_t k = 0; k < s->caprhead; k++) s->rhead[k] = NONE;
  for (uint32_t i = 0; i < s->nv; i++) {
    s->v[i].rnext = s->rhead[s->v[i].kid];
    s->rhead[s->v[i].kid] = i;
  }
  s->restoring = 1;
  return 0;
}

/* err->msg, from tide_agg_restore, in the session's terms: "session
 * state: record N: ..." (its key is the session's key and number). */
static int restate(tide_err_t *err, int rc) {
  static const char agg[] = "aggregation state record ", dup[] = "its key already has a group";
  if (err && !strncmp(err->msg, agg, sizeof agg - 1)) {
    char tmp[sizeof err->msg];
    const char *rest = err->msg + sizeof agg - 1, *d = strstr(rest, dup);
    if (d)
      snprintf(tmp, sizeof tmp, "session state: record %.*sanother record has its key and session number%s",
               (int)(d - rest), rest, d + sizeof dup - 1);
    else
      snprintf(tmp, sizeof tmp, "session state: record %s", rest);
    memcpy(err->msg, tmp, sizeof tmp);
  }
  return rc;
}

/* A record of another plan, told in the plan's terms before the
 * aggregation would count the session's own key and aggregates too. */
static int other_plan(const tide_session_t *s, uint64_t sid, const uint8_t *p, size_t n, tide_err_t *err) {
  if (n < 5 || p[0] != 1) return 0;
  unsigned nk = (unsigned)(p[1] | p[2] << 8), ns = (unsigned)(p[3] | p[4] << 8);
  if (nk != s->nkeys + 1 || nk == 0)
    return tide_err_set(err, TIDE_ESCHEMA, "session state: record %llu: %u key values, the plan has %u keys",
                        (unsigned long long)sid, nk ? nk - 1 : 0, s->nkeys);
  if (ns != s->nspecs + 2 || ns < 2)
    return tide_err_set(err, TIDE_ESCHEMA, "session state: record %llu: %u aggregates, the plan has %u",
                        (unsigned long long)sid, ns >= 2 ? ns - 2 : 0, s->nspecs);
  return 0;
}

/* Insert a restored session (session.h). */
int tide_session_restore(tide_session_t *s, uint64_t sid, const void *p, size_t n, tide_err_t *err) {
  if (s->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier push failed");
  if (old_format(p, n))
    return tide_err_set(err, TIDE_EFORMAT,
                        "session state: record %llu: written in the session record format of earlier versions "
                        "(before session windows kept aggregation records), which this version does not read; run the "
                        "query on a new checkpoint directory (or delete this one) to start its state over",
                        (unsigned long long)sid);
  uint32_t had;
  if (tide_agg_gid_of(s->a, sid, &had))
    return tide_err_set(err, TIDE_ECORRUPT, "session state: record %llu: a duplicate session id",
                        (unsigned long long)sid);
  int rc = other_plan(s, sid, p, n, err);
  if (rc) return rc;
  if (start_restore(s) || reserve_sess(&s->v, &s->capv, (size_t)s->nv + 1))
    return tide_err_set(err, -ENOMEM, "out of memory");
  uint32_t g = (uint32_t)tide_agg_groups(s->a), nk0 = (uint32_t)tide_agg_groups(s->k), kid = NONE;
  rc = tide_agg_restore(s->a, sid, p, n, err);
  if (rc) return restate(err, rc);
  tide_batch_t *b = NULL;
  rc = tide_agg_result_of(s->a, &g, 1, &b, err);
  sess_t e = {0};
  uint32_t nk = s->nkeys, ns = s->nspecs;
  if (!rc) {
    const tide_col_t *num = &b->cols[nk], *st = &b->cols[nk + 1 + ns], *la = &b->cols[nk + 2 + ns];
    if (tide_col_is_null(st, 0) || tide_col_is_null(la, 0) || tide_col_i64(st, 0) > tide_col_i64(la, 0))
      rc = tide_err_set(err, TIDE_ECORRUPT, "session state: record %llu: a session without a time span",
                        (unsigned long long)sid);
    else if (tide_col_is_null(num, 0) || tide_col_i64(num, 0) < 1)
      rc = tide_err_set(err, TIDE_ECORRUPT, "session state: record %llu: session number below 1",
                        (unsigned long long)sid);
    e = (sess_t){tide_col_i64(st, 0), tide_col_i64(la, 0), sid, tide_col_i64(num, 0), 0, NONE};
  }
  if (!rc) { /* its key's kid */
    tide_batch_t kb = *b;
    kb.schema = s->keys;
    kb.nrows = 1;
    rc = tide_agg_update_gids(s->k, &kb, NULL, &kid, err);
    tide_agg_clear_dirty(s->k);
  }
  if (!rc && kid >= s->caprhead) {
    uint32_t cap = s->caprhead * 2 > kid + 1 ? s->caprhead * 2 : kid + 1;
    uint32_t *h = realloc(s->rhead, (size_t)cap * sizeof *h);
    if (!h) {
      rc = tide_err_set(err, -ENOMEM, "out of memory");
    } else {
      for (uint32_t k = s->caprhead; k < cap; k++) h[k] = NONE;
      s->rhead = h;
      s->caprhead = cap;
    }
  }
  for (uint32_t i = !rc ? s->rhead[kid] : NONE; i != NONE; i = s->v[i].rnext) {
    const sess_t *o = &s->v[i];
    if (end_of(s, e.last) < o->start || end_of(s, o->last) < e.start) continue;
    rc = tide_err_set(err, TIDE_ECORRUPT,
                      "session state: record %llu: [%lld, %lld) overlaps or touches another session of its key "
                      "([%lld, %lld), record %llu)",
                      (unsigned long long)sid, (long long)e.start, (long long)end_of(s, e.last), (long long)o->start,
                      (long long)end_of(s, o->last), (unsigned long long)o->sid);
    break;
  }
  tide_batch_free(b);
  if (rc) { /* as before: the group out of a, a new key out of k */
    uint64_t *sids = NULL;
    uint32_t m = 0;
    tide_agg_remove(s->a, &g, 1, NULL, &sids, &m, NULL);
    free(sids);
    sids = NULL;
    if (kid != NONE && kid >= nk0) tide_agg_remove(s->k, &kid, 1, NULL, &sids, &m, NULL);
    free(sids);
    return rc;
  }
  /* a restored session is in the checkpoint, and so is any older one */
  if (sid >= s->mark) s->mark = sid + 1;
  e.kid = kid;
  e.rnext = s->rhead[kid];
  s->rhead[kid] = s->nv;
  s->v[s->nv++] = e;
  if (e.num >= s->next_num) s->next_num = e.num + 1;
  if (sid > s->max_sid) s->max_sid = sid;
  return 0;
}
