-- Users, their role grants and the audit log (the accounts issue fills them; they are created
-- here so the schema is whole).

CREATE TABLE users (
    user_id       uuid PRIMARY KEY,
    email         text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    totp_secret   bytea,
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- What a user may see: the platform, a region's schools, or one school.
CREATE TABLE role_grants (
    user_id   uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    role      text NOT NULL CHECK (role IN ('superadmin', 'region_admin', 'school_admin', 'viewer')),
    region_id text REFERENCES regions,
    school_id text REFERENCES schools,
    CHECK ((role = 'superadmin' AND region_id IS NULL AND school_id IS NULL)
        OR (role = 'region_admin' AND region_id IS NOT NULL AND school_id IS NULL)
        OR (role IN ('school_admin', 'viewer') AND region_id IS NULL AND school_id IS NOT NULL))
);
CREATE UNIQUE INDEX role_grants_unique
    ON role_grants (user_id, role, coalesce(region_id, ''), coalesce(school_id, ''));

-- Append-only: the application role may insert and read (within scope), never change.
-- `school_id` is NULL for events that concern no school (e.g. an unknown enrollment token).
CREATE TABLE audit_log (
    audit_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    school_id text,
    actor     text NOT NULL,
    action    text NOT NULL,
    outcome   text NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_school ON audit_log (school_id, at DESC);

GRANT SELECT ON users TO hallwatch_app;
GRANT SELECT ON role_grants TO hallwatch_app;
GRANT SELECT, INSERT ON audit_log TO hallwatch_app;
