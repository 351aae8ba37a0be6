//! The agent's one HTTP client (reqwest), and the only module that names reqwest: the cloud's
//! enroll and sync endpoints (`enroll`, `sync`) and `edge-agent status` asking the running
//! agent's local API. It builds the clients the way each needs, reads answers through a size
//! limit, and says what went wrong with reqwest's causes.
//!
//! Callers name [`StatusCode`] (the `http` crate's, as reqwest re-exports it) and headers by
//! their lower-case names; nothing of reqwest's own reaches them.

use std::time::Duration;

pub(crate) use reqwest::StatusCode;
use reqwest::redirect::Policy;

/// How long a cloud client waits for its TCP and TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// What the agent calls itself towards the cloud.
const USER_AGENT: &str = concat!("hallwatch-edge-agent/", env!("CARGO_PKG_VERSION"));

/// How a cloud client keeps its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Connections {
    /// One exchange now and then (enrollment): reqwest's defaults.
    Default,
    /// The sync loop's: kept for the next request, `TCP_NODELAY` (a small batch must not wait
    /// for the acknowledgement of the previous one).
    Pooled,
    /// Like `Pooled`, but none kept: every request opens its own connection, which cannot be
    /// as dead as the one a hung request is stuck on.
    Fresh,
}

/// A client for the cloud: connects within 10 s, finishes each exchange within `timeout`,
/// never follows a redirect (it could carry a token elsewhere, even to plain http), and
/// sends the agent's user agent. `tls` is the sync listener's mutual TLS; without it the
/// platform's roots verify the cloud.
pub(crate) fn cloud_client(
    timeout: Duration,
    tls: Option<rustls::ClientConfig>,
    connections: Connections,
) -> Result<Client, Error> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(timeout)
        .redirect(Policy::none())
        .user_agent(USER_AGENT);
    if let Some(tls) = tls {
        builder = builder.tls_backend_preconfigured(tls);
    }
    match connections {
        Connections::Default => {}
        Connections::Pooled => builder = builder.tcp_nodelay(true),
        Connections::Fresh => builder = builder.tcp_nodelay(true).pool_max_idle_per_host(0),
    }
    Ok(Client(builder.build()?))
}

/// A client for the agent's own local API on this machine: within `timeout`, never through a
/// proxy (`HTTP_PROXY` in the environment must not send a loopback request elsewhere).
pub(crate) fn local_client(timeout: Duration) -> Result<Client, Error> {
    Ok(Client(
        reqwest::Client::builder()
            .timeout(timeout)
            .no_proxy()
            .build()?,
    ))
}

/// A built client; cheap to clone (the connections are shared).
#[derive(Debug, Clone)]
pub(crate) struct Client(reqwest::Client);

impl Client {
    /// A `GET` of `url`.
    pub(crate) fn get(&self, url: url::Url) -> Request {
        Request(self.0.get(url))
    }

    /// A `POST` to `url`.
    pub(crate) fn post(&self, url: url::Url) -> Request {
        Request(self.0.post(url))
    }
}

/// A request being put together; [`Request::send`] sends it.
#[derive(Debug)]
pub(crate) struct Request(reqwest::RequestBuilder);

impl Request {
    /// Adds the header `name: value`.
    pub(crate) fn header(self, name: &'static str, value: &str) -> Request {
        Request(self.0.header(name, value))
    }

    /// `Authorization: Bearer token`.
    pub(crate) fn bearer(self, token: &str) -> Request {
        Request(self.0.bearer_auth(token))
    }

    /// This request's own deadline, instead of the client's.
    pub(crate) fn timeout(self, timeout: Duration) -> Request {
        Request(self.0.timeout(timeout))
    }

    /// The body, sent as is.
    pub(crate) fn body(self, body: Vec<u8>) -> Request {
        Request(self.0.body(body))
    }

    /// Sends it; the answer once its head has arrived.
    pub(crate) async fn send(self) -> Result<Answer, Error> {
        Ok(Answer(self.0.send().await?))
    }
}

/// An answer whose head has arrived; its body is read with [`Answer::read_bounded`].
#[derive(Debug)]
pub(crate) struct Answer(reqwest::Response);

impl Answer {
    /// The status.
    pub(crate) fn status(&self) -> StatusCode {
        self.0.status()
    }

    /// The header `name` (lower case), if present and text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.0.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The whole body, for a server of our own (the local agent).
    pub(crate) async fn read_all(self) -> Result<Vec<u8>, Error> {
        Ok(self.0.bytes().await?.to_vec())
    }

    /// The body, refused once it passes `max` bytes, announced or not.
    pub(crate) async fn read_bounded(mut self, max: usize) -> Result<Vec<u8>, String> {
        let too_large = || format!("the answer is larger than {max} bytes");
        if self
            .0
            .content_length()
            .is_some_and(|len| len > u64::try_from(max).unwrap_or(u64::MAX))
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = self
            .0
            .chunk()
            .await
            .map_err(|e| format!("reading it failed: {}", chain(&e)))?
        {
            if body.len() + chunk.len() > max {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// A request that got no answer, or a client that could not be built.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct Error(#[from] reqwest::Error);

impl Error {
    /// The deadline passed before the answer.
    pub(crate) fn is_timeout(&self) -> bool {
        self.0.is_timeout()
    }

    /// No connection could be made (nothing listens, refused, unreachable).
    pub(crate) fn is_connect(&self) -> bool {
        self.0.is_connect()
    }

    /// What actually went wrong: reqwest's own message repeats the URL, the causes say
    /// "connection refused" or "invalid peer certificate: UnknownIssuer".
    pub(crate) fn causes(&self) -> String {
        std::error::Error::source(&self.0).map_or_else(|| self.0.to_string(), chain)
    }

    /// The message with every cause.
    pub(crate) fn chain(&self) -> String {
        chain(&self.0)
    }
}

/// An error with its causes, joined by `: `.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// At most 200 characters of a body that is not the cloud's, for an error message.
pub(crate) fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    if text.trim().is_empty() {
        "an empty answer".into()
    } else {
        format!("{:?}", text.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_cuts_and_blanks_what_a_log_line_cannot_hold() {
        assert_eq!(printable(b""), "an empty answer");
        assert_eq!(printable(b" \n\t"), "an empty answer");
        assert_eq!(printable(b"bad\ngateway"), "\"bad gateway\"");
        assert_eq!(printable("x".repeat(300).as_bytes()).len(), 202);
    }

    #[tokio::test]
    async fn a_refused_connection_says_so_in_its_causes() {
        // The binary installs ring as the process's provider first thing; so does this test.
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = local_client(Duration::from_secs(5)).unwrap();
        let url = url::Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let err = client.get(url).send().await.unwrap_err();
        assert!(err.is_connect(), "{err}");
        assert!(!err.is_timeout());
        // The causes leave out reqwest's own first line, which repeats the URL.
        assert_ne!(err.causes(), err.to_string());
        assert!(err.chain().starts_with(&err.to_string()), "{}", err.chain());
        assert!(err.chain().ends_with(&err.causes()), "{}", err.chain());
    }
}
