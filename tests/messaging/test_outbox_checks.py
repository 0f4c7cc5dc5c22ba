"""The outbox's pre-send re-checks (``messaging.outbox.checks``): the apps above messaging
register their own at start; the outbox runs each once per batch and per message, in the
message's savepoint, saves what a check rewrote, and sends without any check registered."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from campaigns.engine.recheck import CAMPAIGN_RECHECK
from messaging.inbox import inbox_reply_send
from messaging.models import MessageStatus, OutboundMessage, SandboxMessage
from messaging.outbox import checks
from messaging.outbox.checks import Hold, PreSendCheck, pre_send_check_register, pre_send_checks
from messaging.outbox.send import messages_send
from messaging.services import message_send_now
from tests.campaigns.builders import ny
from tests.factories import PatientFactory, UserFactory

pytestmark = pytest.mark.django_db

NOON = ny(2026, 6, 15, 12, 0)
FOOTER = "\nReply STOP to opt out"


@pytest.fixture
def no_checks(monkeypatch) -> None:
    """The outbox as messaging alone has it: no re-check registered by another app."""
    monkeypatch.setattr(checks, "_registry", {})


def claimed(practice, patient, body: str = "Hello") -> OutboundMessage:
    """A text to ``patient`` claimed for sending at NOON (no campaign: staff's own)."""
    return OutboundMessage.objects.create(
        practice=practice,
        patient=patient,
        channel="sms",
        to=patient.phone,
        body=body,
        status=MessageStatus.SENDING,
        scheduled_for=NOON,
        claimed_until=NOON + dt.timedelta(minutes=5),
        attempts=1,
    )


def test_campaigns_register_their_re_check_at_app_start():
    registered = {check.name: check for check in pre_send_checks()}
    assert registered["campaigns"] is CAMPAIGN_RECHECK
    # What it reads of each message comes with the outbox's locking read of the batch.
    assert "enrollment__campaign" in CAMPAIGN_RECHECK.related


@time_machine.travel(NOON, tick=False)
def test_the_outbox_sends_without_any_registered_check(no_checks, practice):
    assert pre_send_checks() == []
    test = message_send_now(
        practice=practice, reason="test", channel="sms", to="+13125550199", body="Hi", is_test=True
    )
    assert test.status == MessageStatus.DELIVERED
    assert SandboxMessage.objects.get(message=test).body == "Hi"  # a test: no STOP footer
    # A patient's message without a campaign: the outbox's own rules still hold.
    ann = PatientFactory(practice=practice)
    reply = inbox_reply_send(practice=practice, patient=ann, body="Hello", user=UserFactory())
    assert (reply.status, reply.body) == (MessageStatus.DELIVERED, "Hello" + FOOTER)
    ann.sms_opt_out = True
    ann.save()
    stopped = claimed(practice, ann)
    assert messages_send(message_ids=[stopped.pk], now=NOON) == {stopped.pk: MessageStatus.SKIPPED}


def test_a_registered_check_reads_once_per_batch_and_judges_each_message(no_checks, practice):
    held, rewritten, plain = (claimed(practice, PatientFactory(practice=practice)) for _ in "abc")
    batches: list[list[int]] = []
    later = NOON + dt.timedelta(hours=2)

    def batch(messages, now):
        batches.append([message.pk for message in messages])

        def check(message):
            if message.pk == held.pk:
                message.body = "Moved"  # a rewrite held back to the queue is kept
                return Hold(MessageStatus.QUEUED, "not yet", until=later)
            if message.pk == rewritten.pk:
                message.subject, message.body = "", "Rewritten"
            return None

        return check

    pre_send_check_register(PreSendCheck(name="test", batch=batch))
    statuses = messages_send(message_ids=[plain.pk, held.pk, rewritten.pk], now=NOON)

    assert batches == [sorted([plain.pk, held.pk, rewritten.pk])]
    assert statuses == {
        held.pk: MessageStatus.QUEUED,
        rewritten.pk: MessageStatus.DELIVERED,
        plain.pk: MessageStatus.DELIVERED,
    }
    held.refresh_from_db()
    assert (held.status_reason, held.scheduled_for, held.claimed_until, held.body) == (
        "not yet",
        later,
        None,
        "Moved",
    )
    assert SandboxMessage.objects.get(message=rewritten).body == "Rewritten" + FOOTER
    assert OutboundMessage.objects.get(pk=rewritten.pk).body == "Rewritten" + FOOTER
    assert SandboxMessage.objects.get(message=plain).body == "Hello" + FOOTER


def test_a_rewritten_message_keeps_the_stop_footer_it_already_carried(no_checks, practice):
    ann = PatientFactory(practice=practice)
    # Its first attempt carried the footer; meanwhile another text reached the patient.
    again = claimed(practice, ann, body="See you Monday" + FOOTER)
    OutboundMessage.objects.create(
        practice=practice,
        patient=ann,
        channel="sms",
        to=ann.phone,
        body="Earlier",
        status=MessageStatus.DELIVERED,
        scheduled_for=NOON - dt.timedelta(hours=1),
    )

    def batch(messages, now):
        def check(message):
            message.body = "See you Tuesday"
            return None

        return check

    pre_send_check_register(PreSendCheck(name="test", batch=batch))
    assert messages_send(message_ids=[again.pk], now=NOON) == {again.pk: MessageStatus.DELIVERED}
    assert SandboxMessage.objects.get(message=again).body == "See you Tuesday" + FOOTER


def test_an_error_in_one_message_s_check_moves_only_that_message(no_checks, practice):
    bad, good = (claimed(practice, PatientFactory(practice=practice)) for _ in "ab")

    def batch(messages, now):
        def check(message):
            if message.pk == bad.pk:
                message.body = "half-done"
                raise KeyError("boom")
            return None

        return check

    pre_send_check_register(PreSendCheck(name="test", batch=batch))
    statuses = messages_send(message_ids=[bad.pk, good.pk], now=NOON)

    assert statuses == {bad.pk: MessageStatus.QUEUED, good.pk: MessageStatus.DELIVERED}
    bad.refresh_from_db()
    assert (bad.status_reason, bad.body) == ("retry after an internal error (KeyError)", "Hello")


@pytest.mark.parametrize(
    ("status", "until"),
    [
        (MessageStatus.SENT, None),  # only the provider's answer makes a message sent
        (MessageStatus.QUEUED, None),  # back to the queue: until when?
        (MessageStatus.CANCELED, NOON),  # a final stop has no due time
    ],
)
def test_a_hold_is_only_a_stop_or_a_later_due_time(status, until):
    with pytest.raises(ValueError, match=r"cannot move|new due time"):
        Hold(status, "why", until=until)
