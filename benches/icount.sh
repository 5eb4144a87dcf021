#!/usr/bin/env bash
# Instruction counts of the frame hot path under callgrind: no clock, so the figure is the
# same on every run of the same binary, however busy the machine is.
#
# Usage: benches/icount.sh [ROUNDS] [MIX HANDLER]   (honours CARGO_TARGET_DIR)
#   ROUNDS   passes over the frame buffer (default 200)
#   MIX      mix | text16          (default: both)
#   HANDLER  deliver | echo        (default: both)
#
# Builds benches/icount.rs in the bench profile and runs it under
# `valgrind --tool=callgrind --toggle-collect=*wsloop_icount_pass*`, so only the measured pass
# (parse + unmask + UTF-8 + delivery through Session::poll) is counted, not the setup, and
# prints instructions per message and per payload byte. Set KEEP=DIR to keep the callgrind
# output files there for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds="${1:-200}"
if [ $# -ge 3 ]; then
    cases=("$2 $3")
else
    cases=("text16 deliver" "text16 echo" "mix deliver" "mix echo")
fi
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }

bin=$(cargo bench --bench icount --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "icount" and msg.get("executable"):
        print(msg["executable"])
')
[ -n "$bin" ] || { echo "could not build the icount bench (run: cargo bench --bench icount --no-run)" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "binary: $bin"
echo "valgrind: $(valgrind --version), rounds: $rounds"
printf '%-7s %-8s %9s %14s %14s %12s\n' mix handler messages payload_bytes instructions "Ir/message"
for case in "${cases[@]}"; do
    read -r mix handler <<<"$case"
    file="$out/callgrind.$mix.$handler.out"
    valgrind --tool=callgrind --callgrind-out-file="$file" \
        --toggle-collect='*wsloop_icount_pass*' "$bin" "$rounds" "$mix" "$handler" \
        >"$out/stdout" 2>"$out/stderr" || { cat "$out/stderr" >&2; exit 1; }
    # The driver prints: mix=X handler=H rounds=R messages=M payload_bytes=P wire_bytes=W
    read -r _ _ _ messages payload _ < <(sed 's/[a-z_0-9]*=//g' "$out/stdout")
    instructions=$(awk '/^(summary|totals):/ { print $2; exit }' "$file")
    [ -n "$instructions" ] && [ "$instructions" -gt 0 ] ||
        { echo "callgrind counted nothing: was wsloop_icount_pass inlined?" >&2; exit 1; }
    awk -v mix="$mix" -v h="$handler" -v i="$instructions" -v m="$messages" -v p="$payload" 'BEGIN {
        printf "%-7s %-8s %9d %14d %14d %12.1f\n", mix, h, m, p, i, i / m
    }'
    if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$file" "$KEEP/"; fi
done
