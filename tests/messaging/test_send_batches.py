"""Batched sending (``messages_send``, ``send_messages_task``): a batch of claimed messages is
re-checked and recorded in a few queries, and each message is still sent exactly once, judged
on its own. The exactly-once scenarios of ``test_engine_exactly_once`` run through the same
code (``message_send`` is a batch of one)."""

from __future__ import annotations

import threading

import pytest
import time_machine
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from messaging.models import MessageEvent, MessageStatus, OutboundMessage, SandboxMessage
from messaging.outbox import deliver, send
from messaging.outbox.send import messages_send
from messaging.providers import provider_for
from messaging.providers.base import Accepted, ProviderError
from messaging.providers.sandbox import SandboxProvider
from messaging.tasks import send_messages_task
from patients.models import Patient
from tests.campaigns.test_engine_exactly_once import (
    MINUTE,
    RUN_AT,
    claimed_messages,
    needs_postgres,
    run_in_parallel,
)
from tests.factories import PracticeFactory


@pytest.fixture
def calls(monkeypatch) -> list[int]:
    """The outbox id of every call to the (sandbox) provider, from any thread."""
    seen: list[int] = []
    real_send = SandboxProvider.send

    def send(self, outgoing):
        seen.append(outgoing.outbox_id)
        return real_send(self, outgoing)

    monkeypatch.setattr(SandboxProvider, "send", send)
    return seen


@pytest.mark.django_db
def test_a_batch_judges_each_message_on_its_own(calls):
    handled, opted_out, *rest = claimed_messages(5)
    messages_send(message_ids=[handled], now=RUN_AT)
    Patient.objects.filter(messages__pk=opted_out).update(sms_opt_out=True)

    statuses = messages_send(message_ids=[handled, opted_out, *rest], now=RUN_AT + MINUTE)

    assert statuses[handled] == MessageStatus.DELIVERED  # already sent: left alone
    assert statuses[opted_out] == MessageStatus.SKIPPED
    assert [statuses[pk] for pk in rest] == [MessageStatus.DELIVERED] * 3
    assert sorted(calls) == sorted([handled, *rest])
    sent = MessageEvent.objects.filter(status=MessageStatus.SENT)
    assert sorted(sent.values_list("message_id", flat=True)) == sorted([handled, *rest])
    for message in OutboundMessage.objects.filter(pk__in=rest):
        assert message.provider == "sandbox"
        assert message.provider_id == f"SB{message.pk:012d}"
        assert message.sent_at == RUN_AT + MINUTE


@pytest.mark.django_db
def test_a_batch_runs_a_fixed_number_of_queries_plus_one_mark_per_message(monkeypatch):
    class Provider:  # answers at once and writes nothing (the sandbox writes per message)
        name = "stub"

        def send(self, outgoing):
            return Accepted(provider_id=f"stub-{outgoing.outbox_id}")

    monkeypatch.setattr(
        "messaging.outbox.deliver.provider_for", lambda channel, practice: Provider()
    )
    # Inside the test's own transaction, each mark's refusal check is a savepoint of its own
    # (outside any transaction, as in a worker, it costs nothing): not counted here.
    monkeypatch.setattr("messaging.outbox.deliver.refuse_inside_a_transaction", lambda: None)
    small, large = claimed_messages(2), claimed_messages(12)
    with CaptureQueriesContext(connection) as few:
        messages_send(message_ids=small, now=RUN_AT)
    with CaptureQueriesContext(connection) as many:
        statuses = messages_send(message_ids=large, now=RUN_AT)
    assert set(statuses.values()) == {MessageStatus.SENT}
    # Each message is marked on its own just before its provider call (so a worker lost
    # mid-batch leaves the rest unmarked, to be queued again): one UPDATE each.
    marks = [
        q
        for q in many.captured_queries
        if q["sql"].startswith("UPDATE") and ("provider_called_at" in q["sql"].split("WHERE")[0])
    ]
    assert len(marks) == 12
    # Nothing else grows with the batch: when every re-check passes, no message gets a
    # savepoint of its own (two round trips each).
    assert len(many.captured_queries) - len(few.captured_queries) == 12 - 2


class SideBySide:
    """A provider whose calls may run at once (as Twilio's and SendGrid's): each call waits
    until ``width`` calls are in flight together, so calls made one after another fail."""

    name = "stub"
    concurrent_calls = True

    def __init__(self, width: int):
        self.together = threading.Barrier(width, timeout=5)
        self.calls: list[int] = []

    def send(self, outgoing):
        self.calls.append(outgoing.outbox_id)
        self.together.wait()
        return Accepted(provider_id=f"stub-{outgoing.outbox_id}")


def side_by_side(monkeypatch, settings, *, concurrency: int, width: int) -> SideBySide:
    """Send through a ``SideBySide`` provider with ``SEND_CONCURRENCY = concurrency``."""
    settings.SEND_CONCURRENCY = concurrency
    provider = SideBySide(width=width)
    monkeypatch.setattr("messaging.outbox.deliver.provider_for", lambda channel, practice: provider)
    monkeypatch.setattr("messaging.outbox.deliver.refuse_inside_a_transaction", lambda: None)
    return provider


@pytest.mark.django_db
def test_calls_that_may_run_at_once_go_out_side_by_side_marked_once_per_group(
    monkeypatch, settings
):
    provider = side_by_side(monkeypatch, settings, concurrency=4, width=4)
    claimed = claimed_messages(8)

    with CaptureQueriesContext(connection) as queries:
        statuses = messages_send(message_ids=claimed, now=RUN_AT)

    assert statuses == dict.fromkeys(claimed, MessageStatus.SENT)
    assert sorted(provider.calls) == sorted(claimed)
    # Four calls started together after one committed mark of the four.
    marks = [
        q
        for q in queries.captured_queries
        if q["sql"].startswith("UPDATE") and "provider_called_at" in q["sql"].split("WHERE")[0]
    ]
    assert len(marks) == 2
    assert set(OutboundMessage.objects.values_list("provider_id", flat=True)) == {
        f"stub-{pk}" for pk in claimed
    }


@pytest.mark.django_db
def test_a_group_calls_only_the_messages_its_mark_won(monkeypatch, settings):
    provider = side_by_side(monkeypatch, settings, concurrency=3, width=1)
    taken, *rest = claimed_messages(4)
    real_judge = send._judge

    def judge(*args, **kwargs):
        judged = real_judge(*args, **kwargs)
        # Another task marked one of them between this batch's judging and its calls.
        OutboundMessage.objects.filter(pk=taken).update(provider_called_at=RUN_AT)
        return judged

    monkeypatch.setattr(send, "_judge", judge)
    statuses = messages_send(message_ids=[taken, *rest], now=RUN_AT)

    assert sorted(provider.calls) == sorted(rest)
    assert statuses[taken] == MessageStatus.SENDING  # left to the task that marked it
    assert [statuses[pk] for pk in rest] == [MessageStatus.SENT] * 3


@needs_postgres
@pytest.mark.django_db
def test_a_group_mark_reads_its_messages_by_key_when_every_message_is_sending():
    """Statistics taken while the messages were queued say few are sending; in a big send all
    of them are. The mark must not read them all through the status index."""
    claimed = claimed_messages(40)
    # Thousands of messages already sent: reading four by key is the only cheap way.
    model = OutboundMessage.objects.get(pk=claimed[0])
    OutboundMessage.objects.bulk_create(
        OutboundMessage(
            practice_id=model.practice_id,
            patient_id=model.patient_id,
            channel=model.channel,
            to=model.to,
            body=model.body,
            status=MessageStatus.SENT,
            scheduled_for=model.scheduled_for,
        )
        for _ in range(3000)
    )
    OutboundMessage.objects.filter(pk__in=claimed).update(status=MessageStatus.QUEUED)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {OutboundMessage._meta.db_table}")
    OutboundMessage.objects.filter(pk__in=claimed).update(status=MessageStatus.SENDING)
    seen: list[tuple[str, list]] = []

    def spy(execute, sql, params, many, context):
        if sql.startswith("UPDATE") and "provider_called_at" in sql:
            seen.append((sql, params))
        return execute(sql, params, many, context)

    monkey = pytest.MonkeyPatch()
    monkey.setattr("messaging.outbox.deliver.refuse_inside_a_transaction", lambda: None)
    try:
        with connection.execute_wrapper(spy):
            marked = deliver._marks_set(claimed[:4], RUN_AT)
    finally:
        monkey.undo()

    assert marked == set(claimed[:4])
    [(sql, params)] = seen
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "outbox_due" not in plan
    assert "pkey" in plan


@pytest.mark.django_db
def test_a_re_check_that_raises_rolls_the_batch_back_and_judges_each_on_its_own(calls, monkeypatch):
    first, bad, last = claimed_messages(3)
    real_recheck = send._recheck
    seen: list[int] = []

    def recheck(message, now, checks):
        seen.append(message.pk)
        if message.pk == bad:
            raise KeyError("boom")
        return real_recheck(message, now, checks)

    monkeypatch.setattr(send, "_recheck", recheck)
    with CaptureQueriesContext(connection) as queries:
        statuses = messages_send(message_ids=[first, bad, last], now=RUN_AT)

    # Judged without savepoints until the error, then again, each in a savepoint.
    assert seen == [first, bad, first, bad, last]
    savepoints = [q for q in queries.captured_queries if q["sql"].startswith("SAVEPOINT")]
    assert len(savepoints) >= 3
    assert statuses[bad] == MessageStatus.QUEUED
    assert [statuses[first], statuses[last]] == [MessageStatus.DELIVERED] * 2
    assert sorted(calls) == sorted([first, last])
    # The first message's passed check is recorded once, by the judging that counted.
    assert MessageEvent.objects.filter(message_id=first, status=MessageStatus.SENT).count() == 1


@pytest.mark.django_db
def test_a_batch_task_delivered_twice_sends_each_message_once(calls):
    claimed = claimed_messages(4)
    with time_machine.travel(RUN_AT + MINUTE, tick=False):
        send_messages_task.apply(args=[claimed]).get()
        send_messages_task.apply(args=[claimed]).get()  # redelivered by the broker
    assert sorted(calls) == sorted(claimed)
    assert SandboxMessage.objects.count() == 4
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {
        MessageStatus.DELIVERED
    }


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_overlapping_batches_at_once_send_each_message_once(calls):
    claimed = claimed_messages(20)
    # Two workers got overlapping batches (and in another order): no deadlock, no double send.
    first, second = claimed[:14], list(reversed(claimed[6:]))

    results = run_in_parallel(
        lambda: messages_send(message_ids=first, now=RUN_AT),
        lambda: messages_send(message_ids=second, now=RUN_AT),
    )

    assert sorted(calls) == sorted(claimed)
    assert SandboxMessage.objects.count() == 20
    for pk in claimed[6:14]:
        statuses = {results[0][pk], results[1][pk]}
        assert MessageStatus.DELIVERED in statuses
        assert statuses <= {MessageStatus.DELIVERED, MessageStatus.SENT, MessageStatus.SENDING}


@pytest.mark.django_db
def test_provider_for_reuses_one_http_session_per_account(settings):
    settings.SMS_PROVIDER, settings.EMAIL_PROVIDER = "twilio", "sendgrid"
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "AC" + "0" * 32, "token"
    settings.SENDGRID_API_KEY = "SG.key"
    settings.TWILIO_API_BASE_URL = settings.SENDGRID_API_BASE_URL = "http://127.0.0.1:9"
    practice, other = PracticeFactory(), PracticeFactory()
    assert provider_for("sms", practice) is provider_for("sms", other)
    assert provider_for("email", practice) is provider_for("email", other)
    settings.SENDGRID_API_KEY = "SG.another"
    assert provider_for("email", practice).client.api_key == "SG.another"


@needs_postgres
@pytest.mark.django_db
def test_outbox_pages_leave_room_for_the_rewrites_of_a_send():
    # The mark and the re-check change no indexed column: with room on the row's page they
    # are HOT updates (no entry in the table's fifteen indexes).
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s",
            [OutboundMessage._meta.db_table],
        )
        assert cursor.fetchone()[0] == ["fillfactor=80"]


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_the_batchs_locking_read_reaches_every_row_by_key(calls):
    """The judging's read joins the batch's messages to their patients, enrollments and
    campaigns. After a big import the statistics have not seen the new rows, and PostgreSQL
    joined the batch to a scan of every patient (4 ms per batch of 50 at 15,000 patients):
    in its own transaction the read goes by key only."""
    claimed = claimed_messages(6)
    plans: list[str] = []

    def spy(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith("SELECT") and "FOR UPDATE" in sql and "patients_patient" in sql:
            with connection.cursor() as cursor:  # same transaction, same settings
                cursor.execute("EXPLAIN " + sql, params)
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
        return result

    with connection.execute_wrapper(spy):
        statuses = messages_send(message_ids=claimed, now=RUN_AT)

    assert set(statuses.values()) == {MessageStatus.DELIVERED}
    [plan] = plans
    assert "Seq Scan" not in plan, plan


@pytest.mark.django_db
def test_a_failure_written_first_never_loses_an_acceptance_of_its_group(monkeypatch, settings):
    settings.SEND_CONCURRENCY = 2
    refused, taken = claimed_messages(2)

    class Provider(SideBySide):
        def send(self, outgoing):
            super().send(outgoing)
            if outgoing.outbox_id == refused:
                raise ProviderError("21211", "HTTP 400")
            return Accepted(provider_id=f"stub-{outgoing.outbox_id}")

    provider = Provider(width=2)
    monkeypatch.setattr("messaging.outbox.deliver.provider_for", lambda channel, practice: provider)
    monkeypatch.setattr("messaging.outbox.deliver.refuse_inside_a_transaction", lambda: None)

    def failed(*args, **kwargs):
        raise DatabaseError("the database went away while writing the failure")

    monkeypatch.setattr("messaging.outbox.deliver._failed", failed)
    with pytest.raises(DatabaseError):
        messages_send(message_ids=[refused, taken], now=RUN_AT)

    assert OutboundMessage.objects.get(pk=taken).status == MessageStatus.SENT


@pytest.mark.django_db
def test_no_send_thread_outlives_its_batch(monkeypatch, settings):
    # A process that forks later (the benchmarks' data generator does) must hold no threads.
    side_by_side(monkeypatch, settings, concurrency=2, width=2)
    claimed = claimed_messages(4)

    statuses = messages_send(message_ids=claimed, now=RUN_AT)

    assert set(statuses.values()) == {MessageStatus.SENT}
    assert [t.name for t in threading.enumerate() if t.name.startswith("send")] == []
