//! Referrals in flight at the moment the demo starts.
//!
//! The generated year of care ends on 31 December, so by the time someone opens the demo
//! every referral of that year has long been answered. For the worklists to show a working
//! day, `tiercare demo` adds a small set of referrals relative to the real clock, between
//! the first township centre (the demo's township clinician) and the county people's
//! hospital (the demo's referral centre): new ones (one of them a stroke green channel
//! requested three minutes ago, which the sweeper escalates if nobody acknowledges it in
//! time), accepted ones waiting for a time, patients arriving today, one arrived, a
//! downward referral whose follow-up tasks are due, one to Chongqing with its filing.
//! Like the year's referrals they are made through the domain (`request`, then `apply`).

use tiercare_domain::facility::{EmergencyCentre, Facility, Tier};
use tiercare_domain::referral::{self, Change, Command, Context, FollowUpItem, NewReferral, Party, Timepoint, Urgency};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::County;
use crate::referrals::{GeneratedReferral, staff_user_id};

/// One scenario: who sends what to whom, and the steps taken so far (minutes before now).
struct Scenario {
    downward: bool,
    to_outside: bool,
    urgency: Urgency,
    green: Option<EmergencyCentre>,
    diagnoses: &'static [&'static str],
    reason: &'static str,
    requested_min_ago: i64,
    steps: &'static [(Step, i64)],
}

#[derive(Clone, Copy)]
enum Step {
    Accept,
    /// Scheduled (at the minute offset taken as *from now*, may be in the future).
    ScheduleAt(i64),
    Arrive,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        downward: false,
        to_outside: false,
        urgency: Urgency::Routine,
        green: None,
        diagnoses: &["I10.x00", "E11.900"],
        reason: "血压、血糖控制不佳，调整用药",
        requested_min_ago: 35,
        steps: &[],
    },
    Scenario {
        downward: false,
        to_outside: false,
        urgency: Urgency::Urgent,
        green: None,
        diagnoses: &["J44.100"],
        reason: "慢阻肺急性加重，需住院治疗",
        requested_min_ago: 70,
        steps: &[],
    },
    Scenario {
        downward: false,
        to_outside: false,
        urgency: Urgency::Routine,
        green: None,
        diagnoses: &["K80.200"],
        reason: "胆囊结石，评估手术",
        requested_min_ago: 240,
        steps: &[],
    },
    Scenario {
        downward: false,
        to_outside: false,
        urgency: Urgency::Emergency,
        green: Some(EmergencyCentre::Stroke),
        diagnoses: &["I63.900"],
        reason: "突发左侧肢体无力 1 小时，疑似急性脑梗死",
        requested_min_ago: 3,
        steps: &[],
    },
    Scenario {
        downward: false,
        to_outside: false,
        urgency: Urgency::Routine,
        green: None,
        diagnoses: &["M17.900"],
        reason: "膝关节骨性关节炎，评估关节置换",
        requested_min_ago: 300,
        steps: &[(Step::Accept, 120)],
    },
    Scenario {
        downward: false,
        to_outside: false,
        urgency: Urgency::Routine,
        green: None,
        diagnoses: &["I25.100"],
        reason: "冠心病，复查冠脉 CT",
        requested_min_ago: 1500,
        steps: &[(Step::Accept, 1300), (Step::ScheduleAt(90), 1200)],
    },
    Scenario {
        downward: false,
        to_outside: false,
        urgency: Urgency::Urgent,
        green: None,
        diagnoses: &["J18.900"],
        reason: "社区获得性肺炎，抗感染效果差",
        requested_min_ago: 400,
        steps: &[(Step::Accept, 380), (Step::ScheduleAt(45), 360)],
    },
    Scenario {
        downward: false,
        to_outside: false,
        urgency: Urgency::Urgent,
        green: None,
        diagnoses: &["I50.900"],
        reason: "心力衰竭加重",
        requested_min_ago: 600,
        steps: &[(Step::Accept, 560), (Step::ScheduleAt(-60), 540), (Step::Arrive, 20)],
    },
    Scenario {
        downward: true,
        to_outside: false,
        urgency: Urgency::Routine,
        green: None,
        diagnoses: &["I10.x00"],
        reason: "高血压病住院治疗后病情稳定，转回社区管理",
        requested_min_ago: 50,
        steps: &[],
    },
    Scenario {
        downward: true,
        to_outside: false,
        urgency: Urgency::Routine,
        green: None,
        diagnoses: &["I63.900", "I10.x00"],
        reason: "脑梗死恢复期，转回基层康复",
        requested_min_ago: 3 * 1440,
        steps: &[(Step::Accept, 2 * 1440 + 600)],
    },
    Scenario {
        downward: false,
        to_outside: true,
        urgency: Urgency::Routine,
        green: None,
        diagnoses: &["C34.900"],
        reason: "肺部占位，需上级医院明确诊断并治疗",
        requested_min_ago: 1440,
        steps: &[(Step::Accept, 900)],
    },
];

/// The live referrals, as of `now`. Empty when the county lacks a county hospital or a
/// township centre (a tiny test county).
pub fn live_referrals(county: &County, now: OffsetDateTime) -> Vec<GeneratedReferral> {
    let find = |tier: Tier| county.community_facilities().find(|f| f.tier == tier);
    let (Some(hospital), Some(township)) = (find(Tier::County), find(Tier::Township)) else {
        return Vec::new();
    };
    let Some(outside) = county.facilities.iter().find(|f| f.region_code.starts_with("50")) else {
        return Vec::new();
    };
    let township_index = county.facilities.iter().position(|f| f.id == township.id);
    let patients: Vec<_> = county
        .residents
        .iter()
        .filter(|r| Some(r.township) == township_index && r.patient.age_on(now.date()) >= 40)
        .take(SCENARIOS.len())
        .collect();
    let mut out = Vec::new();
    for (s, resident) in SCENARIOS.iter().zip(patients) {
        let (from, to) = match (s.downward, s.to_outside) {
            (true, _) => (hospital, township),
            (false, true) => (township, outside),
            (false, false) => (township, hospital),
        };
        if let Some(g) = scenario(s, resident, from, to, now) {
            out.push(g);
        }
    }
    out
}

fn scenario(
    s: &Scenario,
    resident: &crate::Resident,
    from: &Facility,
    to: &Facility,
    now: OffsetDateTime,
) -> Option<GeneratedReferral> {
    let home = resident.enrolment.insured_region.clone();
    let input = NewReferral {
        patient_id: resident.patient.id,
        from_facility_id: Some(from.id),
        from_department: Some(if s.downward { "心血管内科" } else { "全科医疗科" }.into()),
        to_facility_id: to.id,
        to_department: None,
        urgency: s.urgency,
        green_channel: s.green,
        reason: s.reason.into(),
        diagnoses: s.diagnoses.iter().map(|d| (*d).to_owned()).collect(),
        clinical_summary: format!("{}。", s.reason),
        discharge_summary: s.downward.then(|| "住院治疗后病情稳定，准予出院，转回基层继续管理。".to_owned()),
        follow_up_plan: if s.downward {
            vec![
                FollowUpItem { what: "上门随访，测血压、查看用药".into(), due_in_days: 1 },
                FollowUpItem { what: "门诊复查，评估康复情况".into(), due_in_days: 3 },
                FollowUpItem { what: "复查血脂、肾功能".into(), due_in_days: 30 },
            ]
        } else {
            Vec::new()
        },
        encounter_ids: Vec::new(),
    };
    let requested = now - Duration::minutes(s.requested_min_ago);
    let first = referral::request(
        input,
        Uuid::now_v7(),
        resident.patient.region_key.clone(),
        staff_user_id(from.id),
        from,
        to,
        &home,
        requested,
    )
    .ok()?;
    let mut g = GeneratedReferral {
        referral: first.referral.clone(),
        events: vec![first.event],
        follow_ups: Vec::new(),
        filings: Vec::new(),
    };
    if s.green.is_some() {
        let fmc = requested - Duration::minutes(25);
        push(
            &mut g,
            Command::RecordTimepoint { timepoint: Timepoint::FirstMedicalContact, at: fmc },
            Party::Sender,
            requested,
            from,
            to,
            &home,
        )?;
    }
    for (step, min_ago) in s.steps {
        let at = now - Duration::minutes(*min_ago);
        let cmd = match step {
            Step::Accept => Command::Accept { note: None },
            Step::ScheduleAt(from_now) => Command::Schedule {
                at: now + Duration::minutes(*from_now),
                department: Some("门诊".into()),
                note: None,
            },
            Step::Arrive => Command::Arrive,
        };
        push(&mut g, cmd, Party::Receiver, at, from, to, &home)?;
    }
    Some(g)
}

fn push(
    g: &mut GeneratedReferral,
    cmd: Command,
    party: Party,
    at: OffsetDateTime,
    from: &Facility,
    to: &Facility,
    home: &str,
) -> Option<()> {
    let acting = if party == Party::Sender { from } else { to };
    let ctx = Context {
        now: at,
        party,
        user_id: Some(staff_user_id(acting.id)),
        sender: from,
        receiver: to,
        new_receiver: None,
        home_region: home,
        new_id: Uuid::now_v7,
    };
    let Change { referral, event, follow_ups, filing, .. } = referral::apply(&g.referral, &cmd, ctx).ok()?;
    g.referral = referral;
    g.events.push(event);
    g.follow_ups.extend(follow_ups);
    g.filings.extend(filing);
    Some(())
}
