//! The one error type for every identifier: which kind was rejected and why.

use std::fmt;

use thiserror::Error;

/// An identifier that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {kind} id: {reason}")]
pub struct IdError {
    /// Which kind of id was being parsed.
    pub kind: IdKind,
    /// What was wrong with it.
    pub reason: IdErrorReason,
}

/// The kinds of identifier, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// [`crate::ids::SchoolId`].
    School,
    /// [`crate::ids::RegionId`].
    Region,
    /// [`crate::ids::GatewayId`].
    Gateway,
    /// [`crate::ids::DeviceId`].
    Device,
    /// [`crate::ids::AlertId`].
    Alert,
    /// [`crate::ids::CommandId`].
    Command,
}

/// Why an identifier was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdErrorReason {
    /// The id has no characters.
    #[error("it is empty")]
    Empty,
    /// The id is longer than its kind allows.
    #[error("it is {len} bytes long, at most {max} are allowed")]
    TooLong {
        /// Length in bytes.
        len: usize,
        /// The limit for this kind.
        max: usize,
    },
    /// The id contains a character outside ASCII letters, digits, `-` and `_`.
    #[error(
        "character {ch:?} at byte {at} is not allowed (only ASCII letters, digits, '-' and '_')"
    )]
    InvalidChar {
        /// The offending character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// The text is not a UUID.
    #[error("it is not a UUID")]
    NotUuid,
    /// The UUID has the wrong version.
    #[error("it is a version {found} UUID, version {expected} is required")]
    WrongUuidVersion {
        /// The version found.
        found: usize,
        /// The version required.
        expected: usize,
    },
}

impl IdError {
    pub(crate) const fn new(kind: IdKind, reason: IdErrorReason) -> Self {
        Self { kind, reason }
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::School => "school",
            Self::Region => "region",
            Self::Gateway => "gateway",
            Self::Device => "device",
            Self::Alert => "alert",
            Self::Command => "command",
        })
    }
}
