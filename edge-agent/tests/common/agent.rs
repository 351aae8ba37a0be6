//! The real `edge-agent run` process for end-to-end tests: its ports, its operator token, an
//! HTTP client for the local API, and a reader of its event stream.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::Gateway;
use super::net::{Killed, free_port};

/// A running agent, killed when dropped.
pub(crate) struct RunningAgent {
    pub(crate) process: Killed,
    pub(crate) mqtt: SocketAddr,
    pub(crate) http: SocketAddr,
    pub(crate) token: String,
    pub(crate) log: PathBuf,
    client: reqwest::Client,
}

impl Gateway {
    /// Sets `key = value` (TOML) in `[section]` of agent.toml, replacing the line `init`
    /// wrote for it.
    pub(crate) fn set(&self, section: &str, key: &str, value: &str) {
        let path = self.data.join("agent.toml");
        let text = super::read(&path);
        let mut out = Vec::new();
        let mut in_section = false;
        let mut done = false;
        for line in text.lines() {
            if line.starts_with('[') {
                if in_section && !done {
                    out.push(format!("{key} = {value}"));
                    done = true;
                }
                in_section = line.trim() == format!("[{section}]");
            }
            if in_section && !done && line.starts_with(&format!("{key} =")) {
                out.push(format!("{key} = {value}"));
                done = true;
                continue;
            }
            out.push(line.to_owned());
        }
        if !done {
            if !in_section {
                out.push(format!("[{section}]"));
            }
            out.push(format!("{key} = {value}"));
        }
        std::fs::write(&path, out.join("\n") + "\n").unwrap();
    }

    /// Rewrites `agent.toml` for loopback ports and appends `extra` (TOML sections), then
    /// starts `edge-agent run` and waits until both listeners accept connections.
    pub(crate) async fn run_agent(&self, extra: &str) -> RunningAgent {
        let mut agent = self.spawn_agent(extra, &[]);
        agent.wait_listening().await;
        agent
    }

    /// Like [`Gateway::run_agent`] with `env` added to the process's environment, and without
    /// waiting for anything.
    pub(crate) fn spawn_agent(&self, extra: &str, env: &[(&str, &str)]) -> RunningAgent {
        let (mqtt_port, http_port) = (free_port(), free_port());
        let path = self.data.join("agent.toml");
        let config = super::read(&path);
        // Only the listeners change; the rest of the file is as `init` wrote it (plus `extra`,
        // once).
        let mut config: String = config
            .lines()
            .map(|line| {
                if line.starts_with("listen = \"") && line.contains(":8883") {
                    format!("listen = \"127.0.0.1:{mqtt_port}\"")
                } else if line.starts_with("listen = \"") && line.contains(":8080") {
                    format!("listen = \"127.0.0.1:{http_port}\"")
                } else if let Some(port) = line
                    .strip_prefix("listen = \"127.0.0.1:")
                    .and_then(|rest| rest.trim_end_matches('"').parse::<u16>().ok())
                {
                    // A restart keeps the ports chosen the first time, unless another process
                    // took one while the agent was down (tests run in parallel and pick free
                    // ports too): this agent would then fail to bind while the other answered
                    // in its place. Such a port is replaced by a fresh one.
                    if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                        line.to_owned()
                    } else {
                        format!("listen = \"127.0.0.1:{}\"", free_port())
                    }
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        config.push('\n');
        if !extra.is_empty() && !config.contains(extra) {
            config.push_str(extra);
        }
        std::fs::write(&path, &config).unwrap();
        let ports: Vec<u16> = config
            .lines()
            .filter_map(|l| l.strip_prefix("listen = \"127.0.0.1:"))
            .map(|l| l.trim_end_matches('"').parse().unwrap())
            .collect();
        let (mqtt, http) = (
            SocketAddr::from((Ipv4Addr::LOCALHOST, ports[0])),
            SocketAddr::from((Ipv4Addr::LOCALHOST, ports[1])),
        );
        self.start_process(mqtt, http, env)
    }

    fn start_process(
        &self,
        mqtt: SocketAddr,
        http: SocketAddr,
        env: &[(&str, &str)],
    ) -> RunningAgent {
        let log = self.tmp.path().join("agent.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_edge-agent"))
            .args(["run", "--data-dir", super::s(&self.data)])
            .env("RUST_LOG", "edge_agent=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        // `init` wrote the operator token; `run` only reads it.
        let token = super::read(&self.data.join("operator-token"))
            .trim()
            .to_owned();
        RunningAgent {
            process: Killed(child),
            mqtt,
            http,
            token,
            log,
            client: http_client(),
        }
    }
}

/// An HTTP client (reqwest is built without a default TLS provider: the process installs
/// ring, as the agent does).
pub(crate) fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

impl RunningAgent {
    /// Waits up to 20 s until both listeners accept connections; fails if the agent exits.
    pub(crate) async fn wait_listening(&mut self) {
        for addr in [self.mqtt, self.http] {
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                self.assert_running();
                assert!(
                    std::time::Instant::now() < deadline,
                    "nothing listens on {addr}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    /// Fails the test, with the agent's log, if the process has exited.
    pub(crate) fn assert_running(&mut self) {
        if let Some(status) = self.process.0.try_wait().unwrap() {
            panic!("edge-agent run exited ({status}):\n{}", self.log());
        }
    }
    /// `http://127.0.0.1:PORT{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// GET with the operator token: (status, JSON body).
    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POST with the operator token and `body` (JSON text, may be empty): (status, JSON).
    pub(crate) async fn post(&self, path: &str, body: &str) -> (u16, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Opens the event stream, resuming after `last_id` when given.
    pub(crate) async fn events(&self, last_id: Option<i64>) -> EventStream {
        let mut request = self
            .client
            .get(self.url("/api/v1/events"))
            .bearer_auth(&self.token);
        if let Some(id) = last_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "the event stream opens");
        EventStream {
            response,
            buf: String::new(),
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns how long it took.
    pub(crate) fn terminate(&mut self) -> (Duration, std::process::ExitStatus) {
        let start = std::time::Instant::now();
        let pid = self.process.0.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.process.0.wait().unwrap();
        (start.elapsed(), status)
    }

    /// The agent's log so far, for failure messages.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first JSON log line that `matches` accepts, once the agent has written it; fails
    /// the test, with the log, when none comes within `wait`.
    pub(crate) async fn log_line(&self, wait: Duration, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let log = self.log();
            let found = log
                .lines()
                .filter_map(|line| serde_json::from_str::<Value>(line).ok())
                .find(|line| matches(line));
            if let Some(line) = found {
                return line;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no such log line within {wait:?}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// One event from the stream.
#[derive(Debug, Clone)]
pub(crate) struct Sse {
    pub(crate) id: Option<i64>,
    pub(crate) event: String,
    pub(crate) data: Value,
}

/// The agent's SSE stream, parsed.
pub(crate) struct EventStream {
    response: reqwest::Response,
    buf: String,
}

impl EventStream {
    /// The next event within `wait` (comments are skipped); `None` on timeout or end.
    pub(crate) async fn next(&mut self, wait: Duration) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut sse = Sse {
                    id: None,
                    event: "message".into(),
                    data: Value::Null,
                };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        sse.id = v.trim().parse().ok();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        sse.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() && sse.id.is_none() {
                    continue; // a heartbeat comment
                }
                sse.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                return Some(sse);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next event of kind `event` whose data satisfies `matches`, within `wait`.
    pub(crate) async fn wait_for(
        &mut self,
        event: &str,
        wait: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Sse {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some(sse) if sse.event == event && matches(&sse.data) => return sse,
                Some(_) => {}
                None => panic!("no matching {event:?} event within {wait:?}"),
            }
        }
    }
}
