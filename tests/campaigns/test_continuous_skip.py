"""A tick skips a continuous campaign only when its trigger has no occurrence that has not
entered yet (issue 8: a busy minute at thousands of practices). The skip must never hide
anyone: a new missed appointment, a patient a filter kept out until their tags changed, a
second campaign on the same appointments, and a visit checked in later all still enter.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from campaigns.engine.enroll import campaigns_run_due
from campaigns.models import Enrollment
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_engine import drip, sms

pytestmark = pytest.mark.django_db

MISSED = {"type": "missed_appointment", "minutes_after": 15}


@pytest.fixture
def clinic() -> Clinic:
    return Clinic()


def entered(campaign) -> list[str]:
    return sorted(
        Enrollment.objects.filter(campaign=campaign).values_list("patient__external_id", flat=True)
    )


def test_a_new_missed_appointment_enters_after_a_tick_with_nothing_new(clinic):
    campaign = drip(clinic, MISSED, enabled_at=ny(2026, 6, 1), messages=[sms("Missed you")])
    ann, bob = clinic.patient("ANN", phone="3125550101"), clinic.patient("BOB", phone="3125550102")
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    clinic.appointment(bob, ny(2026, 6, 15, 9, 30))
    assert campaigns_run_due(now=ny(2026, 6, 15, 9, 15)) == (1, 1)
    assert entered(campaign) == ["ANN"]
    # Nothing new at 09:20: on PostgreSQL the campaign's audience query is not even run.
    with CaptureQueriesContext(connection) as queries:
        _runs, count = campaigns_run_due(now=ny(2026, 6, 15, 9, 20))
    assert count == 0
    audience_ran = any("INSERT INTO" in q["sql"] for q in queries.captured_queries)
    assert audience_ran == (connection.vendor != "postgresql")
    assert campaigns_run_due(now=ny(2026, 6, 15, 9, 45))[1] == 1
    assert entered(campaign) == ["ANN", "BOB"]


def test_a_patient_a_filter_kept_out_enters_once_the_filter_lets_them_in(clinic):
    campaign = drip(
        clinic,
        MISSED,
        enabled_at=ny(2026, 6, 1),
        filters={"tags": {"exclude": ["do not text"]}},
        messages=[sms("Missed you")],
    )
    ann = clinic.patient("ANN", phone="3125550101", tags=["do not text"])
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    assert campaigns_run_due(now=ny(2026, 6, 15, 9, 15))[1] == 0
    assert campaigns_run_due(now=ny(2026, 6, 15, 9, 16))[1] == 0
    clinic.patient("ANN", phone="3125550101", tags=[])  # the EMR drops the tag
    assert campaigns_run_due(now=ny(2026, 6, 15, 9, 17))[1] == 1
    assert entered(campaign) == ["ANN"]


def test_each_campaign_is_judged_by_its_own_enrollments(clinic):
    first = drip(clinic, MISSED, enabled_at=ny(2026, 6, 1), name="First")
    ann = clinic.patient("ANN", phone="3125550101")
    clinic.appointment(ann, ny(2026, 6, 15, 9, 0))
    campaigns_run_due(now=ny(2026, 6, 15, 9, 15))
    second = drip(clinic, MISSED, enabled_at=ny(2026, 6, 15, 9, 16), name="Second")
    assert campaigns_run_due(now=ny(2026, 6, 15, 9, 17))[1] == 1
    assert (entered(first), entered(second)) == (["ANN"], ["ANN"])


def test_a_visit_checked_in_later_enters_the_check_in_campaign(clinic):
    campaign = drip(
        clinic,
        {"type": "last_visit_checked_in", "when": "today", "hours_after": 1},
        enabled_at=ny(2026, 6, 1),
        messages=[sms("How was your visit?")],
    )
    ann, bob = clinic.patient("ANN", phone="3125550101"), clinic.patient("BOB", phone="3125550102")
    clinic.appointment(
        ann, ny(2026, 6, 15, 9, 0), status="checked_in", checked_in_at=ny(2026, 6, 15, 9, 0)
    )
    later = clinic.appointment(bob, ny(2026, 6, 15, 10, 0))
    assert campaigns_run_due(now=ny(2026, 6, 15, 10, 30))[1] == 1
    assert campaigns_run_due(now=ny(2026, 6, 15, 10, 45))[1] == 0
    clinic.change(later, status="checked_in", checked_in_at=ny(2026, 6, 15, 10, 5))
    assert campaigns_run_due(now=ny(2026, 6, 15, 11, 0))[1] == 0  # not an hour yet
    assert campaigns_run_due(now=ny(2026, 6, 15, 11, 5))[1] == 1
    assert entered(campaign) == ["ANN", "BOB"]
