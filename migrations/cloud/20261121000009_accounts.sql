-- Accounts (issue #7, part 1): e-mail addresses stored in one case, rotating refresh tokens,
-- and the lookup that turns a region admin's regions into schools.

-- Addresses are compared case-insensitively by storing them lower-cased; the application
-- lower-cases what it is given, this makes sure nothing else sneaks in a second spelling.
ALTER TABLE users ADD CONSTRAINT users_email_lower CHECK (email = lower(email));

-- Refresh tokens. The token itself (`hwr_` and 256 random bits) is shown to the client once
-- and stored only as its SHA-256: a fast hash is enough for a secret nobody can guess.
-- Every login starts a family; each refresh spends its token (`used_at`) and issues the next
-- one in the same family. A spent token presented again means it was copied: the whole
-- family is revoked (`revoked_at` on every row of it), the newest token included.
--
-- Not a tenant table (a user's tokens belong to no school): on Citus it stays on the
-- coordinator with `audit_log`. The service must read it before any scope exists (the token
-- is the only credential a refresh carries), so it is not under row-level security; the
-- RLS test lists it, with `users`, among the tables readable without a scope.
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    family_id  uuid NOT NULL,
    user_id    uuid NOT NULL REFERENCES users ON DELETE CASCADE,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_expiry ON refresh_tokens (expires_at);

GRANT SELECT, INSERT, UPDATE ON refresh_tokens TO hallwatch_app;

-- The schools of some regions, for a region admin's scope: `schools` is under row-level
-- security and the scope is what is being computed, so this is the second privileged lookup
-- (after `hallwatch_enrollment_token_school`). It answers school ids only.
CREATE FUNCTION hallwatch_region_schools(region_ids text[]) RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
SET hallwatch.all_schools = 'on' AS $$
    SELECT school_id FROM schools WHERE region_id = ANY (region_ids) ORDER BY school_id
$$;
REVOKE ALL ON FUNCTION hallwatch_region_schools(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hallwatch_region_schools(text[]) TO hallwatch_app;
