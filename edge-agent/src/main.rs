//! The `edge-agent` binary: arguments → the library. Its modules: `cli` (the clap
//! definitions), `installer` (the installer's commands and what they print), `ask` (asking
//! at a terminal for what `setup`'s flags leave out).

mod ask;
mod cli;
mod installer;
#[cfg(test)]
mod man_page;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, Way};
use edge_agent::backup::BackupError;
use edge_agent::config::ConfigError;
use edge_agent::enroll::{EnrollError, EnrollOptions};
use edge_agent::install::InstallError;
use edge_agent::setup::SetupError;
use edge_agent::simulate::{SimulateError, SimulateOptions};
use firmware_protocol::Direction;

fn main() -> ExitCode {
    // One crypto provider for every TLS user in the process (rustls, reqwest, rumqttc); with
    // none installed explicitly the first TLS client panics when two providers are linked.
    // An error here only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let command = Cli::parse().command;
    hallwatch_service::logging::init(log_filter(&command));

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
        Command::Setup(args) => installer::setup(*args),
        Command::Doctor { data_dir, json } => doctor(&data_dir, json),
        Command::Backup { data_dir, out } => backup(&data_dir, &out),
        Command::Restore {
            from,
            data_dir,
            force,
        } => restore(&from, &data_dir, force),
        Command::Init(args) => installer::init(args).map_err(anyhow::Error::from),
        Command::Device(command) => installer::device(command).map_err(anyhow::Error::from),
        Command::Integration(command) => {
            installer::integration(command).map_err(anyhow::Error::from)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("edge-agent: error: {err:#}");
            let code = if err.downcast_ref::<ConfigError>().is_some() || ask::is_missing(&err) {
                EX_CONFIG
            } else if let Some(err) = err.downcast_ref::<SetupError>() {
                err.exit_code()
            } else if let Some(err) = err.downcast_ref::<BackupError>() {
                err.exit_code()
            } else if err.downcast_ref::<edge_agent::doctor::Failed>().is_some() {
                1
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

/// `RUST_LOG` if set, else `info` for the long-running agent and `warn` for one-shot commands
/// (whose output is their printed result). rumqttd's own listener is never used (it refuses
/// every client; the agent only probes that it listens), so its connection errors are noise.
fn log_filter(command: &Command) -> tracing_subscriber::EnvFilter {
    let default = match command {
        Command::Run { .. } => "info,rumqttd=warn",
        // The TLS verifier logs a refused cloud certificate; enroll's error already says it.
        Command::Enroll(_) | Command::Setup(_) | Command::Doctor { .. } => {
            "warn,rustls_platform_verifier=off"
        }
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
    let shutdown = {
        let _entered = runtime.enter();
        hallwatch_service::signal::shutdown_signal()
    };
    runtime.block_on(edge_agent::run(data_dir, shutdown))
}

fn status(data_dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(edge_agent::status::local_status(data_dir))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status.view)?);
    } else {
        print!(
            "{}",
            edge_agent::status::render(&status, shared::UnixMillis::now())
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
    let shutdown = {
        let _entered = runtime.enter();
        hallwatch_service::signal::shutdown_signal()
    };
    runtime.block_on(edge_agent::simulate::run(options, shutdown))?;
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
fn expiry_date(t: shared::UnixMillis) -> shared::Utc {
    t.utc(shared::UtcFormat::Date)
}

fn doctor(data_dir: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(edge_agent::doctor::examine(data_dir));
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    report.verdict()?;
    Ok(())
}

fn backup(data_dir: &std::path::Path, out: &std::path::Path) -> anyhow::Result<()> {
    let done = edge_agent::backup::backup(data_dir, out)?;
    println!(
        "Backed up {} into {} ({} bytes, mode 0600: it holds the gateway's private keys).",
        data_dir.display(),
        out.display(),
        done.bytes
    );
    for (name, size) in &done.files {
        println!("  {name} ({size} bytes)");
    }
    Ok(())
}

fn restore(from: &std::path::Path, data_dir: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let done = edge_agent::backup::restore(from, data_dir, force)?;
    println!(
        "Restored {} into {} (school {}, backup taken {}).",
        from.display(),
        data_dir.display(),
        done.school_id,
        done.taken_at
    );
    if let Some(aside) = &done.moved_aside {
        println!(
            "The directory's previous files are in {}; delete it once the gateway runs.",
            aside.display()
        );
    }
    println!(
        "Start the agent: it draws a new sync epoch, so records written from now on reach the \
         cloud beside those it already has."
    );
    Ok(())
}
