-- The realtime stream's events (issue #7, part 3): what dashboards hear over SSE, stored so a
-- client that reconnects with `Last-Event-ID` gets what it missed, and numbered in commit
-- order so that resuming "after N" never skips an event that committed later than N.
--
-- Triggers on the tables that matter append a row with `event_id` NULL in the writing
-- transaction; a deferred constraint trigger runs at commit, after every other statement of
-- the transaction, takes one advisory lock (held until the commit is visible), numbers the
-- transaction's events from `realtime_event_ids` and announces each with
-- `pg_notify('hallwatch_realtime', row as JSON)`. Since nothing else is locked after the
-- numbering, the lock cannot take part in a deadlock; it orders only the commits of
-- transactions that produce events.

CREATE TABLE realtime_events (
    pending_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id   bigint UNIQUE,
    at         timestamptz NOT NULL DEFAULT now(),
    school_id  text NOT NULL,
    kind       text NOT NULL CHECK (kind IN ('alert', 'snapshot', 'gateway', 'device', 'request')),
    data       jsonb NOT NULL
);
CREATE INDEX realtime_events_at ON realtime_events (at);
CREATE SEQUENCE realtime_event_ids;

GRANT SELECT, INSERT, UPDATE (event_id), DELETE ON realtime_events TO hallwatch_app;
GRANT USAGE ON SEQUENCE realtime_event_ids TO hallwatch_app;
ALTER TABLE realtime_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE realtime_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON realtime_events USING (hallwatch_school_in_scope(school_id))
    WITH CHECK (hallwatch_school_in_scope(school_id));

-- At commit: number this transaction's events in commit order and announce them.
CREATE FUNCTION hallwatch_realtime_number() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ev realtime_events;
BEGIN
    -- Every row of the transaction fires this; the first numbers them all.
    IF EXISTS (SELECT 1 FROM realtime_events WHERE pending_id = NEW.pending_id
               AND event_id IS NOT NULL) THEN
        RETURN NULL;
    END IF;
    PERFORM pg_advisory_xact_lock(7243001);
    FOR ev IN
        UPDATE realtime_events SET event_id = nextval('realtime_event_ids')
        -- Uncommitted rows of other transactions are invisible here, and committed ones
        -- are numbered: the unnumbered rows are exactly this transaction's.
        WHERE event_id IS NULL
        RETURNING *
    LOOP
        PERFORM pg_notify('hallwatch_realtime', json_build_object(
            'id', ev.event_id, 'school_id', ev.school_id, 'kind', ev.kind,
            'at', ev.at, 'data', ev.data)::text);
    END LOOP;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER realtime_number AFTER INSERT ON realtime_events
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hallwatch_realtime_number();

-- Alerts: every insert or change.
CREATE FUNCTION hallwatch_realtime_alert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO realtime_events (school_id, kind, data) VALUES (NEW.school_id, 'alert',
        json_build_object('alert_id', NEW.alert_id, 'gateway_id', NEW.gateway_id,
            'kind', NEW.kind, 'severity', NEW.severity, 'state', NEW.state,
            'device_id', NEW.device_id, 'room', NEW.room, 'press_count', NEW.press_count,
            'opened_at', to_timestamp(NEW.opened_at / 1000.0),
            'updated_at', to_timestamp(NEW.updated_at / 1000.0)));
    RETURN NULL;
END
$$;
CREATE TRIGGER realtime_alert AFTER INSERT OR UPDATE ON alerts
    FOR EACH ROW EXECUTE FUNCTION hallwatch_realtime_alert();

-- Snapshots: the newest of each statement per school (a drained backlog is one event).
CREATE FUNCTION hallwatch_realtime_snapshot() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO realtime_events (school_id, kind, data)
    SELECT DISTINCT ON (school_id) school_id, 'snapshot',
        json_build_object('gateway_id', gateway_id, 'taken_at', taken_at,
            'students_total', students_total, 'students_present', students_present,
            'students_absent', students_absent, 'teachers_present', teachers_present,
            'active_alerts', active_alerts, 'devices_online', devices_online,
            'devices_offline', devices_offline)
    FROM added ORDER BY school_id, taken_at DESC;
    RETURN NULL;
END
$$;
CREATE TRIGGER realtime_snapshot AFTER INSERT ON snapshots
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT
    EXECUTE FUNCTION hallwatch_realtime_snapshot();

-- Gateways going offline and coming back.
CREATE FUNCTION hallwatch_realtime_gateway() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO realtime_events (school_id, kind, data) VALUES (NEW.school_id, 'gateway',
        json_build_object('gateway_id', NEW.gateway_id, 'state', NEW.state,
            'last_sync_at', NEW.last_sync_at));
    RETURN NULL;
END
$$;
CREATE TRIGGER realtime_gateway AFTER INSERT ON gateway_events
    FOR EACH ROW EXECUTE FUNCTION hallwatch_realtime_gateway();

-- Devices: a new device or a change of status (not every battery reading).
CREATE FUNCTION hallwatch_realtime_device() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO realtime_events (school_id, kind, data) VALUES (NEW.school_id, 'device',
        json_build_object('device_id', NEW.device_id, 'gateway_id', NEW.gateway_id,
            'status', NEW.status, 'battery_mv', NEW.battery_mv));
    RETURN NULL;
END
$$;
CREATE TRIGGER realtime_device_new AFTER INSERT ON devices
    FOR EACH ROW EXECUTE FUNCTION hallwatch_realtime_device();
CREATE TRIGGER realtime_device_status AFTER UPDATE OF status ON devices
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION hallwatch_realtime_device();

-- Actions requested from the cloud, and the school's confirmation.
CREATE FUNCTION hallwatch_realtime_request() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO realtime_events (school_id, kind, data) VALUES (NEW.school_id, 'request',
        json_build_object('command_id', NEW.command_id, 'kind', NEW.kind,
            'alert_id', NEW.alert_id, 'requested_by', NEW.requested_by,
            'confirmed_at', NEW.confirmed_at, 'outcome', NEW.outcome, 'reason', NEW.reason));
    RETURN NULL;
END
$$;
CREATE TRIGGER realtime_request_new AFTER INSERT ON gateway_commands
    FOR EACH ROW EXECUTE FUNCTION hallwatch_realtime_request();
CREATE TRIGGER realtime_request_confirmed AFTER UPDATE OF confirmed_at ON gateway_commands
    FOR EACH ROW WHEN (OLD.confirmed_at IS NULL AND NEW.confirmed_at IS NOT NULL)
    EXECUTE FUNCTION hallwatch_realtime_request();
