//! `cargo xtask package`: the Debian packages `hallwatch-edge` and `hallwatch-cloud`, built
//! with Debian's own tools, into `target/packages/`.
//!
//! For each package a tree is staged the way it installs (`usr/bin/`, `lib/systemd/system/`,
//! `etc/hallwatch/`, `usr/share/doc/<package>/` with the copyright file and the changelog,
//! `usr/share/man/man1/` with the man page) with `DEBIAN/` from `packaging/<dir>/`
//! (control, conffiles, maintainer scripts) and md5sums, then `dpkg-deb --root-owner-group
//! --build` turns it into `<package>_<version>_<arch>.deb`. The binaries are release builds,
//! stripped; the version is the workspace's, the architecture `dpkg --print-architecture`'s,
//! and the shared libraries they need go into `Depends` through `dpkg-shlibdeps`.
//!
//! Nothing of `/var/lib/hallwatch` is in a package: the maintainer scripts create the data
//! directories, so dpkg never owns, and so never removes, a school's data.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::system::{self, cargo};

#[derive(Debug, clap::Args)]
pub(crate) struct PackageArgs {
    /// The packages' Debian version instead of the workspace's (e.g. `0.1.0+school1`):
    /// starts with a digit, then letters, digits and `.+~-`, at most 64 characters.
    #[arg(long, value_parser = parse_version)]
    version: Option<String>,
}

/// One Debian package: where its parts come from in the repository.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Spec {
    /// The package's name.
    pub(crate) name: &'static str,
    /// Its folder in `packaging/`.
    pub(crate) dir: &'static str,
    /// The cargo package and binary it ships in `/usr/bin`.
    pub(crate) binary: &'static str,
    /// Its unit in `systemd/`.
    pub(crate) unit: &'static str,
    /// Files of `packaging/<dir>/` installed in `/etc/hallwatch/`, with their modes. Each is
    /// a conffile (listed in `packaging/<dir>/conffiles`), so upgrades keep local edits.
    pub(crate) etc: &'static [(&'static str, u32)],
}

pub(crate) const EDGE: Spec = Spec {
    name: "hallwatch-edge",
    dir: "edge",
    binary: "edge-agent",
    unit: "hallwatch-edge.service",
    etc: &[("edge.env", 0o644)],
};

pub(crate) const CLOUD: Spec = Spec {
    name: "hallwatch-cloud",
    dir: "cloud",
    binary: "cloud-sync",
    unit: "hallwatch-cloud.service",
    // cloud.toml: the service reads it (postinst gives it to the group hallwatch, 0640).
    // cloud.env holds the database password: root only (systemd reads it as root).
    etc: &[("cloud.toml", 0o640), ("cloud.env", 0o600)],
};

pub(crate) const PACKAGES: [Spec; 2] = [EDGE, CLOUD];

/// Programs the packaging needs, with the Debian package that has each.
pub(crate) const TOOLS: &[(&str, &str)] = &[
    ("dpkg-deb", "dpkg"),
    ("dpkg-shlibdeps", "dpkg-dev"),
    ("strip", "binutils"),
    ("md5sum", "coreutils"),
    ("gzip", "gzip"),
];

/// Maintainer scripts, each optional in `packaging/<dir>/`.
pub(crate) const SCRIPTS: [&str; 4] = ["preinst", "postinst", "prerm", "postrm"];

pub(crate) fn run(args: &PackageArgs) -> Result<()> {
    system::ensure_tools(TOOLS)?;
    let binaries = build_release()?;
    let version = match &args.version {
        Some(version) => version.clone(),
        None => workspace_version(),
    };
    let out = packages_dir();
    for spec in PACKAGES {
        let deb = assemble(&spec, &binaries, &version, &out)?;
        eprintln!("xtask: built {}", deb.display());
    }
    // The scratch directories assemble emptied; only the packages stay.
    for scratch in [".stage", ".shlibdeps"] {
        fs::remove_dir_all(out.join(scratch)).ok();
    }
    Ok(())
}

/// `target/packages/` (below `CARGO_TARGET_DIR` when set).
pub(crate) fn packages_dir() -> PathBuf {
    system::target_dir().join("packages")
}

/// The workspace's version, which xtask shares.
pub(crate) fn workspace_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

/// Set by `cargo xtask test` for the tests it runs: the directory of the release binaries it
/// built before them, so that the package tests do not build again.
pub(crate) const RELEASE_DIR_VAR: &str = "XTASK_RELEASE_DIR";

/// Builds both binaries in release mode (a no-op when they are fresh) and returns the
/// directory that holds them.
pub(crate) fn build_release() -> Result<PathBuf> {
    build_release_with(cargo())
}

pub(crate) fn build_release_with(mut build: Command) -> Result<PathBuf> {
    build.args(["build", "--release", "--locked"]);
    for spec in PACKAGES {
        build.args(["-p", spec.binary]);
    }
    system::run(&mut build)?;
    Ok(system::target_dir().join("release"))
}

/// Stages `spec`'s tree with the binary from `binaries` and builds its `.deb` in `out`;
/// returns the package's path.
pub(crate) fn assemble(spec: &Spec, binaries: &Path, version: &str, out: &Path) -> Result<PathBuf> {
    parse_version(version).map_err(anyhow::Error::msg)?;
    let arch = system::output(Command::new("dpkg").arg("--print-architecture"))?
        .trim()
        .to_owned();
    let source = system::workspace_root().join("packaging").join(spec.dir);
    let stage = out.join(".stage").join(spec.name);
    if stage.exists() {
        fs::remove_dir_all(&stage).with_context(|| format!("cannot empty {}", stage.display()))?;
    }

    let binary = stage.join("usr/bin").join(spec.binary);
    put(&binaries.join(spec.binary), &binary, 0o755)?;
    system::run(Command::new("strip").arg("--strip-unneeded").arg(&binary))?;
    put(
        &system::workspace_root().join("systemd").join(spec.unit),
        &stage.join("lib/systemd/system").join(spec.unit),
        0o644,
    )?;
    for (file, mode) in spec.etc {
        put(
            &source.join(file),
            &stage.join("etc/hallwatch").join(file),
            *mode,
        )?;
    }
    let doc = stage.join("usr/share/doc").join(spec.name);
    put(&source.join("copyright"), &doc.join("copyright"), 0o644)?;
    for (from, to) in [
        ("packaging/README.md", "README.md"),
        ("docs/configuration.md", "configuration.md"),
    ] {
        put(&system::workspace_root().join(from), &doc.join(to), 0o644)?;
    }
    // Compressed as Debian policy (12.3, 12.1) and lintian want them: gzip -9, no name or
    // time stamp inside, so that the same sources make the same package.
    put_gzipped(
        &system::workspace_root().join("packaging/changelog"),
        &doc.join("changelog.gz"),
    )?;
    // What lintian is told to let pass, each line with its reason (packaging/README.md).
    let overrides = source.join("lintian-overrides");
    if overrides.exists() {
        put(
            &overrides,
            &stage.join("usr/share/lintian/overrides").join(spec.name),
            0o644,
        )?;
    }
    put_gzipped(
        &source.join(format!("{}.1", spec.binary)),
        &stage
            .join("usr/share/man/man1")
            .join(format!("{}.1.gz", spec.binary)),
    )?;

    let depends = shared_library_depends(spec, &binary, out)?;
    let installed_kib = installed_size_kib(&stage)?;
    let control_dir = stage.join("DEBIAN");
    let control = fs::read_to_string(source.join("control"))
        .with_context(|| format!("cannot read packaging/{}/control", spec.dir))?
        .replace("@VERSION@", version)
        .replace("@ARCH@", &arch)
        .replace("@INSTALLED_SIZE@", &installed_kib.to_string())
        .replace("@DEPENDS@", &depends);
    let placeholder =
        control.split('@').skip(1).step_by(2).find(|word| {
            !word.is_empty() && word.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        });
    if placeholder.is_some() {
        bail!(
            "packaging/{}/control has a placeholder left: {control}",
            spec.dir
        );
    }
    write(&control_dir.join("control"), &control, 0o644)?;
    put(
        &source.join("conffiles"),
        &control_dir.join("conffiles"),
        0o644,
    )?;
    for script in SCRIPTS {
        let from = source.join(script);
        if from.exists() {
            put(&from, &control_dir.join(script), 0o755)?;
        }
    }
    write(&control_dir.join("md5sums"), &md5sums(&stage)?, 0o644)?;
    normalise_dirs(&stage)?;

    let deb = out.join(format!("{}_{version}_{arch}.deb", spec.name));
    system::run(
        Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Zxz", "--build"])
            .arg(&stage)
            .arg(&deb),
    )?;
    fs::remove_dir_all(&stage).ok();
    Ok(deb)
}

/// A Debian version as this project makes them: a digit first, then ASCII letters, digits
/// and `.+~-`, at most 64 characters (no epoch).
fn parse_version(text: &str) -> Result<String, String> {
    let ok = text.len() <= 64
        && text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".+~-".contains(c));
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "--version {text:?}: a Debian version starts with a digit and has only letters, \
             digits and .+~- (at most 64 characters), e.g. 0.1.0+school1"
        ))
    }
}

/// `Depends` for the binary's shared libraries, from `dpkg-shlibdeps` (which wants a
/// `debian/control` in its working directory, so it runs in a scratch one).
fn shared_library_depends(spec: &Spec, binary: &Path, out: &Path) -> Result<String> {
    let scratch = out.join(".shlibdeps").join(spec.name);
    fs::create_dir_all(scratch.join("debian"))
        .with_context(|| format!("cannot create {}", scratch.display()))?;
    fs::write(
        scratch.join("debian/control"),
        format!(
            "Source: {0}\n\nPackage: {0}\nArchitecture: any\n",
            spec.name
        ),
    )?;
    let substvars = system::output(
        Command::new("dpkg-shlibdeps")
            .arg("-O")
            .arg(format!("-e{}", binary.display()))
            .current_dir(&scratch),
    )?;
    fs::remove_dir_all(&scratch).ok();
    let depends = substvars
        .lines()
        .find_map(|line| line.strip_prefix("shlibs:Depends="))
        .map(str::trim)
        .unwrap_or_default();
    if !depends.contains("libc6") {
        bail!("dpkg-shlibdeps found no libc6 dependency for {binary:?}: {substvars:?}");
    }
    Ok(depends.to_owned())
}

/// Copies `from` to `to` (creating its directory) and sets `mode`.
fn put(from: &Path, to: &Path, mode: u32) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", to.display()))
}

/// `from`, compressed with `gzip -9n`, as `to` (0644).
fn put_gzipped(from: &Path, to: &Path) -> Result<()> {
    let out = Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .arg(from)
        .output()
        .context("cannot start gzip")?;
    if !out.status.success() {
        bail!(
            "gzip {} failed ({}): {}",
            from.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(to, out.stdout).with_context(|| format!("cannot write {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot chmod {}", to.display()))
}

fn write(to: &Path, text: &str, mode: u32) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    fs::write(to, text).with_context(|| format!("cannot write {}", to.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot chmod {}", to.display()))
}

/// Every file below `dir`, relative to it, sorted; `DEBIAN/` left out.
fn files(dir: &Path) -> Result<Vec<PathBuf>> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<PathBuf>) -> Result<()> {
        for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, found)?;
            } else if let Ok(relative) = path.strip_prefix(root) {
                found.push(relative.to_path_buf());
            }
        }
        Ok(())
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found)?;
    found.retain(|path| !path.starts_with("DEBIAN"));
    found.sort();
    Ok(found)
}

/// `Installed-Size`: the files' sizes in KiB, each rounded up, as dpkg-gencontrol counts.
fn installed_size_kib(stage: &Path) -> Result<u64> {
    let mut total = 0;
    for file in files(stage)? {
        total += fs::metadata(stage.join(&file))?.len().div_ceil(1024);
    }
    Ok(total.max(1))
}

/// `DEBIAN/md5sums`: `md5sum`'s lines for every file, paths relative to the root.
fn md5sums(stage: &Path) -> Result<String> {
    let files = files(stage)?;
    system::output(Command::new("md5sum").args(&files).current_dir(stage))
}

/// Directories 0755 whatever the umask was.
fn normalise_dirs(dir: &Path) -> Result<()> {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            normalise_dirs(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
