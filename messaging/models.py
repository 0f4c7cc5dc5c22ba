"""The outbox: every message TrackStat sends or decided not to send, with its history.

Exactly one outbound message per (enrollment, step), by a unique constraint. Due times live
here (``scheduled_for``), claimed with ``SELECT … FOR UPDATE SKIP LOCKED``; a message moves
through the states of DESIGN §6 and every transition is a MessageEvent.
"""

from __future__ import annotations

from django.db import models

from patients.models import Patient
from trackstat.models import Practice


class MessageStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    UNKNOWN = "unknown", "Unknown (reconciling)"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    UNDELIVERED = "undelivered", "Undelivered"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    EXPIRED = "expired", "Expired"
    CANCELED = "canceled", "Canceled"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    BOUNCED = "bounced", "Bounced"
    DROPPED = "dropped", "Dropped"
    SPAM = "spam", "Marked as spam"


# How far along a message is: a status only ever moves to a higher rank (a late "sent" never
# overwrites "delivered"). Final states before sending share the top rank: nothing follows.
STATUS_RANK = {
    MessageStatus.QUEUED: 0,
    MessageStatus.SENDING: 1,
    MessageStatus.UNKNOWN: 2,
    MessageStatus.SENT: 3,
    MessageStatus.DELIVERED: 4,
    MessageStatus.UNDELIVERED: 4,
    MessageStatus.FAILED: 4,
    MessageStatus.BOUNCED: 4,
    MessageStatus.DROPPED: 4,
    MessageStatus.OPENED: 5,
    MessageStatus.CLICKED: 6,
    MessageStatus.SPAM: 7,
    MessageStatus.SKIPPED: 9,
    MessageStatus.EXPIRED: 9,
    MessageStatus.CANCELED: 9,
}
# Accepted by the provider: the message went out (reports count these as sent).
SENT_STATUSES = [
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.UNDELIVERED,
    MessageStatus.OPENED,
    MessageStatus.CLICKED,
    MessageStatus.BOUNCED,
    MessageStatus.SPAM,
]

# Never went out, and never will (the unique one-message-per-address rule ignores them).
NOT_RECEIVED = [MessageStatus.SKIPPED, MessageStatus.CANCELED, MessageStatus.EXPIRED]


class Channel(models.TextChoices):
    """How a message goes out: the one channel vocabulary of campaigns' steps and the
    outbox."""

    SMS = "sms", "SMS"
    EMAIL = "email", "Email"


class Purpose(models.TextChoices):
    """What a campaign's messages are for (DESIGN §5.8): each purpose has its own caps, and
    marketing needs consent where the practice requires it."""

    CARE = "care", "Care (appointments and treatment)"
    NOTICE = "notice", "Notice (practice operations)"
    MARKETING = "marketing", "Marketing"


class OutboundMessage(models.Model):
    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    # What was sent is history: deleting its enrollment, campaign or patient alone is refused
    # (RESTRICT; a campaign is archived instead), while deleting the whole practice removes
    # everything of it.
    # Empty for test sends and Inbox replies (blasts enroll like drips).
    enrollment = models.ForeignKey(
        "campaigns.Enrollment",
        null=True,
        blank=True,
        on_delete=models.RESTRICT,
        related_name="messages",
    )
    campaign = models.ForeignKey(
        "campaigns.Campaign", null=True, blank=True, on_delete=models.RESTRICT, related_name="+"
    )
    step_position = models.PositiveSmallIntegerField(null=True, blank=True)
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.RESTRICT, related_name="messages"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    to = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField(blank=True)
    # The step's templates this message was rendered from, kept by a message about an
    # appointment: the send re-renders it from them when the appointment moves, whatever
    # edits the campaign's steps had since (a message is self-contained).
    subject_template = models.CharField(max_length=200, blank=True, default="", db_default="")
    body_template = models.TextField(blank=True, default="", db_default="")
    # The appointment this text asks the patient to confirm (DESIGN §7); a reply within 72
    # hours of the latest such text is read as the answer.
    confirmation_appointment = models.ForeignKey(
        "patients.Appointment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=20, choices=MessageStatus.choices, default=MessageStatus.QUEUED
    )
    status_reason = models.CharField(max_length=200, blank=True)
    # The A/B variant of a campaign's variant step this message carries (DESIGN §5.9);
    # null on every other message.
    variant = models.CharField(max_length=20, null=True, blank=True)  # noqa: DJ001 (null: no variant step)
    scheduled_for = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    # Set just before the provider is called: a message found "sending" with it set may have
    # been accepted, so it is reconciled, never blindly sent again.
    provider_called_at = models.DateTimeField(null=True, blank=True)
    # Set when a claimed message passes its pre-send re-check (the claim clears it): from then
    # on it is going out, and the practice's frequency caps count it for the patient's other
    # messages even before its provider call (messaging.outbox.trust).
    passed_check_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    provider = models.CharField(max_length=20, blank=True)
    provider_id = models.CharField(max_length=100, blank=True)
    error_code = models.CharField(max_length=50, blank=True)
    is_test = models.BooleanField(default=False)
    sent_at = models.DateTimeField(null=True, blank=True)
    # An opt-out that came in answer to this message (STOP after it, its unsubscribe link,
    # a SendGrid unsubscribe or spam report): reports attribute it to this campaign.
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    # Report roll-ups (``reports.rollup``): every write that changes what a report counts
    # (each transition, an unsubscribe attributed to the message) sets ``report_pending``;
    # a database trigger then queues the message for the roll-up (``reports.PendingMessage``)
    # in the same transaction. The flag itself stays set. ``report_flags`` and ``report_day``
    # are no longer written: what was counted lives in ``reports.MessageFacts`` (copied from
    # them by its migration); they can be dropped once every database has migrated.
    report_pending = models.BooleanField(default=True, db_default=True)
    report_flags = models.PositiveSmallIntegerField(default=0, db_default=0)
    report_day = models.DateField(null=True, blank=True)
    # A campaign sends at most one message per address per local day, however many patients
    # share it (DESIGN §5.6): the address as a key (the phone as stored, E.164; the email in
    # lower case) and the practice-local day the message goes out, set when a campaign message
    # is created and never changed (a message rescheduled or re-addressed keeps its place).
    address_key = models.CharField(max_length=254, blank=True, default="")
    local_day = models.DateField(null=True, blank=True)
    # The campaign's purpose and priority when the message was made (DESIGN §5.8), so the
    # outbox applies the practice's caps without reading campaigns; empty for test sends,
    # Inbox replies and the replies owed to a patient (they never count toward caps).
    purpose = models.CharField(
        max_length=10, choices=Purpose.choices, blank=True, default="", db_default=""
    )
    priority = models.IntegerField(default=0, db_default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["enrollment", "step_position"],
                condition=models.Q(enrollment__isnull=False),
                name="one_message_per_enrollment_step",
            ),
            # Of a campaign's messages to one address on one day, one may go out: the others
            # are skipped (``shared_address``) or never went (canceled, expired).
            models.UniqueConstraint(
                fields=["campaign", "channel", "address_key", "local_day"],
                condition=models.Q(local_day__isnull=False)
                & ~models.Q(status__in=["skipped", "canceled", "expired"]),
                name="one_message_per_address_per_day",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "scheduled_for"], name="outbox_due"),
            models.Index(
                fields=["practice", "status", "scheduled_for"], name="outbox_practice_due"
            ),
            models.Index(fields=["patient", "channel", "status"], name="outbox_patient_channel"),
            # Frequency caps count a patient's recent messages of one purpose.
            models.Index(
                fields=["patient", "purpose", "scheduled_for"],
                name="outbox_patient_purpose",
                condition=~models.Q(purpose=""),
            ),
            models.Index(fields=["campaign", "status"], name="outbox_campaign_status"),
            # What a practice sent on a day (the Today page and its list).
            models.Index(fields=["practice", "sent_at"], name="outbox_practice_sent"),
            models.Index(fields=["provider_id"], name="outbox_provider_id"),
        ]

    def __str__(self) -> str:
        return f"message {self.pk} ({self.status})"


class MessageEvent(models.Model):
    """One transition of a message: what, when, and who said so."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(OutboundMessage, on_delete=models.CASCADE, related_name="events")
    status = models.CharField(max_length=20, choices=MessageStatus.choices)
    reason = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField()
    source = models.CharField(max_length=20)  # engine, provider, webhook, staff
    provider_event_id = models.CharField(max_length=200, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["message", "at"], name="event_message_at")]

    def __str__(self) -> str:
        return f"{self.message_id} {self.status} at {self.at:%Y-%m-%d %H:%M:%S}"


class SendAllowance(models.Model):
    """How many messages of one practice the dispatcher has claimed in the current wall-clock
    minute (UTC): the per-minute send allowance (``SEND_RATE_PER_PRACTICE_PER_MINUTE``) holds
    across ticks that run at once or one after another. One row per practice, locked while
    the practice's messages are claimed."""

    practice = models.OneToOneField(
        Practice, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    minute = models.DateTimeField()
    claimed = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.practice_id}: {self.claimed} at {self.minute:%Y-%m-%d %H:%M}"


class SandboxMessage(models.Model):
    """What the sandbox provider "sent": visible on the Sandbox page, nothing leaves."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(
        OutboundMessage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    provider_id = models.CharField(max_length=100, unique=True)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    to = models.CharField(max_length=254)
    sender = models.CharField(max_length=254, blank=True)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.provider_id


class TrackedLink(models.Model):
    """A link in one message, rewritten to ``/l/<token>``: opening it records the click (the
    ``clicked_link`` goal) and redirects to ``url``. One per distinct URL per message."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(
        OutboundMessage, on_delete=models.CASCADE, related_name="tracked_links"
    )
    token = models.CharField(max_length=32, unique=True)
    url = models.TextField()
    first_clicked_at = models.DateTimeField(null=True, blank=True)
    click_count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return self.token


class UnsubscribeToken(models.Model):
    """The random token of one email's unsubscribe link: it names the message (and so the
    patient and practice) without putting anything about the patient in the URL, and
    authorizes exactly one action, opting that patient out of email."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    message = models.OneToOneField(
        OutboundMessage, on_delete=models.CASCADE, related_name="unsubscribe_token"
    )
    token = models.CharField(max_length=43, unique=True)

    def __str__(self) -> str:
        return f"unsubscribe token of message {self.message_id}"


class InboundHandling(models.TextChoices):
    STOP = "stop", "Opt-out keyword"
    START = "start", "Opt-in keyword"
    HELP = "help", "Help keyword"
    OPT_OUT_WORDS = "opt_out", "Opt-out in the patient's words"
    INBOX = "inbox", "Inbox"


class InboundMessage(models.Model):
    """One SMS a patient (or anyone) sent to a practice's number, stored once per provider
    message id. Keywords are handled at once; everything else waits in the Inbox."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    # None when the sender's number matches no patient of the practice.
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.SET_NULL, related_name="inbound_messages"
    )
    from_number = models.CharField(max_length=32)
    to_number = models.CharField(max_length=32)
    body = models.TextField(blank=True)
    provider_message_id = models.CharField(max_length=100, unique=True)
    received_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)
    handled_as = models.CharField(max_length=10, choices=InboundHandling.choices)
    # An Inbox reply the opt-out rules were unsure about: staff see "might be an opt-out".
    might_be_opt_out = models.BooleanField(default=False, db_default=False)
    # A reply to a reminder that asked (DESIGN §7): the appointment it is about and how it
    # was read (``confirm``, ``cancel``, ``reschedule`` or ``unclear``); blank otherwise.
    confirmation_appointment = models.ForeignKey(
        "patients.Appointment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    confirmation_answer = models.CharField(max_length=12, blank=True, default="", db_default="")

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(
                fields=["practice", "handled_as", "received_at"], name="inbound_practice_inbox"
            ),
            models.Index(fields=["patient", "received_at"], name="inbound_patient_thread"),
        ]

    def __str__(self) -> str:
        return f"inbound {self.provider_message_id} ({self.handled_as})"


class CannedReply(models.Model):
    """A ready-made Inbox answer: Managers and above keep the list, everyone may use it."""

    practice = models.ForeignKey(Practice, on_delete=models.CASCADE, related_name="+")
    title = models.CharField(max_length=100)
    body = models.TextField(max_length=1600)

    class Meta:
        ordering = ["title", "id"]

    def __str__(self) -> str:
        return self.title


class WebhookKind(models.TextChoices):
    TWILIO_STATUS = "twilio_status", "Twilio status callback"
    TWILIO_INBOUND = "twilio_inbound", "Twilio inbound SMS"
    SENDGRID = "sendgrid", "SendGrid event"


class WebhookEvent(models.Model):
    """A verified provider webhook event, stored before the provider is answered: what the
    provider said is never lost to a broker outage or a failing worker
    (``messaging.webhook_intake``). One row per provider event (``event_key``, so a
    redelivery stores nothing new); a task applies it at once and a beat sweep catches up
    what is still unprocessed. An event that cannot be applied is kept and marked failed.

    ``payload`` is JSON text, not ``jsonb``: PostgreSQL refuses a NUL in ``jsonb`` and text
    alike, and JSON text keeps it escaped. It holds only what applying needs (ids and
    statuses; an inbound SMS's numbers and words) and is emptied once applied. Never logged.
    """

    kind = models.CharField(max_length=20, choices=WebhookKind.choices)
    # Null when unknown at intake (a status callback for no outbox row, say).
    practice = models.ForeignKey(
        Practice, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # The provider's id of the event; null when it sent none usable (then never deduplicated).
    event_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    payload = models.TextField(blank=True)
    received_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Given up (malformed, or failing every attempt): kept for the operator, never retried.
    failed_at = models.DateTimeField(null=True, blank=True)
    # Why it failed, in our words or an exception's class name: never the payload.
    error = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["received_at", "id"]
        indexes = [
            # The sweep's scan, in arrival (id) order.
            models.Index(
                fields=["id"],
                name="webhook_event_pending",
                condition=models.Q(processed_at__isnull=True, failed_at__isnull=True),
            ),
            # The retention clean-up.
            models.Index(fields=["received_at"], name="webhook_event_received"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} event {self.pk}"
