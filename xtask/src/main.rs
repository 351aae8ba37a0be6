//! `cargo xtask`: the project's auxiliary commands, in Rust rather than shell (rust-analyzer's
//! `xtask` pattern). `.cargo/config.toml` aliases `cargo xtask` to `cargo run -p xtask --`.
//!
//! # Layout
//! - `test`     — the one test command: Postgres for the tests, fmt, clippy, every test.
//! - `imports`  — the import-circle check of edge-agent's modules (`cargo xtask imports`).
//! - `owners`   — each outside crate named only by its owner module (`cargo xtask owners`).
//! - `postgres` — finds, installs if needed, starts and stops a throwaway PostgreSQL cluster.
//! - `pytools`  — the Python programs the tests run, pinned, in a venv below the target dir.
//! - `system`   — running commands, Debian packages, the workspace's paths.
//! - `bench`    — `cargo xtask bench <scenario>`: release builds, several runs, medians.
//! - `demo`     — `cargo xtask demo`: the whole system on this machine.
//! - `package`  — `cargo xtask package`: the Debian packages, into `target/packages/`.

mod bench;
mod demo;
mod imports;
mod owners;
mod package;
mod postgres;
mod pytools;
mod system;
mod test;

use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

/// Set by the Ctrl-C handler.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Hallwatch's auxiliary commands")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole test suite: starts a throwaway PostgreSQL unless DATABASE_URL is set,
    /// then checks formatting, runs clippy with -D warnings and every test of the workspace.
    Test(test::TestArgs),
    /// Start a throwaway PostgreSQL, print its DATABASE_URL, and stop it on Ctrl-C (for running
    /// single tests by hand with `DATABASE_URL=... cargo nextest run ...`).
    Postgres,
    /// Check that edge-agent's top-level modules import each other in no circle (also part
    /// of `test`).
    Imports {
        /// Another crate's `src` directory to check instead.
        crate_src: Option<std::path::PathBuf>,
    },
    /// Check only the owner invariants: each outside crate (rusqlite, sqlx, rumqttd, axum,
    /// reqwest, rcgen) named only by its owner module (see xtask/src/owners.rs).
    Owners,
    /// Run a benchmark scenario with release builds and print its figures (medians of runs).
    Bench(bench::BenchArgs),
    /// Run the whole system on this machine: a throwaway PostgreSQL, the cloud, two enrolled
    /// school gateways with simulated buttons and cameras, and demo accounts; Ctrl-C stops it.
    Demo(demo::DemoArgs),
    /// Build the Debian packages hallwatch-edge and hallwatch-cloud into target/packages
    /// (release binaries, stripped; dpkg-deb; see packaging/README.md).
    Package(package::PackageArgs),
}

fn main() {
    let cli = Cli::parse();
    // Ctrl-C reaches the child processes (cargo, Postgres) through the terminal; xtask itself
    // keeps going so that it can stop the cluster it started.
    if let Err(err) = ctrlc::set_handler(|| {
        eprintln!("xtask: interrupted, cleaning up");
        INTERRUPTED.store(true, Ordering::SeqCst);
    }) {
        eprintln!("xtask: cannot install the Ctrl-C handler: {err}");
    }
    let result = match cli.command {
        Command::Test(args) => test::run(&args),
        Command::Postgres => serve_postgres(),
        Command::Imports { crate_src } => imports::check_module_cycles(
            &crate_src.unwrap_or_else(|| system::workspace_root().join("edge-agent/src")),
        ),
        Command::Owners => owners::check(&system::workspace_root(), owners::RULES),
        Command::Bench(args) => bench::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Package(args) => package::run(&args),
    };
    if let Err(err) = result {
        eprintln!("xtask: error: {err:#}");
        std::process::exit(1);
    }
}

fn serve_postgres() -> anyhow::Result<()> {
    let postgres = postgres::Postgres::ensure()?;
    println!("export DATABASE_URL={}", postgres.url);
    eprintln!("xtask: PostgreSQL is running; Ctrl-C stops and removes it");
    while !INTERRUPTED.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    postgres.stop();
    Ok(())
}
