#!/usr/bin/env bash
# Every core, side by side in one run (BENCHMARKS.md, Every core):
#   echo    20 B messages, 100 connections, depth 16: --threads 1 (and OTHER, another build
#           such as the previous commit's, for the same figure before the change), then
#           --threads 2
#   fanout  10,000 subscribers of one /chat room, 1 KiB published 100 times a second:
#           --threads 1 and --threads 2
# Each run prints wsloop-load's throughput, delivery and CPU lines; the figure to compare is
# the server's CPU per message (or per delivery), since on a small machine the generator
# competes with the server for the same cores. The "on one CPU" runs put all the loops on
# the one-loop server's CPU, away from the generator: the same work as --threads 1 plus
# what crossing loops costs, without the cost of sharing cores with the generator.
#
# Usage: benches/cores.sh [echo|fanout|all] [OTHER_WSLOOP]
# Env:   ONE_LOOP_CPU (0), GENERATOR_CPU (1): where the one-loop server and the generator run
#        ALL_CPUS (0-1): where a --threads 2 server and its generator run
#        THREADS (2): loops of the multi-loop runs; ROUNDS (2): repetitions
# On a larger machine, e.g. 16 cores: THREADS=8 ALL_CPUS=0-7 GENERATOR_CPU=8-15, and
# wsloop-load -t 8 (LOAD_THREADS=8) so the generator is not the bottleneck.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
which="${1:-all}"
other="${2:-}"
one="${ONE_LOOP_CPU:-0}"
gen="${GENERATOR_CPU:-1}"
all="${ALL_CPUS:-0-1}"
threads="${THREADS:-2}"
rounds="${ROUNDS:-2}"
load_threads="${LOAD_THREADS:-1}"
port=9811

cargo build --release --quiet -p wsloop -p loadtest --bin wsloop --bin wsloop-load
wsloop="$target/release/wsloop"
load="$target/release/wsloop-load"

# run LABEL SERVER_CPUS GENERATOR_CPUS BINARY SERVER_ARGS -- LOAD_ARGS
run() {
  local label="$1" server_cpus="$2" gen_cpus="$3" bin="$4"
  shift 4
  local server_args=()
  while [ "$1" != "--" ]; do server_args+=("$1"); shift; done
  shift
  port=$((port + 1))
  taskset -c "$server_cpus" "$bin" --listen "127.0.0.1:$port" --log-level warn "${server_args[@]}" >/dev/null &
  local pid=$!
  trap 'kill "$pid" 2>/dev/null || true' EXIT
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.05
  done
  echo "## $label ($(date -u +%H:%M:%S) UTC, server on CPUs $server_cpus, generator on $gen_cpus)"
  taskset -c "$gen_cpus" "$load" "$@" --url "ws://127.0.0.1:$port/${path:-}" -q -t "$load_threads" \
    --server-pid "$pid" | grep -E 'throughput|deliver|messages|server  |generator|errors'
  kill "$pid"
  wait "$pid" || true
  trap - EXIT
}

echo_args=(echo -c 100 -d 6s --warmup 1s --size 20 --depth 16)
fanout_args=(broadcast -c 10000 --publishers 1 --rate 100 -d 10s --warmup 2s --size 1KiB
  --connect-rate 5000)

for round in $(seq "$rounds"); do
  if [ "$which" = echo ] || [ "$which" = all ]; then
    path=""
    if [ -n "$other" ]; then
      run "echo, $other (round $round)" "$one" "$gen" "$other" -- "${echo_args[@]}"
    fi
    run "echo, --threads 1 (round $round)" "$one" "$gen" "$wsloop" --threads 1 -- "${echo_args[@]}"
    run "echo, --threads $threads (round $round)" "$all" "$all" "$wsloop" --threads "$threads" -- "${echo_args[@]}"
    run "echo, --threads $threads on one CPU (round $round)" "$one" "$gen" "$wsloop" --threads "$threads" -- "${echo_args[@]}"
  fi
  if [ "$which" = fanout ] || [ "$which" = all ]; then
    path="chat/bench"
    run "fanout, --threads 1 (round $round)" "$one" "$gen" "$wsloop" --threads 1 -- "${fanout_args[@]}"
    run "fanout, --threads $threads (round $round)" "$all" "$all" "$wsloop" --threads "$threads" -- "${fanout_args[@]}"
    run "fanout, --threads $threads on one CPU (round $round)" "$one" "$gen" "$wsloop" --threads "$threads" -- "${fanout_args[@]}"
  fi
done
