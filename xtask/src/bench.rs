//! `cargo xtask bench <scenario>`: builds a scenario's benchmark in release mode, runs it
//! several times, and prints the median (and spread) of every figure it reports.
//!
//! A benchmark program reports each figure on its own line of standard output:
//! `figure <name> <value> <unit>`. Everything else it prints passes through. Keeping the
//! protocol this small lets any later scenario (a load generator, a process under test) join.

use std::collections::BTreeMap;
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::postgres::Postgres;
use crate::system;

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// The scenario to run; `cargo xtask bench list` shows them.
    scenario: String,
    /// How many times to run it; figures are reported as medians over the runs.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=50))]
    runs: u32,
}

struct Scenario {
    name: &'static str,
    about: &'static str,
    /// `cargo` invocations that build and run the benchmark programs in release mode.
    programs: &'static [&'static [&'static str]],
    /// Programs the scenario drives, with the Debian package that has each.
    tools: &'static [(&'static str, &'static str)],
    /// Whether the programs need a PostgreSQL server (passed as `DATABASE_URL`).
    postgres: bool,
}

/// Builds the release `cloud-sync` that benchmarks which run the cloud start from beside them.
const CLOUD_RELEASE: &[&str] = &[
    "build",
    "--release",
    "-p",
    "cloud-sync",
    "--bin",
    "cloud-sync",
];

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "codec",
        about: "firmware frames and sync batches: encode/decode rates and bytes per record",
        programs: &[
            &[
                "bench",
                "-p",
                "firmware-protocol",
                "--features",
                "std",
                "--bench",
                "frames",
            ],
            &["bench", "-p", "shared", "--bench", "sync_codec"],
        ],
        tools: &[],
        postgres: false,
    },
    Scenario {
        name: "gate",
        about: "device gate + broker: mTLS connections/s, QoS 1 uplinks/s (and vs Mosquitto), RSS",
        programs: &[&["bench", "-p", "edge-agent", "--bench", "gate"]],
        tools: &[("mosquitto", "mosquitto")],
        postgres: false,
    },
    Scenario {
        name: "edge",
        about: "edge-agent run: press → PressAck / SSE latency, quiet and at 30k uplinks/s; RSS",
        programs: &[&["bench", "-p", "edge-agent", "--bench", "edge"]],
        tools: &[],
        postgres: false,
    },
    Scenario {
        name: "sync",
        about: "edge → cloud sync: a 24 h outage's backlog drained, bytes vs JSON, press → Postgres",
        programs: &[
            CLOUD_RELEASE,
            &["bench", "-p", "edge-agent", "--bench", "sync"],
        ],
        tools: &[],
        postgres: true,
    },
    Scenario {
        name: "realtime",
        about: "cloud realtime: press → dashboard stream, the REST API at 1,000 req/s, 10k streams",
        programs: &[
            CLOUD_RELEASE,
            &["bench", "-p", "edge-agent", "--bench", "press_sse"],
            &["bench", "-p", "cloud-sync", "--bench", "api_load"],
            &["bench", "-p", "cloud-sync", "--bench", "fanout"],
        ],
        tools: &[],
        postgres: true,
    },
    Scenario {
        name: "ingest",
        about: "cloud sync ingest: 100 gateways × 1,000-record batches over mTLS into Postgres",
        programs: &[&["bench", "-p", "cloud-sync", "--bench", "ingest"]],
        tools: &[],
        postgres: true,
    },
];

pub(crate) fn run(args: &BenchArgs) -> Result<()> {
    if args.scenario == "list" {
        for scenario in SCENARIOS {
            println!("{:<10} {}", scenario.name, scenario.about);
        }
        return Ok(());
    }
    let Some(scenario) = SCENARIOS.iter().find(|s| s.name == args.scenario) else {
        let names: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
        bail!(
            "unknown scenario `{}`; known: {}",
            args.scenario,
            names.join(", ")
        );
    };

    system::ensure_tools(scenario.tools)?;
    let postgres = if scenario.postgres {
        Some(Postgres::ensure()?)
    } else {
        None
    };
    let mut figures: BTreeMap<String, (String, Vec<f64>)> = BTreeMap::new();
    for run in 1..=args.runs {
        eprintln!("xtask: {} run {run}/{}", scenario.name, args.runs);
        let mut stdout = String::new();
        for program in scenario.programs {
            let mut cmd = system::cargo();
            cmd.args(*program).stderr(Stdio::inherit());
            if let Some(postgres) = &postgres {
                cmd.env("DATABASE_URL", &postgres.url);
            }
            stdout += &system::output(&mut cmd)?;
        }
        for line in stdout.lines() {
            match parse_figure(line)? {
                Some((name, value, unit)) => {
                    figures
                        .entry(name)
                        .or_insert_with(|| (unit, Vec::new()))
                        .1
                        .push(value);
                }
                None => println!("{line}"),
            }
        }
    }

    println!(
        "scenario {} — {} runs, release build",
        scenario.name, args.runs
    );
    println!(
        "{:<44} {:>14} {:>14} {:>14}  unit",
        "figure", "median", "min", "max"
    );
    for (name, (unit, mut values)) in figures {
        values.sort_by(f64::total_cmp);
        let median = median(&values);
        let (min, max) = (values[0], values[values.len() - 1]);
        println!("{name:<44} {median:>14.2} {min:>14.2} {max:>14.2}  {unit}");
    }
    Ok(())
}

/// `figure <name> <value> <unit>` → Some; any other line → None.
fn parse_figure(line: &str) -> Result<Option<(String, f64, String)>> {
    let Some(rest) = line.strip_prefix("figure ") else {
        return Ok(None);
    };
    let mut parts = rest.split_whitespace();
    let (Some(name), Some(value), unit) = (parts.next(), parts.next(), parts.next()) else {
        bail!("malformed figure line: {line:?}");
    };
    let value: f64 = value
        .parse()
        .with_context(|| format!("bad value in {line:?}"))?;
    Ok(Some((
        name.to_owned(),
        value,
        unit.unwrap_or("").to_owned(),
    )))
}

/// Median of sorted, non-empty values.
fn median(sorted: &[f64]) -> f64 {
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_figure_lines_and_passes_others_through() {
        let (name, value, unit) = parse_figure("figure decode_rate 123.5 MB/s")
            .unwrap()
            .unwrap();
        assert_eq!(
            (name.as_str(), value, unit.as_str()),
            ("decode_rate", 123.5, "MB/s")
        );
        assert!(parse_figure("some other output").unwrap().is_none());
        assert!(parse_figure("figure only_name").is_err());
        assert!(parse_figure("figure x notanumber ms").is_err());
    }

    #[test]
    fn median_of_odd_and_even_runs() {
        assert_eq!(median(&[1.0, 2.0, 9.0]), 2.0);
        assert_eq!(median(&[1.0, 2.0, 4.0, 9.0]), 3.0);
        assert_eq!(median(&[7.0]), 7.0);
    }
}
