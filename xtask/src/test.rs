//! `cargo xtask test`: the project's one test command, as README and `.ci/run` call it.
//!
//! Order: cheap checks first (fmt, clippy, the no_std build), then the system tools the tests
//! drive (installed with apt when missing), then a PostgreSQL server for the tests, then every
//! test of the workspace (nextest when installed, plus doctests). The cluster this command
//! started is stopped on every path out, including failures.

use std::path::Path;

use anyhow::{Result, bail};

use crate::postgres::Postgres;
use crate::system::{self, cargo};

#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// Arguments passed on to the test runner, e.g. `-- -p shared` or a test-name filter.
    #[arg(last = true)]
    runner_args: Vec<String>,
}

pub(crate) fn run(args: &TestArgs) -> Result<()> {
    system::run(system::cargo().args(["fmt", "--all", "--", "--check"]))?;
    system::run(system::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    check_no_std()?;
    ensure_tools(TEST_TOOLS)?;

    let postgres = Postgres::ensure()?;
    let result = run_tests(&postgres.url, &args.runner_args);
    postgres.stop();
    result
}

/// Programs the tests run as independent clients, each with the Debian package that has it.
/// The tests fail (never skip) when one is missing, so this is where they come from.
const TEST_TOOLS: &[(&str, &str)] = &[
    ("mosquitto_pub", "mosquitto-clients"),
    ("mosquitto_sub", "mosquitto-clients"),
];

/// Installs the packages of every `(program, package)` whose program is not on `PATH`.
fn ensure_tools(tools: &[(&str, &str)]) -> Result<()> {
    let mut missing: Vec<&str> = tools
        .iter()
        .filter(|(program, _)| !on_path(program))
        .map(|&(_, package)| package)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {missing:?} for the tests");
    system::apt_install(&missing)?;
    if let Some((program, package)) = tools.iter().find(|(program, _)| !on_path(program)) {
        bail!("{package} is installed but `{program}` is still not on PATH");
    }
    Ok(())
}

/// Whether `program` is an executable file in one of `PATH`'s directories. Running it is no
/// probe: `mosquitto_pub --help` exits with status 1.
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(Path::new(&dir).join(program))
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

fn run_tests(url: &str, extra: &[String]) -> Result<()> {
    let nextest = system::succeeds(cargo().args(["nextest", "--version"]));
    let mut tests = cargo();
    if nextest {
        tests.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        eprintln!("xtask: cargo-nextest not found, using cargo test");
        tests.args(["test", "--workspace", "--no-fail-fast"]);
    }
    system::run(tests.args(extra).env("DATABASE_URL", url))?;
    if nextest && extra.is_empty() {
        // nextest does not run doctests.
        system::run(
            cargo()
                .args(["test", "--workspace", "--doc"])
                .env("DATABASE_URL", url),
        )?;
    }
    Ok(())
}

/// firmware-protocol must build for firmware: `#![no_std]`, no default features, and no
/// dependency feature that drags std back in.
fn check_no_std() -> Result<()> {
    let crate_args = ["-p", "firmware-protocol", "--no-default-features"];
    system::run(cargo().arg("build").args(crate_args))?;
    let tree = system::output(cargo().arg("tree").args(crate_args).args([
        "-e",
        "features,normal",
        "--prefix",
        "none",
    ]))?;
    let std_features: Vec<&str> = tree
        .lines()
        .filter(|line| line.contains("feature \"std\"") || line.contains("feature \"use-std\""))
        .collect();
    if !std_features.is_empty() {
        bail!("firmware-protocol without default features pulls in std: {std_features:?}");
    }
    eprintln!("xtask: firmware-protocol builds as no_std (no std feature in its dependency tree)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::on_path;

    #[test]
    fn finds_programs_on_path_and_only_those() {
        assert!(on_path("sh"));
        assert!(!on_path("hallwatch-no-such-tool"));
    }
}
