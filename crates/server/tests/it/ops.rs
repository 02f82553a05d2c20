//! The operations endpoints: `/metrics`, `/healthz`, `/readyz`.

use crate::*;

/// The value of a sample line `name{labels} value` in a metrics text, if present.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

#[tokio::test]
async fn metrics_count_requests_by_method_and_status() {
    let r = Registry::start(Backend::Fs).await;
    let img = r.push_image("ops/app", Some("v1"), 1).await;
    for _ in 0..3 {
        assert_eq!(r.get("/v2/ops/app/manifests/v1").await.status(), 200);
    }
    assert_eq!(r.get("/v2/ops/app/manifests/nope").await.status(), 404);
    assert_eq!(r.head(&format!("/v2/ops/app/blobs/{}", sha256(&img.layers[0]))).await.status(), 200);

    let resp = r.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(header(&resp, "content-type").starts_with("application/openmetrics-text"), "{}", header(&resp, "content-type"));
    let text = resp.text().await.unwrap();
    assert!(text.contains("# TYPE wharfage_http_requests counter"), "{text}");
    let count = |m: &str, s: u16| sample(&text, &format!("wharfage_http_requests_total{{method=\"{m}\",status=\"{s}\"}}")).unwrap_or(0.0);
    assert!(count("GET", 200) >= 3.0, "{text}");
    assert_eq!(count("GET", 404), 1.0, "{text}");
    assert_eq!(count("HEAD", 200), 1.0, "{text}");
    // The push: a monolithic POST for the config and each of the two layers, a PUT for the manifest.
    assert_eq!(count("POST", 201), 3.0, "{text}");
    assert_eq!(count("PUT", 201), 1.0, "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    // No blob cache on the filesystem: no figures for one.
    assert!(!text.contains("blob_cache"), "{text}");

    // A method nobody uses does not become a label of its own.
    let odd = reqwest::Method::from_bytes(b"BREW").unwrap();
    r.req(odd, "/v2/").send().await.unwrap();
    let text = r.get("/metrics").await.text().await.unwrap();
    assert!(!text.contains("BREW"), "{text}");
    assert!(text.contains("method=\"OTHER\""), "{text}");
}

#[tokio::test]
async fn health_and_readiness() {
    let r = Registry::start(Backend::Fs).await;
    let resp = r.get("/healthz").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok\n");
    let resp = r.get("/readyz").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "ok\n");
}

/// `/readyz` checks that the store takes writes into `blobs/`, not only that it answers: with
/// `blobs/` replaced by a file (writes under it fail, even for root, unlike a `chmod`) it
/// answers 503 naming what failed, while `/healthz` stays ok; once `blobs/` is a folder again
/// it is ready within the check's period, and the probe leaves nothing behind.
#[tokio::test]
async fn readiness_fails_while_blobs_cannot_be_written() {
    let r = Registry::start(Backend::Fs).await;
    let blobs = r.root.join("blobs");
    if blobs.exists() {
        std::fs::remove_dir_all(&blobs).unwrap();
    }
    std::fs::write(&blobs, b"not a folder").unwrap();
    let resp = r.get("/readyz").await;
    assert_eq!(resp.status(), 503);
    let text = resp.text().await.unwrap();
    assert!(text.contains("UNAVAILABLE") && text.contains("blobs/"), "{text}");
    assert_eq!(r.get("/healthz").await.status(), 200, "the process itself is alive");

    std::fs::remove_file(&blobs).unwrap();
    std::fs::create_dir(&blobs).unwrap();
    // The failure stands for at most the check's period, then a fresh write passes.
    let deadline = std::time::Instant::now() + store::WRITE_CHECK_EVERY * 3;
    loop {
        let status = r.get("/readyz").await.status();
        if status == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "/readyz still {status} with blobs/ writable again");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(std::fs::read_dir(&blobs).unwrap().count(), 0, "the write probe left a file in blobs/");
}
