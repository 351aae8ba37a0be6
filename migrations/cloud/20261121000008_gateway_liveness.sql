-- Gateway liveness (issue #6): when each gateway last synced, and the events of its outages.
--
-- `gateways.last_sync_at`: when the gateway last reached the sync endpoint (any lane,
-- heartbeats included), written at most every few seconds per gateway so that heartbeats and
-- replays do not churn the row; NULL until its first sync. A gateway that never synced is
-- never reported offline: it is enrolled but not installed yet. Gateways enrolled before this
-- migration start as never synced too (they spoke format 1, which this service no longer
-- accepts), so an upgrade does not report the whole fleet offline at once; each takes part
-- from its first format-2 sync. `gateways.offline_since`: set by the liveness task when the
-- gateway has been silent too long, cleared by its next sync. No index on either column: the
-- liveness task scans the (small) table, and an unindexed `last_sync_at` keeps the periodic
-- write a HOT update.
ALTER TABLE gateways
    ADD COLUMN last_sync_at timestamptz,
    ADD COLUMN offline_since timestamptz;

-- Each time a gateway went offline or came back, append-only (the application role may
-- insert and read, never change). `last_sync_at` is the gateway's last sync as of the event:
-- when it fell silent for 'offline', the sync that ended the outage for 'online'.
CREATE TABLE gateway_events (
    school_id    text NOT NULL,
    gateway_id   text NOT NULL,
    event_id     bigint GENERATED ALWAYS AS IDENTITY,
    at           timestamptz NOT NULL DEFAULT now(),
    state        text NOT NULL CHECK (state IN ('offline', 'online')),
    last_sync_at timestamptz NOT NULL,
    PRIMARY KEY (school_id, gateway_id, event_id),
    FOREIGN KEY (school_id, gateway_id) REFERENCES gateways
);
CREATE INDEX gateway_events_school_time ON gateway_events (school_id, at DESC);

GRANT SELECT, INSERT ON gateway_events TO hallwatch_app;
ALTER TABLE gateway_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE gateway_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON gateway_events USING (hallwatch_school_in_scope(school_id))
    WITH CHECK (hallwatch_school_in_scope(school_id));
