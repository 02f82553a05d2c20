#!/usr/bin/env python3
"""Helpers for bench/gc.sh: fabricate a wharfage filesystem store directly in the storage
layout (see ARCHITECTURE.md and crates/store/src/keys.rs), and compare what collections
reported with what the fabrication says they should remove. Standard library only.

  gcstore.py fabricate ROOT [--manifests N] [--layers-per-image L] [--shared S]
             [--repos R] [--live-percent P] [--age-hours H] [--seed X]
                        write the store; print its figures and the expected garbage (JSON)
  gcstore.py report FABRICATED.json DRY.json REAL.json AGAIN.json TIMES.tsv [JSON_OUT]
                        print the table; exit 1 if a report disagrees with the expectation

Every image has a config of its own, L - S layers of its own and S layers drawn from a
pool shared by all images; the pool is sized so that the store holds 10 blobs per image
(manifest, config, layers). With the defaults (10,000 manifests, 12 layers of which 6
shared, 100 repositories) that is 100,000 blobs and 130,000 layer links. P percent of the images are
tagged (live); the rest are untagged garbage. Every object gets an mtime H hours in the
past, so the default grace period (1 h) protects none of them.

Layout written (digests are sha256 of the bytes written):
  blobs/sha256/<aa>/<hex>                      the bytes (small: the benchmark measures
                                               marking and sweeping, not disk throughput)
  repositories/<repo>/_manifests/sha256/<hex>  {"mediaType": ...}
  repositories/<repo>/_layers/sha256/<hex>     empty, for the config and every layer
  repositories/<repo>/_tags/<tag>              the digest, for live images
"""

import argparse
import hashlib
import json
import os
import random
import sys
import time

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


class Writer:
    """Writes files under a root, creating directories once, and back-dates them."""

    def __init__(self, root, mtime):
        self.root = root
        self.mtime = mtime
        self.dirs = set()
        self.files = 0

    def write(self, rel, data):
        path = os.path.join(self.root, rel)
        d = os.path.dirname(path)
        if d not in self.dirs:
            os.makedirs(d, exist_ok=True)
            self.dirs.add(d)
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (self.mtime, self.mtime))
        self.files += 1

    def blob(self, data):
        digest = hashlib.sha256(data).hexdigest()
        self.write(f"blobs/sha256/{digest[:2]}/{digest}", data)
        return digest


def fabricate(argv):
    ap = argparse.ArgumentParser(prog="gcstore.py fabricate")
    ap.add_argument("root")
    ap.add_argument("--manifests", type=int, default=10_000)
    ap.add_argument("--layers-per-image", type=int, default=12)
    ap.add_argument("--shared", type=int, default=6, help="layers per image drawn from the shared pool")
    ap.add_argument("--repos", type=int, default=100)
    ap.add_argument("--live-percent", type=int, default=50)
    ap.add_argument("--age-hours", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    started = time.time()
    rng = random.Random(a.seed)
    w = Writer(a.root, time.time() - a.age_hours * 3600)

    n, own = a.manifests, a.layers_per_image - a.shared
    # The pool makes up the rest of 10 blobs per image (manifest, config, layers): with the
    # defaults, 40,000 shared layers, each drawn by 1.5 images on average (and about a fifth
    # by none: orphans, as deleted images leave them).
    pool_size = max(a.shared, n * 10 - n * (2 + own)) if a.shared else 0

    def layer_bytes(tag):
        return tag.encode() + rng.randbytes(rng.randrange(64, 512))

    sizes = {}
    pool = []
    for i in range(pool_size):
        data = layer_bytes(f"shared layer {i}\n")
        d = w.blob(data)
        pool.append(d)
        sizes[d] = len(data)

    live_images = set(rng.sample(range(n), n * a.live_percent // 100))
    dead_manifests = {}  # image -> manifest digest, for the untagged ones
    links = set()  # (repo, digest) layer links written
    live_links = set()  # ... that a live image of the repository uses
    live_blobs = set()  # digests a live image uses
    for i in range(n):
        repo = f"bench/app{i % a.repos}"
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "config": {"Env": [f"IMAGE={i}"]}, "rootfs": {"type": "layers", "diff_ids": []}},
            separators=(",", ":"),
        ).encode()
        cd = w.blob(config)
        sizes[cd] = len(config)
        layers = []
        for k in range(own):
            data = layer_bytes(f"image {i} layer {k}\n")
            d = w.blob(data)
            sizes[d] = len(data)
            layers.append(d)
        layers += rng.sample(pool, a.shared)
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST_TYPE,
                "config": {"mediaType": CONFIG_TYPE, "digest": f"sha256:{cd}", "size": len(config)},
                "layers": [{"mediaType": LAYER_TYPE, "digest": f"sha256:{d}", "size": sizes[d]} for d in layers],
            },
            indent=2,
        ).encode()
        md = w.blob(manifest)
        sizes[md] = len(manifest)
        if i not in live_images:
            dead_manifests[i] = md
        w.write(f"repositories/{repo}/_manifests/sha256/{md}", json.dumps({"mediaType": MANIFEST_TYPE}).encode())
        for d in [cd] + layers:
            if (repo, d) not in links:
                w.write(f"repositories/{repo}/_layers/sha256/{d}", b"")
                links.add((repo, d))
        if i in live_images:
            w.write(f"repositories/{repo}/_tags/v{i}", f"sha256:{md}".encode())
            live_blobs.update([md, cd] + layers)
            live_links.update((repo, d) for d in [cd] + layers)
    # What a collection removes: the untagged manifests, the links no live image of their
    # repository uses, and the bytes no live image uses at all (unused pool layers too).
    dead = [d for d in sizes if d not in live_blobs]
    garbage = {
        "manifests": n - len(live_images),
        "layer_links": len(links - live_links),
        "blobs": len(dead),
        "blob_bytes": sum(sizes[d] for d in dead),
    }
    total_blobs = len(sizes)
    # One live and one dead image, for the script's spot checks over HTTP.
    some_live = min(live_images)
    some_dead = min(set(range(n)) - live_images) if len(live_images) < n else None
    out = {
        "sample": {"live_repo": f"bench/app{some_live % a.repos}", "live_tag": f"v{some_live}",
                   "dead_repo": None if some_dead is None else f"bench/app{some_dead % a.repos}",
                   "dead_digest": None if some_dead is None else f"sha256:{dead_manifests[some_dead]}"},
        "manifests": n,
        "blobs": total_blobs,
        "files": w.files,
        "live_images": len(live_images),
        "expected": garbage,
        "seconds": round(time.time() - started, 1),
    }
    json.dump(out, sys.stdout)
    print()


def load(path):
    with open(path) as f:
        return json.load(f)


def report(argv):
    fab, dry, real, again = (load(p) for p in argv[:4])
    times = dict(line.rstrip("\n").split("\t") for line in open(argv[4]) if line.strip())
    json_out = argv[5] if len(argv) > 5 else None
    exp = fab["expected"]

    def removed(r):
        return {
            "manifests": r["manifests"]["count"],
            "layer_links": r["layer_links"]["count"],
            "blobs": r["blobs"]["count"],
            "blob_bytes": r["blobs"]["bytes"],
        }

    print()
    print(f"store: {fab['manifests']:,} manifests, {fab['blobs']:,} blobs, {fab['files']:,} files "
          f"({fab['live_images']:,} images tagged; fabricated in {fab['seconds']} s)")
    print()
    head = f"{'run':<26}{'wall s':>8}{'gc s':>8}{'manifests':>11}{'links':>9}{'blobs':>9}{'blob MiB':>10}{'live blobs':>12}"
    print(head)
    print("-" * len(head))
    for name, key, r in [("gc --dry-run", "dry", dry), ("gc", "real", real), ("gc again (nothing left)", "again", again)]:
        x = removed(r)
        print(f"{name:<26}{float(times[key]):>8.2f}{r['seconds']:>8.2f}{x['manifests']:>11,}{x['layer_links']:>9,}"
              f"{x['blobs']:>9,}{x['blob_bytes'] / 2**20:>10.1f}{r['live_blobs']:>12,}")
    print(f"{'expected':<26}{'':>8}{'':>8}{exp['manifests']:>11,}{exp['layer_links']:>9,}{exp['blobs']:>9,}"
          f"{exp['blob_bytes'] / 2**20:>10.1f}")
    if "fsck" in times:
        print(f"\nfsck after the collection (re-hash every blob, check every link): {float(times['fsck']):.2f} s")
    peak = None
    if "rss_real_peak_mib" in times:
        print(f"server RSS: {float(times['rss_idle_mib']):.0f} MiB once started and the store measured for /metrics")
        for name, key in [("gc --dry-run", "dry"), ("gc", "real"), ("gc again", "again")]:
            before, top = float(times[f"rss_{key}_before_mib"]), float(times[f"rss_{key}_peak_mib"])
            print(f"  {name:<24} {before:>6.0f} MiB before, {top:>6.0f} MiB peak during the run")
        before, peak = float(times["rss_real_before_mib"]), max(float(times[f"rss_{k}_peak_mib"]) for k in ("dry", "real", "again"))
        real_peak = float(times["rss_real_peak_mib"])
        per_blob = (real_peak - before) * 2**20 / fab["blobs"]
        per_live = (real_peak - before) * 2**20 / max(real["live_blobs"], 1)
        print(f"the collection's own memory (peak during the real run minus RSS before it): {per_blob:.0f} bytes "
              f"per blob, {per_live:.0f} per live blob")

    problems = []
    if removed(dry) != exp:
        problems.append(f"dry run removed {removed(dry)}, expected {exp}")
    if removed(real) != exp:
        problems.append(f"real run removed {removed(real)}, expected {exp}")
    left = removed(again)
    if any(left.values()):
        problems.append(f"a second run still removed {left}")
    if fab["blobs"] <= 100_000:
        verdict = "met" if float(times["real"]) < 10.0 else "MISSED"
        print(f"target: full mark and sweep under 10 s at 100,000 blobs: {verdict} ({float(times['real']):.1f} s)")
        if peak is not None:
            verdict = "met" if peak <= 64 else "MISSED"
            print(f"target: server peak RSS during a collection at most 64 MiB at 100,000 blobs: {verdict} ({peak:.0f} MiB)")
    for p in problems:
        print(f"MISMATCH: {p}")
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"store": fab, "dry_run": dry, "gc": real, "gc_again": again,
                       "bytes_per_blob": per_blob if peak is not None else None,
                       "bytes_per_live_blob": per_live if peak is not None else None,
                       "wall_seconds": {k: float(v) for k, v in times.items()}, "problems": problems}, f, indent=2)
    return 1 if problems else 0


def main(argv):
    if argv and argv[0] == "fabricate":
        fabricate(argv[1:])
        return 0
    if argv and argv[0] == "report" and len(argv) >= 6:
        return report(argv[1:])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
