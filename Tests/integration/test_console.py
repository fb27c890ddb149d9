"""The web console served by `weir server` at `/`.

No browser here: the test takes the page's own script from the live server, loads
it in Node (its rendering and request-building functions are plain functions), and
checks them against the real API — the request bodies the dialogs build are sent to
the server and must be accepted, and what the server returns renders into the job
list, the warning triangle, the snapshots and the run dialog."""
import html
import os
import json
import re
import shutil
import subprocess

import pytest

from control_plane_support import create_tables, job_spec, produce, wait_exact, wait_until
from test_control_plane import server, spec_file  # noqa: F401 (server is a fixture)

NODE = shutil.which("node") or shutil.which("nodejs")


@pytest.fixture
def job(names):
    return "ui-" + names["topic"][2:]


class ConsoleScript:
    """The console page's script, loaded as a Node module; `call(fn, *args)` runs one of its functions."""

    def __init__(self, tmp_path, page):
        m = re.search(r"<script>(.*)</script>", page, re.S)
        assert m, "the page carries its script"
        self.path = tmp_path / "console.js"
        self.path.write_text(m.group(1))
        self.driver = tmp_path / "driver.js"
        self.driver.write_text(
            "const c = require(process.argv[2]);\n"
            "const [fn, args] = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
            "process.stdout.write(JSON.stringify(c[fn](...args)));\n")

    def call(self, fn, *args):
        p = subprocess.run([NODE, str(self.driver), str(self.path)], input=json.dumps([fn, list(args)]),
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)


def test_console_page_is_served_and_its_script_loads(tmp_path, server):
    assert NODE, "node is installed by scripts/setup.sh"
    r = server.api("GET", "/", token=None)
    assert r.status == 200 and r.headers["content-type"].startswith("text/html"), r
    page = r.text
    for element in ('id="jobs"', 'id="dialog"', 'id="new-job"', 'data-tab="snapshots"'):
        assert element in page
    ui = ConsoleScript(tmp_path, page)
    assert ui.call("esc", '<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;"
    assert ui.call("fmtBytes", 1536) == "1.5 KiB"
    assert "No jobs yet" in ui.call("jobsHTML", [], None)
    # Every API path the script calls is one the OpenAPI document describes.
    documented = set(server.ok("GET", "/openapi.json").json["paths"])
    script = ui.path.read_text()
    used = {"/jobs", "/jobs/{name}"} | {"/jobs/{name}/" + r for r in re.findall(r'(?:\$\{name\}|path \+ ")/(\w+)', script)}
    assert {"/jobs/{name}/run", "/jobs/{name}/stop", "/jobs/{name}/versions", "/jobs/{name}/snapshots"} <= used, used
    assert used and all("/api/v1" + p in documented for p in used), (sorted(used), sorted(documented))


def test_console_warning_run_stop_and_snapshot_dialogs_against_the_server(tmp_path, server, names, db, job):
    ui = ConsoleScript(tmp_path, server.api("GET", "/").text)
    create_tables(db)
    topic = names["topic"]  # created below, after the first run fails for its absence
    server.cli("create", job, "--file", spec_file(tmp_path, job_spec(job, topic, names["db"], restart_attempts=0), "j.yaml"))
    draft = server.ok("GET", f"/api/v1/jobs/{job}/draft").json["spec"]
    assert "<textarea" in ui.call("publishFormHTML", server.job(job), draft)

    # Publish v1 as the publish dialog sends it, then run it as the run dialog does: the topic is missing.
    body = ui.call("publishRequest", {"description": "v1 <first>", "run": False})
    answer = server.ok("POST", f"/api/v1/jobs/{job}/versions", body).json
    assert ui.call("publishedText", job, answer) == f"published {job} v1"
    body = ui.call("runRequest", {"version": "1", "snapshot": "", "allowNonRestoredState": False})
    server.wait_op(server.ok("POST", f"/api/v1/jobs/{job}/run", body).json["id"])
    j = server.wait_status(job, "stopped")
    assert j["warning"], j
    row = ui.call("jobRowHTML", j, False)
    title = re.search(r'class="warning" title="([^"]*)"', row)
    assert title, row
    hover = html.unescape(title.group(1))
    assert topic in hover and j["warning"]["message"] in hover and "Suggestion: " + j["warning"]["suggestion"] in hover
    assert 'data-act="stop" data-job="%s" disabled' % job in row and 'data-act="run" data-job="%s">' % job in row

    # The topic now exists: publish v2 and run it in one step, as the dialog's "run" box does.
    produce(topic, 0, 2_000)
    body = ui.call("publishRequest", {"description": "v2", "run": True, "stopCurrent": False, "snapshot": False,
                                      "restoreFromStop": False})
    published = server.ok("POST", f"/api/v1/jobs/{job}/versions", body).json
    text = ui.call("publishedText", job, published)
    assert text.startswith(f"published {job} v2; operation {published['operation']['id']} (publish_and_run) "), text
    server.wait_op(published["operation"]["id"])
    j = server.wait_status(job, "running")
    row = ui.call("jobRowHTML", j, True)
    assert 'class="status running"' in row and 'class="warning"' not in row
    assert 'data-act="stop" data-job="%s">' % job in row and 'data-act="run" data-job="%s" disabled' % job in row

    # Stop with "create snapshot on stop" ticked: a stop snapshot appears in the snapshots tab.
    form = ui.call("stopFormHTML", j)
    assert '<input type="checkbox" name="snapshot">' in form, "unticked by default, as `weir job stop`"
    body = ui.call("stopRequest", {"snapshot": True})
    assert body == {"snapshot": True}
    server.wait_op(server.ok("POST", f"/api/v1/jobs/{job}/stop", body).json["id"])
    j = server.wait_status(job, "stopped")
    snaps = server.ok("GET", f"/api/v1/jobs/{job}/snapshots").json
    stop = [s for s in snaps if s["kind"] == "stop"]
    assert stop, snaps
    table = ui.call("snapshotsHTML", snaps)
    assert stop[0]["id"] in table and topic in table

    # The run dialog offers the versions (latest selected) and the snapshots; run v2 from "latest".
    versions = server.ok("GET", f"/api/v1/jobs/{job}/versions").json
    form = ui.call("runFormHTML", j, versions, snaps)
    assert '<option value="2" selected>' in form and "v1 — v1 &lt;first&gt;" in form
    assert '<option value="latest">' in form and f'<option value="{stop[0]["id"]}" selected>' in form, "the stop snapshot is preselected"
    body = ui.call("runRequest", {"version": "2", "snapshot": "latest", "allowNonRestoredState": False})
    assert body == {"version": 2, "snapshot": "latest", "allowNonRestoredState": False}
    server.wait_op(server.ok("POST", f"/api/v1/jobs/{job}/run", body).json["id"])
    j = server.wait_status(job, "running")
    assert j["run"]["restoredFrom"] == stop[0]["id"], j
    # While running, a run request is refused; the console shows the server's message and suggestion.
    refused = server.api("POST", f"/api/v1/jobs/{job}/run", ui.call("runRequest", {"version": "2"}))
    assert refused.status == 409
    text = ui.call("errorText", refused.json["error"])
    assert refused.json["error"]["message"] in text and "Suggestion: " in text


def test_console_page_logic_drives_a_real_server(tmp_path, server, names, db, job):
    """The page's DOM layer (startConsole) in Node with a stand-in DOM: it lists the
    job, shows its versions, snapshots and log, and its stop dialog stops the run
    with a snapshot; a refused request shows the server's message and suggestion."""
    ui = ConsoleScript(tmp_path, server.api("GET", "/").text)
    create_tables(db)
    produce(names["topic"], 0, 2_000)
    server.cli("create", job, "--file", spec_file(tmp_path, job_spec(job, names["topic"], names["db"]), "j.yaml"))
    server.cli("publish", job, "--description", "from the console test")
    server.cli("run", job, "--wait")
    wait_until(lambda: any(s["kind"] == "checkpoint" for s in server.ok("GET", f"/api/v1/jobs/{job}/snapshots").json),
               60, "a checkpoint")
    driver = os.path.join(os.path.dirname(__file__), "console_dom_driver.js")
    p = subprocess.run([NODE, driver, str(ui.path), server.url, job], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    shown = json.loads(p.stdout)
    assert f'data-job="{job}"' in shown["jobs"] and 'class="status running"' in shown["jobs"], shown["jobs"]
    assert shown["serverState"].startswith("connected")
    assert "from the console test" in shown["versions"] and "v1" in shown["versions"]
    assert "checkpoint" in shown["snapshots"] and names["topic"] in shown["snapshots"]
    assert "started" in shown["log"], shown["log"][-2000:]
    assert shown["stopDialogError"] == "" and not shown["dialogOpenAfterStop"], shown
    assert shown["stopBanner"].startswith("stop: operation "), shown["stopBanner"]
    assert "Suggestion: " in shown["refusal"], shown["refusal"]
    j = server.wait_status(job, "stopped")
    assert j["warning"] is None, j
    kinds = [s["kind"] for s in server.ok("GET", f"/api/v1/jobs/{job}/snapshots").json]
    assert "stop" in kinds, kinds


def test_console_restore_drill_views_render_the_servers_reports(tmp_path, server, names, db, job):
    """The publish dialog's state mapping (draft against the latest version), the run dialog's
    restore preview, the snapshots tab's verify report and the transactions tab, rendered
    from what the live server answers."""
    ui = ConsoleScript(tmp_path, server.api("GET", "/").text)
    create_tables(db)
    topic = names["topic"]
    produce(topic, 0, 2_000)
    spec = job_spec(job, topic, names["db"], restart_attempts=0)
    server.cli("create", job, "--file", spec_file(tmp_path, spec, "j.yaml"))
    server.ok("POST", f"/api/v1/jobs/{job}/versions", ui.call("publishRequest", {"description": "v1", "run": True,
                                                                                   "stopCurrent": False}))
    server.wait_status(job, "running")
    # Stop only once every record is committed: a stop before a partition's first fetch answer
    # records no offset for it (the restore then reads it from earliest, as a new partition).
    wait_exact(db, topic, 2_000)
    server.wait_op(server.ok("POST", f"/api/v1/jobs/{job}/stop", {"snapshot": True}).json["id"])
    j = server.wait_status(job, "stopped")
    assert 'id="publish-mapping"' in ui.call("publishFormHTML", j, spec)
    assert 'id="restore-preview"' in ui.call("runFormHTML", j, [], [])

    # The draft changes an aggregate: the publish dialog shows it refused, before anything is published.
    changed = spec.replace('aggregate: { cnt: "count()", total: "sum(amount)" }',
                           'aggregate: { cnt: "count()", total: "sum(amount)", top: "max(amount)" }')
    server.ok("PUT", f"/api/v1/jobs/{job}/draft", {"spec": changed})
    diff = server.ok("GET", f"/api/v1/jobs/{job}/diff?from=latest&to=draft").json
    assert diff["to"] == "draft" and diff["from"] == 1
    table = ui.call("mappingHTML", diff["mapping"])
    assert re.search(r'per-user</td><td class="refused">incompatible', table) and "top:max" in table, table
    assert server.job(job)["latestVersion"] == 1, "nothing was published"

    # The run dialog's preview of the stop snapshot into v1: every partition resumes where it stopped.
    preview = server.ok("GET", f"/api/v1/jobs/{job}/snapshots/latest/diff?version=1").json
    text = ui.call("previewHTML", preview)
    for r in preview["offsets"]["rows"]:
        assert f">{r['split']}</td><td>{r['snapshotOffset']}</td>" in text, text
    assert "0 records to replay" in text and "The restore would go on." in text
    assert sum(r["snapshotOffset"] for r in preview["offsets"]["rows"]) == 2_000

    # The snapshots tab's buttons, and the verify report they open.
    snaps = server.ok("GET", f"/api/v1/jobs/{job}/snapshots").json
    assert f'data-drill="verify" data-snapshot="{snaps[0]["id"]}"' in ui.call("snapshotsHTML", snaps)
    report = server.ok("GET", f"/api/v1/jobs/{job}/snapshots/{snaps[0]['id']}/verify?version=1").json
    assert report["passed"] is True
    text = ui.call("verifyHTML", report)
    assert "Verify passed" in text and "per-user" in text and "No sink transaction" in text, text

    # The transactions tab.
    ledger = server.ok("GET", f"/api/v1/jobs/{job}/transactions").json
    assert ledger == {"entries": []}
    assert "No sink transaction of this job is in doubt" in ui.call("ledgerHTML", ledger)
    fake = {"entries": [{"id": "weir|j|r1|out|0|7", "node": "out", "run": "r1", "subtask": 0, "epoch": 7,
                         "decision": "roll back", "runKnown": False}]}
    assert "(no snapshot of this run)" in ui.call("ledgerHTML", fake) and "roll back" in ui.call("ledgerHTML", fake)
