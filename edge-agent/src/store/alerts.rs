//! Alerts, their append-only log and the presses that raised them.
//!
//! Writes go through a [`Batch`] (one transaction of the alert engine); reads work on the
//! engine's [`Store`] and on a dashboard [`Reader`] alike.

use rusqlite::{Connection, OptionalExtension, Row, params};
use shared::UnixMillis;
use shared::alert::{Actor, AlertEventKind, AlertKind, AlertState, Severity};
use shared::ids::{AlertId, DeviceId};

use super::{Batch, Reader, Store, StoreError, bad_value};

/// An alert's current state, as kept in `alerts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRow {
    /// Its id (UUIDv7: ordered by creation).
    pub id: AlertId,
    /// What it is about.
    pub kind: AlertKind,
    /// How urgent, now.
    pub severity: Severity,
    /// Where in its life it is.
    pub state: AlertState,
    /// The device that raised it.
    pub device_id: Option<DeviceId>,
    /// The device's room, building and floor when it was raised.
    pub room: Option<String>,
    /// See `room`.
    pub building: Option<String>,
    /// See `room`.
    pub floor: Option<String>,
    /// Presses joined into it, the first included.
    pub press_count: u32,
    /// The device's latest press in it, `(boot, press_seq)`: what LED feedback names.
    pub last_press: Option<(u32, u32)>,
    /// When it was raised.
    pub created_at: UnixMillis,
    /// When it last changed.
    pub updated_at: UnixMillis,
    /// When someone acknowledged it.
    pub acknowledged_at: Option<UnixMillis>,
    /// When it escalated.
    pub escalated_at: Option<UnixMillis>,
    /// When it was resolved or cancelled.
    pub closed_at: Option<UnixMillis>,
}

/// One entry of an alert's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEventRow {
    /// Position in the gateway's alert log (increasing).
    pub id: i64,
    /// The alert.
    pub alert_id: AlertId,
    /// When.
    pub at: UnixMillis,
    /// What happened.
    pub event: AlertEventKind,
    /// The alert's state after it.
    pub state: AlertState,
    /// The alert's severity after it.
    pub severity: Severity,
    /// Presses so far.
    pub press_count: u32,
    /// Who, if someone did it.
    pub actor: Option<Actor>,
    /// A note given with the action.
    pub note: Option<String>,
}

/// Which alerts to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// Only these states (any when empty).
    pub states: Vec<AlertState>,
    /// At most this many, newest first.
    pub limit: u32,
    /// Only alerts created before this one (for paging), newest first.
    pub before: Option<AlertId>,
}

/// What is recorded about a press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PressKey<'a> {
    /// The pressing device.
    pub device: &'a DeviceId,
    /// Its boot counter when it pressed.
    pub boot: u32,
    /// The press's number within that boot.
    pub press_seq: u32,
}

const ALERT_COLUMNS: &str = "id, kind, severity, state, device_id, room, building, floor, \
     press_count, last_press_boot, last_press_seq, created_at, updated_at, acknowledged_at, \
     escalated_at, closed_at";

const EVENT_COLUMNS: &str =
    "id, alert_id, at, event, state, severity, press_count, actor_source, actor_name, note";

// === impl Batch ===

impl Batch<'_> {
    /// The alert a press was recorded for: `None` if the press is new, `Some(None)` if it was
    /// recorded but raised nothing (its pattern is set to be ignored).
    pub fn press(&self, key: PressKey<'_>) -> Result<Option<Option<AlertId>>, StoreError> {
        let found: Option<Option<String>> = self
            .tx
            .query_row(
                "SELECT alert_id FROM presses WHERE device_id = ?1 AND boot = ?2 AND press_seq = ?3",
                params![key.device.as_str(), key.boot, key.press_seq],
                |r| r.get(0),
            )
            .optional()?;
        found
            .map(|alert| alert.map(|id| parse_alert_id(&id)).transpose())
            .transpose()
    }

    /// One alert, open or closed.
    pub fn alert(&self, id: &AlertId) -> Result<Option<AlertRow>, StoreError> {
        alert_by_id(&self.tx, id)
    }

    /// Records a press (once: the key is the primary key).
    pub fn insert_press(
        &self,
        key: PressKey<'_>,
        pattern: &str,
        alert: Option<&AlertId>,
        at: UnixMillis,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO presses (device_id, boot, press_seq, pattern, alert_id, at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                key.device.as_str(),
                key.boot,
                key.press_seq,
                pattern,
                alert.map(ToString::to_string),
                at.get()
            ],
        )?;
        Ok(())
    }

    /// Inserts the alert's current row, or updates it in place.
    ///
    /// An upsert, not `INSERT OR REPLACE`: REPLACE deletes the row first, and with foreign
    /// keys on every delete of an alert scans `presses` (no index on `alert_id`) for rows
    /// that refer to it, a cost that grew with every press ever stored.
    pub fn save_alert(&self, alert: &AlertRow) -> Result<(), StoreError> {
        let (boot, seq) = alert.last_press.unzip();
        self.tx.execute(
            &format!(
                "INSERT INTO alerts ({ALERT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16) \
                 ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, \
                     severity = excluded.severity, state = excluded.state, \
                     device_id = excluded.device_id, room = excluded.room, \
                     building = excluded.building, floor = excluded.floor, \
                     press_count = excluded.press_count, \
                     last_press_boot = excluded.last_press_boot, \
                     last_press_seq = excluded.last_press_seq, \
                     created_at = excluded.created_at, updated_at = excluded.updated_at, \
                     acknowledged_at = excluded.acknowledged_at, \
                     escalated_at = excluded.escalated_at, closed_at = excluded.closed_at"
            ),
            params![
                alert.id.to_string(),
                alert.kind.as_str(),
                alert.severity.as_str(),
                alert.state.as_str(),
                alert.device_id.as_ref().map(DeviceId::as_str),
                alert.room,
                alert.building,
                alert.floor,
                alert.press_count,
                boot,
                seq,
                alert.created_at.get(),
                alert.updated_at.get(),
                alert.acknowledged_at.map(UnixMillis::get),
                alert.escalated_at.map(UnixMillis::get),
                alert.closed_at.map(UnixMillis::get),
            ],
        )?;
        Ok(())
    }

    /// Appends to the alert's log; `event.id` is ignored and the new id returned.
    pub fn append_alert_event(&self, event: &AlertEventRow) -> Result<i64, StoreError> {
        let (source, name) = event
            .actor
            .as_ref()
            .map(|a| (a.source.as_str(), a.name.as_str()))
            .unzip();
        self.tx.execute(
            "INSERT INTO alert_events \
             (alert_id, at, event, state, severity, press_count, actor_source, actor_name, note) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                event.alert_id.to_string(),
                event.at.get(),
                event.event.as_str(),
                event.state.as_str(),
                event.severity.as_str(),
                event.press_count,
                source,
                name,
                event.note,
            ],
        )?;
        Ok(self.tx.last_insert_rowid())
    }
}

// === reads ===

impl Store {
    /// Every open alert (triggered, escalated, acknowledged), oldest first.
    pub fn open_alerts(&self) -> Result<Vec<AlertRow>, StoreError> {
        open_alerts(&self.conn)
    }
}

impl Reader {
    /// How many alerts the database holds in each state (states with none are absent).
    pub fn alert_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT state, count(*) FROM alerts GROUP BY state")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        rows.map(|r| {
            r.map(|(state, n)| (state, u64::try_from(n).unwrap_or(0)))
                .map_err(StoreError::from)
        })
        .collect()
    }

    /// Alerts matching `filter`, newest first.
    pub fn alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
        list_alerts(&self.conn, filter)
    }

    /// One alert.
    pub fn alert(&self, id: &AlertId) -> Result<Option<AlertRow>, StoreError> {
        alert_by_id(&self.conn, id)
    }

    /// An alert's log, oldest first.
    pub fn alert_events(&self, id: &AlertId) -> Result<Vec<AlertEventRow>, StoreError> {
        let sql =
            format!("SELECT {EVENT_COLUMNS} FROM alert_events WHERE alert_id = ?1 ORDER BY id");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map([id.to_string()], RawEvent::read)?;
        rows.map(|r| r.map_err(StoreError::from).and_then(RawEvent::parse))
            .collect()
    }
}

fn alert_by_id(conn: &Connection, id: &AlertId) -> Result<Option<AlertRow>, StoreError> {
    let sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1");
    let raw = conn
        .query_row(&sql, [id.to_string()], RawAlert::read)
        .optional()?;
    raw.map(RawAlert::parse).transpose()
}

fn open_alerts(conn: &Connection) -> Result<Vec<AlertRow>, StoreError> {
    let sql =
        format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE closed_at IS NULL ORDER BY created_at");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], RawAlert::read)?;
    rows.map(|r| r.map_err(StoreError::from).and_then(RawAlert::parse))
        .collect()
}

fn list_alerts(conn: &Connection, filter: &AlertFilter) -> Result<Vec<AlertRow>, StoreError> {
    // States are our own names, never user text, so they can be inlined as literals.
    let mut clauses = Vec::new();
    if !filter.states.is_empty() {
        let names: Vec<String> = filter
            .states
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        clauses.push(format!("state IN ({})", names.join(", ")));
    }
    if filter.before.is_some() {
        clauses.push("id < ?1".to_owned());
    }
    let clause = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let sql = format!(
        "SELECT {ALERT_COLUMNS} FROM alerts {clause} ORDER BY id DESC LIMIT {}",
        filter.limit
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = match &filter.before {
        // UUIDv7 text sorts by creation time, so `id <` pages backwards in time.
        Some(before) => stmt.query_map([before.to_string()], RawAlert::read)?,
        None => stmt.query_map([], RawAlert::read)?,
    };
    rows.map(|r| r.map_err(StoreError::from).and_then(RawAlert::parse))
        .collect()
}

// === row parsing ===

struct RawAlert {
    text: [Option<String>; 8],
    ints: [Option<i64>; 8],
}

impl RawAlert {
    fn read(r: &Row<'_>) -> rusqlite::Result<RawAlert> {
        Ok(RawAlert {
            text: [
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
            ],
            ints: [
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
                r.get(12)?,
                r.get(13)?,
                r.get(14)?,
                r.get(15)?,
            ],
        })
    }

    fn parse(self) -> Result<AlertRow, StoreError> {
        let [id, kind, severity, state, device, room, building, floor] = self.text;
        let [count, boot, seq, created, updated, acked, escalated, closed] = self.ints;
        let text = |v: Option<String>, what| v.ok_or_else(|| bad_value(what, "NULL"));
        let parse = |v: String, what| v.parse().map_err(|_| bad_value(what, &v));
        let u32_of = |v: i64, what| u32::try_from(v).map_err(|_| bad_value(what, &v.to_string()));
        let kind = text(kind, "alert kind")?;
        let severity = text(severity, "severity")?;
        let state = text(state, "alert state")?;
        Ok(AlertRow {
            id: parse_alert_id(&text(id, "alert id")?)?,
            kind: kind.parse().map_err(|_| bad_value("alert kind", &kind))?,
            severity: severity
                .parse()
                .map_err(|_| bad_value("severity", &severity))?,
            state: state
                .parse()
                .map_err(|_| bad_value("alert state", &state))?,
            device_id: device.map(|d| parse(d, "device id")).transpose()?,
            room,
            building,
            floor,
            press_count: u32_of(count.unwrap_or_default(), "press count")?,
            last_press: match (boot, seq) {
                (Some(boot), Some(seq)) => Some((u32_of(boot, "boot")?, u32_of(seq, "press seq")?)),
                _ => None,
            },
            created_at: UnixMillis::new(created.unwrap_or_default()),
            updated_at: UnixMillis::new(updated.unwrap_or_default()),
            acknowledged_at: acked.map(UnixMillis::new),
            escalated_at: escalated.map(UnixMillis::new),
            closed_at: closed.map(UnixMillis::new),
        })
    }
}

struct RawEvent {
    id: i64,
    alert_id: String,
    at: i64,
    event: String,
    state: String,
    severity: String,
    press_count: i64,
    actor: (Option<String>, Option<String>),
    note: Option<String>,
}

impl RawEvent {
    fn read(r: &Row<'_>) -> rusqlite::Result<RawEvent> {
        Ok(RawEvent {
            id: r.get(0)?,
            alert_id: r.get(1)?,
            at: r.get(2)?,
            event: r.get(3)?,
            state: r.get(4)?,
            severity: r.get(5)?,
            press_count: r.get(6)?,
            actor: (r.get(7)?, r.get(8)?),
            note: r.get(9)?,
        })
    }

    fn parse(self) -> Result<AlertEventRow, StoreError> {
        let actor = match self.actor {
            (Some(source), Some(name)) => Some(Actor::new(
                source
                    .parse()
                    .map_err(|_| bad_value("actor source", &source))?,
                name,
            )),
            _ => None,
        };
        Ok(AlertEventRow {
            id: self.id,
            alert_id: parse_alert_id(&self.alert_id)?,
            at: UnixMillis::new(self.at),
            event: self
                .event
                .parse()
                .map_err(|_| bad_value("alert event", &self.event))?,
            state: self
                .state
                .parse()
                .map_err(|_| bad_value("alert state", &self.state))?,
            severity: self
                .severity
                .parse()
                .map_err(|_| bad_value("severity", &self.severity))?,
            press_count: u32::try_from(self.press_count)
                .map_err(|_| bad_value("press count", &self.press_count.to_string()))?,
            actor,
            note: self.note,
        })
    }
}

fn parse_alert_id(text: &str) -> Result<AlertId, StoreError> {
    text.parse().map_err(|_| bad_value("alert id", text))
}
