"""Validation of the campaign JSON (DESIGN §5): each bad trigger, filter set and schedule is
refused with an error naming the field; each good one is accepted and cleaned."""

from __future__ import annotations

import pytest
from rest_framework.exceptions import ValidationError

from campaigns.language.filters import validate_filters
from campaigns.language.spec import CampaignSerializer, validate_schedule
from campaigns.language.triggers import MISSED_MINUTES, validate_trigger
from campaigns.services import campaign_as_json, campaign_create
from tests.factories import PracticeFactory


def error_fields(validate, data) -> set[str]:
    """The fields a validation error names (it must name at least one)."""
    with pytest.raises(ValidationError) as caught:
        validate(data)
    detail = caught.value.detail
    assert isinstance(detail, dict), detail
    for messages in detail.values():
        assert messages
        assert all(str(message) for message in messages)
    return set(detail)


# --- triggers ----------------------------------------------------------------------------------

BAD_TRIGGERS = [
    ({}, "type"),
    ({"type": "birthday_party"}, "type"),
    ({"type": None}, "type"),
    # birthday
    ({"type": "birthday", "offset_days": 61}, "offset_days"),
    ({"type": "birthday", "offset_days": -61}, "offset_days"),
    ({"type": "birthday", "offset_days": "3"}, "offset_days"),
    ({"type": "birthday", "offset_days": 1.5}, "offset_days"),
    ({"type": "birthday", "offset_days": True}, "offset_days"),
    ({"type": "birthday", "days": 3}, "days"),
    # first_visit
    ({"type": "first_visit", "days_after": -1}, "days_after"),
    ({"type": "first_visit", "days_after": 3651}, "days_after"),
    ({"type": "first_visit", "offset_days": 1}, "offset_days"),
    # anniversary
    ({"type": "anniversary", "offset_days": 90}, "offset_days"),
    ({"type": "anniversary", "years": []}, "years"),
    ({"type": "anniversary", "years": 1}, "years"),
    ({"type": "anniversary", "years": [0]}, "years"),
    ({"type": "anniversary", "years": [1, 101]}, "years"),
    ({"type": "anniversary", "years": ["5"]}, "years"),
    ({"type": "anniversary", "days_after": 1}, "days_after"),
    # scheduled_appointment
    ({"type": "scheduled_appointment"}, "when"),
    ({"type": "scheduled_appointment", "when": "soon"}, "when"),
    ({"type": "scheduled_appointment", "when": "days_before"}, "days"),
    ({"type": "scheduled_appointment", "when": "days_before", "days": -1}, "days"),
    ({"type": "scheduled_appointment", "when": "days_before", "days": 366}, "days"),
    ({"type": "scheduled_appointment", "when": "booked", "days": 1}, "days"),
    ({"type": "scheduled_appointment", "when": "booked", "hours_after": 1}, "hours_after"),
    # missed_appointment
    ({"type": "missed_appointment"}, "minutes_after"),
    ({"type": "missed_appointment", "minutes_after": 10}, "minutes_after"),
    ({"type": "missed_appointment", "minutes_after": 0}, "minutes_after"),
    ({"type": "missed_appointment", "minutes_after": "15"}, "minutes_after"),
    ({"type": "missed_appointment", "minutes_after": 15, "days": 1}, "days"),
    # last_visit_checked_in
    ({"type": "last_visit_checked_in"}, "when"),
    ({"type": "last_visit_checked_in", "when": "last_week"}, "when"),
    ({"type": "last_visit_checked_in", "when": "today", "hours_after": 24}, "hours_after"),
    ({"type": "last_visit_checked_in", "when": "today", "hours_after": -1}, "hours_after"),
    ({"type": "last_visit_checked_in", "when": "today", "days": 3}, "days"),
    ({"type": "last_visit_checked_in", "when": "yesterday", "days": 1}, "days"),
    ({"type": "last_visit_checked_in", "when": "yesterday", "hours_after": 2}, "hours_after"),
    ({"type": "last_visit_checked_in", "when": "days_ago", "days": 180}, "match"),
    ({"type": "last_visit_checked_in", "when": "days_ago", "match": "exact"}, "days"),
    ({"type": "last_visit_checked_in", "when": "days_ago", "days": 0, "match": "exact"}, "days"),
    (
        {"type": "last_visit_checked_in", "when": "days_ago", "days": 3651, "match": "exact"},
        "days",
    ),
    ({"type": "last_visit_checked_in", "when": "days_ago", "days": 9, "match": "about"}, "match"),
    (
        {
            "type": "last_visit_checked_in",
            "when": "days_ago",
            "days": 9,
            "match": "exact",
            "hours_after": 2,
        },
        "hours_after",
    ),
    # last_visit_scheduled
    ({"type": "last_visit_scheduled"}, "when"),
    ({"type": "last_visit_scheduled", "when": "yesterday"}, "when"),
    ({"type": "last_visit_scheduled", "when": "days_ago", "days": 30}, "match"),
    ({"type": "last_visit_scheduled", "when": "days_ago", "match": "at_least"}, "days"),
    (
        {
            "type": "last_visit_scheduled",
            "when": "days_ago",
            "days": 30,
            "match": "at_least",
            "x": 1,
        },
        "x",
    ),
]


@pytest.mark.parametrize(("data", "field"), BAD_TRIGGERS)
def test_bad_triggers_are_refused_naming_the_field(data, field):
    assert field in error_fields(validate_trigger, data)


@pytest.mark.parametrize("data", [None, "birthday", ["birthday"], 3])
def test_a_trigger_must_be_an_object(data):
    with pytest.raises(ValidationError, match="Expected an object"):
        validate_trigger(data)


GOOD_TRIGGERS = [
    ({"type": "birthday"}, {"type": "birthday", "offset_days": 0}),
    ({"type": "birthday", "offset_days": -60}, {"type": "birthday", "offset_days": -60}),
    ({"type": "birthday", "offset_days": 60}, {"type": "birthday", "offset_days": 60}),
    ({"type": "first_visit"}, {"type": "first_visit", "days_after": 0}),
    ({"type": "first_visit", "days_after": 14}, {"type": "first_visit", "days_after": 14}),
    ({"type": "anniversary"}, {"type": "anniversary", "offset_days": 0}),
    (
        {"type": "anniversary", "offset_days": -7, "years": [5, 1, 1, 100]},
        {"type": "anniversary", "offset_days": -7, "years": [1, 5, 100]},
    ),
    (
        {"type": "scheduled_appointment", "when": "booked"},
        {"type": "scheduled_appointment", "when": "booked"},
    ),
    (
        {"type": "scheduled_appointment", "when": "days_before", "days": 0},
        {"type": "scheduled_appointment", "when": "days_before", "days": 0},
    ),
    (
        {"type": "scheduled_appointment", "when": "days_before", "days": 365},
        {"type": "scheduled_appointment", "when": "days_before", "days": 365},
    ),
    *[
        (
            {"type": "missed_appointment", "minutes_after": minutes},
            {"type": "missed_appointment", "minutes_after": minutes},
        )
        for minutes in MISSED_MINUTES
    ],
    (
        {"type": "last_visit_checked_in", "when": "today"},
        {"type": "last_visit_checked_in", "when": "today", "hours_after": 0},
    ),
    (
        {"type": "last_visit_checked_in", "when": "today", "hours_after": 23},
        {"type": "last_visit_checked_in", "when": "today", "hours_after": 23},
    ),
    (
        {"type": "last_visit_checked_in", "when": "yesterday"},
        {"type": "last_visit_checked_in", "when": "yesterday"},
    ),
    (
        {"type": "last_visit_checked_in", "when": "days_ago", "days": 180, "match": "at_least"},
        {"type": "last_visit_checked_in", "when": "days_ago", "days": 180, "match": "at_least"},
    ),
    (
        {"type": "last_visit_scheduled", "when": "days_ago", "days": 30, "match": "exact"},
        {"type": "last_visit_scheduled", "when": "days_ago", "days": 30, "match": "exact"},
    ),
]


@pytest.mark.parametrize(("data", "clean"), GOOD_TRIGGERS)
def test_good_triggers_are_accepted_with_defaults_filled_in(data, clean):
    assert validate_trigger(data) == clean


def test_the_minutes_of_a_missed_appointment_are_exactly_those_of_the_design():
    assert MISSED_MINUTES == [15, 20, 25, 30, 60, 120]


# --- filters -----------------------------------------------------------------------------------

BAD_FILTERS = [
    ({"colour": ["red"]}, "colour"),
    ({"tag": {"include": ["VIP"]}}, "tag"),
    ({"tags": ["VIP"]}, "tags"),
    ({"tags": {"include": "VIP"}}, "tags"),
    ({"tags": {"include": [""]}}, "tags"),
    ({"tags": {"include": [], "also": []}}, "tags"),
    ({"status": "dead"}, "status"),
    ({"status": True}, "status"),
    ({"has_future_appointment": "yes"}, "has_future_appointment"),
    ({"has_future_appointment": 1}, "has_future_appointment"),
    ({"providers": "Dr. Ames"}, "providers"),
    ({"providers": {"names": ["Dr. Ames"], "match": "nearest"}}, "providers"),
    ({"providers": {"names": ["Dr. Ames"], "role": "primary"}}, "providers"),
    ({"appointment_purposes": "Adjustment"}, "appointment_purposes"),
    ({"case_types": [1]}, "case_types"),
    ({"diagnoses": [" "]}, "diagnoses"),
    ({"attorneys": {"names": ["Smith"]}}, "attorneys"),
    ({"care_packages": "Gold"}, "care_packages"),
    ({"fee_schedules": [None]}, "fee_schedules"),
    ({"insurance_companies": "Aetna"}, "insurance_companies"),
    ({"referral_sources": 3}, "referral_sources"),
    ({"services": "98940"}, "services"),
    ({"paid_total": {}}, "paid_total"),
    ({"paid_total": 100}, "paid_total"),
    ({"paid_total": {"min": -1}}, "paid_total"),
    ({"paid_total": {"min": "100"}}, "paid_total"),
    ({"paid_total": {"min": 500, "max": 100}}, "paid_total"),
    ({"paid_total": {"avg": 100}}, "paid_total"),
    ({"age": {"min": 131}}, "age"),
    ({"age": {"min": 18.5}}, "age"),
    ({"age": {"min": 65, "max": 18}}, "age"),
    ({"age": {"max": -1}}, "age"),
    ({"visit_count": {"eq": 3, "min": 1}}, "visit_count"),
    ({"visit_count": {"eq": -1}}, "visit_count"),
    ({"visit_count": {"eq": True}}, "visit_count"),
    ({"visit_count": {"min": 5, "max": 2}}, "visit_count"),
    ({"sex": ["Q"]}, "sex"),
    ({"sex": []}, "sex"),
    ({"sex": "F"}, "sex"),
    ({"address": {"country": ["US"]}}, "address"),
    ({"address": {"cities": "Albany"}}, "address"),
    ({"address": ["NY"]}, "address"),
]


@pytest.mark.parametrize(("data", "field"), BAD_FILTERS)
def test_bad_filters_are_refused_naming_the_filter(data, field):
    assert error_fields(validate_filters, data) == {field}


def test_filters_must_be_an_object():
    with pytest.raises(ValidationError, match="Expected an object"):
        validate_filters(["status"])


GOOD_FILTERS = [
    (None, {}),
    ({}, {}),
    ({"status": None}, {}),
    ({"tags": {"include": [], "exclude": []}}, {}),
    (
        {"tags": {"include": [" VIP ", "VIP"]}},
        {"tags": {"include": ["VIP"], "exclude": []}},
    ),
    ({"status": "any"}, {"status": "any"}),
    ({"status": "inactive"}, {"status": "inactive"}),
    ({"has_future_appointment": False}, {"has_future_appointment": False}),
    (
        {"providers": ["Dr. Ames"]},
        {"providers": {"names": ["Dr. Ames"], "match": "appointment"}},
    ),
    (
        {"providers": {"names": ["Dr. Ames"], "match": "primary"}},
        {"providers": {"names": ["Dr. Ames"], "match": "primary"}},
    ),
    ({"providers": {"names": [], "match": "primary"}}, {}),
    ({"case_types": []}, {}),
    ({"services": ["98940", "98940", "97110"]}, {"services": ["98940", "97110"]}),
    ({"paid_total": {"min": 99.5}}, {"paid_total": {"min": 99.5}}),
    ({"paid_total": {"min": 0, "max": 0}}, {"paid_total": {"min": 0, "max": 0}}),
    ({"age": {"min": 18, "max": 18}}, {"age": {"min": 18, "max": 18}}),
    ({"age": {"max": 130}}, {"age": {"max": 130}}),
    ({"visit_count": {"eq": 0}}, {"visit_count": {"eq": 0}}),
    ({"visit_count": {"min": 2}}, {"visit_count": {"min": 2}}),
    ({"sex": ["M", "F", "F"]}, {"sex": ["F", "M"]}),
    (
        {"address": {"states": ["NY"], "cities": [], "postal_codes": ["10001"]}},
        {"address": {"states": ["NY"], "postal_codes": ["10001"]}},
    ),
    (
        # The example of DESIGN §5.
        {
            "tags": {"include": [], "exclude": ["not qualified", "moved"]},
            "status": "active",
            "has_future_appointment": False,
            "case_types": ["Personal Injury"],
        },
        {
            "tags": {"include": [], "exclude": ["not qualified", "moved"]},
            "status": "active",
            "has_future_appointment": False,
            "case_types": ["Personal Injury"],
        },
    ),
]


@pytest.mark.parametrize(("data", "clean"), GOOD_FILTERS)
def test_good_filters_are_accepted_and_cleaned(data, clean):
    assert validate_filters(data) == clean


# --- schedules ---------------------------------------------------------------------------------

BAD_SCHEDULES = [
    ({"time": "10:00"}, "frequency"),
    ({"frequency": "daily"}, "time"),
    ({"frequency": "hourly", "time": "10:00"}, "frequency"),
    ({"frequency": "weekly", "time": "10:00"}, "weekdays"),
    ({"frequency": "weekly", "weekdays": [], "time": "10:00"}, "weekdays"),
    ({"frequency": "weekly", "weekdays": ["monday"], "time": "10:00"}, "weekdays"),
    ({"frequency": "weekly", "weekdays": "mon", "time": "10:00"}, "weekdays"),
    ({"frequency": "monthly", "time": "10:00"}, "day"),
    ({"frequency": "monthly", "day": 0, "time": "10:00"}, "day"),
    ({"frequency": "monthly", "day": 32, "time": "10:00"}, "day"),
    ({"frequency": "monthly", "day": "1", "time": "10:00"}, "day"),
    ({"frequency": "monthly", "day": 1.0, "time": "10:00"}, "day"),
    ({"frequency": "daily", "time": "24:00"}, "time"),
    ({"frequency": "daily", "time": "9:00"}, "time"),
    ({"frequency": "daily", "time": "10:60"}, "time"),
    ({"frequency": "daily", "time": "10:00:00"}, "time"),
    ({"frequency": "daily", "time": "10am"}, "time"),
    ({"frequency": "daily", "time": ""}, "time"),
    ({"frequency": "daily", "time": 1000}, "time"),
    ({"frequency": "daily", "time": "10:00", "weekdays": ["mon"]}, "weekdays"),
    ({"frequency": "daily", "time": "10:00", "day": 1}, "day"),
    ({"frequency": "weekly", "weekdays": ["mon"], "time": "10:00", "day": 1}, "day"),
    ({"frequency": "monthly", "day": 1, "time": "10:00", "weekdays": ["mon"]}, "weekdays"),
]


@pytest.mark.parametrize(("data", "field"), BAD_SCHEDULES)
def test_bad_schedules_are_refused_naming_the_field(data, field):
    assert field in error_fields(validate_schedule, data)


@pytest.mark.parametrize("data", [None, "daily", ["daily"]])
def test_a_schedule_must_be_an_object(data):
    with pytest.raises(ValidationError, match="Expected an object"):
        validate_schedule(data)


GOOD_SCHEDULES = [
    ({"frequency": "daily", "time": "00:00"}, {"frequency": "daily", "time": "00:00"}),
    ({"frequency": "daily", "time": "23:59"}, {"frequency": "daily", "time": "23:59"}),
    (
        {"frequency": "weekly", "weekdays": ["sun", "mon", "sun"], "time": "09:30"},
        {"frequency": "weekly", "weekdays": ["mon", "sun"], "time": "09:30"},
    ),
    (
        {"frequency": "monthly", "day": 1, "time": "10:00"},
        {"frequency": "monthly", "day": 1, "time": "10:00"},
    ),
    (
        {"frequency": "monthly", "day": 31, "time": "02:30"},
        {"frequency": "monthly", "day": 31, "time": "02:30"},
    ),
]


@pytest.mark.parametrize(("data", "clean"), GOOD_SCHEDULES)
def test_good_schedules_are_accepted(data, clean):
    assert validate_schedule(data) == clean


# --- the whole campaign ------------------------------------------------------------------------

SMS = {"channel": "sms", "body": "Hi {{PatientFirstName}}, we miss you! {{OnlineSchedulingLink}}"}
REACTIVATION = {
    "name": "Reactivation 6 months",
    "kind": "drip",
    "enabled": True,
    "trigger": {
        "type": "last_visit_checked_in",
        "when": "days_ago",
        "days": 180,
        "match": "at_least",
    },
    "filters": {
        "tags": {"include": [], "exclude": ["not qualified", "moved"]},
        "status": "active",
        "has_future_appointment": False,
        "case_types": ["Personal Injury"],
    },
    "schedule": {"frequency": "daily", "time": "10:00"},
    "exclude_recent_days": 30,
    "messages": [
        {**SMS, "delay": {"value": 0, "unit": "days"}},
        {
            "channel": "email",
            "subject": "Time for a check-up?",
            "body": "<p>Book online</p>",
            "delay": {"value": 3, "unit": "days"},
        },
    ],
    "goal": {
        "type": "future_appointment",
        "filters": {"appointment_purposes": [], "providers": []},
    },
}


def serializer_errors(data: dict) -> dict:
    serializer = CampaignSerializer(data=data)
    assert not serializer.is_valid()
    return serializer.errors


@pytest.mark.django_db
def test_the_design_example_is_accepted_and_stored_as_validated():
    serializer = CampaignSerializer(data=REACTIVATION)
    assert serializer.is_valid(), serializer.errors
    practice = PracticeFactory()
    campaign = campaign_create(practice=practice, data=serializer.validated_data, actor=None)
    stored = campaign_as_json(campaign)
    for name in ("name", "kind", "enabled", "trigger", "filters", "schedule"):
        assert stored[name] == REACTIVATION[name], name
    assert stored["exclude_recent_days"] == 30
    assert [m["delay"] for m in stored["messages"]] == [
        m["delay"] for m in REACTIVATION["messages"]
    ]
    assert stored["goal"] == {"type": "future_appointment", "filters": {}}


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"trigger": {"type": "birthday", "offset_days": 99}}, {"trigger": {"offset_days"}}),
        ({"trigger": {"type": "nope"}}, {"trigger": {"type"}}),
        ({"filters": {"colour": ["red"]}}, {"filters": {"colour"}}),
        ({"filters": {"age": {"min": 200}}}, {"filters": {"age"}}),
        ({"schedule": {"frequency": "monthly", "day": 32, "time": "10:00"}}, {"schedule": {"day"}}),
        ({"schedule": {"frequency": "weekly", "time": "10:00"}}, {"schedule": {"weekdays"}}),
        ({"schedule": {"frequency": "daily", "time": "25:00"}}, {"schedule": {"time"}}),
    ],
)
def test_campaign_errors_are_nested_under_the_part_and_field(changes, errors):
    found = serializer_errors({**REACTIVATION, **changes})
    assert set(found) == set(errors)
    for part, fields in errors.items():
        assert set(found[part]) == fields


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"trigger": None}, "trigger"),
        ({"schedule": None}, "schedule"),  # a scheduled trigger needs a schedule
        ({"messages": []}, "messages"),
        ({"messages": [SMS]}, "goal"),  # a goal needs more than one message
        ({"send_at": "2026-06-15T10:00:00-04:00"}, "send_at"),
        ({"exclude_recent_days": -1}, "exclude_recent_days"),
        ({"name": ""}, "name"),
        ({"kind": "burst"}, "kind"),
    ],
)
def test_campaign_level_errors_name_the_field(changes, field):
    assert field in serializer_errors({**REACTIVATION, **changes})


def test_a_continuous_trigger_needs_no_schedule():
    data = {
        "name": "Missed appointment",
        "trigger": {"type": "missed_appointment", "minutes_after": 25},
        "messages": [SMS],
    }
    serializer = CampaignSerializer(data=data)
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data["trigger"] == data["trigger"]
    assert serializer.validated_data["filters"] == {}


def test_a_message_with_an_unknown_merge_field_is_refused_naming_it():
    errors = serializer_errors(
        {**REACTIVATION, "messages": [{"channel": "sms", "body": "Hi {{FirstName}}"}], "goal": None}
    )
    assert "{{FirstName}}" in str(errors["messages"][0]["body"])


def test_appointment_merge_fields_need_an_appointment_trigger():
    birthday = {
        "name": "Birthday",
        "trigger": {"type": "birthday"},
        "schedule": {"frequency": "daily", "time": "09:00"},
        "messages": [{"channel": "sms", "body": "See you on {{AppointmentDate}}"}],
    }
    assert "{{AppointmentDate}}" in str(serializer_errors(birthday)["messages"])
    reminder = {
        **birthday,
        "trigger": {"type": "scheduled_appointment", "when": "days_before", "days": 1},
    }
    assert CampaignSerializer(data=reminder).is_valid()
