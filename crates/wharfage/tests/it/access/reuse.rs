//! Staging reuses what the store holds only for what its upstream holds too: a stager who
//! controls an upstream cannot stage a manifest naming the digest of a blob stored for a
//! repository they may not pull (`secret/x`) and then pull it through their app. The
//! upstream here is the real registry behind a proxy that answers 404 for the one blob its
//! manifest names but it does not hold.

use serde_json::json;

use super::{pw, Cred, Secured};
use crate::fixtures::{Rng, OCI_MANIFEST};
use crate::skopeo::Skopeo;
use crate::staging::images::{image, layer};
use crate::staging::layout;
use crate::staging::proxy::{Faults, Proxy};
use crate::staging::upstream::{Mode, Upstream};

#[test]
fn a_stored_blob_is_reused_only_when_the_upstream_holds_it() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Anonymous);
    let proxy = Proxy::start(up.port, Faults::default());
    let s = Secured::start(&["--insecure-registry", &proxy.host()]);
    let https = s.https();
    let root = Cred::Basic("root", pw("root"));
    let stager = Cred::Basic("stager", pw("stager"));

    // An image whose second layer is the secret: the admin pushed those bytes to secret/x.
    let mut l = layout(&s.dir.path().join("src"));
    let mut rng = Rng::new(2424);
    let base = layer(&mut l, &mut rng, "base.bin", 30_000);
    let secret = layer(&mut l, &mut rng, "secret.bin", 40_000);
    let img = image(&mut l, "amd64", &[&base, &secret]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    let secret_bytes = l.blobs[&secret.digest].clone();
    let a = https.send(
        "POST",
        &format!("/v2/secret/x/blobs/uploads/?digest={}", secret.digest),
        root,
        Some(("application/octet-stream", secret_bytes.clone())),
    );
    assert_eq!(a.status, 201, "the admin pushes the secret: {}", String::from_utf8_lossy(&a.body));
    assert_eq!(https.get(&format!("/v2/secret/x/blobs/{}", secret.digest), stager).status, 403, "the stager may not pull secret/x");

    // The stager's upstream: the manifest names the secret's digest, the blob is not there.
    up.push(&skopeo, &l, "v1", "evil/app");
    proxy.hide_blob(&secret.digest, true);
    let source = format!("{}/evil/app:v1", proxy.host());
    let body = json!({ "source": source, "app": "evil" }).to_string().into_bytes();
    let a = https.send("POST", "/api/v1/stagings", stager, Some(("application/json", body.clone())));
    assert_eq!(a.status, 404, "the staging fails: {}", String::from_utf8_lossy(&a.body));
    let message = a.json()["errors"][0]["message"].as_str().unwrap_or("").to_string();
    assert!(message.contains(&secret.digest) && message.contains("does not hold"), "names the blob the upstream lacks: {message}");
    let asked: Vec<String> = proxy.heads().into_iter().filter(|h| h.contains(&secret.digest)).collect();
    assert!(asked.iter().all(|h| h.starts_with("HEAD ")) && !asked.is_empty(), "the upstream was asked, with a HEAD: {asked:?}");

    // Nothing of secret/x became reachable through the app: no app, no linked blob.
    assert_eq!(https.get("/api/v1/apps/evil", root).status, 404);
    let a = https.get(&format!("/v2/apps/evil/blobs/{}", secret.digest), root);
    assert_eq!(a.status, 404, "not linked into the app even for the admin: {}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.code(), "BLOB_UNKNOWN");

    // An upstream that claims the blob on HEAD (right size) but cannot show its bytes: the
    // piece asked for at a random offset is not there, and the staging fails.
    proxy.claim_blob(&secret.digest, secret_bytes.len());
    let a = https.send("POST", "/api/v1/stagings", stager, Some(("application/json", body.clone())));
    assert_eq!(a.status, 404, "a lying HEAD is not enough: {}", String::from_utf8_lossy(&a.body));
    assert_eq!(https.get("/api/v1/apps/evil", root).status, 404);
    assert_eq!(https.get(&format!("/v2/apps/evil/blobs/{}", secret.digest), root).status, 404);

    // The control: once the upstream holds the blob, the stored copy is reused, not
    // downloaded again (a HEAD and 32 bytes of it).
    proxy.hide_blob(&secret.digest, false);
    let asked_before = proxy.heads().len();
    let a = https.send("POST", "/api/v1/stagings", stager, Some(("application/json", body)));
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    let v = a.json();
    assert_eq!(v["blobs_reused"], 1, "{v}");
    assert_eq!(v["blobs_downloaded"], 2, "config and base: {v}");
    let gets: Vec<String> =
        proxy.heads().into_iter().skip(asked_before).filter(|h| h.starts_with("GET ") && h.contains(&secret.digest)).collect();
    assert_eq!(gets.len(), 1, "{gets:?}");
    assert!(gets[0].to_ascii_lowercase().contains("range: bytes="), "only a piece of the stored layer was asked for: {gets:?}");
    let creds = v["pull_credentials"].clone();
    let pulled = https.get(
        &format!("/v2/apps/evil/blobs/{}", secret.digest),
        Cred::Basic(creds["username"].as_str().unwrap(), creds["password"].as_str().unwrap()),
    );
    assert_eq!(pulled.status, 200);
    assert_eq!(pulled.body, secret_bytes, "an app whose upstream holds the blob pulls it");
}
