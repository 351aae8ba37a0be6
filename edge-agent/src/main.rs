//! The `edge-agent` binary: arguments → the library. Nothing else lives here.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, DeviceCommand, IntegrationCommand, Way};
use edge_agent::config::ConfigError;
use edge_agent::enroll::{EnrollError, EnrollOptions};
use edge_agent::install::{self, InitOptions, InstallError};
use edge_agent::simulate::{SimulateError, SimulateOptions};
use edge_agent::store::NewDevice;
use firmware_protocol::Direction;

fn main() -> ExitCode {
    // One crypto provider for every TLS user in the process (rustls, reqwest, rumqttc); with
    // none installed explicitly the first TLS client panics when two providers are linked.
    // An error here only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let command = Cli::parse().command;
    init_logging(log_filter(&command));

    let result = match command {
        Command::DecodeFrame { direction, hex } => {
            let direction = match direction {
                Way::Up => Direction::Up,
                Way::Down => Direction::Down,
            };
            edge_agent::inspect::describe_frame(direction, &hex.concat())
                .map(|text| println!("{text}"))
                .map_err(anyhow::Error::from)
        }
        Command::Run { data_dir } => run_gateway(&data_dir),
        Command::Status { data_dir, json } => status(&data_dir, json),
        Command::Simulate(args) => simulate(args.into()),
        Command::Enroll(args) => enroll(args.into()),
        Command::Init(args) => run_install(|| init(args)),
        Command::Device(command) => run_install(|| device(command)),
        Command::Integration(command) => run_install(|| integration(command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("edge-agent: error: {err:#}");
            let code = if err.downcast_ref::<ConfigError>().is_some() {
                EX_CONFIG
            } else if let Some(err) = err.downcast_ref::<SimulateError>() {
                err.exit_code()
            } else if let Some(err) = err.downcast_ref::<EnrollError>() {
                err.exit_code()
            } else {
                err.downcast_ref::<InstallError>()
                    .map_or(1, InstallError::exit_code)
            };
            ExitCode::from(code)
        }
    }
}

/// Logs go to stderr: readable lines at a terminal, one JSON object per line otherwise (under
/// systemd, into the journal, for machines to read), with the fields of the span the event
/// happened in — a request's or connection's `id` — so one request's lines can be followed.
fn init_logging(filter: tracing_subscriber::EnvFilter) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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

/// `RUST_LOG` if set, else `info` for the long-running agent and `warn` for one-shot commands
/// (whose output is their printed result). rumqttd's own listener is never used (it refuses
/// every client; the agent only probes that it listens), so its connection errors are noise.
fn log_filter(command: &Command) -> tracing_subscriber::EnvFilter {
    let default = match command {
        Command::Run { .. } => "info,rumqttd=warn",
        // The TLS verifier logs a refused cloud certificate; enroll's error already says it.
        Command::Enroll(_) => "warn,rustls_platform_verifier=off",
        _ => "warn",
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| default.to_owned());
    tracing_subscriber::EnvFilter::new(format!("{filter},rumqttd::server=off"))
}

/// Exit status for a configuration the agent refuses (sysexits' EX_USAGE), before any port is
/// bound.
const EX_CONFIG: u8 = 64;

fn run_gateway(data_dir: &std::path::Path) -> anyhow::Result<()> {
    // Refuse a bad configuration before starting anything.
    edge_agent::config::Config::load(data_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(edge_agent::run(data_dir, shutdown_signal()))
}

fn status(data_dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(edge_agent::sync::local_status(data_dir))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status.view)?);
    } else {
        print!(
            "{}",
            edge_agent::sync::render(&status, shared::UnixMillis::now())
        );
    }
    Ok(())
}

fn simulate(options: SimulateOptions) -> anyhow::Result<()> {
    // Refuse bad flags before building a runtime or touching the data directory.
    options.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(edge_agent::simulate::run(options, shutdown_signal()))?;
    Ok(())
}

fn enroll(options: EnrollOptions) -> anyhow::Result<()> {
    let data_dir = options.data_dir.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let done = runtime.block_on(edge_agent::enroll::enroll(options))?;
    let cloud = &done.cloud;
    match &done.replaced {
        Some(old) => println!(
            "Enrolled {} again for school {} as gateway {} (was {old}).",
            data_dir.display(),
            done.school_id,
            cloud.gateway_id
        ),
        None => println!(
            "Enrolled {} for school {} as gateway {}.",
            data_dir.display(),
            done.school_id,
            cloud.gateway_id
        ),
    }
    println!(
        "Cloud {}; sync with {}; certificate valid until {}.",
        cloud.url,
        cloud.sync_url,
        expiry_date(done.not_after)
    );
    for file in &done.files {
        println!("  wrote {}", file.display());
    }
    Ok(())
}

/// A certificate's expiry as a UTC date.
fn expiry_date(t: shared::UnixMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp(t.get().div_euclid(1000))
        .map_or_else(|_| t.to_string(), |dt| dt.date().to_string())
}

/// Resolves on SIGTERM (systemd's stop) or Ctrl-C.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutdown requested");
}

fn run_install(command: impl FnOnce() -> Result<(), InstallError>) -> anyhow::Result<()> {
    command().map_err(anyhow::Error::from)
}

fn init(args: cli::InitArgs) -> Result<(), InstallError> {
    let done = install::init(InitOptions {
        data_dir: args.data_dir.clone(),
        school_id: args.school_id,
        school_name: args.school_name,
        hostnames: args.hostnames,
        ips: args.ips,
        mqtt_listen: args.mqtt_listen,
        http_listen: args.http_listen,
    })?;
    let config = &done.config;
    println!(
        "Initialised {} for school {} ({}).",
        args.data_dir.display(),
        config.school_id,
        config.school_name
    );
    let ips: Vec<String> = config.ips.iter().map(ToString::to_string).collect();
    let names = [config.hostnames.clone(), ips].concat();
    println!("Server certificate names: {}", names.join(", "));
    for file in &done.files {
        println!("  wrote {}", file.display());
    }
    Ok(())
}

fn device(command: DeviceCommand) -> Result<(), InstallError> {
    match command {
        DeviceCommand::Add {
            data_dir,
            id,
            kind,
            room,
            press_map,
            out,
        } => {
            let device = NewDevice {
                id,
                kind: kind.into(),
                room,
                press_map,
            };
            let added = install::add_device(&data_dir, &device, &out)?;
            println!(
                "Registered {} {} in room {} (certificate serial {}).",
                device.kind, device.id, device.room, added.serial
            );
            for file in &added.files {
                println!("  wrote {}", file.display());
            }
        }
        DeviceCommand::List { data_dir } => {
            print!(
                "{}",
                install::render_table(&install::list_devices(&data_dir)?)
            );
        }
        DeviceCommand::Revoke { data_dir, id } => {
            let revoked = install::revoke_device(&data_dir, &id)?;
            let serials: Vec<String> = revoked.serials.iter().map(ToString::to_string).collect();
            println!(
                "Revoked {id} (certificates revoked: {}); wrote {} (CRL number {}).",
                serials.join(", "),
                revoked.crl_path.display(),
                revoked.crl_number
            );
        }
    }
    Ok(())
}

fn integration(command: IntegrationCommand) -> Result<(), InstallError> {
    match command {
        IntegrationCommand::Add { data_dir, id, out } => {
            let added = install::add_integration(&data_dir, &id, &out)?;
            println!(
                "Added integration {id} (certificate serial {}); see {} for how to connect.",
                added.serial,
                out.join("README.txt").display()
            );
            for file in &added.files {
                println!("  wrote {}", file.display());
            }
        }
        IntegrationCommand::List { data_dir } => {
            print!(
                "{}",
                install::render_integrations(&install::list_integrations(&data_dir)?)
            );
        }
        IntegrationCommand::Revoke { data_dir, id } => {
            let revoked = install::revoke_integration(&data_dir, &id)?;
            let serials: Vec<String> = revoked.serials.iter().map(ToString::to_string).collect();
            println!(
                "Revoked integration {id} (certificates revoked: {}); wrote {} (CRL number {}).",
                serials.join(", "),
                revoked.crl_path.display(),
                revoked.crl_number
            );
        }
    }
    Ok(())
}
