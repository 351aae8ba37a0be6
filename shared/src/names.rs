//! Stable text names for the crate's small enums.
//!
//! The wire format encodes enums by variant index, but the stores (SQLite on the gateway,
//! Postgres in the cloud), logs and dashboards use text. One macro gives every enum the same
//! `ALL`, `as_str`, `Display` and `FromStr`, so the text names are written down exactly once and
//! a round-trip test can cover all of them.

use thiserror::Error;

/// A text name that matches no variant of the enum it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown {what} {name:?}")]
pub struct UnknownName {
    /// What was being parsed, e.g. "alert state".
    pub what: &'static str,
    /// The text that did not match.
    pub name: String,
}

/// Implements `ALL`, `as_str`, `Display` and `FromStr` for a fieldless enum.
///
/// The names are lowercase snake case and, like the variants themselves, never change once
/// released: they are stored in databases.
macro_rules! impl_names {
    ($ty:ident, $what:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in declaration (and wire) order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stable text name used in stores, logs and APIs.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::names::UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    _ => Err($crate::names::UnknownName { what: $what, name: s.to_owned() }),
                }
            }
        }
    };
}

pub(crate) use impl_names;
