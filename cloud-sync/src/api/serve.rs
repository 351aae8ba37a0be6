//! The routers as the server's accept loops serve them, so that `server` needs no axum: one
//! [`Connection`] service per accepted connection, which puts what that connection knows into
//! each of its requests (the peer's address for the public listener's login limits, the
//! gateway's certificate identity for sync); and the metrics listener served whole.

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use axum::routing::future::RouteFuture;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tower::Service;

use super::AppState;
use crate::pki::GatewayIdentity;

/// A listener's routes, ready to serve connection by connection.
#[derive(Debug, Clone)]
pub(crate) struct Routes(Router);

impl Routes {
    /// The public listener's routes ([`super::public_router`]).
    pub(crate) fn public(state: AppState) -> Routes {
        Routes(super::public_router(state))
    }

    /// The mTLS sync listener's routes ([`super::sync_router`]).
    pub(crate) fn sync(state: AppState) -> Routes {
        Routes(super::sync_router(state))
    }

    /// The service for one public connection from `peer` (axum's `ConnectInfo`).
    pub(crate) fn for_peer(&self, peer: SocketAddr) -> Connection<ConnectInfo<SocketAddr>> {
        Connection {
            router: self.0.clone(),
            extension: ConnectInfo(peer),
        }
    }

    /// The service for one sync connection whose client certificate named `identity`.
    pub(crate) fn for_gateway(&self, identity: GatewayIdentity) -> Connection<GatewayIdentity> {
        Connection {
            router: self.0.clone(),
            extension: identity,
        }
    }
}

/// One connection's service: the routes, with `extension` added to every request.
#[derive(Debug, Clone)]
pub(crate) struct Connection<X> {
    router: Router,
    extension: X,
}

impl<X> hyper::service::Service<Request<Incoming>> for Connection<X>
where
    X: Clone + Send + Sync + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = RouteFuture<Infallible>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        request.extensions_mut().insert(self.extension.clone());
        // A router is always ready (`poll_ready` is `Ready(Ok)`), so calling a clone is what
        // hyper-util's tower adapter did too.
        self.router.clone().call(request.map(axum::body::Body::new))
    }
}

/// Serves the metrics listener ([`super::metrics_router`]) until `shutdown`, then lets its
/// requests in flight finish.
pub(crate) async fn serve_metrics(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, super::metrics_router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
