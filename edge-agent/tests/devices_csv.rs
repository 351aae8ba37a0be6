//! `edge-agent device add --csv`, run as the real binary: one bundle per row that the gate's
//! verifier accepts, and every bad file refused with its line named and nothing written.

// Helpers here are not `#[test]` functions, which clippy.toml's allow-unwrap-in-tests covers.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use common::{Gateway, client_verifier, fails, mode, ok, read, s, verify_client};

fn csv(gw: &Gateway, name: &str, text: &str) -> PathBuf {
    let path = gw.tmp.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn add_csv(gw: &Gateway, file: &Path, out: &Path) -> Vec<String> {
    [
        "device",
        "add",
        "--data-dir",
        s(&gw.data),
        "--csv",
        s(file),
        "--out",
        s(out),
    ]
    .map(str::to_owned)
    .to_vec()
}

#[test]
fn a_csv_file_registers_every_device_with_a_bundle_each() {
    let gw = Gateway::init();
    let file = csv(
        &gw,
        "devices.csv",
        "id,kind,room\nbtn-b204,button,B-204\n btn-b205 , button , B-205 \ncam-gym,camera,Gym North\n",
    );
    let out = gw.tmp.path().join("bundles");
    let args = add_csv(&gw, &file, &out);
    let printed = ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        printed.starts_with(&format!(
            "Registered 3 devices from {}; one bundle each in {}.\n",
            file.display(),
            out.display()
        )),
        "{printed}"
    );
    assert!(
        printed.contains("  camera cam-gym in room Gym North: "),
        "{printed}"
    );
    let ca = read(&gw.data.join("ca.pem"));
    for id in ["btn-b204", "btn-b205", "cam-gym"] {
        let bundle = out.join(id);
        verify_client(
            &*client_verifier(&ca, None),
            &read(&bundle.join("device.pem")),
        )
        .unwrap();
        assert_eq!(mode(&bundle.join("device.key")), 0o600);
        let json: serde_json::Value =
            serde_json::from_str(&read(&bundle.join("bundle.json"))).unwrap();
        assert_eq!(json["device_id"], id);
    }
    let list = gw.list();
    assert!(list.contains("btn-b205  button  B-205"), "{list}");
    assert!(list.contains("cam-gym   camera  Gym North"), "{list}");
}

#[test]
fn a_bad_row_is_refused_with_its_line_and_nothing_is_written() {
    let gw = Gateway::init();
    gw.add("btn-old", "button", "B-100");
    let list_before = gw.list();
    let out = gw.tmp.path().join("bundles");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "bad id",
            "id,kind,room\nbtn-1,button,B-1\nbtn/2,button,B-1\n".into(),
            "line 3: id \"btn/2\"",
        ),
        (
            "unknown kind",
            "id,kind,room\nbtn-1,button,B-1\nbtn-2,siren,B-1\n".into(),
            "line 3: unknown device kind \"siren\"",
        ),
        (
            "bad room",
            "id,kind,room\nbtn-1,button,B-1\nbtn-2,button,B/1\n".into(),
            "line 3: room \"B/1\"",
        ),
        (
            "duplicate id",
            "id,kind,room\nbtn-1,button,B-1\nbtn-2,button,B-1\nbtn-1,camera,B-2\n".into(),
            "line 4: device btn-1 is listed twice",
        ),
        (
            "registered id",
            "id,kind,room\nbtn-1,button,B-1\nbtn-old,button,B-100\n".into(),
            "line 3: device btn-old is already registered",
        ),
        (
            "missing header",
            "btn-1,button,B-1\n".into(),
            "line 1: the header must be `id,kind,room`",
        ),
        (
            "missing field",
            "id,kind,room\nbtn-1,button\n".into(),
            "line 2",
        ),
        (
            "no rows",
            "id,kind,room\n".into(),
            "no devices below the header",
        ),
        (
            "too many rows",
            std::iter::once("id,kind,room\n".to_owned())
                .chain((0..5001).map(|i| format!("b-{i},button,R\n")))
                .collect(),
            "line 5002: more than 5000 devices",
        ),
        (
            "too large",
            format!("id,kind,room\n{}", "x".repeat(1024 * 1024)),
            "larger than 1048576 bytes",
        ),
    ];
    for (what, text, expected) in cases {
        let file = csv(&gw, "devices.csv", &text);
        let args = add_csv(&gw, &file, &out);
        let (code, err) = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, 65, "{what}: {err}");
        assert!(err.contains(expected), "{what}: {err}");
        assert!(err.contains("nothing was written"), "{what}: {err}");
        assert!(!out.exists(), "{what}: a bundle was written");
        assert_eq!(gw.list(), list_before, "{what}");
    }

    // With [[rooms]] in agent.toml, a room it does not list is refused.
    let config = gw.data.join("agent.toml");
    let mut text = read(&config);
    text.push_str("\n[[rooms]]\nid = \"B-1\"\n\n[[rooms]]\nid = \"B-2\"\n");
    std::fs::write(&config, text).unwrap();
    let file = csv(
        &gw,
        "devices.csv",
        "id,kind,room\nbtn-1,button,B-1\nbtn-2,button,B-9\n",
    );
    let args = add_csv(&gw, &file, &out);
    let (code, err) = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("line 3: room B-9 is not one of agent.toml's [[rooms]] (B-1, B-2)"),
        "{err}"
    );
    assert!(!out.exists());

    // A bundle directory that holds a bundle already.
    let file = csv(
        &gw,
        "devices.csv",
        "id,kind,room\nbtn-1,button,B-1\nbtn-2,button,B-2\n",
    );
    gw.add("btn-x", "button", "B-1");
    std::fs::create_dir_all(out.join("btn-2")).unwrap();
    std::fs::copy(
        gw.tmp.path().join("btn-x/device.pem"),
        out.join("btn-2/device.pem"),
    )
    .unwrap();
    let args = add_csv(&gw, &file, &out);
    let (code, err) = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 65, "{err}");
    assert!(
        err.contains("line 3:") && err.contains("already holds"),
        "{err}"
    );
    assert!(!out.join("btn-1").exists());
    assert!(!gw.list().contains("btn-1 "));

    // --csv with single-device flags is a usage error.
    let (code, err) = fails(&[
        "device",
        "add",
        "--data-dir",
        s(&gw.data),
        "--csv",
        s(&file),
        "--id",
        "b",
        "--out",
        s(&out),
    ]);
    assert_eq!(code, 2, "{err}");
}
