/*
 * agg.c: hash aggregation (rules in agg.h).
 *
 * Groups are numbered 0, 1, 2 ... in the order they are first seen; that
 * number (gid) indexes every per-group array, so the result is simply the
 * groups in gid order.
 *
 *   tab[tcap]     open addressing, linear probing, load <= 1/2. An entry is
 *                 0 (empty) or (hash >> 32) << 32 | (gid + 1); the slot is
 *                 hash & (tcap - 1), so the tag and the slot use different
 *                 bits of the hash.
 *   ghash[gcap]   each group's full 64-bit key hash (for rehashing).
 *   krec          gcap key records of `krec_size` bytes, one per group, so
 *                 that comparing a row with a group touches one cache line:
 *
 *                   +-- kc[0].off ... kc[k].off ----------+-- nulloff -----+
 *                   | one value per key column            | 1 byte per key |
 *                   +-------------------------------------+----------------+
 *                   fixed types: 8 bytes, the value's bits (doubles
 *                                normalised, see hash.h; bool 0/1)
 *                   string/json: 16 bytes, uint32 len, then
 *                                len <= 12: the bytes inline
 *                                len > 12:  4 bytes of prefix, then the
 *                                           uint64 offset of the bytes in
 *                                           `arena`
 *                   null byte:   1 when the key value is NULL (value 0/"")
 *                   then one more byte at dfoff: 1 when the group is in
 *                   the dirty list (kept here, in the line that the
 *                   probe for the group has just read), and at toff
 *                   (4-aligned) the u32 epoch the group was last touched
 *                   in (least recently touched groups spill first)
 *   states        gcap fixed-size slots of `slot` bytes; spec i's state is
 *                 at states + g * slot + specs[i].off, one of
 *                   int64_t              count(*), count(x)
 *                   st_num_t             sum, avg, min/max/first/last of a
 *                                        fixed-width type
 *                   st_str_t             min/max/first/last of string/json:
 *                                        one malloc'd buffer per group and
 *                                        spec, overwritten in place when the
 *                                        new value fits, grown otherwise
 *                   st_dist_t            count_distinct: a per-group open
 *                                        addressing set of (hash, value)
 *   arena         bytes of string keys and of distinct string values;
 *                 referenced by offset, so growth never invalidates them.
 *
 * tide_agg_update works a column at a time: one pass per key column folds
 * the column into the per-row hash vector h[], one pass probes the table and
 * writes gid[] (creating groups), then one pass per aggregate updates the
 * states. h[] and gid[] are scratch vectors kept in the aggregation and
 * reused, so nothing is allocated per row; memory grows with groups (and
 * distinct values) only.
 *
 *   sid[gcap]     each group's state id (agg.h), from next_sid.
 *   dirty[gcap]   the dirty gids, ascending, ndirty of them. An update
 *                 appends the old groups it finds (unless every old group
 *                 is dirty already, as when nobody clears) as it finds
 *                 them, re-sorts, then appends its new groups (their gids
 *                 are above every old one).
 *   arena_dead    arena bytes that belonged to evicted groups; the arena is
 *                 rebuilt from the live groups once it is half dead.
 *
 * sid[] ascends with gid (new groups take next_sid, above every sid; evict
 * and remove keep the order) unless records were restored out of sid
 * order, so a sid is found by binary search, or by a scan after such a
 * restore (sid_unsorted).
 *
 * Invariants: every slot of a group is zeroed when the group is created
 * (a zero state is the state of no rows); tab holds exactly ngroups entries;
 * ndirty <= ngroups and DFLAG(a, g) == (g is in dirty[]).
 * A failure part way through an update leaves the states half updated, so
 * the aggregation is then poisoned: later calls return TIDE_EPOISONED.
 */
#include "agg.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "crc32c.h"
#include "hash.h"
#include "pool.h"
#include "vec.h"
#include "window.h"

typedef struct st_num {
  union {
    uint64_t u;
    int64_t i;
    double d;
  } v;
  int64_t n; /* sum/min/max: has a value; avg: count; first/last: SEEN | ISNULL */
} st_num_t;

typedef struct st_str {
  char *p;
  uint32_t len, cap;
  uint32_t flags; /* SEEN (has a value for min/max) | ISNULL (first/last) */
} st_str_t;

typedef struct dent {
  uint64_t h;
  uint64_t v; /* the value's bits, or the arena offset of a string's bytes */
  uint32_t len;
  uint32_t used;
} dent_t;

typedef struct st_dist {
  dent_t *tab;
  uint32_t n, cap;
} st_dist_t;

enum { SEEN = 1, ISNULL = 2 };

typedef struct aspec {
  tide_agg_kind_t kind;
  tide_type_t type; /* argument type */
  uint32_t off;     /* of the state within a group's slot */
  int var;          /* string/json argument */
} aspec_t;

typedef struct kcol {
  tide_type_t type;
  uint32_t off; /* of the value in a key record */
} kcol_t;

#define INLINE 12 /* longest string key kept inside its key record */

struct tide_agg {
  tide_schema_t *keys, *schema;
  uint32_t nkeys, nspecs;
  aspec_t *specs;
  kcol_t *kc;
  size_t krec_size, nulloff;
  unsigned char *krec;
  size_t slot;
  uint32_t ngroups, gcap;
  uint64_t *ghash;
  unsigned char *states;
  uint64_t *tab;
  size_t tcap;
  tide_buf_t arena;
  size_t heap; /* bytes of string state buffers and distinct sets */
  uint64_t *h; /* scratch, scap rows */
  uint32_t *gid;
  uint32_t scap;
  uint64_t *sid;
  uint64_t next_sid;
  size_t dfoff; /* of the dirty flag in a key record */
  uint32_t *dirty;
  uint32_t ndirty;
  size_t arena_dead;
  int sid_unsorted; /* a restore put a sid below an older group's */
  int poisoned;
  /* spilling (agg.h) */
  size_t toff;           /* of the touch epoch (u32) in a key record */
  uint32_t epoch;        /* advances at every clear_dirty */
  uint64_t sid0;         /* next_sid at the last clear_dirty */
  int log_gone;
  uint64_t *gone_sid, *gone_hash; /* the log of removed groups */
  size_t ngone, capgone;
  uint64_t *taken_hash;  /* scratch of take_groups */
  const tide_agg_store_t *store;
  uint64_t spilled, spilled_total, loaded_total;
  int64_t *dmin;         /* per result column: <= the value of every group only in the store */
  /* the parallel push ("Parallel push" below) */
  double avg_abs;        /* sum of |x| over every int x averaged, plus |sum| of every restored average */
  int no_par;            /* avg_abs passed AVG_EXACT: pushes stay on one thread */
  uint64_t par_pushes;   /* pushes that ran on the pool */
  uint32_t nvar;         /* string/json key columns */
  tide_agg_t **parts;    /* one partial aggregation per task, kept between pushes */
  uint32_t nparts;
  tide_agg_t *late_keys; /* in a partial: the keys of its late rows (no aggregate) */
  /* a static aggregation ("Static aggregation" below) */
  tide_agg_t **hp;       /* nhp part tables, each owning the keys whose hash falls in its part */
  uint32_t nhp;
  uint64_t hp_next;      /* the stamp of the next partial group folded */
  /* a one-stage scan ("One-stage scan" below) */
  tide_agg_t **scan;     /* nscan worker tables, each aggregating whole ranges */
  uint32_t nscan;
  uint64_t scan_range;   /* in a worker table: the range it aggregates now */
  uint32_t scan_seq;     /* and the groups that range created so far */
  int hp_dead;           /* the hp tables are a scan's worker tables: not parted by hash, and
                          * a group folded into another's is dead (sid HP_DEAD) */
  uint64_t hp_killed;    /* the dead groups of the hp tables */
};

#define HP_DEAD UINT64_MAX

static int unpart(tide_agg_t *a, tide_err_t *err);
static int hp_result(const tide_agg_t *a, tide_batch_t **out, tide_err_t *err);

/* Calls that change or read groups through a non-const pointer fold a
 * static aggregation's parts back into one table first ("Static
 * aggregation"). */
#define UNPART(a, err)                        \
  do {                                        \
    if ((a)->nhp) {                           \
      int urc_ = unpart((a), (err));          \
      if (urc_) return urc_;                  \
    }                                         \
  } while (0)

/* 1 for the variable-width types (bytes in data, offsets in values). */
static int is_var(tide_type_t t) { return t == TIDE_T_STRING || t == TIDE_T_JSON; }

/* The aggregate's name as errors show it. */
static const char *kind_name(tide_agg_kind_t k) {
  switch (k) {
  case TIDE_AGG_COUNT_STAR: return "count(*)";
  case TIDE_AGG_COUNT: return "count";
  case TIDE_AGG_SUM: return "sum";
  case TIDE_AGG_MIN: return "min";
  case TIDE_AGG_MAX: return "max";
  case TIDE_AGG_AVG: return "avg";
  case TIDE_AGG_FIRST: return "first";
  case TIDE_AGG_LAST: return "last";
  case TIDE_AGG_COUNT_DISTINCT: return "count_distinct";
  default: return "?";
  }
}

/* The result type of spec s (agg.h). */
static tide_type_t result_type(const tide_agg_spec_t *s) {
  switch (s->kind) {
  case TIDE_AGG_COUNT_STAR:
  case TIDE_AGG_COUNT:
  case TIDE_AGG_COUNT_DISTINCT: return TIDE_T_INT;
  case TIDE_AGG_AVG: return TIDE_T_DOUBLE;
  default: return s->arg_type;
  }
}

/* Bytes of the state of an aggregate of kind k over type t. */
static size_t state_size(tide_agg_kind_t k, tide_type_t t) {
  switch (k) {
  case TIDE_AGG_COUNT_STAR:
  case TIDE_AGG_COUNT: return sizeof(int64_t);
  case TIDE_AGG_COUNT_DISTINCT: return sizeof(st_dist_t);
  case TIDE_AGG_SUM:
  case TIDE_AGG_AVG: return sizeof(st_num_t);
  default: return is_var(t) ? sizeof(st_str_t) : sizeof(st_num_t);
  }
}

/* Check spec i and say why it does not apply. 0 or TIDE_EINVAL. */
static int check_spec(const tide_agg_spec_t *s, uint32_t i, tide_err_t *err) {
  if (s->kind < TIDE_AGG_COUNT_STAR || s->kind > TIDE_AGG_COUNT_DISTINCT)
    return tide_err_set(err, TIDE_EINVAL, "aggregate %u: unknown kind %d", i, (int)s->kind);
  if (!s->name) return tide_err_set(err, TIDE_EINVAL, "aggregate %u: no output name", i);
  if (s->kind == TIDE_AGG_COUNT_STAR) return 0;
  if (s->arg_type < TIDE_T_BOOL || s->arg_type > TIDE_T_JSON)
    return tide_err_set(err, TIDE_EINVAL, "%s: unknown argument type %d", kind_name(s->kind), (int)s->arg_type);
  if ((s->kind == TIDE_AGG_SUM || s->kind == TIDE_AGG_AVG) && s->arg_type != TIDE_T_INT &&
      s->arg_type != TIDE_T_DOUBLE)
    return tide_err_set(err, TIDE_EINVAL, "%s needs a number, got %s", kind_name(s->kind),
                        tide_type_name(s->arg_type));
  return 0;
}

/* Build the output schema: the key fields, then one field per spec. */
static int make_schema(tide_agg_t *a, const tide_agg_spec_t *specs, tide_err_t *err) {
  tide_schema_t *s = tide_schema_new();
  if (!s) return tide_err_set(err, -ENOMEM, "out of memory");
  int rc = 0;
  for (uint32_t i = 0; !rc && i < a->keys->nfields; i++) {
    const tide_field_t *f = &a->keys->fields[i];
    rc = tide_schema_add(s, f->name, f->name_len, f->type, f->nullable, NULL, err);
  }
  for (uint32_t i = 0; !rc && i < a->nspecs; i++) {
    tide_agg_kind_t k = specs[i].kind;
    int nullable = k != TIDE_AGG_COUNT_STAR && k != TIDE_AGG_COUNT && k != TIDE_AGG_COUNT_DISTINCT;
    rc = tide_schema_add(s, specs[i].name, strlen(specs[i].name), result_type(&specs[i]), nullable, NULL, err);
  }
  if (rc) {
    tide_schema_unref(s);
    return rc;
  }
  a->schema = s;
  return 0;
}

/* Create an aggregation (agg.h). Errors: TIDE_EINVAL (a spec that does not
 * apply, or an output name the schema rejects), -ENOMEM. */
int tide_agg_new(tide_schema_t *keys, const tide_agg_spec_t *specs, uint32_t nspecs, tide_agg_t **out,
                 tide_err_t *err) {
  *out = NULL;
  for (uint32_t i = 0; i < nspecs; i++) {
    int rc = check_spec(&specs[i], i, err);
    if (rc) return rc;
  }
  tide_agg_t *a = calloc(1, sizeof *a);
  if (!a) return tide_err_set(err, -ENOMEM, "out of memory");
  a->keys = tide_schema_ref(keys);
  a->nkeys = keys->nfields;
  a->nspecs = nspecs;
  a->specs = calloc(nspecs ? nspecs : 1, sizeof *a->specs);
  a->kc = calloc(a->nkeys ? a->nkeys : 1, sizeof *a->kc);
  a->tcap = 64;
  a->tab = calloc(a->tcap, sizeof *a->tab);
  a->next_sid = a->sid0 = 1;
  a->dmin = malloc((keys->nfields + nspecs) * sizeof *a->dmin + 1);
  if (!a->specs || !a->kc || !a->tab || !a->dmin) {
    tide_agg_free(a);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  size_t off = 0;
  for (uint32_t k = 0; k < a->nkeys; k++) {
    a->kc[k].type = keys->fields[k].type;
    a->kc[k].off = (uint32_t)off;
    a->nvar += is_var(a->kc[k].type);
    off += is_var(a->kc[k].type) ? 16 : 8;
  }
  a->nulloff = off;
  a->dfoff = off + a->nkeys;
  a->toff = (a->dfoff + 1 + 3) & ~(size_t)3;
  a->krec_size = (a->toff + 4 + 7) & ~(size_t)7;
  off = 0;
  for (uint32_t i = 0; i < nspecs; i++) {
    aspec_t *s = &a->specs[i];
    s->kind = specs[i].kind;
    s->type = s->kind == TIDE_AGG_COUNT_STAR ? TIDE_T_INT : specs[i].arg_type;
    s->var = s->kind != TIDE_AGG_COUNT_STAR && is_var(s->type);
    s->off = (uint32_t)off;
    off += state_size(s->kind, s->type); /* every size is a multiple of 8 */
  }
  a->slot = off;
  for (uint32_t c = 0; c < a->nkeys + nspecs; c++) a->dmin[c] = INT64_MAX;
  int rc = make_schema(a, specs, err);
  if (rc) {
    tide_agg_free(a);
    return rc;
  }
  *out = a;
  return 0;
}

/* Free the per-group buffers of every string state and distinct set. */
static void free_states(tide_agg_t *a) {
  for (uint32_t i = 0; i < a->nspecs; i++) {
    const aspec_t *s = &a->specs[i];
    int str = s->var && (s->kind == TIDE_AGG_MIN || s->kind == TIDE_AGG_MAX || s->kind == TIDE_AGG_FIRST ||
                         s->kind == TIDE_AGG_LAST);
    if (!str && s->kind != TIDE_AGG_COUNT_DISTINCT) continue;
    for (uint32_t g = 0; g < a->ngroups; g++) {
      void *st = a->states + (size_t)g * a->slot + s->off;
      if (str) free(((st_str_t *)st)->p);
      else free(((st_dist_t *)st)->tab);
    }
  }
}

/* Free the aggregation and everything it holds; NULL is a no-op. Result
 * batches made earlier stay valid (they own copies). */
void tide_agg_free(tide_agg_t *a) {
  if (!a) return;
  if (a->states) free_states(a);
  free(a->kc);
  free(a->krec);
  free(a->specs);
  free(a->ghash);
  free(a->states);
  free(a->tab);
  free(a->h);
  free(a->gid);
  free(a->sid);
  free(a->dirty);
  free(a->gone_sid);
  free(a->gone_hash);
  free(a->taken_hash);
  free(a->dmin);
  for (uint32_t i = 0; i < a->nparts; i++) tide_agg_free(a->parts[i]);
  free(a->parts);
  for (uint32_t i = 0; i < a->nhp; i++) tide_agg_free(a->hp[i]);
  free(a->hp);
  for (uint32_t i = 0; i < a->nscan; i++) tide_agg_free(a->scan[i]);
  free(a->scan);
  tide_agg_free(a->late_keys);
  tide_buf_free(&a->arena);
  tide_schema_unref(a->keys);
  tide_schema_unref(a->schema);
  free(a);
}

/* The output schema, borrowed: valid while a lives. */
tide_schema_t *tide_agg_schema(const tide_agg_t *a) { return a->schema; }

/* Groups seen so far (in a static aggregation, its part tables'). */
uint64_t tide_agg_groups(const tide_agg_t *a) {
  uint64_t n = a->ngroups;
  for (uint32_t q = 0; q < a->nhp; q++) n += a->hp[q]->ngroups;
  return n - a->hp_killed;
}

/* Bytes held: the per-group arrays at capacity, the table, the arena, the
 * string and distinct state buffers and the scratch vectors. */
size_t tide_agg_bytes(const tide_agg_t *a) {
  size_t per_group = 2 * sizeof(uint64_t) + a->slot + a->krec_size + sizeof(uint32_t), hp = 0;
  for (uint32_t q = 0; q < a->nhp; q++) hp += tide_agg_bytes(a->hp[q]);
  return hp + sizeof *a + (size_t)a->gcap * per_group + a->tcap * sizeof(uint64_t) + a->arena.cap + a->heap +
         (size_t)a->scap * (sizeof(uint64_t) + sizeof(uint32_t)) + a->capgone * 2 * sizeof(uint64_t);
}

/* ------------------------------------------------------------ groups --- */

/* Resize every per-group array to hold cap (>= ngroups) groups. 0 or
 * -ENOMEM. When growing, arrays already grown stay larger, which is
 * harmless: gcap is set last. When shrinking (eviction) a failed realloc
 * leaves that array larger, so every array holds at least cap groups
 * either way and gcap becomes cap. */
static int resize_groups(tide_agg_t *a, uint32_t cap) {
  void *p;
#define RESIZE(field, size)                                  \
  if ((p = realloc(a->field, (size_t)cap * (size)))) a->field = p; \
  else if (cap > a->gcap) return -ENOMEM;
  RESIZE(ghash, sizeof *a->ghash)
  RESIZE(states, a->slot ? a->slot : 1)
  RESIZE(krec, a->krec_size ? a->krec_size : 1)
  RESIZE(sid, sizeof *a->sid)
  RESIZE(dirty, sizeof *a->dirty)
#undef RESIZE
  a->gcap = cap;
  return 0;
}

/* Room for one more group in the per-group arrays and the table (load
 * <= 1/2). *grew is set when the table was rebuilt. 0, -ENOMEM or
 * TIDE_ETOOBIG. */
static int grow_table(tide_agg_t *a);
static int room_for_group(tide_agg_t *a, int *grew) {
  uint32_t g = a->ngroups;
  *grew = 0;
  if (g >= UINT32_MAX - 1) return TIDE_ETOOBIG;
  if (g == a->gcap) {
    uint32_t cap = a->gcap ? (a->gcap > UINT32_MAX / 2 ? UINT32_MAX - 1 : a->gcap * 2) : 64;
    int rc = resize_groups(a, cap);
    if (rc) return rc;
  }
  if (((size_t)g + 1) * 2 > a->tcap) {
    int rc = grow_table(a);
    if (rc) return rc;
    *grew = 1;
  }
  return 0;
}

/* Double the table and re-insert every group. 0 or -ENOMEM. */
static int grow_table(tide_agg_t *a) {
  size_t cap = a->tcap * 2, mask = cap - 1;
  /* zeroed by writing, not calloc: calloc's fresh pages would be read
   * first (the probe below), which maps the shared zero page, and the
   * write after it then copies it and flushes the TLB of every CPU the
   * process runs on (with worker threads, an interrupt per page) */
  uint64_t *t = malloc(cap * sizeof *t);
  if (!t) return -ENOMEM;
  __asm__ volatile("" : : "r"(t) : "memory"); /* or the compiler makes it calloc again */
  memset(t, 0, cap * sizeof *t);
  for (uint32_t g = 0; g < a->ngroups; g++) {
    uint64_t hv = a->ghash[g];
    size_t pos = hv & mask;
    while (t[pos]) pos = (pos + 1) & mask;
    t[pos] = (hv >> 32) << 32 | ((uint64_t)g + 1);
  }
  free(a->tab);
  a->tab = t;
  a->tcap = cap;
  return 0;
}

/* The bits under which a fixed-width value of row i is stored and compared. */
static inline uint64_t fixed_bits(const tide_col_t *c, uint32_t i) {
  switch (c->type) {
  case TIDE_T_BOOL: return ((const uint8_t *)c->values)[i];
  case TIDE_T_DOUBLE: return tide__norm_f64(((const double *)c->values)[i]);
  default: return ((const uint64_t *)c->values)[i];
  }
}

/* 1 when a[0..len) == b[0..len), for len <= 16, without calling memcmp
 * and without reading outside either range. */
static inline int small_eq(const uint8_t *a, const uint8_t *b, size_t len) {
  if (len >= 8) return tide__r8(a) == tide__r8(b) && tide__r8(a + len - 8) == tide__r8(b + len - 8);
  if (len >= 4) return tide__r4(a) == tide__r4(b) && tide__r4(a + len - 4) == tide__r4(b + len - 4);
  for (size_t i = 0; i < len; i++)
    if (a[i] != b[i]) return 0;
  return 1;
}

/* The bytes and length of the string key stored at v (a key record's
 * 16-byte string value). Valid until the arena grows. */
/* The arena's bytes at `at`: "" while the arena holds nothing (only empty
 * strings so far: its data is NULL, and NULL + 0 is undefined). */
static inline const char *arena_at(const tide_agg_t *a, uint64_t at) {
  return a->arena.data ? a->arena.data + at : "";
}

static inline const char *kstr(const tide_agg_t *a, const unsigned char *v, uint32_t *len) {
  memcpy(len, v, 4);
  if (*len <= INLINE) return (const char *)v + 4;
  uint64_t at;
  memcpy(&at, v + 8, 8);
  return a->arena.data + at;
}

/* 1 when row i of the key batch has the key of group g. */
static inline int key_eq(const tide_agg_t *a, uint32_t g, const tide_batch_t *keys, uint32_t i) {
  const unsigned char *rec = a->krec + (size_t)g * a->krec_size;
  for (uint32_t k = 0; k < a->nkeys; k++) {
    const kcol_t *kc = &a->kc[k];
    const tide_col_t *c = &keys->cols[k];
    const unsigned char *v = rec + kc->off;
    int null = tide_col_is_null(c, i);
    if (null != rec[a->nulloff + k]) return 0;
    if (null) continue;
    if (is_var(kc->type)) {
      size_t slen;
      const uint8_t *p = (const uint8_t *)tide_col_str(c, i, &slen); /* data may be NULL */
      uint32_t len = (uint32_t)slen, glen;
      memcpy(&glen, v, 4);
      if (len != glen) return 0;
      if (len <= INLINE) {
        if (!small_eq(v + 4, p, len)) return 0;
      } else {
        uint64_t at;
        memcpy(&at, v + 8, 8);
        if (tide__r4(v + 4) != tide__r4(p) || memcmp(a->arena.data + at, p, len)) return 0;
      }
    } else {
      uint64_t bits;
      memcpy(&bits, v, 8);
      if (bits != fixed_bits(c, i)) return 0;
    }
  }
  return 1;
}

/* Make row i's key the new group a->ngroups (with hash hv and zeroed
 * states). The caller has made room in the per-group arrays. 0 or -ENOMEM. */
static int add_group(tide_agg_t *a, const tide_batch_t *keys, uint32_t i, uint64_t hv) {
  uint32_t g = a->ngroups;
  unsigned char *rec = a->krec + (size_t)g * a->krec_size;
  memset(rec, 0, a->krec_size);
  for (uint32_t k = 0; k < a->nkeys; k++) {
    const kcol_t *kc = &a->kc[k];
    const tide_col_t *c = &keys->cols[k];
    unsigned char *v = rec + kc->off;
    if ((rec[a->nulloff + k] = (uint8_t)tide_col_is_null(c, i))) continue;
    if (is_var(kc->type)) {
      const uint32_t *o = c->values;
      uint32_t len = o[i + 1] - o[i];
      memcpy(v, &len, 4);
      if (len <= INLINE) {
        if (len) memcpy(v + 4, c->data + o[i], len);
      } else {
        uint64_t at = a->arena.len;
        memcpy(v + 4, c->data + o[i], 4);
        memcpy(v + 8, &at, 8);
        int rc = tide_buf_append(&a->arena, c->data + o[i], len);
        if (rc) return rc;
      }
    } else {
      uint64_t bits = fixed_bits(c, i);
      memcpy(v, &bits, 8);
    }
  }
  a->ghash[g] = hv;
  if (a->slot) memset(a->states + (size_t)g * a->slot, 0, a->slot);
  a->sid[g] = a->next_sid++; /* the record's memset cleared its dirty flag */
  a->ngroups = g + 1;
  return 0;
}

/* h[0..n) = the hash of each row's key, a column at a time. */
static void hash_keys(tide_agg_t *a, const tide_batch_t *keys, uint32_t n) {
  uint64_t *h = a->h;
  for (uint32_t i = 0; i < n; i++) h[i] = TIDE__HSEED;
  for (uint32_t k = 0; k < a->nkeys; k++) {
    const tide_col_t *c = &keys->cols[k];
    int nulls = c->valid && c->null_count;
    tide__hash_col(c, n, h, 0);
    /* A NULL row hashed its (zero) value above; fold in a marker too, so
     * that NULL and 0 (or "") usually land apart. */
    if (nulls)
      for (uint32_t i = 0; i < n; i++)
        if (tide_col_is_null(c, i)) h[i] = tide__hash_null(h[i]);
  }
}

#define PREFETCH 16

/* Group g's dirty flag (a byte of its key record). */
#define DFLAG(a, g) ((a)->krec[(size_t)(g) * (a)->krec_size + (a)->dfoff])

/* Group g's touch epoch (in its key record, next to the dirty flag). */
static inline void touch(tide_agg_t *a, uint32_t g) {
  memcpy(a->krec + (size_t)g * a->krec_size + a->toff, &a->epoch, 4);
}
static inline uint32_t touched(const tide_agg_t *a, uint32_t g) {
  uint32_t e;
  memcpy(&e, a->krec + (size_t)g * a->krec_size + a->toff, 4);
  return e;
}

/* gid[0..n) = each row's group, creating the groups not seen before.
 * 0, -ENOMEM or TIDE_ETOOBIG (more than 2^32 - 2 groups). */
static int find_groups(tide_agg_t *a, const tide_batch_t *keys, uint32_t n) {
  const uint64_t *h = a->h;
  uint32_t *gid = a->gid;
  size_t mask = a->tcap - 1;
  /* mark the old groups found dirty, unless all of them are already */
  uint32_t g0 = a->ngroups;
  int track = a->ndirty < g0;
  for (uint32_t i = 0; i < n; i++) {
    /* The table is hit at random: fetch the slot of a row PREFETCH ahead
     * while this one is probed (the hashes are all known already). */
    if (i + PREFETCH < n) __builtin_prefetch(&a->tab[h[i + PREFETCH] & mask]);
    if (i + PREFETCH / 2 < n) { /* its slot is cached by now: fetch the group */
      uint64_t e2 = a->tab[h[i + PREFETCH / 2] & mask];
      if (e2) {
        __builtin_prefetch(a->krec + ((uint32_t)e2 - 1) * a->krec_size);
        __builtin_prefetch(a->states + ((uint32_t)e2 - 1) * a->slot);
      }
    }
    uint64_t hv = h[i], tag = hv >> 32 << 32, e;
    size_t pos = hv & mask;
    while ((e = a->tab[pos])) {
      if ((e & 0xffffffff00000000ull) == tag && key_eq(a, (uint32_t)e - 1, keys, i)) break;
      pos = (pos + 1) & mask;
    }
    if (e) {
      uint32_t g = (uint32_t)e - 1;
      gid[i] = g;
      touch(a, g);
      if (track && g < g0 && !DFLAG(a, g)) {
        DFLAG(a, g) = 1;
        a->dirty[a->ndirty++] = g;
      }
      continue;
    }
    /* a new group */
    uint32_t g = a->ngroups;
    int grew, rc = room_for_group(a, &grew);
    if (rc) return rc;
    if (grew) {
      mask = a->tcap - 1;
      pos = hv & mask;
      while (a->tab[pos]) pos = (pos + 1) & mask;
    }
    rc = add_group(a, keys, i, hv);
    if (rc) return rc;
    touch(a, g);
    a->tab[pos] = tag | ((uint64_t)g + 1);
    gid[i] = g;
  }
  return 0;
}

/* ------------------------------------------------------------ states --- */

#define STATE(a, g, off) ((void *)((a)->states + (size_t)(g) * (a)->slot + (off)))

/* Store p[0..len) in string state st, reusing its buffer when it fits.
 * 0 or -ENOMEM. */
static int str_set(tide_agg_t *a, st_str_t *st, const char *p, uint32_t len) {
  if (len > st->cap) {
    uint32_t cap = len < 16 ? 16 : len;
    char *q = realloc(st->p, cap);
    if (!q) return -ENOMEM;
    a->heap += cap - st->cap;
    st->p = q;
    st->cap = cap;
  }
  if (len) memcpy(st->p, p, len);
  st->len = len;
  return 0;
}

/* Add value (hv, bits v or bytes p[0..len)) to distinct set st. 0 or -ENOMEM. */
static int dist_add(tide_agg_t *a, st_dist_t *st, int var, uint64_t hv, uint64_t v, const char *p, uint32_t len) {
  if ((st->n + 1) * 2 > st->cap) {
    uint32_t cap = st->cap ? st->cap * 2 : 8;
    dent_t *t = calloc(cap, sizeof *t);
    if (!t) return -ENOMEM;
    for (uint32_t i = 0; i < st->cap; i++) {
      if (!st->tab[i].used) continue;
      uint32_t pos = (uint32_t)st->tab[i].h & (cap - 1);
      while (t[pos].used) pos = (pos + 1) & (cap - 1);
      t[pos] = st->tab[i];
    }
    free(st->tab);
    a->heap += (size_t)(cap - st->cap) * sizeof *t;
    st->tab = t;
    st->cap = cap;
  }
  uint32_t mask = st->cap - 1, pos = (uint32_t)hv & mask;
  for (dent_t *e; (e = &st->tab[pos])->used; pos = (pos + 1) & mask) {
    if (e->h != hv) continue;
    if (!var ? e->v == v : e->len == len && (!len || !memcmp(a->arena.data + e->v, p, len))) return 0;
  }
  dent_t *e = &st->tab[pos];
  if (var) {
    v = a->arena.len;
    int rc = tide_buf_append(&a->arena, p, len);
    if (rc) return rc;
  }
  e->h = hv;
  e->v = v;
  e->len = len;
  e->used = 1;
  st->n++;
  return 0;
}

/* The compare of min/max over fixed-width values of type t: <0, 0, >0. */
static inline int cmp_fixed(tide_type_t t, uint64_t x, uint64_t y) {
  if (t == TIDE_T_DOUBLE) return tide__cmp_f64(tide__f64_of(x), tide__f64_of(y));
  if (t == TIDE_T_BOOL) return (int)x - (int)y;
  return (int64_t)x < (int64_t)y ? -1 : (int64_t)x > (int64_t)y;
}

/* Update the states of spec s for rows 0..n) with argument column c. */
static int update_spec(tide_agg_t *a, const aspec_t *s, const tide_col_t *c, uint32_t n) {
  const uint32_t *gid = a->gid;
  uint32_t off = s->off;
  int nulls = c && c->valid && c->null_count;
  int rc = 0;
  switch (s->kind) {
  case TIDE_AGG_COUNT_STAR:
    for (uint32_t i = 0; i < n; i++) (*(int64_t *)STATE(a, gid[i], off))++;
    return 0;
  case TIDE_AGG_COUNT:
    for (uint32_t i = 0; i < n; i++)
      if (!nulls || !tide_col_is_null(c, i)) (*(int64_t *)STATE(a, gid[i], off))++;
    return 0;
  case TIDE_AGG_SUM:
    if (s->type == TIDE_T_INT) {
      const uint64_t *v = c->values;
      for (uint32_t i = 0; i < n; i++) {
        if (nulls && tide_col_is_null(c, i)) continue;
        st_num_t *st = STATE(a, gid[i], off);
        st->v.u += v[i]; /* wraps, as Spark's long sum */
        st->n = 1;
      }
    } else {
      const double *v = c->values;
      for (uint32_t i = 0; i < n; i++) {
        if (nulls && tide_col_is_null(c, i)) continue;
        st_num_t *st = STATE(a, gid[i], off);
        st->v.d += v[i];
        st->n = 1;
      }
    }
    return 0;
  case TIDE_AGG_AVG:
    if (s->type == TIDE_T_INT) { /* avg_abs: see "Parallel push" */
      double abs_sum = 0;
      for (uint32_t i = 0; i < n; i++) {
        if (nulls && tide_col_is_null(c, i)) continue;
        st_num_t *st = STATE(a, gid[i], off);
        double x = (double)tide_col_i64(c, i);
        st->v.d += x;
        abs_sum += fabs(x);
        st->n++;
      }
      a->avg_abs += abs_sum;
      return 0;
    }
    for (uint32_t i = 0; i < n; i++) {
      if (nulls && tide_col_is_null(c, i)) continue;
      st_num_t *st = STATE(a, gid[i], off);
      st->v.d += tide_col_f64(c, i);
      st->n++;
    }
    return 0;
  case TIDE_AGG_MIN:
  case TIDE_AGG_MAX: {
    int sign = s->kind == TIDE_AGG_MIN ? -1 : 1; /* replace when sign * cmp(new, cur) > 0 */
    for (uint32_t i = 0; i < n; i++) {
      if (nulls && tide_col_is_null(c, i)) continue;
      if (s->var) {
        st_str_t *st = STATE(a, gid[i], off);
        size_t len;
        const char *p = tide_col_str(c, i, &len);
        if (!(st->flags & SEEN) || sign * tide__cmp_bytes(p, len, st->p, st->len) > 0) {
          if ((rc = str_set(a, st, p, (uint32_t)len))) return rc;
          st->flags = SEEN;
        }
      } else {
        st_num_t *st = STATE(a, gid[i], off);
        uint64_t v = s->type == TIDE_T_BOOL ? ((const uint8_t *)c->values)[i] : ((const uint64_t *)c->values)[i];
        if (!st->n || sign * cmp_fixed(s->type, v, st->v.u) > 0) {
          st->v.u = v;
          st->n = 1;
        }
      }
    }
    return 0;
  }
  case TIDE_AGG_FIRST:
  case TIDE_AGG_LAST: {
    int last = s->kind == TIDE_AGG_LAST;
    for (uint32_t i = 0; i < n; i++) {
      int null = nulls && tide_col_is_null(c, i);
      if (s->var) {
        st_str_t *st = STATE(a, gid[i], off);
        if (!last && (st->flags & SEEN)) continue;
        size_t len = 0;
        const char *p = null ? NULL : tide_col_str(c, i, &len);
        if ((rc = str_set(a, st, p, (uint32_t)len))) return rc;
        st->flags = SEEN | (null ? ISNULL : 0);
      } else {
        st_num_t *st = STATE(a, gid[i], off);
        if (!last && (st->n & SEEN)) continue;
        st->v.u = null ? 0 : s->type == TIDE_T_BOOL ? ((const uint8_t *)c->values)[i] : ((const uint64_t *)c->values)[i];
        st->n = SEEN | (null ? ISNULL : 0);
      }
    }
    return 0;
  }
  case TIDE_AGG_COUNT_DISTINCT:
    for (uint32_t i = 0; i < n; i++) {
      if (nulls && tide_col_is_null(c, i)) continue;
      st_dist_t *st = STATE(a, gid[i], off);
      if (s->var) {
        size_t len;
        const char *p = tide_col_str(c, i, &len);
        rc = dist_add(a, st, 1, tide__hash_bytes(TIDE__HSEED, p, len), 0, p, (uint32_t)len);
      } else {
        uint64_t v = fixed_bits(c, i);
        rc = dist_add(a, st, 0, tide__hash_u64(TIDE__HSEED, v), v, NULL, 0);
      }
      if (rc) return rc;
    }
    return 0;
  default: return TIDE_EINVAL;
  }
}

static int cmp_u32(const void *x, const void *y) {
  uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
  return a < b ? -1 : a > b;
}

/* Finish the dirty list after find_groups: it appended the old groups it
 * found (gids < g0) after the sorted run of the d0 dirty before, in row
 * order; sort them in, then append the groups this update created (g0..,
 * above every old gid). */
static void mark_dirty(tide_agg_t *a, uint32_t g0, uint32_t d0) {
  if (a->ndirty > d0 && a->ndirty > 1) {
    /* when many are dirty a scan of the flags is cheaper than a sort */
    if (a->ndirty > g0 / 8) {
      uint32_t d = 0;
      for (uint32_t g = 0; g < g0; g++)
        if (DFLAG(a, g)) a->dirty[d++] = g;
    } else {
      qsort(a->dirty, a->ndirty, sizeof *a->dirty, cmp_u32);
    }
  }
  for (uint32_t g = g0; g < a->ngroups; g++) {
    DFLAG(a, g) = 1;
    a->dirty[a->ndirty++] = g;
  }
}

/* Check that a key batch fits the aggregation. 0 or TIDE_EINVAL. */
static int check_keys(const tide_agg_t *a, const tide_batch_t *keys, tide_err_t *err) {
  if (keys->schema->nfields != a->nkeys)
    return tide_err_set(err, TIDE_EINVAL, "key batch has %u columns, expected %u", keys->schema->nfields, a->nkeys);
  for (uint32_t k = 0; k < a->nkeys; k++)
    if (keys->cols[k].type != a->kc[k].type)
      return tide_err_set(err, TIDE_EINVAL, "key column %u: expected %s, got %s", k, tide_type_name(a->kc[k].type),
                          tide_type_name(keys->cols[k].type));
  return 0;
}

/* Check that keys and args fit the aggregation. 0 or TIDE_EINVAL. */
static int check_input(const tide_agg_t *a, const tide_batch_t *keys, const tide_col_t *const *args,
                       tide_err_t *err) {
  int rc = check_keys(a, keys, err);
  if (rc) return rc;
  for (uint32_t i = 0; i < a->nspecs; i++) {
    const aspec_t *s = &a->specs[i];
    if (s->kind == TIDE_AGG_COUNT_STAR) continue;
    if (!args || !args[i])
      return tide_err_set(err, TIDE_EINVAL, "aggregate %u (%s): no argument column", i, kind_name(s->kind));
    if (args[i]->type != s->type)
      return tide_err_set(err, TIDE_EINVAL, "aggregate %u (%s): the argument is %s, expected %s", i,
                          kind_name(s->kind), tide_type_name(args[i]->type), tide_type_name(s->type));
  }
  return 0;
}

/* Room for n rows in the scratch vectors h[] and gid[]. 0 or -ENOMEM. */
static int ensure_scratch(tide_agg_t *a, uint32_t n) {
  if (n <= a->scap) return 0;
  uint64_t *h = realloc(a->h, (size_t)n * sizeof *h);
  if (!h) return -ENOMEM;
  a->h = h;
  uint32_t *g = realloc(a->gid, (size_t)n * sizeof *g);
  if (!g) return -ENOMEM;
  a->gid = g;
  a->scap = n;
  return 0;
}

static int load_missing(tide_agg_t *a, const tide_batch_t *keys, uint32_t n, tide_err_t *err);
static int lookup_missing(tide_agg_t *a, uint64_t *miss, uint32_t m, tide_err_t *err);

/* The update of checked input; created (n bytes, or NULL) gets 1 for each
 * row that created its group. Groups only in the store are loaded first
 * (nothing is aggregated when that fails). */
static int update_rows(tide_agg_t *a, const tide_batch_t *keys, const tide_col_t *const *args, uint8_t *created,
                       tide_err_t *err) {
  uint32_t n = keys->nrows;
  if (created && n) memset(created, 0, n);
  if (!n) return 0;
  if (ensure_scratch(a, n)) return tide_err_set(err, -ENOMEM, "out of memory");
  hash_keys(a, keys, n);
  int rc = load_missing(a, keys, n, err);
  if (rc) return rc;
  uint32_t g0 = a->ngroups, d0 = a->ndirty;
  rc = find_groups(a, keys, n);
  if (!rc) mark_dirty(a, g0, d0);
  if (!rc && created) /* new groups get gids g0, g0+1 ... in the order of their first rows */
    for (uint32_t i = 0, next = g0; i < n && next < a->ngroups; i++)
      if (a->gid[i] == next) {
        created[i] = 1;
        next++;
      }
  for (uint32_t i = 0; !rc && i < a->nspecs; i++)
    rc = update_spec(a, &a->specs[i], a->specs[i].kind == TIDE_AGG_COUNT_STAR ? NULL : args[i], n);
  if (rc) {
    a->poisoned = 1;
    return tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "too many groups" : "out of memory");
  }
  return 0;
}

/* Add keys->nrows rows (agg.h). Errors: TIDE_EINVAL (a batch or argument of
 * the wrong shape; nothing changed), -ENOMEM or TIDE_ETOOBIG (the
 * aggregation is poisoned), TIDE_EPOISONED after such a failure. */
int tide_agg_update(tide_agg_t *a, const tide_batch_t *keys, const tide_col_t *const *args, tide_err_t *err) {
  UNPART(a, err);
  if (a->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier update failed");
  int rc = check_input(a, keys, args, err);
  if (rc) return rc;
  return update_rows(a, keys, args, NULL, err);
}

/* ------------------------------------------------------------ result --- */

/* The group of output row i: gids[i], or i itself when gids is NULL (all
 * groups in gid order). */
#define GROUP_OF(gids, i) ((gids) ? (gids)[i] : (i))

/* The table that holds output row i: a, or with tabs (a static
 * aggregation's parts, same layout) tabs[tab_of[i]]. */
#define TABLE_OF(a, tabs, tab_of, i) ((tabs) ? (tabs)[(tab_of)[i]] : (a))

/* Fill output column out (initialised, n rows) with key column k of the
 * groups gids[0..n) (or of groups 0..n-1), of a or of tabs (TABLE_OF). */
static int key_result(const tide_agg_t *a, const tide_agg_t *const *tabs, const uint8_t *tab_of, uint32_t k,
                      const uint32_t *gids, uint32_t n, tide_col_t *out) {
  const kcol_t *kc = &a->kc[k];
  int rc = 0;
  for (uint32_t i = 0; i < n && !rc; i++) {
    uint32_t g = GROUP_OF(gids, i);
    const tide_agg_t *t = TABLE_OF(a, tabs, tab_of, i);
    const unsigned char *rec = t->krec + (size_t)g * t->krec_size, *v = rec + kc->off;
    uint64_t bits;
    uint32_t len;
    switch (kc->type) {
    case TIDE_T_STRING:
    case TIDE_T_JSON: {
      const char *p = kstr(t, v, &len);
      rc = tide_col_put_str(out, i, p, len);
      break;
    }
    case TIDE_T_BOOL: ((uint8_t *)out->values)[i] = *v; break;
    default:
      memcpy(&bits, v, 8);
      ((uint64_t *)out->values)[i] = bits;
      break;
    }
    if (!rc && rec[a->nulloff + k]) rc = tide_col_set_null(out, i, n);
  }
  return rc;
}

/* Fill output column out (initialised, n rows) with spec s's result of the
 * groups gids[0..n) (or of groups 0..n-1), of a or of tabs (TABLE_OF). */
static int spec_result(const tide_agg_t *a, const tide_agg_t *const *tabs, const uint8_t *tab_of, const aspec_t *s,
                       const uint32_t *gids, uint32_t n, tide_col_t *out) {
  int rc = 0;
  for (uint32_t i = 0; i < n && !rc; i++) {
    const void *stp = STATE(TABLE_OF(a, tabs, tab_of, i), GROUP_OF(gids, i), s->off);
    int null = 0;
    switch (s->kind) {
    case TIDE_AGG_COUNT_STAR:
    case TIDE_AGG_COUNT: ((int64_t *)out->values)[i] = *(const int64_t *)stp; break;
    case TIDE_AGG_COUNT_DISTINCT: ((int64_t *)out->values)[i] = ((const st_dist_t *)stp)->n; break;
    case TIDE_AGG_AVG: {
      const st_num_t *st = stp;
      if (!(null = !st->n)) ((double *)out->values)[i] = st->v.d / (double)st->n;
      break;
    }
    default:
      if (s->var) {
        const st_str_t *st = stp;
        null = !(st->flags & SEEN) || (st->flags & ISNULL);
        rc = tide_col_put_str(out, i, st->p, null ? 0 : st->len);
      } else {
        const st_num_t *st = stp;
        null = !(st->n & SEEN) || (st->n & ISNULL); /* SEEN == 1 == "has a value" */
        if (null) break;
        if (s->type == TIDE_T_BOOL) ((uint8_t *)out->values)[i] = (uint8_t)st->v.u;
        else ((uint64_t *)out->values)[i] = st->v.u;
      }
      break;
    }
    if (!rc && null) rc = tide_col_set_null(out, i, n);
  }
  return rc;
}

/* The rows of groups gids[0..n) (NULL: groups 0..n-1) of a, or of tabs
 * (TABLE_OF), as a new batch. */
static int build_result_of(const tide_agg_t *a, const tide_agg_t *const *tabs, const uint8_t *tab_of,
                           const uint32_t *gids, uint32_t n, tide_batch_t **out, tide_err_t *err) {
  *out = NULL;
  if (n > TIDE_BATCH_MAX_ROWS) return tide_err_set(err, TIDE_ETOOBIG, "%u groups do not fit one batch", n);
  uint32_t nf = a->schema->nfields;
  tide_col_t *cols = calloc(nf ? nf : 1, sizeof *cols);
  if (!cols) return tide_err_set(err, -ENOMEM, "out of memory");
  int rc = 0;
  for (uint32_t f = 0; f < nf && !rc; f++) {
    if ((rc = tide_col_init(&cols[f], a->schema->fields[f].type, n))) break;
    rc = f < a->nkeys ? key_result(a, tabs, tab_of, f, gids, n, &cols[f])
                      : spec_result(a, tabs, tab_of, &a->specs[f - a->nkeys], gids, n, &cols[f]);
  }
  if (rc) {
    for (uint32_t f = 0; f < nf; f++) tide_col_free(&cols[f]);
    free(cols);
    return tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "result strings too large" : "out of memory");
  }
  *out = tide_batch_adopt(a->schema, n, cols);
  free(cols);
  return *out ? 0 : tide_err_set(err, -ENOMEM, "out of memory");
}

static int build_result(const tide_agg_t *a, const uint32_t *gids, uint32_t n, tide_batch_t **out, tide_err_t *err) {
  return build_result_of(a, NULL, NULL, gids, n, out, err);
}

/* One row per group in first-seen order (agg.h). The batch is new and owned
 * by the caller. Errors: -ENOMEM, TIDE_ETOOBIG (a result column would pass
 * the batch limits), TIDE_EPOISONED. */
int tide_agg_result(const tide_agg_t *a, tide_batch_t **out, tide_err_t *err) {
  *out = NULL;
  if (a->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier update failed");
  if (a->nhp) return hp_result(a, out, err);
  return build_result(a, NULL, a->ngroups, out, err);
}

/* The rows of the groups gids[0..n) (agg.h). */
int tide_agg_result_of(const tide_agg_t *a, const uint32_t *gids, uint32_t n, tide_batch_t **out, tide_err_t *err) {
  *out = NULL;
  if (a->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier update failed");
  for (uint32_t i = 0; i < n; i++)
    if (gids[i] >= a->ngroups)
      return tide_err_set(err, TIDE_EINVAL, "group %u does not exist (%u groups)", gids[i], a->ngroups);
  static const uint32_t none = 0;
  return build_result(a, n ? gids : &none, n, out, err);
}

/* ----------------------------------------------------- streaming state --- */

uint32_t tide_agg_nkeys(const tide_agg_t *a) { return a->nkeys; }

uint64_t tide_agg_sid(const tide_agg_t *a, uint32_t gid) { return a->sid[gid]; }

uint32_t tide_agg_dirty(const tide_agg_t *a, const uint32_t **gids) {
  *gids = a->dirty;
  return a->ndirty;
}

void tide_agg_clear_dirty(tide_agg_t *a) {
  for (uint32_t i = 0; i < a->ndirty; i++) DFLAG(a, a->dirty[i]) = 0;
  a->ndirty = 0;
  a->ngone = 0;
  if (a->capgone > 256) { /* a large eviction's log is not kept: it counts as memory */
    free(a->gone_sid);
    free(a->gone_hash);
    a->gone_sid = a->gone_hash = NULL;
    a->capgone = 0;
  }
  a->sid0 = a->next_sid;
  a->epoch++;
}

uint64_t tide_agg_new_sids_from(const tide_agg_t *a) { return a->sid0; }

uint64_t tide_agg_next_sid(const tide_agg_t *a) { return a->next_sid; }

uint64_t tide_agg_hash(const tide_agg_t *a, uint32_t gid) { return a->ghash[gid]; }

void tide_agg_log_gone(tide_agg_t *a, int on) { a->log_gone = on; }

size_t tide_agg_gone(const tide_agg_t *a, const uint64_t **sids, const uint64_t **hashes) {
  *sids = a->gone_sid;
  *hashes = a->gone_hash;
  return a->ngone;
}

/* Room for m more entries in the log of removed groups. 0 or -ENOMEM. */
static int gone_room(tide_agg_t *a, size_t m) {
  if (a->capgone - a->ngone >= m) return 0;
  size_t cap = a->capgone ? a->capgone : 256;
  while (cap - a->ngone < m) cap *= 2;
  uint64_t *s = realloc(a->gone_sid, cap * sizeof *s);
  if (!s) return -ENOMEM;
  a->gone_sid = s;
  uint64_t *h = realloc(a->gone_hash, cap * sizeof *h);
  if (!h) return -ENOMEM;
  a->gone_hash = h;
  a->capgone = cap;
  return 0;
}

/* 1 for min/max/first/last over string or json: a st_str_t state. */
static int is_str_state(const aspec_t *s) {
  return s->var && (s->kind == TIDE_AGG_MIN || s->kind == TIDE_AGG_MAX || s->kind == TIDE_AGG_FIRST ||
                    s->kind == TIDE_AGG_LAST);
}

/* Free group g's string state buffers and distinct sets (leaving them
 * empty) and return how many arena bytes the group referenced (its long
 * key strings and distinct string values), which become dead. */
static size_t release_group(tide_agg_t *a, uint32_t g) {
  size_t bytes = 0;
  const unsigned char *rec = a->krec + (size_t)g * a->krec_size;
  for (uint32_t k = 0; k < a->nkeys; k++) {
    if (!is_var(a->kc[k].type) || rec[a->nulloff + k]) continue;
    uint32_t len;
    memcpy(&len, rec + a->kc[k].off, 4);
    if (len > INLINE) bytes += len;
  }
  for (uint32_t i = 0; i < a->nspecs; i++) {
    const aspec_t *s = &a->specs[i];
    if (s->kind == TIDE_AGG_COUNT_DISTINCT) {
      st_dist_t *st = STATE(a, g, s->off);
      for (uint32_t j = 0; s->var && j < st->cap; j++)
        if (st->tab[j].used) bytes += st->tab[j].len;
      a->heap -= (size_t)st->cap * sizeof *st->tab;
      free(st->tab);
      memset(st, 0, sizeof *st);
    } else if (is_str_state(s)) {
      st_str_t *st = STATE(a, g, s->off);
      a->heap -= st->cap;
      free(st->p);
      memset(st, 0, sizeof *st);
    }
  }
  return bytes;
}

/* Re-insert every group into the (zeroed) table. */
static void fill_table(tide_agg_t *a) {
  size_t mask = a->tcap - 1;
  for (uint32_t g = 0; g < a->ngroups; g++) {
    uint64_t hv = a->ghash[g];
    size_t pos = hv & mask;
    while (a->tab[pos]) pos = (pos + 1) & mask;
    a->tab[pos] = (hv >> 32) << 32 | ((uint64_t)g + 1);
  }
}

/* Rebuild the arena from the bytes live groups still reference, moving
 * each key string and distinct string value and fixing its offset. On out
 * of memory nothing changes (the dead bytes stay until the next try). */
static void compact_arena(tide_agg_t *a) {
  size_t live = 0;
  for (int pass = 0; pass < 2; pass++) {
    tide_buf_t nb = TIDE_BUF_INIT;
    if (pass == 1 && live && tide_buf_reserve(&nb, live)) return;
    for (uint32_t g = 0; g < a->ngroups; g++) {
      unsigned char *rec = a->krec + (size_t)g * a->krec_size;
      for (uint32_t k = 0; k < a->nkeys; k++) {
        if (!is_var(a->kc[k].type) || rec[a->nulloff + k]) continue;
        unsigned char *v = rec + a->kc[k].off;
        uint32_t len;
        memcpy(&len, v, 4);
        if (len <= INLINE) continue;
        if (pass == 0) {
          live += len;
          continue;
        }
        uint64_t at, to = nb.len;
        memcpy(&at, v + 8, 8);
        memcpy(nb.data + nb.len, a->arena.data + at, len); /* reserved above */
        nb.len += len;
        memcpy(v + 8, &to, 8);
      }
      for (uint32_t i = 0; i < a->nspecs; i++) {
        const aspec_t *s = &a->specs[i];
        if (s->kind != TIDE_AGG_COUNT_DISTINCT || !s->var) continue;
        st_dist_t *st = STATE(a, g, s->off);
        for (uint32_t j = 0; j < st->cap; j++) {
          dent_t *e = &st->tab[j];
          if (!e->used) continue;
          if (pass == 0) {
            live += e->len;
            continue;
          }
          if (e->len) memcpy(nb.data + nb.len, a->arena.data + e->v, e->len);
          e->v = nb.len;
          nb.len += e->len;
        }
      }
    }
    if (pass == 1) {
      tide_buf_free(&a->arena);
      a->arena = nb;
      a->arena_dead = 0;
    }
  }
}

/* Remove the groups gone[0..m) (ascending), keeping the others in order;
 * then rebuild the dirty list, the table and maybe the arena, and shrink
 * the arrays. Cannot fail: every allocation here is optional. */
static void remove_groups(tide_agg_t *a, const uint32_t *gone, uint32_t m) {
  uint32_t j = 0, w = 0;
  for (uint32_t g = 0; g < a->ngroups; g++) {
    if (j < m && gone[j] == g) {
      a->arena_dead += release_group(a, g);
      j++;
      continue;
    }
    if (w != g) {
      memcpy(a->krec + (size_t)w * a->krec_size, a->krec + (size_t)g * a->krec_size, a->krec_size);
      if (a->slot) memcpy(STATE(a, w, 0), STATE(a, g, 0), a->slot); /* moves the buffers' ownership */
      a->ghash[w] = a->ghash[g];
      a->sid[w] = a->sid[g]; /* the dirty flag moved with the key record */
    }
    w++;
  }
  a->ngroups = w;
  if (!w) a->sid_unsorted = 0;
  a->ndirty = 0;
  for (uint32_t g = 0; g < w; g++)
    if (DFLAG(a, g)) a->dirty[a->ndirty++] = g;
  if (a->gcap > 64 && (size_t)w * 4 <= a->gcap) {
    uint32_t cap = 64;
    while (cap < w * 2) cap *= 2;
    resize_groups(a, cap); /* shrinking: never fails */
  }
  /* the table: smallest with load <= 1/4, so that growing back is far */
  size_t tcap = 64;
  while (tcap < (size_t)w * 4) tcap *= 2;
  uint64_t *t = tcap < a->tcap ? calloc(tcap, sizeof *t) : NULL;
  if (t) {
    free(a->tab);
    a->tab = t;
    a->tcap = tcap;
  } else {
    memset(a->tab, 0, a->tcap * sizeof *a->tab);
  }
  fill_table(a);
  if (a->arena_dead && a->arena_dead * 2 >= a->arena.len) compact_arena(a);
}

/* The value of result column col (see tide_agg_evict) of group g as an
 * int64: 1 and *v set, or 0 when it is NULL. */
static int int_value(const tide_agg_t *a, uint32_t col, uint32_t g, int64_t *v) {
  if (col < a->nkeys) {
    const unsigned char *rec = a->krec + (size_t)g * a->krec_size;
    if (rec[a->nulloff + col]) return 0;
    memcpy(v, rec + a->kc[col].off, 8);
    return 1;
  }
  const aspec_t *s = &a->specs[col - a->nkeys];
  const void *stp = STATE(a, g, s->off);
  switch (s->kind) {
  case TIDE_AGG_COUNT_STAR:
  case TIDE_AGG_COUNT: *v = *(const int64_t *)stp; return 1;
  case TIDE_AGG_COUNT_DISTINCT: *v = ((const st_dist_t *)stp)->n; return 1;
  default: { /* sum, min, max, first, last of int or timestamp */
    const st_num_t *st = stp;
    if (!(st->n & SEEN) || (st->n & ISNULL)) return 0;
    *v = st->v.i;
    return 1;
  }
  }
}

/* Take the groups gone[0..m) (ascending, distinct, in range) out: their
 * rows and sids into the outputs of evict/remove (and with log_gone their
 * sids and hashes into the log), then remove_groups. */
static int take_groups(tide_agg_t *a, const uint32_t *gone, uint32_t m, tide_batch_t **rows, uint64_t **sids,
                       uint32_t *n, tide_err_t *err) {
  int rc = rows ? build_result(a, gone, m, rows, err) : 0;
  if (rc) return rc;
  uint64_t *sv = NULL;
  if ((m && !(sv = malloc((size_t)m * sizeof *sv))) || (a->log_gone && gone_room(a, m))) {
    free(sv);
    if (rows) {
      tide_batch_free(*rows);
      *rows = NULL;
    }
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  for (uint32_t i = 0; i < m; i++) sv[i] = a->sid[gone[i]];
  if (a->log_gone)
    for (uint32_t i = 0; i < m; i++) {
      a->gone_sid[a->ngone] = sv[i];
      a->gone_hash[a->ngone++] = a->ghash[gone[i]];
    }
  if (m) remove_groups(a, gone, m);
  *sids = sv;
  *n = m;
  return 0;
}

/* The groups only in the store that an eviction takes (spilling, below). */
typedef struct stored_evict {
  int scanned;          /* the store was walked */
  uint32_t col;
  int64_t bound;
  int want_rows;
  tide_batch_t *rows;   /* their result rows (want_rows), or NULL */
  uint64_t *sids, *hashes;
  size_t n, cap;
  int64_t *dmin;        /* the lower bounds over the stored groups that stay */
} stored_evict_t;
static int evict_stored(tide_agg_t *a, uint32_t col, int64_t bound, int want_rows, stored_evict_t *se,
                        tide_err_t *err);
static int stored_evict_finish(tide_agg_t *a, stored_evict_t *se, tide_batch_t **rows, uint64_t **sids, uint32_t *n,
                               tide_err_t *err);
static void stored_evict_free(stored_evict_t *se);

/* Remove the groups at or below bound (agg.h), also those only in the
 * store. */
int tide_agg_evict(tide_agg_t *a, uint32_t col, int64_t bound, tide_batch_t **rows, uint64_t **sids, uint32_t *n,
                   tide_err_t *err) {
  UNPART(a, err);
  if (rows) *rows = NULL;
  *sids = NULL;
  *n = 0;
  if (a->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier update failed");
  uint32_t nf = a->schema->nfields;
  if (col >= nf) return tide_err_set(err, TIDE_EINVAL, "evict: column %u does not exist (%u columns)", col, nf);
  const tide_field_t *f = &a->schema->fields[col];
  if (f->type != TIDE_T_INT && f->type != TIDE_T_TIMESTAMP)
    return tide_err_set(err, TIDE_EINVAL, "evict: column '%s' is %s, expected int or timestamp", f->name,
                        tide_type_name(f->type));
  /* the groups only in the store first: on failure nothing has changed */
  stored_evict_t se;
  int rc = evict_stored(a, col, bound, rows != NULL, &se, err);
  if (rc) return rc;
  uint32_t *gone = calloc(a->ngroups ? a->ngroups : 1, sizeof *gone), m = 0; /* calloc: gcc -O1 sees no init */
  if (!gone) {
    stored_evict_free(&se);
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  for (uint32_t g = 0; g < a->ngroups; g++) {
    int64_t v;
    if (int_value(a, col, g, &v) && v <= bound) gone[m++] = g;
  }
  rc = take_groups(a, gone, m, rows, sids, n, err);
  free(gone);
  if (!rc && se.scanned) rc = stored_evict_finish(a, &se, rows, sids, n, err);
  stored_evict_free(&se);
  return rc;
}

/* ---------------------------------------------------- state records --- */

/* Layout of a record (docs/FORMAT.md, "Aggregation state records"):
 *
 *   +---------+-------+--------+-------------+-------------------+
 *   | version | nkeys | nspecs | key types   | (kind, arg type)  |
 *   | u8 = 1  | u16   | u16    | u8 x nkeys  | u8 u8 x nspecs    |
 *   +---------+-------+--------+-------------+-------------------+
 *   | key values, one per key column | states, one per aggregate |
 *   +--------------------------------+---------------------------+
 *   | CRC-32C of every byte before it, u32                        |
 *   +-------------------------------------------------------------+
 *
 *   key value   u8 null (0/1); when 0: the value
 *   value       bool: u8 0/1; int, timestamp, double: 8 bytes (a key's or
 *               a distinct double is normalised: one NaN, no -0.0);
 *               string, json: u32 length, then the bytes
 *   count(*), count          i64 count (>= 0)
 *   sum, min, max (fixed)    u8 has (0/1); when 1: the value
 *   avg                      i64 count (>= 0); when > 0: f64 sum
 *   first, last (fixed)      u8 flags: 0 none, 1 a value, 3 NULL; when 1:
 *                            the value
 *   min, max (string/json)   u8 flags 0/1; when 1: the value
 *   first, last (string)     u8 flags as first/last fixed; when 1: the value
 *   count_distinct           u32 count, then the values, each once
 * All integers little-endian. The record carries no pointer and no sid.
 */
#define REC_VERSION 1
#define REC_HEAD 5 /* version, nkeys, nspecs */

typedef struct wr {
  tide_buf_t *b;
  int rc;
} wr_t;

static void w_bytes(wr_t *w, const void *p, size_t n) {
  if (!w->rc) w->rc = tide_buf_append(w->b, p, n);
}

/* The low n bytes of v, little-endian. Room for 8 is made so that a
 * little-endian host stores all 8 in one move and keeps n of them: this
 * runs for every field of every state record the engine commits. */
static inline void w_le(wr_t *w, uint64_t v, int n) {
  if (w->rc || (w->b->cap - w->b->len < 8 && (w->rc = tide_buf_reserve(w->b, 8)))) return;
  uint8_t *p = (uint8_t *)w->b->data + w->b->len;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(p, &v, 8);
#else
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
#endif
  w->b->len += (size_t)n;
}

static void w_str(wr_t *w, const char *p, uint32_t len) {
  w_le(w, len, 4);
  w_bytes(w, p, len);
}

/* A fixed-width value of type t whose bits are v. */
static void w_fixed(wr_t *w, tide_type_t t, uint64_t v) { w_le(w, v, t == TIDE_T_BOOL ? 1 : 8); }

/* The arg-type byte of spec s in a record (count(*) has none: 0). */
static uint8_t rec_arg_type(const aspec_t *s) { return s->kind == TIDE_AGG_COUNT_STAR ? 0 : (uint8_t)s->type; }

/* Append group gid's record (agg.h). */
int tide_agg_encode(const tide_agg_t *a, uint32_t gid, tide_buf_t *out, tide_err_t *err) {
  if (a->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier update failed");
  if (gid >= a->ngroups) return tide_err_set(err, TIDE_EINVAL, "group %u does not exist (%u groups)", gid, a->ngroups);
  size_t start = out->len;
  wr_t w = {out, 0};
  /* the head: version, counts and types, the same for every record */
  size_t head = REC_HEAD + a->nkeys + 2 * (size_t)a->nspecs;
  if ((w.rc = tide_buf_reserve(out, head + 64))) return tide_err_set(err, w.rc, "out of memory");
  uint8_t *hp = (uint8_t *)out->data + start;
  hp[0] = REC_VERSION;
  hp[1] = (uint8_t)a->nkeys;
  hp[2] = (uint8_t)(a->nkeys >> 8);
  hp[3] = (uint8_t)a->nspecs;
  hp[4] = (uint8_t)(a->nspecs >> 8);
  hp += REC_HEAD;
  for (uint32_t k = 0; k < a->nkeys; k++) *hp++ = (uint8_t)a->kc[k].type;
  for (uint32_t i = 0; i < a->nspecs; i++) {
    *hp++ = (uint8_t)a->specs[i].kind;
    *hp++ = rec_arg_type(&a->specs[i]);
  }
  out->len += head;
  const unsigned char *rec = a->krec + (size_t)gid * a->krec_size;
  for (uint32_t k = 0; k < a->nkeys; k++) {
    const unsigned char *v = rec + a->kc[k].off;
    int null = rec[a->nulloff + k];
    w_le(&w, (uint64_t)null, 1);
    if (null) continue;
    if (is_var(a->kc[k].type)) {
      uint32_t len;
      const char *p = kstr(a, v, &len);
      w_str(&w, p, len);
    } else {
      uint64_t bits;
      memcpy(&bits, v, 8);
      w_fixed(&w, a->kc[k].type, bits);
    }
  }
  for (uint32_t i = 0; i < a->nspecs; i++) {
    const aspec_t *s = &a->specs[i];
    const void *stp = STATE(a, gid, s->off);
    switch (s->kind) {
    case TIDE_AGG_COUNT_STAR:
    case TIDE_AGG_COUNT: w_le(&w, (uint64_t) * (const int64_t *)stp, 8); break;
    case TIDE_AGG_AVG: {
      const st_num_t *st = stp;
      w_le(&w, (uint64_t)st->n, 8);
      if (st->n) w_le(&w, st->v.u, 8);
      break;
    }
    case TIDE_AGG_COUNT_DISTINCT: {
      const st_dist_t *st = stp;
      w_le(&w, st->n, 4);
      for (uint32_t j = 0; j < st->cap; j++) {
        const dent_t *e = &st->tab[j];
        if (!e->used) continue;
        if (s->var) w_str(&w, arena_at(a, e->v), e->len);
        else w_fixed(&w, s->type, e->v);
      }
      break;
    }
    default: /* sum, min, max, first, last */
      if (s->var) {
        const st_str_t *st = stp;
        w_le(&w, st->flags, 1);
        if (st->flags == SEEN) w_str(&w, st->p, st->len);
      } else {
        const st_num_t *st = stp;
        w_le(&w, (uint64_t)st->n, 1);
        if (st->n == SEEN) w_fixed(&w, s->type, st->v.u);
      }
      break;
    }
  }
  if (!w.rc) w_le(&w, tide_crc32c(0, out->data + start, out->len - start), 4);
  if (w.rc) {
    out->len = start;
    return tide_err_set(err, w.rc, "out of memory");
  }
  return 0;
}

/* A reader over a record's bytes; every take is bounds-checked. */
typedef struct rd {
  const uint8_t *p;
  size_t n, at;
} rd_t;

/* p = the next k bytes. 0, or -1 when fewer remain. */
static int r_take(rd_t *r, size_t k, const uint8_t **p) {
  if (r->n - r->at < k) return -1;
  *p = r->p + r->at;
  r->at += k;
  return 0;
}

/* The next n (<= 8) bytes as a little-endian integer. 0 or -1. */
static int r_le(rd_t *r, int n, uint64_t *v) {
  const uint8_t *p;
  if (r_take(r, (size_t)n, &p)) return -1;
  *v = 0;
  for (int i = 0; i < n; i++) *v |= (uint64_t)p[i] << (8 * i);
  return 0;
}

/* Name of a type byte of a record, which may be anything. */
static const char *type_byte_name(unsigned t) {
  return t >= TIDE_T_BOOL && t <= TIDE_T_JSON ? tide_type_name((tide_type_t)t) : t ? "an unknown type" : "none";
}

/* Decoding context for messages: "key 'k' (string)" or "aggregate 2
 * (count_distinct)". */
typedef struct dctx {
  tide_agg_t *a;
  uint64_t sid;
  tide_err_t *err;
  char where[200];
} dctx_t;

static int bad(dctx_t *c, const char *what) {
  return tide_err_set(c->err, TIDE_ECORRUPT, "aggregation state record %llu: %s%s%s", (unsigned long long)c->sid,
                      c->where, *c->where ? ": " : "", what);
}

/* Read a fixed-width value of type t into *v. norm: a double must be
 * normalised (keys and distinct values are stored so). 0 or TIDE_ECORRUPT. */
static int r_fixed(dctx_t *c, rd_t *r, tide_type_t t, int norm, uint64_t *v) {
  if (r_le(r, t == TIDE_T_BOOL ? 1 : 8, v)) return bad(c, "truncated");
  if (t == TIDE_T_BOOL && *v > 1) return bad(c, "a bool that is neither 0 nor 1");
  if (norm && t == TIDE_T_DOUBLE && tide__norm_f64(tide__f64_of(*v)) != *v) return bad(c, "an unnormalised double");
  return 0;
}

/* Read a string value: *p, *len point into the record. 0 or TIDE_ECORRUPT. */
static int r_str(dctx_t *c, rd_t *r, const uint8_t **p, uint32_t *len) {
  uint64_t l;
  if (r_le(r, 4, &l) || r_take(r, (size_t)l, p)) return bad(c, "truncated");
  *len = (uint32_t)l;
  return 0;
}

/* Read a flags byte allowed to be 0, SEEN or (if nullable) SEEN|ISNULL. */
static int r_flags(dctx_t *c, rd_t *r, int nullable, uint64_t *f) {
  if (r_le(r, 1, f)) return bad(c, "truncated");
  if (*f != 0 && *f != SEEN && !(nullable && *f == (SEEN | ISNULL))) return bad(c, "impossible state flags");
  return 0;
}

/* Read the key values into group g's (zeroed) key record. Long strings go
 * to the end of the arena (the caller cuts it back on failure). */
static int r_keys(dctx_t *c, rd_t *r, uint32_t g) {
  tide_agg_t *a = c->a;
  unsigned char *rec = a->krec + (size_t)g * a->krec_size;
  for (uint32_t k = 0; k < a->nkeys; k++) {
    const kcol_t *kc = &a->kc[k];
    unsigned char *v = rec + kc->off;
    snprintf(c->where, sizeof c->where, "key '%s' (%s)", a->keys->fields[k].name, tide_type_name(kc->type));
    uint64_t null;
    if (r_le(r, 1, &null)) return bad(c, "truncated");
    if (null > 1) return bad(c, "a NULL flag that is neither 0 nor 1");
    rec[a->nulloff + k] = (uint8_t)null;
    if (null) continue;
    int rc;
    if (is_var(kc->type)) {
      const uint8_t *p = NULL;
      uint32_t len = 0;
      if ((rc = r_str(c, r, &p, &len))) return rc;
      memcpy(v, &len, 4);
      if (len <= INLINE) {
        if (len) memcpy(v + 4, p, len);
      } else {
        uint64_t at = a->arena.len;
        memcpy(v + 4, p, 4);
        memcpy(v + 8, &at, 8);
        if (tide_buf_append(&a->arena, p, len)) return tide_err_set(c->err, -ENOMEM, "out of memory");
      }
    } else {
      uint64_t bits = 0;
      if ((rc = r_fixed(c, r, kc->type, 1, &bits))) return rc;
      memcpy(v, &bits, 8);
    }
  }
  return 0;
}

/* Read every aggregate's state into group g's (zeroed) slot. */
static int r_states(dctx_t *c, rd_t *r, uint32_t g) {
  tide_agg_t *a = c->a;
  for (uint32_t i = 0; i < a->nspecs; i++) {
    const aspec_t *s = &a->specs[i];
    void *stp = STATE(a, g, s->off);
    snprintf(c->where, sizeof c->where, "aggregate %u (%s)", i, kind_name(s->kind));
    uint64_t u = 0, f = 0;
    int rc;
    switch (s->kind) {
    case TIDE_AGG_COUNT_STAR:
    case TIDE_AGG_COUNT:
      if (r_le(r, 8, &u)) return bad(c, "truncated");
      if ((int64_t)u < 0) return bad(c, "a negative count");
      *(int64_t *)stp = (int64_t)u;
      break;
    case TIDE_AGG_AVG: {
      st_num_t *st = stp;
      if (r_le(r, 8, &u)) return bad(c, "truncated");
      if ((int64_t)u < 0) return bad(c, "a negative count");
      st->n = (int64_t)u;
      if (u && r_le(r, 8, &st->v.u)) return bad(c, "truncated");
      a->avg_abs += fabs(st->v.d); /* a NaN stops parallel pushes, as it should */
      break;
    }
    case TIDE_AGG_COUNT_DISTINCT: {
      st_dist_t *st = stp;
      if (r_le(r, 4, &u)) return bad(c, "truncated");
      /* every value takes at least one byte: a count the rest cannot hold
       * is refused before anything is allocated for it */
      if (u > r->n - r->at) return bad(c, "truncated");
      for (uint64_t j = 0; j < u; j++) {
        uint32_t before = st->n;
        if (s->var) {
          const uint8_t *p = NULL;
          uint32_t len = 0;
          if ((rc = r_str(c, r, &p, &len))) return rc;
          rc = dist_add(a, st, 1, tide__hash_bytes(TIDE__HSEED, p, len), 0, (const char *)p, len);
        } else {
          uint64_t v = 0;
          if ((rc = r_fixed(c, r, s->type, 1, &v))) return rc;
          rc = dist_add(a, st, 0, tide__hash_u64(TIDE__HSEED, v), v, NULL, 0);
        }
        if (rc) return tide_err_set(c->err, rc, "out of memory");
        if (st->n == before) return bad(c, "a value listed twice");
      }
      break;
    }
    default: { /* sum, min, max, first, last */
      int nullable = s->kind == TIDE_AGG_FIRST || s->kind == TIDE_AGG_LAST;
      if ((rc = r_flags(c, r, nullable, &f))) return rc;
      if (s->var) {
        st_str_t *st = stp;
        if (f == SEEN) {
          const uint8_t *p = NULL;
          uint32_t len = 0;
          if ((rc = r_str(c, r, &p, &len))) return rc;
          if (str_set(a, st, (const char *)p, len)) return tide_err_set(c->err, -ENOMEM, "out of memory");
        }
        st->flags = (uint32_t)f;
      } else {
        st_num_t *st = stp;
        if (f == SEEN && (rc = r_fixed(c, r, s->type, 0, &st->v.u))) return rc;
        st->n = (int64_t)f;
      }
      break;
    }
    }
  }
  *c->where = 0;
  return 0;
}

/* The key hash of a key record, as hash_keys computes it for a row. */
static uint64_t rec_hash(const tide_agg_t *a, const unsigned char *rec) {
  uint64_t h = TIDE__HSEED;
  for (uint32_t k = 0; k < a->nkeys; k++) {
    const unsigned char *v = rec + a->kc[k].off;
    if (is_var(a->kc[k].type)) {
      uint32_t len;
      const char *p = kstr(a, v, &len);
      h = tide__hash_bytes(h, p, len);
    } else {
      uint64_t bits;
      memcpy(&bits, v, 8);
      h = tide__hash_u64(h, bits);
    }
    if (rec[a->nulloff + k]) h = tide__hash_null(h);
  }
  return h;
}

/* 1 when key records x and y hold the same key. */
static int rec_eq(const tide_agg_t *a, const unsigned char *x, const unsigned char *y) {
  for (uint32_t k = 0; k < a->nkeys; k++) {
    if (x[a->nulloff + k] != y[a->nulloff + k]) return 0;
    if (x[a->nulloff + k]) continue;
    const unsigned char *vx = x + a->kc[k].off, *vy = y + a->kc[k].off;
    if (is_var(a->kc[k].type)) {
      uint32_t lx, ly;
      const char *px = kstr(a, vx, &lx), *py = kstr(a, vy, &ly);
      if (lx != ly || (lx && memcmp(px, py, lx))) return 0;
    } else if (memcmp(vx, vy, 8)) {
      return 0;
    }
  }
  return 1;
}

/* Insert the group of a record (tide_agg_restore); with load, a key
 * that has a group already is no error (0, nothing changes: *loaded 0). */
static int restore_rec(tide_agg_t *a, uint64_t sid, const void *p, size_t n, int load, int *loaded,
                       tide_err_t *err) {
  const uint8_t *b = p;
  dctx_t c = {a, sid, err, ""};
  if (a->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier update failed");
  if (sid == 0 || sid == UINT64_MAX) return bad(&c, "state id out of range");
  if (n < 1) return bad(&c, "empty");
  if (b[0] != REC_VERSION)
    return tide_err_set(err, TIDE_EFORMAT, "aggregation state record %llu: format version %u, this build reads %u",
                        (unsigned long long)sid, b[0], REC_VERSION);
  if (n < REC_HEAD + 4) return bad(&c, "truncated");
  uint32_t crc = (uint32_t)b[n - 4] | (uint32_t)b[n - 3] << 8 | (uint32_t)b[n - 2] << 16 | (uint32_t)b[n - 1] << 24;
  if (tide_crc32c(0, b, n - 4) != crc) return bad(&c, "checksum mismatch");
  rd_t r = {b, n - 4, 1};
  uint64_t nk, ns;
  r_le(&r, 2, &nk);
  r_le(&r, 2, &ns);
  if (nk != a->nkeys || ns != a->nspecs)
    return tide_err_set(err, TIDE_ESCHEMA,
                        "aggregation state record %llu: written for %u keys and %u aggregates, this aggregation has "
                        "%u and %u",
                        (unsigned long long)sid, (unsigned)nk, (unsigned)ns, a->nkeys, a->nspecs);
  const uint8_t *ty;
  if (r_take(&r, nk + 2 * ns, &ty)) return bad(&c, "truncated");
  for (uint32_t k = 0; k < a->nkeys; k++)
    if (ty[k] != (uint8_t)a->kc[k].type)
      return tide_err_set(err, TIDE_ESCHEMA, "aggregation state record %llu: key %u is %s, this aggregation's is %s",
                          (unsigned long long)sid, k, type_byte_name(ty[k]), tide_type_name(a->kc[k].type));
  for (uint32_t i = 0; i < a->nspecs; i++) {
    const aspec_t *s = &a->specs[i];
    uint8_t kind = ty[nk + 2 * i], at = ty[nk + 2 * i + 1];
    if (kind != (uint8_t)s->kind || at != rec_arg_type(s))
      return tide_err_set(err, TIDE_ESCHEMA,
                          "aggregation state record %llu: aggregate %u is %s of %s, this aggregation's is %s of %s",
                          (unsigned long long)sid, i,
                          kind >= TIDE_AGG_COUNT_STAR && kind <= TIDE_AGG_COUNT_DISTINCT
                              ? kind_name((tide_agg_kind_t)kind)
                              : "an unknown aggregate",
                          type_byte_name(at), kind_name(s->kind), type_byte_name(rec_arg_type(s)));
  }
  int grew, rc = room_for_group(a, &grew);
  if (rc) return tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "too many groups" : "out of memory");
  uint32_t g = a->ngroups;
  unsigned char *rec = a->krec + (size_t)g * a->krec_size;
  memset(rec, 0, a->krec_size);
  if (a->slot) memset(STATE(a, g, 0), 0, a->slot);
  size_t arena0 = a->arena.len;
  rc = r_keys(&c, &r, g);
  if (!rc) rc = r_states(&c, &r, g);
  if (!rc && r.at != r.n) {
    char what[64];
    snprintf(what, sizeof what, "%zu bytes after the last aggregate", r.n - r.at);
    rc = bad(&c, what);
  }
  uint64_t hv = 0;
  size_t pos = 0;
  if (!rc) {
    hv = rec_hash(a, rec);
    size_t mask = a->tcap - 1;
    uint64_t tag = hv >> 32 << 32, e;
    for (pos = hv & mask; (e = a->tab[pos]); pos = (pos + 1) & mask) {
      if ((e & 0xffffffff00000000ull) != tag || !rec_eq(a, a->krec + (size_t)((uint32_t)e - 1) * a->krec_size, rec))
        continue;
      if (load) { /* in memory already: that group is the newer one */
        release_group(a, g);
        a->arena.len = arena0;
        return 0;
      }
      char what[80];
      snprintf(what, sizeof what, "its key already has a group (state id %llu)",
               (unsigned long long)a->sid[(uint32_t)e - 1]);
      rc = bad(&c, what);
      break;
    }
  }
  if (rc) {
    release_group(a, g);
    a->arena.len = arena0;
    return rc;
  }
  a->tab[pos] = (hv >> 32) << 32 | ((uint64_t)g + 1);
  a->ghash[g] = hv;
  if (g && sid < a->sid[g - 1]) a->sid_unsorted = 1;
  a->sid[g] = sid; /* not dirty: the record's memset cleared the flag */
  a->ngroups = g + 1;
  if (sid >= a->next_sid) a->next_sid = sid + 1;
  if (load) touch(a, g);
  *loaded = 1;
  return 0;
}

int tide_agg_restore(tide_agg_t *a, uint64_t sid, const void *p, size_t n, tide_err_t *err) {
  UNPART(a, err);
  int loaded = 0;
  return restore_rec(a, sid, p, n, 0, &loaded, err);
}

int tide_agg_load(tide_agg_t *a, uint64_t sid, const void *p, size_t n, tide_err_t *err) {
  UNPART(a, err);
  int loaded = 0;
  int rc = restore_rec(a, sid, p, n, 1, &loaded, err);
  if (!rc && loaded) {
    if (a->spilled) a->spilled--;
    a->loaded_total++;
  }
  return rc;
}

/* ---------------------------------------------------------- event time --- */

/* Flag the late rows (agg.h). */
uint32_t tide_agg_mark_late(const tide_col_t *t, const int64_t *ends, uint32_t n, int64_t bound, uint8_t *late) {
  uint32_t m = 0;
  if (ends) {
    for (uint32_t i = 0; i < n; i++) m += late[i] = ends[i] <= bound;
    return m;
  }
  const int64_t *v = t->values;
  int nulls = t->valid && t->null_count;
  for (uint32_t i = 0; i < n; i++) m += late[i] = v[i] <= bound && !(nulls && tide_col_is_null(t, i));
  return m;
}

/* 1 when rows i and j of the key batch hold the same key. */
static int rows_eq(const tide_agg_t *a, const tide_batch_t *keys, uint32_t i, uint32_t j) {
  for (uint32_t k = 0; k < a->nkeys; k++) {
    const tide_col_t *c = &keys->cols[k];
    int ni = tide_col_is_null(c, i);
    if (ni != tide_col_is_null(c, j)) return 0;
    if (ni) continue;
    if (is_var(c->type)) {
      size_t li, lj;
      const char *pi = tide_col_str(c, i, &li), *pj = tide_col_str(c, j, &lj);
      if (li != lj || (li && memcmp(pi, pj, li))) return 0;
    } else if (fixed_bits(c, i) != fixed_bits(c, j)) {
      return 0;
    }
  }
  return 1;
}

/* The number of distinct keys among the rows of keys that sel flags (m of
 * them), with a throwaway table of row numbers; a->h holds every row's key
 * hash. 0 and *out set, or -ENOMEM. */
static int count_keys(const tide_agg_t *a, const tide_batch_t *keys, const uint8_t *sel, uint32_t m, uint32_t *out) {
  size_t cap = 16, mask;
  while (cap < (size_t)m * 2) cap *= 2;
  mask = cap - 1;
  uint32_t *t = calloc(cap, sizeof *t), d = 0; /* row + 1, 0 = empty */
  if (!t) return -ENOMEM;
  for (uint32_t i = 0; i < keys->nrows; i++) {
    if (!sel[i]) continue;
    size_t pos = a->h[i] & mask;
    for (; t[pos]; pos = (pos + 1) & mask) {
      uint32_t j = t[pos] - 1;
      if (a->h[j] == a->h[i] && rows_eq(a, keys, i, j)) break;
    }
    if (!t[pos]) {
      t[pos] = i + 1;
      d++;
    }
  }
  free(t);
  *out = d;
  return 0;
}

/* The rows of cols[0..nc) at rows[0..n) into out[0..nc) (zeroed); NULL
 * entries of cols (count(*)'s argument) stay empty. 0 or -ENOMEM (out is
 * then the caller's to free, as always). */
static int gather_cols(const tide_col_t *const *cols, uint32_t nc, const uint32_t *rows, uint32_t n,
                       tide_col_t *out) {
  int rc = 0;
  for (uint32_t c = 0; c < nc && !rc; c++)
    if (cols[c]) rc = tide_col_gather(cols[c], rows, n, &out[c]);
  return rc;
}

/* A partial's late rows (m of the rows of keys that late flags) into its
 * late_keys aggregation, whose groups are then their distinct keys (the
 * parallel push counts late groups across its ranges with them). 0 or
 * -ENOMEM. */
static int add_late_keys(tide_agg_t *a, const tide_batch_t *keys, const uint8_t *late, uint32_t m,
                         tide_err_t *err) {
  uint32_t nk = a->nkeys, j = 0;
  uint32_t *rows = malloc((size_t)m * sizeof *rows);
  tide_col_t *cols = calloc(nk ? nk : 1, sizeof *cols);
  int rc = rows && cols ? 0 : -ENOMEM;
  for (uint32_t i = 0; !rc && i < keys->nrows; i++)
    if (late[i]) rows[j++] = i;
  for (uint32_t k = 0; !rc && k < nk; k++) rc = tide_col_gather(&keys->cols[k], rows, m, &cols[k]);
  if (!rc) {
    tide_batch_t kb = {0};
    kb.schema = keys->schema;
    kb.nrows = kb.cap = m;
    kb.cols = cols;
    rc = update_rows(a->late_keys, &kb, NULL, NULL, err);
  } else {
    rc = tide_err_set(err, rc, "out of memory");
  }
  for (uint32_t k = 0; cols && k < nk; k++) tide_col_free(&cols[k]);
  free(cols);
  free(rows);
  return rc;
}

/* Update leaving the late rows out (agg.h). With some rows late, the
 * others are gathered into a compact batch first: the update loops stay
 * free of a per-row test, and late rows are rare in a healthy stream. */
int tide_agg_update_ex(tide_agg_t *a, const tide_batch_t *keys, const tide_col_t *const *args, tide_agg_feed_t *f,
                       tide_err_t *err) {
  UNPART(a, err);
  f->pushed = f->late_rows = f->late_groups = 0;
  if (a->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier update failed");
  int rc = check_input(a, keys, args, err);
  if (rc) return rc;
  uint32_t n = keys->nrows, m = 0;
  for (uint32_t i = 0; f->late && i < n; i++) m += f->late[i] != 0;
  if (!m) {
    if ((rc = update_rows(a, keys, args, f->created, err))) return rc;
    f->pushed = n;
    return 0;
  }
  if (f->created) memset(f->created, 0, n);
  uint32_t groups = 0;
  if (ensure_scratch(a, n)) return tide_err_set(err, -ENOMEM, "out of memory");
  hash_keys(a, keys, n);
  if (count_keys(a, keys, f->late, m, &groups)) return tide_err_set(err, -ENOMEM, "out of memory");
  if (a->late_keys && (rc = add_late_keys(a, keys, f->late, m, err))) return rc;
  if (m < n) {
    uint32_t k = n - m, j = 0, nc = a->nkeys + a->nspecs;
    uint32_t *rows = malloc((size_t)k * sizeof *rows);
    tide_col_t *cols = calloc(nc ? nc : 1, sizeof *cols);
    const tide_col_t **in = calloc(nc ? nc : 1, sizeof *in), **argv = NULL;
    uint8_t *made = f->created ? malloc(k) : NULL;
    rc = rows && cols && in && (made || !f->created) ? 0 : -ENOMEM;
    if (!rc) {
      for (uint32_t i = 0; i < n; i++)
        if (!f->late[i]) rows[j++] = i;
      for (uint32_t c = 0; c < a->nkeys; c++) in[c] = &keys->cols[c];
      for (uint32_t i = 0; i < a->nspecs; i++)
        in[a->nkeys + i] = a->specs[i].kind == TIDE_AGG_COUNT_STAR ? NULL : args[i];
      rc = gather_cols(in, nc, rows, k, cols);
    }
    if (rc) {
      rc = tide_err_set(err, rc, "out of memory");
    } else {
      /* views: the gathered columns stay owned by cols */
      tide_batch_t kb = {0};
      kb.schema = keys->schema;
      kb.nrows = kb.cap = k;
      kb.cols = cols;
      argv = in + a->nkeys;
      for (uint32_t i = 0; i < a->nspecs; i++) argv[i] = argv[i] ? &cols[a->nkeys + i] : NULL;
      rc = update_rows(a, &kb, argv, made, err);
      for (uint32_t i = 0; !rc && made && i < k; i++) f->created[rows[i]] = made[i];
    }
    for (uint32_t c = 0; cols && c < nc; c++) tide_col_free(&cols[c]);
    free(cols);
    free(rows);
    free(in);
    free(made);
    if (rc) return rc;
  }
  f->pushed = n - m;
  f->late_rows = m;
  f->late_groups = groups;
  return 0;
}

/* The gid of a sid (agg.h). */
int tide_agg_gid_of(const tide_agg_t *a, uint64_t sid, uint32_t *gid) {
  if (a->sid_unsorted) {
    for (uint32_t g = 0; g < a->ngroups; g++)
      if (a->sid[g] == sid) {
        *gid = g;
        return 1;
      }
    return 0;
  }
  uint32_t lo = 0, hi = a->ngroups;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (a->sid[mid] < sid) lo = mid + 1;
    else hi = mid;
  }
  if (lo == a->ngroups || a->sid[lo] != sid) return 0;
  *gid = lo;
  return 1;
}

/* The table entry of the group of row i of keys (its hash in a->h[i]),
 * or 0 when the key has no group in memory. */
static uint64_t probe(const tide_agg_t *a, const tide_batch_t *keys, uint32_t i) {
  size_t mask = a->tcap - 1;
  uint64_t hv = a->h[i], tag = hv >> 32 << 32, e;
  for (size_t pos = hv & mask; (e = a->tab[pos]); pos = (pos + 1) & mask)
    if ((e & 0xffffffff00000000ull) == tag && key_eq(a, (uint32_t)e - 1, keys, i)) break;
  return e;
}

/* Check keys and hash its rows into a->h (room made): what a probe of
 * the table by a batch of keys needs first. 0 or an error code. */
static int hash_input(tide_agg_t *a, const tide_batch_t *keys, tide_err_t *err) {
  if (a->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier update failed");
  int rc = check_keys(a, keys, err);
  if (rc || !keys->nrows) return rc;
  if (ensure_scratch(a, keys->nrows)) return tide_err_set(err, -ENOMEM, "out of memory");
  hash_keys(a, keys, keys->nrows);
  return 0;
}

/* The groups of given keys (agg.h). */
int tide_agg_lookup(tide_agg_t *a, const tide_batch_t *keys, uint32_t *gids, tide_err_t *err) {
  UNPART(a, err);
  int rc = hash_input(a, keys, err);
  uint32_t n = keys->nrows;
  if (rc || !n) return rc;
  for (uint32_t i = 0; i < n; i++) {
    uint64_t e = probe(a, keys, i);
    gids[i] = e ? (uint32_t)e - 1 : UINT32_MAX;
  }
  return 0;
}

/* Fold the state of spec s of group src of aggregation sa (a itself, or
 * a partial of the same layout) into a's group dst (agg.h's merge rules;
 * flags: tide_agg_merge_ex's). 0 or -ENOMEM. */
static int merge_spec(tide_agg_t *a, const aspec_t *s, uint32_t dst, const tide_agg_t *sa, uint32_t src,
                      unsigned flags) {
  void *dp = STATE(a, dst, s->off);
  const void *sp = STATE(sa, src, s->off);
  switch (s->kind) {
  case TIDE_AGG_COUNT_STAR:
  case TIDE_AGG_COUNT: *(int64_t *)dp += *(const int64_t *)sp; return 0;
  case TIDE_AGG_COUNT_DISTINCT: {
    st_dist_t *d = dp;
    const st_dist_t *x = sp;
    if (s->var) {
      /* dist_add copies a new string into the arena, which the source
       * bytes live in too: reserve room for all of them first so that no
       * append moves the arena under the pointer it copies from */
      size_t bytes = 0;
      for (uint32_t j = 0; j < x->cap; j++)
        if (x->tab[j].used) bytes += x->tab[j].len;
      if (bytes && tide_buf_reserve(&a->arena, bytes)) return -ENOMEM;
    }
    for (uint32_t j = 0; j < x->cap; j++) {
      const dent_t *e = &x->tab[j];
      if (!e->used) continue;
      int rc = s->var ? dist_add(a, d, 1, e->h, 0, arena_at(sa, e->v), e->len) : dist_add(a, d, 0, e->h, e->v, NULL, 0);
      if (rc) return rc;
    }
    return 0;
  }
  case TIDE_AGG_SUM: {
    st_num_t *d = dp;
    const st_num_t *x = sp;
    if (!x->n) return 0;
    if (s->type == TIDE_T_INT) d->v.u += x->v.u; /* wraps, as update does */
    else d->v.d += x->v.d;
    d->n = 1;
    return 0;
  }
  case TIDE_AGG_AVG: {
    st_num_t *d = dp;
    const st_num_t *x = sp;
    d->v.d += x->v.d;
    d->n += x->n;
    return 0;
  }
  default: break;
  }
  /* min, max, first, last: take src's value or keep dst's */
  int take;
  if (s->var) {
    st_str_t *d = dp;
    const st_str_t *x = sp;
    switch (s->kind) {
    case TIDE_AGG_MIN:
    case TIDE_AGG_MAX: {
      int sign = s->kind == TIDE_AGG_MIN ? -1 : 1;
      take = x->flags && (!d->flags || sign * tide__cmp_bytes(x->p, x->len, d->p, d->len) > 0);
      break;
    }
    case TIDE_AGG_FIRST: take = x->flags && (!d->flags || (flags & TIDE_AGG_MERGE_FIRST_SRC)); break;
    default: take = x->flags && (!d->flags || !(flags & TIDE_AGG_MERGE_LAST_DST)); break; /* last */
    }
    if (!take) return 0;
    if (str_set(a, d, x->p, (x->flags & ISNULL) ? 0 : x->len)) return -ENOMEM;
    d->flags = x->flags;
    return 0;
  }
  st_num_t *d = dp;
  const st_num_t *x = sp;
  switch (s->kind) {
  case TIDE_AGG_MIN:
  case TIDE_AGG_MAX: {
    int sign = s->kind == TIDE_AGG_MIN ? -1 : 1;
    take = x->n && (!d->n || sign * cmp_fixed(s->type, x->v.u, d->v.u) > 0);
    break;
  }
  case TIDE_AGG_FIRST: take = x->n && (!d->n || (flags & TIDE_AGG_MERGE_FIRST_SRC)); break;
  default: take = x->n && (!d->n || !(flags & TIDE_AGG_MERGE_LAST_DST)); break; /* last */
  }
  if (take) *d = *x;
  return 0;
}

/* Put group g in the dirty list (ascending) unless it is there. */
static void make_dirty(tide_agg_t *a, uint32_t g) {
  if (DFLAG(a, g)) return;
  uint32_t lo = 0, hi = a->ndirty;
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (a->dirty[mid] < g) lo = mid + 1;
    else hi = mid;
  }
  memmove(a->dirty + lo + 1, a->dirty + lo, (size_t)(a->ndirty - lo) * sizeof *a->dirty);
  a->dirty[lo] = g;
  a->ndirty++;
  DFLAG(a, g) = 1;
}

/* Fold one group into another (agg.h). */
int tide_agg_merge(tide_agg_t *a, uint32_t dst, uint32_t src, tide_err_t *err) {
  return tide_agg_merge_ex(a, dst, src, 0, err);
}

/* Remove given groups (agg.h). */
int tide_agg_remove(tide_agg_t *a, const uint32_t *gids, uint32_t n, tide_batch_t **rows, uint64_t **sids,
                    uint32_t *nout, tide_err_t *err) {
  UNPART(a, err);
  if (rows) *rows = NULL;
  *sids = NULL;
  *nout = 0;
  if (a->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier update failed");
  for (uint32_t i = 0; i < n; i++)
    if (gids[i] >= a->ngroups)
      return tide_err_set(err, TIDE_EINVAL, "remove: group %u does not exist (%u groups)", gids[i], a->ngroups);
  uint32_t *gone = malloc((n ? n : 1) * sizeof *gone), m = 0;
  if (!gone) return tide_err_set(err, -ENOMEM, "out of memory");
  if (n) memcpy(gone, gids, (size_t)n * sizeof *gone);
  qsort(gone, n, sizeof *gone, cmp_u32);
  for (uint32_t i = 0; i < n; i++)
    if (!m || gone[m - 1] != gone[i]) gone[m++] = gone[i];
  int rc = take_groups(a, gone, m, rows, sids, nout, err);
  free(gone);
  return rc;
}

/* ------------------------------------------------------------ the operator */

/* What one push holds until it returns; push_tmp_free frees it on every
 * path. Columns marked "view" borrow their buffers. */
typedef struct push_tmp {
  uint32_t *sel;          /* the filter's rows, when filter is an expression */
  tide_col_t *vcols;      /* the filtered view's columns (owned; unread ones zero) */
  uint32_t nv;
  uint32_t *rows;         /* window assignment: the view row of each pair */
  int64_t *starts;        /* and its window's start */
  tide_batch_t *repeated; /* sliding windows or NULL times: the view's rows per pair */
  tide_col_t wcols[2];    /* window_start, window_end per pair (owned) */
  tide_col_t *evals;      /* evaluated keys, then arguments (owned) */
  uint32_t nevals;
  tide_col_t *keycols;    /* the key batch's columns (views) */
  const tide_col_t **argp;
  uint8_t *late, *made, *mark;
  uint32_t *pick;
} push_tmp_t;

static void push_tmp_free(push_tmp_t *t) {
  free(t->sel);
  for (uint32_t c = 0; t->vcols && c < t->nv; c++) tide_col_free(&t->vcols[c]);
  free(t->vcols);
  free(t->rows);
  free(t->starts);
  tide_batch_free(t->repeated);
  tide_col_free(&t->wcols[0]);
  tide_col_free(&t->wcols[1]);
  for (uint32_t i = 0; t->evals && i < t->nevals; i++) tide_col_free(&t->evals[i]);
  free(t->evals);
  free(t->keycols);
  free((void *)t->argp);
  free(t->late);
  free(t->made);
  free(t->mark);
  free(t->pick);
}

/* 0 when column col of s exists and is a timestamp or int, else
 * TIDE_EINVAL naming it as `what`. */
static int check_time_col(const tide_schema_t *s, int col, const char *what, tide_err_t *err) {
  if (col < 0 || (uint32_t)col >= s->nfields)
    return tide_err_set(err, TIDE_EINVAL, "%s %d does not exist (the batch has %u columns)", what, col, s->nfields);
  tide_type_t t = s->fields[col].type;
  if (t != TIDE_T_TIMESTAMP && t != TIDE_T_INT)
    return tide_err_set(err, TIDE_EINVAL, "%s %d ('%s') is %s, expected timestamp or int", what, col,
                        s->fields[col].name, tide_type_name(t));
  return 0;
}

/* Every check of tide_agg_push's input that needs no data. */
static int push_check(const tide_agg_t *a, const tide_agg_input_t *in, tide_err_t *err) {
  const tide_batch_t *b = in->batch;
  if (!b) return tide_err_set(err, TIDE_EINVAL, "no input batch");
  const tide_schema_t *s = b->schema;
  int rc;
  if (in->window) {
    if ((rc = tide_window_check(in->window, err))) return rc;
    if ((rc = check_time_col(s, in->window_col, "window column", err))) return rc;
  }
  if (in->late_col >= 0 && (rc = check_time_col(s, in->late_col, "late column", err))) return rc;
  if (in->time_col >= 0 && (rc = check_time_col(s, in->time_col, "time column", err))) return rc;
  if (in->filter && in->select) return tide_err_set(err, TIDE_EINVAL, "both a filter and a selection");
  if (in->select) {
    if (in->nselect > b->nrows)
      return tide_err_set(err, TIDE_EINVAL, "a selection of %u rows out of %u", in->nselect, b->nrows);
    for (uint32_t i = 0; i < in->nselect; i++)
      if (in->select[i] >= b->nrows || (i && in->select[i] <= in->select[i - 1]))
        return tide_err_set(err, TIDE_EINVAL, "selection entry %u (row %u) is out of order or range", i,
                            in->select[i]);
  }
  for (uint32_t i = 0; i < a->nkeys; i++) {
    const tide_agg_key_src_t *k = &in->keys[i];
    if (k->kind == TIDE_AGG_KEY_WINDOW_START || k->kind == TIDE_AGG_KEY_WINDOW_END) {
      if (!in->window) return tide_err_set(err, TIDE_EINVAL, "key %u: a window key without a window", i);
    } else if (k->kind != TIDE_AGG_KEY_EXPR || !k->expr) {
      return tide_err_set(err, TIDE_EINVAL, "key %u: no expression", i);
    }
  }
  return 0;
}

/* The filter: *src becomes a view of the kept rows holding just the
 * columns the rest reads, and *viewrow the input row of each view row;
 * both stay as they are when every row is kept. */
static int push_filter(const tide_agg_t *a, const tide_agg_input_t *in, push_tmp_t *t, tide_batch_t *view,
                       const tide_batch_t **src, const uint32_t **viewrow, tide_err_t *err) {
  const tide_batch_t *b = in->batch;
  uint32_t nf = b->schema->nfields, ns = in->nselect;
  const uint32_t *sel = in->select;
  int rc;
  if (in->filter) {
    if (!(t->sel = malloc((b->nrows ? b->nrows : 1) * sizeof *t->sel))) return -ENOMEM;
    if ((rc = tide_expr_select(in->filter, b, t->sel, &ns, err))) return rc;
    sel = t->sel;
  }
  if (ns == b->nrows) return 0;
  /* which columns will be read: bare-column keys and arguments and the
   * window, late and time columns; any other expression may read anything */
  uint8_t need[TIDE_FIELDS_MAX];
  int all = 0;
  memset(need, 0, nf);
  if (in->window) need[in->window_col] = 1;
  if (in->late_col >= 0) need[in->late_col] = 1;
  if (in->time_col >= 0) need[in->time_col] = 1;
  for (uint32_t i = 0; i < a->nkeys + a->nspecs; i++) {
    const tide_expr_t *e = i < a->nkeys ? in->keys[i].expr : in->args[i - a->nkeys];
    if (i < a->nkeys && in->keys[i].kind != TIDE_AGG_KEY_EXPR) continue;
    if (!e) continue;
    int c = tide_expr_column(e);
    if (c >= 0 && (uint32_t)c < nf) need[c] = 1;
    else all = 1;
  }
  if (!(t->vcols = calloc(nf ? nf : 1, sizeof *t->vcols))) return -ENOMEM;
  t->nv = nf;
  for (uint32_t c = 0; c < nf; c++)
    if ((all || need[c]) && (rc = tide_col_gather(&b->cols[c], sel, ns, &t->vcols[c]))) return rc;
  view->schema = b->schema;
  view->nrows = view->cap = ns;
  view->cols = t->vcols;
  *src = view;
  *viewrow = sel;
  return 0;
}

/* Window assignment over *src: the pairs' window columns in t->wcols, and
 * *src repeated per pair unless every row has exactly one window. *count
 * gets the number of pairs, *pairrow the view row of each. */
static int push_window(const tide_agg_input_t *in, push_tmp_t *t, const tide_batch_t **src, uint32_t *count,
                       const uint32_t **pairrow, tide_err_t *err) {
  const tide_window_t *w = in->window;
  const tide_batch_t *s = *src;
  uint32_t nf = s->schema->nfields;
  int rc = tide_window_assign(w, &s->cols[in->window_col], s->nrows, &t->rows, &t->starts, count, err);
  if (rc) return rc;
  *pairrow = t->rows;
  int identity = *count == s->nrows;
  for (uint32_t i = 0; identity && i < *count; i++) identity = t->rows[i] == i;
  if (!identity) { /* sliding windows, or NULL times: repeat or drop rows */
    tide_col_t *cols = calloc(nf ? nf : 1, sizeof *cols);
    if (!cols) return -ENOMEM;
    for (uint32_t c = 0; c < nf && !rc; c++) /* a column the view left out is never read: zeros */
      rc = s->cols[c].values ? tide_col_gather(&s->cols[c], t->rows, *count, &cols[c])
                             : tide_col_init(&cols[c], s->schema->fields[c].type, *count);
    if (rc) {
      for (uint32_t c = 0; c < nf; c++) tide_col_free(&cols[c]);
      free(cols);
      return rc;
    }
    t->repeated = tide_batch_adopt(s->schema, *count, cols); /* frees the buffers on failure */
    free(cols);
    if (!t->repeated) return -ENOMEM;
    *src = t->repeated;
  }
  if ((rc = tide_col_init(&t->wcols[0], TIDE_T_TIMESTAMP, *count)) ||
      (rc = tide_col_init(&t->wcols[1], TIDE_T_TIMESTAMP, *count)))
    return rc;
  int64_t *ws = t->wcols[0].values, *we = t->wcols[1].values;
  for (uint32_t k = 0; k < *count; k++) {
    ws[k] = t->starts[k];
    we[k] = t->starts[k] + w->size;
  }
  return 0;
}

/* The key and argument columns over the pairs of src: bare columns in
 * place, other expressions evaluated into t->evals. */
static int push_columns(const tide_agg_t *a, const tide_agg_input_t *in, push_tmp_t *t, const tide_batch_t *src,
                        tide_err_t *err) {
  uint32_t nk = a->nkeys, na = a->nspecs, nf = src->schema->nfields;
  t->keycols = calloc(nk ? nk : 1, sizeof *t->keycols);
  t->argp = calloc(na ? na : 1, sizeof *t->argp);
  t->evals = calloc(nk + na ? nk + na : 1, sizeof *t->evals);
  if (!t->keycols || !t->argp || !t->evals) return -ENOMEM;
  t->nevals = nk + na;
  int rc = 0;
  for (uint32_t i = 0; i < nk + na && !rc; i++) {
    const tide_expr_t *e = i < nk ? in->keys[i].expr : in->args[i - nk];
    const tide_col_t *c = NULL;
    if (i < nk && in->keys[i].kind != TIDE_AGG_KEY_EXPR) {
      c = &t->wcols[in->keys[i].kind == TIDE_AGG_KEY_WINDOW_END];
    } else if (e) {
      int col = tide_expr_column(e);
      if (col >= 0 && (uint32_t)col < nf) c = &src->cols[col];
      else if (!(rc = tide_expr_eval(e, src, &t->evals[i], err))) c = &t->evals[i];
    }
    if (i < nk && c) t->keycols[i] = *c;
    else if (i >= nk) t->argp[i - nk] = c;
  }
  return rc;
}

/* A batch of the rows of b whose mark passes: (mark & 3) == 2 for the lost
 * rows (every pair late), mark & 4 for the rows that created a group. */
static int push_pick(const tide_batch_t *b, const uint8_t *mark, int created, push_tmp_t *t, tide_batch_t **out) {
  uint32_t m = 0;
  if (!t->pick && !(t->pick = malloc((b->nrows ? b->nrows : 1) * sizeof *t->pick))) return -ENOMEM;
  for (uint32_t r = 0; r < b->nrows; r++)
    if (created ? mark[r] & 4 : (mark[r] & 3) == 2) t->pick[m++] = r;
  if (!created && !m) return 0;
  return tide_batch_gather(b, t->pick, m, out);
}

/* The push of one thread (agg.h, tide_agg_push). */
static int push_one(tide_agg_t *a, const tide_agg_input_t *in, tide_agg_output_t *out, tide_err_t *err) {
  memset(out, 0, sizeof *out);
  int rc = push_check(a, in, err);
  if (rc) return rc;
  const tide_batch_t *b = in->batch, *src = b;
  push_tmp_t t;
  memset(&t, 0, sizeof t);
  tide_batch_t view = {0}; /* the filtered rows: a view over t.vcols */
  const uint32_t *viewrow = NULL, *pairrow = NULL;
  uint32_t count;
  if ((in->filter || in->select) && (rc = push_filter(a, in, &t, &view, &src, &viewrow, err))) goto done;
  /* the event-time statistics of the rows the filter kept */
  if (in->time_col >= 0)
    tide_col_time_stats(&src->cols[in->time_col], src->nrows, &out->time_count, &out->time_min, &out->time_max,
                        &out->time_sum);
  count = src->nrows;
  if (in->window && (rc = push_window(in, &t, &src, &count, &pairrow, err))) goto done;
  if ((rc = push_columns(a, in, &t, src, err))) goto done;
  tide_batch_t keys = {0}; /* a view over the key columns: nothing owned */
  keys.schema = a->keys;
  keys.nrows = keys.cap = count;
  keys.cols = t.keycols;
  tide_agg_feed_t feed;
  memset(&feed, 0, sizeof feed);
  if (in->late_col >= 0) { /* a window on the late column: its end decides; else the row's time */
    if (!(t.late = malloc(count ? count : 1))) {
      rc = -ENOMEM;
      goto done;
    }
    if (in->window && in->window_col == in->late_col)
      tide_agg_mark_late(&t.wcols[1], t.wcols[1].values, count, in->late_bound, t.late);
    else
      tide_agg_mark_late(&src->cols[in->late_col], NULL, count, in->late_bound, t.late);
    feed.late = t.late;
  }
  if (in->want_created && !(feed.created = t.made = malloc(count ? count : 1))) {
    rc = -ENOMEM;
    goto done;
  }
  if ((rc = tide_agg_update_ex(a, &keys, t.argp, &feed, err))) goto done;
  out->pushed = feed.pushed;
  out->late_pairs = feed.late_rows;
  out->late_groups = feed.late_groups;
  if (!t.late && !t.made) goto done;
  /* back from pairs to input rows: per input row, bit 1 = a pair was
   * aggregated, 2 = a pair was late, 4 = a pair created a group */
  if (!(t.mark = calloc(b->nrows ? b->nrows : 1, 1))) {
    rc = -ENOMEM;
    goto done;
  }
  for (uint32_t k = 0; k < count; k++) {
    uint32_t r = pairrow ? pairrow[k] : k;
    if (viewrow) r = viewrow[r];
    t.mark[r] |= t.late && t.late[k] ? 2 : 1;
    if (t.made && t.made[k]) t.mark[r] |= 4;
  }
  if (feed.late_rows && (rc = push_pick(b, t.mark, 0, &t, &out->lost))) goto done;
  if (t.made && (rc = push_pick(b, t.mark, 1, &t, &out->created))) goto done;
done:
  push_tmp_free(&t);
  if (rc) {
    tide_batch_free(out->lost);
    tide_batch_free(out->created);
    out->lost = out->created = NULL;
  }
  return rc;
}

/* ------------------------------------------------------- parallel push ---
 *
 * With a pool of two or more threads (in->pool) and a batch big enough,
 * tide_agg_push cuts the input rows into one range per thread (a multiple
 * of 64 rows, so that a range's NULL bitmap starts on a byte boundary) and
 * (or as few as par_min_rows asks: tests) each task runs the whole
 * one-thread push (filter, event-time figures, window assignment, keys and arguments, late pairs) over its range, into
 * a partial aggregation of its own (a->parts, kept between pushes). The
 * loop thread then folds the partials into a, in range order:
 *
 *   1. the keys of every partial group, range 0's groups first, each
 *      range's in its own first-seen order, make one key batch, with the
 *      hashes the partials computed;
 *   2. the groups of those keys that were spilled are loaded with one
 *      lookup, then the batch goes through find_groups and mark_dirty, as
 *      a one-thread push's rows do: a group that is new in the batch is
 *      first seen in the first range that has it, at that range's first
 *      row of it, so groups are created, get their sids, are touched and
 *      become dirty exactly as with one thread;
 *   3. each partial group's states fold into its group (merge_spec).
 *
 * So the result, the state ids, the dirty set, the spilled groups and the
 * state records are those of one thread (spec/parallel_spec.lua and
 * spec/c/test_paragg.c compare them), and so is tide_agg_bytes (the
 * scratch vectors are sized for the batch's pairs, as one thread sizes
 * them), which state_memory_limit spills by.
 *
 * Only aggregates whose fold gives the same bits as row-at-a-time updates
 * go this way: counts; sum of int (wrapping addition is associative);
 * min, max, first and last of fixed-width types (a tie keeps the earlier
 * value either way); avg of int while every partial sum is an integer
 * whose magnitude stays below 2^53, so that double addition is exact:
 * avg_abs bounds them (the sum of |x| of every averaged value and of |sum|
 * of every restored average), and once it passes AVG_EXACT the
 * aggregation's pushes stay on one thread. The others run on one thread:
 * sum and avg of double (double addition is not associative),
 * count_distinct (a set's slot order follows its insertions, and its
 * record lists the slots in order) and string min/max/first/last (their
 * buffers grow with every value seen, which tide_agg_bytes counts). So
 * does a push that wants the created rows (deduplication), and a push in
 * which any task fails: the partials are dropped and the push runs again
 * on one thread, so its errors are one thread's errors. The late groups
 * of a batch (distinct keys among its late pairs) are counted over the
 * partials' late keys (late_keys) folded into one throwaway aggregation.
 * One figure may differ: time_sum, a double summed per range (progress
 * reports only its rounded average). */

#define PAR_MIN_ROWS 4096            /* the fewest rows a task gets */
#define AVG_EXACT 4503599627370496.0 /* 2^52: half of 2^53, a margin for avg_abs's own rounding */

/* 1 when spec s folds into the same bits as row-at-a-time updates. */
static int spec_folds(const aspec_t *s) {
  switch (s->kind) {
  case TIDE_AGG_COUNT_STAR:
  case TIDE_AGG_COUNT: return 1;
  case TIDE_AGG_SUM:
  case TIDE_AGG_AVG: return s->type == TIDE_T_INT;
  case TIDE_AGG_MIN:
  case TIDE_AGG_MAX:
  case TIDE_AGG_FIRST:
  case TIDE_AGG_LAST: return !s->var;
  default: return 0;
  }
}

/* The number of tasks a push of in should use: 0 for one thread. */
static uint32_t par_tasks(const tide_agg_t *a, const tide_agg_input_t *in) {
  if (a->no_par || a->poisoned || in->want_created || !in->batch) return 0;
  if (!in->pool) return a->nhp ? 1 : 0; /* a static aggregation pushes into its parts even so */
  uint32_t n = in->batch->nrows, nt = (uint32_t)tide_pool_threads(in->pool);
  uint32_t min = in->par_min_rows ? in->par_min_rows : PAR_MIN_ROWS;
  if (nt > n / min) nt = n / min;
  if (nt < 2) return a->nhp ? 1 : 0;
  for (uint32_t i = 0; i < a->nspecs; i++)
    if (!spec_folds(&a->specs[i])) return 0;
  return nt;
}

/* One task of a parallel push: rows [r0, r1) of the input. */
typedef struct par_task {
  const tide_agg_input_t *in;
  tide_agg_t *part;
  uint32_t r0, r1;
  tide_expr_range_t range; /* rows [r0, r1) of in->batch, borrowing its vectors */
  tide_schema_t *schema; /* the view's: a copy of the input's, since the
                          * batches a task makes count references to it
                          * (not atomically) */
  uint32_t *sel;     /* with in->select: its entries in the range, rebased */
  uint32_t nsel;
  tide_agg_output_t out;
  tide_err_t err;
  int rc;
} par_task_t;

/* t->view: rows [r0, r1) of the input on the task's copy of its schema
 * (tide_expr_range_open), and the selection's entries in the range. 0 or
 * -ENOMEM. */
static int make_view(par_task_t *t) {
  int rc = tide_expr_range_open(&t->range, t->in->batch, t->schema, t->r0, t->r1);
  if (rc) return rc;
  if (t->in->select) { /* the entries in [r0, r1): the selection ascends */
    const uint32_t *s = t->in->select;
    uint32_t lo = 0, hi = t->in->nselect, k;
    while (lo < hi) {
      uint32_t mid = lo + (hi - lo) / 2;
      if (s[mid] < t->r0) lo = mid + 1;
      else hi = mid;
    }
    for (k = lo; k < t->in->nselect && s[k] < t->r1; k++) {}
    if (!(t->sel = malloc((k - lo ? k - lo : 1) * sizeof *t->sel))) return -ENOMEM;
    for (uint32_t i = lo; i < k; i++) t->sel[i - lo] = s[i] - t->r0;
    t->nsel = k - lo;
  }
  return 0;
}

/* Empty partial p (and its late keys) for the next push, keeping its
 * memory. */
static void part_reset(tide_agg_t *p) {
  free_states(p);
  memset(p->tab, 0, p->tcap * sizeof *p->tab);
  p->ngroups = p->ndirty = 0;
  p->arena.len = 0;
  p->heap = 0;
  p->next_sid = p->sid0 = 1;
  p->poisoned = 0;
  p->avg_abs = 0;
  if (p->late_keys) part_reset(p->late_keys);
}

static int push_one(tide_agg_t *a, const tide_agg_input_t *in, tide_agg_output_t *out, tide_err_t *err);
static int clone_empty(const tide_agg_t *a, tide_agg_t **out, tide_err_t *err);

/* A task: the one-thread push of its range into its partial. */
static void par_run(void *arg, size_t i) {
  par_task_t *t = (par_task_t *)arg + i;
  part_reset(t->part);
  if ((t->rc = make_view(t))) {
    tide_err_set(&t->err, t->rc, "out of memory");
    return;
  }
  tide_agg_input_t in = *t->in;
  in.batch = &t->range.view;
  in.pool = NULL;
  if (t->in->select) {
    in.select = t->sel;
    in.nselect = t->nsel;
  }
  t->rc = push_one(t->part, &in, &t->out, &t->err);
}

/* The keys of every group of parts[0..np) (in order; m of them) as one
 * new batch of the key schema in *out, their hashes in dst->h (made room
 * for). 0 or -ENOMEM (*out NULL). */
static int parts_keys(tide_agg_t *dst, tide_agg_t *const *parts, uint32_t np, uint32_t m, tide_batch_t **out) {
  *out = NULL;
  if (ensure_scratch(dst, m)) return -ENOMEM;
  tide_batch_t **list = calloc(np, sizeof *list);
  if (!list) return -ENOMEM;
  uint32_t nb = 0, at = 0, nk = dst->nkeys;
  int rc = 0;
  for (uint32_t p = 0; p < np && !rc; p++) {
    const tide_agg_t *s = parts[p];
    uint32_t ng = s->ngroups;
    if (!ng) continue;
    memcpy(dst->h + at, s->ghash, (size_t)ng * sizeof *dst->h);
    at += ng;
    tide_col_t *cols = calloc(nk ? nk : 1, sizeof *cols);
    if (!cols) {
      rc = -ENOMEM;
      break;
    }
    for (uint32_t k = 0; k < nk && !rc; k++)
      if (!(rc = tide_col_init(&cols[k], dst->kc[k].type, ng))) rc = key_result(s, NULL, NULL, k, NULL, ng, &cols[k]);
    if (rc) {
      for (uint32_t k = 0; k < nk; k++) tide_col_free(&cols[k]);
    } else if (!(list[nb] = tide_batch_adopt(dst->keys, ng, cols))) {
      rc = -ENOMEM;
    } else {
      nb++;
    }
    free(cols);
  }
  if (!rc && nb == 1) {
    *out = list[0];
    list[0] = NULL;
  } else if (!rc) {
    rc = tide_batch_concat(list, nb, dst->keys, out);
  }
  for (uint32_t i = 0; i < nb; i++) tide_batch_free(list[i]);
  free(list);
  return rc;
}

/* The number of distinct keys among the late keys of parts[0..np). */
static int count_late(const tide_agg_t *a, tide_agg_t *const *parts, uint32_t np, uint32_t *groups,
                      tide_err_t *err) {
  tide_agg_t **lk = calloc(np, sizeof *lk), *all = NULL;
  uint32_t m = 0, with = 0;
  if (!lk) return tide_err_set(err, -ENOMEM, "out of memory");
  for (uint32_t p = 0; p < np; p++) {
    lk[p] = parts[p]->late_keys;
    m += lk[p]->ngroups;
    with += lk[p]->ngroups > 0;
  }
  int rc = 0;
  *groups = m;
  if (with > 1) { /* a key late in two ranges counts once */
    tide_batch_t *keys = NULL;
    rc = tide_agg_new(a->keys, NULL, 0, &all, err);
    if (!rc && !(rc = parts_keys(all, lk, np, m, &keys)) && !(rc = find_groups(all, keys, m)))
      *groups = all->ngroups;
    tide_batch_free(keys);
    tide_agg_free(all);
    if (rc) rc = tide_err_set(err, rc, "out of memory");
  }
  free(lk);
  return rc;
}

/* 1 when group g of a has the key of partial s's record prec (s has a's
 * layout; its long strings live in its own arena). */
static inline int rec_key_eq(const tide_agg_t *a, uint32_t g, const tide_agg_t *s, const unsigned char *prec) {
  const unsigned char *rec = a->krec + (size_t)g * a->krec_size;
  if (!a->nvar) return !memcmp(rec, prec, a->nulloff + a->nkeys); /* canonical bytes: zeroed, then filled */
  for (uint32_t k = 0; k < a->nkeys; k++) {
    const kcol_t *kc = &a->kc[k];
    const unsigned char *v = rec + kc->off, *w = prec + kc->off;
    if (rec[a->nulloff + k] != prec[a->nulloff + k]) return 0;
    if (rec[a->nulloff + k]) continue;
    if (!is_var(kc->type)) {
      if (memcmp(v, w, 8)) return 0;
      continue;
    }
    uint32_t len;
    memcpy(&len, v, 4);
    if (len <= INLINE) {
      if (memcmp(v, w, 16)) return 0; /* length and inline bytes, zero padded */
      continue;
    }
    uint64_t at, atw;
    memcpy(&at, v + 8, 8);
    memcpy(&atw, w + 8, 8);
    if (memcmp(v, w, 8) || memcmp(a->arena.data + at, s->arena.data + atw, len)) return 0;
  }
  return 1;
}

/* Make partial s's key record prec the new group a->ngroups (hash hv),
 * as add_group does for a row; room is made. 0 or -ENOMEM. */
static int add_group_rec(tide_agg_t *a, const tide_agg_t *s, const unsigned char *prec, uint64_t hv) {
  uint32_t g = a->ngroups;
  unsigned char *rec = a->krec + (size_t)g * a->krec_size;
  memset(rec, 0, a->krec_size);
  memcpy(rec, prec, a->nulloff + a->nkeys);
  for (uint32_t k = 0; a->nvar && k < a->nkeys; k++) { /* long strings: into a's arena */
    unsigned char *v = rec + a->kc[k].off;
    uint32_t len;
    if (!is_var(a->kc[k].type) || rec[a->nulloff + k] || (memcpy(&len, v, 4), len <= INLINE)) continue;
    uint64_t at = a->arena.len, atw;
    memcpy(&atw, v + 8, 8);
    int rc = tide_buf_append(&a->arena, s->arena.data + atw, len);
    if (rc) return rc;
    memcpy(v + 8, &at, 8);
  }
  a->ghash[g] = hv;
  if (a->slot) memset(a->states + (size_t)g * a->slot, 0, a->slot);
  a->sid[g] = a->next_sid++;
  a->ngroups = g + 1;
  return 0;
}

/* Find or create in a the group of partial s's group pg (its key record
 * and hash), as find_groups does for a row (touched; with track an old
 * group, gid < g0, goes on the dirty list for mark_dirty), and fold pg's
 * states into it. *created is set when the group is new. 0, -ENOMEM or
 * TIDE_ETOOBIG. */
static inline int fold_group(tide_agg_t *a, const tide_agg_t *s, uint32_t pg, uint32_t g0, int track,
                             int *created) {
  size_t mask = a->tcap - 1;
  const unsigned char *prec = s->krec + (size_t)pg * s->krec_size;
  uint64_t hv = s->ghash[pg], tag = hv >> 32 << 32, e;
  size_t pos = hv & mask;
  int rc = 0;
  while ((e = a->tab[pos])) {
    if ((e & 0xffffffff00000000ull) == tag && rec_key_eq(a, (uint32_t)e - 1, s, prec)) break;
    pos = (pos + 1) & mask;
  }
  uint32_t g;
  *created = !e;
  if (e) {
    g = (uint32_t)e - 1;
    if (track && g < g0 && !DFLAG(a, g)) {
      DFLAG(a, g) = 1;
      a->dirty[a->ndirty++] = g;
    }
  } else {
    int grew;
    g = a->ngroups;
    if ((rc = room_for_group(a, &grew))) return rc;
    if (grew) {
      mask = a->tcap - 1;
      pos = hv & mask;
      while (a->tab[pos]) pos = (pos + 1) & mask;
    }
    if ((rc = add_group_rec(a, s, prec, hv))) return rc;
    a->tab[pos] = tag | ((uint64_t)g + 1);
  }
  touch(a, g);
  for (uint32_t i = 0; i < a->nspecs && !rc; i++) rc = merge_spec(a, &a->specs[i], g, s, pg, 0);
  return rc;
}

/* Fetch the table slot of partial group pg's hash, and the group that
 * sits there, ahead of its probe (the table is hit at random). */
static inline void fold_prefetch(const tide_agg_t *a, const uint64_t *h, uint32_t i, uint32_t n, const uint32_t *idx) {
  size_t mask = a->tcap - 1;
  if (i + PREFETCH < n) __builtin_prefetch(&a->tab[h[idx ? idx[i + PREFETCH] : i + PREFETCH] & mask]);
  if (i + PREFETCH / 2 < n) {
    uint64_t e2 = a->tab[h[idx ? idx[i + PREFETCH / 2] : i + PREFETCH / 2] & mask];
    if (e2) {
      __builtin_prefetch(a->krec + ((uint32_t)e2 - 1) * a->krec_size);
      __builtin_prefetch(a->states + ((uint32_t)e2 - 1) * a->slot);
    }
  }
}

/* The groups of partials parts[0..np), in order, found or created in a
 * as find_groups finds or creates them for rows (touched; old ones put
 * on the dirty list for mark_dirty), each partial group's states folded
 * into its group as it is found. 0, -ENOMEM or TIDE_ETOOBIG. */
static int fold_groups(tide_agg_t *a, tide_agg_t *const *parts, uint32_t np) {
  uint32_t g0 = a->ngroups;
  int track = a->ndirty < g0, rc = 0, created;
  for (uint32_t p = 0; p < np; p++) {
    const tide_agg_t *s = parts[p];
    for (uint32_t pg = 0, n = s->ngroups; pg < n; pg++) {
      fold_prefetch(a, s->ghash, pg, n, NULL);
      if ((rc = fold_group(a, s, pg, g0, track, &created))) return rc;
    }
  }
  return 0;
}

/* Before folding: load the stored groups of the partials' keys that are
 * not in memory, with one lookup (load_missing's, for key records). */
static int load_missing_parts(tide_agg_t *a, tide_agg_t *const *parts, uint32_t np, uint32_t m, tide_err_t *err) {
  if (!a->store || !a->spilled) return 0;
  uint64_t *miss = malloc((size_t)m * sizeof *miss);
  if (!miss) return tide_err_set(err, -ENOMEM, "out of memory");
  uint32_t k = 0;
  size_t mask = a->tcap - 1;
  for (uint32_t p = 0; p < np; p++) {
    const tide_agg_t *s = parts[p];
    for (uint32_t pg = 0; pg < s->ngroups; pg++) {
      uint64_t hv = s->ghash[pg], tag = hv >> 32 << 32, e;
      const unsigned char *prec = s->krec + (size_t)pg * s->krec_size;
      for (size_t pos = hv & mask; (e = a->tab[pos]); pos = (pos + 1) & mask)
        if ((e & 0xffffffff00000000ull) == tag && rec_key_eq(a, (uint32_t)e - 1, s, prec)) break;
      if (!e) miss[k++] = hv;
    }
  }
  int rc = lookup_missing(a, miss, k, err);
  free(miss);
  return rc;
}

/* Fold the partials of tasks t[0..nt) into a (the file comment above). */
static int par_fold(tide_agg_t *a, par_task_t *t, uint32_t nt, tide_agg_output_t *out, tide_err_t *err) {
  uint32_t pairs = 0, m = 0;
  for (uint32_t i = 0; i < nt; i++) {
    pairs += t[i].out.pushed + t[i].out.late_pairs;
    m += a->parts[i]->ngroups;
  }
  /* as one thread: scratch for every pair, the spilled groups loaded, then the groups */
  if (pairs && ensure_scratch(a, pairs)) return tide_err_set(err, -ENOMEM, "out of memory");
  if (!m) return 0;
  int rc = load_missing_parts(a, a->parts, nt, m, err);
  if (rc) return rc;
  uint32_t g0 = a->ngroups, d0 = a->ndirty;
  rc = fold_groups(a, a->parts, nt);
  if (!rc) mark_dirty(a, g0, d0);
  for (uint32_t i = 0; !rc && i < nt; i++) a->avg_abs += a->parts[i]->avg_abs;
  if (rc) {
    a->poisoned = 1;
    return tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "too many groups" : "out of memory");
  }
  return 0;
}

/* ------------------------------------------------ static aggregation ---
 *
 * A static query (tide.read(...):group_by():agg()) wants only the final
 * rows, so the fold of a parallel push need not build one table on one
 * thread. tide_agg_set_static(a, P) splits a into P part tables (a->hp),
 * part q owning the keys whose hash falls in q (hp_part: the top bits of
 * the hash; a table's slot uses the low ones). A push runs its ranges into
 * partials as above (a batch too small for two ranges makes one), then P
 * fold tasks on the pool, one per part, each walk every partial in range
 * order and fold the groups of their part into their table (fold_group,
 * as the one-table fold does): the fold runs on every thread, and no key is
 * folded by two.
 *
 * Order. Every partial group of every push gets a stamp, counted from
 * hp_next in push order, then range order, then the partial's own
 * first-seen order; so the smallest stamp of a key marks where one thread
 * first saw it. A part table creates each group at its first stamp (its
 * fold walks in stamp order) and keeps the stamp in sid[] (state ids mean
 * nothing here): ascending with gid. tide_agg_result takes the parts'
 * groups merged by stamp (hp_result builds the rows straight from the
 * parts), which is one thread's first-seen order.
 *
 * Exactness is the parallel push's: set_static refuses (a stays one
 * table) unless every aggregate folds bit-exactly (spec_folds). When a push
 * cannot run this way (a task failed, avg_abs passed AVG_EXACT, created
 * rows wanted), and before any call other than push, result, result_all,
 * groups and bytes that changes or reads groups through a non-const
 * pointer (update,
 * restore, evict, lookup, merge, remove, spill ...), the parts are
 * unparted: folded into a itself in stamp order, which gives one thread's
 * table (gids, sids, dirty set), and a is an ordinary aggregation again.
 * The const accessors of single groups (sid, dirty, encode, result_of)
 * see a's own table, empty while it is parted.
 */

/* The part of key hash hv among P. */
static inline uint32_t hp_part(uint64_t hv, uint32_t P) { return (uint32_t)(((hv >> 32) * P) >> 32); }

/* n new empty aggregations of a's layout in *out (malloc'd). 0 or -ENOMEM
 * (nothing kept). */
static int clone_many(const tide_agg_t *a, uint32_t n, tide_agg_t ***out, tide_err_t *err) {
  tide_agg_t **v = calloc(n ? n : 1, sizeof *v);
  if (!v) return tide_err_set(err, -ENOMEM, "out of memory");
  for (uint32_t i = 0; i < n; i++) {
    int rc = clone_empty(a, &v[i], err);
    if (rc) {
      for (uint32_t j = 0; j < i; j++) tide_agg_free(v[j]);
      free(v);
      return rc;
    }
  }
  *out = v;
  return 0;
}

int tide_agg_set_static(tide_agg_t *a, uint32_t nparts, tide_err_t *err) {
  if (nparts < 2 || a->nhp || a->ngroups || a->store || a->poisoned || a->no_par) return 0;
  for (uint32_t i = 0; i < a->nspecs; i++)
    if (!spec_folds(&a->specs[i])) return 0;
  if (nparts > TIDE_POOL_MAX) nparts = TIDE_POOL_MAX;
  tide_agg_t **hp;
  int rc = clone_many(a, nparts, &hp, err);
  if (rc) return rc;
  a->hp = hp;
  a->nhp = nparts;
  a->hp_next = 1;
  return 1;
}

/* One fold task per part: its part's groups of parts[0..np). */
typedef struct hp_task {
  tide_agg_t *a;
  uint32_t np;
  int rc;
} hp_task_t;

static void hp_run(void *arg, size_t q) {
  hp_task_t *t = (hp_task_t *)arg + q;
  tide_agg_t *d = t->a->hp[q];
  uint32_t P = t->a->nhp;
  uint64_t stamp = t->a->hp_next;
  int created;
  for (uint32_t p = 0; p < t->np && !t->rc; p++) {
    const tide_agg_t *s = t->a->parts[p];
    uint32_t n = s->ngroups, m = 0, *idx;
    if ((t->rc = ensure_scratch(d, n))) break;
    idx = d->gid; /* the part's groups of this partial, in order */
    for (uint32_t pg = 0; pg < n; pg++)
      if (hp_part(s->ghash[pg], P) == q) idx[m++] = pg;
    for (uint32_t i = 0; i < m && !t->rc; i++) {
      fold_prefetch(d, s->ghash, i, m, idx);
      if (!(t->rc = fold_group(d, s, idx[i], 0, 0, &created)) && created) d->sid[d->ngroups - 1] = stamp + idx[i];
    }
    stamp += n;
  }
}

/* Fold the partials of a push's nt tasks into the parts, on pool. */
static int hp_fold(tide_agg_t *a, const par_task_t *pt, uint32_t nt, struct tide_pool *pool, tide_err_t *err) {
  hp_task_t t[TIDE_POOL_MAX];
  uint64_t m = 0, pairs = 0;
  for (uint32_t i = 0; i < nt; i++) pairs += pt[i].out.pushed + pt[i].out.late_pairs;
  /* scratch for every pair, as one thread sizes it (tide_agg_bytes once folded back) */
  if (pairs && ensure_scratch(a, pairs > UINT32_MAX ? UINT32_MAX : (uint32_t)pairs))
    return tide_err_set(err, -ENOMEM, "out of memory");
  for (uint32_t q = 0; q < a->nhp; q++) t[q] = (hp_task_t){a, nt, 0};
  tide_pool_run(pool, a->nhp, hp_run, t);
  int rc = 0;
  for (uint32_t q = 0; q < a->nhp; q++)
    if (t[q].rc && (!rc || t[q].rc == TIDE_ETOOBIG)) rc = t[q].rc;
  for (uint32_t i = 0; i < nt; i++) {
    m += a->parts[i]->ngroups;
    a->avg_abs += a->parts[i]->avg_abs;
  }
  a->hp_next += m;
  if (!rc && tide_agg_groups(a) > UINT32_MAX - 2) rc = TIDE_ETOOBIG; /* what one table holds */
  if (rc) {
    a->poisoned = 1;
    return tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "too many groups" : "out of memory");
  }
  return 0;
}

/* The part whose next group (cur[q]) has the smallest stamp, or nhp when
 * every part is done. */
static uint32_t hp_next_part(const tide_agg_t *a, uint32_t *cur) {
  uint32_t best = a->nhp;
  for (uint32_t q = 0; q < a->nhp; q++)
    while (a->hp_dead && cur[q] < a->hp[q]->ngroups && a->hp[q]->sid[cur[q]] == HP_DEAD) cur[q]++;
  for (uint32_t q = 0; q < a->nhp; q++)
    if (cur[q] < a->hp[q]->ngroups && (best == a->nhp || a->hp[q]->sid[cur[q]] < a->hp[best]->sid[cur[best]]))
      best = q;
  return best;
}

/* Fold the parts into a itself in stamp order (one thread's table) and
 * make a an ordinary aggregation. 0, or -ENOMEM / TIDE_ETOOBIG with a
 * poisoned. */
static int unpart(tide_agg_t *a, tide_err_t *err) {
  if (!a->nhp) return 0;
  uint32_t *cur = calloc(a->nhp, sizeof *cur), q;
  int rc = cur ? 0 : -ENOMEM, created;
  uint32_t g0 = a->ngroups, d0 = a->ndirty;
  while (!rc && (q = hp_next_part(a, cur)) < a->nhp) rc = fold_group(a, a->hp[q], cur[q]++, g0, 0, &created);
  free(cur);
  if (!rc) mark_dirty(a, g0, d0);
  for (q = 0; q < a->nhp; q++) tide_agg_free(a->hp[q]);
  free(a->hp);
  a->hp = NULL;
  a->nhp = 0;
  a->hp_dead = 0;
  a->hp_killed = 0;
  if (rc) {
    a->poisoned = 1;
    return tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "too many groups" : "out of memory");
  }
  return 0;
}

/* tide_agg_result of a parted aggregation: the parts' groups merged by
 * stamp, built in that order. */
static int hp_result(const tide_agg_t *a, tide_batch_t **out, tide_err_t *err) {
  uint64_t n = tide_agg_groups(a);
  if (n > TIDE_BATCH_MAX_ROWS) return tide_err_set(err, TIDE_ETOOBIG, "%llu groups do not fit one batch",
                                                   (unsigned long long)n);
  uint32_t *cur = calloc(a->nhp, sizeof *cur), *gids = malloc((n ? n : 1) * sizeof *gids), q;
  uint8_t *tab_of = malloc(n ? n : 1);
  int rc = cur && gids && tab_of ? 0 : tide_err_set(err, -ENOMEM, "out of memory");
  for (uint32_t i = 0; !rc && i < n; i++) {
    q = hp_next_part(a, cur);
    tab_of[i] = (uint8_t)q;
    gids[i] = cur[q]++;
  }
  if (!rc) rc = build_result_of(a, (const tide_agg_t *const *)a->hp, tab_of, gids, (uint32_t)n, out, err);
  free(tab_of);
  free(gids);
  free(cur);
  return rc;
}

/* The parallel push (the comment above): 0 or an error as tide_agg_push,
 * or 1 when the push must run on one thread instead (nothing changed). */
static int push_par(tide_agg_t *a, const tide_agg_input_t *in, uint32_t nt, tide_agg_output_t *out,
                    tide_err_t *err) {
  /* ranges of a multiple of 64 rows, unless tests ask for smaller tasks */
  uint32_t n = in->batch->nrows, chunk = (n + nt - 1) / nt;
  if (!in->par_min_rows) chunk = (chunk + 63) & ~63u;
  nt = (n + chunk - 1) / chunk;
  if (a->nparts < nt) {
    tide_agg_t **pp = realloc(a->parts, nt * sizeof *pp);
    if (!pp) return 1;
    a->parts = pp;
    for (; a->nparts < nt; a->nparts++)
      if (clone_empty(a, &a->parts[a->nparts], err)) return 1;
  }
  for (uint32_t i = 0; i < nt; i++)
    if (in->late_col >= 0 && !a->parts[i]->late_keys && tide_agg_new(a->keys, NULL, 0, &a->parts[i]->late_keys, err))
      return 1;
  par_task_t *t = calloc(nt, sizeof *t);
  tide_buf_t sb = TIDE_BUF_INIT;
  int bad = !t || tide_schema_encode(in->batch->schema, &sb);
  for (uint32_t i = 0; !bad && i < nt; i++) bad = tide_schema_decode(sb.data, sb.len, &t[i].schema, err) != 0;
  tide_buf_free(&sb);
  if (bad) {
    for (uint32_t i = 0; t && i < nt; i++) tide_schema_unref(t[i].schema);
    free(t);
    return 1;
  }
  for (uint32_t i = 0; i < nt; i++) {
    t[i].in = in;
    t[i].part = a->parts[i];
    t[i].r0 = i * chunk;
    t[i].r1 = i + 1 == nt ? n : (i + 1) * chunk;
  }
  tide_pool_run(in->pool, nt, par_run, t);
  int rc = 0;
  double abs_sum = a->avg_abs;
  for (uint32_t i = 0; i < nt; i++) {
    if (t[i].rc) rc = 1; /* again on one thread: its error is the one to report */
    abs_sum += a->parts[i]->avg_abs;
  }
  if (!rc && !(abs_sum <= AVG_EXACT)) { /* avg of int could round differently from now on */
    a->no_par = 1;
    rc = 1;
  }
  uint32_t late = 0;
  for (uint32_t i = 0; !rc && i < nt; i++) {
    out->pushed += t[i].out.pushed;
    out->late_pairs += t[i].out.late_pairs;
    late += t[i].out.late_pairs > 0;
    if (in->time_col >= 0 && t[i].out.time_count) {
      if (!out->time_count || t[i].out.time_min < out->time_min) out->time_min = t[i].out.time_min;
      if (!out->time_count || t[i].out.time_max > out->time_max) out->time_max = t[i].out.time_max;
      out->time_count += t[i].out.time_count;
      out->time_sum += t[i].out.time_sum;
    }
  }
  if (!rc) rc = a->nhp ? hp_fold(a, t, nt, in->pool, err) : par_fold(a, t, nt, out, err);
  if (!rc) a->par_pushes++;
  if (!rc && late) { /* the late groups, and the lost rows in input order */
    tide_agg_t **parts = a->parts;
    if (late == 1) {
      for (uint32_t i = 0; i < nt; i++) out->late_groups += parts[i]->late_keys->ngroups;
    } else {
      rc = count_late(a, parts, nt, &out->late_groups, err);
    }
    tide_batch_t **lost = calloc(nt, sizeof *lost);
    uint32_t nl = 0;
    if (!rc && !lost) rc = tide_err_set(err, -ENOMEM, "out of memory");
    for (uint32_t i = 0; !rc && i < nt; i++)
      if (t[i].out.lost) lost[nl++] = t[i].out.lost;
    if (!rc && nl == 1) { /* on the input's schema, not the task's copy */
      out->lost = lost[0];
      tide_schema_unref(out->lost->schema);
      out->lost->schema = tide_schema_ref(in->batch->schema);
      for (uint32_t i = 0; i < nt; i++)
        if (t[i].out.lost == out->lost) t[i].out.lost = NULL;
    } else if (!rc && nl > 1 && (rc = tide_batch_concat(lost, nl, in->batch->schema, &out->lost))) {
      rc = tide_err_set(err, rc, "out of memory");
    }
    free(lost);
  }
  for (uint32_t i = 0; i < nt; i++) {
    tide_batch_free(t[i].out.lost);
    tide_batch_free(t[i].out.created);
    tide_expr_range_close(&t[i].range);
    tide_schema_unref(t[i].schema);
    free(t[i].sel);
  }
  free(t);
  if (rc == 1) memset(out, 0, sizeof *out);
  return rc;
}

/* -------------------------------------------------- one-stage scan ---
 *
 * A static query over files (core/scan.c) need not decode on one stage and
 * aggregate on another: each worker takes whole ranges of the input, one
 * after another, in increasing order (a shared counter hands them out),
 * and pushes each range's rows into a worker table of its own
 * (tide_agg_scan_push: the one-thread push, push_one). A group a worker
 * creates is stamped (range << 32) + its place among the groups the range
 * created (scan_seq), in sid[]: ascending with gid, since a worker's
 * ranges ascend, and the smallest stamp of a key over all workers marks
 * where one thread, reading the ranges in order, first saw it. At the end
 * (tide_agg_scan_end) P fold tasks on the pool, one per part of a
 * static aggregation (hp_part), each walk the groups of their part of
 * every worker table merged by stamp and fold them into their part table,
 * which so creates each group at its first stamp (kept in sid[]):
 * tide_agg_result then merges the parts by stamp as after parallel pushes
 * (hp_result). Only aggregates whose fold is bit-exact in any order run
 * this way (the worker tables hold ranges that are not contiguous): counts,
 * sum of int, min and max of fixed-width types, avg of int while avg_abs
 * stays below AVG_EXACT; not first/last.
 */

/* 1 when spec s folds into the same bits whatever order the rows come in. */
static int spec_commutes(const aspec_t *s) {
  if (s->kind == TIDE_AGG_MIN || s->kind == TIDE_AGG_MAX) /* ties of doubles (0.0, -0.0) differ in bits */
    return spec_folds(s) && s->type != TIDE_T_DOUBLE;
  return spec_folds(s) && s->kind != TIDE_AGG_FIRST && s->kind != TIDE_AGG_LAST;
}

int tide_agg_scan_begin(tide_agg_t *a, uint32_t nworkers, tide_err_t *err) {
  if (nworkers < 1 || a->nhp < 2 || a->nscan || a->poisoned || a->no_par || a->store ||
      tide_agg_groups(a) || a->hp_next != 1)
    return 0;
  for (uint32_t i = 0; i < a->nspecs; i++)
    if (!spec_commutes(&a->specs[i])) return 0;
  tide_agg_t **w;
  int rc = clone_many(a, nworkers, &w, err);
  if (rc) return rc;
  for (uint32_t i = 0; i < nworkers; i++) w[i]->scan_range = UINT64_MAX;
  a->scan = w;
  a->nscan = nworkers;
  return 1;
}

int tide_agg_scan_push(tide_agg_t *a, uint32_t w, uint64_t range, const tide_agg_input_t *in, tide_err_t *err) {
  tide_agg_t *t = a->scan[w];
  tide_agg_input_t one = *in;
  one.pool = NULL;
  one.want_created = 0;
  one.late_col = -1;
  one.time_col = -1;
  if (t->scan_range != range) {
    t->scan_range = range;
    t->scan_seq = 0;
  }
  uint32_t g0 = t->ngroups;
  tide_agg_output_t out;
  int rc = push_one(t, &one, &out, err);
  tide_batch_free(out.lost);
  tide_batch_free(out.created);
  if (rc) return rc;
  for (uint32_t g = g0; g < t->ngroups; g++) t->sid[g] = (range << 32) + ++t->scan_seq;
  return 0;
}

void tide_agg_scan_abort(tide_agg_t *a) {
  for (uint32_t i = 0; i < a->nscan; i++) tide_agg_free(a->scan[i]);
  free(a->scan);
  a->scan = NULL;
  a->nscan = 0;
}

/* The group of table t with the key of group g of table s (same layout),
 * or UINT32_MAX. */
static uint32_t find_rec(const tide_agg_t *t, const tide_agg_t *s, uint32_t g) {
  if (!t->ngroups) return UINT32_MAX;
  size_t mask = t->tcap - 1;
  uint64_t hv = s->ghash[g], tag = hv >> 32 << 32, e;
  const unsigned char *prec = s->krec + (size_t)g * s->krec_size;
  for (size_t pos = hv & mask; (e = t->tab[pos]); pos = (pos + 1) & mask)
    if ((e & 0xffffffff00000000ull) == tag && rec_key_eq(t, (uint32_t)e - 1, s, prec)) return (uint32_t)e - 1;
  return UINT32_MAX;
}

/* A task of the end of a scan: groups [g0, g1) of worker table w, each
 * looked up in tables 0..w-1; where a live group has its key, the two
 * fold into the one with the smaller stamp and the other dies. Each key
 * is one task's, so no two tasks touch one group. */
typedef struct scan_dedup {
  tide_agg_t *a;
  uint32_t w, g0, g1;
  uint64_t killed;
} scan_dedup_t;

static void scan_dedup_run(void *arg, size_t i) {
  scan_dedup_t *t = (scan_dedup_t *)arg + i;
  tide_agg_t *a = t->a, *s = a->scan[t->w];
  for (uint32_t g = t->g0; g < t->g1; g++) {
    if (g + PREFETCH < t->g1)
      for (uint32_t j = 0; j < t->w; j++)
        if (a->scan[j]->ngroups)
          __builtin_prefetch(&a->scan[j]->tab[s->ghash[g + PREFETCH] & (a->scan[j]->tcap - 1)]);
    for (uint32_t j = 0; j < t->w; j++) {
      tide_agg_t *o = a->scan[j], *dt = o, *st = s;
      uint32_t h = find_rec(o, s, g), dg = h, sg = g;
      if (h == UINT32_MAX || o->sid[h] == HP_DEAD) continue;
      if (s->sid[g] < o->sid[h]) {
        dt = s;
        dg = g;
        st = o;
        sg = h;
      }
      for (uint32_t k = 0; k < a->nspecs; k++) merge_spec(dt, &dt->specs[k], dg, st, sg, 0); /* fixed width: no memory */
      st->sid[sg] = HP_DEAD;
      t->killed++;
      break;
    }
  }
}

int tide_agg_scan_end(tide_agg_t *a, uint64_t nranges, struct tide_pool *pool, tide_err_t *err) {
  double abs_sum = a->avg_abs;
  for (uint32_t w = 0; w < a->nscan; w++) abs_sum += a->scan[w]->avg_abs;
  if (!(abs_sum <= AVG_EXACT)) { /* avg of int could round otherwise than one thread's */
    tide_agg_scan_abort(a);
    return 1;
  }
  uint32_t nt = pool ? (uint32_t)tide_pool_threads(pool) : 1;
  scan_dedup_t t[TIDE_POOL_MAX];
  uint64_t killed = 0, n = 0;
  for (uint32_t w = 0; w < a->nscan; w++) {
    tide_agg_t *s = a->scan[w];
    n += s->ngroups;
    if (!w || !s->ngroups) continue;
    uint32_t chunk = (s->ngroups + nt - 1) / nt;
    for (uint32_t i = 0; i < nt; i++) {
      uint32_t g0 = i * chunk < s->ngroups ? i * chunk : s->ngroups;
      t[i] = (scan_dedup_t){a, w, g0, g0 + chunk < s->ngroups ? g0 + chunk : s->ngroups, 0};
    }
    tide_pool_run(pool, nt, scan_dedup_run, t);
    for (uint32_t i = 0; i < nt; i++) killed += t[i].killed;
  }
  if (n - killed > UINT32_MAX - 2) { /* what one table holds */
    tide_agg_scan_abort(a);
    a->poisoned = 1;
    return tide_err_set(err, TIDE_ETOOBIG, "too many groups");
  }
  /* the worker tables become a's tables, merged by stamp (hp_next_part) */
  for (uint32_t q = 0; q < a->nhp; q++) tide_agg_free(a->hp[q]);
  free(a->hp);
  a->hp = a->scan;
  a->nhp = a->nscan;
  a->hp_dead = 1;
  a->hp_killed = killed;
  a->scan = NULL;
  a->nscan = 0;
  a->avg_abs = abs_sum;
  a->hp_next = (nranges << 32) + ((uint64_t)1 << 32); /* past every stamp of the scan */
  return 0;
}

uint64_t tide_agg_par_pushes(const tide_agg_t *a) { return a->par_pushes; }

int tide_agg_push(tide_agg_t *a, const tide_agg_input_t *in, tide_agg_output_t *out, tide_err_t *err) {
  if (a->hp_dead && !a->poisoned) { /* a scan's tables are not parted by hash: one table from here on */
    int rc = unpart(a, err);
    if (rc) return rc;
  }
  if (a->nhp && !a->poisoned && in->batch && !in->batch->nrows && !in->want_created) {
    memset(out, 0, sizeof *out); /* a static aggregation: nothing to aggregate, nothing to fold back */
    return push_check(a, in, err);
  }
  uint32_t nt = par_tasks(a, in);
  int rc;
  if (nt) {
    memset(out, 0, sizeof *out);
    if ((rc = push_check(a, in, err))) return rc;
    if ((rc = push_par(a, in, nt, out, err)) != 1) return rc;
  }
  if (a->nhp && !a->poisoned && (rc = unpart(a, err))) return rc; /* one thread from here on */
  return push_one(a, in, out, err);
}

/* ------------------------------------------------- session windows --- */

/* Fold one group into another, first/last as flags say (agg.h). */
int tide_agg_merge_ex(tide_agg_t *a, uint32_t dst, uint32_t src, unsigned flags, tide_err_t *err) {
  UNPART(a, err);
  if (a->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier update failed");
  if (dst >= a->ngroups || src >= a->ngroups)
    return tide_err_set(err, TIDE_EINVAL, "merge: group %u does not exist (%u groups)", dst >= a->ngroups ? dst : src,
                        a->ngroups);
  if (dst == src) return tide_err_set(err, TIDE_EINVAL, "merge: group %u into itself", dst);
  for (uint32_t i = 0; i < a->nspecs; i++) {
    int rc = merge_spec(a, &a->specs[i], dst, a, src, flags);
    if (rc) { /* an earlier aggregate of dst is merged already */
      a->poisoned = 1;
      return tide_err_set(err, rc, "out of memory");
    }
  }
  make_dirty(a, dst);
  return 0;
}

/* Find or create the groups of the rows of keys, aggregating nothing
 * (agg.h). */
int tide_agg_insert(tide_agg_t *a, const tide_batch_t *keys, uint32_t *gids, tide_err_t *err) {
  UNPART(a, err);
  int rc = hash_input(a, keys, err);
  uint32_t n = keys->nrows;
  if (rc || !n) return rc;
  uint32_t g0 = a->ngroups, d0 = a->ndirty;
  if ((rc = find_groups(a, keys, n))) {
    a->poisoned = 1;
    return tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "too many groups" : "out of memory");
  }
  mark_dirty(a, g0, d0);
  memcpy(gids, a->gid, (size_t)n * sizeof *gids);
  return 0;
}

/* Aggregate rows into given groups (agg.h). */
int tide_agg_update_groups(tide_agg_t *a, const uint32_t *gids, uint32_t n, const tide_col_t *const *args,
                           const uint8_t *only, tide_err_t *err) {
  UNPART(a, err);
  if (a->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier update failed");
  for (uint32_t i = 0; i < a->nspecs; i++) {
    const aspec_t *s = &a->specs[i];
    if (s->kind == TIDE_AGG_COUNT_STAR || (only && !only[i])) continue;
    if (!args || !args[i])
      return tide_err_set(err, TIDE_EINVAL, "aggregate %u (%s): no argument column", i, kind_name(s->kind));
    if (args[i]->type != s->type)
      return tide_err_set(err, TIDE_EINVAL, "aggregate %u (%s): the argument is %s, expected %s", i,
                          kind_name(s->kind), tide_type_name(args[i]->type), tide_type_name(s->type));
  }
  for (uint32_t i = 0; i < n; i++)
    if (gids[i] >= a->ngroups)
      return tide_err_set(err, TIDE_EINVAL, "group %u does not exist (%u groups)", gids[i], a->ngroups);
  if (!n) return 0;
  if (ensure_scratch(a, n)) return tide_err_set(err, -ENOMEM, "out of memory");
  memcpy(a->gid, gids, (size_t)n * sizeof *gids);
  /* the groups become dirty, as find_groups marks those it finds */
  uint32_t d0 = a->ndirty;
  if (a->ndirty < a->ngroups)
    for (uint32_t i = 0; i < n; i++)
      if (!DFLAG(a, gids[i])) {
        DFLAG(a, gids[i]) = 1;
        a->dirty[a->ndirty++] = gids[i];
      }
  mark_dirty(a, a->ngroups, d0);
  int rc = 0;
  for (uint32_t i = 0; !rc && i < a->nspecs; i++)
    if (!only || only[i]) rc = update_spec(a, &a->specs[i], a->specs[i].kind == TIDE_AGG_COUNT_STAR ? NULL : args[i], n);
  if (rc) {
    a->poisoned = 1;
    return tide_err_set(err, rc, "out of memory");
  }
  return 0;
}

/* ------------------------------------------------------------ spilling --- */

/* Groups of one walk of the store restored per temporary aggregation. */
#define WALK_CHUNK 4096

void tide_agg_set_store(tide_agg_t *a, const tide_agg_store_t *s, uint64_t spilled, uint64_t next_sid) {
  a->store = s;
  a->spilled = s ? spilled : 0;
  if (next_sid > a->next_sid) a->next_sid = next_sid;
  if (!a->ndirty && a->sid0 < a->next_sid) a->sid0 = a->next_sid;
  /* groups never seen in memory: no bound on their values is known */
  for (uint32_t c = 0; c < a->schema->nfields; c++) a->dmin[c] = a->spilled ? INT64_MIN : INT64_MAX;
}

uint64_t tide_agg_spilled(const tide_agg_t *a) { return a->spilled; }

void tide_agg_spill_counts(const tide_agg_t *a, uint64_t *spilled_total, uint64_t *loaded_total) {
  *spilled_total = a->spilled_total;
  *loaded_total = a->loaded_total;
}

/* 1 when result column c holds int or timestamp values (int_value reads it). */
static int int_col(const tide_agg_t *a, uint32_t c) {
  tide_type_t t = a->schema->fields[c].type;
  return t == TIDE_T_INT || t == TIDE_T_TIMESTAMP;
}

/* Lower the bounds dmin[] by group g's int values. */
static void lower_bounds(const tide_agg_t *a, uint32_t g, int64_t *dmin) {
  for (uint32_t c = 0; c < a->schema->nfields; c++) {
    int64_t v;
    if (int_col(a, c) && int_value(a, c, g, &v) && v < dmin[c]) dmin[c] = v;
  }
}

static int cmp_u64(const void *x, const void *y) {
  uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
  return (a > b) - (a < b);
}

/* Drop the least recently touched groups (agg.h). The number to drop is
 * estimated from the bytes over the target as a share of all bytes, and
 * estimated again until the target is met: groups differ in size (long
 * keys, strings, distinct sets), so a few rounds may be needed. */
int tide_agg_spill(tide_agg_t *a, size_t target, uint32_t *n, tide_err_t *err) {
  UNPART(a, err);
  *n = 0;
  if (a->poisoned) return tide_err_set(err, TIDE_EPOISONED, "an earlier update failed");
  if (!a->store) return tide_err_set(err, TIDE_EINVAL, "spill: no store is attached");
  if (a->ndirty) return tide_err_set(err, TIDE_EINVAL, "spill: %u groups are not committed", a->ndirty);
  for (int round = 0; round < 16 && a->ngroups; round++) {
    size_t bytes = tide_agg_bytes(a);
    if (bytes <= target) break;
    uint32_t ng = a->ngroups;
    uint64_t m = (uint64_t)((double)(bytes - target) / (double)bytes * ng) + 1;
    if (m > ng) m = ng;
    uint64_t *ord = malloc((size_t)ng * sizeof *ord);
    uint32_t *gone = malloc((size_t)m * sizeof *gone);
    if (!ord || !gone) {
      free(ord);
      free(gone);
      return tide_err_set(err, -ENOMEM, "out of memory");
    }
    for (uint32_t g = 0; g < ng; g++) ord[g] = (uint64_t)touched(a, g) << 32 | g;
    qsort(ord, ng, sizeof *ord, cmp_u64);
    for (uint64_t i = 0; i < m; i++) gone[i] = (uint32_t)ord[i];
    free(ord);
    qsort(gone, (size_t)m, sizeof *gone, cmp_u32);
    for (uint64_t i = 0; i < m; i++) lower_bounds(a, gone[i], a->dmin);
    remove_groups(a, gone, (uint32_t)m);
    free(gone);
    /* give the arrays back: remove_groups keeps them until 3/4 are free */
    uint32_t cap = a->ngroups + a->ngroups / 4 + 64;
    if (a->gcap > cap) resize_groups(a, cap); /* shrinking: never fails */
    a->spilled += m;
    a->spilled_total += m;
    *n += (uint32_t)m;
  }
  return 0;
}

/* A clone of a's layout with no group (a temporary aggregation to decode
 * stored groups into). */
static int clone_empty(const tide_agg_t *a, tide_agg_t **out, tide_err_t *err) {
  tide_agg_spec_t *sp = calloc(a->nspecs ? a->nspecs : 1, sizeof *sp);
  if (!sp) return tide_err_set(err, -ENOMEM, "out of memory");
  for (uint32_t i = 0; i < a->nspecs; i++) {
    sp[i].kind = a->specs[i].kind;
    sp[i].arg_type = a->specs[i].type;
    sp[i].name = a->schema->fields[a->nkeys + i].name;
  }
  int rc = tide_agg_new(a->keys, sp, a->nspecs, out, err);
  free(sp);
  return rc;
}

/* A walk over the groups only in the store. */
typedef struct walk {
  tide_agg_t *tmp;
  const uint64_t *skip; /* sorted: the sids in memory or taken out since the last commit */
  size_t nskip;
} walk_t;

static int walk_rec(void *arg, uint64_t sid, const void *rec, size_t len, tide_err_t *err) {
  walk_t *w = arg;
  if (w->nskip && bsearch(&sid, w->skip, w->nskip, sizeof sid, cmp_u64)) return 0;
  return tide_agg_restore(w->tmp, sid, rec, len, err);
}

/* Call fn(a, tmp, arg, err) for the groups only in the store, WALK_CHUNK
 * stored records at a time (in sid order), restored into a temporary
 * aggregation tmp. A stored record of a group in memory is older than
 * the group, and one taken out since the last commit is about to be
 * deleted: both are skipped. 0 or the first error. */
static int walk_stored(tide_agg_t *a, int (*fn)(tide_agg_t *, tide_agg_t *, void *, tide_err_t *), void *arg,
                       tide_err_t *err) {
  size_t nskip = (size_t)a->ngroups + a->ngone;
  uint64_t *skip = malloc((nskip ? nskip : 1) * sizeof *skip);
  if (!skip) return tide_err_set(err, -ENOMEM, "out of memory");
  if (a->ngroups) memcpy(skip, a->sid, (size_t)a->ngroups * sizeof *skip);
  if (a->ngone) memcpy(skip + a->ngroups, a->gone_sid, a->ngone * sizeof *skip);
  qsort(skip, nskip, sizeof *skip, cmp_u64);
  walk_t w = {NULL, skip, nskip};
  uint64_t after = 0;
  int done = 0, rc = 0;
  while (!done && !rc) {
    if ((rc = clone_empty(a, &w.tmp, err))) break;
    uint64_t last = after;
    rc = a->store->scan(a->store->ctx, after, WALK_CHUNK, walk_rec, &w, &last, &done, err);
    if (!rc && w.tmp->ngroups) rc = fn(a, w.tmp, arg, err);
    tide_agg_free(w.tmp);
    w.tmp = NULL;
    if (last == after) done = 1; /* nothing handed: the end */
    after = last;
  }
  free(skip);
  return rc;
}

/* Append every row of b to *acc (b is consumed; *acc NULL: b becomes it). */
static int append_rows(tide_batch_t **acc, tide_batch_t *b, tide_err_t *err) {
  if (!*acc) {
    *acc = b;
    return 0;
  }
  int rc = 0;
  if (!(*acc)->owned) { /* a result batch is a view (tide_batch_adopt): copy it into one that grows */
    tide_batch_t *o = tide_batch_new((*acc)->schema, (*acc)->nrows + b->nrows);
    if (!o) rc = -ENOMEM;
    for (uint32_t r = 0; o && r < (*acc)->nrows && !rc; r++) rc = tide_batch_append_row(o, *acc, r);
    if (rc) {
      tide_batch_free(o);
    } else {
      tide_batch_free(*acc);
      *acc = o;
    }
  }
  for (uint32_t r = 0; r < b->nrows && !rc; r++) rc = tide_batch_append_row(*acc, b, r);
  tide_batch_free(b);
  if (rc) return tide_err_set(err, rc, "%s", rc == TIDE_ETOOBIG ? "the groups do not fit one batch" : "out of memory");
  return 0;
}

static int evict_chunk(tide_agg_t *a, tide_agg_t *tmp, void *arg, tide_err_t *err) {
  (void)a;
  stored_evict_t *se = arg;
  uint32_t *gids = malloc(tmp->ngroups * sizeof *gids), m = 0;
  if (!gids) return tide_err_set(err, -ENOMEM, "out of memory");
  for (uint32_t g = 0; g < tmp->ngroups; g++) {
    int64_t v;
    if (int_value(tmp, se->col, g, &v) && v <= se->bound) gids[m++] = g;
    else lower_bounds(tmp, g, se->dmin);
  }
  int rc = 0;
  if (m && se->cap - se->n < m) {
    size_t cap = se->cap ? se->cap : 256;
    while (cap - se->n < m) cap *= 2;
    uint64_t *s = realloc(se->sids, cap * sizeof *s);
    if (s) se->sids = s;
    uint64_t *h = s ? realloc(se->hashes, cap * sizeof *h) : NULL;
    if (h) se->hashes = h;
    if (!s || !h) rc = tide_err_set(err, -ENOMEM, "out of memory");
    else se->cap = cap;
  }
  for (uint32_t i = 0; !rc && i < m; i++) {
    se->sids[se->n] = tmp->sid[gids[i]];
    se->hashes[se->n++] = tmp->ghash[gids[i]];
  }
  if (!rc && m && se->want_rows) {
    tide_batch_t *b;
    if (!(rc = build_result(tmp, gids, m, &b, err))) rc = append_rows(&se->rows, b, err);
  }
  free(gids);
  return rc;
}

static void stored_evict_free(stored_evict_t *se) {
  tide_batch_free(se->rows);
  free(se->sids);
  free(se->hashes);
  free(se->dmin);
  memset(se, 0, sizeof *se);
}

/* Find the groups only in the store whose column col is <= bound, into
 * se (nothing in a changes). Skipped while dmin says none can be. */
static int evict_stored(tide_agg_t *a, uint32_t col, int64_t bound, int want_rows, stored_evict_t *se,
                        tide_err_t *err) {
  memset(se, 0, sizeof *se);
  if (!a->store || !a->spilled || a->dmin[col] > bound) return 0;
  se->col = col;
  se->bound = bound;
  se->want_rows = want_rows;
  if (!(se->dmin = malloc(a->schema->nfields * sizeof *se->dmin))) return tide_err_set(err, -ENOMEM, "out of memory");
  for (uint32_t c = 0; c < a->schema->nfields; c++) se->dmin[c] = INT64_MAX;
  int rc = walk_stored(a, evict_chunk, se, err);
  if (rc) {
    stored_evict_free(se);
    return rc;
  }
  se->scanned = 1;
  return 0;
}

/* Add the stored groups se found to what the eviction of the groups in
 * memory gave (*rows, *sids, *n), log them as gone, and take the exact
 * bounds of the stored groups that stay. */
static int stored_evict_finish(tide_agg_t *a, stored_evict_t *se, tide_batch_t **rows, uint64_t **sids, uint32_t *n,
                               tide_err_t *err) {
  memcpy(a->dmin, se->dmin, a->schema->nfields * sizeof *a->dmin);
  if (!se->n) return 0;
  uint64_t *sv = realloc(*sids, (*n + se->n) * sizeof *sv);
  if (!sv || (a->log_gone && gone_room(a, se->n))) {
    if (sv) *sids = sv;
    a->poisoned = 1; /* the groups in memory are gone already */
    return tide_err_set(err, -ENOMEM, "out of memory");
  }
  *sids = sv;
  memcpy(sv + *n, se->sids, se->n * sizeof *sv);
  if (a->log_gone) {
    memcpy(a->gone_sid + a->ngone, se->sids, se->n * sizeof *sv);
    memcpy(a->gone_hash + a->ngone, se->hashes, se->n * sizeof *sv);
    a->ngone += se->n;
  }
  *n += (uint32_t)se->n;
  a->spilled = a->spilled > se->n ? a->spilled - se->n : 0;
  if (rows && se->rows) {
    tide_batch_t *b = se->rows;
    se->rows = NULL;
    int rc = append_rows(rows, b, err);
    if (rc) {
      a->poisoned = 1;
      return rc;
    }
  }
  return 0;
}

static int result_chunk(tide_agg_t *a, tide_agg_t *tmp, void *arg, tide_err_t *err) {
  (void)a;
  tide_batch_t *b;
  int rc = build_result(tmp, NULL, tmp->ngroups, &b, err);
  return rc ? rc : append_rows(arg, b, err);
}

int tide_agg_result_all(tide_agg_t *a, tide_batch_t **out, tide_err_t *err) {
  int rc = tide_agg_result(a, out, err);
  if (rc || !a->store || !a->spilled) return rc;
  if ((rc = walk_stored(a, result_chunk, out, err))) {
    tide_batch_free(*out);
    *out = NULL;
  }
  return rc;
}

static int load_rec(void *arg, uint64_t sid, const void *rec, size_t len, tide_err_t *err) {
  return tide_agg_load(arg, sid, rec, len, err);
}

/* Before an update: load the groups of the rows' keys that are not in
 * memory but may be in the store (a->h holds the rows' hashes), with one
 * lookup for the distinct hashes, ascending (the store reads its index
 * in order). */
static int load_missing(tide_agg_t *a, const tide_batch_t *keys, uint32_t n, tide_err_t *err) {
  if (!a->store || !a->spilled) return 0;
  uint64_t *miss = malloc((size_t)n * sizeof *miss);
  if (!miss) return tide_err_set(err, -ENOMEM, "out of memory");
  uint32_t m = 0;
  for (uint32_t i = 0; i < n; i++) {
    if (!probe(a, keys, i)) miss[m++] = a->h[i];
  }
  int rc = lookup_missing(a, miss, m, err);
  free(miss);
  return rc;
}

/* Load the stored groups of the hashes miss[0..m) (sorted and made
 * distinct here, in place), with one lookup. */
static int lookup_missing(tide_agg_t *a, uint64_t *miss, uint32_t m, tide_err_t *err) {
  if (!m) return 0;
  qsort(miss, m, sizeof *miss, cmp_u64);
  uint32_t u = 1;
  for (uint32_t i = 1; i < m; i++)
    if (miss[i] != miss[u - 1]) miss[u++] = miss[i];
  return a->store->lookup(a->store->ctx, miss, u, load_rec, a, err);
}
