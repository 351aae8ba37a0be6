//! The `cloud-sync` binary: arguments → the library. `admin` holds the platform
//! administration commands (`cloud-sync admin ...`) and what they print.

mod admin;

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use admin::Admin;
use anyhow::Context;
use clap::{Parser, Subcommand};
use cloud_sync::settings::{self, RawSettings};
use cloud_sync::{Config, Server, db};
use shared::sync::Limits;

#[cfg(test)]
mod man_page;

#[derive(Debug, Parser)]
#[command(name = "cloud-sync", version, about = "Hallwatch cloud service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply the database migrations (connect as the schema owner, not as hallwatch_app).
    Migrate {
        /// postgres://owner@host/db
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
    },
    /// Run the service: the public listener (enrollment) and the mTLS sync listener.
    Serve(ServeArgs),
    /// Platform administration: regions, schools, enrollment tokens, retention.
    #[command(subcommand)]
    Admin(Admin),
    /// Describe a saved sync request body (postcard + zstd), or say why it is refused.
    InspectBatch {
        /// The file holding the body, exactly as the gateway sent it.
        file: PathBuf,
    },
}

/// `serve`'s flags. Each may instead come from a `HALLWATCH_CLOUD_<FIELD>` variable
/// (`DATABASE_URL` for the database) or the `--config` file; a flag wins, then the variable,
/// then the file. Values are checked by `cloud_sync::settings`, which names the source of a
/// bad one (exit status 64).
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// A TOML configuration file (the package's is /etc/hallwatch/cloud.toml); see
    /// docs/configuration.md.
    #[arg(long)]
    config: Option<PathBuf>,
    /// postgres://hallwatch_app:PASSWORD@host/db (the application role, never the owner);
    /// or DATABASE_URL.
    #[arg(long)]
    database_url: Option<String>,
    /// Where the gateway CA is kept (created on first start).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The public listener (enrollment) [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<String>,
    /// The mutual-TLS listener gateways sync with [default: 0.0.0.0:8443].
    #[arg(long)]
    sync_listen: Option<String>,
    /// Prometheus metrics (/metrics), /healthz and /readyz, plain HTTP: keep it on loopback
    /// or a private network [default: 127.0.0.1:9464].
    #[arg(long)]
    metrics_listen: Option<String>,
    /// A DNS name or IP address gateways use to reach the sync listener (repeatable)
    /// [default: localhost, 127.0.0.1].
    #[arg(long = "sync-name")]
    sync_names: Vec<String>,
    /// Database connections, 1 to 500 [default: 16].
    #[arg(long)]
    pool_size: Option<u64>,
    /// Sync requests per second one gateway may make on average [default: 20].
    #[arg(long)]
    rate_per_sec: Option<f64>,
    /// Sync requests one gateway may make in a burst [default: 40].
    #[arg(long)]
    rate_burst: Option<u64>,
    /// Seconds without a sync after which a gateway that has synced before is reported
    /// offline (gateways sync at least every 30 s), 1 to 86400 [default: 90].
    #[arg(long)]
    gateway_offline_after: Option<u64>,
    /// A proxy in front of the public listener (repeatable): for its connections, a login's
    /// source address is taken from X-Forwarded-For (rate limits per source).
    #[arg(long = "trusted-proxy")]
    trusted_proxies: Vec<String>,
}

fn main() -> ExitCode {
    // One crypto provider for every TLS user in the process; an error only means a provider
    // is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    hallwatch_service::logging::init(tracing_subscriber::EnvFilter::from_default_env());

    let cli = Cli::parse();
    let result = match cli.command {
        Command::InspectBatch { file } => inspect(&file),
        Command::Migrate { database_url } => block_on(migrate(database_url)),
        Command::Serve(args) => match serve_config(args) {
            Ok(config) => block_on(serve(config)),
            Err(err) => {
                eprintln!("cloud-sync: bad configuration: {err:#}");
                return ExitCode::from(EX_CONFIG);
            }
        },
        Command::Admin(Admin::CreateUser {
            database_url,
            email,
            password_stdin: _,
            role,
            region,
            school,
        }) => match admin::user_request(&email, role, region, school) {
            Ok((email, grant, password)) => {
                block_on(admin::create_user(database_url, email, grant, password))
            }
            Err(err) => {
                eprintln!("cloud-sync: {err:#}");
                return ExitCode::from(EX_CONFIG);
            }
        },
        Command::Admin(admin) => block_on(admin::run(admin)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cloud-sync: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// sysexits' EX_USAGE: the configuration is wrong, nothing was started.
const EX_CONFIG: u8 = 64;

fn serve_config(args: ServeArgs) -> anyhow::Result<Config> {
    let flags = RawSettings {
        database_url: args.database_url,
        data_dir: args.data_dir,
        listen: args.listen,
        sync_listen: args.sync_listen,
        metrics_listen: args.metrics_listen,
        sync_names: Some(args.sync_names),
        pool_size: args.pool_size,
        rate_per_sec: args.rate_per_sec,
        rate_burst: args.rate_burst,
        gateway_offline_after_s: args.gateway_offline_after,
        trusted_proxies: Some(args.trusted_proxies),
    };
    Ok(settings::resolve(
        args.config.as_deref(),
        flags,
        std::env::vars_os(),
    )?)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let shutdown = hallwatch_service::signal::shutdown_signal();
    let server = Server::bind(config).await?;
    server.run(shutdown).await
}

fn block_on<F: Future<Output = anyhow::Result<()>>>(future: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

async fn pool(url: &str) -> anyhow::Result<db::Pool> {
    let options: db::ConnectOptions = url.parse().context("invalid --database-url")?;
    db::connect(options, 2)
        .await
        .context("cannot connect to the database")
}

async fn migrate(url: String) -> anyhow::Result<()> {
    db::migrate(&pool(&url).await?).await?;
    eprintln!("cloud-sync: migrations applied");
    Ok(())
}

fn inspect(path: &Path) -> anyhow::Result<()> {
    // Read at most one byte past the limit: anything larger is refused by the decoder anyway.
    let max = u64::try_from(Limits::DEFAULT.max_compressed)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(max).read_to_end(&mut bytes)?;
    let text = cloud_sync::inspect::describe_batch(&bytes)
        .with_context(|| format!("{} is not an acceptable sync body", path.display()))?;
    print!("{text}");
    Ok(())
}
