//! Garbage collection while pushes and stagings go on, with a zero grace period: only the
//! protect/deleting handshake keeps a collection from removing what a client is being told
//! is stored. Several threads push images (HEAD-then-skip, monolithic, chunked sessions,
//! mounts) whose layers were garbage a moment earlier, stage apps whose blobs other apps'
//! unpinning just made garbage, while collections loop (the periodic one, and two clients
//! posting `/api/v1/gc` back to back). Afterwards every acknowledged image is pulled
//! completely and compared byte for byte; refusals during the run are fine only as proper
//! registry errors, and are counted.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use server::mgmt::types::{GcReport, StagingView};

use super::{layer, pull, push, zero_grace, Img, Refused, Reg, Via};
use crate::client::Http;
use crate::fixtures::Rng;
use crate::skopeo::Skopeo;

/// How long the pushes, stagings and collections run together: `WHARFAGE_GC_STRESS_SECS`
/// or 25 s.
pub(super) fn stress_duration(default_secs: u64) -> Duration {
    let secs = std::env::var("WHARFAGE_GC_STRESS_SECS").ok().and_then(|v| v.parse().ok()).unwrap_or(default_secs);
    Duration::from_secs(secs)
}

/// The repositories pushers write to; two threads share each, so a layer one thread just
/// turned into garbage is another's HEAD hit or mount source.
const REPOS: [&str; 2] = ["stress/r0", "stress/r1"];

/// Layers shared by everything: pushed images and the upstream's images.
pub(super) fn pool() -> Vec<Vec<u8>> {
    (0..8).map(|i| layer(1000 + i, (8 + 4 * i as usize) << 10)).collect()
}

/// An image a registry acknowledged (manifest PUT 201), to pull back at the end.
#[derive(Clone)]
pub(super) struct Acked {
    /// Index of the registry it was pushed to.
    pub target: usize,
    pub repo: String,
    pub tag: String,
    pub img: Img,
}

/// Everything that happened during a run.
#[derive(Default)]
pub(super) struct Outcome {
    pub acked: Vec<Acked>,
    pub refused: Vec<Refused>,
    pub gc_runs: u64,
    pub gc_blobs_removed: u64,
    pub gc_protected: u64,
    pub gc_failures: Vec<String>,
}

/// Pushes on `pushers` threads to `targets` (round-robin) while one thread per entry of
/// `collectors` posts `/api/v1/gc`, `pause` apart (zero: back to back), until `duration` is
/// over. `also` runs on its own thread with the stop flag (stagings, say).
pub(super) fn push_while_collecting(
    targets: &[&Http],
    collectors: &[&Http],
    pause: Duration,
    pushers: usize,
    duration: Duration,
    also: Option<&(dyn Fn(&AtomicBool) + Sync)>,
) -> Outcome {
    let pool = pool();
    let stop = AtomicBool::new(false);
    let out = Mutex::new(Outcome::default());
    std::thread::scope(|s| {
        for t in 0..pushers {
            let (pool, stop, out) = (&pool, &stop, &out);
            let target = t % targets.len();
            let http = targets[target];
            s.spawn(move || pusher(t, target, http, pool, stop, out));
        }
        for http in collectors {
            let (stop, out) = (&stop, &out);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = http.send("POST", "/api/v1/gc", &[("content-type", "application/json")], b"{}".to_vec());
                    let mut o = out.lock().unwrap();
                    if r.status == 200 {
                        let report: GcReport = r.json();
                        o.gc_runs += 1;
                        o.gc_blobs_removed += report.blobs.count;
                        o.gc_protected += report.protected;
                    } else {
                        o.gc_failures.push(format!("{} {}", r.status, r.text()));
                    }
                    drop(o);
                    std::thread::sleep(pause);
                }
            });
        }
        if let Some(f) = also {
            let stop = &stop;
            s.spawn(move || f(stop));
        }
        std::thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
    });
    out.into_inner().unwrap()
}

/// One pushing thread. Each round pushes a junk image and deletes it (its layers are now
/// garbage in the shared repository), then pushes an image using one of those layers, a
/// couple of pool layers and a layer of its own, the blobs sent the round's way.
fn pusher(t: usize, target: usize, http: &Http, pool: &[Vec<u8>], stop: &AtomicBool, out: &Mutex<Outcome>) {
    let repo = REPOS[t % 2];
    let other = REPOS[(t + 1) % 2];
    let mut rng = Rng::new(7 + t as u64);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let seed = (t as u64 + 1) * 1_000_000 + n * 10;
        let ephemeral = layer(seed, 4 << 10);
        let junk = Img::new(&format!("junk {t}/{n}"), &[&ephemeral, &layer(seed + 1, 2 << 10)]);
        match push(http, repo, &format!("junk-{t}-{n}"), &junk, Via::Post) {
            Ok(()) => {
                let r = http.send("DELETE", &format!("/v2/{repo}/manifests/{}", junk.digest), &[], Vec::new());
                assert_eq!(r.status, 202, "deleting junk {}: {}", junk.digest, r.text());
            }
            Err(e) => out.lock().unwrap().refused.push(e),
        }
        let a = &pool[(rng.next_u64() % pool.len() as u64) as usize];
        let b = &pool[(rng.next_u64() % pool.len() as u64) as usize];
        let own = layer(seed + 2, 3 << 10);
        let img = Img::new(&format!("image {t}/{n}"), &[a, b, &ephemeral, &own]);
        let via = match n % 4 {
            0 => Via::HeadThenPost,
            1 => Via::Mount(other),
            2 => Via::Session,
            _ => Via::Post,
        };
        let tag = format!("t{t}-{n}");
        let mut result = push(http, repo, &tag, &img, via);
        if let Err(e) = result {
            // What a client does with "push it again": push again, every blob this time.
            out.lock().unwrap().refused.push(e);
            result = push(http, repo, &tag, &img, Via::Post);
        }
        let mut o = out.lock().unwrap();
        match result {
            Ok(()) => o.acked.push(Acked { target, repo: repo.to_string(), tag, img }),
            Err(e) => o.refused.push(e),
        }
        n += 1;
    }
}

/// The registry errors a push may get while a collection removes what it relies on.
const PROPER: [&str; 3] = ["MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "BLOB_UPLOAD_UNKNOWN"];

/// Asserts every refusal was a proper registry error (4xx with one of [`PROPER`]).
#[track_caller]
pub(super) fn assert_proper(refused: &[Refused]) {
    let improper: Vec<String> = refused
        .iter()
        .filter(|r| !(400..500).contains(&r.status) || r.codes.is_empty() || !r.codes.iter().all(|c| PROPER.contains(&c.as_str())))
        .map(|r| r.to_string())
        .collect();
    assert!(
        improper.is_empty(),
        "{} push(es) failed with something other than a proper registry error:\n{}",
        improper.len(),
        improper.join("\n")
    );
}

/// Pulls every acknowledged image completely (by tag and by digest) from `from` (each
/// image from the registry it was pushed to, when `None`); the failures, all of them.
pub(super) fn pull_all(targets: &[&Http], acked: &[Acked], from: Option<usize>) -> Vec<String> {
    let mut bad = Vec::new();
    for a in acked {
        let http = targets[from.unwrap_or(a.target)];
        for reference in [a.tag.as_str(), a.img.digest.as_str()] {
            if let Err(e) = pull(http, &a.repo, reference, &a.img) {
                bad.push(e);
            }
        }
    }
    bad
}

/// A staging the registry acknowledged (201).
struct Staged {
    app: String,
    staging_id: String,
    img: usize,
}

#[test]
fn pushes_and_stagings_survive_collections_looping_with_zero_grace() {
    let skopeo = Skopeo::new();
    let pool = pool();
    // The upstream's images: pool layers (shared with the pushes) and one layer of their own.
    let up = Reg::fs(&[]);
    let upstream: Vec<Img> =
        (0..4).map(|i| Img::new(&format!("upstream {i}"), &[&pool[i], &pool[(i + 3) % 8], &layer(2000 + i as u64, 6 << 10)])).collect();
    for (i, img) in upstream.iter().enumerate() {
        push(&up.http, "src/app", &format!("v{i}"), img, Via::Post).unwrap();
    }
    let mut args = zero_grace();
    args.extend(["--gc-interval", "1s", "--insecure-registry", &up.host()].map(String::from));
    let w = Reg::fs(&args);

    // Stagings: "keep" apps, re-staged in turn with the upstream's images (retention 2 ages
    // the old ones out), and "churn" apps staged and unpinned at once, so the blobs they
    // share with the keep apps keep becoming garbage.
    let staged = Mutex::new(Vec::<Staged>::new());
    let stage_refused = Mutex::new(Vec::<String>::new());
    let stager = |stop: &AtomicBool| {
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let (app, img) = if n % 3 == 2 { (format!("churn-{}", n % 2), (n + 1) % 4) } else { (format!("keep-{}", n % 3), n % 4) };
            let r = w.stage(&format!("{}/src/app:v{img}", up.host()), &app);
            if r.status == 201 {
                let v: StagingView = r.json();
                assert_eq!(v.record.digest.to_string(), upstream[img].digest, "staged digest");
                if app.starts_with("churn") {
                    w.http
                        .send("DELETE", &format!("/api/v1/apps/{app}"), &[("content-type", "application/json")], Vec::new())
                        .expect(200, "unpinning a churn app");
                } else {
                    staged.lock().unwrap().push(Staged { app, staging_id: v.record.staging_id.to_string(), img });
                }
            } else {
                stage_refused.lock().unwrap().push(format!("{app}: {} {}", r.status, r.text()));
            }
            n += 1;
        }
    };
    let collectors = [&w.http, &w.http];
    let started = Instant::now();
    let outcome = push_while_collecting(&[&w.http], &collectors, Duration::ZERO, 3, stress_duration(25), Some(&stager));
    let ran = started.elapsed();
    let staged = staged.into_inner().unwrap();
    let stage_refused = stage_refused.into_inner().unwrap();
    eprintln!(
        "gc stress over {ran:.1?}: {} pushes acknowledged, {} refusals; {} stagings acknowledged (keep apps), {} refused; \
         {} collections removed {} blobs and kept {} protected digests",
        outcome.acked.len(),
        outcome.refused.len(),
        staged.len(),
        stage_refused.len(),
        outcome.gc_runs,
        outcome.gc_blobs_removed,
        outcome.gc_protected
    );
    for r in outcome.refused.iter().take(10) {
        eprintln!("  refused: {r}");
    }
    for r in stage_refused.iter().take(10) {
        eprintln!("  staging refused: {r}");
    }
    assert!(outcome.gc_failures.is_empty(), "collections failed during the run:\n{}", outcome.gc_failures.join("\n"));
    assert!(outcome.gc_runs >= 5, "only {} collections ran", outcome.gc_runs);
    assert!(outcome.gc_blobs_removed > 0, "the collections never removed anything: the run exercised nothing");
    assert!(outcome.acked.len() >= 10, "only {} pushes were acknowledged", outcome.acked.len());
    assert!(staged.len() >= 3, "only {} stagings were acknowledged", staged.len());
    assert_proper(&outcome.refused);
    // A staging that relies on a digest a collection is removing fails with 503 (retry) and
    // says why.
    let improper: Vec<&String> = stage_refused
        .iter()
        .filter(|r| !r.contains(": 503 ") || !(r.contains("being removed by garbage collection") || r.contains("is not stored")))
        .collect();
    assert!(improper.is_empty(), "stagings failed with something other than a proper error:\n{improper:?}");

    // One more collection with nothing going on, once every protection of the run is older
    // than the protect window (2 s): it leaves exactly what is reachable.
    std::thread::sleep(Duration::from_secs(3));
    let last = w.gc(false);
    let bad = pull_all(&[&w.http], &outcome.acked, None);
    assert!(bad.is_empty(), "{} of {} acknowledged pushes do not pull back whole:\n{}", bad.len(), outcome.acked.len(), bad.join("\n"));
    let mut by_app: BTreeMap<&str, Vec<&Staged>> = BTreeMap::new();
    for s in &staged {
        by_app.entry(&s.app).or_default().push(s);
    }
    let mut bad = Vec::new();
    for (app, stagings) in &by_app {
        let history = w.history(app);
        assert!(!history.is_empty(), "app {app} lost every staging");
        for s in stagings {
            if history.contains(&s.staging_id) {
                if let Err(e) = pull(&w.http, &format!("apps/{app}"), &upstream[s.img].digest, &upstream[s.img]) {
                    bad.push(format!("staging {} of {app}: {e}", s.staging_id));
                }
            } else {
                // Only retention may drop an acknowledged staging: current + 2 newer ones.
                let newer = stagings.iter().filter(|o| o.staging_id > s.staging_id).count();
                if newer < 3 {
                    bad.push(format!("staging {} of {app} is gone with only {newer} newer stagings (history {history:?})", s.staging_id));
                }
            }
        }
        assert!(history.len() <= 3, "app {app} keeps {} stagings after a quiet collection", history.len());
    }
    assert!(bad.is_empty(), "acknowledged stagings lost:\n{}", bad.join("\n"));

    // skopeo, for the first and last acknowledged pushes and each keep app's current image.
    let first = &outcome.acked[0];
    let latest = outcome.acked.last().unwrap();
    for a in [first, latest] {
        w.skopeo_pull_check(&skopeo, &a.repo, &a.tag, &a.img);
    }
    for (app, stagings) in &by_app {
        let current = stagings.iter().max_by(|a, b| a.staging_id.cmp(&b.staging_id)).unwrap();
        w.skopeo_pull_check(&skopeo, &format!("apps/{app}"), &upstream[current.img].digest, &upstream[current.img]);
    }

    // Nothing is left half-collected: the store is whole and holds no garbage.
    let (dir, backing) = w.stop();
    let flags = super::deletion_flags(&dir.path().join("root"));
    assert!(flags.is_empty(), "deletion flags or run folders left behind: {flags:?}");
    let report = super::fsck_json(dir.path(), &backing, &[]);
    assert_eq!(report["problems"], json!([]), "fsck after the run (last collection: {last:?})");
}
