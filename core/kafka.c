/*
 * kafka.c: librdkafka configuration, errors, metadata and offsets, and the
 * Kafka source's reader of exact offset ranges (kafka.h).
 *
 * The reader. One consumer without a group subscription: partitions are
 * assigned with an explicit start offset, so the offsets tide logged are
 * the only truth (Spark's source does the same). Per partition it keeps
 *   cover   the offset of its last assign: every message from there on
 *           arrives, in order, exactly once (librdkafka drops what it
 *           fetched before the assign)
 *   next    everything before it was delivered (the last message's offset
 *           + 1, or the fetch position of a partition-EOF event, which
 *           also steps over transaction markers and aborted messages)
 *   held    messages delivered past the stop of the batch that was being
 *           read: the next batch starts with them
 * so that consecutive batches go on fetching without a new assign, and a
 * batch that starts anywhere else (a replay after a restart, a first
 * batch) assigns again at its start. A range [start, stop) is complete when
 * next >= stop. Offsets inside it that no message has (compaction,
 * transaction markers, aborted transactions under read_committed) are
 * stepped over, which is why completeness comes from `next` and not from a
 * count of messages.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "kafka.h"
#include "pool.h"

/* ---- configuration ------------------------------------------------------- */

int tide_kafka_check_bootstrap(const char *bootstrap, tide_err_t *err) {
  if (!bootstrap || !*bootstrap)
    return tide_err_set(err, TIDE_EINVAL, "bootstrap is empty (expected host:port[,host:port])");
  const char *p = bootstrap;
  while (1) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    const char *colon = NULL;
    for (size_t i = 0; i < n; i++)
      if (p[i] == ':') colon = p + i;
    int ok = colon && colon > p && (size_t)(colon - p) < n - 1;
    long port = 0;
    for (const char *q = colon ? colon + 1 : p; ok && q < p + n; q++) {
      if (!isdigit((unsigned char)*q) || port > 65535) ok = 0;
      else port = port * 10 + (*q - '0');
    }
    for (const char *q = p; ok && q < colon; q++)
      if (isspace((unsigned char)*q)) ok = 0;
    if (!ok || port < 1 || port > 65535)
      return tide_err_set(err, TIDE_EINVAL, "bootstrap entry '%.*s' is not host:port (port 1..65535)", (int)n, p);
    if (!e) break;
    p = e + 1;
  }
  return 0;
}

void tide_kafka_log_init(tide_kafka_log_t *log) {
  pthread_mutex_init(&log->mu, NULL);
  log->last[0] = 0;
}

void tide_kafka_log_free(tide_kafka_log_t *log) { pthread_mutex_destroy(&log->mu); }

void tide_kafka_last_log(tide_kafka_log_t *log, char *buf, size_t n) {
  pthread_mutex_lock(&log->mu);
  snprintf(buf, n, "%s", log->last);
  pthread_mutex_unlock(&log->mu);
}

/* librdkafka's log callback (any thread): keep warnings and errors. */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
  tide_kafka_log_t *log = rd_kafka_opaque(rk);
  if (!log || level > 4) return; /* syslog levels: 4 is warning */
  pthread_mutex_lock(&log->mu);
  snprintf(log->last, sizeof log->last, "%s", buf);
  pthread_mutex_unlock(&log->mu);
}

int tide_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, tide_err_t *err) {
  char why[256];
  if (rd_kafka_conf_set(conf, key, value, why, sizeof why) != RD_KAFKA_CONF_OK)
    return tide_err_set(err, TIDE_EINVAL, "kafka option '%s': %s", key, why);
  return 0;
}

int tide_kafka_conf(const char *bootstrap, const char *const *keys, const char *const *values, size_t n,
                    tide_kafka_log_t *log, rd_kafka_conf_t **out, tide_err_t *err) {
  int rc = tide_kafka_check_bootstrap(bootstrap, err);
  if (rc) return rc;
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (!conf) return -ENOMEM;
  if ((rc = tide_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err))) goto fail;
  /* TCP_NODELAY, as Kafka's Java clients: with Nagle, a request written
   * while an earlier one is unacknowledged waits for the peer's delayed
   * ACK (40 ms on Linux): a transaction's commit waited so for its last
   * produce requests (bench/RESULTS.md, scale-out, 2026-12-07) */
  if ((rc = tide_kafka_conf_set(conf, "socket.nagle.disable", "true", err))) goto fail;
  for (size_t i = 0; i < n; i++)
    if ((rc = tide_kafka_conf_set(conf, keys[i], values[i], err))) goto fail;
  if (log) {
    rd_kafka_conf_set_opaque(conf, log);
    rd_kafka_conf_set_log_cb(conf, log_cb);
  }
  *out = conf;
  return 0;
fail:
  rd_kafka_conf_destroy(conf);
  return rc;
}

int tide_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, rd_kafka_t **out, tide_err_t *err) {
  char why[512];
  rd_kafka_t *rk = rd_kafka_new(type, conf, why, sizeof why);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    return tide_err_set(err, TIDE_EINVAL, "cannot create the Kafka client: %s", why);
  }
  *out = rk;
  return 0;
}

const char *tide_kafka_errtext(rd_kafka_resp_err_t e, char *buf, size_t n) {
  snprintf(buf, n, "%s (%s)", rd_kafka_err2str(e), rd_kafka_err2name(e));
  return buf;
}

/* ---- metadata ------------------------------------------------------------ */

static int by_name(const void *a, const void *b) {
  return strcmp(((const tide_kafka_topic_info_t *)a)->name, ((const tide_kafka_topic_info_t *)b)->name);
}

int tide_kafka_metadata(rd_kafka_t *rk, const char *topic, int timeout_ms, tide_kafka_meta_t *out, tide_err_t *err) {
  memset(out, 0, sizeof *out);
  const struct rd_kafka_metadata *md = NULL;
  rd_kafka_topic_t *rkt = topic ? rd_kafka_topic_new(rk, topic, NULL) : NULL;
  if (topic && !rkt) return tide_err_set(err, TIDE_EINVAL, "metadata: bad topic name '%s'", topic);
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, topic ? 0 : 1, rkt, &md, timeout_ms);
  if (rkt) rd_kafka_topic_destroy(rkt);
  char t[256];
  if (e) return tide_err_set(err, -EIO, "metadata: %s", tide_kafka_errtext(e, t, sizeof t));
  out->topics = calloc(md->topic_cnt ? (size_t)md->topic_cnt : 1, sizeof *out->topics);
  if (!out->topics) goto nomem;
  for (int i = 0; i < md->topic_cnt; i++) {
    const struct rd_kafka_metadata_topic *mt = &md->topics[i];
    if (!topic && mt->topic[0] == '_' && mt->topic[1] == '_') continue;
    tide_kafka_topic_info_t *ti = &out->topics[out->n];
    if (!(ti->name = strdup(mt->topic))) goto nomem;
    out->n++;
    ti->err = mt->err;
    ti->partitions = mt->err ? 0 : mt->partition_cnt;
  }
  rd_kafka_metadata_destroy(md);
  qsort(out->topics, out->n, sizeof *out->topics, by_name);
  return 0;
nomem:
  rd_kafka_metadata_destroy(md);
  tide_kafka_meta_free(out);
  return -ENOMEM;
}

void tide_kafka_meta_free(tide_kafka_meta_t *m) {
  for (size_t i = 0; i < m->n; i++) free(m->topics[i].name);
  free(m->topics);
  memset(m, 0, sizeof *m);
}

/* ---- offsets ------------------------------------------------------------- */

/* Errors a later try may not have: leadership moving, a broker restarting,
 * a request timing out. */
static int retriable(rd_kafka_resp_err_t e) {
  switch (e) {
  case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
  case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
  case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
  case RD_KAFKA_RESP_ERR_FENCED_LEADER_EPOCH:
  case RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH:
  case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
  case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
  case RD_KAFKA_RESP_ERR__TIMED_OUT:
  case RD_KAFKA_RESP_ERR__TRANSPORT:
  case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN: return 1;
  default: return 0;
  }
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tide_kafka_list_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list, int timeout_ms,
                            tide_err_t *err) {
  if (list->cnt == 0) return 0;
  int64_t *query = malloc((size_t)list->cnt * sizeof *query);
  if (!query) return -ENOMEM;
  for (int i = 0; i < list->cnt; i++) query[i] = list->elems[i].offset;
  int64_t deadline = mono_ms() + timeout_ms;
  rd_kafka_resp_err_t e;
  while (1) {
    int64_t left = deadline - mono_ms();
    e = rd_kafka_offsets_for_times(rk, list, left > 100 ? (int)left : 100);
    int again = retriable(e);
    for (int i = 0; !e && i < list->cnt; i++)
      if (retriable(list->elems[i].err)) again = 1;
    if (!again || mono_ms() + 100 >= deadline) break;
    /* retriable: wait a moment and ask again, for the whole list */
    struct timespec pause = {0, 100 * 1000000};
    nanosleep(&pause, NULL);
    for (int i = 0; i < list->cnt; i++) {
      list->elems[i].offset = query[i];
      list->elems[i].err = 0;
    }
  }
  free(query);
  char t[256];
  if (e) return tide_err_set(err, -EIO, "offsets: %s", tide_kafka_errtext(e, t, sizeof t));
  return 0;
}

/* ---- the reader ---------------------------------------------------------- */

typedef struct part {
  char *topic;
  int32_t partition;
  int assigned;
  int leader_known; /* the fetching client has asked for its topic's metadata */
  int64_t cover, next;
  /* a message of it was consumed since its last assign: the client's
   * position (rd_kafka_position) is then this assignment's own */
  int fresh;
  rd_kafka_message_t **held; /* held[head..n) */
  size_t head, n, cap;
  /* during a read: */
  tide_kafka_range_t *range;
  int64_t pos; /* the next offset the batch wants */
} part_t;

/* A read ahead (tide_kafka_read_ahead): its ranges (topics owned), its
 * thread, and what the read returned. Only one read runs at a time: every
 * entry point that reads or moves the partitions first joins it. */
typedef struct ahead {
  int state; /* 0 none, 1 its thread runs, 2 joined */
  int threads;
  int cancel; /* atomic: the read stops at its next look (ECANCELED) */
  pthread_t thread;
  tide_kafka_range_t *ranges;
  size_t n;
  int rc;
  tide_err_t err;
  tide_batch_t **out;
  size_t nout;
  uint64_t dropped;
  tide_kafka_bad_t *bad;
  size_t nbad;
} ahead_t;

struct tide_kafka_reader {
  rd_kafka_t *rk;  /* fetches */
  rd_kafka_t *ask; /* metadata, offsets, commits: never behind a fetch the broker holds back */
  rd_kafka_queue_t *q;
  tide_kafka_log_t *log;
  tide_kafka_reader_opts_t o;
  tide_schema_t *schema;      /* the rows' */
  tide_schema_t *raw, *meta;  /* the message columns (RAW or kafka_ ones) */
  tide_decoder_t *dec;        /* DECODED */
  part_t *parts;
  size_t nparts, capparts;
  tide_buf_t scratch, headers;
  struct tide_pool *pool;     /* decodes chunks of messages (NULL: on the caller) */
  tide_decoder_t **decs;      /* per chunk of a pool run: its decoder and scratch */
  tide_buf_t *scratches;
  size_t ndecs;
  ahead_t ahead;              /* the next batch's read, on a thread of its own */
  uint64_t ahead_used, ahead_dropped;
};

#define BATCH_ROWS 65536u
#define BATCH_BYTES (64u << 20)

static void held_clear(part_t *p) {
  for (size_t i = p->head; i < p->n; i++) rd_kafka_message_destroy(p->held[i]);
  p->head = p->n = 0;
}

static int held_push(part_t *p, rd_kafka_message_t *m) {
  if (p->head > 0 && p->n == p->cap) {
    memmove(p->held, p->held + p->head, (p->n - p->head) * sizeof *p->held);
    p->n -= p->head;
    p->head = 0;
  }
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    rd_kafka_message_t **h = realloc(p->held, cap * sizeof *h);
    if (!h) return -ENOMEM;
    p->held = h;
    p->cap = cap;
  }
  p->held[p->n++] = m;
  return 0;
}

static part_t *find_part(tide_kafka_reader_t *r, const char *topic, int32_t partition, int create) {
  for (size_t i = 0; i < r->nparts; i++)
    if (r->parts[i].partition == partition && strcmp(r->parts[i].topic, topic) == 0) return &r->parts[i];
  if (!create) return NULL;
  if (r->nparts == r->capparts) {
    size_t cap = r->capparts ? r->capparts * 2 : 16;
    part_t *np = realloc(r->parts, cap * sizeof *np);
    if (!np) return NULL;
    r->parts = np;
    r->capparts = cap;
  }
  part_t *p = &r->parts[r->nparts];
  memset(p, 0, sizeof *p);
  if (!(p->topic = strdup(topic))) return NULL;
  p->partition = partition;
  r->nparts++;
  return p;
}

static int schema_of(const char *ddl, tide_schema_t **out, tide_err_t *err) {
  return tide_schema_parse_ddl(ddl, strlen(ddl), out, err);
}

/* A decoder of the values (a Kafka value is one record: a CSV value is one
 * line, multi_line 0). */
static int open_decoder(tide_kafka_reader_t *r, tide_decoder_t **out, tide_err_t *err) {
  tide_decode_opts_t d = {.format = r->o.format, .bad = TIDE_BAD_FAIL, .sep = r->o.sep ? r->o.sep : ',',
                          .json_flags = r->o.json_flags};
  return tide_decoder_open(r->o.schema, &d, out, err);
}

int tide_kafka_reader_open(rd_kafka_t *rk, rd_kafka_t *ask, tide_kafka_log_t *log, const tide_kafka_reader_opts_t *o,
                           tide_kafka_reader_t **out, tide_err_t *err) {
  tide_kafka_reader_t *r = calloc(1, sizeof *r);
  if (!r) {
    rd_kafka_destroy(rk);
    rd_kafka_destroy(ask);
    if (log) {
      tide_kafka_log_free(log);
      free(log);
    }
    return -ENOMEM;
  }
  r->rk = rk;
  r->ask = ask;
  r->log = log;
  r->o = *o;
  r->o.schema = o->schema ? tide_schema_ref(o->schema) : NULL; /* the value's: the reader holds a reference */
  int rc;
  if (!(r->q = rd_kafka_queue_get_consumer(rk))) {
    rc = tide_err_set(err, TIDE_EINVAL, "the Kafka client is not a consumer");
    goto fail;
  }
  if ((rc = schema_of(TIDE_KAFKA_RAW_DDL, &r->raw, err))) goto fail;
  if (!o->schema) {
    r->schema = tide_schema_ref(r->raw);
  } else {
    /* a Kafka value is one record: a CSV value is one line (multi_line 0) */
    if ((rc = open_decoder(r, &r->dec, err))) goto fail;
    if (o->metadata) {
      if ((rc = schema_of(TIDE_KAFKA_META_DDL, &r->meta, err))) goto fail;
      if (!(r->schema = tide_schema_new())) {
        rc = -ENOMEM;
        goto fail;
      }
      for (int k = 0; k < 2; k++) {
        const tide_schema_t *s = k ? r->meta : o->schema;
        for (uint32_t i = 0; i < s->nfields; i++) {
          const tide_field_t *f = &s->fields[i];
          if ((rc = tide_schema_add(r->schema, f->name, f->name_len, f->type, f->nullable, f->default_json, err))) {
            if (rc == TIDE_EEXIST || rc == TIDE_EINVAL)
              tide_err_set(err, TIDE_EINVAL, "the schema has a column '%s', which include_metadata adds", f->name);
            goto fail;
          }
        }
      }
    } else {
      r->schema = tide_schema_ref(o->schema);
    }
  }
  *out = r;
  return 0;
fail:
  tide_kafka_reader_close(r);
  return rc;
}

static void ahead_drop(tide_kafka_reader_t *r);
static int same_ranges(const ahead_t *a, const tide_kafka_range_t *ranges, size_t n);

void tide_kafka_reader_close(tide_kafka_reader_t *r) {
  if (!r) return;
  ahead_drop(r); /* its thread uses the clients and the partitions */
  for (size_t i = 0; i < r->nparts; i++) {
    held_clear(&r->parts[i]);
    free(r->parts[i].held);
    free(r->parts[i].topic);
  }
  free(r->parts);
  if (r->q) rd_kafka_queue_destroy(r->q);
  if (r->rk) {
    rd_kafka_consumer_close(r->rk);
    rd_kafka_destroy(r->rk);
  }
  if (r->ask) {
    rd_kafka_consumer_close(r->ask);
    rd_kafka_destroy(r->ask);
  }
  if (r->log) {
    tide_kafka_log_free(r->log);
    free(r->log);
  }
  tide_decoder_close(r->dec);
  for (size_t i = 0; i < r->ndecs; i++) {
    tide_decoder_close(r->decs[i]);
    tide_buf_free(&r->scratches[i]);
  }
  free(r->decs);
  free(r->scratches);
  tide_schema_unref(r->schema);
  tide_schema_unref(r->o.schema);
  tide_schema_unref(r->raw);
  tide_schema_unref(r->meta);
  tide_buf_free(&r->scratch);
  tide_buf_free(&r->headers);
  free(r);
}

void tide_kafka_reader_set_pool(tide_kafka_reader_t *r, struct tide_pool *pool) { r->pool = pool; }
rd_kafka_t *tide_kafka_reader_client(tide_kafka_reader_t *r) { return r->ask; }
tide_kafka_log_t *tide_kafka_reader_log(tide_kafka_reader_t *r) { return r->log; }
tide_schema_t *tide_kafka_reader_schema(tide_kafka_reader_t *r) { return r->schema; }

void tide_kafka_bad_free(tide_kafka_bad_t *bad, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(bad[i].topic);
    free(bad[i].reason);
    free(bad[i].text);
  }
  free(bad);
}

/* The state of one tide_kafka_read. */
typedef struct read_state {
  tide_kafka_reader_t *r;
  tide_batch_t **out;
  size_t nout, capout;
  tide_batch_t *b, *m; /* the batch being filled; DECODED with metadata: its message columns */
  uint64_t *dropped;
  tide_kafka_bad_t *bad;
  size_t nbad, capbad;
  tide_err_t *err;
  tide_decoder_t *dec; /* DECODED: the decoder and scratch this state uses */
  tide_buf_t *scratch;
  struct tide_pool *pool; /* decodes the taken messages (NULL: this thread) */
  int chunk;           /* a chunk of a pool run: one batch made before, never flushed */
  /* the messages taken and not yet decoded (pool decoding) */
  rd_kafka_message_t **todo;
  size_t ntodo, captodo, todo_bytes;
} read_state_t;

/* The headers of m as a JSON array of {"key":..,"value":..} (value null
 * for a header without one) into r->headers; *none when m has none.
 * TIDE_ESCHEMA when a header is not UTF-8. */
static int headers_json(tide_kafka_reader_t *r, const rd_kafka_message_t *m, int *none, const char **why) {
  rd_kafka_headers_t *hs = NULL;
  *none = 1;
  if (rd_kafka_message_headers(m, &hs) != RD_KAFKA_RESP_ERR_NO_ERROR || !hs) return 0;
  tide_buf_t *b = &r->headers;
  b->len = 0;
  const char *name;
  const void *val;
  size_t vlen;
  int rc;
  if ((rc = tide_buf_putc(b, '['))) return rc;
  for (size_t i = 0; rd_kafka_header_get_all(hs, i, &name, &val, &vlen) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
    size_t nlen = strlen(name);
    if (tide_utf8_check(name, nlen) != nlen || (val && tide_utf8_check(val, vlen) != vlen)) {
      *why = "a header is not valid UTF-8";
      return TIDE_ESCHEMA;
    }
    if ((rc = tide_buf_puts(b, i ? ",{\"key\":" : "{\"key\":")) || (rc = tide_json_quote(b, name, nlen)) ||
        (rc = tide_buf_puts(b, ",\"value\":")))
      return rc;
    if ((rc = val ? tide_json_quote(b, val, vlen) : tide_buf_puts(b, "null")) || (rc = tide_buf_putc(b, '}')))
      return rc;
  }
  if ((rc = tide_buf_putc(b, ']'))) return rc;
  *none = 0;
  return 0;
}

/* Add m's message columns to batch b from column `first` on, in RAW order
 * without the value when skip_value. The row must be open. TIDE_ESCHEMA
 * with *why for a key or header that is not UTF-8. */
static int set_message_cols(tide_kafka_reader_t *r, tide_batch_t *b, uint32_t c, const rd_kafka_message_t *m,
                            int with_value, const char **why) {
  int rc;
  if (m->key) {
    if (tide_utf8_check(m->key, m->key_len) != m->key_len) {
      *why = "the key is not valid UTF-8 (tide strings are UTF-8)";
      return TIDE_ESCHEMA;
    }
    if ((rc = tide_batch_set_str(b, c, m->key, m->key_len))) return rc;
  }
  c++;
  if (with_value) {
    if (m->payload) {
      if (tide_utf8_check(m->payload, m->len) != m->len) {
        *why = "the value is not valid UTF-8 (tide strings are UTF-8)";
        return TIDE_ESCHEMA;
      }
      if ((rc = tide_batch_set_str(b, c, m->payload, m->len))) return rc;
    }
    c++;
  }
  const char *t = rd_kafka_topic_name(m->rkt);
  if ((rc = tide_batch_set_str(b, c++, t, strlen(t)))) return rc;
  tide_batch_set_i64(b, c++, m->partition);
  tide_batch_set_i64(b, c++, m->offset);
  rd_kafka_timestamp_type_t tt;
  int64_t ts = rd_kafka_message_timestamp(m, &tt);
  if (tt != RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && tide_ts_valid(ts)) tide_batch_set_i64(b, c, ts);
  c++;
  /* Spark's timestampType: 0 create time, 1 log append time (-1: none) */
  tide_batch_set_i64(b, c++, tt == RD_KAFKA_TIMESTAMP_CREATE_TIME ? 0 : tt == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? 1 : -1);
  int none;
  if ((rc = headers_json(r, m, &none, why))) return rc;
  if (!none && (rc = tide_batch_set_str(b, c, r->headers.data, r->headers.len))) return rc;
  return 0;
}

/* Copy the columns of a (decoded) and m (message columns) side by side
 * into a new batch of the reader's schema. */
static int hstack(tide_kafka_reader_t *r, tide_batch_t *a, tide_batch_t *m, tide_batch_t **out) {
  tide_batch_t *o = tide_batch_new(r->schema, a->nrows ? a->nrows : 1);
  if (!o) return -ENOMEM;
  uint32_t na = a->schema->nfields;
  int rc = 0;
  for (uint32_t i = 0; i < a->nrows && !rc; i++) {
    if ((rc = tide_batch_row_begin(o))) break;
    for (uint32_t c = 0; c < o->schema->nfields && !rc; c++) {
      const tide_col_t *col = c < na ? &a->cols[c] : &m->cols[c - na];
      if (tide_col_is_null(col, i)) continue;
      switch (col->type) {
      case TIDE_T_BOOL: tide_batch_set_bool(o, c, tide_col_bool(col, i)); break;
      case TIDE_T_DOUBLE: tide_batch_set_f64(o, c, tide_col_f64(col, i)); break;
      case TIDE_T_INT:
      case TIDE_T_TIMESTAMP: tide_batch_set_i64(o, c, tide_col_i64(col, i)); break;
      case TIDE_T_STRING:
      case TIDE_T_JSON: {
        size_t len;
        const char *s = tide_col_str(col, i, &len);
        rc = tide_batch_set_str(o, c, s, len);
        break;
      }
      }
    }
    if (rc) tide_batch_row_abort(o);
    else tide_batch_row_commit(o);
  }
  if (rc) {
    tide_batch_free(o);
    return rc;
  }
  *out = o;
  return 0;
}

static int flush_batch(read_state_t *st) {
  tide_batch_t *b = st->b;
  if (!b) return 0;
  int rc = 0;
  if (b->nrows == 0) {
    tide_batch_free(b);
    tide_batch_free(st->m);
    st->b = st->m = NULL;
    return 0;
  }
  if (st->m) {
    tide_batch_t *o;
    rc = hstack(st->r, b, st->m, &o);
    tide_batch_free(b);
    tide_batch_free(st->m);
    st->b = st->m = NULL;
    if (rc) return rc;
    b = o;
  }
  st->b = NULL;
  if (st->nout == st->capout) {
    size_t cap = st->capout ? st->capout * 2 : 8;
    tide_batch_t **nb = realloc(st->out, cap * sizeof *nb);
    if (!nb) {
      tide_batch_free(b);
      return -ENOMEM;
    }
    st->out = nb;
    st->capout = cap;
  }
  st->out[st->nout++] = b;
  return 0;
}

/* A bad message: fail (TIDE_EPARSE with err naming it), count it, or set it
 * aside, following the policy. */
static int bad_record(read_state_t *st, const rd_kafka_message_t *m, int code, const char *why) {
  tide_kafka_reader_t *r = st->r;
  const char *topic = rd_kafka_topic_name(m->rkt);
  if (r->o.bad == TIDE_BAD_FAIL)
    return tide_err_set(st->err, code, "topic '%s' partition %d offset %lld: %s", topic, (int)m->partition,
                        (long long)m->offset, why);
  if (r->o.bad == TIDE_BAD_DROP) {
    (*st->dropped)++;
    return 0;
  }
  if (st->nbad == st->capbad) {
    size_t cap = st->capbad ? st->capbad * 2 : 16;
    tide_kafka_bad_t *nb = realloc(st->bad, cap * sizeof *nb);
    if (!nb) return -ENOMEM;
    st->bad = nb;
    st->capbad = cap;
  }
  tide_kafka_bad_t *x = &st->bad[st->nbad];
  memset(x, 0, sizeof *x);
  x->partition = m->partition;
  x->offset = m->offset;
  x->topic = strdup(topic);
  x->reason = strdup(why);
  size_t n = m->payload ? m->len : 0;
  x->text = malloc(n + 1);
  if (!x->topic || !x->reason || !x->text) {
    free(x->topic);
    free(x->reason);
    free(x->text);
    return -ENOMEM;
  }
  /* the exact bytes: the source makes the dead letter's readable text and
   * raw_base64 of them (core.dead_letter_text) */
  if (n) memcpy(x->text, m->payload, n);
  x->text[n] = 0;
  x->len = n;
  st->nbad++;
  return 0;
}

/* Turn message m into a row (or a bad record). */
static int add_message(read_state_t *st, const rd_kafka_message_t *m) {
  tide_kafka_reader_t *r = st->r;
  int rc;
  if (!st->chunk && st->b && (st->b->nrows >= BATCH_ROWS || tide_batch_bytes(st->b) >= BATCH_BYTES) &&
      (rc = flush_batch(st)))
    return rc;
  if (!st->b) {
    if (r->dec) {
      if (!(st->b = tide_batch_new(r->o.schema, 0))) return -ENOMEM;
      if (r->meta && !(st->m = tide_batch_new(r->meta, 0))) return -ENOMEM;
    } else if (!(st->b = tide_batch_new(r->schema, 0))) {
      return -ENOMEM;
    }
  }
  const char *why = NULL;
  if (!r->dec) {
    if ((rc = tide_batch_row_begin(st->b))) return rc;
    rc = set_message_cols(r, st->b, 0, m, 1, &why);
    if (rc) {
      tide_batch_row_abort(st->b);
      return rc == TIDE_ESCHEMA ? bad_record(st, m, rc, why) : rc;
    }
    tide_batch_row_commit(st->b);
    return 0;
  }
  /* decoded: the value is one record */
  if (!m->payload) return bad_record(st, m, TIDE_ESCHEMA, "the message has no value (a tombstone)");
  const char *text = m->payload;
  size_t len = m->len;
  if (r->o.format == TIDE_FMT_JSON && (memchr(text, '\n', len) || memchr(text, '\r', len))) {
    /* a line break between JSON tokens is white space; one inside a string
     * is invalid JSON either way (a raw control character) */
    tide_buf_t *sc = st->scratch;
    sc->len = 0;
    if ((rc = tide_buf_append(sc, text, len))) return rc;
    int inside = 0;
    for (size_t i = 0; i < len; i++) {
      char c = sc->data[i];
      if (inside && c == '\\') i++; /* an escape: the next byte is not a quote */
      else if (c == '"') inside = !inside;
      else if ((c == '\n' || c == '\r') && !inside) sc->data[i] = ' ';
    }
    text = sc->data;
  }
  uint32_t before = st->b->nrows;
  tide_decode_result_t res;
  tide_err_t e = {0, ""};
  rc = tide_decode(st->dec, st->b, text, len, 1, 1, &res, &e);
  if (rc == TIDE_EPARSE || rc == TIDE_ESCHEMA) {
    const char *msg = e.msg;
    if (strncmp(msg, "line ", 5) == 0 && strstr(msg, ": ")) msg = strstr(msg, ": ") + 2;
    tide_batch_truncate(st->b, before);
    return bad_record(st, m, rc, msg);
  }
  if (rc) return tide_err_set(st->err, rc, "topic '%s' partition %d offset %lld: %s", rd_kafka_topic_name(m->rkt),
                              (int)m->partition, (long long)m->offset, e.msg[0] ? e.msg : tide_strerror(rc));
  uint32_t added = st->b->nrows - before;
  if (added != 1) {
    tide_batch_truncate(st->b, before);
    if (added == 0) return bad_record(st, m, TIDE_EPARSE, "the value is empty");
    char w[96];
    snprintf(w, sizeof w, "the value holds %u records (a message must hold one)", added);
    return bad_record(st, m, TIDE_EPARSE, w);
  }
  if (st->m) {
    if ((rc = tide_batch_row_begin(st->m))) {
      tide_batch_truncate(st->b, before);
      return rc;
    }
    rc = set_message_cols(r, st->m, 0, m, 0, &why);
    if (rc) {
      tide_batch_row_abort(st->m);
      tide_batch_truncate(st->b, before);
      return rc == TIDE_ESCHEMA ? bad_record(st, m, rc, why) : rc;
    }
    tide_batch_row_commit(st->m);
  }
  return 0;
}

/* ---- decoding on the pool ----
 *
 * DECODED rows without metadata columns are decoded on the query's worker
 * pool: the read takes the messages of its ranges in order (todo), and
 * every CHUNK_ROWS messages per thread (or CHUNK_BYTES of values) cuts them
 * into chunks, one batch each, decoded by the pool's threads while
 * librdkafka goes on fetching; the chunks' batches, bad records and counts
 * are then put together in the messages' order, so the rows, the dead
 * letters and a failure (the first bad record under "fail") are those of
 * one-by-one decoding. Decoders and batches are made and freed on the
 * calling thread (schema references are not atomic); a task only fills its
 * own chunk. The profile this answers: decoding was most of the loop
 * thread's time in a Kafka query (bench/RESULTS.md, Kafka). */
#define CHUNK_ROWS 32768u
#define CHUNK_BYTES (32u << 20)

typedef struct chunk {
  read_state_t st;
  rd_kafka_message_t **msgs;
  size_t n;
  uint64_t dropped;
  tide_err_t err;
  int rc;
} chunk_t;

static void chunk_task(void *arg, size_t i) {
  chunk_t *c = &((chunk_t *)arg)[i];
  for (size_t k = 0; k < c->n && !c->rc; k++) c->rc = add_message(&c->st, c->msgs[k]);
}

/* At least n decoders with their scratch buffers in r->decs. */
static int ensure_decoders(tide_kafka_reader_t *r, size_t n, tide_err_t *err) {
  if (n <= r->ndecs) return 0;
  tide_decoder_t **d = realloc(r->decs, n * sizeof *d);
  if (!d) return -ENOMEM;
  r->decs = d;
  tide_buf_t *b = realloc(r->scratches, n * sizeof *b);
  if (!b) return -ENOMEM;
  r->scratches = b;
  for (int rc; r->ndecs < n; r->ndecs++) {
    if ((rc = open_decoder(r, &r->decs[r->ndecs], err))) return rc;
    r->scratches[r->ndecs] = (tide_buf_t)TIDE_BUF_INIT;
  }
  return 0;
}

/* Append chunk x's bad records to st's (x keeps none). */
static int move_bad(read_state_t *st, read_state_t *x) {
  if (!x->nbad) return 0;
  if (st->nbad + x->nbad > st->capbad) {
    size_t cap = st->capbad ? st->capbad : 16;
    while (cap < st->nbad + x->nbad) cap *= 2;
    tide_kafka_bad_t *nb = realloc(st->bad, cap * sizeof *nb);
    if (!nb) return -ENOMEM;
    st->bad = nb;
    st->capbad = cap;
  }
  memcpy(st->bad + st->nbad, x->bad, x->nbad * sizeof *x->bad);
  st->nbad += x->nbad;
  free(x->bad);
  x->bad = NULL;
  x->nbad = x->capbad = 0;
  return 0;
}

/* Decode the messages taken so far on the pool and destroy them. */
static int decode_todo(read_state_t *st) {
  tide_kafka_reader_t *r = st->r;
  size_t total = st->ntodo;
  if (!total) return 0;
  size_t threads = st->pool ? (size_t)tide_pool_threads(st->pool) : 1;
  size_t per = (total + threads - 1) / threads;
  if (per > CHUNK_ROWS) per = CHUNK_ROWS;
  /* chunks of `per` messages, cut short at CHUNK_BYTES of values */
  size_t k = 0;
  for (size_t i = 0; i < total; k++)
    for (size_t n = 0, bytes = 0; i < total && n < per && (n == 0 || bytes < CHUNK_BYTES); n++, i++)
      bytes += st->todo[i]->len;
  chunk_t *c = calloc(k, sizeof *c);
  int rc = c ? ensure_decoders(r, k, st->err) : -ENOMEM;
  for (size_t j = 0, at = 0; !rc && j < k; j++) {
    chunk_t *x = &c[j];
    x->msgs = st->todo + at;
    for (size_t bytes = 0; at < total && x->n < per && (x->n == 0 || bytes < CHUNK_BYTES); x->n++, at++)
      bytes += st->todo[at]->len;
    x->st.r = r;
    x->st.dropped = &x->dropped;
    x->st.err = &x->err;
    x->st.dec = r->decs[j];
    x->st.scratch = &r->scratches[j];
    x->st.chunk = 1;
    if (!(x->st.b = tide_batch_new(r->o.schema, (uint32_t)x->n))) rc = -ENOMEM;
  }
  if (!rc) tide_pool_run(st->pool, k, chunk_task, c);
  for (size_t j = 0; c && j < k; j++) {
    chunk_t *x = &c[j];
    if (!rc && x->rc) {
      rc = x->rc;
      *st->err = x->err;
    }
    if (!rc) {
      *st->dropped += x->dropped;
      rc = move_bad(st, &x->st);
    }
    if (!rc) { /* the chunk's batch goes out as the one being filled would */
      st->b = x->st.b;
      x->st.b = NULL;
      rc = flush_batch(st);
    }
    tide_batch_free(x->st.b);
    tide_kafka_bad_free(x->st.bad, x->st.nbad);
  }
  free(c);
  for (size_t i = 0; i < total; i++) rd_kafka_message_destroy(st->todo[i]);
  st->ntodo = st->todo_bytes = 0;
  return rc;
}

/* Take message m (owned from here) into the read's rows: decoded now, or
 * kept for the pool. */
static int take(read_state_t *st, rd_kafka_message_t *m) {
  tide_kafka_reader_t *r = st->r;
  if (!r->dec || r->meta) {
    int rc = add_message(st, m);
    rd_kafka_message_destroy(m);
    return rc;
  }
  if (st->ntodo == st->captodo) {
    size_t cap = st->captodo ? st->captodo * 2 : 1024;
    rd_kafka_message_t **t = realloc(st->todo, cap * sizeof *t);
    if (!t) {
      rd_kafka_message_destroy(m);
      return -ENOMEM;
    }
    st->todo = t;
    st->captodo = cap;
  }
  st->todo[st->ntodo++] = m;
  st->todo_bytes += m->len;
  size_t threads = st->pool ? (size_t)tide_pool_threads(st->pool) : 1;
  if (st->ntodo >= threads * CHUNK_ROWS || st->todo_bytes >= threads * (size_t)CHUNK_BYTES) return decode_todo(st);
  return 0;
}

/* Assign every partition the read needs (at its start when it cannot go on
 * from where it is) and keep the others that are assigned where they are. */
static int reassign(tide_kafka_reader_t *r, tide_err_t *err) {
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)r->nparts);
  if (!l) return -ENOMEM;
  /* A partition of a topic the fetching client has no metadata for yet
   * starts fetching only when librdkafka's topic scan (once a second) asks
   * for its leader, unless the client's connection came up after the
   * assign: so ask for it first, once per topic (a second of the first
   * batch, measured; bench/RESULTS.md, Kafka). The handles live until the
   * assign has the partitions. */
  rd_kafka_topic_t *known[16];
  size_t nknown = 0;
  for (size_t i = 0; i < r->nparts; i++) r->parts[i].fresh = 0;
  for (size_t i = 0; i < r->nparts; i++) {
    part_t *p = &r->parts[i];
    if (!p->assigned || p->leader_known || nknown == sizeof known / sizeof *known) continue;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(r->rk, p->topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    /* a failure here is no error: librdkafka then finds the leader itself */
    if (rkt && !rd_kafka_metadata(r->rk, 0, rkt, &md, r->o.timeout_ms < 5000 ? r->o.timeout_ms : 5000))
      rd_kafka_metadata_destroy(md);
    if (rkt) known[nknown++] = rkt;
    for (size_t j = i; j < r->nparts; j++)
      if (!strcmp(r->parts[j].topic, p->topic)) r->parts[j].leader_known = 1;
  }
  for (size_t i = 0; i < r->nparts; i++) {
    part_t *p = &r->parts[i];
    if (!p->assigned) continue;
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset = p->next;
  }
  rd_kafka_resp_err_t e = rd_kafka_assign(r->rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  for (size_t i = 0; i < nknown; i++) rd_kafka_topic_destroy(known[i]);
  char t[256];
  if (e) return tide_err_set(err, -EIO, "assign: %s", tide_kafka_errtext(e, t, sizeof t));
  return 0;
}

/* The first offset the broker still holds for p (-1 when it cannot say). */
static int64_t log_start(tide_kafka_reader_t *r, part_t *p) {
  int64_t lo = -1, hi = -1;
  if (rd_kafka_query_watermark_offsets(r->ask, p->topic, p->partition, &lo, &hi, 5000)) return -1;
  return lo;
}

/* A partition's range lost [from, to): fail, or skip it. Returns 0 when
 * skipped (and p is moved on), else the error. */
static int lost(tide_kafka_reader_t *r, part_t *p, int64_t first, const char *why, tide_err_t *err, int *moved) {
  tide_kafka_range_t *g = p->range;
  int64_t to = first < 0 || first > g->stop ? g->stop : first;
  if (!r->o.skip_lost) {
    if (first >= 0)
      return tide_err_set(err, TIDE_ENOTFOUND,
                          "topic '%s' partition %d: offsets %lld..%lld are no longer held (%s); the first offset "
                          "still available is %lld",
                          p->topic, (int)p->partition, (long long)p->pos, (long long)g->stop - 1, why,
                          (long long)first);
    return tide_err_set(err, TIDE_ENOTFOUND, "topic '%s' partition %d: offsets %lld..%lld cannot be read: %s", p->topic,
                        (int)p->partition, (long long)p->pos, (long long)g->stop - 1, why);
  }
  if (g->lost_to <= g->lost_from) g->lost_from = p->pos;
  g->lost_to = to;
  held_clear(p);
  p->pos = p->next = p->cover = to;
  *moved = 1;
  return 0;
}

/* Make p fetch from `start` on: 1 when it must be assigned again (it
 * cannot go on from where it is), else 0. */
static int place(part_t *p, int64_t start) {
  if (p->assigned && start >= p->cover) return 0;
  held_clear(p);
  p->assigned = 1;
  p->cover = p->next = start;
  return 1;
}

int tide_kafka_prefetch(tide_kafka_reader_t *r, const tide_kafka_range_t *ranges, size_t n, tide_err_t *err) {
  if (r->ahead.state && same_ranges(&r->ahead, ranges, n)) return 0; /* the read ahead is at it */
  ahead_drop(r);
  int need_assign = 0;
  for (size_t i = 0; i < n; i++) {
    if (ranges[i].stop <= ranges[i].start) continue;
    part_t *p = find_part(r, ranges[i].topic, ranges[i].partition, 1);
    if (!p) return -ENOMEM;
    need_assign |= place(p, ranges[i].start);
  }
  return need_assign ? reassign(r, err) : 0;
}

/* Ranges that end at a transaction's commit or abort marker (every range
 * of a topic written in transactions, read read_committed, ends so): the
 * client consumes the marker without handing it out, and says so only
 * through its position. Without this the range would end with the
 * partition's EOF, which comes with the NEXT fetch answer: when nothing is
 * written meanwhile, after the broker's fetch.wait.max.ms (500 ms). A
 * position past the last offset taken counts only once a message of this
 * assignment was consumed (fresh): before that it may still be the last
 * assignment's. Returns how many ranges it completed. */
static size_t complete_by_position(tide_kafka_reader_t *r) {
  rd_kafka_topic_partition_list_t *l = NULL;
  for (size_t i = 0; i < r->nparts; i++) {
    part_t *p = &r->parts[i];
    if (!p->range || !p->fresh || p->head < p->n) continue;
    if (!l && !(l = rd_kafka_topic_partition_list_new(4))) return 0;
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
  }
  if (!l) return 0;
  size_t done = 0;
  if (!rd_kafka_position(r->rk, l))
    for (int j = 0; j < l->cnt; j++) {
      const rd_kafka_topic_partition_t *tp = &l->elems[j];
      part_t *p = find_part(r, tp->topic, tp->partition, 0);
      if (!p || !p->range || tp->err || tp->offset < 0 || tp->offset < p->range->stop) continue;
      if (tp->offset > p->next) p->next = tp->offset;
      p->pos = p->range->stop;
      p->range = NULL;
      done++;
    }
  rd_kafka_topic_partition_list_destroy(l);
  return done;
}

/* tide_kafka_read's work, decoding on pool; cancel (may be NULL) stops it. */
static int read_ranges(tide_kafka_reader_t *r, struct tide_pool *pool, const int *cancel, tide_kafka_range_t *ranges,
                       size_t n, tide_batch_t ***out, size_t *nout, uint64_t *dropped, tide_kafka_bad_t **bad,
                       size_t *nbad, tide_err_t *err) {
  read_state_t st = {.r = r, .dropped = dropped, .err = err, .dec = r->dec, .scratch = &r->scratch, .pool = pool};
  *out = NULL;
  *nout = 0;
  *dropped = 0;
  *bad = NULL;
  *nbad = 0;
  int rc = 0, need_assign = 0;
  char t[256];
  size_t pending = 0;
  for (size_t i = 0; i < r->nparts; i++) r->parts[i].range = NULL;
  for (size_t i = 0; i < n; i++) {
    tide_kafka_range_t *g = &ranges[i];
    g->lost_from = g->lost_to = 0;
    g->rows = 0;
    if (g->stop <= g->start) continue;
    part_t *p = find_part(r, g->topic, g->partition, 1);
    if (!p) return -ENOMEM;
    p->range = g;
    p->pos = g->start;
    need_assign |= place(p, g->start);
    pending++;
  }
  if (need_assign && (rc = reassign(r, err))) return rc;

  /* what was held from the last read first */
  for (size_t i = 0; i < r->nparts && !rc; i++) {
    part_t *p = &r->parts[i];
    if (!p->range) continue;
    while (p->head < p->n && !rc) {
      rd_kafka_message_t *m = p->held[p->head];
      if (m->offset >= p->range->stop) break;
      p->head++;
      if (m->offset >= p->pos) {
        p->pos = m->offset + 1; /* before take: m is its from there on */
        p->range->rows++;
        rc = take(&st, m);
      } else {
        rd_kafka_message_destroy(m);
      }
    }
    if (p->head == p->n) p->head = p->n = 0;
    if (p->next > p->pos && p->head == p->n) p->pos = p->next;
    if (p->pos >= p->range->stop || (p->head < p->n && p->held[p->head]->offset >= p->range->stop)) {
      p->range = NULL;
      pending--;
    }
  }

  int64_t deadline = mono_ms() + r->o.timeout_ms;
  rd_kafka_message_t *msgs[1024];
  part_t *last = NULL;
  while (pending > 0 && !rc) {
    rd_kafka_poll(r->rk, 0);
    /* what is there now; only when nothing is, wait (up to 100 ms) for
     * one message: a batch call with a timeout would wait for a full array */
    ssize_t got = rd_kafka_consume_batch_queue(r->q, 0, msgs, sizeof msgs / sizeof *msgs);
    if (got == 0 && (pending -= complete_by_position(r)) == 0) break;
    if (got == 0 && (msgs[0] = rd_kafka_consume_queue(r->q, 100))) got = 1;
    if (got < 0) {
      rc = tide_err_set(err, -EIO, "consume: %s", tide_kafka_errtext(rd_kafka_last_error(), t, sizeof t));
      break;
    }
    ssize_t k = 0;
    for (; k < got && !rc; k++) {
      rd_kafka_message_t *m = msgs[k];
      msgs[k] = NULL; /* m is this iteration's to destroy or keep */
      part_t *p = NULL;
      if (m->rkt) {
        const char *topic = rd_kafka_topic_name(m->rkt);
        p = last && last->partition == m->partition && strcmp(last->topic, topic) == 0
                ? last
                : find_part(r, topic, m->partition, 0);
      }
      last = p;
      if (m->err) {
        rd_kafka_resp_err_t e = m->err;
        int64_t at = m->offset;
        rd_kafka_message_destroy(m);
        if (!p || !p->assigned) continue;
        if (e == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          if (at > p->next) p->next = at;
          if (p->range && p->head == p->n && p->next > p->pos) p->pos = p->next;
        } else if (p->range && (e == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE || e == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET)) {
          int moved = 0;
          int64_t first = log_start(r, p);
          if (first >= 0 && first <= p->pos) continue; /* not lost after all: librdkafka retries */
          if ((rc = lost(r, p, first, "deleted by retention", err, &moved))) break;
          if (moved && p->pos < p->range->stop && (rc = reassign(r, err))) break;
        } else if (p->range && (e == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || e == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ||
                                e == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC)) {
          int moved = 0;
          if ((rc = lost(r, p, -1, "the partition no longer exists", err, &moved))) break;
        }
        /* other errors (a broker down, a timeout) librdkafka retries by
         * itself: the deadline bounds the wait */
      } else if (!p || !p->assigned) {
        rd_kafka_message_destroy(m);
      } else {
        p->fresh = 1;
        if (m->offset + 1 > p->next) p->next = m->offset + 1;
        if (p->range && m->offset >= p->pos && m->offset < p->range->stop) {
          p->pos = m->offset + 1; /* before take: m is its from there on */
          p->range->rows++;
          rc = take(&st, m);
        } else if (p->range && m->offset < p->pos) {
          rd_kafka_message_destroy(m);
        } else if ((rc = held_push(p, m))) {
          rd_kafka_message_destroy(m);
          break;
        } else if (p->range) {
          p->pos = p->range->stop; /* a message past the range: the range is complete */
        }
      }
      if (p && p->range && p->pos >= p->range->stop) {
        p->range = NULL;
        pending--;
      }
    }
    for (; k < got; k++)
      if (msgs[k]) rd_kafka_message_destroy(msgs[k]);
    if (!rc && pending > 0 && cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED)) {
      rc = tide_err_set(err, -ECANCELED, "the read ahead was dropped");
      break;
    }
    if (!rc && pending > 0 && mono_ms() > deadline) {
      tide_buf_t w = TIDE_BUF_INIT;
      for (size_t i = 0; i < r->nparts; i++) {
        part_t *p = &r->parts[i];
        if (!p->range) continue;
        char one[200];
        snprintf(one, sizeof one, "%stopic '%s' partition %d at offset %lld of %lld..%lld", w.len ? ", " : "",
                 p->topic, (int)p->partition, (long long)p->pos, (long long)p->range->start,
                 (long long)p->range->stop - 1);
        if (tide_buf_puts(&w, one)) break;
        if (w.len > 300) {
          tide_buf_puts(&w, ", ...");
          break;
        }
      }
      char lg[512];
      tide_kafka_last_log(r->log, lg, sizeof lg);
      rc = tide_err_set(err, -EIO, "offsets not received within %d ms: %.*s%s%s", r->o.timeout_ms, (int)w.len,
                        w.data ? w.data : "", lg[0] ? "; the client's last error: " : "", lg);
      tide_buf_free(&w);
    }
  }
  if (!rc) rc = decode_todo(&st);
  for (size_t i = 0; i < st.ntodo; i++) rd_kafka_message_destroy(st.todo[i]); /* left by a failure */
  free(st.todo);
  if (!rc) rc = flush_batch(&st);
  if (!rc) /* everything before pos is taken: later reads may go on from there */
    for (size_t i = 0; i < n; i++) {
      part_t *p = ranges[i].stop > ranges[i].start ? find_part(r, ranges[i].topic, ranges[i].partition, 0) : NULL;
      if (p && p->pos > p->cover) p->cover = p->pos;
    }
  if (rc) {
    for (size_t i = 0; i < st.nout; i++) tide_batch_free(st.out[i]);
    free(st.out);
    tide_batch_free(st.b);
    tide_batch_free(st.m);
    tide_kafka_bad_free(st.bad, st.nbad);
    /* the position of every partition of this read is unsure: assign again next time */
    for (size_t i = 0; i < n; i++) {
      part_t *p = find_part(r, ranges[i].topic, ranges[i].partition, 0);
      if (p) {
        held_clear(p);
        p->assigned = 0;
      }
    }
    if (rc == -ENOMEM) tide_err_set(err, rc, "%s", tide_strerror(rc));
    return rc;
  }
  *out = st.out;
  *nout = st.nout;
  *bad = st.bad;
  *nbad = st.nbad;
  return 0;
}

/* ---- reading ahead ----
 *
 * The next batch's ranges, as the source plans them once a batch is read,
 * are read on a thread of their own (with a worker pool of its own) while
 * the engine executes, delivers and commits the current batch: librdkafka
 * goes on fetching and the values are decoded meanwhile, instead of after.
 * A read that asks for exactly those ranges takes the result; any other
 * read (the plan changed: new partitions, a replay after a restart) drops
 * it and reads afresh, as it does when the read ahead failed, so that
 * errors always come from a read of the batch the engine logged. Reading
 * moves nothing but the reader's partitions: a dropped read ahead only
 * makes the next read assign its partitions again at its start. */

static void ahead_free_result(ahead_t *a) {
  for (size_t i = 0; i < a->nout; i++) tide_batch_free(a->out[i]);
  free(a->out);
  tide_kafka_bad_free(a->bad, a->nbad);
  for (size_t i = 0; i < a->n; i++) free((char *)a->ranges[i].topic);
  free(a->ranges);
  memset(a, 0, sizeof *a);
}

static void ahead_join(ahead_t *a) {
  if (a->state == 1) pthread_join(a->thread, NULL);
  if (a->state) a->state = 2;
}

/* Stop the read ahead, if any, and drop what it read. */
static void ahead_drop(tide_kafka_reader_t *r) {
  ahead_t *a = &r->ahead;
  if (!a->state) return;
  r->ahead_dropped++;
  __atomic_store_n(&a->cancel, 1, __ATOMIC_RELAXED);
  ahead_join(a);
  ahead_free_result(a);
}

static int same_ranges(const ahead_t *a, const tide_kafka_range_t *ranges, size_t n) {
  if (a->n != n) return 0;
  for (size_t i = 0; i < n; i++) {
    const tide_kafka_range_t *x = &a->ranges[i], *y = &ranges[i];
    if (x->partition != y->partition || x->start != y->start || x->stop != y->stop || strcmp(x->topic, y->topic))
      return 0;
  }
  return 1;
}

static void *ahead_main(void *arg) {
  tide_kafka_reader_t *r = arg;
  ahead_t *a = &r->ahead;
  /* the loop thread's pool is its own: a pool of this read's (when it
   * cannot start one, this thread decodes alone) */
  struct tide_pool *pool = NULL;
  if (a->threads > 1 && tide_pool_open(a->threads, &pool)) pool = NULL;
  a->rc = read_ranges(r, pool, &a->cancel, a->ranges, a->n, &a->out, &a->nout, &a->dropped, &a->bad, &a->nbad,
                      &a->err);
  tide_pool_close(pool);
  return NULL;
}

int tide_kafka_read_ahead(tide_kafka_reader_t *r, const tide_kafka_range_t *ranges, size_t n, int threads,
                          tide_err_t *err) {
  ahead_drop(r);
  ahead_t *a = &r->ahead;
  if (!(a->ranges = calloc(n ? n : 1, sizeof *a->ranges))) return -ENOMEM;
  for (size_t i = 0; i < n; i++, a->n++) {
    a->ranges[i] = ranges[i];
    if (!(a->ranges[i].topic = strdup(ranges[i].topic))) {
      ahead_free_result(a);
      return -ENOMEM;
    }
  }
  a->threads = threads < 1 ? 1 : threads > TIDE_POOL_MAX ? TIDE_POOL_MAX : threads;
  int rc = pthread_create(&a->thread, NULL, ahead_main, r);
  if (rc) {
    ahead_free_result(a);
    return tide_err_set(err, -rc, "cannot start the read ahead's thread: %s", strerror(rc));
  }
  a->state = 1;
  return 0;
}

int tide_kafka_read(tide_kafka_reader_t *r, tide_kafka_range_t *ranges, size_t n, tide_batch_t ***out, size_t *nout,
                    uint64_t *dropped, tide_kafka_bad_t **bad, size_t *nbad, tide_err_t *err) {
  ahead_t *a = &r->ahead;
  if (a->state && same_ranges(a, ranges, n)) {
    ahead_join(a);
    if (a->rc == 0) {
      for (size_t i = 0; i < n; i++) {
        ranges[i].lost_from = a->ranges[i].lost_from;
        ranges[i].lost_to = a->ranges[i].lost_to;
        ranges[i].rows = a->ranges[i].rows;
      }
      *out = a->out;
      *nout = a->nout;
      *dropped = a->dropped;
      *bad = a->bad;
      *nbad = a->nbad;
      a->out = NULL;
      a->nout = 0;
      a->bad = NULL;
      a->nbad = 0;
      ahead_free_result(a);
      r->ahead_used++;
      return 0;
    }
  }
  ahead_drop(r);
  return read_ranges(r, r->pool, NULL, ranges, n, out, nout, dropped, bad, nbad, err);
}

void tide_kafka_read_ahead_stats(const tide_kafka_reader_t *r, uint64_t *used, uint64_t *dropped) {
  *used = r->ahead_used;
  *dropped = r->ahead_dropped;
}
