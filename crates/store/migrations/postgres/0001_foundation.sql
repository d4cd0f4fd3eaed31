-- Foundation: registries, patient index, encounters, users and tokens, access log.
-- Append-only: never edit a migration that has shipped; add a new one.
-- Distribution: registry tables are small reference tables; patient-owned tables carry
-- region_key (GB/T 2260 county code) first in their primary key.

CREATE TABLE alliance (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    region_code TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE community (
    id UUID PRIMARY KEY,
    alliance_id UUID REFERENCES alliance (id),
    name TEXT NOT NULL,
    region_code TEXT NOT NULL,
    community_wide_read BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE facility (
    id UUID PRIMARY KEY,
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    tier TEXT NOT NULL,
    grade TEXT NOT NULL,
    region_code TEXT NOT NULL,
    insurance_region TEXT NOT NULL,
    community_id UUID REFERENCES community (id),
    capabilities TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX facility_community ON facility (community_id);

CREATE TABLE practitioner (
    id UUID PRIMARY KEY,
    name TEXT NOT NULL,
    licence_number TEXT UNIQUE,
    phone TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE practitioner_role (
    id UUID PRIMARY KEY,
    practitioner_id UUID NOT NULL REFERENCES practitioner (id),
    facility_id UUID NOT NULL REFERENCES facility (id),
    role TEXT NOT NULL,
    department TEXT,
    active BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX practitioner_role_practitioner ON practitioner_role (practitioner_id);
CREATE INDEX practitioner_role_facility ON practitioner_role (facility_id);

CREATE TABLE patient (
    region_key TEXT NOT NULL,
    id UUID NOT NULL,
    name TEXT NOT NULL,
    sex TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    phone TEXT,
    address TEXT,
    home_facility_id UUID REFERENCES facility (id),
    status TEXT NOT NULL,
    merged_into UUID,
    version BIGINT NOT NULL,
    -- the person's identifiers as JSON ([{"type", "value"}]), a copy of their
    -- patient_identifier rows written in the same transaction: reads need no second query
    identifiers TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- id first: lookups by id use the key itself; region_key is in it for distribution
    PRIMARY KEY (id, region_key)
);
CREATE INDEX patient_by_birth ON patient (birth_date, sex);
CREATE INDEX patient_by_name ON patient (name);
CREATE INDEX patient_by_phone ON patient (phone);
CREATE INDEX patient_by_merged_into ON patient (merged_into) WHERE merged_into IS NOT NULL;

-- One row per identifier; the primary key makes one identity number one person.
CREATE TABLE patient_identifier (
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    region_key TEXT NOT NULL,
    patient_id UUID NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (kind, value)
);

CREATE TABLE patient_merge (
    region_key TEXT NOT NULL,
    id UUID NOT NULL,
    survivor_id UUID NOT NULL,
    merged_id UUID NOT NULL,
    reason TEXT NOT NULL,
    merged_by UUID NOT NULL,
    merged_at BIGINT NOT NULL,
    undone_by UUID,
    undone_at BIGINT,
    undo_reason TEXT,
    PRIMARY KEY (region_key, id)
);
CREATE INDEX patient_merge_by_id ON patient_merge (id);
CREATE INDEX patient_merge_by_survivor ON patient_merge (survivor_id);
CREATE INDEX patient_merge_by_merged ON patient_merge (merged_id);

CREATE TABLE enrolment (
    region_key TEXT NOT NULL,
    id UUID NOT NULL,
    patient_id UUID NOT NULL,
    scheme TEXT NOT NULL,
    insured_region TEXT NOT NULL,
    filing_status TEXT NOT NULL,
    filed_region TEXT,
    valid_from TEXT NOT NULL,
    valid_to TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (region_key, id)
);
CREATE INDEX enrolment_by_patient ON enrolment (patient_id);

CREATE TABLE encounter (
    region_key TEXT NOT NULL,
    id UUID NOT NULL,
    patient_id UUID NOT NULL,
    facility_id UUID NOT NULL REFERENCES facility (id),
    department TEXT,
    practitioner_id UUID REFERENCES practitioner (id),
    class TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    diagnoses TEXT NOT NULL,
    procedures TEXT NOT NULL,
    total_cost_fen BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (region_key, id)
);
CREATE INDEX encounter_by_patient ON encounter (patient_id, started_at);
CREATE INDEX encounter_by_facility ON encounter (facility_id, patient_id);

CREATE TABLE app_user (
    id UUID PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    facility_id UUID NOT NULL REFERENCES facility (id),
    roles TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL
);

-- Session and API tokens, stored as SHA-256 of the token: a leaked table gives no token.
CREATE TABLE auth_token (
    token_hash BYTEA PRIMARY KEY,
    user_id UUID NOT NULL REFERENCES app_user (id),
    kind TEXT NOT NULL,
    label TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX auth_token_by_user ON auth_token (user_id);

CREATE TABLE access_log (
    region_key TEXT NOT NULL,
    id UUID NOT NULL,
    at BIGINT NOT NULL,
    user_id UUID NOT NULL,
    facility_id UUID NOT NULL,
    patient_id UUID NOT NULL,
    action TEXT NOT NULL,
    basis TEXT NOT NULL,
    reason TEXT,
    client_addr TEXT,
    PRIMARY KEY (region_key, id)
);
CREATE INDEX access_log_by_at ON access_log (at);
CREATE INDEX access_log_by_patient ON access_log (patient_id, at);
CREATE INDEX access_log_by_user ON access_log (user_id, at);
