"""Benchmark: the report of a campaign with 1,000,000 messages (issue 7; target < 300 ms).

Builds one practice whose three-step campaign (text, email, text) sent its messages over a
year: patients via bulk inserts, then enrollments, messages and their events with
set-wise ``INSERT … SELECT`` from ``generate_series`` (statuses mixed as in life: mostly
delivered, some undelivered, failed, bounced, opened, clicked, skipped, unsubscribed; goals
met). The roll-up then counts them all (its throughput is reported), and the report is read
three ways, each 20 times after a warm-up: the selector in process, the report page and the
API endpoint through gunicorn over HTTP (2 workers, DEBUG off, a Manager's session / an API
key), for the whole year and for the last 30 days.

    uv run python -m benchmarks.report [--size small|full]
"""

from __future__ import annotations

import datetime as dt
import os

from benchmarks.common import (
    RUNS,
    Result,
    Section,
    cli,
    database_url_for,
    recreate_database,
    report_timing_lines,
    report_timing_results,
    report_timings,
    settle,
    setup_django,
    timed,
)

SIZES = {"small": 100_000, "full": 1_000_000}
TARGET_MS = 300
# Issue 20: the roll-up's backfill throughput.
ROLLUP_TARGET_ROWS_S = 20_000
STEPS = 3
FIRST_DAY = dt.date(2025, 11, 1)
DAYS = 365


def populate(messages: int) -> tuple[int, int]:
    """The practice and campaign; returns (campaign id, practice id)."""
    from django.db import connection, transaction

    from campaigns.models import Campaign, CampaignKind, MessageStep
    from patients.models import Patient
    from trackstat.services import practice_create

    practice, _ = practice_create(name="Report bench", time_zone="America/Chicago")
    campaign = Campaign.objects.create(
        practice=practice,
        name="Appointment reminders",
        kind=CampaignKind.DRIP,
        enabled=True,
        trigger={"type": "scheduled_appointment", "when": "days_before", "days": 1},
    )
    for position, channel in ((1, "sms"), (2, "email"), (3, "sms")):
        MessageStep.objects.create(
            practice=practice,
            campaign=campaign,
            position=position,
            channel=channel,
            subject="Your visit" if channel == "email" else "",
            body="See you soon",
        )
    enrollments = messages // STEPS
    patients = max(enrollments // 4, 1)  # about four occurrences per patient in the year
    Patient.objects.bulk_create(
        (
            Patient(
                practice=practice,
                external_id=f"P{n:07d}",
                first_name="Pat",
                last_name=f"N{n}",
                phone=f"+1312{n:07d}",
                email=f"p{n}@example.test",
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
        # Enrollment n belongs to patient n mod P (the patients' ids are consecutive: one
        # bulk insert) and enters on day (n * 7919) mod 365.
        cursor.execute(
            "SELECT min(id), max(id), count(*) FROM patients_patient "
            "WHERE practice_id = %(practice)s",
            params,
        )
        first_id, last_id, count = cursor.fetchone()
        if last_id - first_id + 1 != count:
            raise RuntimeError("the benchmark's patients do not have consecutive ids")
        params["first_patient"], params["patients"] = first_id, count
        cursor.execute(
            """
            INSERT INTO campaigns_enrollment (practice_id, campaign_id, patient_id,
                occurrence_key, entered_at, state, steps_done, exit_reason, exited_at,
                report_pending)
            SELECT %(practice)s, %(campaign)s, %(first_patient)s + g.n %% %(patients)s,
                'occurrence-' || g.n,
                %(first)s + ((g.n::bigint * 7919) %% %(days)s) * interval '1 day',
                CASE WHEN g.n %% 10 = 0 THEN 'exited' ELSE 'completed' END, 3,
                CASE WHEN g.n %% 10 = 0 THEN 'goal_met' ELSE '' END,
                CASE WHEN g.n %% 10 = 0 THEN %(first)s
                    + ((g.n::bigint * 7919) %% %(days)s) * interval '1 day' + interval '26 hours'
                END,
                g.n %% 10 = 0
            FROM generate_series(0, %(enrollments)s - 1) AS g(n)
            """,
            params,
        )
        # Step s of an enrollment goes out s - 1 days after it entered. The status mix by
        # (id * 31 + step * 17) mod 100: 0-2 skipped, 3-4 failed, 5-7 undelivered (texts) or
        # bounced (emails), 8-9 sent without a receipt, the rest delivered; emails partly
        # opened (30-59) and clicked (20-29), texts partly clicked (20-24); 99 unsubscribed.
        cursor.execute(
            """
            INSERT INTO messaging_outboundmessage (practice_id, enrollment_id, campaign_id,
                step_position, patient_id, channel, "to", subject, body, status,
                status_reason, scheduled_for, attempts, provider, provider_id, error_code,
                is_test, sent_at, unsubscribed_at, report_pending, report_flags,
                created_at, updated_at, address_key)
            SELECT e.practice_id, e.id, e.campaign_id, s.step, e.patient_id,
                CASE WHEN s.step = 2 THEN 'email' ELSE 'sms' END,
                'masked', '', 'See you soon',
                CASE
                    WHEN m.r < 3 THEN 'skipped'
                    WHEN m.r < 5 THEN 'failed'
                    WHEN m.r < 8 THEN CASE WHEN s.step = 2 THEN 'bounced' ELSE 'undelivered' END
                    WHEN m.r < 10 THEN 'sent'
                    WHEN s.step = 2 AND m.r BETWEEN 20 AND 29 THEN 'clicked'
                    WHEN s.step = 2 AND m.r BETWEEN 30 AND 59 THEN 'opened'
                    WHEN s.step <> 2 AND m.r BETWEEN 20 AND 24 THEN 'clicked'
                    ELSE 'delivered'
                END,
                CASE WHEN m.r < 3 THEN 'no mobile phone' WHEN m.r < 5 THEN 'provider error'
                    ELSE '' END,
                m.due, 1, 'twilio',
                CASE WHEN m.r >= 5 THEN 'SM' || e.id || '-' || s.step ELSE '' END,
                CASE WHEN m.r BETWEEN 3 AND 4 THEN '21211' ELSE '' END,
                false,
                CASE WHEN m.r >= 5 THEN m.due END,
                CASE WHEN m.r = 99 THEN m.due + interval '2 hours' END,
                true, 0, m.due, m.due, ''
            FROM campaigns_enrollment e
            CROSS JOIN generate_series(1, 3) AS s(step)
            CROSS JOIN LATERAL (
                SELECT ((e.id * 31 + s.step * 17) %% 100) AS r,
                    e.entered_at + (s.step - 1) * interval '1 day' AS due
            ) AS m
            WHERE e.campaign_id = %(campaign)s
            """,
            params,
        )
        # The history: each message that went out was "sent", then reached its status.
        cursor.execute(
            """
            INSERT INTO messaging_messageevent (practice_id, message_id, status, reason, at,
                source)
            SELECT practice_id, id, 'sent', '', scheduled_for, 'provider'
            FROM messaging_outboundmessage
            WHERE campaign_id = %(campaign)s AND status NOT IN ('skipped', 'failed', 'sent')
            UNION ALL
            SELECT practice_id, id, status, status_reason,
                scheduled_for + interval '5 minutes', 'webhook'
            FROM messaging_outboundmessage WHERE campaign_id = %(campaign)s
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
            "reports_campaigndaystat",
            "reports_skipdaystat",
            "reports_recipientday",
        ):
            cursor.execute(f"VACUUM ANALYZE {table}")


def bench(size: str) -> Section:
    target_messages = SIZES[size]
    url = database_url_for("report")
    recreate_database(url)
    setup_django(url)
    from campaigns.models import Campaign
    from messaging.models import OutboundMessage
    from reports.rollup import rollups_refresh
    from reports.selectors import campaign_report

    populate_s, (campaign_id, _) = timed(populate, target_messages)
    messages = OutboundMessage.objects.filter(campaign_id=campaign_id).count()
    print(f"populated {messages:,} messages in {populate_s:.1f} s", flush=True)
    print(f"settled in {settle():.1f} s", flush=True)  # the data on disk before the roll-up
    rollup_s, counted = timed(rollups_refresh)
    load = os.getloadavg()[0]
    print(f"rolled up {counted:,} in {rollup_s:.1f} s (load average {load:.1f})", flush=True)
    vacuum()
    campaign = Campaign.objects.select_related("practice").get(pk=campaign_id)
    last_day = FIRST_DAY + dt.timedelta(days=DAYS + 2)
    ranges = {
        "whole year": (FIRST_DAY, last_day),
        "last 30 days": (last_day - dt.timedelta(days=29), last_day),
    }
    year = campaign_report(campaign, date_from=FIRST_DAY, date_to=last_day)
    rows = report_timings(
        url, campaign, ranges, page_expect=b'id="total-recipients"', api_expect=b'"totals"'
    )
    section = Section(title=f"Report of a campaign with {messages:,} messages")
    section.lines += [
        f"One campaign (3 steps: text, email, text) whose {messages:,} messages went out over "
        f"{DAYS} days to {year.totals.recipients:,} patients; messages, events and enrollments "
        "written set-wise, then counted by the roll-up (`reports.rollup.rollups_refresh`).",
        "",
        f"- Data written in {populate_s:.1f} s; the roll-up counted {counted:,} rows in "
        f"{rollup_s:.1f} s ({counted / rollup_s:,.0f} rows/s; load average {load:.1f} at its end"
        f" on {os.cpu_count()} cores) — the one-time cost of a backfill;"
        " day to day it counts only what changed since its last run (every 15 s).",
        f"- Whole-year totals: {year.totals.sent:,} sent, {year.totals.delivered:,} delivered "
        f"({year.totals.delivered_percent}%), {year.totals.errors:,} errors, "
        f"{year.totals.skipped:,} skipped, {year.totals.conversions:,} goal conversions.",
        f"- Each figure: {RUNS} requests after one warm-up, one at a time. Pages and API through "
        "gunicorn (2 workers, DEBUG off) over HTTP, as a Manager and with an API key.",
        "",
        *report_timing_lines(rows),
    ]
    section.results.append(
        Result(
            name=f"Roll-up throughput, backfill of {counted:,} rows",
            measured=f"{counted / rollup_s:,.0f} rows/s",
            target=f"≥ {ROLLUP_TARGET_ROWS_S:,} rows/s",
            meets=counted / rollup_s >= ROLLUP_TARGET_ROWS_S,
        )
    )
    section.results += report_timing_results(
        rows, name=f"Report, {messages:,} messages", target_ms=TARGET_MS
    )
    return section


if __name__ == "__main__":
    cli(bench)
