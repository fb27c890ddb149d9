"""Helpers of the benchmark harness (benchmarks/run.sh); run with the project venv.

    bench.py topic-state   --bootstrap B --topic T
    bench.py delete-topic  --bootstrap B --topic T
    bench.py sample        --parent PID --out FILE [--also NAME=PIDFILE ...]
    bench.py verify        --bootstrap B --topic T --mysql-port P --database D --check NAME=w1|w2:TABLE ... --out FILE
    bench.py clean         --dir RUN_DIR --tag TAG [--tag TAG ...]
    bench.py state         --weir BIN --spec S --dir RUN_DIR --bootstrap B --topic T --mysql-port P --database D
                           --table X --run-dir R [--events N] [--users U] [--extra E] [--repeat K] [--no-quiet] [--keep-state]
    bench.py machine       --mysql-port P --out FILE
    bench.py report        --dir RUN_DIR --out FILE.md
    bench.py update-results [FILE.md]

The correctness checks use reference.py (confluent-kafka with its own bundled
librdkafka, and PyMySQL), never Weir's code.
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

TARGETS = {"w1_ratio": 0.50, "w2_ratio": 0.60, "w1_rss_mb": 300,
           "ckpt_ratio": 0.90,        # W1 with checkpoints ÷ W1 without
           "snapshot_ms": 2000,       # savepoint / stop snapshot of ~1 M keys
           "restore_ms": 2000,        # process spawn → first record after --from-snapshot
           # issue 14, a state of ≥ 5 M keys (10 M): snapshot and restore ≤ 3 s, peak RSS ≤ 150 bytes per key
           "big_keys": 5_000_000, "big_snapshot_ms": 3000, "big_restore_ms": 3000, "big_bytes_per_key": 150}


def _state_targets(st):
    """(snapshot ms, restore ms) targets for the state benchmark's key count."""
    if st.get("keys", 0) >= TARGETS["big_keys"]:
        return TARGETS["big_snapshot_ms"], TARGETS["big_restore_ms"]
    return TARGETS["snapshot_ms"], TARGETS["restore_ms"]


# --- Kafka --------------------------------------------------------------------

def topic_state(bootstrap, topic, timeout=20.0):
    """{"exists", "partitions", "messages"}: messages is the sum of the high watermarks.

    Tansu answers ListOffsets with stale values, so the watermarks are taken
    from Fetch responses instead: assign every partition from offset 0, wait
    until each has returned a message or EOF, then read librdkafka's cached
    watermarks.
    """
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "weir-bench-state",
                  "enable.auto.commit": False, "enable.partition.eof": True,
                  "max.partition.fetch.bytes": 1024,
                  "queued.min.messages": 1, "fetch.queue.backoff.ms": 20})
    try:
        md = c.list_topics(timeout=10)
        t = md.topics.get(topic)
        if t is None or t.error is not None or not t.partitions:
            return {"exists": False, "partitions": 0, "messages": 0}
        parts = sorted(t.partitions)
        c.assign([TopicPartition(topic, p, 0) for p in parts])
        seen = set()
        deadline = time.time() + timeout
        while len(seen) < len(parts) and time.time() < deadline:
            for m in c.consume(1000, 0.2):
                seen.add(m.partition())
        if len(seen) < len(parts):
            raise RuntimeError(f"no fetch response for {topic} partitions {sorted(set(parts) - seen)}")
        total = 0
        for p in parts:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), cached=True)
            if hi < 0:
                raise RuntimeError(f"unknown high watermark for {topic}/{p}")
            total += hi - max(lo, 0)
        return {"exists": True, "partitions": len(parts), "messages": total}
    finally:
        c.close()


def delete_topic(bootstrap, topic, timeout=20.0):
    from confluent_kafka.admin import AdminClient
    a = AdminClient({"bootstrap.servers": bootstrap})
    if topic not in a.list_topics(timeout=10).topics:
        return False
    for f in a.delete_topics([topic], operation_timeout=10).values():
        f.result()
    deadline = time.time() + timeout
    while topic in a.list_topics(timeout=10).topics:
        if time.time() > deadline:
            raise RuntimeError(f"topic {topic} still listed {timeout} s after deletion")
        time.sleep(0.2)
    return True


# --- per-thread CPU sampling (a scripted `top -H`) ------------------------------

CLK = os.sysconf("SC_CLK_TCK")


def _cpu(path):
    """(utime+stime seconds, comm) of /proc/.../stat, or None when gone."""
    try:
        with open(path + "/stat") as f:
            s = f.read()
        with open(path + "/comm") as f:
            comm = f.read().strip()
    except OSError:
        return None
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK, comm


def sample(parent, out, also, interval=0.25):
    """Follows the child of `parent` (the weir process under /usr/bin/time):
    the CPU seconds of every thread (kept from its last sample, so threads that
    end early still count), and the CPU used meanwhile by the processes in
    `also` (broker, database)."""
    deadline = time.time() + 10
    pid = None
    while pid is None and time.time() < deadline:
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as f:
                kids = f.read().split()
            if kids:
                pid = int(kids[0])
        except OSError:
            return
        if pid is None:
            time.sleep(0.005)
    if pid is None:
        return
    others = {}
    for name, pidfile in also:
        try:
            with open(pidfile) as f:
                opid = int(f.read().strip())
            c = _cpu(f"/proc/{opid}")
            if c:
                others[name] = [opid, c[0], c[0]]
        except (OSError, ValueError):
            pass
    threads = {}
    order = []
    t0 = time.time()
    samples = 0
    while os.path.exists(f"/proc/{pid}/stat"):
        try:
            tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
        except OSError:
            break
        for tid in tids:
            c = _cpu(f"/proc/{pid}/task/{tid}")
            if c is None:
                continue
            if tid not in threads:
                order.append(tid)
            threads[tid] = {"tid": tid, "name": c[1], "cpuSeconds": c[0]}
        for name, v in others.items():
            c = _cpu(f"/proc/{v[0]}")
            if c:
                v[2] = c[0]
        samples += 1
        time.sleep(interval)
    res = {"pid": pid, "wallSeconds": time.time() - t0, "samples": samples,
           "threads": [threads[t] for t in order],
           "weirCpuSeconds": sum(t["cpuSeconds"] for t in threads.values()),
           "others": {k: v[2] - v[1] for k, v in others.items()},
           "samplerCpuSeconds": _cpu("/proc/self")[0]}
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


# --- correctness -------------------------------------------------------------

def verify(bootstrap, topic, port, database, checks, out):
    """checks: [(name, kind, table)], kind w1 or w2; every table against one read of the topic."""
    import reference as ref
    t0 = time.time()
    values = ref.read_topic(bootstrap, topic, timeout=600)
    events, bad = ref.decode(values)
    res = {"topicMessages": len(values), "malformed": bad, "readSeconds": round(time.time() - t0, 1)}
    ok = True
    expected = {}
    conn = ref.connect(port, database)
    try:
        for name, kind, table in checks:
            refn, mysqln = {"w1": (ref.w1_reference, ref.mysql_w1), "w2": (ref.w2_reference, ref.mysql_w2)}[kind]
            if kind not in expected:
                expected[kind] = refn(events)
            exp = expected[kind]
            actual = mysqln(conn, table)
            d = ref.diff(exp, actual)
            rows = sum(exp.values()) if kind == "w2" else len(exp)
            got = sum(actual.values()) if kind == "w2" else len(actual)
            res[name] = {"pass": d == "", "diff": d, "expectedRows": rows, "actualRows": got, "table": table, "kind": kind}
            ok &= d == ""
            print(f"[bench] {name.upper()} {'PASS' if d == '' else 'FAIL'}: "
                  f"{got} rows in {table}, reference {rows}" + (f" -- {d}" if d else ""))
    finally:
        conn.close()
    res["pass"] = ok
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    return ok


# --- machine -----------------------------------------------------------------

def _run(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine(port, out):
    info = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            k = k.strip()
            if k and k not in info:
                info[k] = v.strip()
            if not line.strip():
                break
    cpu = info.get("model name", "unknown")
    extra = [f"family {info['cpu family']} model {info['model']}"] if "cpu family" in info else []
    if "cpu MHz" in info:
        extra.append(f"{float(info['cpu MHz']):.0f} MHz")
    if "hypervisor" in info.get("flags", "").split():
        extra.append("virtual machine")
    if extra:
        cpu += f" ({', '.join(extra)})"
    mem_kb = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    try:
        import reference as ref
        conn = ref.connect(port)
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            mariadb = cur.fetchone()[0]
        conn.close()
    except Exception:  # noqa: BLE001 - informational only
        mariadb = "unknown"
    tansu = _run([os.path.join(HERE, "..", ".deps", "bin", "tansu"), "--version"]).replace("tansu ", "")
    swift = _run(["swift", "--version"]).splitlines()
    res = {"nproc": os.cpu_count(), "cpu": cpu, "memoryGiB": round(mem_kb / 1024 / 1024, 1),
           "kernel": platform.release(), "os": _os_name(),
           "librdkafka": _run(["pkg-config", "--modversion", "rdkafka"]),
           "tansu": tansu, "mariadb": mariadb, "swift": swift[0] if swift else "unknown"}
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


def _os_name():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "unknown"


# --- report ------------------------------------------------------------------

def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _time_v(timefile):
    """Peak RSS (MB) and CPU seconds from `/usr/bin/time -v` output."""
    res = {}
    try:
        with open(timefile) as f:
            for line in f:
                k, _, v = line.strip().rpartition(": ")
                if k == "Maximum resident set size (kbytes)":
                    res["rssMB"] = int(v) / 1024
                elif k in ("User time (seconds)", "System time (seconds)"):
                    res["cpu"] = res.get("cpu", 0.0) + float(v)
    except OSError:
        pass
    return res


def _rate(x):
    if x is None:
        return "-"
    return f"{x / 1e6:.2f} M" if x >= 1e6 else f"{x:,.0f}"


# What each node's subtask threads do, by node id (benchmarks/w1.yaml, w2.yaml).
ROLES = {"w1": {"events": "source", "per-user": "window", "out": "sink"},
         "w2": {"events": "source+filter+select", "out": "sink"}}


def _threads(th, w, par):
    """CPU seconds per role. librdkafka's threads are named rdk:*; Weir names each
    subtask thread NODE#SUBTASK (in /proc/<pid>/task/*/comm, cut to 15 bytes)."""
    if not th:
        return None
    by = {}
    for t in th["threads"]:
        node, sep, sub = t["name"].rpartition("#")
        if sep and sub.isdigit():
            by.setdefault(f"{ROLES[w].get(node, 'node')} `{node}`", []).append(t["cpuSeconds"])
    rdk = sum(t["cpuSeconds"] for t in th["threads"] if t["name"].startswith("rdk:"))
    rest = th["weirCpuSeconds"] - rdk - sum(sum(v) for v in by.values())
    return {"roles": by, "rdk": rdk, "rest": rest, "total": th["weirCpuSeconds"], "others": th.get("others", {})}


def _other_load(load, own_cpu, sampler=0.0):
    """CPU seconds used during a run by processes other than the measured one, Tansu, MariaDB (and the sampler)."""
    if not load or own_cpu is None:
        return None
    return load["busyCpuSeconds"] - own_cpu - load["tansuCpuSeconds"] - load["mariadbCpuSeconds"] - sampler


NOISE = 0.15   # other processes may use at most this share of one core during a run


def _too_busy(other, wall):
    return other is not None and bool(wall) and other > max(NOISE * wall, 0.05)


def _noisy(run):
    """Whether other processes used more than NOISE of a core during the ceiling or the Weir run."""
    for other, load in ((run.get("ceilingOther"), run.get("ceilingLoad")), (run["other"], run["load"])):
        if _too_busy(other, (load or {}).get("wallSeconds")):
            return True
    return False


def _weir_run(run_dir, tag):
    """One `weir run` of run.sh (stats, time -v, load, threads, events), or None if it left no files."""
    f = lambda suffix: os.path.join(run_dir, f"{tag}{suffix}")
    stats = _load(f("-stats.json"))
    if stats is None and not os.path.exists(f("-time.txt")):
        return None
    tv = _time_v(f("-time.txt"))
    th = _load(f("-threads.json"))
    run = {"tag": tag, "stats": stats, "rssMB": tv.get("rssMB"), "cpu": tv.get("cpu"), "threads": th,
           "rate": stats["recordsIn"] / stats["processingSeconds"] if stats else None,
           "load": _load(f("-load.json")), "events": _events(f("-events.jsonl")), "log": f(".log")}
    run["other"] = _other_load(run["load"], run["cpu"], th.get("samplerCpuSeconds", 0.0) if th else 0.0)
    run["noisy"] = _noisy(run)
    return run


def clean(run_dir, tags):
    """Whether none of these runs (and their ceiling runs, if any) was disturbed by other processes."""
    ok = True
    for tag in tags:
        run = _weir_run(run_dir, tag) or {"other": None, "load": None}
        ceil = _load(os.path.join(run_dir, f"ceiling-{tag}.json"))
        if ceil is not None:
            ct = _load(os.path.join(run_dir, f"ceiling-{tag}-time.json"))
            run["ceilingLoad"] = _load(os.path.join(run_dir, f"ceiling-{tag}-load.json"))
            run["ceilingOther"] = _other_load(run["ceilingLoad"], ct["userSeconds"] + ct["systemSeconds"] if ct else None)
        ok &= not _noisy(run)
    if not ok:
        print(f"[bench] {' + '.join(tags)}: other processes were busy meanwhile; this pair does not count")
    return ok


def _runs(run_dir, w):
    """The ceiling + workload pairs of W1 or W2 (tags w1-1, w1-2, …)."""
    runs = []
    r = 1
    while True:
        tag = f"{w}-{r}"
        run = _weir_run(run_dir, tag)
        ceil = _load(os.path.join(run_dir, f"ceiling-{tag}.json"))
        if run is None and ceil is None:
            break
        run = run or {"tag": tag, "stats": None, "rssMB": None, "cpu": None, "threads": None, "rate": None,
                      "load": None, "events": [], "other": None}
        ct = _load(os.path.join(run_dir, f"ceiling-{tag}-time.json"))
        run.update({"r": r, "ceiling": ceil, "ceilingRate": ceil["eventsPerSecond"] if ceil else None,
                    "ceilingLoad": _load(os.path.join(run_dir, f"ceiling-{tag}-load.json")),
                    "ceilingCpu": ct["userSeconds"] + ct["systemSeconds"] if ct else None})
        run["ceilingOther"] = _other_load(run["ceilingLoad"], run["ceilingCpu"])
        run["noisy"] = _noisy(run)
        runs.append(run)
        r += 1
    return runs


def _ckpt_pairs(run_dir, iv):
    """The (without, with checkpoints) W1 pairs for one checkpoint interval (tags ckpt-IV-off-R / ckpt-IV-on-R)."""
    pairs = []
    r = 1
    while True:
        off, on = _weir_run(run_dir, f"ckpt-{iv}-off-{r}"), _weir_run(run_dir, f"ckpt-{iv}-on-{r}")
        if off is None and on is None:
            break
        pairs.append({"r": r, "off": off, "on": on, "noisy": any(x is None or x["noisy"] for x in (off, on))})
        r += 1
    return pairs


def _drain_id(logfile):
    """Id of the final snapshot of an --until-idle run (logged as `snapshot chk-N (drain) complete`)."""
    try:
        with open(logfile) as f:
            for line in f:
                if "(drain) complete" in line:
                    return line.split("snapshot ", 1)[1].split()[0]
    except (OSError, IndexError):
        pass
    return None


def _periodic(run):
    """The periodic checkpoints of a run: its snapshot events except the final (drain) one, each with
    "busy": whether it was triggered before the input ran out (i.e. during processingSeconds, not during
    the --until-idle wait). The input ran out at about drain trigger − idle wait."""
    if not run:
        return []
    drain = _drain_id(run["log"])
    snaps = [e for e in run.get("events", []) if e.get("event") == "snapshot"]
    end = None
    for e in snaps:
        if e.get("id") == drain and run.get("stats"):
            end = _ts(e["time"]) - e["durationMs"] / 1000 - run["stats"]["idleWaitSeconds"]
    out = []
    for e in snaps:
        if e.get("id") != drain:
            e = dict(e)
            e["busy"] = end is None or _ts(e["time"]) - e["durationMs"] / 1000 < end
            out.append(e)
    return out


# --- events files and machine load (for the snapshot benchmark) ------------------

def _events(path):
    """The JSON lines of a `weir run --events` file ([] if missing)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def _ts(s):
    """Epoch seconds of an events-file time ("2026-11-25T11:31:26.953Z")."""
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ" if "." in s else "%Y-%m-%dT%H:%M:%SZ"
    return datetime.datetime.strptime(s, fmt).replace(tzinfo=datetime.timezone.utc).timestamp()


class EventTail:
    """Follows a growing `weir run --events` file."""

    def __init__(self, path):
        self.path, self.f, self.buf, self.all = path, None, "", []

    def poll(self):
        if self.f is None:
            try:
                self.f = open(self.path)
            except OSError:
                return []
        chunk = self.f.read()
        if not chunk:
            return []
        self.buf += chunk
        lines = self.buf.split("\n")
        self.buf = lines.pop()
        new = [json.loads(x) for x in lines if x.strip()]
        self.all += new
        return new

    def close(self):
        if self.f:
            self.f.close()


def busy_ticks():
    """Busy CPU ticks of the whole machine (user nice system irq softirq steal), as run.sh counts them."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


def _proc_cpu(pid):
    c = _cpu(f"/proc/{pid}") if pid else None
    return c[0] if c else 0.0


def wait_quiet(log, limit=600):
    """run.sh's wait_quiet: until the machine has been idle (< 10 % of one core busy) for 2 s, at most `limit` s."""
    waited = 0
    while waited < limit:
        b0 = busy_ticks()
        time.sleep(2)
        if (busy_ticks() - b0) * 100 < 2 * CLK * 10:
            if waited:
                log(f"machine idle after waiting {waited} s")
            return waited
        if waited == 0:
            log("waiting for the machine to be idle (other processes are using the CPU)")
        waited += 2
    log("the machine did not become idle within 10 minutes: measuring anyway")
    return waited


class LoadMeter:
    """CPU used between start and stop by the machine, by `pid`, by the servers and by this script;
    what is left was used by other processes (compilers, tests) and disturbs the measurement."""

    def __init__(self, pid, servers):
        self.pid, self.servers = pid, servers
        self.w0 = _proc_cpu(pid)
        self.s0 = [_proc_cpu(p) for p in servers]
        self.me0 = time.process_time()
        self.t0, self.b0 = time.time(), busy_ticks()

    def stop(self):
        wall, busy = time.time() - self.t0, (busy_ticks() - self.b0) / CLK
        weir = _proc_cpu(self.pid) - self.w0
        srv = sum(_proc_cpu(p) - s for p, s in zip(self.servers, self.s0))
        other = busy - weir - srv - (time.process_time() - self.me0)
        return {"wallSeconds": round(wall, 3), "busyCpuSeconds": round(busy, 2), "weirCpuSeconds": round(weir, 2),
                "serversCpuSeconds": round(srv, 2), "otherCpuSeconds": round(other, 2), "noisy": _too_busy(other, wall)}


def _vmhwm_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _snapshot_logs(logfile):
    """{snapshot id: encode+persist ms} from weir's log lines
    `snapshot ID (KIND) complete in X ms (state encode+persist Y ms), B bytes`."""
    res = {}
    try:
        with open(logfile) as f:
            for line in f:
                if "complete in" in line and "encode+persist" in line:
                    sid = line.split("snapshot ", 1)[1].split()[0]
                    res[sid] = float(line.split("encode+persist ", 1)[1].split()[0])
    except (OSError, IndexError, ValueError):
        pass
    return res


# --- the large-state snapshot / restore benchmark ------------------------------------

def _splitmix(state):
    state = (state + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return state, z ^ (z >> 31)


def _generator(seed, count, users):
    """(user_id, amount) of `weir produce --seed S --users U` events 0..count-1 (ProduceCommand.EventGenerator)."""
    st = seed
    for _ in range(count):
        st, u = _splitmix(st)
        st, m = _splitmix(st)
        yield u % users, m % 1000 + 1


def generator_distinct(seed, count, users):
    """Distinct user_ids among the first `count` generated events."""
    seen = bytearray(users)
    for u, _ in _generator(seed, count, users):
        seen[u] = 1
    return len(seen) - seen.count(0)


def generator_totals(seed, count, users, keys):
    """{user_id: (count, sum of amount)} over the first `count` generated events, for `keys` only."""
    out = {}
    for u, m in _generator(seed, count, users):
        if u in keys:
            c, t = out.get(u, (0, 0))
            out[u] = (c + 1, t + m)
    return out


def _under_load(loaded, events):
    """Records/s from the metrics events (every 2 s) before, during and after the savepoint taken under load."""
    snap = loaded.get("event") or {}
    t_sig = loaded["signal"]
    t_end = _ts(snap["time"]) if snap else None
    ms = [(_ts(e["time"]), e["recordsIn"]) for e in events if e["event"] == "metrics"]
    periods = [(t0, t1, (r1 - r0) / (t1 - t0)) for (t0, r0), (t1, r1) in zip(ms, ms[1:]) if t1 > t0]
    before = [r for t0, t1, r in periods if t1 <= t_sig and r > 0]
    during = [r for t0, t1, r in periods if t_end and t0 < t_end and t1 > t_sig]
    after = [r for t0, t1, r in periods if t_end and t0 >= t_end and r > 0]
    rb = statistics.median(before[-3:]) if before else 0.0
    ra = after[0] if after else 0.0
    return {"id": snap.get("id"), "durationMs": round(snap["durationMs"]) if snap else None, "bytes": snap.get("bytes", 0),
            "recordsInAtSignal": loaded["recordsIn"], "rateBefore": round(rb), "ratesDuring": [round(r) for r in during],
            "rateAfter": round(ra), "stalled": any(r == 0 for r in during) if during else None}

def state_bench(a):
    """Snapshots of ~1 M live keys and restores from them (benchmarks/state.yaml); writes RUN_DIR/state.json.

    1. Topic a.topic, deleted and reloaded: a.events events over a.users user_ids (seed 42).
    2. `weir run` (no --until-idle) into a fresh table; wait until the input is consumed and written
       (metrics events: lag 0, all records in, records out unchanged for one metrics period).
    3. K savepoints (SIGUSR1), each after a quiet-machine wait; a disturbed one is repeated (up to 3 more).
    4. SIGTERM: stop with a snapshot; the process must exit 0.
    5. a.extra more events of the same stream; K runs `--from-snapshot <stop> --until-idle 1`:
       restore time = first_record − spawn; each must read exactly a.extra records.
    6. MySQL against reference.py (count and sum per user_id over the whole topic).
    With a.under_load (a fraction of the input), one more savepoint is taken while the input is being consumed,
    and records/s from the metrics events before, during and after it tell whether processing stalled.
    With a.sink == "blackhole" the run writes into a BLACKHOLE table (MariaDB discards the rows: loading 10 M
    keys is not bounded by InnoDB upserts), the key count comes from the generator (bench.py's own copy of
    `weir produce`'s SplitMix64 stream), and the restored runs write into an InnoDB table, whose rows (the keys
    the extra events touch, with their totals over the whole topic) are checked against that generator.
    Unless a.keep_state, the snapshot directory and the topic are deleted at the end.
    """
    import reference as ref
    log = lambda m: print(f"\033[1m[bench]\033[0m {m}", flush=True)
    quiet = (lambda: wait_quiet(log)) if a.quiet else (lambda: 0)
    servers = []
    for name in ("tansu", "mariadb"):
        try:
            with open(os.path.join(a.run_dir, f"{name}.pid")) as f:
                servers.append(int(f.read().strip()))
        except (OSError, ValueError):
            pass
    sd = os.path.join(a.dir, "state-snapshots")
    shutil.rmtree(sd, ignore_errors=True)
    res = {"events": a.events, "users": a.users, "extra": a.extra, "parallelism": a.parallelism, "topic": a.topic,
           "table": a.table, "seed": 42, "savepoints": [], "restores": [], "pass": False, "sink": a.sink,
           "underLoadAt": a.under_load}
    restore_spec, restore_table = a.spec, a.table
    if a.sink == "blackhole":
        # The restored runs write into an InnoDB table, checked against the generator.
        restore_table = a.table + "_restored"
        restore_spec = os.path.join(a.dir, "state-restore.yaml")
        with open(a.spec) as f:
            text = f.read()
        if f"table: {a.table}" not in text:
            raise SystemExit(f"{a.spec} has no 'table: {a.table}'")
        with open(restore_spec, "w") as f:
            f.write(text.replace(f"table: {a.table}", f"table: {restore_table}"))
    out = os.path.join(a.dir, "state.json")
    proc = None

    def save():
        with open(out, "w") as f:
            json.dump(res, f, indent=1)

    def produce(start, count):
        cmd = [a.weir, "produce", "--bootstrap", a.bootstrap, "--topic", a.topic, "--count", str(count),
               "--seed", "42", "--users", str(a.users), "--start", str(start)]
        if start == 0:
            cmd += ["--partitions", "4"]
        subprocess.run(cmd, check=True)

    def spawn(tag, *extra, spec=a.spec):
        files = {k: os.path.join(a.dir, f"{tag}{suffix}") for k, suffix in
                 (("events", "-events.jsonl"), ("log", ".log"), ("stats", "-stats.json"), ("out", ".out"))}
        cmd = [a.weir, "run", spec, "--state-dir", sd, "--events", files["events"], "--plain",
               "--stats", files["stats"], *extra]
        with open(files["log"], "w") as lf, open(files["out"], "w") as of:
            t0 = time.time()
            p = subprocess.Popen(cmd, stdout=of, stderr=lf)
        return p, t0, files

    def until(tail, p, pred, what, timeout, files, exit_ok=False, rss="peakRssMB"):
        deadline = time.time() + timeout
        while True:
            for e in tail.poll():
                if e["event"] in ("failed", "savepoint_failed", "stop_failed", "snapshot_failed"):
                    raise RuntimeError(f"{what}: weir reported {e['event']}: {e.get('message') or e.get('reason')} (see {files['log']})")
                if pred(e):
                    return e
            if p.poll() is not None and not exit_ok:
                tail.poll()
                raise RuntimeError(f"{what}: weir run exited with {p.returncode} (see {files['log']})")
            if time.time() > deadline:
                raise RuntimeError(f"{what}: nothing after {timeout} s (see {files['log']})")
            res[rss] = max(res.get(rss, 0.0), _vmhwm_mb(p.pid))
            time.sleep(0.005)

    try:
        # 1. The topic: reloaded every time, so that the runs read exactly a.events events.
        delete_topic(a.bootstrap, a.topic)
        log(f"loading {a.events:,} events over {a.users:,} user_ids (seed 42) into {a.topic} (4 partitions)")
        produce(0, a.events)
        st = topic_state(a.bootstrap, a.topic)
        if st["messages"] != a.events:
            raise RuntimeError(f"topic {a.topic} holds {st['messages']} messages after loading {a.events}")
        conn = ref.connect(a.mysql_port, a.database)
        with conn.cursor() as cur:
            engine = "InnoDB"
            if a.sink == "blackhole":
                cur.execute("SELECT COUNT(*) FROM information_schema.ENGINES WHERE ENGINE = 'BLACKHOLE' AND SUPPORT IN ('YES', 'DEFAULT')")
                if cur.fetchone()[0] == 0:
                    cur.execute("INSTALL SONAME 'ha_blackhole'")
                engine = "BLACKHOLE"
            for t, e in {a.table: engine, restore_table: "InnoDB"}.items():
                cur.execute(f"DROP TABLE IF EXISTS {t}")
                cur.execute(f"CREATE TABLE {t} (user_id BIGINT NOT NULL PRIMARY KEY, cnt BIGINT, total BIGINT) ENGINE={e}")
        if a.sink == "blackhole":
            log(f"counting the distinct user_ids of the first {a.events:,} events (bench.py's copy of the generator)")
            res["generatorKeys"] = generator_distinct(42, a.events, a.users)

        # 2. The run, until every record is in and written.
        quiet()
        proc, t0, files = spawn("state-run")
        tail = EventTail(files["events"])
        first = until(tail, proc, lambda e: e["event"] == "first_record", "state run", 120, files)
        log(f"state job running (pid {proc.pid}); waiting until its {a.events:,} records are consumed and written")
        prev = [None]

        loaded = [None]

        def settled(e):
            if e["event"] == "snapshot" and e.get("kind") == "savepoint" and loaded[0] and "event" not in loaded[0]:
                loaded[0]["event"] = e
            if e["event"] != "metrics":
                return False
            if a.under_load and loaded[0] is None and e["recordsIn"] >= a.under_load * a.events and e["recordsIn"] < a.events:
                loaded[0] = {"signal": time.time(), "recordsIn": e["recordsIn"]}
                log(f"savepoint under load after {e['recordsIn']:,} records")
                os.kill(proc.pid, signal.SIGUSR1)
            done = e["recordsIn"] >= a.events and sum(e["lag"].values()) == 0
            ok = done and prev[0] is not None and prev[0]["done"] and prev[0]["recordsOut"] == e["recordsOut"]
            if done and "inputConsumedAt" not in res:
                res["inputConsumedAt"] = e["time"]
            prev[0] = {"done": done, "recordsOut": e["recordsOut"]}
            return ok
        m = until(tail, proc, settled, "consuming the input", a.timeout, files)
        res["ingest"] = {"recordsIn": m["recordsIn"], "recordsOut": m["recordsOut"],
                         "firstRecordToConsumedSeconds": round(_ts(res["inputConsumedAt"]) - _ts(first["time"]), 1),
                         "spawnToSettledSeconds": round(_ts(m["time"]) - t0, 1)}
        if a.sink == "blackhole":
            res["keys"] = res["generatorKeys"]
        else:
            with conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM {a.table}")
                res["keys"] = cur.fetchone()[0]
        res["peakRssBytesPerKey"] = round(res.get("peakRssMB", 0) * 1048576 / max(1, res["keys"]), 1)
        log(f"input consumed: {m['recordsIn']:,} records in, {m['recordsOut']:,} rows upserted, "
            f"{res['keys']:,} keys ({'from the generator' if a.sink == 'blackhole' else 'rows in ' + a.table}); "
            f"input consumed {res['ingest']['firstRecordToConsumedSeconds']} s "
            f"after the first record (metrics every 2 s); peak RSS {res.get('peakRssMB', 0):.0f} MB, "
            f"{res['peakRssBytesPerKey']:.0f} bytes per key")
        if loaded[0]:
            res["underLoad"] = _under_load(loaded[0], tail.all)
            u = res["underLoad"]
            log(f"savepoint under load: {u.get('durationMs', '?')} ms, {u.get('bytes', 0) / 1e6:.1f} MB; records/s before "
                f"{u['rateBefore']:,.0f}, in the metrics periods overlapping it {u['ratesDuring']}, after {u['rateAfter']:,.0f}; "
                f"stalled: {u['stalled']}")

        # 3./4. Savepoints, then stop with a snapshot.
        last = [0]

        def snap(sig, kind):
            waited = quiet()
            meter = LoadMeter(proc.pid, servers)
            t_sig = time.time()
            os.kill(proc.pid, sig)
            e = until(tail, proc, lambda e: e["event"] == "snapshot" and e.get("kind") == kind and e["checkpoint"] > last[0],
                      kind, 300, files, exit_ok=(kind == "stop"))
            load = meter.stop()
            last[0] = e["checkpoint"]
            rec = {"id": e["id"], "kind": kind, "durationMs": round(e["durationMs"], 1), "bytes": e["bytes"],
                   "sizeBytes": e.get("sizeBytes"), "signalToEventMs": round((_ts(e["time"]) - t_sig) * 1000),
                   "quietWaitSeconds": waited, "load": load, "noisy": load["noisy"]}
            log(f"{e['id']}: {rec['durationMs']:.0f} ms, {rec['bytes'] / 1e6:.1f} MB"
                + (" — other processes were busy meanwhile; it does not count" if rec["noisy"] else ""))
            return rec

        n = 0
        while sum(not s["noisy"] for s in res["savepoints"]) < a.repeat and n < a.repeat + (3 if a.quiet else 0):
            n += 1
            res["savepoints"].append(snap(signal.SIGUSR1, "savepoint"))
            save()
        res["stop"] = snap(signal.SIGTERM, "stop")
        until(tail, proc, lambda e: e["event"] == "stopped", "stop", 120, files, exit_ok=True)
        rc = proc.wait(timeout=120)
        if rc != 0:
            raise RuntimeError(f"the stopped run exited with {rc} (see {files['log']})")
        tail.close()
        proc = None
        enc = _snapshot_logs(files["log"])
        for s in res["savepoints"] + [res["stop"]]:
            s["encodePersistMs"] = enc.get(s["id"])
        save()

        # 5. More input, then restores from the stop snapshot.
        log(f"producing {a.extra:,} more events, then restoring from {res['stop']['id']}")
        produce(a.events, a.extra)
        # What the restore preview predicts from the decode rate measured when the snapshot was taken.
        pv = subprocess.run([a.weir, "snapshot", "diff", res["stop"]["id"], "--spec", a.spec, "--state-dir", sd, "--json"],
                            capture_output=True, text=True)
        try:
            res["predicted"] = json.loads(pv.stdout).get("predicted")
        except ValueError:
            res["predicted"] = None
        if res["predicted"]:
            log(f"predicted: state loaded in {res['predicted']['stateLoadedMillis']:.0f} ms, "
                f"first record in {res['predicted']['firstRecordMillis']:.0f} ms")
        n = 0
        while sum(not r["noisy"] for r in res["restores"]) < a.repeat and n < a.repeat + (3 if a.quiet else 0):
            n += 1
            waited = quiet()
            meter = LoadMeter(None, servers)
            proc, t0, files = spawn(f"state-restore-{n}", "--from-snapshot", res["stop"]["id"], "--until-idle", "1",
                                    spec=restore_spec)
            meter.pid = proc.pid
            tail = EventTail(files["events"])
            fr = until(tail, proc, lambda e: e["event"] == "first_record", "restore", 300, files, rss="restorePeakRssMB")
            load = meter.stop()
            until(tail, proc, lambda e: e["event"] in ("finished", "stopped", "cancelled"), "restored run", 300, files,
                  exit_ok=True, rss="restorePeakRssMB")
            rc = proc.wait(timeout=120)
            tail.poll()
            ev = {e["event"]: e for e in tail.all}
            # startup_times comes when the sources are positioned and again at the first record.
            starts = [e for e in tail.all if e["event"] == "startup_times"]
            ev["startup_times"] = next((e for e in reversed(starts) if e.get("firstRecordMs") is not None), starts[-1] if starts else {})
            tail.close()
            proc = None
            stats = _load(files["stats"]) or {}
            rec = {"spawnToFirstRecordMs": round((_ts(fr["time"]) - t0) * 1000),
                   "spawnToStartingMs": round((_ts(ev["starting"]["time"]) - t0) * 1000),
                   "startingToRunningMs": round((_ts(ev["running"]["time"]) - _ts(ev["starting"]["time"])) * 1000),
                   "runningToFirstRecordMs": round((_ts(fr["time"]) - _ts(ev["running"]["time"])) * 1000),
                   "startingToFirstRecordMs": round((_ts(fr["time"]) - _ts(ev["starting"]["time"])) * 1000),
                   "restoredFrom": ev["running"].get("restoredFrom"), "exit": rc,
                   "stateLoadedMs": (ev.get("startup_times") or {}).get("stateLoadedMs"),
                   "runToFirstRecordMs": (ev.get("startup_times") or {}).get("firstRecordMs"),
                   "recordsIn": stats.get("recordsIn"), "quietWaitSeconds": waited, "load": load, "noisy": load["noisy"]}
            res["restores"].append(rec)
            save()
            log(f"restore {n}: first record {rec['spawnToFirstRecordMs']} ms after spawn "
                f"({rec['startingToFirstRecordMs']} ms after `starting`), {rec['recordsIn']} records read"
                + (" — other processes were busy meanwhile; it does not count" if rec["noisy"] else ""))
            if rc != 0 or rec["recordsIn"] != a.extra or rec["restoredFrom"] != res["stop"]["id"]:
                raise RuntimeError(f"restore {n}: exit {rc}, {rec['recordsIn']} records read (expected {a.extra}), "
                                   f"restored from {rec['restoredFrom']} (see {files['log']})")

        # 6. Correctness of the table over the whole topic.
        if a.sink == "blackhole":
            log(f"verifying {restore_table} (the keys the extra events touched, restored and updated) against the generator")
            t1 = time.time()
            got = ref.mysql_totals(conn, restore_table)
            exp = generator_totals(42, a.events + a.extra, a.users, set(got))
            d = ref.diff(exp, got) if got else "the restored runs wrote no rows"
            conn.close()
            res["verify"] = {"pass": d == "", "diff": d, "expectedRows": len(exp), "actualRows": len(got),
                             "table": restore_table, "readSeconds": round(time.time() - t1, 1)}
            res["pass"] = d == ""
            print(f"[bench] STATE {'PASS' if d == '' else 'FAIL'}: {len(got)} rows in {restore_table} equal the generator's "
                  f"totals over {a.events + a.extra:,} events" + (f" -- {d}" if d else ""))
            return res["pass"]
        log("verifying the per-user totals against benchmarks/reference.py")
        t1 = time.time()
        events, bad = ref.decode(ref.read_topic(a.bootstrap, a.topic, timeout=600))
        exp = ref.totals_reference(events)
        got = ref.mysql_totals(conn, a.table)
        d = ref.diff(exp, got)
        conn.close()
        res["verify"] = {"pass": d == "", "diff": d, "topicMessages": len(events) + bad, "malformed": bad,
                         "expectedRows": len(exp), "actualRows": len(got), "readSeconds": round(time.time() - t1, 1)}
        res["pass"] = d == ""
        print(f"[bench] STATE {'PASS' if d == '' else 'FAIL'}: {len(got)} rows in {a.table}, reference {len(exp)}"
              + (f" -- {d}" if d else ""))
    except Exception as e:  # noqa: BLE001 - reported in state.json and on stderr
        res["error"] = str(e)
        print(f"[bench] state benchmark failed: {e}", file=sys.stderr)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGUSR2)   # cancel without a snapshot
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        listing = subprocess.run([a.weir, "snapshot", "list", "--state-dir", sd, "--json"], capture_output=True, text=True)
        with open(os.path.join(a.dir, "state-snapshots.json"), "w") as f:
            f.write(listing.stdout)
        if not a.keep_state:
            shutil.rmtree(sd, ignore_errors=True)
            try:   # Tansu keeps topics in memory; the next run reloads this one anyway
                delete_topic(a.bootstrap, a.topic)
            except Exception as e:  # noqa: BLE001 - cleanup only
                print(f"[bench] could not delete topic {a.topic}: {e}", file=sys.stderr)
        save()
    return res["pass"]


def _ms(x):
    return "-" if x is None else f"{x:,.0f} ms"


def _mb(b):
    if b is None:
        return "-"
    return f"{b / 1e6:.1f} MB" if b >= 1e5 else f"{b / 1e3:.1f} kB"


def _pct(xs):
    return ", ".join(f"{x:.0%}" for x in xs) if xs else "-"


def _undisturbed(items, what, warn):
    """The items no other process disturbed; all of them (with a warning) when none was quiet."""
    quiet = [x for x in items if not x["noisy"]]
    if quiet:
        return quiet
    warn.append(f"- {what} was disturbed by other processes; all are counted")
    return items


def _report_throughput(run_dir, meta, ver, par):
    """W1/W2 against the ceiling: (lines, target checks, load warnings)."""
    rows, checks, detail, cpu, warn = [], [], [], [], []
    for w in ("w1", "w2"):
        runs = _runs(run_dir, w)
        if not runs:
            continue
        counted = _undisturbed(runs, f"{w.upper()}: every run", warn)
        rates = [x["rate"] for x in counted if x["rate"]]
        ceils = [x["ceilingRate"] for x in counted if x["ceilingRate"]]
        rate = max(rates) if rates else None
        ceil = max(ceils) if ceils else None
        ratio = rate / ceil if rate and ceil else None
        rsss = [x["rssMB"] for x in runs if x["rssMB"]]
        rss = max(rsss) if rsss else None
        best = max((x for x in counted if x["rate"]), key=lambda x: x["rate"], default=None)
        rows.append((w.upper(), best, rate, ceil, ratio, rss, ver.get(w)))
        if ratio is not None:
            t = TARGETS[f"{w}_ratio"]
            checks.append(f"{w.upper()} ≥ {t:.0%} of the ceiling: {ratio:.1%} — {'met' if ratio >= t else 'NOT met'}")
        if w == "w1" and rss is not None:
            t = TARGETS["w1_rss_mb"]
            checks.append(f"W1 peak RSS < {t} MB: {rss:.0f} MB — {'met' if rss < t else 'NOT met'}")
        for x in runs:
            s = x["stats"]
            line = f"- {w.upper()} run {x['r']}: ceiling {_rate(x['ceilingRate'])} ev/s ({x['ceiling']['seconds']:.3f} s)" \
                if x["ceiling"] else f"- {w.upper()} run {x['r']}: no ceiling"
            if s:
                line += (f"; Weir {_rate(x['rate'])} ev/s (processing {s['processingSeconds']:.3f} s = wall {s['wallSeconds']:.3f}"
                         f" − idle wait {s['idleWaitSeconds']:.3f}), pair ratio {x['rate'] / x['ceilingRate']:.1%}"
                         if x["ceilingRate"] else "")
                line += f", peak RSS {x['rssMB']:.0f} MB" if x["rssMB"] else ""
                line += f", {s['lateRecords']} late, {s['decodeErrors']} malformed"
            else:
                line += "; Weir run failed"
            if x not in counted:
                line += " — **not counted: other processes were busy**"
            detail.append(line)
            for what, other, wall in (("ceiling", x["ceilingOther"], (x["ceilingLoad"] or {}).get("wallSeconds")),
                                      ("Weir", x["other"], (x["load"] or {}).get("wallSeconds"))):
                if _too_busy(other, wall):
                    warn.append(f"- {w.upper()} run {x['r']} ({what}): other processes used {other:.2f} CPU-s "
                                f"during {wall:.2f} s — the machine was not quiet")
        th = _threads(best["threads"] if best else None, w, par)
        if th:
            roles = "; ".join(f"{r} {sum(v):.2f} ({' + '.join(f'{c:.2f}' for c in v)})" for r, v in th["roles"].items())
            oth = ", ".join(f"{k} {v:.2f}" for k, v in th["others"].items())
            cpu.append(f"- {w.upper()} run {best['r']}: Weir {th['total']:.2f} CPU-s = {roles}; librdkafka threads "
                       f"{th['rdk']:.2f}; other Weir threads {th['rest']:.2f}. Meanwhile {oth}.")
    if not rows:
        return [], checks, warn
    lines = ["### Throughput: W1 and W2 against the ceiling", "",
             f"{meta.get('events', 0):,} events in topic `{meta.get('topic', 'events')}` ({meta.get('partitions', 4)} partitions, "
             f"seed {meta.get('seed', 42)}), Weir parallelism {par}. Each workload ran as pairs (ceiling run, then the "
             f"workload) until {meta.get('repeat', 1)} pair{'s' if meta.get('repeat', 1) != 1 else ''} ran undisturbed by other processes; the table shows the best "
             f"ceiling and the best workload run among those. Ceiling = bare librdkafka consumer "
             f"(benchmarks/bare_consume.c, {meta.get('ceilingConsumers', 1)} consumer).", "",
             "| workload | records in | records out | events/s | ceiling events/s | ratio | peak RSS | correct |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, best, rate, ceil, ratio, rss, v in rows:
        ok = "-" if v is None else ("PASS" if v["pass"] else "FAIL")
        s = best["stats"] if best else None
        lines.append(f"| {name} | {s['recordsIn']:,} | {s['recordsOut']:,} | {_rate(rate)} | {_rate(ceil)} | "
                     f"{ratio:.1%} | {rss:.0f} MB | {ok} |" if s and ratio is not None and rss is not None
                     else f"| {name} | - | - | - | {_rate(ceil)} | - | - | {ok} |")
    lines.append("")
    if detail:
        lines += ["All runs (events/s = recordsIn / processingSeconds):"] + detail + [""]
    if cpu:
        lines += ["CPU seconds by thread in the best run (sampled from /proc every 0.25 s; Weir's threads "
                  "identified by their names, NODE#SUBTASK):"] + cpu + [""]
    return lines, checks, warn


def _report_ckpt(run_dir, meta, ver, par):
    """W1 without / with periodic checkpoints: (lines, target checks, load warnings)."""
    ivs = meta.get("ckptIntervals") or []
    table, detail, checks, warn = [], [], [], []
    for iv in ivs:
        pairs = _ckpt_pairs(run_dir, iv)
        if not pairs:
            continue
        counted = _undisturbed(pairs, f"checkpoints every {iv}: every pair", warn)
        offs = [p["off"]["rate"] for p in counted if p["off"] and p["off"]["rate"]]
        ons = [p["on"]["rate"] for p in counted if p["on"] and p["on"]["rate"]]
        off, on = (max(offs) if offs else None), (max(ons) if ons else None)
        ratio = on / off if on and off else None
        pr = [p["on"]["rate"] / p["off"]["rate"] for p in counted
              if p["on"] and p["off"] and p["on"]["rate"] and p["off"]["rate"]]
        periodic = [_periodic(p["on"]) for p in counted]
        durs = [e["durationMs"] for ps in periodic for e in ps]
        rss_off = max((p["off"]["rssMB"] for p in pairs if p["off"] and p["off"]["rssMB"]), default=None)
        rss_on = max((p["on"]["rssMB"] for p in pairs if p["on"] and p["on"]["rssMB"]), default=None)
        v = ver.get(f"ckpt-{iv}")
        ok = "-" if v is None else ("PASS" if v["pass"] else "FAIL")
        dur = f"mean {sum(durs) / len(durs):.0f} ms, max {max(durs):.0f} ms" if durs else "-"
        counts = ", ".join(f"{len(ps)} ({sum(e['busy'] for e in ps)})" for ps in periodic)
        table.append(f"| {iv} | {_rate(off)} | {_rate(on)} | {ratio:.1%} | {_pct(pr)} | "
                     f"{counts} | {dur} | "
                     f"{rss_off or 0:.0f} / {rss_on or 0:.0f} MB | {ok} |" if ratio is not None
                     else f"| {iv} | {_rate(off)} | {_rate(on)} | - | - | - | - | - | {ok} |")
        if ratio is not None:
            t = TARGETS["ckpt_ratio"]
            during = sum(e["busy"] for ps in periodic for e in ps)
            note = (f"; {during} periodic checkpoint{'s' if during != 1 else ''} fell into the processing time of the "
                    f"{len(periodic)} counted run{'s' if len(periodic) != 1 else ''}")
            if during == 0:
                note += ", so this compares the XA sink with the plain one, not the cost of checkpoints"
            checks.append(f"W1 with checkpoints every {iv} ≥ {t:.0%} of W1 without: {ratio:.1%} (pairs: {_pct(pr)}{note}) — "
                          f"{'met' if ratio >= t else 'NOT met'}")
        for p in pairs:
            parts = []
            for mode, x in (("without", p["off"]), ("with", p["on"])):
                if x is None or x["stats"] is None:
                    parts.append(f"{mode}: failed")
                    continue
                s = x["stats"]
                txt = f"{mode} {_rate(x['rate'])} ev/s ({s['processingSeconds']:.3f} s)"
                if mode == "with":
                    ps = _periodic(x)
                    txt += (f", {len(ps)} periodic checkpoint{'s' if len(ps) != 1 else ''}, "
                            f"{sum(e['busy'] for e in ps)} of them during processing")
                    if ps:
                        txt += " (" + ", ".join(f"{e['id']} {e['durationMs']:.0f} ms {_mb(e['bytes'])}"
                                                + ("" if e["busy"] else " idle") for e in ps) + ")"
                parts.append(txt)
                if _too_busy(x["other"], (x["load"] or {}).get("wallSeconds")):
                    warn.append(f"- checkpoints every {iv}, pair {p['r']} ({mode}): other processes used {x['other']:.2f} "
                                f"CPU-s during {x['load']['wallSeconds']:.2f} s — the machine was not quiet")
            r = (f", pair ratio {p['on']['rate'] / p['off']['rate']:.1%}"
                 if p["on"] and p["off"] and p["on"]["rate"] and p["off"]["rate"] else "")
            detail.append(f"- every {iv}, pair {p['r']}: " + "; ".join(parts) + r
                          + (" — **not counted: other processes were busy**" if p not in counted else ""))
    if not table:
        return [], checks, warn
    lines = ["### Checkpoint overhead (W1)", "",
             f"W1 ({meta.get('events', 0):,} events, parallelism {par}) without checkpoints and with "
             "`checkpoint: { interval: … }`, run as alternating pairs (without, then with; a fresh table for each run) until "
             f"{meta.get('repeat', 1)} pair{'s' if meta.get('repeat', 1) != 1 else ''} per interval ran undisturbed. With checkpoints the MySQL sink writes each "
             "epoch in an XA transaction, committed when its checkpoint completes. Events/s = recordsIn / processingSeconds; "
             "ratio = best run with ÷ best run without. *Periodic checkpoints per run*: the checkpoints each counted run "
             "took, not counting the final snapshot every `--until-idle` run takes (with or without an interval); in "
             "brackets those triggered while the input was being processed — the others fell into the 1 s idle wait "
             "at the end, outside processingSeconds. *Checkpoint duration*: trigger → completed, over all periodic "
             "checkpoints.", "",
             "| interval | without: events/s | with: events/s | ratio | pair ratios | periodic checkpoints per run | "
             "checkpoint duration | peak RSS without / with | correct (with) |",
             "|---|---:|---:|---:|---|---|---|---|---|"] + table + [""]
    lines += ["All pairs:"] + detail + [""]
    return lines, checks, warn


def _report_state(run_dir):
    """Snapshots of ~1 M keys and restores: (lines, target checks, load warnings)."""
    st = _load(os.path.join(run_dir, "state.json"))
    if not st:
        return [], [], []
    checks, warn = [], []
    ing = st.get("ingest") or {}
    lines = ["### Snapshots of a large keyed state, and restore", "",
             f"`benchmarks/state.yaml` at parallelism {st['parallelism']}: `keyBy [user_id]`, a continuous "
             "`aggregate {cnt: count(), total: sum(amount)}`, MySQL upsert keyed by `user_id`, no periodic checkpoints. "
             f"Topic `{st['topic']}`: {st['events']:,} events with user_ids drawn from {st['users']:,} values "
             f"(`weir produce --users {st['users']}`, seed {st.get('seed', 42)}), reloaded for every harness run."]
    if "keys" in st:
        lines[-1] += (f" After the input was consumed the table held **{st['keys']:,} rows, one per key in the state**. "
                      f"The run read {ing.get('recordsIn', 0):,} records and upserted {ing.get('recordsOut', 0):,} rows "
                      f"(one per key touched by each input batch); the input was consumed "
                      f"~{ing.get('firstRecordToConsumedSeconds', '?')} s after the first record (metrics every 2 s). "
                      f"Peak RSS of that run: {st.get('peakRssMB', 0):.0f} MB.")
        if st.get("sink") == "blackhole":
            lines[-1] = lines[-1].replace(f"the table held **{st['keys']:,} rows, one per key in the state**",
                                          f"the state held **{st['keys']:,} keys** (distinct user_ids of the input, "
                                          "counted by bench.py's copy of the generator)")
            lines[-1] += (" **Sink: a MariaDB BLACKHOLE table** (`--state-sink blackhole`): Weir's MySQL sink prepares, "
                          "sends and commits every upsert as usual, MariaDB discards the rows, so loading is not bounded "
                          "by InnoDB; the restored runs write into an InnoDB table, checked against the generator.")
        if st.get("keys"):
            bpk = st.get("peakRssMB", 0) * 1048576 / st["keys"]
            lines[-1] += f" That is **{bpk:,.0f} bytes of peak RSS per key** (the whole process: state, snapshot buffers, librdkafka, sink)."
            if st["keys"] >= TARGETS["big_keys"]:
                t = TARGETS["big_bytes_per_key"]
                checks.append(f"Peak RSS per key of {st['keys']:,} keys ≤ {t} bytes: {bpk:,.0f} bytes "
                              f"({st.get('peakRssMB', 0):,.0f} MB) — {'met' if bpk <= t else 'NOT met'}")
    u = st.get("underLoad")
    if u:
        lines += ["", f"Savepoint **under load**: taken once {u['recordsInAtSignal']:,} of the {st['events']:,} input records were in "
                  f"(SIGUSR1, `--state-under-load {st.get('underLoadAt')}`): {_ms(u.get('durationMs'))}, {_mb(u.get('bytes', 0))}. "
                  f"Records in per second from the `metrics` events (every 2 s): {u['rateBefore']:,} in the periods before it "
                  f"(median of the last three), {', '.join(f'{r:,}' for r in u['ratesDuring']) or '—'} in the periods overlapping it, "
                  f"{u['rateAfter']:,} in the period after. Processing stalled (a period with no record in): "
                  f"**{'yes' if u['stalled'] else 'no' if u['stalled'] is not None else 'unknown'}**."]
        checks.append(f"Processing went on during the savepoint under load: "
                      f"{'met' if u['stalled'] is False else 'NOT met'}")
    lines.append("")
    snaps = st.get("savepoints", []) + ([st["stop"]] if st.get("stop") else [])
    if snaps:
        lines += ["Snapshots of the idle job (input consumed and written), each after a quiet-machine wait: "
                  "`durationMs` of the `snapshot` event = barrier trigger → every task acknowledged → state encoded, "
                  "written and fsync'd; *encode+persist* is the coordinator's share of it (from weir's log).", "",
                  "| snapshot | trigger | duration | encode+persist | size | signal → event |",
                  "|---|---|---:|---:|---:|---:|"]
        for s in snaps:
            trig = "SIGUSR1 (savepoint)" if s["kind"] == "savepoint" else "SIGTERM (stop with snapshot)"
            lines.append(f"| {s['id']}{' (not counted: machine busy)' if s['noisy'] else ''} | {trig} | {_ms(s['durationMs'])} | {_ms(s.get('encodePersistMs'))} | "
                         f"{_mb(s['bytes'])} | {_ms(s['signalToEventMs'])} |")
            if s["noisy"]:
                warn.append(f"- snapshot {s['id']}: other processes used {s['load']['otherCpuSeconds']:.2f} CPU-s "
                            f"during {s['load']['wallSeconds']:.2f} s")
        lines.append("")
        good = [s for s in snaps if not s["noisy"]] or snaps
        worst = max(s["durationMs"] for s in good)
        t = _state_targets(st)[0]
        checks.append(f"Snapshot of {st.get('keys', 0):,} keys < {t / 1000:.0f} s: slowest {worst:,.0f} ms "
                      f"({len(good)} snapshot{'s' if len(good) != 1 else ''}) — {'met' if worst < t else 'NOT met'}")
    rs = st.get("restores", [])
    if rs:
        lines += [f"Restore: {st['extra']:,} more events produced after the stop, then `weir run state.yaml "
                  f"--from-snapshot {st['stop']['id']} --until-idle 1` (each run restores the same snapshot). Restore time = "
                  "the `first_record` event minus the spawn of the process (bench.py); also from the events file alone: "
                  "`starting` → `running` (spec compiled, snapshot files read and checksummed, sink table checked, "
                  "partitions discovered, state decoded into the operator) and `running` → `first_record` (threads "
                  "started, consumer created and positioned at the snapshot's offsets, first fetch). Each run must read "
                  "exactly the new events.", "",
                  "| restore | spawn → first_record | starting → first_record | starting → running | running → first_record | records read |",
                  "|---|---:|---:|---:|---:|---:|"]
        for i, r in enumerate(rs, 1):
            lines.append(f"| {i}{' (not counted: machine busy)' if r['noisy'] else ''} | {_ms(r['spawnToFirstRecordMs'])} | {_ms(r['startingToFirstRecordMs'])} | "
                         f"{_ms(r['startingToRunningMs'])} | {_ms(r['runningToFirstRecordMs'])} | {r['recordsIn']:,} |")
            if r["noisy"]:
                warn.append(f"- restore {i}: other processes used {r['load']['otherCpuSeconds']:.2f} CPU-s "
                            f"during {r['load']['wallSeconds']:.2f} s")
        lines.append("")
        pr = st.get("predicted")
        if pr:
            measured = [r for r in ([r for r in rs if not r["noisy"]] or rs) if r.get("runToFirstRecordMs")]
            if measured:
                m_state = statistics.median(r["stateLoadedMs"] for r in measured)
                m_first = statistics.median(r["runToFirstRecordMs"] for r in measured)
                lines += [f"Time to restore, predicted by `weir snapshot diff` from {_mb(pr['stateBytes'])} of keyed state and the "
                          f"decode rate measured when the snapshot was taken ({_mb(pr['decodeBytesPerSecond'])}/s), against the "
                          "median measured by the restored runs (`startup_times`, from the start of the run):", "",
                          "| | predicted | measured | predicted / measured |", "|---|---:|---:|---:|",
                          f"| state loaded | {_ms(pr['stateLoadedMillis'])} | {_ms(m_state)} | {pr['stateLoadedMillis'] / m_state:.0%} |",
                          f"| first record | {_ms(pr['firstRecordMillis'])} | {_ms(m_first)} | {pr['firstRecordMillis'] / m_first:.0%} |", ""]
                within = 0.5 <= pr["firstRecordMillis"] / m_first <= 1.5
                checks.append(f"Predicted time to the first record within ±50% of the measured one: "
                              f"{pr['firstRecordMillis'] / m_first:.0%} — {'met' if within else 'NOT met'}")
        if st.get("restorePeakRssMB"):
            lines += [f"Peak RSS of the restored runs: {st['restorePeakRssMB']:.0f} MB.", ""]
        good = [r for r in rs if not r["noisy"]] or rs
        worst = max(r["spawnToFirstRecordMs"] for r in good)
        t = _state_targets(st)[1]
        checks.append(f"Restore from the snapshot of {st.get('keys', 0):,} keys < {t / 1000:.0f} s (spawn → first record): "
                      f"slowest {worst:,} ms ({len(good)} restore{'s' if len(good) != 1 else ''}) — {'met' if worst < t else 'NOT met'}")
    if st.get("error"):
        lines += [f"**The snapshot benchmark failed:** {st['error']}", ""]
    return lines, checks, warn


def _phases(d):
    """`weir bench`'s phases in ms (reports from before the phases were measured: '-')."""
    p = d.get("phases")
    if not p:
        return "-"
    ceiling = d.get("ceiling", {}).get("startMillis")
    start = f"{p['startMillis']:.0f}" + (f" ({ceiling:.0f})" if ceiling is not None else "")
    return f"{start} / {p['readMillis']:.0f} / {p['finishMillis']:.0f} ms"


def _reading_share(d):
    rate, ceiling = d.get("readingEventsPerSecond"), d.get("ceiling", {}).get("eventsPerSecond")
    return f"{rate / ceiling * 100:.1f}%" if rate and ceiling else "-"


def _report_weir_bench(run_dir):
    """W1 and W2 as `weir bench` measured them (wbench-<w>-<run>.json)."""
    lines, checks = [], []
    runs = {}
    for name in sorted(os.listdir(run_dir)):
        m = re.match(r"wbench-(w[12])-(\d+)\.json$", name)
        d = _load(os.path.join(run_dir, name)) if m else None
        if d:
            runs.setdefault(m.group(1), []).append((int(m.group(2)), d))
    if not runs:
        return [], [], []
    lines += ["### `weir bench`: W1 and W2 against the in-process ceiling", "",
              "Each run: `weir bench <w1|w2>.yaml --events N --keys 1000 --json` — generated data (seed 42) in its own topic, "
              "read once bare by librdkafka in the same process (the ceiling), then the job bounded to it into a fresh table, "
              "checked against the reference. Events/s = records read ÷ seconds from the start of the run to the final commit.", "",
              "Phases: start-up (to the first record read; the ceiling's to its first message in brackets), reading, "
              "finishing (last windows, final snapshot, commits); the reading rate ÷ the ceiling's rate shows the "
              "throughput without a short run's fixed start and finish (the targets are judged on the ratio).", "",
              "| workload | run | events/s | ceiling events/s | ratio | phases start / read / finish | reading ÷ ceiling | latency p50 / p99 / max | CPU-s per M events | peak RSS | check |",
              "|---|---:|---:|---:|---:|---|---:|---|---:|---:|---|"]
    targets = {"w1": 0.85, "w2": 0.90}
    for w in sorted(runs):
        best = None
        for r, d in sorted(runs[w]):
            lat = d.get("latencyMillis") or {}
            status = ", ".join(f"{c['status'].upper()}" for c in d.get("checks", []))
            lines.append(f"| {w.upper()} | {r} | {_rate(d['eventsPerSecond'])} | {_rate(d['ceiling']['eventsPerSecond'])} | "
                         f"{d['ratio'] * 100:.1f}% | {_phases(d)} | {_reading_share(d)} | "
                         f"{lat.get('p50', 0):.0f} / {lat.get('p99', 0):.0f} / {lat.get('max', 0):.0f} ms | "
                         f"{d['cpu']['perMillionEvents']:.2f} | {_mb(d.get('peakRSSBytes') or 0)} | {status} |")
            if best is None or d["ratio"] > best["ratio"]:
                best = d
        nodes = ", ".join(f"{n['node']} {n['perMillionEvents']:.2f}" for n in best["cpu"]["nodes"])
        lines.append("")
        lines.append(f"- {w.upper()} best run, CPU-s per million events by node: {nodes}, other threads "
                     f"{best['cpu']['otherSeconds'] / max(1, best['records']['read']) * 1e6:.2f}")
        t = targets[w]
        checks.append(f"{w.upper()} through `weir bench` ≥ {t:.0%} of the same-run ceiling: best {best['ratio'] * 100:.1f}% — "
                      + ("met" if best["ratio"] >= t else "NOT met"))
    lines.append("")
    return lines, checks, []


def report(run_dir, out):
    meta = _load(os.path.join(run_dir, "meta.json")) or {}
    mach = _load(os.path.join(run_dir, "machine.json")) or {}
    ver = _load(os.path.join(run_dir, "verify.json")) or {}
    st = _load(os.path.join(run_dir, "state.json")) or {}
    par = meta.get("parallelism", 2)
    lines, checks, warn = [], [], []
    for part in (_report_throughput(run_dir, meta, ver, par), _report_weir_bench(run_dir), _report_ckpt(run_dir, meta, ver, par),
                 _report_state(run_dir)):
        lines += part[0]
        checks += part[1]
        warn += part[2]
    if checks:
        lines += ["### Targets", ""] + [f"- {c}" for c in checks] + [""]
    if ver or st.get("verify"):
        lines += ["### Correctness", ""]
        if ver:
            lines.append(f"benchmarks/reference.py over topic `{meta.get('topic', 'events')}` ({ver.get('topicMessages', 0):,} "
                         f"messages, {ver.get('malformed', 0)} malformed) against each table, which holds the output of "
                         "the last run that wrote it:")
            for name, v in ver.items():
                if isinstance(v, dict) and "pass" in v:
                    label = name.upper() if name in ("w1", "w2") else f"W1 {name.replace('ckpt-', 'with checkpoints every ').replace('every off', 'without checkpoints')}"
                    if name == "ckpt-off":
                        label = "W1 without checkpoints (checkpoint pairs)"
                    lines.append(f"- {label} (`{v.get('table', '?')}`): {'PASS' if v['pass'] else 'FAIL'} — "
                                 f"{v['actualRows']:,} rows, reference {v['expectedRows']:,}" + (f"; {v['diff']}" if v["diff"] else ""))
        if st.get("verify") and st.get("sink") == "blackhole":
            v = st["verify"]
            lines.append(f"- Restored per-user totals (`{v['table']}`: the keys the {st['extra']:,} extra events touched, after "
                         f"the restores) against bench.py's generator over {st['events'] + st['extra']:,} events: "
                         f"{'PASS' if v['pass'] else 'FAIL'} — {v['actualRows']:,} rows, reference {v['expectedRows']:,}"
                         + (f"; {v['diff']}" if v["diff"] else ""))
        elif st.get("verify"):
            v = st["verify"]
            lines.append(f"- Per-user totals (`{st['table']}`, after the savepoints, the stop and the restores) against "
                         f"reference.py over topic `{st['topic']}` ({v['topicMessages']:,} messages): "
                         f"{'PASS' if v['pass'] else 'FAIL'} — {v['actualRows']:,} rows, reference {v['expectedRows']:,}"
                         + (f"; {v['diff']}" if v["diff"] else ""))
        lines.append("")
    if warn:
        lines += ["### Load warnings", ""] + warn + [""]
    if mach:
        lines.append(f"Machine: {mach.get('nproc')} CPUs ({mach.get('cpu')}), {mach.get('memoryGiB')} GiB, "
                     f"{mach.get('os')}, kernel {mach.get('kernel')}; librdkafka {mach.get('librdkafka')}, "
                     f"Tansu {mach.get('tansu')}, MariaDB {mach.get('mariadb')}; {mach.get('swift')}.")
    text = "\n".join(lines).rstrip() + "\n"
    with open(out, "w") as f:
        f.write(f"# Weir benchmark results {meta.get('timestamp', '')}\n\n`{meta.get('command', '')}`\n\n" + text)
    print(text, end="")


def update_results(src):
    if src is None:
        files = sorted(glob.glob(os.path.join(HERE, "out", "results-*.md")))
        if not files:
            sys.exit("no benchmarks/out/results-*.md yet: run benchmarks/run.sh first")
        src = files[-1]
    with open(src) as f:
        body = f.read()
    if body.startswith("# "):   # drop the file's own title
        body = body.split("\n", 1)[1]
    run_dir = os.path.join(os.path.dirname(src), os.path.basename(src)[len("results-"):-len(".md")])
    mach = _load(os.path.join(run_dir, "machine.json")) or {}
    meta = _load(os.path.join(run_dir, "meta.json")) or {}
    text = ["# Weir benchmark results", "",
            "Written by `benchmarks/bench.py update-results` from the harness's own output "
            f"(`benchmarks/out/{os.path.basename(src)}`). See [README.md](README.md) for what is measured "
            "and how events/s and the ratio are computed.", "",
            "## Machine", "",
            f"- CPUs: {mach.get('nproc')} × {mach.get('cpu')}",
            f"- Memory: {mach.get('memoryGiB')} GiB",
            f"- OS / kernel: {mach.get('os')}, Linux {mach.get('kernel')}",
            f"- librdkafka {mach.get('librdkafka')} (/usr/local), Tansu {mach.get('tansu')} (in-memory storage), "
            f"MariaDB {mach.get('mariadb')}",
            f"- {mach.get('swift')}",
            "- Broker, database, Weir and the ceiling consumer all run on this machine.",
            f"- Weir: commit {meta.get('gitHead', '?')} plus the working tree ({meta.get('gitDirty', '?')}), "
            f"release build{' (prebuilt, --skip-build)' if meta.get('built') == 0 else ''}.", "",
            "## Results", "", body.strip(), ""]
    dst = os.path.join(HERE, "RESULTS.md")
    # A hand-written "## Notes" section of the current RESULTS.md (analysis) is kept.
    try:
        with open(dst) as f:
            old = f.read()
        if "\n## Notes" in old:
            text.append("## Notes" + old.split("\n## Notes", 1)[1].rstrip() + "\n")
    except OSError:
        pass
    with open(dst, "w") as f:
        f.write("\n".join(text))
    print(f"[bench] wrote {dst} from {src}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("topic-state"); p.add_argument("--bootstrap", required=True); p.add_argument("--topic", required=True)
    p = sub.add_parser("delete-topic"); p.add_argument("--bootstrap", required=True); p.add_argument("--topic", required=True)
    p = sub.add_parser("sample"); p.add_argument("--parent", type=int, required=True); p.add_argument("--out", required=True)
    p.add_argument("--also", action="append", default=[], help="NAME=PIDFILE")
    p = sub.add_parser("verify")
    for a in ("--bootstrap", "--topic", "--database", "--out"):
        p.add_argument(a, required=True)
    p.add_argument("--mysql-port", type=int, required=True)
    p.add_argument("--check", action="append", default=[], help="NAME=w1|w2:TABLE")
    p = sub.add_parser("state")
    for a in ("--weir", "--spec", "--dir", "--bootstrap", "--topic", "--database", "--table", "--run-dir"):
        p.add_argument(a, required=True)
    p.add_argument("--mysql-port", type=int, required=True)
    p.add_argument("--events", type=int, default=2_000_000); p.add_argument("--users", type=int, default=1_300_000)
    p.add_argument("--extra", type=int, default=10_000); p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--parallelism", type=int, default=1, help="recorded only: the spec's parallelism")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for the input to be consumed")
    p.add_argument("--sink", choices=("mysql", "blackhole"), default="mysql",
                   help="blackhole: the state job writes into a BLACKHOLE table (see state_bench)")
    p.add_argument("--under-load", type=float, default=0.6,
                   help="take a savepoint once this fraction of the input is in (0: none)")
    p.add_argument("--no-quiet", dest="quiet", action="store_false"); p.add_argument("--keep-state", action="store_true")
    p = sub.add_parser("machine"); p.add_argument("--mysql-port", type=int, required=True); p.add_argument("--out", required=True)
    p = sub.add_parser("clean"); p.add_argument("--dir", required=True); p.add_argument("--tag", action="append", required=True)
    p = sub.add_parser("report"); p.add_argument("--dir", required=True); p.add_argument("--out", required=True)
    p = sub.add_parser("update-results"); p.add_argument("file", nargs="?")
    a = ap.parse_args()
    if a.cmd == "topic-state":
        print(json.dumps(topic_state(a.bootstrap, a.topic)))
    elif a.cmd == "delete-topic":
        delete_topic(a.bootstrap, a.topic)
    elif a.cmd == "sample":
        sample(a.parent, a.out, [x.split("=", 1) for x in a.also])
    elif a.cmd == "verify":
        checks = []
        for c in a.check:
            name, _, rest = c.partition("=")
            kind, _, table = rest.partition(":")
            if kind not in ("w1", "w2") or not name or not table:
                ap.error(f"--check {c}: expected NAME=w1|w2:TABLE")
            checks.append((name, kind, table))
        sys.exit(0 if verify(a.bootstrap, a.topic, a.mysql_port, a.database, checks, a.out) else 1)
    elif a.cmd == "state":
        sys.exit(0 if state_bench(a) else 1)
    elif a.cmd == "machine":
        machine(a.mysql_port, a.out)
    elif a.cmd == "clean":
        sys.exit(0 if clean(a.dir, a.tag) else 1)
    elif a.cmd == "report":
        report(a.dir, a.out)
    elif a.cmd == "update-results":
        update_results(a.file)


if __name__ == "__main__":
    main()
