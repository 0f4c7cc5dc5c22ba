"""EMR syncs at the same time (issue 13, items 2 and 3), on PostgreSQL with real threads.

Each thread is an EMR client with its own database connection, sending through the API. So
that the race happens every run (not only when the scheduler happens to interleave the
threads), each thread is held at the statement where the race is decided — the visit facts'
recomputation, the insert of a new external id — until every thread has either arrived there
or is waiting for a patient's row lock. Without per-patient serialization all of them arrive
and race; with it, the first holds the lock and the others queue behind it, which also
releases the hold, so the test never waits on a clock.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from functools import partial

import pytest
from django.db import connection
from django.test import Client

from patients.models import Appointment, Case, Patient
from tests.campaigns.builders import Clinic, ny
from trackstat.services import api_key_create

needs_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="concurrent syncs need PostgreSQL's row locks and READ COMMITTED snapshots; "
    "SQLite serializes writers, which proves nothing about concurrency",
)
pytestmark = [needs_postgres, pytest.mark.django_db(transaction=True)]

CLIENTS = 10
JSON = "application/json"


class Hold:
    """Holds each thread at the first statement ``at`` matches until every thread has
    arrived at one or (``locks_count``) is taking a patient's row lock."""

    def __init__(self, parties: int, at: Callable[[str], bool], *, locks_count: bool):
        self.parties = parties
        self.at = at
        self.locks_count = locks_count
        self.seen: set[int] = set()
        self.held: set[int] = set()
        self.condition = threading.Condition()

    def _count(self) -> None:
        with self.condition:
            self.seen.add(threading.get_ident())
            self.condition.notify_all()

    def __call__(self, execute, sql, params, many, context):
        me = threading.get_ident()
        if self.locks_count and _is_patient_lock(sql):
            self._count()
        elif self.at(sql) and me not in self.held:
            self.held.add(me)
            self._count()
            with self.condition:
                # A safety net against a hang, never reached when the code is right.
                released = self.condition.wait_for(
                    lambda: len(self.seen) >= self.parties, timeout=60
                )
            assert released, "the threads never all arrived"
        return execute(sql, params, many, context)


def _is_patient_lock(sql: str) -> bool:
    return (
        sql.startswith("SELECT")
        and 'FROM "patients_patient"' in sql
        and sql.rstrip().endswith("FOR UPDATE")
    )


def _visit_facts_refresh(sql: str) -> bool:
    return sql.startswith('UPDATE "patients_patient" SET "visit_count"')


def _insert_into(table: str) -> Callable[[str], bool]:
    return lambda sql: sql.startswith(f'INSERT INTO "{table}"')


def in_parallel(hold: Hold, *requests: Callable[[Client], object]) -> list:
    """Each request in its own thread, with its own connection and API client."""
    results: list = [None] * len(requests)
    errors: list[BaseException] = []

    def worker(index: int, request: Callable[[Client], object]) -> None:
        try:
            client = Client(headers={"Authorization": f"Api-Key {KEY['secret']}"})
            with connection.execute_wrapper(hold):
                results[index] = request(client)
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=item) for item in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (a deadlock?)"
    if errors:
        raise errors[0]
    return results


KEY: dict = {}


@pytest.fixture
def clinic() -> Clinic:
    clinic = Clinic()
    KEY["secret"] = api_key_create(practice=clinic.practice, name="EMR").secret
    return clinic


def post(path: str, body: dict, client: Client):
    return client.post(path, body, content_type=JSON)


def put(path: str, body: dict, client: Client):
    return client.put(path, body, content_type=JSON)


def visit(external_id: str, patient: str, day: int, **fields) -> dict:
    return {
        "external_id": external_id,
        "patient_external_id": patient,
        "start": ny(2026, 1, day, 9).isoformat(),
        "status": "checked_in",
        **fields,
    }


# --- item 2: the visit facts equal what the appointments say ------------------------------


def test_ten_bulk_posts_for_one_patient_count_every_visit(clinic):
    ann = clinic.patient("ANN")
    case = clinic.case(ann, external_id="CASE-1")
    bulks = [
        {
            "appointments": [
                visit(f"V{client}-{n}", "ANN", 1 + client * 3 + n, case_external_id="CASE-1")
                for n in range(3)
            ]
        }
        for client in range(CLIENTS)
    ]
    hold = Hold(CLIENTS, _visit_facts_refresh, locks_count=True)
    responses = in_parallel(hold, *[partial(post, "/api/v1/appointments:bulk", b) for b in bulks])

    assert [r.status_code for r in responses] == [200] * CLIENTS
    assert sum(r.json()["created"] for r in responses) == 30
    ann.refresh_from_db()
    assert ann.visit_count == 30
    assert ann.first_visit_date == dt.date(2026, 1, 1)
    assert (ann.first_visit_month, ann.first_visit_day) == (1, 1)
    assert ann.last_visit_checked_in == dt.date(2026, 1, 30)
    assert ann.last_visit_scheduled == dt.date(2026, 1, 30)
    case.refresh_from_db()
    assert case.visit_count == 30
    assert (case.first_visit_date, case.last_visit_checked_in) == (
        dt.date(2026, 1, 1),
        dt.date(2026, 1, 30),
    )


def test_ten_single_puts_for_one_patient_count_every_visit(clinic):
    bob = clinic.patient("BOB")
    hold = Hold(CLIENTS, _visit_facts_refresh, locks_count=True)
    responses = in_parallel(
        hold,
        *[
            partial(put, f"/api/v1/appointments/W{n}", visit(f"W{n}", "BOB", 10 + n))
            for n in range(CLIENTS)
        ],
    )
    assert [r.status_code for r in responses] == [201] * CLIENTS
    bob.refresh_from_db()
    assert bob.visit_count == CLIENTS
    assert bob.first_visit_date == dt.date(2026, 1, 10)
    assert bob.last_visit_checked_in == dt.date(2026, 1, 10 + CLIENTS - 1)


def test_bulk_posts_with_overlapping_patients_in_any_order_neither_deadlock_nor_miscount(
    clinic,
):
    for name in ("P1", "P2", "P3"):
        clinic.patient(name)
    orders = [["P1", "P2", "P3"], ["P3", "P2", "P1"], ["P2", "P3", "P1"]]
    bulks = [
        {
            "appointments": [
                visit(f"X{client}-{patient}", patient, 1 + client)
                for patient in orders[client % len(orders)]
            ]
        }
        for client in range(CLIENTS)
    ]
    hold = Hold(CLIENTS, _visit_facts_refresh, locks_count=True)
    responses = in_parallel(hold, *[partial(post, "/api/v1/appointments:bulk", b) for b in bulks])

    assert [r.status_code for r in responses] == [200] * CLIENTS
    assert all(r.json()["errors"] == [] for r in responses)
    for patient in Patient.objects.filter(external_id__in=["P1", "P2", "P3"]):
        assert patient.visit_count == CLIENTS
        assert patient.first_visit_date == dt.date(2026, 1, 1)
        assert patient.last_visit_checked_in == dt.date(2026, 1, CLIENTS)


# --- item 3: one new external id from several clients at once ---------------------------


@pytest.mark.parametrize("kind", ["patient", "case", "appointment"])
def test_ten_puts_of_one_new_external_id_make_one_row_and_no_error(clinic, kind):
    clinic.patient("OWNER")
    path, body, model, table = {
        "patient": ("/api/v1/patients/NEW-1", {"first_name": "Ann"}, Patient, "patients_patient"),
        "case": (
            "/api/v1/cases/NEW-1",
            {"patient_external_id": "OWNER", "status": "open"},
            Case,
            "patients_case",
        ),
        "appointment": (
            "/api/v1/appointments/NEW-1",
            visit("NEW-1", "OWNER", 5),
            Appointment,
            "patients_appointment",
        ),
    }[kind]
    # A new patient has no row to lock: the inserts race, and all but one lose.
    hold = Hold(CLIENTS, _insert_into(table), locks_count=kind != "patient")
    responses = in_parallel(hold, *[partial(put, path, body)] * CLIENTS)

    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * (CLIENTS - 1) + [201], [r.content[:200] for r in responses]
    assert model.objects.filter(external_id="NEW-1").count() == 1
    if kind == "appointment":
        assert Patient.objects.get(external_id="OWNER").visit_count == 1


def test_ten_bulk_posts_creating_the_same_new_patients_all_succeed(clinic):
    ids = [f"N{n}" for n in range(5)]
    bulks = [
        {"patients": [{"external_id": i, "last_name": f"From {client}"} for i in ids[::step]]}
        for client, step in zip(range(CLIENTS), [1, -1] * CLIENTS, strict=False)
    ]
    hold = Hold(CLIENTS, _insert_into("patients_patient"), locks_count=False)
    responses = in_parallel(hold, *[partial(post, "/api/v1/patients:bulk", b) for b in bulks])

    assert [r.status_code for r in responses] == [200] * CLIENTS
    assert all(r.json()["errors"] == [] for r in responses)
    assert sum(r.json()["created"] for r in responses) == len(ids)
    assert (
        sorted(Patient.objects.filter(external_id__in=ids).values_list("external_id", flat=True))
        == ids
    )
