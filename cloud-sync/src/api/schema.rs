//! Schema-only types for the OpenAPI document: the closed sets of names that handlers take as
//! text and parse themselves (so that a wrong name is refused with the handler's own error),
//! documented here as enums so that the document says exactly which names are accepted.
//! Nothing deserializes into these; the tests below hold each list to its parser's.
//!
//! The patterns and bounds of single fields (ids, codes, passwords) are written where the
//! fields are, in their `#[schema(...)]` and `#[param(...)]` attributes (utoipa takes only
//! literals there). An id of a school or region is `^[A-Za-z0-9_-]+$`, 1 to 64 characters
//! (`shared::ids`); a code is six digits, spaces allowed between them, at most 16 characters
//! (`crate::auth::TotpCode`).

// Each enum is only named in `value_type = ...` attributes, which the compiler does not see as
// a use of its variants.
#![allow(dead_code)]

use utoipa::ToSchema;

/// An alert's state (`shared::alert::AlertState`).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub(super) enum AlertStateName {
    Triggered,
    Escalated,
    Acknowledged,
    Resolved,
    Cancelled,
}

/// An alert's kind (`shared::alert::AlertKind`).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub(super) enum AlertKindName {
    Panic,
    Medical,
    Fire,
    Lockdown,
    Intruder,
}

/// A device's reported status (`shared::sync::DeviceStatus`).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub(super) enum DeviceStatusName {
    Online,
    Offline,
    BatteryLow,
    Fault,
}

/// A role a person is granted (`crate::auth::Role`).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub(super) enum RoleName {
    Superadmin,
    RegionAdmin,
    SchoolAdmin,
    Viewer,
}

/// What an export is written as.
#[derive(Debug, ToSchema)]
#[schema(rename_all = "snake_case")]
pub(super) enum ExportFormat {
    Csv,
    Json,
}

#[cfg(test)]
mod tests {
    use shared::alert::{AlertKind, AlertState};
    use shared::sync::DeviceStatus;
    use utoipa::PartialSchema;
    use utoipa::openapi::{RefOr, Schema};

    use super::*;
    use crate::auth::Role;

    /// The names a schema-only enum documents.
    fn names<T: PartialSchema>() -> Vec<String> {
        let RefOr::T(Schema::Object(object)) = T::schema() else {
            panic!("not an inline object schema");
        };
        let values = object.enum_values.unwrap_or_default();
        values
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn strings<T: std::fmt::Display>(all: &[T]) -> Vec<String> {
        all.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn each_documented_enum_lists_exactly_what_its_parser_accepts() {
        assert_eq!(names::<AlertStateName>(), strings(AlertState::ALL));
        assert_eq!(names::<AlertKindName>(), strings(AlertKind::ALL));
        assert_eq!(names::<DeviceStatusName>(), strings(DeviceStatus::ALL));
        let roles = [
            Role::Superadmin,
            Role::RegionAdmin,
            Role::SchoolAdmin,
            Role::Viewer,
        ];
        assert_eq!(names::<RoleName>(), strings(&roles));
        for name in names::<RoleName>() {
            assert!(name.parse::<Role>().is_ok(), "{name}");
        }
        assert_eq!(names::<ExportFormat>(), ["csv", "json"]);
    }
}
