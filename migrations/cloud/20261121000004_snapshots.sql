-- School snapshots: a time series partitioned by month of `taken_at` (the gateway's clock).
--
-- `hallwatch_ensure_snapshot_partitions(ahead)` creates this month's and the next `ahead`
-- months' partitions; `cloud-sync serve` calls it at start and daily. Records from clocks far
-- off land in the default partition rather than failing a batch. Retention:
-- `hallwatch_prune_snapshots(keep_months)` drops whole months older than that (and deletes
-- such rows from the default partition); `cloud-sync admin prune` runs both. Both functions
-- run as the owner (SECURITY DEFINER) because the application role cannot create or drop
-- tables; they take no tenant input.

CREATE TABLE snapshots (
    school_id        text NOT NULL,
    gateway_id       text NOT NULL,
    seq              bigint NOT NULL,
    taken_at         timestamptz NOT NULL,
    students_total   integer NOT NULL,
    students_present integer NOT NULL,
    students_absent  integer NOT NULL,
    teachers_present integer NOT NULL,
    active_alerts    integer NOT NULL,
    devices_online   integer NOT NULL,
    devices_offline  integer NOT NULL,
    PRIMARY KEY (school_id, gateway_id, seq, taken_at)
) PARTITION BY RANGE (taken_at);
CREATE INDEX snapshots_school_time ON snapshots (school_id, taken_at DESC);

CREATE TABLE snapshots_default PARTITION OF snapshots DEFAULT;

CREATE FUNCTION hallwatch_ensure_snapshot_partitions(ahead integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    month date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    created integer := 0;
    name text;
BEGIN
    FOR i IN 0..greatest(ahead, 0) LOOP
        name := format('snapshots_%s', to_char(month, 'YYYY_MM'));
        IF to_regclass(name) IS NULL THEN
            BEGIN
                EXECUTE format(
                    'CREATE TABLE %I PARTITION OF snapshots FOR VALUES FROM (%L) TO (%L)',
                    name, month::timestamp AT TIME ZONE 'UTC',
                    (month + interval '1 month')::timestamp AT TIME ZONE 'UTC');
                created := created + 1;
            EXCEPTION WHEN check_violation THEN
                -- Rows for that month already sit in the default partition; leave them there.
                RAISE NOTICE 'snapshot partition % not created: the default partition holds its rows', name;
            END;
        END IF;
        month := month + interval '1 month';
    END LOOP;
    RETURN created;
END
$$;

CREATE FUNCTION hallwatch_prune_snapshots(keep_months integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    cutoff timestamptz := (date_trunc('month', now() AT TIME ZONE 'UTC')
        - make_interval(months => greatest(keep_months, 1)))::timestamp AT TIME ZONE 'UTC';
    dropped integer := 0;
    part record;
BEGIN
    FOR part IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'snapshots'::regclass AND c.relname ~ '^snapshots_[0-9]{4}_[0-9]{2}$'
    LOOP
        IF to_date(substr(part.relname, 11), 'YYYY_MM')::timestamp AT TIME ZONE 'UTC'
                + interval '1 month' <= cutoff THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    DELETE FROM snapshots_default WHERE taken_at < cutoff;
    RETURN dropped;
END
$$;

SELECT hallwatch_ensure_snapshot_partitions(3);

REVOKE ALL ON FUNCTION hallwatch_ensure_snapshot_partitions(integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION hallwatch_prune_snapshots(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hallwatch_ensure_snapshot_partitions(integer) TO hallwatch_app;
GRANT EXECUTE ON FUNCTION hallwatch_prune_snapshots(integer) TO hallwatch_app;
-- Only the parent: partitions get no grants, so they cannot be read around its policies.
GRANT SELECT, INSERT ON snapshots TO hallwatch_app;
