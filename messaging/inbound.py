"""Inbound SMS keywords (DESIGN §7): what a reply asks for, before anything is stored.

The keyword sets follow the carriers' (CTIA) standard opt-out and opt-in words, which
Twilio's Advanced Opt-Out also honours; a reply is a keyword only when it is nothing else
(case and surrounding whitespace aside), so "stop by at 3?" lands in the Inbox.
"""

from __future__ import annotations

from messaging.models import InboundHandling
from trackstat.phones import phone_for_people

STOP_KEYWORDS = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
START_KEYWORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_KEYWORDS = frozenset({"HELP"})
STOP_HINT = "Reply STOP to opt out."


def inbound_keyword(body: str) -> InboundHandling:
    """How an inbound SMS body is handled: an opt-out, an opt-in, a help request or the
    Inbox."""
    word = (body or "").strip().upper()
    if word in STOP_KEYWORDS:
        return InboundHandling.STOP
    if word in START_KEYWORDS:
        return InboundHandling.START
    if word in HELP_KEYWORDS:
        return InboundHandling.HELP
    return InboundHandling.INBOX


def opt_out_confirmation(*, practice_name: str) -> str:
    """The one text that confirms an opt-out in the patient's own words (DESIGN §7)."""
    return (
        f"{practice_name}: you will not get any more texts from us. Reply START to get them again."
    )


def help_reply(*, practice_name: str, practice_phone: str) -> str:
    """The answer to HELP: who is texting and how to reach them, and how to stop. Without a
    phone on file, a reply reaches the practice's Inbox."""
    if practice_phone.strip():
        return f"{practice_name}: call {phone_for_people(practice_phone.strip())}. {STOP_HINT}"
    return (
        f"{practice_name}: reply here with your question and our staff will get back to you. "
        f"{STOP_HINT}"
    )
