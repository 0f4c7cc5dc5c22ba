"""Handing re-checked messages to their providers, exactly once, and recording what they
answered (DESIGN §6).

A message goes to its provider only after its exactly-once mark (``provider_called_at``) has
been set and committed on its own, a compare-and-set that one of two tasks holding the same
message wins. A provider whose calls may run side by side (``concurrent_calls``: Twilio,
SendGrid) gets up to ``SEND_CONCURRENCY`` of them at once: they are marked together, in one
commit, just before all of them start, so a mark still means "its call may have started"
and a worker lost mid-batch leaves every message it had not started unmarked.

What a provider accepted is recorded ``sent`` whatever happens later in the batch; a
provider error moves only its message (retried with a backoff, ``unknown`` when the
provider may have taken it, else failed); an unexpected error before any provider call sends
the message back to the queue a few times, then fails it. Only error types and places are
logged, never their messages (they may quote patient data).
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from messaging.models import MessageStatus, OutboundMessage, UnsubscribeToken
from messaging.outbox.asking import confirmations_request
from messaging.outbox.status import may_move, message_events_insert, message_transition
from messaging.providers import provider_for
from messaging.providers.base import Accepted, Outgoing, Provider, ProviderError
from messaging.unsubscribe import unsubscribe_url, unsubscribe_url_for
from patients.models import OptOutSource
from patients.services import patient_opt_out_set

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5


def _where(error: BaseException) -> str:
    """Where an error was raised (file, line, function): safe to log, unlike its message,
    which may quote patient data."""
    frames = traceback.extract_tb(error.__traceback__)
    if not frames:
        return "?"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"


def message_prepare_failed(message_id: int, error: Exception, now: dt.datetime) -> str | None:
    """An unexpected error while preparing a message, before any provider call: it goes back
    to the queue after a backoff (1, 2, 4, 8 minutes), and fails once it has been claimed
    ``MAX_ATTEMPTS`` times. Only the error's type is logged and recorded, never its message.
    Returns the message's status (None if its row is gone)."""
    kind = type(error).__name__
    logger.error(
        "send: message %s could not be prepared (%s at %s)", message_id, kind, _where(error)
    )
    with transaction.atomic():
        message = (
            OutboundMessage.objects.select_for_update(of=("self",)).filter(pk=message_id).first()
        )
        if message is None:
            return None
        if message.attempts < MAX_ATTEMPTS:
            message_transition(
                message,
                status=MessageStatus.QUEUED,
                reason=f"retry after an internal error ({kind})",
                at=now,
                source="engine",
                fields={
                    "scheduled_for": now + dt.timedelta(minutes=2 ** max(message.attempts - 1, 0)),
                    "claimed_until": None,
                },
            )
        else:
            message_transition(
                message,
                status=MessageStatus.FAILED,
                reason=f"could not be prepared for sending ({kind})",
                at=now,
                source="engine",
            )
    return message.status


def provider_called_mark(message_id: int, now: dt.datetime) -> bool:
    """The exactly-once mark, set just before the provider call: of two tasks holding this
    message, one sets it, the other finds it set (or the message moved) and leaves it alone.

    It must be committed before the provider is called (a worker lost after the call must
    leave it set, and a concurrent task must see it): it runs in autocommit, and refuses to
    run inside an outer transaction.
    """
    return bool(_marks_set([message_id], now))


def refuse_inside_a_transaction() -> None:
    """Raise inside a transaction, unless it is a test case's own (Django's rule for durable
    atomic blocks, which tests wrap in a transaction of their own)."""
    if not connection.in_atomic_block:
        return
    try:
        with transaction.atomic(durable=True):
            pass
    except RuntimeError as error:
        raise RuntimeError(
            "The provider-called mark must commit on its own, before the provider call: "
            "send messages outside any transaction."
        ) from error


def messages_deliver(messages: list[OutboundMessage], now: dt.datetime) -> dict[int, str | None]:
    """Hand each message to its provider; return their statuses (None: the row is gone)."""
    statuses: dict[int, str | None] = {}
    tokens = dict(
        UnsubscribeToken.objects.filter(
            message__in=[m for m in messages if m.channel == "email" and m.patient_id]
        ).values_list("message_id", "token")
    )
    providers: dict[tuple[str, int], Provider] = {}
    ready: list[tuple[OutboundMessage, Provider, Outgoing]] = []
    accepted: list[tuple[OutboundMessage, Provider, Accepted]] = []
    # The batch's own threads, shut down with it: none outlives the task (a process that
    # forks later, as the benchmarks' data generator does, must hold no threads).
    threads: list[ThreadPoolExecutor] = []
    try:
        for message in messages:
            practice = message.practice
            try:
                key = (message.channel, practice.pk)
                if key not in providers:
                    providers[key] = provider_for(message.channel, practice)
                provider = providers[key]
                if message.channel != "email":
                    unsubscribe = ""
                elif message.pk in tokens:
                    unsubscribe = unsubscribe_url(tokens[message.pk])
                else:
                    unsubscribe = unsubscribe_url_for(message)  # made now, or "" for a test
                outgoing = Outgoing(
                    outbox_id=message.pk,
                    practice_id=practice.pk,
                    channel=message.channel,
                    to=message.to,
                    sender=practice.sms_from if message.channel == "sms" else practice.email_from,
                    subject=message.subject,
                    body=message.body,
                    unsubscribe_url=unsubscribe,
                )
            except Exception as error:  # not called: safe to queue again (a few times)
                statuses[message.pk] = message_prepare_failed(message.pk, error, now)
                continue
            ready.append((message, provider, outgoing))
        for group in _side_by_side(ready):
            marked = _marks_set([message.pk for message, _, _ in group], now)
            for message, _, _ in group:
                if message.pk not in marked:  # another task has it, or it moved meanwhile
                    statuses[message.pk] = (
                        OutboundMessage.objects.filter(pk=message.pk)
                        .values_list("status", flat=True)
                        .first()
                    )
            calls = [(m, provider, outgoing) for m, provider, outgoing in group if m.pk in marked]
            outcomes = list(zip(calls, _calls(calls, threads), strict=True))
            for (message, provider, _), outcome in outcomes:
                message.provider_called_at = now
                if isinstance(outcome, Accepted):
                    accepted.append((message, provider, outcome))
            # The group's accepted ones are all listed for the record before any failure is
            # written (a database error there must not lose an acceptance).
            for (message, _, _), outcome in outcomes:
                if isinstance(outcome, Accepted):
                    continue
                if isinstance(outcome, ProviderError):
                    statuses[message.pk] = _failed(message.pk, outcome, now)
                else:
                    # The provider may have taken it: reconciled, never sent again blindly.
                    logger.error(
                        "send: provider call for message %s raised %s at %s",
                        message.pk,
                        type(outcome).__name__,
                        _where(outcome),
                    )
                    unanswered = ProviderError("unexpected_error", ambiguous=True)
                    statuses[message.pk] = _failed(message.pk, unanswered, now)
    finally:
        for pool in threads:
            pool.shutdown()  # every call has answered or timed out by now, or soon will
        # What the provider accepted is recorded whatever happened after (an error, the
        # worker stopping): an accepted message must never end unknown, then failed.
        if accepted:
            statuses.update(_sent_record(accepted, now))
    return statuses


def _side_by_side(
    ready: list[tuple[OutboundMessage, Provider, Outgoing]],
) -> list[list[tuple[OutboundMessage, Provider, Outgoing]]]:
    """The messages in the groups whose calls run at once: up to ``SEND_CONCURRENCY``
    consecutive messages whose providers allow it (``concurrent_calls``); any other message
    (the sandbox writes to the database) is a group of its own."""
    size = max(1, settings.SEND_CONCURRENCY)
    groups: list[list[tuple[OutboundMessage, Provider, Outgoing]]] = []
    for item in ready:
        side_by_side = getattr(item[1], "concurrent_calls", False)
        last = groups[-1] if groups else None
        if (
            side_by_side
            and last
            and len(last) < size
            and getattr(last[0][1], "concurrent_calls", False)
        ):
            last.append(item)
        else:
            groups.append([item])
    return groups


def _marks_set(message_ids: list[int], now: dt.datetime) -> set[int]:
    """Set the exactly-once mark of these messages (``provider_called_mark``), in one
    committed statement; return the ones this call marked (a compare-and-set each: a message
    another task marked, or that moved meanwhile, is not among them)."""
    refuse_inside_a_transaction()
    # Written out rather than compiled by the ORM at every call: it runs for every message
    # sent, and compiling the UPDATE cost more CPU than the database took to run it.
    # ``(status = …) IS TRUE`` is the same test as ``status = …`` that no index can answer:
    # PostgreSQL reads each row by its key. Given the plain test, it combined the key with
    # the status index, whose statistics say few messages are sending; in a big send they
    # all are, and each mark read every one of them in that index.
    table = connection.ops.quote_name(OutboundMessage._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET provider_called_at = %s, updated_at = %s "  # noqa: S608
            f"WHERE id IN ({', '.join(['%s'] * len(message_ids))}) "
            "AND (status = %s) IS TRUE AND provider_called_at IS NULL RETURNING id",
            [
                connection.ops.adapt_datetimefield_value(now),
                connection.ops.adapt_datetimefield_value(timezone.now()),
                *message_ids,
                MessageStatus.SENDING.value,
            ],
        )
        return {row[0] for row in cursor.fetchall()}


def _call(provider: Provider, outgoing: Outgoing) -> Accepted | Exception:
    try:
        return provider.send(outgoing)
    except Exception as error:
        return error


def _calls(
    calls: list[tuple[OutboundMessage, Provider, Outgoing]], threads: list[ThreadPoolExecutor]
) -> list[Accepted | Exception]:
    """Each call's answer, or what it raised: at once when there are several (on the batch's
    threads, ``threads``: made at the first group that needs them; the calls touch no
    database), else here."""
    if len(calls) < 2:
        return [_call(provider, outgoing) for _, provider, outgoing in calls]
    if not threads:
        threads.append(ThreadPoolExecutor(settings.SEND_CONCURRENCY, thread_name_prefix="send"))
    futures = [threads[0].submit(_call, provider, outgoing) for _, provider, outgoing in calls]
    return [future.result() for future in futures]


def _sent_record(
    accepted: list[tuple[OutboundMessage, Provider, Accepted]], now: dt.datetime
) -> dict[int, str | None]:
    """Record the accepted messages ``sent``, set-wise: one locking read of their current
    status (a webhook may already have moved one forward: a status only moves forward), one
    UPDATE and one insert of events. A message whose row is gone gets None."""
    statuses: dict[int, str | None] = {}
    with transaction.atomic():
        current = dict(
            OutboundMessage.objects.select_for_update()
            .filter(pk__in=[message.pk for message, _, _ in accepted])
            .order_by("pk")
            .values_list("pk", "status")
        )
        moved: list[tuple[OutboundMessage, Provider, Accepted]] = []
        updated_at = timezone.now()
        for message, provider, answer in accepted:
            if message.pk not in current:
                statuses[message.pk] = None  # its row is gone (the patient was deleted)
                continue
            message.status = current[message.pk]
            statuses[message.pk] = message.status
            if not may_move(message.status, MessageStatus.SENT):
                continue
            message.status = statuses[message.pk] = MessageStatus.SENT
            message.status_reason = ""
            message.report_pending = True
            message.provider = provider.name
            message.provider_id = answer.provider_id
            message.sent_at = now
            message.updated_at = updated_at
            moved.append((message, provider, answer))
        _sent_update(moved, now, updated_at)
        message_events_insert(
            [(message.practice_id, message.pk, provider.name) for message, provider, _ in moved],
            status=MessageStatus.SENT,
            reason="",
            at=now,
        )
        # A text that asked the patient to confirm went out (DESIGN §7).
        confirmations_request(
            appointment_ids=[
                m.confirmation_appointment_id for m, _, _ in moved if m.confirmation_appointment_id
            ],
            at=now,
        )
    # After the record has committed: nothing here can undo it.
    with transaction.atomic():
        for message, provider, answer in moved:
            for status, event_id in getattr(provider, "simulated_events", lambda _a: [])(answer):
                message_transition(
                    message, status=status, at=now, source=provider.name, provider_event_id=event_id
                )
            statuses[message.pk] = message.status
    return statuses


def _sent_update(
    moved: list[tuple[OutboundMessage, Provider, Accepted]],
    now: dt.datetime,
    updated_at: dt.datetime,
) -> None:
    """Save the moved messages ``sent``: only the provider and its id differ from message to
    message. On PostgreSQL one UPDATE from arrays; elsewhere one per provider, the ids by a
    CASE (which Django compiles a branch at a time: most of the recording's CPU)."""
    if not moved:
        return
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(OutboundMessage._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {table} AS m SET status = %s, status_reason = '', "  # noqa: S608
                "report_pending = true, provider = v.provider, provider_id = v.provider_id, "
                "sent_at = %s, updated_at = %s "
                "FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS v(id, provider, provider_id) "
                "WHERE m.id = v.id",
                [
                    MessageStatus.SENT.value,
                    now,
                    updated_at,
                    [message.pk for message, _, _ in moved],
                    [provider.name for _, provider, _ in moved],
                    [answer.provider_id for _, _, answer in moved],
                ],
            )
        return
    by_provider: dict[str, list[OutboundMessage]] = {}
    for message, provider, _ in moved:
        by_provider.setdefault(provider.name, []).append(message)
    for name, messages in by_provider.items():
        OutboundMessage.objects.filter(pk__in=[m.pk for m in messages]).update(
            status=MessageStatus.SENT,
            status_reason="",
            report_pending=True,
            provider=name,
            provider_id=Case(*(When(pk=m.pk, then=Value(m.provider_id)) for m in messages)),
            sent_at=now,
            updated_at=updated_at,
        )


def _failed(message_id: int, error: ProviderError, now: dt.datetime) -> str | None:
    """Record a provider error; return the message's status (None if its row is gone)."""
    with transaction.atomic():
        message = (
            OutboundMessage.objects.select_for_update(of=("self",))
            .select_related("patient", "practice")
            .filter(pk=message_id)
            .first()
        )
        if message is None:
            return None  # the row is gone (the patient was deleted meanwhile)
        if error.retryable and message.attempts < MAX_ATTEMPTS:
            # Not accepted: safe to send again, after a backoff (1, 2, 4, 8 minutes).
            backoff = dt.timedelta(minutes=2 ** (message.attempts - 1))
            message_transition(
                message,
                status=MessageStatus.QUEUED,
                reason=f"retry after provider error {error.code}",
                at=now,
                source="engine",
                fields={"scheduled_for": now + backoff, "provider_called_at": None},
            )
        elif error.ambiguous:
            message_transition(
                message,
                status=MessageStatus.UNKNOWN,
                reason=f"provider did not answer ({error.code})",
                at=now,
                source="engine",
                fields={"error_code": error.code},
            )
        else:
            message_transition(
                message,
                status=MessageStatus.FAILED,
                reason=f"provider error {error.code}",
                at=now,
                source="engine",
                fields={"error_code": error.code},
            )
            if error.opted_out and message.patient is not None:
                patient_opt_out_set(
                    practice=message.practice,
                    patient=message.patient,
                    channel=message.channel,
                    opted_out=True,
                    source=OptOutSource.PROVIDER,
                    actor="provider",
                )
    return message.status
