-- Issue 7: FHIR Patient history. Each change of a patient record (an update of the
-- registration, a merge, an unmerge) first copies the row as it was into patient_version,
-- in the change's own transaction, so every superseded version can be read back
-- (vread, _history). The current version stays in patient. `updated_at` is when that
-- version was made (the row's updated_at at the time). Versions superseded before this
-- migration were not kept. Keyed like patient: the id first, the region (distribution
-- key) in the key.
CREATE TABLE patient_version (
    id BLOB NOT NULL,
    region_key TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    sex TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    phone TEXT,
    address TEXT,
    home_facility_id BLOB,
    status TEXT NOT NULL,
    merged_into BLOB,
    identifiers TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (id, region_key, version)
);
