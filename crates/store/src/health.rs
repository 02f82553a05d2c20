//! The S3 backend's circuit: tells a store that is down or hung from one that is only slow.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::StreamExt;

/// The thresholds of the health check.
#[derive(Debug, Clone)]
pub(crate) struct Timings {
    /// An operation still pending after this long makes [`Health`] check the store.
    pub(crate) slow: Duration,
    /// How long a health check may take before it counts as failed.
    pub(crate) probe_timeout: Duration,
    /// Consecutive failed checks that mark the store down (one alone may be a blip).
    pub(crate) probe_failures: u32,
    /// How often a store marked down is checked again.
    pub(crate) probe_interval: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            slow: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(1500),
            probe_failures: 2,
            probe_interval: Duration::from_millis(500),
        }
    }
}

/// A health check of the store.
pub(crate) type Probe = Arc<dyn Fn() -> BoxFuture<'static, std::result::Result<(), String>> + Send + Sync>;

/// Tells a store that is down or hung from one that is only slow, so that requests fail fast
/// (503) in the first case and are left to finish in the second. A hung store is the hard
/// case: the kernel still accepts connections and nothing ever answers, so only a timeout can
/// tell, and a timeout short enough to fail fast would also fail legitimately slow requests.
///
/// So: an operation pending for longer than `Timings::slow` (1 s) starts a health check, a HEAD with a
/// short timeout of a key that need not exist (one at a time, in the background). A store
/// that answers it is alive and the operation goes on. `Timings::probe_failures` (2) failed checks in a
/// row mark the store down: pending operations fail at once, and so does every new one
/// without waiting, until a check (every `Timings::probe_interval`, 0.5 s) passes again. A hung store
/// therefore fails requests within about 1 + 2 × 1.5 = 4 s, and service resumes by itself
/// within half a second of the store's return. A store that refuses connections fails each
/// operation within the retries above (a few hundred ms) with no check needed.
pub(crate) struct Health {
    /// Asks the store something cheap (a HEAD of a key that need not exist) through a client
    /// with short timeouts and no retries; `Err(why)` when it fails.
    probe: Probe,
    timings: Timings,
    /// `Some(why)` while the store is marked down.
    down: tokio::sync::watch::Sender<Option<Arc<str>>>,
    /// A check loop is running.
    probing: AtomicBool,
    describe: String,
}

impl Health {
    pub(crate) fn new(describe: String, probe: Probe, timings: Timings) -> Arc<Self> {
        Arc::new(Health { probe, timings, down: tokio::sync::watch::Sender::new(None), probing: AtomicBool::new(false), describe })
    }

    /// Whether the store is marked down, and why.
    #[cfg(test)]
    pub(crate) fn down_reason(&self) -> Option<Arc<str>> {
        self.down.borrow().clone()
    }

    /// Waits until the store is marked down (for aborts that must wait for the store).
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<Option<Arc<str>>> {
        self.down.subscribe()
    }

    /// Runs `fut`, an operation on the store, unless the store is down or goes down meanwhile.
    pub(crate) async fn guard<F: Future>(self: &Arc<Self>, fut: F) -> object_store::Result<F::Output> {
        let already = self.down.borrow().clone();
        if let Some(why) = already {
            return Err(self.unavailable(&why));
        }
        let mut fut = std::pin::pin!(fut);
        tokio::select! {
            out = &mut fut => return Ok(out),
            _ = tokio::time::sleep(self.timings.slow) => self.check_in_background(),
        }
        let mut down = self.down.subscribe();
        let why = tokio::select! {
            out = &mut fut => return Ok(out),
            why = down.wait_for(Option::is_some) => why.ok().and_then(|w| w.clone()),
        };
        match why {
            Some(why) => Err(self.unavailable(&why)),
            // The sender lives in `self`, so this cannot happen; finish the operation anyway.
            None => Ok(fut.await),
        }
    }

    fn unavailable(&self, why: &str) -> object_store::Error {
        object_store::Error::Generic { store: "S3", source: format!("{} is not answering ({why})", self.describe).into() }
    }

    fn check_in_background(self: &Arc<Self>) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let health = self.clone();
        tokio::spawn(async move {
            let mut failures = 0;
            loop {
                match health.check().await {
                    Ok(()) => {
                        if health.down.send_replace(None).is_some() {
                            tracing::info!(store = %health.describe, "the object store answers again");
                        }
                        break;
                    }
                    Err(why) => {
                        failures += 1;
                        if failures >= health.timings.probe_failures {
                            let marked = health.down.borrow().is_some();
                            if !marked {
                                tracing::error!(store = %health.describe, %why, "the object store is not answering: failing requests until it does");
                                health.down.send_replace(Some(why.into()));
                            }
                            tokio::time::sleep(health.timings.probe_interval).await;
                        }
                    }
                }
            }
            health.probing.store(false, Ordering::Release);
        });
    }

    async fn check(&self) -> std::result::Result<(), String> {
        let limit = self.timings.probe_timeout;
        match tokio::time::timeout(limit, (self.probe)()).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer to a health check within {limit:?}")),
        }
    }

    /// A stream whose every item is guarded like an operation (lists fetch pages lazily).
    pub(crate) fn guard_stream<T: Send + 'static>(
        self: &Arc<Self>,
        s: BoxStream<'static, object_store::Result<T>>,
    ) -> BoxStream<'static, object_store::Result<T>> {
        let health = self.clone();
        futures::stream::unfold(Some(s), move |s| {
            let health = health.clone();
            async move {
                let mut s = s?;
                match health.guard(s.next()).await {
                    Ok(Some(item)) => Some((item, Some(s))),
                    Ok(None) => None,
                    Err(e) => Some((Err(e), None)),
                }
            }
        })
        .boxed()
    }
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health").field("store", &self.describe).field("down", &*self.down.borrow()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    use futures::FutureExt;

    use super::*;

    /// A store whose health checks answer, or hang, as `up` says; counting the checks.
    struct Fake {
        up: AtomicBool,
        checks: AtomicUsize,
    }

    fn health(up: bool) -> (Arc<Health>, Arc<Fake>) {
        let fake = Arc::new(Fake { up: AtomicBool::new(up), checks: AtomicUsize::new(0) });
        let f = fake.clone();
        let probe: Probe = Arc::new(move || {
            f.checks.fetch_add(1, Ordering::SeqCst);
            let up = f.up.load(Ordering::SeqCst);
            async move {
                if up {
                    Ok(())
                } else {
                    futures::future::pending::<()>().await;
                    Ok(())
                }
            }
            .boxed()
        });
        let timings = Timings {
            slow: Duration::from_millis(50),
            probe_timeout: Duration::from_millis(100),
            probe_failures: 2,
            probe_interval: Duration::from_millis(50),
        };
        (Health::new("test store".into(), probe, timings), fake)
    }

    /// An operation that takes `d`.
    async fn op(d: Duration) -> u32 {
        tokio::time::sleep(d).await;
        7
    }

    #[tokio::test]
    async fn a_slow_operation_on_a_live_store_finishes() {
        let (h, fake) = health(true);
        assert_eq!(h.guard(op(Duration::from_millis(300))).await.unwrap(), 7);
        assert!(fake.checks.load(Ordering::SeqCst) >= 1, "a slow operation checks the store");
        assert!(h.down_reason().is_none());
    }

    #[tokio::test]
    async fn a_hung_store_fails_pending_and_new_operations_then_recovers() {
        let (h, fake) = health(false);
        let started = Instant::now();
        let err = h.guard(op(Duration::from_secs(60))).await.unwrap_err();
        let took = started.elapsed();
        assert!(err.to_string().contains("test store is not answering"), "{err}");
        // slow (50 ms) + two checks of 100 ms each, with slack for a busy machine.
        assert!(took < Duration::from_secs(2), "a hung store failed an operation only after {took:?}");
        assert!(h.down_reason().is_some());
        // While down, a new operation fails at once, even a fast one.
        let started = Instant::now();
        assert!(h.guard(op(Duration::ZERO)).await.is_err());
        assert!(started.elapsed() < Duration::from_millis(40));
        // Back: the next check clears the mark, and operations succeed again.
        fake.up.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(2);
        while h.down_reason().is_some() {
            assert!(Instant::now() < deadline, "the store stayed marked down after it came back");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(h.guard(op(Duration::ZERO)).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn many_slow_operations_share_one_check_loop() {
        let (h, fake) = health(true);
        let ops = (0..50).map(|_| h.guard(op(Duration::from_millis(120))));
        let results = futures::future::join_all(ops).await;
        assert!(results.iter().all(|r| r.as_ref().is_ok_and(|v| *v == 7)));
        let checks = fake.checks.load(Ordering::SeqCst);
        assert!((1..=3).contains(&checks), "50 slow operations ran {checks} checks, not one loop");
    }

    #[tokio::test]
    async fn one_failed_check_is_a_blip_not_an_outage() {
        let (h, fake) = health(false);
        // The first check hangs; the store answers again before the second one.
        let flip = {
            let fake = fake.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(120)).await;
                fake.up.store(true, Ordering::SeqCst);
            })
        };
        assert_eq!(h.guard(op(Duration::from_millis(400))).await.unwrap(), 7);
        flip.await.unwrap();
        assert!(h.down_reason().is_none(), "one failed check marked the store down");
    }
}
