//! An operator's session in the console, in headless chromium.

use base64::Engine as _;
use serde_json::json;

use super::browser::Browser;
use super::{post_form, push_image};
use crate::access::{auth_args, pw};
use crate::staging::upstream::{Mode, Upstream};
use crate::staging::{insecure, Wharf};

/// The pages' shared elements, and the phone layout's screenshots, are checked by looking;
/// what a user relies on is asserted here: logging in (and a wrong password refused), an
/// app's metadata, a staging from the form that ends in its result, unpinning through the
/// confirmation, a dry run and then a collection that frees what the unpin left, logging
/// out; a form posted without its CSRF token, and a stager's collection, are refused.
#[test]
fn operator_console_in_a_browser() {
    let up = Upstream::start(Mode::Anonymous);
    let users = tempfile::tempdir().unwrap();
    let mut args = auth_args(users.path());
    args.extend(insecure(&[up.host()]));
    args.extend(["--gc-grace", "0s", "--gc-protect-window", "0s"].map(String::from));
    let wharf = Wharf::start(&args);
    let web = push_image(&wharf, &up, "shop/web", 1301);
    let api = push_image(&wharf, &up, "shop/api", 1302);
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("root:{}", pw("root"))));
    let staged: server::mgmt::types::StagingView = wharf
        .stage_with(&format!("{}/shop/web:v1", up.host()), "web", json!({}), &[("authorization", &basic)])
        .expect(201, "stage web")
        .json();
    let first = staged.pull_credentials.expect("a staging returns a pull credential");
    // Whether a pull credential (user, password) still pulls web's image, on the wire.
    let pulls = |user: &str, password: &str| {
        let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
        let r = wharf.http.send("GET", &format!("/v2/apps/web/manifests/{web}"), &[("authorization", &auth)], Vec::new());
        assert!(r.status == 200 || r.status == 401, "a pull with a pull credential answered {}", r.status);
        r.status == 200
    };
    assert!(pulls(&first.username, &first.password), "the staging's credential pulls");
    let base = format!("http://{}", wharf.host());

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        let b = Browser::start(&base).await;

        // Without a session every page leads to the login form; a wrong password stays there.
        b.goto("/ui/apps").await;
        assert_eq!(b.path().await, "/ui/login");
        b.fill("#user", "root").await;
        b.fill("#password", "not-the-password").await;
        b.click("#login").await;
        assert!(b.text("#error").await.contains("Wrong user name or password"));
        b.shoot("login").await;
        b.fill("#user", "root").await;
        b.fill("#password", pw("root")).await;
        b.click("#login").await;
        b.find("#apps").await;
        assert_eq!(b.path().await, "/ui/apps", "login returns to the page asked for");
        assert!(b.text("#user").await.contains("root"));

        // The staged app, its metadata and the command that pulls it.
        assert!(b.text("#apps").await.contains("web"));
        b.shoot("apps").await;
        b.click("#apps a[href='/ui/apps/web']").await;
        assert_eq!(b.text("#app-name").await, "web");
        let meta = b.text("#metadata").await;
        for shown in
            ["/usr/local/bin/app --serve", "--listen :7070", "1000:1000", "/srv/app", "7070/tcp, 8125/udp, 10000/tcp", "APP_ARCH=amd64"]
        {
            assert!(meta.contains(shown), "the app page shows {shown:?}: {meta}");
        }
        assert!(b.text("main").await.contains(&format!("docker pull {}/apps/web@{web}", wharf.host())));
        b.shoot("app").await;
        // Rotate mints a new credential and revokes nothing until the old ones are revoked,
        // confirmed, once the platform has the new one.
        b.click("#rotate").await;
        let minted = b.text("#minted").await;
        assert!(minted.contains("web+"), "a rotated credential is shown once: {minted}");
        let new_user = b.attr("#revoke-confirm input[name='keep']", "value").await;
        assert!(new_user.starts_with("web+") && new_user != first.username, "{new_user}");
        let new_password = b.text("#minted dd:nth-of-type(2) code").await;
        assert!(pulls(&first.username, &first.password), "rotating revoked the old credential before it was confirmed");
        assert!(pulls(&new_user, &new_password), "the rotated credential pulls");
        b.shoot("rotate").await;
        b.click("#confirm-revoke").await;
        assert!(b.text("#notice").await.contains("Revoked 1 old pull credentials"), "{}", b.text("#notice").await);
        assert!(!pulls(&first.username, &first.password), "the old credential still pulls after the confirmed revocation");
        assert!(pulls(&new_user, &new_password), "revoking the old ones revoked the new one");
        // Revoke asks first; only the confirmation revokes.
        b.click("#revoke").await;
        assert!(b.text("#revoke-confirm").await.contains("Revoke every pull credential"), "revoke asks for confirmation");
        assert!(pulls(&new_user, &new_password), "one click on Revoke revoked");
        b.shoot("revoke-confirm").await;
        b.click("#confirm-revoke").await;
        assert!(b.text("#notice").await.contains("Revoked 1 pull credentials"));
        assert!(!pulls(&new_user, &new_password), "the confirmed revocation left a credential working");

        // The pinned manifest, from the repository pages.
        b.goto("/ui/repositories").await;
        assert!(b.text("#repositories").await.contains("apps/web"));
        b.shoot("repositories").await;
        b.goto("/ui/repositories/apps/web").await;
        let pins = b.text("#pins").await;
        assert!(
            pins.contains(&web[..19]) && pins.contains("shop/web:v1") && pins.contains("current"),
            "the app repository lists its pins: {pins}"
        );
        b.shoot("repository").await;
        b.goto(&format!("/ui/repositories/apps/web/manifests/{web}")).await;
        assert!(b.text("#media-type").await.contains("application/vnd.oci.image.manifest.v1+json"));
        assert!(b.text("#layers").await.contains("3.00 MB"), "layers with human sizes");
        assert!(b.text("#pinned-by").await.contains("web"));
        b.shoot("manifest").await;

        // Staging from the form: progress lines stream in, the result comes last.
        b.goto("/ui/stage").await;
        b.fill("#source", &format!("{}/shop/api:v1", up.host())).await;
        b.fill("#app", "api").await;
        b.shoot("stage").await;
        b.click("#stage").await;
        let result = b.text("#result").await;
        assert!(result.contains("Staged api"), "{result}");
        assert!(b.has("#log li.ev-done").await, "each downloaded blob is reported");
        assert!(b.has("#bars .bar.done").await, "ui.js turned the lines into progress bars");
        b.shoot("staged").await;

        // Unpin through the confirmation page.
        b.goto("/ui/apps/web").await;
        b.click("#unpin").await;
        assert_eq!(b.path().await, "/ui/apps/web/unpin");
        b.shoot("unpin").await;
        b.click("#confirm-unpin").await;
        b.find("#apps").await;
        let apps = b.text("#apps").await;
        assert!(!apps.contains("web") && apps.contains("api"), "web is unpinned, api stays: {apps}");

        // A dry run shows what the unpin left to collect; the run frees it and is recorded.
        b.goto("/ui/gc").await;
        b.shoot("gc").await;
        b.click("#gc-dry-run").await;
        let dry = b.text("#dry-run").await;
        assert!(dry.contains("Blobs 4") || dry.contains("Blobs\t4"), "web's manifest, config and two layers would go: {dry}");
        assert_ne!(b.text("#freed").await, "0 B");
        // What stays, and why: api's image, pinned.
        let kept = b.text("#gc-kept").await;
        assert!(kept.contains("referenced by a live app") && kept.contains("while referenced"), "{kept}");
        b.shoot("gc-dry-run").await;
        b.click("#gc-run").await;
        b.find("#gc-result").await;
        assert!(b.text("#gc-history").await.contains("3.02 MB"), "the history shows what the run freed");
        b.shoot("gc-run").await;
        // A failed staging shows in the overview's status column, with why.
        wharf
            .stage_with(&format!("{}/shop/web:no-such-tag", up.host()), "broken", json!({}), &[("authorization", &basic)])
            .expect(404, "staging a missing tag");
        b.goto("/ui/").await;
        let recent = b.text("#recent").await;
        assert!(recent.contains("broken") && recent.contains("failed") && recent.contains("no-such-tag"), "{recent}");
        assert_eq!(b.text("#health").await, "ready");
        assert!(b.text("main").await.contains("freed 3.02 MB"), "the overview shows the last collection");
        b.shoot("overview").await;

        // Forged posts: a session without the form's CSRF token is refused.
        let session = b.cookie("wharfage_session").await.expect("a session cookie");
        let cookies = format!("wharfage_session={session}");
        let forged = post_form(&wharf, "/ui/gc", &cookies, "mode=run");
        assert_eq!(forged.status, 403, "a POST without a CSRF token: {}", forged.text());
        let wrong = post_form(&wharf, "/ui/apps/api/unpin", &cookies, "csrf=00000000000000000000000000000000");
        assert_eq!(wrong.status, 403, "a POST with another CSRF token");

        // Logging out ends the session in this browser.
        b.click("#logout").await;
        b.find("#login").await;
        b.goto("/ui/apps").await;
        assert_eq!(b.path().await, "/ui/login");

        // A stager sees no garbage collection and may not run one.
        b.fill("#user", "stager").await;
        b.fill("#password", pw("stager")).await;
        b.click("#login").await;
        b.find("#apps").await;
        assert!(!b.has("nav a[href='/ui/gc']").await, "no garbage collection in a stager's menu");
        let csrf = b.find("input[name=csrf]").await.attr("value").await.unwrap().unwrap();
        let stager = format!("wharfage_session={}", b.cookie("wharfage_session").await.unwrap());
        let refused = post_form(&wharf, "/ui/gc", &stager, &format!("csrf={csrf}&mode=run"));
        assert_eq!(refused.status, 403, "a stager's collection: {}", refused.text());
        b.goto("/ui/gc").await;
        assert!(b.text("h1").await.contains("403"));
        // Its repository rights are its rules' (none): no repository is listed or shown.
        b.goto("/ui/repositories").await;
        assert!(!b.text("main").await.contains("apps/api"), "the stager may not pull apps/api");
        b.goto(&format!("/ui/repositories/apps/api/manifests/{api}")).await;
        assert!(b.text("h1").await.contains("404"));
        assert!(!b.text("main").await.contains(&api[7..19]), "nothing of the manifest is shown");
        b.close().await;
    });
}
