"""The forecast on the pages (issue 16, item 15): a drip's own page and the wizard's review
step show what the campaign would send on each of the next 7 days, with who and when."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.urls import reverse

from campaigns.language.spec import CampaignSerializer
from campaigns.services import campaign_create
from campaigns.views.wizard_state import draft_key
from patients.sync.patients import patients_upsert
from tests.campaigns.test_wizard import _audience, _post, _steps
from trackstat.models import Role

pytestmark = pytest.mark.django_db

# Tuesday 12 May 2026, 12:00 in New York (the factories' practice time zone).
NOW = dt.datetime(2026, 5, 12, 16, 0, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def frozen_time():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def plus(member_client):
    return member_client(Role.USER_PLUS)


def _patients(practice, *records):
    rows = [{"_index": i, **record} for i, record in enumerate(records)]
    assert not patients_upsert(practice=practice, records=rows).errors


def _campaign(practice, **data):
    data = {
        "name": "Birthday",
        "trigger": {"type": "birthday", "offset_days": 0},
        "schedule": {"frequency": "daily", "time": "10:00"},
        "messages": [{"channel": "sms", "body": "Happy birthday {{PatientFirstName}}"}],
        **data,
    }
    serializer = CampaignSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    return campaign_create(practice=practice, data=serializer.validated_data, actor=None)


def _birthdays_tomorrow(practice):
    _patients(
        practice,
        {
            "external_id": "A",
            "first_name": "Ada",
            "last_name": "Lovelace",
            "birth_date": dt.date(1980, 5, 13),
            "phone": "+13125550101",
        },
        {
            "external_id": "B",
            "first_name": "Bo",
            "last_name": "Nophone",
            "birth_date": dt.date(1981, 5, 13),
        },
        {
            "external_id": "C",
            "first_name": "Cy",
            "last_name": "Later",
            "birth_date": dt.date(1982, 5, 16),
            "phone": "+13125550103",
        },
    )


def test_a_drips_page_shows_the_next_seven_days_with_who_and_when(plus):
    practice = plus.membership.practice
    _birthdays_tomorrow(practice)
    campaign = _campaign(practice)
    response = plus.get(reverse("campaigns:drip_detail", args=[campaign.pk]))
    assert response.status_code == 200
    html = response.text
    assert "Next 7 days: what this campaign would send" in html
    assert "Worked out from today's data" in html
    assert "as if the campaign were on" in html
    rows = response.context["forecast"].days
    assert [d.count for d in rows] == [0, 1, 0, 0, 1, 0, 0]
    assert rows[1].skipped == 1  # Bo has no mobile phone
    assert "1 at 10:00" in html
    assert "Tomorrow it would send 1 message, 1 at 10:00</strong>; 2 over the 7 days." in html
    assert "Lovelace, Ada" in html
    assert "Later, Cy" in html
    assert "Nophone" not in html  # skipped, so not in the sample
    # The list links each campaign's name to its page.
    listing = plus.get(reverse("campaigns:drip_list")).text
    assert reverse("campaigns:drip_detail", args=[campaign.pk]) in listing


def test_a_continuous_campaign_says_what_it_can_and_cannot_know(plus):
    practice = plus.membership.practice
    campaign = _campaign(
        practice,
        name="Missed",
        trigger={"type": "missed_appointment", "minutes_after": 30},
        schedule=None,
    )
    html = plus.get(reverse("campaigns:drip_detail", args=[campaign.pk])).text
    assert "Only what is already recorded is counted" in html
    assert "appointments already missed today" in html
    assert "Could start it" in html


def test_the_wizard_review_step_forecasts_the_draft_before_it_is_saved(plus):
    practice = plus.membership.practice
    _birthdays_tomorrow(practice)
    _post(plus, "name", {"name": "Birthday draft"})
    _post(
        plus,
        "audience",
        _audience({"type": "birthday"}, {}, {"frequency": "daily", "time": "09:15"}),
    )
    response = _post(
        plus,
        "messages",
        _steps({"channel": "sms", "body": "Hi", "delay_value": "0", "delay_unit": "days"}),
    )
    assert response.status_code == 302, response.text
    assert draft_key(practice.pk, None) in plus.session
    response = plus.get(reverse("campaigns:drip_new_step", args=["review"]))
    assert response.status_code == 200
    assert [d.count for d in response.context["forecast"].days][:2] == [0, 1]
    assert "1 at 09:15" in response.text


def test_the_review_step_without_messages_says_what_is_missing(plus):
    response = plus.get(reverse("campaigns:drip_new_step", args=["review"]))
    assert response.status_code == 200
    assert "to see the forecast" in response.text


def test_a_user_gets_403_and_another_practice_404(member_client, other_practice):
    user = member_client(Role.USER)
    campaign = _campaign(user.membership.practice)
    assert user.get(reverse("campaigns:drip_detail", args=[campaign.pk])).status_code == 403
    plus = member_client(Role.USER_PLUS)
    theirs = _campaign(other_practice)
    assert plus.get(reverse("campaigns:drip_detail", args=[theirs.pk])).status_code == 404
    mine = _campaign(plus.membership.practice)
    assert plus.post(reverse("campaigns:drip_detail", args=[mine.pk])).status_code == 405
