//! `edge-agent setup` as an installer runs it, against a real `cloud-sync serve` on a real
//! PostgreSQL: one run from nothing to an enrolled gateway with device bundles; the token
//! checked before anything is written; a run that failed at enrollment finished by a rerun;
//! a missing value refused naming its flag when nobody can be asked.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::cloud::{TestCloud, free_port};
use common::{SCHOOL, s};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

struct Site {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    bundles: PathBuf,
    devices: PathBuf,
    token_file: PathBuf,
}

impl Site {
    fn new(token: &str) -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let devices = tmp.path().join("devices.csv");
        std::fs::write(
            &devices,
            "id,kind,room\nbtn-b204,button,B-204\ncam-gym,camera,Gym North\n",
        )
        .unwrap();
        let token_file = tmp.path().join("token");
        std::fs::write(&token_file, format!("{token}\n")).unwrap();
        Site {
            data: tmp.path().join("gw"),
            bundles: tmp.path().join("bundles"),
            devices,
            token_file,
            _tmp: tmp,
        }
    }

    /// `edge-agent setup` with every flag, stdin not a terminal.
    fn setup(&self, cloud_url: &str, sync_url: &str, school: &str) -> Output {
        self.setup_with(&[
            "--cloud-url",
            cloud_url,
            "--sync-url",
            sync_url,
            "--school-id",
            school,
        ])
    }

    fn setup_with(&self, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_edge-agent"))
            .arg("setup")
            .args(["--data-dir", s(&self.data)])
            .args(["--school-name", "Lincoln High"])
            .args(["--hostname", "localhost", "--ip", "127.0.0.1"])
            .args(["--enroll-token-file", s(&self.token_file)])
            .args(["--devices", s(&self.devices)])
            .args(["--bundles", s(&self.bundles)])
            .args(extra)
            .env_remove("RUST_LOG")
            .env_remove("HALLWATCH_ENROLL_TOKEN")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

fn success(out: &Output) -> String {
    assert!(
        out.status.success(),
        "setup failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn failure(out: &Output) -> (i32, String) {
    assert!(!out.status.success(), "setup succeeded: {out:?}");
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stderr.clone()).unwrap(),
    )
}

#[sqlx::test(migrations = false)]
async fn one_setup_run_initialises_enrolls_and_writes_every_device_bundle(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let site = Site::new(&cloud.school(SCHOOL));
    let out = success(&site.setup(&cloud.url(), &cloud.sync_url(), SCHOOL));
    println!("{out}");
    let gateways = cloud.gateways().await;
    assert_eq!(gateways.len(), 1);
    for line in [
        "Devices file: 2 devices, all rows valid.\n".to_owned(),
        "Cloud reachable; the token is valid for this school until ".to_owned(),
        format!(
            "Initialised {} for school {SCHOOL} (Lincoln High); devices connect to localhost, 127.0.0.1.\n",
            site.data.display()
        ),
        format!(
            "Enrolled as gateway {} with {}/",
            gateways[0].1,
            cloud.url()
        ),
        format!(
            "  button btn-b204 in room B-204: {} (certificate serial ",
            site.bundles.join("btn-b204").display()
        ),
        "\nNext steps:\n".to_owned(),
        format!("edge-agent doctor --data-dir {}", site.data.display()),
    ] {
        assert!(out.contains(&line), "{line:?} missing from:\n{out}");
    }
    for id in ["btn-b204", "cam-gym"] {
        assert!(site.bundles.join(id).join("nvs.csv").is_file(), "{id}");
    }
    for file in [
        "agent.toml",
        "edge.db",
        "ca.key",
        "server.pem",
        "gateway.pem",
        "cloud-ca.pem",
    ] {
        assert!(site.data.join(file).is_file(), "{file}");
    }
    let config = edge_agent::config::Config::load(&site.data).unwrap();
    assert_eq!(config.cloud.unwrap().gateway_id.as_str(), gateways[0].1);

    // A second run changes nothing and says so: no token is needed any more.
    std::fs::write(&site.token_file, "hwe_spent\n").unwrap();
    let again = success(&site.setup(&cloud.url(), &cloud.sync_url(), SCHOOL));
    assert!(
        again.contains("is initialised already; keeping it."),
        "{again}"
    );
    assert!(
        again.contains("The gateway is enrolled already; keeping it."),
        "{again}"
    );
    assert!(again.contains("(registered before; kept)"), "{again}");
    assert_eq!(cloud.gateways().await.len(), 1);
    cloud.stop().await;
}

#[sqlx::test(migrations = false)]
async fn the_token_is_checked_before_anything_is_written(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let token = cloud.school(SCHOOL);
    cloud.school("oak-primary");
    let nothing_written = |site: &Site| {
        assert!(!site.data.exists(), "the data directory was created");
        assert!(!site.bundles.exists(), "bundles were written");
    };

    // Another school's gateway: refused by the check, the token not used.
    let site = Site::new(&token);
    let (code, err) = failure(&site.setup(&cloud.url(), &cloud.sync_url(), "oak-primary"));
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("before writing anything"), "{err}");
    assert!(
        err.contains("for school lincoln-high, not oak-primary"),
        "{err}"
    );
    nothing_written(&site);

    // A token the cloud does not know.
    let site = Site::new("hwe_0123456789abcdef0123456789abcdef01234567");
    let (code, err) = failure(&site.setup(&cloud.url(), &cloud.sync_url(), SCHOOL));
    assert_eq!(code, 77, "{err}");
    assert!(err.contains("not valid"), "{err}");
    nothing_written(&site);

    // Nothing listening where the cloud should be.
    let site = Site::new(&token);
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let (code, err) = failure(&site.setup(&nowhere, &cloud.sync_url(), SCHOOL));
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("cannot reach the cloud"), "{err}");
    nothing_written(&site);

    // A bad devices file is refused before the cloud is even asked.
    std::fs::write(&site.devices, "id,kind,room\nbtn-1,siren,B-1\n").unwrap();
    let (code, err) = failure(&site.setup(&cloud.url(), &cloud.sync_url(), SCHOOL));
    assert_eq!(code, 65, "{err}");
    assert!(err.contains("line 2: unknown device kind"), "{err}");
    nothing_written(&site);

    // The token survived every check: it still enrolls.
    let site = Site::new(&token);
    success(&site.setup(&cloud.url(), &cloud.sync_url(), SCHOOL));
    assert_eq!(cloud.gateways().await.len(), 1);
    cloud.stop().await;
}

/// A loopback proxy to `upstream` that relays the first connection and closes every later
/// one at once: the token check gets through, the enrollment after it does not.
async fn first_connection_only(upstream: u16) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut inbound, _)) = listener.accept().await {
            if !first {
                drop(inbound);
                continue;
            }
            first = false;
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    port
}

#[sqlx::test(migrations = false)]
async fn a_setup_that_failed_at_enrollment_is_finished_by_running_it_again(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let site = Site::new(&cloud.school(SCHOOL));
    let flaky = format!(
        "http://127.0.0.1:{}",
        first_connection_only(cloud.public).await
    );
    // The proxy runs on this test's runtime: wait for the process off it.
    let (site, out) = tokio::task::spawn_blocking({
        let sync_url = cloud.sync_url();
        move || {
            let out = site.setup(&flaky, &sync_url, SCHOOL);
            (site, out)
        }
    })
    .await
    .unwrap();
    let (code, err) = failure(&out);
    assert_eq!(code, 69, "{err}");
    assert!(
        err.contains("the gateway is initialised but not enrolled")
            && err.contains("Run the same `edge-agent setup` again"),
        "{err}"
    );
    // What it left: an initialised gateway, not enrolled, no devices yet, the token unused.
    assert!(site.data.join("agent.toml").is_file());
    assert!(!site.data.join("gateway.pem").exists());
    assert!(
        edge_agent::config::Config::load(&site.data)
            .unwrap()
            .cloud
            .is_none()
    );
    assert!(!site.bundles.exists());
    assert!(cloud.gateways().await.is_empty());

    let out = success(&site.setup(&cloud.url(), &cloud.sync_url(), SCHOOL));
    assert!(out.contains("is initialised already; keeping it."), "{out}");
    assert!(out.contains("Enrolled as gateway "), "{out}");
    assert!(site.bundles.join("cam-gym/nvs.csv").is_file());
    assert_eq!(cloud.gateways().await.len(), 1);
    cloud.stop().await;
}

#[test]
fn a_missing_value_is_refused_naming_its_flag_when_stdin_is_no_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("gw");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_edge-agent"))
            .arg("setup")
            .args(args)
            .env_remove("HALLWATCH_ENROLL_TOKEN")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let base = [
        "--data-dir",
        s(&data),
        "--school-id",
        SCHOOL,
        "--school-name",
        "Lincoln High",
        "--hostname",
        "gw.lincoln.local",
        "--cloud-url",
        "https://cloud.example.org",
        "--sync-url",
        "https://sync.example.org:8443",
    ];
    for (drop_flag, named) in [
        ("--school-id", "--school-id is missing"),
        ("--school-name", "--school-name is missing"),
        ("--hostname", "--hostname or --ip is missing"),
        ("--cloud-url", "--cloud-url is missing"),
        ("--sync-url", "--sync-url is missing"),
    ] {
        let mut args = Vec::new();
        let mut skip = false;
        for a in base {
            if skip {
                skip = false;
                continue;
            }
            if a == drop_flag {
                skip = true;
                continue;
            }
            args.push(a);
        }
        let (code, err) = failure(&run(&args));
        assert_eq!(code, 64, "{drop_flag}: {err}");
        assert!(err.contains(named), "{drop_flag}: {err}");
        assert!(!data.exists());
    }
    let (code, err) = failure(&run(&base));
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("--enroll-token-file (or HALLWATCH_ENROLL_TOKEN) is missing"),
        "{err}"
    );
    // A plain-http cloud off loopback is refused by the flag's parser.
    let mut args = base.to_vec();
    args[9] = "http://cloud.example.org";
    let (code, err) = failure(&run(&args));
    assert_eq!(code, 2, "{err}");
    assert!(!data.exists());
}
