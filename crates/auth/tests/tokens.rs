//! Tokens as an attacker would try them: every forgery is refused; a replica on the same
//! store accepts a token another signed; pull credentials end with their staging.

use std::net::IpAddr;
use std::time::Duration;

use auth::{Actions, Auth, AuthConfig, AuthError, Grant, Principal, Rule};
use base64::Engine as _;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn client() -> IpAddr {
    "192.0.2.7".parse().unwrap()
}

async fn auth(dir: &tempfile::TempDir, store: &store::Store) -> Auth {
    let htpasswd = dir.path().join("htpasswd");
    if !htpasswd.exists() {
        std::fs::write(&htpasswd, format!("ci:{}\nroot:{}\n", bcrypt::hash("ci-pw", 4).unwrap(), bcrypt::hash("root-pw", 4).unwrap()))
            .unwrap();
    }
    let cfg = AuthConfig {
        htpasswd,
        admins: vec!["root".into()],
        stagers: vec![],
        rules: vec![Rule { users: vec!["ci".into()], repositories: vec!["team/*".into()], actions: vec!["pull".into(), "push".into()] }],
        token_ttl: Duration::from_secs(300),
        token_key: None,
        service: "wharfage-test".into(),
        retain: 1,
        failed_logins_per_minute: 10,
    };
    Auth::new(cfg, store.clone()).await.unwrap()
}

fn scope(s: &str) -> Vec<Grant> {
    Grant::parse_all([s])
}

fn parts(token: &str) -> (serde_json::Value, serde_json::Value, String) {
    let p: Vec<&str> = token.split('.').collect();
    let de = |s: &str| serde_json::from_slice(&B64.decode(s).unwrap()).unwrap();
    (de(p[0]), de(p[1]), p[2].to_string())
}

fn join(h: &serde_json::Value, c: &serde_json::Value, sig: &str) -> String {
    format!("{}.{}.{sig}", B64.encode(h.to_string()), B64.encode(c.to_string()))
}

fn invalid(r: Result<std::sync::Arc<auth::Verified>, AuthError>) -> bool {
    matches!(r, Err(AuthError::InvalidToken(_)))
}

#[tokio::test]
async fn tokens_grant_the_intersection_and_forgeries_fail() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::filesystem(&dir.path().join("data")).unwrap();
    let a = auth(&dir, &store).await;
    let ci = a.login("ci", "ci-pw", client()).await.unwrap();
    assert_eq!(ci, Principal::User("ci".into()));
    let t = a.issue(&ci, &scope("repository:team/web:pull,push,delete repository:other/x:pull registry:catalog:*"), false).unwrap();
    assert!(t.refresh_token.is_none());
    let v = a.bearer(&t.token).await.unwrap();
    assert_eq!(v.actions("team/web"), Actions::PULL | Actions::PUSH, "delete was not granted, so it is left out");
    assert_eq!(v.actions("other/x"), Actions::NONE);
    assert!(!v.catalog());

    let (h, c, sig) = parts(&t.token);
    // alg none, with and without a signature.
    let mut none = h.clone();
    none["alg"] = "none".into();
    assert!(invalid(a.bearer(&join(&none, &c, "")).await));
    assert!(invalid(a.bearer(&join(&none, &c, &sig)).await));
    // HS256 "signed" with the public key: the key never lets a token choose its algorithm.
    let mut hs = h.clone();
    hs["alg"] = "HS256".into();
    let unsigned = format!("{}.{}", B64.encode(hs.to_string()), B64.encode(c.to_string()));
    let mac = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, h["kid"].as_str().unwrap().as_bytes()), unsigned.as_bytes());
    assert!(invalid(a.bearer(&format!("{unsigned}.{}", B64.encode(mac.as_ref()))).await));
    // A tampered payload: more rights, same signature.
    let mut more = c.clone();
    more["access"][0]["name"] = "other/x".into();
    assert!(invalid(a.bearer(&join(&h, &more, &sig)).await));
    // A payload changed to extend the expiry fails on its signature.
    let mut expired = c.clone();
    expired["exp"] = (auth::now_secs() - 3600).into();
    assert!(invalid(a.bearer(&join(&h, &expired, &sig)).await));
    // An unknown key id.
    let mut kid = h.clone();
    kid["kid"] = "ffffffffffffffff".into();
    assert!(invalid(a.bearer(&join(&kid, &c, &sig)).await));
    assert!(invalid(a.bearer("not.a.token").await));

    // A second replica on the same store accepts the first one's token.
    let b = auth(&dir, &store).await;
    assert_eq!(b.bearer(&t.token).await.unwrap().actions("team/web"), Actions::PULL | Actions::PUSH);
}

/// A token key file, and a signer for claims of our choosing with that key.
fn key_file(dir: &tempfile::TempDir) -> (std::path::PathBuf, jsonwebtoken::EncodingKey, String) {
    use ring::signature::KeyPair;
    let der = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
    let kid = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(pair.public_key().as_ref())[..8]);
    let pem = format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        base64::engine::general_purpose::STANDARD.encode(der.as_ref())
    );
    let path = dir.path().join("token.pem");
    std::fs::write(&path, pem).unwrap();
    (path, jsonwebtoken::EncodingKey::from_ed_der(der.as_ref()), kid)
}

#[tokio::test]
async fn signed_tokens_with_wrong_claims_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::filesystem(&dir.path().join("data")).unwrap();
    let (path, key, kid) = key_file(&dir);
    std::fs::write(dir.path().join("htpasswd"), "").unwrap();
    let cfg = AuthConfig {
        htpasswd: dir.path().join("htpasswd"),
        admins: vec![],
        stagers: vec![],
        rules: vec![],
        token_ttl: Duration::from_secs(300),
        token_key: Some(path),
        service: "wharfage-test".into(),
        retain: 1,
        failed_logins_per_minute: 10,
    };
    let a = Auth::new(cfg, store).await.unwrap();
    let now = auth::now_secs();
    let good = serde_json::json!({
        "iss": auth::ISSUER, "sub": "ci", "aud": "wharfage-test", "exp": now + 60, "nbf": now - 1, "iat": now, "jti": "x",
        "access": [{"type": "repository", "name": "team/web", "actions": ["pull"]}]
    });
    let sign = |claims: &serde_json::Value| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        h.kid = Some(kid.clone());
        jsonwebtoken::encode(&h, claims, &key).unwrap()
    };
    assert_eq!(a.bearer(&sign(&good)).await.unwrap().actions("team/web"), Actions::PULL, "the control case passes");
    let with = |k: &str, v: serde_json::Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    assert!(invalid(a.bearer(&sign(&with("exp", (now - 120).into()))).await), "expired");
    assert!(invalid(a.bearer(&sign(&with("nbf", (now + 600).into()))).await), "not yet valid");
    assert!(invalid(a.bearer(&sign(&with("aud", "another-registry".into()))).await), "wrong audience");
    assert!(invalid(a.bearer(&sign(&with("iss", "someone".into()))).await), "wrong issuer");
    let mut no_exp = good.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert!(invalid(a.bearer(&sign(&no_exp)).await), "no expiry");
    // A refresh token is no access token.
    let t = a.issue(&Principal::User("ci".into()), &[], true).unwrap();
    assert!(a.bearer(&t.token).await.is_ok());
    assert!(invalid(a.bearer(t.refresh_token.as_deref().unwrap()).await));
}

#[tokio::test]
async fn replicas_that_made_their_own_keys_accept_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::filesystem(&dir.path().join("data")).unwrap();
    let a = auth(&dir, &store).await;
    // Another replica that started at the same moment made and stored a key of its own.
    let der = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
    let kid = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(ring::signature::KeyPair::public_key(&pair).as_ref())[..8]);
    store
        .put_signing_key(&store::SigningKeyRecord {
            kid: store::CredentialId::parse(&kid).unwrap(),
            alg: "EdDSA".into(),
            pkcs8_base64: base64::engine::general_purpose::STANDARD.encode(der.as_ref()),
            created_ms: u64::MAX / 2,
        })
        .await
        .unwrap();
    let b = auth(&dir, &store).await;
    let t = b.issue(&Principal::User("ci".into()), &scope("repository:team/web:pull"), false).unwrap();
    assert_eq!(parts(&t.token).0["kid"], kid.as_str(), "b signs with the newest key");
    assert_eq!(a.bearer(&t.token).await.unwrap().actions("team/web"), Actions::PULL, "a finds b's key in the store");
}

#[tokio::test]
async fn failed_logins_are_throttled_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::filesystem(&dir.path().join("data")).unwrap();
    let a = auth(&dir, &store).await;
    for _ in 0..10 {
        assert!(matches!(a.login("ci", "wrong", client()).await, Err(AuthError::BadCredentials)));
    }
    assert!(matches!(a.login("ci", "ci-pw", client()).await, Err(AuthError::Throttled { .. })), "even the right password waits");
    assert!(a.login("ci", "ci-pw", "192.0.2.8".parse().unwrap()).await.is_ok(), "other addresses are not affected");
}

#[tokio::test]
async fn refresh_tokens_end_when_the_password_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::filesystem(&dir.path().join("data")).unwrap();
    let a = auth(&dir, &store).await;
    let ci = a.login("ci", "ci-pw", client()).await.unwrap();
    let t = a.issue(&ci, &[], true).unwrap();
    let refresh = t.refresh_token.unwrap();
    let again = a.refresh(&refresh, &scope("repository:team/web:pull")).await.unwrap();
    assert_eq!(a.bearer(&again.token).await.unwrap().actions("team/web"), Actions::PULL);
    assert!(a.refresh(&t.token, &[]).await.is_err(), "an access token is no refresh token");
    std::fs::write(dir.path().join("htpasswd"), format!("ci:{}\n", bcrypt::hash("new-pw", 4).unwrap())).unwrap();
    a.reload_users().unwrap();
    assert!(a.refresh(&refresh, &[]).await.is_err());
    assert!(a.login("ci", "ci-pw", client()).await.is_err());
}
