"""The send path under fire (issue 13): a campaign edited while its messages are in flight, an
unexpected error in one message of a batch, a provider call that raises after others were
accepted, a message row that vanishes mid-send, and the exactly-once mark used inside a
transaction. One message never takes its batch down with it, and what the provider accepted
is never lost."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.db import transaction
from django.test import Client

from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.steps import steps_materialize
from campaigns.models import Campaign
from messaging.models import MessageEvent, MessageStatus, OutboundMessage
from messaging.outbox import deliver, send
from messaging.outbox.deliver import MAX_ATTEMPTS
from messaging.outbox.dispatch import CLAIM_SECONDS, messages_dispatch
from messaging.outbox.reconcile import messages_reconcile
from messaging.outbox.send import messages_send
from messaging.providers.base import Accepted, ProviderError
from messaging.providers.sandbox import SandboxProvider
from patients.models import Patient
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, email, received, run, sms, statuses
from tests.campaigns.test_engine_exactly_once import (
    BIRTHDAY_ONE_STEP,
    RUN_AT,
    birthday_patients,
    campaign,
    claimed_messages,
)
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db

MINUTE = dt.timedelta(minutes=1)
STEP_REMOVED = "step removed from the campaign"
REMINDER = {"type": "scheduled_appointment", "when": "days_before", "days": 1}


@pytest.fixture
def calls(monkeypatch) -> list[int]:
    """The outbox id of every call to the (sandbox) provider."""
    seen: list[int] = []
    real_send = SandboxProvider.send

    def spy(self, outgoing):
        seen.append(outgoing.outbox_id)
        return real_send(self, outgoing)

    monkeypatch.setattr(SandboxProvider, "send", spy)
    return seen


def patch_campaign(campaign: Campaign, data: dict) -> None:
    """Staff (here an EMR connector's key) edit the running campaign through the API."""
    key = api_key_create(practice=campaign.practice, name="EMR").secret
    response = Client(headers={"Authorization": f"Api-Key {key}"}).patch(
        f"/api/v1/campaigns/{campaign.pk}", data, content_type="application/json"
    )
    assert response.status_code == 200, response.json()


# --- 11. editing a running campaign's steps ----------------------------------------------------


def test_shortening_a_reminder_campaign_skips_its_removed_step_and_sends_the_batch(calls):
    clinic = Clinic()
    reminder = drip(
        clinic,
        REMINDER,
        enabled_at=ny(2026, 6, 1),
        name="Reminder",
        messages=[
            # An email first: a campaign texts one number at most once a day (DESIGN §5.6).
            email("Tomorrow", "See you {{AppointmentDate}} at {{AppointmentTime}}"),
            sms("Bring your insurance card on {{AppointmentDate}}.", value=1, unit="hours"),
        ],
    )
    drip(
        clinic,
        {"type": "birthday"},
        enabled_at=ny(2026, 6, 1),
        name="Birthday",
        schedule={"frequency": "daily", "time": "11:00"},
        messages=[sms("Happy birthday, {{PatientFirstName}}!")],
    )
    ann = clinic.patient(first_name="Ann", phone="3125550101", email="ann@example.com")
    clinic.appointment(ann, ny(2026, 6, 16, 9, 30))
    bob = clinic.patient(first_name="Bob", phone="3125550102", birth_date=dt.date(1980, 6, 15))
    run(ny(2026, 6, 15, 10, 0))  # Ann's first reminder
    at = ny(2026, 6, 15, 11, 0)
    campaigns_run_due(now=at)
    steps_materialize(now=at)  # Ann's second reminder and Bob's birthday text, both queued
    # Staff shorten the reminder campaign to its first step while both wait to be sent.
    patch_campaign(reminder, {"messages": [sms("See you {{AppointmentDate}}")]})

    claimed = messages_dispatch(now=at)
    result = messages_send(message_ids=claimed, now=at)

    assert len(claimed) == 2  # one batch
    assert statuses(ann) == [
        (1, MessageStatus.DELIVERED, ""),
        (2, MessageStatus.SKIPPED, STEP_REMOVED),
    ]
    assert statuses(bob) == [(1, MessageStatus.DELIVERED, "")]
    assert sorted(result.values()) == [MessageStatus.DELIVERED, MessageStatus.SKIPPED]
    assert len(calls) == 2  # Ann's first reminder and Bob's text; nothing re-queued
    run(at + MINUTE)
    run(ny(2026, 6, 16, 12, 0))
    assert len(calls) == 2
    assert [step for _, step, _ in received(ann)] == [1]


def waiting_reminder(clinic: Clinic) -> tuple[Campaign, Patient]:
    """A one-step reminder made at 10:00 that waits for the noon sending window."""
    reminder = drip(
        clinic,
        REMINDER,
        enabled_at=ny(2026, 6, 1),
        name="Reminder",
        messages=[sms("See you {{AppointmentDate}}. Directions: https://maps.test/x")],
    )
    clinic.practice.sending_window_start = dt.time(12, 0)
    clinic.practice.save()
    ann = clinic.patient(phone="3125550101")
    visit = clinic.appointment(ann, ny(2026, 6, 16, 9, 30))
    run(ny(2026, 6, 15, 10, 0))
    clinic.change(visit, start=ny(2026, 6, 20, 14, 0))  # the EMR moves the appointment
    return reminder, ann


def test_a_made_message_follows_its_appointment_with_its_own_text_whatever_the_edits():
    clinic = Clinic()
    reminder, ann = waiting_reminder(clinic)
    # Staff rewrite the step as an email while the text waits: the text keeps its own words.
    email_step = {
        "channel": "email",
        "subject": "Your visit",
        "body": "<p>Your visit is on {{AppointmentDate}}.</p>",
        "delay": {"value": 0, "unit": "days"},
    }
    patch_campaign(reminder, {"messages": [email_step]})

    run(ny(2026, 6, 15, 12, 0))  # re-checked: rescheduled for the day before the new date
    run(ny(2026, 6, 19, 12, 0))

    [(_, _, body)] = received(ann)
    message = OutboundMessage.objects.get(patient=ann)
    assert message.channel == "sms"
    assert body.startswith("See you Saturday, June 20. Directions: https://trackstat.test/l/")
    assert "<p>" not in body


def test_a_message_made_before_messages_kept_their_text_follows_its_step():
    clinic = Clinic()
    _, ann = waiting_reminder(clinic)
    OutboundMessage.objects.filter(patient=ann).update(subject_template="", body_template="")

    run(ny(2026, 6, 15, 12, 0))
    run(ny(2026, 6, 19, 12, 0))

    [(_, _, body)] = received(ann)
    assert body.startswith("See you Saturday, June 20. Directions: https://trackstat.test/l/")


def test_an_unexpected_error_in_one_message_moves_only_that_message(calls, monkeypatch, caplog):
    bad, *good = claimed_messages(3)
    Patient.objects.filter(messages__pk=bad).update(last_name="Zanzibar")
    real_recheck = send._recheck

    def recheck(message, now, checks):
        if message.pk == bad:
            raise KeyError(message.patient.last_name)  # PHI in the error: never logged
        return real_recheck(message, now, checks)

    monkeypatch.setattr(send, "_recheck", recheck)

    with caplog.at_level(logging.INFO):
        result = messages_send(message_ids=[bad, *good], now=RUN_AT)

    assert [result[pk] for pk in good] == [MessageStatus.DELIVERED] * 2
    assert sorted(calls) == sorted(good)
    message = OutboundMessage.objects.get(pk=bad)
    assert result[bad] == message.status == MessageStatus.QUEUED
    assert message.status_reason == "retry after an internal error (KeyError)"
    assert message.scheduled_for == RUN_AT + MINUTE  # a backoff, as for provider errors
    assert message.provider_called_at is None
    assert f"message {bad}" in caplog.text
    assert "KeyError" in caplog.text
    assert "Zanzibar" not in caplog.text

    # Retried at each claim until MAX_ATTEMPTS, then failed: never stuck, never sent.
    at = RUN_AT
    for _ in range(MAX_ATTEMPTS):
        at += dt.timedelta(minutes=10)
        claimed = messages_dispatch(now=at)
        if claimed:
            messages_send(message_ids=claimed, now=at)
    message.refresh_from_db()
    assert (message.status, message.attempts) == (MessageStatus.FAILED, MAX_ATTEMPTS)
    assert message.status_reason == "could not be prepared for sending (KeyError)"
    assert bad not in calls


# --- 15. the send path: acceptances, vanished rows, the exactly-once mark ---------------------


class Stub:
    """A provider that accepts every message except the ones it is told to fail."""

    name = "stub"

    def __init__(self, fail: dict[int, BaseException] | None = None, before=None):
        self.fail = fail or {}
        self.before = before or {}
        self.calls: list[int] = []

    def send(self, outgoing):
        self.calls.append(outgoing.outbox_id)
        if outgoing.outbox_id in self.before:
            self.before[outgoing.outbox_id]()
        if outgoing.outbox_id in self.fail:
            raise self.fail[outgoing.outbox_id]
        return Accepted(provider_id=f"stub-{outgoing.outbox_id}")


@pytest.fixture
def use(monkeypatch):
    def install(provider: Stub) -> Stub:
        monkeypatch.setattr(
            "messaging.outbox.deliver.provider_for", lambda channel, practice: provider
        )
        return provider

    return install


def sent_ids() -> set[int]:
    return set(
        OutboundMessage.objects.filter(status=MessageStatus.SENT).values_list("pk", flat=True)
    )


def test_an_unexpected_provider_error_keeps_the_batch_s_acceptances(use):
    first, second, odd, last = claimed_messages(4)
    provider = use(Stub(fail={odd: ValueError("the SDK broke")}))

    result = messages_send(message_ids=[first, second, odd, last], now=RUN_AT)

    assert provider.calls == [first, second, odd, last]
    assert sent_ids() == {first, second, last}
    for pk in (first, second, last):
        message = OutboundMessage.objects.get(pk=pk)
        assert (result[pk], message.provider_id) == (MessageStatus.SENT, f"stub-{pk}")
    # The odd one may have been taken: reconciled, never sent again blindly.
    assert result[odd] == MessageStatus.UNKNOWN
    # Later ticks and reconciliation past its deadline fail only the odd one.
    run(RUN_AT + dt.timedelta(seconds=CLAIM_SECONDS) + MINUTE)
    messages_reconcile(now=RUN_AT + dt.timedelta(days=2), older_than=dt.timedelta(0))
    assert sent_ids() == {first, second, last}
    assert OutboundMessage.objects.get(pk=odd).status == MessageStatus.FAILED
    assert provider.calls == [first, second, odd, last]


class WorkerLost(BaseException):
    """The worker is stopped in the middle of a provider call (a shutdown, a hard limit)."""


def test_a_worker_stopped_mid_batch_still_records_what_the_provider_accepted(use):
    first, second, lost, never = claimed_messages(4)
    use(Stub(fail={lost: WorkerLost()}))

    with pytest.raises(WorkerLost):
        messages_send(message_ids=[first, second, lost, never], now=RUN_AT)

    assert sent_ids() == {first, second}
    for pk in (first, second):
        assert MessageEvent.objects.filter(message_id=pk, status=MessageStatus.SENT).count() == 1
    in_flight = OutboundMessage.objects.get(pk=lost)
    assert (in_flight.status, in_flight.provider_called_at) == (MessageStatus.SENDING, RUN_AT)
    untouched = OutboundMessage.objects.get(pk=never)
    assert (untouched.status, untouched.provider_called_at) == (MessageStatus.SENDING, None)
    # The claims run out: the one in flight is reconciled, the one never called is re-queued.
    messages_dispatch(now=RUN_AT + dt.timedelta(seconds=CLAIM_SECONDS) + MINUTE)
    assert OutboundMessage.objects.get(pk=lost).status == MessageStatus.UNKNOWN
    assert sent_ids() == {first, second}


def test_a_message_row_that_vanishes_mid_send_does_not_crash_the_batch(use):
    accepted_gone, refused_gone, first, last = claimed_messages(4)

    def delete(message_id: int):
        # The row goes while the message is at the provider (an operator's delete: a patient
        # with history can no longer be deleted on its own, but the row can still vanish).
        return lambda: OutboundMessage.objects.filter(pk=message_id).delete()

    provider = use(
        Stub(
            fail={refused_gone: ProviderError("429", retryable=True)},
            before={pk: delete(pk) for pk in (accepted_gone, refused_gone)},
        )
    )

    result = messages_send(message_ids=[accepted_gone, first, refused_gone, last], now=RUN_AT)

    assert sorted(provider.calls) == sorted([accepted_gone, first, refused_gone, last])
    assert sent_ids() == {first, last}
    assert result == {first: MessageStatus.SENT, last: MessageStatus.SENT}
    assert not OutboundMessage.objects.filter(pk__in=[accepted_gone, refused_gone]).exists()


def test_a_message_row_that_vanishes_mid_send_does_not_crash_an_inline_tick(calls, monkeypatch):
    clinic = Clinic()
    birthday_patients(clinic, 3)
    campaign(clinic.practice, BIRTHDAY_ONE_STEP)
    real_send = SandboxProvider.send

    def send_and_lose(self, outgoing):
        accepted = real_send(self, outgoing)
        if not calls[1:]:  # the first message sent: its row is deleted meanwhile
            OutboundMessage.objects.filter(pk=outgoing.outbox_id).delete()
        return accepted

    monkeypatch.setattr(SandboxProvider, "send", send_and_lose)

    summary = run(RUN_AT)

    assert (summary["messages_dispatched"], summary["messages_sent"]) == (3, 2)
    assert len(calls) == 3
    assert OutboundMessage.objects.filter(status=MessageStatus.DELIVERED).count() == 2


def test_the_provider_called_mark_refuses_to_run_inside_a_transaction(calls):
    [message_id] = claimed_messages(1)

    with pytest.raises(RuntimeError, match="commit on its own"), transaction.atomic():
        messages_send(message_ids=[message_id], now=RUN_AT)
    with pytest.raises(RuntimeError, match="commit on its own"), transaction.atomic():
        deliver.provider_called_mark(message_id, RUN_AT)

    assert calls == []
    message = OutboundMessage.objects.get(pk=message_id)
    assert (message.status, message.provider_called_at) == (MessageStatus.SENDING, None)
    # Outside a transaction (the test's own aside) it marks, and the message goes out once.
    assert messages_send(message_ids=[message_id], now=RUN_AT) == {
        message_id: MessageStatus.DELIVERED
    }
    assert calls == [message_id]
