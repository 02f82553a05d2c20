//! Who is calling and whether they may: every `/v2/` request, the management API and
//! `/metrics` pass through here when access control is on. A caller is identified by Basic
//! credentials (a user or a pull credential), a bearer token from `/auth/token`, or nothing
//! (anonymous); what each endpoint needs is decided in [`need`] from the typed endpoint.
//! Denials are logged as audit events with the principal, repository and action.

mod routes;
pub(crate) mod token;

pub(crate) use routes::{RoleNeed, Routes};

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use auth::{Actions, Auth, Principal, Role, Verified};
use base64::Engine as _;
use http::{header, HeaderMap, Method};
use oci::ErrorCode;

use crate::endpoint::Endpoint;
use crate::error::ApiError;
use crate::AppState;

/// The client's address, put on each request by the listener (for the failed-login limit).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// Access control settings of a server.
#[derive(Clone, Default)]
pub struct Access {
    /// `None`: an open registry (loopback without configuration, or `--anonymous`).
    pub auth: Option<Arc<Auth>>,
    /// `scheme://host[:port]` clients reach this registry at; else taken from the request.
    pub public_url: Option<String>,
    /// Whether the listener speaks TLS (the scheme of a realm built from the request).
    pub tls: bool,
}

impl Access {
    /// The registry's address for clients: the public URL, else the request's `Host`.
    pub(crate) fn base_url(&self, headers: &HeaderMap) -> String {
        match &self.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("{}://{}", if self.tls { "https" } else { "http" }, request_host(headers)),
        }
    }

    /// The host (and port) image references name.
    pub(crate) fn registry_host(&self, headers: &HeaderMap) -> String {
        match &self.public_url {
            Some(u) => url_host(u).to_string(),
            None => request_host(headers),
        }
    }
}

/// The `host[:port]` of a URL such as `https://registry.example.com:8443/`.
pub fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// The request's `Host` when it is a plain `host[:port]`, never anything else a client put there.
fn request_host(headers: &HeaderMap) -> String {
    headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_ascii_lowercase)
        .filter(|h| oci::is_registry_host(h))
        .unwrap_or_else(|| "localhost".to_string())
}

/// How a request identified itself.
#[derive(Debug, Clone)]
pub(crate) enum Who {
    /// Access control is off.
    Open,
    Anonymous,
    /// Basic credentials on this request.
    Login(Principal),
    Token(Arc<Verified>),
}

/// The identified caller of one request, with what its rights are checked against.
#[derive(Clone)]
pub(crate) struct Caller {
    auth: Option<Arc<Auth>>,
    pub(crate) who: Who,
}

impl Caller {
    /// A caller of a registry without access control.
    pub(crate) fn open() -> Caller {
        Caller { auth: None, who: Who::Open }
    }

    /// The console viewer `user` (`None` on an open registry), as a caller whose repository
    /// rights are those of the same user on `/v2/`.
    pub(crate) fn console_user(state: &AppState, user: Option<&str>) -> Caller {
        match (&state.access.auth, user) {
            (Some(auth), Some(u)) => Caller { auth: Some(auth.clone()), who: Who::Login(Principal::User(u.to_string())) },
            (Some(auth), None) => Caller { auth: Some(auth.clone()), who: Who::Anonymous },
            (None, _) => Caller::open(),
        }
    }

    /// Whether the caller may read every repository: access control is off, or an admin.
    pub(crate) fn reads_everything(&self) -> bool {
        match (&self.who, &self.auth) {
            (Who::Open, _) | (_, None) => true,
            (Who::Anonymous, _) => false,
            (_, Some(auth)) => auth.policy().role(&self.principal()) == Role::Admin,
        }
    }

    /// The actions the caller may take on `repo`.
    pub(crate) fn actions(&self, repo: &str) -> Actions {
        let Some(auth) = &self.auth else { return Actions::ALL };
        match &self.who {
            Who::Open => Actions::ALL,
            Who::Anonymous => auth.policy().actions(&Principal::Anonymous, repo),
            Who::Login(p) => auth.policy().actions(p, repo),
            Who::Token(v) => v.actions(repo),
        }
    }

    /// Whether the caller holds a token that lacks `actions` on `repo`.
    fn token_lacks(&self, repo: &str, actions: Actions) -> bool {
        matches!(&self.who, Who::Token(v) if !v.actions(repo).contains(actions))
    }

    /// Whether the caller's principal may take `actions` on `repo` by the rules, whatever
    /// its token holds: whether asking for a token with them would get them.
    fn may(&self, repo: &str, actions: Actions) -> bool {
        let Some(auth) = &self.auth else { return true };
        match &self.who {
            Who::Open => true,
            _ => auth.policy().actions(&self.principal(), repo).contains(actions),
        }
    }

    fn catalog(&self) -> bool {
        let Some(auth) = &self.auth else { return true };
        match &self.who {
            Who::Open => true,
            Who::Anonymous => false,
            Who::Login(p) => auth.policy().catalog(p),
            Who::Token(v) => v.catalog(),
        }
    }

    fn principal(&self) -> Principal {
        match &self.who {
            Who::Open | Who::Anonymous => Principal::Anonymous,
            Who::Login(p) => p.clone(),
            Who::Token(v) => v.principal.clone(),
        }
    }
}

/// Identifies the caller from its `Authorization` header. Wrong credentials are an error
/// (never silently anonymous); no header is the anonymous caller.
pub(crate) async fn identify(state: &AppState, headers: &HeaderMap, client: Option<ClientAddr>) -> Result<Caller, auth::AuthError> {
    let Some(auth) = &state.access.auth else { return Ok(Caller::open()) };
    let caller = |who| Caller { auth: Some(auth.clone()), who };
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return Ok(caller(Who::Anonymous));
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        let (user, password) = decode_basic(rest.trim())?;
        let ip = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(caller(Who::Login(auth.login(&user, &password, ip).await?)))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Ok(caller(Who::Token(auth.bearer(rest.trim()).await?)))
    } else {
        Err(auth::AuthError::BadRequest(format!("unsupported authorization scheme {scheme:?} (use Basic or Bearer)")))
    }
}

/// `user:password` from a Basic credential; the password is wiped when dropped.
pub(crate) fn decode_basic(b64: &str) -> Result<(String, zeroize::Zeroizing<String>), auth::AuthError> {
    let bad = || auth::AuthError::BadRequest("malformed Basic credentials".into());
    let raw = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(b64).map_err(|_| bad())?);
    let text = std::str::from_utf8(&raw).map_err(|_| bad())?;
    let (user, password) = text.split_once(':').ok_or_else(bad)?;
    Ok((user.to_string(), zeroize::Zeroizing::new(password.to_string())))
}

/// What a `/v2/` request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Need<'a> {
    /// Any identified caller (the API version check).
    Login,
    Catalog,
    Repo(&'a str, Actions),
    /// A cross-repository mount: push to the first, and pull from the second to mount
    /// rather than upload (the handler falls back to an upload without it).
    Mount(&'a str, &'a str),
}

/// What an endpoint and method need: reads pull, writes push, deletes delete; a mount
/// (`mount_from`: the `from` of a `POST …/blobs/uploads/?mount=…&from=…`) also reads its source.
pub(crate) fn need<'a>(ep: &'a Endpoint, m: &Method, mount_from: Option<&'a str>) -> Need<'a> {
    let read = matches!(*m, Method::GET | Method::HEAD);
    match ep {
        Endpoint::UploadStart(r) if *m == Method::POST && mount_from.is_some_and(|f| f != r.as_str()) => {
            Need::Mount(r.as_str(), mount_from.unwrap_or_default())
        }
        Endpoint::Base => Need::Login,
        Endpoint::Catalog => Need::Catalog,
        Endpoint::Tags(r) | Endpoint::Referrers(r, _) => Need::Repo(r.as_str(), Actions::PULL),
        Endpoint::Blob(r, _) | Endpoint::Manifest(r, _) if read => Need::Repo(r.as_str(), Actions::PULL),
        Endpoint::Blob(r, _) | Endpoint::Manifest(r, _) if *m == Method::DELETE => Need::Repo(r.as_str(), Actions::DELETE),
        Endpoint::Manifest(r, _) | Endpoint::UploadStart(r) | Endpoint::Upload(r, _) => Need::Repo(r.as_str(), Actions::PUSH),
        Endpoint::Blob(..) => Need::Login,
    }
}

/// Lets the request through, or answers 401 with a challenge naming the scope to ask a
/// token for, or 403 to a caller who logged in and may not.
pub(crate) fn check(state: &AppState, caller: &Caller, need: &Need<'_>, headers: &HeaderMap) -> Result<(), ApiError> {
    let allowed = match need {
        _ if matches!(caller.who, Who::Open) => true,
        Need::Login => !matches!(caller.who, Who::Anonymous),
        Need::Catalog => caller.catalog(),
        Need::Repo(repo, actions) => caller.actions(repo).contains(*actions),
        // A token that may push but was not issued the source's pull, for a principal who
        // may pull it, is sent for a token that names both; everyone else who may push goes
        // on (and mounts, or uploads when the source is not theirs to read).
        Need::Mount(repo, from) => {
            caller.actions(repo).contains(Actions::PUSH) && !(caller.token_lacks(from, Actions::PULL) && caller.may(from, Actions::PULL))
        }
    };
    if allowed {
        return Ok(());
    }
    let (scope, what) = match need {
        Need::Login => (None, "use the registry".to_string()),
        Need::Catalog => (Some("registry:catalog:*".to_string()), "list the catalog".to_string()),
        // Clients ask for pull with push: a push reads blobs too.
        Need::Repo(repo, a) if *a == Actions::PUSH => {
            (Some(auth::challenge_scope(repo, Actions::PULL | Actions::PUSH)), format!("push to {repo}"))
        }
        Need::Repo(repo, a) => (Some(auth::challenge_scope(repo, *a)), format!("{a} {repo}")),
        // Every scope the request needs, space-separated as the token spec writes several,
        // so a token client mounts on its first try.
        Need::Mount(repo, from) => (
            Some(format!("{} {}", auth::challenge_scope(repo, Actions::PULL | Actions::PUSH), auth::challenge_scope(from, Actions::PULL))),
            format!("mount from {from} into {repo}"),
        ),
    };
    let principal = caller.principal();
    if !matches!(need, Need::Login) {
        tracing::info!(target: "wharfage::audit", event = "denied", principal = %principal, need = %what, "request denied");
    }
    match &caller.who {
        Who::Login(_) => Err(ApiError::new(ErrorCode::Denied, format!("{principal} may not {what}"))),
        who => {
            let (message, error) = match who {
                Who::Token(_) => (format!("the token does not allow to {what}"), Some("insufficient_scope")),
                _ => ("authentication required".to_string(), None),
            };
            Err(ApiError::new(ErrorCode::Unauthorized, message)
                .with_header(header::WWW_AUTHENTICATE, &challenge(state, headers, scope.as_deref(), error)))
        }
    }
}

/// `Bearer realm="…/auth/token",service="…"[,scope="…"][,error="…"]`.
pub(crate) fn challenge(state: &AppState, headers: &HeaderMap, scope: Option<&str>, error: Option<&str>) -> String {
    let service = state.access.auth.as_ref().map_or("wharfage", |a| a.service());
    let mut c = format!("Bearer realm=\"{}/auth/token\",service=\"{service}\"", state.access.base_url(headers));
    if let Some(s) = scope {
        c.push_str(&format!(",scope=\"{s}\""));
    }
    if let Some(e) = error {
        c.push_str(&format!(",error=\"{e}\""));
    }
    c
}

/// An identification failure on `/v2/` as an answer: 401 with a challenge, or 429.
pub(crate) fn identify_error(state: &AppState, headers: &HeaderMap, e: auth::AuthError) -> ApiError {
    let invalid_token = matches!(e, auth::AuthError::InvalidToken(_));
    let err = ApiError::from(e);
    if err.code == ErrorCode::Unauthorized {
        let error = invalid_token.then_some("invalid_token");
        return err.with_header(header::WWW_AUTHENTICATE, &challenge(state, headers, None, error));
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_needs_push_here_and_pull_at_its_source() {
        let ep = Endpoint::parse("/v2/team/web/blobs/uploads/").unwrap();
        assert_eq!(need(&ep, &Method::POST, Some("team/base")), Need::Mount("team/web", "team/base"));
        // Mounting from the repository itself needs nothing more than a push.
        assert_eq!(need(&ep, &Method::POST, Some("team/web")), Need::Repo("team/web", Actions::PUSH));
        assert_eq!(need(&ep, &Method::POST, None), Need::Repo("team/web", Actions::PUSH));
    }

    #[test]
    fn endpoints_need_what_they_do() {
        let ep = |p: &str| Endpoint::parse(p).unwrap();
        let d = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        let repo = |a| Need::Repo("team/web", a);
        let cases = [
            ("/v2/", Method::GET, Need::Login),
            ("/v2/_catalog", Method::GET, Need::Catalog),
            ("/v2/team/web/tags/list", Method::GET, repo(Actions::PULL)),
            ("/v2/team/web/manifests/v1", Method::HEAD, repo(Actions::PULL)),
            ("/v2/team/web/manifests/v1", Method::PUT, repo(Actions::PUSH)),
            ("/v2/team/web/manifests/v1", Method::DELETE, repo(Actions::DELETE)),
            (&format!("/v2/team/web/blobs/{d}"), Method::GET, repo(Actions::PULL)),
            (&format!("/v2/team/web/blobs/{d}"), Method::DELETE, repo(Actions::DELETE)),
            ("/v2/team/web/blobs/uploads/", Method::POST, repo(Actions::PUSH)),
            ("/v2/team/web/blobs/uploads/0123456789abcdef0123456789abcdef", Method::PATCH, repo(Actions::PUSH)),
            ("/v2/team/web/blobs/uploads/0123456789abcdef0123456789abcdef", Method::GET, repo(Actions::PUSH)),
            (&format!("/v2/team/web/referrers/{d}"), Method::GET, repo(Actions::PULL)),
        ];
        for (path, m, want) in cases {
            assert_eq!(need(&ep(path), &m, None), want, "{m} {path}");
        }
    }

    #[test]
    fn public_url_names_the_registry() {
        let access = Access { public_url: Some("https://registry.example.com:8443".into()), ..Access::default() };
        let mut h = HeaderMap::new();
        h.insert("host", "forged.example:1".parse().unwrap());
        assert_eq!(access.registry_host(&h), "registry.example.com:8443");
        assert_eq!(access.base_url(&h), "https://registry.example.com:8443");
        let open = Access { tls: true, ..Access::default() };
        assert_eq!(open.base_url(&h), "https://forged.example:1");
        h.insert("host", "bad host/../x".parse().unwrap());
        assert_eq!(open.registry_host(&h), "localhost");
    }
}
