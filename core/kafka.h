/*
 * kafka.h: what the Kafka source and sink share over librdkafka (no Lua).
 *
 *   configuration  a librdkafka conf from `bootstrap` and the user's
 *                  key/value pairs, each error naming the key it is about;
 *                  bootstrap is checked first (host:port[,host:port])
 *   errors         one text for a broker error: "Broker: Offset out of
 *                  range (OFFSET_OUT_OF_RANGE)"
 *   logs           librdkafka's own log lines (from its threads) are kept,
 *                  not printed: the last warning or error is what a failure
 *                  message quotes (tide_kafka_last_log)
 *   metadata       the cluster's topics and their partition counts
 *   offsets        per partition the first offset held and the end offset
 *                  (the high watermark, or the last stable offset for a
 *                  read_committed client), the offsets for timestamps; one
 *                  ListOffsets request per leader for a whole list
 *
 * The source's fetch of exact offset ranges into batches is here too
 * (tide_kafka_reader_*): a consumer without a group (it assigns and seeks;
 * the offsets live in tide's offset log) that reads, per partition, the
 * messages of [start, stop) and builds a tide batch column by column.
 */
#ifndef TIDE_KAFKA_H
#define TIDE_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "decode.h"
#include "err.h"

/* ---- configuration ------------------------------------------------------- */

/* Check a bootstrap list: one or more host:port separated by commas, each
 * port 1..65535. 0, or TIDE_EINVAL with err naming the bad entry. */
int tide_kafka_check_bootstrap(const char *bootstrap, tide_err_t *err);

/* The log lines librdkafka writes from its threads, kept for messages. */
typedef struct tide_kafka_log {
  pthread_mutex_t mu;
  char last[512]; /* the last line at level warning or worse, "" when none */
} tide_kafka_log_t;

/* A new conf: bootstrap.servers = bootstrap, then keys[i] = values[i] for
 * i < n (the user's passthrough; later pairs override earlier ones), and
 * the log callback writing into log (which must outlive the client; may be
 * NULL). Returns 0 and sets *out, or TIDE_EINVAL with err "kafka option
 * 'KEY': reason" (librdkafka's reason: unknown key, invalid value). */
int tide_kafka_conf(const char *bootstrap, const char *const *keys, const char *const *values, size_t n,
                    tide_kafka_log_t *log, rd_kafka_conf_t **out, tide_err_t *err);

/* Set one more key on conf; TIDE_EINVAL with err as tide_kafka_conf. */
int tide_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, tide_err_t *err);

/* A client of `type` from conf (taken in every case). 0 and *out, or
 * TIDE_EINVAL with librdkafka's reason. */
int tide_kafka_new(rd_kafka_type_t type, rd_kafka_conf_t *conf, rd_kafka_t **out, tide_err_t *err);

void tide_kafka_log_init(tide_kafka_log_t *log);
void tide_kafka_log_free(tide_kafka_log_t *log);
/* Copy the last kept log line into buf (n bytes); "" when none. */
void tide_kafka_last_log(tide_kafka_log_t *log, char *buf, size_t n);

/* "Broker: Not leader for partition (NOT_LEADER_FOR_PARTITION)": the
 * error's description and its name, into buf; returns buf. */
const char *tide_kafka_errtext(rd_kafka_resp_err_t e, char *buf, size_t n);

/* ---- metadata ------------------------------------------------------------ */

typedef struct tide_kafka_topic_info {
  char *name;
  int32_t partitions; /* 0 when the broker reported an error for it */
  rd_kafka_resp_err_t err;
} tide_kafka_topic_info_t;

typedef struct tide_kafka_meta {
  tide_kafka_topic_info_t *topics; /* sorted by name; internal topics (__*) left out */
  size_t n;
} tide_kafka_meta_t;

/* The topics of the cluster (topic NULL: all of them; else that one, which
 * comes back with err UNKNOWN_TOPIC_OR_PART when absent). 0, -ENOMEM, or
 * -EIO with err "metadata: reason". */
int tide_kafka_metadata(rd_kafka_t *rk, const char *topic, int timeout_ms, tide_kafka_meta_t *out, tide_err_t *err);
void tide_kafka_meta_free(tide_kafka_meta_t *m);

/* ---- offsets ------------------------------------------------------------- */

/* For each element of list (topic, partition; offset holds the query: a
 * timestamp in ms, RD_KAFKA_OFFSET_BEGINNING or RD_KAFKA_OFFSET_END), the
 * answer in its offset (RD_KAFKA_OFFSET_END for a timestamp after every
 * message) and a per-partition error in its err. 0, or -EIO with err
 * "offsets: reason" when the request as a whole failed. */
int tide_kafka_list_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *list, int timeout_ms,
                            tide_err_t *err);

/* ---- the source's reader ------------------------------------------------- */

/* The rows of a Kafka source. RAW: the message columns (key, value, topic,
 * partition, offset, timestamp, timestamp_type, headers). DECODED: the
 * value decoded by the core's decoder into its schema, followed, when
 * metadata is set, by the message columns prefixed kafka_ (kafka_key,
 * kafka_topic, ... without kafka_value). */
#define TIDE_KAFKA_RAW_DDL                                                                                        \
  "key string?, value string?, topic string, partition int, offset int, timestamp timestamp?, "                  \
  "timestamp_type int, headers json?"
#define TIDE_KAFKA_META_DDL                                                                                       \
  "kafka_key string?, kafka_topic string, kafka_partition int, kafka_offset int, kafka_timestamp timestamp?, "   \
  "kafka_timestamp_type int, kafka_headers json?"

/* One partition's range of a fetch. */
typedef struct tide_kafka_range {
  const char *topic;
  int32_t partition;
  int64_t start, stop; /* [start, stop) */
  /* out: */
  int64_t lost_from, lost_to; /* offsets [lost_from, lost_to) no longer held (lost_to > lost_from), when the
                                 reader skips them (skip_lost) */
  uint64_t rows;
} tide_kafka_range_t;

/* A bad message set aside (bad = dead letter): where, why, the value. */
typedef struct tide_kafka_bad {
  char *topic;
  int32_t partition;
  int64_t offset;
  char *reason;
  char *text; /* the value's exact bytes (any, NUL-terminated as well) */
  size_t len; /* their length */
} tide_kafka_bad_t;

typedef struct tide_kafka_reader tide_kafka_reader_t;

typedef struct tide_kafka_reader_opts {
  tide_schema_t *schema;     /* DECODED: the value's schema; NULL: RAW rows */
  tide_format_t format;      /* DECODED: json or csv */
  tide_bad_policy_t bad;
  char sep;
  int json_flags;
  int metadata;              /* DECODED: add the kafka_ columns */
  int skip_lost;             /* fail_on_data_loss = false */
  int timeout_ms;            /* how long a fetch may wait for its offsets */
} tide_kafka_reader_opts_t;

/* A reader over two consumers of the same conf: rk fetches, ask asks for
 * metadata and offsets and commits (on a connection of its own, so that
 * no answer waits behind a fetch the broker holds up to fetch.wait.max.ms
 * at the end of a partition: brokers answer a connection's requests in
 * order), and the log their conf writes to. The reader takes all three
 * and frees them on close, also when it fails. 0 and *out, -ENOMEM,
 * TIDE_EINVAL with err. */
int tide_kafka_reader_open(rd_kafka_t *rk, rd_kafka_t *ask, tide_kafka_log_t *log, const tide_kafka_reader_opts_t *o,
                           tide_kafka_reader_t **out, tide_err_t *err);
void tide_kafka_reader_close(tide_kafka_reader_t *r); /* NULL is allowed */
/* The worker pool that decodes the values (core/pool.h; not owned; NULL:
 * decode on the calling thread). Set before each read: the pool may change
 * between reads. */
struct tide_pool;
void tide_kafka_reader_set_pool(tide_kafka_reader_t *r, struct tide_pool *pool);
/* The client for metadata, offsets and commits (owned by the reader). */
rd_kafka_t *tide_kafka_reader_client(tide_kafka_reader_t *r);
tide_kafka_log_t *tide_kafka_reader_log(tide_kafka_reader_t *r);
/* The schema of the reader's rows (owned by the reader). */
tide_schema_t *tide_kafka_reader_schema(tide_kafka_reader_t *r);

/* Read ranges[0..n) into batches: *out gets an array of *nout owned
 * batches (the caller frees them and the array). Bad records follow the
 * policy: counted in *dropped, or set aside in *bad (*nbad entries, freed
 * with tide_kafka_bad_free). A range whose offsets were deleted by
 * retention fails with TIDE_ENOTFOUND naming topic, partition and offsets,
 * unless skip_lost (its lost_from/lost_to say what was skipped). Other
 * failures: -EIO (a broker error, or the offsets did not all arrive within
 * timeout_ms: err names the partitions and the broker's last error),
 * TIDE_EPARSE/TIDE_ESCHEMA (a bad record under the fail policy: err names
 * topic, partition and offset), -ENOMEM. Nothing is returned on failure. */
int tide_kafka_read(tide_kafka_reader_t *r, tide_kafka_range_t *ranges, size_t n, tide_batch_t ***out, size_t *nout,
                    uint64_t *dropped, tide_kafka_bad_t **bad, size_t *nbad, tide_err_t *err);
void tide_kafka_bad_free(tide_kafka_bad_t *bad, size_t n);

/* Start fetching the ranges that a later tide_kafka_read will ask for
 * (partitions not fetching from their start yet are assigned there), so
 * that the messages are on their way while the offsets are logged. 0,
 * -ENOMEM, -EIO with err. */
int tide_kafka_prefetch(tide_kafka_reader_t *r, const tide_kafka_range_t *ranges, size_t n, tide_err_t *err);

/* Read ranges[0..n) ahead, on a thread of its own decoding with a worker
 * pool of `threads` threads of its own: the next tide_kafka_read of exactly
 * these ranges (same order) returns what it read; a read or prefetch of
 * any other ranges, another read ahead, and close stop it and drop it. A
 * read ahead that failed is dropped too: that read reads afresh and
 * reports its own error. 0, -ENOMEM, or an error starting the thread. */
int tide_kafka_read_ahead(tide_kafka_reader_t *r, const tide_kafka_range_t *ranges, size_t n, int threads,
                          tide_err_t *err);
/* How many reads ahead a read took, and how many were dropped. */
void tide_kafka_read_ahead_stats(const tide_kafka_reader_t *r, uint64_t *used, uint64_t *dropped);

#endif
