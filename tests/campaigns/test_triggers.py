"""Every trigger of DESIGN §5.1 on its boundaries, in a practice in America/New_York.

Each test builds patients through the sync services and asks ``trigger_audience`` which of them
match at an explicit instant, and with which occurrence key. Days before, of and after each
boundary; local midnights; the DST change days of 2026 (8 March, 1 November).
"""

from __future__ import annotations

import datetime as dt

import pytest

from campaigns.audience.triggers import RunContext, trigger_audience
from patients.models import Appointment
from tests.campaigns.builders import Clinic, ny

pytestmark = pytest.mark.django_db

# A Monday in June (EDT, UTC-4): 10:00 local is 14:00 UTC.
AT = ny(2026, 6, 15, 10)
DAY = dt.timedelta(days=1)


@pytest.fixture
def clinic():
    return Clinic()


def days_ago(days: int, hour: int = 10, minute: int = 0) -> dt.datetime:
    """The wall time ``hour:minute`` on the local date ``days`` before AT's."""
    day = AT.date() - dt.timedelta(days=days)
    return ny(day.year, day.month, day.day, hour, minute)


def key(appointment) -> str:
    return f"appointment:{appointment.pk}"


def reminder_key(appointment) -> str:
    """A reminder's occurrence: the appointment at its start (in UTC)."""
    return f"appointment:{appointment.pk}@{appointment.start.astimezone(dt.UTC):%Y-%m-%dT%H:%M:%SZ}"


# --- birthday ----------------------------------------------------------------------------------

BIRTHDAY = {"type": "birthday", "offset_days": 0}


@pytest.mark.parametrize(
    "at",
    [ny(2026, 6, 15, 0, 0), AT, ny(2026, 6, 15, 23, 59)],
    ids=["local-midnight", "morning", "last-minute"],
)
def test_birthday_matches_on_the_local_birthday_only(clinic, at):
    clinic.patient("BEFORE", birth_date=dt.date(1980, 6, 14))
    clinic.patient("ON_THE_DAY", birth_date=dt.date(1980, 6, 15))
    clinic.patient("AFTER", birth_date=dt.date(1980, 6, 16))
    clinic.patient("OTHER_MONTH", birth_date=dt.date(1980, 7, 15))
    clinic.patient("NO_BIRTH_DATE")
    assert clinic.matched(BIRTHDAY, at) == {"ON_THE_DAY": "birthday:2026"}


def test_birthday_matches_by_the_practice_date_not_the_utc_date(clinic):
    clinic.patient("JUNE_15", birth_date=dt.date(1980, 6, 15))
    clinic.patient("JUNE_16", birth_date=dt.date(1980, 6, 16))
    # 23:30 on 15 June in New York is already 16 June in UTC.
    assert clinic.matched(BIRTHDAY, ny(2026, 6, 15, 23, 30)) == {"JUNE_15": "birthday:2026"}
    # 00:30 on 16 June in New York: the new local day.
    assert clinic.matched(BIRTHDAY, ny(2026, 6, 16, 0, 30)) == {"JUNE_16": "birthday:2026"}


def test_birthday_occurrence_key_is_the_year_so_each_year_is_a_new_occurrence(clinic):
    clinic.patient("JUNE_15", birth_date=dt.date(1980, 6, 15))
    assert clinic.matched(BIRTHDAY, AT) == {"JUNE_15": "birthday:2026"}
    assert clinic.matched(BIRTHDAY, ny(2027, 6, 15, 10)) == {"JUNE_15": "birthday:2027"}


def test_birthday_with_a_negative_offset_greets_that_many_days_before(clinic):
    # DESIGN §5.1: offset_days negative = before the birthday (the message goes out on the
    # birthday plus the offset).
    trigger = {"type": "birthday", "offset_days": -3}
    for external_id, day in [("JUNE_12", 12), ("JUNE_17", 17), ("JUNE_18", 18), ("JUNE_19", 19)]:
        clinic.patient(external_id, birth_date=dt.date(1975, 6, day))
    assert clinic.matched(trigger, AT) == {"JUNE_18": "birthday:2026"}
    assert clinic.matched(trigger, AT - DAY) == {"JUNE_17": "birthday:2026"}
    assert clinic.matched(trigger, AT + DAY) == {"JUNE_19": "birthday:2026"}


def test_birthday_with_a_positive_offset_greets_that_many_days_after(clinic):
    clinic.patient("JUNE_12", birth_date=dt.date(1975, 6, 12))
    assert clinic.matched({"type": "birthday", "offset_days": 3}, AT) == {
        "JUNE_12": "birthday:2026"
    }


def test_birthday_offset_keys_on_the_year_of_the_birthday(clinic):
    clinic.patient("JAN_2", birth_date=dt.date(1990, 1, 2))
    # Three days before 2 January is 30 December of the year before: the next year's birthday.
    trigger = {"type": "birthday", "offset_days": -3}
    assert clinic.matched(trigger, ny(2026, 12, 30, 10)) == {"JAN_2": "birthday:2027"}
    assert clinic.matched(trigger, ny(2026, 12, 29, 10)) == {}
    assert clinic.matched(trigger, ny(2026, 12, 31, 10)) == {}


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        # 2026 is a common year: 29 February birthdays are greeted on 28 February.
        (ny(2026, 2, 27, 10), {"FEB_27"}),
        (ny(2026, 2, 28, 10), {"FEB_28", "FEB_29"}),
        (ny(2026, 3, 1, 10), {"MAR_1"}),
        # 2028 is a leap year: 29 February birthdays on 29 February, not on the 28th.
        (ny(2028, 2, 28, 10), {"FEB_28"}),
        (ny(2028, 2, 29, 10), {"FEB_29"}),
        (ny(2028, 3, 1, 10), {"MAR_1"}),
    ],
)
def test_birthday_on_29_february(clinic, at, expected):
    clinic.patient("FEB_27", birth_date=dt.date(1991, 2, 27))
    clinic.patient("FEB_28", birth_date=dt.date(1991, 2, 28))
    clinic.patient("FEB_29", birth_date=dt.date(1992, 2, 29))
    clinic.patient("MAR_1", birth_date=dt.date(1991, 3, 1))
    matched = clinic.matched(BIRTHDAY, at)
    assert set(matched) == expected
    assert set(matched.values()) == {f"birthday:{at.year}"}


def test_birthday_offset_lands_on_28_february_of_a_common_year(clinic):
    clinic.patient("FEB_29", birth_date=dt.date(1992, 2, 29))
    assert set(clinic.matched({"type": "birthday", "offset_days": -1}, ny(2026, 2, 27))) == {
        "FEB_29"
    }
    assert set(clinic.matched({"type": "birthday", "offset_days": 1}, ny(2026, 3, 1))) == {"FEB_29"}
    assert clinic.matched({"type": "birthday", "offset_days": -1}, ny(2028, 2, 27)) == {}


# --- first_visit -------------------------------------------------------------------------------


def test_first_visit_days_after_0_is_the_day_of_the_first_visit(clinic):
    trigger = {"type": "first_visit", "days_after": 0}
    new = clinic.patient("NEW")
    clinic.visit(new, ny(2026, 6, 15, 9))
    scheduled_only = clinic.patient("SCHEDULED_ONLY")  # booked, never visited yet
    clinic.appointment(scheduled_only, ny(2026, 6, 15, 9))
    returning = clinic.patient("RETURNING")
    clinic.visit(returning, days_ago(40))
    clinic.visit(returning, ny(2026, 6, 15, 9))
    assert clinic.matched(trigger, AT - DAY) == {}
    assert clinic.matched(trigger, AT) == {"NEW": "first_visit"}
    assert clinic.matched(trigger, ny(2026, 6, 15, 23, 59)) == {"NEW": "first_visit"}
    assert clinic.matched(trigger, AT + DAY) == {}


def test_first_visit_days_after_n(clinic):
    trigger = {"type": "first_visit", "days_after": 7}
    patient = clinic.patient("WEEK_AGO")
    clinic.visit(patient, days_ago(7, hour=23, minute=45))  # late evening: still that local day
    clinic.visit(patient, days_ago(2))  # later visits do not move the first one
    clinic.patient("EMR_DATE", first_visit_date=AT.date() - dt.timedelta(days=7))
    clinic.visit(clinic.patient("EIGHT_DAYS"), days_ago(8))
    clinic.visit(clinic.patient("SIX_DAYS"), days_ago(6))
    matched = {"WEEK_AGO": "first_visit", "EMR_DATE": "first_visit"}
    assert clinic.matched(trigger, AT) == matched
    assert set(clinic.matched(trigger, AT - DAY)) == {"EIGHT_DAYS"}
    assert set(clinic.matched(trigger, AT + DAY)) == {"SIX_DAYS"}


# --- anniversary -------------------------------------------------------------------------------


def test_anniversary_matches_the_first_visit_day_from_the_second_year(clinic):
    trigger = {"type": "anniversary", "offset_days": 0}
    clinic.visit(clinic.patient("ONE_YEAR"), ny(2025, 6, 15, 9))
    clinic.visit(clinic.patient("DAY_BEFORE"), ny(2025, 6, 14, 9))
    clinic.visit(clinic.patient("DAY_AFTER"), ny(2025, 6, 16, 9))
    clinic.visit(clinic.patient("FIRST_YEAR"), ny(2026, 6, 15, 8))  # first visit today
    clinic.visit(clinic.patient("FIVE_YEARS"), ny(2021, 6, 15, 9))
    assert clinic.matched(trigger, AT) == {
        "ONE_YEAR": "anniversary:2026",
        "FIVE_YEARS": "anniversary:2026",
    }
    assert set(clinic.matched(trigger, AT - DAY)) == {"DAY_BEFORE"}
    assert set(clinic.matched(trigger, AT + DAY)) == {"DAY_AFTER"}
    assert clinic.matched(trigger, ny(2027, 6, 15, 10)) == {
        "ONE_YEAR": "anniversary:2027",
        "FIVE_YEARS": "anniversary:2027",
        "FIRST_YEAR": "anniversary:2027",
    }


def test_anniversary_first_visit_at_the_end_of_december(clinic):
    trigger = {"type": "anniversary", "offset_days": 0}
    clinic.visit(clinic.patient("NEW_YEARS_EVE"), ny(2025, 12, 31, 16))
    assert clinic.matched(trigger, ny(2025, 12, 31, 20)) == {}
    assert clinic.matched(trigger, ny(2026, 12, 31, 10)) == {"NEW_YEARS_EVE": "anniversary:2026"}


def test_anniversary_with_an_offset(clinic):
    clinic.visit(clinic.patient("JUNE_22"), ny(2024, 6, 22, 9))
    clinic.visit(clinic.patient("JUNE_8"), ny(2024, 6, 8, 9))
    before = {"type": "anniversary", "offset_days": -7}  # a week before the anniversary
    after = {"type": "anniversary", "offset_days": 7}
    assert clinic.matched(before, AT) == {"JUNE_22": "anniversary:2026"}
    assert clinic.matched(after, AT) == {"JUNE_8": "anniversary:2026"}
    assert clinic.matched(before, AT + DAY) == {}


def test_anniversary_years_list(clinic):
    for years in (1, 2, 3, 5):
        clinic.visit(clinic.patient(f"YEARS_{years}"), ny(2026 - years, 6, 15, 9))
    only_first = {"type": "anniversary", "offset_days": 0, "years": [1]}
    milestones = {"type": "anniversary", "offset_days": 0, "years": [2, 5]}
    assert set(clinic.matched(only_first, AT)) == {"YEARS_1"}
    assert set(clinic.matched(milestones, AT)) == {"YEARS_2", "YEARS_5"}
    assert clinic.matched(milestones, AT - DAY) == {}


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (ny(2025, 2, 28, 10), {"LEAP_DAY": "anniversary:2025"}),  # common year: on the 28th
        (ny(2025, 3, 1, 10), {}),
        (ny(2028, 2, 28, 10), {}),  # leap year: on the 29th, not the 28th
        (ny(2028, 2, 29, 10), {"LEAP_DAY": "anniversary:2028"}),
    ],
)
def test_anniversary_of_a_first_visit_on_29_february(clinic, at, expected):
    clinic.visit(clinic.patient("LEAP_DAY"), ny(2024, 2, 29, 9))
    trigger = {"type": "anniversary", "offset_days": 0}
    assert clinic.matched(trigger, at) == expected
    years = at.year - 2024
    assert clinic.matched({**trigger, "years": [years]}, at) == expected
    assert clinic.matched({**trigger, "years": [years + 1]}, at) == {}


# --- scheduled_appointment ---------------------------------------------------------------------

BOOKED = {"type": "scheduled_appointment", "when": "booked"}


def test_booked_today_and_still_upcoming(clinic):
    at = ny(2026, 6, 15, 23, 59)
    next_week = ny(2026, 6, 22, 9)
    booked = clinic.appointment(clinic.patient("BOOKED"), next_week, booked_at=ny(2026, 6, 15, 8))
    after_midnight = clinic.appointment(
        clinic.patient("JUST_AFTER_MIDNIGHT"), next_week, booked_at=ny(2026, 6, 15, 0, 0)
    )
    # 23:58 local is already 16 June in UTC: still booked today.
    late = clinic.appointment(
        clinic.patient("LATE_EVENING"), next_week, booked_at=ny(2026, 6, 15, 23, 58)
    )
    confirmed = clinic.appointment(
        clinic.patient("CONFIRMED"), next_week, "confirmed", booked_at=ny(2026, 6, 15, 9)
    )
    clinic.appointment(
        clinic.patient("JUST_BEFORE_MIDNIGHT"), next_week, booked_at=ny(2026, 6, 14, 23, 59)
    )
    clinic.appointment(
        clinic.patient("CANCELLED"), next_week, "cancelled", booked_at=ny(2026, 6, 15, 8)
    )
    clinic.appointment(
        clinic.patient("RESCHEDULED"), next_week, "rescheduled", booked_at=ny(2026, 6, 15, 8)
    )
    # Booked this morning for this afternoon: by 23:59 it is no longer upcoming.
    clinic.appointment(
        clinic.patient("ALREADY_PAST"), ny(2026, 6, 15, 14), booked_at=ny(2026, 6, 15, 8)
    )
    assert clinic.matched(BOOKED, at) == {
        "BOOKED": reminder_key(booked),
        "JUST_AFTER_MIDNIGHT": reminder_key(after_midnight),
        "LATE_EVENING": reminder_key(late),
        "CONFIRMED": reminder_key(confirmed),
    }
    assert set(clinic.matched(BOOKED, ny(2026, 6, 14, 23, 59))) == {"JUST_BEFORE_MIDNIGHT"}
    assert clinic.matched(BOOKED, ny(2026, 6, 16, 0, 0)) == {}


def test_booked_stops_matching_once_cancelled(clinic):
    patient = clinic.patient("BOOKED")
    appointment = clinic.appointment(patient, ny(2026, 6, 22, 9), booked_at=ny(2026, 6, 15, 8))
    assert clinic.matched(BOOKED, AT) == {"BOOKED": reminder_key(appointment)}
    clinic.change(appointment, status="cancelled")
    assert clinic.matched(BOOKED, AT) == {}


def test_booked_two_appointments_today_enter_once_keyed_on_the_first(clinic):
    patient = clinic.patient("TWO")
    later = clinic.appointment(patient, ny(2026, 6, 29, 9), booked_at=ny(2026, 6, 15, 8))
    sooner = clinic.appointment(patient, ny(2026, 6, 22, 9), booked_at=ny(2026, 6, 15, 9))
    assert later.pk < sooner.pk
    assert clinic.matched(BOOKED, AT) == {"TWO": reminder_key(sooner)}


def test_days_before_matches_the_local_date_today_plus_n(clinic):
    reminder = {"type": "scheduled_appointment", "when": "days_before", "days": 1}
    tomorrow = clinic.appointment(clinic.patient("TOMORROW"), ny(2026, 6, 16, 9))
    early = clinic.appointment(clinic.patient("TOMORROW_EARLY"), ny(2026, 6, 16, 0, 15))
    # 23:30 on 16 June in New York is 17 June in UTC: still tomorrow, locally.
    late = clinic.appointment(clinic.patient("TOMORROW_LATE"), ny(2026, 6, 16, 23, 30))
    confirmed = clinic.appointment(clinic.patient("CONFIRMED"), ny(2026, 6, 16, 11), "confirmed")
    clinic.appointment(clinic.patient("TODAY"), ny(2026, 6, 15, 15))
    clinic.appointment(clinic.patient("IN_TWO_DAYS"), ny(2026, 6, 17, 9))
    clinic.appointment(clinic.patient("CANCELLED"), ny(2026, 6, 16, 9), "cancelled")
    clinic.appointment(clinic.patient("RESCHEDULED"), ny(2026, 6, 16, 9), "rescheduled")
    assert clinic.matched(reminder, AT) == {
        "TOMORROW": reminder_key(tomorrow),
        "TOMORROW_EARLY": reminder_key(early),
        "TOMORROW_LATE": reminder_key(late),
        "CONFIRMED": reminder_key(confirmed),
    }
    assert set(clinic.matched(reminder, AT - DAY)) == {"TODAY"}
    assert set(clinic.matched(reminder, AT + DAY)) == {"IN_TWO_DAYS"}


def test_days_before_0_is_later_today_only(clinic):
    same_day = {"type": "scheduled_appointment", "when": "days_before", "days": 0}
    afternoon = clinic.appointment(clinic.patient("AFTERNOON"), ny(2026, 6, 15, 15))
    clinic.appointment(clinic.patient("THIS_MORNING"), ny(2026, 6, 15, 9))  # already started
    clinic.appointment(clinic.patient("TOMORROW"), ny(2026, 6, 16, 9))
    assert clinic.matched(same_day, AT) == {"AFTERNOON": reminder_key(afternoon)}


def test_days_before_follows_a_moved_appointment(clinic):
    reminder = {"type": "scheduled_appointment", "when": "days_before", "days": 2}
    appointment = clinic.appointment(clinic.patient("MOVED"), ny(2026, 6, 18, 9))
    assert clinic.matched(reminder, AT) == {}
    clinic.change(appointment, start=ny(2026, 6, 17, 16))
    assert clinic.matched(reminder, AT) == {"MOVED": reminder_key(appointment)}
    clinic.change(appointment, start=ny(2026, 6, 19, 9))
    assert clinic.matched(reminder, AT) == {}
    assert clinic.matched(reminder, ny(2026, 6, 17, 10)) == {"MOVED": reminder_key(appointment)}
    clinic.change(appointment, status="cancelled")
    assert clinic.matched(reminder, ny(2026, 6, 17, 10)) == {}


def test_days_before_two_appointments_that_day_enter_once(clinic):
    reminder = {"type": "scheduled_appointment", "when": "days_before", "days": 1}
    patient = clinic.patient("TWO")
    afternoon = clinic.appointment(patient, ny(2026, 6, 16, 15))
    morning = clinic.appointment(patient, ny(2026, 6, 16, 9))
    assert afternoon.pk < morning.pk
    assert clinic.matched(reminder, AT) == {"TWO": reminder_key(morning)}


# --- last_visit_checked_in: today + hours_after -----------------------------------------------


def test_today_hours_after_counts_from_checked_in_at(clinic):
    trigger = {"type": "last_visit_checked_in", "when": "today", "hours_after": 2}
    # Booked for 9:00, checked in at 9:40: two hours after the check-in, not the start.
    visit = clinic.visit(
        clinic.patient("VISIT"),
        ny(2026, 6, 15, 9),
        status="checked_in",
        checked_in_at=ny(2026, 6, 15, 9, 40),
    )
    assert clinic.matched(trigger, ny(2026, 6, 15, 11, 0)) == {}
    assert clinic.matched(trigger, ny(2026, 6, 15, 11, 39)) == {}
    assert clinic.matched(trigger, ny(2026, 6, 15, 11, 40)) == {"VISIT": key(visit)}
    assert clinic.matched(trigger, ny(2026, 6, 15, 23, 59)) == {"VISIT": key(visit)}
    assert clinic.matched(trigger, ny(2026, 6, 16, 0, 0)) == {}  # events of today only


def test_today_hours_after_counts_from_start_without_checked_in_at(clinic):
    trigger = {"type": "last_visit_checked_in", "when": "today", "hours_after": 3}
    visit = clinic.visit(clinic.patient("NO_CHECK_IN_TIME"), ny(2026, 6, 15, 9, 15))
    assert visit.checked_in_at is None
    assert clinic.matched(trigger, ny(2026, 6, 15, 12, 14)) == {}
    assert clinic.matched(trigger, ny(2026, 6, 15, 12, 15)) == {"NO_CHECK_IN_TIME": key(visit)}


def test_today_hours_after_0_and_what_does_not_count(clinic):
    trigger = {"type": "last_visit_checked_in", "when": "today", "hours_after": 0}
    visit = clinic.visit(
        clinic.patient("CHECKED_IN"),
        ny(2026, 6, 15, 9),
        status="checked_in",
        checked_in_at=ny(2026, 6, 15, 9, 5),
    )
    clinic.appointment(clinic.patient("SCHEDULED"), ny(2026, 6, 15, 9))
    clinic.appointment(clinic.patient("NO_SHOW"), ny(2026, 6, 15, 9), "no_show")
    clinic.appointment(clinic.patient("CANCELLED"), ny(2026, 6, 15, 9), "cancelled")
    clinic.visit(clinic.patient("YESTERDAY"), ny(2026, 6, 14, 16))
    assert clinic.matched(trigger, ny(2026, 6, 15, 9, 4)) == {}
    assert clinic.matched(trigger, ny(2026, 6, 15, 9, 5)) == {"CHECKED_IN": key(visit)}


def test_today_keys_on_the_latest_visit_of_the_day(clinic):
    trigger = {"type": "last_visit_checked_in", "when": "today", "hours_after": 1}
    patient = clinic.patient("TWICE")
    morning = clinic.visit(patient, ny(2026, 6, 15, 8))
    assert clinic.matched(trigger, ny(2026, 6, 15, 10)) == {"TWICE": key(morning)}
    evening = clinic.visit(patient, ny(2026, 6, 15, 17))
    # Once the evening visit has started it is the latest; an hour later it is the occurrence.
    assert clinic.matched(trigger, ny(2026, 6, 15, 17, 30)) == {}
    assert clinic.matched(trigger, ny(2026, 6, 15, 18)) == {"TWICE": key(evening)}


# --- last_visit_checked_in: yesterday and days_ago --------------------------------------------


def test_yesterday(clinic):
    trigger = {"type": "last_visit_checked_in", "when": "yesterday"}
    late = clinic.visit(clinic.patient("YESTERDAY_LATE"), days_ago(1, hour=23, minute=30))
    early = clinic.visit(clinic.patient("YESTERDAY_EARLY"), days_ago(1, hour=0, minute=5))
    clinic.visit(clinic.patient("TWO_DAYS_AGO"), days_ago(2))
    clinic.visit(clinic.patient("TODAY"), days_ago(0, hour=8))
    back_today = clinic.patient("BACK_TODAY")  # yesterday's visit is no longer the latest
    clinic.visit(back_today, days_ago(1))
    clinic.visit(back_today, days_ago(0, hour=8))
    clinic.appointment(clinic.patient("NO_SHOW"), days_ago(1), "no_show")
    assert clinic.matched(trigger, AT) == {
        "YESTERDAY_LATE": key(late),
        "YESTERDAY_EARLY": key(early),
    }
    assert set(clinic.matched(trigger, AT - DAY)) == {"TWO_DAYS_AGO"}


def test_days_ago_exact(clinic):
    trigger = {"type": "last_visit_checked_in", "when": "days_ago", "days": 30, "match": "exact"}
    thirty = clinic.visit(clinic.patient("THIRTY"), days_ago(30, hour=23, minute=50))
    clinic.visit(clinic.patient("TWENTY_NINE"), days_ago(29, hour=0, minute=10))
    clinic.visit(clinic.patient("THIRTY_ONE"), days_ago(31))
    came_back = clinic.patient("CAME_BACK")
    clinic.visit(came_back, days_ago(30))
    clinic.visit(came_back, days_ago(5))
    assert clinic.matched(trigger, AT) == {"THIRTY": key(thirty)}
    assert set(clinic.matched(trigger, AT + DAY)) == {"TWENTY_NINE"}
    assert set(clinic.matched(trigger, AT - DAY)) == {"THIRTY_ONE"}


def test_days_ago_at_least(clinic):
    trigger = {
        "type": "last_visit_checked_in",
        "when": "days_ago",
        "days": 180,
        "match": "at_least",
    }
    exactly = clinic.visit(clinic.patient("EXACTLY_180"), days_ago(180))
    longer = clinic.patient("LONGER")
    clinic.visit(longer, days_ago(400))
    last = clinic.visit(longer, days_ago(181))
    clinic.visit(clinic.patient("ONLY_179"), days_ago(179))
    came_back = clinic.patient("CAME_BACK")
    clinic.visit(came_back, days_ago(300))
    clinic.visit(came_back, days_ago(20))
    # A no-show is not a visit: the latest visit is the one 200 days ago.
    no_show = clinic.patient("NO_SHOW_SINCE")
    lapsed = clinic.visit(no_show, days_ago(200))
    clinic.appointment(no_show, days_ago(20), "no_show")
    assert clinic.matched(trigger, AT) == {
        "EXACTLY_180": key(exactly),
        "LONGER": key(last),
        "NO_SHOW_SINCE": key(lapsed),
    }
    assert set(clinic.matched(trigger, AT + DAY)) == {
        "EXACTLY_180",
        "LONGER",
        "NO_SHOW_SINCE",
        "ONLY_179",
    }
    assert set(clinic.matched(trigger, AT - DAY)) == {"LONGER", "NO_SHOW_SINCE"}


# --- last_visit_scheduled ----------------------------------------------------------------------


def test_last_visit_scheduled_ignores_cancelled_and_rescheduled(clinic):
    trigger = {"type": "last_visit_scheduled", "when": "days_ago", "days": 30, "match": "at_least"}
    no_show = clinic.appointment(clinic.patient("NO_SHOW"), days_ago(30), "no_show")
    cancelled_since = clinic.patient("CANCELLED_SINCE")
    first = clinic.appointment(cancelled_since, days_ago(45), "completed")
    clinic.appointment(cancelled_since, days_ago(10), "cancelled")
    clinic.appointment(cancelled_since, ny(2026, 6, 20, 9), "rescheduled")
    clinic.appointment(clinic.patient("RECENT"), days_ago(29), "no_show")
    upcoming = clinic.patient("UPCOMING")  # booked again: no longer lapsed
    clinic.appointment(upcoming, days_ago(60), "completed")
    clinic.appointment(upcoming, ny(2026, 6, 25, 9), "scheduled")
    assert clinic.matched(trigger, AT) == {
        "NO_SHOW": key(no_show),
        "CANCELLED_SINCE": key(first),
    }
    assert set(clinic.matched(trigger, AT - DAY)) == {"CANCELLED_SINCE"}


def test_last_visit_scheduled_exact(clinic):
    trigger = {"type": "last_visit_scheduled", "when": "days_ago", "days": 30, "match": "exact"}
    thirty = clinic.appointment(clinic.patient("THIRTY"), days_ago(30), "scheduled")
    clinic.appointment(clinic.patient("THIRTY_ONE"), days_ago(31), "completed")
    assert clinic.matched(trigger, AT) == {"THIRTY": key(thirty)}
    assert set(clinic.matched(trigger, AT - DAY)) == {"THIRTY_ONE"}


# --- missed_appointment ------------------------------------------------------------------------


@pytest.mark.parametrize("minutes", [15, 25, 30])
def test_missed_appointment_after_exactly_the_minutes(clinic, minutes):
    trigger = {"type": "missed_appointment", "minutes_after": minutes}
    start = ny(2026, 6, 15, 9)
    missed = clinic.appointment(clinic.patient("MISSED"), start)
    confirmed = clinic.appointment(clinic.patient("CONFIRMED"), start, "confirmed")
    no_show = clinic.appointment(clinic.patient("NO_SHOW"), start, "no_show")
    clinic.appointment(clinic.patient("CHECKED_IN"), start, "checked_in")
    clinic.appointment(clinic.patient("COMPLETED"), start, "completed")
    clinic.appointment(clinic.patient("CANCELLED"), start, "cancelled")
    clinic.appointment(clinic.patient("RESCHEDULED"), start, "rescheduled")
    later = clinic.appointment(clinic.patient("LATER"), ny(2026, 6, 15, 9, 1))
    due = start + dt.timedelta(minutes=minutes)
    assert clinic.matched(trigger, start) == {}
    assert clinic.matched(trigger, due - dt.timedelta(seconds=1)) == {}
    assert clinic.matched(trigger, due) == {
        "MISSED": key(missed),
        "CONFIRMED": key(confirmed),
        "NO_SHOW": key(no_show),
    }
    assert clinic.matched(trigger, ny(2026, 6, 15, 23, 59)) == {
        "MISSED": key(missed),
        "CONFIRMED": key(confirmed),
        "NO_SHOW": key(no_show),
        "LATER": key(later),
    }


def test_missed_appointment_not_once_checked_in(clinic):
    trigger = {"type": "missed_appointment", "minutes_after": 15}
    appointment = clinic.appointment(clinic.patient("LATE"), ny(2026, 6, 15, 9))
    assert clinic.matched(trigger, ny(2026, 6, 15, 9, 20)) == {"LATE": key(appointment)}
    clinic.change(appointment, status="checked_in", checked_in_at=ny(2026, 6, 15, 9, 22))
    assert clinic.matched(trigger, ny(2026, 6, 15, 9, 30)) == {}


def test_missed_appointment_is_about_today_only(clinic):
    trigger = {"type": "missed_appointment", "minutes_after": 15}
    # 23:50 yesterday: its 15 minutes pass after local midnight, but it was yesterday's.
    clinic.appointment(clinic.patient("YESTERDAY"), ny(2026, 6, 14, 23, 50))
    assert clinic.matched(trigger, ny(2026, 6, 14, 23, 59)) == {}
    assert clinic.matched(trigger, ny(2026, 6, 15, 0, 5)) == {}
    assert clinic.matched(trigger, AT) == {}


def test_missed_appointment_two_today_enter_once_keyed_on_the_first(clinic):
    trigger = {"type": "missed_appointment", "minutes_after": 30}
    patient = clinic.patient("TWICE")
    second = clinic.appointment(patient, ny(2026, 6, 15, 11))
    first = clinic.appointment(patient, ny(2026, 6, 15, 8))
    assert clinic.matched(trigger, ny(2026, 6, 15, 8, 30)) == {"TWICE": key(first)}
    assert clinic.matched(trigger, ny(2026, 6, 15, 12)) == {"TWICE": key(first)}
    clinic.change(first, status="cancelled")
    assert clinic.matched(trigger, ny(2026, 6, 15, 12)) == {"TWICE": key(second)}


# --- the per-case rule -------------------------------------------------------------------------

REACTIVATION = {
    "type": "last_visit_checked_in",
    "when": "days_ago",
    "days": 180,
    "match": "at_least",
}


def test_reactivation_is_judged_per_case(clinic):
    patient = clinic.patient("TWO_CASES")
    injury = clinic.case(patient, "Personal Injury")
    wellness = clinic.case(patient, "Wellness")
    clinic.visit(patient, days_ago(320), case=injury)
    lapsed = clinic.visit(patient, days_ago(200), case=injury)
    clinic.visit(patient, days_ago(10), case=wellness)
    # The patient's own last visit is 10 days ago; the injury case lapsed 200 days ago.
    patient.refresh_from_db()
    assert patient.last_visit_checked_in == days_ago(10).date()
    expected = {"TWO_CASES": key(lapsed)}
    assert clinic.matched(REACTIVATION, AT, case_types=["Personal Injury"]) == expected
    assert clinic.matched(REACTIVATION, AT) == expected  # any lapsed case
    assert clinic.matched(REACTIVATION, AT, case_types=["Wellness"]) == {}
    assert clinic.matched(REACTIVATION, AT, case_types=["Wellness", "Personal Injury"]) == expected
    # Re-evaluated on the following days: the same occurrence.
    assert clinic.matched(REACTIVATION, AT + DAY) == expected
    assert clinic.matched(REACTIVATION, AT + 30 * DAY) == expected
    # A new visit in the injury case ends that lapse; when it lapses, a new occurrence.
    back = clinic.visit(patient, days_ago(0, hour=8), case=injury)
    assert clinic.matched(REACTIVATION, AT + DAY) == {}
    assert clinic.matched(REACTIVATION, AT + 180 * DAY) == {"TWO_CASES": key(back)}


def test_appointments_without_a_case_form_their_own_group(clinic):
    patient = clinic.patient("NO_CASE_LAPSED")
    wellness = clinic.case(patient, "Wellness")
    lapsed = clinic.visit(patient, days_ago(200))
    clinic.visit(patient, days_ago(10), case=wellness)
    one_group = clinic.patient("ONE_GROUP")  # no cases: the recent visit ends the lapse
    clinic.visit(one_group, days_ago(200))
    clinic.visit(one_group, days_ago(10))
    assert clinic.matched(REACTIVATION, AT) == {"NO_CASE_LAPSED": key(lapsed)}
    assert clinic.matched(REACTIVATION, AT, case_types=["Wellness"]) == {}
    assert clinic.matched(REACTIVATION, AT, case_types=["Personal Injury"]) == {}


def test_two_lapsed_cases_enter_once_with_a_stable_key(clinic):
    patient = clinic.patient("TWO_LAPSED")
    injury = clinic.case(patient, "Personal Injury")
    wellness = clinic.case(patient, "Wellness")
    clinic.visit(patient, days_ago(400), case=injury)
    newest = clinic.visit(patient, days_ago(250), case=wellness)
    expected = {"TWO_LAPSED": key(newest)}
    assert clinic.matched(REACTIVATION, AT) == expected
    assert clinic.matched(REACTIVATION, AT + DAY) == expected
    assert clinic.matched(REACTIVATION, AT + 90 * DAY) == expected


def test_no_conversion_is_judged_per_case(clinic):
    trigger = {"type": "last_visit_scheduled", "when": "days_ago", "days": 30, "match": "at_least"}
    patient = clinic.patient("TWO_CASES")
    injury = clinic.case(patient, "Personal Injury")
    wellness = clinic.case(patient, "Wellness")
    lapsed = clinic.appointment(patient, days_ago(40), "no_show", case=injury)
    clinic.appointment(patient, ny(2026, 6, 25, 9), case=wellness)
    assert clinic.matched(trigger, AT, case_types=["Personal Injury"]) == {"TWO_CASES": key(lapsed)}
    assert clinic.matched(trigger, AT, case_types=["Wellness"]) == {}


# --- DST change days in New York (2026-03-08 spring forward, 2026-11-01 fall back) ------------


def test_local_dates_near_midnight_on_dst_change_days(clinic):
    same_day = {"type": "scheduled_appointment", "when": "days_before", "days": 0}
    spring = [
        ("MAR7_LATE", ny(2026, 3, 7, 23, 30)),
        ("MAR8_EARLY", ny(2026, 3, 8, 0, 30)),
        ("MAR8_LATE", ny(2026, 3, 8, 23, 30)),  # EDT: 03:30 UTC on 9 March
        ("MAR9_EARLY", ny(2026, 3, 9, 0, 30)),
    ]
    fall = [
        ("OCT31_LATE", ny(2026, 10, 31, 23, 30)),
        ("NOV1_EARLY", ny(2026, 11, 1, 0, 30)),  # EDT
        ("NOV1_REPEATED", ny(2026, 11, 1, 1, 30, fold=1)),  # the second 01:30, EST
        ("NOV1_LATE", ny(2026, 11, 1, 23, 30)),  # EST: 04:30 UTC on 2 November
        ("NOV2_EARLY", ny(2026, 11, 2, 0, 30)),
    ]
    appointments = {}
    for external_id, start in spring + fall:
        appointments[external_id] = clinic.appointment(clinic.patient(external_id), start)
        assert appointments[external_id].local_date == start.date()
    assert set(clinic.matched(same_day, ny(2026, 3, 8, 0, 10))) == {"MAR8_EARLY", "MAR8_LATE"}
    assert set(clinic.matched(same_day, ny(2026, 3, 8, 23, 0))) == {"MAR8_LATE"}
    assert set(clinic.matched(same_day, ny(2026, 11, 1, 0, 10))) == {
        "NOV1_EARLY",
        "NOV1_REPEATED",
        "NOV1_LATE",
    }
    # The first 01:45 (EDT) comes before the repeated 01:30 (EST).
    assert set(clinic.matched(same_day, ny(2026, 11, 1, 1, 45))) == {"NOV1_REPEATED", "NOV1_LATE"}
    tomorrow = {"type": "scheduled_appointment", "when": "days_before", "days": 1}
    assert set(clinic.matched(tomorrow, ny(2026, 3, 7, 10))) == {"MAR8_EARLY", "MAR8_LATE"}
    assert set(clinic.matched(tomorrow, ny(2026, 10, 31, 10))) == {
        "NOV1_EARLY",
        "NOV1_REPEATED",
        "NOV1_LATE",
    }


def test_missed_appointment_minutes_across_the_spring_forward_gap(clinic):
    trigger = {"type": "missed_appointment", "minutes_after": 30}
    # 01:45 EST; thirty real minutes later the clocks read 03:15 EDT.
    appointment = clinic.appointment(clinic.patient("EARLY_BIRD"), ny(2026, 3, 8, 1, 45))
    assert clinic.matched(trigger, ny(2026, 3, 8, 3, 14)) == {}
    assert clinic.matched(trigger, ny(2026, 3, 8, 3, 15)) == {"EARLY_BIRD": key(appointment)}


def test_missed_appointment_minutes_across_the_fall_back_hour(clinic):
    trigger = {"type": "missed_appointment", "minutes_after": 30}
    # The first 01:45 (EDT); thirty real minutes later the clocks read 01:15 EST.
    appointment = clinic.appointment(clinic.patient("NIGHT_OWL"), ny(2026, 11, 1, 1, 45))
    assert clinic.matched(trigger, ny(2026, 11, 1, 1, 14, fold=1)) == {}
    assert clinic.matched(trigger, ny(2026, 11, 1, 1, 15, fold=1)) == {
        "NIGHT_OWL": key(appointment)
    }


def test_hours_after_across_the_spring_forward_gap(clinic):
    trigger = {"type": "last_visit_checked_in", "when": "today", "hours_after": 2}
    # Checked in at 01:30 EST; two real hours later the clocks read 04:30 EDT.
    visit = clinic.visit(
        clinic.patient("EARLY"),
        ny(2026, 3, 8, 1, 20),
        status="checked_in",
        checked_in_at=ny(2026, 3, 8, 1, 30),
    )
    assert clinic.matched(trigger, ny(2026, 3, 8, 4, 29)) == {}
    assert clinic.matched(trigger, ny(2026, 3, 8, 4, 30)) == {"EARLY": key(visit)}


DST_DAYS = [
    pytest.param(dt.date(2026, 3, 8), id="spring-forward"),
    pytest.param(dt.date(2026, 11, 1), id="fall-back"),
]


@pytest.mark.parametrize("day", DST_DAYS)
@pytest.mark.parametrize("hour", [0, 23])
def test_birthday_at_both_ends_of_a_dst_change_day(clinic, day, hour):
    before, after = day - DAY, day + DAY
    clinic.patient("DAY_BEFORE", birth_date=before.replace(year=1985))
    clinic.patient("ON_THE_DAY", birth_date=day.replace(year=1985))
    clinic.patient("DAY_AFTER", birth_date=after.replace(year=1985))
    at = ny(day.year, day.month, day.day, hour, 30)
    assert clinic.matched(BIRTHDAY, at) == {"ON_THE_DAY": "birthday:2026"}


@pytest.mark.parametrize("day", DST_DAYS)
@pytest.mark.parametrize("hour", [0, 23])
def test_days_ago_at_both_ends_of_a_dst_change_day(clinic, day, hour):
    trigger = {"type": "last_visit_checked_in", "when": "days_ago", "days": 30, "match": "exact"}
    thirty = day - 30 * DAY
    visits = {}
    for external_id, visit_day, visit_hour in [
        ("THIRTY_LATE", thirty, 23),
        ("THIRTY_EARLY", thirty, 0),
        ("TWENTY_NINE", thirty + DAY, 0),
        ("THIRTY_ONE", thirty - DAY, 23),
    ]:
        start = ny(visit_day.year, visit_day.month, visit_day.day, visit_hour, 30)
        visits[external_id] = clinic.visit(clinic.patient(external_id), start)
    at = ny(day.year, day.month, day.day, hour, 30)
    assert clinic.matched(trigger, at) == {
        "THIRTY_LATE": key(visits["THIRTY_LATE"]),
        "THIRTY_EARLY": key(visits["THIRTY_EARLY"]),
    }


# --- tenancy -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "trigger",
    [
        BIRTHDAY,
        REACTIVATION,
        {"type": "missed_appointment", "minutes_after": 15},
        {"type": "scheduled_appointment", "when": "days_before", "days": 1},
    ],
    ids=lambda trigger: trigger["type"],
)
def test_a_trigger_never_reaches_another_practice(clinic, trigger):
    other = Clinic()
    for practice in (clinic, other):
        patient = practice.patient("SAME_ID", birth_date=dt.date(1980, 6, 15))
        practice.visit(patient, days_ago(200))
        practice.appointment(patient, ny(2026, 6, 15, 9))
        practice.appointment(patient, ny(2026, 6, 16, 9))
    for practice in (clinic, other):
        ctx = RunContext(practice=practice.practice, at=AT)
        (matched,) = trigger_audience(trigger, ctx)
        assert matched.practice_id == practice.practice.pk
        if matched.trigger_appointment_id is not None:
            appointment = Appointment.objects.get(pk=matched.trigger_appointment_id)
            assert appointment.patient_id == matched.pk
