"""Patient trust in the outbox (DESIGN §5.8): marketing consent, state rules and the
practice's frequency caps, applied when a campaign message is made (``messages_trust_apply``,
called by the engine) and again just before it is sent (``TRUST_RECHECK``, a pre-send check
registered at app start).

The rules, as a practice reads them:

- **Consent.** A marketing message needs the patient's marketing consent for its channel
  where the practice requires opt-in (``sms_marketing_requires_opt_in`` for texts), and never
  goes to a patient who refused marketing on that channel: ``skipped`` with
  ``no_marketing_consent``.
- **State rules** (on unless the policy turns them off), for marketing texts by the patient's
  state: FL, OK, MD 08:00-20:00 and at most 3 marketing texts in 24 hours; TX 09:00-21:00
  Monday to Saturday, 12:00-21:00 Sunday. Outside the hours the text waits, as with quiet
  hours (``sending_time``).
- **Caps.** ``marketing_per_24h``, ``marketing_per_7d``, ``notice_per_24h``, ``care_per_24h``
  count the patient's messages of that purpose on any channel and from any campaign, sent or
  queued ahead of this one, in the 24 hours (or 7 days) before its send instant; test sends
  and Inbox replies carry no purpose and never count. A capped message is ``skipped`` with
  ``frequency_cap``. Purposes never cap each other.

"Ahead" is an order: a message already sent, handed to the provider, or past its own re-check
and on its way there (``passed_check_at``, set under the locks below) is always ahead and
never displaced; among the ones not sent yet, the higher ``priority`` first, then the
campaign created first (the lower id), then the earlier due time. At materialization the
messages of a batch are judged in that order; before sending, the batch's patients are locked
(advisory locks, one per patient, in one sorted order) so that two batches re-checking the
same patient at once take turns, the second seeing what the first decided: the order alone
keeps two messages from both slipping under a cap, and the lock keeps a message the first
batch stopped (a text over its state's cap, waiting for its state's hours) from still
counting against the second's, which would then skip both (tests/trust/test_cap_concurrency).

Everything here is set-wise: one query reads the recent messages of a batch's patients.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import connection
from django.db.models import Q

from messaging.models import (
    NOT_RECEIVED,
    SENT_STATUSES,
    MessageStatus,
    OutboundMessage,
    Purpose,
)
from messaging.outbox.checks import Hold, MessageCheck, PreSendCheck
from messaging.outbox.window import WINDOWED_CHANNELS, next_sending_time, window_bounds
from patients.models import ConsentChange, ConsentScope, Patient
from trackstat.models import Practice

FREQUENCY_CAP = "frequency_cap"
NO_MARKETING_CONSENT = "no_marketing_consent"
WAITING_FOR_STATE_HOURS = "waiting for the state's sending hours"
DAY = dt.timedelta(hours=24)
WEEK = dt.timedelta(days=7)
# The advisory-lock namespace of the patients whose capped messages are being re-checked.
PATIENT_LOCKS = 0x54535443


@dataclass(frozen=True)
class StateRule:
    """Marketing-text hours (per weekday, Monday = 0) and an optional 24-hour cap."""

    state: str
    hours: dict[int, tuple[dt.time, dt.time]]
    per_24h: int | None

    def describe(self) -> str:
        days = {(s, e) for s, e in self.hours.values()}
        if len(days) == 1:
            start, end = days.pop()
            text = f"{start:%H:%M}-{end:%H:%M}"
        else:
            week, sunday = self.hours[0], self.hours[6]
            text = (
                f"{week[0]:%H:%M}-{week[1]:%H:%M} Monday-Saturday, "
                f"{sunday[0]:%H:%M}-{sunday[1]:%H:%M} Sunday"
            )
        cap = f", at most {self.per_24h} marketing texts in 24 hours" if self.per_24h else ""
        return f"{self.state}: marketing texts {text}{cap}"


def _every_day(start: int, end: int) -> dict[int, tuple[dt.time, dt.time]]:
    return {day: (dt.time(start), dt.time(end)) for day in range(7)}


STATE_RULES = {
    "FL": StateRule("FL", _every_day(8, 20), 3),
    "OK": StateRule("OK", _every_day(8, 20), 3),
    "MD": StateRule("MD", _every_day(8, 20), 3),
    "TX": StateRule("TX", {**_every_day(9, 21), 6: (dt.time(12), dt.time(21))}, None),
}
STATE_NAMES = {"FLORIDA": "FL", "OKLAHOMA": "OK", "MARYLAND": "MD", "TEXAS": "TX"}


def state_code(state: str) -> str:
    """A patient's address state as a two-letter code ("Florida" and "fl" are FL)."""
    word = (state or "").strip().upper().rstrip(".")
    return STATE_NAMES.get(word, word)


def state_rule_for(
    *, practice: Practice, patient_state: str, purpose: str, channel: str
) -> StateRule | None:
    """The state rule a message follows, if any: marketing texts, by the patient's state,
    unless the practice's policy turns state rules off."""
    if purpose != Purpose.MARKETING or channel != "sms" or not practice.policy["state_rules"]:
        return None
    return STATE_RULES.get(state_code(patient_state))


def _state_opens(at: dt.datetime, rule: StateRule, tz) -> dt.datetime:
    """``at`` if it is inside the state's hours, else when they next open."""
    day = at.astimezone(tz).date()
    for offset in range(8):
        date = day + dt.timedelta(days=offset)
        start, end = rule.hours[date.weekday()]
        opens, closes = window_bounds(date, start, end, tz)
        if at < closes:
            return max(at, opens)
    return at  # unreachable: every weekday has hours


def sending_time(
    *,
    practice: Practice,
    at: dt.datetime,
    channel: str,
    purpose: str = "",
    patient_state: str = "",
) -> dt.datetime:
    """When a message due at ``at`` actually goes out for this patient: the first instant
    at or after ``at`` inside the practice's sending window (quiet hours) and, for a
    marketing text, inside the hours of the patient's state. The blast form and forecasts
    call it; the engine and the outbox apply it."""
    rule = state_rule_for(
        practice=practice, patient_state=patient_state, purpose=purpose, channel=channel
    )
    tz = practice.tz
    current = at
    for _ in range(16):  # the two windows meet within a few days
        opens = current
        if channel in WINDOWED_CHANNELS:
            opens = next_sending_time(
                current,
                start=practice.sending_window_start,
                end=practice.sending_window_end,
                tz=tz,
            )
        state_opens = _state_opens(opens, rule, tz) if rule else opens
        if state_opens == opens:
            return opens
        current = state_opens
    return current


@dataclass(frozen=True)
class Cap:
    """One limit a message is judged by: at most ``limit`` messages of its purpose (on
    ``channel``, or any) in ``window`` before its send instant."""

    name: str
    limit: int
    window: dt.timedelta
    channel: str | None = None


def caps_for(
    *, practice: Practice, purpose: str, channel: str, patient_state: str = ""
) -> list[Cap]:
    """The caps of the practice's policy (and the patient's state) for a message."""
    if not purpose:
        return []
    policy = practice.policy
    caps = []
    for window_name, window in (("24h", DAY), ("7d", WEEK)):
        limit = policy.get(f"{purpose}_per_{window_name}")
        if limit is not None:
            caps.append(Cap(f"{purpose}_per_{window_name}", int(limit), window))
    rule = state_rule_for(
        practice=practice, patient_state=patient_state, purpose=purpose, channel=channel
    )
    if rule is not None and rule.per_24h is not None:
        caps.append(Cap(f"{rule.state}_marketing_sms_per_24h", rule.per_24h, DAY, "sms"))
    return caps


def consent_problem(*, practice: Practice, patient: Patient, purpose: str, channel: str) -> str:
    """``no_marketing_consent`` when a marketing message may not go to this patient on this
    channel (refused, or unknown where the practice requires opt-in), else ""."""
    if purpose != Purpose.MARKETING:
        return ""
    consent = getattr(patient, f"{channel}_marketing_consent", None)
    if consent is False:
        return NO_MARKETING_CONSENT
    if consent is None and channel == "sms" and practice.policy["sms_marketing_requires_opt_in"]:
        return NO_MARKETING_CONSENT
    return ""


@dataclass
class Counted:
    """A message a cap counts: what, when, and whether it is already out."""

    id: int | None
    purpose: str
    channel: str
    instant: dt.datetime
    out: bool  # sent, or handed to the provider: always ahead, never displaced
    order: tuple


def order_key(
    *, priority: int, campaign_id: int | None, due: dt.datetime, message_id: int | None
) -> tuple:
    """Which of two messages not sent yet goes first: higher priority, then the campaign
    created first, then the earlier due time."""
    return (-priority, campaign_id or 0, due, message_id or 0)


# What counts toward a cap: sent or still going out (not skipped, canceled, expired, failed).
NOT_COUNTED = [*NOT_RECEIVED, MessageStatus.FAILED]
OUT_STATUSES = {*SENT_STATUSES, MessageStatus.UNKNOWN}


def recent_messages(
    patient_ids: Iterable[int], *, since: dt.datetime, until: dt.datetime
) -> dict[int, list[Counted]]:
    """The patients' messages with a purpose whose instant (sent, else due) is in
    (since, until], by patient: one query."""
    rows = (
        OutboundMessage.objects.filter(patient_id__in=set(patient_ids), is_test=False)
        .exclude(purpose="")
        .exclude(status__in=NOT_COUNTED)
        .filter(
            Q(sent_at__gt=since, sent_at__lte=until)
            | Q(sent_at__isnull=True, scheduled_for__gt=since, scheduled_for__lte=until)
        )
        .values_list(
            "id",
            "patient_id",
            "purpose",
            "channel",
            "sent_at",
            "scheduled_for",
            "status",
            "priority",
            "campaign_id",
            "provider_called_at",
            "passed_check_at",
        )
    )
    found: dict[int, list[Counted]] = defaultdict(list)
    for row in rows:
        (
            pk,
            patient_id,
            purpose,
            channel,
            sent_at,
            due,
            status,
            priority,
            campaign,
            called,
            passed,
        ) = row
        found[patient_id].append(
            Counted(
                id=pk,
                purpose=purpose,
                channel=channel,
                instant=sent_at or due,
                out=status in OUT_STATUSES
                or called is not None
                or (status == MessageStatus.SENDING and passed is not None),
                order=order_key(priority=priority, campaign_id=campaign, due=due, message_id=pk),
            )
        )
    return found


def cap_count(
    counted: list[Counted], cap: Cap, *, purpose: str, instant: dt.datetime, ahead_of=None
) -> int:
    """How many of ``counted`` the cap counts against a message of ``purpose`` going out at
    ``instant`` (``ahead_of``: its order key; only messages out or ahead of it count)."""
    since = instant - cap.window
    return sum(
        1
        for c in counted
        if c.purpose == purpose
        and (cap.channel is None or c.channel == cap.channel)
        and since < c.instant <= instant
        and (ahead_of is None or c.out or c.order < ahead_of)
    )


def _patient_state(message: OutboundMessage) -> str:
    return message.patient.state if message.patient is not None else ""


def _skip(message: OutboundMessage, reason: str) -> None:
    message.status, message.status_reason, message.to = MessageStatus.SKIPPED, reason, ""


def messages_trust_apply(messages: list[OutboundMessage]) -> None:
    """Apply consent, state hours and caps to campaign messages being made (unsaved, with
    ``practice`` and ``patient`` set, due at ``scheduled_for``): a message that may not go
    becomes ``skipped`` with its reason; a marketing text due outside its state's hours is
    due when they open. One query for the caps of the whole batch, none without caps."""
    candidates = [m for m in messages if m.status == MessageStatus.QUEUED and m.purpose]
    capped: list[tuple[OutboundMessage, list[Cap]]] = []
    for message in candidates:
        practice, state = message.practice, _patient_state(message)
        reason = consent_problem(
            practice=practice,
            patient=message.patient,
            purpose=message.purpose,
            channel=message.channel,
        )
        if reason:
            _skip(message, reason)
            continue
        if state_rule_for(
            practice=practice, patient_state=state, purpose=message.purpose, channel=message.channel
        ):
            message.scheduled_for = sending_time(
                practice=practice,
                at=message.scheduled_for,
                channel=message.channel,
                purpose=message.purpose,
                patient_state=state,
            )
        caps = caps_for(
            practice=practice, purpose=message.purpose, channel=message.channel, patient_state=state
        )
        if caps:
            capped.append((message, caps))
    if not capped:
        return
    longest = max(cap.window for _, caps in capped for cap in caps)
    recent = recent_messages(
        {m.patient_id for m, _ in capped},
        since=min(m.scheduled_for for m, _ in capped) - longest,
        until=max(m.scheduled_for for m, _ in capped),
    )

    def batch_order(item):
        m = item[0]
        return order_key(
            priority=m.priority, campaign_id=m.campaign_id, due=m.scheduled_for, message_id=0
        )

    for message, caps in sorted(capped, key=batch_order):
        counted = recent[message.patient_id]
        if any(
            cap_count(counted, cap, purpose=message.purpose, instant=message.scheduled_for)
            >= cap.limit
            for cap in caps
        ):
            _skip(message, FREQUENCY_CAP)
            continue
        counted.append(
            Counted(
                id=None,
                purpose=message.purpose,
                channel=message.channel,
                instant=message.scheduled_for,
                out=False,
                order=batch_order((message,)),
            )
        )


def _patients_lock(patient_ids: set[int]) -> None:
    """Take the patients' advisory locks for the rest of the transaction, in one sorted
    order (two batches never deadlock): a concurrent re-check of the same patient waits for
    this one to commit, then sees what it decided."""
    if not patient_ids or connection.vendor != "postgresql":
        return
    keys = sorted(
        {
            int.from_bytes(
                hashlib.blake2b(str(pk).encode(), digest_size=4).digest(), "big", signed=True
            )
            for pk in patient_ids
        }
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_advisory_xact_lock(%s, k)) "
            "FROM (SELECT unnest(%s::int[]) AS k ORDER BY 1) AS ordered",
            [PATIENT_LOCKS, keys],
        )


def trust_messages_check(messages: list[OutboundMessage], now: dt.datetime) -> MessageCheck:
    """The re-check of a batch of claimed messages just before sending: consent, state
    hours and caps against live data, the batch's patients locked."""
    judged = [m for m in messages if m.purpose and m.patient_id and not m.is_test]
    caps = {
        m.pk: caps_for(
            practice=m.practice,
            purpose=m.purpose,
            channel=m.channel,
            patient_state=_patient_state(m),
        )
        for m in judged
    }
    capped_patients = {m.patient_id for m in judged if caps[m.pk]}
    recent: dict[int, list[Counted]] = {}
    if capped_patients:
        _patients_lock(capped_patients)
        longest = max(cap.window for found in caps.values() for cap in found)
        recent = recent_messages(capped_patients, since=now - longest, until=now)
    skipped: set[int] = set()

    def check(message: OutboundMessage) -> Hold | None:
        if message.pk not in caps:
            return None  # no purpose (a test send, an Inbox reply, a reply owed at once)
        practice, state = message.practice, _patient_state(message)
        reason = consent_problem(
            practice=practice,
            patient=message.patient,
            purpose=message.purpose,
            channel=message.channel,
        )
        if reason:
            return Hold(MessageStatus.SKIPPED, reason)
        if state_rule_for(
            practice=practice, patient_state=state, purpose=message.purpose, channel=message.channel
        ):
            opens = sending_time(
                practice=practice,
                at=now,
                channel=message.channel,
                purpose=message.purpose,
                patient_state=state,
            )
            if opens > now:
                return Hold(MessageStatus.QUEUED, WAITING_FOR_STATE_HOURS, until=opens)
        mine = order_key(
            priority=message.priority,
            campaign_id=message.campaign_id,
            due=message.scheduled_for,
            message_id=message.pk,
        )
        others = [
            c
            for c in recent.get(message.patient_id, [])
            if c.id != message.pk and c.id not in skipped
        ]
        for cap in caps[message.pk]:
            if (
                cap_count(others, cap, purpose=message.purpose, instant=now, ahead_of=mine)
                >= cap.limit
            ):
                skipped.add(message.pk)
                return Hold(MessageStatus.SKIPPED, FREQUENCY_CAP)
        return None

    return check


TRUST_RECHECK = PreSendCheck(name="trust", batch=trust_messages_check, related=())


def _ledger_words(change) -> str:
    if change is None:
        return "nothing recorded"
    return f"{change.get_source_display().lower()} at {change.at:%Y-%m-%d %H:%M} UTC" + (
        f' ("{change.wording}")' if change.wording else ""
    )


def trust_explain(
    *, practice: Practice, patient: Patient, purpose: str, channels: list[str], at: dt.datetime
) -> dict:
    """The trust rules for one patient and a campaign's purpose at ``at``, in staff's words
    (explain, DESIGN §5.8): per channel, the consent that decides (the opt-out, else the
    marketing consent, with the ledger row it came from), the caps with their numbers, the
    state rule and when a message due now would actually go out."""
    latest = {}
    for change in ConsentChange.objects.filter(practice=practice, patient=patient).order_by(
        "at", "id"
    ):
        latest[(change.channel, change.scope)] = change
    decisions = []
    for channel in channels:
        opted_out = getattr(patient, f"{channel}_opt_out")
        problem = consent_problem(
            practice=practice, patient=patient, purpose=purpose, channel=channel
        )
        if opted_out:
            decided = f"opted out: {_ledger_words(latest.get((channel, ConsentScope.ALL)))}"
        elif purpose == Purpose.MARKETING:
            consent = getattr(patient, f"{channel}_marketing_consent")
            state = {True: "given", False: "refused", None: "unknown"}[consent]
            change = latest.get((channel, ConsentScope.MARKETING))
            decided = f"marketing consent {state}: {_ledger_words(change)}"
            if problem and consent is None:
                decided += "; the practice sends marketing texts only with consent"
        else:
            decided = f"not opted out; {purpose or 'this'} messages need no marketing consent"
        decisions.append(
            {
                "channel": channel,
                "allowed": not opted_out and not problem,
                "reason": problem or ("opted out" if opted_out else ""),
                "decided_by": decided,
            }
        )
    caps = []
    for channel in channels:
        found = caps_for(
            practice=practice, purpose=purpose, channel=channel, patient_state=patient.state
        )
        if not found:
            continue
        longest = max(cap.window for cap in found)
        counted = recent_messages([patient.pk], since=at - longest, until=at).get(patient.pk, [])
        for cap in found:
            if any(c["cap"] == cap.name for c in caps):
                continue
            count = cap_count(counted, cap, purpose=purpose, instant=at)
            caps.append(
                {
                    "cap": cap.name,
                    "limit": cap.limit,
                    "counted": count,
                    "hours": int(cap.window.total_seconds() // 3600),
                    "passes": count < cap.limit,
                    "detail": (
                        f"{count} {purpose} message{'s' if count != 1 else ''} in the "
                        f"{int(cap.window.total_seconds() // 3600)} hours before; the cap is "
                        f"{cap.limit}" + ("" if count < cap.limit else f": {FREQUENCY_CAP}")
                    ),
                }
            )
    rule = (
        state_rule_for(
            practice=practice, patient_state=patient.state, purpose=purpose, channel="sms"
        )
        if "sms" in channels
        else None
    )
    goes = {
        channel: sending_time(
            practice=practice,
            at=at,
            channel=channel,
            purpose=purpose,
            patient_state=patient.state,
        ).isoformat()
        for channel in channels
    }
    return {
        "purpose": purpose,
        "consent": decisions,
        "caps": caps,
        "state_rule": rule.describe() if rule else None,
        "goes_out_at": goes,
    }
