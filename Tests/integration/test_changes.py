"""Changes to the systems around a job between its runs (issue 9), against
real Tansu and MariaDB. Each run restores the previous one's stop snapshot;
the MySQL table is compared with what must be there, computed in Python from
the values produced (never from Weir's output).

- A topic dropped from the spec: the restore goes on without it, says so in
  its log and events, and drops its offsets; a topic added to the spec starts
  from its own startOffsets.
- A topic created wider (deleted and re-created with more partitions): the
  snapshot's partitions resume at their offsets, the new ones are read from
  earliest, and the restore says so.
- Partitions added while the job runs (librdkafka's mock cluster: Tansu cannot
  add partitions): read from earliest, in the next snapshot, and a restore from
  a snapshot older than later ones reads those from earliest too."""
import json
import random
import signal
import time

import pymysql
import pytest

import reference
from conftest import BOOTSTRAP, MYSQL_PORT
from fault_support import (DEAD_LETTER, LiveProducer, MockCluster, create_topic, create_w1, create_w2, dead_letters,
                           delete_topic, finish, header, mysql_url, produce_values, read_topic_full, start_run,
                           table_rows, w1_spec)


def batch(n, seed, start, null_users=0.0):
    """`n` W2-shaped events (as bytes), seeded, event time advancing from `start`;
    a share `null_users` of them has a null user_id."""
    rng = random.Random(seed)
    return [json.dumps({"user_id": None if rng.random() < null_users else rng.randrange(50), "amount": rng.randint(1, 1000),
                        "ts": 1_700_000_000_000 + (start + i) * 7}).encode() for i in range(n)]


def big(values):
    """The rows a filter `amount > 900` appends for these values, sorted like table_rows."""
    rows = []
    for v in values:
        e = json.loads(v)
        if e["amount"] > 900:
            rows.append((e["user_id"], e["amount"], e["ts"]))
    return sorted(rows, key=repr)


def spec(topics, db, start_offsets=None, extra="", bootstrap=BOOTSTRAP, parallelism=1, discovery=None, sink="",
         user_type="int"):
    so = f", startOffsets: {start_offsets}" if start_offsets else ""
    so += f", partitionDiscovery: {discovery}" if discovery else ""
    return header("changes", parallelism, "200ms", extra) + f"""nodes:
  - id: events
    kafka: {{ bootstrap: "{bootstrap}", topics: [{", ".join(topics)}], schema: {{ user_id: {user_type}, amount: int, ts: int }}{so} }}
  - id: big
    inputs: [events]
    filter: "amount > 900"
  - id: out
    inputs: [big]
    mysql: {{ url: "{mysql_url(db)}", table: w2, mode: append{sink} }}
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


def wait_dead_letters(db, proc, n, timeout=90):
    deadline = time.time() + timeout

    def count():
        try:
            return len(dead_letters(db))
        except pymysql.err.ProgrammingError:  # the job has not created the table yet
            return 0
    while count() < n:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.time() < deadline, f"fewer than {n} dead letters after {timeout} s"
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


def job_past_first_batch(tmp_path, names, db, seed, n=300, extra="", table="w2", rows=None, **options):
    """Creates a 2-partition topic and the table (`table`: its column list), produces a first
    batch of `n` events, starts the job and waits until the batch's `rows` (default: all its
    rows) are committed. Returns (topic, batch, process, events)."""
    t = names["topic"]
    create_topic(t, 2)
    if table == "w2":
        create_w2(db)
    else:
        with db.cursor() as cur:
            cur.execute(f"CREATE TABLE w2 ({table})")
    first = batch(n, seed, 0)
    produce_values(t, first, 2)
    proc, events = running_job(tmp_path, spec([t], names["db"], extra=extra, **options), "job.yaml")
    wait_rows(db, proc, len(big(first)) if rows is None else rows)
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


def test_partitions_added_while_running_are_read_from_earliest_and_enter_the_next_snapshot(tmp_path, names, db):
    mock = MockCluster()
    try:
        t = names["topic"]
        mock.topic(t, 2)
        create_w2(db)
        first = batch(300, 11, 0)
        produce_values(t, first, 2, bootstrap=mock.bootstrap)
        text = spec([t], names["db"], bootstrap=mock.bootstrap, parallelism=2, discovery="300ms")
        proc, events = running_job(tmp_path, text, "job.yaml")
        wait_rows(db, proc, len(big(first)))

        # Two partitions appear while the job runs; new events go to all four.
        mock.topic(t, 4)
        second = batch(400, 12, 300)
        produce_values(t, second, 4, bootstrap=mock.bootstrap)
        wait_rows(db, proc, len(big(first + second)))
        err = stop(proc)
        assert "reading new partitions" in err, err[-3000:]
        lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
        added = sorted(s for e in lines if e["event"] == "splits_added" for s in e["splits"])
        assert added == [f"{t}/2", f"{t}/3"], added
        # Each new partition is read by exactly one of the two subtasks.
        assert len([e for e in lines if e["event"] == "splits_added"]) <= 2
        stop_snapshot = [e for e in lines if e["event"] == "snapshot" and e["kind"] == "stop"][-1]
        assert stop_snapshot["offsets"]["events"] == {f"{t}/0": 250, f"{t}/1": 250, f"{t}/2": 100, f"{t}/3": 100}, stop_snapshot
        assert table_rows(db, "w2") == big(first + second)

        # While the job is stopped the topic grows again: a restore from the snapshot,
        # which does not list partitions 4 and 5, reads them from earliest and says so.
        mock.topic(t, 6)
        third = batch(600, 13, 700)
        produce_values(t, third, 6, bootstrap=mock.bootstrap)
        err, restored = restore(tmp_path, text, "again.yaml")
        assert f"partitions new since the snapshot are read from earliest: {t}/4, {t}/5" in err, err[-3000:]
        assert [e["newPartitions"] for e in restored if e["event"] == "restore_adjusted"] == [[f"{t}/4", f"{t}/5"]]
        assert table_rows(db, "w2") == big(first + second + third)
    finally:
        mock.close()


@pytest.mark.parametrize("change", ["DROP COLUMN ts", "RENAME COLUMN ts TO event_ts"])
def test_a_column_dropped_or_renamed_mid_run_stops_the_job_with_sink_schema_changed_naming_it(tmp_path, names, db, change):
    t, first, proc, events = job_past_first_batch(tmp_path, names, db, seed=8)
    with db.cursor() as cur:
        cur.execute(f"ALTER TABLE w2 {change}")
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


def test_a_widened_column_is_taken_at_the_next_epoch_without_loss(tmp_path, names, db):
    # amount TINYINT UNSIGNED holds none of the job's amounts (901..1000): they are dead letters
    # until the column is widened; then the next epochs write every row.
    t, first, proc, _ = job_past_first_batch(tmp_path, names, db, seed=30, extra=DEAD_LETTER, rows=0,
                                             table="user_id BIGINT, amount TINYINT UNSIGNED, ts BIGINT")
    wait_dead_letters(db, proc, len(big(first)))
    with db.cursor() as cur:
        cur.execute("ALTER TABLE w2 MODIFY amount SMALLINT")
    second = batch(300, 31, 300)
    produce_values(t, second, 2)
    wait_rows(db, proc, len(big(second)))
    time.sleep(1.0)
    stop(proc)
    assert table_rows(db, "w2") == big(second)
    assert len(dead_letters(db)) == len(big(first)), "only the rows from before the change were refused"


def refused_mid_run(db, proc, t, first, second, keep):
    """Produces `second` after a change to the table: the rows `keep` accepts are written,
    the others dead-lettered. Stops the job, checks both tables, returns its stderr."""
    produce_values(t, second, 2)
    kept = [r for r in big(second) if keep(r)]
    refused = len(big(second)) - len(kept)
    assert refused > 0
    wait_rows(db, proc, len(big(first)) + len(kept))
    wait_dead_letters(db, proc, refused)
    time.sleep(1.0)  # a few more checkpoints: nothing else may arrive
    err = stop(proc)
    assert table_rows(db, "w2") == sorted(big(first) + kept, key=repr)
    assert len(dead_letters(db)) == refused
    return err


def test_a_column_made_not_null_mid_run_sends_null_rows_through_the_bad_record_policy(tmp_path, names, db):
    t, first, proc, _ = job_past_first_batch(tmp_path, names, db, seed=32, extra=DEAD_LETTER, user_type="int?")
    with db.cursor() as cur:
        cur.execute("ALTER TABLE w2 MODIFY user_id BIGINT NOT NULL")
    refused_mid_run(db, proc, t, first, batch(400, 33, 300, null_users=0.3), keep=lambda r: r[0] is not None)


def test_a_unique_key_added_mid_run_sends_duplicate_rows_through_the_bad_record_policy(tmp_path, names, db):
    t, first, proc, _ = job_past_first_batch(tmp_path, names, db, seed=34, extra=DEAD_LETTER)
    with db.cursor() as cur:
        cur.execute("ALTER TABLE w2 ADD UNIQUE KEY one_per_ts (ts)")
    # Every third event of the second batch repeats the event time of an event of the first.
    second = [json.dumps({**json.loads(v), "ts": json.loads(first[i])["ts"]} if i % 3 == 0 else json.loads(v)).encode()
              for i, v in enumerate(batch(300, 35, 300))]
    taken = {r[2] for r in big(first)}
    err = refused_mid_run(db, proc, t, first, second, keep=lambda r: r[2] not in taken)
    assert "one_per_ts" in err, "the refused rows are logged with the key that refused them"


def test_a_column_whose_type_changes_kind_mid_run_stops_the_job_with_sink_schema_changed(tmp_path, names, db):
    t, first, proc, events = job_past_first_batch(tmp_path, names, db, seed=36)
    with db.cursor() as cur:
        cur.execute("ALTER TABLE w2 MODIFY amount VARCHAR(10)")
    produce_values(t, batch(300, 37, 300), 2)
    _, err = finish(proc)
    assert proc.returncode == 1, err[-2000:]
    final = final_event(events)
    assert final["event"] == "failed" and final["code"] == "sink_schema_changed", final
    assert "column 'amount'" in final["subject"] and "w2" in final["subject"], final
    assert "from bigint(20) to varchar(10)" in final["message"], final
    assert "restarting" not in err, "a changed table is not retried"
    assert table_rows(db, "w2") == sorted(((u, str(a), ts) for (u, a, ts) in big(first)), key=repr), \
        "committed rows stay, exactly once"


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


def test_a_locked_table_fails_the_epoch_after_the_sinks_lock_wait_and_the_job_recovers_exactly(tmp_path, names, db):
    """LOCK TABLES held for longer than the sink's lockWait (3 s here, 50 s by default): the
    blocked epoch fails with the server's lock-wait error naming the table, the run restarts
    from its checkpoint, and once the lock is gone everything is written exactly once."""
    t, first, proc, _ = job_past_first_batch(tmp_path, names, db, seed=15, extra="restart: { attempts: 10, delay: 1s }\n",
                                             sink=", lockWait: 3s")
    second = batch(300, 16, 300)
    locker = reference.connect(MYSQL_PORT, names["db"])
    try:
        with locker.cursor() as cur:
            cur.execute("LOCK TABLES w2 WRITE")
        produce_values(t, second, 2)
        time.sleep(6)  # longer than the 3 s bound: the blocked epoch fails and the job restarts
        assert proc.poll() is None, "a lock is ridden out by a restart, not a stop: " + proc.communicate()[1][-3000:]
        with locker.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        wait_rows(db, proc, len(big(first + second)))
        err = stop(proc)
    finally:
        with locker.cursor() as cur:
            cur.execute("UNLOCK TABLES")
        locker.close()
    assert "Lock wait timeout" in err and "`w2`" in err, err[-3000:]
    assert "restarting" in err, err[-3000:]
    assert table_rows(db, "w2") == big(first + second), "exactly once across the failed epoch"


def test_a_long_lock_under_a_live_feed_idles_no_partition_and_loses_nothing(tmp_path, names, db):
    """A windowed job (event time, 1 s idle timeout) whose table stays locked for 14 s while
    events keep arriving: epochs fail after lockWait and the run restarts until the lock
    ends. The sources never take the wait for idleness (it comes from lag), so no record is
    late and the windows equal the reference."""
    topic = names["topic"]
    create_topic(topic, 2)
    create_w1(db)
    text = w1_spec(topic, names["db"], checkpoint="300ms", name="w1lock",
                   event_time="{ field: ts, maxOutOfOrderness: 2s, idleTimeout: 1s }",
                   extra="restart: { attempts: 30, delay: 500ms }\n", sink_options=", lockWait: 2s")
    producer = LiveProducer(topic, 2, rate=400, count=8000, seed=21)
    producer.start()
    stats_file = tmp_path / "stats.json"
    path = tmp_path / "w1lock.yaml"
    path.write_text(text)
    proc = start_run(str(path), "--state-dir", str(tmp_path / "state"), "--until-idle", "3", "--stats", str(stats_file))
    locker = reference.connect(MYSQL_PORT, names["db"])
    try:
        time.sleep(1)
        with locker.cursor() as cur:
            cur.execute("LOCK TABLES w1 WRITE")
        time.sleep(14)  # spans a window boundary (10 s windows of wall-clock event time)
        with locker.cursor() as cur:
            cur.execute("UNLOCK TABLES")
    finally:
        locker.close()
    producer.join(60)
    assert producer.error is None and producer.sent == 8000
    _, err = finish(proc, 120)
    assert proc.returncode == 0, err[-3000:]
    assert "Lock wait timeout" in err and "restarting" in err, "the lock was met: " + err[-3000:]
    stats = json.loads(stats_file.read_text())
    assert stats["lateRecords"] == 0, f"{stats['lateRecords']} late records"
    events = [json.loads(v) for _, _, v in read_topic_full(topic)]
    assert len(events) == 8000
    assert reference.diff(reference.w1_reference(events), reference.mysql_w1(db, "w1")) == ""


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
