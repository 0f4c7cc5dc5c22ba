"""The experiment part of the campaign report (DESIGN §5.9): per arm and period on the page,
in ``GET /api/v1/campaigns/{id}/report`` (``arms``) and in the arms CSV, the same numbers."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
import time_machine
from django.urls import reverse

from campaigns.engine import tick
from campaigns.experiments.arms import HOLDOUT
from campaigns.models import Enrollment, ExperimentPeriod
from reports.models import ArmDayStat
from reports.stats import newcombe_diff_ci
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_experiments import new_patients, update, variant_sms, welcome
from tests.factories import MembershipFactory
from tests.reports.test_attribution import refresh
from trackstat.models import Role

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 6, 15)
RANGE = {"from": "2026-06-01", "to": "2026-06-30"}


def signed_in(client, practice, role=Role.MANAGER):
    client.force_login(MembershipFactory(practice=practice, role=role).user)
    return client


@pytest.fixture
def counted():
    """A campaign with a 20 % holdout and variants A and B whose roll-ups say: 301 held out (56
    booked, 30 visited), 1,204 got A (300 booked, 200 visited), 1,190 got B (240, 190)."""
    clinic = Clinic()
    with time_machine.travel(ny(2026, 6, 1), tick=False):
        campaign = welcome(
            clinic,
            holdout_percent=20,
            messages=[variant_sms(A="a", B="b"), variant_sms(3, A="c", B="d")],
        )
    for arm, enrolled, sent, booked, visited, revenue in [
        (HOLDOUT, 301, 0, 56, 30, "1200.00"),
        ("A", 1204, 2400, 300, 200, "9100.50"),
        ("B", 1190, 2380, 240, 190, "7000.00"),
    ]:
        ArmDayStat.objects.create(
            practice=clinic.practice,
            campaign=campaign,
            period=1,
            arm=arm,
            day=DAY,
            enrolled=enrolled,
            sent=sent,
            delivered=sent - 10 if sent else 0,
            clicked=sent // 10,
            booked=booked,
            visited=visited,
            revenue=Decimal(revenue),
        )
    return clinic, campaign


def test_the_api_gives_each_arm_its_rates_and_newcombe_interval(client, counted):
    clinic, campaign = counted
    signed_in(client, clinic.practice, Role.USER)
    report = client.get(reverse("api_campaign_report", args=[campaign.pk]), RANGE).json()
    arms = {arm["arm"]: arm for arm in report["arms"]}
    assert list(arms) == [HOLDOUT, "A", "B"]
    holdout, a = arms[HOLDOUT], arms["A"]
    assert holdout == {
        "arm": HOLDOUT,
        "enrolled": 301,
        "sent": 0,
        "delivered": 0,
        "clicked": 0,
        "booked": 56,
        "visited": 30,
        "revenue": "1200.00",
        "booked_rate": round(56 / 301, 4),
        "visited_rate": round(30 / 301, 4),
    }
    assert a["booked_rate"] == round(300 / 1204, 4)
    assert a["booked_rate_diff"] == round(300 / 1204 - 56 / 301, 4)
    low, high = newcombe_diff_ci(300, 1204, 56, 301)
    assert a["booked_rate_diff_ci95"] == [round(low, 4), round(high, 4)]
    low, high = newcombe_diff_ci(200, 1204, 30, 301)
    assert a["visited_rate_diff_ci95"] == [round(low, 4), round(high, 4)]
    assert a["booked_sentence"] == (
        "Patients who got variant A booked 6.3 points more often than the control group "
        "(95% CI 1.0 to 11.0; 1,204 vs 301 patients)."
    )
    assert 0 < a["booked_min_detectable_diff"] < 0.1
    assert report["experiment_periods"][0]["period"] == 1
    assert report["experiment_periods"][0]["holdout_percent"] == 20


def test_the_arms_csv_carries_the_api_numbers(client, counted):
    clinic, campaign = counted
    signed_in(client, clinic.practice)
    api = client.get(reverse("api_campaign_report", args=[campaign.pk]), RANGE).json()
    response = client.get(
        reverse("reports:campaign_csv", args=[campaign.pk]), {**RANGE, "part": "arms"}
    )
    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["arm"] for row in rows] == [HOLDOUT, "A", "B"]
    for row, arm in zip(rows, api["arms"], strict=True):
        assert row["period"] == "1"
        for name in ("enrolled", "sent", "booked", "visited", "revenue"):
            assert row[name] == str(arm[name])
        assert row["booked_rate"] == str(arm["booked_rate"])
        if arm["arm"] != HOLDOUT:
            assert [
                float(row["booked_rate_diff_ci95_low"]),
                float(row["booked_rate_diff_ci95_high"]),
            ] == arm["booked_rate_diff_ci95"]
            assert row["visited_sentence"] == arm["visited_sentence"]


def test_the_report_tab_shows_the_arms_and_the_sentence(client, counted):
    clinic, campaign = counted
    signed_in(client, clinic.practice, Role.USER)
    page = client.get(reverse("reports:campaign", args=[campaign.pk]), RANGE).text
    assert 'id="experiment"' in page
    assert "Control group (held out)" in page
    assert "Variant B" in page
    assert (
        "Patients who got variant A booked 6.3 points more often than the control group "
        "(95% CI 1.0 to 11.0; 1,204 vs 301 patients)." in page
    )
    assert "+6.3 pts (1.0 to 11.0)" in page


def test_a_small_experiment_says_it_cannot_tell_yet_and_periods_show_apart(client):
    clinic = Clinic()
    campaign = welcome(clinic, holdout_percent=50)
    new_patients(clinic, ny(2026, 6, 15), n=10)
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    refresh(ny(2026, 6, 15, 10, 1))
    campaign = update(campaign, holdout_percent=30)
    new_patients(clinic, ny(2026, 6, 16), n=6)
    tick(now=ny(2026, 6, 16, 10, 0), send="inline")
    refresh(ny(2026, 6, 16, 10, 1))
    assert ExperimentPeriod.objects.filter(campaign=campaign).count() == 2
    signed_in(client, clinic.practice, Role.USER)
    report = client.get(reverse("api_campaign_report", args=[campaign.pk]), RANGE).json()
    periods = report["experiment_periods"]
    assert [p["period"] for p in periods] == [1, 2]
    assert [p["holdout_percent"] for p in periods] == [50, 30]
    for number, period in enumerate(periods, start=1):
        entered = Enrollment.objects.filter(experiment_period=number).count()
        assert sum(arm["enrolled"] for arm in period["arms"]) == entered
    # ``arms`` is the latest period's.
    assert report["arms"] == periods[-1]["arms"]
    treated = next(arm for arm in periods[0]["arms"] if arm["arm"] == "treatment")
    assert treated["booked_sentence"] == "Not enough patients yet to tell."
    page = client.get(reverse("reports:campaign", args=[campaign.pk]), RANGE).text
    assert "Period 1" in page
    assert "Period 2" in page
    assert "Not enough patients yet to tell." in page
