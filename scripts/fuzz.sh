#!/usr/bin/env bash
# Runs every fuzz target one after the other, each for a bounded time, at the lowest CPU
# priority, and prints one summary line per target (executions, corpus, crashes).
#
#   scripts/fuzz.sh                 # every target, FUZZ_SECONDS (default 300) each
#   FUZZ_SECONDS=60 scripts/fuzz.sh session inflate
#
# Needs cargo-fuzz and a nightly toolchain (for -Zsanitizer=address). New inputs go to
# fuzz/work/<target>/ (ignored by git); the committed seeds in fuzz/corpus/<target>/ are
# only read. Crashes land in fuzz/artifacts/<target>/. Build products go to
# $FUZZ_TARGET_DIR (default fuzz/target).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
seconds="${FUZZ_SECONDS:-300}"
target_dir="${FUZZ_TARGET_DIR:-$root/fuzz/target}"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(session inflate handshake frame_header mask_differential url)
fi

max_len() {
  case "$1" in
    frame_header) echo 64 ;;
    session) echo 16384 ;;
    *) echo 8192 ;;
  esac
}

nice -n 19 cargo +nightly fuzz build --target-dir "$target_dir" >/dev/null
status=0
for target in "${targets[@]}"; do
  work="fuzz/work/$target"
  mkdir -p "$work" "fuzz/artifacts/$target"
  log="fuzz/work/$target.log"
  set +e
  nice -n 19 cargo +nightly fuzz run --target-dir "$target_dir" "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  runs="$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' || echo '?')"
  cov="$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1 || true)"
  corpus="$(find "$work" -type f | wc -l)"
  crashes="$(find "fuzz/artifacts/$target" -type f | wc -l)"
  printf '%-18s %4ss  exit %-3s  executions %-10s  %-20s  corpus %-6s  crashes %s\n' \
    "$target" "$seconds" "$rc" "$runs" "$cov" "$corpus" "$crashes"
  [ "$rc" -eq 0 ] || status=1
done
exit "$status"
