#!/usr/bin/env bash
# Builds Spool's release binaries: static (CGO_ENABLED=0), reproducible
# paths (-trimpath), stripped (-s -w), stamped with the version and commit
# that `spool version` prints.
#
#   scripts/build.sh                 # all four targets into dist/
#   scripts/build.sh arm64 amd64     # only these (armv6 armv7 arm64 amd64)
#   VERSION=1.2.3 scripts/build.sh   # version other than git describe's
#   DIST=/tmp/out scripts/build.sh   # another output directory
#
# Outputs dist/spool-linux-{armv6,armv7,arm64,amd64}:
#   armv6: Raspberry Pi Zero / 1 (GOARM=6, softfloat-safe VFPv2)
#   armv7: Raspberry Pi 2 / 3 with a 32-bit OS (GOARM=7)
#   arm64: Raspberry Pi 3 / 4 / 5 with a 64-bit OS
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

version="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dist="${DIST:-dist}"
mkdir -p "$dist"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(armv6 armv7 arm64 amd64)

for target in "${targets[@]}"; do
  goarm=""
  case "$target" in
    armv6) goarch=arm goarm=6 ;;
    armv7) goarch=arm goarm=7 ;;
    arm64) goarch=arm64 ;;
    amd64) goarch=amd64 ;;
    *) echo "unknown target $target (armv6, armv7, arm64, amd64)" >&2; exit 2 ;;
  esac
  out="$dist/spool-linux-$target"
  # GOFLAGS may carry -buildvcs=false or -race from the caller: the
  # release build sets what it needs itself.
  CGO_ENABLED=0 GOOS=linux GOARCH="$goarch" GOARM="$goarm" GOFLAGS= \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=$version -X main.commit=$commit" \
      -o "$out" ./cmd/spool
  echo "$out ($version, $commit): $(stat -c %s "$out") bytes"
done
