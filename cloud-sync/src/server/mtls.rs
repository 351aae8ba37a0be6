//! The sync listener: TLS that requires a client certificate chaining to the gateway CA, and
//! an accept loop that turns each connection's certificate into a [`GatewayIdentity`] request
//! extension before any handler runs. A connection whose certificate lacks the gateway names
//! is closed without a response.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connection;
use crate::api::Routes;
use crate::pki::{GatewayCa, GatewayIdentity};

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS for the sync listener: our certificate from the gateway CA, client certificates
/// required and verified against the same CA.
pub(super) fn server_config(
    ca: &GatewayCa,
    names: &[String],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let mut roots = RootCertStore::empty();
    let ca_der = rustls::pki_types::pem::PemObject::from_pem_slice(ca.cert_pem().as_bytes())
        .map_err(|e| anyhow::anyhow!("gateway CA certificate: {e:?}"))?;
    roots.add(ca_der).context("gateway CA certificate")?;
    let verifier = WebPkiClientVerifier::builder(Arc::new(roots))
        .build()
        .context("client verifier")?;
    let leaf = ca.server_cert(names)?;
    let mut config = rustls::ServerConfig::builder()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(leaf.cert_der)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key_der)),
        )
        .context("sync listener certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts connections until `cancel`, serving each on its own task.
pub(super) async fn accept_loop(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    routes: Routes,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let acceptor = TlsAcceptor::from(tls);
    while let Some((tcp, peer)) = connection::accept(&listener, &cancel).await {
        let acceptor = acceptor.clone();
        let routes = routes.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::info!(%peer, error = %err, "TLS handshake refused");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let identity = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|certs| certs.first())
                .map(|cert| GatewayIdentity::from_der(cert));
            let identity = match identity {
                Some(Ok(identity)) => identity,
                Some(Err(err)) => {
                    tracing::warn!(%peer, error = %err, "client certificate refused");
                    return;
                }
                None => return,
            };
            let served = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), routes.for_gateway(identity));
            connection::serve(served, &cancel, peer).await;
        });
    }
}
