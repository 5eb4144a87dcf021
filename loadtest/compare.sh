#!/usr/bin/env bash
# Runs the same load scenarios against wsloop and peer echo servers, one server at a time,
# the server pinned to core 0 and the generator to core 1, and prints each figure with its
# ratio to wsloop's.
#
#   loadtest/compare.sh                  # every server found, 10 s per scenario
#   DURATION=3s loadtest/compare.sh      # shorter
#   SERVERS="wsloop fastwebsockets" SCENARIOS="echo-20 idle" loadtest/compare.sh
#
# Peers: tokio-tungstenite and fastwebsockets (built from crates.io by loadtest/peers/, a
# separate Cargo workspace) and Node's ws (when node and npm are installed; ws is installed
# into loadtest/peers/node_modules on first use). Results (JSON per run, summary.tsv) go to
# $OUT (default: a new directory under /tmp). Loopback only; every run stops by itself.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PEERS_TARGET=${PEERS_TARGET_DIR:-$TARGET/peers}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
PORT=${PORT:-9301}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
OPEN_LOOP_RATE=${OPEN_LOOP_RATE:-20k}
SERVERS=${SERVERS:-"wsloop tokio-tungstenite fastwebsockets node-ws"}
SCENARIOS=${SCENARIOS:-"echo-20 echo-1k echo-16k latency-closed latency-open idle"}
OUT=${OUT:-$(mktemp -d /tmp/wsloop-compare.XXXXXX)}
mkdir -p "$OUT"

# Every process here may hold many sockets.
ulimit -n "$(ulimit -Hn)"

echo "building (release)..." >&2
# Other work on the machine takes CPU from the pinned cores: keep its load with the results.
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/load.txt" >&2
(cd "$ROOT" && cargo build --release -q -p wsloop -p loadtest)
cargo build --release -q --manifest-path "$ROOT/loadtest/peers/Cargo.toml" --target-dir "$PEERS_TARGET"
LOAD="$TARGET/release/wsloop-load"

node_ready() {
    command -v node >/dev/null || return 1
    if [ ! -d "$ROOT/loadtest/peers/node_modules/ws" ]; then
        command -v npm >/dev/null || return 1
        npm install --silent --no-audit --no-fund --prefix "$ROOT/loadtest/peers" >&2 || return 1
    fi
}

server_command() {
    local addr="127.0.0.1:$PORT"
    case "$1" in
        wsloop) echo "$TARGET/release/wsloop --listen $addr" ;;
        tokio-tungstenite) echo "$PEERS_TARGET/release/tokio-tungstenite-echo --listen $addr" ;;
        fastwebsockets) echo "$PEERS_TARGET/release/fastwebsockets-echo --listen $addr" ;;
        node-ws) echo "node $ROOT/loadtest/peers/node-ws-echo.js --listen $addr" ;;
        *) echo "unknown server $1" >&2; return 1 ;;
    esac
}

# The generator's arguments for each scenario.
scenario_args() {
    local common=(--url "ws://127.0.0.1:$PORT/" --duration "$DURATION" --quiet)
    case "$1" in
        echo-20) echo echo "${common[@]}" --warmup "$WARMUP" -c 100 --size 20 --depth 16 ;;
        echo-1k) echo echo "${common[@]}" --warmup "$WARMUP" -c 100 --size 1KiB --depth 16 ;;
        echo-16k) echo echo "${common[@]}" --warmup "$WARMUP" -c 100 --size 16KiB --depth 4 ;;
        latency-closed) echo latency "${common[@]}" --warmup "$WARMUP" -c 1000 --size 20 ;;
        latency-open) echo latency "${common[@]}" --warmup "$WARMUP" -c 1000 --size 20 --rate "$OPEN_LOOP_RATE" ;;
        idle) echo idle "${common[@]}" -c "$IDLE_CONNECTIONS" --connect-rate 5000 --ping-interval 2s --source 127.0.0.1-127.0.0.4 ;;
        *) echo "unknown scenario $1" >&2; return 1 ;;
    esac
}

SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
trap stop_server EXIT

# Starts server $1 for scenario $2 and waits for its "listening on" line.
start_server() {
    local log="$OUT/$1.$2.server.log"
    rm -f "$log"
    # shellcheck disable=SC2046
    taskset -c "$SERVER_CPU" $(server_command "$1") >"$log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 100); do
        grep -q "listening on" "$log" 2>/dev/null && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "$1 did not start:" >&2
    cat "$log" >&2
    return 1
}

available=()
for server in $SERVERS; do
    if [ "$server" = node-ws ] && ! node_ready; then
        echo "skipping node-ws: node or npm not installed" >&2
        continue
    fi
    available+=("$server")
done

# Scenario by scenario, every server in turn: when other work on the machine comes and goes,
# the servers compared in one scenario ran under about the same conditions.
for scenario in $SCENARIOS; do
    for server in "${available[@]}"; do
        # A fresh server per scenario: no scenario inherits another's memory or state.
        start_server "$server" "$scenario"
        command="taskset -c $LOAD_CPU $LOAD $(scenario_args "$scenario") --server-pid $SERVER_PID --json $OUT/$server.$scenario.json"
        echo "$server / $scenario: $command" | tee -a "$OUT/commands.txt" >&2
        $command >"$OUT/$server.$scenario.txt" 2>&1 || echo "  (exit $? - see $OUT/$server.$scenario.txt)" >&2
        stop_server
        sleep 1 # let TIME_WAIT sockets and the port settle
    done
done

python3 - "$OUT" "${available[*]}" "$SCENARIOS" <<'PY' | tee "$OUT/summary.tsv"
import json, os, sys
out, servers, scenarios = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
def load(server, scenario):
    try:
        with open(os.path.join(out, f"{server}.{scenario}.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
def figures(r, scenario):
    if r is None:
        return {}
    busy = lambda who: (r.get(who) or {}).get("cores_busy")
    if scenario == "idle":
        idle = r.get("idle") or {}
        return {"bytes/conn": idle.get("bytes_per_connection"), "alive": idle.get("alive_at_end"),
                "server cores": busy("server")}
    lat = r.get("latency_us") or {}
    row = {"msgs/s": r.get("messages_per_sec"), "p50 us": lat.get("p50"), "p99 us": lat.get("p99"),
           "p99.9 us": lat.get("p99_9")}
    if r.get("latency_uncorrected_us"):
        row["uncorrected p99 us"] = r["latency_uncorrected_us"].get("p99")
    if r.get("send_lag_us"):
        # The generator's own lateness: large, and the latencies above are partly its own.
        row["send lag p99 us"] = r["send_lag_us"].get("p99")
    row.update({"errors": r.get("errors_total"), "server cores": busy("server"),
                "generator cores": r["generator"]["cores_busy"],
                "server us CPU/msg": (r.get("server") or {}).get("cpu_us_per_message"),
                "generator us CPU/msg": r["generator"].get("cpu_us_per_message")})
    return row
print("scenario\tfigure\t" + "\t".join(servers) + "\t" + "\t".join(f"{s}/wsloop" for s in servers if s != "wsloop"))
for scenario in scenarios:
    per = {s: figures(load(s, scenario), scenario) for s in servers}
    keys = next((list(f) for f in per.values() if f), [])
    for key in keys:
        vals = [per[s].get(key) for s in servers]
        cells = ["-" if v is None else (f"{v:.3f}" if isinstance(v, float) and v < 10 else f"{v:.0f}" if isinstance(v, float) else str(v)) for v in vals]
        base = per.get("wsloop", {}).get(key)
        ratios = []
        for s in servers:
            if s == "wsloop":
                continue
            v = per[s].get(key)
            ratios.append(f"{v / base:.2f}" if isinstance(v, (int, float)) and isinstance(base, (int, float)) and base else "-")
        print(f"{scenario}\t{key}\t" + "\t".join(cells) + ("\t" + "\t".join(ratios) if ratios else ""))
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/load.txt" >&2
echo "results in $OUT" >&2
