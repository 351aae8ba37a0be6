-- Gateways, their enrollment tokens and sync cursors, the records they sync (devices, alerts,
-- alert events, snapshots) and the commands the cloud sends them.

CREATE TABLE enrollment_tokens (
    school_id  text NOT NULL REFERENCES schools,
    -- sha256 of the token: tokens carry 128+ random bits, so a fast hash is enough.
    token_hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    gateway_id text,
    PRIMARY KEY (school_id, token_hash)
);
CREATE INDEX enrollment_tokens_hash ON enrollment_tokens (token_hash);

CREATE TABLE gateways (
    school_id   text NOT NULL REFERENCES schools,
    gateway_id  text NOT NULL,
    enrolled_at timestamptz NOT NULL DEFAULT now(),
    -- Serial number of the certificate issued at enrollment, hex.
    cert_serial text NOT NULL,
    revoked_at  timestamptz,
    PRIMARY KEY (school_id, gateway_id)
);

-- How far each gateway's outbox is merged. Replays at or below `last_seq` change nothing;
-- the row is locked for the duration of a batch, which orders a gateway's batches.
CREATE TABLE sync_cursors (
    school_id    text NOT NULL,
    gateway_id   text NOT NULL,
    last_seq     bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    last_sync_at timestamptz,
    PRIMARY KEY (school_id, gateway_id),
    FOREIGN KEY (school_id, gateway_id) REFERENCES gateways
);

-- Devices as the gateway last reported them (mirrored, not managed, by the cloud).
CREATE TABLE devices (
    school_id   text NOT NULL REFERENCES schools,
    device_id   text NOT NULL,
    gateway_id  text NOT NULL,
    status      text NOT NULL,
    battery_mv  integer,
    rssi_dbm    smallint,
    reported_at bigint NOT NULL,
    last_seq    bigint NOT NULL,
    PRIMARY KEY (school_id, device_id)
);

-- Each alert's current facts, from its latest event.
CREATE TABLE alerts (
    school_id   text NOT NULL REFERENCES schools,
    alert_id    uuid NOT NULL,
    gateway_id  text NOT NULL,
    kind        text NOT NULL,
    severity    text NOT NULL,
    state       text NOT NULL,
    device_id   text,
    room        text,
    press_count integer NOT NULL,
    opened_at   bigint NOT NULL,
    updated_at  bigint NOT NULL,
    last_seq    bigint NOT NULL,
    PRIMARY KEY (school_id, alert_id)
);
CREATE INDEX alerts_open ON alerts (school_id, updated_at DESC)
    WHERE state IN ('triggered', 'escalated', 'acknowledged');

-- Every alert event, append-only, keyed by where it came from.
CREATE TABLE alert_events (
    school_id    text NOT NULL REFERENCES schools,
    gateway_id   text NOT NULL,
    seq          bigint NOT NULL,
    alert_id     uuid NOT NULL,
    at           bigint NOT NULL,
    event        text NOT NULL,
    state        text NOT NULL,
    severity     text NOT NULL,
    actor_source text,
    actor_name   text,
    PRIMARY KEY (school_id, gateway_id, seq)
);
CREATE INDEX alert_events_alert ON alert_events (school_id, alert_id, seq);

-- Cloud → gateway commands. Delivered with every ack until the gateway reports the outcome.
CREATE TABLE gateway_commands (
    school_id      text NOT NULL,
    command_id     uuid NOT NULL,
    gateway_id     text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('acknowledge', 'resolve', 'cancel', 'revoke_device')),
    alert_id       uuid,
    device_id      text,
    requested_by   text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    deliveries     integer NOT NULL DEFAULT 0,
    last_delivered timestamptz,
    confirmed_at   timestamptz,
    outcome        text CHECK (outcome IN ('applied', 'rejected')),
    reason         text,
    PRIMARY KEY (school_id, command_id),
    FOREIGN KEY (school_id, gateway_id) REFERENCES gateways
);
CREATE INDEX gateway_commands_pending ON gateway_commands (school_id, gateway_id, created_at)
    WHERE confirmed_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON enrollment_tokens, gateways, sync_cursors, devices, alerts,
    gateway_commands TO hallwatch_app;
GRANT SELECT, INSERT ON alert_events TO hallwatch_app;
