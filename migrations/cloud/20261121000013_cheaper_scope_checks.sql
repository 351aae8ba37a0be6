-- Row-level security and the alert lists, made cheap per row (issue #7's API load: Postgres'
-- core went to these, measured with pg_stat_statements).
--
-- 1. The policies read the scope once per query, not once per row. `hallwatch_school_in_scope`
--    is inlined into each policy, so every row a scan filters called `current_setting` twice
--    and built an array with `string_to_array`. The policies now compare against the scope
--    through uncorrelated sub-selects, which Postgres evaluates once per query (InitPlans):
--    a row costs one comparison with a short array. The meaning is unchanged: an unset, empty
--    or malformed scope still shows nothing.
--
-- 2. An alert's pending request (`requested` in the alert lists) is found through its own index
--    instead of reading every unconfirmed command of the school for every alert listed.

CREATE FUNCTION hallwatch_scope_all() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('hallwatch.all_schools', true), '') = 'on'
$$;

CREATE FUNCTION hallwatch_scope_schools() RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(
        string_to_array(nullif(current_setting('hallwatch.school_ids', true), ''), ','),
        '{}')
$$;

DO $$
DECLARE
    t text;
    -- `(SELECT …)::text[]`, not `ANY ((SELECT …))`: the latter would be `= ANY (subquery)`,
    -- a comparison with each row the sub-select returns.
    scoped constant text := '((SELECT hallwatch_scope_all()) '
        'OR school_id = ANY ((SELECT hallwatch_scope_schools())::text[]))';
BEGIN
    FOR t IN SELECT tablename FROM pg_policies
             WHERE schemaname = 'public' AND policyname = 'tenant_scope'
    LOOP
        EXECUTE format('ALTER POLICY tenant_scope ON %I USING %s WITH CHECK %s',
            t, scoped, scoped);
    END LOOP;
    EXECUTE format('ALTER POLICY audit_read ON audit_log USING %s', scoped);
    EXECUTE format('ALTER POLICY grant_scope ON role_grants USING (%s '
        'OR user_id::text = current_setting(''hallwatch.user_id'', true))', scoped);
END
$$;

CREATE INDEX gateway_commands_alert_pending ON gateway_commands (school_id, alert_id, created_at DESC)
    WHERE confirmed_at IS NULL;

-- No policy uses the per-row form any more; a new table's policy copies the expression above.
DROP FUNCTION hallwatch_school_in_scope(text);
