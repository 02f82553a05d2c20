//! The operator console in a real browser: headless chromium over WebDriver against the real
//! `wharfage serve`, with htpasswd users (an admin and a stager) and Debian's
//! `docker-registry` as the upstream to stage from. One browser session walks what an
//! operator does (log in, look at an app, stage from the form, collect garbage, unpin, log
//! out) and saves screenshots of every page at desktop and phone widths; forged and
//! forbidden posts are sent with the test's own HTTP client and must be refused. Without
//! htpasswd (an open registry) a form without its CSRF token is refused too.

mod browser;
mod console;
mod hostile;
mod open;
mod rights;

use crate::client::Resp;
use crate::fixtures::{Rng, OCI_MANIFEST};
use crate::skopeo::Skopeo;
use crate::staging::images::{image, layer};
use crate::staging::upstream::Upstream;
use crate::staging::{layout, Wharf};

/// Pushes an image of two layers (one of 3 MB, so a staging shows progress) to the
/// upstream as `repo:v1`; returns its manifest digest.
pub(crate) fn push_image(wharf: &Wharf, up: &Upstream, repo: &str, seed: u64) -> String {
    let mut l = layout(&wharf.scratch(&format!("src-{seed}")));
    let mut rng = Rng::new(seed);
    let big = layer(&mut l, &mut rng, "big.bin", 3_000_000);
    let small = layer(&mut l, &mut rng, "small.bin", 20_000);
    let img = image(&mut l, "amd64", &[&big, &small]);
    l.tag("v1", OCI_MANIFEST, &img.digest);
    up.push(&Skopeo::new(), &l, "v1", repo);
    img.digest
}

/// A console form posted with the test's client: `cookies` as the browser would send them.
pub(crate) fn post_form(wharf: &Wharf, path: &str, cookies: &str, form: &str) -> Resp {
    let headers = [("content-type", "application/x-www-form-urlencoded"), ("cookie", cookies)];
    wharf.http.send("POST", path, &headers, form.as_bytes().to_vec())
}
