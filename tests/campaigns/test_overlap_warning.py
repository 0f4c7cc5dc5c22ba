"""Double-texting warned before activation (issue 16, item 5): the review step lists the other
drips that are on with the same trigger, how many of this audience each also reaches, and
suggests (and applies in one click) a non-zero "skip patients messaged in the last N days"."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine

from campaigns.models import Campaign
from campaigns.selectors import same_trigger_overlaps
from campaigns.services import campaign_set_enabled
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_wizard import _audience, _post, _steps, _url
from trackstat.models import Role

pytestmark = pytest.mark.django_db

NOON = ny(2026, 6, 15, 12, 0)
MISSED = {"type": "missed_appointment", "minutes_after": 30}


@pytest.fixture
def clinic():
    with time_machine.travel(NOON, tick=False):
        clinic = Clinic()
        for n in range(6):  # six patients missed their 10:00 appointment today
            patient = clinic.patient(f"M{n}", phone=f"+1312555010{n}")
            clinic.appointment(patient, ny(2026, 6, 15, 10, 0))
        clinic.patient("Other", phone="+13125550199")  # no appointment: matched by neither
        yield clinic


@pytest.fixture
def seeded(clinic):
    campaign = clinic.campaign(MISSED, {"status": "active"})
    Campaign.objects.filter(pk=campaign.pk).update(name="Missed appointment (seeded)")
    campaign.refresh_from_db()
    return campaign_set_enabled(campaign=campaign, enabled=True, actor=None)


def test_the_selector_counts_the_shared_audience(clinic, seeded):
    overlap = same_trigger_overlaps(
        practice=clinic.practice, trigger=MISSED, filters={"status": "active"}, at=NOON
    )
    assert overlap["audience"] == 6
    assert [(o["campaign"].pk, o["shared"]) for o in overlap["campaigns"]] == [(seeded.pk, 6)]
    assert overlap["suggested_days"] == 1
    # Another trigger type, or a campaign that is off, is no overlap.
    birthday = same_trigger_overlaps(
        practice=clinic.practice, trigger={"type": "birthday"}, filters={}, at=NOON
    )
    assert birthday["campaigns"] == []
    campaign_set_enabled(campaign=seeded, enabled=False, actor=None)
    off = same_trigger_overlaps(practice=clinic.practice, trigger=MISSED, filters={}, at=NOON)
    assert off["campaigns"] == []


def test_review_warns_and_one_click_sets_the_suggested_skip(member_client, clinic, seeded):
    plus = member_client(Role.USER_PLUS, practice=clinic.practice)
    with time_machine.travel(NOON + dt.timedelta(minutes=1), tick=False):
        _post(plus, "name", {"name": "Missed appointment (second)"})
        _post(plus, "audience", _audience({"type": "missed_appointment", "minutes_after": "30"}))
        _post(plus, "messages", _steps({"channel": "sms", "body": "We missed you"}))
        review = plus.get(_url("review")).text
        assert "Other campaigns on the same trigger" in review
        assert "Missed appointment (seeded)</a> also reaches <strong>6</strong>" in review
        assert "Patients may be texted twice." in review
        assert "Skip patients messaged in the last 1 day" in review
        # The activation question says it too.
        assert "6 of them also get “Missed appointment (seeded)”" in review

        response = _post(plus, "review", {"days": "1"}, action="skip_recent")
        assert response.status_code == 302
        review = plus.get(_url("review")).text
        assert "Patients may be texted twice." not in review
        assert "are skipped, so nobody gets both" in review

        assert _post(plus, "review", {"days": "0"}, action="skip_recent").status_code == 400


def test_no_warning_without_another_campaign_on_the_trigger(member_client, clinic):
    plus = member_client(Role.USER_PLUS, practice=clinic.practice)
    with time_machine.travel(NOON, tick=False):
        _post(plus, "name", {"name": "Only one"})
        _post(plus, "audience", _audience({"type": "missed_appointment", "minutes_after": "30"}))
        _post(plus, "messages", _steps({"channel": "sms", "body": "We missed you"}))
        assert "Other campaigns on the same trigger" not in plus.get(_url("review")).text


def test_the_drip_switch_question_names_the_overlap(member_client, clinic, seeded):
    from django.urls import reverse

    plus = member_client(Role.USER_PLUS, practice=clinic.practice)
    second = clinic.campaign(MISSED, {"status": "active"})
    with time_machine.travel(NOON, tick=False):
        asked = plus.post(
            reverse("campaigns:drip_toggle", args=[second.pk]),
            {"enabled": "true"},
            headers={"HX-Request": "true"},
        )
    assert "6 patients match it now" in asked.text
    assert "6 of them also get “Missed appointment (seeded)”" in asked.text
