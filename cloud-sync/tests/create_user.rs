//! `cloud-sync admin create-user` as an operator runs it: the password on standard input,
//! every flag checked before anything is written, and an account that can log in.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::TestCloud;
use reqwest::StatusCode;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn owner_url(opts: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap()
    )
}

/// Runs `cloud-sync admin create-user --database-url URL <args>` with `stdin` piped in.
fn create_user(url: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cloud-sync"))
        .args(["admin", "create-user", "--database-url", url])
        .args(args)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A refusal may exit before reading: a closed pipe is not the test's failure.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    child.wait_with_output().unwrap()
}

const PASSWORD: &str = "correct horse battery staple\n";

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn create_user_makes_an_account_that_logs_in(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    cloud.school("lincoln").await;
    let url = owner_url(&opts);

    let out = create_user(
        &url,
        &[
            "--email",
            "Ann@Example.org",
            "--password-stdin",
            "--role",
            "school_admin",
            "--school",
            "lincoln",
        ],
        PASSWORD,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let user_id: uuid::Uuid = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let (email, hash): (String, String) =
        sqlx::query_as("SELECT email, password_hash FROM users WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&cloud.owner)
            .await
            .unwrap();
    assert_eq!(email, "ann@example.org");
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    let grant: (String, Option<String>, Option<String>) =
        sqlx::query_as("SELECT role, region_id, school_id FROM role_grants WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(&cloud.owner)
            .await
            .unwrap();
    assert_eq!(
        grant,
        ("school_admin".to_owned(), None, Some("lincoln".to_owned()))
    );
    let audited: (Option<String>, String) = sqlx::query_as(
        "SELECT school_id, detail->>'user_id' FROM audit_log WHERE action = 'create_user'",
    )
    .fetch_one(&cloud.owner)
    .await
    .unwrap();
    assert_eq!(audited, (Some("lincoln".to_owned()), user_id.to_string()));

    // A password with Windows line ending works the same, and so does each role.
    for (email, args) in [
        ("root@example.org", vec!["--role", "superadmin"]),
        (
            "north@example.org",
            vec!["--role", "region_admin", "--region", "north"],
        ),
        (
            "view@example.org",
            vec!["--role", "viewer", "--school", "lincoln"],
        ),
    ] {
        let mut all = vec!["--email", email, "--password-stdin"];
        all.extend(args);
        let out = create_user(&url, &all, "correct horse battery staple\r\n");
        assert!(
            out.status.success(),
            "{email}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let response = cloud
        .login("ann@example.org", "correct horse battery staple")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let response = cloud
        .login("view@example.org", "correct horse battery staple")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn create_user_refuses_bad_flags_and_passwords_before_writing(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    cloud.school("lincoln").await;
    let url = owner_url(&opts);
    let pw = "--password-stdin";

    // (arguments, standard input, exit status, words the message must hold)
    let refusals: &[(&[&str], &str, i32, &str)] = &[
        // Flags that do not fit the role: 64, nothing read or written.
        (
            &[
                "--email",
                "a@example.org",
                pw,
                "--role",
                "superadmin",
                "--region",
                "north",
            ],
            PASSWORD,
            64,
            "--region is only for region_admin",
        ),
        (
            &[
                "--email",
                "a@example.org",
                pw,
                "--role",
                "superadmin",
                "--school",
                "lincoln",
            ],
            PASSWORD,
            64,
            "--school is only for school_admin and viewer",
        ),
        (
            &["--email", "a@example.org", pw, "--role", "region_admin"],
            PASSWORD,
            64,
            "region_admin needs --region",
        ),
        (
            &[
                "--email",
                "a@example.org",
                pw,
                "--role",
                "region_admin",
                "--region",
                "north",
                "--school",
                "lincoln",
            ],
            PASSWORD,
            64,
            "--school is only",
        ),
        (
            &["--email", "a@example.org", pw, "--role", "school_admin"],
            PASSWORD,
            64,
            "school_admin needs --school",
        ),
        (
            &["--email", "a@example.org", pw, "--role", "viewer"],
            PASSWORD,
            64,
            "viewer needs --school",
        ),
        (
            &[
                "--email",
                "a@example.org",
                pw,
                "--role",
                "viewer",
                "--region",
                "north",
                "--school",
                "lincoln",
            ],
            PASSWORD,
            64,
            "--region is only",
        ),
        (
            &["--email", "not-an-address", pw, "--role", "superadmin"],
            PASSWORD,
            64,
            "is not an e-mail address",
        ),
        // Passwords: too short, several lines, none.
        (
            &["--email", "a@example.org", pw, "--role", "superadmin"],
            "short pw\n",
            64,
            "at least 12 characters",
        ),
        (
            &["--email", "a@example.org", pw, "--role", "superadmin"],
            "correct horse battery\nstaple\n",
            64,
            "one line",
        ),
        (
            &["--email", "a@example.org", pw, "--role", "superadmin"],
            "",
            64,
            "at least 12 characters",
        ),
        // Things only the database knows: 1.
        (
            &[
                "--email",
                "a@example.org",
                pw,
                "--role",
                "school_admin",
                "--school",
                "nowhere",
            ],
            PASSWORD,
            1,
            "no school nowhere",
        ),
        (
            &[
                "--email",
                "a@example.org",
                pw,
                "--role",
                "region_admin",
                "--region",
                "south",
            ],
            PASSWORD,
            1,
            "no region south",
        ),
        // clap's own refusals: 2.
        (
            &["--email", "a@example.org", "--role", "superadmin"],
            PASSWORD,
            2,
            "--password-stdin",
        ),
        (
            &["--email", "a@example.org", pw, "--role", "admin"],
            PASSWORD,
            2,
            "is not a role",
        ),
        (
            &[
                "--email",
                "a@example.org",
                pw,
                "--role",
                "viewer",
                "--school",
                "a/b",
            ],
            PASSWORD,
            2,
            "--school",
        ),
    ];
    for (args, stdin, status, words) in refusals {
        let out = create_user(&url, args, stdin);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*status), "{args:?}: {stderr}");
        assert!(stderr.contains(words), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(cloud.count("SELECT count(*) FROM users").await, 0);
    assert_eq!(cloud.count("SELECT count(*) FROM role_grants").await, 0);

    // The same address twice: the second is refused and names it.
    let ok = ["--email", "a@example.org", pw, "--role", "superadmin"];
    assert!(create_user(&url, &ok, PASSWORD).status.success());
    let again = create_user(
        &url,
        &[
            "--email",
            "A@example.org",
            pw,
            "--role",
            "viewer",
            "--school",
            "lincoln",
        ],
        PASSWORD,
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("a user a@example.org exists already"));
    assert_eq!(cloud.count("SELECT count(*) FROM role_grants").await, 1);
    cloud.stop().await;
}
