//! The pull-through mirror with real engines from Debian, each configured as docs/mirror.md
//! says: containerd (`ctr images pull --hosts-dir`, a `hosts.toml` naming wharfage, which
//! adds `?ns=docker.io`), podman (a `registries.conf` mirror with the `docker.io` path
//! prefix) and dockerd (`--registry-mirror`: Docker Hub names go to the default mirror).
//! A Debian `docker-registry` plays Docker Hub. All three pull and run an image through
//! wharfage, which fetches its layer once; the tag moves upstream and is seen only after
//! `tag_ttl`; the upstream goes away and all three pull again from wharfage alone.
//!
//! Each engine's own way to Docker Hub is pointed at a dead loopback port, so a pull can
//! succeed only through wharfage and no test traffic leaves the machine: containerd's
//! `server`, podman's registry `location`, dockerd's `HTTPS_PROXY` (dockerd falls back to
//! the Hub when a mirror fails).

use std::time::{Duration, Instant};

use crate::client::Http;
use crate::engines::{text, Containerd, Dockerd, Podman};
use crate::fixtures::{Layout, OCI_MANIFEST};
use crate::skopeo::Skopeo;
use crate::staging::images::{file_layer, image_with, Layer};
use crate::staging::upstream::{Mode, Upstream};
use crate::staging::{layout, Wharf};

/// How long wharfage trusts a tag's digest here.
const TAG_TTL: Duration = Duration::from_secs(5);

/// A port nothing listens on: where each engine's direct way to Docker Hub leads.
const DEAD: &str = "127.0.0.1:1";

#[track_caller]
fn ok(what: &str, o: std::process::Output) -> String {
    assert!(o.status.success(), "{what} failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Adds an image of the busybox `layer` that prints `says` and exits; its manifest digest.
fn app(l: &mut Layout, layer: &Layer, says: &str) -> String {
    image_with(l, "amd64", &[layer], serde_json::json!({ "Cmd": ["/bin/busybox", "echo", says] })).digest
}

/// `wharfage_mirror_requests_total{registry="docker.io", event}` now.
fn requests(wharf: &Wharf, event: &str) -> u64 {
    let metrics = wharf.http.get("/metrics").text();
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("wharfage_mirror_requests_total{")
                && l.contains("registry=\"docker.io\"")
                && l.contains(&format!("event=\"{event}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Every request wharfage answered from the mirror so far (hits, misses, stale serves).
fn served(wharf: &Wharf) -> u64 {
    ["hit", "miss", "stale"].iter().map(|e| requests(wharf, e)).sum()
}

/// The three engines, configured to pull `docker.io` through wharfage.
struct Engines {
    ctrd: Containerd,
    hosts: String,
    podman: Podman,
    docker: Dockerd,
}

const CTR_IMAGE: &str = "docker.io/library/app:v1";
const DOCKER_IMAGE: &str = "library/app:v1";

impl Engines {
    fn start(dir: &std::path::Path, wharfage: &str) -> Engines {
        let ctrd = Containerd::start(dir);
        let hosts = dir.join("ctr-hosts");
        std::fs::create_dir_all(hosts.join("docker.io")).unwrap();
        std::fs::write(
            hosts.join("docker.io/hosts.toml"),
            format!("server = \"http://{DEAD}\"\n\n[host.\"http://{wharfage}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"),
        )
        .unwrap();
        let podman = Podman::new(dir);
        std::fs::write(
            dir.join("podman/registries.conf"),
            format!(
                "[[registry]]\nprefix = \"docker.io\"\nlocation = \"{DEAD}\"\ninsecure = true\n\n\
                 [[registry.mirror]]\nlocation = \"{wharfage}/docker.io\"\ninsecure = true\n"
            ),
        )
        .unwrap();
        let proxy = format!("http://{DEAD}");
        let mirror = format!("http://{wharfage}");
        let docker = Dockerd::start_with(
            dir,
            &["--registry-mirror", &mirror],
            &[("HTTPS_PROXY", &proxy), ("HTTP_PROXY", &proxy), ("NO_PROXY", "127.0.0.1,localhost")],
        );
        Engines { ctrd, hosts: hosts.to_string_lossy().into_owned(), podman, docker }
    }

    /// Pulls with containerd; the digest it recorded for the image.
    fn ctr_pull(&self) -> String {
        ok("ctr pull", self.ctrd.ctr(&["images", "pull", "--hosts-dir", &self.hosts, CTR_IMAGE]));
        let ls = ok("ctr images ls", self.ctrd.ctr(&["images", "ls"]));
        let row = ls.lines().find(|l| l.starts_with(&format!("{CTR_IMAGE} "))).unwrap_or_else(|| panic!("{CTR_IMAGE} in:\n{ls}"));
        row.split_whitespace().find(|w| w.starts_with("sha256:")).expect("a digest column").to_string()
    }

    fn ctr_run(&self) -> String {
        ok("ctr run", self.ctrd.run(&["--rm", CTR_IMAGE, &testkit::unique("app")]))
    }

    fn ctr_rm(&self) {
        ok("ctr images rm", self.ctrd.ctr(&["images", "rm", "--sync", CTR_IMAGE]));
    }

    fn podman_pull(&self) -> String {
        ok("podman pull", self.podman.podman(&["pull", "--signature-policy", &self.podman.policy(), CTR_IMAGE]));
        ok("podman inspect", self.podman.podman(&["image", "inspect", "--format", "{{.Digest}}", CTR_IMAGE])).trim().to_string()
    }

    fn podman_run(&self) -> String {
        let limits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"];
        let mut args = vec!["run", "--rm", "--pull", "never", "--network", "none"];
        args.extend(limits);
        args.push(CTR_IMAGE);
        ok("podman run", self.podman.podman(&args))
    }

    /// Removes every image (the one before the tag moved too, which shares the layer).
    fn podman_rm(&self) {
        ok("podman rmi", self.podman.podman(&["rmi", "-af"]));
    }

    fn docker_pull(&self) -> String {
        ok("docker pull", self.docker.docker(&["pull", DOCKER_IMAGE]));
        ok("docker inspect", self.docker.docker(&["image", "inspect", "--format", "{{json .RepoDigests}}", DOCKER_IMAGE]))
    }

    fn docker_run(&self) -> String {
        ok("docker run", self.docker.docker(&["run", "--rm", "--pull", "never", "--network", "none", DOCKER_IMAGE]))
    }

    /// Removes every image (the one before the tag moved too, which shares the layer).
    fn docker_rm(&self) {
        ok("docker image prune", self.docker.docker(&["image", "prune", "-af"]));
    }
}

#[test]
fn mirror_engines_pull_and_run_through_wharfage_and_outlive_the_upstream() {
    let work = tempfile::Builder::new().prefix("wme-").tempdir_in("/tmp").unwrap();

    // 1. Docker Hub's stand-in holds library/app:v1 (prints v1) and, under another tag, the
    // image the tag moves to later (prints v2, the same busybox layer).
    let mut up = Upstream::start(Mode::Anonymous);
    let mut l = layout(&work.path().join("src"));
    let busybox = std::fs::read("/bin/busybox").expect("busybox-static is installed (scripts/test.sh installs it)");
    let layer = file_layer(&mut l, &[("bin/", b"", 0o755), ("bin/busybox", &busybox, 0o755)]);
    let v1 = app(&mut l, &layer, "mirrored app v1");
    let v2 = app(&mut l, &layer, "mirrored app v2");
    l.tag("v1", OCI_MANIFEST, &v1);
    l.tag("v2", OCI_MANIFEST, &v2);
    let skopeo = Skopeo::new();
    up.push(&skopeo, &l, "v1", "library/app");
    up.push(&skopeo, &l, "v2", "library/app");

    // 2. wharfage mirrors docker.io from it, as the default mirror.
    let config = work.path().join("wharfage.toml");
    std::fs::write(
        &config,
        format!(
            "[[mirror]]\nregistry = \"docker.io\"\nurl = \"http://{}\"\ndefault = true\ntag_ttl = \"{}s\"\n",
            up.host(),
            TAG_TTL.as_secs()
        ),
    )
    .unwrap();
    let wharf = Wharf::start(&["--config".into(), config.to_string_lossy().into_owned()]);
    let e = Engines::start(work.path(), &wharf.host());

    // 3-5. Each engine pulls through wharfage, gets the upstream's digest and runs the image.
    let before = served(&wharf);
    assert_eq!(e.ctr_pull(), v1, "containerd got the upstream's digest");
    assert!(e.ctr_run().contains("mirrored app v1"));
    let after_ctr = served(&wharf);
    assert!(after_ctr > before, "containerd's pull went through wharfage");
    assert_eq!(e.podman_pull(), v1, "podman got the upstream's digest");
    assert!(e.podman_run().contains("mirrored app v1"));
    let after_podman = served(&wharf);
    assert!(after_podman > after_ctr, "podman's pull went through wharfage");
    assert!(e.docker_pull().contains(&v1), "dockerd got the upstream's digest");
    assert!(e.docker_run().contains("mirrored app v1"));
    assert!(served(&wharf) > after_podman, "dockerd's pull went through wharfage");

    // 6. wharfage fetched the layer from the upstream once, for all three engines.
    assert!(requests(&wharf, "miss") > 0 && requests(&wharf, "hit") > 0);
    assert_eq!(up.blob_gets(&layer.digest), 1, "the busybox layer was fetched once and then served from the store");

    // 7. The tag moves upstream: within tag_ttl the digest wharfage confirmed last is
    // served, after it the new one.
    std::thread::sleep(TAG_TTL);
    let confirmed = Instant::now();
    assert_eq!(e.ctr_pull(), v1, "asked the upstream again: still v1");
    let refreshed_by = Instant::now();
    let up_http = Http::new(([127, 0, 0, 1], up.port).into());
    let moved = up_http.send("PUT", "/v2/library/app/manifests/v1", &[("content-type", OCI_MANIFEST)], l.blobs[&v2].clone());
    assert_eq!(moved.status, 201, "move the tag: {}", moved.text());
    assert_eq!(e.ctr_pull(), v1, "within tag_ttl the confirmed digest is served");
    assert!(confirmed.elapsed() < TAG_TTL, "the check ran within tag_ttl (took {:?})", confirmed.elapsed());
    std::thread::sleep((TAG_TTL + Duration::from_millis(200)).saturating_sub(refreshed_by.elapsed()));
    assert_eq!(e.ctr_pull(), v2, "after tag_ttl the upstream's new digest");
    assert!(e.ctr_run().contains("mirrored app v2"));
    // The others pull the moved tag too, so wharfage holds v2 whole before the upstream goes.
    assert_eq!(e.podman_pull(), v2);
    assert!(e.docker_pull().contains(&v2));

    // 8. The upstream goes away. Each engine forgets the image and pulls again: from
    // wharfage alone, the tag served stale once tag_ttl has passed.
    up.stop();
    std::thread::sleep(TAG_TTL);
    e.ctr_rm();
    e.podman_rm();
    e.docker_rm();
    assert_eq!(e.ctr_pull(), v2, "containerd, upstream gone");
    assert!(e.ctr_run().contains("mirrored app v2"));
    assert_eq!(e.podman_pull(), v2, "podman, upstream gone");
    assert!(e.podman_run().contains("mirrored app v2"));
    assert!(e.docker_pull().contains(&v2), "dockerd, upstream gone");
    assert!(e.docker_run().contains("mirrored app v2"));
    assert!(requests(&wharf, "stale") >= 3, "each engine's tag was served stale");
    drop(e);
}
