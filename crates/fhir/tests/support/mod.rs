//! The conformance oracle the fhir crate's tests share: the official FHIR R4 JSON Schema
//! (../shared/data/fhir-r4), not the code under test. Used by `tests/*.rs` (`mod support;`)
//! and by the unit tests in `src/` (through `crate::test_support`, see `lib.rs`).

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
