/*
 * kafka_consume: the reference of bench/kafka.lua, a plain librdkafka
 * consumer loop reading every message of a topic, with nothing around it.
 *
 *   kafka_consume BOOTSTRAP TOPIC N
 *
 * Assigns every partition of TOPIC at its beginning (read_committed, as
 * tide's source reads), polls batches of messages off the consumer queue
 * (rd_kafka_consume_batch_queue, as tide's reader does) until N messages
 * have come, touching each payload (a byte sum, so nothing is optimised
 * away). Prints `messages= bytes= checksum= seconds= cpu_seconds=
 * messages_per_s= last_unix_ms=` on one line; the clock runs from the
 * assign to the last message, cpu_seconds is the process's (all its
 * threads), last_unix_ms is the time of day (ms since the epoch) when the
 * last message came (bench/scaleout.lua follows an output topic with it:
 * when its last row arrived, on the clock of the progress reports'
 * timestamps). Exit 1 on a broker error or when no message came for 120 s
 * before the N-th.
 */
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double unix_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
  char why[256];
  if (rd_kafka_conf_set(conf, k, v, why, sizeof why) != RD_KAFKA_CONF_OK) {
    fprintf(stderr, "kafka_consume: %s: %s\n", k, why);
    exit(2);
  }
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: kafka_consume BOOTSTRAP TOPIC N\n");
    return 2;
  }
  const char *topic = argv[2];
  long long want = atoll(argv[3]);
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  set(conf, "bootstrap.servers", argv[1]);
  set(conf, "group.id", "kafka-consume-bench");
  set(conf, "enable.auto.commit", "false");
  set(conf, "isolation.level", "read_committed");
  set(conf, "log_level", "3");
  char why[512];
  rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof why);
  if (!rk) {
    fprintf(stderr, "kafka_consume: %s\n", why);
    return 2;
  }
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
  const struct rd_kafka_metadata *md;
  rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
  if (e || md->topic_cnt != 1 || md->topics[0].err) {
    fprintf(stderr, "kafka_consume: metadata of '%s': %s\n", topic,
            rd_kafka_err2str(e ? e : md->topics[0].err));
    return 1;
  }
  int parts = md->topics[0].partition_cnt;
  rd_kafka_metadata_destroy(md);
  rd_kafka_topic_destroy(rkt);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(parts);
  for (int p = 0; p < parts; p++) rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);
  double t0 = now_s();
  rd_kafka_assign(rk, l);
  rd_kafka_topic_partition_list_destroy(l);
  long long got = 0, bytes = 0;
  uint64_t sum = 0;
  rd_kafka_message_t *msgs[1024];
  double last = t0, last_unix = unix_ms();
  int rc = 0;
  while (got < want) {
    ssize_t n = rd_kafka_consume_batch_queue(q, 100, msgs, 1024);
    for (ssize_t i = 0; i < n; i++) {
      rd_kafka_message_t *m = msgs[i];
      if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          fprintf(stderr, "kafka_consume: %s\n", rd_kafka_message_errstr(m));
          rc = 1;
        }
      } else {
        const unsigned char *p = m->payload;
        for (size_t k = 0; k < m->len; k++) sum += p[k];
        bytes += (long long)m->len;
        got++;
      }
      rd_kafka_message_destroy(m);
    }
    if (n > 0) {
      last = now_s();
      last_unix = unix_ms();
    }
    if (rc || now_s() - last > 120) break;
  }
  double secs = last - t0;
  rd_kafka_queue_destroy(q);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
  printf("messages=%lld bytes=%lld checksum=%llu seconds=%.3f cpu_seconds=%.3f messages_per_s=%.0f last_unix_ms=%.0f\n",
         got, bytes, (unsigned long long)sum, secs, cpu, secs > 0 ? got / secs : 0.0, last_unix);
  if (got < want) {
    fprintf(stderr, "kafka_consume: %lld messages of %lld\n", got, want);
    return 1;
  }
  return rc;
}
