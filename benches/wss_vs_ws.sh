#!/usr/bin/env bash
# wss:// against ws://: the same binary, the same run, interleaved. The server runs one loop
# on CPU 0, the generator one thread on CPU 1 (on 2 cores each side has one; the generator's
# self-check says when it, not the server, was the limit).
#
# Usage: benches/wss_vs_ws.sh [WSLOOP]   (default: this tree's release build)
# Env:   ROUNDS (2), SECONDS_PER_RUN (10)
# Runs, each over ws:// then wss://: 16 B echo pipelined (100 connections, depth 16), 16 KiB
# echo (10 connections, depth 4), 1,000 connections closed loop (latency mode, 16 B), 2,000
# handshakes (connect mode); then RSS per idle connection at 10,000, each on a fresh server.
# The certificate: a throwaway CA and a server certificate it signs (openssl), trusted with --ca.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
rounds="${ROUNDS:-2}"
seconds="${SECONDS_PER_RUN:-10}"
cargo build --release --quiet -p wsloop -p loadtest --bin wsloop --bin wsloop-load
srv="${1:-$target/release/wsloop}"
load="$target/release/wsloop-load"
ulimit -n 20000

dir=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=bench-ca -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
  -keyout "$dir/key.pem" -out "$dir/leaf.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$dir/ext.cnf"
openssl x509 -req -in "$dir/leaf.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 1 -extfile "$dir/ext.cnf" -out "$dir/cert.pem" 2>/dev/null
tls_server=(--tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem")

serve() { # port [flags...]: starts a server on CPU 0, prints its pid
  local port=$1
  shift
  taskset -c 0 "$srv" --listen "127.0.0.1:$port" --threads 1 --log-level warn \
    --max-connections 15000 "$@" >"$dir/server-$port.log" 2>&1 &
  echo $!
}
run() { # name scheme port mode-args...
  local name=$1 scheme=$2 port=$3
  shift 3
  local trust=()
  [ "$scheme" = ws ] || trust=(--ca "$dir/ca.pem")
  echo "== $name $scheme"
  taskset -c 1 "$load" "$@" --url "$scheme://127.0.0.1:$port/" "${trust[@]}" -q 2>&1 |
    grep -E 'throughput|latency |handshakes/s|errors|server RSS|warning'
}

ws_pid=$(serve 9401)
wss_pid=$(serve 9402 "${tls_server[@]}")
pids+=("$ws_pid" "$wss_pid")
sleep 1
for round in $(seq "$rounds"); do
  for scheme in ws wss; do
    port=9401
    [ "$scheme" = ws ] || port=9402
    run "echo 16 B, round $round" "$scheme" $port echo -c 100 --depth 16 --size 16 -d "${seconds}s"
    run "echo 16 KiB, round $round" "$scheme" $port echo -c 10 --depth 4 --size 16KiB -d "${seconds}s"
    run "closed loop 1000, round $round" "$scheme" $port latency -c 1000 --size 16 -d "${seconds}s"
    run "connect 2000, round $round" "$scheme" $port connect -c 2000
  done
done
kill "$ws_pid" "$wss_pid"
for scheme in ws wss; do
  flags=()
  [ "$scheme" = ws ] || flags=("${tls_server[@]}")
  pid=$(serve 9403 "${flags[@]}")
  pids+=("$pid")
  sleep 1
  run "idle 10000 (fresh server)" "$scheme" 9403 idle -c 10000 -d 3s --server-pid "$pid"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
done
