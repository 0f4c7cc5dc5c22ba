"""Campaign reports (DESIGN §8), read from the roll-ups: a few hundred rows per report however
many messages the campaign sent.

Over a range of practice-local dates [from, to]:

- **Recipients**: distinct patients sent at least one message in the range.
- **Sent**: messages the provider accepted. **Delivered** (and Delivered % = delivered ÷
  sent): confirmed delivered (an open or a click confirms it too).
- **Opened**: emails with an open (a click in an email counts as an open). **Clicked**:
  messages with a tracked link opened.
- **Errors**: failed, undelivered and dropped messages, provider errors included.
  **Bounced**: emails that bounced.
- **Unsubscribed**: opt-outs in answer to the campaign's messages (STOP, the unsubscribe
  link, a spam report).
- **Goal conversions**: enrollments that met the goal on a day in the range; the rate is
  conversions ÷ recipients.
- **Skipped**: messages that never went out (skipped, canceled, expired), by reason.

Messages count on the day they were sent (or were due, if they never went out); test sends
are never counted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Sum
from django.utils import timezone

from campaigns.models import Campaign
from reports.experiments import ArmReport, PeriodReport, experiment_report
from reports.models import NO_STEP, CampaignDayStat, RecipientDayStat, RollupState, SkipDayStat
from reports.rollup import COUNTERS, ROLLUP_NAME
from trackstat.models import Practice
from trackstat.validators import InvalidValue, parse_date

DEFAULT_DAYS = 30
MAX_DAYS = 3 * 366


@dataclass
class Numbers:
    recipients: int = 0
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    errors: int = 0
    bounced: int = 0
    unsubscribed: int = 0
    skipped: int = 0
    conversions: int = 0

    def add(self, row: dict) -> None:
        counts = self.__dict__  # a report adds a row per step and day: no getattr per counter
        for name in COUNTERS:
            counts[name] += row.get(name) or 0

    @property
    def delivered_percent(self) -> float | None:
        return _percent(self.delivered, self.sent)

    @property
    def conversion_percent(self) -> float | None:
        return _percent(self.conversions, self.recipients)


def _percent(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


@dataclass(frozen=True)
class SkipRow:
    status: str
    reason: str
    count: int


@dataclass
class StepReport:
    position: int
    channel: str
    label: str
    numbers: Numbers = field(default_factory=Numbers)
    skipped: list[SkipRow] = field(default_factory=list)


@dataclass
class DayRow:
    day: dt.date
    numbers: Numbers = field(default_factory=Numbers)


@dataclass
class CampaignReport:
    campaign: Campaign
    date_from: dt.date
    date_to: dt.date
    totals: Numbers
    steps: list[StepReport]
    days: list[DayRow]
    skipped: list[SkipRow]
    refreshed_at: dt.datetime | None
    # Experiment periods with their arms (DESIGN §5.9; empty without an experiment).
    experiments: list[PeriodReport] = field(default_factory=list)

    @property
    def arms(self) -> list[ArmReport]:
        """The arms of the latest experiment period in the range."""
        return self.experiments[-1].arms if self.experiments else []


def default_range(practice: Practice, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """The last 30 local days, today included."""
    today = today or timezone.now().astimezone(practice.tz).date()
    return today - dt.timedelta(days=DEFAULT_DAYS - 1), today


def report_range_errors(date_from: dt.date, date_to: dt.date) -> dict[str, list[str]]:
    if date_from > date_to:
        return {"from": ["The start date is after the end date."]}
    if (date_to - date_from).days >= MAX_DAYS:
        return {"to": [f"A report covers at most {MAX_DAYS} days."]}
    return {}


def refreshed_at() -> dt.datetime | None:
    """When the roll-ups last caught up (shown as "updated at")."""
    return (
        RollupState.objects.filter(name=ROLLUP_NAME).values_list("refreshed_at", flat=True).first()
    )


def _recipients(date_from: dt.date, date_to: dt.date, **filters):
    """Distinct recipients over the range: a patient's first day in the range is the one
    whose previous day is before it (``RecipientDayStat``)."""
    return RecipientDayStat.objects.filter(
        day__gte=date_from, day__lte=date_to, prev_day__lt=date_from, **filters
    )


def campaign_report(campaign: Campaign, *, date_from: dt.date, date_to: dt.date) -> CampaignReport:
    """The report of one campaign over [date_from, date_to] (practice-local dates)."""
    rows = list(
        CampaignDayStat.objects.filter(
            campaign=campaign, day__gte=date_from, day__lte=date_to
        ).values("step_position", "day", *COUNTERS)
    )
    skip_rows = list(
        SkipDayStat.objects.filter(campaign=campaign, day__gte=date_from, day__lte=date_to)
        .values("step_position", "status", "reason")
        .annotate(total=Sum("count"))
        .order_by("step_position", "-total", "status", "reason")
    )
    step_recipients = dict(
        _recipients(date_from, date_to, campaign=campaign)
        .values("step_position")
        .annotate(n=Sum("count"))
        .values_list("step_position", "n")
    )
    totals = Numbers(recipients=step_recipients.pop(NO_STEP, 0))
    steps: dict[int, StepReport] = {
        step.position: StepReport(
            position=step.position,
            channel=step.channel,
            label=f"Step {step.position} · {step.get_channel_display()}",
        )
        for step in campaign.steps.all()
    }

    def step_of(position: int) -> StepReport:
        if position not in steps:
            label = "Before the first message" if position == NO_STEP else f"Step {position}"
            steps[position] = StepReport(position=position, channel="", label=label)
        return steps[position]

    days = {
        date_from + dt.timedelta(days=n): DayRow(day=date_from + dt.timedelta(days=n))
        for n in range((date_to - date_from).days + 1)
    }
    for row in rows:
        totals.add(row)
        step_of(row["step_position"]).numbers.add(row)
        days[row["day"]].numbers.add(row)
    for position, count in step_recipients.items():
        step_of(position).numbers.recipients = count
    by_reason: dict[tuple[str, str], int] = {}
    for row in skip_rows:
        step_of(row["step_position"]).skipped.append(
            SkipRow(status=row["status"], reason=row["reason"], count=row["total"])
        )
        key = (row["status"], row["reason"])
        by_reason[key] = by_reason.get(key, 0) + row["total"]
    skipped = sorted(
        (SkipRow(status=s, reason=r, count=n) for (s, r), n in by_reason.items()),
        key=lambda row: (-row.count, row.status, row.reason),
    )
    # Step 0 only appears when something belongs to it (a goal met before any message).
    ordered = [
        steps[p]
        for p in sorted(steps)
        if p != NO_STEP or steps[p].numbers.conversions or steps[p].skipped
    ]
    return CampaignReport(
        campaign=campaign,
        date_from=date_from,
        date_to=date_to,
        totals=totals,
        steps=ordered,
        days=list(days.values()),
        skipped=skipped,
        refreshed_at=refreshed_at(),
        experiments=experiment_report(campaign, date_from=date_from, date_to=date_to),
    )


@dataclass
class CampaignHeadline:
    campaign: Campaign
    numbers: Numbers


def practice_overview(
    practice: Practice, *, date_from: dt.date, date_to: dt.date
) -> list[CampaignHeadline]:
    """Every campaign of the practice (drips, then blasts) with its headline numbers."""
    campaigns = list(Campaign.objects.filter(practice=practice).order_by("kind", "name", "id"))
    ids = [c.pk for c in campaigns]
    sums = {
        row["campaign_id"]: row
        for row in CampaignDayStat.objects.filter(
            campaign_id__in=ids, day__gte=date_from, day__lte=date_to
        )
        .values("campaign_id")
        .annotate(**{name: Sum(name) for name in COUNTERS})
    }
    recipients = dict(
        _recipients(date_from, date_to, campaign_id__in=ids, step_position=NO_STEP)
        .values("campaign_id")
        .annotate(n=Sum("count"))
        .values_list("campaign_id", "n")
    )
    headlines = []
    for campaign in campaigns:
        numbers = Numbers(recipients=recipients.get(campaign.pk, 0))
        numbers.add(sums.get(campaign.pk, {}))
        headlines.append(CampaignHeadline(campaign=campaign, numbers=numbers))
    return headlines


def report_range(params, practice: Practice) -> tuple[dt.date, dt.date, dict[str, list[str]]]:
    """The [from, to] of a request's ``from`` and ``to`` (ISO dates, each optional: the last
    30 days by default), and the errors by field name (empty when both are good)."""
    default_from, default_to = default_range(practice)
    errors: dict[str, list[str]] = {}
    values = {}
    for name, default in (("from", default_from), ("to", default_to)):
        raw = (params.get(name) or "").strip()
        try:
            values[name] = parse_date(raw) if raw else None
        except InvalidValue as error:
            errors[name] = [str(error)]
            values[name] = default
    date_to = values["to"] or default_to
    date_from = values["from"] or (
        default_from if values["to"] is None else date_to - dt.timedelta(days=DEFAULT_DAYS - 1)
    )
    if not errors:
        errors = report_range_errors(date_from, date_to)
    return date_from, date_to, errors
