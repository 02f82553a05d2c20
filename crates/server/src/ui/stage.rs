//! The stage form, and its answer: an HTML page streamed as the staging runs (the page's
//! head at once, a line per progress event as it arrives, the result last), so the browser
//! shows live progress without JavaScript; `ui.js` turns the lines into progress bars.
//! Upstream credentials typed here follow the API's rule: the form body is wiped once read,
//! the parsed credentials wipe themselves, and neither is logged or put back into a page.

use askama::Template;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use axum::Extension;
use futures::StreamExt;
use http::HeaderMap;
use serde::Deserialize;
use stage::Event;

use super::error::UiError;
use super::session::Viewer;
use super::view::{Chrome, ShortDigest, Size};
use super::{html, render, AppState};
use crate::mgmt::types::{StagingOutcome, StagingRequest, UpstreamCredentials};
use crate::service::{self, read_and_wipe};

/// Where the streamed rows go in the rendered page.
const MARK: &str = "<!--progress-->";

#[derive(Template)]
#[template(path = "ui/stage.html")]
struct StagePage {
    chrome: Chrome,
    source: String,
    app: String,
    platform: String,
    error: Option<String>,
    /// Set on the streamed answer: the page shows the progress list with [`MARK`] in it.
    running: bool,
}

/// GET `/ui/stage`.
pub(super) async fn form(Extension(viewer): Extension<Viewer>) -> Result<Response, UiError> {
    render(&StagePage {
        chrome: Chrome::new(&viewer, "Stage an image", "stage"),
        source: String::new(),
        app: String::new(),
        platform: String::new(),
        error: None,
        running: false,
    })
}

/// The form's fields. The secrets wipe themselves when dropped.
#[derive(Deserialize)]
struct StageForm {
    source: String,
    app: String,
    #[serde(default)]
    platform: String,
    #[serde(default)]
    username: zeroize::Zeroizing<String>,
    #[serde(default)]
    password: zeroize::Zeroizing<String>,
    #[serde(default)]
    token: zeroize::Zeroizing<String>,
}

impl StageForm {
    /// The API's request: empty fields are absent, credentials only when given.
    fn request(&self) -> StagingRequest {
        let some = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        let credentials = match (some(&self.username), some(&self.password), some(&self.token)) {
            (None, None, None) => None,
            (username, password, token) => Some(UpstreamCredentials { username, password, token }),
        };
        StagingRequest {
            source: self.source.trim().into(),
            app: self.app.trim().into(),
            platform: some(&self.platform),
            referrers: None,
            credentials,
        }
    }
}

/// POST `/ui/stage`: a refused form comes back with its error (and without the
/// credentials); a valid one starts the staging and streams its progress.
pub(super) async fn run(
    State(state): State<AppState>,
    Extension(viewer): Extension<Viewer>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, UiError> {
    let form: StageForm =
        read_and_wipe(body, |b| serde_urlencoded::from_bytes(b)).map_err(|e| UiError::bad_request(format!("invalid form: {e}")))?;
    let chrome = Chrome::new(&viewer, "Stage an image", "stage");
    let mut page = StagePage {
        chrome,
        source: form.source.clone(),
        app: form.app.clone(),
        platform: form.platform.clone(),
        error: None,
        running: false,
    };
    let req = match service::stage_request(form.request()) {
        Ok(r) => r,
        Err(e) => {
            let e = UiError::from(e);
            page.error = Some(e.message().to_string());
            let mut r = render(&page)?;
            *r.status_mut() = e.status();
            return Ok(r);
        }
    };
    drop(form);
    page.running = true;
    let rendered = page.render().map_err(|e| UiError::internal(format!("cannot render the page: {e}")))?;
    let (head, tail) = rendered.split_once(MARK).ok_or_else(|| UiError::internal("the stage page has no progress mark"))?;
    let (head, tail) = (Bytes::from(head.to_string()), tail.to_string());
    let host = state.access.registry_host(&headers);
    let (rx, task) = service::start(&state, req)?;
    let rows = service::receiver_stream(rx).map(|e| Bytes::from(row(&e)));
    let end = futures::stream::once(async move {
        let outcome = service::finish(&state, task.await, &host).await;
        state.console.invalidate();
        Bytes::from(format!("{}{tail}", result(&outcome)))
    });
    let body = futures::stream::once(async move { head }).chain(rows).chain(end).map(Ok::<_, std::convert::Infallible>);
    let mut r = html(String::new());
    *r.body_mut() = Body::from_stream(body);
    Ok(r)
}

/// One progress line. Built with `format!`: it holds parsed digests (hex and `:`) and
/// numbers, which need no escaping, and warnings, which are escaped.
fn row(e: &Event) -> String {
    let line = |kind: &str, d: &oci::Digest, bytes: u64, size: u64, text: String| {
        let sd = ShortDigest::new(d);
        format!(
            "<li class=\"ev ev-{kind}\" data-digest=\"{}\" data-bytes=\"{bytes}\" data-size=\"{size}\"><code>{}</code> {text}</li>\n",
            sd.full, sd.short
        )
    };
    match e {
        Event::Planned { download, reuse, .. } => {
            format!("<li class=\"ev ev-plan\">Plan: {download} blobs to download, {reuse} already stored.</li>\n")
        }
        Event::BlobStarted { digest, size } => line("start", digest, 0, *size, format!("downloading {}", Size(*size))),
        Event::BlobProgress { digest, bytes } => line("progress", digest, *bytes, 0, format!("{} received", Size(*bytes))),
        Event::BlobDone { digest, size } => line("done", digest, *size, *size, format!("stored, {} verified", Size(*size))),
        Event::BlobReused { digest, size } => line("reused", digest, *size, *size, format!("already stored ({})", Size(*size))),
        Event::Warning { message } => format!("<li class=\"ev ev-warning\">Warning: {}</li>\n", escape(message)),
    }
}

/// Text made safe inside HTML elements and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Template)]
#[template(path = "ui/stage_result.html")]
struct ResultPart<'a> {
    outcome: &'a StagingOutcome,
    digest: Option<ShortDigest>,
    downloaded: Size,
    reused: Size,
}

/// The end of the streamed page: what was staged, or why not.
fn result(outcome: &StagingOutcome) -> String {
    let (digest, downloaded, reused) = match outcome {
        StagingOutcome::Result(v) => {
            (Some(ShortDigest::new(&v.record.digest)), Size(v.record.bytes_downloaded), Size(v.record.bytes_reused))
        }
        StagingOutcome::Error(_) => (None, Size(0), Size(0)),
    };
    ResultPart { outcome, digest, downloaded, reused }
        .render()
        .unwrap_or_else(|_| "<section class=\"result err\" id=\"result\"><p>The staging ended; see its app page.</p></section>".into())
}
