/*
 * kgroup.c: a member of a Kafka consumer group (kgroup.h).
 *
 * Rebalances are librdkafka events (RD_KAFKA_EVENT_REBALANCE) read from the
 * consumer queue in the caller's thread, not a rebalance callback: a
 * callback runs inside a poll that goes on returning messages, so a
 * revoked partition's messages could follow its revocation in one poll;
 * an event ends the poll, and the partitions of a revocation are given
 * back only when the caller says it is done with their tasks.
 */
#include <errno.h>
#include <inttypes.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "kgroup.h"

struct tide_kgroup {
  rd_kafka_t *rk;
  rd_kafka_queue_t *q;
  tide_kafka_log_t log;
  int cooperative;                          /* known after the first rebalance */
  rd_kafka_event_t *held;                   /* an event polled behind messages: the next poll's */
  rd_kafka_topic_partition_list_t *revoked; /* revoked or lost, not yet released */
  int closed;
  int paused;   /* tide_kgroup_pause_fetching */
  int assigned; /* an ASSIGN event came (the assignor's state exists) */
};

/* How long close waits for the first assignment of a member that joined
 * (see settle_first_assignment). */
#define TIDE_KGROUP_SETTLE_MS 10000

static int fail(tide_kgroup_t *g, tide_err_t *err, const char *what, rd_kafka_resp_err_t e) {
  char et[256], last[512];
  tide_kafka_last_log(&g->log, last, sizeof last);
  return tide_err_set(err, -EIO, "consumer group: %s: %s%s%s", what, tide_kafka_errtext(e, et, sizeof et),
                      *last ? "; last log: " : "", last);
}

int tide_kgroup_new(const char *bootstrap, const char *group, const char *const *topics, size_t ntopics,
                    const char *const *keys, const char *const *values, size_t n, tide_kgroup_t **out,
                    tide_err_t *err) {
  if (!group || !*group) return tide_err_set(err, TIDE_EINVAL, "consumer group: the group id is empty");
  if (ntopics == 0) return tide_err_set(err, TIDE_EINVAL, "consumer group: no topic to subscribe to");
  tide_kgroup_t *g = calloc(1, sizeof *g);
  if (!g) return -ENOMEM;
  tide_kafka_log_init(&g->log);
  const char *own[] = {"group.id", group, "enable.auto.commit", "false", "enable.auto.offset.store", "false",
                       "isolation.level", "read_committed", "auto.offset.reset", "earliest",
                       "partition.assignment.strategy", "cooperative-sticky"};
  rd_kafka_conf_t *conf = NULL;
  int rc = tide_kafka_conf(bootstrap, NULL, NULL, 0, &g->log, &conf, err);
  for (size_t i = 0; !rc && i < sizeof own / sizeof *own; i += 2) rc = tide_kafka_conf_set(conf, own[i], own[i + 1], err);
  for (size_t i = 0; !rc && i < n; i++) rc = tide_kafka_conf_set(conf, keys[i], values[i], err);
  if (rc) {
    if (conf) rd_kafka_conf_destroy(conf);
    tide_kafka_log_free(&g->log);
    free(g);
    return rc;
  }
  rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_REBALANCE | RD_KAFKA_EVENT_FETCH | RD_KAFKA_EVENT_ERROR);
  if ((rc = tide_kafka_new(RD_KAFKA_CONSUMER, conf, &g->rk, err))) {
    tide_kafka_log_free(&g->log);
    free(g);
    return rc;
  }
  rd_kafka_poll_set_consumer(g->rk);
  g->q = rd_kafka_queue_get_consumer(g->rk);
  rd_kafka_topic_partition_list_t *sub = rd_kafka_topic_partition_list_new((int)ntopics);
  if (!g->q || !sub) rc = -ENOMEM;
  for (size_t i = 0; !rc && i < ntopics; i++) rd_kafka_topic_partition_list_add(sub, topics[i], RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t e = rc ? RD_KAFKA_RESP_ERR_NO_ERROR : rd_kafka_subscribe(g->rk, sub);
  if (sub) rd_kafka_topic_partition_list_destroy(sub);
  if (!rc && e) rc = fail(g, err, "subscribe", e);
  if (rc) {
    g->closed = 1; /* never joined: nothing to leave */
    tide_kgroup_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

static int is_revoked(tide_kgroup_t *g, const char *topic, int32_t partition) {
  return g->revoked && rd_kafka_topic_partition_list_find(g->revoked, topic, partition) != NULL;
}

void tide_kgroup_result_free(tide_kgroup_result_t *res) {
  for (size_t i = 0; i < res->n; i++) rd_kafka_event_destroy(res->raw[i]);
  free(res->raw);
  free(res->msgs);
  if (res->list) rd_kafka_topic_partition_list_destroy(res->list);
  memset(res, 0, sizeof *res);
}

/* A rebalance event: assign at once; keep a revocation for the release. */
static int rebalance(tide_kgroup_t *g, rd_kafka_event_t *ev, tide_kgroup_result_t *res, tide_err_t *err) {
  rd_kafka_resp_err_t what = rd_kafka_event_error(ev);
  const rd_kafka_topic_partition_list_t *parts = rd_kafka_event_topic_partition_list(ev);
  g->cooperative = strcmp(rd_kafka_rebalance_protocol(g->rk), "COOPERATIVE") == 0;
  res->list = rd_kafka_topic_partition_list_copy(parts);
  if (!res->list) return -ENOMEM;
  if (what == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    res->kind = TIDE_KGROUP_ASSIGN;
    g->assigned = 1;
    rd_kafka_error_t *ke = NULL;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (g->cooperative) ke = rd_kafka_incremental_assign(g->rk, parts);
    else e = rd_kafka_assign(g->rk, parts);
    if (ke) {
      e = rd_kafka_error_code(ke);
      rd_kafka_error_destroy(ke);
    }
    if (!e && g->paused) e = rd_kafka_pause_partitions(g->rk, res->list);
    return e ? fail(g, err, "assigning partitions", e) : 0;
  }
  res->kind = rd_kafka_assignment_lost(g->rk) ? TIDE_KGROUP_LOST : TIDE_KGROUP_REVOKE;
  if (!g->revoked) g->revoked = rd_kafka_topic_partition_list_new(parts->cnt);
  if (!g->revoked) return -ENOMEM;
  for (int i = 0; i < parts->cnt; i++)
    if (!is_revoked(g, parts->elems[i].topic, parts->elems[i].partition))
      rd_kafka_topic_partition_list_add(g->revoked, parts->elems[i].topic, parts->elems[i].partition);
  return 0;
}

int tide_kgroup_release(tide_kgroup_t *g, tide_err_t *err) {
  if (!g->revoked) return 0;
  rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (g->cooperative) {
    rd_kafka_error_t *ke = rd_kafka_incremental_unassign(g->rk, g->revoked);
    if (ke) {
      e = rd_kafka_error_code(ke);
      rd_kafka_error_destroy(ke);
    }
  } else {
    e = rd_kafka_assign(g->rk, NULL);
  }
  rd_kafka_topic_partition_list_destroy(g->revoked);
  g->revoked = NULL;
  return e ? fail(g, err, "giving back revoked partitions", e) : 0;
}

static int add_msg(tide_kgroup_result_t *res, size_t max, rd_kafka_event_t *ev, const rd_kafka_message_t *m) {
  if (!res->msgs) {
    res->msgs = calloc(max, sizeof *res->msgs);
    res->raw = calloc(max, sizeof *res->raw);
    if (!res->msgs || !res->raw) {
      rd_kafka_event_destroy(ev);
      return -ENOMEM;
    }
  }
  tide_kgroup_msg_t *o = &res->msgs[res->n];
  res->raw[res->n++] = ev;
  o->topic = rd_kafka_topic_name(m->rkt);
  o->partition = m->partition;
  o->offset = m->offset;
  rd_kafka_timestamp_type_t tt;
  o->timestamp = rd_kafka_message_timestamp(m, &tt);
  o->key = m->key;
  o->key_len = m->key ? m->key_len : 0;
  o->value = m->payload;
  o->value_len = m->payload ? m->len : 0;
  res->kind = TIDE_KGROUP_MESSAGES;
  return 0;
}

int tide_kgroup_poll(tide_kgroup_t *g, int timeout_ms, size_t max, tide_kgroup_result_t *res, tide_err_t *err) {
  memset(res, 0, sizeof *res);
  if (g->closed) return tide_err_set(err, TIDE_EINVAL, "consumer group: the member is closed");
  if (max == 0) max = 1;
  int rc = 0;
  while (!rc && res->n < max) {
    rd_kafka_event_t *ev = g->held;
    g->held = NULL;
    if (!ev) ev = rd_kafka_queue_poll(g->q, res->n ? 0 : timeout_ms);
    if (!ev) break;
    rd_kafka_event_type_t t = rd_kafka_event_type(ev);
    if (t == RD_KAFKA_EVENT_REBALANCE) {
      if (res->n) { /* messages first; the event ends this poll and starts the next */
        g->held = ev;
        break;
      }
      rc = rebalance(g, ev, res, err);
      rd_kafka_event_destroy(ev);
      break;
    }
    if (t == RD_KAFKA_EVENT_ERROR) {
      rd_kafka_resp_err_t e = rd_kafka_event_error(ev);
      int fatal = rd_kafka_event_error_is_fatal(ev);
      rd_kafka_event_destroy(ev);
      /* transport errors and the like: librdkafka retries them */
      if (fatal) rc = fail(g, err, "fatal error", e);
      continue;
    }
    if (t == RD_KAFKA_EVENT_FETCH) {
      /* a fetch event holds one message, which it owns: the result keeps
       * the event as long as it points into the message */
      const rd_kafka_message_t *m = rd_kafka_event_message_next(ev);
      if (m && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) m = NULL;
      if (m && m->err) {
        char what[300];
        snprintf(what, sizeof what, "reading %s [%d]", m->rkt ? rd_kafka_topic_name(m->rkt) : "?", (int)m->partition);
        rc = fail(g, err, what, m->err);
        m = NULL;
      }
      if (m && is_revoked(g, rd_kafka_topic_name(m->rkt), m->partition)) m = NULL;
      if (m) {
        rc = add_msg(res, max, ev, m);
        continue;
      }
    }
    rd_kafka_event_destroy(ev);
  }
  if (rc) tide_kgroup_result_free(res);
  return rc;
}

rd_kafka_topic_partition_list_t *tide_kgroup_assignment(tide_kgroup_t *g) {
  rd_kafka_topic_partition_list_t *l = NULL;
  if (rd_kafka_assignment(g->rk, &l)) return NULL;
  return l;
}

int tide_kgroup_metadata(tide_kgroup_t *g, void **buf, size_t *len) {
  rd_kafka_consumer_group_metadata_t *md = rd_kafka_consumer_group_metadata(g->rk);
  if (!md) return -ENOMEM;
  rd_kafka_error_t *e = rd_kafka_consumer_group_metadata_write(md, buf, len);
  rd_kafka_consumer_group_metadata_destroy(md);
  if (e) {
    rd_kafka_error_destroy(e);
    return -ENOMEM;
  }
  return 0;
}

void tide_kgroup_member_id(tide_kgroup_t *g, char *buf, size_t n) {
  char *id = rd_kafka_memberid(g->rk);
  snprintf(buf, n, "%s", id ? id : "");
  if (id) rd_kafka_mem_free(g->rk, id);
}

int tide_kgroup_commit(tide_kgroup_t *g, const rd_kafka_topic_partition_list_t *offsets, tide_err_t *err) {
  rd_kafka_resp_err_t e = rd_kafka_commit(g->rk, offsets, 0);
  return e ? fail(g, err, "committing offsets", e) : 0;
}

/* librdkafka 2.0.2 (Debian 12's) aborts in rd_kafka_destroy when a member
 * is destroyed between its JoinGroup answer (the assignor chosen) and its
 * first SyncGroup answer (the sticky assignor's state made):
 * rd_kafka_sticky_assignor_state_destroy asserts a state that does not
 * exist yet. A process stopped during its first rebalance (Ctrl-C, SIGTERM
 * right after a start) would die with SIGABRT. So a member that has a
 * member id (it was answered) but never got an assignment waits, bounded,
 * for that first assignment and takes it before it leaves; the assignment
 * event is queued after the state is made. Messages polled meanwhile are
 * dropped (the member is closing: it processes nothing more). */
static void settle_first_assignment(tide_kgroup_t *g) {
  char id[256];
  tide_kgroup_member_id(g, id, sizeof id);
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long waited = 0; !g->assigned && *id && waited < TIDE_KGROUP_SETTLE_MS;) {
    rd_kafka_event_t *ev = rd_kafka_queue_poll(g->q, 100);
    if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE) {
      tide_kgroup_result_t res;
      tide_err_t ignore = {0};
      memset(&res, 0, sizeof res);
      (void)rebalance(g, ev, &res, &ignore);
      tide_kgroup_result_free(&res);
    }
    if (ev) rd_kafka_event_destroy(ev);
    clock_gettime(CLOCK_MONOTONIC, &t);
    waited = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
  }
}

int tide_kgroup_close(tide_kgroup_t *g, tide_err_t *err) {
  if (g->closed) return 0;
  g->closed = 1;
  if (g->held) {
    /* a held rebalance event is one the caller never saw: an assignment in
     * it still counts as taken (settle_first_assignment) */
    if (rd_kafka_event_type(g->held) == RD_KAFKA_EVENT_REBALANCE &&
        rd_kafka_event_error(g->held) == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
      tide_kgroup_result_t res;
      tide_err_t ignore = {0};
      memset(&res, 0, sizeof res);
      (void)rebalance(g, g->held, &res, &ignore);
      tide_kgroup_result_free(&res);
    }
    rd_kafka_event_destroy(g->held);
  }
  g->held = NULL;
  settle_first_assignment(g);
  int rc = tide_kgroup_release(g, err);
  /* leave the group; close answers the revocation it causes itself */
  rd_kafka_resp_err_t e = rd_kafka_consumer_close(g->rk);
  if (e && !rc) rc = fail(g, err, "leaving the group", e);
  /* messages fetched ahead and never polled hold references that the
   * client's destruction would wait for */
  for (rd_kafka_event_t *ev; (ev = rd_kafka_queue_poll(g->q, 0));) rd_kafka_event_destroy(ev);
  return rc;
}

void tide_kgroup_free(tide_kgroup_t *g) {
  if (!g) return;
  tide_err_t ignore = {0};
  if (!g->closed) tide_kgroup_close(g, &ignore);
  if (g->held) rd_kafka_event_destroy(g->held);
  if (g->revoked) rd_kafka_topic_partition_list_destroy(g->revoked);
  if (g->q) rd_kafka_queue_destroy(g->q);
  rd_kafka_destroy(g->rk);
  tide_kafka_log_free(&g->log);
  free(g);
}

void tide_kgroup_pause_fetching(tide_kgroup_t *g) { g->paused = 1; }

int tide_kgroup_committed(tide_kgroup_t *g, rd_kafka_topic_partition_list_t *list, int timeout_ms, tide_err_t *err) {
  rd_kafka_resp_err_t e = rd_kafka_committed(g->rk, list, timeout_ms);
  for (int i = 0; !e && i < list->cnt; i++) e = list->elems[i].err;
  return e ? fail(g, err, "reading the committed offsets", e) : 0;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int add_record(tide_buf_t *out, const rd_kafka_message_t *m) {
  uint32_t kn = m->key ? (uint32_t)m->key_len : 0, vn = m->payload ? (uint32_t)m->len + 1 : 0;
  int rc = tide_buf_append(out, &kn, sizeof kn);
  if (!rc) rc = tide_buf_append(out, &vn, sizeof vn);
  if (!rc && kn) rc = tide_buf_append(out, m->key, kn);
  if (!rc && vn > 1) rc = tide_buf_append(out, m->payload, vn - 1);
  return rc;
}

int tide_kafka_read_log(const char *bootstrap, const char *topic, int32_t partition, const char *const *keys,
                        const char *const *values, size_t n, int timeout_ms, tide_buf_t *out, size_t *count,
                        tide_err_t *err) {
  tide_kafka_log_t log;
  tide_kafka_log_init(&log);
  *count = 0;
  /* a consumer that never joins a group (assign, no subscribe): the group
   * id is only librdkafka's requirement for assign */
  const char *own[] = {"group.id", "tide-changelog-restore", "enable.auto.commit", "false",
                       "isolation.level", "read_committed", "enable.partition.eof", "true"};
  rd_kafka_conf_t *conf = NULL;
  rd_kafka_t *rk = NULL;
  int rc = tide_kafka_conf(bootstrap, keys, values, n, &log, &conf, err);
  for (size_t i = 0; !rc && i < sizeof own / sizeof *own; i += 2) rc = tide_kafka_conf_set(conf, own[i], own[i + 1], err);
  if (!rc) rc = tide_kafka_new(RD_KAFKA_CONSUMER, conf, &rk, err);
  else if (conf) rd_kafka_conf_destroy(conf);
  if (rc) {
    tide_kafka_log_free(&log);
    return rc;
  }
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(l, topic, partition)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  char et[256];
  if (e) rc = tide_err_set(err, -EIO, "changelog '%s' partition %" PRId32 ": assign: %s", topic, partition,
                           tide_kafka_errtext(e, et, sizeof et));
  int64_t deadline = mono_ms() + timeout_ms;
  while (!rc) {
    if (mono_ms() > deadline) {
      rc = tide_err_set(err, -ETIMEDOUT, "changelog '%s' partition %" PRId32 ": not read to its end within %d ms",
                        topic, partition, timeout_ms);
      break;
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      rd_kafka_message_destroy(m);
      break;
    }
    if (m->err) {
      rc = tide_err_set(err, -EIO, "changelog '%s' partition %" PRId32 ": %s", topic, partition,
                        tide_kafka_errtext(m->err, et, sizeof et));
    } else if (add_record(out, m)) {
      rc = tide_err_set(err, -ENOMEM, "out of memory");
    } else {
      (*count)++;
    }
    rd_kafka_message_destroy(m);
  }
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  tide_kafka_log_free(&log);
  return rc;
}

int tide_kafka_create_topics(const char *bootstrap, const char *const *names, const int *partitions,
                             const int *compact, size_t n, const char *const *keys, const char *const *values,
                             size_t nkv, int timeout_ms, tide_err_t *err) {
  tide_kafka_log_t log;
  tide_kafka_log_init(&log);
  rd_kafka_conf_t *conf = NULL;
  rd_kafka_t *rk = NULL;
  int rc = tide_kafka_conf(bootstrap, keys, values, nkv, &log, &conf, err);
  if (!rc) rc = tide_kafka_new(RD_KAFKA_PRODUCER, conf, &rk, err);
  else if (conf) rd_kafka_conf_destroy(conf);
  if (rc) {
    tide_kafka_log_free(&log);
    return rc;
  }
  rd_kafka_NewTopic_t **nt = calloc(n ? n : 1, sizeof *nt);
  rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
  char why[256], et[256];
  if (!nt || !q) rc = tide_err_set(err, -ENOMEM, "out of memory");
  for (size_t i = 0; !rc && i < n; i++) {
    nt[i] = rd_kafka_NewTopic_new(names[i], partitions[i], -1, why, sizeof why);
    if (!nt[i]) rc = tide_err_set(err, TIDE_EINVAL, "topic '%s': %s", names[i], why);
    else if (compact[i]) rd_kafka_NewTopic_set_config(nt[i], "cleanup.policy", "compact");
  }
  if (!rc) {
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(o, timeout_ms, why, sizeof why);
    rd_kafka_CreateTopics(rk, nt, n, o, q);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
    if (!ev) {
      rc = tide_err_set(err, -ETIMEDOUT, "creating topics: no answer within %d ms", timeout_ms);
    } else if (rd_kafka_event_error(ev)) {
      rc = tide_err_set(err, -EIO, "creating topics: %s", rd_kafka_event_error_string(ev));
    } else {
      size_t cnt = 0;
      const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev),
                                                                               &cnt);
      for (size_t i = 0; !rc && i < cnt; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
        if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
          rc = tide_err_set(err, -EIO, "creating topic '%s': %s", rd_kafka_topic_result_name(res[i]),
                            tide_kafka_errtext(e, et, sizeof et));
      }
    }
    if (ev) rd_kafka_event_destroy(ev);
  }
  for (size_t i = 0; nt && i < n; i++)
    if (nt[i]) rd_kafka_NewTopic_destroy(nt[i]);
  free(nt);
  if (q) rd_kafka_queue_destroy(q);
  rd_kafka_destroy(rk);
  tide_kafka_log_free(&log);
  return rc;
}
