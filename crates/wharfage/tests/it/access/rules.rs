//! Users, roles and repository rules as clients meet them: skopeo over TLS logs in through
//! the token protocol and is let in or refused per rule; the challenges, tokens and the
//! management API's roles seen on the wire.

use super::{claims, inspect, push, pw, Cred, Secured};
use crate::round_trip::image_fixture;
use crate::skopeo::{oci_ref, Skopeo};

fn creds(user: &str) -> String {
    format!("{user}:{}", pw(user))
}

#[test]
fn skopeo_pushes_and_pulls_under_the_rules_over_tls() {
    let skopeo = Skopeo::new();
    let s = Secured::start(&[]);
    let (layout, _) = image_fixture(&s.dir.path().join("src"), 41);
    let src = oci_ref(&layout.dir, "v1");

    let (ok, err) = push(&skopeo, &s, &src, "team/web:v1", Some(&creds("ci")));
    assert!(ok, "ci pushes team/*: {err}");
    let refused = [
        ("team/web:v2", Some(creds("reader")), "reader has pull only"),
        ("team/web:v2", Some("ci:wrong-password".to_string()), "wrong password"),
        ("team/web:v2", None, "anonymous"),
        ("other/web:v1", Some(creds("ci")), "ci has no rule on other/*"),
        ("apps/web:v1", Some(creds("ci")), "apps/ is never granted by a rule that does not name it"),
        ("open/web:v1", Some(creds("stager")), "a stager has no repository rights by its role"),
    ];
    for (repo, c, why) in refused {
        let (ok, err) = push(&skopeo, &s, &src, repo, c.as_deref());
        assert!(!ok, "push to {repo} must be refused ({why})");
        assert!(err.contains("denied") || err.contains("unauthorized") || err.contains("401") || err.contains("403"), "{why}: {err}");
    }

    assert!(inspect(&skopeo, &s, "team/web:v1", Some(&creds("reader"))).0, "reader pulls team/*");
    assert!(!inspect(&skopeo, &s, "team/web:v1", None).0, "anonymous may not pull team/*");
    assert!(!inspect(&skopeo, &s, "team/web:v1", Some("reader:wrong")).0, "wrong password");
    // An admin may push anywhere; anonymous callers pull open/*, but a logged-in user with
    // no rule on it may not ("anonymous" means no login).
    assert!(push(&skopeo, &s, &src, "open/web:v1", Some(&creds("root"))).0);
    assert!(inspect(&skopeo, &s, "open/web:v1", None).0, "anonymous pulls open/*");
    assert!(!inspect(&skopeo, &s, "open/web:v1", Some(&creds("reader"))).0);
}

#[test]
fn challenges_tokens_and_roles_on_the_wire() {
    let skopeo = Skopeo::new();
    let s = Secured::start(&[]);
    let h = s.https();
    let (layout, image) = image_fixture(&s.dir.path().join("src"), 42);
    assert!(push(&skopeo, &s, &oci_ref(&layout.dir, "v1"), "team/web:v1", Some(&creds("ci"))).0);

    // Challenges name the realm, service and the scope the request needed.
    let a = h.get("/v2/", Cred::None);
    assert_eq!(a.status, 401);
    let realm = format!("Bearer realm=\"{}/auth/token\",service=\"wharfage\"", s.url());
    assert_eq!(a.header("www-authenticate"), realm);
    let a = h.get("/v2/team/web/manifests/v1", Cred::None);
    assert_eq!((a.status, a.code().as_str()), (401, "UNAUTHORIZED"));
    assert_eq!(a.header("www-authenticate"), format!("{realm},scope=\"repository:team/web:pull\""));
    let a = h.send("POST", "/v2/team/web/blobs/uploads/", Cred::None, None);
    assert!(a.header("www-authenticate").ends_with("scope=\"repository:team/web:pull,push\""), "{}", a.header("www-authenticate"));

    // A token holds what was asked and granted, nothing else; denied scopes are left out.
    let ci = ("ci", pw("ci"));
    let t = h.token(Cred::Basic(ci.0, ci.1), &["repository:team/web:pull,push,delete", "repository:other/x:pull", "registry:catalog:*"]);
    let c = claims(&t);
    assert_eq!(c["access"], serde_json::json!([{"type": "repository", "name": "team/web", "actions": ["pull", "push"]}]));
    assert_eq!((c["sub"].as_str(), c["aud"].as_str(), c["iss"].as_str()), (Some("ci"), Some("wharfage"), Some("wharfage")));
    let lifetime = c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap();
    assert_eq!(lifetime, 300, "tokens last 5 minutes by default");
    let manifest = format!("/v2/team/web/manifests/{}", image.digest);
    assert_eq!(h.send("HEAD", &manifest, Cred::Bearer(&t), None).status, 200);
    // A token for repository A is no token for B.
    let a = h.get("/v2/other/x/tags/list", Cred::Bearer(&t));
    assert_eq!(a.status, 401);
    assert!(a.header("www-authenticate").contains("error=\"insufficient_scope\""), "{}", a.header("www-authenticate"));
    // Wrong passwords get no token; anonymous callers get a token with their rights only.
    assert_eq!(h.get("/auth/token?service=wharfage&scope=repository:team/web:pull", Cred::Basic("ci", "nope")).status, 401);
    let anon = h.token(Cred::None, &["repository:team/web:pull", "repository:open/x:pull"]);
    assert_eq!(claims(&anon)["access"], serde_json::json!([{"type": "repository", "name": "open/x", "actions": ["pull"]}]));
    assert_eq!(h.get("/v2/team/web/tags/list", Cred::Bearer(&anon)).status, 401);

    // OAuth2 grants (containerd, docker with an identity token).
    let form = format!(
        "grant_type=password&username=ci&password={}&service=wharfage&scope=repository:team/web:pull&access_type=offline&client_id=t",
        pw("ci")
    );
    let a = h.send("POST", "/auth/token", Cred::None, Some(("application/x-www-form-urlencoded", form.into_bytes())));
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("cache-control"), "no-store");
    let refresh = a.json()["refresh_token"].as_str().unwrap().to_string();
    let form = format!("grant_type=refresh_token&refresh_token={refresh}&service=wharfage&scope=repository:team/web:pull");
    let a = h.send("POST", "/auth/token", Cred::None, Some(("application/x-www-form-urlencoded", form.into_bytes())));
    assert_eq!(a.status, 200);
    let refreshed = a.json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(h.get("/v2/team/web/tags/list", Cred::Bearer(&refreshed)).status, 200);
    let form = "grant_type=password&username=ci&password=bad&service=wharfage".to_string();
    assert_eq!(h.send("POST", "/auth/token", Cred::None, Some(("application/x-www-form-urlencoded", form.into_bytes()))).status, 401);

    // Basic credentials straight on /v2/ (curl): the same rules; a known user who may not
    // gets 403, not a challenge.
    assert_eq!(h.get("/v2/team/web/tags/list", Cred::Basic("reader", pw("reader"))).status, 200);
    let a = h.send("POST", "/v2/team/web/blobs/uploads/", Cred::Basic("reader", pw("reader")), None);
    assert_eq!((a.status, a.code().as_str()), (403, "DENIED"));
    assert_eq!(h.get("/v2/_catalog", Cred::Basic("root", pw("root"))).status, 200);
    assert_eq!(h.get("/v2/_catalog", Cred::Basic("ci", pw("ci"))).status, 403, "the catalog is for admins");

    // Roles on the management API and /metrics.
    assert_eq!(h.get("/api/v1/apps", Cred::None).status, 401);
    assert_eq!(h.get("/api/v1/apps", Cred::Basic("ci", pw("ci"))).status, 403);
    assert_eq!(h.get("/api/v1/apps", Cred::Basic("stager", pw("stager"))).status, 200);
    assert_eq!(h.send("POST", "/api/v1/gc", Cred::Basic("stager", pw("stager")), None).status, 403, "stagers do not collect");
    assert_eq!(h.get("/metrics", Cred::Basic("stager", pw("stager"))).status, 403);
    assert_eq!(h.send("POST", "/api/v1/gc", Cred::Basic("root", pw("root")), None).status, 200);
    let root_token = h.token(Cred::Basic("root", pw("root")), &[]);
    assert_eq!(h.get("/api/v1/apps", Cred::Bearer(&root_token)).status, 200, "bearer tokens work on /api/v1 too");
    assert_eq!(h.get("/healthz", Cred::None).status, 200, "probes stay open");

    // Guessing passwords is slowed: after 10 failures a minute of one user from one address,
    // 429 with Retry-After (last: it locks ci out at this address for a minute). Two failures
    // happened above (a wrong password for a token, on GET and on POST).
    for _ in 0..8 {
        assert_eq!(h.get("/v2/", Cred::Basic("ci", "guess")).status, 401);
    }
    assert_eq!(h.get("/v2/", Cred::Basic("ci", "guess")).status, 429);
    // Another password for ci waits too; one checked a moment ago (a client already pulling)
    // goes on; and another user at the same address (an office NAT) is not locked out.
    let a = h.get("/v2/", Cred::Basic("ci", "another-guess"));
    assert_eq!((a.status, a.code().as_str()), (429, "TOOMANYREQUESTS"));
    assert_eq!(h.get("/v2/", Cred::Basic("ci", pw("ci"))).status, 200);
    assert_eq!(h.get("/v2/", Cred::Basic("late", pw("late"))).status, 200, "late's logins are counted apart from ci's");
    assert!(a.header("retry-after").parse::<u64>().is_ok_and(|s| (1..=60).contains(&s)));
}

#[test]
fn client_commands_log_in_from_the_environment() {
    let s = Secured::start(&[]);
    let ca = s.dir.path().join("ca.pem");
    let apps = |env: &[(&str, &str)]| {
        let mut cmd = crate::harness::wharfage(s.dir.path());
        cmd.args(["apps", "--json", "--server", &s.url()]).env("WHARFAGE_CA_CERT", &ca).envs(env.iter().copied());
        crate::harness::run(cmd, std::time::Duration::from_secs(60))
    };
    let out = apps(&[]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("401"), "no login: {out:?}");
    let out = apps(&[("WHARFAGE_USERNAME", "stager"), ("WHARFAGE_PASSWORD", pw("stager"))]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let file = s.dir.path().join("password");
    std::fs::write(&file, format!("{}\n", pw("stager"))).unwrap();
    let out = apps(&[("WHARFAGE_USERNAME", "stager"), ("WHARFAGE_PASSWORD_FILE", file.to_str().unwrap())]);
    assert!(out.status.success(), "password from a file: {}", String::from_utf8_lossy(&out.stderr));
    let out = apps(&[("WHARFAGE_USERNAME", "ci"), ("WHARFAGE_PASSWORD", pw("ci"))]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("403 DENIED"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn serve_refuses_an_open_registry_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = crate::harness::wharfage(dir.path());
    cmd.args(["serve", "--listen", "0.0.0.0:0", "--root"]).arg(dir.path().join("root"));
    let out = crate::harness::run(cmd, std::time::Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--htpasswd") && err.contains("--anonymous"), "{err}");
    assert!(!dir.path().join("root").exists(), "nothing is created before the refusal");
    // With --anonymous it serves (an open registry on purpose).
    let mut cmd = crate::harness::wharfage(dir.path());
    cmd.args(["serve", "--listen", "0.0.0.0:0", "--anonymous", "--log-format", "json", "--root"]).arg(dir.path().join("root"));
    let server = crate::harness::Server::spawn(cmd);
    assert!(server.addr.port() > 0);
}

/// A cross-repository mount's challenge names the source's pull as well as the target's push,
/// so a token fetched from the challenge alone mounts on the first try; a token issued
/// without the source is sent back for one that has it; a source the user may not read
/// makes the mount an ordinary upload, never a 401 loop.
#[test]
fn a_mount_challenge_names_every_scope_it_needs() {
    let skopeo = Skopeo::new();
    let s = Secured::start(&[]);
    let h = s.https();
    let (layout, image) = image_fixture(&s.dir.path().join("src"), 43);
    assert!(push(&skopeo, &s, &oci_ref(&layout.dir, "v1"), "team/web:v1", Some(&creds("ci"))).0);
    let layer = &image.layers[0];
    let mount = format!("/v2/team/app/blobs/uploads/?mount={layer}&from=team/web");

    let a = h.send("POST", &mount, Cred::None, None);
    assert_eq!(a.status, 401);
    let challenge = a.header("www-authenticate").to_string();
    let scope = challenge.split("scope=\"").nth(1).and_then(|r| r.split('"').next()).expect("the challenge names a scope");
    assert_eq!(scope, "repository:team/app:pull,push repository:team/web:pull");
    let scopes: Vec<&str> = scope.split(' ').collect();
    let t = h.token(Cred::Basic("ci", pw("ci")), &scopes);
    let a = h.send("POST", &mount, Cred::Bearer(&t), None);
    assert_eq!(a.status, 201, "mounted with the token the challenge asked for: {}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("location"), format!("/v2/team/app/blobs/{layer}"));
    assert_eq!(h.send("HEAD", &format!("/v2/team/app/blobs/{layer}"), Cred::Bearer(&t), None).status, 200);

    // A token for the target only (a client reusing the one it pushed with): 401 naming both.
    let narrow = h.token(Cred::Basic("ci", pw("ci")), &["repository:team/other:pull,push"]);
    let a = h.send("POST", &mount.replace("team/app", "team/other"), Cred::Bearer(&narrow), None);
    assert_eq!(a.status, 401);
    assert!(a.header("www-authenticate").contains("error=\"insufficient_scope\""), "{}", a.header("www-authenticate"));
    assert!(a.header("www-authenticate").contains("scope=\"repository:team/other:pull,push repository:team/web:pull\""));

    // ci may not read private/x: the mount is an upload (202), and the bytes stay unreachable.
    let blob = b"private bytes".to_vec();
    let d = crate::fixtures::sha256(&blob);
    let a = h.send(
        "POST",
        &format!("/v2/private/x/blobs/uploads/?digest={d}"),
        Cred::Basic("root", pw("root")),
        Some(("application/octet-stream", blob)),
    );
    assert_eq!(a.status, 201);
    let steal = format!("/v2/team/app/blobs/uploads/?mount={d}&from=private/x");
    let t = h.token(Cred::Basic("ci", pw("ci")), &["repository:team/app:pull,push", "repository:private/x:pull"]);
    let a = h.send("POST", &steal, Cred::Bearer(&t), None);
    assert_eq!(a.status, 202, "a mount from a repository the user may not pull is an upload");
    assert_eq!(h.send("HEAD", &format!("/v2/team/app/blobs/{d}"), Cred::Bearer(&t), None).status, 404);
}
