//! Private upstreams: htpasswd basic auth and the Docker bearer-token flow (the real registry
//! verifies the JWTs of our issuer), right, wrong and missing credentials; a TLS upstream
//! whose certificate a private CA signed; blob redirects to another host, which must not
//! receive the upstream's credentials; and the credential search: after staging from a
//! password-protected upstream, neither the password nor its base64 forms appear anywhere
//! under the storage root or in the server's log.

use std::time::Duration;

use base64::Engine as _;
use serde_json::json;

use super::images::{image, layer};
use super::proxy::{Faults, Proxy};
use super::upstream::{Mode, Upstream, IDENTITY_TOKEN, PASSWORD, USER};
use super::{error_message, layout, Wharf};
use crate::fixtures::{assert_same_blobs, subset, Image, Layout, Rng, OCI_MANIFEST};
use crate::harness::files_under;
use crate::skopeo::Skopeo;

/// An image of two layers, tagged `v1` in a fresh layout.
pub(super) fn private_image(wharf: &Wharf, seed: u64) -> (Layout, Image) {
    let mut l = layout(&wharf.scratch("src"));
    let mut rng = Rng::new(seed);
    let base = layer(&mut l, &mut rng, "base.bin", 250_000);
    let app = layer(&mut l, &mut rng, "app.bin", 60_000);
    let img = image(&mut l, "amd64", &[&base, &app]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    (l, img)
}

/// Starts wharfage logging everything (`trace`), so the credential search covers every
/// line any crate could write.
pub(super) fn verbose_wharf(up: &Upstream) -> Wharf {
    verbose_wharf_for(&[up.host()])
}

/// The same, allowing plain HTTP to `hosts`.
fn verbose_wharf_for(hosts: &[String]) -> Wharf {
    let mut args = super::insecure(hosts);
    args.extend(["--log".to_string(), "trace".to_string()]);
    Wharf::start(&args)
}

/// Right, wrong and missing credentials against an authenticated upstream.
fn right_wrong_and_missing(wharf: &Wharf, up: &Upstream, skopeo: &Skopeo, l: &Layout, img: &Image) {
    let source = format!("{}/private/app:v1", up.host());
    let creds = json!({ "credentials": { "username": USER, "password": PASSWORD } });
    let r = wharf.stage_ok(&source, "private", creds);
    assert_eq!(r.record.digest.to_string(), img.digest);
    assert_eq!(r.record.blobs_downloaded, 3, "{r:?}");

    let wrong = json!({ "credentials": { "username": USER, "password": "not-the-Pw-123" } });
    let resp = wharf.stage(&source, "private-wrong", wrong).expect(401, "wrong password");
    let message = error_message(&resp, "UPSTREAM_UNAUTHORIZED");
    assert!(message.contains(&up.host()), "the message names the registry: {message}");
    assert!(message.contains(USER), "the message says whose credentials were refused: {message}");
    let why = if up.mode == Mode::Basic { "rejected the username and password" } else { "the token service answered 401" };
    assert!(message.contains(why), "the message says what refused them: {message}");
    assert!(!message.contains("not-the-Pw-123"), "the message shows the password: {message}");

    let resp = wharf.stage(&source, "private-anonymous", json!({})).expect(401, "no credentials");
    let message = error_message(&resp, "UPSTREAM_UNAUTHORIZED");
    assert!(message.contains(&up.host()) && message.contains("credentials"), "{message}");

    for app in ["private-wrong", "private-anonymous"] {
        wharf.app(app).expect(404, "a refused staging records nothing");
    }
    let pulled = wharf.pull(skopeo, &r.image, "pulled");
    assert_same_blobs(&subset(&l.blobs, &img.blob_digests()), &pulled, "the private image, pulled from wharfage");
}

/// The password, and the wrong one tried, in every form a leak could take.
fn secrets() -> Vec<String> {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let b64url = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let mut out = Vec::new();
    for pw in [PASSWORD, "not-the-Pw-123", IDENTITY_TOKEN, "idt-wrong-0000"] {
        let pair = format!("{USER}:{pw}");
        out.extend([pw.to_string(), b64(pw), b64(&pair), b64url(pw), b64url(&pair)]);
        // Unpadded forms too: a leak inside a longer base64 text would carry no padding.
        out.extend([b64(pw).trim_end_matches('=').to_string(), b64(&pair).trim_end_matches('=').to_string()]);
    }
    out
}

/// Searches every file under the storage root and the server's log for the secrets.
#[track_caller]
pub(super) fn assert_no_credentials_anywhere(wharf: &Wharf) {
    let files = files_under(&wharf.root);
    assert!(files.iter().any(|f| f.to_string_lossy().contains("stagings")), "the search must cover the staging records: {files:?}");
    let log = wharf.server.log().join("\n");
    assert!(log.lines().count() > 10, "the log should have something to search");
    for secret in secrets() {
        for f in &files {
            let bytes = std::fs::read(f).unwrap();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret:?} found in {}", f.display());
        }
        assert!(!log.contains(&secret), "{secret:?} found in the server log");
    }
}

#[test]
fn basic_auth_upstream() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Basic);
    let wharf = verbose_wharf(&up);
    let (l, img) = private_image(&wharf, 401);
    up.push(&skopeo, &l, "v1", "private/app");
    right_wrong_and_missing(&wharf, &up, &skopeo, &l, &img);

    let source = format!("{}/private/app:v1", up.host());
    let resp = wharf
        .stage(&source, "private-token", json!({ "credentials": { "token": "some-identity-token" } }))
        .expect(401, "a token for a basic-auth registry");
    let message = error_message(&resp, "UPSTREAM_UNAUTHORIZED");
    assert!(message.contains(&up.host()), "{message}");
    assert_no_credentials_anywhere(&wharf);
}

#[test]
fn bearer_token_upstream() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Token);
    let wharf = verbose_wharf(&up);
    let (l, img) = private_image(&wharf, 402);
    up.push(&skopeo, &l, "v1", "private/app");
    let pushes = up.issuer().requests().len();
    right_wrong_and_missing(&wharf, &up, &skopeo, &l, &img);

    let requests = up.issuer().requests()[pushes..].to_vec();
    let granted: Vec<_> = requests.iter().filter(|r| r.status == 200 && r.user.as_deref() == Some(USER)).collect();
    assert!(!granted.is_empty(), "wharfage asked the token service with the credentials: {requests:?}");
    for r in &granted {
        assert!(r.query.contains(&("service".into(), "wharfage-e2e-upstream".into())), "{r:?}");
        assert!(r.query.contains(&("scope".into(), "repository:private/app:pull".into())), "pull scope only: {r:?}");
    }
    assert!(requests.iter().any(|r| r.status == 401), "the wrong password reached the token service: {requests:?}");

    // An identity token instead of a password: the OAuth2 refresh-token grant.
    let source = format!("{}/private/app:v1", up.host());
    let before = up.issuer().requests().len();
    let r = wharf.stage_ok(&source, "private-idt", json!({ "credentials": { "token": IDENTITY_TOKEN } }));
    assert_eq!(r.record.digest.to_string(), img.digest);
    let posts = up.issuer().requests()[before..].to_vec();
    assert!(
        posts.iter().any(|p| p.status == 200 && p.query.contains(&("grant_type".into(), "refresh_token".into()))),
        "the identity token went through the refresh-token grant: {posts:?}"
    );
    let resp = wharf
        .stage(&source, "private-idt-wrong", json!({ "credentials": { "token": "idt-wrong-0000" } }))
        .expect(401, "a wrong identity token");
    let message = error_message(&resp, "UPSTREAM_UNAUTHORIZED");
    assert!(message.contains(&up.host()) && message.contains("identity token"), "{message}");
    assert!(!message.contains("idt-wrong-0000"), "{message}");
    assert_no_credentials_anywhere(&wharf);
}

#[test]
fn tls_upstream_with_a_private_ca() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Tls);
    let ca = up.ca_pem();
    let wharf = Wharf::start(&["--upstream-ca".to_string(), ca.display().to_string()]);
    let (l, img) = private_image(&wharf, 403);
    up.push(&skopeo, &l, "v1", "tls/app");
    let source = format!("{}/tls/app:v1", up.host());
    let r = wharf.stage_ok(&source, "tls-app", json!({}));
    assert_eq!(r.record.digest.to_string(), img.digest);
    assert!(up.blob_gets(&img.config) == 1, "fetched over TLS");

    // Without the CA the upstream's certificate is not trusted: no staging, a clear 502.
    let untrusting = Wharf::start(&[]);
    let resp = untrusting.stage(&source, "tls-app", json!({})).expect(502, "an untrusted certificate");
    let message = error_message(&resp, "UPSTREAM_TLS");
    assert!(message.contains(&up.host()), "{message}");
    untrusting.app("tls-app").expect(404, "nothing staged");
}

#[test]
fn credentials_are_not_sent_to_the_host_a_blob_redirects_to() {
    let skopeo = Skopeo::new();
    // The private registry redirects blob GETs (through `front`) to a "blob storage" host:
    // an anonymous registry holding the same blobs, behind a proxy that records what it gets.
    let private = Upstream::start(Mode::Basic);
    let storage = Upstream::start(Mode::Anonymous);
    let storage_front = Proxy::start(storage.port, Faults::default());
    let front = Proxy::start(private.port, Faults { redirect_blobs_to: Some(storage_front.port), ..Faults::default() });
    // A redirect to a plain-HTTP host that is not an insecure registry is refused: layers
    // must not travel unencrypted because a registry's storage said so.
    let strict = verbose_wharf_for(&[front.host()]);
    let wharf = verbose_wharf_for(&[front.host(), storage_front.host()]);
    let (l, img) = private_image(&wharf, 404);
    private.push(&skopeo, &l, "v1", "private/app");
    storage.push(&skopeo, &l, "v1", "private/app");

    let creds = json!({ "credentials": { "username": USER, "password": PASSWORD } });
    let refused = strict.stage(&format!("{}/private/app:v1", front.host()), "refused", creds.clone());
    let text = String::from_utf8_lossy(&refused.body).to_string();
    assert_eq!(refused.status, 502, "{text}");
    assert!(text.contains("plain-HTTP"), "{text}");
    assert!(storage_front.heads().is_empty(), "nothing was fetched from the plain-HTTP storage host");
    let r = wharf.stage_ok(&format!("{}/private/app:v1", front.host()), "redirected", creds);
    assert_eq!(r.record.blobs_downloaded, 3, "{r:?}");
    let sent_to_registry = front.heads();
    assert!(
        sent_to_registry.iter().any(|h| h.to_ascii_lowercase().contains("\nauthorization: basic ")),
        "the registry itself got the credentials: {sent_to_registry:#?}"
    );
    let sent_to_storage = storage_front.heads();
    assert_eq!(sent_to_storage.len(), 3, "every blob came from the storage host: {sent_to_storage:#?}");
    for h in &sent_to_storage {
        assert!(!h.to_ascii_lowercase().contains("authorization"), "the storage host got the registry's credentials:\n{h}");
    }
    let pulled = wharf.pull(&skopeo, &r.image, "pulled");
    assert_same_blobs(&subset(&l.blobs, &img.blob_digests()), &pulled, "a redirected staging");
    assert_no_credentials_anywhere(&wharf);
}

#[test]
fn tokens_the_registry_refuses_early_are_renewed_mid_staging() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Token);
    // Slow blobs, one at a time: the staging outlives the tokens it gets.
    let proxy = Proxy::start(up.port, Faults { delay_blobs: Some(Duration::from_millis(1500)), ..Faults::default() });
    let mut args = super::insecure(&[up.host(), proxy.host()]);
    args.extend(["--stage-concurrency", "1"].map(String::from));
    let wharf = Wharf::start(&args);
    let (l, img) = private_image(&wharf, 404);
    up.push(&skopeo, &l, "v1", "private/app");

    // The registry allows 60 s of clock skew past `exp`, and `exp` has whole seconds: these
    // tokens last 2 to 3 s there (always more than one held blob request, 1.5 s, so a fresh
    // token is never refused), while the token service's answer says 300 s. The three blobs
    // take at least 4.5 s, so the staging outlives its first token.
    up.issuer().set_jwt_lifetime(-57);
    let before = up.issuer().requests().len();
    let creds = json!({ "credentials": { "username": USER, "password": PASSWORD } });
    let r = wharf.stage_ok(&format!("{}/private/app:v1", proxy.host()), "renewed", creds);
    assert_eq!(r.record.digest.to_string(), img.digest);
    let granted = up.issuer().requests()[before..].iter().filter(|r| r.status == 200 && r.user.as_deref() == Some(USER)).count();
    assert!(granted >= 2, "the staging got only {granted} token(s): it never renewed a refused one");
    let pulled = wharf.pull(&skopeo, &r.image, "renewed");
    assert_same_blobs(&subset(&l.blobs, &img.blob_digests()), &pulled, "a staging that renewed its token");
}

#[test]
fn a_cached_anonymous_token_the_registry_refuses_is_replaced() {
    let skopeo = Skopeo::new();
    let up = Upstream::start(Mode::Token);
    let wharf = Wharf::start(&super::insecure(&[up.host()]));
    let (l, img) = private_image(&wharf, 405);
    up.push(&skopeo, &l, "v1", "public/app");
    up.issuer().allow_anonymous_pull(true);
    // Tokens the registry takes for about 2 s (60 s of allowed skew past `exp`), announced
    // as good for 300 s: wharfage keeps anonymous tokens across stagings for that long.
    up.issuer().set_jwt_lifetime(-58);
    let source = format!("{}/public/app:v1", up.host());
    let first = wharf.stage_ok(&source, "anon-1", json!({}));
    assert_eq!(first.record.digest.to_string(), img.digest);
    let issued = up.issuer().requests().len();
    std::thread::sleep(Duration::from_secs(3));

    // The cached token is refused now; the staging gets a new one instead of failing.
    let second = wharf.stage_ok(&source, "anon-2", json!({}));
    assert_eq!(second.record.digest.to_string(), img.digest);
    let fresh = up.issuer().requests()[issued..].iter().filter(|r| r.status == 200 && r.user.is_none()).count();
    assert!(fresh >= 1, "no new anonymous token was fetched for the second staging");
}
