//! Insurance settlement over HTTP (issue 6; the contract is /work/notes/settlement-api.md):
//! the catalogue and policies, pre-settlement and settlement of a bill, reading and
//! reversing a settlement, the daily journal, a person's accumulators and the reports.
//!
//! A bill is priced against the catalogue of the place of treatment
//! (`domain::billing::price_bill`), the facts the adjudication needs are gathered here —
//! scheme and insured region from the patient's enrolment on the day of care, tier and
//! region from the facility, the filing that covers the care, how the patient came
//! (`derive_arrival` from their referrals to this facility) — and the store adjudicates
//! against the person's accumulators in one write transaction (`Store::settle`). A preview
//! adjudicates against the accumulators as they are and writes nothing.
//!
//! [`BillRequest`], [`settle_bill`] and [`settlement_json`] are shared with the FHIR routes
//! (`Claim/$submit`).

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tiercare_domain::FieldError;
use tiercare_domain::access::AccessBasis;
use tiercare_domain::billing::{self, CatalogueItem, ItemKind, PricedLine, ReferralFact};
use tiercare_domain::encounter::EncounterClass;
use tiercare_domain::facility::Facility;
use tiercare_domain::filing::FilingCategory;
use tiercare_domain::identity::mask_identifier;
use tiercare_domain::patient::{Enrolment, FilingStatus, Patient, PatientStatus};
use tiercare_domain::referral::{CHINA_TIME, Direction, ReferralState, china_date};
use tiercare_domain::role::{Action, Role};
use tiercare_domain::settlement::{Accumulators, Arrival, Claim, Place, Policy, Setting};
use tiercare_store::{
    FacilityFilter, ReferralFilter, SettleRequest, SettlementFilter, SettlementPosition, SettlementRecord,
    SettlementStatus, StoreError, new_id,
};
use time::{Date, Month, OffsetDateTime, Time};
use uuid::Uuid;

use super::referrals::facility;
use super::referrals::view::rfc3339;
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, CurrentUser, admin_scope};
use crate::routes::parse_id;

// ---------------------------------------------------------------------------------------
// Shared with FHIR
// ---------------------------------------------------------------------------------------

/// A bill as the desk (or a hospital system) sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BillRequest {
    /// The caller's transaction number, unique per facility (required to settle).
    #[serde(default)]
    pub txn_no: Option<String>,
    pub patient_id: Uuid,
    #[serde(default)]
    pub encounter_id: Option<Uuid>,
    pub setting: Setting,
    /// Day of care; default today (China time).
    #[serde(default)]
    pub date: Option<Date>,
    /// How the patient came; `None`: derived from their referrals to this facility.
    #[serde(default)]
    pub arrival: Option<Arrival>,
    pub lines: Vec<PricedLine>,
}

/// A settlement (or a preview) with the catalogue items of its lines.
#[derive(Debug, Clone)]
pub(crate) struct Settled {
    /// The stored settlement; for a preview `id` is nil and `txn_no` what was sent.
    pub record: SettlementRecord,
    /// An earlier settlement answered for the same transaction number and bill.
    pub replayed: bool,
    /// The catalogue item of each of the record's priced lines (`record.items`), in order:
    /// from the pricing when settled now, looked up by code in the catalogue of the
    /// facility's region when read back (`None` for a code it no longer has; empty for
    /// settlements stored before the priced lines were kept).
    pub items: Vec<Option<CatalogueItem>>,
    /// The patient, when already read (saves a read for the view).
    pub patient: Option<Patient>,
}

/// Pre-settle (`store_it == false`: nothing written) or settle a bill at the user's
/// facility. Refusals: 403 without the settle role or without a relationship to the
/// patient; 422 with each field for unknown items, bad quantities or prices, a patient
/// not enrolled on the day, no policy in force, an encounter not this patient's here; 409
/// for a transaction number used for another bill or an encounter already settled.
pub(crate) async fn settle_bill(
    state: &AppState,
    me: &CurrentUser,
    bill: &BillRequest,
    store_it: bool,
) -> Result<Settled, ApiError> {
    me.require(Action::Settle)?;
    let now = state.now();
    let today = china_date(now);
    let txn_no = bill.txn_no.as_deref().map(str::trim).unwrap_or_default().to_owned();
    if store_it && txn_no.is_empty() {
        return Err(field_error(
            "txn_no",
            "settlement.txn_no",
            "send your transaction number (txn_no): a repeated request with it answers the first settlement",
        ));
    }
    let fac = facility(state, me.user.facility_id)
        .await?
        .ok_or_else(|| ApiError::forbidden("settlement.no_facility", "your facility is not registered"))?;
    let catalogue = state.catalogues.for_facility_region(&fac.region_code).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "settlement.no_catalogue",
            format!("no catalogue is loaded for the region of your facility ({})", fac.region_code),
        )
    })?;
    let day = bill.date.unwrap_or(today);
    if day > today {
        return Err(field_error("date", "settlement.date_future", format!("the day of care {day} is after today")));
    }
    let priced = billing::price_bill(catalogue, &bill.lines)?;
    // the reads that need only the patient's id run together; their refusals are then
    // reported in a fixed order (unknown patient, merged, no relationship, not enrolled)
    let pid = bill.patient_id;
    let (patient, enrolment, derived) =
        tokio::join!(state.store.get_patient(pid), enrolment_on(state, pid, day), async {
            match bill.arrival {
                Some(a) => Ok(a),
                None => arrival_of(state, pid, &fac, day).await,
            }
        });
    let patient =
        patient?.ok_or_else(|| field_error("patient_id", "reference.unknown", format!("unknown patient {pid}")))?;
    if let PatientStatus::Merged(into) = patient.status {
        return Err(field_error(
            "patient_id",
            "settlement.patient_merged",
            format!("this record was merged into {into}; settle on the surviving record"),
        ));
    }
    // registered here is a care relationship (the access rule's first test); otherwise the
    // whole rule, or an identification at this desk within 24 hours
    if patient.home_facility_id != Some(fac.id) {
        super::encounters::require_presence(state, me, pid, "settlement.no_relationship").await?;
    }
    let enrolment = enrolment?;
    let arrival = derived?;
    let pool = billing::pool_region(&state.policies, &enrolment.insured_region)
        .unwrap_or(enrolment.insured_region.as_str())
        .to_owned();
    let place = place_of(state, &patient, &enrolment, &pool, &fac, day).await?;
    let claim = Claim {
        scheme: enrolment.scheme,
        insured_region: pool,
        setting: bill.setting,
        tier: fac.tier,
        arrival,
        place,
        date: day,
        lines: priced.iter().map(|(_, l)| l.clone()).collect(),
        accumulators: Accumulators::default(),
    };
    // what was billed, under the catalogue's own code, stored with the settlement
    let priced_lines: Vec<PricedLine> = priced
        .iter()
        .zip(&bill.lines)
        .map(|((item, _), l)| PricedLine {
            code: item.code.clone(),
            quantity: l.quantity,
            unit_price_fen: l.unit_price_fen,
        })
        .collect();
    let items: Vec<Option<CatalogueItem>> = priced.into_iter().map(|(i, _)| Some(i)).collect();
    let record = if store_it {
        let req = SettleRequest {
            id: new_id(),
            region_key: patient.region_key.clone(),
            facility_id: fac.id,
            txn_no,
            patient_id: patient.id,
            encounter_id: bill.encounter_id,
            claim,
            items: priced_lines,
            at: now,
        };
        state.store.settle(&req, &state.policies).await.map_err(settle_error)?
    } else {
        let mut claim = claim;
        claim.accumulators = state.store.accumulators(patient.id, day.year()).await?;
        let split = tiercare_domain::settlement::adjudicate(&state.policies, &claim)?;
        SettlementRecord {
            id: Uuid::nil(),
            region_key: patient.region_key.clone(),
            facility_id: fac.id,
            txn_no,
            patient_id: patient.id,
            encounter_id: bill.encounter_id,
            claim,
            items: priced_lines,
            split,
            status: SettlementStatus::Settled,
            created_at: now,
            reversed_at: None,
            reversal_txn_no: None,
            reversal_reason: None,
            replayed: false,
        }
    };
    // a replay answers the first settlement's lines, which may be other items than sent
    // only if the catalogue changed; look them up again then
    let items = if record.items.len() == items.len()
        && record.items.iter().zip(&items).all(|(l, i)| i.as_ref().is_some_and(|i| i.code == l.code))
    {
        items
    } else {
        catalogue_items(catalogue, &record)
    };
    Ok(Settled { replayed: record.replayed, record, items, patient: Some(patient) })
}

/// The JSON view of a settlement (`preview` marks a pre-settlement); `explain` adds the
/// explanation steps (the journal leaves them out).
pub(crate) fn settlement_json(
    s: &Settled,
    fac: Option<&Facility>,
    patient: Option<&Patient>,
    preview: bool,
    explain: bool,
) -> Value {
    let r = &s.record;
    let sp = &r.split;
    // class and amount from the claim line (what was adjudicated); code, quantity and price
    // from the stored priced line; name, kind and unit from the catalogue
    let lines: Vec<Value> = if r.items.len() == r.claim.lines.len() && !r.items.is_empty() {
        r.items
            .iter()
            .zip(&r.claim.lines)
            .enumerate()
            .map(|(i, (priced, line))| {
                let item = s.items.get(i).and_then(Option::as_ref);
                json!({
                    "code": priced.code, "name": item.map(|c| &c.name), "kind": item.map(|c| c.kind),
                    "class": line.class, "unit": item.map(|c| &c.unit),
                    "quantity": priced.quantity, "unit_price_fen": priced.unit_price_fen,
                    "amount_fen": line.amount_fen,
                })
            })
            .collect()
    } else {
        r.claim
            .lines
            .iter()
            .map(|l| {
                json!({"code": null, "name": null, "kind": null, "class": l.class, "unit": null,
                       "quantity": null, "unit_price_fen": null, "amount_fen": l.amount_fen})
            })
            .collect()
    };
    let status = if preview { "preview" } else { r.status.as_str() };
    let mut v = json!({
        "id": if preview { Value::Null } else { json!(r.id) },
        "txn_no": if r.txn_no.is_empty() { Value::Null } else { json!(r.txn_no) },
        "status": status,
        "replayed": s.replayed,
        "facility": match fac {
            Some(f) => json!({"id": f.id, "name": f.name, "tier": f.tier}),
            None => json!({"id": r.facility_id, "name": null, "tier": r.claim.tier}),
        },
        "patient": {
            "id": r.patient_id,
            "name": patient.map(|p| p.name.clone()),
            "masked_id": patient.and_then(|p| p.identity_number()).map(mask_identifier),
        },
        "encounter_id": r.encounter_id,
        "scheme": r.claim.scheme,
        "insured_region": r.claim.insured_region,
        "insured_region_name": tiercare_domain::region::full_name(&r.claim.insured_region),
        "place": place_str(r.claim.place),
        "arrival": r.claim.arrival,
        "setting": r.claim.setting,
        "tier": r.claim.tier,
        "date": r.claim.date.to_string(),
        "lines": lines,
        "total_fen": sp.total_fen,
        "fund_fen": sp.fund_fen,
        "patient_fen": sp.patient_fen,
        "self_pay_fen": sp.self_pay_fen,
        "class_b_share_fen": sp.class_b_share_fen,
        "deductible_fen": sp.deductible_fen,
        "coinsurance_fen": sp.coinsurance_fen,
        "above_ceiling_fen": sp.above_ceiling_fen,
        "rate_bp": sp.rate_bp,
        "policy": sp.policy,
        "accumulators_before": accumulators_json(&r.claim.accumulators),
        "accumulators_after": accumulators_json(&sp.after),
        "created_at": if preview { Value::Null } else { json!(rfc3339(r.created_at)) },
        "reversed_at": r.reversed_at.map(rfc3339),
        "reversal_txn_no": r.reversal_txn_no,
        "reversal_reason": r.reversal_reason,
    });
    if explain {
        v["explanation"] = json!(sp.explanation);
    }
    v
}

fn place_str(p: Place) -> &'static str {
    match p {
        Place::Home => "home",
        Place::FiledLongTerm => "filed_long_term",
        Place::FiledTemporary => "filed_temporary",
        Place::Unfiled => "unfiled",
    }
}

fn accumulators_json(a: &Accumulators) -> Value {
    json!({
        "inpatient_fund_paid_fen": a.inpatient_fund_paid_fen,
        "outpatient_fund_paid_fen": a.outpatient_fund_paid_fen,
        "stay_deductible_paid_fen": a.stay_deductible_paid_fen,
    })
}

fn field_error(field: &str, code: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    let mut e = ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message.clone());
    e.details.push(FieldError::new(field, code, message));
    e
}

/// The store's refusals of a settlement, with the contract's codes.
fn settle_error(e: StoreError) -> ApiError {
    match e {
        StoreError::TxnNumberUsed(m) => ApiError::new(StatusCode::CONFLICT, "settlement.txn_conflict", m),
        StoreError::EncounterSettled(m) => ApiError::new(StatusCode::CONFLICT, "settlement.encounter_settled", m),
        StoreError::NotFound { what } if what.starts_with("encounter") => {
            field_error("encounter_id", "reference.unknown", format!("unknown {what}"))
        }
        other => other.into(),
    }
}

/// The enrolment valid on `day` (the latest if several), else 422 `settlement.not_enrolled`.
async fn enrolment_on(state: &AppState, patient_id: Uuid, day: Date) -> ApiResult<Enrolment> {
    state
        .store
        .enrolments(patient_id)
        .await?
        .into_iter()
        .filter(|e| e.valid_from <= day && e.valid_to.is_none_or(|to| day <= to))
        .max_by_key(|e| e.valid_from)
        .ok_or_else(|| {
            field_error(
                "date",
                "settlement.not_enrolled",
                format!("the patient has no insurance enrolment valid on {day}; enrol them or correct the date"),
            )
        })
}

/// Home, or out of the insured region with the filing that covers the care: a filing
/// record (备案) or a long-term filing noted on the enrolment.
async fn place_of(
    state: &AppState,
    patient: &Patient,
    enrolment: &Enrolment,
    pool: &str,
    fac: &Facility,
    day: Date,
) -> ApiResult<Place> {
    if billing::region_contains(pool, &fac.region_code) {
        return Ok(Place::Home);
    }
    let filings = state.store.list_filings(&[patient.id]).await?;
    let mut filing = billing::covering_filing(&filings, pool, &fac.region_code, day);
    // the enrolment's own note of a filing, when no filing record covers the care: long
    // term gives home rates; temporary without a record of why counts as "other" (the
    // unfiled rate)
    if filing.is_none()
        && enrolment.filed_region.as_deref().is_some_and(|r| billing::region_contains(r, &fac.region_code))
    {
        filing = match enrolment.filing_status {
            FilingStatus::LongTerm => Some(FilingCategory::LongTermResident),
            FilingStatus::Temporary => Some(FilingCategory::OtherTemporary),
            FilingStatus::NotFiled => None,
        };
    }
    Ok(billing::place_of_care(pool, &fac.region_code, filing))
}

/// How the patient came, from their referrals to this facility of the last 90 days.
async fn arrival_of(state: &AppState, patient_id: Uuid, fac: &Facility, day: Date) -> ApiResult<Arrival> {
    let from = OffsetDateTime::new_in_offset(
        day - time::Duration::days(billing::REFERRAL_WINDOW_DAYS),
        Time::MIDNIGHT,
        CHINA_TIME,
    );
    let referrals = state
        .store
        .list_referrals(&ReferralFilter {
            to_facility_id: Some(fac.id),
            patient_ids: vec![patient_id],
            states: vec![
                ReferralState::Accepted,
                ReferralState::Scheduled,
                ReferralState::Arrived,
                ReferralState::Completed,
            ],
            requested_from: Some(from),
            limit: 20,
            ..Default::default()
        })
        .await?;
    if referrals.is_empty() {
        return Ok(Arrival::SelfReferred);
    }
    // the sender's encounters, to tell a stay (continuous deductible) from a visit
    let needs_encounters = referrals.iter().any(|r| r.direction == Direction::Upward && !r.encounter_ids.is_empty());
    let inpatient: Vec<Uuid> = if needs_encounters {
        match state.store.patient_record(patient_id).await? {
            Some(rec) => rec.encounters.iter().filter(|e| e.class == EncounterClass::Inpatient).map(|e| e.id).collect(),
            None => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let mut facts = Vec::with_capacity(referrals.len());
    for r in &referrals {
        let from_tier = match facility(state, r.from_facility_id).await? {
            Some(f) => f.tier,
            None => continue,
        };
        facts.push(ReferralFact {
            to_facility_id: r.to_facility_id,
            direction: r.direction,
            state: r.state,
            green_channel: r.green_channel.is_some(),
            from_tier,
            from_stay: r.encounter_ids.iter().any(|id| inpatient.contains(id)),
            requested_on: china_date(r.requested_at),
        });
    }
    Ok(billing::derive_arrival(fac.id, day, billing::REFERRAL_WINDOW_DAYS, &facts))
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

/// POST /api/v1/settlements/preview
pub(crate) async fn preview(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(bill): ApiJson<BillRequest>,
) -> ApiResult<Json<Value>> {
    let s = settle_bill(&state, &me, &bill, false).await?;
    view(&state, &s, true, true).await.map(Json)
}

/// POST /api/v1/settlements
pub(crate) async fn settle(
    State(state): State<AppState>,
    me: CurrentUser,
    ApiJson(bill): ApiJson<BillRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let s = settle_bill(&state, &me, &bill, true).await?;
    let status = if s.replayed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, Json(view(&state, &s, false, true).await?)))
}

async fn view(state: &AppState, s: &Settled, preview: bool, explain: bool) -> ApiResult<Value> {
    let fac = facility(state, s.record.facility_id).await?;
    let patient = match &s.patient {
        Some(p) => Some(p.clone()),
        None => state.store.get_patient(s.record.patient_id).await?,
    };
    Ok(settlement_json(s, fac.as_deref(), patient.as_ref(), preview, explain))
}

/// The catalogue item of each stored priced line (by code).
fn catalogue_items(catalogue: &billing::Catalogue, r: &SettlementRecord) -> Vec<Option<CatalogueItem>> {
    r.items.iter().map(|l| catalogue.get(&l.code).cloned()).collect()
}

/// A stored settlement with the items of its lines from the catalogue of the place of
/// treatment (the settling facility's region; none when the facility is unknown).
fn stored(state: &AppState, record: SettlementRecord, fac: Option<&Facility>) -> Settled {
    let items = match fac.and_then(|f| state.catalogues.for_facility_region(&f.region_code)) {
        Some(c) => catalogue_items(c, &record),
        None => Vec::new(),
    };
    Settled { replayed: record.replayed, record, items, patient: None }
}

/// [`view`] of a stored settlement.
async fn stored_view(state: &AppState, record: SettlementRecord) -> ApiResult<Value> {
    let fac = facility(state, record.facility_id).await?;
    let s = stored(state, record, fac.as_deref());
    let patient = state.store.get_patient(s.record.patient_id).await?;
    Ok(settlement_json(&s, fac.as_deref(), patient.as_ref(), false, true))
}

/// May the user see settlements of `facility_id`? Clerks their own facility; insurance
/// officers and system admins all; community admins their community's. Returns the
/// access-log basis.
pub(crate) async fn may_read_facility(state: &AppState, me: &CurrentUser, facility_id: Uuid) -> ApiResult<AccessBasis> {
    if me.may(Action::Settle) && me.user.facility_id == facility_id {
        return Ok(AccessBasis::CareRelationship);
    }
    if me.has_role(Role::InsuranceOfficer) || me.has_role(Role::SystemAdmin) {
        return Ok(AccessBasis::SameCommunity);
    }
    if me.has_role(Role::CommunityAdmin) {
        let scope = admin_scope(state, me).await?;
        let theirs = facility(state, facility_id).await?.and_then(|f| f.community_id);
        if scope.is_none() || (theirs.is_some() && theirs == scope) {
            return Ok(AccessBasis::SameCommunity);
        }
    }
    if me.may(Action::Settle) || me.may(Action::ReadSettlementReports) {
        Err(ApiError::forbidden("settlement.other_facility", "this settlement is of a facility outside your scope"))
    } else {
        Err(ApiError::forbidden(
            "role.forbidden",
            "only settlement clerks, insurance officers and administrators may see settlements",
        ))
    }
}

/// GET /api/v1/settlements/{id} (writes an access-log row first).
pub(crate) async fn read(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    if !me.may(Action::Settle) && !me.may(Action::ReadSettlementReports) {
        return Err(ApiError::forbidden(
            "role.forbidden",
            "only settlement clerks, insurance officers and administrators may see settlements",
        ));
    }
    let id = parse_id(&id, "settlement")?;
    let r = state.store.get_settlement(id).await?.ok_or_else(|| ApiError::not_found("settlement"))?;
    let basis = may_read_facility(&state, &me, r.facility_id).await?;
    state
        .store
        .record_access(&super::patients::access_entry(
            &me,
            &r.region_key,
            r.patient_id,
            "read_settlement",
            basis,
            Some(addr.ip().to_string()),
        ))
        .await?;
    Ok(Json(stored_view(&state, r).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReversalRequest {
    txn_no: String,
    /// Why (required: trimmed, 1 to 200 characters; stored with the reversal).
    #[serde(default)]
    reason: Option<String>,
}

/// POST /api/v1/settlements/{id}/reversal — 冲正, idempotent per reversal number.
pub(crate) async fn reverse(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ReversalRequest>,
) -> ApiResult<Json<Value>> {
    me.require(Action::Settle)?;
    let id = parse_id(&id, "settlement")?;
    let r = state.store.get_settlement(id).await?.ok_or_else(|| ApiError::not_found("settlement"))?;
    if r.facility_id != me.user.facility_id {
        return Err(ApiError::forbidden(
            "settlement.other_facility",
            "only the facility that made a settlement can reverse it",
        ));
    }
    let txn = req.txn_no.trim();
    if txn.is_empty() {
        return Err(field_error("txn_no", "settlement.txn_no", "send the reversal's transaction number (txn_no)"));
    }
    let reason = req.reason.as_deref().map(str::trim).unwrap_or_default();
    let n = reason.chars().count();
    if n == 0 || n > 200 {
        return Err(field_error(
            "reason",
            "settlement.reversal_reason",
            format!("say why the settlement is reversed, in 1 to 200 characters (got {n})"),
        ));
    }
    let done = state.store.reverse_settlement(id, txn, reason, state.now()).await.map_err(|e| match e {
        StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "settlement.reversal_conflict", m),
        StoreError::NotFound { .. } => ApiError::not_found("settlement"),
        other => other.into(),
    })?;
    Ok(Json(stored_view(&state, done).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JournalQuery {
    date: Option<String>,
    facility_id: Option<String>,
    /// One person's settlements (all days unless `date` is given).
    patient_id: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    /// Where the page starts: the `cursor` of the previous page's answer.
    cursor: Option<String>,
}

/// A journal page's `cursor`: the position of its last row — `created_at` in milliseconds
/// (16 hex digits, two's complement) and the id (32 hex digits). Opaque to clients.
fn journal_cursor(at: SettlementPosition) -> String {
    let ms = i64::try_from(at.created_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    format!("{:016x}{}", ms as u64, at.id.simple())
}

fn parse_journal_cursor(raw: &str) -> ApiResult<SettlementPosition> {
    let bad = || {
        query_error(
            "cursor",
            "is not a cursor of this journal: send the cursor of the previous page's answer unchanged, or none for the first page",
        )
    };
    let raw = raw.trim();
    if raw.len() != 48 || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let ms = u64::from_str_radix(&raw[..16], 16).map_err(|_| bad())? as i64;
    let id = Uuid::parse_str(&raw[16..]).map_err(|_| bad())?;
    let created_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(|_| bad())?;
    Ok(SettlementPosition { created_at, id })
}

fn query_error(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::query(field, "query.invalid", message)
}

fn parse_date(field: &str, raw: &str) -> ApiResult<Date> {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(raw.trim(), &fmt).map_err(|_| query_error(field, format!("{raw:?} is not a date YYYY-MM-DD")))
}

/// GET /api/v1/settlements — the daily journal (日结) of one facility.
pub(crate) async fn journal(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<JournalQuery>,
) -> ApiResult<Json<Value>> {
    if !me.may(Action::Settle) && !me.may(Action::ReadSettlementReports) {
        return Err(ApiError::forbidden(
            "role.forbidden",
            "only settlement clerks, insurance officers and administrators may read the journal",
        ));
    }
    let patient_id = match &q.patient_id {
        Some(raw) => Some(Uuid::parse_str(raw.trim()).map_err(|_| query_error("patient_id", "not a UUID"))?),
        None => None,
    };
    // a day: the one given, else today unless one person's settlements are asked for
    let day = match (&q.date, patient_id) {
        (Some(d), _) => Some(parse_date("date", d)?),
        (None, None) => Some(china_date(state.now())),
        (None, Some(_)) => None,
    };
    let everywhere = me.has_role(Role::InsuranceOfficer) || me.has_role(Role::SystemAdmin);
    let facility_id = match &q.facility_id {
        Some(raw) => Some(Uuid::parse_str(raw.trim()).map_err(|_| query_error("facility_id", "not a UUID"))?),
        // one person at every facility for those who see every facility
        None if patient_id.is_some() && everywhere => None,
        None => Some(me.user.facility_id),
    };
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some(s) => {
            Some(SettlementStatus::parse(s).ok_or_else(|| query_error("status", "status is settled or reversed"))?)
        }
    };
    // the facility's own desk sees names; officers and administrators see them masked
    let mask = match facility_id {
        Some(f) => may_read_facility(&state, &me, f).await? != AccessBasis::CareRelationship,
        None => true,
    };
    let after = q.cursor.as_deref().filter(|c| !c.trim().is_empty()).map(parse_journal_cursor).transpose()?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let start = day.map(|d| OffsetDateTime::new_in_offset(d, Time::MIDNIGHT, CHINA_TIME));
    let filter = SettlementFilter {
        facility_id,
        patient_id,
        from: start,
        to: start.map(|t| t + time::Duration::days(1)),
        status,
        limit,
        after,
    };
    // the page, and the totals of everything the filter selects (the whole day, whatever
    // the page: what a clerk closing the day needs)
    let (rows, totals) = tokio::join!(state.store.list_settlements(&filter), state.store.settlement_totals(&filter));
    let (rows, totals) = (rows?, totals?);
    // a full page has a next page when one more row follows its last
    let cursor = match rows.last() {
        Some(last) if rows.len() == limit as usize => {
            let at = SettlementPosition::of(last);
            let more =
                state.store.list_settlements(&SettlementFilter { limit: 1, after: Some(at), ..filter.clone() }).await?;
            (!more.is_empty()).then(|| journal_cursor(at))
        }
        _ => None,
    };
    let ids: Vec<Uuid> = rows.iter().map(|r| r.patient_id).collect();
    let patients: HashMap<Uuid, Patient> = state
        .store
        .get_patients(&ids)
        .await?
        .into_iter()
        .map(|mut p| {
            if mask {
                p.name = super::referrals::view::mask_name(&p.name);
            }
            (p.id, p)
        })
        .collect();
    let fac = match facility_id {
        Some(f) => facility(&state, f).await?,
        None => None,
    };
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let p = patients.get(&r.patient_id);
        let row_fac = match &fac {
            Some(f) => Some(f.clone()),
            None => facility(&state, r.facility_id).await?,
        };
        out.push(settlement_json(&stored(&state, r, row_fac.as_deref()), row_fac.as_deref(), p, false, false));
    }
    let mut answer = json!({
        "date": day.map(|d| d.to_string()),
        "facility": fac.as_deref().map(|f| json!({"id": f.id, "name": f.name, "tier": f.tier})),
        "rows": out,
        "totals": {"count": totals.count, "total_fen": totals.total_fen, "fund_fen": totals.fund_fen,
                   "patient_fen": totals.patient_fen, "reversed_count": totals.reversed_count,
                   "reversed_fund_fen": totals.reversed_fund_fen},
    });
    if let Some(c) = cursor {
        answer["cursor"] = json!(c);
    }
    Ok(Json(answer))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct YearQuery {
    year: Option<i32>,
}

/// GET /api/v1/patients/{id}/accumulators?year=2026
pub(crate) async fn accumulators(
    State(state): State<AppState>,
    me: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<YearQuery>,
) -> ApiResult<Json<Value>> {
    let id = parse_id(&id, "patient")?;
    if me.may(Action::Settle) {
        super::encounters::require_presence(&state, &me, id, "settlement.no_relationship").await?;
    } else if me.may(Action::ReadSettlementReports) {
        if me.has_role(Role::CommunityAdmin) && !me.has_role(Role::InsuranceOfficer) {
            crate::extract::require_patient_in_scope(&state, &me, id).await?;
        }
    } else {
        return Err(ApiError::forbidden(
            "role.forbidden",
            "only settlement clerks, insurance officers and administrators may see accumulators",
        ));
    }
    state.store.get_patient(id).await?.ok_or_else(|| ApiError::not_found("patient"))?;
    let today = china_date(state.now());
    let year = q.year.unwrap_or(today.year());
    if !(1900..=9999).contains(&year) {
        return Err(query_error("year", "a year such as 2026"));
    }
    let a = state.store.accumulators(id, year).await?;
    // the policy of the enrolment valid today (or on the year's last day for past years)
    let on =
        if year == today.year() { today } else { Date::from_calendar_date(year, Month::December, 31).unwrap_or(today) };
    let policy: Option<&Policy> = match enrolment_on(&state, id, on).await {
        Ok(e) => {
            let pool = billing::pool_region(&state.policies, &e.insured_region).unwrap_or(&e.insured_region);
            state.policies.find(pool, e.scheme, on).ok()
        }
        Err(_) => None,
    };
    Ok(Json(json!({
        "year": year,
        "inpatient_fund_paid_fen": a.inpatient_fund_paid_fen,
        "outpatient_fund_paid_fen": a.outpatient_fund_paid_fen,
        "annual_ceiling_fen": policy.map(|p| p.annual_ceiling_fen),
        "outpatient_cap_fen": policy.map(|p| p.outpatient_cap_fen),
        "policy": policy.map(|p| p.name.clone()),
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogueQuery {
    q: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
    /// Another facility region's catalogue (default: the user's facility's).
    region: Option<String>,
}

/// GET /api/v1/settlement/catalogue
pub(crate) async fn catalogue(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<CatalogueQuery>,
) -> ApiResult<Json<Value>> {
    let region = match &q.region {
        Some(r) => r.trim().to_owned(),
        None => facility(&state, me.user.facility_id).await?.map(|f| f.region_code.clone()).unwrap_or_default(),
    };
    let kind = match q.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(ItemKind::parse(k).ok_or_else(|| query_error("kind", "kind is drug, service or material"))?),
    };
    let Some(c) = state.catalogues.for_facility_region(&region) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "settlement.no_catalogue",
            format!("no catalogue is loaded for region {region:?}"),
        ));
    };
    let items = c.search(q.q.as_deref().unwrap_or(""), kind, q.limit.unwrap_or(50).clamp(1, 500));
    Ok(Json(json!({"region": c.region, "name": c.name, "items": items})))
}

/// GET /api/v1/settlement/policies
pub(crate) async fn policies(State(state): State<AppState>, _me: CurrentUser) -> ApiResult<Json<Value>> {
    Ok(Json(json!({"source": &*state.policy_source, "policies": state.policies.policies})))
}

// ---------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------

/// A `YYYY-MM` parameter as the first day of that month.
pub(crate) fn parse_month(field: &str, raw: &str) -> ApiResult<Date> {
    let bad = || query_error(field, format!("{raw:?} is not a month YYYY-MM"));
    let (y, m) = raw.trim().split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u8 = m.parse().map_err(|_| bad())?;
    let month = Month::try_from(month).map_err(|_| bad())?;
    Date::from_calendar_date(year, month, 1).map_err(|_| bad())
}

fn next_month(d: Date) -> Date {
    tiercare_domain::filing::add_months(d, 1)
}

/// `[from, to]` months → `[first day of from, first day after to)`; 400 when inverted.
fn period(from: Option<&str>, to: Option<&str>, today: Date) -> ApiResult<(Date, Date)> {
    let this_month = Date::from_calendar_date(today.year(), today.month(), 1).unwrap_or(today);
    let to = match to {
        Some(t) => parse_month("to", t)?,
        None => this_month,
    };
    let from = match from {
        Some(f) => parse_month("from", f)?,
        None => Date::from_calendar_date(to.year(), Month::January, 1).unwrap_or(to),
    };
    if from > to {
        return Err(query_error("from", "the period starts after it ends"));
    }
    Ok((from, next_month(to)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FundQuery {
    from: Option<String>,
    to: Option<String>,
    group: Option<String>,
}

/// GET /api/v1/settlement/reports/fund
pub(crate) async fn report_fund(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<FundQuery>,
) -> ApiResult<Json<Value>> {
    me.require(Action::ReadSettlementReports)?;
    let (from, to) = period(q.from.as_deref(), q.to.as_deref(), china_date(state.now()))?;
    let by_facility = match q.group.as_deref() {
        None | Some("") | Some("facility") => true,
        Some("tier") => false,
        Some(_) => return Err(query_error("group", "group is facility or tier")),
    };
    let ids = report_facility_scope(&state, &me).await?;
    let rows = state.store.fund_report(from, to, by_facility, ids.as_deref()).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let name = match r.facility_id {
            Some(id) => facility(&state, id).await?.map(|f| f.name.clone()),
            None => None,
        };
        out.push(json!({
            "month": r.month, "facility_id": r.facility_id, "facility_name": name, "tier": r.tier,
            "count": r.count, "total_fen": r.total_fen, "fund_fen": r.fund_fen, "patient_fen": r.patient_fen,
        }));
    }
    Ok(Json(json!({"from": from.to_string(), "to_exclusive": to.to_string(), "rows": out})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutflowQuery {
    from: Option<String>,
    to: Option<String>,
    region: Option<String>,
}

/// GET /api/v1/settlement/reports/outflow — residents of a county treated outside it.
pub(crate) async fn report_outflow(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<OutflowQuery>,
) -> ApiResult<Json<Value>> {
    me.require(Action::ReadSettlementReports)?;
    let (from, to) = period(q.from.as_deref(), q.to.as_deref(), china_date(state.now()))?;
    let county = match &q.region {
        Some(r) => r.trim().to_owned(),
        None => facility(&state, me.user.facility_id).await?.map(|f| f.region_code.clone()).unwrap_or_default(),
    };
    tiercare_domain::region::validate_region_code("region", &county).map_err(|e| query_error("region", e.message))?;
    let rows = state.store.outflow_report(&county, from, to).await?;
    let out: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            json!({"month": r.month, "destination": r.destination, "tier": r.tier, "count": r.count,
                   "total_fen": r.total_fen, "fund_fen": r.fund_fen})
        })
        .collect();
    Ok(Json(json!({"region": county, "from": from.to_string(), "to_exclusive": to.to_string(), "rows": out})))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClearingQuery {
    month: Option<String>,
}

/// This server's province (`510000`): configured, else the first community's.
async fn home_province(state: &AppState) -> ApiResult<Option<String>> {
    if let Some(p) = &state.config.home_province {
        return Ok(Some(province_of(p)));
    }
    Ok(state.store.list_communities().await?.first().map(|c| province_of(&c.region_code)))
}

fn province_of(region: &str) -> String {
    format!("{}0000", region.get(..2).unwrap_or("00"))
}

/// GET /api/v1/settlement/reports/clearing?month=2026-11 — 跨省清算.
pub(crate) async fn report_clearing(
    State(state): State<AppState>,
    me: CurrentUser,
    Query(q): Query<ClearingQuery>,
) -> ApiResult<Json<Value>> {
    me.require(Action::ReadSettlementReports)?;
    let today = china_date(state.now());
    let month = match &q.month {
        Some(m) => parse_month("month", m)?,
        None => Date::from_calendar_date(today.year(), today.month(), 1).unwrap_or(today),
    };
    let home = home_province(&state).await?;
    let rows = state.store.clearing_report(month, next_month(month)).await?;
    let out: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            let direction = match home.as_deref() {
                Some(h) if r.treatment_province == h => "inbound",
                Some(h) if r.insured_province == h => "outbound",
                _ => "other",
            };
            json!({"insured_region": r.insured_province, "treatment_region": r.treatment_province,
                   "direction": direction, "count": r.count, "total_fen": r.total_fen, "fund_fen": r.fund_fen})
        })
        .collect();
    Ok(Json(
        json!({"month": format!("{}-{:02}", month.year(), month.month() as u8), "home_province": home, "rows": out}),
    ))
}

/// The facilities a report may cover for this user: all (`None`) for insurance officers and
/// system admins, else the facilities of the community the user administers.
pub(crate) async fn report_facility_scope(state: &AppState, me: &CurrentUser) -> Result<Option<Vec<Uuid>>, ApiError> {
    if me.has_role(Role::InsuranceOfficer) || me.has_role(Role::SystemAdmin) {
        return Ok(None);
    }
    let Some(community) = admin_scope(state, me).await? else { return Ok(None) };
    let filter = FacilityFilter { community_id: Some(community), ..Default::default() };
    Ok(Some(state.store.list_facilities(&filter).await?.into_iter().map(|f| f.id).collect()))
}
