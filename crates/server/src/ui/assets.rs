//! The console's stylesheet and script, compiled into the binary and served with a year's
//! cache: their URLs carry a hash of their content, so a new build is fetched anew.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};

const CSS: &str = include_str!("../../assets/ui.css");
const JS: &str = include_str!("../../assets/ui.js");

static VERSION: LazyLock<String> = LazyLock::new(|| {
    let d = ring::digest::digest(&ring::digest::SHA256, format!("{CSS}{JS}").as_bytes());
    hex::encode(&d.as_ref()[..6])
});

/// The content hash that asset URLs carry (`/ui/static/ui.css?v=…`).
pub(crate) fn version() -> &'static str {
    VERSION.as_str()
}

/// GET `/ui/static/{file}`.
pub(super) async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "ui.css" => (CSS, "text/css; charset=utf-8"),
        "ui.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    };
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=31536000, immutable"));
    r
}
