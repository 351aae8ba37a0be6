//! The installer's commands as the binary runs and prints them: `init`, `device add|list|revoke`,
//! `integration add|list|revoke` and `setup` (which asks for what its flags do not give).

use edge_agent::install::{self, CsvOutcome, InitOptions, InstallError, Registered};
use edge_agent::setup::{Progress, SetupOptions};
use edge_agent::store::NewDevice;

use crate::cli::{self, DeviceCommand, IntegrationCommand};
use crate::{ask, expiry_date};

pub(crate) fn init(args: cli::InitArgs) -> Result<(), InstallError> {
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

pub(crate) fn device(command: DeviceCommand) -> Result<(), InstallError> {
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

pub(crate) fn integration(command: IntegrationCommand) -> Result<(), InstallError> {
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

pub(crate) fn setup(args: cli::SetupArgs) -> anyhow::Result<()> {
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
