//! The strict JSON reader that the `parse_*` functions share: it walks a resource the
//! client sent and collects every problem as an OperationOutcome issue naming its element
//! (FHIRPath), instead of stopping at the first. Resource-specific readings (a Claim's
//! Money, a ServiceRequest's CodeableConcept, …) are further `impl Reader` blocks in
//! [`crate::claim`] and [`crate::referral`].

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::outcome::{Issue, IssueType};

pub(crate) const REFERENCE_KEYS: &[&str] = &["id", "extension", "reference", "type", "identifier", "display"];
pub(crate) const CONCEPT_KEYS: &[&str] = &["id", "extension", "coding", "text"];
pub(crate) const CODING_KEYS: &[&str] = &["id", "extension", "system", "version", "code", "display", "userSelected"];

/// Collects issues while reading a resource.
#[derive(Default)]
pub(crate) struct Reader {
    pub(crate) issues: Vec<Issue>,
}

impl Reader {
    pub(crate) fn add(&mut self, code: IssueType, path: &str, msg: impl Into<String>) {
        self.issues.push(Issue::error(code, Some(path), msg));
    }

    /// An object whose keys are all in `allowed`.
    pub(crate) fn object<'a>(&mut self, v: &'a Value, path: &str, allowed: &[&str]) -> Option<&'a Map<String, Value>> {
        let Some(o) = v.as_object() else {
            self.add(IssueType::Structure, path, "expected a JSON object");
            return None;
        };
        for k in o.keys().filter(|k| !allowed.contains(&k.as_str())) {
            self.add(IssueType::Structure, &format!("{path}.{k}"), format!("unknown element {k:?}"));
        }
        Some(o)
    }

    pub(crate) fn array<'a>(&mut self, v: &'a Value, path: &str) -> Option<&'a [Value]> {
        match v.as_array() {
            Some(a) => Some(a),
            None => {
                self.add(IssueType::Structure, path, "expected a JSON array");
                None
            }
        }
    }

    pub(crate) fn string<'a>(&mut self, v: &'a Value, path: &str) -> Option<&'a str> {
        match v.as_str() {
            Some(s) => Some(s),
            None => {
                self.add(IssueType::Structure, path, "expected a string");
                None
            }
        }
    }

    /// A code from `allowed`.
    pub(crate) fn code<'a>(&mut self, v: &'a Value, path: &str, allowed: &[&str]) -> Option<&'a str> {
        let s = self.string(v, path)?;
        if allowed.contains(&s) {
            Some(s)
        } else {
            self.add(IssueType::CodeInvalid, path, format!("{s:?} is not one of {}", allowed.join(", ")));
            None
        }
    }

    /// A Reference to `kind/{uuid}`.
    pub(crate) fn reference(&mut self, v: &Value, path: &str, kind: &str) -> Option<Uuid> {
        let o = self.object(v, path, REFERENCE_KEYS)?;
        if o.contains_key("identifier") {
            self.add(
                IssueType::NotSupported,
                &format!("{path}.identifier"),
                format!("refer by id: {kind}/<id> in reference"),
            );
            return None;
        }
        if let Some(t) = o.get("type") {
            let t = self.string(t, &format!("{path}.type"))?;
            if t != kind {
                self.add(IssueType::Value, &format!("{path}.type"), format!("expected a reference to a {kind}"));
                return None;
            }
        }
        let Some(raw) = o.get("reference") else {
            self.add(IssueType::Required, path, format!("expected reference: {kind}/<id>"));
            return None;
        };
        let raw = self.string(raw, &format!("{path}.reference"))?;
        match raw.split_once('/') {
            Some((k, id)) if k == kind => match Uuid::parse_str(id) {
                Ok(u) => Some(u),
                Err(_) => {
                    // the value is not echoed: it might be an identity number
                    self.add(IssueType::Value, path, format!("the {kind} id is not a tiercare id (a UUID)"));
                    None
                }
            },
            _ => {
                self.add(IssueType::Value, path, format!("expected a reference of the form {kind}/<id>"));
                None
            }
        }
    }
}
