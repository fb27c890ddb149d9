"""`weir bench` against the real Tansu and MariaDB: its counts and its sink
check, never its speed. Each run keeps its generated topics (--keep-topics) so
that the tables can also be checked here, independently of weir, from the
topic's own messages."""
import json
import pathlib
from collections import defaultdict

import pytest

from conftest import BOOTSTRAP, MYSQL_PORT, ROOT, reference, weir, write_spec
from fault_support import delete_topic

EVENTS = 30_000


def bench(spec, *args, check=True):
    p = weir("bench", spec, "--json", "--keep-topics", *args, timeout=300, check=check)
    return json.loads(p.stdout), p


def delete_topics(report):
    """The generated topics (kept by --keep-topics for the checks here)."""
    for topic in report["input"]["topics"].values():
        delete_topic(topic)


def example_spec(tmp_path, db):
    """The README's example job (examples/user-spend.yaml) on the test servers and database."""
    text = (ROOT / "examples" / "user-spend.yaml").read_text()
    text = text.replace("127.0.0.1:19092", BOOTSTRAP).replace("127.0.0.1:13306/analytics", f"127.0.0.1:{MYSQL_PORT}/{db}")
    return write_spec(tmp_path, text)


def create_example_table(conn):
    sql = (ROOT / "examples" / "user-spend.sql").read_text()
    with conn.cursor() as cur:
        for stmt in sql.split(";"):
            stmt = stmt.strip()
            if stmt and not stmt.upper().startswith(("CREATE DATABASE", "TRUNCATE")):
                cur.execute(stmt.replace("analytics.", ""))
    conn.commit()


def events_of(report, node):
    values = reference.read_topic(BOOTSTRAP, report["input"]["topics"][node])
    events, malformed = reference.decode(values)
    return events, malformed


def test_bench_readme_example(tmp_path, db, names):
    create_example_table(db)
    spec = example_spec(tmp_path, names["db"])
    report, _ = bench(spec, "--events", str(EVENTS), "--keys", "300")
    try:
        assert report["passed"], report["problems"]
        assert report["job"] == "user-spend" and report["parallelism"] == 2
        assert report["input"]["messages"] == EVENTS and report["input"]["badRecords"] == 0
        assert report["records"]["read"] == EVENTS and report["records"]["rejected"] == 0 and report["records"]["late"] == 0
        assert report["ceiling"]["messages"] == EVENTS and report["ceiling"]["eventsPerSecond"] > 0
        assert report["ratio"] == pytest.approx(report["eventsPerSecond"] / report["ceiling"]["eventsPerSecond"])
        # The run's seconds split where the first and last records were read (sampled every 2 ms).
        ph = report["phases"]
        assert ph["startMillis"] > 0 and ph["readMillis"] > 0 and ph["finishMillis"] > 0, ph
        assert sum(ph.values()) == pytest.approx(report["seconds"] * 1000, abs=1), (ph, report["seconds"])
        assert report["readingEventsPerSecond"] == pytest.approx(EVENTS / ph["readMillis"] * 1000)
        assert 0 < report["ceiling"]["startMillis"] < report["ceiling"]["seconds"] * 1000
        [check] = report["checks"]
        assert check["status"] == "pass", check

        # Independently of weir: the windows from the topic's own messages, against the table.
        events, malformed = events_of(report, "events")
        assert malformed == 0 and len(events) == EVENTS
        expected = {}
        for e in events:
            start = e["ts"] // 10_000 * 10_000
            c, t, b = expected.get((e["user_id"], start), (0, 0, 0))
            expected[(e["user_id"], start)] = (c + 1, t + e["amount"], max(b, e["amount"]))
        with db.cursor() as cur:
            cur.execute("SELECT user_id, UNIX_TIMESTAMP(window_start) * 1000, cnt, total, biggest FROM user_spend")
            actual = {(int(u), int(ws)): (int(c), int(t), int(b)) for u, ws, c, t, b in cur.fetchall()}
        assert actual == expected, reference.diff(expected, actual)
        assert len({u for u, _ in expected}) <= 300          # --keys bounds the key cardinality
        assert report["records"]["sinkRows"] >= len(expected)
        assert check["expectedRows"] == len(expected)

        # Latency covers every committed row; CPU is split by the job's nodes.
        assert report["latencyMillis"]["rows"] == report["records"]["sinkRows"]
        lat = report["latencyMillis"]
        assert 0 <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert {n["node"] for n in report["cpu"]["nodes"]} == {"events", "per-user", "out"}
        assert all(len(n["subtasks"]) == 2 for n in report["cpu"]["nodes"])
        assert report["cpu"]["processSeconds"] > 0
        assert report["peakRSSBytes"] > 0
        assert report["checkpoints"]["completed"] >= 1          # the bounded run ends with a drain snapshot
    finally:
        delete_topics(report)


UNION_SLIDING = """
name: bench-union-sliding
parallelism: 2
nodes:
  - id: clicks
    kafka:
      bootstrap: {bootstrap}
      topic: unused-clicks
      format: json
      schema: {{ user_id: int, amount: int, ts: int, page: string }}
      eventTime: {{ field: ts, maxOutOfOrderness: 1s }}
  - id: views
    kafka:
      bootstrap: {bootstrap}
      topic: unused-views
      format: json
      schema: {{ user_id: int, amount: int, ts: int, page: string }}
      eventTime: {{ field: ts, maxOutOfOrderness: 1s }}
  - id: both
    inputs: [clicks, views]
    union: true
  - id: per-user
    inputs: [both]
    keyBy: [user_id]
    window: {{ sliding: 10s, slide: 5s }}
    aggregate: {{ cnt: "count()", total: "sum(amount)", top_page: "max(page)" }}
  - id: out
    inputs: [per-user]
    mysql:
      url: mysql://root@127.0.0.1:{mysql}/{db}
      table: sliding_out
      mode: upsert
      key: [user_id, window_start]
checkpoint: {{ interval: 200ms }}
"""


def test_bench_union_sliding_with_bad_records(tmp_path, db, names):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE sliding_out (user_id BIGINT NOT NULL, window_start BIGINT NOT NULL, window_end BIGINT NOT NULL, "
                    "cnt BIGINT NOT NULL, total BIGINT NOT NULL, top_page VARCHAR(16), PRIMARY KEY (user_id, window_start))")
    spec = write_spec(tmp_path, UNION_SLIDING.format(bootstrap=BOOTSTRAP, mysql=MYSQL_PORT, db=names["db"]))
    report, _ = bench(spec, "--events", str(EVENTS), "--keys", "200", "--bad-share", "0.02", "--partitions", "3")
    try:
        assert report["passed"], report["problems"]
        bad = report["input"]["badRecords"]
        assert 2 * EVENTS * 0.01 < bad < 2 * EVENTS * 0.03      # about 2% of both sources
        assert report["records"]["read"] == 2 * EVENTS
        assert report["records"]["rejected"] == bad
        assert set(report["input"]["topics"]) == {"clicks", "views"}
        [check] = report["checks"]
        assert check["status"] == "pass", check

        # Independently: sliding windows over the good records of both topics.
        events = []
        for node in ("clicks", "views"):
            good, malformed = events_of(report, node)
            # reference.decode skips messages that are not JSON; the other bad kinds parse but break the schema.
            events += [e for e in good if isinstance(e.get("amount"), int) and isinstance(e.get("user_id"), int)]
        assert len(events) == 2 * EVENTS - bad
        expected = defaultdict(lambda: [0, 0, None])
        for e in events:
            last = e["ts"] // 5000 * 5000
            for start in (last, last - 5000):
                w = expected[(e["user_id"], start)]
                w[0] += 1
                w[1] += e["amount"]
                w[2] = e["page"] if w[2] is None or e["page"] > w[2] else w[2]
        with db.cursor() as cur:
            cur.execute("SELECT user_id, window_start, window_end, cnt, total, top_page FROM sliding_out")
            rows = cur.fetchall()
        actual = {(int(u), int(ws)): [int(c), int(t), p] for u, ws, we, c, t, p in rows}
        assert all(int(we) - int(ws) == 10_000 for _, ws, we, *_ in rows)
        assert actual == dict(expected), reference.diff(dict(expected), actual)
        assert report["checkpoints"]["completed"] >= 1
    finally:
        delete_topics(report)


W2_APPEND = """
name: bench-w2
parallelism: 2
nodes:
  - id: events
    kafka:
      bootstrap: {bootstrap}
      topic: {topic}
      format: json
      schema: {{ user_id: int, amount: int, ts: int }}
  - id: big
    inputs: [events]
    filter: "amount > 900"
  - id: fields
    inputs: [big]
    select: [user_id, amount, ts]
  - id: out
    inputs: [fields]
    mysql:
      url: mysql://root@127.0.0.1:{mysql}/{db}
      table: big_spend
      mode: append
"""


def test_bench_check_fails_when_the_table_is_wrong(tmp_path, db, names):
    """A trigger alters one amount in a hundred: the bench must say FAILED, exit 1, and name the table."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE big_spend (user_id BIGINT, amount BIGINT, ts BIGINT)")
        cur.execute("CREATE TRIGGER tamper BEFORE INSERT ON big_spend FOR EACH ROW "
                    "IF NEW.user_id % 100 = 7 THEN SET NEW.amount = NEW.amount + 1; END IF")
    spec = write_spec(tmp_path, W2_APPEND.format(bootstrap=BOOTSTRAP, topic=names["topic"], mysql=MYSQL_PORT, db=names["db"]))
    report, p = bench(spec, "--events", "20000", "--no-ceiling", check=False)
    try:
        assert p.returncode == 1, p.stderr
        assert not report["passed"]
        [check] = report["checks"]
        assert check["status"] == "fail" and "big_spend" in check["table"]
        assert "missing" in check["detail"] and "unexpected" in check["detail"]
        assert "ceiling" not in report and "ratio" not in report     # --no-ceiling
    finally:
        delete_topics(report)


def test_bench_append_into_shadow_and_replay(tmp_path, db, names):
    """An append job into a shadow database passes its check; --replay reads the source's own topic to its end."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE big_spend (user_id BIGINT, amount BIGINT, ts BIGINT)")
        cur.execute("INSERT INTO big_spend VALUES (1, 2, 3)")      # the real table is left alone
    db.commit()
    spec = write_spec(tmp_path, W2_APPEND.format(bootstrap=BOOTSTRAP, topic=names["topic"], mysql=MYSQL_PORT, db=names["db"]))
    shadow = names["db"] + "_shadow"
    report, _ = bench(spec, "--events", "20000", "--shadow-database", shadow, "--no-ceiling")
    try:
        assert report["passed"], report["problems"]
        [check] = report["checks"]
        assert check["status"] == "pass" and check["table"] == f"{shadow}.big_spend"
        events, _ = events_of(report, "events")
        big = [e for e in events if e["amount"] > 900]
        with db.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM {shadow}.big_spend")
            assert cur.fetchone()[0] == len(big) == check["expectedRows"]
            cur.execute("SELECT COUNT(*) FROM big_spend")
            assert cur.fetchone()[0] == 1
    finally:
        delete_topics(report)

    # Replay: the job's own topic as it is (here: 5,000 messages from weir produce), bounded to its end.
    weir("produce", "--bootstrap", BOOTSTRAP, "--topic", names["topic"], "--partitions", "2", "--count", "5000")
    report, _ = weir_bench_replay(spec, shadow)
    assert report["input"]["mode"] == "replay" and report["input"]["messages"] == 5000
    assert report["records"]["read"] == 5000
    assert report["ceiling"]["messages"] == 5000
    assert [c["status"] for c in report["checks"]] == ["skipped"]
    big = [e for e in reference.decode(reference.read_topic(BOOTSTRAP, names["topic"]))[0] if e["amount"] > 900]
    with db.cursor() as cur:
        cur.execute(f"SELECT COUNT(*) FROM {shadow}.big_spend")
        assert cur.fetchone()[0] == len(big)
    delete_topic(names["topic"])


def weir_bench_replay(spec, shadow):
    p = weir("bench", spec, "--json", "--replay", "--shadow-database", shadow, timeout=300)
    return json.loads(p.stdout), p


def topics_now():
    from confluent_kafka.admin import AdminClient
    return set(AdminClient({"bootstrap.servers": BOOTSTRAP}).list_topics(timeout=10).topics)


def test_bench_every_record_bad(tmp_path, db, names):
    """--bad-share 1: every generated record is bad, all are rejected, and the check expects (and finds) no row."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE big_spend (user_id BIGINT, amount BIGINT, ts BIGINT)")
    spec = write_spec(tmp_path, W2_APPEND.format(bootstrap=BOOTSTRAP, topic=names["topic"], mysql=MYSQL_PORT, db=names["db"]))
    report, _ = bench(spec, "--events", "3000", "--bad-share", "1", "--no-ceiling")
    try:
        assert report["passed"], report["problems"]
        assert report["input"]["badRecords"] == 3000
        assert report["records"]["read"] == 3000 and report["records"]["rejected"] == 3000
        assert report["records"]["sinkRows"] == 0
        [check] = report["checks"]
        assert check["status"] == "pass" and check["expectedRows"] == 0, check
        with db.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM big_spend")
            assert cur.fetchone()[0] == 0
    finally:
        delete_topics(report)


def test_bench_refuses_a_missing_sink_table_before_generating(tmp_path, db, names):
    """The sink table does not exist: weir bench refuses before it generates anything, naming
    the sink node and the table, and creates no topic."""
    spec = write_spec(tmp_path, W2_APPEND.format(bootstrap=BOOTSTRAP, topic=names["topic"], mysql=MYSQL_PORT, db=names["db"]))
    p = weir("bench", spec, "--events", "2000", "--no-ceiling", timeout=120, check=False)
    assert p.returncode != 0
    assert "sink 'out' is not ready for the bench" in p.stderr and "big_spend" in p.stderr, p.stderr
    assert not [t for t in topics_now() if t.startswith("weir-bench-bench-w2-events")]


def test_bench_job_failure_is_named_and_generated_topics_removed(tmp_path, db, names):
    """The table accepts the job's fields but refuses its values (TINYINT amounts above 900) and
    the job says onError: fail: the job fails during the bench; weir bench exits non-zero naming
    the job and the table, and deletes the topic it generated."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE big_spend (user_id BIGINT, amount TINYINT, ts BIGINT)")
    text = W2_APPEND.format(bootstrap=BOOTSTRAP, topic=names["topic"], mysql=MYSQL_PORT, db=names["db"])
    spec = write_spec(tmp_path, text.replace("parallelism: 2\n", "parallelism: 2\nonError: fail\n"))
    p = weir("bench", spec, "--events", "2000", "--no-ceiling", timeout=300, check=False)
    assert p.returncode != 0
    assert "failed during the bench" in p.stderr and "'bench-w2'" in p.stderr, p.stderr
    assert "big_spend" in p.stderr, p.stderr
    assert not [t for t in topics_now() if t.startswith("weir-bench-bench-w2-events")]


def test_bench_refuses_a_source_without_schema(tmp_path, names):
    spec = write_spec(tmp_path, W2_APPEND.format(bootstrap=BOOTSTRAP, topic=names["topic"], mysql=MYSQL_PORT, db=names["db"])
                      .replace("      schema: { user_id: int, amount: int, ts: int }\n", "")
                      .replace('filter: "amount > 900"', 'filter: "true"').replace("select: [user_id, amount, ts]", "select: [\"*\"]"))
    p = weir("bench", spec, "--events", "100", timeout=120, check=False)
    assert p.returncode != 0
    assert "source 'events' declares no schema" in p.stderr and "--replay" in p.stderr, p.stderr
    assert not [t for t in topics_now() if t.startswith("weir-bench-bench-w2-events")]


def test_two_benches_of_one_job_keep_apart(tmp_path, db, names):
    """A bench after a --keep-topics bench of the same job generates into its own topic and
    leaves the kept one (and its messages) alone."""
    with db.cursor() as cur:
        cur.execute("CREATE TABLE big_spend (user_id BIGINT, amount BIGINT, ts BIGINT)")
    spec = write_spec(tmp_path, W2_APPEND.format(bootstrap=BOOTSTRAP, topic=names["topic"], mysql=MYSQL_PORT, db=names["db"]))
    first, _ = bench(spec, "--events", "1000", "--no-ceiling")
    try:
        kept = first["input"]["topics"]["events"]
        assert kept.startswith("weir-bench-bench-w2-events-"), kept
        p = weir("bench", spec, "--events", "500", "--no-ceiling", "--json", timeout=300)
        second = json.loads(p.stdout)
        assert second["passed"], second["problems"]
        assert second["input"]["topics"]["events"] != kept
        assert second["input"]["topics"]["events"] not in topics_now(), "the second bench removes its own topic"
        assert kept in topics_now(), "the kept topic survives the second bench"
        assert len(reference.read_topic(BOOTSTRAP, kept)) == 1000
    finally:
        delete_topics(first)
