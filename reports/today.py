"""The Today page's numbers (issue 16, item 14), for one practice in its time zone: what was
sent today and what waits to go out for the rest of today and tomorrow (per campaign, with
the next send times and runs), the failures and bounces that need someone, the unread Inbox
threads, and the campaigns to look at (switched off, on without messages, failing).

A fixed handful of aggregate queries, each on an index, whatever the number of patients,
messages or campaigns: no query per row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, Exists, Min, OuterRef, Q

from campaigns.language.spec import DEFAULT_SCHEDULE
from campaigns.language.triggers import is_continuous
from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignRun,
    Enrollment,
    EnrollmentState,
    MessageStep,
)
from campaigns.schedule import is_due_on, run_time
from messaging.models import InboundHandling, InboundMessage, MessageStatus, OutboundMessage
from messaging.outbox.window import next_sending_time
from messaging.selectors import (
    PROBLEM_DAYS,
    PROBLEM_STATUSES,
    local_day_bounds,
    sending_day_bounds,
)
from patients.models import Appointment, AppointmentStatus, Confirmation
from trackstat.models import Practice

# The Today page's appointment columns: what the patient answered a reminder (DESIGN §7).
CONFIRMATION_COLUMNS = [
    (Confirmation.NONE, "Not asked"),
    (Confirmation.REQUESTED, "Asked, no answer yet"),
    (Confirmation.CONFIRMED, "Confirmed"),
    (Confirmation.CANCEL_REQUESTED, "Asked to cancel"),
    (Confirmation.RESCHEDULE_REQUESTED, "Asked to reschedule"),
]

PROBLEMS_SHOWN = 10


@dataclass
class CampaignToday:
    """One campaign's line: sent today, waiting for the rest of today and tomorrow."""

    id: int | None  # None: Inbox replies (no campaign)
    name: str
    kind: str = CampaignKind.DRIP
    enabled: bool = False
    continuous: bool = False
    sent_today: int = 0
    queued_today: int = 0
    queued_tomorrow: int = 0
    steps_today: int = 0  # next steps of patients in the campaign, not in the outbox yet
    steps_tomorrow: int = 0
    next_send: dt.datetime | None = None
    next_run: dt.datetime | None = None
    problems: int = 0

    @property
    def busy(self) -> bool:
        return bool(
            self.sent_today
            or self.queued_today
            or self.queued_tomorrow
            or self.steps_today
            or self.steps_tomorrow
            or self.next_run
        )


@dataclass
class Today:
    now: dt.datetime  # practice-local
    today: dt.date
    tomorrow: dt.date
    campaigns: list[CampaignToday]
    problems: list[OutboundMessage]
    problem_count: int
    unread_threads: int
    switched_off: list[Campaign] = field(default_factory=list)
    without_messages: list[Campaign] = field(default_factory=list)
    # Today's and tomorrow's appointments by what the patients answered (DESIGN §7):
    # {day: {confirmation: count}}, cancelled and moved ones left out.
    appointments: dict[dt.date, dict[str, int]] = field(default_factory=dict)

    @property
    def sent_today(self) -> int:
        return sum(c.sent_today for c in self.campaigns)

    @property
    def waiting_today(self) -> int:
        """In the outbox, going out the rest of today (the Messages list's count)."""
        return sum(c.queued_today for c in self.campaigns)

    @property
    def waiting_tomorrow(self) -> int:
        return sum(c.queued_tomorrow for c in self.campaigns)

    @property
    def steps_today(self) -> int:
        """Next steps of patients in campaigns, falling due the rest of today (not in the
        outbox until they do)."""
        return sum(c.steps_today for c in self.campaigns)

    @property
    def steps_tomorrow(self) -> int:
        return sum(c.steps_tomorrow for c in self.campaigns)

    @property
    def appointment_rows(self) -> list[dict]:
        """Today's and tomorrow's appointments as table rows: ``day`` (``today`` or
        ``tomorrow``, the worklist's filter), ``date`` and ``cells``, one (confirmation,
        label, count) per state in the order a patient moves through them."""
        rows = []
        for name, date in (("today", self.today), ("tomorrow", self.tomorrow)):
            counts = self.appointments.get(date, {})
            rows.append(
                {
                    "day": name,
                    "date": date,
                    "total": sum(counts.values()),
                    "cells": [
                        (value, label, counts.get(value, 0))
                        for value, label in CONFIRMATION_COLUMNS
                    ],
                }
            )
        return rows

    @property
    def failing(self) -> list[CampaignToday]:
        return [c for c in self.campaigns if c.problems and c.id is not None]


def today_summary(*, practice: Practice, now: dt.datetime) -> Today:
    """The Today page of ``practice`` at ``now``."""
    tz = practice.tz
    now = now.astimezone(tz)
    today = now.date()
    tomorrow = today + dt.timedelta(days=1)
    day_start, _ = local_day_bounds(today, tz)
    _, tomorrow_end = local_day_bounds(tomorrow, tz)
    # A message due after today's window closes waits for tomorrow's (quiet hours), and one
    # due after tomorrow's closes goes out the day after: the Messages list counts the same.
    today_close = sending_day_bounds(today, practice=practice, today=today)[1]
    tomorrow_close = sending_day_bounds(tomorrow, practice=practice, today=today)[1]

    has_steps = Exists(MessageStep.objects.filter(campaign_id=OuterRef("pk")))
    campaigns = list(
        Campaign.objects.filter(practice=practice, archived_at__isnull=True)
        .annotate(has_steps=has_steps)
        .only(
            "name",
            "kind",
            "enabled",
            "enabled_at",
            "trigger",
            "schedule",
            "send_at",
            "sent_at",
            "updated_at",
        )
        .order_by("name", "id")
    )
    lines = {
        c.pk: CampaignToday(
            id=c.pk,
            name=c.name,
            kind=c.kind,
            enabled=c.enabled,
            continuous=c.kind == CampaignKind.DRIP and is_continuous(c.trigger or {}),
        )
        for c in campaigns
    }

    def line(campaign_id: int | None) -> CampaignToday:
        if campaign_id not in lines:  # Inbox replies, or an archived campaign's messages
            lines[campaign_id] = CampaignToday(id=None, name="Inbox replies and others")
        return lines[campaign_id]

    mine = OutboundMessage.objects.filter(practice=practice, is_test=False)
    for row in (
        mine.filter(sent_at__gte=day_start, sent_at__lte=now)
        .values("campaign_id")
        .annotate(n=Count("id"))
        .order_by()
    ):
        line(row["campaign_id"]).sent_today += row["n"]

    waiting = (
        mine.filter(status=MessageStatus.QUEUED, scheduled_for__lt=tomorrow_close)
        .values("campaign_id")
        .annotate(
            today=Count("id", filter=Q(scheduled_for__lt=today_close)),
            tomorrow=Count("id", filter=Q(scheduled_for__gte=today_close)),
            next=Min("scheduled_for"),
        )
        .order_by()
    )
    for row in waiting:
        item = line(row["campaign_id"])
        item.queued_today += row["today"]
        item.queued_tomorrow += row["tomorrow"]
        _earliest(item, row["next"], now, practice)

    steps = (
        Enrollment.objects.filter(
            practice=practice,
            state=EnrollmentState.ACTIVE,
            campaign__enabled=True,
            next_step_at__gte=day_start,
            next_step_at__lt=tomorrow_close,
        )
        .values("campaign_id")
        .annotate(
            today=Count("id", filter=Q(next_step_at__lt=today_close)),
            tomorrow=Count("id", filter=Q(next_step_at__gte=today_close)),
            next=Min("next_step_at"),
        )
        .order_by()
    )
    for row in steps:
        item = line(row["campaign_id"])
        item.steps_today += row["today"]
        item.steps_tomorrow += row["tomorrow"]
        _earliest(item, row["next"], now, practice)

    ran_today = set(
        CampaignRun.objects.filter(practice=practice, local_date=today).values_list(
            "campaign_id", flat=True
        )
    )
    for campaign in campaigns:
        if campaign.enabled and campaign.has_steps:
            lines[campaign.pk].next_run = _next_run(
                campaign, now=now, ran_today=campaign.pk in ran_today, until=tomorrow_end
            )

    problems_q = mine.filter(
        status__in=PROBLEM_STATUSES, scheduled_for__gte=now - dt.timedelta(days=PROBLEM_DAYS)
    )
    problem_count = 0
    for row in problems_q.values("campaign_id").annotate(n=Count("id")).order_by():
        line(row["campaign_id"]).problems += row["n"]
        problem_count += row["n"]
    problems = list(
        problems_q.select_related("patient", "campaign").order_by("-scheduled_for", "-id")[
            :PROBLEMS_SHOWN
        ]
        if problem_count
        else []
    )

    # A thread is a patient's, or an unknown number's (DESIGN §7, ``messaging.inbox``).
    unread = {
        (patient_id, "" if patient_id else number)
        for patient_id, number in InboundMessage.objects.filter(
            practice=practice, handled_as=InboundHandling.INBOX, read_at__isnull=True
        )
        .values_list("patient_id", "from_number")
        .order_by()
        .distinct()
    }

    appointments: dict[dt.date, dict[str, int]] = {}
    for row in (
        Appointment.objects.filter(practice=practice, local_date__in=[today, tomorrow])
        .exclude(status__in=[AppointmentStatus.CANCELLED, AppointmentStatus.RESCHEDULED])
        .values("local_date", "confirmation")
        .annotate(n=Count("id"))
        .order_by()
    ):
        appointments.setdefault(row["local_date"], {})[row["confirmation"]] = row["n"]

    ordered = sorted(
        lines.values(), key=lambda c: (c.id is None, not c.busy, c.name.lower(), c.id or 0)
    )
    return Today(
        now=now,
        today=today,
        tomorrow=tomorrow,
        campaigns=[c for c in ordered if c.busy or c.problems],
        problems=problems,
        problem_count=problem_count,
        unread_threads=len(unread),
        # Drips that were on once and are off now: nobody enters them.
        switched_off=[
            c
            for c in campaigns
            if c.kind == CampaignKind.DRIP and not c.enabled and c.enabled_at is not None
        ],
        without_messages=[c for c in campaigns if c.enabled and not c.has_steps],
        appointments=appointments,
    )


def _earliest(item: CampaignToday, due: dt.datetime | None, now: dt.datetime, practice) -> None:
    """Keep the campaign's next send time: the earliest due, no earlier than now, moved out
    of quiet hours."""
    if due is None:
        return
    goes = next_sending_time(
        max(due, now),
        start=practice.sending_window_start,
        end=practice.sending_window_end,
        tz=practice.tz,
    ).astimezone(practice.tz)
    if item.next_send is None or goes < item.next_send:
        item.next_send = goes


def _next_run(
    campaign: Campaign, *, now: dt.datetime, ran_today: bool, until: dt.datetime
) -> dt.datetime | None:
    """When the campaign next enrolls patients, today or tomorrow (a scheduled drip's run,
    a blast's send); None for continuous triggers (all day, as things happen) or no run
    before ``until``."""
    tz = now.tzinfo
    if campaign.kind == CampaignKind.BLAST:
        if campaign.sent_at is not None:
            return None
        at = max(campaign.send_at or now, now)
        return at.astimezone(tz) if at < until else None
    trigger = campaign.trigger or {}
    if is_continuous(trigger):
        return None
    schedule = campaign.schedule or DEFAULT_SCHEDULE
    today = now.date()
    for day in (today, today + dt.timedelta(days=1)):
        if not is_due_on(schedule, day):
            continue
        at = run_time(schedule, day, tz)
        if day == today:
            if ran_today:
                continue
            if at <= now:
                if campaign.enabled_at and campaign.enabled_at > at:
                    continue
                return now  # overdue: the next tick catches it up
        return at
    return None
