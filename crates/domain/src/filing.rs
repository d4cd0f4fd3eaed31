//! Insurance filings (备案) for care outside the insured region (domain.md M7, 医保发〔2022〕22号).
//!
//! Long-term filings (relocated retirees, long-term residents, posted staff) last until
//! changed; temporary ones (referred, emergency, other) at least six months. A transfer
//! out of the insured region through an accepted referral files the patient
//! automatically, so settlement at the receiving hospital applies the registered rate.

use time::{Date, Month, OffsetDateTime};
use uuid::Uuid;

/// Filing categories of the national rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilingCategory {
    /// 异地安置退休 (long-term)
    RelocatedRetiree,
    /// 异地长期居住 (long-term)
    LongTermResident,
    /// 常驻异地工作 (long-term)
    PostedStaff,
    /// 异地转诊 (temporary)
    Referred,
    /// 异地急诊抢救 (temporary; an emergency counts as filed)
    Emergency,
    /// 其他临时外出 (temporary)
    OtherTemporary,
}

impl FilingCategory {
    pub const ALL: [FilingCategory; 6] = [
        FilingCategory::RelocatedRetiree,
        FilingCategory::LongTermResident,
        FilingCategory::PostedStaff,
        FilingCategory::Referred,
        FilingCategory::Emergency,
        FilingCategory::OtherTemporary,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            FilingCategory::RelocatedRetiree => "relocated_retiree",
            FilingCategory::LongTermResident => "long_term_resident",
            FilingCategory::PostedStaff => "posted_staff",
            FilingCategory::Referred => "referred",
            FilingCategory::Emergency => "emergency",
            FilingCategory::OtherTemporary => "other_temporary",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
    pub fn is_long_term(self) -> bool {
        matches!(
            self,
            FilingCategory::RelocatedRetiree | FilingCategory::LongTermResident | FilingCategory::PostedStaff
        )
    }
}

/// Months a temporary filing lasts at least (national rule: not under six months).
pub const TEMPORARY_FILING_MONTHS: u8 = 6;

/// A filing: the patient may be treated in `filed_region` at the registered rate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Filing {
    pub id: Uuid,
    pub region_key: String,
    pub patient_id: Uuid,
    pub category: FilingCategory,
    /// 参保地 (GB/T 2260)
    pub insured_region: String,
    /// 就医地: the insurance region of the place of treatment
    pub filed_region: String,
    pub valid_from: Date,
    /// `None`: until changed (long-term).
    pub valid_to: Option<Date>,
    /// The referral that caused it, when automatic.
    pub referral_id: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Filing {
    /// A temporary filing from `from`, valid [`TEMPORARY_FILING_MONTHS`] months.
    #[allow(clippy::too_many_arguments)]
    pub fn temporary(
        id: Uuid,
        region_key: String,
        patient_id: Uuid,
        category: FilingCategory,
        insured_region: &str,
        filed_region: &str,
        from: Date,
        referral_id: Option<Uuid>,
        now: OffsetDateTime,
    ) -> Filing {
        Filing {
            id,
            region_key,
            patient_id,
            category,
            insured_region: insured_region.to_owned(),
            filed_region: filed_region.to_owned(),
            valid_from: from,
            valid_to: Some(add_months(from, TEMPORARY_FILING_MONTHS)),
            referral_id,
            created_at: now,
        }
    }

    /// Does the filing cover care in `region` on `day`?
    pub fn covers(&self, region: &str, day: Date) -> bool {
        self.filed_region == region && self.valid_from <= day && self.valid_to.is_none_or(|to| day <= to)
    }
}

/// `d` plus `months` calendar months, clamped to the month's last day (Aug 31 + 6 → Feb 28/29).
pub fn add_months(d: Date, months: u8) -> Date {
    let total = d.month() as i32 - 1 + i32::from(months);
    let year = d.year() + total / 12;
    let month = Month::try_from((total % 12 + 1) as u8).unwrap_or(Month::January);
    let last = time::util::days_in_month(month, year);
    Date::from_calendar_date(year, month, d.day().min(last)).unwrap_or(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    #[test]
    fn six_months_by_the_calendar() {
        assert_eq!(add_months(date!(2026 - 03 - 15), 6), date!(2026 - 09 - 15));
        assert_eq!(add_months(date!(2026 - 08 - 31), 6), date!(2027 - 02 - 28));
        assert_eq!(add_months(date!(2027 - 08 - 31), 6), date!(2028 - 02 - 29));
        assert_eq!(add_months(date!(2026 - 12 - 01), 6), date!(2027 - 06 - 01));
    }

    #[test]
    fn a_temporary_filing_covers_its_region_for_six_months() {
        let f = Filing::temporary(
            Uuid::nil(),
            "511621".into(),
            Uuid::nil(),
            FilingCategory::Referred,
            "511600",
            "510100",
            date!(2026 - 11 - 23),
            None,
            datetime!(2026-11-23 02:00 UTC),
        );
        assert!(f.covers("510100", date!(2026 - 11 - 23)));
        assert!(f.covers("510100", date!(2027 - 05 - 23)));
        assert!(!f.covers("510100", date!(2027 - 05 - 24)));
        assert!(!f.covers("500100", date!(2026 - 12 - 01)));
        assert!(!f.covers("510100", date!(2026 - 11 - 22)));
        assert!(!f.category.is_long_term());
    }
}
