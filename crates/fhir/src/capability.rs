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
    /// `GET /fhir/{type}/{id}/_history/{vid}` (which versions: [`Versioning::read_history`]).
    Vread,
    /// `PUT /fhir/{type}/{id}` with `If-Match` (issue 7).
    Update,
    /// `GET /fhir/{type}/{id}/_history`.
    HistoryInstance,
    SearchType,
    Create,
}

impl Interaction {
    pub fn as_str(self) -> &'static str {
        match self {
            Interaction::Read => "read",
            Interaction::Vread => "vread",
            Interaction::Update => "update",
            Interaction::HistoryInstance => "history-instance",
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
use Interaction::{Create, HistoryInstance, Read, SearchType, Update, Vread};

/// Everything the FHIR interface answers.
pub const RESOURCES: &[ResourceSupport] = &[
    ResourceSupport {
        kind: "Patient",
        interactions: &[Read, Vread, Update, HistoryInstance, SearchType, Create],
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
            p(
                "_lastUpdated",
                "date",
                "meta.lastUpdated (the record's last change), with prefixes; may repeat (a range); narrows",
            ),
        ],
        operations: &[PATIENT_EXPORT],
        paged: true,
        doc: "Reads and searches follow the record's access rule (care relationship or community policy) and are logged. \
              A search needs _id, identifier or name. Create registers the person by the JSON API's rules (identity \
              number checks, one record per number); elements the registry does not keep are refused, not dropped.",
    },
    ResourceSupport {
        kind: "Organization",
        interactions: &[Read, Vread, HistoryInstance, SearchType],
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
        interactions: &[Read, Vread, HistoryInstance, SearchType],
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
        interactions: &[Read, Vread, HistoryInstance, SearchType],
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
        doc: "What a practitioner does at a facility (read: one by its id). A search needs practitioner or \
              organization.",
    },
    ResourceSupport {
        kind: "Encounter",
        interactions: &[Read, Vread, HistoryInstance, SearchType],
        search: &[
            ID,
            p("patient", "reference", "Patient/<id> (required): the patient's visits and stays, of merged records too"),
            p("date", "date", "the period overlaps, with prefixes eq, ne, gt, lt, ge, le; may repeat (a range)"),
            p("class", "token", "AMB, IMP or EMER (v3 ActCode)"),
        ],
        operations: &[],
        paged: true,
        doc: "Reading the patient's encounters (read: one by its id) follows the record's access rule and is \
              logged (read_encounters).",
    },
    ResourceSupport {
        kind: "ServiceRequest",
        interactions: &[Read, Vread, SearchType, Create],
        search: &[
            p("patient", "reference", "Patient/<id>"),
            p("status", "token", "a comma list (any of)"),
            p("requester", "reference", "the sending Organization"),
            p("performer", "reference", "the receiving Organization"),
            p(
                "_lastUpdated",
                "date",
                "meta.lastUpdated (the referral's last step), with prefixes eq, ne, gt, lt, ge, le; may repeat (a range)",
            ),
        ],
        operations: &[],
        paged: false,
        doc: "A referral (the request); lists only referrals where the user's facility is a party.",
    },
    ResourceSupport {
        kind: "Task",
        interactions: &[Read, Vread, Update, HistoryInstance, SearchType],
        search: &[
            p("focus", "reference", "ServiceRequest/<id>"),
            p("owner", "reference", "the receiving Organization"),
            p("requester", "reference", "the sending Organization"),
            p("status", "token", "a comma list (any of)"),
            p("business-status", "token", "a referral state"),
            p("patient", "reference", "Patient/<id>"),
            p(
                "_lastUpdated",
                "date",
                "meta.lastUpdated (the referral's last step), with prefixes eq, ne, gt, lt, ge, le; may repeat (a range)",
            ),
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
        interactions: &[Read, Vread, HistoryInstance, SearchType],
        search: &[ID, p("patient", "reference", "Patient/<id> (this or _id is required)")],
        operations: &[Operation { name: "submit", definition: "http://hl7.org/fhir/OperationDefinition/Claim-submit" }],
        paged: true,
        doc: "Settle (use claim) or preview (preauthorization, predetermination) a bill. Read: a stored settlement's \
              claim as submitted (the settlement id); the rule and the log of its ClaimResponse.",
    },
    ResourceSupport {
        kind: "ClaimResponse",
        interactions: &[Read, Vread, HistoryInstance, SearchType],
        search: &[
            ID,
            p("patient", "reference", "Patient/<id> (this, request or _id is required)"),
            p("request", "reference", "Claim/<id>: the settlement's response (the same id)"),
        ],
        operations: &[],
        paged: true,
        doc: "A stored settlement; each item carries the split apportioned to the line (submitted, eligible, \
              deductible, copay, benefit, and http://tiercare.org/fhir/CodeSystem/settlement-split codes).",
    },
    ResourceSupport {
        kind: "DiagnosticReport",
        interactions: &[Read, Vread, HistoryInstance, SearchType, Create],
        search: &[
            p("patient", "reference", "Patient/<id> (required)"),
            p(
                "code",
                "token",
                "the report's own code (R4: not its results' codes): an imaging report's exam (LOINC or \
                 http://tiercare.org/fhir/CodeSystem/recognition-item); lab reports are http://loinc.org|11502-2. \
                 The chain result.code=<token> finds the lab reports with an observation of those items",
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
        interactions: &[Read, Vread, HistoryInstance, SearchType, Create],
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
    // issue 7, clinical resources derived from the domain's records (tiercare_fhir::clinical):
    // read and search only, nothing is created through FHIR
    ResourceSupport {
        kind: "Condition",
        interactions: &[Read, Vread, HistoryInstance, SearchType],
        search: &[
            p("_id", "token", "{encounter id}-dx-{rank}"),
            p("patient", "reference", "Patient/<id> (this or subject is required)"),
            p("subject", "reference", "Patient/<id>"),
            p(
                "code",
                "token",
                "ICD-10 医保版 2.0 (http://hl7.org/fhir/sid/icd-10|code, or the bare code); a comma list",
            ),
            p("encounter", "reference", "Encounter/<id>"),
            p("recorded-date", "date", "the encounter's start, with prefixes eq, ne, gt, lt, ge, le; may repeat"),
            p("category", "token", "encounter-diagnosis (every Condition here)"),
        ],
        operations: &[],
        paged: true,
        doc: "An encounter's diagnoses (category encounter-diagnosis; id {encounter}-dx-{rank}, rank 1 the principal \
              diagnosis). tiercare keeps no problem list: Conditions are not created through FHIR. Reads follow the \
              record's access rule and are logged (fhir_read_clinical).",
    },
    ResourceSupport {
        kind: "Procedure",
        interactions: &[Read, Vread, HistoryInstance, SearchType],
        search: &[
            p("_id", "token", "{encounter id}-px-{rank}"),
            p("patient", "reference", "Patient/<id> (this or subject is required)"),
            p("subject", "reference", "Patient/<id>"),
            p(
                "code",
                "token",
                "ICD-9-CM-3 医保版 (http://hl7.org/fhir/sid/icd-9-cm|code, or the bare code); a comma list",
            ),
            p("date", "date", "the encounter's period, with prefixes eq, ne, gt, lt, ge, le; may repeat (a range)"),
            p("encounter", "reference", "Encounter/<id>"),
            p("status", "token", "completed (the encounter ended) or unknown"),
        ],
        operations: &[],
        paged: true,
        doc: "The procedures recorded on an encounter (a stay's ICD-9-CM-3 codes; id {encounter}-px-{rank}). Not \
              created through FHIR. Reads follow the record's access rule and are logged (fhir_read_clinical).",
    },
    ResourceSupport {
        kind: "Appointment",
        interactions: &[Read, SearchType],
        search: &[
            p("_id", "token", "the referral id"),
            p("patient", "reference", "Patient/<id> (required)"),
            p("date", "date", "the scheduled time, with prefixes eq, ne, gt, lt, ge, le; may repeat (a range)"),
            p("status", "token", "booked, arrived, fulfilled, cancelled, noshow; a comma list"),
            p("based-on", "reference", "ServiceRequest/<id> (the referral)"),
            p("location", "reference", "Location/<id>: the receiving facility"),
            p("reason-code", "token", "the referral's diagnoses (ICD-10 医保版 2.0)"),
        ],
        operations: &[],
        paged: true,
        doc: "A referral's scheduling step (the same id as its ServiceRequest; basedOn it): start = end = the \
              scheduled time, participants the patient and the receiving facility's Location. A referral never \
              scheduled has none. Scheduled through the referral's steps, not created here. Reads follow the \
              record's access rule and are logged (fhir_read_clinical).",
    },
    ResourceSupport {
        kind: "CarePlan",
        interactions: &[Read, SearchType],
        search: &[
            p("_id", "token", "the referral id"),
            p("patient", "reference", "Patient/<id> (this or subject is required)"),
            p("subject", "reference", "Patient/<id>"),
            p("date", "date", "the period (acceptance day to the last due day), with prefixes; may repeat"),
            p("status", "token", "draft, active, completed, revoked; a comma list"),
            p("category", "token", "http://tiercare.org/fhir/CodeSystem/care-plan-category|downward-follow-up"),
        ],
        operations: &[],
        paged: true,
        doc: "A downward referral's follow-up plan (the same id as its ServiceRequest): one activity per follow-up \
              task once the receiver accepted, per plan step before. tiercare keeps no family-doctor contracts yet. \
              Not created through FHIR. Reads follow the record's access rule and are logged (fhir_read_clinical).",
    },
    ResourceSupport {
        kind: "Location",
        interactions: &[Read, Vread, HistoryInstance, SearchType],
        search: &[
            ID,
            p("name", "string", "starts with, or contains, the text (case-insensitive)"),
            p("organization", "reference", "Organization/<id>: the facility (the same id)"),
        ],
        operations: &[],
        paged: true,
        doc: "A facility's site (the same id as its Organization, its managingOrganization). Departments are not \
              Locations (they are free text on encounters and referrals).",
    },
    // issue 7, Bulk Data: a Group is not stored; its id names a facility or a community
    ResourceSupport {
        kind: "Group",
        interactions: &[],
        search: &[],
        operations: &[GROUP_EXPORT],
        paged: false,
        doc: "Only GET /fhir/Group/{id}/$export: the id of a facility (the patients registered there, \
              Patient.managingOrganization) or of a community (the patients registered at its facilities); the \
              Patient compartment's Patient, Coverage and Encounter. No Group resource is stored or read.",
    },
];

/// Bulk Data (issue 7): `GET /fhir/Patient/$export`.
pub const PATIENT_EXPORT: Operation =
    Operation { name: "export", definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export" };
/// Bulk Data (issue 7): `GET /fhir/Group/{id}/$export`.
pub const GROUP_EXPORT: Operation =
    Operation { name: "export", definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export" };
/// System-level operations (`rest.operation`): Bulk Data `$export` and our `$import` (the
/// Bulk Data import proposal's shape; asynchronous, NDJSON).
pub const SYSTEM_OPERATIONS: &[Operation] = &[
    Operation { name: "export", definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export" },
    Operation { name: "import", definition: "http://tiercare.org/fhir/OperationDefinition/import" },
];

/// How a type's versions are kept and changed (issue 7). A type not listed in [`VERSIONS`]
/// has no versions: `no-version`, no vread, no update, no conditional interactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versioning {
    pub kind: &'static str,
    /// `versioned` (meta.versionId and `ETag` from the record's own version counter) or
    /// `versioned-update` (also updated, with `If-Match` required).
    pub versioning: &'static str,
    /// vread answers earlier versions (rebuilt from what the domain records), not only the
    /// current one.
    pub read_history: bool,
    /// `If-None-Exist` on create.
    pub conditional_create: bool,
    /// What the ETag and meta.lastUpdated are taken from (the CapabilityStatement says it).
    pub source: &'static str,
}

/// The types with versions. Nothing is update-as-create (ids are the server's), nothing is
/// updated or deleted conditionally, and nothing is deleted: [`no_change_reason`].
pub const VERSIONS: &[Versioning] = &[
    Versioning {
        kind: "Patient",
        versioning: "versioned-update",
        read_history: true,
        conditional_create: true,
        source: "the patient record's version counter (bumped by every change: an update, a merge, an unmerge) \
                 and its last change time; each change keeps the version it replaces (vread, _history), from \
                 migration 0017 on (versions replaced before it are not kept)",
    },
    Versioning {
        kind: "ServiceRequest",
        versioning: "versioned",
        read_history: false,
        // issue 7: If-None-Exist runs the criteria as a ServiceRequest search of the same user
        conditional_create: true,
        source: "the referral's version (one per step); vread answers the current one (the history does \
                 not keep the department and the reach a step changed)",
    },
    Versioning {
        kind: "Task",
        versioning: "versioned-update",
        read_history: true,
        conditional_create: false,
        source: "the referral's version (one per step); every earlier version is rebuilt from the \
                 referral's steps (vread, _history). An update (If-Match required) is one step of the life \
                 cycle: the new businessStatus (or the state status means), with the reason in \
                 statusReason.text, the new receiver in owner, the time in restriction.period.start, the \
                 outcome or a clock time as a new output; the referral's other elements are sent as read",
    },
    Versioning {
        kind: "Claim",
        versioning: "versioned",
        read_history: true,
        conditional_create: false,
        source: "the settlement: version 1 as settled (created), version 2 once reversed (status cancelled, \
                 at the reversal's time)",
    },
    Versioning {
        kind: "ClaimResponse",
        versioning: "versioned",
        read_history: true,
        conditional_create: false,
        source: "the settlement: version 1 as settled (created), version 2 once reversed (status cancelled, \
                 at the reversal's time)",
    },
    unchanged("Organization"),
    unchanged("Practitioner"),
    unchanged("PractitionerRole"),
    unchanged("Location"),
    unchanged("Encounter"),
    unchanged("Condition"),
    unchanged("Procedure"),
    // issue 7: If-None-Exist runs the criteria as a search of the type by the same user
    conditionally_created(unchanged("DiagnosticReport")),
    conditionally_created(unchanged("Observation")),
];

/// `v` with conditional create (`If-None-Exist`).
const fn conditionally_created(v: Versioning) -> Versioning {
    Versioning { conditional_create: true, ..v }
}

/// The types whose records never change once stored (the registry's facilities,
/// practitioners and roles; a filed encounter, its diagnoses and procedures; a filed report
/// and its observations): one version, `1` (vread `_history/1`, a history of one entry).
/// Coverage is not one of them (its status follows the day), nor Appointment and CarePlan
/// (they follow the referral's steps).
pub const NEVER_CHANGED: &[&str] = &[
    "Organization",
    "Practitioner",
    "PractitionerRole",
    "Location",
    "Encounter",
    "Condition",
    "Procedure",
    "DiagnosticReport",
    "Observation",
];

const fn unchanged(kind: &'static str) -> Versioning {
    Versioning {
        kind,
        versioning: "versioned",
        read_history: true,
        conditional_create: false,
        source: "one version (1): the record is not changed once stored",
    }
}

/// The versioning of `kind` (`None`: no versions).
pub fn versioning(kind: &str) -> Option<&'static Versioning> {
    VERSIONS.iter().find(|v| v.kind == kind)
}

/// Why `kind` is not deleted (every type: nothing is deleted through FHIR).
pub fn no_delete_reason(kind: &str) -> String {
    match kind {
        "Patient" => "a patient record is never deleted: a duplicate is merged into the surviving record \
                      (POST /api/v1/patients/{id}/merge), which keeps both ids resolvable"
            .into(),
        "ServiceRequest" | "Task" => "a referral is never deleted: it is cancelled (its history is kept)".into(),
        "Claim" | "ClaimResponse" => "a settlement is never deleted: it is reversed (its record is kept)".into(),
        "Coverage" => "an enrolment is never deleted: it ends (valid_to)".into(),
        "DiagnosticReport" | "Observation" | "Encounter" => {
            format!("a {kind} is part of the medical record, which is never deleted")
        }
        _ => format!("{kind} is kept by the registry; it is not deleted through FHIR"),
    }
}

/// Why `kind` is not updated (every type without the update interaction).
pub fn no_update_reason(kind: &str) -> String {
    match kind {
        "ServiceRequest" => "a referral changes by its steps, each checked against its life cycle: update its \
                             Task (the same id) or POST /api/v1/referrals/{id}/transitions"
            .into(),
        "Claim" | "ClaimResponse" => "a settlement is not changed once stored: it is reversed and settled again".into(),
        "DiagnosticReport" | "Observation" => {
            format!("a {kind} is not changed once filed: the lab files a corrected report")
        }
        _ => format!("{kind} is not updated through FHIR"),
    }
}

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
                              those that page take _offset; every search takes _summary=count, and _sort, _include \
                              and _revinclude where a type lists them (searchInclude, searchRevInclude; the sort keys in \
                              the type's documentation). A searchInclude or searchRevInclude value ending :iterate \
                              is the include with that modifier (_include:iterate=Task:focus): it is followed from \
                              what was included too, on any search, to a fixed point (at most 5 levels and 1,000 \
                              included resources, a warning when either is reached). An unknown search parameter is ignored \
                              and reported in the Bundle (an OperationOutcome entry) unless the request says \
                              Prefer: handling=strict, which refuses it (400). Every error is an OperationOutcome.",
            "security": { "cors": false, "description": "Bearer token (POST /api/v1/auth/login or an API token)" },
            "resource": resources,
            "operation": SYSTEM_OPERATIONS
                .iter()
                .map(|o| json!({
                    "name": o.name,
                    "definition": o.definition,
                    "documentation": "asynchronous (Prefer: respond-async; 202 + Content-Location, status at \
                                      /fhir/bulk/{job}); system administrators only; a finished job's files are kept \
                                      24 hours by default (serve --bulk-retention-hours): the status answer and the \
                                      downloads carry Expires, then the status answers 404 (expired); see the \
                                      README's Bulk Data section",
                }))
                .collect::<Vec<_>>(),
            "interaction": [{
                "code": "transaction",
                "documentation": "POST /fhir, all or nothing in one store transaction: POST Patient (ifNoneExist), \
                                  PUT Patient/{id} and Task/{id} (ifMatch), POST ServiceRequest, DiagnosticReport and \
                                  Observation, then GET entries (read after the writes; a failed read is reported \
                                  in its entry). Entries refer to a Patient the Bundle registers by its fullUrl \
                                  (urn:uuid:), a DiagnosticReport to its Observations. Every entry is checked by its \
                                  standalone route's rules first; one refusal refuses the Bundle (an \
                                  OperationOutcome naming Bundle.entry[n]). Refused: Claim (settle with \
                                  Claim/$submit, its own idempotent operation), DELETE, PATCH, a resource written \
                                  twice, an unresolvable urn:uuid: reference, more than 500 entries.",
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
    // _include, _revinclude and _sort: the tables of `search` (issue 7)
    // each include also with `:iterate` (`_include:iterate=<the value before :iterate>`)
    let iterating = |v: String| [v.clone(), format!("{v}:iterate")];
    let includes: Vec<String> = crate::search::includes_of(r.kind).map(|i| i.value()).flat_map(iterating).collect();
    if !includes.is_empty() {
        v["searchInclude"] = json!(includes);
    }
    let revincludes: Vec<String> =
        crate::search::revincludes_of(r.kind).map(|i| i.value()).flat_map(iterating).collect();
    if !revincludes.is_empty() {
        v["searchRevInclude"] = json!(revincludes);
    }
    if !r.operations.is_empty() {
        v["operation"] = r.operations.iter().map(|o| json!({ "name": o.name, "definition": o.definition })).collect();
    }
    if r.interactions.contains(&Interaction::Read) {
        let ver = versioning(r.kind);
        v["versioning"] = json!(ver.map_or("no-version", |x| x.versioning));
        v["readHistory"] = json!(ver.is_some_and(|x| x.read_history));
        v["updateCreate"] = json!(false);
        v["conditionalCreate"] = json!(ver.is_some_and(|x| x.conditional_create));
        v["conditionalRead"] = json!("not-supported");
        v["conditionalUpdate"] = json!(false);
        v["conditionalDelete"] = json!("not-supported");
        if let Some(x) = ver {
            v["documentation"] = json!(format!("{} Versions: {}.", r.doc, x.source));
        }
    }
    // after the other documentation: the sort keys (issue 7, `search::SORTS`)
    let sorts: Vec<String> =
        crate::search::sort_keys(r.kind).iter().map(|k| format!("{} ({})", k.name, k.doc)).collect();
    if !sorts.is_empty() {
        let doc = v["documentation"].as_str().unwrap_or(r.doc).to_owned();
        v["documentation"] = json!(format!("{doc} _sort: {}.", sorts.join(", ")));
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
            // versions: vread iff versioned; earlier versions and history go together; an
            // update needs If-Match (versioned-update)
            let ver = versioning(r.kind);
            assert_eq!(ver.is_some(), r.interactions.contains(&Interaction::Vread), "{}", r.kind);
            assert_eq!(
                ver.is_some_and(|v| v.read_history),
                r.interactions.contains(&Interaction::HistoryInstance),
                "{}",
                r.kind
            );
            assert_eq!(
                ver.is_some_and(|v| v.versioning == "versioned-update"),
                r.interactions.contains(&Interaction::Update),
                "{}",
                r.kind
            );
            assert!(ver.is_none_or(|v| !v.conditional_create || r.interactions.contains(&Interaction::Create)));
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
        for v in VERSIONS {
            assert!(support(v.kind).is_some(), "{} has versions but is not served", v.kind);
        }
        for k in NEVER_CHANGED {
            assert!(versioning(k).is_some_and(|v| v.source.starts_with("one version")), "{k}");
        }
        assert_eq!(cs["rest"][0]["resource"].as_array().map(Vec::len), Some(RESOURCES.len()));
    }
}
