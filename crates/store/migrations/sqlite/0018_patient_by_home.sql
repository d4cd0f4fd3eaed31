-- Issue 7: a FHIR Group export (`Group/{id}/$export`: a facility's or a community's
-- registered patients) walks the patients of each home facility in id order
-- (`BulkStore::patients_registered_at`), a keyset page at a time, instead of every patient.
CREATE INDEX patient_by_home ON patient (home_facility_id, id);
