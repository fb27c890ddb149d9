"""What a hostile web page or spec can do to a `weir server` on loopback without a
token: nothing. Cross-site requests, DNS rebinding, client properties that load
code or run commands, out-of-range values, secrets in properties, file modes."""
import json
import os
import stat
import subprocess
import urllib.request

import pytest

from conftest import BOOTSTRAP, WEIR
from control_plane_support import create_tables, job_spec, produce, wait_exact
from test_control_plane import server, spec_file  # noqa: F401 (server is a fixture)


@pytest.fixture
def job(names):
    return "sec-" + names["topic"][2:]


def raw(server, method, path, body=None, headers=None):
    """A request with exactly these headers (no JSON content type added)."""
    req = urllib.request.Request(server.url + path, data=body, method=method)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def jobs(server):
    return [j["name"] for j in server.api("GET", "/api/v1/jobs").json]


def test_cross_site_requests_are_refused_and_change_nothing(server, names, job):
    spec = job_spec(job, names["topic"], names["db"])
    body = json.dumps({"name": job, "spec": spec}).encode()
    port = server.url.rsplit(":", 1)[1]

    # A page on another site posting a "simple" request (no preflight): text/plain, foreign Origin.
    status, headers, _ = raw(server, "POST", "/api/v1/jobs", body,
                             {"Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert status == 403 and "access-control-allow-origin" not in headers, status
    # The same without an Origin (a form, a beacon) is still not JSON.
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status, _, text = raw(server, "POST", "/api/v1/jobs", body, {"Content-Type": ctype})
        assert status == 415 and json.loads(text)["error"]["code"] == "unsupported_media_type", (ctype, status, text)
    status, _, _ = raw(server, "POST", "/api/v1/jobs", body)   # no Content-Type with a body
    assert status == 415
    # JSON from a foreign origin, and a page claiming to be a sibling port.
    for origin in ("http://evil.example", f"http://127.0.0.1:{int(port) + 1}", "null"):
        status, _, _ = raw(server, "POST", "/api/v1/jobs", body, {"Content-Type": "application/json", "Origin": origin})
        assert status == 403, origin
    # DNS rebinding: the page's own name resolves to 127.0.0.1, so the Host is the attacker's.
    for path in ("/api/v1/jobs", "/"):
        status, _, _ = raw(server, "GET", path, headers={"Host": f"evil.example:{port}"})
        assert status == 403, path
    status, _, _ = raw(server, "GET", "/api/v1/jobs", headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    # No permissive CORS anywhere: a preflight gets no allowance, nor does the OpenAPI document.
    status, headers, _ = raw(server, "OPTIONS", "/api/v1/jobs", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
    assert status >= 400 and not any(h.startswith("access-control-allow") for h in headers), (status, headers)
    status, headers, _ = raw(server, "GET", "/openapi.json")
    assert status == 200 and "access-control-allow-origin" not in headers
    assert jobs(server) == [], "nothing was created"

    # The server's own page (same origin) and localhost work; so does the CLI.
    status, _, _ = raw(server, "POST", "/api/v1/jobs", body, {"Content-Type": "application/json; charset=utf-8",
                                                             "Origin": server.url})
    assert status == 201
    status, _, _ = raw(server, "GET", "/api/v1/jobs", headers={"Host": f"localhost:{port}", "Sec-Fetch-Site": "same-origin"})
    assert status == 200
    status, _, _ = raw(server, "POST", f"/api/v1/jobs/{job}/savepoint")   # an empty body needs no type
    assert status == 409   # refused by the lifecycle (not running), not by the guard
    assert server.cli("list").returncode == 0


def test_a_server_with_allowed_host_names_accepts_those_names_only(tmp_path):
    from control_plane_support import WeirServer
    s = WeirServer(tmp_path / "home")
    s.extra_args = ["--allow-host", "weir.internal"]
    s.start()
    try:
        port = s.url.rsplit(":", 1)[1]
        assert raw(s, "GET", "/api/v1/jobs", headers={"Host": f"weir.internal:{port}"})[0] == 200
        assert raw(s, "GET", "/api/v1/jobs", headers={"Host": f"evil.example:{port}"})[0] == 403
        assert raw(s, "GET", "/api/v1/jobs", headers={"Host": "weir.internal:1"})[0] == 403, "the port is the listener's"
    finally:
        s.stop()


def plugin(tmp_path):
    """A shared library whose constructor writes a marker file: loading it is visible."""
    marker = tmp_path / "loaded.marker"
    src = tmp_path / "x.c"
    src.write_text('#include <stdio.h>\n__attribute__((constructor)) static void f(void) {'
                   f' FILE *f = fopen("{marker}", "w"); if (f) {{ fputs("loaded", f); fclose(f); }} }}\n')
    lib = tmp_path / "x.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib, marker


def with_properties(spec, props):
    """The spec with these librdkafka properties on its source (JSON strings are YAML scalars)."""
    pairs = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in props.items())
    out = spec.replace(f'kafka: {{ bootstrap: "{BOOTSTRAP}",', f'kafka: {{ properties: {{ {pairs} }}, bootstrap: "{BOOTSTRAP}",', 1)
    assert out != spec
    return out


@pytest.mark.parametrize("key,value", [
    ("plugin.library.paths", "LIB"),
    ("sasl.kerberos.kinit.cmd", "touch MARKER"),
    ("sasl.kerberos.principal", "x; touch MARKER"),
    ("sasl.kerberos.keytab", "$(touch MARKER)"),
    ("ssl.engine.location", "LIB"),
    ("ssl.providers", "LIB"),
], ids=lambda v: v if "." in v else None)
def test_client_properties_that_load_code_or_run_commands_are_refused(tmp_path, server, names, db, job, key, value):
    lib, marker = plugin(tmp_path)
    value = value.replace("LIB", str(lib)).replace("MARKER", str(marker))
    base = job_spec(job, names["topic"], names["db"])
    spec = with_properties(base, {key: value, "security.protocol": "sasl_plaintext", "sasl.mechanisms": "GSSAPI"}
                           if key.startswith("sasl.kerberos") else {key: value})
    assert key in spec
    # At create, at draft replacement and at publish, through the API and the CLI.
    r = server.api("POST", "/api/v1/jobs", {"name": job, "spec": spec})
    assert r.status == 422 and key in r.error["message"] and "not allowed" in r.error["message"], r
    assert jobs(server) == []
    server.ok("POST", "/api/v1/jobs", {"name": job, "spec": base})
    r = server.api("PUT", f"/api/v1/jobs/{job}/draft", {"spec": spec})
    assert r.status == 422 and key in r.error["message"], r
    # Locally: `weir run` refuses the spec before any client exists.
    path = spec_file(tmp_path, spec, "bad.yaml")
    p = subprocess.run([WEIR, "run", path, "--until-idle", "1", "--state-dir", str(tmp_path / "state")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and key in p.stderr and "not allowed" in p.stderr, p.stderr
    assert not marker.exists(), "the library was loaded or the command ran"
    assert server.api("GET", "/healthz", token=None).status == 200


@pytest.mark.parametrize("field,value,where", [
    ("checkpoint: { interval: 300ms, retain: 3, timeout: 30s }", "checkpoint: { interval: 1e300s }", "checkpoint.interval"),
    ("checkpoint: { interval: 300ms, retain: 3, timeout: 30s }", "checkpoint: { interval: 99999999999999999999ms }", "checkpoint.interval"),
    ("checkpoint: { interval: 300ms, retain: 3, timeout: 30s }", "checkpoint: { interval: -5s }", "checkpoint.interval"),
    ("checkpoint: { interval: 300ms, retain: 3, timeout: 30s }", "checkpoint: { interval: 1s, retain: 1e30 }", "checkpoint.retain"),
    ("checkpoint: { interval: 300ms, retain: 3, timeout: 30s }", "checkpoint: { interval: 1s, timeout: 1e300s }", "checkpoint.timeout"),
    ("parallelism: 2", "parallelism: 1e30", "parallelism"),
    ("parallelism: 2", "parallelism: -3", "parallelism"),
    ("parallelism: 2", "parallelism: 2\nmaxParallelism: 99999999999999999999", "maxParallelism"),
    ("mode: upsert, key: [user_id] }", "mode: upsert, key: [user_id], lockWait: 1e300s }", "lockWait"),
], ids=lambda v: v if isinstance(v, str) and "." not in v and ":" not in v else None)
def test_out_of_range_values_are_422_and_the_server_keeps_answering(server, names, job, field, value, where):
    spec = job_spec(job, names["topic"], names["db"])
    assert field in spec
    bad = spec.replace(field, value, 1)
    server.ok("POST", "/api/v1/jobs", {"name": job, "spec": bad})
    r = server.api("POST", f"/api/v1/jobs/{job}/versions", {"description": "out of range"})
    assert r.status == 422, r
    assert where in r.text, r.text
    assert server.api("GET", "/healthz", token=None).status == 200
    # Values in request bodies and queries, too.
    for method, path, body in (("POST", f"/api/v1/jobs/{job}/run", {"version": 1e300}),
                               ("POST", f"/api/v1/jobs/{job}/run", {"version": -1}),
                               ("POST", f"/api/v1/jobs/{job}/drill", {"version": 99999999999999999999}),
                               ("GET", f"/api/v1/jobs/{job}/logs?offset=999999999999999999999999", None),
                               ("GET", f"/api/v1/jobs/{job}/diff?from=99999999999999999999&to=draft", None)):
        r = server.api(method, path, body)
        assert 400 <= r.status < 500, (path, body, r)
    assert server.api("GET", "/healthz", token=None).status == 200


def test_secret_client_properties_are_masked(server, names, job):
    secrets = {"sasl.password": "Kafka p@ss/w:rd", "ssl.key.password": "k3y'pass\"x",
               "sasl.oauthbearer.client.secret": "0auth-S3cret"}
    spec = with_properties(job_spec(job, names["topic"], names["db"]), secrets)
    server.ok("POST", "/api/v1/jobs", {"name": job, "spec": spec})
    shown = server.api("GET", f"/api/v1/jobs/{job}/draft").text + server.cli("draft", job).stdout
    for key, secret in secrets.items():
        assert key in shown and secret not in shown and json.dumps(secret)[1:-1] not in shown, (key, shown)


def test_the_home_and_everything_in_it_is_private(tmp_path, server, names, db, job):
    create_tables(db)
    produce(names["topic"], 0, 500)
    server.cli("create", job, "--file", spec_file(tmp_path, job_spec(job, names["topic"], names["db"]), "j.yaml"))
    server.cli("publish", job, "--description", "v1")
    server.cli("run", job, "--wait")
    wait_exact(db, names["topic"], 500)
    server.cli("stop", job, "--snapshot", "--wait")
    home = server.home
    assert stat.S_IMODE(os.stat(home).st_mode) == 0o700
    seen = {"weir.db": False, "versions": False, "log.txt": False, "events.jsonl": False, "manifest.json": False}
    for dirpath, dirs, files in os.walk(home):
        for d in dirs:
            assert stat.S_IMODE(os.stat(os.path.join(dirpath, d)).st_mode) == 0o700, os.path.join(dirpath, d)
        for f in files:
            p = os.path.join(dirpath, f)
            assert stat.S_IMODE(os.stat(p).st_mode) == 0o600, (p, oct(os.stat(p).st_mode))
            for k in seen:
                if k in p:
                    seen[k] = True
    assert all(seen.values()), seen
