// Referral queries (issue 4): included into `mod referral` inside `queries.rs`, so it is
// compiled once per backend like the rest. Functions take the store (`&This`) and use its
// `transact` and read pool. SQL here must be valid on both SQLite and PostgreSQL.

use super::*;

pub(super) async fn create_referral(_s: &This, _c: &Change) -> Result<()> {
    todo!("create_referral")
}
pub(super) async fn apply_referral_change(_s: &This, _c: &Change) -> Result<()> {
    todo!("apply_referral_change")
}
pub(super) async fn get_referral(_s: &This, _id: Uuid) -> Result<Option<Referral>> {
    todo!("get_referral")
}
pub(super) async fn referral_history(_s: &This, _id: Uuid) -> Result<Vec<ReferralEvent>> {
    todo!("referral_history")
}
pub(super) async fn list_referrals(_s: &This, _f: &ReferralFilter) -> Result<Vec<Referral>> {
    todo!("list_referrals")
}
pub(super) async fn count_referrals(_s: &This, _f: &ReferralFilter) -> Result<u64> {
    todo!("count_referrals")
}
pub(super) async fn due_referrals(_s: &This, _now: OffsetDateTime, _limit: u32) -> Result<Vec<Referral>> {
    todo!("due_referrals")
}
pub(super) async fn import_referrals(_s: &This, _rows: &[ReferralBundle]) -> Result<u64> {
    todo!("import_referrals")
}
pub(super) async fn list_follow_ups(_s: &This, _f: &FollowUpFilter) -> Result<Vec<FollowUpTask>> {
    todo!("list_follow_ups")
}
pub(super) async fn get_follow_up(_s: &This, _id: Uuid) -> Result<Option<FollowUpTask>> {
    todo!("get_follow_up")
}
pub(super) async fn complete_follow_up(
    _s: &This,
    _id: Uuid,
    _by: Uuid,
    _at: OffsetDateTime,
    _note: Option<&str>,
) -> Result<FollowUpTask> {
    todo!("complete_follow_up")
}
pub(super) async fn list_filings(_s: &This, _patient_ids: &[Uuid]) -> Result<Vec<Filing>> {
    todo!("list_filings")
}
pub(super) async fn list_notifications(
    _s: &This,
    _facility_id: Uuid,
    _since: Option<OffsetDateTime>,
    _limit: u32,
) -> Result<Vec<Notification>> {
    todo!("list_notifications")
}
pub(super) async fn notifications_seen_until(_s: &This, _user_id: Uuid) -> Result<Option<OffsetDateTime>> {
    todo!("notifications_seen_until")
}
pub(super) async fn mark_notifications_seen(_s: &This, _user_id: Uuid, _until: OffsetDateTime) -> Result<()> {
    todo!("mark_notifications_seen")
}
pub(super) async fn pending_outbox(_s: &This, _limit: u32) -> Result<Vec<OutboxMessage>> {
    todo!("pending_outbox")
}
pub(super) async fn mark_outbox_delivered(_s: &This, _ids: &[Uuid], _at: OffsetDateTime) -> Result<u64> {
    todo!("mark_outbox_delivered")
}
