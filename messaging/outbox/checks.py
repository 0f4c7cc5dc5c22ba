"""Pre-send re-checks that the layers above the outbox register (DESIGN §6).

Immediately before a claimed message is sent, the outbox re-checks it against live data. Its
own rules (expiry, the address on file, quiet hours) live in ``send``; what only the writer
of a message knows (for a campaign's: the enrollment still active, its goal not met, the
campaign on, the appointment still in the state that triggered it …) is a ``PreSendCheck``
registered at app start (``AppConfig.ready``), so that the outbox never imports its writers.

A check works set-wise: ``batch`` is called once per batch of claimed messages, inside the
send transaction with the messages locked, and reads what the check needs for all of them at
once; the function it returns is then called for each message in turn, in that message's own
savepoint (an error rolls back that message's re-check only, and moves only that message).
For each message it returns None (go on) or a ``Hold``, and it may rewrite the message's
``subject`` and ``body`` in place (a reminder re-rendered for its moved appointment): the
outbox saves them with the message, keeping its own STOP footer on them. Test sends (staff's
own) are not re-checked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from messaging.models import MessageStatus, OutboundMessage

# What a check may do with a message it stops.
HOLD_STATUSES = (
    MessageStatus.CANCELED,  # it must never go out (its reason: why)
    MessageStatus.SKIPPED,  # it cannot go out (no longer anything to send, or nobody to)
    MessageStatus.EXPIRED,  # too late
    MessageStatus.QUEUED,  # not now: due again at ``until``
)


@dataclass(frozen=True)
class Hold:
    """A check's verdict that a message must not go out now."""

    status: str
    reason: str
    until: dt.datetime | None = None  # with QUEUED: when the message is due again

    def __post_init__(self) -> None:
        if self.status not in HOLD_STATUSES:
            raise ValueError(f"A pre-send check cannot move a message to {self.status!r}.")
        if self.status == MessageStatus.QUEUED and self.until is None:
            raise ValueError("A message held back to the queue needs its new due time.")
        if self.status != MessageStatus.QUEUED and self.until is not None:
            raise ValueError("Only a message held back to the queue has a new due time.")


MessageCheck = Callable[[OutboundMessage], Hold | None]


@dataclass(frozen=True)
class PreSendCheck:
    """A re-check of claimed messages, registered by the app that writes them.

    ``batch(messages, now)`` returns the per-message check for that batch; ``related`` are the
    relations of ``OutboundMessage`` the check reads (``select_related`` paths), joined into
    the outbox's locking read so that the check costs no query per message to reach them.
    """

    name: str
    batch: Callable[[list[OutboundMessage], dt.datetime], MessageCheck]
    related: tuple[str, ...] = ()


_registry: dict[str, PreSendCheck] = {}


def pre_send_check_register(check: PreSendCheck) -> None:
    """Run ``check`` on every claimed message from now on (once per name: registering a name
    again replaces its check)."""
    _registry[check.name] = check


def pre_send_checks() -> list[PreSendCheck]:
    """The registered checks, in the order they were first registered."""
    return list(_registry.values())
