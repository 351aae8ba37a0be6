//! The request mix, roughly as region dashboards drive it: 85 % reads (the school tiles, a
//! school's page, alert lists with filters and second pages, an alert's history, devices,
//! snapshot history, statistics, the audit page) and 15 % writes (notes, acknowledge and
//! resolve requests, a person added or disabled now and then). Each request carries the
//! status it must get.

use std::collections::BTreeMap;
use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use shared::ids::{AlertId, SchoolId};

use crate::estate::{Estate, PASSWORD, Session};

/// One request to make.
pub(crate) struct Request {
    /// What it is, for the per-endpoint lines.
    pub(crate) endpoint: &'static str,
    pub(crate) write: bool,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) body: Option<Value>,
    pub(crate) bearer: Arc<str>,
    /// The status it must be answered with.
    pub(crate) expect: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Me,
    Schools,
    School,
    Rooms,
    Devices,
    DevicesPage2,
    DevicesOffline,
    Snapshots,
    SnapshotsPage2,
    Alerts,
    AlertsOpen,
    AlertsOfSchool,
    AlertsPage2,
    AlertsKindSince,
    Alert,
    Statistics,
    Audit,
    Note,
    Acknowledge,
    ResolveOpen,
    ResolveClosed,
    CreateUser,
    DisableUser,
}

/// Weights per 1,000 requests: 850 reads, 150 writes.
const MIX: [(Kind, u32); 23] = [
    (Kind::Me, 30),
    (Kind::Schools, 130),
    (Kind::School, 100),
    (Kind::Rooms, 40),
    (Kind::Devices, 50),
    (Kind::DevicesPage2, 20),
    (Kind::DevicesOffline, 20),
    (Kind::Snapshots, 60),
    (Kind::SnapshotsPage2, 20),
    (Kind::Alerts, 80),
    (Kind::AlertsOpen, 40),
    (Kind::AlertsOfSchool, 50),
    (Kind::AlertsPage2, 30),
    (Kind::AlertsKindSince, 20),
    (Kind::Alert, 100),
    (Kind::Statistics, 30),
    (Kind::Audit, 30),
    (Kind::Note, 80),
    (Kind::Acknowledge, 40),
    (Kind::ResolveOpen, 10),
    (Kind::ResolveClosed, 10),
    (Kind::CreateUser, 5),
    (Kind::DisableUser, 5),
];

impl Kind {
    fn is_write(self) -> bool {
        matches!(
            self,
            Kind::Note
                | Kind::Acknowledge
                | Kind::ResolveOpen
                | Kind::ResolveClosed
                | Kind::CreateUser
                | Kind::DisableUser
        )
    }

    /// Viewers read; everything else is for the other roles.
    fn viewer_may(self) -> bool {
        !self.is_write() && self != Kind::Audit
    }
}

/// Draws requests from the mix. Deterministic for a seed.
pub(crate) struct Mix {
    estate: Estate,
    closed: BTreeMap<SchoolId, Vec<AlertId>>,
    disposable: BTreeMap<SchoolId, Vec<uuid::Uuid>>,
    rng: u64,
    created: u64,
}

impl Mix {
    pub(crate) fn new(estate: Estate, seed: u64) -> Mix {
        assert_eq!(MIX.iter().map(|m| m.1).sum::<u32>(), 1000);
        let closed = estate
            .alerts
            .iter()
            .map(|(school, all)| {
                let open = &estate.open[school];
                let closed = all.iter().filter(|a| !open.contains(a)).copied().collect();
                (school.clone(), closed)
            })
            .collect();
        let disposable = estate.disposable.clone();
        Mix {
            estate,
            closed,
            disposable,
            rng: seed,
            created: 0,
        }
    }

    /// SplitMix64.
    fn next(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// The next request.
    pub(crate) fn draw(&mut self) -> Request {
        let mut roll = (self.next() % 1000) as u32;
        let mut kind = Kind::Me;
        for (k, weight) in MIX {
            if roll < weight {
                kind = k;
                break;
            }
            roll -= weight;
        }
        let allowed: Vec<usize> = (0..self.estate.sessions.len())
            .filter(|&i| kind.viewer_may() || self.estate.sessions[i].role != "viewer")
            .collect();
        let session = *self.pick(&allowed);
        let s: &Session = &self.estate.sessions[session];
        let (bearer, region, alert_cursor) = (s.bearer.clone(), s.region, s.alert_cursor.clone());
        let schools = s.schools.clone();
        let school = self.pick(&schools).clone();
        let get = |endpoint, path: String| (endpoint, Method::GET, path, None, 200);
        let (endpoint, method, path, body, expect) = match kind {
            Kind::Me => get("me", "/api/v1/me".to_owned()),
            Kind::Schools => match region {
                Some(region) => get(
                    "schools",
                    format!("/api/v1/schools?region_id={region}&limit=50"),
                ),
                None => get("schools", "/api/v1/schools?limit=50".to_owned()),
            },
            Kind::School => get("school", format!("/api/v1/schools/{school}")),
            Kind::Rooms => get("rooms", format!("/api/v1/schools/{school}/rooms")),
            Kind::Devices => get(
                "devices",
                format!("/api/v1/schools/{school}/devices?limit=50"),
            ),
            Kind::DevicesPage2 => get(
                "devices_page2",
                format!(
                    "/api/v1/schools/{school}/devices?limit=20&cursor={}",
                    self.estate.device_cursor[&school]
                ),
            ),
            Kind::DevicesOffline => get(
                "devices_offline",
                format!("/api/v1/schools/{school}/devices?status=offline"),
            ),
            Kind::Snapshots => get(
                "snapshots",
                format!("/api/v1/schools/{school}/snapshots?limit=100"),
            ),
            Kind::SnapshotsPage2 => get(
                "snapshots_page2",
                format!(
                    "/api/v1/schools/{school}/snapshots?limit=100&cursor={}",
                    self.estate.snapshot_cursor[&school]
                ),
            ),
            Kind::Alerts => get("alerts", "/api/v1/alerts?limit=50".to_owned()),
            Kind::AlertsOpen => get(
                "alerts_open",
                "/api/v1/alerts?state=triggered&limit=50".to_owned(),
            ),
            Kind::AlertsOfSchool => get(
                "alerts_school",
                format!("/api/v1/alerts?school_id={school}&limit=50"),
            ),
            Kind::AlertsPage2 => {
                let cursor = alert_cursor.expect("every session has a second page of alerts");
                get(
                    "alerts_page2",
                    format!("/api/v1/alerts?limit=20&cursor={cursor}"),
                )
            }
            Kind::AlertsKindSince => {
                let since = chrono::Utc::now() - chrono::Duration::hours(12);
                let since = since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                get(
                    "alerts_kind_since",
                    format!("/api/v1/alerts?kind=fire&from={since}&limit=50"),
                )
            }
            Kind::Alert => {
                let alert = *self.pick(&self.estate.alerts[&school].clone());
                get("alert", format!("/api/v1/alerts/{alert}"))
            }
            Kind::Statistics => get("statistics", "/api/v1/alerts/statistics".to_owned()),
            Kind::Audit => get("audit", "/api/v1/audit?limit=50".to_owned()),
            Kind::Note => {
                let alert = *self.pick(&self.estate.alerts[&school].clone());
                let body =
                    json!({ "body": "Spoke to the teacher in the room; follow-up at noon." });
                (
                    "note",
                    Method::POST,
                    format!("/api/v1/alerts/{alert}/notes"),
                    Some(body),
                    201,
                )
            }
            Kind::Acknowledge | Kind::ResolveOpen => {
                let alert = *self.pick(&self.estate.open[&school].clone());
                let (endpoint, action) = if kind == Kind::Acknowledge {
                    ("acknowledge", "acknowledge")
                } else {
                    ("resolve_open", "resolve")
                };
                (
                    endpoint,
                    Method::POST,
                    format!("/api/v1/alerts/{alert}/{action}"),
                    None,
                    202,
                )
            }
            Kind::ResolveClosed => {
                let alert = *self.pick(&self.closed[&school].clone());
                (
                    "resolve_closed",
                    Method::POST,
                    format!("/api/v1/alerts/{alert}/resolve"),
                    None,
                    409,
                )
            }
            Kind::CreateUser => {
                self.created += 1;
                let body = json!({
                    "email": format!("load-{}-{}@{school}.example", std::process::id(), self.created),
                    "password": PASSWORD,
                    "role": "viewer",
                    "school_id": school,
                });
                (
                    "create_user",
                    Method::POST,
                    "/api/v1/users".to_owned(),
                    Some(body),
                    201,
                )
            }
            Kind::DisableUser => {
                // The drawn school first, so the pools drain evenly.
                let user = std::iter::once(&school)
                    .chain(&schools)
                    .find_map(|s| self.disposable.get_mut(s).and_then(Vec::pop))
                    .unwrap_or_else(|| {
                        panic!(
                            "no viewer left to disable at {schools:?} (raise \
                             DISPOSABLE_PER_SCHOOL); left: {:?}",
                            self.disposable.values().map(Vec::len).collect::<Vec<_>>()
                        )
                    });
                (
                    "disable_user",
                    Method::DELETE,
                    format!("/api/v1/users/{user}"),
                    None,
                    204,
                )
            }
        };
        Request {
            endpoint,
            write: kind.is_write(),
            method,
            path,
            body,
            bearer,
            expect,
        }
    }
}
