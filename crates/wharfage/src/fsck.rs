//! `wharfage fsck`: the store's integrity check, run directly against the storage.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::{ServeArgs, ServeConfig};
use crate::CliError;

/// Checks the configured store and prints every problem; an error when there is any.
pub fn run(args: ServeArgs, repair: bool, json: bool) -> Result<(), CliError> {
    let mut cfg = ServeConfig::load(args)?;
    // The store itself is checked, never a replica's local copies; and a running replica may
    // own that cache folder (opening it clears its fills in progress).
    if let crate::config::Storage::S3 { blob_cache, .. } = &mut cfg.storage {
        *blob_cache = None;
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
            .fsck(repair, &|done, total| {
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
        if report.quarantined > 0 {
            println!("moved {} corrupt blob(s) to quarantine/; push or stage them again to restore", report.quarantined);
        }
    }
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(CliError::Problems(report.problems.len()))
    }
}
