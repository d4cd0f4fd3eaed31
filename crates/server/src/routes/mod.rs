//! Route table of the JSON API. Every route here is documented in `openapi.rs`
//! (a test checks that each documented route is served).

use axum::Router;
use axum::routing::{get, post};

use crate::AppState;

mod access_log;
mod auth;
pub(crate) mod case_payment;
pub(crate) mod encounters;
pub(crate) mod indicators;
pub(crate) mod patients;
pub(crate) mod referrals;
mod registry;
pub(crate) mod results;
pub(crate) mod settlements;
pub(crate) mod users;

pub use users::validate_user;

pub(crate) fn api_router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/openapi.json", get(|| async { axum::Json(crate::openapi::document()) }))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/me", get(auth::me))
        .route("/api/v1/auth/api-tokens", post(auth::create_api_token))
        .route("/api/v1/alliances", get(registry::list_alliances).post(registry::create_alliance))
        .route("/api/v1/communities", get(registry::list_communities).post(registry::create_community))
        .route("/api/v1/facilities", get(registry::list_facilities).post(registry::create_facility))
        .route("/api/v1/facilities/{id}", get(registry::get_facility))
        .route("/api/v1/practitioners", get(registry::list_practitioners).post(registry::create_practitioner))
        .route("/api/v1/practitioners/{id}", get(registry::get_practitioner))
        .route("/api/v1/practitioners/{id}/roles", post(registry::add_practitioner_role))
        .route("/api/v1/patients", post(patients::register))
        .route("/api/v1/patients/lookup", post(patients::lookup))
        .route("/api/v1/patients/match", post(patients::find_matches))
        .route("/api/v1/patients/search", post(patients::search))
        .route("/api/v1/patients/{id}", get(patients::read_record))
        .route("/api/v1/patients/{id}/break-glass", post(patients::break_glass))
        .route("/api/v1/patients/{id}/merge", post(patients::merge))
        .route("/api/v1/patients/{id}/merges", get(patients::merge_history))
        .route("/api/v1/patients/{id}/enrolments", post(patients::add_enrolment))
        .route("/api/v1/patients/{id}/accumulators", get(settlements::accumulators))
        .route("/api/v1/merges/{id}/undo", post(patients::unmerge))
        .route("/api/v1/encounters", post(encounters::create))
        .route("/api/v1/users", get(users::list).post(users::create))
        .route("/api/v1/access-log", get(access_log::query))
        .route("/api/v1/referrals", get(referrals::http::list).post(referrals::http::create))
        .route("/api/v1/referrals/summary", get(referrals::http::summary))
        .route("/api/v1/referrals/proposals", get(referrals::http::proposals))
        .route("/api/v1/referrals/sweep", post(referrals::http::sweep))
        .route("/api/v1/referrals/{id}", get(referrals::http::read))
        .route("/api/v1/referrals/{id}/transitions", post(referrals::http::transitions))
        .route("/api/v1/follow-ups", get(referrals::http::follow_ups))
        .route("/api/v1/follow-ups/{id}/complete", post(referrals::http::complete_follow_up))
        .route("/api/v1/notifications", get(referrals::http::notifications))
        .route("/api/v1/notifications/seen", post(referrals::http::notifications_seen))
        .route("/api/v1/settlement/catalogue", get(settlements::catalogue))
        .route("/api/v1/settlement/policies", get(settlements::policies))
        .route("/api/v1/settlement/reports/fund", get(settlements::report_fund))
        .route("/api/v1/settlement/reports/outflow", get(settlements::report_outflow))
        .route("/api/v1/settlement/reports/clearing", get(settlements::report_clearing))
        .route("/api/v1/settlements", get(settlements::journal).post(settlements::settle))
        .route("/api/v1/settlements/preview", post(settlements::preview))
        .route("/api/v1/settlements/{id}", get(settlements::read))
        .route("/api/v1/settlements/{id}/reversal", post(settlements::reverse))
        .merge(results::router())
        .merge(case_payment::router())
        .merge(indicators::router())
        .fallback(|| async {
            crate::ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "route.unknown",
                "no such endpoint; see /api/v1/openapi.json",
            )
        })
}

/// Parse a path id, answering 404 with the id named when it is not a UUID.
pub(crate) fn parse_id(raw: &str, what: &str) -> Result<uuid::Uuid, crate::ApiError> {
    uuid::Uuid::parse_str(raw).map_err(|_| crate::ApiError::not_found(&format!("{what} {raw:?}")))
}
