//! Per-app pull credentials: returned by every staging, `pull` on that app's repository and
//! nothing else, ended by revocation, by a newer staging beyond retention and by unpinning;
//! and no password, token or pull secret is ever written to the storage root or a trace log.

use serde_json::json;
use server::mgmt::types::{PullCredentials, StagingView};

use super::{inspect, push, pw, Cred, Secured};
use crate::round_trip::image_fixture;
use crate::skopeo::{oci_ref, Skopeo};

fn stage(s: &Secured, tag: &str, app: &str) -> StagingView {
    s.stage(&format!("{}/team/web:{tag}", s.server.host()), app, ("ci", pw("ci"))).0
}

fn login(c: &PullCredentials) -> String {
    format!("{}:{}", c.username, c.password)
}

/// The pinned image of a staging, without the host.
fn pinned(v: &StagingView) -> String {
    format!("{}@{}", v.record.repository, v.record.digest)
}

#[test]
fn pull_credentials_open_one_app_while_its_staging_is_kept() {
    let skopeo = Skopeo::new();
    let s = Secured::start(&["--retain", "0", "--gc-grace", "0s", "--log", "trace"]);
    let h = s.https();
    let (layout, _) = image_fixture(&s.dir.path().join("v1"), 51);
    let (layout2, _) = image_fixture(&s.dir.path().join("v2"), 52);
    let ci = format!("ci:{}", pw("ci"));
    assert!(push(&skopeo, &s, &oci_ref(&layout.dir, "v1"), "team/web:v1", Some(&ci)).0);
    assert!(push(&skopeo, &s, &oci_ref(&layout2.dir, "v1"), "team/web:v2", Some(&ci)).0);

    let shop = stage(&s, "v1", "shop");
    let c1 = shop.pull_credentials.clone().expect("a staging returns pull credentials");
    assert!(c1.username.starts_with("shop+") && c1.password.len() >= 43, "256-bit secret: {}", c1.username);
    assert_eq!(shop.image, format!("{}/apps/shop@{}", s.server.host(), shop.record.digest));
    assert!(inspect(&skopeo, &s, &pinned(&shop), Some(&login(&c1))).0, "the credentials pull their app");
    // ... and nothing else: another repository, another app, a push, the management API.
    assert!(!inspect(&skopeo, &s, "team/web:v1", Some(&login(&c1))).0);
    let other = stage(&s, "v1", "other");
    let c_other = other.pull_credentials.clone().unwrap();
    assert!(!inspect(&skopeo, &s, &pinned(&other), Some(&login(&c1))).0, "one app's credentials on another app");
    assert!(inspect(&skopeo, &s, &pinned(&other), Some(&login(&c_other))).0);
    assert!(!push(&skopeo, &s, &oci_ref(&layout.dir, "v1"), "apps/shop:x", Some(&login(&c1))).0, "no push");
    assert_eq!(h.get("/api/v1/apps", Cred::Basic(&c1.username, &c1.password)).status, 403, "no management API");
    let wrong = format!("{}:{}x", c1.username, c1.password);
    assert!(!inspect(&skopeo, &s, &pinned(&shop), Some(&wrong)).0, "a wrong secret");
    // The app listing never shows credentials again.
    assert!(!String::from_utf8_lossy(&h.get("/api/v1/apps/shop", Cred::Basic("stager", pw("stager"))).body).contains(&c1.password));

    // A newer staging with --retain 0: the old staging is no longer kept, nor its credentials.
    let shop2 = stage(&s, "v2", "shop");
    let c2 = shop2.pull_credentials.clone().unwrap();
    assert!(inspect(&skopeo, &s, &pinned(&shop2), Some(&login(&c2))).0);
    assert!(!inspect(&skopeo, &s, &pinned(&shop2), Some(&login(&c1))).0, "superseded beyond --retain");
    // Garbage collection removes the superseded staging's record and its credential's.
    let creds_dir = s.root.join("apps/shop/credentials");
    assert_eq!(std::fs::read_dir(&creds_dir).unwrap().count(), 2);
    assert_eq!(h.send("POST", "/api/v1/gc", Cred::Basic("root", pw("root")), None).status, 200);
    assert_eq!(std::fs::read_dir(&creds_dir).unwrap().count(), 1, "only the current staging's credential is left");
    assert!(inspect(&skopeo, &s, &pinned(&shop2), Some(&login(&c2))).0);

    // Minted again for a platform that lost them; revoked all at once.
    let a = h.send("POST", "/api/v1/apps/shop/credentials", Cred::Basic("stager", pw("stager")), None);
    assert_eq!(a.status, 201);
    let c3: PullCredentials = serde_json::from_slice(&a.body).unwrap();
    assert!(inspect(&skopeo, &s, &pinned(&shop2), Some(&login(&c3))).0);
    let token = h.token(Cred::Basic(&c3.username, &c3.password), &["repository:apps/shop:pull,push", "repository:apps/other:pull"]);
    assert_eq!(super::claims(&token)["access"], json!([{"type": "repository", "name": "apps/shop", "actions": ["pull"]}]));
    let a = h.send("DELETE", "/api/v1/apps/shop/credentials", Cred::Basic("stager", pw("stager")), None);
    assert_eq!((a.status, a.json()["revoked_credentials"].as_u64()), (200, Some(2)));
    assert!(!inspect(&skopeo, &s, &pinned(&shop2), Some(&login(&c2))).0, "revoked");
    assert!(!inspect(&skopeo, &s, &pinned(&shop2), Some(&login(&c3))).0, "revoked");
    assert_eq!(h.get(&format!("/v2/apps/shop/manifests/{}", shop2.record.digest), Cred::Bearer(&token)).status, 401, "its tokens too");

    // Unpinning ends them as well.
    assert!(inspect(&skopeo, &s, &pinned(&other), Some(&login(&c_other))).0);
    assert_eq!(h.send("DELETE", "/api/v1/apps/other", Cred::Basic("stager", pw("stager")), None).status, 200);
    assert!(!inspect(&skopeo, &s, &pinned(&other), Some(&login(&c_other))).0, "unpinned");

    // No secret anywhere on disk or in the trace log.
    let mut secrets: Vec<String> = super::USERS.iter().map(|(_, p)| p.to_string()).collect();
    secrets.extend([c1.password.clone(), c2.password.clone(), c3.password.clone(), c_other.password.clone(), token.clone()]);
    let mut files = Vec::new();
    collect_files(&s.root, &mut files);
    assert!(files.len() > 10, "the root holds the registry's data");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for secret in &secrets {
            assert!(!contains(&bytes, secret.as_bytes()), "{} holds a secret", f.display());
        }
    }
    let log = s.server.log().join("\n");
    assert!(log.contains("TRACE") || log.contains("\"level\":\"TRACE\""), "the log is at trace level");
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "the trace log holds a secret");
    }
    // Not even the Basic header's encoding of one.
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("stager:{}", pw("stager")));
    assert!(!log.contains(&encoded), "the trace log holds a Basic credential");
}

fn collect_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect_files(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// `wharfage stage` with the upstream password on stdin and the server login in the
/// environment; returns stdout, failing the test on an error.
fn cli_stage(s: &Secured, app: &str, output: &[&str]) -> String {
    use std::io::Write as _;
    let mut cmd = crate::harness::wharfage(s.dir.path());
    cmd.args(["stage", &format!("{}/team/web:v1", s.server.host()), "--app", app, "--server", &s.url()]);
    cmd.args(["--username", "ci", "--password-stdin"]).args(output);
    cmd.env("WHARFAGE_CA_CERT", s.dir.path().join("ca.pem")).env("WHARFAGE_USERNAME", "stager").env("WHARFAGE_PASSWORD", pw("stager"));
    cmd.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(pw("ci").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "wharfage stage: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn stage_prints_pull_secrets_that_log_in() {
    use base64::Engine as _;
    let skopeo = Skopeo::new();
    let s = Secured::start(&[]);
    let (layout, _) = image_fixture(&s.dir.path().join("v1"), 53);
    assert!(push(&skopeo, &s, &oci_ref(&layout.dir, "v1"), "team/web:v1", Some(&format!("ci:{}", pw("ci")))).0);
    let b64 = base64::engine::general_purpose::STANDARD;

    // A Kubernetes Secret: decoded as the kubelet would, its auth logs in.
    let yaml = cli_stage(&s, "shop", &["--k8s-secret", "shop-pull"]);
    assert!(yaml.contains("type: kubernetes.io/dockerconfigjson") && yaml.contains("name: shop-pull"), "{yaml}");
    let image = yaml.lines().find_map(|l| l.strip_prefix("# image: ")).expect("the pinned reference is named").to_string();
    let config = yaml.lines().find_map(|l| l.trim().strip_prefix(".dockerconfigjson: ")).unwrap();
    let config: serde_json::Value = serde_json::from_slice(&b64.decode(config).unwrap()).unwrap();
    let auth = config["auths"][s.server.host()]["auth"].as_str().unwrap();
    let login = String::from_utf8(b64.decode(auth).unwrap()).unwrap();
    let pinned = image.split_once('/').unwrap().1;
    assert!(inspect(&skopeo, &s, pinned, Some(&login)).0, "the Secret's credentials pull {image}");

    // A docker config.json: used as it is, as an auth file.
    let json = cli_stage(&s, "shop", &["--docker-config"]);
    let file = s.dir.path().join("config.json");
    std::fs::write(&file, &json).unwrap();
    let parsed = serde_json::from_str::<serde_json::Value>(&json).unwrap();
    assert!(parsed["auths"][s.server.host()]["username"].as_str().unwrap().starts_with("shop+"));
    let apps = s.https().get("/api/v1/apps/shop", Cred::Basic("stager", pw("stager"))).json();
    let current = apps["current"]["image"].as_str().unwrap().to_string();
    let cert_dir = s.cert_dir();
    let out =
        skopeo.run(&["inspect", "--raw", "--cert-dir", &cert_dir, "--authfile", file.to_str().unwrap(), &format!("docker://{current}")]);
    assert!(out.status.success(), "the config.json logs in: {}", String::from_utf8_lossy(&out.stderr));
}
