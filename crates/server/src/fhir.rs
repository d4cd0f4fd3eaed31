//! FHIR R4 routes under `/fhir` (issue 4: ServiceRequest and Task for referrals).
//! The JSON shapes live in `tiercare-fhir`; this module only speaks HTTP.

use axum::Router;

use crate::AppState;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
}
