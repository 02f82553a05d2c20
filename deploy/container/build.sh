#!/usr/bin/env bash
# Builds the wharfage container image from a binary built on this machine.
#
# Usage: deploy/container/build.sh [--binary PATH] [--tag TAG] [--docker CMD]
#   --binary PATH   the wharfage binary (default: target/release/wharfage)
#   --tag TAG       the image tag (default: wharfage:latest)
#   --docker CMD    the docker command, e.g. "docker -H unix:///run/other.sock" (default: docker)
#
# The image is FROM scratch: the binary, the shared libraries `ldd` says it needs, the
# system's CA bundle, and an empty /var/lib/wharfage owned by the image's user (65532),
# which Docker copies into a new named volume mounted there.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
binary=$repo/target/release/wharfage
tag=wharfage:latest
docker=docker
while [ "$#" -gt 0 ]; do
    case "$1" in
        --binary) binary=$2; shift ;;
        --tag) tag=$2; shift ;;
        --docker) docker=$2; shift ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$binary" ] || { echo "build.sh: no wharfage binary at $binary (cargo build --release -p wharfage)" >&2; exit 1; }
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] || { echo "build.sh: no CA bundle at $ca (apt-get install ca-certificates)" >&2; exit 1; }

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
rootfs=$context/rootfs
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp" "$context/data/lib/wharfage"
install -m 755 "$binary" "$rootfs/usr/local/bin/wharfage"
cp "$ca" "$rootfs/etc/ssl/certs/ca-certificates.crt"
# The dynamic loader and every library the binary links, at the paths it looks them up.
for lib in $(ldd "$binary" | awk '/=>/ { print $3 } !/=>/ && /^[ \t]*\// { print $1 }'); do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
done
printf 'wharfage:x:65532:65532::/var/lib/wharfage:/nonexistent\n' >"$rootfs/etc/passwd"
printf 'wharfage:x:65532:\n' >"$rootfs/etc/group"
chmod 1777 "$rootfs/tmp"
cp "$repo/deploy/container/Dockerfile" "$context/Dockerfile"
# shellcheck disable=SC2086
DOCKER_BUILDKIT=0 $docker build -q -t "$tag" "$context"
