# shellcheck shell=bash
# Shared pieces of the bench scripts (registry.sh, stage.sh), sourced after `set -euo
# pipefail`. Standard tools only; the arithmetic and JSON work is in benchlib.py.
#
#   bench_init                  sets $repo, $lib (benchlib.py), sources scripts/lib/peers.sh
#   bench_help SCRIPT           prints the script's header comment (its --help)
#   log MSG / die MSG           timestamped line on stderr / and exit 1
#   bench_wharfage BUILD        sets $wharfage_bin; runs `cargo build --release -p wharfage`
#                               first when BUILD is 1
#   bench_wanproxy BUILD        sets $wanproxy_bin (the WAN link of testkit); builds it
#                               first when BUILD is 1 and $WANPROXY_BIN is unset
#   bench_workdir PREFIX        creates $work under $BENCH_TMPDIR, installs the traps
#   bench_own_binaries          copies $wharfage_bin (and $wanproxy_bin, when set) into
#                               $work and runs those; $wharfage_src names the original
#   bench_results               starts $work/results.tsv, written by record/note/info
#   bench_skopeo                skopeo in a configuration of its own under $work:
#                               the array $skopeo_cmd and the function skopeo_
#   start_wharfage NAME DIR PORT [SERVE_ARGS...]
#   start_distribution NAME DIR PORT [ACCESS_LOG] [S3_BUCKET]
#                               start a registry on 127.0.0.1:PORT (storage DIR/root, or the
#                               bucket on $s3_endpoint; logs in DIR), wait until /v2/
#                               answers; pid in ${pid_of[NAME]}
#   start_seaweedfs DIR         SeaweedFS (`weed server -s3`, every port given explicitly,
#                               data in DIR) on loopback; sets $s3_endpoint; pid in
#                               ${pid_of[seaweedfs]}
#   s3_bucket NAME              create a bucket on $s3_endpoint and write to it once
#   wait_ready NAME URL LOGFILE poll URL until it answers 200 or 401 (30 s)
#   stop NAME                   SIGTERM, wait up to 15 s, then SIGKILL
#
# On exit, however the script ends, every process started here is stopped and $work is
# deleted unless the run failed or $keep is 1.

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck disable=SC2034 # repo and lib are for the scripts that source this
bench_init() {
    repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    cd "$repo" || exit 1
    # shellcheck source=scripts/lib/peers.sh
    . "$repo/scripts/lib/peers.sh"
    lib=(python3 "$repo/bench/benchlib.py")
    # Everything here talks to 127.0.0.1: a proxy from the environment must not get in between.
    unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy
}

bench_help() { # SCRIPT: the header comment, from its second line to the first non-comment
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1"
}

bench_wharfage() { # BUILD (1|0)
    wharfage_bin=${WHARFAGE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/wharfage}
    if [ "$1" -eq 1 ]; then
        log "cargo build --release -p wharfage"
        cargo build --release -p wharfage
    fi
    [ -x "$wharfage_bin" ] || die "no wharfage binary at $wharfage_bin"
}

bench_wanproxy() { # BUILD (1|0)
    wanproxy_bin=${WANPROXY_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/wanproxy}
    if [ "$1" -eq 1 ] && [ -z "${WANPROXY_BIN:-}" ]; then
        log "cargo build --release -p wharfage-testkit --bin wanproxy"
        cargo build --release -p wharfage-testkit --bin wanproxy
    fi
    [ -x "$wanproxy_bin" ] || die "no wanproxy binary at $wanproxy_bin"
}

# Every run uses copies in $work: the tree may be rebuilt (by someone else) during the run.
# shellcheck disable=SC2034 # wharfage_src is for the report of the scripts that source this
bench_own_binaries() {
    wharfage_src=$wharfage_bin
    cp "$wharfage_src" "$work/wharfage"
    wharfage_bin=$work/wharfage
    if [ -n "${wanproxy_bin:-}" ]; then
        cp "$wanproxy_bin" "$work/wanproxy"
        wanproxy_bin=$work/wanproxy
    fi
}

# The figures of a run, one per line, for benchlib.py's reports.
bench_results() {
    results=$work/results.tsv
    : >"$results"
}
record() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$results"; } # WHO METRIC VALUE
note() { printf 'note\t%s\t%s\n' "$1" "$2" >>"$results"; }
info() { printf 'info\t%s\t%s\n' "$1" "$2" >>"$results"; }

# A permissive policy, no registries.conf, no credentials of the user's, temporary files
# in the work dir. `skopeo_` for calls in this shell, `${skopeo_cmd[@]}` under `timeout`.
bench_skopeo() {
    mkdir -p "$work/skopeo/registries.d" "$work/skopeo/tmp"
    echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$work/skopeo/policy.json"
    : >"$work/skopeo/registries.conf"
    skopeo_cmd=(env "CONTAINERS_REGISTRIES_CONF=$work/skopeo/registries.conf"
        "REGISTRY_AUTH_FILE=$work/skopeo/auth.json"
        skopeo --policy "$work/skopeo/policy.json" --registries.d "$work/skopeo/registries.d"
        --tmpdir "$work/skopeo/tmp")
}
skopeo_() { "${skopeo_cmd[@]}" "$@"; }

# ---------------------------------------------------------------- processes and cleanup
declare -A pid_of=() # running process name -> pid
seaweedfs_ports=()   # the ports start_seaweedfs gave, for cleaning up its sockets
keep=${keep:-0}
work=""

stop() { # NAME: SIGTERM, wait up to 15 s, then SIGKILL
    local name=$1 pid=${pid_of[$1]:-} i
    [ -n "$pid" ] || return 0
    unset "pid_of[$name]"
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name ($pid) ignored SIGTERM for 15 s: killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

_bench_cleanup() {
    local rc=$? name port
    for name in "${!pid_of[@]}"; do stop "$name"; done
    # SeaweedFS leaves a unix socket per port in the temp dir when it is killed.
    for port in ${seaweedfs_ports[@]+"${seaweedfs_ports[@]}"}; do
        rm -f "${TMPDIR:-/tmp}"/seaweedfs-*-"$port".sock
    done
    if [ -n "$work" ]; then
        if [ "$keep" -eq 1 ] || [ "$rc" -ne 0 ]; then
            log "work dir kept: $work"
        else
            rm -rf "$work"
        fi
    fi
    exit "$rc"
}

bench_workdir() { # PREFIX: a fresh work dir, removed (or kept) by the exit trap
    work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/$1.XXXXXX")
    trap _bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

wait_ready() { # NAME URL LOGFILE
    local name=$1 url=$2 logfile=$3 i code
    for ((i = 0; i < 300; i++)); do
        if ! kill -0 "${pid_of[$name]}" 2>/dev/null; then
            tail -n 30 "$logfile" >&2 || true
            die "$name exited during startup (log: $logfile)"
        fi
        code=$(curl -s ${curl_tls[@]+"${curl_tls[@]}"} -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
        case "$code" in 200 | 401) return 0 ;; esac
        sleep 0.1
    done
    tail -n 30 "$logfile" >&2 || true
    die "$name not ready after 30 s at $url"
}

start_wharfage() { # NAME DIR PORT [SERVE_ARGS...]
    local name=$1 dir=$2 port=$3
    shift 3
    mkdir -p "$dir/root"
    "$wharfage_bin" serve --listen "127.0.0.1:$port" --root "$dir/root" "$@" \
        >>"$dir/stdout.log" 2>>"$dir/stderr.log" &
    pid_of[$name]=$!
    wait_ready "$name" "$scheme://127.0.0.1:$port/v2/" "$dir/stderr.log"
}

# Extra distribution config for registry.sh --auth: lines under `http:` (TLS) and top-level
# sections (`auth:`); empty by default.
distribution_http_extra=""
distribution_extra=""
# Scheme of the registries' URLs and the curl options that trust their certificate.
scheme=http
curl_tls=()

start_distribution() { # NAME DIR PORT [ACCESS_LOG (0|1, default 0)] [S3_BUCKET]
    # Debian's docker-registry (CNCF distribution 2.8): filesystem storage, deletes on, the
    # in-memory blob descriptor cache as its stock config ships, errors only in its log. The
    # access log (Apache format, on stdout, so in DIR/stderr.log too) is off unless asked for.
    # With S3_BUCKET: its s3 driver on that bucket of $s3_endpoint (path-style, plain HTTP,
    # SigV4), with redirects to presigned URLs off so that it serves the bytes itself, as
    # wharfage does without --s3-redirect.
    local name=$1 dir=$2 port=$3 access=${4:-0} bucket=${5:-} storage
    mkdir -p "$dir/root"
    if [ -n "$bucket" ]; then
        storage="  s3:
    regionendpoint: $s3_endpoint
    bucket: $bucket
    region: us-east-1
    accesskey: bench
    secretkey: bench
    secure: false
    v4auth: true
  redirect:
    disable: true"
    else
        storage="  filesystem:
    rootdirectory: $dir/root"
    fi
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: $([ "$access" -eq 1 ] && echo false || echo true)
storage:
$storage
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: 127.0.0.1:$port
$distribution_http_extra
$distribution_extra
EOF
    # Its AWS SDK panics at start-up on an AWS_CA_BUNDLE from the environment ("HTTPClient's
    # transport unsupported type"), even for a plain-HTTP endpoint: not ours to pass on.
    env -u AWS_CA_BUNDLE docker-registry serve "$dir/config.yml" >>"$dir/stderr.log" 2>&1 &
    pid_of[$name]=$!
    wait_ready "$name" "$scheme://127.0.0.1:$port/v2/" "$dir/stderr.log"
}

# ---------------------------------------------------------------- S3 (SeaweedFS)
s3_endpoint=""

start_seaweedfs() { # DIR
    local dir=$1 p=() i code
    mkdir -p "$dir"
    for ((i = 0; i < 12; i++)); do p+=("$("${lib[@]}" port)"); done
    seaweedfs_ports=("${p[@]}")
    # Every port explicitly: its defaults collide with other programs on the machine.
    weed -logdir="$dir" server -dir="$dir" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3 -master.telemetry=false \
        -master.volumeSizeLimitMB=1024 -volume.max=0 \
        -master.port="${p[0]}" -master.port.grpc="${p[1]}" -volume.port="${p[2]}" \
        -volume.port.grpc="${p[3]}" -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" \
        -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" -s3.port.iceberg="${p[8]}" \
        -s3.port.lance="${p[9]}" -iam.port="${p[10]}" -metricsPort="${p[11]}" \
        >>"$dir/weed.log" 2>&1 &
    pid_of[seaweedfs]=$!
    s3_endpoint=http://127.0.0.1:${p[6]}
    for ((i = 0; i < 600; i++)); do
        kill -0 "${pid_of[seaweedfs]}" 2>/dev/null || { tail -n 20 "$dir/weed.log" >&2; die "weed exited during startup"; }
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$s3_endpoint/" || true)
        case "$code" in 2?? | 3?? | 4??) return 0 ;; esac
        sleep 0.1
    done
    die "SeaweedFS not ready after 60 s at $s3_endpoint (log: $dir/weed.log)"
}

s3_bucket() { # NAME: SeaweedFS without identities takes unsigned requests
    local i code
    for ((i = 0; i < 100; i++)); do
        code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$s3_endpoint/$1" || true)
        case "$code" in 200 | 409) break ;; esac
        sleep 0.2
    done
    case "$code" in 200 | 409) ;; *) die "creating bucket $1 on $s3_endpoint answered $code" ;; esac
    # The first write to a bucket allocates its volumes (seconds): not for a timed run to pay.
    code=$(printf warm | curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary @- "$s3_endpoint/$1/warm-up")
    [ "$code" = 200 ] || die "the first write to bucket $1 answered $code"
    curl -s -o /dev/null -X DELETE "$s3_endpoint/$1/warm-up" || true
}
