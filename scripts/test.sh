#!/usr/bin/env bash
# Runs Spool's test suite, installing what it needs first. CI runs exactly
# this (.ci/run); so can you, on a fresh Debian machine.
#
#   scripts/test.sh            # everything: format, vet, race tests, brief fuzzing, bench smoke
#   FUZZTIME=60s scripts/test.sh   # fuzz each target longer
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

# Go: 1.26 is required (go.mod). Any Go >= 1.21 fetches the right toolchain
# itself through the module proxy; on a bare Debian, install one from
# bookworm-backports.
if ! command -v go >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing Go from Debian backports"
    echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list
    apt-get update -qq && apt-get install -y -qq -t bookworm-backports golang-1.23-go >/dev/null
    export PATH="$PATH:/usr/lib/go-1.23/bin"
  fi
  command -v go >/dev/null 2>&1 || { echo "Go 1.26 is required: install it to /usr/local/go (https://go.dev/dl/)" >&2; exit 1; }
fi
export GOTOOLCHAIN="${GOTOOLCHAIN:-auto}"
go version

# Real peers: the tests drive Spool with mosquitto_pub/mosquitto_sub and mosquitto (MQTT),
# kcat and Debian's python3-confluent-kafka (both librdkafka); they run the
# ARM release binaries under qemu-user-static and check the Debian package
# with dpkg-deb (and the unit with systemd-analyze, where systemd is).
missing=()
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
# The broker, as the upstream of the bridge's MQTT links.
[ -x /usr/sbin/mosquitto ] || command -v mosquitto >/dev/null 2>&1 || missing+=(mosquitto)
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
/usr/bin/python3 -c 'import confluent_kafka' >/dev/null 2>&1 || missing+=(python3-confluent-kafka)
{ command -v qemu-arm-static && command -v qemu-aarch64-static; } >/dev/null 2>&1 || missing+=(qemu-user-static)
command -v dpkg-deb >/dev/null 2>&1 || missing+=(dpkg)
if [ ${#missing[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# With this set, a test that needs a peer fails instead of skipping.
export SPOOL_REQUIRE_PEERS=1

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

# ARMv6/ARMv7 boards are 32-bit: run the suite as a 32-bit program too.
echo "== go test, 32-bit (GOARCH=386)"
GOARCH=386 go test -short -count=1 -timeout 10m ./...

# Budgets are execution counts, not durations: Go 1.26's fuzz coordinator
# can report a spurious "context deadline exceeded" when a -fuzztime
# duration ends on a loaded machine (golang/go#75804, fixed in Go 1.27).
# FUZZTIME overrides every budget (e.g. FUZZTIME=60s for a longer local run).
echo "== fuzz"
for pkg in ./log ./edge/kafka; do
  for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
    case "$target" in
      FuzzRecovery) budget=2000x ;;   # opens a whole log per input
      FuzzRequest) budget=30000x ;;   # handles each request against a log
      *) budget=100000x ;;
    esac
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="${FUZZTIME:-$budget}" "$pkg"
  done
done

echo "== bench smoke (spool bench log, spool bench kafka)"
go run ./cmd/spool bench log --records 20000 --writers 8 --sync always,never
go run ./cmd/spool bench kafka --records 50000

echo "== all tests passed"
