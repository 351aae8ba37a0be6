//! `device add`, `device list` and `device revoke`.

use std::path::{Path, PathBuf};

use shared::ids::DeviceId;
use shared::{UnixMillis, UtcFormat};

use super::bundle::{
    BundleFile, BundleJson, GatewayAddr, Pems, Topics, nvs_csv, write_bundle_files,
};
use super::{BUNDLE_FILES, CRL_FILE, InstallError, ensure_no_bundle, io};
use crate::config::Config;
use crate::pki::{self, Ca, Validity};
use crate::store::{DB_FILE, DeviceRow, NewDevice, Store};

/// What `device add` did.
#[derive(Debug, Clone)]
pub struct AddedDevice {
    /// The certificate's serial.
    pub serial: u64,
    /// When the certificate expires.
    pub expires_at: UnixMillis,
    /// The bundle's files.
    pub files: Vec<PathBuf>,
}

/// What `device revoke` did.
#[derive(Debug, Clone)]
pub struct RevokedDevice {
    /// The serials revoked just now.
    pub serials: Vec<u64>,
    /// The new CRL's number.
    pub crl_number: u64,
    /// Where the CRL was written.
    pub crl_path: PathBuf,
}

/// Registers `device` and writes its provisioning bundle into `out` (created if missing; it
/// must not hold a bundle already). Nothing is registered unless the whole bundle is written.
pub fn add_device(
    data_dir: &Path,
    device: &NewDevice,
    out: &Path,
) -> Result<AddedDevice, InstallError> {
    let config = Config::load(data_dir)?;
    let host = config.device_host().ok_or(InstallError::NoDeviceHost)?;
    ensure_no_bundle(out, BUNDLE_FILES)?;
    let topic = |t: Result<String, firmware_protocol::TopicError>| {
        t.map_err(|e| InstallError::Topic(device.id.clone(), e.to_string()))
    };
    let bundle = BundleJson {
        device_id: device.id.to_string(),
        kind: device.kind.to_string(),
        room: device.room.to_string(),
        school_id: config.school_id.to_string(),
        gateway: GatewayAddr {
            host,
            port: config.mqtt_listen.port(),
        },
        topics: Topics {
            up: topic(firmware_protocol::up_topic(device.id.as_str()))?,
            down: topic(firmware_protocol::down_topic(device.id.as_str()))?,
        },
    };
    let mut store = Store::open(&data_dir.join(DB_FILE))?;
    let ca = Ca::load(data_dir)?;
    let now = UnixMillis::now();
    let validity = Validity::starting(now, pki::DEVICE_VALIDITY);
    store.add_device(
        device,
        now,
        validity.not_before,
        validity.not_after,
        |serial| {
            let cert = pki::device_cert(&ca, &config.school_id, &device.id, serial, validity)?;
            let files = write_bundle(out, &bundle, ca.cert_pem(), &cert)?;
            Ok(AddedDevice {
                serial,
                expires_at: validity.not_after,
                files,
            })
        },
    )
}

/// Every registered device, ordered by id.
pub fn list_devices(data_dir: &Path) -> Result<Vec<DeviceRow>, InstallError> {
    Config::load(data_dir)?;
    Ok(Store::open(&data_dir.join(DB_FILE))?.list_devices()?)
}

/// Revokes `id` and rewrites `crl.pem` with every revoked serial and a larger CRL number.
pub fn revoke_device(data_dir: &Path, id: &DeviceId) -> Result<RevokedDevice, InstallError> {
    Config::load(data_dir)?;
    let mut store = Store::open(&data_dir.join(DB_FILE))?;
    let ca = Ca::load(data_dir)?;
    let crl_path = data_dir.join(CRL_FILE);
    let now = UnixMillis::now();
    store.revoke_device(id, now, |update| {
        let pem = pki::crl_pem(&ca, update.number, &update.revoked, now)?;
        crate::files::replace_atomically(&crl_path, pem.as_bytes()).map_err(io(&crl_path))?;
        Ok(RevokedDevice {
            serials: update.newly_revoked.clone(),
            crl_number: update.number,
            crl_path: crl_path.clone(),
        })
    })
}

/// `device list` as a table, one device per line.
pub fn render_table(devices: &[DeviceRow]) -> String {
    let header = [
        "ID",
        "KIND",
        "ROOM",
        "SERIAL",
        "EXPIRES",
        "STATE",
        "LAST SEEN",
    ];
    let rows: Vec<[String; 7]> = devices
        .iter()
        .map(|d| {
            [
                d.id.to_string(),
                d.kind.to_string(),
                d.room.to_string(),
                d.serial.to_string(),
                date(d.expires_at),
                d.state.as_str().to_owned(),
                d.last_seen_at.map_or_else(|| "never".to_owned(), date_time),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: &[&str]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut table = line(&header);
    for row in &rows {
        table += &line(&row.each_ref().map(String::as_str));
    }
    table
}

pub(super) fn date(t: UnixMillis) -> String {
    t.utc(UtcFormat::Date).to_string()
}

fn date_time(t: UnixMillis) -> String {
    t.utc(UtcFormat::DateTime).to_string()
}

/// Writes the device bundle's files (all or none, see [`write_bundle_files`]).
fn write_bundle(
    out: &Path,
    bundle: &BundleJson,
    ca_pem: &str,
    cert: &pki::IssuedCert,
) -> Result<Vec<PathBuf>, InstallError> {
    let mut json =
        serde_json::to_string_pretty(bundle).map_err(|e| InstallError::Bundle(e.to_string()))?;
    json.push('\n');
    let pems = Pems {
        ca: ca_pem,
        cert: &cert.cert_pem,
        key: &cert.key_pem,
    };
    let nvs = nvs_csv(bundle, pems).map_err(|e| InstallError::Bundle(e.to_string()))?;
    let nvs = String::from_utf8(nvs).map_err(|e| InstallError::Bundle(e.to_string()))?;
    // device.key and nvs.csv (which holds the key too) are secrets: mode 0600.
    write_bundle_files(
        out,
        &[
            BundleFile::public("ca.pem", ca_pem),
            BundleFile::public("device.pem", &cert.cert_pem),
            BundleFile::public("bundle.json", &json),
            BundleFile::secret("device.key", &cert.key_pem),
            BundleFile::secret("nvs.csv", &nvs),
        ],
    )
}
