"""End-to-end tests of the control plane: a real `weir server` (private home,
free loopback port) supervising real `weir run` processes against real Tansu
and MariaDB, driven through the `weir job` CLI and the REST API. Results in
MySQL are compared with a reference computed independently from the topic."""
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse

import pytest
from confluent_kafka.admin import AdminClient

from conftest import BOOTSTRAP, MYSQL_PORT, WEIR, write_spec
import reference
from control_plane_support import (WeirServer, check_exact, create_tables, free_port, job_spec, pid_alive,
                                   produce, snapshot_total, wait_counted, wait_exact, wait_until, weir_run_processes)


@pytest.fixture
def server(tmp_path):
    s = WeirServer(tmp_path / "home").start()
    yield s
    _shutdown(s)


def _shutdown(s):
    """Stops every job still running (the server leaves runs alive across its own restarts),
    then the server; kills any run it left behind."""
    try:
        if s.proc and s.proc.poll() is None:
            for j in s.api("GET", "/api/v1/jobs").json:
                if j["status"] != "stopped":
                    s.api("POST", f"/api/v1/jobs/{j['name']}/stop", {"snapshot": False})
            for j in s.api("GET", "/api/v1/jobs").json:
                try:
                    s.wait_status(j["name"], "stopped", timeout=60)
                except AssertionError:
                    pass
    finally:
        s.stop()
        for pid in weir_run_processes(str(s.home)):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def job(names):
    """A unique job name (the spec's name too)."""
    return "cp-" + names["topic"][2:]


def spec_file(tmp_path, text, fname):
    return write_spec(tmp_path, text, fname)


def running_job(tmp_path, server, names, db, job, events, description, restart_attempts):
    """Creates the tables, produces `events`, then creates, publishes and runs the job."""
    create_tables(db)
    produce(names["topic"], 0, events)
    spec = job_spec(job, names["topic"], names["db"], restart_attempts=restart_attempts)
    server.cli("create", job, "--file", spec_file(tmp_path, spec, "j.yaml"))
    server.cli("publish", job, "--description", description)
    server.cli("run", job, "--wait")


def oldest_first(ops):
    return sorted(ops, key=lambda o: (o["requestedAt"], o["id"]))


# --- the whole lifecycle ----------------------------------------------------------------------

def test_full_lifecycle_publish_run_stop_restore_is_exact(tmp_path, server, names, db, job):
    create_tables(db)
    topic = names["topic"]
    produce(topic, 0, 10_000)
    v1 = spec_file(tmp_path, job_spec(job, topic, names["db"]), "v1.yaml")
    v2 = spec_file(tmp_path, job_spec(job, topic, names["db"], valid_node=True), "v2.yaml")

    p = server.cli("create", job, "--file", v1)
    assert "created job" in p.stdout and job in p.stdout
    assert server.job(job)["status"] == "stopped"
    p = server.cli("publish", job, "--description", "first version: totals and big payments")
    assert f"published {job} version 1" in p.stdout

    p = server.cli("run", job, "--wait")
    assert "succeeded" in p.stdout, p.stdout
    j = server.cli_json("status", job)
    assert j["status"] == "running" and j["version"] == 1 and j["latestVersion"] == 1
    assert j["warning"] is None
    run1 = j["run"]
    assert run1["version"] == 1 and isinstance(run1["pid"], int) and pid_alive(run1["pid"])
    assert run1["restoredFrom"] is None
    # --json prints exactly what the API returns.
    assert set(j) == set(server.job(job))
    text = server.cli("status", job).stdout
    assert "running" in text and "⚠" not in text

    produce(topic, 10_000, 10_000)
    wait_exact(db, topic, 20_000)

    p = server.cli("stop", job, "--snapshot", "--wait")
    assert "succeeded" in p.stdout
    j = server.job(job)
    assert j["status"] == "stopped" and j["warning"] is None
    assert not pid_alive(run1["pid"]), "the run's process is gone once the job is stopped"
    snaps = server.cli_json("snapshots", job)
    stops = [s for s in snaps if s["kind"] == "stop"]
    assert len(stops) == 1, snaps
    stop1 = stops[0]
    assert stop1["version"] == 1 and stop1["run"] == run1["id"] and stop1["sizeBytes"] > 0
    assert snapshot_total(stop1) == 20_000, "the stop snapshot holds the offsets of everything consumed"
    assert stop1["id"] in server.cli("snapshots", job).stdout
    stop_op = [o for o in server.cli_json("ops", job) if o["type"] == "stop"][0]
    assert stop_op["status"] == "succeeded" and stop1["id"] in json.dumps(stop_op["result"])

    # Version 2: one more (stateless) node; the keyed state restores by node id.
    p = server.cli("draft", job, "--file", v2)
    assert server.job(job)["latestVersion"] == 1, "editing the draft does not publish"
    assert "valid" in server.cli("draft", job).stdout
    p = server.cli("publish", job, "--description", "add a validity filter")
    assert f"published {job} version 2" in p.stdout

    p = server.cli("run", job, "--snapshot", "latest", "--wait")
    j = server.job(job)
    assert j["status"] == "running" and j["version"] == 2 and j["latestVersion"] == 2
    assert j["run"]["restoredFrom"] == stop1["id"] and j["run"]["id"] != run1["id"]
    produce(topic, 20_000, 15_000)
    wait_exact(db, topic, 35_000)
    server.cli("stop", job, "--wait")
    assert server.job(job)["status"] == "stopped"

    assert check_exact(db, topic) == 35_000

    versions = sorted(server.cli_json("versions", job), key=lambda v: v["version"])
    assert [(v["version"], v["description"]) for v in versions] == [
        (1, "first version: totals and big payments"), (2, "add a validity filter")]
    assert all(v["createdAt"] for v in versions)
    assert "id: valid" not in versions[0]["spec"] and "id: valid" in versions[1]["spec"]
    text = server.cli("versions", job).stdout
    assert "first version: totals and big payments" in text and "add a validity filter" in text

    ops = oldest_first(server.cli_json("ops", job))
    types = [o["type"] for o in ops]
    assert types.count("publish") == 2 and types.count("run") == 2 and types.count("stop") == 2, types
    for o in ops:
        assert o["status"] == "succeeded" and o["error"] is None and o["finishedAt"], o
        assert o["job"] == job
    runs = [o for o in ops if o["type"] == "run"]
    assert all(o["result"] for o in runs), "run operations report their result"
    # One operation through its own endpoint and the CLI.
    op = server.ok("GET", f"/api/v1/operations/{runs[-1]['id']}").json
    assert op["id"] == runs[-1]["id"] and op["type"] == "run"
    assert "succeeded" in server.cli("op", str(op["id"])).stdout
    assert "run" in server.cli("ops", job).stdout

    listed = {j["name"]: j for j in server.ok("GET", "/api/v1/jobs").json}
    assert listed[job]["status"] == "stopped" and listed[job]["latestVersion"] == 2
    assert re.search(rf"^{re.escape(job)}\s+stopped", server.cli("list").stdout, re.M)

    # Run logs: plain text with a next offset; reading from it returns only what is new.
    r = server.ok("GET", f"/api/v1/jobs/{job}/logs?offset=0")
    assert r.text.strip(), "the runs wrote logs"
    nxt = int(r.headers["x-next-offset"])
    assert nxt == len(r.body)
    assert server.ok("GET", f"/api/v1/jobs/{job}/logs?offset={nxt}").body == b""
    assert server.cli("logs", job).stdout.strip() == r.text.strip()


def test_publish_and_run_stopping_the_current_version_with_a_snapshot(tmp_path, server, names, db, job):
    create_tables(db)
    topic = names["topic"]
    produce(topic, 0, 10_000)
    server.cli("create", job, "--file", spec_file(tmp_path, job_spec(job, topic, names["db"]), "v1.yaml"))
    server.cli("publish", job, "--description", "v1", "--run", "--wait")
    run1 = server.job(job)["run"]
    assert server.job(job)["status"] == "running"
    produce(topic, 10_000, 5_000)
    wait_exact(db, topic, 15_000)

    server.cli("draft", job, "--file", spec_file(tmp_path, job_spec(job, topic, names["db"], valid_node=True), "v2.yaml"))
    p = server.cli("publish", job, "--description", "v2 replaces v1", "--run", "--stop-current", "--snapshot",
                   "--restore-from-stop", "--wait")
    assert f"published {job} version 2" in p.stdout and "succeeded" in p.stdout
    j = server.job(job)
    assert j["status"] == "running" and j["version"] == 2
    stop = [s for s in server.api("GET", f"/api/v1/jobs/{job}/snapshots").json if s["kind"] == "stop"]
    assert len(stop) == 1 and stop[0]["run"] == run1["id"]
    assert j["run"]["restoredFrom"] == stop[0]["id"]
    assert not pid_alive(run1["pid"])
    assert "publish_and_run" in [o["type"] for o in server.api("GET", f"/api/v1/jobs/{job}/operations").json]
    produce(topic, 15_000, 5_000)
    wait_exact(db, topic, 20_000)
    server.cli("stop", job, "--wait")
    assert check_exact(db, topic) == 20_000


# --- refusals ------------------------------------------------------------------------------------

def test_refusals(tmp_path, server, names, db, job):
    create_tables(db)
    topic = names["topic"]
    good = job_spec(job, topic, names["db"], valid_node=True)
    bad = good.replace('filter: "amount >= 1"', 'filter: "amout >= 1"')
    assert bad != good

    r = server.api("POST", "/api/v1/jobs", {"name": job, "spec": good})
    assert r.status == 201, r
    assert r.json["name"] == job and r.json["status"] == "stopped" and r.json["latestVersion"] is None
    r = server.api("POST", "/api/v1/jobs", {"name": job, "spec": good})
    assert r.status == 409, r
    assert job in r.error["message"]
    r = server.api("GET", "/api/v1/jobs/no-such-job")
    assert r.status == 404 and "no-such-job" in r.error["message"], r
    p = server.cli("status", "no-such-job", check=False)
    assert p.returncode == 1 and "error:" in p.stderr and "no-such-job" in p.stderr

    # A draft that does not validate is saved, but refused at publish with located errors.
    r = server.api("PUT", f"/api/v1/jobs/{job}/draft", {"spec": bad})
    assert r.status == 200, r
    r = server.api("POST", f"/api/v1/jobs/{job}/versions", {"description": "typo", "run": None})
    assert r.status == 422, r
    assert "nodes[1].filter: unknown field 'amout'" in r.text, r
    p = server.cli("publish", job, "--description", "typo", check=False)
    assert p.returncode == 1
    assert p.stderr.startswith("error: ") and "nodes[1].filter: unknown field 'amout'" in p.stderr, p.stderr
    assert "did you mean 'amount'" in p.stderr
    assert server.api("GET", f"/api/v1/jobs/{job}/versions").json == []

    # A description is mandatory.
    server.ok("PUT", f"/api/v1/jobs/{job}/draft", {"spec": good})
    for body in ({"description": "", "run": None}, {"description": "   ", "run": None}, {"run": None}):
        r = server.api("POST", f"/api/v1/jobs/{job}/versions", body)
        assert r.status in (400, 422), (body, r)
        assert "description" in r.error["message"].lower(), r
    p = server.cli("publish", job, "--description", "", check=False)
    assert p.returncode == 1 and "description" in p.stderr.lower(), p.stderr
    p = server.cli("publish", job, check=False)  # the CLI itself requires --description
    assert p.returncode != 0 and "--description" in p.stderr
    assert server.api("GET", f"/api/v1/jobs/{job}/versions").json == []
    r = server.api("POST", f"/api/v1/jobs/{job}/run", {"version": None, "snapshot": None, "allowNonRestoredState": False})
    assert r.status in (404, 409, 422), ("a job without versions cannot run", r)

    published = server.cli_json("publish", job, "--description", "works")
    assert published["version"]["version"] == 1 and published["version"]["description"] == "works"
    assert published["operation"] is None

    # Restoring a job that has no snapshots.
    r = server.api("POST", f"/api/v1/jobs/{job}/run", {"version": None, "snapshot": "latest", "allowNonRestoredState": False})
    assert r.status == 409, r
    assert "no snapshots" in r.error["message"], r
    assert "without --snapshot" in (r.error["suggestion"] or "") + r.error["message"], r
    p = server.cli("run", job, "--snapshot", "latest", check=False)
    assert p.returncode == 1
    assert "error: " in p.stderr and "no snapshots" in p.stderr and "without --snapshot" in p.stderr, p.stderr
    r = server.api("POST", f"/api/v1/jobs/{job}/run", {"version": 7, "snapshot": None, "allowNonRestoredState": False})
    assert 400 <= r.status < 500 and "7" in r.error["message"], r

    # Stopping a job that is not running.
    r = server.api("POST", f"/api/v1/jobs/{job}/stop", {"snapshot": True})
    assert r.status == 409, r
    p = server.cli("stop", job, check=False)
    assert p.returncode == 1 and "error: " in p.stderr
    r = server.api("POST", f"/api/v1/jobs/{job}/savepoint")
    assert r.status == 409, r
    assert server.job(job)["status"] == "stopped" and server.job(job)["warning"] is None

    # Running while running.
    produce(topic, 0, 2_000)
    server.cli("run", job, "--wait")
    r = server.api("POST", f"/api/v1/jobs/{job}/run", {"version": None, "snapshot": None, "allowNonRestoredState": False})
    assert r.status == 409, r
    assert "stop the running version 1 first" in r.text, r
    p = server.cli("run", job, check=False)
    assert p.returncode == 1 and "version 1" in p.stderr, p.stderr
    r = server.api("DELETE", f"/api/v1/jobs/{job}")
    assert r.status == 409, ("a running job cannot be deleted", r)
    assert server.job(job)["status"] == "running"
    server.cli("stop", job, "--wait")

    # Unknown fields / bad JSON are refused as such.
    r = server.api("POST", "/api/v1/jobs", None, headers={"Content-Type": "application/json"})
    assert 400 <= r.status < 500, r
    p = server.cli("delete", job)
    assert server.api("GET", f"/api/v1/jobs/{job}").status == 404


def test_cli_without_a_server_exits_2_with_a_hint():
    port = free_port()
    p = subprocess.run([WEIR, "job", "list", "--server", f"http://127.0.0.1:{port}"], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.startswith("error: ") and f"127.0.0.1:{port}" in p.stderr
    assert "weir server" in p.stderr
    env = dict(os.environ, WEIR_SERVER=f"127.0.0.1:{port}")
    p = subprocess.run([WEIR, "job", "status", "x"], capture_output=True, text=True, env=env)
    assert p.returncode == 2 and f"127.0.0.1:{port}" in p.stderr


# --- failure fallback -------------------------------------------------------------------------

def test_run_of_a_missing_topic_falls_back_to_stopped_with_a_warning(tmp_path, server, names, db, job):
    create_tables(db)
    topic = names["topic"]  # never created
    server.cli("create", job, "--file", spec_file(tmp_path, job_spec(job, topic, names["db"], restart_attempts=0), "j.yaml"))
    server.cli("publish", job, "--description", "reads a topic that does not exist")
    p = server.cli("run", job, "--wait", check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "error: " in p.stderr and topic in p.stderr and "suggestion: " in p.stderr, p.stderr
    j = server.job(job)
    assert j["status"] == "stopped" and j["run"] is None
    w = j["warning"]
    assert w and topic in w["message"], j
    assert w["suggestion"], "a missing topic has a suggestion in the catalogue"
    text = server.cli("status", job).stdout
    assert "⚠" in text and topic in text and w["suggestion"] in text, text
    assert "⚠" in server.cli("list").stdout
    op = oldest_first(server.cli_json("ops", job))[-1]
    assert op["type"] == "run" and op["status"] == "failed" and topic in op["error"]["message"]
    assert op["error"]["suggestion"] == w["suggestion"]
    assert server.cli_json("status", job)["warning"] == w


def test_operating_until_up_and_an_unreachable_broker_falls_back_with_a_warning(tmp_path, server, names, db, job):
    """A run against a broker nobody listens on stays `operating` while it tries, then the
    job falls back to `stopped` with a warning naming the broker and a suggestion."""
    create_tables(db)
    spec = job_spec(job, names["topic"], names["db"], restart_attempts=0).replace(BOOTSTRAP, "127.0.0.1:1")
    server.cli("create", job, "--file", spec_file(tmp_path, spec, "j.yaml"))
    server.cli("publish", job, "--description", "unreachable broker")
    r = server.api("POST", f"/api/v1/jobs/{job}/run", {"version": None, "snapshot": None, "allowNonRestoredState": False})
    assert r.status == 202, r
    op = r.json
    assert op["type"] == "run" and op["status"] in ("pending", "running") and op["finishedAt"] is None
    assert server.job(job)["status"] == "operating"
    assert "operating" in server.cli("status", job).stdout
    r = server.api("POST", f"/api/v1/jobs/{job}/run", {"version": None, "snapshot": None, "allowNonRestoredState": False})
    assert r.status == 409, r
    r = server.api("POST", f"/api/v1/jobs/{job}/stop", {"snapshot": True})
    assert r.status == 409, ("one operation at a time", r)
    p = server.cli("op", op["id"], "--wait", check=False)
    assert p.returncode == 1 and "127.0.0.1:1" in p.stderr and "suggestion: " in p.stderr, p.stderr
    j = server.job(job)
    assert j["status"] == "stopped" and j["run"] is None
    assert "127.0.0.1:1" in j["warning"]["message"] and j["warning"]["suggestion"], j
    assert server.wait_op(op["id"])["status"] == "failed"


def test_failed_stop_with_snapshot_keeps_the_job_running_with_a_warning(tmp_path, server, names, db, job):
    """A stop whose snapshot cannot complete (1 ms timeout) fails; the run goes on, so
    the status falls back to `running` with a warning; a stop without snapshot then works."""
    create_tables(db)
    topic = names["topic"]
    produce(topic, 0, 3_000)
    spec = job_spec(job, topic, names["db"]).replace(
        "checkpoint: { interval: 300ms, retain: 3, timeout: 30s }", "checkpoint: { interval: 1h, timeout: 1ms }")
    assert "timeout: 1ms" in spec
    server.cli("create", job, "--file", spec_file(tmp_path, spec, "j.yaml"))
    server.cli("publish", job, "--description", "snapshots always time out")
    server.cli("run", job, "--wait")
    pid = server.job(job)["run"]["pid"]
    p = server.cli("stop", job, "--snapshot", "--wait", check=False)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "error: " in p.stderr
    j = server.job(job)
    assert j["status"] == "running" and j["run"]["pid"] == pid and pid_alive(pid), j
    assert j["warning"] and j["warning"]["message"], j
    text = server.cli("status", job).stdout
    assert "⚠ running" in text, text
    assert [s for s in server.api("GET", f"/api/v1/jobs/{job}/snapshots").json if s["kind"] == "stop"] == []
    server.cli("stop", job, "--wait")
    assert server.job(job)["status"] == "stopped"
    wait_until(lambda: not pid_alive(pid), 30, "the run to exit")


def test_restoring_into_a_version_without_a_stateful_node_needs_allow_non_restored_state(tmp_path, server, names, db, job):
    create_tables(db)
    topic = names["topic"]
    produce(topic, 0, 3_000)
    v1 = job_spec(job, topic, names["db"], restart_attempts=0)
    v2 = v1.replace("id: per-user", "id: per-user-v2").replace("inputs: [per-user]", "inputs: [per-user-v2]")
    server.cli("create", job, "--file", spec_file(tmp_path, v1, "v1.yaml"))
    server.cli("publish", job, "--description", "v1")
    server.cli("run", job, "--wait")
    wait_exact(db, topic, 3_000)
    server.cli("stop", job, "--snapshot", "--wait")
    server.cli("draft", job, "--file", spec_file(tmp_path, v2, "v2.yaml"))
    server.cli("publish", job, "--description", "renamed the aggregate")
    p = server.cli("run", job, "--snapshot", "latest", "--wait", check=False)
    assert p.returncode == 1
    assert "'per-user'" in p.stderr and "allow-non-restored-state" in p.stderr.lower().replace("allownonrestoredstate", "allow-non-restored-state"), p.stderr
    j = server.job(job)
    assert j["status"] == "stopped" and "'per-user'" in j["warning"]["message"], j
    # Version 1 still restores from the same stop snapshot, chosen by id.
    stop1 = [s for s in server.api("GET", f"/api/v1/jobs/{job}/snapshots").json if s["kind"] == "stop"][0]
    server.cli("run", job, "--version", "1", "--snapshot", stop1["id"], "--wait")
    j = server.job(job)
    assert j["status"] == "running" and j["version"] == 1 and j["latestVersion"] == 2
    assert j["run"]["restoredFrom"] == stop1["id"] and j["warning"] is None
    server.cli("stop", job, "--snapshot", "--wait")
    p = server.cli("run", job, "--snapshot", "latest", "--allow-non-restored-state", "--wait")
    j = server.job(job)
    assert j["status"] == "running" and j["version"] == 2 and j["run"]["restoredFrom"].startswith("stop-"), j
    assert j["warning"] is None
    server.cli("stop", job, "--wait")


def test_publish_and_run_refuses_an_incompatible_version_before_stopping_anything(tmp_path, server, names, db, job):
    create_tables(db)
    topic = names["topic"]
    produce(topic, 0, 3_000)
    v1 = job_spec(job, topic, names["db"])
    server.cli("create", job, "--file", spec_file(tmp_path, v1, "v1.yaml"))
    server.cli("publish", job, "--description", "v1", "--run", "--wait")
    run1 = server.job(job)["run"]
    wait_exact(db, topic, 3_000)
    # v2 changes the stateful node's aggregates (state layout) and maxParallelism.
    for change, words in ((v1.replace('total: "sum(amount)"', 'total: "max(amount)"'), "layout"),
                          (v1.replace("parallelism: 2\n", "parallelism: 2\nmaxParallelism: 64\n"), "maxParallelism")):
        server.cli("draft", job, "--file", spec_file(tmp_path, change, "v2.yaml"))
        p = server.cli("publish", job, "--description", "incompatible", "--run", "--stop-current", "--snapshot",
                       "--restore-from-stop", "--wait", check=False)
        assert p.returncode != 0, p.stdout
        assert words in p.stderr and "was not stopped" in p.stderr, p.stderr
        j = server.job(job)
        # The running version is untouched: same run, same process, no stop snapshot, no new version.
        assert j["status"] == "running" and j["run"]["id"] == run1["id"] and pid_alive(run1["pid"]), j
        assert j["latestVersion"] == 1
        assert not [s for s in server.api("GET", f"/api/v1/jobs/{job}/snapshots").json if s["kind"] == "stop"]
    failed = [o for o in server.api("GET", f"/api/v1/jobs/{job}/operations").json if o["status"] == "failed"]
    assert len(failed) == 2 and all(o["error"]["code"] == "snapshot_incompatible" for o in failed), failed
    produce(topic, 3_000, 1_000)
    wait_exact(db, topic, 4_000)
    server.cli("stop", job, "--wait")


def test_changes_around_a_running_job_become_its_warning_with_the_codes_suggestion(tmp_path, server, names, db, job):
    """A sink column dropped while the job runs, then (next run) its topic deleted: each run
    stops by itself without restarts, and the job falls back to `stopped` with a warning
    carrying the engine's code and the suggestion the catalogue has for that code."""
    topic = names["topic"]
    running_job(tmp_path, server, names, db, job, 2_000, "restarts would not help these", restart_attempts=3)
    wait_exact(db, topic, 2_000)
    with db.cursor() as cur:
        cur.execute("ALTER TABLE w2 DROP COLUMN ts")
    produce(topic, 2_000, 2_000)
    j = server.wait_status(job, "stopped", timeout=60)
    w = j["warning"]
    assert w and w["code"] == "sink_schema_changed" and "ts" in w["message"] and "w2" in w["message"], j
    assert "restore its columns" in w["suggestion"] or "restore the table's columns" in w["suggestion"], w

    with db.cursor() as cur:
        cur.execute("ALTER TABLE w2 ADD COLUMN ts BIGINT")
    server.cli("run", job, "--snapshot", "latest", "--wait")
    assert server.job(job)["warning"] is None
    wait_counted(db, 4_000)  # the totals, exactly once across the failed run (w2 lost its old ts values)
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for f in admin.delete_topics([topic]).values():
        f.result(10)
    j = server.wait_status(job, "stopped", timeout=60)
    w = j["warning"]
    assert w and w["code"] == "topic_deleted" and topic in w["message"], j
    assert "re-create the topic" in w["suggestion"], w
    assert "⚠" in server.cli("status", job).stdout


def test_restore_drills_through_the_server_report_an_incompatible_version_before_anything_runs(tmp_path, server, names, db, job):
    """Publish returns where each node's state goes; `weir job diff` and the snapshot's diff
    through the server report a changed aggregate as incompatible (exit 1) while the
    snapshot's offsets match what was produced; verify and the ledger work by job name."""
    topic = names["topic"]
    running_job(tmp_path, server, names, db, job, 4_000, "v1", restart_attempts=0)
    wait_exact(db, topic, 4_000)
    server.cli("stop", job, "--snapshot", "--wait")
    produce(topic, 4_000, 1_000)

    changed = job_spec(job, topic, names["db"], restart_attempts=0).replace(
        'aggregate: { cnt: "count()", total: "sum(amount)" }', 'aggregate: { cnt: "count()", total: "sum(amount)", top: "max(amount)" }')
    server.cli("draft", job, "--file", spec_file(tmp_path, changed, "v2.yaml"))
    published = server.api("POST", f"/api/v1/jobs/{job}/versions", {"description": "adds max(amount)"})
    assert published.status == 201, published
    mapping = {n["node"]: n for n in published.json["stateMapping"]["nodes"]}
    assert mapping["per-user"]["outcome"] == "incompatible" and "top:max" in mapping["per-user"]["now"], mapping
    assert mapping["events"]["outcome"] == "restored"

    p = server.cli("diff", job, "1", "2", check=False)
    assert p.returncode == 1 and "incompatible" in p.stdout and "top:max" in p.stdout, p.stdout + p.stderr
    assert server.cli("diff", job, "1", "1").returncode == 0

    def snapshot_cli(*args):
        e = dict(os.environ, WEIR_TOKEN=server.token or "")
        return subprocess.run([WEIR, "snapshot", *args, "--job", job, "--server", server.url], capture_output=True, text=True,
                              timeout=120, env=e)
    p = snapshot_cli("diff", "latest", "--json")
    assert p.returncode == 1, p.stdout + p.stderr
    preview = json.loads(p.stdout)
    assert any("state layout changed" in x for x in preview["problems"]), preview["problems"]
    assert sum(r["replay"] for r in preview["offsets"]["rows"]) == 1_000, preview["offsets"]
    assert sum(r["snapshotOffset"] for r in preview["offsets"]["rows"]) == 4_000
    assert server.job(job)["status"] == "stopped", "nothing was started"
    p = snapshot_cli("diff", "latest", "--version", "1")
    assert p.returncode == 0 and "the restore would go on" in p.stdout, p.stdout + p.stderr
    p = snapshot_cli("verify", "latest", "--version", "1")
    assert p.returncode == 0 and "verify: PASSED" in p.stdout, p.stdout + p.stderr
    p = snapshot_cli("transactions")
    assert p.returncode == 0 and "none in doubt" in p.stdout, p.stdout + p.stderr

    # Running version 1 from that snapshot: the accepted operation carries the preview.
    r = server.api("POST", f"/api/v1/jobs/{job}/run", {"version": 1, "snapshot": "latest", "allowNonRestoredState": False})
    assert r.status == 202, r
    preview = r.json["restorePreview"]
    assert preview["problems"] == [] and sum(x["replay"] for x in preview["offsets"]["rows"]) == 1_000, preview
    server.wait_op(r.json["id"])
    wait_exact(db, topic, 5_000)
    server.cli("stop", job, "--wait")


def test_a_drill_through_the_server_stops_the_job_keeps_its_report_and_finds_a_tampered_row(tmp_path, server, names, db, job):
    """`weir job drill` on a running job stops it with a snapshot, rehearses the restore
    in a child process and keeps the report as the operation's result; the job stays
    stopped. A row changed behind the job's back makes the next drill fail, naming the
    row. A run from the snapshot records its predicted and measured time to restore."""
    topic = names["topic"]
    running_job(tmp_path, server, names, db, job, 3_000, "v1", restart_attempts=0)
    wait_exact(db, topic, 3_000)
    produce(topic, 3_000, 500)   # the restore and the shadow both stop at the broker's end

    p = server.cli("drill", job, "--wait")
    assert "drill: PASSED" in p.stdout, p.stdout + p.stderr
    assert server.job(job)["status"] == "stopped", "a drilled job stays stopped"
    ops = oldest_first(server.api("GET", f"/api/v1/jobs/{job}/operations").json)
    op = ops[-1]
    assert op["type"] == "drill" and op["status"] == "succeeded" and op["result"]["passed"] is True, op
    assert op["result"]["snapshot"].startswith("stop-") and op["result"]["stoppedRun"], op["result"]
    report = op["result"]["report"]
    tables = {t["table"].split(".")[-1].strip("`"): t for t in report["tables"]}
    want = len(mysql_user_ids(db))
    assert tables["totals"]["rowsLive"] == tables["totals"]["rowsShadow"] == want and tables["totals"]["identical"], tables
    assert tables["w2"]["identical"] and tables["w2"]["rowsLive"] > 0, tables["w2"]
    bound = report["bound"]["events"]
    assert sum(bound.values()) == 3_500, bound
    check_exact(db, topic)   # the drill's restored run caught up exactly
    logs = server.api("GET", f"/api/v1/jobs/{job}/logs?run={op['id']}")
    assert logs.status == 200 and "drill: PASSED" in logs.text, logs

    # A row changed behind the job's back: the drill of the stopped job says which.
    with db.cursor() as cur:
        cur.execute("SELECT user_id, cnt, total FROM totals ORDER BY user_id LIMIT 1")
        user, cnt, total = cur.fetchone()
        cur.execute("UPDATE totals SET total = total + 7 WHERE user_id = %s", (user,))
    r = server.api("POST", f"/api/v1/jobs/{job}/drill", {"snapshot": "latest"})
    assert r.status == 202 and r.json["type"] == "drill", r
    done = server.wait_op(r.json["id"], timeout=180)
    assert done["status"] == "failed" and done["error"]["code"] == "drill_failed", done
    assert "differs from its shadow" in done["error"]["message"], done["error"]
    [totals] = [t for t in done["result"]["report"]["tables"] if t["table"].endswith("`totals`")]
    assert totals["onlyLive"] == [[str(user), str(cnt), str(total + 7)]], totals
    assert totals["onlyShadow"] == [[str(user), str(cnt), str(total)]], totals
    warning = server.job(job)["warning"]
    assert warning["code"] == "drill_failed", warning

    # Refusals: a drill beside an operation or of a missing snapshot.
    r = server.api("POST", f"/api/v1/jobs/{job}/drill", {"snapshot": "stop-999"})
    assert r.status == 404 and r.error["code"] == "not_found", r
    r = server.api("POST", f"/api/v1/jobs/{job}/drill", {"shadowDatabase": "x; DROP"})
    assert r.status == 422, r

    # The run history keeps each restore's predicted and measured time to restore.
    with db.cursor() as cur:
        cur.execute("UPDATE totals SET total = total - 7 WHERE user_id = %s", (user,))
    server.cli("run", job, "--snapshot", "latest", "--wait")
    produce(topic, 3_500, 100)
    wait_exact(db, topic, 3_600)
    runs = server.api("GET", f"/api/v1/jobs/{job}/runs").json
    latest = runs[0]
    assert latest["restoredFrom"] and latest["status"] == "running", latest
    measured = latest["timeToRestore"]["measured"]
    predicted = latest["timeToRestore"]["predicted"]
    assert 0 <= measured["stateLoadedMs"] <= measured["sourcesPositionedMs"], measured
    assert measured["firstRecordMs"] is None or measured["firstRecordMs"] >= measured["sourcesPositionedMs"], measured
    assert predicted["stateBytes"] > 0 and predicted["firstRecordMs"] > 0, predicted
    assert runs[-1]["outcome"] == "stopped" and runs[-1]["restoredFrom"] is None, runs[-1]
    p = server.cli("runs", job)
    assert latest["id"] in p.stdout and "PREDICTED" in p.stdout, p.stdout
    server.cli("stop", job, "--wait")


def mysql_user_ids(db):
    with db.cursor() as cur:
        cur.execute("SELECT user_id FROM totals")
        return [r[0] for r in cur.fetchall()]


def test_killed_run_falls_back_to_stopped_with_a_warning(tmp_path, server, names, db, job):
    topic = names["topic"]
    running_job(tmp_path, server, names, db, job, 5_000, "no restarts", restart_attempts=0)
    j = server.job(job)
    assert j["status"] == "running"
    pid = j["run"]["pid"]
    assert pid_alive(pid)
    wait_exact(db, topic, 5_000)
    wait_until(lambda: server.api("GET", f"/api/v1/jobs/{job}/snapshots").json, 30, "a checkpoint")
    os.kill(pid, signal.SIGKILL)
    j = server.wait_status(job, "stopped", timeout=60)
    assert j["warning"] and j["warning"]["message"], j
    assert "suggestion" in j["warning"]
    assert "⚠" in server.cli("status", job).stdout
    # The job can be run again from its latest checkpoint.
    server.cli("run", job, "--snapshot", "latest", "--wait")
    j = server.job(job)
    assert j["status"] == "running" and j["run"]["restoredFrom"], j
    assert j["warning"] is None, "a successful run clears the warning"
    produce(topic, 5_000, 3_000)
    wait_exact(db, topic, 8_000)
    server.cli("stop", job, "--wait")
    assert check_exact(db, topic) == 8_000


def test_server_restart_reattaches_to_a_running_job(tmp_path, server, names, db, job):
    create_tables(db)
    topic = names["topic"]
    produce(topic, 0, 5_000)
    server.cli("create", job, "--file", spec_file(tmp_path, job_spec(job, topic, names["db"]), "j.yaml"))
    server.cli("publish", job, "--description", "survives server restarts")
    server.cli("run", job, "--wait")
    before = server.job(job)
    pid = before["run"]["pid"]

    assert server.stop() == 0, server.log_text()[-3000:]
    assert pid_alive(pid), "stopping the server leaves the run going"
    produce(topic, 5_000, 5_000)
    wait_exact(db, topic, 10_000)  # still consuming while no server watches
    server.start()

    j = server.job(job)
    assert j["status"] == "running", j
    assert j["run"]["id"] == before["run"]["id"] and j["run"]["pid"] == pid
    assert j["warning"] is None
    produce(topic, 10_000, 5_000)
    wait_exact(db, topic, 15_000)
    p = server.cli("stop", job, "--snapshot", "--wait")
    assert "succeeded" in p.stdout
    assert server.job(job)["status"] == "stopped"
    wait_until(lambda: not pid_alive(pid), 30, "the run's process to exit")
    stops = [s for s in server.cli_json("snapshots", job) if s["kind"] == "stop"]
    assert len(stops) == 1 and snapshot_total(stops[0]) == 15_000
    assert check_exact(db, topic) == 15_000


def test_run_that_dies_while_the_server_is_down_is_found_stopped(tmp_path, server, names, db, job):
    create_tables(db)
    topic = names["topic"]
    produce(topic, 0, 2_000)
    server.cli("create", job, "--file", spec_file(tmp_path, job_spec(job, topic, names["db"], restart_attempts=0), "j.yaml"))
    server.cli("publish", job, "--description", "dies alone")
    server.cli("run", job, "--wait")
    pid = server.job(job)["run"]["pid"]
    assert server.stop() == 0
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not pid_alive(pid), 10, "the run to die")
    server.start()
    j = server.job(job)
    assert j["status"] == "stopped" and j["run"] is None and j["warning"]["message"], j
    assert "⚠ stopped" in server.cli("status", job).stdout


# --- concurrency -------------------------------------------------------------------------------

def test_two_simultaneous_runs_exactly_one_wins(tmp_path, server, names, db, job):
    create_tables(db)
    topic = names["topic"]
    produce(topic, 0, 2_000)
    server.cli("create", job, "--file", spec_file(tmp_path, job_spec(job, topic, names["db"]), "j.yaml"))
    server.cli("publish", job, "--description", "race")

    for attempt in range(2):
        barrier = threading.Barrier(2)
        replies = [None, None]

        def request(i):
            barrier.wait()
            replies[i] = server.api("POST", f"/api/v1/jobs/{job}/run",
                                    {"version": None, "snapshot": None, "allowNonRestoredState": False})

        threads = [threading.Thread(target=request, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(r.status for r in replies) == [202, 409], replies
        winner = next(r for r in replies if r.status == 202).json
        loser = next(r for r in replies if r.status == 409)
        assert loser.error["message"]
        assert winner["type"] == "run" and winner["status"] in ("pending", "running")
        # While operating, a third run is refused too.
        r = server.api("POST", f"/api/v1/jobs/{job}/run", {"version": None, "snapshot": None, "allowNonRestoredState": False})
        assert r.status == 409, r
        op = server.wait_op(winner["id"])
        assert op["status"] == "succeeded", op
        j = server.job(job)
        assert j["status"] == "running"
        live = weir_run_processes(str(server.home))
        assert live == {j["run"]["pid"]}, f"exactly one live run: {live} vs {j['run']}"
        runs = [o for o in server.api("GET", f"/api/v1/jobs/{job}/operations").json
                if o["type"] == "run" and o["status"] == "succeeded"]
        assert len(runs) == attempt + 1, "only the winning request ran"
        server.cli("stop", job, "--wait")
        assert weir_run_processes(str(server.home)) == set()


# --- security ------------------------------------------------------------------------------------

def test_token_is_required_and_checked(tmp_path):
    token = "tok-" + os.urandom(12).hex()
    tf = tmp_path / "token"
    tf.write_text(token + "\n")
    # With --token-file every /api request needs the token, on loopback too (the server
    # treats 127.0.0.0/8 and ::1 as loopback, and refuses any other address without a token).
    s = WeirServer(tmp_path / "home", token_file=tf, token=token).start()
    try:
        assert s.api("GET", "/api/v1/jobs", token=None).status == 401
        r = s.api("GET", "/api/v1/jobs", token="wrong-" + token)
        assert r.status == 401 and r.error["message"], r
        assert token not in r.text
        r = s.api("GET", "/api/v1/jobs", token=token)
        assert r.status == 200 and r.json == []
        assert s.api("POST", "/api/v1/jobs", {"name": "x", "spec": "name: x"}, token=None).status == 401
        assert s.api("GET", "/healthz", token=None).status == 200
        p = s.cli("list", token=None, check=False)
        assert p.returncode == 1 and "error: " in p.stderr and "WEIR_TOKEN" in p.stderr, p.stderr
        p = s.cli("list", token="wrong", check=False)
        assert p.returncode == 1 and "error: " in p.stderr
        assert s.cli("list").returncode == 0
    finally:
        s.stop()
    assert token not in s.log_text()


def test_non_loopback_listener_without_a_token_is_refused(tmp_path):
    # 192.0.2.1 (TEST-NET-1) is not an address of this machine: even a server that
    # failed to refuse could not bind it, so nothing is ever exposed by this test.
    port = free_port()
    p = subprocess.run([WEIR, "server", "--listen", f"192.0.2.1:{port}", "--home", str(tmp_path / "home")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode != 0
    assert "token" in p.stderr and "--token-file" in p.stderr, p.stderr


def password_forms(password):
    """Every way a password can be written: raw, percent-encoded, JSON-escaped."""
    forms = {password, urllib.parse.quote(password, safe=""), json.dumps(password)[1:-1],
             json.dumps(password)[1:-1].replace("/", "\\/")}
    return {f for f in forms if len(f) >= 3}


@pytest.mark.parametrize("password,encoded", [
    ("Secr3tPw", False),
    ("pa/ss@x", False),                      # '/' and '@' raw in the URL: the password runs to the last '@'
    ('p@ss:w/rd "q\' s', False),            # quotes and a space, raw in a quoted YAML string
    ('p@ss:w/rd "q\' s%', True),            # the same percent-encoded, with a '%' of its own
], ids=["plain", "slash-at", "quotes-space", "percent-encoded"])
def test_passwords_never_leave_the_server(tmp_path, server, names, db, job, password, encoded):
    wrong = password + "Wr0ng"
    user = "weir_cp_" + names["topic"][2:]
    create_tables(db)
    hosts = ("%", "localhost")  # 'localhost' too: MariaDB's anonymous ''@'localhost' would otherwise win
    with db.cursor() as cur:
        for h in hosts:
            cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (user, h, password))
            cur.execute(f"GRANT ALL PRIVILEGES ON {names['db']}.* TO %s@%s", (user, h))
    try:
        topic = names["topic"]
        produce(topic, 0, 4_000)

        def url_with(pw):
            written = urllib.parse.quote(pw, safe="") if encoded else pw
            # In the spec's double-quoted YAML string.
            return f"mysql://{user}:{written}@127.0.0.1:{MYSQL_PORT}/{names['db']}".replace("\\", "\\\\").replace('"', '\\"')
        url = url_with(password)
        seen = []  # every response and output to search

        def api(method, path, body=None):
            r = server.api(method, path, body)
            seen.append(f"{method} {path} → {r.status}: {r.text}")
            return r

        def cli(*args, check=True):
            p = server.cli(*args, check=check)
            seen.append(f"weir job {' '.join(args)}: {p.stdout}\n{p.stderr}")
            return p

        r = api("POST", "/api/v1/jobs", {"name": job, "spec": job_spec(job, topic, names["db"], url=url)})
        assert r.status == 201, r
        api("GET", f"/api/v1/jobs/{job}/draft")
        cli("draft", job)
        cli("draft", job, "--json")
        cli("publish", job, "--description", "with a password")
        cli("run", job, "--wait")
        wait_counted(db, 4_000)  # the password works
        cli("savepoint", job, "--wait")
        cli("stop", job, "--snapshot", "--wait")
        assert [s["kind"] for s in server.api("GET", f"/api/v1/jobs/{job}/snapshots").json].count("savepoint") == 1

        # A wrong password: the run fails, and says so without showing it.
        cli("draft", job, "--file", spec_file(tmp_path, job_spec(job, topic, names["db"], url=url_with(wrong), restart_attempts=0), "wrong.yaml"))
        cli("publish", job, "--description", "wrong password")
        p = cli("run", job, "--wait", check=False)
        assert p.returncode == 1
        j = api("GET", f"/api/v1/jobs/{job}").json
        assert j["status"] == "stopped" and j["warning"] and user in j["warning"]["message"], j
        assert "denied" in j["warning"]["message"].lower()

        versions = api("GET", f"/api/v1/jobs/{job}/versions").json
        assert all("***" in v["spec"] for v in versions), "passwords are masked as ***"
        assert all(user in v["spec"] for v in versions), "only the password is masked"
        for path in ("/api/v1/jobs", f"/api/v1/jobs/{job}", f"/api/v1/jobs/{job}/draft", f"/api/v1/jobs/{job}/snapshots",
                     f"/api/v1/jobs/{job}/operations", f"/api/v1/jobs/{job}/logs?offset=0", "/metrics"):
            api("GET", path)
        for o in server.api("GET", f"/api/v1/jobs/{job}/operations").json:
            api("GET", f"/api/v1/operations/{o['id']}")
        for path in (f"/api/v1/jobs/{job}/runs", "/", "/openapi.json"):
            api("GET", path)
        for run in server.api("GET", f"/api/v1/jobs/{job}/runs").json:
            api("GET", f"/api/v1/jobs/{job}/logs?offset=0&run={run['id']}")
        for args in (("status", job), ("status", job, "--json"), ("list",), ("versions", job),
                     ("versions", job, "--json"), ("snapshots", job), ("ops", job), ("ops", job, "--json"),
                     ("logs", job), ("runs", job), ("runs", job, "--json")):
            cli(*args)
        logs = server.api("GET", f"/api/v1/jobs/{job}/logs?offset=0").text
        assert logs.strip()
        # Files the server writes as logs.
        for dirpath, _, files in os.walk(server.home):
            for f in files:
                if f.endswith((".log", ".txt", ".out", ".err", ".jsonl")) or "log" in f:
                    with open(os.path.join(dirpath, f), "rb") as fh:
                        seen.append(f"file {dirpath}/{f}: " + fh.read().decode(errors="replace"))
        seen.append("server log: " + server.log_text())
        for chunk in seen:
            for form in password_forms(password):
                assert form not in chunk, f"password ({form!r}) leaked in: {chunk[:3000]}"
    finally:
        with db.cursor() as cur:
            for h in hosts:
                cur.execute(f"DROP USER IF EXISTS '{user}'@'{h}'")


# --- documentation and metrics -------------------------------------------------------------------

def test_openapi_health_and_metrics(tmp_path, server, names, db, job):
    r = server.ok("GET", "/openapi.json")
    doc = r.json
    assert str(doc.get("openapi", "")).startswith("3"), list(doc)
    paths = doc["paths"]
    for path in ("/api/v1/jobs", "/api/v1/jobs/{name}", "/api/v1/jobs/{name}/draft", "/api/v1/jobs/{name}/versions",
                 "/api/v1/jobs/{name}/run", "/api/v1/jobs/{name}/stop", "/api/v1/jobs/{name}/savepoint",
                 "/api/v1/jobs/{name}/snapshots", "/api/v1/jobs/{name}/operations", "/api/v1/jobs/{name}/logs",
                 "/api/v1/operations/{id}"):
        assert path in paths, f"{path} is not documented: {sorted(paths)}"
    assert "post" in paths["/api/v1/jobs/{name}/run"] and "get" in paths["/api/v1/jobs"]
    assert server.api("GET", "/healthz").status == 200

    create_tables(db)
    topic = names["topic"]
    produce(topic, 0, 3_000)
    server.cli("create", job, "--file", spec_file(tmp_path, job_spec(job, topic, names["db"]), "j.yaml"))
    server.cli("publish", job, "--description", "metrics")
    server.cli("run", job, "--wait")

    def sample(text, name, node=None):
        labels = f'job="{job}"' + (f',node="{node}"' if node else "")
        m = re.search(rf"^{name}\{{{re.escape(labels)}\}} (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    def records_in():
        text = server.ok("GET", "/metrics").text
        return (sample(text, "weir_records_in_total") or 0) >= 3_000 and \
            (sample(text, "weir_node_records_in_total", "per-user") or 0) >= 3_000 and text

    text = wait_until(records_in, 60, "weir_records_in_total of the job to count the input", interval=0.5)
    assert re.search(r"^# TYPE weir_records_in_total counter", text, re.M), text[:2000]
    # Per node: the source's output feeds both branches; the filter keeps only big payments.
    assert sample(text, "weir_node_records_out_total", "events") == 3_000
    assert sample(text, "weir_node_records_in_total", "big") == 3_000
    assert sample(text, "weir_node_records_out_total", "big") < 3_000
    assert sample(text, "weir_node_backpressure_ms_total", "per-user") is not None

    # logs --follow prints what is there, then keeps printing what the run appends.
    out = tmp_path / "follow.txt"
    with open(out, "wb") as f:
        follower = subprocess.Popen([WEIR, "job", "logs", job, "--follow", "--server", server.url], stdout=f,
                                    stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: out.stat().st_size > 0, 30, "logs --follow to print the log")
        size = out.stat().st_size
        server.cli("stop", job, "--snapshot", "--wait")  # the run logs its stop
        wait_until(lambda: out.stat().st_size > size and "stopped with snapshot" in out.read_text(), 30,
                   "logs --follow to print the run's stop")
        assert follower.poll() is None, "--follow keeps following"
    finally:
        follower.kill()
        follower.wait(10)
    assert "stopped with snapshot" in out.read_text(), out.read_text()[-2000:]
