//! The `edge-agent` binary: arguments → the library. Nothing else lives here.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use firmware_protocol::Direction;

#[derive(Debug, Parser)]
#[command(name = "edge-agent", version, about = "Hallwatch gateway agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode a device frame given in hex and print its fields (or why it is refused).
    DecodeFrame {
        /// `up` for device → gateway frames, `down` for gateway → device frames.
        direction: Way,
        /// The frame's bytes in hex; spaces are ignored.
        hex: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Way {
    Up,
    Down,
}

fn main() -> ExitCode {
    // One crypto provider for every TLS user in the process (rustls, reqwest, rumqttc); with
    // none installed explicitly the first TLS client panics when two providers are linked.
    // An error here only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    let result = match cli.command {
        Command::DecodeFrame { direction, hex } => {
            let direction = match direction {
                Way::Up => Direction::Up,
                Way::Down => Direction::Down,
            };
            edge_agent::inspect::describe_frame(direction, &hex.concat())
                .map(|text| println!("{text}"))
                .map_err(anyhow::Error::from)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("edge-agent: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
