"""The same job on Weir and on a real Apache Flink 2.0 (PyFlink's mini-cluster, Kafka
and JDBC connectors, Weir's MySQL dialect; installed by scripts/setup-flink.sh),
against the same Tansu and MariaDB, compared row by row.

Each workload reads one input (several partitions, out-of-order events within the
watermark's bound, bad records of every kind), runs in Weir into one table, is
exported with `weir export --target flink-sql --end-offsets …` (the end offsets from
the producer's delivery reports) into a script that writes a second table, and the
two tables must be equal. The handover test stops a stateless job in Weir with a
snapshot midway and continues it on Flink from the snapshot's offsets into the same
table: every record exactly once.

Flink's start-up costs about 10 s a JVM, so every script runs in one Flink
invocation (scripts/flink/run_sql.py: one JVM, one mini-cluster, one job after
another): the module fixture prepares every workload first, then runs Flink once."""
import importlib.util
import json
import subprocess
import threading
import time
import traceback
import uuid
from collections import Counter

import pytest

import reference
from conftest import MYSQL_PORT, WEIR
from flink_support import (BAD_KINDS, LENIENT_KINDS, RUNNER, Topic, continuous_spec, create_table, end_offsets_arg,
                           events, export, row_diff, rows, run_flink, run_weir, union_spec, w2_spec, windowed_spec,
                           with_bad_records)
from test_snapshots import snapshots, stop_with_snapshot

WINDOW_COLUMNS = ["user_id", "window_start", "window_end", "cnt", "total"]
WORKLOADS = {
    # name: (table shape, columns compared)
    "w1": ("window", WINDOW_COLUMNS),
    "w2": ("w2", ["user_id", "amount", "ts"]),
    "sliding": ("window", WINDOW_COLUMNS),
    "session": ("window", WINDOW_COLUMNS),
    "continuous": ("continuous", ["user_id", "cnt", "total", "lo", "hi", "mean", "amounts"]),
    "union": ("union", WINDOW_COLUMNS + ["hi"]),
}
LENIENT = ("w2", ["user_id", "amount", "ts"])
N_EVENTS = 4000


def spec_for(name, inputs, dbname, table):
    events_topic, clicks, views = inputs["events"].name, inputs["clicks"].name, inputs["views"].name
    if name == "w1":
        return windowed_spec("w1", events_topic, dbname, table, "tumbling: 10s")
    if name == "sliding":
        return windowed_spec("sliding", events_topic, dbname, table, "sliding: 10s, slide: 5s")
    if name == "session":
        return windowed_spec("session", events_topic, dbname, table, "session: 2s")
    if name == "w2":
        return w2_spec("w2", events_topic, dbname, table)
    if name == "continuous":
        return continuous_spec("continuous", events_topic, dbname, table)
    if name == "union":
        return union_spec("union", clicks, views, dbname, table)
    if name == "lenient":
        return w2_spec("lenient", inputs["lenient"].name, dbname, table)
    raise ValueError(name)


class Handover:
    """A stateless job (filter, select, append) run in Weir with checkpoints while the
    input grows, stopped with a snapshot midway, the rest exported from that snapshot."""

    def __init__(self, work, conn, dbname, tag):
        self.topic = Topic(f"fh_{tag}", 4)
        self.table = "handover"
        create_table(conn, self.table, "w2")
        self.good = []
        self.state = work / "handover-state"
        spec_text = w2_spec("handover", self.topic.name, dbname, self.table, checkpoint="200ms")
        spec = work / "handover.yaml"
        spec.write_text(spec_text)
        self.produce(0, 1500, seed=31)
        proc = subprocess.Popen([WEIR, "run", str(spec), "--state-dir", str(self.state), "--plain"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Keep the input growing while the job reads it, and stop it in the middle of that,
        # once it has committed some output.
        feeding = threading.Thread(target=self.feed, args=(1500, 12, 150))
        feeding.start()
        deadline = time.time() + 60
        while not rows(conn, self.table, ["user_id"]) and time.time() < deadline:
            time.sleep(0.05)
        self.snapshot, _ = stop_with_snapshot(proc)
        feeding.join()
        self.produce(self.topic.count, 1000, seed=33)
        self.rows_in_weir = sum(rows(conn, self.table, ["user_id"]).values())
        listed = {s["id"]: s for s in snapshots(self.state)}
        self.snapshot_offsets = listed[self.snapshot]["offsets"]["events"]
        self.script = export(work, spec_text, "handover-flink", end_offsets_arg(self.topic),
                             "--from-snapshot", self.snapshot, "--state-dir", str(self.state))

    def produce(self, first, count, seed):
        good = events(count, seed, first=first)
        self.good += good
        self.topic.produce(with_bad_records(good, seed))

    def feed(self, first, chunks, size):
        for k in range(chunks):
            self.produce(first + k * size, size, seed=40 + k)
            time.sleep(0.1)

    def expected(self):
        return Counter((e["user_id"], e["amount"], e["ts"]) for e in self.good if e["amount"] > 900)


@pytest.fixture(scope="module")
def flink(tmp_path_factory):
    """Every workload run in Weir and exported, then every script run on Flink at once."""
    work = tmp_path_factory.mktemp("flink")
    tag = uuid.uuid4().hex[:8]
    dbname = f"fl_{tag}"
    conn = reference.connect(MYSQL_PORT)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {dbname}")
    conn.select_db(dbname)

    inputs = {"events": Topic(f"fe_{tag}", 4), "clicks": Topic(f"fc_{tag}", 3), "views": Topic(f"fv_{tag}", 2),
              "lenient": Topic(f"fl_{tag}", 2)}
    good = {"events": events(N_EVENTS, seed=1), "clicks": events(1500, seed=2, users=11),
            "views": events(1000, seed=3, users=11, ms_per_event=30), "lenient": events(600, seed=4)}
    lenient_values = []
    for k, t in inputs.items():
        if k == "lenient":
            values = with_bad_records(good[k], seed=5, per_kind=2, kinds=LENIENT_KINDS)
            lenient_values = values[:]
        else:
            values = with_bad_records(good[k], seed=len(k))
        t.produce(values)

    prepared, scripts = {}, []
    for name, (shape, columns) in list(WORKLOADS.items()) + [("lenient", LENIENT)]:
        entry = {"weir_table": f"{name}_weir", "flink_table": f"{name}_flink", "columns": columns}
        prepared[name] = entry
        try:
            create_table(conn, entry["weir_table"], shape)
            create_table(conn, entry["flink_table"], shape)
            used = {"union": [inputs["clicks"], inputs["views"]],
                    "lenient": [inputs["lenient"]]}.get(name, [inputs["events"]])
            entry["stats"] = run_weir(work, spec_for(name, inputs, dbname, entry["weir_table"]), f"{name}-weir")
            entry["script"] = export(work, spec_for(name, inputs, dbname, entry["flink_table"]), f"{name}-flink",
                                     end_offsets_arg(*used))
            scripts.append(entry["script"])
        except Exception:
            entry["error"] = traceback.format_exc()

    handover = None
    try:
        handover = Handover(work, conn, dbname, tag)
        scripts.append(handover.script)
    except Exception:
        handover_error = traceback.format_exc()
    else:
        handover_error = None

    # A script Flink refuses: the runner reports Flink's own error and carries on with the rest.
    broken = work / "broken.sql"
    broken.write_text("CREATE TEMPORARY VIEW v AS SELECT 1 AS x;\n"
                      "EXECUTE STATEMENT SET BEGIN\n  INSERT INTO nowhere SELECT x FROM v;\nEND;\n")
    report = run_flink(scripts + [broken], work)
    print(f"\nFlink: {len(scripts) + 1} scripts in {report['_total_seconds']} s "
          + ", ".join(f"{pathlib_name(s)} {r['seconds']} s" for s, r in report.items() if s != "_total_seconds"))
    yield {"conn": conn, "prepared": prepared, "report": report, "good": good, "lenient_values": lenient_values,
           "handover": handover, "handover_error": handover_error, "broken": str(broken)}
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE {dbname}")
    conn.close()


def pathlib_name(path):
    return str(path).rsplit("/", 1)[-1]


def flink_result(flink, script):
    r = flink["report"].get(str(script))
    assert r is not None, f"{script} was not run"
    assert r["ok"], f"Flink failed on {pathlib_name(script)}:\n{r['error']}\n\nscript:\n{open(script).read()}"


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_flink_writes_what_weir_writes(flink, name):
    entry = flink["prepared"][name]
    assert "error" not in entry, entry["error"]
    flink_result(flink, entry["script"])
    conn, columns = flink["conn"], entry["columns"]
    weir_rows = rows(conn, entry["weir_table"], columns)
    flink_rows = rows(conn, entry["flink_table"], columns)
    assert sum(weir_rows.values()) > 10, "Weir wrote (almost) nothing: the comparison would prove nothing"
    assert row_diff(weir_rows, flink_rows) == "", f"{name}: Weir and Flink differ (columns {columns})"


def test_weir_matches_the_independent_reference(flink):
    """The comparison's anchor: Weir's W1 and W2 tables are what the reference computes."""
    conn, good = flink["conn"], flink["good"]["events"]
    assert reference.diff(reference.w1_reference(good), reference.mysql_w1(conn, "w1_weir")) == ""
    assert reference.diff(reference.w2_reference(good), reference.mysql_w2(conn, "w2_weir")) == ""
    stats = flink["prepared"]["w1"]["stats"]
    assert stats["lateRecords"] == 0, "inputs are out of order only within the bound"
    assert stats["rejectedRecords"] == len(BAD_KINDS)


def test_json_values_flink_takes_and_weir_rejects(flink):
    """A known difference, pinned so that it is noticed when it changes: Flink's json format
    reads a number in a string ("12") and a fraction (5.5, 1700000000000.5) into a BIGINT
    column (the fraction truncated); Weir rejects all three (type_mismatch). Nothing else differs."""
    entry = flink["prepared"]["lenient"]
    assert "error" not in entry, entry["error"]
    flink_result(flink, entry["script"])
    rejected = entry["stats"]["nodes"]["events"]["rejected"]
    assert rejected == {"type_mismatch": 2 * len(LENIENT_KINDS)}, rejected
    lenient = [json.loads(v) for v in flink["lenient_values"] if b'"n": ' in v]
    flink_reads = Counter((int(float(e["user_id"])), e["amount"], int(e["ts"])) for e in lenient if e["amount"] > 900)
    assert sum(flink_reads.values()) == 2 * len(LENIENT_KINDS)
    weir_rows = rows(flink["conn"], entry["weir_table"], entry["columns"])
    flink_rows = rows(flink["conn"], entry["flink_table"], entry["columns"])
    assert flink_rows - weir_rows == flink_reads and not weir_rows - flink_rows, row_diff(weir_rows, flink_rows)


def test_handover_at_a_snapshot_loses_and_duplicates_nothing(flink):
    assert flink["handover_error"] is None, flink["handover_error"]
    h = flink["handover"]
    flink_result(flink, h.script)
    taken = sum(h.snapshot_offsets.values())
    assert 0 < taken < h.topic.count, f"the snapshot is not midway: {h.snapshot_offsets} of {h.topic.count}"
    expected = h.expected()
    print(f"\nhandover at {h.snapshot}: Weir read {taken} of {h.topic.count} records and wrote {h.rows_in_weir} "
          f"of {sum(expected.values())} rows")
    assert 0 < h.rows_in_weir < sum(expected.values()), "both engines wrote part of the output"
    actual = rows(flink["conn"], h.table, ["user_id", "amount", "ts"])
    assert row_diff(expected, actual) == "", "handover: expected (left) vs the table (right)"


def test_runner_reports_flinks_error(flink):
    r = flink["report"][flink["broken"]]
    assert not r["ok"]
    assert "nowhere" in r["error"] and "Cannot find table" in r["error"], r["error"]
    assert "\tat " not in r["error"], "stack frames are left out"


def load_runner():
    spec = importlib.util.spec_from_file_location("run_sql", RUNNER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_runner_splits_statements():
    split = load_runner().split_statements
    script = """-- header; with a semicolon
SET 'parallelism.default' = '2';
SET 'pipeline.name' = 'it''s; fine';
CREATE TEMPORARY TABLE `a;b` (x BIGINT) WITH ('connector' = 'datagen'); /* block; comment */
EXECUTE STATEMENT SET BEGIN
  INSERT INTO t1 SELECT x FROM `a;b` WHERE 'END;' <> '';  -- END; in a comment
  INSERT INTO t2 SELECT x FROM `a;b`;
END;
"""
    parts = split(script)
    assert parts[0] == "SET 'parallelism.default' = '2'"
    assert parts[1] == "SET 'pipeline.name' = 'it''s; fine'"
    assert parts[2].startswith("CREATE TEMPORARY TABLE `a;b`") and parts[2].endswith("'datagen')")
    assert parts[3].startswith("EXECUTE STATEMENT SET BEGIN") and parts[3].endswith("END")
    assert len(parts) == 4
    inserts = load_runner().statement_set_inserts(parts[3])
    assert inserts == ["INSERT INTO t1 SELECT x FROM `a;b` WHERE 'END;' <> ''", "INSERT INTO t2 SELECT x FROM `a;b`"]
