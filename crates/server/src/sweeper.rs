//! The deadline sweeper: referrals nobody acted on in time. An unacknowledged green-channel
//! referral escalates to the next capable facility (the emergency network: by centre and
//! travel time, skipping the sender and every facility that already had it), and its
//! receiver's supervisors are told; anything else overdue expires. The rules are
//! `tiercare_domain::referral::overdue_command` and `apply`; the store writes each step with
//! its notifications in one transaction, and a step someone else got to first (a conflict)
//! is skipped.

use tiercare_domain::facility::Facility;
use tiercare_domain::referral::{self as rules, Command, Context, Party, Referral};
use tiercare_store::{FacilityFilter, StoreError, new_id};
use uuid::Uuid;

use crate::AppState;

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    pub escalated: u32,
    pub expired: u32,
    /// Someone acted between the read and the write, or the step was refused.
    pub skipped: u32,
}

/// Most referrals one pass handles; the next pass takes the rest.
const BATCH: u32 = 500;

/// One pass over the referrals due at `state.now()`.
pub async fn sweep_referrals(state: &AppState) -> Result<SweepReport, StoreError> {
    let now = state.now();
    let mut report = SweepReport::default();
    let due = state.store.due_referrals(now, BATCH).await?;
    if due.is_empty() {
        return Ok(report);
    }
    let facilities = state.store.list_facilities(&FacilityFilter::default()).await?;
    let find = |id: Uuid| facilities.iter().find(|f| f.id == id);
    for r in &due {
        let (Some(sender), Some(receiver)) = (find(r.from_facility_id), find(r.to_facility_id)) else {
            tracing::error!(referral = %r.id, "a due referral names a facility that is not stored");
            report.skipped += 1;
            continue;
        };
        let next = if needs_escalation(r) { next_capable(state, r, sender, &facilities).await? } else { None };
        let Some(cmd) = rules::overdue_command(r, now, next) else { continue };
        let new_receiver = match &cmd {
            Command::Escalate { to_facility_id: Some(to) } => find(*to),
            _ => None,
        };
        let home = if new_receiver.is_some() {
            crate::routes::referrals::home_region(state, r.patient_id, sender, now).await?
        } else {
            sender.insurance_region.clone()
        };
        let ctx = Context {
            now,
            party: Party::System,
            user_id: None,
            sender,
            receiver,
            new_receiver,
            home_region: &home,
            new_id,
        };
        let change = match rules::apply(r, &cmd, ctx) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(referral = %r.id, action = cmd.code(), error = %e, "the sweeper's step was refused");
                report.skipped += 1;
                continue;
            }
        };
        match state.store.apply_referral_change(&change).await {
            Ok(()) => match cmd {
                Command::Escalate { .. } => report.escalated += 1,
                _ => report.expired += 1,
            },
            Err(StoreError::Conflict(_)) => report.skipped += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

/// An unacknowledged green-channel referral still waiting for its receiver's answer.
fn needs_escalation(r: &Referral) -> bool {
    r.green_channel.is_some() && r.acknowledged_at.is_none() && r.state.awaits_answer()
}

/// The nearest facility with the needed centre that has not had the referral yet.
async fn next_capable(
    state: &AppState,
    r: &Referral,
    sender: &Facility,
    facilities: &[Facility],
) -> Result<Option<Uuid>, StoreError> {
    let history = state.store.referral_history(r.id).await?;
    let mut exclude: Vec<Uuid> = vec![r.from_facility_id, r.to_facility_id];
    exclude.extend(history.iter().filter_map(|e| e.to_facility_id));
    let proposals = rules::propose_receivers(sender, r.green_channel, facilities, &exclude);
    Ok(proposals.first().map(|p| p.facility_id))
}

/// Every this many passes the sweeper also folds the indicator counters' shards back to
/// one row a cell (PostgreSQL spreads a busy cell over up to 8 rows when writers overlap;
/// reads sum them, so folding changes no figure, only how many rows a scorecard reads).
/// With the default 15 s interval: every 10 minutes. SQLite keeps one row a cell: a no-op.
const FOLD_SHARDS_EVERY: u64 = 40;

/// Run a pass every `interval` until the task is dropped. A failed pass is logged and
/// the next one tries again.
pub async fn run(state: AppState, interval: std::time::Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut passes: u64 = 0;
    loop {
        tick.tick().await;
        passes += 1;
        if passes.is_multiple_of(FOLD_SHARDS_EVERY)
            && let Err(e) = state.store.fold_indicator_shards().await
        {
            tracing::warn!(target: "tiercare::sweeper", error = %e, "folding the indicator counter shards failed");
        }
        // issue 7: finished bulk jobs past their retention lose their files
        let expired = state.bulk.expire(state.now());
        if expired > 0 {
            tracing::info!(target: "tiercare::sweeper", expired, "bulk jobs expired");
        }
        match sweep_referrals(&state).await {
            Ok(r) if r.escalated + r.expired + r.skipped > 0 => {
                tracing::info!(
                    target: "tiercare::sweeper",
                    escalated = r.escalated,
                    expired = r.expired,
                    skipped = r.skipped,
                    "deadline sweep"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(target: "tiercare::sweeper", error = %e, "deadline sweep failed"),
        }
    }
}
