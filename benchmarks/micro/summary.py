"""Prints the allocations and wall clock per batch of a stored micro-benchmark
baseline (benchmarks/micro/.benchmarkBaselines/*/BASELINE/results.json), one
line per benchmark. `swift package benchmark baseline read BASELINE` prints the
same as tables, at the cost of another plugin run (about 30 s here).

    python3 summary.py [BASELINE]     (default: micro; run in benchmarks/micro)
"""
import glob
import json
import sys


def percentile(h, pct):
    """HdrHistogram's valueAtPercentile over a stored (uncompressed) histogram."""
    mag, unit, total = h["subBucketHalfCountMagnitude"], h["unitMagnitude"], h["_totalCount"]
    half, want, seen = 1 << mag, max(1, int(pct / 100 * total + 0.5)), 0
    for i, c in enumerate(h["counts"]):
        seen += c
        if seen >= want:
            bucket, sub = (i >> mag) - 1, (i & (half - 1)) + half
            if bucket < 0:
                bucket, sub = 0, sub - half
            # The highest value the bucket stands for, but no more than was recorded (as the tool prints).
            return min((sub << (bucket + unit)) + (1 << (bucket + unit)) - 1, h["maxValue"])
    return 0


def main():
    baseline = sys.argv[1] if len(sys.argv) > 1 else "micro"
    rows = []
    for path in glob.glob(f".benchmarkBaselines/*/{baseline}/results.json"):
        results = json.load(open(path))["results"]  # [identifier, [metric result, ...], identifier, ...]
        for ident, metrics in zip(results[0::2], results[1::2]):
            m = {next(iter(r["metric"])): r["statistics"]["histogram"] for r in metrics}
            rows.append((ident["name"], percentile(m["mallocCountTotal"], 90),
                         percentile(m["wallClock"], 50) / 1000, percentile(m["wallClock"], 90) / 1000))
    if not rows:
        sys.exit(f"no baseline '{baseline}'")
    print("%-44s %12s   %s" % ("per batch", "allocations", "wall clock p50 / p90 (µs)"))
    for name, mallocs, p50, p90 in sorted(rows):
        print("%-44s %12d   %8.0f / %6.0f" % (name, mallocs, p50, p90))


main()
