//! The `edge-agent` binary: arguments → the library. Nothing else lives here.

mod ask;
mod cli;
#[cfg(test)]
mod man_page;

use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, DeviceCommand, IntegrationCommand, Way};
use edge_agent::backup::BackupError;
use edge_agent::config::ConfigError;
use edge_agent::enroll::{EnrollError, EnrollOptions};
use edge_agent::install::{self, CsvOutcome, InitOptions, InstallError, Registered};
use edge_agent::setup::{Progress, SetupError, SetupOptions};
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
        Command::Setup(args) => setup(*args),
        Command::Doctor { data_dir, json } => doctor(&data_dir, json),
        Command::Backup { data_dir, out } => backup(&data_dir, &out),
        Command::Restore {
            from,
            data_dir,
            force,
        } => restore(&from, &data_dir, force),
        Command::Init(args) => run_install(|| init(args)),
        Command::Device(command) => run_install(|| device(command)),
        Command::Integration(command) => run_install(|| integration(command)),
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
        shutdown_signal()
    };
    runtime.block_on(edge_agent::run(data_dir, shutdown))
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
    let shutdown = {
        let _entered = runtime.enter();
        shutdown_signal()
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
fn expiry_date(t: shared::UnixMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp(t.get().div_euclid(1000))
        .map_or_else(|_| t.to_string(), |dt| dt.date().to_string())
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
            csv: Some(csv),
            out,
            ..
        } => {
            let rows = install::read_devices_csv(&csv)?;
            let done = install::add_devices(&data_dir, &csv, &rows, &out, Registered::Refuse)?;
            println!(
                "Registered {} devices from {}; one bundle each in {}.",
                done.len(),
                csv.display(),
                out.display()
            );
            print_devices(&rows, &done);
        }
        DeviceCommand::Add {
            data_dir,
            id: Some(id),
            kind: Some(kind),
            room: Some(room),
            press_map,
            out,
            ..
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
        // clap requires --id, --kind and --room unless --csv is given.
        DeviceCommand::Add { .. } => {
            return Err(InstallError::Bundle(
                "give --csv FILE, or --id, --kind and --room".into(),
            ));
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

/// One line per device row: id, kind, room, bundle directory, and whether it is new.
fn print_devices(rows: &[install::CsvDevice], done: &[CsvOutcome]) {
    for (row, outcome) in rows.iter().zip(done) {
        let d = &row.device;
        match outcome {
            CsvOutcome::Added { dir, added } => println!(
                "  {} {} in room {}: {} (certificate serial {})",
                d.kind,
                d.id,
                d.room,
                dir.display(),
                added.serial
            ),
            CsvOutcome::Kept { dir } => println!(
                "  {} {} in room {}: {} (registered before; kept)",
                d.kind,
                d.id,
                d.room,
                dir.display()
            ),
        }
    }
}

fn setup(args: cli::SetupArgs) -> anyhow::Result<()> {
    let asker = ask::Asker::new();
    let data_dir = asker.value(
        args.data_dir,
        "--data-dir",
        "Gateway data directory (e.g. /var/lib/hallwatch/edge)",
    )?;
    let school_id = asker.value(
        args.school_id,
        "--school-id",
        "School id (as the cloud's operator created it)",
    )?;
    let school_name = match args.school_name {
        Some(name) => name,
        None => asker.ask("--school-name", "School name", false, |s| {
            edge_agent::config::validate_school_name(s)
                .map(|_| s.to_owned())
                .map_err(|reason| format!("the school name {reason}"))
        })?,
    };
    let (hostnames, ips) = if args.hostnames.is_empty() && args.ips.is_empty() {
        asker.ask(
            "--hostname or --ip",
            "Host names or IP addresses devices use to reach the gateway (space-separated)",
            false,
            cli::hosts,
        )?
    } else {
        (args.hostnames, args.ips)
    };
    let cloud = asker.value(
        args.cloud_url,
        "--cloud-url",
        "Cloud address (e.g. https://cloud.example.org)",
    )?;
    let sync_url = asker.value(
        args.sync_url,
        "--sync-url",
        "Cloud sync address (e.g. https://sync.example.org:8443)",
    )?;
    let token = match (args.token, args.enroll_token_file) {
        (_, Some(file)) => cli::token_file(&file)?,
        (Some(token), None) => token,
        (None, None) => asker.ask(
            "--enroll-token-file (or HALLWATCH_ENROLL_TOKEN)",
            "Enrollment token (not shown)",
            true,
            |s| s.parse(),
        )?,
    };
    let options = SetupOptions {
        data_dir: data_dir.clone(),
        school_id,
        school_name,
        hostnames,
        ips,
        mqtt_listen: args.mqtt_listen,
        http_listen: args.http_listen,
        cloud,
        sync_url,
        token,
        devices: args.devices,
        bundles: args.bundles.clone(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut progress = |step: Progress| match step {
        Progress::DevicesRead(n) => println!("Devices file: {n} devices, all rows valid."),
        Progress::AlreadyInitialised => {
            println!("{} is initialised already; keeping it.", data_dir.display())
        }
        Progress::AlreadyEnrolled => println!("The gateway is enrolled already; keeping it."),
        Progress::TokenValid(until) => println!(
            "Cloud reachable; the token is valid for this school until {}.",
            expiry_date(until)
        ),
    };
    let done = runtime.block_on(edge_agent::setup::setup(options, &mut progress))?;
    if let Some(init) = &done.initialised {
        let names = [
            init.config.hostnames.clone(),
            init.config.ips.iter().map(ToString::to_string).collect(),
        ]
        .concat();
        println!(
            "Initialised {} for school {} ({}); devices connect to {}.",
            data_dir.display(),
            init.config.school_id,
            init.config.school_name,
            names.join(", ")
        );
    }
    if let Some(enrolled) = &done.enrolled {
        println!(
            "Enrolled as gateway {} with {}; certificate valid until {}.",
            enrolled.cloud.gateway_id,
            enrolled.cloud.url,
            expiry_date(enrolled.not_after)
        );
    }
    if !done.devices.is_empty() {
        println!("Devices, one bundle each in {}:", args.bundles.display());
        print_devices(&done.rows, &done.devices);
    }
    let dir = data_dir.display();
    println!(
        "\nNext steps:\n\
         1. Flash each device with its bundle (then delete the bundle: it holds the device's key):\n   \
            python -m esp_idf_nvs_partition_gen generate {}/<id>/nvs.csv nvs.bin 0x6000\n\
         2. Start the gateway: sudo systemctl enable --now hallwatch-edge\n   \
            (or in a terminal: edge-agent run --data-dir {dir})\n\
         3. Check it: edge-agent doctor --data-dir {dir}\n\
         4. Back it up, and keep the file safe (it holds the gateway's keys):\n   \
            edge-agent backup --data-dir {dir} --out gateway.hwbackup\n\
         The dashboard's operator token is in {dir}/operator-token.",
        args.bundles.display()
    );
    Ok(())
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
