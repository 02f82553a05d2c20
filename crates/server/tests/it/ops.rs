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
