"""The Inbox: selectors for the threads (one per patient, or per unknown number) and the
services staff use there (a reply sent at once, canned replies).

A thread is a patient's Inbox messages (inbound SMS that were not keywords) and the messages
the practice sent them (tests excluded). Inbound messages from a number that matches no
patient make a thread of their own, keyed by that number; its URL names it by an opaque token
(``unknown_thread_token``), never the number, which would land in access logs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.dateparse import parse_datetime

from messaging.models import (
    CannedReply,
    Channel,
    InboundHandling,
    InboundMessage,
    OutboundMessage,
)
from messaging.outbox.addresses import address_problem
from messaging.plaintext import html_to_text
from messaging.services import message_send_now
from patients.models import Patient
from trackstat.models import Practice, User

THREADS_PER_PAGE = 30
UNKNOWN_THREAD_SALT = "trackstat.messaging.inbox.unknown-number-thread"
REPLY_MAX_LENGTH = 1600

# filter name → (label, SQL condition on the grouped thread)
THREAD_FILTERS = {
    "all": ("All", "1 = 1"),
    "unread": ("Unread", "unread > 0"),
    "responses": ("Responses", "has_in = 1"),
    "sent": ("Sent", "has_out = 1"),
    "email": ("Emails", "has_email = 1"),
    "sms": ("Text Messages", "has_sms = 1"),
}

# One statement: every Inbox item of the practice, grouped into threads with their
# aggregates, the latest item's body picked by a window function, the total alongside.
# Portable between SQLite (development) and Postgres (CI, production).
_THREADS_SQL = """
WITH items AS (
    SELECT patient_id,
           CASE WHEN patient_id IS NULL THEN from_number ELSE '' END AS number,
           received_at AS at, id AS seq, body, 1 AS is_in, 0 AS is_out, 0 AS is_email,
           CASE WHEN read_at IS NULL THEN 1 ELSE 0 END AS unread
      FROM messaging_inboundmessage
     WHERE practice_id = %s AND handled_as = %s
    UNION ALL
    SELECT patient_id, '' AS number, COALESCE(sent_at, created_at) AS at, id AS seq, body,
           0 AS is_in, 1 AS is_out, CASE WHEN channel = %s THEN 1 ELSE 0 END AS is_email,
           0 AS unread
      FROM messaging_outboundmessage
     WHERE practice_id = %s AND is_test = %s AND patient_id IS NOT NULL
),
ranked AS (
    SELECT items.*, ROW_NUMBER() OVER (
               PARTITION BY patient_id, number ORDER BY at DESC, is_in DESC, seq DESC
           ) AS rn
      FROM items
),
threads AS (
    SELECT patient_id, number, MAX(at) AS last_at, SUM(unread) AS unread,
           MAX(is_in) AS has_in, MAX(is_out) AS has_out, MAX(is_email) AS has_email,
           MAX(CASE WHEN is_email = 0 THEN 1 ELSE 0 END) AS has_sms,
           MAX(CASE WHEN rn = 1 THEN body END) AS last_body,
           MAX(CASE WHEN rn = 1 THEN is_in END) AS last_is_in,
           MAX(CASE WHEN rn = 1 THEN is_email END) AS last_is_email
      FROM ranked
     GROUP BY patient_id, number
)
SELECT patient_id, number, last_at, unread, last_body, last_is_in, last_is_email,
       COUNT(*) OVER () AS total
  FROM threads
 WHERE {condition}
 ORDER BY last_at DESC, patient_id DESC, number DESC
 LIMIT %s OFFSET %s
"""


@dataclass
class Thread:
    patient_id: int | None
    number: str  # the sender's number when no patient matches it
    last_at: dt.datetime
    unread: int
    preview: str  # the latest message's first line
    last_is_theirs: bool
    patient: Patient | None = None
    token: str = ""  # the URL's key of an unknown number's thread (unknown_thread_token)


@dataclass
class ThreadPage:
    threads: list[Thread]
    number: int
    total: int
    per_page: int

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number * self.per_page < self.total

    @property
    def previous_page_number(self) -> int:
        return self.number - 1

    @property
    def next_page_number(self) -> int:
        return self.number + 1


def _as_datetime(value) -> dt.datetime:
    if isinstance(value, str):  # SQLite hands back text
        value = parse_datetime(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt.UTC)
    return value


def _first_line(body: str | None) -> str:
    lines = (body or "").strip().splitlines()
    return lines[0] if lines else ""


def inbox_threads(
    *, practice: Practice, filter: str = "all", page: int = 1, per_page: int = THREADS_PER_PAGE
) -> ThreadPage:
    """A page of the practice's threads, newest activity first (two queries: the threads,
    then their patients)."""
    condition = THREAD_FILTERS.get(filter, THREAD_FILTERS["all"])[1]
    page = max(page, 1)
    params = [
        practice.pk,
        InboundHandling.INBOX,
        Channel.EMAIL,
        practice.pk,
        False,
        per_page,
        (page - 1) * per_page,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_THREADS_SQL.format(condition=condition), params)
        rows = cursor.fetchall()
    threads = [
        Thread(
            patient_id=patient_id,
            number=number,
            last_at=_as_datetime(last_at),
            unread=int(unread or 0),
            # A text exactly as sent or received; an email (HTML) as its plain-text reading.
            preview=_first_line(html_to_text(last_body) if last_is_email else last_body),
            last_is_theirs=bool(last_is_in),
            token=""
            if patient_id
            else unknown_thread_token(practice_id=practice.pk, number=number),
        )
        for patient_id, number, last_at, unread, last_body, last_is_in, last_is_email, _ in rows
    ]
    total = rows[0][-1] if rows else 0
    patient_ids = [t.patient_id for t in threads if t.patient_id is not None]
    if patient_ids:
        patients = Patient.objects.filter(practice=practice).in_bulk(patient_ids)
        for thread in threads:
            thread.patient = patients.get(thread.patient_id)
    return ThreadPage(threads=threads, number=page, total=int(total), per_page=per_page)


def unknown_thread_token(*, practice_id: int, number: str) -> str:
    """The key of the thread from ``number`` (matching no patient) in the Inbox's URLs: an HMAC
    (with ``SECRET_KEY``) of the practice and the number, so it is not the number, cannot be
    worked out from it, and names nothing in another practice."""
    message = f"{practice_id}:{number}"
    return salted_hmac(UNKNOWN_THREAD_SALT, message, algorithm="sha256").hexdigest()[:32]


def inbox_unknown_thread_number(*, practice: Practice, token: str) -> str | None:
    """The number whose thread (of the practice's Inbox messages from numbers matching no
    patient) ``token`` names, or None. Compares against each such number's token: they are
    few (strangers and wrong numbers), and an HMAC cannot be looked up the other way."""
    numbers = (
        InboundMessage.objects.filter(
            practice=practice, handled_as=InboundHandling.INBOX, patient__isnull=True
        )
        .order_by()
        .values_list("from_number", flat=True)
        .distinct()
    )
    for number in numbers.iterator():
        if constant_time_compare(
            unknown_thread_token(practice_id=practice.pk, number=number), token
        ):
            return number
    return None


@dataclass
class ThreadItem:
    at: dt.datetime
    body: str
    theirs: bool
    channel: str
    status: str = ""
    status_label: str = ""
    subject: str = ""
    might_be_opt_out: bool = False
    # A reply to a reminder that asked (DESIGN §7): how it was read, about which appointment.
    answer: str = ""
    appointment_start: dt.datetime | None = None
    appointment_confirmation: str = ""


def inbox_thread_items(
    *, practice: Practice, patient: Patient | None = None, number: str = ""
) -> list[ThreadItem]:
    """One thread, oldest first: the patient's Inbox messages and what we sent them (or, for
    an unknown number, what it sent)."""
    inbound = InboundMessage.objects.filter(practice=practice, handled_as=InboundHandling.INBOX)
    if patient is not None:
        inbound = inbound.filter(patient=patient)
        outbound = OutboundMessage.objects.filter(practice=practice, patient=patient, is_test=False)
    else:
        inbound = inbound.filter(patient__isnull=True, from_number=number)
        outbound = OutboundMessage.objects.none()
    inbound = inbound.select_related("confirmation_appointment")
    items = [
        ThreadItem(
            at=m.received_at,
            body=m.body,
            theirs=True,
            channel=Channel.SMS,
            might_be_opt_out=m.might_be_opt_out,
            answer=m.confirmation_answer,
            appointment_start=m.confirmation_appointment.start
            if m.confirmation_appointment
            else None,
            appointment_confirmation=m.confirmation_appointment.get_confirmation_display()
            if m.confirmation_appointment
            else "",
        )
        for m in inbound
    ] + [
        ThreadItem(
            at=m.sent_at or m.created_at,
            body=m.body,
            theirs=False,
            channel=m.channel,
            status=m.status,
            status_label=m.get_status_display(),
            subject=m.subject,
        )
        for m in outbound
    ]
    return sorted(items, key=lambda item: item.at)


def inbox_thread_mark_read(
    *, practice: Practice, patient: Patient | None = None, number: str = "", now: dt.datetime
) -> int:
    """Mark the thread's unread inbound messages read (one UPDATE); return how many."""
    unread = InboundMessage.objects.filter(
        practice=practice, handled_as=InboundHandling.INBOX, read_at__isnull=True
    )
    if patient is not None:
        unread = unread.filter(patient=patient)
    else:
        unread = unread.filter(patient__isnull=True, from_number=number)
    return unread.update(read_at=now)


def inbox_reply_send(
    *, practice: Practice, patient: Patient, body: str, user: User
) -> OutboundMessage:
    """Text ``body`` to the patient now, through the outbox (an Inbox reply is a conversation,
    not a campaign). If the sending window is closed the outbox's re-check queues it for the
    next window, and its status says so. Like every text, it carries the STOP footer if it is
    the first the patient receives, as decided when it is sent."""
    body = (body or "").strip()
    if not body:
        raise ValidationError({"body": "Write a reply before sending."})
    if len(body) > REPLY_MAX_LENGTH:
        raise ValidationError(
            {"body": f"A reply can have at most {REPLY_MAX_LENGTH} characters ({len(body)})."}
        )
    to, problem = address_problem(patient, Channel.SMS)
    if not to:
        raise ValidationError({"patient": f"Not sent: the patient has {problem}."})
    return message_send_now(
        practice=practice,
        reason=f"inbox reply by user {user.pk}",
        patient=patient,
        channel=Channel.SMS,
        to=to,
        body=body,
    )


def canned_replies(*, practice: Practice):
    return CannedReply.objects.filter(practice=practice).order_by("title", "id")


def canned_reply_create(*, practice: Practice, title: str, body: str) -> CannedReply:
    """Add a canned reply to the practice's list."""
    return CannedReply.objects.create(practice=practice, title=title.strip(), body=body.strip())


def canned_reply_delete(*, practice: Practice, canned_reply: CannedReply) -> None:
    """Remove a canned reply (only the practice's own)."""
    CannedReply.objects.filter(practice=practice, pk=canned_reply.pk).delete()
