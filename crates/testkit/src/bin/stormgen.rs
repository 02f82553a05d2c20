//! The nodes of `bench/storm.sh`: N simulated nodes pulling one image at once, each the way
//! an engine does (manifest by digest, then the config, then the layers over a few parallel
//! connections), all starting within a spread of one second.
//!
//! ```text
//! stormgen URL REPO MANIFEST_DIGEST NODES [PARALLEL (3)] [SPREAD_MS (1000)] [VERIFY_EVERY (10)]
//! ```
//!
//! Every node has a connection pool of its own (as separate machines do), checks every
//! body's length, and every VERIFY_EVERY-th node also checks each blob's digest (hashing
//! every byte of every node would make this program, not the registry, the bottleneck on a
//! small machine). Prints one JSON line to stdout: `nodes`, `errors`, seconds to a complete
//! pull `p50`, `p95`, `p99`, `max`, `wall` (first start to last end) and `bytes` received;
//! the first few errors go to stderr.
//!
//! Written in Rust rather than with the bench's Python helpers: hundreds of connections
//! moving gigabytes on loopback would leave a Python event loop, not the registry, as what
//! is measured.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{FutureExt, StreamExt};
use sha2::Digest as _;

struct Cfg {
    url: String,
    repo: String,
    manifest: String,
    parallel: usize,
    verify_every: usize,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        usage();
    }
    let num = |i: usize, default: u64| args.get(i).map(|v| v.parse::<u64>().unwrap_or_else(|_| usage())).unwrap_or(default);
    let nodes = num(3, 0) as usize;
    let cfg = Arc::new(Cfg {
        url: args[0].trim_end_matches('/').to_string(),
        repo: args[1].clone(),
        manifest: args[2].clone(),
        parallel: num(4, 3).max(1) as usize,
        verify_every: num(6, 10).max(1) as usize,
    });
    let spread = Duration::from_millis(num(5, 1000));
    testkit::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap_or_else(|e| fail(e));
    rt.block_on(async move {
        let start = Instant::now();
        let tasks: Vec<_> = (0..nodes)
            .map(|i| {
                let cfg = cfg.clone();
                // Evenly spread over the second, so that the storm does not depend on luck.
                let at = spread.mul_f64(i as f64 / nodes.max(1) as f64);
                tokio::spawn(async move {
                    tokio::time::sleep_until((start + at).into()).await;
                    let t = Instant::now();
                    let result = node(cfg, i).await;
                    (t.elapsed().as_secs_f64(), result)
                })
            })
            .collect();
        let mut times = Vec::new();
        let (mut errors, mut bytes) = (0u64, 0u64);
        for t in tasks {
            match t.await {
                Ok((secs, Ok(n))) => {
                    times.push(secs);
                    bytes += n;
                }
                Ok((_, Err(e))) => {
                    errors += 1;
                    if errors <= 5 {
                        eprintln!("stormgen: {e}");
                    }
                }
                Err(e) => {
                    errors += 1;
                    eprintln!("stormgen: a node panicked: {e}");
                }
            }
        }
        let wall = start.elapsed().as_secs_f64();
        times.sort_by(f64::total_cmp);
        let q = |p: f64| if times.is_empty() { 0.0 } else { times[((p * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1] };
        println!(
            "{{\"nodes\": {nodes}, \"errors\": {errors}, \"p50\": {:.3}, \"p95\": {:.3}, \"p99\": {:.3}, \"max\": {:.3}, \"wall\": {wall:.3}, \"bytes\": {bytes}}}",
            q(0.5),
            q(0.95),
            q(0.99),
            q(1.0)
        );
    });
}

/// One node's pull; the bytes it received.
async fn node(cfg: Arc<Cfg>, i: usize) -> Result<u64, String> {
    let client = reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .pool_max_idle_per_host(cfg.parallel)
        .connect_timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let verify = i.is_multiple_of(cfg.verify_every);
    let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
    let url = format!("{}/v2/{}/manifests/{}", cfg.url, cfg.repo, cfg.manifest);
    let resp = client.get(&url).header("accept", accept).send().await.map_err(|e| format!("node {i}: GET {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("node {i}: GET {url}: {}", resp.status()));
    }
    let body = resp.bytes().await.map_err(|e| format!("node {i}: manifest body: {e}"))?;
    let m: serde_json::Value = serde_json::from_slice(&body).map_err(|e| format!("node {i}: manifest: {e}"))?;
    let blob = |v: &serde_json::Value| -> Option<(String, u64)> { Some((v["digest"].as_str()?.to_string(), v["size"].as_u64()?)) };
    let config = blob(&m["config"]).ok_or_else(|| format!("node {i}: the manifest has no config"))?;
    let layers: Vec<(String, u64)> = m["layers"].as_array().map(|l| l.iter().filter_map(blob).collect()).unwrap_or_default();
    let mut total =
        body.len() as u64 + get_blob(client.clone(), cfg.clone(), config, verify).await.map_err(|e| format!("node {i}: {e}"))?;
    let mut pulls =
        futures::stream::iter(layers).map(|l| get_blob(client.clone(), cfg.clone(), l, verify).boxed()).buffer_unordered(cfg.parallel);
    while let Some(n) = pulls.next().await {
        total += n.map_err(|e| format!("node {i}: {e}"))?;
    }
    Ok(total)
}

async fn get_blob(client: reqwest::Client, cfg: Arc<Cfg>, (digest, size): (String, u64), verify: bool) -> Result<u64, String> {
    let url = format!("{}/v2/{}/blobs/{digest}", cfg.url, cfg.repo);
    let resp = client.get(&url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("GET {url}: {}", resp.status()));
    }
    let mut hasher = verify.then(sha2::Sha256::new);
    let mut got = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("GET {url}: the body broke off after {got} bytes: {e}"))?;
        got += chunk.len() as u64;
        if let Some(h) = &mut hasher {
            h.update(&chunk);
        }
    }
    if got != size {
        return Err(format!("GET {url}: {got} bytes, the manifest says {size}"));
    }
    if let Some(h) = hasher {
        let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if digest.strip_prefix("sha256:") != Some(hex.as_str()) {
            return Err(format!("GET {url}: the bytes hash to sha256:{hex}"));
        }
    }
    Ok(got)
}

fn usage() -> ! {
    eprintln!("usage: stormgen URL REPO MANIFEST_DIGEST NODES [PARALLEL (3)] [SPREAD_MS (1000)] [VERIFY_EVERY (10)]");
    std::process::exit(2)
}

fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("stormgen: {e}");
    std::process::exit(1)
}
