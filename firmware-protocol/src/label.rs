//! [`Label`]: a short, validated, inline string for room codes, so frames that carry text stay
//! `Copy` and decoding never allocates.

use core::fmt;

use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};
use serde::{Serialize, Serializer};

/// A room code such as `B-204` or `Gym North`: 1 to [`Label::MAX_LEN`] bytes of ASCII letters,
/// digits, `-`, `_`, `.` and space.
///
/// The character set is deliberately narrow: room codes end up in dashboards, logs and alert
/// messages, and an ASCII-only label cannot smuggle control characters, look-alike Unicode or
/// markup into any of them. On the wire it is a postcard string (varint length, then the bytes).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Label {
    // Bytes past `len` are always zero, which keeps the derived `Eq` and `Hash` consistent with
    // comparing the strings.
    bytes: [u8; Label::MAX_LEN],
    len: u8,
}

/// Why a string is not a valid [`Label`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelError {
    /// The string is empty.
    Empty,
    /// The string is longer than [`Label::MAX_LEN`] bytes.
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The byte at `index` is not an ASCII letter, digit, `-`, `_`, `.` or space.
    InvalidChar {
        /// Byte offset of the first offending character.
        index: usize,
    },
}

impl Label {
    /// The longest label, in bytes.
    pub const MAX_LEN: usize = 32;

    /// Checks `s` against the label rules and stores it inline.
    pub fn new(s: &str) -> Result<Label, LabelError> {
        let src = s.as_bytes();
        if src.is_empty() {
            return Err(LabelError::Empty);
        }
        if src.len() > Label::MAX_LEN {
            return Err(LabelError::TooLong { len: src.len() });
        }
        if let Some(index) = src.iter().position(|&b| !is_label_byte(b)) {
            return Err(LabelError::InvalidChar { index });
        }
        let mut bytes = [0; Label::MAX_LEN];
        bytes[..src.len()].copy_from_slice(src);
        // Cannot truncate: the length was checked against MAX_LEN (32) above.
        let len = src.len() as u8;
        Ok(Label { bytes, len })
    }

    /// The label as a string slice.
    pub fn as_str(&self) -> &str {
        let stored = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        // `new` admits ASCII only, so this never fails; falling back to "" keeps the accessor
        // panic-free without reaching for `unsafe`.
        core::str::from_utf8(stored).unwrap_or_default()
    }
}

fn is_label_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b' ')
}

impl LabelError {
    /// A short, fixed explanation, used as the `reason` of a decode or encode error.
    pub const fn reason(&self) -> &'static str {
        match self {
            LabelError::Empty => "must not be empty",
            LabelError::TooLong { .. } => "must be at most 32 bytes",
            LabelError::InvalidChar { .. } => {
                "may contain only ASCII letters, digits, '-', '_', '.' and space"
            }
        }
    }
}

impl fmt::Display for LabelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelError::Empty => f.write_str("label is empty"),
            LabelError::TooLong { len } => {
                write!(
                    f,
                    "label is {len} bytes long, the limit is {}",
                    Label::MAX_LEN
                )
            }
            LabelError::InvalidChar { index } => write!(
                f,
                "label has a character at byte {index} that is not an ASCII letter, digit, '-', \
                 '_', '.' or space"
            ),
        }
    }
}

impl core::error::Error for LabelError {}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` rather than `write_str` so width and alignment flags work in tables and logs.
        f.pad(self.as_str())
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl TryFrom<&str> for Label {
    type Error = LabelError;

    fn try_from(s: &str) -> Result<Label, LabelError> {
        Label::new(s)
    }
}

impl AsRef<str> for Label {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

// === impl Serialize, Deserialize ===

impl Serialize for Label {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Label, D::Error> {
        deserializer.deserialize_str(LabelVisitor)
    }
}

struct LabelVisitor;

impl Visitor<'_> for LabelVisitor {
    type Value = Label;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("1 to 32 ASCII letters, digits, '-', '_', '.' or spaces")
    }

    // Serde's default `visit_borrowed_str` (what postcard calls) forwards here, so borrowed and
    // transient strings get the same validation.
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Label, E> {
        Label::new(v).map_err(|_| E::invalid_value(Unexpected::Str(v), &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_bytes_stay_zero_so_eq_matches_the_string() {
        let a = Label::new("B-204").unwrap();
        assert_eq!(&a.bytes[5..], &[0; 27]);
        assert_eq!(a, Label::new("B-204").unwrap());
        assert_ne!(a, Label::new("B-2040").unwrap());
    }
}
