//! `wharfage fsck` on a damaged filesystem store: one blob with a flipped byte, one deleted
//! blob, one orphan; exactly those three are reported, by digest and repository, and the exit
//! status is 1 for the damage but 0 for the orphan alone (a leftover, unless `--strict`). `--repair` moves the corrupt blob to `quarantine/`, a re-push restores it, and
//! the corrupt entry is gone.

use serde_json::{json, Value};

use super::{blob_path, fsck, fsck_json, layer, push, Backing, Img, Reg, Via};
use crate::skopeo::Skopeo;

/// The problems of a report as (kind, digest, repositories), sorted.
fn problems(report: &Value) -> Vec<(String, String, Vec<String>)> {
    let mut v: Vec<_> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let repos = p["repositories"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect();
            (p["kind"].as_str().unwrap().to_string(), p["digest"].as_str().unwrap().to_string(), repos)
        })
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<(String, String, Vec<String>)>) -> Vec<(String, String, Vec<String>)> {
    v.sort();
    v
}

fn p(kind: &str, digest: &str, repos: &[&str]) -> (String, String, Vec<String>) {
    (kind.to_string(), digest.to_string(), repos.iter().map(|r| r.to_string()).collect())
}

#[test]
fn fsck_reports_a_flipped_byte_a_deleted_blob_and_an_orphan_and_repair_quarantines() {
    let skopeo = Skopeo::new();
    let base = layer(50, 48 << 10);
    let x = Img::new("fsck x", &[&base, &layer(51, 40 << 10)]);
    let y = Img::new("fsck y", &[&base, &layer(52, 16 << 10)]);
    let orphan = layer(53, 4 << 10);
    let orphan_digest = crate::fixtures::sha256(&orphan);

    let w = Reg::fs(&[]);
    w.skopeo_push(&skopeo, &x, "fsck/one", "v1");
    push(&w.http, "fsck/two", "v1", &y, Via::Post).unwrap();
    // An orphan: stored, then unlinked from the only repository that had it.
    super::push_blob(&w.http, "fsck/one", &orphan_digest, &orphan, Via::Post).unwrap();
    w.http.send("DELETE", &format!("/v2/fsck/one/blobs/{orphan_digest}"), &[], Vec::new()).expect(202, "unlinking the orphan");
    let (dir, backing) = w.stop();
    let Backing::Fs(root) = &backing else { unreachable!() };

    let clean = fsck_json(dir.path(), &backing, &[]);
    assert_eq!(problems(&clean), vec![p("orphaned", &orphan_digest, &[])], "before any damage: {clean}");
    // An orphan is what every failed push leaves: reported, counted, exit 0; 1 with --strict.
    let (code, text, _) = fsck(dir.path(), &backing, &[]);
    assert_eq!(code, 0, "an orphan alone is no failure: {text}");
    assert!(text.contains("0 failure(s), 1 leftover(s)"), "{text}");
    let (code, _, stderr) = fsck(dir.path(), &backing, &["--strict"]);
    assert_eq!(code, 1, "--strict fails on leftovers: {stderr}");
    assert!(stderr.contains("fsck found 1 problem(s): leftovers (--strict)"), "{stderr}");

    // One flipped byte in x's own layer, y's own layer deleted.
    let corrupt = &x.layers[1];
    let deleted = &y.layers[1];
    let mut bytes = std::fs::read(blob_path(root, corrupt)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(blob_path(root, corrupt), &bytes).unwrap();
    std::fs::remove_file(blob_path(root, deleted)).unwrap();

    let expected =
        sorted(vec![p("corrupt", corrupt, &["fsck/one"]), p("missing", deleted, &["fsck/two"]), p("orphaned", &orphan_digest, &[])]);
    let report = fsck_json(dir.path(), &backing, &[]);
    assert_eq!(problems(&report), expected, "fsck --json: {report}");
    // x: manifest, config, 2 layers; y: manifest, config (its other layer deleted); the orphan.
    assert_eq!(report["blobs_checked"], 7, "{report}");
    assert_eq!(report["quarantined"], 0);
    // The text report says the same, one line per problem, and exits 1.
    let (code, text, stderr) = fsck(dir.path(), &backing, &[]);
    assert_eq!(code, 1, "fsck with problems: {text}\n{stderr}");
    assert!(stderr.contains("fsck found 2 problem(s): damaged or missing data"), "{stderr}");
    for (kind, digest, repos) in &expected {
        assert!(
            text.lines()
                .any(|l| l.starts_with(kind.as_str()) && l.contains(digest.as_str()) && repos.iter().all(|r| l.contains(r.as_str()))),
            "no line for {kind} {digest} in:\n{text}"
        );
    }
    assert_eq!(std::fs::read(blob_path(root, corrupt)).unwrap(), bytes, "fsck without --repair touched the corrupt blob");

    // --repair: the corrupt blob goes to quarantine/, byte for byte as it was.
    let repaired = fsck_json(dir.path(), &backing, &["--repair"]);
    assert_eq!(problems(&repaired), expected, "fsck --repair reports what it found: {repaired}");
    assert_eq!(repaired["quarantined"], 1);
    assert!(!blob_path(root, corrupt).exists(), "the corrupt blob is still under blobs/");
    assert_eq!(std::fs::read(root.join("quarantine/sha256").join(&corrupt[7..])).unwrap(), bytes);
    // Now it is simply missing, like the deleted one.
    let after = fsck_json(dir.path(), &backing, &[]);
    assert_eq!(
        problems(&after),
        sorted(vec![p("missing", corrupt, &["fsck/one"]), p("missing", deleted, &["fsck/two"]), p("orphaned", &orphan_digest, &[])]),
        "after --repair: {after}"
    );

    // Pushing the images again restores both blobs; a collection takes the orphan.
    let w = Reg::start(dir, backing, &super::quiet());
    w.skopeo_push(&skopeo, &x, "fsck/one", "v1");
    push(&w.http, "fsck/two", "v1", &y, Via::HeadThenPost).unwrap();
    w.skopeo_pull_check(&skopeo, "fsck/one", "v1", &x);
    w.skopeo_pull_check(&skopeo, "fsck/two", "v1", &y);
    let (dir, backing) = w.stop();
    let restored = fsck_json(dir.path(), &backing, &[]);
    assert_eq!(problems(&restored), vec![p("orphaned", &orphan_digest, &[])], "after re-pushing: {restored}");

    let w = Reg::start(dir, backing, &super::quiet());
    let gc = w.gc(false);
    assert_eq!(super::removed(&gc.blobs).0, 1, "{gc:?}");
    let (dir, backing) = w.stop();
    let whole = fsck_json(dir.path(), &backing, &[]);
    assert_eq!(whole["problems"], json!([]), "{whole}");
    let (code, text, _) = fsck(dir.path(), &backing, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("checked 7 blobs"), "{text}");
}

/// `fsck --root` of a folder that does not exist (a typo) is refused, naming the path, and
/// creates nothing; `serve` with no storage flag still creates its default data folder on a
/// first start, and `fsck` with no flag then checks that folder.
#[test]
fn fsck_refuses_a_missing_root_and_serve_still_creates_its_default_one() {
    let dir = crate::harness::tempdir();
    let typo = dir.path().join("wharfage-dta");
    let mut cmd = super::command(dir.path());
    cmd.args(["fsck", "--root"]).arg(&typo);
    let out = crate::harness::run(cmd, std::time::Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "fsck of a missing root succeeded: {}", String::from_utf8_lossy(&out.stdout));
    assert!(stderr.contains(&typo.display().to_string()) && stderr.contains("does not exist"), "{stderr}");
    assert!(!typo.exists(), "fsck created the root it was asked to check");
    // With no flag at all, the default root (./wharfage-data) does not exist yet either.
    let mut cmd = super::command(dir.path());
    cmd.arg("fsck");
    let out = crate::harness::run(cmd, std::time::Duration::from_secs(60));
    assert_ne!(out.status.code(), Some(0), "fsck of a missing default root succeeded");
    assert!(String::from_utf8_lossy(&out.stderr).contains("wharfage-data"), "{}", String::from_utf8_lossy(&out.stderr));

    let mut cmd = super::command(dir.path());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"]);
    let server = crate::harness::Server::spawn(cmd);
    assert!(dir.path().join("wharfage-data").is_dir(), "serve with no storage flag made no ./wharfage-data");
    server.stop();
    let mut cmd = super::command(dir.path());
    cmd.args(["fsck", "--json"]);
    let out = crate::harness::run(cmd, std::time::Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(0), "fsck of the default root serve made: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["problems"], json!([]), "{report}");
}
