//! Who is looking at the console, and the CSRF check of every form it posts.
//!
//! With access control on, a session is a token signed with the registry's token keys
//! (`auth::Session`: user, random id, random CSRF secret, 8 h expiry), so every replica
//! accepts it without shared session state; it travels in the `wharfage_session` cookie
//! (`HttpOnly; SameSite=Strict; Path=/ui`; over TLS `__Host-wharfage_session`, `Secure`,
//! `Path=/`). Logging out clears the cookie only: a copied cookie stays valid until it
//! expires (no revocation list).
//!
//! Every POST must carry a `csrf` form field equal, in constant time, to the session's
//! secret, or, before login and on an open registry (which has no sessions), to the random
//! value of the `wharfage_csrf` cookie (double submit: a cross-site page can neither read
//! that cookie nor make the browser send it, `SameSite=Strict`). A POST whose `Origin` or
//! `Sec-Fetch-Site` says it comes from another site is refused too ([`same_origin`]). The
//! checks run here, in the middleware every console request passes, so no handler can
//! forget them.

use std::net::{IpAddr, Ipv4Addr};

use askama::Template;
use auth::Role;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use http::{header, HeaderMap, HeaderValue, Method};
use ring::rand::SecureRandom;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::error::UiError;
use super::view::Chrome;
use crate::access::ClientAddr;
use crate::AppState;

/// The cookies' names over plain HTTP; over TLS they carry the `__Host-` prefix ([`name`]).
const SESSION_COOKIE: &str = "wharfage_session";
const CSRF_COOKIE: &str = "wharfage_csrf";
/// Largest console form body: a reference, an app id and credentials fit in far less.
pub(super) const MAX_FORM: usize = 64 << 10;

/// The viewer of one console request, put on the request by [`guard`].
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// `None` on an open registry (and on the login page).
    pub user: Option<String>,
    pub role: Role,
    /// The value forms must echo in their `csrf` field.
    pub csrf: String,
}

impl Viewer {
    /// Whether the viewer may pull `repo` on `/v2/`: the console shows a repository's
    /// names, tags and manifests only to those who could pull them anyway.
    pub(crate) fn may_pull(&self, state: &AppState, repo: &str) -> bool {
        crate::access::Caller::console_user(state, self.user.as_deref()).actions(repo).contains(auth::Actions::PULL)
    }
}

fn random_hex() -> Result<String, UiError> {
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut b).map_err(|_| UiError::internal("no randomness"))?;
    Ok(hex::encode(b))
}

/// A cookie of the request.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A console cookie's name. Over TLS it is `__Host-` prefixed: browsers then only accept it
/// `Secure`, for `Path=/` and without `Domain`, so neither a plain-HTTP page of the same host
/// nor a sibling host can set or overwrite it (cookie tossing, which would defeat the
/// double-submit CSRF check). Without TLS the prefix cannot be used (it needs `Secure`).
fn name(state: &AppState, base: &'static str) -> String {
    if state.access.tls {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

/// A `Set-Cookie` value for the console (`max_age` 0 clears it): `HttpOnly` (no script
/// reads it), `SameSite=Strict` (no other site's page makes the browser send it; the
/// console has no cross-site entry point worth `Lax`), `Secure` and `__Host-` over TLS.
fn set_cookie(state: &AppState, base: &'static str, value: &str, max_age: u64) -> Option<HeaderValue> {
    let (path, secure) = if state.access.tls { ("/", "; Secure") } else { ("/ui", "") };
    let name = name(state, base);
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}")).ok()
}

/// The `csrf` field of a urlencoded form, without decoding (or copying) any other field: the
/// stage form's other fields may be upstream credentials.
fn form_csrf(body: &[u8]) -> Option<&str> {
    body.split(|b| *b == b'&').find_map(|kv| kv.strip_prefix(b"csrf=")).and_then(|v| std::str::from_utf8(v).ok())
}

/// Every console request passes here: identifies the viewer (redirecting to the login page
/// when a session is needed), checks the CSRF field of every POST, keeps stagers out of
/// garbage collection, and sets the CSRF cookie when a form will need it.
pub(super) async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    match identify_and_check(&state, req).await {
        Ok((req, new_csrf)) => {
            let mut resp = next.run(req).await;
            if let Some(v) = new_csrf.and_then(|c| set_cookie(&state, CSRF_COOKIE, &c, 86_400 * 365)) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
            resp
        }
        Err(r) => r,
    }
}

async fn identify_and_check(state: &AppState, req: Request) -> Result<(Request, Option<String>), Response> {
    let path = req.uri().path().to_string();
    let csrf_cookie = name(state, CSRF_COOKIE);
    let pre_session = cookie(req.headers(), &csrf_cookie).filter(|c| c.len() == 32 && c.bytes().all(|b| b.is_ascii_hexdigit()));
    let (pre_session, new_csrf) = match pre_session {
        Some(c) => (c.to_string(), None),
        None => {
            let c = random_hex().map_err(IntoResponse::into_response)?;
            (c.clone(), Some(c))
        }
    };
    let viewer = match &state.access.auth {
        None => Viewer { user: None, role: Role::Admin, csrf: pre_session },
        Some(_) if path == "/ui/login" => Viewer { user: None, role: Role::None, csrf: pre_session },
        Some(auth) => {
            let session = match cookie(req.headers(), &name(state, SESSION_COOKIE)) {
                Some(token) => auth.session(token).await.ok(),
                None => None,
            };
            match session {
                Some(s) => Viewer { user: Some(s.user), role: s.role, csrf: s.csrf },
                None if req.method() == Method::GET => {
                    let next = if path == "/ui/" { String::new() } else { format!("?next={}", percent(&path)) };
                    let mut r = Redirect::to(&format!("/ui/login{next}")).into_response();
                    if let Some(v) = new_csrf.and_then(|c| set_cookie(state, CSRF_COOKIE, &c, 86_400 * 365)) {
                        r.headers_mut().append(header::SET_COOKIE, v);
                    }
                    return Err(r);
                }
                None => return Err(UiError::forbidden("log in first: this form needs a console session").into_response()),
            }
        }
    };
    let (mut parts, body) = req.into_parts();
    if parts.method == Method::POST {
        if let Err(why) = same_origin(state, &parts.headers) {
            tracing::info!(target: "wharfage::audit", event = "csrf_refused", path, why, "console form from another origin");
            return Err(UiError::forbidden(format!("this form was sent from {why}, not from this console")).into_response());
        }
    }
    let body = if parts.method == Method::POST {
        let bytes = crate::request::collect(body, MAX_FORM)
            .await
            .map_err(|_| UiError::bad_request("the form could not be read").into_response())?;
        let ok = form_csrf(&bytes).is_some_and(|c| bool::from(c.as_bytes().ct_eq(viewer.csrf.as_bytes())));
        if !ok {
            tracing::info!(target: "wharfage::audit", event = "csrf_refused", path, "console form without a valid CSRF token");
            return Err(UiError::forbidden("this form has no valid CSRF token; reload the page and try again").into_response());
        }
        Body::from(bytes)
    } else {
        body
    };
    parts.extensions.insert(viewer);
    Ok((Request::from_parts(parts, body), new_csrf))
}

/// Whether a console POST comes from the console's own pages, by what browsers say of a
/// request's origin: `Sec-Fetch-Site` (anything but `same-origin`, or `none` for what the
/// user did, is another site's or a sibling host's page) and `Origin` (it must be this
/// console's). Defence in depth beside the CSRF token, and the check that refuses a forged
/// login even if a sibling host tossed a CSRF cookie in. `Origin: null` says nothing: the
/// console's own forms send it, as its `Referrer-Policy: no-referrer` hides their origin,
/// and the browsers that do so send `Sec-Fetch-Site`. Clients that send neither (curl, the
/// tests' raw clients) are judged by the token alone. `Err` names what was seen.
fn same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), String> {
    let text = |h| headers.get(h).map(|v| String::from_utf8_lossy(v.as_bytes()).to_ascii_lowercase());
    if let Some(site) = text("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return Err(format!("a {site} page (Sec-Fetch-Site)"));
        }
    }
    let Some(origin) = text(header::ORIGIN.as_str()).filter(|o| o != "null") else { return Ok(()) };
    let ours = match &state.access.public_url {
        // With a public URL, or over our own TLS, the console's origin is known; a plain
        // listener may sit behind a proxy that terminates TLS, so either scheme of the
        // request's own host is this console.
        Some(_) => vec![state.access.base_url(headers).to_ascii_lowercase()],
        None if state.access.tls => vec![state.access.base_url(headers).to_ascii_lowercase()],
        None => {
            let host = state.access.registry_host(headers).to_ascii_lowercase();
            vec![format!("http://{host}"), format!("https://{host}")]
        }
    };
    if ours.contains(&origin) {
        Ok(())
    } else {
        Err(format!("origin {origin:?}"))
    }
}

/// Percent-encodes a console path for the `next` parameter (paths are ASCII we routed).
fn percent(path: &str) -> String {
    percent_encoding::utf8_percent_encode(path, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Only console paths are followed after login: never another site, nor a path that leaves
/// `/ui/`. `next` must be printable ASCII without spaces or backslashes (browsers read `\`
/// as `/`, and strip tabs and newlines, so `/\evil` or `/<tab>/evil` would be `//evil`:
/// another host), start with `/ui/`, and, however often it is percent-decoded (a proxy or a
/// later hop might decode it again), hold no `//`, `\`, control character or `.`/`..`
/// segment. Anything else is `/ui/`.
fn safe_next(next: Option<&str>) -> &str {
    const HOME: &str = "/ui/";
    let Some(n) = next else { return HOME };
    let plain = |s: &str| s.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if !n.starts_with(HOME) || !plain(n) {
        return HOME;
    }
    let mut form = std::borrow::Cow::Borrowed(n);
    // Each round removes one layer of encoding; a string that still changes after a few
    // is refused rather than decoded forever.
    for _ in 0..4 {
        let path = form.split(['?', '#']).next().unwrap_or("");
        let dot_segment = path.split('/').any(|seg| seg == "." || seg == "..");
        if !form.starts_with(HOME)
            || form.contains("//")
            || form.contains('\\')
            || dot_segment
            || form.bytes().any(|b| b.is_ascii_control())
        {
            return HOME;
        }
        let decoded = percent_encoding::percent_decode_str(&form).decode_utf8_lossy().into_owned();
        if decoded == form {
            return n;
        }
        form = std::borrow::Cow::Owned(decoded);
    }
    HOME
}

#[derive(Template)]
#[template(path = "ui/login.html")]
struct LoginPage {
    chrome: Chrome,
    next: String,
    user: String,
    error: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

/// GET `/ui/login`.
pub(super) async fn login_page(
    State(state): State<AppState>,
    viewer: axum::Extension<Viewer>,
    q: axum::extract::Query<NextQuery>,
) -> Result<Response, UiError> {
    if state.access.auth.is_none() {
        return Ok(Redirect::to("/ui/").into_response());
    }
    let page = LoginPage {
        chrome: Chrome::new(&viewer, "Log in", ""),
        next: safe_next(q.next.as_deref()).into(),
        user: String::new(),
        error: None,
    };
    super::render(&page)
}

#[derive(Deserialize)]
struct LoginForm {
    user: String,
    password: zeroize::Zeroizing<String>,
    next: Option<String>,
}

/// POST `/ui/login`: the same password check and failed-login limit as `/v2/`; only admins
/// and stagers get a session.
pub(super) async fn login(
    State(state): State<AppState>,
    viewer: axum::Extension<Viewer>,
    client: Option<axum::Extension<ClientAddr>>,
    body: Bytes,
) -> Result<Response, UiError> {
    let Some(auth) = state.access.auth.clone() else { return Ok(Redirect::to("/ui/").into_response()) };
    let form: LoginForm = crate::service::read_and_wipe(body, |b| serde_urlencoded::from_bytes(b))
        .map_err(|e| UiError::bad_request(format!("invalid login form: {e}")))?;
    let ip = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0 .0.ip());
    let next = safe_next(form.next.as_deref()).to_string();
    let refused = |message: String, status| {
        let page =
            LoginPage { chrome: Chrome::new(&viewer, "Log in", ""), next: next.clone(), user: form.user.clone(), error: Some(message) };
        super::render(&page).map(|mut r| {
            *r.status_mut() = status;
            r
        })
    };
    let opened = match auth.login(&form.user, &form.password, ip).await {
        Ok(auth::Principal::User(_)) => auth.open_session(&form.user),
        Ok(_) => Err(auth::AuthError::BadCredentials),
        Err(e) => Err(e),
    };
    match opened {
        Ok((token, _)) => {
            let mut r = Redirect::to(&next).into_response();
            if let Some(v) = set_cookie(&state, SESSION_COOKIE, &token, auth::SESSION_TTL.as_secs()) {
                r.headers_mut().append(header::SET_COOKIE, v);
            }
            Ok(r)
        }
        Err(auth::AuthError::BadCredentials) => {
            refused("Wrong user name or password, or this user may not use the console.".into(), http::StatusCode::UNAUTHORIZED)
        }
        Err(e @ auth::AuthError::Throttled { .. }) => refused(e.to_string(), http::StatusCode::TOO_MANY_REQUESTS),
        Err(e) => Err(UiError::from(crate::error::MgmtError::from(e))),
    }
}

/// POST `/ui/logout`: clears the session cookie.
pub(super) async fn logout(State(state): State<AppState>) -> Response {
    let mut r = Redirect::to("/ui/login").into_response();
    if let Some(v) = set_cookie(&state, SESSION_COOKIE, "", 0) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_field_is_found_without_reading_the_others() {
        assert_eq!(form_csrf(b"source=a&csrf=0123&password=x"), Some("0123"));
        assert_eq!(form_csrf(b"xcsrf=1&a=b"), None);
        assert_eq!(form_csrf(b""), None);
    }

    #[test]
    fn login_only_returns_to_console_pages() {
        assert_eq!(safe_next(Some("/ui/apps?q=a")), "/ui/apps?q=a");
        assert_eq!(safe_next(Some("https://evil.example/")), "/ui/");
        assert_eq!(safe_next(Some("//evil.example/ui/")), "/ui/");
        assert_eq!(safe_next(None), "/ui/");
        assert_eq!(safe_next(Some("/ui/apps/a%20b")), "/ui/apps/a%20b", "an encoded space in a name is fine");
        for bad in ["/ui/../x", "/ui/./x", "/ui/%2e%2e/x", "/ui/%252e%252e/x", "/ui/%2f/evil", "/ui/%5cevil", "/ui/%0d%0ax", "/ui/a b"] {
            assert_eq!(safe_next(Some(bad)), "/ui/", "{bad}");
        }
    }
}
