//! Accepting and serving connections within bounds a careless or hostile client cannot
//! exceed. `axum::serve` has none: a connection that sends half a request line is held
//! forever, an idle keep-alive connection too, and every such connection holds a file
//! descriptor until the process can accept no more. Here:
//! - the request headers must arrive within `header_timeout`; the same timer runs while a
//!   keep-alive connection waits for its next request, so it is also the idle timeout;
//! - a request body that sends nothing for `body_timeout` fails (the handler sees an error
//!   and stores nothing);
//! - at most `max_connections` are served at once; more wait in the listen queue, whose
//!   length (`backlog`) is set explicitly since the default 128 overflows under bursts;
//! - with TLS, the handshake must finish within `header_timeout` too; HTTP/2 is spoken when
//!   the client offers it by ALPN, HTTP/1.1 otherwise.
//!
//! Each request carries the client's address ([`crate::access::ClientAddr`]).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::time::{Instant, Sleep};
use tower::ServiceExt as _;

use crate::access::ClientAddr;

/// Bounds on connections and requests.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub backlog: u32,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            backlog: 4096,
            header_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
        }
    }
}

/// Binds `addr` with a listen queue of `backlog` connections.
pub async fn bind(addr: &str, backlog: u32) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        match bind_one(a, backlog) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{addr} resolves to no address"))))
}

fn bind_one(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Serves `app` on `listener` (over TLS when `tls` is set) until `shutdown` completes, then
/// lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &ConnectionLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) {
    let body_timeout = limits.body_timeout;
    let app = app.layer(axum::middleware::map_request(move |req: http::Request<Body>| async move {
        req.map(|body| Body::new(IdleTimeoutBody::new(body, body_timeout)))
    }));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    // A blob body arrives in 256 KiB chunks: a stream's send buffer holds a few of them, so
    // the connection is not idle while the next chunk is read (the default is 400 KB).
    // Receive windows follow the measured bandwidth-delay product, for fast pushes.
    http2
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout))
        .max_concurrent_streams(256)
        .max_send_buf_size(1 << 20)
        .adaptive_window(true);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // Wait for a free slot first: beyond the limit, connections queue in the kernel.
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, or a connection reset before accept: not fatal.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone().map_request(move |mut r: http::Request<hyper::body::Incoming>| {
            r.extensions_mut().insert(ClientAddr(peer));
            // HTTP/2 names the host in `:authority`, not `Host`: make it one header for all.
            if !r.headers().contains_key(http::header::HOST) {
                if let Some(v) = r.uri().authority().and_then(|a| http::HeaderValue::from_str(a.as_str()).ok()) {
                    r.headers_mut().insert(http::header::HOST, v);
                }
            }
            r
        }));
        let Some(acceptor) = acceptor.clone() else {
            let conn = graceful.watch(http1.serve_connection(TokioIo::new(tcp), service));
            tokio::spawn(async move {
                // Errors are the client's doing (timeouts, resets, malformed requests).
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                drop(slot);
            });
            continue;
        };
        let (http1, http2, watcher, handshake) = (http1.clone(), http2.clone(), graceful.watcher(), limits.header_timeout);
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(handshake, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = TokioIo::new(stream);
            let result = if h2 {
                watcher.watch(http2.serve_connection(io, service)).await
            } else {
                watcher.watch(http1.serve_connection(io, service)).await
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A request body that fails when the client sends nothing for `timeout`. The clock runs
/// only while the handler waits for bytes, not while it is busy elsewhere.
struct IdleTimeoutBody {
    inner: Body,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    /// Whether `sleep` counts down the current wait.
    armed: bool,
}

impl IdleTimeoutBody {
    fn new(inner: Body, timeout: Duration) -> Self {
        IdleTimeoutBody { inner, timeout, sleep: Box::pin(tokio::time::sleep(timeout)), armed: false }
    }
}

impl http_body::Body for IdleTimeoutBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.armed = false;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                if !this.armed {
                    this.armed = true;
                    this.sleep.as_mut().reset(Instant::now() + this.timeout);
                }
                this.poll_sleep(cx)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl IdleTimeoutBody {
    fn poll_sleep(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                let secs = self.timeout.as_secs();
                let e = std::io::Error::new(std::io::ErrorKind::TimedOut, format!("the request body sent nothing for {secs} s"));
                Poll::Ready(Some(Err(axum::Error::new(e))))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
