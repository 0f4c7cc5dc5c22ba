"""Step 1 of a tick: run the campaigns that are due and enroll their audiences set-wise."""

from __future__ import annotations

import datetime as dt

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef

from campaigns.models import Campaign, CampaignKind, CampaignRun, Enrollment, EnrollmentState
from campaigns.schedule import is_due_on, run_time
from campaigns.selectors import audience
from campaigns.spec import DEFAULT_SCHEDULE, is_continuous
from campaigns.timing import step_due
from messaging.models import SENT_STATUSES, OutboundMessage


def campaigns_run_due(*, now: dt.datetime) -> tuple[int, int]:
    """Run every enabled campaign that is due at ``now``; return (runs, enrollments).

    Scheduled campaigns run once per due local day, at or after their time (a run missed
    while the scheduler was down is caught up the same local day, never later; a campaign
    enabled after today's time first runs on its next due day). Continuous triggers run at
    every tick. A blast runs once, at the first tick at or after ``send_at``.
    """
    runs = enrolled = 0
    campaigns = (
        Campaign.objects.filter(enabled=True, sent_at__isnull=True)
        .select_related("practice")
        .prefetch_related("steps")
        .order_by("id")
    )
    for campaign in campaigns:
        if not campaign.steps.all():
            continue
        count = _campaign_run(campaign, now)
        if count is not None:
            runs += 1
            enrolled += count
    return runs, enrolled


def _campaign_run(campaign: Campaign, now: dt.datetime) -> int | None:
    """Enroll ``campaign``'s audience if it is due; None when it is not."""
    if campaign.kind == CampaignKind.BLAST:
        if campaign.send_at and campaign.send_at > now:
            return None
        with transaction.atomic():
            # Claim the send: of concurrent ticks, exactly one sets sent_at.
            if not Campaign.objects.filter(pk=campaign.pk, sent_at__isnull=True).update(
                sent_at=now
            ):
                return None
            return enroll(campaign, now=now)
    if is_continuous(campaign.trigger):
        with transaction.atomic():
            return enroll(campaign, now=now)
    tz = campaign.practice.tz
    today = now.astimezone(tz).date()
    if not is_due_on(campaign.schedule, today):
        return None
    due = run_time(campaign.schedule, today, tz)
    if due > now or (campaign.enabled_at and campaign.enabled_at > due):
        return None
    if CampaignRun.objects.filter(campaign=campaign, local_date=today).exists():
        return None  # ran today (the insert below still settles races between ticks)
    try:
        with transaction.atomic():
            run = CampaignRun.objects.create(
                practice=campaign.practice, campaign=campaign, local_date=today, ran_at=now
            )
            run.enrolled = enroll(campaign, now=now)
            run.save(update_fields=["enrolled"])
            return run.enrolled
    except IntegrityError:
        return None  # another tick ran it today


def enroll(campaign: Campaign, *, now: dt.datetime) -> int:
    """Insert one enrollment per new occurrence in one ``INSERT … SELECT … ON CONFLICT DO
    NOTHING``: the unique (campaign, patient, occurrence key) makes re-runs harmless."""
    patients = audience(campaign, at=now)
    if campaign.exclude_recent_days:
        recent = OutboundMessage.objects.filter(
            practice=campaign.practice,
            patient_id=OuterRef("pk"),
            enrollment__isnull=False,
            is_test=False,
            status__in=SENT_STATUSES,
            sent_at__gte=now - dt.timedelta(days=campaign.exclude_recent_days),
        )
        patients = patients.exclude(Exists(recent))
    first = campaign.steps.all()[0]
    first_due = step_due(
        previous=now,
        value=first.delay_value,
        unit=first.delay_unit,
        schedule=campaign.schedule or DEFAULT_SCHEDULE,
        tz=campaign.practice.tz,
    )
    # Every selected column gets an explicit alias, for the outer SELECT to name.
    select_sql, params = (
        patients.order_by()
        .annotate(enrolling_patient_id=F("pk"))
        .values_list("enrolling_patient_id", "occurrence_key", "trigger_appointment_id")
        .query
    ).sql_with_params()
    table = Enrollment._meta.db_table
    ops = connection.ops
    # The table name is the model's and select_sql is compiled by the ORM with its values
    # kept apart in params: no input is formatted into the statement.
    sql = (
        f"INSERT INTO {table} (practice_id, campaign_id, patient_id, occurrence_key, "  # noqa: S608
        "appointment_id, entered_at, state, steps_done, next_step_at, exit_reason) "
        "SELECT %s, %s, a.enrolling_patient_id, a.occurrence_key, a.trigger_appointment_id, "
        "%s, %s, 0, %s, '' "
        f"FROM ({select_sql}) AS a WHERE true "
        "ON CONFLICT (campaign_id, patient_id, occurrence_key) DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [
                campaign.practice_id,
                campaign.pk,
                ops.adapt_datetimefield_value(now),
                EnrollmentState.ACTIVE,
                ops.adapt_datetimefield_value(first_due),
                *params,
            ],
        )
        return cursor.rowcount
