//! API errors: a status, a stable machine code and a message a person can act on.
//! Body: `{"error": {"code": "...", "message": "...", "details": [{field, code, message}]}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tiercare_domain::{DomainError, FieldError};
use tiercare_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Vec<FieldError>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError { status, code: code.to_owned(), message: message.into(), details: Vec::new() }
    }
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "auth.required", message)
    }
    pub fn forbidden(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }
    /// A bad query parameter: 400 `query.invalid`, the parameter named in the message and in
    /// one field detail with `detail_code`.
    pub fn query(field: &str, detail_code: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut e = Self::bad_request("query.invalid", format!("{field}: {message}"));
        e.details.push(FieldError::new(field, detail_code, message));
        e
    }
    pub fn invalid(details: Vec<FieldError>) -> Self {
        let message = details.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        ApiError { status: StatusCode::UNPROCESSABLE_ENTITY, code: "validation".into(), message, details }
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(details) => ApiError::invalid(details),
            DomainError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Duplicate { what, existing } => {
                let mut msg = format!("{what} already exists");
                if let Some(id) = existing {
                    msg.push_str(&format!(" (patient {id})"));
                }
                ApiError::new(StatusCode::CONFLICT, "duplicate", msg)
            }
            StoreError::NotFound { what } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "reference.unknown", format!("unknown {what}"))
            }
            StoreError::Domain(d) => d.into(),
            StoreError::Conflict(m) | StoreError::TxnNumberUsed(m) | StoreError::EncounterSettled(m) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", m)
            }
            StoreError::Busy => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "the database is busy; try again in a moment")
            }
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "an internal error occurred; it has been logged",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "error": { "code": self.code, "message": self.message, "details": self.details }
        });
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
