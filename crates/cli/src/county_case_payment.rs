//! The demo county's case-based payment (issue 9): the stays' discharge details, the pooling
//! region's DIP catalogue and year-end settlement, and the community's global budget — loaded
//! after the year of care by [`crate::county::load`].
//!
//! The generated county has one year of care, so the demo's catalogue is built from that year
//! itself (`history_years = [year]`, weighing the latest year's weight) rather than from three
//! earlier years as in real use. The fund available is 97 % of 70 % of the stays' cost at a
//! reimbursement ratio of 70 % (point value just under the catalogue's); facility-level
//! coefficients are 0.90 for township and village, 1.00 for county, 1.05 for city hospitals;
//! the budget is the year's fund spend for the community's residents plus 4 %, so the
//! burn-down ends with a saving the community keeps. DRG weights come from the same year; the
//! DRG base rate is the default (budget-neutral with DIP).
//!
//! Stay details (discharge status, newborn weight) are drawn for the stays the region settles,
//! from the stays read back from the store (one read), not by regenerating the year of care.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use tiercare_domain::budget::BudgetTerms;
use tiercare_domain::dip::{self, CaseStay, DipParameters, YearTerms};
use tiercare_domain::facility::Tier;
use tiercare_sim::County;
use tiercare_sim::stays::detail_of;
use tiercare_store::{CasePaymentYear, StayDetail, Store};
use uuid::Uuid;

/// Stay details written per transaction.
const BATCH: usize = 50_000;

/// Load this part's generated data into the store (which already holds the year of care).
pub async fn load(store: &Arc<dyn Store>, county: &County, progress: bool) -> Result<()> {
    let started = Instant::now();
    let year = county.config.year;
    let code = &county.community.region_code;
    let region = format!("{}00", &code[..4.min(code.len())]);
    // One read of the region's stays: their details are drawn from what the store holds, and
    // the drawn birth weights are put into the stays read (what a second read would return).
    let mut stays = store.case_stays(&region[..4.min(region.len())], &[year]).await?;
    let details = load_details(store, county.config.seed, &mut stays).await?;
    if stays.is_empty() {
        return Ok(());
    }
    let cost: i64 = stays.iter().map(|s| s.cost_fen).sum();
    let terms = YearTerms {
        year,
        history_years: vec![year],
        params: DipParameters::default(),
        fund_available_fen: cost / 100 * 70 * 97 / 100,
        reimbursement_ratio_bp: 7_000,
        facility_coefficients_bp: county
            .facilities
            .iter()
            .map(|f| {
                let c = match f.tier {
                    Tier::Village | Tier::Township => 9_000,
                    Tier::County => 10_000,
                    _ => 10_500,
                };
                (f.id.to_string(), c)
            })
            .collect(),
        // weights from the year itself; base rate budget-neutral with DIP (the default)
        drg: Default::default(),
    };
    let scheme = tiercare_domain::drg::sample_scheme()?;
    let outcome = dip::settle_year(&terms, &stays, &stays, &scheme)?;
    let summary = CasePaymentYear::of(&region, &terms, scheme.name(), &outcome, None, county.today());
    store.replace_case_payment_year(&summary, &outcome).await?;

    let spend: i64 = store
        .community_spend(county.community.id, year)
        .await?
        .iter()
        .map(|m| m.in_county_fen + m.out_of_county_fen)
        .sum();
    if spend > 0 {
        // plus 4 %, rounded up to 10,000 yuan
        let budget = (spend * 104 / 100 / 1_000_000 + 1) * 1_000_000;
        let terms = BudgetTerms {
            year,
            budget_fen: budget,
            savings_retained_bp: 10_000,
            overspend_borne_bp: 5_000,
            closed: false,
        };
        store.put_budget(county.community.id, &terms, None, county.today()).await?;
    }
    if progress {
        eprintln!(
            "case-based payment: {details} stay details, DIP catalogue {region}/{year} ({} packets, {} stays), budget in {:.1} s",
            summary.packets,
            summary.stays,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Draw and store the discharge details of the region's stays (those the settlement groups);
/// each stay's draw depends only on the seed, its id, its principal diagnosis and whether the
/// patient was a newborn, so no encounter is regenerated.
async fn load_details(store: &Arc<dyn Store>, seed: u64, stays: &mut [CaseStay]) -> Result<u64> {
    let mut n = 0;
    for chunk in stays.chunks_mut(BATCH) {
        let mut batch = Vec::with_capacity(chunk.len());
        for s in chunk.iter_mut() {
            let id = Uuid::parse_str(&s.id)?;
            let newborn = s.grouping.age_days.is_some_and(|d| d < 29);
            let d = detail_of(seed, id, &s.region_key, s.grouping.diagnoses.first().map(String::as_str), newborn);
            s.grouping.weight_g = d.newborn_weight_g;
            batch.push(StayDetail {
                region_key: d.region_key,
                encounter_id: d.encounter_id,
                newborn_weight_g: d.newborn_weight_g,
                discharge_status: d.discharge_status.to_owned(),
            });
        }
        n += store.import_stay_details(&batch).await?;
    }
    Ok(n)
}
