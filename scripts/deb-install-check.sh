#!/usr/bin/env bash
# Install a Marquee .deb on THIS machine, run the daemon as its unit would,
# classify a poster (HTTP answer and the MQTT event), then remove and purge
# the package, printing what is left at each step.
#
#   sudo scripts/deb-install-check.sh target/debian/marquee_0.1.0_amd64.deb [--drop-user]
#
# Changes the system: meant for a throwaway machine, a container or a board
# being commissioned; it refuses to run if marquee is already installed.
# Where systemd is PID 1 the unit itself is started (systemctl); elsewhere
# (containers) the unit's ExecStart runs under the unit's User=, Group=,
# SupplementaryGroups=, WorkingDirectory=, UMask= and the environment systemd
# would give it. A private Mosquitto on a free loopback port stands in for
# the broker and the HTTP listener moves to a free loopback port, both
# through MARQUEE__* variables, as a `systemctl edit` drop-in would set them.
# --drop-user also deletes the marquee user at the end (purge keeps it).
set -euo pipefail

deb=${1:?usage: $0 PACKAGE.deb [--drop-user]}
drop_user=0
[ "${2:-}" = --drop-user ] && drop_user=1
here=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "error: run as root" >&2; exit 2; }
if dpkg-query -W -f='${Status}' marquee 2>/dev/null | grep -q installed; then
  echo "error: marquee is already installed here; this check wants a clean machine" >&2
  exit 2
fi
for tool in curl mosquitto mosquitto_sub python3 setpriv; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] ||
    { echo "error: $tool not found (apt-get install curl mosquitto mosquitto-clients python3 util-linux)" >&2; exit 2; }
done
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
section() { echo; echo "=== $*"; }

section "dpkg -i $(basename "$deb") ($(du -h "$deb" | cut -f1))"
dpkg -i "$deb"

section "what the install made"
id marquee
ls -ld /var/lib/marquee /var/lib/marquee/inbox /etc/marquee /etc/marquee/marquee.toml
ls -l /etc/systemd/system/multi-user.target.wants/marquee.service 2>/dev/null ||
  echo "(unit not enabled)"
dpkg -L marquee | grep -v '/$' | sed 's/^/  /' | head -n 40

broker_port=$(free_port)
http_port=$(free_port)
cat >"$work/mosquitto.conf" <<EOF
listener $broker_port 127.0.0.1
allow_anonymous true
persistence false
EOF
"$mosquitto_bin" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!)

unit=/usr/lib/systemd/system/marquee.service
exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
section "start (ExecStart=$exec_start)"
overrides=(MARQUEE__HTTP__LISTEN="127.0.0.1:$http_port" MARQUEE__MQTT__URL="mqtt://127.0.0.1:$broker_port")
if [ -d /run/systemd/system ]; then
  mkdir -p /run/systemd/system/marquee.service.d
  { echo "[Service]"; for o in "${overrides[@]}"; do echo "Environment=$o"; done; } \
    >/run/systemd/system/marquee.service.d/check.conf
  systemctl daemon-reload
  systemctl restart marquee
  started_with=systemd
else
  user=$(sed -n 's/^User=//p' "$unit")
  group=$(sed -n 's/^Group=//p' "$unit")
  groups=$(sed -n 's/^SupplementaryGroups=//p' "$unit")
  umask_=$(sed -n 's/^UMask=//p' "$unit")
  home=$(getent passwd "$user" | cut -d: -f6)
  # shellcheck disable=SC2086
  (cd /var/lib/marquee && umask "$umask_" &&
    exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin LANG=C.UTF-8 \
      HOME="$home" USER="$user" LOGNAME="$user" SHELL=/usr/sbin/nologin \
      STATE_DIRECTORY=/var/lib/marquee CONFIGURATION_DIRECTORY=/etc/marquee \
      "${overrides[@]}" \
      setpriv --reuid="$user" --regid="$group" --groups="$group,${groups// /,}" \
      --no-new-privs --inh-caps=-all --bounding-set=-all \
      $exec_start) >"$work/daemon.log" 2>&1 &
  daemon=$!
  pids+=($daemon)
  started_with="setpriv (pid $daemon; systemd is not PID 1 here: $(ps -p 1 -o comm=))"
fi
echo "started with $started_with"
for _ in $(seq 1 300); do
  curl -sf "http://127.0.0.1:$http_port/readyz" >"$work/readyz" 2>/dev/null && break
  sleep 0.2
done
echo "/readyz: $(cat "$work/readyz")"
ps -o user,group,supgrp,pid,args -C marquee || true

section "classify a poster"
poster=$(ls "$here"/../shared/data/posters/*.jpg 2>/dev/null | head -n1 || true)
poster=${poster:-$here/tests/fixtures/drawn-224x320.png}
mosquitto_sub -h 127.0.0.1 -p "$broker_port" -t 'marquee/+/poster' -C 1 -W 60 >"$work/event" &
sub=$!
sleep 0.5
code=$(curl -s -o "$work/answer" -w '%{http_code}' --data-binary "@$poster" \
  "http://127.0.0.1:$http_port/api/v1/posters")
echo "POST /api/v1/posters $(basename "$poster"): HTTP $code"
python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print("  top3:", ", ".join("%s %.2f" % (g["label"], g["score"]) for g in e["top3"]), "| tags:", e["tags"])' "$work/answer" || cat "$work/answer"
wait "$sub" || true
echo "MQTT event on marquee/<device>/poster: $(python3 -c 'import json,sys; e=json.load(open(sys.argv[1])); print({k: e[k] for k in ("id","source","tags") if k in e})' "$work/event" 2>/dev/null || echo none)"
ls -l /var/lib/marquee

section "stop"
if [ "$started_with" = systemd ]; then
  systemctl stop marquee
  rm -rf /run/systemd/system/marquee.service.d
else
  kill -TERM "$daemon"
  rc=0; wait "$daemon" || rc=$?
  echo "daemon exit status after SIGTERM: $rc"
  tail -n 3 "$work/daemon.log"
fi

section "dpkg -r marquee (remove: state and config stay)"
dpkg -r marquee
echo "package: $(dpkg-query -W -f='${Status}' marquee)"
ls -ld /usr/bin/marquee 2>&1 || true
ls -la /var/lib/marquee /etc/marquee

section "dpkg -P marquee (purge)"
dpkg -P marquee
echo "package: $(dpkg-query -W -f='${Status}' marquee 2>&1 || true)"
ls -ld /var/lib/marquee /etc/marquee 2>&1 || true
if id marquee >/dev/null 2>&1; then
  echo "user marquee still exists (Debian keeps system users on purge)"
  if [ "$drop_user" = 1 ]; then userdel marquee && echo "user marquee deleted (--drop-user)"; fi
fi
