//! The `cloud-sync` binary: arguments → the library. Nothing else lives here.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shared::sync::Limits;

#[derive(Debug, Parser)]
#[command(name = "cloud-sync", version, about = "Hallwatch cloud service")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Describe a saved sync request body (postcard + zstd), or say why it is refused.
    InspectBatch {
        /// The file holding the body, exactly as the gateway sent it.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    // One crypto provider for every TLS user in the process; an error only means a provider
    // is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    let result = match cli.command {
        Command::InspectBatch { file } => inspect(&file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cloud-sync: error: {err:#}");
            ExitCode::FAILURE
        }
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
