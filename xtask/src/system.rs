//! Small helpers around processes, paths and Debian packages shared by the xtask commands.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The workspace root: xtask lives one level below it. `cargo xtask` (`cargo run`) tells the
/// running binary where its manifest is; where it was compiled is only the fallback, because a
/// target directory shared between clones can hold an xtask built in another clone (cargo
/// does not rebuild it when the sources are older than the binary).
pub(crate) fn workspace_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.clone(), Path::to_path_buf)
}

/// Cargo's target directory, honouring `CARGO_TARGET_DIR` as cargo does.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    }
}

/// A `cargo` command (the one running xtask) in the workspace root.
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

/// Runs `cmd`, echoing it first; fails with the command line when it does not succeed.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", display(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(cmd));
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its standard output, or an error with its standard error.
pub(crate) fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start `{}`", display(cmd)))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            display(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when the command exists and exits successfully (used to probe for tools).
pub(crate) fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

pub(crate) fn is_root() -> bool {
    output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

/// Installs Debian packages with apt-get. Only possible as root; otherwise explains what to
/// install. `apt-get update` runs once per xtask process.
pub(crate) fn apt_install(packages: &[&str]) -> Result<()> {
    use std::sync::Once;
    static UPDATED: Once = Once::new();

    if !is_root() {
        bail!(
            "missing Debian packages {packages:?} and not running as root: \
             install them with `sudo apt-get install -y {}`",
            packages.join(" ")
        );
    }
    let mut update_result = Ok(());
    UPDATED.call_once(|| {
        update_result = run(Command::new("apt-get").args(["update", "-q"]));
    });
    update_result?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}

fn display(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Installs the packages of every `(program, package)` whose program is not on `PATH`.
pub(crate) fn ensure_tools(tools: &[(&str, &str)]) -> Result<()> {
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
    apt_install(&missing)?;
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

#[cfg(test)]
mod tests {
    use super::on_path;

    #[test]
    fn finds_programs_on_path_and_only_those() {
        assert!(on_path("sh"));
        assert!(!on_path("hallwatch-no-such-tool"));
    }
}
