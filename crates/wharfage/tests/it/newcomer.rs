//! A newcomer's first look: the start-up banner (where to reach the registry, open or not,
//! TLS or not, where the data goes) without escape codes when not on a terminal, `--help`
//! sections and the client environment, and `/metrics` with latencies, the store's size and
//! the process's figures.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::access::Secured;
use crate::client::Http;
use crate::harness::{self, run, Server};

/// `wharfage serve` with text logs as a newcomer runs it (no `--log-format`, no `NO_COLOR`),
/// stdout and stderr pipes: the banner on stdout, then the log on stderr, without ANSI escapes.
#[test]
fn serve_prints_a_banner_and_no_colours_off_a_terminal() {
    let dir = harness::tempdir();
    let mut cmd = harness::wharfage(dir.path());
    cmd.env_remove("NO_COLOR").args(["serve", "--listen", "127.0.0.1:0", "--root", "data"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let (stdout, stderr) = (child.0.stdout.take().unwrap(), child.0.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel::<(bool, String)>();
    for (is_out, pipe) in [(true, Box::new(stdout) as Box<dyn std::io::Read + Send>), (false, Box::new(stderr))] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send((is_out, line));
            }
        });
    }
    let (mut out, mut err) = (Vec::<String>::new(), Vec::<String>::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    // Until the banner's last line and the log's "serving" line are in.
    while !(out.iter().any(|l| l.trim_start().starts_with("storage")) && err.iter().any(|l| l.contains("wharfage is serving"))) {
        let left = deadline.checked_duration_since(Instant::now()).unwrap_or_else(|| panic!("no banner; stdout {out:?}, stderr {err:?}"));
        match rx.recv_timeout(left) {
            Ok((true, l)) => out.push(l),
            Ok((false, l)) => err.push(l),
            Err(_) => panic!("no banner; stdout {out:?}, stderr {err:?}"),
        }
    }
    let serving = err.iter().find(|l| l.contains("wharfage is serving")).unwrap();
    let addr = serving.split("addr=").nth(1).and_then(|v| v.split_whitespace().next()).unwrap_or_else(|| panic!("{serving}"));
    let banner = out.join("\n");
    assert!(out[0].starts_with(&format!("wharfage {} ", env!("CARGO_PKG_VERSION"))), "version first: {banner}");
    let line =
        |key: &str| out.iter().find(|l| l.trim_start().starts_with(key)).unwrap_or_else(|| panic!("no {key} line: {banner}")).clone();
    assert!(line("registry").contains(&format!("http://{addr}")), "{banner}");
    assert!(line("console").contains(&format!("http://{addr}/ui/")), "{banner}");
    assert!(line("access").contains("open"), "{banner}");
    assert!(line("transport").contains("plain HTTP"), "{banner}");
    let root = std::fs::canonicalize(dir.path()).unwrap().join("data");
    assert!(line("storage").contains(&format!("folder {}", root.display())), "the absolute folder: {banner}");
    for l in out.iter().chain(&err) {
        assert!(!l.contains('\u{1b}'), "an ANSI escape off a terminal: {l:?}");
    }
}

/// A child killed (and reaped) when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An access-controlled TLS server says so in its JSON start-up line (the banner's facts).
#[test]
fn the_serving_log_line_says_access_control_and_tls() {
    let s = Secured::start(&[]);
    let log = s.server.log().join("\n");
    let line = s.server.log().into_iter().find(|l| l.contains("wharfage is serving")).unwrap_or_else(|| panic!("{log}"));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    let f = &v["fields"];
    assert_eq!(f["access"], "access-controlled", "{line}");
    assert_eq!(f["tls"], true, "{line}");
    assert_eq!(f["url"], format!("https://{}", s.server.addr), "{line}");
    assert_eq!(f["version"], env!("CARGO_PKG_VERSION"), "{line}");
    assert!(!line.contains("stager") && !line.contains("$2"), "no user or hash: {line}");
}

#[test]
fn help_groups_serve_flags_and_names_the_client_environment() {
    let dir = harness::tempdir();
    let help = |args: &[&str]| {
        let mut cmd = harness::wharfage(dir.path());
        cmd.args(args);
        let out = run(cmd, Duration::from_secs(30));
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let serve = help(&["serve", "--help"]);
    let headings = [
        ("Listen and logs:", "--listen"),
        ("Storage:", "--root"),
        ("S3 storage (--storage s3):", "--s3-bucket"),
        ("Access control:", "--htpasswd"),
        ("TLS:", "--tls-cert"),
        ("Limits:", "--max-connections"),
        ("Garbage collection:", "--gc-interval"),
        ("Staging from upstream registries:", "--insecure-registry"),
        ("Mirror:", "--mirror"),
    ];
    // The section each flag is listed in: the last unindented `Heading:` line above it.
    let section_of = |flag: &str| {
        let mut section = "";
        for line in serve.lines() {
            if !line.starts_with(' ') && line.ends_with(':') {
                section = line;
            } else if line.trim_start().starts_with(&format!("{flag} ")) {
                return section;
            }
        }
        panic!("no {flag} in: {serve}")
    };
    for (heading, flag) in headings {
        assert_eq!(section_of(flag), heading, "{serve}");
    }
    for cmd in [&["stage", "--help"][..], &["apps", "--help"], &["gc", "--help"], &["mirror", "--help"]] {
        let text = help(cmd);
        for var in ["WHARFAGE_USERNAME", "WHARFAGE_PASSWORD", "WHARFAGE_PASSWORD_FILE", "WHARFAGE_CA_CERT", "WHARFAGE_SERVER"] {
            assert!(text.contains(var), "{cmd:?} names {var}: {text}");
        }
    }
}

/// The value of an unlabelled sample in a metrics text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
}

#[test]
fn metrics_have_latency_histograms_store_size_and_process_figures() {
    let dir = harness::tempdir();
    let server = Server::start(&dir.path().join("root"));
    let http = Http::new(server.addr);
    http.get("/v2/").expect(200, "the base endpoint");
    // Large enough that hashing and storing it takes the server several of the kernel's
    // 10 ms CPU ticks: with a few small requests its CPU time could still read 0.0.
    let blob: Vec<u8> = (0..32u32 << 20).map(|i| (i % 251) as u8).collect();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&blob)));
    http.send("POST", &format!("/v2/m/blobs/uploads/?digest={digest}"), &[("content-type", "application/octet-stream")], blob.clone())
        .expect(201, "a monolithic blob upload");
    http.send("POST", "/api/v1/gc", &[("content-type", "application/json")], br#"{"dry_run":false}"#.to_vec()).expect(200, "a collection");

    // The collection's usage walk runs in the background: wait for its figure.
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let text = http.get("/metrics").expect(200, "/metrics").text();
        if sample(&text, "wharfage_stored_bytes") == Some(blob.len() as f64) || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(sample(&text, "wharfage_stored_bytes"), Some(blob.len() as f64), "the blob kept by the collection: {text}");
    assert_eq!(sample(&text, "wharfage_stored_blobs"), Some(1.0), "{text}");
    for needle in [
        "# TYPE wharfage_http_request_duration_seconds histogram",
        r#"wharfage_http_request_duration_seconds_count{route="v2_base",method="GET"} 1"#,
        r#"wharfage_http_request_duration_seconds_count{route="upload",method="POST"} 1"#,
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let bucket = text.lines().find(|l| {
        l.starts_with("wharfage_http_request_duration_seconds_bucket{") && l.contains(r#"route="v2_base""#) && l.contains(r#"le="0.005""#)
    });
    assert!(bucket.is_some(), "a 5 ms bucket of the base endpoint's GETs: {text}");
    let rss = sample(&text, "process_resident_memory_bytes").unwrap_or_else(|| panic!("{text}"));
    assert!(rss > 1e6, "a resident size in bytes: {rss}");
    let fds = sample(&text, "process_open_fds").unwrap_or_else(|| panic!("{text}"));
    assert!(fds >= 3.0, "{fds}");
    assert!(sample(&text, "process_cpu_seconds_total").is_some_and(|c| c > 0.0), "{text}");
    let start = sample(&text, "process_start_time_seconds").unwrap_or_else(|| panic!("{text}"));
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(start <= now + 1.0 && start > now - 600.0, "started within this test: {start} vs {now}");
}
