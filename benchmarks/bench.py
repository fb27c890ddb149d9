"""Helpers of the benchmark harness (benchmarks/run.sh); run with the project venv.

    bench.py topic-state   --bootstrap B --topic T
    bench.py delete-topic  --bootstrap B --topic T
    bench.py sample        --parent PID --out FILE [--also NAME=PIDFILE ...]
    bench.py verify        --bootstrap B --topic T --mysql-port P --database D [--w1-table X] [--w2-table Y] --out FILE
    bench.py machine       --mysql-port P --out FILE
    bench.py report        --dir RUN_DIR --out FILE.md
    bench.py update-results [FILE.md]

The correctness check uses reference.py (confluent-kafka with its own bundled
librdkafka, and PyMySQL), never Weir's code.
"""
import argparse
import glob
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

TARGETS = {"w1_ratio": 0.50, "w2_ratio": 0.60, "w1_rss_mb": 300}


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
                  "fetch.max.bytes": 1024, "max.partition.fetch.bytes": 1024,
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
    busy = {}   # tid -> number of samples in which the thread used > 50% of a core
    last = {}
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
            prev = last.get(tid, c[0])
            if c[0] - prev > interval * 0.5:
                busy[tid] = busy.get(tid, 0) + 1
            last[tid] = c[0]
            threads[tid] = {"tid": tid, "name": c[1], "cpuSeconds": c[0]}
        for name, v in others.items():
            c = _cpu(f"/proc/{v[0]}")
            if c:
                v[2] = c[0]
        samples += 1
        time.sleep(interval)
    res = {"pid": pid, "wallSeconds": time.time() - t0, "samples": samples,
           "threads": [dict(threads[t], busySamples=busy.get(t, 0)) for t in order],
           "weirCpuSeconds": sum(t["cpuSeconds"] for t in threads.values()),
           "others": {k: v[2] - v[1] for k, v in others.items()}}
    with open(out, "w") as f:
        json.dump(res, f, indent=1)


# --- correctness -------------------------------------------------------------

def verify(bootstrap, topic, port, database, w1_table, w2_table, out):
    import reference as ref
    t0 = time.time()
    values = ref.read_topic(bootstrap, topic, timeout=600)
    events, bad = ref.decode(values)
    res = {"topicMessages": len(values), "malformed": bad, "readSeconds": round(time.time() - t0, 1)}
    ok = True
    conn = ref.connect(port, database)
    try:
        for name, table, refn, mysqln in (("w1", w1_table, ref.w1_reference, ref.mysql_w1),
                                          ("w2", w2_table, ref.w2_reference, ref.mysql_w2)):
            if not table:
                continue
            expected = refn(events)
            actual = mysqln(conn, table)
            d = ref.diff(expected, actual)
            rows = sum(expected.values()) if name == "w2" else len(expected)
            got = sum(actual.values()) if name == "w2" else len(actual)
            res[name] = {"pass": d == "", "diff": d, "expectedRows": rows, "actualRows": got}
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
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
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


def _rss_mb(timefile):
    try:
        with open(timefile) as f:
            for line in f:
                if "Maximum resident set size" in line:
                    return int(line.rsplit(":", 1)[1]) / 1024
    except OSError:
        pass
    return None


def _fmt_rate(x):
    return f"{x:,.0f}" if x is not None else "-"


def _thread_summary(th):
    """CPU seconds by thread kind: librdkafka's threads are named rdk:*; Weir's own
    (unnamed) threads are listed in creation order."""
    if not th:
        return None
    rdk = sum(t["cpuSeconds"] for t in th["threads"] if t["name"].startswith("rdk:"))
    own = [t for t in th["threads"] if not t["name"].startswith("rdk:")]
    top = sorted(own, key=lambda t: -t["cpuSeconds"])
    return {"rdk": rdk, "own": own, "top": top, "total": th["weirCpuSeconds"], "others": th.get("others", {}),
            "wall": th["wallSeconds"]}


def report(run_dir, out):
    meta = _load(os.path.join(run_dir, "meta.json")) or {}
    mach = _load(os.path.join(run_dir, "machine.json")) or {}
    ver = _load(os.path.join(run_dir, "verify.json")) or {}
    lines = []
    rows = []
    checks = []
    details = []
    for w in ("w1", "w2"):
        stats = _load(os.path.join(run_dir, f"{w}-stats.json"))
        ceil = _load(os.path.join(run_dir, f"ceiling-{w}.json"))
        if stats is None and ceil is None:
            continue
        rate = stats["recordsIn"] / stats["processingSeconds"] if stats else None
        crate = ceil["eventsPerSecond"] if ceil else None
        ratio = rate / crate if rate and crate else None
        rss = _rss_mb(os.path.join(run_dir, f"{w}-time.txt"))
        v = ver.get(w)
        rows.append((w.upper(), stats, rate, crate, ratio, rss, v))
        target = TARGETS[f"{w}_ratio"]
        if ratio is not None:
            checks.append(f"{w.upper()} ≥ {target:.0%} of ceiling: {ratio:.1%} — {'met' if ratio >= target else 'NOT met'}")
        if w == "w1" and rss is not None:
            checks.append(f"W1 peak RSS < {TARGETS['w1_rss_mb']} MB: {rss:.0f} MB — "
                          f"{'met' if rss < TARGETS['w1_rss_mb'] else 'NOT met'}")
        th = _thread_summary(_load(os.path.join(run_dir, f"{w}-threads.json")))
        if th:
            own = ", ".join(f"{t['cpuSeconds']:.1f}" for t in th["own"] if t["cpuSeconds"] >= 0.05)
            oth = ", ".join(f"{k} {v:.1f} s" for k, v in th["others"].items())
            details.append(f"- {w.upper()}: weir used {th['total']:.1f} CPU-s in {th['wall']:.1f} s wall "
                           f"(librdkafka threads {th['rdk']:.1f} s; Weir's own threads, in creation order, "
                           f"≥0.05 s: {own}); meanwhile {oth}")
    lines.append(f"Run {meta.get('timestamp', '?')}: {meta.get('events', '?'):,} events, topic `{meta.get('topic', 'events')}` "
                 f"({meta.get('partitions', 4)} partitions), parallelism {meta.get('parallelism', '?')}, "
                 f"ceiling = bare librdkafka consumer ({meta.get('ceilingConsumers', 1)} consumer), run right before each workload.")
    lines.append("")
    lines.append("| workload | records in | records out | processing s | events/s | ceiling events/s | ratio | peak RSS MB | correct |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for name, stats, rate, crate, ratio, rss, v in rows:
        ok = "-" if v is None else ("PASS" if v["pass"] else "FAIL")
        lines.append(f"| {name} | {stats['recordsIn']:,} | {stats['recordsOut']:,} | {stats['processingSeconds']:.2f} | "
                     f"{_fmt_rate(rate)} | {_fmt_rate(crate)} | {ratio:.1%} | {rss:.0f} | {ok} |"
                     if stats else f"| {name} | - | - | - | - | {_fmt_rate(crate)} | - | - | {ok} |")
    lines.append("")
    if checks:
        lines.append("Targets:")
        lines.extend(f"- {c}" for c in checks)
        lines.append("")
    if ver:
        lines.append(f"Correctness (reference.py over the topic: {ver.get('topicMessages', 0):,} messages, "
                     f"{ver.get('malformed', 0)} malformed):")
        for w in ("w1", "w2"):
            if w in ver:
                v = ver[w]
                lines.append(f"- {w.upper()}: {'PASS' if v['pass'] else 'FAIL'} — {v['actualRows']:,} rows, "
                             f"reference {v['expectedRows']:,}" + (f"; {v['diff']}" if v["diff"] else ""))
        lines.append("")
    extra = []
    for name, stats, *_ in rows:
        if stats:
            extra.append(f"- {name}: wall {stats['wallSeconds']:.2f} s, idle wait excluded {stats['idleWaitSeconds']:.2f} s, "
                         f"late dropped {stats['lateRecords']}, malformed {stats['decodeErrors']}")
    if extra:
        lines.append("Timing detail (events/s = recordsIn / processingSeconds; processingSeconds = wall − idle wait of --until-idle):")
        lines.extend(extra)
        lines.append("")
    if details:
        lines.append("CPU by thread (sampled from /proc every 0.25 s):")
        lines.extend(details)
        lines.append("")
    if mach:
        lines.append(f"Machine: {mach.get('nproc')} CPUs ({mach.get('cpu')}), {mach.get('memoryGiB')} GiB, "
                     f"{mach.get('os')}, kernel {mach.get('kernel')}; librdkafka {mach.get('librdkafka')}, "
                     f"Tansu {mach.get('tansu')}, MariaDB {mach.get('mariadb')}; {mach.get('swift')}")
    text = "\n".join(lines).rstrip() + "\n"
    with open(out, "w") as f:
        f.write(f"# Weir benchmark results {meta.get('timestamp', '')}\n\n" + text)
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
            f"(`benchmarks/out/{os.path.basename(src)}`, produced by `{meta.get('command', 'benchmarks/run.sh')}`). "
            "See README.md for what is measured.", "",
            "## Machine", "",
            f"- CPUs: {mach.get('nproc')} × {mach.get('cpu')}",
            f"- Memory: {mach.get('memoryGiB')} GiB",
            f"- OS / kernel: {mach.get('os')}, Linux {mach.get('kernel')}",
            f"- librdkafka {mach.get('librdkafka')} (/usr/local), Tansu {mach.get('tansu')} (memory storage), "
            f"MariaDB {mach.get('mariadb')}",
            f"- {mach.get('swift')}",
            "- Broker, database, Weir and the ceiling consumer all share this machine.", "",
            "## Results", "", body.strip(), ""]
    dst = os.path.join(HERE, "RESULTS.md")
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
    p.add_argument("--w1-table"); p.add_argument("--w2-table")
    p = sub.add_parser("machine"); p.add_argument("--mysql-port", type=int, required=True); p.add_argument("--out", required=True)
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
        sys.exit(0 if verify(a.bootstrap, a.topic, a.mysql_port, a.database, a.w1_table, a.w2_table, a.out) else 1)
    elif a.cmd == "machine":
        machine(a.mysql_port, a.out)
    elif a.cmd == "report":
        report(a.dir, a.out)
    elif a.cmd == "update-results":
        update_results(a.file)


if __name__ == "__main__":
    main()
