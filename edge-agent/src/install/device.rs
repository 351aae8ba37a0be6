//! `device add`, `device list` and `device revoke`.

use std::path::{Path, PathBuf};

use shared::UnixMillis;
use shared::ids::DeviceId;

use super::bundle::{BundleJson, GatewayAddr, Pems, Topics, nvs_csv};
use super::{BUNDLE_FILES, CRL_FILE, InstallError, io};
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
    if let Some(existing) = BUNDLE_FILES
        .iter()
        .map(|f| out.join(f))
        .find(|p| p.exists())
    {
        return Err(InstallError::BundleDir {
            dir: out.to_owned(),
            reason: format!(
                "already holds {}; choose an empty directory",
                existing.display()
            ),
        });
    }
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

fn date(t: UnixMillis) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t.get().div_euclid(1000)) {
        Ok(dt) => dt.date().to_string(),
        Err(_) => t.to_string(),
    }
}

fn date_time(t: UnixMillis) -> String {
    match time::OffsetDateTime::from_unix_timestamp(t.get().div_euclid(1000)) {
        Ok(dt) => format!(
            "{} {:02}:{:02}:{:02}Z",
            dt.date(),
            dt.hour(),
            dt.minute(),
            dt.second()
        ),
        Err(_) => t.to_string(),
    }
}

/// Writes the bundle's files; on failure removes the ones already written (and `out` if it
/// was created here), so a failed `device add` leaves nothing behind.
fn write_bundle(
    out: &Path,
    bundle: &BundleJson,
    ca_pem: &str,
    cert: &pki::IssuedCert,
) -> Result<Vec<PathBuf>, InstallError> {
    let created_dir = !out.exists();
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut written = Vec::new();
    let result = write_files(out, bundle, ca_pem, cert, &mut written);
    if result.is_err() {
        for path in &written {
            let _ = std::fs::remove_file(path);
        }
        if created_dir {
            let _ = std::fs::remove_dir(out);
        }
    }
    result.map(|()| written)
}

fn write_files(
    out: &Path,
    bundle: &BundleJson,
    ca_pem: &str,
    cert: &pki::IssuedCert,
    written: &mut Vec<PathBuf>,
) -> Result<(), InstallError> {
    let mut public = |name: &str, bytes: &[u8]| {
        let path = out.join(name);
        // Recorded before writing, so a half-written file is removed too; none of these
        // files existed before (checked by `add_device`).
        written.push(path.clone());
        crate::files::write_new(&path, bytes).map_err(io(&path))
    };
    public("ca.pem", ca_pem.as_bytes())?;
    public("device.pem", cert.cert_pem.as_bytes())?;
    let mut json =
        serde_json::to_string_pretty(bundle).map_err(|e| InstallError::Bundle(e.to_string()))?;
    json.push('\n');
    public("bundle.json", json.as_bytes())?;
    // device.key and nvs.csv (which holds the key too) are secrets: mode 0600.
    let pems = Pems {
        ca: ca_pem,
        cert: &cert.cert_pem,
        key: &cert.key_pem,
    };
    let nvs = nvs_csv(bundle, pems).map_err(|e| InstallError::Bundle(e.to_string()))?;
    let nvs = String::from_utf8(nvs).map_err(|e| InstallError::Bundle(e.to_string()))?;
    for (name, text) in [("device.key", cert.key_pem.as_str()), ("nvs.csv", &nvs)] {
        let path = out.join(name);
        written.push(path.clone());
        pki::write_key_file(&path, text)?;
    }
    Ok(())
}
