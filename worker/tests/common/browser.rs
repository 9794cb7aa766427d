//! A headless Chromium driven over the W3C WebDriver protocol (Debian's `chromium` and
//! `chromium-driver`), for the console's tests: a few commands, each a JSON request.

use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    base: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; scripts/test installs it)");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        super::eventually(Duration::from_secs(20), "chromedriver did not start", || async {
            let status: Value = http
                .get(format!("{base}/status"))
                .send()
                .await
                .map_err(|e| e.to_string())?
                .json()
                .await
                .map_err(|e| e.to_string())?;
            if status["value"]["ready"] == true { Ok(()) } else { Err(status.to_string()) }
        })
        .await;
        let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", format!("--window-size={width},{height}")]
        });
        if let Some(b) = binary {
            options["binary"] = json!(b);
        }
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options, "goog:loggingPrefs": { "browser": "ALL" } } } });
        let created: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .expect("json");
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        Browser { driver, http, session, base }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let answer: Value = req.send().await.expect("webdriver").json().await.expect("webdriver json");
        answer["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.call(reqwest::Method::POST, "/window/rect", Some(json!({ "width": width, "height": height })))
            .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn eval(&self, script: &str, args: Value) -> Value {
        self.call(reqwest::Method::POST, "/execute/sync", Some(json!({ "script": script, "args": args })))
            .await
    }

    /// The element `css` matches, once it exists.
    pub async fn find(&self, css: &str) -> String {
        super::eventually(Duration::from_secs(20), &format!("no element {css}"), || async {
            let found = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({ "using": "css selector", "value": css })),
                )
                .await;
            found[ELEMENT].as_str().map(str::to_string).ok_or_else(|| found.to_string())
        })
        .await
    }

    /// The text of `css` once `ready` accepts it.
    pub async fn text_when(&self, css: &str, ready: impl Fn(&str) -> bool) -> String {
        super::eventually(
            Duration::from_secs(20),
            &format!("{css} never showed what was expected"),
            || async {
                let text = self
                    .eval(
                        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                        json!([css]),
                    )
                    .await;
                match text.as_str() {
                    Some(t) if ready(t) => Ok(t.to_string()),
                    _ => Err(text.to_string()),
                }
            },
        )
        .await
    }

    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    /// Replaces the value of the input `css` with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/clear"), Some(json!({}))).await;
        self.call(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({ "text": text })))
            .await;
    }

    /// Waits until the console finished rendering `page`; the milliseconds it took, its API
    /// calls included.
    pub async fn rendered(&self, page: &str) -> f64 {
        super::eventually(Duration::from_secs(20), &format!("page {page} never finished rendering"), || async {
            let v = self
                .eval(
                    "const m = document.getElementById('main');
                     return m && m.dataset.page === arguments[0] && m.getAttribute('aria-busy') === 'false' ? Number(m.dataset.renderMs) : null;",
                    json!([page]),
                )
                .await;
            v.as_f64().ok_or_else(|| v.to_string())
        })
        .await
    }

    pub async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine as _;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(png.as_str().expect("base64")).expect("png");
        std::fs::create_dir_all(path.parent().expect("dir")).expect("screenshot dir");
        std::fs::write(path, bytes).expect("screenshot");
    }

    /// The browser's console messages of level SEVERE (errors) since the last call.
    pub async fn console_errors(&self) -> Vec<String> {
        let entries = self.call(reqwest::Method::POST, "/se/log", Some(json!({ "type": "browser" }))).await;
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    pub async fn quit(mut self) {
        let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send().await;
        let _ = self.driver.start_kill();
        let _ = self.driver.wait().await;
    }
}
