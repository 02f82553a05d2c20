//! A request as the handlers see it: method, headers, decoded query parameters, body.

use axum::body::Body;
use futures::TryStreamExt;
use http::{HeaderMap, Method, Request};
use percent_encoding::percent_decode_str;
use store::ByteStream;

pub(crate) struct Req {
    pub method: Method,
    pub headers: HeaderMap,
    query: Vec<(String, String)>,
    /// Who is asking (for checks inside a handler, such as a mount's source repository).
    pub caller: crate::access::Caller,
    /// Wrapped so `&Req` is `Send` (a body is `Send` but not `Sync`); only consumed by value.
    body: sync_wrapper::SyncWrapper<Body>,
}

impl Req {
    pub(crate) fn new(request: Request<Body>, caller: crate::access::Caller) -> Self {
        let (parts, body) = request.into_parts();
        let query = parts
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                (decode(k), decode(v))
            })
            .collect();
        Req { method: parts.method, headers: parts.headers, query, caller, body: sync_wrapper::SyncWrapper::new(body) }
    }

    /// The first value of a query parameter.
    pub(crate) fn query(&self, key: &str) -> Option<&str> {
        self.query.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated query parameter.
    pub(crate) fn query_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// A header as text, if present and valid.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The declared `Content-Length`, if any.
    pub(crate) fn content_length(&self) -> Option<u64> {
        self.header("content-length").and_then(|v| v.parse().ok())
    }

    /// The body as a byte stream.
    pub(crate) fn into_stream(self) -> ByteStream {
        Box::pin(self.body.into_inner().into_data_stream().map_err(std::io::Error::other))
    }

    /// The body collected, refusing more than `limit` bytes.
    pub(crate) async fn into_bytes(self, limit: usize) -> Result<bytes::Bytes, BodyError> {
        collect(self.body.into_inner(), limit).await
    }
}

/// Why a body could not be collected.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// More than the limit: 413.
    TooLarge,
    /// Cut short, timed out or malformed: the client's 400.
    Incomplete(String),
}

/// Collects a body of at most `limit` bytes, telling a body over the limit from one that
/// ended early (a client that declared 100 bytes and sent 10 did not send too much).
pub(crate) async fn collect(body: Body, limit: usize) -> Result<bytes::Bytes, BodyError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let inner = e.into_inner();
        if inner.is::<http_body_util::LengthLimitError>() {
            BodyError::TooLarge
        } else {
            BodyError::Incomplete(inner.to_string())
        }
    })
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_decode_str(&s).decode_utf8_lossy().into_owned()
}
