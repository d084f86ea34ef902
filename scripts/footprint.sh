#!/usr/bin/env bash
# Measures Spool's footprint on this machine (issue 7's targets), for a
# release build: the stripped arm64 binary's size and what takes it, idle
# RSS after start-up with a 1 GiB data directory of 4 topics, start-up time
# after a clean stop and after SIGKILL, and bytes written and CPU used while
# idle, and write amplification under steady MQTT ingest (bytes written to
# disk per payload byte), into a fresh data directory with default settings
# and at a topic's retention limit, where segment files are recycled. Not
# part of CI (it writes 1 GiB and idles for a minute):
#
#   scripts/footprint.sh             # IDLE=60 seconds of idling
#   IDLE=10 GIB=0.25 scripts/footprint.sh
#
# Needs kcat (to fill the data directory over the Kafka listener),
# mosquitto_pub (the ingest), and the
# binaries of scripts/build.sh (built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"
IDLE="${IDLE:-60}"
GIB="${GIB:-1}"
[ -x dist/spool-linux-amd64 ] && [ -x dist/spool-linux-arm64 ] || scripts/build.sh arm64 amd64
bin="$PWD/dist/spool-linux-amd64"
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
data="$work/data"

echo "== binary size (stripped, CGO_ENABLED=0)"
for t in armv6 armv7 arm64 amd64; do
  [ -f "dist/spool-linux-$t" ] && awk -v t="$t" -v b="$(stat -c %s "dist/spool-linux-$t")" \
    'BEGIN { printf "  spool-linux-%-6s %6.2f MiB (%d bytes)\n", t, b / 1048576, b }'
done
echo "  arm64 sections in the file:"
readelf -SW dist/spool-linux-arm64 | python3 -c '
import sys
for l in sys.stdin:
    p = l.replace("[ ", "[").split()
    if len(p) > 6 and p[1].startswith(".") and "bss" not in p[1] and int(p[5], 16) > 1 << 16:
        print(f"    {p[1]:14s} {int(p[5], 16) / 1048576:6.2f} MiB")'
echo "  arm64 code (.text) by module, from an unstripped build (go tool nm -size):"
CGO_ENABLED=0 GOOS=linux GOARCH=arm64 GOFLAGS= go build -trimpath -o "$work/spool-syms" ./cmd/spool
go tool nm -size "$work/spool-syms" | python3 -c '
import sys, collections
size = collections.Counter()
for l in sys.stdin:
    p = l.split(None, 3)
    if len(p) < 4 or p[2] not in "Tt":
        continue
    name = p[3].strip()
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    parts = (name[:dot] if dot > 0 else name).split("/")
    size["/".join(parts[:3]) if "." in parts[0] else "std:" + parts[0]] += int(p[1])
for m, n in size.most_common(12):
    print(f"    {n / 1048576:6.2f} MiB  {m}")'

# freeport prints a loopback port nothing listens on.
freeport() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# start FLAGS... starts spool serve on $data in the background, with every
# listener on (MQTT, Kafka, HTTP, as by default, on free ports); sets pid
# and startup_ms (until the "spool serving" line).
kafka=127.0.0.1:$(freeport)
starts=0
start() {
  starts=$((starts + 1))
  log="$work/serve-$starts.log"
  : >"$log"
  local mqtt=127.0.0.1:$(freeport) http=127.0.0.1:$(freeport)
  local t0=$(date +%s%N)
  "$bin" serve --data "$data" --kafka-addr "$kafka" --mqtt-addr "$mqtt" --http-addr "$http" \
    --log-format json "$@" >"$log" 2>&1 &
  pid=$!
  until grep -q '"spool serving"' "$log"; do
    kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.005
  done
  startup_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  # The log's own figure: opening (recovering) the data directory.
  open_ms=$(grep -o '"msg":"log opened".*"took":[0-9]*' "$log" | grep -o '[0-9]*$' | awk '{ printf "%.1f", $1 / 1e6 }')
  open_bytes=$(grep -o '"msg":"log opened".*"bytes":[0-9]*' "$log" | grep -o '[0-9]*$')
}

echo "== filling $GIB GiB in 4 topics over the Kafka listener (kcat)"
cat >"$work/fill.yaml" <<YAML
topics:
  - {name: t0, sync: never}
  - {name: t1, sync: never}
  - {name: t2, sync: never}
  - {name: t3, sync: never}
YAML
python3 -c "
import os, base64, sys
line = base64.b64encode(os.urandom(750)).decode() + '\n'   # 1001 bytes
n = int($GIB * 1024 * 1024 * 1024 / 4 / len(line))
sys.stdout.write(line * n)" >"$work/payload"
start --config "$work/fill.yaml"
for t in t0 t1 t2 t3; do
  kcat -P -b "$kafka" -t "$t" -l -X queue.buffering.max.ms=20 -X batch.size=1000000 "$work/payload"
done
kill -TERM "$pid"; wait "$pid"
rm -f "$work/payload"
echo "  data directory: $(du -sh "$data" | cut -f1), $(find "$data" -name '*.log' | wc -l) segments"

sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
echo "== start-up after a clean stop (page cache dropped when root)"
start
echo "  $startup_ms ms from exec to 'spool serving' (opening the log: $open_ms ms)"
sleep 5
echo "== idle RSS 5 s after start-up: $(grep VmRSS /proc/$pid/status | awk '{print $2, $3}') (VmHWM $(grep VmHWM /proc/$pid/status | awk '{print $2, $3}'))"
w0=$(awk '/^write_bytes/ {print $2}' /proc/$pid/io)
c0=$(awk '{print $14 + $15}' /proc/$pid/stat)
sleep "$IDLE"
w1=$(awk '/^write_bytes/ {print $2}' /proc/$pid/io)
c1=$(awk '{print $14 + $15}' /proc/$pid/stat)
echo "== idle $IDLE s: $((w1 - w0)) bytes written (/proc/PID/io write_bytes), $(( (c1 - c0) * 1000 / $(getconf CLK_TCK) )) ms CPU"
echo "  RSS after idling: $(grep VmRSS /proc/$pid/status | awk '{print $2, $3}')"
# SIGKILL in the middle of an ingest over Kafka, so that the next start
# finds unflushed, possibly torn tails to recover.
python3 -c "
import os, base64, sys
sys.stdout.write((base64.b64encode(os.urandom(750)).decode() + '\n') * 262144)" >"$work/payload"
kcat -P -b "$kafka" -t t0 -l -X queue.buffering.max.ms=5 "$work/payload" 2>/dev/null &
kcat_pid=$!
sleep 1
kill -KILL "$pid"; wait "$pid" 2>/dev/null || true
kill "$kcat_pid" 2>/dev/null || true; wait "$kcat_pid" 2>/dev/null || true
rm -f "$work/payload"

echo "== start-up after SIGKILL during an ingest"
before=$open_bytes
start
echo "  $startup_ms ms from exec to 'spool serving' (opening the log: $open_ms ms; $((open_bytes - before)) bytes ingested before the kill)"
kill -TERM "$pid"; wait "$pid"

echo "== write amplification: MQTT QoS 1 ingest into a fresh data directory"
# The ingest runs on a file system of its own when we may make one (root,
# a loop device): its block device then counts only Spool's writes (data,
# journal, metadata), not the rest of a shared machine's.
wa_root="$work"
if [ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null && command -v losetup >/dev/null; then
  truncate -s 2G "$work/wa.img" && mkfs.ext4 -q -F "$work/wa.img" && mkdir -p "$work/wa" &&
    mount -o loop "$work/wa.img" "$work/wa" && wa_root="$work/wa" &&
    trap 'kill $(jobs -p) 2>/dev/null || true; umount "$work/wa" 2>/dev/null; rm -rf "$work"' EXIT
fi
devno=$(stat -c '%d' "$wa_root")
dev="/sys/dev/block/$((devno >> 8)):$((devno & 255))/stat"
[ "$wa_root" = "$work" ] && echo "  (no loop device: the counts are the whole device's, other writers included)"
sectors() { if [ -r "$dev" ]; then awk '{print $7}' "$dev"; else echo 0; fi; }
msgs="${MSGS:-20000}"
python3 -c "
import os, base64
for i in range($msgs):
    print(base64.b64encode(os.urandom(375)).decode())" >"$work/lines"   # 500-byte payloads
payload=$(( $(stat -c %s "$work/lines") - msgs ))
printf 'topics:\n  - {name: mqtt, preallocate: false}\n' >"$work/noprealloc.yaml"
printf 'topics:\n  - {name: mqtt, compression: none}\n' >"$work/nocompress.yaml"
# wa LABEL PUBLISHERS [serve flags]: one ingest of $msgs messages split
# over PUBLISHERS mosquitto_pub connections, and what reached the device.
wa() {
  local label=$1 pubs=$2; shift 2
  data="$wa_root/ingest-$label"
  start "$@"
  local mqtt http
  mqtt=$(grep -o '"msg":"mqtt listening"[^}]*"addr":"[^"]*"' "$log" | grep -o '[0-9.]*:[0-9]*"$' | tr -d '"')
  http=$(grep -o '"msg":"http listening"[^}]*"addr":"[^"]*"' "$log" | grep -o '[0-9.]*:[0-9]*"$' | tr -d '"')
  fsyncs() { curl -s "http://$http/metrics" | awk '/^spool_fsyncs_total/ {s += $2} END {print s + 0}'; }
  received() { curl -s "http://$http/metrics" | awk '/^spool_mqtt_publishes_received_total/ {s += $2} END {print s + 0}'; }
  split -n "l/$pubs" "$work/lines" "$work/part."
  sync
  local d0 f0 t0 secs d1 f1 got
  d0=$(sectors); f0=$(fsyncs); t0=$(date +%s%N)
  # mosquitto_pub -l (2.0.11) sends only part of a long input at QoS 1
  # (10,337 of 20,000 lines, against mosquitto too): each publisher sends
  # its share 1,000 lines per connection, one connection after another.
  for f in "$work"/part.*; do
    (split -l 1000 "$f" "$f.chunk."
     for c in "$f".chunk.*; do
       mosquitto_pub -h "${mqtt%:*}" -p "${mqtt##*:}" -q 1 -t "devices/$(basename "$f")/telemetry" -l <"$c"
     done) &
  done
  for j in $(jobs -p); do [ "$j" = "$pid" ] || wait "$j"; done
  secs=$(awk -v n=$(( $(date +%s%N) - t0 )) 'BEGIN { printf "%.1f", n / 1e9 }')
  f1=$(fsyncs); got=$(received)
  [ "$got" = "$msgs" ] || echo "  ($label: $got of $msgs messages arrived; the figure counts the payload of those)"
  sleep 6   # the journal commits every 5 s
  d1=$(sectors)
  kill -TERM "$pid"; wait "$pid"
  rm -f "$work"/part.*
  awk -v l="$label" -v d=$(( (d1 - d0) * 512 )) -v p="$(( payload / msgs * got ))" -v n="$got" -v s="$secs" -v f=$((f1 - f0)) 'BEGIN {
    printf "  %-22s %5.2f device bytes per payload byte; %d messages in %s s, %.1f per fsync\n", l, d / p, n, s, (f ? n / f : 0) }'
  rm -rf "$data"
}
wa default-1-publisher 1
wa default-20-publishers 20
wa nocompress-1-publisher 1 --config "$work/nocompress.yaml"
wa nocompress-20-publishers 20 --config "$work/nocompress.yaml"
wa noprealloc-1-publisher 1 --config "$work/noprealloc.yaml"
wa noprealloc-20-publishers 20 --config "$work/noprealloc.yaml"

echo "== write amplification at the retention limit: 4 MiB segments, retention_bytes 4 MiB"
# Past the first segments, each roll starts in the file of the segment
# retention deleted (spool_segments_recycled_total), written over in place.
msgs="${STEADY_MSGS:-100000}"
python3 -c "
import os, base64
for i in range($msgs):
    print(base64.b64encode(os.urandom(375)).decode())" >"$work/lines"
payload=$(( $(stat -c %s "$work/lines") - msgs ))
printf 'topics:\n  - {name: mqtt, segment_bytes: 4MiB, retention_bytes: 4MiB}\n' >"$work/steady.yaml"
printf 'topics:\n  - {name: mqtt, segment_bytes: 4MiB, retention_bytes: 4MiB, compression: none}\n' >"$work/steady-nocompress.yaml"
wa steady-1-publisher 1 --config "$work/steady.yaml"
wa steady-20-publishers 20 --config "$work/steady.yaml"
wa steady-nocompress-20 20 --config "$work/steady-nocompress.yaml"
