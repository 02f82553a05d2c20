//! `wharfage fsck`: the store's integrity check, run directly against the storage.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::{ServeArgs, ServeConfig, StorageArgs};
use crate::CliError;

/// Checks the configured store and prints every problem. An error (exit 1) when data is
/// corrupt, missing or unparsable; leftovers (orphaned blobs, stale upload sessions,
/// temporary files) are reported and counted, and fail only with `strict`.
pub(crate) fn run(args: StorageArgs, repair: bool, strict: bool, json: bool) -> Result<(), CliError> {
    let mut cfg = ServeConfig::load(ServeArgs::from(args))?;
    // The store itself is checked, never a replica's local copies; and a running replica may
    // own that cache folder (opening it clears its fills in progress).
    if let crate::config::Storage::S3 { blob_cache, .. } = &mut cfg.storage {
        *blob_cache = None;
    }
    // Opening a filesystem store creates its root (what `serve` wants on a first start); a
    // check of a root that does not exist would check an empty store made for it and call a
    // mistyped path clean.
    if let crate::config::Storage::Fs(root) = &cfg.storage {
        if !root.is_dir() {
            return Err(CliError::Config(format!(
                "storage root {} does not exist or is not a folder: fsck checks an existing store (check --root)",
                root.display()
            )));
        }
    }
    let store = crate::serve::open_store(&cfg)?;
    let bar = ProgressBar::with_draw_target(
        Some(0),
        if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() },
    );
    if let Ok(style) = ProgressStyle::with_template("checking blobs [{bar:30}] {pos}/{len}") {
        bar.set_style(style);
    }
    let report = tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(async {
        store
            .fsck(repair, cfg.uploads.expiry, &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })
            .await
    })?;
    bar.finish_and_clear();
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        println!(
            "checked {} blobs ({} bytes), {} manifests, {} links",
            report.blobs_checked, report.bytes_checked, report.manifests_checked, report.links_checked
        );
        for p in &report.problems {
            let repos: Vec<&str> = p.repositories.iter().map(String::as_str).collect();
            let kind = serde_json::to_value(&p.kind).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            println!("{kind:<16} {} {} ({})", p.digest, repos.join(","), p.detail);
        }
        if report.absent_children > 0 {
            println!("sparse indexes   {} child manifest(s) absent by design (not staged or not pushed)", report.absent_children);
        }
        if report.absent_blobs > 0 {
            println!("sparse manifests {} blob(s) absent by design (accepted before they were pushed)", report.absent_blobs);
        }
        if report.stale_uploads > 0 {
            println!("stale uploads    {} session(s) idle beyond their expiry (garbage collection removes them)", report.stale_uploads);
        }
        if report.temp_files > 0 {
            println!(
                "temporary files  {} ({} bytes) left by interrupted writes (removed at the next start or garbage collection)",
                report.temp_files, report.temp_bytes
            );
        }
        println!("{} failure(s), {} leftover(s)", report.failures(), report.leftovers());
        if report.quarantined > 0 {
            println!("moved {} corrupt blob(s) to quarantine/; push or stage them again to restore", report.quarantined);
        }
    }
    let failures = report.failures() as u64;
    if failures > 0 {
        Err(CliError::Problems(failures, "damaged or missing data".into()))
    } else if strict && report.leftovers() > 0 {
        Err(CliError::Problems(report.leftovers(), "leftovers (--strict)".into()))
    } else {
        Ok(())
    }
}
