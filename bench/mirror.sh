#!/usr/bin/env bash
# Pull-through mirror benchmark: wharfage's mirror (`[[mirror]] registry = "docker.io"`,
# `default = true`) against distribution 2.8's proxy mode (Debian's docker-registry with
# `proxy: remoteurl:`), both in front of the same upstream (a third docker-registry holding
# one 4-layer image, library/bench:v1, 128 MiB: layers of 60/40/20/8 MiB) and both reaching
# it through the same kind of WAN link (wanproxy from crates/testkit: 40 ms round trip,
# 30 MB/s per connection; one fresh link per run, whose byte count is what the upstream
# sent during that run). Clients use the same path for both: /v2/library/bench/... (the
# default mirror). Figures, each with the ratio wharfage / distribution:
#   1. cold pull: `skopeo copy docker://MIRROR/library/bench:v1 dir:...`, fresh mirror
#      storage each run (median of --rounds runs)
#   2. eight concurrent cold pulls of it (--clients): wall time until the last one ends,
#      and the bytes the upstream sent, against the image size (median of --rounds runs)
#   3. warm manifest GETs by tag within tag_ttl: `wrk -t2 -c64 -d5s --timeout 10s` (slow
#      answers count, not dropped as timeouts) with an OCI/Docker
#      Accept header (median of 3 runs)
#   4. upstream stopped: the share of --stale-tries warm pulls (skopeo copy) that succeed;
#      wharfage is restarted on its store with tag_ttl = "0s" first, so every try asks the
#      dead upstream about the tag and must serve the stored copy (distribution's proxy
#      asks the upstream about every tag too)
# The last line sums it up:
#   mirror: cold_ratio=R concurrent_ratio=R upstream_bytes_ratio=Q warm_rps_ratio=R stale_success=W/D
# with time ratios wharfage / distribution (goal <= 0.5), Q wharfage's upstream bytes in the
# concurrent run / the image size (goal <= 1.05), the request rate ratio wharfage /
# distribution (goal >= 8), and W and D the shares of stale pulls that succeeded. See
# bench/README.md.
#
# Usage: bench/mirror.sh [options]
#   --no-build          do not run `cargo build --release -p wharfage`
#   --quick             a 26 MiB image (layers 12/8/4/2 MiB), 1 round, 3 stale tries
#   --rounds N          runs of the cold and concurrent pulls (default 3)
#   --layer-mib LIST    the image's layer sizes, comma-separated (default 60,40,20,8)
#   --clients N         concurrent cold pulls (default 8)
#   --stale-tries N     pulls with the upstream stopped (default 5)
#   --rtt-ms N          the link's round trip time (default 40)
#   --rate-mbs N        the link's rate per connection, in 10^6 B/s (default 30)
#   --keep              keep the work dir (layout, storage, logs, results)
#   --json FILE         also write the figures as JSON
# Environment:
#   WHARFAGE_BIN        the binary to measure (default: target/release/wharfage)
#   WANPROXY_BIN        the link (default: target/release/wanproxy, built from crates/testkit)
#   BENCH_TMPDIR        where the work dir goes (default: $TMPDIR or /tmp); it needs about
#                       (2 x clients + 6) x the image size of free space
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init

build=1
rounds=3
layer_mib=60,40,20,8
clients=8
stale_tries=5
rtt_ms=40
rate_mbs=30
keep=0
json_out=""
quick=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --quick) quick=1 ;;
        --rounds) rounds=$2; shift ;;
        --layer-mib) layer_mib=$2; shift ;;
        --clients) clients=$2; shift ;;
        --stale-tries) stale_tries=$2; shift ;;
        --rtt-ms) rtt_ms=$2; shift ;;
        --rate-mbs) rate_mbs=$2; shift ;;
        --keep) keep=1 ;;
        --json) json_out=$2; shift ;;
        -h | --help) bench_help "$0"; exit 0 ;;
        *) echo "mirror.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$quick" -eq 1 ]; then
    layer_mib=12,8,4,2
    rounds=1
    stale_tries=3
fi
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "--rounds takes a positive integer"
[[ "$clients" =~ ^[1-9][0-9]*$ ]] || die "--clients takes a positive integer"
[[ "$stale_tries" =~ ^[1-9][0-9]*$ ]] || die "--stale-tries takes a positive integer"
[[ "$layer_mib" =~ ^[1-9][0-9]*(,[1-9][0-9]*)+$ ]] || die "--layer-mib takes at least two comma-separated sizes"
[[ "$rtt_ms" =~ ^[0-9]+$ ]] && [[ "$rate_mbs" =~ ^[1-9][0-9]*$ ]] || die "--rtt-ms and --rate-mbs take integers"
layers=$(tr ',' '\n' <<<"$layer_mib" | wc -l)

# ---------------------------------------------------------------- peers and build
peers_apt docker-registry:docker-registry skopeo:skopeo curl:curl python3:python3 wrk:wrk
bench_wharfage "$build"
bench_wanproxy "$build"

bench_workdir wharfage-mirror-bench
bench_own_binaries
bench_results
bench_skopeo

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }

ACCEPT="application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
manifest_digest() { # URL (of /v2/NAME/manifests/REF): the Docker-Content-Digest it answers
    curl -sS -f -I -H "Accept: $ACCEPT" "$1" |
        awk 'tolower($1) == "docker-content-digest:" { sub(/\r$/, "", $2); print $2 }'
}

# pull PORT DEST [TIMEOUT]: skopeo copy of library/bench:v1 from the mirror on PORT into the
# directory DEST; succeeds when skopeo did and DEST holds the upstream's manifest, byte for
# byte (skopeo checked every blob against its digest).
pull() {
    local port=$1 dest=$2 limit=${3:-600} got
    rm -rf "$dest"
    mkdir -p "$dest"
    timeout "$limit" "${skopeo_cmd[@]}" copy --src-tls-verify=false \
        "docker://127.0.0.1:$port/library/bench:v1" "dir:$dest" >"$dest.out" 2>"$dest.err" || return 1
    got=sha256:$(sha256sum "$dest/manifest.json" | cut -d' ' -f1)
    [ "$got" = "${fig[base_manifest]}" ] || { echo "pulled manifest $got, want ${fig[base_manifest]}" >>"$dest.err"; return 1; }
}

# ---------------------------------------------------------------- the link, the two mirrors
link_start() { # NAME DIR: a fresh WAN link to the upstream; its port in link_port
    local name=$1 dir=$2
    mkdir -p "$dir"
    link_port=$("${lib[@]}" port)
    "$wanproxy_bin" "$link_port" "$up_port" "$rtt_ms" "$rate_mbs" 2>>"$dir/wanproxy.log" &
    pid_of[$name]=$!
    wait_ready "$name" "http://127.0.0.1:$link_port/v2/" "$dir/wanproxy.log"
}

link_stop() { # NAME DIR: stops the link; prints the bytes the upstream sent through it
    stop "$1"
    awk '/^wanproxy: .* bytes down/ { for (i = 1; i < NF; i++) if ($(i + 1) == "bytes" && $(i + 2) == "down,") b = $i } END { print b + 0 }' "$2/wanproxy.log"
}

start_wmirror() { # NAME DIR PORT LINK_PORT TAG_TTL
    local name=$1 dir=$2 port=$3 lport=$4 ttl=$5
    mkdir -p "$dir"
    cat >"$dir/wharfage.toml" <<EOF
[[mirror]]
registry = "docker.io"
url = "http://127.0.0.1:$lport"
default = true
tag_ttl = "$ttl"
EOF
    start_wharfage "$name" "$dir" "$port" --config "$dir/wharfage.toml"
}

start_dmirror() { # NAME DIR PORT LINK_PORT
    local name=$1 dir=$2 port=$3 lport=$4
    distribution_extra="proxy:
  remoteurl: http://127.0.0.1:$lport"
    start_distribution "$name" "$dir" "$port"
    distribution_extra=""
}

start_mirror() { # PEER NAME DIR PORT LINK_PORT [TAG_TTL]
    case "$1" in
        wharfage) start_wmirror "$2" "$3" "$4" "$5" "${6:-5m}" ;;
        distribution) start_dmirror "$2" "$3" "$4" "$5" ;;
    esac
}

# ---------------------------------------------------------------- the upstream and its image
log "cpus: $(nproc); image: $layers layers of $layer_mib MiB random content; $rounds rounds," \
    "$clients concurrent clients, $stale_tries stale tries; link: RTT $rtt_ms ms, $rate_mbs MB/s per connection"
declare -A fig=()
while IFS='=' read -r k v; do fig[$k]=$v; done < <("${lib[@]}" layout "$work/layout" "$layer_mib" "$layers")
image_bytes=${fig[base_bytes]}
info image_bytes "$image_bytes"
info rounds "$rounds"
info clients "$clients"
info stale_tries "$stale_tries"

up_port=$("${lib[@]}" port)
up=127.0.0.1:$up_port
start_distribution upstream "$work/upstream" "$up_port"
"${skopeo_cmd[@]}" copy --dest-tls-verify=false --preserve-digests \
    "oci:$work/layout:base" "docker://$up/library/bench:v1" >"$work/push.log" 2>&1 ||
    die "skopeo push: $(tail -n 20 "$work/push.log")"
got=$(manifest_digest "http://$up/v2/library/bench/manifests/v1")
[ "$got" = "${fig[base_manifest]}" ] || die "upstream library/bench:v1 is $got, want ${fig[base_manifest]}"
log "upstream docker-registry at $up holds library/bench:v1 (${fig[base_manifest]}, $image_bytes bytes of layers and config)"

# ---------------------------------------------------------------- 1 and 2: cold pulls
cold() { # ROUND PEER: one cold pull through a fresh mirror behind a fresh link
    local r=$1 peer=$2 dir=$work/cold$1-$2 port t0 t1 s bytes
    link_start link "$dir"
    port=$("${lib[@]}" port)
    start_mirror "$peer" mirror "$dir/$peer" "$port" "$link_port"
    sync
    t0=$(date +%s.%N)
    pull "$port" "$dir/pull" || die "round $r: cold pull through $peer failed: $(tail -n 20 "$dir/pull.err")"
    t1=$(date +%s.%N)
    s=$(elapsed "$t0" "$t1")
    stop mirror
    bytes=$(link_stop link "$dir")
    log "  $peer cold pull: $s s; upstream sent $bytes bytes"
    record "$peer" cold_s "$s"
    record "$peer" cold_up_bytes "$bytes"
    [ "$keep" -eq 1 ] || rm -rf "$dir/$peer/root" "$dir/pull"
}

concurrent() { # ROUND PEER: $clients cold pulls at once through a fresh mirror
    local r=$1 peer=$2 dir=$work/conc$1-$2 port t0 t1 s bytes i ok=0 pids=()
    link_start link "$dir"
    port=$("${lib[@]}" port)
    start_mirror "$peer" mirror "$dir/$peer" "$port" "$link_port"
    sync
    t0=$(date +%s.%N)
    for ((i = 1; i <= clients; i++)); do
        pull "$port" "$dir/pull$i" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        if wait "${pids[$i]}"; then
            ok=$((ok + 1))
        else
            note "round $r $peer concurrent" "client $((i + 1)) failed: $(tail -n 3 "$dir/pull$((i + 1)).err" | tr '\n\t' '  ')"
        fi
    done
    t1=$(date +%s.%N)
    s=$(elapsed "$t0" "$t1")
    stop mirror
    bytes=$(link_stop link "$dir")
    log "  $peer $clients concurrent cold pulls: $s s, $ok ok; upstream sent $bytes bytes" \
        "($(awk -v b="$bytes" -v i="$image_bytes" 'BEGIN { printf "%.2f", b / i }')x the image)"
    record "$peer" conc_s "$s"
    record "$peer" conc_ok "$ok"
    record "$peer" conc_up_bytes "$bytes"
    [ "$keep" -eq 1 ] || rm -rf "$dir/$peer/root" "$dir"/pull*/
}

for ((r = 1; r <= rounds; r++)); do
    # Alternate which goes first, so neither always pays for the other's disk writeback.
    if ((r % 2 == 1)); then order=(wharfage distribution); else order=(distribution wharfage); fi
    log "== round $r/$rounds: cold pull (${order[*]})"
    for peer in "${order[@]}"; do cold "$r" "$peer"; done
    log "== round $r/$rounds: $clients concurrent cold pulls (${order[*]})"
    for peer in "${order[@]}"; do concurrent "$r" "$peer"; done
done

# ---------------------------------------------------------------- 3: warm manifests by tag
declare -A mport=()
for peer in wharfage distribution; do
    link_start "link-$peer" "$work/warm-$peer"
    mport[$peer]=$("${lib[@]}" port)
    start_mirror "$peer" "mirror-$peer" "$work/warm-$peer/$peer" "${mport[$peer]}" "$link_port"
    pull "${mport[$peer]}" "$work/warm-$peer/pull" || die "warm-up pull through $peer failed: $(tail -n 20 "$work/warm-$peer/pull.err")"
    got=$(manifest_digest "http://127.0.0.1:${mport[$peer]}/v2/library/bench/manifests/v1")
    [ "$got" = "${fig[base_manifest]}" ] || die "$peer serves library/bench:v1 as $got, want ${fig[base_manifest]}"
done
# drain PORT: waits until one manifest GET answers within 2 s (120 s at most), so that the
# requests a run left in the server (a client that goes away does not cancel distribution's
# upstream calls) do not slow the next run.
drain() {
    local i
    for ((i = 0; i < 60; i++)); do
        curl -sf -o /dev/null --max-time 2 -H "Accept: $ACCEPT" \
            "http://127.0.0.1:$1/v2/library/bench/manifests/v1" && return 0
    done
    return 1
}
for peer in wharfage distribution; do
    for ((i = 1; i <= 3; i++)); do
        out=$work/warm-$peer/wrk$i.txt
        wrk -t2 -c64 -d5s --timeout 10s --latency -H "Accept: $ACCEPT" \
            "http://127.0.0.1:${mport[$peer]}/v2/library/bench/manifests/v1" >"$out" 2>&1 ||
            die "wrk against $peer: $(tail -n 5 "$out")"
        read -r rps non2xx errors < <("${lib[@]}" wrk "$out")
        log "  $peer manifest GET by tag: $rps req/s ($non2xx non-2xx, $errors socket errors)"
        record "$peer" warm_rps "$rps"
        [ "$non2xx" = 0 ] || note "$peer warm manifests run $i" "$non2xx answers were not 2xx"
        [ "$errors" = 0 ] || note "$peer warm manifests run $i" "$errors socket errors"
        drain "${mport[$peer]}" || note "$peer warm manifests run $i" "still busy 120 s after the run"
    done
done

# ---------------------------------------------------------------- 4: upstream stopped
# wharfage again on the same store, trusting no tag (tag_ttl 0s): every pull asks the dead
# upstream first, as distribution's proxy does.
stop mirror-wharfage
start_mirror wharfage mirror-wharfage "$work/warm-wharfage/wharfage" "${mport[wharfage]}" "$link_port" 0s
stop upstream
log "== upstream stopped: $stale_tries pulls through each mirror"
for peer in wharfage distribution; do
    ok=0
    for ((i = 1; i <= stale_tries; i++)); do
        t0=$(date +%s.%N)
        if pull "${mport[$peer]}" "$work/warm-$peer/stale$i" 120; then
            ok=$((ok + 1))
            res=ok
        else
            res="failed: $(tail -n 2 "$work/warm-$peer/stale$i.err" | tr '\n\t' '  ')"
            [ "$i" -gt 1 ] || note "$peer with the upstream stopped" "$res"
        fi
        t1=$(date +%s.%N)
        log "  $peer stale pull $i: $(elapsed "$t0" "$t1") s, $res"
        [ "$keep" -eq 1 ] || rm -rf "$work/warm-$peer/stale$i"
    done
    record "$peer" stale_ok "$ok"
done
stop mirror-wharfage
stop mirror-distribution
for peer in wharfage distribution; do link_stop "link-$peer" "$work/warm-$peer" >/dev/null; done

echo
mib=$(awk -v b="$image_bytes" 'BEGIN { printf "%.2f", b / 1048576 }')
echo "wharfage mirror benchmark: $layers layers of $layer_mib MiB ($mib MiB with the config);" \
    "$rounds rounds, $clients concurrent clients, $stale_tries stale tries; $(nproc) CPUs, loopback, $(date -u +%FT%TZ)"
echo "wharfage: $wharfage_src ($("$wharfage_bin" --version 2>/dev/null | head -n1))"
echo "distribution (proxy mode) and upstream: $(docker-registry --version 2>&1 | head -n1); $(skopeo --version); $(wrk --version 2>&1 | head -n1 | cut -d' ' -f1-2)"
echo "both fetch through a WAN link: RTT $rtt_ms ms, $rate_mbs MB/s per connection (a fresh one per run)"
echo
"${lib[@]}" mirror-report "$results" ${json_out:+"$json_out"}
