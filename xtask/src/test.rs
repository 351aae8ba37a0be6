//! `cargo xtask test`: the project's one test command, as README and `.ci/run` call it.
//!
//! Order: cheap checks first (fmt, clippy, the owner invariants, edge-agent's import-circle
//! check, the no_std build), then the system tools the tests drive (installed with apt when
//! missing; the Python ones into a venv, see `pytools`), then a PostgreSQL server for the
//! tests, then every test of the workspace (nextest when installed, plus doctests), then
//! `cargo xtask demo --check`. The cluster this command started is stopped on every path out,
//! including failures.

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
    crate::imports::check_module_cycles(&system::workspace_root().join("edge-agent/src"))?;
    crate::owners::check(&system::workspace_root(), crate::owners::RULES)?;
    check_no_std()?;
    system::ensure_tools(TEST_TOOLS)?;
    system::ensure_tools(crate::package::TOOLS)?;
    let pytools = crate::pytools::ensure()?;
    // The package tests (xtask/src/package/tests.rs) stage the release binaries: built here,
    // once, before the tests, which are told where they are.
    let release = crate::package::build_release()?;

    let postgres = Postgres::ensure()?;
    let result = run_tests(&postgres.url, &release, &pytools, &args.runner_args);
    postgres.stop();
    result?;
    if args.runner_args.is_empty() {
        // README's first command must work: the demo, started and checked end to end (a
        // press at each school reaches the cloud), then stopped. Its own cluster, after the
        // tests' one is gone.
        crate::demo::run(&crate::demo::DemoArgs {
            port_base: 18_000,
            check: true,
        })?;
    }
    Ok(())
}

/// Programs the tests run as independent clients, each with the Debian package that has it.
/// The tests fail (never skip) when one is missing, so this is where they come from.
/// Chromium drives the dashboard pages headless (edge-agent/tests/common/browser.rs);
/// `systemd-analyze` verifies the unit files in `systemd/` (edge-agent/tests/systemd.rs);
/// `shellcheck` checks the packages' maintainer scripts and `lintian` the packages
/// (xtask/src/package/tests.rs); `promtool` checks both services' `/metrics`
/// (edge-agent/tests/observability.rs).
const TEST_TOOLS: &[(&str, &str)] = &[
    ("mosquitto_pub", "mosquitto-clients"),
    ("mosquitto_sub", "mosquitto-clients"),
    ("chromium", "chromium"),
    ("systemd-analyze", "systemd"),
    ("shellcheck", "shellcheck"),
    ("lintian", "lintian"),
    ("promtool", "prometheus"),
];

fn run_tests(
    url: &str,
    release: &std::path::Path,
    pytools: &std::path::Path,
    extra: &[String],
) -> Result<()> {
    let nextest = system::succeeds(cargo().args(["nextest", "--version"]));
    let mut tests = cargo();
    if nextest {
        tests.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        eprintln!("xtask: cargo-nextest not found, using cargo test");
        tests.args(["test", "--workspace", "--no-fail-fast"]);
    }
    system::run(
        tests
            .args(extra)
            .env("DATABASE_URL", url)
            .env(crate::package::RELEASE_DIR_VAR, release)
            .env(crate::pytools::VAR, pytools),
    )?;
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
