-- Issue 4: two-way referral, green channels, follow-up tasks, insurance filings,
-- notifications and the outbox a future SMS/WeChat gateway reads.

-- where a facility is (JSON {"lat","lon"}, for travel time) and its referral deadlines (JSON)
ALTER TABLE facility ADD COLUMN location TEXT;
ALTER TABLE facility ADD COLUMN referral_policy TEXT NOT NULL DEFAULT '{}';

CREATE TABLE referral (
    region_key TEXT NOT NULL,
    id UUID NOT NULL,
    patient_id UUID NOT NULL,
    direction TEXT NOT NULL,
    reach TEXT NOT NULL,
    from_facility_id UUID NOT NULL REFERENCES facility (id),
    from_department TEXT,
    requested_by UUID NOT NULL,
    to_facility_id UUID NOT NULL REFERENCES facility (id),
    to_department TEXT,
    urgency TEXT NOT NULL,
    green_channel TEXT,
    reason TEXT NOT NULL,
    diagnoses TEXT NOT NULL,
    clinical_summary TEXT NOT NULL,
    discharge_summary TEXT,
    follow_up_plan TEXT NOT NULL,
    encounter_ids TEXT NOT NULL,
    state TEXT NOT NULL,
    version BIGINT NOT NULL,
    requested_at BIGINT NOT NULL,
    acknowledged_at BIGINT,
    due_at BIGINT,
    scheduled_at BIGINT,
    escalations BIGINT NOT NULL,
    timepoints TEXT NOT NULL,
    outcome TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (region_key, id)
);
CREATE INDEX referral_by_id ON referral (id);
-- worklists, newest first (requested_at, id): the receiver's inbox and the sender's outbox,
-- each by state and whole, the patient's timeline; id is in the keys so the order needs no
-- sort, and requested_at follows the equalities so a date range bounds the scan. The other
-- party's id comes last: the tier filter (the sender's tier in the inbox, the receiver's in
-- the outbox) is checked in the index, and a worklist's total counted from the index alone
CREATE INDEX referral_inbox ON referral (to_facility_id, state, requested_at, id, from_facility_id);
CREATE INDEX referral_inbox_all ON referral (to_facility_id, requested_at, id, from_facility_id);
CREATE INDEX referral_outbox ON referral (from_facility_id, state, requested_at, id, to_facility_id);
CREATE INDEX referral_outbox_all ON referral (from_facility_id, requested_at, id, to_facility_id);
-- the inbox's green-channel filter (a small share of all referrals, so a small index)
CREATE INDEX referral_inbox_green ON referral (to_facility_id, state, requested_at, id, from_facility_id)
    WHERE green_channel IS NOT NULL;
-- the community view: newest first over everything, filtered by the parties' community
CREATE INDEX referral_recent ON referral (requested_at, id);
CREATE INDEX referral_by_patient ON referral (patient_id, requested_at);
-- the deadline sweeper and the overdue worklist read only open referrals with a deadline
CREATE INDEX referral_due ON referral (due_at) WHERE due_at IS NOT NULL;
CREATE INDEX referral_inbox_due ON referral (to_facility_id, due_at) WHERE due_at IS NOT NULL;
CREATE INDEX referral_arriving ON referral (to_facility_id, scheduled_at) WHERE state = 'scheduled';

-- the history: one row per step; (referral, version) is unique, so two steps computed from
-- the same version cannot both be written (optimistic concurrency, enforced by the database)
CREATE TABLE referral_event (
    region_key TEXT NOT NULL,
    id UUID NOT NULL,
    referral_id UUID NOT NULL,
    version BIGINT NOT NULL,
    at BIGINT NOT NULL,
    actor_user_id UUID,
    actor_facility_id UUID,
    action TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason TEXT,
    to_facility_id UUID,
    time BIGINT,
    timepoint TEXT,
    PRIMARY KEY (region_key, id)
);
CREATE UNIQUE INDEX referral_event_version ON referral_event (region_key, referral_id, version);

CREATE TABLE follow_up_task (
    region_key TEXT NOT NULL,
    id UUID NOT NULL,
    patient_id UUID NOT NULL,
    referral_id UUID NOT NULL,
    facility_id UUID NOT NULL REFERENCES facility (id),
    what TEXT NOT NULL,
    due_date TEXT NOT NULL,
    done_at BIGINT,
    done_by UUID,
    note TEXT,
    PRIMARY KEY (region_key, id)
);
CREATE INDEX follow_up_by_id ON follow_up_task (id);
CREATE INDEX follow_up_worklist ON follow_up_task (facility_id, due_date) WHERE done_at IS NULL;
CREATE INDEX follow_up_by_referral ON follow_up_task (referral_id);

CREATE TABLE insurance_filing (
    region_key TEXT NOT NULL,
    id UUID NOT NULL,
    patient_id UUID NOT NULL,
    category TEXT NOT NULL,
    insured_region TEXT NOT NULL,
    filed_region TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    valid_to TEXT,
    referral_id UUID,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (region_key, id)
);
CREATE INDEX filing_by_patient ON insurance_filing (patient_id, valid_from);

-- in-app notifications, addressed to a facility's users; they name the referral only
CREATE TABLE notification (
    id UUID PRIMARY KEY,
    facility_id UUID NOT NULL,
    referral_id UUID NOT NULL,
    kind TEXT NOT NULL,
    action TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX notification_by_facility ON notification (facility_id, at);

-- how far each user has read their facility's notifications
CREATE TABLE notification_seen (
    user_id UUID PRIMARY KEY,
    seen_until BIGINT NOT NULL
);

-- messages for gateways outside tiercare (SMS, WeChat): written in the same transaction as
-- the change, delivered (and marked) by the gateway; no names or identity numbers inside
CREATE TABLE outbox (
    id UUID PRIMARY KEY,
    topic TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX outbox_pending ON outbox (created_at) WHERE delivered_at IS NULL;
