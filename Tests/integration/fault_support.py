"""Helpers for test_faults.py: poison inputs with the reason each bad record must
be rejected for, a producer that knows where every message landed, a topic
reader that keeps (partition, offset), job specs, and process probes.

Everything expected here is computed in Python from what was produced and read
back from Kafka with confluent-kafka, never from Weir's own output."""
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import reference
from conftest import BOOTSTRAP, MYSQL_PORT, WEIR

SCHEMA = "{ user_id: int, amount: int, ts: int }"
BASE_TS = 1_700_000_000_000

# ---------------------------------------------------------------- poison input

# Each bad kind, and the reason Weir must give for it: with the declared schema
# above and `eventTime: ts` (W1), with the schema and no event time (W2), and
# with no declared schema at all and `eventTime: ts` (W1, fields typed `any`;
# None there means the record passes the source).
BAD_KINDS = {
    #  kind            W1 (schema)       W2 (schema, no event time)  W1 without schema
    "not_json":     ("malformed",      "malformed",      "malformed"),
    "array":        ("malformed",      "malformed",      "malformed"),
    "no_user":      ("missing_field",  "missing_field",  None),
    "null_user":    ("missing_field",  "missing_field",  None),
    "str_user":     ("type_mismatch",  "type_mismatch",  None),
    "huge_user":    ("out_of_range",   "out_of_range",   None),
    "ts_1e19":      ("out_of_range",   "out_of_range",   "bad_event_time"),
    "ts_year11476": ("bad_event_time", None,             "bad_event_time"),
}
COLUMN = {"w1": 0, "w2": 1, "w1_noschema": 2}


def reason(kind, workload):
    """The reject reason of a record of `kind` in `workload` (None: it is good there)."""
    return None if kind == "good" else BAD_KINDS[kind][COLUMN[workload]]


def bad_value(kind, i, ts):
    amount = 950  # > 900: would pass W2's filter if it were accepted
    if kind == "not_json":
        return [b"not json at all %d" % i, b'{"user_id": 1, "amount": %d' % i, b"\xff\xfe garbage %d" % i][i % 3]
    if kind == "array":
        return b'[%d, 950, %d]' % (i, ts)
    if kind == "no_user":
        return b'{"amount": %d, "ts": %d, "n": %d}' % (amount, ts, i)
    if kind == "null_user":
        return b'{"user_id": null, "amount": %d, "ts": %d, "n": %d}' % (amount, ts, i)
    if kind == "str_user":
        return b'{"user_id": "seven", "amount": %d, "ts": %d, "n": %d}' % (amount, ts, i)
    if kind == "huge_user":
        return b'{"user_id": 1e30, "amount": %d, "ts": %d, "n": %d}' % (amount, ts, i)
    if kind == "ts_1e19":
        return b'{"user_id": 3, "amount": %d, "ts": 1e19, "n": %d}' % (amount, i)
    if kind == "ts_year11476":
        return b'{"user_id": 4, "amount": %d, "ts": 300000000000000, "n": %d}' % (amount, i)
    raise ValueError(kind)


def poison_stream(n_good, seed, start=0, per_kind=None, users=50, ms_per_event=7):
    """[(value bytes, kind)]: `n_good` W1/W2-shaped events (event time advancing
    `ms_per_event` per event from BASE_TS, events start.. of the stream) with
    about 1% bad records of every kind mixed in at seeded random places."""
    rng = random.Random(seed * 1_000_003 + start)
    per_kind = per_kind if per_kind is not None else max(1, n_good // 100 // len(BAD_KINDS))
    out = []
    for i in range(start, start + n_good):
        e = {"user_id": rng.randrange(users), "amount": rng.randint(1, 1000), "ts": BASE_TS + i * ms_per_event}
        out.append((json.dumps(e).encode(), "good"))
    bad_positions = {}
    for kind in BAD_KINDS:
        for k in range(per_kind):
            bad_positions.setdefault(rng.randrange(len(out) + 1), []).append((kind, k))
    merged = []
    for pos in range(len(out) + 1):
        for kind, k in bad_positions.get(pos, []):
            ts = BASE_TS + (start + min(pos, len(out) - 1)) * ms_per_event
            merged.append((bad_value(kind, start * 10 + pos * 10 + k, ts), kind))
        if pos < len(out):
            merged.append(out[pos])
    return merged


def kind_index(*streams):
    """{value bytes: kind} over every stream produced."""
    idx = {}
    for s in streams:
        for v, k in s:
            assert idx.get(v, k) == k, v
            idx[v] = k
    return idx


# ---------------------------------------------------------------- Kafka

def create_topic(name, partitions):
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(10)


def delete_topic(t):
    """Deletes topic `t` and waits until the broker no longer lists it."""
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.delete_topics([t]).values():
        f.result(10)
    deadline = time.time() + 30
    while t in admin.list_topics(timeout=5).topics:
        assert time.time() < deadline, f"topic {t} still listed after its deletion"
        time.sleep(0.2)


def produce_values(topic, values, partitions, first=0, bootstrap=BOOTSTRAP):
    """Sends each value, the i-th (counting from `first`) to partition i mod
    `partitions`; returns [(partition, offset, value)] from the delivery reports."""
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": False,
                  "max.in.flight.requests.per.connection": 1})
    delivered, errors = [], []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            delivered.append((msg.partition(), msg.offset(), msg.value()))
    for i, v in enumerate(values):
        while True:
            try:
                p.produce(topic, v, partition=(first + i) % partitions, on_delivery=report)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(30) == 0, "messages left unflushed"
    assert not errors, errors[:3]
    assert len(delivered) == len(values)
    return delivered


def read_topic_full(topic, timeout=60.0):
    """Every message of `topic` as (partition, offset, value), read back with confluent-kafka."""
    return reference.read_topic_positions(BOOTSTRAP, topic, timeout)


class LiveProducer(threading.Thread):
    """Produces W1/W2-shaped events in the background: `rate` events per second
    (wall clock) with event time = wall-clock ms when `wall_ts`, until `count`
    events or stop(). Event i goes to partition i mod `partitions`."""

    def __init__(self, topic, partitions, rate, count=None, seed=1, users=100, wall_ts=True, chunk=10):
        super().__init__(daemon=True)
        self.topic, self.partitions, self.rate, self.count = topic, partitions, rate, count
        self.rng, self.users, self.wall_ts, self.chunk = random.Random(seed), users, wall_ts, chunk
        self.sent = 0
        self.error = None
        self.max_gap = 0.0  # the longest pause between two chunks (the producer itself stalling)
        self._halt = threading.Event()

    def stop(self):
        self._halt.set()
        self.join(60)

    def run(self):
        try:
            p = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 2})
            t0 = time.monotonic()
            last = t0
            while not self._halt.is_set() and (self.count is None or self.sent < self.count):
                n = self.chunk if self.count is None else min(self.chunk, self.count - self.sent)
                for _ in range(n):
                    ts = int(time.time() * 1000) if self.wall_ts else BASE_TS + self.sent
                    e = {"user_id": self.rng.randrange(self.users), "amount": self.rng.randint(1, 1000), "ts": ts}
                    while True:
                        try:
                            p.produce(self.topic, json.dumps(e).encode(), partition=self.sent % self.partitions)
                            break
                        except BufferError:
                            p.poll(0.05)
                    self.sent += 1
                p.poll(0)
                now = time.monotonic()
                self.max_gap = max(self.max_gap, now - last)
                last = now
                ahead = t0 + self.sent / self.rate - now
                if ahead > 0:
                    self._halt.wait(ahead)
            assert p.flush(30) == 0
        except Exception as e:  # reported by the test
            self.error = e


# ---------------------------------------------------------------- specs

def mysql_url(db):
    return f"mysql://root@127.0.0.1:{MYSQL_PORT}/{db}"


def header(name, parallelism=2, checkpoint=None, extra=""):
    text = f"name: {name}\nparallelism: {parallelism}\n"
    if checkpoint:
        text += f"checkpoint: {{ interval: {checkpoint}, retain: 3, timeout: 30s }}\n"
    return text + extra


def w1_spec(topic, db, table="w1", parallelism=2, schema=SCHEMA, checkpoint=None, extra="", name="w1",
            event_time="{ field: ts, maxOutOfOrderness: 1s }", max_parallelism=None, sink_options=""):
    src = f"bootstrap: \"{BOOTSTRAP}\", topic: {topic}, " + (f"schema: {schema}, " if schema else "") + f"eventTime: {event_time}"
    mp = f"maxParallelism: {max_parallelism}\n" if max_parallelism else ""
    return header(name, parallelism, checkpoint, mp + extra) + f"""nodes:
  - id: events
    kafka: {{ {src} }}
  - id: per-user
    inputs: [events]
    keyBy: [user_id]
    window: {{ tumbling: 10s }}
    aggregate: {{ cnt: "count()", total: "sum(amount)" }}
  - id: out
    inputs: [per-user]
    mysql: {{ url: "{mysql_url(db)}", table: {table}, mode: upsert, key: [user_id, window_start]{sink_options} }}
"""


def w2_spec(topic, db, table="w2", parallelism=2, schema=SCHEMA, checkpoint=None, extra="", name="w2", sink_extra=""):
    src = f"bootstrap: \"{BOOTSTRAP}\", topic: {topic}" + (f", schema: {schema}" if schema else "")
    return header(name, parallelism, checkpoint, extra) + f"""nodes:
  - id: events
    kafka: {{ {src} }}
  - id: big
    inputs: [events]
    filter: "amount > 900"
  - id: slim
    inputs: [big]
    select: [user_id, amount, ts]
  - id: out
    inputs: [slim]
    mysql: {{ url: "{mysql_url(db)}", table: {table}, mode: append }}
""" + sink_extra


DEAD_LETTER = "onError: deadLetter\ndeadLetter: { table: dlq }\n"


def create_w1(db, table="w1"):
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (user_id BIGINT, window_start BIGINT, window_end BIGINT, cnt BIGINT,"
                    " total BIGINT, PRIMARY KEY (user_id, window_start))")


def create_w2(db, table="w2"):
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (user_id BIGINT, amount BIGINT, ts BIGINT)")


# ---------------------------------------------------------------- references

def events_of(messages, kinds, workload):
    """The parsed events of `messages` ((partition, offset, value)) whose rows must
    reach the table in `workload`: the good ones, plus (W2) the bad-for-W1 records
    W2 accepts. Without a schema, records that pass the source with a key the
    table refuses are not in it."""
    out = []
    for _, _, v in messages:
        k = kinds[v]
        if k == "good" or (workload == "w2" and reason(k, "w2") is None):
            out.append(json.loads(v))
    return out


def noschema_sink_rejections(messages, kinds, window_ms=10_000):
    """W1 without a schema: the window rows whose key the table refuses (NULL,
    'seven', 1e30), one per (key, window) touched by such records."""
    rows = set()
    for _, _, v in messages:
        k = kinds[v]
        if k in ("no_user", "null_user", "str_user", "huge_user"):
            e = json.loads(v)
            rows.add((repr(e.get("user_id")), e["ts"] - e["ts"] % window_ms))
    return rows


def expected_rejections(messages, kinds, workload):
    """Counter {reason: n} of the source rejections `workload` must report."""
    c = Counter()
    for _, _, v in messages:
        r = reason(kinds[v], workload)
        if r is not None:
            c[r] += 1
    return dict(c)


def expected_dead_letters(topic, messages, kinds, workload):
    """{(topic, partition, offset): (raw value, reason)} of the records `workload` rejects."""
    return {(topic, p, o): (v, reason(kinds[v], workload)) for p, o, v in messages if reason(kinds[v], workload) is not None}


def dead_letters(db, table="dlq"):
    with db.cursor() as cur:
        cur.execute(f"SELECT job, run, node, topic, kafka_partition, kafka_offset, raw_value, error_code, error_message,"
                    f" created_at FROM {table}")
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def table_rows(db, table):
    with db.cursor() as cur:
        cur.execute(f"SELECT * FROM {table}")
        return sorted(cur.fetchall(), key=repr)


def start_run(spec_path, *extra):
    return subprocess.Popen([WEIR, "run", spec_path, "--plain", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class MockCluster:
    """librdkafka's mock cluster in its own process (Tests/Tools/KafkaMock, built
    beside `weir`), for changes the real broker cannot stage: Tansu cannot add
    partitions to a topic. Used in addition to Tansu, never instead of it."""

    def __init__(self):
        binary = os.path.join(os.path.dirname(WEIR), "weir-kafka-mock")
        assert os.path.exists(binary), f"{binary} not found: build with `swift build`"
        self.proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "bootstrap", line
        self.bootstrap = line[1]

    def topic(self, name, partitions):
        """Creates topic `name`, or grows it to `partitions` partitions."""
        self.proc.stdin.write(f"topic {name} {partitions}\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        assert reply == "ok", reply

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def finish(proc, timeout=120):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"weir run did not end within {timeout} s\nstderr:\n{err[-4000:]}")
    return out, err


def cpu_seconds(pid):
    """utime + stime of a process so far, in seconds (from /proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    rest = stat[stat.rfind(")") + 2:].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def mariadb_pid():
    """The pid of the MariaDB server the tests use (from its own @@pid_file)."""
    conn = reference.connect(MYSQL_PORT)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@pid_file, @@datadir")
            pid_file, datadir = cur.fetchone()
    finally:
        conn.close()
    path = pid_file if os.path.isabs(pid_file) else os.path.join(datadir, pid_file)
    with open(path) as f:
        pid = int(f.read().strip())
    with open(f"/proc/{pid}/comm") as f:
        assert f.read().strip() in ("mariadbd", "mysqld"), f"pid {pid} is not MariaDB"
    return pid


def sigstop_for(pid, seconds):
    """SIGSTOP `pid`, wait, SIGCONT (always)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)
