//! The store's typed rows and the small enums stored as text.

use std::fmt;
use std::str::FromStr;

use firmware_protocol::Label;
use shared::UnixMillis;
use shared::ids::DeviceId;

use crate::integration::IntegrationId;

/// What a device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// A panic button.
    Button,
    /// A people-counting camera.
    Camera,
}

impl DeviceKind {
    /// The name used in the database, the CLI and `bundle.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Button => "button",
            DeviceKind::Camera => "camera",
        }
    }
}

impl FromStr for DeviceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "button" => Ok(DeviceKind::Button),
            "camera" => Ok(DeviceKind::Camera),
            other => Err(format!("unknown device kind {other:?} (button or camera)")),
        }
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a device may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// Registered and not revoked.
    Active,
    /// Revoked: its certificates are on the CRL.
    Revoked,
}

impl DeviceState {
    /// The name used in the database and in `device list`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Active => "active",
            DeviceState::Revoked => "revoked",
        }
    }
}

/// Who a certificate belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertRole {
    /// The gateway's CA.
    Ca,
    /// The gateway's TLS server certificate.
    Server,
    /// A device's client certificate.
    Device,
    /// An integration's client certificate.
    Integration,
}

impl CertRole {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            CertRole::Ca => "ca",
            CertRole::Server => "server",
            CertRole::Device => "device",
            CertRole::Integration => "integration",
        }
    }
}

/// A device to register.
#[derive(Debug, Clone)]
pub struct NewDevice {
    /// Its id (the certificate's CN and its topic namespace).
    pub id: DeviceId,
    /// Button or camera.
    pub kind: DeviceKind,
    /// The room it is in.
    pub room: Label,
    /// Its own press mapping (`single=…,double=…,long_hold=…`, checked by the caller), or
    /// `None` for the gateway's default.
    pub press_map: Option<String>,
}

/// A registered device, with its newest certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    /// Its id.
    pub id: DeviceId,
    /// Button or camera.
    pub kind: DeviceKind,
    /// The room it is in.
    pub room: Label,
    /// Active or revoked.
    pub state: DeviceState,
    /// When it was registered.
    pub created_at: UnixMillis,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixMillis>,
    /// When it last connected; `None` until the gateway has seen it.
    pub last_seen_at: Option<UnixMillis>,
    /// Serial of its newest certificate.
    pub serial: u64,
    /// When that certificate expires.
    pub expires_at: UnixMillis,
}

/// Whether an integration may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IntegrationState {
    /// Added and not revoked.
    Active,
    /// Revoked: its certificates are on the CRL.
    Revoked,
}

impl IntegrationState {
    /// The name used in the database and in `integration list`.
    pub fn as_str(self) -> &'static str {
        match self {
            IntegrationState::Active => "active",
            IntegrationState::Revoked => "revoked",
        }
    }
}

/// An integration, with its newest certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationRow {
    /// Its id (its certificate's CN).
    pub id: IntegrationId,
    /// Active or revoked.
    pub state: IntegrationState,
    /// When it was added.
    pub created_at: UnixMillis,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixMillis>,
    /// Serial of its newest certificate.
    pub serial: u64,
    /// When that certificate expires.
    pub expires_at: UnixMillis,
}
