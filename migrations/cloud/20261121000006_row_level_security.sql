-- Row-level security, enabled and forced (so the owner is bound too) on every table that holds
-- a school's data. A transaction that set no scope sees and writes nothing.

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['schools', 'buildings', 'floors', 'rooms', 'enrollment_tokens',
        'gateways', 'sync_cursors', 'devices', 'alerts', 'alert_events', 'gateway_commands',
        'snapshots']
    LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_scope ON %I USING (hallwatch_school_in_scope(school_id))'
            ' WITH CHECK (hallwatch_school_in_scope(school_id))', t);
    END LOOP;
END
$$;

-- Grants: a user's own grants are readable at login, before any scope exists.
ALTER TABLE role_grants ENABLE ROW LEVEL SECURITY;
ALTER TABLE role_grants FORCE ROW LEVEL SECURITY;
CREATE POLICY grant_scope ON role_grants USING (
    hallwatch_school_in_scope(school_id)
    OR user_id::text = current_setting('hallwatch.user_id', true));

-- The audit log: anyone may append, reading is scoped (platform rows to operators only).
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY audit_read ON audit_log FOR SELECT USING (hallwatch_school_in_scope(school_id));
CREATE POLICY audit_append ON audit_log FOR INSERT WITH CHECK (true);

-- Enrollment must find a token's school before any scope exists. This function answers only
-- for the holder of the token (it takes the token's hash) and returns nothing else; the rest
-- of enrollment runs scoped to that school.
CREATE FUNCTION hallwatch_enrollment_token_school(hash bytea) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
SET hallwatch.all_schools = 'on' AS $$
    SELECT school_id FROM enrollment_tokens WHERE token_hash = hash LIMIT 1
$$;
REVOKE ALL ON FUNCTION hallwatch_enrollment_token_school(bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hallwatch_enrollment_token_school(bytea) TO hallwatch_app;
