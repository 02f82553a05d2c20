#!/usr/bin/env python3
"""Extrapolates bench/storm.sh to more nodes than one machine can play (docs/scale.md).

A fluid model, one step per 10 ms: N nodes start evenly spread over `--spread` seconds,
each wanting the image (`--image-mib`). Sources: R replicas of `--replica-gibps` egress each
(a replica's NIC, or the CPU figure bench/storm.sh measures), or the bucket itself at
`--bucket-gibps` with presigned redirects; with `--p2p`, every node that has the image also
serves it at `--node-up-gibps` (Spegel on each node, read through containerd's hosts.toml).
Active downloads share the sources' capacity equally, each capped by the node's link
(`--node-gibps`). A replica's blob cache fills from the bucket at `--fill-gibps` (once per
replica: coalesced fills), and no byte leaves a replica before it is filled.

Prints, per node count: p50/p99/max seconds to a complete pull, and the bytes read from the
bucket (with the cache: replicas x image; with redirects: nodes x image).

  scale_sim.py [--nodes 1000,10000] [--replicas 3] [--replica-gibps 1.16] [--p2p] ...
Standard library only.
"""

import argparse


def simulate(nodes, image_gib, replicas, replica_gibps, node_gibps, fill_gibps, spread, p2p, node_up_gibps, bucket_gibps, redirect, dt=0.01):
    # Nodes that start together progress together: cohorts of equal start time.
    cohorts = min(nodes, 200)
    count = [nodes // cohorts + (1 if k < nodes % cohorts else 0) for k in range(cohorts)]
    starts = [spread * k / cohorts for k in range(cohorts)]
    left = [image_gib] * cohorts
    done_at = [None] * cohorts
    t = 0.0
    served_by_peers = 0.0
    while any(d is None for d in done_at):
        active = [k for k in range(cohorts) if done_at[k] is None and starts[k] <= t]
        completed = sum(count[k] for k in range(cohorts) if done_at[k] is not None)
        capacity = bucket_gibps if redirect else replicas * replica_gibps
        peer_capacity = completed * node_up_gibps if p2p else 0.0
        total = capacity + peer_capacity
        n_active = sum(count[k] for k in active)
        if n_active:
            share = min(node_gibps, total / n_active)
            # No byte leaves a replica before its fill has it (cache mode, cold start).
            front = image_gib if redirect else min(image_gib, fill_gibps * t)
            for k in active:
                got = min(share * dt, left[k], max(0.0, front - (image_gib - left[k])))
                left[k] -= got
                if peer_capacity:
                    served_by_peers += got * count[k] * peer_capacity / total
                if left[k] <= 1e-9:
                    done_at[k] = t + dt - starts[k]
        t += dt
        if t > 36000:
            raise SystemExit("simulation: no end after 10 hours of simulated time")
    times = sorted(x for k in range(cohorts) for x in [done_at[k]] * count[k])

    def q(p):
        return times[min(len(times) - 1, max(0, int(p * len(times) + 0.999999) - 1))]

    bucket = image_gib * (nodes if redirect else replicas)
    return q(0.5), q(0.99), times[-1], bucket, served_by_peers


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="50,200,1000,10000")
    ap.add_argument("--image-mib", type=float, default=200)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--replica-gibps", type=float, default=1.16, help="egress per replica (10 GbE: 1.16)")
    ap.add_argument("--node-gibps", type=float, default=1.16, help="a node's download link")
    ap.add_argument("--fill-gibps", type=float, default=0.5, help="a replica's cache fill from the bucket")
    ap.add_argument("--spread", type=float, default=1.0, help="seconds over which the nodes start")
    ap.add_argument("--p2p", action="store_true", help="nodes that have the image serve it too")
    ap.add_argument("--node-up-gibps", type=float, default=0.5, help="what a node gives its peers")
    ap.add_argument("--redirect", action="store_true", help="presigned redirects: the bucket serves every byte")
    ap.add_argument("--bucket-gibps", type=float, default=10.0, help="the bucket's aggregate egress (redirects)")
    a = ap.parse_args()
    image_gib = a.image_mib / 1024
    mode = "redirects" if a.redirect else f"{a.replicas} replicas x {a.replica_gibps} GiB/s" + (" + p2p" if a.p2p else "")
    print(f"image {a.image_mib:.0f} MiB, {mode}, node link {a.node_gibps} GiB/s")
    print(f"{'nodes':>7} | {'p50 (s)':>8} | {'p99 (s)':>8} | {'max (s)':>8} | {'bucket (GiB)':>12} | {'from peers (GiB)':>16}")
    for n in (int(x) for x in a.nodes.split(",")):
        p50, p99, mx, bucket, peers = simulate(
            n, image_gib, a.replicas, a.replica_gibps, a.node_gibps, a.fill_gibps, a.spread, a.p2p, a.node_up_gibps, a.bucket_gibps, a.redirect
        )
        print(f"{n:>7} | {p50:>8.1f} | {p99:>8.1f} | {mx:>8.1f} | {bucket:>12.1f} | {peers:>16.1f}")


if __name__ == "__main__":
    main()
