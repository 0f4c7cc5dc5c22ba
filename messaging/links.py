"""Tracked links and email unsubscribe links (DESIGN §5.5, §7).

Every http(s) link in a campaign message is rewritten to ``{PUBLIC_BASE_URL}/l/<token>``
(one ``TrackedLink`` per distinct URL per message): opening it records the click, moves the
message to ``clicked`` and announces it (``signals.link_clicked``: a campaign's
``clicked_link`` goal is met by it). Every campaign email carries its own
unsubscribe link, ``{PUBLIC_BASE_URL}/unsubscribe/<token>/``, whose random token names the
message: nothing about the patient is in either URL.

Tokens are random, so they are made before the message has an id: the engine renders and
rewrites a whole batch in memory and then saves the links with one ``bulk_create`` each.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import secrets

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from messaging.models import (
    Channel,
    MessageStatus,
    OutboundMessage,
    TrackedLink,
    UnsubscribeToken,
)
from messaging.outbox.status import message_transition, message_unsubscribed_record
from messaging.signals import link_clicked
from patients.models import OptOutSource, Patient
from patients.services import patient_opt_out_set

# A URL in plain text ends at whitespace or a quote/bracket; trailing sentence punctuation
# ("Book: https://x.test/a.") is not part of it.
PLAIN_URL_RE = re.compile(r"""https?://[^\s<>"']+""", re.IGNORECASE)
TRAILING_PUNCTUATION = ".,;:!?"
HREF_RE = re.compile(r"""(\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
UNSUBSCRIBE_FOOTER = (
    '<p style="font-size:12px;color:#666666">'
    "Don't want these emails? "
    '<a href="{url}">Unsubscribe</a></p>'
)
UNSUBSCRIBE_ACTOR = "unsubscribe link"
POSTAL_ADDRESS_FOOTER = '<p style="font-size:12px;color:#666666">{address}</p>'


def _base() -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/")


def tracked_url(token: str) -> str:
    return f"{_base()}/l/{token}"


def _link_token_new() -> str:
    return secrets.token_urlsafe(9)  # 12 characters, 72 random bits


def _is_ours(url: str) -> bool:
    """The unsubscribe link and links already tracked are never rewritten."""
    base = _base()
    return url.startswith((f"{base}/unsubscribe/", f"{base}/l/"))


def _split_plain_url(url: str) -> tuple[str, str]:
    """(url, trailing punctuation that belongs to the sentence)."""
    end = len(url)
    while end and (
        url[end - 1] in TRAILING_PUNCTUATION or (url[end - 1] == ")" and "(" not in url[:end])
    ):
        end -= 1
    return url[:end], url[end:]


def links_track(
    *,
    message: OutboundMessage,
    body: str,
    channel: str,
    pending: list[TrackedLink] | None = None,
) -> str:
    """``body`` with every http(s) link rewritten to a tracked link of ``message``.

    SMS: plain URLs; email (HTML): ``href`` attributes. The unsubscribe link is left alone.
    With ``pending`` (the engine's batch, where ``message`` is not saved yet) the new links are
    appended to it for the caller to ``bulk_create`` after the messages; without it they are
    saved at once (one statement), reusing the message's existing link for a URL it already has.
    """
    links: dict[str, TrackedLink] = {}
    if pending is None and message.pk is not None:
        links = {link.url: link for link in TrackedLink.objects.filter(message=message)}
    new: list[TrackedLink] = []

    def track(url: str) -> str:
        link = links.get(url)
        if link is None:
            link = TrackedLink(
                practice_id=message.practice_id, message=message, token=_link_token_new(), url=url
            )
            links[url] = link
            new.append(link)
        return tracked_url(link.token)

    def replace_href(match: re.Match) -> str:
        prefix, quote, raw = match.groups()
        url = html.unescape(raw).strip()
        if not url.lower().startswith(("http://", "https://")) or _is_ours(url):
            return match.group(0)
        return f"{prefix}{quote}{track(url)}{quote}"

    def replace_plain(match: re.Match) -> str:
        url, trailing = _split_plain_url(match.group(0))
        if not url or _is_ours(url):
            return match.group(0)
        return track(url) + trailing

    if channel == Channel.EMAIL:
        body = HREF_RE.sub(replace_href, body)
    else:
        body = PLAIN_URL_RE.sub(replace_plain, body)
    if pending is not None:
        pending.extend(new)
    elif new:
        TrackedLink.objects.bulk_create(new)
    return body


def unsubscribe_footer_add(*, body: str, url: str) -> str:
    """Every campaign email carries its unsubscribe link: a short footer when the body (its
    ``{{UnsubscribeLink}}`` already rendered to ``url``) does not show it."""
    if html.escape(url) in body or url in body:
        return body
    return body + UNSUBSCRIBE_FOOTER.format(url=html.escape(url))


def postal_address_footer_add(*, body: str, address: str) -> str:
    """Marketing email carries the practice's postal address (DESIGN §5.8)."""
    if not address.strip() or html.escape(address) in body:
        return body
    return body + POSTAL_ADDRESS_FOOTER.format(address=html.escape(address))


def unsubscribe_message(*, token: str) -> OutboundMessage | None:
    """The message an unsubscribe token names (with its practice), or None."""
    row = (
        UnsubscribeToken.objects.select_related("message__practice")
        .filter(token=token, message__patient__isnull=False)
        .first()
    )
    return row.message if row is not None else None


def patient_unsubscribe(*, message: OutboundMessage) -> Patient:
    """Opt the patient of ``message`` out of email (an unsubscribe link was used), audited;
    their queued emails are canceled by the opt-out. Idempotent; one transaction."""
    with transaction.atomic(durable=True):
        already = message.patient.email_opt_out
        patient = patient_opt_out_set(
            practice=message.practice,
            patient=message.patient,
            channel=Channel.EMAIL,
            opted_out=True,
            source=OptOutSource.UNSUBSCRIBE,
            actor=UNSUBSCRIBE_ACTOR,
        )
        if not already:
            message_unsubscribed_record(message=message, at=timezone.now())
    return patient


def tracked_link_url(*, token: str) -> str | None:
    """Where a tracked link goes (no click recorded), or None for an unknown token."""
    return TrackedLink.objects.filter(token=token).values_list("url", flat=True).first()


@transaction.atomic(durable=True)
def link_click(*, token: str, now: dt.datetime) -> str | None:
    """Record one opening of a tracked link and return its URL (None for an unknown token).

    The message moves to ``clicked``, and the click is announced (``link_clicked``) in the
    same transaction: a ``clicked_link`` goal of its enrollment's campaign is met, ending the
    enrollment at once (no later step is sent, queued ones are canceled), and counting as a
    conversion even when the click comes after the last step.
    """
    link = TrackedLink.objects.select_for_update().filter(token=token).first()
    if link is None:
        return None
    link.click_count += 1
    if link.first_clicked_at is None:
        link.first_clicked_at = now
    link.save(update_fields=["click_count", "first_clicked_at"])
    message = OutboundMessage.objects.select_for_update().get(pk=link.message_id)
    message_transition(message, status=MessageStatus.CLICKED, at=now, source="link")
    link_clicked.send(sender=OutboundMessage, message=message, url=link.url, at=now)
    return link.url
