#!/usr/bin/env python3
"""Prints criterion's latest results as a Markdown table: benchmark, time, throughput.

Usage: benches/criterion_table.py [CRITERION_DIR] [FILTER]
CRITERION_DIR defaults to $CARGO_TARGET_DIR/criterion or target/criterion; FILTER is a
substring of the benchmark id. Reads the `new/` estimates of every benchmark found (the
last run of each), so run the benches first.
"""
import json
import os
import sys


def fmt_time(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


def fmt_rate(per_s, kind):
    if kind == "Bytes":
        return f"{per_s / 2**30:.2f} GiB/s"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if per_s >= scale:
            return f"{per_s / scale:.2f} {unit}elem/s"
    return f"{per_s:.2f} elem/s"


def main():
    default = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
    root = sys.argv[1] if len(sys.argv) > 1 else default
    needle = sys.argv[2] if len(sys.argv) > 2 else ""
    rows = []
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "estimates.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as f:
            bench = json.load(f)
        with open(os.path.join(dirpath, "estimates.json")) as f:
            est = json.load(f)
        full_id = bench["full_id"]
        if needle not in full_id:
            continue
        ns = est["mean"]["point_estimate"]
        lo = est["mean"]["confidence_interval"]["lower_bound"]
        hi = est["mean"]["confidence_interval"]["upper_bound"]
        rate = ""
        tp = bench.get("throughput")
        if tp:
            (kind, amount), = tp.items()
            rate = fmt_rate(amount / (ns * 1e-9), kind)
            if kind == "Elements" and amount > 1:
                rate += f" ({ns / amount:.1f} ns/elem)"
        rows.append((full_id, f"{fmt_time(ns)} [{fmt_time(lo)}, {fmt_time(hi)}]", rate))
    rows.sort()
    print("| benchmark | mean time [95% CI] | throughput |")
    print("| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
