//! The topic scheme: exact `d/{device_id}/up` and `d/{device_id}/down` only. The broker's
//! access check is built on `parse_device_topic`, so every way of reaching past a device's own
//! two topics must come back `None`.

use firmware_protocol::{
    DOWN_TOPIC_TEMPLATE, Direction, MAX_TOPIC_LEN, TopicError, UP_TOPIC_TEMPLATE,
    is_valid_device_id, parse_device_topic, write_device_topic,
};

#[test]
fn parses_exact_device_topics() {
    assert_eq!(
        parse_device_topic("d/btn-0042/up"),
        Some(("btn-0042", Direction::Up))
    );
    assert_eq!(
        parse_device_topic("d/cam_7/down"),
        Some(("cam_7", Direction::Down))
    );
    let longest = format!("d/{}/down", "a".repeat(32));
    assert_eq!(longest.len(), MAX_TOPIC_LEN);
    assert!(parse_device_topic(&longest).is_some());
}

#[test]
fn refuses_everything_else() {
    let id33 = "a".repeat(33);
    let too_long = format!("d/{id33}/up");
    let refused = [
        "#",
        "+",
        "d/#",
        "d/+/up",
        "d/+/down",
        "d/btn/#",
        "d/btn/+",
        "$SYS/#",
        "$SYS/broker/clients",
        "d/$SYS/up",
        "d/btn/up/x",
        "d/btn/down/",
        "d/a/up/x",
        "d//up",
        "d/up",
        "d/btn",
        "d/btn/",
        "d/btn/sideways",
        "d/btn/UP",
        "/d/btn/up",
        "D/btn/up",
        "x/btn/up",
        "d/b.n/up",
        "d/b n/up",
        "",
        too_long.as_str(),
    ];
    for topic in refused {
        assert_eq!(parse_device_topic(topic), None, "{topic:?}");
    }
}

#[test]
fn device_id_rules() {
    assert!(is_valid_device_id("a"));
    assert!(is_valid_device_id("ESP32-btn_0042"));
    assert!(is_valid_device_id(&"a".repeat(32)));
    assert!(!is_valid_device_id(""));
    assert!(!is_valid_device_id(&"a".repeat(33)));
    for bad in [
        "+", "#", "/", "$", "a/b", "a+", "#a", "$SYS", "a b", "a.b", "é", "a\0",
    ] {
        assert!(!is_valid_device_id(bad), "{bad:?}");
    }
}

#[test]
fn writes_topics_without_allocating_a_string_per_call() {
    let mut out = String::new();
    write_device_topic(&mut out, "btn-0042", Direction::Up).unwrap();
    assert_eq!(out, UP_TOPIC_TEMPLATE.replace("{device_id}", "btn-0042"));
    out.clear();
    write_device_topic(&mut out, "btn-0042", Direction::Down).unwrap();
    assert_eq!(out, DOWN_TOPIC_TEMPLATE.replace("{device_id}", "btn-0042"));
    assert_eq!(
        parse_device_topic(&out),
        Some(("btn-0042", Direction::Down))
    );
}

#[test]
fn refuses_to_write_a_topic_for_an_invalid_id() {
    let mut out = String::new();
    for bad in ["", "+", "#", "a/b", "$SYS"] {
        assert_eq!(
            write_device_topic(&mut out, bad, Direction::Up),
            Err(TopicError::InvalidDeviceId)
        );
    }
    assert_eq!(out, "", "nothing is written for a refused id");
}

#[test]
fn reports_a_full_buffer() {
    /// A writer with room for 8 bytes, like a firmware's fixed buffer.
    struct Fixed(usize);
    impl std::fmt::Write for Fixed {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            if self.0 > 8 {
                Err(std::fmt::Error)
            } else {
                Ok(())
            }
        }
    }
    assert_eq!(
        write_device_topic(&mut Fixed(0), "btn-0042", Direction::Up),
        Err(TopicError::Write)
    );
}

#[test]
fn templates_match_directions() {
    assert_eq!(Direction::Up.template(), "d/{device_id}/up");
    assert_eq!(Direction::Down.template(), "d/{device_id}/down");
    assert_eq!(Direction::Up.to_string(), "up");
}

#[cfg(feature = "std")]
#[test]
fn string_topics() {
    use firmware_protocol::{down_topic, up_topic};
    assert_eq!(up_topic("cam_7").as_deref(), Ok("d/cam_7/up"));
    assert_eq!(down_topic("cam_7").as_deref(), Ok("d/cam_7/down"));
    assert_eq!(up_topic("d/#"), Err(TopicError::InvalidDeviceId));
}
