/*
 * tide-kafka-broker: the project's Kafka test broker (issue 14).
 *
 * A librdkafka mock cluster (rdkafka_mock.h) with N brokers on 127.0.0.1,
 * built from Debian's librdkafka source with the changes of
 * tools/kafka-broker/patches/ (transactions with state, fencing, ...; see
 * README.md there). The first line on stdout is the bootstrap address; then
 * it reads one command per line on stdin and answers one line on stdout,
 * `ok [...]` or `error <why>`. It exits on `quit`, on end of input and when
 * its parent dies, so a test that dies never leaves it running.
 *
 *   usage: tide-kafka-broker [BROKERS]      (1 to 16, default 1)
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>

/* The patched source's headers (Makefile: -I build/librdkafka/src). */
#include "rdkafka.h"
#include "rdkafka_mock.h"

#include "lines.h"

static rd_kafka_mock_cluster_t *mcluster;
static int broker_cnt;

/* Kafka protocol API keys by name, for `push_errors`. */
static const struct {
        const char *name;
        int key;
} api_keys[] = {
    {"Produce", 0},          {"Fetch", 1},
    {"ListOffsets", 2},      {"Metadata", 3},
    {"OffsetCommit", 8},     {"OffsetFetch", 9},
    {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},       {"LeaveGroup", 13},
    {"SyncGroup", 14},       {"DescribeGroups", 15},
    {"ListGroups", 16},      {"ApiVersions", 18},
    {"CreateTopics", 19},    {"DeleteTopics", 20},
    {"DeleteRecords", 21},   {"InitProducerId", 22},
    {"OffsetForLeaderEpoch", 23}, {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25}, {"EndTxn", 26},
    {"TxnOffsetCommit", 28}, {"DescribeConfigs", 32},
    {"CreatePartitions", 37}, {"DeleteGroups", 42},
};

/* A decimal integer in [lo, hi], the whole string. */
static int parse_int(const char *s, long long lo, long long hi, long long *out) {
        char *end;
        long long v;
        if (!s || !*s)
                return -1;
        errno = 0;
        v     = strtoll(s, &end, 10);
        if (errno || *end || v < lo || v > hi)
                return -1;
        *out = v;
        return 0;
}

static int parse_api(const char *s, int *key) {
        long long v;
        size_t i;
        if (parse_int(s, 0, 1000, &v) == 0) {
                *key = (int)v;
                return 0;
        }
        for (i = 0; i < sizeof(api_keys) / sizeof(api_keys[0]); i++)
                if (!strcasecmp(s, api_keys[i].name)) {
                        *key = api_keys[i].key;
                        return 0;
                }
        return -1;
}

/* A Kafka error code: a number, or librdkafka's name with or without the
 * RD_KAFKA_RESP_ERR_ prefix (NOT_LEADER_FOR_PARTITION, _TIMED_OUT). */
static int parse_err(const char *s, rd_kafka_resp_err_t *err) {
        const struct rd_kafka_err_desc *descs;
        size_t cnt, i;
        long long v;
        if (parse_int(s, -200, 200, &v) == 0) {
                *err = (rd_kafka_resp_err_t)v;
                return 0;
        }
        if (!strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18))
                s += 18;
        rd_kafka_get_err_descs(&descs, &cnt);
        for (i = 0; i < cnt; i++)
                if (descs[i].name && !strcasecmp(s, descs[i].name)) {
                        *err = descs[i].code;
                        return 0;
                }
        return -1;
}

static int parse_broker(const char *s, int32_t *id) {
        long long v;
        if (parse_int(s, 1, broker_cnt, &v))
                return -1;
        *id = (int32_t)v;
        return 0;
}

/* Topic names as Kafka allows them: [A-Za-z0-9._-], 1 to 249 bytes. */
static int valid_topic(const char *s) {
        size_t n = strlen(s), i;
        if (n == 0 || n > 249)
                return 0;
        for (i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
                        return 0;
        return 1;
}

#define NEED(n, usage)                                                        \
        do {                                                                  \
                if (argc != (n)) {                                            \
                        reply("error usage: %s", usage);                      \
                        return;                                               \
                }                                                             \
        } while (0)

#define CHECK_ERR(e)                                                          \
        do {                                                                  \
                rd_kafka_resp_err_t e_ = (e);                                 \
                if (e_) {                                                     \
                        reply("error %s: %s", argv[0], rd_kafka_err2str(e_)); \
                        return;                                               \
                }                                                             \
        } while (0)

static void help(void) {
        reply("ok commands: create_topic TOPIC PARTITIONS [REPLICAS] | "
              "add_partitions TOPIC TOTAL | broker_down ID | broker_up ID | "
              "push_errors API COUNT ERROR | broker_errors ID API ERROR [RTT_MS] | "
              "clear_errors API | "
              "rtt ID MS | group_initial_delay MS | log_start TOPIC PARTITION OFFSET | "
              "topic_error TOPIC ERROR | leader TOPIC PARTITION ID | "
              "coordinator group|transaction KEY ID | "
              "offsets TOPIC PARTITION | bootstrap | pid | ping | quit");
}

static void command(int argc, char **argv) {
        const char *c = argv[0];
        long long a, b;
        int32_t id;
        int api;
        rd_kafka_resp_err_t err;

        if (!strcmp(c, "create_topic")) {
                long long r = broker_cnt < 3 ? broker_cnt : 3;
                if (argc != 3 && argc != 4) {
                        reply("error usage: create_topic TOPIC PARTITIONS [REPLICAS]");
                        return;
                }
                if (!valid_topic(argv[1])) {
                        reply("error create_topic: bad topic name '%s' (1 to 249 of [A-Za-z0-9._-])",
                              argv[1]);
                        return;
                }
                if (parse_int(argv[2], 1, 10000, &a)) {
                        reply("error create_topic: partitions must be 1 to 10000, not '%s'", argv[2]);
                        return;
                }
                if (argc == 4 && parse_int(argv[3], 1, broker_cnt, &r)) {
                        reply("error create_topic: replicas must be 1 to %d (the brokers), not '%s'",
                              broker_cnt, argv[3]);
                        return;
                }
                CHECK_ERR(rd_kafka_mock_topic_create(mcluster, argv[1], (int)a, (int)r));
                reply("ok");

        } else if (!strcmp(c, "add_partitions")) {
                NEED(3, "add_partitions TOPIC TOTAL");
                if (parse_int(argv[2], 1, 10000, &a)) {
                        reply("error add_partitions: total must be 1 to 10000, not '%s'", argv[2]);
                        return;
                }
                CHECK_ERR(rd_kafka_mock_topic_add_partitions(mcluster, argv[1], (int)a));
                reply("ok");

        } else if (!strcmp(c, "broker_down") || !strcmp(c, "broker_up")) {
                NEED(2, c[7] == 'd' ? "broker_down ID" : "broker_up ID");
                if (parse_broker(argv[1], &id)) {
                        reply("error %s: broker id must be 1 to %d, not '%s'", c, broker_cnt, argv[1]);
                        return;
                }
                CHECK_ERR(c[7] == 'd' ? rd_kafka_mock_broker_set_down(mcluster, id)
                                      : rd_kafka_mock_broker_set_up(mcluster, id));
                reply("ok");

        } else if (!strcmp(c, "push_errors")) {
                rd_kafka_resp_err_t *errs;
                NEED(4, "push_errors API COUNT ERROR");
                if (parse_api(argv[1], &api)) {
                        reply("error push_errors: unknown API '%s' (a number or a name such as Produce)",
                              argv[1]);
                        return;
                }
                if (parse_int(argv[2], 1, 100000, &a)) {
                        reply("error push_errors: count must be 1 to 100000, not '%s'", argv[2]);
                        return;
                }
                if (parse_err(argv[3], &err)) {
                        reply("error push_errors: unknown error '%s' (a number or a name such as "
                              "NOT_LEADER_FOR_PARTITION)", argv[3]);
                        return;
                }
                errs = malloc(sizeof(*errs) * (size_t)a);
                if (!errs) {
                        reply("error push_errors: out of memory");
                        return;
                }
                for (b = 0; b < a; b++)
                        errs[b] = err;
                rd_kafka_mock_push_request_errors_array(mcluster, (int16_t)api, (size_t)a, errs);
                free(errs);
                reply("ok");

        } else if (!strcmp(c, "broker_errors")) {
                long long rtt = 0;
                if (argc != 4 && argc != 5) {
                        reply("error usage: broker_errors ID API ERROR [RTT_MS]");
                        return;
                }
                if (parse_broker(argv[1], &id)) {
                        reply("error broker_errors: broker id must be 1 to %d, not '%s'", broker_cnt,
                              argv[1]);
                        return;
                }
                if (parse_api(argv[2], &api)) {
                        reply("error broker_errors: unknown API '%s'", argv[2]);
                        return;
                }
                if (parse_err(argv[3], &err)) {
                        reply("error broker_errors: unknown error '%s'", argv[3]);
                        return;
                }
                if (argc == 5 && parse_int(argv[4], 0, 600000, &rtt)) {
                        reply("error broker_errors: rtt must be 0 to 600000 ms, not '%s'", argv[4]);
                        return;
                }
                CHECK_ERR(rd_kafka_mock_broker_push_request_error_rtts(mcluster, id, (int16_t)api, 1,
                                                                       err, (int)rtt));
                reply("ok");

        } else if (!strcmp(c, "clear_errors")) {
                NEED(2, "clear_errors API");
                if (parse_api(argv[1], &api)) {
                        reply("error clear_errors: unknown API '%s'", argv[1]);
                        return;
                }
                rd_kafka_mock_clear_request_errors(mcluster, (int16_t)api);
                reply("ok");

        } else if (!strcmp(c, "rtt")) {
                NEED(3, "rtt ID MS");
                if (parse_broker(argv[1], &id)) {
                        reply("error rtt: broker id must be 1 to %d, not '%s'", broker_cnt, argv[1]);
                        return;
                }
                if (parse_int(argv[2], 0, 600000, &a)) {
                        reply("error rtt: ms must be 0 to 600000, not '%s'", argv[2]);
                        return;
                }
                CHECK_ERR(rd_kafka_mock_broker_set_rtt(mcluster, id, (int)a));
                reply("ok");

        } else if (!strcmp(c, "group_initial_delay")) {
                NEED(2, "group_initial_delay MS");
                if (parse_int(argv[1], 0, 3600000, &a)) {
                        reply("error group_initial_delay: ms must be 0 to 3600000, not '%s'", argv[1]);
                        return;
                }
                CHECK_ERR(rd_kafka_mock_group_initial_rebalance_delay_ms(mcluster, (int32_t)a));
                reply("ok");

        } else if (!strcmp(c, "log_start")) {
                NEED(4, "log_start TOPIC PARTITION OFFSET");
                if (parse_int(argv[2], 0, INT32_MAX, &a) || parse_int(argv[3], -1, INT64_MAX, &b)) {
                        reply("error log_start: partition must be an integer >= 0, offset one >= -1 "
                              "(-1: the log end)");
                        return;
                }
                CHECK_ERR(rd_kafka_mock_partition_set_log_start(mcluster, argv[1], (int32_t)a, b));
                reply("ok");

        } else if (!strcmp(c, "offsets")) {
                NEED(3, "offsets TOPIC PARTITION");
                if (parse_int(argv[2], 0, INT32_MAX, &a)) {
                        reply("error offsets: partition must be an integer >= 0");
                        return;
                }
                {
                        int64_t start, end, stable;
                        CHECK_ERR(rd_kafka_mock_partition_get_offsets(mcluster, argv[1], (int32_t)a,
                                                                      &start, &end, &stable));
                        reply("ok %lld %lld %lld", (long long)start, (long long)end,
                              (long long)stable);
                }

        } else if (!strcmp(c, "topic_error")) {
                NEED(3, "topic_error TOPIC ERROR");
                if (parse_err(argv[2], &err)) {
                        reply("error topic_error: unknown error '%s'", argv[2]);
                        return;
                }
                rd_kafka_mock_topic_set_error(mcluster, argv[1], err);
                reply("ok");

        } else if (!strcmp(c, "leader")) {
                NEED(4, "leader TOPIC PARTITION ID");
                if (parse_int(argv[2], 0, INT32_MAX, &a)) {
                        reply("error leader: partition must be an integer >= 0");
                        return;
                }
                if (parse_broker(argv[3], &id)) {
                        reply("error leader: broker id must be 1 to %d, not '%s'", broker_cnt, argv[3]);
                        return;
                }
                CHECK_ERR(rd_kafka_mock_partition_set_leader(mcluster, argv[1], (int32_t)a, id));
                reply("ok");

        } else if (!strcmp(c, "coordinator")) {
                NEED(4, "coordinator group|transaction KEY ID");
                if (strcmp(argv[1], "group") && strcmp(argv[1], "transaction")) {
                        reply("error coordinator: type must be group or transaction, not '%s'", argv[1]);
                        return;
                }
                if (parse_broker(argv[3], &id)) {
                        reply("error coordinator: broker id must be 1 to %d, not '%s'", broker_cnt,
                              argv[3]);
                        return;
                }
                CHECK_ERR(rd_kafka_mock_coordinator_set(mcluster, argv[1], argv[2], id));
                reply("ok");

        } else if (!strcmp(c, "bootstrap")) {
                reply("ok %s", rd_kafka_mock_cluster_bootstraps(mcluster));
        } else if (!strcmp(c, "ping")) {
                reply("ok");
        } else if (!strcmp(c, "help")) {
                help();
        } else {
                reply("error unknown command '%s' (try help)", c);
        }
}

int main(int argc, char **argv) {
        char errstr[512];
        rd_kafka_conf_t *conf;
        rd_kafka_t *rk;
        long long n = 1;

        if (argc > 2 || (argc == 2 && parse_int(argv[1], 1, 16, &n))) {
                fprintf(stderr, "tide-kafka-broker: usage: tide-kafka-broker [BROKERS] (1 to 16)\n");
                return 2;
        }
        broker_cnt = (int)n;

        if (lines_init())
                return 0;

        conf = rd_kafka_conf_new();
        /* The handle only hosts the cluster; it connects nowhere. */
        if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
                fprintf(stderr, "tide-kafka-broker: %s\n", errstr);
                return 1;
        }
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
        if (!rk) {
                fprintf(stderr, "tide-kafka-broker: rd_kafka_new: %s\n", errstr);
                return 1;
        }
        mcluster = rd_kafka_mock_cluster_new(rk, broker_cnt);
        if (!mcluster) {
                fprintf(stderr, "tide-kafka-broker: cannot start the mock cluster (listening on 127.0.0.1)\n");
                rd_kafka_destroy(rk);
                return 1;
        }
        reply("%s", rd_kafka_mock_cluster_bootstraps(mcluster));

        lines_serve(command, "error");
        rd_kafka_mock_cluster_destroy(mcluster);
        rd_kafka_destroy(rk);
        return 0;
}
