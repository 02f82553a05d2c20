//! One minimal blocking HTTP/1.1 client on `std::net`, for every test that talks HTTP without
//! a library: the cases a real client cannot express (chunked uploads, cancelling, resuming,
//! a forged Host, a target with `..` left in) and checking exact bytes and headers.
//!
//! One connection per request (`Connection: close`), the body read to the end and then
//! checked against `Content-Length` or decoded from `chunked`: small enough to trust, and free
//! of the workspace's async and TLS configuration. Tests that hold a connection open or send
//! half a request write to their own socket, with [`request_head`] to build the head and
//! [`parse_response`] or [`read_head`] to read the answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long [`Http`] waits to connect, send, and for the answer, unless told otherwise.
const TIMEOUT: Duration = Duration::from_secs(60);

/// HTTP to one server.
#[derive(Clone, Debug)]
pub struct Http {
    addr: SocketAddr,
    timeout: Duration,
    /// The Host header; the address when `None`.
    host: Option<String>,
}

/// A whole response.
#[derive(Clone, Debug)]
pub struct Resp {
    pub status: u16,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    /// A header's (first) value.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text, for messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body read into `T` (a management API type, say): a renamed or missing field fails
    /// here, as it would in the CLI.
    #[track_caller]
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not a {} ({e}): {}", std::any::type_name::<T>(), self.text()))
    }

    /// Asserts the status, showing the body when it is not the one expected.
    #[track_caller]
    pub fn expect(self, status: u16, what: &str) -> Resp {
        assert_eq!(self.status, status, "{what}: unexpected status; body: {}", self.text());
        self
    }
}

impl Http {
    /// A client for `addr`, waiting up to a minute for each step of a request.
    pub fn new(addr: SocketAddr) -> Http {
        Http { addr, timeout: TIMEOUT, host: None }
    }

    /// The same client, waiting up to `timeout` to connect, send and read.
    pub fn timeout(mut self, timeout: Duration) -> Http {
        self.timeout = timeout;
        self
    }

    /// The same client, sending `host` as the Host header (any text, however malformed)
    /// instead of the address.
    pub fn host(mut self, host: &str) -> Http {
        self.host = Some(host.to_string());
        self
    }

    /// The server's address, for raw connections.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends a request to a path, or to a Location value (relative or absolute); panics when
    /// the server cannot be reached or its answer is not well-formed HTTP.
    #[track_caller]
    pub fn send(&self, method: &str, target: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Resp {
        self.try_send(method, target, headers, &body).unwrap_or_else(|e| panic!("{method} {}: {e}", path_of(target)))
    }

    /// Like [`Http::send`], but an error instead of a panic, for polling a server that may not
    /// be up yet.
    pub fn try_send(&self, method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<Resp> {
        let path = path_of(target);
        let mut conn = TcpStream::connect_timeout(&self.addr, self.timeout)
            .map_err(|e| std::io::Error::new(e.kind(), format!("connect {}: {e}", self.addr)))?;
        conn.set_read_timeout(Some(self.timeout))?;
        conn.set_write_timeout(Some(self.timeout))?;
        let host = self.host.clone().unwrap_or_else(|| self.addr.to_string());
        let mut all = vec![("connection", "close"), ("user-agent", "wharfage-testkit")];
        all.extend_from_slice(headers);
        let len = (!body.is_empty() || matches!(method, "PUT" | "PATCH" | "POST")).then_some(body.len() as u64);
        let head = request_head(method, path, &host, &all, len);
        conn.write_all(head.as_bytes()).and_then(|_| conn.write_all(body))?;
        let mut raw = Vec::new();
        conn.read_to_end(&mut raw)?;
        parse_response(&raw, method == "HEAD")
            .map_err(|e| std::io::Error::other(format!("bad response ({e}): {:?}", String::from_utf8_lossy(&raw[..raw.len().min(500)]))))
    }

    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], Vec::new())
    }

    pub fn head(&self, path: &str) -> Resp {
        self.send("HEAD", path, &[], Vec::new())
    }
}

/// The path (and query) of a request target given as a path or as an absolute `http://` URL.
fn path_of(target: &str) -> &str {
    match target.strip_prefix("http://") {
        Some(rest) => &rest[rest.find('/').unwrap_or(rest.len())..],
        None => target,
    }
}

/// A request head: the request line, `host`, `headers` in order, `content-length` when given,
/// and the blank line. Nothing is added: a raw test decides about `connection: close`.
pub fn request_head(method: &str, target: &str, host: &str, headers: &[(&str, &str)], content_length: Option<u64>) -> String {
    let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {host}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(len) = content_length {
        head.push_str(&format!("content-length: {len}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// A header's (first) value among lower-case `headers`.
pub fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    let name = name.to_ascii_lowercase();
    headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
}

/// The status and headers (names in lower case) of a response head, without its blank line.
fn parse_head(head: &[u8]) -> Result<(u16, Vec<(String, String)>), String> {
    let head = std::str::from_utf8(head).map_err(|_| "headers are not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().ok_or("no status line")?;
    let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or("bad status line")?;
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').ok_or_else(|| format!("bad header line {l:?}"))?;
            Ok((k.trim().to_ascii_lowercase(), v.trim().to_string()))
        })
        .collect::<Result<_, String>>()?;
    Ok((status, headers))
}

/// Parses a whole HTTP/1.1 response as read from a connection the server closed.
pub fn parse_response(raw: &[u8], head_request: bool) -> Result<Resp, String> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no end of headers")?;
    let (status, headers) = parse_head(&raw[..end])?;
    if (100..200).contains(&status) {
        return Err(format!("unexpected interim response {status}"));
    }
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

/// Reads a response's head from a connection that stays open; a response with the status,
/// the headers, and as body whatever body bytes came along with the head (the rest is still
/// to be read from `conn`).
pub fn read_head(conn: &mut impl Read) -> Resp {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = conn.read(&mut buf).unwrap_or_else(|e| panic!("reading a response head: {e}"));
        assert!(n > 0, "connection closed before the response head: {:?}", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let (status, headers) = parse_head(&raw[..end]).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&raw[..end])));
            return Resp { status, headers, body: raw[end + 4..].to_vec() };
        }
    }
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
pub fn with_query(location: &str, key: &str, value: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}{key}={value}")
}

/// A client for `127.0.0.1:port`.
fn loopback(port: u16, timeout: Duration) -> Http {
    Http::new(SocketAddr::from(([127, 0, 0, 1], port))).timeout(timeout)
}

/// Sends a request without a body to `127.0.0.1:port` and returns the status code.
pub fn http_status(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    loopback(port, Duration::from_secs(5)).try_send(method, path, &[], &[]).map(|r| r.status)
}

/// Sends a PUT with `body` to `127.0.0.1:port`; returns the status code.
pub fn http_put(port: u16, path: &str, body: &[u8]) -> std::io::Result<u16> {
    loopback(port, Duration::from_secs(5)).try_send("PUT", path, &[], body).map(|r| r.status)
}

/// An unsigned GET to `127.0.0.1:port` (SeaweedFS without identities accepts those); the
/// status and the whole body as text.
pub(crate) fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let r = loopback(port, Duration::from_secs(30)).try_send("GET", path, &[], &[])?;
    Ok((r.status, r.text()))
}

/// Polls until `port` answers HTTP, or panics with `what` after `timeout`.
pub fn wait_http(port: u16, path: &str, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if http_status(port, "GET", path).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not answer on port {port} within {timeout:?}");
}
