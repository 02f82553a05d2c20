#!/usr/bin/env bash
# Registry benchmark: wharfage against Debian's docker-registry (CNCF distribution 2.8)
# on the same machine, same blob, fresh storage, loopback; plus a static nginx serving
# the same file as the disk+loopback ceiling for blob GETs. See bench/README.md.
#
# Usage: bench/registry.sh [options]
#   --no-build          do not run `cargo build --release -p wharfage`
#   --only NAME         measure only `wharfage` or `distribution` (nginx always runs)
#   --storage fs|s3     the registries' storage (default fs); s3: both on one SeaweedFS
#                       (`weed server -s3`, started here), each in its own bucket
#   --size-mib N        size of the random blob (default 256)
#   --duration S        seconds per wrk/ab run; each load figure is the median of 3 runs (default 5)
#   --keep              keep the work dir (storage, logs, raw wrk output)
#   --json FILE         also write the figures as JSON
#   --blob-get-only     only the single-client blob GET figures (with --storage s3 also the
#                       blob cache's fills and cached GETs): one untimed push, no load tools
#   --auth              TLS and token auth on both registries (and TLS on nginx): wharfage
#                       with its own tokens, distribution with `auth: token` and tokens the
#                       bench signs; wharfage also runs with TLS and without access
#                       control, for what access control costs
# Environment:
#   WHARFAGE_BIN        the binary to measure (default: target/release/wharfage)
#   BENCH_TMPDIR        where the work dir goes (default: $TMPDIR or /tmp); it needs
#                       about 4x the blob size of free space
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init

build=1
only=""
storage=fs
size_mib=256
duration=5
keep=0
json_out=""
auth=0
blob_get_only=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --only) only=$2; shift ;;
        --storage) storage=$2; shift ;;
        --size-mib) size_mib=$2; shift ;;
        --duration) duration=$2; shift ;;
        --keep) keep=1 ;;
        --json) json_out=$2; shift ;;
        --auth) auth=1 ;;
        --blob-get-only) blob_get_only=1 ;;
        -h | --help) bench_help "$0"; exit 0 ;;
        *) echo "registry.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
case "$only" in "" | wharfage | distribution) ;; *) echo "--only wharfage|distribution" >&2; exit 2 ;; esac
case "$storage" in fs | s3) ;; *) echo "--storage fs|s3" >&2; exit 2 ;; esac
targets=()
[ "$only" = distribution ] || targets+=(wharfage)
[ "$only" = wharfage ] || targets+=(distribution)
[ "$auth" -eq 0 ] || [ "$only" = distribution ] || targets+=(wharfage_plain)

# ---------------------------------------------------------------- peers and build
peers_apt docker-registry:docker-registry nginx:nginx-light wrk:wrk ab:apache2-utils \
    curl:curl python3:python3 sha256sum:coreutils
[ "$storage" = fs ] || peers_weed
if [ "$auth" -eq 1 ]; then
    peers_apt openssl:openssl htpasswd:apache2-utils
    python3 -c 'import cryptography' 2>/dev/null || python3 -m pip install -q cryptography
fi

if [[ " ${targets[*]} " == *" wharfage "* ]]; then bench_wharfage "$build"; fi

# ---------------------------------------------------------------- work dir, cleanup
bench_workdir wharfage-bench # processes and the work dir are cleaned up by bench/lib.sh
# nginx workers may run as another user: let them reach the data file.
chmod 755 "$work"
results=$work/results.tsv
: >"$results"

# ---------------------------------------------------------------- storage
wharfage_storage=()  # extra `wharfage serve` flags
distribution_bucket="" # empty: filesystem
if [ "$storage" = s3 ]; then
    log "starting SeaweedFS"
    start_seaweedfs "$work/seaweedfs"
    s3_bucket wharfage
    s3_bucket distribution
    log "SeaweedFS ready at $s3_endpoint (pid ${pid_of[seaweedfs]})"
    wharfage_storage=(--storage s3 --s3-endpoint "$s3_endpoint" --s3-bucket wharfage)
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench
    distribution_bucket=distribution
fi

# ---------------------------------------------------------------- TLS and auth (--auth)
authz=() # curl's Authorization header for the registry under test
if [ "$auth" -eq 1 ]; then
    tls=$work/tls
    mkdir -p "$tls"
    for name in server issuer; do
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
            -keyout "$tls/$name.key" -out "$tls/$name.crt" -subj "/CN=127.0.0.1" \
            -addext "subjectAltName=IP:127.0.0.1" >/dev/null 2>&1 || die "openssl could not make the $name certificate"
    done
    chmod 644 "$tls"/*
    bench_password=$(head -c 18 /dev/urandom | base64)
    htpasswd -Bbc "$tls/htpasswd" bench "$bench_password" >/dev/null 2>&1
    scheme=https
    curl_tls=(--cacert "$tls/server.crt")
    distribution_http_extra="  tls:
    certificate: $tls/server.crt
    key: $tls/server.key"
    distribution_extra="auth:
  token:
    realm: https://127.0.0.1:9/token
    service: bench
    issuer: bench-issuer
    rootcertbundle: $tls/issuer.crt"
fi
wharfage_auth=()
[ "$auth" -eq 0 ] || wharfage_auth=(--tls-cert "$tls/server.crt" --tls-key "$tls/server.key"
    --htpasswd "$tls/htpasswd" --admin bench --token-ttl 1h)

# A bearer token for the registry under test (--auth), valid an hour, pull and push on the
# bench repositories: from wharfage's token endpoint, or signed here for distribution.
fetch_token() { # TARGET
    local t
    case "$1" in
        wharfage)
            curl -sS -f "${curl_tls[@]}" -u "bench:$bench_password" -o "$work/token.json" \
                "$base/auth/token?service=wharfage&scope=repository:bench:pull,push&scope=repository:bench2:pull,push&scope=repository:bench3:pull,push" ||
                die "wharfage gave no token"
            t=$("${lib[@]}" json-field "$work/token.json" token)
            ;;
        distribution)
            t=$("${lib[@]}" distribution-token "$tls/issuer.key" "$tls/issuer.crt" bench-issuer bench bench bench2 bench3)
            ;;
    esac
    authz=(-H "Authorization: Bearer $t")
}

record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; } # TARGET METRIC VALUE
note() { printf 'note\t%s\t%s\n' "$1" "$2" >>"$results"; }

# ---------------------------------------------------------------- test data
size=$((size_mib * 1048576))
mkdir -p "$work/data"
blob=$work/data/blob
log "writing a ${size_mib} MiB random blob (and two more for the 2nd and 3rd timed pushes)"
head -c "$size" /dev/urandom >"$blob"
# Each timed push sends content the registry does not hold yet: a registry may skip writing
# bytes it already stores (wharfage does), which would flatter a re-push of the same blob.
for i in 2 3; do head -c "$size" /dev/urandom >"$blob$i"; done
chmod 644 "$blob"
digest=sha256:$(sha256sum "$blob" | cut -d' ' -f1)
config=$work/data/config.json
"${lib[@]}" image "$digest" "$size" "$config"
config_digest=sha256:$(sha256sum "$config" | cut -d' ' -f1)
config_size=$(stat -c %s "$config")
manifest=$work/data/manifest.json
"${lib[@]}" manifest "$config_digest" "$config_size" "$digest" "$size" "$manifest"
manifest_digest=sha256:$(sha256sum "$manifest" | cut -d' ' -f1)
manifest_type=application/vnd.oci.image.manifest.v1+json

# ---------------------------------------------------------------- processes
base="" # http://127.0.0.1:PORT of the process under test

start() { # NAME: start a registry (wharfage|distribution) or nginx on a fresh port
    local name=$1 port dir
    port=$("${lib[@]}" port)
    dir=$work/$name
    mkdir -p "$dir"
    base=$scheme://127.0.0.1:$port
    case "$name" in
        wharfage) start_wharfage "$name" "$dir" "$port" ${wharfage_storage[@]+"${wharfage_storage[@]}"} ${wharfage_auth[@]+"${wharfage_auth[@]}"} ;;
        distribution) start_distribution "$name" "$dir" "$port" 0 "$distribution_bucket" ;;
        nginx)
            mkdir -p "$dir/tmp"
            local without="" m
            for m in fastcgi uwsgi scgi; do
                if nginx -V 2>&1 | grep -q -- "--without-http_${m}_module"; then
                    without+=" $m"
                fi
            done
            {
                echo "daemon off;"
                echo "worker_processes auto;"
                echo "pid $dir/nginx.pid;"
                echo "error_log $dir/error.log error;"
                [ "$(id -u)" -ne 0 ] || echo "user root;"
                echo "events { worker_connections 1024; }"
                echo "http {"
                echo "  access_log off;"
                echo "  sendfile on; tcp_nopush on;"
                echo "  default_type application/octet-stream;"
                echo "  client_body_temp_path $dir/tmp/body;"
                echo "  proxy_temp_path $dir/tmp/proxy;"
                for m in fastcgi uwsgi scgi; do
                    [[ " $without " == *" $m "* ]] || echo "  ${m}_temp_path $dir/tmp/$m;"
                done
                if [ "$auth" -eq 1 ]; then
                    # http2 too: curl negotiates it with both registries over TLS, and the
                    # ceiling must be measured in the same protocol.
                    echo "  server { listen 127.0.0.1:$port ssl http2; root $work/data;"
                    echo "    ssl_certificate $tls/server.crt; ssl_certificate_key $tls/server.key; }"
                else
                    echo "  server { listen 127.0.0.1:$port; root $work/data; }"
                fi
                echo "}"
            } >"$dir/nginx.conf"
            nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >>"$dir/stderr.log" 2>&1 &
            pid_of[$name]=$!
            wait_ready "$name" "$base/config.json" "$dir/error.log"
            ;;
    esac
    log "$name ready at $base (pid ${pid_of[$name]})"
}

status_mib() { # NAME FIELD (VmRSS|VmHWM) -> MiB, from the kernel's view of the process
    local kib
    kib=$(awk -v f="$2:" '$1 == f { print $2 }' "/proc/${pid_of[$1]}/status" 2>/dev/null || true)
    [ -n "$kib" ] || die "$1 (pid ${pid_of[$1]}) is gone: no $2"
    "${lib[@]}" kib-to-mib "$kib"
}

# ---------------------------------------------------------------- HTTP steps
push_blob() { # REPO FILE DIGEST -> prints seconds the PUT took
    local repo=$1 file=$2 dg=$3 hdr=$work/post.hdr loc out code secs
    code=$(curl -sS ${curl_tls[@]+"${curl_tls[@]}"} ${authz[@]+"${authz[@]}"} -o /dev/null -D "$hdr" -w '%{http_code}' -X POST \
        "$base/v2/$repo/blobs/uploads/")
    [ "$code" = 202 ] || die "POST /v2/$repo/blobs/uploads/ answered $code"
    loc=$(awk 'tolower($1) == "location:" { sub(/\r$/, "", $2); print $2 }' "$hdr")
    [ -n "$loc" ] || die "POST /v2/$repo/blobs/uploads/ gave no Location"
    case "$loc" in /*) loc=$base$loc ;; esac
    case "$loc" in *\?*) loc+="&digest=$dg" ;; *) loc+="?digest=$dg" ;; esac
    # -T streams the file with a Content-Length (--data-binary @file would first read
    # it all into curl's memory); "Expect:" turns off the 100-continue round trip.
    out=$(curl -sS ${curl_tls[@]+"${curl_tls[@]}"} ${authz[@]+"${authz[@]}"} -o "$work/put.body" -w '%{http_code} %{time_total}' --max-time 600 \
        -X PUT -H 'Content-Type: application/octet-stream' -H 'Expect:' -T "$file" "$loc")
    read -r code secs <<<"$out"
    [ "$code" = 201 ] || die "PUT of $dg to $repo answered $code: $(head -c 500 "$work/put.body")"
    echo "$secs"
}

get_once() { # URL -> prints seconds; checks status and size
    local out code bytes secs
    out=$(curl -sS ${curl_tls[@]+"${curl_tls[@]}"} ${authz[@]+"${authz[@]}"} -o /dev/null -w '%{http_code} %{size_download} %{time_total}' \
        --max-time 600 "$1")
    read -r code bytes secs <<<"$out"
    [ "$code" = 200 ] && [ "$bytes" = "$size" ] ||
        die "GET $1 answered $code with $bytes bytes (want 200, $size)"
    echo "$secs"
}

get_parallel() { # URL N -> prints aggregate MiB/s of N concurrent full GETs
    local url=$1 n=$2 i t0 t1 pids=() code bytes
    t0=$(date +%s.%N)
    for ((i = 1; i <= n; i++)); do
        curl -sS ${curl_tls[@]+"${curl_tls[@]}"} ${authz[@]+"${authz[@]}"} -o /dev/null -w '%{http_code} %{size_download}\n' --max-time 600 "$url" \
            >"$work/par.$i" &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || die "a parallel GET of $url failed"; done
    t1=$(date +%s.%N)
    for ((i = 1; i <= n; i++)); do
        read -r code bytes <"$work/par.$i"
        [ "$code" = 200 ] && [ "$bytes" = "$size" ] ||
            die "parallel GET $url answered $code with $bytes bytes"
    done
    "${lib[@]}" mibs "$((n * size))" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')"
}

get_series() { # TARGET URL [METRIC]: single-client GETs, median of 3
    local target=$1 url=$2 metric=${3:-get1_mibs} runs=() i s
    for i in 1 2 3; do
        s=$(get_once "$url")
        runs+=("$("${lib[@]}" mibs "$size" "$s")")
    done
    log "  GET x1: ${runs[*]} MiB/s"
    record "$target" "$metric" "$("${lib[@]}" median "${runs[@]}")"
}

get8_series() { # TARGET URL [METRIC]: 8 concurrent GETs, median of 3 rounds
    local target=$1 url=$2 metric=${3:-get8_mibs} runs=() i
    for i in 1 2 3; do runs+=("$(get_parallel "$url" 8)"); done
    log "  GET x8: ${runs[*]} MiB/s total"
    record "$target" "$metric" "$("${lib[@]}" median "${runs[@]}")"
}

check_load() { # TARGET METRIC RPS NON2XX ERRORS OUTFILE
    log "  $2: $3 req/s, non-2xx $4, errors $5"
    if [ "$4" -ne 0 ] || [ "$5" -ne 0 ]; then
        note "$1 $2" "$4 non-2xx responses and $5 errors (see $6)"
    fi
    record "$1" "$2" "$3"
}

run_wrk() { # TARGET METRIC URL [wrk args...]: GET load, 2 threads, 64 connections, median of 3
    local target=$1 metric=$2 url=$3 out i rps non2xx errors runs=() bad=0
    shift 3
    for i in 1 2 3; do
        out=$work/$target/load.$metric.$i.txt
        wrk -t2 -c64 -d"${duration}s" --latency ${authz[@]+"${authz[@]}"} "$@" "$url" >"$out" 2>&1 ||
            die "wrk failed: $(cat "$out")"
        read -r rps non2xx errors <<<"$("${lib[@]}" wrk "$out")"
        runs+=("$rps")
        bad=$((bad + non2xx + errors))
    done
    log "  $metric runs: ${runs[*]} req/s"
    check_load "$target" "$metric" "$("${lib[@]}" median "${runs[@]}")" "$bad" 0 "$work/$target/load.$metric.*.txt"
}

run_ab_head() { # TARGET METRIC URL: HEAD load, 64 keep-alive connections, median of 3
    # Not wrk: wrk's parser does not know it sent HEAD, so it waits for the body that
    # the Content-Length announces, and completes no request at all. ab is one thread.
    local target=$1 metric=$2 url=$3 out i rps non2xx errors runs=() bad=0
    for i in 1 2 3; do
        out=$work/$target/load.$metric.$i.txt
        ab -q -i -k -r -c 64 -t "$duration" -n 100000000 ${authz[@]+"${authz[@]}"} "$url" >"$out" 2>&1 ||
            die "ab failed: $(tail -n 5 "$out")"
        read -r rps non2xx errors <<<"$("${lib[@]}" ab "$out")"
        runs+=("$rps")
        bad=$((bad + non2xx + errors))
    done
    log "  $metric runs: ${runs[*]} req/s"
    check_load "$target" "$metric" "$("${lib[@]}" median "${runs[@]}")" "$bad" 0 "$work/$target/load.$metric.*.txt"
}

# ---------------------------------------------------------------- one registry
bench_registry() { # NAME (wharfage_plain: wharfage with TLS, without access control, under --auth)
    local t=$1 pushes=() i s code got rss
    log "== $t"
    if [ "$t" = wharfage_plain ]; then
        bench_plain
        return
    fi
    start "$t"
    [ "$auth" -eq 0 ] || fetch_token "$t"

    if [ "$blob_get_only" -eq 1 ]; then
        sync
        push_blob bench "$blob" "$digest" >/dev/null
        got=$(curl -sS -f ${curl_tls[@]+"${curl_tls[@]}"} ${authz[@]+"${authz[@]}"} "$base/v2/bench/blobs/$digest" | sha256sum | cut -d' ' -f1)
        [ "sha256:$got" = "$digest" ] || die "$t: blob GET returned other bytes"
        get_series "$t" "$base/v2/bench/blobs/$digest"
        stop "$t"
        if [ "$t" = wharfage ] && [ "$storage" = s3 ]; then bench_blob_cache; fi
        return
    fi

    for i in 1 2 3; do
        # Each push starts with no dirty data in the page cache (the test blobs just written,
        # an earlier push): a registry that fsyncs (both do) must not pay for others' writes.
        sync
        if [ "$i" -eq 1 ]; then
            s=$(push_blob bench "$blob" "$digest")
        else
            s=$(push_blob "bench$i" "$blob$i" "sha256:$(sha256sum "$blob$i" | cut -d' ' -f1)")
        fi
        pushes+=("$("${lib[@]}" mibs "$size" "$s")")
    done
    log "  push: ${pushes[*]} MiB/s (repos bench, bench2, bench3)"
    record "$t" push_mibs "$("${lib[@]}" median "${pushes[@]}")"

    push_blob bench "$config" "$config_digest" >/dev/null
    code=$(curl -sS ${curl_tls[@]+"${curl_tls[@]}"} ${authz[@]+"${authz[@]}"} -o "$work/put.body" -w '%{http_code}' -X PUT \
        -H "Content-Type: $manifest_type" --data-binary "@$manifest" \
        "$base/v2/bench/manifests/latest")
    [ "$code" = 201 ] || die "PUT manifest answered $code: $(head -c 500 "$work/put.body")"

    # Check the answers before timing them: a fast 404 is not a result.
    got=$(curl -sS -f ${curl_tls[@]+"${curl_tls[@]}"} ${authz[@]+"${authz[@]}"} -H "Accept: $manifest_type" "$base/v2/bench/manifests/latest" |
        sha256sum | cut -d' ' -f1)
    [ "sha256:$got" = "$manifest_digest" ] || die "$t: manifest GET by tag returned other bytes"
    got=$(curl -sS -f ${curl_tls[@]+"${curl_tls[@]}"} ${authz[@]+"${authz[@]}"} -I "$base/v2/bench/blobs/$digest" |
        awk 'tolower($1) == "content-length:" { sub(/\r$/, "", $2); print $2 }')
    [ "$got" = "$size" ] || die "$t: blob HEAD gave Content-Length '$got', want $size"
    got=$(curl -sS -f ${curl_tls[@]+"${curl_tls[@]}"} ${authz[@]+"${authz[@]}"} "$base/v2/bench/blobs/$digest" | sha256sum | cut -d' ' -f1)
    [ "sha256:$got" = "$digest" ] || die "$t: blob GET returned other bytes"

    sleep 2
    rss=$(status_mib "$t" VmRSS)
    record "$t" rss_idle_mib "$rss"
    rss=$(status_mib "$t" VmHWM)
    record "$t" rss_push_peak_mib "$rss"

    get_series "$t" "$base/v2/bench/blobs/$digest"
    run_wrk "$t" manifest_rps "$base/v2/bench/manifests/latest" -H "Accept: $manifest_type"
    run_ab_head "$t" head_rps "$base/v2/bench/blobs/$digest"

    # Restart so that VmHWM (the kernel's peak RSS) covers only startup and the pulls.
    stop "$t"
    start "$t"
    [ "$auth" -eq 0 ] || fetch_token "$t"
    get8_series "$t" "$base/v2/bench/blobs/$digest"
    rss=$(status_mib "$t" VmHWM)
    record "$t" rss_pull_peak_mib "$rss"
    stop "$t"
    if [ "$t" = wharfage ] && [ "$storage" = s3 ]; then bench_blob_cache; fi
}

bench_plain() { # wharfage with TLS but without access control, recorded as wharfage_plain
    local saved_auth=("${wharfage_auth[@]}") results_auth=$results
    wharfage_auth=(--tls-cert "$tls/server.crt" --tls-key "$tls/server.key") authz=()
    results=$work/results.plain.tsv
    : >"$results"
    auth=0
    bench_registry wharfage
    auth=1
    sed 's/^wharfage\t/wharfage_plain\t/' "$results" >>"$results_auth"
    results=$results_auth wharfage_auth=("${saved_auth[@]}")
}

bench_blob_cache() { # wharfage on S3 again, with --blob-cache-dir: first pulls, then later ones
    local cache=$work/wharfage/blob-cache s i j runs=() plain=("${wharfage_storage[@]}")
    log "== wharfage with a blob cache"
    wharfage_storage+=(--blob-cache-dir "$cache")
    # The first pull fills the cache: three of them, each by a wharfage started afresh on an
    # empty cache folder, so the figure is a median like distribution's plain GET.
    for i in 1 2 3; do
        rm -rf "$cache"
        start wharfage
        s=$(get_once "$base/v2/bench/blobs/$digest")
        runs+=("$("${lib[@]}" mibs "$size" "$s")")
        # The fill is flushed to disk and published after the response: wait for it.
        for ((j = 0; j < 600; j++)); do
            [ -f "$cache/sha256/${digest#sha256:}" ] && break
            sleep 0.1
        done
        [ -f "$cache/sha256/${digest#sha256:}" ] || die "the blob cache did not fill within 60 s"
        [ "$i" -eq 3 ] || stop wharfage
    done
    log "  first GET (from S3, filling an empty cache): ${runs[*]} MiB/s"
    record wharfage get1_fill_mibs "$("${lib[@]}" median "${runs[@]}")"
    get_series wharfage "$base/v2/bench/blobs/$digest" get1_cached_mibs
    [ "$blob_get_only" -eq 1 ] || get8_series wharfage "$base/v2/bench/blobs/$digest" get8_cached_mibs
    stop wharfage
    wharfage_storage=("${plain[@]}")
}

log "cpus: $(nproc), blob: ${size_mib} MiB, storage: $storage, wrk and ab: 64 connections, median of 3 runs of ${duration}s"
for t in "${targets[@]}"; do bench_registry "$t"; done

log "== nginx (static file, sendfile on$([ "$auth" -eq 0 ] || echo ", TLS"))"
authz=()
start nginx
get_series nginx "$base/blob"
if [ "$blob_get_only" -eq 0 ]; then
    get8_series nginx "$base/blob"
    # The same load tools on static files: what loopback and the load generator allow.
    run_wrk nginx manifest_rps "$base/manifest.json" -H "Accept: $manifest_type"
    run_ab_head nginx head_rps "$base/blob"
fi
stop nginx

echo
echo "wharfage registry benchmark: ${size_mib} MiB blob, $(nproc) CPUs, loopback, $(date -u +%FT%TZ)"
if [ "$storage" = s3 ]; then
    echo "storage: S3, both registries on one SeaweedFS ($(weed version 2>&1 | head -n1)), a bucket each"
else
    echo "storage: local filesystem"
fi
[[ " ${targets[*]} " != *" wharfage "* ]] ||
    echo "wharfage: $wharfage_bin ($("$wharfage_bin" --version 2>/dev/null | head -n1))"
echo "distribution: $(docker-registry --version 2>&1 | head -n1)"
[ "$auth" -eq 0 ] || echo "auth: TLS (ECDSA P-256) and bearer tokens on both registries and TLS on nginx; 'no auth': wharfage with TLS only"
echo
"${lib[@]}" report "$results" ${json_out:+"$json_out"}
