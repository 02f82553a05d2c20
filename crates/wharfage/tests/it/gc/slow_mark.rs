//! A collection whose mark phase is slow (ten thousand live manifests): pushes that overlap
//! it, an index over untagged children, a blob found by HEAD and a mounted layer, are all kept.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{layer, pull, push, Img, Reg, Via};
use crate::client::{Http, RegistryExt};
use crate::fixtures::{sha256, OCI_INDEX, OCI_MANIFEST};
use crate::skopeo::Skopeo;

/// A multi-arch index over images already in the repository.
struct IndexImg {
    manifest: Vec<u8>,
    digest: String,
    children: Vec<Img>,
}

impl IndexImg {
    fn new(children: Vec<Img>) -> IndexImg {
        let descs: Vec<_> = children
            .iter()
            .zip(["amd64", "arm64"])
            .map(|(c, arch)| json!({ "mediaType": OCI_MANIFEST, "digest": c.digest, "size": c.manifest.len(), "platform": { "architecture": arch, "os": "linux" } }))
            .collect();
        let manifest = serde_json::to_vec_pretty(&json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs })).unwrap();
        IndexImg { digest: sha256(&manifest), manifest, children }
    }
}

/// Writes tagged manifests `from..to` (all naming one config and one layer) straight into a
/// filesystem root, in the storage layout, so that marking them takes a while.
fn fabricate_live_manifests(root: &std::path::Path, from: usize, to: usize) {
    let write = |rel: String, bytes: &[u8]| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    };
    let blob = |d: &str| format!("blobs/sha256/{}/{}", &d[7..9], &d[7..]);
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = layer(3000, 1 << 10);
    let (cd, ld) = (sha256(config), sha256(&layer));
    write(blob(&cd), config);
    write(blob(&ld), &layer);
    for r in from / 1000..to.div_ceil(1000) {
        let repo = format!("repositories/bulk/r{r}");
        for d in [&cd, &ld] {
            write(format!("{repo}/_layers/sha256/{}", &d[7..]), b"");
        }
        for i in (r * 1000).max(from)..((r + 1) * 1000).min(to) {
            let m = json!({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": { "mediaType": crate::fixtures::OCI_CONFIG, "digest": cd, "size": config.len() },
                "layers": [{ "mediaType": crate::fixtures::OCI_LAYER_GZIP, "digest": ld, "size": layer.len() }],
                "annotations": { "n": i.to_string() },
            });
            let bytes = serde_json::to_vec(&m).unwrap();
            let d = sha256(&bytes);
            write(blob(&d), &bytes);
            write(format!("{repo}/_manifests/sha256/{}", &d[7..]), json!({ "mediaType": OCI_MANIFEST }).to_string().as_bytes());
            write(format!("{repo}/_tags/t{i}"), d.as_bytes());
        }
    }
}

/// Pulls an index and everything under it, byte for byte.
fn pull_index(http: &Http, repo: &str, tag: &str, index: &IndexImg) -> Result<(), String> {
    let r = http.get_manifest(repo, tag);
    if r.status != 200 || r.body != index.manifest {
        return Err(format!("index {repo}:{tag}: {} {}", r.status, r.text()));
    }
    for c in &index.children {
        pull(http, repo, &c.digest, c)?;
    }
    Ok(())
}

#[test]
fn pushes_while_a_slow_collection_marks_are_kept() {
    let skopeo = Skopeo::new();
    let dir = crate::harness::tempdir();
    let root = dir.path().join("root");
    let t = Instant::now();
    fabricate_live_manifests(&root, 0, 10_000);
    eprintln!("fabricated 10,000 tagged manifests in {:.1?}", t.elapsed());
    let args = ["--gc-grace", "0s", "--gc-protect-window", "1s"].map(String::from);
    let w = Reg::start(dir, super::Backing::Fs(root.clone()), &args);

    // Pushed "long" (beyond the 1 s window) before the collection: two platform images,
    // untagged (children of an index to come), and layers that junk images leave as garbage
    // in two repositories.
    let c1 = Img::new("child amd64", &[&layer(3001, 16 << 10)]);
    let c2 = Img::new("child arm64", &[&layer(3002, 16 << 10)]);
    for c in [&c1, &c2] {
        push(&w.http, "race/app", &c.digest, c, Via::Post).unwrap();
    }
    let (g1, g2) = (layer(3003, 8 << 10), layer(3004, 8 << 10));
    for (repo, g) in [("race/app", &g1), ("race/other", &g2)] {
        let junk = Img::new(&format!("junk in {repo}"), &[g]);
        push(&w.http, repo, "junk", &junk, Via::Post).unwrap();
        w.http.send("DELETE", &format!("/v2/{repo}/manifests/{}", junk.digest), &[], Vec::new()).expect(202, "deleting junk");
    }
    std::thread::sleep(Duration::from_millis(2500));
    // The pushes must land while the collection runs: on a quiet machine a collection over
    // 10,000 manifests can be too quick, so the store grows until a dry run takes 0.5 s.
    let mut live = 10_000;
    let (dry, took) = loop {
        let dry = w.gc(true);
        let took = dry.seconds;
        if took >= 0.5 || live >= 80_000 {
            break (dry, took);
        }
        fabricate_live_manifests(&root, live, live * 2);
        live *= 2;
    };
    eprintln!("a dry run over {live} manifests took {took:.2} s; pushing {:.2} s into the real one", took * 0.15);
    assert!(took >= 0.5, "a dry run over {live} manifests took only {took:.2} s: too quick to push during it");
    assert_eq!(dry.manifests.count, 2, "the untagged children are garbage: {dry:?}");
    assert_eq!(dry.layer_links.count, 8, "so are their links, and the junk's: {dry:?}");

    // During the collection's marking: an index over the old children, an image whose old
    // layer the push finds by HEAD and skips, an image whose layer is mounted from the junk.
    let index = IndexImg::new(vec![c1.clone(), c2.clone()]);
    let m = Img::new("head hit", &[&g1, &layer(3005, 4 << 10)]);
    let p = Img::new("mounted", &[&g2]);
    let (report, pushed_at, collected_at) = std::thread::scope(|s| {
        let gc = s.spawn(|| {
            let r = w.gc(false);
            (r, Instant::now())
        });
        std::thread::sleep(Duration::from_secs_f64(took * 0.15));
        let r = w.http.send("PUT", "/v2/race/app/manifests/v1", &[("content-type", OCI_INDEX)], index.manifest.clone());
        assert_eq!(r.status, 201, "index push during the collection: {}", r.text());
        push(&w.http, "race/app", "head", &m, Via::HeadThenPost).unwrap();
        push(&w.http, "race/new", "mounted", &p, Via::Mount("race/other")).unwrap();
        let pushed_at = Instant::now();
        let (r, at) = gc.join().unwrap();
        (r, pushed_at, at)
    });
    assert!(collected_at > pushed_at, "the collection ended before the pushes did: the test proved nothing (make the store bigger)");
    assert!(report.protected >= 3, "the pushes protected the children and the two layers: {report:?}");

    pull_index(&w.http, "race/app", "v1", &index).unwrap();
    pull(&w.http, "race/app", "head", &m).unwrap();
    pull(&w.http, "race/new", "mounted", &p).unwrap();
    let out = w.dir.path().join("pulled-index");
    skopeo.copy_all(&format!("docker://{}/race/app:v1", w.host()), &crate::skopeo::oci_ref(&out, "pulled"));
    let mut expected: std::collections::BTreeMap<String, Vec<u8>> = c1.all_blobs();
    expected.extend(c2.all_blobs());
    expected.insert(index.digest.clone(), index.manifest.clone());
    crate::fixtures::assert_same_blobs(&expected, &crate::fixtures::read_blobs(&out), "skopeo pull of the index");

    // And once the protections are old, the tags hold everything.
    std::thread::sleep(Duration::from_millis(1500));
    let later = w.gc(false);
    assert_eq!(later.protected, 0, "{later:?}");
    pull_index(&w.http, "race/app", "v1", &index).unwrap();
    pull(&w.http, "race/app", "head", &m).unwrap();
    pull(&w.http, "race/new", "mounted", &p).unwrap();
}
