"""Layout in Chromium (issue 16, item 11): the report's By step table fits a 1366 px screen
without scrolling sideways, a blast's report has no goal columns, one menu item is current on
the Sandbox page, and a 200-character unbroken name does not widen the page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from campaigns.models import Campaign, CampaignKind
from tests.factories import TEST_PASSWORD, MembershipFactory, PatientFactory
from tests.reports.test_rollup import build
from trackstat.models import Role

pytestmark = pytest.mark.django_db(transaction=True)


def _fits(page, selector: str) -> bool:
    return page.locator(selector).evaluate("el => el.scrollWidth <= el.clientWidth")


def test_the_by_step_table_fits_1366_px(page, login, shot):
    fixture = build(refresh_each_step=False)
    manager = MembershipFactory(practice=fixture.practice, role=Role.MANAGER)
    page.set_viewport_size({"width": 1366, "height": 900})
    login(manager.user.email, TEST_PASSWORD)
    page.goto(f"/reports/campaigns/{fixture.campaign.pk}/?from=2026-11-02&to=2026-11-04")
    steps = page.locator("section[aria-labelledby='steps-heading']")
    expect(steps.get_by_role("heading", name="By step")).to_be_visible()
    shot("by step at 1366")
    assert _fits(page, "section[aria-labelledby='steps-heading']")


def test_blast_report_has_no_goal_conversions(page, login, practice):
    manager = MembershipFactory(practice=practice, role=Role.MANAGER)
    blast = Campaign.objects.create(
        practice=practice, name="Closed Friday", kind=CampaignKind.BLAST
    )
    login(manager.user.email, TEST_PASSWORD)
    page.goto(f"/reports/campaigns/{blast.pk}/")
    expect(page.get_by_role("heading", name="Closed Friday")).to_be_visible()
    expect(page.get_by_text("Goal conversions")).to_have_count(0)


def test_one_menu_item_is_current_and_long_names_wrap(page, login, shot, practice):
    user = MembershipFactory(practice=practice, role=Role.USER)
    long_name = "W" * 100  # the longest a name field takes, unbroken
    patient = PatientFactory(practice=practice, first_name=long_name, last_name=long_name)
    login(user.user.email, TEST_PASSWORD)
    page.goto("/inbox/sandbox/")
    current = page.locator("nav.sidebar a.item.active")
    expect(current).to_have_count(1)
    expect(current).to_have_text("Sandbox")

    for url in ("/patients/", f"/patients/{patient.pk}/"):
        page.goto(url)
        expect(page.get_by_text(long_name[:50], exact=False).first).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, (url, width)
    shot("long name wraps")


def test_a_200_character_campaign_name_does_not_widen_the_page(page, login, practice):
    plus = MembershipFactory(practice=practice, role=Role.MANAGER)
    name = "Q" * 200
    campaign = Campaign.objects.create(practice=practice, name=name, kind=CampaignKind.DRIP)
    login(plus.user.email, TEST_PASSWORD)
    for url in ("/campaigns/drip/", "/reports/", f"/reports/campaigns/{campaign.pk}/"):
        page.goto(url)
        expect(page.get_by_text(name[:50], exact=False).first).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 1280, (url, width)
