//! `cloud-sync serve`'s settings: the `--config` TOML file, `HALLWATCH_CLOUD_*` variables and
//! flags, in that order of strength; every field documented in docs/configuration.md and
//! shipped, commented at its default, in packaging/cloud/cloud.toml; each refusal (a bad
//! value in the file, in a variable, in a flag; an unknown field or variable) exits 64 with
//! its source named, before any port is bound; and a real `serve` runs from a file.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cloud_sync::settings::{self, FIELDS, RawSettings, var_name};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const DB: &str = "postgres://hallwatch_app@127.0.0.1:1/hallwatch";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

/// The field names serde's derive gives `RawSettings`, read by a deserializer that only
/// asks for them.
fn struct_fields() -> &'static [&'static str] {
    use serde::Deserialize;
    use serde::de::{self, Visitor};

    #[derive(Debug)]
    struct Found(&'static [&'static str]);
    impl std::fmt::Display for Found {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }
    impl std::error::Error for Found {}
    impl de::Error for Found {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Found(&[])
        }
    }
    struct Probe;
    impl<'de> de::Deserializer<'de> for Probe {
        type Error = Found;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Found> {
            Err(Found(&[]))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Found> {
            Err(Found(fields))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    RawSettings::deserialize(Probe).unwrap_err().0
}

#[test]
fn every_field_is_documented_shipped_and_has_its_flag_and_variable() {
    let fields = struct_fields();
    assert!(fields.len() >= 10, "{fields:?}");
    let listed: Vec<&str> = FIELDS.iter().map(|(f, _, _)| *f).collect();
    assert_eq!(listed, fields, "settings::FIELDS and RawSettings disagree");

    let docs = std::fs::read_to_string(repo("docs/configuration.md")).unwrap();
    let cloud = &docs[docs.find("## The cloud").unwrap()..];
    let help = Command::new(env!("CARGO_BIN_EXE_cloud-sync"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for (field, flag, _) in FIELDS {
        let row = cloud
            .lines()
            .find(|line| line.starts_with(&format!("| `{field}` |")))
            .unwrap_or_else(|| panic!("{field} is not in docs/configuration.md"));
        let flag = flag.unwrap();
        assert!(row.contains(&format!("`{flag}`")), "{row}");
        assert!(row.contains(&format!("`{}`", var_name(field))), "{row}");
        assert!(help.contains(flag), "serve --help has no {flag}");
    }

    // The shipped file names every field, commented out at its default: uncommented, it
    // parses (unknown fields are refused) and is the defaults.
    let shipped = std::fs::read_to_string(repo("packaging/cloud/cloud.toml")).unwrap();
    let uncommented: String = shipped
        .lines()
        .filter_map(|line| line.strip_prefix('#'))
        .filter(|line| line.contains(" = "))
        .map(|line| format!("{line}\n"))
        .collect();
    let raw: RawSettings = toml::from_str(&uncommented).unwrap();
    let table: toml::Table = toml::from_str(&uncommented).unwrap();
    for field in fields {
        assert!(table.contains_key(*field), "cloud.toml lacks {field}");
    }
    let defaults = settings::defaults();
    assert_eq!(raw.listen, defaults.listen);
    assert_eq!(raw.sync_listen, defaults.sync_listen);
    assert_eq!(raw.sync_names, defaults.sync_names);
    assert_eq!(raw.pool_size, defaults.pool_size);
    assert_eq!(raw.rate_per_sec, defaults.rate_per_sec);
    assert_eq!(raw.rate_burst, defaults.rate_burst);
    assert_eq!(
        raw.gateway_offline_after_s,
        defaults.gateway_offline_after_s
    );
    assert_eq!(raw.trusted_proxies, defaults.trusted_proxies);
}

#[test]
fn a_flag_beats_a_variable_which_beats_the_file_which_beats_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cloud.toml");
    std::fs::write(
        &file,
        format!(
            "database_url = \"{DB}\"\ndata_dir = \"/srv/file\"\npool_size = 5\n\
             sync_names = [\"file.example.org\"]\nlisten = \"127.0.0.1:7001\"\n"
        ),
    )
    .unwrap();
    let resolve = |flags: RawSettings, env: &[(&str, &str)]| {
        settings::resolve(Some(&file), flags, vars(env)).unwrap()
    };
    let config = resolve(RawSettings::default(), &[]);
    assert_eq!(config.pool_size, 5);
    assert_eq!(config.data_dir, Path::new("/srv/file"));
    assert_eq!(config.sync_names, ["file.example.org"]);
    assert_eq!(config.rate_burst, 40, "the default");

    let env = [
        ("HALLWATCH_CLOUD_POOL_SIZE", "7"),
        ("HALLWATCH_CLOUD_SYNC_NAMES", "a.example.org, b.example.org"),
        ("HALLWATCH_CLOUD_TRUSTED_PROXIES", "10.0.0.5,fd00::5"),
        ("HALLWATCH_CLOUD_RATE_PER_SEC", "2.5"),
        ("HALLWATCH_SYNC_HEARTBEAT_S", "0"),
    ];
    let config = resolve(RawSettings::default(), &env);
    assert_eq!(config.pool_size, 7);
    assert_eq!(config.sync_names, ["a.example.org", "b.example.org"]);
    assert_eq!(config.trusted_proxies.len(), 2);
    assert!((config.rate_per_sec - 2.5).abs() < f64::EPSILON);
    assert_eq!(config.listen, "127.0.0.1:7001".parse().unwrap());

    let flags = RawSettings {
        pool_size: Some(9),
        data_dir: Some("/srv/flag".into()),
        sync_names: Some(vec!["flag.example.org".into()]),
        ..RawSettings::default()
    };
    let config = resolve(flags, &env);
    assert_eq!(config.pool_size, 9);
    assert_eq!(config.data_dir, Path::new("/srv/flag"));
    assert_eq!(config.sync_names, ["flag.example.org"]);

    // Without a file: the defaults.
    let config = settings::resolve(
        None,
        RawSettings::default(),
        vars(&[("DATABASE_URL", DB), ("HALLWATCH_CLOUD_DATA_DIR", "/d")]),
    )
    .unwrap();
    assert_eq!(config.listen, settings::DEFAULT_LISTEN.parse().unwrap());
    assert_eq!(config.pool_size, 16);
}

/// Runs `serve` with `args` and only the variables given (besides PATH), expecting it to
/// refuse; returns its stderr.
fn refused(args: &[&str], env: &[(&str, &str)], file: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloud-sync"));
    cmd.arg("serve")
        .args(args)
        .env_clear()
        .envs(env.iter().copied());
    let path = dir.path().join("cloud.toml");
    if let Some(text) = file {
        std::fs::write(&path, text).unwrap();
        cmd.arg("--config").arg(&path);
    }
    let out: Output = cmd.output().unwrap();
    let stderr = String::from_utf8(out.stderr)
        .unwrap()
        .replace(path.to_str().unwrap(), "FILE");
    assert_eq!(
        out.status.code(),
        Some(64),
        "{args:?} {env:?} {file:?}: {stderr}"
    );
    stderr
}

/// Extra flags, the variables, the file's text (if any), and what the refusal must say.
type Case<'a> = (
    &'a [&'a str],
    &'a [(&'a str, &'a str)],
    Option<&'a str>,
    &'a str,
);

#[test]
fn each_refusal_exits_64_naming_its_source_before_binding() {
    // The public port is held here: a refusal is about the configuration, never the port.
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = held.local_addr().unwrap().to_string();
    let base = [
        "--data-dir",
        "/nonexistent/hallwatch",
        "--listen",
        listen.as_str(),
    ];
    let db = ("DATABASE_URL", DB);
    let cases: &[Case] = &[
        // In the file.
        (
            &[],
            &[db],
            Some("pool_size = 0\n"),
            "pool_size in FILE: 0 is outside 1..=500",
        ),
        (
            &[],
            &[db],
            Some("pool_sise = 4\n"),
            "unknown field `pool_sise`",
        ),
        (
            &[],
            &[db],
            Some("sync_listen = \"nowhere\"\n"),
            "sync_listen in FILE: \"nowhere\" is not an address:port",
        ),
        (
            &[],
            &[db],
            Some("trusted_proxies = [\"proxy\"]\n"),
            "trusted_proxies in FILE: \"proxy\" is not an IP address",
        ),
        (
            &[],
            &[db],
            Some("rate_per_sec = 0.0\n"),
            "rate_per_sec in FILE",
        ),
        (&[], &[db], Some("pool_size = \"many\"\n"), "FILE"),
        (
            &[],
            &[db],
            Some(&format!("# {}\n", "x".repeat(70_000))),
            "larger than 65536 bytes",
        ),
        // In a variable.
        (
            &[],
            &[db, ("HALLWATCH_CLOUD_POOL_SIZE", "0")],
            None,
            "HALLWATCH_CLOUD_POOL_SIZE: 0 is outside 1..=500",
        ),
        (
            &[],
            &[db, ("HALLWATCH_CLOUD_POOL_SIZE", "many")],
            None,
            "HALLWATCH_CLOUD_POOL_SIZE: \"many\" is not a whole number",
        ),
        (
            &[],
            &[db, ("HALLWATCH_CLOUD_GATEWAY_OFFLINE_AFTER_S", "100000")],
            None,
            "HALLWATCH_CLOUD_GATEWAY_OFFLINE_AFTER_S: 100000 is outside 1..=86400",
        ),
        (
            &[],
            &[db, ("HALLWATCH_CLOUD_POOLSIZE", "4")],
            None,
            "HALLWATCH_CLOUD_POOLSIZE: is not a setting",
        ),
        (
            &[],
            &[db, ("HALLWATCH_CLOUD_ARGS", "--sync-name x")],
            None,
            "HALLWATCH_CLOUD_ARGS: is no longer read",
        ),
        (
            &[],
            &[("DATABASE_URL", "not a url")],
            None,
            "DATABASE_URL: not a PostgreSQL URL",
        ),
        (&[], &[], None, "database_url: not set"),
        // In a flag, and a flag that beats a good file value with a bad one.
        (
            &["--pool-size", "501"],
            &[db],
            None,
            "--pool-size: 501 is outside 1..=500",
        ),
        (
            &["--sync-listen", listen.as_str()],
            &[db],
            None,
            "--sync-listen: uses port",
        ),
        (
            &["--rate-burst", "0"],
            &[db],
            Some("rate_burst = 10\n"),
            "--rate-burst: 0 is outside",
        ),
    ];
    for (flags, env, file, says) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend_from_slice(flags);
        let stderr = refused(&args, env, *file);
        assert!(
            stderr.contains(says),
            "{flags:?} {env:?} {file:?}: {stderr}"
        );
        assert!(!stderr.contains("in use"), "{stderr}");
    }
    // A --config that is not there, and a missing data directory.
    let stderr = refused(&["--config", "/nonexistent/cloud.toml"], &[db], None);
    assert!(
        stderr.contains("/nonexistent/cloud.toml: cannot read"),
        "{stderr}"
    );
    let stderr = refused(&["--listen", listen.as_str()], &[db], None);
    assert!(stderr.contains("data_dir: not set"), "{stderr}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The package's way: settings in the file, the database URL in a variable; serve listens
/// where the file says.
#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn serve_runs_from_a_configuration_file(_: PgPoolOptions, opts: PgConnectOptions) {
    let dir = tempfile::tempdir().unwrap();
    let (public, sync) = (free_port(), free_port());
    let file = dir.path().join("cloud.toml");
    std::fs::write(
        &file,
        format!(
            "data_dir = \"{}\"\nlisten = \"127.0.0.1:{public}\"\n\
             sync_listen = \"127.0.0.1:{sync}\"\nsync_names = [\"localhost\"]\npool_size = 2\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let url = format!(
        "postgres://{}@{}:{}/{}",
        cloud_sync::db::APP_ROLE,
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloud-sync"))
        .args(["serve", "--config"])
        .arg(&file)
        .env("DATABASE_URL", url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    for port in [sync, public] {
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "serve exited ({status}): {:?}",
                    child.wait_with_output().unwrap()
                );
            }
            assert!(Instant::now() < deadline, "serve did not listen on {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(
        dir.path().join("data").is_dir(),
        "the file's data_dir is used"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}
