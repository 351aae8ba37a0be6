-- Issue #3: the gateway's devices, every certificate its CA has issued, and the CRL counter.
-- Times are UnixMillis (INTEGER milliseconds since the epoch), as everywhere in the stores.

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE devices (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('button', 'camera')),
    room         TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('active', 'revoked')),
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    last_seen_at INTEGER,
    CHECK ((state = 'revoked') = (revoked_at IS NOT NULL))
) STRICT;

-- AUTOINCREMENT: a serial is never reused, even after the row with the highest one is gone.
CREATE TABLE certificates (
    serial     INTEGER PRIMARY KEY AUTOINCREMENT,
    role       TEXT NOT NULL CHECK (role IN ('ca', 'server', 'device')),
    device_id  TEXT REFERENCES devices (id),
    not_before INTEGER NOT NULL,
    not_after  INTEGER NOT NULL,
    revoked_at INTEGER,
    CHECK ((role = 'device') = (device_id IS NOT NULL))
) STRICT;

CREATE INDEX certificates_by_device ON certificates (device_id);

-- One row: the number of the last CRL written (0 before the first).
CREATE TABLE crl_state (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    number INTEGER NOT NULL
) STRICT;

INSERT INTO crl_state (id, number) VALUES (1, 0);
