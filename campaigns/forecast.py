"""A campaign's 7-day forecast (issue 16, item 15): how many messages it would send on each of
the next days, and to whom and when, computed from today's data with the engine's own
queries.

What the forecast counts, day by day in the practice's time zone:

- messages of the campaign already in the outbox, waiting for their time (``queued``);
- the next steps of patients already in the campaign (their ``next_step_at``), chained
  through the campaign's delays;
- the patients each run in the window would enroll: a scheduled campaign's runs at their
  times (``campaigns.schedule``), each read with ``campaigns.selectors.audience`` at that
  instant — the trigger, filters and exclusions a tick applies, occurrences already entered
  left out, and occurrences entered by an earlier run of the forecast left out too — and
  their steps chained through the delays (``campaigns.timing.step_due``).

Each message then goes through what materializing and sending decide: the address on file
and opt-outs (``messaging.outbox.addresses``), deceased patients, one message per address per
campaign and local day, quiet hours (``messaging.outbox.window``), and a continuous trigger's
message expiring at the end of its local day.

What it cannot know: data that arrives later (appointments booked, moved or kept; visits
checked in; opt-outs), goals met in the meantime and other campaigns' future messages
(``exclude_recent_days``). Continuous triggers (a missed appointment, a visit today) are
forecast only from what is known now: today's missed appointments and check-ins already
recorded; for the days ahead ``possible`` gives the booked appointments that could set them
off.

A handful of queries: one audience query per run in the window (plus the earlier drips of the
same tick when ``exclude_recent_days`` is set), one for patients in the campaign, one for its
queued messages; never one per patient.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from django.db.models import Count, QuerySet

from campaigns.engine.steps import address_key
from campaigns.experiments.arms import HOLDOUT, arm_of
from campaigns.language.spec import DEFAULT_SCHEDULE
from campaigns.language.triggers import continuous_of, is_continuous
from campaigns.models import (
    Campaign,
    CampaignKind,
    CampaignRun,
    Enrollment,
    EnrollmentState,
    MessageStep,
)
from campaigns.schedule import is_due_on, run_time
from campaigns.selectors import audience
from campaigns.timing import end_of_local_day, step_due
from messaging.models import NOT_RECEIVED, MessageStatus, OutboundMessage
from messaging.outbox.addresses import address_problem
from messaging.outbox.trust import sending_time
from patients.models import UPCOMING_STATUSES, Appointment, Patient, PatientStatus

FORECAST_DAYS = 7
SAMPLE_SIZE = 8
# What a forecast reads of a patient: the address checks and the sample's name.
PATIENT_FIELDS = (
    "id",
    "practice_id",
    "external_id",
    "first_name",
    "last_name",
    "phone",
    "email",
    "sms_opt_out",
    "email_opt_out",
    "status",
    "state",
)


@dataclass(frozen=True)
class StepPlan:
    """What the forecast needs of a step: its channel and its delay after the one before."""

    channel: str
    delay_value: int
    delay_unit: str

    @classmethod
    def from_draft(cls, message: dict) -> StepPlan:
        """A wizard draft's message (``channel``, ``delay`` {``value``, ``unit``})."""
        delay = message.get("delay") or {}
        return cls(message["channel"], int(delay.get("value", 0)), delay.get("unit", "days"))


@dataclass(frozen=True)
class ForecastSend:
    """One message the campaign would send: when (practice-local), to whom, which step."""

    at: dt.datetime
    patient: Patient
    step: int
    channel: str
    source: str  # "queued" (in the outbox), "enrolled" (already in), "new" (a run enrolls)


@dataclass
class ForecastDay:
    day: dt.date
    sends: list[ForecastSend] = field(default_factory=list)
    skipped: int = 0  # no address, opted out, deceased, shared address
    expired: int = 0  # a continuous trigger's message that quiet hours push past its day
    possible: int | None = None  # continuous triggers: booked appointments that could set it off

    @property
    def count(self) -> int:
        return len(self.sends)

    @property
    def sms(self) -> int:
        return sum(send.channel == "sms" for send in self.sends)

    @property
    def email(self) -> int:
        return self.count - self.sms

    @property
    def times(self) -> list[tuple[dt.datetime, int]]:
        """(send time to the minute, how many) in time order."""
        counts = Counter(send.at.replace(second=0, microsecond=0) for send in self.sends)
        return sorted(counts.items())

    def sample(self, size: int = SAMPLE_SIZE) -> list[ForecastSend]:
        return self.sends[:size]


@dataclass(frozen=True)
class ForecastRun:
    """A run of the campaign in the window: when, and how many patients it would enroll."""

    at: dt.datetime
    entering: int


@dataclass
class Forecast:
    now: dt.datetime
    days: list[ForecastDay]
    runs: list[ForecastRun]
    continuous: bool
    assumes_on: bool  # the campaign is off (or not saved): the numbers are "if it were on"

    @property
    def total(self) -> int:
        return sum(day.count for day in self.days)

    @property
    def first_busy_day(self) -> ForecastDay | None:
        return next((day for day in self.days if day.count), None)


def campaign_forecast(
    campaign: Campaign,
    *,
    now: dt.datetime,
    steps: list[StepPlan] | None = None,
    days: int = FORECAST_DAYS,
) -> Forecast:
    """What ``campaign`` would send on each of the ``days`` local days from ``now``'s (today
    counts from ``now`` on), from the database as it is at ``now``, as if the campaign were
    on. ``steps`` replaces the campaign's saved steps (a wizard draft); ``campaign`` may be
    unsaved (then nobody is in it yet)."""
    practice = campaign.practice
    tz = practice.tz
    now = now.astimezone(tz)
    today = now.date()
    horizon = dt.datetime.combine(today + dt.timedelta(days=days), dt.time(0), tzinfo=tz)
    if steps is None:
        steps = [
            StepPlan(step.channel, step.delay_value, step.delay_unit)
            for step in MessageStep.objects.filter(campaign=campaign).order_by("position")
        ]
    trigger = campaign.trigger or {}
    continuous = campaign.kind == CampaignKind.DRIP and is_continuous(trigger)
    plan = _Plan(campaign=campaign, steps=steps, now=now, horizon=horizon, continuous=continuous)
    forecast = Forecast(
        now=now,
        days=[ForecastDay(today + dt.timedelta(days=n)) for n in range(days)],
        runs=[],
        continuous=continuous,
        assumes_on=not campaign.enabled or campaign.pk is None,
    )
    if steps:
        if campaign.pk is not None:
            plan.add_addresses_taken()
            plan.add_queued()
            plan.add_enrolled()
        for at, patients in _runs(campaign, now=now, days=days):
            entering = plan.add_run(at, patients)
            forecast.runs.append(ForecastRun(at=at, entering=entering))
    by_day = {day.day: day for day in forecast.days}
    for outcome, at, send in plan.resolve():
        day = by_day[at.date()]
        if outcome == "sent":
            day.sends.append(send)
        elif outcome == "skipped":
            day.skipped += 1
        else:
            day.expired += 1
    if continuous:
        possible = _possible(campaign, now=now, horizon=horizon)
        for day in forecast.days:
            day.possible = possible.get(day.day, 0)
    return forecast


# --- The runs in the window ---------------------------------------------------------------------


def _audience_at(campaign: Campaign, at: dt.datetime) -> QuerySet[Patient]:
    return audience(campaign, at=at).only(*PATIENT_FIELDS)


def _runs(campaign: Campaign, *, now: dt.datetime, days: int):
    """(instant, patients) of each run the campaign would make in the window: the engine's
    audience at that instant. Continuous triggers: what today's recorded events set off."""
    tz = campaign.practice.tz
    today = now.date()
    trigger = campaign.trigger or {}
    if campaign.kind == CampaignKind.BLAST:
        if campaign.sent_at is None:
            at = max(campaign.send_at or now, now).astimezone(tz)
            if at.date() < today + dt.timedelta(days=days):
                yield at, _audience_at(campaign, at)
        return
    if is_continuous(trigger):
        yield from _continuous_runs(campaign, now=now)
        return
    schedule = campaign.schedule or DEFAULT_SCHEDULE
    ran_today = (
        campaign.pk is not None
        and CampaignRun.objects.filter(campaign_id=campaign.pk, local_date=today).exists()
    )
    for offset in range(days):
        day = today + dt.timedelta(days=offset)
        if not is_due_on(schedule, day):
            continue
        at = run_time(schedule, day, tz)
        if offset == 0:
            if ran_today:
                continue
            if at <= now:
                # Caught up now by a campaign that is on and was on at its time; one switched
                # on now first runs on its next due day (DESIGN §5.3).
                on_in_time = campaign.enabled and (
                    campaign.enabled_at is None or campaign.enabled_at <= at
                )
                if not on_in_time:
                    continue
                at = now
        yield at, _audience_at(campaign, at)


def _continuous_runs(campaign: Campaign, *, now: dt.datetime):
    """A continuous trigger from today's recorded events: a missed appointment past its
    delay enters at the next tick (now); a visit checked in today enters ``hours_after``
    after its check-in, still today. Later days depend on events not recorded yet."""
    how = continuous_of(campaign.trigger)
    if how.event == "missed":
        yield now, _audience_at(campaign, now)
        return
    # The engine's query at the last instant of today: every visit recorded so far that
    # reaches its delay today; each enters at the first tick at or after that.
    last = end_of_local_day(now, campaign.practice.tz) - dt.timedelta(microseconds=1)
    patients = list(_audience_at(campaign, last))
    visits = Appointment.objects.in_bulk(
        {p.trigger_appointment_id for p in patients if p.trigger_appointment_id}
    )
    delay = how.delay_of(campaign.trigger)
    by_time: dict[dt.datetime, list[Patient]] = {}
    for patient in patients:
        visit = visits.get(patient.trigger_appointment_id)
        if visit is None:
            continue
        enters = max(_ceil_minute((visit.checked_in_at or visit.start) + delay), now)
        by_time.setdefault(enters.astimezone(now.tzinfo), []).append(patient)
    yield from sorted(by_time.items(), key=lambda item: item[0])


def _ceil_minute(at: dt.datetime) -> dt.datetime:
    """The first whole minute at or after ``at`` (beat ticks once a minute)."""
    floor = at.replace(second=0, microsecond=0)
    return floor if floor == at else floor + dt.timedelta(minutes=1)


def _possible(campaign: Campaign, *, now: dt.datetime, horizon: dt.datetime) -> dict:
    """Continuous triggers: per local day, the booked appointments still ahead that could set
    the campaign off (if missed, or once checked in). One query."""
    rows = (
        Appointment.objects.filter(
            practice_id=campaign.practice_id,
            status__in=UPCOMING_STATUSES,
            start__gt=now,
            start__lt=horizon,
        )
        .values("local_date")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["local_date"]: row["n"] for row in rows}


# --- Steps, addresses, quiet hours -----------------------------------------------------------


@dataclass
class _Due:
    """A step falling due (before addresses and quiet hours are applied)."""

    due: dt.datetime
    patient: Patient
    step: int
    channel: str
    source: str
    expires: dt.datetime | None = None


class _Plan:
    def __init__(self, *, campaign, steps, now, horizon, continuous):
        self.campaign = campaign
        self.steps = steps
        self.now = now
        self.horizon = horizon
        self.continuous = continuous
        self.practice = campaign.practice
        self.schedule = campaign.schedule or DEFAULT_SCHEDULE
        self.dues: list[_Due] = []
        self.entered: set[tuple[int, str]] = set()
        # (channel, address, local day) a message of the campaign holds already.
        self.taken: set[tuple[str, str, dt.date]] = set()

    def _chain(self, *, patient: Patient, position: int, due: dt.datetime, source: str) -> None:
        """Step ``position`` due at ``due`` and the following ones, while inside the window."""
        while position <= len(self.steps) and due < self.horizon:
            step = self.steps[position - 1]
            expires = end_of_local_day(due, self.practice.tz) if self.continuous else None
            self.dues.append(_Due(due, patient, position, step.channel, source, expires))
            if position == len(self.steps):
                return
            following = self.steps[position]
            due = step_due(
                previous=due,
                value=following.delay_value,
                unit=following.delay_unit,
                schedule=self.schedule,
                tz=self.practice.tz,
            )
            position += 1

    def _held_out(self, patient: Patient) -> bool:
        """Whether the patient would enter the campaign's control group (DESIGN §5.9): the
        engine's own arm, a pure function of (campaign, patient)."""
        if not self.campaign.holdout_percent or self.campaign.pk is None:
            return False
        arm = arm_of(
            campaign_id=self.campaign.pk,
            patient_id=patient.pk,
            holdout_percent=self.campaign.holdout_percent,
            variants=[],
        )
        return arm == HOLDOUT

    def add_queued(self) -> None:
        """The campaign's messages waiting in the outbox (sent once their time comes)."""
        messages = (
            OutboundMessage.objects.filter(
                campaign_id=self.campaign.pk,
                status=MessageStatus.QUEUED,
                scheduled_for__lt=self.horizon,
                is_test=False,
            )
            .select_related("patient")
            .only(
                "scheduled_for",
                "channel",
                "step_position",
                "expires_at",
                "patient_id",
                *(f"patient__{name}" for name in PATIENT_FIELDS),
            )
        )
        for message in messages:
            if message.patient is None:
                continue
            self.dues.append(
                _Due(
                    message.scheduled_for,
                    message.patient,
                    message.step_position or 1,
                    message.channel,
                    "queued",
                    message.expires_at,
                )
            )

    def add_addresses_taken(self) -> None:
        """The addresses the campaign's messages already hold from today on (one message per
        address per day, whatever the step): sent or on their way. Queued ones take theirs
        as the forecast goes through them."""
        self.taken |= set(
            OutboundMessage.objects.filter(
                campaign_id=self.campaign.pk, local_day__gte=self.now.date()
            )
            .exclude(status__in=[*NOT_RECEIVED, MessageStatus.QUEUED])
            .values_list("channel", "address_key", "local_day")
        )

    def add_enrolled(self) -> None:
        """The next steps of patients already in the campaign."""
        enrollments = (
            Enrollment.objects.filter(
                campaign_id=self.campaign.pk,
                state=EnrollmentState.ACTIVE,
                next_step_at__lt=self.horizon,
            )
            .select_related("patient")
            .only(
                "next_step_at",
                "steps_done",
                "arm",
                "patient_id",
                *(f"patient__{name}" for name in PATIENT_FIELDS),
            )
        )
        for enrollment in enrollments:
            if enrollment.arm == HOLDOUT:
                continue  # the control group: never sent anything
            self._chain(
                patient=enrollment.patient,
                position=enrollment.steps_done + 1,
                due=enrollment.next_step_at,
                source="enrolled",
            )

    def add_run(self, at: dt.datetime, patients) -> int:
        """A run at ``at`` enrolls ``patients`` (the engine's audience, each with its
        occurrence); an occurrence an earlier run of the forecast enrolled does not enter
        again. Returns how many enter."""
        first = self.steps[0]
        first_due = step_due(
            previous=at,
            value=first.delay_value,
            unit=first.delay_unit,
            schedule=self.schedule,
            tz=self.practice.tz,
        )
        entering = 0
        for patient in patients:
            key = (patient.pk, patient.occurrence_key)
            if key in self.entered:
                continue
            self.entered.add(key)
            entering += 1
            if self._held_out(patient):
                continue  # enters the control group: never sent anything
            self._chain(patient=patient, position=1, due=first_due, source="new")
        return entering

    def resolve(self):
        """Each due step as (outcome, local instant, ``ForecastSend`` or None), outcome
        ``sent``, ``skipped`` or ``expired`` (the last two on the day they fell due), in due
        order, as the engine materializes them (the first of an address's messages on a day
        gets it)."""
        practice, tz = self.practice, self.practice.tz
        taken = self.taken
        self.dues.sort(key=lambda d: (d.due, d.patient.pk, d.step))
        for item in self.dues:
            due = max(item.due, self.now)
            # Quiet hours, and for a marketing text the hours of the patient's state.
            goes = sending_time(
                practice=practice,
                at=due,
                channel=item.channel,
                purpose=self.campaign.purpose or "",
                patient_state=item.patient.state,
            ).astimezone(tz)
            if goes >= self.horizon and (item.expires is None or due >= self.horizon):
                continue
            to, _reason = address_problem(item.patient, item.channel)
            if item.patient.status == PatientStatus.DECEASED:
                to = ""
            if item.expires is not None and goes >= item.expires:
                yield "expired", due.astimezone(tz), None
                continue
            address = (item.channel, address_key(item.channel, to), goes.date()) if to else None
            if address is None or address in taken:
                yield "skipped", due.astimezone(tz), None
                continue
            taken.add(address)
            send = ForecastSend(
                at=goes,
                patient=item.patient,
                step=item.step,
                channel=item.channel,
                source=item.source,
            )
            yield "sent", goes, send


__all__ = [
    "FORECAST_DAYS",
    "Forecast",
    "ForecastDay",
    "ForecastRun",
    "ForecastSend",
    "StepPlan",
    "campaign_forecast",
]
