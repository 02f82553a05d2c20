//! What another site must not get from the console over TLS: a login it forged (login CSRF),
//! a redirect off the console after login (`next=`), a cookie it can read, toss or make
//! travel in the clear, a page it can frame or sniff, and a cached page or token.

use crate::access::{pw, Answer, Cred, Https, Secured};

/// The value of cookie `name` set by an answer, and the attributes it was set with.
fn set_cookie(a: &Answer, name: &str) -> Option<(String, String)> {
    a.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find_map(|c| {
        let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
        kv.strip_prefix(&format!("{name}=")).map(|v| (v.to_string(), attrs.to_string()))
    })
}

/// A console cookie over TLS: `__Host-` (Secure, Path=/, no Domain: no other host or plain
/// HTTP page can set or overwrite it), HttpOnly, SameSite=Strict.
#[track_caller]
fn assert_hardened(what: &str, attrs: &str) {
    let have: Vec<&str> = attrs.split(';').map(str::trim).collect();
    for want in ["Path=/", "HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(have.contains(&want), "{what} lacks {want}: {attrs}");
    }
    assert!(!have.iter().any(|a| a.to_ascii_lowercase().starts_with("domain=")), "{what} names a domain: {attrs}");
}

/// The headers every console answer carries.
#[track_caller]
fn assert_console_headers(what: &str, a: &Answer) {
    assert_eq!(a.header("cache-control"), "no-store", "{what}");
    assert_eq!(a.header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(a.header("x-frame-options"), "DENY", "{what}");
    assert_eq!(a.header("referrer-policy"), "no-referrer", "{what}");
    assert!(a.header("content-security-policy").contains("frame-ancestors 'none'"), "{what}");
}

fn form(h: &Https, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    h.send_raw("POST", path, Cred::None, &all, body.as_bytes().to_vec())
}

/// The pre-session CSRF value from the login page, and the cookie header that carries it.
fn login_page(h: &Https, query: &str) -> (Answer, String, String) {
    let page = h.get(&format!("/ui/login{query}"), Cred::None);
    assert_eq!(page.status, 200, "the login page: {}", String::from_utf8_lossy(&page.body));
    let (csrf, attrs) = set_cookie(&page, "__Host-wharfage_csrf").expect("a __Host- CSRF cookie over TLS");
    assert_hardened("the CSRF cookie", &attrs);
    assert_console_headers("the login page", &page);
    let cookie = format!("__Host-wharfage_csrf={csrf}");
    (page, csrf, cookie)
}

/// Logging in needs the pre-session CSRF cookie and field and a request from the console's
/// own origin: a forged login (which would log a victim into the attacker's account) is
/// refused with no session set. The session cookie is `__Host-`, HttpOnly, SameSite=Strict
/// and Secure; console pages, logins and tokens are never cached.
#[test]
fn forged_logins_are_refused_and_console_cookies_are_hardened() {
    let s = Secured::start(&[]);
    let h = Https::no_redirects(s.ca.pem(), &s.url());
    let (_, csrf, cookie) = login_page(&h, "");
    let own = s.url();
    let body = format!("user=stager&password={}&csrf={csrf}", pw("stager"));

    let refusals: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("no CSRF cookie (a cross-site form cannot send it)", vec![("origin", &own)]),
        ("another site's Origin", vec![("cookie", &cookie), ("origin", "https://evil.example")]),
        ("the same host on another scheme", vec![("cookie", &cookie), ("origin", "http://127.0.0.1")]),
        (
            "Origin null from another site's sandboxed frame",
            vec![("cookie", &cookie), ("origin", "null"), ("sec-fetch-site", "cross-site")],
        ),
        ("a cross-site fetch", vec![("cookie", &cookie), ("sec-fetch-site", "cross-site")]),
        ("a same-site fetch from a sibling host", vec![("cookie", &cookie), ("sec-fetch-site", "same-site")]),
    ];
    for (what, headers) in refusals {
        let a = form(&h, "/ui/login", &headers, &body);
        assert_eq!(a.status, 403, "a login with {what}: {}", String::from_utf8_lossy(&a.body));
        assert!(set_cookie(&a, "__Host-wharfage_session").is_none(), "no session for a login with {what}");
    }
    let a = form(&h, "/ui/login", &[("cookie", &cookie)], &format!("user=stager&password={}&csrf={}", pw("stager"), "0".repeat(32)));
    assert_eq!(a.status, 403, "a login with another CSRF value");

    // From the console itself, as a browser sends it: same-origin, and `Origin: null`
    // because the console's `Referrer-Policy: no-referrer` hides its forms' origin.
    let a = form(&h, "/ui/login", &[("cookie", &cookie), ("origin", "null"), ("sec-fetch-site", "same-origin")], &body);
    assert_eq!(a.status, 303, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("location"), "/ui/");
    assert_console_headers("the login's answer", &a);
    let (session, attrs) = set_cookie(&a, "__Host-wharfage_session").expect("a __Host- session cookie over TLS");
    assert_hardened("the session cookie", &attrs);
    let cookies = format!("__Host-wharfage_session={session}; {cookie}");
    let page = h.send_raw("GET", "/ui/apps", Cred::None, &[("cookie", &cookies)], Vec::new());
    assert_eq!(page.status, 200, "the session opens the console");
    assert_console_headers("a console page", &page);
    // The cookies of plain HTTP (no prefix) are not a session over TLS.
    let plain = h.send_raw("GET", "/ui/apps", Cred::None, &[("cookie", &format!("wharfage_session={session}"))], Vec::new());
    assert_eq!(plain.status, 303, "a cookie without the __Host- prefix is not read over TLS");

    // A console form from another origin is refused even with the session and its token.
    let page = String::from_utf8_lossy(&page.body).into_owned();
    let token = page.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("a CSRF field").to_string();
    let a = form(&h, "/ui/logout", &[("cookie", &cookies), ("origin", "https://evil.example")], &format!("csrf={token}"));
    assert_eq!(a.status, 403, "a cross-origin console form");
    let a = form(&h, "/ui/logout", &[("cookie", &cookies), ("origin", &own)], &format!("csrf={token}"));
    assert_eq!(a.status, 303, "the console's own form");

    // Tokens are never cached, GET or POST.
    let t = h.get("/auth/token?service=wharfage", Cred::Basic("stager", pw("stager")));
    assert_eq!((t.status, t.header("cache-control")), (200, "no-store"));
    let grant = format!("grant_type=password&username=stager&password={}&service=wharfage", pw("stager"));
    let t = form(&h, "/auth/token", &[], &grant);
    assert_eq!((t.status, t.header("cache-control")), (200, "no-store"));
}

/// After login the console only ever sends the browser to a path under `/ui/`: another
/// host (`//evil`, `https://evil`, `/\evil`, with tabs, or percent-encoded), a path that
/// climbs out of `/ui/` and a header injection all become `/ui/`, both in the login page's
/// form and in the login's redirect.
#[test]
fn login_returns_only_to_console_paths() {
    let s = Secured::start(&[]);
    let h = Https::no_redirects(s.ca.pem(), &s.url());
    let hostile = [
        "//evil.example/",
        "https://evil.example/ui/",
        "/\\evil.example",
        "/ui\\..\\..\\\\evil.example",
        "/ui/\\/evil.example",
        "\t//evil.example",
        "/ui/../../evil",
        "/ui/%2e%2e/%2e%2e//evil.example",
        "/ui/..%2f..%2f%2fevil.example",
        "%2F%2Fevil.example",
        "/%2F%2Fevil.example",
        "/ui/%5c%5cevil.example",
        "/ui/%252e%252e/%252e%252e/",
        "/ui//evil.example",
        "/ui/\r\nset-cookie: x=1",
        "/ui/%0d%0aset-cookie:%20x=1",
        "javascript:alert(1)//ui/",
        "",
    ];
    let enc = |v: &str| {
        v.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect::<String>()
    };
    for next in hostile {
        let (page, csrf, cookie) = login_page(&h, &format!("?next={}", enc(next)));
        let html = String::from_utf8_lossy(&page.body).into_owned();
        assert!(html.contains("name=\"next\" value=\"/ui/\""), "the login page for next={next:?} keeps it to /ui/");
        let body = format!("user=stager&password={}&csrf={csrf}&next={}", pw("stager"), enc(next));
        let a = form(&h, "/ui/login", &[("cookie", &cookie)], &body);
        assert_eq!((a.status, a.header("location")), (303, "/ui/"), "a login with next={next:?}");
    }
    // Console paths are kept, their query too.
    let (_, csrf, cookie) = login_page(&h, "");
    let body = format!("user=stager&password={}&csrf={csrf}&next={}", pw("stager"), enc("/ui/apps/shop?tab=history"));
    let a = form(&h, "/ui/login", &[("cookie", &cookie)], &body);
    assert_eq!((a.status, a.header("location")), (303, "/ui/apps/shop?tab=history"));
}
