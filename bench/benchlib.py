#!/usr/bin/env python3
"""Small helpers for bench/registry.sh and bench/stage.sh: the arithmetic, JSON and table
work that is awkward in bash. Standard library only.

  benchlib.py port                         print a free TCP port on 127.0.0.1
  benchlib.py median X...                  print the median of the numbers
  benchlib.py mibs BYTES SECONDS           print BYTES/2^20/SECONDS
  benchlib.py image LAYER_DIGEST LAYER_SIZE CONFIG_OUT
                                           write an OCI image config for one layer
  benchlib.py manifest CONFIG_DIGEST CONFIG_SIZE LAYER_DIGEST LAYER_SIZE MANIFEST_OUT
                                           write an OCI image manifest
  benchlib.py wrk FILE                     print "<requests/s> <non-2xx> <socket errors>"
  benchlib.py ab FILE                      print "<requests/s> <non-2xx> <failed>"
  benchlib.py kib-to-mib KIB               print KIB/1024
  benchlib.py report RESULTS.tsv [JSON_OUT]
                                           print the comparison table (and write JSON)

For bench/stage.sh:
  benchlib.py layout DIR LAYER_MIB BASE_LAYERS
                                           write an OCI image layout with two images:
                                           "base" (BASE_LAYERS random gzip layers of
                                           LAYER_MIB MiB, or "60,40,20,8": one each) and
                                           "sibling" (the first BASE_LAYERS-1 of them and
                                           one new layer); print its figures as KEY=VALUE
  benchlib.py json-field FILE KEY...       print top-level fields of a JSON object
  benchlib.py access-gets LOG OFFSET REPO  print "<blobs fetched> <manifest GETs>" that
                                           an Apache-format access log records for
                                           /v2/REPO/ after byte OFFSET
  benchlib.py stage-report RESULTS.tsv [JSON_OUT]
                                           print the staging table (and write JSON)

For bench/storm.sh:
  benchlib.py storm-image DIR TOTAL_MIB LAYERS
                                           write an image of LAYERS random layers of about
                                           TOTAL_MIB MiB in all as DIR/<hex> blobs, and
                                           DIR/image.tsv: "kind digest size" per blob
  benchlib.py storm-report RESULTS.tsv IMAGE_BYTES [JSON_OUT]
                                           print the storm table and its summary line

For bench/mirror.sh:
  benchlib.py mirror-report RESULTS.tsv [JSON_OUT]
                                           print the mirror table and its summary line
                                           (and write JSON)
"""

import base64
import hashlib
import json
import os
import re
import socket
import statistics
import sys
import tarfile
import time
import zlib

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
LAYER_GZIP_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"

# (key, label, higher_is_better, compared with nginx)
METRICS = [
    ("push_mibs", "blob push, 1 client (MiB/s)", True, False),
    ("get1_mibs", "blob GET, 1 client (MiB/s)", True, True),
    ("get8_mibs", "blob GET, 8 clients, total (MiB/s)", True, True),
    # S3 only: wharfage with --blob-cache-dir (distribution has no such cache; its column is
    # its plain S3 GET, the same as in the rows above).
    ("get1_fill_mibs", "blob GET, 1 client, 1st pull filling the blob cache (MiB/s)", True, False),
    ("get1_cached_mibs", "blob GET, 1 client, from the blob cache (MiB/s)", True, False),
    ("get8_cached_mibs", "blob GET, 8 clients, from the blob cache (MiB/s)", True, False),
    ("manifest_rps", "manifest GET by tag (req/s)", True, True),
    ("head_rps", "blob HEAD (req/s)", True, True),
    ("rss_idle_mib", "RSS idle after push (MiB)", False, False),
    ("rss_push_peak_mib", "RSS peak, startup+push (MiB)", False, False),
    ("rss_pull_peak_mib", "RSS peak, 8 parallel pulls (MiB)", False, False),
]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_json(path, obj):
    # Compact and deterministic: these bytes are what gets digested and pushed.
    with open(path, "wb") as f:
        f.write(json.dumps(obj, separators=(",", ":"), sort_keys=True).encode())


def image_config(layer_digest, out):
    write_json(
        out,
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["/bin/true"]},
            # The layer is an uncompressed "tar", so its diff_id is its digest.
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        },
    )


def image_manifest(config_digest, config_size, layer_digest, layer_size, out):
    write_json(
        out,
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": CONFIG_TYPE, "digest": config_digest, "size": int(config_size)},
            "layers": [{"mediaType": LAYER_TYPE, "digest": layer_digest, "size": int(layer_size)}],
        },
    )


def parse_wrk(path):
    text = open(path).read()
    m = re.search(r"Requests/sec:\s*([0-9.]+)", text)
    rps = float(m.group(1)) if m else 0.0
    m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    non2xx = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors = sum(int(x) for x in m.groups()) if m else 0
    return rps, non2xx, errors


def parse_ab(path):
    text = open(path).read()
    m = re.search(r"Requests per second:\s*([0-9.]+)", text)
    rps = float(m.group(1)) if m else 0.0
    m = re.search(r"Non-2xx responses:\s*(\d+)", text)
    non2xx = int(m.group(1)) if m else 0
    m = re.search(r"Failed requests:\s*(\d+)", text)
    failed = int(m.group(1)) if m else 0
    m = re.search(r"Complete requests:\s*(\d+)", text)
    if not m or int(m.group(1)) == 0:
        failed = max(failed, 1)
    return rps, non2xx, failed


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.1f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def report(results_path, json_out=None):
    values = {}  # target -> key -> float
    notes = []
    with open(results_path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3 and parts[0] == "note":
                notes.append(f"{parts[1]}: {parts[2]}")
            elif len(parts) == 3:
                values.setdefault(parts[0], {})[parts[1]] = float(parts[2])
    w = values.get("wharfage", {})
    d = values.get("distribution", {})
    n = values.get("nginx", {})
    # registry.sh --auth: wharfage again with TLS but no access control, for what it costs.
    p = values.get("wharfage_plain")

    header = ["metric", "better", "wharfage", "distribution", "wharfage/dist", "nginx", "wharfage/nginx"]
    if p is not None:
        header += ["wharfage, no auth", "auth/no auth"]
    rows = []
    # Distribution's figure for a blob-cache row is its plain GET: it has no such cache.
    plain = {"get1_fill_mibs": "get1_mibs", "get1_cached_mibs": "get1_mibs", "get8_cached_mibs": "get8_mibs"}
    for key, label, higher, vs_nginx in METRICS:
        if key not in w and key not in d:
            continue
        dkey = plain.get(key, key)
        row = [
            label,
            "higher" if higher else "lower",
            fmt(w.get(key)),
            fmt(d.get(dkey)),
            ratio(w.get(key), d.get(dkey)),
            fmt(n.get(key)) if vs_nginx else "",
            ratio(w.get(key), n.get(key)) if vs_nginx else "",
        ]
        if p is not None:
            row += [fmt(p.get(key)), ratio(w.get(key), p.get(key))]
        rows.append(row)
    print_table(header, rows, notes, left=(0,), json_out=json_out, payload={"results": values})


# ---------------------------------------------------------------- stage.sh: the OCI layout


def _put_blob(blobs_dir, data, media_type):
    """Writes bytes as a blob of the layout; returns their descriptor."""
    hexd = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs_dir, hexd), "wb") as f:
        f.write(data)
    return {"mediaType": media_type, "digest": f"sha256:{hexd}", "size": len(data)}


def _random_layer(blobs_dir, name, content_size):
    """A gzip'd tar holding one file of `content_size` random bytes. Deflate level 0 (stored
    blocks): a valid gzip stream, so a client passes it through as it is (skopeo would
    otherwise compress an uncompressed layer on the fly), about as big as its content and
    cheap to write. Returns (descriptor, diff_id)."""
    diff = hashlib.sha256()
    blob = hashlib.sha256()
    comp = zlib.compressobj(0, zlib.DEFLATED, 31)  # wbits 31: gzip header and trailer
    tmp = os.path.join(blobs_dir, f".partial-{name}")
    with open(tmp, "wb") as f:

        def emit(out):
            if out:
                blob.update(out)
                f.write(out)

        def put(chunk):
            diff.update(chunk)
            emit(comp.compress(chunk))

        info = tarfile.TarInfo(f"data/{name}.bin")
        info.size = content_size
        info.mode = 0o644
        info.mtime = 1_704_067_200
        put(info.tobuf(format=tarfile.GNU_FORMAT))
        left = content_size
        while left:
            n = min(left, 1 << 20)
            put(os.urandom(n))
            left -= n
        put(b"\0" * ((-content_size) % 512 + 1024))  # pad the file, then the end-of-archive
        emit(comp.flush())
    hexd = blob.hexdigest()
    os.rename(tmp, os.path.join(blobs_dir, hexd))
    size = os.path.getsize(os.path.join(blobs_dir, hexd))
    return {"mediaType": LAYER_GZIP_TYPE, "digest": f"sha256:{hexd}", "size": size}, f"sha256:{diff.hexdigest()}"


def _json_bytes(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _image(blobs_dir, name, layers):
    """Config and manifest for `layers` [(descriptor, diff_id)]: returns (manifest descriptor,
    config descriptor)."""
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Entrypoint": ["/app/server"],
            "Cmd": ["--port", "8080"],
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", f"BENCH_IMAGE={name}"],
            "ExposedPorts": {"8080/tcp": {}},
            "User": "1000",
            "WorkingDir": "/app",
        },
        "rootfs": {"type": "layers", "diff_ids": [d for _, d in layers]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"bench layer {i}"} for i in range(len(layers))],
    }
    config_desc = _put_blob(blobs_dir, _json_bytes(config), CONFIG_TYPE)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config_desc,
        "layers": [desc for desc, _ in layers],
    }
    return _put_blob(blobs_dir, _json_bytes(manifest), MANIFEST_TYPE), config_desc


def stage_layout(out_dir, layer_mib, base_layers):
    """LAYER_MIB is one size for BASE_LAYERS layers, or a comma-separated size per layer
    (then BASE_LAYERS must be their count); the sibling's new layer has the last size."""
    sizes = [int(v) << 20 for v in str(layer_mib).split(",")]
    base_layers = int(base_layers)
    if len(sizes) == 1:
        sizes = sizes * base_layers
    if len(sizes) != base_layers:
        raise SystemExit(f"layout: {len(sizes)} layer sizes for {base_layers} layers")
    if base_layers < 2:
        raise SystemExit("layout: the base image needs at least 2 layers")
    blobs_dir = os.path.join(out_dir, "blobs", "sha256")
    os.makedirs(blobs_dir, exist_ok=True)
    base = [_random_layer(blobs_dir, f"base{i}", content) for i, content in enumerate(sizes)]
    new = _random_layer(blobs_dir, "sibling", sizes[-1])
    sibling = base[:-1] + [new]
    base_manifest, base_config = _image(blobs_dir, "base", base)
    sibling_manifest, sibling_config = _image(blobs_dir, "sibling", sibling)
    index = {
        "schemaVersion": 2,
        "manifests": [
            dict(base_manifest, annotations={"org.opencontainers.image.ref.name": "base"}),
            dict(sibling_manifest, annotations={"org.opencontainers.image.ref.name": "sibling"}),
        ],
    }
    with open(os.path.join(out_dir, "index.json"), "wb") as f:
        f.write(_json_bytes(index))
    with open(os.path.join(out_dir, "oci-layout"), "wb") as f:
        f.write(_json_bytes({"imageLayoutVersion": "1.0.0"}))
    base_layer_bytes = sum(d["size"] for d, _ in base)
    figures = {
        "base_manifest": base_manifest["digest"],
        "sibling_manifest": sibling_manifest["digest"],
        "base_layer_bytes": base_layer_bytes,
        # What a cold staging of the base must download: its layers and its config.
        "base_bytes": base_layer_bytes + base_config["size"],
        "base_blobs": len(base) + 1,
        # What the sibling adds: its new layer and its own config.
        "new_layer_bytes": new[0]["size"],
        "new_bytes": new[0]["size"] + sibling_config["size"],
        "new_blobs": 2,
        "sibling_bytes": sum(d["size"] for d, _ in sibling) + sibling_config["size"],
    }
    for k, v in figures.items():
        print(f"{k}={v}")


def json_fields(path, keys):
    with open(path) as f:
        obj = json.load(f)
    for k in keys:
        if k not in obj:
            raise SystemExit(f"json-field: {path} has no field {k!r}")
        print(obj[k])


def access_gets(path, offset, repo):
    """Counts the blobs that successful GETs of /v2/REPO/blobs/ fetched (distinct digests: a
    big blob comes in several range requests) and the successful GETs of
    /v2/REPO/manifests/ in an Apache combined-format access log, from byte `offset` on."""
    blobs = set()
    manifests = 0
    pat = re.compile(r'"GET /v2/' + re.escape(repo) + r'/(blobs|manifests)/(\S*) HTTP/[0-9.]+" (\d{3}) ')
    with open(path, "rb") as f:
        f.seek(int(offset))
        for line in f.read().decode(errors="replace").splitlines():
            m = pat.search(line)
            if m and m.group(3).startswith("2"):
                if m.group(1) == "blobs":
                    blobs.add(m.group(2))
                else:
                    manifests += 1
    print(f"{len(blobs)} {manifests}")


def read_results(results_path, key):
    """The figures bench/lib.sh's record/note/info wrote: `WHO METRIC VALUE` rows grouped
    under key(WHO, METRIC) in file order, `info KEY VALUE` and `note WHERE TEXT`."""
    runs, info, notes = {}, {}, []
    with open(results_path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            if parts[0] == "note":
                notes.append(f"{parts[1]}: {parts[2]}")
            elif parts[0] == "info":
                info[parts[1]] = float(parts[2])
            else:
                runs.setdefault(key(parts[0], parts[1]), []).append(float(parts[2]))
    return runs, info, notes


# (key, label, unit): the timed rows of the staging table, one value per round
STAGE_ROWS = [
    ("stage_s", "cold stage v1, `wharfage stage` wall time", "s"),
    ("stage_server_s", "  of which in the server (result `seconds`)", "s"),
    ("skopeo_s", "`skopeo copy` v1 into a 2nd docker-registry", "s"),
    ("ratio", "ratio cold stage / skopeo copy", "x"),
    ("sibling_s", "sibling stage v2 (2nd app), wall time", "s"),
    ("sibling_server_s", "  of which in the server", "s"),
]


def stage_report(results_path, json_out=None):
    runs, info, notes = read_results(results_path, lambda who, metric: metric)  # metric -> values by round
    if "stage_s" in runs and "skopeo_s" in runs:
        runs["ratio"] = [a / b for a, b in zip(runs["stage_s"], runs["skopeo_s"]) if b > 0]
    med = {k: statistics.median(v) for k, v in runs.items() if v}
    # The headline ratio is the ratio of the medians; the per-round ratios are the runs.
    if med.get("skopeo_s"):
        med["ratio"] = med["stage_s"] / med["skopeo_s"]
    target = info.get("target_ratio", 0.6)

    def num(v, unit):
        return f"{v:.2f}x" if unit == "x" else f"{v:.2f}"

    header = ["figure", "median", "rounds", "target"]
    rows = []
    for key, label, unit in STAGE_ROWS:
        if key not in med:
            continue
        tgt = ""
        if key == "ratio":
            tgt = f"<= {target:.2f}x: " + ("met" if med[key] <= target else "MISSED")
        rows.append([label, num(med[key], unit), " ".join(num(v, unit) for v in runs[key]), tgt])
    mib = 1 << 20
    if "base_bytes" in info and "stage_s" in med:
        rows.append(["cold stage throughput (MiB/s)", f"{info['base_bytes'] / mib / med['stage_s']:.1f}", "", ""])
    if "base_bytes" in info and "skopeo_s" in med:
        rows.append(["skopeo copy throughput (MiB/s)", f"{info['base_bytes'] / mib / med['skopeo_s']:.1f}", "", ""])
    if "sibling_bytes" in runs and "new_bytes" in info:
        want_b, want_n = int(info["new_bytes"]), int(info["new_blobs"])
        got_b = [int(v) for v in runs["sibling_bytes"]]
        got_n = [int(v) for v in runs.get("sibling_blobs", [])]
        ok = all(b == want_b for b in got_b) and all(n == want_n for n in got_n)
        rows.append(
            [
                "sibling bytes downloaded / its new bytes",
                f"{int(statistics.median(got_b)):,} / {want_b:,}",
                " ".join(f"{b:,}" for b in got_b),
                "equal: " + ("met" if ok else "MISSED"),
            ]
        )
        rows.append(
            [
                "sibling blobs downloaded / its new blobs",
                f"{int(statistics.median(got_n)) if got_n else '-'} / {want_n}",
                " ".join(str(n) for n in got_n),
                "",
            ]
        )
    if "sibling_up_blob_gets" in runs:
        rows.append(
            [
                "upstream during sibling: blobs fetched, manifest GETs",
                f"{int(statistics.median(runs['sibling_up_blob_gets']))}, {int(statistics.median(runs['sibling_up_manifest_gets']))}",
                " ".join(
                    f"{int(b)},{int(m)}" for b, m in zip(runs["sibling_up_blob_gets"], runs["sibling_up_manifest_gets"])
                ),
                "",
            ]
        )
    print_table(header, rows, notes, left=(0, 3), json_out=json_out, payload={"rounds": runs, "medians": med, "info": info})


def mirror_report(results_path, json_out=None):
    """RESULTS.tsv rows are `PEER METRIC VALUE` (one per run), `info KEY VALUE` and `note
    WHERE TEXT`. Ratios are wharfage / distribution of the medians."""
    runs, info, notes = read_results(results_path, lambda peer, metric: (peer, metric))  # values by run
    med = {k: statistics.median(v) for k, v in runs.items() if v}
    image = info["image_bytes"]
    clients = int(info.get("clients", 8))
    tries = int(info.get("stale_tries", 1))

    def m(peer, key):
        return med.get((peer, key))

    def r(a, b):
        return a / b if a is not None and b else None

    def runs_of(key, f):
        return "; ".join(" ".join(f(v) for v in runs.get((p, key), [])) for p in ("wharfage", "distribution"))

    def goal(v, op, target):
        if v is None:
            return ""
        met = v <= target if op == "<=" else v >= target
        return f"{op} {target:g}x: " + ("met" if met else "MISSED")

    s = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    x = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
    cold_ratio = r(m("wharfage", "cold_s"), m("distribution", "cold_s"))
    conc_ratio = r(m("wharfage", "conc_s"), m("distribution", "conc_s"))
    wbytes = r(m("wharfage", "conc_up_bytes"), image)
    dbytes = r(m("distribution", "conc_up_bytes"), image)
    rps_ratio = r(m("wharfage", "warm_rps"), m("distribution", "warm_rps"))
    stale_w = m("wharfage", "stale_ok")
    stale_d = m("distribution", "stale_ok")
    header = ["figure", "wharfage", "distribution", "ratio", "goal", "runs (wharfage; distribution)"]
    rows = [
        [
            "cold pull, skopeo copy to dir (s)",
            s(m("wharfage", "cold_s")),
            s(m("distribution", "cold_s")),
            x(cold_ratio),
            goal(cold_ratio, "<=", 0.5),
            runs_of("cold_s", lambda v: f"{v:.2f}"),
        ],
        [
            "  upstream bytes / image size",
            x(r(m("wharfage", "cold_up_bytes"), image)),
            x(r(m("distribution", "cold_up_bytes"), image)),
            "",
            "",
            runs_of("cold_up_bytes", lambda v: f"{v / image:.2f}"),
        ],
        [
            f"{clients} concurrent cold pulls, wall (s)",
            s(m("wharfage", "conc_s")),
            s(m("distribution", "conc_s")),
            x(conc_ratio),
            goal(conc_ratio, "<=", 0.5),
            runs_of("conc_s", lambda v: f"{v:.2f}"),
        ],
        [
            "  upstream bytes / image size",
            x(wbytes),
            x(dbytes),
            "",
            "wharfage " + goal(wbytes, "<=", 1.05),
            runs_of("conc_up_bytes", lambda v: f"{v / image:.2f}"),
        ],
        [
            "  pulls that succeeded",
            f"{int(m('wharfage', 'conc_ok') or 0)}/{clients}",
            f"{int(m('distribution', 'conc_ok') or 0)}/{clients}",
            "",
            "",
            runs_of("conc_ok", lambda v: f"{int(v)}"),
        ],
        [
            "warm manifest GET by tag (req/s)",
            f"{m('wharfage', 'warm_rps') or 0:.0f}",
            f"{m('distribution', 'warm_rps') or 0:.0f}",
            x(rps_ratio),
            goal(rps_ratio, ">=", 8),
            runs_of("warm_rps", lambda v: f"{v:.0f}"),
        ],
        [
            "upstream stopped: warm pulls that succeeded",
            f"{int(stale_w or 0)}/{tries}",
            f"{int(stale_d or 0)}/{tries}",
            "",
            "wharfage 100%: " + ("met" if stale_w == tries else "MISSED"),
            "",
        ],
    ]
    print_table(
        header,
        rows,
        notes,
        left=(0, 4, 5),
        json_out=json_out,
        payload={"runs": {f"{p}.{k}": v for (p, k), v in runs.items()}, "info": info},
    )
    print(
        f"mirror: cold_ratio={s(cold_ratio)} concurrent_ratio={s(conc_ratio)}"
        f" upstream_bytes_ratio={s(wbytes)} warm_rps_ratio={s(rps_ratio)}"
        f" stale_success={(stale_w or 0) / tries:.2f}/{(stale_d or 0) / tries:.2f}"
    )


def print_table(header, rows, notes, left, json_out, payload):
    """Prints rows under a header as aligned columns (those in `left` left-aligned, the rest
    right-aligned), then the notes; writes payload plus the notes to json_out if given."""
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]

    def line(cells):
        return " | ".join(c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip()

    print(line(header))
    print("-+-".join("-" * x for x in widths))
    for r in rows:
        print(line(r))
    for note in notes:
        print(f"note: {note}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump({**payload, "notes": notes}, f, indent=2, sort_keys=True)
            f.write("\n")


# ---------------------------------------------------------------- registry.sh --auth


def _b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def distribution_token(key_pem, cert_pem, issuer, service, repos, ttl=3600):
    """An ES256 token as distribution's `auth: token` accepts it: the signing certificate in
    the `x5c` header (distribution checks it against its rootcertbundle), pull and push on
    each repository. The bench's own token issuer: distribution has none."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    with open(key_pem, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(cert_pem, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    now = int(time.time())
    header = {"alg": "ES256", "typ": "JWT", "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]}
    claims = {
        "iss": issuer,
        "sub": "bench",
        "aud": service,
        "exp": now + ttl,
        "nbf": now - 10,
        "iat": now,
        "jti": os.urandom(8).hex(),
        "access": [{"type": "repository", "name": r, "actions": ["pull", "push"]} for r in repos],
    }
    signing_input = _b64url(json.dumps(header).encode()) + "." + _b64url(json.dumps(claims).encode())
    r, s_ = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + _b64url(r.to_bytes(32, "big") + s_.to_bytes(32, "big"))


# ---------------------------------------------------------------- storm.sh


def storm_image(out_dir, total_mib, layers):
    """Random layers (engines do not look inside while pulling), a config and a manifest, as
    blobs named by their hex digest; image.tsv lists them, the manifest last."""
    os.makedirs(out_dir, exist_ok=True)
    layers = int(layers)
    each = int(float(total_mib) * 1048576) // layers
    descs = []
    for i in range(layers):
        h = hashlib.sha256()
        tmp = os.path.join(out_dir, f".partial-{i}")
        with open(tmp, "wb") as f:
            left = each + i * 4099  # sizes differ a little, as real layers do
            while left:
                chunk = os.urandom(min(left, 1 << 20))
                h.update(chunk)
                f.write(chunk)
                left -= len(chunk)
        os.rename(tmp, os.path.join(out_dir, h.hexdigest()))
        descs.append(({"mediaType": LAYER_GZIP_TYPE, "digest": f"sha256:{h.hexdigest()}", "size": os.path.getsize(os.path.join(out_dir, h.hexdigest()))}, f"sha256:{h.hexdigest()}"))
    manifest, config = _image(out_dir, "storm", descs)
    with open(os.path.join(out_dir, "image.tsv"), "w") as f:
        for d, _ in descs:
            f.write(f"layer\t{d['digest']}\t{d['size']}\n")
        f.write(f"config\t{config['digest']}\t{config['size']}\n")
        f.write(f"manifest\t{manifest['digest']}\t{manifest['size']}\n")


def storm_report(results_path, image_bytes, json_out=None):
    """Rows of RESULTS.tsv are "TARGET KEY VALUE"; targets are wharfage (3 replicas behind
    nginx), distribution1 (one instance) and distribution3 (three behind nginx)."""
    image_bytes = int(image_bytes)
    res = {}
    for line in open(results_path):
        t, k, v = line.rstrip("\n").split("\t")
        res.setdefault(t, {})[k] = float(v)
    targets = [t for t in ("wharfage", "distribution1", "distribution3") if t in res]
    rows = []
    mib = 1048576

    def cell(t, k, scale=1.0, digits=2):
        v = res[t].get(k)
        return "-" if v is None else f"{v / scale:.{digits}f}"

    for key, label, scale, digits in [
        ("p50", "time to a complete pull, p50 (s)", 1, 2),
        ("p95", "p95 (s)", 1, 2),
        ("p99", "p99 (s)", 1, 2),
        ("max", "max (s)", 1, 2),
        ("wall", "whole storm, first start to last end (s)", 1, 2),
        ("errors", "pulls that failed", 1, 0),
        ("bucket_bytes", "bytes read from the bucket, total (MiB)", mib, 1),
        ("bucket_bytes_r0", "  replica 1 (MiB)", mib, 1),
        ("bucket_bytes_r1", "  replica 2 (MiB)", mib, 1),
        ("bucket_bytes_r2", "  replica 3 (MiB)", mib, 1),
        ("rss_peak_r0", "peak RSS, replica 1 (MiB)", mib, 1),
        ("rss_peak_r1", "peak RSS, replica 2 (MiB)", mib, 1),
        ("rss_peak_r2", "peak RSS, replica 3 (MiB)", mib, 1),
        ("cpu_r0", "CPU during the storm, replica 1 (s)", 1, 1),
        ("cpu_r1", "CPU during the storm, replica 2 (s)", 1, 1),
        ("cpu_r2", "CPU during the storm, replica 3 (s)", 1, 1),
        ("cpu_nginx", "CPU during the storm, nginx (s)", 1, 1),
    ]:
        rows.append([label] + [cell(t, key, scale, digits) for t in targets])
    w = res.get("wharfage", {})
    d3 = res.get("distribution3", res.get("distribution1", {}))
    p99_ratio = w["p99"] / d3["p99"] if w.get("p99") and d3.get("p99") else float("nan")
    replicas = sum(1 for k in w if k.startswith("bucket_bytes_r"))
    d1 = res.get("distribution1", {})
    p99_ratio1 = w["p99"] / d1["p99"] if w.get("p99") and d1.get("p99") else float("nan")
    bucket_ratio = w.get("bucket_bytes", float("nan")) / (image_bytes * max(replicas, 1))
    errors = int(sum(r.get("errors", 0) for r in res.values()))
    nodes = int(w.get("nodes", d3.get("nodes", 0)))
    notes = [
        f"image: {image_bytes / mib:.1f} MiB (manifest, config, layers); {nodes} nodes, each pulling it once",
        "p99_ratio: wharfage's p99 over distribution's with three replicas behind the same nginx (goal <= 0.5)"
        + (f"; over one distribution instance behind nginx: {p99_ratio1:.2f}" if d1 else ""),
        f"bucket_bytes_ratio: wharfage's bucket bytes over image size x {replicas} replicas (goal <= 1.1)",
    ]
    print_table(["", *targets], rows, notes, {0}, json_out, {"results": res, "p99_ratio": p99_ratio, "bucket_bytes_ratio": bucket_ratio})
    print(f"storm: nodes={nodes} p99_ratio={p99_ratio:.2f} bucket_bytes_ratio={bucket_ratio:.2f} errors={errors}")


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "port":
        print(free_port())
    elif cmd == "median":
        print(statistics.median(float(x) for x in args))
    elif cmd == "mibs":
        b, s = float(args[0]), float(args[1])
        print(f"{b / 1048576 / s:.3f}" if s > 0 else "0")
    elif cmd == "kib-to-mib":
        print(f"{float(args[0]) / 1024:.1f}")
    elif cmd == "image":
        image_config(args[0], args[2])
    elif cmd == "manifest":
        image_manifest(*args[:5])
    elif cmd == "wrk":
        rps, non2xx, errors = parse_wrk(args[0])
        print(f"{rps} {non2xx} {errors}")
    elif cmd == "ab":
        rps, non2xx, failed = parse_ab(args[0])
        print(f"{rps} {non2xx} {failed}")
    elif cmd == "distribution-token":
        print(distribution_token(argv[1], argv[2], argv[3], argv[4], argv[5:]))
    elif cmd == "report":
        report(args[0], args[1] if len(args) > 1 else None)
    elif cmd == "layout":
        stage_layout(*args[:3])
    elif cmd == "json-field":
        json_fields(args[0], args[1:])
    elif cmd == "access-gets":
        access_gets(*args[:3])
    elif cmd == "stage-report":
        stage_report(args[0], args[1] if len(args) > 1 else None)
    elif cmd == "storm-image":
        storm_image(*args[:3])
    elif cmd == "storm-report":
        storm_report(args[0], args[1], args[2] if len(args) > 2 else None)
    elif cmd == "mirror-report":
        mirror_report(args[0], args[1] if len(args) > 1 else None)
    else:
        print(f"benchlib.py: unknown command {cmd!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
