#!/usr/bin/env python3
"""Runs Flink SQL scripts (as `weir export --target flink-sql` writes them) on Apache Flink 2.0
(PyFlink's local mini-cluster), with the Kafka and JDBC connectors and Weir's MySQL dialect.

    .deps/flink-venv/bin/python scripts/flink/run_sql.py [--timeout 300] SCRIPT.sql [SCRIPT.sql ...]

Each script gets a fresh streaming TableEnvironment; several scripts share one JVM (Flink's
start-up is paid once). A script is split into statements (comments, quoted strings and the
`EXECUTE STATEMENT SET BEGIN … END;` block respected): `SET 'key' = 'value'` goes into the
environment's configuration, every other statement but INSERTs runs with executeSql, the
INSERTs (in the statement set, or alone) are submitted as one job, and the runner waits for that
job to finish: the exported sources are bounded (`scan.bounded.mode`), so a job that does not
finish within --timeout seconds is cancelled and reported as a failure.

Exit status 0 when every script's job finished; 1 with Flink's error (the Java exception's
causes) on stderr otherwise. One line per script on stdout: `ok SCRIPT job JOBID in N.Ns`.

Setup (scripts/setup-flink.sh) puts the jars in .deps/flink/lib; the JDBC driver is Debian's
MariaDB Connector/J. The JVM is kept small (WEIR_FLINK_HEAP, default 768m) for 2-core CI
machines.
"""
import argparse
import json
import os
import pathlib
import re
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
LIB = ROOT / ".deps" / "flink" / "lib"
JARS = [LIB / "flink-connector-kafka.jar", LIB / "kafka-clients.jar", LIB / "flink-connector-jdbc-core.jar",
        LIB / "weir-mysql-dialect.jar", pathlib.Path("/usr/share/java/mariadb-java-client.jar")]


# ----------------------------------------------------------------- splitting

class ScriptError(Exception):
    pass


def split_statements(text):
    """The script's statements without their final `;`, comments removed, in order. An
    `EXECUTE STATEMENT SET BEGIN … END` (or `BEGIN STATEMENT SET; … END`) block is one statement."""
    statements, buf = [], []
    i, n = 0, len(text)
    in_block = False  # inside a statement set: `;` separates its INSERTs, `END;` closes it

    def flush():
        s = "".join(buf).strip()
        buf.clear()
        return s

    while i < n:
        c = text[i]
        if text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j  # keep the newline
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise ScriptError("unterminated /* comment")
            buf.append(" ")
            i = j + 2
            continue
        if c in "'`\"":
            j = i + 1
            while True:
                j = text.find(c, j)
                if j < 0:
                    raise ScriptError(f"unterminated {c}-quoted text starting at offset {i}")
                if text.startswith(c * 2, j):  # '' inside '…' (and `` inside `…`)
                    j += 2
                    continue
                break
            buf.append(text[i:j + 1])
            i = j + 1
            continue
        if c == ";":
            so_far = " ".join("".join(buf).split()).upper()
            if not in_block:
                if so_far.startswith("EXECUTE STATEMENT SET BEGIN") or so_far == "BEGIN STATEMENT SET":
                    in_block = True
                    buf.append(";")
                    i += 1
                    continue
                s = flush()
                if s:
                    statements.append(s)
            else:
                if re.search(r"(^|;)\s*END$", so_far):
                    in_block = False
                    s = flush()
                    statements.append(s)
                else:
                    buf.append(";")
            i += 1
            continue
        buf.append(c)
        i += 1
    rest = flush()
    if in_block:
        raise ScriptError("statement set not closed with END;")
    if rest:
        statements.append(rest)
    return statements


def statement_set_inserts(stmt):
    """The INSERTs of a statement-set block, or None when `stmt` is not one."""
    m = re.match(r"\s*(EXECUTE\s+STATEMENT\s+SET\s+BEGIN|BEGIN\s+STATEMENT\s+SET\s*;)(.*)\bEND\s*$", stmt,
                 re.IGNORECASE | re.DOTALL)
    if not m:
        return None
    # The body was split on top-level `;` already by split_statements; split again, quotes respected.
    inserts = [s for s in split_statements(m.group(2)) if s]
    for s in inserts:
        if not re.match(r"INSERT\s", s, re.IGNORECASE):
            raise ScriptError(f"a statement set holds only INSERTs, found: {s[:80]}")
    return inserts


SET_RE = re.compile(r"SET\s+'((?:[^']|'')*)'\s*=\s*'((?:[^']|'')*)'\s*$", re.IGNORECASE | re.DOTALL)


# ----------------------------------------------------------------- running

def java_error(e):
    """A Java exception (PyFlink hands over its stack trace as text) as its chain of causes,
    without the stack frames; anything else as str(e)."""
    text = getattr(e, "stack_trace", None) or str(e)
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.startswith("\t") and not ln.lstrip().startswith(("at ", "... "))]
    return "\n  ".join(lines) if lines else text


def new_env(jar_urls):
    from pyflink.table import EnvironmentSettings, TableEnvironment
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    conf = t_env.get_config()
    conf.set("pipeline.jars", ";".join(jar_urls))
    # Small and quiet for a 2-core CI machine; a script's own SETs come after and win.
    conf.set("parallelism.default", "1")
    conf.set("taskmanager.memory.managed.size", "32mb")
    conf.set("taskmanager.memory.network.min", "32mb")
    conf.set("taskmanager.memory.network.max", "32mb")
    conf.set("rest.bind-port", "0")
    return t_env


def run_script(path, jar_urls, timeout):
    text = pathlib.Path(path).read_text()
    statements = split_statements(text)
    t_env = new_env(jar_urls)
    inserts = []
    for stmt in statements:
        m = SET_RE.match(stmt)
        if m:
            t_env.get_config().set(m.group(1).replace("''", "'"), m.group(2).replace("''", "'"))
            continue
        if re.match(r"(SET|RESET)\b", stmt, re.IGNORECASE):
            raise ScriptError(f"unsupported SET form: {stmt[:120]}")
        block = statement_set_inserts(stmt)
        if block is not None:
            inserts.extend(block)
        elif re.match(r"INSERT\s", stmt, re.IGNORECASE):
            inserts.append(stmt)
        else:
            t_env.execute_sql(stmt)
    if not inserts:
        raise ScriptError("no INSERT to run")
    sset = t_env.create_statement_set()
    for s in inserts:
        sset.add_insert_sql(s)
    result = sset.execute()
    client = result.get_job_client()
    job_id = str(client.get_job_id()) if client else "?"
    try:
        result.wait(int(timeout * 1000))
    except Exception as e:  # timeout (or failure): make sure the job is gone
        if client is not None:
            try:
                client.cancel()
            except Exception:
                pass
        if "TimeoutException" in java_error(e):
            raise ScriptError(f"job {job_id} did not finish within {timeout:g} s (sources not bounded?); cancelled")
        raise
    return job_id


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scripts", nargs="+", help="Flink SQL script files")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds each job may take (default 300)")
    ap.add_argument("--log-dir", help="where Flink's log goes (default: a temporary directory)")
    ap.add_argument("--report", help="also write {script: {ok, job, seconds, error}} as JSON to this file")
    args = ap.parse_args(argv)

    missing = [str(j) for j in JARS if not j.exists()]
    if missing:
        print("missing jars (run scripts/setup.sh): " + ", ".join(missing), file=sys.stderr)
        return 2
    # Checked before Flink starts, so a malformed script costs nothing.
    for s in args.scripts:
        try:
            split_statements(pathlib.Path(s).read_text())
        except (OSError, ScriptError) as e:
            print(f"FAILED {s}: {e}", file=sys.stderr)
            return 1

    heap = os.environ.get("WEIR_FLINK_HEAP", "768m")
    os.environ.setdefault("JVM_ARGS", f"-Xms128m -Xmx{heap} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "
                                      f"-XX:MaxMetaspaceSize=256m -Duser.timezone=UTC")
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)
        os.environ["FLINK_LOG_DIR"] = args.log_dir
    elif "FLINK_LOG_DIR" not in os.environ:
        import tempfile
        os.environ["FLINK_LOG_DIR"] = tempfile.mkdtemp(prefix="weir-flink-log-")

    jar_urls = [j.resolve().as_uri() for j in JARS]
    report = {}
    for s in args.scripts:
        t0 = time.time()
        try:
            job = run_script(s, jar_urls, args.timeout)
            report[s] = {"ok": True, "job": job, "seconds": round(time.time() - t0, 1), "error": None}
            print(f"ok {s} job {job} in {time.time() - t0:.1f}s", flush=True)
        except Exception as e:  # ScriptError, or Py4J's: Flink's own message
            error = str(e) if isinstance(e, ScriptError) else java_error(e)
            report[s] = {"ok": False, "job": None, "seconds": round(time.time() - t0, 1), "error": error}
            print(f"FAILED {s}:\n  {error}", file=sys.stderr, flush=True)
    if args.report:
        pathlib.Path(args.report).write_text(json.dumps(report, indent=2))
    return 0 if all(r["ok"] for r in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
