"""Helpers for the control-plane end-to-end tests: a real `weir server`
started on a free loopback port with a private home directory, HTTP calls to
its REST API, the `weir job` CLI pointed at it, job specs, and waits."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import reference
from conftest import BOOTSTRAP, MYSQL_PORT, WEIR, produce_stream, weir

SCHEMA = "{ user_id: int, amount: int, ts: int }"
SEED = 31


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_until(check, timeout, what, interval=0.2):
    """Calls `check` until it returns something truthy; fails with `what` after `timeout` s."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    @property
    def json(self):
        return json.loads(self.body)

    @property
    def error(self):
        """The {"code","message","suggestion"} of an error reply."""
        try:
            return self.json["error"]
        except (ValueError, KeyError, TypeError):
            raise AssertionError(f"HTTP {self.status} without an error envelope: {self.text[:500]}")

    def __repr__(self):
        return f"<HTTP {self.status} {self.text[:300]}>"


class WeirServer:
    """A `weir server` process with its own home directory; its stdout/stderr go to `log_path`."""

    def __init__(self, home, host="127.0.0.1", port=None, token_file=None, token=None):
        self.home = pathlib.Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.token_file = token_file
        self.token = token
        self.log_path = self.home.parent / f"server-{self.port}.log"
        self.proc = None
        self.starts = 0
        self.extra_args = []

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def start(self, timeout=60):
        args = [WEIR, "server", "--listen", f"{self.host}:{self.port}", "--home", str(self.home)]
        if self.token_file:
            args += ["--token-file", str(self.token_file)]
        args += self.extra_args
        log = open(self.log_path, "ab")
        log.write(f"\n==== start {self.starts}: {' '.join(args)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        self.starts += 1
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"weir server exited {self.proc.returncode} at start:\n{self.log_text()[-4000:]}")
            try:
                if self.api("GET", "/healthz", timeout=2).status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"weir server did not answer /healthz within {timeout}s:\n{self.log_text()[-4000:]}")

    def stop(self, timeout=60):
        """SIGTERM, then wait; returns the exit code (SIGKILL after `timeout`)."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"weir server did not exit within {timeout}s of SIGTERM")

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # --- HTTP ---------------------------------------------------------------------------

    def api(self, method, path, body=None, token="default", headers=None, timeout=30):
        """One HTTP request; returns a Reply for every status (raises only on transport errors)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        tok = self.token if token == "default" else token
        if tok:
            req.add_header("Authorization", f"Bearer {tok}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return Reply(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
        except urllib.error.HTTPError as e:
            return Reply(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read())

    def ok(self, method, path, body=None, expect=(200, 201, 202, 204)):
        r = self.api(method, path, body)
        assert r.status in expect, f"{method} {path} → {r.status}: {r.text[:2000]}"
        return r

    def job(self, name):
        return self.ok("GET", f"/api/v1/jobs/{name}").json

    def wait_op(self, op_id, timeout=120):
        """Polls an operation until it has succeeded or failed; returns it."""
        def done():
            op = self.ok("GET", f"/api/v1/operations/{op_id}").json
            return op if op["status"] in ("succeeded", "failed") else None
        return wait_until(done, timeout, f"operation {op_id} to finish")

    def wait_status(self, name, status, timeout=60):
        def check():
            j = self.job(name)
            return j if j["status"] == status else None
        return wait_until(check, timeout, f"job {name} to be {status}")

    # --- CLI ----------------------------------------------------------------------------

    def cli(self, *args, check=True, timeout=240, token="default", env=None):
        """Runs `weir job ARGS --server URL`; WEIR_TOKEN is this server's token unless given."""
        e = dict(os.environ)
        e.pop("WEIR_TOKEN", None)
        e.pop("WEIR_SERVER", None)
        tok = self.token if token == "default" else token
        if tok:
            e["WEIR_TOKEN"] = tok
        e.update(env or {})
        p = subprocess.run([WEIR, "job", *args, "--server", self.url], capture_output=True, text=True,
                           timeout=timeout, env=e)
        if check and p.returncode != 0:
            raise AssertionError(f"weir job {' '.join(args)} exited {p.returncode}\nstdout:\n{p.stdout}\n"
                                 f"stderr:\n{p.stderr}\nserver log (tail):\n{self.log_text()[-3000:]}")
        return p

    def cli_json(self, *args, **kw):
        return json.loads(self.cli(*args, "--json", **kw).stdout)


# --- processes ------------------------------------------------------------------------------

def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not a live run.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def weir_run_processes(marker):
    """Pids of live `weir run` processes whose command line mentions `marker` (e.g. the server's home)."""
    found = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if len(argv) >= 2 and os.path.basename(argv[0]) == "weir" and "run" in argv[1:3] \
                and any(marker in a for a in argv) and pid_alive(int(d)):
            found.add(int(d))
    return found


# --- data and specs -------------------------------------------------------------------------

def produce(topic, start, count, partitions=4):
    produce_stream(topic, start, count, seed=SEED, partitions=partitions)


def create_tables(db):
    with db.cursor() as cur:
        cur.execute("CREATE TABLE totals (user_id BIGINT PRIMARY KEY, cnt BIGINT, total BIGINT)")
        cur.execute("CREATE TABLE w2 (user_id BIGINT, amount BIGINT, ts BIGINT)")


def job_spec(name, topic, db, *, url=None, valid_node=False, restart_attempts=None, parallelism=2,
             interval="300ms", event_time=False):
    """A job with two sinks fed by one source: per-user running totals (keyed state,
    upsert) and the big payments (stateless, append). `valid_node` adds a
    stateless filter that keeps every record (a new node in version 2)."""
    url = url or f"mysql://root@127.0.0.1:{MYSQL_PORT}/{db}"
    restart = f"restart: {{ attempts: {restart_attempts}, delay: 200ms }}\n" if restart_attempts is not None else ""
    upstream = "valid" if valid_node else "events"
    etime = ", eventTime: { field: ts, maxOutOfOrderness: 5s }" if event_time else ""
    valid = """  - id: valid
    inputs: [events]
    filter: "amount >= 1"
""" if valid_node else ""
    return f"""name: {name}
parallelism: {parallelism}
checkpoint: {{ interval: {interval}, retain: 3, timeout: 30s }}
{restart}nodes:
  - id: events
    kafka: {{ bootstrap: "{BOOTSTRAP}", topic: {topic}, schema: {SCHEMA}{etime} }}
{valid}  - id: per-user
    inputs: [{upstream}]
    keyBy: [user_id]
    aggregate: {{ cnt: "count()", total: "sum(amount)" }}
  - id: totals
    inputs: [per-user]
    mysql: {{ url: "{url}", table: totals, mode: upsert, key: [user_id] }}
  - id: big
    inputs: [{upstream}]
    filter: "amount > 900"
  - id: slim
    inputs: [big]
    select: [user_id, amount, ts]
  - id: out
    inputs: [slim]
    mysql: {{ url: "{url}", table: w2, mode: append }}
"""


def totals_reference(events):
    acc = {}
    for e in events:
        a = acc.setdefault(e["user_id"], [0, 0])
        a[0] += 1
        a[1] += e["amount"]
    return {k: tuple(v) for k, v in acc.items()}


def mysql_totals(db):
    with db.cursor() as cur:
        cur.execute("SELECT user_id, cnt, total FROM totals")
        return {int(u): (int(c), int(t)) for u, c, t in cur.fetchall()}


def counted(db):
    """Records accounted for in MySQL so far: the sum of the per-user counts."""
    with db.cursor() as cur:
        cur.execute("SELECT COALESCE(SUM(cnt), 0) FROM totals")
        return int(cur.fetchone()[0])


def wait_counted(db, n, timeout=90):
    """Waits until the totals table accounts for exactly `n` records (committed)."""
    wait_until(lambda: counted(db) >= n, timeout, f"MySQL to account for {n} records")
    assert counted(db) == n, f"MySQL accounts for {counted(db)} records, {n} were produced (duplicates)"


def wait_exact(db, topic, n, timeout=90):
    """Waits until MySQL equals the reference over the topic's `n` events (both tables committed)."""
    events, bad = reference.decode(reference.read_topic(BOOTSTRAP, topic))
    assert bad == 0 and len(events) == n, (bad, len(events))
    totals, big = totals_reference(events), reference.w2_reference(events)

    def same():
        return mysql_totals(db) == totals and reference.mysql_w2(db, "w2") == big

    deadline = time.time() + timeout
    while time.time() < deadline:
        if same():
            return
        time.sleep(0.3)
    raise AssertionError(f"MySQL does not match the reference over {n} events after {timeout}s: "
                         f"totals: {reference.diff(totals, mysql_totals(db))}; "
                         f"w2: {reference.diff(big, reference.mysql_w2(db, 'w2'))}")


def check_exact(db, topic):
    """MySQL equals the reference computed from everything in the topic; returns the event count."""
    events, bad = reference.decode(reference.read_topic(BOOTSTRAP, topic))
    assert bad == 0
    assert reference.diff(totals_reference(events), mysql_totals(db)) == "", "totals"
    assert reference.diff(reference.w2_reference(events), reference.mysql_w2(db, "w2")) == "", "w2"
    return len(events)


def snapshot_total(snap):
    """Records consumed up to a snapshot: the sum of its next offsets over all partitions."""
    return sum(sum(parts.values()) for parts in snap["offsets"].values())
