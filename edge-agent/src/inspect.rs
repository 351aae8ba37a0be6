//! Decoding device frames for people: a firmware author pastes the hex of a frame captured from
//! MQTT (`mosquitto_sub -F %x`) and sees its fields, or the exact reason the gateway refuses it.

use firmware_protocol::{DecodeError, Direction};

/// Why a pasted frame could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("not hexadecimal: {0}")]
    NotHex(#[from] hex::FromHexError),
    #[error("the gateway would refuse this frame: {0}")]
    Refused(#[from] DecodeError),
}

/// Decodes a frame given as hex (whitespace ignored) in the given direction and renders every
/// field, one per line.
pub fn describe_frame(direction: Direction, hex_text: &str) -> Result<String, InspectError> {
    let compact: String = hex_text.chars().filter(|c| !c.is_whitespace()).collect();
    let bytes = hex::decode(compact)?;
    let rendered = match direction {
        Direction::Up => format!("{:#?}", firmware_protocol::decode_uplink(&bytes)?),
        Direction::Down => format!("{:#?}", firmware_protocol::decode_downlink(&bytes)?),
    };
    Ok(format!(
        "{} bytes, {direction:?}link frame\n{rendered}",
        bytes.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use firmware_protocol::{ButtonPress, Frame, PressPattern, Uplink, encode_uplink};

    #[test]
    fn shows_every_field_of_a_valid_frame() {
        let frame = Frame::new(
            7,
            300,
            Uplink::ButtonPress(ButtonPress {
                pattern: PressPattern::LongHold,
                press_seq: 2,
            }),
        );
        let mut buf = [0u8; firmware_protocol::MAX_FRAME_LEN];
        let bytes = encode_uplink(&frame, &mut buf).unwrap();
        let text = describe_frame(Direction::Up, &hex::encode(bytes)).unwrap();
        assert!(text.contains("LongHold"), "{text}");
        assert!(text.contains("seq: 300"), "{text}");
        assert!(text.contains("boot: 7"), "{text}");
    }

    #[test]
    fn refusals_carry_the_reason() {
        let err = describe_frame(Direction::Up, "zz").unwrap_err();
        assert!(matches!(err, InspectError::NotHex(_)), "{err}");
        let err = describe_frame(Direction::Up, "09 00 00").unwrap_err();
        assert!(matches!(
            err,
            InspectError::Refused(DecodeError::UnsupportedVersion { found: 9 })
        ));
        assert!(err.to_string().contains("refuse"), "{err}");
    }
}
