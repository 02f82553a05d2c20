//! The token service of the `auth: token` upstream: it signs the JWTs the registry verifies.

use base64::Engine as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

/// A token request as the issuer saw it.
#[derive(Debug, Clone)]
pub(in crate::staging) struct TokenRequest {
    /// The query parameters, or the form fields of a POST.
    pub query: Vec<(String, String)>,
    /// The user of a valid Basic authorization, if one was sent.
    pub user: Option<String>,
    pub status: u16,
}

/// A minimal Docker token service (docs/spec/auth/token.md and oauth.md of distribution): GET
/// `/token?service=…&scope=…` with optional Basic credentials, or POST `/token` with an
/// identity token in the OAuth2 refresh-token grant, answers a JWT signed with ES256
/// by the key of a self-signed certificate, which the registry trusts as its
/// `rootcertbundle`; the certificate rides in the `x5c` header. Valid credentials get the
/// actions they asked for; no credentials get a token granting nothing (as Docker Hub gives
/// for private repositories); wrong credentials get 401.
pub(in crate::staging) struct TokenIssuer {
    pub port: u16,
    pub(super) root_pem: PathBuf,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    state: Arc<IssuerState>,
}

impl TokenIssuer {
    pub(super) fn start(dir: &Path) -> TokenIssuer {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "wharfage e2e token issuer");
        let cert = params.self_signed(&key).unwrap();
        let root_pem = dir.join("token-root.pem");
        std::fs::write(&root_pem, cert.pem()).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let signer =
            ring::signature::EcdsaKeyPair::from_pkcs8(&ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &rng)
                .unwrap();
        let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state =
            Arc::new(IssuerState { jwt_lifetime: 300.into(), anonymous_pull: false.into(), signer, rng, x5c, requests: requests.clone() });
        let state_handle = state.clone();
        // The thread lives as long as the test process; the listener is tiny and idle after.
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let state = state.clone();
                std::thread::spawn(move || state.serve(conn));
            }
        });
        TokenIssuer { port, root_pem, requests, state: state_handle }
    }

    /// Makes the JWTs issued from now on expire `secs` after issue (negative: before), while
    /// the answer still says `expires_in: 300`: the registry then refuses tokens long before
    /// their holder expects, as with clocks out of step.
    pub(in crate::staging) fn set_jwt_lifetime(&self, secs: i64) {
        self.state.jwt_lifetime.store(secs, std::sync::atomic::Ordering::SeqCst);
    }

    /// Lets anonymous users pull every repository, as a registry's public ones.
    pub(in crate::staging) fn allow_anonymous_pull(&self, allowed: bool) {
        self.state.anonymous_pull.store(allowed, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every token request so far.
    pub(in crate::staging) fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

struct IssuerState {
    /// Seconds from issue to the JWT's `exp` claim (the answer always says 300).
    jwt_lifetime: std::sync::atomic::AtomicI64,
    /// Whether anonymous users may pull (every repository is then public).
    anonymous_pull: std::sync::atomic::AtomicBool,
    signer: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
    x5c: String,
    requests: Arc<Mutex<Vec<TokenRequest>>>,
}

impl IssuerState {
    fn serve(&self, mut conn: TcpStream) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        // One request per connection: answers carry `Connection: close`.
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).is_err() {
            return;
        }
        let mut authorization = None;
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                match k.trim().to_ascii_lowercase().as_str() {
                    "authorization" => authorization = Some(v.trim().to_string()),
                    "content-length" => content_length = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0u8; content_length];
        let _ = reader.read_exact(&mut body);
        let target = request_line.split_whitespace().nth(1).unwrap_or("");
        let pairs = |q: &str| -> Vec<(String, String)> {
            q.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (unescape(k), unescape(v))).collect()
        };
        let form = request_line.starts_with("POST /token");
        // GET: the parameters in the query, Basic credentials. POST: the OAuth2 form of an
        // identity token (grant_type=refresh_token), as docker sends after `docker login`.
        let query =
            if form { pairs(&String::from_utf8_lossy(&body)) } else { target.split_once('?').map(|(_, q)| pairs(q)).unwrap_or_default() };
        let field = |k: &str| query.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        let user = if form {
            match (field("grant_type"), field("refresh_token")) {
                (Some("refresh_token"), Some(IDENTITY_TOKEN)) => Ok(Some(USER.to_string())),
                _ => Err(()),
            }
        } else {
            match authorization.as_deref().and_then(|a| a.strip_prefix("Basic ")) {
                None => Ok(None),
                Some(b64) => {
                    let decoded = base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap_or_default();
                    match String::from_utf8_lossy(&decoded).split_once(':') {
                        Some((u, p)) if u == USER && p == PASSWORD => Ok(Some(u.to_string())),
                        _ => Err(()),
                    }
                }
            }
        };
        let (status, body) = match (&user, form || request_line.starts_with("GET /token")) {
            (_, false) => (404, r#"{"details":"not found"}"#.to_string()),
            (Err(()), true) => (401, r#"{"details":"incorrect username, password or token"}"#.to_string()),
            (Ok(user), true) => {
                let anonymous_pull = self.anonymous_pull.load(std::sync::atomic::Ordering::SeqCst);
                let access: Vec<serde_json::Value> = match user {
                    None if !anonymous_pull => Vec::new(),
                    // A public repository (as on Docker Hub): anonymous users may pull.
                    None => query
                        .iter()
                        .filter(|(k, _)| k == "scope")
                        .flat_map(|(_, scopes)| scopes.split(' ').map(str::to_string).collect::<Vec<_>>())
                        .filter_map(|scope| {
                            let mut parts = scope.splitn(3, ':');
                            let (kind, name) = (parts.next()?, parts.next()?);
                            Some(serde_json::json!({ "type": kind, "name": name, "actions": ["pull"] }))
                        })
                        .collect(),
                    Some(_) => query
                        .iter()
                        .filter(|(k, _)| k == "scope")
                        .flat_map(|(_, scopes)| scopes.split(' ').map(str::to_string).collect::<Vec<_>>())
                        .filter_map(|scope| {
                            let mut parts = scope.splitn(3, ':');
                            let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                            Some(serde_json::json!({ "type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>() }))
                        })
                        .collect(),
                };
                let token = self.jwt(user.as_deref().unwrap_or(""), access);
                // The OAuth2 answer names it access_token only.
                let answer = if form {
                    serde_json::json!({ "access_token": token, "expires_in": 300, "scope": field("scope") })
                } else {
                    serde_json::json!({ "token": token, "access_token": token, "expires_in": 300 })
                };
                (200, answer.to_string())
            }
        };
        self.requests.lock().unwrap().push(TokenRequest { query, user: user.ok().flatten(), status });
        let reason = if status == 200 {
            "OK"
        } else if status == 401 {
            "Unauthorized"
        } else {
            "Not Found"
        };
        let _ = write!(
            conn,
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }

    /// A JWT per the token spec (docs/spec/auth/jwt.md), signed ES256 (r || s).
    fn jwt(&self, subject: &str, access: Vec<serde_json::Value>) -> String {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let header = serde_json::json!({ "typ": "JWT", "alg": "ES256", "x5c": [self.x5c] });
        let claims = serde_json::json!({
            "iss": TOKEN_ISSUER,
            "sub": subject,
            "aud": TOKEN_SERVICE,
            "exp": now as i64 + self.jwt_lifetime.load(std::sync::atomic::Ordering::SeqCst),
            "nbf": now - 10,
            "iat": now,
            "jti": format!("{now}-{}", testkit::unique("jti")),
            "access": access,
        });
        let signing_input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let sig = self.signer.sign(&self.rng, signing_input.as_bytes()).unwrap();
        format!("{signing_input}.{}", b64(sig.as_ref()))
    }
}

/// Percent-decoding of a query component (`+` is a space).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
