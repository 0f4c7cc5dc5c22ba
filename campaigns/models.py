"""Campaigns (drip and blast), their message steps, and the template library (DESIGN §5).

A campaign's trigger, filters, schedule and goal are stored as the JSON of the API (§5),
validated by ``campaigns.language`` on every write and compiled to SQL by
``campaigns.audience``.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from messaging.models import Channel, Purpose
from patients.models import Patient
from trackstat.models import Practice


class CampaignKind(models.TextChoices):
    DRIP = "drip", "Drip"
    BLAST = "blast", "Blast"


class DelayUnit(models.TextChoices):
    MINUTES = "minutes", "minutes"
    HOURS = "hours", "hours"
    DAYS = "days", "days"
    WEEKS = "weeks", "weeks"
    MONTHS = "months", "months"


class Campaign(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=CampaignKind.choices, default=CampaignKind.DRIP)
    enabled = models.BooleanField(default=False)
    # When it was last turned on: a scheduled campaign enabled after today's time first runs
    # on its next due day (DESIGN §5.3).
    enabled_at = models.DateTimeField(null=True, blank=True)
    trigger = models.JSONField(default=dict, blank=True)
    filters = models.JSONField(default=dict, blank=True)
    schedule = models.JSONField(default=dict, blank=True)
    exclude_recent_days = models.PositiveIntegerField(default=0)
    # DESIGN §5.8: what the messages are for (its default follows the trigger:
    # ``campaigns.language.purpose``) and which goes first when a cap separates two messages.
    purpose = models.CharField(max_length=10, choices=Purpose.choices, default=Purpose.MARKETING)
    priority = models.IntegerField(default=0)
    goal = models.JSONField(null=True, blank=True)
    # Experiments (DESIGN §5.9, ``campaigns.experiments``): the share of entering patients
    # held out as a control group, how long after entering outcomes count, and the
    # experiment period the next enrollments belong to (a change of holdout or variants once
    # patients entered starts a new one, so that each period compares one configuration).
    holdout_percent = models.PositiveSmallIntegerField(default=0, db_default=0)
    attribution_days = models.PositiveSmallIntegerField(default=30, db_default=30)
    experiment_period = models.PositiveIntegerField(default=1, db_default=1)
    # Blasts: when to send (None: as soon as enabled) and when it was sent (then never again).
    send_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Deleting a campaign that enrolled anyone archives it instead (``campaign_delete``): it
    # never runs again and leaves the lists, while its messages, their links and its report
    # stay (they are the practice's record of what was sent).
    archived_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [
            models.Index(fields=["practice", "kind", "enabled"], name="campaign_practice_kind"),
            models.Index(fields=["enabled", "kind"], name="campaign_enabled_kind"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(archived_at__isnull=True) | models.Q(enabled=False),
                name="archived_campaign_is_off",
            ),
            models.CheckConstraint(
                condition=models.Q(holdout_percent__lte=50), name="holdout_percent_at_most_50"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_blast(self) -> bool:
        return self.kind == CampaignKind.BLAST


class MessageStep(models.Model):
    """Step ``position`` (1…n) of a campaign: what to send and how long after the previous."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    channel = models.CharField(max_length=10, choices=Channel.choices)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    delay_value = models.PositiveIntegerField(default=0)
    delay_unit = models.CharField(max_length=10, choices=DelayUnit.choices, default=DelayUnit.DAYS)
    # A/B variants (DESIGN §5.9): [{"name", "subject", "body", "weight"}, …], 2 to 4 of them,
    # instead of ``subject``/``body`` (which then hold the first variant's, for the pages
    # that show one text per step). Empty: not a variant step.
    variants = models.JSONField(default=list, db_default=[], blank=True)
    # A text about an appointment that asks the patient to confirm (DESIGN §7): the practice's
    # question is added to it, and the answer is read.
    ask_confirmation = models.BooleanField(default=False, db_default=False)

    class Meta:
        ordering = ["campaign", "position"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "position"], name="step_position_once"),
            models.CheckConstraint(
                condition=models.Q(position__gte=1), name="step_position_from_1"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} step {self.position}"


class BlastExclusion(models.Model):
    """A recipient staff removed from a blast's audience before it went out."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="exclusions")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "patient"], name="blast_exclusion_once"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign}: not {self.patient_id}"


class TemplateFolder(models.Model):
    """A folder of message templates; ``practice`` empty = the operator's master library,
    visible to every practice and read-only for them."""

    practice = models.ForeignKey(
        Practice, null=True, blank=True, on_delete=models.CASCADE, related_name="template_folders"
    )
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "name"],
                condition=models.Q(practice__isnull=False),
                name="template_folder_name_once",
            ),
            models.UniqueConstraint(
                fields=["name"],
                condition=models.Q(practice__isnull=True),
                name="master_folder_name_once",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_master(self) -> bool:
        return self.practice_id is None


class MessageTemplate(models.Model):
    practice = models.ForeignKey(
        Practice, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    folder = models.ForeignKey(TemplateFolder, on_delete=models.CASCADE, related_name="templates")
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["folder", "name"]

    def __str__(self) -> str:
        return self.name


class SchedulerHeartbeat(models.Model):
    """The last scheduler tick: when it ran and what it did (one row per ``name``).

    Operators read it to see that beat and the workers are alive; the health check reports its
    age.
    """

    name = models.CharField(max_length=50, unique=True)
    ticked_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    summary = models.JSONField(default=dict)

    def __str__(self) -> str:
        return f"{self.name} at {self.ticked_at:%Y-%m-%d %H:%M:%S}"


class EnrollmentState(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    EXITED = "exited", "Exited"


class CampaignRun(models.Model):
    """A scheduled campaign's run on one local day: it runs once per due day."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="runs")
    local_date = models.DateField()
    ran_at = models.DateTimeField()
    enrolled = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-local_date"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "local_date"], name="one_run_per_day"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign} on {self.local_date}"


class Enrollment(models.Model):
    """One occurrence of a patient in a campaign (a birthday year, a visit, an appointment).

    An occurrence enters once, ever: unique (campaign, patient, occurrence key). The next
    step's due time lives here (``next_step_at``), claimed by the engine with SKIP LOCKED.
    """

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    # RESTRICT, not CASCADE: an enrollment holds the messages sent for it, so deleting its
    # campaign or patient alone is refused; deleting the whole practice removes them all.
    campaign = models.ForeignKey(Campaign, on_delete=models.RESTRICT, related_name="enrollments")
    patient = models.ForeignKey(Patient, on_delete=models.RESTRICT, related_name="enrollments")
    occurrence_key = models.CharField(max_length=100)
    appointment = models.ForeignKey(
        "patients.Appointment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    entered_at = models.DateTimeField()
    state = models.CharField(
        max_length=10, choices=EnrollmentState.choices, default=EnrollmentState.ACTIVE
    )
    steps_done = models.PositiveSmallIntegerField(default=0)
    next_step_at = models.DateTimeField(null=True, blank=True)
    exit_reason = models.CharField(max_length=100, blank=True)
    exited_at = models.DateTimeField(null=True, blank=True)
    # A goal met that the report roll-up has not counted yet (``reports.rollup``).
    report_pending = models.BooleanField(default=False, db_default=False)
    # Experiments (``campaigns.experiments``), fixed at entry for campaigns that run one:
    # the arm ("holdout", "treatment" or a variant's name; empty without an experiment),
    # the campaign's experiment period then, and the patient's paid_total then (revenue
    # attribution counts its growth).
    arm = models.CharField(max_length=20, blank=True, default="", db_default="")
    experiment_period = models.PositiveIntegerField(null=True, blank=True)
    paid_total_at_entry = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True
    )

    class Meta:
        ordering = ["-entered_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "patient", "occurrence_key"], name="occurrence_enters_once"
            ),
        ]
        indexes = [
            models.Index(fields=["state", "next_step_at"], name="enrollment_due"),
            # The engine's claim of due steps, in order (next_step_at, id): many enrollments
            # fall due at the same instant (a campaign's run), so the order needs the id too.
            models.Index(
                fields=["next_step_at", "id"],
                name="enrollment_active_due",
                condition=models.Q(state="active"),
            ),
            models.Index(fields=["practice", "patient"], name="enrollment_patient"),
            # Every tick's goal check reads the active enrollments of the campaigns with a
            # goal: only those, not the campaigns' whole history (completed and exited ones
            # pile up; without it PostgreSQL read the table).
            models.Index(
                fields=["campaign", "patient", "entered_at"],
                name="enrollment_active_campaign",
                condition=models.Q(state="active"),
            ),
            models.Index(
                fields=["id"],
                name="enrollment_report_pending",
                condition=models.Q(report_pending=True),
            ),
            # The roll-up asks of every message it counts whether its enrollment is in an
            # experiment (``reports.rollup_sql``): a probe of this small index, not of the
            # table's (a tenth of a backfill batch's time).
            models.Index(
                fields=["id"],
                name="enrollment_in_experiment",
                condition=models.Q(experiment_period__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} in {self.campaign_id} ({self.occurrence_key})"


class ExperimentPeriod(models.Model):
    """One configuration of a campaign's experiment (its holdout and variants) and when it
    began; the report shows each period on its own (DESIGN §5.9)."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="experiment_periods"
    )
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    holdout_percent = models.PositiveSmallIntegerField(default=0)
    # [{"name", "weight"}, …] of the variant steps (empty: none).
    variants = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["campaign", "number"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "number"], name="experiment_period_once"),
        ]

    def __str__(self) -> str:
        return f"{self.campaign_id} period {self.number}"


class ContinuousEvaluation(models.Model):
    """A continuous campaign's watermark: every moment up to ``evaluated_until`` (a tick's
    ``now``) has been looked at; durable, so a scheduler paused for hours catches up once. And
    the version (its ``updated_at`` and ``enabled_at``) last evaluated in full, and on which
    local day: a campaign enabled or edited since, or not yet evaluated today, is evaluated
    from scratch, not from the watermark (docs/engine-watermark.md)."""

    campaign = models.OneToOneField(
        Campaign, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    version = models.CharField(max_length=80)
    local_date = models.DateField()
    evaluated_until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.campaign_id} on {self.local_date}"


class PatientChange(models.Model):
    """The change log the continuous triggers read: one row per patient whose EMR data (the
    patient, an appointment, a tag, a case, a diagnosis, a service) changed, written by
    PostgreSQL triggers in the changing transaction, so a row exists exactly when its change
    committed. ``patient_id`` empty: a change of the whole practice (a tag or lookup renamed).
    A tick reads the rows, evaluates those patients, then deletes the rows it read.

    Plain ids, not foreign keys: the log outlives a deleted patient for a tick, harmlessly.
    """

    practice_id = models.BigIntegerField()
    patient_id = models.BigIntegerField(null=True)

    def __str__(self) -> str:
        return f"{self.practice_id}:{self.patient_id}"
