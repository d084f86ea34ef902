#!/usr/bin/env bash
# Builds Spool's Debian packages with nfpm (scripts/package/nfpm.yaml) from
# the binaries of scripts/build.sh:
#
#   scripts/package.sh               # all four: dist/spool_<version>_{armv6,armv7,arm64,amd64}.deb
#   scripts/package.sh amd64         # only these targets
#   SKIP_BUILD=1 scripts/package.sh  # package the binaries already in dist/
#   VERSION=1.2.3 scripts/package.sh
#   DIST=/tmp/out scripts/package.sh  # another output directory
#
# Each package installs /usr/bin/spool, /etc/spool/spool.yaml (a conffile,
# from configs/spool-service.yaml), /lib/systemd/system/spool.service and
# /usr/share/doc/spool/copyright (scripts/package/copyright), creates the
# spool system user and /var/lib/spool, and leaves enabling the service to
# the administrator. The armv6 and armv7 packages are both
# Architecture: armhf (Raspberry Pi OS 32-bit is armhf, on ARMv6 boards
# too); take armv6 for a Pi Zero or 1, armv7 for a Pi 2 or 3.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:$HOME/go/bin"

# nfpm is a Go program: pinned here, fetched through the module proxy and
# built once into dist/.pkg (go's build cache keeps it between runs).
NFPM_VERSION=v2.48.0

version="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
export VERSION="$version"
# A Debian version starts with a digit and has no hyphen without a
# revision, and must sort as the releases do:
#   v1.2.0-3-gabc1234-dirty  1.2.0+3+gabc1234+dirty  (git describe: after the tag)
#   v1.2.0-rc1               1.2.0~rc1               (a pre-release: ~ sorts before 1.2.0)
#   v1.2.0-rc1-3-gabc1234    1.2.0~rc1+3+gabc1234
#   v1.2.0-test              1.2.0+test              (any other label: a local build)
#   abc1234 (untagged)       0.0.0~gitabc1234
deb_version="${version#v}"
suffix=""
if [[ "$deb_version" =~ ^(.*)-([0-9]+)-(g[0-9a-f]+)(-dirty)?$ ]]; then
  deb_version="${BASH_REMATCH[1]}"
  suffix="+${BASH_REMATCH[2]}+${BASH_REMATCH[3]}${BASH_REMATCH[4]:++dirty}"
elif [[ "$deb_version" == *-dirty ]]; then
  deb_version="${deb_version%-dirty}"
  suffix="+dirty"
fi
# (A commit id may start with a digit too, but has no dot.)
if [[ "$deb_version" =~ ^[0-9]+\.[0-9] ]]; then
  if [[ "$deb_version" =~ ^([^-]*)-((alpha|beta|pre|rc)([.-]?[0-9]+)*)$ ]]; then
    pre="${BASH_REMATCH[2]}"
    deb_version="${BASH_REMATCH[1]}~${pre//-/.}"
  fi
  deb_version="${deb_version//-/+}$suffix"
else
  deb_version="0.0.0~git${deb_version//-/+}$suffix"
fi

dist="${DIST:-dist}"
export DIST="$dist"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(armv6 armv7 arm64 amd64)
if [ -z "${SKIP_BUILD:-}" ]; then
  scripts/build.sh "${targets[@]}"
fi

stage="$dist/.pkg"
mkdir -p "$stage"
stage="$(cd "$stage" && pwd)"
GOFLAGS= GOBIN="$stage" go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
# nfpm expands variables in some fields but not in src: the config names
# the staged binary as dist/.pkg/spool, pointed here at $stage.
sed "s#src: dist/.pkg/spool\$#src: $stage/spool#" scripts/package/nfpm.yaml >"$stage/nfpm.yaml"
grep -q "src: $stage/spool" "$stage/nfpm.yaml"

for target in "${targets[@]}"; do
  case "$target" in
    armv6 | armv7) arch=armhf ;;
    arm64 | amd64) arch="$target" ;;
    *) echo "unknown target $target (armv6, armv7, arm64, amd64)" >&2; exit 2 ;;
  esac
  bin="$dist/spool-linux-$target"
  [ -x "$bin" ] || { echo "$bin is missing: run scripts/build.sh $target" >&2; exit 1; }
  cp "$bin" "$stage/spool"
  out="$dist/spool_${deb_version}_${target}.deb"
  rm -f "$out"
  SPOOL_DEB_ARCH="$arch" SPOOL_DEB_VERSION="$deb_version" \
    "$stage/nfpm" package --config "$stage/nfpm.yaml" --packager deb --target "$out" >/dev/null
  echo "$out ($arch): $(stat -c %s "$out") bytes"
done
rm -f "$stage/spool" "$stage/nfpm.yaml"
