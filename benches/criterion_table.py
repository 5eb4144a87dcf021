#!/usr/bin/env python3
"""Prints criterion's latest results as a Markdown table: benchmark, time, throughput.

Usage: benches/criterion_table.py [--mask-ratios] [CRITERION_DIR] [FILTER]
CRITERION_DIR defaults to $CARGO_TARGET_DIR/criterion or target/criterion; FILTER is a
substring of the benchmark id. Reads the `new/` estimates of every benchmark found (the
last run of each), so run the benches first.

--mask-ratios prints instead, for the `mask` and `mask_offsets` groups, the throughput of
apply_mask divided by that of the XOR-with-a-constant loop on the same size and offset, from
the same run.
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


def mean_ns(root, group, function, param):
    path = os.path.join(root, group, function, param, "new", "estimates.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)["mean"]["point_estimate"]


def mask_ratios(root):
    """apply_mask throughput / xor_const throughput = xor_const time / apply_mask time."""
    print("| size | offset | phase | apply_mask | xor_const | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    mask_dir = os.path.join(root, "mask", "apply_mask")
    sizes = sorted(int(d) for d in os.listdir(mask_dir)) if os.path.isdir(mask_dir) else []
    for size in sizes:
        mine = mean_ns(root, "mask", "apply_mask", str(size))
        base = mean_ns(root, "mask", "xor_const", str(size))
        if mine and base:
            print(f"| {size} | 0 | 0 | {size / mine / 1.073741824:.1f} GiB/s "
                  f"| {size / base / 1.073741824:.1f} GiB/s | {base / mine:.2f} |")
    for size in (4096, 65536):
        for offset in range(4):
            base = mean_ns(root, "mask_offsets", "xor_const", f"{size}_off{offset}")
            for phase in (0, 3):
                mine = mean_ns(root, "mask_offsets", "apply_mask", f"{size}_off{offset}_phase{phase}")
                if mine and base:
                    print(f"| {size} | {offset} | {phase} | {size / mine / 1.073741824:.1f} GiB/s "
                          f"| {size / base / 1.073741824:.1f} GiB/s | {base / mine:.2f} |")


def main():
    args = sys.argv[1:]
    ratios = "--mask-ratios" in args
    args = [a for a in args if a != "--mask-ratios"]
    default = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
    root = args[0] if args else default
    needle = args[1] if len(args) > 1 else ""
    if ratios:
        mask_ratios(root)
        return
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
