//! The console shows a repository only to those who may pull it: the catalog lists the
//! viewer's pullable repositories, and a denied repository's page and manifest page answer
//! 404 with none of its tags or digests, as for a repository that does not exist.

use base64::Engine as _;

use super::post_form;
use crate::client::Resp;
use crate::fixtures::{one_layer_manifest, sha256};
use crate::staging::Wharf;

/// Users: `root` (admin), `stager` (a stager with no repository rule), `teamstager` (a
/// stager whose only rule is pull on `team/**`).
const USERS: &[(&str, &str)] = &[("root", "root-pw-r1"), ("stager", "stager-pw-r2"), ("teamstager", "team-pw-r3")];
const CONFIG: &str = r#"
admins = ["root"]
stagers = ["stager", "teamstager"]

[[access]]
users = ["teamstager"]
repositories = ["team/**"]
actions = ["pull"]
"#;

fn basic(user: &str, pw: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}")))
}

/// Pushes a one-layer image to `repo:v1` as root over plain HTTP; returns its digest.
fn push(wharf: &Wharf, repo: &str, seed: u8) -> String {
    let auth = basic("root", USERS[0].1);
    let h = [("authorization", auth.as_str()), ("content-type", "application/octet-stream")];
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#).into_bytes();
    let layer = vec![seed; 4096];
    for blob in [&config, &layer] {
        let r = wharf.http.send("POST", &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(blob)), &h, blob.to_vec());
        assert_eq!(r.status, 201, "push a blob to {repo}: {}", r.text());
    }
    let manifest = one_layer_manifest(&config, &layer);
    let h = [("authorization", auth.as_str()), ("content-type", "application/vnd.oci.image.manifest.v1+json")];
    let r = wharf.http.send("PUT", &format!("/v2/{repo}/manifests/v1"), &h, manifest.clone());
    assert_eq!(r.status, 201, "push the manifest of {repo}: {}", r.text());
    sha256(&manifest)
}

/// Logs `user` into the console as a browser would (CSRF cookie, then the form); returns
/// the cookies of the session.
fn login(wharf: &Wharf, user: &str, pw: &str) -> String {
    let page = wharf.http.get("/ui/login");
    let set = page.header("set-cookie").expect("a CSRF cookie").to_string();
    let csrf = set.split(';').next().and_then(|kv| kv.strip_prefix("wharfage_csrf=")).unwrap().to_string();
    let r = post_form(wharf, "/ui/login", &format!("wharfage_csrf={csrf}"), &format!("user={user}&password={pw}&csrf={csrf}"));
    assert_eq!(r.status, 303, "{user} logs in: {}", r.text());
    let session = r.header("set-cookie").and_then(|c| c.split(';').next()).expect("a session cookie").to_string();
    format!("{session}; wharfage_csrf={csrf}")
}

fn page(wharf: &Wharf, cookies: &str, path: &str) -> Resp {
    wharf.http.send("GET", path, &[("cookie", cookies)], Vec::new())
}

#[test]
fn console_shows_only_repositories_the_viewer_may_pull() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd: String = USERS.iter().map(|(u, p)| format!("{u}:{}\n", bcrypt::hash(p, 4).unwrap())).collect();
    std::fs::write(dir.path().join("htpasswd"), htpasswd).unwrap();
    std::fs::write(dir.path().join("wharfage.toml"), CONFIG).unwrap();
    let args: Vec<String> = ["--htpasswd", "htpasswd", "--config", "wharfage.toml"]
        .iter()
        .map(|a| if a.starts_with("--") { a.to_string() } else { dir.path().join(a).to_string_lossy().into_owned() })
        .collect();
    let wharf = Wharf::start(&args);
    let team = push(&wharf, "team/web", 1);
    let secret = push(&wharf, "secret/db", 2);

    let root = login(&wharf, "root", USERS[0].1);
    let list = page(&wharf, &root, "/ui/repositories").expect(200, "root's catalog").text();
    assert!(list.contains("team/web") && list.contains("secret/db"), "an admin sees the whole catalog: {list}");
    page(&wharf, &root, &format!("/ui/repositories/secret/db/manifests/{secret}")).expect(200, "root sees any manifest");

    let limited = login(&wharf, "teamstager", USERS[2].1);
    let list = page(&wharf, &limited, "/ui/repositories").expect(200, "teamstager's catalog").text();
    assert!(list.contains("team/web"), "team/** is pullable: {list}");
    assert!(!list.contains("secret/db"), "a repository the viewer may not pull is not listed: {list}");
    let repo = page(&wharf, &limited, "/ui/repositories/team/web").expect(200, "teamstager's repository").text();
    assert!(repo.contains("v1"));
    page(&wharf, &limited, &format!("/ui/repositories/team/web/manifests/{team}")).expect(200, "an allowed manifest");

    let plain = login(&wharf, "stager", USERS[1].1);
    let list = page(&wharf, &plain, "/ui/repositories").expect(200, "stager's catalog").text();
    assert!(!list.contains("team/web") && !list.contains("secret/db"), "no rule, no repository: {list}");
    for cookies in [&limited, &plain] {
        for path in ["/ui/repositories/secret/db".to_string(), format!("/ui/repositories/secret/db/manifests/{secret}")] {
            let r = page(&wharf, cookies, &path);
            assert_eq!(r.status, 404, "{path}: {}", r.text());
            let text = r.text();
            assert!(!text.contains(&secret[7..19]) && !text.contains(">v1<"), "{path} shows nothing of it: {text}");
        }
        // A repository that does not exist answers the same.
        assert_eq!(page(&wharf, cookies, "/ui/repositories/secret/none").status, 404);
        // Garbage collection stays the admins'.
        assert_eq!(page(&wharf, cookies, "/ui/gc").status, 403);
    }
}
