//! Claim and ClaimResponse search (issue 7: the claim chain of `_include`/`_revinclude`).
//! A stored settlement is both (the same id): `GET /fhir/Claim?patient=|_id=` and
//! `GET /fhir/ClaimResponse?patient=|request=|_id=`, newest first, paged, `_sort=created`.
//! The rule is the reads' (`super::read_settlement`: the role; a clerk sees their facility's
//! settlements, officers all, community administrators their community's); settlements the
//! user may not see are left out (a search does not reveal them), and each one served writes
//! the read's access-log row (`read_settlement`).

use std::net::SocketAddr;

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use tiercare_domain::access::AccessBasis;
use tiercare_domain::role::Action;
use tiercare_fhir::outcome::IssueType;
use tiercare_store::{SettlementFilter, SettlementRecord};

use super::{FhirError, FhirResult, Params, claim_response_of, fhir_json, log_read, not_allowed, stored_claim_of};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::CurrentUser;
use crate::routes::settlements::may_read_facility;

type RawQuery = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Most settlements of one patient a search looks through (the store's cap).
const PATIENT_LIMIT: u32 = 1_000;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/Claim", get(search_claims).fallback(not_allowed("GET")))
        .route("/fhir/ClaimResponse", get(search_claim_responses).fallback(not_allowed("GET")))
}

/// The settlements a search names (`_id`, `request`, `patient`: all given must hold) that
/// this user may see, newest first, with the basis to log.
async fn settlements(
    state: &AppState,
    me: &CurrentUser,
    p: &Params,
    kind: &str,
) -> FhirResult<Vec<(SettlementRecord, AccessBasis)>> {
    if !me.may(Action::Settle) && !me.may(Action::ReadSettlementReports) {
        me.require(Action::Settle)?;
    }
    let ids = p.ids();
    let request = if kind == "ClaimResponse" { p.reference("request", "Claim")? } else { None };
    let patient = p.reference("patient", "Patient")?;
    let mut found: Vec<SettlementRecord> = Vec::new();
    if let Some(id) = request {
        found.extend(state.store.get_settlement(id).await.map_err(ApiError::from)?);
    } else if let Some(ids) = &ids {
        for id in ids.iter().take(500) {
            found.extend(state.store.get_settlement(*id).await.map_err(ApiError::from)?);
        }
    } else if let Some(pt) = patient {
        let f = SettlementFilter { patient_id: Some(pt), limit: PATIENT_LIMIT, ..SettlementFilter::default() };
        found = state.store.list_settlements(&f).await.map_err(ApiError::from)?;
    } else {
        let what = if kind == "ClaimResponse" { "patient, request or _id" } else { "patient or _id" };
        return Err(FhirError::bad_search(
            IssueType::Required,
            format!("search {kind} by {what} (?patient=Patient/<id>)"),
        ));
    }
    found.retain(|r| {
        ids.as_ref().is_none_or(|ids| ids.contains(&r.id))
            && request.is_none_or(|q| q == r.id)
            && patient.is_none_or(|pt| pt == r.patient_id)
    });
    found.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
    found.dedup_by_key(|r| r.id);
    let mut out = Vec::with_capacity(found.len());
    for r in found {
        match may_read_facility(state, me, r.facility_id).await {
            Ok(basis) => out.push((r, basis)),
            // another facility's settlement: not shown, not revealed
            Err(e) if e.status == StatusCode::FORBIDDEN && e.code != "role.forbidden" => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Log the page's settlements as read (before they are served).
async fn log_page(
    state: &AppState,
    me: &CurrentUser,
    items: &[(SettlementRecord, AccessBasis)],
    addr: SocketAddr,
) -> FhirResult<()> {
    for (r, basis) in items {
        log_read(state, me, (&r.region_key, r.patient_id), "read_settlement", *basis, addr).await?;
    }
    Ok(())
}

async fn search_claims(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    let me = me?;
    let p = Params::read(query, &headers, "Claim")?;
    let page = p.page(settlements(&state, &me, &p, "Claim").await?)?;
    log_page(&state, &me, &page.items, addr).await?;
    let mut entries = Vec::with_capacity(page.items.len());
    for (r, _) in &page.items {
        entries.push(stored_claim_of(&state, r).await?);
    }
    Ok(fhir_json(StatusCode::OK, &page.bundle(&p, entries)))
}

async fn search_claim_responses(
    State(state): State<AppState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    let me = me?;
    let p = Params::read(query, &headers, "ClaimResponse")?;
    let page = p.page(settlements(&state, &me, &p, "ClaimResponse").await?)?;
    log_page(&state, &me, &page.items, addr).await?;
    let mut entries = Vec::with_capacity(page.items.len());
    for (r, _) in &page.items {
        entries.push(claim_response_of(&state, r, false).await?);
    }
    Ok(fhir_json(StatusCode::OK, &page.bundle(&p, entries)))
}
