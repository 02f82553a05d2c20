//! Accepting and serving connections within bounds a careless or hostile client cannot
//! exceed. `axum::serve` has none: a connection that sends half a request line is held
//! forever, an idle keep-alive connection too, and every such connection holds a file
//! descriptor until the process can accept no more. Here:
//! - the request headers must arrive within `header_timeout`; the same timer runs while a
//!   keep-alive connection waits for its next request, so it is also the idle timeout;
//! - a request body that sends nothing for `body_timeout` fails (the handler sees an error
//!   and stores nothing);
//! - at most `max_connections` are served at once. When a connection arrives at the limit,
//!   the least recently used connection idle for at least a quarter second is closed to make
//!   room (one that never sent a request at once, a kept-alive one gracefully), so idle or
//!   silent clients, however many, cannot keep a request waiting. Only when every
//!   connection is busy with a request do new ones wait in the listen queue, whose length
//!   (`backlog`) is set explicitly since the default 128 overflows under bursts;
//! - with TLS, the handshake must finish within `header_timeout` too; HTTP/2 is spoken when
//!   the client offers it by ALPN, HTTP/1.1 otherwise.
//!
//! Each request carries the client's address ([`crate::access::ClientAddr`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Notify, Semaphore};
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

/// How long a kept-alive connection chosen to make room may take to close gracefully (it
/// may be flushing its last answer) before it is closed outright, when no request started.
const EVICTION_GRACE: Duration = Duration::from_secs(1);

/// An HTTP/1 connection's buffer bound (hyper's `max_buf_size`; its default is about 400
/// KB). On the way out it is how much of the response body a connection holds before it
/// asks for the next chunk: a blob's chunks are mapped file pages that count in the RSS
/// while held, so with hundreds of connections the default held 1-2 chunks of 1 MiB each
/// (a 200-node storm peaked at 154-167 MiB per replica). Bytes queued in the socket keep
/// the connection busy while the next chunk is mapped. On the way in it bounds a read (64
/// KiB per system call for a push) and a request's headers.
const HTTP1_BUF: usize = 64 << 10;

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
    // Every connection holds a slot until its task ends; all of them free means all ended.
    let total = u32::try_from(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
    let slots = Arc::new(Semaphore::new(total as usize));
    let pool = Arc::new(Pool::default());
    let (stop, stopped) = watch::channel(false);
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true).max_buf_size(HTTP1_BUF);
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
        let slot = tokio::select! {
            s = take_slot(&slots, &pool) => match s { Some(s) => s, None => break },
            () = &mut shutdown => break,
        };
        let _ = tcp.set_nodelay(true);
        let conn = pool.register();
        let service = {
            let (app, conn) = (app.clone(), conn.clone());
            hyper::service::service_fn(move |mut r: http::Request<hyper::body::Incoming>| {
                r.extensions_mut().insert(ClientAddr(peer));
                // HTTP/2 names the host in `:authority`, not `Host`: make it one header for all.
                if !r.headers().contains_key(http::header::HOST) {
                    if let Some(v) = r.uri().authority().and_then(|a| http::HeaderValue::from_str(a.as_str()).ok()) {
                        r.headers_mut().insert(http::header::HOST, v);
                    }
                }
                let busy = Busy::start(conn.clone());
                let app = app.clone();
                async move {
                    let resp = app.oneshot(r).await;
                    // The request counts as busy until its answer's body is sent whole.
                    resp.map(|resp| resp.map(|body| Body::new(BusyBody { inner: body, _busy: busy })))
                }
            })
        };
        let (http1, http2, mut stopped, handshake) = (http1.clone(), http2.clone(), stopped.clone(), limits.header_timeout);
        let (pool, acceptor) = (pool.clone(), acceptor.clone());
        tokio::spawn(async move {
            let result = match acceptor {
                None => drive(http1.serve_connection(TokioIo::new(tcp), service), &conn, &mut stopped).await,
                Some(acceptor) => {
                    let stream = tokio::select! {
                        s = tokio::time::timeout(handshake, acceptor.accept(tcp)) => s,
                        // Closed to make room before it finished its handshake.
                        () = conn.close.notified() => return pool.remove(&conn),
                    };
                    let stream = match stream {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return pool.remove(&conn);
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return pool.remove(&conn);
                        }
                    };
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    let io = TokioIo::new(stream);
                    if h2 {
                        drive(http2.serve_connection(io, service), &conn, &mut stopped).await
                    } else {
                        drive(http1.serve_connection(io, service), &conn, &mut stopped).await
                    }
                }
            };
            // Errors are the client's doing (timeouts, resets, malformed requests).
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            pool.remove(&conn);
            drop(slot);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Each connection holds a slot until it ends: holding them all means all have ended.
    let _ = slots.acquire_many(total).await;
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

/// How often a connection waiting for a slot looks again for an idle one to close, while
/// every connection is busy (one may have finished its request and stayed open).
const IDLE_RECHECK: Duration = Duration::from_millis(100);

/// How long a connection must have had no request in flight before it may be closed to
/// make room: a client's request may be in the socket, not yet read, right after it
/// connected or between two requests it sends back to back.
const MIN_IDLE: Duration = Duration::from_millis(250);

/// A slot for a new connection. At the limit, the least recently used idle connection is
/// closed and its slot taken; while all are busy, the newcomer waits (later arrivals queue
/// in the kernel) and looks again for one that became idle. `None`: the server is stopping.
async fn take_slot(slots: &Arc<Semaphore>, pool: &Pool) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(s) = slots.clone().try_acquire_owned() {
        return Some(s);
    }
    // The one chosen may have started a request meanwhile (then it finishes it first): until
    // a slot frees, look again for another.
    pool.close_idlest();
    loop {
        tokio::select! {
            s = slots.clone().acquire_owned() => return s.ok(),
            () = tokio::time::sleep(IDLE_RECHECK) => {
                pool.close_idlest();
            }
        }
    }
}

/// The connections being served, to choose which idle one to close when the limit is met.
#[derive(Default)]
struct Pool {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    epoch: std::sync::OnceLock<std::time::Instant>,
}

/// One connection's activity, as its requests report it.
struct Conn {
    id: u64,
    /// Requests being answered (from the handler's call until the answer's body is sent).
    busy: AtomicUsize,
    /// Whether any request ever arrived: one that never did can be closed at once.
    asked: AtomicBool,
    /// Milliseconds since the pool's epoch when a request last started or finished, or the
    /// connection was accepted.
    last: AtomicU64,
    /// Already chosen to be closed.
    closing: AtomicBool,
    pool_epoch: std::time::Instant,
    close: Notify,
}

impl Conn {
    fn touch(&self) {
        self.last.store(millis_since(self.pool_epoch), Ordering::Relaxed);
    }
}

fn millis_since(epoch: std::time::Instant) -> u64 {
    u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Pool {
    fn epoch(&self) -> std::time::Instant {
        *self.epoch.get_or_init(std::time::Instant::now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        // The map stays consistent whatever panicked while holding it (inserts and removes).
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn register(&self) -> Arc<Conn> {
        let epoch = self.epoch();
        let conn = Arc::new(Conn {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            busy: AtomicUsize::new(0),
            asked: AtomicBool::new(false),
            last: AtomicU64::new(millis_since(epoch)),
            closing: AtomicBool::new(false),
            pool_epoch: epoch,
            close: Notify::new(),
        });
        self.lock().insert(conn.id, conn.clone());
        conn
    }

    fn remove(&self, conn: &Conn) {
        self.lock().remove(&conn.id);
    }

    /// Asks the least recently used connection without a request in flight for at least
    /// [`MIN_IDLE`] to close; whether there was one.
    fn close_idlest(&self) -> bool {
        let idle_since = millis_since(self.epoch()).saturating_sub(u64::try_from(MIN_IDLE.as_millis()).unwrap_or(u64::MAX));
        let conns = self.lock();
        let idlest = conns
            .values()
            .filter(|c| c.busy.load(Ordering::Acquire) == 0 && !c.closing.load(Ordering::Relaxed))
            .filter(|c| c.last.load(Ordering::Relaxed) <= idle_since)
            .min_by_key(|c| c.last.load(Ordering::Relaxed));
        match idlest {
            Some(c) => {
                c.closing.store(true, Ordering::Relaxed);
                // Stored if the connection's task is not waiting right now.
                c.close.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Serves one connection until it ends, is chosen to make room ([`Pool::close_idlest`]) or
/// the server stops. Chosen: a connection that never sent a request is dropped (hyper would
/// wait out the header timeout for it); a kept-alive one is shut down gracefully (closed at
/// once when idle, after its answer otherwise), and dropped after [`EVICTION_GRACE`] if it
/// still has no request in flight (half a request's headers). Stopping: gracefully.
async fn drive<C>(conn: C, me: &Conn, stopped: &mut watch::Receiver<bool>) -> Result<(), String>
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let mut conn = std::pin::pin!(conn);
    let mut graceful = false;
    let mut evicted_at: Option<Instant> = None;
    loop {
        let grace_over = async {
            match evicted_at {
                Some(at) => tokio::time::sleep_until(at + EVICTION_GRACE).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = conn.as_mut() => return r.map_err(|e| e.to_string()),
            () = me.close.notified(), if evicted_at.is_none() => {
                if !me.asked.load(Ordering::Acquire) {
                    return Ok(());
                }
                evicted_at = Some(Instant::now());
                if !graceful {
                    graceful = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = grace_over => {
                if me.busy.load(Ordering::Acquire) == 0 {
                    return Ok(());
                }
                // A request started meanwhile: it finishes, then the connection closes.
                evicted_at = None;
                me.closing.store(true, Ordering::Relaxed);
            }
            changed = stopped.changed(), if !graceful => {
                if changed.is_err() || *stopped.borrow() {
                    graceful = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// A request in flight on a connection, from the handler's call until its answer's body is
/// sent (or dropped).
struct Busy(Arc<Conn>);

impl Busy {
    fn start(conn: Arc<Conn>) -> Busy {
        conn.asked.store(true, Ordering::Release);
        conn.busy.fetch_add(1, Ordering::AcqRel);
        conn.touch();
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its request counted as busy until it is sent.
struct BusyBody {
    inner: Body,
    _busy: Busy,
}

impl http_body::Body for BusyBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
