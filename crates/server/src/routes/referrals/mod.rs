//! Referrals over HTTP (issue 4): create, read, act on, and the worklists of both ends.
//!
//! The rules live in `tiercare_domain::referral` (`request`, `apply`, `next_state`); this
//! module finds the facilities and the patient's insured region a step needs, decides the
//! user's side (sender or receiver), and writes the domain's `Change` through the store in
//! one transaction (optimistic concurrency: a stale version answers 409).
//!
//! The `pub(crate)` functions at the top are shared with the FHIR routes (`crate::fhir`);
//! the axum handlers are in [`http`], the JSON views in [`view`].

use std::sync::Arc;

use axum::http::StatusCode;
use tiercare_domain::access::AccessBasis;
use tiercare_domain::facility::Facility;
use tiercare_domain::patient::{Patient, PatientStatus};
use tiercare_domain::referral::{self as rules, Change, Context, Party, Refusal, china_date};
use tiercare_domain::role::Action;
use tiercare_store::{FacilityFilter, ReferralForStep, new_id};
use time::OffsetDateTime;
use uuid::Uuid;

pub(crate) use tiercare_domain::referral::{Command, NewReferral, Referral, ReferralEvent};
pub(crate) use tiercare_store::ReferralFilter;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::CurrentUser;

pub(crate) mod http;
pub(crate) mod view;

/// Create a referral from the user's facility (the sender). Checks the role, the sender,
/// the patient (exists, not merged, known to the sender or identified by this user within
/// 24 hours), the receiver; the domain checks the rest. Writes the referral, its first
/// event and the receiver's notification in one transaction.
/// (The FHIR ServiceRequest it answers with names the patient by reference only: no read.)
pub(crate) async fn create_referral(state: &AppState, me: &CurrentUser, input: NewReferral) -> ApiResult<Referral> {
    Ok(create_change(state, me, input, None).await?.0.referral)
}

/// A step taken, with what its answer needs: the referral's history after the step (the
/// history read before it, in the same statement as the referral, and the step's event) and
/// whether an insurance filing may name the referral.
pub(crate) struct Step {
    pub change: Change,
    /// Oldest first, ending with `change.event` as the store keeps it.
    pub history: Vec<ReferralEvent>,
    /// A filing named the referral before the step, or the step filed one.
    pub filed: bool,
}

/// One step of the life cycle by the user's side. `version`, when given, must be the stored
/// version (else 409). `expire` and `escalate` are the deadline sweeper's (403).
///
/// The step's answer is the referral's detail as a read shows it (the patient's name, masked
/// identity number, sex and age, the clinical summary, the history), so the step is also a
/// read of the patient's record: its access-log row (`act_referral`, from `client_addr`) is
/// written in the step's own transaction — the step and its log row are kept together or not
/// at all, and a step whose row cannot be written is not taken.
pub(crate) async fn transition(
    state: &AppState,
    me: &CurrentUser,
    id: Uuid,
    cmd: Command,
    version: Option<i64>,
    client_addr: Option<String>,
) -> ApiResult<Step> {
    prepare_step(state, me, id, cmd, version, client_addr).await?.commit(state).await
}

/// A step computed and checked, not written: what [`transition`] writes (the change and its
/// access-log row, `act_referral`) and what its answer needs.
pub(crate) struct PreparedStep {
    pub change: Change,
    pub access: tiercare_store::AccessLogEntry,
    /// Oldest first, up to the version the step was computed from.
    pub history: Vec<ReferralEvent>,
    /// A filing named the referral before the step.
    pub filed: bool,
}

impl PreparedStep {
    /// Write the step with its access-log row (one transaction; 409 when the referral moved on).
    pub(crate) async fn commit(self, state: &AppState) -> ApiResult<Step> {
        state.store.apply_referral_change_logged(&self.change, &self.access).await?;
        Ok(self.taken())
    }

    /// The step as written (by [`PreparedStep::commit`] or with others in one transaction).
    pub(crate) fn taken(self) -> Step {
        let PreparedStep { change, mut history, filed, .. } = self;
        // the write checked the version read, so no step came between: the stored history is
        // the one read and this step's event
        history.push(as_stored(&change.event));
        let filed = filed || change.filing.is_some();
        Step { change, history, filed }
    }
}

/// Everything of [`transition`] but the write.
pub(crate) async fn prepare_step(
    state: &AppState,
    me: &CurrentUser,
    id: Uuid,
    cmd: Command,
    version: Option<i64>,
    client_addr: Option<String>,
) -> ApiResult<PreparedStep> {
    me.require(Action::Refer)?;
    if matches!(cmd, Command::Expire | Command::Escalate { .. }) {
        return Err(ApiError::forbidden(
            "referral.system_action",
            format!("{} is done by the deadline sweeper, not by a user", cmd.code()),
        ));
    }
    let ReferralForStep { referral: r, history, filed } =
        state.store.referral_for_step(id).await?.ok_or_else(|| ApiError::not_found("referral"))?;
    let party = party_of(me, &r)?;
    if let Some(v) = version
        && v != r.version
    {
        return Err(stale(&r, v));
    }
    let sender = facility(state, r.from_facility_id).await?.ok_or_else(|| missing_facility(r.from_facility_id))?;
    let receiver = facility(state, r.to_facility_id).await?.ok_or_else(|| missing_facility(r.to_facility_id))?;
    let new_receiver = match &cmd {
        Command::Redirect { to_facility_id, .. } => Some(
            facility(state, *to_facility_id)
                .await?
                .ok_or_else(|| unknown_reference("to_facility_id", format!("unknown facility {to_facility_id}")))?,
        ),
        _ => None,
    };
    let now = state.now();
    // the insured region matters only where the receiver changes or a filing may be due
    let home = if matches!(cmd, Command::Accept { .. } | Command::Redirect { .. }) {
        home_region(state, r.patient_id, &sender, now).await?
    } else {
        sender.insurance_region.clone()
    };
    let ctx = Context {
        now,
        party,
        user_id: Some(me.user.id),
        sender: &sender,
        receiver: &receiver,
        new_receiver: new_receiver.as_deref(),
        home_region: &home,
        new_id,
    };
    let change = rules::apply(&r, &cmd, ctx).map_err(refusal)?;
    let access = super::patients::access_entry(
        me,
        &r.region_key,
        r.patient_id,
        "act_referral",
        AccessBasis::CareRelationship,
        client_addr,
    );
    Ok(PreparedStep { change, access, history, filed })
}

/// An event as the store gives it back: its times to the millisecond (the store keeps
/// Unix milliseconds).
fn as_stored(e: &ReferralEvent) -> ReferralEvent {
    let ms = |t: OffsetDateTime| {
        OffsetDateTime::from_unix_timestamp_nanos(t.unix_timestamp_nanos() / 1_000_000 * 1_000_000).unwrap_or(t)
    };
    ReferralEvent { at: ms(e.at), time: e.time.map(ms), ..e.clone() }
}

/// Referrals where the user's facility is the sender or the receiver, matching `filter`.
/// A filter naming neither end gets both (merged newest first); one naming only other
/// facilities gets nothing.
pub(crate) async fn list_for_party(
    state: &AppState,
    me: &CurrentUser,
    filter: ReferralFilter,
) -> ApiResult<Vec<Referral>> {
    me.require(Action::Refer)?;
    let mine = me.user.facility_id;
    let (to, from) = (filter.to_facility_id, filter.from_facility_id);
    if to == Some(mine) || from == Some(mine) {
        return Ok(state.store.list_referrals(&filter).await?);
    }
    if to.is_some() || from.is_some() {
        return Ok(Vec::new());
    }
    let limit = effective_limit(filter.limit);
    let inbox = ReferralFilter { to_facility_id: Some(mine), ..filter.clone() };
    let outbox = ReferralFilter { from_facility_id: Some(mine), ..filter };
    let mut all = state.store.list_referrals(&inbox).await?;
    all.extend(state.store.list_referrals(&outbox).await?);
    // the store's order (the filter's sort, then newest request first)
    all.sort_by(|a, b| inbox.order(a, b));
    all.dedup_by_key(|r| r.id);
    all.truncate(limit);
    Ok(all)
}

/// The store's page size for a filter's `limit` (0 means 50; capped at 500).
pub(crate) fn effective_limit(limit: u32) -> usize {
    match limit {
        0 => 50,
        n => n.min(500) as usize,
    }
}

// --- the steps behind the shared functions

/// [`create_referral`], answering the whole change and the patient read on the way. With
/// `shown`, the answer will show the patient (the JSON API's detail): the access-log row of
/// that read (`create_referral`, from the address given) is written in the referral's own
/// transaction, as a step's is (see [`transition`]).
pub(crate) async fn create_change(
    state: &AppState,
    me: &CurrentUser,
    input: NewReferral,
    shown: Option<Option<String>>,
) -> ApiResult<(Change, Patient)> {
    let (change, patient) = prepare_create(state, me, input, None).await?;
    match shown {
        Some(client_addr) => {
            let access = super::patients::access_entry(
                me,
                &patient.region_key,
                patient.id,
                "create_referral",
                AccessBasis::CareRelationship,
                client_addr,
            );
            state.store.create_referral_logged(&change, &access).await?;
        }
        None => state.store.create_referral(&change).await?,
    }
    Ok((change, patient))
}

/// Everything of [`create_change`] but the write: the checks and the domain's `Change`, with
/// the patient read. `known`: a patient not stored yet (registered earlier in the same FHIR
/// transaction, written with the referral), taken instead of the store's when it is the one
/// referred.
pub(crate) async fn prepare_create(
    state: &AppState,
    me: &CurrentUser,
    input: NewReferral,
    known: Option<&Patient>,
) -> ApiResult<(Change, Patient)> {
    me.require(Action::Refer)?;
    let mine = me.user.facility_id;
    if input.from_facility_id.is_some_and(|f| f != mine) {
        return Err(ApiError::forbidden(
            "referral.other_facility",
            "you can send referrals only from your own facility",
        ));
    }
    let patient = match known.filter(|p| p.id == input.patient_id) {
        Some(p) => p.clone(),
        None => state
            .store
            .get_patient(input.patient_id)
            .await?
            .ok_or_else(|| unknown_reference("patient_id", format!("unknown patient {}", input.patient_id)))?,
    };
    if let PatientStatus::Merged(into) = patient.status {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "patient.merged",
            format!("this record was merged into {into}; refer the surviving record"),
        ));
    }
    // registered here is a care relationship (the access rule's first fact, and the record
    // is not merged away): the other facts are not read
    if patient.home_facility_id != Some(mine) {
        crate::routes::encounters::require_presence(state, me, patient.id, "referral.no_relationship").await?;
    }
    let from = facility(state, mine).await?.ok_or_else(|| missing_facility(mine))?;
    let to = facility(state, input.to_facility_id)
        .await?
        .ok_or_else(|| unknown_reference("to_facility_id", format!("unknown facility {}", input.to_facility_id)))?;
    let now = state.now();
    let home = home_region(state, patient.id, &from, now).await?;
    let change = rules::request(input, new_id(), patient.region_key.clone(), me.user.id, &from, &to, &home, now)?;
    Ok((change, patient))
}

pub(crate) async fn read_logged(
    state: &AppState,
    me: &CurrentUser,
    id: Uuid,
    client_addr: Option<String>,
) -> ApiResult<(Referral, Vec<ReferralEvent>)> {
    me.require(Action::Refer)?;
    let ReferralForStep { referral: r, history, .. } =
        state.store.referral_for_step(id).await?.ok_or_else(|| ApiError::not_found("referral"))?;
    party_of(me, &r)?;
    state
        .store
        .record_access(&super::patients::access_entry(
            me,
            &r.region_key,
            r.patient_id,
            "read_referral",
            AccessBasis::CareRelationship,
            client_addr,
        ))
        .await?;
    Ok((r, history))
}

/// The user's side of a referral: 403 `referral.not_party` for anyone else.
pub(crate) fn party_of(me: &CurrentUser, r: &Referral) -> ApiResult<Party> {
    let mine = me.user.facility_id;
    if mine == r.from_facility_id {
        Ok(Party::Sender)
    } else if mine == r.to_facility_id {
        Ok(Party::Receiver)
    } else {
        Err(ApiError::forbidden(
            "referral.not_party",
            "only users of the sending or the current receiving facility can see or act on this referral",
        ))
    }
}

/// A domain refusal as HTTP: impossible 409, not your side 403, bad arguments 422.
pub(crate) fn refusal(e: Refusal) -> ApiError {
    match e {
        Refusal::Impossible { .. } => ApiError::new(StatusCode::CONFLICT, "referral.transition", e.to_string()),
        Refusal::NotYourTurn(m) => ApiError::forbidden("referral.not_your_turn", m),
        Refusal::Invalid(d) => d.into(),
    }
}

fn stale(r: &Referral, given: i64) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "conflict",
        format!(
            "the referral changed: it is now {} at version {} (you sent version {given}); reload it and try again",
            r.state.as_str(),
            r.version
        ),
    )
}

pub(crate) fn unknown_reference(field: &str, message: String) -> ApiError {
    let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "reference.unknown", message.clone());
    e.details.push(tiercare_domain::FieldError::new(field, "reference.unknown", message));
    e
}

/// A stored referral names a facility the registry lacks: logged, answered as internal.
pub(crate) fn missing_facility(id: Uuid) -> ApiError {
    tracing::error!(facility = %id, "a referral names a facility that is not stored");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "an internal error occurred; it has been logged")
}

/// The patient's insured region: the enrolment valid today (China time; the latest one if
/// several), else the sender's insurance region.
pub(crate) async fn home_region(
    state: &AppState,
    patient_id: Uuid,
    sender: &Facility,
    now: OffsetDateTime,
) -> Result<String, tiercare_store::StoreError> {
    let today = china_date(now);
    let enrolled = state
        .store
        .enrolments(patient_id)
        .await?
        .into_iter()
        .filter(|e| e.valid_from <= today && e.valid_to.is_none_or(|to| today <= to))
        .max_by_key(|e| e.valid_from)
        .map(|e| e.insured_region);
    Ok(enrolled.unwrap_or_else(|| sender.insurance_region.clone()))
}

/// What a referral's history shows of a user.
pub(crate) struct Actor {
    pub name: String,
    pub facility_id: Uuid,
}

/// A facility by id (cached).
pub(crate) async fn facility(state: &AppState, id: Uuid) -> ApiResult<Option<Arc<Facility>>> {
    if let Some(f) = state.cache.facilities.get(&id) {
        return Ok(Some(f));
    }
    let Some(f) = state.store.get_facility(id).await? else { return Ok(None) };
    let f = Arc::new(f);
    state.cache.facilities.put(id, f.clone());
    Ok(Some(f))
}

/// A user's display name and facility (cached).
pub(crate) async fn actor(state: &AppState, id: Uuid) -> ApiResult<Option<Arc<Actor>>> {
    if let Some(a) = state.cache.actors.get(&id) {
        return Ok(Some(a));
    }
    let Some(u) = state.store.get_user(id).await? else { return Ok(None) };
    let a = Arc::new(Actor { name: u.display_name, facility_id: u.facility_id });
    state.cache.actors.put(id, a.clone());
    Ok(Some(a))
}

/// Every facility (the emergency network's candidates), fresh from the store.
pub(crate) async fn all_facilities(state: &AppState) -> ApiResult<Vec<Facility>> {
    Ok(state.store.list_facilities(&FacilityFilter::default()).await?)
}
