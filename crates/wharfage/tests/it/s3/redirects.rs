//! Presigned redirects, and a replica's local blob cache.

use super::*;

#[test]
fn presigned_redirects_serve_the_blob_from_the_store() {
    // A SeaweedFS that checks signatures made with the keys the server gets (`S3Store::start`),
    // so a presigned URL proves something: every request of wharfage's is checked too.
    let s3 = SeaweedFs::start_verifying(ACCESS_KEY, SECRET_KEY);
    let store = S3Store::on(&s3);
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let server = store.start(&["--s3-redirect"]);
    let http = Http::new(server.addr);
    let (layout, image) = image_fixture(&tmp.path().join("src"), 50);
    let repo = "e2e/redirect";
    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{}/{repo}:v1", server.host()));

    let layer = &image.layers[2];
    let bytes = &layout.blobs[layer];
    let r = http.get(&format!("/v2/{repo}/blobs/{layer}")).expect(307, "blob GET with --s3-redirect");
    assert_eq!(r.header("docker-content-digest"), Some(layer.as_str()));
    let location = r.header("location").expect("a redirect has a Location").to_string();
    assert!(
        location.starts_with(&format!("{}/{}/{}/blobs/sha256/", store.s3.endpoint, store.bucket, store.prefix)),
        "the redirect goes to the object store: {location}"
    );
    assert!(location.contains("X-Amz-Signature="), "the URL is presigned: {location}");

    // The presigned URL works on its own, whole and with a range, and only for GET.
    let s3 = Http::new(s3.addr());
    let got = s3.get(&location).expect(200, "GET of the presigned URL");
    assert!(got.body == *bytes, "the presigned URL serves the blob's bytes");
    let part = s3.send("GET", &location, &[("range", "bytes=100-199")], Vec::new()).expect(206, "ranged GET of the presigned URL");
    assert!(part.body == bytes[100..200], "the range of the blob");
    let forged = location.replace("X-Amz-Signature=", "X-Amz-Signature=00");
    assert_eq!(s3.get(&forged).status, 403, "a tampered presigned URL is refused");
    let other = location.replace(&layer["sha256:".len()..], &image.layers[0]["sha256:".len()..]);
    assert_eq!(s3.get(&other).status, 403, "a presigned URL is good for its blob only");

    // HEAD answers directly; a blob the repository does not link is still 404, not redirected.
    let head = http.head(&format!("/v2/{repo}/blobs/{layer}")).expect(200, "blob HEAD");
    assert_eq!(head.header("content-length"), Some(bytes.len().to_string().as_str()));
    assert_eq!(http.get(&format!("/v2/other/blobs/{layer}")).status, 404, "no redirect for a repository that does not link the blob");

    // A real client follows the redirects: skopeo pulls every blob from the store.
    assert_pull(&skopeo, &server, repo, "v1", &tmp.path().join("out"), &layout.blobs, &image.digest);

    // Without access keys there is nothing to sign with: the replica serves the bytes itself.
    let mut args = store.args();
    args.push("--s3-redirect".into());
    let keyless = Server::start_with(store.cwd.path(), &args, &[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")]);
    let got = Http::new(keyless.addr).get(&format!("/v2/{repo}/blobs/{layer}")).expect(200, "blob GET with --s3-redirect and no keys");
    assert!(got.body == *bytes, "the blob served without a redirect");
}

#[test]
fn blob_cache_serves_repeat_pulls_from_local_disk() {
    let store = S3Store::shared();
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let cache = tmp.path().join("blob-cache");
    let cache_arg = cache.to_str().unwrap();
    let server = store.start(&["--blob-cache-dir", cache_arg, "--blob-cache-size", "1GiB"]);
    let (layout, image) = image_fixture(&tmp.path().join("src"), 60);
    let repo = "e2e/cached";
    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{}/{repo}:v1", server.host()));
    let cached = |d: &str| cache.join("sha256").join(&d["sha256:".len()..]);
    assert!(image.layers.iter().all(|l| !cached(l).exists()), "a push filled the cache");

    // Four clients pull the cold layers at once: all get the bytes, one fills the cache.
    let layer = image.layers[2].clone();
    let pulls: Vec<_> = (0..4)
        .map(|_| {
            let (addr, path) = (server.addr, format!("/v2/{repo}/blobs/{layer}"));
            std::thread::spawn(move || get_hashed(addr, &path, &[]))
        })
        .collect();
    for p in pulls {
        let (status, len, digest) = p.join().unwrap();
        assert_eq!((status, len, digest.as_str()), (200, layout.blobs[&layer].len() as u64, layer.as_str()), "a cold parallel pull");
    }
    assert_pull(&skopeo, &server, repo, "v1", &tmp.path().join("out"), &layout.blobs, &image.digest);
    for d in image.layers.iter().chain([&image.config]) {
        assert!(eventually(Duration::from_secs(10), || cached(d).exists()), "blob {d} never reached the cache");
        assert_eq!(sha256(&std::fs::read(cached(d)).unwrap()), *d, "the cached copy of {d} is the blob");
    }
    assert!(std::fs::read_dir(cache.join("tmp")).unwrap().next().is_none(), "finished fills leave no temporary files");
    let metrics = Http::new(server.addr).get("/metrics").expect(200, "metrics").text();
    let value = |series: &str| metric(&metrics, series).unwrap_or_else(|| panic!("no {series} in:\n{metrics}"));
    let cached_blobs = image.layers.len() as f64 + 1.0;
    assert_eq!(value("wharfage_blob_cache_blobs"), cached_blobs, "{metrics}");
    assert_eq!(value("wharfage_blob_cache_fills_total"), cached_blobs, "one fill per blob, however many pulled it: {metrics}");
    assert_eq!(value("wharfage_blob_cache_max_bytes"), (1u64 << 30) as f64);

    // Served from the replica's disk: with the layers gone from the bucket (behind the
    // registry's back), a restarted replica still serves them, whole and in ranges.
    for l in &image.layers {
        let key = format!("/{}/{}/blobs/sha256/{}/{}", store.bucket, store.prefix, &l[7..9], &l[7..]);
        assert_eq!(testkit::http_status(store.s3.addr().port(), "DELETE", &key).unwrap(), 204, "DELETE {key}");
    }
    // fsck, even given the serving flags, checks the bucket, not the local copies: it finds
    // the layers missing, and leaves the cache alone, even a fill the replica has under way.
    let in_progress = cache.join("tmp").join("a-fill-under-way");
    std::fs::write(&in_progress, b"the replica is writing this").unwrap();
    let mut fsck = crate::harness::wharfage(tmp.path());
    fsck.arg("fsck").args(store.args()).args(["--blob-cache-dir", cache_arg]);
    fsck.env("AWS_ACCESS_KEY_ID", ACCESS_KEY).env("AWS_SECRET_ACCESS_KEY", SECRET_KEY);
    let out = fsck.output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "fsck of a bucket missing layers: {report}\n{}", String::from_utf8_lossy(&out.stderr));
    for l in &image.layers {
        assert!(report.contains(l.as_str()), "fsck does not report missing layer {l}:\n{report}");
        assert!(cached(l).exists(), "fsck removed the cached copy of {l}");
    }
    assert!(in_progress.exists(), "fsck deleted a running replica's fill in progress");
    drop(server);
    let server = store.start(&["--blob-cache-dir", cache_arg, "--blob-cache-size", "1GiB"]);
    let http = Http::new(server.addr);
    for l in &image.layers {
        let got = http.get(&format!("/v2/{repo}/blobs/{l}")).expect(200, "GET of a cached layer");
        assert!(got.body == layout.blobs[l], "layer {l} served from the cache");
        let part = http
            .send("GET", &format!("/v2/{repo}/blobs/{l}"), &[("range", "bytes=10-19")], Vec::new())
            .expect(206, "ranged GET of a cached layer");
        assert!(part.body == layout.blobs[l][10..20], "a range of layer {l} from the cache");
    }
    // The repository's link still decides: another repository cannot read the cached bytes.
    assert_eq!(http.get(&format!("/v2/other/blobs/{layer}")).status, 404);
    let metrics = http.get("/metrics").expect(200, "metrics after the restart").text();
    assert_eq!(metric(&metrics, "wharfage_blob_cache_hits_total"), Some(2.0 * image.layers.len() as f64), "{metrics}");
    assert_eq!(metric(&metrics, "wharfage_blob_cache_misses_total"), Some(0.0), "{metrics}");
}

/// The value of a sample (`name{labels} value`) in a `/metrics` text.
pub(crate) fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn a_replicas_blob_cache_never_serves_what_another_replica_collected() {
    let store = S3Store::shared();
    let skopeo = Skopeo::new();
    let tmp = tempdir();
    let cache = tmp.path().join("blob-cache-b");
    // A collects (no grace, no protect window); B serves pulls from its blob cache.
    let a = store.start(&crate::gc::quiet().iter().map(String::as_str).collect::<Vec<_>>());
    let b = store.start(&["--blob-cache-dir", cache.to_str().unwrap()]);
    let (layout, image) = image_fixture(&tmp.path().join("src"), 70);
    let repo = "e2e/collected";
    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{}/{repo}:v1", a.host()));
    assert_pull(&skopeo, &b, repo, "v1", &tmp.path().join("out"), &layout.blobs, &image.digest);
    let cached = |d: &str| cache.join("sha256").join(&d["sha256:".len()..]);
    for l in &image.layers {
        assert!(eventually(Duration::from_secs(10), || cached(l).exists()), "layer {l} never reached B's cache");
    }

    // The image is deleted and collected through A, once the push's protections are older
    // than the second of slack S3's whole-second times get.
    skopeo.delete(&format!("{}/{repo}:v1", a.host()));
    std::thread::sleep(Duration::from_millis(2500));
    let report = Http::new(a.addr)
        .send("POST", "/api/v1/gc", &[("content-type", "application/json")], br#"{"dry_run":false}"#.to_vec())
        .expect(200, "a collection on A");
    let report: server::mgmt::types::GcReport = report.json();
    assert_eq!(report.blobs.count, image.layers.len() as u64 + 2, "A collected the layers, the config and the manifest: {report:?}");

    // B still holds the copies, and serves none of them: the repository's links are gone.
    let http = Http::new(b.addr);
    for l in &image.layers {
        assert!(cached(l).exists(), "B's copy of {l} went away: the test would prove nothing");
        assert_eq!(http.get(&format!("/v2/{repo}/blobs/{l}")).status, 404, "GET of collected layer {l} on B");
        assert_eq!(http.head(&format!("/v2/{repo}/blobs/{l}")).status, 404, "HEAD of collected layer {l} on B");
    }

    // Pushed again, the image pulls whole through B.
    skopeo.copy_all(&oci_ref(&layout.dir, "v1"), &format!("docker://{}/{repo}:v1", a.host()));
    assert_pull(&skopeo, &b, repo, "v1", &tmp.path().join("out-again"), &layout.blobs, &image.digest);
}
