-- Organizations, regions and schools (the tenants), and each school's buildings, floors and
-- rooms. Every tenant-owned table has `school_id` first in its primary key, so the schema can
-- be distributed by `school_id` (Citus) without change; organizations and regions are small
-- shared tables (Citus reference tables).

CREATE TABLE organizations (
    organization_id text PRIMARY KEY,
    name            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE regions (
    region_id       text PRIMARY KEY,
    organization_id text REFERENCES organizations,
    name            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE schools (
    school_id  text PRIMARY KEY,
    region_id  text NOT NULL REFERENCES regions,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schools_region ON schools (region_id);

CREATE TABLE buildings (
    school_id   text NOT NULL REFERENCES schools,
    building_id uuid NOT NULL,
    name        text NOT NULL,
    PRIMARY KEY (school_id, building_id)
);

CREATE TABLE floors (
    school_id    text NOT NULL,
    floor_id     uuid NOT NULL,
    building_id  uuid NOT NULL,
    floor_number integer NOT NULL,
    name         text,
    PRIMARY KEY (school_id, floor_id),
    UNIQUE (school_id, building_id, floor_number),
    FOREIGN KEY (school_id, building_id) REFERENCES buildings
);

CREATE TABLE rooms (
    school_id   text NOT NULL,
    room_id     uuid NOT NULL,
    floor_id    uuid NOT NULL,
    room_number text NOT NULL,
    name        text,
    capacity    integer,
    PRIMARY KEY (school_id, room_id),
    UNIQUE (school_id, floor_id, room_number),
    FOREIGN KEY (school_id, floor_id) REFERENCES floors
);

GRANT SELECT ON organizations, regions TO hallwatch_app;
GRANT SELECT, INSERT, UPDATE ON schools TO hallwatch_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON buildings, floors, rooms TO hallwatch_app;
