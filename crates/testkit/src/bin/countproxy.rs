//! Counts what a server sends: a TCP proxy for `bench/storm.sh`, put in front of SeaweedFS's
//! S3 port so that the bench knows how many bytes each registry read from the bucket.
//!
//! ```text
//! countproxy LISTEN_PORT UPSTREAM_PORT
//! ```
//!
//! On SIGUSR1 it prints `down=BYTES up=BYTES connections=N` (bytes from the server, bytes to
//! it, connections so far) to stdout; on SIGTERM it prints the same line and exits. The
//! forwarding is `testkit::proxy`, which the tests use too.

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;
use std::sync::Arc;

use testkit::proxy::{serve, Counts};
use tokio::signal::unix::{signal, SignalKind};

fn main() {
    let args: Vec<u16> = std::env::args().skip(1).map(|a| a.parse().unwrap_or_else(|_| usage())).collect();
    let [listen, upstream] = args[..] else { usage() };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap_or_else(|e| fail(e));
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", listen)).await.unwrap_or_else(|e| fail(e));
        let counts = Arc::new(Counts::default());
        let mut term = signal(SignalKind::terminate()).unwrap_or_else(|e| fail(e));
        let mut usr1 = signal(SignalKind::user_defined1()).unwrap_or_else(|e| fail(e));
        let serving = tokio::spawn(serve(listener, ([127, 0, 0, 1], upstream).into(), counts.clone()));
        let print = |c: &Counts| {
            println!(
                "down={} up={} connections={}",
                c.down.load(Ordering::Relaxed),
                c.up.load(Ordering::Relaxed),
                c.connections.load(Ordering::Relaxed)
            )
        };
        loop {
            tokio::select! {
                _ = usr1.recv() => print(&counts),
                _ = term.recv() => break,
            }
        }
        print(&counts);
        serving.abort();
    });
}

fn usage() -> ! {
    eprintln!("usage: countproxy LISTEN_PORT UPSTREAM_PORT");
    std::process::exit(2)
}

fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("countproxy: {e}");
    std::process::exit(1)
}
