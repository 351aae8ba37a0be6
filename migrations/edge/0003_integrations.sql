-- Integrations: clients on the school network (strobes, PA, signage) that read the gateway's
-- JSON messages under hallwatch/ with a client certificate from the gateway CA (OU =
-- integration). Their certificates join the one `certificates` table, so a serial stays unique
-- across the CA and a revocation lands on the same CRL as a device's.

CREATE TABLE integrations (
    id         TEXT PRIMARY KEY,
    state      TEXT NOT NULL CHECK (state IN ('active', 'revoked')),
    created_at INTEGER NOT NULL,
    revoked_at INTEGER,
    CHECK ((state = 'revoked') = (revoked_at IS NOT NULL))
) STRICT;

-- `certificates` gains the role 'integration' and an integration_id. SQLite cannot change a
-- CHECK in place, so the table is rebuilt (create, copy, drop, rename; no other table
-- references it). The AUTOINCREMENT high-water mark is carried over explicitly: copying the
-- rows only records the largest serial still present, and a serial must never be issued twice.
CREATE TABLE certificates_new (
    serial         INTEGER PRIMARY KEY AUTOINCREMENT,
    role           TEXT NOT NULL CHECK (role IN ('ca', 'server', 'device', 'integration')),
    device_id      TEXT REFERENCES devices (id),
    integration_id TEXT REFERENCES integrations (id),
    not_before     INTEGER NOT NULL,
    not_after      INTEGER NOT NULL,
    revoked_at     INTEGER,
    CHECK ((role = 'device') = (device_id IS NOT NULL)),
    CHECK ((role = 'integration') = (integration_id IS NOT NULL))
) STRICT;

INSERT INTO certificates_new (serial, role, device_id, not_before, not_after, revoked_at)
SELECT serial, role, device_id, not_before, not_after, revoked_at FROM certificates;

DELETE FROM sqlite_sequence WHERE name = 'certificates_new';
INSERT INTO sqlite_sequence (name, seq)
SELECT 'certificates_new', seq FROM sqlite_sequence WHERE name = 'certificates';

DROP TABLE certificates;
ALTER TABLE certificates_new RENAME TO certificates;

CREATE INDEX certificates_by_device ON certificates (device_id);
CREATE INDEX certificates_by_integration ON certificates (integration_id);
