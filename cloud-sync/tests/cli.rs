//! The `cloud-sync` binary as an operator runs it: admin commands against a migrated database,
//! and `serve` stopping cleanly on SIGTERM (what systemd sends).

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn url(opts: &PgConnectOptions, user: &str) -> String {
    format!(
        "postgres://{user}@{}:{}/{}",
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap()
    )
}

fn cloud_sync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloud-sync"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn admin_commands_create_a_region_and_a_school_with_a_token(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let owner = url(&opts, opts.get_username());
    let out = cloud_sync(&[
        "admin",
        "create-region",
        "--database-url",
        &owner,
        "--id",
        "north",
        "--name",
        "North",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = cloud_sync(&[
        "admin",
        "create-school",
        "--database-url",
        &owner,
        "--region",
        "north",
        "--id",
        "lincoln-high",
        "--name",
        "Lincoln High",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    // The one-time enrollment token, on its own line, for the installer to copy.
    let token = stdout.trim();
    assert!(token.starts_with("hwe_") && token.len() > 30, "{stdout}");

    // Refusals name what is wrong: an unknown region, a duplicate school, a bad id.
    let out = cloud_sync(&[
        "admin",
        "create-school",
        "--database-url",
        &owner,
        "--region",
        "south",
        "--id",
        "x",
        "--name",
        "X",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("south"),
        "{out:?}"
    );
    let out = cloud_sync(&[
        "admin",
        "create-school",
        "--database-url",
        &owner,
        "--region",
        "north",
        "--id",
        "lincoln-high",
        "--name",
        "Again",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lincoln-high"),
        "{out:?}"
    );
    let out = cloud_sync(&[
        "admin",
        "create-region",
        "--database-url",
        &owner,
        "--id",
        "a/b",
        "--name",
        "X",
    ]);
    assert_eq!(out.status.code(), Some(2), "clap refuses a bad id: {out:?}");
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn serve_stops_cleanly_on_sigterm(_: PgPoolOptions, opts: PgConnectOptions) {
    let data = tempfile::tempdir().unwrap();
    let (public, sync) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloud-sync"))
        .args([
            "serve",
            "--database-url",
            &url(&opts, cloud_sync::db::APP_ROLE),
            "--data-dir",
        ])
        .arg(data.path())
        .args(["--listen", &format!("127.0.0.1:{public}")])
        .args(["--sync-listen", &format!("127.0.0.1:{sync}")])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env_remove("DATABASE_URL")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", sync))
        .await
        .is_err()
    {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "serve exited early ({status}): {:?}",
                child.wait_with_output().unwrap()
            );
        }
        assert!(Instant::now() < deadline, "serve did not start listening");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let stopped = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "serve exited with {status} on SIGTERM");
            break;
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(15),
            "serve ignored SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
