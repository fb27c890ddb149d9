"""Restore drills (issue 10): what a restore will do, shown before it runs, against
real Tansu and MariaDB (and librdkafka's mock cluster where Tansu cannot stage the
change: it has no retention deletes). Every number is checked against offsets the
test computes itself, from the producer's delivery reports or the broker."""
import json
import random
import signal
import subprocess
import time
import zlib

from confluent_kafka import Consumer, TopicPartition

import reference
from conftest import BOOTSTRAP, MYSQL_PORT, WEIR
from fault_support import MockCluster, create_topic, delete_topic, mysql_url, produce_values


def events(n, seed, pad=0):
    rng = random.Random(seed)
    return [json.dumps({"user_id": rng.randrange(30), "amount": rng.randint(1, 100), "ts": i,
                        **({"pad": "x" * pad} if pad else {})}).encode() for i in range(n)]


def spec(topics, db, bootstrap=BOOTSTRAP, aggregates='cnt: "count()", total: "sum(amount)"'):
    return f"""name: drills
parallelism: 2
checkpoint: {{ interval: 300ms }}
nodes:
  - id: events
    kafka: {{ bootstrap: "{bootstrap}", topics: [{", ".join(topics)}], schema: {{ user_id: int, amount: int, ts: int }} }}
  - id: per-user
    inputs: [events]
    keyBy: [user_id]
    aggregate: {{ {aggregates} }}
  - id: out
    inputs: [per-user]
    mysql: {{ url: "{mysql_url(db)}", table: totals, mode: upsert, key: [user_id] }}
"""


def create_totals(db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE totals (user_id BIGINT PRIMARY KEY, cnt BIGINT, total BIGINT)")


def weir(*args, check=True):
    p = subprocess.run([WEIR, *args], capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, f"weir {' '.join(args)}: exit {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def run_until_idle(tmp_path, text, name, *extra, check=True):
    path = tmp_path / name
    path.write_text(text)
    return weir("run", str(path), "--state-dir", str(tmp_path / "state"), "--until-idle", "1", "--plain", *extra, check=check)


def diff(tmp_path, text, name, *extra):
    path = tmp_path / name
    path.write_text(text)
    p = weir("snapshot", "diff", "latest", "--spec", str(path), "--state-dir", str(tmp_path / "state"), "--json", *extra,
             check=False)
    assert p.returncode in (0, 1), p.stderr
    return p.returncode, json.loads(p.stdout)


def first_run(tmp_path, names, db, n, seed):
    """A 2-partition topic with `n` events, run to its end (a drain snapshot). Returns the topic."""
    t = names["topic"]
    create_topic(t, 2)
    create_totals(db)
    produce_values(t, events(n, seed), 2)
    run_until_idle(tmp_path, spec([t], names["db"]), "v1.yaml")
    return t


def ends(delivered):
    """partition → next offset, from delivery reports [(partition, offset, value)]."""
    out = {}
    for p, o, _ in delivered:
        out[p] = max(out.get(p, 0), o + 1)
    return out


def test_the_diff_of_each_partition_matches_the_broker(tmp_path, names, db):
    a, b, c = (f"{names['topic']}_{x}" for x in "abc")
    create_topic(a, 3)
    create_topic(b, 2)
    create_topic(c, 2)
    create_totals(db)
    a1, b1 = produce_values(a, events(600, 1), 3), produce_values(b, events(200, 2), 2)
    run_until_idle(tmp_path, spec([a, b], names["db"]), "v1.yaml")
    a2 = produce_values(a, events(300, 3), 3)
    produce_values(b, events(50, 4), 2)
    c_all = produce_values(c, events(70, 5), 2)

    # Version 2 reads a and c, no longer b.
    code, preview = diff(tmp_path, spec([a, c], names["db"]), "v2.yaml")
    assert code == 0 and preview["problems"] == [], preview
    rows = {r["split"]: r for r in preview["offsets"]["rows"]}
    snap, now = ends(a1), ends(a1 + a2)
    for p in range(3):
        r = rows[f"{a}/{p}"]
        assert (r["action"], r["snapshotOffset"], r["low"], r["high"]) == ("resume", snap[p], 0, now[p]), r
        assert r["replay"] == now[p] - snap[p] and r["startsAt"] == snap[p] and r["lost"] == 0, r
    for p, end in ends(b1).items():
        r = rows[f"{b}/{p}"]
        assert (r["action"], r["snapshotOffset"]) == ("dropped", end), r
    for p, end in ends(c_all).items():
        r = rows[f"{c}/{p}"]
        assert (r["action"], r["startsAt"], r["high"], r["replay"]) == ("new_topic", 0, end, end), r
    assert sum(r.get("replay") or 0 for r in rows.values()) == 300 + 70
    mapping = {n["node"]: n["outcome"] for n in preview["mapping"]["nodes"]}
    assert mapping == {"events": "restored", "per-user": "restored"}, preview["mapping"]

    # The run prints the same preview before it starts, and goes on.
    p = run_until_idle(tmp_path, spec([a, c], names["db"]), "v2.yaml", "--from-snapshot", "latest")
    assert f"{a}/0" in p.stderr and "the restore would go on" in p.stderr, p.stderr[-3000:]


def test_a_changed_aggregate_is_reported_incompatible_and_the_restore_refused(tmp_path, names, db):
    t = first_run(tmp_path, names, db, 300, 6)
    before = reference.mysql_totals(db, "totals")
    changed = spec([t], names["db"], aggregates='cnt: "count()", total: "sum(amount)", top: "max(amount)"')
    code, preview = diff(tmp_path, changed, "v2.yaml")
    assert code == 1, preview
    node = next(n for n in preview["mapping"]["nodes"] if n["node"] == "per-user")
    assert node["outcome"] == "incompatible" and "top:max" in node["now"] and "top:max" not in node["was"], node
    assert any("state layout changed" in p for p in preview["problems"]), preview["problems"]
    p = run_until_idle(tmp_path, changed, "v2.yaml", "--from-snapshot", "latest", check=False)
    assert p.returncode != 0 and "state layout changed" in p.stderr, p.stderr[-2000:]
    assert reference.mysql_totals(db, "totals") == before, "nothing ran"


def test_a_topic_recreated_smaller_is_past_the_end_and_refused(tmp_path, names, db):
    t = first_run(tmp_path, names, db, 400, 7)
    delete_topic(t)
    create_topic(t, 2)
    produce_values(t, events(40, 8), 2)
    code, preview = diff(tmp_path, spec([t], names["db"]), "v1.yaml")
    assert code == 1
    assert {r["split"]: (r["action"], r["snapshotOffset"], r["high"]) for r in preview["offsets"]["rows"]} == \
        {f"{t}/0": ("past_end", 200, 20), f"{t}/1": ("past_end", 200, 20)}, preview["offsets"]
    p = run_until_idle(tmp_path, spec([t], names["db"]), "v1.yaml", "--from-snapshot", "latest", check=False)
    assert p.returncode != 0 and "past the partition's end" in p.stderr, p.stderr[-2000:]


def test_records_removed_by_retention_are_refused_unless_the_loss_is_accepted(tmp_path, names, db):
    """The mock cluster keeps at most 5 MB per partition, dropping the oldest batches
    beyond: the retention Tansu cannot stage."""
    mock = MockCluster()
    try:
        t = names["topic"]
        mock.topic(t, 2)
        create_totals(db)
        first = events(200, 9)
        produce_values(t, first, 2, bootstrap=mock.bootstrap)
        text = spec([t], names["db"], bootstrap=mock.bootstrap)
        run_until_idle(tmp_path, text, "v1.yaml")
        produce_values(t, events(9_000, 10, pad=1_000), 1, bootstrap=mock.bootstrap)   # ~9 MB, all into partition 0

        c = Consumer({"bootstrap.servers": mock.bootstrap, "group.id": "drill-test"})
        low, high = c.get_watermark_offsets(TopicPartition(t, 0), timeout=10, cached=False)
        c.close()
        assert low > 100, f"the mock kept everything (low watermark {low})"
        code, preview = diff(tmp_path, text, "v1.yaml")
        assert code == 1
        r = next(r for r in preview["offsets"]["rows"] if r["split"] == f"{t}/0")
        assert (r["action"], r["snapshotOffset"], r["low"], r["lost"], r["startsAt"]) == \
            ("retention_loss", 100, low, low - 100, low), r
        assert any("deleted by retention" in p for p in preview["problems"])

        p = run_until_idle(tmp_path, text, "v1.yaml", "--from-snapshot", "latest", check=False)
        assert p.returncode != 0 and "deleted by retention" in p.stderr, p.stderr[-2000:]
        p = run_until_idle(tmp_path, text, "v1.yaml", "--from-snapshot", "latest", "--accept-retention-loss")
        assert f"{low - 100} records removed by retention are lost" in p.stderr, p.stderr[-2000:]
        # The totals: the first batch, then what partition 0 still holds from its low watermark.
        kept = [v for part, off, v in reference.read_topic_positions(mock.bootstrap, t) if part == 0 and off >= low]
        want = reference.totals_reference([json.loads(v) for v in first + kept])
        assert reference.mysql_totals(db, "totals") == want
    finally:
        mock.close()


def verify(tmp_path, text, name, snapshot="latest"):
    path = tmp_path / name
    path.write_text(text)
    return weir("snapshot", "verify", snapshot, "--spec", str(path), "--state-dir", str(tmp_path / "state"), check=False)


def test_verify_passes_a_good_snapshot_and_catches_a_corrupt_or_undecodable_one(tmp_path, names, db):
    t = first_run(tmp_path, names, db, 500, 11)
    text = spec([t], names["db"])
    p = verify(tmp_path, text, "v1.yaml")
    assert p.returncode == 0 and "verify: PASSED" in p.stdout and "per-user" in p.stdout, p.stdout + p.stderr
    snap = json.loads(weir("snapshot", "list", "--state-dir", str(tmp_path / "state"), "--json").stdout)[-1]
    directory = tmp_path / "state" / snap["id"]
    manifest_path = directory / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    state = next(f for f in manifest["state"] if f["node"] == "per-user" and f["bytes"] > 8)
    original = (directory / state["file"]).read_bytes()

    # A flipped byte: the checksum catches it.
    (directory / state["file"]).write_bytes(original[:5] + bytes([original[5] ^ 0xFF]) + original[6:])
    p = verify(tmp_path, text, "v1.yaml", snap["id"])
    assert p.returncode == 1 and "checksums FAILED" in p.stdout and state["file"] in p.stdout, p.stdout + p.stderr

    # Garbage whose size and checksum the manifest agrees with: only decoding it catches it.
    garbage = b"\x00\x00\x00\x07not a keyed state file at all" * 4
    (directory / state["file"]).write_bytes(garbage)
    manifest["totalBytes"] += len(garbage) - state["bytes"]
    state["bytes"], state["crc32"] = len(garbage), zlib.crc32(garbage)
    manifest_path.write_text(json.dumps(manifest))
    p = verify(tmp_path, text, "v1.yaml", snap["id"])
    assert p.returncode == 1 and "state of node 'per-user' cannot be decoded" in p.stdout, p.stdout + p.stderr


def xa_recover(db):
    with db.cursor() as cur:
        cur.execute("XA RECOVER")
        return [row[3].decode() if isinstance(row[3], bytes) else row[3] for row in cur.fetchall()]


def ours(xids):
    """The Weir xids of this module's job ('drills'): weir|<job>|<run>|…"""
    return [x for x in xids if x.startswith("weir|drills|")]


def test_the_ledger_lists_a_killed_runs_prepared_transactions_with_the_snapshot_rule(tmp_path, names, db):
    """A run killed (-9) while one of its epochs is prepared leaves an XA transaction in
    doubt. The ledger lists it with the decision the snapshot rule gives (commit when a
    completed snapshot of its run covers its epoch), computed here from the manifests;
    resolving it and restoring gives exactly the reference totals."""
    t = names["topic"]
    create_topic(t, 2)
    create_totals(db)
    path = tmp_path / "job.yaml"
    path.write_text(spec([t], names["db"]).replace("interval: 300ms", "interval: 100ms"))
    state = str(tmp_path / "state")

    def snapshots():
        return json.loads(weir("snapshot", "list", "--state-dir", state, "--json").stdout)

    left = []
    for attempt in range(15):
        produce_values(t, events(3_000, 100 + attempt), 2)
        extra = ["--from-snapshot", "latest"] if snapshots() else []
        proc = subprocess.Popen([WEIR, "run", str(path), "--state-dir", state, "--plain", *extra],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while time.time() < deadline and not snapshots():  # a completed snapshot first: its epochs are committed
            time.sleep(0.05)
        while time.time() < deadline and not left:
            left = ours(xa_recover(db))
            if left:
                proc.send_signal(signal.SIGKILL)
        proc.kill()
        proc.wait()
        left = ours(xa_recover(db))
        if left:
            break
    assert left, "no kill landed while an epoch was prepared in 15 attempts"

    p = weir("snapshot", "transactions", "--spec", str(path), "--state-dir", state, "--json")
    ledger = json.loads(p.stdout)["entries"]
    assert sorted(e["id"] for e in ledger) == sorted(left), (ledger, left)
    snaps = snapshots()
    for e in ledger:
        covered = [s["id"] for s in snaps if s["run"] == e["run"] and s["checkpointID"] >= e["epoch"]]
        assert e["decision"] == ("commit" if covered else "roll back"), (e, snaps)
        assert e.get("snapshot") == (min(covered, key=lambda i: int(i.split("-")[1])) if covered else None), e
        assert e["runKnown"] == any(s["run"] == e["run"] for s in snaps), e
    text = weir("snapshot", "transactions", "--spec", str(path), "--state-dir", state).stdout
    assert all(e["id"] in text and e["decision"] in text for e in ledger), text

    # The next run resolves them by that rule and the totals come out exact.
    weir("run", str(path), "--state-dir", state, "--from-snapshot", "latest", "--until-idle", "1", "--plain")
    assert not ours(xa_recover(db))
    want = reference.totals_reference([json.loads(v) for v in reference.read_topic(BOOTSTRAP, t)])
    assert reference.mysql_totals(db, "totals") == want


def w2_job(t, db):
    return f"""name: drill-w2
parallelism: 2
checkpoint: {{ interval: 300ms }}
nodes:
  - id: events
    kafka: {{ bootstrap: "{BOOTSTRAP}", topic: {t}, schema: {{ user_id: int, amount: int, ts: int }} }}
  - id: big
    inputs: [events]
    filter: "amount > 50"
  - id: out
    inputs: [big]
    mysql: {{ url: "{mysql_url(db)}", table: w2, mode: append }}
"""


def drill(tmp_path, text, *extra):
    path = tmp_path / "drill.yaml"
    path.write_text(text)
    p = weir("drill", str(path), "--state-dir", str(tmp_path / "state"), "--json", *extra, check=False)
    assert p.returncode in (0, 1), p.stdout + p.stderr
    return p.returncode, json.loads(p.stdout)


def test_a_drill_passes_on_a_healthy_job_and_stops_where_the_broker_ended(tmp_path, names, db):
    t = names["topic"]
    create_topic(t, 2)
    with db.cursor() as cur:
        cur.execute("CREATE TABLE w2 (user_id BIGINT, amount BIGINT, ts BIGINT)")
    delivered = produce_values(t, events(3_000, 20), 2)
    code, report = drill(tmp_path, w2_job(t, names["db"]), "--run-for", "1")
    assert code == 0 and report["problems"] == [], report["problems"]
    assert report["bound"] == {"events": {f"{t}/{p}": end for p, end in ends(delivered).items()}}
    [table] = report["tables"]
    want = sum(1 for v in delivered if json.loads(v[2])["amount"] > 50)
    assert table["rowsLive"] == table["rowsShadow"] == want and table["onlyLive"] == table["onlyShadow"] == []
    assert report["startup"]["stateLoadedMillis"] >= 0 and "sourcesPositionedMillis" in report["startup"]
    assert report["verification"]["preview"]["mapping"]["nodes"], report["verification"]


def test_a_drill_reports_exactly_the_rows_tampered_with_between_the_stop_and_the_check(tmp_path, names, db):
    t = names["topic"]
    create_topic(t, 2)
    with db.cursor() as cur:
        cur.execute("CREATE TABLE w2 (user_id BIGINT, amount BIGINT, ts BIGINT)")
    produce_values(t, events(2_000, 21), 2)
    path = tmp_path / "drill.yaml"
    path.write_text(w2_job(t, names["db"]))
    weir("run", str(path), "--state-dir", str(tmp_path / "state"), "--until-idle", "1", "--plain")
    produce_values(t, events(500, 22), 2)   # the restore replays these
    with db.cursor() as cur:
        cur.execute("SELECT user_id, amount, ts FROM w2 ORDER BY ts, user_id, amount LIMIT 2")
        changed, deleted = [[str(x) for x in row] for row in cur.fetchall()]
        cur.execute("UPDATE w2 SET amount = amount + 1000 WHERE user_id = %s AND amount = %s AND ts = %s LIMIT 1", changed)
        cur.execute("DELETE FROM w2 WHERE user_id = %s AND amount = %s AND ts = %s LIMIT 1", deleted)
    code, report = drill(tmp_path, w2_job(t, names["db"]), "--snapshot", "latest")
    assert code == 1, report
    [table] = report["tables"]
    assert table["columns"] == ["user_id", "amount", "ts"]
    assert table["onlyLive"] == [[changed[0], str(int(changed[1]) + 1000), changed[2]]], table
    assert sorted(table["onlyShadow"]) == sorted([changed, deleted]), table
    assert table["rowsShadow"] == table["rowsLive"] + 1
