"""Changes to the systems around a job between its runs (issue 9), against
real Tansu and MariaDB. Each run restores the previous one's stop snapshot;
the MySQL table is compared with what must be there, computed in Python from
the values produced (never from Weir's output).

- A topic dropped from the spec: the restore goes on without it, says so in
  its log and events, and drops its offsets; a topic added to the spec starts
  from its own startOffsets.
- A topic created wider (deleted and re-created with more partitions): the
  snapshot's partitions resume at their offsets, the new ones are read from
  earliest, and the restore says so."""
import json
import random
import signal
import time

from confluent_kafka.admin import AdminClient

import reference
from conftest import BOOTSTRAP, MYSQL_PORT
from fault_support import create_topic, create_w2, finish, header, mysql_url, produce_values, start_run, table_rows


def batch(n, seed, start):
    """`n` W2-shaped events (as bytes), seeded, event time advancing from `start`."""
    rng = random.Random(seed)
    return [json.dumps({"user_id": rng.randrange(50), "amount": rng.randint(1, 1000),
                        "ts": 1_700_000_000_000 + (start + i) * 7}).encode() for i in range(n)]


def big(values):
    """The rows a filter `amount > 900` appends for these values, sorted like table_rows."""
    rows = []
    for v in values:
        e = json.loads(v)
        if e["amount"] > 900:
            rows.append((e["user_id"], e["amount"], e["ts"]))
    return sorted(rows, key=repr)


def spec(topics, db, start_offsets=None, extra=""):
    so = f", startOffsets: {start_offsets}" if start_offsets else ""
    return header("changes", 1, "200ms", extra) + f"""nodes:
  - id: events
    kafka: {{ bootstrap: "{BOOTSTRAP}", topics: [{", ".join(topics)}], schema: {{ user_id: int, amount: int, ts: int }}{so} }}
  - id: big
    inputs: [events]
    filter: "amount > 900"
  - id: out
    inputs: [big]
    mysql: {{ url: "{mysql_url(db)}", table: w2, mode: append }}
"""


def running_job(tmp_path, text, name, *extra):
    """Starts `weir run` on the spec, with the test's state directory and an events file."""
    path = tmp_path / name
    path.write_text(text)
    events = tmp_path / f"{name}.events.jsonl"
    proc = start_run(str(path), "--state-dir", str(tmp_path / "state"), "--events", str(events), *extra)
    return proc, events


def wait_rows(db, proc, n, timeout=90):
    deadline = time.time() + timeout
    while len(table_rows(db, "w2")) < n:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, f"fewer than {n} rows after {timeout} s"
        time.sleep(0.2)


def stop(proc):
    """Stops a running job with a snapshot (SIGTERM); returns its stderr."""
    proc.send_signal(signal.SIGTERM)
    out, err = finish(proc)
    assert proc.returncode == 0, err[-2000:]
    assert "stopped with snapshot" in out + err, (out + err)[-2000:]
    return err


def final_event(events):
    return [json.loads(line) for line in events.read_text().splitlines() if line.strip()][-1]


def delete_topic(t):
    """Deletes topic `t` and waits until the broker no longer lists it."""
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.delete_topics([t]).values():
        f.result(10)
    deadline = time.time() + 30
    while t in admin.list_topics(timeout=5).topics:
        assert time.time() < deadline, f"topic {t} still listed after its deletion"
        time.sleep(0.2)


def job_past_first_batch(tmp_path, names, db, seed, n=300, extra=""):
    """Creates a 2-partition topic and the table, produces a first batch of `n` events, starts
    the job and waits until the batch's rows are committed. Returns (topic, batch, process, events)."""
    t = names["topic"]
    create_topic(t, 2)
    create_w2(db)
    first = batch(n, seed, 0)
    produce_values(t, first, 2)
    proc, events = running_job(tmp_path, spec([t], names["db"], extra=extra), "job.yaml")
    wait_rows(db, proc, len(big(first)))
    return t, first, proc, events


def run_until_committed(tmp_path, text, db, rows, name):
    """Runs the spec until the table holds `rows` rows, then stops it with a snapshot."""
    proc, _ = running_job(tmp_path, text, name)
    wait_rows(db, proc, rows)
    return stop(proc)


def restore(tmp_path, text, name):
    """Runs the spec from the latest snapshot until its input is complete; returns (stderr, events)."""
    proc, events = running_job(tmp_path, text, name, "--from-snapshot", "latest", "--until-idle", "1")
    _, err = finish(proc)
    assert proc.returncode == 0, err[-3000:]
    return err, [json.loads(line) for line in events.read_text().splitlines() if line.strip()]


def test_a_topic_dropped_from_the_spec_is_dropped_from_the_restore_and_a_new_one_starts_at_its_offsets(tmp_path, names, db):
    a, b, c = (f"{names['topic']}_{x}" for x in "abc")
    for t in (a, b, c):
        create_topic(t, 2)
    create_w2(db)
    a1, b1, c_all = batch(300, 1, 0), batch(300, 2, 0), batch(200, 3, 0)
    produce_values(a, a1, 2)
    produce_values(b, b1, 2)
    produced_c = produce_values(c, c_all, 2)
    run_until_committed(tmp_path, spec([a, b], names["db"]), db, len(big(a1 + b1)), "v1.yaml")

    a2, b2 = batch(300, 4, 300), batch(300, 5, 300)
    produce_values(a, a2, 2)
    produce_values(b, b2, 2)  # not read: b is no longer in the spec
    # v2 reads a (restored) and c, a topic new to the job, from its own startOffsets.
    err, events = restore(tmp_path, spec([a, c], names["db"], start_offsets=f'{{ "{c}/0": 40, "{c}/1": 60 }}'), "v2.yaml")
    assert f"dropped: {b}/0, {b}/1" in err, err[-3000:]
    assert f"topics new to the job start from their startOffsets: {c}" in err, err[-3000:]
    adjusted = [e for e in events if e["event"] == "restore_adjusted"]
    assert adjusted and adjusted[0]["dropped"] == [f"{b}/0", f"{b}/1"] and adjusted[0]["newTopics"] == [c], adjusted
    from_c = [v for (p, off, v) in produced_c if off >= {0: 40, 1: 60}[p]]
    assert len(from_c) == 200 - 40 - 60
    assert table_rows(db, "w2") == big(a1 + b1 + a2 + from_c)


def test_a_topic_created_wider_resumes_its_old_partitions_and_reads_the_new_ones_from_earliest(tmp_path, names, db):
    t = names["topic"]
    create_topic(t, 2)
    create_w2(db)
    first = batch(400, 6, 0)
    produce_values(t, first, 2)
    run_until_committed(tmp_path, spec([t], names["db"]), db, len(big(first)), "v1.yaml")

    # The topic is deleted and created again with 4 partitions; partitions 0 and 1 get the
    # same messages at the same offsets as before, then new messages go to all four.
    delete_topic(t)
    create_topic(t, 4)
    again = produce_values(t, first, 2)
    assert sorted((p, o) for p, o, _ in again) == sorted((i % 2, i // 2) for i in range(len(first)))
    second = batch(400, 7, 400)
    produce_values(t, second, 4)

    err, events = restore(tmp_path, spec([t], names["db"]), "v1-again.yaml")
    assert f"partitions new since the snapshot are read from earliest: {t}/2, {t}/3" in err, err[-3000:]
    adjusted = [e for e in events if e["event"] == "restore_adjusted"]
    assert adjusted and adjusted[0]["newPartitions"] == [f"{t}/2", f"{t}/3"], adjusted
    assert table_rows(db, "w2") == big(first + second)


def test_a_column_dropped_mid_run_stops_the_job_with_sink_schema_changed_naming_it(tmp_path, names, db):
    t, first, proc, events = job_past_first_batch(tmp_path, names, db, seed=8)
    with db.cursor() as cur:
        cur.execute("ALTER TABLE w2 DROP COLUMN ts")
    committed = sorted((r[0], r[1]) for r in table_rows(db, "w2"))
    produce_values(t, batch(300, 9, 300), 2)
    _, err = finish(proc)
    assert proc.returncode != 0, err[-2000:]
    final = final_event(events)
    assert final["event"] == "failed" and final["code"] == "sink_schema_changed", final
    assert "ts" in final["message"] and "w2" in final["message"], final
    assert "restarting" not in err, "a changed table is not retried"
    # What was committed before the change stays, exactly once.
    assert committed == sorted((u, a) for (u, a, _) in big(first))
    assert sorted((r[0], r[1]) for r in table_rows(db, "w2")) == committed


def test_a_column_added_with_a_default_mid_run_is_taken_without_loss(tmp_path, names, db):
    t, first, proc, _ = job_past_first_batch(tmp_path, names, db, seed=10)
    second = batch(300, 11, 300)
    with db.cursor() as cur:
        cur.execute("ALTER TABLE w2 ADD COLUMN note VARCHAR(10) NOT NULL DEFAULT 'x'")
    produce_values(t, second, 2)
    wait_rows(db, proc, len(big(first + second)))
    stop(proc)
    assert sorted(r[:3] for r in table_rows(db, "w2")) == sorted(big(first + second))


def test_a_check_constraint_added_mid_run_sends_the_rows_it_refuses_through_the_bad_record_policy(tmp_path, names, db):
    t, first, proc, _ = job_past_first_batch(tmp_path, names, db, seed=12, extra="onError: skip\n")
    second = batch(300, 13, 300)
    cutoff = max(json.loads(v)["ts"] for v in first) + 1
    with db.cursor() as cur:  # every row so far satisfies it; later rows of users >= 40 do not
        cur.execute(f"ALTER TABLE w2 ADD CONSTRAINT recent_small CHECK (user_id < 40 OR ts < {cutoff})")
    produce_values(t, second, 2)
    kept = [r for r in big(second) if r[0] < 40]
    refused = len(big(second)) - len(kept)
    assert refused > 0
    wait_rows(db, proc, len(big(first)) + len(kept))
    time.sleep(1.0)  # a few more checkpoints: nothing else may arrive
    err = stop(proc)
    assert table_rows(db, "w2") == sorted(big(first) + kept, key=repr)
    assert "recent_small" in err, "the refused rows are logged with the constraint that refused them"


def test_a_topic_deleted_mid_run_stops_the_job_with_topic_deleted_naming_it(tmp_path, names, db):
    t, first, proc, events = job_past_first_batch(tmp_path, names, db, seed=14, n=400)
    delete_topic(t)
    _, err = finish(proc, timeout=60)
    assert proc.returncode == 1, f"exit {proc.returncode} (a crash is negative)\n{err[-2000:]}"
    final = final_event(events)
    assert final["event"] == "failed" and final["code"] == "topic_deleted", final
    assert f"'{t}'" in final["subject"], final
    assert "restarting" not in err, "a deleted topic is not retried"
    assert table_rows(db, "w2") == big(first), "what was committed stays, exactly once"


def test_a_locked_table_fails_the_epoch_after_the_lock_wait_bound_and_the_job_recovers_exactly(tmp_path, names, db):
    """LOCK TABLES held for longer than Weir's session lock_wait_timeout (50 s): the blocked
    epoch fails with the server's lock-wait error, the run restarts from its checkpoint, and
    once the lock is gone everything is written exactly once."""
    t, first, proc, _ = job_past_first_batch(tmp_path, names, db, seed=15, extra="restart: { attempts: 5, delay: 1s }\n")
    second = batch(300, 16, 300)
    locker = reference.connect(MYSQL_PORT, names["db"])
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLES w2 WRITE")
        produce_values(t, second, 2)
        time.sleep(56)  # longer than the 50 s bound: the blocked epoch fails and the job restarts
        assert proc.poll() is None, "a lock is ridden out by a restart, not a stop: " + proc.communicate()[1][-3000:]
        with locker.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        wait_rows(db, proc, len(big(first + second)))
        err = stop(proc)
    finally:
        with locker.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        locker.close()
    assert "Lock wait timeout" in err or "lock_wait_timeout" in err, err[-3000:]
    assert "restarting" in err, err[-3000:]
    assert table_rows(db, "w2") == big(first + second), "exactly once across the failed epoch"


def restart_mariadb(down_seconds):
    """Stops the test MariaDB (SIGTERM, a clean shutdown) and starts it again with the same
    command line after `down_seconds`; the run directory's pid file follows the new process."""
    import os
    import subprocess
    from fault_support import mariadb_pid
    pid = mariadb_pid()
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0") if a]
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 60
    while os.path.exists(f"/proc/{pid}"):
        assert time.time() < deadline, "MariaDB did not shut down"
        time.sleep(0.1)
    time.sleep(down_seconds)
    log = open(os.devnull, "w")
    new = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
    run_dir = os.environ.get("WEIR_RUN_DIR")
    if run_dir and os.path.exists(os.path.join(run_dir, "mariadb.pid")):
        with open(os.path.join(run_dir, "mariadb.pid"), "w") as f:
            f.write(str(new.pid))
    deadline = time.time() + 60
    while True:
        try:
            reference.connect(MYSQL_PORT).close()
            return
        except Exception:
            assert time.time() < deadline, "MariaDB did not come back"
            time.sleep(0.2)


def test_mariadb_restarted_mid_run_is_ridden_out_exactly_once(tmp_path, names, db):
    t, first, proc, _ = job_past_first_batch(tmp_path, names, db, seed=17, extra="restart: { attempts: 10, delay: 500ms }\n")
    second, third = batch(300, 18, 300), batch(300, 19, 600)
    produce_values(t, second, 2)
    restart_mariadb(down_seconds=3)
    db.ping(reconnect=True)  # the fixture's session went down with the server
    produce_values(t, third, 2)
    check = reference.connect(MYSQL_PORT, names["db"])
    try:
        deadline = time.time() + 120
        while len(table_rows(check, "w2")) < len(big(first + second + third)):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.time() < deadline, "the job did not catch up after the restart"
            time.sleep(0.3)
        time.sleep(1.0)  # a few more checkpoints: nothing may arrive twice
        assert table_rows(check, "w2") == big(first + second + third)
    finally:
        check.close()
    err = stop(proc)
    assert "restarting (attempt" in err, "the outage was seen by the run: " + err[-2000:]
