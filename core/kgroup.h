/*
 * kgroup.h: a member of a Kafka consumer group (no Lua), the ground of
 * scale-out (issue 15): every process of one application joins the group
 * `application_id`, the group's cooperative-sticky assignment gives each an
 * exclusive set of input partitions (its tasks), and moves them when a
 * process joins, leaves or its session times out.
 *
 * Rebalances come out of tide_kgroup_poll as events, in the caller's
 * thread, between messages, never from a librdkafka thread:
 *   ASSIGN  the partitions were added to the member's assignment already
 *           (consumption resumes from the group's committed offsets, or
 *           the earliest message when none); the caller opens their tasks
 *   REVOKE  the partitions are still assigned; the caller finishes their
 *           tasks (commits or aborts what they hold) and THEN calls
 *           tide_kgroup_release, which gives them back: librdkafka holds
 *           the rebalance until it does, so no other member reads them
 *           before this one is done with them (Kafka Streams commits in
 *           onPartitionsRevoked for the same reason)
 *   LOST    as REVOKE, but the partitions already belong to another member
 *           (this one's session timed out): the caller must abort what they
 *           hold, never commit it
 * Messages are never returned for a partition after its REVOKE or LOST
 * event (they are dropped until the release).
 */
#ifndef TIDE_KGROUP_H
#define TIDE_KGROUP_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "kafka.h"

typedef struct tide_kgroup tide_kgroup_t;

typedef enum { TIDE_KGROUP_NONE = 0, TIDE_KGROUP_MESSAGES, TIDE_KGROUP_ASSIGN, TIDE_KGROUP_REVOKE,
               TIDE_KGROUP_LOST } tide_kgroup_kind_t;

typedef struct tide_kgroup_msg {
  const char *topic; /* owned by the poll result */
  int32_t partition;
  int64_t offset, timestamp; /* timestamp: ms, -1 when none */
  const char *key, *value;   /* NULL when absent; not NUL-terminated */
  size_t key_len, value_len;
} tide_kgroup_msg_t;

/* What one poll returned: messages, or one rebalance event (its partitions
 * in list), or nothing in the time. Freed with tide_kgroup_result_free. */
typedef struct tide_kgroup_result {
  tide_kgroup_kind_t kind;
  tide_kgroup_msg_t *msgs;
  size_t n;
  rd_kafka_event_t **raw; /* the fetch events whose messages msgs point into */
  rd_kafka_topic_partition_list_t *list;
} tide_kgroup_result_t;

/* Join group `group` subscribed to topics[0..ntopics) (the subscription
 * takes effect at the first poll): auto-commit off, read_committed,
 * cooperative-sticky, auto.offset.reset earliest, then the user's
 * keys[i] = values[i]. 0 and *out, TIDE_EINVAL with err naming the bad
 * setting, -ENOMEM. */
int tide_kgroup_new(const char *bootstrap, const char *group, const char *const *topics, size_t ntopics,
                    const char *const *keys, const char *const *values, size_t n, tide_kgroup_t **out,
                    tide_err_t *err);

/* Up to max messages or one event, waiting up to timeout_ms for the first.
 * 0 (res->kind NONE when nothing came), -EIO with err on a consumer error
 * that ends the membership (fatal errors, an unknown topic). */
int tide_kgroup_poll(tide_kgroup_t *g, int timeout_ms, size_t max, tide_kgroup_result_t *res, tide_err_t *err);
void tide_kgroup_result_free(tide_kgroup_result_t *res);

/* Give back the partitions of the last REVOKE or LOST event (see above);
 * 0 or -EIO. Nothing to do when none is pending. */
int tide_kgroup_release(tide_kgroup_t *g, tide_err_t *err);

/* The member's current assignment (a new list; NULL on no memory). */
rd_kafka_topic_partition_list_t *tide_kgroup_assignment(tide_kgroup_t *g);

/* The group's metadata (group id, generation, member id) serialised for a
 * transactional producer's send_offsets_to_transaction (exactly_once_v2:
 * the coordinator refuses the offsets of a member of an older generation).
 * 0 and a malloc'd *buf of *len bytes, or -ENOMEM. */
int tide_kgroup_metadata(tide_kgroup_t *g, void **buf, size_t *len);

/* The member's id in the group ("" before it joined), into buf. */
void tide_kgroup_member_id(tide_kgroup_t *g, char *buf, size_t n);

/* Commit offsets (topic, partition, next offset to read) to the group,
 * synchronously: 0 or -EIO with err. */
int tide_kgroup_commit(tide_kgroup_t *g, const rd_kafka_topic_partition_list_t *offsets, tide_err_t *err);

/* Leave the group now (the remaining partitions are revoked, a pending
 * release done) so that its partitions move at once instead of after the
 * session timeout. 0 or -EIO with err; the member is closed either way. */
int tide_kgroup_close(tide_kgroup_t *g, tide_err_t *err);
void tide_kgroup_free(tide_kgroup_t *g); /* closes first when open; NULL allowed */

/* Membership only: the partitions of every later ASSIGN are paused at
 * once, so the member fetches no message (scale-out reads its tasks'
 * ranges with a reader of its own, core/kafka.h, which decodes them into
 * batches in C) and polls return events only. */
void tide_kgroup_pause_fetching(tide_kgroup_t *g);

/* The group's committed offsets (next offset to read, -1: none) of the
 * partitions of list, into list's offsets: 0 or -EIO with err. */
int tide_kgroup_committed(tide_kgroup_t *g, rd_kafka_topic_partition_list_t *list, int timeout_ms, tide_err_t *err);

/* Scale-out's changelog restore: every message of (topic, partition)
 * from its start to its end (read_committed: the last stable offset),
 * appended to out as records: u32 key length | u32 value length + 1 (0: a
 * tombstone) | key | value, host byte order, in offset order. keys/values:
 * the user's librdkafka settings. 0, or -EIO/-ETIMEDOUT with err. */
int tide_kafka_read_log(const char *bootstrap, const char *topic, int32_t partition, const char *const *keys,
                        const char *const *values, size_t n, int timeout_ms, tide_buf_t *out, size_t *count,
                        tide_err_t *err);

/* Create the topics names[0..n) with partitions[i] partitions each (and
 * cleanup.policy=compact where compact[i]); a topic that exists already is
 * fine. 0, or -EIO with err naming the topic and the broker's error. */
int tide_kafka_create_topics(const char *bootstrap, const char *const *names, const int *partitions,
                             const int *compact, size_t n, const char *const *keys, const char *const *values,
                             size_t nkv, int timeout_ms, tide_err_t *err);

#endif
