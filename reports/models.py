"""Report roll-ups (DESIGN §8): counters per campaign, step and practice-local day, kept up to
date by ``reports.rollup`` as messages change, so a report reads a few hundred rows however
many messages a campaign has sent.

A message is counted on its *report day*: the local date it was sent (or, if it never went
out, the date it was due). Later events about it (delivered, opened, a bounce, an
unsubscribe) count on that same day, so Delivered % over any range compares like with like.
"""

from __future__ import annotations

import datetime as dt

from django.db import models

from campaigns.models import Campaign, Enrollment
from trackstat.models import Practice

# Step 0 holds what belongs to no step: a goal met before the first message went out.
NO_STEP = 0


class CampaignDayStat(models.Model):
    """What one step of a campaign did on one local day (every counter counts messages,
    except ``conversions``, which counts enrollments that met the goal that day)."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    step_position = models.PositiveSmallIntegerField()
    day = models.DateField()
    sent = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    clicked = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    bounced = models.PositiveIntegerField(default=0)
    unsubscribed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    conversions = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "step_position", "day"], name="campaign_day_stat_once"
            ),
        ]
        indexes = [models.Index(fields=["practice", "day"], name="campaign_day_stat_practice")]

    def __str__(self) -> str:
        return f"{self.campaign_id} step {self.step_position} on {self.day}"


class SkipDayStat(models.Model):
    """Messages of one step that did not go out on one local day, by status and reason
    (skipped: no phone number, opted out…; canceled: goal met…; expired)."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    step_position = models.PositiveSmallIntegerField()
    day = models.DateField()
    status = models.CharField(max_length=20)
    reason = models.CharField(max_length=200)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "step_position", "day", "status", "reason"],
                name="skip_day_stat_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} step {self.step_position} on {self.day}: {self.status}"


class RecipientDay(models.Model):
    """A patient was sent at least one message of a campaign (``step_position`` 0) or of one
    of its steps on a local day.

    ``prev_day`` is the patient's previous such day (None for the first), kept right by the
    roll-up whatever order the days arrive in; ``RecipientDayStat`` counts the rows by day and
    previous day, which is what reports read. ``patient_id`` is not a foreign key: reports
    keep counting a patient the EMR deleted. Nor are practice and campaign, in the database
    (deleting them still deletes these rows, through Django): a backfill writes these rows by
    the million, and a checked key and an index per row would double its cost.
    """

    practice = models.ForeignKey(
        Practice, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="+", db_constraint=False, db_index=False
    )
    step_position = models.PositiveSmallIntegerField()
    patient_id = models.BigIntegerField()
    day = models.DateField()
    prev_day = models.DateField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "patient_id", "step_position", "day"],
                name="recipient_day_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} step {self.step_position}: {self.patient_id} on {self.day}"


# ``RecipientDayStat.prev_day`` of a patient's first day (no previous day).
NO_PREV_DAY = dt.date(1, 1, 1)


class RecipientDayStat(models.Model):
    """How many patients were sent a campaign's messages (``step_position`` 0) or a step's on
    ``day`` with ``prev_day`` their previous such day (``NO_PREV_DAY`` for their first).

    Distinct recipients over [from, to] are the patients whose first day in the range is in
    it: the sum of ``count`` over the days in the range whose ``prev_day`` is before ``from``.
    A report reads at most a row per pair of days, however many messages the campaign sent.
    """

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    step_position = models.PositiveSmallIntegerField()
    day = models.DateField()
    prev_day = models.DateField()
    count = models.IntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "step_position", "day", "prev_day"],
                name="recipient_day_stat_once",
            ),
        ]
        indexes = [
            # Long ranges: the few rows whose previous day is before the range.
            models.Index(
                fields=["campaign", "step_position", "prev_day", "day"],
                include=["count"],
                name="recipient_day_stat_prev",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} step {self.step_position} on {self.day}: {self.count}"


class PendingMessage(models.Model):
    """A campaign message changed in a way the report may count: the roll-up's queue.

    Written by database triggers (``reports.queue``) in the same transaction as the change:
    a message inserted, or an update that sets its ``report_pending`` (every status change,
    an unsubscribe attributed to it, a replayed event). Each change is a row of its own, so
    a change that commits while a roll-up runs is never lost to it. The roll-up deletes the
    rows it counts (``DELETE … RETURNING``) and never rewrites the wide outbox row.
    ``message_id`` is not a foreign key: the queue is written and emptied set-wise.
    """

    message_id = models.BigIntegerField()

    def __str__(self) -> str:
        return f"message {self.message_id}"


class MessageFacts(models.Model):
    """What the roll-up has counted of one message: its report facts (``reports.rollup.Fact``
    bits) and the local day they count on. A fact is added to the counters only when it is
    new here, so each counts once per message however often the message is queued."""

    message_id = models.BigIntegerField(primary_key=True)
    flags = models.PositiveSmallIntegerField(default=0)
    day = models.DateField(null=True, blank=True)

    def __str__(self) -> str:
        return f"message {self.message_id}: {self.flags} on {self.day}"


class RollupState(models.Model):
    """One row: when the roll-up last ran. Locked while it runs, so one runs at a time."""

    name = models.CharField(max_length=50, unique=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name


class EnrollmentOutcome(models.Model):
    """What one experiment enrollment (an arm fixed at entry) did within its attribution
    window: booked, visited, revenue (DESIGN §5.9), as last counted into ``ArmDayStat``.

    ``reports.attribution`` recomputes it whenever the patient's EMR data changes and adds
    only the difference to the counters, so each change counts once. ``day`` is the local
    date the patient entered: an arm's numbers are those of the patients who entered in the
    report's range (a cohort), whatever day their outcome came.
    """

    enrollment = models.OneToOneField(
        Enrollment, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    patient_id = models.BigIntegerField()
    period = models.PositiveIntegerField()
    arm = models.CharField(max_length=20)
    day = models.DateField()
    entered_at = models.DateTimeField()
    window_end = models.DateTimeField()
    booked = models.BooleanField(default=False)
    visited = models.BooleanField(default=False)
    revenue = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    paid_total_at_entry = models.DecimalField(max_digits=12, decimal_places=2, default=0)

    class Meta:
        indexes = [models.Index(fields=["patient_id"], name="enrollment_outcome_patient")]

    def __str__(self) -> str:
        return f"{self.enrollment_id} ({self.arm})"


class ArmDayStat(models.Model):
    """One arm of one experiment period of a campaign, for the patients who entered on one
    local day: how many entered, the messages they were sent, delivered and clicked, and how
    many of them booked and visited within the window, with the revenue growth."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    period = models.PositiveIntegerField()
    arm = models.CharField(max_length=20)
    day = models.DateField()
    enrolled = models.IntegerField(default=0)
    sent = models.IntegerField(default=0)
    delivered = models.IntegerField(default=0)
    clicked = models.IntegerField(default=0)
    booked = models.IntegerField(default=0)
    visited = models.IntegerField(default=0)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "period", "arm", "day"], name="arm_day_stat_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} period {self.period} {self.arm} on {self.day}"
