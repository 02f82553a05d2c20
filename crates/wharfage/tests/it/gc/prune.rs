//! What garbage collection removes on a quiet store: an unpinned app's own blobs and nothing
//! else, the same figures in a dry run, stagings beyond retention, apps missing from the live
//! list (with the guard against unpinning most of them), and two collections at once.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use server::mgmt::types::{AppDetail, GcReport, LiveSyncAnswer, LiveSyncRequest};

use super::{figures, layer, pull, push, quiet, removed, Img, Reg, Via};
use crate::client::{ErrorBodyExt, RegistryExt};
use crate::skopeo::Skopeo;

/// A registry that stages from `up` and collects with no grace period, plus `extra` flags.
fn stager_of(up: &Reg, extra: &[&str]) -> Reg {
    let mut args = quiet();
    args.extend(["--insecure-registry".to_string(), up.host()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    Reg::fs(&args)
}

#[test]
fn unpinning_one_of_two_apps_frees_exactly_the_blobs_only_it_used() {
    let skopeo = Skopeo::new();
    let (base1, base2) = (layer(1, 64 << 10), layer(2, 32 << 10));
    let (a1, a2, b1, t1) = (layer(3, 20 << 10), layer(4, 28 << 10), layer(5, 24 << 10), layer(6, 12 << 10));
    let img_a = Img::new("app a", &[&base1, &base2, &a1, &a2]);
    let img_b = Img::new("app b", &[&base1, &base2, &b1]);
    // A tagged image sharing a base layer and one of app a's own layers: that layer must stay.
    let img_t = Img::new("tagged", &[&base1, &a1, &t1]);

    let up = Reg::fs(&[]);
    push(&up.http, "src/a", "v1", &img_a, Via::Post).unwrap();
    push(&up.http, "src/b", "v1", &img_b, Via::Post).unwrap();
    let w = stager_of(&up, &[]);
    w.skopeo_push(&skopeo, &img_t, "team/tagged", "v1");
    let a = w.stage_ok(&format!("{}/src/a:v1", up.host()), "app-a");
    let b = w.stage_ok(&format!("{}/src/b:v1", up.host()), "app-b");
    assert_eq!(a.record.digest.to_string(), img_a.digest);
    assert_eq!(b.record.digest.to_string(), img_b.digest);

    // Nothing is garbage yet, zero grace or not.
    let first = w.gc(false);
    assert_eq!(removed(&first.blobs), (0, 0), "a collection before any unpin removed blobs: {first:?}");
    let before = w.blob_files();

    let out = w.cli(&["apps", "rm", "app-a"]);
    assert!(out.status.success(), "wharfage apps rm: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unpinned 1 staging(s) of app-a"), "{}", String::from_utf8_lossy(&out.stdout));
    w.app("app-a").expect(404, "the unpinned app");
    w.http.send("DELETE", "/api/v1/apps/app-a", &[("content-type", "application/json")], Vec::new()).expect(404, "unpinning an app twice");

    // Dry run: the CLI's figures, then the API's; nothing moves.
    let out = w.cli(&["gc", "--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "wharfage gc --dry-run: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.lines().any(|l| l.starts_with("would remove") && l.contains(" 3 blobs")), "wharfage gc --dry-run printed:\n{text}");
    let dry = w.gc(true);
    assert_eq!(w.blob_files(), before, "a dry run changed blobs/");
    w.http.get_manifest("apps/app-a", &img_a.digest).expect(200, "the unpinned app's manifest after a dry run");

    let real = w.gc(false);
    assert_eq!(figures(&dry), figures(&real), "dry run {dry:?}\nreal run {real:?}");
    let after = w.blob_files();
    let gone: BTreeMap<String, u64> = before.iter().filter(|(d, _)| !after.contains_key(*d)).map(|(d, s)| (d.clone(), *s)).collect();
    let added: Vec<&String> = after.keys().filter(|d| !before.contains_key(*d)).collect();
    assert!(added.is_empty(), "a collection added blobs: {added:?}");
    let own: BTreeSet<String> = [img_a.digest.clone(), img_a.config.clone(), img_a.layers[3].clone()].into();
    assert_eq!(gone.keys().cloned().collect::<BTreeSet<_>>(), own, "blobs removed vs. blobs only app a used");
    let own_bytes: u64 = gone.values().sum();
    assert_eq!(removed(&real.blobs), (3, own_bytes), "report: {real:?}");
    assert_eq!(removed(&real.manifests).0, 1, "report: {real:?}");
    // apps/app-a linked its config and four layers.
    assert_eq!(removed(&real.layer_links).0, 5, "report: {real:?}");
    assert_eq!(real.protected, 0, "nothing was being pushed: {real:?}");

    // Again: nothing left to remove.
    let again = w.gc(false);
    assert!(figures(&again).iter().all(|(_, (c, _))| *c == 0), "a second collection removed more: {again:?}");
    assert_eq!(w.blob_files(), after);
    // /metrics: three real runs (the dry run changes nothing and is not counted), the 3 blobs.
    let text = w.http.get("/metrics").expect(200, "metrics").text();
    assert_eq!(crate::s3::metric(&text, "wharfage_gc_runs_total"), Some(3.0), "{text}");
    assert_eq!(crate::s3::metric(&text, "wharfage_gc_removed_blobs_total"), Some(3.0), "{text}");
    assert_eq!(crate::s3::metric(&text, "wharfage_gc_removed_bytes_total"), Some(own_bytes as f64), "{text}");

    w.skopeo_pull_check(&skopeo, "apps/app-b", &img_b.digest, &img_b);
    w.skopeo_pull_check(&skopeo, "team/tagged", "v1", &img_t);
    w.http.get_manifest("apps/app-a", &img_a.digest).expect(404, "the collected app's manifest");
    // Nothing is left of the repository (the filesystem keeps its empty folders): unknown.
    let tags = w.http.get("/v2/apps/app-a/tags/list").expect(404, "the tags of a fully collected repository");
    assert!(tags.text().contains("NAME_UNKNOWN"), "{}", tags.text());
    w.http.head(&format!("/v2/team/tagged/blobs/{}", img_a.layers[2])).expect(200, "app a's layer the tagged image shares");
    // And app a can be staged again: the bytes come back from the upstream.
    let again = w.stage_ok(&format!("{}/src/a:v1", up.host()), "app-a");
    assert_eq!(again.record.blobs_downloaded, 2, "config and the one layer that were collected: {again:?}");
    w.skopeo_pull_check(&skopeo, "apps/app-a", &img_a.digest, &img_a);
}

#[test]
fn retention_keeps_the_current_staging_and_the_previous_two() {
    let skopeo = Skopeo::new();
    let base = layer(10, 40 << 10);
    let images: Vec<Img> = (0..5).map(|i| Img::new(&format!("release {i}"), &[&base, &layer(11 + i, 16 << 10)])).collect();
    let up = Reg::fs(&[]);
    for (i, img) in images.iter().enumerate() {
        push(&up.http, "src/rel", &format!("v{i}"), img, Via::Post).unwrap();
    }
    // The default retention (2), nothing passed.
    let w = stager_of(&up, &[]);
    let mut ids = Vec::new();
    for (i, img) in images.iter().enumerate() {
        let r = w.stage_ok(&format!("{}/src/rel:v{i}", up.host()), "rel");
        assert_eq!(r.record.digest.to_string(), img.digest);
        ids.push(r.record.staging_id.to_string());
    }
    assert_eq!(w.history("rel"), ids.iter().rev().cloned().collect::<Vec<_>>(), "history before the collection");

    let dry = w.gc(true);
    assert_eq!(w.history("rel").len(), 5, "a dry run removed staging records");
    let report = w.gc(false);
    assert_eq!(figures(&dry), figures(&report), "dry run {dry:?}\nreal run {report:?}");
    assert_eq!(removed(&report.stagings).0, 2, "report: {report:?}");
    assert_eq!(removed(&report.manifests).0, 2, "report: {report:?}");
    // Manifest, config and own layer of each of the two oldest.
    assert_eq!(removed(&report.blobs).0, 6, "report: {report:?}");

    let app: AppDetail = w.app("rel").expect(200, "the app after the collection").json();
    let kept: Vec<&str> = app.stagings.iter().map(|s| s.record.staging_id.as_str()).collect();
    assert_eq!(kept, vec![ids[4].as_str(), ids[3].as_str(), ids[2].as_str()], "history after the collection: {app:?}");
    assert_eq!(app.current.record.staging_id.as_str(), ids[4]);
    for (i, img) in images.iter().enumerate() {
        if i >= 2 {
            w.skopeo_pull_check(&skopeo, "apps/rel", &img.digest, img);
        } else {
            w.http.get_manifest("apps/rel", &img.digest).expect(404, &format!("staging {i}, beyond retention"));
        }
    }
}

#[test]
fn live_sync_unpins_the_apps_not_listed_and_refuses_to_unpin_most_of_them() {
    let skopeo = Skopeo::new();
    let base = layer(20, 32 << 10);
    let images: Vec<Img> = (0..5).map(|i| Img::new(&format!("live {i}"), &[&base, &layer(21 + i, 8 << 10)])).collect();
    let up = Reg::fs(&[]);
    for (i, img) in images.iter().enumerate() {
        push(&up.http, &format!("src/live{i}"), "v1", img, Via::Post).unwrap();
    }
    let w = stager_of(&up, &[]);
    let apps: Vec<String> = (0..5).map(|i| format!("app-{i}")).collect();
    for (i, app) in apps.iter().enumerate() {
        w.stage_ok(&format!("{}/src/live{i}:v1", up.host()), app);
    }
    let sync = |apps: &[&str], force: bool| {
        let body = serde_json::to_vec(&LiveSyncRequest { apps: apps.iter().map(|a| a.to_string()).collect(), force }).unwrap();
        w.http.send("PUT", "/api/v1/apps/live", &[("content-type", "application/json")], body)
    };

    // 4 of 5 would go: refused, and nothing is unpinned.
    let r = sync(&["app-0"], false).expect(409, "a live list dropping 4 of 5 apps");
    assert_eq!(r.error_codes(), vec!["TOO_MANY_UNPINS"], "{}", r.text());
    assert!(r.text().contains("4 of 5"), "{}", r.text());
    assert_eq!(w.apps(), apps);
    // The same through the CLI: a failure naming the guard.
    let list = w.dir.path().join("live.txt");
    std::fs::write(&list, "# the platform's apps\napp-0\n").unwrap();
    let out = w.cli(&["apps", "sync", "--live", list.to_str().unwrap()]);
    assert!(!out.status.success(), "apps sync dropping 4 of 5 apps succeeded: {}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOO_MANY_UNPINS"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(w.apps(), apps);
    w.http
        .send("PUT", "/api/v1/apps/live", &[("content-type", "application/json")], b"{\"apps\": \"app-0\"}".to_vec())
        .expect(400, "a malformed live list");
    sync(&["app-0", "Not An App"], false).expect(400, "a live list with an invalid app id");

    // 2 of 5 may go without force (CLI).
    std::fs::write(&list, "app-0\napp-1\n\napp-2\n").unwrap();
    let out = w.cli(&["apps", "sync", "--live", list.to_str().unwrap()]);
    assert!(out.status.success(), "apps sync: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("unpinned 2 app(s), kept 3"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(w.apps(), &apps[..3]);
    // The same list again changes nothing: the unpinned apps are gone, not unpinned twice
    // (on the filesystem their empty folders stay behind, and are no apps).
    let v: LiveSyncAnswer = sync(&["app-0", "app-1", "app-2"], false).expect(200, "the same live list again").json();
    assert!(v.unpinned.is_empty(), "{v:?}");
    assert_eq!(v.kept, 3, "{v:?}");

    // 2 of 3 needs force.
    sync(&["app-0"], false).expect(409, "a live list dropping 2 of 3 apps");
    let v: LiveSyncAnswer = sync(&["app-0"], true).expect(200, "the same, forced").json();
    let unpinned: Vec<&str> = v.unpinned.iter().map(|a| a.as_str()).collect();
    assert_eq!(unpinned, ["app-1", "app-2"], "{v:?}");
    assert_eq!(v.kept, 1);
    assert_eq!(w.apps(), &apps[..1]);

    let report = w.gc(false);
    assert_eq!(removed(&report.manifests).0, 4, "report: {report:?}");
    assert_eq!(removed(&report.blobs).0, 12, "manifest, config and own layer of 4 apps: {report:?}");
    w.skopeo_pull_check(&skopeo, "apps/app-0", &images[0].digest, &images[0]);
    for (i, img) in images.iter().enumerate().skip(1) {
        w.http.get_manifest(&format!("apps/app-{i}"), &img.digest).expect(404, &format!("unpinned app-{i}"));
    }

    // Every app a live sync unpinned has the audit line a manual unpin writes (one staging
    // each), saying it came from a live sync; the refused syncs wrote none.
    let want: Vec<(String, u64, String)> = (1..5).map(|i| (format!("app-{i}"), 1, "live_sync".to_string())).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = audit_unpins(&w.server.log());
        if got == want || std::time::Instant::now() > deadline {
            assert_eq!(got, want, "the audit lines of the unpins");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// (app, unpinned stagings, via) of every `app_unpinned` audit line of a JSON log, sorted.
fn audit_unpins(log: &[String]) -> Vec<(String, u64, String)> {
    let mut v: Vec<(String, u64, String)> = log
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["target"] == "wharfage::audit" && l["fields"]["event"] == "app_unpinned")
        .map(|l| {
            let f = &l["fields"];
            (
                f["app"].as_str().unwrap_or("").to_string(),
                f["unpinned_stagings"].as_u64().unwrap_or(0),
                f["via"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn two_collections_at_once_break_nothing() {
    let w = Reg::fs(&quiet());
    let pool: Vec<Vec<u8>> = (0..6).map(|i| layer(30 + i, 24 << 10)).collect();
    let mut live = Vec::new();
    for i in 0..8usize {
        let own = layer(40 + i as u64, 8 << 10);
        let img = Img::new(&format!("live {i}"), &[&pool[i % 6], &pool[(i + 1) % 6], &own]);
        push(&w.http, &format!("two/r{}", i % 2), &format!("v{i}"), &img, Via::Post).unwrap();
        live.push((format!("two/r{}", i % 2), format!("v{i}"), img));
        // Garbage sharing the pool layers, in the same repositories.
        let junk = Img::new(&format!("junk {i}"), &[&pool[(i + 2) % 6], &layer(60 + i as u64, 8 << 10)]);
        push(&w.http, &format!("two/r{}", i % 2), &format!("junk{i}"), &junk, Via::Post).unwrap();
        w.http
            .send("DELETE", &format!("/v2/two/r{}/manifests/{}", i % 2, junk.digest), &[], Vec::new())
            .expect(202, "deleting a junk image");
    }
    let expected: BTreeSet<String> = live.iter().flat_map(|(_, _, img)| img.all_blobs().into_keys()).collect();
    assert!(w.blob_files().len() > expected.len());

    let barrier = std::sync::Barrier::new(2);
    let reports: Vec<GcReport> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    let r = w.http.send("POST", "/api/v1/gc", &[("content-type", "application/json")], Vec::new());
                    r.expect(200, "one of two collections at once").json()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let total: u64 = reports.iter().map(|r| removed(&r.blobs).0).sum();
    assert!(total >= 8 * 2, "the two collections removed {total} blobs together: {reports:?}");
    assert_eq!(w.blob_files().keys().cloned().collect::<BTreeSet<_>>(), expected, "blobs left after two collections at once");
    for (repo, tag, img) in &live {
        pull(&w.http, repo, tag, img).unwrap();
        pull(&w.http, repo, &img.digest, img).unwrap();
    }
    let third = w.gc(false);
    assert!(figures(&third).iter().all(|(_, (c, _))| *c == 0), "a third collection still found garbage: {third:?}");
    let (dir, backing) = w.stop();
    let report = super::fsck_json(dir.path(), &backing, &[]);
    assert_eq!(report["problems"], json!([]), "fsck after two collections at once: {report}");
    let flags = super::deletion_flags(&dir.path().join("root"));
    assert!(flags.is_empty(), "deletion flags or run folders left behind: {flags:?}");
}

/// Unpinning an app and collecting at once frees nothing for the grace period (1 h by
/// default): the report, `wharfage gc` and its dry run say what was kept, why ("younger than
/// the grace period (1h"), and from when it is collectable (staging time + 1 h).
#[test]
fn a_collection_right_after_an_unpin_says_what_it_kept_why_and_until_when() {
    let img = Img::new("kept app", &[&layer(70, 24 << 10), &layer(71, 8 << 10)]);
    let up = Reg::fs(&[]);
    push(&up.http, "src/kept", "v1", &img, Via::Post).unwrap();
    let w = Reg::fs(&["--insecure-registry".to_string(), up.host()]);
    let now_ms = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let before = now_ms();
    w.stage_ok(&format!("{}/src/kept:v1", up.host()), "kept-app");
    let after = now_ms();
    w.http.send("DELETE", "/api/v1/apps/kept-app", &[("content-type", "application/json")], Vec::new()).expect(200, "unpin");
    let files = w.blob_files();

    let report = w.gc(false);
    assert_eq!(removed(&report.blobs), (0, 0), "the grace period keeps the unpinned app: {report:?}");
    assert_eq!(w.blob_files(), files);
    let grace: Vec<&store::Kept> = report.kept.iter().filter(|k| k.by == store::KeptBy::Grace).collect();
    assert_eq!(grace.len(), 1, "{report:?}");
    let k = grace[0];
    assert_eq!((k.manifests, k.blobs), (1, 2 + img.layers.len() as u64), "manifest, config and layers: {k:?}");
    assert_eq!(k.bytes, files.values().sum::<u64>(), "every byte stored is the app's: {k:?}");
    assert!(k.why.contains("younger than the grace period (1h"), "{k:?}");
    let (from, by) = (k.collectable_from_ms.unwrap(), k.collectable_by_ms.unwrap());
    let hour = 3_600_000;
    assert!(
        before - 2_000 + hour <= from && from <= by && by <= after + 2_000 + hour,
        "collectable {from}..{by}, staged {before}..{after}"
    );
    assert!(report.kept.iter().all(|k| k.by == store::KeptBy::Grace), "nothing else holds anything: {report:?}");

    // The CLI says the same, dry run or not, with the time.
    let when = k.when().unwrap();
    assert!(when.starts_with("collectable from 20"), "{when}");
    for args in [&["gc", "--dry-run"][..], &["gc"][..]] {
        let out = w.cli(args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "wharfage {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let line = text.lines().find(|l| l.starts_with("kept") && l.contains("younger than the grace period (1h"));
        let line = line.unwrap_or_else(|| panic!("wharfage {args:?} names no reason:\n{text}"));
        assert!(line.contains(&format!("{} blobs", k.blobs)) && line.contains("collectable from 20"), "{line}");
    }
}
