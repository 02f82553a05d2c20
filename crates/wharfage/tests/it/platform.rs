//! The platform's view, end to end, with real engines: an app's image is built with docker,
//! pushed to a private upstream (Debian's docker-registry, htpasswd over TLS) as the amd64
//! image of a multi-arch manifest list, staged once (the list's digest pinned, its arm64
//! child absent by design)
//! through the management API with the user's credentials, and then started by docker,
//! podman and containerd from wharfage alone, with the pull credentials only, after the
//! upstream's tag has moved and the upstream has gone away. Then a cell loses its image
//! cache and pulls again; then the app is unpinned and collected, and another app that
//! shares its base layer still starts. On the filesystem and on SeaweedFS.

use std::path::Path;
use std::time::{Duration, Instant};

use server::mgmt::types::PullCredentials;
use testkit::free_ports;

use crate::access::{pw, Cred, Https, Secured};
use crate::engines::{text, Containerd, Dockerd, Podman};
use crate::fixtures::sha256;
use crate::s3::S3Store;
use crate::staging::upstream::{Mode, Upstream, PASSWORD, USER};

#[track_caller]
fn ok(what: &str, o: std::process::Output) -> String {
    assert!(o.status.success(), "{what} failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes a build context: a static busybox serving `/srv` over HTTP on the lowest of two
/// exposed ports, as a non-root user, with `body` as its index page.
fn context(dir: &Path, body: &str, ports: [u16; 2]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy("/bin/busybox", dir.join("busybox")).expect("busybox-static is installed (scripts/test.sh installs it)");
    std::fs::write(dir.join("index.html"), body).unwrap();
    let dockerfile = format!(
        "FROM scratch\n\
         COPY busybox /bin/busybox\n\
         COPY index.html /srv/index.html\n\
         USER 1000:1000\n\
         WORKDIR /srv\n\
         ENV GREETING=hello-from-wharfage\n\
         EXPOSE {hi} {lo}\n\
         ENTRYPOINT [\"/bin/busybox\", \"httpd\", \"-f\", \"-v\"]\n\
         CMD [\"-p\", \"{lo}\", \"-h\", \"/srv\"]\n",
        lo = ports[0],
        hi = ports[1],
    );
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
}

/// Waits until `http://127.0.0.1:PORT/` answers with `want` in its body.
fn answers(port: u16, want: &str) {
    let http = Https::new("", &format!("http://127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| http.get("/index.html", Cred::None)))
            .ok()
            .filter(|a| a.status == 200)
            .map(|a| String::from_utf8_lossy(&a.body).into_owned());
        match body {
            Some(b) if b.contains(want) => return,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("nothing on port {port} answered {want:?} within 60 s (last: {other:?})"),
        }
    }
}

/// Makes `repo:tag` on the upstream a Docker manifest list of `amd64` (a manifest docker
/// pushed, `amd64_size` bytes long) and an arm64 image of its own; the list's digest and
/// the arm64 manifest's.
fn multi_arch(upstream: &Https, repo: &str, tag: &str, amd64: &str, amd64_size: u64) -> (String, String) {
    let cred = || Cred::Basic(USER, PASSWORD);
    let config = br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let config_digest = sha256(&config);
    let started = upstream.send("POST", &format!("/v2/{repo}/blobs/uploads/"), cred(), None);
    assert_eq!(started.status, 202, "start an upload: {}", String::from_utf8_lossy(&started.body));
    let location = started.header("location");
    let path = &location[location.find("/v2/").unwrap()..];
    let sep = if path.contains('?') { '&' } else { '?' };
    let done =
        upstream.send("PUT", &format!("{path}{sep}digest={config_digest}"), cred(), Some(("application/octet-stream", config.clone())));
    assert_eq!(done.status, 201, "finish the upload: {}", String::from_utf8_lossy(&done.body));
    let docker_manifest = "application/vnd.docker.distribution.manifest.v2+json";
    let arm = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": docker_manifest,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [],
    }))
    .unwrap();
    let arm_digest = sha256(&arm);
    let put = |reference: &str, media_type: &str, body: &[u8]| {
        let a = upstream.send("PUT", &format!("/v2/{repo}/manifests/{reference}"), cred(), Some((media_type, body.to_vec())));
        assert_eq!(a.status, 201, "push {reference}: {}", String::from_utf8_lossy(&a.body));
    };
    put(&arm_digest, docker_manifest, &arm);
    let list_type = "application/vnd.docker.distribution.manifest.list.v2+json";
    let list = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": list_type,
        "manifests": [
            {"mediaType": docker_manifest, "digest": amd64, "size": amd64_size, "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": docker_manifest, "digest": arm_digest, "size": arm.len(), "platform": {"architecture": "arm64", "os": "linux"}},
        ],
    }))
    .unwrap();
    put(tag, list_type, &list);
    (sha256(&list), arm_digest)
}

/// The blobs of a manifest stored in wharfage (config and layers), read as an admin.
fn blobs_of(s: &Secured, repo: &str, digest: &str) -> Vec<String> {
    let a = s.https().get(&format!("/v2/{repo}/manifests/{digest}"), Cred::Basic("root", pw("root")));
    assert_eq!(a.status, 200);
    let m = a.json();
    let mut v = vec![m["config"]["digest"].as_str().unwrap().to_string()];
    v.extend(m["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()));
    v
}

fn scenario(s3: Option<&S3Store<'_>>) {
    let backend = if s3.is_some() { "s3" } else { "fs" };
    let work = tempfile::Builder::new().prefix("wp-").tempdir_in("/tmp").unwrap();
    let [lo, hi, podman_port, ctr_port] = free_ports::<4>();
    let mut upstream = Upstream::start(Mode::PrivateTls);
    let upstream_ca = std::fs::read_to_string(upstream.ca_pem()).unwrap();
    // Collections keep nothing for age and honour protections for one second only, so the
    // unpinned app's bytes go at once.
    let s = Secured::start_with(s3, &["--gc-grace", "0s", "--gc-protect-window", "1s"], Some(&upstream_ca));
    let host = s.server.host();
    let stored = |digest: &str| -> bool {
        let hex = &digest["sha256:".len()..];
        match s3 {
            None => s.root.join(format!("blobs/sha256/{}/{hex}", &hex[..2])).exists(),
            Some(st) => st.keys("blobs/").iter().any(|k| k.ends_with(hex)),
        }
    };

    // 1-2. Build the app with docker and push it to the private upstream.
    let mut docker = Dockerd::start(work.path());
    docker.trust(&upstream.host(), &upstream_ca);
    docker.trust(&host, s.ca.pem());
    let source = format!("{}/team/app:v1", upstream.host());
    context(&work.path().join("v1"), "app v1", [lo, hi]);
    ok("docker build v1", docker.docker(&["build", "-t", &source, &work.path().join("v1").to_string_lossy()]));
    ok("docker login upstream", docker.docker(&["login", "-u", USER, "-p", PASSWORD, &upstream.host()]));
    let pushed = ok("docker push v1", docker.docker(&["push", &source]));
    // "v1: digest: sha256:… size: N"
    let words: Vec<&str> = pushed.split_whitespace().collect();
    let at = words.iter().position(|w| w.starts_with("sha256:")).expect("docker push prints the digest");
    let v1_amd64 = words[at].to_string();
    let amd64_size: u64 = words[at + 2].parse().expect("docker push prints the size");
    let up_https = Https::new(&upstream_ca, &format!("https://{}", upstream.host()));
    let (v1_digest, arm_digest) = multi_arch(&up_https, "team/app", "v1", &v1_amd64, amd64_size);

    // 3. Stage it as a platform's stager would, with the user's upstream credentials.
    let (web, web_creds) = s.stage(&source, "web", (USER, PASSWORD));
    assert_eq!(web.record.digest.to_string(), v1_digest, "pinned by the upstream's digest, the manifest list's");
    assert_eq!(web.record.platforms, ["linux/amd64"], "the list is sparse: only the amd64 image is staged");
    assert_eq!(web.image, format!("{host}/apps/web@{v1_digest}"));
    let absent = s.https().get(&format!("/v2/apps/web/manifests/{arm_digest}"), Cred::Basic("root", pw("root")));
    assert_eq!((absent.status, absent.code()), (404, "MANIFEST_UNKNOWN".to_string()), "the arm64 child is absent by design");
    let m = &web.record.metadata;
    assert_eq!(m.entrypoint, ["/bin/busybox", "httpd", "-f", "-v"]);
    assert_eq!(m.cmd, ["-p".to_string(), lo.to_string(), "-h".into(), "/srv".into()]);
    assert_eq!((m.user.as_str(), m.working_dir.as_str()), ("1000:1000", "/srv"));
    assert!(m.env.iter().any(|e| e == "GREETING=hello-from-wharfage"), "{:?}", m.env);
    let mut ports: Vec<u16> = m.ports.iter().map(|p| p.port).collect();
    ports.sort();
    let mut want = vec![lo, hi];
    want.sort();
    assert_eq!(ports, want);
    assert_eq!(m.lowest_port, Some(lo.min(hi)));

    // 4. The tag moves upstream (another app stages the new image), then the upstream goes.
    context(&work.path().join("v2"), "app v2", [lo, hi]);
    ok("docker build v2", docker.docker(&["build", "-t", &source, &work.path().join("v2").to_string_lossy()]));
    ok("docker push v2", docker.docker(&["push", &source]));
    let (other, other_creds) = s.stage(&source, "other", (USER, PASSWORD));
    assert_ne!(other.record.digest, web.record.digest, "the tag moved");
    ok("docker rmi", docker.docker(&["rmi", &source]));
    upstream.stop();
    let gone = Instant::now();

    // 5. Three instances from the pinned reference, with the pull credentials only.
    let login = |c: &PullCredentials| format!("{}:{}", c.username, c.password);
    ok("docker login wharfage", docker.docker(&["login", "-u", &web_creds.username, "-p", &web_creds.password, &host]));
    ok("docker run", docker.docker(&["run", "-d", "--name", "web1", "--network", "host", &web.image]));
    let podman = Podman::new(work.path());
    let cert_dir = s.cert_dir();
    ok("podman login", podman.podman(&["login", "--cert-dir", &cert_dir, "-u", &web_creds.username, "-p", &web_creds.password, &host]));
    ok("podman pull", podman.podman(&["pull", "--cert-dir", &cert_dir, "--signature-policy", &podman.policy(), &web.image]));
    ok(
        "podman run",
        podman.podman(&[
            "run",
            "-d",
            "--name",
            "web2",
            "--network",
            "host",
            "--pull",
            "never",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
            &web.image,
            "-p",
            &podman_port.to_string(),
            "-h",
            "/srv",
        ]),
    );
    let ctrd = Containerd::start(work.path());
    let hosts = work.path().join("ctr-hosts");
    std::fs::create_dir_all(hosts.join(&host)).unwrap();
    std::fs::write(
        hosts.join(&host).join("hosts.toml"),
        format!(
            "server = \"https://{host}\"\n[host.\"https://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{}\"\n",
            s.dir.path().join("ca.pem").display()
        ),
    )
    .unwrap();
    let hosts = hosts.to_string_lossy().into_owned();
    ok("ctr pull", ctrd.ctr(&["images", "pull", "--hosts-dir", &hosts, "--user", &login(&web_creds), &web.image]));
    let ctr_port_s = ctr_port.to_string();
    ok(
        "ctr run",
        ctrd.run(&[
            "-d",
            "--null-io",
            "--net-host",
            &web.image,
            &testkit::unique("web3"),
            "/bin/busybox",
            "httpd",
            "-f",
            "-v",
            "-p",
            &ctr_port_s,
            "-h",
            "/srv",
        ]),
    );
    for port in [lo, podman_port, ctr_port] {
        answers(port, "app v1");
    }
    eprintln!("platform ({backend}): upstream gone -> three instances answering in {:.1} s", gone.elapsed().as_secs_f64());
    // Each engine runs the staged digest (the list's), not the moved tag's.
    let d = web.record.digest.to_string();
    assert!(ok("docker inspect", docker.docker(&["image", "inspect", "--format", "{{json .RepoDigests}}", &web.image])).contains(&d));
    assert!(ok("podman inspect", podman.podman(&["image", "inspect", "--format", "{{json .RepoDigests}}", &web.image])).contains(&d));
    assert!(ok("ctr images ls", ctrd.ctr(&["images", "ls"])).lines().any(|l| l.starts_with(&web.image) && l.contains(&d)));

    // 6. A cell that lost its image cache pulls again from wharfage and serves.
    ok("docker rm", docker.docker(&["rm", "-f", "web1"]));
    ok("docker rmi", docker.docker(&["rmi", &web.image]));
    ok("docker run again", docker.docker(&["run", "-d", "--name", "web1", "--network", "host", &web.image]));
    answers(lo, "app v1");

    // 7. Unpinned and collected: the next pull is refused and the bytes are gone; the app
    // that shares the base layer still starts.
    let web_blobs = blobs_of(&s, "apps/web", &v1_amd64);
    let other_blobs = blobs_of(&s, "apps/other", &other.record.digest.to_string());
    let shared: Vec<&String> = web_blobs.iter().filter(|b| other_blobs.contains(b)).collect();
    let own: Vec<&String> = web_blobs.iter().filter(|b| !other_blobs.contains(b)).collect();
    assert!(!shared.is_empty() && !own.is_empty(), "v1 and v2 share the busybox layer and differ in the rest");
    ok("docker rm", docker.docker(&["rm", "-f", "web1"]));
    ok("docker rmi", docker.docker(&["rmi", &web.image]));
    let h = s.https();
    assert_eq!(h.send("DELETE", "/api/v1/apps/web", Cred::Basic("stager", pw("stager")), None).status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(h.send("POST", "/api/v1/gc", Cred::Basic("root", pw("root")), None).status, 200);
    // Nothing of it left in docker either (the image built in step 1 is the same image).
    ok("docker image prune", docker.docker(&["image", "prune", "-af"]));
    let refused = docker.docker(&["pull", &web.image]);
    assert!(!refused.status.success(), "a docker pull of the unpinned app must fail:\n{}", text(&refused));
    ok("ctr rm", ctrd.ctr(&["images", "rm", &web.image]));
    let refused = ctrd.ctr(&["images", "pull", "--hosts-dir", &hosts, "--user", &login(&web_creds), &web.image]);
    assert!(!refused.status.success(), "a ctr pull of the unpinned app must fail:\n{}", text(&refused));
    let manifest = format!("/v2/apps/web/manifests/{d}");
    assert_eq!(h.get(&manifest, Cred::Basic(&web_creds.username, &web_creds.password)).status, 401, "its credentials are gone");
    assert_eq!(h.get(&manifest, Cred::Basic("root", pw("root"))).status, 404, "and so is its manifest");
    for b in &own {
        assert!(!stored(b), "{b} of the unpinned app is still stored");
    }
    for b in &shared {
        assert!(stored(b), "{b}, shared with another app, was removed");
    }
    ok("docker login as other", docker.docker(&["login", "-u", &other_creds.username, "-p", &other_creds.password, &host]));
    ok("docker run other", docker.docker(&["run", "-d", "--name", "other1", "--network", "host", &other.image]));
    answers(lo, "app v2");
    drop(ctrd);
    drop(podman);
    drop(docker);
}

#[test]
fn engines_run_a_pinned_app_while_the_upstream_is_gone_fs() {
    scenario(None);
}

#[test]
fn engines_run_a_pinned_app_while_the_upstream_is_gone_s3() {
    let store = S3Store::shared();
    scenario(Some(&store));
}
