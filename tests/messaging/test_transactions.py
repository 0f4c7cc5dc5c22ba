"""The outbox's top-level actions declare their transactions (issue 15, move 6): each commits
on its own, because what follows it (a provider call, a send task, the next message) must
see it committed, so none of them runs nested in a caller's transaction; nothing is written
when one is refused."""

from __future__ import annotations

import pytest
from django.db import transaction

from messaging.links import link_click
from messaging.models import OutboundMessage, WebhookEvent, WebhookKind
from messaging.outbox.dispatch import messages_dispatch
from messaging.outbox.reconcile import messages_reconcile
from messaging.services import message_send_now
from messaging.webhook_intake import Incoming, webhook_events_store
from tests.campaigns.builders import ny
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

NOON = ny(2026, 6, 15, 12, 0)
NESTED = "cannot be nested|commit on its own"


def queued(practice, **fields) -> OutboundMessage:
    patient = PatientFactory(practice=practice)
    return OutboundMessage.objects.create(
        practice=practice,
        patient=patient,
        channel="sms",
        to=patient.phone,
        body="Hello",
        scheduled_for=NOON,
        **fields,
    )


def test_a_staff_send_is_refused_inside_a_transaction(practice):
    with pytest.raises(RuntimeError, match=NESTED), transaction.atomic():
        message_send_now(practice=practice, reason="test", channel="sms", to="+13125550199")
    assert not OutboundMessage.objects.exists()


def test_a_claim_is_refused_inside_a_transaction(practice):
    message = queued(practice)
    with pytest.raises(RuntimeError, match=NESTED), transaction.atomic():
        messages_dispatch(now=NOON)
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("queued", 0)


def test_reconciling_is_refused_inside_a_transaction(practice):
    queued(practice, status="unknown", provider_called_at=NOON)
    with pytest.raises(RuntimeError, match=NESTED), transaction.atomic():
        messages_reconcile(now=ny(2026, 6, 16, 12, 0), older_than=ny(2026, 6, 16) - NOON)
    assert OutboundMessage.objects.get().status == "unknown"


def test_storing_webhook_events_and_a_click_are_refused_inside_a_transaction():
    with pytest.raises(RuntimeError, match=NESTED), transaction.atomic():
        webhook_events_store(
            kind=WebhookKind.TWILIO_STATUS, incoming=[Incoming(key="k", payload={})], now=NOON
        )
    assert not WebhookEvent.objects.exists()
    with pytest.raises(RuntimeError, match=NESTED), transaction.atomic():
        link_click(token="unknown", now=NOON)
