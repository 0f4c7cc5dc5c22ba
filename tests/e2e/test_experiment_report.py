"""The Report tab's experiment section in Chromium (DESIGN §5.9): the arms of a campaign with
a control group and two variants, their rates, the differences with their intervals and the
plain sentences."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from playwright.sync_api import expect

from campaigns.experiments.arms import HOLDOUT
from reports.models import ArmDayStat
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_experiments import variant_sms, welcome
from tests.factories import TEST_PASSWORD, MembershipFactory
from trackstat.models import Role

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_report_tab_shows_the_arms_and_the_sentence(page, login, shot, test_artifacts):
    clinic = Clinic()
    with time_machine.travel(ny(2026, 6, 1), tick=False):
        campaign = welcome(
            clinic,
            name="Reactivation A/B",
            holdout_percent=20,
            messages=[variant_sms(A="We miss you", B="Book today"), variant_sms(3, A="a", B="b")],
        )
    # What the roll-ups counted for the patients who entered on 15 June 2026.
    for arm, enrolled, sent, delivered, clicked, booked, visited, revenue in [
        (HOLDOUT, 301, 0, 0, 0, 56, 30, "1200.00"),
        ("A", 1204, 2408, 2301, 240, 300, 200, "9100.50"),
        ("B", 1190, 2380, 2290, 251, 240, 190, "7000.00"),
    ]:
        ArmDayStat.objects.create(
            practice=clinic.practice,
            campaign=campaign,
            period=1,
            arm=arm,
            day=dt.date(2026, 6, 15),
            enrolled=enrolled,
            sent=sent,
            delivered=delivered,
            clicked=clicked,
            booked=booked,
            visited=visited,
            revenue=Decimal(revenue),
        )
    manager = MembershipFactory(practice=clinic.practice, role=Role.MANAGER)
    login(manager.user.email, TEST_PASSWORD)
    page.goto(f"/reports/campaigns/{campaign.pk}/?from=2026-06-01&to=2026-06-30")

    section = page.locator("#experiment")
    expect(section.get_by_role("heading", name="Experiment")).to_be_visible()
    rows = section.locator("table.report-arms tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0)).to_contain_text("Control group (held out)")
    expect(rows.nth(1)).to_contain_text("Variant A")
    expect(rows.nth(1)).to_contain_text("24.9%")
    expect(rows.nth(1)).to_contain_text("+6.3 pts (1.0 to 11.0)")
    expect(section).to_contain_text(
        "Patients who got variant A booked 6.3 points more often than the control group "
        "(95% CI 1.0 to 11.0; 1,204 vs 301 patients)."
    )
    expect(section).to_contain_text("Patients who got variant B booked")
    section.scroll_into_view_if_needed()
    section.screenshot(path=test_artifacts / "experiment-section.png")
    shot("campaign report with its experiment")
