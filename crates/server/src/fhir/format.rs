//! Content negotiation for every `/fhir` route (a middleware): the server speaks JSON only.
//! `_format` (json, application/json, application/fhir+json) overrides `Accept`; another
//! format, or an `Accept` none of whose media ranges is JSON, answers 406. `_pretty=true`
//! indents the answer. What a request body may be is checked where a body is read (415,
//! `super::json_body`).

use axum::body::Body;
use axum::extract::{Query, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tiercare_fhir::outcome::IssueType;

use super::FhirError;

/// Media types (and `_format` values) that mean FHIR JSON; `+` may arrive decoded as a space.
fn is_json(media: &str) -> bool {
    let m = media.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    matches!(
        m.as_str(),
        "json"
            | "application/json"
            | "application/fhir+json"
            | "application/fhir json"
            | "application/json+fhir"
            | "application/json fhir"
    )
}

/// Whether an `Accept` header lets us answer JSON.
fn accepts_json(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let m = range.split(';').next().unwrap_or_default().trim();
        m.is_empty() || m == "*/*" || m.eq_ignore_ascii_case("application/*") || is_json(m)
    })
}

fn not_acceptable(what: String) -> Response {
    FhirError::new(StatusCode::NOT_ACCEPTABLE, IssueType::NotSupported, what).into_response()
}

/// Check `_format`, `Accept` and `_pretty`, run the route, indent the answer if asked.
pub(crate) async fn negotiate(req: Request, next: Next) -> Response {
    let pairs = Query::<Vec<(String, String)>>::try_from_uri(req.uri()).map(|q| q.0).unwrap_or_default();
    let value = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    match value("_format") {
        Some(f) if !is_json(f) => {
            return not_acceptable(format!(
                "_format {f:?}: this server answers JSON only (_format=json or application/fhir+json)"
            ));
        }
        Some(_) => {}
        None => {
            let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or_default();
            if !accepts_json(accept) {
                return not_acceptable("Accept: this server answers application/fhir+json only".to_owned());
            }
        }
    }
    let pretty = match value("_pretty") {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return FhirError::new(StatusCode::BAD_REQUEST, IssueType::Value, "_pretty is true or false")
                .into_response();
        }
    };
    let resp = next.run(req).await;
    if pretty { indent(resp).await } else { resp }
}

/// The same answer with its JSON indented.
async fn indent(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "the answer could not be read").into_response();
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) => serde_json::to_vec_pretty(&v).unwrap_or_else(|_| bytes.to_vec()),
        Err(_) => bytes.to_vec(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_and_ranges() {
        for ok in ["application/fhir+json", "application/fhir json", "json", "application/json; charset=utf-8"] {
            assert!(is_json(ok), "{ok}");
        }
        assert!(!is_json("application/fhir+xml") && !is_json("xml") && !is_json("text/turtle"));
        assert!(accepts_json("text/html, */*;q=0.8") && accepts_json("application/*") && accepts_json(""));
        assert!(!accepts_json("application/fhir+xml") && !accepts_json("text/html, application/xml"));
    }
}
