/*
 * kafka_sink.c: the Kafka sink's producer (kafka_sink.h).
 *
 * One librdkafka producer per sink. Delivery reports come back through
 * dr_msg_cb on this thread (from rd_kafka_poll/flush and from the
 * transactional calls, which flush), and the first failure is kept with
 * its topic, partition and error so that the batch's error can name them.
 * librdkafka's own log lines and error events are kept, not printed: the
 * last one is added to a failure's message.
 */
#include "kafka_sink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "json.h"
#include "jsonl.h"
#include "kafka.h"

struct tide_ksink {
  /* first: the clients' opaque points here, and is both the log that
   * core/kafka.c's log callback writes and this sink (dr_cb) */
  tide_kafka_log_t log;
  rd_kafka_t *rk;
  int eos, in_txn, timeout_ms;
  char *bootstrap, *group;
  char **kv; /* the user's settings, kept for the progress consumer */
  size_t nkv;
  long long max_bytes; /* message.max.bytes in force */
  rd_kafka_topic_t *rkt; /* the fixed topic's handle */
  char *rkt_name;
  /* delivery reports */
  uint64_t delivered, failed, failed_batch;
  char fail_topic[256];
  int32_t fail_partition;
  rd_kafka_resp_err_t fail_err;
  char fail_msg[256];
  tide_buf_t key, val, name, hval, tmp;
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void keep(char *dst, size_t cap, const char *src) {
  snprintf(dst, cap, "%s", src ? src : "");
}

/* Delivery reports, on the thread that polls (this one). */
static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque) {
  (void)rk;
  tide_ksink_t *s = (tide_ksink_t *)opaque; /* &s->log, the first member */
  if (!m->err) {
    s->delivered++;
    return;
  }
  s->failed++;
  if (s->failed_batch++ == 0) {
    keep(s->fail_topic, sizeof s->fail_topic, m->rkt ? rd_kafka_topic_name(m->rkt) : "?");
    s->fail_partition = m->partition;
    s->fail_err = m->err;
    tide_kafka_errtext(m->err, s->fail_msg, sizeof s->fail_msg);
  }
}

/* A configuration: tide's settings (pairs, NULL-ended), then the user's
 * (which may override them: the options the sink owns are refused before
 * this, in connectors/kafka/sink.lua). *out is NULL on failure. */
static int make_conf(tide_ksink_t *s, const char *const *own, rd_kafka_conf_t **out, tide_err_t *err) {
  size_t n = 0;
  while (own[2 * n]) n++;
  const char **keys = calloc(n + s->nkv + 1, sizeof *keys), **values = calloc(n + s->nkv + 1, sizeof *values);
  int rc = keys && values ? 0 : tide_err_set(err, -ENOMEM, "out of memory");
  for (size_t i = 0; !rc && i < n; i++) keys[i] = own[2 * i], values[i] = own[2 * i + 1];
  for (size_t i = 0; !rc && i < s->nkv; i++) keys[n + i] = s->kv[2 * i], values[n + i] = s->kv[2 * i + 1];
  *out = NULL;
  if (!rc) rc = tide_kafka_conf(s->bootstrap, keys, values, n + s->nkv, &s->log, out, err);
  free(keys);
  free(values);
  return rc;
}

static char *dup(const char *p) {
  return p ? strdup(p) : NULL;
}

void tide_ksink_free(tide_ksink_t *s) {
  if (!s) return;
  if (s->rk) {
    /* best effort, briefly: the next run's init_transactions (or the
     * broker's transaction timeout) aborts it anyway */
    if (s->in_txn)
      rd_kafka_error_destroy(rd_kafka_abort_transaction(s->rk, s->timeout_ms < 2000 ? s->timeout_ms : 2000));
    if (s->rkt) rd_kafka_topic_destroy(s->rkt);
    /* what is still queued is not wanted: the batch failed or was aborted */
    rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(s->rk, 1000);
    rd_kafka_destroy(s->rk);
  }
  for (size_t i = 0; i < 2 * s->nkv; i++) free(s->kv[i]);
  free(s->kv);
  free(s->bootstrap);
  free(s->group);
  free(s->rkt_name);
  tide_kafka_log_free(&s->log);
  tide_buf_free(&s->key);
  tide_buf_free(&s->val);
  tide_buf_free(&s->name);
  tide_buf_free(&s->hval);
  tide_buf_free(&s->tmp);
  free(s);
}

int tide_ksink_new(const char *bootstrap, const tide_ksink_conf_t *c, tide_ksink_t **out, tide_err_t *err) {
  *out = NULL;
  if (c->exactly_once && (!c->txn_id || !c->group))
    return tide_err_set(err, TIDE_EINVAL, "exactly-once needs a transactional id and a progress group");
  tide_ksink_t *s = calloc(1, sizeof *s);
  if (!s) return tide_err_set(err, -ENOMEM, "out of memory");
  tide_kafka_log_init(&s->log);
  s->eos = c->exactly_once;
  s->timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 30000;
  s->bootstrap = dup(bootstrap);
  s->group = dup(c->group);
  s->kv = calloc(2 * c->nkv + 1, sizeof *s->kv);
  int rc = (!s->bootstrap || (c->group && !s->group) || !s->kv) ? -ENOMEM : 0;
  for (size_t i = 0; !rc && i < 2 * c->nkv; i++) {
    if (!(s->kv[i] = dup(c->kv[i]))) rc = -ENOMEM;
    s->nkv = (i + 1) / 2;
  }
  if (rc) {
    tide_ksink_free(s);
    return tide_err_set(err, rc, "out of memory");
  }
  char tmo[32], txn_tmo[32];
  snprintf(tmo, sizeof tmo, "%d", s->timeout_ms);
  /* the transaction must outlive the delivery bound (librdkafka requires
   * message.timeout.ms <= transaction.timeout.ms) */
  snprintf(txn_tmo, sizeof txn_tmo, "%d", s->timeout_ms > 60000 ? s->timeout_ms : 60000);
  const char *own[] = {"enable.idempotence", "true",
                       "acks", "all",
                       /* the key's partition as Java clients (and so Spark and Kafka Streams) choose it */
                       "partitioner", "murmur2_random",
                       "message.timeout.ms", tmo,
                       /* exactly-once only, from here */
                       "transaction.timeout.ms", txn_tmo,
                       "transactional.id", c->txn_id,
                       NULL, NULL};
  if (!s->eos) own[8] = NULL;
  rd_kafka_conf_t *conf;
  if ((rc = make_conf(s, own, &conf, err))) {
    tide_ksink_free(s);
    return rc;
  }
  rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
  char mb[32];
  size_t mbn = sizeof mb;
  s->max_bytes = rd_kafka_conf_get(conf, "message.max.bytes", mb, &mbn) == RD_KAFKA_CONF_OK ? atoll(mb) : 1000000;
  if ((rc = tide_kafka_new(RD_KAFKA_PRODUCER, conf, &s->rk, err))) {
    tide_ksink_free(s);
    return rc;
  }
  *out = s;
  return 0;
}

void tide_ksink_stats(const tide_ksink_t *s, uint64_t *delivered, uint64_t *failed) {
  *delivered = s->delivered;
  *failed = s->failed;
}

/* " (last client message: <line>)" when librdkafka logged a warning or an
 * error, for messages. */
static const char *last_log(tide_ksink_t *s, char *out, size_t cap) {
  char line[512];
  tide_kafka_last_log(&s->log, line, sizeof line);
  if (!line[0]) return "";
  snprintf(out, cap, " (last client message: %s)", line);
  return out;
}

/* Run a transactional step again while it fails retriably, up to the
 * deadline; the last error is returned (NULL on success). */
#define TXN_RETRY(s, deadline, call)                                                            \
  ({                                                                                           \
    rd_kafka_error_t *e_;                                                                      \
    while ((e_ = (call)) && rd_kafka_error_is_retriable(e_) && !rd_kafka_error_is_fatal(e_) && \
           !rd_kafka_error_txn_requires_abort(e_) && now_ms() < (deadline)) {                  \
      rd_kafka_error_destroy(e_);                                                              \
      rd_kafka_poll((s)->rk, 50);                                                              \
    }                                                                                          \
    e_;                                                                                        \
  })

/* Fail the messages still waiting (a leader down past the timeout), so
 * that their reports name topic and partition. */
static void purge_waiting(tide_ksink_t *s) {
  if (rd_kafka_outq_len(s->rk) == 0) return;
  rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  for (int i = 0; i < 20 && rd_kafka_outq_len(s->rk) > 0; i++) rd_kafka_poll(s->rk, 50);
}

/* The batch's first failed message: "topic 'x' partition 2: <error>
 * (n messages of the batch not delivered)". */
static int delivery_fail(tide_ksink_t *s, int rc, tide_err_t *err) {
  char lb[600];
  const char *pl = s->failed_batch == 1 ? "" : "s";
  if (s->fail_err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT || s->fail_err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
      s->fail_err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT || s->fail_err == RD_KAFKA_RESP_ERR__TIMED_OUT)
    return tide_err_set(err, rc, "topic '%s' partition %" PRId32 ": %" PRIu64 " message%s of the batch not delivered "
                        "within %d ms%s", s->fail_topic, s->fail_partition, s->failed_batch, pl, s->timeout_ms,
                        last_log(s, lb, sizeof lb));
  return tide_err_set(err, rc, "topic '%s' partition %" PRId32 ": %s (%" PRIu64 " message%s of the batch not "
                      "delivered)", s->fail_topic, s->fail_partition, s->fail_msg, s->failed_batch, pl);
}

/* Fail with a transactional error: the first failed message when there is
 * one, else the error's text. */
static int txn_fail(tide_ksink_t *s, rd_kafka_error_t *e, const char *step, tide_err_t *err) {
  char lb[600];
  int rc = rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__TIMED_OUT ? -ETIMEDOUT : -EIO;
  if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__TIMED_OUT) purge_waiting(s);
  /* an abortable error can come back before the failed messages' reports
   * are served: serve them (briefly), so that the message names them */
  rd_kafka_poll(s->rk, 0);
  for (int i = 0; i < 10 && !s->failed_batch && rd_kafka_outq_len(s->rk) > 0; i++) rd_kafka_poll(s->rk, 50);
  if (s->failed_batch) delivery_fail(s, rc, err);
  else tide_err_set(err, rc, "%s: %s%s", step, rd_kafka_error_string(e), last_log(s, lb, sizeof lb));
  rd_kafka_error_destroy(e);
  return rc;
}

int tide_ksink_recover(tide_ksink_t *s, const char *topic, int32_t partition, int64_t *last, tide_err_t *err) {
  *last = -1;
  if (!s->eos) return 0;
  int64_t deadline = now_ms() + s->timeout_ms;
  rd_kafka_error_t *e = TXN_RETRY(s, deadline, rd_kafka_init_transactions(s->rk, s->timeout_ms));
  if (e) return txn_fail(s, e, "initialising transactions", err);
  return tide_ksink_committed(s, topic, partition, last, err);
}

int tide_ksink_committed(tide_ksink_t *s, const char *topic, int32_t partition, int64_t *last, tide_err_t *err) {
  *last = -1;
  if (!s->group) return tide_err_set(err, TIDE_EINVAL, "no progress group");
  int64_t deadline = now_ms() + s->timeout_ms;
  /* the committed offset, through a consumer of the progress group that
   * never joins it (no subscribe): read_committed asks for stable offsets */
  const char *own[] = {"group.id", s->group, "enable.auto.commit", "false", "isolation.level", "read_committed",
                       NULL, NULL};
  rd_kafka_conf_t *conf;
  int rc = make_conf(s, own, &conf, err);
  if (rc) return rc;
  rd_kafka_t *c;
  if ((rc = tide_kafka_new(RD_KAFKA_CONSUMER, conf, &c, err))) return rc;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, topic, partition);
  rd_kafka_resp_err_t ke;
  do {
    ke = rd_kafka_committed(c, l, (int)(deadline - now_ms() > 100 ? deadline - now_ms() : 100));
  } while ((ke == RD_KAFKA_RESP_ERR__TIMED_OUT || ke == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
            ke == RD_KAFKA_RESP_ERR_NOT_COORDINATOR || ke == RD_KAFKA_RESP_ERR_UNSTABLE_OFFSET_COMMIT ||
            ke == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS) &&
           now_ms() < deadline);
  if (!ke) ke = tp->err;
  if (ke == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
    rc = tide_err_set(err, TIDE_ENOTFOUND, "the progress topic '%s' (partition %" PRId32 ") does not exist: create "
                      "it, or name an existing topic with option 'progress_topic'", topic, partition);
  } else if (ke) {
    char et[256];
    rc = tide_err_set(err, -EIO, "reading the committed offset of group '%s' on topic '%s' partition %" PRId32 ": %s",
                      s->group, topic, partition, tide_kafka_errtext(ke, et, sizeof et));
  } else if (tp->offset >= 1) {
    *last = tp->offset - 1;
  }
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_consumer_close(c);
  rd_kafka_destroy(c);
  return rc;
}

int tide_ksink_begin(tide_ksink_t *s, tide_err_t *err) {
  s->failed_batch = 0;
  pthread_mutex_lock(&s->log.mu); /* a failure quotes what this batch logged */
  s->log.last[0] = 0;
  pthread_mutex_unlock(&s->log.mu);
  if (!s->eos) return 0;
  rd_kafka_error_t *e = rd_kafka_begin_transaction(s->rk);
  if (e) return txn_fail(s, e, "beginning a transaction", err);
  s->in_txn = 1;
  return 0;
}

/* Append value v (row r of column c) as message bytes; *null is set for a
 * NULL value. */
static int scalar(const tide_col_t *c, tide_type_t t, uint32_t r, tide_buf_t *out, int *null) {
  out->len = 0;
  *null = tide_col_is_null(c, r);
  if (*null) return 0;
  char tb[32];
  size_t n;
  switch (t) {
  case TIDE_T_STRING:
  case TIDE_T_JSON: {
    const char *p = tide_col_str(c, r, &n);
    return tide_buf_append(out, p, n);
  }
  case TIDE_T_INT:
  case TIDE_T_TIMESTAMP:
    return tide_buf_append(out, tb, (size_t)snprintf(tb, sizeof tb, "%" PRId64, tide_col_i64(c, r)));
  case TIDE_T_DOUBLE: return tide_json_number(out, tide_col_f64(c, r));
  case TIDE_T_BOOL: return tide_buf_puts(out, tide_col_bool(c, r) ? "true" : "false");
  }
  return 0;
}

/* Add one header: name (copied in s->name) and the JSON value at p. */
static int add_header(tide_ksink_t *s, rd_kafka_headers_t *h, const tide_json_cur_t *x, const char *p,
                      const char **endp) {
  p = tide_json_ws(p, x->end);
  if (p < x->end && *p == '"') {
    const char *sp;
    size_t sn;
    int rc = tide_json_str(x, p, endp, &sp, &sn);
    if (rc) return rc;
    rd_kafka_header_add(h, s->name.data, (ssize_t)s->name.len, sp, (ssize_t)sn);
    return 0;
  }
  s->hval.len = 0;
  int rc = tide_json_value(x, p, endp, &s->hval);
  if (rc) return rc;
  if (s->hval.len == 4 && !memcmp(s->hval.data, "null", 4))
    rd_kafka_header_add(h, s->name.data, (ssize_t)s->name.len, NULL, 0);
  else rd_kafka_header_add(h, s->name.data, (ssize_t)s->name.len, s->hval.data, (ssize_t)s->hval.len);
  return 0;
}

/* Scan a string literal at p into s->name. */
static int header_name(tide_ksink_t *s, const tide_json_cur_t *x, const char *p, const char **endp) {
  const char *sp;
  size_t sn;
  p = tide_json_ws(p, x->end);
  if (p >= x->end || *p != '"') return tide_json_syntax(x, p, "a header name (a string) expected");
  int rc = tide_json_str(x, p, endp, &sp, &sn);
  s->name.len = 0;
  return rc ? rc : tide_buf_append(&s->name, sp, sn);
}

/* Headers from the JSON text p[0..n): an object of name: value, or an
 * array of {"key": name, "value": value}. */
static int parse_headers(tide_ksink_t *s, const char *p, size_t n, rd_kafka_headers_t *h, tide_err_t *err) {
  tide_json_cur_t x = {p, p + n, err, &s->tmp};
  const char *q = tide_json_ws(p, x.end);
  int rc = 0;
  if (q < x.end && *q == '{') {
    q = tide_json_ws(q + 1, x.end);
    if (q < x.end && *q == '}') return 0;
    for (;;) {
      if ((rc = header_name(s, &x, q, &q))) return rc;
      q = tide_json_ws(q, x.end);
      if (q >= x.end || *q != ':') return tide_json_syntax(&x, q, "':' expected");
      if ((rc = add_header(s, h, &x, q + 1, &q))) return rc;
      q = tide_json_ws(q, x.end);
      if (q < x.end && *q == ',') { q++; continue; }
      if (q < x.end && *q == '}') return 0;
      return tide_json_syntax(&x, q, "',' or '}' expected");
    }
  }
  if (q < x.end && *q == '[') {
    q = tide_json_ws(q + 1, x.end);
    if (q < x.end && *q == ']') return 0;
    for (;;) {
      /* {"key": name, "value": value}, in either order */
      if (q >= x.end || *q != '{')
        return tide_json_syntax(&x, q, "a header {\"key\": name, \"value\": value} expected");
      const char *vp = NULL, *kp = NULL, *e;
      q++;
      for (;;) {
        const char *sp;
        size_t sn;
        q = tide_json_ws(q, x.end);
        if (q >= x.end || *q != '"') return tide_json_syntax(&x, q, "\"key\" or \"value\" expected");
        if ((rc = tide_json_str(&x, q, &q, &sp, &sn))) return rc;
        int is_key = sn == 3 && !memcmp(sp, "key", 3), is_val = sn == 5 && !memcmp(sp, "value", 5);
        if (!is_key && !is_val) return tide_json_syntax(&x, q, "a header has only \"key\" and \"value\"");
        q = tide_json_ws(q, x.end);
        if (q >= x.end || *q != ':') return tide_json_syntax(&x, q, "':' expected");
        q = tide_json_ws(q + 1, x.end);
        if (is_key) kp = q;
        else vp = q;
        if ((rc = tide_json_value(&x, q, &q, NULL))) return rc;
        q = tide_json_ws(q, x.end);
        if (q < x.end && *q == ',') { q++; continue; }
        if (q < x.end && *q == '}') { q++; break; }
        return tide_json_syntax(&x, q, "',' or '}' expected");
      }
      if (!kp) return tide_json_syntax(&x, q, "a header without \"key\"");
      if ((rc = header_name(s, &x, kp, &e))) return rc;
      if (vp) {
        if ((rc = add_header(s, h, &x, vp, &e))) return rc;
      } else {
        rd_kafka_header_add(h, s->name.data, (ssize_t)s->name.len, NULL, 0);
      }
      q = tide_json_ws(q, x.end);
      if (q < x.end && *q == ',') { q = tide_json_ws(q + 1, x.end); continue; }
      if (q < x.end && *q == ']') return 0;
      return tide_json_syntax(&x, q, "',' or ']' expected");
    }
  }
  return tide_json_syntax(&x, q, "headers must be an object or an array of {\"key\", \"value\"}");
}

/* The handle of the fixed topic, made once. */
static rd_kafka_topic_t *fixed_topic(tide_ksink_t *s, const char *name) {
  if (s->rkt && !strcmp(s->rkt_name, name)) return s->rkt;
  if (s->rkt) rd_kafka_topic_destroy(s->rkt);
  free(s->rkt_name);
  s->rkt_name = strdup(name);
  s->rkt = s->rkt_name ? rd_kafka_topic_new(s->rk, name, NULL) : NULL;
  return s->rkt;
}

int tide_ksink_produce(tide_ksink_t *s, const tide_batch_t *b, const tide_ksink_map_t *m, uint64_t *n,
                       tide_err_t *err) {
  const tide_schema_t *sc = b->schema;
  rd_kafka_topic_t *rkt = m->topic ? fixed_topic(s, m->topic) : NULL;
  if (m->topic && !rkt) return tide_err_set(err, -ENOMEM, "out of memory");
  int64_t deadline = now_ms() + s->timeout_ms;
  for (uint32_t r = 0; r < b->nrows; r++) {
    int rc = 0, knull = 1, vnull = 0;
    const char *topic = m->topic;
    if (m->topic_col >= 0) {
      size_t tn;
      const char *tp = tide_col_str(&b->cols[m->topic_col], r, &tn);
      if (tide_col_is_null(&b->cols[m->topic_col], r) || tn == 0)
        return tide_err_set(err, TIDE_EINVAL, "row %u: column '%s' (the topic) is %s", r + 1,
                            sc->fields[m->topic_col].name, tn ? "NULL" : "empty");
      s->tmp.len = 0;
      if ((rc = tide_buf_append(&s->tmp, tp, tn)) || (rc = tide_buf_cstr(&s->tmp)))
        return tide_err_set(err, rc, "out of memory");
      topic = s->tmp.data;
    }
    if (m->kb && m->key_col >= 0)
      rc = scalar(&m->kb->cols[m->key_col], m->kb->schema->fields[m->key_col].type, r, &s->key, &knull);
    if (!rc) {
      if (m->value_col >= 0) rc = scalar(&b->cols[m->value_col], sc->fields[m->value_col].type, r, &s->val, &vnull);
      else {
        s->val.len = 0;
        rc = tide_json_enc_row(b, r, &s->val, 0);
      }
    }
    if (rc) return tide_err_set(err, rc, "out of memory");
    int32_t part = RD_KAFKA_PARTITION_UA;
    if (m->partition_col >= 0 && !tide_col_is_null(&b->cols[m->partition_col], r)) {
      int64_t p = tide_col_i64(&b->cols[m->partition_col], r);
      if (p < 0 || p > INT32_MAX)
        return tide_err_set(err, TIDE_EINVAL, "row %u: column '%s' (the partition) is %" PRId64 ", not a partition",
                            r + 1, sc->fields[m->partition_col].name, p);
      part = (int32_t)p;
    }
    int64_t ts = 0;
    if (m->timestamp_col >= 0 && !tide_col_is_null(&b->cols[m->timestamp_col], r))
      ts = tide_col_i64(&b->cols[m->timestamp_col], r);
    rd_kafka_headers_t *h = NULL;
    if (m->headers_col >= 0 && !tide_col_is_null(&b->cols[m->headers_col], r)) {
      size_t hn;
      const char *hp = tide_col_str(&b->cols[m->headers_col], r, &hn);
      if (!(h = rd_kafka_headers_new(4))) return tide_err_set(err, -ENOMEM, "out of memory");
      if ((rc = parse_headers(s, hp, hn, h, err))) {
        rd_kafka_headers_destroy(h);
        return tide_err_prefix(err, "row %u: column '%s' (the headers): ", r + 1, sc->fields[m->headers_col].name);
      }
    }
    rd_kafka_resp_err_t ke;
    for (;;) {
      /* the topic is named, or given as the fixed handle */
      if (rkt)
        ke = rd_kafka_producev(s->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(part),
                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                               RD_KAFKA_V_KEY(knull ? NULL : s->key.data, knull ? 0 : s->key.len),
                               RD_KAFKA_V_VALUE(vnull ? NULL : s->val.data, vnull ? 0 : s->val.len),
                               RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
      else
        ke = rd_kafka_producev(s->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(part),
                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                               RD_KAFKA_V_KEY(knull ? NULL : s->key.data, knull ? 0 : s->key.len),
                               RD_KAFKA_V_VALUE(vnull ? NULL : s->val.data, vnull ? 0 : s->val.len),
                               RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
      if (ke != RD_KAFKA_RESP_ERR__QUEUE_FULL || now_ms() >= deadline) break;
      rd_kafka_poll(s->rk, 20); /* room comes as deliveries are reported */
    }
    if (ke) {
      if (h) rd_kafka_headers_destroy(h); /* not taken on failure */
      if (ke == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        return tide_err_set(err, TIDE_ETOOBIG,
                            "topic '%s': row %u: a message of %zu bytes (key %zu, value %zu) is over "
                            "message.max.bytes (%lld): give the kafka setting 'message.max.bytes' (and the topic's "
                            "max.message.bytes on the brokers) room for it, or write smaller values",
                            topic, r + 1, (knull ? 0 : s->key.len) + (vnull ? 0 : s->val.len), knull ? 0 : s->key.len,
                            vnull ? 0 : s->val.len, s->max_bytes);
      if (ke == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        return tide_err_set(err, -ETIMEDOUT, "topic '%s': the producer's queue stayed full for %d ms", topic,
                            s->timeout_ms);
      if (ke == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION)
        return tide_err_set(err, TIDE_EINVAL, "topic '%s': row %u: partition %" PRId32 " does not exist", topic,
                            r + 1, part);
      char et[256];
      return tide_err_set(err, -EIO, "topic '%s': row %u: %s", topic, r + 1, tide_kafka_errtext(ke, et, sizeof et));
    }
    (*n)++;
    if ((r & 1023) == 1023) rd_kafka_poll(s->rk, 0); /* serve delivery reports as we go */
  }
  return 0;
}

/* A non-transactional batch: wait for every message's report (each one
 * comes within message.timeout.ms, so the slack only covers the reports'
 * own way back). */
static int flush_all(tide_ksink_t *s, tide_err_t *err) {
  char lb[600];
  rd_kafka_resp_err_t ke = rd_kafka_flush(s->rk, s->timeout_ms + 2000);
  if (ke) purge_waiting(s);
  if (s->failed_batch) return delivery_fail(s, -EIO, err);
  if (ke)
    return tide_err_set(err, -ETIMEDOUT, "%d message%s not delivered within %d ms%s", rd_kafka_outq_len(s->rk),
                        rd_kafka_outq_len(s->rk) == 1 ? "" : "s", s->timeout_ms, last_log(s, lb, sizeof lb));
  return 0;
}

int tide_ksink_commit(tide_ksink_t *s, const char *topic, int32_t partition, int64_t batch_id, tide_err_t *err) {
  if (!s->eos) {
    int rc = flush_all(s, err);
    if (rc) tide_ksink_abort(s);
    return rc;
  }
  /* every message was queued before now, so each is delivered or failed
   * (message.timeout.ms) before this deadline: the commit then reports a
   * failed message, not its own timeout */
  int64_t deadline = now_ms() + s->timeout_ms + 2000;
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_t *tp = rd_kafka_topic_partition_list_add(l, topic, partition);
  tp->offset = batch_id + 1;
  char meta[64];
  int mn = snprintf(meta, sizeof meta, "tide batch %" PRId64, batch_id);
  tp->metadata = malloc((size_t)mn);
  if (tp->metadata) {
    memcpy(tp->metadata, meta, (size_t)mn);
    tp->metadata_size = (size_t)mn;
  }
  rd_kafka_consumer_group_metadata_t *g = rd_kafka_consumer_group_metadata_new(s->group);
  rd_kafka_error_t *e = TXN_RETRY(s, deadline, rd_kafka_send_offsets_to_transaction(s->rk, l, g, s->timeout_ms));
  rd_kafka_consumer_group_metadata_destroy(g);
  rd_kafka_topic_partition_list_destroy(l);
  int rc = 0;
  if (e) rc = txn_fail(s, e, "sending the batch's progress offset to the transaction", err);
  else {
    int64_t left = deadline - now_ms();
    e = TXN_RETRY(s, deadline, rd_kafka_commit_transaction(s->rk, (int)(left > 1000 ? left : 1000)));
    if (e) rc = txn_fail(s, e, "committing the transaction", err);
    else s->in_txn = 0;
  }
  if (rc) tide_ksink_abort(s);
  return rc;
}

int tide_ksink_init(tide_ksink_t *s, tide_err_t *err) {
  if (!s->eos) return 0;
  int64_t deadline = now_ms() + s->timeout_ms;
  rd_kafka_error_t *e = TXN_RETRY(s, deadline, rd_kafka_init_transactions(s->rk, s->timeout_ms));
  return e ? txn_fail(s, e, "initialising transactions", err) : 0;
}

void tide_ksink_prepare(tide_ksink_t *s, const char *const *topics, size_t n) {
  for (size_t i = 0; i < n; i++) {
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(s->rk, topics[i], NULL);
    const struct rd_kafka_metadata *md = NULL;
    /* the answer fills the client's metadata cache, which the topic's
     * handle at the first message is made from */
    if (rkt && !rd_kafka_metadata(s->rk, 0, rkt, &md, s->timeout_ms < 5000 ? s->timeout_ms : 5000))
      rd_kafka_metadata_destroy(md);
    if (rkt) rd_kafka_topic_destroy(rkt);
  }
}

int tide_ksink_produce_raw(tide_ksink_t *s, const char *topic, int32_t partition, const void *key, size_t klen,
                           const void *value, size_t vlen, tide_err_t *err) {
  int64_t deadline = now_ms() + s->timeout_ms;
  rd_kafka_resp_err_t ke;
  for (;;) {
    ke = rd_kafka_producev(s->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, key ? klen : 0),
                           RD_KAFKA_V_VALUE((void *)(uintptr_t)value, value ? vlen : 0), RD_KAFKA_V_END);
    if (ke != RD_KAFKA_RESP_ERR__QUEUE_FULL || now_ms() >= deadline) break;
    rd_kafka_poll(s->rk, 20);
  }
  if (!ke) return 0;
  char et[256];
  return tide_err_set(err, ke == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? TIDE_ETOOBIG : -EIO,
                      "topic '%s' partition %" PRId32 ": %s", topic, partition, tide_kafka_errtext(ke, et, sizeof et));
}

/* The refusals that mean another process owns the work now: a newer
 * producer, or a group that no longer knows this member (its session
 * timed out: a zombie). */
static int fenced(rd_kafka_resp_err_t c) {
  return c == RD_KAFKA_RESP_ERR__FENCED || c == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
         c == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH || c == RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID ||
         c == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID;
}

int tide_ksink_commit_offsets(tide_ksink_t *s, const char *const *topics, const int32_t *partitions,
                              const int64_t *offsets, size_t n, const void *md, size_t mdlen, tide_err_t *err) {
  int64_t deadline = now_ms() + s->timeout_ms + 2000;
  rd_kafka_consumer_group_metadata_t *g = NULL;
  rd_kafka_error_t *e = rd_kafka_consumer_group_metadata_read(&g, md, mdlen);
  if (e) {
    tide_err_set(err, TIDE_EINVAL, "the consumer group's metadata: %s", rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
    tide_ksink_abort(s);
    return TIDE_EINVAL;
  }
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
  for (size_t i = 0; i < n; i++) rd_kafka_topic_partition_list_add(l, topics[i], partitions[i])->offset = offsets[i];
  e = n ? TXN_RETRY(s, deadline, rd_kafka_send_offsets_to_transaction(s->rk, l, g, s->timeout_ms)) : NULL;
  rd_kafka_consumer_group_metadata_destroy(g);
  rd_kafka_topic_partition_list_destroy(l);
  const char *step = "sending the input offsets to the transaction";
  if (!e) {
    int64_t left = deadline - now_ms();
    step = "committing the transaction";
    e = TXN_RETRY(s, deadline, rd_kafka_commit_transaction(s->rk, (int)(left > 1000 ? left : 1000)));
    if (!e) {
      s->in_txn = 0;
      return 0;
    }
  }
  int rc;
  if (fenced(rd_kafka_error_code(e))) {
    rc = tide_err_set(err, TIDE_EPOISONED, "%s: %s", step, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  } else if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION) {
    /* a live member whose commit raced a rebalance: its tasks may move */
    rc = tide_err_set(err, -EAGAIN, "%s: %s", step, rd_kafka_error_string(e));
    rd_kafka_error_destroy(e);
  } else {
    rc = txn_fail(s, e, step, err);
  }
  tide_ksink_abort(s);
  return rc;
}

void tide_ksink_abort(tide_ksink_t *s) {
  if (s->eos && s->in_txn) {
    rd_kafka_error_t *e = rd_kafka_abort_transaction(s->rk, s->timeout_ms);
    if (e) rd_kafka_error_destroy(e); /* the next init_transactions aborts it, or the broker's timeout */
    s->in_txn = 0;
  } else if (!s->eos) {
    rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(s->rk, 0);
  }
}
