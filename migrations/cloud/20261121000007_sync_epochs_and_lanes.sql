-- Sync format 2 (issue #6): cursors per gateway epoch and lane, and the epoch in the keys of
-- the records a gateway numbers.
--
-- Rows written before this migration came from format-1 gateways, which had no epochs: they
-- get epoch 0, which no gateway ever draws (`shared::ids::Epoch` refuses it), so they can
-- never collide with a format-2 record. Format-1 cursors are not carried over: format 2
-- numbers each lane on its own and opens a cursor per epoch, so a gateway-wide position means
-- nothing to it (and a format-1 gateway is turned away by the envelope's version anyway).

-- === cursors per (epoch, lane) ===

DROP TABLE sync_cursors;

-- How far each lane of each epoch of a gateway's outbox is merged. Created when the cloud
-- first sees a record of that epoch and lane, just before that record (the cloud trusts an
-- authenticated gateway on where an epoch starts). Replays at or below `last_seq` change
-- nothing; the row is locked for the duration of a batch, which orders the batches of one
-- lane. `dropped_*` count the records the gateway declared removed unsent, by reason; alert
-- records are only ever dead-lettered, never thinned or evicted for space.
CREATE TABLE sync_cursors (
    school_id              text NOT NULL,
    gateway_id             text NOT NULL,
    epoch                  bigint NOT NULL CHECK (epoch <> 0),
    lane                   text NOT NULL CHECK (lane IN ('alert', 'telemetry')),
    last_seq               bigint NOT NULL CHECK (last_seq >= 0),
    dropped_thinned        bigint NOT NULL DEFAULT 0 CHECK (dropped_thinned >= 0),
    dropped_storage_budget bigint NOT NULL DEFAULT 0 CHECK (dropped_storage_budget >= 0),
    dropped_dead_lettered  bigint NOT NULL DEFAULT 0 CHECK (dropped_dead_lettered >= 0),
    opened_at              timestamptz NOT NULL DEFAULT now(),
    -- When a batch last moved the cursor (replays do not).
    last_sync_at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, gateway_id, epoch, lane),
    FOREIGN KEY (school_id, gateway_id) REFERENCES gateways,
    CHECK (lane = 'telemetry' OR (dropped_thinned = 0 AND dropped_storage_budget = 0))
);

GRANT SELECT, INSERT, UPDATE ON sync_cursors TO hallwatch_app;
ALTER TABLE sync_cursors ENABLE ROW LEVEL SECURITY;
ALTER TABLE sync_cursors FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON sync_cursors USING (hallwatch_school_in_scope(school_id))
    WITH CHECK (hallwatch_school_in_scope(school_id));

-- === the epoch in the records' keys ===

-- Alert events travel only in the alert lane, so (gateway, epoch, seq) names one.
ALTER TABLE alert_events ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE alert_events ALTER COLUMN epoch DROP DEFAULT;
ALTER TABLE alert_events DROP CONSTRAINT alert_events_pkey,
    ADD PRIMARY KEY (school_id, gateway_id, epoch, seq);

-- Snapshots travel only in the telemetry lane.
ALTER TABLE snapshots ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE snapshots ALTER COLUMN epoch DROP DEFAULT;
ALTER TABLE snapshots DROP CONSTRAINT snapshots_pkey,
    ADD PRIMARY KEY (school_id, gateway_id, epoch, seq, taken_at);

-- The record an alert's or a device's current row came from is (last_epoch, last_seq).
ALTER TABLE alerts ADD COLUMN last_epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE alerts ALTER COLUMN last_epoch DROP DEFAULT;
ALTER TABLE devices ADD COLUMN last_epoch bigint NOT NULL DEFAULT 0;
ALTER TABLE devices ALTER COLUMN last_epoch DROP DEFAULT;
