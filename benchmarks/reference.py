"""Independent reference results for Weir's workloads.

Reads a topic straight from Kafka with confluent-kafka (its own bundled
librdkafka, not Weir's code) and computes what W1/W2 must have written, then
compares with MySQL through PyMySQL. Used by the benchmarks and the
integration tests. W1: per-user tumbling windows; W2: filter + select;
totals: the per-user running count and sum of benchmarks/state.yaml.
"""
import json
from collections import defaultdict

import pymysql
from confluent_kafka import Consumer, TopicPartition


def read_topic(bootstrap, topic, timeout=60.0):
    """Every message value of `topic`, partition by partition, as bytes."""
    return [v for _, _, v in read_topic_positions(bootstrap, topic, timeout)]


def read_topic_positions(bootstrap, topic, timeout=60.0):
    """Every message of `topic` as (partition, offset, value), partition by partition."""
    import time
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "weir-reference",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "fetch.queue.backoff.ms": 20, "auto.offset.reset": "earliest"})
    md = c.list_topics(topic, timeout=10)
    parts = sorted(md.topics[topic].partitions)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    remaining = set(parts)
    out = []
    deadline = time.time() + timeout
    while remaining and time.time() < deadline:
        for m in c.consume(10000, 0.5):
            if m.error():
                if m.error().code() == -191:  # _PARTITION_EOF
                    remaining.discard(m.partition())
                    continue
                raise RuntimeError(str(m.error()))
            out.append((m.partition(), m.offset(), m.value()))
    c.close()
    if remaining:
        raise RuntimeError(f"timed out reading {topic}: partitions {sorted(remaining)} not at end")
    return out


def decode(values):
    """Parsed JSON objects; malformed ones are skipped (and counted)."""
    events, bad = [], 0
    for v in values:
        try:
            e = json.loads(v)
            if not isinstance(e, dict):
                raise ValueError
            events.append(e)
        except (ValueError, TypeError):
            bad += 1
    return events, bad


def w1_reference(events, window_ms=10_000):
    """keyBy user_id, tumbling windows: {(user_id, window_start): (count, sum(amount))}."""
    acc = defaultdict(lambda: [0, 0])
    for e in events:
        start = e["ts"] - e["ts"] % window_ms
        a = acc[(e["user_id"], start)]
        a[0] += 1
        a[1] += e["amount"]
    return {k: tuple(v) for k, v in acc.items()}


def w2_reference(events, threshold=900):
    """filter amount > threshold, select user_id, amount, ts: a multiset of rows."""
    rows = defaultdict(int)
    for e in events:
        if e["amount"] > threshold:
            rows[(e["user_id"], e["amount"], e["ts"])] += 1
    return dict(rows)


def totals_reference(events):
    """keyBy user_id, continuous count and sum(amount): {user_id: (count, sum(amount))}."""
    acc = defaultdict(lambda: [0, 0])
    for e in events:
        a = acc[e["user_id"]]
        a[0] += 1
        a[1] += e["amount"]
    return {k: tuple(v) for k, v in acc.items()}


def connect(port, database=None, host="127.0.0.1"):
    return pymysql.connect(host=host, port=port, user="root", password="", database=database, autocommit=True)


def mysql_w1(conn, table):
    with conn.cursor() as cur:
        cur.execute(f"SELECT user_id, window_start, cnt, total FROM {table}")
        return {(u, int(ws)): (int(c), int(t)) for u, ws, c, t in cur.fetchall()}


def mysql_totals(conn, table):
    with conn.cursor() as cur:
        cur.execute(f"SELECT user_id, cnt, total FROM {table}")
        return {int(u): (int(c), int(t)) for u, c, t in cur.fetchall()}


def mysql_w2(conn, table):
    rows = defaultdict(int)
    with conn.cursor() as cur:
        cur.execute(f"SELECT user_id, amount, ts FROM {table}")
        for r in cur.fetchall():
            rows[tuple(int(x) for x in r)] += 1
    return dict(rows)


def diff(expected, actual, limit=5):
    """A short human-readable difference between two dicts ('' when equal)."""
    if expected == actual:
        return ""
    missing = [k for k in expected if k not in actual]
    extra = [k for k in actual if k not in expected]
    wrong = [k for k in expected if k in actual and expected[k] != actual[k]]
    parts = [f"expected {len(expected)} keys, got {len(actual)}"]
    if missing:
        parts.append(f"missing {len(missing)} e.g. {missing[:limit]}")
    if extra:
        parts.append(f"unexpected {len(extra)} e.g. {extra[:limit]}")
    if wrong:
        parts.append(f"wrong {len(wrong)} e.g. " + ", ".join(f"{k}: want {expected[k]} got {actual[k]}" for k in wrong[:limit]))
    return "; ".join(parts)
