//! The Python programs the tests run, from PyPI at pinned versions, in a venv of their own
//! below the target directory (`target/pytools`), so that nothing is installed into the
//! machine's Python. `cargo xtask test` makes it before the tests and names it to them in
//! [`VAR`]; a venv already holding exactly [`REQUIREMENTS`] is reused as it is.

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::system;

/// The environment variable that tells the tests where the venv is.
pub(crate) const VAR: &str = "HALLWATCH_PYTOOLS";

/// What the venv holds. `openapi-spec-validator` checks the cloud's served OpenAPI document
/// (cloud-sync/tests/openapi.rs).
const REQUIREMENTS: &[&str] = &["openapi-spec-validator==0.9.0"];

/// Written last, so a venv whose installation was interrupted is made again.
const STAMP: &str = "hallwatch-requirements.txt";

/// The venv with [`REQUIREMENTS`] installed, made or updated first when needed.
pub(crate) fn ensure() -> Result<PathBuf> {
    let venv = system::target_dir().join("pytools");
    let wanted = format!("{}\n", REQUIREMENTS.join("\n"));
    if fs::read_to_string(venv.join(STAMP)).is_ok_and(|have| have == wanted) {
        return Ok(venv);
    }
    // Debian's own Python (not whichever `python3` comes first on PATH); its venv module is
    // the package python3-venv.
    let python = "/usr/bin/python3";
    if !system::succeeds(Command::new(python).args(["-m", "venv", "--help"])) {
        system::apt_install(&["python3", "python3-venv"])?;
    }
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("cannot empty {}", venv.display()))?;
    }
    eprintln!("xtask: installing {REQUIREMENTS:?} into {}", venv.display());
    system::run(Command::new(python).args(["-m", "venv"]).arg(&venv))?;
    let requirements = venv.join("requirements.txt");
    fs::write(&requirements, &wanted)?;
    system::run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )?;
    fs::write(venv.join(STAMP), &wanted)?;
    Ok(venv)
}
