//! The binary's command line: clap definitions, each argument parsed into its domain type so
//! a bad value is refused before any file is touched.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use edge_agent::config::{
    CloudUrl, DEFAULT_HTTP_LISTEN, DEFAULT_MQTT_LISTEN, SyncUrl, validate_school_name,
};
use edge_agent::enroll::EnrollToken;
use edge_agent::integration::IntegrationId;
use edge_agent::store::DeviceKind;
use firmware_protocol::Label;
use shared::ids::{DeviceId, SchoolId};

#[derive(Debug, Parser)]
#[command(name = "edge-agent", version, about = "Hallwatch gateway agent")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// The installer's path in one run: init, enrollment and the first devices. Asks for
    /// what the flags do not give when run at a terminal; checks with the cloud that the
    /// token is valid before writing anything; a rerun finishes what a failed run left.
    Setup(Box<SetupArgs>),
    /// Set up a gateway: the data directory, agent.toml, the database, the gateway's CA and
    /// its TLS server certificate. Refuses a directory that is already initialised.
    Init(InitArgs),
    /// Register, list and revoke devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Add, list and revoke integrations: clients on the school network (strobes, PA,
    /// signage) that read alerts and the school status under hallwatch/ over MQTT.
    #[command(subcommand)]
    Integration(IntegrationCommand),
    /// Enroll the gateway with the cloud: make its key and a certificate request, have the
    /// cloud sign it with the school's one-time token, and store the certificate, the cloud's
    /// CA and the [cloud] section of agent.toml. Refuses a gateway that is enrolled already
    /// unless --force.
    Enroll(EnrollArgs),
    /// Run the gateway: the device gate (MQTT over mutual TLS) and the embedded broker, until
    /// SIGTERM or Ctrl-C.
    Run {
        /// The gateway's data directory, as written by `edge-agent init`.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Simulate panic buttons and cameras: provision (or reuse) sim-btn-NNNN and sim-cam-NNNN
    /// with real certificates (bundles under DATA_DIR/sim/), connect each over MQTT with mutual
    /// TLS, and send heartbeats, occupancy counts and button presses as firmware does, printing
    /// a summary every 5 seconds.
    ///
    /// A press is retransmitted (same boot and seq) every second until the gateway's PressAck
    /// for it arrives, and given up after --press-retry-limit sends. Against `edge-agent run`,
    /// each press raises an alert (or joins the button's open one) on the local dashboard.
    Simulate(SimulateArgs),
    /// Show how the gateway's sync with the cloud is doing: the link, the last successful
    /// sync, what waits in each lane of the outbox and since when, the last error, and the
    /// records the cloud refused (dead letters). Asks the running agent; when it is not
    /// running, reads the outbox from the database.
    Status {
        /// The gateway's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Print the status as JSON (the local API's `GET /api/v1/sync` body).
        #[arg(long)]
        json: bool,
    },
    /// Check the gateway and explain what is wrong: certificates and their expiry, the CRL,
    /// the database, disk space, the listeners, the cloud, the clock and the last sync. Exits
    /// 1 when a check fails. Safe while the agent runs.
    Doctor {
        /// The gateway's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Print the checks as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Back the gateway up into one file (mode 0600: it holds private keys): a consistent
    /// copy of the database, taken while the agent runs, with agent.toml, the keys, the
    /// certificates and the CRL.
    Backup {
        /// The gateway's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The backup file to write (must not exist), e.g. gw-2026-05-01.hwbackup.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Restore a backup into a data directory that is empty or missing (or, with --force,
    /// move the existing one aside). The archive is checked whole before anything is
    /// replaced. Start the agent afterwards: it syncs on under a new epoch.
    Restore {
        /// The backup file (`edge-agent backup`).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// The data directory to restore into.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// Restore over a data directory that holds files: they are moved aside to
        /// DIR.replaced-<time>, not deleted. Stop the agent first.
        #[arg(long)]
        force: bool,
    },
    /// Decode a device frame given in hex and print its fields (or why it is refused).
    DecodeFrame {
        /// `up` for device → gateway frames, `down` for gateway → device frames.
        direction: Way,
        /// The frame's bytes in hex; spaces are ignored.
        hex: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The gateway's data directory (created if missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: PathBuf,
    /// The school's id: ASCII letters, digits, '-' and '_', at most 64 bytes. It goes into
    /// every certificate the gateway issues.
    #[arg(long, value_name = "ID")]
    pub(crate) school_id: SchoolId,
    /// The school's name, for people (at most 200 characters).
    #[arg(long, value_name = "NAME", value_parser = school_name)]
    pub(crate) school_name: String,
    /// A DNS name devices use to reach the gateway; repeat for several. The first one goes
    /// into device bundles. With neither --hostname nor --ip: localhost and 127.0.0.1.
    #[arg(long = "hostname", value_name = "H", value_parser = hostname)]
    pub(crate) hostnames: Vec<String>,
    /// An IP address devices use to reach the gateway; repeat for several. Every one is in the
    /// server certificate.
    #[arg(long = "ip", value_name = "IP")]
    pub(crate) ips: Vec<IpAddr>,
    /// Where the device-facing MQTT over TLS listener binds.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_MQTT_LISTEN)]
    pub(crate) mqtt_listen: SocketAddr,
    /// Where the local dashboard binds.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_HTTP_LISTEN)]
    pub(crate) http_listen: SocketAddr,
}

#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    /// The gateway's data directory (created if missing), e.g. /var/lib/hallwatch/edge.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The school's id, as the cloud's operator created it.
    #[arg(long, value_name = "ID")]
    pub(crate) school_id: Option<SchoolId>,
    /// The school's name, for people (at most 200 characters).
    #[arg(long, value_name = "NAME", value_parser = school_name)]
    pub(crate) school_name: Option<String>,
    /// A DNS name devices use to reach the gateway; repeat for several.
    #[arg(long = "hostname", value_name = "H", value_parser = hostname)]
    pub(crate) hostnames: Vec<String>,
    /// An IP address devices use to reach the gateway; repeat for several.
    #[arg(long = "ip", value_name = "IP")]
    pub(crate) ips: Vec<IpAddr>,
    /// Where the device-facing MQTT over TLS listener binds.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_MQTT_LISTEN)]
    pub(crate) mqtt_listen: SocketAddr,
    /// Where the local dashboard binds.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_HTTP_LISTEN)]
    pub(crate) http_listen: SocketAddr,
    /// The cloud's public address, e.g. https://cloud.example.org (plain http only to a
    /// loopback address).
    #[arg(long, alias = "cloud", value_name = "URL")]
    pub(crate) cloud_url: Option<CloudUrl>,
    /// The cloud's sync listener, e.g. https://sync.example.org:8443.
    #[arg(long, value_name = "URL")]
    pub(crate) sync_url: Option<SyncUrl>,
    /// The school's one-time enrollment token. Prefer --enroll-token-file or the
    /// environment: other users of the machine can see command lines.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HALLWATCH_ENROLL_TOKEN",
        hide_env_values = true,
        conflicts_with = "enroll_token_file"
    )]
    pub(crate) token: Option<EnrollToken>,
    /// A file holding the enrollment token (one line).
    #[arg(long, value_name = "FILE")]
    pub(crate) enroll_token_file: Option<PathBuf>,
    /// A CSV file of the first devices, header `id,kind,room`; one bundle each under
    /// --bundles.
    #[arg(long, value_name = "CSV")]
    pub(crate) devices: Option<PathBuf>,
    /// Where device bundles are written, one directory per device.
    #[arg(long, value_name = "DIR", default_value = "bundles")]
    pub(crate) bundles: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct EnrollArgs {
    /// The gateway's data directory, as written by `edge-agent init`.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: PathBuf,
    /// The cloud's public address, e.g. https://cloud.example.org. Plain http is allowed only
    /// to a loopback address (127.0.0.0/8, [::1]): the token is a secret.
    #[arg(long, value_name = "URL")]
    pub(crate) cloud: CloudUrl,
    /// The cloud's sync listener (mutual TLS), e.g. https://sync.example.org:8443: the host
    /// must be one of the cloud's --sync-name values.
    #[arg(long, value_name = "URL")]
    pub(crate) sync_url: SyncUrl,
    /// The school's one-time enrollment token (`cloud-sync admin create-school` or
    /// `create-token` prints it). May come from the environment instead of the command line.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "HALLWATCH_ENROLL_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: EnrollToken,
    /// Enroll a gateway that is enrolled already: a new key, certificate, cloud CA and
    /// [cloud] section replace gateway.key, gateway.pem, cloud-ca.pem and the old section.
    #[arg(long)]
    pub(crate) force: bool,
}

impl From<EnrollArgs> for edge_agent::enroll::EnrollOptions {
    fn from(args: EnrollArgs) -> Self {
        edge_agent::enroll::EnrollOptions {
            data_dir: args.data_dir,
            cloud: args.cloud,
            sync_url: args.sync_url,
            token: args.token,
            force: args.force,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    /// The gateway's data directory, as written by `edge-agent init`.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: PathBuf,
    /// Simulated panic buttons (at most 5000).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub(crate) buttons: u32,
    /// Simulated people-counting cameras (at most 5000).
    #[arg(long, value_name = "M", default_value_t = 0)]
    pub(crate) cameras: u32,
    /// Button presses per second over all buttons, at random (0 to 1000).
    #[arg(
        long,
        value_name = "R",
        default_value_t = 0.1,
        allow_negative_numbers = true
    )]
    pub(crate) press_rate: f64,
    /// Stop after this many seconds (counted once devices start connecting); default: run
    /// until Ctrl-C or SIGTERM.
    #[arg(long, value_name = "SECS")]
    pub(crate) duration: Option<u64>,
    /// Connect to this host instead of the one devices are provisioned with. It must be a name
    /// or address in the gateway's server certificate.
    #[arg(long, value_name = "H")]
    pub(crate) host: Option<String>,
    /// Connect to this port instead of the configured MQTT port.
    #[arg(long, value_name = "P")]
    pub(crate) port: Option<u16>,
    /// Seconds between a device's heartbeats (the first comes on connect, the rest on a
    /// random phase so devices do not report in step).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub(crate) heartbeat_interval: u64,
    /// Sends of a press (the first and its retransmissions, one second apart) before it is
    /// given up when no PressAck comes.
    #[arg(long, value_name = "N", default_value_t = 30)]
    pub(crate) press_retry_limit: u32,
}

impl From<SimulateArgs> for edge_agent::simulate::SimulateOptions {
    fn from(args: SimulateArgs) -> Self {
        edge_agent::simulate::SimulateOptions {
            data_dir: args.data_dir,
            buttons: args.buttons,
            cameras: args.cameras,
            press_rate: args.press_rate,
            duration: args.duration.map(std::time::Duration::from_secs),
            host: args.host,
            port: args.port,
            heartbeat_interval: std::time::Duration::from_secs(args.heartbeat_interval),
            press_retry_limit: args.press_retry_limit,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCommand {
    /// Register a device and write its provisioning bundle (ca.pem, device.pem, device.key,
    /// bundle.json, nvs.csv for ESP-IDF's nvs_partition_gen.py); with --csv, every device
    /// of a file, one bundle each in BUNDLE_DIR/<id>/.
    Add {
        /// The gateway's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The device's id: ASCII letters, digits, '-' and '_', at most 32 bytes.
        #[arg(long, value_name = "DEVICE_ID", required_unless_present = "csv")]
        id: Option<DeviceId>,
        /// What the device is.
        #[arg(long, value_enum, required_unless_present = "csv")]
        kind: Option<Kind>,
        /// The room it is installed in: 1 to 32 ASCII letters, digits, '-', '_', '.', spaces.
        #[arg(long, value_name = "ROOM", value_parser = room, required_unless_present = "csv")]
        room: Option<Label>,
        /// Which alert each press pattern raises on this button, e.g.
        /// `single=medical,long_hold=lockdown` (actions: panic, medical, fire, lockdown,
        /// intruder, ignore); patterns left out follow `[alerts] press_map` in agent.toml.
        #[arg(long, value_name = "MAP", value_parser = press_map)]
        press_map: Option<String>,
        /// Many devices from a CSV file with the header `id,kind,room` (at most 5000 rows,
        /// 1 MiB). Every row is checked before anything is written.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["id", "kind", "room", "press_map"])]
        csv: Option<PathBuf>,
        /// Where to write the bundle (created if missing; must not hold a bundle already);
        /// with --csv, the directory that receives one bundle directory per device.
        #[arg(long, value_name = "BUNDLE_DIR")]
        out: PathBuf,
    },
    /// List every device: id, kind, room, certificate serial and expiry, state, last seen.
    List {
        /// The gateway's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Revoke a device: its certificates go on the gateway's CRL (crl.pem in the data dir).
    Revoke {
        /// The gateway's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The device to revoke.
        #[arg(long, value_name = "DEVICE_ID")]
        id: DeviceId,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum IntegrationCommand {
    /// Add an integration and write its bundle (ca.pem, integration.pem, integration.key and a
    /// README.txt with a ready mosquitto_sub command).
    Add {
        /// The gateway's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The integration's name: ASCII letters, digits, '-' and '_', at most 32 bytes.
        #[arg(long, value_name = "NAME")]
        id: IntegrationId,
        /// Where to write the bundle (created if missing; must not hold a bundle already).
        #[arg(long, value_name = "BUNDLE_DIR")]
        out: PathBuf,
    },
    /// List every integration: id, certificate serial and expiry, state.
    List {
        /// The gateway's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Revoke an integration: its certificates go on the gateway's CRL (crl.pem), and the
    /// gate disconnects it within a second.
    Revoke {
        /// The gateway's data directory.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The integration to revoke.
        #[arg(long, value_name = "NAME")]
        id: IntegrationId,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Way {
    Up,
    Down,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Kind {
    /// A panic button.
    Button,
    /// A people-counting camera.
    Camera,
}

impl From<Kind> for DeviceKind {
    fn from(kind: Kind) -> DeviceKind {
        match kind {
            Kind::Button => DeviceKind::Button,
            Kind::Camera => DeviceKind::Camera,
        }
    }
}

fn school_name(s: &str) -> Result<String, String> {
    validate_school_name(s).map_err(|reason| format!("the school name {reason}"))
}

fn press_map(s: &str) -> Result<String, String> {
    edge_agent::config::parse_press_map(s, edge_agent::config::DEFAULT_PRESS_MAP)
        .map(|_| s.trim().to_owned())
        .map_err(|e| e.to_string())
}

fn room(s: &str) -> Result<Label, String> {
    Label::new(s).map_err(|e| e.to_string())
}

fn hostname(s: &str) -> Result<String, String> {
    rustls::pki_types::DnsName::try_from(s)
        .map(|_| s.to_ascii_lowercase())
        .map_err(|_| format!("{s:?} is not a DNS name"))
}

/// Space-separated host names and IP addresses, as `setup` asks for them.
pub(crate) fn hosts(text: &str) -> Result<(Vec<String>, Vec<IpAddr>), String> {
    let (mut names, mut ips) = (Vec::new(), Vec::new());
    for item in text.split_whitespace() {
        match item.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => names.push(hostname(item)?),
        }
    }
    if names.is_empty() && ips.is_empty() {
        return Err("give at least one host name or IP address".into());
    }
    Ok((names, ips))
}

/// The token in `path` (one line, at most 1 KiB read).
pub(crate) fn token_file(path: &std::path::Path) -> anyhow::Result<EnrollToken> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(1024).read_to_string(&mut text))
        .map_err(|e| anyhow::anyhow!("--enroll-token-file {}: {e}", path.display()))?;
    text.lines()
        .next()
        .unwrap_or_default()
        .parse()
        .map_err(|e| anyhow::anyhow!("--enroll-token-file {}: {e}", path.display()))
}
