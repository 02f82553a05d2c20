//! The console of an open registry (no htpasswd, loopback only): no login, but forms still
//! need the CSRF token a cross-site page cannot know.

use super::post_form;
use crate::staging::Wharf;

#[test]
fn open_console_refuses_forms_without_their_csrf_token() {
    let wharf = Wharf::start(&[]);
    let page = wharf.http.get("/ui/gc").expect(200, "the console of an open registry needs no login");
    let csp = page.header("content-security-policy").unwrap_or_default().to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    let set = page.header("set-cookie").expect("a CSRF cookie").to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/ui"), "{set}");
    let token = set.split(';').next().and_then(|kv| kv.strip_prefix("wharfage_csrf=")).unwrap().to_string();
    let html = page.text();
    assert!(html.contains(&format!("name=\"csrf\" value=\"{token}\"")), "forms carry the cookie's token");

    let cookie = format!("wharfage_csrf={token}");
    let missing = post_form(&wharf, "/ui/gc", &cookie, "mode=run");
    assert_eq!(missing.status, 403, "no token in the form: {}", missing.text());
    let cross_site = post_form(&wharf, "/ui/gc", "", &format!("csrf={token}&mode=run"));
    assert_eq!(cross_site.status, 403, "a cross-site form has the token but not the cookie");
    let ok = post_form(&wharf, "/ui/gc", &cookie, &format!("csrf={token}&mode=dry-run"));
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert!(ok.text().contains("id=\"dry-run\""));

    let r = wharf.http.send("GET", "/", &[("accept", "text/html,application/xhtml+xml")], Vec::new());
    assert_eq!((r.status, r.header("location")), (303, Some("/ui/")), "browsers are sent to the console");
    assert_eq!(wharf.http.get("/").status, 404, "other clients get the registry's answer");
}
