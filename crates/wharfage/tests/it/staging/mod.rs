//! The staging cache end to end, against real upstreams: Debian's `docker-registry`
//! anonymous, with htpasswd basic auth, with `auth: token` and a token issuer of ours whose
//! JWTs the registry verifies, and over TLS with a private CA. Images are pushed into the
//! upstream with skopeo; wharfage (the built binary) stages them through
//! `POST /api/v1/stagings` or `wharfage stage`; scale-ups pull the pinned digest back with
//! skopeo, byte for byte, with the upstream stopped. Downloads are counted from the upstream's
//! own request log. `cf.rs` runs `deploy/cf/cf-push-pinned` against a stand-in `cf`.

mod auth;
mod cf;
mod cli;
mod connect;
mod failures;
pub(crate) mod images;
mod interrupted;
mod progress;
pub(crate) mod proxy;
mod public;
mod ranged;
mod referrers;
pub(crate) mod upstream;

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use server::mgmt::types::{AppDetail, AppList, StagingView};

use crate::client::{ErrorBodyExt, Http, Resp};
use crate::fixtures::{read_blobs, Layout};
use crate::harness::{self, Server};
use crate::skopeo::{oci_ref, Skopeo};

/// A `wharfage serve` over a temporary root, with an HTTP client to it.
pub(crate) struct Wharf {
    pub server: Server,
    pub http: Http,
    pub root: PathBuf,
    dir: tempfile::TempDir,
}

impl Wharf {
    /// Starts `wharfage serve` on a free port with `args` added (e.g. `--insecure-registry`).
    pub(crate) fn start(args: &[String]) -> Wharf {
        let dir = harness::tempdir();
        let root = dir.path().join("root");
        let mut cmd = harness::wharfage(dir.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--root"]).arg(&root).args(["--log-format", "json"]).args(args);
        let server = Server::spawn(cmd);
        let http = Http::new(server.addr);
        Wharf { server, http, root, dir }
    }

    /// Stops the server gracefully and starts it again on the same root with `args`, as an
    /// operator's restart or upgrade does.
    pub(crate) fn restart(self, args: &[String]) -> Wharf {
        let Wharf { server, root, dir, .. } = self;
        server.stop();
        let mut cmd = harness::wharfage(dir.path());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--root"]).arg(&root).args(["--log-format", "json"]).args(args);
        let server = Server::spawn(cmd);
        let http = Http::new(server.addr);
        Wharf { server, http, root, dir }
    }

    /// Starts wharfage allowing plain HTTP to each of `hosts`.
    pub(crate) fn for_hosts(hosts: &[String]) -> Wharf {
        Wharf::start(&insecure(hosts))
    }

    /// `127.0.0.1:PORT`
    pub(crate) fn host(&self) -> String {
        self.server.host()
    }

    /// A scratch directory of this test.
    pub(crate) fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `POST /api/v1/stagings` with `{"source", "app"}` plus the fields of `extra`.
    pub(crate) fn stage(&self, source: &str, app: &str, extra: Value) -> Resp {
        self.stage_with(source, app, extra, &[])
    }

    /// The same, with extra request headers.
    pub(crate) fn stage_with(&self, source: &str, app: &str, extra: Value, headers: &[(&str, &str)]) -> Resp {
        let mut body = json!({ "source": source, "app": app });
        if let Value::Object(m) = extra {
            for (k, v) in m {
                body[k] = v;
            }
        }
        let mut h = vec![("content-type", "application/json")];
        h.extend_from_slice(headers);
        self.http.send("POST", "/api/v1/stagings", &h, serde_json::to_vec(&body).unwrap())
    }

    /// Stages and expects 201; the staging, read into the API's own type.
    #[track_caller]
    pub(crate) fn stage_ok(&self, source: &str, app: &str, extra: Value) -> StagingView {
        let r = self.stage(source, app, extra).expect(201, &format!("staging {source} for {app}"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        r.json()
    }

    /// `GET /api/v1/apps/{app}`, read into the API's own type: a renamed or missing field
    /// fails here, as it would in the CLI.
    #[track_caller]
    pub(crate) fn app_detail(&self, app: &str) -> AppDetail {
        self.app(app).expect(200, &format!("GET app {app}")).json()
    }

    /// `GET /api/v1/apps`, expecting 200.
    #[track_caller]
    pub(crate) fn apps(&self) -> AppList {
        self.http.get("/api/v1/apps").expect(200, "GET the apps").json()
    }

    /// `GET /api/v1/apps/{app}`
    pub(crate) fn app(&self, app: &str) -> Resp {
        self.http.get(&format!("/api/v1/apps/{app}"))
    }

    /// Pulls `image` (`host/apps/x@sha256:…`) with skopeo into a fresh OCI layout, every
    /// platform; its blobs, each checked against its name.
    #[track_caller]
    pub(crate) fn pull(&self, skopeo: &Skopeo, image: &str, name: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
        let dir = self.scratch(name);
        skopeo.copy_all(&format!("docker://{image}"), &oci_ref(&dir, "pulled"));
        read_blobs(&dir)
    }

    /// Pulls `image` as a client of linux/`arch` does (from an index, that platform's image
    /// only); its blobs, each checked against its name.
    #[track_caller]
    pub(crate) fn pull_platform(
        &self,
        skopeo: &Skopeo,
        image: &str,
        arch: &str,
        name: &str,
    ) -> std::collections::BTreeMap<String, Vec<u8>> {
        let dir = self.scratch(name);
        skopeo.copy_platform(&format!("docker://{image}"), &oci_ref(&dir, "pulled"), arch);
        read_blobs(&dir)
    }
}

/// `--insecure-registry HOST` for each host.
pub(crate) fn insecure(hosts: &[String]) -> Vec<String> {
    hosts.iter().flat_map(|h| ["--insecure-registry".to_string(), h.clone()]).collect()
}

/// The message of an error body, asserting its (first) code.
#[track_caller]
pub(crate) fn error_message(r: &Resp, code: &str) -> String {
    let first = r.error();
    assert_eq!(first.code, code, "error code; body: {}", r.text());
    first.message
}

/// A fresh OCI layout under `dir`.
pub(crate) fn layout(dir: &Path) -> Layout {
    Layout::create(dir)
}
