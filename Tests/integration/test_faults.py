"""Faults end to end (issue "No job dies of one record, no cancel or stall loses
a row"): poison records of every kind, dead-letter tables exactly once across
kill -9, rows the sink's table refuses, process and database stalls, random
cancels, maxParallelism changes, concurrent upserts, idle CPU, schema-less
sinks and spec traps. Every test with output compares MySQL with a reference
computed independently from what was produced (read back with confluent-kafka)."""
import json
import os
import random
import re
import signal
import time
from collections import Counter

import pytest

import reference
from conftest import BOOTSTRAP, weir, write_spec
from fault_support import (
    BASE_TS, BAD_KINDS, DEAD_LETTER, LiveProducer, create_topic, create_w1, create_w2, cpu_seconds,
    dead_letters, events_of, expected_dead_letters, expected_rejections, finish, kind_index, mariadb_pid,
    mysql_url, noschema_sink_rejections, poison_stream, produce_values, read_topic_full, sigstop_for, start_run,
    table_rows, w1_spec, w2_spec)

SOURCE_REASONS = {"malformed", "type_mismatch", "missing_field", "out_of_range", "bad_event_time"}


def run_until_idle(tmp_path, spec_text, *extra, name="job.yaml", idle="1", timeout=120):
    stats = tmp_path / (name + ".stats.json")
    p = weir("run", write_spec(tmp_path, spec_text, name), "--until-idle", idle, "--plain", "--stats", str(stats),
             *extra, timeout=timeout)
    return json.loads(stats.read_text()), p


def snapshots(state_dir):
    if not os.path.isdir(state_dir):
        return []
    return json.loads(weir("snapshot", "list", "--state-dir", str(state_dir), "--json").stdout)


def rejected_by_node(stats):
    return {n: f.get("rejected", {}) for n, f in stats["nodes"].items() if f.get("rejected")}


def poison_topic(names, n_good=4000, partitions=3, seed=1):
    create_topic(names["topic"], partitions)
    stream = poison_stream(n_good, seed=seed)
    produce_values(names["topic"], [v for v, _ in stream], partitions)
    messages = read_topic_full(names["topic"])
    assert len(messages) == len(stream)
    kinds = kind_index(stream)
    assert {kinds[v] for _, _, v in messages} == {"good", *BAD_KINDS}
    return messages, kinds


# ------------------------------------------------------------------ 1. poison, skip

def test_poison_records_are_skipped_and_counted(tmp_path, names, db):
    messages, kinds = poison_topic(names)
    n_bad = sum(1 for _, _, v in messages if kinds[v] != "good")
    assert 30 <= n_bad <= 0.015 * len(messages)
    create_w1(db)
    create_w2(db)
    create_w1(db, "w1_noschema")

    # W1, declared schema, default policy (skip).
    stats, _ = run_until_idle(tmp_path, w1_spec(names["topic"], names["db"]), name="w1.yaml")
    want = reference.w1_reference(events_of(messages, kinds, "w1"))
    assert reference.diff(want, reference.mysql_w1(db, "w1")) == ""
    rej = expected_rejections(messages, kinds, "w1")
    assert set(rej) == SOURCE_REASONS
    assert rejected_by_node(stats) == {"events": rej}
    assert stats["decodeErrors"] == stats["rejectedRecords"] == sum(rej.values())
    assert stats["recordsIn"] == len(messages)
    assert stats["lateRecords"] == 0

    # W2, declared schema: the year-11476 record is valid without event time.
    stats, _ = run_until_idle(tmp_path, w2_spec(names["topic"], names["db"]), name="w2.yaml")
    good2 = events_of(messages, kinds, "w2")
    want = reference.w2_reference(good2)
    assert any(e["ts"] == 300_000_000_000_000 for e in good2)
    assert reference.diff(want, reference.mysql_w2(db, "w2")) == ""
    rej = expected_rejections(messages, kinds, "w2")
    assert "bad_event_time" not in rej
    assert rejected_by_node(stats) == {"events": rej}
    assert stats["decodeErrors"] == stats["rejectedRecords"] == sum(rej.values())
    assert stats["recordsOut"] == sum(want.values())

    # W1 without a declared schema: records without an integer user_id pass the source
    # and their window rows are refused by the table (NULL / 'seven' / 1e30 into a
    # BIGINT primary key); the job does not die and the valid rows are exact.
    stats, p = run_until_idle(tmp_path, w1_spec(names["topic"], names["db"], table="w1_noschema", schema=None),
                              name="w1n.yaml")
    want = reference.w1_reference(events_of(messages, kinds, "w1_noschema"))
    assert reference.diff(want, reference.mysql_w1(db, "w1_noschema")) == ""
    src = expected_rejections(messages, kinds, "w1_noschema")
    sink = noschema_sink_rejections(messages, kinds)
    assert src == {"malformed": rej["malformed"], "bad_event_time": src["bad_event_time"]}
    assert rejected_by_node(stats) == {"events": src, "out": {"sink_rejected": len(sink)}}, p.stderr[-3000:]
    assert stats["decodeErrors"] == sum(src.values())
    assert stats["rejectedRecords"] == sum(src.values()) + len(sink)
    assert stats["lateRecords"] == 0


# ------------------------------------------------------------------ 2. poison, dead letters

def check_dead_letters(db, topic, messages, kinds, workload, job):
    """The dead-letter table holds each rejected record exactly once, as produced."""
    want = expected_dead_letters(topic, messages, kinds, workload)
    rows = dead_letters(db)
    where = Counter((r["topic"], r["kafka_partition"], r["kafka_offset"]) for r in rows)
    dup = {k: n for k, n in where.items() if n > 1}
    assert not dup, f"dead letters written more than once: {list(dup.items())[:5]}"
    assert set(where) == set(want), (f"missing {sorted(set(want) - set(where))[:5]}, "
                                     f"unexpected {sorted(set(where) - set(want))[:5]}")
    for r in rows:
        value, why = want[(r["topic"], r["kafka_partition"], r["kafka_offset"])]
        assert bytes(r["raw_value"]) == value
        assert r["error_code"] == why, (r["error_code"], why, value)
        assert r["node"] == "events" and r["job"] == job and r["run"] and r["error_message"]
        assert r["created_at"] is not None
    return len(rows)


def test_poison_records_go_to_the_dead_letter_table(tmp_path, names, db):
    messages, kinds = poison_topic(names, partitions=2, seed=2)
    create_w1(db)
    spec = w1_spec(names["topic"], names["db"], checkpoint="200ms", extra=DEAD_LETTER)
    stats, _ = run_until_idle(tmp_path, spec, "--state-dir", str(tmp_path / "state"))
    want = reference.w1_reference(events_of(messages, kinds, "w1"))
    assert reference.diff(want, reference.mysql_w1(db, "w1")) == ""
    n = check_dead_letters(db, names["topic"], messages, kinds, "w1", "w1")
    assert n == stats["rejectedRecords"] == stats["decodeErrors"] == sum(expected_rejections(messages, kinds, "w1").values())
    with db.cursor() as cur:  # created by Weir, with the documented columns
        cur.execute("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'dlq'"
                    " ORDER BY ORDINAL_POSITION", (names["db"],))
        assert [c for (c,) in cur.fetchall()] == ["id", "job", "version", "run", "node", "topic", "kafka_partition",
                                                  "kafka_offset", "raw_value", "error_code", "error_message", "created_at"]


def test_dead_letters_exactly_once_across_kill_minus_nine(tmp_path, names, db):
    """W2 with dead letters and 200 ms checkpoints, killed -9 three times while input
    (good and bad) keeps arriving, then restored and drained: the data table equals
    the reference and every bad record is in the dead-letter table exactly once."""
    topic, parts = names["topic"], 2
    create_topic(topic, parts)
    create_w2(db)
    state = tmp_path / "state"
    spec = write_spec(tmp_path, w2_spec(topic, names["db"], checkpoint="200ms", extra=DEAD_LETTER))
    rng = random.Random(31)
    streams, produced = [], 0

    def feed(n_good):
        nonlocal produced
        s = poison_stream(n_good, seed=3, start=produced)
        produce_values(topic, [v for v, _ in s], parts, first=produced)
        streams.append(s)
        produced += n_good

    feed(4000)
    for attempt in range(3):
        extra = ["--from-snapshot", "latest"] if snapshots(state) else []
        proc = start_run(spec, "--state-dir", str(state), *extra)
        deadline = time.time() + rng.uniform(1.5, 3.0)
        while time.time() < deadline:  # input keeps arriving while the job runs
            feed(2000)
            time.sleep(rng.uniform(0.05, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    assert snapshots(state), "checkpoints were taken between the kills"
    feed(3000)
    stats, _ = run_until_idle(tmp_path, w2_spec(topic, names["db"], checkpoint="200ms", extra=DEAD_LETTER), "--state-dir",
                              str(state), "--from-snapshot", "latest", idle="2", name="drain.yaml")
    messages = read_topic_full(topic)
    kinds = kind_index(*streams)
    assert len(messages) == sum(len(s) for s in streams)
    want = reference.w2_reference(events_of(messages, kinds, "w2"))
    assert reference.diff(want, reference.mysql_w2(db, "w2")) == ""
    n = check_dead_letters(db, topic, messages, kinds, "w2", "w2")
    assert n > 100


# ------------------------------------------------------------------ 3. rows the table refuses

def sink_reject_input(topic, parts=2, n=3000, seed=4):
    """W2-shaped events where user_id may be null (declared int?), some amounts
    exceed SMALLINT, and some rows break the table's CHECK (ts % 97 <> 0)."""
    rng = random.Random(seed)
    values = []
    for i in range(n):
        e = {"user_id": rng.randrange(40), "amount": rng.randint(850, 1000), "ts": BASE_TS + i * 3}
        r = rng.random()
        if r < 0.02:
            e["user_id"] = None          # NULL into NOT NULL: refused by the column rule
        elif r < 0.04:
            e["amount"] = rng.randint(40_000, 2_000_000)  # out of SMALLINT's range
        elif r < 0.05:
            e.pop("user_id")             # missing, allowed by int? and refused by the table
        values.append(json.dumps(e).encode())
    create_topic(topic, parts)
    produce_values(topic, values, parts)
    events = [json.loads(v) for _, _, v in read_topic_full(topic)]
    assert len(events) == n
    refused, landed = Counter(), Counter()
    for e in events:
        if e["amount"] <= 900:
            continue
        row = (e.get("user_id"), e["amount"], e["ts"])
        if row[0] is None or row[1] > 32767 or row[2] % 97 == 0:
            refused[row] += 1
        else:
            landed[row] += 1
    assert len(refused) > 20 and sum(1 for r in refused if r[2] % 97 == 0 and r[0] is not None and r[1] <= 32767) > 0
    return dict(landed), refused


@pytest.mark.parametrize("policy", ["skip", "deadLetter-xa", "sink-deadLetter-over-job-fail"])
def test_rows_the_table_refuses(tmp_path, names, db, policy):
    landed, refused = sink_reject_input(names["topic"])
    with db.cursor() as cur:
        cur.execute("CREATE TABLE w2 (user_id BIGINT NOT NULL, amount SMALLINT, ts BIGINT,"
                    " CONSTRAINT ts_not_97 CHECK (ts % 97 <> 0))")
    schema = "{ user_id: int?, amount: int, ts: int }"
    if policy == "skip":
        spec = w2_spec(names["topic"], names["db"], schema=schema)
    elif policy == "deadLetter-xa":
        spec = w2_spec(names["topic"], names["db"], schema=schema, checkpoint="200ms", extra=DEAD_LETTER)
    else:  # the sink's own policy wins over the job's
        spec = w2_spec(names["topic"], names["db"], schema=schema, extra="onError: fail\n",
                       sink_extra="    onError: deadLetter\n    deadLetter: { table: dlq }\n")
    stats, p = run_until_idle(tmp_path, spec, "--state-dir", str(tmp_path / "state"))
    assert reference.diff(landed, reference.mysql_w2(db, "w2")) == ""
    n_refused = sum(refused.values())
    assert rejected_by_node(stats) == {"out": {"sink_rejected": n_refused}}, p.stderr[-3000:]
    assert stats["rejectedRecords"] == n_refused and stats["decodeErrors"] == 0
    with db.cursor() as cur:
        cur.execute("SHOW TABLES LIKE 'dlq'")
        has_dlq = cur.fetchone() is not None
    if policy == "skip":
        assert not has_dlq
        return
    rows = dead_letters(db)
    assert {r["error_code"] for r in rows} == {"sink_rejected"}
    assert {r["node"] for r in rows} == {"out"}
    got = Counter()
    for r in rows:
        d = json.loads(bytes(r["raw_value"]))
        got[(d["user_id"], d["amount"], d["ts"])] += 1
        assert r["error_message"]
    assert got == refused
    msgs = " ".join(r["error_message"] for r in rows)
    assert "user_id" in msgs and "amount" in msgs and ("ts_not_97" in msgs.lower() or "check" in msgs.lower()), msgs[:2000]


# ------------------------------------------------------------------ 4. process stalls

def test_sigstop_stalls_make_no_late_records(tmp_path, names, db):
    """Three 8 s SIGSTOPs of a W1 job reading a topic fed live at 1,000 events/s with
    wall-clock event times: idleness is judged by lag, so a stall is not silence and
    no record is late; the table equals the reference."""
    topic, parts = names["topic"], 2
    create_topic(topic, parts)
    create_w1(db)
    spec = w1_spec(topic, names["db"], parallelism=1, checkpoint="500ms", name="w1stall",
                   event_time="{ field: ts, maxOutOfOrderness: 2s, idleTimeout: 2s }")
    producer = LiveProducer(topic, parts, rate=1000, count=30_000, seed=41)
    producer.start()
    time.sleep(1.0)
    stats_file = tmp_path / "stats.json"
    proc = start_run(write_spec(tmp_path, spec), "--state-dir", str(tmp_path / "state"), "--until-idle", "4",
                     "--stats", str(stats_file))
    started = time.time()
    try:
        for pause_at in (3, 13, 23):  # seconds after the job started: stalls end at 11, 21, 31
            time.sleep(max(0.0, pause_at - (time.time() - started)))
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"the job ended (exit {proc.returncode}) {time.time() - started:.1f} s after its "
                                     f"start, while input was still arriving:\n{err[-3000:]}")
            os.kill(proc.pid, signal.SIGSTOP)
            try:
                time.sleep(8)
            finally:
                os.kill(proc.pid, signal.SIGCONT)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
    producer.join(60)
    assert producer.error is None and producer.sent == 30_000
    out, err = finish(proc, 90)
    assert proc.returncode == 0, err[-3000:]
    stats = json.loads(stats_file.read_text())
    messages = read_topic_full(topic)
    events = [json.loads(v) for _, _, v in messages]
    assert len(events) == 30_000
    assert stats["lateRecords"] == 0, f"{stats['lateRecords']} late records (producer's longest pause {producer.max_gap:.2f} s)"
    assert stats["recordsIn"] == 30_000 and stats["restarts"] == 0
    assert reference.diff(reference.w1_reference(events), reference.mysql_w1(db, "w1")) == ""



def test_until_idle_waits_while_a_live_feed_runs(tmp_path, names, db):
    """The premise of the stall test without stalls: --until-idle 3 must not find the
    input complete while records keep arriving at 1,000 events/s."""
    topic, parts = names["topic"], 2
    create_topic(topic, parts)
    create_w1(db)
    spec = w1_spec(topic, names["db"], parallelism=1, checkpoint="500ms", name="w1live",
                   event_time="{ field: ts, maxOutOfOrderness: 2s, idleTimeout: 2s }")
    producer = LiveProducer(topic, parts, rate=1000, count=12_000, seed=42)
    producer.start()
    time.sleep(0.5)
    stats_file = tmp_path / "stats.json"
    proc = start_run(write_spec(tmp_path, spec), "--state-dir", str(tmp_path / "state"), "--until-idle", "3",
                     "--stats", str(stats_file))
    started, ended = time.time(), None
    while producer.is_alive() and time.time() - started < 60:
        if ended is None and proc.poll() is not None:
            ended = time.time() - started
        time.sleep(0.1)
    out, err = finish(proc, 60)
    assert producer.error is None and producer.sent == 12_000
    assert ended is None, (f"the run ended {ended:.1f} s after its start (exit {proc.returncode}) while the producer "
                           f"still sent 1,000 events/s:\n{err[-2000:]}")
    assert proc.returncode == 0, err[-3000:]
    stats = json.loads(stats_file.read_text())
    events = [json.loads(v) for _, _, v in read_topic_full(topic)]
    assert stats["recordsIn"] == len(events) == 12_000
    assert stats["lateRecords"] == 0
    assert reference.diff(reference.w1_reference(events), reference.mysql_w1(db, "w1")) == ""

# ------------------------------------------------------------------ 5. random cancels

def test_twenty_random_cancels_lose_and_duplicate_nothing(tmp_path, names, db):
    """SIGUSR2 (cancel without snapshot) at 20 random moments while input keeps
    arriving, restoring from the latest checkpoint each time: cancel commits the
    epochs whose checkpoint completed and rolls back the rest, so the final table
    has every row exactly once."""
    topic, parts = names["topic"], 2
    create_topic(topic, parts)
    create_w2(db)
    state = tmp_path / "state"
    spec = write_spec(tmp_path, w2_spec(topic, names["db"], checkpoint="200ms"))
    rng = random.Random(5)
    producer = LiveProducer(topic, parts, rate=2000, seed=51, wall_ts=False, chunk=50)
    producer.start()
    exits, restored = [], 0
    try:
        for cycle in range(20):
            extra = []
            if cycle > 0 and snapshots(state):
                extra = ["--from-snapshot", "latest"]
                restored += 1
            proc = start_run(spec, "--state-dir", str(state), *extra)
            time.sleep(rng.uniform(0.5, 3.0))
            proc.send_signal(signal.SIGUSR2)
            out, err = finish(proc, 60)
            exits.append(proc.returncode)
            assert proc.returncode == 130, f"cycle {cycle}: exit {proc.returncode}\n{err[-3000:]}"
            assert "stopped with snapshot" not in out
    finally:
        producer.stop()
    assert producer.error is None and producer.sent > 20_000
    assert restored >= 15, f"only {restored} of 19 restarts found a checkpoint"
    run_until_idle(tmp_path, w2_spec(topic, names["db"], checkpoint="200ms"), "--state-dir", str(state),
                   "--from-snapshot", "latest", idle="2", name="drain.yaml")
    events, bad = reference.decode(reference.read_topic(BOOTSTRAP, topic))
    assert bad == 0 and len(events) == producer.sent
    assert reference.diff(reference.w2_reference(events), reference.mysql_w2(db, "w2")) == ""


# ------------------------------------------------------------------ 6. maxParallelism

def test_restore_with_another_max_parallelism_is_refused(tmp_path, names, db):
    topic = names["topic"]
    create_w1(db)
    state = tmp_path / "state"

    def produce(start, count):
        weir("produce", "--bootstrap", BOOTSTRAP, "--topic", topic, "--count", str(count), "--seed", "61",
             "--start", str(start), "--events-per-second", "1000", *(["--partitions", "4"] if start == 0 else []))

    def spec(mp, parallelism=2):
        return write_spec(tmp_path, w1_spec(topic, names["db"], parallelism=parallelism, checkpoint="300ms",
                                            max_parallelism=mp), f"mp{mp}-p{parallelism}.yaml")
    produce(0, 25_000)  # 25 s of event time: two windows fire, the third is open at the stop
    proc = start_run(spec(128), "--state-dir", str(state))
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    out, err = finish(proc, 60)
    assert proc.returncode == 0, err[-3000:]
    snap = re.search(r"stopped with snapshot (\S+)", out + err).group(1)
    before = table_rows(db, "w1")
    assert before, "windows that fired before the stop are in the table"
    produce(25_000, 10_000)
    for mp in (64, 256):
        p = weir("run", spec(mp), "--state-dir", str(state), "--from-snapshot", snap, "--until-idle", "1", "--plain",
                 check=False, timeout=60)
        assert p.returncode == 1, f"maxParallelism {mp}: exit {p.returncode}\n{p.stderr[-3000:]}"
        assert "maxParallelism" in p.stderr and "128" in p.stderr, p.stderr[-3000:]
        assert table_rows(db, "w1") == before, f"maxParallelism {mp}: the refused restore wrote to the table"
    weir("run", spec(128, parallelism=1), "--state-dir", str(state), "--from-snapshot", snap, "--until-idle", "1",
         "--plain", timeout=120)
    events, _ = reference.decode(reference.read_topic(BOOTSTRAP, topic))
    assert len(events) == 35_000
    assert reference.diff(reference.w1_reference(events), reference.mysql_w1(db, "w1")) == ""


# ------------------------------------------------------------------ 7. stateless upsert at parallelism 2

def test_stateless_upsert_at_parallelism_two(tmp_path, names, db):
    """source -> filter -> upsert keyed by (user_id, ts), a key the source is not
    partitioned by: the same keys arrive on every partition and both sink subtasks
    would update the same rows in concurrent XA epochs (a lock wait until the
    timeout) unless the sink is fed by a keyed exchange."""
    topic, parts = names["topic"], 4
    create_topic(topic, parts)
    rng = random.Random(7)

    def amount(u, k):  # a function of the key: the upserted value is deterministic
        return 1 + (u * 37 + k * 53) % 1000
    values = []
    for _ in range(60_000):
        u, k = rng.randrange(20), rng.randrange(10)
        values.append(json.dumps({"user_id": u, "amount": amount(u, k), "ts": BASE_TS + k * 1000}).encode())
    produce_values(topic, values, parts)
    with db.cursor() as cur:
        cur.execute("CREATE TABLE w7 (user_id BIGINT, amount BIGINT, ts BIGINT, PRIMARY KEY (user_id, ts))")
    spec = f"""name: w7
parallelism: 2
checkpoint: {{ interval: 200ms, retain: 3, timeout: 30s }}
nodes:
  - id: events
    kafka: {{ bootstrap: "{BOOTSTRAP}", topic: {topic}, schema: {{ user_id: int, amount: int, ts: int }} }}
  - id: valid
    inputs: [events]
    filter: "amount > 100"
  - id: out
    inputs: [valid]
    mysql: {{ url: "{mysql_url(names['db'])}", table: w7, mode: upsert, key: [user_id, ts] }}
"""
    t0 = time.time()
    stats, p = run_until_idle(tmp_path, spec, "--state-dir", str(tmp_path / "state"), timeout=150)
    took = time.time() - t0
    want = {}
    for _, _, v in read_topic_full(topic):
        e = json.loads(v)
        if e["amount"] > 100:
            want[(e["user_id"], e["ts"])] = e["amount"]
    with db.cursor() as cur:
        cur.execute("SELECT user_id, ts, amount FROM w7")
        got = {(int(u), int(t)): int(a) for u, t, a in cur.fetchall()}
    assert reference.diff(want, got) == ""
    assert len(want) > 150
    assert "Lock wait timeout" not in p.stderr and "restarting" not in p.stderr, p.stderr[-3000:]
    assert stats["restarts"] == 0
    assert took < 40, f"took {took:.1f} s (a lock wait?)"


# ------------------------------------------------------------------ 8. database stall

def test_mariadb_sigstop_for_thirty_seconds(tmp_path, names, db):
    """MariaDB frozen (SIGSTOP) for 30 s in the middle of a W2 run with checkpoints,
    while input keeps arriving: the run rides it out, completes, and is exact."""
    topic, parts = names["topic"], 2
    create_topic(topic, parts)
    create_w2(db)
    pid = mariadb_pid()
    producer = LiveProducer(topic, parts, rate=2000, seed=81, wall_ts=False, chunk=50)
    producer.start()
    time.sleep(1.0)
    stats_file = tmp_path / "stats.json"
    proc = start_run(write_spec(tmp_path, w2_spec(topic, names["db"], checkpoint="200ms")),
                     "--state-dir", str(tmp_path / "state"), "--until-idle", "3", "--stats", str(stats_file))
    try:
        time.sleep(3.0)
        assert proc.poll() is None
        sigstop_for(pid, 30)  # SIGCONT in a finally
        assert proc.poll() is None, "the run ended during the stall"
        time.sleep(3.0)
    finally:
        producer.stop()
    out, err = finish(proc, 120)
    assert proc.returncode == 0, err[-3000:]
    assert producer.error is None
    events, bad = reference.decode(reference.read_topic(BOOTSTRAP, topic))
    assert bad == 0 and len(events) == producer.sent
    assert reference.diff(reference.w2_reference(events), reference.mysql_w2(db, "w2")) == ""
    stats = json.loads(stats_file.read_text())
    assert stats["recordsIn"] == producer.sent


# ------------------------------------------------------------------ 9. idle CPU

def test_idle_job_uses_under_one_percent_of_a_core(tmp_path, names, db):
    topic = names["topic"]
    create_topic(topic, 2)
    create_w2(db)
    proc = start_run(write_spec(tmp_path, w2_spec(topic, names["db"], checkpoint="1s")),
                     "--state-dir", str(tmp_path / "state"))
    try:
        time.sleep(3)
        assert proc.poll() is None
        c0, t0 = cpu_seconds(proc.pid), time.time()
        time.sleep(10)
        c1, t1 = cpu_seconds(proc.pid), time.time()
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = finish(proc, 60)
    used = c1 - c0
    assert proc.returncode == 0, err[-3000:]
    assert used < 0.01 * (t1 - t0), f"idle job used {used:.2f} CPU-seconds in {t1 - t0:.1f} s ({100 * used / (t1 - t0):.1f}% of a core)"


# ------------------------------------------------------------------ 10. schema-less sink

def test_schema_less_source_binds_to_the_sink_table(tmp_path, names, db):
    """source (no schema) -> filter -> mysql append: the source is bound to the table's
    columns (user_id BIGINT NOT NULL makes user_id required; ts may be missing)."""
    topic, parts = names["topic"], 2
    create_topic(topic, parts)
    rng = random.Random(10)
    values, kinds = [], {}
    for i in range(3000):
        e = {"user_id": rng.randrange(100), "amount": rng.randint(-500, 500), "ts": BASE_TS + i, "note": "x" * (i % 5)}
        r = rng.random()
        if r < 0.01:
            e.pop("user_id"); e["amount"] = rng.randint(1, 500); kind = "missing_field"
        elif r < 0.015:
            e["user_id"] = None; e["amount"] = rng.randint(1, 500); kind = "missing_field"
        elif r < 0.02:
            e["amount"] = "lots"; kind = "type_mismatch"
        elif r < 0.03:
            e.pop("ts"); kind = "good"
        elif r < 0.04:
            e.pop("amount"); kind = "good"
        else:
            kind = "good"
        v = json.dumps(e).encode()
        if rng.random() < 0.005:
            v, kind = b"{not json", "malformed"
        values.append(v)
        kinds.setdefault(v, kind)
    produce_values(topic, values, parts)
    with db.cursor() as cur:
        cur.execute("CREATE TABLE pos (user_id BIGINT NOT NULL, amount BIGINT, ts BIGINT)")
    spec = f"""name: schemaless
parallelism: 2
nodes:
  - id: events
    kafka: {{ bootstrap: "{BOOTSTRAP}", topic: {topic} }}
  - id: positive
    inputs: [events]
    filter: "amount > 0"
  - id: out
    inputs: [positive]
    mysql: {{ url: "{mysql_url(names['db'])}", table: pos, mode: append }}
"""
    stats, p = run_until_idle(tmp_path, spec)
    messages = read_topic_full(topic)
    want, rej = Counter(), Counter()
    for _, _, v in messages:
        k = kinds[v]
        if k != "good":
            rej[k] += 1
            continue
        e = json.loads(v)
        if e.get("amount") is not None and e["amount"] > 0:
            want[(e["user_id"], e["amount"], e.get("ts"))] += 1
    with db.cursor() as cur:
        cur.execute("SELECT user_id, amount, ts FROM pos")
        got = Counter((int(u), int(a), None if t is None else int(t)) for u, a, t in cur.fetchall())
    assert reference.diff(dict(want), dict(got)) == ""
    assert any(k[2] is None for k in want), "rows without ts land with NULL"
    assert rej["missing_field"] > 10
    assert rejected_by_node(stats) == {"events": dict(rej)}, p.stderr[-3000:]
    assert stats["rejectedRecords"] == stats["decodeErrors"] == sum(rej.values())


# ------------------------------------------------------------------ 11. spec traps

def test_huge_durations_and_event_times_do_not_crash(tmp_path, names, db):
    spec = w2_spec(names["topic"], names["db"], checkpoint="1e300s")
    p = weir("validate", write_spec(tmp_path, spec, "huge.yaml"), check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "checkpoint.interval" in p.stderr, p.stderr
    for interval in ("1e300ms", "-5s", "nan", "inf"):
        p = weir("validate", write_spec(tmp_path, w2_spec(names["topic"], names["db"], checkpoint=interval), "bad.yaml"),
                 check=False)
        assert p.returncode == 1 and "checkpoint.interval" in p.stderr, (interval, p.stderr)
    p = weir("validate", write_spec(tmp_path, w1_spec(names["topic"], names["db"],
                                                      event_time="{ field: ts, maxOutOfOrderness: 1e300s }"), "ooo.yaml"),
             check=False)
    assert p.returncode == 1 and "maxOutOfOrderness" in p.stderr, p.stderr

    # "ts": 1e19 (and other impossible event times) in a schema-less source with eventTime.
    topic, parts = names["topic"], 2
    create_topic(topic, parts)
    rng = random.Random(11)
    values, bad = [], []
    for i in range(2000):
        values.append(json.dumps({"user_id": rng.randrange(30), "amount": rng.randint(1, 1000), "ts": BASE_TS + i * 20}).encode())
        if i % 200 == 7:
            for b in (b'{"user_id": 1, "amount": 5, "ts": 1e19}', b'{"user_id": 1, "amount": 5, "ts": -1e19}',
                      b'{"user_id": 1, "amount": 5, "ts": 1e308}', b'{"user_id": 1, "amount": 5, "ts": "soon"}',
                      b'{"user_id": 1, "amount": 5}', b'{"user_id": 1, "amount": 5, "ts": 9223372036854775807}'):
                values.append(b)
                bad.append(b)
    produce_values(topic, values, parts)
    create_w1(db)
    stats, p = run_until_idle(tmp_path, w1_spec(topic, names["db"], schema=None), name="w1.yaml")
    events = [json.loads(v) for _, _, v in read_topic_full(topic) if v not in set(bad)]
    assert len(events) == 2000
    assert reference.diff(reference.w1_reference(events), reference.mysql_w1(db, "w1")) == ""
    assert rejected_by_node(stats) == {"events": {"bad_event_time": len(bad)}}, p.stderr[-3000:]
    assert stats["decodeErrors"] == len(bad) and stats["lateRecords"] == 0


def test_messages_without_a_value_are_rejected_not_ignored(tmp_path, names, db):
    """A tombstone (null value) or an empty value is not a JSON object: counted as
    malformed and dead-lettered like any bad record, never silently dropped."""
    topic = names["topic"]
    create_topic(topic, 1)
    good = [json.dumps({"user_id": i, "amount": 950 + i, "ts": 1_700_000_000_000 + i}).encode() for i in range(5)]
    delivered = produce_values(topic, good[:2] + [None] + good[2:4] + [b""] + good[4:], 1)
    create_w2(db)
    stats, _ = run_until_idle(tmp_path, w2_spec(topic, names["db"], extra=DEAD_LETTER), name="w2t.yaml")
    assert stats["decodeErrors"] == stats["rejectedRecords"] == 2
    assert rejected_by_node(stats) == {"events": {"malformed": 2}}
    assert reference.diff(reference.w2_reference([json.loads(v) for v in good]), reference.mysql_w2(db, "w2")) == ""
    offsets = sorted(o for p, o, v in delivered if not v)
    dl = dead_letters(db)
    assert sorted(d["kafka_offset"] for d in dl) == offsets == [2, 5]
    assert all(d["error_code"] == "malformed" and not d["raw_value"] for d in dl), dl
