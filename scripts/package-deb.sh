#!/usr/bin/env bash
# Build a .deb of Marquee for one architecture, with dpkg-deb only (no
# debhelper, no cargo-deb): the binary, the shipped model, the systemd unit
# and its sysusers/tmpfiles snippets, a default /etc/marquee/marquee.toml
# (a conffile) and the board profiles for reference.
#
#   scripts/package-deb.sh --target aarch64-unknown-linux-gnu      # marquee_0.1.0_arm64.deb
#   scripts/package-deb.sh --target armv7-unknown-linux-gnueabihf  # ..._armhf.deb
#   scripts/package-deb.sh                                          # host (amd64), release
#   scripts/package-deb.sh --profile dev --binary target/debug/marquee --fast --out /tmp
#
# Options:
#   --target TRIPLE   Rust target (default: the host's, x86_64-unknown-linux-gnu)
#   --profile P       release (default) or dev: which build to take
#   --build           run `cargo build` for it first (default: use what is built)
#   --binary PATH     take this binary instead of target/[TRIPLE/]<profile>/marquee
#   --out DIR         where the .deb goes (default: target/debian)
#   --fast            gzip -1 instead of xz (for tests; a bigger file)
#
# Prints the path of the .deb on the last line of stdout.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
target=""
profile=release
build=0
binary=""
out="$here/target/debian"
compress=(-Zxz)

while [ $# -gt 0 ]; do
  case "$1" in
    --target) target=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --build) build=1; shift ;;
    --binary) binary=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --fast) compress=(-Zgzip -z1); shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

host=$(rustc -vV 2>/dev/null | sed -n 's/^host: //p' || true)
target=${target:-${host:-x86_64-unknown-linux-gnu}}
case "$target" in
  x86_64-unknown-linux-gnu) arch=amd64; tool_prefix="" ;;
  aarch64-unknown-linux-gnu) arch=arm64; tool_prefix=aarch64-linux-gnu- ;;
  armv7-unknown-linux-gnueabihf) arch=armhf; tool_prefix=arm-linux-gnueabihf- ;;
  *) echo "error: no Debian architecture known for $target" >&2; exit 2 ;;
esac
case "$profile" in
  release) profile_dir=release ;;
  dev) profile_dir=debug ;;
  *) echo "error: --profile is release or dev" >&2; exit 2 ;;
esac

if [ "$build" = 1 ]; then
  # With the onnxruntime runtime: it opens libonnxruntime.so only when the
  # config asks for it (backend = "auto"/"onnxruntime"), so the package runs
  # as tract-only where the board has no onnxruntime (docs/onnxruntime.md).
  (cd "$here" && cargo build --locked --profile "$profile" --target "$target" --features onnxruntime)
fi
if [ -z "$binary" ]; then
  binary="$here/target/$target/$profile_dir/marquee"
  # A host build without --target lands in target/<profile>/.
  if [ ! -x "$binary" ] && [ "$target" = "$host" ]; then
    binary="$here/target/$profile_dir/marquee"
  fi
fi
if [ ! -x "$binary" ]; then
  echo "error: $binary not found; build it (cargo build --profile $profile --target $target) or pass --build" >&2
  exit 2
fi

strip_tool="${tool_prefix}strip"
command -v "$strip_tool" >/dev/null 2>&1 || strip_tool=""
if [ -z "$strip_tool" ] && [ -z "$tool_prefix" ]; then
  echo "error: strip not found (apt-get install binutils)" >&2
  exit 2
elif [ -z "$strip_tool" ]; then
  echo "error: ${tool_prefix}strip not found (apt-get install binutils-${tool_prefix%-})" >&2
  exit 2
fi

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/Cargo.toml" | head -n1)
name=marquee
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/${name}_${version}_${arch}"

# --- files ---------------------------------------------------------------
install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/share/marquee/models" \
  "$root/usr/share/marquee/firmware-config" "$root/usr/lib/systemd/system" \
  "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" "$root/etc/marquee" \
  "$root/usr/share/doc/marquee"

install -m 0755 "$binary" "$root/usr/bin/marquee"
"$strip_tool" --strip-unneeded "$root/usr/bin/marquee"

# The model exactly as shipped: manifest.json names every file by sha256.
for f in "$here"/models/*; do
  install -m 0644 "$f" "$root/usr/share/marquee/models/"
done
# The binary has the profiles compiled in (--board NAME, or detected from
# /proc/device-tree/model); these copies are for reading and diffing.
for f in "$here"/firmware-config/*.toml; do
  install -m 0644 "$f" "$root/usr/share/marquee/firmware-config/"
done

install -m 0644 "$here/systemd/marquee.service" "$root/usr/lib/systemd/system/marquee.service"
install -m 0644 "$here/systemd/marquee.sysusers" "$root/usr/lib/sysusers.d/marquee.conf"
install -m 0644 "$here/systemd/marquee.tmpfiles" "$root/usr/lib/tmpfiles.d/marquee.conf"

# /etc/marquee/marquee.toml: systemd/marquee.toml plus where the packaged
# model lives (the binary's own search would try the build machine's
# checkout first; see docs/packaging.md).
{
  cat "$here/systemd/marquee.toml"
  cat <<'EOF'

[inference]
# The packaged model (installed by the marquee package).
model_dir = "/usr/share/marquee/models"
EOF
} >"$root/etc/marquee/marquee.toml"
chmod 0644 "$root/etc/marquee/marquee.toml"
if grep -q '^\[inference\]' "$here/systemd/marquee.toml"; then
  echo "error: systemd/marquee.toml now has an [inference] table; merge model_dir into it in $0" >&2
  exit 1
fi

cat >"$root/usr/share/doc/marquee/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: marquee
License: Apache-2.0

Files: *
License: Apache-2.0
 On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.

Files: usr/share/marquee/models/*
License: Apache-2.0
 EfficientNet-Lite0 weights, exported and quantised by tools/ in the source
 tree; provenance in usr/share/marquee/models/manifest.json.
EOF

# --- control -------------------------------------------------------------
# The newest glibc symbol version the binary needs: the oldest libc6 it runs on.
readelf_tool="${tool_prefix}readelf"
command -v "$readelf_tool" >/dev/null 2>&1 || readelf_tool=readelf
glibc=$("$readelf_tool" -W --dyn-syms "$root/usr/bin/marquee" |
  grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -u -V | tail -n1)
needed=$("$readelf_tool" -d "$root/usr/bin/marquee" | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' ')
for lib in $needed; do
  case "$lib" in
    libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|libgcc_s.so.1|ld-linux*) ;;
    *) echo "error: the binary links $lib, which this script does not map to a package" >&2; exit 1 ;;
  esac
done
depends="libc6 (>= ${glibc})"
case " $needed " in *" libgcc_s.so.1 "*) depends="$depends, libgcc-s1 | libgcc1" ;; esac

installed_kb=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: $arch
Maintainer: Marquee maintainers <marquee@localhost>
Installed-Size: $installed_kb
Depends: $depends
Suggests: mosquitto
Section: misc
Priority: optional
Description: edge daemon that tags movie posters with their genres
 Marquee takes movie posters from a camera, an HTTP upload, an MQTT message
 or a watched folder, tags each with its genres (a quantised EfficientNet-Lite0
 run by tract on the CPU, plus a calibrated genre head), publishes the tags
 over MQTT, keeps the history in SQLite and serves a small dashboard.
 Built for Jetson and other ARM boards; runs on any Linux machine.
EOF
echo "/etc/marquee/marquee.toml" >"$root/DEBIAN/conffiles"

# Maintainer scripts: what dh_installsystemd/dh_installsysusers would
# generate, plus fallbacks for machines where systemd is not PID 1
# (containers, chroots): the user and directories are made all the same,
# the unit is enabled for the next boot, nothing is started.
cat >"$root/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e

make_user() {
  if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers /usr/lib/sysusers.d/marquee.conf
  else
    getent group marquee >/dev/null || groupadd --system marquee
    getent passwd marquee >/dev/null || useradd --system --gid marquee \
      --home-dir /var/lib/marquee --no-create-home --shell /usr/sbin/nologin \
      --comment "Marquee poster tagger" marquee
    if getent group video >/dev/null; then usermod -a -G video marquee; fi
  fi
}

make_dirs() {
  if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create /usr/lib/tmpfiles.d/marquee.conf
  else
    install -d -o marquee -g marquee -m 0750 /var/lib/marquee
    install -d -o marquee -g marquee -m 2770 /var/lib/marquee/inbox
  fi
}

case "$1" in
  configure)
    make_user
    make_dirs
    ;;
esac

if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] || [ "$1" = abort-remove ]; then
  if command -v deb-systemd-helper >/dev/null 2>&1; then
    # Removes only a mask left by a plain remove.
    deb-systemd-helper unmask marquee.service >/dev/null || true
    # was-enabled is true on a first install: enable; on upgrade keep the
    # admin's choice.
    if deb-systemd-helper --quiet was-enabled marquee.service; then
      deb-systemd-helper enable marquee.service >/dev/null || true
    else
      deb-systemd-helper update-state marquee.service >/dev/null || true
    fi
  fi
  if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
    if [ -n "$2" ]; then action=restart; else action=start; fi
    deb-systemd-invoke "$action" marquee.service >/dev/null || true
  else
    echo "marquee: systemd is not running here; the unit is enabled for the next boot." >&2
    echo "marquee: to run it now: runuser -u marquee -- /usr/bin/marquee serve --config /etc/marquee/marquee.toml" >&2
  fi
fi
exit 0
EOF

cat >"$root/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  deb-systemd-invoke stop marquee.service >/dev/null || true
fi
exit 0
EOF

cat >"$root/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
  systemctl --system daemon-reload >/dev/null || true
fi
case "$1" in
  remove)
    # Keep the state (database, inbox) and the config; only disable the unit.
    if command -v deb-systemd-helper >/dev/null 2>&1; then
      deb-systemd-helper mask marquee.service >/dev/null || true
    fi
    ;;
  purge)
    if command -v deb-systemd-helper >/dev/null 2>&1; then
      deb-systemd-helper purge marquee.service >/dev/null || true
      deb-systemd-helper unmask marquee.service >/dev/null || true
    fi
    # The history, outbox and inbox go with a purge. The system user stays
    # (Debian policy: files it owned may still exist elsewhere).
    rm -rf /var/lib/marquee
    rmdir --ignore-fail-on-non-empty /etc/marquee 2>/dev/null || true
    ;;
esac
exit 0
EOF
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

# --- build ---------------------------------------------------------------
mkdir -p "$out"
deb="$out/${name}_${version}_${arch}.deb"
dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$deb" >/dev/null
echo "$deb"
