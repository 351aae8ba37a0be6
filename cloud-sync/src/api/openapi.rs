//! The people-facing routes and their OpenAPI document, built together: each handler is
//! registered with `utoipa_axum::routes!`, which takes its path and method from the
//! handler's `#[utoipa::path]`, so a route cannot exist without its documentation (and the
//! authorization matrix test, which walks the document, cannot miss it).

use utoipa::openapi::OpenApi as Document;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{AppState, alerts, audit, auth, directory, me, realtime, totp, users};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Hallwatch cloud API",
        version = "1",
        description = "Role-scoped access to schools, alerts and people. Authenticate with \
            POST /api/v1/auth/login and send the access token as `Authorization: Bearer`. \
            Objects outside the caller's scope answer 404, exactly as missing ones do."
    ),
    modifiers(&Bearer),
    tags(
        (name = "auth", description = "Sessions"),
        (name = "estate", description = "Regions, schools, rooms, devices, snapshots"),
        (name = "alerts", description = "Alerts and the actions people ask schools to take"),
        (name = "users", description = "People, managed within a scope"),
        (name = "audit", description = "Who did what"),
        (name = "realtime", description = "Live events (Server-Sent Events)")
    )
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every documented route of the public listener.
pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(me::me))
        .routes(routes!(totp::start))
        .routes(routes!(totp::confirm))
        .routes(routes!(totp::disable))
        .routes(routes!(directory::regions))
        .routes(routes!(directory::region))
        .routes(routes!(directory::schools))
        .routes(routes!(directory::school))
        .routes(routes!(directory::rooms))
        .routes(routes!(directory::devices))
        .routes(routes!(directory::snapshots))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::statistics))
        .routes(routes!(alerts::export))
        .routes(routes!(alerts::detail))
        .routes(routes!(alerts::acknowledge))
        .routes(routes!(alerts::resolve))
        .routes(routes!(alerts::add_note))
        .routes(routes!(users::list, users::create))
        .routes(routes!(users::get, users::disable))
        .routes(routes!(audit::list))
        .routes(routes!(realtime::events))
}

/// The OpenAPI document of the public listener.
pub fn document() -> Document {
    router().into_openapi()
}
