//! The gate's TLS configuration: the gateway's server certificate, client certificates
//! verified against the gateway CA and its CRL, reloading when `crl.pem` changes, and why a
//! handshake was refused, in words an installer can act on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use x509_parser::prelude::{CertificateRevocationList, FromDer};

use super::GateError;

/// Where the gate's TLS material lives (all in the gateway's data directory).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The gateway CA: the only issuer of device certificates.
    pub ca: PathBuf,
    /// The gateway's server certificate and its key.
    pub cert: PathBuf,
    /// See `cert`.
    pub key: PathBuf,
    /// The CRL `edge-agent device revoke` writes; absent until the first revocation.
    pub crl: PathBuf,
    /// The gateway's database: a device certificate must name a device registered there.
    pub db: PathBuf,
}

impl TlsFiles {
    /// The standard file names in a data directory written by `edge-agent init`.
    pub fn in_data_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            ca: dir.join(crate::pki::Ca::CERT_FILE),
            cert: dir.join(crate::install::SERVER_CERT_FILE),
            key: dir.join(crate::install::SERVER_KEY_FILE),
            crl: dir.join(crate::install::CRL_FILE),
            db: dir.join(crate::store::DB_FILE),
        }
    }
}

/// Why the gate refused a TLS handshake, when it did: `None` for a client that went away or
/// whose bytes were not TLS at all (port scanners, health checks), which is no news.
pub(super) fn refusal(error: &std::io::Error) -> Option<&'static str> {
    use rustls::{CertificateError, Error};
    let error = error.get_ref()?.downcast_ref::<Error>()?;
    Some(match error {
        Error::NoCertificatesPresented => "no client certificate",
        Error::InvalidCertificate(reason) => match reason {
            CertificateError::UnknownIssuer => {
                "unknown CA: the certificate is not from this gateway's CA"
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not yet valid (is the gateway's clock right?)"
            }
            CertificateError::Revoked => "certificate revoked",
            // Another gateway's CA has the same name as this one (every school's CA is named
            // alike), so its certificates find an issuer here and fail on its signature.
            CertificateError::BadSignature => {
                "unknown CA: the certificate is signed by another CA than this gateway's"
            }
            _ => "invalid client certificate",
        },
        Error::AlertReceived(_) => {
            "the client refused the gateway (does it trust this gateway's CA, and name its host?)"
        }
        Error::PeerIncompatible(_) => "the client's TLS is incompatible (TLS 1.2 or newer needed)",
        _ => "TLS protocol error",
    })
}

/// Raw serial numbers (big-endian bytes, as in the certificate) of revoked certificates.
pub(super) type RevokedSerials = HashSet<Vec<u8>>;

/// The current server configuration and revocation list, swapped as a whole on reload.
#[derive(Debug)]
pub(super) struct TlsState {
    files: TlsFiles,
    current: RwLock<Current>,
}

#[derive(Debug, Clone)]
struct Current {
    config: Arc<ServerConfig>,
    revoked: Arc<RevokedSerials>,
    crl_stamp: Option<(SystemTime, u64)>,
}

impl TlsState {
    pub(super) fn load(files: TlsFiles) -> Result<TlsState, GateError> {
        let current = build(&files)?;
        Ok(TlsState {
            files,
            current: RwLock::new(current),
        })
    }

    /// The configuration new handshakes use.
    pub(super) fn config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.read().config)
    }

    /// Reloads if `crl.pem` changed since the last load; returns the new revoked set if so.
    /// A CRL that fails to load keeps the previous configuration (and is logged): a broken
    /// file must not open the gate to every device, nor close it to all of them.
    pub(super) fn reload_if_changed(&self) -> Option<Arc<RevokedSerials>> {
        if crl_stamp(&self.files.crl) == self.read().crl_stamp {
            return None;
        }
        match build(&self.files) {
            Ok(next) => {
                let revoked = Arc::clone(&next.revoked);
                tracing::info!(revoked = revoked.len(), "device CRL reloaded");
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
                Some(revoked)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the device CRL; keeping the old one");
                None
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        // A panic while holding the lock cannot leave `Current` half-written (it is replaced
        // whole), so a poisoned lock is still usable.
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }
}

fn build(files: &TlsFiles) -> Result<Current, GateError> {
    let bad = |path: &Path, reason: String| GateError::Tls {
        path: path.to_owned(),
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&files.ca).map_err(|e| bad(&files.ca, e.to_string()))? {
        let ca = ca.map_err(|e| bad(&files.ca, e.to_string()))?;
        roots.add(ca).map_err(|e| bad(&files.ca, e.to_string()))?;
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| bad(&files.cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(&files.cert, e.to_string()))?;
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| bad(&files.key, e.to_string()))?;

    let crl_stamp = crl_stamp(&files.crl);
    let crls = match crl_stamp {
        Some(_) => vec![
            CertificateRevocationListDer::from_pem_file(&files.crl)
                .map_err(|e| bad(&files.crl, e.to_string()))?,
        ],
        None => Vec::new(),
    };
    let revoked = revoked_serials(&crls).map_err(|reason| bad(&files.crl, reason))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .with_crls(crls)
            .build()
            .map_err(|e| bad(&files.ca, e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&files.cert, e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| bad(&files.cert, e.to_string()))?;
    Ok(Current {
        config: Arc::new(config),
        revoked: Arc::new(revoked),
        crl_stamp,
    })
}

/// Modification time and length of the CRL file, or `None` when it does not exist.
fn crl_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn revoked_serials(crls: &[CertificateRevocationListDer<'_>]) -> Result<RevokedSerials, String> {
    let mut serials = RevokedSerials::new();
    for crl in crls {
        let (_, parsed) = CertificateRevocationList::from_der(crl).map_err(|e| e.to_string())?;
        for revoked in parsed.iter_revoked_certificates() {
            serials.insert(revoked.raw_serial().to_vec());
        }
    }
    Ok(serials)
}
