//! The demo county's results and orders with their repeat behaviour (issue 5): loaded after the year of care
//! by [`crate::county::load`].
//!
//! The labs' qualification periods first, then resident by resident their results and
//! orders ([`tiercare_sim::results::ResultsGenerator`]), drawn on a second thread while the
//! store writes the previous batch.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use tiercare_domain::results::Outcome;
use tiercare_sim::County;
use tiercare_sim::results::{GeneratedOrder, ResultsGenerator};
use tiercare_store::{OrderRecord, Store};

use crate::county::bar;

/// Residents per batch written in one transaction pair.
const RESIDENTS_PER_BATCH: usize = 2_000;

fn order_record(o: GeneratedOrder) -> OrderRecord {
    OrderRecord {
        id: o.id,
        order_id: o.order_id,
        region_key: o.region_key,
        patient_id: o.patient_id,
        facility_id: o.facility_id,
        ordered_by: None,
        ordered_at: o.ordered_at,
        decision: o.decision,
    }
}

/// Load this part's generated data into the store (which already holds the year of care).
pub async fn load(store: &Arc<dyn Store>, county: &County, progress: bool) -> Result<()> {
    for q in ResultsGenerator::new(county).qualifications() {
        store.add_lab_qualification(q, Some("demo: 室间质评合格")).await?;
        if let Some(to) = q.qualified_to {
            store.end_lab_qualification(q.lab_id, to).await?;
        }
    }
    let n = county.residents.len();
    let b = bar(n as u64, "results", progress);
    type Batch = (usize, Vec<tiercare_domain::results::Report>, Vec<OrderRecord>);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let gen_county = Arc::new(county.clone());
    let producer = std::thread::spawn(move || {
        let g = ResultsGenerator::new(&gen_county);
        for start in (0..n).step_by(RESIDENTS_PER_BATCH) {
            let end = (start + RESIDENTS_PER_BATCH).min(n);
            let (mut reports, mut orders) = (Vec::new(), Vec::new());
            for i in start..end {
                let y = g.year_of(i, &gen_county.encounters_of(i));
                reports.extend(y.reports);
                orders.extend(y.orders.into_iter().map(order_record));
            }
            if tx.blocking_send((end - start, reports, orders)).is_err() {
                break;
            }
        }
    });
    let (mut results, mut reused, mut repeated, mut saved) = (0u64, 0u64, 0u64, 0i64);
    while let Some((residents, reports, orders)) = rx.recv().await {
        results += store.insert_results(&reports).await?;
        for o in &orders {
            match o.decision.outcome {
                Outcome::Reused => {
                    reused += 1;
                    saved += o.decision.price_fen;
                }
                Outcome::Repeated => repeated += 1,
                Outcome::Performed => {}
            }
        }
        store.record_orders(&orders).await?;
        b.inc(residents as u64);
    }
    producer.join().map_err(|_| anyhow!("the results generator panicked"))?;
    b.finish_and_clear();
    if progress {
        eprintln!(
            "results: {results} stored; {reused} tests avoided ({:.2} yuan saved), {repeated} repeated with a reason",
            saved as f64 / 100.0
        );
    }
    Ok(())
}
