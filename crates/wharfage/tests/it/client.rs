//! A minimal blocking HTTP/1.1 client on `std::net`, for the cases skopeo cannot express
//! (chunked uploads, cancelling, resuming) and for checking exact bytes and headers.
//!
//! One connection per request (`Connection: close`), the body read to the end and then
//! checked against `Content-Length` or decoded from `chunked`: small enough to trust, and free
//! of the workspace's async and TLS configuration.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use server::mgmt::types::{ErrorBody, ErrorEntry};

const TIMEOUT: Duration = Duration::from_secs(60);

/// HTTP to one server.
pub(crate) struct Http {
    addr: SocketAddr,
}

/// A whole response.
pub(crate) struct Resp {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// A header's (first) value.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    /// The body as text, for messages.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body read into `T` (a management API type, say): a renamed or missing field fails
    /// here, as it would in the CLI.
    #[track_caller]
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not a {} ({e}): {}", std::any::type_name::<T>(), self.text()))
    }

    /// The first error of an error body (of either API).
    #[track_caller]
    pub(crate) fn error(&self) -> ErrorEntry {
        let body: ErrorBody = self.json();
        body.errors.into_iter().next().unwrap_or_else(|| panic!("an error body without errors: {}", self.text()))
    }

    /// The error codes in the body (empty when it is not an error body).
    pub(crate) fn error_codes(&self) -> Vec<String> {
        let body: Option<ErrorBody> = serde_json::from_slice(&self.body).ok();
        body.map(|b| b.errors.into_iter().map(|e| e.code).collect()).unwrap_or_default()
    }

    /// Asserts the status, showing the body when it is not the one expected.
    #[track_caller]
    pub(crate) fn expect(self, status: u16, what: &str) -> Resp {
        assert_eq!(self.status, status, "{what}: unexpected status; body: {}", self.text());
        self
    }
}

impl Http {
    pub(crate) fn new(addr: SocketAddr) -> Http {
        Http { addr }
    }

    /// The server's address, for raw connections.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends a request to a path, or to a Location value (relative or absolute).
    pub(crate) fn send(&self, method: &str, target: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
        let path = match target.strip_prefix("http://") {
            Some(rest) => &rest[rest.find('/').unwrap_or(rest.len())..],
            None => target,
        };
        let what = format!("{method} {path}");
        let mut conn = TcpStream::connect_timeout(&self.addr, TIMEOUT).unwrap_or_else(|e| panic!("{what}: connect {}: {e}", self.addr));
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        conn.set_write_timeout(Some(TIMEOUT)).unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\nuser-agent: wharfage-e2e\r\n", self.addr);
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() || matches!(method, "PUT" | "PATCH" | "POST") {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        conn.write_all(head.as_bytes()).and_then(|_| conn.write_all(&body)).unwrap_or_else(|e| panic!("{what}: sending: {e}"));
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw).unwrap_or_else(|e| panic!("{what}: reading the response: {e}"));
        parse_response(&raw, method == "HEAD")
            .unwrap_or_else(|e| panic!("{what}: bad response ({e}): {:?}", String::from_utf8_lossy(&raw[..raw.len().min(500)])))
    }

    pub(crate) fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], Vec::new())
    }

    pub(crate) fn head(&self, path: &str) -> Resp {
        self.send("HEAD", path, &[], Vec::new())
    }

    /// GET a manifest accepting every manifest type the tests push.
    pub(crate) fn get_manifest(&self, repo: &str, reference: &str) -> Resp {
        let accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
                      application/vnd.docker.distribution.manifest.v2+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json";
        self.send("GET", &format!("/v2/{repo}/manifests/{reference}"), &[("accept", accept)], Vec::new())
    }
}

/// Parses a whole HTTP/1.1 response as read from a connection the server closed.
pub(crate) fn parse_response(raw: &[u8], head_request: bool) -> Result<Resp, String> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("bad status line")?;
    if (100..200).contains(&status) {
        return Err(format!("unexpected interim response {status}"));
    }
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').ok_or_else(|| format!("bad header line {l:?}"))?;
            Ok((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect::<Result<_, String>>()?;
    let mut resp = Resp { status, headers, body: Vec::new() };
    let rest = &raw[end + 4..];
    if head_request || status == 204 || status == 304 {
        if !rest.is_empty() {
            return Err(format!("{} bytes of body after a response that has none", rest.len()));
        }
    } else if resp.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        resp.body = dechunk(rest)?;
    } else if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().map_err(|_| "bad Content-Length")?;
        if rest.len() != len {
            return Err(format!("Content-Length {len} but {} bytes of body", rest.len()));
        }
        resp.body = rest.to_vec();
    } else {
        resp.body = rest.to_vec();
    }
    Ok(resp)
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).map_err(|_| "bad chunk size")?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Appends a query parameter to a Location value that may already carry a query.
pub(crate) fn with_query(location: &str, key: &str, value: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{key}={value}")
}
