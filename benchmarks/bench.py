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


# Weir's threads, in the order JobRunner starts them (sources, then each inbox node).
ROLES = {"w1": ["source", "window", "sink"], "w2": ["source+filter+select", "sink"]}


def _threads(th, w, par):
    """CPU seconds per role. librdkafka's threads are named rdk:*; Weir's own threads
    are unnamed, so they are told apart by creation order: the main thread, the
    run thread of `weir run`, then the job's threads in JobRunner's order."""
    if not th:
        return None
    own = [t for t in th["threads"] if t["name"] == "weir" and t["tid"] != th["pid"]]
    roles = [r for r in ROLES[w] for _ in range(par)]
    jobs = own[-len(roles):]   # the job's threads are the last unnamed ones JobRunner starts
    by = {}
    for t, r in zip(jobs, roles):
        by.setdefault(r, []).append(t["cpuSeconds"])
    rdk = sum(t["cpuSeconds"] for t in th["threads"] if t["name"].startswith("rdk:"))
    rest = th["weirCpuSeconds"] - rdk - sum(sum(v) for v in by.values())
    return {"roles": by, "rdk": rdk, "rest": rest, "total": th["weirCpuSeconds"], "others": th.get("others", {})}


def _other_load(load, own_cpu, sampler=0.0):
    """CPU seconds used during a run by processes other than the measured one, Tansu, MariaDB (and the sampler)."""
    if not load or own_cpu is None:
        return None
    return load["busyCpuSeconds"] - own_cpu - load["tansuCpuSeconds"] - load["mariadbCpuSeconds"] - sampler


NOISE = 0.15   # other processes may use at most this share of one core during a run


def _noisy(run):
    """Whether other processes used more than NOISE of a core during the ceiling or the Weir run."""
    for other, load in ((run["ceilingOther"], run["ceilingLoad"]), (run["other"], run["load"])):
        wall = (load or {}).get("wallSeconds")
        if other is not None and wall and other > max(NOISE * wall, 0.05):
            return True
    return False


def clean(run_dir, tag):
    w, r = tag.rsplit("-", 1)
    run = next((x for x in _runs(run_dir, w) if x["r"] == int(r)), None)
    if run is None:
        return False
    if run["noisy"]:
        print(f"[bench] {tag}: other processes were busy during this pair; it does not count")
    return not run["noisy"]


def _runs(run_dir, w):
    runs = []
    r = 1
    while True:
        tag = f"{w}-{r}"
        stats = _load(os.path.join(run_dir, f"{tag}-stats.json"))
        ceil = _load(os.path.join(run_dir, f"ceiling-{tag}.json"))
        if stats is None and ceil is None:
            break
        tv = _time_v(os.path.join(run_dir, f"{tag}-time.txt"))
        th = _load(os.path.join(run_dir, f"{tag}-threads.json"))
        ct = _load(os.path.join(run_dir, f"ceiling-{tag}-time.json"))
        run = {"r": r, "stats": stats, "ceiling": ceil, "rssMB": tv.get("rssMB"), "cpu": tv.get("cpu"),
               "rate": stats["recordsIn"] / stats["processingSeconds"] if stats else None,
               "ceilingRate": ceil["eventsPerSecond"] if ceil else None, "threads": th,
               "load": _load(os.path.join(run_dir, f"{tag}-load.json")),
               "ceilingLoad": _load(os.path.join(run_dir, f"ceiling-{tag}-load.json")),
               "ceilingCpu": ct["userSeconds"] + ct["systemSeconds"] if ct else None}
        run["other"] = _other_load(run["load"], run["cpu"], th.get("samplerCpuSeconds", 0.0) if th else 0.0)
        run["ceilingOther"] = _other_load(run["ceilingLoad"], run["ceilingCpu"])
        run["noisy"] = _noisy(run)
        runs.append(run)
        r += 1
    return runs


def report(run_dir, out):
    meta = _load(os.path.join(run_dir, "meta.json")) or {}
    mach = _load(os.path.join(run_dir, "machine.json")) or {}
    ver = _load(os.path.join(run_dir, "verify.json")) or {}
    par = meta.get("parallelism", 2)
    rows, checks, detail, cpu, warn = [], [], [], [], []
    for w in ("w1", "w2"):
        runs = _runs(run_dir, w)
        if not runs:
            continue
        counted = [x for x in runs if not x["noisy"]]
        if not counted:
            warn.append(f"- {w.upper()}: every run was disturbed by other processes; all are counted")
            counted = runs
        rates = [x["rate"] for x in counted if x["rate"]]
        ceils = [x["ceilingRate"] for x in counted if x["ceilingRate"]]
        rate = max(rates) if rates else None
        ceil = max(ceils) if ceils else None
        ratio = rate / ceil if rate and ceil else None
        rsss = [x["rssMB"] for x in runs if x["rssMB"]]
        rss = max(rsss) if rsss else None
        best = max((x for x in counted if x["rate"]), key=lambda x: x["rate"], default=None)
        v = ver.get(w)
        rows.append((w.upper(), best, rate, ceil, ratio, rss, v, len(runs)))
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
                if other is not None and wall and other > max(NOISE * wall, 0.05):
                    warn.append(f"- {w.upper()} run {x['r']} ({what}): other processes used {other:.2f} CPU-s "
                                f"during {wall:.2f} s — the machine was not quiet")
        th = _threads(best["threads"] if best else None, w, par)
        if th:
            roles = "; ".join(f"{r} {sum(v):.2f} ({' + '.join(f'{c:.2f}' for c in v)})" for r, v in th["roles"].items())
            oth = ", ".join(f"{k} {v:.2f}" for k, v in th["others"].items())
            cpu.append(f"- {w.upper()} run {best['r']}: Weir {th['total']:.2f} CPU-s = {roles}; librdkafka threads "
                       f"{th['rdk']:.2f}; other Weir threads {th['rest']:.2f}. Meanwhile {oth}.")
    lines = [f"{meta.get('events', 0):,} events in topic `{meta.get('topic', 'events')}` ({meta.get('partitions', 4)} partitions, "
             f"seed {meta.get('seed', 42)}), Weir parallelism {par}. Each workload ran as pairs (ceiling run, then the "
             f"workload) until {meta.get('repeat', 1)} pair{'s' if meta.get('repeat', 1) != 1 else ''} ran undisturbed by other processes; the table shows the best "
             f"ceiling and the best workload run among those. Ceiling = bare librdkafka consumer "
             f"(benchmarks/bare_consume.c, {meta.get('ceilingConsumers', 1)} consumer).", "",
             "| workload | records in | records out | events/s | ceiling events/s | ratio | peak RSS | correct |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, best, rate, ceil, ratio, rss, v, n in rows:
        ok = "-" if v is None else ("PASS" if v["pass"] else "FAIL")
        s = best["stats"] if best else None
        lines.append(f"| {name} | {s['recordsIn']:,} | {s['recordsOut']:,} | {_rate(rate)} | {_rate(ceil)} | "
                     f"{ratio:.1%} | {rss:.0f} MB | {ok} |" if s and ratio is not None and rss is not None
                     else f"| {name} | - | - | - | {_rate(ceil)} | - | - | {ok} |")
    lines.append("")
    if checks:
        lines += ["Targets:"] + [f"- {c}" for c in checks] + [""]
    if ver:
        lines.append(f"Correctness (benchmarks/reference.py over the topic: {ver.get('topicMessages', 0):,} messages, "
                     f"{ver.get('malformed', 0)} malformed; MySQL holds the last run's output):")
        for w in ("w1", "w2"):
            if w in ver:
                v = ver[w]
                lines.append(f"- {w.upper()}: {'PASS' if v['pass'] else 'FAIL'} — {v['actualRows']:,} rows, "
                             f"reference {v['expectedRows']:,}" + (f"; {v['diff']}" if v["diff"] else ""))
        lines.append("")
    if detail:
        lines += ["All runs (events/s = recordsIn / processingSeconds):"] + detail + [""]
    if cpu:
        lines += ["CPU seconds by thread in the best run (sampled from /proc every 0.25 s; Weir's threads "
                  "identified by creation order):"] + cpu + [""]
    if warn:
        lines += ["Load warnings:"] + warn + [""]
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
    p.add_argument("--w1-table"); p.add_argument("--w2-table")
    p = sub.add_parser("machine"); p.add_argument("--mysql-port", type=int, required=True); p.add_argument("--out", required=True)
    p = sub.add_parser("clean"); p.add_argument("--dir", required=True); p.add_argument("--tag", required=True)
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
    elif a.cmd == "clean":
        sys.exit(0 if clean(a.dir, a.tag) else 1)
    elif a.cmd == "report":
        report(a.dir, a.out)
    elif a.cmd == "update-results":
        update_results(a.file)


if __name__ == "__main__":
    main()
