//! Clinical records as FHIR R4, read-only (issue 7): the resources tiercare does not store as
//! such but derives from the domain records that carry them. Nothing here is created through
//! FHIR (the CapabilityStatement offers read and search only): a Condition exists because an
//! encounter names a diagnosis, not as a record of its own.
//!
//! # Mapping
//!
//! | resource | domain record | id | notes |
//! |---|---|---|---|
//! | Condition | an encounter's diagnosis `diagnoses[n-1]` (ICD-10 医保版 2.0) | `{encounter}-dx-{n}` | category `encounter-diagnosis`; `code` system `http://hl7.org/fhir/sid/icd-10`, Chinese display from the code table; `encounter`, `subject`, `recordedDate` = the encounter's start, `asserter` = its practitioner; extension `diagnosis-rank` (1 = principal) |
//! | Procedure | an encounter's procedure `procedures[n-1]` (ICD-9-CM-3 医保版) | `{encounter}-px-{n}` | `code` system `http://hl7.org/fhir/sid/icd-9-cm`; `performedPeriod` = the encounter's period (the procedure lies within it); `status` `completed` once the encounter ended, else `unknown`; `performer` the practitioner on behalf of the facility (or the facility); `location` = the facility's Location; extension `procedure-rank` |
//! | Appointment | a referral's scheduling step (`scheduled_at`) | the referral id | `basedOn` = `ServiceRequest/{id}`; `start` = `end` = the scheduled time (the domain schedules a time, not a slot); status: scheduled → `booked`, arrived → `arrived`, completed → `fulfilled`, cancelled → `cancelled`, expired (no-show) → `noshow`; participants the patient (`accepted` once arrived, else `needs-action`) and the receiving facility's Location (`accepted`); `serviceType.text` the receiving department; `reasonCode` the referral's diagnoses; `description` its reason. A referral never scheduled has no Appointment |
//! | CarePlan | a downward referral's follow-up plan, and once accepted its follow-up tasks | the referral id | `intent` plan, category `http://tiercare.org/fhir/CodeSystem/care-plan-category` `downward-follow-up`; `supportingInfo` = the ServiceRequest and the referral's encounters; `author` the sending facility; `period` from the acceptance day to the last task's due day; one `activity` per task (`detail.kind` Task, `status` completed / not-started, `scheduledPeriod.end` the due day, `performer`/`location` the receiving facility, `progress` the completion note), before acceptance one per plan step (`scheduledString` "接收后N天"); status: tasks all done → `completed`, tasks open → `active`, not yet accepted → `draft`, rejected/cancelled/expired before acceptance → `revoked`; `note` the discharge summary |
//! | Location | a facility (its site) | the facility id (the same as its Organization) | `managingOrganization` = `Organization/{id}`, `physicalType` `si`, `mode` instance, the facility code as identifier, `address.district` the GB/T 2260 code, `position` when known |
//!
//! Departments are free text on encounters and referrals (no registry rows with ids), so they
//! are not Locations of their own. tiercare keeps no problem list and no family-doctor
//! contracts yet: the only Conditions are encounter diagnoses, the only CarePlans downward
//! referrals' follow-up plans.

use serde_json::{Value, json};
use tiercare_domain::codes::{diagnosis_name, procedure_name};
use tiercare_domain::encounter::Encounter;
use tiercare_domain::facility::Facility;
use tiercare_domain::referral::{CHINA_TIME, Direction, FollowUpTask, Referral, ReferralState};
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time};
use uuid::Uuid;

use crate::claim::instant;
use crate::{BASE, ICD9CM, ICD10, coding, ext};

pub const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
pub const CARE_PLAN_CATEGORY: &str = "http://tiercare.org/fhir/CodeSystem/care-plan-category";
pub const DOWNWARD_FOLLOW_UP: &str = "downward-follow-up";
pub const LOCATION_PHYSICAL_TYPE: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";
pub const EXT_DIAGNOSIS_RANK: &str = "diagnosis-rank";
pub const EXT_PROCEDURE_RANK: &str = "procedure-rank";

/// What part of an encounter a derived id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// A diagnosis: a Condition.
    Diagnosis,
    /// A procedure: a Procedure.
    Procedure,
}

impl Part {
    fn tag(self) -> &'static str {
        match self {
            Part::Diagnosis => "dx",
            Part::Procedure => "px",
        }
    }
}

/// The id of the `rank`-th (1-based) diagnosis or procedure of `encounter`:
/// `{encounter}-dx-{rank}` (at most 46 characters, within FHIR's 64).
pub fn part_id(encounter: Uuid, part: Part, rank: usize) -> String {
    format!("{encounter}-{}-{rank}", part.tag())
}

/// The encounter and the 1-based rank an id of [`part_id`] names; `None` for anything else.
pub fn parse_part_id(id: &str, part: Part) -> Option<(Uuid, usize)> {
    let (enc, rank) = id.rsplit_once(&format!("-{}-", part.tag()))?;
    if rank.is_empty() || !rank.bytes().all(|b| b.is_ascii_digit()) || rank.starts_with('0') {
        return None;
    }
    let rank: usize = rank.parse().ok()?;
    let uuid = Uuid::parse_str(enc).ok()?;
    // the canonical (hyphenated, lower-case) form only: one resource, one id
    (uuid.to_string() == enc).then_some((uuid, rank))
}

fn reference(kind: &str, id: Uuid) -> Value {
    json!({ "reference": format!("{kind}/{id}") })
}

fn day(d: Date) -> String {
    d.to_string()
}

/// The start of a day in China time.
fn day_start(d: Date) -> OffsetDateTime {
    PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_offset(CHINA_TIME)
}

/// The `rank`-th diagnosis of `e` as a Condition (`None` when it has none at that rank).
pub fn condition(e: &Encounter, rank: usize) -> Option<Value> {
    let code = e.diagnoses.get(rank.checked_sub(1)?)?;
    let mut v = json!({
        "resourceType": "Condition",
        "id": part_id(e.id, Part::Diagnosis, rank),
        "extension": [{ "url": ext(EXT_DIAGNOSIS_RANK), "valuePositiveInt": rank }],
        "category": [{ "coding": [{ "system": CONDITION_CATEGORY, "code": "encounter-diagnosis", "display": "Encounter Diagnosis" }] }],
        "code": { "coding": [coding(ICD10, code, diagnosis_name(code))] },
        "subject": reference("Patient", e.patient_id),
        "encounter": reference("Encounter", e.id),
        "recordedDate": instant(e.started_at),
    });
    if let Some(p) = e.practitioner_id {
        v["asserter"] = reference("Practitioner", p);
    }
    Some(v)
}

/// Every diagnosis of `e` as Conditions, principal first.
pub fn conditions(e: &Encounter) -> Vec<Value> {
    (1..=e.diagnoses.len()).filter_map(|n| condition(e, n)).collect()
}

/// The Procedure status of a procedure recorded on `e`.
pub fn procedure_status(e: &Encounter) -> &'static str {
    if e.ended_at.is_some() { "completed" } else { "unknown" }
}

/// The `rank`-th procedure of `e` as a Procedure.
pub fn procedure(e: &Encounter, rank: usize) -> Option<Value> {
    let code = e.procedures.get(rank.checked_sub(1)?)?;
    let mut period = json!({ "start": instant(e.started_at) });
    if let Some(end) = e.ended_at {
        period["end"] = json!(instant(end));
    }
    let performer = match e.practitioner_id {
        Some(p) => {
            json!({ "actor": reference("Practitioner", p), "onBehalfOf": reference("Organization", e.facility_id) })
        }
        None => json!({ "actor": reference("Organization", e.facility_id) }),
    };
    Some(json!({
        "resourceType": "Procedure",
        "id": part_id(e.id, Part::Procedure, rank),
        "extension": [{ "url": ext(EXT_PROCEDURE_RANK), "valuePositiveInt": rank }],
        "status": procedure_status(e),
        "code": { "coding": [coding(ICD9CM, code, procedure_name(code))] },
        "subject": reference("Patient", e.patient_id),
        "encounter": reference("Encounter", e.id),
        "performedPeriod": period,
        "performer": [performer],
        "location": reference("Location", e.facility_id),
    }))
}

/// Every procedure of `e`, principal first.
pub fn procedures(e: &Encounter) -> Vec<Value> {
    (1..=e.procedures.len()).filter_map(|n| procedure(e, n)).collect()
}

/// The Appointment status of a referral that was scheduled; `None` when it never was.
pub fn appointment_status(r: &Referral) -> Option<&'static str> {
    use ReferralState::*;
    r.scheduled_at?;
    Some(match r.state {
        Scheduled => "booked",
        Arrived => "arrived",
        Completed => "fulfilled",
        Cancelled => "cancelled",
        Expired => "noshow",
        // no transition leaves `scheduled` for these; answer what the time still is
        Requested | Redirected | Accepted | Rejected => "booked",
    })
}

/// The R4 Appointment.status value set.
pub const APPOINTMENT_STATUSES: [&str; 10] = [
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
];

/// A referral's scheduling step as an Appointment (`None`: it was never scheduled).
pub fn appointment(r: &Referral) -> Option<Value> {
    let status = appointment_status(r)?;
    let at = instant(r.scheduled_at?);
    let patient_status =
        if matches!(r.state, ReferralState::Arrived | ReferralState::Completed) { "accepted" } else { "needs-action" };
    let mut v = json!({
        "resourceType": "Appointment",
        "id": r.id.to_string(),
        "status": status,
        "start": at,
        "end": at,
        "basedOn": [reference("ServiceRequest", r.id)],
        "participant": [
            { "actor": reference("Patient", r.patient_id), "status": patient_status },
            { "actor": reference("Location", r.to_facility_id), "status": "accepted" },
        ],
    });
    if let Some(d) = r.to_department.as_deref().filter(|d| !d.is_empty()) {
        v["serviceType"] = json!([{ "text": d }]);
    }
    if !r.diagnoses.is_empty() {
        v["reasonCode"] = json!(
            r.diagnoses.iter().map(|d| json!({ "coding": [coding(ICD10, d, diagnosis_name(d))] })).collect::<Vec<_>>()
        );
    }
    if !r.reason.is_empty() {
        v["description"] = json!(r.reason);
    }
    Some(v)
}

/// Whether a referral has a CarePlan: a downward referral with a follow-up plan or tasks.
pub fn has_care_plan(r: &Referral, tasks: &[FollowUpTask]) -> bool {
    r.direction == Direction::Downward && (!r.follow_up_plan.is_empty() || tasks.iter().any(|t| t.referral_id == r.id))
}

/// The CarePlan status of a downward referral's follow-up (`tasks`: its follow-up tasks).
pub fn care_plan_status(r: &Referral, tasks: &[FollowUpTask]) -> &'static str {
    use ReferralState::*;
    let mine: Vec<&FollowUpTask> = tasks.iter().filter(|t| t.referral_id == r.id).collect();
    if !mine.is_empty() {
        return if mine.iter().all(|t| t.done_at.is_some()) { "completed" } else { "active" };
    }
    match r.state {
        Requested | Redirected => "draft",
        Rejected | Cancelled | Expired => "revoked",
        Accepted | Scheduled | Arrived | Completed => "active",
    }
}

/// The R4 CarePlan.status value set.
pub const CARE_PLAN_STATUSES: [&str; 7] =
    ["draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"];

/// The period a CarePlan covers, as days in China time: from the acceptance day to the last
/// task's due day (`None` before acceptance).
pub fn care_plan_period(accepted_at: Option<OffsetDateTime>, tasks: &[FollowUpTask]) -> Option<(Date, Date)> {
    let start = accepted_at?.to_offset(CHINA_TIME).date();
    let end = tasks.iter().map(|t| t.due_date).max().unwrap_or(start).max(start);
    Some((start, end))
}

/// The period of [`care_plan_period`] as instants `[start of the first day, end of the last]`,
/// for date searches.
pub fn period_instants((start, end): (Date, Date)) -> (OffsetDateTime, OffsetDateTime) {
    (day_start(start), day_start(end) + Duration::DAY - Duration::NANOSECOND)
}

/// A downward referral's follow-up as a CarePlan (`None` when the referral has none).
/// `tasks`: its follow-up tasks (others are ignored); `accepted_at`: when the receiver
/// accepted it (from its history), if it did.
pub fn care_plan(r: &Referral, tasks: &[FollowUpTask], accepted_at: Option<OffsetDateTime>) -> Option<Value> {
    if !has_care_plan(r, tasks) {
        return None;
    }
    let mut mine: Vec<&FollowUpTask> = tasks.iter().filter(|t| t.referral_id == r.id).collect();
    mine.sort_by_key(|t| (t.due_date, t.id));
    let activities: Vec<Value> = if mine.is_empty() {
        r.follow_up_plan
            .iter()
            .map(|item| {
                json!({ "detail": {
                    "kind": "Task",
                    "status": "not-started",
                    "description": item.what,
                    "scheduledString": format!("接收后{}天", item.due_in_days),
                    "performer": [reference("Organization", r.to_facility_id)],
                    "location": reference("Location", r.to_facility_id),
                } })
            })
            .collect()
    } else {
        mine.iter()
            .map(|t| {
                let mut a = json!({
                    "id": t.id.to_string(),
                    "detail": {
                        "kind": "Task",
                        "status": if t.done_at.is_some() { "completed" } else { "not-started" },
                        "description": t.what,
                        "scheduledPeriod": { "end": day(t.due_date) },
                        "performer": [reference("Organization", t.facility_id)],
                        "location": reference("Location", t.facility_id),
                    },
                });
                if let Some(done) = t.done_at {
                    a["progress"] =
                        json!([{ "time": instant(done), "text": t.note.as_deref().filter(|n| !n.is_empty()).unwrap_or("已完成") }]);
                }
                a
            })
            .collect()
    };
    let owned: Vec<FollowUpTask> = mine.iter().map(|t| (*t).clone()).collect();
    let mut supporting = vec![reference("ServiceRequest", r.id)];
    supporting.extend(r.encounter_ids.iter().map(|e| reference("Encounter", *e)));
    let mut v = json!({
        "resourceType": "CarePlan",
        "id": r.id.to_string(),
        "status": care_plan_status(r, &owned),
        "intent": "plan",
        "category": [{ "coding": [{ "system": CARE_PLAN_CATEGORY, "code": DOWNWARD_FOLLOW_UP, "display": "下转随访" }] }],
        "subject": reference("Patient", r.patient_id),
        "created": instant(r.requested_at),
        "author": reference("Organization", r.from_facility_id),
        "supportingInfo": supporting,
    });
    if let Some((start, end)) = care_plan_period(accepted_at, &owned) {
        v["period"] = json!({ "start": day(start), "end": day(end) });
    }
    if !activities.is_empty() {
        v["activity"] = json!(activities);
    }
    if let Some(d) = r.discharge_summary.as_deref().filter(|d| !d.is_empty()) {
        v["note"] = json!([{ "text": d }]);
    }
    Some(v)
}

/// A facility's site as a Location (the same id as its Organization).
pub fn location(f: &Facility) -> Value {
    let mut v = json!({
        "resourceType": "Location",
        "id": f.id.to_string(),
        "identifier": [{ "system": format!("{BASE}/sid/facility-code"), "value": f.code }],
        "status": "active",
        "name": f.name,
        "mode": "instance",
        "address": { "district": f.region_code, "country": "CN" },
        "physicalType": { "coding": [{ "system": LOCATION_PHYSICAL_TYPE, "code": "si", "display": "Site" }] },
        "managingOrganization": { "reference": format!("Organization/{}", f.id), "display": f.name },
    });
    if let Some(p) = f.location {
        v["position"] = json!({ "longitude": p.lon, "latitude": p.lat });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiercare_domain::encounter::EncounterClass;
    use tiercare_domain::facility::{Capabilities, GeoPoint, Grade, Tier};
    use tiercare_domain::referral::{FollowUpItem, Reach, Urgency};
    use time::macros::{date, datetime};

    fn stay() -> Encounter {
        Encounter {
            id: Uuid::now_v7(),
            region_key: "511621".into(),
            patient_id: Uuid::now_v7(),
            facility_id: Uuid::now_v7(),
            department: Some("心内科".into()),
            practitioner_id: Some(Uuid::now_v7()),
            class: EncounterClass::Inpatient,
            started_at: datetime!(2026-11-02 09:00 +8),
            ended_at: Some(datetime!(2026-11-09 10:00 +8)),
            diagnoses: vec!["I10.x00".into(), "E11.900".into()],
            procedures: vec!["88.7201".into()],
            total_cost_fen: 800_000,
        }
    }

    fn referral(state: ReferralState) -> Referral {
        let at = datetime!(2026-11-09 10:00 +8);
        Referral {
            id: Uuid::now_v7(),
            region_key: "511621".into(),
            patient_id: Uuid::now_v7(),
            direction: Direction::Downward,
            reach: Reach::InCounty,
            from_facility_id: Uuid::now_v7(),
            from_department: None,
            requested_by: Uuid::now_v7(),
            to_facility_id: Uuid::now_v7(),
            to_department: Some("全科".into()),
            urgency: Urgency::Routine,
            green_channel: None,
            reason: "康复期下转".into(),
            diagnoses: vec!["I10.x00".into()],
            clinical_summary: String::new(),
            discharge_summary: Some("血压控制平稳".into()),
            follow_up_plan: vec![FollowUpItem { what: "测血压".into(), due_in_days: 7 }],
            encounter_ids: vec![],
            state,
            version: 1,
            requested_at: at,
            acknowledged_at: None,
            due_at: None,
            scheduled_at: None,
            escalations: 0,
            timepoints: vec![],
            outcome: None,
            updated_at: at,
        }
    }

    #[test]
    fn part_ids_round_trip_and_refuse_anything_else() {
        let e = Uuid::now_v7();
        let id = part_id(e, Part::Diagnosis, 2);
        assert!(id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
        assert_eq!(parse_part_id(&id, Part::Diagnosis), Some((e, 2)));
        assert_eq!(parse_part_id(&id, Part::Procedure), None);
        for bad in [
            format!("{e}-dx-0"),
            format!("{e}-dx-01"),
            format!("{e}-dx-"),
            format!("{e}-dx-x"),
            format!("{}-dx-1", e.simple()),
            format!("{}-dx-1", e.to_string().to_uppercase()),
            e.to_string(),
        ] {
            assert_eq!(parse_part_id(&bad, Part::Diagnosis), None, "{bad}");
        }
    }

    #[test]
    fn an_encounter_gives_its_diagnoses_and_procedures_in_rank_order() {
        let e = stay();
        let c = conditions(&e);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["code"]["coding"][0]["code"], "I10.x00");
        assert_eq!(c[1]["code"]["coding"][0]["code"], "E11.900");
        assert_eq!(c[1]["extension"][0]["valuePositiveInt"], 2);
        assert_eq!(c[0]["category"][0]["coding"][0]["code"], "encounter-diagnosis");
        assert!(condition(&e, 0).is_none() && condition(&e, 3).is_none());
        let p = procedures(&e);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0]["status"], "completed");
        assert_eq!(p[0]["performedPeriod"]["end"], "2026-11-09T02:00:00Z");
        let open = Encounter { ended_at: None, ..e };
        assert_eq!(procedure(&open, 1).expect("a procedure")["status"], "unknown");
    }

    #[test]
    fn referral_states_map_to_appointment_and_care_plan_statuses() {
        assert!(appointment(&referral(ReferralState::Accepted)).is_none(), "never scheduled: no Appointment");
        let at = datetime!(2026-11-12 09:00 +8);
        for (state, status) in [
            (ReferralState::Scheduled, "booked"),
            (ReferralState::Arrived, "arrived"),
            (ReferralState::Completed, "fulfilled"),
            (ReferralState::Cancelled, "cancelled"),
            (ReferralState::Expired, "noshow"),
        ] {
            let r = Referral { scheduled_at: Some(at), ..referral(state) };
            let a = appointment(&r).expect("an appointment");
            assert_eq!(a["status"], status);
            assert!(APPOINTMENT_STATUSES.contains(&status));
            assert_eq!(
                (a["start"].clone(), a["end"].clone()),
                (json!("2026-11-12T01:00:00Z"), json!("2026-11-12T01:00:00Z"))
            );
        }
        let r = referral(ReferralState::Requested);
        assert_eq!(care_plan_status(&r, &[]), "draft");
        assert_eq!(care_plan_status(&referral(ReferralState::Rejected), &[]), "revoked");
        let task = |done: bool| FollowUpTask {
            id: Uuid::now_v7(),
            region_key: r.region_key.clone(),
            patient_id: r.patient_id,
            referral_id: r.id,
            facility_id: r.to_facility_id,
            what: "测血压".into(),
            due_date: date!(2026 - 11 - 17),
            done_at: done.then_some(at),
            done_by: None,
            note: None,
        };
        assert_eq!(care_plan_status(&r, &[task(false), task(true)]), "active");
        assert_eq!(care_plan_status(&r, &[task(true)]), "completed");
        let upward = Referral { direction: Direction::Upward, ..r.clone() };
        assert!(care_plan(&upward, &[], None).is_none());
        let cp = care_plan(&r, &[task(false)], Some(datetime!(2026-11-10 08:00 +8))).expect("a plan");
        assert_eq!(cp["period"], json!({ "start": "2026-11-10", "end": "2026-11-17" }));
        assert_eq!(cp["activity"][0]["detail"]["scheduledPeriod"]["end"], "2026-11-17");
    }

    #[test]
    fn what_is_written_validates_against_the_official_schema() {
        let Some(dir) = crate::test_support::fhir_data() else { return };
        let schema = crate::test_support::read_json(&dir.join("fhir.schema.json"));
        let e = stay();
        let at = datetime!(2026-11-12 09:00 +8);
        let r = Referral { scheduled_at: Some(at), ..referral(ReferralState::Scheduled) };
        let done = FollowUpTask {
            id: Uuid::now_v7(),
            region_key: r.region_key.clone(),
            patient_id: r.patient_id,
            referral_id: r.id,
            facility_id: r.to_facility_id,
            what: "测血压".into(),
            due_date: date!(2026 - 11 - 17),
            done_at: Some(at),
            done_by: None,
            note: Some("血压 130/80".into()),
        };
        let f = Facility {
            id: Uuid::now_v7(),
            code: "H51162100001".into(),
            name: "岳池县人民医院".into(),
            tier: Tier::County,
            grade: Grade::Level2A,
            region_code: "511621".into(),
            insurance_region: "511600".into(),
            community_id: None,
            capabilities: Capabilities::default(),
            location: Some(GeoPoint { lat: 30.538, lon: 106.44 }),
            referral_policy: Default::default(),
        };
        let mut all = conditions(&e);
        all.extend(procedures(&e));
        all.push(appointment(&r).expect("an appointment"));
        all.push(care_plan(&r, &[done], Some(at)).expect("a plan"));
        all.push(care_plan(&referral(ReferralState::Requested), &[], None).expect("a draft plan"));
        all.push(location(&f));
        for v in all {
            assert_eq!(crate::test_support::schema_errors(&schema, &v), Vec::<String>::new(), "{v:#}");
        }
    }
}
