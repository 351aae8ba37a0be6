//! Shared test helpers: pools as the application role, and a running cloud with real TLS.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// A pool connected as the service's role (the test cluster trusts local connections).
pub(crate) async fn app_pool(opts: &PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(20)
        .connect_with(opts.clone().username(cloud_sync::db::APP_ROLE))
        .await
        .expect("connect as the application role")
}
