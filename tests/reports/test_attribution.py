"""Experiment attribution (DESIGN §5.9): per enrollment, booked, visited and revenue within
``attribution_days`` after entering, counted into the arms once per change as EMR data
arrives."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Sum

from campaigns.engine import tick
from campaigns.experiments.arms import HOLDOUT, TREATMENT
from campaigns.models import Enrollment
from reports.attribution import outcomes_refresh
from reports.models import ArmDayStat, EnrollmentOutcome
from reports.rollup import rollups_refresh
from tests.campaigns.builders import Clinic, ny
from tests.campaigns.test_experiments import new_patients, welcome

pytestmark = pytest.mark.django_db


def refresh(at: dt.datetime) -> None:
    """The beat task at ``at``: the report roll-up, then the outcomes."""
    with time_machine.travel(at, tick=False):
        rollups_refresh()
        outcomes_refresh(now=at)


def arm_totals() -> dict[str, dict]:
    rows = ArmDayStat.objects.values("arm").annotate(
        enrolled=Sum("enrolled"),
        sent=Sum("sent"),
        booked=Sum("booked"),
        visited=Sum("visited"),
        revenue=Sum("revenue"),
    )
    return {row.pop("arm"): row for row in rows}


def outcome(patient) -> tuple[bool, bool, Decimal]:
    row = EnrollmentOutcome.objects.get(patient_id=patient.pk)
    return row.booked, row.visited, row.revenue


@pytest.fixture
def clinic() -> Clinic:
    return Clinic()


@pytest.fixture
def entered(clinic):
    """A 50 % holdout with a 10-day window; 12 patients entered on 15 June 2026 at 10:00, each
    having paid $100 so far."""
    with time_machine.travel(ny(2026, 6, 1), tick=False):
        welcome(clinic, holdout_percent=50, attribution_days=10)
    with time_machine.travel(ny(2026, 6, 15, 9), tick=False):
        patients = new_patients(clinic, ny(2026, 6, 15), n=12)
        for patient in patients:
            clinic.patient(patient.external_id, paid_total="100.00")
    tick(now=ny(2026, 6, 15, 10, 0), send="inline")
    refresh(ny(2026, 6, 15, 10, 1))
    return patients


def test_each_enrollment_counts_once_in_its_arm_with_its_messages(clinic, entered):
    arms = dict(Enrollment.objects.values_list("patient_id", "arm"))
    totals = arm_totals()
    held = sum(1 for arm in arms.values() if arm == HOLDOUT)
    assert totals[HOLDOUT]["enrolled"] == held
    assert totals[TREATMENT]["enrolled"] == 12 - held
    assert totals[HOLDOUT]["sent"] == 0
    assert totals[TREATMENT]["sent"] == 12 - held  # step 1 went out to each
    refresh(ny(2026, 6, 15, 10, 2))
    refresh(ny(2026, 6, 15, 10, 3))
    assert arm_totals() == totals


def test_booked_and_visited_count_within_the_window_only(clinic, entered):
    first, second, third, fourth = entered[:4]
    with time_machine.travel(ny(2026, 6, 17, 12), tick=False):
        # Booked after entering: counts.
        clinic.appointment(first, ny(2026, 7, 1, 9), booked_at=ny(2026, 6, 17, 11))
        # Booked before entering (synced late): does not.
        clinic.appointment(second, ny(2026, 7, 2, 9), booked_at=ny(2026, 6, 14, 11))
    with time_machine.travel(ny(2026, 6, 20, 12), tick=False):
        clinic.visit(third, ny(2026, 6, 20, 9))
    with time_machine.travel(ny(2026, 6, 26, 12), tick=False):
        # The window (10 days) ended on 25 June at 10:00.
        clinic.appointment(fourth, ny(2026, 7, 3, 9), booked_at=ny(2026, 6, 26, 11))
    refresh(ny(2026, 6, 26, 13))
    assert outcome(first)[:2] == (True, False)
    assert outcome(second)[:2] == (False, False)
    assert outcome(third)[:2] == (False, True)
    assert outcome(fourth)[:2] == (False, False)
    totals = arm_totals()
    assert sum(t["booked"] for t in totals.values()) == 1
    assert sum(t["visited"] for t in totals.values()) == 1
    refresh(ny(2026, 6, 26, 14))
    assert arm_totals() == totals  # each change counted once


def test_revenue_follows_paid_total_changes_within_the_window_only(clinic, entered):
    patient = entered[0]
    arm = Enrollment.objects.get(patient=patient).arm
    with time_machine.travel(ny(2026, 6, 18, 12), tick=False):
        clinic.patient(patient.external_id, paid_total="250.00")
    refresh(ny(2026, 6, 18, 12, 1))
    assert outcome(patient)[2] == Decimal("150.00")
    assert arm_totals()[arm]["revenue"] == Decimal("150.00")
    # A refund within the window counts too (the growth is what it is now).
    with time_machine.travel(ny(2026, 6, 20, 12), tick=False):
        clinic.patient(patient.external_id, paid_total="220.00")
    refresh(ny(2026, 6, 20, 12, 1))
    assert outcome(patient)[2] == Decimal("120.00")
    # After the window's end (25 June, 10:00) a payment is not the campaign's.
    with time_machine.travel(ny(2026, 6, 28, 12), tick=False):
        clinic.patient(patient.external_id, paid_total="900.00")
    refresh(ny(2026, 6, 28, 12, 1))
    assert outcome(patient)[2] == Decimal("120.00")
    assert arm_totals()[arm]["revenue"] == Decimal("120.00")
