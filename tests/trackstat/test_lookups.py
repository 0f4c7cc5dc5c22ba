"""``field__any`` (``trackstat.lookups``): the rows of ``field__in``, with one array parameter
on PostgreSQL."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from patients.models import Appointment
from tests.factories import AppointmentFactory, PatientFactory, PracticeFactory

pytestmark = pytest.mark.django_db

DAY = dt.datetime(2026, 5, 12, 15, tzinfo=dt.UTC)


def _appointments():
    a, b = PracticeFactory(), PracticeFactory()
    return [
        AppointmentFactory(
            patient=PatientFactory(practice=practice), start=DAY + dt.timedelta(days=d)
        )
        for practice in (a, b)
        for d in (0, 1)
    ]


@pytest.mark.parametrize(
    ("field", "values"),
    [
        ("practice_id", lambda rows: [rows[0].practice_id]),
        ("practice_id", lambda rows: {rows[0].practice_id, rows[2].practice_id}),
        ("pk", lambda rows: (rows[1].pk, rows[1].pk, None, 0)),
        ("external_id", lambda rows: [rows[3].external_id, "nobody"]),
        ("local_date", lambda rows: {rows[0].local_date}),
        ("practice", lambda rows: [rows[2].practice]),
    ],
)
def test_any_is_the_same_rows_as_in(field, values):
    rows = _appointments()
    chosen = values(rows)
    kept = [value for value in chosen if value is not None]
    expected = set(Appointment.objects.filter(**{f"{field}__in": kept}))
    assert expected
    assert set(Appointment.objects.filter(**{f"{field}__any": chosen})) == expected


def test_a_value_longer_than_the_column_is_not_cut_to_match():
    rows = _appointments()
    too_long = rows[0].external_id + "x" * 64  # over max_length (64), with a real id before
    cut = too_long[:64]
    AppointmentFactory(patient=rows[0].patient, external_id=cut)
    assert not Appointment.objects.filter(external_id__in=[too_long]).exists()
    assert not Appointment.objects.filter(external_id__any=[too_long]).exists()


def test_any_of_nothing_is_no_row_and_no_query():
    _appointments()
    with CaptureQueriesContext(connection) as queries:
        assert list(Appointment.objects.filter(pk__any=[])) == []
        assert list(Appointment.objects.filter(pk__any=[None])) == []
    assert len(queries) == 0


def test_any_of_a_subquery_is_in():
    rows = _appointments()
    ids = Appointment.objects.filter(practice_id=rows[0].practice_id).values("pk")
    assert set(Appointment.objects.filter(pk__any=ids)) == set(rows[:2])


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the array form is PostgreSQL's")
def test_any_sends_one_array_parameter_whatever_the_number_of_values():
    rows = _appointments()
    values = [rows[0].pk, *range(10**9, 10**9 + 3000)]
    sql, params = Appointment.objects.filter(pk__any=values).query.sql_with_params()
    assert "= ANY(%s::bigint[])" in sql
    assert params == (values,)
    assert list(Appointment.objects.filter(pk__any=values)) == [rows[0]]
