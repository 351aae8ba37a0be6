//! [`Email`], [`Password`], [`Role`] and [`Grant`]: an account's parts, validated where they
//! enter (the command line, a login request, a database row).

use std::fmt;
use std::str::FromStr;

use shared::ids::{RegionId, SchoolId};
use thiserror::Error;

/// An e-mail address, lower-cased: the login name. Only its shape is checked (one `@`, a
/// local part, a dotted domain, no spaces or control characters, at most 254 bytes); whether
/// it receives mail is not the cloud's business.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// The longest address (RFC 5321's path limit less the angle brackets).
    pub const MAX_LEN: usize = 254;

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Email {
    type Err = GrantError;

    fn from_str(s: &str) -> Result<Self, GrantError> {
        let s = s.trim().to_lowercase();
        let bad = || GrantError::Email(s.clone());
        if s.len() > Self::MAX_LEN || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.split_once('@').ok_or_else(bad)?;
        let labels_ok = domain.split('.').all(|label| !label.is_empty());
        if local.is_empty() || domain.contains('@') || !domain.contains('.') || !labels_ok {
            return Err(bad());
        }
        Ok(Self(s))
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password: at least [`Password::MIN_CHARS`] characters, at most
/// [`Password::MAX_BYTES`] bytes, one line. Never printed.
pub struct Password(String);

impl Password {
    /// The shortest password accepted for a new account.
    pub const MIN_CHARS: usize = 12;
    /// The longest, so that hashing stays bounded.
    pub const MAX_BYTES: usize = 1024;

    /// The password's text, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Password {
    type Error = GrantError;

    fn try_from(s: String) -> Result<Self, GrantError> {
        if s.contains(['\n', '\r']) {
            return Err(GrantError::PasswordLines);
        }
        if s.chars().count() < Self::MIN_CHARS || s.len() > Self::MAX_BYTES {
            return Err(GrantError::PasswordLength);
        }
        Ok(Self(s))
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// What a user may do, from the platform down to one school.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// The platform operator: every school.
    Superadmin,
    /// The schools of a region.
    RegionAdmin,
    /// One school.
    SchoolAdmin,
    /// One school, read-only.
    Viewer,
}

impl Role {
    /// The name used on the command line, in the database and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Superadmin => "superadmin",
            Self::RegionAdmin => "region_admin",
            Self::SchoolAdmin => "school_admin",
            Self::Viewer => "viewer",
        }
    }
}

impl FromStr for Role {
    type Err = GrantError;

    fn from_str(s: &str) -> Result<Self, GrantError> {
        match s {
            "superadmin" => Ok(Self::Superadmin),
            "region_admin" => Ok(Self::RegionAdmin),
            "school_admin" => Ok(Self::SchoolAdmin),
            "viewer" => Ok(Self::Viewer),
            other => Err(GrantError::Role(other.to_owned())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role with what it applies to: only the combinations the `role_grants` table allows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Grant {
    /// Every school.
    Superadmin,
    /// The schools of one region.
    RegionAdmin(RegionId),
    /// One school.
    SchoolAdmin(SchoolId),
    /// One school, read-only.
    Viewer(SchoolId),
}

impl Grant {
    /// The grant for `role`, refusing a region or school that the role does not take and
    /// requiring the one it does.
    pub fn new(
        role: Role,
        region: Option<RegionId>,
        school: Option<SchoolId>,
    ) -> Result<Self, GrantError> {
        match (role, region, school) {
            (Role::Superadmin, None, None) => Ok(Self::Superadmin),
            (Role::RegionAdmin, Some(region), None) => Ok(Self::RegionAdmin(region)),
            (Role::SchoolAdmin, None, Some(school)) => Ok(Self::SchoolAdmin(school)),
            (Role::Viewer, None, Some(school)) => Ok(Self::Viewer(school)),
            (Role::RegionAdmin, None, _) => Err(GrantError::NeedsRegion),
            (Role::RegionAdmin, Some(_), Some(_)) => {
                Err(GrantError::SchoolNotAllowed(Role::RegionAdmin))
            }
            (Role::SchoolAdmin | Role::Viewer, _, None) => Err(GrantError::NeedsSchool(role)),
            (role, Some(_), _) => Err(GrantError::RegionNotAllowed(role)),
            (role, _, Some(_)) => Err(GrantError::SchoolNotAllowed(role)),
        }
    }

    /// The role.
    pub fn role(&self) -> Role {
        match self {
            Self::Superadmin => Role::Superadmin,
            Self::RegionAdmin(_) => Role::RegionAdmin,
            Self::SchoolAdmin(_) => Role::SchoolAdmin,
            Self::Viewer(_) => Role::Viewer,
        }
    }

    /// The region, for a region admin.
    pub fn region(&self) -> Option<&RegionId> {
        match self {
            Self::RegionAdmin(region) => Some(region),
            _ => None,
        }
    }

    /// The school, for a school admin or viewer.
    pub fn school(&self) -> Option<&SchoolId> {
        match self {
            Self::SchoolAdmin(school) | Self::Viewer(school) => Some(school),
            _ => None,
        }
    }
}

/// A refused account or grant.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum GrantError {
    /// Not an e-mail address.
    #[error("{0:?} is not an e-mail address")]
    Email(String),
    /// The password is too short or too long.
    #[error(
        "the password must have at least {} characters (and at most {} bytes)",
        Password::MIN_CHARS,
        Password::MAX_BYTES
    )]
    PasswordLength,
    /// The password spans several lines.
    #[error("the password must be one line")]
    PasswordLines,
    /// Not a role.
    #[error("{0:?} is not a role (superadmin, region_admin, school_admin, viewer)")]
    Role(String),
    /// A region admin without a region.
    #[error("region_admin needs --region")]
    NeedsRegion,
    /// A school role without a school.
    #[error("{0} needs --school")]
    NeedsSchool(Role),
    /// A region given to a role that has none.
    #[error("--region is only for region_admin, not {0}")]
    RegionNotAllowed(Role),
    /// A school given to a role that has none.
    #[error("--school is only for school_admin and viewer, not {0}")]
    SchoolNotAllowed(Role),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_lower_cased_and_shaped() {
        let email: Email = " Ann.Lee@Example.ORG ".parse().unwrap();
        assert_eq!(email.as_str(), "ann.lee@example.org");
        for bad in [
            "",
            "ann",
            "ann@",
            "@example.org",
            "ann@example",
            "ann@@example.org",
            "ann@example..org",
            "ann lee@example.org",
            "ann@example.org.",
        ] {
            assert!(bad.parse::<Email>().is_err(), "{bad:?}");
        }
        assert!(
            format!("{}@example.org", "a".repeat(250))
                .parse::<Email>()
                .is_err()
        );
    }

    #[test]
    fn passwords_are_one_line_of_twelve_characters_or_more() {
        assert!(Password::try_from("correct horse".to_owned()).is_ok());
        // Characters, not bytes: twelve accented letters are twelve.
        assert!(Password::try_from("é".repeat(12)).is_ok());
        assert_eq!(
            Password::try_from("short".to_owned()).unwrap_err(),
            GrantError::PasswordLength
        );
        assert_eq!(
            Password::try_from("first line\nsecond line".to_owned()).unwrap_err(),
            GrantError::PasswordLines
        );
        assert!(Password::try_from("x".repeat(1025)).is_err());
        assert_eq!(
            format!(
                "{:?}",
                Password::try_from("correct horse".to_owned()).unwrap()
            ),
            "Password(..)"
        );
    }

    #[test]
    fn grants_take_exactly_what_their_role_needs() {
        let region: RegionId = "north".parse().unwrap();
        let school: SchoolId = "lincoln".parse().unwrap();
        assert_eq!(
            Grant::new(Role::Superadmin, None, None),
            Ok(Grant::Superadmin)
        );
        assert!(Grant::new(Role::RegionAdmin, Some(region.clone()), None).is_ok());
        assert!(Grant::new(Role::SchoolAdmin, None, Some(school.clone())).is_ok());
        assert!(Grant::new(Role::Viewer, None, Some(school.clone())).is_ok());
        let refusals = [
            (Role::Superadmin, Some(region.clone()), None),
            (Role::Superadmin, None, Some(school.clone())),
            (Role::RegionAdmin, None, None),
            (
                Role::RegionAdmin,
                Some(region.clone()),
                Some(school.clone()),
            ),
            (Role::SchoolAdmin, None, None),
            (
                Role::SchoolAdmin,
                Some(region.clone()),
                Some(school.clone()),
            ),
            (Role::Viewer, Some(region.clone()), None),
        ];
        for (role, region, school) in refusals {
            assert!(
                Grant::new(role, region.clone(), school.clone()).is_err(),
                "{role} {region:?} {school:?}"
            );
        }
        for role in ["superadmin", "region_admin", "school_admin", "viewer"] {
            assert_eq!(role.parse::<Role>().unwrap().as_str(), role);
        }
        assert!("admin".parse::<Role>().is_err());
    }
}
