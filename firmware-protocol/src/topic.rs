//! The MQTT topic scheme. A device publishes to `d/{device_id}/up` and subscribes to
//! `d/{device_id}/down`; nothing else is open to a device. The gateway's broker enforces that
//! with [`parse_device_topic`], so the parser accepts exact topics only, never wildcards.

use core::fmt;

/// The topic a device publishes its [`UplinkFrame`](crate::UplinkFrame)s to.
pub const UP_TOPIC_TEMPLATE: &str = "d/{device_id}/up";

/// The topic a device subscribes to for [`DownlinkFrame`](crate::DownlinkFrame)s.
pub const DOWN_TOPIC_TEMPLATE: &str = "d/{device_id}/down";

/// The longest device id, in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 32;

/// The longest device topic, in bytes (`d/` + id + `/down`): the buffer a firmware needs for
/// [`write_device_topic`].
pub const MAX_TOPIC_LEN: usize = 2 + MAX_DEVICE_ID_LEN + 5;

/// Which way a device topic carries frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `d/{device_id}/up`: device to gateway, [`Uplink`](crate::Uplink) frames.
    Up,
    /// `d/{device_id}/down`: gateway to device, [`Downlink`](crate::Downlink) frames.
    Down,
}

/// Why a topic could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicError {
    /// The device id breaks the rules of [`is_valid_device_id`].
    InvalidDeviceId,
    /// The writer refused the text (typically a fixed-size buffer that is full).
    Write,
}

impl Direction {
    /// The last topic level: `up` or `down`.
    pub const fn suffix(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    /// The topic template for this direction.
    pub const fn template(self) -> &'static str {
        match self {
            Direction::Up => UP_TOPIC_TEMPLATE,
            Direction::Down => DOWN_TOPIC_TEMPLATE,
        }
    }
}

/// Whether `id` may name a device: 1 to [`MAX_DEVICE_ID_LEN`] bytes of ASCII letters, digits,
/// `-` and `_`.
///
/// The allow-list keeps out everything MQTT gives meaning to: the wildcards `+` and `#`, the
/// level separator `/`, and `$`, which starts broker-internal topics such as `$SYS`.
pub fn is_valid_device_id(id: &str) -> bool {
    (1..=MAX_DEVICE_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits an exact device topic into its device id and direction.
///
/// Returns `None` for anything else: other prefixes, extra levels (`d/x/up/extra`), wildcards
/// (`d/+/up`, `d/#`), or an invalid device id.
pub fn parse_device_topic(topic: &str) -> Option<(&str, Direction)> {
    let rest = topic.strip_prefix("d/")?;
    let (id, suffix) = rest.split_once('/')?;
    let direction = match suffix {
        "up" => Direction::Up,
        "down" => Direction::Down,
        _ => return None,
    };
    is_valid_device_id(id).then_some((id, direction))
}

/// Writes the topic for `device_id` and `direction` without allocating, e.g. into a
/// fixed-size buffer of [`MAX_TOPIC_LEN`] bytes.
pub fn write_device_topic(
    out: &mut impl fmt::Write,
    device_id: &str,
    direction: Direction,
) -> Result<(), TopicError> {
    if !is_valid_device_id(device_id) {
        return Err(TopicError::InvalidDeviceId);
    }
    write!(out, "d/{device_id}/{}", direction.suffix()).map_err(|_| TopicError::Write)
}

/// `d/{device_id}/up`, or an error if `device_id` is not a valid device id.
#[cfg(feature = "std")]
pub fn up_topic(device_id: &str) -> Result<std::string::String, TopicError> {
    topic_string(device_id, Direction::Up)
}

/// `d/{device_id}/down`, or an error if `device_id` is not a valid device id.
#[cfg(feature = "std")]
pub fn down_topic(device_id: &str) -> Result<std::string::String, TopicError> {
    topic_string(device_id, Direction::Down)
}

#[cfg(feature = "std")]
fn topic_string(device_id: &str, direction: Direction) -> Result<std::string::String, TopicError> {
    let mut topic = std::string::String::with_capacity(MAX_TOPIC_LEN);
    write_device_topic(&mut topic, device_id, direction)?;
    Ok(topic)
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.suffix())
    }
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::InvalidDeviceId => {
                f.write_str("device id must be 1 to 32 bytes of ASCII letters, digits, '-' and '_'")
            }
            TopicError::Write => f.write_str("could not write the topic (buffer full?)"),
        }
    }
}

impl core::error::Error for TopicError {}
