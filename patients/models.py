"""Patients, cases and appointments as synced from the practice's EMR (DESIGN §4).

Lookup values (providers, purposes, case types, …) exist for a practice once the EMR has sent
them. The visit facts on Patient and Case (visit count, first and last visit, last scheduled
appointment) are derived from the appointments by ``patients.sync.visits.visit_facts_refresh``
whenever appointments change, so they stay right however appointments arrive.
"""

from __future__ import annotations

from django.db import models

from trackstat.models import Practice


class LookupKind(models.TextChoices):
    PROVIDER = "provider", "Provider"
    PURPOSE = "purpose", "Appointment purpose"
    CASE_TYPE = "case_type", "Case type"
    DIAGNOSIS = "diagnosis", "Diagnosis (ICD-10)"
    INSURANCE_COMPANY = "insurance_company", "Insurance company"
    ATTORNEY = "attorney", "Attorney"
    REFERRAL_SOURCE = "referral_source", "Referral source"
    CARE_PACKAGE = "care_package", "Care package"
    FEE_SCHEDULE = "fee_schedule", "Fee schedule"
    SERVICE = "service", "Service (CPT code)"


class Lookup(models.Model):
    """A practice's value of one kind (a provider's name, a CPT code, …), created on first use."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=20, choices=LookupKind.choices)
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["kind", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "kind", "name"], name="lookup_unique_per_practice"
            ),
        ]

    def __str__(self) -> str:
        return self.name


def lookup_field() -> models.ForeignKey:
    """An optional lookup value (a provider, a purpose, …); a value in use cannot be deleted
    (RESTRICT: unless its practice is deleted with everything of it)."""
    return models.ForeignKey(
        Lookup, null=True, blank=True, on_delete=models.RESTRICT, related_name="+"
    )


class Tag(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["practice", "name"], name="tag_unique_per_practice"),
        ]

    def __str__(self) -> str:
        return self.name


class Sex(models.TextChoices):
    MALE = "M", "Male"
    FEMALE = "F", "Female"
    OTHER = "X", "Other"
    UNKNOWN = "U", "Unknown"


class PatientStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    INACTIVE = "inactive", "Inactive"
    DECEASED = "deceased", "Deceased"
    DISCHARGED = "discharged", "Discharged"


class OptOutSource(models.TextChoices):
    STAFF = "staff", "Staff"
    EMR = "emr", "EMR sync"
    SMS_REPLY = "sms_reply", "SMS reply"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe link"
    PROVIDER = "provider", "Provider report"


class ConsentSource(models.TextChoices):
    """Where a consent change came from (DESIGN §5.8)."""

    EMR = "emr", "EMR sync"
    API = "api", "API"
    STAFF = "staff", "Staff"
    REPLY = "reply", "Text reply (in the patient's words)"
    KEYWORD = "keyword", "Text keyword (STOP, START)"
    UNSUBSCRIBE_LINK = "unsubscribe_link", "Unsubscribe link"
    PROVIDER = "provider", "Provider report"
    BOUNCE = "bounce", "Email bounce"


class ConsentScope(models.TextChoices):
    """What a consent is about: every message of the channel (the opt-out) or marketing."""

    ALL = "all", "All messages"
    MARKETING = "marketing", "Marketing"


class Patient(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="patients")
    external_id = models.CharField(max_length=64)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    # Month and day of birth_date, kept by the sync services for the birthday trigger's index.
    birth_month = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    birth_day = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    sex = models.CharField(max_length=1, choices=Sex.choices, default=Sex.UNKNOWN)
    phone = models.CharField(max_length=16, blank=True)  # E.164
    email = models.EmailField(blank=True)
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=50, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    status = models.CharField(
        max_length=20, choices=PatientStatus.choices, default=PatientStatus.ACTIVE
    )
    # The EMR's first-visit date when it sends one; first_visit_date falls back to the earliest
    # visit otherwise.
    emr_first_visit_date = models.DateField(null=True, blank=True)
    primary_provider = lookup_field()
    referral_source = lookup_field()
    attorney = lookup_field()
    care_package = lookup_field()
    fee_schedule = lookup_field()
    insurance_company = lookup_field()
    paid_total = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    tags = models.ManyToManyField(Tag, through="PatientTag", related_name="patients")

    sms_opt_out = models.BooleanField(default=False)
    sms_opt_out_at = models.DateTimeField(null=True, blank=True)
    sms_opt_out_source = models.CharField(max_length=20, choices=OptOutSource.choices, blank=True)
    email_opt_out = models.BooleanField(default=False)
    email_opt_out_at = models.DateTimeField(null=True, blank=True)
    email_opt_out_source = models.CharField(max_length=20, choices=OptOutSource.choices, blank=True)
    # Marketing consent per channel (DESIGN §5.8): True given, False refused, None unknown.
    # The ledger (``ConsentChange``) holds how each came about; an opt-out of the channel
    # overrides it, and opting back in leaves it as it was.
    sms_marketing_consent = models.BooleanField(null=True, blank=True)
    email_marketing_consent = models.BooleanField(null=True, blank=True)

    # Derived visit facts (see module docstring). A visit is a checked-in or completed
    # appointment; dates are local dates in the practice's time zone.
    visit_count = models.PositiveIntegerField(default=0, editable=False)
    first_visit_date = models.DateField(null=True, blank=True, editable=False)
    first_visit_month = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    first_visit_day = models.PositiveSmallIntegerField(null=True, blank=True, editable=False)
    last_visit_checked_in = models.DateField(null=True, blank=True, editable=False)
    last_visit_scheduled = models.DateField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "external_id"], name="patient_external_id_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["practice", "status"], name="patient_practice_status"),
            models.Index(fields=["practice", "birth_month", "birth_day"], name="patient_birthday"),
            models.Index(
                fields=["practice", "first_visit_month", "first_visit_day"],
                name="patient_anniversary",
            ),
            models.Index(fields=["practice", "first_visit_date"], name="patient_first_visit"),
            models.Index(fields=["practice", "last_visit_checked_in"], name="patient_last_visit"),
            models.Index(fields=["practice", "last_name", "first_name"], name="patient_name"),
            models.Index(fields=["practice", "phone"], name="patient_phone"),
            models.Index(fields=["practice", "email"], name="patient_email"),
            # Experiment attribution finds the patients the EMR changed since its last run.
            models.Index(fields=["updated_at"], name="patient_updated_at"),
        ]

    def __str__(self) -> str:
        return self.full_name or self.external_id

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def is_active(self) -> bool:
        """The Active/Inactive filter: deceased and discharged count as inactive."""
        return self.status == PatientStatus.ACTIVE


class PatientTag(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "tag"], name="patient_tag_once"),
        ]
        indexes = [models.Index(fields=["tag", "patient"], name="patient_tag_by_tag")]

    def __str__(self) -> str:
        return f"{self.patient_id}:{self.tag_id}"


class Case(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="cases")
    external_id = models.CharField(max_length=64)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="cases")
    case_type = lookup_field()
    diagnoses = models.ManyToManyField(Lookup, through="CaseDiagnosis", related_name="+")
    attorney = lookup_field()
    insurance_company = lookup_field()
    status = models.CharField(max_length=30, blank=True)

    # Derived visit facts of this case's appointments (as on Patient).
    visit_count = models.PositiveIntegerField(default=0, editable=False)
    first_visit_date = models.DateField(null=True, blank=True, editable=False)
    last_visit_checked_in = models.DateField(null=True, blank=True, editable=False)
    last_visit_scheduled = models.DateField(null=True, blank=True, editable=False)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "external_id"], name="case_external_id_unique"
            ),
        ]
        indexes = [
            models.Index(
                fields=["practice", "case_type", "last_visit_checked_in"],
                name="case_type_last_visit",
            ),
            models.Index(fields=["patient", "last_visit_checked_in"], name="case_last_visit"),
        ]

    def __str__(self) -> str:
        return self.external_id


class CaseDiagnosis(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    case = models.ForeignKey(Case, on_delete=models.CASCADE)
    diagnosis = models.ForeignKey(Lookup, on_delete=models.RESTRICT)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["case", "diagnosis"], name="case_diagnosis_once"),
        ]

    def __str__(self) -> str:
        return f"{self.case_id}:{self.diagnosis_id}"


class AppointmentStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    CONFIRMED = "confirmed", "Confirmed"
    CHECKED_IN = "checked_in", "Checked in"
    COMPLETED = "completed", "Completed"
    NO_SHOW = "no_show", "No-show"
    CANCELLED = "cancelled", "Cancelled"
    RESCHEDULED = "rescheduled", "Rescheduled"


class Confirmation(models.TextChoices):
    """What the patient answered a reminder that asked (DESIGN §7)."""

    NONE = "none", "Not asked"
    REQUESTED = "requested", "Asked"
    CONFIRMED = "confirmed", "Confirmed"
    CANCEL_REQUESTED = "cancel_requested", "Asked to cancel"
    RESCHEDULE_REQUESTED = "reschedule_requested", "Asked to reschedule"


VISIT_STATUSES = (AppointmentStatus.CHECKED_IN, AppointmentStatus.COMPLETED)
# Appointments that no longer take place: they are nobody's "last scheduled" appointment.
CANCELLED_STATUSES = (AppointmentStatus.CANCELLED, AppointmentStatus.RESCHEDULED)
UPCOMING_STATUSES = (AppointmentStatus.SCHEDULED, AppointmentStatus.CONFIRMED)


class Appointment(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="appointments")
    external_id = models.CharField(max_length=64)
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="appointments")
    case = models.ForeignKey(
        Case, null=True, blank=True, on_delete=models.SET_NULL, related_name="appointments"
    )
    start = models.DateTimeField()
    # The local date of start in the practice's time zone, kept by the sync services.
    local_date = models.DateField(editable=False)
    duration_minutes = models.PositiveIntegerField(default=30)
    status = models.CharField(
        max_length=20, choices=AppointmentStatus.choices, default=AppointmentStatus.SCHEDULED
    )
    checked_in_at = models.DateTimeField(null=True, blank=True)
    purpose = lookup_field()
    provider = lookup_field()
    services = models.ManyToManyField(Lookup, through="AppointmentService", related_name="+")
    # When the EMR booked it; the time we first received it when the EMR does not say.
    booked_at = models.DateTimeField()
    # The patient's answer to a reminder that asked (DESIGN §7), and when it last changed.
    confirmation = models.CharField(
        max_length=24,
        choices=Confirmation.choices,
        default=Confirmation.NONE,
        db_default=Confirmation.NONE,  # rows written outside the ORM (bulk loads) too
    )
    confirmation_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["start", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "external_id"], name="appointment_external_id_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["practice", "start"], name="appointment_practice_start"),
            models.Index(
                fields=["practice", "local_date", "status"], name="appointment_local_date"
            ),
            models.Index(fields=["practice", "booked_at"], name="appointment_booked_at"),
            models.Index(fields=["patient", "start"], name="appointment_patient_start"),
            models.Index(fields=["case", "start"], name="appointment_case_start"),
            models.Index(fields=["updated_at"], name="appointment_updated_at"),
            models.Index(
                fields=["practice", "confirmation", "confirmation_at"],
                name="appointment_confirmation",
            ),
        ]

    def __str__(self) -> str:
        return self.external_id

    @property
    def is_visit(self) -> bool:
        return self.status in VISIT_STATUSES


class AppointmentService(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE)
    service = models.ForeignKey(Lookup, on_delete=models.RESTRICT)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "service"], name="appointment_service_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.appointment_id}:{self.service_id}"


class ConsentChange(models.Model):
    """One change of a patient's consent (the ledger, DESIGN §5.8): per channel and scope
    (every message, or marketing), when, from where, in what words (a reply's) and by whom.
    ``granted`` is the state after the change: for ``all``, False is an opt-out; for
    ``marketing``, None is "unknown" again."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="consent_changes")
    channel = models.CharField(max_length=10)  # sms, email
    scope = models.CharField(max_length=10, choices=ConsentScope.choices)
    granted = models.BooleanField(null=True)
    at = models.DateTimeField()
    source = models.CharField(max_length=20, choices=ConsentSource.choices)
    wording = models.CharField(max_length=500, blank=True)
    actor = models.ForeignKey(
        "trackstat.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, blank=True)
    # The EMR record behind the change, when it has one: ``Consent/<id>/_history/<version>``
    # (or ``Consent/<id>@<dateTime>``) for a FHIR Consent, so that a Consent sent again is
    # recorded once.
    emr_reference = models.CharField(max_length=200, blank=True, default="", db_default="")

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["patient", "channel", "scope", "at"], name="consent_patient_at")
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["practice", "emr_reference"],
                condition=~models.Q(emr_reference=""),
                name="consent_emr_reference_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} {self.channel}/{self.scope} = {self.granted} ({self.source})"
