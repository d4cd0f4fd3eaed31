//! The OpenAPI 3.1 document at `/api/v1/openapi.json`, built from one table of routes.
//! Decision: a hand-kept table instead of utoipa annotations — it compiles in no time on
//! 2 cores, and `openapi_routes_are_served` (tests/http.rs) checks that every documented
//! route is served, so the table cannot drift silently.

use serde_json::{Map, Value, json};

/// (method, path, summary, request body schema (properties → type), needs auth)
pub type RouteDoc = (&'static str, &'static str, &'static str, &'static [(&'static str, &'static str)], bool);

pub const ROUTES: &[RouteDoc] = &[
    ("get", "/healthz", "Liveness: 200 once the server is ready", &[], false),
    ("get", "/api/v1/openapi.json", "This document", &[], false),
    (
        "post",
        "/api/v1/auth/login",
        "Sign in; returns a session token",
        &[("username", "string"), ("password", "string")],
        false,
    ),
    ("post", "/api/v1/auth/logout", "Revoke the current token", &[], true),
    ("get", "/api/v1/auth/me", "The signed-in user", &[], true),
    (
        "post",
        "/api/v1/auth/api-tokens",
        "Create an API token for a machine client (shown once)",
        &[("label", "string")],
        true,
    ),
    ("get", "/api/v1/alliances", "List medical alliances", &[], true),
    ("post", "/api/v1/alliances", "Create a medical alliance", &[("name", "string"), ("region_code", "string")], true),
    ("get", "/api/v1/communities", "List medical communities", &[], true),
    (
        "post",
        "/api/v1/communities",
        "Create a medical community",
        &[("name", "string"), ("region_code", "string"), ("alliance_id", "uuid"), ("community_wide_read", "boolean")],
        true,
    ),
    ("get", "/api/v1/facilities", "List facilities (filters: community_id, tier, region_code)", &[], true),
    (
        "post",
        "/api/v1/facilities",
        "Register a facility",
        &[
            ("code", "string"),
            ("name", "string"),
            ("tier", "string"),
            ("grade", "string"),
            ("region_code", "string"),
            ("insurance_region", "string"),
            ("community_id", "uuid"),
            ("capabilities", "object"),
        ],
        true,
    ),
    ("get", "/api/v1/facilities/{id}", "One facility", &[], true),
    ("get", "/api/v1/practitioners", "List practitioners (filter: facility_id)", &[], true),
    (
        "post",
        "/api/v1/practitioners",
        "Register a practitioner",
        &[("name", "string"), ("licence_number", "string"), ("phone", "string")],
        true,
    ),
    ("get", "/api/v1/practitioners/{id}", "A practitioner with their roles", &[], true),
    (
        "post",
        "/api/v1/practitioners/{id}/roles",
        "Give a practitioner a role at a facility",
        &[("facility_id", "uuid"), ("role", "string"), ("department", "string")],
        true,
    ),
    (
        "post",
        "/api/v1/patients",
        "Register a patient (identity number validated per GB 11643; one record per number)",
        &[
            ("name", "string"),
            ("sex", "string"),
            ("birth_date", "date"),
            ("identity_number", "string"),
            ("other_identifiers", "array"),
            ("phone", "string"),
            ("address", "string"),
            ("region_code", "string"),
            ("home_facility_id", "uuid"),
        ],
        true,
    ),
    (
        "post",
        "/api/v1/patients/lookup",
        "Who has this identifier? (logged)",
        &[("type", "string"), ("value", "string")],
        true,
    ),
    (
        "post",
        "/api/v1/patients/match",
        "Who matches these demographics? Ranked candidates; creates nothing (logged)",
        &[
            ("identity_number", "string"),
            ("name", "string"),
            ("birth_date", "date"),
            ("sex", "string"),
            ("phone", "string"),
        ],
        true,
    ),
    (
        "post",
        "/api/v1/patients/search",
        "Find active patients by exact name and/or phone (at least one; up to 50; numbers masked; logged)",
        &[("name", "string"), ("phone", "string")],
        true,
    ),
    ("get", "/api/v1/patients/{id}", "Read a patient's record (access rule applies; logged)", &[], true),
    (
        "post",
        "/api/v1/patients/{id}/break-glass",
        "Read a record without a care relationship, with a reason (logged)",
        &[("reason", "string")],
        true,
    ),
    (
        "post",
        "/api/v1/patients/{id}/merge",
        "Merge another record into this one",
        &[("merged_id", "uuid"), ("reason", "string")],
        true,
    ),
    ("get", "/api/v1/patients/{id}/merges", "Merge history of a record", &[], true),
    (
        "post",
        "/api/v1/patients/{id}/enrolments",
        "Add an insurance enrolment",
        &[
            ("scheme", "string"),
            ("insured_region", "string"),
            ("filing_status", "string"),
            ("filed_region", "string"),
            ("valid_from", "date"),
            ("valid_to", "date"),
        ],
        true,
    ),
    ("post", "/api/v1/merges/{id}/undo", "Undo a merge", &[("reason", "string")], true),
    (
        "post",
        "/api/v1/encounters",
        "Record an encounter at your facility",
        &[
            ("patient_id", "uuid"),
            ("facility_id", "uuid"),
            ("department", "string"),
            ("practitioner_id", "uuid"),
            ("class", "string"),
            ("started_at", "date-time"),
            ("ended_at", "date-time"),
            ("diagnoses", "array"),
            ("procedures", "array"),
            ("total_cost_fen", "integer"),
        ],
        true,
    ),
    ("get", "/api/v1/users", "List users", &[], true),
    (
        "post",
        "/api/v1/users",
        "Create a user",
        &[
            ("username", "string"),
            ("display_name", "string"),
            ("facility_id", "uuid"),
            ("roles", "array"),
            ("password", "string"),
        ],
        true,
    ),
    ("get", "/api/v1/access-log", "Query the access log (patient_id, user_id, basis, from, to, limit)", &[], true),
    (
        "get",
        "/api/v1/referrals",
        "Referral worklist: box=inbox|outbox|community; category, state (comma list), urgency, direction, green, \
         department, tier (the other party's), from, to (YYYY-MM-DD, China time), limit, before (the page cursor)",
        &[],
        true,
    ),
    (
        "post",
        "/api/v1/referrals",
        "Refer a patient from your facility (upward, downward, green channel)",
        &[
            ("patient_id", "uuid"),
            ("from_facility_id", "uuid"),
            ("from_department", "string"),
            ("to_facility_id", "uuid"),
            ("to_department", "string"),
            ("urgency", "string"),
            ("green_channel", "string"),
            ("reason", "string"),
            ("diagnoses", "array"),
            ("clinical_summary", "string"),
            ("discharge_summary", "string"),
            ("follow_up_plan", "array"),
            ("encounter_ids", "array"),
        ],
        true,
    ),
    ("get", "/api/v1/referrals/summary", "Counts for your facility's referral worklists", &[], true),
    (
        "get",
        "/api/v1/referrals/proposals",
        "Proposed receivers from your facility by capability and travel time (green_channel)",
        &[],
        true,
    ),
    ("post", "/api/v1/referrals/sweep", "Run the deadline sweeper now (expiry, green-channel escalation)", &[], true),
    ("get", "/api/v1/referrals/{id}", "A referral with its history (parties only; logged)", &[], true),
    (
        "post",
        "/api/v1/referrals/{id}/transitions",
        "Act on a referral: acknowledge, accept, reject, redirect, schedule, arrive, complete, cancel, record_timepoint",
        &[
            ("action", "string"),
            ("version", "integer"),
            ("note", "string"),
            ("reason", "string"),
            ("to_facility_id", "uuid"),
            ("at", "date-time"),
            ("department", "string"),
            ("outcome", "string"),
            ("timepoint", "string"),
        ],
        true,
    ),
    ("get", "/api/v1/follow-ups", "Your facility's follow-up tasks (status=open|done|all, due_by, limit)", &[], true),
    ("post", "/api/v1/follow-ups/{id}/complete", "Mark a follow-up task done", &[("note", "string")], true),
    ("get", "/api/v1/notifications", "Your facility's referral notifications (limit)", &[], true),
    ("post", "/api/v1/notifications/seen", "Mark your notifications seen up to now", &[], true),
    (
        "get",
        "/api/v1/patients/{id}/accumulators",
        "A person's fund paid this year toward the ceiling and the outpatient pool (filter: year)",
        &[],
        true,
    ),
    (
        "get",
        "/api/v1/settlement/catalogue",
        "Catalogue of your facility's place of treatment (filters: q, kind, limit, region)",
        &[],
        true,
    ),
    ("get", "/api/v1/settlement/policies", "The settlement policies in force and their source", &[], true),
    (
        "get",
        "/api/v1/settlement/reports/fund",
        "Fund payments per month, tier and facility (filters: from, to as YYYY-MM; group)",
        &[],
        true,
    ),
    (
        "get",
        "/api/v1/settlement/reports/outflow",
        "Out-of-county outflow of a county's insured (filters: from, to, region)",
        &[],
        true,
    ),
    (
        "get",
        "/api/v1/settlement/reports/clearing",
        "Cross-province clearing of one month (filter: month), inbound and outbound",
        &[],
        true,
    ),
    (
        "get",
        "/api/v1/settlements",
        "Daily settlement journal of a facility (filters: date, facility_id, patient_id, status, limit ≤ 1000, cursor: the `cursor` of the previous page; totals are the whole day's)",
        &[],
        true,
    ),
    (
        "post",
        "/api/v1/settlements",
        "Settle a bill (stored; idempotent per txn_no): the split to the fen with its explanation",
        &[
            ("txn_no", "string"),
            ("patient_id", "uuid"),
            ("encounter_id", "uuid"),
            ("setting", "string"),
            ("date", "date"),
            ("arrival", "object"),
            ("lines", "array"),
        ],
        true,
    ),
    (
        "post",
        "/api/v1/settlements/preview",
        "Pre-settle a bill (nothing stored)",
        &[
            ("patient_id", "uuid"),
            ("encounter_id", "uuid"),
            ("setting", "string"),
            ("date", "date"),
            ("arrival", "object"),
            ("lines", "array"),
        ],
        true,
    ),
    ("get", "/api/v1/settlements/{id}", "A settlement (logged: patient data)", &[], true),
    (
        "post",
        "/api/v1/settlements/{id}/reversal",
        "Reverse (冲正) a settlement; idempotent per txn_no",
        &[("txn_no", "string"), ("reason", "string")],
        true,
    ),
];

fn schema_of(t: &str) -> Value {
    match t {
        "uuid" => json!({"type": "string", "format": "uuid"}),
        "date" => json!({"type": "string", "format": "date"}),
        "date-time" => json!({"type": "string", "format": "date-time"}),
        "array" => json!({"type": "array"}),
        other => json!({"type": other}),
    }
}

/// Every documented route: [`ROUTES`] and the tables the capability parts keep beside their
/// handlers (`routes::results`, `routes::case_payment`, `routes::indicators`).
pub fn all_routes() -> impl Iterator<Item = &'static RouteDoc> {
    ROUTES
        .iter()
        .chain(crate::routes::results::OPENAPI)
        .chain(crate::routes::case_payment::OPENAPI)
        .chain(crate::routes::indicators::OPENAPI)
}

/// Build the document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, body, auth) in all_routes() {
        let mut op = json!({
            "summary": summary,
            "responses": {
                "200": {"description": "OK"},
                "4XX": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }
        });
        if path.contains("{id}") {
            op["parameters"] =
                json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}]);
        }
        if !body.is_empty() {
            let props: Map<String, Value> = body.iter().map(|(k, t)| ((*k).to_owned(), schema_of(t))).collect();
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": props}}}});
        }
        if *auth {
            op["security"] = json!([{"bearer": []}]);
        }
        let entry = paths.entry((*path).to_owned()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "tiercare API", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Tiered care for county medical communities. Errors: {error: {code, message, details}}."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "array"}}}}}}
        }
    })
}
