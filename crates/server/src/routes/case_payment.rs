//! Case-based payment: DIP, DRG and the global budget (issue 9): the JSON API routes of this part and their OpenAPI rows.

use axum::Router;

use crate::AppState;
use crate::openapi::RouteDoc;

/// This part's routes (merged into the API router).
pub(crate) fn router() -> Router<AppState> {
    Router::new()
}

/// This part's rows of the OpenAPI table (see [`crate::openapi::all_routes`]).
pub(crate) const OPENAPI: &[RouteDoc] = &[];
