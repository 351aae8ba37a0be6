//! The one request of the sync loop: `POST {sync_url}/api/v1/sync` with a `SyncBatch`, over
//! mutual TLS with the certificate `edge-agent enroll` obtained, trusting only the cloud's
//! gateway CA. Every answer is sorted into an [`Outcome`] the lane knows how to act on.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use shared::ids::{GatewayId, Seq};
use shared::sync::{Limits, SyncAck, SyncBatch, decode_ack, encode_batch};
use tracing::Instrument;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::cloud_http::{self, Client, Connections, StatusCode, printable};
use crate::config::{SyncSettings, SyncUrl};
use crate::enroll::{CLOUD_CA_FILE, GATEWAY_CERT_FILE, GATEWAY_KEY_FILE};
use crate::metrics::Metrics;

/// What the sync listener answered a probe ([`SyncClient::probe`]).
#[derive(Debug, Clone)]
pub struct Probe {
    /// The HTTP status (the endpoint takes POST only, so 405 is the healthy answer).
    pub status: StatusCode,
    /// The answer's `Date` header, as sent.
    pub date: Option<String>,
    /// When the request went out.
    pub sent: std::time::SystemTime,
    /// When the answer's head arrived.
    pub received: std::time::SystemTime,
}

/// The path of the sync endpoint under the sync URL.
pub const SYNC_PATH: &str = "/api/v1/sync";
/// The media type of sync bodies both ways.
const SYNC_MEDIA_TYPE: &str = "application/vnd.hallwatch.sync";
/// The largest answer read (an ack with the most commands the codec accepts fits easily).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Why the sync client could not be built: the enrollment files are missing or unusable.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {path}: {reason} (run `edge-agent enroll`)")]
    File { path: String, reason: String },
    #[error("{0}")]
    Identity(String),
}

/// What became of one batch.
#[derive(Debug)]
pub enum Outcome {
    /// Stored: the cloud's cursor and the commands it sent.
    Acked(SyncAck),
    /// The cloud needs `expected` first.
    Gap { expected: Seq },
    /// Too many requests: wait this long.
    TooFast { retry_after: Duration },
    /// The batch is too large for the cloud; send fewer records.
    TooLarge { message: String },
    /// The cloud cannot read the batch (400): a record in it is malformed.
    Malformed { message: String },
    /// The cloud refuses this gateway (401/403): not enrolled, revoked, or mismatched.
    Refused { status: StatusCode, message: String },
    /// No usable answer: unreachable, timed out, a server error, an unreadable answer.
    Failed { message: String },
}

impl Outcome {
    /// The outcome's name in metrics and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Acked(_) => "acked",
            Outcome::Gap { .. } => "gap",
            Outcome::TooFast { .. } => "too_fast",
            Outcome::TooLarge { .. } => "too_large",
            Outcome::Malformed { .. } => "malformed",
            Outcome::Refused { .. } => "refused",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// The cloud's error body, `{"error": {"code", "message"}, "expected_seq"?}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
    #[serde(default)]
    expected_seq: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    message: String,
}

/// A client for the sync endpoint, with the gateway's identity loaded.
#[derive(Debug, Clone)]
pub struct SyncClient {
    http: Client,
    /// The same, keeping no idle connections: a request on it always opens a new one (see
    /// [`SyncClient::send_fresh`]).
    fresh: Client,
    url: url::Url,
    limits: Limits,
    metrics: Option<Arc<Metrics>>,
}

impl SyncClient {
    /// Loads the gateway's key, certificate and the cloud CA from `data_dir` and checks they
    /// belong together and to `gateway`.
    pub fn new(
        data_dir: &Path,
        sync_url: &SyncUrl,
        gateway: &GatewayId,
        settings: &SyncSettings,
    ) -> Result<SyncClient, ClientError> {
        let tls = tls_config(data_dir, gateway)?;
        let build = |connections| {
            cloud_http::cloud_client(settings.request_timeout, Some(tls.clone()), connections)
                .map_err(|e| ClientError::Identity(format!("cannot build the sync client: {e}")))
        };
        Ok(SyncClient {
            http: build(Connections::Pooled)?,
            fresh: build(Connections::Fresh)?,
            url: sync_url.endpoint(SYNC_PATH),
            limits: Limits::default(),
            metrics: None,
        })
    }

    /// A `GET` of the sync endpoint on a new connection: it proves the listener reachable,
    /// its certificate trusted and this gateway's accepted (mutual TLS), and carries the
    /// cloud's clock in `Date`. Nothing is stored by the cloud.
    pub async fn probe(&self) -> Result<Probe, String> {
        let sent = std::time::SystemTime::now();
        let response = self
            .fresh
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| e.causes())?;
        let received = std::time::SystemTime::now();
        let date = response.header("date").map(str::to_owned);
        Ok(Probe {
            status: response.status(),
            date,
            sent,
            received,
        })
    }

    /// The same client, timing every request into `metrics`.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> SyncClient {
        self.metrics = Some(metrics);
        self
    }

    /// Sends `batch` and sorts the answer, within the configured request timeout.
    pub async fn send(&self, batch: &SyncBatch) -> Outcome {
        self.send_within(batch, None).await
    }

    /// Sends `batch` and sorts the answer, within `timeout` if given (else the configured
    /// request timeout). The returned future does not borrow `batch`.
    pub fn send_within(
        &self,
        batch: &SyncBatch,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Outcome> + use<'_> {
        self.send_on(&self.http, batch, timeout)
    }

    /// Like [`SyncClient::send_within`], on a connection opened for this request: never one
    /// from the pool, which may be as dead as the one a hung request is stuck on.
    pub fn send_fresh(
        &self,
        batch: &SyncBatch,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Outcome> + use<'_> {
        self.send_on(&self.fresh, batch, timeout)
    }

    fn send_on<'a>(
        &'a self,
        http: &'a Client,
        batch: &SyncBatch,
        timeout: Option<Duration>,
    ) -> impl Future<Output = Outcome> + use<'a> {
        let body = encode_batch(batch).map_err(|e| Outcome::Failed {
            message: format!("cannot encode the batch: {e}"),
        });
        let lane = batch.lane.as_str();
        let records = batch.records.len();
        // Each request has its own id, sent as `X-Request-Id` so the cloud's log lines for it
        // carry the same id as ours.
        let id = hallwatch_service::request_id::new();
        let span = tracing::info_span!("sync_request", id = %id, lane);
        async move {
            let started = std::time::Instant::now();
            let outcome = match body {
                Ok(body) => self.post(http, body, timeout, &id).await,
                Err(failed) => failed,
            };
            let seconds = started.elapsed().as_secs_f64();
            if let Some(metrics) = &self.metrics {
                metrics.sync_request(lane, outcome.label(), seconds);
            }
            tracing::debug!(
                records,
                outcome = outcome.label(),
                ms = seconds * 1e3,
                "sync request done"
            );
            outcome
        }
        .instrument(span)
    }

    async fn post(
        &self,
        http: &Client,
        body: Vec<u8>,
        timeout: Option<Duration>,
        request_id: &str,
    ) -> Outcome {
        let mut request = http
            .post(self.url.clone())
            .header(hallwatch_service::request_id::HEADER, request_id);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = match request
            .header("content-type", SYNC_MEDIA_TYPE)
            .body(body)
            .send()
            .await
        {
            Ok(response) => response,
            Err(e) => {
                return Outcome::Failed {
                    message: describe(&e),
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .header("retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bytes = match response.read_bounded(MAX_ANSWER_BYTES).await {
            Ok(bytes) => bytes,
            Err(message) => return Outcome::Failed { message },
        };
        if status == StatusCode::OK {
            return match decode_ack(&bytes, &self.limits) {
                Ok(ack) => Outcome::Acked(ack),
                Err(e) => Outcome::Failed {
                    message: format!("the cloud's answer is not an ack: {e}"),
                },
            };
        }
        let error = serde_json::from_slice::<ErrorBody>(&bytes).ok();
        let message = error.as_ref().map_or_else(
            || format!("{status}: {}", printable(&bytes)),
            |e| format!("{status}: {}", e.error.message),
        );
        match status {
            StatusCode::CONFLICT => match error.and_then(|e| e.expected_seq) {
                Some(expected) => Outcome::Gap {
                    expected: Seq::new(expected),
                },
                None => Outcome::Failed { message },
            },
            StatusCode::TOO_MANY_REQUESTS => Outcome::TooFast {
                retry_after: Duration::from_secs(retry_after.unwrap_or(1).clamp(1, 3_600)),
            },
            StatusCode::PAYLOAD_TOO_LARGE => Outcome::TooLarge { message },
            StatusCode::BAD_REQUEST => Outcome::Malformed { message },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Outcome::Refused { status, message }
            }
            _ => Outcome::Failed { message },
        }
    }
}

/// rustls for the sync listener: the cloud CA as the only root, the gateway's certificate and
/// key as the client identity, ring as the provider.
fn tls_config(data_dir: &Path, gateway: &GatewayId) -> Result<rustls::ClientConfig, ClientError> {
    let file = |name: &str| data_dir.join(name);
    let bad = |path: &Path, reason: String| ClientError::File {
        path: path.display().to_string(),
        reason,
    };
    let ca_path = file(CLOUD_CA_FILE);
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&ca_path).map_err(|e| bad(&ca_path, e.to_string()))? {
        let ca = ca.map_err(|e| bad(&ca_path, e.to_string()))?;
        roots
            .add(ca)
            .map_err(|e| bad(&ca_path, format!("not a usable CA certificate: {e}")))?;
    }
    let cert_path = file(GATEWAY_CERT_FILE);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(|e| bad(&cert_path, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&cert_path, e.to_string()))?;
    let Some(leaf) = chain.first() else {
        return Err(bad(&cert_path, "no certificate in the file".into()));
    };
    check_common_name(leaf, gateway)?;
    let key_path = file(GATEWAY_KEY_FILE);
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| bad(&key_path, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Identity(e.to_string()))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| {
            ClientError::Identity(format!(
                "{} and {} do not belong together ({e}); run `edge-agent enroll --force`",
                GATEWAY_CERT_FILE, GATEWAY_KEY_FILE
            ))
        })
}

/// The certificate must be this gateway's: after an interrupted `enroll --force` the files
/// may be from two enrollments.
fn check_common_name(leaf: &CertificateDer<'_>, gateway: &GatewayId) -> Result<(), ClientError> {
    let (_, cert) = X509Certificate::from_der(leaf.as_ref())
        .map_err(|e| ClientError::Identity(format!("{GATEWAY_CERT_FILE} is unreadable: {e}")))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok());
    if cn == Some(gateway.as_str()) {
        Ok(())
    } else {
        Err(ClientError::Identity(format!(
            "{GATEWAY_CERT_FILE} is for gateway {:?}, but agent.toml says cloud.gateway_id = \
             {gateway}; run `edge-agent enroll --force`",
            cn.unwrap_or("(none)")
        )))
    }
}

/// A request that got no answer, for the lane's log line and status.
fn describe(e: &cloud_http::Error) -> String {
    if e.is_timeout() {
        "no answer in time".to_owned()
    } else {
        e.causes()
    }
}
