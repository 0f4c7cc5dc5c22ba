"""The overlap warning in Chromium (issue 16, item 5): building a second missed-appointment
drip while the first is on, the review step names the first and how many patients both reach,
and one click sets the suggested "skip patients messaged in the last 1 day"."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Campaign
from campaigns.services import campaign_set_enabled
from tests.campaigns.builders import Clinic
from tests.factories import TEST_PASSWORD, MembershipFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db(transaction=True)

SHOTS = Path("/work/wt/shots/h16a")


def test_review_warns_of_double_texting_and_fixes_it(page, login, shot, practice):
    clinic = Clinic(practice)
    two_hours_ago = timezone.now() - dt.timedelta(hours=2)  # today: the practice is at midday
    for n in range(6):
        patient = clinic.patient(f"M{n}", first_name=f"Pat{n}", phone=f"+1312555010{n}")
        clinic.appointment(patient, two_hours_ago)
    seeded = clinic.campaign({"type": "missed_appointment", "minutes_after": 30})
    Campaign.objects.filter(pk=seeded.pk).update(name="Missed appointment +30 min")
    campaign_set_enabled(campaign=Campaign.objects.get(pk=seeded.pk), enabled=True, actor=None)
    plus = MembershipFactory(practice=practice, role=Role.USER_PLUS)

    login(plus.user.email, TEST_PASSWORD)
    page.goto("/campaigns/drip/new/")
    page.get_by_label("Name").fill("Missed appointment, second try")
    page.get_by_role("button", name="Next →").click()
    page.get_by_label("Trigger").select_option("missed_appointment")
    page.get_by_label("Minutes after").select_option("30")
    page.get_by_role("button", name="Next →").click()
    page.get_by_role("button", name="+ SMS message").click()
    page.locator("textarea[name='step-0-body']").fill("Sorry we missed you today")
    page.get_by_role("button", name="Next →").click()  # messages
    page.get_by_role("button", name="Next →").click()  # goals (one message: none)

    warning = page.locator("#overlap")
    expect(warning).to_contain_text("Missed appointment +30 min also reaches 6")
    expect(warning).to_contain_text("Patients may be texted twice.")
    path = shot("overlap warning")
    if SHOTS.is_dir():
        shutil.copy(path, SHOTS / "overlap-warning.png")

    warning.get_by_role("button", name="Skip patients messaged in the last 1 day").click()
    expect(page.locator("#overlap")).to_contain_text("are skipped, so nobody gets both")
    expect(page.locator(".review")).to_contain_text("in the last 1 day")
