//! Two-way referral (domain.md M3, M4, M5): direction and reach, green channels, the life
//! cycle as a pure state machine with deadlines and escalation, the emergency network's
//! choice of receiver, follow-up tasks after a downward referral and the insurance filing
//! after a transfer out of the insured region.
//!
//! Everything here is a pure function: the caller passes `now` and the facilities involved,
//! and gets back the new referral plus the event and side effects to store in one
//! transaction ([`Change`]). The store's only rule is optimistic concurrency: a change is
//! written only if the referral still has the version the change was computed from.

use time::{Date, Duration, OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::error::{DomainError, FieldError, Problems};
use crate::facility::{EmergencyCentre, Facility, Tier};
use crate::filing::{Filing, FilingCategory};

/// China Standard Time: days (today's arrivals, follow-up due dates) are counted in it.
pub const CHINA_TIME: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(o) => o,
    Err(_) => UtcOffset::UTC,
};

/// The calendar day of `t` in China Standard Time.
pub fn china_date(t: OffsetDateTime) -> Date {
    t.to_offset(CHINA_TIME).date()
}

code_enum! {
    /// Up or down the tiers (上转 / 下转); lateral between facilities of the same tier.
    Direction { Upward = "upward", Downward = "downward", Lateral = "lateral" }
}

code_enum! {
    /// How far the patient goes: inside the county, out of the county (same province), or
    /// out of the province (the insured region's province).
    Reach { InCounty = "in_county", OutOfCounty = "out_of_county", OutOfProvince = "out_of_province" }
}

code_enum! {
    /// How soon the receiver must answer. `Emergency` with a green-channel class must be
    /// acknowledged within minutes.
    Urgency { Routine = "routine", Urgent = "urgent", Emergency = "emergency" }
}

code_enum! {
    /// The life cycle: `requested → accepted | rejected | redirected → scheduled → arrived →
    /// completed`; `cancelled` from any open state; `expired` when nobody acts in time.
    ReferralState {
        Requested = "requested",
        Accepted = "accepted",
        Rejected = "rejected",
        /// Sent on to another receiver, who must now answer as if newly requested.
        Redirected = "redirected",
        Scheduled = "scheduled",
        Arrived = "arrived",
        Completed = "completed",
        Cancelled = "cancelled",
        Expired = "expired",
    }
}

impl ReferralState {
    /// Open: someone still has to act.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            ReferralState::Requested
                | ReferralState::Redirected
                | ReferralState::Accepted
                | ReferralState::Scheduled
                | ReferralState::Arrived
        )
    }
    /// Waiting for the (current) receiver's first answer.
    pub fn awaits_answer(self) -> bool {
        matches!(self, ReferralState::Requested | ReferralState::Redirected)
    }
}

code_enum! {
    /// Clock times kept for green-channel care (what chest-pain and stroke centres are
    /// judged on: door-to-needle, door-to-balloon, first contact to door).
    Timepoint {
        /// 首次医疗接触
        FirstMedicalContact = "first_medical_contact",
        /// 转出 (left the sending facility)
        Departed = "departed",
        /// 到达 (door of the receiving hospital)
        Door = "door",
        /// 首份心电图
        Ecg = "ecg",
        /// 头颅 CT
        Ct = "ct",
        /// 溶栓给药 (needle)
        Needle = "needle",
        /// 导丝通过 (balloon / wire crossing)
        Balloon = "balloon",
    }
}

impl Timepoint {
    /// Times the sending side records; the rest are the receiver's.
    pub fn is_sender_side(self) -> bool {
        matches!(self, Timepoint::FirstMedicalContact | Timepoint::Departed)
    }
}

/// Deadlines a facility sets for referrals sent to it. *Defaults* from domain.md (green
/// channel: acknowledge within 10 minutes); every number is configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReferralPolicy {
    /// Hours to answer (accept, reject, redirect) a routine referral before it expires.
    pub routine_answer_hours: u32,
    /// Hours to answer an urgent (or acknowledged emergency) referral.
    pub urgent_answer_hours: u32,
    /// Minutes to acknowledge a green-channel referral before it escalates.
    pub green_ack_minutes: u32,
    /// Hours from acceptance to a scheduled time (emergencies: to arrival).
    pub schedule_within_hours: u32,
    /// Hours after the scheduled time before a patient who did not come counts as expired.
    pub no_show_grace_hours: u32,
}

impl Default for ReferralPolicy {
    fn default() -> Self {
        ReferralPolicy {
            routine_answer_hours: 48,
            urgent_answer_hours: 4,
            green_ack_minutes: 10,
            schedule_within_hours: 72,
            no_show_grace_hours: 24,
        }
    }
}

impl ReferralPolicy {
    pub fn validate(&self, field: &str) -> Result<(), FieldError> {
        let hours =
            [self.routine_answer_hours, self.urgent_answer_hours, self.schedule_within_hours, self.no_show_grace_hours];
        if hours.iter().any(|h| !(1..=24 * 90).contains(h)) || !(1..=24 * 60).contains(&self.green_ack_minutes) {
            return Err(FieldError::new(
                field,
                "referral_policy.range",
                "deadlines are 1 hour to 90 days, and the green-channel acknowledgement 1 minute to 24 hours",
            ));
        }
        Ok(())
    }
}

/// One step of the follow-up plan a downward referral carries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FollowUpItem {
    /// What to do, e.g. "测血压、调整降压药".
    pub what: String,
    /// Days after the receiver accepts the referral.
    pub due_in_days: u16,
}

/// A referral.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Referral {
    pub id: Uuid,
    /// The patient's region key (co-locates referrals with their patient).
    pub region_key: String,
    pub patient_id: Uuid,
    pub direction: Direction,
    pub reach: Reach,
    pub from_facility_id: Uuid,
    pub from_department: Option<String>,
    /// The user who asked for it.
    pub requested_by: Uuid,
    /// The current receiver (changes on redirect and escalation).
    pub to_facility_id: Uuid,
    pub to_department: Option<String>,
    pub urgency: Urgency,
    /// The national centre needed (胸痛, 卒中, …): a green-channel referral.
    pub green_channel: Option<EmergencyCentre>,
    pub reason: String,
    /// ICD-10 医保版 codes, principal first.
    pub diagnoses: Vec<String>,
    pub clinical_summary: String,
    /// Downward referrals: the discharge summary.
    pub discharge_summary: Option<String>,
    /// Downward referrals: what the receiver is to do, and when.
    pub follow_up_plan: Vec<FollowUpItem>,
    /// Encounters the receiver should see (the sender's visit or stay).
    pub encounter_ids: Vec<Uuid>,
    pub state: ReferralState,
    /// Incremented by every change; a change computed from an older version is refused.
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    /// When the current receiver first reacted (acknowledge, accept, reject or redirect).
    #[serde(with = "time::serde::rfc3339::option")]
    pub acknowledged_at: Option<OffsetDateTime>,
    /// When the current state must be acted on: expiry, or escalation for an
    /// unacknowledged green-channel referral. `None` once nothing is due.
    #[serde(with = "time::serde::rfc3339::option")]
    pub due_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub scheduled_at: Option<OffsetDateTime>,
    /// How many times it escalated.
    pub escalations: u32,
    /// Green-channel clock times, in the order recorded.
    pub timepoints: Vec<(Timepoint, OffsetDateTime)>,
    /// What the receiver reports back on completion (FHIR Task.output).
    pub outcome: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Input for a referral (API and FHIR both build one).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewReferral {
    pub patient_id: Uuid,
    /// The sending facility; defaults to the user's own.
    #[serde(default)]
    pub from_facility_id: Option<Uuid>,
    #[serde(default)]
    pub from_department: Option<String>,
    pub to_facility_id: Uuid,
    #[serde(default)]
    pub to_department: Option<String>,
    #[serde(default = "routine")]
    pub urgency: Urgency,
    #[serde(default)]
    pub green_channel: Option<EmergencyCentre>,
    pub reason: String,
    pub diagnoses: Vec<String>,
    #[serde(default)]
    pub clinical_summary: String,
    #[serde(default)]
    pub discharge_summary: Option<String>,
    #[serde(default)]
    pub follow_up_plan: Vec<FollowUpItem>,
    #[serde(default)]
    pub encounter_ids: Vec<Uuid>,
}

fn routine() -> Urgency {
    Urgency::Routine
}

/// Who acts on a referral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// A user of the sending facility.
    Sender,
    /// A user of the current receiving facility.
    Receiver,
    /// The deadline sweeper (expiry, escalation).
    System,
}

/// What someone does to a referral.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// The receiver has seen it (stops the green-channel clock; no state change).
    Acknowledge,
    Accept {
        #[serde(default)]
        note: Option<String>,
    },
    Reject {
        reason: String,
    },
    Redirect {
        to_facility_id: Uuid,
        reason: String,
    },
    Schedule {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        #[serde(default)]
        department: Option<String>,
        #[serde(default)]
        note: Option<String>,
    },
    Arrive,
    Complete {
        outcome: String,
    },
    Cancel {
        reason: String,
    },
    RecordTimepoint {
        timepoint: Timepoint,
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
    },
    /// System only: nobody acted before the deadline.
    Expire,
    /// System only: an unacknowledged green-channel referral goes to the next capable
    /// facility (`None`: none is left; the receiver keeps it and the supervisor is told).
    Escalate {
        to_facility_id: Option<Uuid>,
    },
}

impl Command {
    /// The event code written to the history.
    pub fn code(&self) -> &'static str {
        match self {
            Command::Acknowledge => "acknowledge",
            Command::Accept { .. } => "accept",
            Command::Reject { .. } => "reject",
            Command::Redirect { .. } => "redirect",
            Command::Schedule { .. } => "schedule",
            Command::Arrive => "arrive",
            Command::Complete { .. } => "complete",
            Command::Cancel { .. } => "cancel",
            Command::RecordTimepoint { .. } => "record_timepoint",
            Command::Expire => "expire",
            Command::Escalate { .. } => "escalate",
        }
    }
    /// Every command, with placeholder arguments (for exhaustive tests and documentation).
    pub fn examples(to: Uuid, at: OffsetDateTime) -> Vec<Command> {
        vec![
            Command::Acknowledge,
            Command::Accept { note: None },
            Command::Reject { reason: "本院无床位".into() },
            Command::Redirect { to_facility_id: to, reason: "转至有卒中中心的医院".into() },
            Command::Schedule { at, department: None, note: None },
            Command::Arrive,
            Command::Complete { outcome: "已完成治疗".into() },
            Command::Cancel { reason: "患者放弃转诊".into() },
            Command::RecordTimepoint { timepoint: Timepoint::Door, at },
            Command::Expire,
            Command::Escalate { to_facility_id: Some(to) },
        ]
    }
}

/// One entry of a referral's history: who did what, when, why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReferralEvent {
    pub id: Uuid,
    pub region_key: String,
    pub referral_id: Uuid,
    /// The referral's version after this event (1 for the request).
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `None` for the system (expiry, escalation).
    pub actor_user_id: Option<Uuid>,
    pub actor_facility_id: Option<Uuid>,
    /// `request`, or a [`Command::code`].
    pub action: String,
    pub from_state: Option<ReferralState>,
    pub to_state: ReferralState,
    /// The reason or note given.
    pub reason: Option<String>,
    /// The receiver after a redirect or escalation.
    pub to_facility_id: Option<Uuid>,
    /// Scheduled time, or the time of a recorded timepoint.
    #[serde(with = "time::serde::rfc3339::option")]
    pub time: Option<OffsetDateTime>,
    pub timepoint: Option<Timepoint>,
}

/// A task a downward referral creates at the receiving facility.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FollowUpTask {
    pub id: Uuid,
    pub region_key: String,
    pub patient_id: Uuid,
    pub referral_id: Uuid,
    pub facility_id: Uuid,
    pub what: String,
    pub due_date: Date,
    #[serde(with = "time::serde::rfc3339::option")]
    pub done_at: Option<OffsetDateTime>,
    pub done_by: Option<Uuid>,
    pub note: Option<String>,
}

code_enum! {
    /// Notification kinds: the worklist that changed, for whom.
    NotificationKind {
        /// A new referral (or a redirected or escalated one) in the inbox.
        Incoming = "incoming",
        /// The receiver answered (accepted, rejected, redirected, scheduled).
        Answered = "answered",
        /// The patient arrived or the referral was completed.
        Progress = "progress",
        /// Cancelled by the sender.
        Cancelled = "cancelled",
        /// Nobody acted in time.
        Expired = "expired",
        /// A green-channel referral was not acknowledged in time: for the supervisor.
        Escalated = "escalated",
        /// Follow-up tasks were created.
        FollowUp = "follow_up",
    }
}

/// An in-app notification to the users of a facility. It names the referral, never the
/// patient: the worklist shows who it is to those allowed to see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Notification {
    pub id: Uuid,
    pub facility_id: Uuid,
    pub referral_id: Uuid,
    pub kind: NotificationKind,
    /// The event that caused it (`request`, `accept`, …).
    pub action: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Everything one step writes, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The referral after the step.
    pub referral: Referral,
    pub event: ReferralEvent,
    pub follow_ups: Vec<FollowUpTask>,
    pub filing: Option<Filing>,
    pub notifications: Vec<Notification>,
}

/// Why a step was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The action is impossible in the current state (409).
    #[error("cannot {action} a referral that is {state}")]
    Impossible { action: &'static str, state: &'static str },
    /// This party may not do this (403).
    #[error("{0}")]
    NotYourTurn(String),
    /// Bad arguments (422).
    #[error("{}", .0)]
    Invalid(DomainError),
}

impl From<DomainError> for Refusal {
    fn from(e: DomainError) -> Self {
        Refusal::Invalid(e)
    }
}

const MAX_REASON: usize = 500;
const MAX_SUMMARY: usize = 4000;

fn text(p: &mut Problems, field: &str, raw: &str, max: usize, required: bool) -> String {
    let s = raw.trim();
    if required && s.is_empty() {
        p.add(field, "text.empty", "must not be empty");
    } else if s.chars().count() > max {
        p.add(field, "text.length", format!("must be at most {max} characters"));
    } else if s.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        p.add(field, "text.characters", "must not contain control characters");
    }
    s.to_owned()
}

fn opt_text(p: &mut Problems, field: &str, raw: Option<&str>, max: usize) -> Option<String> {
    raw.map(|r| text(p, field, r, max, false)).filter(|s| !s.is_empty())
}

fn province(region: &str) -> &str {
    region.get(..2).unwrap_or(region)
}

/// Direction from the two tiers.
pub fn direction(from: Tier, to: Tier) -> Direction {
    match to.cmp(&from) {
        std::cmp::Ordering::Greater => Direction::Upward,
        std::cmp::Ordering::Less => Direction::Downward,
        std::cmp::Ordering::Equal => Direction::Lateral,
    }
}

/// Reach: out of the province of the patient's insured region (`home_region`), else out of
/// the sender's county (another county code and not in the sender's community), else in it.
pub fn reach(from: &Facility, to: &Facility, home_region: &str) -> Reach {
    if province(&to.region_code) != province(home_region) {
        Reach::OutOfProvince
    } else if to.region_code != from.region_code
        && (from.community_id.is_none() || to.community_id != from.community_id)
    {
        Reach::OutOfCounty
    } else {
        Reach::InCounty
    }
}

/// The due time of a referral that just entered `state` at `now` (see [`ReferralPolicy`]).
pub fn due_at(r: &Referral, policy: &ReferralPolicy, now: OffsetDateTime) -> Option<OffsetDateTime> {
    let h = |n: u32| Duration::hours(i64::from(n));
    match r.state {
        ReferralState::Requested | ReferralState::Redirected => {
            if r.green_channel.is_some() && r.acknowledged_at.is_none() {
                Some(now + Duration::minutes(i64::from(policy.green_ack_minutes)))
            } else if r.urgency == Urgency::Routine {
                Some(now + h(policy.routine_answer_hours))
            } else {
                Some(now + h(policy.urgent_answer_hours))
            }
        }
        ReferralState::Accepted => Some(now + h(policy.schedule_within_hours)),
        ReferralState::Scheduled => r.scheduled_at.map(|t| t + h(policy.no_show_grace_hours)),
        _ => None,
    }
}

/// Check a new referral and build it, with its first event and the receiver's notification.
/// `from` and `to` are the facilities; `home_region` is the patient's insured region (or,
/// without an enrolment, the sender's insurance region).
#[allow(clippy::too_many_arguments)]
pub fn request(
    input: NewReferral,
    id: Uuid,
    region_key: String,
    requested_by: Uuid,
    from: &Facility,
    to: &Facility,
    home_region: &str,
    now: OffsetDateTime,
) -> Result<Change, DomainError> {
    let mut p = Problems::default();
    if to.id == from.id {
        p.add("to_facility_id", "referral.same_facility", "a referral goes to another facility than the sender");
    }
    let mut urgency = input.urgency;
    if let Some(centre) = input.green_channel {
        urgency = Urgency::Emergency;
        if !to.capabilities.emergency_centres.contains(&centre) {
            p.add(
                "to_facility_id",
                "referral.capability",
                format!(
                    "{} has no {} centre; choose a facility that has one (see the proposals)",
                    to.name,
                    centre.as_str()
                ),
            );
        }
    }
    let dir = direction(from.tier, to.tier);
    let reason = text(&mut p, "reason", &input.reason, MAX_REASON, true);
    if input.diagnoses.is_empty() {
        p.add("diagnoses", "diagnoses.missing", "a referral names at least the principal diagnosis (ICD-10)");
    }
    let diagnoses: Vec<String> = input
        .diagnoses
        .iter()
        .enumerate()
        .filter_map(|(i, c)| p.take(crate::codes::validate_diagnosis(&format!("diagnoses[{i}]"), c)))
        .collect();
    let clinical_summary = text(&mut p, "clinical_summary", &input.clinical_summary, MAX_SUMMARY, false);
    let discharge_summary = opt_text(&mut p, "discharge_summary", input.discharge_summary.as_deref(), MAX_SUMMARY);
    let from_department = opt_text(&mut p, "from_department", input.from_department.as_deref(), 50);
    let to_department = opt_text(&mut p, "to_department", input.to_department.as_deref(), 50);
    let mut plan = Vec::new();
    for (i, item) in input.follow_up_plan.iter().enumerate() {
        let what = text(&mut p, &format!("follow_up_plan[{i}].what"), &item.what, 200, true);
        if !(1..=366).contains(&item.due_in_days) {
            p.add(&format!("follow_up_plan[{i}].due_in_days"), "follow_up.due", "due in 1 to 366 days");
        }
        plan.push(FollowUpItem { what, due_in_days: item.due_in_days });
    }
    if plan.len() > 20 {
        p.add("follow_up_plan", "follow_up.count", "at most 20 follow-up steps");
    }
    if dir == Direction::Downward {
        if discharge_summary.is_none() {
            p.add(
                "discharge_summary",
                "referral.discharge_summary",
                "a downward referral carries the discharge summary",
            );
        }
        if plan.is_empty() {
            p.add(
                "follow_up_plan",
                "referral.follow_up_plan",
                "a downward referral carries a follow-up plan (what, when)",
            );
        }
    } else if !plan.is_empty() {
        p.add("follow_up_plan", "referral.follow_up_upward", "only a downward referral carries a follow-up plan");
    }
    if input.encounter_ids.len() > 50 {
        p.add("encounter_ids", "referral.links", "at most 50 linked encounters");
    }
    p.into_result()?;
    let mut encounter_ids = input.encounter_ids;
    encounter_ids.sort();
    encounter_ids.dedup();
    let mut r = Referral {
        id,
        region_key,
        patient_id: input.patient_id,
        direction: dir,
        reach: reach(from, to, home_region),
        from_facility_id: from.id,
        from_department,
        requested_by,
        to_facility_id: to.id,
        to_department,
        urgency,
        green_channel: input.green_channel,
        reason,
        diagnoses,
        clinical_summary,
        discharge_summary,
        follow_up_plan: plan,
        encounter_ids,
        state: ReferralState::Requested,
        version: 1,
        requested_at: now,
        acknowledged_at: None,
        due_at: None,
        scheduled_at: None,
        escalations: 0,
        timepoints: Vec::new(),
        outcome: None,
        updated_at: now,
    };
    r.due_at = due_at(&r, &to.referral_policy, now);
    let event = ReferralEvent {
        id: Uuid::from_u128(id.as_u128() ^ 1),
        region_key: r.region_key.clone(),
        referral_id: id,
        version: 1,
        at: now,
        actor_user_id: Some(requested_by),
        actor_facility_id: Some(from.id),
        action: "request".into(),
        from_state: None,
        to_state: ReferralState::Requested,
        reason: Some(r.reason.clone()),
        to_facility_id: Some(to.id),
        time: None,
        timepoint: None,
    };
    let notifications = vec![notification(&r, &event, to.id, NotificationKind::Incoming)];
    Ok(Change { referral: r, event, follow_ups: Vec::new(), filing: None, notifications })
}

fn notification(r: &Referral, event: &ReferralEvent, facility_id: Uuid, kind: NotificationKind) -> Notification {
    Notification {
        id: Uuid::from_u128(event.id.as_u128() ^ facility_id.as_u128().rotate_left(7)),
        facility_id,
        referral_id: r.id,
        kind,
        action: event.action.clone(),
        at: event.at,
    }
}

/// What [`apply`] needs besides the referral and the command.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub now: OffsetDateTime,
    pub party: Party,
    /// The acting user (`None` for the system).
    pub user_id: Option<Uuid>,
    /// The sending facility.
    pub sender: &'a Facility,
    /// The current receiver.
    pub receiver: &'a Facility,
    /// For a redirect or escalation: the new receiver.
    pub new_receiver: Option<&'a Facility>,
    /// The patient's insured region (for the filing after an out-of-region transfer).
    pub home_region: &'a str,
    /// Ids for the event, tasks and filing this step creates.
    pub new_id: fn() -> Uuid,
}

fn impossible(cmd: &Command, state: ReferralState) -> Refusal {
    Refusal::Impossible { action: cmd.code(), state: state.as_str() }
}

/// The state a command leads to from `state`, or `None` when it is impossible there
/// (party rules and argument checks aside). This is the whole transition table.
pub fn next_state(state: ReferralState, cmd: &Command, r: &Referral) -> Option<ReferralState> {
    use ReferralState::*;
    match (state, cmd) {
        (Requested | Redirected, Command::Acknowledge) if r.acknowledged_at.is_none() => Some(state),
        (Requested | Redirected, Command::Accept { .. }) => Some(Accepted),
        (Requested | Redirected, Command::Reject { .. }) => Some(Rejected),
        (Requested | Redirected, Command::Redirect { .. }) => Some(Redirected),
        (Requested | Redirected, Command::Escalate { to_facility_id })
            if r.green_channel.is_some() && r.acknowledged_at.is_none() =>
        {
            // with nowhere left to go the receiver keeps it
            Some(if to_facility_id.is_some() { Redirected } else { state })
        }
        (Accepted | Scheduled, Command::Schedule { .. }) => Some(Scheduled),
        (Scheduled, Command::Arrive) => Some(Arrived),
        // an emergency comes straight in once accepted
        (Accepted, Command::Arrive) if r.urgency == Urgency::Emergency => Some(Arrived),
        (Arrived, Command::Complete { .. }) => Some(Completed),
        (s, Command::Cancel { .. }) if s.is_open() => Some(Cancelled),
        (Requested | Redirected | Accepted | Scheduled, Command::Expire) => Some(Expired),
        (s, Command::RecordTimepoint { .. }) if !matches!(s, Rejected | Cancelled | Expired) => Some(s),
        _ => None,
    }
}

/// Which party may give the command.
fn allowed_party(cmd: &Command) -> &'static [Party] {
    match cmd {
        Command::Cancel { .. } => &[Party::Sender],
        Command::Expire | Command::Escalate { .. } => &[Party::System],
        Command::RecordTimepoint { timepoint, .. } if timepoint.is_sender_side() => &[Party::Sender],
        _ => &[Party::Receiver],
    }
}

/// Apply one command: check the party, the transition and the arguments, and return
/// everything to write. `r` is the referral as read; the result has `version + 1`.
pub fn apply(r: &Referral, cmd: &Command, ctx: Context<'_>) -> Result<Change, Refusal> {
    let to_state = next_state(r.state, cmd, r).ok_or_else(|| impossible(cmd, r.state))?;
    if !allowed_party(cmd).contains(&ctx.party) {
        let who = match allowed_party(cmd)[0] {
            Party::Sender => "the sending facility",
            Party::Receiver => "the receiving facility",
            Party::System => "the deadline sweeper",
        };
        return Err(Refusal::NotYourTurn(format!("only {who} can {} this referral", cmd.code())));
    }
    let now = ctx.now;
    let mut p = Problems::default();
    let mut next = r.clone();
    next.state = to_state;
    next.version = r.version + 1;
    next.updated_at = now;
    let mut reason = None;
    let mut to_facility_id = None;
    let mut time = None;
    let mut timepoint = None;
    let mut policy = ctx.receiver.referral_policy;
    if ctx.party == Party::Receiver && next.acknowledged_at.is_none() {
        next.acknowledged_at = Some(now);
    }
    let mut follow_ups = Vec::new();
    let mut filing = None;
    let mut notify: Vec<(Uuid, NotificationKind)> = Vec::new();
    match cmd {
        Command::Acknowledge => {}
        Command::Accept { note } => {
            reason = opt_text(&mut p, "note", note.as_deref(), MAX_REASON);
            notify.push((r.from_facility_id, NotificationKind::Answered));
            let today = china_date(now);
            if r.direction == Direction::Downward {
                for item in &r.follow_up_plan {
                    follow_ups.push(FollowUpTask {
                        id: (ctx.new_id)(),
                        region_key: r.region_key.clone(),
                        patient_id: r.patient_id,
                        referral_id: r.id,
                        facility_id: r.to_facility_id,
                        what: item.what.clone(),
                        due_date: today + Duration::days(i64::from(item.due_in_days)),
                        done_at: None,
                        done_by: None,
                        note: None,
                    });
                }
                if !follow_ups.is_empty() {
                    notify.push((r.to_facility_id, NotificationKind::FollowUp));
                }
            }
            if ctx.receiver.insurance_region != ctx.home_region {
                let category =
                    if r.urgency == Urgency::Emergency { FilingCategory::Emergency } else { FilingCategory::Referred };
                filing = Some(Filing::temporary(
                    (ctx.new_id)(),
                    r.region_key.clone(),
                    r.patient_id,
                    category,
                    ctx.home_region,
                    &ctx.receiver.insurance_region,
                    today,
                    Some(r.id),
                    now,
                ));
            }
        }
        Command::Reject { reason: why } => {
            reason = Some(text(&mut p, "reason", why, MAX_REASON, true));
            notify.push((r.from_facility_id, NotificationKind::Answered));
        }
        Command::Redirect { to_facility_id: to, reason: why } => {
            reason = Some(text(&mut p, "reason", why, MAX_REASON, true));
            let new = move_to_receiver(&mut next, r, *to, ctx, &mut p)?;
            policy = new.referral_policy;
            to_facility_id = Some(new.id);
            notify.push((new.id, NotificationKind::Incoming));
            notify.push((r.from_facility_id, NotificationKind::Answered));
        }
        Command::Escalate { to_facility_id: Some(to) } => {
            reason = Some(format!("not acknowledged within {} minutes", policy.green_ack_minutes));
            let new = move_to_receiver(&mut next, r, *to, ctx, &mut p)?;
            policy = new.referral_policy;
            to_facility_id = Some(new.id);
            next.escalations += 1;
            notify.push((r.to_facility_id, NotificationKind::Escalated));
            notify.push((new.id, NotificationKind::Incoming));
            notify.push((r.from_facility_id, NotificationKind::Answered));
        }
        Command::Escalate { to_facility_id: None } => {
            // nowhere left to go: the receiver keeps it, the supervisor is told, and the
            // clock restarts so the sweeper asks again
            next.escalations += 1;
            reason = Some(format!(
                "not acknowledged within {} minutes; no other capable facility",
                policy.green_ack_minutes
            ));
            notify.push((r.to_facility_id, NotificationKind::Escalated));
            notify.push((r.from_facility_id, NotificationKind::Escalated));
        }
        Command::Schedule { at, department, note } => {
            if *at < now - Duration::hours(1) {
                p.add("at", "referral.schedule_past", "the scheduled time is in the past");
            }
            if *at > now + Duration::days(180) {
                p.add("at", "referral.schedule_far", "schedule within 180 days");
            }
            if let Some(d) = opt_text(&mut p, "department", department.as_deref(), 50) {
                next.to_department = Some(d);
            }
            reason = opt_text(&mut p, "note", note.as_deref(), MAX_REASON);
            next.scheduled_at = Some(*at);
            time = Some(*at);
            notify.push((r.from_facility_id, NotificationKind::Answered));
        }
        Command::Arrive => {
            if !next.timepoints.iter().any(|(t, _)| *t == Timepoint::Door) {
                next.timepoints.push((Timepoint::Door, now));
            }
            notify.push((r.from_facility_id, NotificationKind::Progress));
        }
        Command::Complete { outcome } => {
            let o = text(&mut p, "outcome", outcome, MAX_SUMMARY, true);
            next.outcome = Some(o);
            notify.push((r.from_facility_id, NotificationKind::Progress));
        }
        Command::Cancel { reason: why } => {
            reason = Some(text(&mut p, "reason", why, MAX_REASON, true));
            notify.push((r.to_facility_id, NotificationKind::Cancelled));
        }
        Command::RecordTimepoint { timepoint: tp, at } => {
            if *at > now + Duration::minutes(5) {
                p.add("at", "timepoint.future", "a clock time cannot be in the future");
            }
            if *at < r.requested_at - Duration::hours(24) {
                p.add("at", "timepoint.early", "a clock time is at most 24 hours before the referral");
            }
            if next.timepoints.iter().any(|(t, _)| t == tp) {
                p.add("timepoint", "timepoint.duplicate", format!("{} is already recorded", tp.as_str()));
            }
            next.timepoints.push((*tp, *at));
            time = Some(*at);
            timepoint = Some(*tp);
        }
        Command::Expire => {
            if r.due_at.is_none_or(|d| d > now) {
                return Err(Refusal::Impossible { action: "expire", state: "not yet due" });
            }
            notify.push((r.from_facility_id, NotificationKind::Expired));
            notify.push((r.to_facility_id, NotificationKind::Expired));
        }
    }
    p.into_result()?;
    next.due_at = match (cmd, to_state == r.state) {
        // a timepoint or an acknowledgement does not move the deadline, except that an
        // acknowledgement stops the green-channel clock
        (Command::RecordTimepoint { .. }, _) => r.due_at,
        (Command::Escalate { to_facility_id: None }, _) => {
            Some(now + Duration::minutes(i64::from(policy.green_ack_minutes)))
        }
        _ => due_at(&next, &policy, now),
    };
    let event = ReferralEvent {
        id: (ctx.new_id)(),
        region_key: r.region_key.clone(),
        referral_id: r.id,
        version: next.version,
        at: now,
        actor_user_id: ctx.user_id,
        actor_facility_id: match ctx.party {
            Party::Sender => Some(r.from_facility_id),
            Party::Receiver => Some(r.to_facility_id),
            Party::System => None,
        },
        action: cmd.code().into(),
        from_state: Some(r.state),
        to_state,
        reason,
        to_facility_id,
        time,
        timepoint,
    };
    let mut notifications: Vec<Notification> = Vec::new();
    for (facility, kind) in notify {
        if !notifications.iter().any(|n| n.facility_id == facility && n.kind == kind) {
            notifications.push(notification(&next, &event, facility, kind));
        }
    }
    Ok(Change { referral: next, event, follow_ups, filing, notifications })
}

/// Hand the referral to a new receiver (redirect, escalation): checks, then the new
/// receiver, direction and reach, and a fresh acknowledgement clock.
fn move_to_receiver<'a>(
    next: &mut Referral,
    r: &Referral,
    to: Uuid,
    ctx: Context<'a>,
    p: &mut Problems,
) -> Result<&'a Facility, Refusal> {
    let Some(new) = ctx.new_receiver.filter(|f| f.id == to) else {
        return Err(Refusal::Invalid(DomainError::field(
            "to_facility_id",
            "reference.unknown",
            format!("unknown facility {to}"),
        )));
    };
    if new.id == r.from_facility_id || new.id == r.to_facility_id {
        p.add(
            "to_facility_id",
            "referral.same_facility",
            "redirect to a facility other than the sender and the current receiver",
        );
    }
    if let Some(centre) = r.green_channel
        && !new.capabilities.emergency_centres.contains(&centre)
    {
        p.add("to_facility_id", "referral.capability", format!("{} has no {} centre", new.name, centre.as_str()));
    }
    next.to_facility_id = new.id;
    next.to_department = None;
    next.acknowledged_at = None;
    next.direction = direction(ctx.sender.tier, new.tier);
    next.reach = reach(ctx.sender, new, ctx.home_region);
    Ok(new)
}

/// What the deadline sweeper does with a referral that is due at `now`, if anything:
/// escalate an unacknowledged green-channel referral, expire anything else overdue.
pub fn overdue_command(r: &Referral, now: OffsetDateTime, next_capable: Option<Uuid>) -> Option<Command> {
    if !r.state.is_open() || r.due_at.is_none_or(|d| d > now) {
        return None;
    }
    if r.green_channel.is_some() && r.acknowledged_at.is_none() && r.state.awaits_answer() {
        return Some(Command::Escalate { to_facility_id: next_capable });
    }
    next_state(r.state, &Command::Expire, r).map(|_| Command::Expire)
}

/// A proposed receiver for a referral.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Proposal {
    pub facility_id: Uuid,
    pub name: String,
    pub tier: Tier,
    /// Estimated road travel time in minutes; `None` when either location is unknown.
    pub travel_minutes: Option<u32>,
    pub in_community: bool,
    pub has_centre: bool,
}

/// Road distance ≈ 1.3 × the straight line; ambulance average 50 km/h on county roads.
pub fn travel_minutes(from: &Facility, to: &Facility) -> Option<u32> {
    let (a, b) = (from.location?, to.location?);
    let km = a.distance_km(b) * 1.3;
    Some((km / 50.0 * 60.0).round() as u32)
}

/// Receivers for a referral from `from`, best first. With a green-channel class only
/// facilities with that centre qualify and they are ranked by travel time alone (the
/// emergency network does not stop at the community's border); otherwise facilities of a
/// higher tier, the sender's community first, then by travel time. `exclude` drops
/// facilities already tried.
pub fn propose_receivers(
    from: &Facility,
    need: Option<EmergencyCentre>,
    facilities: &[Facility],
    exclude: &[Uuid],
) -> Vec<Proposal> {
    let mut out: Vec<Proposal> = facilities
        .iter()
        .filter(|f| f.id != from.id && !exclude.contains(&f.id))
        .filter(|f| match need {
            Some(c) => f.capabilities.emergency_centres.contains(&c),
            None => f.tier > from.tier,
        })
        .map(|f| Proposal {
            facility_id: f.id,
            name: f.name.clone(),
            tier: f.tier,
            travel_minutes: travel_minutes(from, f),
            in_community: from.community_id.is_some() && f.community_id == from.community_id,
            has_centre: need.is_some(),
        })
        .collect();
    out.sort_by(|a, b| {
        let community = if need.is_some() { std::cmp::Ordering::Equal } else { b.in_community.cmp(&a.in_community) };
        community
            .then(a.travel_minutes.unwrap_or(u32::MAX).cmp(&b.travel_minutes.unwrap_or(u32::MAX)))
            .then(a.tier.cmp(&b.tier))
            .then(a.name.cmp(&b.name))
    });
    out
}

/// Green-channel intervals in minutes, where both ends are recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Intervals {
    /// Request to the receiver's acknowledgement.
    pub request_to_acknowledge: Option<i64>,
    pub first_contact_to_door: Option<i64>,
    pub door_to_ecg: Option<i64>,
    pub door_to_ct: Option<i64>,
    pub door_to_needle: Option<i64>,
    pub door_to_balloon: Option<i64>,
}

pub fn intervals(r: &Referral) -> Intervals {
    let at = |t: Timepoint| r.timepoints.iter().find(|(x, _)| *x == t).map(|(_, at)| *at);
    let mins = |a: Option<OffsetDateTime>, b: Option<OffsetDateTime>| Some((b? - a?).whole_minutes());
    let door = at(Timepoint::Door);
    Intervals {
        request_to_acknowledge: mins(Some(r.requested_at), r.acknowledged_at),
        first_contact_to_door: mins(at(Timepoint::FirstMedicalContact), door),
        door_to_ecg: mins(door, at(Timepoint::Ecg)),
        door_to_ct: mins(door, at(Timepoint::Ct)),
        door_to_needle: mins(door, at(Timepoint::Needle)),
        door_to_balloon: mins(door, at(Timepoint::Balloon)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facility::{Capabilities, GeoPoint, Grade};
    use proptest::prelude::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-23 02:00 UTC); // 10:00 in China

    fn facility(n: u128, tier: Tier, centres: &[EmergencyCentre], region: &str, insurance: &str) -> Facility {
        Facility {
            id: Uuid::from_u128(n),
            code: format!("H{n:011}"),
            name: format!("机构{n}"),
            tier,
            grade: Grade::Level1,
            region_code: region.into(),
            insurance_region: insurance.into(),
            community_id: (region == "511621").then(|| Uuid::from_u128(999)),
            capabilities: Capabilities { departments: vec![], beds: 10, emergency_centres: centres.to_vec() },
            location: None,
            referral_policy: ReferralPolicy::default(),
        }
    }

    fn township() -> Facility {
        facility(1, Tier::Township, &[], "511621", "511600")
    }
    fn county() -> Facility {
        facility(2, Tier::County, &[EmergencyCentre::Stroke, EmergencyCentre::ChestPain], "511621", "511600")
    }
    fn chongqing() -> Facility {
        facility(3, Tier::Provincial, &EmergencyCentre::ALL, "500103", "500100")
    }

    fn input(to: &Facility) -> NewReferral {
        NewReferral {
            patient_id: Uuid::from_u128(77),
            from_facility_id: None,
            from_department: Some("全科".into()),
            to_facility_id: to.id,
            to_department: Some("神经内科".into()),
            urgency: Urgency::Routine,
            green_channel: None,
            reason: "疑似脑梗死，需进一步检查".into(),
            diagnoses: vec!["I63.900".into()],
            clinical_summary: "右侧肢体无力 2 小时".into(),
            discharge_summary: None,
            follow_up_plan: vec![],
            encounter_ids: vec![],
        }
    }

    fn requested(green: bool) -> Referral {
        let (from, to) = (township(), county());
        let mut i = input(&to);
        if green {
            i.green_channel = Some(EmergencyCentre::Stroke);
        }
        request(i, Uuid::from_u128(500), "511621".into(), Uuid::from_u128(9), &from, &to, "511600", NOW)
            .expect("valid referral")
            .referral
    }

    fn ctx<'a>(
        party: Party,
        now: OffsetDateTime,
        sender: &'a Facility,
        receiver: &'a Facility,
        new: Option<&'a Facility>,
    ) -> Context<'a> {
        Context {
            now,
            party,
            user_id: (party != Party::System).then(|| Uuid::from_u128(10)),
            sender,
            receiver,
            new_receiver: new,
            home_region: "511600",
            new_id: Uuid::now_v7,
        }
    }

    fn in_state(green: bool, state: ReferralState) -> Referral {
        let mut r = requested(green);
        r.state = state;
        // due in the past, so expiry and escalation are possible where the table allows
        r.due_at =
            if state.is_open() && state != ReferralState::Arrived { Some(NOW - Duration::minutes(1)) } else { None };
        r.scheduled_at = (state == ReferralState::Scheduled).then_some(NOW);
        r
    }

    /// The life cycle of issue 4, written out by hand: (state, action, party) → next state.
    /// Green channel (emergency) referrals may also arrive straight after acceptance and
    /// escalate while unacknowledged.
    fn expected(green: bool, state: &str, action: &str) -> Option<(&'static str, Party)> {
        use Party::*;
        let table: &[(&str, &str, &str, Party)] = &[
            ("requested", "acknowledge", "requested", Receiver),
            ("requested", "accept", "accepted", Receiver),
            ("requested", "reject", "rejected", Receiver),
            ("requested", "redirect", "redirected", Receiver),
            ("requested", "cancel", "cancelled", Sender),
            ("requested", "expire", "expired", System),
            ("requested", "record_timepoint", "requested", Receiver),
            ("redirected", "acknowledge", "redirected", Receiver),
            ("redirected", "accept", "accepted", Receiver),
            ("redirected", "reject", "rejected", Receiver),
            ("redirected", "redirect", "redirected", Receiver),
            ("redirected", "cancel", "cancelled", Sender),
            ("redirected", "expire", "expired", System),
            ("redirected", "record_timepoint", "redirected", Receiver),
            ("accepted", "schedule", "scheduled", Receiver),
            ("accepted", "cancel", "cancelled", Sender),
            ("accepted", "expire", "expired", System),
            ("accepted", "record_timepoint", "accepted", Receiver),
            ("scheduled", "schedule", "scheduled", Receiver),
            ("scheduled", "arrive", "arrived", Receiver),
            ("scheduled", "cancel", "cancelled", Sender),
            ("scheduled", "expire", "expired", System),
            ("scheduled", "record_timepoint", "scheduled", Receiver),
            ("arrived", "complete", "completed", Receiver),
            ("arrived", "cancel", "cancelled", Sender),
            ("arrived", "record_timepoint", "arrived", Receiver),
            ("completed", "record_timepoint", "completed", Receiver),
        ];
        let green_extra: &[(&str, &str, &str, Party)] = &[
            ("requested", "escalate", "redirected", System),
            ("redirected", "escalate", "redirected", System),
            ("accepted", "arrive", "arrived", Receiver),
        ];
        table
            .iter()
            .chain(if green { green_extra } else { &[] })
            .find(|(s, a, _, _)| *s == state && *a == action)
            .map(|(_, _, to, p)| (*to, *p))
    }

    #[test]
    fn every_state_times_every_action_times_every_party() {
        let (sender, receiver, other) = (township(), county(), {
            let mut f = chongqing();
            f.capabilities.emergency_centres = EmergencyCentre::ALL.to_vec();
            f
        });
        let mut checked = 0;
        for green in [false, true] {
            for &state in ReferralState::ALL {
                for cmd in Command::examples(other.id, NOW - Duration::minutes(30)) {
                    for party in [Party::Sender, Party::Receiver, Party::System] {
                        let r = in_state(green, state);
                        let got = apply(&r, &cmd, ctx(party, NOW, &sender, &receiver, Some(&other)));
                        let want = expected(green, state.as_str(), cmd.code());
                        match (want, &got) {
                            (Some((to, p)), Ok(change)) if p == party => {
                                assert_eq!(change.referral.state.as_str(), to, "{state:?} {} by {party:?}", cmd.code());
                                assert_eq!(change.referral.version, r.version + 1);
                                assert_eq!(change.event.from_state, Some(state));
                                assert_eq!(change.event.to_state.as_str(), to);
                            }
                            (Some((_, p)), Err(Refusal::NotYourTurn(_))) if p != party => {}
                            (None, Err(Refusal::Impossible { state: s, .. })) => {
                                assert_eq!(*s, state.as_str());
                            }
                            _ => panic!(
                                "{state:?} {} by {party:?} (green {green}): want {want:?}, got {got:?}",
                                cmd.code()
                            ),
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 2 * 9 * 11 * 3);
    }

    #[test]
    fn a_new_referral_is_checked_and_classified() {
        let (from, to) = (township(), county());
        let c = request(input(&to), Uuid::from_u128(1), "511621".into(), Uuid::nil(), &from, &to, "511600", NOW)
            .expect("valid");
        assert_eq!(
            (c.referral.direction, c.referral.reach, c.referral.state),
            (Direction::Upward, Reach::InCounty, ReferralState::Requested)
        );
        // routine: 48 hours to answer by default
        assert_eq!(c.referral.due_at, Some(NOW + Duration::hours(48)));
        assert_eq!(c.notifications.len(), 1);
        assert_eq!((c.notifications[0].facility_id, c.notifications[0].kind), (to.id, NotificationKind::Incoming));

        // to itself; green channel to a facility without the centre; bad code; empty reason
        let mut bad = input(&from);
        bad.green_channel = Some(EmergencyCentre::Trauma);
        bad.diagnoses = vec!["I63.900".into(), "Q99.999".into()];
        bad.reason = "  ".into();
        let Err(DomainError::Invalid(errs)) =
            request(bad, Uuid::nil(), "511621".into(), Uuid::nil(), &from, &from, "511600", NOW)
        else {
            panic!("expected invalid")
        };
        let codes: Vec<&str> = errs.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, vec!["referral.same_facility", "referral.capability", "text.empty", "diagnosis.unknown"]);

        // a downward referral needs the discharge summary and a plan; an upward one has no plan
        let Err(DomainError::Invalid(errs)) =
            request(input(&from), Uuid::nil(), "511621".into(), Uuid::nil(), &to, &from, "511600", NOW)
        else {
            panic!("expected invalid")
        };
        let codes: Vec<&str> = errs.iter().map(|e| e.code.as_str()).collect();
        assert_eq!(codes, vec!["referral.discharge_summary", "referral.follow_up_plan"]);

        // out of the province of the insured region (Chongqing is province 50)
        let cq = chongqing();
        let c =
            request(input(&cq), Uuid::nil(), "511621".into(), Uuid::nil(), &from, &cq, "511600", NOW).expect("valid");
        assert_eq!((c.referral.direction, c.referral.reach), (Direction::Upward, Reach::OutOfProvince));
        // a city hospital in the same province, outside the community: out of county
        let city = facility(4, Tier::City, &[], "511602", "511600");
        let c = request(input(&city), Uuid::nil(), "511621".into(), Uuid::nil(), &from, &city, "511600", NOW)
            .expect("valid");
        assert_eq!(c.referral.reach, Reach::OutOfCounty);
    }

    #[test]
    fn green_channel_escalates_after_ten_minutes_unless_acknowledged() {
        let (from, to, cq) = (township(), county(), chongqing());
        let r = requested(true);
        assert_eq!(r.urgency, Urgency::Emergency, "a green channel is an emergency");
        assert_eq!(r.due_at, Some(NOW + Duration::minutes(10)));
        // at 9 minutes nothing is due; at 10 the sweeper escalates to the next capable facility
        assert_eq!(overdue_command(&r, NOW + Duration::minutes(9), Some(cq.id)), None);
        let cmd = overdue_command(&r, NOW + Duration::minutes(10), Some(cq.id)).expect("due");
        assert_eq!(cmd, Command::Escalate { to_facility_id: Some(cq.id) });
        let later = NOW + Duration::minutes(10);
        let c = apply(&r, &cmd, ctx(Party::System, later, &from, &to, Some(&cq))).expect("escalates");
        assert_eq!(
            (c.referral.state, c.referral.to_facility_id, c.referral.escalations),
            (ReferralState::Redirected, cq.id, 1)
        );
        assert_eq!(c.referral.reach, Reach::OutOfProvince);
        assert_eq!(c.referral.due_at, Some(later + Duration::minutes(10)), "the new receiver's clock starts");
        let kinds: Vec<(Uuid, NotificationKind)> = c.notifications.iter().map(|n| (n.facility_id, n.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (to.id, NotificationKind::Escalated),
                (cq.id, NotificationKind::Incoming),
                (from.id, NotificationKind::Answered)
            ]
        );
        // acknowledged at minute 3: no escalation; the answer deadline is the urgent one (4 h)
        let ack = apply(&r, &Command::Acknowledge, ctx(Party::Receiver, NOW + Duration::minutes(3), &from, &to, None))
            .expect("acknowledged");
        assert_eq!(ack.referral.acknowledged_at, Some(NOW + Duration::minutes(3)));
        assert_eq!(ack.referral.due_at, Some(NOW + Duration::minutes(3) + Duration::hours(4)));
        assert_eq!(overdue_command(&ack.referral, NOW + Duration::minutes(30), Some(cq.id)), None);
        // nowhere left: the receiver keeps it, and the clock restarts
        let c = apply(&r, &Command::Escalate { to_facility_id: None }, ctx(Party::System, later, &from, &to, None))
            .expect("escalates in place");
        assert_eq!(
            (c.referral.state, c.referral.to_facility_id, c.referral.escalations),
            (ReferralState::Requested, to.id, 1)
        );
        assert_eq!(c.referral.due_at, Some(later + Duration::minutes(10)));
        // a routine referral expires instead, after 48 hours
        let routine = requested(false);
        assert_eq!(overdue_command(&routine, NOW + Duration::hours(47), None), None);
        assert_eq!(overdue_command(&routine, NOW + Duration::hours(48), None), Some(Command::Expire));
    }

    #[test]
    fn downward_accept_creates_follow_ups_and_out_of_region_accept_files() {
        let (town, county) = (township(), county());
        let mut down = input(&town);
        down.diagnoses = vec!["I10.x00".into()];
        down.discharge_summary = Some("高血压病，血压控制平稳出院".into());
        down.follow_up_plan = vec![
            FollowUpItem { what: "测血压".into(), due_in_days: 7 },
            FollowUpItem { what: "复查肾功能".into(), due_in_days: 30 },
        ];
        let r = request(down, Uuid::from_u128(5), "511621".into(), Uuid::nil(), &county, &town, "511600", NOW)
            .expect("valid")
            .referral;
        assert_eq!(r.direction, Direction::Downward);
        // accepted at 23:30 China time on Nov 23 (15:30 UTC): due dates count from the China day
        let at = datetime!(2026-11-23 15:30 UTC);
        let c = apply(&r, &Command::Accept { note: None }, ctx(Party::Receiver, at, &county, &town, None))
            .expect("accepted");
        let due: Vec<(String, Date)> = c.follow_ups.iter().map(|t| (t.what.clone(), t.due_date)).collect();
        assert_eq!(
            due,
            vec![
                ("测血压".into(), time::macros::date!(2026 - 11 - 30)),
                ("复查肾功能".into(), time::macros::date!(2026 - 12 - 23))
            ]
        );
        assert!(c.follow_ups.iter().all(|t| t.facility_id == town.id && t.done_at.is_none()));
        assert_eq!(c.filing, None, "same insurance region: no filing");

        // accepted by a Chongqing hospital: a temporary filing for six months
        let cq = chongqing();
        let r = request(input(&cq), Uuid::from_u128(6), "511621".into(), Uuid::nil(), &town, &cq, "511600", NOW)
            .expect("valid")
            .referral;
        let c =
            apply(&r, &Command::Accept { note: None }, ctx(Party::Receiver, NOW, &town, &cq, None)).expect("accepted");
        let f = c.filing.expect("a filing");
        assert_eq!(
            (f.category, f.insured_region.as_str(), f.filed_region.as_str()),
            (FilingCategory::Referred, "511600", "500100")
        );
        assert_eq!(
            (f.valid_from, f.valid_to),
            (time::macros::date!(2026 - 11 - 23), Some(time::macros::date!(2027 - 05 - 23)))
        );
        assert_eq!(f.referral_id, Some(r.id));
    }

    #[test]
    fn green_channel_intervals() {
        let (from, to) = (township(), county());
        let mut r = requested(true);
        let step = |r: &Referral, cmd: Command, party: Party, at: OffsetDateTime| {
            apply(r, &cmd, ctx(party, at, &from, &to, None)).expect("step").referral
        };
        r = step(
            &r,
            Command::RecordTimepoint { timepoint: Timepoint::FirstMedicalContact, at: NOW - Duration::minutes(20) },
            Party::Sender,
            NOW,
        );
        r = step(&r, Command::Accept { note: None }, Party::Receiver, NOW + Duration::minutes(4));
        r = step(&r, Command::Arrive, Party::Receiver, NOW + Duration::minutes(50));
        r = step(
            &r,
            Command::RecordTimepoint { timepoint: Timepoint::Ct, at: NOW + Duration::minutes(65) },
            Party::Receiver,
            NOW + Duration::minutes(70),
        );
        r = step(
            &r,
            Command::RecordTimepoint { timepoint: Timepoint::Needle, at: NOW + Duration::minutes(95) },
            Party::Receiver,
            NOW + Duration::minutes(96),
        );
        let i = intervals(&r);
        assert_eq!(i.request_to_acknowledge, Some(4));
        assert_eq!(i.first_contact_to_door, Some(70));
        assert_eq!(i.door_to_ct, Some(15));
        assert_eq!(i.door_to_needle, Some(45));
        assert_eq!(i.door_to_balloon, None);
        // the same clock time twice is refused; a future one too
        let dup = apply(
            &r,
            &Command::RecordTimepoint { timepoint: Timepoint::Needle, at: NOW + Duration::minutes(96) },
            ctx(Party::Receiver, NOW + Duration::minutes(97), &from, &to, None),
        );
        assert!(matches!(dup, Err(Refusal::Invalid(_))));
        let future = apply(
            &r,
            &Command::RecordTimepoint { timepoint: Timepoint::Balloon, at: NOW + Duration::hours(5) },
            ctx(Party::Receiver, NOW + Duration::hours(2), &from, &to, None),
        );
        assert!(matches!(future, Err(Refusal::Invalid(_))));
    }

    #[test]
    fn receivers_are_proposed_by_capability_and_travel_time() {
        let mut from = township();
        from.location = Some(GeoPoint { lat: 30.40, lon: 106.30 });
        let mut near = county(); // stroke + chest pain, in the community
        near.location = Some(GeoPoint { lat: 30.537, lon: 106.440 });
        let mut far = chongqing(); // every centre, out of the community
        far.location = Some(GeoPoint { lat: 29.563, lon: 106.551 });
        let mut trauma_near = facility(8, Tier::City, &[EmergencyCentre::Trauma], "511602", "511600");
        trauma_near.location = Some(GeoPoint { lat: 30.456, lon: 106.633 });
        let all = vec![from.clone(), near.clone(), far.clone(), trauma_near.clone()];
        // stroke: both capable, the nearer first
        let p = propose_receivers(&from, Some(EmergencyCentre::Stroke), &all, &[]);
        assert_eq!(p.iter().map(|x| x.facility_id).collect::<Vec<_>>(), vec![near.id, far.id]);
        // trauma: the emergency network crosses the community's border for the nearer centre
        let p = propose_receivers(&from, Some(EmergencyCentre::Trauma), &all, &[]);
        assert_eq!(p.iter().map(|x| x.facility_id).collect::<Vec<_>>(), vec![trauma_near.id, far.id]);
        // travel time by hand: Δlat 0.056° = 6.23 km, Δlon 0.333° × cos 30.43° = 31.93 km,
        // straight line 32.5 km → × 1.3 road = 42.3 km → at 50 km/h ≈ 51 minutes
        assert!(matches!(p[0].travel_minutes, Some(50..=52)), "{:?}", p[0].travel_minutes);
        // routine: higher tiers, own community first
        let p = propose_receivers(&from, None, &all, &[near.id]);
        assert_eq!(p.iter().map(|x| x.facility_id).collect::<Vec<_>>(), vec![trauma_near.id, far.id]);
    }

    fn arb_command() -> impl Strategy<Value = (usize, usize, i64)> {
        (0usize..11, 0usize..3, 0i64..600)
    }

    proptest! {
        /// Any sequence of actions by anyone at any time leaves a consistent history:
        /// versions count up by one, each event starts where the last ended, a closed
        /// referral never changes state again, and nothing is due once it is closed.
        #[test]
        fn any_sequence_keeps_a_consistent_history(steps in proptest::collection::vec(arb_command(), 1..40), green in any::<bool>()) {
            let (sender, receiver) = (township(), county());
            let mut other = chongqing();
            other.capabilities.emergency_centres = EmergencyCentre::ALL.to_vec();
            let mut r = requested(green);
            let mut history: Vec<ReferralEvent> = Vec::new();
            let mut now = NOW;
            for (cmd_i, party_i, minutes) in steps {
                now += Duration::minutes(minutes);
                let cmd = Command::examples(other.id, now - Duration::minutes(1)).swap_remove(cmd_i);
                let party = [Party::Sender, Party::Receiver, Party::System][party_i];
                let rec = if r.to_facility_id == other.id { &other } else { &receiver };
                let new = if rec.id == other.id { &receiver } else { &other };
                let before = r.clone();
                match apply(&r, &cmd, ctx(party, now, &sender, rec, Some(new))) {
                    Ok(c) => {
                        let timepoint = matches!(cmd, Command::RecordTimepoint { .. });
                        prop_assert!(before.state.is_open() || timepoint);
                        prop_assert_eq!(c.referral.version, before.version + 1);
                        prop_assert_eq!(c.event.version, c.referral.version);
                        prop_assert_eq!(c.event.from_state, Some(before.state));
                        prop_assert_eq!(c.event.to_state, c.referral.state);
                        prop_assert_eq!(Some(c.referral.state), next_state(before.state, &cmd, &before));
                        if !c.referral.state.is_open() || c.referral.state == ReferralState::Arrived {
                            prop_assert_eq!(c.referral.due_at, None);
                        }
                        if let Some(last) = history.last() {
                            prop_assert_eq!(Some(last.to_state), c.event.from_state);
                            prop_assert!(last.at <= c.event.at);
                        }
                        let mut tps: Vec<Timepoint> = c.referral.timepoints.iter().map(|(t, _)| *t).collect();
                        tps.sort();
                        tps.dedup();
                        prop_assert_eq!(tps.len(), c.referral.timepoints.len());
                        history.push(c.event);
                        r = c.referral;
                    }
                    Err(_) => prop_assert_eq!(&r, &before),
                }
            }
            prop_assert_eq!(history.len() as i64, r.version - 1);
        }
    }
}
