//! One way to run a test on both storage backends: write the test once as an `async fn` taking
//! a [`Backend`], and put `testkit::both_backends!(name);` after it. That makes a test
//! `name::fs` on a fresh filesystem store, and registers the same case for the S3 suite, one
//! test per test binary (`testkit::s3_suite!();` in its `main.rs`) that runs every registered
//! case against one real SeaweedFS. SeaweedFS takes seconds to start, once per process, and
//! nextest runs every test in a process of its own: a test per S3 case would pay that each time.
//!
//! Cases register themselves before `main` (a function in `.init_array`, which Linux runs at
//! load time), so there is no list to keep: a case that is written is a case that runs on S3.

use std::future::Future;
use std::sync::Mutex;

/// The storage a case runs on; each suite turns it into its own store or server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh temporary directory.
    Fs,
    /// A fresh prefix in the process's shared SeaweedFS ([`crate::SeaweedFs::shared`]).
    S3,
}

/// A registered case: its path and a function that runs it on S3.
type Case = (&'static str, fn());

static CASES: Mutex<Vec<Case>> = Mutex::new(Vec::new());

/// Adds a case to this binary's S3 suite. Called by [`both_backends!`] before `main`.
#[doc(hidden)]
pub fn register(name: &'static str, case: fn()) {
    CASES.lock().unwrap_or_else(|e| e.into_inner()).push((name, case));
}

/// Runs a case's future on a current-thread runtime, as `#[tokio::test]` does.
#[doc(hidden)]
pub fn current_thread(case: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime").block_on(case)
}

/// Runs a case's future on a runtime with two worker threads, as
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` does.
#[doc(hidden)]
pub fn multi_thread(case: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime").block_on(case)
}

/// Runs every registered case on S3, in name order, each on its own runtime; a failing case
/// does not stop the others, and the test fails naming every case that failed.
/// `TESTKIT_S3_CASES=text` runs only the cases whose path contains `text`.
#[doc(hidden)]
pub fn run_s3_suite() {
    let mut cases = CASES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(!cases.is_empty(), "no case registered with testkit::both_backends!");
    cases.sort_by_key(|(name, _)| *name);
    let only = std::env::var("TESTKIT_S3_CASES").unwrap_or_default();
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, case) in cases.into_iter().filter(|(name, _)| name.contains(&only)) {
        eprintln!("s3 case: {name}");
        ran += 1;
        if std::panic::catch_unwind(case).is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "{} of {ran} cases failed on S3: {failed:#?}", failed.len());
}

/// Runs `async fn $case(backend: Backend)` on both backends: a test `$case::fs`, and a case of
/// this binary's S3 suite ([`s3_suite!`]). `both_backends!(name, multi_thread)` runs it on two
/// worker threads instead of the current thread.
#[macro_export]
macro_rules! both_backends {
    ($case:ident) => {
        $crate::both_backends!(@on $case, $crate::backends::current_thread);
    };
    ($case:ident, multi_thread) => {
        $crate::both_backends!(@on $case, $crate::backends::multi_thread);
    };
    (@on $case:ident, $runtime:path) => {
        mod $case {
            #[test]
            fn fs() {
                $runtime(super::$case($crate::Backend::Fs))
            }
        }
        const _: () = {
            fn on_s3() {
                $runtime($case($crate::Backend::S3))
            }
            extern "C" fn register() {
                $crate::backends::register(concat!(module_path!(), "::", stringify!($case)), on_s3)
            }
            #[used]
            #[link_section = ".init_array"]
            static REGISTER: extern "C" fn() = register;
        };
    };
}

/// The test that runs every case of this binary written with [`both_backends!`] on S3; once,
/// in the binary's `main.rs`.
#[macro_export]
macro_rules! s3_suite {
    () => {
        /// Every case written with `testkit::both_backends!`, on one real SeaweedFS.
        #[test]
        fn s3_suite() {
            $crate::backends::run_s3_suite()
        }
    };
}
