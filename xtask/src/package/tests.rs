//! The packages as dpkg sees them, built by the code `cargo xtask package` runs: their
//! control fields and contents, their maintainer scripts under `shellcheck`, and the edge
//! package installed, upgraded, removed and purged by the real dpkg into a throwaway root
//! (`dpkg --root DIR --force-script-chrootless`: the scripts run on this machine with
//! `DPKG_ROOT=DIR`, creating the user in `DIR/etc/passwd` and the unit's links in
//! `DIR/etc/systemd`). Needs root (dpkg changes owners) and Debian's `shellcheck`, which
//! `cargo xtask test` installs; without them the tests fail, never skip.
//!
//! The release build is `cargo xtask test`'s own step before the tests, which tells them
//! where it is (`XTASK_RELEASE_DIR`); run alone (`cargo nextest run -p xtask`), the tests
//! build it with the workspace's toolchain (rustup's `cargo`, which reads
//! rust-toolchain.toml; the `CARGO` a test runner passes may be another toolchain's, whose
//! build would start from scratch).

// Test helpers panic on failure by design; clippy.toml's allow-unwrap-in-tests covers
// only `#[test]` functions themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{
    CLOUD, EDGE, PACKAGES, RELEASE_DIR_VAR, SCRIPTS, Spec, assemble, build_release_with,
    workspace_version,
};

/// The user the seeded root already has for the cloud test, at an id useradd would not pick.
const SEEDED_UID: u32 = 987;

#[test]
fn the_edge_package_installs_upgrades_and_removes_keeping_data_and_edited_config() {
    let work = scratch();
    let binaries = binaries();
    let version_a = workspace_version();
    let version_b = format!("{version_a}+test2");
    let deb_a = assemble(&EDGE, &binaries, &version_a, &work.path().join("a")).unwrap();
    let deb_b = assemble(&EDGE, &binaries, &version_b, &work.path().join("b")).unwrap();

    check_control(&deb_a, &EDGE, &version_a);
    let contents = contents(&deb_a);
    for (path, mode) in [
        ("./usr/bin/edge-agent", "-rwxr-xr-x"),
        ("./lib/systemd/system/hallwatch-edge.service", "-rw-r--r--"),
        ("./etc/hallwatch/edge.env", "-rw-r--r--"),
        ("./usr/share/doc/hallwatch-edge/copyright", "-rw-r--r--"),
    ] {
        let line = contents
            .iter()
            .find(|line| line.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("{path} is not in the package: {contents:#?}"));
        assert!(
            line.starts_with(mode) && line.contains(" root/root "),
            "{path}: {line}"
        );
    }
    assert!(
        !contents.iter().any(|line| line.contains("./var/")),
        "the package must not own anything under /var (the data): {contents:#?}"
    );
    check_scripts(&deb_a, &EDGE, work.path());

    // Install version A.
    let root = Root::new(work.path());
    root.dpkg(&["--install", path(&deb_a)]);
    assert_eq!(
        root.status("hallwatch-edge"),
        format!("install ok installed {version_a}")
    );
    let bin = root.path("usr/bin/edge-agent");
    assert_eq!(mode(&bin), 0o755);
    assert!(
        root.path("lib/systemd/system/hallwatch-edge.service")
            .is_file()
    );
    let passwd = fs::read_to_string(root.path("etc/passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|line| line.starts_with("hallwatch:"))
        .unwrap_or_else(|| panic!("no user hallwatch: {passwd}"));
    let fields: Vec<&str> = user.split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!((100..1000).contains(&uid), "not a system user: {user}");
    assert_eq!(fields[5], "/var/lib/hallwatch", "{user}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{user}");
    let group = fs::read_to_string(root.path("etc/group")).unwrap();
    assert!(
        group
            .lines()
            .any(|line| line.starts_with(&format!("hallwatch:x:{}:", fields[3]))),
        "{group}"
    );
    let data = root.path("var/lib/hallwatch/edge");
    assert_eq!(mode(&data), 0o750);
    assert_eq!(fs::metadata(&data).unwrap().uid(), uid);
    let wants = root.path("etc/systemd/system/multi-user.target.wants/hallwatch-edge.service");
    assert_eq!(
        fs::read_link(&wants).unwrap(),
        Path::new("/lib/systemd/system/hallwatch-edge.service"),
        "the unit is enabled"
    );
    let conffiles = root.query("hallwatch-edge", "${Conffiles}");
    assert!(
        conffiles.contains("/etc/hallwatch/edge.env "),
        "{conffiles}"
    );

    // The packaged (stripped) binary works: it initialises a gateway in the data directory.
    let init = Command::new(&bin)
        .args(["init", "--data-dir", path(&data)])
        .args([
            "--school-id",
            "lincoln-high",
            "--school-name",
            "Lincoln High",
        ])
        .output()
        .unwrap();
    assert!(init.status.success(), "{init:?}");
    let agent_toml = fs::read(data.join("agent.toml")).unwrap();
    let database = fs::read(data.join("edge.db")).unwrap();
    let env_file = root.path("etc/hallwatch/edge.env");
    let mut edited = fs::read_to_string(&env_file).unwrap();
    edited.push_str("HALLWATCH_SYNC_OUTBOX_BUDGET_MB=512\n");
    fs::write(&env_file, &edited).unwrap();

    // Upgrade to B: data and the edited conffile kept, without a question (stdin is closed).
    root.dpkg(&["--install", path(&deb_b)]);
    assert_eq!(
        root.status("hallwatch-edge"),
        format!("install ok installed {version_b}")
    );
    assert_eq!(fs::read_to_string(&env_file).unwrap(), edited);
    assert_eq!(fs::read(data.join("agent.toml")).unwrap(), agent_toml);
    assert_eq!(fs::read(data.join("edge.db")).unwrap(), database);
    let passwd = fs::read_to_string(root.path("etc/passwd")).unwrap();
    assert_eq!(passwd.matches("\nhallwatch:").count(), 1, "{passwd}");
    assert!(passwd.contains(user), "the user changed: {passwd}");
    assert_eq!(fs::metadata(&data).unwrap().uid(), uid);

    // Remove: the program goes, the configuration and the data stay; the unit is masked.
    root.dpkg(&["--remove", "hallwatch-edge"]);
    assert!(!bin.exists());
    assert_eq!(fs::read_to_string(&env_file).unwrap(), edited);
    assert_eq!(fs::read(data.join("edge.db")).unwrap(), database);
    assert_eq!(
        fs::read_link(root.path("etc/systemd/system/hallwatch-edge.service")).unwrap(),
        Path::new("/dev/null")
    );

    // Purge: the configuration goes, the data and the user stay, the links are gone.
    let purge = root.dpkg(&["--purge", "hallwatch-edge"]);
    assert!(
        String::from_utf8_lossy(&purge.stderr).contains("kept /var/lib/hallwatch/edge"),
        "{purge:?}"
    );
    assert!(!env_file.exists());
    assert_eq!(fs::read(data.join("edge.db")).unwrap(), database);
    assert_eq!(fs::read(data.join("agent.toml")).unwrap(), agent_toml);
    assert!(
        fs::read_to_string(root.path("etc/passwd"))
            .unwrap()
            .contains(user)
    );
    assert!(fs::symlink_metadata(&wants).is_err(), "enable link left");
    assert!(fs::symlink_metadata(root.path("etc/systemd/system/hallwatch-edge.service")).is_err());
}

#[test]
fn the_cloud_package_has_its_layout_and_reuses_an_existing_user() {
    let work = scratch();
    let binaries = binaries();
    let version = workspace_version();
    let deb = assemble(&CLOUD, &binaries, &version, work.path()).unwrap();
    check_control(&deb, &CLOUD, &version);
    let contents = contents(&deb);
    for (path, mode) in [
        ("./usr/bin/cloud-sync", "-rwxr-xr-x"),
        ("./lib/systemd/system/hallwatch-cloud.service", "-rw-r--r--"),
        ("./etc/hallwatch/cloud.toml", "-rw-r-----"),
        ("./etc/hallwatch/cloud.env", "-rw-------"),
        (
            "./usr/share/doc/hallwatch-cloud/configuration.md",
            "-rw-r--r--",
        ),
    ] {
        assert!(
            contents
                .iter()
                .any(|line| line.starts_with(mode) && line.ends_with(path)),
            "{path} {mode}: {contents:#?}"
        );
    }
    check_scripts(&deb, &CLOUD, work.path());

    let root = Root::new(work.path());
    let seeded = format!(
        "hallwatch:x:{SEEDED_UID}:{SEEDED_UID}:Hallwatch services:/var/lib/hallwatch:/usr/sbin/nologin\n"
    );
    append(&root.path("etc/passwd"), &seeded);
    append(
        &root.path("etc/group"),
        &format!("hallwatch:x:{SEEDED_UID}:\n"),
    );
    root.dpkg(&["--install", path(&deb)]);
    let passwd = fs::read_to_string(root.path("etc/passwd")).unwrap();
    let users = passwd.lines().filter(|line| line.starts_with("hallwatch:"));
    assert_eq!(users.count(), 1, "{passwd}");
    let data = root.path("var/lib/hallwatch/cloud");
    assert_eq!(mode(&data), 0o750);
    assert_eq!(fs::metadata(&data).unwrap().uid(), SEEDED_UID);
    assert_eq!(fs::metadata(&data).unwrap().gid(), SEEDED_UID);
    assert_eq!(mode(&root.path("etc/hallwatch/cloud.env")), 0o600);
    let toml = root.path("etc/hallwatch/cloud.toml");
    assert_eq!(mode(&toml), 0o640);
    assert_eq!(
        fs::metadata(&toml).unwrap().gid(),
        SEEDED_UID,
        "the service's group reads it"
    );
    assert_eq!(fs::metadata(&toml).unwrap().uid(), 0);
}

/// Lintian, Debian's own package checker, finds no error and no warning in either package
/// (its overrides, each with its reason, are in `packaging/<dir>/lintian-overrides`). One
/// lintian run checks both packages and a bare one, which shows that it can fail.
#[test]
fn both_packages_are_lintian_clean_of_errors_and_warnings() {
    let work = scratch();
    let binaries = binaries();
    let mut debs: Vec<PathBuf> = PACKAGES
        .iter()
        .map(|spec| assemble(spec, &binaries, &workspace_version(), work.path()).unwrap())
        .collect();
    let bare = work.path().join("bare");
    fs::create_dir_all(bare.join("DEBIAN")).unwrap();
    fs::write(
        bare.join("DEBIAN/control"),
        "Package: hallwatch-bare\nVersion: 0.1.0\nArchitecture: all\n\
         Maintainer: Hallwatch <ops@hallwatch.invalid>\nDescription: nothing\n",
    )
    .unwrap();
    let bare_deb = work.path().join("hallwatch-bare_0.1.0_all.deb");
    run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&bare)
        .arg(&bare_deb));
    debs.push(bare_deb);

    let out = Command::new("lintian")
        .args(["--fail-on", "none", "--tag-display-limit", "0"])
        .args(&debs)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run lintian (cargo xtask test installs it): {e}"));
    let tags = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "lintian: {}\n{tags}", out.status);
    for spec in PACKAGES {
        let flagged: Vec<&str> = tags
            .lines()
            .filter(|line| {
                ["E", "W"]
                    .iter()
                    .any(|level| line.starts_with(&format!("{level}: {}: ", spec.name)))
            })
            .collect();
        assert!(flagged.is_empty(), "lintian on {}:\n{tags}", spec.name);
    }
    // A package with nothing but its control file has errors (no copyright file, …).
    assert!(
        tags.lines()
            .any(|line| line.starts_with("E: hallwatch-bare: ")),
        "{tags}"
    );
}

// === helpers ===

/// The release binaries: `cargo xtask test`'s, or built now.
fn binaries() -> PathBuf {
    if let Some(dir) = std::env::var_os(RELEASE_DIR_VAR) {
        return PathBuf::from(dir);
    }
    let mut cargo = Command::new("cargo");
    cargo
        .current_dir(crate::system::workspace_root())
        .env_remove("CARGO")
        .env_remove("RUSTUP_TOOLCHAIN");
    build_release_with(cargo).unwrap()
}

fn scratch() -> tempfile::TempDir {
    assert!(
        crate::system::is_root(),
        "the package tests install with dpkg, which needs root (cargo xtask test runs as root)"
    );
    let dir = crate::system::target_dir().join("tmp");
    fs::create_dir_all(&dir).unwrap();
    tempfile::tempdir_in(dir).unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn append(file: &Path, text: &str) {
    let mut old = fs::read_to_string(file).unwrap();
    old.push_str(text);
    fs::write(file, old).unwrap();
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(cmd: &mut Command) -> String {
    String::from_utf8(run(cmd).stdout).unwrap()
}

/// `dpkg-deb --contents`: one `tar tv` line per entry.
fn contents(deb: &Path) -> Vec<String> {
    stdout(Command::new("dpkg-deb").arg("--contents").arg(deb))
        .lines()
        .map(str::to_owned)
        .collect()
}

fn check_control(deb: &Path, spec: &Spec, version: &str) {
    let field = |name: &str| {
        stdout(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
            .trim()
            .to_owned()
    };
    assert_eq!(field("Package"), spec.name);
    assert_eq!(field("Version"), version);
    let arch = stdout(Command::new("dpkg").arg("--print-architecture"));
    assert_eq!(field("Architecture"), arch.trim());
    let depends = field("Depends");
    assert!(depends.starts_with("libc6 (>= "), "{depends}");
    assert!(depends.contains("init-system-helpers"), "{depends}");
    let size: u64 = field("Installed-Size").parse().unwrap();
    assert!(size > 1_000, "a stripped binary is megabytes: {size} KiB");
    assert!(!field("Maintainer").is_empty());
    assert!(field("Description").starts_with("Hallwatch"));
}

/// The control archive holds the conffiles list, md5sums and each maintainer script, and
/// every script passes `shellcheck` as POSIX sh.
fn check_scripts(deb: &Path, spec: &Spec, work: &Path) {
    let control = work.join(format!("{}-control", spec.name));
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(deb)
        .arg(&control));
    let conffiles = fs::read_to_string(control.join("conffiles")).unwrap();
    let expected: Vec<String> = spec
        .etc
        .iter()
        .map(|(file, _)| format!("/etc/hallwatch/{file}"))
        .collect();
    assert_eq!(conffiles.lines().collect::<Vec<_>>(), expected);
    let md5sums = fs::read_to_string(control.join("md5sums")).unwrap();
    assert!(
        md5sums.contains(&format!("  usr/bin/{}\n", spec.binary)),
        "{md5sums}"
    );
    let scripts: Vec<PathBuf> = SCRIPTS
        .iter()
        .map(|script| control.join(script))
        .filter(|script| script.exists())
        .collect();
    assert_eq!(scripts.len(), 3, "postinst, prerm and postrm: {scripts:?}");
    for script in &scripts {
        assert_eq!(mode(script), 0o755, "{script:?}");
        let text = fs::read_to_string(script).unwrap();
        assert!(text.starts_with("#!/bin/sh\n"), "{script:?}");
        assert!(text.contains("\nset -e\n"), "{script:?}");
    }
    run(Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style"])
        .args(&scripts));
    // shellcheck can fail: a script with an unquoted variable is refused.
    let bad = work.join("bad-postinst");
    fs::write(
        &bad,
        "#!/bin/sh\nset -e\nrm -rf $DPKG_ROOT/var/lib/hallwatch\n",
    )
    .unwrap();
    let out = Command::new("shellcheck").arg(&bad).output().unwrap();
    assert!(!out.status.success(), "{out:?}");
}

/// An empty root dpkg can install into: its database, and the account files useradd needs.
struct Root {
    dir: PathBuf,
}

impl Root {
    fn new(work: &Path) -> Root {
        let dir = work.join("root");
        for sub in [
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/log",
            "etc",
        ] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        fs::write(dir.join("var/lib/dpkg/status"), "").unwrap();
        for (file, text) in [
            ("passwd", "root:x:0:0:root:/root:/bin/sh\n"),
            ("group", "root:x:0:\n"),
            ("shadow", "root:*:19000:0:99999:7:::\n"),
            ("gshadow", "root:*::\n"),
        ] {
            fs::write(dir.join("etc").join(file), text).unwrap();
        }
        Root { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// dpkg on this root; its dependencies (libc6, …) are this machine's, not the root's.
    fn dpkg(&self, args: &[&str]) -> Output {
        run(Command::new("dpkg")
            .arg(format!("--root={}", self.dir.display()))
            .arg(format!("--log={}", self.path("var/log/dpkg.log").display()))
            .args(["--force-script-chrootless", "--force-depends"])
            .args(args))
    }

    fn query(&self, package: &str, format: &str) -> String {
        stdout(
            Command::new("dpkg-query")
                .arg(format!(
                    "--admindir={}",
                    self.path("var/lib/dpkg").display()
                ))
                .arg(format!("--showformat={format}"))
                .args(["--show", package]),
        )
    }

    fn status(&self, package: &str) -> String {
        self.query(package, "${Status} ${Version}")
    }
}
