#!/usr/bin/env python3
"""Small helpers for bench/registry.sh: the arithmetic, JSON and table work that is
awkward in bash. Standard library only.

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
"""

import json
import re
import socket
import statistics
import sys

LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"

# (key, label, higher_is_better, compared with nginx)
METRICS = [
    ("push_mibs", "blob push, 1 client (MiB/s)", True, False),
    ("get1_mibs", "blob GET, 1 client (MiB/s)", True, True),
    ("get8_mibs", "blob GET, 8 clients, total (MiB/s)", True, True),
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

    header = ["metric", "better", "wharfage", "distribution", "wharfage/dist", "nginx", "wharfage/nginx"]
    rows = []
    for key, label, higher, vs_nginx in METRICS:
        rows.append(
            [
                label,
                "higher" if higher else "lower",
                fmt(w.get(key)),
                fmt(d.get(key)),
                ratio(w.get(key), d.get(key)),
                fmt(n.get(key)) if vs_nginx else "",
                ratio(w.get(key), n.get(key)) if vs_nginx else "",
            ]
        )
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]

    def line(cells):
        out = []
        for i, c in enumerate(cells):
            out.append(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]))
        return " | ".join(out)

    print(line(header))
    print("-+-".join("-" * x for x in widths))
    for r in rows:
        print(line(r))
    for note in notes:
        print(f"note: {note}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"results": values, "notes": notes}, f, indent=2, sort_keys=True)
            f.write("\n")


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
    elif cmd == "report":
        report(args[0], args[1] if len(args) > 1 else None)
    else:
        print(f"benchlib.py: unknown command {cmd!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
