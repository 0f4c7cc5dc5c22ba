"""The send queue: claimed messages go to the Celery send tasks (beat's tick), or are sent
in this process (``manage.py tick``, tests)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Literal

from django.conf import settings

from messaging.models import SENT_STATUSES
from messaging.outbox.dispatch import messages_dispatch
from messaging.outbox.send import messages_send
from messaging.tasks import send_messages_task


def messages_enqueue(message_ids: list[int]) -> None:
    """Hand claimed messages to the Celery send tasks, ``SEND_TASK_BATCH_SIZE`` a task."""
    size = settings.SEND_TASK_BATCH_SIZE
    for start in range(0, len(message_ids), size):
        send_messages_task.delay(message_ids[start : start + size])


def messages_send_due(
    *,
    now: dt.datetime,
    send: Literal["queue", "inline"] = "queue",
    practice_ids: Collection[int] | None = None,
) -> tuple[int, int]:
    """Claim the messages due at ``now`` and send them; return (claimed, sent here).

    ``send="queue"`` hands each practice's claimed messages to the send tasks as soon as its
    claim has committed; ``send="inline"`` sends them here, one by one, after the claim.
    ``practice_ids``: only these practices' messages (one tick group).
    """
    if send != "inline":
        claimed = messages_dispatch(now=now, on_claimed=messages_enqueue, practice_ids=practice_ids)
        return len(claimed), 0
    claimed = messages_dispatch(now=now, practice_ids=practice_ids)
    sent = 0
    for message_id in claimed:
        # .get: a message whose row vanished meanwhile (its patient deleted) is not sent.
        statuses = messages_send(message_ids=[message_id], now=now)
        sent += statuses.get(message_id) in SENT_STATUSES
    return len(claimed), sent
