"""The REST contract: Sources/WeirAPI/openapi.yaml is a valid OpenAPI document, the
server serves exactly it, and a live server fuzzed by schemathesis with it never
answers 5xx and never answers outside it (status, content type, headers, body)."""
import json
import os
import re
import subprocess
import sys

import yaml
from openapi_spec_validator import validate

from conftest import ROOT
from control_plane_support import job_spec
from test_control_plane import server  # noqa: F401 (fixture)

DOC = os.path.join(ROOT, "Sources", "WeirAPI", "openapi.yaml")


def load_doc():
    with open(DOC) as f:
        return yaml.safe_load(f)


def test_the_document_is_valid_openapi():
    validate(load_doc())


def test_the_server_serves_the_document_it_was_generated_from(server):
    r = server.api("GET", "/openapi.json", token=None)
    assert r.status == 200 and r.json == load_doc()
    r = server.api("GET", "/openapi.yaml", token=None)
    assert r.status == 200 and yaml.safe_load(r.text) == load_doc()


def test_required_nullable_fields_are_explicit_nulls(server, names):
    """The generated encoders drop nil optionals; the document promises `null`."""
    job = "contract-" + names["topic"][2:]
    created = server.ok("POST", "/api/v1/jobs", {"name": job, "spec": job_spec(job, names["topic"], names["db"])}).json
    for key in ("version", "latestVersion", "run", "warning"):
        assert key in created and created[key] is None, (key, created)
    err = server.api("GET", "/api/v1/jobs/nope").json
    assert "suggestion" in err["error"]


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_contract(server, names):
    # A job with a published version, so the fuzzer also reaches the paths behind an existing job.
    job = "contract"
    server.ok("POST", "/api/v1/jobs", {"name": job, "spec": job_spec(job, names["topic"], names["db"])})
    server.ok("POST", f"/api/v1/jobs/{job}/versions", {"description": "for the contract test"})
    env = dict(os.environ, SCHEMATHESIS_HOOKS="schemathesis_hooks",
               PYTHONPATH=os.path.dirname(__file__) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    checks = ",".join(["not_a_server_error", "status_code_conformance", "content_type_conformance",
                       "response_headers_conformance", "response_schema_conformance"])
    p = subprocess.run([os.path.join(os.path.dirname(sys.executable), "schemathesis"), "run", DOC,
                        "--url", server.url, "--checks", checks, "--max-examples", "25", "--seed", "20261203", "--generation-database", "none",
                        "--no-color"],
                       capture_output=True, text=True, timeout=900, env=env)
    out = p.stdout + p.stderr
    assert p.returncode == 0 and "No issues found" in out, out[-6000:]
    operations = len(re.findall(r"^\s+operationId: ", open(DOC).read(), re.M))
    assert operations >= 29 and (f"Tested: {operations}" in out or f"{operations}/{operations}" in out), out[-3000:]
    assert server.api("GET", "/healthz", token=None).status == 200
