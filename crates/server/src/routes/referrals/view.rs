//! JSON views of referrals (api.md: ReferralRow, ReferralDetail, follow-up tasks).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;

use serde_json::{Map, Value, json};
use tiercare_domain::facility::Facility;
use tiercare_domain::identity::mask_identifier;
use tiercare_domain::patient::Patient;
use tiercare_domain::referral::{
    Command, Direction, FollowUpTask, Party, Referral, ReferralEvent, china_date, intervals, next_state,
};
use tiercare_store::FollowUpFilter;
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{actor, all_facilities, facility};
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

fn facility_brief(id: Uuid, f: Option<&Facility>) -> Value {
    match f {
        Some(f) => json!({ "id": f.id, "name": f.name, "tier": f.tier }),
        None => json!({ "id": id, "name": null, "tier": null }),
    }
}

/// Open and past its deadline.
pub(crate) fn is_overdue(r: &Referral, now: OffsetDateTime) -> bool {
    r.state.is_open() && r.due_at.is_some_and(|d| d < now)
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
    let diagnoses: Vec<Value> =
        r.diagnoses.iter().map(|c| json!({ "code": c, "name": tiercare_domain::codes::diagnosis_name(c) })).collect();
    json!({
        "id": r.id,
        "state": r.state,
        "version": r.version,
        "direction": r.direction,
        "reach": r.reach,
        "urgency": r.urgency,
        "green_channel": r.green_channel,
        "requested_at": rfc3339(r.requested_at),
        "due_at": opt_time(r.due_at),
        "overdue": is_overdue(r, now),
        "scheduled_at": opt_time(r.scheduled_at),
        "acknowledged_at": opt_time(r.acknowledged_at),
        "from_facility": facility_brief(r.from_facility_id, from),
        "to_facility": facility_brief(r.to_facility_id, to),
        "from_department": r.from_department,
        "to_department": r.to_department,
        "reason": r.reason,
        "diagnoses": diagnoses,
        "patient": patient_brief(r.patient_id, patient, china_date(now), mask),
    })
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

/// The whole referral as one of its parties sees it (api.md ReferralDetail). `party` is
/// `None` for a user who just handed it on (a redirect): no side, nothing left to do.
/// `patient`: the patient when already read. `may_be_filed`: false when the caller knows
/// that no insurance filing names the referral (its `filing` is then null, unread).
pub(crate) async fn detail_json(
    state: &AppState,
    r: &Referral,
    history: &[ReferralEvent],
    party: Option<Party>,
    patient: Option<Patient>,
    may_be_filed: bool,
) -> ApiResult<Value> {
    let now = state.now();
    let today = china_date(now);
    let from = facility(state, r.from_facility_id).await?;
    let to = facility(state, r.to_facility_id).await?;
    let patient = match patient {
        Some(p) if p.id == r.patient_id => Some(p),
        _ => state.store.get_patient(r.patient_id).await?,
    };
    let mut out = row_json(r, from.as_deref(), to.as_deref(), patient.as_ref(), now, false);
    let accepted = history.iter().any(|e| e.action == "accept");

    let mut events = Vec::with_capacity(history.len());
    for e in history {
        let actor_json = match e.actor_user_id {
            Some(uid) => {
                let a = actor(state, uid).await?;
                let fid = e.actor_facility_id.or(a.as_ref().map(|a| a.facility_id));
                let fname = match fid {
                    Some(fid) => facility(state, fid).await?.map(|f| f.name.clone()),
                    None => None,
                };
                json!({
                    "user_id": uid,
                    "name": a.as_ref().map(|a| a.name.clone()),
                    "facility_id": fid,
                    "facility_name": fname,
                })
            }
            None => Value::Null,
        };
        let to_facility = match e.to_facility_id {
            Some(fid) => {
                let name = facility(state, fid).await?.map(|f| f.name.clone());
                json!({ "id": fid, "name": name })
            }
            None => Value::Null,
        };
        events.push(json!({
            "version": e.version,
            "at": rfc3339(e.at),
            "action": e.action,
            "from_state": e.from_state,
            "to_state": e.to_state,
            "reason": e.reason,
            "time": opt_time(e.time),
            "timepoint": e.timepoint,
            "to_facility": to_facility,
            "actor": actor_json,
        }));
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
        filings.into_iter().find(|f| f.referral_id == Some(r.id)).map_or(Value::Null, |f| json!(f))
    } else {
        Value::Null
    };

    let extra = json!({
        "clinical_summary": r.clinical_summary,
        "discharge_summary": r.discharge_summary,
        "follow_up_plan": r.follow_up_plan,
        "encounter_ids": r.encounter_ids,
        "escalations": r.escalations,
        "timepoints": r.timepoints.iter().map(|(t, at)| json!({ "timepoint": t, "at": rfc3339(*at) })).collect::<Vec<_>>(),
        "outcome": r.outcome,
        "intervals": intervals(r),
        "history": events,
        "follow_ups": follow_ups,
        "filing": filing,
        "my_side": match party {
            Some(Party::Sender) => Some("sender"),
            Some(Party::Receiver) => Some("receiver"),
            Some(Party::System) | None => None,
        },
        "actions": party.map_or_else(Vec::new, |p| actions(r, p)),
    });
    if let (Value::Object(o), Value::Object(x)) = (&mut out, extra) {
        let x: Map<String, Value> = x;
        o.extend(x);
    }
    out["patient"]["identity_masked"] = json!(patient.as_ref().and_then(|p| p.identity_number()).map(mask_identifier));
    Ok(out)
}
