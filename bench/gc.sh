#!/usr/bin/env bash
# Garbage collection benchmark: a full mark and sweep over a filesystem store of 10,000
# manifests and 100,000 blobs (targets: under 10 s, server peak RSS at most 64 MiB), or of
# 100,000 manifests and 1,000,000 blobs with --manifests 100000. See bench/README.md.
#
# The store is fabricated directly in the storage layout by bench/gcstore.py (half of the
# images tagged, the rest untagged garbage, every object two hours old so the default 1 h
# grace period keeps none of it), then `wharfage serve --root` runs on it with its default
# GC settings and the script times POST /api/v1/gc: a dry run, the real run, and a run on
# the collected store. The reports must match what the fabrication says is garbage.
#
# Usage: bench/gc.sh [options]
#   --no-build          do not run `cargo build --release -p wharfage`
#   --manifests N       images (manifests) to fabricate (default 10000; 10 blobs each)
#   --store DIR         fabricate the store once into DIR and reuse it on later runs: each
#                       run collects a hard-linked copy (the 1,000,000-blob store takes
#                       minutes to fabricate and about 15 GiB)
#   --no-fsck           skip timing `wharfage fsck` on the collected store
#   --keep              keep the work dir (the store, the server log, the reports)
#   --json FILE         also write the figures as JSON
# Environment:
#   WHARFAGE_BIN        the binary to measure (default: target/release/wharfage)
#   BENCH_TMPDIR        where the work dir goes (default: $TMPDIR or /tmp); the default
#                       store takes about 1.5 GiB of disk (245,000 small files)
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init
store=(python3 "$repo/bench/gcstore.py")

build=1
manifests=10000
store_dir=""
fsck=1
keep=0
json_out=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --manifests) manifests=$2; shift ;;
        --store) store_dir=$2; shift ;;
        --no-fsck) fsck=0 ;;
        --keep) keep=1 ;;
        --json) json_out=$2; shift ;;
        -h | --help) bench_help "$0"; exit 0 ;;
        *) echo "gc.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

# ---------------------------------------------------------------- peers and build
peers_apt curl:curl python3:python3

bench_wharfage "$build"

# ---------------------------------------------------------------- work dir, cleanup
bench_workdir wharfage-gc-bench # processes and the work dir are cleaned up by bench/lib.sh

times=$work/times.tsv
: >"$times"
record() { printf '%s\t%s\n' "$1" "$2" >>"$times"; } # KEY VALUE

# ---------------------------------------------------------------- the store
if [ -n "$store_dir" ]; then
    if [ ! -f "$store_dir/fabricated.json" ] || [ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"])' "$store_dir/fabricated.json")" != "$manifests" ]; then
        log "fabricating $manifests manifests ($((manifests * 10)) blobs) once in $store_dir/root"
        rm -rf "$store_dir"
        mkdir -p "$store_dir"
        "${store[@]}" fabricate "$store_dir/root" --manifests "$manifests" >"$store_dir/fabricated.json.part"
        mv "$store_dir/fabricated.json.part" "$store_dir/fabricated.json"
    fi
    log "hard-linking the fabricated store of $store_dir into $work/root"
    cp -al "$store_dir/root" "$work/root"
    cp "$store_dir/fabricated.json" "$work/fabricated.json"
else
    log "fabricating $manifests manifests ($((manifests * 10)) blobs) in $work/root"
    "${store[@]}" fabricate "$work/root" --manifests "$manifests" >"$work/fabricated.json"
fi
log "fabricated: $(head -c 600 "$work/fabricated.json")"
sample() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sample"][sys.argv[2]] or "")' "$work/fabricated.json" "$1"; }

# ---------------------------------------------------------------- the server
port=$("${lib[@]}" port)
base=http://127.0.0.1:$port
# Default GC settings (1 h grace, 60 s protect window, retention 2), no periodic run.
start_wharfage wharfage "$work" "$port" --log-format json
pid=${pid_of[wharfage]}
# The store's size for /metrics is measured by a walk at start-up and after each real
# collection; collections are timed and measured apart from it.
stored_blobs() { curl -s "$base/metrics" | awk '/^wharfage_stored_blobs / { print $2 }'; }
settle() { # VALUE: wait until the walk has measured something other than VALUE
    local i
    for ((i = 0; i < 9000; i++)); do
        [ "$(stored_blobs)" != "$1" ] && return 0
        sleep 0.1
    done
    die "the store's size was not measured within 15 minutes"
}
settle ""
settle 0
rss_of() { "${lib[@]}" kib-to-mib "$(awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status")"; }
record rss_idle_mib "$(rss_of VmRSS)"

gc() { # NAME DRY_RUN: POST /api/v1/gc, report in NAME.json, wall seconds and RSS in times.tsv
    local name=$1 dry=$2 started ended code
    log "POST /api/v1/gc {\"dry_run\": $dry}"
    record "rss_${name}_before_mib" "$(rss_of VmRSS)"
    echo 5 >"/proc/$pid/clear_refs" # VmHWM from here: the collection's own peak
    started=$(date +%s.%N)
    code=$(curl -s -o "$work/$name.json" -w '%{http_code}' --max-time 1800 -X POST \
        -H 'content-type: application/json' -d "{\"dry_run\": $dry}" "$base/api/v1/gc")
    ended=$(date +%s.%N)
    [ "$code" = 200 ] || die "POST /api/v1/gc answered $code: $(cat "$work/$name.json")"
    record "$name" "$(python3 -c "print(round($ended - $started, 3))")"
    record "rss_${name}_peak_mib" "$(rss_of VmHWM)"
}
status_of() { curl -s -o /dev/null -w '%{http_code}' -H 'accept: application/vnd.oci.image.manifest.v1+json' "$base$1"; }

gc dry true
gc real false
settle "$(stored_blobs)"
gc again false

# Spot checks: a tagged image is whole, an untagged one is gone.
live=/v2/$(sample live_repo)/manifests/$(sample live_tag)
[ "$(status_of "$live")" = 200 ] || die "the live image $live is gone"
if [ -n "$(sample dead_repo)" ]; then
    dead=/v2/$(sample dead_repo)/manifests/$(sample dead_digest)
    [ "$(status_of "$dead")" = 404 ] || die "the garbage image $dead is still served"
fi
stop wharfage

if [ "$fsck" -eq 1 ]; then
    log "wharfage fsck --root (re-hashes what is left)"
    started=$(date +%s.%N)
    "$wharfage_bin" fsck --root "$work/root" --json >"$work/fsck.json" || die "fsck found problems: $(head -c 2000 "$work/fsck.json")"
    ended=$(date +%s.%N)
    record fsck "$(python3 -c "print(round($ended - $started, 3))")"
fi

# ---------------------------------------------------------------- figures
"${store[@]}" report "$work/fabricated.json" "$work/dry.json" "$work/real.json" "$work/again.json" "$times" ${json_out:+"$json_out"}
