"""Bad input and unavailable components produce clear errors that name the
object at fault, exit non-zero, and never crash the engine."""
import signal
import subprocess
import time

from conftest import BOOTSTRAP, MYSQL_PORT, WEIR, weir, write_spec
from test_workloads import create_tables, w2_spec


def test_validate_reports_located_errors(tmp_path, names):
    spec = w2_spec(names["topic"], names["db"])
    p = weir("validate", write_spec(tmp_path, spec.replace("amount > 900", "amout > 900")), check=False)
    assert p.returncode != 0
    assert "nodes[1].filter: unknown field 'amout' (did you mean 'amount'?)" in p.stderr
    p = weir("validate", write_spec(tmp_path, spec.replace("select: [", "selct: [")), check=False)
    assert p.returncode != 0
    assert "nodes[2].selct: unknown field 'selct' (did you mean 'select'?)" in p.stderr
    assert "unknown node" not in p.stderr  # no cascade from the broken node


def test_validate_accepts_good_spec(tmp_path, names):
    p = weir("validate", write_spec(tmp_path, w2_spec(names["topic"], names["db"])))
    assert "ok" in p.stdout and "slim [select]" in p.stdout


def test_missing_topic_is_named(tmp_path, names, db):
    create_tables(db)
    p = weir("run", write_spec(tmp_path, w2_spec(names["topic"], names["db"])), "--until-idle", "1", check=False)
    assert p.returncode == 1
    assert f"topic '{names['topic']}'" in p.stderr and "does not exist" in p.stderr


def test_unreachable_broker_is_named(tmp_path, names, db):
    create_tables(db)
    spec = w2_spec(names["topic"], names["db"]).replace(BOOTSTRAP, "127.0.0.1:1")
    t0 = time.time()
    p = weir("run", write_spec(tmp_path, spec), "--until-idle", "1", check=False)
    assert p.returncode == 1
    assert "127.0.0.1:1" in p.stderr
    assert time.time() - t0 < 30


def test_missing_table_is_named(tmp_path, names, db):
    weir("produce", "--bootstrap", BOOTSTRAP, "--topic", names["topic"], "--partitions", "1", "--count", "10")
    p = weir("run", write_spec(tmp_path, w2_spec(names["topic"], names["db"])), "--until-idle", "1", check=False)
    assert p.returncode == 1
    assert "w2" in p.stderr and "does not exist" in p.stderr
    assert "CREATE TABLE" in p.stderr  # the suggestion


def test_column_mismatch_is_named(tmp_path, names, db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE w2 (user_id BIGINT, amount BIGINT, event_ts BIGINT)")
    weir("produce", "--bootstrap", BOOTSTRAP, "--topic", names["topic"], "--partitions", "1", "--count", "10")
    p = weir("run", write_spec(tmp_path, w2_spec(names["topic"], names["db"])), "--until-idle", "1", check=False)
    assert p.returncode == 1
    assert "column 'ts'" in p.stderr


def test_access_denied_is_named_and_password_hidden(tmp_path, names, db):
    create_tables(db)
    with db.cursor() as cur:
        cur.execute(f"CREATE USER IF NOT EXISTS 'weir_it'@'%' IDENTIFIED BY 'right-pass'")
    weir("produce", "--bootstrap", BOOTSTRAP, "--topic", names["topic"], "--partitions", "1", "--count", "10")
    spec = w2_spec(names["topic"], names["db"]).replace("mysql://root@", "mysql://weir_it:S3cretWrong@")
    p = weir("run", write_spec(tmp_path, spec), "--until-idle", "1", check=False)
    assert p.returncode == 1
    assert "weir_it" in p.stderr and "denied" in p.stderr.lower()
    assert "S3cretWrong" not in p.stderr + p.stdout


def test_cancel_on_signal_rolls_back_without_a_snapshot(tmp_path, names, db):
    create_tables(db)
    weir("produce", "--bootstrap", BOOTSTRAP, "--topic", names["topic"], "--partitions", "2", "--count", "100")
    state = tmp_path / "state"
    proc = subprocess.Popen([WEIR, "run", write_spec(tmp_path, w2_spec(names["topic"], names["db"])), "--plain",
                             "--state-dir", str(state), "--cancel-on-signal"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)
    assert proc.poll() is None, "a job without --until-idle keeps running"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "cancelling without a snapshot" in err
    assert "stopped with snapshot" not in out
    assert not state.exists() or not any(p.name.startswith("stop-") for p in state.iterdir())
