//! What a gateway does against the cloud: enroll with a token and a CSR of its own key, then
//! sync over mutual TLS with the certificate it received.

use rcgen::{CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256};
use reqwest::StatusCode;
use serde_json::Value;
use shared::ids::{Epoch, GatewayId, SchoolId};
use shared::sync::{Lane, Limits, Record, SyncAck, SyncBatch, decode_ack, encode_batch};

use super::TestCloud;

/// An enrolled gateway with its mTLS client.
pub(crate) struct Gateway {
    pub(crate) school_id: SchoolId,
    pub(crate) gateway_id: GatewayId,
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) ca_pem: String,
    pub(crate) client: reqwest::Client,
    pub(crate) url: String,
    /// The epoch of this run of the gateway's agent; [`Gateway::restart`] draws another.
    pub(crate) epoch: Epoch,
}

/// A random epoch, as a gateway draws one at each start.
pub(crate) fn new_epoch() -> Epoch {
    use ring::rand::{SecureRandom, SystemRandom};
    loop {
        let mut bytes = [0u8; 8];
        SystemRandom::new().fill(&mut bytes).expect("randomness");
        if let Some(epoch) = Epoch::new(u64::from_le_bytes(bytes)) {
            return epoch;
        }
    }
}

/// A refused request: its status and JSON body.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
    pub(crate) retry_after: Option<String>,
}

impl Refused {
    pub(crate) fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }
}

/// Posts `{token, csr_pem}`; the raw answer.
pub(crate) async fn enroll_raw(
    cloud: &TestCloud,
    token: &str,
    csr_pem: &str,
) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(cloud.enroll_url())
        .json(&serde_json::json!({ "token": token, "csr_pem": csr_pem }))
        .send()
        .await
        .expect("enroll request");
    let status = response.status();
    (status, response.json().await.expect("JSON answer"))
}

/// A fresh P-256 key and a CSR for it, as the gateway makes them.
pub(crate) fn key_and_csr() -> (KeyPair, String) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("key");
    let csr = CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    (key, csr)
}

/// Enrolls with `token` and builds the gateway's mTLS client.
pub(crate) async fn enroll(cloud: &TestCloud, token: &str) -> Result<Gateway, Refused> {
    let (key, csr) = key_and_csr();
    let (status, body) = enroll_raw(cloud, token, &csr).await;
    if status != StatusCode::OK {
        return Err(Refused {
            status,
            body,
            retry_after: None,
        });
    }
    let text = |field: &str| body[field].as_str().expect("field").to_owned();
    let gateway = Gateway {
        school_id: text("school_id").parse().expect("school id"),
        gateway_id: text("gateway_id").parse().expect("gateway id"),
        cert_pem: text("certificate_pem"),
        key_pem: key.serialize_pem(),
        ca_pem: text("ca_pem"),
        client: reqwest::Client::new(),
        url: cloud.sync_url(),
        epoch: new_epoch(),
    };
    Ok(gateway.with_mtls())
}

impl Gateway {
    fn with_mtls(mut self) -> Self {
        self.client = mtls_client(&self.cert_pem, &self.key_pem, &self.ca_pem);
        self
    }

    /// A batch of `lane` in this gateway's own name and current epoch.
    pub(crate) fn batch(&self, lane: Lane, records: Vec<Record>) -> SyncBatch {
        self.batch_in(self.epoch, lane, records)
    }

    /// A batch of `lane` of `epoch` in this gateway's own name.
    pub(crate) fn batch_in(&self, epoch: Epoch, lane: Lane, records: Vec<Record>) -> SyncBatch {
        SyncBatch {
            gateway_id: self.gateway_id.clone(),
            school_id: self.school_id.clone(),
            epoch,
            lane,
            records,
        }
    }

    /// An alert-lane batch.
    pub(crate) fn alerts(&self, records: Vec<Record>) -> SyncBatch {
        self.batch(Lane::Alert, records)
    }

    /// A telemetry-lane batch.
    pub(crate) fn telemetry(&self, records: Vec<Record>) -> SyncBatch {
        self.batch(Lane::Telemetry, records)
    }

    /// An empty batch: liveness and pending commands.
    pub(crate) fn heartbeat(&self) -> SyncBatch {
        self.alerts(Vec::new())
    }

    /// The agent started again: a new epoch.
    pub(crate) fn restart(&mut self) {
        self.epoch = new_epoch();
    }

    /// Sends `batch`; the decoded ack, or the refusal.
    pub(crate) async fn send(&self, batch: &SyncBatch) -> Result<SyncAck, Refused> {
        self.send_bytes(encode_batch(batch).expect("encode")).await
    }

    pub(crate) async fn send_bytes(&self, body: Vec<u8>) -> Result<SyncAck, Refused> {
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/vnd.hallwatch.sync")
            .body(body)
            .send()
            .await
            .expect("sync request");
        let status = response.status();
        if status == StatusCode::OK {
            let bytes = response.bytes().await.expect("body");
            return Ok(decode_ack(&bytes, &Limits::DEFAULT).expect("a valid ack"));
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ascii").to_owned());
        Err(Refused {
            status,
            body: response.json().await.expect("JSON error"),
            retry_after,
        })
    }
}

/// A client that presents `cert_pem` and trusts only `ca_pem`.
pub(crate) fn mtls_client(cert_pem: &str, key_pem: &str, ca_pem: &str) -> reqwest::Client {
    let identity =
        reqwest::Identity::from_pem(format!("{cert_pem}\n{key_pem}").as_bytes()).expect("identity");
    let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("CA");
    reqwest::Client::builder()
        .tls_certs_only([ca])
        .identity(identity)
        .build()
        .expect("client")
}
