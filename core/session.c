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
 *   v[nv]    one entry per session: start, last, sid, kid; sorted by
 *            (kid, start)
 *   dead     groups of a that folded into others in earlier pushes and
 *            wait for one remove (a remove moves every group after them):
 *            before anything reads a's groups as a whole (results,
 *            eviction, changes, restore) and once they are many
 *
 * A push finds each valid row's kid (the one hash probe a row costs),
 * sorts the rows by (kid, t, row), then walks the keys in kid order,
 * copying the entries of keys without rows and sweeping the others into
 * the new index. Each run's rows have a target group: a new session's,
 * the survivor's own, or (when a first/last could otherwise come out
 * wrong) a group of their own that folds into the survivor afterwards.
 * New groups are made with one key row each (tide_agg_insert), then
 * every row goes into its known group without hashing
 * (tide_agg_update_groups), in input order, for the aggregates that take
 * rows in any order; first, last, start and last time go in a run at a
 * time (first from the run's earliest row, last from its latest). Then
 * the fix-ups: the parts of a run fold into its survivor
 * (tide_agg_merge_ex), and the folded groups leave in one remove.
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
  uint32_t kid;        /* the key's gid in k */
  uint32_t rnext;      /* while restoring: the key's next entry, or NONE */
} sess_t;

struct tide_session {
  tide_agg_t *a, *k;
  tide_schema_t *keys, *akeys, *out;
  uint32_t nkeys, nspecs, wpos;
  int64_t gap;
  tide_agg_spec_t *specs; /* kinds and argument types (names not kept) */
  int firstlast; /* a first or last aggregate: merges must mind the order */
  sess_t *v;
  uint32_t nv;
  size_t capv;
  int restoring;  /* v is in restore order; rhead/rnext list each key's */
  uint32_t *rhead; /* per kid while restoring */
  uint32_t caprhead;
  int64_t next_num;
  uint64_t max_sid, mark; /* sessions with sid < mark are in the checkpoint */
  uint64_t *gone;         /* their sids once removed: the deletes */
  size_t ngone, capgone;
  uint32_t *dead;         /* gids of folded groups still in a */
  size_t ndead, capdead;
  struct push *scr;       /* the pushes' scratch */
  sess_t *spare;          /* the other index buffer: a push builds the new index in it */
  size_t capspare;
  int poisoned;
};

static struct push *push_new(void);
static void push_free(struct push *p);

/* x + y, saturated to the int64 range. */
static int64_t sat_add(int64_t x, int64_t y) {
  int64_t r;
  return __builtin_add_overflow(x, y, &r) ? (y > 0 ? INT64_MAX : INT64_MIN) : r;
}

/* The end of a session whose latest time is last. */
static inline int64_t end_of(const tide_session_t *s, int64_t last) { return sat_add(last, s->gap); }

/* ----------------------------------------------------------- create --- */

/* Check that s->out is the keys with window_start/window_end at wpos,
 * then the user's aggregates as res (a's result schema) has them. */
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
  if (!rc && !(s->scr = push_new())) rc = tide_err_set(err, -ENOMEM, "out of memory");
  if (!rc && !(s->specs = calloc(nspecs ? nspecs : 1, sizeof *s->specs)))
    rc = tide_err_set(err, -ENOMEM, "out of memory");
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
  push_free(s->scr);
  free(s->spare);
  free(s->v);
  free(s->rhead);
  free(s->gone);
  free(s->dead);
  free(s);
}

tide_schema_t *tide_session_schema(const tide_session_t *s) { return s->out; }

uint64_t tide_session_count(const tide_session_t *s) { return s->nv; }

size_t tide_session_bytes(const tide_session_t *s) {
  return sizeof *s + tide_agg_bytes(s->a) + tide_agg_bytes(s->k) + (s->capv + s->capspare) * sizeof *s->v +
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
  if (s->nv > 1) qsort(s->v, s->nv, sizeof *s->v, cmp_sess);
  free(s->rhead);
  s->rhead = NULL;
  s->caprhead = 0;
  s->restoring = 0;
}

/* *pp holds at least n items of size bytes (*cap: its room). 0 or -ENOMEM. */
static int grow(void *pp, size_t *cap, size_t n, size_t size) {
  void **p = pp;
  if (n <= *cap) return 0;
  size_t c = *cap ? *cap : 64;
  while (c < n) c *= 2;
  void *q = realloc(*p, c * size);
  if (!q) return -ENOMEM;
  *p = q;
  *cap = c;
  return 0;
}

/* Note the sids[0..n) of removed sessions that are in the checkpoint. */
static int note_gone(tide_session_t *s, uint64_t sid) {
  if (sid >= s->mark) return 0;
  if (grow(&s->gone, &s->capgone, s->ngone + 1, sizeof *s->gone)) return -ENOMEM;
  s->gone[s->ngone++] = sid;
  return 0;
}

/* The gid of session e's group. */
static uint32_t gid_of(const tide_session_t *s, uint64_t sid) {
  uint32_t g = NONE;
  tide_agg_gid_of(s->a, sid, &g);
  return g;
}

/* Copy src[from, from + n) to dst[at, at + n); returns n. Both arrays
 * are NULL while empty, so the offsets are added only when n > 0 (NULL +
 * 0 is undefined). */
static uint32_t copy_sess(sess_t *dst, uint32_t at, const sess_t *src, uint32_t from, uint32_t n) {
  if (n) memcpy(dst + at, src + from, (size_t)n * sizeof *dst);
  return n;
}

/* The first of v[lo, hi) (sorted by kid) whose kid is >= kid. */
static uint32_t kid_bound(const sess_t *v, uint32_t lo, uint32_t hi, uint32_t kid) {
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (v[mid].kid < kid) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* Remove the dead groups from a. 0, or the error (the state is then
 * poisoned). */
static int flush_dead(tide_session_t *s, tide_err_t *err) {
  if (!s->ndead) return 0;
  uint64_t *sids = NULL;
  uint32_t n = 0;
  int rc = tide_agg_remove(s->a, s->dead, (uint32_t)s->ndead, NULL, &sids, &n, err);
  free(sids);
  s->ndead = 0;
  if (rc) s->poisoned = 1;
  return rc;
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

/* a before b by time (the sorts are stable: j stays ascending on ties) */
static inline int item_lt(const item_t *a, const item_t *b) { return a->t < b->t; }

/* Sort it[0..n), in ascending j, by (t, j): a stable insertion sort of
 * runs of 32 (rows of a key come nearly in time order in a stream, where
 * it does least), then stable bottom-up merges through tmp. */
static void sort_by_time(item_t *it, item_t *tmp, uint32_t n) {
  enum { RUN = 32 };
  for (uint32_t lo = 0; lo < n; lo += RUN) {
    uint32_t hi = lo + RUN < n ? lo + RUN : n;
    for (uint32_t i = lo + 1; i < hi; i++) {
      item_t x = it[i];
      uint32_t k = i;
      for (; k > lo && item_lt(&x, &it[k - 1]); k--) it[k] = it[k - 1];
      it[k] = x;
    }
  }
  item_t *src = it, *dst = tmp;
  for (uint32_t width = RUN; width < n; width *= 2) {
    for (uint32_t lo = 0; lo < n; lo += 2 * width) {
      uint32_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
      uint32_t a = lo, b = mid, o = lo;
      if (mid == hi || !item_lt(&src[mid], &src[mid - 1])) { /* already in order */
        memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof *src);
        continue;
      }
      while (a < mid && b < hi) dst[o++] = item_lt(&src[b], &src[a]) ? src[b++] : src[a++];
      while (a < mid) dst[o++] = src[a++];
      while (b < hi) dst[o++] = src[b++];
    }
    item_t *t = src;
    src = dst;
    dst = t;
  }
  if (src != it) memcpy(it, src, (size_t)n * sizeof *it);
}

/* Sort it[0..m) by (kid, t, j); nk kids. tmp has m entries. A counting
 * sort by kid (stable, so j ascends within a kid) when count is given
 * (kids not many more than rows), else a comparison sort; then each
 * kid's run by (t, j) unless it is in time order already, as in-order
 * streams are. */
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
    for (q = p + 1; q < m && it[q].kid == it[p].kid; q++) {
    }
    if (q - p > 1) sort_by_time(it + p, tmp + p, q - p);
  }
}

/* Where the rows of one run go: a group of a (gid), which is a new
 * session's, a new group the rows fold from into a stored session
 * (temp), or the survivor's own (the rows go straight in). */
typedef struct target {
  int64_t num;        /* the group's session number */
  int64_t tmin, tmax; /* the rows' earliest and latest times */
  uint32_t q0, q1;    /* the run's rows (sorted positions [q0, q1)) */
  uint32_t gid;       /* the group: a new one's is known before it is made
                       * (tide_agg_insert numbers them in order) */
  int isnew;          /* the group is made for this push */
} target_t;

/* A run with stored sessions, to settle after the update. */
typedef struct fixup {
  uint32_t s0, s1; /* its stored sessions: old index [s0, s1); s0 survives */
  uint32_t tg;     /* its rows' target, or NONE */
  int direct;      /* the rows went straight into s0's group */
  int64_t rmin, rmax;
} fixup_t;

/* A new session: its entry in the new index and its target. */
typedef struct fresh {
  uint32_t w, tg;
} fresh_t;

/* The scratch of the pushes, kept by the session and grown as batches
 * need: no allocation per push once the largest batch has been seen. */
typedef struct push {
  size_t mcap;      /* room of the per-row arrays */
  uint32_t m;       /* valid rows */
  uint32_t *rows;   /* their row numbers in the input (room for every row) */
  item_t *it, *tmp;
  uint32_t *kid;    /* per valid row its kid */
  uint32_t *gid;    /* per fed row its group in a */
  uint32_t *first, *last; /* per target: the input rows of its earliest
                           * and of its latest row */
  target_t *tg;     /* one per run with rows */
  uint32_t ntg;
  fixup_t *fx;
  uint32_t nfx;
  fresh_t *fr;
  uint32_t nfr;
  uint32_t *rep;    /* per new target: its first row in the input */
  int64_t *num, *tmax; /* per new target its session number; then per
                        * target its rows' earliest and latest times */
  uint32_t *count;  /* kids + 1, for the counting sort */
  size_t capcount;
  uint32_t *drop;   /* gids leaving a */
  uint32_t ndrop;
  size_t capdrop;
  const uint32_t *dirty0; /* a's changes before the push (sorted gids) */
  uint32_t ndirty0;
  uint32_t updated; /* survivors that were not changes before */
  tide_col_t *cols; /* gathered columns, ncols of them (room: capcols) */
  uint32_t ncols, capcols;
  uint32_t g0;      /* the groups of a before the push: new ones follow */
  uint32_t nnew;    /* new groups (targets) so far */
} push_t;

static push_t *push_new(void) { return calloc(1, sizeof(push_t)); }

/* Free the gathered columns. */
static void push_reset_cols(push_t *p) {
  for (uint32_t i = 0; i < p->ncols; i++) tide_col_free(&p->cols[i]);
  p->ncols = 0;
}

/* Free the gathered columns and forget the last push's counts. */
static void push_reset(push_t *p) {
  for (uint32_t i = 0; i < p->ncols; i++) tide_col_free(&p->cols[i]);
  p->m = p->ntg = p->nfx = p->nfr = p->ndrop = p->updated = p->ncols = p->nnew = 0;
}

static void push_free(push_t *p) {
  if (!p) return;
  push_reset(p);
  free(p->rows);
  free(p->it);
  free(p->tmp);
  free(p->kid);
  free(p->gid);
  free(p->first);
  free(p->last);
  free(p->tg);
  free(p->fx);
  free(p->fr);
  free(p->rep);
  free(p->num);
  free(p->tmax);
  free(p->count);
  free(p->drop);
  free(p->cols);
  free(p);
}

/* Room for a push of n rows and ncols gathered columns. 0 or -ENOMEM. */
static int push_reserve(push_t *p, uint32_t n, uint32_t ncols) {
  if (n > p->mcap) {
    size_t cap = 0;
#define ROOM(f) (cap = p->mcap, grow(&p->f, &cap, n, sizeof *p->f))
    if (ROOM(rows) || ROOM(it) || ROOM(tmp) || ROOM(kid) || ROOM(gid) || ROOM(first) || ROOM(last) || ROOM(tg) ||
        ROOM(fx) || ROOM(fr) || ROOM(rep) || ROOM(num) || ROOM(tmax))
      return -ENOMEM;
#undef ROOM
    p->mcap = cap;
  }
  if (ncols > p->capcols) {
    tide_col_t *c = realloc(p->cols, ncols * sizeof *c);
    if (!c) return -ENOMEM;
    p->cols = c;
    p->capcols = ncols;
  }
  return 0;
}

/* A target for the rows [q0, q1) (sorted positions): a new group (with
 * the next session number), or (gid not NONE) that one; each row's group
 * is noted where it is fed. */
static uint32_t add_target(tide_session_t *s, push_t *p, uint32_t q0, uint32_t q1, uint32_t gid) {
  uint32_t t = p->ntg++;
  int isnew = gid == NONE;
  int64_t num = 0;
  if (isnew) {
    gid = p->g0 + p->nnew++;
    num = s->next_num++;
  }
  p->tg[t] = (target_t){num, p->it[q0].t, p->it[q1 - 1].t, q0, q1, gid, isnew};
  for (uint32_t q = q0; q < q1; q++) p->gid[p->it[q].j] = gid;
  return t;
}

static int cmp_u32(const void *x, const void *y) {
  uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
  return (a > b) - (a < b);
}

/* The first of L[lo, hi) (sorted by start, apart) that ends at or after
 * t: the first that a row at t can touch. */
static uint32_t first_reaching(const tide_session_t *s, const sess_t *L, uint32_t lo, uint32_t hi, int64_t t) {
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (end_of(s, L[mid].last) < t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/* Sweep one key: its stored sessions s->v[l0, l1) and its rows
 * p->it[r0, r1) (by time), in start order (a stored session first on a
 * tie), into runs; append one entry per run to the new index nv (at *w)
 * and note where the rows go and what the fix-ups must do. The stored
 * sessions before the first that the rows reach, and those after the
 * last run, are copied as they are. */
static void sweep_key(tide_session_t *s, push_t *p, sess_t *nv, uint32_t *w, uint32_t l0, uint32_t l1, uint32_t r0,
                      uint32_t r1) {
  const sess_t *L = s->v;
  const item_t *it = p->it;
  uint32_t kid = it[r0].kid, i = first_reaching(s, L, l0, l1, it[r0].t), r = r0;
  *w += copy_sess(nv, *w, L, l0, i - l0);
  while (r < r1) {
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
      ent = (sess_t){it[q0].t, it[r - 1].t, 0, kid, NONE};
      p->fr[p->nfr++] = (fresh_t){*w, add_target(s, p, q0, r, NONE)};
    } else if (q0 == r) { /* a stored session no row touched */
      ent = L[s0];
    } else { /* stored sessions (and rows) that fold into the first one */
      ent = L[s0];
      ent.kid = kid;
      fixup_t fx = {s0, i, NONE, 0, 0, 0};
      if (L[i - 1].last > ent.last) ent.last = L[i - 1].last;
      fx.rmin = it[q0].t;
      fx.rmax = it[r - 1].t;
      /* the rows go straight into the survivor's group unless a
       * first/last could then come out wrong: first keeps the stored
       * value on a tie, last takes the rows' (they arrived later), so
       * that is when the rows neither start before the survivor nor end
       * before its latest row; else they fold in from a group of their
       * own */
      fx.direct = !s->firstlast || (fx.rmin >= L[s0].start && fx.rmax >= L[s0].last);
      fx.tg = add_target(s, p, q0, r, fx.direct ? gid_of(s, L[s0].sid) : NONE);
      if (fx.rmin < ent.start) ent.start = fx.rmin;
      if (fx.rmax > ent.last) ent.last = fx.rmax;
      p->fx[p->nfx++] = fx;
      /* a change now; was it one before? */
      uint32_t g = fx.direct ? p->tg[fx.tg].gid : gid_of(s, L[s0].sid);
      p->updated += !bsearch(&g, p->dirty0, p->ndirty0, sizeof g, cmp_u32);
    }
    ent.rnext = NONE;
    nv[(*w)++] = ent;
  }
  *w += copy_sess(nv, *w, L, i, l1 - i);
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

/* Pick the valid rows (time not NULL, not late) into p->rows. */
static void pick_rows(tide_session_t *s, const tide_col_t *t, uint32_t n, push_t *p, tide_session_feed_t *f) {
  if (f->late) memset(f->late, 0, n);
  /* late: t + gap <= bound, that is t <= bound - gap (none when that is
   * below every time) */
  int64_t lb = 0;
  int late = f->has_late && !__builtin_sub_overflow(f->late_bound, s->gap, &lb);
  const int64_t *tv = t->values;
  int nulls = t->valid && t->null_count;
  uint32_t m = 0;
  if (!nulls && !late) { /* every row: p->rows is not filled (ROW) */
    p->m = n;
    return;
  }
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
}

/* The input row of valid row j. */
#define ROW(p, n, j) ((p)->m == (n) ? (j) : (p)->rows[j])

/* Column c gathered at rows[0..n), kept in p->cols. 0 or an error code. */
static int gather(push_t *p, const tide_col_t *c, const uint32_t *rows, uint32_t n, const tide_col_t **out) {
  tide_col_t *g = &p->cols[p->ncols];
  int rc = tide_col_gather(c, rows, n, g);
  if (rc) return rc;
  p->ncols++;
  *out = g;
  return 0;
}

/* Settle the runs with stored sessions after the update: fold each run's
 * other stored sessions and its rows' own group into its survivor, first
 * and last by event time (ties: stored before rows), and list the folded
 * groups in p->drop. */
static int fix_runs(tide_session_t *s, push_t *p, tide_err_t *err) {
  const sess_t *L = s->v;
  for (uint32_t x = 0; x < p->nfx; x++) {
    const fixup_t *fx = &p->fx[x];
    uint32_t g1 = gid_of(s, L[fx->s0].sid);
    int64_t dmin = L[fx->s0].start, dmax = L[fx->s0].last;
    int drows = 0; /* dst's latest row is one of this push's */
    if (fx->tg != NONE && fx->direct) {
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
    if (fx->tg != NONE && !fx->direct) {
      uint32_t gt = p->tg[fx->tg].gid;
      unsigned fl = (fx->rmin < dmin ? TIDE_AGG_MERGE_FIRST_SRC : 0) | (fx->rmax < dmax ? TIDE_AGG_MERGE_LAST_DST : 0);
      int rc = tide_agg_merge_ex(s->a, g1, gt, fl, err);
      if (rc) return rc;
      p->drop[p->ndrop++] = gt;
    }
  }
  return 0;
}

/* av[i] = the argument column of each flagged spec i at rows[0..n) (rows
 * NULL: the input's column itself, all its rows), gathered into p->cols;
 * specs with the same column share one gather. 0 or an error code (err
 * set). */
static int args_at(const tide_session_t *s, push_t *p, const tide_col_t *const *args, const uint8_t *only,
                   const uint32_t *rows, uint32_t n, const tide_col_t **av, tide_err_t *err) {
  for (uint32_t i = 0; i < s->nspecs; i++) {
    if (!only[i]) continue;
    av[i] = s->specs[i].kind == TIDE_AGG_COUNT_STAR ? NULL : args[i];
    if (!av[i] || !rows) continue;
    uint32_t k = 0;
    while (k < i && !(only[k] && args[k] == args[i])) k++;
    if (k < i) {
      av[i] = av[k];
      continue;
    }
    int rc = gather(p, args[i], rows, n, &av[i]);
    if (rc) return tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "gathered strings too large" : "out of memory");
  }
  return 0;
}

/* Make the new groups (one key row per new target: its first row's key
 * and its session number), aggregate every valid row into its target's
 * group (the user's aggregates a row at a time; start and last a target
 * at a time, from its rows' earliest and latest times), give the new
 * sessions their sids and settle the runs. Every failure here poisons
 * the state. */
static int feed(tide_session_t *s, push_t *p, sess_t *nv, const tide_batch_t *keys, const tide_col_t *const *args,
                tide_err_t *err) {
  uint32_t m = p->m, n = keys->nrows, nk = s->nkeys, ns = s->nspecs, nnew = p->nnew, ntg = p->ntg;
  uint32_t *rep = p->rep, *ng = p->kid; /* kid is free again */
  int64_t *tmin = p->num, *tmax = p->tmax;
  const tide_col_t **av = calloc(ns + 2, sizeof *av);
  tide_col_t *kc = calloc(nk + 1, sizeof *kc);
  uint8_t *only = calloc(ns + 2, 1);
  int rc = av && kc && only ? 0 : tide_err_set(err, -ENOMEM, "out of memory");
  /* the new groups */
  if (!rc && nnew) {
    uint32_t j = 0;
    for (uint32_t x = 0; x < ntg; x++)
      if (p->tg[x].isnew) {
        rep[j] = ROW(p, n, p->it[p->tg[x].q0].j);
        tmin[j++] = p->tg[x].num;
      }
    for (uint32_t k = 0; !rc && k < nk; k++) {
      const tide_col_t *c;
      rc = gather(p, &keys->cols[k], rep, nnew, &c);
      if (!rc) kc[k] = *c;
    }
    if (rc) {
      rc = tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "gathered strings too large" : "out of memory");
    } else {
      kc[nk] = (tide_col_t){.type = TIDE_T_INT, .values = tmin};
      tide_batch_t kb = {0};
      kb.schema = s->akeys;
      kb.nrows = kb.cap = nnew;
      kb.cols = kc;
      rc = tide_agg_insert(s->a, &kb, ng, err);
    }
    for (uint32_t y = 0; !rc && y < nnew; y++)
      if (ng[y] != p->g0 + y) /* the sweep numbered them so */
        rc = tide_err_set(err, TIDE_ECORRUPT, "session window: new group %u is %u, expected %u", y, ng[y], p->g0 + y);
  }
  /* every row into its group: the aggregates that take rows in any order */
  int any = 0;
  for (uint32_t i = 0; i < ns; i++) {
    only[i] = s->specs[i].kind != TIDE_AGG_FIRST && s->specs[i].kind != TIDE_AGG_LAST;
    any |= only[i];
  }
  if (!rc && any) {
    rc = args_at(s, p, args, only, m < n ? p->rows : NULL, m, av, err);
    if (!rc) rc = tide_agg_update_groups(s->a, p->gid, m, av, only, err);
  }
  /* a target at a time: first from its earliest row (ties: the first to
   * arrive), last from its latest (ties: the last to arrive), start and
   * last time from its times */
  if (!rc) {
    for (uint32_t x = 0; x < ntg; x++) {
      const target_t *g = &p->tg[x];
      rep[x] = g->gid;
      p->first[x] = ROW(p, n, p->it[g->q0].j);
      p->last[x] = ROW(p, n, p->it[g->q1 - 1].j);
      tmin[x] = g->tmin;
      tmax[x] = g->tmax;
    }
    tide_col_t cmin = {.type = TIDE_T_TIMESTAMP, .values = tmin}, cmax = {.type = TIDE_T_TIMESTAMP, .values = tmax};
    for (uint32_t i = 0; i < ns; i++) only[i] = s->specs[i].kind == TIDE_AGG_FIRST;
    only[ns] = only[ns + 1] = 1;
    av[ns] = &cmin;
    av[ns + 1] = &cmax;
    rc = args_at(s, p, args, only, p->first, ntg, av, err);
    if (!rc) rc = tide_agg_update_groups(s->a, rep, ntg, av, only, err);
    int lasts = 0;
    for (uint32_t i = 0; i < ns; i++) lasts |= only[i] = s->specs[i].kind == TIDE_AGG_LAST;
    only[ns] = only[ns + 1] = 0;
    if (!rc && lasts) rc = args_at(s, p, args, only, p->last, ntg, av, err);
    if (!rc && lasts) rc = tide_agg_update_groups(s->a, rep, ntg, av, only, err);
  }
  free(av);
  free(kc);
  free(only);
  if (rc) return rc;
  for (uint32_t x = 0; x < p->nfr; x++) {
    uint64_t sid = tide_agg_sid(s->a, p->tg[p->fr[x].tg].gid);
    nv[p->fr[x].w].sid = sid;
    if (sid > s->max_sid) s->max_sid = sid;
  }
  if ((rc = fix_runs(s, p, err))) return rc;
  if (!p->ndrop) return 0;
  if (grow(&s->dead, &s->capdead, s->ndead + p->ndrop, sizeof *s->dead))
    return tide_err_set(err, -ENOMEM, "out of memory");
  memcpy(s->dead + s->ndead, p->drop, (size_t)p->ndrop * sizeof *p->drop);
  s->ndead += p->ndrop;
  return 0;
}

/* Add a batch of rows (session.h). */
int tide_session_push(tide_session_t *s, const tide_batch_t *keys, const tide_col_t *t, const tide_col_t *const *args,
                      tide_session_feed_t *f, tide_err_t *err) {
  f->pushed = f->late_rows = f->null_times = f->updated = 0;
  if (s->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier push failed");
  int rc = check_push(s, keys, t, args, err);
  if (rc) return rc;
  finish_restore(s);
  push_t *p = s->scr;
  push_reset(p);
  uint32_t n = keys->nrows;
  if (push_reserve(p, n, 2 * s->nkeys + 3 * s->nspecs + 1)) return tide_err_set(err, -ENOMEM, "out of memory");
  pick_rows(s, t, n, p, f);
  uint32_t m = p->m;
  if (!m) return 0;
  p->ndirty0 = tide_agg_dirty(s->a, &p->dirty0);
  /* from here on a failure leaves the state half changed */
  /* the keys' kids: the valid rows' keys into k */
  tide_batch_t kb = *keys;
  kb.schema = s->keys;
  if (m < n) {
    kb.nrows = kb.cap = m;
    kb.cols = p->cols;
    for (uint32_t k = 0; !rc && k < s->nkeys; k++) {
      const tide_col_t *c;
      rc = gather(p, &keys->cols[k], p->rows, m, &c);
    }
    if (rc) rc = tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "gathered strings too large" : "out of memory");
  }
  if (!rc) rc = tide_agg_insert(s->k, &kb, p->kid, err);
  tide_agg_clear_dirty(s->k);
  push_reset_cols(p);
  /* sort by (kid, t, row) */
  if (!rc) {
    const int64_t *tv = t->values;
    if (m == n)
      for (uint32_t j = 0; j < m; j++) p->it[j] = (item_t){tv[j], p->kid[j], j};
    else
      for (uint32_t j = 0; j < m; j++) p->it[j] = (item_t){tv[p->rows[j]], p->kid[j], j};
    uint32_t nk = (uint32_t)tide_agg_groups(s->k);
    int counting = (size_t)nk <= 4 * (size_t)m + 1024 && !grow(&p->count, &p->capcount, (size_t)nk + 1, sizeof *p->count);
    sort_items(p->it, p->tmp, m, nk, counting ? p->count : NULL);
  }
  /* sweep every key with rows into the spare index; copy the others' entries */
  uint32_t w = 0;
  if (!rc) {
    rc = grow(&p->drop, &p->capdrop, (size_t)m + s->nv, sizeof *p->drop) ||
                 grow(&s->spare, &s->capspare, (size_t)s->nv + m, sizeof *s->spare)
             ? tide_err_set(err, -ENOMEM, "out of memory")
             : 0;
  }
  if (!rc) {
    sess_t *nv = s->spare;
    uint32_t vi = 0;
    p->g0 = (uint32_t)tide_agg_groups(s->a);
    for (uint32_t q0 = 0, q1; q0 < m; q0 = q1) {
      uint32_t kid = p->it[q0].kid;
      for (q1 = q0 + 1; q1 < m && p->it[q1].kid == kid; q1++) {
      }
      uint32_t l0 = kid_bound(s->v, vi, s->nv, kid), l1 = kid_bound(s->v, l0, s->nv, kid + 1);
      w += copy_sess(nv, w, s->v, vi, l0 - vi);
      sweep_key(s, p, nv, &w, l0, l1, q0, q1);
      vi = l1;
    }
    w += copy_sess(nv, w, s->v, vi, s->nv - vi);
    rc = feed(s, p, nv, keys, args, err);
  }
  uint32_t updated = p->updated + p->nfr;
  push_reset(p);
  if (rc) {
    s->poisoned = 1;
    return rc;
  }
  sess_t *old = s->v;
  size_t oldcap = s->capv;
  s->v = s->spare;
  s->nv = w;
  s->capv = s->capspare;
  s->spare = old;
  s->capspare = oldcap;
  f->pushed = m;
  f->updated = updated;
  /* the folded groups leave once they are many (or before a's groups
   * are read as a whole) */
  return s->ndead > s->nv / 4 + 1024 ? flush_dead(s, err) : 0;
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
  int rc = flush_dead(s, err);
  if (!rc) rc = tide_agg_result(s->a, &b, err);
  return rc ? rc : to_output(s, b, out, err);
}

/* Remove the sessions the watermark closed (session.h). */
int tide_session_evict(tide_session_t *s, int64_t watermark, tide_batch_t **out, tide_err_t *err) {
  *out = NULL;
  if (s->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier push failed");
  int rc = flush_dead(s, err);
  if (rc) return rc;
  finish_restore(s);
  /* due: last + gap <= watermark, that is last <= watermark - gap */
  int64_t bound = 0;
  int any = !__builtin_sub_overflow(watermark, s->gap, &bound);
  uint32_t nd = 0;
  for (uint32_t i = 0; any && i < s->nv; i++) nd += s->v[i].last <= bound;
  tide_batch_t *b = NULL;
  if (!nd) {
    rc = tide_agg_result_of(s->a, NULL, 0, &b, err);
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
  rc = tide_agg_remove(s->a, gids, nd, &b, &sids, &nout, err);
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

int tide_session_changes(tide_session_t *s, uint32_t *n, tide_err_t *err) {
  *n = 0;
  if (s->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier push failed");
  int rc = flush_dead(s, err);
  if (rc) return rc;
  const uint32_t *g;
  *n = tide_agg_dirty(s->a, &g);
  return 0;
}

int tide_session_change(const tide_session_t *s, uint32_t i, uint64_t *sid, tide_buf_t *out, tide_err_t *err) {
  const uint32_t *g;
  uint32_t n = tide_agg_dirty(s->a, &g);
  if (i >= n) return tide_err_set(err, TIDE_EINVAL, "change %u does not exist (%u changes)", i, n);
  *sid = tide_agg_sid(s->a, g[i]);
  return out ? tide_agg_encode(s->a, g[i], out, err) : 0;
}

size_t tide_session_deleted(tide_session_t *s, const uint64_t **sids) {
  if (s->ngone > 1) qsort(s->gone, s->ngone, sizeof *s->gone, cmp_u64);
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
  int frc = flush_dead(s, err);
  if (frc) return frc;
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
  if (start_restore(s) || grow(&s->v, &s->capv, (size_t)s->nv + 1, sizeof *s->v))
    return tide_err_set(err, -ENOMEM, "out of memory");
  uint32_t g = (uint32_t)tide_agg_groups(s->a), nk0 = (uint32_t)tide_agg_groups(s->k), kid = NONE;
  rc = tide_agg_restore(s->a, sid, p, n, err);
  if (rc) return restate(err, rc);
  tide_batch_t *b = NULL;
  rc = tide_agg_result_of(s->a, &g, 1, &b, err);
  sess_t e = {0};
  int64_t e_num = 0;
  uint32_t nk = s->nkeys, ns = s->nspecs;
  if (!rc) {
    const tide_col_t *num = &b->cols[nk], *st = &b->cols[nk + 1 + ns], *la = &b->cols[nk + 2 + ns];
    if (tide_col_is_null(st, 0) || tide_col_is_null(la, 0) || tide_col_i64(st, 0) > tide_col_i64(la, 0))
      rc = tide_err_set(err, TIDE_ECORRUPT, "session state: record %llu: a session without a time span",
                        (unsigned long long)sid);
    else if (tide_col_is_null(num, 0) || tide_col_i64(num, 0) < 1)
      rc = tide_err_set(err, TIDE_ECORRUPT, "session state: record %llu: session number below 1",
                        (unsigned long long)sid);
    e = (sess_t){tide_col_i64(st, 0), tide_col_i64(la, 0), sid, 0, NONE};
    e_num = tide_col_i64(num, 0);
  }
  if (!rc) { /* its key's kid */
    tide_batch_t kb = *b;
    kb.schema = s->keys;
    kb.nrows = 1;
    rc = tide_agg_insert(s->k, &kb, &kid, err);
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
  if (e_num >= s->next_num) s->next_num = e_num + 1;
  if (sid > s->max_sid) s->max_sid = sid;
  return 0;
}
