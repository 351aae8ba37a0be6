//! `edge-agent backup` and `restore` as the real binary: what the archive holds, a restore
//! that gives back the same gateway, and each archive or target a restore refuses without
//! touching anything. The backup of a running agent under load, restored and synced, is in
//! tests/backup_sync.rs (it needs the cloud).

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::{Gateway, fails, mode, ok, read, s};

fn backup(gw: &Gateway, out: &Path) -> String {
    ok(&["backup", "--data-dir", s(&gw.data), "--out", s(out)])
}

fn restore_args<'a>(from: &'a Path, to: &'a Path) -> Vec<&'a str> {
    vec!["restore", "--from", s(from), "--data-dir", s(to)]
}

/// A tar.zst with `entries` (name, bytes) written raw, names unchecked.
fn raw_archive(path: &Path, entries: &[(&[u8], &[u8])]) {
    let file = std::fs::File::create(path).unwrap();
    let mut encoder = zstd::Encoder::new(file, 3).unwrap();
    for (name, data) in entries {
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_cksum();
        encoder.write_all(header.as_bytes()).unwrap();
        encoder.write_all(data).unwrap();
        let pad = (512 - data.len() % 512) % 512;
        encoder.write_all(&vec![0u8; pad]).unwrap();
    }
    encoder.write_all(&[0u8; 1024]).unwrap();
    encoder.finish().unwrap();
}

fn files_of(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_backup_restores_the_same_gateway_and_holds_its_keys_at_mode_0600() {
    let gw = Gateway::init();
    gw.add("btn-b204", "button", "B-204");
    gw.revoke("btn-b204");
    gw.add("btn-b205", "button", "B-205");
    let archive = gw.tmp.path().join("gw.hwbackup");
    let printed = backup(&gw, &archive);
    assert!(printed.starts_with("Backed up "), "{printed}");
    for name in [
        "edge.db",
        "agent.toml",
        "ca.key",
        "server.key",
        "crl.pem",
        "operator-token",
    ] {
        assert!(
            printed.contains(&format!("  {name} (")),
            "{name}: {printed}"
        );
    }
    assert_eq!(mode(&archive), 0o600, "the archive holds private keys");
    assert!(
        files_of(gw.tmp.path())
            .iter()
            .all(|n| !n.starts_with(".gw.hwbackup")),
        "no scratch file is left"
    );
    // Never over an existing file.
    let (code, err) = fails(&["backup", "--data-dir", s(&gw.data), "--out", s(&archive)]);
    assert_eq!(code, 73, "{err}");
    assert!(err.contains("exists; choose a new file name"), "{err}");

    let to = gw.tmp.path().join("restored");
    let printed = ok(&restore_args(&archive, &to));
    assert!(
        printed.contains("(school lincoln-high, backup taken "),
        "{printed}"
    );
    for name in [
        "agent.toml",
        "ca.pem",
        "ca.key",
        "server.pem",
        "server.key",
        "crl.pem",
        "operator-token",
    ] {
        assert_eq!(read(&to.join(name)), read(&gw.data.join(name)), "{name}");
    }
    for secret in ["ca.key", "server.key", "operator-token"] {
        assert_eq!(mode(&to.join(secret)), 0o600, "{secret}");
    }
    let list = |dir: &Path| ok(&["device", "list", "--data-dir", s(dir)]);
    assert_eq!(list(&to), list(&gw.data));
    assert!(list(&to).contains("revoked"));
    assert!(
        !gw.tmp.path().join(".restored.restoring").exists(),
        "the staging directory is gone"
    );

    // Into a directory that holds files: refused, unless --force, which moves them aside.
    let (code, err) = fails(&restore_args(&archive, &to));
    assert_eq!(code, 73, "{err}");
    assert!(err.contains("is not empty"), "{err}");
    std::fs::write(to.join("marker"), "old").unwrap();
    let mut args = restore_args(&archive, &to);
    args.push("--force");
    let printed = ok(&args);
    assert!(printed.contains("previous files are in "), "{printed}");
    assert!(!to.join("marker").exists());
    let aside: Vec<PathBuf> = std::fs::read_dir(gw.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("restored.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(read(&aside[0].join("marker")), "old");

    // An empty directory is fine.
    let empty = gw.tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    ok(&restore_args(&archive, &empty));
    assert_eq!(list(&empty), list(&gw.data));
}

#[test]
fn damaged_or_foreign_archives_are_refused_before_anything_is_replaced() {
    let gw = Gateway::init();
    let archive = gw.tmp.path().join("gw.hwbackup");
    backup(&gw, &archive);
    let bytes = std::fs::read(&archive).unwrap();
    let to = gw.tmp.path().join("target");
    let refused = |file: &Path, expected: &str| {
        let (code, err) = fails(&restore_args(file, &to));
        assert_eq!(code, 65, "{err}");
        assert!(err.contains(expected), "{expected}: {err}");
        assert!(err.contains("nothing was replaced"), "{err}");
        assert!(!to.exists(), "the target was created");
        assert!(
            !gw.tmp.path().join(".target.restoring").exists(),
            "the staging directory is left"
        );
    };

    let truncated = gw.tmp.path().join("truncated.hwbackup");
    std::fs::write(&truncated, &bytes[..bytes.len() * 2 / 3]).unwrap();
    refused(&truncated, "truncated");

    let traversal = gw.tmp.path().join("traversal.hwbackup");
    raw_archive(
        &traversal,
        &[(b"../../etc/evil", b"x"), (b"manifest.json", b"{}")],
    );
    refused(&traversal, "not a plain file name (path traversal?)");
    assert!(!gw.tmp.path().join("etc").exists());

    let garbage = gw.tmp.path().join("garbage.hwbackup");
    std::fs::write(&garbage, b"this is no backup").unwrap();
    refused(&garbage, "cannot be used");

    let no_manifest = gw.tmp.path().join("no-manifest.hwbackup");
    raw_archive(&no_manifest, &[(b"edge.db", b"x")]);
    refused(&no_manifest, "does not start with manifest.json");

    // A manifest that does not match the data: edge.db swapped after the fact.
    let manifest = r#"{"format":"hallwatch-edge-backup","version":1,"school_id":"lincoln-high",
        "taken_at":0,"files":[{"name":"edge.db","size":1,"sha256":"00"},
        {"name":"agent.toml","size":1,"sha256":"00"},{"name":"ca.pem","size":1,"sha256":"00"},
        {"name":"ca.key","size":1,"sha256":"00"},{"name":"server.pem","size":1,"sha256":"00"},
        {"name":"server.key","size":1,"sha256":"00"}]}"#;
    let mismatch = gw.tmp.path().join("mismatch.hwbackup");
    raw_archive(
        &mismatch,
        &[(b"manifest.json", manifest.as_bytes()), (b"edge.db", b"x")],
    );
    refused(&mismatch, "edge.db does not match its checksum");

    // A target that holds files is refused before the archive is even read.
    std::fs::create_dir(&to).unwrap();
    std::fs::write(to.join("keep"), "mine").unwrap();
    let (code, err) = fails(&restore_args(&archive, &to));
    assert_eq!(code, 73, "{err}");
    assert_eq!(read(&to.join("keep")), "mine");

    // Backing up something that is not a gateway.
    let (code, err) = fails(&[
        "backup",
        "--data-dir",
        s(&to),
        "--out",
        s(&gw.tmp.path().join("x")),
    ]);
    assert_eq!(code, 66, "{err}");
}
