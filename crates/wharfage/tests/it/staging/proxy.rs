//! A tiny TCP proxy between wharfage and an upstream registry that injects the network's
//! faults: it cuts the first long blob response in the middle (a flaky link, a restarting load
//! balancer), can hide `Range` from the upstream (a cache that always sends whole bodies), can
//! redirect blob requests elsewhere (as registries send clients to their blob storage, or as a
//! hostile one sends them to a cloud metadata address), and
//! can make blobs vanish (404 for new requests, transfers in progress aborted), as when an
//! upstream garbage-collects a moved tag. It forwards one request per connection (it asks the
//! upstream to close after each answer) and records every request head, so a test can see
//! the `Range` request that resumed a download, and the most blob GETs it had in progress at
//! once, so a test can see ranges fetched in parallel.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does to the traffic.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Faults {
    /// Cut the first blob response longer than this many bytes (status line and headers
    /// included) there, closing both connections.
    pub cut_after: Option<usize>,
    /// Never forward `Range`: the upstream answers resumed requests with the whole blob.
    pub strip_range: bool,
    /// Answer blob GETs with a 307 to the same path on this loopback port, as registries
    /// send clients to their blob storage.
    pub redirect_blobs_to: Option<u16>,
    /// Answer blob GETs with a 307 to the same path on `https://` this host, written as
    /// given: a registry that sends its clients somewhere they should not go.
    pub redirect_blobs_to_host: Option<&'static str>,
    /// Hold every blob GET this long before forwarding it: a slow upstream.
    pub delay_blobs: Option<Duration>,
    /// Forward this many bytes of each blob response, then send nothing more while keeping
    /// the connection open: a download that hangs midway.
    pub stall_after: Option<usize>,
    /// Send blob responses at most this many bytes per second: a slow link.
    pub blob_rate: Option<usize>,
}

/// A running proxy; its threads end with the test process (they only serve loopback).
pub(crate) struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
}

struct Shared {
    upstream_port: u16,
    faults: Faults,
    heads: Mutex<Vec<String>>,
    cut_done: AtomicBool,
    blobs_gone: AtomicBool,
    /// Digests whose blob requests (HEAD and GET) are answered 404: an upstream whose
    /// manifest names a blob it does not hold.
    hidden: Mutex<Vec<String>>,
    /// Digests whose HEAD is answered 200 with this size although their GET is 404: an
    /// upstream that lies about holding a blob.
    claimed: Mutex<Vec<(String, usize)>>,
    /// While set, the last byte of every blob body is flipped: a corrupt upstream.
    corrupt: AtomicBool,
    /// Blob GETs in progress, and the most at once.
    blob_gets: AtomicUsize,
    max_blob_gets: AtomicUsize,
}

/// Counts a blob GET in progress while alive.
struct InProgress<'a>(&'a Shared);

impl<'a> InProgress<'a> {
    fn new(s: &'a Shared) -> Self {
        let now = s.blob_gets.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_blob_gets.fetch_max(now, Ordering::SeqCst);
        InProgress(s)
    }
}

impl Drop for InProgress<'_> {
    fn drop(&mut self) {
        self.0.blob_gets.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Proxy {
    /// Proxies `127.0.0.1:PORT` to the upstream port with `faults`.
    pub(crate) fn start(upstream_port: u16, faults: Faults) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream_port,
            faults,
            heads: Mutex::new(Vec::new()),
            cut_done: AtomicBool::new(false),
            blobs_gone: AtomicBool::new(false),
            hidden: Mutex::new(Vec::new()),
            claimed: Mutex::new(Vec::new()),
            corrupt: AtomicBool::new(false),
            blob_gets: AtomicUsize::new(0),
            max_blob_gets: AtomicUsize::new(0),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = s.forward(conn);
                });
            }
        });
        Proxy { port, shared }
    }

    /// `127.0.0.1:PORT`
    pub(crate) fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The head of every request forwarded so far (as received, lines joined by `\n`).
    pub(crate) fn heads(&self) -> Vec<String> {
        self.shared.heads.lock().unwrap().clone()
    }

    /// Whether the proxy has cut a blob response.
    pub(crate) fn has_cut(&self) -> bool {
        self.shared.cut_done.load(Ordering::SeqCst)
    }

    /// The most blob GETs the proxy had in progress at once.
    pub(crate) fn max_concurrent_blob_gets(&self) -> usize {
        self.shared.max_blob_gets.load(Ordering::SeqCst)
    }

    /// While on, the last byte of every blob body sent is flipped.
    pub(crate) fn corrupt_blobs(&self, on: bool) {
        self.shared.corrupt.store(on, Ordering::SeqCst);
    }

    /// Blob GETs forwarded so far.
    pub(crate) fn blob_gets(&self) -> usize {
        self.heads().iter().filter(|h| h.starts_with("GET ") && h.contains("/blobs/sha256:")).count()
    }

    /// From now on, requests for the blob `digest` (HEAD and GET) are answered 404
    /// `BLOB_UNKNOWN`; `false` ends that (and a [`Proxy::claim_blob`]).
    pub(crate) fn hide_blob(&self, digest: &str, hidden: bool) {
        let mut h = self.shared.hidden.lock().unwrap();
        h.retain(|d| d != digest);
        if hidden {
            h.push(digest.to_string());
        } else {
            self.shared.claimed.lock().unwrap().retain(|(d, _)| d != digest);
        }
    }

    /// From now on, a HEAD of the blob `digest` answers 200 with `size` bytes, and a GET 404:
    /// an upstream that claims a blob it never had.
    pub(crate) fn claim_blob(&self, digest: &str, size: usize) {
        self.hide_blob(digest, true);
        self.shared.claimed.lock().unwrap().push((digest.to_string(), size));
    }

    /// While on, blob GETs are answered 404 `BLOB_UNKNOWN` and blob transfers in progress
    /// are aborted.
    pub(crate) fn blobs_gone(&self, gone: bool) {
        self.shared.blobs_gone.store(gone, Ordering::SeqCst);
    }
}

impl Shared {
    fn forward(&self, client: TcpStream) -> std::io::Result<()> {
        client.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut reader = BufReader::new(client.try_clone()?);
        let mut lines = Vec::new();
        let mut content_length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.trim().eq_ignore_ascii_case("content-length") {
                    content_length = v.trim().parse().unwrap_or(0);
                }
            }
            lines.push(line);
        }
        let mut body = vec![0u8; content_length];
        reader.read_exact(&mut body)?;
        self.heads.lock().unwrap().push(lines.join("\n"));
        let mut client = client;
        let blob_get = lines[0].starts_with("GET ") && lines[0].contains("/blobs/sha256:");
        let _in_progress = blob_get.then(|| InProgress::new(self));
        let claimed = self.claimed.lock().unwrap().iter().find(|(d, _)| lines[0].contains(&format!("/blobs/{d}"))).map(|(_, n)| *n);
        if let Some(size) = claimed.filter(|_| lines[0].starts_with("HEAD ")) {
            let d = lines[0].split("/blobs/").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or("");
            write!(
                client,
                "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ndocker-content-digest: {d}\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
        let hidden = self.hidden.lock().unwrap().iter().any(|d| lines[0].contains(&format!("/blobs/{d}")));
        if hidden || (blob_get && self.blobs_gone.load(Ordering::SeqCst)) {
            let body = r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#;
            write!(
                client,
                "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )?;
            return Ok(());
        }
        if let Some(delay) = self.faults.delay_blobs.filter(|_| blob_get) {
            std::thread::sleep(delay);
        }
        if let Some(port) = self.faults.redirect_blobs_to.filter(|_| blob_get) {
            let path = lines[0].split_whitespace().nth(1).unwrap_or("/");
            write!(client, "HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:{port}{path}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")?;
            return Ok(());
        }
        if let Some(host) = self.faults.redirect_blobs_to_host.filter(|_| blob_get) {
            let path = lines[0].split_whitespace().nth(1).unwrap_or("/");
            write!(
                client,
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: https://{host}{path}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
        // Only a response longer than `cut_after` is cut; the first to reach it wins the cut.
        let cut_after = self.faults.cut_after.filter(|_| blob_get && !self.cut_done.load(Ordering::SeqCst));
        let dropped = |l: &str| {
            let l = l.to_ascii_lowercase();
            l.starts_with("connection:") || (self.faults.strip_range && l.starts_with("range:"))
        };
        let mut head = String::new();
        for l in lines.iter().filter(|l| !dropped(l)) {
            head.push_str(l);
            head.push_str("\r\n");
        }
        head.push_str("Connection: close\r\n\r\n");
        let mut upstream = TcpStream::connect(("127.0.0.1", self.upstream_port))?;
        upstream.write_all(head.as_bytes())?;
        upstream.write_all(&body)?;
        // Small reads, so that a transfer notices `blobs_gone` while it is under way.
        let mut buf = vec![0u8; 16 * 1024];
        let mut sent = 0usize;
        // With `corrupt`, the byte last read is held back until the next read shows whether
        // it ends the response, and then sent flipped.
        let corrupt = blob_get && self.corrupt.load(Ordering::SeqCst);
        let mut held: Option<u8> = None;
        loop {
            let n = upstream.read(&mut buf)?;
            if corrupt {
                if n == 0 {
                    if let Some(b) = held.take() {
                        client.write_all(&[b ^ 0x01])?;
                    }
                    break;
                }
                if let Some(b) = held.take() {
                    client.write_all(&[b])?;
                }
                held = Some(buf[n - 1]);
                client.write_all(&buf[..n - 1])?;
                continue;
            }
            if n == 0 || (blob_get && self.blobs_gone.load(Ordering::SeqCst)) {
                break;
            }
            if let Some(stall) = self.faults.stall_after.filter(|s| blob_get && sent + n >= *s) {
                client.write_all(&buf[..stall - sent])?;
                client.flush()?;
                // Held open, silent, until the test (and this thread) ends.
                std::thread::sleep(Duration::from_secs(600));
                return Ok(());
            }
            let cutting = cut_after.is_some_and(|c| sent + n >= c && !self.cut_done.swap(true, Ordering::SeqCst));
            let n = if cutting { cut_after.unwrap_or(0) - sent } else { n };
            client.write_all(&buf[..n])?;
            sent += n;
            if cutting {
                break;
            }
            if let Some(rate) = self.faults.blob_rate.filter(|_| blob_get) {
                std::thread::sleep(Duration::from_secs_f64(n as f64 / rate as f64));
            }
        }
        client.flush()?;
        let _ = client.shutdown(Shutdown::Both);
        let _ = upstream.shutdown(Shutdown::Both);
        Ok(())
    }
}
