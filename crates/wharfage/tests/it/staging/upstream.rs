//! The real upstream registry of the staging tests: Debian's `docker-registry` (CNCF
//! distribution 2.8) on a free loopback port, over a temporary config and storage directory,
//! in one of four modes: anonymous, htpasswd basic auth, `auth: token` with the
//! [`TokenIssuer`] below (the registry verifies our JWTs itself), or TLS with a certificate of
//! a private CA. Its JSON log records every request, which is how the tests count the blob
//! GETs wharfage makes.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testkit::ChildGuard;

use crate::fixtures::Layout;
use crate::skopeo::{oci_ref, Skopeo};

mod token_issuer;
pub(super) use token_issuer::TokenIssuer;

const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// The one account of the authenticated upstreams.
pub(crate) const USER: &str = "stager";
/// Its password: distinctive enough that finding it anywhere is a leak, not a coincidence.
pub(crate) const PASSWORD: &str = "Pw-9f3c1e7a-wharfage-staging-secret";

/// An identity (refresh) token the token issuer accepts for [`USER`], as `docker login`
/// stores for registries with an OAuth2 token endpoint.
pub(super) const IDENTITY_TOKEN: &str = "idt-6b2d94e0-wharfage-identity-token";

/// `service` and `issuer` of the token mode.
const TOKEN_SERVICE: &str = "wharfage-e2e-upstream";
const TOKEN_ISSUER: &str = "wharfage-e2e-token-issuer";

/// How the upstream authenticates (and whether it speaks TLS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Anonymous,
    /// `auth: htpasswd`, answering `WWW-Authenticate: Basic`.
    Basic,
    /// `auth: token`: a `Bearer` challenge naming our [`TokenIssuer`].
    Token,
    /// Anonymous over HTTPS with a certificate signed by a private CA (see [`Upstream::ca_pem`]).
    Tls,
    /// htpasswd basic auth over HTTPS: a private registry as users have them.
    PrivateTls,
}

/// One request as the registry logged it.
#[derive(Debug, Clone)]
pub(super) struct Logged {
    pub method: String,
    pub uri: String,
    pub status: u16,
    pub user_agent: String,
    /// Body bytes the registry sent.
    pub written: u64,
}

impl Logged {
    /// A staging's proof that the upstream holds a blob the store has: a range answer of at
    /// most 32 bytes, not a download.
    pub(super) fn is_probe(&self) -> bool {
        self.method == "GET" && self.status == 206 && self.written <= 32
    }
}

/// A running `docker-registry`; killed when dropped.
pub(crate) struct Upstream {
    pub mode: Mode,
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<ChildGuard>,
    issuer: Option<TokenIssuer>,
}

impl Upstream {
    /// Starts a registry in `mode` and waits until it answers.
    pub(crate) fn start(mode: Mode) -> Upstream {
        Upstream::start_with(mode, "")
    }

    /// The same, with top-level `config.yml` sections added (e.g. `compatibility:`).
    pub(crate) fn start_with(mode: Mode, extra_config: &str) -> Upstream {
        let tls = matches!(mode, Mode::Tls | Mode::PrivateTls).then(tls_files);
        Upstream::launch(mode, extra_config, tls)
    }

    /// An anonymous TLS upstream serving `cert` with `key` (PEM); `ca.pem` is the certificate
    /// itself (a self-signed one is its own anchor).
    pub(crate) fn start_tls_with(cert: &str, key: &str) -> Upstream {
        Upstream::launch(Mode::Tls, "", Some((cert.to_string(), cert.to_string(), key.to_string())))
    }

    fn launch(mode: Mode, extra_config: &str, tls: Option<(String, String, String)>) -> Upstream {
        let dir = tempfile::Builder::new().prefix("wharfage-e2e-upstream-").tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("storage")).unwrap();
        let issuer = (mode == Mode::Token).then(|| TokenIssuer::start(d));
        let auth = match mode {
            Mode::Anonymous | Mode::Tls => String::new(),
            Mode::Basic | Mode::PrivateTls => {
                // distribution 2.8 reads bcrypt only; cost 4 keeps every request fast.
                let hash = bcrypt::hash_with_result(PASSWORD, 4).unwrap().format_for_version(bcrypt::Version::TwoY);
                std::fs::write(d.join("htpasswd"), format!("{USER}:{hash}\n")).unwrap();
                format!("auth:\n  htpasswd:\n    realm: wharfage-e2e\n    path: {}\n", d.join("htpasswd").display())
            }
            Mode::Token => {
                let issuer = issuer.as_ref().unwrap();
                format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
                    issuer.port,
                    issuer.root_pem.display()
                )
            }
        };
        let tls = if let Some((ca, cert, key)) = tls {
            std::fs::write(d.join("ca.pem"), ca).unwrap();
            std::fs::write(d.join("tls.crt"), cert).unwrap();
            std::fs::write(d.join("tls.key"), key).unwrap();
            format!("  tls:\n    certificate: {}\n    key: {}\n", d.join("tls.crt").display(), d.join("tls.key").display())
        } else {
            String::new()
        };
        let mut last = String::new();
        for _ in 0..3 {
            let port = testkit::free_port();
            let config = format!(
                "version: 0.1\nlog:\n  level: info\n  formatter: json\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  redirect:\n    disable: true\n{auth}http:\n  addr: 127.0.0.1:{port}\n  secret: wharfage-e2e-upstream-secret\n{tls}{extra_config}",
                d.join("storage").display()
            );
            std::fs::write(d.join("config.yml"), config).unwrap();
            let log = File::create(d.join("registry.log")).unwrap();
            let mut cmd = Command::new(DOCKER_REGISTRY);
            cmd.arg("serve").arg(d.join("config.yml")).stdout(log.try_clone().unwrap()).stderr(Stdio::from(log));
            for v in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                cmd.env_remove(v);
            }
            let mut child = testkit::spawn(cmd).unwrap_or_else(|e| {
                panic!("cannot run {DOCKER_REGISTRY} ({e}): install Debian's docker-registry package (scripts/test.sh does)")
            });
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut up = false;
            while Instant::now() < deadline && child.is_running() {
                if testkit::http_status(port, "GET", "/v2/").is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if up {
                return Upstream { mode, port, dir, child: Some(child), issuer };
            }
            last = std::fs::read_to_string(d.join("registry.log")).unwrap_or_default();
        }
        panic!("docker-registry did not start; its log:\n{last}");
    }

    /// `127.0.0.1:PORT`, as written in image references.
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The private CA that signed a TLS upstream's certificate (PEM).
    pub(crate) fn ca_pem(&self) -> PathBuf {
        assert!(matches!(self.mode, Mode::Tls | Mode::PrivateTls), "only the TLS upstreams have a CA");
        self.dir.path().join("ca.pem")
    }

    /// The token issuer of a token-mode upstream.
    pub(super) fn issuer(&self) -> &TokenIssuer {
        self.issuer.as_ref().expect("only the token upstream has an issuer")
    }

    /// Copies `tag` of an OCI layout into `repo:tag` here with skopeo, every platform,
    /// digests preserved (authenticating as [`USER`] when the upstream wants it).
    #[track_caller]
    pub(crate) fn push(&self, skopeo: &Skopeo, layout: &Layout, tag: &str, repo: &str) {
        let dest = format!("docker://{}/{repo}:{tag}", self.host());
        let creds = format!("{USER}:{PASSWORD}");
        let mut args = vec!["copy", "--all", "--preserve-digests", "--dest-tls-verify=false"];
        if matches!(self.mode, Mode::Basic | Mode::Token | Mode::PrivateTls) {
            args.extend(["--dest-creds", &creds]);
        } else {
            args.push("--dest-no-creds");
        }
        let src = oci_ref(&layout.dir, tag);
        args.extend([src.as_str(), dest.as_str()]);
        skopeo.ok(&args);
    }

    /// The registry's whole log (its JSON log and its access log).
    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Every request the registry logged as completed, in order.
    pub(super) fn requests(&self) -> Vec<Logged> {
        self.log()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["msg"].as_str().is_some_and(|m| m.starts_with("response completed")))
            .map(|v| Logged {
                method: v["http.request.method"].as_str().unwrap_or("").to_string(),
                uri: v["http.request.uri"].as_str().unwrap_or("").to_string(),
                status: v["http.response.status"].as_u64().unwrap_or(0) as u16,
                user_agent: v["http.request.useragent"].as_str().unwrap_or("").to_string(),
                written: v["http.response.written"].as_u64().unwrap_or(0),
            })
            .collect()
    }

    /// The requests wharfage made (by its User-Agent), skopeo's pushes left out.
    pub(super) fn wharfage_requests(&self) -> Vec<Logged> {
        self.requests().into_iter().filter(|r| r.user_agent.starts_with("wharfage/")).collect()
    }

    /// How many successful GETs of blob `digest` wharfage made (any repository), the 32-byte
    /// probes of a stored copy's reuse left out.
    pub(crate) fn blob_gets(&self, digest: &str) -> usize {
        let suffix = format!("/blobs/{digest}");
        self.wharfage_requests()
            .iter()
            .filter(|r| r.method == "GET" && r.uri.ends_with(&suffix) && (200..300).contains(&r.status) && !r.is_probe())
            .count()
    }

    /// Where the registry keeps a blob's bytes.
    pub(super) fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir.path().join(format!("storage/docker/registry/v2/blobs/sha256/{}/{hex}/data", &hex[..2]))
    }

    /// Flips one bit of a stored blob in the middle (the size stays, the digest no longer
    /// matches); call again to restore it.
    pub(super) fn flip_bit(&self, digest: &str) {
        let len = std::fs::metadata(self.blob_data(digest)).unwrap().len() as usize;
        self.flip_bit_at(digest, len / 2);
    }

    /// Flips the lowest bit of byte `offset` of a stored blob.
    pub(super) fn flip_bit_at(&self, digest: &str, offset: usize) {
        self.xor_at(digest, offset, 0x01);
    }

    /// XORs byte `offset` of a stored blob with `mask`.
    pub(super) fn xor_at(&self, digest: &str, offset: usize, mask: u8) {
        let path = self.blob_data(digest);
        let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        bytes[offset] ^= mask;
        std::fs::write(&path, bytes).unwrap();
    }

    /// Freezes the registry (SIGSTOP: connections are accepted by the kernel and never
    /// answered, as with a hung server) or thaws it (SIGCONT).
    pub(super) fn pause(&self, paused: bool) {
        self.child.as_ref().expect("the upstream runs").pause(paused);
    }

    /// Kills the registry (SIGKILL) and checks that its port no longer answers.
    pub(crate) fn stop(&mut self) {
        drop(self.child.take());
        assert!(testkit::http_status(self.port, "GET", "/v2/").is_err(), "the upstream still answers after being killed");
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "---- upstream docker-registry ({:?}, port {}) log tail ----\n{}\n---- end ----",
                self.mode,
                self.port,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }
}

/// A private CA and a certificate it signed for 127.0.0.1 and localhost, as PEM
/// (CA certificate, server certificate, server key).
fn tls_files() -> (String, String, String) {
    let ca = crate::certs::Ca::new("wharfage e2e private CA");
    let (cert, key) = ca.server_cert("wharfage e2e upstream");
    (ca.pem().to_string(), cert, key)
}
