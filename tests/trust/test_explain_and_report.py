"""Explain names the trust rule that decides and its numbers; the Report tab's "Not sent, by
reason" counts capped and non-consented messages (DESIGN §5.8)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse

from campaigns.engine import tick
from patients.consent import patient_marketing_consent_set
from reports.rollup import rollups_refresh
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, sms
from tests.factories import MembershipFactory
from trackstat.models import Role
from trackstat.services import api_key_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinic() -> Clinic:
    clinic = Clinic()
    clinic.practice.messaging_policy = {
        "marketing_per_24h": 1,
        "sms_marketing_requires_opt_in": True,
    }
    clinic.practice.save()
    return clinic


def test_explain_shows_the_consent_that_decided_and_the_cap_numbers(clinic):
    first = drip(
        clinic,
        {"type": "birthday"},
        name="Birthday",
        enabled_at=ny(2026, 6, 1),
        messages=[sms("HB")],
    )
    second = drip(
        clinic,
        {"type": "anniversary"},
        name="Anniversary",
        enabled_at=ny(2026, 6, 1),
        messages=[sms("HA")],
    )
    ann = clinic.patient(
        "ANN",
        birth_date=dt.date(1990, 6, 15),
        first_visit_date=dt.date(2020, 6, 16),
        phone="3125550123",
        address={"state": "FL"},
    )
    bob = clinic.patient("BOB", birth_date=dt.date(1990, 6, 15), phone="3125550124")
    patient_marketing_consent_set(
        practice=clinic.practice,
        patient=ann,
        channel="sms",
        granted=True,
        source="staff",
        actor="front desk",
    )
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    key = api_key_create(practice=clinic.practice, name="t").secret
    api = Client(headers={"Authorization": f"Api-Key {key}"})

    at = ny(2026, 6, 15, 21, 30).isoformat()
    ann_explained = api.get(
        f"/api/v1/campaigns/{second.pk}/explain", {"patient": "ANN", "at": at}
    ).json()
    trust = ann_explained["trust"]
    assert trust["purpose"] == "marketing"
    assert trust["consent"][0]["allowed"] is True
    assert trust["consent"][0]["decided_by"].startswith("marketing consent given: staff at ")
    assert {c["cap"]: (c["counted"], c["limit"], c["passes"]) for c in trust["caps"]} == {
        "marketing_per_24h": (1, 1, False),
        "FL_marketing_sms_per_24h": (1, 3, True),
    }
    assert "frequency_cap" in trust["caps"][0]["detail"]
    assert (
        trust["state_rule"]
        == "FL: marketing texts 08:00-20:00, at most 3 marketing texts in 24 hours"
    )
    assert trust["goes_out_at"]["sms"] == ny(2026, 6, 16, 8, 0).isoformat()

    bob_explained = api.get(
        f"/api/v1/campaigns/{first.pk}/explain", {"patient": "BOB", "at": at}
    ).json()
    consent = bob_explained["trust"]["consent"][0]
    assert (consent["allowed"], consent["reason"]) == (False, "no_marketing_consent")
    assert "only with consent" in consent["decided_by"]

    # The Report tab counts the skip by its reason.
    staff = MembershipFactory(practice=clinic.practice, role=Role.USER_PLUS).user
    browser = Client()
    browser.force_login(staff)
    rollups_refresh()
    report = browser.get(
        reverse("reports:campaign", args=[first.pk]), {"from": "2026-06-01", "to": "2026-06-30"}
    )
    assert report.status_code == 200
    assert "no_marketing_consent" in report.text
    assert bob.messages.get().status_reason == "no_marketing_consent"


def test_report_counts_frequency_cap(clinic):
    clinic.practice.messaging_policy = {"marketing_per_24h": 1}
    clinic.practice.save()
    drip(clinic, {"type": "birthday"}, name="A", enabled_at=ny(2026, 6, 1), messages=[sms("A")])
    late = drip(
        clinic, {"type": "birthday"}, name="B", enabled_at=ny(2026, 6, 1), messages=[sms("B")]
    )
    clinic.patient(birth_date=dt.date(1990, 6, 15), phone="3125550123")
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    rollups_refresh()
    staff = MembershipFactory(practice=clinic.practice, role=Role.USER).user
    browser = Client()
    browser.force_login(staff)
    page = browser.get(
        reverse("reports:campaign", args=[late.pk]), {"from": "2026-06-01", "to": "2026-06-30"}
    ).text
    assert "Not sent, by reason" in page
    assert '<td>frequency_cap</td><td class="num">1</td>' in page
