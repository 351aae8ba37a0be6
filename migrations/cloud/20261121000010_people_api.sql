-- The people-facing REST API (issue #7, part 2): notes on alerts, managing users within a
-- scope, and the two lookups that tell a scope refusal from a missing object (for the audit
-- log only: the answer to the caller is 404 either way).

-- Notes people add to an alert in the cloud. Not sent to the gateway: a note is a remark for
-- the dashboards, not an action on the alert. Append-only.
CREATE TABLE alert_notes (
    school_id  text NOT NULL,
    alert_id   uuid NOT NULL,
    note_id    uuid NOT NULL,
    author     text NOT NULL,
    body       text NOT NULL CHECK (length(body) BETWEEN 1 AND 2000),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (school_id, alert_id, note_id),
    FOREIGN KEY (school_id, alert_id) REFERENCES alerts
);
GRANT SELECT, INSERT ON alert_notes TO hallwatch_app;
ALTER TABLE alert_notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_notes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_scope ON alert_notes USING (hallwatch_school_in_scope(school_id))
    WITH CHECK (hallwatch_school_in_scope(school_id));

-- Alert lists are read newest first, per school or across a scope.
CREATE INDEX alerts_opened ON alerts (opened_at DESC, alert_id DESC);

-- Managing users: admins create users and grants and disable accounts within their scope.
-- `role_grants` is under row-level security (`grant_scope`), so a grant can only be written
-- for a school in the writer's scope; a region grant (no school) only by a superadmin, whose
-- transactions set `all_schools`.
GRANT INSERT, UPDATE (disabled_at) ON users TO hallwatch_app;
GRANT INSERT ON role_grants TO hallwatch_app;

-- How many grants a user holds in all, whatever the caller's scope: an admin may disable a
-- user only when every one of their grants is within the admin's scope.
CREATE FUNCTION hallwatch_user_grant_count(target uuid) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
SET hallwatch.all_schools = 'on' AS $$
    SELECT count(*) FROM role_grants WHERE user_id = target
$$;
REVOKE ALL ON FUNCTION hallwatch_user_grant_count(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hallwatch_user_grant_count(uuid) TO hallwatch_app;

-- The school of an alert, whatever the caller's scope: only to audit a request for an alert
-- outside the caller's scope as a scope refusal (the caller is answered 404 regardless).
CREATE FUNCTION hallwatch_alert_school(target uuid) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
SET hallwatch.all_schools = 'on' AS $$
    SELECT school_id FROM alerts WHERE alert_id = target LIMIT 1
$$;
REVOKE ALL ON FUNCTION hallwatch_alert_school(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hallwatch_alert_school(uuid) TO hallwatch_app;
