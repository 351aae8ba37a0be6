//! `integration add`, `integration list` and `integration revoke`: clients on the school
//! network (strobes, PA, signage) that read the gateway's messages under `hallwatch/`.

use std::path::{Path, PathBuf};

use shared::UnixMillis;

use super::bundle::{BundleFile, write_bundle_files};
use super::device::{RevokedDevice, date};
use super::{CRL_FILE, InstallError, ensure_no_bundle, io};
use crate::config::Config;
use crate::integration::IntegrationId;
use crate::pki::{self, Ca, Validity};
use crate::store::{DB_FILE, IntegrationRow, Store};

/// The files in an integration's bundle directory.
pub const INTEGRATION_BUNDLE_FILES: &[&str] =
    &["ca.pem", "integration.pem", "integration.key", "README.txt"];

/// What `integration add` did.
#[derive(Debug, Clone)]
pub struct AddedIntegration {
    /// The certificate's serial.
    pub serial: u64,
    /// When the certificate expires.
    pub expires_at: UnixMillis,
    /// The bundle's files.
    pub files: Vec<PathBuf>,
}

/// What `integration revoke` did (the same as for a device: serials and the new CRL).
pub type RevokedIntegration = RevokedDevice;

/// Adds integration `id` and writes its bundle into `out` (created if missing; it must not
/// hold a bundle already): the gateway CA, the integration's certificate and key, and a
/// README.txt with a ready `mosquitto_sub` command. Nothing is added unless the whole bundle
/// is written.
pub fn add_integration(
    data_dir: &Path,
    id: &IntegrationId,
    out: &Path,
) -> Result<AddedIntegration, InstallError> {
    let config = Config::load(data_dir)?;
    let host = config.device_host().ok_or(InstallError::NoDeviceHost)?;
    ensure_no_bundle(out, INTEGRATION_BUNDLE_FILES)?;
    let mut store = Store::open(&data_dir.join(DB_FILE))?;
    let ca = Ca::load(data_dir)?;
    let now = UnixMillis::now();
    let validity = Validity::starting(now, pki::INTEGRATION_VALIDITY);
    let readme = readme(id, &host, config.mqtt_listen.port());
    store.add_integration(id, now, validity.not_before, validity.not_after, |serial| {
        let cert = pki::integration_cert(&ca, &config.school_id, id, serial, validity)?;
        let files = write_bundle_files(
            out,
            &[
                BundleFile::public("ca.pem", ca.cert_pem()),
                BundleFile::public("integration.pem", &cert.cert_pem),
                BundleFile::public("README.txt", &readme),
                BundleFile::secret("integration.key", &cert.key_pem),
            ],
        )?;
        Ok(AddedIntegration {
            serial,
            expires_at: validity.not_after,
            files,
        })
    })
}

/// Every integration, ordered by id.
pub fn list_integrations(data_dir: &Path) -> Result<Vec<IntegrationRow>, InstallError> {
    Config::load(data_dir)?;
    Ok(Store::open(&data_dir.join(DB_FILE))?.list_integrations()?)
}

/// Revokes integration `id` and rewrites `crl.pem` (the one CRL of the gateway CA, which the
/// gate re-reads within a second: a connected integration is disconnected, a new connection
/// refused at the handshake).
pub fn revoke_integration(
    data_dir: &Path,
    id: &IntegrationId,
) -> Result<RevokedIntegration, InstallError> {
    Config::load(data_dir)?;
    let mut store = Store::open(&data_dir.join(DB_FILE))?;
    let ca = Ca::load(data_dir)?;
    let crl_path = data_dir.join(CRL_FILE);
    let now = UnixMillis::now();
    store.revoke_integration(id, now, |update| {
        let pem = pki::crl_pem(&ca, update.number, &update.revoked, now)?;
        crate::files::replace_atomically(&crl_path, pem.as_bytes()).map_err(io(&crl_path))?;
        Ok(RevokedDevice {
            serials: update.newly_revoked.clone(),
            crl_number: update.number,
            crl_path: crl_path.clone(),
        })
    })
}

/// `integration list` as a table, one integration per line.
pub fn render_integrations(integrations: &[IntegrationRow]) -> String {
    let mut rows = vec![[
        "ID".to_owned(),
        "SERIAL".to_owned(),
        "EXPIRES".to_owned(),
        "STATE".to_owned(),
    ]];
    rows.extend(integrations.iter().map(|i| {
        [
            i.id.to_string(),
            i.serial.to_string(),
            date(i.expires_at),
            i.state.as_str().to_owned(),
        ]
    }));
    let mut widths = [0; 4];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut table = String::new();
    for row in &rows {
        let padded: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        table += padded.join("  ").trim_end();
        table.push('\n');
    }
    table
}

/// The bundle's README.txt: what the files are and a command that works from the bundle's
/// directory.
fn readme(id: &IntegrationId, host: &str, port: u16) -> String {
    format!(
        "Hallwatch integration bundle for \"{id}\"\n\
         \n\
         ca.pem           the gateway's certificate authority (verifies the gateway)\n\
         integration.pem  this integration's client certificate\n\
         integration.key  its private key: keep it secret (mode 0600)\n\
         \n\
         The gateway publishes, as retained JSON messages:\n\
         \x20 hallwatch/status             the school summary, at least every 30 s\n\
         \x20 hallwatch/alerts/ALERT_ID    every change of every alert\n\
         An integration may only subscribe under hallwatch/ and may not publish; anything\n\
         else ends its connection. One connection per bundle: a new one replaces the older.\n\
         \n\
         Try it from this directory (Debian: apt-get install mosquitto-clients):\n\
         \n\
         \x20 mosquitto_sub -h {host} -p {port} --cafile ca.pem \\\n\
         \x20     --cert integration.pem --key integration.key -q 1 -t 'hallwatch/#' -v\n"
    )
}
