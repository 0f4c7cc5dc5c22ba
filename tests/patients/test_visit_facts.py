"""The derived visit facts stay right however appointments arrive (DESIGN §4)."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

import pytest

from patients.models import Case, Patient
from patients.sync.appointments import appointments_upsert
from patients.sync.cases import cases_upsert
from patients.sync.patients import patients_upsert
from tests.factories import PracticeFactory
from trackstat.services import practice_settings_update

pytestmark = pytest.mark.django_db

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")


@pytest.fixture
def practice():
    practice = PracticeFactory(time_zone="America/Chicago")
    patients_upsert(
        practice=practice,
        records=[{"external_id": "P1", "_index": 0}, {"external_id": "P2", "_index": 1}],
    )
    cases_upsert(
        practice=practice,
        records=[
            {"external_id": "PI", "patient_external_id": "P1", "_index": 0},
            {"external_id": "WELL", "patient_external_id": "P1", "_index": 1},
        ],
    )
    return practice


def at(day: int, hour: int = 10, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, 0, tzinfo=CHICAGO)


def sync(practice, *appointments: dict) -> None:
    records = [{"patient_external_id": "P1", "_index": i, **a} for i, a in enumerate(appointments)]
    result = appointments_upsert(practice=practice, records=records)
    assert not result.errors, result.errors


def facts(model, external_id: str) -> tuple:
    row = model.objects.get(external_id=external_id)
    return (
        row.visit_count,
        row.first_visit_date,
        row.last_visit_checked_in,
        row.last_visit_scheduled,
    )


VISITS = [
    {"external_id": "A1", "start": at(2), "status": "completed", "case_external_id": "PI"},
    {"external_id": "A2", "start": at(5), "status": "checked_in", "case_external_id": "PI"},
    {"external_id": "A3", "start": at(9), "status": "no_show", "case_external_id": "WELL"},
    {"external_id": "A4", "start": at(12), "status": "cancelled", "case_external_id": "WELL"},
    {"external_id": "A5", "start": at(7), "status": "completed", "case_external_id": "WELL"},
]
EXPECTED_PATIENT = (3, dt.date(2026, 3, 2), dt.date(2026, 3, 7), dt.date(2026, 3, 9))
EXPECTED_PI = (2, dt.date(2026, 3, 2), dt.date(2026, 3, 5), dt.date(2026, 3, 5))
EXPECTED_WELL = (1, dt.date(2026, 3, 7), dt.date(2026, 3, 7), dt.date(2026, 3, 9))


@pytest.mark.parametrize("order", list(itertools.permutations(range(5)))[::17])
def test_facts_are_the_same_in_any_arrival_order(practice, order):
    for index in order:  # one request per appointment, in this order
        sync(practice, VISITS[index])
    assert facts(Patient, "P1") == EXPECTED_PATIENT
    assert facts(Case, "PI") == EXPECTED_PI
    assert facts(Case, "WELL") == EXPECTED_WELL


def test_facts_from_one_batch_match_one_by_one(practice):
    sync(practice, *VISITS)
    assert facts(Patient, "P1") == EXPECTED_PATIENT
    assert facts(Case, "WELL") == EXPECTED_WELL
    patient = Patient.objects.get(external_id="P1")
    assert (patient.first_visit_month, patient.first_visit_day) == (3, 2)


def test_cancelling_the_last_visit_moves_the_facts_back(practice):
    sync(practice, *VISITS)
    sync(practice, {"external_id": "A5", "status": "cancelled"})
    assert facts(Patient, "P1") == (
        2,
        dt.date(2026, 3, 2),
        dt.date(2026, 3, 5),
        dt.date(2026, 3, 9),
    )
    assert facts(Case, "WELL") == (0, None, None, dt.date(2026, 3, 9))


def test_a_rescheduled_appointment_is_not_the_last_scheduled(practice):
    sync(practice, {"external_id": "A1", "start": at(20), "status": "scheduled"})
    assert facts(Patient, "P1")[3] == dt.date(2026, 3, 20)
    sync(practice, {"external_id": "A1", "status": "rescheduled"})
    assert facts(Patient, "P1")[3] is None


def test_moving_an_appointment_updates_the_dates(practice):
    sync(practice, *VISITS)
    sync(practice, {"external_id": "A5", "start": at(1)})  # the EMR moved it earlier
    assert facts(Patient, "P1") == (
        3,
        dt.date(2026, 3, 1),
        dt.date(2026, 3, 5),
        dt.date(2026, 3, 9),
    )


def test_moving_an_appointment_to_another_case_refreshes_both(practice):
    sync(practice, *VISITS)
    sync(practice, {"external_id": "A5", "case_external_id": "PI"})
    assert facts(Case, "PI")[0] == 3
    assert facts(Case, "WELL") == (0, None, None, dt.date(2026, 3, 9))


def test_moving_an_appointment_to_another_patient_refreshes_both(practice):
    sync(practice, *VISITS)
    result = appointments_upsert(
        practice=practice,
        records=[
            {
                "external_id": "A5",
                "patient_external_id": "P2",
                "case_external_id": None,
                "_index": 0,
            }
        ],
    )
    assert not result.errors
    assert facts(Patient, "P1")[0] == 2
    assert facts(Patient, "P2") == (
        1,
        dt.date(2026, 3, 7),
        dt.date(2026, 3, 7),
        dt.date(2026, 3, 7),
    )


def test_local_date_is_the_practice_date(practice):
    # 23:30 in Chicago is already the next day in UTC: the visit counts on the local day.
    sync(
        practice,
        {
            "external_id": "A1",
            "start": at(14, hour=23) + dt.timedelta(minutes=30),
            "status": "completed",
        },
    )
    assert facts(Patient, "P1")[2] == dt.date(2026, 3, 14)
    # 04:00 UTC on the 16th is still the evening of the 15th in Chicago.
    sync(
        practice,
        {
            "external_id": "A2",
            "start": dt.datetime(2026, 3, 16, 4, 0, tzinfo=dt.UTC),
            "status": "completed",
        },
    )
    assert facts(Patient, "P1")[2] == dt.date(2026, 3, 15)


def test_emr_first_visit_date_wins_and_clearing_it_falls_back(practice):
    sync(practice, *VISITS)
    patients_upsert(
        practice=practice,
        records=[{"external_id": "P1", "first_visit_date": dt.date(2019, 6, 1), "_index": 0}],
    )
    patient = Patient.objects.get(external_id="P1")
    assert patient.first_visit_date == dt.date(2019, 6, 1)
    assert (patient.first_visit_month, patient.first_visit_day) == (6, 1)
    sync(practice, {"external_id": "A9", "start": at(25), "status": "completed"})
    assert Patient.objects.get(external_id="P1").first_visit_date == dt.date(2019, 6, 1)
    patients_upsert(
        practice=practice, records=[{"external_id": "P1", "first_visit_date": None, "_index": 0}]
    )
    assert Patient.objects.get(external_id="P1").first_visit_date == dt.date(2026, 3, 2)


def test_resending_appointments_reports_unchanged(practice):
    sync(practice, *VISITS)
    records = [{"patient_external_id": "P1", "_index": i, **a} for i, a in enumerate(VISITS)]
    result = appointments_upsert(practice=practice, records=records)
    assert (result.created, result.updated, result.unchanged) == (0, 0, 5)


def test_moving_a_case_to_another_patient_moves_its_visits(practice):
    sync(practice, *VISITS)
    result = cases_upsert(
        practice=practice, records=[{"external_id": "PI", "patient_external_id": "P2", "_index": 0}]
    )
    assert not result.errors
    assert facts(Patient, "P2") == (
        2,
        dt.date(2026, 3, 2),
        dt.date(2026, 3, 5),
        dt.date(2026, 3, 5),
    )
    assert facts(Patient, "P1")[0] == 1


def test_changing_the_practice_time_zone_moves_local_dates(practice):
    # 23:30 in Chicago on the 14th is 00:30 on the 15th in New York.
    sync(
        practice,
        {
            "external_id": "A1",
            "start": at(14, hour=23) + dt.timedelta(minutes=30),
            "status": "completed",
            "case_external_id": "PI",
        },
    )
    assert facts(Patient, "P1")[2] == dt.date(2026, 3, 14)
    practice_settings_update(practice=practice, actor=None, time_zone="America/New_York")
    assert facts(Patient, "P1")[2] == dt.date(2026, 3, 15)
    assert facts(Case, "PI")[2] == dt.date(2026, 3, 15)
    assert str(practice.appointments.get().local_date) == "2026-03-15"
