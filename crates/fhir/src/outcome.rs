//! OperationOutcome: what went wrong, as FHIR R4 says it. Every issue carries an
//! issue-type code from <http://hl7.org/fhir/issue-type>, a message (`diagnostics`), and,
//! where one element is at fault, its FHIRPath (`expression`, e.g.
//! `ServiceRequest.performer[0]`). Our stable machine code (`referral.same_facility`), when
//! there is one, travels in `details.coding` with the system [`ERROR_SYSTEM`].

use serde_json::{Value, json};

/// Code system of tiercare's machine error codes (the JSON API's `error.code` and
/// `details[].code`).
pub const ERROR_SYSTEM: &str = "http://tiercare.org/fhir/CodeSystem/error";

/// Issue severity (<http://hl7.org/fhir/issue-severity>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Fatal => "fatal",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Information => "information",
        }
    }
}

/// The issue-type codes we use (a subset of <http://hl7.org/fhir/issue-type>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueType {
    /// Content invalid against the specification or a profile.
    Invalid,
    /// A structural issue: unknown element, wrong JSON type, not a resource.
    Structure,
    /// A required element is missing.
    Required,
    /// An element or header value is invalid.
    Value,
    /// Valid FHIR, but this server does not support it.
    NotSupported,
    /// A code is not in its code system, or the code system is not the one expected.
    CodeInvalid,
    /// An extension we do not know, or a modifier extension.
    Extension,
    /// Authentication needed or failed (401).
    Login,
    /// Authenticated, but not allowed (403).
    Forbidden,
    /// The resource or route does not exist (404).
    NotFound,
    /// Conflicts with the current state (409).
    Conflict,
    /// Content too long (413).
    TooLong,
    /// A business rule of the domain refused the content (422).
    BusinessRule,
    /// Try again later (503).
    Transient,
    /// An unexpected server error (500).
    Exception,
}

impl IssueType {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueType::Invalid => "invalid",
            IssueType::Structure => "structure",
            IssueType::Required => "required",
            IssueType::Value => "value",
            IssueType::NotSupported => "not-supported",
            IssueType::CodeInvalid => "code-invalid",
            IssueType::Extension => "extension",
            IssueType::Login => "login",
            IssueType::Forbidden => "forbidden",
            IssueType::NotFound => "not-found",
            IssueType::Conflict => "conflict",
            IssueType::TooLong => "too-long",
            IssueType::BusinessRule => "business-rule",
            IssueType::Transient => "transient",
            IssueType::Exception => "exception",
        }
    }
}

/// One issue of an OperationOutcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub code: IssueType,
    /// What is wrong, for a person (English).
    pub diagnostics: String,
    /// FHIRPath of the element at fault, e.g. `ServiceRequest.reasonCode[0].coding[0].code`.
    pub expression: Option<String>,
    /// tiercare's machine code (`referral.capability`), when the refusal has one.
    pub detail_code: Option<String>,
}

impl Issue {
    /// An error-severity issue.
    pub fn error(code: IssueType, expression: Option<&str>, diagnostics: impl Into<String>) -> Issue {
        Issue {
            severity: Severity::Error,
            code,
            diagnostics: diagnostics.into(),
            expression: expression.map(str::to_owned),
            detail_code: None,
        }
    }

    /// The same issue with tiercare's machine code attached.
    pub fn with_detail_code(mut self, code: &str) -> Issue {
        self.detail_code = Some(code.to_owned());
        self
    }
}

/// An OperationOutcome resource listing `issues` (at least one issue is required by FHIR;
/// an empty list yields a single `informational` issue).
pub fn operation_outcome(issues: &[Issue]) -> Value {
    let mut list: Vec<Value> = issues
        .iter()
        .map(|i| {
            let mut v = json!({ "severity": i.severity.as_str(), "code": i.code.as_str() });
            if let Some(d) = &i.detail_code {
                v["details"] = json!({ "coding": [{ "system": ERROR_SYSTEM, "code": d }] });
            }
            if !i.diagnostics.is_empty() {
                v["diagnostics"] = json!(i.diagnostics);
            }
            if let Some(e) = &i.expression {
                v["expression"] = json!([e]);
            }
            v
        })
        .collect();
    if list.is_empty() {
        list.push(json!({ "severity": "information", "code": "informational", "diagnostics": "no issues" }));
    }
    json!({ "resourceType": "OperationOutcome", "issue": list })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_lists_each_issue_with_its_expression_and_detail_code() {
        let issues = vec![
            Issue::error(IssueType::Required, Some("ServiceRequest.subject"), "subject is required"),
            Issue::error(IssueType::BusinessRule, None, "no stroke centre").with_detail_code("referral.capability"),
        ];
        let v = operation_outcome(&issues);
        assert_eq!(v["resourceType"], "OperationOutcome");
        assert_eq!(v["issue"][0]["severity"], "error");
        assert_eq!(v["issue"][0]["code"], "required");
        assert_eq!(v["issue"][0]["expression"][0], "ServiceRequest.subject");
        assert_eq!(v["issue"][1]["code"], "business-rule");
        assert_eq!(v["issue"][1]["details"]["coding"][0]["code"], "referral.capability");
        assert!(v["issue"][1].get("expression").is_none());
    }

    #[test]
    fn an_empty_outcome_still_has_one_issue() {
        let v = operation_outcome(&[]);
        assert_eq!(v["issue"].as_array().map(Vec::len), Some(1));
    }
}
