#!/usr/bin/env bash
# Fuzz every target (or the ones named) for SECONDS each, one after the
# other, then print what each did. Not part of CI: 6 targets x 10 minutes.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      # SECONDS defaults to 600
#
# Needs a nightly toolchain and cargo-fuzz; installs nothing itself.
# Seeds: fuzz/seeds/<target>/ (committed). Each run reads them and grows
# fuzz/corpus/<target>/; a crash is written to fuzz/artifacts/<target>/ and
# the full libFuzzer output to fuzz/logs/<target>.log (all three ignored by
# git). Builds go to $CARGO_TARGET_DIR (default fuzz/target), niced.
# Exits 1 when any target crashed (or leaked, ran out of memory or timed
# out), 2 when a tool is missing or the build fails.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${1:-600}
[[ $# -gt 0 ]] && shift
if ! [[ $duration =~ ^[0-9]+$ ]] || [[ $duration -lt 1 ]]; then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]  (SECONDS: a whole number, default 600)" >&2
  exit 2
fi

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz.sh: no nightly toolchain; install it with:" >&2
  echo "  rustup toolchain install nightly --profile minimal" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz.sh: cargo-fuzz is not installed; install it with:" >&2
  echo "  cargo install cargo-fuzz --locked" >&2
  exit 2
fi

target_dir=${CARGO_TARGET_DIR:-fuzz/target}
# The same flags for build and run, or `run` would build again. 16 codegen
# units: the tree (tract, image, SQLite) builds in a fraction of the time on
# two cores, for a few percent of executions per second.
build_flags=(--target-dir "$target_dir" --codegen-units 16)

mapfile -t all_targets < <(cargo +nightly fuzz list)
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  if ! printf '%s\n' "${all_targets[@]}" | grep -qx -- "$t"; then
    echo "fuzz.sh: no target \`$t\`; the targets are: ${all_targets[*]}" >&2
    exit 2
  fi
done

echo "== building ${#targets[@]} target(s) into $target_dir"
if ! nice -n 15 cargo +nightly fuzz build "${build_flags[@]}"; then
  echo "fuzz.sh: the fuzz build failed" >&2
  exit 2
fi

mkdir -p fuzz/logs
stat_of() { # stat name, log file
  sed -n "s/^stat::$1: *//p" "$2" | tail -n 1
}
summary=()
crashed=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  log="fuzz/logs/$t.log"
  before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  echo "== $t: ${duration}s (log: $log)"
  start=$(date +%s)
  status=0
  nice -n 15 cargo +nightly fuzz run "${build_flags[@]}" "$t" \
    "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$duration" -rss_limit_mb=2048 -timeout=25 \
    -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" \
    >"$log" 2>&1 || status=$?
  elapsed=$(($(date +%s) - start))
  after=$(find "fuzz/artifacts/$t" -type f | wc -l)
  found=$((after - before))
  execs=$(stat_of number_of_executed_units "$log")
  rate=$(stat_of average_exec_per_sec "$log")
  rss=$(stat_of peak_rss_mb "$log")
  corpus=$(find "fuzz/corpus/$t" -type f | wc -l)
  if [[ $status -ne 0 || $found -gt 0 ]]; then
    crashed=1
    echo "   FAILED (exit $status, $found new artifact(s)):"
    grep -E '^(==[0-9]+==ERROR|thread .* panicked|SUMMARY|Test unit written)' "$log" | head -n 8 | sed 's/^/   /'
  fi
  summary+=("$(printf '%-15s %12s %9s %6ss %8s %7s %s' "$t" "${execs:-?}" "${rate:-?}" \
    "$elapsed" "${rss:-?}MB" "$corpus" "$found")")
done

echo
printf '%-15s %12s %9s %7s %8s %7s %s\n' target executions exec/s time peak-rss corpus crashes
printf '%s\n' "${summary[@]}"
if [[ $crashed -ne 0 ]]; then
  echo "fuzz.sh: crashes found: reproduce one with" >&2
  echo "  cargo +nightly fuzz run ${build_flags[*]} TARGET fuzz/artifacts/TARGET/FILE" >&2
  exit 1
fi
