//! `Label`, the room code: which strings it admits, how it prints, and that serde validates it
//! on the way in whatever the format.

use std::collections::HashSet;

use firmware_protocol::{Label, LabelError};

#[test]
fn accepts_the_allowed_characters() {
    for ok in [
        "B-204",
        "Gym North",
        "lab_2.1",
        "x",
        "0",
        &"Z".repeat(Label::MAX_LEN),
    ] {
        assert_eq!(
            Label::new(ok).map(|l| l.as_str().to_owned()),
            Ok(ok.to_owned()),
            "{ok:?}"
        );
    }
}

#[test]
fn refuses_empty_long_and_foreign_strings() {
    assert_eq!(Label::new(""), Err(LabelError::Empty));
    assert_eq!(
        Label::new(&"a".repeat(33)),
        Err(LabelError::TooLong { len: 33 })
    );
    assert_eq!(
        Label::new("B/204"),
        Err(LabelError::InvalidChar { index: 1 })
    );
    assert_eq!(
        Label::new("room\n"),
        Err(LabelError::InvalidChar { index: 4 })
    );
    assert_eq!(
        Label::new("Raum-Ä"),
        Err(LabelError::InvalidChar { index: 5 })
    );
    // 11 characters but 33 bytes: the limit is in bytes, what the wire and the buffer hold.
    assert_eq!(
        Label::new("ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄx"),
        Err(LabelError::TooLong { len: 33 })
    );
    for bad in ["a+b", "a#b", "$SYS", "a\tb", "<b>", "a,b"] {
        assert!(
            matches!(Label::new(bad), Err(LabelError::InvalidChar { .. })),
            "{bad:?}"
        );
    }
}

#[test]
fn prints_as_the_string() {
    let label = Label::new("B-204").unwrap();
    assert_eq!(label.to_string(), "B-204");
    assert_eq!(format!("{label:?}"), "\"B-204\"");
    assert_eq!(format!("[{label:>7}]"), "[  B-204]");
    assert_eq!(
        LabelError::TooLong { len: 40 }.to_string(),
        "label is 40 bytes long, the limit is 32"
    );
}

#[test]
fn equal_strings_are_equal_labels() {
    let a = Label::new("B-204").unwrap();
    let b = Label::try_from("B-204").unwrap();
    assert_eq!(a, b);
    assert_ne!(a, Label::new("B-20").unwrap());
    let set: HashSet<Label> = [a, b, Label::new("B-205").unwrap()].into_iter().collect();
    assert_eq!(set.len(), 2);
}

#[test]
fn serde_validates_labels_in_any_format() {
    let label: Label = serde_json::from_str("\"Gym North\"").unwrap();
    assert_eq!(label.as_str(), "Gym North");
    assert_eq!(serde_json::to_string(&label).unwrap(), "\"Gym North\"");

    let err = serde_json::from_str::<Label>("\"Gym/North\"").unwrap_err();
    assert!(err.to_string().contains("1 to 32 ASCII letters"), "{err}");
    assert!(serde_json::from_str::<Label>("\"\"").is_err());

    // postcard, the wire format: varint length then the bytes, and the same rule on the way in.
    let mut buf = [0u8; 40];
    let bytes = postcard::to_slice(&label, &mut buf).unwrap();
    assert_eq!(bytes, [&[9u8][..], b"Gym North"].concat());
    assert_eq!(postcard::from_bytes::<Label>(bytes), Ok(label));
    assert!(postcard::from_bytes::<Label>(b"\x03a/b").is_err());
}
