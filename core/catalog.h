/*
 * catalog.h: the store's catalog in LMDB, the source of truth for what a
 * topic holds.
 *
 * Named databases (keys big-endian so that LMDB's byte order is numeric
 * order; values little-endian records starting with a record version):
 *
 *   meta      "format" -> u32 catalog format (TIDE_CATALOG_VERSION)
 *             "store_id" -> 32 hex digits naming this store (its cold
 *             tier lives under <cold dir>/<store id>)
 *             "next_topic_id" -> u32
 *   topics    topic name -> tide_topic_rec_t
 *   topic_ids topic id (u32 BE) -> topic name
 *   schemas   topic id (u32 BE) . version (u32 BE) -> tide_schema_encode bytes
 *   segs      topic id (u32 BE) . partition (u32 BE) . base offset (u64 BE)
 *             -> tide_seg_rec_t
 *   writers   topic id (u32 BE) . writer id (1..TIDE_WRITER_MAX bytes)
 *             -> tide_writer_rec_t: the last sequence number an idempotent
 *             writer committed to the topic. It is put in the same write
 *             transaction as the segment records of that append, so the
 *             data and the record of having written it never disagree.
 *
 * A partition's earliest offset is its first segment's base, its end the last
 * segment's end; a partition without segments is empty at 0. Record layouts
 * are in docs/FORMAT.md.
 *
 * All functions take an open transaction; none begins or ends one, except
 * tide_catalog_begin, which also keeps the map large enough: before a write
 * transaction it doubles the map when more than half of it is used, so
 * MDB_MAP_FULL is not met in practice; and it adopts a map grown by another
 * process (MDB_MAP_RESIZED).
 */
#ifndef TIDE_CATALOG_H
#define TIDE_CATALOG_H

#include <lmdb.h>
#include <stdint.h>

#include "err.h"
#include "schema.h"

#define TIDE_CATALOG_VERSION 1u

typedef struct tide_catalog {
  MDB_env *env;
  MDB_dbi meta, topics, topic_ids, schemas, segs, writers;
  int sync;
  char store_id[33]; /* 32 hex digits, made when the catalog is created */
} tide_catalog_t;

enum { TIDE_TOPIC_SCHEMALESS = 1, TIDE_TOPIC_IGNORE_UNKNOWN = 2 };

typedef struct tide_topic_rec {
  uint32_t id;
  uint32_t partitions;
  int64_t retention_ms, retention_bytes, segment_bytes, segment_ms;
  int32_t time_col;        /* -1: none */
  uint32_t flags;          /* TIDE_TOPIC_* */
  uint32_t schema_version; /* latest */
  uint32_t compat;
  int64_t created_ms;
  uint64_t rr;             /* round-robin counter of unkeyed appends */
} tide_topic_rec_t;

typedef struct tide_seg_rec {
  uint64_t base, end;
  int64_t min_ts, max_ts;  /* INT64_MIN when the segment has no time yet */
  uint64_t bytes;          /* committed size of the hot file */
  uint64_t stored_bytes;   /* size in the cold tier when offloaded */
  uint32_t state;          /* TIDE_SEG_* of store.h */
  int64_t created_ms, last_write_ms;
} tide_seg_rec_t;

/* The last sequence an idempotent writer committed (see `writers`). */
typedef struct tide_writer_rec {
  uint64_t seq;
  int64_t updated_ms; /* when that append committed */
} tide_writer_rec_t;

#define TIDE_WRITER_MAX 255 /* bytes of a writer id; keys stay far below LMDB's 511 */

int tide_catalog_open(const char *dir, int sync, uint64_t map_size, tide_catalog_t **out, tide_err_t *err);
void tide_catalog_close(tide_catalog_t *c);
/* Begin a transaction (write = 1 for a write transaction). */
int tide_catalog_begin(tide_catalog_t *c, int write, MDB_txn **txn);

int tide_catalog_topic_get(MDB_txn *txn, tide_catalog_t *c, const char *name, tide_topic_rec_t *r);
int tide_catalog_topic_put(MDB_txn *txn, tide_catalog_t *c, const char *name, const tide_topic_rec_t *r);
int tide_catalog_topic_del(MDB_txn *txn, tide_catalog_t *c, const char *name, uint32_t id);
/* 1 when a topic with this id exists, 0 when not, <0 on error. */
int tide_catalog_topic_id_exists(MDB_txn *txn, tide_catalog_t *c, uint32_t id);
int tide_catalog_next_topic_id(MDB_txn *txn, tide_catalog_t *c, uint32_t *id);
/* Names in order: one malloc'd block holding the array and the strings. */
int tide_catalog_topic_names(MDB_txn *txn, tide_catalog_t *c, char ***names, size_t *n);

int tide_catalog_schema_put(MDB_txn *txn, tide_catalog_t *c, uint32_t id, uint32_t version,
                            const tide_schema_t *s);
/* A new schema (one reference) or MDB_NOTFOUND. */
int tide_catalog_schema_get(MDB_txn *txn, tide_catalog_t *c, uint32_t id, uint32_t version,
                            tide_schema_t **s, tide_err_t *err);

int tide_catalog_seg_put(MDB_txn *txn, tide_catalog_t *c, uint32_t id, uint32_t part, const tide_seg_rec_t *r);
int tide_catalog_seg_del(MDB_txn *txn, tide_catalog_t *c, uint32_t id, uint32_t part, uint64_t base);
/* A partition's segments in offset order: *segs malloc'd (NULL when none). */
int tide_catalog_segs(MDB_txn *txn, tide_catalog_t *c, uint32_t id, uint32_t part, tide_seg_rec_t **segs,
                      size_t *n);
/* The last segment of a partition, or MDB_NOTFOUND. */
int tide_catalog_seg_last(MDB_txn *txn, tide_catalog_t *c, uint32_t id, uint32_t part, tide_seg_rec_t *r);
/* A writer's record, or MDB_NOTFOUND. */
int tide_catalog_writer_get(MDB_txn *txn, tide_catalog_t *c, uint32_t id, const char *writer, size_t len,
                            tide_writer_rec_t *r);
int tide_catalog_writer_put(MDB_txn *txn, tide_catalog_t *c, uint32_t id, const char *writer, size_t len,
                            const tide_writer_rec_t *r);
/* Delete every record of topic id (segments, schemas, writers). */
int tide_catalog_purge(MDB_txn *txn, tide_catalog_t *c, uint32_t id);

#endif
