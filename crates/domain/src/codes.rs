//! Diagnosis (ICD-10 医保版 2.0) and procedure (ICD-9-CM-3 医保版) code tables.

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::error::FieldError;

const ICD10: &str = include_str!("../data/icd10-insurance-2.0.dat");
const ICD9CM3: &str = include_str!("../data/icd9cm3-insurance.dat");

fn load(text: &'static str) -> HashMap<&'static str, &'static str> {
    text.lines()
        .filter_map(|l| {
            let (code, name) = l.split_once(' ')?;
            Some((code.trim(), name.trim()))
        })
        .collect()
}

static DIAGNOSES: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| load(ICD10));
static PROCEDURES: LazyLock<HashMap<&'static str, &'static str>> = LazyLock::new(|| load(ICD9CM3));

/// Chinese name of an ICD-10 医保版 diagnosis code.
pub fn diagnosis_name(code: &str) -> Option<&'static str> {
    DIAGNOSES.get(code).copied()
}

/// Chinese name of an ICD-9-CM-3 医保版 procedure code.
pub fn procedure_name(code: &str) -> Option<&'static str> {
    PROCEDURES.get(code).copied()
}

/// Every diagnosis code (for generators).
pub fn diagnosis_codes() -> impl Iterator<Item = (&'static str, &'static str)> {
    DIAGNOSES.iter().map(|(c, n)| (*c, *n))
}

/// Validate a diagnosis code against the table; the error names the code.
pub fn validate_diagnosis(field: &str, code: &str) -> Result<String, FieldError> {
    let c = code.trim();
    if diagnosis_name(c).is_some() {
        Ok(c.to_owned())
    } else {
        Err(FieldError::new(field, "diagnosis.unknown", format!("{c} is not an ICD-10 医保版 2.0 diagnosis code")))
    }
}

/// Validate a procedure code against the table; the error names the code.
pub fn validate_procedure(field: &str, code: &str) -> Result<String, FieldError> {
    let c = code.trim();
    if procedure_name(c).is_some() {
        Ok(c.to_owned())
    } else {
        Err(FieldError::new(field, "procedure.unknown", format!("{c} is not an ICD-9-CM-3 医保版 procedure code")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_load_with_their_counts() {
        // shared/data/README.md says 33,303 and 13,685; the files hold one more distinct
        // code line each (`grep -c .`), which is what we load.
        assert_eq!(DIAGNOSES.len(), 33_304);
        assert_eq!(PROCEDURES.len(), 13_686);
        assert_eq!(diagnosis_name("A00.000"), Some("霍乱，由于O1群霍乱弧菌，霍乱生物型所致"));
        assert!(validate_diagnosis("d", "I10.x00").is_ok());
        assert_eq!(validate_diagnosis("d", "ZZZ.999").map_err(|e| e.code), Err("diagnosis.unknown".to_owned()));
        assert_eq!(procedure_name("00.0100"), Some("头和颈部血管治疗性超声"));
    }
}
