//! Referrals as FHIR R4 (issue 4): one referral is one `ServiceRequest` (what is asked:
//! for whom, by whom, of whom, why) and one `Task` with the same id (how its fulfilment
//! goes: `Task.status` follows the life cycle, `Task.output` carries the result back).
//! Hand-written JSON; the official R4 JSON Schema checks it in the tests.
//!
//! # Mapping
//!
//! | referral | ServiceRequest | Task |
//! |---|---|---|
//! | id | `id` | `id` (the same), `basedOn`/`focus` = `ServiceRequest/{id}` |
//! | version, updated_at | `meta.versionId`, `meta.lastUpdated` | the same |
//! | state | `status`: open → `active`, completed → `completed`, rejected/cancelled/expired → `revoked` | `status` (see [`task_status`]), `businessStatus` = the exact state |
//! | patient | `subject` = `Patient/{id}` | `for` |
//! | sender, current receiver | `requester` = `Organization/{id}`, `performer[0]` | `requester`, `owner` |
//! | urgency | `priority`: routine, urgent, emergency → `stat` | the same |
//! | diagnoses (ICD-10 医保版), reason | `reasonCode[i].coding` (system `http://hl7.org/fhir/sid/icd-10`, Chinese display), `reasonCode[0].text` | |
//! | clinical summary | `note[0].text` | |
//! | encounters | `supportingInfo` = `Encounter/{id}` | |
//! | requested_at | `authoredOn` | `authoredOn` (`lastModified` = updated_at) |
//! | reject/cancel/redirect reason | | `statusReason.text` |
//! | scheduled time | | `restriction.period.start` |
//! | first step after the request … entering a closed state | | `executionPeriod` |
//! | outcome | | `output` of type `outcome` (valueString) |
//! | green-channel clock times | | one `output` per time point (valueDateTime) |
//!
//! `category` and `code` are SNOMED CT 3457005 "Patient referral".
//!
//! # Canonical URLs (all defined by tiercare, under `http://tiercare.org/fhir/`)
//!
//! Extensions on ServiceRequest (`StructureDefinition/…`):
//! - `referral-direction` — valueCode `upward` | `downward` | `lateral` (computed by the
//!   server from the two tiers; ignored on create)
//! - `referral-reach` — valueCode `in_county` | `out_of_county` | `out_of_province`
//!   (computed; ignored on create)
//! - `green-channel` — valueCode of the centre needed: `chest_pain` | `stroke` | `trauma` |
//!   `critical_maternal` | `critical_newborn`
//! - `discharge-summary` — valueString (downward referrals)
//! - `follow-up-plan` — complex, one per step: sub-extensions `what` (valueString) and
//!   `due-in-days` (valuePositiveInt, days after acceptance) (downward referrals)
//! - `referral-from-department`, `referral-to-department` — valueString
//!
//! Code systems (`CodeSystem/…`):
//! - `referral-state` — our exact life-cycle state (`requested`, `redirected`, `accepted`,
//!   `scheduled`, `arrived`, `completed`, `rejected`, `cancelled`, `expired`), in
//!   `Task.businessStatus` (always present)
//! - `referral-output` — code `outcome`: the type of the `Task.output` carrying the result
//! - `referral-timepoint` — the green-channel clock times (`first_medical_contact`,
//!   `departed`, `door`, `ecg`, `ct`, `needle`, `balloon`), each the type of one
//!   `Task.output` with `valueDateTime` (we chose outputs over an extension: they are what the
//!   fulfilment produced, and a FHIR client reads them without knowing our extensions)
//! - `error` — machine error codes in `OperationOutcome.issue.details` (see `outcome`)
//!
//! # Creating through FHIR
//!
//! [`parse_service_request`] is strict: an element that is not R4 ServiceRequest is refused
//! (`structure`), an R4 element we do not use is refused (`not-supported`), so nothing a
//! client sends is silently dropped; `id`, `meta`, `text`, `language`, `authoredOn` and the
//! computed extensions are ignored (the server assigns them). The reason for referral is
//! `reasonCode[0].text`, or, without it, the first `note` (the other notes are then the
//! clinical summary). `priority` `asap` counts as urgent. The sending facility defaults to
//! the user's; `requester` may name it (`Organization/{id}`).

use serde_json::{Map, Value, json};
use tiercare_domain::codes::diagnosis_name;
use tiercare_domain::facility::{EmergencyCentre, Facility};
use tiercare_domain::referral::{
    Command, FollowUpItem, NewReferral, Referral, ReferralEvent, ReferralState, Timepoint, Urgency,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::outcome::{Issue, IssueType};
use crate::read::{CODING_KEYS, CONCEPT_KEYS, Reader};
use crate::{BASE, ICD10, coding, ext};

pub const SNOMED: &str = "http://snomed.info/sct";
/// SNOMED CT 3457005 "Patient referral".
pub const SNOMED_REFERRAL: &str = "3457005";
pub const STATE_SYSTEM: &str = "http://tiercare.org/fhir/CodeSystem/referral-state";
pub const OUTPUT_SYSTEM: &str = "http://tiercare.org/fhir/CodeSystem/referral-output";
pub const TIMEPOINT_SYSTEM: &str = "http://tiercare.org/fhir/CodeSystem/referral-timepoint";
const TASK_CODE_SYSTEM: &str = "http://hl7.org/fhir/CodeSystem/task-code";

pub const EXT_DIRECTION: &str = "referral-direction";
pub const EXT_REACH: &str = "referral-reach";
pub const EXT_GREEN_CHANNEL: &str = "green-channel";
pub const EXT_DISCHARGE_SUMMARY: &str = "discharge-summary";
pub const EXT_FOLLOW_UP_PLAN: &str = "follow-up-plan";
pub const EXT_FROM_DEPARTMENT: &str = "referral-from-department";
pub const EXT_TO_DEPARTMENT: &str = "referral-to-department";

/// The R4 ServiceRequest.status value set.
pub const SERVICE_REQUEST_STATUSES: [&str; 7] =
    ["draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"];

/// ServiceRequest.status of a referral in `state`.
pub fn service_request_status(state: ReferralState) -> &'static str {
    use ReferralState::*;
    match state {
        Requested | Redirected | Accepted | Scheduled | Arrived => "active",
        Completed => "completed",
        Rejected | Cancelled | Expired => "revoked",
    }
}

/// Task.status of a referral in `state` (the exact state is in `businessStatus`).
pub fn task_status(state: ReferralState) -> &'static str {
    use ReferralState::*;
    match state {
        Requested | Redirected => "requested",
        Accepted | Scheduled => "accepted",
        Arrived => "in-progress",
        Completed => "completed",
        Rejected => "rejected",
        Cancelled => "cancelled",
        Expired => "failed",
    }
}

/// The states a ServiceRequest `status` search value matches: `None` for a code outside
/// the R4 value set, an empty list for a valid code no referral has (`draft`, `on-hold`, …).
pub fn states_for_service_request_status(code: &str) -> Option<Vec<ReferralState>> {
    SERVICE_REQUEST_STATUSES
        .contains(&code)
        .then(|| ReferralState::ALL.iter().copied().filter(|s| service_request_status(*s) == code).collect())
}

/// The R4 Task.status value set.
pub const TASK_STATUSES: [&str; 12] = [
    "draft",
    "requested",
    "received",
    "accepted",
    "rejected",
    "ready",
    "cancelled",
    "in-progress",
    "on-hold",
    "failed",
    "completed",
    "entered-in-error",
];

/// The states a Task `status` search value matches (see
/// [`states_for_service_request_status`]).
pub fn states_for_task_status(code: &str) -> Option<Vec<ReferralState>> {
    TASK_STATUSES
        .contains(&code)
        .then(|| ReferralState::ALL.iter().copied().filter(|s| task_status(*s) == code).collect())
}

/// FHIR request priority of an urgency.
pub fn priority(u: Urgency) -> &'static str {
    match u {
        Urgency::Routine => "routine",
        Urgency::Urgent => "urgent",
        Urgency::Emergency => "stat",
    }
}

/// A FHIR instant in UTC, to the millisecond (what the store keeps, so a resource answered
/// on create is the one read back later).
fn instant(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let t = t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000).unwrap_or(t);
    t.format(&Rfc3339).unwrap_or_default()
}

fn reference(kind: &str, id: Uuid) -> Value {
    json!({ "reference": format!("{kind}/{id}") })
}

/// `Organization/{id}`, with the facility's name as display when it is that facility.
fn organization(id: Uuid, f: &Facility) -> Value {
    let mut v = reference("Organization", id);
    if f.id == id {
        v["display"] = json!(f.name);
    }
    v
}

fn referral_concept() -> Value {
    json!({ "coding": [{ "system": SNOMED, "code": SNOMED_REFERRAL, "display": "Patient referral" }] })
}

fn meta(r: &Referral) -> Value {
    json!({ "versionId": r.version.to_string(), "lastUpdated": instant(r.updated_at) })
}

/// The ServiceRequest of a referral. `from` and `to` are the sending and the current
/// receiving facility (their names become the references' display).
pub fn service_request(r: &Referral, from: &Facility, to: &Facility) -> Value {
    let mut extension = vec![
        json!({ "url": ext(EXT_DIRECTION), "valueCode": r.direction.as_str() }),
        json!({ "url": ext(EXT_REACH), "valueCode": r.reach.as_str() }),
    ];
    if let Some(c) = r.green_channel {
        extension.push(json!({ "url": ext(EXT_GREEN_CHANNEL), "valueCode": c.as_str() }));
    }
    if let Some(d) = r.discharge_summary.as_deref().filter(|d| !d.is_empty()) {
        extension.push(json!({ "url": ext(EXT_DISCHARGE_SUMMARY), "valueString": d }));
    }
    for item in &r.follow_up_plan {
        extension.push(json!({
            "url": ext(EXT_FOLLOW_UP_PLAN),
            "extension": [
                { "url": "what", "valueString": item.what },
                { "url": "due-in-days", "valuePositiveInt": item.due_in_days },
            ],
        }));
    }
    for (url, dept) in [(EXT_FROM_DEPARTMENT, &r.from_department), (EXT_TO_DEPARTMENT, &r.to_department)] {
        if let Some(d) = dept.as_deref().filter(|d| !d.is_empty()) {
            extension.push(json!({ "url": ext(url), "valueString": d }));
        }
    }
    let mut reason_code: Vec<Value> =
        r.diagnoses.iter().map(|d| json!({ "coding": [coding(ICD10, d, diagnosis_name(d))] })).collect();
    if !r.reason.is_empty() {
        match reason_code.first_mut() {
            Some(first) => first["text"] = json!(r.reason),
            None => reason_code.push(json!({ "text": r.reason })),
        }
    }
    let mut v = json!({
        "resourceType": "ServiceRequest",
        "id": r.id.to_string(),
        "meta": meta(r),
        "extension": extension,
        "status": service_request_status(r.state),
        "intent": "order",
        "category": [referral_concept()],
        "priority": priority(r.urgency),
        "code": referral_concept(),
        "subject": reference("Patient", r.patient_id),
        "authoredOn": instant(r.requested_at),
        "requester": organization(r.from_facility_id, from),
        "performer": [organization(r.to_facility_id, to)],
    });
    if !reason_code.is_empty() {
        v["reasonCode"] = json!(reason_code);
    }
    if !r.encounter_ids.is_empty() {
        v["supportingInfo"] = json!(r.encounter_ids.iter().map(|e| reference("Encounter", *e)).collect::<Vec<_>>());
    }
    if !r.clinical_summary.is_empty() {
        v["note"] = json!([{ "text": r.clinical_summary }]);
    }
    v
}

/// The Task tracking a referral's fulfilment. `history` is the referral's events (any
/// order); it gives the status reason and the execution period.
pub fn task(r: &Referral, history: &[ReferralEvent]) -> Value {
    use ReferralState::*;
    let mut events: Vec<&ReferralEvent> = history.iter().filter(|e| e.referral_id == r.id).collect();
    events.sort_by_key(|e| e.version);
    let sr = reference("ServiceRequest", r.id);
    let mut v = json!({
        "resourceType": "Task",
        "id": r.id.to_string(),
        "meta": meta(r),
        "basedOn": [sr],
        "status": task_status(r.state),
        "businessStatus": {
            "coding": [{ "system": STATE_SYSTEM, "code": r.state.as_str() }],
            "text": r.state.as_str(),
        },
        "intent": "order",
        "priority": priority(r.urgency),
        "code": { "coding": [{ "system": TASK_CODE_SYSTEM, "code": "fulfill", "display": "Fulfill the focal request" }] },
        "focus": sr,
        "for": reference("Patient", r.patient_id),
        "authoredOn": instant(r.requested_at),
        "lastModified": instant(r.updated_at),
        "requester": reference("Organization", r.from_facility_id),
        "owner": reference("Organization", r.to_facility_id),
    });
    let status_reason = match r.state {
        Rejected | Cancelled | Redirected => events
            .iter()
            .rev()
            .find(|e| {
                e.to_state == r.state && matches!(e.action.as_str(), "reject" | "cancel" | "redirect" | "escalate")
            })
            .and_then(|e| e.reason.clone()),
        Expired => Some("not acted on before the deadline".to_owned()),
        _ => None,
    };
    if let Some(reason) = status_reason.filter(|s| !s.is_empty()) {
        v["statusReason"] = json!({ "text": reason });
    }
    let start = events.iter().find(|e| e.action != "request").map(|e| e.at);
    let end = (!r.state.is_open()).then(|| {
        events
            .iter()
            .rev()
            .find(|e| e.to_state == r.state && e.from_state != Some(r.state))
            .map_or(r.updated_at, |e| e.at)
    });
    let mut period = Map::new();
    if let Some(s) = start.or(end) {
        period.insert("start".into(), json!(instant(s)));
    }
    if let Some(e) = end {
        period.insert("end".into(), json!(instant(e)));
    }
    if !period.is_empty() {
        v["executionPeriod"] = Value::Object(period);
    }
    if let Some(at) = r.scheduled_at {
        v["restriction"] = json!({ "period": { "start": instant(at) } });
    }
    let mut output: Vec<Value> = r
        .timepoints
        .iter()
        .map(|(tp, at)| {
            json!({
                "type": { "coding": [{ "system": TIMEPOINT_SYSTEM, "code": tp.as_str() }], "text": tp.as_str() },
                "valueDateTime": instant(*at),
            })
        })
        .collect();
    if let Some(outcome) = r.outcome.as_deref().filter(|o| r.state == Completed && !o.is_empty()) {
        output.push(json!({
            "type": { "coding": [{ "system": OUTPUT_SYSTEM, "code": "outcome" }], "text": "outcome" },
            "valueString": outcome,
        }));
    }
    if !output.is_empty() {
        v["output"] = json!(output);
    }
    v
}

/// The Task of version `version` of referral `r` (the current record), rebuilt from its
/// steps (`history`, any order): each step's event records the state it led to, the new
/// receiver (request, redirect, escalation), the scheduled time and the clock times, which
/// is everything a Task shows that a step changes; the outcome is set once, by the step
/// that completes. `None` when no step made that version (an unknown version).
pub fn task_at_version(r: &Referral, history: &[ReferralEvent], version: i64) -> Option<Value> {
    if version == r.version {
        return Some(task(r, history));
    }
    let mut events: Vec<&ReferralEvent> =
        history.iter().filter(|e| e.referral_id == r.id && e.version <= version).collect();
    events.sort_by_key(|e| e.version);
    let last = events.last().filter(|e| e.version == version)?;
    let mut then = r.clone();
    then.version = version;
    then.updated_at = last.at;
    then.state = last.to_state;
    then.scheduled_at = None;
    then.timepoints = Vec::new();
    for e in &events {
        if let Some(to) = e.to_facility_id {
            then.to_facility_id = to;
        }
        match (e.action.as_str(), e.timepoint, e.time) {
            ("schedule", _, Some(at)) => then.scheduled_at = Some(at),
            ("record_timepoint", Some(tp), Some(at)) => then.timepoints.push((tp, at)),
            ("arrive", _, _) if !then.timepoints.iter().any(|(t, _)| *t == Timepoint::Door) => {
                then.timepoints.push((Timepoint::Door, e.at))
            }
            _ => {}
        }
    }
    if then.state != ReferralState::Completed {
        then.outcome = None;
    }
    let earlier: Vec<ReferralEvent> = events.into_iter().cloned().collect();
    Some(task(&then, &earlier))
}

// ---------------------------------------------------------------------------------------
// Updating a Task: one step of the life cycle

/// Task elements a step may change (the rest are the referral's and must be sent as read).
const STEP_ELEMENTS: &[&str] = &["status", "businessStatus", "statusReason", "output", "restriction", "owner"];
/// Task elements the server computes from the step (sent values are ignored).
const COMPUTED: &[&str] = &["meta", "lastModified", "executionPeriod", "text"];

/// The step an updated Task asks for: `sent` is the Task as the client changed it, `current`
/// the Task as served now (`task`). The new state is `businessStatus` (our exact state) when
/// it changed, else the one `status` means (accepted, rejected, cancelled, in-progress →
/// arrived, completed); the step's argument comes from the element that carries it: a
/// rejection's or cancellation's reason from `statusReason.text`, a redirect's receiver from
/// `owner` (its reason from `statusReason.text`), a schedule's time from
/// `restriction.period.start`, the outcome from the `outcome` output, and with no change of
/// state one new clock-time output records that time. Every other element must be as read
/// (the referral's, changed only by its steps). `Ok(None)`: nothing changed.
pub fn task_step(current: &Value, sent: &Value) -> Result<Option<Command>, Vec<Issue>> {
    let mut rd = Reader::default();
    let Some(obj) = sent.as_object() else {
        rd.add(IssueType::Structure, "Task", "expected a Task (a JSON object)");
        return Err(rd.issues);
    };
    if obj.get("resourceType").and_then(Value::as_str) != Some("Task") {
        rd.add(IssueType::Invalid, "Task.resourceType", "expected resourceType Task");
        return Err(rd.issues);
    }
    let empty = Map::new();
    let cur = current.as_object().unwrap_or(&empty);
    let differs = |k: &str| obj.get(k) != cur.get(k);
    // the referral's own elements: as read
    let mut keys: Vec<&String> = obj.keys().chain(cur.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if !STEP_ELEMENTS.contains(&k.as_str()) && !COMPUTED.contains(&k.as_str()) && differs(k) {
            rd.add(
                IssueType::NotSupported,
                &format!("Task.{k}"),
                format!("{k} is the referral's and is not changed by an update (send it as read)"),
            );
        }
    }
    if !rd.issues.is_empty() {
        return Err(rd.issues);
    }
    let state_of = |t: &Value| -> Option<String> {
        t["businessStatus"]["coding"]
            .as_array()?
            .iter()
            .find(|c| c["system"] == STATE_SYSTEM)
            .and_then(|c| c["code"].as_str())
            .map(str::to_owned)
    };
    let now = state_of(current).and_then(|c| ReferralState::parse(&c));
    let target = match (state_of(sent), sent["status"].as_str()) {
        (Some(code), _) if Some(code.as_str()) != now.map(ReferralState::as_str) => match ReferralState::parse(&code) {
            Some(s) => Some(s),
            None => {
                rd.add(IssueType::CodeInvalid, "Task.businessStatus", format!("{code:?} is not a referral state"));
                return Err(rd.issues);
            }
        },
        (_, Some(status)) if differs("status") => match status {
            "accepted" => Some(ReferralState::Accepted),
            "rejected" => Some(ReferralState::Rejected),
            "cancelled" => Some(ReferralState::Cancelled),
            "in-progress" => Some(ReferralState::Arrived),
            "completed" => Some(ReferralState::Completed),
            other => {
                rd.add(
                    IssueType::BusinessRule,
                    "Task.status",
                    format!("no step of a referral leads to status {other:?} (businessStatus names our exact state)"),
                );
                return Err(rd.issues);
            }
        },
        _ => None,
    };
    if let (Some(t), Some(status)) = (target, sent["status"].as_str())
        && status != task_status(t)
        && differs("status")
    {
        rd.add(
            IssueType::BusinessRule,
            "Task.status",
            format!("status {status:?} does not go with businessStatus {:?} ({})", t.as_str(), task_status(t)),
        );
        return Err(rd.issues);
    }
    let reason = |rd: &mut Reader| -> Option<String> {
        match sent["statusReason"]["text"].as_str().filter(|_| differs("statusReason")) {
            Some(t) => Some(t.to_owned()),
            None => {
                rd.add(IssueType::Required, "Task.statusReason.text", "give the reason as statusReason.text");
                None
            }
        }
    };
    // what each step reads
    let (cmd, reads): (Option<Command>, &[&str]) = match target {
        None => match new_outputs(current, sent).as_slice() {
            [] => (None, &[]),
            [one] => (
                timepoint_output(&mut rd, one).map(|(tp, at)| Command::RecordTimepoint { timepoint: tp, at }),
                &["output"],
            ),
            _ => {
                rd.add(IssueType::BusinessRule, "Task.output", "record one clock time per update");
                (None, &["output"])
            }
        },
        Some(ReferralState::Accepted) => (Some(Command::Accept { note: None }), &[]),
        Some(ReferralState::Rejected) => (reason(&mut rd).map(|reason| Command::Reject { reason }), &["statusReason"]),
        Some(ReferralState::Cancelled) => (reason(&mut rd).map(|reason| Command::Cancel { reason }), &["statusReason"]),
        Some(ReferralState::Redirected) => {
            let to = if differs("owner") {
                rd.reference(&sent["owner"], "Task.owner", "Organization")
            } else {
                rd.add(IssueType::Required, "Task.owner", "a redirect names the new receiver as owner");
                None
            };
            let why = reason(&mut rd);
            (
                to.zip(why).map(|(to_facility_id, reason)| Command::Redirect { to_facility_id, reason }),
                &["owner", "statusReason"],
            )
        }
        Some(ReferralState::Scheduled) => {
            let at = sent["restriction"]["period"]["start"].as_str().filter(|_| differs("restriction"));
            let at = match at.map(|a| OffsetDateTime::parse(a, &Rfc3339)) {
                Some(Ok(t)) => Some(t),
                Some(Err(_)) => {
                    rd.add(IssueType::Value, "Task.restriction.period.start", "expected a dateTime with its offset");
                    None
                }
                None => {
                    rd.add(IssueType::Required, "Task.restriction.period.start", "a schedule gives its time here");
                    None
                }
            };
            (at.map(|at| Command::Schedule { at, department: None, note: None }), &["restriction"])
        }
        Some(ReferralState::Arrived) => (Some(Command::Arrive), &[]),
        Some(ReferralState::Completed) => {
            let outcome = new_outputs(current, sent)
                .into_iter()
                .find(|o| {
                    o["type"]["coding"][0]["system"] == OUTPUT_SYSTEM && o["type"]["coding"][0]["code"] == "outcome"
                })
                .and_then(|o| o["valueString"].as_str().map(str::to_owned));
            if outcome.is_none() {
                rd.add(
                    IssueType::Required,
                    "Task.output",
                    format!("completing gives the outcome as an output of type {OUTPUT_SYSTEM}|outcome (valueString)"),
                );
            }
            (outcome.map(|outcome| Command::Complete { outcome }), &["output"])
        }
        Some(s @ (ReferralState::Requested | ReferralState::Expired)) => {
            rd.add(
                IssueType::BusinessRule,
                "Task.businessStatus",
                format!("no user's step leads to {} (a referral expires by the deadline sweeper)", s.as_str()),
            );
            (None, &[])
        }
    };
    // a changed element the step does not read would be dropped: refuse it
    for k in STEP_ELEMENTS.iter().filter(|k| !["status", "businessStatus"].contains(k) && !reads.contains(k)) {
        if differs(k) {
            rd.add(IssueType::NotSupported, &format!("Task.{k}"), format!("this step does not change {k}"));
        }
    }
    if !rd.issues.is_empty() {
        return Err(rd.issues);
    }
    Ok(cmd)
}

/// Outputs of `sent` that `current` does not have.
fn new_outputs<'a>(current: &Value, sent: &'a Value) -> Vec<&'a Value> {
    let had = current["output"].as_array().map(Vec::as_slice).unwrap_or_default();
    sent["output"].as_array().into_iter().flatten().filter(|o| !had.contains(o)).collect()
}

/// A clock-time output: its timepoint and time.
fn timepoint_output(rd: &mut Reader, o: &Value) -> Option<(Timepoint, OffsetDateTime)> {
    let coding = &o["type"]["coding"][0];
    let tp =
        (coding["system"] == TIMEPOINT_SYSTEM).then(|| coding["code"].as_str().and_then(Timepoint::parse)).flatten();
    let at = o["valueDateTime"].as_str().and_then(|a| OffsetDateTime::parse(a, &Rfc3339).ok());
    match (tp, at) {
        (Some(tp), Some(at)) => Some((tp, at)),
        _ => {
            rd.add(
                IssueType::Value,
                "Task.output",
                format!("a new output records a clock time: type {TIMEPOINT_SYSTEM}|<timepoint>, valueDateTime"),
            );
            None
        }
    }
}

/// The FHIRPath in a Task of a step's field (`reason` → `Task.statusReason.text`).
pub fn task_field_expression(field: &str) -> Option<String> {
    let path = match field {
        "reason" => "Task.statusReason.text",
        "to_facility_id" => "Task.owner",
        "at" => "Task.restriction.period.start",
        "outcome" | "timepoint" => "Task.output",
        _ => return None,
    };
    Some(path.to_owned())
}

// ---------------------------------------------------------------------------------------
// Reading a ServiceRequest

/// R4 ServiceRequest elements we read.
const USED: &[&str] = &[
    "resourceType",
    "extension",
    "status",
    "intent",
    "category",
    "priority",
    "code",
    "subject",
    "encounter",
    "requester",
    "performer",
    "reasonCode",
    "supportingInfo",
    "note",
];
/// R4 elements the server assigns or that change nothing: accepted and ignored.
const IGNORED: &[&str] = &["id", "meta", "text", "language", "authoredOn"];
/// The other R4 ServiceRequest elements: valid FHIR we do not support.
const UNSUPPORTED: &[&str] = &[
    "implicitRules",
    "contained",
    "modifierExtension",
    "identifier",
    "instantiatesCanonical",
    "instantiatesUri",
    "basedOn",
    "replaces",
    "requisition",
    "doNotPerform",
    "orderDetail",
    "quantityQuantity",
    "quantityRatio",
    "quantityRange",
    "occurrenceDateTime",
    "occurrencePeriod",
    "occurrenceTiming",
    "asNeededBoolean",
    "asNeededCodeableConcept",
    "performerType",
    "locationCode",
    "locationReference",
    "reasonReference",
    "insurance",
    "specimen",
    "bodySite",
    "patientInstruction",
    "relevantHistory",
];

const INTENTS: [&str; 9] = [
    "proposal",
    "plan",
    "directive",
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
    "option",
];

const ANNOTATION_KEYS: &[&str] = &["id", "extension", "authorReference", "authorString", "time", "text"];

/// A CodeableConcept as read: its codings and its text.
struct Concept<'a> {
    codings: Vec<Coded<'a>>,
    text: Option<&'a str>,
}

/// One coding, with its FHIRPath.
struct Coded<'a> {
    path: String,
    system: &'a str,
    code: &'a str,
}

/// The ServiceRequest/Task readings; the shared ones are in [`crate::read`].
impl Reader {
    /// A CodeableConcept: its codings with their paths, and its text.
    fn concept<'a>(&mut self, v: &'a Value, path: &str) -> Option<Concept<'a>> {
        let o = self.object(v, path, CONCEPT_KEYS)?;
        let mut codings = Vec::new();
        if let Some(cs) = o.get("coding") {
            for (j, c) in self.array(cs, &format!("{path}.coding")).unwrap_or_default().iter().enumerate() {
                let cpath = format!("{path}.coding[{j}]");
                let Some(co) = self.object(c, &cpath, CODING_KEYS) else { continue };
                let system = co.get("system").and_then(|s| self.string(s, &format!("{cpath}.system")));
                let code = co.get("code").and_then(|s| self.string(s, &format!("{cpath}.code")));
                if let (Some(s), Some(c)) = (system, code) {
                    codings.push(Coded { path: cpath, system: s, code: c });
                }
            }
        }
        let text = o.get("text").and_then(|t| self.string(t, &format!("{path}.text")));
        Some(Concept { codings, text })
    }

    /// A concept that must say "Patient referral".
    fn referral_concept(&mut self, v: &Value, path: &str) {
        if let Some(concept) = self.concept(v, path)
            && !concept.codings.iter().any(|c| c.system == SNOMED && c.code == SNOMED_REFERRAL)
        {
            self.add(
                IssueType::CodeInvalid,
                path,
                format!("this server takes referrals: expected SNOMED CT {SNOMED_REFERRAL} (Patient referral)"),
            );
        }
    }

    /// The `value[x]` of an extension, which must be `value{kind}`.
    fn ext_value<'a>(&mut self, o: &'a Map<String, Value>, path: &str, kind: &str) -> Option<&'a Value> {
        let key = format!("value{kind}");
        let values: Vec<&String> = o.keys().filter(|k| k.starts_with("value")).collect();
        match (o.get(&key), values.len()) {
            (Some(v), 1) => Some(v),
            _ => {
                self.add(IssueType::Structure, path, format!("expected exactly one value, {key}"));
                None
            }
        }
    }

    fn ext_string(&mut self, o: &Map<String, Value>, path: &str) -> Option<String> {
        let v = self.ext_value(o, path, "String")?;
        self.string(v, &format!("{path}.valueString")).map(str::to_owned)
    }
}

fn extension_keys(o: &Map<String, Value>) -> Vec<&str> {
    let mut keys = vec!["id", "url", "extension"];
    keys.extend(o.keys().map(String::as_str).filter(|k| k.starts_with("value")));
    keys
}

/// Read a ServiceRequest a client sends to create a referral. Every problem is reported,
/// each naming its element (FHIRPath) where there is one.
pub fn parse_service_request(v: &Value) -> Result<NewReferral, Vec<Issue>> {
    let mut rd = Reader::default();
    let Some(o) = v.as_object() else {
        return Err(vec![Issue::error(IssueType::Structure, None, "the body is not a JSON object (a FHIR resource)")]);
    };
    match o.get("resourceType").and_then(Value::as_str) {
        Some("ServiceRequest") => {}
        Some(other) => {
            return Err(vec![Issue::error(
                IssueType::Invalid,
                None,
                format!("expected a ServiceRequest, got a {other}"),
            )]);
        }
        None => return Err(vec![Issue::error(IssueType::Structure, None, "resourceType is missing")]),
    }
    for k in o.keys() {
        let path = format!("ServiceRequest.{k}");
        if USED.contains(&k.as_str()) || IGNORED.contains(&k.as_str()) {
            continue;
        }
        if UNSUPPORTED.contains(&k.as_str()) {
            rd.add(IssueType::NotSupported, &path, format!("{k} is not supported for referrals"));
        } else if k.starts_with('_') {
            rd.add(IssueType::NotSupported, &path, "extensions on primitive values are not supported");
        } else {
            rd.add(IssueType::Structure, &path, format!("unknown element {k:?}: not part of an R4 ServiceRequest"));
        }
    }

    match o.get("status") {
        None => rd.add(IssueType::Required, "ServiceRequest.status", "status is required (active)"),
        Some(s) => {
            if let Some(s) = rd.code(s, "ServiceRequest.status", &SERVICE_REQUEST_STATUSES)
                && s != "active"
            {
                rd.add(IssueType::Value, "ServiceRequest.status", "a new referral is active");
            }
        }
    }
    match o.get("intent") {
        None => rd.add(IssueType::Required, "ServiceRequest.intent", "intent is required (order)"),
        Some(s) => {
            if let Some(s) = rd.code(s, "ServiceRequest.intent", &INTENTS)
                && s != "order"
            {
                rd.add(IssueType::NotSupported, "ServiceRequest.intent", "a referral is an order");
            }
        }
    }
    if let Some(c) = o.get("category") {
        let list = rd.array(c, "ServiceRequest.category").unwrap_or_default();
        for (i, c) in list.iter().enumerate() {
            rd.referral_concept(c, &format!("ServiceRequest.category[{i}]"));
        }
    }
    if let Some(c) = o.get("code") {
        rd.referral_concept(c, "ServiceRequest.code");
    }
    let urgency = match o.get("priority") {
        None => Some(Urgency::Routine),
        Some(p) => match rd.code(p, "ServiceRequest.priority", &["routine", "urgent", "asap", "stat"]) {
            Some("routine") => Some(Urgency::Routine),
            Some("urgent" | "asap") => Some(Urgency::Urgent),
            Some(_) => Some(Urgency::Emergency),
            None => None,
        },
    };
    let patient_id = match o.get("subject") {
        None => {
            rd.add(IssueType::Required, "ServiceRequest.subject", "subject is required: Patient/<id>");
            None
        }
        Some(s) => rd.reference(s, "ServiceRequest.subject", "Patient"),
    };
    let from_facility_id = o.get("requester").and_then(|r| rd.reference(r, "ServiceRequest.requester", "Organization"));
    let mut to_facility_id = None;
    match o.get("performer").map(|p| (p, rd.array(p, "ServiceRequest.performer"))) {
        None | Some((_, Some([]))) => {
            rd.add(IssueType::Required, "ServiceRequest.performer", "performer is required: [Organization/<id>]");
        }
        Some((_, None)) => {}
        Some((_, Some(list))) => {
            to_facility_id = rd.reference(&list[0], "ServiceRequest.performer[0]", "Organization");
            if list.len() > 1 {
                rd.add(IssueType::NotSupported, "ServiceRequest.performer[1]", "a referral goes to one facility");
            }
        }
    }

    let mut diagnoses = Vec::new();
    let mut reason: Option<String> = None;
    match o.get("reasonCode").map(|r| rd.array(r, "ServiceRequest.reasonCode")) {
        None | Some(Some([])) => rd.add(
            IssueType::Required,
            "ServiceRequest.reasonCode",
            format!("a referral names at least its principal diagnosis: reasonCode with a coding of {ICD10}"),
        ),
        Some(None) => {}
        Some(Some(list)) => {
            for (i, c) in list.iter().enumerate() {
                let path = format!("ServiceRequest.reasonCode[{i}]");
                let Some(Concept { codings, text }) = rd.concept(c, &path) else { continue };
                if i == 0 {
                    reason = text.map(str::to_owned);
                }
                match codings.iter().find(|c| c.system == ICD10) {
                    Some(coded) => {
                        let (cpath, code) = (&coded.path, coded.code.trim());
                        if diagnosis_name(code).is_some() {
                            diagnoses.push(code.to_owned());
                        } else {
                            rd.issues.push(
                                Issue::error(
                                    IssueType::CodeInvalid,
                                    Some(&format!("{cpath}.code")),
                                    format!("{code} is not an ICD-10 医保版 2.0 diagnosis code"),
                                )
                                .with_detail_code("diagnosis.unknown"),
                            );
                        }
                    }
                    None => rd.add(
                        IssueType::CodeInvalid,
                        &format!("{path}.coding"),
                        format!("no coding of {ICD10} (ICD-10 医保版 2.0)"),
                    ),
                }
            }
        }
    }

    let mut notes = Vec::new();
    if let Some(n) = o.get("note") {
        for (i, a) in rd.array(n, "ServiceRequest.note").unwrap_or_default().iter().enumerate() {
            let path = format!("ServiceRequest.note[{i}]");
            let Some(ao) = rd.object(a, &path, ANNOTATION_KEYS) else { continue };
            match ao.get("text") {
                None => rd.add(IssueType::Required, &format!("{path}.text"), "a note has a text"),
                Some(t) => {
                    if let Some(t) = rd.string(t, &format!("{path}.text")) {
                        notes.push(t.to_owned());
                    }
                }
            }
        }
    }
    if reason.is_none() && !notes.is_empty() {
        reason = Some(notes.remove(0));
    }
    if reason.is_none() && !rd.issues.iter().any(|i| i.expression.as_deref() == Some("ServiceRequest.reasonCode")) {
        rd.add(
            IssueType::Required,
            "ServiceRequest.reasonCode[0].text",
            "give the reason for referral as reasonCode[0].text (or a note)",
        );
    }

    let mut encounter_ids = Vec::new();
    if let Some(e) = o.get("encounter")
        && let Some(id) = rd.reference(e, "ServiceRequest.encounter", "Encounter")
    {
        encounter_ids.push(id);
    }
    if let Some(s) = o.get("supportingInfo") {
        for (i, r) in rd.array(s, "ServiceRequest.supportingInfo").unwrap_or_default().iter().enumerate() {
            if let Some(id) = rd.reference(r, &format!("ServiceRequest.supportingInfo[{i}]"), "Encounter") {
                encounter_ids.push(id);
            }
        }
    }

    let mut green_channel = None;
    let mut discharge_summary = None;
    let mut from_department = None;
    let mut to_department = None;
    let mut follow_up_plan = Vec::new();
    if let Some(e) = o.get("extension") {
        let mut seen: Vec<String> = Vec::new();
        for (i, x) in rd.array(e, "ServiceRequest.extension").unwrap_or_default().iter().enumerate() {
            let path = format!("ServiceRequest.extension[{i}]");
            let Some(xo) = x.as_object() else {
                rd.add(IssueType::Structure, &path, "expected a JSON object");
                continue;
            };
            let Some(xo) = rd.object(x, &path, &extension_keys(xo)) else { continue };
            let Some(url) = xo.get("url").and_then(|u| rd.string(u, &format!("{path}.url"))) else {
                if !xo.contains_key("url") {
                    rd.add(IssueType::Required, &format!("{path}.url"), "an extension has a url");
                }
                continue;
            };
            let Some(name) = url.strip_prefix(&format!("{BASE}/StructureDefinition/")) else {
                rd.add(IssueType::Extension, &path, format!("unknown extension {url}"));
                continue;
            };
            if name != EXT_FOLLOW_UP_PLAN && seen.iter().any(|s| s == name) {
                rd.add(IssueType::Value, &path, format!("the {name} extension is given twice"));
                continue;
            }
            seen.push(name.to_owned());
            match name {
                EXT_DIRECTION | EXT_REACH => {} // computed by the server
                EXT_GREEN_CHANNEL => {
                    let codes: Vec<&str> = EmergencyCentre::ALL.iter().map(|c| c.as_str()).collect();
                    if let Some(v) = rd.ext_value(xo, &path, "Code")
                        && let Some(c) = rd.code(v, &format!("{path}.valueCode"), &codes)
                    {
                        green_channel = EmergencyCentre::parse(c);
                    }
                }
                EXT_DISCHARGE_SUMMARY => discharge_summary = rd.ext_string(xo, &path),
                EXT_FROM_DEPARTMENT => from_department = rd.ext_string(xo, &path),
                EXT_TO_DEPARTMENT => to_department = rd.ext_string(xo, &path),
                EXT_FOLLOW_UP_PLAN => {
                    if let Some(item) = follow_up_item(&mut rd, xo, &path) {
                        follow_up_plan.push(item);
                    }
                }
                _ => rd.add(IssueType::Extension, &path, format!("unknown extension {url}")),
            }
        }
    }

    if !rd.issues.is_empty() {
        return Err(rd.issues);
    }
    match (patient_id, to_facility_id, urgency, reason) {
        (Some(patient_id), Some(to_facility_id), Some(urgency), Some(reason)) => {
            let clinical_summary = notes.join("\n\n");
            Ok(NewReferral {
                patient_id,
                from_facility_id,
                from_department,
                to_facility_id,
                to_department,
                urgency,
                green_channel,
                reason,
                diagnoses,
                clinical_summary,
                discharge_summary,
                follow_up_plan,
                encounter_ids,
            })
        }
        // every missing piece has added an issue above
        _ => Err(vec![Issue::error(IssueType::Invalid, None, "the ServiceRequest is incomplete")]),
    }
}

/// One step of the follow-up plan: `what` (valueString) and `due-in-days` (valuePositiveInt).
fn follow_up_item(rd: &mut Reader, xo: &Map<String, Value>, path: &str) -> Option<FollowUpItem> {
    if xo.keys().any(|k| k.starts_with("value")) {
        rd.add(IssueType::Structure, path, "follow-up-plan is complex: sub-extensions what and due-in-days, no value");
    }
    let Some(subs) = xo.get("extension").and_then(|s| rd.array(s, &format!("{path}.extension"))) else {
        rd.add(IssueType::Required, &format!("{path}.extension"), "follow-up-plan needs what and due-in-days");
        return None;
    };
    let (mut what, mut due) = (None, None);
    for (j, s) in subs.iter().enumerate() {
        let spath = format!("{path}.extension[{j}]");
        let Some(so) = s.as_object() else {
            rd.add(IssueType::Structure, &spath, "expected a JSON object");
            continue;
        };
        let Some(so) = rd.object(s, &spath, &extension_keys(so)) else { continue };
        match so.get("url").and_then(Value::as_str) {
            Some("what") => what = rd.ext_string(so, &spath),
            Some("due-in-days") => {
                let Some(v) = rd.ext_value(so, &spath, "PositiveInt") else { continue };
                match v.as_u64().and_then(|n| u16::try_from(n).ok()).filter(|n| *n >= 1) {
                    Some(n) => due = Some(n),
                    None => rd.add(
                        IssueType::Value,
                        &format!("{spath}.valuePositiveInt"),
                        "expected a positive whole number of days",
                    ),
                }
            }
            _ => rd.add(IssueType::Extension, &spath, "follow-up-plan has sub-extensions what and due-in-days"),
        }
    }
    match (what, due) {
        (Some(what), Some(due_in_days)) => Some(FollowUpItem { what, due_in_days }),
        (None, _) => {
            rd.add(IssueType::Required, &format!("{path}.extension"), "follow-up-plan needs what (valueString)");
            None
        }
        (_, None) => {
            rd.add(
                IssueType::Required,
                &format!("{path}.extension"),
                "follow-up-plan needs due-in-days (valuePositiveInt)",
            );
            None
        }
    }
}

/// The FHIRPath of a field of the domain's referral input (as named in validation
/// errors: `to_facility_id`, `diagnoses[1]`, `follow_up_plan[0].what`), for an
/// OperationOutcome; `None` for a field a ServiceRequest does not carry.
pub fn field_expression(field: &str) -> Option<String> {
    let by_ext = |name: &str| format!("ServiceRequest.extension('{}')", ext(name));
    let (head, index, rest) = match field.split_once('[') {
        Some((h, tail)) => {
            let (i, rest) = tail.split_once(']')?;
            (h, Some(i.parse::<usize>().ok()?), rest.strip_prefix('.'))
        }
        None => (field, None, None),
    };
    let base = match head {
        "patient_id" => "ServiceRequest.subject".to_owned(),
        "from_facility_id" => "ServiceRequest.requester".to_owned(),
        "to_facility_id" => "ServiceRequest.performer[0]".to_owned(),
        "urgency" => "ServiceRequest.priority".to_owned(),
        "reason" => "ServiceRequest.reasonCode[0].text".to_owned(),
        "diagnoses" => "ServiceRequest.reasonCode".to_owned(),
        "clinical_summary" => "ServiceRequest.note".to_owned(),
        "encounter_ids" => "ServiceRequest.supportingInfo".to_owned(),
        "green_channel" => by_ext(EXT_GREEN_CHANNEL),
        "discharge_summary" => by_ext(EXT_DISCHARGE_SUMMARY),
        "from_department" => by_ext(EXT_FROM_DEPARTMENT),
        "to_department" => by_ext(EXT_TO_DEPARTMENT),
        "follow_up_plan" => by_ext(EXT_FOLLOW_UP_PLAN),
        _ => return None,
    };
    let mut out = match index {
        Some(i) => format!("{base}[{i}]"),
        None => base,
    };
    match (head, rest) {
        (_, None) => {}
        ("follow_up_plan", Some("what")) => out.push_str(".extension('what')"),
        ("follow_up_plan", Some("due_in_days")) => out.push_str(".extension('due-in-days')"),
        _ => return None,
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use tiercare_domain::facility::{Capabilities, Grade, Tier};
    use tiercare_domain::referral::{Command, Context, Party, ReferralPolicy, Timepoint, apply, request};
    use time::Duration;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-23 02:00 UTC);
    const PATIENT: Uuid = Uuid::from_u128(0x77);

    fn facility(n: u128, tier: Tier, centres: &[EmergencyCentre]) -> Facility {
        Facility {
            id: Uuid::from_u128(n),
            code: format!("H{n:011}"),
            name: format!("机构{n}"),
            tier,
            grade: Grade::Level1,
            region_code: "511621".into(),
            insurance_region: "511600".into(),
            community_id: Some(Uuid::from_u128(999)),
            capabilities: Capabilities { departments: vec![], beds: 10, emergency_centres: centres.to_vec() },
            location: None,
            referral_policy: ReferralPolicy::default(),
        }
    }
    fn township() -> Facility {
        facility(1, Tier::Township, &[])
    }
    fn county() -> Facility {
        facility(2, Tier::County, &[EmergencyCentre::Stroke])
    }
    fn other_county() -> Facility {
        facility(3, Tier::County, &[EmergencyCentre::Stroke])
    }

    fn upward_input() -> NewReferral {
        NewReferral {
            patient_id: PATIENT,
            from_facility_id: None,
            from_department: Some("全科".into()),
            to_facility_id: county().id,
            to_department: Some("神经内科".into()),
            urgency: Urgency::Urgent,
            green_channel: None,
            reason: "疑似脑梗死，需进一步检查".into(),
            diagnoses: vec!["I63.900".into(), "I10.x00".into()],
            clinical_summary: "右侧肢体无力 2 小时".into(),
            discharge_summary: None,
            follow_up_plan: vec![],
            encounter_ids: vec![Uuid::from_u128(0xe1)],
        }
    }

    fn requested() -> Referral {
        request(
            upward_input(),
            Uuid::from_u128(500),
            "511621".into(),
            Uuid::from_u128(9),
            &township(),
            &county(),
            "511600",
            T0,
        )
        .expect("a valid referral")
        .referral
    }

    /// Apply `steps` (party, command, minutes after T0) to a new referral.
    fn walk(steps: Vec<(Party, Command, i64)>) -> (Referral, Vec<ReferralEvent>) {
        let change = request(
            upward_input(),
            Uuid::from_u128(500),
            "511621".into(),
            Uuid::from_u128(9),
            &township(),
            &county(),
            "511600",
            T0,
        )
        .expect("a valid referral");
        let (mut r, mut events) = (change.referral, vec![change.event]);
        let (from, other) = (township(), other_county());
        for (party, cmd, minutes) in steps {
            let receiver = if r.to_facility_id == other.id { other_county() } else { county() };
            let ctx = Context {
                now: T0 + Duration::minutes(minutes),
                party,
                user_id: (party != Party::System).then(|| Uuid::from_u128(10)),
                sender: &from,
                receiver: &receiver,
                new_receiver: Some(&other),
                home_region: "511600",
                new_id: Uuid::now_v7,
            };
            let c = apply(&r, &cmd, ctx).unwrap_or_else(|e| panic!("{} refused: {e}", cmd.code()));
            r = c.referral;
            events.push(c.event);
        }
        (r, events)
    }

    fn at(minutes: i64) -> OffsetDateTime {
        T0 + Duration::minutes(minutes)
    }

    /// A referral in each state, reached through the domain's own transitions.
    fn in_state(state: ReferralState) -> (Referral, Vec<ReferralEvent>) {
        use Command::*;
        use Party::{Receiver, Sender, System};
        let accept = (Receiver, Accept { note: None }, 5);
        let schedule = (Receiver, Schedule { at: at(24 * 60), department: None, note: None }, 60);
        let arrive = (Receiver, Arrive, 24 * 60 + 10);
        let steps = match state {
            ReferralState::Requested => vec![],
            ReferralState::Redirected => vec![(
                Receiver,
                Redirect { to_facility_id: other_county().id, reason: "本院无床位，转至兄弟医院".into() },
                7,
            )],
            ReferralState::Accepted => vec![accept],
            ReferralState::Scheduled => vec![accept, schedule],
            ReferralState::Arrived => vec![accept, schedule, arrive],
            ReferralState::Completed => {
                vec![
                    accept,
                    schedule,
                    arrive,
                    (Receiver, Complete { outcome: "溶栓后好转，建议回社区康复".into() }, 3 * 24 * 60),
                ]
            }
            ReferralState::Rejected => vec![(Receiver, Reject { reason: "本院无神经内科床位".into() }, 9)],
            ReferralState::Cancelled => vec![(Sender, Cancel { reason: "患者放弃转诊".into() }, 11)],
            // an urgent referral is due 4 hours after the request (ReferralPolicy default)
            ReferralState::Expired => vec![(System, Expire, 5 * 60)],
        };
        let (r, events) = walk(steps);
        assert_eq!(r.state, state);
        (r, events)
    }

    // -----------------------------------------------------------------------------------
    // earlier versions

    #[test]
    fn every_earlier_task_version_is_rebuilt_from_the_steps_as_it_was_served() {
        use Command::*;
        use Party::{Receiver, Sender};
        // a path through every step that changes what a Task shows: an acknowledgement, a
        // redirect (new owner), sender- and receiver-side clock times, a schedule, the
        // arrival (the door time), completion (the outcome) and a clock time after it
        let steps = vec![
            (Receiver, Acknowledge, 2),
            (Receiver, Redirect { to_facility_id: other_county().id, reason: "本院无床位".into() }, 7),
            (Sender, RecordTimepoint { timepoint: Timepoint::FirstMedicalContact, at: at(-30) }, 8),
            (Receiver, Accept { note: Some("同意接收".into()) }, 20),
            (Receiver, Schedule { at: at(24 * 60), department: Some("神经内科".into()), note: None }, 60),
            (Receiver, Arrive, 24 * 60 + 10),
            (Receiver, Complete { outcome: "好转出院".into() }, 3 * 24 * 60),
            (Receiver, RecordTimepoint { timepoint: Timepoint::Ct, at: at(24 * 60 + 30) }, 3 * 24 * 60 + 5),
        ];
        let (now, all) = walk(steps.clone());
        assert_eq!(now.version, steps.len() as i64 + 1);
        for k in 0..=steps.len() {
            // the referral as it was after k steps, and the Task served then
            let (then, events) = walk(steps[..k].to_vec());
            let served = task(&then, &events);
            let rebuilt = task_at_version(&now, &all, k as i64 + 1).expect("a version");
            assert_eq!(rebuilt, served, "version {}", k + 1);
            assert_eq!(rebuilt["meta"]["versionId"], (k + 1).to_string());
        }
        // the versions differ where a step changed them: the owner after the redirect, the
        // outcome only once completed
        let v1 = task_at_version(&now, &all, 1).expect("v1");
        let v3 = task_at_version(&now, &all, 3).expect("v3");
        assert_eq!(v1["owner"]["reference"], format!("Organization/{}", county().id));
        assert_eq!(v3["owner"]["reference"], format!("Organization/{}", other_county().id));
        assert!(task_at_version(&now, &all, 8).expect("v8")["output"].as_array().is_some_and(|o| o.len() == 3));
        assert_eq!(task_at_version(&now, &all, 0), None);
        assert_eq!(task_at_version(&now, &all, 10), None);
    }

    // -----------------------------------------------------------------------------------
    // an updated Task → one step

    fn changed(t: &Value, edits: &[(&str, Value)]) -> Value {
        let mut v = t.clone();
        for (k, val) in edits {
            v[*k] = val.clone();
        }
        v
    }

    #[track_caller]
    fn refused_at(r: Result<Option<Command>, Vec<Issue>>, code: IssueType, path: &str) {
        let issues = r.expect_err("refused");
        assert!(issues.iter().any(|i| i.code == code && i.expression.as_deref() == Some(path)), "{issues:#?}");
    }

    #[test]
    fn an_updated_task_names_one_step_and_its_argument() {
        let (r, h) = in_state(ReferralState::Requested);
        let t = task(&r, &h);
        // unchanged (computed elements aside): nothing to do
        assert_eq!(task_step(&t, &changed(&t, &[("lastModified", json!("2020-01-01T00:00:00Z"))])), Ok(None));
        // status alone says accept
        let accept = changed(&t, &[("status", json!("accepted"))]);
        assert_eq!(task_step(&t, &accept), Ok(Some(Command::Accept { note: None })));
        // a rejection needs its reason, in statusReason.text
        let reject = changed(&t, &[("status", json!("rejected"))]);
        refused_at(task_step(&t, &reject), IssueType::Required, "Task.statusReason.text");
        let reject = changed(&reject, &[("statusReason", json!({ "text": "本院无床位" }))]);
        assert_eq!(task_step(&t, &reject), Ok(Some(Command::Reject { reason: "本院无床位".into() })));
        // a redirect: businessStatus, the new owner and the reason
        let other = other_county().id;
        let redirect = changed(
            &t,
            &[
                ("businessStatus", json!({ "coding": [{ "system": STATE_SYSTEM, "code": "redirected" }] })),
                ("owner", json!({ "reference": format!("Organization/{other}") })),
                ("statusReason", json!({ "text": "转至兄弟医院" })),
            ],
        );
        assert_eq!(
            task_step(&t, &redirect),
            Ok(Some(Command::Redirect { to_facility_id: other, reason: "转至兄弟医院".into() }))
        );
        // a changed element the step does not read is refused, not dropped
        let accept_elsewhere = changed(&accept, &[("owner", json!({ "reference": format!("Organization/{other}") }))]);
        refused_at(task_step(&t, &accept_elsewhere), IssueType::NotSupported, "Task.owner");
        // the referral's own elements are not changed by an update
        let other_patient = changed(&accept, &[("for", json!({ "reference": "Patient/x" }))]);
        refused_at(task_step(&t, &other_patient), IssueType::NotSupported, "Task.for");
        // a status no step leads to
        refused_at(
            task_step(&t, &changed(&t, &[("status", json!("on-hold"))])),
            IssueType::BusinessRule,
            "Task.status",
        );
        let expire =
            changed(&t, &[("businessStatus", json!({ "coding": [{ "system": STATE_SYSTEM, "code": "expired" }] }))]);
        refused_at(task_step(&t, &expire), IssueType::BusinessRule, "Task.businessStatus");
        // status and businessStatus that disagree
        let both = changed(
            &t,
            &[
                ("status", json!("completed")),
                ("businessStatus", json!({ "coding": [{ "system": STATE_SYSTEM, "code": "accepted" }] })),
            ],
        );
        refused_at(task_step(&t, &both), IssueType::BusinessRule, "Task.status");
        refused_at(
            task_step(&t, &json!({ "resourceType": "ServiceRequest" })),
            IssueType::Invalid,
            "Task.resourceType",
        );
    }

    #[test]
    fn schedule_completion_and_clock_times_come_from_their_elements() {
        let (r, h) = in_state(ReferralState::Accepted);
        let t = task(&r, &h);
        let bs = |code: &str| json!({ "coding": [{ "system": STATE_SYSTEM, "code": code }] });
        let schedule = changed(
            &t,
            &[
                ("businessStatus", bs("scheduled")),
                ("restriction", json!({ "period": { "start": "2026-12-05T09:30:00+08:00" } })),
            ],
        );
        assert_eq!(
            task_step(&t, &schedule),
            Ok(Some(Command::Schedule { at: datetime!(2026-12-05 09:30 +08:00), department: None, note: None }))
        );
        refused_at(
            task_step(&t, &changed(&t, &[("businessStatus", bs("scheduled"))])),
            IssueType::Required,
            "Task.restriction.period.start",
        );
        // a clock time, no change of state
        let mut ct = t.clone();
        ct["output"] = json!([{
            "type": { "coding": [{ "system": TIMEPOINT_SYSTEM, "code": "ct" }] },
            "valueDateTime": "2026-03-10T09:00:00+08:00",
        }]);
        assert_eq!(
            task_step(&t, &ct),
            Ok(Some(Command::RecordTimepoint { timepoint: Timepoint::Ct, at: datetime!(2026-03-10 09:00 +08:00) }))
        );
        // completion reads the outcome output
        let (r, h) = in_state(ReferralState::Arrived);
        let t = task(&r, &h);
        let mut done = changed(&t, &[("status", json!("completed"))]);
        refused_at(task_step(&t, &done), IssueType::Required, "Task.output");
        let mut outputs = t["output"].as_array().cloned().unwrap_or_default();
        outputs.push(
            json!({ "type": { "coding": [{ "system": OUTPUT_SYSTEM, "code": "outcome" }] }, "valueString": "好转" }),
        );
        done["output"] = json!(outputs);
        assert_eq!(task_step(&t, &done), Ok(Some(Command::Complete { outcome: "好转".into() })));
        assert_eq!(task_step(&t, &changed(&t, &[("status", json!("in-progress"))])), Ok(None), "already arrived");
    }

    // -----------------------------------------------------------------------------------
    // life cycle → status

    #[test]
    fn every_state_maps_to_the_r4_task_status_value_set() {
        // the R4 Task.status value set (http://hl7.org/fhir/task-status), by hand
        let r4 = [
            "draft",
            "requested",
            "received",
            "accepted",
            "rejected",
            "ready",
            "cancelled",
            "in-progress",
            "on-hold",
            "failed",
            "completed",
            "entered-in-error",
        ];
        let expected = [
            (ReferralState::Requested, "requested"),
            (ReferralState::Redirected, "requested"),
            (ReferralState::Accepted, "accepted"),
            (ReferralState::Scheduled, "accepted"),
            (ReferralState::Arrived, "in-progress"),
            (ReferralState::Completed, "completed"),
            (ReferralState::Rejected, "rejected"),
            (ReferralState::Cancelled, "cancelled"),
            (ReferralState::Expired, "failed"),
        ];
        assert_eq!(expected.len(), ReferralState::ALL.len(), "every state is listed");
        for (state, status) in expected {
            assert!(r4.contains(&task_status(state)), "{state:?}");
            assert_eq!(task_status(state), status, "{state:?}");
            let (r, events) = in_state(state);
            let t = task(&r, &events);
            assert_eq!(t["status"], status, "{state:?}");
            assert_eq!(t["businessStatus"]["coding"][0]["system"], STATE_SYSTEM);
            assert_eq!(t["businessStatus"]["coding"][0]["code"], state.as_str(), "the exact state");
        }
    }

    #[test]
    fn every_state_maps_to_the_r4_service_request_status_value_set() {
        // http://hl7.org/fhir/request-status, by hand
        let r4 = ["draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"];
        use ReferralState::*;
        for (state, status) in [
            (Requested, "active"),
            (Redirected, "active"),
            (Accepted, "active"),
            (Scheduled, "active"),
            (Arrived, "active"),
            (Completed, "completed"),
            (Rejected, "revoked"),
            (Cancelled, "revoked"),
            (Expired, "revoked"),
        ] {
            assert!(r4.contains(&status));
            assert_eq!(service_request_status(state), status, "{state:?}");
        }
    }

    #[test]
    fn search_status_codes_select_the_states_they_stand_for() {
        use ReferralState::*;
        assert_eq!(
            states_for_service_request_status("active"),
            Some(vec![Requested, Accepted, Redirected, Scheduled, Arrived])
        );
        assert_eq!(states_for_service_request_status("revoked"), Some(vec![Rejected, Cancelled, Expired]));
        assert_eq!(states_for_service_request_status("draft"), Some(vec![]));
        assert_eq!(states_for_service_request_status("open"), None);
        assert_eq!(states_for_task_status("requested"), Some(vec![Requested, Redirected]));
        assert_eq!(states_for_task_status("accepted"), Some(vec![Accepted, Scheduled]));
        assert_eq!(states_for_task_status("failed"), Some(vec![Expired]));
        assert_eq!(states_for_task_status("ready"), Some(vec![]));
        assert_eq!(states_for_task_status("scheduled"), None);
    }

    #[test]
    fn task_carries_the_schedule_the_reasons_and_the_result() {
        let (r, events) = in_state(ReferralState::Scheduled);
        let t = task(&r, &events);
        assert_eq!(t["id"], "00000000-0000-0000-0000-0000000001f4");
        assert_eq!(t["basedOn"][0]["reference"], "ServiceRequest/00000000-0000-0000-0000-0000000001f4");
        assert_eq!(t["focus"]["reference"], "ServiceRequest/00000000-0000-0000-0000-0000000001f4");
        assert_eq!(t["for"]["reference"], "Patient/00000000-0000-0000-0000-000000000077");
        assert_eq!(t["requester"]["reference"], "Organization/00000000-0000-0000-0000-000000000001");
        assert_eq!(t["owner"]["reference"], "Organization/00000000-0000-0000-0000-000000000002");
        assert_eq!(t["intent"], "order");
        assert_eq!(t["priority"], "urgent");
        assert_eq!(t["businessStatus"]["coding"][0]["code"], "scheduled");
        // scheduled for T0 + 1 day = 2026-11-24 02:00 UTC
        assert_eq!(t["restriction"]["period"]["start"], "2026-11-24T02:00:00Z");
        // the first step after the request was the acceptance, 5 minutes after T0
        assert_eq!(t["executionPeriod"]["start"], "2026-11-23T02:05:00Z");
        assert!(t["executionPeriod"].get("end").is_none(), "still open");
        assert_eq!(t["authoredOn"], "2026-11-23T02:00:00Z");
        assert_eq!(t["lastModified"], "2026-11-23T03:00:00Z");
        assert_eq!(t["meta"]["versionId"], "3");
        assert!(t.get("output").is_none());
        assert!(t.get("statusReason").is_none());

        let (r, events) = in_state(ReferralState::Completed);
        let t = task(&r, &events);
        // arrival records the door time (24 h 10 min after T0), then the outcome
        let out = t["output"].as_array().expect("outputs");
        assert_eq!(out.len(), 2);
        assert_eq!(out[0]["type"]["coding"][0]["system"], TIMEPOINT_SYSTEM);
        assert_eq!(out[0]["type"]["coding"][0]["code"], "door");
        assert_eq!(out[0]["valueDateTime"], "2026-11-24T02:10:00Z");
        assert_eq!(out[1]["type"]["text"], "outcome");
        assert_eq!(out[1]["valueString"], "溶栓后好转，建议回社区康复");
        // completed three days after T0
        assert_eq!(t["executionPeriod"]["end"], "2026-11-26T02:00:00Z");

        let (r, events) = in_state(ReferralState::Rejected);
        let t = task(&r, &events);
        assert_eq!(t["statusReason"]["text"], "本院无神经内科床位");
        assert_eq!(t["executionPeriod"]["start"], "2026-11-23T02:09:00Z");
        assert_eq!(t["executionPeriod"]["end"], "2026-11-23T02:09:00Z");

        let (r, events) = in_state(ReferralState::Cancelled);
        assert_eq!(task(&r, &events)["statusReason"]["text"], "患者放弃转诊");

        let (r, events) = in_state(ReferralState::Redirected);
        let t = task(&r, &events);
        assert_eq!(t["statusReason"]["text"], "本院无床位，转至兄弟医院");
        assert_eq!(t["businessStatus"]["coding"][0]["code"], "redirected");
        assert_eq!(t["owner"]["reference"], "Organization/00000000-0000-0000-0000-000000000003", "the new receiver");

        let (r, events) = in_state(ReferralState::Expired);
        let t = task(&r, &events);
        assert_eq!(t["statusReason"]["text"], "not acted on before the deadline");
        assert_eq!(t["executionPeriod"]["end"], "2026-11-23T07:00:00Z");
    }

    #[test]
    fn times_are_utc_to_the_millisecond() {
        let t = datetime!(2026-11-23 10:00:00.123456789 +8);
        assert_eq!(instant(t), "2026-11-23T02:00:00.123Z");
    }

    #[test]
    fn green_channel_times_come_back_as_outputs() {
        let mut r = requested();
        r.timepoints = vec![(Timepoint::FirstMedicalContact, at(-30)), (Timepoint::Needle, at(50))];
        let t = task(&r, &[]);
        assert_eq!(t["output"][0]["type"]["coding"][0]["code"], "first_medical_contact");
        assert_eq!(t["output"][0]["valueDateTime"], "2026-11-23T01:30:00Z");
        assert_eq!(t["output"][1]["type"]["coding"][0]["code"], "needle");
        assert_eq!(t["output"][1]["valueDateTime"], "2026-11-23T02:50:00Z");
    }

    #[test]
    fn service_request_says_who_whom_and_why() {
        let (from, to) = (township(), county());
        let mut r = requested();
        r.green_channel = Some(EmergencyCentre::Stroke);
        r.urgency = Urgency::Emergency;
        let sr = service_request(&r, &from, &to);
        assert_eq!(sr["resourceType"], "ServiceRequest");
        assert_eq!(sr["id"], "00000000-0000-0000-0000-0000000001f4");
        assert_eq!(sr["status"], "active");
        assert_eq!(sr["intent"], "order");
        assert_eq!(sr["priority"], "stat");
        assert_eq!(sr["category"][0]["coding"][0]["system"], "http://snomed.info/sct");
        assert_eq!(sr["category"][0]["coding"][0]["code"], "3457005");
        assert_eq!(sr["code"]["coding"][0]["code"], "3457005");
        assert_eq!(sr["subject"]["reference"], "Patient/00000000-0000-0000-0000-000000000077");
        assert_eq!(sr["requester"]["reference"], "Organization/00000000-0000-0000-0000-000000000001");
        assert_eq!(sr["requester"]["display"], "机构1");
        assert_eq!(sr["performer"][0]["reference"], "Organization/00000000-0000-0000-0000-000000000002");
        assert_eq!(sr["performer"][0]["display"], "机构2");
        assert_eq!(sr["reasonCode"][0]["coding"][0]["system"], "http://hl7.org/fhir/sid/icd-10");
        assert_eq!(sr["reasonCode"][0]["coding"][0]["code"], "I63.900");
        assert_eq!(sr["reasonCode"][0]["coding"][0]["display"], "脑梗死");
        assert_eq!(sr["reasonCode"][0]["text"], "疑似脑梗死，需进一步检查");
        assert_eq!(sr["reasonCode"][1]["coding"][0]["code"], "I10.x00");
        assert_eq!(sr["reasonCode"][1]["coding"][0]["display"], "特发性（原发性）高血压");
        assert_eq!(sr["supportingInfo"][0]["reference"], "Encounter/00000000-0000-0000-0000-0000000000e1");
        assert_eq!(sr["note"][0]["text"], "右侧肢体无力 2 小时");
        assert_eq!(sr["authoredOn"], "2026-11-23T02:00:00Z");
        let ext_of = |name: &str| {
            sr["extension"]
                .as_array()
                .and_then(|a| {
                    a.iter().find(|e| e["url"] == format!("http://tiercare.org/fhir/StructureDefinition/{name}"))
                })
                .cloned()
                .unwrap_or(Value::Null)
        };
        assert_eq!(ext_of("referral-direction")["valueCode"], "upward");
        assert_eq!(ext_of("referral-reach")["valueCode"], "in_county");
        assert_eq!(ext_of("green-channel")["valueCode"], "stroke");
        assert_eq!(ext_of("referral-to-department")["valueString"], "神经内科");

        for (state, status) in [
            (ReferralState::Completed, "completed"),
            (ReferralState::Expired, "revoked"),
            (ReferralState::Scheduled, "active"),
        ] {
            let (r, _) = in_state(state);
            assert_eq!(service_request(&r, &from, &to)["status"], status);
        }
    }

    // -----------------------------------------------------------------------------------
    // reading

    #[test]
    fn parse_round_trips_an_upward_green_channel_referral() {
        let (from, to) = (township(), county());
        let mut input = upward_input();
        input.green_channel = Some(EmergencyCentre::Stroke);
        let r =
            request(input.clone(), Uuid::from_u128(500), "511621".into(), Uuid::from_u128(9), &from, &to, "511600", T0)
                .expect("valid")
                .referral;
        let back = parse_service_request(&service_request(&r, &from, &to)).expect("our own output reads back");
        assert_eq!(back.patient_id, input.patient_id);
        assert_eq!(back.from_facility_id, Some(from.id));
        assert_eq!(back.to_facility_id, input.to_facility_id);
        assert_eq!(back.from_department, input.from_department);
        assert_eq!(back.to_department, input.to_department);
        // a green-channel referral is an emergency (domain), which reads back as stat → emergency
        assert_eq!(back.urgency, Urgency::Emergency);
        assert_eq!(back.green_channel, Some(EmergencyCentre::Stroke));
        assert_eq!(back.reason, input.reason);
        assert_eq!(back.diagnoses, input.diagnoses);
        assert_eq!(back.clinical_summary, input.clinical_summary);
        assert_eq!(back.encounter_ids, input.encounter_ids);
        assert_eq!(back.discharge_summary, None);
        assert!(back.follow_up_plan.is_empty());
    }

    #[test]
    fn parse_round_trips_a_downward_referral_with_its_plan() {
        let (county, township) = (county(), township());
        let input = NewReferral {
            patient_id: PATIENT,
            from_facility_id: None,
            from_department: None,
            to_facility_id: township.id,
            to_department: None,
            urgency: Urgency::Routine,
            green_channel: None,
            reason: "脑梗死恢复期，回乡镇康复".into(),
            diagnoses: vec!["I63.900".into()],
            clinical_summary: String::new(),
            discharge_summary: Some("住院 12 天，溶栓后肢体肌力恢复至 4 级".into()),
            follow_up_plan: vec![
                FollowUpItem { what: "测血压、调整降压药".into(), due_in_days: 7 },
                FollowUpItem { what: "康复评估".into(), due_in_days: 30 },
            ],
            encounter_ids: vec![],
        };
        let r = request(
            input.clone(),
            Uuid::from_u128(501),
            "511621".into(),
            Uuid::from_u128(9),
            &county,
            &township,
            "511600",
            T0,
        )
        .expect("valid")
        .referral;
        let sr = service_request(&r, &county, &township);
        assert!(sr.get("note").is_none(), "no empty note");
        let back = parse_service_request(&sr).expect("reads back");
        assert_eq!(back.urgency, Urgency::Routine);
        assert_eq!(back.discharge_summary, input.discharge_summary);
        assert_eq!(back.follow_up_plan, input.follow_up_plan);
        assert_eq!(back.clinical_summary, "");
        assert_eq!(back.reason, input.reason);
    }

    /// A minimal ServiceRequest a hospital system would send.
    fn minimal() -> Value {
        json!({
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "priority": "urgent",
            "subject": { "reference": "Patient/00000000-0000-0000-0000-000000000077" },
            "performer": [{ "reference": "Organization/00000000-0000-0000-0000-000000000002" }],
            "reasonCode": [{
                "coding": [
                    { "system": "http://snomed.info/sct", "code": "230690007" },
                    { "system": "http://hl7.org/fhir/sid/icd-10", "code": "I63.900" }
                ],
                "text": "疑似脑梗死"
            }],
            "note": [{ "text": "右侧肢体无力 2 小时" }, { "text": "血压 180/100" }],
            "extension": [{ "url": "http://tiercare.org/fhir/StructureDefinition/green-channel", "valueCode": "stroke" }]
        })
    }

    #[test]
    fn a_minimal_service_request_reads() {
        let n = parse_service_request(&minimal()).expect("valid");
        assert_eq!(n.patient_id, PATIENT);
        assert_eq!(n.to_facility_id, Uuid::from_u128(2));
        assert_eq!(n.from_facility_id, None);
        assert_eq!(n.urgency, Urgency::Urgent);
        assert_eq!(n.green_channel, Some(EmergencyCentre::Stroke));
        assert_eq!(n.diagnoses, vec!["I63.900".to_owned()], "the ICD-10 coding, the SNOMED one ignored");
        assert_eq!(n.reason, "疑似脑梗死");
        assert_eq!(n.clinical_summary, "右侧肢体无力 2 小时\n\n血压 180/100");

        // without reasonCode text the first note is the reason
        let mut v = minimal();
        v["reasonCode"][0].as_object_mut().map(|o| o.remove("text"));
        let n = parse_service_request(&v).expect("valid");
        assert_eq!(n.reason, "右侧肢体无力 2 小时");
        assert_eq!(n.clinical_summary, "血压 180/100");

        let mut v = minimal();
        v["priority"] = json!("stat");
        assert_eq!(parse_service_request(&v).map(|n| n.urgency).ok(), Some(Urgency::Emergency));
        v["priority"] = json!("asap");
        assert_eq!(parse_service_request(&v).map(|n| n.urgency).ok(), Some(Urgency::Urgent));
        v.as_object_mut().map(|o| o.remove("priority"));
        assert_eq!(parse_service_request(&v).map(|n| n.urgency).ok(), Some(Urgency::Routine));
    }

    fn issues_of(v: &Value) -> Vec<Issue> {
        match parse_service_request(v) {
            Ok(_) => panic!("accepted: {v}"),
            Err(issues) => issues,
        }
    }

    #[test]
    fn each_parse_error_names_its_expression() {
        let uuid = "00000000-0000-0000-0000-000000000005";
        type Edit = Box<dyn Fn(&mut Value)>;
        let set = |path: &'static str, value: Value| -> Edit {
            Box::new(move |v: &mut Value| {
                // set or add the last step of the JSON pointer
                let (parent, key) = path.rsplit_once('/').expect("a JSON pointer");
                match v.pointer_mut(parent).expect("the parent exists") {
                    Value::Object(o) => {
                        o.insert(key.to_owned(), value.clone());
                    }
                    Value::Array(a) => a[key.parse::<usize>().expect("an index")] = value.clone(),
                    other => panic!("cannot set {path} in {other}"),
                }
            })
        };
        let remove = |key: &'static str| -> Edit {
            Box::new(move |v: &mut Value| {
                v.as_object_mut().map(|o| o.remove(key));
            })
        };
        let cases: Vec<(&str, Edit, IssueType, &str)> = vec![
            ("no subject", remove("subject"), IssueType::Required, "ServiceRequest.subject"),
            (
                "subject not a UUID",
                set("/subject/reference", json!("Patient/511621196203081027")),
                IssueType::Value,
                "ServiceRequest.subject",
            ),
            (
                "subject a practitioner",
                set("/subject/reference", json!(format!("Practitioner/{uuid}"))),
                IssueType::Value,
                "ServiceRequest.subject",
            ),
            (
                "subject a string",
                set("/subject", json!(format!("Patient/{uuid}"))),
                IssueType::Structure,
                "ServiceRequest.subject",
            ),
            (
                "subject with an unknown key",
                set("/subject/ref", json!("x")),
                IssueType::Structure,
                "ServiceRequest.subject.ref",
            ),
            (
                "subject by identifier",
                set("/subject", json!({ "identifier": { "value": "1" } })),
                IssueType::NotSupported,
                "ServiceRequest.subject.identifier",
            ),
            ("no performer", remove("performer"), IssueType::Required, "ServiceRequest.performer"),
            ("empty performer", set("/performer", json!([])), IssueType::Required, "ServiceRequest.performer"),
            (
                "performer a patient",
                set("/performer/0/reference", json!(format!("Patient/{uuid}"))),
                IssueType::Value,
                "ServiceRequest.performer[0]",
            ),
            (
                "two performers",
                set(
                    "/performer",
                    json!([{ "reference": format!("Organization/{uuid}") }, { "reference": format!("Organization/{uuid}") }]),
                ),
                IssueType::NotSupported,
                "ServiceRequest.performer[1]",
            ),
            (
                "performer an object",
                set("/performer", json!({ "reference": format!("Organization/{uuid}") })),
                IssueType::Structure,
                "ServiceRequest.performer",
            ),
            (
                "requester a practitioner",
                set("/requester", json!({ "reference": format!("Practitioner/{uuid}") })),
                IssueType::Value,
                "ServiceRequest.requester",
            ),
            (
                "unknown ICD-10 code",
                set("/reasonCode/0/coding/1/code", json!("X99.999")),
                IssueType::CodeInvalid,
                "ServiceRequest.reasonCode[0].coding[1].code",
            ),
            (
                "no ICD-10 coding",
                set("/reasonCode/0/coding/1/system", json!("http://hl7.org/fhir/sid/icd-10-cm")),
                IssueType::CodeInvalid,
                "ServiceRequest.reasonCode[0].coding",
            ),
            ("no reasonCode", remove("reasonCode"), IssueType::Required, "ServiceRequest.reasonCode"),
            (
                "reasonCode an object",
                set("/reasonCode", json!({ "text": "x" })),
                IssueType::Structure,
                "ServiceRequest.reasonCode",
            ),
            (
                "coding code a number",
                set("/reasonCode/0/coding/1/code", json!(63)),
                IssueType::Structure,
                "ServiceRequest.reasonCode[0].coding[1].code",
            ),
            ("unknown element", set("/foo", json!(1)), IssueType::Structure, "ServiceRequest.foo"),
            (
                "R4 element we do not support",
                set("/occurrenceDateTime", json!("2026-12-01")),
                IssueType::NotSupported,
                "ServiceRequest.occurrenceDateTime",
            ),
            ("primitive extension", set("/_status", json!({})), IssueType::NotSupported, "ServiceRequest._status"),
            ("no status", remove("status"), IssueType::Required, "ServiceRequest.status"),
            ("status completed", set("/status", json!("completed")), IssueType::Value, "ServiceRequest.status"),
            ("status not a code", set("/status", json!("open")), IssueType::CodeInvalid, "ServiceRequest.status"),
            ("no intent", remove("intent"), IssueType::Required, "ServiceRequest.intent"),
            ("intent plan", set("/intent", json!("plan")), IssueType::NotSupported, "ServiceRequest.intent"),
            ("priority a number", set("/priority", json!(1)), IssueType::Structure, "ServiceRequest.priority"),
            (
                "priority not a code",
                set("/priority", json!("emergency")),
                IssueType::CodeInvalid,
                "ServiceRequest.priority",
            ),
            (
                "category not a referral",
                set("/category", json!([{ "coding": [{ "system": "http://snomed.info/sct", "code": "409063005" }] }])),
                IssueType::CodeInvalid,
                "ServiceRequest.category[0]",
            ),
            (
                "code not a referral",
                set("/code", json!({ "text": "colonoscopy" })),
                IssueType::CodeInvalid,
                "ServiceRequest.code",
            ),
            (
                "unknown green channel",
                set("/extension/0/valueCode", json!("heart")),
                IssueType::CodeInvalid,
                "ServiceRequest.extension[0].valueCode",
            ),
            (
                "green channel as a string",
                set(
                    "/extension/0",
                    json!({ "url": "http://tiercare.org/fhir/StructureDefinition/green-channel", "valueString": "stroke" }),
                ),
                IssueType::Structure,
                "ServiceRequest.extension[0]",
            ),
            (
                "unknown extension",
                set("/extension/0/url", json!("http://example.org/fhir/StructureDefinition/x")),
                IssueType::Extension,
                "ServiceRequest.extension[0]",
            ),
            (
                "note without text",
                set("/note/1", json!({ "time": "2026-11-23T02:00:00Z" })),
                IssueType::Required,
                "ServiceRequest.note[1].text",
            ),
            (
                "supporting info an observation",
                set("/supportingInfo", json!([{ "reference": format!("Observation/{uuid}") }])),
                IssueType::Value,
                "ServiceRequest.supportingInfo[0]",
            ),
            (
                "no reason text and no note",
                Box::new(|v: &mut Value| {
                    v.as_object_mut().map(|o| o.remove("note"));
                    v["reasonCode"][0].as_object_mut().map(|o| o.remove("text"));
                }),
                IssueType::Required,
                "ServiceRequest.reasonCode[0].text",
            ),
            (
                "follow-up step without due days",
                set(
                    "/extension/0",
                    json!({ "url": "http://tiercare.org/fhir/StructureDefinition/follow-up-plan", "extension": [{ "url": "what", "valueString": "测血压" }] }),
                ),
                IssueType::Required,
                "ServiceRequest.extension[0].extension",
            ),
            (
                "follow-up step due in 0 days",
                set(
                    "/extension/0",
                    json!({ "url": "http://tiercare.org/fhir/StructureDefinition/follow-up-plan", "extension": [{ "url": "what", "valueString": "测血压" }, { "url": "due-in-days", "valuePositiveInt": 0 }] }),
                ),
                IssueType::Value,
                "ServiceRequest.extension[0].extension[1].valuePositiveInt",
            ),
        ];
        for (name, edit, code, expression) in cases {
            let mut v = minimal();
            edit(&mut v);
            let issues = issues_of(&v);
            assert!(
                issues.iter().any(|i| i.code == code && i.expression.as_deref() == Some(expression)),
                "{name}: expected {} at {expression}, got {issues:?}",
                code.as_str()
            );
            assert!(issues.iter().all(|i| i.expression.is_some()), "{name}: every issue names its element: {issues:?}");
            // identity numbers and other values are not echoed back
            assert!(issues.iter().all(|i| !i.diagnostics.contains("511621196203081027")), "{name}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut v = minimal();
        v["foo"] = json!(1);
        v.as_object_mut().map(|o| o.remove("subject"));
        v["reasonCode"][0]["coding"][1]["code"] = json!("X99.999");
        let exprs: Vec<String> = issues_of(&v).into_iter().filter_map(|i| i.expression).collect();
        for e in ["ServiceRequest.foo", "ServiceRequest.subject", "ServiceRequest.reasonCode[0].coding[1].code"] {
            assert!(exprs.iter().any(|x| x == e), "{e} in {exprs:?}");
        }
    }

    #[test]
    fn not_a_service_request_is_refused_whole() {
        let issues = issues_of(&json!({ "resourceType": "Patient", "id": "x" }));
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].code, IssueType::Invalid);
        assert!(issues[0].diagnostics.contains("Patient"));
        assert_eq!(issues_of(&json!([1, 2]))[0].code, IssueType::Structure);
        assert_eq!(issues_of(&json!({ "status": "active" }))[0].code, IssueType::Structure);
    }

    #[test]
    fn domain_fields_map_to_fhirpath() {
        let e = |f: &str| field_expression(f);
        assert_eq!(e("patient_id").as_deref(), Some("ServiceRequest.subject"));
        assert_eq!(e("to_facility_id").as_deref(), Some("ServiceRequest.performer[0]"));
        assert_eq!(e("from_facility_id").as_deref(), Some("ServiceRequest.requester"));
        assert_eq!(e("diagnoses").as_deref(), Some("ServiceRequest.reasonCode"));
        assert_eq!(e("diagnoses[1]").as_deref(), Some("ServiceRequest.reasonCode[1]"));
        assert_eq!(e("reason").as_deref(), Some("ServiceRequest.reasonCode[0].text"));
        assert_eq!(
            e("discharge_summary").as_deref(),
            Some("ServiceRequest.extension('http://tiercare.org/fhir/StructureDefinition/discharge-summary')")
        );
        assert_eq!(
            e("follow_up_plan[2].due_in_days").as_deref(),
            Some(
                "ServiceRequest.extension('http://tiercare.org/fhir/StructureDefinition/follow-up-plan')[2].extension('due-in-days')"
            )
        );
        assert_eq!(e("identity_number"), None);
        assert_eq!(e("diagnoses[x]"), None);
    }

    // -----------------------------------------------------------------------------------
    // conformance: the official R4 JSON Schema and examples (../shared/data/fhir-r4)

    use crate::test_support::{fhir_data, read_json, schema_errors};

    #[test]
    fn resources_conform_to_the_official_r4_schema() {
        let Some(dir) = fhir_data() else { return };
        let schema = read_json(&dir.join("fhir.schema.json"));
        // the oracle itself catches what we want it to catch
        let mut bad = task(&requested(), &[]);
        bad["status"] = json!("scheduled");
        bad["scheduledAt"] = json!("2026-11-24T02:00:00Z");
        assert!(schema_errors(&schema, &bad).len() >= 2, "the schema refuses an invalid status and an unknown element");

        let (from, to) = (township(), county());
        for state in ReferralState::ALL {
            let (mut r, events) = in_state(*state);
            r.green_channel = Some(EmergencyCentre::Stroke);
            r.discharge_summary = Some("出院小结".into());
            r.follow_up_plan = vec![FollowUpItem { what: "测血压".into(), due_in_days: 7 }];
            r.timepoints.push((Timepoint::Ct, at(40)));
            let sr = service_request(&r, &from, &to);
            let t = task(&r, &events);
            assert_eq!(schema_errors(&schema, &sr), Vec::<String>::new(), "ServiceRequest in {state:?}: {sr}");
            assert_eq!(schema_errors(&schema, &t), Vec::<String>::new(), "Task in {state:?}: {t}");
            // the schema types ServiceRequest.status as a plain code: check the value set
            assert!(SERVICE_REQUEST_STATUSES.contains(&sr["status"].as_str().unwrap_or_default()));
        }
        let oo = crate::outcome::operation_outcome(&issues_of(&json!({ "resourceType": "ServiceRequest" })));
        assert_eq!(schema_errors(&schema, &oo), Vec::<String>::new(), "{oo}");
        let bundle = crate::bundle::searchset(
            vec![service_request(&requested(), &from, &to), task(&requested(), &[])],
            Some(2),
            "http://localhost/fhir/ServiceRequest?patient=x",
        );
        assert_eq!(schema_errors(&schema, &bundle), Vec::<String>::new(), "{bundle}");
    }

    #[test]
    fn the_element_lists_are_exactly_r4_service_request() {
        let Some(dir) = fhir_data() else { return };
        let schema = read_json(&dir.join("fhir.schema.json"));
        let mut r4: Vec<&str> = schema["definitions"]["ServiceRequest"]["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .map(String::as_str)
            .filter(|k| !k.starts_with('_'))
            .collect();
        let mut ours: Vec<&str> = USED.iter().chain(IGNORED).chain(UNSUPPORTED).copied().collect();
        r4.sort_unstable();
        ours.sort_unstable();
        assert_eq!(ours, r4);
    }

    #[test]
    fn official_examples_are_read_or_refused_precisely() {
        let Some(dir) = fhir_data() else { return };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("examples"))
            .expect("the examples directory")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ServiceRequest-")))
            .collect();
        files.sort();
        assert!(files.len() >= 10, "the R4 ServiceRequest examples are there");
        for f in files {
            let v = read_json(&f);
            // they refer to Patient/example etc. and code with SNOMED CT or LOINC, so each is
            // refused; what matters is that every issue names its element
            let issues = match parse_service_request(&v) {
                Ok(_) => continue,
                Err(i) => i,
            };
            assert!(!issues.is_empty());
            for i in &issues {
                let e = i
                    .expression
                    .as_deref()
                    .unwrap_or_else(|| panic!("{}: issue without expression {i:?}", f.display()));
                assert!(e.starts_with("ServiceRequest."), "{}: {e}", f.display());
            }
            // a non-UUID patient id is named on subject
            if v["subject"]["reference"].as_str().is_some_and(|s| s.starts_with("Patient/")) {
                assert!(
                    issues.iter().any(|i| i.expression.as_deref() == Some("ServiceRequest.subject")),
                    "{}",
                    f.display()
                );
            }
        }
        // one in detail: the physical therapy example
        let issues = issues_of(&read_json(&dir.join("examples/ServiceRequest-physical-therapy.json")));
        let exprs: Vec<&str> = issues.iter().filter_map(|i| i.expression.as_deref()).collect();
        for e in [
            "ServiceRequest.subject",
            "ServiceRequest.occurrenceDateTime",
            "ServiceRequest.bodySite",
            "ServiceRequest.performer[0]",
            "ServiceRequest.reasonCode[0].coding",
            "ServiceRequest.code",
        ] {
            assert!(exprs.contains(&e), "{e} in {exprs:?}");
        }
    }

    #[test]
    fn official_task_examples_show_our_status_codes_are_r4() {
        let Some(dir) = fhir_data() else { return };
        let schema = read_json(&dir.join("fhir.schema.json"));
        let enum_: Vec<&str> = schema["definitions"]["Task"]["properties"]["status"]["enum"]
            .as_array()
            .expect("Task.status is an enum in the R4 schema")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(enum_, TASK_STATUSES.to_vec());
        for s in ReferralState::ALL {
            assert!(enum_.contains(&task_status(*s)));
        }
    }
}
