#!/usr/bin/env bash
# Console list pages at scale: 10,000 apps and 10,000 repositories (100 teams of 100
# services), written straight into a filesystem root (not through staging), then the median
# time of several GETs of the first page, a page deep in the list, and a search, for
# /ui/apps and /ui/repositories. A page must be read from folder listings, never from
# every record: the figures should not grow with the number of apps.
#
# Usage: bench/ui.sh [options]
#   --no-build      do not run `cargo build --release -p wharfage`
#   --apps N        apps to create (default 10000)
#   --repos N       repositories to create (default 10000; a multiple of 100)
#   --rounds N      GETs per page, the median is reported (default 7)
#   --keep          keep the work dir
# Environment:
#   WHARFAGE_BIN    the binary to measure (default: target/release/wharfage)
#   BENCH_TMPDIR    where the work dir goes (default: $TMPDIR or /tmp)
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_init

build=1
apps=10000
repos=10000
rounds=7
keep=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        --no-build) build=0 ;;
        --apps) apps=$2; shift ;;
        --repos) repos=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --keep) keep=1 ;;
        -h | --help) bench_help "$0"; exit 0 ;;
        *) die "unknown option $1" ;;
    esac
    shift
done

bench_wharfage "$build"
bench_workdir wharfage-bench-ui
root="$work/wharfage/root"
mkdir -p "$root"

log "writing $apps apps and $repos repositories into $root"
python3 - "$root" "$apps" "$repos" <<'PY'
import json, os, sys
root, apps, repos = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
digest = "sha256:" + "ab" * 32
meta = {"entrypoint": ["/app"], "cmd": [], "user": "", "working_dir": "/", "env": [], "ports": [], "lowest_port": None}
for i in range(apps):
    app = f"app-{i:05d}"
    sid = f"{1_790_000_000_000 + i:013d}-0000abcd"
    d = os.path.join(root, "apps", app, "stagings")
    os.makedirs(d)
    rec = {"app": app, "staging_id": sid, "source": f"registry.example/{app}:v1", "repository": f"apps/{app}",
           "digest": digest, "media_type": "application/vnd.oci.image.manifest.v1+json", "metadata": meta,
           "bytes_downloaded": 1000 * i, "bytes_reused": 5000, "blobs_downloaded": 2, "blobs_reused": 1,
           "seconds": 1.5, "created_ms": 1_790_000_000_000 + i}
    with open(os.path.join(d, sid + ".json"), "w") as f:
        json.dump(rec, f)
    with open(os.path.join(root, "apps", app, "current"), "w") as f:
        f.write(sid)
link = json.dumps({"mediaType": "application/vnd.oci.image.manifest.v1+json"})
for i in range(repos):
    name = f"team-{i // 100:03d}/svc-{i % 100:02d}"
    d = os.path.join(root, "repositories", name, "_manifests", "sha256")
    os.makedirs(d)
    with open(os.path.join(d, "ab" * 32), "w") as f:
        f.write(link)
    os.makedirs(os.path.join(root, "repositories", name, "_tags"))
    with open(os.path.join(root, "repositories", name, "_tags", "latest"), "w") as f:
        f.write(digest)
PY

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start_wharfage wharfage "$work/wharfage" "$port"

median_ms() { # PATH: median of $rounds GETs, in milliseconds; the page must answer 200
    local path=$1 i t code
    local -a times=()
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$path")
    [ "$code" = 200 ] || die "GET $path answered $code"
    for ((i = 0; i < rounds; i++)); do
        t=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$port$path")
        times+=("$t")
    done
    printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] * 1000 }'
}

printf '\n%-52s %10s\n' "page ($apps apps, $repos repositories)" "median ms"
for path in /ui/apps "/ui/apps?after=app-05000" "/ui/apps?q=app-099" \
    /ui/repositories "/ui/repositories?after=team-050%2Fsvc-00" "/ui/repositories?q=team-099%2F" \
    /ui/apps/app-05000 /ui/; do
    printf '%-52s %10s\n' "$path" "$(median_ms "$path")"
done
