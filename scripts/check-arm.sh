#!/usr/bin/env bash
# The ARM builds checked under emulation (qemu-user), against the x86 build
# and the onnxruntime reference outputs.
#
#   scripts/check-arm.sh                       # arm64 + armv7, release builds, fixture + daemon
#   scripts/check-arm.sh --posters 12          # also 12 real posters from ../shared/data/posters
#   scripts/check-arm.sh --ci                  # arm64 only, dev build (built here), one CPU model
#
# Needs (Debian): gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf qemu-user,
# `rustup target add aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf`,
# python3 and curl; .cargo/config.toml names the cross linkers.
#
# For each target and each emulated CPU:
#  1. backbone features of tests/fixtures/drawn-224x320.png, f32 and int8,
#     against tests/fixtures/reference-outputs.json with its tolerance_hint
#     (what tests/backbone_reference.rs checks on x86; `marquee eval` writes
#     the features to its cache, which scripts/arm_compare.py reads);
#  2. `marquee classify --format jsonl` genre scores against the x86 binary's;
#  3. with --posters N: the same two comparisons on N real posters;
#  4. once per target: the daemon (`serve`, temp store, MQTT pointed at a port
#     nothing listens on) answers /readyz and classifies an upload.
#
# The emulated CPUs matter: tract picks its kernels from the CPU it sees
# (getauxval HWCAP bits, /proc/cpuinfo). qemu 7.2 shows the *host's*
# /proc/cpuinfo, and its default `max` CPU has SVE, which no supported board
# has. So arm64 runs as a Cortex-A72 (Pi 4; the Jetson Nano's A57 is the
# same ARMv8.0 NEON ISA) with TRACT_CPU_AARCH64_KIND=a72, and as a
# Cortex-A76 (Pi 5; the Orin's A78AE is ARMv8.2 like it: NEON + dotprod);
# armv7 as a Cortex-A15 with TRACT_CPU_ARM32_NEON=true (a Pi's
# /proc/cpuinfo says neon; the host's does not).
#
# Options:
#   --target aarch64|armv7|all   (default all)
#   --profile release|dev        (default release)
#   --build                      cargo build the ARM binaries (and the host one if missing)
#   --posters N                  also compare N posters from ../shared/data/posters (default 0)
#   --cpus "a b"                 arm64 CPU models (default "cortex-a72 cortex-a76")
#   --host-binary PATH           the x86 binary to compare with (default target/<profile>/marquee)
#   --binary PATH                the ARM binary (with --target aarch64 or armv7; default
#                                target/<triple>/<profile>/marquee)
#   --ci                         --target aarch64 --profile dev --build --cpus cortex-a72
#   --keep                       keep the work folder
#
# Exit status 0 only if every check passed. Prints a summary at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
targets=all
profile=release
build=0
posters=0
cpus64="cortex-a72 cortex-a76"
host_bin=""
arm_bin=""
keep=0
ci=0
while [ $# -gt 0 ]; do
  case "$1" in
    --target) targets=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --build) build=1; shift ;;
    --posters) posters=$2; shift 2 ;;
    --cpus) cpus64=$2; shift 2 ;;
    --host-binary) host_bin=$2; shift 2 ;;
    --binary) arm_bin=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --ci) ci=1; targets=aarch64; profile=dev; build=1; cpus64=cortex-a72; shift ;;
    -h|--help) sed -n '2,46p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$targets" in
  all) targets="aarch64 armv7" ;;
  aarch64|armv7) ;;
  *) echo "error: --target aarch64, armv7 or all" >&2; exit 2 ;;
esac
if [ -n "$arm_bin" ] && [ "$targets" = "aarch64 armv7" ]; then
  echo "error: --binary needs --target aarch64 or --target armv7" >&2; exit 2
fi
case "$profile" in release) pdir=release ;; dev) pdir=debug ;; *) echo "error: --profile release|dev" >&2; exit 2 ;; esac

for tool in qemu-aarch64 qemu-arm python3 curl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool not found (apt-get install qemu-user python3 curl)" >&2; exit 2; }
done

triple() { case "$1" in aarch64) echo aarch64-unknown-linux-gnu ;; armv7) echo armv7-unknown-linux-gnueabihf ;; esac; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

summary=()
failed=0
note() { summary+=("$*"); echo "== $*"; }
fail() { summary+=("FAIL: $*"); echo "FAIL: $*" >&2; failed=1; }

if [ "$build" = 1 ]; then
  for t in $targets; do
    t0=$(now)
    cargo build --locked --profile "$profile" --target "$(triple "$t")" --bin marquee
    note "build $t $profile: $(since "$t0") s"
  done
fi
host_bin=${host_bin:-target/$pdir/marquee}
if [ ! -x "$host_bin" ]; then
  if [ "$build" = 1 ]; then
    t0=$(now)
    cargo build --locked --profile "$profile" --bin marquee
    note "build host $profile: $(since "$t0") s"
  else
    echo "error: no host binary $host_bin (cargo build --profile $profile, or --host-binary PATH, or --build)" >&2
    exit 2
  fi
fi

work=$(mktemp -d)
daemon_pid=""
cleanup() {
  if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then kill "$daemon_pid" 2>/dev/null || true; fi
  if [ "$keep" = 1 ]; then echo "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'echo "check-arm: a command failed at line $LINENO (classify stderr, last lines:)" >&2; tail -n 5 "$work/classify.log" >&2 2>/dev/null || true' ERR

fixture=tests/fixtures/drawn-224x320.png
reference=tests/fixtures/reference-outputs.json
# `marquee eval` reads `<id>.jpg` files named in a CSV (any image format
# inside: the decoder goes by the bytes), and caches each poster's features.
mkdir -p "$work/fixture"
ln -s "$here/$fixture" "$work/fixture/drawn.jpg"
printf 'id,genres\ndrawn,Drama\n' >"$work/fixture.csv"
if [ "$posters" -gt 0 ]; then
  data=../shared/data
  [ -f "$data/posters.csv" ] || { echo "error: --posters needs $data/posters.csv beside the project" >&2; exit 2; }
  mkdir -p "$work/posters"
  # The first N listed posters whose image is there: a fixed, reproducible set.
  python3 - "$data" "$work" "$posters" <<'EOF'
import os, sys
data, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = open(f"{data}/posters.csv").read().splitlines()
out = ["id,genres"]
for line in lines[1:]:
    pid = line.split(",", 1)[0]
    img = os.path.realpath(f"{data}/posters/{pid}.jpg")
    if os.path.isfile(img):
        os.symlink(img, f"{work}/posters/{pid}.jpg")
        out.append(line)
    if len(out) > n:
        break
open(f"{work}/posters.csv", "w").write("\n".join(out) + "\n")
EOF
fi

# Features of a poster set into a cache folder: `eval --include-seen` over
# the set (its figures are beside the point; only the cache is read).
features() { # runner... -- csv images cache variant
  local runner=()
  while [ "$1" != -- ]; do runner+=("$1"); shift; done
  shift
  "${runner[@]}" eval --include-seen --data "$1" --images "$2" --cache "$3" --variant "$4" \
    --threads 1 >"$3.log" 2>&1 || true
  ls "$3"/*.bin >/dev/null 2>&1 || { cat "$3.log" >&2; return 1; }
}

# The host's side, once.
for v in f32 int8; do
  features "$host_bin" -- "$work/fixture.csv" "$work/fixture" "$work/host-fixture-$v" "$v"
  python3 scripts/arm_compare.py reference "$work/host-fixture-$v" "$reference" "$v" >/dev/null ||
    fail "host $v fixture features outside the reference tolerance (tract on x86 itself)"
  "$host_bin" classify --format jsonl --variant "$v" "$fixture" >"$work/host-fixture-$v.jsonl" 2>>"$work/classify.log"
  if [ "$posters" -gt 0 ]; then
    features "$host_bin" -- "$work/posters.csv" "$work/posters" "$work/host-posters-$v" "$v"
    "$host_bin" classify --format jsonl --variant "$v" "$work/posters" >"$work/host-posters-$v.jsonl" 2>>"$work/classify.log"
  fi
done

# Genre scores may move by this much between x86 and ARM (features within
# the reference tolerance still move the calibrated scores a little; see
# docs/boards.md for the measured figures).
score_tol_f32=0.001
score_tol_int8=0.02

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

daemon_check() { # label board runner...
  local label=$1 board=$2; shift 2
  local dir="$work/daemon-$label"
  mkdir -p "$dir"
  local dead_port; dead_port=$(free_port)
  local t0; t0=$(now)
  # Env as a board would set it: profile threads overridden to 1 (2 shared
  # cores here), no Home Assistant discovery; a broker port nobody serves:
  # results wait in the outbox, which is the documented behaviour.
  MARQUEE__INFERENCE__THREADS=1 MARQUEE__MQTT__DISCOVERY=false \
    MARQUEE__MQTT__URL="mqtt://127.0.0.1:$dead_port" \
    "$@" serve --board "$board" --listen 127.0.0.1:0 --db "$dir/marquee.db" --ready-file "$dir/ready" \
    >"$dir/log" 2>&1 &
  daemon_pid=$!
  local waited=0
  while [ ! -s "$dir/ready" ]; do
    if ! kill -0 "$daemon_pid" 2>/dev/null; then cat "$dir/log" >&2; fail "$label daemon exited before ready"; daemon_pid=""; return; fi
    [ $waited -ge 1800 ] && { fail "$label daemon not ready in 180 s"; kill "$daemon_pid"; daemon_pid=""; return; }
    sleep 0.1; waited=$((waited + 1))
  done
  local ready_s; ready_s=$(since "$t0")
  local addr; addr=$(cat "$dir/ready")
  local code
  code=$(curl -s -o "$dir/readyz.json" -w '%{http_code}' "http://$addr/readyz")
  if [ "$code" != 200 ] || ! grep -q '"ready":true' "$dir/readyz.json"; then
    fail "$label /readyz answered $code: $(cat "$dir/readyz.json")"
  fi
  local t1; t1=$(now)
  code=$(curl -s -o "$dir/upload.json" -w '%{http_code}' -H 'Content-Type: image/png' \
    --data-binary "@$fixture" "http://$addr/api/v1/posters")
  local upload_s; upload_s=$(since "$t1")
  local genres
  genres=$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print(len(e["genres"]), e["top3"][0]["label"])' "$dir/upload.json" 2>/dev/null || echo "?")
  if [ "$code" != 200 ] || [ "${genres%% *}" != 19 ]; then
    fail "$label upload answered $code: $(head -c 300 "$dir/upload.json")"
  fi
  kill -TERM "$daemon_pid"
  local rc=0
  wait "$daemon_pid" || rc=$?
  daemon_pid=""
  [ "$rc" = 0 ] || fail "$label daemon exit status $rc after SIGTERM"
  note "$label daemon (--board $board): ready in ${ready_s} s, /readyz 200, upload $code in ${upload_s} s (19 genres: ${genres%% *}, top-1 ${genres#* }), SIGTERM exit $rc"
}

for t in $targets; do
  tr=$(triple "$t")
  bin=${arm_bin:-target/$tr/$pdir/marquee}
  [ -x "$bin" ] || { echo "error: $bin not built (cargo build --profile $profile --target $tr, or --build)" >&2; exit 2; }
  if [ "$t" = aarch64 ]; then
    cpus=$cpus64
  else
    cpus=cortex-a15
  fi
  first=1
  for cpu in $cpus; do
    label="$t/$cpu"
    if [ "$t" = aarch64 ]; then
      runner=(qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu "$cpu")
      case "$cpu" in cortex-a72|cortex-a57) export TRACT_CPU_AARCH64_KIND=a72 ;; *) unset TRACT_CPU_AARCH64_KIND ;; esac
    else
      runner=(qemu-arm -L /usr/arm-linux-gnueabihf -cpu "$cpu")
      export TRACT_CPU_ARM32_NEON=true
    fi
    for v in f32 int8; do
      t0=$(now)
      if features "${runner[@]}" "$bin" -- "$work/fixture.csv" "$work/fixture" "$work/$t-$cpu-fixture-$v" "$v"; then
        line=$(python3 scripts/arm_compare.py reference "$work/$t-$cpu-fixture-$v" "$reference" "$v") || fail "$label $line"
        pair=$(python3 scripts/arm_compare.py features "$work/$t-$cpu-fixture-$v" "$work/host-fixture-$v")
        note "$label fixture vs onnxruntime reference: $line; vs x86 tract: $pair ($(since "$t0") s)"
      else
        fail "$label $v: eval wrote no features"
      fi
      t0=$(now)
      "${runner[@]}" "$bin" classify --format jsonl --variant "$v" "$fixture" >"$work/$t-$cpu-fixture-$v.jsonl" 2>>"$work/classify.log"
      tol_var=score_tol_$v
      line=$(python3 scripts/arm_compare.py genres "$work/$t-$cpu-fixture-$v.jsonl" "$work/host-fixture-$v.jsonl" "${!tol_var}") ||
        fail "$label $v fixture genres: $line"
      note "$label $v fixture genres vs x86: $line (classify $(since "$t0") s)"
      if [ "$posters" -gt 0 ]; then
        t0=$(now)
        features "${runner[@]}" "$bin" -- "$work/posters.csv" "$work/posters" "$work/$t-$cpu-posters-$v" "$v" ||
          fail "$label $v posters: eval wrote no features"
        pair=$(python3 scripts/arm_compare.py features "$work/$t-$cpu-posters-$v" "$work/host-posters-$v")
        "${runner[@]}" "$bin" classify --format jsonl --variant "$v" "$work/posters" >"$work/$t-$cpu-posters-$v.jsonl" 2>>"$work/classify.log"
        line=$(python3 scripts/arm_compare.py genres "$work/$t-$cpu-posters-$v.jsonl" "$work/host-posters-$v.jsonl")
        note "$label $v $posters posters vs x86: features $pair; genres $line ($(since "$t0") s)"
      fi
    done
    if [ "$first" = 1 ]; then
      # Under qemu-user there is no device tree: name the board whose
      # profile this target is for (its threads are overridden to 1 above).
      if [ "$t" = aarch64 ]; then board=jetson-orin-nano; else board=rpi4; fi
      daemon_check "$label" "$board" "${runner[@]}" "$bin"
      first=0
    fi
    unset TRACT_CPU_AARCH64_KIND TRACT_CPU_ARM32_NEON
  done
done

echo
echo "summary ($(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)):"
printf '  %s\n' "${summary[@]}"
if [ "$failed" = 0 ]; then echo "check-arm: all checks passed"; else echo "check-arm: FAILED"; fi
exit "$failed"
