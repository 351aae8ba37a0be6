-- Issue #6: what the sync loop needs. The outbox gets a sequence per lane (so a backlog of
-- telemetry never stands in front of an alert, and the cloud can check each lane has no gap)
-- and the epoch each record was written in (a new one every time the agent starts, so a
-- database restored from a backup, whose sequence numbers go back, never writes a record under
-- a number the cloud already holds for another one). Acknowledged records are deleted: the
-- outbox holds exactly what the cloud has not confirmed.

-- The last sequence number given out in each lane; never goes back, even when the lane is
-- empty.
CREATE TABLE outbox_lanes (
    lane TEXT PRIMARY KEY CHECK (lane IN ('alert', 'telemetry')),
    head INTEGER NOT NULL CHECK (head >= 0)
) STRICT;

-- Every epoch this database has written under, newest last.
CREATE TABLE epochs (
    epoch      INTEGER PRIMARY KEY CHECK (epoch <> 0),
    started_at INTEGER NOT NULL
) STRICT;

CREATE TABLE outbox_v4 (
    lane  TEXT NOT NULL CHECK (lane IN ('alert', 'telemetry')),
    seq   INTEGER NOT NULL CHECK (seq > 0),
    epoch INTEGER NOT NULL REFERENCES epochs (epoch),
    at    INTEGER NOT NULL,
    -- The record's kind, so policies (thinning) and status need not decode bodies.
    kind  TEXT NOT NULL CHECK (kind IN ('alert_event', 'device_health', 'snapshot',
                                        'command_result', 'dropped')),
    -- postcard `shared::sync::RecordBody`
    body  BLOB NOT NULL,
    PRIMARY KEY (lane, seq)
) STRICT, WITHOUT ROWID;

-- Records written before this migration were never sent (there was no sync loop): they move
-- to one epoch of their own, numbered per lane in their old order. `random()` is a 64-bit
-- random integer; `| 1` keeps it from being zero.
INSERT INTO epochs (epoch, started_at)
    SELECT random() | 1, coalesce(min(at), 0) FROM outbox HAVING count(*) > 0;
INSERT INTO outbox_v4 (lane, seq, epoch, at, kind, body)
    SELECT lane, row_number() OVER (PARTITION BY lane ORDER BY seq),
           (SELECT epoch FROM epochs), at,
           -- The first byte of a postcard enum is its variant index (always < 128 here).
           CASE hex(substr(body, 1, 1))
               WHEN '00' THEN 'alert_event' WHEN '01' THEN 'device_health'
               WHEN '02' THEN 'snapshot' ELSE 'command_result' END,
           body
    FROM outbox;
INSERT INTO outbox_lanes (lane, head)
    SELECT l.lane, (SELECT count(*) FROM outbox_v4 o WHERE o.lane = l.lane)
    FROM (SELECT 'alert' AS lane UNION ALL SELECT 'telemetry') AS l;
DROP TABLE outbox;
ALTER TABLE outbox_v4 RENAME TO outbox;
CREATE INDEX outbox_epoch ON outbox (epoch);

-- Records the cloud refused as malformed: kept for people to read, replaced in the outbox by a
-- `Dropped` record so the lane moves on.
CREATE TABLE dead_letters (
    lane       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    epoch      INTEGER NOT NULL,
    at         INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    body       BLOB NOT NULL,
    reason     TEXT NOT NULL,
    dead_at    INTEGER NOT NULL,
    PRIMARY KEY (lane, seq)
) STRICT;

-- Commands from the cloud already carried out, so a command delivered again (its result not
-- yet confirmed) takes effect once.
CREATE TABLE cloud_commands (
    id         TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    outcome    TEXT NOT NULL CHECK (outcome IN ('applied', 'rejected')),
    reason     TEXT,
    applied_at INTEGER NOT NULL
) STRICT;

-- The dashboard's stream gains the topic `system`: things about the gateway itself, such as
-- storage pressure on the outbox. SQLite cannot change a CHECK in place, so the table is
-- rebuilt, carrying its AUTOINCREMENT high-water mark over (an event id is never reused: a
-- dashboard resumes by id).
CREATE TABLE events_v4 (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    at    INTEGER NOT NULL,
    topic TEXT NOT NULL CHECK (topic IN ('alert', 'device', 'snapshot', 'system')),
    data  TEXT NOT NULL
) STRICT;
INSERT INTO events_v4 (id, at, topic, data) SELECT id, at, topic, data FROM events;
DELETE FROM sqlite_sequence WHERE name = 'events_v4';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'events_v4', seq FROM sqlite_sequence WHERE name = 'events';
DROP TABLE events;
ALTER TABLE events_v4 RENAME TO events;
