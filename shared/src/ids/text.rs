//! Human-assigned identifiers: schools, regions, gateways and devices.
//!
//! They appear in MQTT topics (`hallwatch/<device>/...`), file names, URLs and SQL, so the
//! alphabet is the intersection that is safe everywhere: ASCII letters, digits, `-` and `_`.
//! That rules out the MQTT wildcards `+` and `#`, the level separator `/` and the `$` prefix
//! of broker-internal topics without having to list them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use super::error::{IdError, IdErrorReason, IdKind};

/// Defines one validated string id type. The four types differ only in kind and maximum length.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            /// The longest id allowed, in bytes.
            pub const MAX_LEN: usize = $max;

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned `String`, without copying.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(s: String) -> Result<Self, IdError> {
                validate($kind, &s, $max)?;
                Ok(Self(s))
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;

            fn try_from(s: &str) -> Result<Self, IdError> {
                validate($kind, s, $max)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::try_from(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        // Serialized as a plain string; written by hand to avoid the clone `into = "String"`
        // would make.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A school (one tenant of the cloud service; one gateway per school).
    SchoolId,
    IdKind::School,
    64
);
text_id!(
    /// A region grouping schools, for district-level dashboards.
    RegionId,
    IdKind::Region,
    64
);
text_id!(
    /// A gateway: the on-premises box that runs the edge agent for one school.
    GatewayId,
    IdKind::Gateway,
    64
);
text_id!(
    /// A device (panic button, sensor). At most 32 bytes, the firmware's topic limit.
    DeviceId,
    IdKind::Device,
    32
);

fn validate(kind: IdKind, s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::new(kind, IdErrorReason::Empty));
    }
    if s.len() > max {
        return Err(IdError::new(
            kind,
            IdErrorReason::TooLong { len: s.len(), max },
        ));
    }
    match s.char_indices().find(|&(_, c)| !is_id_char(c)) {
        Some((at, ch)) => Err(IdError::new(kind, IdErrorReason::InvalidChar { ch, at })),
        None => Ok(()),
    }
}

const fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet_up_to_the_limit() {
        for ok in ["a", "school-01", "Gym_Door_3", &"x".repeat(64)] {
            assert_eq!(ok.parse::<SchoolId>().unwrap().as_str(), ok);
        }
        assert!(DeviceId::try_from("d".repeat(32)).is_ok());
    }

    #[test]
    fn rejects_empty_and_too_long_with_the_kind() {
        let err = "".parse::<RegionId>().unwrap_err();
        assert_eq!(err, IdError::new(IdKind::Region, IdErrorReason::Empty));
        let err = DeviceId::try_from("d".repeat(33)).unwrap_err();
        assert_eq!(err.reason, IdErrorReason::TooLong { len: 33, max: 32 });
        assert_eq!(
            err.to_string(),
            "invalid device id: it is 33 bytes long, at most 32 are allowed"
        );
        assert!(GatewayId::try_from("g".repeat(65)).is_err());
    }

    #[test]
    fn rejects_mqtt_wildcards_separators_and_non_ascii() {
        for (bad, ch, at) in [
            ("a+b", '+', 1),
            ("#", '#', 0),
            ("room/1", '/', 4),
            ("$SYS", '$', 0),
            ("a b", ' ', 1),
            ("é", 'é', 0),
            ("a.b", '.', 1),
        ] {
            let err = bad.parse::<DeviceId>().unwrap_err();
            assert_eq!(err.kind, IdKind::Device);
            assert_eq!(err.reason, IdErrorReason::InvalidChar { ch, at }, "{bad}");
        }
    }

    #[test]
    fn deserializing_validates() {
        let bytes = postcard::to_allocvec("bad/id").unwrap();
        assert!(postcard::from_bytes::<GatewayId>(&bytes).is_err());
        let id: GatewayId = "gw-7".parse().unwrap();
        let bytes = postcard::to_allocvec(&id).unwrap();
        assert_eq!(bytes, postcard::to_allocvec("gw-7").unwrap());
        assert_eq!(postcard::from_bytes::<GatewayId>(&bytes).unwrap(), id);
    }
}
