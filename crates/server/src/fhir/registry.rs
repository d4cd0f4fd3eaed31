//! The CapabilityStatement (`GET /fhir/metadata`) and the registry as FHIR: Organization
//! (read, search), Practitioner (read, search), PractitionerRole (search). The registry is
//! not patient data: any signed-in user reads it, as in the JSON API.
//!
//! The store lists facilities and practitioners whole (a county holds hundreds), so these
//! searches filter and page in memory.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use tiercare_domain::facility::{Facility, PractitionerRole};
use tiercare_fhir::registry as fhir_registry;
use tiercare_fhir::search::{string_matches, token_matches};
use tiercare_store::FacilityFilter;
use uuid::Uuid;

use super::{FhirError, FhirResult, Params, fhir_json, not_allowed, path_id};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::CurrentUser;
use tiercare_fhir::outcome::IssueType;

type RawQuery = Result<Query<Vec<(String, String)>>, QueryRejection>;

const ORG_TYPE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/organization-type";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/fhir/metadata", get(metadata).fallback(not_allowed("GET")))
        .route("/fhir/Organization", get(search_organizations).fallback(not_allowed("GET")))
        .route("/fhir/Organization/{id}", get(read_organization).fallback(not_allowed("GET")))
        .route("/fhir/Practitioner", get(search_practitioners).fallback(not_allowed("GET")))
        .route("/fhir/Practitioner/{id}", get(read_practitioner).fallback(not_allowed("GET")))
        .route("/fhir/PractitionerRole", get(search_practitioner_roles).fallback(not_allowed("GET")))
}

/// `GET /fhir/metadata`: what this server offers (no sign-in needed, as FHIR expects).
async fn metadata(State(state): State<AppState>) -> Response {
    let today = (state.clock)().to_offset(tiercare_domain::referral::CHINA_TIME).date().to_string();
    fhir_json(StatusCode::OK, &tiercare_fhir::capability::capability_statement(&today, env!("CARGO_PKG_VERSION")))
}

fn not_found(kind: &str) -> FhirError {
    FhirError::new(StatusCode::NOT_FOUND, IssueType::NotFound, format!("{kind} not found"))
}

async fn read_organization(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    me?;
    let id = path_id(&id, "Organization")?;
    let f = state.store.get_facility(id).await.map_err(ApiError::from)?.ok_or_else(|| not_found("Organization"))?;
    Ok(fhir_json(StatusCode::OK, &tiercare_fhir::organization(&f)))
}

/// Whether every given token (a comma list: any of) matches one of `codes` (system, code).
fn any_token(p: &Params, name: &str, codes: &[(&str, &str)]) -> bool {
    p.list(name).is_none_or(|l| l.iter().any(|t| codes.iter().any(|(s, c)| token_matches(t, s, c))))
}

fn organization_matches(p: &Params, f: &Facility, ids: Option<&[Uuid]>) -> bool {
    let code_system = format!("{}/sid/facility-code", tiercare_fhir::BASE);
    ids.is_none_or(|ids| ids.contains(&f.id))
        && any_token(p, "identifier", &[(&code_system, &f.code)])
        && p.get("name").is_none_or(|n| string_matches(n, &f.name))
        && any_token(p, "type", &[(ORG_TYPE_SYSTEM, "prov")])
}

async fn search_organizations(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    me?;
    let p = Params::read(query, &headers, "Organization")?;
    let ids = p.ids();
    let mut all = state.store.list_facilities(&FacilityFilter::default()).await.map_err(ApiError::from)?;
    all.retain(|f| organization_matches(&p, f, ids.as_deref()));
    all.sort_by(|a, b| (&a.code, a.id).cmp(&(&b.code, b.id)));
    let page = p.page(all)?;
    let entries = page.items.iter().map(tiercare_fhir::organization).collect();
    Ok(fhir_json(StatusCode::OK, &page.bundle(&p, entries)))
}

async fn read_practitioner(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    Path(id): Path<String>,
) -> FhirResult<Response> {
    me?;
    let id = path_id(&id, "Practitioner")?;
    let pr =
        state.store.get_practitioner(id).await.map_err(ApiError::from)?.ok_or_else(|| not_found("Practitioner"))?;
    Ok(fhir_json(StatusCode::OK, &fhir_registry::practitioner(&pr)))
}

async fn search_practitioners(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    me?;
    let p = Params::read(query, &headers, "Practitioner")?;
    let ids = p.ids();
    let licence = fhir_registry::licence_system();
    let mut all = state.store.list_practitioners(None).await.map_err(ApiError::from)?;
    all.retain(|pr| {
        ids.as_ref().is_none_or(|ids| ids.contains(&pr.id))
            && p.list("identifier").is_none_or(|l| {
                pr.licence_number.as_deref().is_some_and(|n| l.iter().any(|t| token_matches(t, &licence, n)))
            })
            && p.get("name").is_none_or(|n| string_matches(n, &pr.name))
    });
    // the store lists by name; the id breaks ties so pages are stable
    let page = p.page(all)?;
    let entries = page.items.iter().map(fhir_registry::practitioner).collect();
    Ok(fhir_json(StatusCode::OK, &page.bundle(&p, entries)))
}

/// The roles of one practitioner, or of everyone with a role at one facility.
async fn roles_of(
    state: &AppState,
    practitioner: Option<Uuid>,
    org: Option<Uuid>,
) -> FhirResult<Vec<PractitionerRole>> {
    let people = match (practitioner, org) {
        (Some(p), _) => vec![p],
        (None, Some(f)) => {
            state.store.list_practitioners(Some(f)).await.map_err(ApiError::from)?.into_iter().map(|p| p.id).collect()
        }
        (None, None) => {
            return Err(FhirError::bad_search(
                IssueType::Required,
                "search PractitionerRole by practitioner or organization (Practitioner/<id>, Organization/<id>)",
            ));
        }
    };
    let mut roles = Vec::new();
    for id in people {
        roles.extend(state.store.list_practitioner_roles(id).await.map_err(ApiError::from)?);
    }
    Ok(roles)
}

async fn search_practitioner_roles(
    State(state): State<AppState>,
    me: Result<CurrentUser, ApiError>,
    headers: HeaderMap,
    query: RawQuery,
) -> FhirResult<Response> {
    me?;
    let p = Params::read(query, &headers, "PractitionerRole")?;
    let practitioner = p.reference("practitioner", "Practitioner")?;
    let org = p.reference("organization", "Organization")?;
    let active = match p.get("active") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(FhirError::bad_search(IssueType::Value, "search parameter \"active\": true or false")),
    };
    let system = fhir_registry::role_system();
    let mut all = roles_of(&state, practitioner, org).await?;
    all.retain(|r| {
        org.is_none_or(|f| f == r.facility_id)
            && active.is_none_or(|a| a == r.active)
            && any_token(&p, "role", &[(&system, &fhir_registry::role_code(r.role))])
    });
    all.sort_by_key(|r| r.id);
    let page = p.page(all)?;
    let entries = page.items.iter().map(fhir_registry::practitioner_role).collect();
    Ok(fhir_json(StatusCode::OK, &page.bundle(&p, entries)))
}
