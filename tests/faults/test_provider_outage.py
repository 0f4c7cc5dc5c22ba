"""Fault: the provider answers 500 for a minute, then recovers (issue 9).

Time is explicit: the ticks run at the instants a beat would give them (every minute), and
the outage is switched on the fake Twilio server for the ticks inside that minute. Nothing
sleeps. Runs on SQLite too: nothing here depends on concurrency.
"""

from __future__ import annotations

import pytest

from campaigns.engine import tick
from messaging import fake_providers
from messaging.models import MessageStatus, OutboundMessage
from tests.campaigns.builders import Clinic
from tests.faults.conftest import (
    DAY,
    MINUTE,
    RUN_AT,
    assert_each_step_accepted_once,
    birthday_patients,
    birthday_spec,
    campaign_for,
    due_steps,
)

pytestmark = pytest.mark.django_db

RETRY = "retry after provider error 20500"


def test_a_provider_answering_500_for_a_minute_gets_each_step_once_after_backoff(
    start_fake, monkeypatch
):
    fake = start_fake()
    clinic = Clinic()
    patients = birthday_patients(clinic, 5)
    campaign = campaign_for(clinic.practice, birthday_spec(steps=2))
    for patient in patients:  # Twilio answers 500 (code 20500) to every send ...
        monkeypatch.setitem(
            fake_providers.TWILIO_ERRORS, patient.phone, (500, 20500, "Internal Server Error")
        )

    first = tick(now=RUN_AT, send="inline")
    assert (first["messages_dispatched"], first["messages_sent"]) == (5, 0), first
    step_1 = OutboundMessage.objects.filter(step_position=1)
    # Not accepted, so safe to send again: back in the queue, a minute later (backoff 1 min).
    assert set(step_1.values_list("status", "status_reason", "scheduled_for", "attempts")) == {
        (MessageStatus.QUEUED, RETRY, RUN_AT + MINUTE, 1)
    }

    second = tick(now=RUN_AT + MINUTE, send="inline")  # ... still inside the minute
    assert (second["messages_dispatched"], second["messages_sent"]) == (5, 0), second
    assert set(step_1.values_list("status", "scheduled_for", "attempts")) == {
        (MessageStatus.QUEUED, RUN_AT + 3 * MINUTE, 2)  # the backoff doubled: 2 minutes
    }
    for patient in patients:  # ... and then recovers.
        del fake_providers.TWILIO_ERRORS[patient.phone]

    waiting = tick(now=RUN_AT + 2 * MINUTE, send="inline")
    assert waiting["messages_dispatched"] == 0, "a retry went out before its backoff ended"
    recovered = tick(now=RUN_AT + 3 * MINUTE, send="inline")
    assert (recovered["messages_dispatched"], recovered["messages_sent"]) == (5, 5), recovered
    for minutes in range(4, 11):
        assert tick(now=RUN_AT + minutes * MINUTE, send="inline")["messages_dispatched"] == 0

    for message in step_1:
        assert message.status == MessageStatus.SENT
        assert message.attempts == 3
        assert fake.posts_for(message.pk) == 3, "two 500s and one acceptance per message"
        assert list(message.events.values_list("status", "reason")) == [
            (MessageStatus.QUEUED, ""),
            (MessageStatus.SENDING, ""),
            (MessageStatus.QUEUED, RETRY),
            (MessageStatus.SENDING, ""),
            (MessageStatus.QUEUED, RETRY),
            (MessageStatus.SENDING, ""),
            (MessageStatus.SENT, ""),
        ]
    # The next day's step goes out on its first try.
    assert tick(now=RUN_AT + DAY, send="inline")["messages_sent"] == 5
    assert all(
        fake.posts_for(pk) == 1
        for pk in OutboundMessage.objects.filter(step_position=2).values_list("pk", flat=True)
    )
    assert_each_step_accepted_once(fake, due_steps(campaign, [1, 2]))
