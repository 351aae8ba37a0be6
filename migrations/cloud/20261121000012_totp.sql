-- TOTP, the optional second factor (issue #7, part 1's last piece). `users.totp_secret`
-- (from the people migration) now holds the user's RFC 6238 secret sealed with AES-256-GCM
-- under the key in the cloud's data directory (`totp-key`), the user id as associated data:
-- a database dump or backup alone does not give anyone a working second factor.
--
-- A user's second factor is off (no secret), pending (a secret, `totp_enabled_at` NULL: the
-- user was shown it and has not yet proved their app holds it) or active (both). Login asks
-- for a code only when it is active. `totp_last_step` is the RFC 6238 time step of the last
-- code accepted: a code is accepted only for a later step, so a code cannot be used twice.
ALTER TABLE users
    ADD COLUMN totp_enabled_at timestamptz,
    ADD COLUMN totp_last_step  bigint,
    ADD CONSTRAINT users_totp_enabled_has_secret
        CHECK (totp_enabled_at IS NULL OR totp_secret IS NOT NULL),
    ADD CONSTRAINT users_totp_step_has_secret
        CHECK (totp_last_step IS NULL OR totp_secret IS NOT NULL),
    ADD CONSTRAINT users_totp_secret_size
        CHECK (totp_secret IS NULL OR octet_length(totp_secret) BETWEEN 16 AND 256);

-- The service enrols, confirms, checks and removes the second factor of the user it serves.
GRANT UPDATE (totp_secret, totp_enabled_at, totp_last_step) ON users TO hallwatch_app;
