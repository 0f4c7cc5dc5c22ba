"""Read-side queries of the outbox, scoped to one practice."""

from __future__ import annotations

from django.db.models import QuerySet

from messaging.models import OutboundMessage, SandboxMessage
from patients.models import Patient
from trackstat.models import Practice


def patient_messages(*, practice: Practice, patient: Patient) -> QuerySet[OutboundMessage]:
    """A patient's messages, newest first, with their campaign."""
    return (
        OutboundMessage.objects.filter(practice=practice, patient=patient)
        .select_related("campaign")
        .order_by("-scheduled_for", "-id")
    )


def sandbox_messages(*, practice: Practice) -> QuerySet[SandboxMessage]:
    return SandboxMessage.objects.filter(practice=practice).order_by("-created_at", "-id")
