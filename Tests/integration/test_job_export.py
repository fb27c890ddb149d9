"""`weir job export` and GET /api/v1/jobs/{name}/export against a live `weir server`
with Tansu and MariaDB: a published version becomes a Flink SQL script (from a
snapshot's exact offsets when asked), a node without a faithful Flink
equivalent is refused by name, and no password leaves the server. (Running
exported scripts on a real Flink is test_flink_export.py.)"""
from conftest import MYSQL_PORT
from control_plane_support import create_tables, job_spec, produce, wait_exact
from test_control_plane import server, spec_file  # noqa: F401 (server is a fixture)


def test_export_of_a_version_from_a_snapshot_refusals_and_secrets(tmp_path, server, names, db):
    job = "ex-" + names["topic"][2:]
    topic = names["topic"]
    create_tables(db)
    with db.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'exporter'@'%' IDENTIFIED BY 'Pa55-w0rd!x'")
        cur.execute(f"GRANT ALL ON `{names['db']}`.* TO 'exporter'@'%'")
    spec = job_spec(job, topic, names["db"], event_time=True)
    server.cli("create", job, "--file", spec_file(tmp_path, spec, "v1.yaml"))
    server.cli("publish", job, "--description", "v1")

    # The latest version, without a snapshot: the spec's start offsets, every node, one statement set.
    plain = server.ok("GET", f"/api/v1/jobs/{job}/export").json
    assert plain["target"] == "flink-sql" and plain["version"] == 1 and plain["snapshot"] is None
    script = plain["script"]
    assert "EXECUTE STATEMENT SET" in script and "'connector' = 'kafka'" in script and "'connector' = 'jdbc'" in script
    assert "'scan.startup.mode' = 'earliest-offset'" in script and "PRIMARY KEY" in script
    assert "job " + job + " version 1" in script

    # From a stop snapshot: its exact offsets per partition.
    produce(topic, 0, 2_000)
    server.cli("run", job)
    server.wait_status(job, "running")
    wait_exact(db, topic, 2_000)
    server.cli("stop", job, "--snapshot")
    server.wait_status(job, "stopped")
    stop = next(s for s in server.ok("GET", f"/api/v1/jobs/{job}/snapshots").json if s["kind"] == "stop")
    answer = server.ok("GET", f"/api/v1/jobs/{job}/export?snapshot={stop['id']}").json
    assert answer["snapshot"] == stop["id"]
    offsets = stop["offsets"]["events"]
    assert sum(offsets.values()) == 2_000
    expected = ";".join(f"partition:{p.rsplit('/', 1)[1]},offset:{o}"
                        for p, o in sorted(offsets.items(), key=lambda kv: int(kv[0].rsplit('/', 1)[1])))
    assert "'scan.startup.mode' = 'specific-offsets'" in answer["script"]
    assert f"'scan.startup.specific-offsets' = '{expected}'" in answer["script"], answer["script"]
    assert server.ok("GET", f"/api/v1/jobs/{job}/export?snapshot=latest").json["snapshot"] == stop["id"]

    # The CLI: the same script, to a file.
    out = tmp_path / "job.sql"
    server.cli("export", job, "--snapshot", stop["id"], "-o", str(out))
    assert out.read_text().strip() == answer["script"].strip()

    # A password in the sink's URL is never sent: *** in its place.
    secret = job_spec(job, topic, names["db"], url=f"mysql://exporter:Pa55-w0rd!x@127.0.0.1:{MYSQL_PORT}/{names['db']}")
    server.cli("draft", job, "--file", spec_file(tmp_path, secret, "v2.yaml"))
    server.cli("publish", job, "--description", "with a password")
    r = server.api("GET", f"/api/v1/jobs/{job}/export?version=2")
    assert r.status == 200 and "Pa55-w0rd!x" not in r.text and "***" in r.json["script"], r.text[:2000]

    # Refusals name the node and say why; unknown versions and snapshots are 404.
    refused = spec.replace("schema: { user_id: int, amount: int, ts: int }", "schema: { user_id: int, amount: int, ts: int, note: any }")
    assert refused != spec
    server.cli("draft", job, "--file", spec_file(tmp_path, refused, "v3.yaml"))
    server.cli("publish", job, "--description", "an any field")
    r = server.api("GET", f"/api/v1/jobs/{job}/export?version=3")
    assert r.status == 422 and r.json["error"]["code"] == "export_refused", r.text
    assert r.json["error"]["message"].startswith("events:") and "any" in r.json["error"]["message"], r.text
    assert server.api("GET", f"/api/v1/jobs/{job}/export?version=9").status == 404
    assert server.api("GET", f"/api/v1/jobs/{job}/export?snapshot=chk-999999").status == 404
    p = server.cli("export", job, "--version", "3", check=False)
    assert p.returncode == 1 and "events:" in p.stderr, p.stderr
