//! `[cloud]`: where the cloud is and who this gateway is to it. `edge-agent enroll` writes the
//! section; the sync loop (#6) reads it. A gateway that was never enrolled has none.
//!
//! The URLs are their own types so that the rules hold wherever one is parsed, on the command
//! line or from `agent.toml`: enrollment carries a secret, so [`CloudUrl`] is `https`, or plain
//! `http` only to a loopback address (127.0.0.0/8, ::1: a cloud on the same machine, in tests
//! and demos); the sync listener speaks only mutual TLS, so [`SyncUrl`] is always `https`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Deserialize;
use shared::ids::GatewayId;
use url::{Host, Url};

use super::ConfigError;

/// The validated `[cloud]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudSettings {
    /// The cloud's public listener (enrollment).
    pub url: CloudUrl,
    /// The cloud's mutual-TLS sync listener; its certificate chains to `cloud-ca.pem`.
    pub sync_url: SyncUrl,
    /// The id the cloud gave this gateway at enrollment: the CN of `gateway.pem`.
    pub gateway_id: GatewayId,
}

/// `[cloud]` as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCloud {
    pub url: String,
    pub sync_url: String,
    pub gateway_id: String,
}

impl RawCloud {
    pub(super) fn validate(self) -> Result<CloudSettings, ConfigError> {
        let invalid = |field, reason: String| ConfigError::Invalid { field, reason };
        Ok(CloudSettings {
            url: self
                .url
                .parse()
                .map_err(|e: UrlError| invalid("cloud.url", e.to_string()))?,
            sync_url: self
                .sync_url
                .parse()
                .map_err(|e: UrlError| invalid("cloud.sync_url", e.to_string()))?,
            gateway_id: self
                .gateway_id
                .parse()
                .map_err(|e: shared::ids::IdError| invalid("cloud.gateway_id", e.to_string()))?,
        })
    }
}

impl CloudSettings {
    /// The `[cloud]` section of `agent.toml`, comments included.
    pub fn to_toml(&self) -> String {
        let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
        format!(
            "[cloud]\n\
             # Written by `edge-agent enroll`; `enroll --force` replaces it. The gateway's\n\
             # certificate and key for sync are gateway.pem and gateway.key, and it trusts\n\
             # cloud-ca.pem for the sync listener (all in the data directory).\n\
             # The cloud's public address (enrollment).\n\
             url = {}\n\
             # The cloud's mutual-TLS sync listener.\n\
             sync_url = {}\n\
             # This gateway's id at the cloud (the CN of gateway.pem).\n\
             gateway_id = {}\n",
            quote(self.url.as_str()),
            quote(self.sync_url.as_str()),
            quote(self.gateway_id.as_str()),
        )
    }
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UrlError(String);

/// The cloud's public base URL: `https://…`, or `http://` to a loopback address only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudUrl(Url);

/// The cloud's sync listener: `https://…` only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncUrl(Url);

impl CloudUrl {
    /// The URL, normalised (lower-case host, a path of at least `/`).
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// `path` (absolute, e.g. `/api/v1/enroll`) below this base URL, keeping any path prefix
    /// the base has (a cloud behind a proxy at `https://example.org/hallwatch/`).
    pub fn endpoint(&self, path: &str) -> Url {
        endpoint(&self.0, path)
    }
}

impl SyncUrl {
    /// The URL, normalised as [`CloudUrl::as_str`].
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// `path` below this base URL, as [`CloudUrl::endpoint`].
    pub fn endpoint(&self, path: &str) -> Url {
        endpoint(&self.0, path)
    }
}

impl FromStr for CloudUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let url = base_url(text)?;
        match url.scheme() {
            "https" => Ok(CloudUrl(url)),
            "http" if is_loopback(&url) => Ok(CloudUrl(url)),
            "http" => Err(UrlError(format!(
                "{text:?} is plain http: enrollment sends a secret token, so use https \
                 (plain http is allowed only to a loopback address, 127.0.0.0/8 or [::1])"
            ))),
            other => Err(UrlError(format!(
                "{text:?} has the scheme {other:?}; use https://"
            ))),
        }
    }
}

impl FromStr for SyncUrl {
    type Err = UrlError;

    fn from_str(text: &str) -> Result<Self, UrlError> {
        let url = base_url(text)?;
        if url.scheme() == "https" {
            Ok(SyncUrl(url))
        } else {
            Err(UrlError(format!(
                "{text:?} is not https: the sync listener speaks only mutual TLS"
            )))
        }
    }
}

impl fmt::Display for CloudUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SyncUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An absolute URL with a host and nothing that a base URL should not carry.
fn base_url(text: &str) -> Result<Url, UrlError> {
    let url = Url::parse(text.trim()).map_err(|e| {
        UrlError(format!(
            "{text:?} is not a URL ({e}); e.g. https://cloud.example.org"
        ))
    })?;
    if url.host().is_none() {
        return Err(UrlError(format!("{text:?} has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError(format!(
            "{text:?} must not carry a user name or password"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(UrlError(format!(
            "{text:?} must not have a query or fragment"
        )));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        // A name may resolve anywhere; `localhost` included, on a misconfigured machine.
        Some(Host::Domain(_)) | None => false,
    }
}

fn endpoint(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_http_only_on_loopback() {
        for ok in [
            "https://cloud.example.org",
            "https://203.0.113.7:8443/",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://[::1]:8080/",
        ] {
            assert!(ok.parse::<CloudUrl>().is_ok(), "{ok}");
        }
        for bad in [
            "http://cloud.example.org",
            "http://10.0.0.1:8080",
            "http://localhost:8080",
            "http://[::2]/",
            "ftp://cloud.example.org",
            "cloud.example.org",
            "https://user:pw@cloud.example.org",
            "https://cloud.example.org/?a=b",
        ] {
            assert!(bad.parse::<CloudUrl>().is_err(), "{bad}");
        }
        let err = "http://10.0.0.1"
            .parse::<CloudUrl>()
            .unwrap_err()
            .to_string();
        assert!(err.contains("loopback") && err.contains("https"), "{err}");
    }

    #[test]
    fn sync_is_https_only() {
        assert!("https://sync.example.org:8443".parse::<SyncUrl>().is_ok());
        assert!("http://127.0.0.1:8443".parse::<SyncUrl>().is_err());
    }

    #[test]
    fn endpoints_keep_a_path_prefix() {
        let url: CloudUrl = "https://Example.org/hallwatch/".parse().unwrap();
        assert_eq!(
            url.endpoint("/api/v1/enroll").as_str(),
            "https://example.org/hallwatch/api/v1/enroll"
        );
        let url: CloudUrl = "http://127.0.0.1:8080".parse().unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(
            url.endpoint("/api/v1/enroll").as_str(),
            "http://127.0.0.1:8080/api/v1/enroll"
        );
    }
}
