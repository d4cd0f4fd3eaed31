//! Record matching: who in the index is this person?
//!
//! An identical identity number is a sure match (the store guarantees one record per
//! number). Without it, name + birth date + sex (+ phone) give ranked candidates for a
//! person to review; nothing is ever merged automatically.

use time::Date;
use uuid::Uuid;

use crate::identity::Sex;
use crate::patient::Patient;

/// What is known about the person being looked for.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchQuery {
    pub identity_number: Option<String>,
    pub name: Option<String>,
    pub birth_date: Option<Date>,
    pub sex: Option<Sex>,
    pub phone: Option<String>,
}

/// How sure a candidate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchGrade {
    Weak,
    Possible,
    Probable,
    /// Same identity number.
    Certain,
}

/// One ranked candidate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MatchCandidate {
    pub patient_id: Uuid,
    /// 0–100.
    pub score: u32,
    pub grade: MatchGrade,
    /// Which fields agreed, e.g. `name`, `name_similar`, `birth_date`, `sex`, `phone`.
    pub agreements: Vec<&'static str>,
}

/// Weights of agreeing fields (sum 100).
const W_NAME: u32 = 40;
const W_NAME_SIMILAR: u32 = 25;
const W_BIRTH: u32 = 30;
const W_BIRTH_NEAR: u32 = 15;
const W_SEX: u32 = 10;
const W_PHONE: u32 = 20;
/// Candidates scoring below this are not shown.
pub const MIN_SCORE: u32 = 40;

fn normalise_name(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace() && *c != '·' && *c != '.').flat_map(char::to_lowercase).collect()
}

/// Levenshtein distance over characters (names are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Birth dates that differ by a typing slip: day and month swapped, or one digit.
fn birth_near(a: Date, b: Date) -> bool {
    if a == b {
        return false;
    }
    let swapped = a.year() == b.year() && a.month() as u8 == b.day() && a.day() == b.month() as u8;
    let fa = format!("{:04}{:02}{:02}", a.year(), a.month() as u8, a.day());
    let fb = format!("{:04}{:02}{:02}", b.year(), b.month() as u8, b.day());
    let one_digit = fa.bytes().zip(fb.bytes()).filter(|(x, y)| x != y).count() == 1;
    swapped || one_digit
}

/// Score one candidate against the query; `None` when below [`MIN_SCORE`].
pub fn score(query: &MatchQuery, candidate: &Patient) -> Option<MatchCandidate> {
    if let Some(q) = query.identity_number.as_deref().map(|s| s.trim().to_ascii_uppercase())
        && candidate.identity_number() == Some(q.as_str())
    {
        return Some(MatchCandidate {
            patient_id: candidate.id,
            score: 100,
            grade: MatchGrade::Certain,
            agreements: vec!["identity_number"],
        });
    }
    let mut total = 0;
    let mut agreements = Vec::new();
    if let Some(name) = query.name.as_deref() {
        let (q, c) = (normalise_name(name), normalise_name(&candidate.name));
        if q == c {
            total += W_NAME;
            agreements.push("name");
        } else if !q.is_empty() && edit_distance(&q, &c) == 1 && q.chars().count() >= 2 {
            total += W_NAME_SIMILAR;
            agreements.push("name_similar");
        }
    }
    if let Some(b) = query.birth_date {
        if b == candidate.birth_date {
            total += W_BIRTH;
            agreements.push("birth_date");
        } else if birth_near(b, candidate.birth_date) {
            total += W_BIRTH_NEAR;
            agreements.push("birth_date_near");
        }
    }
    if query.sex == Some(candidate.sex) {
        total += W_SEX;
        agreements.push("sex");
    }
    if let (Some(q), Some(c)) = (query.phone.as_deref(), candidate.phone.as_deref()) {
        let q: String = q.chars().filter(char::is_ascii_digit).collect();
        if !q.is_empty() && q == c.replace('-', "") {
            total += W_PHONE;
            agreements.push("phone");
        }
    }
    if total < MIN_SCORE {
        return None;
    }
    let grade = match total {
        90.. => MatchGrade::Probable,
        70..=89 => MatchGrade::Possible,
        _ => MatchGrade::Weak,
    };
    Some(MatchCandidate { patient_id: candidate.id, score: total, grade, agreements })
}

/// Score and rank candidates: highest score first, then by id for a stable order.
pub fn rank<'a>(
    query: &MatchQuery,
    candidates: impl IntoIterator<Item = &'a Patient>,
    limit: usize,
) -> Vec<MatchCandidate> {
    let mut out: Vec<MatchCandidate> = candidates.into_iter().filter_map(|c| score(query, c)).collect();
    out.sort_by(|a, b| b.score.cmp(&a.score).then(a.patient_id.cmp(&b.patient_id)));
    out.dedup_by_key(|c| c.patient_id);
    out.truncate(limit);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patient::PatientStatus;
    use time::macros::date;

    fn person(id: u128, name: &str, birth: Date, sex: Sex, phone: Option<&str>) -> Patient {
        Patient {
            id: Uuid::from_u128(id),
            region_key: "511621".into(),
            name: name.into(),
            sex,
            birth_date: birth,
            phone: phone.map(str::to_owned),
            address: None,
            home_facility_id: None,
            identifiers: vec![],
            status: PatientStatus::Active,
            version: 1,
        }
    }

    #[test]
    fn ranks_by_hand_computed_scores() {
        let q = MatchQuery {
            name: Some("王秀英".into()),
            birth_date: Some(date!(1962 - 03 - 08)),
            sex: Some(Sex::Female),
            phone: Some("138 0000 1111".into()),
            ..Default::default()
        };
        let exact = person(1, "王秀英", date!(1962 - 03 - 08), Sex::Female, Some("13800001111")); // 40+30+10+20
        let no_phone = person(2, "王秀英", date!(1962 - 03 - 08), Sex::Female, None); // 40+30+10 = 80
        let typo = person(3, "王秀音", date!(1962 - 08 - 03), Sex::Female, None); // 25+15+10 = 50
        let other = person(4, "李明", date!(1970 - 01 - 01), Sex::Male, None); // 0
        let ranked = rank(&q, [&other, &typo, &no_phone, &exact], 10);
        let got: Vec<_> = ranked.iter().map(|c| (c.patient_id.as_u128(), c.score, c.grade)).collect();
        assert_eq!(got, vec![(1, 100, MatchGrade::Probable), (2, 80, MatchGrade::Possible), (3, 50, MatchGrade::Weak)]);
        assert_eq!(ranked[2].agreements, vec!["name_similar", "birth_date_near", "sex"]);
    }

    #[test]
    fn identity_number_is_certain() {
        let mut p = person(9, "赵四", date!(1949 - 12 - 31), Sex::Female, None);
        p.identifiers.push(crate::identity::Identifier {
            kind: crate::identity::IdentifierType::ResidentId,
            value: "11010519491231002X".into(),
        });
        let q = MatchQuery { identity_number: Some("11010519491231002x".into()), ..Default::default() };
        assert_eq!(score(&q, &p).map(|c| c.grade), Some(MatchGrade::Certain));
    }

    #[test]
    fn edit_distance_counts_characters_not_bytes() {
        assert_eq!(edit_distance("王秀英", "王秀音"), 1);
        assert_eq!(edit_distance("王秀英", "王英"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }
}
