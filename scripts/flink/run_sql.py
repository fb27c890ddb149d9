#!/usr/bin/env python3
"""Runs Flink SQL scripts (as `weir export --target flink-sql` writes them) on Apache Flink 2.0
(PyFlink), with the Kafka and JDBC connectors and Weir's MySQL dialect.

    .deps/flink-venv/bin/python scripts/flink/run_sql.py [--timeout 300] [--jobs 1] [--report FILE]
        SCRIPT.sql [SCRIPT.sql ...]

The runner starts one Flink mini-cluster (a JobManager and a TaskManager in one JVM) and
submits each script's job to it over REST, as to a session cluster: the connector jars and
the JDBC driver travel with the job (`pipeline.jars`), and Flink's start-up is paid once for
all scripts. Each script gets a fresh streaming TableEnvironment. A script is split into
statements (comments, quoted strings and the `EXECUTE STATEMENT SET BEGIN … END;` block
respected): `SET 'key' = 'value'` goes into the environment's configuration, every other
statement but INSERTs runs with executeSql, the INSERTs (in the statement set, or alone) are
submitted as one job, and the runner waits for that job to finish: exported sources are
bounded (`scan.bounded.mode`), so a job still running after --timeout seconds is cancelled
and reported as a failure. --jobs runs that many scripts' jobs at once.

Exit status 0 when every script's job finished; 1 with Flink's error (the Java exception's
chain of causes, without stack frames) on stderr otherwise. One line per script on stdout:
`ok SCRIPT job JOBID in N.Ns`.

Setup (scripts/setup-flink.sh) puts the jars in .deps/flink/lib; the JDBC driver is Debian's
MariaDB Connector/J. The JVM is kept small (heap WEIR_FLINK_HEAP, default 768m; C1 only, which
starts faster) for 2-core CI machines; Flink's log goes to --log-dir.
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
    lines = [ln.strip().lstrip(": ") for ln in text.splitlines()
             if ln.strip() and not ln.startswith("\t") and not ln.lstrip().startswith(("at ", "... "))
             and not ln.startswith("An error occurred while calling ")]
    return "\n  ".join(lines) if lines else text


SLOTS = 8  # enough for any one script's parallelism here; jobs beyond that wait for slots


class Cluster:
    """One Flink mini-cluster (a JobManager and a TaskManager in this JVM) that every script's
    job is submitted to, as to a real session cluster: its start-up is paid once."""

    def __init__(self):
        from pyflink.java_gateway import get_gateway
        jvm = get_gateway().jvm
        conf = jvm.org.apache.flink.configuration.Configuration()
        for k, v in {"taskmanager.memory.managed.size": "32mb", "taskmanager.memory.network.min": "64mb",
                     "taskmanager.memory.network.max": "64mb", "rest.bind-address": "127.0.0.1",
                     "rest.bind-port": "0", "rest.address": "127.0.0.1"}.items():
            conf.setString(k, v)
        mc = jvm.org.apache.flink.runtime.minicluster
        self.mini = mc.MiniCluster(mc.MiniClusterConfiguration.Builder().setConfiguration(conf)
                                   .setNumTaskManagers(1).setNumSlotsPerTaskManager(SLOTS).build())
        self.mini.start()
        self.rest = self.mini.getRestAddress().get()  # a java.net.URI

    def new_env(self, jar_urls):
        from pyflink.table import EnvironmentSettings, TableEnvironment
        t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
        conf = t_env.get_config()
        conf.set("execution.target", "remote")
        conf.set("rest.address", self.rest.getHost())
        conf.set("rest.port", str(self.rest.getPort()))
        conf.set("pipeline.jars", ";".join(jar_urls))
        conf.set("parallelism.default", "1")  # a script's own SETs come after and win
        return t_env

    def close(self):
        self.mini.close()


def submit(cluster, path, jar_urls):
    """Runs the script's SETs and DDL and submits its INSERTs as one job: (TableResult, job id)."""
    statements = split_statements(pathlib.Path(path).read_text())
    t_env = cluster.new_env(jar_urls)
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
    return result, (str(client.get_job_id()) if client else "?")


def wait(result, job_id, deadline):
    """Waits for the job to finish until `deadline` (time.time()); cancels it when it does not."""
    try:
        result.wait(max(1, int((deadline - time.time()) * 1000)))
    except Exception as e:  # timeout (or failure): make sure the job is gone
        client = result.get_job_client()
        if client is not None:
            try:
                client.cancel()
            except Exception:
                pass
        if "TimeoutException" in java_error(e):
            raise ScriptError(f"job {job_id} did not finish within --timeout (sources not bounded?); cancelled")
        raise


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scripts", nargs="+", help="Flink SQL script files")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds each job may take (default 300)")
    ap.add_argument("--log-dir", help="where Flink's log goes (default: a temporary directory)")
    ap.add_argument("--jobs", type=int, default=1, help="how many scripts' jobs run at once (default 1)")
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
                                      f"-XX:MaxMetaspaceSize=1g -Duser.timezone=UTC")
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)
        os.environ["FLINK_LOG_DIR"] = args.log_dir
    elif "FLINK_LOG_DIR" not in os.environ:
        import tempfile
        os.environ["FLINK_LOG_DIR"] = tempfile.mkdtemp(prefix="weir-flink-log-")

    jar_urls = [j.resolve().as_uri() for j in JARS]
    report = {}

    def record(script, t0, job=None, error=None):
        report[script] = {"ok": error is None, "job": job, "seconds": round(time.time() - t0, 1), "error": error}
        if error is None:
            print(f"ok {script} job {job} in {time.time() - t0:.1f}s", flush=True)
        else:
            print(f"FAILED {script}:\n  {error}", file=sys.stderr, flush=True)

    def failure(e):
        return str(e) if isinstance(e, ScriptError) else java_error(e)  # Py4J's: Flink's own message

    # Up to --jobs jobs run at once, on one mini-cluster.
    cluster = Cluster()
    pending = list(args.scripts)
    while pending:
        wave, pending = pending[:args.jobs], pending[args.jobs:]
        running = []
        for script in wave:
            t0 = time.time()
            try:
                result, job = submit(cluster, script, jar_urls)
                running.append((script, t0, result, job))
            except Exception as e:
                record(script, t0, error=failure(e))
        for script, t0, result, job in running:
            try:
                wait(result, job, t0 + args.timeout)
                record(script, t0, job=job)
            except Exception as e:
                record(script, t0, job=job, error=failure(e))
    cluster.close()
    if args.report:
        pathlib.Path(args.report).write_text(json.dumps(report, indent=2))
    return 0 if all(r["ok"] for r in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
