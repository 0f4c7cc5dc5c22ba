"""The hand-written SQL lower bound of the engine benchmark (``benchmarks/engine.py``).

The same audiences as the generated campaigns (``benchmarks.generate.CAMPAIGNS``), written by
hand, one ``INSERT … SELECT … ON CONFLICT DO NOTHING`` per campaign *across all practices at
once* (in campaign order, each seeing the enrollments of the ones before, as the engine's
``exclude_recent_days`` does), then step 1 of every new enrollment as outbound messages (merge
fields rendered with ``replace``, skipped recipients, one message per address per campaign and
day, tracked and unsubscribe links; the STOP footer is decided at send time, outside the
tick), their events, the enrollments moved on, and the dispatcher's claim
(at most ``SEND_RATE_PER_PRACTICE_PER_MINUTE`` per practice). What PostgreSQL itself needs for
the work of a full tick, with no ORM, no Python per row and no per-practice statement.
"""

# The statements are assembled from constants of this module (campaign names, lookup names):
# no input is formatted into them.
# ruff: noqa: S608

from __future__ import annotations

VISIT = "('checked_in', 'completed')"
CANCELLED = "('cancelled', 'rescheduled')"
UPCOMING = "('scheduled', 'confirmed')"

CAMPAIGN = """
WITH c AS (
    SELECT c.id, c.practice_id, (%(now)s::timestamptz AT TIME ZONE pr.time_zone)::date AS today
    FROM campaigns_campaign c JOIN trackstat_practice pr ON pr.id = c.practice_id
    WHERE c.enabled AND c.name = %(name)s
)
"""


def _lookup(kind: str, names: list[str], practice: str = "c.practice_id") -> str:
    quoted = ", ".join("'" + n.replace("'", "''") + "'" for n in names)
    return (
        f"(SELECT l.id FROM patients_lookup l WHERE l.practice_id = {practice} "
        f"AND l.kind = '{kind}' AND l.name IN ({quoted}))"
    )


def _tagged(names: list[str]) -> str:
    quoted = ", ".join(f"'{n}'" for n in names)
    return (
        "EXISTS (SELECT 1 FROM patients_patienttag pt JOIN patients_tag t ON t.id = pt.tag_id "
        f"WHERE pt.patient_id = p.id AND t.name IN ({quoted}))"
    )


NO_FUTURE = (
    "NOT EXISTS (SELECT 1 FROM patients_appointment f WHERE f.patient_id = p.id "
    f"AND f.start > %(now)s AND f.status IN {UPCOMING})"
)


def _latest_on(day: str, statuses: str, *, until_now: bool, extra_join: str = "") -> str:
    """Per (patient, case) group, its latest appointment with ``statuses`` when that falls on
    local date ``day``: the day's latest of the group with no later one."""
    until = "AND a.start <= %(now)s" if until_now else ""
    later_until = "AND l.start <= %(now)s" if until_now else ""
    return f"""
    SELECT * FROM (
        SELECT DISTINCT ON (a.patient_id, coalesce(a.case_id, 0))
               c.id AS cid, c.practice_id, a.patient_id, a.id, a.start, a.case_id, a.purpose_id
        FROM c JOIN patients_appointment a
             ON a.practice_id = c.practice_id AND a.local_date = {day}
        {extra_join}
        WHERE a.status IN {statuses} {until}
        ORDER BY a.patient_id, coalesce(a.case_id, 0), a.start DESC, a.id DESC
    ) y
    WHERE NOT EXISTS (
        SELECT 1 FROM patients_appointment l
        WHERE l.patient_id = y.patient_id AND coalesce(l.case_id, 0) = coalesce(y.case_id, 0)
          AND l.status IN {statuses} AND (l.start, l.id) > (y.start, y.id) {later_until})
    """


def _newest(latest: str, conditions: str) -> str:
    return f"""
    SELECT DISTINCT ON (y.patient_id) y.cid, y.practice_id, y.patient_id,
           'appointment:' || y.id, y.id
    FROM ({latest}) y JOIN patients_patient p ON p.id = y.patient_id
    WHERE {conditions}
    ORDER BY y.patient_id, y.start DESC, y.id DESC
    """


AUDIENCES: dict[str, str] = {
    "Happy birthday": f"""
        SELECT c.id, c.practice_id, p.id, 'birthday:' || extract(year FROM c.today)::int,
               NULL::bigint
        FROM c JOIN patients_patient p ON p.practice_id = c.practice_id
             AND p.birth_month = extract(month FROM c.today)
             AND p.birth_day = extract(day FROM c.today)
        WHERE p.status = 'active' AND NOT {_tagged(["moved"])}
    """,
    "New-patient welcome series": f"""
        SELECT c.id, c.practice_id, p.id, 'first_visit', NULL::bigint
        FROM c JOIN patients_patient p ON p.practice_id = c.practice_id
             AND p.first_visit_date = c.today
        WHERE p.referral_source_id IN
              {_lookup("referral_source", ["Google", "Friend", "Doctor referral"])}
    """,
    "First-visit anniversary": f"""
        SELECT c.id, c.practice_id, p.id, 'anniversary:' || extract(year FROM c.today)::int,
               NULL::bigint
        FROM c JOIN patients_patient p ON p.practice_id = c.practice_id
             AND p.first_visit_month = extract(month FROM c.today)
             AND p.first_visit_day = extract(day FROM c.today)
        WHERE p.first_visit_date < date_trunc('year', c.today)::date
          AND p.status = 'active'
          AND p.birth_date <= (c.today - interval '18 years')::date
          AND p.care_package_id IN {_lookup("care_package", ["Wellness plan"])}
    """,
    "Post-visit check-in (same day)": f"""
        SELECT DISTINCT ON (v.patient_id) v.cid, v.practice_id, v.patient_id,
               'appointment:' || v.id, v.id
        FROM (
            SELECT DISTINCT ON (a.patient_id, coalesce(a.case_id, 0))
                   c.id AS cid, c.practice_id, a.patient_id, a.id, a.start,
                   coalesce(a.checked_in_at, a.start) AS arrived
            FROM c JOIN patients_appointment a
                 ON a.practice_id = c.practice_id AND a.local_date = c.today
            WHERE a.status IN {VISIT} AND a.start <= %(now)s
            ORDER BY a.patient_id, coalesce(a.case_id, 0), a.start DESC, a.id DESC
        ) v
        WHERE v.arrived <= %(now)s - interval '2 hours'
          AND EXISTS (
              SELECT 1 FROM patients_appointmentservice s
              JOIN patients_appointment a2 ON a2.id = s.appointment_id
              JOIN patients_lookup l ON l.id = s.service_id
              WHERE a2.patient_id = v.patient_id AND l.name IN ('98940', '98941'))
        ORDER BY v.patient_id, v.start DESC, v.id DESC
    """,
    "Missed-appointment follow-up": f"""
        SELECT DISTINCT ON (a.patient_id) c.id, c.practice_id, a.patient_id,
               'appointment:' || a.id, a.id
        FROM c JOIN patients_appointment a
             ON a.practice_id = c.practice_id AND a.local_date = c.today
        JOIN patients_patient p ON p.id = a.patient_id
        WHERE a.start <= %(now)s - interval '30 minutes'
          AND a.status NOT IN ('checked_in', 'completed', 'cancelled', 'rescheduled')
          AND {NO_FUTURE}
        ORDER BY a.patient_id, a.start, a.id
    """,
    "Next-morning soreness check": _newest(
        _latest_on("c.today - 1", VISIT, until_now=True),
        "p.visit_count >= 2 AND p.sex IN ('F', 'M') AND p.primary_provider_id IN "
        + _lookup("provider", ["Dr. Rivera", "Dr. Chen", "Dr. Patel"], "p.practice_id"),
    ),
    "Reactivation 6 months": _newest(
        _latest_on(
            "c.today - 180",
            VISIT,
            until_now=True,
            extra_join="JOIN patients_case pc ON pc.id = a.case_id AND pc.case_type_id IN "
            + _lookup("case_type", ["Personal Injury", "Wellness"]),
        ),
        f"NOT {_tagged(['not qualified', 'moved'])} AND p.status = 'active' AND {NO_FUTURE} "
        # exclude_recent_days 30: messages of other drips sent or on their way, and (within
        # the tick) enrollments of other drips whose first message is not made yet.
        "AND NOT EXISTS (SELECT 1 FROM messaging_outboundmessage m "
        "JOIN campaigns_campaign mc ON mc.id = m.campaign_id WHERE m.patient_id = p.id "
        "AND m.practice_id = p.practice_id AND m.enrollment_id IS NOT NULL AND NOT m.is_test "
        "AND mc.kind = 'drip' AND m.campaign_id <> y.cid "
        "AND ((m.status IN ('sent', 'delivered', 'undelivered', 'opened', 'clicked', 'bounced', "
        "'spam') AND m.sent_at >= %(now)s - interval '30 days') "
        "OR (m.status IN ('queued', 'sending', 'unknown') "
        "AND m.scheduled_for >= %(now)s - interval '30 days'))) "
        "AND NOT EXISTS (SELECT 1 FROM campaigns_enrollment pe "
        "JOIN campaigns_campaign pc ON pc.id = pe.campaign_id WHERE pe.patient_id = p.id "
        "AND pe.practice_id = p.practice_id AND pc.kind = 'drip' AND pe.campaign_id <> y.cid "
        "AND pe.state = 'active' AND pe.steps_done = 0 "
        "AND pe.entered_at >= %(now)s - interval '30 days')",
    ),
    "No-conversion": _newest(
        _latest_on(
            "c.today - 30",
            "('scheduled', 'confirmed', 'checked_in', 'completed', 'no_show')",
            until_now=False,
        ),
        "y.purpose_id IN "
        + _lookup("purpose", ["New Patient Exam"], "p.practice_id")
        + f" AND {NO_FUTURE} AND p.paid_total <= 1000",
    ),
    "Appointment reminder": f"""
        SELECT DISTINCT ON (a.patient_id) c.id, c.practice_id, a.patient_id,
               'appointment:' || a.id || '@'
               || to_char(a.start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), a.id
        FROM c JOIN patients_appointment a
             ON a.practice_id = c.practice_id AND a.local_date = c.today + 1
        WHERE a.status IN {UPCOMING} AND a.start > %(now)s
          AND a.provider_id IN {_lookup("provider", ["Dr. Rivera", "Dr. Chen", "Dr. Patel"])}
        ORDER BY a.patient_id, a.start, a.id
    """,
    # The patients passing the (selective) filters first, then their visits.
    "Lapsed injury cases": f"""
        WITH p AS MATERIALIZED (
            SELECT c.id AS cid, c.practice_id, c.today, p.id
            FROM c JOIN patients_patient p ON p.practice_id = c.practice_id
            WHERE (p.attorney_id IN {_lookup("attorney", ["Hale & Ward", "Stone Law"])}
                   OR EXISTS (SELECT 1 FROM patients_case k WHERE k.patient_id = p.id
                              AND k.attorney_id IN
                              {_lookup("attorney", ["Hale & Ward", "Stone Law"])}))
              AND EXISTS (SELECT 1 FROM patients_casediagnosis cd
                          JOIN patients_case k ON k.id = cd.case_id
                          WHERE k.patient_id = p.id AND cd.diagnosis_id IN
                          {_lookup("diagnosis", ["M54.2", "S13.4XXA"])})
              AND (p.insurance_company_id IN
                   {_lookup("insurance_company", ["Acme Health", "BlueSky PPO"])}
                   OR EXISTS (SELECT 1 FROM patients_case k WHERE k.patient_id = p.id
                              AND k.insurance_company_id IN
                              {_lookup("insurance_company", ["Acme Health", "BlueSky PPO"])}))
              AND p.fee_schedule_id IN {_lookup("fee_schedule", ["PI lien", "Standard"])}
              AND lower(p.state) IN ('ny', 'il', 'co', 'wa', 'tx', 'ma', 'az', 'ca')
        )
        SELECT DISTINCT ON (v.patient_id) v.cid, v.practice_id, v.patient_id,
               'appointment:' || v.id, v.id
        FROM (
            SELECT DISTINCT ON (a.patient_id, coalesce(a.case_id, 0))
                   p.cid, p.practice_id, a.patient_id, a.id, a.start, a.local_date, p.today
            FROM p JOIN patients_appointment a ON a.patient_id = p.id
            WHERE a.status IN {VISIT} AND a.start <= %(now)s
            ORDER BY a.patient_id, coalesce(a.case_id, 0), a.start DESC, a.id DESC
        ) v
        WHERE v.local_date <= v.today - 365
        ORDER BY v.patient_id, v.start DESC, v.id DESC
    """,
}

SCHEDULED_RUNS = """
INSERT INTO campaigns_campaignrun (practice_id, campaign_id, local_date, ran_at, enrolled)
SELECT c.practice_id, c.id, (%(now)s::timestamptz AT TIME ZONE pr.time_zone)::date, %(now)s, 0
FROM campaigns_campaign c JOIN trackstat_practice pr ON pr.id = c.practice_id
WHERE c.enabled AND c.kind = 'drip' AND c.name = ANY(%(scheduled)s)
"""

ENROLL = """
INSERT INTO campaigns_enrollment (practice_id, campaign_id, patient_id, occurrence_key,
    appointment_id, entered_at, state, steps_done, next_step_at, exit_reason, report_pending)
SELECT a.practice_id, a.cid, a.patient_id, a.occurrence_key, a.appointment_id, %(now)s,
       'active', 0, %(now)s, '', false
FROM ({audience}) AS a (cid, practice_id, patient_id, occurrence_key, appointment_id)
WHERE NOT EXISTS (
    SELECT 1 FROM patients_patient d WHERE d.id = a.patient_id AND d.status = 'deceased')
ON CONFLICT (campaign_id, patient_id, occurrence_key) DO NOTHING
"""

# Step 1 of every enrollment made now: addresses, skips, one message per address per
# campaign and day, merge fields, tracked and unsubscribe link tokens.
MESSAGES = """
CREATE TEMP TABLE new_messages ON COMMIT DROP AS
WITH e AS (
    SELECT e.id, e.practice_id, e.campaign_id, e.patient_id, e.appointment_id,
           s.channel, s.subject, s.body, pr.time_zone, pr.name AS practice_name, pr.phone,
           pr.online_scheduling_url, p.first_name, p.last_name,
           CASE WHEN s.channel = 'sms' THEN
                CASE WHEN p.sms_opt_out THEN '' ELSE p.phone END
                ELSE CASE WHEN p.email_opt_out THEN '' ELSE p.email END END AS address,
           CASE WHEN s.channel = 'sms' THEN
                CASE WHEN p.sms_opt_out THEN 'opted out of text messages'
                     WHEN p.phone = '' THEN 'no mobile phone' ELSE '' END
                ELSE CASE WHEN p.email_opt_out THEN 'opted out of email'
                     WHEN p.email = '' THEN 'no email address' ELSE '' END END AS reason,
           (%(now)s::timestamptz AT TIME ZONE pr.time_zone)::date AS local_day,
           a.start, coalesce(ap.name, pp.name, '') AS provider,
           substr(md5(e.id::text || 'l'), 1, 12) AS link_token,
           substr(md5(e.id::text || 'u'), 1, 22) AS unsubscribe_token,
           c.trigger->>'type' = 'missed_appointment'
             OR (c.trigger->>'type' = 'last_visit_checked_in' AND c.trigger->>'when' = 'today')
             AS continuous
    FROM campaigns_enrollment e
    JOIN campaigns_campaign c ON c.id = e.campaign_id
    JOIN campaigns_messagestep s ON s.campaign_id = e.campaign_id AND s.position = 1
    JOIN patients_patient p ON p.id = e.patient_id
    JOIN trackstat_practice pr ON pr.id = e.practice_id
    LEFT JOIN patients_appointment a ON a.id = e.appointment_id
    LEFT JOIN patients_lookup ap ON ap.id = a.provider_id
    LEFT JOIN patients_lookup pp ON pp.id = p.primary_provider_id
    WHERE e.entered_at = %(now)s AND e.steps_done = 0 AND e.state = 'active'
), keyed AS (
    SELECT e.*, CASE WHEN e.channel = 'email' THEN lower(e.address) ELSE e.address END
                AS address_key
    FROM e
), ranked AS (
    SELECT k.*,
           row_number() OVER (PARTITION BY campaign_id, channel, address_key ORDER BY id)
           + CASE WHEN EXISTS (SELECT 1 FROM messaging_outboundmessage o
                               WHERE o.campaign_id = k.campaign_id AND o.channel = k.channel
                               AND o.address_key = k.address_key AND o.local_day = k.local_day
                               AND o.status NOT IN ('skipped', 'canceled', 'expired'))
                  THEN 1 ELSE 0 END AS nth
    FROM keyed k
)
SELECT r.id AS enrollment_id, r.practice_id, r.campaign_id, r.patient_id, r.channel,
       r.continuous, r.time_zone, r.link_token, r.unsubscribe_token,
       r.online_scheduling_url,
       CASE WHEN r.reason <> '' THEN '' WHEN r.nth > 1 THEN '' ELSE r.address END AS "to",
       CASE WHEN r.reason <> '' THEN r.reason
            WHEN r.nth > 1 THEN 'shared_address'
            ELSE '' END AS reason,
       CASE WHEN r.reason = '' THEN r.address_key ELSE '' END AS address_key,
       CASE WHEN r.reason = '' THEN r.local_day END AS local_day,
       replace(replace(r.subject, '{{PatientFirstName}}', r.first_name),
               '{{PracticeName}}', r.practice_name) AS subject,
       replace(replace(replace(replace(replace(replace(replace(replace(r.body,
           '{{PatientFirstName}}', r.first_name),
           '{{PracticeName}}', r.practice_name),
           '{{PracticePhone}}', r.phone),
           '{{ProviderName}}', r.provider),
           '{{AppointmentDate}}',
           coalesce(to_char(r.start AT TIME ZONE r.time_zone, 'FMDay, FMMonth FMDD'), '')),
           '{{AppointmentTime}}',
           coalesce(to_char(r.start AT TIME ZONE r.time_zone, 'FMHH12:MI AM'), '')),
           '{{OnlineSchedulingLink}}', 'https://trackstat.test/l/' || r.link_token),
           '{{UnsubscribeLink}}', 'https://trackstat.test/unsubscribe/' || r.unsubscribe_token)
           AS body,
       r.body LIKE '%%{{OnlineSchedulingLink}}%%' AS has_link
FROM ranked r
"""

INSERT_MESSAGES = """
WITH inserted AS (
    INSERT INTO messaging_outboundmessage (practice_id, enrollment_id, campaign_id,
        step_position, patient_id, channel, "to", subject, body, status, status_reason,
        scheduled_for, expires_at, attempts, provider, provider_id, error_code, is_test,
        created_at, updated_at, report_pending, report_flags, address_key, local_day)
    SELECT n.practice_id, n.enrollment_id, n.campaign_id, 1, n.patient_id, n.channel, n."to",
           n.subject, n.body, CASE WHEN n."to" <> '' THEN 'queued' ELSE 'skipped' END,
           n.reason, %(now)s,
           CASE WHEN n.continuous THEN
                (((%(now)s::timestamptz AT TIME ZONE n.time_zone)::date + 1)::timestamp
                 AT TIME ZONE n.time_zone) END,
           0, '', '', '', false, %(now)s, %(now)s, true, 0, n.address_key, n.local_day
    FROM new_messages n
    RETURNING id, practice_id, enrollment_id, status, status_reason, channel
), events AS (
    INSERT INTO messaging_messageevent (practice_id, message_id, status, reason, at, source)
    SELECT practice_id, id, status, status_reason, %(now)s, 'engine' FROM inserted
), links AS (
    INSERT INTO messaging_trackedlink (practice_id, message_id, token, url, click_count)
    SELECT i.practice_id, i.id, n.link_token, n.online_scheduling_url, 0
    FROM inserted i JOIN new_messages n ON n.enrollment_id = i.enrollment_id
    WHERE n.has_link AND i.status = 'queued'
), unsubscribes AS (
    INSERT INTO messaging_unsubscribetoken (practice_id, message_id, token)
    SELECT i.practice_id, i.id, n.unsubscribe_token
    FROM inserted i JOIN new_messages n ON n.enrollment_id = i.enrollment_id
    WHERE i.channel = 'email' AND i.status = 'queued'
)
SELECT count(*) FROM inserted
"""

ENROLLMENTS_ADVANCE = """
UPDATE campaigns_enrollment e
SET steps_done = 1,
    state = CASE WHEN s2.id IS NULL THEN 'completed' ELSE 'active' END,
    next_step_at = CASE WHEN s2.id IS NULL THEN NULL
        ELSE ((((%(now)s::timestamptz AT TIME ZONE pr.time_zone)::date + s2.delay_value)
               + (c.schedule->>'time')::time) AT TIME ZONE pr.time_zone) END
FROM campaigns_campaign c
JOIN trackstat_practice pr ON pr.id = c.practice_id
LEFT JOIN campaigns_messagestep s2 ON s2.campaign_id = c.id AND s2.position = 2
WHERE c.id = e.campaign_id AND e.entered_at = %(now)s AND e.steps_done = 0
"""

CLAIM = """
WITH due AS (
    SELECT id, practice_id FROM (
        SELECT m.id, m.practice_id,
               row_number() OVER (PARTITION BY m.practice_id ORDER BY m.scheduled_for, m.id) AS n
        FROM messaging_outboundmessage m
        WHERE m.status = 'queued' AND m.scheduled_for <= %(now)s
          AND (m.expires_at IS NULL OR m.expires_at > %(now)s)
    ) ranked WHERE n <= %(rate)s
), claimed AS (
    UPDATE messaging_outboundmessage m
    SET status = 'sending', claimed_until = %(now)s + interval '5 minutes',
        attempts = m.attempts + 1
    FROM due WHERE m.id = due.id
    RETURNING m.id, m.practice_id
)
INSERT INTO messaging_messageevent (practice_id, message_id, status, reason, at, source)
SELECT practice_id, id, 'sending', '', %(now)s, 'engine' FROM claimed
"""


def lower_bound(cursor, *, now, scheduled: list[str], rate: int) -> dict:
    """Run the hand-written statements (the caller times them and rolls back); return the
    enrollments per campaign name and the messages made and claimed."""
    params = {"now": now, "scheduled": scheduled, "rate": rate}
    cursor.execute(SCHEDULED_RUNS, params)
    enrolled = {}
    for name, audience in AUDIENCES.items():
        cursor.execute(CAMPAIGN + ENROLL.format(audience=audience), {**params, "name": name})
        enrolled[name] = cursor.rowcount
    cursor.execute(MESSAGES, params)
    cursor.execute(INSERT_MESSAGES, params)
    messages = cursor.fetchone()[0]
    cursor.execute(ENROLLMENTS_ADVANCE, params)
    cursor.execute(CLAIM, params)
    return {"enrolled": enrolled, "messages": messages, "claimed": cursor.rowcount}
