//! wharfage itself in a container: `deploy/container/build.sh` packages the binary under test
//! with the test's dockerd; the image runs as a non-root user, refuses to start open off
//! loopback, serves with access control, answers its probes, and keeps its data on a volume
//! across a new container.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::access::{Cred, Https};
use crate::engines::{text, Dockerd};
use crate::harness::BIN;
use crate::round_trip::image_fixture;
use crate::skopeo::{oci_ref, Skopeo};
use testkit::free_ports;

#[track_caller]
fn ok(what: &str, o: std::process::Output) -> String {
    assert!(o.status.success(), "{what} failed:\n{}", text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn wait_ready(http: &Https, docker: &Dockerd, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| http.get("/readyz", Cred::None).status)).ok();
        match up {
            Some(200) => return,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("the container did not get ready within 60 s ({other:?}); its log:\n{}", text(&docker.docker(&["logs", name]))),
        }
    }
}

#[test]
fn wharfage_runs_from_its_container_image() {
    let skopeo = Skopeo::new();
    let work = tempfile::Builder::new().prefix("wc-").tempdir_in("/tmp").unwrap();
    let docker = Dockerd::start(work.path());
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let build = std::process::Command::new(repo.join("deploy/container/build.sh"))
        .args(["--binary", BIN, "--tag", "wharfage-e2e:test", "--docker", &docker.command_line()])
        .output()
        .unwrap();
    ok("deploy/container/build.sh", build);
    let image = "wharfage-e2e:test";
    assert_eq!(ok("inspect", docker.docker(&["image", "inspect", "--format", "{{.Config.User}}", image])).trim(), "65532:65532");
    let size: u64 = ok("inspect", docker.docker(&["image", "inspect", "--format", "{{.Size}}", image])).trim().parse().unwrap();
    // The ci-profile binary under test is larger than a release build (about 21 against 18 MB).
    assert!(size < 32 << 20, "the image is {size} bytes");

    // Off loopback and open, it refuses to start and says what to do.
    let refused = docker.docker(&["run", "--rm", image]);
    assert!(!refused.status.success() && text(&refused).contains("--htpasswd"), "{}", text(&refused));

    let conf = work.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(conf.join("htpasswd"), format!("root:{}\n", bcrypt::hash("root-pw", 4).unwrap())).unwrap();
    let [port] = free_ports::<1>();
    let run = |name: &str| {
        let conf_mount = format!("{}:/etc/wharfage:ro", conf.display());
        let listen = format!("127.0.0.1:{port}");
        ok(
            "docker run",
            docker.docker(&[
                "run",
                "-d",
                "--name",
                name,
                "--network",
                "host",
                "-v",
                "wharfage-e2e-data:/var/lib/wharfage",
                "-v",
                &conf_mount,
                image,
                "serve",
                "--listen",
                &listen,
                "--htpasswd",
                "/etc/wharfage/htpasswd",
                "--admin",
                "root",
            ]),
        );
    };
    run("w1");
    let http = Https::new("", &format!("http://127.0.0.1:{port}"));
    wait_ready(&http, &docker, "w1");
    assert_eq!(http.get("/healthz", Cred::None).status, 200);
    assert_eq!(http.get("/v2/", Cred::None).status, 401, "access control is on");

    let (layout, image_fx) = image_fixture(&work.path().join("src"), 71);
    let dest = format!("docker://127.0.0.1:{port}/team/app:v1");
    skopeo.ok(&["copy", "--dest-tls-verify=false", "--dest-creds", "root:root-pw", &oci_ref(&layout.dir, "v1"), &dest]);

    // A new container on the same volume serves what the first one stored.
    ok("docker rm", docker.docker(&["rm", "-f", "w1"]));
    run("w2");
    wait_ready(&http, &docker, "w2");
    let a = http.get("/v2/team/app/manifests/v1", Cred::Basic("root", "root-pw"));
    assert_eq!(a.status, 200);
    assert_eq!(a.body, image_fx.manifest, "the manifest survived the container");
    ok("docker rm", docker.docker(&["rm", "-f", "w2"]));
    let _ = docker.docker(&["volume", "rm", "-f", "wharfage-e2e-data"]);
}
