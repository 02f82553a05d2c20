//! `/auth/token`, the token endpoint of the Docker token protocol: `GET` with optional Basic
//! credentials (docker, podman, skopeo), and `POST` with the OAuth2 password and
//! refresh-token grants (containerd; docker with a stored identity token). The token's
//! `access` is what was asked intersected with what the caller may do; scopes it may not
//! have are left out, not refused.

use std::net::{IpAddr, Ipv4Addr};

use auth::{Grant, Principal};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http::{header, Method, StatusCode};
use oci::ErrorCode;
use zeroize::Zeroizing;

use super::{decode_basic, ClientAddr};
use crate::error::{json_response, ApiError};
use crate::AppState;

/// The token endpoint's route.
pub(crate) fn routes() -> Router<AppState> {
    Router::new().route("/auth/token", get(token).post(token))
}

/// Largest token request body: a few names, a password and a refresh token.
const MAX_FORM: usize = 64 << 10;

/// Decoded `key=value` pairs of a query string or form body; values may hold secrets and
/// are wiped when dropped.
struct Params(Vec<(String, Zeroizing<String>)>);

impl Params {
    fn parse(raw: &str) -> Params {
        let dec = |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        Params(
            raw.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (dec(k), Zeroizing::new(dec(v)))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

async fn token(State(state): State<AppState>, req: Request) -> Response {
    match answer(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn answer(state: &AppState, req: Request) -> Result<Response, ApiError> {
    let Some(auth) = state.access.auth.clone() else {
        return Err(ApiError::new(ErrorCode::Unsupported, "access control is off: no tokens are needed").with_status(StatusCode::NOT_FOUND));
    };
    let client = req.extensions().get::<ClientAddr>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let (parts, body) = req.into_parts();
    if parts.method == Method::GET {
        let q = Params::parse(parts.uri.query().unwrap_or(""));
        let scopes = Grant::parse_all(q.all("scope"));
        let principal = match parts.headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            Some(v) if v.len() > 6 && v[..6].eq_ignore_ascii_case("basic ") => {
                let (user, password) = decode_basic(v[6..].trim())?;
                auth.login(&user, &password, client).await?
            }
            Some(_) => return Err(ApiError::new(ErrorCode::Unauthorized, "the token endpoint takes Basic credentials or none")),
            None => Principal::Anonymous,
        };
        let offline = q.get("offline_token") == Some("true");
        let t = auth.issue(&principal, &scopes, offline)?;
        tracing::debug!(principal = %principal, "token issued");
        return json(&t);
    }
    let body = axum::body::to_bytes(body, MAX_FORM)
        .await
        .map_err(|_| ApiError::new(ErrorCode::Unsupported, format!("a token request is a form of at most {MAX_FORM} bytes")))?;
    // The form may hold a password: parsed into wiping strings, then the buffer is wiped.
    let mut raw = body.try_into_mut().unwrap_or_else(|shared: Bytes| bytes::BytesMut::from(&shared[..]));
    let form = Params::parse(std::str::from_utf8(&raw).unwrap_or(""));
    zeroize::Zeroize::zeroize(raw.as_mut());
    let scopes = Grant::parse_all(form.all("scope"));
    let offline = form.get("access_type") == Some("offline");
    let t = match form.get("grant_type") {
        Some("password") => {
            let (Some(user), Some(password)) = (form.get("username"), form.get("password")) else {
                return Err(ApiError::new(ErrorCode::Unsupported, "grant_type=password needs username and password"));
            };
            let principal = auth.login(user, password, client).await?;
            auth.issue(&principal, &scopes, offline)?
        }
        Some("refresh_token") => {
            let Some(refresh) = form.get("refresh_token") else {
                return Err(ApiError::new(ErrorCode::Unsupported, "grant_type=refresh_token needs refresh_token"));
            };
            auth.refresh(refresh, &scopes).await?
        }
        other => {
            return Err(ApiError::new(
                ErrorCode::Unsupported,
                format!("unsupported grant_type {:?} (use password or refresh_token)", other.unwrap_or("")),
            ))
        }
    };
    json(&t)
}

fn json(t: &auth::TokenAnswer) -> Result<Response, ApiError> {
    let v = serde_json::to_value(t).map_err(|e| {
        ApiError::new(ErrorCode::Unavailable, format!("cannot encode the token: {e}")).with_status(StatusCode::INTERNAL_SERVER_ERROR)
    })?;
    let mut r = json_response(StatusCode::OK, &v);
    // Tokens are credentials: never cached by a proxy.
    r.headers_mut().insert(header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
    Ok(r)
}
