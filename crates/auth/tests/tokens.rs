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
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    (path, jsonwebtoken::EncodingKey::from_ed_der(der.as_ref()), kid)
}

#[tokio::test]
async fn signed_tokens_with_wrong_claims_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::filesystem(&dir.path().join("data")).unwrap();
    let (path, key, kid) = key_file(&dir);
    let cfg = key_config(&dir, path);
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
    // Signed with our key but living longer than the 300 s we issue: refused, whether the
    // lifetime shows in `exp - iat` or only in `exp - now`.
    assert!(invalid(a.bearer(&sign(&with("exp", (now + 30 * 24 * 3600).into()))).await), "a month-long token");
    let mut backdated = with("exp", (now + 3600).into());
    backdated["iat"] = (now + 3600 - 300).into();
    assert!(invalid(a.bearer(&sign(&backdated)).await), "an iat that hides an hour-long lifetime");
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

fn key_config(dir: &tempfile::TempDir, path: std::path::PathBuf) -> AuthConfig {
    std::fs::write(dir.path().join("htpasswd"), "").unwrap();
    AuthConfig {
        htpasswd: dir.path().join("htpasswd"),
        admins: vec![],
        stagers: vec![],
        rules: vec![],
        token_ttl: Duration::from_secs(300),
        token_key: Some(path),
        service: "wharfage-test".into(),
        retain: 1,
        failed_logins_per_minute: 10,
    }
}

#[tokio::test]
async fn a_key_file_others_can_read_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::filesystem(&dir.path().join("data")).unwrap();
    let (path, _, _) = key_file(&dir);
    for mode in [0o644, 0o640, 0o604] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = Auth::new(key_config(&dir, path.clone()), store.clone()).await.err().expect("a readable key is refused");
        let msg = e.to_string();
        assert!(matches!(e, AuthError::Config(_)), "{msg}");
        assert!(msg.contains(&path.display().to_string()) && msg.contains("chmod 600"), "names the file and the fix: {msg}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    Auth::new(key_config(&dir, path), store).await.unwrap();
}

#[tokio::test]
async fn the_stored_signing_key_is_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let store = store::Store::filesystem(&data).unwrap();
    let _a = auth(&dir, &store).await;
    let keys: Vec<_> = std::fs::read_dir(data.join("auth/keys")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(std::fs::metadata(&keys[0]).unwrap().permissions().mode() & 0o777, 0o600);
    // A key an older version stored world-readable is made owner-only when read.
    std::fs::set_permissions(&keys[0], std::fs::Permissions::from_mode(0o644)).unwrap();
    let _b = auth(&dir, &store).await;
    assert_eq!(std::fs::metadata(&keys[0]).unwrap().permissions().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn token_requests_are_bounded_and_so_is_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::filesystem(&dir.path().join("data")).unwrap();
    let a = auth(&dir, &store).await;
    let ci = Principal::User("ci".into());
    let many = |n: usize, tag: usize| -> Vec<Grant> {
        Grant::parse_all(
            (0..n)
                .map(|i| format!("repository:team/r{tag}-{i}-with-a-long-name-to-weigh-more:pull"))
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        )
    };
    match a.issue(&ci, &many(auth::MAX_SCOPES + 1, 0), false) {
        Err(AuthError::BadRequest(m)) => assert!(m.contains(&auth::MAX_SCOPES.to_string()), "names the limit: {m}"),
        other => panic!("expected a refusal, got {:?}", other.map(|t| t.expires_in)),
    }
    assert!(matches!(a.refresh("x.y.z", &many(auth::MAX_SCOPES + 1, 0)).await, Err(AuthError::BadRequest(_))));
    // Tokens as big as allowed, verified until the cache would hold far more than its bound.
    let mut total = 0u64;
    for tag in 0..1400 {
        let t = a.issue(&ci, &many(auth::MAX_SCOPES, tag), false).unwrap();
        let v = a.bearer(&t.token).await.unwrap();
        assert_eq!(v.access.len(), auth::MAX_SCOPES);
        total += t.token.len() as u64;
    }
    assert!(total > auth::TOKEN_CACHE_BYTES, "the test verifies more than the cache may hold ({total} bytes of tokens)");
    let held = a.token_cache_bytes();
    assert!(held > 0 && held <= auth::TOKEN_CACHE_BYTES, "the cache holds {held} bytes");
}

#[tokio::test]
async fn an_unknown_user_costs_a_password_check_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::filesystem(&dir.path().join("data")).unwrap();
    let a = auth(&dir, &store).await;
    let before = a.password_checks();
    assert!(matches!(a.login("nobody", "pw", client()).await, Err(AuthError::BadCredentials)));
    assert_eq!(a.password_checks(), before + 1, "an unknown name is checked against a hash, like a wrong password");
    assert!(matches!(a.login("ci", "wrong", client()).await, Err(AuthError::BadCredentials)));
    assert_eq!(a.password_checks(), before + 2);
}

#[tokio::test]
async fn one_user_guessed_from_rotating_addresses_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::filesystem(&dir.path().join("data")).unwrap();
    let a = auth(&dir, &store).await;
    let mut refused = 0;
    for i in 0..60u32 {
        let from: IpAddr = format!("198.51.100.{}", i + 1).parse().unwrap();
        match a.login("ci", &format!("guess{i}"), from).await {
            Err(AuthError::BadCredentials) => {}
            Err(AuthError::Throttled { .. }) => refused += 1,
            other => panic!("{other:?}"),
        }
    }
    let checked = 60 - refused;
    assert!(refused > 0 && checked <= 40, "per-user limit: {checked} guesses were checked");
    // Unknown names from rotating addresses are limited per name the same way.
    let before = a.password_checks();
    for i in 0..60u32 {
        let from: IpAddr = format!("203.0.113.{}", i + 1).parse().unwrap();
        let _ = a.login("nobody", "pw", from).await;
    }
    assert!(a.password_checks() - before <= 40);
    // Another user at one of those addresses still gets in.
    assert!(a.login("root", "root-pw", "198.51.100.1".parse().unwrap()).await.is_ok());
}

#[tokio::test]
async fn one_user_failing_behind_a_nat_does_not_lock_out_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::filesystem(&dir.path().join("data")).unwrap();
    let a = auth(&dir, &store).await;
    for _ in 0..10 {
        assert!(matches!(a.login("ci", "wrong", client()).await, Err(AuthError::BadCredentials)));
    }
    assert!(matches!(a.login("ci", "wrong", client()).await, Err(AuthError::Throttled { .. })));
    assert!(a.login("root", "root-pw", client()).await.is_ok(), "root at the same address is let in");
    // Many names from one address meet the address's ceiling.
    let mut refused = false;
    for i in 0..60 {
        refused |= matches!(a.login(&format!("user{i}"), "pw", client()).await, Err(AuthError::Throttled { .. }));
    }
    assert!(refused, "one address trying many names is refused at some point");
}

#[tokio::test]
async fn an_ipv6_slash_64_is_one_client() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::filesystem(&dir.path().join("data")).unwrap();
    let a = auth(&dir, &store).await;
    for i in 1..=10u32 {
        let from: IpAddr = format!("2001:db8:7:7::{i:x}").parse().unwrap();
        assert!(matches!(a.login("ci", "wrong", from).await, Err(AuthError::BadCredentials)));
    }
    let next: IpAddr = "2001:db8:7:7:abcd::1".parse().unwrap();
    assert!(matches!(a.login("ci", "wrong", next).await, Err(AuthError::Throttled { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_wrong_passwords_never_exceed_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::Store::filesystem(&dir.path().join("data")).unwrap();
    let a = std::sync::Arc::new(auth(&dir, &store).await);
    let before = a.password_checks();
    let tries: Vec<_> = (0..40)
        .map(|i| {
            let a = a.clone();
            tokio::spawn(async move { a.login("ci", &format!("wrong{i}"), client()).await })
        })
        .collect();
    let mut throttled = 0;
    for t in tries {
        if let Err(AuthError::Throttled { .. }) = t.await.unwrap() {
            throttled += 1;
        }
    }
    assert_eq!(a.password_checks() - before, 10, "exactly the limit of passwords were checked");
    assert_eq!(throttled, 30);
    // The same right password sent on many connections at once takes one slot, not many.
    let b = std::sync::Arc::new(auth(&dir, &store).await);
    let at: IpAddr = "192.0.2.50".parse().unwrap();
    let same: Vec<_> = (0..30)
        .map(|_| {
            let b = b.clone();
            tokio::spawn(async move { b.login("ci", "ci-pw", at).await })
        })
        .collect();
    for t in same {
        assert!(t.await.unwrap().is_ok());
    }
}
