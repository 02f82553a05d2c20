//! docker, podman and containerd's `ctr` log in over TLS with the test's CA and push and
//! pull under the rules; every denied combination is denied: anonymous, a wrong password,
//! push with pull-only rights, a repository no rule grants, an app's credentials on another
//! app, a revoked credential and one whose staging was superseded.

use server::mgmt::types::{PullCredentials, StagingView};

use super::{push, pw, Cred, Secured};
use crate::engines::{text, Containerd, Dockerd, Podman};
use crate::fixtures::{Layout, Rng, OCI_MANIFEST};
use crate::skopeo::{oci_ref, Skopeo};
use crate::staging::images;

fn stage(s: &Secured, app: &str) -> (StagingView, PullCredentials) {
    s.stage(&format!("{}/team/web:v1", s.server.host()), app, ("ci", pw("ci")))
}

#[track_caller]
fn ok(what: &str, o: std::process::Output) {
    assert!(o.status.success(), "{what} failed:\n{}", text(&o));
}

#[track_caller]
fn refused(what: &str, o: std::process::Output) {
    assert!(!o.status.success(), "{what} must be refused:\n{}", text(&o));
}

#[test]
fn engines_log_in_push_and_pull_under_the_rules() {
    let skopeo = Skopeo::new();
    let s = Secured::start(&["--retain", "0"]);
    let host = s.server.host();
    // A real image (a tar layer) that every engine can unpack.
    let mut layout = Layout::create(&s.dir.path().join("src"));
    let mut rng = Rng::new(61);
    let base = images::layer(&mut layout, &mut rng, "base.bin", 64 << 10);
    let image = images::image(&mut layout, "amd64", &[&base]);
    layout.tag("v1", OCI_MANIFEST, &image.digest);
    assert!(push(&skopeo, &s, &oci_ref(&layout.dir, "v1"), "team/web:v1", Some(&format!("ci:{}", pw("ci")))).0);
    let (shop, shop_creds) = stage(&s, "shop");
    let (other, other_creds) = stage(&s, "other");
    let web = format!("{host}/team/web:v1");
    let pinned = |v: &StagingView| format!("{host}/{}@{}", v.record.repository, v.record.digest);

    // Engines keep their state in short paths (dockerd's sockets live under its exec root).
    let work = tempfile::Builder::new().prefix("we-").tempdir_in("/tmp").unwrap();

    // docker
    let mut docker = Dockerd::start(work.path());
    docker.trust(&host, s.ca.pem());
    refused("docker anonymous pull of team/web", docker.docker(&["pull", &web]));
    refused("docker login with a wrong password", docker.docker(&["login", "-u", "reader", "-p", "wrong", &host]));
    ok("docker login reader", docker.docker(&["login", "-u", "reader", "-p", pw("reader"), &host]));
    ok("docker pull as reader", docker.docker(&["pull", &web]));
    let digests = text(&docker.docker(&["image", "inspect", "--format", "{{json .RepoDigests}}", &web]));
    assert!(digests.contains(&image.digest), "docker's image digest is the pushed one: {digests}");
    ok("docker tag", docker.docker(&["tag", &web, &format!("{host}/team/docker:v1")]));
    refused("docker push with pull-only rights", docker.docker(&["push", &format!("{host}/team/docker:v1")]));
    ok("docker login ci", docker.docker(&["login", "-u", "ci", "-p", pw("ci"), &host]));
    ok("docker push as ci", docker.docker(&["push", &format!("{host}/team/docker:v1")]));
    ok("docker tag", docker.docker(&["tag", &web, &format!("{host}/other/docker:v1")]));
    refused("docker push where no rule grants", docker.docker(&["push", &format!("{host}/other/docker:v1")]));
    ok(
        "docker login with shop's pull credentials",
        docker.docker(&["login", "-u", &shop_creds.username, "-p", &shop_creds.password, &host]),
    );
    ok("docker pull of the pinned shop image", docker.docker(&["pull", &pinned(&shop)]));
    refused("shop's credentials on another app", docker.docker(&["pull", &pinned(&other)]));
    refused("shop's credentials on team/web", docker.docker(&["pull", &format!("{host}/team/docker:v1")]));
    drop(docker);

    // podman
    let podman = Podman::new(work.path());
    let (cert_dir, policy) = (s.cert_dir(), podman.policy());
    let pull = |image: &str| podman.podman(&["pull", "--cert-dir", &cert_dir, "--signature-policy", &policy, image]);
    let push_as = |image: &str| podman.podman(&["push", "--cert-dir", &cert_dir, "--signature-policy", &policy, image]);
    refused("podman anonymous pull", pull(&web));
    refused("podman login with a wrong password", podman.podman(&["login", "--cert-dir", &cert_dir, "-u", "ci", "-p", "wrong", &host]));
    ok("podman login reader", podman.podman(&["login", "--cert-dir", &cert_dir, "-u", "reader", "-p", pw("reader"), &host]));
    ok("podman pull as reader", pull(&web));
    ok("podman tag", podman.podman(&["tag", &web, &format!("{host}/team/podman:v1")]));
    refused("podman push with pull-only rights", push_as(&format!("{host}/team/podman:v1")));
    ok("podman login ci", podman.podman(&["login", "--cert-dir", &cert_dir, "-u", "ci", "-p", pw("ci"), &host]));
    ok("podman push as ci", push_as(&format!("{host}/team/podman:v1")));
    ok(
        "podman login with other's pull credentials",
        podman.podman(&["login", "--cert-dir", &cert_dir, "-u", &other_creds.username, "-p", &other_creds.password, &host]),
    );
    ok("podman pull of the pinned other image", pull(&pinned(&other)));
    refused("other's credentials on shop", pull(&pinned(&shop)));
    drop(podman);

    // containerd
    let ctrd = Containerd::start(work.path());
    // containerd's registry configuration: HTTPS with the test CA (ctr would try plain HTTP
    // first for a loopback registry).
    let hosts = work.path().join("ctr-hosts");
    std::fs::create_dir_all(hosts.join(&host)).unwrap();
    let ca_file = s.dir.path().join("ca.pem");
    let hosts_toml = format!(
        "server = \"https://{host}\"\n[host.\"https://{host}\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n  ca = \"{}\"\n",
        ca_file.display()
    );
    std::fs::write(hosts.join(&host).join("hosts.toml"), hosts_toml).unwrap();
    let hosts = hosts.to_string_lossy().into_owned();
    let ctr_pull = |image: &str, user: Option<&str>| {
        let mut args = vec!["images", "pull", "--hosts-dir", &hosts];
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        args.push(image);
        ctrd.ctr(&args)
    };
    let reader = format!("reader:{}", pw("reader"));
    refused("ctr anonymous pull", ctr_pull(&web, None));
    refused("ctr pull with a wrong password", ctr_pull(&web, Some("reader:wrong")));
    ok("ctr pull as reader", ctr_pull(&web, Some(&reader)));
    ok("ctr tag", ctrd.ctr(&["images", "tag", &web, &format!("{host}/team/ctr:v1")]));
    let ctr_push = |user: &str| ctrd.ctr(&["images", "push", "--hosts-dir", &hosts, "--user", user, &format!("{host}/team/ctr:v1")]);
    refused("ctr push with pull-only rights", ctr_push(&reader));
    ok("ctr push as ci", ctr_push(&format!("ci:{}", pw("ci"))));
    let other_login = format!("{}:{}", other_creds.username, other_creds.password);
    ok("ctr pull with other's pull credentials", ctr_pull(&pinned(&other), Some(&other_login)));

    // Revoked, and superseded beyond --retain 0: both refused, for every engine alike.
    let a = s.https().send("DELETE", "/api/v1/apps/shop/credentials", Cred::Basic("stager", pw("stager")), None);
    assert_eq!(a.status, 200);
    let shop_login = format!("{}:{}", shop_creds.username, shop_creds.password);
    refused("ctr pull with a revoked credential", ctr_pull(&pinned(&shop), Some(&shop_login)));
    let (other2, _) = stage(&s, "other");
    refused("ctr pull with a credential of a superseded staging", ctr_pull(&pinned(&other2), Some(&other_login)));
    drop(ctrd);
}
