"""Delays that make no sense are refused with one limit, and a blast says when its texts will
actually go out (issue 16, item 10)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse

from campaigns.language.spec import MessageStepSerializer
from tests.campaigns.test_pages import _blast, _practice
from tests.factories import PatientFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def plus(member_client):
    return member_client(Role.USER_PLUS)


def _delay_errors(value, unit):
    serializer = MessageStepSerializer(
        data={"channel": "sms", "body": "Hi", "delay": {"value": value, "unit": unit}}
    )
    return None if serializer.is_valid() else [str(e) for e in serializer.errors["delay"]]


@pytest.mark.parametrize(
    ("value", "unit"),
    [(10000, "months"), (25, "months"), (105, "weeks"), (731, "days"), (17521, "hours")],
)
def test_a_delay_over_two_years_is_refused_in_any_unit(value, unit):
    errors = _delay_errors(value, unit)
    assert errors is not None
    assert "A delay can be at most 2 years (730 days or 24 months)" in errors[0]
    assert f"{value:,} {unit} is longer." in errors[0]


@pytest.mark.parametrize(
    ("value", "unit"),
    [(24, "months"), (104, "weeks"), (730, "days"), (17520, "hours"), (90, "minutes")],
)
def test_a_delay_up_to_two_years_is_fine(value, unit):
    assert _delay_errors(value, unit) is None


def test_a_negative_delay_is_refused_in_plain_words():
    assert _delay_errors(-1, "days") == ["The delay must be a whole number, 0 or more."]


def test_a_blast_at_2_am_says_when_the_texts_go_out(plus):
    practice = _practice(plus)  # America/New_York, sending window 08:00-21:00
    PatientFactory(practice=practice, phone="+13125550101")
    blast = _blast(practice, send_at="2099-07-04T06:00:00Z")  # 2:00 AM EDT
    page = plus.get(reverse("campaigns:blast_detail", args=[blast.pk])).text
    assert (
        "That time is outside the practice&#x27;s sending hours (8:00 AM to 9:00 PM): "
        "the messages go out at Jul 4, 8:00 AM EDT." in page
    )
    asked = plus.post(reverse("campaigns:blast_enable", args=[blast.pk]), {"enabled": "true"})
    assert "the messages go out at Jul 4, 8:00 AM EDT" in asked.text


def test_a_blast_inside_the_window_has_no_quiet_hours_note(plus):
    practice = _practice(plus)
    blast = _blast(practice, send_at="2099-07-04T14:00:00Z")  # 10:00 AM EDT
    page = plus.get(reverse("campaigns:blast_detail", args=[blast.pk])).text
    assert "quiet-hours-note" not in page
    assert dt.datetime(2099, 7, 4, 14, tzinfo=dt.UTC) == blast.send_at
