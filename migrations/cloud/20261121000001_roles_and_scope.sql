-- The application role and the tenant scope every request sets.
--
-- Roles are cluster-wide while migrations run once per database (tests create many databases
-- in one cluster, concurrently), so the role is created only if missing and a concurrent
-- creator winning the race is not an error. The role is not the owner of any table, not a
-- superuser and cannot bypass row-level security. Production sets its password once, as the
-- owner: `ALTER ROLE hallwatch_app PASSWORD '...'` (psql: `\password hallwatch_app`).
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hallwatch_app') THEN
        CREATE ROLE hallwatch_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO hallwatch_app;

-- The scope of the current transaction, set with `set_config(name, value, true)` (SET LOCAL):
--   hallwatch.school_ids   comma-separated school ids (ids never contain commas)
--   hallwatch.all_schools  'on' for platform operators
-- Unset, empty or anything else means no school at all: a query that forgot to scope sees
-- nothing and can write nothing.
CREATE FUNCTION hallwatch_school_in_scope(school text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(current_setting('hallwatch.all_schools', true), '') = 'on'
        OR school = ANY (string_to_array(
            nullif(current_setting('hallwatch.school_ids', true), ''), ','))
$$;
