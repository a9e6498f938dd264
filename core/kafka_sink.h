/*
 * kafka_sink.h: the Kafka sink's C side, over librdkafka: a producer that
 * writes the rows of batches as messages, straight from the columns (no
 * Lua table per row), in one Kafka transaction per micro-batch
 * (exactly-once) or with the idempotent producer (at-least-once).
 *
 * A message, per row (tide_ksink_map_t says which columns):
 *   topic      the fixed topic, or a string column (a NULL or empty topic
 *              fails the batch naming the row)
 *   key        a column of b or of a batch aligned with b (an expression the
 *              Lua side evaluated): string -> its bytes, json -> its JSON
 *              text, int/timestamp -> decimal, double -> the shortest
 *              round-trip form, bool -> true/false; NULL -> no key
 *   value      the whole row as one compact JSON object (the core's encoder,
 *              jsonl.h, timestamps as ms) or a column, converted as the key;
 *              NULL -> a tombstone (no value)
 *   headers    a json column: an object {"name": "value", ...} or an array
 *              of {"key": name, "value": value} objects (duplicates allowed);
 *              a string value is its bytes, null no value, anything else its
 *              JSON text
 *   partition  an int column (NULL: the partitioner's choice), else the
 *              partitioner's (murmur2 of the key unless configured)
 *   timestamp  a timestamp column (NULL: the producer's clock)
 *
 * Exactly-once (docs/FORMAT.md, "Kafka sink progress"). The producer's
 * transactional.id is derived from the query id, so a restarted query
 * fences its predecessor and aborts its open transaction
 * (tide_ksink_recover). Batch N's messages and the committed offset of the
 * progress group on the progress partition (offset N + 1, metadata
 * "tide batch N") go in ONE transaction (send_offsets_to_transaction), so
 * the offset is visible exactly when the rows are. After a restart the
 * committed offset says which batch committed last, and a re-run batch at
 * or below it is skipped.
 *
 * Errors. Retriable broker errors are retried by librdkafka within
 * message.timeout.ms (the sink's timeout); transactional calls that fail
 * retriably are called again until the same deadline. A message that
 * cannot be delivered fails the batch with its topic, partition and the
 * broker's error, and the transaction is aborted. A message over
 * message.max.bytes fails the batch naming the row and the sizes.
 */
#ifndef TIDE_KAFKA_SINK_H
#define TIDE_KAFKA_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "err.h"

typedef struct tide_ksink tide_ksink_t;

typedef struct tide_ksink_conf {
  const char *const *kv; /* librdkafka settings: kv[2i] = kv[2i+1], applied after tide's own */
  size_t nkv;
  int exactly_once;      /* 1: transactions (txn_id and group required); 0: idempotent producer */
  const char *txn_id;    /* transactional.id */
  const char *group;     /* the progress group (its committed offset records the last batch), or NULL */
  int timeout_ms;        /* the bound for delivery and for each transactional step */
} tide_ksink_conf_t;

/* Make a producer with bootstrap servers and the settings of c. A setting
 * librdkafka refuses fails with its name and librdkafka's reason. */
int tide_ksink_new(const char *bootstrap, const tide_ksink_conf_t *c, tide_ksink_t **out, tide_err_t *err);
void tide_ksink_free(tide_ksink_t *s); /* NULL is allowed */

/* Exactly-once only: initialise transactions (fencing a predecessor with
 * the same transactional.id and aborting its open transaction), then read
 * the progress group's committed offset on (topic, partition): *last gets
 * the batch id it records, or -1 when there is none. */
int tide_ksink_recover(tide_ksink_t *s, const char *topic, int32_t partition, int64_t *last, tide_err_t *err);

/* Only the committed offset's batch id, as tide_ksink_recover reads it
 * (for tools and tests; it fences nothing). The group must be set. */
int tide_ksink_committed(tide_ksink_t *s, const char *topic, int32_t partition, int64_t *last, tide_err_t *err);

typedef struct tide_ksink_map {
  const char *topic;          /* the fixed topic, or NULL with topic_col */
  int topic_col;              /* a string column of b, or -1 */
  const tide_batch_t *kb;     /* the key's batch (b itself, or one aligned with it), or NULL */
  int key_col;                /* its column, or -1: no key */
  int value_col;              /* a column of b, or -1: the row as JSON */
  int headers_col;            /* a json column of b, or -1 */
  int partition_col;          /* an int column of b, or -1 */
  int timestamp_col;          /* a timestamp column of b, or -1 */
} tide_ksink_map_t;

/* Start batch: a transaction (exactly-once), or nothing. */
int tide_ksink_begin(tide_ksink_t *s, tide_err_t *err);

/* Queue the rows of b as messages (waiting for room in the producer's
 * queue up to the timeout). *n is increased by the rows queued. */
int tide_ksink_produce(tide_ksink_t *s, const tide_batch_t *b, const tide_ksink_map_t *m, uint64_t *n,
                       tide_err_t *err);

/* End the batch: exactly-once, record batch_id on the progress partition
 * (topic, partition) and commit the transaction; otherwise wait until every
 * message is delivered. Any failure aborts the transaction and names the
 * first message that failed (topic, partition, the broker's error). */
int tide_ksink_commit(tide_ksink_t *s, const char *topic, int32_t partition, int64_t batch_id, tide_err_t *err);

/* Drop the batch in progress: abort the transaction, or purge what is not
 * delivered yet. */
void tide_ksink_abort(tide_ksink_t *s);

/* Scale-out (issue 15; lua/tide/scaleout.lua): a process's one
 * transactional producer for all its tasks. init: initialise transactions
 * (fencing a predecessor with the same transactional.id). produce_raw: one
 * message of raw bytes (a changelog record; value NULL: a tombstone) to a
 * given partition. commit_offsets: the input offsets (topics[i],
 * partitions[i], offsets[i]: the next offset to read) of the consumer group
 * whose metadata (tide_kgroup_metadata's bytes) is md, then the commit, in
 * the open transaction; a refusal because this producer or this member was
 * fenced (a newer producer, or a group that no longer knows this member:
 * another process owns the tasks now) returns TIDE_EPOISONED with the
 * broker's error, a stale generation (a commit that raced a rebalance)
 * -EAGAIN; every failure aborts the transaction. */
int tide_ksink_init(tide_ksink_t *s, tide_err_t *err);
/* Ask the broker, once, for the partitions and leaders of topics that
 * this producer will write to: the first message to a topic the client has
 * no metadata for otherwise waits for its next topic scan (up to a second,
 * and a transaction's commit with it). A failure is no error: the client
 * then finds them itself. */
void tide_ksink_prepare(tide_ksink_t *s, const char *const *topics, size_t n);

int tide_ksink_produce_raw(tide_ksink_t *s, const char *topic, int32_t partition, const void *key, size_t klen,
                           const void *value, size_t vlen, tide_err_t *err);
int tide_ksink_commit_offsets(tide_ksink_t *s, const char *const *topics, const int32_t *partitions,
                              const int64_t *offsets, size_t n, const void *md, size_t mdlen, tide_err_t *err);

/* Messages delivered and failed since the producer was made. */
void tide_ksink_stats(const tide_ksink_t *s, uint64_t *delivered, uint64_t *failed);

#endif
