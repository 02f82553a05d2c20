//! Memory for ranges fetched ahead of the store: a byte budget per staging and one for the
//! whole process, so that neither a slow store nor many stagings at once can make ranged
//! downloads hold more than a known amount of memory.
//!
//! Permits are bytes. A range takes its length from its staging's budget, then from the
//! process's, always in that order (so two ranges never wait on each other crosswise), and
//! gives both back when the store has taken its last byte. Every permit held belongs to a
//! range that is in flight or waiting in order for the store, which always takes its blob's
//! first outstanding range: budgets drain without anyone else's help, and a blob that holds
//! nothing waits on a queue (tokio's semaphore is fair) that such releases serve.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A staging's budget and the process's; cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Budget {
    pub(crate) staging: Arc<Semaphore>,
    pub(crate) total: Arc<Semaphore>,
}

/// Bytes of both budgets, held until dropped.
#[derive(Debug)]
pub(crate) struct Held {
    _staging: OwnedSemaphorePermit,
    _total: OwnedSemaphorePermit,
}

impl Budget {
    /// A budget of `bytes` for one staging under the process's `total`.
    pub(crate) fn new(bytes: u64, total: Arc<Semaphore>) -> Budget {
        Budget { staging: Arc::new(Semaphore::new(permits(bytes))), total }
    }

    /// `bytes` of both budgets, waiting for them. `None` only if a semaphore was closed,
    /// which this crate never does.
    pub(crate) async fn acquire(&self, bytes: u64) -> Option<Held> {
        let n = u32::try_from(bytes).ok()?;
        let staging = self.staging.clone().acquire_many_owned(n).await.ok()?;
        let total = self.total.clone().acquire_many_owned(n).await.ok()?;
        Some(Held { _staging: staging, _total: total })
    }

    /// `bytes` of both budgets if both have them now.
    pub(crate) fn try_acquire(&self, bytes: u64) -> Option<Held> {
        let n = u32::try_from(bytes).ok()?;
        let staging = self.staging.clone().try_acquire_many_owned(n).ok()?;
        let total = self.total.clone().try_acquire_many_owned(n).ok()?;
        Some(Held { _staging: staging, _total: total })
    }
}

/// A semaphore size for `bytes`, within what tokio's semaphore can count.
pub(crate) fn permits(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX).min(Semaphore::MAX_PERMITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ranges_take_from_both_budgets_and_give_back_on_drop() {
        let total = Arc::new(Semaphore::new(permits(100)));
        let a = Budget::new(60, total.clone());
        let b = Budget::new(60, total.clone());
        let held_a = a.try_acquire(60).expect("a's whole budget");
        assert!(a.try_acquire(1).is_none(), "a's budget is spent");
        let held_b = b.try_acquire(40).expect("what is left of the total");
        assert!(b.try_acquire(1).is_none(), "the total is spent, though b has 20 left");
        drop(held_a);
        assert!(b.try_acquire(20).is_some(), "a's release serves b");
        drop(held_b);
        assert_eq!(total.available_permits(), 100);
        assert_eq!(a.staging.available_permits(), 60);
    }

    #[tokio::test]
    async fn a_waiting_range_is_served_by_a_release() {
        let total = Arc::new(Semaphore::new(permits(10)));
        let budget = Budget::new(10, total);
        let held = budget.acquire(10).await.expect("the whole budget");
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.acquire(8).await.is_some() }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "no bytes left: the range waits");
        drop(held);
        assert!(waiter.await.expect("the waiter ran"));
    }
}
