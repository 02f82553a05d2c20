//! The pull-through mirror against Debian's `docker-registry` as the upstream (through the
//! fault-injecting proxy where a test needs to count or corrupt what the upstream sends):
//! the three addressings, read-only mirrored repositories, unconfigured registries refused
//! without a connection, serving while the upstream is gone, tags that age, concurrent cold
//! pulls sharing one fetch that streams before it completes, and a corrupt upstream blob
//! that no client receives whole and the store never keeps.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::client::{ErrorBodyExt, Resp};
use crate::fixtures::{sha256, Rng, OCI_MANIFEST};
use crate::skopeo::Skopeo;
use crate::staging::images::{image, layer};
use crate::staging::proxy::{Faults, Proxy};
use crate::staging::upstream::{Mode, Upstream};
use crate::staging::{layout, Wharf};

const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// Pushes a one-platform image with layers of `sizes` bytes to the upstream as `repo:tag`;
/// returns its manifest digest and layer digests.
fn push(up: &Upstream, scratch: &std::path::Path, repo: &str, tag: &str, seed: u64, sizes: &[usize]) -> (String, Vec<String>) {
    let mut l = layout(&scratch.join(format!("src-{seed}")));
    let mut rng = Rng::new(seed);
    let layers: Vec<_> = sizes.iter().enumerate().map(|(i, s)| layer(&mut l, &mut rng, &format!("f{i}.bin"), *s)).collect();
    let refs: Vec<_> = layers.iter().collect();
    let img = image(&mut l, "amd64", &refs);
    l.tag(tag, OCI_MANIFEST, &img.digest);
    up.push(&Skopeo::new(), &l, tag, repo);
    (img.digest.clone(), img.layers.clone())
}

/// wharfage with one `[[mirror]]` table (its body given) and collections that keep nothing
/// for age alone (no grace, no protect window), plus `extra` flags.
fn collecting_mirror(scratch: &std::path::Path, table: &str, extra: &[String]) -> Wharf {
    let config = scratch.join("wharfage.toml");
    std::fs::write(&config, format!("[[mirror]]\n{table}")).unwrap();
    let mut args = vec!["--config".to_string(), config.to_string_lossy().into_owned()];
    args.extend(["--gc-grace", "0s", "--gc-protect-window", "0s"].map(String::from));
    args.extend_from_slice(extra);
    Wharf::start(&args)
}

fn manifest(wharf: &Wharf, path: &str) -> Resp {
    wharf.http.send("GET", path, &[("accept", ACCEPT)], Vec::new())
}

fn digest_of(r: &Resp) -> String {
    r.header("docker-content-digest").unwrap_or_default().to_string()
}

/// Where the store keeps a blob's bytes (filesystem backend).
fn blob_file(wharf: &Wharf, digest: &str) -> std::path::PathBuf {
    let hex = digest.trim_start_matches("sha256:");
    wharf.root.join("blobs/sha256").join(&hex[..2]).join(hex)
}

#[test]
fn mirror_serves_every_addressing_and_outlives_its_upstream() {
    let mut up = Upstream::start(Mode::Anonymous);
    let scratch = tempfile::tempdir().unwrap();
    let (digest, layers) = push(&up, scratch.path(), "library/web", "v1", 2001, &[3_000_000, 20_000]);
    let wharf = Wharf::start(&["--mirror".into(), format!("docker.io=http://{}", up.host())]);
    let skopeo = Skopeo::new();

    // A registries.conf mirror (path prefix), byte for byte.
    let pulled = wharf.pull(&skopeo, &format!("{}/docker.io/library/web:v1", wharf.host()), "prefix");
    assert!(pulled.contains_key(&digest), "the upstream's manifest digest is kept");
    for l in &layers {
        assert!(pulled.contains_key(l), "layer {l} pulled through the mirror");
        assert!(blob_file(&wharf, l).exists(), "layer {l} is cached in the store");
    }
    // containerd's `?ns=`, and dockerd's registry-mirrors (no registry named: the default).
    for path in ["/v2/library/web/manifests/v1?ns=docker.io", "/v2/library/web/manifests/v1"] {
        let r = manifest(&wharf, path);
        assert_eq!((r.status, digest_of(&r)), (200, digest.clone()), "{path}: {}", r.text());
    }
    let r = wharf.http.get(&format!("/v2/library/web/blobs/{}?ns=docker.io", layers[1]));
    assert_eq!((r.status, sha256(&r.body)), (200, layers[1].clone()));

    // Only configured registries; mirrored repositories are read-only.
    let r = manifest(&wharf, "/v2/library/web/manifests/v1?ns=ghcr.io");
    assert_eq!((r.status, r.error().code.as_str()), (404, "NAME_UNKNOWN"), "{}", r.text());
    assert!(r.text().contains("ghcr.io"));
    for (method, path) in [
        ("POST", "/v2/docker.io/library/web/blobs/uploads/".to_string()),
        ("PUT", "/v2/docker.io/library/web/manifests/v2".to_string()),
        ("DELETE", format!("/v2/docker.io/library/web/manifests/{digest}")),
        ("POST", format!("/v2/library/web/blobs/uploads/?ns=docker.io&mount={}&from=x/y", layers[0])),
    ] {
        let r = wharf.http.send(method, &path, &[("content-type", OCI_MANIFEST)], b"{}".to_vec());
        assert_eq!((r.status, r.error().code.as_str()), (405, "UNSUPPORTED"), "{method} {path}: {}", r.text());
        assert!(r.text().contains("mirror of docker.io"), "the answer names the mirror: {}", r.text());
    }

    // The upstream goes away: what was pulled is still served, by every addressing.
    up.stop();
    let again = wharf.pull(&skopeo, &format!("{}/docker.io/library/web:v1", wharf.host()), "offline");
    assert_eq!(again, pulled, "the same bytes with the upstream gone");
    let r = manifest(&wharf, "/v2/library/web/manifests/v1?ns=docker.io");
    assert_eq!((r.status, digest_of(&r)), (200, digest.clone()));
    // A name nobody pulled cannot come from a stopped upstream.
    let r = manifest(&wharf, "/v2/docker.io/library/other/manifests/v1");
    assert_eq!(r.status, 502, "{}", r.text());

    // `wharfage mirror ls`: the mirror, its failing upstream, the image with its size.
    let ls = std::process::Command::new(crate::harness::BIN)
        .args(["mirror", "ls", "--server", &format!("http://{}", wharf.host())])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ls.stdout);
    assert!(ls.status.success(), "{text}{}", String::from_utf8_lossy(&ls.stderr));
    assert!(text.contains("docker.io (default)") && text.contains("failing"), "{text}");
    assert!(text.contains("docker.io/library/web:v1") && text.contains(&digest), "{text}");
    let json = std::process::Command::new(crate::harness::BIN)
        .args(["mirror", "ls", "--json", "--server", &format!("http://{}", wharf.host())])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let image = &v["mirrors"][0]["images"][0];
    assert_eq!(image["digest"], serde_json::json!(digest));
    assert!(image["stored_bytes"].as_u64().unwrap() > 3_000_000, "{image}");
    assert!(image["last_pull_ms"].as_u64().is_some(), "the pull was recorded: {image}");
    // The console's Mirrors page shows the same.
    let page = wharf.http.get("/ui/mirrors");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("docker.io") && html.contains("failing") && html.contains("docker.io/library/web:v1"), "{html}");
    // And the overview counts the mirrored bytes (the image is about 3 MB).
    let overview = wharf.http.get("/ui/").text();
    let stat = overview.split("id=\"mirrored\"").nth(1).expect("a Mirrored figure on the overview");
    assert!(stat[..stat.find("</span>").unwrap()].contains("MB"), "{stat}");
}

#[test]
fn a_restarted_mirror_serves_what_it_pulled_while_the_upstream_is_down() {
    let mut up = Upstream::start(Mode::Anonymous);
    let scratch = tempfile::tempdir().unwrap();
    let (digest, _) = push(&up, scratch.path(), "library/db", "v1", 2051, &[2_000_000, 30_000]);
    let args = ["--mirror".to_string(), format!("docker.io=http://{}", up.host())];
    let wharf = Wharf::start(&args);
    let skopeo = Skopeo::new();
    let pulled = wharf.pull(&skopeo, &format!("{}/docker.io/library/db:v1", wharf.host()), "before");
    assert!(pulled.contains_key(&digest));

    // The blobs went through the mirror's spool under the store's tmp/: a restart (an
    // upgrade, a reboot) must start on that root and keep serving the mirrored image.
    up.stop();
    let wharf = wharf.restart(&args);
    let again = wharf.pull(&skopeo, &format!("{}/library/db:v1", wharf.host()), "after");
    assert_eq!(again, pulled, "the same image after the restart, the upstream gone");
}

#[test]
fn mirrored_tags_age_and_are_served_stale_while_the_upstream_fails() {
    let mut up = Upstream::start(Mode::Anonymous);
    let scratch = tempfile::tempdir().unwrap();
    let (first, _) = push(&up, scratch.path(), "team/app", "v1", 2101, &[10_000]);
    let config = scratch.path().join("wharfage.toml");
    std::fs::write(
        &config,
        format!("[[mirror]]\nregistry = \"registry.example.com:5000\"\nurl = \"http://{}\"\ntag_ttl = \"1s\"\n", up.host()),
    )
    .unwrap();
    let wharf = Wharf::start(&["--config".into(), config.to_string_lossy().into_owned()]);
    let path = "/v2/registry.example.com:5000/team/app/manifests/v1";
    assert_eq!(digest_of(&manifest(&wharf, path)), first);

    // The tag moves upstream: within tag_ttl the old digest is served, after it the new one.
    let (second, _) = push(&up, scratch.path(), "team/app", "v1", 2102, &[11_000]);
    assert_ne!(first, second);
    assert_eq!(digest_of(&manifest(&wharf, path)), first, "trusted for tag_ttl");
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(digest_of(&manifest(&wharf, path)), second, "asked again after tag_ttl");
    // The name as stored (`:` written `-`) is the same repository.
    assert_eq!(digest_of(&manifest(&wharf, "/v2/registry.example.com-5000/team/app/manifests/v1")), second);

    // The upstream fails: the stored tag is served, and counted.
    up.stop();
    std::thread::sleep(Duration::from_millis(1200));
    let r = manifest(&wharf, path);
    assert_eq!((r.status, digest_of(&r)), (200, second), "serve-stale: {}", r.text());
    let metrics = wharf.http.get("/metrics").text();
    assert!(
        metrics.lines().any(|l| l.starts_with("wharfage_mirror_requests_total{") && l.contains("event=\"stale\"") && !l.ends_with(" 0")),
        "stale serves are counted:\n{metrics}"
    );
}

/// Reads an HTTP/1.1 response to `GET path` on a socket of its own: the declared length,
/// the body as received (short if the connection was cut), and how long the first body byte
/// and the last took.
fn raw_get(addr: std::net::SocketAddr, path: &str, on_first_byte: impl FnOnce()) -> (usize, Vec<u8>) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: wharfage\r\nconnection: close\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut head_end = None;
    let mut first = Some(on_first_byte);
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        got.extend_from_slice(&buf[..n]);
        if head_end.is_none() {
            head_end = got.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
        }
        if head_end.is_some_and(|h| got.len() > h) {
            if let Some(f) = first.take() {
                f();
            }
        }
    }
    let h = head_end.expect("a response head");
    let head = String::from_utf8_lossy(&got[..h]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let len = head.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse().unwrap()).expect("content-length");
    (len, got[h..].to_vec())
}

#[test]
fn concurrent_cold_pulls_share_one_upstream_fetch_that_streams_as_it_comes() {
    let up = Upstream::start(Mode::Anonymous);
    let scratch = tempfile::tempdir().unwrap();
    let (_, layers) = push(&up, scratch.path(), "library/big", "v1", 2201, &[64 << 20]);
    let big = layers[0].clone();
    // 64 MiB at 16 MiB/s on one connection (no parallel ranges): the upstream needs four
    // seconds for the layer, so "before it was stored" does not hang on scheduling luck.
    let proxy = Proxy::start(up.port, Faults { blob_rate: Some(16 << 20), ..Faults::default() });
    let wharf =
        Wharf::start(&["--mirror".into(), format!("docker.io=http://{}", proxy.host()), "--upstream-range-size".into(), "0".into()]);
    let addr = wharf.server.addr;
    let path = format!("/v2/docker.io/library/big/blobs/{big}");
    let file = blob_file(&wharf, &big);

    let clients: Vec<_> = (0..8)
        .map(|i| {
            let (path, file) = (path.clone(), file.clone());
            std::thread::spawn(move || {
                let mut complete_at_first_byte = None;
                let (len, body) = raw_get(addr, &path, || complete_at_first_byte = Some(file.exists()));
                (i, len, body, complete_at_first_byte)
            })
        })
        .collect();
    for c in clients {
        let (i, len, body, complete_at_first_byte) = c.join().unwrap();
        assert_eq!(body.len(), len, "client {i} got the whole layer");
        assert_eq!(sha256(&body), big, "client {i} got the right bytes");
        assert_eq!(complete_at_first_byte, Some(false), "client {i}'s first byte came before the layer was stored");
    }
    // One fetch: its requests (one, or the ranges of a parallel download) ask for the
    // layer's bytes exactly once between them.
    let size = std::fs::metadata(&file).unwrap().len();
    let asked: u64 = proxy
        .heads()
        .iter()
        .filter(|h| h.starts_with("GET ") && h.contains(&big))
        .map(|h| {
            let range = h.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("range: bytes=").map(str::to_string));
            match range.and_then(|r| r.split_once('-').map(|(a, b)| (a.parse::<u64>().unwrap(), b.parse::<u64>().unwrap()))) {
                Some((first, last)) => last - first + 1,
                None => size,
            }
        })
        .sum();
    assert_eq!(asked, size, "eight clients, the layer's bytes asked of the upstream once");
    assert_eq!(proxy.blob_gets(), 1, "in one request");
    assert!(file.exists(), "the layer is cached");
    let metrics = wharf.http.get("/metrics").text();
    assert!(metrics.contains("event=\"coalesced\""), "followers are counted:\n{metrics}");
}

#[test]
fn a_corrupt_upstream_blob_reaches_no_client_whole_and_is_never_stored() {
    let up = Upstream::start(Mode::Anonymous);
    let scratch = tempfile::tempdir().unwrap();
    let (_, layers) = push(&up, scratch.path(), "library/flaky", "v1", 2301, &[2_000_000]);
    let blob = layers[0].clone();
    let proxy = Proxy::start(up.port, Faults::default());
    let wharf = Wharf::start(&["--mirror".into(), format!("docker.io=http://{}", proxy.host())]);
    let path = format!("/v2/docker.io/library/flaky/blobs/{blob}");

    proxy.corrupt_blobs(true);
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let (addr, path) = (wharf.server.addr, path.clone());
            std::thread::spawn(move || raw_get(addr, &path, || {}))
        })
        .collect();
    for c in clients {
        let (len, body) = c.join().unwrap();
        assert!(body.len() < len, "the stream ends before its last byte ({} of {len})", body.len());
    }
    assert!(!blob_file(&wharf, &blob).exists(), "nothing is stored under a digest the bytes do not have");
    let fsck = std::process::Command::new(crate::harness::BIN).args(["fsck", "--root"]).arg(&wharf.root).output().unwrap();
    assert!(fsck.status.success(), "fsck is clean: {}{}", String::from_utf8_lossy(&fsck.stdout), String::from_utf8_lossy(&fsck.stderr));

    // Repaired upstream: the next pull succeeds.
    proxy.corrupt_blobs(false);
    let r = wharf.http.get(&path);
    assert!(blob_file(&wharf, &blob).exists());
    assert_eq!((r.status, sha256(&r.body)), (200, blob));
}

#[test]
fn mirrored_names_follow_the_access_rules() {
    let up = Upstream::start(Mode::Anonymous);
    let scratch = tempfile::tempdir().unwrap();
    let (digest, _) = push(&up, scratch.path(), "library/web", "v1", 2401, &[10_000]);
    let users = [("root", "root-pw-m1"), ("node", "node-pw-m2"), ("other", "other-pw-m3")];
    let htpasswd: String = users.iter().map(|(u, p)| format!("{u}:{}\n", bcrypt::hash(p, 4).unwrap())).collect();
    std::fs::write(scratch.path().join("htpasswd"), htpasswd).unwrap();
    let config = format!(
        "admins = [\"root\"]\n\n[[access]]\nusers = [\"node\"]\nrepositories = [\"docker.io/**\"]\nactions = [\"pull\"]\n\n\
         [[mirror]]\nregistry = \"docker.io\"\nurl = \"http://{}\"\ndefault = true\n",
        up.host()
    );
    std::fs::write(scratch.path().join("wharfage.toml"), config).unwrap();
    let path = |f: &str| scratch.path().join(f).to_string_lossy().into_owned();
    let wharf = Wharf::start(&["--htpasswd".into(), path("htpasswd"), "--config".into(), path("wharfage.toml")]);
    let basic = |u: &str, p: &str| {
        use base64::Engine as _;
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")))
    };
    let get = |target: &str, auth: Option<String>| {
        let mut h = vec![("accept", ACCEPT.to_string())];
        if let Some(a) = auth {
            h.push(("authorization", a));
        }
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        wharf.http.send("GET", target, &h, Vec::new())
    };
    let m = "/v2/docker.io/library/web/manifests/v1";
    assert_eq!(get(m, None).status, 401, "nothing is anonymous unless a rule says so");
    assert_eq!(get(m, Some(basic("other", users[2].1))).status, 403, "a user without a rule on docker.io/**");
    for target in [m, "/v2/library/web/manifests/v1?ns=docker.io", "/v2/library/web/manifests/v1"] {
        let r = get(target, Some(basic("node", users[1].1)));
        assert_eq!((r.status, digest_of(&r)), (200, digest.clone()), "{target}: {}", r.text());
    }
    let push = |u: &str, p: &str| {
        let a = basic(u, p);
        wharf.http.send("POST", "/v2/docker.io/library/web/blobs/uploads/", &[("authorization", &a)], Vec::new())
    };
    assert_eq!(push("node", users[1].1).status, 403, "pull only");
    assert_eq!(push("root", users[0].1).status, 405, "even an admin cannot push into a mirror");
}

#[test]
fn retention_collects_what_was_not_pulled_and_keeps_what_was_and_every_pin() {
    let mut up = Upstream::start(Mode::Anonymous);
    let scratch = tempfile::tempdir().unwrap();
    let (a, a_layers) = push(&up, scratch.path(), "library/a", "v1", 2501, &[30_000]);
    let (b, _) = push(&up, scratch.path(), "library/b", "v1", 2502, &[31_000]);
    let (pinned, pinned_layers) = push(&up, scratch.path(), "library/pinned", "v1", 2503, &[32_000]);
    // The upstream mirrored under its own name, so an app can be staged "from" the mirrored
    // registry; its images are addressed by the stored name (`127.0.0.1-PORT/...`).
    let table = format!("registry = \"{0}\"\nurl = \"http://{0}\"\nretention = \"5s\"\n", up.host());
    let wharf = collecting_mirror(scratch.path(), &table, &crate::staging::insecure(&[up.host()]));
    let skopeo = Skopeo::new();
    let mirrored = format!("{}/{}", wharf.host(), up.host().replace(':', "-"));
    for name in ["a", "b", "pinned"] {
        wharf.pull(&skopeo, &format!("{mirrored}/library/{name}:v1"), &format!("first-{name}"));
    }
    // An app pinned from the same upstream image as a mirrored one.
    let staged = wharf.stage_ok(&format!("{}/library/pinned:v1", up.host()), "web", serde_json::json!({}));
    assert_eq!(staged.record.digest.to_string(), pinned);
    assert_eq!(staged.record.bytes_downloaded, 0, "the mirror held every blob: the staging downloads none");
    assert!(staged.record.bytes_reused > 32_000, "and counts them as reused: {}", staged.record.bytes_reused);

    // b is pulled again halfway; a and pinned are not.
    std::thread::sleep(Duration::from_millis(2500));
    wharf.pull(&skopeo, &format!("{mirrored}/library/b:v1"), "again-b");
    std::thread::sleep(Duration::from_millis(3000));
    up.stop();
    let gc = wharf.http.send("POST", "/api/v1/gc", &[("content-type", "application/json")], Vec::new());
    assert_eq!(gc.status, 200, "{}", gc.text());

    let key = up.host().replace(':', "-");
    let r = manifest(&wharf, &format!("/v2/{key}/library/a/manifests/{a}"));
    assert_eq!(r.status, 502, "a was not pulled within retention: collected, and its upstream is gone: {}", r.text());
    assert!(!blob_file(&wharf, &a_layers[0]).exists(), "a's layer is gone");
    let again = wharf.pull(&skopeo, &format!("{mirrored}/library/b:v1"), "kept-b");
    assert!(again.contains_key(&b), "b was pulled within retention: kept whole");
    // Not pulled within retention, but an app was staged from it: the mirror keeps it too.
    let r = manifest(&wharf, &format!("/v2/{key}/library/pinned/manifests/{pinned}"));
    assert_eq!((r.status, digest_of(&r)), (200, pinned.clone()), "{}", r.text());
    // The pin keeps its image, whatever happened to the mirror's copy.
    let app = wharf.pull(&skopeo, &staged.image, "app");
    assert!(app.contains_key(&pinned) && app.contains_key(&pinned_layers[0]));
}

#[test]
fn a_size_cap_evicts_the_least_recently_pulled_first() {
    let mut up = Upstream::start(Mode::Anonymous);
    let scratch = tempfile::tempdir().unwrap();
    let (old, old_layers) = push(&up, scratch.path(), "library/old", "v1", 2601, &[30_000]);
    let (new, _) = push(&up, scratch.path(), "library/new", "v1", 2602, &[31_000]);
    // Room for one of the two images (each is about 32 kB), not both.
    let table = format!("registry = \"docker.io\"\nurl = \"http://{}\"\nmax_size = \"45KiB\"\n", up.host());
    let wharf = collecting_mirror(scratch.path(), &table, &[]);
    let skopeo = Skopeo::new();
    wharf.pull(&skopeo, &format!("{}/docker.io/library/old:v1", wharf.host()), "old");
    std::thread::sleep(Duration::from_millis(1100));
    wharf.pull(&skopeo, &format!("{}/docker.io/library/new:v1", wharf.host()), "new");
    std::thread::sleep(Duration::from_millis(300));
    up.stop();
    assert_eq!(wharf.http.send("POST", "/api/v1/gc", &[("content-type", "application/json")], Vec::new()).status, 200);
    let r = manifest(&wharf, &format!("/v2/docker.io/library/new/manifests/{new}"));
    assert_eq!((r.status, digest_of(&r)), (200, new), "the most recently pulled image fits and stays");
    let r = manifest(&wharf, &format!("/v2/docker.io/library/old/manifests/{old}"));
    assert_eq!(r.status, 502, "the older one was evicted: {}", r.text());
    assert!(!blob_file(&wharf, &old_layers[0]).exists());
}

#[test]
fn a_private_upstream_over_tls_is_mirrored_with_credentials_that_stay_secret() {
    use crate::staging::upstream::{PASSWORD, USER};
    let up = Upstream::start(Mode::PrivateTls);
    let scratch = tempfile::tempdir().unwrap();
    let (digest, layers) = push(&up, scratch.path(), "team/app", "v1", 2701, &[50_000]);
    let secret = scratch.path().join("upstream-password");
    std::fs::write(&secret, format!("{PASSWORD}\n")).unwrap();
    let config = scratch.path().join("wharfage.toml");
    std::fs::write(
        &config,
        format!(
            "[[mirror]]\nregistry = \"registry.example.com:5000\"\nurl = \"https://{}\"\nusername = \"{USER}\"\npassword_file = \"{}\"\n",
            up.host(),
            secret.display()
        ),
    )
    .unwrap();
    let wharf = Wharf::start(&[
        "--config".into(),
        config.to_string_lossy().into_owned(),
        "--upstream-ca".into(),
        up.ca_pem().to_string_lossy().into_owned(),
    ]);
    let r = manifest(&wharf, "/v2/team/app/manifests/v1?ns=registry.example.com:5000");
    assert_eq!((r.status, digest_of(&r)), (200, digest.clone()), "{}", r.text());
    let b = wharf.http.get(&format!("/v2/registry.example.com-5000/team/app/blobs/{}", layers[0]));
    assert_eq!((b.status, sha256(&b.body)), (200, layers[0].clone()));
    // The password is in memory only: not in the store, not in the log.
    let mut leaked = Vec::new();
    for e in walkdir(&wharf.root) {
        if std::fs::read(&e).is_ok_and(|bytes| bytes.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes())) {
            leaked.push(e);
        }
    }
    assert!(leaked.is_empty(), "the upstream password is stored in {leaked:?}");
    assert!(!wharf.server.log().iter().any(|l| l.contains(PASSWORD)), "the upstream password is in the log");
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walkdir(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
