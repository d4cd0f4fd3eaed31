//! GB/T 2260 administrative divisions (行政区划代码).

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::error::FieldError;

const DIVISIONS_CSV: &str = include_str!("../data/gbt2260-divisions.csv");

/// One administrative division.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Division {
    pub code: String,
    pub name: String,
    /// 1 province, 2 prefecture, 3 county
    pub level: u8,
    pub parent: Option<String>,
}

static DIVISIONS: LazyLock<HashMap<String, Division>> = LazyLock::new(|| {
    DIVISIONS_CSV
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            if f.len() < 5 || !f[0].bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let level = f[3].parse().ok()?;
            let parent = (!f[4].is_empty()).then(|| f[4].to_owned());
            Some((f[0].to_owned(), Division { code: f[0].to_owned(), name: f[1].to_owned(), level, parent }))
        })
        .collect()
});

/// True when `two` is the code of a province-level division (11 北京 … 82 澳门).
pub fn is_province_prefix(two: &str) -> bool {
    DIVISIONS.get(two).is_some_and(|d| d.level == 1)
}

/// Look a division up by its code (2-digit province, 4- or 6-digit code as in the table).
pub fn division(code: &str) -> Option<&'static Division> {
    DIVISIONS.get(code)
}

/// The 6-digit GB/T 2260 code of a prefecture or county in the table.
pub fn validate_region_code(field: &str, raw: &str) -> Result<String, FieldError> {
    let s = raw.trim();
    if s.len() != 6 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return Err(FieldError::new(field, "region_code.format", "a region code is 6 digits (GB/T 2260)"));
    }
    if division6(s).is_none() {
        return Err(FieldError::new(field, "region_code.unknown", format!("{s} is not a GB/T 2260 division code")));
    }
    Ok(s.to_owned())
}

/// Look up a 6-digit code; `511600` finds the prefecture `5116`, `510000` the province `51`.
pub fn division6(code: &str) -> Option<&'static Division> {
    if code.len() != 6 {
        return None;
    }
    DIVISIONS.get(code).or_else(|| match (&code[2..], &code[4..]) {
        ("0000", _) => DIVISIONS.get(&code[..2]),
        (_, "00") => DIVISIONS.get(&code[..4]),
        _ => None,
    })
}

/// Full name of a division with its parents, e.g. 四川省广安市岳池县.
pub fn full_name(code: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut cur = division6(code).or_else(|| DIVISIONS.get(code));
    while let Some(d) = cur {
        parts.push(d.name.as_str());
        cur = d.parent.as_deref().and_then(|p| DIVISIONS.get(p));
    }
    (!parts.is_empty()).then(|| parts.into_iter().rev().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_provinces_and_counties() {
        assert!(is_province_prefix("11"));
        assert!(is_province_prefix("51"));
        assert!(!is_province_prefix("99"));
        assert_eq!(validate_region_code("r", "110105").as_deref(), Ok("110105"));
        assert_eq!(validate_region_code("r", "11010").map_err(|e| e.code), Err("region_code.format".into()));
        assert_eq!(validate_region_code("r", "119999").map_err(|e| e.code), Err("region_code.unknown".into()));
        assert_eq!(full_name("110105").as_deref(), Some("北京市朝阳区"));
        assert_eq!(full_name("511621").as_deref(), Some("四川省广安市岳池县"));
        assert_eq!(full_name("511600").as_deref(), Some("四川省广安市"));
    }
}
