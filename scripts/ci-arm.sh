#!/usr/bin/env bash
# The ARM part of CI, kept apart from .ci/run so it can be wired in (or not)
# on its own: installs what it needs, then `scripts/check-arm.sh --ci`
# (arm64 dev-profile cross build, the drawn fixture's features against the
# onnxruntime reference for f32 and int8, genre scores against the x86
# build, and the daemon under qemu: /readyz + one upload).
#
#   scripts/ci-arm.sh
#
# Cost on the 2-core build machine: see docs/boards.md ("CI cost"). Reuses
# target/debug/marquee when CI has built it already (cargo build), else
# builds it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never

need=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi

# No debug info in the cross-built dev binary: nobody debugs it, and full
# debuginfo for every dependency is a large share of a dev build's CPU time.
# (Its artifacts get their own hashes: the host's dev build is untouched.)
export CARGO_PROFILE_DEV_DEBUG=0

start=$(date +%s)
scripts/check-arm.sh --ci
echo "ci-arm: $(( $(date +%s) - start )) s"
