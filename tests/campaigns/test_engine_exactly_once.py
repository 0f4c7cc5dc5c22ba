"""The engine's exactly-once guarantees (DESIGN §6), judged by what patients received.

Every test counts what left, per (enrollment, step), in two independent ways: the provider
calls (a spy on the sandbox provider's ``send``: the sandbox records one SandboxMessage per
provider id, so its rows alone would hide a second call for the same message, which a real
provider would deliver as a second text) and the SandboxMessage rows. Beside them the outbox:
one OutboundMessage per (enrollment, step), one ``sent`` event per message.

The tests with threads prove what PostgreSQL's row locks (``FOR UPDATE SKIP LOCKED``, the
unique constraints, ``INSERT … ON CONFLICT DO NOTHING``) guarantee when ticks and sends run at
the same time; SQLite serializes writers, so they run on PostgreSQL only (CI sets
DATABASE_URL). The others run on both.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from functools import partial

import pytest
import time_machine
from django.db import connection

from campaigns.engine import TickSummary, tick
from campaigns.engine.enroll import campaigns_run_due
from campaigns.engine.steps import steps_materialize
from campaigns.language.spec import CampaignSerializer
from campaigns.models import Campaign, CampaignRun, Enrollment
from campaigns.services import campaign_create
from messaging.models import MessageEvent, MessageStatus, OutboundMessage, SandboxMessage
from messaging.outbox.dispatch import CLAIM_SECONDS, messages_dispatch
from messaging.outbox.send import message_send
from messaging.providers.sandbox import SandboxProvider
from messaging.tasks import send_message_task
from patients.models import Patient
from tests.campaigns.builders import Clinic, ny
from trackstat.models import Practice

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="concurrent ticks and sends need PostgreSQL row locks (FOR UPDATE SKIP LOCKED); "
    "SQLite serializes writers, which proves nothing about concurrency",
)

BIRTH_DATE = dt.date(1980, 5, 12)
# Campaigns are turned on before the day's 10:00 run, so that they run today.
ENABLED_AT = ny(2026, 5, 12, 8, 0)
RUN_AT = ny(2026, 5, 12, 10, 5)  # a Tuesday: birthdays, and 9:00 appointments missed
MISSED_START = ny(2026, 5, 12, 9, 0)
STEP_2_AT = ny(2026, 5, 13, 10, 5)  # the birthday campaign's second step, one day later
BLAST_AT = ny(2026, 5, 12, 11, 0)
CLAIM = dt.timedelta(seconds=CLAIM_SECONDS)
MINUTE = dt.timedelta(minutes=1)

BIRTHDAY = {
    "name": "Happy birthday",
    "trigger": {"type": "birthday", "offset_days": 0},
    "schedule": {"frequency": "daily", "time": "10:00"},
    "messages": [
        {"channel": "sms", "body": "Happy birthday, {{PatientFirstName}}!"},
        {
            "channel": "sms",
            "body": "A birthday adjustment is on us this week.",
            "delay": {"value": 1, "unit": "days"},
        },
    ],
}
BIRTHDAY_ONE_STEP = {**BIRTHDAY, "messages": BIRTHDAY["messages"][:1]}
MISSED = {
    "name": "We missed you",
    "trigger": {"type": "missed_appointment", "minutes_after": 30},
    "messages": [{"channel": "sms", "body": "We missed you today, {{PatientFirstName}}."}],
}


# --- building --------------------------------------------------------------------------------


def campaign(practice: Practice, spec: dict) -> Campaign:
    """An enabled campaign, created as the API creates one, turned on before today's run."""
    serializer = CampaignSerializer(data={**spec, "enabled": True})
    assert serializer.is_valid(), serializer.errors
    with time_machine.travel(ENABLED_AT, tick=False):
        return campaign_create(practice=practice, data=serializer.validated_data, actor=None)


def birthday_patients(clinic: Clinic, count: int) -> list[Patient]:
    """``count`` patients born on 12 May, each with their own mobile number."""
    return [
        clinic.patient(birth_date=BIRTH_DATE, phone=f"+1312555{number:04d}")
        for number in range(count)
    ]


def claimed_messages(count: int) -> list[int]:
    """``count`` birthday texts claimed for sending at RUN_AT (status ``sending``) whose
    send tasks have not run yet."""
    clinic = Clinic()
    birthday_patients(clinic, count)
    campaign(clinic.practice, BIRTHDAY_ONE_STEP)
    campaigns_run_due(now=RUN_AT)
    steps_materialize(now=RUN_AT)
    claimed = messages_dispatch(now=RUN_AT)
    assert len(claimed) == count
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {MessageStatus.SENDING}
    return claimed


# --- observing -------------------------------------------------------------------------------


@pytest.fixture
def provider_calls(monkeypatch) -> list[int]:
    """The outbox id of every call to the provider, from any thread, in order."""
    calls: list[int] = []
    real_send = SandboxProvider.send

    def send(self, outgoing):
        calls.append(outgoing.outbox_id)
        return real_send(self, outgoing)

    monkeypatch.setattr(SandboxProvider, "send", send)
    return calls


def once_each(keys: Iterable) -> Counter:
    return Counter(dict.fromkeys(keys, 1))


def assert_each_step_received_once(steps: set[tuple[int, int]], provider_calls: list[int]):
    """Each (enrollment id, step position) in ``steps`` has one outbound message, handed to the
    provider once and recorded once by the sandbox, and delivered; nothing else went out."""
    outbox = OutboundMessage.objects.filter(enrollment__isnull=False)
    assert Counter(outbox.values_list("enrollment_id", "step_position")) == once_each(steps)
    left = SandboxMessage.objects.values_list("message__enrollment_id", "message__step_position")
    assert Counter(left) == once_each(steps)
    message_ids = list(SandboxMessage.objects.values_list("message_id", flat=True))
    assert len(message_ids) == len(set(message_ids)), "two sandbox rows for one outbox id"
    assert Counter(provider_calls) == once_each(message_ids), "the provider was called twice"
    sent_events = MessageEvent.objects.filter(status=MessageStatus.SENT)
    assert Counter(sent_events.values_list("message_id", flat=True)) == once_each(message_ids)
    assert set(outbox.values_list("status", flat=True)) == {MessageStatus.DELIVERED}


def run_in_parallel(*works: Callable[[], object]) -> list:
    """Run each of ``works`` in its own thread, on its own database connection, all released
    together by a barrier; return their results in order (re-raising the first error)."""
    barrier = threading.Barrier(len(works))
    results: list = [None] * len(works)
    errors: list[BaseException] = []

    def worker(index: int, work: Callable[[], object]) -> None:
        try:
            connection.ensure_connection()  # connect first, so the barrier releases the work
            barrier.wait(timeout=30)
            results[index] = work()
        except BaseException as error:
            errors.append(error)
            barrier.abort()
        finally:
            connection.close()

    pool = [threading.Thread(target=worker, args=item) for item in enumerate(works)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in pool), "a thread is stuck (a deadlock?)"
    if errors:
        raise errors[0]
    return results


def ticks_in_parallel(threads: int, *, now: dt.datetime) -> list[TickSummary]:
    """``threads`` ticks at the same instant, sending inline, side by side."""
    return run_in_parallel(*[partial(tick, now=now, send="inline")] * threads)


# --- 1. ticks at the same instant, in parallel ------------------------------------------------


@needs_postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("threads", [2, 4])
def test_parallel_ticks_enroll_once_and_send_every_step_once(threads, provider_calls):
    clinic = Clinic()
    patients = birthday_patients(clinic, 30)
    for patient in patients:
        clinic.appointment(patient, MISSED_START)  # never checked in: missed at 9:30
    birthday = campaign(clinic.practice, BIRTHDAY)
    missed = campaign(clinic.practice, MISSED)

    first = ticks_in_parallel(threads, now=RUN_AT)

    enrollments = Enrollment.objects.filter(practice=clinic.practice)
    assert Counter(enrollments.values_list("campaign_id", "patient_id")) == once_each(
        (c.pk, p.pk) for c in (birthday, missed) for p in patients
    )
    assert CampaignRun.objects.filter(campaign=birthday).count() == 1
    assert sum(summary["enrollments_created"] for summary in first) == 60
    assert sum(summary["messages_created"] for summary in first) == 60
    assert sum(summary["messages_sent"] for summary in first) == 60
    step_1 = {(pk, 1) for pk in enrollments.values_list("pk", flat=True)}
    assert_each_step_received_once(step_1, provider_calls)

    # The next day the birthday campaign's second step falls due: both ticks again.
    second = ticks_in_parallel(threads, now=STEP_2_AT)

    assert enrollments.count() == 60  # nobody entered twice
    assert sum(summary["messages_sent"] for summary in second) == 30
    step_2 = {(pk, 2) for pk in enrollments.filter(campaign=birthday).values_list("pk", flat=True)}
    assert_each_step_received_once(step_1 | step_2, provider_calls)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_in_progress_does_not_hide_the_practice_s_other_due_messages(provider_calls):
    """Two dispatchers overlap (two ticks, or a tick slower than the beat): while one holds its
    claim, the other must still claim the due messages the first did not take. SKIP LOCKED
    skips locked messages; it must not skip the whole practice."""
    clinic = Clinic()
    for patient in birthday_patients(clinic, 4)[2:]:
        clinic.appointment(patient, MISSED_START)
    campaign(clinic.practice, BIRTHDAY_ONE_STEP)
    campaigns_run_due(now=RUN_AT)
    steps_materialize(now=RUN_AT)  # four birthday texts, due at RUN_AT
    campaign(clinic.practice, MISSED)
    later = RUN_AT + MINUTE
    campaigns_run_due(now=later)
    steps_materialize(now=later)  # two missed-appointment texts, due a minute later
    birthday_texts = set(
        OutboundMessage.objects.filter(scheduled_for=RUN_AT).values_list("pk", flat=True)
    )
    missed_texts = set(
        OutboundMessage.objects.filter(scheduled_for=later).values_list("pk", flat=True)
    )
    assert (len(birthday_texts), len(missed_texts)) == (4, 2)
    claiming, other_done = threading.Event(), threading.Event()

    def hold_the_claim(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith('UPDATE "messaging_outboundmessage"') and not claiming.is_set():
            claiming.set()  # the claimed rows are locked until this transaction ends
            other_done.wait(timeout=5)
        return result

    def slow_dispatcher() -> list[int]:
        with connection.execute_wrapper(hold_the_claim):
            return messages_dispatch(now=RUN_AT)

    def next_tick() -> TickSummary:
        try:
            assert claiming.wait(timeout=30), "the first dispatcher never claimed"
            return tick(now=later, send="inline")
        finally:
            other_done.set()

    claimed_first, summary = run_in_parallel(slow_dispatcher, next_tick)

    assert set(claimed_first) == birthday_texts
    assert summary["messages_dispatched"] == summary["messages_sent"] == 2, summary
    assert sorted(provider_calls) == sorted(missed_texts)


# --- 2. a send task delivered twice ----------------------------------------------------------


@pytest.mark.django_db
def test_a_send_delivered_twice_in_a_row_goes_out_once(provider_calls):
    [message_id] = claimed_messages(1)

    first = message_send(message_id=message_id, now=RUN_AT)
    again = message_send(message_id=message_id, now=RUN_AT + MINUTE)

    assert first == again == MessageStatus.DELIVERED
    assert provider_calls == [message_id]
    assert SandboxMessage.objects.filter(message_id=message_id).count() == 1
    message = OutboundMessage.objects.get(pk=message_id)
    assert_each_step_received_once({(message.enrollment_id, 1)}, provider_calls)


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_send_delivered_twice_at_once_goes_out_once(provider_calls):
    # Twenty claimed messages; two workers each got every send task and run them side by
    # side, so each message is sent by two threads at (nearly) the same time.
    claimed = claimed_messages(20)

    def send_all() -> list[str]:
        return [message_send(message_id=pk, now=RUN_AT) for pk in claimed]

    results = run_in_parallel(send_all, send_all)

    assert sorted(provider_calls) == sorted(claimed)
    assert SandboxMessage.objects.count() == 20
    # Per message, one worker sent it; the other found it handled (still "sending" while
    # the first was calling the provider, already recorded sent, or delivered).
    for statuses in zip(*results, strict=True):
        assert MessageStatus.DELIVERED in statuses
        assert set(statuses) <= {MessageStatus.DELIVERED, MessageStatus.SENT, MessageStatus.SENDING}
    steps = set(OutboundMessage.objects.values_list("enrollment_id", "step_position"))
    assert_each_step_received_once(steps, provider_calls)


@pytest.mark.django_db
def test_the_send_task_run_twice_sends_once(provider_calls):
    [message_id] = claimed_messages(1)

    # The task reads the wall clock: a minute after the claim, inside the sending window.
    with time_machine.travel(RUN_AT + MINUTE, tick=False):
        send_message_task.apply(args=[message_id]).get()
        send_message_task.apply(args=[message_id]).get()  # redelivered by the broker

    assert provider_calls == [message_id]
    assert SandboxMessage.objects.filter(message_id=message_id).count() == 1
    message = OutboundMessage.objects.get(pk=message_id)
    assert message.status == MessageStatus.DELIVERED
    assert_each_step_received_once({(message.enrollment_id, 1)}, provider_calls)


# --- 3. a worker that dies between claiming and sending --------------------------------------


@pytest.mark.django_db
def test_a_claim_lost_before_sending_is_sent_once_after_it_expires(provider_calls):
    claimed = claimed_messages(3)  # ... and the worker that took them dies

    held = tick(now=RUN_AT + MINUTE, send="inline")
    assert held["messages_dispatched"] == held["messages_sent"] == 0
    tick(now=RUN_AT + CLAIM, send="inline")  # the claim lasts until exactly then
    assert provider_calls == []
    assert not SandboxMessage.objects.exists()
    assert set(OutboundMessage.objects.values_list("status", flat=True)) == {MessageStatus.SENDING}

    after = RUN_AT + CLAIM + MINUTE
    recovered = tick(now=after, send="inline")

    assert recovered["messages_dispatched"] == recovered["messages_sent"] == 3
    assert sorted(provider_calls) == sorted(claimed)
    for message in OutboundMessage.objects.all():
        assert message.attempts == 2
        history = list(message.events.values_list("status", "reason"))
        assert history == [
            (MessageStatus.QUEUED, ""),
            (MessageStatus.SENDING, ""),
            (MessageStatus.QUEUED, "claim expired before sending"),
            (MessageStatus.SENDING, ""),
            (MessageStatus.SENT, ""),
            (MessageStatus.DELIVERED, ""),
        ]

    for later in (after + MINUTE, after + CLAIM + MINUTE, after + dt.timedelta(days=1)):
        tick(now=later, send="inline")
    steps = set(OutboundMessage.objects.values_list("enrollment_id", "step_position"))
    assert len(steps) == 3
    assert_each_step_received_once(steps, provider_calls)


# --- 4. a worker that dies after calling the provider ----------------------------------------


@pytest.mark.django_db
def test_a_worker_that_died_after_calling_the_provider_is_never_sent_again(provider_calls):
    died, lost = claimed_messages(2)
    # The first worker got as far as message_send does just before the provider call, then
    # died: the provider may have taken the message. The second died before sending.
    OutboundMessage.objects.filter(pk=died).update(provider_called_at=RUN_AT)

    after = RUN_AT + CLAIM + MINUTE
    tick(now=after, send="inline")

    unknown = OutboundMessage.objects.get(pk=died)
    assert unknown.status == MessageStatus.UNKNOWN
    assert unknown.status_reason == "no answer from the provider"
    assert OutboundMessage.objects.get(pk=lost).status == MessageStatus.DELIVERED
    for later in (
        after + MINUTE,
        after + CLAIM + MINUTE,
        after + dt.timedelta(hours=2),
        after + dt.timedelta(days=1),
    ):
        tick(now=later, send="inline")
    # A send task for it still in the queue finds it handled, too.
    assert message_send(message_id=died, now=after + MINUTE) == MessageStatus.UNKNOWN

    assert provider_calls == [lost]
    assert not SandboxMessage.objects.filter(message_id=died).exists()
    assert SandboxMessage.objects.filter(message_id=lost).count() == 1
    assert OutboundMessage.objects.get(pk=died).status == MessageStatus.UNKNOWN
    assert not MessageEvent.objects.filter(message_id=died, status=MessageStatus.SENT).exists()


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_late_worker_racing_the_recovery_of_its_expired_claim(provider_calls):
    """A send task that waited in the queue longer than its claim runs while a tick recovers
    that claim. The tick reads the expired claim, stalls (it is descheduled, or waits for the
    row) while the late worker sends the message to the end, then writes its recovery.

    The message must go out once and stay delivered: a status only moves forward.
    """
    [message_id] = claimed_messages(1)
    after = RUN_AT + CLAIM + MINUTE
    claim_read, worker_done = threading.Event(), threading.Event()

    def stall_before_requeueing(execute, sql, params, many, context):
        if sql.startswith('UPDATE "messaging_outboundmessage"') and (
            "claim expired before sending" in (params or ())
        ):
            claim_read.set()
            # A fixed engine may hold the row here: the worker then waits for it, not we.
            worker_done.wait(timeout=3)
        return execute(sql, params, many, context)

    def recovering_tick() -> TickSummary:
        with connection.execute_wrapper(stall_before_requeueing):
            return tick(now=after, send="inline")

    def late_worker() -> str:
        try:
            assert claim_read.wait(timeout=30), "the tick never recovered the claim"
            return message_send(message_id=message_id, now=after)
        finally:
            worker_done.set()

    run_in_parallel(recovering_tick, late_worker)
    tick(now=after + CLAIM + MINUTE, send="inline")

    # Exactly once holds: the provider_called_at guard stops the second send...
    assert provider_calls == [message_id]
    assert SandboxMessage.objects.filter(message_id=message_id).count() == 1
    # ... but the outbox must still say what happened, without moving back from delivered.
    history = list(
        MessageEvent.objects.filter(message_id=message_id).values_list("status", flat=True)
    )
    delivered_at = history.index(MessageStatus.DELIVERED)
    assert history[delivered_at + 1 :] == [], f"moved back after delivery: {history}"
    assert OutboundMessage.objects.get(pk=message_id).status == MessageStatus.DELIVERED


# --- 5. a blast ticked by three parallel ticks -----------------------------------------------


@needs_postgres
@pytest.mark.django_db(transaction=True)
def test_a_blast_ticked_by_three_parallel_ticks_goes_out_once_per_recipient(provider_calls):
    clinic = Clinic()
    patients = birthday_patients(clinic, 20)
    blast = campaign(
        clinic.practice,
        {
            "name": "Closed Friday",
            "kind": "blast",
            "send_at": BLAST_AT.isoformat(),
            "messages": [{"channel": "sms", "body": "We are closed this Friday."}],
        },
    )

    results = ticks_in_parallel(3, now=BLAST_AT)

    blast.refresh_from_db()
    assert blast.sent_at == BLAST_AT
    # Exactly one tick claimed the blast (set sent_at) and enrolled its audience.
    assert sorted(summary["campaigns_run"] for summary in results) == [0, 0, 1]
    assert sum(summary["messages_sent"] for summary in results) == 20
    enrollments = Enrollment.objects.filter(campaign=blast)
    assert Counter(enrollments.values_list("patient_id", flat=True)) == once_each(
        patient.pk for patient in patients
    )
    recipients = {(pk, 1) for pk in enrollments.values_list("pk", flat=True)}
    assert_each_step_received_once(recipients, provider_calls)

    later = ticks_in_parallel(3, now=BLAST_AT + dt.timedelta(hours=1))

    assert sum(summary["campaigns_run"] for summary in later) == 0
    blast.refresh_from_db()
    assert blast.sent_at == BLAST_AT
    assert_each_step_received_once(recipients, provider_calls)
