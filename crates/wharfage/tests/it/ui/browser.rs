//! A headless chromium driven over WebDriver (chromedriver on a free loopback port, a child
//! that dies with the test), with screenshots of every page at desktop and phone widths
//! saved under `<target>/ui-screenshots/`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use testkit::ChildGuard;

/// Desktop and phone viewports of the screenshots.
const DESKTOP: (u32, u32) = (1280, 800);
const PHONE: (u32, u32) = (375, 812);
/// How long a page may take to show what a step waits for.
const WAIT: Duration = Duration::from_secs(30);

/// Where screenshots go: `$CARGO_TARGET_DIR/ui-screenshots`, else the workspace's `target/`.
pub(crate) fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("ui-screenshots")
}

/// A browser session against one base URL.
pub(crate) struct Browser {
    pub client: Client,
    base: String,
    _driver: ChildGuard,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless chromium at desktop size.
    pub(crate) async fn start(base: &str) -> Browser {
        for program in ["chromium", "chromedriver"] {
            assert!(testkit::on_path(program), "{program} is not on PATH: install chromium and chromium-driver (scripts/test.sh does)");
        }
        let port = testkit::free_port();
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}")).stdout(Stdio::null()).stderr(Stdio::null());
        let driver = testkit::spawn(cmd).expect("start chromedriver");
        let profile = tempfile::Builder::new().prefix("wharfage-ui-chromium-").tempdir().unwrap();
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-gpu".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={},{}", DESKTOP.0, DESKTOP.1),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), serde_json::json!({ "args": args }));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        let client = loop {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver on port {port} did not start a session: {e}"),
            }
        };
        client.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();
        std::fs::create_dir_all(screenshot_dir()).unwrap();
        Browser { client, base: base.trim_end_matches('/').to_string(), _driver: driver, _profile: profile }
    }

    pub(crate) async fn goto(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap_or_else(|e| panic!("open {path}: {e}"));
    }

    /// The path of the page shown.
    pub(crate) async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    /// Waits for an element (CSS selector) and returns it.
    pub(crate) async fn find(&self, css: &str) -> Element {
        match self.client.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => panic!("no {css} on {}: {e}\n{}", self.path().await, self.client.source().await.unwrap_or_default()),
        }
    }

    /// The text of an element.
    pub(crate) async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// An attribute of an element (empty when it has none).
    pub(crate) async fn attr(&self, css: &str, name: &str) -> String {
        self.find(css).await.attr(name).await.unwrap().unwrap_or_default()
    }

    /// Whether an element is on the page now.
    pub(crate) async fn has(&self, css: &str) -> bool {
        self.client.find(Locator::Css(css)).await.is_ok()
    }

    pub(crate) async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types into a form field.
    pub(crate) async fn fill(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// A cookie's value, if the browser has it.
    pub(crate) async fn cookie(&self, name: &str) -> Option<String> {
        self.client.get_named_cookie(name).await.ok().map(|c| c.value().to_string())
    }

    /// Saves `<name>-desktop.png` and `<name>-phone.png` of the page shown.
    pub(crate) async fn shoot(&self, name: &str) {
        for (suffix, (w, h)) in [("desktop", DESKTOP), ("phone", PHONE)] {
            self.client.set_window_size(w, h).await.unwrap();
            tokio::time::sleep(Duration::from_millis(150)).await;
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(screenshot_dir().join(format!("{name}-{suffix}.png")), png).unwrap();
        }
        self.client.set_window_size(DESKTOP.0, DESKTOP.1).await.unwrap();
    }

    pub(crate) async fn close(self) {
        let _ = self.client.close().await;
    }
}
