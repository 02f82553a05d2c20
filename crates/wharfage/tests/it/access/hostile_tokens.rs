//! What a hostile client of the token protocol must be refused, on the wire: a token request
//! for thousands of scopes (which would make every token and the cache of verified ones
//! huge), a token signed with the registry's key but living far longer than it issues, and a
//! start-up with a signing key file other users can read.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::signature::KeyPair as _;

use super::{auth_args, Cred, Secured};
use crate::harness::{self, run};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[test]
fn a_token_request_for_too_many_scopes_is_refused() {
    let s = Secured::start(&[]);
    let https = s.https();
    let scopes = |n: usize| -> String { (0..n).map(|i| format!("&scope=repository:open/r{i}:pull")).collect() };
    let a = https.get(&format!("/auth/token?service=wharfage{}", scopes(101)), Cred::None);
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    let message = a.json()["errors"][0]["message"].as_str().unwrap_or("").to_string();
    assert!(message.contains("100") && message.contains("101"), "names the limit and the count: {message}");
    // The same scopes split over one parameter's spaces count the same.
    let spaced: Vec<String> = (0..101).map(|i| format!("repository:open/r{i}:pull")).collect();
    let a = https.get(&format!("/auth/token?service=wharfage&scope={}", spaced.join("%20")), Cred::None);
    assert_eq!(a.status, 400);
    // At the limit, a token with every grant.
    let a = https.get(&format!("/auth/token?service=wharfage{}", scopes(100)), Cred::None);
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(super::claims(a.json()["token"].as_str().unwrap())["access"].as_array().unwrap().len(), 100);
}

/// An Ed25519 key as a PEM file of `mode`; its PKCS#8 bytes and key id.
fn key_file(dir: &Path, mode: u32) -> (PathBuf, Vec<u8>, String) {
    let der = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
    let kid = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(pair.public_key().as_ref())[..8]);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    );
    let path = dir.join("token-key.pem");
    std::fs::write(&path, pem).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    (path, der.as_ref().to_vec(), kid)
}

/// A JWT of `claims` signed with the key.
fn sign(der: &[u8], kid: &str, claims: &serde_json::Value) -> String {
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(der).unwrap();
    let head = serde_json::json!({ "alg": "EdDSA", "typ": "JWT", "kid": kid });
    let unsigned = format!("{}.{}", B64.encode(head.to_string()), B64.encode(claims.to_string()));
    format!("{unsigned}.{}", B64.encode(pair.sign(unsigned.as_bytes()).as_ref()))
}

#[test]
fn serve_refuses_a_token_key_others_can_read() {
    let dir = harness::tempdir();
    let mut args = auth_args(dir.path());
    let (path, _, _) = key_file(dir.path(), 0o644);
    args.extend(["--token-key".into(), path.to_string_lossy().into_owned()]);
    let mut cmd = harness::wharfage(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--root"]).arg(dir.path().join("root")).args(&args);
    let out = run(cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "started with a world-readable key: {stderr}");
    assert!(stderr.contains(&path.display().to_string()) && stderr.contains("chmod 600"), "names the file and the fix: {stderr}");
}

#[test]
fn a_token_living_longer_than_the_registry_issues_is_refused() {
    let probe = harness::tempdir();
    let (path, der, kid) = key_file(probe.path(), 0o600);
    let key = path.to_string_lossy().into_owned();
    let s = Secured::start(&["--token-key", &key, "--token-ttl", "5m"]);
    let https = s.https();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = |exp: u64, iat: u64| {
        serde_json::json!({
            "iss": "wharfage", "sub": "reader", "aud": "wharfage", "exp": exp, "nbf": now - 1, "iat": iat, "jti": "forged",
            "access": [{"type": "repository", "name": "team/web", "actions": ["pull"]}]
        })
    };
    // The control: a token like the ones the registry issues is taken (404: the repository
    // is empty, but the caller got past access control).
    let fine = sign(&der, &kid, &claims(now + 240, now));
    assert_eq!(https.get("/v2/team/web/tags/list", Cred::Bearer(&fine)).status, 404);
    for (what, exp, iat) in
        [("a year-long token", now + 365 * 24 * 3600, now), ("an hour-long one with a late iat", now + 3600, now + 3300)]
    {
        let forged = sign(&der, &kid, &claims(exp, iat));
        let a = https.get("/v2/team/web/tags/list", Cred::Bearer(&forged));
        assert_eq!(a.status, 401, "{what}: {}", String::from_utf8_lossy(&a.body));
    }
}
