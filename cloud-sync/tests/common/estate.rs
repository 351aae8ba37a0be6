//! A small estate for the API tests: region north with schools `north-a` and `north-b`,
//! region south with `south-a`; each school has an enrolled gateway that synced one open
//! alert, a device report and a snapshot; one person per role (the callers) and one viewer
//! per school (the people the user routes act on).

use std::collections::BTreeMap;
use std::time::Duration;

use cloud_sync::auth::Grant;
use cloud_sync::db;
use shared::alert::AlertState;
use shared::ids::{AlertId, SchoolId};

use super::records::{alert_event, health, snapshot};
use super::{Gateway, TestCloud, enroll};

/// The schools, in the order of the matrix's targets: own, same region, other region.
pub(crate) const SCHOOLS: [&str; 3] = ["north-a", "north-b", "south-a"];

/// The callers: one per role; the school roles at `north-a`.
pub(crate) const ROLES: [(&str, &str); 4] = [
    ("superadmin", "super@example.org"),
    ("region_admin", "region@example.org"),
    ("school_admin", "school@example.org"),
    ("viewer", "viewer@example.org"),
];

/// What the estate holds.
pub(crate) struct Estate {
    /// Per school: its gateway.
    pub(crate) gateways: BTreeMap<&'static str, Gateway>,
    /// Per school: its open alert.
    pub(crate) alerts: BTreeMap<&'static str, AlertId>,
    /// Per school: a viewer there.
    pub(crate) targets: BTreeMap<&'static str, uuid::Uuid>,
    /// Per role: an access token.
    pub(crate) tokens: BTreeMap<&'static str, String>,
}

impl TestCloud {
    /// Builds the [`Estate`].
    pub(crate) async fn estate(&self) -> Estate {
        let south = "south".parse().expect("id");
        db::admin::create_region(&self.owner, &south, "South")
            .await
            .expect("region");
        let mut gateways = BTreeMap::new();
        let mut alerts = BTreeMap::new();
        let mut targets = BTreeMap::new();
        for school in SCHOOLS {
            let id: SchoolId = school.parse().expect("school id");
            let gateway = if school.starts_with("south") {
                let token = db::admin::create_school(
                    &self.owner,
                    &south,
                    &id,
                    school,
                    Duration::from_secs(3600),
                )
                .await
                .expect("school");
                enroll(self, token.as_str()).await.expect("enroll")
            } else {
                self.enrolled(school).await
            };
            let alert = AlertId::new();
            gateway
                .send(&gateway.alerts(vec![alert_event(1, alert, AlertState::Triggered)]))
                .await
                .expect("alert synced");
            gateway
                .send(&gateway.telemetry(vec![health(1, "btn-101"), snapshot(2, &id)]))
                .await
                .expect("telemetry synced");
            let target = self
                .user(
                    &format!("viewer-{school}@example.org"),
                    Grant::Viewer(id.clone()),
                )
                .await;
            gateways.insert(school, gateway);
            alerts.insert(school, alert);
            targets.insert(school, target);
        }
        let north_a: SchoolId = "north-a".parse().expect("id");
        let grants = [
            Grant::Superadmin,
            Grant::RegionAdmin("north".parse().expect("id")),
            Grant::SchoolAdmin(north_a.clone()),
            Grant::Viewer(north_a),
        ];
        let mut tokens = BTreeMap::new();
        for ((role, email), grant) in ROLES.into_iter().zip(grants) {
            self.user(email, grant).await;
            tokens.insert(role, self.logged_in(email).await.access);
        }
        Estate {
            gateways,
            alerts,
            targets,
            tokens,
        }
    }
}
