//! The estate the load runs against, put in through the paths a real one takes: schools
//! created as `admin create-school` does, gateways enrolled over `POST /api/v1/enroll` and
//! syncing their alerts, devices and a day of snapshots over mTLS, the superadmin made by
//! `cloud-sync admin create-user`, everyone else added through `POST /api/v1/users` and
//! signed in through `POST /api/v1/auth/login`, notes through the API.
//!
//! Buildings, floors and rooms have no path in yet (no API, no sync record), so they are
//! written as the owner, as an operator's import would.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use shared::alert::{Actor, AlertEventKind, AlertKind, AlertState, Severity, Source};
use shared::ids::{AlertId, DeviceId, SchoolId, Seq};
use shared::sync::{AlertEventRecord, DeviceHealthRecord, DeviceStatus, Record, RecordBody};
use shared::{SchoolSnapshot, SnapshotCounts, UnixMillis};
use sqlx::PgPool;

use crate::common::Gateway;
use crate::common::gateway::{key_and_csr, mtls_client, new_epoch};

pub(crate) const REGIONS: [&str; 2] = ["north", "south"];
pub(crate) const SCHOOLS_PER_REGION: usize = 10;
const DEVICES: usize = 50;
const ALERTS_PER_SCHOOL: usize = 24;
/// One in this many alerts is still open when the load starts.
const OPEN_EVERY: usize = 4;
/// A snapshot a minute for a day.
const SNAPSHOTS: i64 = 24 * 60;
/// Users made up front (as the owner, like `admin create-user`) for the load to disable.
pub(crate) const DISPOSABLE_PER_SCHOOL: usize = 40;
pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// What the load needs to know of the estate.
pub(crate) struct Estate {
    /// Every school, with its region.
    pub(crate) schools: Vec<(SchoolId, &'static str)>,
    /// Per school: every alert, and those still open.
    pub(crate) alerts: BTreeMap<SchoolId, Vec<AlertId>>,
    pub(crate) open: BTreeMap<SchoolId, Vec<AlertId>>,
    /// Per school: the cursor of its devices' second page (20 a page) and snapshots' second
    /// page (100 a page).
    pub(crate) device_cursor: BTreeMap<SchoolId, String>,
    pub(crate) snapshot_cursor: BTreeMap<SchoolId, String>,
    /// Per school: viewers nobody signs in as, for the load to disable.
    pub(crate) disposable: BTreeMap<SchoolId, Vec<uuid::Uuid>>,
    /// The signed-in sessions.
    pub(crate) sessions: Vec<Session>,
}

/// A person signed in, as a dashboard tab is.
pub(crate) struct Session {
    pub(crate) role: &'static str,
    pub(crate) bearer: Arc<str>,
    /// The schools in their scope.
    pub(crate) schools: Vec<SchoolId>,
    /// Their region, for a region admin's `?region_id=` filter.
    pub(crate) region: Option<&'static str>,
    /// `next_cursor` of their first page of alerts (20 a page).
    pub(crate) alert_cursor: Option<String>,
}

/// Talks to the cloud's public listener.
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
}

impl Api {
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        expect: u16,
    ) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(status, expect, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn login(&self, email: &str) -> Arc<str> {
        let body = json!({ "email": email, "password": PASSWORD });
        let answer = self
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(body),
                200,
            )
            .await;
        answer["access_token"]
            .as_str()
            .expect("access token")
            .into()
    }
}

/// Builds the estate on a running cloud. `owner` is the database owner's pool, `owner_url`
/// its URL for the CLI, `sync_url` the mTLS listener.
pub(crate) async fn build(
    cloud_bin: &str,
    owner: &PgPool,
    owner_url: &str,
    api: &Api,
    sync_url: &str,
) -> Estate {
    let mut schools = Vec::new();
    for region in REGIONS {
        let id = region.parse().expect("region id");
        cloud_sync::db::admin::create_region(owner, &id, region)
            .await
            .expect("region");
        for n in 0..SCHOOLS_PER_REGION {
            schools.push((
                format!("{region}-{n:02}").parse::<SchoolId>().expect("id"),
                region,
            ));
        }
    }

    // Each school: created (a one-time token), its gateway enrolled and synced.
    let now = now_ms();
    let mut alerts = BTreeMap::new();
    let mut open = BTreeMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (school, region) in &schools {
        let token = cloud_sync::db::admin::create_school(
            owner,
            &region.parse().expect("region"),
            school,
            &format!("School {school}"),
            Duration::from_secs(3600),
        )
        .await
        .expect("school");
        rooms(owner, school).await;
        let gateway = enroll(api, token.as_str(), sync_url).await;
        let school = school.clone();
        tasks.spawn(async move {
            let (all, still_open) = sync_history(&gateway, now).await;
            (school, all, still_open)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (school, all, still_open) = done.expect("gateway task");
        alerts.insert(school.clone(), all);
        open.insert(school, still_open);
    }

    // People: the superadmin through the CLI, the rest through the API.
    let create = Command::new(cloud_bin)
        .args(["admin", "create-user", "--database-url", owner_url])
        .args(["--email", "super@bench.example", "--password-stdin"])
        .args(["--role", "superadmin"])
        .env_remove("DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("cloud-sync admin create-user");
    let mut child = create;
    writeln!(child.stdin.take().expect("stdin"), "{PASSWORD}").expect("password");
    assert!(child.wait().expect("create-user").success(), "create-user");
    let root = api.login("super@bench.example").await;
    let mut people = Vec::new();
    for region in REGIONS {
        for n in 0..2 {
            people.push((
                format!("region-{n}@{region}.example"),
                json!({ "role": "region_admin", "region_id": region }),
            ));
        }
    }
    for (school, _) in &schools {
        for role in ["school_admin", "viewer"] {
            people.push((
                format!("{role}@{school}.example"),
                json!({ "role": role, "school_id": school }),
            ));
        }
    }
    let api = Arc::new(Api {
        base: api.base.clone(),
        http: api.http.clone(),
    });
    let mut adds = tokio::task::JoinSet::new();
    for chunk in people.chunks(8) {
        for (email, grant) in chunk {
            let (api, root) = (api.clone(), root.clone());
            let mut body = grant.clone();
            body["email"] = json!(email);
            body["password"] = json!(PASSWORD);
            adds.spawn(async move {
                api.call(
                    reqwest::Method::POST,
                    "/api/v1/users",
                    Some(&root),
                    Some(body),
                    201,
                )
                .await;
            });
        }
        while let Some(done) = adds.join_next().await {
            done.expect("add user");
        }
    }
    let disposable = disposable(owner, &schools).await;

    // Every alert gets a note, as the people who handled it would leave.
    for (school, ids) in &alerts {
        for alert in ids {
            let body = json!({ "body": format!("Checked on site at {school}; all clear.") });
            let path = format!("/api/v1/alerts/{alert}/notes");
            api.call(reqwest::Method::POST, &path, Some(&root), Some(body), 201)
                .await;
        }
    }

    // Sessions: three per role, logged in as a dashboard does.
    let all: Vec<SchoolId> = schools.iter().map(|s| s.0.clone()).collect();
    let of_region = |region: &str| -> Vec<SchoolId> {
        schools
            .iter()
            .filter(|s| s.1 == region)
            .map(|s| s.0.clone())
            .collect()
    };
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(session(&api, "superadmin", root.clone(), all.clone(), None).await);
    }
    for (email, region) in [
        ("region-0@north.example", "north"),
        ("region-1@north.example", "north"),
        ("region-0@south.example", "south"),
    ] {
        let bearer = api.login(email).await;
        sessions.push(
            session(
                &api,
                "region_admin",
                bearer,
                of_region(region),
                Some(region),
            )
            .await,
        );
    }
    for role in ["school_admin", "viewer"] {
        for school in [&all[0], &all[5], &all[SCHOOLS_PER_REGION + 3]] {
            let bearer = api.login(&format!("{role}@{school}.example")).await;
            sessions.push(session(&api, role, bearer, vec![school.clone()], None).await);
        }
    }

    let mut device_cursor = BTreeMap::new();
    let mut snapshot_cursor = BTreeMap::new();
    for school in &all {
        let page = api
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/schools/{school}/devices?limit=20"),
                Some(&root),
                None,
                200,
            )
            .await;
        device_cursor.insert(school.clone(), cursor(&page));
        let page = api
            .call(
                reqwest::Method::GET,
                &format!("/api/v1/schools/{school}/snapshots?limit=100"),
                Some(&root),
                None,
                200,
            )
            .await;
        snapshot_cursor.insert(school.clone(), cursor(&page));
    }
    Estate {
        schools,
        alerts,
        open,
        device_cursor,
        snapshot_cursor,
        disposable,
        sessions,
    }
}

async fn session(
    api: &Api,
    role: &'static str,
    bearer: Arc<str>,
    schools: Vec<SchoolId>,
    region: Option<&'static str>,
) -> Session {
    let page = api
        .call(
            reqwest::Method::GET,
            "/api/v1/alerts?limit=20",
            Some(&bearer),
            None,
            200,
        )
        .await;
    Session {
        role,
        bearer,
        schools,
        region,
        alert_cursor: page["next_cursor"].as_str().map(str::to_owned),
    }
}

fn cursor(page: &Value) -> String {
    page["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_owned()
}

/// Two buildings of three floors with eight rooms each.
async fn rooms(owner: &PgPool, school: &SchoolId) {
    let mut tx = owner.begin().await.expect("begin");
    sqlx::query("SELECT set_config('hallwatch.all_schools', 'on', true)")
        .execute(&mut *tx)
        .await
        .expect("scope");
    for b in 0..2 {
        let building = uuid::Uuid::now_v7();
        sqlx::query("INSERT INTO buildings (school_id, building_id, name) VALUES ($1, $2, $3)")
            .bind(school.as_str())
            .bind(building)
            .bind(format!("Building {}", ["A", "B"][b]))
            .execute(&mut *tx)
            .await
            .expect("building");
        for f in 0..3 {
            let floor = uuid::Uuid::now_v7();
            sqlx::query(
                "INSERT INTO floors (school_id, floor_id, building_id, floor_number) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(school.as_str())
            .bind(floor)
            .bind(building)
            .bind(f)
            .execute(&mut *tx)
            .await
            .expect("floor");
            for r in 0..8 {
                sqlx::query(
                    "INSERT INTO rooms (school_id, room_id, floor_id, room_number, capacity) \
                     VALUES ($1, $2, $3, $4, 30)",
                )
                .bind(school.as_str())
                .bind(uuid::Uuid::now_v7())
                .bind(floor)
                .bind(format!("{}{}{:02}", ["A", "B"][b], f, r))
                .execute(&mut *tx)
                .await
                .expect("room");
            }
        }
    }
    tx.commit().await.expect("commit");
}

/// `POST /api/v1/enroll` with a CSR of a fresh key; the gateway's mTLS client.
async fn enroll(api: &Api, token: &str, sync_url: &str) -> Gateway {
    let (key, csr) = key_and_csr();
    let body = json!({ "token": token, "csr_pem": csr });
    let answer = api
        .call(
            reqwest::Method::POST,
            "/api/v1/enroll",
            None,
            Some(body),
            200,
        )
        .await;
    let text = |field: &str| answer[field].as_str().expect("field").to_owned();
    let (cert_pem, key_pem, ca_pem) =
        (text("certificate_pem"), key.serialize_pem(), text("ca_pem"));
    Gateway {
        school_id: text("school_id").parse().expect("school id"),
        gateway_id: text("gateway_id").parse().expect("gateway id"),
        client: mtls_client(&cert_pem, &key_pem, &ca_pem),
        cert_pem,
        key_pem,
        ca_pem,
        url: sync_url.to_owned(),
        epoch: new_epoch(),
    }
}

/// What a gateway's day looks like on the sync lanes: alerts raised across the day (most
/// acknowledged and resolved at the school), its devices' health, a snapshot a minute.
/// Returns every alert and those still open.
async fn sync_history(gw: &Gateway, now: i64) -> (Vec<AlertId>, Vec<AlertId>) {
    let kinds = [
        AlertKind::Panic,
        AlertKind::Medical,
        AlertKind::Fire,
        AlertKind::Lockdown,
        AlertKind::Intruder,
    ];
    let mut records = Vec::new();
    let mut all = Vec::new();
    let mut open = Vec::new();
    let mut seq = 0;
    for n in 0..ALERTS_PER_SCHOOL {
        let alert = AlertId::new();
        let device: DeviceId = format!("btn-{:03}", n % 40).parse().expect("device id");
        let opened = now - 86_400_000 + (n as i64) * (86_400_000 / ALERTS_PER_SCHOOL as i64);
        let staff = Actor::new(Source::LocalDashboard, "office");
        let mut steps = vec![(AlertState::Triggered, AlertEventKind::Triggered, 0, None)];
        if n % OPEN_EVERY == 0 {
            open.push(alert);
        } else {
            steps.push((
                AlertState::Acknowledged,
                AlertEventKind::Acknowledged,
                45_000,
                Some(staff.clone()),
            ));
            steps.push((
                AlertState::Resolved,
                AlertEventKind::Resolved,
                600_000,
                Some(staff),
            ));
        }
        for (state, event, after, actor) in steps {
            seq += 1;
            records.push(Record {
                seq: Seq::new(seq),
                at: UnixMillis::new(opened + after),
                body: RecordBody::AlertEvent(AlertEventRecord {
                    alert_id: alert,
                    kind: kinds[n % kinds.len()],
                    severity: Severity::High,
                    state,
                    event,
                    device_id: Some(device.clone()),
                    room: Some(format!("A{}{:02}", n % 3, n % 8)),
                    actor: Some(actor.unwrap_or_else(|| Actor::device(&device))),
                    press_count: 1,
                }),
            });
        }
        all.push(alert);
    }
    gw.send(&gw.alerts(records)).await.expect("alert lane");

    let mut records = Vec::new();
    let mut seq = 0;
    for d in 0..DEVICES {
        seq += 1;
        let (id, status) = match d {
            0..40 => (format!("btn-{d:03}"), DeviceStatus::Online),
            _ => (format!("cam-{:02}", d - 40), DeviceStatus::Online),
        };
        let status = match d % 17 {
            3 => DeviceStatus::Offline,
            7 => DeviceStatus::BatteryLow,
            _ => status,
        };
        records.push(Record {
            seq: Seq::new(seq),
            at: UnixMillis::new(now - 60_000),
            body: RecordBody::DeviceHealth(DeviceHealthRecord {
                device_id: id.parse().expect("device id"),
                status,
                battery_mv: Some(2900 + (d as u16 % 7) * 50),
                rssi_dbm: Some(-50 - (d % 30) as i8),
            }),
        });
    }
    for m in (0..SNAPSHOTS).rev() {
        seq += 1;
        let at = UnixMillis::new(now - m * 60_000);
        let present = 560 + (m % 60) as u32;
        let counts = SnapshotCounts {
            students_total: 640,
            students_present: present,
            teachers_present: 40,
            devices_online: 47,
            devices_offline: 3,
            ..SnapshotCounts::default()
        };
        records.push(Record {
            seq: Seq::new(seq),
            at,
            body: RecordBody::Snapshot(SchoolSnapshot::new(gw.school_id.clone(), at, counts)),
        });
    }
    for batch in records.chunks(1000) {
        gw.send(&gw.telemetry(batch.to_vec()))
            .await
            .expect("telemetry lane");
    }
    (all, open)
}

/// Viewers nobody signs in as, made as `admin create-user` makes them (one hash for all:
/// the load only disables them).
async fn disposable(
    owner: &PgPool,
    schools: &[(SchoolId, &'static str)],
) -> BTreeMap<SchoolId, Vec<uuid::Uuid>> {
    use cloud_sync::auth::{self, Grant, Password};
    let hash = auth::hash_password(&Password::try_from(PASSWORD.to_owned()).expect("password"))
        .expect("hash");
    let mut out = BTreeMap::new();
    for (school, _) in schools {
        let mut ids = Vec::new();
        for n in 0..DISPOSABLE_PER_SCHOOL {
            let email = format!("temp-{n}@{school}.example").parse().expect("email");
            let id = cloud_sync::db::accounts::create_user(
                owner,
                &email,
                &hash,
                &Grant::Viewer(school.clone()),
            )
            .await
            .expect("create user");
            ids.push(id);
        }
        out.insert(school.clone(), ids);
    }
    out
}

pub(crate) fn now_ms() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock");
    i64::try_from(since.as_millis()).expect("ms")
}
