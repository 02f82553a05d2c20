#!/usr/bin/env bash
# The storm: N nodes pulling one image at once, as when a deployment scales out. Three
# wharfage replicas on one SeaweedFS behind the nginx of deploy/nginx/, each with its blob
# cache, against distribution 2.8 (Debian's docker-registry) on the same SeaweedFS, once as
# one instance and once as three behind the same nginx. See bench/README.md and docs/scale.md.
#
# Usage: bench/storm.sh [options]
#   --nodes N           simulated nodes (default 200; 50 for a quick run)
#   --image-mib M       image size, split over its layers (default 200)
#   --layers L          layers of the image (default 4)
#   --parallel P        connections per node for the layers (default 3, as engines do)
#   --no-build          do not build (the binaries must exist)
#   --only-wharfage     skip distribution (no ratios then)
#   --keep              keep the work dir (storage, logs)
#   --json FILE         also write the figures as JSON
# Environment:
#   WHARFAGE_BIN, COUNTPROXY_BIN, STORMGEN_BIN
#                       the binaries (default: target/release/{wharfage,countproxy,stormgen})
#   BENCH_TMPDIR        where the work dir goes; it needs about 6x the image size
#
# Each node (crates/testkit/src/bin/stormgen.rs) gets the manifest by digest, then the
# config, then the layers over P connections of its own; the nodes start evenly spread over
# one second, on loopback, through nginx (deploy/nginx/wharfage.conf with the addresses
# replaced) in front of every registry, the single distribution included. Each registry instance reaches SeaweedFS through a counting
# proxy of its own (crates/testkit/src/bin/countproxy.rs), which gives the bytes it read
# from the bucket. Printed: p50/p95/p99/max seconds to a complete pull, bucket bytes per
# replica and in total, peak RSS (VmHWM) per replica, errors; the last line is
#   storm: nodes=N p99_ratio=R bucket_bytes_ratio=Q errors=E
# with R = wharfage's p99 over distribution's (three replicas behind nginx) and
# Q = wharfage's bucket bytes over (image size x 3 replicas).
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init

nodes=200
image_mib=200
layers=4
parallel=3
build=1
only_wharfage=0
keep=0
json_out=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --nodes) nodes=$2; shift ;;
        --image-mib) image_mib=$2; shift ;;
        --layers) layers=$2; shift ;;
        --parallel) parallel=$2; shift ;;
        --no-build) build=0 ;;
        --only-wharfage) only_wharfage=1 ;;
        --keep) keep=1 ;;
        --json) json_out=$2; shift ;;
        -h | --help) bench_help "$0"; exit 0 ;;
        *) echo "storm.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

# ---------------------------------------------------------------- peers and build
peers_apt docker-registry:docker-registry nginx:nginx-light curl:curl python3:python3 sha256sum:coreutils
peers_weed
bench_wharfage 0
target_dir=${CARGO_TARGET_DIR:-$repo/target}
countproxy_bin=${COUNTPROXY_BIN:-$target_dir/release/countproxy}
stormgen_bin=${STORMGEN_BIN:-$target_dir/release/stormgen}
if [ "$build" -eq 1 ]; then
    log "cargo build --release -p wharfage -p wharfage-testkit --bins"
    cargo build --release -p wharfage -p wharfage-testkit --bins
fi
for b in "$wharfage_bin" "$countproxy_bin" "$stormgen_bin"; do [ -x "$b" ] || die "no binary at $b"; done
# Hundreds of connections on every hop.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true

bench_workdir wharfage-storm
chmod 755 "$work"
results=$work/results.tsv
: >"$results"
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; } # TARGET KEY VALUE

# ---------------------------------------------------------------- image
log "writing a ${image_mib} MiB image of $layers random layers"
"${lib[@]}" storm-image "$work/image" "$image_mib" "$layers"
image_bytes=$(awk '{ s += $3 } END { print s }' "$work/image/image.tsv")
manifest_digest=$(awk '$1 == "manifest" { print $2 }' "$work/image/image.tsv")
repo_name=storm/app

# ---------------------------------------------------------------- SeaweedFS
log "starting SeaweedFS"
start_seaweedfs "$work/seaweedfs"
s3_bucket wharfage
s3_bucket distribution
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
weed_endpoint=$s3_endpoint

# ---------------------------------------------------------------- pieces
start_proxy() { # NAME -> sets $proxy_endpoint: a counting proxy in front of SeaweedFS
    local name=$1 port i
    port=$("${lib[@]}" port)
    mkdir -p "$work/$name"
    "$countproxy_bin" "$port" "${weed_endpoint##*:}" >"$work/$name/counts.txt" 2>>"$work/$name/stderr.log" &
    pid_of[$name]=$!
    for ((i = 0; i < 100; i++)); do
        (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.05
    done
    proxy_endpoint=http://127.0.0.1:$port
}

proxy_down() { # NAME -> bytes the server has sent through the proxy so far
    local name=$1 before after i
    before=$(wc -l <"$work/$name/counts.txt")
    kill -USR1 "${pid_of[$name]}"
    for ((i = 0; i < 100; i++)); do
        after=$(wc -l <"$work/$name/counts.txt")
        [ "$after" -gt "$before" ] && break
        sleep 0.05
    done
    tail -n 1 "$work/$name/counts.txt" | sed -n 's/^down=\([0-9]*\) .*/\1/p'
}

declare -A port_of=() # nginx name -> its port

start_nginx() { # NAME PORT UPSTREAM_PORT...: deploy/nginx/wharfage.conf, addresses replaced
    local name=$1 port=$2 dir=$work/$1 servers="" p
    shift 2
    mkdir -p "$dir/tmp"
    for p in "$@"; do servers+="    server 127.0.0.1:$p max_fails=1 fail_timeout=10s;\n"; done
    sed -e '/^    server 10\.0\.0\.[0-9]*:5000 /d' \
        -e "s/^upstream wharfage {/upstream wharfage {\n$servers/" \
        -e "s/^    listen 80;/    listen 127.0.0.1:$port;/" \
        "$repo/deploy/nginx/wharfage.conf" >"$dir/wharfage.conf"
    grep -q "listen 127.0.0.1:$port;" "$dir/wharfage.conf" || die "deploy/nginx/wharfage.conf changed: cannot adapt it"
    {
        echo "daemon off;"
        echo "worker_processes auto;"
        echo "worker_rlimit_nofile 65536;"
        echo "pid $dir/nginx.pid;"
        echo "error_log $dir/error.log error;"
        [ "$(id -u)" -ne 0 ] || echo "user root;"
        echo "events { worker_connections 16384; }"
        echo "http {"
        echo "  access_log off;"
        echo "  client_body_temp_path $dir/tmp/body;"
        echo "  proxy_temp_path $dir/tmp/proxy;"
        for m in fastcgi uwsgi scgi; do
            nginx -V 2>&1 | grep -q -- "--without-http_${m}_module" || echo "  ${m}_temp_path $dir/tmp/$m;"
        done
        echo "  include $dir/wharfage.conf;"
        echo "}"
    } >"$dir/nginx.conf"
    nginx -c "$dir/nginx.conf" -e "$dir/error.log" >>"$dir/stderr.log" 2>&1 &
    pid_of[$name]=$!
    port_of[$name]=$port
    wait_ready "$name" "http://127.0.0.1:$port/v2/" "$dir/error.log"
}

push() { # BASE_URL: the image, blob by blob (monolithic uploads), then its manifest
    local base=$1 kind dg size hdr=$work/post.hdr loc code
    while read -r kind dg size; do
        [ "$kind" = manifest ] && continue
        code=$(curl -sS -o /dev/null -D "$hdr" -w '%{http_code}' -X POST "$base/v2/$repo_name/blobs/uploads/")
        [ "$code" = 202 ] || die "POST /v2/$repo_name/blobs/uploads/ answered $code"
        loc=$(awk 'tolower($1) == "location:" { sub(/\r$/, "", $2); print $2 }' "$hdr")
        case "$loc" in /*) loc=$base$loc ;; esac
        case "$loc" in *\?*) loc+="&digest=$dg" ;; *) loc+="?digest=$dg" ;; esac
        code=$(curl -sS -o "$work/put.body" -w '%{http_code}' --max-time 600 -X PUT \
            -H 'Content-Type: application/octet-stream' -H 'Expect:' -T "$work/image/${dg#sha256:}" "$loc")
        [ "$code" = 201 ] || die "PUT of $dg answered $code: $(head -c 300 "$work/put.body")"
    done <"$work/image/image.tsv"
    code=$(curl -sS -o "$work/put.body" -w '%{http_code}' -X PUT -H "Content-Type: application/vnd.oci.image.manifest.v1+json" \
        --data-binary "@$work/image/${manifest_digest#sha256:}" "$base/v2/$repo_name/manifests/latest")
    [ "$code" = 201 ] || die "PUT of the manifest answered $code: $(head -c 300 "$work/put.body")"
}

cpu_ticks() { # PID...: user+system clock ticks the processes have used so far
    local p t=0 u
    for p in "$@"; do
        # Fields after the command name (which may hold spaces): utime and stime are 12 and 13.
        u=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{ print $12 + $13 }') || u=0
        t=$((t + ${u:-0}))
    done
    echo "$t"
}

nginx_pids() { # NAME: the master and its workers
    echo "${pid_of[$1]}" $(ps -o pid= --ppid "${pid_of[$1]}" 2>/dev/null || true)
}

storm() { # TARGET NGINX_NAME REPLICA_NAMES...: the storm through that nginx, then its figures
    local target=$1 front=$2 base i name total=0 down out nginx_cpu0 hz
    shift 2
    base=http://127.0.0.1:${port_of[$front]}
    hz=$(getconf CLK_TCK)
    local -a before=() cpu0=()
    for ((i = 0; i < $#; i++)); do
        name=${@:i+1:1}
        before+=("$(proxy_down "proxy-$name")")
        cpu0+=("$(cpu_ticks "${pid_of[$name]}")")
    done
    # shellcheck disable=SC2046 # a list of pids
    nginx_cpu0=$(cpu_ticks $(nginx_pids "$front"))
    log "  $nodes nodes pulling $repo_name@$manifest_digest from $base"
    out=$("$stormgen_bin" "$base" "$repo_name" "$manifest_digest" "$nodes" "$parallel" 1000 10 2>"$work/$target.stormgen.log") ||
        die "stormgen failed: $(tail -n 5 "$work/$target.stormgen.log")"
    echo "$out" >"$work/$target.storm.json"
    log "  $out"
    [ -s "$work/$target.stormgen.log" ] && log "  first errors: $(head -n 3 "$work/$target.stormgen.log")"
    for k in nodes errors p50 p95 p99 max wall; do
        record "$target" "$k" "$("${lib[@]}" json-field "$work/$target.storm.json" "$k")"
    done
    for ((i = 0; i < $#; i++)); do
        name=${@:i+1:1}
        down=$(($(proxy_down "proxy-$name") - ${before[i]}))
        total=$((total + down))
        record "$target" "bucket_bytes_r$i" "$down"
        kib=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/${pid_of[$name]}/status")
        record "$target" "rss_peak_r$i" "$((kib * 1024))"
        record "$target" "cpu_r$i" "$(awk -v a="${cpu0[i]}" -v b="$(cpu_ticks "${pid_of[$name]}")" -v hz="$hz" 'BEGIN { print (b - a) / hz }')"
    done
    record "$target" bucket_bytes "$total"
    # shellcheck disable=SC2046 # a list of pids
    record "$target" cpu_nginx "$(awk -v a="$nginx_cpu0" -v b="$(cpu_ticks $(nginx_pids "$front"))" -v hz="$hz" 'BEGIN { print (b - a) / hz }')"
}

# ---------------------------------------------------------------- wharfage: 3 replicas + nginx
log "== wharfage: 3 replicas with blob caches behind nginx"
ports=()
for i in 1 2 3; do
    start_proxy "proxy-wharfage$i"
    port=$("${lib[@]}" port)
    ports+=("$port")
    start_wharfage "wharfage$i" "$work/wharfage$i" "$port" --storage s3 --s3-endpoint "$proxy_endpoint" \
        --s3-bucket wharfage --blob-cache-dir "$work/wharfage$i/blob-cache"
done
push "http://127.0.0.1:${ports[0]}"
start_nginx nginx-wharfage "$("${lib[@]}" port)" "${ports[@]}"
storm wharfage nginx-wharfage wharfage1 wharfage2 wharfage3
for name in nginx-wharfage wharfage1 wharfage2 wharfage3; do stop "$name"; done
rm -rf "$work"/wharfage?/blob-cache

if [ "$only_wharfage" -eq 0 ]; then
    # ------------------------------------------------------------ distribution: 1 instance
    log "== distribution: one instance behind nginx"
    start_proxy proxy-distribution0
    port=$("${lib[@]}" port)
    s3_endpoint=$proxy_endpoint start_distribution distribution0 "$work/distribution0" "$port" 0 distribution
    push "http://127.0.0.1:$port"
    start_nginx nginx-distribution1 "$("${lib[@]}" port)" "$port"
    storm distribution1 nginx-distribution1 distribution0
    stop nginx-distribution1
    stop distribution0

    # ------------------------------------------------------------ distribution: 3 + nginx
    log "== distribution: 3 instances behind nginx"
    ports=()
    for i in 1 2 3; do
        start_proxy "proxy-distribution$i"
        port=$("${lib[@]}" port)
        ports+=("$port")
        s3_endpoint=$proxy_endpoint start_distribution "distribution$i" "$work/distribution$i" "$port" 0 distribution
    done
    start_nginx nginx-distribution3 "$("${lib[@]}" port)" "${ports[@]}"
    storm distribution3 nginx-distribution3 distribution1 distribution2 distribution3
fi

"${lib[@]}" storm-report "$results" "$image_bytes" ${json_out:+"$json_out"}
