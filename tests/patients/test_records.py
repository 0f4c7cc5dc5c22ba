"""The record validation and the schema that documents it stay in step."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from patients.sync.records import (
    AppointmentRecordSerializer,
    CaseRecordSerializer,
    PatientRecordSerializer,
    validate_records,
)


@pytest.mark.parametrize(
    "serializer", [PatientRecordSerializer, CaseRecordSerializer, AppointmentRecordSerializer]
)
def test_documented_fields_are_the_validated_fields(serializer):
    assert set(serializer().fields) == set(serializer.record_spec)
    documented_required = {n for n, f in serializer().fields.items() if f.required}
    assert documented_required == {n for n, f in serializer.record_spec.items() if f.required}


def test_address_fields_match():
    documented = PatientRecordSerializer().fields["address"].fields
    validated = PatientRecordSerializer.record_spec["address"]
    address = {"line1": "1", "line2": "2", "city": "c", "state": "s", "postal_code": "p"}
    records, _ = validate_records(
        PatientRecordSerializer, [{"external_id": "x", "address": address}]
    )
    assert set(documented) == set(records[0]["address"]) == set(address)
    assert validated.required is False


def test_values_are_cleaned():
    records, errors = validate_records(
        PatientRecordSerializer,
        [
            {
                "external_id": " P1 ",
                "paid_total": "12.5",
                "sms_opt_out": "yes",
                "email_opt_out": 0,
                "birth_date": "1990-07-04",
                "tags": ["a", " a ", "", "b"],
                "sex": None,
            }
        ],
    )
    assert errors == []
    record = records[0]
    assert record["external_id"] == "P1"
    assert record["paid_total"] == Decimal("12.50")
    assert record["sms_opt_out"] is True
    assert record["email_opt_out"] is False
    assert record["birth_date"] == dt.date(1990, 7, 4)
    assert record["tags"] == ["a", "b"]
    assert record["sex"] == "U"


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({}, "external_id"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": None}, "external_id"),
        ({"external_id": "x" * 65}, "external_id"),
        ({"external_id": "P", "paid_total": "1.234"}, "paid_total"),
        ({"external_id": "P", "paid_total": "NaN"}, "paid_total"),
        ({"external_id": "P", "paid_total": True}, "paid_total"),
        ({"external_id": "P", "birth_date": "19900704"}, "birth_date"),
        ({"external_id": "P", "first_name": ["x"]}, "first_name"),
        ({"external_id": "P", "address": "1 Main St"}, "address"),
        ({"external_id": "P", "tags": ["x"] * 201}, "tags"),
    ],
)
def test_invalid_values_name_their_field(item, field):
    records, errors = validate_records(PatientRecordSerializer, [item])
    assert records == []
    assert list(errors[0]["errors"]) == [field]


def test_appointment_times_need_an_offset():
    _, errors = validate_records(
        AppointmentRecordSerializer, [{"external_id": "A", "start": "2026-03-09T09:00:00"}]
    )
    assert "offset" in errors[0]["errors"]["start"][0]
    records, _ = validate_records(
        AppointmentRecordSerializer, [{"external_id": "A", "start": "2026-03-09T14:00:00Z"}]
    )
    assert records[0]["start"] == dt.datetime(2026, 3, 9, 14, 0, tzinfo=dt.UTC)
