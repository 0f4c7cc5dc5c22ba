"""The tenancy core: users, practices, memberships with roles, API keys and the audit log."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import RegexValidator
from django.db import models

E164_VALIDATOR = RegexValidator(r"^\+[1-9]\d{6,14}$", "Enter a phone number in E.164 form.")
# A sender number belongs to one practice: inbound texts are routed by it (DESIGN §7).
SMS_FROM_TAKEN = "sms_from_taken"
SMS_FROM_TAKEN_MESSAGE = "Another practice already uses this sender phone number."
CONFIRMATION_WORDING_DEFAULTS = {
    "confirmation_request_text": "Reply C to confirm, R to reschedule",
    "confirmation_ack_confirmed": (
        "Thanks, you're confirmed for {{AppointmentDate}} at {{AppointmentTime}}."
    ),
    "confirmation_ack_cancel": (
        "We got your request to cancel your {{AppointmentDate}} visit — we'll call you."
    ),
    "confirmation_ack_reschedule": "We got your request to reschedule — we'll call you.",
}


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone (for example America/Chicago).")


class EmailUserManager(UserManager):
    """Users sign in with their email address; ``username`` is kept equal to it."""

    def _create_user(self, username, email, password, **extra_fields):
        email = self.normalize_email(email or username).lower()
        return super()._create_user(email, email, password, **extra_fields)

    def get_by_natural_key(self, username):
        return self.get(email__iexact=username)

    def create_user(self, email=None, password=None, **extra_fields):
        return super().create_user(email, email, password, **extra_fields)

    def create_superuser(self, email=None, password=None, **extra_fields):
        return super().create_superuser(email, email, password, **extra_fields)


class User(AbstractUser):
    email = models.EmailField("email address", unique=True)
    # Where the wizard's "send test to myself" texts go (E.164).
    phone = models.CharField("mobile phone", max_length=16, blank=True, validators=[E164_VALIDATOR])

    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    objects = EmailUserManager()

    def save(self, *args, **kwargs):
        self.email = self.email.lower()
        self.username = self.email
        super().save(*args, **kwargs)

    def __str__(self) -> str:
        return self.get_full_name() or self.email


class Role(models.IntegerChoices):
    """Staff roles, weakest first; each includes everything the weaker ones may do."""

    USER = 10, "User"
    USER_PLUS = 20, "User Plus"
    MANAGER = 30, "Manager"
    ADMINISTRATOR = 40, "Administrator"


# The practice's messaging policy (DESIGN §5.8) and its defaults: no caps until the practice
# sets them (null), state rules on, marketing texts without recorded opt-in allowed.
DEFAULT_MESSAGING_POLICY: dict = {
    "marketing_per_24h": None,
    "marketing_per_7d": None,
    "notice_per_24h": None,
    "care_per_24h": None,
    "sms_marketing_requires_opt_in": False,
    "state_rules": True,
}
POLICY_CAPS = ("marketing_per_24h", "marketing_per_7d", "notice_per_24h", "care_per_24h")
POLICY_SWITCHES = ("sms_marketing_requires_opt_in", "state_rules")


class Practice(models.Model):
    """A tenant: one chiropractic or wellness office."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    time_zone = models.CharField(
        max_length=64, default="America/New_York", validators=[validate_time_zone]
    )
    phone = models.CharField(max_length=16, blank=True, validators=[E164_VALIDATOR])
    address_line1 = models.CharField(max_length=200, blank=True)
    address_line2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=50, blank=True)
    postal_code = models.CharField(max_length=20, blank=True)
    # The SMS sending window (local time). DESIGN §5.6: default 08:00-21:00, a practice may
    # only narrow it.
    sending_window_start = models.TimeField(default=dt.time(8, 0))
    sending_window_end = models.TimeField(default=dt.time(21, 0))
    sms_from = models.CharField(
        "sender phone number", max_length=16, blank=True, validators=[E164_VALIDATOR]
    )
    email_from = models.EmailField("sender email address", blank=True)
    email_from_name = models.CharField("sender email name", max_length=200, blank=True)
    online_scheduling_url = models.URLField(blank=True)
    # Only the keys the practice set; ``policy`` merges them over the defaults.
    messaging_policy = models.JSONField(default=dict, blank=True)
    # Confirmations (DESIGN §7): the question an asking reminder ends with, and the one
    # acknowledgement per answer ({{AppointmentDate}} and {{AppointmentTime}} are filled in).
    # Blank means the default wording (``confirmation_wording``).
    confirmation_request_text = models.CharField(
        "confirmation question", max_length=160, blank=True, db_default=""
    )
    confirmation_ack_confirmed = models.CharField(
        "acknowledgement of a confirmation", max_length=320, blank=True, db_default=""
    )
    confirmation_ack_cancel = models.CharField(
        "acknowledgement of a cancellation request", max_length=320, blank=True, db_default=""
    )
    confirmation_ack_reschedule = models.CharField(
        "acknowledgement of a reschedule request", max_length=320, blank=True, db_default=""
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(sending_window_start__gte=dt.time(8, 0))
                & models.Q(sending_window_end__lte=dt.time(21, 0))
                & models.Q(sending_window_start__lt=models.F("sending_window_end")),
                name="practice_sending_window_within_default",
            ),
            # Stored in E.164 (every path normalizes first), so equal numbers are equal text;
            # any number of practices may have none.
            models.UniqueConstraint(
                fields=["sms_from"],
                condition=~models.Q(sms_from=""),
                name="practice_sms_from_unique",
                violation_error_code=SMS_FROM_TAKEN,
                violation_error_message=SMS_FROM_TAKEN_MESSAGE,
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def confirmation_wording(self, field: str) -> str:
        """The practice's wording for a confirmation field, or the default when blank."""
        return getattr(self, field) or CONFIRMATION_WORDING_DEFAULTS[field]

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    @property
    def policy(self) -> dict:
        """The messaging policy in force: the practice's settings over the defaults."""
        return {**DEFAULT_MESSAGING_POLICY, **(self.messaging_policy or {})}

    @property
    def postal_address(self) -> str:
        """The practice's postal address on one line (marketing email carries it)."""
        city_line = " ".join(p for p in (self.state, self.postal_code) if p)
        parts = [self.address_line1, self.address_line2, self.city, city_line]
        return ", ".join(p.strip() for p in parts if p and p.strip())

    def validate_constraints(self, exclude=None) -> None:
        """As Django's, but a taken sender number is an error of the ``sms_from`` field (Django
        reports a conditional unique constraint as an error of the whole form)."""
        try:
            super().validate_constraints(exclude=exclude)
        except ValidationError as error:
            errors = error.update_error_dict({})
            general = errors.pop(NON_FIELD_ERRORS, [])
            taken = [e for e in general if e.code == SMS_FROM_TAKEN]
            if taken:
                errors.setdefault("sms_from", []).extend(taken)
            if rest := [e for e in general if e.code != SMS_FROM_TAKEN]:
                errors[NON_FIELD_ERRORS] = rest
            raise ValidationError(errors) from None

    def clean(self) -> None:
        if self.sending_window_start and self.sending_window_end:
            errors = {}
            if self.sending_window_start < dt.time(8, 0):
                errors["sending_window_start"] = "The sending window cannot start before 08:00."
            if self.sending_window_end > dt.time(21, 0):
                errors["sending_window_end"] = "The sending window cannot end after 21:00."
            if self.sending_window_start >= self.sending_window_end:
                errors["sending_window_end"] = "The sending window must end after it starts."
            if errors:
                raise ValidationError(errors)


class Membership(models.Model):
    """One user's role in one practice."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.PositiveSmallIntegerField(choices=Role.choices, default=Role.USER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["practice__name"]
        constraints = [
            models.UniqueConstraint(fields=["practice", "user"], name="membership_once_per_user"),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.practice} ({self.get_role_display()})"

    def has_role(self, role: Role) -> bool:
        return self.role >= role


class ApiKey(models.Model):
    """A practice's key for its EMR connector. Only a SHA-256 digest of the secret is stored."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class AuditEvent(models.Model):
    """Who changed what, when, with the values before and after."""

    practice = models.ForeignKey(
        Practice, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL)
    actor_label = models.CharField(max_length=200, blank=True)
    action = models.CharField(max_length=100)
    target_type = models.CharField(max_length=100)
    target_id = models.CharField(max_length=64, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["practice", "-at"], name="audit_practice_at")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"


class ProviderCredentials(models.Model):
    """A practice's own Twilio and SendGrid credentials (DESIGN §3, §7). Blank fields fall back
    to the platform's environment settings (``trackstat.credentials.credentials_for``).

    The secrets are Fernet tokens (``trackstat.credentials``), never the secrets themselves;
    the account SID is not a secret and is stored as is."""

    practice = models.OneToOneField(
        Practice, on_delete=models.CASCADE, related_name="provider_credentials"
    )
    twilio_account_sid = models.CharField(max_length=34, blank=True)
    twilio_auth_token_encrypted = models.TextField(blank=True)
    sendgrid_api_key_encrypted = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "provider credentials"

    def __str__(self) -> str:
        return f"Provider credentials of practice {self.practice_id}"


# --- Telling the EMR (DESIGN §4.1.1): events, webhook endpoints, deliveries ------------------


class EventType(models.TextChoices):
    APPOINTMENT_CONFIRMATION_CHANGED = (
        "appointment.confirmation_changed",
        "Appointment confirmation changed",
    )
    PATIENT_OPTED_OUT = "patient.opted_out", "Patient opted out"
    PATIENT_OPTED_IN = "patient.opted_in", "Patient opted in"
    MESSAGE_FAILED = "message.failed", "Message failed"
    INBOX_MESSAGE_RECEIVED = "inbox.message_received", "Inbox message received"


class Event(models.Model):
    """Something an EMR connector may want to know, in the practice's feed
    (``GET /api/v1/events``) and POSTed to its webhooks. ``data`` holds ids, never PHI."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=64, choices=EventType.choices)
    data = models.JSONField()
    created_at = models.DateTimeField(db_index=True)
    # PostgreSQL: the id of the transaction that wrote the event. The feed hands out events
    # in (xid, id) order and only those of transactions that have ended, so one that
    # commits late is never stepped over by a poller's cursor (``trackstat.events``).
    # Null elsewhere (SQLite writes one transaction at a time: id order is commit order).
    xid = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["practice", "id"], name="event_practice_id"),
            models.Index(fields=["practice", "xid", "id"], name="event_practice_xid"),
        ]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"


class WebhookEndpoint(models.Model):
    """A URL of the practice's that receives the events it subscribed to, signed with a
    secret stored encrypted (``trackstat.credentials.secret_encrypt``)."""

    practice = models.ForeignKey(
        Practice, on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=2000)
    events = models.JSONField(default=list)
    secret_encrypted = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"Webhook {self.pk} of practice {self.practice_id}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event to one endpoint: due at ``next_attempt_at`` until a 2xx or the last retry."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE)
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    # The retry schedule counts from here (the event, or the last resend).
    first_due_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(status="pending"),
                name="webhook_delivery_due",
            )
        ]
        constraints = [
            models.UniqueConstraint(fields=["endpoint", "event"], name="webhook_delivery_once")
        ]

    def __str__(self) -> str:
        return f"Delivery of event {self.event_id} to webhook {self.endpoint_id}"


class WebhookAttempt(models.Model):
    """One POST of a delivery: when, what the receiver answered (or why it could not)."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE)
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=200, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"Attempt {self.pk} of delivery {self.delivery_id}"
