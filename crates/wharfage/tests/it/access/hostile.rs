//! What a hostile page or client must not get from the management API: a browser that holds
//! Basic credentials for the registry must not be made to change anything by another site's
//! form (every state-changing request needs `Content-Type: application/json`), and every
//! route answers a bearer token exactly as it answers the same user's Basic credentials.

use serde_json::json;

use super::{pw, Cred, Https, Secured};
use crate::fixtures::{one_layer_manifest, sha256};

/// Pushes a one-layer image to `repo:v1` as `root`; returns its digest.
fn push(h: &Https, repo: &str, seed: u8) -> String {
    let root = Cred::Basic("root", pw("root"));
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
    let layer = vec![seed; 4096];
    for blob in [&config, &layer] {
        let path = format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(blob));
        let a = h.send("POST", &path, root, Some(("application/octet-stream", blob.clone())));
        assert_eq!(a.status, 201, "push a blob to {repo}: {}", String::from_utf8_lossy(&a.body));
    }
    let manifest = one_layer_manifest(&config, &layer);
    let a =
        h.send("PUT", &format!("/v2/{repo}/manifests/v1"), root, Some(("application/vnd.oci.image.manifest.v1+json", manifest.clone())));
    assert_eq!(a.status, 201, "push the manifest of {repo}: {}", String::from_utf8_lossy(&a.body));
    sha256(&manifest)
}

/// The number of pull credentials the app holds on disk.
fn credentials(s: &Secured, app: &str) -> usize {
    std::fs::read_dir(s.root.join(format!("apps/{app}/credentials"))).map_or(0, |d| d.count())
}

/// A request: method, path, credentials, content type (`None`: no header), body.
type Case<'a> = (&'a str, &'a str, Cred<'a>, Option<&'a str>, Vec<u8>);

/// Every request an HTML form (or `fetch` without a preflight) can send cross-site, with the
/// Basic credentials a browser would attach, is refused with 415 naming the content type,
/// and changes nothing: the pin, its credentials and the other apps stay. The same requests
/// with `Content-Type: application/json` work.
#[test]
fn cross_site_forms_cannot_use_a_browsers_basic_credentials() {
    let s = Secured::start(&["--gc-grace", "0s"]);
    let h = s.https();
    push(&h, "team/web", 7);
    // Anyone may pull `open/*`: a staging of it needs no upstream credentials in the body.
    push(&h, "open/web", 8);
    let source = format!("{}/team/web:v1", s.server.host());
    let (staged, _) = s.stage(&source, "shop", ("ci", pw("ci")));
    let stager = Cred::Basic("stager", pw("stager"));
    let root = Cred::Basic("root", pw("root"));
    let held = credentials(&s, "shop");
    assert_eq!(held, 1);

    let form = "application/x-www-form-urlencoded";
    let text = "text/plain";
    let multipart = "multipart/form-data; boundary=x";
    // `fetch(url, {method: "POST", mode: "no-cors", credentials: "include", body})` sends
    // any text as `text/plain` without a preflight: a valid staging request, for one.
    let staging = json!({"source": format!("{}/open/web:v1", s.server.host()), "app": "evil"}).to_string().into_bytes();
    let cases: Vec<Case<'_>> = vec![
        ("POST", "/api/v1/stagings", stager, Some(text), staging.clone()),
        ("POST", "/api/v1/stagings", stager, Some(form), b"source=x&app=evil".to_vec()),
        ("POST", "/api/v1/stagings", stager, None, staging.clone()),
        ("POST", "/api/v1/apps/shop/credentials", stager, Some(form), b"a=b".to_vec()),
        ("POST", "/api/v1/apps/shop/credentials", stager, Some(text), Vec::new()),
        ("POST", "/api/v1/apps/shop/credentials", stager, Some(multipart), b"--x--\r\n".to_vec()),
        ("DELETE", "/api/v1/apps/shop/credentials", stager, None, Vec::new()),
        ("DELETE", "/api/v1/apps/shop", stager, None, Vec::new()),
        ("DELETE", "/api/v1/apps/shop", stager, Some(form), Vec::new()),
        ("PUT", "/api/v1/apps/live", stager, Some(text), br#"{"apps": [], "force": true}"#.to_vec()),
        ("POST", "/api/v1/gc", root, Some(form), b"dry_run=false".to_vec()),
        ("POST", "/api/v1/gc", root, Some(text), br#"{"dry_run": false}"#.to_vec()),
        // `application/json` must be the media type, not a parameter or a suffix of another.
        ("POST", "/api/v1/gc", root, Some("text/plain; x=application/json"), Vec::new()),
        ("POST", "/api/v1/gc", root, Some("application/jsonx"), Vec::new()),
    ];
    for (method, path, cred, content_type, body) in cases {
        let what = format!("{method} {path} with {content_type:?}");
        let a = match content_type {
            Some(ct) => h.send(method, path, cred, Some((ct, body))),
            None => h.send_raw(method, path, cred, &[], body),
        };
        assert_eq!(a.status, 415, "{what}: {}", String::from_utf8_lossy(&a.body));
        let message = a.json()["errors"][0]["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains("Content-Type: application/json"), "{what}: the error names what is needed: {message}");
        match content_type {
            Some(ct) => assert!(message.contains(ct), "{what}: the error names the content type sent: {message}"),
            None => assert!(message.contains("no Content-Type"), "{what}: {message}"),
        }
        assert_eq!(a.header("cache-control"), "no-store", "{what}");
    }

    // Nothing changed: the pin and its credentials are there, no app was staged.
    let app = h.get("/api/v1/apps/shop", stager);
    assert_eq!(app.status, 200, "shop is still pinned: {}", String::from_utf8_lossy(&app.body));
    assert_eq!(app.json()["current"]["digest"], json!(staged.record.digest));
    assert_eq!(credentials(&s, "shop"), held, "no credential minted or revoked");
    assert_eq!(h.get("/api/v1/apps/evil", stager).status, 404, "no staging from a cross-site form");
    let pinned = format!("/v2/apps/shop/manifests/{}", staged.record.digest);
    assert_eq!(h.get(&pinned, root).status, 200, "the pinned manifest is still served");

    // The same requests with a JSON content type work, a body or not.
    let json_ct = "application/json";
    let a = h.send("POST", "/api/v1/apps/shop/credentials", stager, Some(("application/json; charset=utf-8", Vec::new())));
    assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(credentials(&s, "shop"), held + 1);
    let a = h.send("POST", "/api/v1/gc", root, Some((json_ct, br#"{"dry_run": true}"#.to_vec())));
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = h.send("DELETE", "/api/v1/apps/shop", stager, Some((json_ct, Vec::new())));
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(h.get("/api/v1/apps/shop", stager).status, 404, "unpinned by the JSON request");
    // Reads need nothing more.
    assert_eq!(h.get("/api/v1/apps", stager).status, 200);
}

/// Who the role matrix asks as.
#[derive(Debug, Clone, Copy)]
enum Caller {
    Anonymous,
    Reader,
    Stager,
    Admin,
}

impl Caller {
    fn basic(self) -> Cred<'static> {
        match self {
            Caller::Anonymous => Cred::None,
            Caller::Reader => Cred::Basic("reader", pw("reader")),
            Caller::Stager => Cred::Basic("stager", pw("stager")),
            Caller::Admin => Cred::Basic("root", pw("root")),
        }
    }

    /// The status a route that needs `need` answers this caller with when it refuses it,
    /// `None` when it lets it through.
    fn refusal(self, need: Need) -> Option<u16> {
        match (self, need) {
            (Caller::Anonymous, _) => Some(401),
            (Caller::Reader, _) | (Caller::Stager, Need::Admin) => Some(403),
            (Caller::Stager, Need::Staging) | (Caller::Admin, _) => None,
        }
    }
}

/// The `RoleNeed` of a route, as `crates/server/src/mgmt/mod.rs` declares it.
#[derive(Debug, Clone, Copy)]
enum Need {
    Staging,
    Admin,
}

/// Every route of the management API's table and `/metrics`, with the role it needs: for
/// each, anonymous, a pull-only user, a stager and an admin get the status their role
/// calls for (401, 403, or the handler's answer), and a bearer token from `/auth/token`
/// gets exactly what the same user's Basic credentials get.
#[test]
fn every_api_route_answers_a_token_as_it_answers_basic() {
    let s = Secured::start(&[]);
    let h = s.https();
    let json_ct = "application/json";
    // Bodies that change nothing: unknown apps, a dry run, an empty live list with no app.
    let routes: &[(&str, &str, Need, Option<&str>)] = &[
        ("POST", "/api/v1/stagings", Need::Staging, Some("{}")),
        ("GET", "/api/v1/apps", Need::Staging, None),
        ("PUT", "/api/v1/apps/live", Need::Staging, Some(r#"{"apps": [], "force": false}"#)),
        ("GET", "/api/v1/apps/none", Need::Staging, None),
        ("DELETE", "/api/v1/apps/none", Need::Staging, Some("")),
        ("POST", "/api/v1/apps/none/credentials", Need::Staging, Some("")),
        ("DELETE", "/api/v1/apps/none/credentials", Need::Staging, Some("")),
        ("POST", "/api/v1/gc", Need::Admin, Some(r#"{"dry_run": true}"#)),
        ("GET", "/api/v1/mirrors", Need::Staging, None),
        ("GET", "/metrics", Need::Admin, None),
    ];
    let callers = [Caller::Anonymous, Caller::Reader, Caller::Stager, Caller::Admin];
    let tokens: Vec<String> = callers.iter().map(|c| h.token(c.basic(), &["repository:team/web:pull"])).collect();
    let mut wrong = Vec::new();
    for (method, path, need, body) in routes {
        for (caller, token) in callers.iter().zip(&tokens) {
            let ask = |cred| h.send(method, path, cred, body.map(|b| (json_ct, b.as_bytes().to_vec()))).status;
            let (basic, bearer) = (ask(caller.basic()), ask(Cred::Bearer(token)));
            let allowed = |status| !matches!(status, 401 | 403);
            let ok = |status| match caller.refusal(*need) {
                Some(want) => status == want,
                None => allowed(status),
            };
            if basic != bearer || !ok(basic) || !ok(bearer) {
                wrong.push(format!("{method} {path} as {caller:?} (needs {need:?}): Basic {basic}, Bearer {bearer}"));
            }
        }
    }
    assert!(wrong.is_empty(), "routes that answer against their role, or a token unlike Basic:\n{}", wrong.join("\n"));
}
