//! The data directory's layout: every file the gateway keeps there, named here and nowhere
//! else. A leaf: it imports nothing of the agent, so every module may ask it where a file is.
//!
//! The other modules' constants for these names (`store::DB_FILE`, `install::CRL_FILE`, …) are
//! re-exports of these, kept where their callers already look for them.

use std::path::{Path, PathBuf};

/// `agent.toml`: the gateway's configuration.
pub const CONFIG_FILE: &str = "agent.toml";
/// The gateway's SQLite database.
pub const DB_FILE: &str = "edge.db";
/// The gateway CA's certificate, which devices and integrations trust.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The gateway CA's private key.
pub const CA_KEY_FILE: &str = "ca.key";
/// The gateway's server certificate for the device listener.
pub const SERVER_CERT_FILE: &str = "server.pem";
/// The server certificate's private key.
pub const SERVER_KEY_FILE: &str = "server.key";
/// The certificate revocation list the gate checks devices against.
pub const CRL_FILE: &str = "crl.pem";
/// The local dashboard's operator token.
pub const OPERATOR_TOKEN_FILE: &str = "operator-token";
/// The gateway's private key for sync.
pub const GATEWAY_KEY_FILE: &str = "gateway.key";
/// The gateway's client certificate for sync.
pub const GATEWAY_CERT_FILE: &str = "gateway.pem";
/// The cloud's gateway CA, which the sync client trusts for the sync listener.
pub const CLOUD_CA_FILE: &str = "cloud-ca.pem";

/// `agent.toml` in `data_dir`.
pub fn config_file(data_dir: &Path) -> PathBuf {
    data_dir.join(CONFIG_FILE)
}

/// The database in `data_dir`.
pub fn database(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// The operator token in `data_dir`.
pub fn operator_token(data_dir: &Path) -> PathBuf {
    data_dir.join(OPERATOR_TOKEN_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_its_own_name() {
        let names = [
            CONFIG_FILE,
            DB_FILE,
            CA_CERT_FILE,
            CA_KEY_FILE,
            SERVER_CERT_FILE,
            SERVER_KEY_FILE,
            CRL_FILE,
            OPERATOR_TOKEN_FILE,
            GATEWAY_KEY_FILE,
            GATEWAY_CERT_FILE,
            CLOUD_CA_FILE,
        ];
        let distinct: std::collections::HashSet<&str> = names.into_iter().collect();
        assert_eq!(distinct.len(), names.len());
        assert_eq!(
            database(Path::new("/var/lib/hallwatch")),
            Path::new("/var/lib/hallwatch/edge.db")
        );
    }
}
