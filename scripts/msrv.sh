#!/usr/bin/env bash
# Checks that the workspace builds on the declared MSRV (`rust-version` in Cargo.toml):
# installs that toolchain with rustup when missing, then `cargo +MSRV check --workspace
# --all-targets` into target/msrv (its own folder, so two compilers never evict each other's
# artifacts). Not part of every test run: from a cold cache it takes about 12 minutes on two
# cores, which the 25-minute budget of scripts/test.sh cannot hold; run it with
# `scripts/test.sh --msrv`, or alone, when dependencies or the toolchain change.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
msrv=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$msrv" ] || { echo "msrv.sh: Cargo.toml declares no rust-version" >&2; exit 1; }
if ! rustup run "$msrv" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$msrv" --profile minimal
fi
echo "msrv: $(rustup run "$msrv" rustc --version)"
exec cargo "+$msrv" check --workspace --all-targets --profile ci --target-dir target/msrv
