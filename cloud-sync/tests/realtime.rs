//! `GET /api/v1/realtime/events`: each role hears exactly its scope (counted), a reconnect
//! with `Last-Event-ID` gets what it missed and a client too far behind is told to reload,
//! two replicas both stream what either wrote, the stream ends with the access token, and a
//! person's streams are capped.

mod common;

use std::time::{Duration, SystemTime};

use cloud_sync::auth::KeyRing;
use common::TestCloud;
use common::estate::ROLES;
use common::records::alert_event;
use common::sse::{self, Sse};
use reqwest::StatusCode;
use shared::alert::AlertState;
use shared::ids::AlertId;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const WAIT: Duration = Duration::from_secs(10);

fn alerts_of(events: &[Sse]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e.event == "alert")
        .map(|e| {
            (
                e.data["school_id"].as_str().expect("school").to_owned(),
                e.data["data"]["alert_id"]
                    .as_str()
                    .expect("alert id")
                    .to_owned(),
            )
        })
        .collect()
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn each_role_hears_exactly_its_scope(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let estate = cloud.estate().await;
    let base = format!("http://{}", cloud.public);
    let mut streams = Vec::new();
    for (role, _) in ROLES {
        let mut stream = sse::open(&base, &estate.tokens[role], None).await;
        let ready = stream.next_within(WAIT).await.unwrap();
        assert_eq!(ready.event, "ready");
        assert!(ready.id.is_some(), "a point to resume from");
        streams.push((role, stream));
    }

    // Three alerts per school, then a marker in north-a that every role hears: since the
    // stream keeps commit order, each has heard all it ever will of the others by then.
    let mut sent = Vec::new();
    for (school, gateway) in &estate.gateways {
        let records: Vec<_> = (2..=4)
            .map(|seq| {
                let id = AlertId::new();
                sent.push((school.to_string(), id.to_string()));
                alert_event(seq, id, AlertState::Triggered)
            })
            .collect();
        gateway.send(&gateway.alerts(records)).await.unwrap();
    }
    let marker = AlertId::new();
    let north_a = &estate.gateways["north-a"];
    north_a
        .send(&north_a.alerts(vec![alert_event(5, marker, AlertState::Triggered)]))
        .await
        .unwrap();

    for (role, stream) in &mut streams {
        let events = stream.until_alert(&marker.to_string(), WAIT).await;
        let heard = alerts_of(&events);
        let sees = |school: &str| match *role {
            "superadmin" => true,
            "region_admin" => school.starts_with("north"),
            _ => school == "north-a",
        };
        let mut want: Vec<(String, String)> =
            sent.iter().filter(|(s, _)| sees(s)).cloned().collect();
        want.push(("north-a".to_owned(), marker.to_string()));
        let mut got = heard.clone();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{role} heard exactly its schools' alerts");
        let ids: Vec<i64> = events.iter().filter_map(|e| e.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{role}: ids rise");
        assert!(
            events
                .iter()
                .all(|e| e.data["school_id"].as_str().is_none_or(sees)),
            "{role}: no event of another school, of any kind"
        );
    }
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_reconnect_gets_what_it_missed_or_is_told_to_reload(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let estate = cloud.estate().await;
    let base = format!("http://{}", cloud.public);
    let token = &estate.tokens["school_admin"];
    let gateway = &estate.gateways["north-a"];

    let mut stream = sse::open(&base, token, None).await;
    stream.next_within(WAIT).await.unwrap();
    let first = AlertId::new();
    gateway
        .send(&gateway.alerts(vec![alert_event(2, first, AlertState::Triggered)]))
        .await
        .unwrap();
    let heard = stream.until_alert(&first.to_string(), WAIT).await;
    let last = heard.last().unwrap().id.unwrap();
    drop(stream);

    // Missed while away: two alerts here, one in another region (not ours to hear).
    let (a, b) = (AlertId::new(), AlertId::new());
    gateway
        .send(&gateway.alerts(vec![
            alert_event(3, a, AlertState::Triggered),
            alert_event(4, b, AlertState::Triggered),
        ]))
        .await
        .unwrap();
    let south = &estate.gateways["south-a"];
    south
        .send(&south.alerts(vec![alert_event(2, AlertId::new(), AlertState::Triggered)]))
        .await
        .unwrap();

    let mut stream = sse::open(&base, token, Some(last)).await;
    let ready = stream.next_within(WAIT).await.unwrap();
    assert_eq!((ready.event.as_str(), ready.id), ("ready", Some(last)));
    let replayed = stream.until_alert(&b.to_string(), WAIT).await;
    assert_eq!(
        alerts_of(&replayed),
        [
            ("north-a".to_owned(), a.to_string()),
            ("north-a".to_owned(), b.to_string())
        ]
    );
    assert!(replayed.iter().all(|e| e.id.unwrap() > last));
    // And the stream goes on live after the replay.
    let live = AlertId::new();
    gateway
        .send(&gateway.alerts(vec![alert_event(5, live, AlertState::Triggered)]))
        .await
        .unwrap();
    let after = stream.until_alert(&live.to_string(), WAIT).await;
    assert_eq!(alerts_of(&after).len(), 1, "nothing twice");
    drop(stream);

    // More than a replay holds: reload.
    let many: Vec<_> = (6..=1_106)
        .map(|seq| alert_event(seq, AlertId::new(), AlertState::Triggered))
        .collect();
    gateway.send(&gateway.alerts(many)).await.unwrap();
    let mut stream = sse::open(&base, token, Some(last)).await;
    let reload = stream.next_within(WAIT).await.unwrap();
    assert_eq!(reload.event, "reload", "{reload:?}");
    assert!(
        stream.next_within(WAIT).await.is_none(),
        "and the stream ends"
    );

    // Events deleted by retention: reload too.
    sqlx::query("DELETE FROM realtime_events WHERE event_id <= $1")
        .bind(last + 5)
        .execute(&cloud.owner)
        .await
        .unwrap();
    let mut stream = sse::open(&base, token, Some(last)).await;
    assert_eq!(stream.next_within(WAIT).await.unwrap().event, "reload");

    for bad in ["soon", "-1", "1.5"] {
        let response = reqwest::Client::new()
            .get(format!("{base}/api/v1/realtime/events"))
            .bearer_auth(token)
            .header("last-event-id", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            common::people::error_code(response).await,
            "invalid_last_event_id"
        );
    }
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn two_replicas_both_stream_what_either_wrote(_: PgPoolOptions, opts: PgConnectOptions) {
    let cloud = TestCloud::start(&opts).await;
    let estate = cloud.estate().await;
    let replica = cloud.replica().await;
    let token = &estate.tokens["region_admin"];
    let mut on_first = sse::open(&format!("http://{}", cloud.public), token, None).await;
    let mut on_second = sse::open(&replica.base(), token, None).await;
    on_first.next_within(WAIT).await.unwrap();
    on_second.next_within(WAIT).await.unwrap();

    // Written through the first replica (a gateway's sync)...
    let alert = AlertId::new();
    let gateway = &estate.gateways["north-b"];
    gateway
        .send(&gateway.alerts(vec![alert_event(2, alert, AlertState::Triggered)]))
        .await
        .unwrap();
    // ...and through the second (a person's request).
    let response = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/alerts/{alert}/acknowledge",
            replica.base()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    for stream in [&mut on_first, &mut on_second] {
        let heard = stream.until_alert(&alert.to_string(), WAIT).await;
        let alert_id = heard.last().unwrap().id;
        let request = stream.next_within(WAIT).await.unwrap();
        assert_eq!(request.event, "request");
        assert_eq!(request.data["data"]["alert_id"], alert.to_string());
        assert_eq!(request.data["data"]["kind"], "acknowledge");
        assert!(request.id > alert_id);
    }
    replica.stop().await;
    cloud.stop().await;
}

#[sqlx::test(migrator = "cloud_sync::MIGRATOR")]
async fn a_stream_ends_with_its_token_and_streams_are_capped(
    _: PgPoolOptions,
    opts: PgConnectOptions,
) {
    let cloud = TestCloud::start(&opts).await;
    let estate = cloud.estate().await;
    let base = format!("http://{}", cloud.public);

    // A token with 2 s left, signed with the service's own key.
    let me: serde_json::Value = cloud
        .me(&estate.tokens["viewer"])
        .await
        .json()
        .await
        .unwrap();
    let user = me["user_id"].as_str().unwrap().parse().unwrap();
    let ring = KeyRing::load_or_create(&cloud.data_dir).unwrap();
    let issued = SystemTime::now() - Duration::from_secs(900 - 2);
    let (short, _) = ring.issue(user, issued).unwrap();
    let mut stream = sse::open(&base, &short, None).await;
    assert_eq!(stream.next_within(WAIT).await.unwrap().event, "ready");
    let end = stream.next_within(WAIT).await.unwrap();
    assert_eq!(end.event, "token_expired");
    assert!(stream.next_within(WAIT).await.is_none());

    // Eight streams per person; the ninth is refused until one closes.
    let token = &estate.tokens["school_admin"];
    let mut open = Vec::new();
    for _ in 0..8 {
        open.push(sse::open(&base, token, None).await);
    }
    let ninth = sse::request(&base, token, None).await;
    assert_eq!(ninth.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(common::people::error_code(ninth).await, "too_many_streams");
    // Someone else is not affected.
    let _viewer = sse::open(&base, &estate.tokens["viewer"], None).await;
    let metrics = reqwest::get(format!("http://{}/metrics", cloud.metrics))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "hallwatch_cloud_sse_connections 9"),
        "the gauge counts the open streams:\n{metrics}"
    );
    drop(open.pop());
    // The server notices the closed connection when a write to it fails: the second after
    // the client left (the first draws the client's reset; the public listener does not read
    // a connection while its response streams, see server/public.rs); the cap frees then
    // (events, or heartbeats every 15 s).
    let gateway = &estate.gateways["north-a"];
    for seq in [2, 3] {
        gateway
            .send(&gateway.alerts(vec![alert_event(
                seq,
                AlertId::new(),
                AlertState::Triggered,
            )]))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let again = sse::request(&base, token, None).await;
        if again.status() == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cap never freed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cloud.stop().await;
}
