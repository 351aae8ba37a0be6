//! A device's provisioning bundle: the files an installer flashes onto it.
//!
//! `nvs.csv` follows ESP-IDF's NVS partition CSV (`key,type,encoding,value`, a namespace row,
//! then one row per key); `nvs_partition_gen.py` reads it with Python's `csv` module, so the
//! multi-line PEM values are ordinary quoted fields. NVS keys are at most 15 bytes and string
//! values at most 4000 bytes, which the PEMs stay well within.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{InstallError, io};

/// The files in a bundle directory, in the order they are written.
pub const BUNDLE_FILES: &[&str] = &[
    "ca.pem",
    "device.pem",
    "device.key",
    "bundle.json",
    "nvs.csv",
];

/// The NVS namespace the firmware opens.
pub const NVS_NAMESPACE: &str = "hallwatch";

/// `bundle.json`: everything the firmware (or the simulator) needs besides the PEM files.
#[derive(Debug, Clone, Serialize)]
pub struct BundleJson {
    /// The device's id (its certificate's CN and its MQTT client id).
    pub device_id: String,
    /// `button` or `camera`.
    pub kind: String,
    /// The room it is installed in.
    pub room: String,
    /// The school (its certificate's O).
    pub school_id: String,
    /// Where the gateway's MQTT over TLS listener is.
    pub gateway: GatewayAddr,
    /// The device's own topics.
    pub topics: Topics,
}

/// Host and port of the gateway's device listener.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayAddr {
    /// A hostname or IP address in the gateway's server certificate.
    pub host: String,
    /// The MQTT over TLS port.
    pub port: u16,
}

/// The device's topic pair.
#[derive(Debug, Clone, Serialize)]
pub struct Topics {
    /// Device → gateway.
    pub up: String,
    /// Gateway → device.
    pub down: String,
}

/// The PEM texts that go into `nvs.csv`.
#[derive(Debug, Clone, Copy)]
pub struct Pems<'a> {
    /// The gateway CA certificate.
    pub ca: &'a str,
    /// The device certificate.
    pub cert: &'a str,
    /// The device's private key.
    pub key: &'a str,
}

/// `nvs.csv` for `bundle`.
pub fn nvs_csv(bundle: &BundleJson, pems: Pems<'_>) -> Result<Vec<u8>, csv::Error> {
    let port = bundle.gateway.port.to_string();
    let rows: [[&str; 4]; 8] = [
        ["key", "type", "encoding", "value"],
        [NVS_NAMESPACE, "namespace", "", ""],
        ["host", "data", "string", &bundle.gateway.host],
        ["port", "data", "u16", &port],
        ["device_id", "data", "string", &bundle.device_id],
        ["ca_pem", "data", "string", pems.ca],
        ["cert_pem", "data", "string", pems.cert],
        ["key_pem", "data", "string", pems.key],
    ];
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.write_record(row)?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}

/// One file of a bundle: its name and text, and whether it is a secret (mode 0600).
#[derive(Debug, Clone, Copy)]
pub(super) struct BundleFile<'a> {
    name: &'a str,
    text: &'a str,
    secret: bool,
}

impl<'a> BundleFile<'a> {
    pub(super) fn public(name: &'a str, text: &'a str) -> Self {
        BundleFile {
            name,
            text,
            secret: false,
        }
    }

    pub(super) fn secret(name: &'a str, text: &'a str) -> Self {
        BundleFile {
            name,
            text,
            secret: true,
        }
    }
}

/// Writes `files` into `out` (created if missing), none of which may exist yet; secrets are
/// created with mode 0600. On failure the files already written are removed again (and `out`
/// if it was created here), so a failed command leaves nothing behind.
pub(super) fn write_bundle_files(
    out: &Path,
    files: &[BundleFile<'_>],
) -> Result<Vec<PathBuf>, InstallError> {
    let created_dir = !out.exists();
    std::fs::create_dir_all(out).map_err(io(out))?;
    let mut written = Vec::new();
    let mut result = Ok(());
    for file in files {
        let path = out.join(file.name);
        // Recorded before writing, so a half-written file is removed too; none of these files
        // existed before (the callers check).
        written.push(path.clone());
        result = if file.secret {
            crate::pki::write_key_file(&path, file.text).map_err(InstallError::from)
        } else {
            crate::files::write_new(&path, file.text.as_bytes()).map_err(io(&path))
        };
        if result.is_err() {
            break;
        }
    }
    if let Err(e) = result {
        for path in &written {
            let _ = std::fs::remove_file(path);
        }
        if created_dir {
            let _ = std::fs::remove_dir(out);
        }
        return Err(e);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_values_round_trip_as_single_fields() {
        let bundle = BundleJson {
            device_id: "btn-1".into(),
            kind: "button".into(),
            room: "B-204".into(),
            school_id: "s".into(),
            gateway: GatewayAddr {
                host: "gw.local".into(),
                port: 8883,
            },
            topics: Topics {
                up: "d/btn-1/up".into(),
                down: "d/btn-1/down".into(),
            },
        };
        let pem = "-----BEGIN X-----\nAAAA,\"B\"\n-----END X-----\n";
        let bytes = nvs_csv(
            &bundle,
            Pems {
                ca: pem,
                cert: pem,
                key: pem,
            },
        )
        .unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with("key,type,encoding,value\nhallwatch,namespace,,\n"),
            "{text}"
        );
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 7);
        assert_eq!(&records[4][3], pem);
        assert_eq!(&records[2][2], "u16");
    }
}
