//! What the FHIR interface offers, as one table ([`RESOURCES`]): the CapabilityStatement
//! (`GET /fhir/metadata`) is written from it, and the server's search handlers take their
//! list of accepted parameters from it, so the statement cannot claim a parameter that a
//! search refuses (or accept one it does not declare). The server's tests walk the served
//! statement and call every interaction, parameter and operation it names.

use serde_json::{Value, json};

/// A RESTful interaction (<http://hl7.org/fhir/restful-interaction>) we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interaction {
    Read,
    SearchType,
    Create,
}

impl Interaction {
    pub fn as_str(self) -> &'static str {
        match self {
            Interaction::Read => "read",
            Interaction::SearchType => "search-type",
            Interaction::Create => "create",
        }
    }
}

/// A search parameter: its name, its type (<http://hl7.org/fhir/search-param-type>) and
/// what it does here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchParam {
    pub name: &'static str,
    pub kind: &'static str,
    pub doc: &'static str,
}

/// A named operation (`$submit`) and its official definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub name: &'static str,
    pub definition: &'static str,
}

/// One resource type we serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResourceSupport {
    pub kind: &'static str,
    pub interactions: &'static [Interaction],
    pub search: &'static [SearchParam],
    pub operations: &'static [Operation],
    /// `_offset` paging and `_summary=count` are offered by this type's search.
    pub paged: bool,
    pub doc: &'static str,
}

const fn p(name: &'static str, kind: &'static str, doc: &'static str) -> SearchParam {
    SearchParam { name, kind, doc }
}

const ID: SearchParam = p("_id", "token", "the logical id (a UUID)");
use Interaction::{Create, Read, SearchType};

/// Everything the FHIR interface answers.
pub const RESOURCES: &[ResourceSupport] = &[
    ResourceSupport {
        kind: "Patient",
        interactions: &[Read, SearchType, Create],
        search: &[
            ID,
            p(
                "identifier",
                "token",
                "system|value or value; the resident identity number's system is urn:oid:2.16.156.10011.1.3",
            ),
            p("name", "string", "the whole name (names are matched exactly, not by prefix)"),
            p("birthdate", "date", "with prefixes eq, ne, gt, lt, ge, le; narrows a search by identifier or name"),
            p("gender", "token", "male or female; narrows a search by identifier or name"),
        ],
        operations: &[],
        paged: true,
        doc: "Reads and searches follow the record's access rule (care relationship or community policy) and are logged. \
              A search needs _id, identifier or name. Create registers the person by the JSON API's rules (identity \
              number checks, one record per number); elements the registry does not keep are refused, not dropped.",
    },
    ResourceSupport {
        kind: "Organization",
        interactions: &[Read, SearchType],
        search: &[
            ID,
            p("identifier", "token", "the insurance facility code (system http://tiercare.org/fhir/sid/facility-code)"),
            p("name", "string", "starts with, or contains, the text (case-insensitive)"),
            p("type", "token", "organization-type code: every facility is prov"),
        ],
        operations: &[],
        paged: true,
        doc: "Facilities; the tier and grade travel as extensions.",
    },
    ResourceSupport {
        kind: "Practitioner",
        interactions: &[Read, SearchType],
        search: &[
            ID,
            p("identifier", "token", "the practising licence number"),
            p("name", "string", "starts with, or contains, the text (case-insensitive)"),
        ],
        operations: &[],
        paged: true,
        doc: "Practitioners of the registry.",
    },
    ResourceSupport {
        kind: "PractitionerRole",
        interactions: &[SearchType],
        search: &[
            p("practitioner", "reference", "Practitioner/<id>"),
            p("organization", "reference", "Organization/<id>"),
            p(
                "role",
                "token",
                "village_doctor, general_practitioner, physician, surgeon, nurse, technician, pharmacist",
            ),
            p("active", "token", "true or false"),
        ],
        operations: &[],
        paged: true,
        doc: "What a practitioner does at a facility. A search needs practitioner or organization.",
    },
    ResourceSupport {
        kind: "Encounter",
        interactions: &[SearchType],
        search: &[
            ID,
            p("patient", "reference", "Patient/<id> (required): the patient's visits and stays, of merged records too"),
            p("date", "date", "the period overlaps, with prefixes eq, ne, gt, lt, ge, le; may repeat (a range)"),
            p("class", "token", "AMB, IMP or EMER (v3 ActCode)"),
        ],
        operations: &[],
        paged: true,
        doc: "Reading the patient's encounters follows the record's access rule and is logged (read_encounters).",
    },
    ResourceSupport {
        kind: "ServiceRequest",
        interactions: &[Read, SearchType, Create],
        search: &[
            p("patient", "reference", "Patient/<id>"),
            p("status", "token", "a comma list (any of)"),
            p("requester", "reference", "the sending Organization"),
            p("performer", "reference", "the receiving Organization"),
        ],
        operations: &[],
        paged: false,
        doc: "A referral (the request); lists only referrals where the user's facility is a party.",
    },
    ResourceSupport {
        kind: "Task",
        interactions: &[Read, SearchType],
        search: &[
            p("focus", "reference", "ServiceRequest/<id>"),
            p("owner", "reference", "the receiving Organization"),
            p("requester", "reference", "the sending Organization"),
            p("status", "token", "a comma list (any of)"),
            p("business-status", "token", "a referral state"),
            p("patient", "reference", "Patient/<id>"),
        ],
        operations: &[],
        paged: false,
        doc: "A referral's fulfilment: the same id as its ServiceRequest.",
    },
    ResourceSupport {
        kind: "Coverage",
        interactions: &[Read, SearchType],
        search: &[
            p("patient", "reference", "Patient/<id> (this or beneficiary is required)"),
            p("beneficiary", "reference", "Patient/<id>"),
        ],
        operations: &[],
        paged: false,
        doc: "A patient's insurance enrolments (read: one by its id); every read is logged (read_coverage).",
    },
    ResourceSupport {
        kind: "Claim",
        interactions: &[Read],
        search: &[],
        operations: &[Operation { name: "submit", definition: "http://hl7.org/fhir/OperationDefinition/Claim-submit" }],
        paged: false,
        doc: "Settle (use claim) or preview (preauthorization, predetermination) a bill. Read: a stored settlement's \
              claim as submitted (the settlement id); the rule and the log of its ClaimResponse.",
    },
    ResourceSupport {
        kind: "ClaimResponse",
        interactions: &[Read],
        search: &[],
        operations: &[],
        paged: false,
        doc: "A stored settlement; each item carries the split apportioned to the line (submitted, eligible, \
              deductible, copay, benefit, and http://tiercare.org/fhir/CodeSystem/settlement-split codes).",
    },
    ResourceSupport {
        kind: "DiagnosticReport",
        interactions: &[Read, SearchType, Create],
        search: &[
            p("patient", "reference", "Patient/<id> (required)"),
            p(
                "code",
                "token",
                "an imaging report's exam (LOINC or http://tiercare.org/fhir/CodeSystem/recognition-item); \
                 lab reports are http://loinc.org|11502-2",
            ),
            p("date", "date", "the specimen (exam) time, with prefixes eq, ne, gt, lt, ge, le; may repeat (a range)"),
        ],
        operations: &[],
        paged: true,
        doc: "Lab and imaging reports (issue 5). Create: a lab system (role lab) of the performing facility; an \
              imaging report with a contained ImagingStudy (modality, body site), or a lab report with its \
              Observations contained; the JSON API's checks. The HR mark is the extension \
              http://tiercare.org/fhir/StructureDefinition/recognition-mark. Reads follow the record's access \
              rule and are logged (fhir_read_results). A lab system pushes a report with its Observations as a \
              transaction Bundle (POST /fhir), stored whole or not at all.",
    },
    ResourceSupport {
        kind: "Observation",
        interactions: &[Read, SearchType, Create],
        search: &[
            p("patient", "reference", "Patient/<id> (required)"),
            p(
                "code",
                "token",
                "LOINC (http://loinc.org) or the catalogue's local code (…/CodeSystem/recognition-item)",
            ),
            p("date", "date", "the specimen time, with prefixes eq, ne, gt, lt, ge, le; may repeat (a range)"),
        ],
        operations: &[],
        paged: true,
        doc: "Lab results (issue 5), one per observation; create stores a report of one observation. Reads follow \
              the record's access rule and are logged (fhir_read_results).",
    },
];

/// Result parameters every search takes (not search parameters of a resource).
pub const RESULT_PARAMS: &[&str] = &["_count", "_format", "_pretty"];
/// Result parameters of the searches that page.
pub const PAGING_PARAMS: &[&str] = &["_offset", "_summary"];

/// The support of `kind`, if we serve it.
pub fn support(kind: &str) -> Option<&'static ResourceSupport> {
    RESOURCES.iter().find(|r| r.kind == kind)
}

/// The declared search parameter `name` of `kind`.
pub fn search_param(kind: &str, name: &str) -> Option<&'static SearchParam> {
    support(kind)?.search.iter().find(|s| s.name == name)
}

/// Whether `name` is a result parameter that searches of `kind` take.
pub fn is_result_param(kind: &str, name: &str) -> bool {
    RESULT_PARAMS.contains(&name) || (support(kind).is_some_and(|r| r.paged) && PAGING_PARAMS.contains(&name))
}

/// The CapabilityStatement of this server (`instance`: what this installation does),
/// `date` its publication date (`YYYY-MM-DD`), `version` the software version.
pub fn capability_statement(date: &str, version: &str) -> Value {
    let resources: Vec<Value> = RESOURCES.iter().map(resource_json).collect();
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "tiercare",
        "kind": "instance",
        "software": { "name": "tiercare", "version": version },
        "implementation": { "description": "tiercare county medical community: FHIR R4 interface" },
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": "JSON only (_format json; _pretty true). Searches take _count (1 to 500, default 50); \
                              those that page take _offset and _summary=count. An unknown search parameter is ignored \
                              and reported in the Bundle (an OperationOutcome entry) unless the request says \
                              Prefer: handling=strict, which refuses it (400). Every error is an OperationOutcome.",
            "security": { "cors": false, "description": "Bearer token (POST /api/v1/auth/login or an API token)" },
            "resource": resources,
            "interaction": [{
                "code": "transaction",
                "documentation": "POST /fhir: a lab system's DiagnosticReports and their Observations (urn:uuid: \
                                  fullUrls), stored whole or not at all",
            }],
        }],
    })
}

fn resource_json(r: &ResourceSupport) -> Value {
    let mut v = json!({
        "type": r.kind,
        "profile": format!("http://hl7.org/fhir/StructureDefinition/{}", r.kind),
        "documentation": r.doc,
    });
    if !r.interactions.is_empty() {
        v["interaction"] = r.interactions.iter().map(|i| json!({ "code": i.as_str() })).collect();
    }
    if !r.search.is_empty() {
        v["searchParam"] =
            r.search.iter().map(|s| json!({ "name": s.name, "type": s.kind, "documentation": s.doc })).collect();
    }
    if !r.operations.is_empty() {
        v["operation"] = r.operations.iter().map(|o| json!({ "name": o.name, "definition": o.definition })).collect();
    }
    if r.interactions.contains(&Interaction::Read) {
        v["versioning"] = json!("no-version");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_listed_once_and_each_parameter_once_per_type() {
        for (i, r) in RESOURCES.iter().enumerate() {
            assert!(RESOURCES[..i].iter().all(|o| o.kind != r.kind), "{} twice", r.kind);
            for (j, s) in r.search.iter().enumerate() {
                assert!(r.search[..j].iter().all(|o| o.name != s.name), "{}.{} twice", r.kind, s.name);
            }
            // a search parameter without the search interaction would be a lie
            assert_eq!(r.search.is_empty(), !r.interactions.contains(&Interaction::SearchType), "{}", r.kind);
        }
    }

    #[test]
    fn the_statement_validates_against_the_official_schema() {
        let Some(dir) = crate::test_support::fhir_data() else { return };
        let schema = crate::test_support::read_json(&dir.join("fhir.schema.json"));
        let cs = capability_statement("2026-12-03", "0.1.0");
        // the shared schema's fhirVersion enum stops before 4.0.1 (data README): check the rest
        let errors: Vec<String> = crate::test_support::schema_errors(&schema, &cs)
            .into_iter()
            .filter(|e| !e.contains("/fhirVersion"))
            .collect();
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(cs["rest"][0]["resource"].as_array().map(Vec::len), Some(RESOURCES.len()));
    }
}
