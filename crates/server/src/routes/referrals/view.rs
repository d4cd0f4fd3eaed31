//! JSON views of referrals (api.md: ReferralRow, ReferralDetail, follow-up tasks).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Value, json};
use tiercare_domain::facility::Facility;
use tiercare_domain::filing::Filing;
use tiercare_domain::identity::mask_identifier;
use tiercare_domain::patient::Patient;
use tiercare_domain::referral::{
    Command, Direction, FollowUpTask, Party, Referral, ReferralEvent, china_date, intervals, next_state,
};
use tiercare_store::FollowUpFilter;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{Actor, actor, all_facilities, facility};
use crate::AppState;
use crate::error::ApiResult;

pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_default()
}

fn opt_time(t: Option<OffsetDateTime>) -> Value {
    t.map_or(Value::Null, |t| Value::String(rfc3339(t)))
}

/// "王小明" → "王**": the first character, a star for each other one.
pub(crate) fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}

/// `{"id","name","sex","age"}` (age in whole years on `today`).
pub(crate) fn patient_brief(id: Uuid, p: Option<&Patient>, today: Date, mask: bool) -> Value {
    match p {
        Some(p) => json!({
            "id": id,
            "name": if mask { mask_name(&p.name) } else { p.name.clone() },
            "sex": p.sex,
            "age": p.age_on(today),
        }),
        None => json!({ "id": id, "name": null, "sex": null, "age": null }),
    }
}

/// Open and past its deadline.
pub(crate) fn is_overdue(r: &Referral, now: OffsetDateTime) -> bool {
    r.state.is_open() && r.due_at.is_some_and(|d| d < now)
}

/// A time as the API writes it (RFC 3339, UTC).
struct Rfc(OffsetDateTime);

impl Serialize for Rfc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339(self.0))
    }
}

fn opt_rfc(t: Option<OffsetDateTime>) -> Option<Rfc> {
    t.map(Rfc)
}

/// `{"id","name","tier"}` of a facility (nulls when unknown).
#[derive(Serialize)]
struct FacilityBrief<'a> {
    id: Uuid,
    name: Option<&'a str>,
    tier: Option<tiercare_domain::facility::Tier>,
}

fn facility_view(id: Uuid, f: Option<&Facility>) -> FacilityBrief<'_> {
    match f {
        Some(f) => FacilityBrief { id: f.id, name: Some(&f.name), tier: Some(f.tier) },
        None => FacilityBrief { id, name: None, tier: None },
    }
}

/// `{"id","name","sex","age"}` (as [`patient_brief`]), and in a detail `identity_masked`.
#[derive(Serialize)]
struct PatientView {
    id: Uuid,
    name: Option<String>,
    sex: Option<tiercare_domain::identity::Sex>,
    age: Option<i32>,
    /// Absent in a row; in a detail the masked identity number or null.
    #[serde(skip_serializing_if = "Option::is_none")]
    identity_masked: Option<Option<String>>,
}

#[derive(Serialize)]
struct DiagnosisView<'a> {
    code: &'a str,
    name: Option<&'static str>,
}

/// A worklist row (api.md ReferralRow), written straight from the referral (no `Value` tree).
pub(crate) struct RowView<'a> {
    r: &'a Referral,
    from: Option<&'a Facility>,
    to: Option<&'a Facility>,
    patient: Option<&'a Patient>,
    now: OffsetDateTime,
    mask: bool,
}

impl RowView<'_> {
    /// The row's fields into `m`; `identity`: the patient's masked identity number too (a detail).
    fn entries<M: SerializeMap>(&self, m: &mut M, identity: bool) -> Result<(), M::Error> {
        let r = self.r;
        m.serialize_entry("id", &r.id)?;
        m.serialize_entry("state", &r.state)?;
        m.serialize_entry("version", &r.version)?;
        m.serialize_entry("direction", &r.direction)?;
        m.serialize_entry("reach", &r.reach)?;
        m.serialize_entry("urgency", &r.urgency)?;
        m.serialize_entry("green_channel", &r.green_channel)?;
        m.serialize_entry("requested_at", &Rfc(r.requested_at))?;
        m.serialize_entry("due_at", &opt_rfc(r.due_at))?;
        m.serialize_entry("overdue", &is_overdue(r, self.now))?;
        m.serialize_entry("scheduled_at", &opt_rfc(r.scheduled_at))?;
        m.serialize_entry("acknowledged_at", &opt_rfc(r.acknowledged_at))?;
        m.serialize_entry("from_facility", &facility_view(r.from_facility_id, self.from))?;
        m.serialize_entry("to_facility", &facility_view(r.to_facility_id, self.to))?;
        m.serialize_entry("from_department", &r.from_department)?;
        m.serialize_entry("to_department", &r.to_department)?;
        m.serialize_entry("reason", &r.reason)?;
        let diagnoses: Vec<DiagnosisView<'_>> = r
            .diagnoses
            .iter()
            .map(|c| DiagnosisView { code: c, name: tiercare_domain::codes::diagnosis_name(c) })
            .collect();
        m.serialize_entry("diagnoses", &diagnoses)?;
        let today = china_date(self.now);
        let patient = match self.patient {
            Some(p) => PatientView {
                id: r.patient_id,
                name: Some(if self.mask { mask_name(&p.name) } else { p.name.clone() }),
                sex: Some(p.sex),
                age: Some(p.age_on(today)),
                identity_masked: identity.then(|| p.identity_number().map(mask_identifier)),
            },
            None => PatientView {
                id: r.patient_id,
                name: None,
                sex: None,
                age: None,
                identity_masked: identity.then_some(None),
            },
        };
        m.serialize_entry("patient", &patient)
    }
}

impl Serialize for RowView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        self.entries(&mut m, false)?;
        m.end()
    }
}

/// A worklist row.
pub(crate) fn row_json(
    r: &Referral,
    from: Option<&Facility>,
    to: Option<&Facility>,
    patient: Option<&Patient>,
    now: OffsetDateTime,
    mask: bool,
) -> Value {
    json!(RowView { r, from, to, patient, now, mask })
}

/// Rows for a list of referrals: facilities from the cache, the patients in one read.
/// `known` is a patient already in hand (the patient page).
pub(crate) async fn rows_json(
    state: &AppState,
    refs: &[Referral],
    known: Option<&Patient>,
    mask: bool,
) -> ApiResult<Vec<Value>> {
    let now = state.now();
    let facilities = facilities_of(state, refs.iter().flat_map(|r| [r.from_facility_id, r.to_facility_id])).await?;
    let wanted: Vec<Uuid> = refs.iter().map(|r| r.patient_id).filter(|id| known.is_none_or(|p| p.id != *id)).collect();
    let patients: HashMap<Uuid, Patient> = if wanted.is_empty() {
        HashMap::new()
    } else {
        state.store.get_patients(&wanted).await?.into_iter().map(|p| (p.id, p)).collect()
    };
    let mut out = Vec::with_capacity(refs.len());
    for r in refs {
        let patient = match known {
            Some(p) if p.id == r.patient_id => Some(p),
            _ => patients.get(&r.patient_id),
        };
        let from = facilities.get(&r.from_facility_id).and_then(|f| f.as_deref());
        let to = facilities.get(&r.to_facility_id).and_then(|f| f.as_deref());
        out.push(row_json(r, from, to, patient, now, mask));
    }
    Ok(out)
}

/// Facilities missing from the cache at which a page reads every facility in one query
/// (a cold or expired cache) instead of one query each.
const FACILITY_MISSES_FOR_ONE_READ: usize = 4;

/// The facilities with these ids (`None`: unknown), from the server's cache.
async fn facilities_of(
    state: &AppState,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<HashMap<Uuid, Option<Arc<Facility>>>> {
    let mut out: HashMap<Uuid, Option<Arc<Facility>>> = HashMap::new();
    let mut missing = Vec::new();
    for id in ids {
        if let Entry::Vacant(e) = out.entry(id) {
            let hit = state.cache.facilities.get(&id);
            if hit.is_none() {
                missing.push(id);
            }
            e.insert(hit);
        }
    }
    if missing.len() >= FACILITY_MISSES_FOR_ONE_READ {
        for f in all_facilities(state).await? {
            let f = Arc::new(f);
            state.cache.facilities.put(f.id, f.clone());
            if let Some(slot) = out.get_mut(&f.id) {
                *slot = Some(f);
            }
        }
    } else {
        for id in missing {
            out.insert(id, facility(state, id).await?);
        }
    }
    Ok(out)
}

/// A follow-up task (with the patient, when given).
pub(crate) fn task_json(t: &FollowUpTask, patient: Option<&Patient>, today: Date) -> Value {
    json!({
        "id": t.id,
        "referral_id": t.referral_id,
        "facility_id": t.facility_id,
        "what": t.what,
        "due_date": t.due_date.to_string(),
        "done_at": opt_time(t.done_at),
        "done_by": t.done_by,
        "note": t.note,
        "overdue": t.done_at.is_none() && t.due_date < today,
        "patient": patient_brief(t.patient_id, patient, today, false),
    })
}

/// Which party may give a command (mirrors the domain's party rule; the domain still
/// decides when the command is applied).
fn party_may(cmd: &Command, party: Party) -> bool {
    match cmd {
        Command::Cancel { .. } => party == Party::Sender,
        Command::Expire | Command::Escalate { .. } => party == Party::System,
        // the sender records first contact and departure, the receiver the rest
        Command::RecordTimepoint { .. } => party != Party::System,
        _ => party == Party::Receiver,
    }
}

/// What `party` may do with the referral now: every command the transition table allows in
/// its state, given by that side.
pub(crate) fn actions(r: &Referral, party: Party) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for cmd in Command::examples(r.to_facility_id, r.updated_at) {
        if party_may(&cmd, party) && next_state(r.state, &cmd, r).is_some() && !out.contains(&cmd.code()) {
            out.push(cmd.code());
        }
    }
    out
}

/// The whole referral as one of its parties sees it (api.md ReferralDetail): a row and the
/// rest of the referral, its history, follow-up tasks, filing, the user's side and actions.
/// Serialised straight into the answer's body (no `Value` tree).
pub(crate) struct Detail<'a> {
    r: &'a Referral,
    from: Option<Arc<Facility>>,
    to: Option<Arc<Facility>>,
    patient: Option<Patient>,
    now: OffsetDateTime,
    history: Vec<EventView<'a>>,
    follow_ups: Vec<Value>,
    filing: Option<Filing>,
    party: Option<Party>,
}

/// One history entry: the event with its actor's and new receiver's names.
struct EventView<'a> {
    e: &'a ReferralEvent,
    actor: Option<EventActor>,
    to_facility: Option<(Uuid, Option<Arc<Facility>>)>,
}

/// The acting user (with their name, when known) and their facility (with its name).
struct EventActor {
    user_id: Uuid,
    user: Option<Arc<Actor>>,
    facility_id: Option<Uuid>,
    facility: Option<Arc<Facility>>,
}

#[derive(Serialize)]
struct ActorView<'a> {
    user_id: Uuid,
    name: Option<&'a str>,
    facility_id: Option<Uuid>,
    facility_name: Option<&'a str>,
}

#[derive(Serialize)]
struct NamedFacility<'a> {
    id: Uuid,
    name: Option<&'a str>,
}

#[derive(Serialize)]
struct TimepointView {
    timepoint: tiercare_domain::referral::Timepoint,
    at: Rfc,
}

impl Serialize for EventView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let e = self.e;
        let mut m = s.serialize_map(Some(10))?;
        m.serialize_entry("version", &e.version)?;
        m.serialize_entry("at", &Rfc(e.at))?;
        m.serialize_entry("action", &e.action)?;
        m.serialize_entry("from_state", &e.from_state)?;
        m.serialize_entry("to_state", &e.to_state)?;
        m.serialize_entry("reason", &e.reason)?;
        m.serialize_entry("time", &opt_rfc(e.time))?;
        m.serialize_entry("timepoint", &e.timepoint)?;
        let to = self
            .to_facility
            .as_ref()
            .map(|(id, f)| NamedFacility { id: *id, name: f.as_deref().map(|f| f.name.as_str()) });
        m.serialize_entry("to_facility", &to)?;
        let actor = self.actor.as_ref().map(|a| ActorView {
            user_id: a.user_id,
            name: a.user.as_deref().map(|u| u.name.as_str()),
            facility_id: a.facility_id,
            facility_name: a.facility.as_deref().map(|f| f.name.as_str()),
        });
        m.serialize_entry("actor", &actor)?;
        m.end()
    }
}

impl Serialize for Detail<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.r;
        let mut m = s.serialize_map(None)?;
        let row = RowView {
            r,
            from: self.from.as_deref(),
            to: self.to.as_deref(),
            patient: self.patient.as_ref(),
            now: self.now,
            mask: false,
        };
        row.entries(&mut m, true)?;
        m.serialize_entry("clinical_summary", &r.clinical_summary)?;
        m.serialize_entry("discharge_summary", &r.discharge_summary)?;
        m.serialize_entry("follow_up_plan", &r.follow_up_plan)?;
        m.serialize_entry("encounter_ids", &r.encounter_ids)?;
        m.serialize_entry("escalations", &r.escalations)?;
        let timepoints: Vec<TimepointView> =
            r.timepoints.iter().map(|(t, at)| TimepointView { timepoint: *t, at: Rfc(*at) }).collect();
        m.serialize_entry("timepoints", &timepoints)?;
        m.serialize_entry("outcome", &r.outcome)?;
        m.serialize_entry("intervals", &intervals(r))?;
        m.serialize_entry("history", &self.history)?;
        m.serialize_entry("follow_ups", &self.follow_ups)?;
        m.serialize_entry("filing", &self.filing)?;
        let side = match self.party {
            Some(Party::Sender) => Some("sender"),
            Some(Party::Receiver) => Some("receiver"),
            Some(Party::System) | None => None,
        };
        m.serialize_entry("my_side", &side)?;
        m.serialize_entry("actions", &self.party.map_or_else(Vec::new, |p| actions(r, p)))?;
        m.end()
    }
}

/// The whole referral as one of its parties sees it (api.md ReferralDetail). `party` is
/// `None` for a user who just handed it on (a redirect): no side, nothing left to do.
/// `patient`: the patient when already read. `may_be_filed`: false when the caller knows
/// that no insurance filing names the referral (its `filing` is then null, unread).
pub(crate) async fn detail<'a>(
    state: &AppState,
    r: &'a Referral,
    history: &'a [ReferralEvent],
    party: Option<Party>,
    patient: Option<Patient>,
    may_be_filed: bool,
) -> ApiResult<Detail<'a>> {
    let now = state.now();
    let today = china_date(now);
    let from = facility(state, r.from_facility_id).await?;
    let to = facility(state, r.to_facility_id).await?;
    let patient = match patient {
        Some(p) if p.id == r.patient_id => Some(p),
        _ => state.store.get_patient(r.patient_id).await?,
    };
    let accepted = history.iter().any(|e| e.action == "accept");

    let mut events = Vec::with_capacity(history.len());
    for e in history {
        let actor = match e.actor_user_id {
            Some(uid) => {
                let a = actor(state, uid).await?;
                let fid = e.actor_facility_id.or(a.as_ref().map(|a| a.facility_id));
                let f = match fid {
                    Some(fid) => facility(state, fid).await?,
                    None => None,
                };
                Some(EventActor { user_id: uid, user: a, facility_id: fid, facility: f })
            }
            None => None,
        };
        let to_facility = match e.to_facility_id {
            Some(fid) => Some((fid, facility(state, fid).await?)),
            None => None,
        };
        events.push(EventView { e, actor, to_facility });
    }

    let follow_ups = if accepted && r.direction == Direction::Downward && !r.follow_up_plan.is_empty() {
        let tasks = state
            .store
            .list_follow_ups(&FollowUpFilter { referral_id: Some(r.id), limit: 1000, ..Default::default() })
            .await?;
        tasks.iter().map(|t| task_json(t, patient.as_ref(), today)).collect()
    } else {
        Vec::new()
    };
    let filing = if accepted && may_be_filed {
        let filings = state.store.list_filings(&[r.patient_id]).await?;
        filings.into_iter().find(|f| f.referral_id == Some(r.id))
    } else {
        None
    };
    Ok(Detail { r, from, to, patient, now, history: events, follow_ups, filing, party })
}
