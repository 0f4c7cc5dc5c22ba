"""Sending claimed messages: re-check each against live data, then hand it to its provider.

Immediately before each send (DESIGN §6) a message is re-checked: not past its expiry, the
checks its writer registered (``checks``: for a campaign's message, its enrollment, campaign,
goal, status filter and appointment), the patient not opted out and still reachable at the
address on file, and quiet hours (a message due outside the sending window waits for it). A
staff member's own test is sent at once, unchecked.

Exactly once: a message is sent only from ``sending`` and only if the provider was never
called for it (``provider_called_at``), checked under a row lock. A duplicate task, a retried
task or a redelivered Celery message finds it already handled and does nothing. A worker that
dies after calling the provider leaves it ``sending`` with ``provider_called_at`` set, and the
dispatcher turns it ``unknown`` for reconciliation: never resent blindly (``deliver``).

One message never takes its batch down with it: an unexpected error in a re-check rolls the
batch's judging back, which runs again with each message in its own savepoint, and the error
moves only that message (back to the queue a few times, then failed).
What a provider accepted is recorded whatever happens later in the batch.
"""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone

from messaging.models import MessageStatus, OutboundMessage
from messaging.outbox.addresses import address_problem
from messaging.outbox.checks import Hold, MessageCheck, PreSendCheck, pre_send_checks
from messaging.outbox.deliver import (
    message_prepare_failed,
    messages_deliver,
    refuse_inside_a_transaction,
)
from messaging.outbox.footer import stop_footer_keep, stop_footers_add
from messaging.outbox.status import message_transition
from messaging.outbox.window import WINDOWED_CHANNELS, next_sending_time
from trackstat.planner import reads_by_key

# What the outbox's own re-check reads of every message.
RELATED = ("practice", "patient")


def message_send(*, message_id: int, now: dt.datetime | None = None) -> str:
    """Send one claimed message (idempotent); return its status afterwards."""
    statuses = messages_send(message_ids=[message_id], now=now)
    if message_id not in statuses:
        raise OutboundMessage.DoesNotExist(f"No outbound message {message_id}.")
    return statuses[message_id]


def messages_send(*, message_ids: list[int], now: dt.datetime | None = None) -> dict[int, str]:
    """Send claimed messages (idempotent); return the status of each afterwards.

    One transaction locks and re-checks them all; then each in turn is marked
    (``provider_called_at``, a compare-and-set committed on its own) and handed to its
    provider; one transaction records the accepted ones ``sent``. Each message is judged on
    its own: a stop or a provider error moves only that one. Marking each message just
    before its own call keeps a worker lost mid-batch harmless: the messages it had not
    called yet are unmarked, so the dispatcher puts them back in the queue; only the ones it
    may have sent are reconciled. A top-level action: it refuses to run inside a transaction
    (the marks must commit before the provider calls).
    """
    refuse_inside_a_transaction()
    now = now or timezone.now()
    checks = pre_send_checks()
    try:
        statuses, outgoing = _judge(message_ids, now, checks, isolated=False)
    except _RecheckRaised:
        # One message's re-check raised, and the batch's transaction is rolled back whole:
        # judged again, each message in a savepoint of its own, so only that one is moved.
        statuses, outgoing = _judge(message_ids, now, checks, isolated=True)
    if outgoing:
        for message_id, status in messages_deliver(outgoing, now).items():
            if status is None:
                del statuses[message_id]  # its row is gone (the patient was deleted meanwhile)
            else:
                statuses[message_id] = status
    return statuses


class _RecheckRaised(Exception):
    """A message's re-check raised where the batch had no savepoint per message."""


def _judge(
    message_ids: list[int], now: dt.datetime, checks: list[PreSendCheck], *, isolated: bool
) -> tuple[dict[int, str], list[OutboundMessage]]:
    """Lock and re-check the batch in one transaction: the status of each message, and the
    ones that may go out now.

    Not ``isolated`` (the usual case): the re-checks run without a savepoint each, two round
    trips per message saved; the first one that raises rolls the whole transaction back
    (``_RecheckRaised``), so nothing of the batch is half-judged. ``isolated``: each message
    in its own savepoint, and one that raises is moved on its own.
    """
    statuses: dict[int, str] = {}
    outgoing: list[OutboundMessage] = []
    related = sorted({*RELATED, *(path for check in checks for path in check.related)})
    with transaction.atomic():
        # Patients, enrollments and messages a big import or run just wrote are not in the
        # statistics yet: without this the locking read joined the batch to a scan of every
        # patient (6.3 ms for 50 messages after 15,000 new patients, 1.8 ms by key).
        reads_by_key()
        # Locked in id order, so two batches sharing messages (a duplicate task) never
        # deadlock: the second waits, then finds them handled.
        messages = list(
            OutboundMessage.objects.select_for_update(of=("self",))
            .select_related(*related)
            .filter(pk__in=message_ids)
            .order_by("pk")
        )
        pending = []
        for message in messages:
            statuses[message.pk] = message.status
            if message.status == MessageStatus.SENDING and message.provider_called_at is None:
                pending.append(message)
            # else already handled: a duplicate or late delivery
        checkers = [check.batch(pending, now) for check in checks] if pending else []
        for message in pending:
            if isolated:
                stopped = _prepare_stops(message, now, checkers)
            else:
                try:
                    stopped = _prepare(message, now, checkers)
                except Exception as error:
                    raise _RecheckRaised from error
            if stopped:
                statuses[message.pk] = message.status
                continue
            outgoing.append(message)
        # After each message's re-check has saved what it rewrote: the footer is added on top.
        stop_footers_add(messages=outgoing)
        # Still under the re-check's locks: what passed is going out, and a concurrent
        # re-check of the same patients counts it toward their caps from now on, not only
        # once its provider call is marked (trust.recent_messages).
        judged = [m.pk for m in outgoing if m.purpose and m.patient_id and not m.is_test]
        if judged:
            OutboundMessage.objects.filter(pk__in=judged).update(passed_check_at=now)
    return statuses, outgoing


def _prepare_stops(message: OutboundMessage, now: dt.datetime, checks: list[MessageCheck]) -> bool:
    """``_prepare`` in a savepoint of its own: an unexpected error rolls back this message's
    re-check only, and the message is moved on its own (``message_prepare_failed``); the
    batch goes on."""
    try:
        with transaction.atomic():
            return _prepare(message, now, checks)
    except Exception as error:
        message.status = message_prepare_failed(message.pk, error, now) or message.status
        return True


def _prepare(message: OutboundMessage, now: dt.datetime, checks: list[MessageCheck]) -> bool:
    """Re-check one locked message of the batch and save what the re-check rewrote (its
    address, a re-rendered reminder); True if it must not go out now (its status has moved)."""
    before = (message.to, message.subject, message.body)
    hold = _recheck(message, now, checks)
    stop_footer_keep(message=message, body_before=before[2])
    if hold is not None:
        rewritten = (message.subject, message.body) != before[1:]
        _hold_apply(message, hold, now, rewritten=rewritten)
        return True
    if (message.to, message.subject, message.body) != before:
        message.save(update_fields=["to", "subject", "body", "updated_at"])
    return False


def _recheck(message: OutboundMessage, now: dt.datetime, checks: list[MessageCheck]) -> Hold | None:
    """Re-check a claimed message against live data: None if it may go out now (with the
    address on file now), else why not."""
    if message.expires_at and message.expires_at <= now:
        return Hold(MessageStatus.EXPIRED, "not sent on its day")
    if message.is_test:
        return None  # a staff member's own test: sent at once, whatever the hour
    for check in checks:
        hold = check(message)
        if hold is not None:
            return hold
    if message.patient is not None:
        to, reason = address_problem(message.patient, message.channel)
        if not to:
            return Hold(MessageStatus.SKIPPED, reason)
        message.to = to  # the number or address on file now
    if message.channel in WINDOWED_CHANNELS:  # texts and email alike (DESIGN §5.6)
        practice = message.practice
        opens = next_sending_time(
            now,
            start=practice.sending_window_start,
            end=practice.sending_window_end,
            tz=practice.tz,
        )
        if opens > now:
            return Hold(MessageStatus.QUEUED, "waiting for the sending window", until=opens)
    return None


def _hold_apply(message: OutboundMessage, hold: Hold, now: dt.datetime, *, rewritten: bool) -> None:
    """Move a message a re-check stopped: for good (canceled, skipped, expired), or back to
    the queue until ``hold.until``, keeping what the re-check rewrote (a rescheduled
    reminder's new date)."""
    fields = None
    if hold.status == MessageStatus.QUEUED:
        fields = {"scheduled_for": hold.until, "claimed_until": None}
        if rewritten:
            fields |= {"subject": message.subject, "body": message.body}
    message_transition(
        message, status=hold.status, reason=hold.reason, at=now, source="engine", fields=fields
    )
