//! Bulk import (issue 7): the resources `tiercare generate` and `tiercare export fhir` write,
//! read back into the domain's inputs, so each goes through the same rules as the JSON API
//! (the Patient is [`crate::registration::parse_patient`]). Every problem is an [`Issue`] at
//! its element's FHIRPath; the domain's field names map to FHIRPaths with the `expression` of
//! each parsed resource. The resource's `id` is kept (it must be a tiercare id, a UUID), so
//! references between the files of one export resolve and a rerun recognises what it stored.
//!
//! | resource | domain record | read |
//! |---|---|---|
//! | Organization | facility | `identifier` (facility-code), `name`, `address[0].district` (region; the insurance region is taken to be the same), extensions `facility-tier`, `facility-grade`; `active`, `type` ignored |
//! | Coverage | enrolment | `beneficiary`, `type.coding` (insurance-scheme), `period`, extensions `insured-region`, `filing-status`, `filed-region`; `status`, `payor`, `relationship`, `class` ignored (derived) |
//! | Encounter | encounter | `class` (v3-ActCode AMB/IMP/EMER), `status` (in-progress, finished), `subject`, `serviceProvider`, `participant[0].individual`, `period`, `reasonCode[].coding` (ICD-10), extensions `total-cost` (Money, CNY) and `procedure-code` (ICD-9-CM-3) |
//!
//! Other elements are refused (`not-supported`): nothing is dropped silently.

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use tiercare_domain::encounter::{EncounterClass, NewEncounter};
use tiercare_domain::facility::{Grade, NewFacility, Tier};
use tiercare_domain::patient::{FilingStatus, NewEnrolment, Scheme};

use crate::outcome::{Issue, IssueType};
use crate::read::{CODING_KEYS, CONCEPT_KEYS, Reader};
use crate::{BASE, ICD9CM, ICD10, ext};

const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const PERIOD_KEYS: &[&str] = &["id", "extension", "start", "end"];
const EXTENSION_KEYS: &[&str] = &["url", "valueCode", "valueMoney", "valueCoding", "valueString"];
const MONEY_KEYS: &[&str] = &["value", "currency"];

/// The resource's `id` as a tiercare id; `kind` names the resource in the FHIRPath.
pub fn resource_id(v: &Value, kind: &str) -> Result<Uuid, Issue> {
    let path = format!("{kind}.id");
    match v.get("id").map(|i| i.as_str().map(Uuid::parse_str)) {
        None => {
            Err(Issue::error(IssueType::Required, Some(&path), "a bulk import keeps the resource's id: it is required"))
        }
        Some(Some(Ok(id))) => Ok(id),
        _ => Err(Issue::error(IssueType::Value, Some(&path), "the id is not a tiercare id (a UUID)")),
    }
}

/// The resource type of `v`, when it is an object with one.
fn expect_type<'a>(v: &'a Value, kind: &str) -> Result<&'a Map<String, Value>, Vec<Issue>> {
    let Some(o) = v.as_object() else {
        return Err(vec![Issue::error(IssueType::Structure, None, "not a JSON object (a FHIR resource)")]);
    };
    match o.get("resourceType").and_then(Value::as_str) {
        Some(k) if k == kind => Ok(o),
        Some(other) => Err(vec![Issue::error(IssueType::Invalid, None, format!("expected a {kind}, got a {other}"))]),
        None => Err(vec![Issue::error(IssueType::Structure, None, "resourceType is missing")]),
    }
}

impl Reader {
    /// Elements outside `used` and `ignored` are refused, each at its path.
    fn only(&mut self, o: &Map<String, Value>, kind: &str, used: &[&str], ignored: &[&str]) {
        for k in o.keys().filter(|k| !used.contains(&k.as_str()) && !ignored.contains(&k.as_str())) {
            self.add(IssueType::NotSupported, &format!("{kind}.{k}"), format!("{k} is not kept by this server"));
        }
    }

    /// The extensions of a resource, by our name (`facility-tier`), with their index; an
    /// extension that is not one of `known` is refused.
    fn extensions<'a>(
        &mut self,
        o: &'a Map<String, Value>,
        kind: &str,
        known: &[&'static str],
    ) -> Vec<(usize, &'static str, &'a Map<String, Value>)> {
        let mut out = Vec::new();
        let Some(list) = o.get("extension") else { return out };
        let path = format!("{kind}.extension");
        for (i, e) in self.array(list, &path).unwrap_or_default().iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(eo) = self.object(e, &p, EXTENSION_KEYS) else { continue };
            let url = eo.get("url").and_then(Value::as_str).unwrap_or_default();
            match known.iter().find(|n| ext(n) == url) {
                Some(n) => out.push((i, *n, eo)),
                None => self.add(IssueType::Extension, &format!("{p}.url"), "an extension this server does not know"),
            }
        }
        out
    }

    /// The code of the first coding of `system` in a CodeableConcept.
    fn concept_code<'a>(&mut self, v: &'a Value, path: &str, system: &str) -> Option<(usize, &'a str)> {
        let o = self.object(v, path, CONCEPT_KEYS)?;
        let codings = self.array(o.get("coding")?, &format!("{path}.coding"))?;
        for (j, c) in codings.iter().enumerate() {
            let cp = format!("{path}.coding[{j}]");
            let Some(co) = self.object(c, &cp, CODING_KEYS) else { continue };
            if co.get("system").and_then(Value::as_str) == Some(system) {
                return co.get("code").and_then(|c| self.string(c, &format!("{cp}.code"))).map(|c| (j, c));
            }
        }
        self.add(IssueType::CodeInvalid, &format!("{path}.coding"), format!("a coding of {system} is required"));
        None
    }

    fn date(&mut self, v: &Value, path: &str) -> Option<Date> {
        let s = self.string(v, path)?;
        match Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")) {
            Ok(d) => Some(d),
            Err(_) => {
                self.add(IssueType::Invalid, path, "not a date: YYYY-MM-DD");
                None
            }
        }
    }

    fn instant(&mut self, v: &Value, path: &str) -> Option<OffsetDateTime> {
        let s = self.string(v, path)?;
        match OffsetDateTime::parse(s, &Rfc3339) {
            Ok(t) => Some(t),
            Err(_) => {
                self.add(
                    IssueType::Invalid,
                    path,
                    "not a date and time with its time zone (2025-03-01T09:00:00+08:00)",
                );
                None
            }
        }
    }

    fn value_code<'a>(&mut self, e: &'a Map<String, Value>, path: &str) -> Option<&'a str> {
        match e.get("valueCode") {
            Some(c) => self.string(c, &format!("{path}.valueCode")),
            None => {
                self.add(IssueType::Required, path, "the extension takes a valueCode");
                None
            }
        }
    }
}

fn money_message(e: crate::claim::MoneyError) -> &'static str {
    use crate::claim::MoneyError;
    match e {
        MoneyError::NotANumber => "the amount is not a JSON number",
        MoneyError::TooPrecise => "an amount in CNY has at most two decimals (whole fen)",
        MoneyError::Negative => "an amount cannot be negative",
        MoneyError::TooLarge => "the amount is too large",
    }
}

fn done<T>(rd: Reader, value: Option<T>) -> Result<T, Vec<Issue>> {
    if !rd.issues.is_empty() {
        return Err(rd.issues);
    }
    value.ok_or_else(|| vec![Issue::error(IssueType::Required, None, "a required element is missing")])
}

/// An Organization read as a facility registration.
#[derive(Debug, Clone)]
pub struct ParsedOrganization {
    pub id: Uuid,
    pub facility: NewFacility,
}

impl ParsedOrganization {
    /// The FHIRPath of a facility field (`code`, `name`, `region_code`, …).
    pub fn expression(field: &str) -> String {
        match field {
            "code" => "Organization.identifier[0].value",
            "name" => "Organization.name",
            "region_code" | "insurance_region" => "Organization.address[0].district",
            _ => "Organization",
        }
        .to_owned()
    }
}

/// Read an Organization (as [`crate::organization`] writes it).
pub fn parse_organization(v: &Value) -> Result<ParsedOrganization, Vec<Issue>> {
    let o = expect_type(v, "Organization")?;
    let id = resource_id(v, "Organization").map_err(|i| vec![i])?;
    let mut rd = Reader::default();
    rd.only(
        o,
        "Organization",
        &["resourceType", "extension", "identifier", "name", "address", "active"],
        &["id", "meta", "text", "type"],
    );
    let (mut tier, mut grade) = (None, Some(Grade::Ungraded));
    for (i, name, e) in rd.extensions(o, "Organization", &["facility-tier", "facility-grade"]) {
        let path = format!("Organization.extension[{i}]");
        let Some(code) = rd.value_code(e, &path) else { continue };
        if name == "facility-tier" {
            tier = Tier::parse(code);
            if tier.is_none() {
                rd.add(
                    IssueType::CodeInvalid,
                    &format!("{path}.valueCode"),
                    "a tier: village, township, county, city, provincial or national",
                );
            }
        } else {
            grade = Grade::parse(code);
            if grade.is_none() {
                rd.add(
                    IssueType::CodeInvalid,
                    &format!("{path}.valueCode"),
                    "a grade: ungraded, level1, level2, level2a, level3 or level3a",
                );
            }
        }
    }
    if tier.is_none() && !rd.issues.iter().any(|i| i.code == IssueType::CodeInvalid) {
        rd.add(
            IssueType::Required,
            "Organization.extension",
            format!("the facility tier ({}) is required", ext("facility-tier")),
        );
    }
    let code_system = format!("{BASE}/sid/facility-code");
    let mut code = None;
    if let Some(list) = o.get("identifier").and_then(|l| rd.array(l, "Organization.identifier")) {
        for (i, idf) in list.iter().enumerate() {
            let path = format!("Organization.identifier[{i}]");
            let Some(io) = rd.object(idf, &path, &["system", "value", "use"]) else { continue };
            if io.get("system").and_then(Value::as_str) == Some(code_system.as_str()) {
                code = io.get("value").and_then(|v| rd.string(v, &format!("{path}.value"))).map(str::to_owned);
            } else {
                rd.add(
                    IssueType::NotSupported,
                    &format!("{path}.system"),
                    format!("facilities are identified by {code_system}"),
                );
            }
        }
    }
    if code.is_none() {
        rd.add(
            IssueType::Required,
            "Organization.identifier",
            format!("the facility code ({code_system}) is required"),
        );
    }
    let name = match o.get("name") {
        Some(n) => rd.string(n, "Organization.name").map(str::to_owned),
        None => {
            rd.add(IssueType::Required, "Organization.name", "the name is required");
            None
        }
    };
    let mut region = None;
    if let Some(list) = o.get("address").and_then(|a| rd.array(a, "Organization.address"))
        && let Some(first) = list.first()
        && let Some(ao) = rd.object(first, "Organization.address[0]", &["district", "country", "text"])
    {
        region = ao.get("district").and_then(|d| rd.string(d, "Organization.address[0].district")).map(str::to_owned);
    }
    if region.is_none() {
        rd.add(
            IssueType::Required,
            "Organization.address[0].district",
            "the facility's county (GB/T 2260) is required",
        );
    }
    if let Some(a) = o.get("active")
        && a != &Value::Bool(true)
    {
        rd.add(IssueType::NotSupported, "Organization.active", "registered facilities are active (true)");
    }
    let facility = match (code, name, tier, grade, region) {
        (Some(code), Some(name), Some(tier), Some(grade), Some(region)) => Some(NewFacility {
            code,
            name,
            tier,
            grade,
            insurance_region: region.clone(),
            region_code: region,
            community_id: None,
            capabilities: Default::default(),
            location: None,
            referral_policy: Default::default(),
        }),
        _ => None,
    };
    done(rd, facility).map(|facility| ParsedOrganization { id, facility })
}

/// A Coverage read as an enrolment.
#[derive(Debug, Clone)]
pub struct ParsedCoverage {
    pub id: Uuid,
    pub patient_id: Uuid,
    pub enrolment: NewEnrolment,
    /// Index in `Coverage.extension` of each extension read, by name.
    at: Vec<(&'static str, usize)>,
}

impl ParsedCoverage {
    /// The FHIRPath of an enrolment field.
    pub fn expression(&self, field: &str) -> String {
        let ext_at = |name: &str| {
            self.at.iter().find(|(n, _)| *n == name).map(|(_, i)| format!("Coverage.extension[{i}].valueCode"))
        };
        match field {
            "insured_region" => ext_at("insured-region"),
            "filed_region" => ext_at("filed-region").or_else(|| ext_at("filing-status")),
            "valid_from" => Some("Coverage.period.start".to_owned()),
            "valid_to" => Some("Coverage.period.end".to_owned()),
            "scheme" => Some("Coverage.type".to_owned()),
            _ => None,
        }
        .unwrap_or_else(|| "Coverage".to_owned())
    }
}

/// Read a Coverage (as [`crate::coverage`] or [`crate::coverage::coverage`] writes it).
pub fn parse_coverage(v: &Value) -> Result<ParsedCoverage, Vec<Issue>> {
    let o = expect_type(v, "Coverage")?;
    let id = resource_id(v, "Coverage").map_err(|i| vec![i])?;
    let mut rd = Reader::default();
    rd.only(
        o,
        "Coverage",
        &["resourceType", "extension", "status", "type", "beneficiary", "period"],
        &["id", "meta", "text", "payor", "relationship", "class"],
    );
    let mut at = Vec::new();
    let (mut insured, mut filing, mut filed) = (None, FilingStatus::NotFiled, None);
    for (i, name, e) in rd.extensions(o, "Coverage", &["insured-region", "filing-status", "filed-region"]) {
        let path = format!("Coverage.extension[{i}]");
        let Some(code) = rd.value_code(e, &path) else { continue };
        match name {
            "insured-region" => {
                insured = Some(code.to_owned());
                at.push(("insured-region", i));
            }
            "filing-status" => {
                at.push(("filing-status", i));
                match FilingStatus::parse(code) {
                    Some(f) => filing = f,
                    None => rd.add(
                        IssueType::CodeInvalid,
                        &format!("{path}.valueCode"),
                        "not_filed, long_term or temporary",
                    ),
                }
            }
            _ => {
                filed = Some(code.to_owned());
                at.push(("filed-region", i));
            }
        }
    }
    if insured.is_none() {
        rd.add(
            IssueType::Required,
            "Coverage.extension",
            format!("the insured region ({}) is required", ext("insured-region")),
        );
    }
    if let Some(s) = o.get("status") {
        rd.code(s, "Coverage.status", &crate::coverage::COVERAGE_STATUSES[..2]);
    }
    let scheme = match o.get("type") {
        Some(t) => rd.concept_code(t, "Coverage.type", crate::coverage::SCHEME_SYSTEM).and_then(|(j, c)| {
            let s = Scheme::parse(c);
            if s.is_none() {
                rd.add(IssueType::CodeInvalid, &format!("Coverage.type.coding[{j}].code"), "employee or resident");
            }
            s
        }),
        None => {
            rd.add(IssueType::Required, "Coverage.type", "the insurance scheme is required");
            None
        }
    };
    let patient = match o.get("beneficiary") {
        Some(b) => rd.reference(b, "Coverage.beneficiary", "Patient"),
        None => {
            rd.add(IssueType::Required, "Coverage.beneficiary", "the beneficiary is required");
            None
        }
    };
    let (mut from, mut to) = (None, None);
    match o.get("period").and_then(|p| rd.object(p, "Coverage.period", PERIOD_KEYS)) {
        Some(p) => {
            from = p.get("start").and_then(|s| rd.date(s, "Coverage.period.start"));
            to = p.get("end").and_then(|s| rd.date(s, "Coverage.period.end"));
            if !p.contains_key("start") {
                rd.add(IssueType::Required, "Coverage.period.start", "the start of the enrolment is required");
            }
        }
        None => rd.add(IssueType::Required, "Coverage.period", "the period of the enrolment is required"),
    }
    let parsed = match (patient, scheme, insured, from) {
        (Some(patient_id), Some(scheme), Some(insured_region), Some(valid_from)) => Some(ParsedCoverage {
            id,
            patient_id,
            enrolment: NewEnrolment {
                scheme,
                insured_region,
                filing_status: filing,
                filed_region: filed,
                valid_from,
                valid_to: to,
            },
            at,
        }),
        _ => None,
    };
    done(rd, parsed)
}

/// An Encounter read as an encounter input.
#[derive(Debug, Clone)]
pub struct ParsedEncounter {
    pub id: Uuid,
    pub encounter: NewEncounter,
    /// `Encounter.reasonCode[i]` of each diagnosis.
    diagnoses_at: Vec<usize>,
    /// `Encounter.extension[i]` of each procedure.
    procedures_at: Vec<usize>,
    cost_at: Option<usize>,
}

impl ParsedEncounter {
    /// The FHIRPath of an encounter field (`diagnoses[1]`, `started_at`, `total_cost_fen`).
    pub fn expression(&self, field: &str) -> String {
        let indexed = |prefix: &str, at: &[usize]| -> Option<usize> {
            let k: usize = field.strip_prefix(prefix)?.strip_suffix(']')?.parse().ok()?;
            at.get(k).copied()
        };
        if let Some(i) = indexed("diagnoses[", &self.diagnoses_at) {
            return format!("Encounter.reasonCode[{i}]");
        }
        if let Some(i) = indexed("procedures[", &self.procedures_at) {
            return format!("Encounter.extension[{i}].valueCoding");
        }
        match field {
            "diagnoses" => "Encounter.reasonCode".to_owned(),
            "started_at" => "Encounter.period.start".to_owned(),
            "ended_at" => "Encounter.period.end".to_owned(),
            "total_cost_fen" => match self.cost_at {
                Some(i) => format!("Encounter.extension[{i}].valueMoney"),
                None => "Encounter.extension".to_owned(),
            },
            "department" => "Encounter.serviceType".to_owned(),
            _ => "Encounter".to_owned(),
        }
    }
}

/// Read an Encounter (as [`crate::encounter`] writes it).
pub fn parse_encounter(v: &Value) -> Result<ParsedEncounter, Vec<Issue>> {
    let o = expect_type(v, "Encounter")?;
    let id = resource_id(v, "Encounter").map_err(|i| vec![i])?;
    let mut rd = Reader::default();
    rd.only(
        o,
        "Encounter",
        &[
            "resourceType",
            "extension",
            "status",
            "class",
            "subject",
            "period",
            "reasonCode",
            "serviceProvider",
            "participant",
        ],
        &["id", "meta", "text"],
    );
    let (mut cost, mut cost_at, mut procedures, mut procedures_at) = (None, None, Vec::new(), Vec::new());
    for (i, name, e) in rd.extensions(o, "Encounter", &["total-cost", "procedure-code"]) {
        let path = format!("Encounter.extension[{i}]");
        if name == "total-cost" {
            cost_at = Some(i);
            let mp = format!("{path}.valueMoney");
            let Some(m) = e.get("valueMoney").and_then(|m| rd.object(m, &mp, MONEY_KEYS)) else {
                rd.add(IssueType::Required, &mp, "the total cost is a Money in CNY");
                continue;
            };
            if m.get("currency").and_then(Value::as_str) != Some("CNY") {
                rd.add(IssueType::Value, &format!("{mp}.currency"), "amounts are in CNY (yuan)");
            }
            match m.get("value").map(crate::claim::fen_from_yuan) {
                Some(Ok(fen)) => cost = Some(fen),
                Some(Err(err)) => rd.add(IssueType::Value, &format!("{mp}.value"), money_message(err)),
                None => rd.add(IssueType::Required, &format!("{mp}.value"), "the amount is required"),
            }
        } else {
            let cp = format!("{path}.valueCoding");
            let Some(c) = e.get("valueCoding").and_then(|c| rd.object(c, &cp, CODING_KEYS)) else {
                rd.add(IssueType::Required, &cp, "a procedure is a valueCoding of ICD-9-CM-3");
                continue;
            };
            if c.get("system").and_then(Value::as_str) != Some(ICD9CM) {
                rd.add(IssueType::CodeInvalid, &format!("{cp}.system"), format!("procedures are coded in {ICD9CM}"));
            }
            if let Some(code) = c.get("code").and_then(|c| rd.string(c, &format!("{cp}.code"))) {
                procedures.push(code.to_owned());
                procedures_at.push(i);
            }
        }
    }
    if cost_at.is_none() {
        rd.add(
            IssueType::Required,
            "Encounter.extension",
            format!("the total cost ({}) is required", ext("total-cost")),
        );
    }
    let status = match o.get("status") {
        Some(s) => rd.code(
            s,
            "Encounter.status",
            &[
                "planned",
                "arrived",
                "triaged",
                "in-progress",
                "onleave",
                "finished",
                "cancelled",
                "entered-in-error",
                "unknown",
            ],
        ),
        None => {
            rd.add(IssueType::Required, "Encounter.status", "the status is required");
            None
        }
    };
    if let Some(s) = status
        && !["in-progress", "finished"].contains(&s)
    {
        rd.add(IssueType::NotSupported, "Encounter.status", "an encounter recorded here is in-progress or finished");
    }
    let class = match o.get("class").and_then(|c| rd.object(c, "Encounter.class", CODING_KEYS)) {
        Some(c) => {
            if c.get("system").and_then(Value::as_str) != Some(ACT_CODE) {
                rd.add(IssueType::CodeInvalid, "Encounter.class.system", format!("the class is coded in {ACT_CODE}"));
            }
            match c.get("code").and_then(Value::as_str) {
                Some("AMB") => Some(EncounterClass::Outpatient),
                Some("IMP") => Some(EncounterClass::Inpatient),
                Some("EMER") => Some(EncounterClass::Emergency),
                _ => {
                    rd.add(IssueType::CodeInvalid, "Encounter.class.code", "AMB, IMP or EMER");
                    None
                }
            }
        }
        None => {
            if !o.contains_key("class") {
                rd.add(IssueType::Required, "Encounter.class", "the class is required");
            }
            None
        }
    };
    let patient = match o.get("subject") {
        Some(s) => rd.reference(s, "Encounter.subject", "Patient"),
        None => {
            rd.add(IssueType::Required, "Encounter.subject", "the patient is required");
            None
        }
    };
    let facility = match o.get("serviceProvider") {
        Some(s) => rd.reference(s, "Encounter.serviceProvider", "Organization"),
        None => {
            rd.add(IssueType::Required, "Encounter.serviceProvider", "the facility is required");
            None
        }
    };
    let mut practitioner = None;
    if let Some(list) = o.get("participant").and_then(|p| rd.array(p, "Encounter.participant")) {
        if list.len() > 1 {
            rd.add(IssueType::NotSupported, "Encounter.participant[1]", "one practitioner is kept");
        }
        if let Some(first) = list.first()
            && let Some(po) = rd.object(first, "Encounter.participant[0]", &["individual"])
        {
            practitioner = po
                .get("individual")
                .and_then(|i| rd.reference(i, "Encounter.participant[0].individual", "Practitioner"));
        }
    }
    let (mut start, mut end) = (None, None);
    match o.get("period").and_then(|p| rd.object(p, "Encounter.period", PERIOD_KEYS)) {
        Some(p) => {
            start = p.get("start").and_then(|s| rd.instant(s, "Encounter.period.start"));
            end = p.get("end").and_then(|s| rd.instant(s, "Encounter.period.end"));
            if !p.contains_key("start") {
                rd.add(IssueType::Required, "Encounter.period.start", "the start is required");
            }
        }
        None => rd.add(IssueType::Required, "Encounter.period", "the period is required"),
    }
    if status == Some("finished") && end.is_none() && start.is_some() {
        rd.add(IssueType::Required, "Encounter.period.end", "a finished encounter has an end");
    }
    if status == Some("in-progress") && end.is_some() {
        rd.add(IssueType::Invalid, "Encounter.status", "an encounter with an end is finished");
    }
    let (mut diagnoses, mut diagnoses_at) = (Vec::new(), Vec::new());
    if let Some(list) = o.get("reasonCode").and_then(|r| rd.array(r, "Encounter.reasonCode")) {
        for (i, c) in list.iter().enumerate() {
            if let Some((_, code)) = rd.concept_code(c, &format!("Encounter.reasonCode[{i}]"), ICD10) {
                diagnoses.push(code.to_owned());
                diagnoses_at.push(i);
            }
        }
    }
    let parsed = match (patient, facility, class, start, cost) {
        (Some(patient_id), Some(facility_id), Some(class), Some(started_at), Some(total_cost_fen)) => {
            Some(ParsedEncounter {
                id,
                encounter: NewEncounter {
                    patient_id,
                    facility_id,
                    department: None,
                    practitioner_id: practitioner,
                    class,
                    started_at,
                    ended_at: end,
                    diagnoses,
                    procedures,
                    total_cost_fen,
                },
                diagnoses_at,
                procedures_at,
                cost_at,
            })
        }
        _ => None,
    };
    done(rd, parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use time::macros::{date, datetime};

    fn encounter_json() -> Value {
        json!({
            "resourceType": "Encounter",
            "id": "0190c3a5-0000-7000-8000-000000000001",
            "extension": [
                { "url": "http://tiercare.org/fhir/StructureDefinition/total-cost", "valueMoney": { "value": 1234.5, "currency": "CNY" } },
                { "url": "http://tiercare.org/fhir/StructureDefinition/procedure-code", "valueCoding": { "system": "http://hl7.org/fhir/sid/icd-9-cm", "code": "89.5200" } },
            ],
            "status": "finished",
            "class": { "system": ACT_CODE, "code": "IMP", "display": "inpatient encounter" },
            "subject": { "reference": "Patient/0190c3a5-0000-7000-8000-000000000002" },
            "period": { "start": "2025-03-01T09:00:00+08:00", "end": "2025-03-05T10:00:00+08:00" },
            "reasonCode": [{ "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10", "code": "I10.x00" }] }],
            "serviceProvider": { "reference": "Organization/0190c3a5-0000-7000-8000-000000000003" },
        })
    }

    #[test]
    fn an_encounter_reads_field_by_field() {
        let p = parse_encounter(&encounter_json()).expect("reads");
        let e = &p.encounter;
        // 1234.5 yuan is 123,450 fen; 09:00 in China (+08) is 01:00 UTC
        assert_eq!(e.total_cost_fen, 123_450);
        assert_eq!(e.class, EncounterClass::Inpatient);
        assert_eq!(e.started_at, datetime!(2025-03-01 01:00 UTC));
        assert_eq!(e.ended_at, Some(datetime!(2025-03-05 02:00 UTC)));
        assert_eq!(
            (e.diagnoses.as_slice(), e.procedures.as_slice()),
            (&["I10.x00".to_owned()][..], &["89.5200".to_owned()][..])
        );
        assert_eq!(p.expression("procedures[0]"), "Encounter.extension[1].valueCoding");
        assert_eq!(p.expression("diagnoses[0]"), "Encounter.reasonCode[0]");
        assert_eq!(p.expression("total_cost_fen"), "Encounter.extension[0].valueMoney");
    }

    #[test]
    fn each_encounter_problem_is_named_at_its_element() {
        type Change = Box<dyn Fn(&mut Value)>;
        let cases: Vec<(Change, IssueType, &str)> = vec![
            (Box::new(|v| v["id"] = json!("enc-1")), IssueType::Value, "Encounter.id"),
            (Box::new(|v| v["class"]["code"] = json!("HH")), IssueType::CodeInvalid, "Encounter.class.code"),
            (Box::new(|v| v["status"] = json!("planned")), IssueType::NotSupported, "Encounter.status"),
            (Box::new(|v| v["period"]["start"] = json!("2025-03-01")), IssueType::Invalid, "Encounter.period.start"),
            (
                Box::new(|v| v["extension"][0]["valueMoney"]["value"] = json!(1.005)),
                IssueType::Value,
                "Encounter.extension[0].valueMoney.value",
            ),
            (
                Box::new(|v| v["extension"][1]["url"] = json!("http://example.org/x")),
                IssueType::Extension,
                "Encounter.extension[1].url",
            ),
            (Box::new(|v| v["subject"] = json!({ "reference": "Group/1" })), IssueType::Value, "Encounter.subject"),
            (Box::new(|v| v["hospitalization"] = json!({})), IssueType::NotSupported, "Encounter.hospitalization"),
            (
                Box::new(|v| v["reasonCode"][0]["coding"][0]["system"] = json!("http://snomed.info/sct")),
                IssueType::CodeInvalid,
                "Encounter.reasonCode[0].coding",
            ),
        ];
        for (change, code, path) in cases {
            let mut v = encounter_json();
            change(&mut v);
            let issues = parse_encounter(&v).expect_err(path);
            assert!(
                issues.iter().any(|i| i.code == code && i.expression.as_deref() == Some(path)),
                "{path}: {issues:#?}"
            );
        }
    }

    #[test]
    fn what_the_writers_write_reads_back() {
        use tiercare_domain::facility::{Capabilities, Facility};
        use tiercare_domain::patient::Enrolment;
        let e = Enrolment {
            id: Uuid::now_v7(),
            patient_id: Uuid::now_v7(),
            scheme: Scheme::Employee,
            insured_region: "511621".into(),
            filing_status: FilingStatus::Temporary,
            filed_region: Some("510107".into()),
            valid_from: date!(2025 - 01 - 01),
            valid_to: Some(date!(2025 - 12 - 31)),
        };
        for v in [crate::coverage(&e), crate::coverage::coverage(&e, date!(2025 - 06 - 01))] {
            let c = parse_coverage(&v).expect("our Coverage reads");
            assert_eq!((c.id, c.patient_id), (e.id, e.patient_id));
            assert_eq!(
                (c.enrolment.scheme, c.enrolment.valid_from, c.enrolment.valid_to),
                (e.scheme, e.valid_from, e.valid_to)
            );
        }
        // the issue-6 writer carries the filing; the county export's does not
        let c = parse_coverage(&crate::coverage::coverage(&e, date!(2025 - 06 - 01))).expect("reads");
        assert_eq!(
            (c.enrolment.filing_status, c.enrolment.filed_region.as_deref()),
            (FilingStatus::Temporary, Some("510107"))
        );
        let f = NewFacility {
            code: "H51162100001".into(),
            name: "岳池县人民医院".into(),
            tier: Tier::County,
            grade: Grade::Level2A,
            region_code: "511621".into(),
            insurance_region: "511600".into(),
            community_id: None,
            capabilities: Capabilities::default(),
            location: None,
            referral_policy: Default::default(),
        };
        let f: Facility = f.validate(Uuid::now_v7()).expect("valid facility");
        let o = parse_organization(&crate::organization(&f)).expect("our Organization reads");
        assert_eq!(o.id, f.id);
        assert_eq!((o.facility.code.as_str(), o.facility.tier, o.facility.grade), (f.code.as_str(), f.tier, f.grade));
        assert_eq!(o.facility.region_code, "511621");
        let issues =
            parse_organization(&json!({ "resourceType": "Organization", "id": f.id.to_string(), "name": "x" }))
                .expect_err("no code, tier, region");
        let paths: Vec<_> = issues.iter().filter_map(|i| i.expression.clone()).collect();
        assert!(
            paths.contains(&"Organization.identifier".to_owned())
                && paths.contains(&"Organization.extension".to_owned()),
            "{paths:?}"
        );
    }
}
