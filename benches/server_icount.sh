#!/usr/bin/env bash
# Instructions the whole server spends per echoed message, counted by callgrind: the event
# loop, the protocol, the handler, the counters, everything in user space (the kernel's
# side of each syscall is not counted). No clock, so two builds compare exactly on a busy
# machine where CPU-time figures move by more than the difference being looked for (what
# metrics cost per message, for one: BENCHMARKS.md, Metrics).
#
# Usage: benches/server_icount.sh [WSLOOP ...]   (default: this tree's release build)
# Env:   SECONDS_PER_RUN (5), CONNECTIONS (10), DEPTH (16), SIZE (20),
#        SERVER_ARGS (more flags for every server, e.g. "--access-log"),
#        TLS=1 (wss://: a throwaway CA and certificate from openssl, trusted with --ca)
# For each binary: starts it with --threads 1 under callgrind, zeroes the counters (so
# start-up is not counted), runs wsloop-load's echo, dumps the counters when it stops, and
# prints instructions per message echoed (its ten handshakes and closes are counted too:
# a few hundred thousand instructions next to the messages' hundreds of millions).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
seconds="${SECONDS_PER_RUN:-5}"
connections="${CONNECTIONS:-10}"
depth="${DEPTH:-16}"
size="${SIZE:-20}"
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

cargo build --release --quiet -p wsloop -p loadtest --bin wsloop --bin wsloop-load
load="$target/release/wsloop-load"
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=("$target/release/wsloop")

out=$(mktemp -d)
pid=""
trap 'rm -rf "$out"; [ -z "$pid" ] || kill "$pid" 2>/dev/null || true' EXIT
scheme=ws
tls_server=()
trust=()
if [ "${TLS:-0}" = 1 ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=bench-ca -keyout "$out/ca.key" -out "$out/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=localhost \
    -keyout "$out/key.pem" -out "$out/leaf.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$out/ext.cnf"
  openssl x509 -req -in "$out/leaf.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
    -CAcreateserial -days 1 -extfile "$out/ext.cnf" -out "$out/cert.pem" 2>/dev/null
  scheme=wss
  tls_server=(--tls-cert "$out/cert.pem" --tls-key "$out/key.pem")
  trust=(--ca "$out/ca.pem")
fi
port=9870
printf '%-50s %12s %16s %12s\n' binary messages instructions "Ir/message"
for bin in "${binaries[@]}"; do
  port=$((port + 1))
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.%p" \
    "$bin" --listen "127.0.0.1:$port" --threads 1 --log-level error "${tls_server[@]}" ${SERVER_ARGS:-} \
    >/dev/null 2>"$out/valgrind.log" &
  pid=$!
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  callgrind_control --zero "$pid" >/dev/null 2>&1
  "$load" echo -c "$connections" -d "${seconds}s" --warmup 0s --size "$size" --depth "$depth" \
    --url "$scheme://127.0.0.1:$port/" "${trust[@]}" -q --json "$out/report.json" >/dev/null
  callgrind_control --dump "$pid" >/dev/null 2>&1
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  messages=$(python3 -c "import json; print(json.load(open('$out/report.json'))['messages_received'])")
  # The dump taken on request (part 2; part 1 is the exit's) holds the window since the zero.
  dump=$(ls "$out"/cg.*.1 2>/dev/null | head -1)
  instructions=$(grep -m1 '^summary:' "$dump" | awk '{print $2}')
  printf '%-50s %12s %16s %12.1f\n' "$bin" "$messages" "$instructions" \
    "$(python3 -c "print($instructions / max($messages, 1))")"
  rm -f "$out"/cg.*
done
