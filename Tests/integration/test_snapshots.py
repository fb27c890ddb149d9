"""Snapshot drills against real Tansu and MariaDB: stop-with-snapshot and
restore, kill -9 at random moments, rescaling, corruption, removed nodes.
Every drill compares MySQL with a reference computed independently from the
topic's contents (no duplicates, no gaps)."""
import json
import os
import random
import re
import signal
import subprocess
import time

import pymysql
import pytest

import reference
from conftest import BOOTSTRAP, MYSQL_PORT, WEIR, produce_stream, weir, write_spec
from test_workloads import create_tables, w1_spec, w2_spec

SEED = 21


def with_checkpoints(spec, interval="300ms"):
    return spec.replace("nodes:\n", f"checkpoint: {{ interval: {interval}, retain: 3, timeout: 30s }}\nnodes:\n", 1)


def produce(topic, start, count, partitions=4):
    produce_stream(topic, start, count, seed=SEED, partitions=partitions)


def snapshots(state_dir):
    p = weir("snapshot", "list", "--state-dir", str(state_dir), "--json")
    return json.loads(p.stdout)


def start(spec_path, state_dir, *extra):
    return subprocess.Popen([WEIR, "run", spec_path, "--state-dir", str(state_dir), "--plain", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop_with_snapshot(proc):
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, f"stop failed ({proc.returncode}):\n{err}"
    m = re.search(r"stopped with snapshot (\S+)", out + err)
    assert m, out + err
    return m.group(1), out + err


def drain(spec_path, state_dir, *extra):
    return weir("run", spec_path, "--state-dir", str(state_dir), "--plain", "--until-idle", "1", *extra, timeout=180)


def check_w1(db, topic):
    events, _ = reference.decode(reference.read_topic(BOOTSTRAP, topic))
    assert reference.diff(reference.w1_reference(events), reference.mysql_w1(db, "w1")) == ""
    return len(events)


def check_w2(db, topic):
    events, _ = reference.decode(reference.read_topic(BOOTSTRAP, topic))
    assert reference.diff(reference.w2_reference(events), reference.mysql_w2(db, "w2")) == ""


def test_stop_with_snapshot_then_restore(tmp_path, names, db):
    create_tables(db)
    state = tmp_path / "state"
    spec = write_spec(tmp_path, with_checkpoints(w1_spec(names["topic"], names["db"])))
    produce(names["topic"], 0, 40_000)
    proc = start(spec, state)
    time.sleep(2.5)
    snap, text = stop_with_snapshot(proc)
    assert snap.startswith("stop-")
    assert re.search(r"t_\w+/\d: \d+", text), "offsets are printed"
    listed = {s["id"]: s for s in snapshots(state)}
    assert listed[snap]["kind"] == "stop"
    assert sum(listed[snap]["offsets"]["events"].values()) == 40_000
    produce(names["topic"], 40_000, 30_000)
    drain(spec, state, "--from-snapshot", snap)
    assert check_w1(db, names["topic"]) == 70_000


@pytest.mark.parametrize("workload", ["w1", "w2"])
def test_kill_minus_nine_five_times(tmp_path, names, db, workload):
    create_tables(db)
    state = tmp_path / "state"
    make = w1_spec if workload == "w1" else w2_spec
    spec = write_spec(tmp_path, with_checkpoints(make(names["topic"], names["db"]), "200ms"))
    rng = random.Random(7 if workload == "w1" else 8)
    produced = 0
    produce(names["topic"], 0, 20_000)
    produced = 20_000
    for attempt in range(5):
        extra = ["--from-snapshot", "latest"] if snapshots(state) else []
        proc = start(spec, state, *extra)
        deadline = time.time() + rng.uniform(0.8, 2.5)
        while time.time() < deadline:  # keep data flowing while the job runs
            produce(names["topic"], produced, 5_000)
            produced += 5_000
            time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    assert snapshots(state), "checkpoints were taken between the kills"
    drain(spec, state, "--from-snapshot", "latest")
    if workload == "w1":
        assert check_w1(db, names["topic"]) == produced
    else:
        check_w2(db, names["topic"])


@pytest.mark.parametrize("before,after", [(2, 1), (1, 3)])
def test_restore_at_another_parallelism(tmp_path, names, db, before, after):
    create_tables(db)
    state = tmp_path / "state"
    spec_a = write_spec(tmp_path, with_checkpoints(w1_spec(names["topic"], names["db"], parallelism=before)), "a.yaml")
    spec_b = write_spec(tmp_path, with_checkpoints(w1_spec(names["topic"], names["db"], parallelism=after)), "b.yaml")
    produce(names["topic"], 0, 30_000)
    proc = start(spec_a, state)
    time.sleep(2.5)
    snap, _ = stop_with_snapshot(proc)
    produce(names["topic"], 30_000, 20_000)
    drain(spec_b, state, "--from-snapshot", snap)
    assert check_w1(db, names["topic"]) == 50_000


def test_corrupt_snapshot_is_refused_and_previous_restores(tmp_path, names, db):
    create_tables(db)
    state = tmp_path / "state"
    spec = write_spec(tmp_path, with_checkpoints(w1_spec(names["topic"], names["db"]), "10s"))
    produce(names["topic"], 0, 20_000)
    first, _ = stop_with_snapshot(_started_and_settled(spec, state))
    produce(names["topic"], 20_000, 10_000)
    second, _ = stop_with_snapshot(_started_and_settled(spec, state, "--from-snapshot", first))
    # Flip a byte in one of the second snapshot's state files.
    snap_dir = state / second
    victim = sorted(f for f in os.listdir(snap_dir) if f != "manifest.json")[0]
    data = bytearray((snap_dir / victim).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (snap_dir / victim).write_bytes(bytes(data))
    p = weir("run", spec, "--state-dir", str(state), "--until-idle", "1", "--from-snapshot", second, check=False)
    assert p.returncode != 0
    assert victim in p.stderr and "checksum" in p.stderr
    # The earlier snapshot still restores: replaying from it recomputes every window
    # open at `first` from its state and the input after it, and upserts the same rows.
    drain(spec, state, "--from-snapshot", first)
    assert check_w1(db, names["topic"]) == 30_000


def _started_and_settled(spec, state, *extra):
    proc = start(spec, state, *extra)
    time.sleep(2.5)
    return proc


def test_removed_node_needs_allow_non_restored_state(tmp_path, names, db):
    create_tables(db)
    state = tmp_path / "state"
    base = with_checkpoints(w1_spec(names["topic"], names["db"]))
    spec = write_spec(tmp_path, base, "a.yaml")
    produce(names["topic"], 0, 10_000)
    snap, _ = stop_with_snapshot(_started_and_settled(spec, state))
    # Same job with the windowed node renamed: its old state has no home.
    renamed = write_spec(tmp_path, base.replace("id: per-user", "id: per-user-v2").replace("inputs: [per-user]", "inputs: [per-user-v2]"), "b.yaml")
    p = weir("run", renamed, "--state-dir", str(state), "--until-idle", "1", "--from-snapshot", snap, check=False)
    assert p.returncode != 0
    assert "'per-user'" in p.stderr and "--allow-non-restored-state" in p.stderr
    drain(renamed, state, "--from-snapshot", snap, "--allow-non-restored-state")


def test_failed_stop_keeps_the_run_going(tmp_path, names, db):
    """A stop whose snapshot cannot complete says so, and the job keeps running."""
    create_tables(db)
    state = tmp_path / "state"
    spec = w1_spec(names["topic"], names["db"]).replace(
        "nodes:\n", "checkpoint: { interval: 1h, timeout: 1ms }\nnodes:\n", 1)
    spec_path = write_spec(tmp_path, spec)
    produce(names["topic"], 0, 5_000)
    proc = start(spec_path, state)
    time.sleep(2.5)
    proc.send_signal(signal.SIGTERM)
    time.sleep(3)
    assert proc.poll() is None, "the run must go on after a failed stop"
    proc.send_signal(signal.SIGTERM)  # second signal: cancel
    out, err = proc.communicate(timeout=30)
    assert "FAILED, the job keeps running" in err and "timed out" in err
    assert "stopped with snapshot" not in out + err
    assert proc.returncode == 130
    assert snapshots(state) == []


def test_restart_strategy_recovers_from_a_lost_mysql_connection(tmp_path, names, db):
    """Killing the sink's MySQL session in the middle of an epoch fails the run; it
    restarts in-process from the latest checkpoint and the result is still exact.

    Only a session holding an unprepared epoch makes the sink fail (a session lost
    during XA COMMIT, or an idle pooled one, is recovered on a fresh connection), and
    the sink sends an epoch's rows in one burst at the barrier. So the test holds a
    table lock: the sink's INSERT waits inside its XA transaction, and that is the
    session it kills."""
    import threading
    create_tables(db)
    state = tmp_path / "state"
    spec = with_checkpoints(w2_spec(names["topic"], names["db"]), "200ms").replace(
        "nodes:\n", "restart: { attempts: 3, delay: 200ms }\nnodes:\n", 1)
    spec_path = write_spec(tmp_path, spec)
    produce(names["topic"], 0, 20_000)
    proc = start(spec_path, state, "--until-idle", "4")
    time.sleep(2.0)
    feeder = threading.Thread(target=lambda: [produce(names["topic"], 20_000 + k * 10_000, 10_000) for k in range(4)])
    locker = reference.connect(MYSQL_PORT)
    locker.select_db(names["db"])
    killed = 0
    try:
        with locker.cursor() as lock:
            # A prepared epoch holds a metadata lock on w2 until its XA COMMIT, which
            # the sink thread sends; if that thread is already queued behind our lock
            # request, neither can go on. So the request gives up after a second and
            # is retried.
            lock.execute("SET SESSION lock_wait_timeout = 1")
            deadline = time.time() + 15
            while True:
                try:
                    lock.execute("LOCK TABLES w2 WRITE")
                    break
                except pymysql.err.OperationalError as e:
                    if e.args[0] != 1205 or time.time() > deadline:
                        raise
            feeder.start()  # more input: the sink's next INSERT meets the lock
            while time.time() < deadline and not killed:
                with db.cursor() as cur:
                    cur.execute("SELECT id FROM information_schema.processlist WHERE db = %s"
                                " AND id NOT IN (CONNECTION_ID(), %s) AND info LIKE 'INSERT%%'",
                                (names["db"], locker.thread_id()))
                    for (v,) in cur.fetchall():
                        try:
                            cur.execute(f"KILL CONNECTION {v}")
                            killed += 1
                        except pymysql.err.OperationalError:
                            pass  # that session ended meanwhile
                time.sleep(0.02)
            lock.execute("UNLOCK TABLES")
    finally:
        locker.close()
    if feeder.ident is not None:
        feeder.join()
    assert killed, "the sink never sent an INSERT while the table was locked"
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "restarting (attempt 1 of 3)" in err, err
    check_w2(db, names["topic"])
