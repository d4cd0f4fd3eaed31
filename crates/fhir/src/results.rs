//! Lab and imaging results (issue 5) as FHIR R4: DiagnosticReport and Observation, read from
//! what a hospital's lab system sends (one resource, or a transaction Bundle) and written
//! from what the store keeps (a domain [`Report`] with its entries). Pure: no HTTP, no store.
//!
//! Mapping (tiercare ⇄ FHIR):
//! - a lab report is a DiagnosticReport (`category` v2-0074 `LAB`) whose `result` lists its
//!   Observations; each observation (an entry) is an Observation (`category`
//!   `laboratory`); an imaging or electrophysiology report is a DiagnosticReport
//!   (`RAD`/`EC`) with the exam as its `code`, the conclusion as `conclusion`, the findings in
//!   the extension [`FINDINGS_EXTENSION`] (valueString) and the modality and body site in a
//!   contained ImagingStudy referenced by `imagingStudy` (`modality`, `series[0].modality`,
//!   `series[0].bodySite.display`);
//! - `subject` the Patient; `effectiveDateTime` the specimen (exam) time; `issued` the report
//!   time (both given in UTC); `performer[0]` the performing facility (Organization),
//!   `performer[1]` the lab when it is not the facility itself;
//! - Observation `code`: the coding the lab sent that names a catalogue item (LOINC
//!   `http://loinc.org`, or the local code with [`ITEM_SYSTEM`]), system and code only, then
//!   the catalogue's own coding (`ITEM_SYSTEM`, local code, name) when it differs;
//!   `valueQuantity` (`value`, `unit`) for numbers, `valueString` otherwise; `interpretation`
//!   (v3-ObservationInterpretation N, L, H, A, AA for critical; HH and LL are read as
//!   critical); `referenceRange[0]` (`low`, `high` in the value's unit, `text`);
//! - the HR mark ([`MARK_EXTENSION`], on the DiagnosticReport and on each of its
//!   Observations): a complex extension `scope` (valueCode community, city, province,
//!   agreement) and one of `community` (valueId), `region` (valueCode, GB/T 2260 city),
//!   `province` (valueCode, 2 digits), `agreement` (valueString, the agreement's name; its
//!   provinces come from the region's configuration).
//!
//! Read and dropped (documented, not kept): `id` (the server assigns one), `meta`,
//! `implicitRules`, `language`, `text`, `identifier`, `basedOn`, `encounter`, `note`,
//! `method`, `specimen`, `device`, `resultsInterpreter`, `conclusionCode`, a lab
//! DiagnosticReport's `code` (served as LOINC 11502-2 "Laboratory report"), the
//! Observation's `category` (served from the catalogue), codings other than the one naming
//! the item, `display`s and `text` of codes and references, a quantity's `system`/`code`
//! (UCUM), the written precision of a reference range's bounds (kept as numbers: `5.0` is
//! served as `5`; the value itself is kept as written), and the status `amended`/`corrected`
//! (stored and served as `final`). Added when
//! absent: `category`, the Observation's `effectiveDateTime`/`issued`/`performer` (its
//! report's), `interpretation` (computed from the range) and `referenceRange` (the
//! catalogue's adult range) when the lab sends none. Refused: other statuses, other value
//! types, `component`, `hasMember`, `derivedFrom`, `effectivePeriod`, `presentedForm`,
//! `media`, `modifierExtension`, unknown extensions, a quantity `comparator`.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use tiercare_domain::recognition::{Catalogue, ItemKind, Scope};
use tiercare_domain::results::{
    AbnormalFlag, Category, Entry, ImagingReport, Modality, NewObservation, NewReport, Report,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::outcome::{Issue, IssueType};
use crate::read::{CODING_KEYS, CONCEPT_KEYS, REFERENCE_KEYS, Reader};

/// The HR mark and its scope.
pub const MARK_EXTENSION: &str = "http://tiercare.org/fhir/StructureDefinition/recognition-mark";
/// An imaging report's findings (valueString).
pub const FINDINGS_EXTENSION: &str = "http://tiercare.org/fhir/StructureDefinition/imaging-findings";
/// The recognition catalogue's local item codes.
pub const ITEM_SYSTEM: &str = "http://tiercare.org/fhir/CodeSystem/recognition-item";
pub const LOINC: &str = "http://loinc.org";
const V2_0074: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
const OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
const DICOM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// LOINC "Laboratory report": the code of a lab DiagnosticReport.
const LAB_REPORT_CODE: &str = "11502-2";
/// The id of the contained ImagingStudy.
const STUDY: &str = "study";

// ---------------------------------------------------------------------------------------
// writing

fn instant(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).unwrap_or_default()
}

/// A number as FHIR JSON: whole numbers without a fraction (`135`, not `135.0`).
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 { json!(x as i64) } else { json!(x) }
}

/// The value as sent ("0.09", "176") as a JSON number, exactly.
fn decimal(text: &str, fallback: Option<f64>) -> Value {
    match serde_json::from_str::<serde_json::Number>(text.trim()) {
        Ok(n) => Value::Number(n),
        Err(_) => fallback.map(number).unwrap_or(Value::Null),
    }
}

/// The mark as the extension [`MARK_EXTENSION`].
pub fn mark_extension(m: &Scope) -> Value {
    let (scope, detail) = match m {
        Scope::Community { community_id } => ("community", json!({ "url": "community", "valueId": community_id })),
        Scope::City { region } => ("city", json!({ "url": "region", "valueCode": region })),
        Scope::Province { province } => ("province", json!({ "url": "province", "valueCode": province })),
        Scope::Agreement { name, .. } => ("agreement", json!({ "url": "agreement", "valueString": name })),
    };
    json!({ "url": MARK_EXTENSION, "extension": [{ "url": "scope", "valueCode": scope }, detail] })
}

fn reference(kind: &str, id: Uuid) -> Value {
    json!({ "reference": format!("{kind}/{id}") })
}

fn performers(r: &Report) -> Value {
    let mut v = vec![reference("Organization", r.facility_id)];
    if r.lab_id != r.facility_id {
        v.push(reference("Organization", r.lab_id));
    }
    Value::Array(v)
}

fn interpretation_code(f: AbnormalFlag) -> &'static str {
    match f {
        AbnormalFlag::Normal => "N",
        AbnormalFlag::Low => "L",
        AbnormalFlag::High => "H",
        AbnormalFlag::Abnormal => "A",
        AbnormalFlag::Critical => "AA",
    }
}

/// The item's code: the coding the lab sent, then the catalogue's when it differs.
fn item_code(e: &Entry, catalogue: &Catalogue) -> Value {
    let item = catalogue.get(&e.item_code);
    let mut coding = Vec::new();
    let sent_is_loinc = item.and_then(|i| i.loinc.as_deref()) == Some(e.sent_code.as_str());
    if sent_is_loinc {
        coding.push(json!({ "system": LOINC, "code": e.sent_code }));
    }
    let mut local = json!({ "system": ITEM_SYSTEM, "code": e.item_code });
    if let Some(i) = item {
        local["display"] = json!(i.name);
    }
    coding.push(local);
    json!({ "coding": coding })
}

/// One lab entry of a stored report as an Observation.
pub fn observation(r: &Report, e: &Entry, catalogue: &Catalogue) -> Value {
    let mut o = Map::new();
    o.insert("resourceType".into(), json!("Observation"));
    o.insert("id".into(), json!(e.id));
    if let Some(m) = &r.mark {
        o.insert("extension".into(), json!([mark_extension(m)]));
    }
    o.insert("status".into(), json!("final"));
    o.insert(
        "category".into(),
        json!([{ "coding": [{ "system": OBS_CATEGORY, "code": "laboratory", "display": "Laboratory" }] }]),
    );
    o.insert("code".into(), item_code(e, catalogue));
    o.insert("subject".into(), reference("Patient", r.patient_id));
    o.insert("effectiveDateTime".into(), json!(instant(r.specimen_time)));
    o.insert("issued".into(), json!(instant(r.report_time)));
    o.insert("performer".into(), performers(r));
    match (e.value_num, &e.unit) {
        (Some(n), unit) => {
            let mut q = json!({ "value": decimal(&e.value, Some(n)) });
            if let Some(u) = unit {
                q["unit"] = json!(u);
            }
            o.insert("valueQuantity".into(), q);
        }
        (None, _) => {
            o.insert("valueString".into(), json!(e.value));
        }
    }
    if let Some(f) = e.flag {
        o.insert(
            "interpretation".into(),
            json!([{ "coding": [{ "system": INTERPRETATION, "code": interpretation_code(f) }] }]),
        );
    }
    if e.reference.is_some() || e.reference_text.is_some() {
        let mut range = Map::new();
        let qty = |x: f64| {
            let mut q = json!({ "value": number(x) });
            if let Some(u) = &e.unit {
                q["unit"] = json!(u);
            }
            q
        };
        if let Some(rr) = e.reference {
            range.insert("low".into(), qty(rr.low));
            range.insert("high".into(), qty(rr.high));
        }
        if let Some(t) = &e.reference_text {
            range.insert("text".into(), json!(t));
        }
        o.insert("referenceRange".into(), json!([range]));
    }
    Value::Object(o)
}

fn modality_code(m: Modality) -> &'static str {
    match m {
        Modality::Ct => "CT",
        Modality::Mr => "MR",
        Modality::Us => "US",
        Modality::Xr => "DX",
        Modality::Nm => "NM",
        Modality::Ecg => "ECG",
        Modality::Other => "OT",
    }
}

fn modality_of(code: &str) -> Option<Modality> {
    Some(match code {
        "CT" => Modality::Ct,
        "MR" => Modality::Mr,
        "US" => Modality::Us,
        "DX" | "CR" | "DR" | "RG" | "XA" | "MG" => Modality::Xr,
        "NM" | "PT" => Modality::Nm,
        "ECG" | "HD" => Modality::Ecg,
        "OT" => Modality::Other,
        _ => return None,
    })
}

/// A stored report as a DiagnosticReport.
pub fn diagnostic_report(r: &Report, catalogue: &Catalogue) -> Value {
    let mut d = Map::new();
    d.insert("resourceType".into(), json!("DiagnosticReport"));
    d.insert("id".into(), json!(r.id));
    let mut extensions = Vec::new();
    if let Some(m) = &r.mark {
        extensions.push(mark_extension(m));
    }
    let exam = r.entries.first();
    match (r.category, &r.imaging) {
        (Category::Imaging, Some(img)) => {
            extensions.push(json!({ "url": FINDINGS_EXTENSION, "valueString": img.findings }));
            let ecg =
                exam.and_then(|e| catalogue.get(&e.item_code)).is_some_and(|i| i.kind == ItemKind::Electrophysiology);
            let uid = format!("2.25.{}", exam.map_or(r.id, |e| e.id).as_u128());
            let modality = json!({ "system": DICOM, "code": modality_code(img.modality) });
            d.insert(
                "contained".into(),
                json!([{
                    "resourceType": "ImagingStudy",
                    "id": STUDY,
                    "status": "available",
                    "modality": [modality],
                    "subject": reference("Patient", r.patient_id),
                    "started": instant(r.specimen_time),
                    "series": [{ "uid": uid, "modality": modality, "bodySite": { "display": img.body_site } }],
                }]),
            );
            d.insert("extension".into(), Value::Array(extensions));
            d.insert("status".into(), json!("final"));
            d.insert(
                "category".into(),
                json!([{ "coding": [{ "system": V2_0074, "code": if ecg { "EC" } else { "RAD" } }] }]),
            );
            d.insert("code".into(), exam.map_or_else(|| json!({ "text": img.code }), |e| item_code(e, catalogue)));
        }
        _ => {
            if !extensions.is_empty() {
                d.insert("extension".into(), Value::Array(extensions));
            }
            d.insert("status".into(), json!("final"));
            d.insert("category".into(), json!([{ "coding": [{ "system": V2_0074, "code": "LAB" }] }]));
            d.insert(
                "code".into(),
                json!({ "coding": [{ "system": LOINC, "code": LAB_REPORT_CODE, "display": "Laboratory report" }] }),
            );
        }
    }
    d.insert("subject".into(), reference("Patient", r.patient_id));
    d.insert("effectiveDateTime".into(), json!(instant(r.specimen_time)));
    d.insert("issued".into(), json!(instant(r.report_time)));
    d.insert("performer".into(), performers(r));
    match (r.category, &r.imaging) {
        (Category::Imaging, Some(img)) => {
            d.insert("imagingStudy".into(), json!([{ "reference": format!("#{STUDY}") }]));
            d.insert("conclusion".into(), json!(img.conclusion));
        }
        _ => {
            let results: Vec<Value> = r.entries.iter().map(|e| reference("Observation", e.id)).collect();
            d.insert("result".into(), Value::Array(results));
        }
    }
    Value::Object(d)
}

// ---------------------------------------------------------------------------------------
// reading

/// Elements we read and drop (see the module documentation).
const DROPPED: &[&str] = &[
    "id",
    "meta",
    "implicitRules",
    "language",
    "text",
    "identifier",
    "basedOn",
    "encounter",
    "note",
    "method",
    "specimen",
    "device",
    "resultsInterpreter",
    "conclusionCode",
];
const OBSERVATION_KEYS: &[&str] = &[
    "resourceType",
    "extension",
    "status",
    "category",
    "code",
    "subject",
    "effectiveDateTime",
    "issued",
    "performer",
    "valueQuantity",
    "valueString",
    "interpretation",
    "referenceRange",
];
const REPORT_KEYS: &[&str] = &[
    "resourceType",
    "contained",
    "extension",
    "status",
    "category",
    "code",
    "subject",
    "effectiveDateTime",
    "issued",
    "performer",
    "result",
    "imagingStudy",
    "conclusion",
];
/// Valid R4 elements we do not support (refused with not-supported, 422).
const UNSUPPORTED: &[&str] = &[
    "modifierExtension",
    "partOf",
    "focus",
    "effectivePeriod",
    "effectiveTiming",
    "effectiveInstant",
    "valueCodeableConcept",
    "valueBoolean",
    "valueInteger",
    "valueRange",
    "valueRatio",
    "valueSampledData",
    "valueTime",
    "valueDateTime",
    "valuePeriod",
    "dataAbsentReason",
    "bodySite",
    "hasMember",
    "derivedFrom",
    "component",
    "presentedForm",
    "media",
];

/// A report read from FHIR, with where each of its fields came from (for errors).
#[derive(Debug, Clone)]
pub struct ParsedReport {
    pub report: NewReport,
    /// Whether the performing facility was named (`performer[0]`); when not, the caller's.
    pub facility_named: bool,
    /// The domain field (`observations[2].unit`) → its FHIRPath.
    paths: HashMap<String, String>,
    /// The DiagnosticReport's entry in the Bundle (`None`: an Observation alone).
    pub report_entry: Option<usize>,
    /// The Bundle entry of each observation, in order.
    pub observation_entries: Vec<usize>,
}

impl ParsedReport {
    /// The FHIRPath of a domain field of the report (`observations[2].unit`,
    /// `mark.region`), the nearest named element when the field itself has none.
    pub fn expression(&self, field: &str) -> Option<String> {
        let mut f = field;
        loop {
            if let Some(p) = self.paths.get(f) {
                return Some(p.clone());
            }
            f = &f[..f.rfind('.')?];
        }
    }
}

/// One Observation as the parts of a report: the observation and the report-level fields
/// it carries.
struct ParsedObservation {
    obs: NewObservation,
    mark: Option<(Scope, String)>,
    effective: Option<(OffsetDateTime, String)>,
    issued: Option<(OffsetDateTime, String)>,
    subject: Option<(Uuid, String)>,
    performers: Vec<(Uuid, String)>,
    paths: Vec<(&'static str, String)>,
}

impl Reader {
    /// Refuse elements we do not support, drop the documented ones, structure-error the rest.
    fn rs_keys(&mut self, o: &Map<String, Value>, path: &str, kept: &[&str]) {
        for k in o.keys() {
            if kept.contains(&k.as_str()) || DROPPED.contains(&k.as_str()) {
                continue;
            }
            if UNSUPPORTED.contains(&k.as_str()) || k.starts_with("value") || k.starts_with("effective") {
                self.add(IssueType::NotSupported, &format!("{path}.{k}"), format!("{k} is not supported here"));
            } else {
                self.add(IssueType::Structure, &format!("{path}.{k}"), format!("unknown element {k:?}"));
            }
        }
    }

    fn rs_status(&mut self, o: &Map<String, Value>, path: &str) {
        match o.get("status") {
            None => self.add(IssueType::Required, &format!("{path}.status"), "status is required (final)"),
            Some(v) => {
                if let Some(s) = self.string(v, &format!("{path}.status"))
                    && !matches!(s, "final" | "amended" | "corrected")
                {
                    self.add(
                        IssueType::NotSupported,
                        &format!("{path}.status"),
                        format!("only final results are stored (status {s:?})"),
                    );
                }
            }
        }
    }

    fn rs_time(&mut self, v: &Value, path: &str) -> Option<OffsetDateTime> {
        let s = self.string(v, path)?;
        match OffsetDateTime::parse(s, &Rfc3339) {
            Ok(t) => Some(t),
            Err(_) => {
                self.add(IssueType::Value, path, "expected a date-time with seconds and a time zone");
                None
            }
        }
    }

    fn rs_number(&mut self, v: &Value, path: &str) -> Option<serde_json::Number> {
        match v {
            Value::Number(n) => Some(n.clone()),
            _ => {
                self.add(IssueType::Structure, path, "expected a JSON number");
                None
            }
        }
    }

    /// The extensions: the mark (and, on a report, the findings); any other is refused.
    fn rs_extensions(
        &mut self,
        o: &Map<String, Value>,
        path: &str,
        findings: bool,
    ) -> (Option<(Scope, String)>, Option<String>) {
        let mut mark = None;
        let mut text = None;
        let Some(list) = o.get("extension") else { return (None, None) };
        let Some(list) = self.array(list, &format!("{path}.extension")) else { return (None, None) };
        for (i, e) in list.iter().enumerate() {
            let at = format!("{path}.extension[{i}]");
            let Some(eo) = self.object(e, &at, &["id", "url", "extension", "valueString"]) else { continue };
            let url = eo.get("url").and_then(Value::as_str).unwrap_or_default();
            if url == MARK_EXTENSION {
                if let Some(m) = self.rs_mark(eo, &at) {
                    mark = Some((m, at));
                }
            } else if url == FINDINGS_EXTENSION && findings {
                text =
                    eo.get("valueString").and_then(|v| self.string(v, &format!("{at}.valueString"))).map(str::to_owned);
            } else {
                self.add(IssueType::Extension, &at, format!("unknown extension {url:?}"));
            }
        }
        (mark, text)
    }

    fn rs_mark(&mut self, eo: &Map<String, Value>, at: &str) -> Option<Scope> {
        let mut parts: HashMap<String, String> = HashMap::new();
        for (j, sub) in eo.get("extension").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let sp = format!("{at}.extension[{j}]");
            let so = self.object(sub, &sp, &["id", "url", "valueCode", "valueId", "valueString"])?;
            let url = so.get("url").and_then(Value::as_str).unwrap_or_default().to_owned();
            let value = ["valueCode", "valueId", "valueString"].iter().find_map(|k| so.get(*k)).and_then(Value::as_str);
            match value {
                Some(v) => {
                    parts.insert(url, v.to_owned());
                }
                None => self.add(IssueType::Required, &sp, "expected valueCode, valueId or valueString"),
            }
        }
        let get = |k: &str| parts.get(k).cloned();
        let scope = match get("scope").as_deref() {
            Some("community") => get("community")
                .and_then(|c| Uuid::parse_str(&c).ok())
                .map(|community_id| Scope::Community { community_id }),
            Some("city") => get("region").map(|region| Scope::City { region }),
            Some("province") => get("province").map(|province| Scope::Province { province }),
            Some("agreement") => get("agreement").map(|name| Scope::Agreement { name, provinces: Default::default() }),
            _ => None,
        };
        if scope.is_none() {
            self.add(
                IssueType::Value,
                at,
                "a recognition mark has scope (community, city, province, agreement) and the matching \
                 community (an id), region, province or agreement",
            );
        }
        scope
    }

    /// The codings of a CodeableConcept: the one naming a catalogue item (LOINC or local),
    /// else the first code sent.
    fn rs_item(&mut self, v: &Value, path: &str, catalogue: &Catalogue) -> Option<String> {
        let o = self.object(v, path, CONCEPT_KEYS)?;
        let Some(list) = o.get("coding") else {
            self.add(
                IssueType::Required,
                &format!("{path}.coding"),
                "code the item in LOINC or the catalogue's local code",
            );
            return None;
        };
        let list = self.array(list, &format!("{path}.coding"))?;
        let mut first = None;
        for (i, c) in list.iter().enumerate() {
            let cp = format!("{path}.coding[{i}]");
            let Some(co) = self.object(c, &cp, CODING_KEYS) else { continue };
            let system = co.get("system").and_then(Value::as_str).unwrap_or_default();
            let Some(code) = co.get("code").and_then(Value::as_str) else { continue };
            let ours = match system {
                LOINC => catalogue.get(code).is_some_and(|it| it.loinc.as_deref() == Some(code)),
                ITEM_SYSTEM => catalogue.get(code).is_some_and(|it| it.code == code),
                _ => false,
            };
            if ours {
                return Some(code.to_owned());
            }
            if first.is_none() && (system == LOINC || system == ITEM_SYSTEM) {
                first = Some(code.to_owned());
            }
        }
        if first.is_none() {
            self.add(
                IssueType::CodeInvalid,
                path,
                "code the item in LOINC (http://loinc.org) or the catalogue's local code",
            );
        }
        first
    }

    fn rs_performers(&mut self, o: &Map<String, Value>, path: &str) -> Vec<(Uuid, String)> {
        let Some(list) = o.get("performer") else { return Vec::new() };
        let Some(list) = self.array(list, &format!("{path}.performer")) else { return Vec::new() };
        let mut out = Vec::new();
        for (i, p) in list.iter().enumerate().take(2) {
            let at = format!("{path}.performer[{i}]");
            if let Some(id) = self.reference(p, &at, "Organization") {
                out.push((id, at));
            }
        }
        if list.len() > 2 {
            self.add(IssueType::NotSupported, &format!("{path}.performer[2]"), "at most the facility and its lab");
        }
        out
    }

    fn rs_observation(&mut self, v: &Value, path: &str, catalogue: &Catalogue) -> Option<ParsedObservation> {
        let Some(o) = v.as_object() else {
            self.add(IssueType::Structure, path, "expected a JSON object");
            return None;
        };
        if o.get("resourceType").and_then(Value::as_str) != Some("Observation") {
            self.add(IssueType::Invalid, &format!("{path}.resourceType"), "expected an Observation");
            return None;
        }
        self.rs_keys(o, path, OBSERVATION_KEYS);
        self.rs_status(o, path);
        let (mark, _) = self.rs_extensions(o, path, false);
        let mut paths = vec![("code", format!("{path}.code"))];
        let code = match o.get("code") {
            Some(c) => self.rs_item(c, &format!("{path}.code"), catalogue),
            None => {
                self.add(IssueType::Required, &format!("{path}.code"), "code is required");
                None
            }
        };
        let (value, unit) = if let Some(q) = o.get("valueQuantity") {
            let qp = format!("{path}.valueQuantity");
            paths.push(("value", format!("{qp}.value")));
            paths.push(("unit", format!("{qp}.unit")));
            let qo = self.object(q, &qp, &["id", "extension", "value", "comparator", "unit", "system", "code"]);
            if qo.is_some_and(|q| q.contains_key("comparator")) {
                self.add(
                    IssueType::NotSupported,
                    &format!("{qp}.comparator"),
                    "a value with a comparator (<, >) is not supported; send valueString",
                );
            }
            let value = qo.and_then(|q| q.get("value")).and_then(|v| self.rs_number(v, &format!("{qp}.value")));
            let unit =
                qo.and_then(|q| q.get("unit")).and_then(|u| self.string(u, &format!("{qp}.unit"))).map(str::to_owned);
            (value.map(|n| n.to_string()), unit)
        } else if let Some(s) = o.get("valueString") {
            paths.push(("value", format!("{path}.valueString")));
            paths.push(("unit", format!("{path}.valueString")));
            (self.string(s, &format!("{path}.valueString")).map(str::to_owned), None)
        } else {
            self.add(
                IssueType::Required,
                &format!("{path}.value[x]"),
                "the value is required (valueQuantity or valueString)",
            );
            (None, None)
        };
        let flag = o.get("interpretation").and_then(|i| self.rs_interpretation(i, &format!("{path}.interpretation")));
        let (low, high, text) = match o.get("referenceRange") {
            Some(r) => self.rs_range(r, &format!("{path}.referenceRange")),
            None => (None, None, None),
        };
        paths.push(("reference_low", format!("{path}.referenceRange[0].low")));
        paths.push(("reference_high", format!("{path}.referenceRange[0].high")));
        paths.push(("reference_text", format!("{path}.referenceRange[0].text")));
        let subject = o
            .get("subject")
            .and_then(|s| self.reference(s, &format!("{path}.subject"), "Patient"))
            .map(|id| (id, format!("{path}.subject")));
        let effective = o
            .get("effectiveDateTime")
            .and_then(|t| self.rs_time(t, &format!("{path}.effectiveDateTime")))
            .map(|t| (t, format!("{path}.effectiveDateTime")));
        let issued = o
            .get("issued")
            .and_then(|t| self.rs_time(t, &format!("{path}.issued")))
            .map(|t| (t, format!("{path}.issued")));
        let performers = self.rs_performers(o, path);
        Some(ParsedObservation {
            obs: NewObservation {
                code: code.unwrap_or_default(),
                value: value.unwrap_or_default(),
                unit,
                reference_low: low,
                reference_high: high,
                reference_text: text,
                flag,
            },
            mark,
            effective,
            issued,
            subject,
            performers,
            paths,
        })
    }

    fn rs_interpretation(&mut self, v: &Value, path: &str) -> Option<AbnormalFlag> {
        let list = self.array(v, path)?;
        let first = list.first()?;
        let at = format!("{path}[0]");
        let o = self.object(first, &at, CONCEPT_KEYS)?;
        let coding = o.get("coding").and_then(Value::as_array).and_then(|c| c.first())?;
        let code = coding.get("code").and_then(Value::as_str).unwrap_or_default();
        let flag = match code {
            "N" => AbnormalFlag::Normal,
            "L" => AbnormalFlag::Low,
            "H" => AbnormalFlag::High,
            "A" => AbnormalFlag::Abnormal,
            "AA" | "HH" | "LL" => AbnormalFlag::Critical,
            other => {
                self.add(
                    IssueType::CodeInvalid,
                    &format!("{at}.coding[0].code"),
                    format!("{other:?}: use N, L, H, A, AA, HH or LL (v3-ObservationInterpretation)"),
                );
                return None;
            }
        };
        Some(flag)
    }

    fn rs_range(&mut self, v: &Value, path: &str) -> (Option<f64>, Option<f64>, Option<String>) {
        let Some(list) = self.array(v, path) else { return (None, None, None) };
        if list.len() > 1 {
            self.add(IssueType::NotSupported, &format!("{path}[1]"), "one reference range (the adult one) is kept");
        }
        let Some(first) = list.first() else { return (None, None, None) };
        let at = format!("{path}[0]");
        let Some(o) = self.object(first, &at, &["id", "extension", "low", "high", "type", "appliesTo", "age", "text"])
        else {
            return (None, None, None);
        };
        let mut bound = |k: &str| -> Option<f64> {
            let q = o.get(k)?;
            let qp = format!("{at}.{k}");
            let qo = self.object(q, &qp, &["id", "extension", "value", "unit", "system", "code"])?;
            let n = self.rs_number(qo.get("value")?, &format!("{qp}.value"))?;
            n.as_f64()
        };
        let low = bound("low");
        let high = bound("high");
        let text = o.get("text").and_then(|t| self.string(t, &format!("{at}.text"))).map(str::to_owned);
        (low, high, text)
    }
}

/// Where a report's Observations are found: Bundle entries by fullUrl, or contained ones by
/// `#id`; each with its FHIRPath and Bundle entry index (0 when contained).
pub type Resolver<'a> = dyn Fn(&str) -> Option<(&'a Value, String, usize)> + 'a;

/// A DiagnosticReport (at `path`) with its Observations resolved through `resolve`.
fn parse_report(
    r: &mut Reader,
    v: &Value,
    path: &str,
    entry: Option<usize>,
    resolve: &Resolver<'_>,
    catalogue: &Catalogue,
) -> Option<ParsedReport> {
    let Some(o) = v.as_object() else {
        r.add(IssueType::Structure, path, "expected a JSON object");
        return None;
    };
    if o.get("resourceType").and_then(Value::as_str) != Some("DiagnosticReport") {
        r.add(IssueType::Invalid, &format!("{path}.resourceType"), "expected a DiagnosticReport");
        return None;
    }
    r.rs_keys(o, path, REPORT_KEYS);
    r.rs_status(o, path);
    let (mark, findings) = r.rs_extensions(o, path, true);
    let mut paths: HashMap<String, String> = HashMap::new();
    let subject = o.get("subject").and_then(|s| r.reference(s, &format!("{path}.subject"), "Patient"));
    if !o.contains_key("subject") {
        r.add(IssueType::Required, &format!("{path}.subject"), "subject (the Patient) is required");
    }
    paths.insert("patient_id".into(), format!("{path}.subject"));
    let effective = match o.get("effectiveDateTime") {
        Some(t) => r.rs_time(t, &format!("{path}.effectiveDateTime")),
        None => {
            r.add(IssueType::Required, &format!("{path}.effectiveDateTime"), "the specimen (exam) time is required");
            None
        }
    };
    paths.insert("specimen_time".into(), format!("{path}.effectiveDateTime"));
    let issued = match o.get("issued") {
        Some(t) => r.rs_time(t, &format!("{path}.issued")),
        None => {
            r.add(IssueType::Required, &format!("{path}.issued"), "the report time (issued) is required");
            None
        }
    };
    paths.insert("report_time".into(), format!("{path}.issued"));
    let performers = r.rs_performers(o, path);
    paths.insert("facility_id".into(), format!("{path}.performer[0]"));
    paths.insert("lab_id".into(), performers.get(1).map_or(format!("{path}.performer[0]"), |p| p.1.clone()));
    if let Some((_, at)) = &mark {
        paths.insert("mark".into(), at.clone());
    }
    paths.insert("category".into(), format!("{path}.category"));
    let imaging = o.contains_key("imagingStudy") || o.contains_key("conclusion") && !o.contains_key("result");
    let mut observations = Vec::new();
    let mut observation_entries = Vec::new();
    let mut imaging_report = None;
    if imaging {
        paths.insert("imaging".into(), path.to_owned());
        paths.insert("observations".into(), format!("{path}.result"));
        paths.insert("imaging.code".into(), format!("{path}.code"));
        paths.insert("imaging.conclusion".into(), format!("{path}.conclusion"));
        paths.insert("imaging.findings".into(), format!("{path}.extension"));
        let code = o.get("code").and_then(|c| r.rs_item(c, &format!("{path}.code"), catalogue));
        let conclusion =
            o.get("conclusion").and_then(|c| r.string(c, &format!("{path}.conclusion"))).map(str::to_owned);
        let (modality, body_site) = study(r, o, path, &mut paths);
        if o.contains_key("result") {
            r.add(
                IssueType::NotSupported,
                &format!("{path}.result"),
                "an imaging report carries its exam, not Observations",
            );
        }
        imaging_report = Some(ImagingReport {
            code: code.unwrap_or_default(),
            modality: modality.unwrap_or(Modality::Other),
            body_site: body_site.unwrap_or_default(),
            findings: findings.unwrap_or_default(),
            conclusion: conclusion.unwrap_or_default(),
        });
    } else {
        paths.insert("observations".into(), format!("{path}.result"));
        if let Some(list) = o.get("result").and_then(|l| r.array(l, &format!("{path}.result"))) {
            for (i, item) in list.iter().enumerate() {
                let at = format!("{path}.result[{i}]");
                let Some(ro) = r.object(item, &at, REFERENCE_KEYS) else { continue };
                let Some(target) = ro.get("reference").and_then(Value::as_str) else {
                    r.add(IssueType::Required, &at, "refer to the Observation by its fullUrl (urn:uuid:…) or #id");
                    continue;
                };
                let Some((ov, op, oe)) = resolve(target) else {
                    r.add(IssueType::NotFound, &at, "the Observation is not in this request (refer by fullUrl or #id)");
                    continue;
                };
                let Some(po) = r.rs_observation(ov, &op, catalogue) else { continue };
                let k = observations.len();
                for (leaf, p) in &po.paths {
                    paths.insert(format!("observations[{k}].{leaf}"), p.clone());
                }
                paths.insert(format!("observations[{k}]"), op.clone());
                // the report's fields must agree with what the Observation says
                if po.subject.as_ref().is_some_and(|(s, _)| Some(*s) != subject) {
                    r.add(
                        IssueType::Value,
                        &format!("{op}.subject"),
                        "the Observation's subject differs from its report's",
                    );
                }
                if po.mark.as_ref().is_some_and(|(m, _)| mark.as_ref().is_none_or(|(rm, _)| rm != m)) {
                    r.add(
                        IssueType::Value,
                        &format!("{op}.extension"),
                        "put the recognition mark on the DiagnosticReport",
                    );
                }
                if po.effective.as_ref().is_some_and(|(t, _)| Some(*t) != effective) {
                    r.add(
                        IssueType::Value,
                        &format!("{op}.effectiveDateTime"),
                        "the Observation's time differs from its report's",
                    );
                }
                let _ = (&po.issued, &po.performers);
                observations.push(po.obs);
                observation_entries.push(oe);
            }
        } else if !o.contains_key("result") {
            r.add(IssueType::Required, &format!("{path}.result"), "a lab report lists its Observations in result");
        }
    }
    let category = if imaging { Category::Imaging } else { Category::Lab };
    let report = NewReport {
        patient_id: subject.unwrap_or_default(),
        facility_id: performers.first().map(|p| p.0).unwrap_or_default(),
        lab_id: performers.get(1).or(performers.first()).map(|p| p.0).unwrap_or_default(),
        category,
        specimen_time: effective.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        report_time: issued.unwrap_or(OffsetDateTime::UNIX_EPOCH),
        mark: mark.map(|m| m.0),
        observations,
        imaging: imaging_report,
    };
    Some(ParsedReport {
        report,
        facility_named: !performers.is_empty(),
        paths,
        report_entry: entry,
        observation_entries,
    })
}

/// The modality and body site from the contained ImagingStudy `imagingStudy[0]` names.
fn study(
    r: &mut Reader,
    o: &Map<String, Value>,
    path: &str,
    paths: &mut HashMap<String, String>,
) -> (Option<Modality>, Option<String>) {
    let target = o
        .get("imagingStudy")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
        .and_then(|s| s.get("reference"))
        .and_then(Value::as_str);
    let contained = o.get("contained").and_then(Value::as_array).cloned().unwrap_or_default();
    let found = target
        .and_then(|t| t.strip_prefix('#'))
        .and_then(|id| contained.iter().enumerate().find(|(_, c)| c.get("id").and_then(Value::as_str) == Some(id)));
    let Some((k, s)) = found else {
        r.add(
            IssueType::Required,
            &format!("{path}.imagingStudy"),
            "refer to a contained ImagingStudy (#id) giving the modality and the body site",
        );
        return (None, None);
    };
    let sp = format!("{path}.contained[{k}]");
    paths.insert("imaging.modality".into(), format!("{sp}.modality[0]"));
    paths.insert("imaging.body_site".into(), format!("{sp}.series[0].bodySite"));
    if s.get("resourceType").and_then(Value::as_str) != Some("ImagingStudy") {
        r.add(IssueType::Invalid, &format!("{sp}.resourceType"), "expected an ImagingStudy");
        return (None, None);
    }
    let code = s.pointer("/modality/0/code").or_else(|| s.pointer("/series/0/modality/code")).and_then(Value::as_str);
    let modality = match code.map(|c| (c, modality_of(c))) {
        Some((_, Some(m))) => Some(m),
        Some((c, None)) => {
            r.add(
                IssueType::CodeInvalid,
                &format!("{sp}.modality[0]"),
                format!("{c:?} is not a DICOM modality we know"),
            );
            None
        }
        None => {
            r.add(IssueType::Required, &format!("{sp}.modality"), "the modality (DICOM code) is required");
            None
        }
    };
    let body = s
        .pointer("/series/0/bodySite")
        .and_then(|b| b.get("display").or_else(|| b.get("code")))
        .and_then(Value::as_str)
        .map(str::to_owned);
    (modality, body)
}

/// An Observation alone (`POST /fhir/Observation`): a lab report of one observation, with
/// the report's fields taken from the Observation.
pub fn parse_observation(v: &Value, catalogue: &Catalogue) -> Result<ParsedReport, Vec<Issue>> {
    let mut r = Reader::default();
    let po = r.rs_observation(v, "Observation", catalogue);
    let Some(po) = po else { return Err(r.issues) };
    if po.subject.is_none() && v.get("subject").is_none() {
        r.add(IssueType::Required, "Observation.subject", "subject (the Patient) is required");
    }
    if po.effective.is_none() && v.get("effectiveDateTime").is_none() {
        r.add(IssueType::Required, "Observation.effectiveDateTime", "the specimen time is required");
    }
    if po.issued.is_none() && v.get("issued").is_none() {
        r.add(IssueType::Required, "Observation.issued", "the report time (issued) is required");
    }
    if !r.issues.is_empty() {
        return Err(r.issues);
    }
    let mut paths: HashMap<String, String> = HashMap::new();
    for (leaf, p) in &po.paths {
        paths.insert(format!("observations[0].{leaf}"), p.clone());
    }
    paths.insert("observations".into(), "Observation".into());
    paths.insert("patient_id".into(), "Observation.subject".into());
    paths.insert("specimen_time".into(), "Observation.effectiveDateTime".into());
    paths.insert("report_time".into(), "Observation.issued".into());
    paths.insert("facility_id".into(), "Observation.performer[0]".into());
    paths.insert("lab_id".into(), po.performers.get(1).map_or("Observation.performer[0]".into(), |p| p.1.clone()));
    if let Some((_, at)) = &po.mark {
        paths.insert("mark".into(), at.clone());
    }
    let report = NewReport {
        patient_id: po.subject.map(|s| s.0).unwrap_or_default(),
        facility_id: po.performers.first().map(|p| p.0).unwrap_or_default(),
        lab_id: po.performers.get(1).or(po.performers.first()).map(|p| p.0).unwrap_or_default(),
        category: Category::Lab,
        specimen_time: po.effective.map_or(OffsetDateTime::UNIX_EPOCH, |t| t.0),
        report_time: po.issued.map_or(OffsetDateTime::UNIX_EPOCH, |t| t.0),
        mark: po.mark.map(|m| m.0),
        observations: vec![po.obs],
        imaging: None,
    };
    Ok(ParsedReport {
        facility_named: !po.performers.is_empty(),
        report,
        paths,
        report_entry: None,
        observation_entries: vec![0],
    })
}

/// A DiagnosticReport alone (`POST /fhir/DiagnosticReport`): an imaging report, or a lab
/// report whose Observations are contained (`result` → `#id`).
pub fn parse_diagnostic_report(v: &Value, catalogue: &Catalogue) -> Result<ParsedReport, Vec<Issue>> {
    let mut r = Reader::default();
    let contained: Vec<Value> = v.get("contained").and_then(Value::as_array).cloned().unwrap_or_default();
    let resolve = |target: &str| -> Option<(&Value, String, usize)> {
        let id = target.strip_prefix('#')?;
        contained
            .iter()
            .enumerate()
            .find(|(_, c)| c.get("id").and_then(Value::as_str) == Some(id))
            .map(|(k, c)| (c, format!("DiagnosticReport.contained[{k}]"), 0))
    };
    let parsed = parse_report(&mut r, v, "DiagnosticReport", None, &resolve, catalogue);
    match parsed {
        Some(p) if r.issues.is_empty() => Ok(p),
        _ => Err(r.issues),
    }
}

/// What the result entries of a transaction Bundle ask: their reports, and for each entry the
/// report it belongs to.
#[derive(Debug, Clone)]
pub struct Transaction {
    pub reports: Vec<ParsedReport>,
    /// Each entry given: (its index in the Bundle, resource type, the report it belongs to,
    /// its observation index or `None` for the DiagnosticReport itself), in the order given.
    pub entries: Vec<(usize, &'static str, usize, Option<usize>)>,
}

/// The DiagnosticReports and Observations a transaction Bundle creates: `entries` are the
/// Bundle's entries of those types (index in the Bundle, the entry; the caller has checked
/// each is a `POST` of its type and that fullUrls are unique). A report's `result` refers to
/// its Observations' fullUrls (`urn:uuid:…`); an Observation no report refers to is a report
/// of its own. Every problem is given with its element
/// (`Bundle.entry[2].resource.valueQuantity.unit`).
pub fn parse_result_entries(entries: &[(usize, &Value)], catalogue: &Catalogue) -> Result<Transaction, Vec<Issue>> {
    let mut r = Reader::default();
    let kind_of = |e: &Value| match e["resource"]["resourceType"].as_str() {
        Some("DiagnosticReport") => "DiagnosticReport",
        Some("Observation") => "Observation",
        _ => "",
    };
    let urls: HashMap<&str, usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, (_, e))| kind_of(e) == "Observation")
        .filter_map(|(k, (_, e))| e["fullUrl"].as_str().map(|u| (u, k)))
        .collect();
    let used = std::cell::RefCell::new(vec![false; entries.len()]);
    let resolve = |target: &str| -> Option<(&Value, String, usize)> {
        let &k = urls.get(target)?;
        used.borrow_mut()[k] = true;
        let (i, e) = entries[k];
        Some((&e["resource"], format!("Bundle.entry[{i}].resource"), i))
    };
    let mut reports = Vec::new();
    for &(i, e) in entries {
        if kind_of(e) == "DiagnosticReport"
            && let Some(p) = parse_report(
                &mut r,
                &e["resource"],
                &format!("Bundle.entry[{i}].resource"),
                Some(i),
                &resolve,
                catalogue,
            )
        {
            reports.push(p);
        }
    }
    // Observations no report refers to: each a report of its own
    let used = used.into_inner();
    for (k, &(i, e)) in entries.iter().enumerate() {
        if kind_of(e) == "Observation" && !used[k] {
            let path = format!("Bundle.entry[{i}].resource");
            match parse_observation(&e["resource"], catalogue) {
                Ok(mut p) => {
                    for v in p.paths.values_mut() {
                        *v = v.replacen("Observation", &path, 1);
                    }
                    p.observation_entries = vec![i];
                    reports.push(p);
                }
                Err(issues) => r.issues.extend(issues.into_iter().map(|mut x| {
                    x.expression = x.expression.map(|e| e.replacen("Observation", &path, 1));
                    x
                })),
            }
        }
    }
    // an Observation is one value of one report: referred to twice (by two reports, or twice
    // by one), it would be stored twice
    let mut seen = std::collections::HashSet::new();
    for p in &reports {
        for &e in &p.observation_entries {
            if !seen.insert(e) {
                r.add(
                    IssueType::Invalid,
                    &format!("Bundle.entry[{e}]"),
                    "this Observation is in the result of more than one report (or twice in one): each \
                     Observation belongs to one report, once",
                );
            }
        }
    }
    if !r.issues.is_empty() {
        return Err(r.issues);
    }
    let mut order = Vec::with_capacity(entries.len());
    for (k, p) in reports.iter().enumerate() {
        if let Some(e) = p.report_entry {
            order.push((e, "DiagnosticReport", k, None));
        }
        for (j, &e) in p.observation_entries.iter().enumerate() {
            order.push((e, "Observation", k, Some(j)));
        }
    }
    order.sort_by_key(|o| o.0);
    Ok(Transaction { reports, entries: order })
}
