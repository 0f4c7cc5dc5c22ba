"""The shared input rules (``trackstat.validators``), one by one."""

from __future__ import annotations

import datetime as dt

import pytest

from trackstat.validators import (
    InvalidValue,
    check_text,
    json_too_deep,
    parse_date,
    parse_external_id,
    parse_instant,
    parse_int,
    storable_json,
    storable_text,
    text_problem,
)


@pytest.mark.parametrize(
    ("value", "problem"),
    [("plain", None), ("é💡", None), ("a\x00", "Null"), ("a\ud800", "lone surrogate")],
)
def test_text_problem(value, problem):
    found = text_problem(value)
    assert found is None if problem is None else problem in found


def test_check_text_never_repeats_the_value():
    with pytest.raises(InvalidValue) as error:
        check_text("Zebulon" * 20, max_length=100)
    assert "Zebulon" not in str(error.value)
    assert "100" in str(error.value)


def test_storable_text_drops_nul_and_replaces_lone_surrogates():
    assert storable_text("a\x00b\ud800c\udfff") == "ab\ufffdc\ufffd"
    assert storable_text("fine 💡") == "fine 💡"
    assert storable_json({"k\ud800": ["v\x00"]}) == {"k\ufffd": ["v"]}


@pytest.mark.parametrize(("value", "expected"), [(" P1 ", "P1"), (17, "17"), ("\tX-9\n", "X-9")])
def test_external_ids_are_trimmed(value, expected):
    assert parse_external_id(value) == expected


@pytest.mark.parametrize("value", [None, "", "   ", "x" * 65, True, 1.5, "a\x00"])
def test_bad_external_ids(value):
    with pytest.raises(InvalidValue):
        parse_external_id(value)


@pytest.mark.parametrize(("value", "expected"), [(15, 15), ("15", 15), (" -3 ", -3), ("+7", 7)])
def test_whole_numbers(value, expected):
    assert parse_int(value, minimum=-10, maximum=20) == expected


@pytest.mark.parametrize("value", [15.0, "15.0", True, "1e3", "\u0661\u0665", None, "0x10", 21])
def test_not_whole_numbers_or_out_of_range(value):
    with pytest.raises(InvalidValue):
        parse_int(value, minimum=-10, maximum=20)


def test_json_strings_are_not_integers_where_json_integers_are_meant():
    with pytest.raises(InvalidValue):
        parse_int("15", minimum=0, maximum=20, strings=False)


@pytest.mark.parametrize(
    "value", ["2020-W01-1", "2020-001", "20200101", "2020-1-1", "9999-12-31", "1899-12-31"]
)
def test_dates_outside_the_calendar_form_or_the_range(value):
    with pytest.raises(InvalidValue):
        parse_date(value)


def test_dates_in_range():
    assert parse_date("1900-01-01") == dt.date(1900, 1, 1)
    assert parse_date("2100-12-31") == dt.date(2100, 12, 31)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-03-09T09:30:00-05:00", dt.datetime(2026, 3, 9, 14, 30, tzinfo=dt.UTC)),
        ("2026-03-09 09:30Z", dt.datetime(2026, 3, 9, 9, 30, tzinfo=dt.UTC)),
        ("2026-03-09T09:30:00.123+14:00", dt.datetime(2026, 3, 8, 19, 30, 0, 123000, dt.UTC)),
        ("2026-03-09T09:30:00-1200", dt.datetime(2026, 3, 9, 21, 30, tzinfo=dt.UTC)),
    ],
)
def test_instants(value, expected):
    assert parse_instant(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-09T09:30:00",
        "2026-03-09",
        "9999-12-31T23:59:59-12:00",
        "2100-12-31T23:00:00-05:00",  # 2101 in UTC
        "2026-03-09T09:30:00+14:01",
        "2026-03-09T09:30:00+23:59",
        "2026-W11-1T09:30:00+00:00",
        dt.datetime(2026, 3, 9, 9, 30),  # naive
        dt.datetime(2026, 3, 9, tzinfo=dt.timezone(dt.timedelta(hours=15))),
    ],
)
def test_not_instants(value):
    with pytest.raises(InvalidValue):
        parse_instant(value)


def test_json_depth():
    nested: object = 1
    for _ in range(32):
        nested = [nested]
    assert not json_too_deep(nested)
    assert json_too_deep([nested])
    assert not json_too_deep({"a": [{"b": []}], "c": "text"})
