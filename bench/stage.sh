#!/usr/bin/env bash
# Staging benchmark: `wharfage stage` of a 4-layer 256 MiB image from Debian's
# docker-registry, cold, against `skopeo copy` of the same image from the same upstream into
# a second docker-registry (what a platform scripts today); then the staging of a sibling
# image that shares the first 3 layers, which must download only its new bytes. With --wan,
# both reach the upstream through a wide-area link (wanproxy, from crates/testkit: 40 ms
# round trip, 30 MB/s per connection) and the image's layers are 60/40/20/8 MiB.
# See bench/README.md.
#
# Usage: bench/stage.sh [options]
#   --no-build          do not run `cargo build --release -p wharfage`
#   --rounds N          timed rounds, each on fresh storage (default 3)
#   --layer-mib N       random content per layer (default 64), or one size per layer,
#                       comma-separated (e.g. 60,40,20,8; --layers is then their count)
#   --layers N          layers of the base image (default 4); the sibling keeps N-1
#   --wan               upstream behind a WAN link for both (RTT 40 ms, 30 MB/s per
#                       connection; --rtt-ms, --rate-mbs); layers 60,40,20,8 unless given
#   --rtt-ms N          the link's round trip time with --wan (default 40)
#   --rate-mbs N        the link's rate per connection with --wan, in 10^6 B/s (default 30)
#   --keep              keep the work dir (layout, storage, logs, results)
#   --json FILE         also write the figures as JSON
# Environment:
#   WHARFAGE_BIN        the binary to measure (default: target/release/wharfage)
#   WANPROXY_BIN        the link of --wan (default: target/release/wanproxy, built with
#                       wharfage from crates/testkit)
#   BENCH_TMPDIR        where the work dir goes (default: $TMPDIR or /tmp); it needs
#                       about 4x the image size of free space
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init

build=1
rounds=3
layer_mib=""
layers=""
wan=0
rtt_ms=40
rate_mbs=30
keep=0
json_out=""
target_ratio=0.6
while [ "$#" -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --rounds) rounds=$2; shift ;;
        --layer-mib) layer_mib=$2; shift ;;
        --layers) layers=$2; shift ;;
        --wan) wan=1 ;;
        --rtt-ms) rtt_ms=$2; shift ;;
        --rate-mbs) rate_mbs=$2; shift ;;
        --keep) keep=1 ;;
        --json) json_out=$2; shift ;;
        -h | --help) bench_help "$0"; exit 0 ;;
        *) echo "stage.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds takes a positive integer"
if [ "$wan" -eq 1 ]; then
    layer_mib=${layer_mib:-60,40,20,8}
    target_ratio=0.5
fi
layer_mib=${layer_mib:-64}
[[ "$layer_mib" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--layer-mib takes a positive integer or a comma-separated list"
if [[ "$layer_mib" == *,* ]]; then
    n=$(tr ',' '\n' <<<"$layer_mib" | wc -l)
    [ -z "$layers" ] || [ "$layers" -eq "$n" ] || die "--layers $layers, but --layer-mib lists $n sizes"
    layers=$n
fi
layers=${layers:-4}
[[ "$layers" =~ ^[1-9][0-9]*$ ]] && [ "$layers" -ge 2 ] || die "--layers takes an integer >= 2"
[[ "$rtt_ms" =~ ^[0-9]+$ ]] && [[ "$rate_mbs" =~ ^[1-9][0-9]*$ ]] || die "--rtt-ms and --rate-mbs take integers"

# ---------------------------------------------------------------- peers and build
peers_apt docker-registry:docker-registry skopeo:skopeo curl:curl python3:python3
bench_wharfage "$build"
[ "$wan" -eq 0 ] || bench_wanproxy "$build"

bench_workdir wharfage-stage-bench
bench_own_binaries
bench_results
bench_skopeo

timed() { # OUT ERR CMD...: runs CMD (stdout to OUT, stderr to ERR), prints its wall seconds
    local out=$1 err=$2 t0 t1 rc=0
    shift 2
    t0=$(date +%s.%N)
    "$@" >"$out" 2>"$err" || rc=$?
    t1=$(date +%s.%N)
    [ "$rc" -eq 0 ] || die "$1 failed ($rc): $(tail -n 20 "$err")"
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f\n", b - a }'
}

manifest_digest() { # URL (of /v2/NAME/manifests/REF): the Docker-Content-Digest it answers
    curl -sS -f -I -H "Accept: application/vnd.oci.image.manifest.v1+json" "$1" |
        awk 'tolower($1) == "docker-content-digest:" { sub(/\r$/, "", $2); print $2 }'
}

# ---------------------------------------------------------------- the upstream and its images
log "cpus: $(nproc); image: $layers layers of $layer_mib MiB random content; $rounds rounds"
[ "$wan" -eq 1 ] && log "WAN link in front of the upstream: RTT $rtt_ms ms, $rate_mbs MB/s per connection"
log "writing the OCI layout (base: $layers layers; sibling: $((layers - 1)) shared + 1 new)"
declare -A fig=()
while IFS='=' read -r k v; do fig[$k]=$v; done < <("${lib[@]}" layout "$work/layout" "$layer_mib" "$layers")
for k in base_bytes base_blobs new_bytes new_blobs; do info "$k" "${fig[$k]}"; done
info target_ratio "$target_ratio"

up_port=$("${lib[@]}" port)
up=127.0.0.1:$up_port
# The upstream keeps its access log: it counts the blob GETs of the sibling staging.
start_distribution upstream "$work/upstream" "$up_port" 1
up_log=$work/upstream/stderr.log
log "upstream docker-registry ready at $up (pid ${pid_of[upstream]})"
for pair in base:v1 sibling:v2; do
    skopeo_ copy --dest-tls-verify=false --preserve-digests \
        "oci:$work/layout:${pair%%:*}" "docker://$up/bench/app:${pair#*:}" \
        >"$work/push-${pair#*:}.log" 2>&1 || die "skopeo push of ${pair%%:*}: $(tail -n 20 "$work/push-${pair#*:}.log")"
done
got=$(manifest_digest "http://$up/v2/bench/app/manifests/v1")
[ "$got" = "${fig[base_manifest]}" ] || die "upstream bench/app:v1 is $got, want ${fig[base_manifest]}"
got=$(manifest_digest "http://$up/v2/bench/app/manifests/v2")
[ "$got" = "${fig[sibling_manifest]}" ] || die "upstream bench/app:v2 is $got, want ${fig[sibling_manifest]}"
log "pushed bench/app:v1 (${fig[base_manifest]}) and bench/app:v2 (${fig[sibling_manifest]})"
# Where wharfage and skopeo fetch from: the upstream, or the WAN link in front of it.
src=$up
if [ "$wan" -eq 1 ]; then
    wan_port=$("${lib[@]}" port)
    "$wanproxy_bin" "$wan_port" "$up_port" "$rtt_ms" "$rate_mbs" 2>>"$work/wanproxy.log" &
    pid_of[wanproxy]=$!
    wait_ready wanproxy "http://127.0.0.1:$wan_port/v2/" "$work/wanproxy.log"
    src=127.0.0.1:$wan_port
    info rtt_ms "$rtt_ms"
    info rate_mbs "$rate_mbs"
    log "wanproxy ready at $src"
fi

# ---------------------------------------------------------------- timed steps
stage_cold() { # ROUND DIR WPORT
    local r=$1 dir=$2 wport=$3 s out=$2/stage-v1.json
    sync
    s=$(timed "$out" "$dir/stage-v1.err" "$wharfage_bin" stage "$src/bench/app:v1" \
        --app benchapp --server "http://127.0.0.1:$wport" --json)
    local digest bytes blobs server_s
    { read -r digest; read -r bytes; read -r blobs; read -r server_s; } < <(
        "${lib[@]}" json-field "$out" digest bytes_downloaded blobs_downloaded seconds)
    [ "$digest" = "${fig[base_manifest]}" ] || die "round $r: staged $digest, want ${fig[base_manifest]}"
    [ "$bytes" = "${fig[base_bytes]}" ] && [ "$blobs" = "${fig[base_blobs]}" ] ||
        note "round $r cold stage" "downloaded $bytes bytes in $blobs blobs, want ${fig[base_bytes]} in ${fig[base_blobs]}"
    # The pin is there to pull (untimed).
    got=$(manifest_digest "http://127.0.0.1:$wport/v2/apps/benchapp/manifests/$digest")
    [ "$got" = "$digest" ] || die "round $r: wharfage does not serve apps/benchapp@$digest"
    log "  cold stage: ${s} s (server $(printf %.3f "$server_s") s), $bytes bytes in $blobs blobs"
    record "$r" stage_s "$s"
    record "$r" stage_server_s "$server_s"
}

stage_sibling() { # ROUND DIR WPORT
    local r=$1 dir=$2 wport=$3 s out=$2/stage-v2.json off upb upm
    off=$(stat -c %s "$up_log")
    sync
    s=$(timed "$out" "$dir/stage-v2.err" "$wharfage_bin" stage "$src/bench/app:v2" \
        --app benchapp2 --server "http://127.0.0.1:$wport" --json)
    local digest bytes blobs server_s
    { read -r digest; read -r bytes; read -r blobs; read -r server_s; } < <(
        "${lib[@]}" json-field "$out" digest bytes_downloaded blobs_downloaded seconds)
    [ "$digest" = "${fig[sibling_manifest]}" ] || die "round $r: staged $digest, want ${fig[sibling_manifest]}"
    read -r upb upm < <("${lib[@]}" access-gets "$up_log" "$off" bench/app)
    log "  sibling stage: ${s} s (server $(printf %.3f "$server_s") s): bytes_downloaded $bytes," \
        "blobs_downloaded $blobs (new: ${fig[new_bytes]} bytes in ${fig[new_blobs]} blobs);" \
        "upstream served $upb blobs, $upm manifest GETs"
    [ "$bytes" = "${fig[new_bytes]}" ] && [ "$blobs" = "${fig[new_blobs]}" ] ||
        note "round $r sibling" "downloaded $bytes bytes in $blobs blobs, want ${fig[new_bytes]} in ${fig[new_blobs]}"
    [ "$upb" = "${fig[new_blobs]}" ] ||
        note "round $r sibling" "the upstream served $upb blobs, want ${fig[new_blobs]}"
    record "$r" sibling_s "$s"
    record "$r" sibling_server_s "$server_s"
    record "$r" sibling_bytes "$bytes"
    record "$r" sibling_blobs "$blobs"
    record "$r" sibling_up_blob_gets "$upb"
    record "$r" sibling_up_manifest_gets "$upm"
}

skopeo_copy() { # ROUND DIR DPORT
    local r=$1 dir=$2 dport=$3 s
    sync
    s=$(timed "$dir/skopeo.out" "$dir/skopeo.err" skopeo_ copy \
        --src-tls-verify=false --dest-tls-verify=false \
        "docker://$src/bench/app:v1" "docker://127.0.0.1:$dport/bench/app:v1")
    got=$(manifest_digest "http://127.0.0.1:$dport/v2/bench/app/manifests/v1")
    [ "$got" = "${fig[base_manifest]}" ] ||
        note "round $r skopeo" "the copy's manifest is $got, not ${fig[base_manifest]} (rewritten)"
    log "  skopeo copy: ${s} s"
    record "$r" skopeo_s "$s"
}

# ---------------------------------------------------------------- rounds
for ((r = 1; r <= rounds; r++)); do
    rdir=$work/round$r
    mkdir -p "$rdir"
    wport=$("${lib[@]}" port)
    start_wharfage wharfage "$rdir/wharfage" "$wport" --insecure-registry "$src"
    dport=$("${lib[@]}" port)
    start_distribution copy-target "$rdir/distribution" "$dport"
    # Alternate which goes first, so neither always pays for the other's disk writeback.
    if ((r % 2 == 1)); then
        log "== round $r/$rounds: wharfage (127.0.0.1:$wport) first, then skopeo into 127.0.0.1:$dport"
        stage_cold "$r" "$rdir" "$wport"
        stage_sibling "$r" "$rdir" "$wport"
        skopeo_copy "$r" "$rdir" "$dport"
    else
        log "== round $r/$rounds: skopeo into 127.0.0.1:$dport first, then wharfage (127.0.0.1:$wport)"
        skopeo_copy "$r" "$rdir" "$dport"
        stage_cold "$r" "$rdir" "$wport"
        stage_sibling "$r" "$rdir" "$wport"
    fi
    stop wharfage
    stop copy-target
    # Storage of a finished round is not needed again (its logs stay for --keep).
    [ "$keep" -eq 1 ] || rm -rf "$rdir/wharfage/root" "$rdir/distribution/root"
done
stop wanproxy
stop upstream

echo
mib=$(awk -v b="${fig[base_bytes]}" 'BEGIN { printf "%.2f", b / 1048576 }')
new_mib=$(awk -v b="${fig[new_bytes]}" 'BEGIN { printf "%.2f", b / 1048576 }')
echo "wharfage staging benchmark: $layers layers of $layer_mib MiB ($mib MiB with the config)," \
    "sibling adds $new_mib MiB; $rounds rounds; $(nproc) CPUs, loopback, $(date -u +%FT%TZ)"
echo "wharfage: $wharfage_src ($("$wharfage_bin" --version 2>/dev/null | head -n1))"
echo "upstream and copy target: $(docker-registry --version 2>&1 | head -n1); $(skopeo --version)"
[ "$wan" -eq 1 ] && echo "both fetched through a WAN link: RTT $rtt_ms ms, $rate_mbs MB/s per connection ($(tail -n1 "$work/wanproxy.log"))"
echo
"${lib[@]}" stage-report "$results" ${json_out:+"$json_out"}
