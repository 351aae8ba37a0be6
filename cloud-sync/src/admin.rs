//! `cloud-sync admin ...`: platform administration from the command line (regions, schools,
//! enrollment tokens, people, signing keys, retention), each straight against the database.

use std::io::{BufRead, IsTerminal, Read};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use cloud_sync::auth::{self, Email, Grant, Password, Role};
use cloud_sync::db;
use shared::ids::{RegionId, SchoolId};

use crate::pool;

#[derive(Debug, Subcommand)]
pub(crate) enum Admin {
    /// Create a region.
    CreateRegion {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The region's id (letters, digits, '-', '_').
        #[arg(long)]
        id: RegionId,
        /// Its display name.
        #[arg(long)]
        name: String,
    },
    /// Create a school and print a one-time enrollment token for its gateway.
    CreateSchool {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The region the school belongs to.
        #[arg(long)]
        region: RegionId,
        /// The school's id (letters, digits, '-', '_').
        #[arg(long)]
        id: SchoolId,
        /// Its display name.
        #[arg(long)]
        name: String,
        /// How long the token stays valid, in hours.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=720))]
        token_hours: u64,
    },
    /// Print a new one-time enrollment token for an existing school (a replaced gateway).
    CreateToken {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The school.
        #[arg(long)]
        school: SchoolId,
        /// How long the token stays valid, in hours.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u64).range(1..=720))]
        token_hours: u64,
    },
    /// Create a person's account with one role; the password is read from standard input
    /// (one line; not echoed when typed at a terminal).
    CreateUser {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The login name.
        #[arg(long)]
        email: String,
        /// Read the password from standard input (the only way to give it).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// superadmin, region_admin, school_admin or viewer.
        #[arg(long)]
        role: Role,
        /// The region, for region_admin.
        #[arg(long)]
        region: Option<RegionId>,
        /// The school, for school_admin and viewer.
        #[arg(long)]
        school: Option<SchoolId>,
    },
    /// Remove a person's second factor (TOTP), pending or active, so they can sign in with
    /// their password alone and enrol a new phone; audited as totp_reset.
    ResetTotp {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// The person's login name.
        #[arg(long)]
        email: String,
    },
    /// Add an access-token signing key to the data directory; it signs from the service's
    /// next key reload (within 30 s). Remove the old key file 16 minutes later.
    AddSigningKey {
        /// The service's --data-dir.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Snapshot retention: create the coming months' partitions, drop months older than
    /// --keep-months; delete refresh tokens expired over a day ago (run daily from cron or a
    /// systemd timer).
    Prune {
        #[arg(long, env = "DATABASE_URL")]
        database_url: String,
        /// Whole months of snapshots to keep.
        #[arg(long, default_value_t = 13)]
        keep_months: i32,
    },
}

/// Runs every command but `create-user`, whose password is read before the runtime starts.
pub(crate) async fn run(admin: Admin) -> anyhow::Result<()> {
    let hours = |h: u64| Duration::from_secs(h * 3600);
    match admin {
        Admin::CreateRegion {
            database_url,
            id,
            name,
        } => {
            db::admin::create_region(&pool(&database_url).await?, &id, &name).await?;
            eprintln!("cloud-sync: region {id} created");
        }
        Admin::CreateSchool {
            database_url,
            region,
            id,
            name,
            token_hours,
        } => {
            let pool = pool(&database_url).await?;
            let token =
                db::admin::create_school(&pool, &region, &id, &name, hours(token_hours)).await?;
            eprintln!(
                "cloud-sync: school {id} created; enrollment token (single use, valid \
                 {token_hours} h, shown only now):"
            );
            println!("{}", token.as_str());
        }
        Admin::CreateToken {
            database_url,
            school,
            token_hours,
        } => {
            let pool = pool(&database_url).await?;
            let token =
                db::admin::create_enrollment_token(&pool, &school, hours(token_hours)).await?;
            eprintln!(
                "cloud-sync: enrollment token for {school} (single use, valid {token_hours} h):"
            );
            println!("{}", token.as_str());
        }
        Admin::CreateUser { .. } => anyhow::bail!("create-user is handled before the runtime"),
        Admin::ResetTotp {
            database_url,
            email,
        } => {
            let email: Email = email.parse().context("--email")?;
            let pool = pool(&database_url).await?;
            match db::totp::reset(&pool, &email).await? {
                None => anyhow::bail!("--email: no account has the address {email}"),
                Some((user, true)) => eprintln!(
                    "cloud-sync: two-factor sign-in removed for {email} ({user}); they sign in \
                     with their password and may enrol a new phone"
                ),
                Some((user, false)) => eprintln!(
                    "cloud-sync: {email} ({user}) had no two-factor sign-in; nothing changed"
                ),
            }
        }
        Admin::AddSigningKey { data_dir } => {
            let kid = auth::add_signing_key(&data_dir)?;
            eprintln!(
                "cloud-sync: signing key {kid} added in {}; it signs from the service's next \
                 reload (within 30 s); remove the previous key file 16 minutes from now, when \
                 the last token it signed has expired",
                data_dir.join(auth::KEY_DIR).display()
            );
        }
        Admin::Prune {
            database_url,
            keep_months,
        } => {
            let pool = pool(&database_url).await?;
            let created = db::admin::ensure_snapshot_partitions(&pool, 3).await?;
            let dropped = db::admin::prune_snapshots(&pool, keep_months).await?;
            eprintln!("cloud-sync: {created} snapshot partitions created, {dropped} dropped");
            let tokens = db::accounts::prune_refresh_tokens(&pool).await?;
            eprintln!("cloud-sync: {tokens} refresh tokens expired over a day ago deleted");
            let events = db::realtime::prune(&pool, 24).await?;
            eprintln!("cloud-sync: {events} realtime events older than 24 h deleted");
        }
    }
    Ok(())
}

/// The account `create-user` asks for, with its password read from standard input; refused
/// before anything is touched when a flag or the password is not acceptable.
pub(crate) fn user_request(
    email: &str,
    role: Role,
    region: Option<RegionId>,
    school: Option<SchoolId>,
) -> anyhow::Result<(Email, Grant, Password)> {
    let email: Email = email.parse().context("--email")?;
    let grant = Grant::new(role, region, school)?;
    let password = read_password()?;
    Ok((email, grant, password))
}

pub(crate) async fn create_user(
    url: String,
    email: Email,
    grant: Grant,
    password: Password,
) -> anyhow::Result<()> {
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password)).await??;
    let pool = pool(&url).await?;
    let user = db::accounts::create_user(&pool, &email, &hash, &grant).await?;
    eprintln!(
        "cloud-sync: user {email} ({}) created with id:",
        grant.role()
    );
    println!("{user}");
    Ok(())
}

/// One line of standard input, without its line ending. At a terminal it asks on stderr and
/// turns echo off (with `stty`, which acts on the terminal it is given as stdin) while the
/// password is typed.
fn read_password() -> anyhow::Result<Password> {
    let stdin = std::io::stdin();
    let at_terminal = stdin.is_terminal();
    let _echo = at_terminal.then(EchoOff::new);
    if at_terminal {
        eprint!("Password for the new user (not shown): ");
    }
    let mut line = String::new();
    // One byte over the longest password accepted, so an endless stream is not read whole.
    let limit = u64::try_from(Password::MAX_BYTES + 3).unwrap_or(u64::MAX);
    stdin
        .lock()
        .take(limit)
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    if at_terminal {
        eprintln!();
    }
    if !at_terminal {
        // More than one line is refused rather than silently cut: a piped file is not a
        // password.
        let mut rest = String::new();
        std::io::stdin()
            .lock()
            .take(limit)
            .read_to_string(&mut rest)
            .context("cannot read standard input")?;
        if !rest.trim().is_empty() {
            anyhow::bail!("the password must be one line; standard input has more");
        }
    }
    let line = line
        .strip_suffix('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .unwrap_or(&line)
        .to_owned();
    Ok(Password::try_from(line)?)
}

/// Terminal echo off for as long as it lives.
struct EchoOff;

impl EchoOff {
    fn new() -> Self {
        let _ = std::process::Command::new("stty").arg("-echo").status();
        Self
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = std::process::Command::new("stty").arg("echo").status();
    }
}
