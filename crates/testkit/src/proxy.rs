//! A TCP proxy that counts the bytes a server sends back, and can hold them back: put in
//! front of SeaweedFS, it says how many bytes a registry read from the bucket, and lets a
//! test stop a download part-way to look at what happens while it is in progress. The
//! `countproxy` binary (for the benches) runs the same code.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Counters shared by every connection of one proxy.
#[derive(Debug)]
pub struct Counts {
    /// Bytes from the server to the clients (responses: what was read from the bucket).
    pub down: AtomicU64,
    /// Bytes from the clients to the server.
    pub up: AtomicU64,
    pub connections: AtomicU64,
    /// The total of `down` allowed so far (`u64::MAX`: no limit).
    allowed: watch::Sender<u64>,
}

impl Default for Counts {
    fn default() -> Counts {
        Counts { down: AtomicU64::new(0), up: AtomicU64::new(0), connections: AtomicU64::new(0), allowed: watch::Sender::new(u64::MAX) }
    }
}

/// Accepts connections on `listener` forever, forwarding each to `upstream`.
pub async fn serve(listener: TcpListener, upstream: SocketAddr, counts: Arc<Counts>) {
    while let Ok((client, _)) = listener.accept().await {
        counts.connections.fetch_add(1, Ordering::Relaxed);
        let counts = counts.clone();
        tokio::spawn(async move {
            let Ok(server) = TcpStream::connect(upstream).await else { return };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            let up = tokio::spawn(pipe(cr, sw, counts.clone(), false));
            pipe(sr, cw, counts, true).await;
            up.abort();
        });
    }
}

async fn pipe(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, counts: Arc<Counts>, down: bool) {
    let mut buf = vec![0u8; 64 << 10];
    let mut allowed = counts.allowed.subscribe();
    loop {
        let mut want = buf.len();
        if down {
            // Wait for room under the limit, then read no more than it leaves.
            loop {
                let room = allowed.borrow_and_update().saturating_sub(counts.down.load(Ordering::Relaxed));
                if room > 0 {
                    want = want.min(room.min(usize::MAX as u64) as usize);
                    break;
                }
                if allowed.changed().await.is_err() {
                    return;
                }
            }
        }
        let n = match from.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let counter = if down { &counts.down } else { &counts.up };
        counter.fetch_add(n as u64, Ordering::Relaxed);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// A [`serve`] on a thread of its own, for tests; stops when dropped.
pub struct CountingProxy {
    pub addr: SocketAddr,
    counts: Arc<Counts>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl CountingProxy {
    /// A proxy on a free loopback port in front of `upstream`.
    pub fn start(upstream: SocketAddr) -> CountingProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a loopback port for the proxy");
        let addr = listener.local_addr().expect("a bound socket's address");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        let counts = Arc::new(Counts::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let c = counts.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime for the proxy");
            rt.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("a tokio listener");
                tokio::select! {
                    _ = serve(listener, upstream, c) => {}
                    _ = stopped => {}
                }
            });
        });
        CountingProxy { addr, counts, stop: Some(stop) }
    }

    /// Bytes the server has sent back so far.
    pub fn bytes_down(&self) -> u64 {
        self.counts.down.load(Ordering::Relaxed)
    }

    /// Lets at most `n` more bytes through from the server until [`CountingProxy::release`].
    pub fn hold_after(&self, n: u64) {
        self.counts.allowed.send_replace(self.bytes_down().saturating_add(n));
    }

    /// Lifts the limit of [`CountingProxy::hold_after`].
    pub fn release(&self) {
        self.counts.allowed.send_replace(u64::MAX);
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
