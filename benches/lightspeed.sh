#!/usr/bin/env bash
# wsloop against the speed of light: ../shared/limit/lightspeed.c, a C echo server that
# validates nothing (no UTF-8, no limits, no close handshake), so no conforming server can be
# faster. Same run, same generator, same pinning, interleaved rounds: each server runs on
# CPU 0, the generator one thread on CPU 1.
#
# Usage: benches/lightspeed.sh [WSLOOP]   (default: this tree's release build)
# Env:   ROUNDS (3), SECONDS_PER_RUN (10), LIMIT_DIR (../shared/limit)
# Prints, per workload and server, messages/s and the server's CPU time per echoed message
# (from /proc/PID/stat over the run, wsloop-load --server-pid), then wsloop / lightspeed for
# both. The CPU figure is the fair one when the generator, not the server, is the limit
# (its self-check says so in each run's warnings). Needs cc and libssl-dev for lightspeed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
rounds="${ROUNDS:-3}"
seconds="${SECONDS_PER_RUN:-10}"
limit="${LIMIT_DIR:-$root/../shared/limit}"
cargo build --release --quiet -p wsloop -p loadtest --bin wsloop --bin wsloop-load
srv="${1:-$target/release/wsloop}"
load="$target/release/wsloop-load"
light="$target/lightspeed"
cc -O3 -march=native -o "$light" "$limit/lightspeed.c" -lcrypto
ulimit -n 20000

dir=$(mktemp -d)
pid=""
trap '[ -z "$pid" ] || kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

# name port: starts server `name` on CPU 0 and sets `pid`.
serve() {
  local name=$1 port=$2
  if [ "$name" = wsloop ]; then
    taskset -c 0 "$srv" --listen "127.0.0.1:$port" --threads 1 --log-level warn >"$dir/$name.log" 2>&1 &
  else
    PORT=$port taskset -c 0 "$light" "$port" >"$dir/$name.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return
    sleep 0.05
  done
  echo "$name did not start listening on $port" >&2
  exit 1
}

# workload name port mode-args...: one run, summarized from its JSON report.
run() {
  local workload=$1 name=$2 port=$3
  shift 3
  taskset -c 1 "$load" "$@" --url "ws://127.0.0.1:$port/" -d "${seconds}s" -q \
    --server-pid "$pid" --json "$dir/report.json" >/dev/null
  python3 - "$workload" "$name" "$dir/report.json" <<'EOF' | tee -a "$dir/results.tsv"
import json, sys
workload, name, path = sys.argv[1:]
r = json.load(open(path))
s = r["server"]
print(f"{workload}\t{name}\t{r['messages_per_sec']:.0f}\t{s['cpu_us_per_message']:.3f}\t"
      f"{r['latency_us']['p99']}\t{r['errors_total']}\t{int(r['generator']['saturated'])}")
EOF
}

printf 'workload\tserver\tmsg/s\tserver_cpu_us/msg\tp99_us\terrors\tgenerator_saturated\n'
port=9450
for round in $(seq "$rounds"); do
  for name in wsloop lightspeed; do
    port=$((port + 1))
    serve "$name" "$port"
    run "echo 16 B x100 depth 16" "$name" "$port" echo -c 100 --depth 16 --size 16
    run "echo 16 KiB x10 depth 4" "$name" "$port" echo -c 10 --depth 4 --size 16KiB
    run "closed loop 16 B x1000" "$name" "$port" latency -c 1000 --size 16
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
  done
done

echo
echo "wsloop / lightspeed (means over $rounds rounds):"
python3 - "$dir/results.tsv" <<'EOF'
import sys
from collections import defaultdict
rate, cpu = defaultdict(list), defaultdict(list)
for line in open(sys.argv[1]):
    workload, name, mps, us, *_ = line.rstrip("\n").split("\t")
    rate[(workload, name)].append(float(mps))
    cpu[(workload, name)].append(float(us))
mean = lambda xs: sum(xs) / len(xs)
for workload in dict.fromkeys(w for w, _ in rate):
    r = mean(rate[(workload, "wsloop")]) / mean(rate[(workload, "lightspeed")])
    w_cpu, l_cpu = mean(cpu[(workload, "wsloop")]), mean(cpu[(workload, "lightspeed")])
    c = w_cpu / l_cpu if l_cpu else float("nan")
    print(f"  {workload}: throughput {r:.2f}, server CPU per message {c:.2f} "
          f"({w_cpu:.3f} / {l_cpu:.3f} us)")
EOF
