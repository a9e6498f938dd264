/*
 * sjoin.c: the stream-stream join (rules in sjoin.h).
 *
 * Each side's state is a table: one owned batch `rows` holding every row
 * appended since the last compaction, and per row a flags byte, a state
 * id, the key hash and a chain link. A row is
 *
 *   KEPT     in the state (counted, evicted by the watermark, checkpointed);
 *   MATCHED  it has matched a row of the other side at least once;
 *   SAVED    its record is in the checkpoint (a removal then needs a delete);
 *   DIRTY    its record changed since the last clear (a put is due);
 *   INDEXED  it is in the key index (kept, keys not NULL).
 *
 * Rows that are appended but not kept (failed the side-only conditions, or
 * a left semi row that matched at once) stay in the table only until the
 * batch's output is gathered; removed rows likewise. When the rows not
 * kept outnumber the kept ones the table is compacted (the kept rows
 * gathered into a new batch, the index rebuilt), so memory follows the
 * state, not the input.
 *
 * The index is open addressing (linear probing) over distinct key hashes:
 * {hash, head row}; rows of one hash are chained through next[] (newest
 * first). Probing walks the chain, skips rows no longer indexed and
 * compares the keys themselves. It is rebuilt when half full, after a
 * compaction and after a restore.
 */
#include "sjoin.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "hash.h"
#include "join.h"
#include "vec.h"

#define NONE UINT32_MAX
#define F_KEPT 1
#define F_MATCHED 2
#define F_SAVED 4
#define F_DIRTY 8
#define F_INDEXED 16

#define REC_VERSION 1

typedef struct ent {
  uint64_t h;
  uint32_t head;
  uint32_t used;
} ent_t;

typedef struct side {
  tide_schema_t *schema;
  uint32_t *keys;
  int late_col, evict_col;
  const tide_expr_t *pre;
  tide_batch_t *rows;
  uint8_t *flags;
  uint64_t *ids, *hash;
  uint32_t *next;
  size_t acap;
  ent_t *tab;
  size_t tcap, tused;
  int stale; /* the index must be rebuilt before use */
  uint64_t next_id;
  uint64_t kept;
  tide_sjoin_ref_t *dels;
  size_t ndels, dcap;
} side_t;

struct tide_sjoin {
  side_t s[2];
  uint32_t nkeys;
  tide_sjoin_how_t how;
  tide_schema_t *pair;
  const tide_expr_t *cond;
  int track[2]; /* the side's matched flag matters (outer side, semi's left): a change is checkpointed */
};

/* Growing arrays of output pairs (left row, right row; NONE = NULL). */
typedef struct pairs {
  uint32_t *l, *r;
  size_t n, cap;
} pairs_t;

static int pairs_add(pairs_t *p, uint32_t l, uint32_t r) {
  if (p->n == p->cap) {
    if (p->cap >= TIDE_BATCH_MAX_ROWS) return TIDE_ETOOBIG;
    size_t c = p->cap ? p->cap * 2 : 256;
    uint32_t *a = realloc(p->l, c * sizeof *a);
    if (!a) return -ENOMEM;
    p->l = a;
    uint32_t *b = realloc(p->r, c * sizeof *b);
    if (!b) return -ENOMEM;
    p->r = b;
    p->cap = c;
  }
  p->l[p->n] = l;
  p->r[p->n] = r;
  p->n++;
  return 0;
}

static void pairs_free(pairs_t *p) {
  free(p->l);
  free(p->r);
  memset(p, 0, sizeof *p);
}

static int is_num(tide_type_t t) { return t == TIDE_T_INT || t == TIDE_T_DOUBLE; }

/* ------------------------------------------------------------ the table */

/* Room for n rows in the per-row arrays. */
static int side_reserve(side_t *s, size_t n) {
  if (n <= s->acap) return 0;
  size_t c = s->acap ? s->acap : 64;
  while (c < n) c *= 2;
  uint8_t *f = realloc(s->flags, c);
  if (!f) return -ENOMEM;
  s->flags = f;
  uint64_t *id = realloc(s->ids, c * sizeof *id);
  if (!id) return -ENOMEM;
  s->ids = id;
  uint64_t *h = realloc(s->hash, c * sizeof *h);
  if (!h) return -ENOMEM;
  s->hash = h;
  uint32_t *nx = realloc(s->next, c * sizeof *nx);
  if (!nx) return -ENOMEM;
  s->next = nx;
  s->acap = c;
  return 0;
}

/* Put row r (kept, keys not NULL, hash set) into the index. */
static void index_put(side_t *s, uint32_t r) {
  size_t mask = s->tcap - 1;
  size_t pos = s->hash[r] & mask;
  ent_t *e;
  for (; (e = &s->tab[pos])->used; pos = (pos + 1) & mask)
    if (e->h == s->hash[r]) break;
  if (e->used) {
    s->next[r] = e->head;
  } else {
    e->used = 1;
    e->h = s->hash[r];
    s->next[r] = NONE;
    s->tused++;
  }
  e->head = r;
  s->flags[r] |= F_INDEXED;
}

/* Rebuild the index over the indexed rows with room for `more` new keys. */
static int index_rebuild(side_t *s, size_t more) {
  size_t want = 16;
  uint32_t n = s->rows->nrows;
  size_t count = more;
  for (uint32_t r = 0; r < n; r++) count += (s->flags[r] & F_INDEXED) != 0;
  while (want < count * 2) want *= 2;
  ent_t *t = calloc(want, sizeof *t);
  if (!t) return -ENOMEM;
  free(s->tab);
  s->tab = t;
  s->tcap = want;
  s->tused = 0;
  for (uint32_t r = n; r-- > 0;)
    if (s->flags[r] & F_INDEXED) index_put(s, r);
  s->stale = 0;
  return 0;
}

/* Make room in the index for `more` new keys. */
static int index_room(side_t *s, size_t more) {
  if (!s->stale && (s->tused + more) * 2 <= s->tcap) return 0;
  return index_rebuild(s, more);
}

/* Hash the key columns of rows [lo, n) of the side's table. */
static int hash_range(const tide_sjoin_t *j, side_t *s, uint32_t lo, uint8_t **nulp) {
  tide_batch_t *slice = NULL;
  uint32_t n = s->rows->nrows;
  int rc = tide_batch_slice(s->rows, lo, n, &slice);
  if (rc) return rc;
  uint8_t *nul = malloc(n - lo ? n - lo : 1);
  if (!nul) {
    tide_batch_free(slice);
    return -ENOMEM;
  }
  tide__join_hash_rows(slice, s->keys, j->nkeys, s->hash + lo, nul);
  tide_batch_free(slice);
  *nulp = nul;
  return 0;
}

/* Keep only the kept rows of the table: a new batch and arrays; the
 * index is rebuilt before its next use. */
static int compact(side_t *s) {
  uint32_t n = s->rows->nrows, m = 0;
  uint32_t *keep = malloc((n ? n : 1) * sizeof *keep);
  if (!keep) return -ENOMEM;
  for (uint32_t r = 0; r < n; r++)
    if (s->flags[r] & F_KEPT) keep[m++] = r;
  /* an owned batch (a gather's is not), so that rows can be appended */
  tide_batch_t *nb = tide_batch_new(s->schema, m);
  int rc = nb ? tide_batch_reserve(nb, m) : -ENOMEM;
  for (uint32_t i = 0; i < m && !rc; i++) rc = tide_batch_append_row(nb, s->rows, keep[i]);
  if (rc) {
    tide_batch_free(nb);
  } else {
    for (uint32_t i = 0; i < m; i++) {
      uint32_t r = keep[i];
      s->flags[i] = s->flags[r];
      s->ids[i] = s->ids[r];
      s->hash[i] = s->hash[r];
    }
    tide_batch_free(s->rows);
    s->rows = nb;
    s->stale = 1;
  }
  free(keep);
  return rc;
}

/* Remove kept row r from the state: a delete is due when its record is in
 * the checkpoint. */
static int unkeep(side_t *s, uint32_t r) {
  if (s->flags[r] & F_SAVED) {
    if (s->ndels == s->dcap) {
      size_t c = s->dcap ? s->dcap * 2 : 64;
      tide_sjoin_ref_t *d = realloc(s->dels, c * sizeof *d);
      if (!d) return -ENOMEM;
      s->dels = d;
      s->dcap = c;
    }
    s->dels[s->ndels].side = 0; /* set by tide_sjoin_changes */
    s->dels[s->ndels].id = s->ids[r];
    s->dels[s->ndels].row = NONE;
    s->ndels++;
  }
  s->flags[r] &= (uint8_t) ~(F_KEPT | F_INDEXED | F_SAVED | F_DIRTY);
  s->kept--;
  return 0;
}

/* ------------------------------------------------------------ lifecycle */

static int side_init(side_t *s, const tide_sjoin_side_t *d, uint32_t nkeys, const char *which, tide_err_t *err) {
  uint32_t nf = d->schema->nfields;
  for (uint32_t k = 0; k < nkeys; k++)
    if (d->keys[k] >= nf) return tide_err_set(err, TIDE_EINVAL, "%s key %u: column %u out of range", which, k, d->keys[k]);
  if (d->late_col >= (int)nf || d->evict_col >= (int)nf)
    return tide_err_set(err, TIDE_EINVAL, "%s: time column out of range", which);
  if ((d->late_col >= 0 && d->schema->fields[d->late_col].type != TIDE_T_TIMESTAMP) ||
      (d->evict_col >= 0 && d->schema->fields[d->evict_col].type != TIDE_T_TIMESTAMP))
    return tide_err_set(err, TIDE_EINVAL, "%s: time columns must be timestamps", which);
  if (d->pre && tide_expr_type(d->pre) != TIDE_T_BOOL)
    return tide_err_set(err, TIDE_EINVAL, "%s: the side's condition must be bool", which);
  s->schema = tide_schema_ref(d->schema);
  s->late_col = d->late_col;
  s->evict_col = d->evict_col;
  s->pre = d->pre;
  s->next_id = 1;
  s->stale = 1;
  if (!(s->keys = malloc((nkeys ? nkeys : 1) * sizeof *s->keys)) || !(s->rows = tide_batch_new(d->schema, 0)))
    return tide_err_set(err, -ENOMEM, "out of memory");
  if (nkeys) memcpy(s->keys, d->keys, nkeys * sizeof *s->keys);
  return 0;
}

static void side_free(side_t *s) {
  tide_batch_free(s->rows);
  if (s->schema) tide_schema_unref(s->schema);
  free(s->keys);
  free(s->flags);
  free(s->ids);
  free(s->hash);
  free(s->next);
  free(s->tab);
  free(s->dels);
}

int tide_sjoin_new(const tide_sjoin_side_t *left, const tide_sjoin_side_t *right, uint32_t nkeys,
                   tide_sjoin_how_t how, tide_schema_t *pair, const tide_expr_t *cond, tide_sjoin_t **out,
                   tide_err_t *err) {
  *out = NULL;
  if (how < TIDE_SJOIN_INNER || how > TIDE_SJOIN_LEFT_SEMI) return tide_err_set(err, TIDE_EINVAL, "bad join type");
  uint32_t nl = left->schema->nfields, nr = right->schema->nfields;
  if (pair->nfields != nl + nr) return tide_err_set(err, TIDE_EINVAL, "the pair schema must have %u fields", nl + nr);
  for (uint32_t i = 0; i < nl + nr; i++) {
    tide_type_t t = i < nl ? left->schema->fields[i].type : right->schema->fields[i - nl].type;
    if (pair->fields[i].type != t) return tide_err_set(err, TIDE_EINVAL, "pair field %u has another type", i + 1);
  }
  for (uint32_t k = 0; k < nkeys; k++) {
    if (left->keys[k] >= nl || right->keys[k] >= nr) return tide_err_set(err, TIDE_EINVAL, "key %u out of range", k);
    tide_type_t a = left->schema->fields[left->keys[k]].type, b = right->schema->fields[right->keys[k]].type;
    if (a != b && !(is_num(a) && is_num(b)))
      return tide_err_set(err, TIDE_EINVAL, "join key %u: left is %s, right is %s", k, tide_type_name(a),
                          tide_type_name(b));
  }
  if (cond && tide_expr_type(cond) != TIDE_T_BOOL) return tide_err_set(err, TIDE_EINVAL, "the condition must be bool");
  tide_sjoin_t *j = calloc(1, sizeof *j);
  if (!j) return tide_err_set(err, -ENOMEM, "out of memory");
  j->nkeys = nkeys;
  j->how = how;
  j->cond = cond;
  j->track[0] = how == TIDE_SJOIN_LEFT || how == TIDE_SJOIN_FULL || how == TIDE_SJOIN_LEFT_SEMI;
  j->track[1] = how == TIDE_SJOIN_RIGHT || how == TIDE_SJOIN_FULL;
  int rc = side_init(&j->s[0], left, nkeys, "left", err);
  if (!rc) rc = side_init(&j->s[1], right, nkeys, "right", err);
  if (rc) {
    tide_sjoin_free(j);
    return rc;
  }
  j->pair = tide_schema_ref(pair);
  *out = j;
  return 0;
}

void tide_sjoin_free(tide_sjoin_t *j) {
  if (!j) return;
  side_free(&j->s[0]);
  side_free(&j->s[1]);
  if (j->pair) tide_schema_unref(j->pair);
  free(j);
}

/* --------------------------------------------------------------- a batch */

/* The pair batch of (l[i], r[i]) i < n: left columns from the left table,
 * right ones from the right table (NONE: NULLs). */
static int gather_pairs(const tide_sjoin_t *j, const uint32_t *l, const uint32_t *r, size_t n, tide_batch_t **out) {
  uint32_t nl = j->s[0].schema->nfields, nr = j->s[1].schema->nfields;
  tide_col_t *cols = calloc(nl + nr ? nl + nr : 1, sizeof *cols);
  if (!cols) return -ENOMEM;
  int rc = 0;
  for (uint32_t c = 0; c < nl && !rc; c++) rc = tide_col_gather(&j->s[0].rows->cols[c], l, (uint32_t)n, &cols[c]);
  for (uint32_t c = 0; c < nr && !rc; c++)
    rc = tide_col_gather(&j->s[1].rows->cols[c], r, (uint32_t)n, &cols[nl + c]);
  if (rc) {
    for (uint32_t c = 0; c < nl + nr; c++) tide_col_free(&cols[c]);
    free(cols);
    return rc;
  }
  *out = tide_batch_adopt(j->pair, (uint32_t)n, cols);
  free(cols);
  return *out ? 0 : -ENOMEM;
}

/* Of the candidate pairs, those where the condition is TRUE (in place). */
static int filter_pairs(const tide_sjoin_t *j, pairs_t *c, tide_err_t *err) {
  if (!j->cond || !c->n) return 0;
  tide_batch_t *b = NULL;
  int rc = gather_pairs(j, c->l, c->r, c->n, &b);
  if (rc) return tide_err_set(err, rc, "out of memory");
  uint32_t *sel = malloc(c->n * sizeof *sel), m = 0;
  if (!sel) {
    tide_batch_free(b);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  rc = tide_expr_select(j->cond, b, sel, &m, err);
  tide_batch_free(b);
  if (!rc) {
    for (uint32_t i = 0; i < m; i++) {
      c->l[i] = c->l[sel[i]];
      c->r[i] = c->r[sel[i]];
    }
    c->n = m;
  }
  free(sel);
  return rc;
}

/* Side `si`'s new rows (the batch `in`): late rows dropped, the rest
 * appended to its table; the kept candidates matched against the other
 * side; output and state as sjoin.h's steps 1 and 2 say. */
static int run_side(tide_sjoin_t *j, int si, const tide_batch_t *in, const tide_sjoin_bounds_t *bd, pairs_t *out,
                    tide_sjoin_stats_t *st, tide_err_t *err) {
  side_t *s = &j->s[si], *o = &j->s[1 - si];
  uint32_t n = in->nrows;
  if (in->schema->nfields != s->schema->nfields)
    return tide_err_set(err, TIDE_EINVAL, "%s input has %u columns, the join's side %u", si ? "right" : "left",
                        in->schema->nfields, s->schema->nfields);
  for (uint32_t c = 0; c < in->schema->nfields; c++)
    if (in->cols[c].type != s->schema->fields[c].type)
      return tide_err_set(err, TIDE_EINVAL, "%s input column %u has another type", si ? "right" : "left", c + 1);
  uint8_t *pass = NULL, *nul = NULL;
  uint32_t *sel = NULL;
  pairs_t cand = {0};
  int rc = 0;
  /* which rows pass the side's own conditions */
  if (!(pass = malloc(n ? n : 1))) return tide_err_set(err, -ENOMEM, "out of memory");
  memset(pass, 1, n ? n : 1);
  if (s->pre && n) {
    uint32_t m = 0;
    if (!(sel = malloc(n * sizeof *sel))) {
      rc = tide_err_set(err, -ENOMEM, "out of memory");
      goto done;
    }
    if ((rc = tide_expr_select(s->pre, in, sel, &m, err))) goto done;
    memset(pass, 0, n);
    for (uint32_t i = 0; i < m; i++) pass[sel[i]] = 1;
  }
  /* append the rows that are not late */
  uint32_t lo = s->rows->nrows;
  const tide_col_t *lc = s->late_col >= 0 && bd->has_late ? &in->cols[s->late_col] : NULL;
  if ((rc = side_reserve(s, (size_t)lo + n)) || (rc = tide_batch_reserve(s->rows, n))) goto oom;
  for (uint32_t i = 0; i < n; i++) {
    if (lc && !tide_col_is_null(lc, i) && tide_col_i64(lc, i) <= bd->late) {
      st->late[si]++;
      continue;
    }
    uint32_t r = s->rows->nrows;
    if ((rc = tide_batch_append_row(s->rows, in, i))) goto oom;
    s->flags[r] = pass[i] ? F_KEPT : 0;
    s->ids[r] = 0;
  }
  uint32_t hi = s->rows->nrows;
  if ((rc = hash_range(j, s, lo, &nul))) goto oom;
  /* candidates against the other side's index */
  if ((rc = index_room(o, 0))) goto oom;
  size_t mask = o->tcap - 1;
  for (uint32_t r = lo; r < hi; r++) {
    if (!(s->flags[r] & F_KEPT) || nul[r - lo]) continue;
    for (size_t pos = s->hash[r] & mask; o->tab[pos].used; pos = (pos + 1) & mask) {
      const ent_t *e = &o->tab[pos];
      if (e->h != s->hash[r]) continue;
      for (uint32_t x = e->head; x != NONE; x = o->next[x]) {
        if (!(o->flags[x] & F_INDEXED) ||
            !tide__join_keys_eq(s->rows, s->keys, r, o->rows, o->keys, x, j->nkeys))
          continue;
        if ((rc = si ? pairs_add(&cand, x, r) : pairs_add(&cand, r, x))) goto oom;
      }
      break;
    }
  }
  if ((rc = filter_pairs(j, &cand, err))) goto done;
  /* matches: flags and output */
  int semi = j->how == TIDE_SJOIN_LEFT_SEMI;
  for (size_t i = 0; i < cand.n; i++) {
    uint32_t l = cand.l[i], r = cand.r[i];
    side_t *L = &j->s[0], *R = &j->s[1];
    int l_new = !(L->flags[l] & F_MATCHED);
    if (semi) {
      if (l_new && (rc = pairs_add(out, l, NONE))) goto oom;
    } else if ((rc = pairs_add(out, l, r))) {
      goto oom;
    }
    if (l_new) L->flags[l] |= F_MATCHED | (j->track[0] ? F_DIRTY : 0);
    if (!(R->flags[r] & F_MATCHED)) R->flags[r] |= F_MATCHED | (j->track[1] ? F_DIRTY : 0);
  }
  /* the new rows into the state (or out at once) */
  int outer_here = si == 0 ? (j->how == TIDE_SJOIN_LEFT || j->how == TIDE_SJOIN_FULL)
                           : (j->how == TIDE_SJOIN_RIGHT || j->how == TIDE_SJOIN_FULL);
  const tide_col_t *ec = s->evict_col >= 0 && bd->has_evict[si] ? &s->rows->cols[s->evict_col] : NULL;
  uint32_t adds = 0;
  for (uint32_t r = lo; r < hi; r++) {
    if (!(s->flags[r] & F_KEPT)) {
      if (outer_here && (rc = si ? pairs_add(out, NONE, r) : pairs_add(out, r, NONE))) goto oom;
      continue;
    }
    if (semi && si == 0 && (s->flags[r] & F_MATCHED)) { /* emitted at once, not kept (as Spark) */
      s->flags[r] = 0;
      continue;
    }
    s->flags[r] |= F_DIRTY;
    s->ids[r] = s->next_id++;
    s->kept++;
    /* Spark does not count a right row that this batch evicts at once (unless it still owes an outer row) */
    int evicted_now = ec && !tide_col_is_null(ec, r) && tide_col_i64(ec, r) <= bd->evict[si];
    if (!(si == 1 && evicted_now && ((s->flags[r] & F_MATCHED) || !outer_here))) adds++;
    if (!nul[r - lo]) {
      if ((rc = index_room(s, 1))) goto oom;
      index_put(s, r);
    }
  }
  st->updated += adds;
  goto done;
oom:
  rc = tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "too many join rows in one batch" : tide_strerror(rc));
done:
  free(pass);
  free(nul);
  free(sel);
  pairs_free(&cand);
  return rc;
}

/* Step 3: remove side si's rows with evict_col <= its bound; an outer side
 * emits the unmatched ones. */
static int evict_side(tide_sjoin_t *j, int si, const tide_sjoin_bounds_t *bd, pairs_t *out, tide_sjoin_stats_t *st) {
  side_t *s = &j->s[si];
  if (s->evict_col < 0 || !bd->has_evict[si]) return 0;
  int outer_here = si == 0 ? (j->how == TIDE_SJOIN_LEFT || j->how == TIDE_SJOIN_FULL)
                           : (j->how == TIDE_SJOIN_RIGHT || j->how == TIDE_SJOIN_FULL);
  const tide_col_t *c = &s->rows->cols[s->evict_col];
  uint32_t n = s->rows->nrows;
  int rc = 0;
  for (uint32_t r = 0; r < n && !rc; r++) {
    if (!(s->flags[r] & F_KEPT) || tide_col_is_null(c, r) || tide_col_i64(c, r) > bd->evict[si]) continue;
    if (outer_here && !(s->flags[r] & F_MATCHED)) rc = si ? pairs_add(out, NONE, r) : pairs_add(out, r, NONE);
    if (!rc) rc = unkeep(s, r);
    if (!rc) st->evicted++;
  }
  return rc;
}

int tide_sjoin_run(tide_sjoin_t *j, const tide_batch_t *in[2], const tide_sjoin_bounds_t *b, tide_batch_t **out,
                   tide_sjoin_stats_t *st, tide_err_t *err) {
  *out = NULL;
  memset(st, 0, sizeof *st);
  pairs_t o = {0};
  int rc = 0;
  for (int si = 0; si < 2 && !rc; si++) {
    if ((rc = index_room(&j->s[si], 0))) return tide_err_set(err, rc, "out of memory");
    if (in[si]) rc = run_side(j, si, in[si], b, &o, st, err);
  }
  for (int si = 0; si < 2 && !rc; si++)
    if ((rc = evict_side(j, si, b, &o, st))) tide_err_set(err, rc, "out of memory");
  if (!rc && (rc = gather_pairs(j, o.l, o.r, o.n, out))) tide_err_set(err, rc, "out of memory");
  pairs_free(&o);
  /* compaction: when the rows not kept outnumber the kept ones */
  for (int si = 0; si < 2 && !rc; si++) {
    side_t *s = &j->s[si];
    uint64_t dead = s->rows->nrows - s->kept;
    if (dead > 1024 && dead > s->kept && (rc = compact(s))) tide_err_set(err, rc, "out of memory");
  }
  if (rc) {
    tide_batch_free(*out);
    *out = NULL;
  }
  return rc;
}

uint64_t tide_sjoin_rows(const tide_sjoin_t *j) { return j->s[0].kept + j->s[1].kept; }

size_t tide_sjoin_bytes(const tide_sjoin_t *j) {
  size_t b = sizeof *j;
  for (int si = 0; si < 2; si++) {
    const side_t *s = &j->s[si];
    b += tide_batch_bytes(s->rows) + s->acap * (1 + 8 + 8 + 4) + s->tcap * sizeof(ent_t) +
         s->dcap * sizeof(tide_sjoin_ref_t);
  }
  return b;
}

/* ---------------------------------------------------------- checkpoints */

int tide_sjoin_changes(const tide_sjoin_t *j, tide_sjoin_ref_t **dels, size_t *ndels, tide_sjoin_ref_t **puts,
                       size_t *nputs) {
  size_t nd = j->s[0].ndels + j->s[1].ndels, np = 0;
  for (int si = 0; si < 2; si++)
    for (uint32_t r = 0; r < j->s[si].rows->nrows; r++) np += (j->s[si].flags[r] & (F_KEPT | F_DIRTY)) == (F_KEPT | F_DIRTY);
  tide_sjoin_ref_t *d = malloc((nd ? nd : 1) * sizeof *d), *p = malloc((np ? np : 1) * sizeof *p);
  if (!d || !p) {
    free(d);
    free(p);
    return -ENOMEM;
  }
  size_t k = 0;
  for (int si = 0; si < 2; si++)
    for (size_t i = 0; i < j->s[si].ndels; i++) {
      d[k] = j->s[si].dels[i];
      d[k++].side = (uint8_t)si;
    }
  k = 0;
  for (int si = 0; si < 2; si++) {
    const side_t *s = &j->s[si];
    for (uint32_t r = 0; r < s->rows->nrows; r++)
      if ((s->flags[r] & (F_KEPT | F_DIRTY)) == (F_KEPT | F_DIRTY)) {
        p[k].side = (uint8_t)si;
        p[k].id = s->ids[r];
        p[k++].row = r;
      }
  }
  *dels = d, *ndels = nd, *puts = p, *nputs = np;
  return 0;
}

void tide_sjoin_clear_changes(tide_sjoin_t *j) {
  for (int si = 0; si < 2; si++) {
    side_t *s = &j->s[si];
    s->ndels = 0;
    for (uint32_t r = 0; r < s->rows->nrows; r++)
      if ((s->flags[r] & (F_KEPT | F_DIRTY)) == (F_KEPT | F_DIRTY))
        s->flags[r] = (uint8_t)((s->flags[r] & ~F_DIRTY) | F_SAVED);
  }
}

/*
 * A record (docs/FORMAT.md), little-endian:
 *   u8 version (1) | u8 side (0 left, 1 right) | u16 ncols | u8 type x ncols
 *   | u8 matched (0/1) | per column: u8 NULL flag, then the value when 0
 *   | u32 CRC-32C of everything before it
 * A value: bool 1 byte; int, timestamp, double 8 bytes; string, json u32
 * length and the bytes.
 */
static int put_le(tide_buf_t *b, uint64_t v, int n) {
  uint8_t x[8];
  for (int i = 0; i < n; i++) x[i] = (uint8_t)(v >> (8 * i));
  return tide_buf_append(b, x, (size_t)n);
}

int tide_sjoin_encode(const tide_sjoin_t *j, int side, uint32_t row, tide_buf_t *b) {
  const side_t *s = &j->s[side];
  const tide_batch_t *t = s->rows;
  size_t start = b->len;
  uint32_t nc = s->schema->nfields;
  int rc = put_le(b, REC_VERSION, 1);
  if (!rc) rc = put_le(b, (uint64_t)side, 1);
  if (!rc) rc = put_le(b, nc, 2);
  for (uint32_t c = 0; c < nc && !rc; c++) rc = put_le(b, (uint64_t)s->schema->fields[c].type, 1);
  if (!rc) rc = put_le(b, (s->flags[row] & F_MATCHED) ? 1 : 0, 1);
  for (uint32_t c = 0; c < nc && !rc; c++) {
    const tide_col_t *col = &t->cols[c];
    int isnull = tide_col_is_null(col, row);
    if ((rc = put_le(b, (uint64_t)isnull, 1)) || isnull) continue;
    switch (col->type) {
    case TIDE_T_BOOL: rc = put_le(b, (uint64_t)tide_col_bool(col, row), 1); break;
    case TIDE_T_DOUBLE: {
      double d = tide_col_f64(col, row);
      uint64_t u;
      memcpy(&u, &d, 8);
      rc = put_le(b, u, 8);
      break;
    }
    case TIDE_T_STRING:
    case TIDE_T_JSON: {
      size_t len;
      const char *p = tide_col_str(col, row, &len);
      if (!(rc = put_le(b, len, 4))) rc = tide_buf_append(b, p, len);
      break;
    }
    default: rc = put_le(b, (uint64_t)tide_col_i64(col, row), 8);
    }
  }
  if (!rc) rc = put_le(b, tide_crc32c(0, b->data + start, b->len - start), 4);
  if (rc) b->len = start;
  return rc;
}

static uint64_t get_le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n; i-- > 0;) v = (v << 8) | p[i];
  return v;
}

int tide_sjoin_restore(tide_sjoin_t *j, int side, uint64_t id, const void *rec, size_t len, tide_err_t *err) {
  const char *which = side ? "right" : "left";
  if (side != 0 && side != 1) return tide_err_set(err, TIDE_EINVAL, "bad side %d", side);
  side_t *s = &j->s[side];
  const uint8_t *p = rec, *end = p + len;
  uint32_t nc = s->schema->nfields;
  if (len < 9 || id == 0) return tide_err_set(err, TIDE_ECORRUPT, "join state (%s) %llu: damaged record", which, (unsigned long long)id);
  if (p[0] != REC_VERSION)
    return tide_err_set(err, TIDE_EFORMAT, "join state (%s) %llu: unknown record version %u", which,
                        (unsigned long long)id, p[0]);
  if (tide_crc32c(0, p, len - 4) != (uint32_t)get_le(end - 4, 4))
    return tide_err_set(err, TIDE_ECORRUPT, "join state (%s) %llu: damaged record (checksum mismatch)", which,
                        (unsigned long long)id);
  end -= 4;
  if (p[1] != side || get_le(p + 2, 2) != nc || (size_t)(end - p) < 4u + nc + 1u)
    return tide_err_set(err, TIDE_ESCHEMA, "join state (%s) %llu: a record of another join (its side or columns "
                        "differ)", which, (unsigned long long)id);
  for (uint32_t c = 0; c < nc; c++)
    if (p[4 + c] != (uint8_t)s->schema->fields[c].type)
      return tide_err_set(err, TIDE_ESCHEMA, "join state (%s) %llu: column %u has another type", which,
                          (unsigned long long)id, c + 1);
  uint8_t matched = p[4 + nc];
  if (matched > 1) return tide_err_set(err, TIDE_ECORRUPT, "join state (%s) %llu: bad matched flag", which, (unsigned long long)id);
  p += 5 + nc;
  for (uint32_t r = 0; r < s->rows->nrows; r++)
    if ((s->flags[r] & F_KEPT) && s->ids[r] == id)
      return tide_err_set(err, TIDE_ECORRUPT, "join state (%s): record %llu restored twice", which, (unsigned long long)id);
  int rc = side_reserve(s, (size_t)s->rows->nrows + 1);
  if (!rc) rc = tide_batch_row_begin(s->rows);
  if (rc) return tide_err_set(err, rc, "out of memory");
  for (uint32_t c = 0; c < nc; c++) {
    if (p >= end || *p > 1) goto bad;
    if (*p++) continue;
    switch (s->schema->fields[c].type) {
    case TIDE_T_BOOL:
      if (p >= end || *p > 1) goto bad;
      tide_batch_set_bool(s->rows, c, *p++);
      break;
    case TIDE_T_DOUBLE: {
      if (end - p < 8) goto bad;
      uint64_t u = get_le(p, 8);
      double d;
      memcpy(&d, &u, 8);
      tide_batch_set_f64(s->rows, c, d);
      p += 8;
      break;
    }
    case TIDE_T_STRING:
    case TIDE_T_JSON: {
      if (end - p < 4) goto bad;
      uint64_t n = get_le(p, 4);
      p += 4;
      if ((uint64_t)(end - p) < n) goto bad;
      if ((rc = tide_batch_set_str(s->rows, c, (const char *)p, (size_t)n))) {
        tide_batch_row_abort(s->rows);
        return tide_err_set(err, rc, "out of memory");
      }
      p += n;
      break;
    }
    default:
      if (end - p < 8) goto bad;
      tide_batch_set_i64(s->rows, c, (int64_t)get_le(p, 8));
      p += 8;
    }
  }
  if (p != end) goto bad;
  tide_batch_row_commit(s->rows);
  uint32_t r = s->rows->nrows - 1;
  s->flags[r] = (uint8_t)(F_KEPT | F_SAVED | (matched ? F_MATCHED : 0));
  s->ids[r] = id;
  if (id >= s->next_id) s->next_id = id + 1;
  s->kept++;
  /* its hash and index entry: the index is rebuilt before the next run */
  uint8_t nul = 0;
  tide_batch_t *one = NULL;
  if ((rc = tide_batch_slice(s->rows, r, r + 1, &one))) return tide_err_set(err, rc, "out of memory");
  tide__join_hash_rows(one, s->keys, j->nkeys, &s->hash[r], &nul);
  tide_batch_free(one);
  if (!nul) s->flags[r] |= F_INDEXED;
  s->stale = 1;
  return 0;
bad:
  tide_batch_row_abort(s->rows);
  return tide_err_set(err, TIDE_ECORRUPT, "join state (%s) %llu: damaged record (cut or bad value)", which,
                      (unsigned long long)id);
}
