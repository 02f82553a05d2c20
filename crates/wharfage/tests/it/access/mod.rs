//! Access control end to end, with real clients: TLS from a private CA the test makes,
//! htpasswd users with roles and repository rules, the Docker token protocol as skopeo and
//! reqwest speak it, per-app pull credentials that end with their staging, tokens accepted
//! across replicas on one bucket, certificate rotation under an in-flight pull, and no secret
//! in the storage root or in a trace log.

mod credentials;
mod engines;
mod hostile;
mod hostile_tokens;
mod replicas;
mod reuse;
mod rotation;
mod rules;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use server::mgmt::types::{PullCredentials, StagingView};

use crate::certs::Ca;
use crate::harness::Server;
use crate::skopeo::Skopeo;

/// The users of every secured server: name, password.
pub(crate) const USERS: &[(&str, &str)] =
    &[("root", "root-pw-1"), ("ci", "ci-pw-2"), ("reader", "reader-pw-3"), ("stager", "stager-pw-4"), ("late", "late-pw-5")];

/// The password of a user of [`USERS`].
pub(crate) fn pw(user: &str) -> &'static str {
    USERS.iter().find(|(u, _)| *u == user).map(|(_, p)| *p).unwrap()
}

/// Roles and rules: `root` admin, `stager` stager, `ci` pushes `team/*`, `reader` pulls it,
/// anybody without login pulls `open/*`.
const CONFIG: &str = r#"
admins = ["root"]
stagers = ["stager"]

[[access]]
users = ["ci"]
repositories = ["team/*"]
actions = ["pull", "push"]

[[access]]
users = ["reader"]
repositories = ["team/*"]
actions = ["pull"]

[[access]]
users = ["anonymous"]
repositories = ["open/*"]
actions = ["pull"]
"#;

/// Writes the htpasswd file and the TOML config into `dir`; returns the server flags.
pub(crate) fn auth_args(dir: &Path) -> Vec<String> {
    let htpasswd: String = USERS.iter().map(|(u, p)| format!("{u}:{}\n", bcrypt::hash(p, 4).unwrap())).collect();
    std::fs::write(dir.join("htpasswd"), htpasswd).unwrap();
    std::fs::write(dir.join("wharfage.toml"), CONFIG).unwrap();
    vec!["--htpasswd".into(), path(&dir.join("htpasswd")), "--config".into(), path(&dir.join("wharfage.toml"))]
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// A wharfage with TLS and access control on a filesystem root.
pub(crate) struct Secured {
    pub server: Server,
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub root: PathBuf,
}

impl Secured {
    /// Starts the server on a filesystem root with `extra` flags (e.g. `--log trace`).
    pub(crate) fn start(extra: &[&str]) -> Secured {
        Secured::start_with(None, extra, None)
    }

    /// Starts the server with `storage` flags (`None`: a filesystem root in its directory),
    /// `extra` flags, and `upstream_ca` (PEM) trusted for stagings besides the test CA.
    pub(crate) fn start_with(storage: Option<&crate::s3::S3Store<'_>>, extra: &[&str], upstream_ca: Option<&str>) -> Secured {
        let dir = tempfile::Builder::new().prefix("wharfage-e2e-access-").tempdir().unwrap();
        let ca = Ca::new("wharfage access test CA");
        let (cert, key) = ca.server_cert("wharfage under test");
        std::fs::write(dir.path().join("tls.crt"), cert).unwrap();
        std::fs::write(dir.path().join("tls.key"), key).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("upstream-ca.pem"), format!("{}{}", ca.pem(), upstream_ca.unwrap_or(""))).unwrap();
        // skopeo's --cert-dir: every *.crt in it is a CA to trust.
        std::fs::create_dir(dir.path().join("certs.d")).unwrap();
        std::fs::write(dir.path().join("certs.d/ca.crt"), ca.pem()).unwrap();
        let root = dir.path().join("root");
        let mut args = auth_args(dir.path());
        args.extend(["--tls-cert".into(), path(&dir.path().join("tls.crt")), "--tls-key".into(), path(&dir.path().join("tls.key"))]);
        args.extend(["--upstream-ca".into(), path(&dir.path().join("upstream-ca.pem"))]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let server = match storage {
            None => {
                args.extend(["--root".into(), path(&root)]);
                Server::start_with(dir.path(), &args, &[])
            }
            Some(s3) => s3.start(&args.iter().map(String::as_str).collect::<Vec<_>>()),
        };
        Secured { server, dir, ca, root }
    }

    pub(crate) fn url(&self) -> String {
        format!("https://{}", self.server.addr)
    }

    /// skopeo's flag value trusting the test CA.
    pub(crate) fn cert_dir(&self) -> String {
        path(&self.dir.path().join("certs.d"))
    }

    /// An HTTPS client trusting the test CA.
    pub(crate) fn https(&self) -> Https {
        Https::new(self.ca.pem(), &self.url())
    }

    /// Stages `source` as `app` through the management API, as the stager, with `upstream`
    /// credentials (user, password); returns the answer and its pull credentials.
    pub(crate) fn stage(&self, source: &str, app: &str, upstream: (&str, &str)) -> (StagingView, PullCredentials) {
        let body = serde_json::json!({
            "source": source,
            "app": app,
            "credentials": {"username": upstream.0, "password": upstream.1},
        });
        let a = self.https().send(
            "POST",
            "/api/v1/stagings",
            Cred::Basic("stager", pw("stager")),
            Some(("application/json", body.to_string().into_bytes())),
        );
        assert_eq!(a.status, 201, "staging {source} as {app}: {}", String::from_utf8_lossy(&a.body));
        let v: StagingView = serde_json::from_slice(&a.body).unwrap();
        let c = v.pull_credentials.clone().expect("a staging returns pull credentials");
        (v, c)
    }
}

/// How a request authenticates.
#[derive(Clone, Copy)]
pub(crate) enum Cred<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

/// An answer: status, headers, body.
pub(crate) struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The first error code of an error body.
    pub(crate) fn code(&self) -> String {
        self.json()["errors"][0]["code"].as_str().unwrap_or("").to_string()
    }
}

/// A blocking HTTPS client for the cases skopeo cannot express.
pub(crate) struct Https {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

impl Https {
    pub(crate) fn new(ca_pem: &str, base: &str) -> Https {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder();
        for c in reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap() {
            b = b.add_root_certificate(c);
        }
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        Https { rt, client: b.build().unwrap(), base: base.to_string() }
    }

    /// A client that answers redirects rather than following them (the console's logins).
    pub(crate) fn no_redirects(ca_pem: &str, base: &str) -> Https {
        let mut h = Https::new(ca_pem, base);
        let mut b = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        for c in reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap() {
            b = b.add_root_certificate(c);
        }
        h.client = b.build().unwrap();
        h
    }

    /// A request with `body` of its content type; a change without a body (`DELETE`, or a
    /// `POST` of nothing) says `application/json`, as the management API requires of them.
    pub(crate) fn send(&self, method: &str, path: &str, cred: Cred<'_>, body: Option<(&str, Vec<u8>)>) -> Answer {
        match body {
            Some((content_type, bytes)) => self.send_raw(method, path, cred, &[("content-type", content_type)], bytes),
            None if matches!(method, "GET" | "HEAD") => self.send_raw(method, path, cred, &[], Vec::new()),
            None => self.send_raw(method, path, cred, &[("content-type", "application/json")], Vec::new()),
        }
    }

    /// A request with exactly these `headers` besides the credentials.
    pub(crate) fn send_raw(&self, method: &str, path: &str, cred: Cred<'_>, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        req = match cred {
            Cred::None => req,
            Cred::Basic(u, p) => req.basic_auth(u, Some(p)),
            Cred::Bearer(t) => req.bearer_auth(t),
        };
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if !body.is_empty() {
            req = req.body(body);
        }
        self.rt.block_on(async {
            let resp = req.send().await.unwrap_or_else(|e| panic!("request to {path}: {e}"));
            let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
            Answer { status, headers, body: resp.bytes().await.unwrap().to_vec() }
        })
    }

    pub(crate) fn get(&self, path: &str, cred: Cred<'_>) -> Answer {
        self.send("GET", path, cred, None)
    }

    /// A token from `/auth/token` for `scopes`, as docker and skopeo ask for one.
    pub(crate) fn token(&self, cred: Cred<'_>, scopes: &[&str]) -> String {
        let q: String = scopes.iter().map(|s| format!("&scope={s}")).collect();
        let a = self.get(&format!("/auth/token?service=wharfage{q}"), cred);
        assert_eq!(a.status, 200, "token: {}", String::from_utf8_lossy(&a.body));
        a.json()["token"].as_str().unwrap().to_string()
    }
}

/// The claims of a JWT (unverified: what the server put in it).
pub(crate) fn claims(token: &str) -> serde_json::Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// `docker://HOST/REPO` for skopeo.
pub(crate) fn docker_ref(s: &Secured, repo: &str) -> String {
    format!("docker://{}/{repo}", s.server.host())
}

/// skopeo copy into wharfage with `creds` (`user:password`, or none); returns success and
/// stderr.
pub(crate) fn push(skopeo: &Skopeo, s: &Secured, src: &str, repo: &str, creds: Option<&str>) -> (bool, String) {
    let dest = docker_ref(s, repo);
    let cert_dir = s.cert_dir();
    let mut args = vec!["copy", "--dest-cert-dir", &cert_dir];
    if let Some(c) = creds {
        args.extend(["--dest-creds", c]);
    }
    args.extend([src, dest.as_str()]);
    let out = skopeo.run(&args);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// skopeo inspect of an image in wharfage with `creds`; returns success and stderr.
pub(crate) fn inspect(skopeo: &Skopeo, s: &Secured, image: &str, creds: Option<&str>) -> (bool, String) {
    let target = docker_ref(s, image);
    let cert_dir = s.cert_dir();
    let mut args = vec!["inspect", "--raw", "--cert-dir", &cert_dir];
    if let Some(c) = creds {
        args.extend(["--creds", c]);
    }
    args.push(&target);
    let out = skopeo.run(&args);
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}
