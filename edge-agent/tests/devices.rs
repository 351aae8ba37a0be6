//! `edge-agent device add|list|revoke`, run as the real binary: bundles that the gate's
//! verifier accepts, unique serials, refusals that write nothing, and a CRL that makes the
//! verifier refuse exactly the revoked device.

mod common;

use common::{
    Gateway, SCHOOL, client_verifier, fails, mode, pem_der, read, s, serial_of, verify_client,
};
use rustls::{CertificateError, Error};

#[test]
fn a_bundle_holds_a_client_certificate_the_gate_accepts() {
    let gw = Gateway::init();
    let out = gw.add("btn-b204", "button", "B-204");
    assert_eq!(mode(&out.join("device.key")), 0o600);
    assert_eq!(
        mode(&out.join("nvs.csv")),
        0o600,
        "nvs.csv holds the key too"
    );
    let ca = read(&out.join("ca.pem"));
    assert_eq!(ca, read(&gw.data.join("ca.pem")));
    let cert = read(&out.join("device.pem"));
    verify_client(&*client_verifier(&ca, None), &cert).unwrap();

    let der = pem_der(&cert);
    let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn = x509.subject().iter_common_name().next().unwrap();
    assert_eq!(cn.as_str().unwrap(), "btn-b204");
    let o = x509.subject().iter_organization().next().unwrap();
    assert_eq!(o.as_str().unwrap(), SCHOOL);
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    let validity = x509.validity();
    let years = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 31_536_000;
    assert_eq!(years, 5);
}

#[test]
fn bundle_json_and_nvs_csv_carry_the_connection_details() {
    let gw = Gateway::init();
    let out = gw.add("cam-gym", "camera", "Gym North");
    let json: serde_json::Value = serde_json::from_str(&read(&out.join("bundle.json"))).unwrap();
    assert_eq!(json["device_id"], "cam-gym");
    assert_eq!(json["kind"], "camera");
    assert_eq!(json["room"], "Gym North");
    assert_eq!(json["school_id"], SCHOOL);
    assert_eq!(json["gateway"]["host"], "gw.lincoln.local");
    assert_eq!(json["gateway"]["port"], 8883);
    assert_eq!(json["topics"]["up"], "d/cam-gym/up");
    assert_eq!(json["topics"]["down"], "d/cam-gym/down");

    let csv_text = read(&out.join("nvs.csv"));
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(
        reader.headers().unwrap(),
        vec!["key", "type", "encoding", "value"]
    );
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    let row = |key: &str| {
        rows.iter()
            .find(|r| r[0] == key)
            .unwrap_or_else(|| panic!("no {key} row in {rows:?}"))
            .clone()
    };
    assert_eq!(rows[0], ["hallwatch", "namespace", "", ""]);
    assert_eq!(row("host"), ["host", "data", "string", "gw.lincoln.local"]);
    assert_eq!(row("port"), ["port", "data", "u16", "8883"]);
    assert_eq!(row("device_id"), ["device_id", "data", "string", "cam-gym"]);
    assert_eq!(row("ca_pem")[3], read(&out.join("ca.pem")));
    assert_eq!(row("cert_pem")[3], read(&out.join("device.pem")));
    assert_eq!(row("key_pem")[3], read(&out.join("device.key")));
    assert!(
        rows.iter().all(|r| r[0].len() <= 15),
        "NVS keys are at most 15 bytes"
    );
}

#[test]
fn serials_are_unique_across_devices() {
    let gw = Gateway::init();
    let mut serials = Vec::new();
    for id in ["b1", "b2", "b3"] {
        let out = gw.add(id, "button", "R1");
        let der = pem_der(&read(&out.join("device.pem")));
        let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
        serials.push(serial_of(x509.raw_serial()));
    }
    let mut unique = serials.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 3, "{serials:?}");
    let list = gw.list();
    for serial in &serials {
        assert!(
            list.contains(&format!("  {serial}  ")),
            "{serial} not in\n{list}"
        );
    }
}

#[test]
fn refused_additions_write_nothing() {
    let gw = Gateway::init();
    gw.add("btn-1", "button", "B-204");
    let before = gw.list();
    let out = gw.tmp.path().join("refused");
    for (id, kind, room, code, needle) in [
        ("a/b", "button", "B-204", 2, "--id"),
        ("", "button", "B-204", 2, "--id"),
        (
            "a-device-id-that-is-much-too-long-x",
            "button",
            "B",
            2,
            "--id",
        ),
        ("ok-id", "toaster", "B-204", 2, "--kind"),
        ("ok-id", "button", "B<204>", 2, "--room"),
        ("ok-id", "button", "", 2, "--room"),
        ("btn-1", "button", "B-204", 1, "already registered"),
    ] {
        let (got, err) = fails(&gw.add_args(id, kind, room, &out));
        assert_eq!(got, code, "{id} {kind} {room}: {err}");
        assert!(err.contains(needle), "{id} {kind} {room}: {err}");
        assert!(!out.exists(), "{id} {kind} {room}: wrote {}", out.display());
    }
    assert_eq!(gw.list(), before);
}

#[test]
fn a_bundle_directory_is_never_overwritten() {
    let gw = Gateway::init();
    let out = gw.add("btn-1", "button", "B-204");
    let key = read(&out.join("device.key"));
    let (code, err) = fails(&gw.add_args("btn-2", "button", "B-204", &out));
    assert_eq!(code, 1);
    assert!(err.contains("already holds"), "{err}");
    assert_eq!(read(&out.join("device.key")), key);
    assert!(!gw.list().contains("btn-2"), "btn-2 was registered anyway");
}

#[test]
fn revocation_puts_the_serial_on_the_crl_and_the_gate_refuses_it() {
    let gw = Gateway::init();
    let revoked = gw.add("btn-1", "button", "B-204");
    let kept = gw.add("cam-1", "camera", "Gym");
    let ca = read(&gw.data.join("ca.pem"));
    assert!(!gw.data.join("crl.pem").exists());

    gw.revoke("btn-1");
    let crl = read(&gw.data.join("crl.pem"));
    let der = pem_der(&crl);
    let (_, parsed) = x509_parser::parse_x509_crl(&der).unwrap();
    let first_number: u64 = parsed.crl_number().unwrap().to_string().parse().unwrap();
    let listed: Vec<u64> = parsed
        .iter_revoked_certificates()
        .map(|r| serial_of(r.raw_serial()))
        .collect();
    let cert_der = pem_der(&read(&revoked.join("device.pem")));
    let (_, cert) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
    assert_eq!(listed, vec![serial_of(cert.raw_serial())]);

    let verifier = client_verifier(&ca, Some(&crl));
    let err = verify_client(&*verifier, &read(&revoked.join("device.pem"))).unwrap_err();
    assert_eq!(err, Error::InvalidCertificate(CertificateError::Revoked));
    verify_client(&*verifier, &read(&kept.join("device.pem"))).unwrap();

    gw.revoke("cam-1");
    let crl = read(&gw.data.join("crl.pem"));
    let der = pem_der(&crl);
    let (_, parsed) = x509_parser::parse_x509_crl(&der).unwrap();
    let second_number: u64 = parsed.crl_number().unwrap().to_string().parse().unwrap();
    assert!(second_number > first_number);
    assert_eq!(parsed.iter_revoked_certificates().count(), 2);
    let verifier = client_verifier(&ca, Some(&crl));
    for bundle in [&revoked, &kept] {
        let err = verify_client(&*verifier, &read(&bundle.join("device.pem"))).unwrap_err();
        assert_eq!(err, Error::InvalidCertificate(CertificateError::Revoked));
    }
}

#[test]
fn revoking_an_unknown_or_revoked_device_is_refused() {
    let gw = Gateway::init();
    gw.add("btn-1", "button", "B-204");
    let revoke = |id| fails(&["device", "revoke", "--data-dir", s(&gw.data), "--id", id]);
    let (code, err) = revoke("nobody");
    assert_eq!(code, 1);
    assert!(err.contains("no device nobody"), "{err}");
    assert!(!gw.data.join("crl.pem").exists());
    gw.revoke("btn-1");
    let crl = read(&gw.data.join("crl.pem"));
    let (code, err) = revoke("btn-1");
    assert_eq!(code, 1);
    assert!(err.contains("already revoked"), "{err}");
    assert_eq!(
        read(&gw.data.join("crl.pem")),
        crl,
        "a refused revoke rewrote the CRL"
    );
}

#[test]
fn list_shows_every_device_and_its_state() {
    let gw = Gateway::init();
    gw.add("btn-1", "button", "B-204");
    gw.add("cam-1", "camera", "Gym North");
    gw.revoke("btn-1");
    let list = gw.list();
    let lines: Vec<Vec<&str>> = list
        .lines()
        .map(|l| {
            l.split("  ")
                .filter(|c| !c.is_empty())
                .map(str::trim)
                .collect()
        })
        .collect();
    assert_eq!(
        lines[0],
        [
            "ID",
            "KIND",
            "ROOM",
            "SERIAL",
            "EXPIRES",
            "STATE",
            "LAST SEEN"
        ]
    );
    assert_eq!(lines.len(), 3, "{list}");
    assert_eq!(lines[1][..3], ["btn-1", "button", "B-204"]);
    assert_eq!(lines[1][5..], ["revoked", "never"]);
    assert_eq!(lines[2][..3], ["cam-1", "camera", "Gym North"]);
    assert_eq!(lines[2][5..], ["active", "never"]);
}
