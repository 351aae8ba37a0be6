//! Headless Chromium for tests of the dashboard pages: a real browser, driven over the Chrome
//! DevTools Protocol (CDP).
//!
//! [`Browser::start`] runs Debian's `chromium` (which `cargo xtask test` installs) with a
//! throwaway profile and `--remote-debugging-port=0`, reads the DevTools websocket address from
//! its stderr, opens one page and attaches to it. Tests then navigate, evaluate JavaScript,
//! wait for a condition and click elements with real mouse events (which count as a user
//! gesture, so they unlock audio as a person's click would). Uncaught exceptions, failed
//! resource loads and `console.error` calls are collected for [`Browser::errors`]. Chromium and
//! all its child processes die when the `Browser` is dropped, also when a test panics.
//!
//! Why a small CDP client over `tokio-tungstenite` rather than the `headless_chrome` crate: the
//! tests need five CDP commands (`Target.createTarget`, `Page.navigate`, `Runtime.evaluate`,
//! `Input.dispatchMouseEvent`, `Emulation.setDeviceMetricsOverride`), which are a few JSON
//! messages. `headless_chrome` generates bindings for the whole protocol in a build script
//! (and with its default `offline` feature off it downloads the protocol description at build
//! time, which our CI cannot do), is blocking where our tests are tokio, and brings its own
//! dependency tree; `tokio-tungstenite` without TLS adds a handful of small crates, and the
//! protocol messages below are easy to read against the CDP documentation.

// Test helpers are not `#[test]` functions, so clippy.toml's allow-unwrap-in-tests does not
// reach them; failing loudly is exactly what a helper should do.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::net::Killed;

/// How long [`Browser::wait_for`] waits by default.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// How long Chromium may take to start, and one CDP command or page load to answer. Generous:
/// the test machines have two cores and build while they test.
const SLOW: Duration = Duration::from_secs(30);

/// How often [`Browser::wait_for`] evaluates its expression.
const POLL: Duration = Duration::from_millis(50);

/// Where [`Browser::click`] should click for a CSS selector: the centre of the element, or
/// why a person could not click it.
const CLICK_PROBE: &str = r#"(selector) => {
    const el = document.querySelector(selector);
    if (!el) return { error: "no element matches" };
    if (el.disabled) return { error: "the element is disabled" };
    el.scrollIntoView({ block: "center", inline: "center" });
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) return { error: "the element is not visible" };
    const x = r.left + r.width / 2, y = r.top + r.height / 2;
    const hit = document.elementFromPoint(x, y);
    if (!hit || !el.contains(hit)) {
        const what = hit ? hit.outerHTML.slice(0, 100) : "nothing";
        return { error: "the element is covered by " + what };
    }
    return { x, y };
}"#;

/// One headless Chromium with one page, killed on drop.
pub(crate) struct Browser {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The CDP session of our page (flat session mode: every page command carries it).
    session: String,
    next_id: u64,
    /// Set by `Page.loadEventFired`, cleared by [`Browser::goto`].
    loaded: bool,
    errors: Vec<String>,
    // Fields drop in order: the socket closes, then Chromium is killed, then its profile goes.
    _chromium: Killed,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium and opens an `about:blank` page 1280x800 CSS pixels large.
    pub(crate) async fn start() -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--mute-audio",
                "--window-size=1280,800",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `chromium` (`cargo xtask test` installs Debian's): {e}")
            });
        let stderr = child.stderr.take().unwrap();
        let chromium = Killed(child);

        // Chromium writes to stderr for as long as it runs; a reader thread keeps the pipe
        // drained (a full pipe would block it) and hands the lines over until nobody listens.
        let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = lines_tx.send(line);
            }
        });
        let deadline = Instant::now() + SLOW;
        let mut seen = Vec::new();
        let url = loop {
            match tokio::time::timeout_at(deadline, lines.recv()).await {
                Ok(Some(line)) => match line.split_once("DevTools listening on ") {
                    Some((_, url)) => break url.trim().to_owned(),
                    None => seen.push(line),
                },
                Ok(None) => panic!("chromium exited before listening:\n{}", seen.join("\n")),
                Err(_) => panic!(
                    "chromium did not print its DevTools address within {SLOW:?}:\n{}",
                    seen.join("\n")
                ),
            }
        };
        drop(lines);

        let (ws, _) = tokio::time::timeout(SLOW, tokio_tungstenite::connect_async(&url))
            .await
            .unwrap_or_else(|_| panic!("no websocket handshake with {url} within {SLOW:?}"))
            .unwrap_or_else(|e| panic!("cannot connect to chromium at {url}: {e}"));
        let mut browser = Browser {
            ws,
            session: String::new(),
            next_id: 0,
            loaded: false,
            errors: Vec::new(),
            _chromium: chromium,
            _profile: profile,
        };
        let target = browser
            .browser_call("Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let attached = browser
            .browser_call(
                "Target.attachToTarget",
                json!({ "targetId": target["targetId"], "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_owned();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.call(domain, json!({})).await;
        }
        browser
    }

    /// Loads `url` and waits for its `load` event (scripts ran, styles and images loaded).
    pub(crate) async fn goto(&mut self, url: &str) {
        self.loaded = false;
        let nav = self.call("Page.navigate", json!({ "url": url })).await;
        if let Some(error) = nav.get("errorText") {
            panic!("cannot load {url}: {error}");
        }
        let deadline = Instant::now() + SLOW;
        while !self.loaded {
            assert!(
                self.pump(deadline).await,
                "{url} did not finish loading within {SLOW:?}"
            );
        }
    }

    /// Loads `url` with `localStorage` already holding `items`, set before any of the page's
    /// own scripts run (as a page that was used before would find it). Only this load gets
    /// them; a later reload sees whatever the page left in storage.
    pub(crate) async fn goto_with_local_storage(&mut self, url: &str, items: &[(&str, &str)]) {
        let mut source = String::new();
        for (key, value) in items {
            let (key, value) = (json!(key), json!(value));
            source.push_str(&format!("localStorage.setItem({key}, {value});\n"));
        }
        let script = self
            .call(
                "Page.addScriptToEvaluateOnNewDocument",
                json!({ "source": source }),
            )
            .await;
        self.goto(url).await;
        self.call(
            "Page.removeScriptToEvaluateOnNewDocument",
            json!({ "identifier": script["identifier"] }),
        )
        .await;
    }

    /// Emulates a screen `width` x `height` CSS pixels large (a phone is 360 wide).
    pub(crate) async fn viewport(&mut self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600,
            }),
        )
        .await;
    }

    /// The JSON value of the JavaScript expression `expr` (promises are awaited; `undefined`
    /// is `null`). Panics when it throws.
    pub(crate) async fn eval(&mut self, expr: &str) -> Value {
        self.try_eval(expr)
            .await
            .unwrap_or_else(|e| panic!("`{expr}` threw: {e}"))
    }

    /// Like [`Browser::eval`], with what it threw as the error.
    pub(crate) async fn try_eval(&mut self, expr: &str) -> Result<Value, String> {
        let reply = self
            .try_call(
                "Runtime.evaluate",
                json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(details) = reply.get("exceptionDetails") {
            return Err(describe_exception(details));
        }
        let result = &reply["result"];
        Ok(
            match result.get("unserializableValue").and_then(Value::as_str) {
                Some("NaN") => Value::Null,
                Some("-0") => json!(0),
                Some(other) => json!(other),
                None => result.get("value").cloned().unwrap_or(Value::Null),
            },
        )
    }

    /// Waits up to [`WAIT`] until `expr` is truthy and returns its value; panics naming the
    /// expression and its last value (or what it last threw) when it never is.
    pub(crate) async fn wait_for(&mut self, expr: &str) -> Value {
        self.wait_for_within(expr, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Evaluates `expr` every 50 ms until it is truthy (its value) or `timeout` passed (an
    /// error naming the expression and its last value). A throw counts as not yet: the element
    /// it reads may not exist yet.
    pub(crate) async fn wait_for_within(
        &mut self,
        expr: &str,
        timeout: Duration,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.try_eval(expr).await {
                Ok(value) if truthy(&value) => return Ok(value),
                Ok(value) => format!("last value {value}"),
                Err(thrown) => format!("last threw {thrown}"),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "`{expr}` did not become true within {timeout:?} ({last})"
                ));
            }
            tokio::time::sleep(POLL.min(left)).await;
        }
    }

    /// Clicks the centre of the first element matching the CSS `selector` with real mouse
    /// events, after scrolling it into view. Panics when there is no such element, or it is
    /// invisible, disabled or covered by another element: a person could not click it either.
    pub(crate) async fn click(&mut self, selector: &str) {
        let probe = format!("({CLICK_PROBE})({})", json!(selector));
        let at = self.eval(&probe).await;
        if let Some(error) = at.get("error") {
            panic!(
                "cannot click `{selector}`: {}",
                error.as_str().unwrap_or_default()
            );
        }
        let (x, y) = (&at["x"], &at["y"]);
        for (kind, buttons) in [("mouseMoved", 0), ("mousePressed", 1), ("mouseReleased", 0)] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({
                    "type": kind, "x": x, "y": y, "button": "left",
                    "buttons": buttons, "clickCount": 1,
                }),
            )
            .await;
        }
    }

    /// Everything the page reported as an error so far: uncaught exceptions and promise
    /// rejections, `console.error` and `console.assert` failures, and the browser's own error
    /// log (a resource that failed to load, a refused script). Empty for a healthy page.
    pub(crate) async fn errors(&mut self) -> Vec<String> {
        // CDP delivers in order, so a round trip brings in every event sent before it.
        self.eval("0").await;
        self.errors.clone()
    }

    // === CDP plumbing ===

    /// A command to our page; panics on a protocol error.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params)
            .await
            .unwrap_or_else(|e| panic!("CDP {method} failed: {e}"))
    }

    /// A command to the browser itself (no session); panics on a protocol error.
    async fn browser_call(&mut self, method: &str, params: Value) -> Value {
        let session = std::mem::take(&mut self.session);
        let reply = self.try_call(method, params).await;
        self.session = session;
        reply.unwrap_or_else(|e| panic!("CDP {method} failed: {e}"))
    }

    /// Sends one command and reads messages (handling events) until its reply arrives. `Err`
    /// holds a protocol error's message; no reply within [`SLOW`] panics.
    async fn try_call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.ws
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap_or_else(|e| panic!("CDP {method}: cannot send to chromium: {e}"));
        let deadline = Instant::now() + SLOW;
        loop {
            let message = self
                .next_message(deadline)
                .await
                .unwrap_or_else(|| panic!("CDP {method}: no reply within {SLOW:?}"));
            if message.get("id").and_then(Value::as_u64) == Some(id) {
                return match message.get("error") {
                    Some(error) => Err(error["message"].as_str().unwrap_or("?").to_owned()),
                    None => Ok(message["result"].clone()),
                };
            }
            self.on_event(&message);
        }
    }

    /// Handles the next message, an event, before `deadline`; false when none came.
    async fn pump(&mut self, deadline: Instant) -> bool {
        match self.next_message(deadline).await {
            Some(message) => {
                self.on_event(&message);
                true
            }
            None => false,
        }
    }

    /// The next CDP message, or `None` at `deadline`. Panics when chromium goes away.
    async fn next_message(&mut self, deadline: Instant) -> Option<Value> {
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return None,
                Ok(None) => panic!("chromium closed the DevTools connection"),
                Ok(Some(Err(e))) => panic!("DevTools connection failed: {e}"),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Message::Text(text) = frame {
                return Some(serde_json::from_str(text.as_str()).unwrap());
            }
        }
    }

    fn on_event(&mut self, message: &Value) {
        let params = &message["params"];
        match message["method"].as_str().unwrap_or_default() {
            "Page.loadEventFired" => self.loaded = true,
            "Runtime.exceptionThrown" => {
                let error = describe_exception(&params["exceptionDetails"]);
                self.errors.push(format!("exception: {error}"));
            }
            "Runtime.consoleAPICalled"
                if matches!(params["type"].as_str(), Some("error" | "assert")) =>
            {
                let args: Vec<String> = params["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|arg| match arg.get("value") {
                        Some(Value::String(s)) => s.clone(),
                        Some(value) => value.to_string(),
                        None => arg["description"].as_str().unwrap_or("?").to_owned(),
                    })
                    .collect();
                self.errors.push(format!(
                    "console.{}: {}",
                    params["type"].as_str().unwrap_or_default(),
                    args.join(" ")
                ));
            }
            "Log.entryAdded" if params["entry"]["level"] == "error" => {
                let entry = &params["entry"];
                let url = entry["url"].as_str().unwrap_or_default();
                self.errors.push(format!(
                    "{} error: {} {url}",
                    entry["source"].as_str().unwrap_or("browser"),
                    entry["text"].as_str().unwrap_or_default()
                ));
            }
            _ => {}
        }
    }
}

/// JavaScript's truthiness for a JSON value.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// A CDP `ExceptionDetails` as one line: the exception's own description (message and stack)
/// when there is one, with where it was thrown.
fn describe_exception(details: &Value) -> String {
    let what = details["exception"]["description"]
        .as_str()
        .or_else(|| details["text"].as_str())
        .unwrap_or("exception");
    let url = details["url"].as_str().unwrap_or("<eval>");
    let line = details["lineNumber"].as_u64().unwrap_or(0) + 1;
    format!("{what} (at {url}:{line})")
}
