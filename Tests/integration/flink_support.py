"""Helpers for test_flink_export.py: inputs with out-of-order events and bad records
whose end offsets come from the producer's delivery reports, the workloads' job
specs (one sink table for Weir, another for Flink), `weir export`, the Flink
runner (scripts/flink/run_sql.py on PyFlink, installed by scripts/setup-flink.sh)
and a row-by-row comparison of two MySQL tables."""
import json
import pathlib
import random
import subprocess
import time
from collections import Counter

from conftest import BOOTSTRAP, ROOT, weir
from fault_support import BASE_TS, SCHEMA, bad_value, create_topic, mysql_url, produce_values

FLINK_PYTHON = ROOT / ".deps" / "flink-venv" / "bin" / "python"
RUNNER = ROOT / "scripts" / "flink" / "run_sql.py"

# Bad records mixed into every input: the kinds test_faults.py checks Weir's rejections
# with, a boolean for an int and an integer past 64 bits. Weir and Flink both drop them.
BAD_KINDS = ["not_json", "array", "no_user", "null_user", "str_user", "huge_user", "ts_1e19", "ts_year11476",
             "bool_user", "u64_amount"]
# Values Weir rejects (type_mismatch) that Flink's json format takes: a number in a string
# and a fraction for an int (truncated). Kept out of the compared inputs; the difference
# itself is pinned by test_flink_export.py::test_json_values_flink_takes_and_weir_rejects.
LENIENT_KINDS = ["numeric_str_user", "fraction_user", "fraction_ts"]


def bad_record(kind, i, ts):
    amount = 950  # > 900: would pass W2's filter if it were accepted
    if kind == "numeric_str_user":
        return b'{"user_id": "12", "amount": %d, "ts": %d, "n": %d}' % (amount, ts, i)
    if kind == "fraction_user":
        return b'{"user_id": 5.5, "amount": %d, "ts": %d, "n": %d}' % (amount, ts, i)
    if kind == "bool_user":
        return b'{"user_id": true, "amount": %d, "ts": %d, "n": %d}' % (amount, ts, i)
    if kind == "fraction_ts":
        return b'{"user_id": 6, "amount": %d, "ts": %d.5, "n": %d}' % (amount, ts, i)
    if kind == "u64_amount":
        return b'{"user_id": 7, "amount": 18446744073709551615, "ts": %d, "n": %d}' % (ts, i)
    return bad_value(kind, i, ts)


# ---------------------------------------------------------------- input

def events(n, seed, users=17, ms_per_event=20, jitter_ms=800, burst=400, pause_ms=6_000, first=0):
    """`n` events {user_id, amount, ts}. Event time advances `ms_per_event` per event and
    jumps `pause_ms` after every `burst` events (quiet gaps that close session windows);
    each event is up to `jitter_ms` older than its slot: out of order, but within a 1 s
    maxOutOfOrderness of every earlier event, so no engine may call one late."""
    rng = random.Random(seed)
    out = []
    for i in range(first, first + n):
        slot = BASE_TS + i * ms_per_event + (i // burst) * pause_ms
        out.append({"user_id": rng.randrange(users), "amount": rng.randint(1, 1000),
                    "ts": slot - rng.randint(0, jitter_ms)})
    return out


def with_bad_records(good, seed, per_kind=1, kinds=BAD_KINDS):
    """The JSON values of `good` with `per_kind` bad records of every kind in `kinds` at
    seeded places (each with an event time inside the stream's range)."""
    rng = random.Random(seed + 99)
    values = [json.dumps(e).encode() for e in good]
    k = 0
    for kind in kinds:
        for _ in range(per_kind):
            pos = rng.randrange(1, len(values))
            values.insert(pos, bad_record(kind, 1000 + k, good[min(pos, len(good) - 1)]["ts"]))
            k += 1
    return values


class Topic:
    """A topic produced with delivery reports: its end offsets are known exactly
    (Tansu's ListOffsets(latest) is not reliable; see ENVIRONMENT.md)."""

    def __init__(self, name, partitions):
        self.name, self.partitions = name, partitions
        self.ends = {p: 0 for p in range(partitions)}
        self.count = 0
        create_topic(name, partitions)

    def produce(self, values):
        delivered = produce_values(self.name, values, self.partitions, first=self.count)
        for p, off, _ in delivered:
            self.ends[p] = max(self.ends[p], off + 1)
        self.count += len(values)
        return delivered

    def end_offsets(self):
        return {f"{self.name}/{p}": off for p, off in sorted(self.ends.items())}


def end_offsets_arg(*topics):
    """`--end-offsets` for every partition of `topics` (partitions not listed would not be read)."""
    return ",".join(f"{k}={v}" for t in topics for k, v in t.end_offsets().items())


# ---------------------------------------------------------------- specs

def source(node_id, topic, event_time=True):
    et = ", eventTime: { field: ts, maxOutOfOrderness: 1s }" if event_time else ""
    return f"""  - id: {node_id}
    kafka: {{ bootstrap: "{BOOTSTRAP}", topic: {topic}, schema: {SCHEMA}{et} }}
"""


def sink(node_id, inputs, db, table, mode, key=None):
    k = f", key: [{', '.join(key)}]" if key else ""
    return f"""  - id: {node_id}
    inputs: [{inputs}]
    mysql: {{ url: "{mysql_url(db)}", table: {table}, mode: {mode}{k} }}
"""


def header(name, parallelism=2, checkpoint=None):
    text = f"name: {name}\nparallelism: {parallelism}\nmaxParallelism: 128\n"
    if checkpoint:
        text += f"checkpoint: {{ interval: {checkpoint}, retain: 3, timeout: 30s }}\n"
    return text + "nodes:\n"


def windowed_spec(name, topic, db, table, window):
    """W1's shape (benchmarks/w1.yaml): per-user count and spend per event-time window, upserted."""
    return header(name) + source("events", topic) + f"""  - id: per-user
    inputs: [events]
    keyBy: [user_id]
    window: {{ {window} }}
    aggregate: {{ cnt: "count()", total: "sum(amount)" }}
""" + sink("out", "per-user", db, table, "upsert", ["user_id", "window_start"])


def w2_spec(name, topic, db, table, checkpoint=None):
    """W2's shape (benchmarks/w2.yaml): the big spends, three fields, appended."""
    return header(name, checkpoint=checkpoint) + source("events", topic) + """  - id: big
    inputs: [events]
    filter: "amount > 900"
  - id: slim
    inputs: [big]
    select: [user_id, amount, ts]
""" + sink("out", "slim", db, table, "append")


def continuous_spec(name, topic, db, table):
    """A keyed aggregate without a window: one row per user, updated as events arrive."""
    return header(name) + source("events", topic, event_time=False) + """  - id: totals
    inputs: [events]
    keyBy: [user_id]
    aggregate: { cnt: "count()", total: "sum(amount)", lo: "min(amount)", hi: "max(amount)", mean: "avg(amount)", amounts: "count_distinct(amount)" }
""" + sink("out", "totals", db, table, "upsert", ["user_id"])


def union_spec(name, topic_a, topic_b, db, table):
    """Two sources read as one (their union), an expression, and a keyed tumbling window:
    the window fires on the smaller of the two sources' watermarks."""
    return header(name) + source("clicks", topic_a) + source("views", topic_b) + """  - id: both
    inputs: [clicks, views]
    union: true
  - id: shaped
    inputs: [both]
    select: { user_id: user_id, amount: "abs(amount - 500) * 2", ts: ts }
  - id: per-user
    inputs: [shaped]
    keyBy: [user_id]
    window: { tumbling: 5s }
    aggregate: { cnt: "count()", total: "sum(amount)", hi: "max(amount)" }
""" + sink("out", "per-user", db, table, "upsert", ["user_id", "window_start"])


TABLES = {
    "window": ("user_id BIGINT, window_start BIGINT, window_end BIGINT, cnt BIGINT, total BIGINT,"
               " PRIMARY KEY (user_id, window_start)"),
    "w2": "user_id BIGINT, amount BIGINT, ts BIGINT",
    "continuous": ("user_id BIGINT PRIMARY KEY, cnt BIGINT, total BIGINT, lo BIGINT, hi BIGINT, mean DOUBLE,"
                   " amounts BIGINT"),
    "union": ("user_id BIGINT, window_start BIGINT, window_end BIGINT, cnt BIGINT, total BIGINT, hi BIGINT,"
              " PRIMARY KEY (user_id, window_start)"),
}


def create_table(db, table, shape):
    with db.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} ({TABLES[shape]})")


# ---------------------------------------------------------------- running

def run_weir(tmp_path, spec_text, name):
    """`weir run --until-idle`: the whole input, then exit."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(spec_text)
    stats = tmp_path / f"{name}.stats.json"
    weir("run", str(path), "--until-idle", "1", "--plain", "--stats", str(stats), timeout=180)
    return json.loads(stats.read_text())


def export(tmp_path, spec_text, name, end_offsets, *extra):
    """`weir export SPEC --target flink-sql --end-offsets …`: the script's path."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(spec_text)
    out = tmp_path / f"{name}.sql"
    weir("export", str(path), "--target", "flink-sql", "--end-offsets", end_offsets, *extra, "-o", str(out))
    return out


def run_flink(scripts, workdir, timeout=240, jobs=1):
    """Runs every script on Flink in one JVM (one start-up for all); {script path: report}
    with ok, job, seconds and Flink's error."""
    report = pathlib.Path(workdir) / "flink-report.json"
    log_dir = pathlib.Path(workdir) / "flink-log"
    t0 = time.time()
    p = subprocess.run([str(FLINK_PYTHON), str(RUNNER), "--timeout", str(timeout), "--log-dir", str(log_dir),
                        "--jobs", str(jobs),
                        "--report", str(report), *[str(s) for s in scripts]],
                       capture_output=True, text=True, timeout=timeout * len(scripts) + 120)
    if not report.exists():
        raise AssertionError(f"the Flink runner exited {p.returncode} without a report\n"
                             f"stdout:\n{p.stdout}\nstderr:\n{p.stderr[-5000:]}")
    result = json.loads(report.read_text())
    result["_total_seconds"] = round(time.time() - t0, 1)
    return result


# ---------------------------------------------------------------- comparing

def rows(db, table, columns):
    with db.cursor() as cur:
        cur.execute(f"SELECT {', '.join(columns)} FROM {table}")
        return Counter(tuple(r) for r in cur.fetchall())


def row_diff(weir_rows, flink_rows, limit=10):
    """'' when the two multisets of rows are equal, else what differs, row by row."""
    if weir_rows == flink_rows:
        return ""
    only_weir = sorted((weir_rows - flink_rows).elements())
    only_flink = sorted((flink_rows - weir_rows).elements())
    parts = [f"Weir wrote {sum(weir_rows.values())} rows, Flink {sum(flink_rows.values())}"]
    if only_weir:
        parts.append(f"{len(only_weir)} only in Weir's table, e.g. {only_weir[:limit]}")
    if only_flink:
        parts.append(f"{len(only_flink)} only in Flink's table, e.g. {only_flink[:limit]}")
    return "\n".join(parts)
