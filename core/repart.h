/*
 * repart.h: rows through a repartition topic (scale-out, issue 15).
 *
 * A stateful operator whose grouping keys are not how its input is
 * partitioned is preceded by an internal Kafka topic (lua/tide/topology.lua
 * splits the plan there): the upstream tasks write each row as one message
 * keyed by the row's grouping key, to partition murmur2(key) mod partitions
 * (Kafka's default partitioner, as the Java client computes it), and the
 * downstream task of that partition reads the rows back into batches. This
 * file is the codec; the producer and the consumer are the runtime's.
 *
 * Messages (docs/FORMAT.md, "Repartition topics"). Every key and value is
 * ASCII text, so that a reader of message columns (the Kafka source's, whose
 * key and value are UTF-8 strings) takes them as they are: a letter, the
 * version digit, then the base64 (RFC 4648, with padding) of a binary body,
 * all integers little-endian:
 *
 *   row value   'R' '1' base64( schema id | null bitmap | non-NULL values )
 *                                  u32       ceil(n/8) B   in field order
 *   key         'K' '1' base64( null bitmap | non-NULL values )
 *   marker      'W' '1' base64( upstream partition | watermark (ms) )
 *                                      i32                 i64
 *   row block   'B' '1' base64( schema id | row count | rows )
 *                                  u32         u32
 *               each row: u32 length | null bitmap | non-NULL values
 *               (no key: the writer chose the partition, by each row's
 *               key as above; the scale-out runtime writes these)
 *
 *   values: int, timestamp  8 bytes (two's complement)
 *           double          8 bytes (IEEE-754 bits, exactly; in a key
 *                           every NaN is one NaN and -0.0 is 0.0, as the
 *                           grouping compares them)
 *           bool            1 byte, 0 or 1
 *           string, json    u32 length, then the bytes
 *   bitmap: bit i (LSB first) set = field i is NULL.
 *   schema id: CRC-32C of the schema's DDL text (tide_schema_to_ddl): a
 *   reader refuses a row written for another schema.
 *
 * Every decoding failure is TIDE_ECORRUPT (or TIDE_EFORMAT for an unknown
 * version) with a message saying what is wrong; the reader's output batch
 * is left as it was (the row is aborted), never half-written.
 */
#ifndef TIDE_REPART_H
#define TIDE_REPART_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "buf.h"
#include "err.h"
#include "schema.h"

#define TIDE_REPART_ROW 'R'
#define TIDE_REPART_BLOCK 'B'
#define TIDE_REPART_KEY 'K'
#define TIDE_REPART_MARK 'W'
#define TIDE_REPART_VERSION '1'
#define TIDE_REPART_MARK_LEN 18 /* 'W' '1' and 16 base64 characters of 12 bytes */

/* The header name a marker also carries (for people reading the topic
 * with kcat; the reader goes by the value). */
#define TIDE_REPART_MARK_HEADER "tide-watermark"

/* Kafka's murmur2 (seed 0x9747b28c) of p[0..n), as the Java client's
 * Utils.murmur2 and librdkafka's murmur2 partitioner compute it. */
uint32_t tide_repart_murmur2(const void *p, size_t n);

/* The default partitioner's choice for a key: (murmur2 & 0x7fffffff) mod
 * partitions (partitions >= 1). */
int32_t tide_repart_partition(const void *key, size_t n, int32_t partitions);

/* The schema id of s (above) into *id: 0 or -ENOMEM. */
int tide_repart_schema_id(const tide_schema_t *s, uint32_t *id);

/* The schema of a messages batch: `partition int, key string?, value
 * string?, headers json?` (a new reference, or NULL when out of memory).
 * Its key and value hold the ASCII texts above. */
tide_schema_t *tide_repart_messages_schema(void);

/* One message per row of b: value = the row (schema id sid, from
 * tide_repart_schema_id(b->schema)), key = row r of kb (the grouping key's
 * columns, kb->nrows == b->nrows) or, when kb is NULL, the constant key of
 * no columns; partition from the key. *out is a new messages batch.
 * 0, -ENOMEM, TIDE_EINVAL (partitions < 1, rows that do not align),
 * TIDE_ETOOBIG (a batch over the size limits), each with err. */
int tide_repart_encode(const tide_batch_t *b, const tide_batch_t *kb, int32_t partitions, tide_batch_t **out,
                       tide_err_t *err);

/* The rows of b as row blocks: each row goes to the partition of its key
 * (as tide_repart_encode chooses it: row r of kb, or the constant key when
 * kb is NULL), and the rows of one partition are packed, in row order, into
 * messages whose binary body stays under about max_bytes (a row larger than
 * that gets a message of its own). *out is a new messages batch (no key,
 * no headers). Far fewer messages than one per row:
 * what the producer, the broker and the consumer pay per message is paid
 * per block. Errors as tide_repart_encode. */
int tide_repart_encode_blocks(const tide_batch_t *b, const tide_batch_t *kb, int32_t partitions, size_t max_bytes,
                              tide_batch_t **out, tide_err_t *err);

/* The watermark markers of one upstream partition: one message per
 * partition of the topic (no key; the marker value; the header
 * TIDE_REPART_MARK_HEADER = "<upstream>:<ms>"). *out is a new messages
 * batch. 0, -ENOMEM, TIDE_EINVAL with err. */
int tide_repart_markers(int32_t partitions, int32_t upstream, int64_t ms, tide_batch_t **out, tide_err_t *err);

/* Decode one message's value p[0..n) (p may be NULL when the message has
 * no value): a row (or a row block's rows) of out's schema (schema id sid)
 * is appended to out and 0 returned, or a marker is read into *upstream and *ms and 1 returned,
 * or TIDE_ECORRUPT / TIDE_EFORMAT / -ENOMEM / TIDE_ETOOBIG with err (out
 * unchanged: none of a bad block's rows stays). out must be an owned batch (tide_batch_new); tmp is the
 * caller's buffer for the binary body, reused from message to message
 * (free it when done). */
int tide_repart_decode(tide_batch_t *out, uint32_t sid, const char *p, size_t n, tide_buf_t *tmp, int32_t *upstream,
                       int64_t *ms, tide_err_t *err);

#endif
