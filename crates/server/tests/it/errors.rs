//! Error answers: invalid names and digests, traversal attempts, unknown routes and methods,
//! and the shape of error bodies.

use crate::*;

async fn invalid_repository_names(backend: Backend) {
    let r = Registry::start(backend).await;
    let long = vec!["a"; 128].join("/"); // 255 characters: the longest valid name
    assert_eq!(long.len(), 255);
    expect_error(r.get(&format!("/v2/{long}/tags/list")).await, 404, "NAME_UNKNOWN").await;
    let too_long = format!("{long}b");
    for name in ["Upper", "a__-b", "a/-b", "-a", "a_", "a..b", "_a", too_long.as_str(), "a/_manifests", "a%20b"] {
        expect_error(r.get(&format!("/v2/{name}/tags/list")).await, 400, "NAME_INVALID").await;
        let resp = r.req(Method::POST, &format!("/v2/{name}/blobs/uploads/")).send().await.unwrap();
        expect_error(resp, 400, "NAME_INVALID").await;
        let resp = r.put_manifest(name, "v1", OCI_MANIFEST, b"{}").await;
        expect_error(resp, 400, "NAME_INVALID").await;
    }
    // A mount source is a repository name too.
    let resp = r.req(Method::POST, &format!("/v2/ok/blobs/uploads/?mount={}&from=Bad", sha256(b"x"))).send().await.unwrap();
    expect_error(resp, 400, "NAME_INVALID").await;
}
both_backends!(invalid_repository_names);

async fn invalid_digests(backend: Backend) {
    let r = Registry::start(backend).await;
    let hex64 = "a".repeat(64);
    for d in [
        "sha256:zz".to_string(),
        format!("sha256:{}", "A".repeat(64)),
        format!("sha256:{}", &hex64[..63]),
        format!("sha512:{hex64}"),
        "md5:d41d8cd98f00b204e9800998ecf8427e".to_string(),
        format!("sha256{hex64}"),
    ] {
        // A bare word without ':' in a blob URL is not a digest either.
        expect_error(r.get(&format!("/v2/a/blobs/{d}")).await, 400, "DIGEST_INVALID").await;
        expect_error(r.get(&format!("/v2/a/referrers/{d}")).await, 400, "DIGEST_INVALID").await;
        let resp = r.req(Method::POST, &format!("/v2/a/blobs/uploads/?digest={d}")).body("x").send().await.unwrap();
        expect_error(resp, 400, "DIGEST_INVALID").await;
        let resp = r.req(Method::POST, &format!("/v2/a/blobs/uploads/?mount={d}")).send().await.unwrap();
        expect_error(resp, 400, "DIGEST_INVALID").await;
    }
    // In a manifest URL, a ':' makes the reference a digest.
    expect_error(r.get("/v2/a/manifests/sha256:zz").await, 400, "DIGEST_INVALID").await;
    expect_error(r.get("/v2/a/manifests/bad:tag").await, 400, "DIGEST_INVALID").await;
    assert!(r.stored_files().is_empty(), "nothing stored: {:?}", r.stored_files());
}
both_backends!(invalid_digests);

#[tokio::test]
async fn traversal_attempts_never_escape_the_storage_root() {
    let r = Registry::start(Backend::Fs).await;
    r.push_image("victim", Some("v1"), 1).await;
    let d = sha256(b"x");
    let attempts = [
        ("GET", "/v2/../../etc/passwd/tags/list".to_string()),
        ("GET", "/v2/a/../../tags/list".to_string()),
        ("GET", "/v2/%2e%2e/%2e%2e/tags/list".to_string()),
        ("GET", "/v2/a/%2E%2E/victim/tags/list".to_string()),
        ("GET", "/v2/..%2f..%2fvictim/tags/list".to_string()),
        ("PUT", "/v2/../outside/manifests/v1".to_string()),
        ("PUT", "/v2/%2e%2e/outside/manifests/v1".to_string()),
        ("PUT", "/v2/a/manifests/..%2f..%2f..%2foutside".to_string()),
        ("PUT", "/v2/victim/manifests/..".to_string()),
        ("POST", "/v2/%2e%2e%2f%2e%2e%2foutside/blobs/uploads/".to_string()),
        ("PATCH", "/v2/victim/blobs/uploads/..%2f..%2f..%2fstate".to_string()),
        ("PUT", format!("/v2/victim/blobs/uploads/..%2f..%2foutside?digest={d}")),
        ("DELETE", "/v2/victim/blobs/uploads/../../victim".to_string()),
        ("GET", format!("/v2/victim/blobs/sha256:..%2f..%2f{}", "0".repeat(58))),
        ("DELETE", "/v2/victim/manifests/..%2Fv1".to_string()),
        ("GET", "/v2/victim/tags/list/../../../../etc".to_string()),
    ];
    for (method, target) in &attempts {
        let (status, body) = r.raw(method, target).await;
        assert!((400..500).contains(&status), "{method} {target} answered {status}: {body}");
    }
    // Nothing appeared beside the storage root, and the victim is intact.
    let beside: Vec<_> = std::fs::read_dir(&r.outer).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(beside, vec![std::ffi::OsString::from("root")]);
    assert!(r.stored_files().iter().all(|f| !f.contains("outside")), "{:?}", r.stored_files());
    assert_eq!(r.get("/v2/victim/manifests/v1").await.status(), 200);
    let names = json_body(r.get("/v2/_catalog").await).await;
    assert_eq!(names["repositories"], json!(["victim"]));
}

async fn unknown_routes_and_unsupported_methods(backend: Backend) {
    let r = Registry::start(backend).await;
    for path in ["/v3/", "/", "/v2/a/unknown/x", "/v2/manifests/latest", "/v2/a/blobs/"] {
        let resp = r.get(path).await;
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(header(&resp, "docker-distribution-api-version"), "registry/2.0", "{path}");
    }
    let d = sha256(b"x");
    for (method, path) in [
        (Method::POST, "/v2/".to_string()),
        (Method::PUT, format!("/v2/a/blobs/{d}")),
        (Method::POST, "/v2/a/manifests/v1".to_string()),
        (Method::DELETE, "/v2/a/tags/list".to_string()),
        (Method::PUT, "/v2/_catalog".to_string()),
        (Method::GET, "/v2/a/blobs/uploads/".to_string()),
        (Method::DELETE, format!("/v2/a/referrers/{d}")),
    ] {
        let resp = r.req(method.clone(), &path).send().await.unwrap();
        expect_error(resp, 405, "UNSUPPORTED").await;
    }
}
both_backends!(unknown_routes_and_unsupported_methods);

async fn error_bodies_follow_the_spec_shape(backend: Backend) {
    let r = Registry::start(backend).await;
    let resp = r.get(&format!("/v2/a/blobs/{}", sha256(b"missing"))).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(header(&resp, "docker-distribution-api-version"), "registry/2.0");
    let v = json_body(resp).await;
    let errors = v["errors"].as_array().expect("errors array");
    assert_eq!(errors.len(), 1);
    let code = errors[0]["code"].as_str().unwrap();
    assert!(code.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'), "{code}");
    assert_eq!(code, "BLOB_UNKNOWN");
    assert!(errors[0]["message"].as_str().unwrap().contains("sha256:"), "messages name the digest: {v}");
    assert_eq!(errors[0]["detail"]["digest"], sha256(b"missing"));
}
both_backends!(error_bodies_follow_the_spec_shape);
