//! The `cloud-sync` binary: arguments → the library. Nothing else lives here.

use std::fs::File;
use std::io::{BufRead, IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use cloud_sync::auth::{self, Email, Grant, Password, Role};
use cloud_sync::settings::{self, RawSettings};
use cloud_sync::{Config, Server, db};
use shared::ids::{RegionId, SchoolId};
use shared::sync::Limits;
use sqlx::postgres::PgConnectOptions;

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

#[derive(Debug, Subcommand)]
enum Admin {
    /// Create a region.
    CreateRegion {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The region's id (letters, digits, '-', '_').
        #[arg(long)]
        id: RegionId,
        /// Its display name.
        #[arg(long)]
        name: String,
    },
    /// Create a school and print a one-time enrollment token for its gateway.
    CreateSchool {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The region the school belongs to.
        #[arg(long)]
        region: RegionId,
        /// The school's id (letters, digits, '-', '_').
        #[arg(long)]
        id: SchoolId,
        /// Its display name.
        #[arg(long)]
        name: String,
        /// How long the token stays valid, in hours.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=720))]
        token_hours: u64,
    },
    /// Print a new one-time enrollment token for an existing school (a replaced gateway).
    CreateToken {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The school.
        #[arg(long)]
        school: SchoolId,
        /// How long the token stays valid, in hours.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=720))]
        token_hours: u64,
    },
    /// Create a person's account with one role; the password is read from standard input
    /// (one line; not echoed when typed at a terminal).
    CreateUser {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The login name.
        #[arg(long)]
        email: String,
        /// Read the password from standard input (the only way to give it).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// superadmin, region_admin, school_admin or viewer.
        #[arg(long)]
        role: Role,
        /// The region, for region_admin.
        #[arg(long)]
        region: Option<RegionId>,
        /// The school, for school_admin and viewer.
        #[arg(long)]
        school: Option<SchoolId>,
    },
    /// Remove a person's second factor (TOTP), pending or active, so they can sign in with
    /// their password alone and enrol a new phone; audited as totp_reset.
    ResetTotp {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The person's login name.
        #[arg(long)]
        email: String,
    },
    /// Add an access-token signing key to the data directory; it signs from the service's
    /// next key reload (within 30 s). Remove the old key file 16 minutes later.
    AddSigningKey {
        /// The service's --data-dir.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Snapshot retention: create the coming months' partitions, drop months older than
    /// --keep-months; delete refresh tokens expired over a day ago (run daily from cron or a
    /// systemd timer).
    Prune {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Whole months of snapshots to keep.
        #[arg(long, default_value_t = 13)]
        keep_months: i32,
    },
}

fn main() -> ExitCode {
    // One crypto provider for every TLS user in the process; an error only means a provider
    // is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    init_logging();

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
        }) => match user_request(&email, role, region, school) {
            Ok((email, grant, password)) => {
                block_on(create_user(database_url, email, grant, password))
            }
            Err(err) => {
                eprintln!("cloud-sync: {err:#}");
                return ExitCode::from(EX_CONFIG);
            }
        },
        Command::Admin(admin) => block_on(run_admin(admin)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cloud-sync: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (errors only without it): readable lines at a
/// terminal, one JSON object per line otherwise (under systemd, into the journal, for machines
/// to read), with the fields of the span the event happened in — a request's `id` — so one
/// request's lines can be followed.
fn init_logging() {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
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
    let shutdown = shutdown_signal();
    let server = Server::bind(config).await?;
    server.run(shutdown).await
}

/// Resolves on SIGTERM (what systemd sends to stop a service) or Ctrl-C. The handlers are
/// installed when this is called, not when the future is first polled: called before the
/// listeners are bound, a SIGTERM that comes as soon as they accept stops the service
/// cleanly instead of killing it (the signal's default action). Needs the runtime entered.
fn shutdown_signal() -> impl Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let terminate = signal(SignalKind::terminate());
    let interrupt = signal(SignalKind::interrupt());
    async move {
        match (terminate, interrupt) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (terminate, interrupt) => {
                tracing::warn!(
                    sigterm = ?terminate.err(),
                    sigint = ?interrupt.err(),
                    "cannot watch SIGTERM or SIGINT; stopping on Ctrl-C only"
                );
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        tracing::info!("shutdown requested");
    }
}

fn block_on<F: Future<Output = anyhow::Result<()>>>(future: F) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

async fn pool(url: &str) -> anyhow::Result<sqlx::PgPool> {
    let options: PgConnectOptions = url.parse().context("invalid --database-url")?;
    db::connect(options, 2)
        .await
        .context("cannot connect to the database")
}

async fn migrate(url: String) -> anyhow::Result<()> {
    db::migrate(&pool(&url).await?).await?;
    eprintln!("cloud-sync: migrations applied");
    Ok(())
}

async fn run_admin(admin: Admin) -> anyhow::Result<()> {
    let hours = |h: u64| Duration::from_secs(h * 3600);
    match admin {
        Admin::CreateRegion {
            database_url,
            id,
            name,
        } => {
            db::admin::create_region(&pool(&database_url).await?, &id, &name).await?;
            eprintln!("cloud-sync: region {id} created");
        }
        Admin::CreateSchool {
            database_url,
            region,
            id,
            name,
            token_hours,
        } => {
            let pool = pool(&database_url).await?;
            let token =
                db::admin::create_school(&pool, &region, &id, &name, hours(token_hours)).await?;
            eprintln!(
                "cloud-sync: school {id} created; enrollment token (single use, valid \
                 {token_hours} h, shown only now):"
            );
            println!("{}", token.as_str());
        }
        Admin::CreateToken {
            database_url,
            school,
            token_hours,
        } => {
            let pool = pool(&database_url).await?;
            let token =
                db::admin::create_enrollment_token(&pool, &school, hours(token_hours)).await?;
            eprintln!(
                "cloud-sync: enrollment token for {school} (single use, valid {token_hours} h):"
            );
            println!("{}", token.as_str());
        }
        Admin::CreateUser { .. } => anyhow::bail!("create-user is handled before the runtime"),
        Admin::ResetTotp {
            database_url,
            email,
        } => {
            let email: Email = email.parse().context("--email")?;
            let pool = pool(&database_url).await?;
            match db::totp::reset(&pool, &email).await? {
                None => anyhow::bail!("--email: no account has the address {email}"),
                Some((user, true)) => eprintln!(
                    "cloud-sync: two-factor sign-in removed for {email} ({user}); they sign in \
                     with their password and may enrol a new phone"
                ),
                Some((user, false)) => eprintln!(
                    "cloud-sync: {email} ({user}) had no two-factor sign-in; nothing changed"
                ),
            }
        }
        Admin::AddSigningKey { data_dir } => {
            let kid = auth::add_signing_key(&data_dir)?;
            eprintln!(
                "cloud-sync: signing key {kid} added in {}; it signs from the service's next \
                 reload (within 30 s); remove the previous key file 16 minutes from now, when \
                 the last token it signed has expired",
                data_dir.join(auth::KEY_DIR).display()
            );
        }
        Admin::Prune {
            database_url,
            keep_months,
        } => {
            let pool = pool(&database_url).await?;
            let created = db::admin::ensure_snapshot_partitions(&pool, 3).await?;
            let dropped = db::admin::prune_snapshots(&pool, keep_months).await?;
            eprintln!("cloud-sync: {created} snapshot partitions created, {dropped} dropped");
            let tokens = db::accounts::prune_refresh_tokens(&pool).await?;
            eprintln!("cloud-sync: {tokens} refresh tokens expired over a day ago deleted");
            let events = db::realtime::prune(&pool, 24).await?;
            eprintln!("cloud-sync: {events} realtime events older than 24 h deleted");
        }
    }
    Ok(())
}

/// The account `create-user` asks for, with its password read from standard input; refused
/// before anything is touched when a flag or the password is not acceptable.
fn user_request(
    email: &str,
    role: Role,
    region: Option<RegionId>,
    school: Option<SchoolId>,
) -> anyhow::Result<(Email, Grant, Password)> {
    let email: Email = email.parse().context("--email")?;
    let grant = Grant::new(role, region, school)?;
    let password = read_password()?;
    Ok((email, grant, password))
}

async fn create_user(
    url: String,
    email: Email,
    grant: Grant,
    password: Password,
) -> anyhow::Result<()> {
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password)).await??;
    let pool = pool(&url).await?;
    let user = db::accounts::create_user(&pool, &email, &hash, &grant).await?;
    eprintln!(
        "cloud-sync: user {email} ({}) created with id:",
        grant.role()
    );
    println!("{user}");
    Ok(())
}

/// One line of standard input, without its line ending. At a terminal it asks on stderr and
/// turns echo off (with `stty`, which acts on the terminal it is given as stdin) while the
/// password is typed.
fn read_password() -> anyhow::Result<Password> {
    let stdin = std::io::stdin();
    let at_terminal = stdin.is_terminal();
    let _echo = at_terminal.then(EchoOff::new);
    if at_terminal {
        eprint!("Password for the new user (not shown): ");
    }
    let mut line = String::new();
    // One byte over the longest password accepted, so an endless stream is not read whole.
    let limit = u64::try_from(Password::MAX_BYTES + 3).unwrap_or(u64::MAX);
    stdin
        .lock()
        .take(limit)
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    if at_terminal {
        eprintln!();
    }
    if !at_terminal {
        // More than one line is refused rather than silently cut: a piped file is not a
        // password.
        let mut rest = String::new();
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_string(&mut rest)
            .context("cannot read standard input")?;
        if !rest.trim().is_empty() {
            anyhow::bail!("the password must be one line; standard input has more");
        }
    }
    let line = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line)
        .to_owned();
    Ok(Password::try_from(line)?)
}

/// Terminal echo off for as long as it lives.
struct EchoOff;

impl EchoOff {
    fn new() -> Self {
        let _ = std::process::Command::new("stty").arg("-echo").status();
        Self
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = std::process::Command::new("stty").arg("echo").status();
    }
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
