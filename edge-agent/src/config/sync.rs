//! `[sync]`: how the gateway uploads its outbox to the cloud.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, within};

/// `[sync]` as written; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub batch_max_records: Option<u64>,
    pub batch_max_bytes: Option<u64>,
    pub batch_wait_ms: Option<u64>,
    pub heartbeat_s: Option<u64>,
    pub request_timeout_s: Option<u64>,
    pub backoff_min_ms: Option<u64>,
    pub backoff_max_s: Option<u64>,
    pub thin_after_s: Option<u64>,
    pub thin_keep_every_s: Option<u64>,
    pub outbox_budget_mb: Option<u64>,
}

/// How the sync loop batches, paces and retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSettings {
    /// Most records in one batch (the cloud accepts up to 10,000).
    pub batch_max_records: u32,
    /// Most bytes of record bodies in one batch, before compression.
    pub batch_max_bytes: usize,
    /// Telemetry waits this long to fill a batch; alert records never wait.
    pub batch_wait: Duration,
    /// With nothing to send, the gateway still checks in this often (the cloud's liveness,
    /// and commands waiting for the gateway).
    pub heartbeat: Duration,
    /// One request's limit, from connecting to the last byte of the answer.
    pub request_timeout: Duration,
    /// The first wait after a failure; doubled each failure, with jitter.
    pub backoff_min: Duration,
    /// The longest wait between attempts.
    pub backoff_max: Duration,
    /// Snapshots waiting longer than this are thinned...
    pub thin_after: Duration,
    /// ...to the first of every window this long (device health changes are all kept).
    pub thin_keep_every: Duration,
    /// The most the outbox may hold; beyond it the oldest telemetry is dropped (alerts never
    /// are) and a storage-pressure event is raised.
    pub outbox_budget_bytes: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        SyncSettings {
            batch_max_records: 1_000,
            batch_max_bytes: 2 * 1024 * 1024,
            batch_wait: Duration::from_secs(1),
            heartbeat: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(15),
            thin_after: Duration::from_secs(3_600),
            thin_keep_every: Duration::from_secs(300),
            outbox_budget_bytes: 256 * 1024 * 1024,
        }
    }
}

fn as_u64(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RawSync {
    pub(super) fn validate(self) -> Result<SyncSettings, ConfigError> {
        let d = SyncSettings::default();
        let records = within(
            "sync.batch_max_records",
            self.batch_max_records,
            u64::from(d.batch_max_records),
            1,
            shared::sync::Limits::DEFAULT.max_records as u64,
        )?;
        let bytes = within(
            "sync.batch_max_bytes",
            self.batch_max_bytes,
            d.batch_max_bytes as u64,
            1_024,
            8 * 1024 * 1024,
        )?;
        let wait = within(
            "sync.batch_wait_ms",
            self.batch_wait_ms,
            as_u64(d.batch_wait),
            0,
            60_000,
        )?;
        let heartbeat = within(
            "sync.heartbeat_s",
            self.heartbeat_s,
            d.heartbeat.as_secs(),
            1,
            300,
        )?;
        let timeout = within(
            "sync.request_timeout_s",
            self.request_timeout_s,
            d.request_timeout.as_secs(),
            1,
            600,
        )?;
        let backoff_min = within(
            "sync.backoff_min_ms",
            self.backoff_min_ms,
            as_u64(d.backoff_min),
            10,
            60_000,
        )?;
        let backoff_max = within(
            "sync.backoff_max_s",
            self.backoff_max_s,
            d.backoff_max.as_secs(),
            1,
            3_600,
        )?;
        let thin_after = within(
            "sync.thin_after_s",
            self.thin_after_s,
            d.thin_after.as_secs(),
            60,
            30 * 86_400,
        )?;
        let thin_keep_every = within(
            "sync.thin_keep_every_s",
            self.thin_keep_every_s,
            d.thin_keep_every.as_secs(),
            1,
            86_400,
        )?;
        let budget_mb = within(
            "sync.outbox_budget_mb",
            self.outbox_budget_mb,
            d.outbox_budget_bytes / (1024 * 1024),
            1,
            1_000_000,
        )?;
        if backoff_max * 1_000 < backoff_min {
            return Err(ConfigError::Invalid {
                field: "sync.backoff_max_s",
                reason: format!("{backoff_max} s is shorter than backoff_min_ms ({backoff_min})"),
            });
        }
        Ok(SyncSettings {
            batch_max_records: u32::try_from(records).unwrap_or(u32::MAX),
            batch_max_bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
            batch_wait: Duration::from_millis(wait),
            heartbeat: Duration::from_secs(heartbeat),
            request_timeout: Duration::from_secs(timeout),
            backoff_min: Duration::from_millis(backoff_min),
            backoff_max: Duration::from_secs(backoff_max),
            thin_after: Duration::from_secs(thin_after),
            thin_keep_every: Duration::from_secs(thin_keep_every),
            outbox_budget_bytes: budget_mb * 1024 * 1024,
        })
    }
}

impl SyncSettings {
    /// The `[sync]` section, with comments.
    pub(super) fn to_toml(self) -> String {
        format!(
            "[sync]\n\
             # Uploading the outbox to the cloud. Alert records are sent at once; telemetry\n\
             # waits up to batch_wait_ms to fill a batch of at most batch_max_records records\n\
             # and batch_max_bytes bytes. With nothing to send the gateway checks in every\n\
             # heartbeat_s. After a failure it waits backoff_min_ms, doubling (with jitter) up\n\
             # to backoff_max_s; one request may take request_timeout_s.\n\
             # During a long outage, snapshots waiting longer than thin_after_s are thinned to\n\
             # one per thin_keep_every_s (device health changes are all kept); should the\n\
             # outbox still outgrow outbox_budget_mb, the oldest telemetry is dropped (alert\n\
             # records never are) and a storage-pressure event is raised.\n\
             batch_max_records = {}\n\
             batch_max_bytes = {}\n\
             batch_wait_ms = {}\n\
             heartbeat_s = {}\n\
             request_timeout_s = {}\n\
             backoff_min_ms = {}\n\
             backoff_max_s = {}\n\
             thin_after_s = {}\n\
             thin_keep_every_s = {}\n\
             outbox_budget_mb = {}\n",
            self.batch_max_records,
            self.batch_max_bytes,
            self.batch_wait.as_millis(),
            self.heartbeat.as_secs(),
            self.request_timeout.as_secs(),
            self.backoff_min.as_millis(),
            self.backoff_max.as_secs(),
            self.thin_after.as_secs(),
            self.thin_keep_every.as_secs(),
            self.outbox_budget_bytes / (1024 * 1024),
        )
    }
}
