/*
 * tide-kafka-txclient: a Kafka client for the test broker's specs
 * (spec/kafka_broker_spec.lua), for what kcat cannot do: a transactional
 * producer that a test steps through (begin, produce, send offsets,
 * commit or abort, a second instance fencing the first), committed group
 * offsets, and the admin requests (CreateTopics, CreatePartitions,
 * DeleteRecords).
 *
 *   usage: tide-kafka-txclient BOOTSTRAP [TRANSACTIONAL_ID] [KEY=VALUE ...]
 *
 * KEY=VALUE pairs are librdkafka producer settings. The first line on
 * stdout is `ok ready`; then one command a line on stdin, one answer a
 * line on stdout: `ok [...]` or `error <ERROR_NAME>[ fatal| abortable]: <message>`
 * (fatal: the producer is unusable, e.g. fenced; abortable: the transaction
 * can only be aborted).
 *
 *   init                         init_transactions (needs TRANSACTIONAL_ID)
 *   begin | commit | abort       the transaction
 *   produce TOPIC PARTITION KEY VALUE...   one message, waits for it:
 *                                `ok <partition> <offset>`; PARTITION -1
 *                                lets the partitioner choose
 *   produce_at TOPIC PARTITION TIMESTAMP_MS KEY VALUE...   the same, with that timestamp
 *   produce_n TOPIC PARTITION N PREFIX     N messages PREFIX-0 .. PREFIX-(N-1)
 *   send_offsets GROUP TOPIC PARTITION OFFSET [METADATA]
 *                                send_offsets_to_transaction, with the group
 *                                metadata kept by `join` when GROUP is the
 *                                joined group (else none: member "",
 *                                generation -1)
 *   join GROUP TOPIC [KEY=VALUE ...]  a consumer of this process joins GROUP
 *                                subscribed to TOPIC (KEY=VALUE: its
 *                                librdkafka settings), polled by a thread of
 *                                its own; waits for its first assignment and
 *                                keeps its group metadata (member id,
 *                                generation): `ok <member id> <partition>...`
 *   group_metadata               keep the consumer's current group metadata
 *                                (a member that is not refreshed is the
 *                                zombie of the specs): `ok <member id>`
 *   assignment                   `ok <rebalances> <partition>...`: how many
 *                                assignments it got, the current one
 *   leave                        close the consumer (LeaveGroup)
 *   committed GROUP TOPIC PARTITION        `ok <offset> [<metadata>]`
 *                                (offset -1001: none)
 *   commit_offset GROUP TOPIC PARTITION OFFSET  OffsetCommit by a consumer outside
 *                                group management (no member, generation -1)
 *   group_commit TOPIC PARTITION OFFSET    OffsetCommit by the `join`ed member
 *   create_topic TOPIC PARTITIONS [REPLICAS]  CreateTopics
 *   create_partitions TOPIC TOTAL            CreatePartitions
 *   delete_records TOPIC PARTITION OFFSET    DeleteRecords: `ok <low watermark>`
 *   pid | quit
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <time.h>

#include "rdkafka.h"

#include "lines.h"

#define TIMEOUT_MS 30000

static rd_kafka_t *rk;
static const char *bootstrap;
static rd_kafka_resp_err_t last_dr_err;
static int32_t last_dr_partition;
static int64_t last_dr_offset;

/* The consumer of `join`: polled by its own thread (rebalances are served
 * in rd_kafka_consumer_poll()); the rest under `group.lock`. */
static struct {
        rd_kafka_t *rk;
        char *id;                                 /* group.id */
        rd_kafka_consumer_group_metadata_t *cgmd; /* as of join / group_metadata */
        pthread_t thread;
        pthread_mutex_t lock;
        int stop;
        int rebalances; /* assignments received */
        char assigned[1024];
} group = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* An rd_kafka_error_t as an answer line; destroys it. */
static void reply_error(rd_kafka_error_t *error) {
        reply("error %s%s: %s", rd_kafka_error_name(error),
              rd_kafka_error_is_fatal(error)             ? " fatal"
              : rd_kafka_error_txn_requires_abort(error) ? " abortable"
                                                         : "",
              rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
}

static void reply_err(rd_kafka_resp_err_t err, const char *what) {
        reply("error %s: %s: %s", rd_kafka_err2name(err), what, rd_kafka_err2str(err));
}

static void dr_cb(rd_kafka_t *k, const rd_kafka_message_t *m, void *opaque) {
        last_dr_err       = m->err;
        last_dr_partition = m->partition;
        last_dr_offset    = m->offset;
}

static int parse_i64(const char *s, int64_t *out) {
        char *end;
        errno = 0;
        *out  = strtoll(s, &end, 10);
        return (!*s || *end || errno) ? -1 : 0;
}

/* Produce one message and wait for its delivery report. */
static int produce_one(const char *topic, int32_t partition, int64_t ts, const char *key,
                       const char *value) {
        rd_kafka_resp_err_t err;
        last_dr_err = RD_KAFKA_RESP_ERR__IN_PROGRESS;
        err         = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                        RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_KEY(key, strlen(key)),
                                        RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err) {
                reply_err(err, "produce");
                return -1;
        }
        rd_kafka_flush(rk, TIMEOUT_MS);
        if (last_dr_err) {
                if (last_dr_err == RD_KAFKA_RESP_ERR__IN_PROGRESS)
                        reply("error _TIMED_OUT: produce: no delivery report in %d ms", TIMEOUT_MS);
                else
                        reply_err(last_dr_err, "delivery");
                return -1;
        }
        return 0;
}

/* An admin request's single result: its error, or 0. */
static rd_kafka_event_t *admin_wait(rd_kafka_queue_t *q) {
        rd_kafka_event_t *ev = rd_kafka_queue_poll(q, TIMEOUT_MS + 5000);
        return ev;
}

/* Serve the rebalance: (incrementally) assign or revoke, and remember the
 * partitions it holds. */
static void rebalance_cb(rd_kafka_t *c, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *parts,
                         void *opaque) {
        int cooperative = !strcmp(rd_kafka_rebalance_protocol(c), "COOPERATIVE");
        rd_kafka_topic_partition_list_t *now = NULL;
        size_t len = 0;
        int i;

        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
                if (cooperative)
                        rd_kafka_error_destroy(rd_kafka_incremental_assign(c, parts));
                else
                        rd_kafka_assign(c, parts);
        } else if (cooperative) {
                rd_kafka_error_destroy(rd_kafka_incremental_unassign(c, parts));
        } else {
                rd_kafka_assign(c, NULL);
        }
        rd_kafka_assignment(c, &now);
        pthread_mutex_lock(&group.lock);
        if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
                group.rebalances++;
        group.assigned[0] = '\0';
        for (i = 0; now && i < now->cnt && len < sizeof(group.assigned) - 16; i++)
                len += (size_t)snprintf(group.assigned + len, sizeof(group.assigned) - len, " %" PRId32,
                                        now->elems[i].partition);
        pthread_mutex_unlock(&group.lock);
        if (now)
                rd_kafka_topic_partition_list_destroy(now);
}

static void *group_poll(void *arg) {
        for (;;) {
                rd_kafka_message_t *m;
                pthread_mutex_lock(&group.lock);
                if (group.stop) {
                        pthread_mutex_unlock(&group.lock);
                        return NULL;
                }
                pthread_mutex_unlock(&group.lock);
                if ((m = rd_kafka_consumer_poll(group.rk, 100)))
                        rd_kafka_message_destroy(m); /* records and errors alike */
        }
}

static void group_close(void) {
        if (!group.rk)
                return;
        pthread_mutex_lock(&group.lock);
        group.stop = 1;
        pthread_mutex_unlock(&group.lock);
        pthread_join(group.thread, NULL);
        rd_kafka_consumer_close(group.rk);
        rd_kafka_destroy(group.rk);
        if (group.cgmd)
                rd_kafka_consumer_group_metadata_destroy(group.cgmd);
        free(group.id);
        group.rk         = NULL;
        group.cgmd       = NULL;
        group.id         = NULL;
        group.stop       = 0;
        group.rebalances = 0;
        group.assigned[0] = '\0';
}

static void cmd_join(int argc, char **argv) {
        char errstr[512];
        rd_kafka_conf_t *conf;
        rd_kafka_topic_partition_list_t *topics;
        rd_kafka_resp_err_t err;
        char *member;
        int i, waited;

        if (group.rk)
                return reply("error _STATE: join: already in group %s (leave first)", group.id);
        conf = rd_kafka_conf_new();
        rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "group.id", argv[1], errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", errstr, sizeof(errstr)))
                goto bad;
        for (i = 3; i < argc; i++) {
                char *eq = strchr(argv[i], '=');
                if (!eq) {
                        snprintf(errstr, sizeof(errstr), "'%s' is not KEY=VALUE", argv[i]);
                        goto bad;
                }
                *eq = '\0';
                if (rd_kafka_conf_set(conf, argv[i], eq + 1, errstr, sizeof(errstr)))
                        goto bad;
        }
        if (!(group.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)))) {
                reply("error _INVALID_ARG: join: %s", errstr);
                return;
        }
        rd_kafka_poll_set_consumer(group.rk);
        group.id = strdup(argv[1]);
        topics   = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(topics, argv[2], RD_KAFKA_PARTITION_UA);
        err = rd_kafka_subscribe(group.rk, topics);
        rd_kafka_topic_partition_list_destroy(topics);
        if (err) {
                reply_err(err, "join");
                rd_kafka_destroy(group.rk); /* no thread yet */
                free(group.id);
                group.rk = NULL, group.id = NULL;
                return;
        }
        pthread_create(&group.thread, NULL, group_poll, NULL);
        for (waited = 0; waited < TIMEOUT_MS; waited += 50) {
                int n;
                pthread_mutex_lock(&group.lock);
                n = group.rebalances;
                pthread_mutex_unlock(&group.lock);
                if (n > 0)
                        break;
                nanosleep(&(struct timespec){ 0, 50 * 1000 * 1000 }, NULL);
        }
        if (waited >= TIMEOUT_MS)
                return reply("error _TIMED_OUT: join: no assignment in %d ms", TIMEOUT_MS);
        group.cgmd = rd_kafka_consumer_group_metadata(group.rk);
        member     = rd_kafka_memberid(group.rk);
        pthread_mutex_lock(&group.lock);
        reply("ok %s%s", member ? member : "", group.assigned);
        pthread_mutex_unlock(&group.lock);
        rd_kafka_mem_free(group.rk, member);
        return;
bad:
        reply("error _INVALID_ARG: join: %s", errstr);
        rd_kafka_conf_destroy(conf);
}

/* committed GROUP TOPIC PARTITION, or commit_offset GROUP TOPIC PARTITION OFFSET:
 * a consumer of GROUP outside group management (no member id, generation
 * -1) reads or commits (OffsetCommit) the group's offset. */
static void cmd_committed(int argc, char **argv) {
        char errstr[512];
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_t *c;
        rd_kafka_topic_partition_list_t *parts;
        rd_kafka_topic_partition_t *p;
        rd_kafka_resp_err_t err;
        int64_t partition, offset = 0;

        if (parse_i64(argv[3], &partition) || (argc == 5 && parse_i64(argv[4], &offset))) {
                reply("error _INVALID_ARG: %s: bad partition or offset", argv[0]);
                rd_kafka_conf_destroy(conf);
                return;
        }
        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)) ||
            rd_kafka_conf_set(conf, "group.id", argv[1], errstr, sizeof(errstr)) ||
            !(c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)))) {
                reply("error _INVALID_ARG: %s: %s", argv[0], errstr);
                return;
        }
        parts = rd_kafka_topic_partition_list_new(1);
        p     = rd_kafka_topic_partition_list_add(parts, argv[2], (int32_t)partition);
        if (argc == 5) {
                p->offset = offset;
                err       = rd_kafka_commit(c, parts, 0 /* wait */);
        } else
                err = rd_kafka_committed(c, parts, TIMEOUT_MS);
        if (!err)
                err = p->err;
        if (err)
                reply_err(err, argv[0]);
        else if (argc == 5)
                reply("ok");
        else if (p->metadata_size > 0)
                reply("ok %" PRId64 " %.*s", p->offset, (int)p->metadata_size, (const char *)p->metadata);
        else
                reply("ok %" PRId64, p->offset);
        rd_kafka_topic_partition_list_destroy(parts);
        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
}

static void cmd_admin(int argc, char **argv) {
        rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
        rd_kafka_AdminOptions_t *opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ANY);
        rd_kafka_event_t *ev = NULL;
        char errstr[512];
        int64_t a, b = -1;

        rd_kafka_AdminOptions_set_request_timeout(opts, TIMEOUT_MS, errstr, sizeof(errstr));
        if (parse_i64(argv[2], &a) || (argc > 3 && parse_i64(argv[3], &b))) {
                reply("error _INVALID_ARG: %s: bad number", argv[0]);
                goto done;
        }

        if (!strcmp(argv[0], "create_topic")) {
                rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(argv[1], (int)a, (int)b, errstr, sizeof(errstr));
                const rd_kafka_topic_result_t **res;
                size_t cnt;
                if (!nt) {
                        reply("error _INVALID_ARG: create_topic: %s", errstr);
                        goto done;
                }
                rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
                rd_kafka_NewTopic_destroy(nt);
                if (!(ev = admin_wait(q)) || rd_kafka_event_error(ev)) {
                        reply("error %s: create_topic: %s", ev ? rd_kafka_err2name(rd_kafka_event_error(ev)) : "_TIMED_OUT",
                              ev ? rd_kafka_event_error_string(ev) : "no answer");
                        goto done;
                }
                res = rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &cnt);
                if (cnt != 1)
                        reply("error _FAIL: create_topic: %zu results", cnt);
                else if (rd_kafka_topic_result_error(res[0]))
                        reply("error %s: create_topic: %s", rd_kafka_err2name(rd_kafka_topic_result_error(res[0])),
                              rd_kafka_topic_result_error_string(res[0]));
                else
                        reply("ok");

        } else if (!strcmp(argv[0], "create_partitions")) {
                rd_kafka_NewPartitions_t *np = rd_kafka_NewPartitions_new(argv[1], (size_t)a, errstr, sizeof(errstr));
                const rd_kafka_topic_result_t **res;
                size_t cnt;
                if (!np) {
                        reply("error _INVALID_ARG: create_partitions: %s", errstr);
                        goto done;
                }
                rd_kafka_CreatePartitions(rk, &np, 1, opts, q);
                rd_kafka_NewPartitions_destroy(np);
                if (!(ev = admin_wait(q)) || rd_kafka_event_error(ev)) {
                        reply("error %s: create_partitions: %s",
                              ev ? rd_kafka_err2name(rd_kafka_event_error(ev)) : "_TIMED_OUT",
                              ev ? rd_kafka_event_error_string(ev) : "no answer");
                        goto done;
                }
                res = rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &cnt);
                if (cnt != 1)
                        reply("error _FAIL: create_partitions: %zu results", cnt);
                else if (rd_kafka_topic_result_error(res[0]))
                        reply("error %s: create_partitions: %s",
                              rd_kafka_err2name(rd_kafka_topic_result_error(res[0])),
                              rd_kafka_topic_result_error_string(res[0]));
                else
                        reply("ok");

        } else { /* delete_records */
                rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
                rd_kafka_DeleteRecords_t *dr;
                const rd_kafka_topic_partition_list_t *out;
                rd_kafka_topic_partition_list_add(parts, argv[1], (int32_t)a)->offset = b;
                dr = rd_kafka_DeleteRecords_new(parts);
                rd_kafka_topic_partition_list_destroy(parts);
                rd_kafka_DeleteRecords(rk, &dr, 1, opts, q);
                rd_kafka_DeleteRecords_destroy(dr);
                if (!(ev = admin_wait(q)) || rd_kafka_event_error(ev)) {
                        reply("error %s: delete_records: %s",
                              ev ? rd_kafka_err2name(rd_kafka_event_error(ev)) : "_TIMED_OUT",
                              ev ? rd_kafka_event_error_string(ev) : "no answer");
                        goto done;
                }
                out = rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
                if (!out || out->cnt != 1)
                        reply("error _FAIL: delete_records: no result");
                else if (out->elems[0].err)
                        reply_err(out->elems[0].err, "delete_records");
                else
                        reply("ok %" PRId64, out->elems[0].offset);
        }
done:
        if (ev)
                rd_kafka_event_destroy(ev);
        rd_kafka_AdminOptions_destroy(opts);
        rd_kafka_queue_destroy(q);
}

static void command(int argc, char **argv) {
        const char *c = argv[0];
        rd_kafka_error_t *error;
        int64_t partition, n, offset;

        if (!strcmp(c, "init") && argc == 1) {
                if ((error = rd_kafka_init_transactions(rk, TIMEOUT_MS)))
                        return reply_error(error);
                reply("ok");
        } else if (!strcmp(c, "begin") && argc == 1) {
                if ((error = rd_kafka_begin_transaction(rk)))
                        return reply_error(error);
                reply("ok");
        } else if (!strcmp(c, "commit") && argc == 1) {
                if ((error = rd_kafka_commit_transaction(rk, TIMEOUT_MS)))
                        return reply_error(error);
                reply("ok");
        } else if (!strcmp(c, "abort") && argc == 1) {
                if ((error = rd_kafka_abort_transaction(rk, TIMEOUT_MS)))
                        return reply_error(error);
                reply("ok");
        } else if ((!strcmp(c, "produce") && argc >= 5) || (!strcmp(c, "produce_at") && argc >= 6)) {
                /* The value is the rest of the line's words, joined by one space. */
                int at           = c[7] == '_';
                int64_t ts       = 0;
                char value[4096] = "";
                size_t len       = 0;
                int i;
                if (parse_i64(argv[2], &partition) || (at && (parse_i64(argv[3], &ts) || ts < 0)))
                        return reply("error _INVALID_ARG: %s: bad partition or timestamp", c);
                for (i = 4 + at; i < argc && len < sizeof(value); i++)
                        len += (size_t)snprintf(value + len, sizeof(value) - len, "%s%s", i > 4 + at ? " " : "",
                                                argv[i]);
                if (produce_one(argv[1], (int32_t)partition, ts, argv[3 + at], value) == 0)
                        reply("ok %" PRId32 " %" PRId64, last_dr_partition, last_dr_offset);
        } else if (!strcmp(c, "produce_n") && argc == 5) {
                int64_t i;
                rd_kafka_resp_err_t err = 0;
                if (parse_i64(argv[2], &partition) || parse_i64(argv[3], &n) || n < 1)
                        return reply("error _INVALID_ARG: produce_n: bad partition or count");
                last_dr_err = 0;
                for (i = 0; i < n && !err; i++) {
                        char v[256];
                        snprintf(v, sizeof(v), "%s-%" PRId64, argv[4], i);
                        err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(argv[1]),
                                                RD_KAFKA_V_PARTITION((int32_t)partition),
                                                RD_KAFKA_V_KEY(v, strlen(v)), RD_KAFKA_V_VALUE(v, strlen(v)),
                                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
                        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                                rd_kafka_poll(rk, 100);
                                err = 0;
                                i--;
                        }
                }
                if (err)
                        return reply_err(err, "produce_n");
                rd_kafka_flush(rk, TIMEOUT_MS);
                if (rd_kafka_outq_len(rk) > 0)
                        return reply("error _TIMED_OUT: produce_n: %d messages undelivered", rd_kafka_outq_len(rk));
                if (last_dr_err)
                        return reply_err(last_dr_err, "delivery");
                reply("ok");
        } else if (!strcmp(c, "send_offsets") && (argc == 5 || argc == 6)) {
                rd_kafka_topic_partition_list_t *offsets;
                rd_kafka_topic_partition_t *p;
                rd_kafka_consumer_group_metadata_t *cgmd;
                if (parse_i64(argv[3], &partition) || parse_i64(argv[4], &offset))
                        return reply("error _INVALID_ARG: send_offsets: bad partition or offset");
                offsets   = rd_kafka_topic_partition_list_new(1);
                p         = rd_kafka_topic_partition_list_add(offsets, argv[2], (int32_t)partition);
                p->offset = offset;
                if (argc == 6) {
                        p->metadata      = strdup(argv[5]);
                        p->metadata_size = strlen(argv[5]);
                }
                cgmd  = group.cgmd && !strcmp(group.id, argv[1]) ? NULL
                                                                 : rd_kafka_consumer_group_metadata_new(argv[1]);
                error = rd_kafka_send_offsets_to_transaction(rk, offsets, cgmd ? cgmd : group.cgmd, TIMEOUT_MS);
                if (cgmd)
                        rd_kafka_consumer_group_metadata_destroy(cgmd);
                rd_kafka_topic_partition_list_destroy(offsets);
                if (error)
                        return reply_error(error);
                reply("ok");
        } else if (!strcmp(c, "join") && argc >= 3) {
                cmd_join(argc, argv);
        } else if (!strcmp(c, "group_metadata") && argc == 1) {
                char *member;
                if (!group.rk)
                        return reply("error _STATE: group_metadata: not in a group (join first)");
                if (group.cgmd)
                        rd_kafka_consumer_group_metadata_destroy(group.cgmd);
                group.cgmd = rd_kafka_consumer_group_metadata(group.rk);
                member     = rd_kafka_memberid(group.rk);
                reply("ok %s", member ? member : "");
                rd_kafka_mem_free(group.rk, member);
        } else if (!strcmp(c, "assignment") && argc == 1) {
                if (!group.rk)
                        return reply("error _STATE: assignment: not in a group (join first)");
                pthread_mutex_lock(&group.lock);
                reply("ok %d%s", group.rebalances, group.assigned);
                pthread_mutex_unlock(&group.lock);
        } else if (!strcmp(c, "leave") && argc == 1) {
                if (!group.rk)
                        return reply("error _STATE: leave: not in a group");
                group_close();
                reply("ok");
        } else if ((!strcmp(c, "committed") && argc == 4) || (!strcmp(c, "commit_offset") && argc == 5)) {
                cmd_committed(argc, argv);
        } else if (!strcmp(c, "group_commit") && argc == 4) {
                /* the joined consumer commits, as a member (OffsetCommit
                 * with its member id and generation) */
                rd_kafka_topic_partition_list_t *parts;
                rd_kafka_resp_err_t err;
                if (!group.rk)
                        return reply("error _STATE: group_commit: not in a group (join first)");
                if (parse_i64(argv[2], &partition) || parse_i64(argv[3], &offset))
                        return reply("error _INVALID_ARG: group_commit: bad partition or offset");
                parts = rd_kafka_topic_partition_list_new(1);
                rd_kafka_topic_partition_list_add(parts, argv[1], (int32_t)partition)->offset = offset;
                err = rd_kafka_commit(group.rk, parts, 0 /* wait */);
                if (!err)
                        err = parts->elems[0].err;
                rd_kafka_topic_partition_list_destroy(parts);
                if (err)
                        return reply_err(err, "group_commit");
                reply("ok");
        } else if ((!strcmp(c, "create_topic") && (argc == 3 || argc == 4)) ||
                   (!strcmp(c, "create_partitions") && argc == 3) ||
                   (!strcmp(c, "delete_records") && argc == 4)) {
                cmd_admin(argc, argv);
        } else {
                reply("error _INVALID_ARG: unknown command or wrong arguments: %s", c);
        }
}

int main(int argc, char **argv) {
        char errstr[512];
        rd_kafka_conf_t *conf;
        int i;

        if (argc < 2) {
                fprintf(stderr, "tide-kafka-txclient: usage: tide-kafka-txclient BOOTSTRAP "
                                "[TRANSACTIONAL_ID] [KEY=VALUE ...]\n");
                return 2;
        }
        if (lines_init())
                return 0;
        bootstrap = argv[1];

        conf = rd_kafka_conf_new();
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof(errstr)))
                goto bad_conf;
        for (i = 2; i < argc; i++) {
                char *eq = strchr(argv[i], '=');
                if (!eq && i == 2) {
                        if (rd_kafka_conf_set(conf, "transactional.id", argv[i], errstr, sizeof(errstr)))
                                goto bad_conf;
                        continue;
                }
                if (!eq) {
                        snprintf(errstr, sizeof(errstr), "'%s' is not KEY=VALUE", argv[i]);
                        goto bad_conf;
                }
                *eq = '\0';
                if (rd_kafka_conf_set(conf, argv[i], eq + 1, errstr, sizeof(errstr)))
                        goto bad_conf;
        }
        if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
                fprintf(stderr, "tide-kafka-txclient: %s\n", errstr);
                return 1;
        }
        reply("ok ready");

        lines_serve(command, "error _INVALID_ARG:");
        group_close();
        /* A producer with an open transaction is closed without waiting:
         * the test decides what happens to it (timeout, fencing). */
        rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_destroy(rk);
        return 0;

bad_conf:
        fprintf(stderr, "tide-kafka-txclient: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 2;
}
