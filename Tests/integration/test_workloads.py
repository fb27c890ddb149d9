"""End-to-end: real Tansu in, real MariaDB out, results compared with a
reference computed independently (confluent-kafka reads the topic back)."""
import json

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

import reference
from conftest import BOOTSTRAP, MYSQL_PORT, weir, write_spec

SCHEMA = "{ user_id: int, amount: int, ts: int }"


def w1_spec(topic, db, parallelism=2, window="tumbling: 10s"):
    return f"""
name: w1
parallelism: {parallelism}
nodes:
  - id: events
    kafka: {{ bootstrap: "{BOOTSTRAP}", topic: {topic}, schema: {SCHEMA}, eventTime: {{ field: ts, maxOutOfOrderness: 1s }} }}
  - id: per-user
    inputs: [events]
    keyBy: [user_id]
    window: {{ {window} }}
    aggregate: {{ cnt: "count()", total: "sum(amount)" }}
  - id: out
    inputs: [per-user]
    mysql: {{ url: "mysql://root@127.0.0.1:{MYSQL_PORT}/{db}", table: w1, mode: upsert, key: [user_id, window_start] }}
"""


def w2_spec(topic, db, parallelism=2):
    return f"""
name: w2
parallelism: {parallelism}
nodes:
  - id: events
    kafka: {{ bootstrap: "{BOOTSTRAP}", topic: {topic}, schema: {SCHEMA} }}
  - id: big
    inputs: [events]
    filter: "amount > 900"
  - id: slim
    inputs: [big]
    select: [user_id, amount, ts]
  - id: out
    inputs: [slim]
    mysql: {{ url: "mysql://root@127.0.0.1:{MYSQL_PORT}/{db}", table: w2, mode: append }}
"""


def create_topic(name, partitions):
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(10)


def create_tables(db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE w1 (user_id BIGINT, window_start BIGINT, window_end BIGINT, cnt BIGINT, total BIGINT,"
                    " PRIMARY KEY (user_id, window_start))")
        cur.execute("CREATE TABLE w2 (user_id BIGINT, amount BIGINT, ts BIGINT)")


def run_job(tmp_path, spec):
    stats = tmp_path / "stats.json"
    weir("run", write_spec(tmp_path, spec), "--until-idle", "1", "--plain", "--stats", str(stats))
    return json.loads(stats.read_text())


def test_w1_windowed_upsert_matches_reference(tmp_path, names, db):
    create_tables(db)
    weir("produce", "--bootstrap", BOOTSTRAP, "--topic", names["topic"], "--partitions", "4",
         "--count", "60000", "--seed", "11")
    stats = run_job(tmp_path, w1_spec(names["topic"], names["db"]))
    events, bad = reference.decode(reference.read_topic(BOOTSTRAP, names["topic"]))
    assert bad == 0 and len(events) == 60000
    expected = reference.w1_reference(events)
    actual = reference.mysql_w1(db, "w1")
    assert reference.diff(expected, actual) == ""
    assert stats["recordsIn"] == 60000
    assert stats["lateRecords"] == 0
    nodes = stats["nodes"]
    assert nodes["events"]["recordsIn"] == nodes["events"]["recordsOut"] == 60000
    assert nodes["per-user"]["recordsIn"] == 60000
    assert nodes["per-user"]["recordsOut"] == nodes["out"]["recordsIn"] == nodes["out"]["recordsOut"] == len(expected)


def test_w2_filter_append_matches_reference(tmp_path, names, db):
    create_tables(db)
    weir("produce", "--bootstrap", BOOTSTRAP, "--topic", names["topic"], "--partitions", "4",
         "--count", "50000", "--seed", "12")
    stats = run_job(tmp_path, w2_spec(names["topic"], names["db"]))
    events, _ = reference.decode(reference.read_topic(BOOTSTRAP, names["topic"]))
    expected = reference.w2_reference(events)
    actual = reference.mysql_w2(db, "w2")
    assert sum(expected.values()) > 4000  # about 10% of the input
    assert reference.diff(expected, actual) == ""
    assert stats["recordsOut"] == sum(expected.values())
    kept = sum(expected.values())
    assert {k: (v["recordsIn"], v["recordsOut"]) for k, v in stats["nodes"].items()} == {
        "events": (50000, 50000), "big": (50000, kept), "slim": (kept, kept), "out": (kept, kept)}


def test_parallelism_one_and_three_agree(tmp_path, names, db):
    create_tables(db)
    weir("produce", "--bootstrap", BOOTSTRAP, "--topic", names["topic"], "--partitions", "4",
         "--count", "20000", "--seed", "13")
    events, _ = reference.decode(reference.read_topic(BOOTSTRAP, names["topic"]))
    expected = reference.w1_reference(events)
    for p in (1, 3):
        with db.cursor() as cur:
            cur.execute("TRUNCATE TABLE w1")
        run_job(tmp_path, w1_spec(names["topic"], names["db"], parallelism=p))
        assert reference.diff(expected, reference.mysql_w1(db, "w1")) == "", f"parallelism {p}"


def test_malformed_records_are_counted_and_skipped(tmp_path, names, db):
    create_tables(db)
    create_topic(names["topic"], 2)
    p = Producer({"bootstrap.servers": BOOTSTRAP})
    good = [{"user_id": i % 7, "amount": 901 + i % 99, "ts": 1_700_000_000_000 + i} for i in range(3000)]
    bad = [b"not json", b'{"user_id": 1, "amount": ', b'{"user_id": "seven", "amount": 950, "ts": 1}', b"[1,2,3]", b"\xff\xfe"]
    n_bad = 0
    for i, e in enumerate(good):
        p.produce(names["topic"], json.dumps(e).encode(), partition=i % 2)
        if i % 600 == 0:
            p.produce(names["topic"], bad[n_bad % len(bad)], partition=i % 2)
            n_bad += 1
    p.flush(30)
    stats = run_job(tmp_path, w2_spec(names["topic"], names["db"]))
    events, undecodable = reference.decode(reference.read_topic(BOOTSTRAP, names["topic"]))
    # The reference skips what JSON can't parse; the typed schema also rejects "seven".
    expected = reference.w2_reference([e for e in events if isinstance(e.get("user_id"), int)])
    assert reference.diff(expected, reference.mysql_w2(db, "w2")) == ""
    assert sum(expected.values()) == 3000
    assert stats["decodeErrors"] == n_bad
    assert stats["recordsIn"] == 3000 + n_bad
    assert stats["nodes"]["events"] == {"recordsIn": 3000 + n_bad, "recordsOut": 3000, "backpressureMs": 0,
                                        "rejected": {"malformed": 4, "type_mismatch": 1}}
    assert stats["rejectedRecords"] == n_bad
