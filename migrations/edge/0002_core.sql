-- Issue #4: the gateway's core state: rooms, alerts and their append-only log, presses,
-- device health, occupancy, snapshots, the local event log (for the dashboard's stream) and the
-- sync outbox. Times are UnixMillis (INTEGER milliseconds since the epoch).

-- Where rooms are, from `[[rooms]]` in agent.toml (rewritten at every start).
CREATE TABLE rooms (
    id       TEXT PRIMARY KEY,
    building TEXT,
    floor    TEXT,
    capacity INTEGER CHECK (capacity > 0)
) STRICT;

-- Health as last persisted: written on every change and, for last_seen, coalesced about once a
-- second (not one fsync per heartbeat).
ALTER TABLE devices ADD COLUMN online INTEGER NOT NULL DEFAULT 0 CHECK (online IN (0, 1));
ALTER TABLE devices ADD COLUMN battery_mv INTEGER;
ALTER TABLE devices ADD COLUMN rssi_dbm INTEGER;
ALTER TABLE devices ADD COLUMN firmware TEXT;
ALTER TABLE devices ADD COLUMN battery_low INTEGER NOT NULL DEFAULT 0 CHECK (battery_low IN (0, 1));
-- Which alert each press pattern raises, e.g. `single=panic,double=medical,long_hold=lockdown`;
-- NULL: the gateway's default from agent.toml.
ALTER TABLE devices ADD COLUMN press_map TEXT;

-- Current state of every alert. The log below is the history; this row is kept equal to the
-- log's latest entry in the same transaction that appends it.
CREATE TABLE alerts (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    severity        TEXT NOT NULL,
    state           TEXT NOT NULL,
    device_id       TEXT REFERENCES devices (id),
    room            TEXT,
    building        TEXT,
    floor           TEXT,
    press_count     INTEGER NOT NULL CHECK (press_count >= 0),
    -- The device's latest press joined to this alert: what its LED feedback names.
    last_press_boot INTEGER,
    last_press_seq  INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    acknowledged_at INTEGER,
    escalated_at    INTEGER,
    closed_at       INTEGER,
    CHECK ((state IN ('resolved', 'cancelled')) = (closed_at IS NOT NULL))
) STRICT;

-- One open alert per device: further presses join it.
CREATE UNIQUE INDEX alerts_one_open_per_device ON alerts (device_id)
    WHERE closed_at IS NULL AND device_id IS NOT NULL;
CREATE INDEX alerts_by_state ON alerts (state, created_at);
CREATE INDEX alerts_by_created ON alerts (created_at);

-- Every press ever received, so a retransmission (same device, boot and press_seq) is
-- recognised and answered with its alert's state instead of raising a second alert.
CREATE TABLE presses (
    device_id TEXT NOT NULL,
    boot      INTEGER NOT NULL,
    press_seq INTEGER NOT NULL,
    pattern   TEXT NOT NULL,
    alert_id  TEXT REFERENCES alerts (id),
    at        INTEGER NOT NULL,
    PRIMARY KEY (device_id, boot, press_seq)
) STRICT, WITHOUT ROWID;

-- The append-only log of every alert.
CREATE TABLE alert_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id     TEXT NOT NULL REFERENCES alerts (id),
    at           INTEGER NOT NULL,
    event        TEXT NOT NULL,
    state        TEXT NOT NULL,
    severity     TEXT NOT NULL,
    press_count  INTEGER NOT NULL,
    actor_source TEXT,
    actor_name   TEXT,
    note         TEXT
) STRICT;

CREATE INDEX alert_events_by_alert ON alert_events (alert_id, id);

CREATE TRIGGER alert_events_no_update BEFORE UPDATE ON alert_events
BEGIN
    SELECT RAISE(ABORT, 'alert_events is append-only');
END;

CREATE TRIGGER alert_events_no_delete BEFORE DELETE ON alert_events
BEGIN
    SELECT RAISE(ABORT, 'alert_events is append-only');
END;

-- Latest count per room from its camera.
CREATE TABLE occupancy (
    room           TEXT PRIMARY KEY,
    device_id      TEXT NOT NULL,
    students       INTEGER NOT NULL CHECK (students >= 0),
    adults         INTEGER NOT NULL CHECK (adults >= 0),
    confidence_pct INTEGER NOT NULL CHECK (confidence_pct BETWEEN 0 AND 100),
    at             INTEGER NOT NULL
) STRICT;

-- School snapshots as emitted (on change, heartbeat, scheduled).
CREATE TABLE snapshots (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    at               INTEGER NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('change', 'heartbeat', 'scheduled')),
    students_total   INTEGER NOT NULL,
    students_present INTEGER NOT NULL,
    students_absent  INTEGER NOT NULL,
    teachers_present INTEGER NOT NULL,
    active_alerts    INTEGER NOT NULL,
    devices_online   INTEGER NOT NULL,
    devices_offline  INTEGER NOT NULL,
    stale_rooms      TEXT NOT NULL
) STRICT;

CREATE INDEX snapshots_by_time ON snapshots (at);

-- What the local dashboard's stream carried, so a client resumes with Last-Event-ID. `data` is
-- the JSON sent; old rows are pruned.
CREATE TABLE events (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    at    INTEGER NOT NULL,
    topic TEXT NOT NULL CHECK (topic IN ('alert', 'device', 'snapshot')),
    data  TEXT NOT NULL
) STRICT;

-- Records for the cloud, written in the same transaction as the change they describe. `seq` is
-- gateway-wide and never reused (AUTOINCREMENT); `body` is a postcard `shared::sync::RecordBody`.
CREATE TABLE outbox (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    lane TEXT NOT NULL CHECK (lane IN ('alert', 'telemetry')),
    at   INTEGER NOT NULL,
    body BLOB NOT NULL
) STRICT;
