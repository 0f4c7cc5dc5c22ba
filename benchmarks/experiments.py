"""Benchmark: the experiment report of a campaign with 1,000,000 messages, a 10% holdout and
two variants (issue 19; target < 300 ms).

One practice's reactivation campaign (text, email, text; steps 1 and 3 in variants A and B)
entered over a year: patients by bulk insert, then enrollments with their arm (10% held out,
the rest split A/B), the treated enrollments' messages (variant steps carrying their variant)
and appointments booked and visited after entering (more often for the treated), all
``INSERT … SELECT`` from ``generate_series``. The report roll-up then counts everything,
experiment enrollments into their arms with their outcomes (its time is reported), and the
report is read three ways, each 20 times after a warm-up: the selector in process, the
Report tab and the API endpoint through gunicorn over HTTP, for the whole year and the last
30 days.

    uv run python -m benchmarks.experiments [--size small|full]
"""

from __future__ import annotations

import datetime as dt

from benchmarks.common import (
    RUNS,
    Section,
    cli,
    database_url_for,
    recreate_database,
    report_timing_lines,
    report_timing_results,
    report_timings,
    setup_django,
    timed,
)

SIZES = {"small": 100_000, "full": 1_000_000}
TARGET_MS = 300
STEPS = 3
HOLDOUT_PERCENT = 10
FIRST_DAY = dt.date(2025, 11, 1)
DAYS = 365


def populate(messages: int) -> tuple[int, int]:
    """The practice and campaign; returns (campaign id, practice id)."""
    from django.db import connection, transaction

    from campaigns.models import Campaign, CampaignKind, ExperimentPeriod, MessageStep
    from patients.models import Patient
    from trackstat.services import practice_create

    practice, _ = practice_create(name="Experiment bench", time_zone="America/Chicago")
    campaign = Campaign.objects.create(
        practice=practice,
        name="Reactivation A/B",
        kind=CampaignKind.DRIP,
        enabled=True,
        trigger={"type": "last_visit_checked_in", "when": "days_ago", "days": 180},
        holdout_percent=HOLDOUT_PERCENT,
        attribution_days=30,
    )
    variants = [{"name": "A", "weight": 50}, {"name": "B", "weight": 50}]
    for position, channel in ((1, "sms"), (2, "email"), (3, "sms")):
        MessageStep.objects.create(
            practice=practice,
            campaign=campaign,
            position=position,
            channel=channel,
            subject="We miss you" if channel == "email" else "",
            body="Come back soon",
            variants=[]
            if position == 2
            else [{**v, "subject": "", "body": f"Variant {v['name']}"} for v in variants],
        )
    ExperimentPeriod.objects.create(
        practice=practice,
        campaign=campaign,
        number=1,
        started_at=dt.datetime.combine(FIRST_DAY, dt.time(0), tzinfo=dt.UTC),
        holdout_percent=HOLDOUT_PERCENT,
        variants=variants,
    )
    # Treated enrollments send 3 messages each; the held-out send none.
    enrollments = round(messages / (STEPS * (1 - HOLDOUT_PERCENT / 100)))
    patients = max(enrollments // 4, 1)
    Patient.objects.bulk_create(
        (
            Patient(
                practice=practice,
                external_id=f"P{n:07d}",
                first_name="Pat",
                last_name=f"N{n}",
                phone=f"+1312{n:07d}",
                email=f"p{n}@example.test",
                paid_total=100,
            )
            for n in range(patients)
        ),
        batch_size=5000,
    )
    with transaction.atomic(), connection.cursor() as cursor:
        params = {
            "practice": practice.pk,
            "campaign": campaign.pk,
            "enrollments": enrollments,
            "first": dt.datetime.combine(FIRST_DAY, dt.time(15), tzinfo=dt.UTC),
            "days": DAYS,
        }
        cursor.execute(
            "SELECT min(id), max(id), count(*) FROM patients_patient "
            "WHERE practice_id = %(practice)s",
            params,
        )
        first_id, last_id, count = cursor.fetchone()
        if last_id - first_id + 1 != count:
            raise RuntimeError("the benchmark's patients do not have consecutive ids")
        params["first_patient"], params["patients"] = first_id, count
        # Enrollment n: patient n mod P, entering on day (n * 7919) mod 365; every tenth held
        # out, the others A or B.
        cursor.execute(
            """
            INSERT INTO campaigns_enrollment (practice_id, campaign_id, patient_id,
                occurrence_key, entered_at, state, steps_done, exit_reason, report_pending,
                arm, experiment_period, paid_total_at_entry)
            SELECT %(practice)s, %(campaign)s, %(first_patient)s + g.n %% %(patients)s,
                'occurrence-' || g.n,
                %(first)s + ((g.n::bigint * 7919) %% %(days)s) * interval '1 day',
                'completed', 3, '', true,
                CASE WHEN g.n %% 10 = 0 THEN 'holdout' WHEN g.n %% 2 = 1 THEN 'A' ELSE 'B' END,
                1, 100
            FROM generate_series(0, %(enrollments)s - 1) AS g(n)
            """,
            params,
        )
        # Messages of the treated: step s goes out s - 1 days after entering; most delivered,
        # some clicked, a few failed or skipped.
        cursor.execute(
            """
            INSERT INTO messaging_outboundmessage (practice_id, enrollment_id, campaign_id,
                step_position, patient_id, channel, "to", subject, body, status,
                status_reason, variant, scheduled_for, attempts, provider, provider_id,
                error_code, is_test, sent_at, report_pending, report_flags, address_key,
                created_at, updated_at)
            SELECT e.practice_id, e.id, e.campaign_id, s.step, e.patient_id,
                CASE WHEN s.step = 2 THEN 'email' ELSE 'sms' END,
                'masked', '', 'Come back soon',
                CASE WHEN m.r < 3 THEN 'skipped' WHEN m.r < 5 THEN 'failed'
                    WHEN m.r BETWEEN 20 AND 27 THEN 'clicked' ELSE 'delivered' END,
                CASE WHEN m.r < 3 THEN 'no mobile phone' WHEN m.r < 5 THEN 'provider error'
                    ELSE '' END,
                CASE WHEN s.step <> 2 THEN e.arm END,
                m.due, 1, 'twilio',
                CASE WHEN m.r >= 5 THEN 'SM' || e.id || '-' || s.step ELSE '' END,
                '', false, CASE WHEN m.r >= 5 THEN m.due END, true, 0, '', m.due, m.due
            FROM campaigns_enrollment e
            CROSS JOIN generate_series(1, 3) AS s(step)
            CROSS JOIN LATERAL (
                SELECT ((e.id * 31 + s.step * 17) %% 100) AS r,
                    e.entered_at + (s.step - 1) * interval '1 day' AS due
            ) AS m
            WHERE e.campaign_id = %(campaign)s AND e.arm <> 'holdout'
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO messaging_messageevent (practice_id, message_id, status, reason, at,
                source)
            SELECT practice_id, id, status, status_reason, scheduled_for, 'provider'
            FROM messaging_outboundmessage WHERE campaign_id = %(campaign)s
            """,
            params,
        )
        # Outcomes: an appointment booked 5 days after entering for 18% of the held out and
        # 22% (A) or 25% (B) of the treated; checked in 12 days after entering for most.
        cursor.execute(
            """
            INSERT INTO patients_appointment (practice_id, external_id, patient_id, start,
                local_date, duration_minutes, status, checked_in_at, booked_at, created_at,
                updated_at)
            SELECT e.practice_id, 'A' || e.id, e.patient_id,
                e.entered_at + interval '12 days',
                (e.entered_at + interval '12 days')::date, 30,
                CASE WHEN (e.id * 7) %% 10 < 7 THEN 'completed' ELSE 'scheduled' END,
                CASE WHEN (e.id * 7) %% 10 < 7 THEN e.entered_at + interval '12 days' END,
                e.entered_at + interval '5 days', now(), now()
            FROM campaigns_enrollment e
            WHERE e.campaign_id = %(campaign)s AND (e.id * 13) %% 100 <
                CASE e.arm WHEN 'holdout' THEN 18 WHEN 'A' THEN 22 ELSE 25 END
            """,
            params,
        )
    return campaign.pk, practice.pk


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in (
            "messaging_outboundmessage",
            "messaging_messageevent",
            "campaigns_enrollment",
            "patients_appointment",
            "reports_campaigndaystat",
            "reports_skipdaystat",
            "reports_recipientday",
            "reports_armdaystat",
            "reports_enrollmentoutcome",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")


def bench(size: str) -> Section:
    target_messages = SIZES[size]
    url = database_url_for("experiments")
    recreate_database(url)
    setup_django(url)
    from campaigns.models import Campaign
    from messaging.models import OutboundMessage
    from reports.rollup import rollups_refresh
    from reports.selectors import campaign_report

    populate_s, (campaign_id, _) = timed(populate, target_messages)
    messages = OutboundMessage.objects.filter(campaign_id=campaign_id).count()
    print(f"populated {messages:,} messages in {populate_s:.1f} s", flush=True)
    rollup_s, counted = timed(rollups_refresh)
    print(f"rolled up {counted:,} in {rollup_s:.1f} s", flush=True)
    vacuum()
    campaign = Campaign.objects.select_related("practice").get(pk=campaign_id)
    last_day = FIRST_DAY + dt.timedelta(days=DAYS + 2)
    ranges = {
        "whole year": (FIRST_DAY, last_day),
        "last 30 days": (last_day - dt.timedelta(days=29), last_day),
    }
    year = campaign_report(campaign, date_from=FIRST_DAY, date_to=last_day)
    rows = report_timings(
        url, campaign, ranges, page_expect=b'id="experiment"', api_expect=b'"booked_rate_diff_ci95"'
    )
    section = Section(title=f"Experiment report of a campaign with {messages:,} messages")
    arms = ", ".join(
        f"{arm.label}: {arm.enrolled:,} entered, {arm.booked_rate_text} booked"
        + (f" ({arm.booked_diff_text} vs control)" if arm.arm != "holdout" else "")
        for arm in year.arms
    )
    section.lines += [
        f"One campaign (3 steps, steps 1 and 3 in variants A and B, {HOLDOUT_PERCENT}% held "
        f"out) whose {messages:,} messages went out over {DAYS} days; enrollments with their "
        "arms, messages, events and appointments written set-wise, then counted by the report "
        "roll-up, which counts experiment enrollments into their arms with their outcomes "
        "(`reports.attribution`).",
        "",
        f"- Data written in {populate_s:.1f} s; the roll-up counted {counted:,} rows in "
        f"{rollup_s:.1f} s — the one-time cost of a backfill.",
        f"- Whole year, by arm: {arms}.",
        f"- Each figure: {RUNS} requests after one warm-up, "
        "one at a time; page and API through gunicorn (2 workers, DEBUG off) over HTTP.",
        "",
        *report_timing_lines(rows),
    ]
    section.results += report_timing_results(
        rows, name=f"Experiment report, {messages:,} messages", target_ms=TARGET_MS
    )
    return section


if __name__ == "__main__":
    cli(bench)
