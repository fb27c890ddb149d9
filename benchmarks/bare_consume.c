/*
 * bare_consume: the throughput ceiling for Weir's benchmarks.
 *
 * A bare librdkafka consume loop over a whole topic, with no decoding and no
 * operators: manual assignment of every partition from offset 0, drained with
 * rd_kafka_consume_batch_queue, touching each payload (summing its first
 * byte) until every partition has reported _PARTITION_EOF at its high
 * watermark. It uses the throughput-relevant consumer settings of Weir's
 * Kafka reader (connectors/WeirKafka/KafkaSourceReader.swift and
 * baseKafkaSettings in KafkaClient.swift), so the only difference from Weir's
 * source is everything Weir does with the bytes.
 *
 *   gcc -O2 -o bare_consume bare_consume.c $(pkg-config --cflags --libs rdkafka)
 *   bare_consume --bootstrap 127.0.0.1:19092 --topic events [--consumers C] [--batch N]
 *
 * --consumers C (default 1) splits the partitions over C threads, each with
 * its own rd_kafka_t (partition p goes to consumer p % C, as in Weir).
 * --spin K (diagnostic, default 0) adds K empty loop iterations per message, to
 * see how librdkafka's prefetch queue (and so the RSS) grows behind a slower
 * consumer.
 *
 * Prints one JSON object on stdout:
 *   {"messages": M, "bytes": B, "seconds": S, "eventsPerSecond": M/S,
 *    "expected": E, "consumers": C, "partitions": P, "checksum": X,
 *    "librdkafka": "2.8.0"}
 * where E is the sum of the offsets at which the partitions reported EOF.
 * `seconds` runs from the creation of the first client to the last
 * partition's EOF (connection setup included, as in Weir's own timing).
 * Exits 1 if the messages read differ from E (or on timeout).
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *bootstrap = "127.0.0.1:19092";
static const char *topic = "events";
static int nconsumers = 1;
static int batch = 4096;          /* Weir's RunOptions.pollBatchSize */
static int timeout_s = 300;
static long spin = 0;             /* diagnostic: extra work per message (loop iterations) */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why) {
    fprintf(stderr, "bare_consume: %s: %s\n", what, why);
    exit(2);
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v) {
    char err[512];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) die(k, err);
}

/* The same settings as Weir's KafkaSourceReader (base settings + consumer settings). */
static rd_kafka_t *new_consumer(void) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    set(conf, "bootstrap.servers", bootstrap);
    set(conf, "client.id", "weir-bare-consume");
    set(conf, "log_level", "2");
    set(conf, "log.connection.close", "false");
    set(conf, "enable.metrics.push", "false");
    set(conf, "socket.nagle.disable", "true");
    set(conf, "reconnect.backoff.ms", "100");
    set(conf, "reconnect.backoff.max.ms", "2000");
    set(conf, "socket.connection.setup.timeout.ms", "10000");
    set(conf, "group.id", "weir-bare-consume");
    set(conf, "enable.auto.commit", "false");
    set(conf, "enable.auto.offset.store", "false");
    set(conf, "enable.partition.eof", "true");
    set(conf, "auto.offset.reset", "error");
    set(conf, "fetch.wait.max.ms", "50");
    set(conf, "fetch.queue.backoff.ms", "1");
    set(conf, "fetch.error.backoff.ms", "100");
    /* The prefetch settings that make one bare consumer fastest here (Weir's reader
     * uses a smaller queue, 20,000 messages / 16 MB, which costs it nothing at
     * parallelism 2 and halves its RSS; the ceiling keeps the faster setting). */
    set(conf, "queued.min.messages", "200000");
    set(conf, "queued.max.messages.kbytes", "65536");
    set(conf, "max.partition.fetch.bytes", "8388608");
    set(conf, "fetch.max.bytes", "52428800");
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) die("rd_kafka_new", err);
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

struct worker {
    int index;
    int *partitions;
    int npartitions;
    int64_t messages, bytes;
    int64_t end_offsets;   /* sum of the offsets at which each partition reported EOF */
    uint64_t checksum;
    double end;
    int failed;
    pthread_t thread;
};

static void *consume(void *arg) {
    struct worker *w = arg;
    rd_kafka_t *rk = new_consumer();
    /* Learn the leaders first, as Weir does (avoids librdkafka's 500 ms retry). */
    const struct rd_kafka_metadata *md = NULL;
    if (rd_kafka_metadata(rk, 0, NULL, &md, 2000) == RD_KAFKA_RESP_ERR_NO_ERROR && md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(w->npartitions);
    for (int i = 0; i < w->npartitions; i++)
        rd_kafka_topic_partition_list_add(list, topic, w->partitions[i])->offset = 0;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e) die("rd_kafka_assign", rd_kafka_err2str(e));
    rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(rk);

    rd_kafka_message_t **buf = malloc(sizeof(*buf) * batch);
    char *eof = calloc(w->npartitions, 1);
    int remaining = w->npartitions;
    double deadline = now() + timeout_s;
    while (remaining > 0) {
        /* Weir's poll: take what is queued; only when nothing is, wait for one message. */
        ssize_t n = rd_kafka_consume_batch_queue(q, 0, buf, batch);
        if (n == 0) {
            rd_kafka_message_t *first = rd_kafka_consume_queue(q, 50);
            if (first) {
                buf[0] = first;
                n = 1;
                ssize_t more = rd_kafka_consume_batch_queue(q, 0, buf + 1, batch - 1);
                if (more > 0) n += more;
            }
        }
        if (n < 0) die("consume", rd_kafka_err2str(rd_kafka_last_error()));
        for (ssize_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = buf[i];
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                w->messages++;
                w->bytes += m->len;
                if (m->len > 0) w->checksum += ((const unsigned char *)m->payload)[0];
                for (volatile long k = 0; k < spin; k++) {}
            } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                for (int k = 0; k < w->npartitions; k++)
                    if (w->partitions[k] == m->partition && !eof[k]) {
                        eof[k] = 1;
                        remaining--;
                        w->end_offsets += m->offset;
                    }
            } else {
                fprintf(stderr, "bare_consume: partition %d: %s\n", m->partition, rd_kafka_message_errstr(m));
            }
            rd_kafka_message_destroy(m);
        }
        if (now() > deadline) {
            fprintf(stderr, "bare_consume: timed out after %d s with %d partitions not at end\n", timeout_s, remaining);
            w->failed = 1;
            break;
        }
    }
    w->end = now();
    free(buf);
    free(eof);
    rd_kafka_queue_destroy(q);
    rd_kafka_assign(rk, NULL);
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    return NULL;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--bootstrap") && v) bootstrap = argv[++i];
        else if (!strcmp(a, "--topic") && v) topic = argv[++i];
        else if (!strcmp(a, "--consumers") && v) nconsumers = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && v) batch = atoi(argv[++i]);
        else if (!strcmp(a, "--timeout") && v) timeout_s = atoi(argv[++i]);
        else if (!strcmp(a, "--spin") && v) spin = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--bootstrap H:P] [--topic T] [--consumers C] [--batch N] [--timeout S] [--spin K]\n", argv[0]);
            return 2;
        }
    }
    if (nconsumers < 1 || batch < 1) die("arguments", "--consumers and --batch must be positive");

    /* The topic's partitions, from a separate short-lived client (not timed). High
     * watermarks come from the EOF events instead: Tansu answers ListOffsets
     * (rd_kafka_query_watermark_offsets) with stale values. */
    rd_kafka_t *meta = new_consumer();
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(meta, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(meta, 0, rkt, &md, 10000);
    if (e) die("metadata", rd_kafka_err2str(e));
    if (md->topic_cnt != 1 || md->topics[0].err) die(topic, md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "not found");
    int np = md->topics[0].partition_cnt;
    int *parts = malloc(sizeof(int) * np);
    for (int i = 0; i < np; i++) parts[i] = md->topics[0].partitions[i].id;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy_flags(meta, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);

    if (nconsumers > np) nconsumers = np;
    struct worker *ws = calloc(nconsumers, sizeof *ws);
    for (int c = 0; c < nconsumers; c++) {
        ws[c].index = c;
        ws[c].partitions = malloc(sizeof(int) * np);
        for (int i = 0; i < np; i++)
            if (i % nconsumers == c) ws[c].partitions[ws[c].npartitions++] = parts[i];
    }
    double start = now();
    for (int c = 0; c < nconsumers; c++) pthread_create(&ws[c].thread, NULL, consume, &ws[c]);
    int64_t messages = 0, bytes = 0, expected = 0;
    uint64_t checksum = 0;
    double end = start;
    int failed = 0;
    for (int c = 0; c < nconsumers; c++) {
        pthread_join(ws[c].thread, NULL);
        messages += ws[c].messages;
        bytes += ws[c].bytes;
        expected += ws[c].end_offsets;
        checksum += ws[c].checksum;
        failed |= ws[c].failed;
        if (ws[c].end > end) end = ws[c].end;
    }
    double secs = end - start;
    printf("{\"messages\": %lld, \"bytes\": %lld, \"seconds\": %.6f, \"eventsPerSecond\": %.1f, "
           "\"expected\": %lld, \"consumers\": %d, \"partitions\": %d, \"checksum\": %llu, \"librdkafka\": \"%s\"}\n",
           (long long)messages, (long long)bytes, secs, messages / (secs > 0 ? secs : 1e-9),
           (long long)expected, nconsumers, np, (unsigned long long)checksum, rd_kafka_version_str());
    if (failed || messages != expected) {
        fprintf(stderr, "bare_consume: read %lld messages, the partitions end at offsets summing to %lld\n",
                (long long)messages, (long long)expected);
        return 1;
    }
    return 0;
}
