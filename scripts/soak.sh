#!/usr/bin/env bash
# Soak test: the release server under mixed load with random disconnects for a bounded time,
# then checks that nothing crashed, nothing leaked and nothing was lost.
#
#   scripts/soak.sh                    # 10 minutes (SOAK_SECONDS=600)
#   SOAK_SECONDS=60 scripts/soak.sh    # the short run for CI
#
# Load, all at once, each in a loop until the time is up (wsloop-load, loopback only):
#   - echo runs: 40 connections, 8 in flight each, binary or text, sizes from 32 B to 300 KiB
#     (larger than the server's read buffer, so messages span reads), every echo checked;
#   - connect churn: 300 connections opened at 500/s and closed, again and again;
#   - idle runs: 1000 connections held with pings every 5 s, each must answer at the end;
#   - broadcast runs: 30 subscribers of a /chat/ROOM room, 2 publishers, 300 messages/s;
#   - random disconnects: echo runs killed with SIGKILL after 1-6 s (every socket reset,
#     mid-frame or mid-handshake), again and again.
# The server's resident memory and open descriptors are sampled every SOAK_SAMPLE seconds.
#
# Checks at the end (exit 1 if any fails):
#   - the server is still running, and exits 0 on SIGTERM;
#   - every completed run: every connection attempted was opened, zero payload mismatches,
#     zero errors; idle runs: every connection answered its last ping;
#   - every connection accounted for: the server's descriptors return to their count before
#     the first client, within 15 s of the last client's end;
#   - RSS levelled off: the highest RSS of the second half of the run, and the RSS once every
#     client is gone, are within SOAK_RSS_MARGIN_PCT percent (default 20) plus
#     SOAK_RSS_SLACK_MIB (default 16) of the highest RSS of the first half after warm-up
#     (the first 20% of the run).
#
# Output: $SOAK_OUT (default target/soak/): summary.txt, rss.csv (seconds, RSS KiB, fds,
# connections), the server's log and every run's JSON report. Everything runs at nice 19.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${SOAK_SECONDS:-600}"
port="${SOAK_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
sample_every="${SOAK_SAMPLE:-5}"
margin_pct="${SOAK_RSS_MARGIN_PCT:-20}"
slack_mib="${SOAK_RSS_SLACK_MIB:-16}"
seed="${SOAK_SEED:-6}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
out="${SOAK_OUT:-$target_dir/soak}"
nice="nice -n 19"

rm -rf "$out"
mkdir -p "$out/runs"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "==> building release binaries"
$nice cargo build --release --quiet -p wsloop --bin wsloop
$nice cargo build --release --quiet -p loadtest --bin wsloop-load
server_bin="$target_dir/release/wsloop"
load_bin="$target_dir/release/wsloop-load"
url="ws://127.0.0.1:$port"

$nice "$server_bin" --listen "127.0.0.1:$port" --log-level warn --close-timeout 2s \
  --idle-timeout 60s >"$out/server.log" 2>&1 &
server_pid=$!
cleanup() { # this script's own background jobs, by pid; a run still going ends by itself
  kill -KILL "$server_pid" 2>/dev/null || true
  for job in $(jobs -p); do kill -KILL "$job" 2>/dev/null || true; done
}
trap cleanup EXIT
for _ in $(seq 100); do
  grep -q "listening on" "$out/server.log" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q "listening on" "$out/server.log"; then
  echo "the server did not start:" >&2
  cat "$out/server.log" >&2
  exit 1
fi

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$server_pid/status" 2>/dev/null || echo 0; }
fds() { { find "/proc/$server_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null || true; } | wc -l; }
base_fds="$(fds)"
base_rss="$(rss_kib)"
start_s="$(date +%s)"
deadline=$((start_s + seconds))
echo "==> server pid $server_pid on $url: RSS ${base_rss} KiB, $base_fds descriptors; running ${seconds}s"

# Every loop starts runs until the deadline, each run short enough to end soon after it.
remaining() { echo $((deadline - $(date +%s))); }

run_load() { # name mode args...: one run with a JSON report; its exit status is recorded
  local name="$1"
  shift
  local json="$out/runs/$name.json"
  local status=0
  $nice "$load_bin" "$@" --url "${URL_OVERRIDE:-$url}" --quiet --timeout 10s --json "$json" \
    >"$out/runs/$name.txt" 2>&1 || status=$?
  echo "$status" >"$out/runs/$name.status"
}

echo_loop() {
  RANDOM=$((seed * 11))
  local sizes=(32 1KiB 16KiB 64KiB 300KiB) i=0
  while [ "$(remaining)" -gt 5 ]; do
    local d=$(( $(remaining) < 15 ? $(remaining) : 15 ))
    local size=${sizes[$((RANDOM % ${#sizes[@]}))]}
    local text=()
    if [ $((RANDOM % 2)) -eq 0 ] && [ "$size" != 300KiB ]; then text=(--text); fi
    run_load "echo-$i" echo --connections 40 --depth 8 --size "$size" "${text[@]}" \
      --duration "${d}s" --warmup 0s
    i=$((i + 1))
  done
}

churn_loop() {
  local i=0
  while [ "$(remaining)" -gt 5 ]; do
    run_load "connect-$i" connect --connections 300 --connect-rate 500 --duration 5s
    i=$((i + 1))
  done
}

idle_loop() {
  local i=0
  while [ "$(remaining)" -gt 25 ]; do
    run_load "idle-$i" idle --connections 1000 --duration 20s --ping-interval 5s
    i=$((i + 1))
  done
}

broadcast_loop() {
  local i=0
  while [ "$(remaining)" -gt 5 ]; do
    local d=$(( $(remaining) < 15 ? $(remaining) : 15 ))
    URL_OVERRIDE="$url/chat/soak-$i" run_load "broadcast-$i" broadcast --connections 30 \
      --publishers 2 --rate 300 --size 256 --duration "${d}s" --warmup 0s
    i=$((i + 1))
  done
}

killer_loop() { # random disconnects: runs killed mid-flight, no report expected
  RANDOM=$((seed * 17))
  local i=0 sizes=(32 4KiB 100KiB 300KiB)
  while [ "$(remaining)" -gt 8 ]; do
    $nice "$load_bin" echo --url "$url" --connections 30 --depth 4 \
      --size "${sizes[$((RANDOM % ${#sizes[@]}))]}" --duration 60s --quiet \
      >/dev/null 2>&1 &
    local pid=$!
    sleep "$((1 + RANDOM % 6)).$((RANDOM % 10))"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    i=$((i + 1))
    echo "$i" >"$out/runs/killed.count"
  done
}

sampler() {
  echo "seconds,rss_kib,fds,connections" >"$out/rss.csv"
  while kill -0 "$server_pid" 2>/dev/null; do
    local f
    f="$(fds)"
    echo "$(( $(date +%s) - start_s )),$(rss_kib),$f,$((f - base_fds))" >>"$out/rss.csv"
    sleep "$sample_every"
  done
}

sampler &
sampler_pid=$!
loops=()
echo_loop & loops+=($!)
churn_loop & loops+=($!)
idle_loop & loops+=($!)
broadcast_loop & loops+=($!)
killer_loop & loops+=($!)
for pid in "${loops[@]}"; do
  wait "$pid" || true
done
end_load_s=$(( $(date +%s) - start_s ))
echo "==> load ended after ${end_load_s}s; waiting for the server to release every connection"

status=0
released=no
for _ in $(seq 150); do
  if [ "$(fds)" -le "$base_fds" ]; then released=yes; break; fi
  sleep 0.1
done
sleep "$sample_every"
end_rss="$(rss_kib)"
end_fds="$(fds)"
echo "$(( $(date +%s) - start_s )),$end_rss,$end_fds,$((end_fds - base_fds))" >>"$out/rss.csv"
kill "$sampler_pid" 2>/dev/null || true

alive=yes
kill -0 "$server_pid" 2>/dev/null || alive=no
exit_code=none
if [ "$alive" = yes ]; then
  kill -TERM "$server_pid"
  exit_code=0
  wait "$server_pid" || exit_code=$?
fi

python3 - "$out" "$seconds" "$base_rss" "$end_rss" "$base_fds" "$end_fds" "$released" \
  "$alive" "$exit_code" "$margin_pct" "$slack_mib" <<'EOF' || status=1
import csv, glob, json, os, statistics, sys

(out, seconds, base_rss, end_rss, base_fds, end_fds, released, alive, exit_code,
 margin_pct, slack_mib) = sys.argv[1:]
seconds, base_rss, end_rss = int(seconds), int(base_rss), int(end_rss)
margin_pct, slack_mib = float(margin_pct), float(slack_mib)
failures = []
lines = []

runs = {"echo": [], "connect": [], "idle": [], "broadcast": []}
for path in sorted(glob.glob(os.path.join(out, "runs", "*.status"))):
    name = os.path.basename(path)[: -len(".status")]
    kind = name.split("-")[0]
    status = int(open(path).read().strip() or 1)
    report = None
    json_path = os.path.join(out, "runs", name + ".json")
    if os.path.exists(json_path):
        report = json.load(open(json_path))
    runs[kind].append((name, status, report))
    if report is None:
        failures.append(f"{name}: no report (exit {status})")
        continue
    if status != 0:
        failures.append(f"{name}: exit {status}")
    if report["connections_opened"] != report["connections"]:
        failures.append(f"{name}: opened {report['connections_opened']} of {report['connections']}")
    if report["payload_mismatches"]:
        failures.append(f"{name}: {report['payload_mismatches']} payload mismatches")
    if report["errors_total"]:
        failures.append(f"{name}: errors {report['errors']}")
    idle = report.get("idle")
    if idle and idle["alive_at_end"] != report["connections"]:
        failures.append(f"{name}: {idle['alive_at_end']} of {report['connections']} alive at the end")

killed = 0
killed_path = os.path.join(out, "runs", "killed.count")
if os.path.exists(killed_path):
    killed = int(open(killed_path).read().strip() or 0)

def total(kind, key):
    return sum((r or {}).get(key) or 0 for _, _, r in runs[kind])

lines.append(f"duration: {seconds} s of load")
for kind in runs:
    n = len(runs[kind])
    opened = total(kind, "connections_opened")
    if kind in ("echo", "broadcast"):
        extra = f", {total(kind, 'messages_received')} messages received"
    elif kind == "idle":
        extra = f", {sum((r or {}).get('idle', {}).get('pongs', 0) for _, _, r in runs[kind])} pongs"
    else:
        extra = ""
    lines.append(f"{kind}: {n} runs, {opened} connections opened{extra}")
lines.append(f"random disconnects: {killed} echo runs of 30 connections killed with SIGKILL")
mismatches = sum(total(k, "payload_mismatches") for k in runs)
errors = sum(total(k, "errors_total") for k in runs)
lines.append(f"payload mismatches: {mismatches}; errors in completed runs: {errors}")

samples = []
with open(os.path.join(out, "rss.csv")) as f:
    for row in csv.DictReader(f):
        samples.append((int(row["seconds"]), int(row["rss_kib"]), int(row["connections"])))
load = [s for s in samples if s[0] <= seconds]
warm = [s for s in load if s[0] >= 0.2 * seconds]
first = [s[1] for s in warm if s[0] < 0.5 * seconds]
second = [s[1] for s in warm if s[0] >= 0.5 * seconds]
mib = lambda kib: kib / 1024
lines.append(f"RSS before the first client: {mib(base_rss):.1f} MiB; after the last: {mib(end_rss):.1f} MiB")
if first and second:
    level = max(first)
    ceiling = level * (1 + margin_pct / 100) + slack_mib * 1024
    quarters = []
    for q in range(4):
        part = [s[1] for s in load if q * seconds / 4 <= s[0] < (q + 1) * seconds / 4]
        if part:
            quarters.append(f"Q{q + 1} {mib(min(part)):.1f}/{mib(statistics.median(part)):.1f}/{mib(max(part)):.1f}")
    lines.append("RSS min/median/max by quarter (MiB): " + ", ".join(quarters))
    lines.append(
        f"RSS level (max of 20-50%): {mib(level):.1f} MiB; second half max {mib(max(second)):.1f} MiB; "
        f"allowed {mib(ceiling):.1f} MiB ({margin_pct:g}% + {slack_mib:g} MiB)"
    )
    if max(second) > ceiling:
        failures.append(f"RSS kept growing: {mib(max(second)):.1f} MiB in the second half > {mib(ceiling):.1f} MiB")
    if end_rss > ceiling:
        failures.append(f"RSS after the last client {mib(end_rss):.1f} MiB > {mib(ceiling):.1f} MiB")
else:
    failures.append("too few RSS samples")
peak = max((s[2] for s in samples), default=0)
lines.append(f"connections held at most: {peak}; descriptors {base_fds} before, {end_fds} after (released: {released})")
if released != "yes":
    failures.append(f"connections not released: {int(end_fds) - int(base_fds)} descriptors over the baseline")
lines.append(f"server alive at the end: {alive}; exit status on SIGTERM: {exit_code}")
if alive != "yes":
    failures.append("the server died")
elif exit_code != "0":
    failures.append(f"the server exited with {exit_code} on SIGTERM")

lines.append("result: " + ("PASS" if not failures else "FAIL"))
lines += ["  - " + f for f in failures]
text = "\n".join(lines) + "\n"
open(os.path.join(out, "summary.txt"), "w").write(text)
print(text, end="")
sys.exit(1 if failures else 0)
EOF
if [ "$status" -ne 0 ]; then
  echo "==> soak FAILED; server log: $out/server.log" >&2
  tail -n 20 "$out/server.log" >&2 || true
fi
exit "$status"
