"""Inbox URLs carry no phone number (issue 13, item 17).

URLs end up in access logs, browser history and Referer headers. A patient's thread is keyed
by the patient's id; a thread from a number that matches no patient by an opaque token (an
HMAC of the practice and the number), which is not the number, cannot be guessed from it, and
names nothing in another practice.
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from messaging.inbox import unknown_thread_token
from tests.factories import PatientFactory
from tests.messaging.test_inbox import inbound
from trackstat.models import Role

pytestmark = pytest.mark.django_db

STRANGER = "+13125557777"


def _digits_of(number: str) -> list[str]:
    digits = number.removeprefix("+")
    return [digits, digits[1:], digits[-7:]]  # E.164, national, subscriber number


def test_thread_links_carry_no_phone_digits(practice, member_client):
    client = member_client(Role.USER, practice=practice)
    ann = PatientFactory(practice=practice, first_name="Ann", phone="+13125550101")
    inbound(practice, patient=ann, body="from Ann")
    inbound(practice, number=STRANGER, body="Who is this?")

    page = client.get(reverse("messaging:inbox"))

    links = re.findall(r'href="([^"]+)"', page.text)
    assert reverse("messaging:thread", args=[ann.pk]) in links
    for link in links:
        for digits in _digits_of(STRANGER) + _digits_of(ann.phone):
            assert digits not in link, link
    assert "Unknown number +13125557777" in page.text  # shown on the page, not in its URL

    token = unknown_thread_token(practice_id=practice.pk, number=STRANGER)
    assert reverse("messaging:unknown_thread", args=[token]) in links
    thread = client.get(reverse("messaging:unknown_thread", args=[token]))
    assert thread.status_code == 200
    assert "Who is this?" in thread.text


def test_unknown_thread_tokens_are_per_practice_and_not_guessable(
    practice, other_practice, member_client
):
    inbound(practice, number=STRANGER, body="stranger to A")
    inbound(other_practice, number=STRANGER, body="stranger to B")
    token_a = unknown_thread_token(practice_id=practice.pk, number=STRANGER)
    token_b = unknown_thread_token(practice_id=other_practice.pk, number=STRANGER)
    assert token_a != token_b
    assert not set(re.findall(r"\d{4,}", token_a)) & set(_digits_of(STRANGER))

    client = member_client(Role.USER, practice=practice)
    assert "stranger to A" in client.get(reverse("messaging:unknown_thread", args=[token_a])).text
    for token in [token_b, "0" * 32, STRANGER]:
        assert client.get(reverse("messaging:unknown_thread", args=[token])).status_code == 404


def test_the_old_phone_number_urls_are_gone(practice, member_client):
    inbound(practice, number=STRANGER, body="Who is this?")
    client = member_client(Role.USER, practice=practice)
    assert client.get(f"/inbox/number/{STRANGER}/").status_code == 404
